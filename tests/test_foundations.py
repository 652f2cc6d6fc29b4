"""Part 1: linear algebra, calculus and probability — every derivation the pages check."""

from __future__ import annotations

import pytest
import torch
from torch.distributions import Categorical, Normal
from torch.distributions import kl_divergence as torch_kl

from dlbook.calculus import max_relative_error, numerical_gradient, numerical_jacobian
from dlbook.linalg import inverse, lp_norm, solve
from dlbook.probability import cross_entropy, entropy, gaussian_kl, kl_divergence

f64 = torch.float64


def _well_conditioned(n: int, gen: torch.Generator) -> torch.Tensor:
    return torch.randn(n, n, dtype=f64, generator=gen) + n * torch.eye(n, dtype=f64)


# --- linear algebra ---------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 2, 3, 8, 30])
@pytest.mark.parametrize("seed", range(3))
def test_solve_and_inverse_match_torch_linalg(n, seed):
    gen = torch.Generator().manual_seed(seed)
    A = _well_conditioned(n, gen)
    b = torch.randn(n, dtype=f64, generator=gen)
    B = torch.randn(n, 4, dtype=f64, generator=gen)
    assert max_relative_error(solve(A, b), torch.linalg.solve(A, b)) < 1e-10
    assert max_relative_error(solve(A, B), torch.linalg.solve(A, B)) < 1e-10
    assert max_relative_error(inverse(A), torch.linalg.inv(A)) < 1e-10


def test_solve_needs_pivoting_on_a_tiny_leading_entry():
    A = torch.tensor([[1e-20, 1.0], [1.0, 1.0]], dtype=f64)
    b = torch.tensor([1.0, 2.0], dtype=f64)
    assert torch.allclose(solve(A, b), torch.linalg.solve(A, b), rtol=1e-12)


def test_solve_rejects_singular_and_misshapen_input():
    with pytest.raises(ValueError, match="singular"):
        solve(torch.tensor([[1.0, 2.0], [2.0, 4.0]], dtype=f64), torch.ones(2, dtype=f64))
    with pytest.raises(ValueError, match="square matrix A of shape \\(n, n\\), got \\(2, 3\\)"):
        solve(torch.ones(2, 3), torch.ones(2))
    with pytest.raises(ValueError, match="expected b of shape \\(3,\\)"):
        solve(torch.eye(3), torch.ones(4))
    with pytest.raises(TypeError, match="floating-point"):
        inverse(torch.eye(2, dtype=torch.long))


@pytest.mark.parametrize("p", [1.0, 1.5, 2.0, 3.0, float("inf")])
def test_lp_norm_matches_torch(p):
    x = torch.randn(3, 7, dtype=f64, generator=torch.Generator().manual_seed(1))
    assert max_relative_error(lp_norm(x, p), torch.linalg.vector_norm(x, ord=p)) < 1e-12
    with pytest.raises(ValueError, match="p must be >= 1"):
        lp_norm(x, 0.5)


def test_matrix_product_definition_and_transpose_identity():
    gen = torch.Generator().manual_seed(2)
    A, B = torch.randn(4, 3, dtype=f64, generator=gen), torch.randn(3, 5, dtype=f64, generator=gen)
    by_definition = (A[:, :, None] * B[None, :, :]).sum(dim=1)
    assert max_relative_error(A @ B, by_definition) < 1e-12
    assert max_relative_error((A @ B).T, B.T @ A.T) < 1e-12


# --- calculus ---------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(4))
def test_hand_derived_gradients_match_autograd(seed):
    gen = torch.Generator().manual_seed(seed)
    n = 6
    A = torch.randn(n, n, dtype=f64, generator=gen)
    X, y = torch.randn(15, n, dtype=f64, generator=gen), torch.randn(15, dtype=f64, generator=gen)
    x = torch.randn(n, dtype=f64, generator=gen, requires_grad=True)

    (grad,) = torch.autograd.grad(x @ A @ x, x)
    assert max_relative_error((A + A.T) @ x.detach(), grad) < 1e-12  # quadratic form
    (grad,) = torch.autograd.grad(((X @ x - y) ** 2).sum(), x)
    assert max_relative_error(2 * X.T @ (X @ x.detach() - y), grad) < 1e-12  # least squares

    z = x.detach()
    s = torch.softmax(z, 0)
    jac = torch.autograd.functional.jacobian(lambda v: torch.softmax(v, 0), z)
    assert max_relative_error(torch.diag(s) - torch.outer(s, s), jac) < 1e-12  # softmax Jacobian

    t = torch.tanh(A @ z)  # chain rule: J_{softmax o tanh(A.)} = J_softmax(t) diag(1 - t^2) A
    st = torch.softmax(t, 0)
    hand = (torch.diag(st) - torch.outer(st, st)) @ torch.diag(1 - t**2) @ A
    jac = torch.autograd.functional.jacobian(lambda v: torch.softmax(torch.tanh(A @ v), 0), z)
    assert max_relative_error(hand, jac) < 1e-12


