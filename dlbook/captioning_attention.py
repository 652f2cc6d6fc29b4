"""A caption decoder that looks at the image grid before every word (Part 13, "Captioning with attention").

The LSTM captioner of :mod:`dlbook.captioning` squeezes the image into one
summary vector. :class:`dlbook.captioning.SoftAttentionDecoder` keeps the
encoder's whole grid of ``S = h w`` feature vectors ``a_i`` (the *annotations*)
and, before every word, scores each cell against its state ``h_{t-1}`` with
additive attention (:class:`dlbook.attention.AdditiveAttention`), turns the
scores into weights ``alpha_ti`` over the cells, and feeds their weighted mean,
scaled by a learned gate, to the LSTM with the previous word: the "soft"
attention of Show, Attend and Tell (Xu et al., 2015). It follows
``CaptionDecoder``'s interface, so ``train_captioner``, ``greedy_decode``,
``step_function``, ``decode`` and ``evaluate`` work with it unchanged. This
module adds what the chapter needs beyond decoding: :func:`forward_with_weights`
and :func:`greedy_with_weights` also return the weights of every word, to be
drawn over the image, and :func:`doubly_stochastic_penalty` is the regularizer
that asks every cell to be looked at over the whole caption.
"""

from __future__ import annotations

import torch

from dlbook import _checks as check
from dlbook.captioning import Captioner, SoftAttentionDecoder

__all__ = ["forward_with_weights", "greedy_with_weights", "doubly_stochastic_penalty"]


def _check_model(model: object) -> Captioner:
    """``model`` if it is a ``Captioner`` with a ``SoftAttentionDecoder``."""
    if not isinstance(model, Captioner) or not isinstance(model.decoder, SoftAttentionDecoder):
        raise TypeError(f"model must be a Captioner with a SoftAttentionDecoder, got {check._describe(model)}")
    return model


def _check_tokens(name: str, x: object, vocab_size: int, **sizes: int) -> torch.Tensor:
    """``x`` if it is a (B, T) integer tensor of token ids below ``vocab_size``."""
    x = check.tensor(name, x)
    if x.is_floating_point() or x.is_complex() or x.dtype == torch.bool:
        raise TypeError(f"{name} must hold integer token ids, got {check._describe(x)}")
    check.expect_shape(x, "B T", name, **sizes)
    if int(x.min()) < 0 or int(x.max()) >= vocab_size:
        raise ValueError(f"{name} must hold token ids in [0, {vocab_size}), got [{int(x.min())}, {int(x.max())}]")
    return x


def _check_images(images: object, model: Captioner) -> torch.Tensor:
    """``images`` if they are a floating (B, 3, S, S) batch for ``model``."""
    S = model.config.image_size
    check.expect_shape(images, "B C H W", "images", C=3, H=S, W=S)
    return check.floating("images", images)


def forward_with_weights(model: Captioner, images: torch.Tensor,
                         inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Teacher forcing that keeps the weights: images (B, 3, S, S), inputs (B, T)
    -> logits (B, T, V), weights (B, T, h, w)."""
    model = _check_model(model)
    images = _check_images(images, model)
    _check_tokens("inputs", inputs, model.config.vocab_size, B=images.shape[0])
    features = model.encoder(images)
    state = model.decoder.init_state(features)
    logits, weights = [], []
    for t in range(inputs.shape[1]):
        out, state, alpha = model.decoder.step_with_weights(inputs[:, t], state, features)
        logits.append(out)
        weights.append(alpha)
    B, _, h, w = features.grid.shape
    return torch.stack(logits, dim=1), torch.stack(weights, dim=1).view(B, -1, h, w)


@torch.no_grad()
def greedy_with_weights(model: Captioner, images: torch.Tensor, *,
                        max_len: int) -> tuple[list[list[int]], torch.Tensor]:
    """Greedy captions and where each word looked: token lists (ending with <eos>, or
    ``max_len`` long) and weights (B, max_len, h, w), zero after a caption's <eos>."""
    model = _check_model(model)
    images = _check_images(images, model)
    max_len = check.positive_int("max_len", max_len)
    eos = model.config.eos_index
    model.eval()
    features = model.encoder(images)
    state = model.decoder.init_state(features)
    B, _, h, w = features.grid.shape
    token = torch.full((B,), model.config.bos_index, dtype=torch.long, device=images.device)
    done = torch.zeros(B, dtype=torch.bool, device=images.device)
    tokens, weights = [], torch.zeros(B, max_len, h * w, device=images.device)
    for t in range(max_len):
        logits, state, alpha = model.decoder.step_with_weights(token, state, features)
        weights[:, t] = alpha * ~done.unsqueeze(1)  # (B, L), zero once a caption has ended
        token = logits.argmax(1)  # (B,): y_t = argmax_v p(v | y_<t, image)
        tokens.append(token)
        done = done | (token == eos)
        if bool(done.all()):
            break
    rows = torch.stack(tokens, 1).tolist()  # (B, t)
    captions = [row[: row.index(eos) + 1] if eos in row else row for row in rows]
    return captions, weights.view(B, max_len, h, w)


def doubly_stochastic_penalty(weights: torch.Tensor, mask: torch.Tensor | None = None,
                              strength: float = 1.0) -> torch.Tensor:
    """omega sum_i (1 - sum_t alpha_ti)^2 per caption (Xu et al.'s lambda), averaged over the batch.

    Shapes: weights (B, T, h, w) or (B, T, L), mask (B, T) bool, True at the steps that
    count (words and <eos>, not padding) -> a scalar.
    """
    check.floating("weights", weights)
    if weights.dim() == 4:
        weights = weights.flatten(2)  # (B, T, L)
    sizes = check.expect_shape(weights, "B T L", "weights")
    if mask is not None:
        check.expect_shape(mask, "B T", "mask", B=sizes["B"], T=sizes["T"])
        if mask.dtype != torch.bool:
            raise TypeError(f"mask must be a bool tensor, True at the steps that count, got {mask.dtype}")
        weights = weights * mask.unsqueeze(2)
    strength = check.nonnegative_float("strength", strength)
    # A_i = sum_t alpha_ti: the attention that cell i receives over the whole caption
    total = weights.sum(dim=1)  # (B, L)
    # R = omega sum_i (1 - A_i)^2
    return strength * ((1 - total) ** 2).sum(dim=1).mean()
