//! What a `ChatCluster` owns, built from the samples in `config/samples/`: the gateways with their
//! autoscaler and disruption budget, the persister, the chat API, the route, and the environment
//! each role's pods get.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::EnvVar;
use kube::core::ObjectMeta;
use operator::chat::ChatCluster;
use operator::chat::autoscaling::Metric;
use operator::chat::children::{self, ChatChildren, Inputs, Role};
use operator::config::WorkloadConfig;
use serde_json::{Value, json};

const SAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../config/samples");

/// A sample as the API server hands it to the operator: namespace and uid set.
fn sample(file: &str) -> ChatCluster {
    let text = std::fs::read_to_string(format!("{SAMPLES}/{file}")).unwrap();
    let mut r: ChatCluster = serde_yaml::from_str(&text).unwrap();
    r.metadata = ObjectMeta { uid: Some("0c1d2e3f-0000-4000-8000-000000000009".to_owned()), ..r.metadata };
    r
}

fn snow() -> ChatCluster {
    sample("chat-cluster-snow-festival.yaml")
}

fn build(r: &ChatCluster, config: &WorkloadConfig, metric: Metric) -> ChatChildren {
    children::build(r, &Inputs { config, kafka_prefix: "", metric }).unwrap()
}

fn env_of(deployment: &Value) -> BTreeMap<String, Value> {
    deployment["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["name"].as_str().unwrap().to_owned(), e.get("value").or(e.get("valueFrom")).cloned().unwrap()))
        .collect()
}

#[test]
fn every_child_is_owned_by_the_cluster_and_labelled_the_standard_way() {
    let objects = build(&snow(), &WorkloadConfig::example(), Metric::Connections).objects().unwrap();
    let kinds: Vec<(&str, &str)> =
        objects.iter().map(|o| (o["kind"].as_str().unwrap(), o["metadata"]["name"].as_str().unwrap())).collect();
    assert_eq!(
        kinds,
        [
            ("Service", "chat-snow-festival-gateway"),
            ("Service", "chat-snow-festival-api"),
            ("PodDisruptionBudget", "chat-snow-festival-gateway"),
            ("Deployment", "chat-snow-festival-persister"),
            ("Deployment", "chat-snow-festival-api"),
            ("Deployment", "chat-snow-festival-gateway"),
            ("HorizontalPodAutoscaler", "chat-snow-festival-gateway"),
            ("Ingress", "chat-snow-festival"),
        ]
    );
    for object in &objects {
        let kind = object["kind"].as_str().unwrap();
        let owner = &object["metadata"]["ownerReferences"][0];
        assert_eq!(owner["kind"], "ChatCluster", "{kind}");
        assert_eq!(owner["name"], "snow-festival", "{kind}");
        assert_eq!(owner["uid"], "0c1d2e3f-0000-4000-8000-000000000009", "{kind}");
        assert_eq!(owner["controller"], true, "{kind}");
        assert_eq!(object["metadata"]["namespace"], "weatherwise", "{kind}");
        let labels = &object["metadata"]["labels"];
        assert_eq!(labels["weatherwise.io/chat-cluster"], "snow-festival", "{kind}");
        assert_eq!(labels["app.kubernetes.io/managed-by"], "ww-operator", "{kind}");
        for key in ["app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/component"] {
            assert!(labels[key].is_string(), "{kind} lacks {key}");
        }
    }
}

#[test]
fn the_gateways_count_belongs_to_the_autoscaler_and_the_others_are_fixed() {
    let c = build(&snow(), &WorkloadConfig::example(), Metric::Connections);
    assert_eq!(c.gateway.spec.as_ref().unwrap().replicas, None, "the gateways' count is never an applied field");
    assert_eq!(c.gateway_floor, 3);
    assert_eq!(c.persister.spec.as_ref().unwrap().replicas, Some(2));
    assert_eq!(c.api.spec.as_ref().unwrap().replicas, Some(2));
    let hpa = c.gateway_hpa.spec.as_ref().unwrap();
    assert_eq!((hpa.min_replicas, hpa.max_replicas), (Some(3), 40));
    assert_eq!(hpa.scale_target_ref.name, "chat-snow-festival-gateway");
    assert!(hpa.behavior.is_some(), "the default behaviour: fast up, slow down");
    let pdb = c.gateway_pdb.spec.as_ref().unwrap();
    assert_eq!(serde_json::to_value(&pdb.max_unavailable).unwrap(), json!(1));
    assert_eq!(
        pdb.selector.as_ref().unwrap().match_labels,
        c.gateway.spec.as_ref().unwrap().selector.match_labels,
        "the budget protects the gateways"
    );
}

#[test]
fn the_autoscaler_aims_at_connections_per_pod_or_at_cpu() {
    let r = snow();
    let on_connections =
        serde_json::to_value(&build(&r, &WorkloadConfig::example(), Metric::Connections).gateway_hpa).unwrap();
    assert_eq!(
        on_connections["spec"]["metrics"],
        json!([{"type": "Pods", "pods": {"metric": {"name": "chat_sockets"}, "target": {"type": "AverageValue", "averageValue": "3000"}}}])
    );
    let on_cpu = serde_json::to_value(&build(&r, &WorkloadConfig::example(), Metric::Cpu).gateway_hpa).unwrap();
    assert_eq!(
        on_cpu["spec"]["metrics"],
        json!([{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 60}}}])
    );
}

