"""Devices, timing, floating-point formats and loss scaling (Part 14, "Training on accelerators").

A GPU runs asynchronously: a timer must wait for it (``synchronize``,
``time_call``). Half-precision formats trade range and precision for speed
(``FloatFormat`` derives their limits from the bit counts, ``cast_fate`` says
what a cast does to a tensor's values). Gradients too small for float16 survive
if the loss is multiplied by a scale first (``LossScaler``, dynamic loss
scaling), and ``train_mixed`` trains a classifier in float32, bfloat16 or
float16 with the same loop. ``captured_graphs`` records what ``torch.compile``
hands to its backend.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from dlbook import _checks as check

__all__ = [
    "device_name", "synchronize", "time_call", "FloatFormat", "FLOAT16", "BFLOAT16", "FLOAT32",
    "CastFate", "cast_fate", "ScalerConfig", "LossScaler", "MixedRun", "train_mixed",
    "captured_graphs",
]


def device_name(device: torch.device | str) -> str:
    """A readable name for ``device``: the CUDA card's name, "Apple MPS" or "CPU"."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return {"mps": "Apple MPS", "cpu": "CPU"}.get(device.type, device.type)


def synchronize(device: torch.device | str) -> None:
    """Wait until every kernel queued on ``device`` has finished (a no-op on the CPU)."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def time_call(fn: Callable[[], object], *, device: torch.device | str, repeats: int = 5,
              warmup: int = 1, sync: bool = True) -> float:
    """Median wall time of ``fn()`` in seconds, waiting for ``device`` before and after each call.

    ``sync=False`` skips the waits, to show what an unsynchronized timer measures.
    """
    if not callable(fn):
        raise TypeError(f"fn must be callable, got {type(fn).__name__}")
    repeats = check.positive_int("repeats", repeats)
    warmup = check.nonnegative_int("warmup", warmup)
    device = torch.device(device)
    for _ in range(warmup):  # first calls pay for allocation, kernel selection, caches
        fn()
    times = []
    for _ in range(repeats):
        if sync:
            synchronize(device)
        start = time.perf_counter()
        fn()
        if sync:
            synchronize(device)  # a GPU call returns once its kernels are queued, not done
        times.append(time.perf_counter() - start)
    return statistics.median(times)


@dataclass(frozen=True)
class FloatFormat:
    """A binary floating-point format with a sign bit, ``exponent_bits`` and ``mantissa_bits``."""

    name: str
    exponent_bits: int
    mantissa_bits: int  # stored fraction bits; normal numbers carry one more, implicit, leading 1

    @property
    def bias(self) -> int:
        """The exponent bias, 2^(e-1) - 1."""
        return 2 ** (self.exponent_bits - 1) - 1

    @property
    def max(self) -> float:
        """The largest finite value."""
        # (2 - 2^-m) 2^bias: all fraction bits set, largest exponent below the inf/NaN pattern
        return (2.0 - 2.0 ** -self.mantissa_bits) * 2.0 ** self.bias

    @property
    def smallest_normal(self) -> float:
        """The smallest positive normal value, 2^(1 - bias)."""
        return 2.0 ** (1 - self.bias)

    @property
    def smallest_subnormal(self) -> float:
        """The smallest positive value, 2^(1 - bias - m)."""
        return 2.0 ** (1 - self.bias - self.mantissa_bits)

    @property
    def eps(self) -> float:
        """The gap between 1 and the next value, 2^-m (torch.finfo's eps)."""
        return 2.0 ** -self.mantissa_bits

    @property
    def unit_roundoff(self) -> float:
        """The largest relative error of rounding to nearest in the normal range, 2^-(m+1)."""
        return 2.0 ** -(self.mantissa_bits + 1)


FLOAT16 = FloatFormat("float16", 5, 10)
BFLOAT16 = FloatFormat("bfloat16", 8, 7)
FLOAT32 = FloatFormat("float32", 8, 23)


@dataclass(frozen=True)
class CastFate:
    """Fractions of a tensor's nonzero finite values that a cast sends to each range (sum 1)."""

    zero: float
    subnormal: float
    normal: float
    overflow: float


def cast_fate(x: torch.Tensor, dtype: torch.dtype = torch.float16) -> CastFate:
    """What casting ``x`` to ``dtype`` does to its nonzero finite values: flushed to zero,
    made subnormal (fewer significant bits), kept normal, or overflowed to infinity."""
    x = check.floating("x", x)
    if not (dtype.is_floating_point if isinstance(dtype, torch.dtype) else False):
        raise TypeError(f"dtype must be a floating torch.dtype, got {dtype!r}")
    values = x.detach().flatten()
    values = values[torch.isfinite(values) & (values != 0)]  # (N,)
    if values.numel() == 0:
        raise ValueError(f"x has no nonzero finite values to cast, got {x.numel()} values")
    cast = values.to(dtype).abs()  # (N,)
    tiny = torch.finfo(dtype).smallest_normal
    counts = {
        "zero": (cast == 0).sum(),
        "subnormal": ((cast > 0) & (cast < tiny)).sum(),
        "normal": ((cast >= tiny) & torch.isfinite(cast)).sum(),
        "overflow": torch.isinf(cast).sum(),
    }
    return CastFate(**{k: int(v) / values.numel() for k, v in counts.items()})


@dataclass
class ScalerConfig:
    """Dynamic loss scaling's settings (the defaults are torch.amp.GradScaler's)."""

    init_scale: float = 2.0**16
    growth_factor: float = 2.0  # applied after growth_interval finite steps in a row
    backoff_factor: float = 0.5  # applied after a step with an inf or NaN gradient
    growth_interval: int = 2000

    def __post_init__(self) -> None:
        check.positive_float("init_scale", self.init_scale)
        if check.positive_float("growth_factor", self.growth_factor) <= 1:
            raise ValueError(f"growth_factor must be > 1, got {self.growth_factor}")
        check.fraction("backoff_factor", self.backoff_factor, closed="()")
        check.positive_int("growth_interval", self.growth_interval)


class LossScaler:
    """Dynamic loss scaling: scale the loss by S, unscale the gradients, skip overflowed steps."""

    def __init__(self, config: ScalerConfig | None = None) -> None:
        self.config = config if config is not None else ScalerConfig()
        self.scale = float(self.config.init_scale)
        self.good_steps = 0  # finite steps since the scale last changed
        self.skipped = 0

    def scale_loss(self, loss: torch.Tensor) -> torch.Tensor:
        """The loss times S; call backward on this instead of on the loss."""
        check.floating("loss", loss)
        return loss * self.scale

    def step(self, optimizer: torch.optim.Optimizer) -> bool:
        """Unscale the gradients, step if they are all finite, update S; True if it stepped."""
        if not hasattr(optimizer, "param_groups"):
            raise TypeError(f"optimizer must be a torch optimizer, got {type(optimizer).__name__}")
        params = [p for group in optimizer.param_groups for p in group["params"]]
        grads = [p.grad for p in params if p.grad is not None]
        for g in grads:
            # g = grad(S L) / S, in the gradient's own (float32) dtype: exact for S = 2^k
            g.div_(self.scale)
        # one device-to-host copy per step, not one per gradient
        finite = not grads or bool(torch.stack([torch.isfinite(g).all() for g in grads]).all())
        if finite:
            optimizer.step()
            self.good_steps += 1
            if self.good_steps == self.config.growth_interval:
                self.scale *= self.config.growth_factor
                self.good_steps = 0
        else:  # an overflow somewhere: these gradients are garbage, so skip the step and back off
            self.skipped += 1
            self.scale *= self.config.backoff_factor
            self.good_steps = 0
        return finite


@dataclass
class MixedRun:
    """What one ``train_mixed`` run measured."""

    accuracy: float  # on the validation inputs
    seconds: float  # training time, synchronized
    losses: list[float] = field(default_factory=list)  # one per step, unscaled
    scales: list[float] = field(default_factory=list)  # S at each step (empty without a scaler)
    skipped: int = 0  # steps skipped for inf/NaN gradients


def train_mixed(model: nn.Module, X: torch.Tensor, y: torch.Tensor, X_val: torch.Tensor,
                y_val: torch.Tensor, *, dtype: torch.dtype = torch.float32, epochs: int = 10,
                batch_size: int = 64, lr: float = 1e-3, seed: int = 0,
                scaler: LossScaler | None = None) -> MixedRun:
    """Train a classifier with Adam, in float32 or under autocast to ``dtype``.

    Inputs ``X`` are ``(N, D)``, labels ``y`` are ``(N,)``; the same for the validation set.

    The model's weights, its gradients and the optimizer stay in float32; autocast runs the
    matrix products in ``dtype``. ``scaler`` (needed for float16) scales the loss.
    """
    model = check.module("model", model)
    dtype = check.one_of("dtype", dtype, [torch.float32, torch.bfloat16, torch.float16])
    n = check.expect_shape(X, "N D", "X")["N"]
    check.labels("y", y)
    check.same_length(X=X, y=y)
    check.same_length(X_val=X_val, y_val=y_val)
    epochs = check.positive_int("epochs", epochs)
    batch_size = check.positive_int("batch_size", batch_size)
    lr = check.positive_float("lr", lr)
    device = next(model.parameters()).device
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    order = torch.Generator().manual_seed(seed)
    run = MixedRun(accuracy=float("nan"), seconds=float("nan"))
    losses = []
    synchronize(device)
    start = time.perf_counter()
    for _ in range(epochs):
        for batch in torch.randperm(n, generator=order).split(batch_size):
            batch = batch.to(X.device)
            low = dtype != torch.float32
            with torch.autocast(device_type=device.type, dtype=dtype, enabled=low):
                # the products run in dtype, the loss in float32
                loss = F.cross_entropy(model(X[batch]), y[batch])
            optimizer.zero_grad(set_to_none=True)
            if scaler is None:
                loss.backward()
                optimizer.step()
            else:
                run.scales.append(scaler.scale)
                scaler.scale_loss(loss).backward()
                scaler.step(optimizer)
            losses.append(loss.detach())
    synchronize(device)
    run.seconds = time.perf_counter() - start
    run.losses = torch.stack(losses).float().tolist()  # one transfer at the end, not one per step
    run.skipped = scaler.skipped if scaler is not None else 0
    with torch.no_grad():
        run.accuracy = (model(X_val).argmax(dim=1) == y_val).double().mean().item()
    return run


def captured_graphs(fn: Callable[..., torch.Tensor], *args: torch.Tensor) -> list[list[str]]:
    """The graphs TorchDynamo captures from ``fn(*args)``: the names of each graph's operations."""
    if not callable(fn):
        raise TypeError(f"fn must be callable, got {type(fn).__name__}")
    graphs: list[list[str]] = []

    def recording_backend(gm: torch.fx.GraphModule, example_inputs: list[torch.Tensor]) -> Callable:
        calls = ("call_function", "call_method")
        ops = [node.target for node in gm.graph.nodes if node.op in calls]
        graphs.append([getattr(op, "__name__", str(op)) for op in ops])
        return gm.forward  # run the captured graph as it is: no compilation

    torch._dynamo.reset()  # forget earlier compilations, so fn is traced afresh
    torch.compile(fn, backend=recording_backend, fullgraph=False)(*args)
    torch._dynamo.reset()
    return graphs
