#!/usr/bin/env bash
# The app's main path on `ww dev` (embedded backends, simulated weather), over HTTP: starts a
# fresh `ww dev` and runs tests/e2e/walkthrough.py against it (sign up, home, weather,
# missions, a photo proof, the coupon it earns, a created mission a friend completes, a post a
# friend comments on). Prints `ww dev`'s log when it fails.
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/weatherwise/target}"

cargo build -p ww --locked >&2
data=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$CARGO_TARGET_DIR/debug/ww" dev --listen "127.0.0.1:$port" --data-dir "$data" --log-format json >"$data/ww.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -rf "$data"' EXIT
base="http://127.0.0.1:$port"
for _ in $(seq 300); do curl -sf "$base/readyz" >/dev/null && break; sleep 0.1; done
if ! python3 tests/e2e/walkthrough.py "$base"; then
  echo "--- ww dev log (last 60 lines) ---" >&2
  tail -n 60 "$data/ww.log" >&2
  exit 1
fi
