//! The objects a `CouponCampaign` owns, built from the campaign, its plan at this instant and the
//! operator's [`WorkloadConfig`]: a ConfigMap with the rules, the issuer Deployment
//! (`ww serve coupon-issuer`), its Service, a HorizontalPodAutoscaler while autoscaled, a
//! PodDisruptionBudget, and an Ingress rule for `/api/campaigns/{name}/`.
//!
//! Pure functions: the reconciler applies what these return (server-side apply, one field
//! manager) and the tests read them directly.

use std::collections::BTreeMap;

use campaign::plan::{Plan, Scale};
use campaign::{Campaign, CouponCampaign, ResourcePhase};
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment};
use k8s_openapi::api::autoscaling::v2::{
    CrossVersionObjectReference, HPAScalingPolicy, HPAScalingRules, HorizontalPodAutoscaler,
    HorizontalPodAutoscalerBehavior, HorizontalPodAutoscalerSpec, MetricSpec, MetricTarget, ResourceMetricSource,
};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, EnvVar, EnvVarSource, HTTPGetAction,
    PodSecurityContext, PodSpec, PodTemplateSpec, Probe, ResourceRequirements, SeccompProfile, SecretKeySelector,
    SecurityContext, Service, ServicePort, ServiceSpec, Volume, VolumeMount,
};
use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressRule, IngressServiceBackend, IngressSpec,
    IngressTLS, ServiceBackendPort,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::Resource;

use crate::config::{SecretKey, WorkloadConfig};

/// The port the issuer listens on inside the pod.
pub const ISSUER_PORT: i32 = 8080;
/// Where the campaign's rules are mounted in the issuer pods.
pub const CAMPAIGN_DIR: &str = "/etc/weatherwise/campaign";
pub const CAMPAIGN_FILE: &str = "campaign.yaml";
/// The pod template annotation naming the campaign instance (uid) the issuers serve.
pub const CAMPAIGN_UID_ANNOTATION: &str = "weatherwise.io/campaign-uid";
/// The one field manager of every server-side apply.
pub const FIELD_MANAGER: &str = "ww-operator";
pub const MANAGED_BY: &str = "ww-operator";
/// The label that names the campaign on every child.
pub const CAMPAIGN_LABEL: &str = "weatherwise.io/campaign";

/// Every child of one campaign at one instant. `hpa` and `ingress` are `None` when they should
/// not exist: no autoscaler while the count is fixed; the campaign's own route only while its
/// issuers serve (otherwise the platform's Ingress sends `/api/campaigns/` to the steady-state
/// coupon service) and only with a configured host.
#[derive(Debug, Clone)]
pub struct Children {
    pub config_map: ConfigMap,
    /// Never carries `replicas`: see [`Children::replicas`].
    pub deployment: Deployment,
    /// The issuer count to hold now: the fixed count, or the autoscaler's floor. Set at creation
    /// and through the scale subresource, never in the applied fields (an apply that drops a
    /// field it alone owned deletes it, and the Deployment would fall back to one replica).
    pub replicas: u32,
    pub service: Service,
    pub hpa: Option<HorizontalPodAutoscaler>,
    pub pdb: PodDisruptionBudget,
    pub ingress: Option<Ingress>,
}

impl Children {
    /// Every object as JSON with its `apiVersion` and `kind`, in the order they are applied: the
    /// ConfigMap before the Deployment that mounts it, the route last.
    pub fn objects(&self) -> serde_json::Result<Vec<serde_json::Value>> {
        let mut objects =
            vec![typed(&self.config_map)?, typed(&self.service)?, typed(&self.pdb)?, typed(&self.deployment)?];
        if let Some(hpa) = &self.hpa {
            objects.push(typed(hpa)?);
        }
        if let Some(ingress) = &self.ingress {
            objects.push(typed(ingress)?);
        }
        Ok(objects)
    }
}

pub(crate) fn typed<K: Resource<DynamicType = ()> + serde::Serialize>(
    object: &K,
) -> serde_json::Result<serde_json::Value> {
    let mut value = serde_json::to_value(object)?;
    if let Some(map) = value.as_object_mut() {
        map.insert("apiVersion".to_owned(), K::api_version(&()).into());
        map.insert("kind".to_owned(), K::kind(&()).into());
    }
    Ok(value)
}