#[test]
fn each_role_gets_the_clusters_settings_and_the_backends_from_secrets() {
    let r = snow();
    let config = WorkloadConfig::example();
    let c = children::build(&r, &Inputs { config: &config, kafka_prefix: "staging.", metric: Metric::Cpu }).unwrap();
    let secret = |name: &str, key: &str| json!({"secretKeyRef": {"name": name, "key": key, "optional": false}});
    for (deployment, role, batch) in
        [(&c.gateway, "chat-gateway", None), (&c.persister, "chat-persister", Some("1000")), (&c.api, "chat", None)]
    {
        let env = env_of(&serde_json::to_value(deployment).unwrap());
        assert_eq!(env["WW_SERVICES"], role);
        assert_eq!(env["WW_CHAT_CLUSTER"], "snow-festival", "{role}");
        assert_eq!(env["WW_CHAT_ROOM_PREFIX"], "snow-festival-", "{role}");
        assert_eq!(env["WW_CHAT_HISTORY_SIZE"], "200", "{role}");
        assert_eq!(env.get("WW_CHAT_PERSIST_BATCH").and_then(Value::as_str), batch, "{role}");
        assert_eq!(env["WW_KAFKA_PREFIX"], "staging.", "{role}: the topic the operator manages");
        assert_eq!(env["WW_DATABASE_URL"], secret("weatherwise-backends", "database-url"), "{role}");
        assert_eq!(env["WW_REDIS_URL"], secret("weatherwise-backends", "redis-url"), "{role}");
        assert_eq!(env["WW_KAFKA_BROKERS"], secret("weatherwise-backends", "kafka-brokers"), "{role}");
        assert_eq!(env["WW_JWT_KEYS"], secret("weatherwise-jwt", "keys"), "{role}");
        assert_eq!(env["WW_TRUSTED_PROXIES"], "10.0.0.0/8", "{role}");
    }
    let default = sample("chat-cluster-default.yaml");
    let env = children::role_env(Role::Gateway, "default", &default.spec, &config, "");
    let names: Vec<&str> = env.iter().map(|EnvVar { name, .. }| name.as_str()).collect();
    assert!(!names.contains(&"WW_CHAT_ROOM_PREFIX"), "the empty prefix is the roles' default: {names:?}");
    assert!(!names.contains(&"WW_KAFKA_PREFIX"), "{names:?}");
}

#[test]
fn chat_pods_stay_on_the_shared_redis_when_issuers_have_their_own() {
    let issuers_own = operator::config::SecretKey::new("weatherwise-issuer-redis", "redis-url");
    let config = WorkloadConfig {
        redis_url_secret: issuers_own,
        chat_redis_url_secret: Some(operator::config::SecretKey::new("weatherwise-backends", "redis-url")),
        ..WorkloadConfig::example()
    };
    let c = build(&snow(), &config, Metric::Cpu);
    for deployment in [&c.gateway, &c.persister, &c.api] {
        let env = env_of(&serde_json::to_value(deployment).unwrap());
        assert_eq!(env["WW_REDIS_URL"]["secretKeyRef"]["name"], "weatherwise-backends");
    }
    // Without a chat Redis named, chat pods use the one the operator gives issuers.
    let config = WorkloadConfig { chat_redis_url_secret: None, ..config };
    let env = env_of(&serde_json::to_value(&build(&snow(), &config, Metric::Cpu).gateway).unwrap());
    assert_eq!(env["WW_REDIS_URL"]["secretKeyRef"]["name"], "weatherwise-issuer-redis");
}

