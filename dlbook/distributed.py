"""Data-parallel training with torch.distributed, gradient accumulation and checkpoints
(Part 14, "Training beyond one machine").

``torch.distributed`` is the engine; this module only wraps it for the book.
:func:`launch` starts a training function on N local processes (the gloo backend
over localhost, one thread each) the way ``torchrun`` starts it on N machines, and
returns what each process returned. :func:`train_data_parallel` is that training
function: a small classifier on generated data, wrapped in
``DistributedDataParallel``, each process reading its shard of every global batch
through a ``DistributedSampler``; :func:`train_single` is the same training in one
process. :func:`shard_average_gradient` and :func:`accumulated_gradient` check the
identities behind data parallelism and gradient accumulation, and
:func:`save_checkpoint` / :func:`load_checkpoint` / :func:`train_resumable` make a
run that survives being interrupted. :func:`ring_allreduce` simulates the ring
algorithm in memory to count what each worker sends.

Run the same training function on two machines with two processes each::

    torchrun --nnodes 2 --nproc-per-node 2 --rdzv-backend c10d \\
        --rdzv-endpoint HOST:29500 -m dlbook.distributed
"""

from __future__ import annotations

import datetime
import os
import pickle
import random
import shutil
import socket
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import wait
from pathlib import Path
from traceback import format_exc
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DistributedSampler, TensorDataset

from dlbook import _checks as check

__all__ = [
    "free_port", "launch", "DataParallelConfig", "make_dataset", "make_model", "train_data_parallel",
    "train_single", "shard_average_gradient", "accumulated_gradient", "save_checkpoint", "load_checkpoint",
    "train_resumable", "Interrupted", "ring_allreduce", "main",
]


# ----------------------------------------------------------------------------- the launcher

def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the OS picks it when we bind port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _worker(rank: int, nprocs: int, port: int, folder: str, fn: Callable[..., Any], args: tuple,
            timeout_s: float) -> None:
    """One child: join the process group, run fn(rank, nprocs, *args), leave its result in folder."""
    torch.set_num_threads(1)  # N processes share the cores: one thread each, as torchrun advises
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    out = Path(folder)
    try:
        dist.init_process_group("gloo", rank=rank, world_size=nprocs,
                                timeout=datetime.timedelta(seconds=timeout_s))
        try:
            result = fn(rank, nprocs, *args)
        finally:
            dist.destroy_process_group()
        torch.save(result, out / f"{rank}.partial")
        os.replace(out / f"{rank}.partial", out / f"{rank}.pt")  # the parent never sees half a file
    except BaseException:
        (out / f"{rank}.error").write_text(format_exc())
        raise SystemExit(1)


def _stop(processes: Sequence[Any]) -> None:
    """Terminate, then kill, every child still alive, and reap them all."""
    for p in processes:
        if p.is_alive():
            p.terminate()
    for p in processes:
        p.join(timeout=5)
        if p.is_alive():
            p.kill()
            p.join()


def _context(start_method: str) -> Any:
    """A multiprocessing context; forkserver imports torch once, in a server that forks the workers."""
    if start_method == "forkserver" and "forkserver" not in mp.get_all_start_methods():
        start_method = "spawn"  # Windows has no fork: every worker then imports torch itself
    context = mp.get_context(start_method)
    if start_method == "forkserver":
        # building a torch.optim optimizer first imports torch._dynamo (seconds): do it once, in the server
        context.set_forkserver_preload(["dlbook.distributed", "torch._dynamo"])
    return context


