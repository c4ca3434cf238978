#!/usr/bin/env python3
"""The Helm chart against the code it deploys.

    tests/chart/check.py HELM WW WW_OPERATOR KUBERNETES_VALIDATE

- `helm lint --strict` with the default values and with every example values file;
- `helm template` of each piped to `kubernetes-validate --strict` (custom resources aside);
- a wrong value fails at install with a message naming it (values.schema.json);
- the chart's CRDs are the repository's crds/ byte for byte, templated with
  `helm.sh/resource-policy: keep`;
- the operator's ClusterRole and leader Role grant exactly config/rbac/ww-operator.yaml's rules;
- the default ChatCluster's spec is config/samples/chat-cluster-default.yaml's;
- the PodMonitor and NetworkPolicy meant for the workloads the operator creates select every pod
  `ww-operator render` builds for a campaign and a chat cluster, on a port they serve;
- every `ww` container runs a role `ww serve` accepts, with flags and environment variables that
  `ww serve --help` defines, and `ww serve ROLE --check-config` accepts the rendered settings;
  the operator's container likewise against `ww-operator run --help`;
- every metric the alerts and the Grafana dashboard query is one the code records.
"""

import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "weatherwise"
HELM, WW, OPERATOR, VALIDATE = sys.argv[1:5]
K8S_VERSION = "1.33.0"
CUSTOM = {"ChatCluster", "CouponCampaign", "ServiceMonitor", "PodMonitor", "PrometheusRule"}
failures = []


def fail(message):
    failures.append(message)
    print(f"  FAIL {message}")


def run(*args, **kwargs):
    return subprocess.run(args, capture_output=True, text=True, **kwargs)


def template(*values):
    args = [HELM, "template", "ww", str(CHART), "--namespace", "weatherwise"]
    for v in values:
        args += ["-f", str(v)]
    out = run(*args)
    if out.returncode != 0:
        raise SystemExit(f"helm template {values}: {out.stderr}")
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def help_of(*command):
    out = run(*command, "--help")
    if out.returncode != 0:
        raise SystemExit(f"{command} --help: {out.stderr}")
    text = out.stdout
    return {
        "flags": set(re.findall(r"^\s+(?:-\w, )?(--[a-z0-9-]+)", text, re.M)),
        "env": set(re.findall(r"\[env: ([A-Z0-9_]+)[=\]]", text)),
        "text": text,
    }


examples = sorted((CHART / "examples").glob("*.yaml"))
print("helm lint --strict")
for values in [None, *examples]:
    args = [HELM, "lint", "--strict", str(CHART)] + (["-f", str(values)] if values else [])
    out = run(*args)
    if out.returncode != 0:
        fail(f"helm lint --strict {values or '(defaults)'}: {out.stdout}{out.stderr}")

print("helm template | kubernetes-validate --strict")
renders = {"defaults": template(), **{v.name: template(v) for v in examples}}
with tempfile.TemporaryDirectory() as tmp:
    for name, docs in renders.items():
        path = Path(tmp) / f"{name}.yaml"
        path.write_text(yaml.safe_dump_all([d for d in docs if d["kind"] not in CUSTOM]))
        out = run(VALIDATE, "--strict", "--quiet", "--kubernetes-version", K8S_VERSION, str(path))
        if out.returncode != 0:
            fail(f"kubernetes-validate {name}: {out.stdout}{out.stderr}")
        else:
            kinds = sorted({d["kind"] for d in docs})
            print(f"  {name}: {len(docs)} objects valid ({', '.join(kinds)})")

print("a wrong value fails at install, naming it")
for setting, expect in [
    ("roles.auth.replicas=0", "/roles/auth/replicas"),
    ("roles.chat.enabled=true", "additional properties 'chat'"),
    ("operator.chatAutoscaleOn=sometimes", "/operator/chatAutoscaleOn"),
    ("backends.kafkaBrokers=not a list", "/backends/kafkaBrokers"),
]:
    out = run(HELM, "template", "ww", str(CHART), "--set", setting)
    if out.returncode == 0 or expect not in out.stderr:
        fail(f"--set {setting} should fail naming {expect}: {out.stderr[:300]}")
out = run(HELM, "template", "ww", str(CHART), "--set", "backends.existingSecret=")
if out.returncode == 0 or "backends: set existingSecret" not in out.stderr:
    fail(f"no backends at all should fail with what to set: {out.stderr[:300]}")

