# Two entry points (see README): `make train` and `make test`. Both create .venv when needed.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: train test lint

$(VENV)/installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

# --exist-ok: a rerun of `make train` starts a new run in saved_models/digits_nano.
# --cache: DigitsDet's canvases (197 MB) are decoded once; the batches are bit-identical.
train: $(VENV)/installed
	$(PY) -m training.train --exist-ok --cache

# pytest exits 5 when it collects no test: that is a failure here, never a silent pass.
test: $(VENV)/installed
	$(PY) -m pytest -q; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests" >&2; fi; exit $$rc

lint: $(VENV)/installed
	$(VENV)/bin/ruff check kyolo training tests benchmarks
	$(VENV)/bin/ruff format --check kyolo training tests benchmarks
