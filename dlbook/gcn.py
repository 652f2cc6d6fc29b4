"""Graph matrices, spectral filters and graph convolutional networks
(Part 12, "Graph convolutional networks").

A graph of N nodes is a dense, symmetric, non-negative adjacency matrix A (N, N).
:func:`laplacian` and :func:`graph_fourier_basis` give the matrices and the
spectrum of the chapter "Learning on graphs"; :func:`spectral_filter` filters a
signal exactly in that basis and :func:`chebyshev_filter` approximates it with
Chebyshev polynomials of the Laplacian. :func:`normalized_adjacency` is the
renormalized propagation matrix of Kipf and Welling, :class:`GCNLayer` one layer
and :class:`GCN` the model; :func:`train_node_classifier` trains it on the whole
graph at once. :func:`label_propagation` is the graph-only baseline.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dlbook import _checks as check

__all__ = [
    "laplacian", "graph_fourier_basis", "spectral_filter", "chebyshev_coefficients", "chebyshev_filter",
    "normalized_adjacency", "message_passing", "GCNLayer", "GCNConfig", "GCN", "train_node_classifier",
    "node_accuracy", "label_propagation", "representation_spread",
]


def _adjacency(adjacency: object, name: str = "adjacency") -> torch.Tensor:
    """``adjacency`` if it is a finite, square, floating (N, N) tensor."""
    A = check.finite(name, adjacency)
    check.expect_shape(A, "N N", name)
    if bool((A < 0).any()):
        raise ValueError(f"{name} must be non-negative, got a minimum of {float(A.min())}")
    return A


def _inverse_sqrt(degree: torch.Tensor) -> torch.Tensor:
    """d^(-1/2) where d > 0 and 0 where d = 0 (an isolated node), never inf. (N,)."""
    safe = torch.where(degree > 0, degree, torch.ones_like(degree))
    return torch.where(degree > 0, safe.rsqrt(), torch.zeros_like(degree))


def laplacian(adjacency: torch.Tensor, *, normalized: bool = False) -> torch.Tensor:
    """L = D - A, or I - D^(-1/2) A D^(-1/2) when ``normalized`` (isolated nodes: a zero row). (N, N)."""
    A = _adjacency(adjacency)
    d = A.sum(dim=1)  # (N,) degrees
    if not normalized:
        # L = D - A
        return torch.diag(d) - A
    s = _inverse_sqrt(d)  # (N,)
    # L_sym = I - D^(-1/2) A D^(-1/2); an isolated node has no edges, so its row stays 0
    return torch.diag((d > 0).to(A.dtype)) - s[:, None] * A * s[None, :]


def graph_fourier_basis(adjacency: torch.Tensor, *, normalized: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Eigenvalues (N,) in ascending order and orthonormal eigenvectors (N, N), as columns, of the Laplacian."""
    return torch.linalg.eigh(laplacian(adjacency, normalized=normalized))


