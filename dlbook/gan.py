"""Generative adversarial networks: losses, models, an explicit training loop and mode coverage
(Part 10, "Generative adversarial networks").

A generator G maps noise z to samples; a discriminator D scores samples as real
or generated. Both losses are written on D's logits (:func:`discriminator_loss`,
:func:`generator_loss`, with the saturating and the non-saturating generator
loss, and the gradient of each by hand in :func:`generator_logit_gradient`).
:func:`optimal_discriminator` is the best D for two known densities. The toy
problem is a ring of Gaussians (:func:`ring_centers`, :func:`sample_ring`)
scored by :func:`mode_coverage`; :class:`MLPGenerator` and
:class:`MLPDiscriminator` (optionally spectrally normalized) play on it, and
:class:`ConvGenerator` and :class:`ConvDiscriminator` (optionally
class-conditional, the discriminator by projection) on 8x8 digit images.
:func:`train_gan` alternates the two players' updates in its own loop: a GAN
step is not an (x, y) -> loss step.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from dlbook import _checks as check

__all__ = [
    "optimal_discriminator", "discriminator_loss", "generator_loss", "generator_logit_gradient",
    "ring_centers", "sample_ring", "Coverage", "mode_coverage",
    "MLPGANConfig", "MLPGenerator", "MLPDiscriminator", "ConvGANConfig", "ConvGenerator", "ConvDiscriminator",
    "GANTrainConfig", "train_gan", "generate",
]


def _flag(name: str, value: object) -> bool:
    """``value`` if it is a bool; a TypeError naming ``name`` otherwise."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {type(value).__name__} {value!r}")
    return value


def optimal_discriminator(p_data: torch.Tensor, p_g: torch.Tensor) -> torch.Tensor:
    """The discriminator that maximizes the GAN value for a fixed generator, from the two
    densities evaluated at the same points. (N,) and (N,) -> (N,)."""
    check.finite("p_data", p_data)
    check.finite("p_g", p_g)
    check.expect_shape(p_data, "N", "p_data")
    check.expect_shape(p_g, "N", "p_g", N=len(p_data))
    if bool((p_data < 0).any()) or bool((p_g < 0).any()):
        raise ValueError("p_data and p_g are densities: they must be >= 0")
    if bool(((p_data + p_g) == 0).any()):
        raise ValueError("p_data + p_g must be > 0 at every point: D* is undefined where both vanish")
    # D*(x) = p_data(x) / (p_data(x) + p_g(x))
    return p_data / (p_data + p_g)


def _logits(name: str, logits: object) -> torch.Tensor:
    """``logits`` if it is a finite, non-empty 1-D floating tensor of discriminator logits."""
    check.finite(name, logits)
    check.expect_shape(logits, "B", name)
    return logits


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor, *,
                       smoothing: float = 0.0) -> torch.Tensor:
    """Binary cross-entropy of D: real samples labelled 1 - smoothing, generated ones 0.

    real_logits (B,) and fake_logits (B',) are D's logits a, with D = sigmoid(a). Scalar.
    """
    _logits("real_logits", real_logits)
    _logits("fake_logits", fake_logits)
    s = check.fraction("smoothing", smoothing, high=0.5)
    # -log sigmoid(a) = softplus(-a) and -log(1 - sigmoid(a)) = softplus(a)
    # real: -(1 - s) log D(x) - s log(1 - D(x)); one-sided smoothing leaves the fake target at 0
    real = (1 - s) * F.softplus(-real_logits) + s * F.softplus(real_logits)
    # fake: -log(1 - D(G(z)))
    fake = F.softplus(fake_logits)
    return real.mean() + fake.mean()


