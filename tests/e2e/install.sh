#!/usr/bin/env bash
# The whole platform installed on a real cluster with the Helm chart, then a coupon event run
# through it. Runs when KUBECONFIG names a reachable cluster; otherwise prints why it is skipped
# (scripts/test.sh runs it, so the skip is seen).
#
# What it needs besides the cluster:
#   WW_E2E_DATABASE_URL, WW_E2E_REDIS_URL, WW_E2E_KAFKA_BROKERS   backends the cluster's pods reach
#   the images: on kind (kubectl context kind-*) they are built (scripts/images.sh) and loaded;
#     elsewhere WW_E2E_IMAGE_REPOSITORY=REGISTRY/weatherwise names where `ww` and `ww-operator`
#     (tag = the chart's appVersion) were pushed
#   WW_E2E_KEEP=1   keep the namespace afterwards
#
# Steps: helm install into a fresh namespace (CRDs kept on uninstall, as the chart says) → every
# role Ready → a campaign opening a minute later applied → Prewarming → Open with counts in
# `kubectl get couponcampaigns` → coupons issued through a port-forward to the issuer → Closed →
# chat through the default ChatCluster's gateway (a WebSocket send and its ack) → helm uninstall.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/lib/backends.sh

if [ -z "${KUBECONFIG:-}" ]; then
  echo "SKIPPED tests/e2e/install.sh: KUBECONFIG is not set (no cluster; the chart is checked offline by" \
       "tests/chart/run.sh and the images by scripts/images.sh --test)"
  exit 0
fi
command -v kubectl >/dev/null || { echo "error: KUBECONFIG is set but kubectl is not installed" >&2; exit 1; }
kubectl version --request-timeout=10s >/dev/null || { echo "error: the cluster in KUBECONFIG=$KUBECONFIG is not reachable" >&2; exit 1; }
for v in WW_E2E_DATABASE_URL WW_E2E_REDIS_URL WW_E2E_KAFKA_BROKERS; do
  [ -n "${!v:-}" ] || { echo "error: $v must name a backend the cluster's pods can reach" >&2; exit 1; }
done
ensure_helm
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/weatherwise/target}"
version=$(sed -n 's/^appVersion: "\(.*\)"/\1/p' charts/weatherwise/Chart.yaml)
context=$(kubectl config current-context)
if [ -z "${WW_E2E_IMAGE_REPOSITORY:-}" ]; then
  [[ "$context" == kind-* ]] || { echo "error: set WW_E2E_IMAGE_REPOSITORY (images pushed there), or use a kind cluster" >&2; exit 1; }
  scripts/images.sh
  for image in ww ww-operator; do
    kind load image-archive "$CARGO_TARGET_DIR/images/$image.oci.tar" --name "${context#kind-}"
  done
  repo="localhost/weatherwise"
else
  repo="$WW_E2E_IMAGE_REPOSITORY"
fi

ns="ww-install-$(date +%s)"
release="ww$RANDOM"
pf_pids=()
cleanup() {
  for p in "${pf_pids[@]}"; do kill "$p" 2>/dev/null || true; done
  if [ -z "${WW_E2E_KEEP:-}" ]; then
    # Campaigns first, while the operator still runs to release their finalizers.
    kubectl -n "$ns" delete couponcampaigns --all --wait --timeout=120s >/dev/null 2>&1 || true
    kubectl -n "$ns" delete chatclusters --all --wait --timeout=120s >/dev/null 2>&1 || true
    "$HELM" -n "$ns" uninstall "$release" >/dev/null 2>&1 || true
    kubectl delete namespace "$ns" --wait=false >/dev/null 2>&1 || true
  fi
}
trap cleanup EXIT
step() { echo "==> install: $*"; }
fail() { echo "FAIL install: $*" >&2; kubectl -n "$ns" get pods,couponcampaigns,chatclusters >&2 || true; exit 1; }
until_ok() { local deadline=$(( $(date +%s) + $1 )); shift; until "$@" >/dev/null 2>&1; do [ "$(date +%s)" -lt "$deadline" ] || return 1; sleep 2; done; }

step "helm install into $ns"
# CRDs applied by hand (tests/e2e/cluster.sh) or by an earlier release are adopted.
adopt=()
kubectl get crd couponcampaigns.weatherwise.io >/dev/null 2>&1 && adopt=(--take-ownership)
kubectl create namespace "$ns" >/dev/null
kubectl -n "$ns" create secret generic weatherwise-backends --from-literal=database-url="$WW_E2E_DATABASE_URL" \
  --from-literal=redis-url="$WW_E2E_REDIS_URL" --from-literal=kafka-brokers="$WW_E2E_KAFKA_BROKERS" >/dev/null
kubectl -n "$ns" create secret generic weatherwise-jwt --from-literal=keys="e2e=$(openssl rand -hex 32)" >/dev/null
"$HELM" install "$release" charts/weatherwise -n "$ns" --wait --timeout 10m "${adopt[@]}" \
  --set image.repository="$repo/ww" --set image.tag="$version" --set image.pullPolicy=IfNotPresent \
  --set operator.image.repository="$repo/ww-operator" --set operator.image.tag="$version" \
  --set proofStore.kind=local --set weather.provider=simulated --set ingress.enabled=false \
  --set networkPolicies.enabled=false --set events.priorityClass.name="$release-events" \
  --set backends.kafka.replicationFactor="${WW_E2E_KAFKA_REPLICATION:-1}" \
  --set backends.kafka.minInsyncReplicas="${WW_E2E_KAFKA_REPLICATION:-1}" >/dev/null || fail "helm install"
