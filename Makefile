# WizData mesh. A fresh machine needs two commands: `make run` and `make test`.
# Every tool the project needs is installed from here (Debian, npm, PyPI),
# never by hand.

CARGO  ?= cargo
VENV   := .venv
PYTHON := $(VENV)/bin/python
BUF    := node_modules/.bin/buf
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test test-rust test-python lint fmt tools linker

## run: the whole mesh on embedded defaults (SQLite under ./data), gRPC on :50051
run: linker
	$(CARGO) run -p wizdata-mesh --bin wizdata -- serve all --log-format pretty

## test: every Rust suite, then the polyglot clients (grpcio, buf curl)
test: test-rust test-python

test-rust: linker
	@if $(CARGO) nextest --version >/dev/null 2>&1; then \
		$(CARGO) nextest run --workspace --no-fail-fast; \
	else \
		$(CARGO) test --workspace --no-fail-fast; \
	fi

test-python: linker $(PYTHON) $(BUF)
	$(CARGO) build -p wizdata-mesh --bin wizdata
	$(PYTHON) -m pytest tests/python -q

## lint: buf STANDARD lint over the contracts, rustfmt, clippy
lint: linker $(BUF)
	cd proto && ../$(BUF) lint
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -q -- -D warnings

fmt:
	$(CARGO) fmt --all

tools: linker $(PYTHON) $(BUF)

# mold links several times faster than ld; .cargo/config.toml asks for it.
linker:
	@command -v mold >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq mold; }

$(BUF): package.json package-lock.json
	npm install --no-audit --no-fund
	@touch $@

$(PYTHON): tests/python/requirements.txt
	python3 -m venv $(VENV)
	$(PYTHON) -m pip install -q --disable-pip-version-check -r tests/python/requirements.txt
	@touch $@
