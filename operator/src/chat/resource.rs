//! The `ChatCluster` custom resource: the rooms under one prefix, served by their own WebSocket
//! gateways, persister and chat API on their own Kafka topic. The shape and the bounds a schema can
//! state live here, next to the doc comments `kubectl explain` shows; [`ChatClusterSpec::problems`]
//! restates the cross-field rules (which the API server checks as CEL) for objects the operator
//! reads untyped, with the same limits (see [`limits`]).
//!
//! It lives in the operator, not in `services/chat`: the chat crate links sqlx and redis, which
//! the operator must not (scripts/test.sh checks). The chat roles know nothing of the resource;
//! they get its settings as environment variables (`WW_CHAT_*`, see `children`), and
//! `services/ww/tests/operator_contract.rs` runs the real `ww serve --check-config` with them.

use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscalerBehavior;
use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

pub const API_VERSION: &str = "weatherwise.io/v1alpha1";
pub const KIND: &str = "ChatCluster";
/// The cluster whose rooms are on `chat.messages` (every other one is on `chat.<name>.messages`).
pub const DEFAULT_CLUSTER: &str = "default";

/// The limits the schema states, matching what the chat roles accept for the same settings
/// (`ChatConfig` in services/chat/src/lib.rs: `WW_CHAT_CLUSTER`, `WW_CHAT_ROOM_PREFIX`,
/// `WW_CHAT_HISTORY_SIZE`, `WW_CHAT_PERSIST_BATCH`; `WW_KAFKA_PARTITIONS` of the platform).
pub mod limits {
    use std::ops::RangeInclusive;

    /// A cluster name is `WW_CHAT_CLUSTER`: at most 40 characters.
    pub const NAME_MAX: usize = 40;
    pub const PREFIX_MAX: usize = 40;
    /// The room prefix: empty, or what starts a room name (`chat::room::is_room_name`).
    pub const PREFIX_PATTERN: &str = "^([a-z0-9][-_a-z0-9]*)?$";
    pub const PARTITIONS: RangeInclusive<u32> = 1..=1_024;
    pub const HISTORY_SIZE: RangeInclusive<u64> = 1..=100_000;
    pub const PERSIST_BATCH: RangeInclusive<u64> = 1..=5_000;
    pub const GATEWAY_REPLICAS: RangeInclusive<u32> = 1..=1_000;
    pub const CONNECTIONS_PER_POD: RangeInclusive<u32> = 10..=1_000_000;
    pub const PERSISTER_REPLICAS: RangeInclusive<u32> = 1..=1_024;
    pub const API_REPLICAS: RangeInclusive<u32> = 1..=100;
    pub const CPU_UTILIZATION: RangeInclusive<u32> = 10..=100;
    pub const IMAGE_MAX: usize = 512;
}

/// `metadata.name` is the cluster's name in the chat roles (`WW_CHAT_CLUSTER`, 1 to 40 of
/// `[a-z0-9_-]`) and a part of its children's names, which must be DNS labels: so 1 to 40
/// lowercase letters, digits or '-', starting and ending with a letter or digit.
const NAME_RULE: &str =
    "self.metadata.name.size() <= 40 && self.metadata.name.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')";

/// The prefix names the rooms whose messages are on this cluster's topic: changing it would move
/// rooms to another cluster without their history.
const PREFIX_FIXED_RULE: &str = "(has(self.spec.roomPrefix) ? self.spec.roomPrefix : '') == \
(has(oldSelf.spec.roomPrefix) ? oldSelf.spec.roomPrefix : '')";

/// Kafka cannot remove partitions.
const PARTITIONS_GROW_RULE: &str = "(has(self.spec.partitions) ? self.spec.partitions : 6) >= \
(has(oldSelf.spec.partitions) ? oldSelf.spec.partitions : 6)";

/// A consumer group gives each partition to one member: persisters beyond the partitions idle.
const PERSISTERS_RULE: &str = "!has(self.spec.persister) || !has(self.spec.persister.replicas) || \
self.spec.persister.replicas <= (has(self.spec.partitions) ? self.spec.partitions : 6)";

