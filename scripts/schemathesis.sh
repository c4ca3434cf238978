#!/usr/bin/env bash
# Property-based API test: starts `ww dev` on a fresh data directory, signs up and logs
# in for a token, and lets schemathesis generate requests from /openapi.json. Fails on
# any 5xx or any response that breaks the documented schema, status or content type.
# POST /api/auth/logout-all is left out: it would end the one session every other
# generated request authenticates with (the contract tests cover it).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/backends.sh
ensure_python_tools
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/weatherwise/target}"

cargo build -p ww --locked >&2
data=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
# The per-address signup/login budget would answer most generated signups and logins 429.
WW_LOGIN_MAX_PER_ADDRESS=1000000 "$CARGO_TARGET_DIR/debug/ww" dev --listen "127.0.0.1:$port" --data-dir "$data" --log-format json >"$data/ww.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -rf "$data"' EXIT
base="http://127.0.0.1:$port"
for _ in $(seq 100); do curl -sf "$base/readyz" >/dev/null && break; sleep 0.1; done
curl -sf -X POST "$base/api/auth/signup" -H 'content-type: application/json' \
  -d '{"email":"schema@example.com","password":"rainy-day-umbrella","nickname":"schema"}' >/dev/null
token=$(curl -sf -X POST "$base/api/auth/login" -H 'content-type: application/json' \
  -d '{"email":"schema@example.com","password":"rainy-day-umbrella"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["accessToken"])')

"$SCHEMATHESIS" run "$base/openapi.json" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance \
  --header "Authorization: Bearer $token" \
  --exclude-path /api/auth/logout-all \
  --max-examples "${WW_SCHEMATHESIS_EXAMPLES:-60}" \
  --seed 1 \
  --suppress-health-check all \
  --request-timeout 10
