"""Glyphs: characters rendered from matplotlib's fonts (every chapter; introduced in the preface).

An MNIST-sized image data set that needs no download. Each character is drawn
from a TrueType font with FreeType (through matplotlib), centred, then jittered
by a random rotation, scale and shift and overlaid with pixel noise. The split
is *by font*: the test fonts never appear in training, so test accuracy
measures whether a model learned the shape of a character rather than the
quirks of a typeface. Used from Part 4 (feedforward networks) on, and by the
CNN chapters of Part 8.
"""

from __future__ import annotations

import math
import string
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from dlbook import _checks as check
from dlbook.data._split import Dataset, Split

__all__ = ["GlyphConfig", "glyphs", "FONTS", "TEST_FONTS", "VAL_FONTS", "render"]

#: Character sets by name. A custom charset is a string of distinct characters of ``ALPHABET``.
CHARSETS = {
    "digits": string.digits,
    "letters": string.ascii_uppercase,
    "alnum": string.digits + string.ascii_uppercase,
}
#: Every character a glyph can show: digits and capital letters.
ALPHABET = string.digits + string.ascii_uppercase

#: Text fonts shipped with matplotlib, by file stem. Symbol-only fonts are left out.
FONTS = (
    "DejaVuSans", "DejaVuSans-Bold", "DejaVuSans-Oblique", "DejaVuSans-BoldOblique",
    "DejaVuSansMono", "DejaVuSansMono-Bold", "DejaVuSansMono-Oblique",
    "DejaVuSansMono-BoldOblique",
    "DejaVuSerif", "DejaVuSerif-Bold", "DejaVuSerif-Italic", "DejaVuSerif-BoldItalic",
    "STIXGeneral", "STIXGeneralBol", "STIXGeneralItalic", "STIXGeneralBolIta",
    "cmr10", "cmb10", "cmss10", "cmtt10", "cmti10",
)
#: Fonts held out for testing: one from each family, never seen in training.
TEST_FONTS = ("DejaVuSans-BoldOblique", "DejaVuSerif-Italic", "STIXGeneralBol", "cmss10")
#: Fonts held out for validation (model selection, early stopping).
VAL_FONTS = ("DejaVuSansMono-Bold", "STIXGeneralItalic", "cmtt10")

_SIZE = 28  # output side in pixels, as MNIST
_BOX = 20  # the glyph's longer side before jitter, again as MNIST


@dataclass(frozen=True)
class GlyphConfig:
    """How much each rendered glyph is jittered.

    Attributes:
        rotation: largest rotation, in degrees, either way.
        scale: relative size change; the size is drawn from [1 - scale, 1 + scale].
        shift: largest shift of the centre, in pixels, along each axis.
        noise: standard deviation of the Gaussian pixel noise (pixels are in [0, 1]).
    """

    rotation: float = 12.0
    scale: float = 0.12
    shift: float = 2.0
    noise: float = 0.05

    def __post_init__(self) -> None:
        check.nonnegative_float("GlyphConfig.rotation", self.rotation)
        check.fraction("GlyphConfig.scale", self.scale)
        check.nonnegative_float("GlyphConfig.shift", self.shift)
        check.nonnegative_float("GlyphConfig.noise", self.noise)


def _font_path(font: str) -> Path:
    from matplotlib import get_data_path

    return Path(get_data_path()) / "fonts" / "ttf" / f"{font}.ttf"