/// The chat rooms whose names start with `roomPrefix`, with their own WebSocket gateways, persister
/// and chat API on their own Kafka topic (one cluster per event, e.g. `snow-festival-`; the
/// cluster with the empty prefix takes every other room). The ingress sends each room to the
/// cluster with the longest prefix that starts its name.
#[derive(CustomResource, JsonSchema, Debug, Clone, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "weatherwise.io",
    version = "v1alpha1",
    kind = "ChatCluster",
    namespaced,
    status = "ChatClusterStatus",
    shortname = "chat",
    category = "weatherwise",
    doc = "Chat rooms under one name prefix and the WebSocket gateways, persister, chat API and Kafka topic the operator runs for them. `kubectl get chat` shows ready gateways and open connections.",
    printcolumn = r#"{"name":"Prefix","type":"string","description":"Room names this cluster serves start with this","jsonPath":".spec.roomPrefix"}"#,
    printcolumn = r#"{"name":"Partitions","type":"integer","description":"Partitions of the topic on the broker","jsonPath":".status.partitions"}"#,
    printcolumn = r#"{"name":"Gateways","type":"integer","description":"Ready WebSocket gateways","jsonPath":".status.readyGateways"}"#,
    printcolumn = r#"{"name":"Connections","type":"integer","description":"Open WebSockets, as the autoscaler last read them","jsonPath":".status.connections"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    validation = Rule::new(NAME_RULE).message("metadata.name is the cluster's name: 1 to 40 lowercase letters, digits or '-', starting and ending with a letter or digit").field_path(".metadata.name"),
    validation = Rule::new(PREFIX_FIXED_RULE).message("roomPrefix cannot change: it names the rooms whose messages are on this cluster's topic").field_path(".spec.roomPrefix").reason(Reason::FieldValueForbidden),
    validation = Rule::new(PARTITIONS_GROW_RULE).message("partitions cannot decrease: Kafka cannot remove a topic's partitions").field_path(".spec.partitions").reason(Reason::FieldValueForbidden),
    validation = Rule::new(PERSISTERS_RULE).message("persister.replicas must not exceed partitions: each partition is read by one persister").field_path(".spec.persister.replicas")
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChatClusterSpec {
    /// The start of every room name this cluster serves, e.g. `snow-festival-`; empty (the
    /// default) for the cluster that takes every room no other cluster's prefix starts. At most 40
    /// lowercase letters, digits, '-' or '_', starting with a letter or digit. Cannot change.
    #[serde(default)]
    #[schemars(length(max = limits::PREFIX_MAX), regex(pattern = limits::PREFIX_PATTERN))]
    pub room_prefix: String,
    /// Partitions of the cluster's Kafka topic, 1 to 1024; 6 when absent. Rooms are spread over
    /// them (one room stays in one partition, keeping its order), so this bounds how many
    /// persisters share the work. It can grow (rooms then move to other partitions and resumes
    /// from before the change start from history) but never shrink.
    #[serde(default = "default_partitions")]
    #[schemars(range(min = *limits::PARTITIONS.start(), max = *limits::PARTITIONS.end()))]
    pub partitions: u32,
    /// Newest messages per room the persister keeps in Redis for the history's first page, 1 to
    /// 100000; 100 when absent.
    #[serde(default = "default_history_size")]
    #[schemars(range(min = *limits::HISTORY_SIZE.start(), max = *limits::HISTORY_SIZE.end()))]
    pub history_size: u64,
    #[serde(default)]
    pub gateway: Gateway,
    #[serde(default)]
    pub persister: Persister,
    #[serde(default)]
    pub api: ChatApi,
    /// The image of `ww` every role of this cluster runs; absent: the operator's image. Only
    /// images under the operator's `--allowed-images` prefixes are run (the pods get the
    /// platform's secrets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = limits::IMAGE_MAX))]
    pub image: Option<String>,
}

fn default_partitions() -> u32 {
    6
}

fn default_history_size() -> u64 {
    100
}

