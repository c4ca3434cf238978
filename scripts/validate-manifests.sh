#!/usr/bin/env bash
# Every Kubernetes manifest the project ships or generates, validated offline against the
# Kubernetes API schemas with `kubernetes-validate --strict` (unknown fields are errors).
# Custom resources (the samples) are checked against the generated CRDs by the Rust tests
# (operator/tests/crds.rs) and `ww campaign check`, which evaluate their CEL rules as well; what
# the operator creates for them (campaign and ChatCluster children) is rendered and checked here.
set -euo pipefail
cd "$(dirname "$0")/.."
validate="${KUBERNETES_VALIDATE:-kubernetes-validate}"
command -v "$validate" >/dev/null || { echo "error: kubernetes-validate not found (scripts/test.sh installs it)" >&2; exit 1; }
# The oldest Kubernetes the operator supports (k8s-openapi's v1_33 feature).
version=1.33.0
out="${CARGO_TARGET_DIR:-target}/manifests"
rm -rf "$out" && mkdir -p "$out"
# What the operator applies for every sample, at each kind of instant: idle (long before), while
# pre-warming with nothing Ready yet, open with pods Ready (autoscaler and route), and suspended.
render() {
  cargo run -q --locked -p ww-operator --bin ww-operator -- render config/samples/*.yaml \
    --image ghcr.io/weatherwise/ww:0.1.0 --ingress-class nginx --ingress-host weather.example.com \
    --ingress-tls-secret weather-example-tls --priority-class weatherwise-events --trusted-proxies 10.0.0.0/8 "$@"
}
render --at 2026-01-01T00:00:00Z >"$out/idle.yaml"
render --at 2026-12-01T22:56:00Z >"$out/prewarming.yaml"
render --at 2026-12-07T02:00:00Z --ready-replicas 2 \
  --event-node-selector weatherwise.io/pool=events --event-tolerations dedicated=events:NoSchedule,spot:NoExecute >"$out/open.yaml"
# The ChatCluster samples render in each of the above (their gateways' autoscaler on CPU: no
# custom metrics API); here with one, so the autoscaler reads `chat_sockets` per pod.
render --custom-metrics-served --kafka-prefix staging. >"$out/chat-connections.yaml"
sed 's/^  suspend: false$/  suspend: true/' config/samples/coupon-campaign-full.yaml >"$out/suspended-campaign.yaml"
cargo run -q --locked -p ww-operator --bin ww-operator -- render "$out/suspended-campaign.yaml" --image ghcr.io/weatherwise/ww:0.1.0 \
  --at 2026-12-07T02:00:00Z >"$out/suspended.yaml"
rm "$out/suspended-campaign.yaml"
files=(crds/*.yaml config/rbac/*.yaml "$out"/*.yaml)
"$validate" --strict --quiet --kubernetes-version "$version" "${files[@]}"
grep -q "kind: HorizontalPodAutoscaler" "$out/suspended.yaml" && { echo "error: a suspended campaign rendered an autoscaler" >&2; exit 1; }
# Every chat child was rendered and validated: both autoscaler metrics, all three roles, the route.
for expected in "name: chat_sockets" "name: chat-snow-festival-persister" "name: chat-default-api" \
  "path: /ws/chat/snow-festival-" "WW_CHAT_CLUSTER"; do
  grep -q -- "$expected" "$out/chat-connections.yaml" || { echo "error: no \"$expected\" in the chat render" >&2; exit 1; }
done
grep -q "chat cluster snow-festival: .* scaling on Cpu" "$out/idle.yaml" \
  || { echo "error: without custom metrics the chat gateways should scale on CPU" >&2; exit 1; }
echo "kubernetes-validate --strict (Kubernetes $version): ${#files[@]} file(s) valid"
