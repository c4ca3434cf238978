//! The objects a `ChatCluster` owns, built from the resource, the operator's [`WorkloadConfig`],
//! the deployment's Kafka topic prefix and the autoscaler's [`Metric`]:
//!
//! - the gateways (`ww serve chat-gateway`): Deployment, Service, HorizontalPodAutoscaler between
//!   `min` and `max` (on `chat_sockets` per pod or on CPU), PodDisruptionBudget `maxUnavailable: 1`;
//! - the persister (`ww serve chat-persister`): Deployment with its fixed count;
//! - the chat API (`ww serve chat`): Deployment with its fixed count, Service;
//! - an Ingress for `/ws/chat/{prefix}` (gateways) and `/api/chat/rooms/{prefix}` (chat API).
//!
//! Pure functions: the reconciler applies what these return and the tests read them directly.
//! The pods get their settings through the same contract as the issuers: Secret references from
//! [`WorkloadConfig`] for the database, Redis, Kafka and the JWT keys; plain variables for the
//! cluster's own settings (`WW_CHAT_*`), which `services/ww/tests/operator_contract.rs` checks
//! against the real `ww serve --check-config`.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment};
use k8s_openapi::api::autoscaling::v2::{
    CrossVersionObjectReference, HorizontalPodAutoscaler, HorizontalPodAutoscalerSpec, MetricIdentifier, MetricSpec,
    MetricTarget, PodsMetricSource, ResourceMetricSource,
};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, EnvVar, PodSecurityContext, PodSpec, PodTemplateSpec, ResourceRequirements,
    SeccompProfile, SecurityContext, Service,
};
use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressRule, IngressServiceBackend, IngressSpec,
    IngressTLS, ServiceBackendPort,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::Resource;

use super::autoscaling::{Metric, SOCKETS_METRIC};
use super::resource::{ChatCluster, ChatClusterSpec};
use crate::children::{MANAGED_BY, default_behavior, env, http_service, probe, secret_env, typed};
use crate::config::WorkloadConfig;

/// The port every chat role listens on inside its pod.
pub const PORT: i32 = 8080;
/// The label that names the cluster on every child.
pub const CLUSTER_LABEL: &str = "weatherwise.io/chat-cluster";

/// ingress-nginx: a WebSocket is one long request; without these it is cut after 60 s of silence
/// in either direction (the gateways ping every 20 s, but a quiet room's socket may send nothing).
pub const WEBSOCKET_ANNOTATIONS: [(&str, &str); 2] = [
    ("nginx.ingress.kubernetes.io/proxy-read-timeout", "3600"),
    ("nginx.ingress.kubernetes.io/proxy-send-timeout", "3600"),
];

/// The three roles of a cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Gateway,
    Persister,
    Api,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Gateway, Role::Persister, Role::Api];

    /// The role's name in `ww serve` (`WW_SERVICES`).
    pub fn service(self) -> &'static str {
        match self {
            Self::Gateway => "chat-gateway",
            Self::Persister => "chat-persister",
            Self::Api => "chat",
        }
    }

    fn suffix(self) -> &'static str {
        match self {
            Self::Gateway => "gateway",
            Self::Persister => "persister",
            Self::Api => "api",
        }
    }
}

/// The name of a role's children: `chat-<cluster>-<role>` (at most 5 + 40 + 10 = 55 characters,
/// a DNS label, since a cluster's name is at most 40 of `[a-z0-9-]`).
pub fn child_name(cluster: &str, role: Role) -> String {
    format!("chat-{cluster}-{}", role.suffix())
}

/// The name of the cluster's Ingress.
pub fn ingress_name(cluster: &str) -> String {
    format!("chat-{cluster}")
}

pub fn labels(cluster: &str, role: Role) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_owned(), "weatherwise".to_owned()),
        ("app.kubernetes.io/component".to_owned(), role.service().to_owned()),
        ("app.kubernetes.io/instance".to_owned(), format!("chat-{cluster}")),
        ("app.kubernetes.io/part-of".to_owned(), "weatherwise".to_owned()),
        ("app.kubernetes.io/managed-by".to_owned(), MANAGED_BY.to_owned()),
        (CLUSTER_LABEL.to_owned(), cluster.to_owned()),
    ])
}

/// The labels that select a role's pods (never changed after creation: a Deployment's selector
/// is immutable).
pub fn selector(cluster: &str, role: Role) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/component".to_owned(), role.service().to_owned()),
        ("app.kubernetes.io/instance".to_owned(), format!("chat-{cluster}")),
    ])
}

