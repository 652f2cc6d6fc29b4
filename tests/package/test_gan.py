"""dlbook.gan: the optimal discriminator, the losses and their gradients, mode coverage,
the models' shapes and conditioning, and a short run on the ring."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from dlbook.gan import (ConvDiscriminator, ConvGANConfig, ConvGenerator, GANTrainConfig, MLPDiscriminator,
                        MLPGANConfig, MLPGenerator, discriminator_loss, generate, generator_logit_gradient,
                        generator_loss, mode_coverage, optimal_discriminator, ring_centers, sample_ring,
                        train_gan)
from tests.helpers import check_bad_inputs, check_gradient


def _normal_pdf(x: torch.Tensor, mean: float, std: float) -> torch.Tensor:
    return torch.distributions.Normal(mean, std).log_prob(x).exp()


def test_optimal_discriminator_maximizes_the_value_pointwise():
    # For each x, D -> p_data log D + p_g log(1 - D) is maximized on a fine grid of D values
    # at the same place as the formula: an independent, brute-force oracle.
    x = torch.linspace(-4, 4, 41, dtype=torch.float64)
    p_data, p_g = _normal_pdf(x, 1.0, 0.7), _normal_pdf(x, -0.5, 1.2)
    d = torch.linspace(1e-4, 1 - 1e-4, 20001, dtype=torch.float64)  # (M,)
    value = p_data[:, None] * d.log() + p_g[:, None] * (1 - d).log()  # (N, M)
    brute = d[value.argmax(dim=1)]
    torch.testing.assert_close(optimal_discriminator(p_data, p_g), brute, atol=1e-4, rtol=0)
    assert optimal_discriminator(torch.tensor([2.0, 0.0]), torch.tensor([2.0, 1.0])).tolist() == [0.5, 0.0]


def test_value_at_the_optimum_is_minus_log_four_plus_twice_jensen_shannon():
    x = torch.linspace(-12, 12, 200001, dtype=torch.float64)
    dx = float(x[1] - x[0])
    p_data, p_g = _normal_pdf(x, 1.0, 0.7), _normal_pdf(x, -0.5, 1.2)
    D = optimal_discriminator(p_data, p_g)
    value = ((p_data * D.log() + p_g * (1 - D).log()) * dx).sum()
    m = (p_data + p_g) / 2
    js = 0.5 * ((p_data * (p_data / m).log()) * dx).sum() + 0.5 * ((p_g * (p_g / m).log()) * dx).sum()
    assert math.isclose(value.item(), -math.log(4) + 2 * js.item(), abs_tol=1e-8)
    # equal densities: D* = 1/2 everywhere and the value is -log 4
    assert torch.allclose(optimal_discriminator(p_data, p_data), torch.full_like(p_data, 0.5))


def test_losses_equal_binary_cross_entropy():
    g = torch.Generator().manual_seed(0)
    real, fake = torch.randn(7, generator=g) * 3, torch.randn(5, generator=g) * 3
    for s in (0.0, 0.1, 0.3):
        expected = (F.binary_cross_entropy_with_logits(real, torch.full_like(real, 1 - s))
                    + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake)))
        torch.testing.assert_close(discriminator_loss(real, fake, smoothing=s), expected)
    D = torch.sigmoid(fake)
    torch.testing.assert_close(generator_loss(fake), -D.log().mean())
    torch.testing.assert_close(generator_loss(fake, saturating=True), (1 - D).log().mean())
    # the minimax value: D's loss is -V, G's saturating loss is V's second term
    torch.testing.assert_close(discriminator_loss(real, fake),
                               -(torch.sigmoid(real).log().mean() + (1 - D).log().mean()))


def test_losses_stay_finite_for_extreme_logits():
    big = torch.tensor([-200.0, 200.0])
    for loss in (discriminator_loss(big, big), generator_loss(big), generator_loss(big, saturating=True)):
        assert torch.isfinite(loss)


@pytest.mark.parametrize("saturating", [False, True])
def test_logit_gradient_by_hand_equals_autograd(saturating):
    logits = torch.randn(9, generator=torch.Generator().manual_seed(1)) * 4
    check_gradient(lambda a: generator_loss(a, saturating=saturating),
                   lambda a: generator_logit_gradient(a, saturating=saturating), [logits])


def test_saturating_gradient_vanishes_as_d_goes_to_zero_and_non_saturating_does_not():
    for a in (-2.0, -5.0, -10.0, -20.0):
        logits = torch.tensor([a], dtype=torch.float64, requires_grad=True)
        (sat,) = torch.autograd.grad(generator_loss(logits, saturating=True), logits)
        (non,) = torch.autograd.grad(generator_loss(logits), logits)
        D = math.exp(a) / (1 + math.exp(a))
        assert math.isclose(abs(sat.item()), D, rel_tol=1e-9)
        assert math.isclose(abs(non.item()), 1 - D, rel_tol=1e-9)
    assert abs(sat.item()) < 1e-8 and abs(non.item()) > 0.99


def test_ring_and_mode_coverage_by_hand():
    centers = ring_centers(4, radius=1.0)
    torch.testing.assert_close(centers, torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]]),
                               atol=1e-6, rtol=0)
    # three points at mode 0, one at mode 1, one far from every mode
    samples = torch.tensor([[1.0, 0.0], [1.05, 0.0], [0.95, 0.02], [0.0, 1.2], [0.0, 0.0]])
    cov = mode_coverage(samples, centers, std=0.05, min_count=1)
    assert cov.counts == (3, 0, 0, 0) and cov.modes == 1 and cov.high_quality == pytest.approx(3 / 5)
    cov = mode_coverage(samples, centers, std=0.05, within=3.0, min_count=3)
    assert cov.modes == 1
    cov = mode_coverage(samples, centers, std=0.1, min_count=1)  # within 0.3: (0, 1.2) now counts
    assert cov.counts == (3, 1, 0, 0) and cov.modes == 2 and cov.high_quality == pytest.approx(4 / 5)


def test_samples_from_the_ring_cover_every_mode():
    x = sample_ring(4000, std=0.05, generator=torch.Generator().manual_seed(0))
    cov = mode_coverage(x, ring_centers(), 0.05)
    assert cov.modes == 8 and cov.high_quality > 0.98  # 3 std holds 98.9% of a 2-D Gaussian
    assert min(cov.counts) > 400
    torch.testing.assert_close(x.norm(dim=1).mean(), torch.tensor(2.0), atol=0.01, rtol=0)


def test_models_shapes_and_conditioning():
    mlp = MLPGANConfig(latent_dim=3, hidden=8, spectral_norm=True)
    z = torch.randn(5, 3)
    assert MLPGenerator(mlp)(z).shape == (5, 2)
    D = MLPDiscriminator(mlp)
    assert D(torch.randn(5, 2)).shape == (5,)
    for _ in range(20):  # each training-mode call refines the power-iteration estimate of sigma(W)
        D(torch.randn(5, 2))
    D.eval()
    assert torch.linalg.matrix_norm(D.net[0].weight.detach(), ord=2).item() == pytest.approx(1.0, abs=1e-3)
    conv = ConvGANConfig(latent_dim=4, num_classes=10, width=8)
    G, Dc = ConvGenerator(conv), ConvDiscriminator(conv)
    y = torch.tensor([7, 7, 1])
    images = G(torch.randn(3, 4), y)
    assert images.shape == (3, 1, 8, 8) and bool(((images >= 0) & (images <= 1)).all())
    assert Dc(images, y).shape == (3,)
    # the label matters: the same noise with another label gives another image
    G.eval()
    z = torch.randn(1, 4).expand(2, 4)
    a, b = G(z, torch.tensor([7, 1]))
    assert not torch.allclose(a, b)
    assert generate(G, 3, y, generator=torch.Generator().manual_seed(0)).shape == (3, 1, 8, 8)
    # projection: D's logit is w^T h(x) + e_y^T h(x), so it changes with the label by exactly that term
    x = torch.rand(2, 1, 8, 8)
    h = Dc.features(x)
    difference = Dc(x, torch.tensor([7, 7])) - Dc(x, torch.tensor([1, 1]))
    torch.testing.assert_close(difference, ((Dc.embed.weight[7] - Dc.embed.weight[1]) * h).sum(dim=1))
    assert difference.abs().min() > 0
    uncond = ConvGANConfig(latent_dim=4, width=8)
    assert ConvDiscriminator(uncond)(ConvGenerator(uncond)(torch.randn(2, 4))).shape == (2,)


def _ring_run(steps: int) -> tuple[torch.Tensor, dict]:
    torch.manual_seed(0)
    config = MLPGANConfig(hidden=32)
    G, D = MLPGenerator(config), MLPDiscriminator(config)
    g = torch.Generator().manual_seed(0)
    training = GANTrainConfig(steps=steps, batch_size=128, lr_g=1e-3, lr_d=4e-3)
    history = train_gan(G, D, sample_ring(4000, std=0.1, generator=g), config=training, generator=g)
    return generate(G, 1000, generator=g), history


def test_training_is_deterministic():
    (x, history), (x2, _) = _ring_run(20), _ring_run(20)
    assert torch.equal(x, x2)
    assert len(history["d_loss"]) == 20 and set(history) == {"d_loss", "g_loss", "d_real", "d_fake"}


def test_training_learns_the_ring():
    x, _ = _ring_run(300)
    # an untrained generator puts its samples in a small cloud near the origin, far from every mode
    cov = mode_coverage(x, ring_centers(), 0.1, min_count=10)
    assert cov.modes >= 4 and cov.high_quality > 0.05
    assert x.norm(dim=1).median() == pytest.approx(2.0, abs=0.3)


def test_bad_inputs():
    logits = torch.randn(4)
    mlp = MLPGANConfig()
    G, D = MLPGenerator(mlp), MLPDiscriminator(mlp)
    conv = ConvGANConfig(num_classes=3, width=4)
    Gc, Dc = ConvGenerator(conv), ConvDiscriminator(conv)
    data = torch.randn(10, 2)
    check_bad_inputs([
        (lambda: optimal_discriminator(torch.ones(3), torch.ones(2)), ValueError, "p_g"),
        (lambda: optimal_discriminator(-torch.ones(3), torch.ones(3)), ValueError, "p_data"),
        (lambda: optimal_discriminator(torch.zeros(3), torch.zeros(3)), ValueError, "p_data + p_g"),
        (lambda: optimal_discriminator(torch.ones(3, dtype=torch.long), torch.ones(3)), TypeError, "p_data"),
        (lambda: discriminator_loss(logits[:, None], logits), ValueError, "real_logits"),
        (lambda: discriminator_loss(logits, logits, smoothing=0.5), ValueError, "smoothing"),
        (lambda: discriminator_loss(logits, torch.tensor([float("nan")])), ValueError, "fake_logits"),
        (lambda: generator_loss(logits, saturating=1), TypeError, "saturating"),
        (lambda: generator_loss([0.0, 1.0]), TypeError, "fake_logits"),
        (lambda: generator_logit_gradient(logits[:0]), ValueError, "fake_logits"),
        (lambda: ring_centers(1), ValueError, "modes"),
        (lambda: ring_centers(8, radius=0), ValueError, "radius"),
        (lambda: sample_ring(0), ValueError, "n"),
        (lambda: sample_ring(5, std=-1.0), ValueError, "std"),
        (lambda: mode_coverage(data, torch.randn(8, 3), 0.05), ValueError, "centers"),
        (lambda: mode_coverage(data, ring_centers(), 0.0), ValueError, "std"),
        (lambda: mode_coverage(data, ring_centers(), 0.05, min_count=0), ValueError, "min_count"),
        (lambda: MLPGANConfig(hidden=0), ValueError, "hidden"),
        (lambda: MLPGANConfig(spectral_norm="yes"), TypeError, "spectral_norm"),
        (lambda: ConvGANConfig(num_classes=-1), ValueError, "num_classes"),
        (lambda: GANTrainConfig(lr_d=0.0), ValueError, "lr_d"),
        (lambda: GANTrainConfig(d_steps=0), ValueError, "d_steps"),
        (lambda: GANTrainConfig(betas=(0.5, 1.0)), ValueError, "betas"),
        (lambda: GANTrainConfig(smoothing=0.7), ValueError, "smoothing"),
        (lambda: G(torch.randn(3, 5)), ValueError, "z"),
        (lambda: D(torch.randn(3, 3)), ValueError, "x"),
        (lambda: Gc(torch.randn(2, 16)), ValueError, "y is required"),
        (lambda: Gc(torch.randn(2, 16), torch.tensor([0, 3])), ValueError, "y"),
        (lambda: Gc(torch.randn(2, 16), torch.tensor([0, 1, 2])), ValueError, "same length"),
        (lambda: Dc(torch.rand(2, 1, 28, 28), torch.tensor([0, 1])), ValueError, "x"),
        (lambda: ConvGenerator(ConvGANConfig())(torch.randn(2, 16), torch.tensor([0, 1])), ValueError,
         "unconditional"),
        (lambda: train_gan(G, "D", data), TypeError, "D"),
        (lambda: train_gan(G, D, data, torch.tensor([0, 1])), ValueError, "same length"),
        (lambda: train_gan(G, D, data, config={"steps": 3}), TypeError, "config"),
        (lambda: train_gan(torch.nn.Linear(2, 2), D, data), TypeError, "latent_dim"),
        (lambda: generate(G, 0), ValueError, "n"),
        (lambda: generate(Gc, 2, torch.tensor([0])), ValueError, "same length"),
    ])
