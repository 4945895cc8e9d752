# Two commands on a fresh clone: `make run` and `make test`. Everything else is installed from here.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
HOST ?= 127.0.0.1
PORT ?= 8888

.PHONY: install run test test-remote remote-hosts deploy-tools lint typecheck unit bench clean
NODE_CLIENT := tests/node/node_modules/.package-lock.json
TOOLS := .venv-tools/.installed-stamp

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,remote]'
	touch $(STAMP)

install: $(STAMP)

## JupyterLab's client library for the black-box test that drives fastkg with it (Node and npm).
$(NODE_CLIENT): tests/node/package.json tests/node/package-lock.json
	cd tests/node && npm ci --no-audit --no-fund --loglevel=error

## Start the gateway on 127.0.0.1:8888: the kernel API, the bundled example notebook API, and the two
## example notebook services of examples/services (a watched directory) side by side.
run: install
	KG_IP=$(HOST) KG_PORT=$(PORT) KG_API=jupyter-websocket,notebook-http,services \
	KG_SEED_URI=examples/api.ipynb FASTKG_SERVICES_DIR=examples/services FASTKG_SERVICES_ROOT=examples \
	$(VENV)/bin/fastkg

lint: install
	$(VENV)/bin/ruff check app tests bench
	$(VENV)/bin/ruff format --check app tests bench

typecheck: install
	$(VENV)/bin/mypy

## Lint, type-check and run the whole suite (unit, in-process, black-box, remote hosts).
test: lint typecheck $(NODE_CLIENT) remote-hosts $(TOOLS)
	$(PY) tests/setup_browser.py
	$(VENV)/bin/pytest -q -p no:cacheprovider

## checkov and kubernetes-validate check deploy/kubernetes offline; their own venv (checkov pins many packages).
$(TOOLS):
	python3 -m venv .venv-tools
	.venv-tools/bin/python -m pip install -q --upgrade pip
	.venv-tools/bin/python -m pip install -q 'checkov>=3.2,<4' 'kubernetes-validate>=1.31'
	touch $(TOOLS)

deploy-tools: $(TOOLS)

## The ingredients of the remote test hosts (Debian packages, a debootstrap root filesystem, wheels), cached.
remote-hosts: install
	$(PY) tests/remote/provision.py

## Only the remote suite: kernels on SSH hosts in network namespaces and in a private Docker daemon.
test-remote: remote-hosts
	$(VENV)/bin/pytest -q -p no:cacheprovider tests/remote

unit: install
	$(VENV)/bin/pytest -q tests/unit

## Interleaved benchmark against Kernel Gateway 3.0.1 (installed in its own venv).
bench: install
	$(PY) bench/run.py

clean:
	rm -rf $(VENV) .venv-kg .venv-tools .mypy_cache .ruff_cache .pytest_cache tests/node/node_modules