def launch(fn: Callable[..., Any], nprocs: int, *args: Any, timeout_s: float = 120.0,
           start_method: str = "forkserver") -> list[Any]:
    """Run ``fn(rank, nprocs, *args)`` in nprocs new processes joined in a gloo process group;
    return their results in rank order. A child's exception is raised here as a RuntimeError
    with the child's traceback, after every other child is stopped."""
    if not callable(fn):
        raise TypeError(f"fn must be a callable, got {type(fn).__name__} {fn!r}")
    nprocs = check.positive_int("nprocs", nprocs)
    timeout_s = check.positive_float("timeout_s", timeout_s)
    check.one_of("start_method", start_method, ["forkserver", "spawn"])
    try:
        pickle.dumps(fn)
    except Exception as error:  # the new processes receive fn by its importable name
        raise TypeError(f"fn must be a module-level function that a new process can import, got {fn!r} "
                        f"({error})") from None
    context = _context(start_method)
    folder = tempfile.mkdtemp(prefix="dlbook-launch-")
    port = free_port()
    processes = [context.Process(target=_worker, args=(rank, nprocs, port, folder, fn, args, timeout_s),
                                 daemon=True) for rank in range(nprocs)]
    try:
        for p in processes:
            p.start()
        deadline = time.monotonic() + timeout_s
        while any(p.is_alive() for p in processes):
            if any(p.exitcode not in (None, 0) for p in processes):
                break  # one failed: the others may wait for it forever
            if time.monotonic() > deadline:
                raise TimeoutError(f"{fn.__name__} on {nprocs} processes did not finish in {timeout_s} s")
            wait([p.sentinel for p in processes if p.is_alive()], timeout=0.1)  # sleeps until one ends
        _stop(processes)
        errors = sorted(Path(folder).glob("*.error"), key=lambda f: f.stat().st_mtime_ns)
        if errors:  # the first failure is the cause; later ones are usually peers losing it
            rank = int(errors[0].stem)
            raise RuntimeError(f"process {rank} of {nprocs} failed in {fn.__name__}:\n{errors[0].read_text()}")
        codes = [p.exitcode for p in processes]
        if any(code != 0 for code in codes):
            raise RuntimeError(f"{fn.__name__} on {nprocs} processes: a child exited with codes {codes}")
        return [torch.load(Path(folder) / f"{rank}.pt", weights_only=False) for rank in range(nprocs)]
    finally:
        _stop(processes)
        shutil.rmtree(folder, ignore_errors=True)


# ------------------------------------------------------------------ the data-parallel run

@dataclass
class DataParallelConfig:
    """One data-parallel experiment: data, model, and SGD with momentum."""

    n_examples: int = 32768
    in_features: int = 32
    hidden: int = 256
    classes: int = 10
    batch_size: int = 4096  # the GLOBAL batch: each of K processes gets batch_size / K of it
    epochs: int = 2
    lr: float = 0.2
    momentum: float = 0.9
    seed: int = 0
    comm_repeats: int = 21  # timed all-reduces of a gradient-sized tensor after training (median kept)


def _config(config: object) -> DataParallelConfig:
    if not isinstance(config, DataParallelConfig):
        raise TypeError(f"config must be a DataParallelConfig, got {type(config).__name__}")
    return config


def make_dataset(config: DataParallelConfig) -> TensorDataset:
    """Gaussian inputs (n_examples, in_features) labelled by a random linear teacher (n_examples,)."""
    _config(config)
    g = torch.Generator().manual_seed(config.seed + 1)
    X = torch.randn(config.n_examples, config.in_features, generator=g)  # (N, D)
    W = torch.randn(config.in_features, config.classes, generator=g)  # (D, C)
    y = (X @ W).argmax(dim=1)  # (N,)
    return TensorDataset(X, y)


def make_model(config: DataParallelConfig) -> nn.Sequential:
    """A two-hidden-layer MLP with initial weights fixed by config.seed."""
    _config(config)
    torch.manual_seed(config.seed)
    return nn.Sequential(nn.Linear(config.in_features, config.hidden), nn.ReLU(),
                         nn.Linear(config.hidden, config.hidden), nn.ReLU(),
                         nn.Linear(config.hidden, config.classes))


def _check_config(config: DataParallelConfig, world_size: int) -> int:
    """The local batch size; a ValueError unless the global batch splits evenly."""
    _config(config)
    world_size = check.positive_int("world_size", world_size)
    check.positive_int("comm_repeats", config.comm_repeats)
    if config.batch_size % world_size or config.n_examples % config.batch_size:
        raise ValueError(f"batch_size must divide n_examples and be divisible by world_size, got batch_size "
                         f"{config.batch_size}, n_examples {config.n_examples}, world_size {world_size}")
    return config.batch_size // world_size


def _run(model: nn.Module, config: DataParallelConfig, rank: int, world_size: int) -> dict[str, Any]:
    """The loop both versions share: shuffled shards, mean cross-entropy, SGD with momentum."""
    local_batch = _check_config(config, world_size)
    data = make_dataset(config)
    # every process draws the same permutation (seed + epoch) and keeps positions rank, rank + K, ...
    sampler = DistributedSampler(data, num_replicas=world_size, rank=rank, shuffle=True, seed=config.seed)
    X, Y = data.tensors
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum)
    first_grads, losses, step_seconds = None, [], []
    for epoch in range(config.epochs):
        sampler.set_epoch(epoch)
        mine = torch.tensor(list(sampler))  # (N / K,) this process's indices, in the order it reads them
        for batch in mine.split(local_batch):  # a DataLoader(data, local_batch, sampler=sampler), vectorized
            x, y = X[batch], Y[batch]  # (B / K, D), (B / K,): this process's shard of the global batch
            start = time.perf_counter()
            optimizer.zero_grad()
            # L_k = (1/n_k) sum_{i in S_k} l_i: the MEAN over this shard
            loss = F.cross_entropy(model(x), y)
            # under DDP, backward() also all-reduces: grad = (1/K) sum_k grad L_k = grad L (equal shards)
            loss.backward()
            if first_grads is None:
                first_grads = [p.grad.detach().clone() for p in model.parameters()]
            optimizer.step()
            step_seconds.append(time.perf_counter() - start)  # the all-reduce in backward() syncs the K clocks
            losses.append(loss.item())
    module = model.module if isinstance(model, DistributedDataParallel) else model
    return {"state": {k: v.detach().clone() for k, v in module.state_dict().items()},
            "first_grads": first_grads, "losses": losses, "step_seconds": step_seconds,
            "parameters": sum(p.numel() for p in model.parameters())}


