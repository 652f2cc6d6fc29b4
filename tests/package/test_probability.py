"""Part 1, "Probability and information": the multivariate Gaussian's density and sampler.

Entropy, cross-entropy and the KL divergences are tested in ``test_foundations.py``.
"""

from __future__ import annotations

import pytest
import torch
from torch.distributions import MultivariateNormal

from dlbook.probability import gaussian_log_density, sample_gaussian
from tests.helpers import check_against_torch, check_bad_inputs

f64 = torch.float64


def _gaussian(D: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    F = torch.randn(D, D, dtype=f64, generator=gen)
    return torch.randn(D, dtype=f64, generator=gen), F @ F.T + 0.3 * torch.eye(D, dtype=f64)


@pytest.mark.parametrize("D", [1, 2, 5])
@pytest.mark.parametrize("batch", [(), (7,), (3, 4)])
def test_log_density_matches_torch_values_and_gradients(D, batch):
    mu, Sigma = _gaussian(D, D)
    x = torch.randn(*batch, D, dtype=f64, generator=torch.Generator().manual_seed(9))
    check_against_torch(
        lambda x, mu: gaussian_log_density(x, mu, Sigma),
        lambda x, mu: MultivariateNormal(mu, covariance_matrix=Sigma).log_prob(x),
        [x, mu],
    )


def test_log_density_of_a_diagonal_gaussian_is_a_sum_of_one_dimensional_ones():
    mu, var = torch.tensor([0.5, -1.0, 2.0], dtype=f64), torch.tensor([0.5, 2.0, 1.5], dtype=f64)
    x = torch.randn(10, 3, dtype=f64, generator=torch.Generator().manual_seed(0))
    by_coordinates = torch.distributions.Normal(mu, var.sqrt()).log_prob(x).sum(-1)
    torch.testing.assert_close(gaussian_log_density(x, mu, torch.diag(var)), by_coordinates)


@pytest.mark.parametrize("seed", range(3))
def test_samples_have_the_mean_covariance_and_entropy(seed):
    mu, Sigma = _gaussian(3, 10 + seed)
    n = 100_000
    x = sample_gaussian(mu, Sigma, n, generator=torch.Generator().manual_seed(seed))
    assert x.shape == (n, 3)
    # standard errors: sqrt(Sigma_ii / n) for a mean, sqrt((Sigma_ii Sigma_jj + Sigma_ij^2) / n)
    diag = torch.diagonal(Sigma)
    assert ((x.mean(0) - mu).abs() < 5 * (diag / n).sqrt()).all()
    cov_se = ((diag[:, None] * diag[None, :] + Sigma**2) / n).sqrt()
    assert ((x.T.cov() - Sigma).abs() < 5 * cov_se).all()
    # E[-log p(x)] is the entropy; -log p(x) has variance D / 2 for a Gaussian
    entropy = MultivariateNormal(mu, covariance_matrix=Sigma).entropy()
    nll = -gaussian_log_density(x, mu, Sigma).mean()
    assert abs(nll - entropy) < 5 * (1.5 / n) ** 0.5


def test_sampling_is_reproducible_and_uses_the_generator():
    mu, Sigma = _gaussian(2, 0)
    a = sample_gaussian(mu, Sigma, 5, generator=torch.Generator().manual_seed(1))
    b = sample_gaussian(mu, Sigma, 5, generator=torch.Generator().manual_seed(1))
    c = sample_gaussian(mu, Sigma, 5, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_bad_inputs_gaussian():
    mu, Sigma = torch.zeros(2, dtype=f64), torch.eye(2, dtype=f64)
    x = torch.zeros(4, 2, dtype=f64)
    check_bad_inputs([
        (lambda: gaussian_log_density(x, torch.zeros(2, 1, dtype=f64), Sigma), ValueError, "mu"),
        (lambda: gaussian_log_density(x, [0.0, 0.0], Sigma), TypeError, "mu"),
        (lambda: gaussian_log_density(x, mu, torch.eye(3, dtype=f64)), ValueError, "Sigma"),
        (lambda: gaussian_log_density(x, mu, torch.tensor([[1.0, 0.5], [0.0, 1.0]], dtype=f64)),
         ValueError, "symmetric"),
        (lambda: gaussian_log_density(x, mu, torch.tensor([[1.0, 2.0], [2.0, 1.0]], dtype=f64)),
         ValueError, "positive definite"),
        (lambda: gaussian_log_density(x, mu, torch.full((2, 2), float("nan"), dtype=f64)),
         ValueError, "Sigma"),
        (lambda: gaussian_log_density(torch.zeros(4, 3, dtype=f64), mu, Sigma), ValueError, "x"),
        (lambda: gaussian_log_density(torch.tensor(0.0, dtype=f64), mu, Sigma), ValueError, "x"),
        (lambda: gaussian_log_density(None, mu, Sigma), TypeError, "x"),
        (lambda: sample_gaussian(mu, Sigma, 0), ValueError, "n"),
        (lambda: sample_gaussian(mu, Sigma, 2.0), TypeError, "n"),
        (lambda: sample_gaussian(mu, -Sigma, 3), ValueError, "positive definite"),
    ])
