"""A scalar reverse-mode autodiff engine (Part 5, "An autodiff engine from scratch").

A ``Value`` wraps one Python float. Every operation returns a new ``Value`` that
remembers its parents and a small ``_backward`` closure holding the local derivatives.
``Value.backward`` orders the graph topologically and runs those closures from the
output back to the inputs. Each closure *adds* into its parents' ``grad``, because a
value used twice receives gradient along both paths. ``Neuron``, ``Layer`` and ``MLP``
build a tiny network on top.

>>> a, b = Value(2.0), Value(-3.0)
>>> c = a * b + a
>>> c.backward()
>>> c.data, a.grad, b.grad
(-4.0, -2.0, 2.0)
>>> len(MLP([2, 4, 1], seed=0).parameters())
17

Leaf gradients accumulate across calls to ``backward``, as in PyTorch:

>>> a = Value(2.0)
>>> y = (a * a).tanh()
>>> y.backward(); first = a.grad
>>> y.backward()
>>> a.grad == 2 * first
True
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence

from dlbook import _checks as check
from dlbook.feedforward import _widths

__all__ = ["Value", "Neuron", "Layer", "MLP"]

Number = int | float


class Value:
    """A scalar that records how it was computed, so that it can be differentiated."""

    __slots__ = ("data", "grad", "_backward", "_parents", "op")

    def __init__(self, data: Number, parents: tuple[Value, ...] = (), op: str = "") -> None:
        self.data = _number("data", data)
        self.grad = 0.0
        self._backward: Callable[[], None] = lambda: None
        self._parents = parents
        self.op = op

    def __repr__(self) -> str:
        return f"Value(data={self.data:.6g}, grad={self.grad:.6g})"

    @staticmethod
    def _lift(other: Value | Number) -> Value:
        if isinstance(other, Value):
            return other
        return Value(_number("other", other))

    def __add__(self, other: Value | Number) -> Value:
        other = self._lift(other)
        out = Value(self.data + other.data, (self, other), "+")

        def _backward() -> None:
            # d(a + b)/da = d(a + b)/db = 1
            self.grad += out.grad
            other.grad += out.grad

        out._backward = _backward
        return out

    def __mul__(self, other: Value | Number) -> Value:
        other = self._lift(other)
        out = Value(self.data * other.data, (self, other), "*")

        def _backward() -> None:
            # d(ab)/da = b, d(ab)/db = a
            self.grad += other.data * out.grad
            other.grad += self.data * out.grad

        out._backward = _backward
        return out

    def __pow__(self, exponent: Number) -> Value:
        exponent = _number("exponent", exponent)  # a constant: d/dp is not tracked
        out = Value(self.data**exponent, (self,), f"**{exponent:g}")

        def _backward() -> None:
            # d(a^p)/da = p a^(p-1)
            self.grad += exponent * self.data ** (exponent - 1) * out.grad

        out._backward = _backward
        return out

    def exp(self) -> Value:
        """e^a."""
        out = Value(math.exp(self.data), (self,), "exp")

        def _backward() -> None:
            # d(e^a)/da = e^a
            self.grad += out.data * out.grad

        out._backward = _backward
        return out

    def log(self) -> Value:
        """Natural logarithm of a positive value."""
        if self.data <= 0:
            raise ValueError(f"log needs a positive Value, got data={self.data}")
        out = Value(math.log(self.data), (self,), "log")

        def _backward() -> None:
            # d(log a)/da = 1/a
            self.grad += out.grad / self.data

        out._backward = _backward
        return out

    def tanh(self) -> Value:
        """Hyperbolic tangent."""
        out = Value(math.tanh(self.data), (self,), "tanh")

        def _backward() -> None:
            # d(tanh a)/da = 1 - tanh(a)^2
            self.grad += (1.0 - out.data**2) * out.grad

        out._backward = _backward
        return out

    def relu(self) -> Value:
        """max(0, a)."""
        out = Value(max(0.0, self.data), (self,), "relu")

        def _backward() -> None:
            # d relu(a)/da = 1 for a > 0, else 0 (also at 0, as in PyTorch)
            self.grad += (self.data > 0) * out.grad

        out._backward = _backward
        return out

    # Derived operations reuse the ones above, so they need no backward of their own.
    def __neg__(self) -> Value:  # -a = a * (-1)
        return self * -1.0

    def __sub__(self, other: Value | Number) -> Value:  # a - b = a + (-b)
        return self + (-self._lift(other))

    def __truediv__(self, other: Value | Number) -> Value:  # a / b = a * b^-1
        return self * self._lift(other) ** -1

    def __radd__(self, other: Number) -> Value:  # 2 + a
        return self + other

    def __rmul__(self, other: Number) -> Value:  # 2 * a
        return self * other

    def __rsub__(self, other: Number) -> Value:  # 2 - a
        return self._lift(other) - self

    def __rtruediv__(self, other: Number) -> Value:  # 2 / a
        return self._lift(other) / self

    def backward(self) -> None:
        """Add d(self)/d(leaf) to the ``grad`` of every leaf below (accumulating, as in PyTorch)."""
        order: list[Value] = []
        seen: set[int] = set()
        # Iterative depth-first search: a recursive one overflows the stack on long chains.
        stack: list[tuple[Value, bool]] = [(self, False)]
        while stack:
            node, expanded = stack.pop()
            if expanded:
                order.append(node)  # all parents are already in order
                continue
            if id(node) in seen:
                continue
            seen.add(id(node))
            stack.append((node, True))
            stack.extend((p, False) for p in node._parents if id(p) not in seen)
        # Each closure passes on its node's whole grad, so a stale one from an earlier call
        # would be counted again: intermediate adjoints start from zero on every call.
        for node in order:
            if node._parents:
                node.grad = 0.0
        self.grad += 1.0  # d(self)/d(self); self is zero here unless it is a leaf
        for node in reversed(order):
            node._backward()


class Neuron:
    """One unit on Values: tanh(w . x + b), or the affine w . x + b if not ``nonlinear``."""

    def __init__(self, n_in: int, *, nonlinear: bool = True,
                 rng: random.Random | None = None) -> None:
        bound = 1.0 / math.sqrt(check.positive_int("n_in", n_in))  # torch.nn.Linear's scale
        rng = _rng("rng", rng)
        self.w = [Value(rng.uniform(-bound, bound)) for _ in range(n_in)]
        self.b = Value(0.0)
        self.nonlinear = nonlinear

    def __call__(self, x: Sequence[Value | Number]) -> Value:
        x = _inputs("x", x, len(self.w))
        # z = w . x + b
        z = sum((w_i * x_i for w_i, x_i in zip(self.w, x)), self.b)
        return z.tanh() if self.nonlinear else z

    def parameters(self) -> list[Value]:
        """The weights, then the bias."""
        return [*self.w, self.b]


class Layer:
    """``n_out`` neurons reading the same ``n_in`` inputs."""

    def __init__(self, n_in: int, n_out: int, *, nonlinear: bool = True,
                 rng: random.Random | None = None) -> None:
        rng = _rng("rng", rng)
        self.neurons = [Neuron(n_in, nonlinear=nonlinear, rng=rng)
                        for _ in range(check.positive_int("n_out", n_out))]

    def __call__(self, x: Sequence[Value | Number]) -> list[Value]:
        x = _inputs("x", x, len(self.neurons[0].w))
        return [n(x) for n in self.neurons]

    def parameters(self) -> list[Value]:
        """Every neuron's parameters, neuron by neuron."""
        return [p for n in self.neurons for p in n.parameters()]