def test_numerical_derivatives_agree_with_autograd():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(5, dtype=f64, generator=gen)

    def f(v):
        return (torch.sin(v) * v.exp()).sum()

    x_req = x.clone().requires_grad_()
    (grad,) = torch.autograd.grad(f(x_req), x_req)
    assert max_relative_error(numerical_gradient(f, x), grad) < 1e-8
    jac = torch.autograd.functional.jacobian(torch.tanh, x)
    assert max_relative_error(numerical_jacobian(torch.tanh, x), jac) < 1e-8


def test_a_wrong_gradient_is_caught():
    x = torch.randn(4, dtype=f64)
    wrong = 2 * x + 1e-3  # the gradient of |x|^2, slightly off
    assert max_relative_error(wrong, numerical_gradient(lambda v: (v**2).sum(), x)) > 1e-5


def test_numerical_derivative_errors():
    with pytest.raises(TypeError, match="floating-point"):
        numerical_gradient(lambda v: v.sum(), torch.arange(3))
    with pytest.raises(ValueError, match="step h must be > 0"):
        numerical_gradient(lambda v: v.sum(), torch.ones(3), h=0)
    with pytest.raises(ValueError, match="scalar"):
        numerical_gradient(lambda v: v, torch.ones(3, dtype=f64))
    with pytest.raises(ValueError, match="cannot compare shapes"):
        max_relative_error(torch.ones(2), torch.ones(3))


# --- probability ------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(5))
def test_discrete_information_quantities_match_torch(seed):
    gen = torch.Generator().manual_seed(seed)
    p = torch.softmax(torch.randn(3, 6, dtype=f64, generator=gen), -1)
    q = torch.softmax(torch.randn(3, 6, dtype=f64, generator=gen), -1)
    assert max_relative_error(entropy(p), Categorical(probs=p).entropy()) < 1e-12
    assert max_relative_error(kl_divergence(p, q), torch_kl(Categorical(probs=p), Categorical(probs=q))) < 1e-10
    assert max_relative_error(cross_entropy(p, q), entropy(p) + kl_divergence(p, q)) < 1e-12
    assert (kl_divergence(p, q) >= 0).all() and kl_divergence(p, p).abs().max() < 1e-12


def test_entropy_handles_zero_probabilities():
    assert entropy(torch.tensor([1.0, 0.0])).item() == 0.0
    assert entropy(torch.full((4,), 0.25)).item() == pytest.approx(torch.log(torch.tensor(4.0)).item())


def test_bernoulli_mle_is_the_fraction_of_ones():
    flips = torch.bernoulli(torch.full((300,), 0.3, dtype=f64), generator=torch.Generator().manual_seed(0))
    # Maximize the log-likelihood numerically over the logit, so pi stays in (0, 1).
    logit = torch.tensor(0.0, dtype=f64, requires_grad=True)
    optimizer = torch.optim.LBFGS([logit], max_iter=100, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        pi = torch.sigmoid(logit)
        nll = -(flips * torch.log(pi) + (1 - flips) * torch.log(1 - pi)).sum()
        nll.backward()
        return nll

    optimizer.step(closure)
    assert torch.sigmoid(logit).item() == pytest.approx(flips.mean().item(), abs=1e-6)


@pytest.mark.parametrize("seed", range(4))
def test_gaussian_kl_matches_torch_and_monte_carlo(seed):
    gen = torch.Generator().manual_seed(seed)
    mu_p, mu_q = torch.randn(3, dtype=f64, generator=gen), torch.randn(3, dtype=f64, generator=gen)
    var_p, var_q = torch.rand(3, dtype=f64, generator=gen) + 0.5, torch.rand(3, dtype=f64, generator=gen) + 0.5
    closed = gaussian_kl(mu_p, var_p, mu_q, var_q)
    reference = torch_kl(Normal(mu_p, var_p.sqrt()), Normal(mu_q, var_q.sqrt())).sum()
    assert max_relative_error(closed, reference) < 1e-12
    p, q = Normal(mu_p, var_p.sqrt()), Normal(mu_q, var_q.sqrt())
    torch.manual_seed(seed)
    x = p.sample((200_000,))
    monte_carlo = (p.log_prob(x) - q.log_prob(x)).sum(-1).mean()
    assert abs(closed.item() - monte_carlo.item()) < 0.02


def test_probability_errors():
    with pytest.raises(ValueError, match="sum to 1"):
        entropy(torch.tensor([0.5, 0.6]))
    with pytest.raises(ValueError, match="negative"):
        entropy(torch.tensor([1.5, -0.5]))
    with pytest.raises(ValueError, match="same shape"):
        cross_entropy(torch.tensor([0.5, 0.5]), torch.tensor([0.2, 0.3, 0.5]))
    with pytest.raises(ValueError, match="variances must be > 0"):
        gaussian_kl(torch.zeros(2), torch.zeros(2), torch.zeros(2), torch.ones(2))