def train_data_parallel(rank: int, world_size: int, config: DataParallelConfig) -> dict[str, Any]:
    """The training function each process runs (process group already joined): DDP over
    K = world_size shards. Returns final weights, first-step gradients, local losses and timings."""
    _check_config(config, world_size)
    model = DistributedDataParallel(make_model(config))  # also broadcasts rank 0's weights to all
    out = _run(model, config, rank, world_size)
    flat = torch.zeros(sum(p.numel() for p in model.parameters()))  # (P,), one gradient's worth
    times = []
    for _ in range(config.comm_repeats):
        dist.barrier()
        start = time.perf_counter()
        dist.all_reduce(flat)
        times.append(time.perf_counter() - start)
    out["allreduce_seconds"] = sorted(times)[len(times) // 2]  # the median shrugs off a preempted repeat
    return out


def train_single(config: DataParallelConfig) -> dict[str, Any]:
    """The same training in this process, on whole global batches: the reference for DDP."""
    _check_config(config, 1)
    return _run(make_model(config), config, rank=0, world_size=1)


# --------------------------------------------------------------- the identities, in one process

def _sizes(name: str, sizes: Sequence[int], total: int) -> list[int]:
    sizes = [check.positive_int(f"{name}[{i}]", s) for i, s in enumerate(sizes)]
    if sum(sizes) != total:
        raise ValueError(f"{name} must add up to the batch size {total}, got {sizes} (sum {sum(sizes)})")
    return sizes


def shard_average_gradient(model: nn.Module, x: torch.Tensor, y: torch.Tensor, sizes: Sequence[int], *,
                           weighted: bool = False) -> list[torch.Tensor]:
    """Average of the mean-loss gradients of consecutive shards of (x, y) with the given sizes:
    plain (what DDP does) or weighted by shard size n_k / B. x (B, D), y (B,)."""
    check.module("model", model)
    B = check.expect_shape(x, "B D", "x")["B"]
    check.labels("y", y)
    check.same_length(x=x, y=y)
    sizes = _sizes("sizes", sizes, B)
    params = list(model.parameters())
    total = [torch.zeros_like(p) for p in params]
    for x_k, y_k, n_k in zip(x.split(sizes), y.split(sizes), sizes):
        g_k = torch.autograd.grad(F.cross_entropy(model(x_k), y_k), params)  # gradient of shard k's mean loss
        # plain: g = (1/K) sum_k g_k;  weighted: g = sum_k (n_k / B) g_k
        w = n_k / B if weighted else 1 / len(sizes)
        total = [t + w * g for t, g in zip(total, g_k)]
    return total


def accumulated_gradient(model: nn.Module, x: torch.Tensor, y: torch.Tensor, micro_batch: int) -> list[torch.Tensor]:
    """The gradient of the mean loss over (x, y), accumulated in .grad over micro-batches of at
    most micro_batch examples, each loss scaled by n_m / B. x (B, D), y (B,)."""
    check.module("model", model)
    B = check.expect_shape(x, "B D", "x")["B"]
    check.labels("y", y)
    check.same_length(x=x, y=y)
    micro_batch = check.positive_int("micro_batch", micro_batch)
    model.zero_grad()
    for x_m, y_m in zip(x.split(micro_batch), y.split(micro_batch)):
        # L = sum_m (n_m / B) L_m, and backward() ADDS each term's gradient into .grad
        (F.cross_entropy(model(x_m), y_m) * (len(y_m) / B)).backward()
    return [p.grad.detach().clone() for p in model.parameters()]


# ------------------------------------------------------------------------------ checkpoints

def save_checkpoint(path: str | os.PathLike, model: nn.Module, optimizer: torch.optim.Optimizer, step: int,
                    generator: torch.Generator) -> None:
    """Write everything the next step depends on: weights, optimizer state, step, and RNG states."""
    check.module("model", model)
    check.optimizer_for("optimizer", optimizer, model)
    step = check.nonnegative_int("step", step)
    state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step,
             "torch_rng": torch.get_rng_state(), "data_rng": generator.get_state(),
             "python_rng": random.getstate()}
    path = Path(path)
    torch.save(state, path.with_suffix(".partial"))
    os.replace(path.with_suffix(".partial"), path)  # a crash while saving leaves the old checkpoint intact


