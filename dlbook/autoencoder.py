"""Autoencoders: compression, denoising, retrieval, morphing and anomaly scores
(Part 10, "Autoencoders").

An :class:`Autoencoder` maps an input through a narrow code and back
(``encode``, ``decode``); with no hidden layers and a linear output it is the
linear autoencoder whose optimum spans the principal subspace, which
:func:`pca` computes directly and :func:`principal_angles` compares with a
trained decoder. :func:`corrupt` draws the masking or Gaussian noise of a
denoising autoencoder (the model applies it to its input while training).
:func:`reconstruction_errors` scores inputs for anomaly detection,
:func:`precision_at_k` measures retrieval by nearest neighbours, and
:func:`interpolate` decodes a straight line between two codes.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from dlbook import _checks as check
from dlbook.activations import TORCH_ACTIVATIONS
from dlbook.feedforward import mlp

__all__ = [
    "AutoencoderConfig", "Autoencoder", "PCA", "pca", "principal_angles", "corrupt",
    "reconstruction_loader", "reconstruction_errors", "precision_at_k", "interpolate",
]

CORRUPTIONS = ("mask", "gaussian")
OUTPUTS = ("sigmoid", "linear")


def corrupt(x: torch.Tensor, kind: str = "mask", level: float = 0.25, *,
            generator: torch.Generator | None = None) -> torch.Tensor:
    """A corrupted copy of ``x``: ``"mask"`` zeroes each entry with probability ``level``,
    ``"gaussian"`` adds noise of standard deviation ``level``. Any shape; the noise is drawn
    on the CPU when a (CPU) ``generator`` is given, else on ``x``'s device."""
    x = check.floating("x", x)
    check.one_of("kind", kind, CORRUPTIONS)
    if kind == "mask":
        level = check.fraction("level", level)
    else:
        level = check.nonnegative_float("level", level)
    where = "cpu" if generator is not None else x.device
    if kind == "mask":
        # x~_i = m_i x_i with m_i ~ Bernoulli(1 - level): no rescaling, a deleted pixel is just black
        keep = torch.rand(x.shape, generator=generator, device=where) >= level
        return x * keep.to(x.device, x.dtype)
    # x~ = x + level * eps, eps ~ N(0, I)
    eps = torch.randn(x.shape, generator=generator, device=where, dtype=x.dtype)
    return x + level * eps.to(x.device)


@dataclass
class AutoencoderConfig:
    """Sizes and options of an MLP autoencoder."""

    input_dim: int  # D, the flattened input
    code_dim: int = 32  # k, the width of the code (the bottleneck)
    hidden: tuple[int, ...] = (256,)  # encoder widths between input and code; the decoder mirrors them
    activation: str = "relu"
    output: str = "sigmoid"  # "sigmoid" for pixels in [0, 1], "linear" for any real data
    corruption: str | None = None  # "mask" or "gaussian" makes it a denoising autoencoder
    corruption_level: float = 0.25  # masking probability, or the noise's standard deviation

    def __post_init__(self) -> None:
        self.input_dim = check.positive_int("input_dim", self.input_dim)
        self.code_dim = check.positive_int("code_dim", self.code_dim)
        if isinstance(self.hidden, (str, bytes)) or not isinstance(self.hidden, (tuple, list)):
            raise TypeError(f"hidden must be a tuple of ints (possibly empty), got {self.hidden!r}")
        self.hidden = tuple(check.positive_int(f"hidden[{i}]", h) for i, h in enumerate(self.hidden))
        check.one_of("activation", self.activation, TORCH_ACTIVATIONS)
        check.one_of("output", self.output, OUTPUTS)
        if self.corruption is not None:
            check.one_of("corruption", self.corruption, CORRUPTIONS)
            corrupt(torch.zeros(1), self.corruption, self.corruption_level)  # checks the level


