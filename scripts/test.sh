#!/usr/bin/env bash
# The whole test suite: installs and starts PostgreSQL, Redis and the Kafka-protocol
# broker where they are missing (idempotently), then runs format and lint checks, every
# Rust test on both backends, and schemathesis against a running `ww dev`.
#
#   scripts/test.sh            everything
#   scripts/test.sh --quick    Rust tests only (no fmt/clippy/schemathesis)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/backends.sh

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/weatherwise/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
quick=""
[ "${1:-}" = "--quick" ] && quick=1

command -v cargo >/dev/null || { echo "error: cargo is required (install Rust with rustup)" >&2; exit 1; }
started=$(date +%s)

log "backends"
ensure_build_tools
ensure_postgres
ensure_redis
ensure_kafka
ensure_python_tools
# Real-backend tests fail when a backend is missing (never skipped silently); the
# WW_TEST_* variables the ensure_* steps exported tell them where the backends are.

# Databases and topics of earlier runs are disposable.
psql "$WW_TEST_POSTGRES_URL/postgres" -Atqc "select datname from pg_database where datname like 'ww_test_%'" 2>/dev/null |
  while read -r db; do psql "$WW_TEST_POSTGRES_URL/postgres" -qc "drop database if exists \"$db\"" >/dev/null 2>&1 || true; done

if [ -z "$quick" ]; then
  log "cargo fmt --check"
  cargo fmt --all -- --check
  log "cargo clippy"
  cargo clippy --workspace --all-targets --locked -- -D warnings
  # The operator links the event bus, HTTP and telemetry, never a SQL or Redis client: built
  # alone (no feature unification with the services), and its dependency tree checked.
  log "the operator builds without the platform's storage"
  cargo clippy -p ww-operator --bins --locked -- -D warnings
  if cargo tree -p ww-operator -e normal --prefix none --format '{p}' --locked | grep -E '^(sqlx|redis)[ -]'; then
    echo "error: ww-operator depends on a SQL or Redis client (see above)" >&2
    exit 1
  fi
fi

log "cargo test"
cargo test --workspace --locked

if [ -z "$quick" ]; then
  log "kubernetes-validate --strict on every manifest"
  scripts/validate-manifests.sh
  log "the Helm chart: lint, render, validate, held to the binaries (tests/chart)"
  tests/chart/run.sh
  log "the app's main path on ww dev (tests/e2e/walkthrough.py)"
  tests/e2e/app.sh
  log "the web app in Chromium (tests/browser)"
  tests/browser/run.sh
  log "the operator against a real cluster (when KUBECONFIG names one)"
  tests/e2e/cluster.sh
  log "the chart installed on a real cluster, a campaign run through it (when KUBECONFIG names one)"
  tests/e2e/install.sh
  log "schemathesis against ww dev"
  scripts/schemathesis.sh
fi

log "all tests passed in $(( $(date +%s) - started ))s"
