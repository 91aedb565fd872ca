# saasbase: everyday commands. `make` alone lists them.
#
# Every variable below can be overridden on the command line, e.g.
#   make test FUZZTIME=0            (skip the fuzz run)
#   make test GO_TEST_FLAGS='-count=1 -run TestSignup' PKGS=./internal/tenant/...
#   make test INTEROP=0             (skip make interop, which a custom PKGS skips too)
#   make bench BENCH=OneLimit PKGS=./internal/ratelimit/
#   make migrate DIR=status

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

GO            ?= go
BIN           ?= bin/api
PKGS          ?= ./...
GO_TEST_FLAGS ?= -race -count=1 -timeout 20m

# The short fuzz runs that follow the tests. Each is package:target:budget, since go test fuzzes
# one target of one package at a time. The budgets are counts of executions (about 10 s each on
# this box), not durations: a duration -fuzztime races Go's fuzz coordinator at its deadline and
# fails with "context deadline exceeded" and no crasher (go.dev/issue/75804, unfixed in Go 1.26).
# FUZZTIME, when set, replaces every budget; FUZZTIME=0 skips the runs. One target alone:
#   make fuzz FUZZ=./internal/billing/metering/:FuzzParseEvents FUZZTIME=100000x
FUZZTIME      ?=
FUZZ          ?= ./internal/platform/httpx/:FuzzDecode:60000x ./internal/billing/metering/:FuzzParseEvents:30000x ./internal/server/:FuzzOperations:5000x

# make interop is part of `make test` when it runs every package (INTEROP=1 or 0 says otherwise).
INTEROP       ?= $(if $(filter ./...,$(PKGS)),1,0)

BENCH         ?= .
BENCH_COUNT   ?= 1
BENCH_FLAGS   ?= -benchmem -timeout 30m

# stripe-mock is the Stripe stand-in the tests start (docs/architecture.md, "Tests").
STRIPE_MOCK_VERSION ?= v0.203.0
GOBIN_DIR := $(or $(shell $(GO) env GOBIN 2>/dev/null),$(shell $(GO) env GOPATH 2>/dev/null)/bin)

# For `make token`.
TENANT ?= acme
ROLE   ?= owner
TTL    ?= 1h

.PHONY: help run build test fuzz bench lint compose migrate token tools debs browser clean chaos load interop

help: ## list the targets
	@echo 'Usage: make <target> [VAR=value ...]'
	@echo
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-9s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

# `make run` gives payments a Stripe to talk to: stripe-mock on RUN_STRIPE_ADDR, started with
# the service and stopped with it, unless STRIPE_SECRET_KEY points the service at Stripe.
RUN_STRIPE_ADDR ?= 127.0.0.1:12111

run: build tools ## migrate (creating the database and roles) and serve on HTTP_ADDR (:8080) against local PostgreSQL and Redis, with stripe-mock for payments unless STRIPE_SECRET_KEY is set
	$(BIN) migrate up
	@if [ -n "$${STRIPE_SECRET_KEY:-}" ]; then exec $(BIN) serve; fi; \
	if curl -s -o /dev/null http://$(RUN_STRIPE_ADDR)/; then echo "run: something already answers on $(RUN_STRIPE_ADDR) (RUN_STRIPE_ADDR)"; exit 1; fi; \
	mock="$$(command -v stripe-mock || echo "$(GOBIN_DIR)/stripe-mock")"; \
	mkdir -p bin/stripe-mock; rm -f bin/stripe-mock/run-https.sock; \
	"$$mock" -http-addr $(RUN_STRIPE_ADDR) -https-unix bin/stripe-mock/run-https.sock >bin/run-stripe-mock.log 2>&1 & mock_pid=$$!; \
	trap 'kill $$mock_pid 2>/dev/null; wait $$mock_pid 2>/dev/null || true' EXIT; \
	trap 'exit 130' INT TERM; \
	echo "run: stripe-mock on $(RUN_STRIPE_ADDR) answers payments (log: bin/run-stripe-mock.log; set STRIPE_SECRET_KEY to use Stripe)"; \
	STRIPE_SECRET_KEY=sk_test_local STRIPE_API_URL=http://$(RUN_STRIPE_ADDR) $(BIN) serve