def generator_loss(fake_logits: torch.Tensor, *, saturating: bool = False) -> torch.Tensor:
    """The generator's loss on D's logits a = logit D(G(z)) (B,): scalar.

    saturating: mean log(1 - D(G(z))), the minimax game's own term; otherwise the
    non-saturating mean -log D(G(z)).
    """
    _logits("fake_logits", fake_logits)
    if _flag("saturating", saturating):
        # log(1 - sigmoid(a)) = -softplus(a)
        return -F.softplus(fake_logits).mean()
    # -log sigmoid(a) = softplus(-a)
    return F.softplus(-fake_logits).mean()


def generator_logit_gradient(fake_logits: torch.Tensor, *, saturating: bool = False) -> torch.Tensor:
    """d(generator_loss)/d(logits) by hand, (B,) -> (B,): -D/B saturating, -(1 - D)/B not."""
    _logits("fake_logits", fake_logits)
    D = torch.sigmoid(fake_logits)
    B = len(fake_logits)
    if _flag("saturating", saturating):
        # d/da log(1 - sigmoid(a)) = -sigmoid(a) = -D: it vanishes as D -> 0
        return -D / B
    # d/da -log sigmoid(a) = -(1 - sigmoid(a)) = -(1 - D): it tends to -1 as D -> 0
    return -(1 - D) / B


def ring_centers(modes: int = 8, radius: float = 2.0) -> torch.Tensor:
    """Centers of ``modes`` Gaussians evenly spaced on a circle of ``radius``. (modes, 2)."""
    modes = check.positive_int("modes", modes, minimum=2)
    radius = check.positive_float("radius", radius)
    angle = torch.arange(modes, dtype=torch.float32) * (2 * math.pi / modes)  # (K,)
    return radius * torch.stack([angle.cos(), angle.sin()], dim=1)  # (K, 2)