def load_checkpoint(path: str | os.PathLike, model: nn.Module, optimizer: torch.optim.Optimizer,
                    generator: torch.Generator, *, restore_rng: bool = True) -> int:
    """Restore what save_checkpoint wrote into model, optimizer and generator; return the step."""
    check.module("model", model)
    check.optimizer_for("optimizer", optimizer, model)
    state = torch.load(path, weights_only=False)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    if restore_rng:
        torch.set_rng_state(state["torch_rng"])
        generator.set_state(state["data_rng"])
        random.setstate(state["python_rng"])
    return int(state["step"])


class Interrupted(RuntimeError):
    """Raised by train_resumable at the step where it is told to stop, as a crash would."""


def train_resumable(config: DataParallelConfig, steps: int, folder: str | os.PathLike, *, every: int = 10,
                    crash_at: int | None = None, resume: bool = False,
                    restore_rng: bool = True) -> dict[str, torch.Tensor]:
    """Train with dropout and Adam on random batches for steps steps, checkpointing to folder
    every `every` steps; optionally crash at step crash_at, or resume from the last checkpoint.
    Returns the final state_dict."""
    steps = check.positive_int("steps", steps)
    every = check.positive_int("every", every)
    data = make_dataset(config)
    torch.manual_seed(config.seed)
    model = nn.Sequential(nn.Linear(config.in_features, config.hidden), nn.ReLU(), nn.Dropout(0.2),
                          nn.Linear(config.hidden, config.classes))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(config.seed)  # draws the batches
    path = Path(folder) / "last.pt"
    step = load_checkpoint(path, model, optimizer, generator, restore_rng=restore_rng) if resume else 0
    while step < steps:
        if crash_at is not None and step == crash_at:
            raise Interrupted(f"interrupted at step {step}; the last checkpoint is step {step - step % every}")
        index = torch.randint(len(data), (config.batch_size,), generator=generator)  # (B,)
        x, y = data.tensors[0][index], data.tensors[1][index]
        optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()  # dropout draws from torch's global generator
        optimizer.step()
        step += 1
        if step % every == 0:
            save_checkpoint(path, model, optimizer, step, generator)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


# ------------------------------------------------------------------- ring all-reduce, simulated

def ring_allreduce(tensors: Sequence[torch.Tensor]) -> tuple[list[torch.Tensor], list[int]]:
    """Simulate ring all-reduce of K equal-length 1-D tensors in memory: reduce-scatter, then
    all-gather, each worker sending one chunk to its right neighbour per step. Returns every
    worker's result (the sum) and the number of elements each worker sent."""
    K = len(tensors)
    check.positive_int("len(tensors)", K)
    N = check.expect_shape(tensors[0], "N", "tensors[0]")["N"]
    for k, t in enumerate(tensors):
        check.expect_shape(t, "N", f"tensors[{k}]", N=N)
    chunks = [list(t.detach().clone().tensor_split(K)) for t in tensors]  # chunks[k][c]: worker k's chunk c
    sent = [0] * K
    # reduce-scatter: at step s worker k sends chunk (k - s) mod K, its right neighbour adds it in
    for s in range(K - 1):
        messages = [(k, (k - s) % K, chunks[k][(k - s) % K].clone()) for k in range(K)]
        for k, c, message in messages:
            chunks[(k + 1) % K][c] += message
            sent[k] += message.numel()
    # now worker k holds the full sum of chunk (k + 1) mod K; all-gather passes the sums around
    for s in range(K - 1):
        messages = [(k, (k + 1 - s) % K, chunks[k][(k + 1 - s) % K].clone()) for k in range(K)]
        for k, c, message in messages:
            chunks[(k + 1) % K][c] = message
            sent[k] += message.numel()
    return [torch.cat(c) for c in chunks], sent


# ------------------------------------------------------------------------------ torchrun entry

def main() -> None:
    """Entry point for torchrun (python -m dlbook.distributed): join the group torchrun set up
    through its environment variables, train, print rank 0's summary."""
    dist.init_process_group("gloo")  # reads RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT from torchrun
    try:
        torch.set_num_threads(1)
        out = train_data_parallel(dist.get_rank(), dist.get_world_size(), DataParallelConfig())
        if dist.get_rank() == 0:
            print(f"world size {dist.get_world_size()}: final loss {out['losses'][-1]:.4f}, "
                  f"median step {1000 * sorted(out['step_seconds'])[len(out['step_seconds']) // 2]:.1f} ms")
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