@lru_cache(maxsize=None)
def _render_one(font: str, char: str) -> np.ndarray:
    """The character in the font, cropped to its ink and fitted in a 20×20 box,
    centred on a 28×28 float canvas in [0, 1]."""
    from matplotlib import ft2font

    face = ft2font.FT2Font(str(_font_path(font)))
    if ord(char) not in face.get_charmap():
        raise ValueError(f"font {font!r} has no glyph for {char!r}")
    face.set_size(64, 72)
    face.set_text(char)
    face.draw_glyphs_to_bitmap(antialiased=True)
    ink = np.asarray(face.get_image(), dtype=np.float32) / 255.0
    rows, cols = np.nonzero(ink > 0.05)
    ink = ink[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    h, w = ink.shape
    factor = _BOX / max(h, w)
    new_h, new_w = max(1, round(h * factor)), max(1, round(w * factor))
    small = F.interpolate(
        torch.from_numpy(ink)[None, None], size=(new_h, new_w), mode="bilinear",
        antialias=True, align_corners=False,
    )[0, 0].clamp(0, 1)
    canvas = torch.zeros(_SIZE, _SIZE)
    top, left = (_SIZE - new_h) // 2, (_SIZE - new_w) // 2
    canvas[top : top + new_h, left : left + new_w] = small
    return canvas.numpy()


def render(chars: str, font: str = "DejaVuSans") -> torch.Tensor:
    """Render ``chars`` in ``font`` without jitter, as a ``(len(chars), 1, 28, 28)`` tensor.

    >>> render("A7").shape
    torch.Size([2, 1, 28, 28])
    """
    check.one_of("font", font, FONTS)
    if not isinstance(chars, str):
        raise TypeError(f"chars must be a string, got {type(chars).__name__} {chars!r}")
    if not chars:
        raise ValueError("chars must be a non-empty string, got ''")
    return torch.stack([torch.from_numpy(_render_one(font, c)) for c in chars])[:, None]


def _jitter(images: torch.Tensor, config: GlyphConfig, gen: torch.Generator) -> torch.Tensor:
    """Apply a random rotation, scale and shift to each image, then add noise."""
    n = images.shape[0]
    angle = (torch.rand(n, generator=gen) * 2 - 1) * math.radians(config.rotation)
    scale = 1 + (torch.rand(n, generator=gen) * 2 - 1) * config.scale
    # affine_grid works in normalized coordinates where the image spans [-1, 1].
    shift = (torch.rand(n, 2, generator=gen) * 2 - 1) * config.shift * 2 / _SIZE
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack(
        [torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1
    )  # (N, 2, 3): the map from output to input coordinates
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    out = F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    out = out + config.noise * torch.randn(out.shape, generator=gen)
    return out.clamp(0, 1)


def _make_split(
    fonts: tuple[str, ...], chars: str, per_font: int, config: GlyphConfig, seed: int
) -> Split:
    base = torch.stack([render(chars, font) for font in fonts])  # (F, C, 1, 28, 28)
    n_fonts, n_chars = base.shape[:2]
    gen = torch.Generator().manual_seed(seed)
    # per_font copies of every (font, character) pair, in a random order.
    pair = torch.arange(n_fonts * n_chars).repeat(per_font)
    pair = pair[torch.randperm(len(pair), generator=gen)]
    images = base.reshape(n_fonts * n_chars, 1, _SIZE, _SIZE)[pair]  # (N, 1, 28, 28)
    return Split(_jitter(images, config, gen), pair % n_chars)


def _charset(charset: object) -> str:
    """The characters of ``charset``: a name in ``CHARSETS`` or characters of ``ALPHABET``."""
    if not isinstance(charset, str):
        raise TypeError(f"charset must be a string, got {type(charset).__name__} {charset!r}")
    if charset in CHARSETS:
        return CHARSETS[charset]
    if len(charset) < 2 or len(set(charset)) != len(charset) or not set(charset) <= set(ALPHABET):
        raise ValueError(
            f"charset must be one of {sorted(CHARSETS)} or a string of at least two distinct "
            f"digits and capital letters (such as 'AB'), got {charset!r}"
        )
    return charset


def glyphs(
    charset: str = "digits",
    *,
    per_font: int = 60,
    config: GlyphConfig | None = None,
    seed: int = 0,
    flatten: bool = False,
) -> Dataset:
    """Generate the glyphs data set, split by font.

    Args:
        charset: ``"digits"`` (10 classes), ``"letters"`` (A–Z, 26 classes),
            ``"alnum"`` (both, 36 classes), or a string of at least two distinct
            digits and capital letters, such as ``"AB"``.
        per_font: jittered copies of each character drawn from each font.
        config: jitter settings; ``GlyphConfig()`` when left out.
        seed: seeds the jitter; the same seed gives the same tensors.
        flatten: return inputs of shape ``(N, 784)`` instead of ``(N, 1, 28, 28)``.

    Returns:
        A ``Dataset`` whose train, validation and test parts
        come from disjoint fonts (the rest, ``VAL_FONTS``, ``TEST_FONTS``).

    >>> d = glyphs(per_font=2)
    >>> d.train.X.shape, d.test.X.shape
    (torch.Size([280, 1, 28, 28]), torch.Size([80, 1, 28, 28]))
    """
    chars = _charset(charset)
    check.positive_int("per_font", per_font)
    config = GlyphConfig() if config is None else config
    if not isinstance(config, GlyphConfig):
        raise TypeError(f"config must be a GlyphConfig, got {type(config).__name__}")
    check.nonnegative_int("seed", seed)
    train_fonts = tuple(f for f in FONTS if f not in TEST_FONTS + VAL_FONTS)
    parts = [
        _make_split(fonts, chars, per_font, config, seed * 3 + offset)
        for offset, fonts in enumerate((train_fonts, VAL_FONTS, TEST_FONTS))
    ]
    if flatten:
        parts = [Split(p.X.reshape(len(p), -1), p.y) for p in parts]  # (N, 1, 28, 28) -> (N, 784)
    return Dataset(f"glyphs-{charset}", *parts, classes=tuple(chars))
