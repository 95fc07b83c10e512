# leukoxai-nb: `make book` (install, run every chapter in the quick profile, render the report) and
# `make test` (install, check notebooks and modules are in sync, run the infrastructure notebooks' tests and the
# pytest suite, which executes every chapter in the smoke profile and opens the report in headless Chromium).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PROFILE ?= quick

.PHONY: book test venv browser sync-check clean help
help:
	@echo "make book   - install, run all chapters (PROFILE=$(PROFILE)), render _book/index.html"
	@echo "make test   - install, sync check, notebook tests, pytest (smoke book + browser check)"

venv: $(STAMP)
$(STAMP): settings.ini setup.py constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade "pip>=24" "setuptools>=64" wheel
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[dev]"
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (leukoxai-nb)" >/dev/null
	touch $(STAMP)

book: venv
	@start=$$(date +%s); \
	$(BIN)/leukoxai run --profile $(PROFILE) && \
	$(BIN)/leukoxai render --profile $(PROFILE) && \
	echo "book built in $$(( $$(date +%s) - start )) s (install excluded)" && \
	echo "report: $(CURDIR)/_book/index.html"

# Headless Chromium for the report's browser test: Debian's package when we may install it.
browser:
	@if command -v chromium >/dev/null || command -v chromium-browser >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing Debian's chromium for the browser test"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	    || echo "could not install chromium: the browser test will fail under CI and skip elsewhere"; \
	else echo "no chromium and no root: the browser test is skipped (set LEUKOXAI_CHROMIUM to a browser)"; fi

# Notebooks are the source: exporting them must not change any module.
sync-check: venv
	$(BIN)/nbdev_export
	@if git rev-parse --git-dir >/dev/null 2>&1; then \
	  if [ -n "$$(git status --porcelain -- leukoxai_nb)" ]; then \
	    echo "leukoxai_nb/ differs from the notebooks: run nbdev_export and commit"; git status --porcelain -- leukoxai_nb; exit 1; \
	  fi; fi

test: venv browser sync-check
	$(BIN)/nbdev_test --n_workers 1 --skip_file_re '^0'
	$(BIN)/python -m pytest -q -p no:cacheprovider tests

clean:
	rm -rf _book results/smoke
