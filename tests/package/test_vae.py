"""dlbook.vae: the Gaussian KL and the reparameterized sample against their oracles, the ELBO as a
bound on an exact log-likelihood, the two gradient estimators, and a VAE that learns."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import Bernoulli, Independent, MultivariateNormal, Normal, kl_divergence

from dlbook.data import digits
from dlbook.probability import gaussian_kl as general_gaussian_kl
from dlbook.vae import (VAE, LinearGaussian, VAEConfig, gaussian_kl, heldout_elbo, negative_elbo,
                        reparameterization_gradients, reparameterize, score_function_gradients, train_vae)
from tests.helpers import check_bad_inputs, check_gradient


def _mu_logvar(shape, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g, dtype=torch.float64), torch.randn(shape, generator=g, dtype=torch.float64)


@pytest.mark.parametrize("shape", [(1,), (7,), (4, 3), (2, 5, 6)])
def test_gaussian_kl_matches_torch_distributions(shape):
    mu, logvar = _mu_logvar(shape, seed=len(shape) * 10 + shape[-1])
    q = Independent(Normal(mu, torch.exp(0.5 * logvar)), 1)
    p = Independent(Normal(torch.zeros_like(mu), torch.ones_like(mu)), 1)
    ours = gaussian_kl(mu, logvar)
    assert ours.shape == shape[:-1]
    torch.testing.assert_close(ours, kl_divergence(q, p), atol=1e-12, rtol=1e-10)
    # and it is Part 1's general formula with the standard normal as the second argument
    torch.testing.assert_close(ours, general_gaussian_kl(mu, logvar.exp(), torch.zeros_like(mu), torch.ones_like(mu)))


def test_gaussian_kl_matches_monte_carlo_and_is_zero_only_at_the_prior():
    mu, logvar = torch.tensor([0.5, -1.0, 0.0]), torch.tensor([-0.5, 0.3, 0.0])
    q, p = Independent(Normal(mu, torch.exp(0.5 * logvar)), 1), Independent(Normal(0.0, torch.ones(3)), 1)
    z = reparameterize(mu.expand(200_000, 3), logvar.expand(200_000, 3), torch.Generator().manual_seed(0))
    log_ratio = q.log_prob(z) - p.log_prob(z)  # (S,), KL = E_q[log q - log p]
    standard_error = log_ratio.std() / math.sqrt(len(z))
    assert abs(log_ratio.mean() - gaussian_kl(mu, logvar)) < 4 * standard_error
    assert gaussian_kl(torch.zeros(2, 3), torch.zeros(2, 3)).abs().max() == 0
    per_coordinate = gaussian_kl(mu.unsqueeze(-1), logvar.unsqueeze(-1))  # (3,): one KL per coordinate
    assert per_coordinate[2] == 0 and (per_coordinate[:2] > 0.1).all()


@pytest.mark.parametrize("shape", [(3,), (4, 2)])
def test_gaussian_kl_gradient_by_hand(shape):
    mu, logvar = _mu_logvar(shape, seed=3)
    # dKL/dmu = mu, dKL/dlogvar = (exp(logvar) - 1) / 2
    check_gradient(lambda m, lv: gaussian_kl(m, lv).sum(), lambda m, lv: (m, (lv.exp() - 1) / 2), [mu, logvar])


def test_reparameterize_gradients_have_their_closed_forms():
    mu, logvar = _mu_logvar((5, 3), seed=1)
    mu.requires_grad_(True)
    logvar.requires_grad_(True)
    z = reparameterize(mu, logvar, torch.Generator().manual_seed(7))
    eps = torch.randn(5, 3, generator=torch.Generator().manual_seed(7), dtype=torch.float64)  # the same draw
    torch.testing.assert_close(z, mu + torch.exp(logvar / 2) * eps)
    upstream = torch.randn(5, 3, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
    (z * upstream).sum().backward()
    # dz/dmu = 1, dz/dlogvar = eps exp(logvar / 2) / 2
    torch.testing.assert_close(mu.grad, upstream)
    torch.testing.assert_close(logvar.grad, upstream * eps * torch.exp(logvar.detach() / 2) / 2)


def test_reparameterize_has_the_right_statistics():
    mu, logvar = torch.tensor([1.0, -2.0, 0.0]), torch.tensor([0.0, 1.0, -3.0])
    z = reparameterize(mu.expand(100_000, 3), logvar.expand(100_000, 3), torch.Generator().manual_seed(0))
    sigma = torch.exp(logvar / 2)
    assert ((z.mean(0) - mu).abs() < 4 * sigma / math.sqrt(len(z))).all()
    torch.testing.assert_close(z.std(0), sigma, rtol=0.01, atol=0)
    assert abs(torch.corrcoef(z.T)[0, 1]) < 0.02  # independent coordinates


def test_generator_makes_samples_repeatable():
    mu, logvar = torch.zeros(4, 2), torch.zeros(4, 2)
    a = reparameterize(mu, logvar, torch.Generator().manual_seed(3))
    b = reparameterize(mu, logvar, torch.Generator().manual_seed(3))
    c = reparameterize(mu, logvar, torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)
    torch.manual_seed(5)
    d = reparameterize(mu, logvar)
    torch.manual_seed(5)
    assert torch.equal(d, reparameterize(mu, logvar))
    model = VAE(VAEConfig(input_dim=6, hidden=4, latent=2))
    assert torch.equal(model.sample(3, torch.Generator().manual_seed(1)), model.sample(3, torch.Generator().manual_seed(1)))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cpu_generator_with_cuda_tensors():
    mu = torch.zeros(3, 2, device="cuda", requires_grad=True)
    z = reparameterize(mu, torch.zeros(3, 2, device="cuda"), torch.Generator().manual_seed(0))
    assert z.device.type == "cuda"
    torch.testing.assert_close(z.cpu(), torch.randn(3, 2, generator=torch.Generator().manual_seed(0)).detach())


def _linear_gaussian(orthogonal: bool):
    g = torch.Generator().manual_seed(0)
    D, L = 5, 2
    W = torch.randn(D, L, generator=g, dtype=torch.float64)
    if orthogonal:  # orthogonal columns make the exact posterior diagonal
        W = torch.linalg.qr(W).Q * torch.tensor([2.0, 0.7], dtype=torch.float64)
    model = LinearGaussian(W, torch.randn(D, generator=g, dtype=torch.float64), sigma=0.5)
    x = model.W @ torch.randn(L, 4, generator=g, dtype=torch.float64)
    return model, (x.T + model.b + 0.5 * torch.randn(4, D, generator=g, dtype=torch.float64))


def test_elbo_is_below_the_exact_log_likelihood_by_the_kl_to_the_posterior():
    model, x = _linear_gaussian(orthogonal=False)
    g = torch.Generator().manual_seed(1)
    mu, logvar = torch.randn(4, 2, generator=g, dtype=torch.float64), torch.randn(4, 2, generator=g, dtype=torch.float64) - 1
    S = 200_000
    z = reparameterize(mu.expand(S, 4, 2), logvar.expand(S, 4, 2), g)  # (S, B, L)
    log_lik = model.log_likelihood(x, z)  # (S, B)
    elbo = log_lik.mean(0) - gaussian_kl(mu, logvar)  # (B,)
    standard_error = log_lik.std(0) / math.sqrt(S)
    log_px = model.log_marginal(x)
    m, cov = model.posterior(x)
    q = MultivariateNormal(mu, torch.diag_embed(logvar.exp()))
    gap = kl_divergence(q, MultivariateNormal(m, cov))  # log p(x) - ELBO = KL(q(z) || p(z | x))
    assert (elbo < log_px).all() and (gap > 0.05).all()
    assert ((log_px - elbo - gap).abs() < 4 * standard_error).all()
    # the posterior formulas are Bayes' rule: log p(z | x) = log p(x | z) + log p(z) - log p(x)
    z0 = torch.randn(4, 2, generator=g, dtype=torch.float64)
    prior = Independent(Normal(torch.zeros(2, dtype=torch.float64), 1.0), 1)
    torch.testing.assert_close(MultivariateNormal(m, cov).log_prob(z0),
                               model.log_likelihood(x, z0) + prior.log_prob(z0) - log_px)


def test_elbo_is_exact_when_q_is_the_posterior():
    model, x = _linear_gaussian(orthogonal=True)
    m, cov = model.posterior(x)
    assert torch.allclose(cov, torch.diag(torch.diagonal(cov)), atol=1e-12)
    logvar = torch.diagonal(cov).log().expand_as(m)
    z = reparameterize(m.expand(3, 4, 2), logvar.expand(3, 4, 2), torch.Generator().manual_seed(0))
    q = Independent(Normal(m, torch.exp(logvar / 2)), 1)
    prior = Independent(Normal(torch.zeros(2, dtype=torch.float64), 1.0), 1)
    # log p(x, z) - log q(z | x) for each of the 3 samples: no Monte Carlo noise at all
    single_sample = model.log_likelihood(x, z) + prior.log_prob(z) - q.log_prob(z)  # (3, B)
    torch.testing.assert_close(single_sample, model.log_marginal(x).expand(3, 4), atol=1e-9, rtol=0)
    # the analytic-KL form of the same ELBO averages to log p(x), though each sample varies
    log_lik = model.log_likelihood(x, reparameterize(m.expand(100_000, 4, 2), logvar.expand(100_000, 4, 2),
                                                     torch.Generator().manual_seed(1)))  # (S, B)
    error = log_lik.mean(0) - gaussian_kl(m, logvar) - model.log_marginal(x)
    assert (error.abs() < 4 * log_lik.std(0) / math.sqrt(len(log_lik))).all() and (log_lik.std(0) > 0.1).all()


def test_estimators_are_unbiased_and_reparameterization_has_lower_variance():
    def f(z):
        return z.pow(2).sum(-1)

    for D in (1, 4):
        mu, logvar = torch.zeros(D, dtype=torch.float64), torch.zeros(D, dtype=torch.float64)
        rep = reparameterization_gradients(f, mu, logvar, 100_000, generator=torch.Generator().manual_seed(D))
        score = score_function_gradients(f, mu, logvar, 100_000, generator=torch.Generator().manual_seed(D))
        assert rep.shape == score.shape == (100_000, D)
        for est in (rep, score):  # the true gradient 2 mu is 0
            assert (est.mean(0).abs() < 4 * est.std(0) / math.sqrt(len(est))).all()
        # at mu = 0, sigma = 1: Var(2 z_1) = 4 and Var(f(z) z_1) = (D + 2)(D + 4)
        torch.testing.assert_close(rep.var(0), torch.full((D,), 4.0, dtype=torch.float64), rtol=0.03, atol=0)
        torch.testing.assert_close(score.var(0), torch.full((D,), (D + 2.0) * (D + 4), dtype=torch.float64),
                                   rtol=0.1, atol=0)
    mu, logvar = torch.tensor([1.0, -0.5]), torch.tensor([-1.0, 0.5])
    for est in (reparameterization_gradients(f, mu, logvar, 200_000, generator=torch.Generator().manual_seed(0)),
                score_function_gradients(f, mu, logvar, 200_000, generator=torch.Generator().manual_seed(0))):
        assert ((est.mean(0) - 2 * mu).abs() < 4 * est.std(0) / math.sqrt(len(est))).all()


def test_negative_elbo_is_bernoulli_log_likelihood_plus_beta_kl():
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(6, 10, generator=g) > 0.5).float()
    logits, mu, logvar = torch.randn(6, 10, generator=g), torch.randn(6, 3, generator=g), torch.randn(6, 3, generator=g)
    loss, rec, kl = negative_elbo(x, logits, mu, logvar)
    torch.testing.assert_close(rec, -Bernoulli(logits=logits).log_prob(x).sum(1))
    torch.testing.assert_close(kl, gaussian_kl(mu, logvar))
    torch.testing.assert_close(loss, (rec + kl).mean())
    loss3, _, _ = negative_elbo(x, logits, mu, logvar, beta=3.0)
    torch.testing.assert_close(loss3 - loss, 2 * kl.mean())
    assert negative_elbo(x, logits, mu, logvar, beta=0)[0].item() == pytest.approx(rec.mean().item())


def test_vae_shapes_and_the_untrained_bound():
    torch.manual_seed(0)
    model = VAE(VAEConfig(input_dim=12, hidden=8, latent=3))
    x = (torch.rand(5, 12) > 0.5).float()
    logits, mu, logvar = model(x)
    assert logits.shape == (5, 12) and mu.shape == logvar.shape == (5, 3)
    images = model.sample(4)
    assert images.shape == (4, 12) and 0 < images.min() and images.max() < 1
    parts = heldout_elbo(model, x, samples=3)
    assert parts.elbo == pytest.approx(-(parts.reconstruction + parts.kl))
    # an untrained decoder says about 1/2 to every pixel: about log 2 nats per pixel
    assert 0.8 * 12 * math.log(2) < parts.reconstruction < 1.3 * 12 * math.log(2) and parts.kl > 0


def _binary_digits():
    data = digits()
    return (data.train.X > 0.5).float(), (data.test.X > 0.5).float()


def test_training_improves_the_heldout_elbo():
    X_train, X_test = _binary_digits()
    torch.manual_seed(0)
    model = VAE(VAEConfig(input_dim=64, hidden=64, latent=4))
    before = heldout_elbo(model, X_test, generator=torch.Generator().manual_seed(0))
    losses = train_vae(model, X_train, epochs=15, batch_size=64, lr=3e-3, generator=torch.Generator().manual_seed(0))
    after = heldout_elbo(model, X_test, samples=4, generator=torch.Generator().manual_seed(0))
    assert losses[-1] < losses[0] - 8
    assert after.elbo > before.elbo + 10  # from about -64 log 2 = -44 nats
    assert after.kl > 1  # the code is used


@pytest.mark.slow
def test_larger_beta_buys_lower_kl_with_worse_reconstruction():
    X_train, X_test = _binary_digits()
    parts = {}
    for beta in (0.5, 4.0):
        torch.manual_seed(0)
        model = VAE(VAEConfig(input_dim=64, hidden=64, latent=4))
        train_vae(model, X_train, epochs=15, batch_size=64, lr=3e-3, beta=beta, generator=torch.Generator().manual_seed(0))
        parts[beta] = heldout_elbo(model, X_test, samples=4, generator=torch.Generator().manual_seed(0))
    assert parts[4.0].kl < parts[0.5].kl - 2
    assert parts[4.0].reconstruction > parts[0.5].reconstruction + 2


def test_bad_inputs():
    model = VAE(VAEConfig(input_dim=6, hidden=4, latent=2))
    mu, X = torch.zeros(3, 2), torch.rand(5, 6)
    lg = LinearGaussian(torch.ones(3, 2), torch.zeros(3), 1.0)
    f = lambda z: z.sum(-1)  # noqa: E731
    check_bad_inputs([
        (lambda: gaussian_kl(mu, torch.zeros(3, 3)), ValueError, "same shape"),
        (lambda: gaussian_kl([0.0], [0.0]), TypeError, "mu"),
        (lambda: gaussian_kl(mu, torch.zeros(3, 2, dtype=torch.long)), TypeError, "logvar"),
        (lambda: gaussian_kl(torch.tensor(0.0), torch.tensor(0.0)), ValueError, "last"),
        (lambda: reparameterize(mu, torch.zeros(2, 3)), ValueError, "same shape"),
        (lambda: reparameterize(None, mu), TypeError, "mu"),
        (lambda: reparameterize(mu, mu, generator=0), TypeError, "generator"),
        (lambda: VAEConfig(input_dim=0), ValueError, "input_dim"),
        (lambda: VAEConfig(latent=2.0), TypeError, "latent"),
        (lambda: VAE({"latent": 2}), TypeError, "config"),
        (lambda: model.encode(torch.rand(5, 7)), ValueError, "x"),
        (lambda: model.encode(torch.ones(5, 6, dtype=torch.long)), TypeError, "x"),
        (lambda: model.decode(torch.rand(5, 3)), ValueError, "z"),
        (lambda: model.sample(0), ValueError, "n"),
        (lambda: negative_elbo(X, torch.rand(5, 5), torch.zeros(5, 2), torch.zeros(5, 2)), ValueError, "logits"),
        (lambda: negative_elbo(X, X, torch.zeros(4, 2), torch.zeros(4, 2)), ValueError, "mu"),
        (lambda: negative_elbo(X, X, torch.zeros(5, 2), torch.zeros(5, 2), beta=-1), ValueError, "beta"),
        (lambda: heldout_elbo(torch.nn.Linear(6, 6), X), TypeError, "model"),
        (lambda: heldout_elbo(model, X * 2), ValueError, "[0, 1]"),
        (lambda: heldout_elbo(model, X, samples=0), ValueError, "samples"),
        (lambda: train_vae(model, X[:, :5]), ValueError, "X"),
        (lambda: train_vae(model, X, epochs=0), ValueError, "epochs"),
        (lambda: train_vae(model, X, lr=-1.0), ValueError, "lr"),
        (lambda: train_vae(model, X.numpy()), TypeError, "X"),
        (lambda: LinearGaussian(torch.ones(3, 2), torch.zeros(2), 1.0), ValueError, "b"),
        (lambda: LinearGaussian(torch.ones(3, 2), torch.zeros(3), 0.0), ValueError, "sigma"),
        (lambda: lg.log_likelihood(torch.zeros(4, 3), torch.zeros(4, 3)), ValueError, "z"),
        (lambda: lg.log_marginal(torch.zeros(4, 2)), ValueError, "x"),
        (lambda: reparameterization_gradients(f, torch.zeros(2, 2), torch.zeros(2, 2), 10), ValueError, "mu"),
        (lambda: score_function_gradients("f", torch.zeros(2), torch.zeros(2), 10), TypeError, "f"),
        (lambda: score_function_gradients(f, torch.zeros(2), torch.zeros(2), 0), ValueError, "samples"),
    ])