#[test]
fn the_pods_are_locked_down_probed_and_run_the_operators_image_unless_the_cluster_names_one() {
    let mut r = snow();
    let c = build(&r, &WorkloadConfig::example(), Metric::Cpu);
    for deployment in [&c.gateway, &c.persister, &c.api] {
        let d = serde_json::to_value(deployment).unwrap();
        let pod = &d["spec"]["template"]["spec"];
        let container = &pod["containers"][0];
        assert_eq!(container["image"], "ghcr.io/weatherwise/ww:0.1.0");
        assert_eq!(container["args"], json!(["serve"]));
        assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
        assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
        assert_eq!(pod["automountServiceAccountToken"], false);
        assert_eq!(pod["priorityClassName"], "weatherwise-events");
    }
    let gateway = serde_json::to_value(&c.gateway).unwrap();
    assert_eq!(
        gateway["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["cpu"], "1",
        "the sample's"
    );
    assert_eq!(gateway["spec"]["template"]["metadata"]["annotations"]["prometheus.io/scrape"], "true");
    r.spec.image = Some("ghcr.io/weatherwise/ww:0.2.0-rc1".to_owned());
    let c = build(&r, &WorkloadConfig::example(), Metric::Cpu);
    let image = c.persister.spec.unwrap().template.spec.unwrap().containers[0].image.clone();
    assert_eq!(image.as_deref(), Some("ghcr.io/weatherwise/ww:0.2.0-rc1"));
}

fn paths(c: &ChatChildren) -> Vec<(String, String, String)> {
    let spec = c.ingress.as_ref().unwrap().spec.as_ref().unwrap();
    spec.rules.as_ref().unwrap()[0]
        .http
        .as_ref()
        .unwrap()
        .paths
        .iter()
        .map(|p| (p.path.clone().unwrap(), p.path_type.clone(), p.backend.service.as_ref().unwrap().name.clone()))
        .collect()
}

#[test]
fn the_route_sends_the_prefixs_rooms_to_the_clusters_gateways_and_api_fit_for_websockets() {
    let c = build(&snow(), &WorkloadConfig::example(), Metric::Cpu);
    let owned = |p: &str, t: &str, s: &str| (p.to_owned(), t.to_owned(), s.to_owned());
    assert_eq!(
        paths(&c),
        [
            owned("/ws/chat/snow-festival-", "ImplementationSpecific", "chat-snow-festival-gateway"),
            owned("/api/chat/rooms/snow-festival-", "ImplementationSpecific", "chat-snow-festival-api"),
        ],
        "a string prefix of the room name: `Prefix` would match whole path elements only"
    );
    let ingress = c.ingress.as_ref().unwrap();
    let annotations = ingress.metadata.annotations.as_ref().unwrap();
    assert_eq!(annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"], "3600");
    assert_eq!(annotations["nginx.ingress.kubernetes.io/proxy-send-timeout"], "3600");
    let spec = ingress.spec.as_ref().unwrap();
    assert_eq!(spec.ingress_class_name.as_deref(), Some("nginx"));
    assert_eq!(spec.rules.as_ref().unwrap()[0].host.as_deref(), Some("weather.example.com"));
    assert_eq!(spec.tls.as_ref().unwrap()[0].secret_name.as_deref(), Some("weather-example-tls"));

    let default = build(&sample("chat-cluster-default.yaml"), &WorkloadConfig::example(), Metric::Cpu);
    assert_eq!(
        paths(&default),
        [owned("/ws/chat", "Prefix", "chat-default-gateway"), owned("/api/chat", "Prefix", "chat-default-api")],
        "the default cluster takes every room no longer prefix claims"
    );
    assert_eq!(
        children::endpoint(&WorkloadConfig::example(), "snow-festival-").as_deref(),
        Some("wss://weather.example.com/ws/chat/snow-festival-")
    );
}

#[test]
fn without_a_host_there_is_no_route() {
    let config = WorkloadConfig { ingress_host: None, ..WorkloadConfig::example() };
    let c = build(&snow(), &config, Metric::Cpu);
    assert!(c.ingress.is_none());
    assert_eq!(c.objects().unwrap().len(), 7);
    assert_eq!(children::endpoint(&config, "snow-festival-"), None);
}