kubectl -n "$ns" rollout status deploy --timeout=300s >/dev/null || fail "the roles did not become Ready"

step "a campaign opening a minute from now: Prewarming → Open → counts → Closed"
opens=$(date -u -d '+75 seconds' +%H:%M:%S)
closes=$(date -u -d '+4 minutes' +%H:%M:%S)
today=$(date -u +%F)
[ "$(date -u -d '+5 minutes' +%F)" = "$today" ] || fail "too close to midnight UTC; rerun after 00:05"
cat <<EOF | kubectl -n "$ns" apply -f - >/dev/null
apiVersion: weatherwise.io/v1alpha1
kind: CouponCampaign
metadata: {name: e2e-flash}
spec:
  displayName: E2E flash
  coupon: {title: E2E pass, benefit: One pass, validityDays: 1}
  schedule: {timeZone: UTC, startDate: "$today", endDate: "$today", opensAt: "$opens", closesAt: "$closes"}
  quota: {dailyQuantity: 50, perUser: 1}
  eligibility: {mission: None}
  workload: {prewarmSeconds: 60, replicas: {idle: 0, min: 1, max: 3}}
EOF
phase() { kubectl -n "$ns" get couponcampaign e2e-flash -o jsonpath='{.status.phase}'; }
until_ok 90 sh -c "[ \"\$(kubectl -n $ns get couponcampaign e2e-flash -o jsonpath='{.status.phase}')\" = Prewarming ]" || fail "no Prewarming (phase $(phase))"
until_ok 150 sh -c "[ \"\$(kubectl -n $ns get couponcampaign e2e-flash -o jsonpath='{.status.phase}')\" = Open ]" || fail "no Open (phase $(phase))"

step "coupons issued through a port-forward to the issuer"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
kubectl -n "$ns" port-forward "svc/$release-auth" "$port:80" >/dev/null 2>&1 & pf_pids+=($!)
issuer_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
issuer_svc=$(kubectl -n "$ns" get svc -o name | grep e2e-flash | head -n1)
kubectl -n "$ns" port-forward "$issuer_svc" "$issuer_port:80" >/dev/null 2>&1 & pf_pids+=($!)
until_ok 30 curl -sf "http://127.0.0.1:$port/healthz" || fail "no port-forward to auth"
until_ok 30 curl -sf "http://127.0.0.1:$issuer_port/healthz" || fail "no port-forward to the issuer"
issued=0
for i in 1 2 3; do
  email="e2e-$i-$RANDOM@example.com"
  curl -sf -X POST "http://127.0.0.1:$port/api/auth/signup" -H 'content-type: application/json' \
    -d "{\"email\":\"$email\",\"password\":\"rainy-day-umbrella\",\"nickname\":\"e2e$i\"}" >/dev/null || fail "signup"
  token=$(curl -sf -X POST "http://127.0.0.1:$port/api/auth/login" -H 'content-type: application/json' \
    -d "{\"email\":\"$email\",\"password\":\"rainy-day-umbrella\"}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["accessToken"])')
  code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$issuer_port/api/campaigns/e2e-flash/issue" -H "authorization: Bearer $token")
  [ "$code" = 201 ] || fail "issue answered $code"
  issued=$((issued + 1))
done
until_ok 60 sh -c "[ \"\$(kubectl -n $ns get couponcampaign e2e-flash -o jsonpath='{.status.issuedToday}')\" = $issued ]" \
  || fail "kubectl get couponcampaigns never showed $issued issued: $(kubectl -n "$ns" get couponcampaign e2e-flash -o wide)"
kubectl -n "$ns" get couponcampaigns
until_ok 240 sh -c "[ \"\$(kubectl -n $ns get couponcampaign e2e-flash -o jsonpath='{.status.phase}')\" = Closed ]" || fail "no Closed (phase $(phase))"

step "chat through the default ChatCluster's gateway"
until_ok 180 sh -c "kubectl -n $ns get chatcluster default -o jsonpath='{.status.conditions[?(@.type==\"Ready\")].status}' | grep -q True" \
  || fail "the default ChatCluster is not Ready"
gateway=$(kubectl -n "$ns" get svc -o name | grep -- '-gateway' | head -n1)
gw_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
kubectl -n "$ns" port-forward "$gateway" "$gw_port:80" >/dev/null 2>&1 & pf_pids+=($!)
until_ok 30 curl -sf "http://127.0.0.1:$gw_port/healthz" || fail "no port-forward to the chat gateway"
python3 tests/e2e/chat_once.py "127.0.0.1:$gw_port" "$token" || fail "chat send/ack through the gateway"

step "helm uninstall keeps the CRDs"
kubectl -n "$ns" delete couponcampaigns --all --wait --timeout=120s >/dev/null || fail "the campaign was not released"
"$HELM" -n "$ns" uninstall "$release" >/dev/null
kubectl get crd couponcampaigns.weatherwise.io chatclusters.weatherwise.io >/dev/null || fail "the CRDs went with the release"
echo "install e2e passed"