/// The WebSocket gateways (`ww serve chat-gateway`), autoscaled between `replicas.min` and
/// `replicas.max`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Gateway {
    #[serde(default)]
    pub replicas: GatewayReplicas,
    /// Open WebSockets per gateway pod the autoscaler aims at when it scales on connections, 10
    /// to 1000000; 2000 when absent.
    #[serde(default = "default_connections_per_pod")]
    #[schemars(range(min = *limits::CONNECTIONS_PER_POD.start(), max = *limits::CONNECTIONS_PER_POD.end()))]
    pub connections_per_pod: u32,
    /// What the autoscaler scales on. `Auto` (the default): open connections per pod when the
    /// cluster serves custom metrics (`custom.metrics.k8s.io`, e.g. the Prometheus adapter with
    /// the rule for `chat_sockets` in docs/decisions/0011-chatcluster.md), else CPU. `Connections`
    /// or `Cpu` force one.
    #[serde(default)]
    pub autoscale_on: AutoscaleOn,
    /// The average CPU utilisation, in percent of the requested CPU, the autoscaler keeps the
    /// gateways at when it scales on CPU, 10 to 100; 60 when absent.
    #[serde(default = "default_cpu_utilization")]
    #[schemars(range(min = *limits::CPU_UTILIZATION.start(), max = *limits::CPU_UTILIZATION.end()))]
    pub target_cpu_utilization: u32,
    /// CPU and memory for each gateway pod; absent: 500m CPU and 256Mi memory requested, 1Gi
    /// memory limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// The autoscaler's behaviour; absent: double or add 4 pods every 15 seconds with no
    /// stabilisation up, and remove at most half every 30 seconds after 60 seconds of lower load
    /// down.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub behavior: Option<HorizontalPodAutoscalerBehavior>,
}

impl Default for Gateway {
    fn default() -> Self {
        Self {
            replicas: GatewayReplicas::default(),
            connections_per_pod: default_connections_per_pod(),
            autoscale_on: AutoscaleOn::default(),
            target_cpu_utilization: default_cpu_utilization(),
            resources: None,
            behavior: None,
        }
    }
}

fn default_connections_per_pod() -> u32 {
    2_000
}

fn default_cpu_utilization() -> u32 {
    60
}

/// Gateway replicas: never fewer than `min`, up to `max` under load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[x_kube(validation = Rule::new("self.min <= self.max").message("gateway replicas must satisfy min <= max").field_path(".min"))]
pub struct GatewayReplicas {
    /// The fewest gateways, 1 to 1000; 2 when absent (one can restart while the other serves).
    #[serde(default = "default_min_gateways")]
    #[schemars(range(min = *limits::GATEWAY_REPLICAS.start(), max = *limits::GATEWAY_REPLICAS.end()))]
    pub min: u32,
    /// The most gateways the autoscaler may run, 1 to 1000; 10 when absent.
    #[serde(default = "default_max_gateways")]
    #[schemars(range(min = *limits::GATEWAY_REPLICAS.start(), max = *limits::GATEWAY_REPLICAS.end()))]
    pub max: u32,
}

impl Default for GatewayReplicas {
    fn default() -> Self {
        Self { min: default_min_gateways(), max: default_max_gateways() }
    }
}

fn default_min_gateways() -> u32 {
    2
}

fn default_max_gateways() -> u32 {
    10
}

/// Written exactly as the variant names, as Kubernetes string enums are.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AutoscaleOn {
    /// Connections when the cluster serves custom metrics, else CPU.
    #[default]
    Auto,
    /// Open WebSockets per pod (`chat_sockets`, through `custom.metrics.k8s.io`).
    Connections,
    /// CPU utilisation.
    Cpu,
}

impl JsonSchema for AutoscaleOn {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "AutoscaleOn".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({"type": "string", "enum": ["Auto", "Connections", "Cpu"]})
    }
}

impl AutoscaleOn {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "Auto",
            Self::Connections => "Connections",
            Self::Cpu => "Cpu",
        }
    }
}

impl std::str::FromStr for AutoscaleOn {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            "connections" => Ok(Self::Connections),
            "cpu" => Ok(Self::Cpu),
            _ => Err(format!("`{s}` is not auto, connections or cpu")),
        }
    }
}

/// The persister (`ww serve chat-persister`): a consumer group writing every message to SQL and
/// the newest per room to Redis.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Persister {
    /// Persister pods, 1 to 1024 and at most `partitions`; 1 when absent.
    #[serde(default = "one")]
    #[schemars(range(min = *limits::PERSISTER_REPLICAS.start(), max = *limits::PERSISTER_REPLICAS.end()))]
    pub replicas: u32,
    /// Most messages written in one transaction, 1 to 5000; 500 when absent.
    #[serde(default = "default_batch_size")]
    #[schemars(range(min = *limits::PERSIST_BATCH.start(), max = *limits::PERSIST_BATCH.end()))]
    pub batch_size: u64,
    /// CPU and memory for each persister pod; absent: 250m CPU and 256Mi memory requested, 512Mi
    /// memory limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
}

