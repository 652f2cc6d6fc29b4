#!/usr/bin/env bash
# Build the whole book on a CUDA machine that has Python 3.12 with a CUDA torch
# and no network, from wheels carried in the tree; bring back the build report
# and the log. Written for the device tool's H200 (16 cores, torch 2.11+cu130).
#
# Here (with network), once:
#     echo /.whl/ >> .git/info/exclude
#     tools/gpu-wheels.sh            # .whl/, about 58 MiB: Jupyter Book's closure for
#                                    # CPython 3.12 manylinux, less what the image has
# There, in one call of the device tool (run: command "bash tools/gpu-build.sh",
# carry [".whl"], timeout_s 540; expect ~1-2 min of offline install, then the build).
#
# MODE=site  (default) `make venv SYSTEM_TORCH=1` into /tmp (the machine's CUDA torch
#            is kept, everything else installs offline from .whl), then the strict
#            `make html` with one worker per core. What comes back in $OUT:
#            build.log, install.log, build-report.html, records.json (device and
#            time per page), gpu.txt.
# MODE=pages the fallback when the site's wheels cannot travel (over the 64 MiB
#            the tool carries): every page runs as a notebook with the same hidden
#            cell, environment and per-cell timeout (tools/run_pages.py), so every
#            asserted claim is checked; needs only myst-nb's closure in .whl.
#            Brings back build.log, summary.json, install.log, gpu.txt.
# JOBS=N     pages at once (default: one per core). DLBOOK_DEVICE=cpu forces the CPU.
set -uo pipefail
cd "$(dirname "$0")/.."
MODE=${MODE:-site}
WHEELS=${WHEELS:-$PWD/.whl}
OUT=${OUT:-/tmp/gpu-build-out}
PY=${PYTHON:-python3}
VENV=${VENV:-/tmp/dlbook-gpu-venv}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PIP_NO_INDEX=1 PIP_FIND_LINKS="$WHEELS" PIP_DISABLE_PIP_VERSION_CHECK=1
{
  nvidia-smi -L || true
  "$PY" -c 'import sys, torch; print(sys.version.split()[0], "torch", torch.__version__, "cuda", torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else "-")'
  nproc
} 2>&1 | tee "$OUT/gpu.txt"
start=$(date +%s)

if [ "$MODE" = site ]; then
  make venv SYSTEM_TORCH=1 PYTHON="$PY" VENV="$VENV" \
    SKIP_REQUIREMENTS="playwright jupyterlab ipywidgets nbconvert pytest" > "$OUT/install.log" 2>&1
  rc=$?
  tail -5 "$OUT/install.log"
  [ $rc = 0 ] || { echo "install failed (exit $rc): see install.log"; exit $rc; }
  echo "installed in $(( $(date +%s) - start )) s"
  make html VENV="$VENV" ${JOBS:+JOBS=$JOBS} 2>&1 | tee "$OUT/build.log" | grep -E "Executing notebook|executed|FAILED|WARNING|ERROR|Error|failed|book build finished"
  rc=${PIPESTATUS[0]}
  cp _build/html/book/back/build-report.html "$OUT/" 2>/dev/null || true
  "$VENV/bin/python" - "$OUT/records.json" <<'PY'
import json, pathlib, sys
records = pathlib.Path("_build/exec-records")
out = {p.stem: json.loads(p.read_text()) for p in sorted(records.glob("*.json"))}
pathlib.Path(sys.argv[1]).write_text(json.dumps(out, indent=1))
summary = out.get("_execution", {})
for page, entry in summary.get("pages", {}).items():
    print(f"{entry['seconds']:7.1f} s  worker {entry['worker']:>2}  {out.get(page.replace('/', '__'), {}).get('device', '?'):<26} {page}")
print("workers:", summary.get("workers"), " execution wall:", summary.get("wall_seconds"), "s  failed in workers:", summary.get("failed"))
PY
else
  "$PY" -m pip install -q --no-deps --no-compile --target /tmp/site "$WHEELS"/*.whl > "$OUT/install.log" 2>&1 \
    || { tail -5 "$OUT/install.log"; exit 1; }
  export PYTHONPATH="/tmp/site:$PWD"
  # One record per page would pass the tool's 8-file limit: keep them here, bring the summary.
  "$PY" tools/run_pages.py ${JOBS:+--jobs $JOBS} --out /tmp/dlbook-pages 2>&1 | grep -v "without encryption" | tee "$OUT/build.log"
  rc=${PIPESTATUS[0]}
  cp /tmp/dlbook-pages/summary.json "$OUT/" 2>/dev/null || true
fi
echo "gpu-build ($MODE) finished in $(( $(date +%s) - start )) s (exit $rc)" | tee -a "$OUT/gpu.txt"
exit "$rc"