build: ## build the static binary to bin/api
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN) ./cmd/api

define run-fuzz
@for f in $(FUZZ); do \
	pkg=$${f%%:*}; rest=$${f#*:}; target=$${rest%%:*}; budget=$${rest#"$$target"}; \
	budget=$${budget#:}; budget=$(or $(FUZZTIME),$${budget:-10000x}); \
	echo "$(GO) test -run '^\$$' -fuzz '^$$target\$$' -fuzztime $$budget $$pkg"; \
	$(GO) test -run '^$$' -fuzz "^$$target\$$" -fuzztime "$$budget" "$$pkg"; \
done
endef

test: tools debs browser compose ## install what the tests need (tools, debs, browser), check the compose file, run all tests with the race detector, short fuzz runs (FUZZTIME=0 skips them), then make interop (INTEROP=0 skips it)
	$(GO) test $(GO_TEST_FLAGS) $(PKGS)
ifneq ($(FUZZTIME),0)
	$(run-fuzz)
endif
ifneq ($(INTEROP),0)
	@$(MAKE) --no-print-directory interop
endif

fuzz: ## only the fuzz runs (FUZZ, FUZZTIME)
	$(run-fuzz)

bench: ## benchmarks (BENCH=regexp, BENCH_COUNT, PKGS)
	$(GO) test -run '^$$' -bench '$(BENCH)' -count $(BENCH_COUNT) $(BENCH_FLAGS) $(PKGS)

.PHONY: bench-lifecycle
bench-lifecycle: ## export throughput (200,000 usage events) and the purge of a tenant with 1,000,000, with the longest lock wait of concurrent requests; not part of make test
	$(GO) test -run '^$$' -bench 'BenchmarkExport$$|BenchmarkPurge1MUsageEvents' -benchtime 1x -count $(BENCH_COUNT) -timeout 30m ./internal/export/ ./internal/purge/

lint: compose ## gofmt (any listed file fails), go vet, and the compose file
	@unformatted="$$(gofmt -l .)"; \
	if [ -n "$$unformatted" ]; then echo "gofmt: these files need formatting (run gofmt -w):"; echo "$$unformatted"; exit 1; fi
	$(GO) vet $(PKGS)

# No Docker engine is needed: `config` parses and validates the file. Skipped where neither
# docker-compose nor the compose plugin is installed, except in CI (.ci/run installs it).
compose: ## validate docker-compose.yml
	@if command -v docker-compose >/dev/null 2>&1; then \
		echo "docker-compose config -q"; docker-compose config -q; \
	elif docker compose version >/dev/null 2>&1; then \
		echo "docker compose config -q"; docker compose config -q; \
	elif [ "$${CI:-}" = true ]; then echo "compose: docker-compose is not installed (.ci/run installs it)"; exit 1; \
	else echo "compose: docker-compose not installed, compose file check skipped"; fi

migrate: ## run migrations: DIR=up (default), down or status
	$(GO) run ./cmd/api migrate $(or $(DIR),up)

token: ## print a development JWT: TENANT=acme ROLE=owner TTL=1h
	@$(GO) run ./cmd/api token --tenant $(TENANT) --role $(ROLE) --ttl $(TTL)

tools: ## install stripe-mock (STRIPE_MOCK_VERSION) into GOPATH/bin, unless that version is there
	@if $(GO) version -m "$(GOBIN_DIR)/stripe-mock" 2>/dev/null | grep -Eq '^[[:space:]]+mod[[:space:]]+github.com/stripe/stripe-mock[[:space:]]+$(STRIPE_MOCK_VERSION)([[:space:]]|$$)'; then \
		echo "stripe-mock $(STRIPE_MOCK_VERSION) already in $(GOBIN_DIR)"; \
	else \
		echo "$(GO) install github.com/stripe/stripe-mock@$(STRIPE_MOCK_VERSION)"; \
		$(GO) install github.com/stripe/stripe-mock@$(STRIPE_MOCK_VERSION); \
	fi

# Programs from Debian that tests drive, as command:package: chromium renders GET /docs,
# promtool and prometheus test the alerts and scrape the service, jq runs the README's
# session, node and npm the browser test, docker-compose validates docker-compose.yml. Installed where missing if this user may (root,
# or sudo without a password); elsewhere the tests that need them skip, except under CI=true.
DEBS ?= /usr/bin/chromium:chromium promtool:prometheus prometheus:prometheus jq:jq curl:curl node:nodejs npm:npm docker-compose:docker-compose

debs: ## install the Debian packages the tests drive (DEBS: chromium, prometheus, jq, node), where missing
	@missing=""; \
	for cp in $(DEBS); do command -v "$${cp%%:*}" >/dev/null 2>&1 || missing="$$missing $${cp#*:}"; done; \
	missing="$$(printf '%s\n' $$missing | sort -u | tr '\n' ' ')"; \
	if [ -z "$${missing// /}" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then sudo=""; elif sudo -n true 2>/dev/null; then sudo="sudo -n"; \
	else echo "debs: not root and no sudo: the tests that need $$missing skip (apt-get install $$missing)"; \
		[ "$${CI:-}" != true ] || exit 1; exit 0; fi; \
	echo "apt-get install -y $$missing"; \
	export DEBIAN_FRONTEND=noninteractive; \
	$$sudo apt-get install -y -q $$missing || { $$sudo apt-get update -q && $$sudo apt-get install -y -q $$missing; }

# browser/ holds the browser test's npm packages (playwright-core, which drives Debian's
# chromium and never downloads a browser, and the redoc whose bundle openapi/docs/ vendors).
# npm ci runs again only when package-lock.json has changed since the last one.
browser: debs ## npm ci in browser/ for the browser test, unless already done for this package-lock.json
	@if ! command -v npm >/dev/null 2>&1; then \
		echo "browser: no npm: the browser tests skip"; [ "$${CI:-}" != true ] || exit 1; exit 0; fi; \
	if cmp -s browser/package-lock.json browser/node_modules/.saasbase-package-lock.json; then exit 0; fi; \
	echo "cd browser && npm ci --ignore-scripts"; \
	cd browser && npm ci --ignore-scripts --no-audit --no-fund && cp package-lock.json node_modules/.saasbase-package-lock.json

# Jaeger, which the tracing tests run (internal/platform/tracing/jaegertest): built from
# tools/jaeger, a module of its own, into the user cache where the tests look for it (they build
# it themselves if this did not run). The first build compiles for minutes; later ones only check.
.PHONY: jaeger
tools: jaeger
jaeger: ## build Jaeger (tools/jaeger/go.mod) for the tracing tests, unless up to date
	cd tools/jaeger && GOWORK=off $(GO) build -buildvcs=false -o "$${XDG_CACHE_HOME:-$$HOME/.cache}/saasbase/jaeger/jaeger" github.com/jaegertracing/jaeger/cmd/jaeger

clean: ## remove build and coverage output
	rm -rf bin coverage.out coverage.html *.coverprofile

# `make load`: cmd/load against a fresh bin/api on a port of its own, so a `make run` on :8080
# can stay up. The server's log goes to bin/load-api.log rather than among the progress lines;
# its per-IP budget of signup and token requests is lifted, since the generator signs up every
# tenant from one address. The trap stops the server however the run ends.
LOAD_ADDR  ?= 127.0.0.1:18080
LOAD_FLAGS ?= -duration 30s
# The service and the bare baseline get pools of the same size, so the comparison is of what
# each does per request; 4 is pgx's default on up to 4 cores (docs/performance.md).
LOAD_DB_CONNS ?= 4
LOAD_STRIPE_ADDR ?= 127.0.0.1:18111

load: build ## run cmd/load against a fresh server on LOAD_ADDR, with stripe-mock on LOAD_STRIPE_ADDR if installed (LOAD_FLAGS, default -duration 30s)
	$(BIN) migrate up
	@for a in $(LOAD_ADDR) $(LOAD_STRIPE_ADDR); do \
		if curl -s -o /dev/null http://$$a/; then echo "load: something already answers on $$a"; exit 1; fi; \
	done
	@pids=""; \
	trap 'kill $$pids 2>/dev/null; wait $$pids 2>/dev/null || true' EXIT; \
	trap 'exit 130' INT TERM; \
	ready() { for i in $$(seq 100); do \
		if curl -s -o /dev/null "$$2"; then return 0; fi; \
		if ! kill -0 $$1 2>/dev/null || [ $$i = 100 ]; then return 1; fi; \
		sleep 0.1; \
	done; }; \
	mock="$$(command -v stripe-mock || echo "$(GOBIN_DIR)/stripe-mock")"; \
	if [ -x "$$mock" ]; then \
		mkdir -p bin/stripe-mock; rm -f bin/stripe-mock/https.sock; \
		"$$mock" -http-addr $(LOAD_STRIPE_ADDR) -https-unix bin/stripe-mock/https.sock >bin/load-stripe-mock.log 2>&1 & pids="$$pids $$!"; \
		if ! ready $$! http://$(LOAD_STRIPE_ADDR)/; then echo "load: stripe-mock did not start; bin/load-stripe-mock.log:"; tail -n 5 bin/load-stripe-mock.log; exit 1; fi; \
		export STRIPE_SECRET_KEY=sk_test_load STRIPE_API_URL=http://$(LOAD_STRIPE_ADDR); \
		echo "load: stripe-mock on $(LOAD_STRIPE_ADDR): payments go to it"; \
	else echo "load: no stripe-mock (make tools installs it): payments will answer 503"; fi; \
	HTTP_ADDR=$(LOAD_ADDR) DATABASE_MAX_CONNS=$(LOAD_DB_CONNS) JOBS_ENABLED=true AUTH_RATE_LIMIT_PER_MINUTE=100000 \
		$(BIN) serve >bin/load-api.log 2>&1 & pids="$$pids $$!"; \
	if ! ready $$! http://$(LOAD_ADDR)/readyz; then \
		echo "load: bin/api serve did not get ready; the end of bin/load-api.log:"; tail -n 20 bin/load-api.log; exit 1; \
	fi; \
	admin_token=$$($(BIN) token --platform-admin); \
	echo "load: bin/api serve on $(LOAD_ADDR) (log: bin/load-api.log)"; \
	$(GO) run ./cmd/load -url http://$(LOAD_ADDR) -admin-token "$$admin_token" -bare-conns $(LOAD_DB_CONNS) \
		-database-url "$${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/saasbase?sslmode=disable}" $(LOAD_FLAGS)

chaos: ## two api serve processes under load; Redis and PostgreSQL cut and slowed (toxiproxy), restarts after SIGTERM and SIGKILL; prints the audit table (CHAOS_CALM=10s between faults)
	CHAOS_CALM=$(or $(CHAOS_CALM),10s) $(GO) test -race -count=1 -run '^TestChaos$$' -v -timeout 10m ./cmd/api/

# `make interop`: the standards' own client libraries (npm packages pinned in
# interop/package-lock.json) against a fresh bin/api with a database of its own, on free
# loopback ports; interop/run.sh starts and stops everything (interop/README.md). npm ci runs
# only when node_modules is missing or older than the lock file.
interop/node_modules/.package-lock.json: interop/package-lock.json interop/package.json
	cd interop && npm ci --no-audit --no-fund
	@touch $@

interop: build tools interop/node_modules/.package-lock.json ## the standards' own clients (OpenFeature, CloudEvents, Standard Webhooks, Stripe, jose, structured-headers, Redocly, Spectral, a typed openapi-fetch client) against a fresh service
	BIN=$(BIN) bash interop/run.sh

# `make scale`: the scale study (internal/scale, build tag "scale"; not part of `make test`).
# It seeds the small size, measures, grows the same database SCALE_FACTOR times (default 100;
# SCALE_EVENTS usage events at the large size, default 10M) and measures again. About 15-25
# minutes and 8 GB of disk on a 2-core box at the defaults; the database is dropped after.
SCALE_FACTOR ?= 100
SCALE_EVENTS ?= 10000000

.PHONY: scale
scale: ## the scale study: the same measurements at a small and a large size, and their ratio (SCALE_FACTOR, SCALE_EVENTS)
	SCALE_FACTOR=$(SCALE_FACTOR) SCALE_EVENTS=$(SCALE_EVENTS) $(GO) test -tags scale -count=1 -run '^TestScale$$' -v -timeout 90m ./internal/scale/
