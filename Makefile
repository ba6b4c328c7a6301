# Two entry points (see README.md): `make test` and `make run`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
MODELS ?= models
TEACHER_CONFIG := configs/default.yaml
TEACHER := $(MODELS)/triage-default
DEFAULT_CONFIG := configs/default-student.yaml
DEFAULT_MODEL := $(MODELS)/triage-default-student
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

# The default (served) model is a 3-layer student distilled from the 6-layer teacher, both trained on data/ only
# (README: the default model). Each is built only when missing: the teacher in about 4 minutes on 2 cores, the
# student in about 4 more. The student then gets its ONNX export; its int8 copy (with its most sensitive matmuls
# kept fp32 where needed) is added only when it agrees with PyTorch on >= 99% of validation posts per task,
# otherwise serving uses the fp32 ONNX graph.
$(TEACHER)/latest: | $(STAMP)
	$(BIN)/triage-train fit --config $(TEACHER_CONFIG) --output $(MODELS)

$(DEFAULT_MODEL)/latest: | $(TEACHER)/latest
	$(BIN)/triage-train distill --teacher $(TEACHER) --config $(DEFAULT_CONFIG) --output $(MODELS)

model: install $(DEFAULT_MODEL)/latest
	@grep -q '"onnx"' $(DEFAULT_MODEL)/$$(cat $(DEFAULT_MODEL)/latest)/manifest.json \
		|| $(BIN)/triage-train export --model $(DEFAULT_MODEL) --no-require-int8

# Serves on 127.0.0.1:$(PORT) in open mode unless TRIAGE_API_KEYS is set (see README: settings).
PORT ?= 8000
run: model
	$(BIN)/triage-serve --model $(DEFAULT_MODEL) --port $(PORT)

clean:
	rm -rf $(VENV) build *.egg-info
