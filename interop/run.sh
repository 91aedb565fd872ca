#!/usr/bin/env bash
# make interop: the standards' own clients against a real service (interop/README.md).
#
# Creates a database of its own, migrates it with bin/api, starts stripe-mock and two replicas
# of bin/api on free loopback ports, runs every script under node's test runner, and stops
# and drops all of it however the run ends. Replica A signs with JWT key 1; replica B is the
# same service after a signing-key rotation (key 2, key 1's public key kept as previous) and
# runs no background jobs. Both share the database and a Redis key prefix of their own.
#
# Environment (all optional): BIN (bin/api), STRIPE_MOCK (found on PATH or in GOBIN),
# DATABASE_URL (a superuser URL; only its host, port and user are used), REDIS_URL,
# INTEROP_KEEP_LOGS=1 (keep the logs in bin/interop/ after a pass).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bin="${BIN:-bin/api}"
logs="$root/bin/interop"
mkdir -p "$logs"
rm -f "$logs"/*.log "$logs/stripe-mock.sock"

base_url="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable}"
db="saasbase_interop_$$_$(date +%s)"
# The database name replaces the path of the URL; its query (sslmode) is kept.
db_url="$(sed -E "s#^(postgres(ql)?://[^/]+)/[^?]*#\1/${db}#" <<<"$base_url")"
admin_url="$(sed -E "s#^(postgres(ql)?://[^/]+)/[^?]*#\1/postgres#" <<<"$base_url")"
redis_url="${REDIS_URL:-redis://127.0.0.1:6379/0}"
prefix="interop:$$:$(date +%s):"

pids=()
cleanup() {
	local rc=$?
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	psql "$admin_url" -XqAtc "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null 2>&1 ||
		echo "interop: could not drop database $db" >&2
	if command -v redis-cli >/dev/null 2>&1; then
		redis-cli -u "$redis_url" --scan --pattern "${prefix}*" 2>/dev/null |
			xargs -r -n 500 redis-cli -u "$redis_url" DEL >/dev/null 2>&1 || true
	fi
	if [ "$rc" != 0 ]; then
		for f in "$logs"/*.log; do
			[ -s "$f" ] || continue
			echo "== the end of $f"
			tail -n 15 "$f"
		done
	else
		echo "interop: passed in ${SECONDS}s (service and stripe-mock start, types, tsc, scripts)"
		[ "${INTEROP_KEEP_LOGS:-}" = 1 ] || rm -f "$logs"/*.log
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
	node -e 'const s = require("net").createServer().listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); })'
}
ready() { # ready <pid> <url> [curl flag]: polls for up to 20 s until the URL answers
	for _ in $(seq 200); do
		if curl -s ${3:-} -o /dev/null "$2"; then return 0; fi
		kill -0 "$1" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}

# Two Ed25519 seeds made for this run, and key 1's public key for replica B's previous keys.
read -r key1 key2 pub1 < <(node -e '
	const c = require("crypto");
	const seed = () => c.randomBytes(32);
	const pub = (s) => c.createPublicKey(c.createPrivateKey({
		key: Buffer.concat([Buffer.from("302e020100300506032b657004220420", "hex"), s]), format: "der", type: "pkcs8",
	})).export({ format: "der", type: "spki" }).subarray(12);
	const a = seed(), b = seed();
	console.log(a.toString("base64"), b.toString("base64"), pub(a).toString("base64"));
')

export DATABASE_URL="$db_url" REDIS_URL="$redis_url" REDIS_KEY_PREFIX="$prefix"
export JWT_SIGNING_KEY="$key1" WEBHOOK_SECRET_KEY="$(node -e 'console.log(require("crypto").randomBytes(32).toString("base64"))')"
export STRIPE_WEBHOOK_SECRET="whsec_interop_$(node -e 'console.log(require("crypto").randomBytes(16).toString("hex"))')"
export STRIPE_SECRET_KEY=sk_test_interop
export AUTH_RATE_LIMIT_PER_MINUTE=100000 WEBHOOKS_ALLOW_PRIVATE_NETWORKS=true
# Every script signs up at once: room for their password hashes side by side (a 503
# server_busy beyond it is retried by the scripts, as a client should).
export PASSWORD_HASH_CONCURRENCY=16
export FLAGS_POLL_INTERVAL=1s SHUTDOWN_DRAIN_DELAY=0s LOG_LEVEL="${INTEROP_LOG_LEVEL:-warn}"

# The typed session, meanwhile: types generated from the description, checked and compiled
# by tsc (strict) into interop/build.
(
	cd interop
	rm -rf build generated
	node_modules/.bin/openapi-typescript "$root/openapi/openapi.yaml" -o generated/api.d.ts &&
		node_modules/.bin/tsc -p tsconfig.json
) >"$logs/typed.log" 2>&1 &
typed_pid=$!
pids+=("$typed_pid")

# Migrations also touch cluster-wide objects (roles, their grants), so one racing another
# database's migration on the same server can fail with "tuple concurrently updated"; each
# migration is a transaction, so running it again is safe.
for try in 1 2 3; do
	"$bin" migrate up >"$logs/migrate.log" 2>&1 && break
	grep -q 'concurrently updated' "$logs/migrate.log" && [ "$try" != 3 ] ||
		{ echo "interop: bin/api migrate up failed"; cat "$logs/migrate.log"; exit 1; }
	sleep 1
done

mock="${STRIPE_MOCK:-$(command -v stripe-mock || echo "$(go env GOPATH)/bin/stripe-mock")}"
[ -x "$mock" ] || { echo "interop: no stripe-mock at $mock (make tools installs it)"; exit 1; }
mock_port="$(free_port)"
"$mock" -http-addr "127.0.0.1:$mock_port" -https-unix "$logs/stripe-mock.sock" >"$logs/stripe-mock.log" 2>&1 &
pids+=($!)
ready $! "http://127.0.0.1:$mock_port/" || { echo "interop: stripe-mock did not start"; exit 1; }
export STRIPE_API_URL="http://127.0.0.1:$mock_port"

port_a="$(free_port)"
HTTP_ADDR="127.0.0.1:$port_a" "$bin" serve >"$logs/api-a.log" 2>&1 &
pids+=($!)
pid_a=$!
port_b="$(free_port)"
while [ "$port_b" = "$port_a" ]; do port_b="$(free_port)"; done
HTTP_ADDR="127.0.0.1:$port_b" JWT_SIGNING_KEY="$key2" JWT_PREVIOUS_PUBLIC_KEYS="$pub1" JOBS_ENABLED=false \
	"$bin" serve >"$logs/api-b.log" 2>&1 &
pids+=($!)
pid_b=$!
ready "$pid_a" "http://127.0.0.1:$port_a/readyz" -f || { echo "interop: replica A did not get ready"; exit 1; }
ready "$pid_b" "http://127.0.0.1:$port_b/readyz" -f || { echo "interop: replica B did not get ready"; exit 1; }

export INTEROP_API_URL="http://127.0.0.1:$port_a" INTEROP_ROTATED_API_URL="http://127.0.0.1:$port_b"
export INTEROP_ADMIN_TOKEN="$("$bin" token --platform-admin --ttl 1h 2>>"$logs/migrate.log")"
export INTEROP_OPENAPI="$root/openapi/openapi.yaml"
echo "interop: replicas on :$port_a and :$port_b (rotated key), stripe-mock on :$mock_port, database $db"

echo "interop: ready after ${SECONDS}s"
wait "$typed_pid" || { echo "interop: the typed session does not compile:"; cat "$logs/typed.log"; exit 1; }
echo "interop: types generated and compiled"
cd interop
node --test --test-concurrency=16 --test-reporter=spec ${INTEROP_FILES:-tests/*.test.mjs build/*.test.js}
