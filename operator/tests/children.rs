//! What a campaign owns at each phase: built from a YAML fixture and the plan at an instant.

use campaign::plan::{Observed, Scale};
use campaign::{Campaign, CouponCampaign};
use chrono::{DateTime, Utc};
use kube::core::ObjectMeta;
use operator::children::{self, Children, Running, child_name};
use operator::config::WorkloadConfig;

const CAMPAIGN: &str = "\
apiVersion: weatherwise.io/v1alpha1
kind: CouponCampaign
metadata:
  name: rainy-day-pass
  namespace: marketing
spec:
  displayName: Rainy Day Pass
  coupon: {title: Umbrella discount, benefit: 20% off an umbrella, validityDays: 7}
  schedule: {timeZone: Asia/Seoul, startDate: 2026-12-07, endDate: 2026-12-13, opensAt: \"10:00\", closesAt: \"12:00\"}
  quota: {dailyQuantity: 1000}
  workload:
    replicas: {idle: 0, min: 3, max: 30}
";

/// A campaign as the API server hands it to the operator: namespace and uid set.
fn resource(yaml: &str) -> CouponCampaign {
    let mut r: CouponCampaign = serde_yaml::from_str(yaml).unwrap();
    r.metadata = ObjectMeta { uid: Some("6f1c2a9e-0000-4000-8000-000000000001".to_owned()), ..r.metadata };
    r
}

fn at(rfc3339: &str) -> DateTime<Utc> {
    rfc3339.parse().unwrap()
}

fn children_at(r: &CouponCampaign, t: &str, ready: u32) -> Children {
    let c = Campaign::new(r.metadata.name.as_deref().unwrap(), r.spec.clone()).unwrap();
    let plan = c.plan_at(at(t), Observed::default());
    children::build(r, &c, &plan, &WorkloadConfig::example(), Running { ready_replicas: ready }).unwrap()
}

/// The Service the campaign's own route sends to, or `None` when it has no route (the platform's
/// Ingress then sends `/api/campaigns/` to the steady-state coupon service).
fn backend(children: &Children) -> Option<String> {
    let ingress = children.ingress.as_ref()?;
    let rule = &ingress.spec.as_ref().unwrap().rules.as_ref().unwrap()[0];
    let path = &rule.http.as_ref().unwrap().paths[0];
    assert_eq!(path.path.as_deref(), Some("/api/campaigns/rainy-day-pass/"));
    Some(path.backend.service.as_ref().unwrap().name.clone())
}

#[test]
fn every_child_is_owned_by_the_campaign_and_labelled_the_standard_way() {
    let r = resource(CAMPAIGN);
    for object in children_at(&r, "2026-12-07T10:30:00+09:00", 3).objects().unwrap() {
        let kind = object["kind"].as_str().unwrap().to_owned();
        let owner = &object["metadata"]["ownerReferences"][0];
        assert_eq!(owner["kind"], "CouponCampaign", "{kind}");
        assert_eq!(owner["uid"], "6f1c2a9e-0000-4000-8000-000000000001", "{kind}");
        assert_eq!(owner["controller"], true, "{kind}");
        assert_eq!(object["metadata"]["namespace"], "marketing", "{kind}");
        assert_eq!(object["metadata"]["name"], "cc-rainy-day-pass", "{kind}");
        let labels = &object["metadata"]["labels"];
        for key in [
            "app.kubernetes.io/name",
            "app.kubernetes.io/instance",
            "app.kubernetes.io/component",
            "app.kubernetes.io/managed-by",
            "app.kubernetes.io/part-of",
        ] {
            assert!(labels[key].is_string(), "{kind} lacks {key}");
        }
    }
}

#[test]
fn between_openings_the_issuer_runs_idle_replicas_without_an_autoscaler() {
    let c = children_at(&resource(CAMPAIGN), "2026-12-07T08:00:00+09:00", 0);
    assert_eq!(c.replicas, 0);
    assert_eq!(c.deployment.spec.as_ref().unwrap().replicas, None, "the count is never an applied field");
    assert!(c.hpa.is_none());
}

#[test]
fn from_prewarm_an_autoscaler_owns_the_count_and_replicas_is_left_out() {
    let c = children_at(&resource(CAMPAIGN), "2026-12-07T09:56:00+09:00", 0);
    assert_eq!(c.deployment.spec.as_ref().unwrap().replicas, None);
    assert_eq!(c.replicas, 3, "raised to the floor first: an HPA never scales up from zero");
    let applied = serde_json::to_value(&c.deployment).unwrap();
    assert!(applied["spec"].get("replicas").is_none(), "replicas is not among the applied fields");
    let hpa = c.hpa.unwrap().spec.unwrap();
    assert_eq!((hpa.min_replicas, hpa.max_replicas), (Some(3), 30));
    let up = hpa.behavior.unwrap().scale_up.unwrap();
    assert_eq!(up.stabilization_window_seconds, Some(0), "no stabilisation on the way up");
}

#[test]
fn the_route_goes_to_the_issuer_only_once_it_is_ready_and_away_before_it_scales_to_zero() {
    let r = resource(CAMPAIGN);
    let issuer = Some("cc-rainy-day-pass".to_owned());
    assert_eq!(backend(&children_at(&r, "2026-12-07T09:56:00+09:00", 0)), None, "pre-warming, nothing ready");
    assert_eq!(backend(&children_at(&r, "2026-12-07T09:57:00+09:00", 2)), None, "pre-warming, 2 of 3 ready");
    assert_eq!(backend(&children_at(&r, "2026-12-07T09:58:00+09:00", 3)), issuer, "pre-warmed");
    assert_eq!(backend(&children_at(&r, "2026-12-07T10:00:10+09:00", 1)), issuer, "open: one ready pod serves");
    assert_eq!(backend(&children_at(&r, "2026-12-07T12:00:30+09:00", 3)), issuer, "cooling down");
    assert_eq!(backend(&children_at(&r, "2026-12-07T12:01:00+09:00", 3)), None, "idle is 0: the route goes first");
}

#[test]
fn the_issuer_pod_is_locked_down_and_probed() {
    let c = children_at(&resource(CAMPAIGN), "2026-12-07T10:30:00+09:00", 3);
    let pod = c.deployment.spec.unwrap().template.spec.unwrap();
    let container = &pod.containers[0];
    let security = container.security_context.as_ref().unwrap();
    assert_eq!(security.read_only_root_filesystem, Some(true));
    assert_eq!(security.allow_privilege_escalation, Some(false));
    assert_eq!(security.capabilities.as_ref().unwrap().drop.as_deref(), Some(&["ALL".to_owned()][..]));
    assert_eq!(pod.security_context.unwrap().run_as_non_root, Some(true));
    assert_eq!(container.readiness_probe.as_ref().unwrap().http_get.as_ref().unwrap().path.as_deref(), Some("/readyz"));
    assert_eq!(container.liveness_probe.as_ref().unwrap().http_get.as_ref().unwrap().path.as_deref(), Some("/healthz"));
    assert_eq!(pod.priority_class_name.as_deref(), Some("weatherwise-events"));
}

#[test]
fn the_disruption_budget_never_blocks_a_drain() {
    let pdb = children_at(&resource(CAMPAIGN), "2026-12-07T10:30:00+09:00", 3).pdb.spec.unwrap();
    assert_eq!(pdb.max_unavailable, Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(1)));
    assert_eq!(pdb.unhealthy_pod_eviction_policy.as_deref(), Some("AlwaysAllow"));
    assert!(pdb.min_available.is_none());
}

