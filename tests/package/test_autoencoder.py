"""dlbook.autoencoder: principal angles, PCA, the linear autoencoder's optimum, corruption,
retrieval precision, reconstruction scores, and autoencoders that learn on held-out data."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg
import torch
import torch.nn.functional as F
from sklearn.decomposition import PCA as SklearnPCA

import dlbook.data
from dlbook.autoencoder import (PCA, Autoencoder, AutoencoderConfig, corrupt, interpolate, pca,
                                precision_at_k, principal_angles, reconstruction_errors,
                                reconstruction_loader)
from dlbook.train import fit
from tests.helpers import check_bad_inputs


@pytest.mark.parametrize("D,p,q", [(5, 1, 1), (8, 3, 3), (10, 4, 2), (10, 2, 4), (6, 6, 3)])
def test_principal_angles_match_scipy(D, p, q):
    g = torch.Generator().manual_seed(D * 10 + p + q)
    A, B = torch.randn(D, p, generator=g, dtype=torch.float64), torch.randn(D, q, generator=g, dtype=torch.float64)
    ours = principal_angles(A, B)
    reference = np.sort(scipy.linalg.subspace_angles(A.numpy(), B.numpy()))
    assert ours.shape == (min(p, q),)
    np.testing.assert_allclose(ours.numpy(), reference, atol=1e-12)
    assert bool((ours[1:] >= ours[:-1]).all())


def test_principal_angles_small_and_right_angles():
    g = torch.Generator().manual_seed(0)
    A = torch.randn(20, 3, generator=g, dtype=torch.float64)
    mixing = torch.randn(3, 3, generator=g, dtype=torch.float64)
    # the same subspace in another basis: every angle is zero, to machine precision (arccos alone gives ~1e-8)
    assert float(principal_angles(A, A @ mixing).max()) < 1e-12
    # tilting one orthonormal basis vector by 1e-6 rad out of the subspace is resolved, as scipy resolves it
    Q, _ = torch.linalg.qr(A)
    normal = torch.randn(20, generator=g, dtype=torch.float64)
    normal -= Q @ (Q.T @ normal)
    tilted = Q.clone()
    tilted[:, 0] = math.cos(1e-6) * Q[:, 0] + math.sin(1e-6) * normal / normal.norm()
    ours = principal_angles(tilted, A)
    np.testing.assert_allclose(ours.numpy(), np.sort(scipy.linalg.subspace_angles(tilted.numpy(), A.numpy())),
                               atol=1e-15, rtol=1e-6)
    assert math.isclose(float(ours.max()), 1e-6, rel_tol=1e-4)
    e = torch.eye(4, dtype=torch.float64)
    torch.testing.assert_close(principal_angles(e[:, :2], e[:, 2:]), torch.full((2,), math.pi / 2, dtype=torch.float64))


def test_pca_matches_sklearn_and_eckart_young():
    X = dlbook.data.digits().train.X.double()  # (N, 64)
    k = 6
    ours = pca(X, k)
    reference = SklearnPCA(k, svd_solver="full").fit(X.numpy())
    cos = (ours.components.T * torch.from_numpy(reference.components_)).sum(dim=1)  # signs are arbitrary
    torch.testing.assert_close(cos.abs(), torch.ones(k, dtype=torch.float64), atol=1e-8, rtol=0)
    N = len(X)
    torch.testing.assert_close(ours.variances, torch.from_numpy(reference.explained_variance_) * (N - 1) / N)
    # the mean squared distance to the subspace is the variance left out, sum_{i > k} lambda_i
    all_variances = pca(X, 64).variances
    residual = ((X - ours.decode(ours.encode(X))) ** 2).sum(dim=1).mean()
    assert math.isclose(float(residual), float(all_variances[k:].sum()), rel_tol=1e-9)
    errors = reconstruction_errors(ours, X)
    assert math.isclose(float(errors.mean()) * 64, float(residual), rel_tol=1e-9)


def test_linear_autoencoder_spans_the_principal_subspace():
    g = torch.Generator().manual_seed(0)
    N, D, k = 400, 12, 3
    # centred low-rank data with variances 9, 4, 1 along three hidden directions, plus a little noise
    # (uncentred data would be learned too, through the biases, but far more slowly)
    basis, _ = torch.linalg.qr(torch.randn(D, k, generator=g))
    X = (torch.randn(N, k, generator=g) * torch.tensor([3.0, 2.0, 1.0])) @ basis.T
    X = X + 0.05 * torch.randn(N, D, generator=g)
    torch.manual_seed(0)
    model = Autoencoder(AutoencoderConfig(D, k, hidden=(), output="linear"))
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-2)
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, 0.85)
    fit(model, reconstruction_loader(X, 20), loss_fn=F.mse_loss, optimizer=optimizer, epochs=30,
        scheduler=scheduler, device="cpu", progress="none")
    W_d = model.decoder[0].weight.detach().double()  # (D, k)
    angles = principal_angles(W_d, pca(X.double(), k).components)
    assert float(angles.max()) < 0.02, angles
    # the span is right, the basis is not the principal one: W_d's columns are not orthonormal
    gram = W_d.T @ W_d
    assert float((gram - torch.eye(k, dtype=torch.float64)).abs().max()) > 0.1
    # and a random k-dimensional decoder would be far off
    assert float(principal_angles(torch.randn(D, k, generator=g), basis).max()) > 0.5


def test_corruption_statistics():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(200, 500, generator=g) + 0.5  # no zero entries: a zero means masked
    for level in (0.1, 0.5):
        noisy = corrupt(x, "mask", level, generator=g)
        masked = (noisy == 0).double()
        # the masked fraction is Binomial(n, level) / n: within 5 standard deviations
        assert abs(float(masked.mean()) - level) < 5 * math.sqrt(level * (1 - level) / x.numel())
        assert torch.equal(noisy[noisy != 0], x[noisy != 0])
        # masking is independent of position: every row loses about the same fraction
        assert float(masked.mean(dim=1).std()) < 3 * math.sqrt(level * (1 - level) / x.shape[1])
    eps = corrupt(x, "gaussian", 0.3, generator=g) - x
    assert abs(float(eps.mean())) < 5 * 0.3 / math.sqrt(x.numel())
    assert abs(float(eps.std()) / 0.3 - 1) < 0.01
    assert torch.equal(corrupt(x, "mask", 0.0), x) and torch.equal(corrupt(x, "gaussian", 0.0), x)
    a = corrupt(x, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, corrupt(x, generator=torch.Generator().manual_seed(1)))


def test_autoencoder_shapes_linear_case_and_denoising_only_in_training():
    x = torch.rand(5, 16, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    deep = Autoencoder(AutoencoderConfig(16, 3, hidden=(8, 4)))
    assert deep.encode(x).shape == (5, 3) and deep(x).shape == (5, 16)
    assert bool(((deep(x) > 0) & (deep(x) < 1)).all())
    linear = Autoencoder(AutoencoderConfig(16, 3, hidden=(), output="linear"))
    (W_e, b_e), (W_d, b_d) = (linear.encoder[0].weight, linear.encoder[0].bias), (linear.decoder[0].weight,
                                                                                 linear.decoder[0].bias)
    # x_hat = W_d (W_e x + b_e) + b_d
    torch.testing.assert_close(linear(x), (x @ W_e.T + b_e) @ W_d.T + b_d)
    denoising = Autoencoder(AutoencoderConfig(16, 3, corruption="mask", corruption_level=0.5))
    denoising.train()
    assert not torch.equal(denoising(x), denoising(x))  # fresh noise at every call
    denoising.eval()
    assert torch.equal(denoising(x), denoising(x))


def test_precision_at_k_against_brute_force():
    g = torch.Generator().manual_seed(0)
    queries, database = torch.randn(30, 4, generator=g), torch.randn(80, 4, generator=g)
    q_labels, d_labels = torch.randint(0, 3, (30,), generator=g), torch.randint(0, 3, (80,), generator=g)
    for k in (1, 5, 80):
        hits = []
        for q, label in zip(queries.numpy(), q_labels.numpy()):
            order = np.argsort(((database.numpy() - q) ** 2).sum(axis=1), kind="stable")[:k]
            hits.append(np.mean(d_labels.numpy()[order] == label))
        assert math.isclose(precision_at_k(queries, q_labels, database, d_labels, k), float(np.mean(hits)),
                            rel_tol=1e-12)
    # with every item in the database, k = N gives the label frequencies, whatever the geometry
    assert math.isclose(precision_at_k(queries, q_labels, database, d_labels, 80),
                        float((d_labels.unsqueeze(0) == q_labels.unsqueeze(1)).double().mean()), rel_tol=1e-12)
    # a query that is in the database finds itself first
    assert precision_at_k(database, d_labels, database, d_labels, 1) == 1.0


def test_reconstruction_errors_and_interpolation():
    torch.manual_seed(0)
    model = Autoencoder(AutoencoderConfig(6, 2, hidden=(5,)))
    model.train()
    x = torch.rand(4, 6, generator=torch.Generator().manual_seed(1))
    errors = reconstruction_errors(model, x)
    model.eval()
    torch.testing.assert_close(errors, ((model(x) - x) ** 2).mean(dim=1))
    path = interpolate(model, x[0], x[1], steps=5)
    assert path.shape == (5, 6)
    with torch.no_grad():
        torch.testing.assert_close(path[[0, -1]], model(x[:2]))
        middle = model.decode((model.encode(x[:1]) + model.encode(x[1:2])) / 2)
    torch.testing.assert_close(path[2:3], middle)


def _digits_autoencoder(corruption: str | None, epochs: int) -> tuple[Autoencoder, torch.Tensor]:
    data = dlbook.data.digits()
    torch.manual_seed(0)
    model = Autoencoder(AutoencoderConfig(64, 8, hidden=(64,), corruption=corruption, corruption_level=0.4))
    fit(model, reconstruction_loader(data.train.X, 32), loss_fn=F.mse_loss, epochs=epochs, device="cpu",
        optimizer=torch.optim.Adam(model.parameters(), lr=3e-3), progress="none")
    return model, data.test.X


def test_deep_autoencoder_learns_and_beats_pca_on_held_out_digits():
    model, X_test = _digits_autoencoder(None, 25)
    ae = float(reconstruction_errors(model, X_test).mean())
    baseline = float(((X_test - X_test.mean(0)) ** 2).mean())
    assert ae < 0.4 * baseline
    linear = float(reconstruction_errors(pca(dlbook.data.digits().train.X, 8), X_test).mean())
    assert ae < linear


@pytest.mark.slow
def test_denoising_autoencoder_removes_masking_noise_better():
    plain, X_test = _digits_autoencoder(None, 25)
    denoising, _ = _digits_autoencoder("mask", 25)
    noisy = corrupt(X_test, "mask", 0.4, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        mse = {name: float(((m.eval()(noisy) - X_test) ** 2).mean()) for name, m in
               [("plain", plain), ("denoising", denoising)]}
    assert mse["denoising"] < 0.8 * mse["plain"]
    assert mse["denoising"] < float(((noisy - X_test) ** 2).mean())


def test_bad_inputs():
    x = torch.rand(4, 6)
    model = Autoencoder(AutoencoderConfig(6, 2, hidden=(3,)))
    basis = torch.randn(6, 2)
    check_bad_inputs([
        (lambda: AutoencoderConfig(0), ValueError, "input_dim"),
        (lambda: AutoencoderConfig(6, code_dim=2.5), TypeError, "code_dim"),
        (lambda: AutoencoderConfig(6, hidden=8), TypeError, "hidden"),
        (lambda: AutoencoderConfig(6, hidden=(8, 0)), ValueError, "hidden[1]"),
        (lambda: AutoencoderConfig(6, output="tanh"), ValueError, "output"),
        (lambda: AutoencoderConfig(6, activation="swish"), ValueError, "activation"),
        (lambda: AutoencoderConfig(6, corruption="blur"), ValueError, "corruption"),
        (lambda: AutoencoderConfig(6, corruption="mask", corruption_level=1.0), ValueError, "level"),
        (lambda: Autoencoder({"input_dim": 6}), TypeError, "config"),
        (lambda: model.encode(torch.rand(4, 5)), ValueError, "x"),
        (lambda: model.decode(torch.rand(4, 3)), ValueError, "z"),
        (lambda: corrupt(x, "mask", 1.5), ValueError, "level"),
        (lambda: corrupt(x, "gaussian", -0.1), ValueError, "level"),
        (lambda: corrupt(x, "salt"), ValueError, "kind"),
        (lambda: corrupt(torch.ones(3, dtype=torch.long)), TypeError, "x"),
        (lambda: pca(x, 5), ValueError, "k"),
        (lambda: pca(x[0], 1), ValueError, "X"),
        (lambda: pca(torch.full((3, 3), float("nan")), 1), ValueError, "X"),
        (lambda: principal_angles(basis, torch.randn(5, 2)), ValueError, "same number of rows"),
        (lambda: principal_angles(torch.randn(2, 3), basis), ValueError, "A"),
        (lambda: principal_angles(basis, torch.ones(6, 2)), ValueError, "linearly independent"),
        (lambda: principal_angles(basis.numpy(), basis), TypeError, "A"),
        (lambda: precision_at_k(x, torch.zeros(4, dtype=torch.long), x[:, :3], torch.zeros(4, dtype=torch.long)),
         ValueError, "database"),
        (lambda: precision_at_k(x, torch.zeros(3, dtype=torch.long), x, torch.zeros(4, dtype=torch.long)),
         ValueError, "same length"),
        (lambda: precision_at_k(x, torch.zeros(4), x, torch.zeros(4, dtype=torch.long)), TypeError, "query_labels"),
        (lambda: precision_at_k(x, torch.zeros(4, dtype=torch.long), x, torch.zeros(4, dtype=torch.long), 5),
         ValueError, "k"),
        (lambda: reconstruction_errors(torch.nn.Linear(6, 6), x), TypeError, "model"),
        (lambda: reconstruction_errors(model, x[:, :5]), ValueError, "x"),
        (lambda: reconstruction_loader(x, 0), ValueError, "batch_size"),
        (lambda: interpolate(model, x[0], x[1], steps=1), ValueError, "steps"),
        (lambda: interpolate(model, x[0], x[1, :5]), ValueError, "x_b"),
    ])
    assert isinstance(pca(x, 2), PCA)
