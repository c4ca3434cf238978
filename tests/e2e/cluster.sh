#!/usr/bin/env bash
# The operator against a real Kubernetes API server. Runs when KUBECONFIG names a reachable
# cluster; otherwise prints why it is skipped (scripts/test.sh runs it, so the skip is seen).
#
# It applies the CRDs cluster-wide (server-side apply): run it on a cluster where replacing
# couponcampaigns.weatherwise.io and chatclusters.weatherwise.io with this checkout's versions
# is fine.
#
# What it proves that nothing local can: the API server accepts the generated CRDs, admits every
# sample, refuses broken campaigns and chat clusters with the CEL messages (also a frozen field
# edited after the start, a chat cluster's partitions lowered or its prefix changed), and the operator — run out of cluster with your kubeconfig's rights, against the
# local Kafka-protocol broker — plans a campaign into its children, writes its status, and on
# delete announces the removal and lets the campaign go (its finalizer released).
#
#   tests/e2e/cluster.sh                 uses $KUBECONFIG
#   WW_E2E_KAFKA_BROKERS=host:9092       the broker the operator announces on (default: the local one)
#   WW_E2E_KEEP=1                        keep the namespace for a look afterwards
set -euo pipefail
cd "$(dirname "$0")/../.."

if [ -z "${KUBECONFIG:-}" ]; then
  echo "SKIPPED tests/e2e/cluster.sh: KUBECONFIG is not set (no cluster to run against; the operator is" \
       "checked here by plan, controller, CEL and manifest tests instead)"
  exit 0
fi
command -v kubectl >/dev/null || { echo "error: KUBECONFIG is set but kubectl is not installed" >&2; exit 1; }
# A KUBECONFIG that points nowhere is a failure, not a skip: someone asked for the cluster run.
kubectl version --request-timeout=10s >/dev/null || { echo "error: the cluster in KUBECONFIG=$KUBECONFIG is not reachable" >&2; exit 1; }

target="${CARGO_TARGET_DIR:-target}"
cargo build -q -p ww-operator --bin ww-operator --locked
operator="$target/debug/ww-operator"
brokers="${WW_E2E_KAFKA_BROKERS:-${WW_TEST_KAFKA_BROKERS:-127.0.0.1:9092}}"
ns="ww-e2e-$(date +%s)-$RANDOM"
log="$(mktemp)"
operator_pid=""

cleanup() {
  [ -n "$operator_pid" ] && kill "$operator_pid" 2>/dev/null || true
  if [ -z "${WW_E2E_KEEP:-}" ]; then
    # Campaigns first, while the operator could still release them; then drop any finalizer left.
    for c in $(kubectl -n "$ns" get couponcampaigns -o name 2>/dev/null); do
      kubectl -n "$ns" patch "$c" --type=merge -p '{"metadata":{"finalizers":null}}' >/dev/null 2>&1 || true
    done
    kubectl delete namespace "$ns" --wait=false >/dev/null 2>&1 || true
  fi
  rm -f "$log"
}
trap cleanup EXIT

step() { echo "==> e2e: $*"; }
fail() { echo "FAIL e2e: $*" >&2; [ -s "$log" ] && { echo "--- operator log (last 40 lines)" >&2; tail -40 "$log" >&2; }; exit 1; }
# Waits up to $1 seconds for the command in the rest of the arguments to succeed.
until_ok() {
  local deadline=$(( $(date +%s) + $1 )); shift
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$deadline" ] || return 1
    sleep 1
  done
}

step "the CRD is accepted and established"
kubectl apply --server-side --force-conflicts -f crds/ >/dev/null
kubectl wait --for=condition=Established --timeout=60s crd/couponcampaigns.weatherwise.io crd/chatclusters.weatherwise.io >/dev/null
kubectl create namespace "$ns" >/dev/null

