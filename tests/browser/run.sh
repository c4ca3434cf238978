#!/usr/bin/env bash
# The web app in a real browser: installs Chromium and the npm packages when missing, builds
# `ww`, and runs tests/browser/app.test.mjs against a fresh `ww dev` it starts. Screenshots and
# the measured page weights land in tests/browser/artifacts/.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/lib/backends.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/weatherwise/target}"
ensure_browser_tools
cargo build -p ww --locked >&2
WW_BIN="$CARGO_TARGET_DIR/debug/ww" node tests/browser/app.test.mjs
