"""dlbook.gcn: graph matrices against scipy, spectral filters, the GCN layer and model, the baselines."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse.csgraph as csgraph
import torch

import dlbook
from dlbook.data import citation_graph, labelled_nodes
from dlbook.gcn import (GCN, GCNConfig, GCNLayer, chebyshev_coefficients, chebyshev_filter, graph_fourier_basis,
                        label_propagation, laplacian, message_passing, node_accuracy, normalized_adjacency,
                        representation_spread, spectral_filter, train_node_classifier)
from tests.helpers import check_bad_inputs


def random_graph(N: int, p: float, seed: int, isolated: int = 2) -> torch.Tensor:
    """A random symmetric weighted adjacency (float64) whose first ``isolated`` nodes have no edge."""
    g = torch.Generator().manual_seed(seed)
    W = torch.rand(N, N, generator=g, dtype=torch.float64) * (torch.rand(N, N, generator=g) < p)
    A = torch.triu(W, diagonal=1)
    A = A + A.T
    A[:isolated] = 0
    A[:, :isolated] = 0
    return A


@pytest.mark.parametrize("N,p,seed", [(1, 0.5, 0), (6, 0.5, 1), (20, 0.2, 2), (40, 0.05, 3)])
def test_normalized_adjacency_against_the_formula_and_scipy(N, p, seed):
    A = random_graph(N, p, seed, isolated=min(2, N))
    before = A.clone()
    # without self-loops: I - A_hat is scipy's normalized Laplacian (its isolated nodes have a 0 diagonal)
    A_hat = normalized_adjacency(A, add_self_loops=False)
    L_scipy = torch.from_numpy(csgraph.laplacian(A.numpy(), normed=True))
    has_edges = torch.diag((A.sum(1) > 0).double())
    torch.testing.assert_close(has_edges - A_hat, L_scipy)
    torch.testing.assert_close(laplacian(A, normalized=True), L_scipy)
    torch.testing.assert_close(laplacian(A), torch.from_numpy(csgraph.laplacian(A.numpy())))
    # with self-loops, against the dense formula with an explicit inverse square root
    A_tilde = A + torch.eye(N, dtype=A.dtype)
    D_inv_sqrt = torch.diag(A_tilde.sum(1) ** -0.5)
    torch.testing.assert_close(normalized_adjacency(A), D_inv_sqrt @ A_tilde @ D_inv_sqrt)
    assert torch.equal(A, before), "the input must not be modified"


def test_isolated_nodes_get_zero_rows_never_nan():
    A = random_graph(8, 0.6, 0, isolated=3)
    A_hat = normalized_adjacency(A, add_self_loops=False)
    assert torch.isfinite(A_hat).all()
    assert (A_hat[:3] == 0).all() and (A_hat[:, :3] == 0).all()
    assert A_hat[3:].abs().sum() > 0
    # with self-loops an isolated node keeps its own feature: A_hat_ii = 1 / 1
    assert torch.equal(torch.diag(normalized_adjacency(A))[:3], torch.ones(3, dtype=A.dtype))


def test_renormalized_spectrum_lies_in_minus_one_one():
    A = random_graph(30, 0.3, 4, isolated=0)
    lam = torch.linalg.eigvalsh(normalized_adjacency(A))
    assert lam.max() <= 1 + 1e-10 and lam.min() > -1
    assert abs(lam.max().item() - 1) < 1e-10  # the eigenvector D~^(1/2) 1 of every connected component


def test_message_passing_equals_the_matrix_form():
    A = random_graph(12, 0.4, 5)
    A[3, 3] = 0.5  # an existing self-loop adds to the one A~ = A + I inserts
    h = torch.randn(12, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(message_passing(A, h), normalized_adjacency(A) @ h)


def test_fourier_basis_of_a_cycle_is_the_discrete_fourier_basis():
    N = 12
    A = torch.zeros(N, N, dtype=torch.float64)
    idx = torch.arange(N)
    A[idx, (idx + 1) % N] = A[(idx + 1) % N, idx] = 1
    lam, U = graph_fourier_basis(A)
    expected = torch.sort(2 - 2 * torch.cos(2 * torch.pi * idx.double() / N)).values
    torch.testing.assert_close(lam, expected)
    torch.testing.assert_close(U.T @ U, torch.eye(N, dtype=torch.float64))
    # the Rayleigh quotient x^T L x of each unit eigenvector is its eigenvalue, the sum of (x_i - x_j)^2 over edges
    energy = ((U[idx] - U[(idx + 1) % N]) ** 2).sum(0)
    torch.testing.assert_close(energy, lam)


@pytest.mark.parametrize("order", [2, 5, 10, 20])
def test_chebyshev_filter_approaches_the_exact_spectral_filter(order):
    A = random_graph(25, 0.3, 6, isolated=1)
    L = laplacian(A, normalized=True)
    x = torch.randn(25, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    theta = chebyshev_coefficients(lambda lam: np.exp(-2 * lam), order, 2.0)
    exact = spectral_filter(L, x, lambda lam: torch.exp(-2 * lam))
    approx = chebyshev_filter(L, x, theta, 2.0)
    # the polynomial's worst error on [0, 2] bounds the filter's error: |U (g - p)(Lambda) U^T x| <= sup|g - p| |x|
    grid = np.linspace(0, 2, 2001)
    p = np.polynomial.chebyshev.chebval(grid - 1, theta.numpy())
    sup = np.abs(np.exp(-2 * grid) - p).max()
    assert (approx - exact).norm().item() <= sup * x.norm().item() * (1 + 1e-6) + 1e-13
    # and Chebyshev interpolation of an analytic function converges geometrically
    assert sup < {2: 0.1, 5: 1e-3, 10: 1e-8, 20: 1e-14}[order]


def test_chebyshev_coefficients_match_numpy_and_polynomials_are_exact():
    f = lambda lam: np.cos(3 * lam) + lam ** 2  # noqa: E731
    ours = chebyshev_coefficients(f, 10, 2.0).numpy()
    reference = np.polynomial.chebyshev.chebinterpolate(lambda t: f(t + 1), 10)
    np.testing.assert_allclose(ours, reference, atol=1e-12)
    # a degree-2 polynomial of L is reproduced exactly from order 2 on
    A = random_graph(10, 0.5, 7, isolated=0)
    L = laplacian(A, normalized=True)
    x = torch.randn(10, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    theta = chebyshev_coefficients(lambda lam: 1 - lam + 0.5 * lam ** 2, 2, 2.0)
    torch.testing.assert_close(chebyshev_filter(L, x, theta, 2.0), x - L @ x + 0.5 * L @ (L @ x))


def test_gcn_layer_is_a_hat_x_w_plus_b_and_permutation_equivariant():
    torch.manual_seed(0)
    layer = GCNLayer(5, 3).double()
    A = random_graph(9, 0.4, 8)
    A_hat = normalized_adjacency(A)
    x = torch.randn(9, 5, dtype=torch.float64)
    torch.testing.assert_close(layer(x, A_hat), A_hat @ x @ layer.weight + layer.bias)
    perm = torch.randperm(9)
    P = torch.eye(9, dtype=torch.float64)[perm]
    # f(P A P^T, P X) = P f(A, X)
    torch.testing.assert_close(layer(P @ x, normalized_adjacency(P @ A @ P.T)), P @ layer(x, A_hat))
    # and it is not invariant to a permutation of the nodes that leaves the features behind
    assert not torch.allclose(layer(x, normalized_adjacency(P @ A @ P.T)), layer(x, A_hat))


def test_gcn_model_is_permutation_equivariant():
    torch.manual_seed(0)
    model = GCN(GCNConfig(6, 3, hidden=8, num_layers=3)).double().eval()
    A = random_graph(15, 0.3, 9)
    x = torch.randn(15, 6, dtype=torch.float64)
    perm = torch.randperm(15)
    out = model(x, normalized_adjacency(A))
    torch.testing.assert_close(model(x[perm], normalized_adjacency(A[perm][:, perm])), out[perm])
    assert out.shape == (15, 3) and model.embed(x, normalized_adjacency(A)).shape == (15, 8)


def test_gcn_learns_the_citation_graph_from_few_labels():
    g = citation_graph(300, 3, seed=1)
    mask = labelled_nodes(g.labels, 5, seed=0)
    dlbook.seed(0)
    model = GCN(GCNConfig(g.features.shape[1], 3))
    losses = train_node_classifier(model, g.features, normalized_adjacency(g.adjacency), g.labels, mask, epochs=60)
    with torch.no_grad():
        acc = node_accuracy(model(g.features, normalized_adjacency(g.adjacency)), g.labels, ~mask)
    assert losses[-1] < 0.5 * losses[0]
    assert acc > 0.7, f"held-out accuracy {acc:.2f}; chance is 0.33"


def test_label_propagation_harmonic_and_clamped():
    # a path 0 - 1 - 2 - 3 with the ends labelled: the middle nodes get the harmonic (linear) interpolation
    A = torch.zeros(4, 4)
    A[[0, 1, 2], [1, 2, 3]] = 1
    A = A + A.T
    y = torch.tensor([0, 0, 1, 1])
    mask = torch.tensor([True, False, False, True])
    F = label_propagation(A, y, mask, 2, iterations=500, class_mass_normalization=False)
    torch.testing.assert_close(F[1:3], torch.tensor([[2 / 3, 1 / 3], [1 / 3, 2 / 3]]))
    assert F[0].tolist() == [1, 0] and F[3].tolist() == [0, 1]
    assert node_accuracy(label_propagation(A, y, mask, 2), y, ~mask) == 1.0


def test_representation_spread():
    assert representation_spread(torch.ones(5, 3)) == pytest.approx(0.0, abs=1e-12)
    assert representation_spread(torch.eye(4)) == pytest.approx(0.75)  # 1 - |(1/4) 1|^2
    assert representation_spread(torch.tensor([[2.0, 0.0], [0.5, 0.0]])) == pytest.approx(0.0, abs=1e-12)


def test_bad_inputs():
    A = random_graph(5, 0.9, 0, isolated=1)
    assert A.sum() > 0
    layer = GCNLayer(3, 2)
    y = torch.zeros(5, dtype=torch.long)
    mask = torch.ones(5, dtype=torch.bool)
    model = GCN(GCNConfig(3, 2))
    check_bad_inputs([
        (lambda: normalized_adjacency(torch.ones(3, 4)), ValueError, "adjacency"),
        (lambda: normalized_adjacency(-A), ValueError, "non-negative"),
        (lambda: normalized_adjacency(torch.ones(2, 2, dtype=torch.long)), TypeError, "adjacency"),
        (lambda: normalized_adjacency([[0.0, 1.0], [1.0, 0.0]]), TypeError, "adjacency"),
        (lambda: laplacian(torch.ones(3)), ValueError, "adjacency"),
        (lambda: GCNLayer(0, 2), ValueError, "in_features"),
        (lambda: layer(torch.ones(5, 4), torch.eye(5)), ValueError, "x"),
        (lambda: layer(torch.ones(5, 3), torch.eye(4)), ValueError, "a_hat"),
        (lambda: GCN(GCNConfig(3, 1)), ValueError, "num_classes"),
        (lambda: GCN(GCNConfig(3, 2, dropout=1.0)), ValueError, "dropout"),
        (lambda: train_node_classifier(model, torch.ones(5, 3), torch.eye(5), y, mask[:4]), ValueError, "train_mask"),
        (lambda: train_node_classifier(model, torch.ones(5, 3), torch.eye(5), y, ~mask), ValueError, "train_mask"),
        (lambda: train_node_classifier(model, torch.ones(5, 3), torch.eye(5), y.float(), mask), TypeError, "labels"),
        (lambda: train_node_classifier(model, torch.ones(5, 3), torch.eye(5), y, mask, epochs=0), ValueError,
         "epochs"),
        (lambda: label_propagation(A, y, mask.long(), 2), TypeError, "train_mask"),
        (lambda: label_propagation(A, y + 2, mask, 2), ValueError, "labels"),
        (lambda: chebyshev_filter(laplacian(A), torch.ones(4), torch.ones(3), 2.0), ValueError, "x"),
        (lambda: chebyshev_filter(laplacian(A), torch.ones(5), torch.ones(3), 0.0), ValueError, "lambda_max"),
        (lambda: chebyshev_coefficients(np.exp, -1, 2.0), ValueError, "order"),
        (lambda: spectral_filter(laplacian(A), torch.ones(4), torch.exp), ValueError, "x"),
    ])
