# leukoxai-nb: `make book` (install, run every chapter in the quick profile, render the report) and
# `make test` (install, check notebooks and modules are in sync, run the infrastructure notebooks' tests and the
# pytest suite, which executes every chapter in the smoke profile and opens the report in headless Chromium).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PROFILE ?= quick
LAB_PORT ?= 8888

.PHONY: book test venv browser sync-check clean help lab
help:
	@echo "make book   - install, run all chapters (PROFILE=$(PROFILE)), render _book/index.html"
	@echo "make test   - install, sync check, notebook tests, pytest (smoke book + browser check)"
	@echo "make lab    - install, start JupyterLab on 127.0.0.1:$(LAB_PORT) with the project's kernel (chapters in nbs/)"

venv: $(STAMP)
$(STAMP): settings.ini setup.py constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade "pip>=24" "setuptools>=64" wheel
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[dev]"
	@# nbdev_clean sets every notebook's kernelspec display_name to its name ("python3"): the installed kernel must
	@# agree, or JupyterLab rewrites the metadata and marks a notebook modified as soon as it is opened.
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name python3 >/dev/null
	touch $(STAMP)

book: venv
	@start=$$(date +%s); \
	$(BIN)/leukoxai run --profile $(PROFILE) && \
	$(BIN)/leukoxai render --profile $(PROFILE) && \
	echo "book built in $$(( $$(date +%s) - start )) s (install excluded)" && \
	echo "report: $(CURDIR)/_book/index.html"

# JupyterLab for students: the project's kernel (.venv), bound to 127.0.0.1, the chapters as its root folder.
# Jupyter prints the URL with its token; --allow-root only when run as root (e.g. in a container);
# jupyter_server_config.py keeps JupyterLab from marking a notebook modified when it is opened.
lab: venv
	@echo "JupyterLab with the project's kernel; open the http://127.0.0.1:$(LAB_PORT)/lab?token=... URL printed below."
	@echo "Start with 00_data.ipynb; each chapter's parameters cell defaults to the smoke profile. Stop with Ctrl+C."
	@if [ "$$(id -u)" = 0 ]; then root=--allow-root; else root=; fi; \
	exec $(BIN)/jupyter lab --ip=127.0.0.1 --port=$(LAB_PORT) --no-browser $$root --ServerApp.root_dir=$(CURDIR)/nbs \
	  --config=$(CURDIR)/jupyter_server_config.py

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
