"""Entropy, cross-entropy and KL divergence (Part 1, "Probability and information").

Discrete distributions are probability vectors along the last axis. The
Gaussian KL divergence in closed form is used again by the variational
autoencoder (Part 10).
"""

from __future__ import annotations

import torch

from dlbook import _checks as check

__all__ = ["entropy", "cross_entropy", "kl_divergence", "gaussian_kl"]


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