#[test]
fn the_rules_reach_the_issuer_as_a_campaign_file_it_can_load() {
    let c = children_at(&resource(CAMPAIGN), "2026-12-07T10:30:00+09:00", 3);
    let file = &c.config_map.data.as_ref().unwrap()[children::CAMPAIGN_FILE];
    let loaded = campaign::parse_yaml(file).unwrap();
    assert_eq!(loaded.len(), 1);
    assert_eq!(loaded[0].name(), "rainy-day-pass");
    assert_eq!(loaded[0].spec().quota.daily_quantity, 1000);
}

#[test]
fn suspending_scales_to_zero_and_leaves_the_route_to_the_steady_state_service() {
    let r = resource(&CAMPAIGN.replace("  workload:", "  suspend: true\n  workload:"));
    let c = children_at(&r, "2026-12-07T10:30:00+09:00", 3);
    assert_eq!(c.replicas, 0);
    assert!(c.hpa.is_none());
    assert_eq!(backend(&c), None);
}

#[test]
fn child_names_are_dns_labels_and_long_names_do_not_collide() {
    assert_eq!(child_name("rainy-day-pass"), "cc-rainy-day-pass");
    let a = child_name(&format!("{}-a", "x".repeat(60)));
    let b = child_name(&format!("{}-b", "x".repeat(60)));
    assert!(a.len() <= 63 && b.len() <= 63, "{a} {b}");
    assert_ne!(a, b);
    assert!(a.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'));
}

#[test]
fn a_fixed_plan_never_has_an_autoscaler() {
    let r = resource(CAMPAIGN);
    let c = Campaign::new("rainy-day-pass", r.spec.clone()).unwrap();
    for t in ["2026-12-01T00:00:00Z", "2026-12-07T03:00:00Z", "2026-12-20T00:00:00Z"] {
        let plan = c.plan_at(at(t), Observed::default());
        let built = children::build(&r, &c, &plan, &WorkloadConfig::example(), Running::default()).unwrap();
        assert_eq!(built.hpa.is_some(), matches!(plan.scale, Scale::Autoscaled { .. }), "{t}");
    }
}

/// What a cron scaler plus the HPA's defaults (KEDA, the usual choice) cannot do, stated as the
/// operator's own numbers: the pre-warm count is exactly `min` (a floor, not a utilisation
/// target the HPA's 10 % tolerance can miss), scale-up has no stabilisation, and the issuers go
/// back to idle one minute after closing, not after the HPA's default 300 s window on top of the
/// cron's own lag.
#[test]
fn unlike_a_cron_scaler_the_prewarm_count_is_exact_and_scale_down_follows_closing_within_a_minute() {
    let r = resource(CAMPAIGN);
    let prewarm = children_at(&r, "2026-12-07T09:55:00+09:00", 0);
    let hpa = prewarm.hpa.as_ref().unwrap().spec.as_ref().unwrap();
    assert_eq!(hpa.min_replicas, Some(3), "pre-warmed to exactly min, whatever the load");
    assert_eq!(prewarm.replicas, 3, "and raised there at once, not by the autoscaler's next sync");
    let behavior = hpa.behavior.as_ref().unwrap();
    assert_eq!(behavior.scale_up.as_ref().unwrap().stabilization_window_seconds, Some(0));
    let down = behavior.scale_down.as_ref().unwrap().stabilization_window_seconds.unwrap();
    assert!(down <= 60, "scale-down stabilisation {down} s, against the HPA's default 300 s");
    // Back to idle (here 0 pods and no route) at closing + 60 s, to the second.
    let closing = "2026-12-07T12:00:00+09:00".parse::<DateTime<Utc>>().unwrap();
    let just_before = (closing + campaign::plan::COOLDOWN - chrono::TimeDelta::seconds(1)).to_rfc3339();
    let at_cooldown = (closing + campaign::plan::COOLDOWN).to_rfc3339();
    assert!(children_at(&r, &just_before, 3).hpa.is_some());
    let idle = children_at(&r, &at_cooldown, 3);
    assert!(idle.hpa.is_none() && idle.replicas == 0 && idle.ingress.is_none());
}