impl Default for Persister {
    fn default() -> Self {
        Self { replicas: one(), batch_size: default_batch_size(), resources: None }
    }
}

fn one() -> u32 {
    1
}

fn default_batch_size() -> u64 {
    500
}

/// The chat API (`ww serve chat`): rooms, history pages and moderation of this cluster's rooms
/// over HTTP (`/api/chat/rooms/{prefix}…`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChatApi {
    /// Chat API pods, 1 to 100; 2 when absent.
    #[serde(default = "two")]
    #[schemars(range(min = *limits::API_REPLICAS.start(), max = *limits::API_REPLICAS.end()))]
    pub replicas: u32,
    /// CPU and memory for each chat API pod; absent: 250m CPU and 256Mi memory requested, 512Mi
    /// memory limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
}

impl Default for ChatApi {
    fn default() -> Self {
        Self { replicas: two(), resources: None }
    }
}

fn two() -> u32 {
    2
}

/// What the operator last saw of the cluster. `connections` comes from the gateway autoscaler's
/// own reading of `chat_sockets` and is absent while it scales on CPU: no other source is counted.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChatClusterStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The Kafka topic of the cluster's messages (with the deployment's topic prefix).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    /// Partitions of the topic as the broker last reported them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partitions: Option<u32>,
    /// Gateway pods that are Ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_gateways: Option<u32>,
    /// Open WebSockets over all gateways, as the autoscaler last read `chat_sockets` (its
    /// average per pod times its current replicas); absent while it scales on CPU.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connections: Option<u64>,
    /// What the gateway autoscaler scales on now: `Connections` or `Cpu`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaled_on: Option<String>,
    /// Where clients open the cluster's WebSockets: `/ws/chat/` and the prefix under the
    /// platform's public host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Ready, TopicReady, Autoscaling and InvalidSpec, each with a reason and a message.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}

/// The cluster's topic: `chat.messages` for the cluster named `default`, `chat.<name>.messages`
/// for any other, after the deployment's Kafka topic prefix (`WW_KAFKA_PREFIX`) — as
/// `ChatConfig::topic` and `KafkaBus::topic` name it in the chat roles.
pub fn topic_name(cluster: &str, kafka_prefix: &str) -> String {
    if cluster == DEFAULT_CLUSTER {
        format!("{kafka_prefix}{}", platform::events::contracts::topics::CHAT_MESSAGES)
    } else {
        format!("{kafka_prefix}chat.{cluster}.messages")
    }
}

fn is_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= limits::NAME_MAX
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

