# mmscope: `make test` and `make demo` set everything up (idempotently) and run;
# `make lint` runs the style checks (tools/lint.sh) in an environment of their own.
# Variables: VENV=.venv (project-local env), PYTHON=... (use an existing env instead),
# TORCH_VERSION / TORCHVISION_VERSION (pinned pair), TORCH_INDEX_URL (CUDA builds),
# PIP_EXTRA (extra pip args, e.g. --find-links ../shared/wheels), PYTEST_ARGS.
VENV ?= .venv
PYTHON ?=
BASE_PYTHON ?= python3.11
TORCH_VERSION ?= 2.12.1
TORCHVISION_VERSION ?= 0.27.1
PIP_EXTRA ?=
TORCH_INDEX_URL ?=
PYTEST_ARGS ?=
OFFICIAL_DEPS ?=
PY := $(if $(PYTHON),$(PYTHON),$(VENV)/bin/python)
export VENV PYTHON BASE_PYTHON TORCH_VERSION TORCHVISION_VERSION PIP_EXTRA TORCH_INDEX_URL \
	OFFICIAL_DEPS

.PHONY: setup test test-fast demo lint clean-venv
setup:
	@bash tools/setup_env.sh

test: setup
	@echo "[test] $(PY) -m pytest tests projects/shapes_demo/tests $(PYTEST_ARGS)"
	@$(PY) -m pytest tests projects/shapes_demo/tests $(PYTEST_ARGS)

test-fast: setup
	@$(PY) -m pytest tests projects/shapes_demo/tests -m "not slow" $(PYTEST_ARGS)

lint:
	@bash tools/lint.sh

demo: setup
	@echo "[demo] $(PY) projects/shapes_demo/demo.py"
	@$(PY) projects/shapes_demo/demo.py

clean-venv:
	rm -rf $(VENV)
