# dlbook: `make book` builds the executed site, `make test` runs the tests.
# Both create (or reuse) .venv and install requirements.txt and dlbook first.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# Where the book's _config.yml and _toc.yml live (tests build a scratch book by
# overriding it); the HTML lands in $(BOOK_ROOT)/_build/html.
BOOK_ROOT ?= .
# Strict: a warning, a broken reference or a failing cell fails the build.
JB_FLAGS ?= --warningiserror --nitpick --keep-going
STAMP  := $(VENV)/.installed
# Pages executed at once, each in its own kernel with one thread: `make book JOBS=1`
# is the serial build; empty means one per core (DLBOOK_JOBS in book/_ext/dlbook_build.py).
JOBS ?=
# SYSTEM_TORCH=1: build on the torch that $(PYTHON) already has (a CUDA build, say).
# The venv then sees $(PYTHON)'s packages, torch is left as found (pinned by a
# constraint so pip cannot replace it), and the rest comes from requirements.txt.
SYSTEM_TORCH ?=
# Requirement names to leave out of the install (e.g. "playwright jupyterlab" on a
# build-only machine); the tests that need them then skip or fail.
SKIP_REQUIREMENTS ?=

SYSTEM_TORCH_ON := $(filter 1 yes true,$(SYSTEM_TORCH))
# With SYSTEM_TORCH=1, Jupyter Book may come from $(PYTHON)'s packages, without a script in $(BIN).
JUPYTER_BOOK = $(if $(wildcard $(BIN)/jupyter-book),$(BIN)/jupyter-book,$(BIN)/python -c 'import sys; from jupyter_book.cli.main import main; sys.exit(main())')
SKIPPED := $(strip $(SKIP_REQUIREMENTS) $(if $(SYSTEM_TORCH_ON),torch))
empty :=
space := $(empty) $(empty)

.PHONY: book html venv venv-mode test test-fast browser serve clean help

help:
	@echo "make book        install (if needed) and build the executed site into _build/html"
	@echo "                 JOBS=N: pages executed at once (default one per core; 1 = serial)"
	@echo "                 SYSTEM_TORCH=1: reuse the torch (e.g. CUDA) that \$$PYTHON already has"
	@echo "make test        install (if needed) and run the whole test suite, strict build included"
	@echo "make test-fast   the package tests only, without building the book"
	@echo "make serve       serve _build/html on http://127.0.0.1:8000"
	@echo "make clean       remove _build (the execution cache with it)"

$(STAMP): requirements.txt pyproject.toml
ifeq ($(SYSTEM_TORCH_ON),)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
else
	@# Without ensurepip (Debian's python3 lacking python3-venv), make the venv without
	@# pip: the site-packages added below bring $(PYTHON)'s own pip.
	@test -x $(BIN)/python || $(PYTHON) -m venv --system-site-packages $(VENV) 2>/dev/null \
	  || $(PYTHON) -m venv --system-site-packages --without-pip $(VENV)
	@# --system-site-packages shows the base interpreter's packages; when $(PYTHON) is
	@# itself a venv or conda env, its own site-packages hold torch: add them too.
	@$(PYTHON) -c 'import sys; print("\n".join(p for p in sys.path if p.endswith(("site-packages", "dist-packages"))))' \
	  > "$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/_dlbook_system_site.pth"
	@$(BIN)/python -c 'import torch; print("SYSTEM_TORCH=1: using torch", torch.__version__, "from", torch.__file__, "(CUDA" if torch.cuda.is_available() else "(no CUDA", "available)")' \
	  || { echo "SYSTEM_TORCH=1 but $(PYTHON) has no torch: install one there, or drop SYSTEM_TORCH"; exit 1; }
	@$(BIN)/python -c 'import torch; print("torch==" + torch.__version__)' > $(VENV)/torch-constraint.txt
endif
	$(BIN)/python -m pip install --quiet --upgrade pip
ifneq ($(SKIPPED),)
	@grep -v -i -E '^[[:space:]]*($(subst $(space),|,$(SKIPPED)))[[:space:]]*([=<>!~;[]|$$)' requirements.txt > $(VENV)/requirements-used.txt
	$(BIN)/python -m pip install --quiet -r $(VENV)/requirements-used.txt $(if $(SYSTEM_TORCH_ON),-c $(VENV)/torch-constraint.txt)
else
	$(BIN)/python -m pip install --quiet -r requirements.txt
endif
	$(BIN)/python -m pip install --quiet --no-deps -e .
	@touch $(STAMP)

# A venv made for the other torch mode is not silently reused.
venv-mode:
	@if [ -f $(VENV)/pyvenv.cfg ]; then \
	  if grep -Eq '^include-system-site-packages *= *true' $(VENV)/pyvenv.cfg; then have=1; how=with; else have=; how=without; fi; \
	  if [ "$$have" != "$(if $(SYSTEM_TORCH_ON),1)" ]; then \
	    echo "$(VENV) was made $$how SYSTEM_TORCH=1: remove it (rm -rf $(VENV)) or choose another VENV=..."; exit 1; \
	  fi; \
	fi

# Create (or update) the environment only.
venv: venv-mode $(STAMP)

book: venv-mode $(STAMP)
	@$(MAKE) --no-print-directory html

# The build alone, without the install step; `make book` is what you want.
# JOBS=N runs N pages at once (default: one per core); every kernel has one thread.
html:
	@start=$$(date +%s); \
	$(if $(JOBS),DLBOOK_JOBS=$(JOBS)) PATH="$(abspath $(BIN)):$$PATH" $(JUPYTER_BOOK) build $(BOOK_ROOT) $(JB_FLAGS); \
	rc=$$?; echo "book build finished in $$(( $$(date +%s) - start )) s (exit $$rc)"; exit $$rc

test: venv-mode $(STAMP) browser
	$(BIN)/python -m pytest

# The browser tests drive Debian's chromium. Install it when we can (root with
# apt); otherwise those tests skip and say why.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing chromium for the browser tests"; \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null 2>&1 || \
	    { apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null 2>&1; } || \
	    echo "could not install chromium: the browser tests will skip"; \
	  else echo "no chromium and no way to install it: the browser tests will skip"; fi; }

test-fast: venv-mode $(STAMP)
	$(BIN)/python -m pytest -m "not build and not slow"

serve:
	@echo "serving _build/html at http://127.0.0.1:8000 (Ctrl-C to stop)"
	$(BIN)/python -m http.server 8000 --bind 127.0.0.1 --directory _build/html

clean:
	rm -rf _build

