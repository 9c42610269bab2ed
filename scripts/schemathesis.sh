#!/usr/bin/env bash
# Property-based run of schemathesis against the OpenAPI document the server
# serves: a debug `livechat serve` on a fresh SQLite file on its own loopback
# port, as a platform agent and then as a tenant user. Every check named in
# CHECKS must hold for every generated case: no 5xx, every answer matches the
# document (status, content type, schema), data the document allows is
# accepted, data it forbids is refused with a 4xx.
#
# Usage: scripts/schemathesis.sh [extra schemathesis arguments]
# Environment: ST_MAX_EXAMPLES (cases per operation and phase, default 30),
# ST_TIMEOUT (wall-clock bound of each schemathesis run, default 150 s),
# LIVECHAT_BIN (default: target/debug/livechat, brought up to date first).
set -euo pipefail
cd "$(dirname "$0")/.."

# Pinned: a newer release may add checks or generate other data; bump on purpose.
SCHEMATHESIS_VERSION=4.32.5
VENV=target/schemathesis-venv
BIN=${LIVECHAT_BIN:-target/debug/livechat}
MAX_EXAMPLES=${ST_MAX_EXAMPLES:-30}
RUN_TIMEOUT=${ST_TIMEOUT:-150}
CHECKS=not_a_server_error,response_schema_conformance,positive_data_acceptance,negative_data_rejection,status_code_conformance,content_type_conformance

if ! "$VENV/bin/schemathesis" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
    python3 -m venv "$VENV"
    timeout 300 "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi
# A no-op when the tests already built it; never fuzz a stale binary.
[ -n "${LIVECHAT_BIN:-}" ] || cargo build --locked -p livechat

WORK=$(mktemp -d)
SERVER_PID=
cleanup() {
    if [ -n "$SERVER_PID" ]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

# A port of its own: ask the kernel for a free one.
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export LIVECHAT_JWT_SECRET
LIVECHAT_JWT_SECRET=$(python3 -c 'import secrets; print(secrets.token_hex(32))')
# Quotas and the rate limit would turn a fast fuzzer's requests into 429s,
# which say nothing about the document; they have tests of their own.
LIVECHAT_BIND=127.0.0.1:$PORT LIVECHAT_DATABASE_URL="sqlite://$WORK/livechat.db" \
    LIVECHAT_QUOTAS=off LIVECHAT_RATE_LIMIT_PER_MINUTE=0 LIVECHAT_LOG=warn \
    "$BIN" serve >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
BASE=http://127.0.0.1:$PORT/api/livechat
for _ in $(seq 1 100); do
    curl -fsS "$BASE/openapi.json" >/dev/null 2>&1 && break
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/server.log" >&2; exit 1; }
    sleep 0.1
done

# The tenant the run sends, fixed in schemathesis.toml ("header.X-Tenant-ID").
TENANT=1
AGENT_TOKEN=$("$BIN" token --sub 1 --role support_agent --ttl 1h)
USER_TOKEN=$("$BIN" token --sub 100 --tenant "$TENANT:koperasi_admin" --ttl 1h)

run() {
    local who=$1 token=$2
    shift 2
    printf '\n==> schemathesis as %s (%s cases per operation and phase)\n' "$who" "$MAX_EXAMPLES"
    timeout "$RUN_TIMEOUT" "$VENV/bin/schemathesis" --config-file scripts/schemathesis.toml run "$BASE/openapi.json" \
        --url "$BASE" \
        -H "Authorization: Bearer $token" \
        --checks "$CHECKS" \
        --max-examples "$MAX_EXAMPLES" --seed 1 \
        --request-timeout 15 \
        --report junit --report-dir "target/schemathesis-report/$who" \
        "$@"
}

status=0
run agent "$AGENT_TOKEN" "$@" || status=$?
# A tenant user: the same document, other answers (403 on agent-only routes,
# its own tenant's session).
run tenant-user "$USER_TOKEN" "$@" || status=$?
if [ "$status" -ne 0 ]; then
    echo "--- server log ---" >&2
    tail -50 "$WORK/server.log" >&2
fi
exit "$status"
