#!/usr/bin/env bash
# Runs a benchmark on a release build against local backends (started if missing):
#   scripts/bench.sh http [--json] [--duration-seconds N] ...
#   scripts/bench.sh operator [--campaigns 1000] [--json]   (no backends: an API-server stand-in)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/backends.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/weatherwise/target}"
if [ "${1:-}" = "operator" ]; then
  shift
  cargo build --release -p ww-operator --locked >&2
  exec "$CARGO_TARGET_DIR/release/ww-operator" bench "$@"
fi
ensure_postgres
ensure_redis
ensure_kafka
export WW_BENCH_DATABASE_URL="${WW_BENCH_DATABASE_URL:-$WW_TEST_POSTGRES_URL/ww_bench}"
cargo build --release -p ww --locked >&2
exec "$CARGO_TARGET_DIR/release/ww" bench "$@"
