"""Execute every page of the book as a notebook, N at a time, without Sphinx.

The fallback of ``tools/gpu-build.sh`` (``MODE=pages``) for a machine to which the
site toolchain cannot travel: each page listed in ``_toc.yml`` is read the way
MyST-NB reads it, gets the same hidden build cell (``book/_ext/dlbook_build.py``:
the dependency hash and the device record), and runs top to bottom in a fresh
kernel with the build's environment (one thread per kernel, the per-cell timeout
of ``_config.yml``). A page passes when every cell runs, so every claim a page
asserts is checked exactly as in the site build; Sphinx's own warnings are not.

    python3 tools/run_pages.py --jobs 16 --out /tmp/pages

writes ``summary.json`` (per page: seconds, device, status, the failing cell's
error) and the device records into ``--out``, prints a table, and exits 1 if a
page failed.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _extension():
    spec = importlib.util.spec_from_file_location("dlbook_build", ROOT / "book" / "_ext" / "dlbook_build.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["dlbook_build"] = module
    spec.loader.exec_module(module)
    return module


def pages() -> list[str]:
    """Docnames in the order of ``_toc.yml``."""
    toc = (ROOT / "_toc.yml").read_text(encoding="utf8")
    return re.findall(r"^\s*(?:-\s*)?(?:root|file):\s*(\S+)", toc, re.M)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=0, help="pages at once (default: one per core)")
    parser.add_argument("--out", type=Path, default=ROOT / "_build" / "pages")
    parser.add_argument("pages", nargs="*", help="docnames (default: every page in _toc.yml)")
    args = parser.parse_args(argv)

    ext = _extension()
    from jupyter_cache.executors.utils import single_nb_execution
    from myst_nb.core.read import read_myst_markdown_notebook
    from myst_parser.config.main import MdParserConfig

    if args.jobs:
        os.environ["DLBOOK_JOBS"] = str(args.jobs)
    workers = ext.workers()
    records = args.out / "records"
    records.mkdir(parents=True, exist_ok=True)
    # The kernels' environment, as the site build sets it at builder-inited.
    os.environ.update({"DLBOOK_BUILD": "1", "DLBOOK_BUILD_RECORD_DIR": str(records),
                       "MPLBACKEND": "module://matplotlib_inline.backend_inline"})
    os.environ.update({name: str(ext.KERNEL_THREADS) for name in ext.THREAD_VARIABLES})
    config = (ROOT / "_config.yml").read_text(encoding="utf8")
    timeout = int(re.search(r"^\s*timeout:\s*(\d+)", config, re.M).group(1))

    jobs = []
    for docname in args.pages or pages():
        path = ROOT / f"{docname}.md"
        text, _ = ext.with_build_cell(docname, path.read_text(encoding="utf8"))
        if ext.BUILD_CELL_MARK not in text:
            continue  # no code cells
        jobs.append((docname, path, read_myst_markdown_notebook(text, MdParserConfig())))

    def run(job):
        docname, path, notebook = job
        return docname, single_nb_execution(notebook, cwd=str(path.parent), timeout=timeout,
                                            allow_errors=False, meta_override=True)

    summary: dict[str, dict] = {}
    start = time.perf_counter()
    print(f"executing {len(jobs)} pages with {workers} workers, {ext.KERNEL_THREADS} thread per kernel", flush=True)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for future in as_completed([pool.submit(run, job) for job in jobs]):
            docname, result = future.result()
            record_path = records / f"{docname.replace('/', '__')}.json"
            record = json.loads(record_path.read_text()) if record_path.is_file() else {}
            entry = {"seconds": round(result.time, 1), "device": record.get("device", "?"),
                     "status": "ok" if result.err is None else f"FAILED ({type(result.err).__name__})"}
            if result.err is not None:
                entry["error"] = str(result.err)[-3000:]
            summary[docname] = entry
            print(f"{entry['status']:>24}  {entry['seconds']:7.1f} s  {entry['device']:<28} {docname}", flush=True)
    wall = time.perf_counter() - start
    failed = [d for d, e in summary.items() if e["status"] != "ok"]
    ordered = {d: summary[d] for d, _, _ in jobs if d in summary}
    (args.out / "summary.json").write_text(json.dumps(
        {"workers": workers, "threads_per_kernel": ext.KERNEL_THREADS, "wall_seconds": round(wall, 1),
         "failed": failed, "pages": ordered}, indent=1), encoding="utf8")
    print(f"{len(jobs)} pages in {wall:.1f} s of wall time with {workers} workers; "
          f"{sum(e['seconds'] for e in summary.values()):.1f} s of page time; {len(failed)} failed")
    for docname in failed:
        print(f"--- {docname}\n{summary[docname]['error']}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