step "every sample is admitted (server-side dry run: schema and CEL)"
for sample_file in config/samples/*.yaml; do
  # Into the test's namespace, whatever namespace the sample names.
  sed '/^  namespace: /d' "$sample_file" | kubectl -n "$ns" apply --dry-run=server -f - >/dev/null \
    || fail "$sample_file was not admitted"
done

step "broken campaigns are refused with the CEL messages"
refused() { # $1: what, $2: expected message part, stdin: a campaign
  local out
  if out=$(kubectl -n "$ns" apply --dry-run=server -f - 2>&1); then fail "$1 was admitted"; fi
  grep -q -- "$2" <<<"$out" || fail "$1 was refused, but not with \"$2\": $out"
}
sample() { # the minimal sample, named $1
  sed "s/^  name: rainy-day-pass$/  name: $1/" config/samples/coupon-campaign-minimal.yaml
}
sample bad-dates | sed 's/^    endDate: .*/    endDate: 2026-12-01/' | refused "endDate before startDate" "endDate"
sample bad-quota | sed 's/^    dailyQuantity: .*/    dailyQuantity: 10\n    totalQuantity: 5/' | refused "dailyQuantity above totalQuantity" "dailyQuantity"
{ sample bad-replicas; printf '  workload:\n    replicas:\n      idle: 3\n      min: 2\n      max: 10\n'; } | refused "idle above min" "idle"

step "broken chat clusters and chat edits are refused with the CEL messages"
chat_sample() { sed '/^  namespace: /d' config/samples/chat-cluster-snow-festival.yaml; }
chat_sample | sed 's/^      min: 3$/      min: 50/' | refused "gateway min above max" "min <= max"
chat_sample | sed "s/^  name: snow-festival$/  name: $(printf 'a%.0s' $(seq 41))/" | refused "a cluster name over 40" "cluster's name"
chat_sample | kubectl -n "$ns" apply -f - >/dev/null
if out=$(kubectl -n "$ns" patch chat snow-festival --type=merge -p '{"spec":{"partitions":6}}' 2>&1); then
  fail "partitions decreased"
fi
grep -q "partitions cannot decrease" <<<"$out" || fail "the partitions refusal does not say why: $out"
if out=$(kubectl -n "$ns" patch chat snow-festival --type=merge -p '{"spec":{"roomPrefix":"snow-"}}' 2>&1); then
  fail "roomPrefix changed"
fi
grep -q "roomPrefix cannot change" <<<"$out" || fail "the prefix refusal does not say why: $out"
kubectl -n "$ns" delete chat snow-festival >/dev/null

step "the operator plans a campaign into its children and its status"
RUST_LOG=info "$operator" run --listen 127.0.0.1:0 --lease-namespace "$ns" --identity "e2e-$$" \
  --image "${WW_E2E_IMAGE:-ghcr.io/weatherwise/ww:0.1.0}" --kafka-brokers "$brokers" \
  --kafka-partitions 1 --kafka-replication-factor 1 --kafka-min-insync-replicas 1 >"$log" 2>&1 &
operator_pid=$!
sample e2e-demo | kubectl -n "$ns" apply -f - >/dev/null
has_phase() { [ -n "$(kubectl -n "$ns" get cc e2e-demo -o jsonpath='{.status.phase}')" ]; }
until_ok 60 has_phase || fail "no status phase within 60 s"
until_ok 60 kubectl -n "$ns" get configmap,service,poddisruptionbudget cc-e2e-demo || fail "children not created within 60 s"
finalizers=$(kubectl -n "$ns" get cc e2e-demo -o jsonpath='{.metadata.finalizers}')
grep -q weatherwise.io/announce-removal <<<"$finalizers" || fail "the campaign does not carry the operator's finalizer"
echo "    phase: $(kubectl -n "$ns" get cc e2e-demo -o jsonpath='{.status.phase}')"

step "a started campaign's frozen fields cannot change (transition rule on oldSelf)"
kubectl -n "$ns" patch cc e2e-demo --subresource=status --type=merge \
  -p '{"status":{"startedAt":"2026-01-01T00:00:00Z"}}' >/dev/null
if out=$(kubectl -n "$ns" patch cc e2e-demo --type=merge -p '{"spec":{"schedule":{"timeZone":"Europe/London"}}}' 2>&1); then
  fail "timeZone changed after the start"
fi
grep -q "timeZone" <<<"$out" || fail "the frozen-field refusal does not name timeZone: $out"

step "deleting the campaign announces its removal and lets it go"
kubectl -n "$ns" delete cc e2e-demo --wait=false >/dev/null
kubectl -n "$ns" wait --for=delete cc/e2e-demo --timeout=60s >/dev/null \
  || fail "the campaign is still there 60 s after delete (finalizer not released)"
echo "PASSED tests/e2e/cluster.sh against $(kubectl config current-context)"