/// What the reconciler observed of the running workload, which decides where the route points.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Running {
    /// Issuer pods that are Ready.
    pub ready_replicas: u32,
}

/// The name of every child: `cc-` and the campaign's name, cut to a DNS label (63) with a hash
/// of the whole name when longer, so two long names never collide.
pub fn child_name(campaign: &str) -> String {
    let full = format!("cc-{campaign}");
    if full.len() <= 63 {
        return full;
    }
    let hash = fnv1a(campaign.as_bytes());
    let keep = 63 - 9;
    format!("{}-{:08x}", full[..keep].trim_end_matches('-'), hash as u32)
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}

pub fn labels(campaign: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_owned(), "weatherwise".to_owned()),
        ("app.kubernetes.io/component".to_owned(), "coupon-issuer".to_owned()),
        ("app.kubernetes.io/instance".to_owned(), child_name(campaign)),
        ("app.kubernetes.io/part-of".to_owned(), "weatherwise".to_owned()),
        ("app.kubernetes.io/managed-by".to_owned(), MANAGED_BY.to_owned()),
        (CAMPAIGN_LABEL.to_owned(), campaign.to_owned()),
    ])
}

/// The labels that select the campaign's issuer pods (never changed after creation: a
/// Deployment's selector is immutable).
pub fn selector(campaign: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/component".to_owned(), "coupon-issuer".to_owned()),
        ("app.kubernetes.io/instance".to_owned(), child_name(campaign)),
    ])
}

fn meta(resource: &CouponCampaign, owner: &OwnerReference) -> ObjectMeta {
    let name = resource.metadata.name.clone().unwrap_or_default();
    ObjectMeta {
        name: Some(child_name(&name)),
        namespace: resource.metadata.namespace.clone(),
        labels: Some(labels(&name)),
        owner_references: Some(vec![owner.clone()]),
        ..ObjectMeta::default()
    }
}

/// Every child of `resource` under `plan`. `campaign` is the validated form of the same spec.
pub fn build(
    resource: &CouponCampaign,
    campaign: &Campaign,
    plan: &Plan,
    config: &WorkloadConfig,
    running: Running,
) -> Option<Children> {
    let owner = resource.controller_owner_ref(&())?;
    let name = campaign.name();
    let (replicas, floor) = match plan.scale {
        Scale::Fixed(n) => (n, n),
        Scale::Autoscaled { min, .. } => (min, min),
    };
    // The issuers serve once the floor is Ready, or, inside a window, once any one is.
    let open = matches!(plan.phase, ResourcePhase::Open | ResourcePhase::SoldOut);
    let ready = running.ready_replicas;
    let issuer_serves = replicas > 0 && ready > 0 && (ready >= floor || open);
    Some(Children {
        config_map: config_map(resource, &owner),
        deployment: deployment(resource, campaign, config, &owner),
        replicas,
        service: service(resource, &owner),
        hpa: match plan.scale {
            Scale::Autoscaled { min, max } => Some(hpa(resource, campaign, min, max, &owner)),
            Scale::Fixed(_) => None,
        },
        pdb: pdb(resource, &owner),
        ingress: config
            .ingress_host
            .as_ref()
            .filter(|_| issuer_serves)
            .map(|host| ingress(resource, name, host, config, &owner)),
    })
}

fn config_map(resource: &CouponCampaign, owner: &OwnerReference) -> ConfigMap {
    // The rules as a campaign file the issuer loads (`WW_CAMPAIGN_FILE`); spec only, no status.
    let file = serde_json::json!({
        "apiVersion": campaign::API_VERSION,
        "kind": campaign::KIND,
        "metadata": {
            "name": resource.metadata.name,
            "namespace": resource.metadata.namespace,
            // The instance: the issuers key their state, events and rows by name and uid, so a
            // campaign deleted and re-created never inherits the old one's winners.
            "uid": resource.metadata.uid,
            // Orders redefinitions (the highest wins).
            "generation": resource.metadata.generation,
        },
        "spec": resource.spec,
    });
    let yaml = serde_yaml::to_string(&file).unwrap_or_default();
    ConfigMap {
        metadata: meta(resource, owner),
        data: Some(BTreeMap::from([(CAMPAIGN_FILE.to_owned(), yaml)])),
        ..ConfigMap::default()
    }
}

