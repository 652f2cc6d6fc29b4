"""The scalar engine (Part 5, "An autodiff engine from scratch") against torch float64."""

from __future__ import annotations

import math
import random

import pytest
import torch

from dlbook.autograd import MLP, Layer, Neuron, Value
from tests.helpers import check_bad_inputs

UNARY = ["tanh", "relu", "exp", "log", "square", "neg", "rpow"]
BINARY = ["add", "sub", "mul", "div", "radd", "rsub", "rmul", "rdiv"]


def _apply(op: str, a, b=None, c: float = 0.0):
    """One operation, written so the same code runs on Value and on torch tensors."""
    if op == "add":
        return a + b
    if op == "sub":
        return a - b
    if op == "mul":
        return a * b
    if op == "div":
        return a / b
    if op == "radd":
        return c + a
    if op == "rsub":
        return c - a
    if op == "rmul":
        return c * a
    if op == "rdiv":
        return c / a
    if op == "tanh":
        return a.tanh()
    if op == "relu":
        return a.relu()
    if op == "exp":
        return a.exp()
    if op == "log":
        return a.log()
    if op == "square":
        return a**2
    if op == "neg":
        return -a
    if op == "rpow":
        return a**1.5
    raise AssertionError(op)


def _random_program(rng: random.Random, n_inputs: int, n_ops: int) -> list[tuple]:
    """A random expression graph: each step combines earlier nodes, so nodes get reused."""
    program = []
    for k in range(n_ops):
        n_nodes = n_inputs + k
        op = rng.choice(UNARY + BINARY)
        program.append((op, rng.randrange(n_nodes), rng.randrange(n_nodes), rng.uniform(-2, 2)))
    return program


def _run(program: list[tuple], inputs: list, safe) -> list:
    nodes = list(inputs)
    for op, i, j, c in program:
        a, b = nodes[i], nodes[j]
        # Keep every op in its domain: log, division and fractional powers get a positive argument.
        if op in ("log", "rpow", "rdiv"):
            a = safe(a)
        if op == "div":
            b = safe(b)
        nodes.append(_apply(op, a, b, c))
    return nodes


def _value_safe(a: Value) -> Value:
    return (a * a + 0.5).tanh() + 0.1  # in (0.56, 1.1)


def _torch_safe(a: torch.Tensor) -> torch.Tensor:
    return (a * a + 0.5).tanh() + 0.1


def _random_case(seed: int) -> tuple[list, list[float]]:
    """A random expression program and input values for it, drawn from ``seed``."""
    rng = random.Random(seed)
    n_inputs = rng.randint(1, 4)
    program = _random_program(rng, n_inputs, rng.randint(3, 25))
    return program, [rng.uniform(-1.5, 1.5) for _ in range(n_inputs)]


@pytest.mark.parametrize("seed", range(60))
def test_random_graphs_match_torch(seed: int) -> None:
    program, xs = _random_case(seed)

    ours = [Value(x) for x in xs]
    out = _run(program, ours, _value_safe)
    # Sum the last few nodes through tanh to keep the output bounded and use many paths.
    loss = sum((n.tanh() for n in out[-3:]), Value(0.0))
    loss.backward()

    ref = [torch.tensor(x, dtype=torch.float64, requires_grad=True) for x in xs]
    ref_out = _run(program, ref, _torch_safe)
    ref_loss = sum(n.tanh() for n in ref_out[-3:])
    ref_loss.backward()

    assert loss.data == pytest.approx(ref_loss.item(), rel=1e-12, abs=1e-12)
    for v, t in zip(ours, ref):
        expected = t.grad.item() if t.grad is not None else 0.0
        assert v.grad == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_value_used_twice_accumulates() -> None:
    a = Value(3.0)
    b = a * a + a  # db/da = 2a + 1
    b.backward()
    assert a.grad == 7.0


def test_reflected_ops() -> None:
    a = Value(2.0)
    out = 1 + 3 * a - 4 / a + (10 - a)  # 1 + 6 - 2 + 8
    out.backward()
    assert out.data == 13.0
    assert a.grad == pytest.approx(3 + 4 / 4 - 1)


def test_long_chain_does_not_overflow_the_stack() -> None:
    x = Value(0.5)
    y = x
    for _ in range(5000):
        y = y * 1.0 + 0.0
    y.backward()
    assert x.grad == 1.0


def test_bad_inputs() -> None:
    net = MLP([2, 3, 1])
    check_bad_inputs([
        (lambda: Value("3"), TypeError, "data"),
        (lambda: Value(True), TypeError, "data"),
        (lambda: Value(None), TypeError, "data"),
        (lambda: Value(float("nan")), ValueError, "data"),
        (lambda: Value(float("inf")), ValueError, "data"),
        (lambda: Value(1.0) + "a", TypeError, "other"),
        (lambda: Value(1.0) * None, TypeError, "other"),
        (lambda: 2 - Value(1.0) - [1.0], TypeError, "other"),
        (lambda: Value(2.0) ** Value(2.0), TypeError, "exponent"),
        (lambda: Value(-1.0).log(), ValueError, "positive"),
        (lambda: MLP([2]), ValueError, "sizes"),
        (lambda: MLP([2, 0]), ValueError, "sizes[1]"),
        (lambda: MLP([2, True]), TypeError, "sizes[1]"),
        (lambda: MLP("21"), TypeError, "sizes"),
        (lambda: MLP([2, 1], seed=-1), ValueError, "seed"),
        (lambda: net([1.0, 2.0, 3.0]), ValueError, "x"),
        (lambda: net(None), TypeError, "x"),
        (lambda: net([1.0, "a"]), TypeError, "x[1]"),
        (lambda: net([1.0, float("nan")]), ValueError, "x[1]"),
        (lambda: net.layers[0]([1.0]), ValueError, "x"),
        (lambda: Neuron(0), ValueError, "n_in"),
        (lambda: Neuron(2.5), TypeError, "n_in"),
        (lambda: Neuron(2, rng=0), TypeError, "rng"),
        (lambda: Layer(2, 0), ValueError, "n_out"),
    ])