fn is_prefix(prefix: &str) -> bool {
    let b = prefix.as_bytes();
    b.is_empty()
        || (b.len() <= limits::PREFIX_MAX
            && b[0].is_ascii_alphanumeric()
            && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-' || *c == b'_'))
}

impl ChatClusterSpec {
    /// Every rule the schema and its CEL rules state, restated for a cluster read untyped (stored
    /// before a schema change, say), as `path: message`. Empty when the cluster can run.
    pub fn problems(&self, name: &str) -> Vec<String> {
        let mut problems = Vec::new();
        if !is_name(name) {
            problems.push(
                "metadata.name: the cluster's name is 1 to 40 lowercase letters, digits or '-', starting and \
                 ending with a letter or digit"
                    .to_owned(),
            );
        }
        if !is_prefix(&self.room_prefix) {
            problems.push(
                "spec.roomPrefix: empty, or at most 40 lowercase letters, digits, '-' or '_' starting with a \
                 letter or digit"
                    .to_owned(),
            );
        }
        let mut range = |path: &str, value: u64, range: (u64, u64)| {
            if value < range.0 || value > range.1 {
                problems.push(format!("{path}: {value} is not within {} to {}", range.0, range.1));
            }
        };
        let r32 = |r: &std::ops::RangeInclusive<u32>| (u64::from(*r.start()), u64::from(*r.end()));
        let r64 = |r: &std::ops::RangeInclusive<u64>| (*r.start(), *r.end());
        range("spec.partitions", self.partitions.into(), r32(&limits::PARTITIONS));
        range("spec.historySize", self.history_size, r64(&limits::HISTORY_SIZE));
        range("spec.gateway.replicas.min", self.gateway.replicas.min.into(), r32(&limits::GATEWAY_REPLICAS));
        range("spec.gateway.replicas.max", self.gateway.replicas.max.into(), r32(&limits::GATEWAY_REPLICAS));
        range(
            "spec.gateway.connectionsPerPod",
            self.gateway.connections_per_pod.into(),
            r32(&limits::CONNECTIONS_PER_POD),
        );
        range(
            "spec.gateway.targetCpuUtilization",
            self.gateway.target_cpu_utilization.into(),
            r32(&limits::CPU_UTILIZATION),
        );
        range("spec.persister.replicas", self.persister.replicas.into(), r32(&limits::PERSISTER_REPLICAS));
        range("spec.persister.batchSize", self.persister.batch_size, r64(&limits::PERSIST_BATCH));
        range("spec.api.replicas", self.api.replicas.into(), r32(&limits::API_REPLICAS));
        if self.gateway.replicas.min > self.gateway.replicas.max {
            problems.push("spec.gateway.replicas.min: gateway replicas must satisfy min <= max".to_owned());
        }
        if self.persister.replicas > self.partitions {
            problems.push(
                "spec.persister.replicas: persister.replicas must not exceed partitions: each partition is read \
                 by one persister"
                    .to_owned(),
            );
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn omitted_fields_take_their_defaults() {
        let spec: ChatClusterSpec = serde_json::from_str("{}").unwrap();
        assert_eq!(spec.room_prefix, "");
        assert_eq!(spec.partitions, 6);
        assert_eq!(spec.history_size, 100);
        assert_eq!(spec.gateway, Gateway::default());
        assert_eq!(spec.gateway.replicas, GatewayReplicas { min: 2, max: 10 });
        assert_eq!(spec.gateway.connections_per_pod, 2_000);
        assert_eq!(spec.gateway.autoscale_on, AutoscaleOn::Auto);
        assert_eq!(spec.persister, Persister { replicas: 1, batch_size: 500, resources: None });
        assert_eq!(spec.api.replicas, 2);
        assert_eq!(spec.problems("default"), Vec::<String>::new());
    }

    #[test]
    fn the_topic_is_named_as_the_chat_roles_name_it() {
        assert_eq!(topic_name("default", ""), "chat.messages");
        assert_eq!(topic_name("snow-festival", ""), "chat.snow-festival.messages");
        assert_eq!(topic_name("snow-festival", "staging."), "staging.chat.snow-festival.messages");
    }

    #[test]
    fn the_rules_restated_refuse_what_the_cel_rules_refuse() {
        let spec = |json: serde_json::Value| serde_json::from_value::<ChatClusterSpec>(json).unwrap();
        let bad = [
            ("default", spec(serde_json::json!({"gateway": {"replicas": {"min": 5, "max": 4}}})), "min <= max"),
            ("default", spec(serde_json::json!({"partitions": 2, "persister": {"replicas": 3}})), "exceed partitions"),
            ("default", spec(serde_json::json!({"roomPrefix": "-x"})), "spec.roomPrefix"),
            ("default", spec(serde_json::json!({"roomPrefix": "Snow"})), "spec.roomPrefix"),
            ("default", spec(serde_json::json!({"partitions": 0})), "spec.partitions"),
            ("Snow", spec(serde_json::json!({})), "metadata.name"),
            ("snow_festival", spec(serde_json::json!({})), "metadata.name"),
            (&"a".repeat(41), spec(serde_json::json!({})), "metadata.name"),
        ];
        for (name, spec, expected) in bad {
            let problems = spec.problems(name);
            assert!(problems.iter().any(|p| p.contains(expected)), "{name} {spec:?}: {problems:?}");
        }
        let good = spec(
            serde_json::json!({"roomPrefix": "snow_festival-2026-", "partitions": 3, "persister": {"replicas": 3}}),
        );
        assert_eq!(good.problems(&"a".repeat(40)), Vec::<String>::new());
    }

    #[test]
    fn autoscale_choices_are_written_as_kubernetes_string_enums() {
        assert_eq!(serde_json::to_value(AutoscaleOn::Connections).unwrap(), "Connections");
        assert!(serde_json::from_str::<AutoscaleOn>(r#""cpu""#).is_err());
        assert_eq!("cpu".parse::<AutoscaleOn>(), Ok(AutoscaleOn::Cpu));
    }
}
