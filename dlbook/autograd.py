"""A scalar reverse-mode automatic differentiation engine (Part 5, "An autodiff engine
from scratch").

A :class:`Value` wraps one Python float. Every operation returns a new ``Value``
that remembers its parents and a small ``_backward`` closure holding the local
derivatives. :meth:`Value.backward` orders the graph topologically and runs those
closures from the output back to the inputs. Each closure *adds* into its parents'
``grad``, because a value used twice receives gradient along both paths.
:class:`Neuron`, :class:`Layer` and :class:`MLP` build a tiny network on top.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence

__all__ = ["Value", "Neuron", "Layer", "MLP"]

Number = int | float


class Value:
    """A scalar that records how it was computed, so it can be differentiated.

    Args:
        data: the number.
        parents: the ``Value`` objects this one was computed from.
        op: a short name of the operation, for display.

    >>> a, b = Value(2.0), Value(-3.0)
    >>> c = a * b + a
    >>> c.backward()
    >>> c.data, a.grad, b.grad
    (-4.0, -2.0, 2.0)
    """

    __slots__ = ("data", "grad", "_backward", "_parents", "op")

    def __init__(self, data: Number, parents: tuple[Value, ...] = (), op: str = "") -> None:
        if isinstance(data, bool) or not isinstance(data, (int, float)):
            raise TypeError(f"Value holds an int or float, got {type(data).__name__}")
        self.data = float(data)
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
        if isinstance(other, bool) or not isinstance(other, (int, float)):
            raise TypeError(f"cannot combine a Value with {type(other).__name__}")
        return Value(other)

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
        if isinstance(exponent, bool) or not isinstance(exponent, (int, float)):
            raise TypeError(
                f"only a constant int or float exponent is supported, got {type(exponent).__name__}"
            )
        out = Value(self.data**exponent, (self,), f"**{exponent:g}")

        def _backward() -> None:
            # d(a^p)/da = p a^(p-1)
            self.grad += exponent * self.data ** (exponent - 1) * out.grad

        out._backward = _backward
        return out

    def exp(self) -> Value:
        """:math:`e^a`, whose derivative is itself."""
        out = Value(math.exp(self.data), (self,), "exp")

        def _backward() -> None:
            self.grad += out.data * out.grad

        out._backward = _backward
        return out

    def log(self) -> Value:
        """Natural logarithm; raises ``ValueError`` for a non-positive argument."""
        if self.data <= 0:
            raise ValueError(f"log needs a positive argument, got {self.data}")
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
        """:math:`\\max(0, a)`, with derivative 0 at :math:`a = 0`, as in PyTorch."""
        out = Value(max(0.0, self.data), (self,), "relu")

        def _backward() -> None:
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
        """Add d(self)/d(leaf) to ``grad`` of every leaf this value depends on.

        A leaf is a ``Value`` with no parents (a parameter, an input or a constant).
        Leaf gradients accumulate across calls, as in PyTorch: reset them
        (``zero_grad``) between calls that should not add up. The gradients of the
        intermediate values are reset at the start of every call, because each closure
        passes on its node's *whole* ``grad``: a stale one left by an earlier call would
        be passed on again and counted once more at every level of the graph. After the
        call, an intermediate ``grad`` holds d(self)/d(value) for this call alone.

        >>> a = Value(2.0)
        >>> y = (a * a).tanh()
        >>> y.backward(); first = a.grad
        >>> y.backward()  # a second call adds exactly the same amount again
        >>> a.grad == 2 * first
        True
        """
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
        for node in order:
            if node._parents:  # intermediate: forget the adjoint of any earlier call
                node.grad = 0.0
        self.grad += 1.0  # d(self)/d(self); self is zero here unless it is a leaf
        for node in reversed(order):
            node._backward()


class Neuron:
    """One unit: :math:`a = \\phi(\\mathbf{w}^\\top \\mathbf{x} + b)` on :class:`Value` s.

    Args:
        n_in: number of inputs.
        nonlinear: apply tanh if true, else return the affine output.
        rng: the random generator for the initial weights.
    """

    def __init__(
        self, n_in: int, *, nonlinear: bool = True, rng: random.Random | None = None
    ) -> None:
        if isinstance(n_in, bool) or not isinstance(n_in, int) or n_in < 1:
            raise ValueError(f"n_in must be an int >= 1, got {n_in!r}")
        rng = rng or random.Random(0)
        bound = 1.0 / math.sqrt(n_in)  # the same scale as torch.nn.Linear's default
        self.w = [Value(rng.uniform(-bound, bound)) for _ in range(n_in)]
        self.b = Value(0.0)
        self.nonlinear = nonlinear

    def __call__(self, x: Sequence[Value | Number]) -> Value:
        if len(x) != len(self.w):
            raise ValueError(f"expected {len(self.w)} inputs, got {len(x)}")
        z = sum((w_i * x_i for w_i, x_i in zip(self.w, x)), self.b)
        return z.tanh() if self.nonlinear else z

    def parameters(self) -> list[Value]:
        """The weights, then the bias."""
        return [*self.w, self.b]


class Layer:
    """``n_out`` neurons reading the same ``n_in`` inputs."""

    def __init__(
        self, n_in: int, n_out: int, *, nonlinear: bool = True, rng: random.Random | None = None
    ) -> None:
        rng = rng or random.Random(0)
        self.neurons = [Neuron(n_in, nonlinear=nonlinear, rng=rng) for _ in range(n_out)]

    def __call__(self, x: Sequence[Value | Number]) -> list[Value]:
        return [n(x) for n in self.neurons]

    def parameters(self) -> list[Value]:
        """Every neuron's parameters, neuron by neuron."""
        return [p for n in self.neurons for p in n.parameters()]


class MLP:
    """A multilayer perceptron on :class:`Value` s: tanh hidden layers, linear output.

    Args:
        sizes: layer widths from input to output, e.g. ``[2, 8, 8, 1]``.
        seed: seeds the initial weights.

    >>> net = MLP([2, 4, 1], seed=0)
    >>> len(net.parameters())
    17
    """

    def __init__(self, sizes: Sequence[int], *, seed: int = 0) -> None:
        if len(sizes) < 2:
            raise ValueError(
                f"sizes needs at least an input and an output width, got {list(sizes)}"
            )
        rng = random.Random(seed)
        last = len(sizes) - 2
        self.layers = [
            Layer(n_in, n_out, nonlinear=i != last, rng=rng)
            for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:]))
        ]

    def __call__(self, x: Sequence[Value | Number]) -> list[Value]:
        out: Sequence[Value | Number] = x
        for layer in self.layers:
            out = layer(out)
        return list(out)  # type: ignore[arg-type]

    def parameters(self) -> list[Value]:
        """All parameters, layer by layer."""
        return [p for layer in self.layers for p in layer.parameters()]

    def zero_grad(self) -> None:
        """Reset every parameter's gradient to zero before the next backward pass."""
        for p in self.parameters():
            p.grad = 0.0