def sample_ring(n: int, *, modes: int = 8, radius: float = 2.0, std: float = 0.1,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """``n`` points from an equal mixture of ``modes`` Gaussians (std ``std``) on a ring. (n, 2)."""
    n = check.positive_int("n", n)
    std = check.positive_float("std", std)
    centers = ring_centers(modes, radius)  # (K, 2)
    k = torch.randint(len(centers), (n,), generator=generator)  # (n,) which mode each point is from
    return centers[k] + std * torch.randn(n, 2, generator=generator)  # (n, 2)


@dataclass(frozen=True)
class Coverage:
    """How well samples cover a mixture's modes.

    Attributes:
        modes: modes that received at least ``min_count`` high-quality samples.
        high_quality: share of samples within ``within`` standard deviations of their
            nearest center.
        counts: high-quality samples per mode.
    """

    modes: int
    high_quality: float
    counts: tuple[int, ...]


def mode_coverage(samples: torch.Tensor, centers: torch.Tensor, std: float, *,
                  within: float = 3.0, min_count: int = 20) -> Coverage:
    """Count covered modes and the high-quality share of samples (N, D) around centers (K, D)."""
    check.finite("samples", samples)
    check.finite("centers", centers)
    D = check.expect_shape(samples, "N D", "samples")["D"]
    check.expect_shape(centers, "K D", "centers", D=D)
    std = check.positive_float("std", std)
    within = check.positive_float("within", within)
    min_count = check.positive_int("min_count", min_count)
    distance = torch.cdist(samples.double(), centers.double().to(samples.device))  # (N, K)
    nearest, mode = distance.min(dim=1)  # (N,), (N,)
    good = nearest <= within * std  # (N,)
    counts = torch.bincount(mode[good], minlength=len(centers))  # (K,)
    return Coverage(int((counts >= min_count).sum()), float(good.double().mean()), tuple(counts.tolist()))


@dataclass(frozen=True)
class MLPGANConfig:
    """Generator and discriminator MLPs for low-dimensional data.

    Attributes:
        data_dim: dimension of a sample (2 for the ring).
        latent_dim: dimension of the noise z.
        hidden: units in every hidden layer of both networks.
        layers: hidden layers in each network.
        spectral_norm: divide every weight of D by its largest singular value.
    """

    data_dim: int = 2
    latent_dim: int = 8
    hidden: int = 64
    layers: int = 2
    spectral_norm: bool = False

    def __post_init__(self) -> None:
        check.positive_int("data_dim", self.data_dim)
        check.positive_int("latent_dim", self.latent_dim)
        check.positive_int("hidden", self.hidden)
        check.positive_int("layers", self.layers)
        _flag("spectral_norm", self.spectral_norm)


def _mlp(sizes: list[int], activation: Callable[[], nn.Module], spectral: bool) -> nn.Sequential:
    """Linear layers of ``sizes`` with ``activation`` between them, optionally spectrally normalized."""
    blocks: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        linear = nn.Linear(n_in, n_out)
        blocks.append(nn.utils.parametrizations.spectral_norm(linear) if spectral else linear)
        if i < len(sizes) - 2:
            blocks.append(activation())
    return nn.Sequential(*blocks)


class MLPGenerator(nn.Module):
    """G: noise z (B, latent_dim) -> samples (B, data_dim), an MLP with ReLUs."""

    def __init__(self, config: MLPGANConfig) -> None:
        super().__init__()
        self.config = config
        sizes = [config.latent_dim] + [config.hidden] * config.layers + [config.data_dim]
        self.net = _mlp(sizes, nn.ReLU, spectral=False)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Samples (B, data_dim) from noise (B, latent_dim)."""
        check.expect_shape(z, "B L", "z", L=self.config.latent_dim)
        return self.net(z)


class MLPDiscriminator(nn.Module):
    """D: samples (B, data_dim) -> logits (B,), an MLP with leaky ReLUs."""

    def __init__(self, config: MLPGANConfig) -> None:
        super().__init__()
        self.config = config
        sizes = [config.data_dim] + [config.hidden] * config.layers + [1]
        self.net = _mlp(sizes, lambda: nn.LeakyReLU(0.2), spectral=config.spectral_norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits a (B,), with D(x) = sigmoid(a)."""
        check.expect_shape(x, "B D", "x", D=self.config.data_dim)
        return self.net(x).squeeze(1)  # (B, 1) -> (B,)


@dataclass(frozen=True)
class ConvGANConfig:
    """A DCGAN-style pair for 8x8 one-channel images, class-conditional when num_classes > 0
    (one-hot label into G, projection of the label onto D's features).

    Attributes:
        latent_dim: dimension of the noise z.
        num_classes: classes to condition on; 0 for an unconditional GAN.
        width: channels of the 4x4 feature maps (the 2x2 maps have twice as many).
    """

    latent_dim: int = 16
    num_classes: int = 0
    width: int = 16

    def __post_init__(self) -> None:
        check.positive_int("latent_dim", self.latent_dim)
        check.nonnegative_int("num_classes", self.num_classes)
        check.positive_int("width", self.width)


def _condition(config: ConvGANConfig, y: torch.Tensor | None, batch: int) -> torch.Tensor | None:
    """One-hot labels (B, K) for a conditional model; None for an unconditional one."""
    if config.num_classes == 0:
        if y is not None:
            raise ValueError("y was given, but the model is unconditional (num_classes=0)")
        return None
    if y is None:
        raise ValueError(f"y is required: the model is conditional on {config.num_classes} classes")
    check.labels("y", y, config.num_classes)
    check.same_length(y=y, batch=range(batch))
    return F.one_hot(y, config.num_classes).float()


class ConvGenerator(nn.Module):
    """G: noise z (B, latent_dim) [and labels y (B,)] -> images (B, 1, 8, 8) in [0, 1]."""

    def __init__(self, config: ConvGANConfig) -> None:
        super().__init__()
        self.config = config
        w = config.width
        self.project = nn.Linear(config.latent_dim + config.num_classes, 2 * w * 2 * 2)
        self.net = nn.Sequential(
            nn.BatchNorm2d(2 * w), nn.ReLU(),
            nn.ConvTranspose2d(2 * w, w, 4, stride=2, padding=1),  # (B, 2w, 2, 2) -> (B, w, 4, 4)
            nn.BatchNorm2d(w), nn.ReLU(),
            nn.ConvTranspose2d(w, 1, 4, stride=2, padding=1),  # (B, w, 4, 4) -> (B, 1, 8, 8)
            nn.Sigmoid(),
        )

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Images (B, 1, 8, 8) from noise (B, latent_dim) and, if conditional, labels (B,)."""
        B = check.expect_shape(z, "B L", "z", L=self.config.latent_dim)["B"]
        onehot = _condition(self.config, y, B)
        h = z if onehot is None else torch.cat([z, onehot.to(z.dtype)], dim=1)  # (B, L + K)
        return self.net(self.project(h).view(B, 2 * self.config.width, 2, 2))  # (B, 2w * 4) -> (B, 2w, 2, 2)


class ConvDiscriminator(nn.Module):
    """D: images (B, 1, 8, 8) [and labels y (B,)] -> logits (B,); conditional by projection."""

    def __init__(self, config: ConvGANConfig) -> None:
        super().__init__()
        self.config = config
        w = config.width
        self.features = nn.Sequential(
            nn.Conv2d(1, w, 4, stride=2, padding=1),  # (B, 1, 8, 8) -> (B, w, 4, 4)
            nn.LeakyReLU(0.2),
            nn.Conv2d(w, 2 * w, 4, stride=2, padding=1),  # (B, w, 4, 4) -> (B, 2w, 2, 2)
            nn.LeakyReLU(0.2),
            nn.Flatten(),  # (B, 2w * 4)
        )
        self.head = nn.Linear(2 * w * 2 * 2, 1)
        # projection: one learned vector per class, compared with the image's features
        self.embed = nn.Embedding(config.num_classes, 2 * w * 2 * 2) if config.num_classes else None

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Logits (B,) for images (B, 1, 8, 8) and, if conditional, their labels (B,)."""
        B = check.expect_shape(x, "B C H W", "x", C=1, H=8, W=8)["B"]
        _condition(self.config, y, B)
        h = self.features(x)  # (B, 8w)
        logits = self.head(h).squeeze(1)  # (B, 1) -> (B,)
        if self.embed is not None:
            # a(x, y) = w^T h(x) + e_y^T h(x): the label's vector scores how well x fits y
            logits = logits + (self.embed(y) * h).sum(dim=1)  # (B,)
        return logits


@dataclass(frozen=True)
class GANTrainConfig:
    """How ``train_gan`` alternates the two players.

    Attributes:
        steps: generator updates.
        batch_size: real and generated samples per update.
        lr_g: Adam step size of the generator.
        lr_d: Adam step size of the discriminator.
        betas: Adam's betas for both (beta1 = 0.5, as in DCGAN, damps the oscillations).
        d_steps: discriminator updates per generator update.
        saturating: train G on the saturating loss instead of the non-saturating one.
        smoothing: one-sided label smoothing of D's real targets (0 for none).
    """

    steps: int = 1000
    batch_size: int = 256
    lr_g: float = 1e-3
    lr_d: float = 1e-3
    betas: tuple[float, float] = (0.5, 0.999)
    d_steps: int = 1
    saturating: bool = False
    smoothing: float = 0.0

    def __post_init__(self) -> None:
        check.positive_int("steps", self.steps)
        check.positive_int("batch_size", self.batch_size)
        check.positive_float("lr_g", self.lr_g)
        check.positive_float("lr_d", self.lr_d)
        if not isinstance(self.betas, tuple) or len(self.betas) != 2:
            raise TypeError(f"betas must be a tuple of two numbers, got {self.betas!r}")
        for beta in self.betas:
            check.fraction("betas", beta)
        check.positive_int("d_steps", self.d_steps)
        _flag("saturating", self.saturating)
        check.fraction("smoothing", self.smoothing, high=0.5)


def _latent_dim(G: nn.Module) -> int:
    """The noise dimension of a dlbook generator (from its config)."""
    config = getattr(G, "config", None)
    if config is None or not hasattr(config, "latent_dim"):
        raise TypeError(f"G must be a dlbook generator with a config.latent_dim, got {type(G).__name__}")
    return config.latent_dim


def train_gan(G: nn.Module, D: nn.Module, data: torch.Tensor, labels: torch.Tensor | None = None,
              config: GANTrainConfig | None = None, *,
              generator: torch.Generator | None = None) -> dict[str, list[float]]:
    """Train G and D by alternating Adam updates on batches of ``data`` (N, ...).

    With ``labels`` (N,) both players are conditional and generated samples take the
    labels of the real batch. Noise and batch indices come from the CPU ``generator``.
    Returns the per-step losses and D's mean output on real and generated samples.
    """
    check.module("G", G)
    check.module("D", D)
    check.finite("data", data)
    if labels is not None:
        check.labels("labels", labels)
        check.same_length(data=data, labels=labels)
    config = GANTrainConfig() if config is None else config
    if not isinstance(config, GANTrainConfig):
        raise TypeError(f"config must be a GANTrainConfig, got {type(config).__name__}")
    latent_dim = _latent_dim(G)
    device = next(G.parameters()).device
    data = data.to(device)
    labels = None if labels is None else labels.to(device)
    opt_g = torch.optim.Adam(G.parameters(), lr=config.lr_g, betas=config.betas)
    opt_d = torch.optim.Adam(D.parameters(), lr=config.lr_d, betas=config.betas)
    B = min(config.batch_size, len(data))
    trainable_d = [p for p in D.parameters() if p.requires_grad]
    G.train()
    D.train()

    def batch() -> tuple[torch.Tensor, tuple[torch.Tensor, ...], torch.Tensor]:
        """A real batch, its labels as extra arguments (or none) and fresh noise, on the device."""
        index = torch.randint(len(data), (B,), generator=generator).to(device)  # (B,)
        z = torch.randn(B, latent_dim, generator=generator).to(device)  # (B, L)
        return data[index], () if labels is None else (labels[index],), z

    history: dict[str, list[float]] = {"d_loss": [], "g_loss": [], "d_real": [], "d_fake": []}
    for _ in range(config.steps):
        for _ in range(config.d_steps):
            x, y, z = batch()
            with torch.no_grad():
                fake = G(z, *y)  # constants for D's update: no gradient flows into G
            real_logits = D(x, *y)
            d_loss = discriminator_loss(real_logits, D(fake, *y), smoothing=config.smoothing)
            opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            opt_d.step()
        _, y, z = batch()
        for p in trainable_d:
            p.requires_grad_(False)  # D is a fixed opponent in G's step: gradients pass through, not into it
        fake_logits = D(G(z, *y), *y)
        g_loss = generator_loss(fake_logits, saturating=config.saturating)
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        opt_g.step()
        for p in trainable_d:
            p.requires_grad_(True)
        history["d_loss"].append(d_loss.item())
        history["g_loss"].append(g_loss.item())
        history["d_real"].append(torch.sigmoid(real_logits).mean().item())
        history["d_fake"].append(torch.sigmoid(fake_logits).mean().item())
    return history


def generate(G: nn.Module, n: int, labels: torch.Tensor | None = None, *,
             generator: torch.Generator | None = None) -> torch.Tensor:
    """``n`` samples from G in evaluation mode (with ``labels`` (n,) if conditional), on the CPU."""
    check.module("G", G)
    n = check.positive_int("n", n)
    latent_dim = _latent_dim(G)
    device = next(G.parameters()).device
    if labels is not None:
        check.labels("labels", labels)
        check.same_length(labels=labels, samples=range(n))
    z = torch.randn(n, latent_dim, generator=generator).to(device)  # (n, L)
    was_training = G.training
    G.eval()
    with torch.no_grad():
        out = G(z) if labels is None else G(z, labels.to(device))
    G.train(was_training)
    return out.cpu()