pub(crate) fn env(name: &str, value: &str) -> EnvVar {
    EnvVar { name: name.to_owned(), value: Some(value.to_owned()), ..EnvVar::default() }
}

pub(crate) fn secret_env(name: &str, secret: &SecretKey) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: secret.name.clone(),
                key: secret.key.clone(),
                optional: Some(false),
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }
}

/// The environment of `ww serve coupon-issuer` in the pods.
pub fn issuer_env(campaign: &str, config: &WorkloadConfig) -> Vec<EnvVar> {
    let mut vars = vec![
        env("WW_SERVICES", "coupon-issuer"),
        env("WW_LISTEN", &format!("0.0.0.0:{ISSUER_PORT}")),
        env("WW_CAMPAIGN", campaign),
        env("WW_CAMPAIGN_FILE", &format!("{CAMPAIGN_DIR}/{CAMPAIGN_FILE}")),
        secret_env("WW_DATABASE_URL", &config.database_url_secret),
        secret_env("WW_REDIS_URL", &config.redis_url_secret),
        secret_env("WW_KAFKA_BROKERS", &config.kafka_brokers_secret),
        secret_env("WW_JWT_KEYS", &config.jwt_keys_secret),
        env("WW_TRUSTED_PROXIES", &config.trusted_proxies),
        env("WW_LOG_FORMAT", "json"),
    ];
    vars.extend(config.bus_env.iter().filter(|(_, v)| !v.is_empty()).map(|(k, v)| env(k, v)));
    vars
}

fn default_resources() -> ResourceRequirements {
    ResourceRequirements {
        requests: Some(BTreeMap::from([
            ("cpu".to_owned(), Quantity("500m".to_owned())),
            ("memory".to_owned(), Quantity("256Mi".to_owned())),
        ])),
        limits: Some(BTreeMap::from([("memory".to_owned(), Quantity("1Gi".to_owned()))])),
        ..ResourceRequirements::default()
    }
}

pub(crate) fn probe(path: &str, period: i32, failures: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_owned()),
            port: IntOrString::String("http".to_owned()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period),
        failure_threshold: Some(failures),
        timeout_seconds: Some(2),
        ..Probe::default()
    }
}