print("CRDs, RBAC and the default ChatCluster match the repository")
defaults = renders["defaults"]
for crd_file in sorted((ROOT / "crds").glob("*.weatherwise.io.yaml")):
    copy = CHART / "files" / "crds" / crd_file.name
    if not copy.exists() or copy.read_bytes() != crd_file.read_bytes():
        fail(f"charts/weatherwise/files/crds/{crd_file.name} differs from crds/{crd_file.name} (copy it)")
    source = yaml.safe_load(crd_file.read_text())
    rendered = next((d for d in defaults if d["kind"] == "CustomResourceDefinition" and d["metadata"]["name"] == source["metadata"]["name"]), None)
    if rendered is None:
        fail(f"the chart does not install {source['metadata']['name']}")
        continue
    if rendered["metadata"].get("annotations", {}).get("helm.sh/resource-policy") != "keep":
        fail(f"{source['metadata']['name']} is not kept on uninstall")
    if rendered["spec"] != source["spec"]:
        fail(f"{source['metadata']['name']}: the rendered spec differs from crds/")
rbac = [d for d in yaml.safe_load_all((ROOT / "config/rbac/ww-operator.yaml").read_text()) if d]
want_rules = next(d for d in rbac if d["kind"] == "ClusterRole")["rules"]
want_leader = next(d for d in rbac if d["kind"] == "Role")["rules"]


def named(docs, kind, name):
    return next((d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name), None)


def operator_env(docs):
    op = named(docs, "Deployment", "ww-operator")
    return {e["name"]: e.get("value") for e in op["spec"]["template"]["spec"]["containers"][0]["env"]}


# `operator.watch`: namespace (the default: a Role, the release namespace watched) or cluster.
for render, kind, watched, role_name in [("defaults", "Role", "weatherwise", "ww-operator"),
                                         ("full.yaml", "ClusterRole", None, "weatherwise-ww-operator")]:
    docs = renders[render]
    role, binding = named(docs, kind, role_name), named(docs, f"{kind}Binding", role_name)
    if role is None or role["rules"] != want_rules:
        fail(f"{render}: the operator's {kind} is missing or differs from config/rbac/ww-operator.yaml's rules")
    if binding is None or binding["roleRef"]["kind"] != kind:
        fail(f"{render}: no {kind}Binding for the operator")
    leader = named(docs, "Role", "ww-operator-leader")
    if leader is None or leader["rules"] != want_leader:
        fail(f"{render}: the operator's leader Role differs from config/rbac/ww-operator.yaml")
    if operator_env(docs).get("WW_OPERATOR_WATCH_NAMESPACE") != watched:
        fail(f"{render}: the operator should watch {watched or 'every namespace'}")
    if any(d["kind"] in ("ClusterRole", "ClusterRoleBinding") for d in docs) != (kind == "ClusterRole"):
        fail(f"{render}: cluster-wide RBAC should exist only when the operator watches the cluster")
sample = yaml.safe_load((ROOT / "config/samples/chat-cluster-default.yaml").read_text())
chat = next(d for d in defaults if d["kind"] == "ChatCluster")
if chat["spec"] != sample["spec"]:
    fail("the default ChatCluster differs from config/samples/chat-cluster-default.yaml")

print("a Redis of the issuers' own is theirs only")
op_env = operator_env(renders["full.yaml"])
if not (op_env.get("WW_OPERATOR_REDIS_URL_SECRET", "").startswith("ww-issuer-redis:")
        and op_env.get("WW_OPERATOR_CHAT_REDIS_URL_SECRET", "").startswith("ww-backends:")):
    fail(f"full.yaml: issuers should get the issuer Redis and chat pods the shared one: {op_env}")

print("the operator's workloads are scraped and fenced")
made = run(OPERATOR, "render", "--image", "ghcr.io/weatherwise/ww:0.1.0", "--namespace", "weatherwise", "--at", "2026-11-20T12:00:00Z",
           str(ROOT / "config/samples/coupon-campaign-demo.yaml"), str(ROOT / "config/samples/chat-cluster-default.yaml"))
if made.returncode != 0:
    raise SystemExit(f"ww-operator render: {made.stderr}")
pods = [(d["metadata"]["name"], d["spec"]["template"]) for d in yaml.safe_load_all(made.stdout)
        if d and d["kind"] in ("Deployment", "StatefulSet")]
components = {t["metadata"]["labels"].get("app.kubernetes.io/component") for _, t in pods}
if "coupon-issuer" not in components or not any(c and c.startswith("chat") for c in components):
    fail(f"ww-operator render built no issuer or no chat pods to check against: {sorted(map(str, components))}")
full_monitor = next((d for d in renders["full.yaml"] if d["kind"] == "PodMonitor"), None)
fence = next((d for d in defaults if d["kind"] == "NetworkPolicy" and d["metadata"]["name"].endswith("-event-workloads")), None)
if full_monitor is None or fence is None:
    fail("the chart has no PodMonitor (full.yaml) or no event-workloads NetworkPolicy (defaults)")