@pytest.mark.parametrize("sizes", [[2, 3, 1], [3, 4, 4, 2]])
def test_mlp_gradients_match_torch(sizes: list[int]) -> None:
    net = MLP(sizes, seed=1)
    x = [0.3 * (i + 1) - 0.5 for i in range(sizes[0])]
    out = net(x)
    loss = sum((o * o for o in out), Value(0.0))
    loss.backward()

    # The same network in torch, layer by layer, from the same numbers.
    h = torch.tensor(x, dtype=torch.float64)
    params = []
    for k, layer in enumerate(net.layers):
        f64 = dict(dtype=torch.float64, requires_grad=True)
        W = torch.tensor([[w.data for w in n.w] for n in layer.neurons], **f64)
        b = torch.tensor([n.b.data for n in layer.neurons], **f64)
        params += [W, b]
        h = W @ h + b
        if k < len(net.layers) - 1:
            h = torch.tanh(h)
    (h * h).sum().backward()
    assert loss.data == pytest.approx((h * h).sum().item(), rel=1e-12)
    ours = [p.grad for p in net.parameters()]
    theirs = []
    for W, b in zip(params[::2], params[1::2]):
        for row, bias in zip(W.grad, b.grad):
            theirs += [*row.tolist(), bias.item()]
    assert ours == pytest.approx(theirs, rel=1e-9, abs=1e-12)


@pytest.mark.slow
def test_mlp_learns_xor() -> None:
    net = MLP([2, 6, 1], seed=0)
    X = [[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]]
    y = [-1.0, 1.0, 1.0, -1.0]
    for _ in range(300):
        net.zero_grad()
        loss = sum(((net(x)[0] - t) ** 2 for x, t in zip(X, y)), Value(0.0))
        loss.backward()
        for p in net.parameters():
            p.data -= 0.05 * p.grad
    predictions = [math.copysign(1.0, net(x)[0].data) for x in X]
    assert predictions == y


@pytest.mark.parametrize("seed", range(20))
@pytest.mark.parametrize("n_calls", [2, 3])
def test_repeated_backward_accumulates_leaves_like_torch(seed: int, n_calls: int) -> None:
    """Calling backward k times adds k times the gradient to the leaves, as in torch."""
    program, xs = _random_case(1000 + seed)
    n_inputs = len(xs)

    ours = [Value(x) for x in xs]
    out = _run(program, ours, _value_safe)
    loss = sum((n.tanh() for n in out[-3:]), Value(0.0))
    loss.backward()
    first_leaves = [v.grad for v in ours]
    first_inner = [n.grad for n in out[n_inputs:]]
    for _ in range(n_calls - 1):
        loss.backward()

    ref = [torch.tensor(x, dtype=torch.float64, requires_grad=True) for x in xs]
    ref_loss = sum(n.tanh() for n in _run(program, ref, _torch_safe)[-3:])
    for _ in range(n_calls):
        ref_loss.backward(retain_graph=True)

    for v, t, g1 in zip(ours, ref, first_leaves):
        expected = t.grad.item() if t.grad is not None else 0.0
        assert v.grad == pytest.approx(expected, rel=1e-9, abs=1e-12)
        assert v.grad == pytest.approx(n_calls * g1, rel=1e-12, abs=1e-15)
    # Intermediate gradients describe the last call only: they do not pile up.
    assert [n.grad for n in out[n_inputs:]] == pytest.approx(first_inner, rel=1e-12, abs=1e-15)


def test_backward_twice_on_a_chain_doubles_exactly() -> None:
    # The reviewer's example: without the reset of intermediate grads this gave 5x.
    a, b = Value(0.5), Value(-0.7)
    out = ((a * b).tanh() * 3).exp()
    out.backward()
    g_a, g_b = a.grad, b.grad
    out.backward()
    assert (a.grad, b.grad) == (2 * g_a, 2 * g_b)


def test_backward_from_an_intermediate_then_the_output() -> None:
    # d(y)/da from the first call plus dL/da from the second, exactly as torch adds them.
    a = Value(0.8)
    y = a * a
    loss = y.tanh() * 2
    y.backward()
    loss.backward()
    at = torch.tensor(0.8, dtype=torch.float64, requires_grad=True)
    yt = at * at
    loss_t = yt.tanh() * 2
    yt.backward(retain_graph=True)
    loss_t.backward()
    assert a.grad == pytest.approx(at.grad.item(), rel=1e-12)
    assert y.grad == pytest.approx(2 * (1 - math.tanh(0.64) ** 2), rel=1e-12)


def test_backward_of_a_leaf_accumulates_one() -> None:
    a = Value(4.0)
    a.backward()
    a.backward()
    assert a.grad == 2.0
