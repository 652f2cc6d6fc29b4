"""Entropy, cross-entropy and KL divergence (Part 1, "Probability and information").

Discrete distributions are probability vectors along the last axis. The
Gaussian KL divergence in closed form is used again by the variational
autoencoder (Part 10). The multivariate Gaussian's log density and sampler
both go through the Cholesky factor of the covariance.
"""

from __future__ import annotations

import math

import torch

from dlbook import _checks as check

__all__ = ["entropy", "cross_entropy", "kl_divergence", "gaussian_kl",
           "gaussian_log_density", "sample_gaussian"]


def _distribution(name: str, p: object, atol: float = 1e-6) -> torch.Tensor:
    """``p`` if it holds probability vectors along its last axis (entries >= 0 that sum to 1)."""
    p = check.finite(name, p)
    if p.dim() == 0 or p.numel() == 0:
        raise ValueError(f"{name} must hold probability vectors along its last axis, "
                         f"got shape {tuple(p.shape)}")
    if (p < 0).any():
        raise ValueError(f"{name} has negative entries; a distribution must be >= 0")
    sums = p.sum(dim=-1)
    if not torch.allclose(sums, torch.ones_like(sums), atol=atol):
        got = sums.flatten()[:5].tolist()
        raise ValueError(f"{name} must sum to 1 along the last axis, got sums {got}")
    return p


def _same_shape(**tensors: torch.Tensor) -> None:
    """A ``ValueError`` naming the arguments if their shapes differ."""
    shapes = {name: tuple(t.shape) for name, t in tensors.items()}
    if len(set(shapes.values())) > 1:
        listed = ", ".join(f"{name} {shape}" for name, shape in shapes.items())
        raise ValueError(f"{' and '.join(shapes)} must have the same shape, got {listed}")


def _broadcast(**tensors: torch.Tensor) -> list[torch.Tensor]:
    """Finite tensors broadcast to one shape, with every ``var_*`` > 0."""
    for name, t in tensors.items():
        check.finite(name, t)
        if name.startswith("var") and not bool((t > 0).all()):
            raise ValueError(f"{name} must be > 0 (a variance), "
                             f"got a minimum of {t.min().item():.3g}")
    try:
        return list(torch.broadcast_tensors(*tensors.values()))
    except RuntimeError:
        shapes = ", ".join(f"{name} {tuple(t.shape)}" for name, t in tensors.items())
        names = ", ".join(tensors)
        raise ValueError(f"{names} must broadcast to one shape, got {shapes}") from None


def entropy(p: torch.Tensor) -> torch.Tensor:
    """Shannon entropy in nats, along the last axis: ``(..., K) -> (...)``."""
    p = _distribution("p", p)
    # H(p) = -sum_k p_k log p_k, with 0 log 0 = 0
    return -torch.special.xlogy(p, p).sum(dim=-1)


def cross_entropy(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of ``q`` relative to ``p`` (nats): ``(..., K) -> (...)``."""
    p, q = _distribution("p", p), _distribution("q", q)
    _same_shape(p=p, q=q)
    # H(p, q) = -sum_k p_k log q_k
    return -torch.special.xlogy(p, q).sum(dim=-1)


def kl_divergence(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Kullback-Leibler divergence of ``q`` from ``p`` (nats): ``(..., K) -> (...)``."""
    # KL(p || q) = H(p, q) - H(p) >= 0
    return cross_entropy(p, q) - entropy(p)


def gaussian_kl(
    mu_p: torch.Tensor, var_p: torch.Tensor, mu_q: torch.Tensor, var_q: torch.Tensor
) -> torch.Tensor:
    """``KL(N(mu_p, var_p) || N(mu_q, var_q))`` of diagonal Gaussians, summed over the last axis."""
    mu_p, var_p, mu_q, var_q = _broadcast(mu_p=mu_p, var_p=var_p, mu_q=mu_q, var_q=var_q)
    # KL = 1/2 (log(var_q / var_p) + (var_p + (mu_p - mu_q)^2) / var_q - 1), per coordinate
    terms = torch.log(var_q / var_p) + (var_p + (mu_p - mu_q) ** 2) / var_q - 1
    return 0.5 * terms.sum(dim=-1)



def _mean_and_cholesky(mu: object, Sigma: object) -> tuple[torch.Tensor, torch.Tensor]:
    """``mu``, shape ``(D,)``, and the lower-triangular ``L`` (``(D, D)``, ``L L^T = Sigma``)."""
    D = check.expect_shape(check.finite("mu", mu), "D", "mu")["D"]
    check.expect_shape(check.finite("Sigma", Sigma), "D D", "Sigma", D=D)
    if not torch.allclose(Sigma, Sigma.T):
        raise ValueError("Sigma must be symmetric (a covariance matrix), got Sigma != Sigma^T")
    L, info = torch.linalg.cholesky_ex(Sigma)
    if info.item() != 0:
        raise ValueError("Sigma must be positive definite (a covariance matrix), "
                         "but its Cholesky factorization failed")
    return mu, L


def gaussian_log_density(x: torch.Tensor, mu: torch.Tensor, Sigma: torch.Tensor) -> torch.Tensor:
    """Log density of ``N(mu, Sigma)`` at ``x``: ``(..., D) -> (...)``, ``Sigma`` ``(D, D)``."""
    mu, L = _mean_and_cholesky(mu, Sigma)
    D = mu.shape[0]
    x = check.finite("x", x)
    if x.dim() == 0 or x.shape[-1] != D:
        raise ValueError(f"expected x of shape (..., {D}), got {tuple(x.shape)}")
    diff = (x - mu).reshape(-1, D)  # (M, D), M points
    # w = L^{-1} (x - mu); Sigma^{-1} = L^{-T} L^{-1}, so |w|^2 = (x - mu)^T Sigma^{-1} (x - mu)
    w = torch.linalg.solve_triangular(L, diff.T, upper=False).T  # (D, D) solve (D, M) -> (M, D)
    # log det Sigma = log det(L L^T) = 2 sum_i log L_ii
    log_det = 2 * torch.log(torch.diagonal(L)).sum()
    # log p(x) = -1/2 (D log(2 pi) + log det Sigma + |w|^2)
    log_p = -0.5 * (D * math.log(2 * math.pi) + log_det + (w**2).sum(dim=1))  # (M,)
    return log_p.reshape(x.shape[:-1])


def sample_gaussian(
    mu: torch.Tensor, Sigma: torch.Tensor, n: int, *, generator: torch.Generator | None = None
) -> torch.Tensor:
    """``n`` draws from ``N(mu, Sigma)``, shape ``(n, D)``: ``x = mu + L z``, ``z ~ N(0, I)``."""
    mu, L = _mean_and_cholesky(mu, Sigma)
    n = check.positive_int("n", n)
    z = torch.randn(n, mu.shape[0], dtype=mu.dtype, generator=generator).to(mu.device)  # (n, D)
    # x = mu + L z for every row z: Cov[x] = L I L^T = Sigma
    return mu + z @ L.T  # (n, D) @ (D, D) -> (n, D)