/// Where the ingress sends a cluster's rooms: the WebSocket path and the chat API's path for the
/// rooms under its prefix. The empty prefix takes everything under `/ws/chat` and `/api/chat`,
/// portable `Prefix` paths. A non-empty prefix is part of a path element (`/ws/chat/snow-festival-`
/// must match `/ws/chat/snow-festival-day1`), which `Prefix` cannot say (it matches whole
/// elements only): it is an `ImplementationSpecific` path, which ingress-nginx matches as a plain
/// string prefix, the longest winning (0011 has the details).
pub fn route_paths(prefix: &str) -> [(String, &'static str, Role); 2] {
    if prefix.is_empty() {
        [("/ws/chat".to_owned(), "Prefix", Role::Gateway), ("/api/chat".to_owned(), "Prefix", Role::Api)]
    } else {
        [
            (format!("/ws/chat/{prefix}"), "ImplementationSpecific", Role::Gateway),
            (format!("/api/chat/rooms/{prefix}"), "ImplementationSpecific", Role::Api),
        ]
    }
}

/// Every child of one cluster. `ingress` is `None` without a configured host.
#[derive(Debug, Clone)]
pub struct ChatChildren {
    /// Never carries `replicas`: the autoscaler owns the count (see [`ChatChildren::gateway_floor`]).
    pub gateway: Deployment,
    /// The fewest gateways: the count the Deployment is created with, and raised to when below
    /// (an HPA never scales a Deployment up from zero).
    pub gateway_floor: u32,
    pub gateway_service: Service,
    pub gateway_hpa: HorizontalPodAutoscaler,
    pub gateway_pdb: PodDisruptionBudget,
    /// With its fixed count (no autoscaler owns it).
    pub persister: Deployment,
    /// With its fixed count (no autoscaler owns it).
    pub api: Deployment,
    pub api_service: Service,
    pub ingress: Option<Ingress>,
}

impl ChatChildren {
    /// Every object as JSON with its `apiVersion` and `kind`, in the order they are applied: the
    /// Deployments after their Services, the autoscaler after its Deployment, the route last.
    pub fn objects(&self) -> serde_json::Result<Vec<serde_json::Value>> {
        let mut objects = vec![
            typed(&self.gateway_service)?,
            typed(&self.api_service)?,
            typed(&self.gateway_pdb)?,
            typed(&self.persister)?,
            typed(&self.api)?,
            typed(&self.gateway)?,
            typed(&self.gateway_hpa)?,
        ];
        if let Some(ingress) = &self.ingress {
            objects.push(typed(ingress)?);
        }
        Ok(objects)
    }
}

/// The environment of one role's pods: the cluster's settings, the backends from Secrets, the
/// deployment's Kafka topic prefix (so the pods use the topic the operator created).
pub fn role_env(
    role: Role,
    cluster: &str,
    spec: &ChatClusterSpec,
    config: &WorkloadConfig,
    kafka_prefix: &str,
) -> Vec<EnvVar> {
    let mut vars = vec![
        env("WW_SERVICES", role.service()),
        env("WW_LISTEN", &format!("0.0.0.0:{PORT}")),
        env("WW_CHAT_CLUSTER", cluster),
    ];
    if !spec.room_prefix.is_empty() {
        // Absent is the empty prefix (the default cluster).
        vars.push(env("WW_CHAT_ROOM_PREFIX", &spec.room_prefix));
    }
    vars.push(env("WW_CHAT_HISTORY_SIZE", &spec.history_size.to_string()));
    if role == Role::Persister {
        vars.push(env("WW_CHAT_PERSIST_BATCH", &spec.persister.batch_size.to_string()));
    }
    if !kafka_prefix.is_empty() {
        vars.push(env("WW_KAFKA_PREFIX", kafka_prefix));
    }
    // Partitions and replication as the operator uses them (the prefix is the cluster's, above).
    vars.extend(config.bus_env.iter().filter(|(k, v)| k != "WW_KAFKA_PREFIX" && !v.is_empty()).map(|(k, v)| env(k, v)));
    vars.extend([
        secret_env("WW_DATABASE_URL", &config.database_url_secret),
        secret_env("WW_REDIS_URL", config.chat_redis_url_secret.as_ref().unwrap_or(&config.redis_url_secret)),
        secret_env("WW_KAFKA_BROKERS", &config.kafka_brokers_secret),
        secret_env("WW_JWT_KEYS", &config.jwt_keys_secret),
        env("WW_TRUSTED_PROXIES", &config.trusted_proxies),
        env("WW_LOG_FORMAT", "json"),
    ]);
    vars
}

fn resources(requested_cpu: &str, limit_memory: &str) -> ResourceRequirements {
    ResourceRequirements {
        requests: Some(BTreeMap::from([
            ("cpu".to_owned(), Quantity(requested_cpu.to_owned())),
            ("memory".to_owned(), Quantity("256Mi".to_owned())),
        ])),
        limits: Some(BTreeMap::from([("memory".to_owned(), Quantity(limit_memory.to_owned()))])),
        ..ResourceRequirements::default()
    }
}

/// Everything [`build`] needs besides the resource.
#[derive(Debug, Clone)]
pub struct Inputs<'a> {
    pub config: &'a WorkloadConfig,
    /// The deployment's Kafka topic prefix (`WW_KAFKA_PREFIX`).
    pub kafka_prefix: &'a str,
    pub metric: Metric,
}