class Autoencoder(nn.Module):
    """Encoder MLP to a k-dimensional code, mirrored decoder back to the input.

    With ``hidden=()`` and ``output="linear"`` it is the linear autoencoder
    x_hat = W_d (W_e x + b_e) + b_d. Shapes: x (B, D) -> code (B, k) -> x_hat (B, D).
    """

    def __init__(self, config: AutoencoderConfig) -> None:
        super().__init__()
        if not isinstance(config, AutoencoderConfig):
            raise TypeError(f"config must be an AutoencoderConfig, got {type(config).__name__}")
        self.config = config
        widths = [config.input_dim, *config.hidden, config.code_dim]
        self.encoder = mlp(widths, config.activation)  # no activation on the code
        self.decoder = mlp(widths[::-1], config.activation)
        if config.output == "sigmoid":
            self.decoder.append(nn.Sigmoid())

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The code z = f(x). (B, D) -> (B, k)."""
        check.expect_shape(x, "B D", "x", D=self.config.input_dim)
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """The reconstruction x_hat = g(z). (B, k) -> (B, D)."""
        check.expect_shape(z, "B k", "z", k=self.config.code_dim)
        return self.decoder(z)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and self.config.corruption is not None:
            # a denoising autoencoder sees a fresh corruption of x at every step,
            # and its loss compares the output with the clean x
            x = corrupt(check.floating("x", x), self.config.corruption, self.config.corruption_level)
        return self.decode(self.encode(x))


@dataclass(frozen=True)
class PCA:
    """The top-k principal subspace of some data, usable like an autoencoder with
    W_e = V_k^T and W_d = V_k. mean (D,), components (D, k) orthonormal columns,
    variances (k,) the data's variance along each."""

    mean: torch.Tensor
    components: torch.Tensor
    variances: torch.Tensor

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Coordinates in the subspace, z = V_k^T (x - mean). (B, D) -> (B, k)."""
        check.expect_shape(x, "B D", "x", D=len(self.mean))
        return (x - self.mean) @ self.components  # (B, D) @ (D, k)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Back to input space, x_hat = mean + V_k z. (B, k) -> (B, D)."""
        check.expect_shape(z, "B k", "z", k=self.components.shape[1])
        return self.mean + z @ self.components.T  # (B, k) @ (k, D)


def pca(X: torch.Tensor, k: int) -> PCA:
    """Principal component analysis of the rows of X (N, D) by the SVD of the centred data."""
    X = check.finite("X", X)
    N, D = check.expect_shape(X, "N D", "X").values()
    k = check.positive_int("k", k)
    if k > min(N, D):
        raise ValueError(f"k must be <= min(N, D) = {min(N, D)} for X of shape {(N, D)}, got {k}")
    mean = X.mean(dim=0)  # (D,)
    # X - mean = U S V^T; the rows of V^T are the principal directions, S_i^2 / N the variances
    _, S, Vh = torch.linalg.svd(X - mean, full_matrices=False)
    return PCA(mean, Vh[:k].T.contiguous(), S[:k] ** 2 / N)


def _orthonormal_basis(name: str, A: object) -> torch.Tensor:
    """An orthonormal basis (D, p) of the span of A's p columns, which must be independent."""
    A = check.finite(name, A)
    D, p = check.expect_shape(A, "D p", name).values()
    if p > D:
        raise ValueError(f"{name} must have no more columns than rows (a basis of a subspace of R^D), "
                         f"got shape {(D, p)}")
    Q, R = torch.linalg.qr(A.double())
    diag = R.diagonal().abs()
    if float(diag.min()) <= 1e-10 * float(diag.max()):
        raise ValueError(f"{name} must have linearly independent columns, got a rank-deficient {(D, p)} matrix")
    return Q


