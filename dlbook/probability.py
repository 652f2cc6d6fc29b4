"""Entropy, cross-entropy and KL divergence (Part 1, "Probability").

Discrete distributions are probability vectors along the last axis. The
Gaussian KL divergence in closed form is used again by the variational
autoencoder (Part 10).
"""

from __future__ import annotations

import torch

__all__ = ["entropy", "cross_entropy", "kl_divergence", "gaussian_kl"]


def _check_distribution(p: torch.Tensor, name: str, atol: float = 1e-6) -> None:
    if not isinstance(p, torch.Tensor) or not p.is_floating_point():
        raise TypeError(f"{name} must be a floating-point torch.Tensor, got {type(p).__name__}")
    if (p < 0).any():
        raise ValueError(f"{name} has negative entries; a distribution must be >= 0")
    sums = p.sum(dim=-1)
    if not torch.allclose(sums, torch.ones_like(sums), atol=atol):
        raise ValueError(f"{name} must sum to 1 along the last axis, got sums {sums.tolist()}")


def entropy(p: torch.Tensor) -> torch.Tensor:
    r"""Shannon entropy :math:`H(p) = -\sum_k p_k \log p_k`, in nats, with :math:`0 \log 0 = 0`."""
    _check_distribution(p, "p")
    return -torch.special.xlogy(p, p).sum(dim=-1)


def cross_entropy(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    r"""Cross-entropy :math:`H(p, q) = -\sum_k p_k \log q_k`: the average code length
    in nats when data from ``p`` is coded with a code built for ``q``."""
    _check_distribution(p, "p")
    _check_distribution(q, "q")
    if p.shape != q.shape:
        raise ValueError(f"p and q must have the same shape, got {tuple(p.shape)} and {tuple(q.shape)}")
    return -torch.special.xlogy(p, q).sum(dim=-1)


def kl_divergence(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    r"""Kullback–Leibler divergence :math:`D_{KL}(p \| q) = H(p, q) - H(p) \ge 0`."""
    return cross_entropy(p, q) - entropy(p)


def gaussian_kl(
    mu_p: torch.Tensor, var_p: torch.Tensor, mu_q: torch.Tensor, var_q: torch.Tensor
) -> torch.Tensor:
    r"""KL divergence between diagonal Gaussians, summed over the last axis.

    .. math::
        D_{KL}(\mathcal N(\mu_p, \sigma_p^2) \| \mathcal N(\mu_q, \sigma_q^2))
        = \tfrac12 \left( \log\frac{\sigma_q^2}{\sigma_p^2}
          + \frac{\sigma_p^2 + (\mu_p - \mu_q)^2}{\sigma_q^2} - 1 \right)
    """
    tensors = torch.broadcast_tensors(mu_p, var_p, mu_q, var_q)
    if (tensors[1] <= 0).any() or (tensors[3] <= 0).any():
        raise ValueError("variances must be > 0")
    mu_p, var_p, mu_q, var_q = tensors
    terms = torch.log(var_q / var_p) + (var_p + (mu_p - mu_q) ** 2) / var_q - 1
    return 0.5 * terms.sum(dim=-1)