class MLP:
    """A multilayer perceptron on Values: tanh hidden layers, a linear output layer."""

    def __init__(self, sizes: Sequence[int], *, seed: int = 0) -> None:
        sizes = _widths("sizes", sizes)
        rng = random.Random(check.nonnegative_int("seed", seed))
        last = len(sizes) - 2
        self.layers = [
            Layer(n_in, n_out, nonlinear=i != last, rng=rng)
            for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:]))
        ]

    def __call__(self, x: Sequence[Value | Number]) -> list[Value]:
        out: list[Value] = _inputs("x", x, len(self.layers[0].neurons[0].w))
        for layer in self.layers:
            out = layer(out)
        return out

    def parameters(self) -> list[Value]:
        """All parameters, layer by layer."""
        return [p for layer in self.layers for p in layer.parameters()]

    def zero_grad(self) -> None:
        """Reset every parameter's gradient to zero before the next backward pass."""
        for p in self.parameters():
            p.grad = 0.0


def _number(name: str, value: object) -> float:
    """``value`` as a finite float, if it is an int or a float (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be an int or float, got {type(value).__name__} {value!r:.40}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    return float(value)


def _inputs(name: str, x: object, n: int) -> list[Value]:
    """``x`` as a list of ``n`` Values, numbers wrapped."""
    if isinstance(x, (str, bytes)) or not isinstance(x, Sequence):
        raise TypeError(f"{name} must be a list of {n} Values or numbers, got {type(x).__name__}")
    if len(x) != n:
        raise ValueError(f"{name} must hold {n} inputs, got {len(x)}")
    return [v if isinstance(v, Value) else Value(_number(f"{name}[{i}]", v))
            for i, v in enumerate(x)]


def _rng(name: str, rng: object) -> random.Random:
    """``rng`` if it is a ``random.Random``; a fresh one seeded with 0 if None."""
    if rng is None:
        return random.Random(0)
    if not isinstance(rng, random.Random):
        raise TypeError(f"{name} must be a random.Random or None, got {type(rng).__name__}")
    return rng
