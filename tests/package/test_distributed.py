"""dlbook.distributed: DDP on real processes equals one process, the shard and accumulation
identities, checkpoint resume, the ring all-reduce count, and a launcher that cleans up."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import torch
import torch.nn.functional as F

from dlbook.distributed import (DataParallelConfig, Interrupted, accumulated_gradient, launch, make_dataset,
                                make_model, ring_allreduce, shard_average_gradient, train_data_parallel,
                                train_resumable, train_single)
from tests.helpers import check_bad_inputs

ROOT = Path(__file__).resolve().parents[2]
SMALL = DataParallelConfig(n_examples=512, hidden=32, batch_size=64, epochs=2, comm_repeats=2)


def _batch(n: int = 60):
    data = make_dataset(SMALL)
    net = make_model(DataParallelConfig(hidden=8)).double()
    return net, data.tensors[0][:n].double(), data.tensors[1][:n]


def _whole_batch_gradient(net, x, y):
    return torch.autograd.grad(F.cross_entropy(net(x), y), list(net.parameters()))


def _close(grads, expected) -> bool:
    return all(torch.allclose(g, e, rtol=1e-10, atol=1e-13) for g, e in zip(grads, expected))


def test_average_of_equal_shard_gradients_is_the_batch_gradient():
    net, x, y = _batch()
    whole = _whole_batch_gradient(net, x, y)
    for K in (1, 2, 3, 6):
        assert _close(shard_average_gradient(net, x, y, [60 // K] * K), whole)


def test_unequal_shards_need_weights():
    net, x, y = _batch()
    whole = _whole_batch_gradient(net, x, y)
    assert not _close(shard_average_gradient(net, x, y, [5, 15, 40]), whole)
    assert _close(shard_average_gradient(net, x, y, [5, 15, 40], weighted=True), whole)


@pytest.mark.parametrize("micro_batch", [1, 7, 20, 60, 100])
def test_accumulated_gradient_is_the_batch_gradient(micro_batch):
    net, x, y = _batch()
    whole = _whole_batch_gradient(net, x, y)
    assert _close(accumulated_gradient(net, x, y, micro_batch), whole)


@pytest.mark.parametrize("K, N", [(1, 5), (2, 8), (3, 9), (5, 20), (4, 10)])
def test_ring_allreduce_sums_and_sends_2_k_minus_1_over_k_n(K, N):
    vectors = [torch.randn(N, dtype=torch.float64, generator=torch.Generator().manual_seed(k)) for k in range(K)]
    results, sent = ring_allreduce(vectors)
    for r in results:
        torch.testing.assert_close(r, torch.stack(vectors).sum(0))
    assert sum(sent) == 2 * (K - 1) * N  # every chunk crosses K - 1 links in each of the two phases
    if N % K == 0:
        assert sent == [2 * (K - 1) * N // K] * K


def test_resumed_run_equals_uninterrupted_run(tmp_path):
    config = DataParallelConfig(n_examples=256, hidden=16, batch_size=16)
    for name in "abc":
        (tmp_path / name).mkdir()
    straight = train_resumable(config, 25, tmp_path / "a", every=5)
    with pytest.raises(Interrupted):
        train_resumable(config, 25, tmp_path / "b", every=5, crash_at=17)
    resumed = train_resumable(config, 25, tmp_path / "b", every=5, resume=True)
    assert all(torch.equal(straight[name], resumed[name]) for name in straight)
    with pytest.raises(Interrupted):
        train_resumable(config, 25, tmp_path / "c", every=5, crash_at=17)
    forgetful = train_resumable(config, 25, tmp_path / "c", every=5, resume=True, restore_rng=False)
    assert not all(torch.equal(straight[name], forgetful[name]) for name in straight)


@pytest.mark.slow
def test_ddp_on_two_processes_trains_the_single_process_weights():
    reference = train_single(SMALL)
    ranks = launch(train_data_parallel, 2, SMALL)
    assert len(ranks) == 2
    for name, value in reference["state"].items():
        assert torch.equal(ranks[0]["state"][name], ranks[1]["state"][name])  # replicas stay identical
        torch.testing.assert_close(ranks[0]["state"][name], value, rtol=1e-5, atol=1e-6)
    for g, r in zip(ranks[0]["first_grads"], reference["first_grads"]):
        torch.testing.assert_close(g, r, rtol=1e-5, atol=1e-7)
    # the two local losses average to the global-batch loss of the reference
    for step, loss in enumerate(reference["losses"][:3]):
        mean = (ranks[0]["losses"][step] + ranks[1]["losses"][step]) / 2
        assert abs(mean - loss) < 1e-5
    assert reference["losses"][-1] < reference["losses"][0]


def _rank_one_fails(rank: int, world_size: int, folder: str) -> None:
    """Rank 1 raises at once; the others hang, as a process waiting for a dead peer would."""
    (Path(folder) / f"{rank}.pid").write_text(str(os.getpid()))
    if rank == 1:
        raise ValueError("rank one gives up")
    time.sleep(120)


def _sleeps(rank: int, world_size: int, folder: str) -> None:
    (Path(folder) / f"{rank}.pid").write_text(str(os.getpid()))
    time.sleep(120)


def _gone(pid: int) -> bool:
    """True if no process has this pid, not even a zombie waiting to be reaped."""
    try:
        psutil.Process(pid)
    except psutil.NoSuchProcess:
        return True
    return False


def _pids(folder: Path) -> list[int]:
    return [int(f.read_text()) for f in sorted(folder.glob("*.pid"))]


@pytest.mark.slow
def test_launcher_reraises_a_child_error_and_leaves_no_process(tmp_path):
    start = time.monotonic()
    with pytest.raises(RuntimeError, match="process 1 of 3 failed in _rank_one_fails") as info:
        launch(_rank_one_fails, 3, str(tmp_path))
    assert "ValueError: rank one gives up" in str(info.value)  # the child's traceback comes along
    assert time.monotonic() - start < 60
    pids = _pids(tmp_path)
    assert len(pids) == 3 and all(_gone(pid) for pid in pids), pids


@pytest.mark.slow
def test_launcher_times_out_and_leaves_no_process(tmp_path):
    with pytest.raises(TimeoutError, match="_sleeps on 2 processes"):
        launch(_sleeps, 2, str(tmp_path), timeout_s=3.0)
    pids = _pids(tmp_path)
    assert len(pids) == 2 and all(_gone(pid) for pid in pids), pids


@pytest.mark.slow
def test_torchrun_runs_the_same_training_function():
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                           "-m", "dlbook.distributed"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "world size 2: final loss" in done.stdout


def test_bad_inputs():
    net, x, y = _batch()
    check_bad_inputs([
        (lambda: launch(train_data_parallel, 0, SMALL), ValueError, "nprocs"),
        (lambda: launch(train_data_parallel, "2", SMALL), TypeError, "nprocs"),
        (lambda: launch(42, 2), TypeError, "fn"),
        (lambda: launch(lambda rank, world_size: rank, 2), TypeError, "fn"),
        (lambda: launch(train_data_parallel, 2, SMALL, timeout_s=0), ValueError, "timeout_s"),
        (lambda: launch(train_data_parallel, 2, SMALL, start_method="fork"), ValueError, "start_method"),
        (lambda: train_single(DataParallelConfig(batch_size=100)), ValueError, "batch_size"),
        (lambda: train_data_parallel(0, 3, SMALL), ValueError, "world_size"),
        (lambda: train_single(DataParallelConfig(comm_repeats=0)), ValueError, "comm_repeats"),
        (lambda: train_single("config"), TypeError, "config"),
        (lambda: shard_average_gradient(net, x, y, [30, 20]), ValueError, "sizes"),
        (lambda: shard_average_gradient(net, x, y, [60, 0]), ValueError, "sizes[1]"),
        (lambda: shard_average_gradient(net, x[:, 0], y, [60]), ValueError, "x"),
        (lambda: shard_average_gradient(net, x, y[:50], [60]), ValueError, "y"),
        (lambda: accumulated_gradient(net, x, y, 0), ValueError, "micro_batch"),
        (lambda: accumulated_gradient("net", x, y, 5), TypeError, "model"),
        (lambda: ring_allreduce([torch.ones(4), torch.ones(5)]), ValueError, "tensors[1]"),
        (lambda: ring_allreduce([]), ValueError, "len(tensors)"),
        (lambda: train_resumable(SMALL, 0, "."), ValueError, "steps"),
    ])