def principal_angles(A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    """The principal angles, in radians and ascending, between the spans of the columns of
    A (D, p) and B (D, q). Returns (min(p, q),) float64."""
    Q_a, Q_b = _orthonormal_basis("A", A), _orthonormal_basis("B", B)
    if Q_a.shape[0] != Q_b.shape[0]:
        raise ValueError(f"A and B must have the same number of rows, got {tuple(A.shape)} and {tuple(B.shape)}")
    if Q_a.shape[1] < Q_b.shape[1]:
        Q_a, Q_b = Q_b, Q_a  # the larger subspace first, so the residual below has min(p, q) columns
    M = Q_a.T @ Q_b  # (p, q)
    # cos(theta_i) are the singular values of Q_a^T Q_b, largest first: angles ascending
    cosines = torch.linalg.svdvals(M)
    # sin(theta_i) are the singular values of (I - Q_a Q_a^T) Q_b, largest first: angles descending
    sines = torch.linalg.svdvals(Q_b - Q_a @ M).flip(0)
    # arccos loses precision near 0 and arcsin near pi/2: take each where it is well conditioned
    small = cosines**2 >= 0.5
    return torch.where(small, torch.arcsin(sines.clamp(max=1.0)), torch.arccos(cosines.clamp(max=1.0)))


def reconstruction_loader(x: torch.Tensor, batch_size: int = 64, *, seed: int = 0) -> DataLoader:
    """Shuffled (input, target) batches with the target the input itself, for ``dlbook.train.fit``."""
    x = check.floating("x", x)
    check.expect_shape(x, "N D", "x")
    batch_size = check.positive_int("batch_size", batch_size)
    generator = torch.Generator().manual_seed(check.nonnegative_int("seed", seed))
    return DataLoader(TensorDataset(x, x), batch_size=batch_size, shuffle=True, generator=generator)


class _Coder(Protocol):
    def encode(self, x: torch.Tensor) -> torch.Tensor: ...
    def decode(self, z: torch.Tensor) -> torch.Tensor: ...


@contextmanager
def _evaluating(model: object) -> Iterator[tuple[torch.device, torch.dtype]]:
    """Inside the block an Autoencoder is in eval mode (a PCA has no mode); yields where its
    tensors live and their dtype."""
    if isinstance(model, PCA):
        yield model.mean.device, model.mean.dtype
        return
    if not (isinstance(model, nn.Module) and callable(getattr(model, "encode", None))):
        raise TypeError(f"model must be an Autoencoder (a module with encode and decode) or a PCA, "
                        f"got {type(model).__name__}")
    was_training = model.training
    model.eval()
    try:
        weight = next(model.parameters())
        yield weight.device, weight.dtype
    finally:
        model.train(was_training)


@torch.no_grad()
def reconstruction_errors(model: _Coder, x: torch.Tensor) -> torch.Tensor:
    """Mean squared error of each example's reconstruction, in eval mode: the anomaly score.
    x (B, D) -> (B,), on x's device."""
    x = check.finite("x", x)
    check.expect_shape(x, "B D", "x")
    with _evaluating(model) as (device, dtype):
        x_in = x.to(device, dtype)
        x_hat = model.decode(model.encode(x_in))  # (B, D)
        # e(x) = (1/D) sum_i (x_i - x_hat_i)^2
        return ((x_in - x_hat) ** 2).mean(dim=1).to(x.device)


def _labelled(name: str, X: object, labels_name: str, labels: object, d: int | None = None) -> int:
    """Check that X is a finite (N, d) tensor with (N,) integer labels; return d."""
    sizes = check.expect_shape(check.finite(name, X), "N d", name, **({} if d is None else {"d": d}))
    check.labels(labels_name, labels)
    check.same_length(**{name: X, labels_name: labels})
    return sizes["d"]


def precision_at_k(queries: torch.Tensor, query_labels: torch.Tensor, database: torch.Tensor,
                   database_labels: torch.Tensor, k: int = 10) -> float:
    """Mean fraction of each query's k nearest database items (Euclidean) that share its label.
    queries (Q, d), query_labels (Q,), database (N, d), database_labels (N,)."""
    d = _labelled("queries", queries, "query_labels", query_labels)
    _labelled("database", database, "database_labels", database_labels, d=d)
    k = check.positive_int("k", k)
    if k > len(database):
        raise ValueError(f"k must be <= the {len(database)} database items, got {k}")
    distances = torch.cdist(queries.double(), database.double().to(queries.device))  # (Q, N)
    nearest = distances.topk(k, dim=1, largest=False).indices.cpu()  # (Q, k) database indices
    hits = database_labels.cpu()[nearest] == query_labels.cpu().unsqueeze(1)  # (Q, k)
    return float(hits.double().mean())


@torch.no_grad()
def interpolate(model: _Coder, x_a: torch.Tensor, x_b: torch.Tensor, steps: int = 8) -> torch.Tensor:
    """Decode evenly spaced points on the segment between the codes of x_a and x_b (both (D,)).
    Returns (steps, D): the first row decodes x_a's code, the last x_b's."""
    steps = check.positive_int("steps", steps, minimum=2)
    x_a, x_b = check.finite("x_a", x_a), check.finite("x_b", x_b)
    D = check.expect_shape(x_a, "D", "x_a")["D"]
    check.expect_shape(x_b, "D", "x_b", D=D)
    with _evaluating(model) as (device, dtype):
        z = model.encode(torch.stack([x_a, x_b]).to(device, dtype))  # (2, k)
        t = torch.linspace(0, 1, steps, device=device, dtype=dtype).unsqueeze(1)  # (steps, 1)
        # z(t) = (1 - t) z_a + t z_b
        path = (1 - t) * z[0] + t * z[1]  # (steps, k)
        return model.decode(path).to(x_a.device)
