#!/usr/bin/env bash
# The Helm chart (charts/weatherwise): lint, render with default and example values, validate
# every manifest offline, and hold it to the binaries it runs (tests/chart/check.py).
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/lib/backends.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/weatherwise/target}"
ensure_python_tools
ensure_helm
cargo build -q -p ww -p ww-operator --locked >&2
"$WW_STATE/venv/bin/python" tests/chart/check.py "$HELM" "$CARGO_TARGET_DIR/debug/ww" \
  "$CARGO_TARGET_DIR/debug/ww-operator" "${KUBERNETES_VALIDATE:-$WW_STATE/venv/bin/kubernetes-validate}"
