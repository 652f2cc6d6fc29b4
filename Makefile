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

.PHONY: book html test test-fast browser serve clean help

help:
	@echo "make book        install (if needed) and build the executed site into _build/html"
	@echo "make test        install (if needed) and run the whole test suite, strict build included"
	@echo "make test-fast   the package tests only, without building the book"
	@echo "make serve       serve _build/html on http://127.0.0.1:8000"
	@echo "make clean       remove _build (the execution cache with it)"

$(STAMP): requirements.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	@touch $(STAMP)

book: $(STAMP)
	@$(MAKE) --no-print-directory html

# The build alone, without the install step; `make book` is what you want.
html:
	@start=$$(date +%s); \
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/jupyter-book build $(BOOK_ROOT) $(JB_FLAGS); \
	rc=$$?; echo "book build finished in $$(( $$(date +%s) - start )) s (exit $$rc)"; exit $$rc

test: $(STAMP) browser
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

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not build"

serve:
	@echo "serving _build/html at http://127.0.0.1:8000 (Ctrl-C to stop)"
	$(BIN)/python -m http.server 8000 --bind 127.0.0.1 --directory _build/html

clean:
	rm -rf _build

