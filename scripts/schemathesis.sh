#!/usr/bin/env bash
# Property-based API test: starts `ww dev` on a fresh data directory, signs up and logs
# in for a token, and lets schemathesis generate requests from /openapi.json. Fails on
# any check schemathesis has (`--checks all`): 5xx, responses that break the documented
# schema, status, headers or content type, and requests the document calls valid that
# the service refuses — or the reverse. The seed is derived from the commit (printed), so
# each commit explores new cases and a failure replays with WW_SCHEMATHESIS_SEED.
# POST /api/auth/logout-all is left out: it would end the one session every other
# generated request authenticates with (the contract tests cover it). GET /api/live/campaigns
# is left out: a stream that stays open for minutes by design (services/ww/tests/web.rs and
# the browser tests cover it). The account holds the `marketing` role, so the dashboard's
# campaign check is explored past its role check.
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
WW_DATABASE_URL="sqlite://$data" "$CARGO_TARGET_DIR/debug/ww" admin grant-role schema@example.com marketing >/dev/null
token=$(curl -sf -X POST "$base/api/auth/login" -H 'content-type: application/json' \
  -d '{"email":"schema@example.com","password":"rainy-day-umbrella"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["accessToken"])')

commit=$(git rev-parse --short=7 HEAD 2>/dev/null || echo 0000001)
seed="${WW_SCHEMATHESIS_SEED:-$((16#$commit))}"
echo "schemathesis seed $seed (from commit $commit; replay with WW_SCHEMATHESIS_SEED=$seed)" >&2
"$SCHEMATHESIS" run "$base/openapi.json" \
  --checks all \
  --header "Authorization: Bearer $token" \
  --exclude-path /api/auth/logout-all \
  --exclude-path /api/live/campaigns \
  --max-examples "${WW_SCHEMATHESIS_EXAMPLES:-60}" \
  --seed "$seed" \
  --suppress-health-check all \
  --request-timeout 10
