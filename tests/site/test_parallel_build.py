"""Parallel execution: a serial and a parallel build print the same numbers.

Two builds of the same scratch book, one with ``JOBS=1`` and one with
``JOBS=2``, each from an empty cache: every glued value is identical, every
page in the parallel build renders from the cache it was pre-executed into
(MyST-NB executes nothing itself), and every kernel ran with one thread.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path

import pytest

from tests.site.test_book_build import _executed, _load_extension, _scratch_book, run_build

# Numbers that depend on the order of floating-point reductions, so a change in
# threads or in how pages are scheduled would show.
PAGES = {
    "matmul": """
        import torch
        import dlbook
        from myst_nb import glue

        dlbook.seed(0)
        x = torch.randn(300, 300, generator=torch.Generator().manual_seed(1))
        glue("matmul_sum", float((x @ x).sum()), display=False)
        glue("matmul_norm", float(torch.linalg.matrix_norm(x @ x.T)), display=False)
        """,
    "training": """
        import torch
        import dlbook
        from myst_nb import glue

        g = dlbook.seed(3)
        model = torch.nn.Sequential(torch.nn.Linear(20, 64), torch.nn.ReLU(), torch.nn.Linear(64, 1))
        x, y = torch.randn(256, 20, generator=g), torch.randn(256, 1, generator=g)
        opt = torch.optim.SGD(model.parameters(), lr=0.05)
        for _ in range(30):
            opt.zero_grad()
            loss = torch.nn.functional.mse_loss(model(x), y)
            loss.backward()
            opt.step()
        glue("final_loss", float(loss), display=False)
        """,
    "threads": """
        import os
        import numpy as np
        import torch
        from myst_nb import glue
        from threadpoolctl import threadpool_info

        glue("torch_threads", torch.get_num_threads(), display=False)
        glue("omp_env", os.environ.get("OMP_NUM_THREADS"), display=False)
        glue("pool_threads", max([p["num_threads"] for p in threadpool_info()] or [1]), display=False)
        glue("numpy_sum", float(np.random.default_rng(0).standard_normal((200, 200)).sum()), display=False)
        """,
}

REPORT = "# Report\n\n```{dlbook-build-report}\n```\n"


def _book(tmp_path: Path, name: str) -> Path:
    root = _scratch_book(tmp_path / name, PAGES)
    (root / "report.md").write_text(REPORT)
    toc = (root / "_toc.yml").read_text()
    (root / "_toc.yml").write_text(toc + "  - file: report\n")
    return root


def _glued(root: Path) -> dict[str, dict]:
    out = {}
    for path in sorted((root / "_build" / "jupyter_execute").glob("*.glue.json")):
        out[path.name] = json.loads(path.read_text())
    return out


def _value(glued: dict, page: str, key: str) -> str:
    return glued[f"{page}.glue.json"][key]["data"]["text/plain"]


@pytest.mark.build
def test_serial_and_parallel_builds_glue_identical_numbers(tmp_path, measured):
    serial_root, parallel_root = _book(tmp_path, "serial"), _book(tmp_path, "parallel")

    start = time.perf_counter()
    serial = run_build(serial_root, jobs=1)
    serial_s = time.perf_counter() - start
    assert serial.returncode == 0, serial.stdout + serial.stderr

    start = time.perf_counter()
    parallel = run_build(parallel_root, jobs=2)
    parallel_s = time.perf_counter() - start
    log = parallel.stdout + parallel.stderr
    assert parallel.returncode == 0, log
    phase = {name: json.loads((root / "_build" / "exec-records" / "_execution.json").read_text())["wall_seconds"]
             for name, root in (("serial", serial_root), ("parallel", parallel_root))}
    measured(f"scratch book (3 pages), cold build: JOBS=1 {serial_s:.1f} s, JOBS=2 {parallel_s:.1f} s; "
             f"execution phase {phase['serial']:.1f} s vs {phase['parallel']:.1f} s")

    a, b = _glued(serial_root), _glued(parallel_root)
    assert set(a) == {f"{name}.glue.json" for name in PAGES}
    assert a == b, "a serial and a parallel build must glue the same values"

    # The parallel build executed every page in its workers, and MyST-NB then
    # rendered each from the cache (it executes a page itself only on a miss).
    assert "with 2 worker(s)" in log, log
    assert len(re.findall(r"Executing notebook in worker \d of 2", log)) == len(PAGES), log
    assert "Executing notebook using" not in log, log
    assert len(re.findall(r"Using cached notebook", log)) == len(PAGES), log

    # The report names the worker count and each page's device.
    report = (parallel_root / "_build" / "html" / "report.html").read_text()
    assert "2 parallel workers" in report and "1 thread per kernel" in report
    assert report.count("cpu (") >= len(PAGES) or report.count("cuda (") >= len(PAGES)


@pytest.mark.build
def test_every_kernel_runs_with_one_thread(tmp_path):
    """Whatever the machine and the worker count, one thread per kernel."""
    root = _scratch_book(tmp_path, {"threads": PAGES["threads"]})
    result = run_build(root, jobs=2)
    assert result.returncode == 0, result.stdout + result.stderr
    glued = _glued(root)
    ext = _load_extension()
    assert _value(glued, "threads", "torch_threads") == str(ext.KERNEL_THREADS)
    assert _value(glued, "threads", "omp_env") == repr(str(ext.KERNEL_THREADS))
    assert _value(glued, "threads", "pool_threads") == str(ext.KERNEL_THREADS)


@pytest.mark.build
def test_an_unchanged_tree_executes_nothing_in_parallel_too(tmp_path):
    root = _scratch_book(tmp_path, {"a": "print(1)", "b": "print(2)"})
    first = run_build(root, jobs=2)
    assert first.returncode == 0, first.stdout + first.stderr
    # Force Sphinx to read every page again, keeping the execution cache.
    shutil.rmtree(root / "_build" / ".doctrees")
    shutil.rmtree(root / "_build" / "html")
    again = run_build(root, jobs=2)
    log = again.stdout + again.stderr
    assert again.returncode == 0, log
    assert "Executing notebook" not in log, log
    assert len(re.findall(r"Using cached notebook", log)) == 2, log


def test_worker_count_comes_from_dlbook_jobs(monkeypatch):
    ext = _load_extension()
    monkeypatch.setenv("DLBOOK_JOBS", "3")
    assert ext.workers() == 3
    monkeypatch.setenv("DLBOOK_JOBS", "")
    assert ext.workers() >= 1
    monkeypatch.setenv("DLBOOK_JOBS", "two")
    with pytest.raises(ValueError, match="DLBOOK_JOBS"):
        ext.workers()


@pytest.mark.build
def test_the_report_is_rewritten_when_a_page_executes_again(tmp_path):
    """An incremental build that executes one page updates the report page too:
    its table and summary describe this build, not the one that wrote it first."""
    root = _book(tmp_path, "incremental")
    first = run_build(root, jobs=2)
    assert first.returncode == 0, first.stdout + first.stderr
    report_path = root / "_build" / "html" / "report.html"
    assert "it executed 3 pages" in report_path.read_text()

    page = root / "matmul.md"
    page.write_text(page.read_text().replace("manual_seed(1)", "manual_seed(2)"))
    again = run_build(root, jobs=2)
    log = again.stdout + again.stderr
    assert again.returncode == 0, log
    assert _executed(log) == {"matmul"}, log
    report = report_path.read_text()
    assert "it executed 1 page " in report, report
    assert report.count("this build") == 1 and report.count("cache of an earlier build") == 2, report
