#!/usr/bin/env bash
# Make the wheel folder that tools/gpu-build.sh installs from on a machine with
# no network. Run it HERE (a machine that reaches PyPI), from the repository root:
#
#     echo /.whl/ >> .git/info/exclude      # once: keep the wheels out of git
#     tools/gpu-wheels.sh                   # writes .whl/ (about 58 MiB, 81 wheels)
#
# Target: CPython 3.12 on manylinux x86_64 (the GPU machine's python3, which
# already has a CUDA torch and numpy, scipy, matplotlib, scikit-learn, pandas,
# statsmodels, networkx, tqdm, pytest). The folder holds what the book build
# needs beyond those: Jupyter Book and its closure (Sphinx, MyST-NB,
# jupyter-cache, nbclient, ipykernel, the theme), jupytext, MathJax
# (django-static-mathjax) and setuptools (to install dlbook itself). Versions
# are pinned to the ones in this checkout's .venv, so the GPU build runs the
# tested toolchain. Wheels of packages the GPU image is known to ship are left
# out (see IN_IMAGE) to stay inside the 64 MiB the device tool carries, working
# tree included; if pip there reports one of them missing or too old, delete it
# from IN_IMAGE and run this again.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-.whl}
LIMIT_MIB=${LIMIT_MIB:-60}
# What the build installs (requirements.txt less torch and the test/Jupyter-only
# packages that tools/gpu-build.sh skips) plus the build backend for `pip install -e .`.
NEEDS=("jupyter-book>=1,<2" "jupytext>=1.16" "django-static-mathjax==3.2.2.1" "setuptools>=77")
# Distributions the GPU image ships (.library/device/KINDS.md, "Python packages
# already there") that nothing here pins tightly: dropped from the folder. Kept
# although the image has them: markdown-it-py and mdurl (myst-parser wants
# markdown-it-py~=3.0), click, jinja2, markupsafe and pyyaml (small, pinned by
# Jupyter Book or Sphinx), so an image with other versions still resolves.
IN_IMAGE="attrs certifi charset-normalizer fonttools idna numpy packaging pillow psutil pygments \
python-dateutil requests six typing-extensions urllib3 pytest pluggy iniconfig"

constraints=$(mktemp)
trap 'rm -f "$constraints"' EXIT
if [ -x .venv/bin/python ]; then
  .venv/bin/python -m pip freeze --exclude-editable | grep -v -i -E '^(torch|dlbook|nvidia-|triton)([=@ ]|$)' | grep '==' > "$constraints" || true
fi
mkdir -p "$OUT"
python3 -m pip download --quiet --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_26_x86_64 \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux_2_12_x86_64 \
  --platform manylinux2010_x86_64 --platform manylinux_2_5_x86_64 --platform manylinux1_x86_64 \
  -c "$constraints" -d "$OUT" "${NEEDS[@]}"
for name in $IN_IMAGE; do
  pattern=$(echo "$name" | tr '-' '_')
  rm -f "$OUT"/"$pattern"-[0-9]*.whl "$OUT"/"$name"-[0-9]*.whl
done
size=$(du -sm "$OUT" | cut -f1)
echo "$(ls "$OUT" | wc -l) wheels, ${size} MiB in $OUT (limit ${LIMIT_MIB} MiB, leaving room for the tree)"
if [ "$size" -gt "$LIMIT_MIB" ]; then
  echo "too large for the device tool: use MODE=pages (tools/gpu-build.sh), which needs no site toolchain" >&2
  exit 1
fi
