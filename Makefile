# Two entry points (see README.md): `make test` and `make run`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
MODELS ?= models
DEFAULT_CONFIG := configs/default.yaml
DEFAULT_MODEL := $(MODELS)/triage-default
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: test run install lint services model clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# Reinstall when the dependency list changes.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

lint: install
	$(BIN)/ruff check .

# What the tests need from the machine: Debian's chromium (the inbox page test) and the local PostgreSQL server
# (the inbox tests run on SQLite and PostgreSQL). Installed or started only when missing.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
services:
	@command -v chromium >/dev/null || { $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
		$(SUDO) apt-get install -y -qq --no-install-recommends chromium >/dev/null; }
	@pg_isready -q -h 127.0.0.1 -p 5432 || $(SUDO) pg_ctlcluster --skip-systemctl-redirect \
		$$(ls /etc/postgresql) main start

test: lint services
	$(BIN)/pytest

# Builds the default model when it is missing (transformer on data/ only, a few minutes on 2 cores), then adds
# its ONNX export. An int8 copy is added only when it agrees with PyTorch on >= 99% of validation posts per task;
# otherwise serving uses the fp32 ONNX graph.
$(DEFAULT_MODEL)/latest: | $(STAMP)
	$(BIN)/triage-train fit --config $(DEFAULT_CONFIG) --output $(MODELS)

model: install $(DEFAULT_MODEL)/latest
	@grep -q '"onnx"' $(DEFAULT_MODEL)/$$(cat $(DEFAULT_MODEL)/latest)/manifest.json \
		|| $(BIN)/triage-train export --model $(DEFAULT_MODEL) --no-require-int8

# Serves on 127.0.0.1:$(PORT) in open mode unless TRIAGE_API_KEYS is set (see README: settings).
PORT ?= 8000
run: model
	$(BIN)/triage-serve --model $(DEFAULT_MODEL) --port $(PORT)

clean:
	rm -rf $(VENV) build *.egg-info
