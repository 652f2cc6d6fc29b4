"""Part 1: linear algebra, calculus and probability — every derivation the pages check."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import Categorical, Normal
from torch.distributions import kl_divergence as torch_kl

from dlbook.calculus import max_relative_error, numerical_gradient, numerical_jacobian
from dlbook.linalg import inverse, lp_norm, solve
from dlbook.probability import cross_entropy, entropy, gaussian_kl, kl_divergence
from tests.helpers import check_against_torch, check_bad_inputs, check_gradient

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
    check_against_torch(solve, torch.linalg.solve, [A, b], grad=False)
    check_against_torch(solve, torch.linalg.solve, [A, B], grad=False)
    check_against_torch(inverse, torch.linalg.inv, [A], grad=False)


def test_solve_needs_pivoting_on_a_tiny_leading_entry():
    A = torch.tensor([[1e-20, 1.0], [1.0, 1.0]], dtype=f64)
    b = torch.tensor([1.0, 2.0], dtype=f64)
    assert torch.allclose(solve(A, b), torch.linalg.solve(A, b), rtol=1e-12)


def test_solve_detects_a_singular_matrix():
    with pytest.raises(ValueError, match="singular"):
        solve(torch.tensor([[1.0, 2.0], [2.0, 4.0]], dtype=f64), torch.ones(2, dtype=f64))


@pytest.mark.parametrize("p", [1.0, 1.5, 2.0, 3.0, float("inf")])
def test_lp_norm_matches_torch(p):
    x = torch.randn(3, 7, dtype=f64, generator=torch.Generator().manual_seed(1))
    check_against_torch(lambda t: lp_norm(t, p), lambda t: torch.linalg.vector_norm(t, ord=p), [x])


def test_bad_inputs_linalg():
    A, b = torch.eye(3, dtype=f64), torch.ones(3, dtype=f64)
    check_bad_inputs([
        (lambda: solve(torch.ones(2, 3), torch.ones(2)), ValueError, "A"),
        (lambda: solve(torch.ones(2, 2, 2), torch.ones(2)), ValueError, "A"),
        (lambda: solve(torch.zeros(0, 0), torch.ones(0)), ValueError, "A"),
        (lambda: solve(torch.eye(2, dtype=torch.long), torch.ones(2)), TypeError, "A"),
        (lambda: solve([[1.0, 0.0], [0.0, 1.0]], torch.ones(2)), TypeError, "A"),
        (lambda: solve(None, b), TypeError, "A"),
        (lambda: solve(A.clone().fill_diagonal_(float("nan")), b), ValueError, "A"),
        (lambda: solve(A, torch.ones(4, dtype=f64)), ValueError, "b"),
        (lambda: solve(A, torch.ones(3, 2, 1, dtype=f64)), ValueError, "b"),
        (lambda: solve(A, [1.0, 1.0, 1.0]), TypeError, "b"),
        (lambda: solve(A, torch.ones(3, dtype=torch.long)), TypeError, "b"),
        (lambda: solve(A, torch.full((3,), float("inf"), dtype=f64)), ValueError, "b"),
        (lambda: solve(A, b, tol=-1.0), ValueError, "tol"),
        (lambda: solve(A, b, tol="small"), TypeError, "tol"),
        (lambda: solve(torch.tensor([[1.0, 2.0], [2.0, 4.0]]), torch.ones(2)),
         ValueError, "A is singular"),
        (lambda: inverse(torch.eye(2, dtype=torch.long)), TypeError, "A"),
        (lambda: inverse(torch.ones(3)), ValueError, "A"),
        (lambda: lp_norm(torch.ones(3), 0.5), ValueError, "p"),
        (lambda: lp_norm(torch.ones(3), float("nan")), ValueError, "p"),
        (lambda: lp_norm(torch.ones(3), "2"), TypeError, "p"),
        (lambda: lp_norm(torch.ones(3), True), TypeError, "p"),
        (lambda: lp_norm([3.0, 4.0]), TypeError, "x"),
        (lambda: lp_norm(torch.ones(0)), ValueError, "x"),
        (lambda: lp_norm(torch.ones(3, dtype=torch.long)), TypeError, "x"),
    ])


# --- calculus ---------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(4))
def test_hand_derived_gradients_match_autograd(seed):
    """The gradients and the chain rule the calculus page derives, as scalar losses."""
    gen = torch.Generator().manual_seed(seed)
    n = 6
    A = torch.randn(n, n, dtype=f64, generator=gen)
    X, y = torch.randn(15, n, dtype=f64, generator=gen), torch.randn(15, dtype=f64, generator=gen)
    x = torch.randn(n, dtype=f64, generator=gen)
    r = torch.randn(n, dtype=f64, generator=gen)  # weighting a Jacobian's rows gives a gradient

    check_gradient(lambda v: v @ A @ v, lambda v: (A + A.T) @ v, [x])  # quadratic form
    check_gradient(lambda v: ((X @ v - y) ** 2).sum(), lambda v: 2 * X.T @ (X @ v - y), [x])

    def softmax_jacobian(z: torch.Tensor) -> torch.Tensor:
        s = torch.softmax(z, 0)
        return torch.diag(s) - torch.outer(s, s)

    check_gradient(lambda z: r @ torch.softmax(z, 0), lambda z: softmax_jacobian(z).T @ r, [x])

    def chain_rule(v: torch.Tensor) -> torch.Tensor:  # J_softmax(t) diag(1 - t^2) A, t = tanh(A v)
        t = torch.tanh(A @ v)
        return softmax_jacobian(t) @ torch.diag(1 - t**2) @ A

    check_gradient(lambda v: r @ torch.softmax(torch.tanh(A @ v), 0),
                   lambda v: chain_rule(v).T @ r, [x])


def test_numerical_derivatives_agree_with_autograd():
    x = torch.randn(5, dtype=f64, generator=torch.Generator().manual_seed(0))

    def f(v):
        return (torch.sin(v) * v.exp()).sum()

    check_gradient(f, lambda v: numerical_gradient(f, v), [x], atol=1e-8, rtol=1e-7)
    jac = torch.autograd.functional.jacobian(torch.tanh, x)
    assert max_relative_error(numerical_jacobian(torch.tanh, x), jac) < 1e-8


def test_a_wrong_gradient_is_caught():
    x = torch.randn(4, dtype=f64)
    wrong = 2 * x + 1e-3  # the gradient of |x|^2, slightly off
    assert max_relative_error(wrong, numerical_gradient(lambda v: (v**2).sum(), x)) > 1e-5


def test_max_relative_error_of_equal_and_empty_tensors():
    x = torch.randn(3, dtype=f64)
    assert max_relative_error(x, x.clone()) == 0.0
    assert max_relative_error(torch.zeros(0), torch.zeros(0)) == 0.0
    assert max_relative_error(torch.tensor([1.0]), torch.tensor([1.1])) == pytest.approx(0.1 / 1.1)


def test_bad_inputs_calculus():
    x = torch.ones(3, dtype=f64)
    check_bad_inputs([
        (lambda: numerical_gradient(lambda v: v.sum(), torch.arange(3)), TypeError, "x"),
        (lambda: numerical_gradient(lambda v: v.sum(), [1.0, 2.0]), TypeError, "x"),
        (lambda: numerical_gradient(lambda v: v.sum(), torch.tensor([1.0, float("nan")])),
         ValueError, "x"),
        (lambda: numerical_gradient(lambda v: v.sum(), x, h=0), ValueError, "h"),
        (lambda: numerical_gradient(lambda v: v.sum(), x, h=-1e-6), ValueError, "h"),
        (lambda: numerical_gradient(lambda v: v.sum(), x, h=None), TypeError, "h"),
        (lambda: numerical_gradient(lambda v: v, x), ValueError, "f"),
        (lambda: numerical_gradient(lambda v: 1.0, x), TypeError, "f(x)"),
        (lambda: numerical_gradient("sum", x), TypeError, "f"),
        (lambda: numerical_jacobian(torch.tanh, torch.ones(2, 2, dtype=f64)), ValueError, "x"),
        (lambda: numerical_jacobian(torch.tanh, torch.ones(0, dtype=f64)), ValueError, "x"),
        (lambda: numerical_jacobian(torch.tanh, x, h=0.0), ValueError, "h"),
        (lambda: numerical_jacobian(lambda v: v.tolist(), x), TypeError, "f(x)"),
        (lambda: max_relative_error(torch.ones(2), torch.ones(3)), ValueError, "a and b"),
        (lambda: max_relative_error([1.0], torch.ones(1)), TypeError, "a"),
        (lambda: max_relative_error(torch.ones(1), None), TypeError, "b"),
        (lambda: max_relative_error(torch.ones(1), torch.ones(1), eps=0.0), ValueError, "eps"),
    ])


# --- probability ------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(5))
def test_discrete_information_quantities_match_torch(seed):
    gen = torch.Generator().manual_seed(seed)
    z1 = torch.randn(3, 6, dtype=f64, generator=gen)
    z2 = torch.randn(3, 6, dtype=f64, generator=gen)
    # Through the softmax, so the gradients with respect to the logits are comparable too.
    check_against_torch(lambda z: entropy(torch.softmax(z, -1)),
                        lambda z: Categorical(logits=z).entropy(), [z1])
    check_against_torch(lambda a, b: kl_divergence(torch.softmax(a, -1), torch.softmax(b, -1)),
                        lambda a, b: torch_kl(Categorical(logits=a), Categorical(logits=b)),
                        [z1, z2])
    p, q = torch.softmax(z1, -1), torch.softmax(z2, -1)
    assert max_relative_error(cross_entropy(p, q), entropy(p) + kl_divergence(p, q)) < 1e-12
    assert (kl_divergence(p, q) >= 0).all() and kl_divergence(p, p).abs().max() < 1e-12


def test_entropy_handles_zero_probabilities():
    assert entropy(torch.tensor([1.0, 0.0])).item() == 0.0
    assert entropy(torch.full((4,), 0.25)).item() == pytest.approx(math.log(4.0))


@pytest.mark.parametrize("seed", range(4))
def test_gaussian_kl_matches_torch_and_monte_carlo(seed):
    gen = torch.Generator().manual_seed(seed)
    mu_p, mu_q = torch.randn(3, dtype=f64, generator=gen), torch.randn(3, dtype=f64, generator=gen)
    var_p = torch.rand(3, dtype=f64, generator=gen) + 0.5
    var_q = torch.rand(3, dtype=f64, generator=gen) + 0.5

    def by_torch(mp, vp, mq, vq):
        return torch_kl(Normal(mp, vp.sqrt()), Normal(mq, vq.sqrt())).sum(-1)

    check_against_torch(gaussian_kl, by_torch, [mu_p, var_p, mu_q, var_q])
    p, q = Normal(mu_p, var_p.sqrt()), Normal(mu_q, var_q.sqrt())
    torch.manual_seed(seed)
    x = p.sample((200_000,))
    monte_carlo = (p.log_prob(x) - q.log_prob(x)).sum(-1).mean()
    assert abs(gaussian_kl(mu_p, var_p, mu_q, var_q).item() - monte_carlo.item()) < 0.02


def test_gaussian_kl_broadcasts():
    mu, var = torch.zeros(4, 3, dtype=f64), torch.ones(4, 3, dtype=f64)
    zero, one = torch.tensor(0.0, dtype=f64), torch.tensor(1.0, dtype=f64)
    assert gaussian_kl(mu, var, zero, one).shape == (4,)


def test_bad_inputs_probability():
    p = torch.tensor([0.5, 0.5])
    one, zero = torch.ones(2), torch.zeros(2)
    check_bad_inputs([
        (lambda: entropy(torch.tensor([0.5, 0.6])), ValueError, "p"),
        (lambda: entropy(torch.tensor([1.5, -0.5])), ValueError, "p"),
        (lambda: entropy(torch.tensor([0.5, float("nan")])), ValueError, "p"),
        (lambda: entropy(torch.tensor(1.0)), ValueError, "p"),
        (lambda: entropy(torch.ones(3, 0)), ValueError, "p"),
        (lambda: entropy([0.5, 0.5]), TypeError, "p"),
        (lambda: entropy(torch.tensor([0, 1])), TypeError, "p"),
        (lambda: cross_entropy(p, torch.tensor([0.2, 0.3, 0.5])), ValueError, "p and q"),
        (lambda: cross_entropy(p, torch.tensor([0.2, 0.3])), ValueError, "q"),
        (lambda: cross_entropy(p, None), TypeError, "q"),
        (lambda: kl_divergence(torch.tensor([0.9, 0.2]), p), ValueError, "p"),
        (lambda: kl_divergence(p, torch.tensor([-0.5, 1.5])), ValueError, "q"),
        (lambda: gaussian_kl(zero, zero, zero, one), ValueError, "var_p"),
        (lambda: gaussian_kl(zero, one, zero, -one), ValueError, "var_q"),
        (lambda: gaussian_kl(zero, one, zero, torch.full((2,), float("inf"))), ValueError, "var_q"),
        (lambda: gaussian_kl(torch.tensor([float("nan"), 0.0]), one, zero, one),
         ValueError, "mu_p"),
        (lambda: gaussian_kl(zero, one, [0.0, 0.0], one), TypeError, "mu_q"),
        (lambda: gaussian_kl(zero, torch.ones(3), zero, one), ValueError, "var_p"),
        (lambda: gaussian_kl(torch.zeros(2, dtype=torch.long), one, zero, one), TypeError, "mu_p"),
    ])