fn deployment(
    resource: &CouponCampaign,
    campaign: &Campaign,
    config: &WorkloadConfig,
    owner: &OwnerReference,
) -> Deployment {
    let name = campaign.name();
    let workload = &resource.spec.workload;
    let image = workload.image.clone().unwrap_or_else(|| config.image.clone());
    let container = Container {
        name: "issuer".to_owned(),
        image: Some(image),
        image_pull_policy: Some(config.image_pull_policy.clone()),
        args: Some(vec!["serve".to_owned()]),
        env: Some(issuer_env(name, config)),
        ports: Some(vec![ContainerPort {
            name: Some("http".to_owned()),
            container_port: ISSUER_PORT,
            protocol: Some("TCP".to_owned()),
            ..ContainerPort::default()
        }]),
        readiness_probe: Some(probe("/readyz", 2, 2)),
        liveness_probe: Some(probe("/healthz", 10, 3)),
        startup_probe: Some(probe("/healthz", 1, 60)),
        resources: Some(workload.resources.clone().unwrap_or_else(default_resources)),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(true),
            capabilities: Some(Capabilities { drop: Some(vec!["ALL".to_owned()]), ..Capabilities::default() }),
            ..SecurityContext::default()
        }),
        volume_mounts: Some(vec![VolumeMount {
            name: "campaign".to_owned(),
            mount_path: CAMPAIGN_DIR.to_owned(),
            read_only: Some(true),
            ..VolumeMount::default()
        }]),
        ..Container::default()
    };
    let pod = PodSpec {
        containers: vec![container],
        volumes: Some(vec![Volume {
            name: "campaign".to_owned(),
            config_map: Some(ConfigMapVolumeSource { name: child_name(name), ..ConfigMapVolumeSource::default() }),
            ..Volume::default()
        }]),
        security_context: Some(PodSecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(65_532),
            seccomp_profile: Some(SeccompProfile { type_: "RuntimeDefault".to_owned(), ..SeccompProfile::default() }),
            ..PodSecurityContext::default()
        }),
        priority_class_name: config.priority_class.clone(),
        node_selector: config.node_selector(),
        tolerations: config.tolerations(),
        image_pull_secrets: config.pull_secrets(),
        termination_grace_period_seconds: Some(30),
        automount_service_account_token: Some(false),
        enable_service_links: Some(false),
        ..PodSpec::default()
    };
    Deployment {
        metadata: meta(resource, owner),
        spec: Some(DeploymentSpec {
            replicas: None,
            selector: LabelSelector { match_labels: Some(selector(name)), ..LabelSelector::default() },
            strategy: Some(DeploymentStrategy {
                type_: Some("RollingUpdate".to_owned()),
                rolling_update: Some(RollingUpdateDeployment {
                    max_surge: Some(IntOrString::String("25%".to_owned())),
                    max_unavailable: Some(IntOrString::Int(0)),
                }),
            }),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels(name)),
                    // The instance the pods serve: a campaign deleted and re-created before the
                    // old children were collected rolls its pods, so none keeps serving the old
                    // instance (its state, its winners) under the new one.
                    annotations: Some(BTreeMap::from([(
                        CAMPAIGN_UID_ANNOTATION.to_owned(),
                        resource.metadata.uid.clone().unwrap_or_default(),
                    )])),
                    ..ObjectMeta::default()
                }),
                spec: Some(pod),
            },
            ..DeploymentSpec::default()
        }),
        ..Deployment::default()
    }
}

fn service(resource: &CouponCampaign, owner: &OwnerReference) -> Service {
    let name = resource.metadata.name.clone().unwrap_or_default();
    http_service(meta(resource, owner), selector(&name))
}