def spectral_filter(lap: torch.Tensor, x: torch.Tensor, g: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """Filter the signal ``x`` (N,) or (N, C) exactly: U g(Lambda) U^T x, with L = U Lambda U^T. Same shape as x."""
    lap = check.finite("lap", lap)
    check.expect_shape(lap, "N N", "lap")
    x = check.floating("x", x)
    if x.shape[0] != lap.shape[0]:
        raise ValueError(f"expected x with {lap.shape[0]} rows (one per node), got {tuple(x.shape)}")
    lam, U = torch.linalg.eigh(lap)  # (N,), (N, N)
    # x_hat = U^T x: the signal's graph Fourier coefficients
    x_hat = U.T @ x
    gain = g(lam)  # (N,)
    # y = U g(Lambda) x_hat
    return U @ (gain.reshape(-1, *([1] * (x.dim() - 1))) * x_hat)


def chebyshev_coefficients(g: Callable[[np.ndarray], np.ndarray], order: int, lambda_max: float) -> torch.Tensor:
    """theta_0..theta_K with g(lam) ~ sum_k theta_k T_k(2 lam / lambda_max - 1) on [0, lambda_max]. (K + 1,)."""
    K = check.nonnegative_int("order", order)
    lambda_max = check.positive_float("lambda_max", lambda_max)
    n = K + 1
    # interpolate at the n Chebyshev nodes t_j = cos(pi (j + 1/2) / n) of [-1, 1]
    angles = np.pi * (np.arange(n) + 0.5) / n  # (n,)
    values = np.asarray(g((np.cos(angles) + 1) * lambda_max / 2), dtype=np.float64)  # (n,)
    # theta_k = (2 / n) sum_j g(t_j) cos(k angle_j), theta_0 halved
    theta = 2 / n * np.cos(np.outer(np.arange(n), angles)) @ values  # (n,)
    theta[0] /= 2
    return torch.from_numpy(theta)


def chebyshev_filter(lap: torch.Tensor, x: torch.Tensor, theta: torch.Tensor, lambda_max: float) -> torch.Tensor:
    """sum_k theta_k T_k(L~) x with L~ = 2 L / lambda_max - I, by the recurrence; no eigenvectors. Same shape as x."""
    lap = check.finite("lap", lap)
    N = check.expect_shape(lap, "N N", "lap")["N"]
    x = check.floating("x", x)
    if x.shape[0] != N:
        raise ValueError(f"expected x with {N} rows (one per node), got {tuple(x.shape)}")
    theta = check.floating("theta", theta)
    check.expect_shape(theta, "K", "theta")
    lambda_max = check.positive_float("lambda_max", lambda_max)
    # L~ = 2 L / lambda_max - I has its spectrum in [-1, 1]
    L_t = 2 * lap / lambda_max - torch.eye(N, dtype=lap.dtype, device=lap.device)
    t_prev, t_k = x, L_t @ x  # T_0(L~) x = x, T_1(L~) x = L~ x
    y = theta[0] * t_prev
    for k in range(1, len(theta)):
        y = y + theta[k] * t_k
        # T_{k+1}(L~) x = 2 L~ T_k(L~) x - T_{k-1}(L~) x
        t_prev, t_k = t_k, 2 * L_t @ t_k - t_prev
    return y


def normalized_adjacency(adjacency: torch.Tensor, add_self_loops: bool = True) -> torch.Tensor:
    """A_hat = D~^(-1/2) A~ D~^(-1/2), A~ = A + I (or A); a node of degree 0 gets a zero row and column. (N, N)."""
    A = _adjacency(adjacency)
    if add_self_loops:
        # A~ = A + I (a new tensor: the caller's matrix is never modified)
        A = A + torch.eye(A.shape[0], dtype=A.dtype, device=A.device)
    s = _inverse_sqrt(A.sum(dim=1))  # (N,) d~_i^(-1/2)
    # A_hat_ij = A~_ij / sqrt(d~_i d~_j)
    return s[:, None] * A * s[None, :]


def message_passing(adjacency: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """One GCN aggregation node by node: h'_i = sum_{j in N(i) + i} h_j / sqrt(d~_i d~_j). (N, C) -> (N, C)."""
    A = _adjacency(adjacency)
    N = A.shape[0]
    check.expect_shape(h, "N C", "h", N=N)
    A_tilde = A + torch.eye(N, dtype=A.dtype, device=A.device)  # every node also hears itself
    degree = A_tilde.sum(dim=1)  # (N,) d~_i
    out = torch.zeros_like(h)
    for i in range(N):
        for j in torch.nonzero(A_tilde[i]).flatten().tolist():
            # the message from j to i, weighted by the edge and scaled by 1 / sqrt(d~_i d~_j)
            out[i] += A_tilde[i, j] * h[j] / torch.sqrt(degree[i] * degree[j])
    return out


class GCNLayer(nn.Module):
    """One graph convolution without activation: A_hat X W + b. x (N, in_features) -> (N, out_features)."""

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.in_features = check.positive_int("in_features", in_features)
        self.out_features = check.positive_int("out_features", out_features)
        self.weight = nn.Parameter(torch.empty(self.in_features, self.out_features))  # W (in, out)
        self.bias = nn.Parameter(torch.zeros(self.out_features))  # b (out,)
        # Glorot uniform, as in Kipf and Welling
        bound = math.sqrt(6 / (self.in_features + self.out_features))
        nn.init.uniform_(self.weight, -bound, bound)

    def forward(self, x: torch.Tensor, a_hat: torch.Tensor) -> torch.Tensor:
        N = check.expect_shape(x, "N F", "x", F=self.in_features)["N"]
        check.expect_shape(a_hat, "N N", "a_hat", N=N)
        # H' = A_hat (X W) + b: transform first, the cheaper order when out < in
        return a_hat @ (x @ self.weight) + self.bias  # (N, out)


@dataclass
class GCNConfig:
    """Hyper-parameters of a GCN node classifier."""

    in_features: int
    num_classes: int
    hidden: int = 16
    num_layers: int = 2  # graph convolutions; each one widens the receptive field by one hop
    dropout: float = 0.5  # on the input of every layer, as in Kipf and Welling

    def __post_init__(self) -> None:
        check.positive_int("in_features", self.in_features)
        check.positive_int("num_classes", self.num_classes, minimum=2)
        check.positive_int("hidden", self.hidden)
        check.positive_int("num_layers", self.num_layers)
        check.fraction("dropout", self.dropout)


class GCN(nn.Module):
    """A stack of GCN layers with ReLU between them; logits (N, num_classes) from x (N, F) and a_hat (N, N)."""

    def __init__(self, config: GCNConfig) -> None:
        super().__init__()
        self.config = config
        L = config.num_layers
        sizes = [config.in_features] + [config.hidden] * (L - 1) + [config.num_classes]
        self.layers = nn.ModuleList(GCNLayer(a, b) for a, b in zip(sizes[:-1], sizes[1:]))

    def embed(self, x: torch.Tensor, a_hat: torch.Tensor) -> torch.Tensor:
        """The representation the last layer classifies: H^(L-1), (N, hidden) (x itself for one layer)."""
        h = x
        for layer in self.layers[:-1]:
            # H^(l+1) = ReLU(A_hat H^(l) W^(l) + b^(l))
            h = F.relu(layer(F.dropout(h, self.config.dropout, self.training), a_hat))
        return h

    def forward(self, x: torch.Tensor, a_hat: torch.Tensor) -> torch.Tensor:
        h = F.dropout(self.embed(x, a_hat), self.config.dropout, self.training)
        return self.layers[-1](h, a_hat)  # (N, num_classes) logits


def _mask(name: str, mask: object, N: int) -> torch.Tensor:
    mask = check.tensor(name, mask)
    if mask.dtype != torch.bool:
        raise TypeError(f"{name} must be a bool tensor, got {mask.dtype}")
    check.expect_shape(mask, "N", name, N=N)
    if not bool(mask.any()):
        raise ValueError(f"{name} selects no node: at least one labelled node is needed")
    return mask


def train_node_classifier(
    model: nn.Module,
    x: torch.Tensor,
    a_hat: torch.Tensor,
    labels: torch.Tensor,
    train_mask: torch.Tensor,
    *,
    epochs: int = 200,
    lr: float = 0.01,
    weight_decay: float = 5e-4,
) -> list[float]:
    """Full-graph training: every step sees all N nodes, the loss only the labelled ones. Returns the losses."""
    model = check.module("model", model)
    N = check.expect_shape(x, "N F", "x")["N"]
    check.expect_shape(a_hat, "N N", "a_hat", N=N)
    check.labels("labels", labels)
    check.same_length(x=x, labels=labels)
    train_mask = _mask("train_mask", train_mask, N)
    epochs = check.positive_int("epochs", epochs)
    optimizer = torch.optim.Adam(model.parameters(), lr=check.positive_float("lr", lr),
                                 weight_decay=check.nonnegative_float("weight_decay", weight_decay))
    losses = []
    model.train()
    for _ in range(epochs):
        logits = model(x, a_hat)  # (N, C): the whole graph, every step
        loss = F.cross_entropy(logits[train_mask], labels[train_mask])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    model.eval()
    return losses


def node_accuracy(scores: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor) -> float:
    """Fraction of the nodes in ``mask`` whose highest score is their label. scores (N, C), labels (N,)."""
    N = check.expect_shape(scores, "N C", "scores")["N"]
    check.expect_shape(labels, "N", "labels", N=N)
    mask = _mask("mask", mask, N)
    return (scores.argmax(dim=1)[mask] == labels[mask]).float().mean().item()


def label_propagation(
    adjacency: torch.Tensor,
    labels: torch.Tensor,
    train_mask: torch.Tensor,
    num_classes: int,
    *,
    iterations: int = 200,
    class_mass_normalization: bool = True,
) -> torch.Tensor:
    """Label propagation, F <- D^(-1) A F with labelled rows clamped, then class mass normalization. Scores (N, C)."""
    A = _adjacency(adjacency)
    N = A.shape[0]
    C = check.positive_int("num_classes", num_classes, minimum=2)
    labels = check.labels("labels", labels, C)
    check.expect_shape(labels, "N", "labels", N=N)
    train_mask = _mask("train_mask", train_mask, N)
    iterations = check.positive_int("iterations", iterations)
    # Y: one-hot rows for the labelled nodes, zero rows for the others
    Y = F.one_hot(labels, C).to(A.dtype) * train_mask[:, None]  # (N, C)
    d = A.sum(dim=1, keepdim=True)  # (N, 1)
    P = A / torch.where(d > 0, d, torch.ones_like(d))  # D^(-1) A: row i averages i's neighbours
    scores = Y.clone()
    for _ in range(iterations):
        # F <- P F, then clamp: a labelled node keeps its label
        scores = torch.where(train_mask[:, None], Y, P @ scores)
    if class_mass_normalization:
        # scale class c so its total on the unlabelled nodes is its share q_c of the labelled
        # ones; else the class whose labelled nodes sit most centrally floods the graph
        q = Y.sum(dim=0) / Y.sum()  # (C,)
        mass = scores[~train_mask].sum(dim=0)  # (C,)
        scores = scores * (q / torch.where(mass > 0, mass, torch.ones_like(mass)))
    return scores


def representation_spread(h: torch.Tensor, eps: float = 1e-12) -> float:
    """Mean squared distance of the node directions ``u_i = h_i / ||h_i||`` from their mean: 0 when all align. h (N, D)."""
    check.expect_shape(h, "N D", "h")
    u = h / (h.norm(dim=1, keepdim=True) + eps)  # (N, D) directions (a zero row stays zero)
    # spread = mean_i |u_i - u_bar|^2, which is 1 - |u_bar|^2 when no row is zero
    return float((u - u.mean(dim=0)).pow(2).sum(dim=1).mean())