/// Every child of `resource`. `None` when it has no name or uid (the API server gives both).
pub fn build(resource: &ChatCluster, inputs: &Inputs<'_>) -> Option<ChatChildren> {
    let owner = resource.controller_owner_ref(&())?;
    let cluster = resource.metadata.name.clone()?;
    let namespace = resource.metadata.namespace.clone();
    let spec = &resource.spec;
    let meta = |name: String, role: Role| ObjectMeta {
        name: Some(name),
        namespace: namespace.clone(),
        labels: Some(labels(&cluster, role)),
        owner_references: Some(vec![owner.clone()]),
        ..ObjectMeta::default()
    };
    let image = spec.image.clone().unwrap_or_else(|| inputs.config.image.clone());
    let deployment = |role: Role, replicas: Option<u32>, resources: ResourceRequirements| {
        let name = child_name(&cluster, role);
        let container = Container {
            name: role.suffix().to_owned(),
            image: Some(image.clone()),
            image_pull_policy: Some(inputs.config.image_pull_policy.clone()),
            args: Some(vec!["serve".to_owned()]),
            env: Some(role_env(role, &cluster, spec, inputs.config, inputs.kafka_prefix)),
            ports: Some(vec![ContainerPort {
                name: Some("http".to_owned()),
                container_port: PORT,
                protocol: Some("TCP".to_owned()),
                ..ContainerPort::default()
            }]),
            readiness_probe: Some(probe("/readyz", 2, 2)),
            liveness_probe: Some(probe("/healthz", 10, 3)),
            startup_probe: Some(probe("/healthz", 1, 60)),
            resources: Some(resources),
            security_context: Some(SecurityContext {
                allow_privilege_escalation: Some(false),
                read_only_root_filesystem: Some(true),
                run_as_non_root: Some(true),
                capabilities: Some(Capabilities { drop: Some(vec!["ALL".to_owned()]), ..Capabilities::default() }),
                ..SecurityContext::default()
            }),
            ..Container::default()
        };
        let pod = PodSpec {
            containers: vec![container],
            security_context: Some(PodSecurityContext {
                run_as_non_root: Some(true),
                run_as_user: Some(65_532),
                seccomp_profile: Some(SeccompProfile {
                    type_: "RuntimeDefault".to_owned(),
                    ..SeccompProfile::default()
                }),
                ..PodSecurityContext::default()
            }),
            priority_class_name: inputs.config.priority_class.clone(),
            node_selector: inputs.config.node_selector(),
            tolerations: inputs.config.tolerations(),
            image_pull_secrets: inputs.config.pull_secrets(),
            // A gateway closes its sockets with 1001 on SIGTERM and clients resume elsewhere.
            termination_grace_period_seconds: Some(30),
            automount_service_account_token: Some(false),
            enable_service_links: Some(false),
            ..PodSpec::default()
        };
        // The gateways' `chat_sockets` is what a metrics adapter reads for the autoscaler; these
        // are the annotations Prometheus' usual Kubernetes scrape configuration looks for.
        let annotations = BTreeMap::from([
            ("prometheus.io/scrape".to_owned(), "true".to_owned()),
            ("prometheus.io/port".to_owned(), PORT.to_string()),
            ("prometheus.io/path".to_owned(), "/metrics".to_owned()),
        ]);
        Deployment {
            metadata: meta(name, role),
            spec: Some(DeploymentSpec {
                replicas: replicas.map(|r| i32::try_from(r).unwrap_or(i32::MAX)),
                selector: LabelSelector { match_labels: Some(selector(&cluster, role)), ..LabelSelector::default() },
                strategy: Some(DeploymentStrategy {
                    type_: Some("RollingUpdate".to_owned()),
                    rolling_update: Some(RollingUpdateDeployment {
                        max_surge: Some(IntOrString::String("25%".to_owned())),
                        max_unavailable: Some(IntOrString::Int(0)),
                    }),
                }),
                template: PodTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some(labels(&cluster, role)),
                        annotations: Some(annotations),
                        ..ObjectMeta::default()
                    }),
                    spec: Some(pod),
                },
                ..DeploymentSpec::default()
            }),
            ..Deployment::default()
        }
    };
    let service = |role: Role| http_service(meta(child_name(&cluster, role), role), selector(&cluster, role));
    let gateway = &spec.gateway;
    let metric = match inputs.metric {
        Metric::Connections => MetricSpec {
            type_: "Pods".to_owned(),
            pods: Some(PodsMetricSource {
                metric: MetricIdentifier { name: SOCKETS_METRIC.to_owned(), selector: None },
                target: MetricTarget {
                    type_: "AverageValue".to_owned(),
                    average_value: Some(Quantity(gateway.connections_per_pod.to_string())),
                    ..MetricTarget::default()
                },
            }),
            ..MetricSpec::default()
        },
        Metric::Cpu => MetricSpec {
            type_: "Resource".to_owned(),
            resource: Some(ResourceMetricSource {
                name: "cpu".to_owned(),
                target: MetricTarget {
                    type_: "Utilization".to_owned(),
                    average_utilization: Some(i32::try_from(gateway.target_cpu_utilization).unwrap_or(60)),
                    ..MetricTarget::default()
                },
            }),
            ..MetricSpec::default()
        },
    };
    let gateway_name = child_name(&cluster, Role::Gateway);
    let hpa = HorizontalPodAutoscaler {
        metadata: meta(gateway_name.clone(), Role::Gateway),
        spec: Some(HorizontalPodAutoscalerSpec {
            scale_target_ref: CrossVersionObjectReference {
                api_version: Some("apps/v1".to_owned()),
                kind: "Deployment".to_owned(),
                name: gateway_name.clone(),
            },
            min_replicas: Some(i32::try_from(gateway.replicas.min).unwrap_or(i32::MAX)),
            max_replicas: i32::try_from(gateway.replicas.max).unwrap_or(i32::MAX),
            metrics: Some(vec![metric]),
            behavior: Some(gateway.behavior.clone().unwrap_or_else(default_behavior)),
        }),
        ..HorizontalPodAutoscaler::default()
    };
    let pdb = PodDisruptionBudget {
        metadata: meta(gateway_name, Role::Gateway),
        spec: Some(PodDisruptionBudgetSpec {
            // One gateway at a time: its sockets resume on the others.
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(LabelSelector {
                match_labels: Some(selector(&cluster, Role::Gateway)),
                ..LabelSelector::default()
            }),
            unhealthy_pod_eviction_policy: Some("AlwaysAllow".to_owned()),
            ..PodDisruptionBudgetSpec::default()
        }),
        ..PodDisruptionBudget::default()
    };
    let ingress = inputs.config.ingress_host.as_ref().map(|host| Ingress {
        metadata: ObjectMeta {
            annotations: Some(WEBSOCKET_ANNOTATIONS.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()),
            ..meta(ingress_name(&cluster), Role::Gateway)
        },
        spec: Some(IngressSpec {
            ingress_class_name: inputs.config.ingress_class.clone(),
            tls: inputs
                .config
                .ingress_tls_secret
                .as_ref()
                .map(|secret| vec![IngressTLS { hosts: Some(vec![host.clone()]), secret_name: Some(secret.clone()) }]),
            rules: Some(vec![IngressRule {
                host: Some(host.clone()),
                http: Some(HTTPIngressRuleValue {
                    paths: route_paths(&spec.room_prefix)
                        .into_iter()
                        .map(|(path, path_type, role)| HTTPIngressPath {
                            path: Some(path),
                            path_type: path_type.to_owned(),
                            backend: IngressBackend {
                                service: Some(IngressServiceBackend {
                                    name: child_name(&cluster, role),
                                    port: Some(ServiceBackendPort {
                                        number: Some(80),
                                        ..ServiceBackendPort::default()
                                    }),
                                }),
                                ..IngressBackend::default()
                            },
                        })
                        .collect(),
                }),
            }]),
            ..IngressSpec::default()
        }),
        ..Ingress::default()
    });
    Some(ChatChildren {
        gateway: deployment(Role::Gateway, None, gateway.resources.clone().unwrap_or_else(|| resources("500m", "1Gi"))),
        gateway_floor: gateway.replicas.min,
        gateway_service: service(Role::Gateway),
        gateway_hpa: hpa,
        gateway_pdb: pdb,
        persister: deployment(
            Role::Persister,
            Some(spec.persister.replicas),
            spec.persister.resources.clone().unwrap_or_else(|| resources("250m", "512Mi")),
        ),
        api: deployment(
            Role::Api,
            Some(spec.api.replicas),
            spec.api.resources.clone().unwrap_or_else(|| resources("250m", "512Mi")),
        ),
        api_service: service(Role::Api),
        ingress,
    })
}

/// Where clients open the cluster's WebSockets, under the configured host.
pub fn endpoint(config: &WorkloadConfig, prefix: &str) -> Option<String> {
    config.ingress_host.as_ref().map(|host| {
        let scheme = if config.ingress_tls_secret.is_some() { "wss" } else { "ws" };
        format!("{scheme}://{host}/ws/chat/{prefix}")
    })
}