/// A Service sending port 80 to the `http` port of the pods `selector` picks.
pub(crate) fn http_service(metadata: ObjectMeta, selector: BTreeMap<String, String>) -> Service {
    Service {
        metadata,
        spec: Some(ServiceSpec {
            selector: Some(selector),
            ports: Some(vec![ServicePort {
                name: Some("http".to_owned()),
                port: 80,
                target_port: Some(IntOrString::String("http".to_owned())),
                protocol: Some("TCP".to_owned()),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

/// Scale-up fast enough for a spike (double, or add 4 pods, every 15 s, no stabilisation);
/// scale-down after a minute of lower load, at most half every 30 s.
pub fn default_behavior() -> HorizontalPodAutoscalerBehavior {
    HorizontalPodAutoscalerBehavior {
        scale_up: Some(HPAScalingRules {
            stabilization_window_seconds: Some(0),
            select_policy: Some("Max".to_owned()),
            policies: Some(vec![
                HPAScalingPolicy { type_: "Percent".to_owned(), value: 100, period_seconds: 15 },
                HPAScalingPolicy { type_: "Pods".to_owned(), value: 4, period_seconds: 15 },
            ]),
            ..HPAScalingRules::default()
        }),
        scale_down: Some(HPAScalingRules {
            stabilization_window_seconds: Some(60),
            select_policy: Some("Max".to_owned()),
            policies: Some(vec![HPAScalingPolicy { type_: "Percent".to_owned(), value: 50, period_seconds: 30 }]),
            ..HPAScalingRules::default()
        }),
    }
}

fn hpa(
    resource: &CouponCampaign,
    campaign: &Campaign,
    min: u32,
    max: u32,
    owner: &OwnerReference,
) -> HorizontalPodAutoscaler {
    let workload = &resource.spec.workload;
    HorizontalPodAutoscaler {
        metadata: meta(resource, owner),
        spec: Some(HorizontalPodAutoscalerSpec {
            scale_target_ref: CrossVersionObjectReference {
                api_version: Some("apps/v1".to_owned()),
                kind: "Deployment".to_owned(),
                name: child_name(campaign.name()),
            },
            min_replicas: Some(i32::try_from(min).unwrap_or(i32::MAX)),
            max_replicas: i32::try_from(max).unwrap_or(i32::MAX),
            metrics: Some(vec![MetricSpec {
                type_: "Resource".to_owned(),
                resource: Some(ResourceMetricSource {
                    name: "cpu".to_owned(),
                    target: MetricTarget {
                        type_: "Utilization".to_owned(),
                        average_utilization: Some(i32::try_from(workload.target_cpu_utilization).unwrap_or(60)),
                        ..MetricTarget::default()
                    },
                }),
                ..MetricSpec::default()
            }]),
            behavior: Some(workload.behavior.clone().unwrap_or_else(default_behavior)),
        }),
        ..HorizontalPodAutoscaler::default()
    }
}

fn pdb(resource: &CouponCampaign, owner: &OwnerReference) -> PodDisruptionBudget {
    let name = resource.metadata.name.clone().unwrap_or_default();
    PodDisruptionBudget {
        metadata: meta(resource, owner),
        spec: Some(PodDisruptionBudgetSpec {
            // One pod at a time, whatever the count: a drain always makes progress.
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(LabelSelector { match_labels: Some(selector(&name)), ..LabelSelector::default() }),
            // A pod that is not Ready protects nothing; never let it block a drain.
            unhealthy_pod_eviction_policy: Some("AlwaysAllow".to_owned()),
            ..PodDisruptionBudgetSpec::default()
        }),
        ..PodDisruptionBudget::default()
    }
}

fn ingress(
    resource: &CouponCampaign,
    name: &str,
    host: &str,
    config: &WorkloadConfig,
    owner: &OwnerReference,
) -> Ingress {
    let backend = IngressServiceBackend {
        name: child_name(name),
        port: Some(ServiceBackendPort { number: Some(80), ..ServiceBackendPort::default() }),
    };
    Ingress {
        metadata: meta(resource, owner),
        spec: Some(IngressSpec {
            ingress_class_name: config.ingress_class.clone(),
            tls: config.ingress_tls_secret.as_ref().map(|secret| {
                vec![IngressTLS { hosts: Some(vec![host.to_owned()]), secret_name: Some(secret.clone()) }]
            }),
            rules: Some(vec![IngressRule {
                host: Some(host.to_owned()),
                http: Some(HTTPIngressRuleValue {
                    paths: vec![HTTPIngressPath {
                        path: Some(format!("/api/campaigns/{name}/")),
                        path_type: "Prefix".to_owned(),
                        backend: IngressBackend { service: Some(backend), ..IngressBackend::default() },
                    }],
                }),
            }]),
            ..IngressSpec::default()
        }),
        ..Ingress::default()
    }
}

#[cfg(test)]
mod bus_tests {
    use super::*;

    #[test]
    fn issuers_use_the_event_bus_as_the_operator_does() {
        let mut config = WorkloadConfig::example();
        config.bus_env = vec![
            ("WW_KAFKA_PREFIX".to_owned(), "prod.".to_owned()),
            ("WW_KAFKA_REPLICATION_FACTOR".to_owned(), "1".to_owned()),
        ];
        let vars = issuer_env("rainy", &config);
        let value = |name: &str| vars.iter().find(|v| v.name == name).and_then(|v| v.value.clone());
        assert_eq!(value("WW_KAFKA_PREFIX").as_deref(), Some("prod."));
        assert_eq!(value("WW_KAFKA_REPLICATION_FACTOR").as_deref(), Some("1"));
    }

    #[test]
    fn pull_secrets_are_named_once_each_and_none_when_empty() {
        let mut config = WorkloadConfig::example();
        assert!(config.pull_secrets().is_none());
        config.image_pull_secrets = vec!["registry-credentials".to_owned(), " ".to_owned()];
        let secrets = config.pull_secrets().unwrap();
        assert_eq!(secrets.len(), 1);
        assert_eq!(secrets[0].name, "registry-credentials");
    }
}