else:
    for name, t in pods:
        labels = t["metadata"]["labels"]
        ports = {p.get("name"): p["containerPort"] for c in t["spec"]["containers"] for p in c.get("ports", [])}
        for what, selector in [("PodMonitor", full_monitor["spec"]["selector"]["matchLabels"]),
                               ("NetworkPolicy", fence["spec"]["podSelector"]["matchLabels"])]:
            if any(labels.get(k) != v for k, v in selector.items()):
                fail(f"the {what} for the operator's workloads does not select {name} ({labels})")
        for ep in full_monitor["spec"]["podMetricsEndpoints"]:
            if ep["port"] not in ports:
                fail(f"the PodMonitor scrapes port {ep['port']}, which {name} does not name ({ports})")
        allowed = {p["port"] for rule in fence["spec"]["ingress"] for p in rule["ports"]}
        if not set(ports.values()) <= allowed:
            fail(f"the event-workloads NetworkPolicy lets no one reach {name} on {sorted(ports.values())}")
    print(f"  {len(pods)} operator-built pod templates selected ({', '.join(sorted(map(str, components)))})")

print("every container runs what the binaries define")
serve = help_of(WW, "serve")
roles = set(re.findall(r"^\s+- ([a-z-]+):", serve["text"], re.M))
operator_run = help_of(OPERATOR, "run")
secret_values = {
    "database-url": "postgres://u:p@db:5432/ww",
    "redis-url": "redis://redis:6379/",
    "kafka-brokers": "kafka:9092",
    "keys": "k1=c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldC0wMTIz",
    "access-key-id": "AKIA", "secret-access-key": "s", "api-key": "k",
}
def value_of(entry, secrets):
    """An env entry's value: literal, from a Secret the chart rendered, or a stand-in for a
    Secret the operator of the cluster creates (of the right shape)."""
    if "value" in entry:
        return entry["value"]
    ref = entry.get("valueFrom", {}).get("secretKeyRef")
    if ref:
        return secrets.get(ref["name"], {}).get(ref["key"], secret_values.get(ref["key"], "x"))
    return "x"


for name, docs in renders.items():
    secrets = {d["metadata"]["name"]: d.get("stringData", {}) for d in docs if d["kind"] == "Secret"}
    for d in docs:
        if d["kind"] != "Deployment":
            continue
        for c in d["spec"]["template"]["spec"]["containers"]:
            env = {e["name"]: value_of(e, secrets) for e in c.get("env", [])}
            args = c.get("args", [])
            where = f"{name}: {d['metadata']['name']}"
            if c["name"] == "operator":
                known = operator_run
                if args[:1] != ["run"]:
                    fail(f"{where}: the operator runs {args}")
            else:
                known = serve
                if args[:1] != ["serve"] or args[1] not in roles:
                    fail(f"{where}: `ww {' '.join(args)}` is not a role of `ww serve` ({sorted(roles)})")
                # The real argument parser and configuration check, with the rendered settings.
                check = run(WW, *args, "--check-config", env={**env, "PATH": "/usr/bin:/bin"})
                if check.returncode != 0:
                    fail(f"{where}: `ww {' '.join(args)} --check-config` refused it: {check.stderr.strip()[:400]}")
            for flag in [a for a in args if a.startswith("--")]:
                if flag not in known["flags"]:
                    fail(f"{where}: flag {flag} is not defined")
            for var in env:
                if var not in known["env"]:
                    fail(f"{where}: environment variable {var} is read by nothing")

print("the alerts and the dashboard query metrics the code records")
recorded = set()
for source in list((ROOT / "services").rglob("*.rs")) + list((ROOT / "operator").rglob("*.rs")):
    recorded |= set(re.findall(r'(?:counter|gauge|histogram)!\(\s*"([a-z_]+)"', source.read_text()))
recorded |= {"up"}
full = renders["full.yaml"]
queries = [r["expr"] for d in full if d["kind"] == "PrometheusRule" for g in d["spec"]["groups"] for r in g["rules"]]
dashboard = json.loads((CHART / "files/grafana/weatherwise.json").read_text())
queries += [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
functions = {"sum", "rate", "max", "by", "or", "absent", "histogram_quantile", "le", "on", "without", "and"}
for q in queries:
    for metric in re.findall(r"\b([a-z_][a-z0-9_]*)\s*(?:\{|\[|\)|$)", re.sub(r'"[^"]*"', '""', q)):
        base = re.sub(r"_(bucket|sum|count)$", "", metric)
        if metric in functions or metric in {"namespace", "pod", "route", "group", "job", "status", "outcome"}:
            continue
        if base not in recorded:
            fail(f"query `{q}` reads {metric}, which nothing records")

if failures:
    print(f"\n{len(failures)} problem(s) with the chart")
    sys.exit(1)
print("the chart checks passed")
