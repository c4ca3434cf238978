#!/usr/bin/env bash
# Every Kubernetes manifest the project ships or generates, validated offline against the
# Kubernetes API schemas with `kubernetes-validate --strict` (unknown fields are errors).
# Custom resources (the samples) are checked against the generated CRD by the Rust tests
# (operator/tests/crds.rs) and `ww campaign check`, which evaluate its CEL rules as well.
set -euo pipefail
cd "$(dirname "$0")/.."
validate="${KUBERNETES_VALIDATE:-kubernetes-validate}"
command -v "$validate" >/dev/null || { echo "error: kubernetes-validate not found (scripts/test.sh installs it)" >&2; exit 1; }
# The oldest Kubernetes the operator supports (k8s-openapi's v1_33 feature).
version=1.33.0
files=(crds/*.yaml)
"$validate" --strict --kubernetes-version "$version" "${files[@]}"
echo "kubernetes-validate --strict (Kubernetes $version): ${#files[@]} file(s) valid"
