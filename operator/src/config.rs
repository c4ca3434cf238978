//! What the operator injects into the workloads it creates, set by the Helm chart: the issuer
//! image, references to the Secrets holding the backends' addresses and the JWT keys, the
//! trusted-proxy policy, the ingress class, host and TLS secret, and the images campaigns may
//! choose.

use std::fmt;
use std::str::FromStr;

/// A key of a Secret in the campaign's namespace, written `SECRET:KEY`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretKey {
    pub name: String,
    pub key: String,
}

impl SecretKey {
    pub fn new(name: &str, key: &str) -> Self {
        Self { name: name.to_owned(), key: key.to_owned() }
    }
}

impl FromStr for SecretKey {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once(':') {
            Some((name, key)) if !name.is_empty() && !key.is_empty() => {
                Ok(Self { name: name.to_owned(), key: key.to_owned() })
            }
            _ => Err(format!("`{s}` is not SECRET:KEY")),
        }
    }
}

impl fmt::Display for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.name, self.key)
    }
}

/// Everything the operator puts into the children besides the campaign itself.
#[derive(Debug, Clone, clap::Args)]
pub struct WorkloadConfig {
    /// The image of `ww` the issuers run unless a campaign names its own.
    #[arg(long, env = "WW_OPERATOR_IMAGE")]
    pub image: String,
    /// IfNotPresent, Always or Never.
    #[arg(long, env = "WW_OPERATOR_IMAGE_PULL_POLICY", default_value = "IfNotPresent")]
    pub image_pull_policy: String,
    /// The Secret key holding the PostgreSQL URL (`WW_DATABASE_URL` of the issuers).
    #[arg(long, env = "WW_OPERATOR_DATABASE_URL_SECRET", default_value = "weatherwise-backends:database-url")]
    pub database_url_secret: SecretKey,
    /// The Secret key holding the issuers' Redis URL (`WW_REDIS_URL`): a Redis of their own
    /// keeps a campaign's spike off the one the steady roles use.
    #[arg(long, env = "WW_OPERATOR_REDIS_URL_SECRET", default_value = "weatherwise-backends:redis-url")]
    pub redis_url_secret: SecretKey,
    /// The Secret key holding the chat pods' Redis URL; absent: the issuers' (above).
    #[arg(long, env = "WW_OPERATOR_CHAT_REDIS_URL_SECRET")]
    pub chat_redis_url_secret: Option<SecretKey>,
    /// The Secret key holding the Kafka bootstrap servers (`WW_KAFKA_BROKERS`).
    #[arg(long, env = "WW_OPERATOR_KAFKA_BROKERS_SECRET", default_value = "weatherwise-backends:kafka-brokers")]
    pub kafka_brokers_secret: SecretKey,
    /// The Secret key holding the JWT verification keys (`WW_JWT_KEYS`).
    #[arg(long, env = "WW_OPERATOR_JWT_KEYS_SECRET", default_value = "weatherwise-jwt:keys")]
    pub jwt_keys_secret: SecretKey,
    /// The issuers' `WW_TRUSTED_PROXIES`: CIDR ranges of the ingress in front of them, or `none`.
    #[arg(long, env = "WW_OPERATOR_TRUSTED_PROXIES", default_value = "none")]
    pub trusted_proxies: String,
    /// The IngressClass of the campaign routes; absent: the cluster's default class.
    #[arg(long, env = "WW_OPERATOR_INGRESS_CLASS")]
    pub ingress_class: Option<String>,
    /// The public host of the campaign routes; absent: no Ingress is created.
    #[arg(long, env = "WW_OPERATOR_INGRESS_HOST")]
    pub ingress_host: Option<String>,
    /// The TLS Secret for the host; absent: plain HTTP at the ingress.
    #[arg(long, env = "WW_OPERATOR_INGRESS_TLS_SECRET")]
    pub ingress_tls_secret: Option<String>,
    /// Image prefixes a campaign's `workload.image` may name (comma-separated, e.g.
    /// `registry.example.com/weatherwise/`); empty: campaigns cannot choose their image. The
    /// issuers get the database, Redis, Kafka and JWT secrets, so the image is a trust decision.
    #[arg(long, env = "WW_OPERATOR_ALLOWED_IMAGES", value_delimiter = ',')]
    pub allowed_images: Vec<String>,
    /// The PriorityClass of issuer pods, so event workloads can preempt batch work.
    #[arg(long, env = "WW_OPERATOR_PRIORITY_CLASS")]
    pub priority_class: Option<String>,
    /// Node labels the event workloads (issuers, chat gateways and persisters) must run on,
    /// `key=value,…`, so that a spike lands on its own nodes; empty: anywhere.
    #[arg(long, env = "WW_OPERATOR_EVENT_NODE_SELECTOR", value_parser = parse_node_selector, default_value = "")]
    pub event_node_selector: NodeSelector,
    /// Taints the event workloads tolerate, `key=value:Effect` or `key:Effect` (any value),
    /// comma-separated (Effect: NoSchedule, PreferNoSchedule or NoExecute).
    #[arg(long, env = "WW_OPERATOR_EVENT_TOLERATIONS", value_parser = parse_tolerations, default_value = "")]
    pub event_tolerations: Tolerations,
    /// Secrets for pulling the image from a private registry (comma-separated names in the
    /// workload's namespace), put on every pod the operator creates.
    #[arg(long, env = "WW_OPERATOR_IMAGE_PULL_SECRETS", value_delimiter = ',')]
    pub image_pull_secrets: Vec<String>,
    /// The event-bus settings the workloads share with the operator (`WW_KAFKA_*`), set from its
    /// own at start.
    #[arg(skip)]
    pub bus_env: Vec<(String, String)>,
}

/// Node labels, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeSelector(pub std::collections::BTreeMap<String, String>);

/// Tolerations of taints.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tolerations(pub Vec<k8s_openapi::api::core::v1::Toleration>);

fn parse_node_selector(s: &str) -> Result<NodeSelector, String> {
    let mut labels = std::collections::BTreeMap::new();
    for pair in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').ok_or_else(|| format!("`{pair}` is not key=value"))?;
        if k.is_empty()
            || k.len() > 253
            || v.len() > 63
            || !k.chars().chain(v.chars()).all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
        {
            return Err(format!("`{pair}` is not a Kubernetes label key=value"));
        }
        labels.insert(k.to_owned(), v.to_owned());
    }
    Ok(NodeSelector(labels))
}

fn parse_tolerations(s: &str) -> Result<Tolerations, String> {
    use k8s_openapi::api::core::v1::Toleration;
    let mut out = Vec::new();
    for item in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (taint, effect) =
            item.rsplit_once(':').ok_or_else(|| format!("`{item}` is not key=value:Effect or key:Effect"))?;
        if !matches!(effect, "NoSchedule" | "PreferNoSchedule" | "NoExecute") {
            return Err(format!("`{item}`: the effect is NoSchedule, PreferNoSchedule or NoExecute"));
        }
        let (key, value) = match taint.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (taint, None),
        };
        if key.is_empty() {
            return Err(format!("`{item}`: no taint key"));
        }
        out.push(Toleration {
            key: Some(key.to_owned()),
            operator: Some(if value.is_some() { "Equal" } else { "Exists" }.to_owned()),
            value: value.map(str::to_owned),
            effect: Some(effect.to_owned()),
            ..Toleration::default()
        });
    }
    Ok(Tolerations(out))
}

impl WorkloadConfig {
    /// The node selector of event pods (`None` when empty).
    pub fn node_selector(&self) -> Option<std::collections::BTreeMap<String, String>> {
        (!self.event_node_selector.0.is_empty()).then(|| self.event_node_selector.0.clone())
    }

    /// The pull secrets of every pod it creates (`None` when there are none).
    pub fn pull_secrets(&self) -> Option<Vec<k8s_openapi::api::core::v1::LocalObjectReference>> {
        let names: Vec<_> = self
            .image_pull_secrets
            .iter()
            .map(|n| n.trim())
            .filter(|n| !n.is_empty())
            .map(|n| k8s_openapi::api::core::v1::LocalObjectReference { name: n.to_owned() })
            .collect();
        (!names.is_empty()).then_some(names)
    }

    /// The tolerations of event pods (`None` when empty).
    pub fn tolerations(&self) -> Option<Vec<k8s_openapi::api::core::v1::Toleration>> {
        (!self.event_tolerations.0.is_empty()).then(|| self.event_tolerations.0.clone())
    }
}

impl WorkloadConfig {
    /// Whether a campaign may run `image`.
    pub fn image_allowed(&self, image: &str) -> bool {
        image == self.image
            || self.allowed_images.iter().any(|prefix| !prefix.is_empty() && image.starts_with(prefix.as_str()))
    }

    /// A configuration for tests and examples.
    pub fn example() -> Self {
        Self {
            image: "ghcr.io/weatherwise/ww:0.1.0".to_owned(),
            image_pull_policy: "IfNotPresent".to_owned(),
            database_url_secret: SecretKey::new("weatherwise-backends", "database-url"),
            redis_url_secret: SecretKey::new("weatherwise-backends", "redis-url"),
            chat_redis_url_secret: None,
            kafka_brokers_secret: SecretKey::new("weatherwise-backends", "kafka-brokers"),
            jwt_keys_secret: SecretKey::new("weatherwise-jwt", "keys"),
            trusted_proxies: "10.0.0.0/8".to_owned(),
            ingress_class: Some("nginx".to_owned()),
            ingress_host: Some("weather.example.com".to_owned()),
            ingress_tls_secret: Some("weather-example-tls".to_owned()),
            allowed_images: vec!["ghcr.io/weatherwise/".to_owned()],
            priority_class: Some("weatherwise-events".to_owned()),
            event_node_selector: NodeSelector::default(),
            event_tolerations: Tolerations::default(),
            bus_env: Vec::new(),
            image_pull_secrets: Vec::new(),
        }
    }
}

#[cfg(test)]
mod placement_tests {
    use super::*;

    #[test]
    fn node_selectors_and_tolerations_read_as_written() {
        let s = parse_node_selector("weatherwise.io/pool=events, zone=a").unwrap();
        assert_eq!(s.0.get("weatherwise.io/pool").map(String::as_str), Some("events"));
        assert_eq!(parse_node_selector("").unwrap(), NodeSelector::default());
        assert!(parse_node_selector("no-value").is_err());
        let t = parse_tolerations("dedicated=events:NoSchedule,spot:NoExecute").unwrap().0;
        assert_eq!((t[0].operator.as_deref(), t[0].value.as_deref()), (Some("Equal"), Some("events")));
        assert_eq!((t[1].operator.as_deref(), t[1].key.as_deref()), (Some("Exists"), Some("spot")));
        assert!(parse_tolerations("dedicated=events:Sometimes").is_err());
        assert!(parse_tolerations("dedicated=events").is_err());
    }
}

/// Where the operator looks for campaigns and chat clusters and owns their children: every
/// namespace, or one (so two releases in one cluster, staging and production, each keep to their
/// own namespace, where their Secrets are).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope(Option<String>);

impl Scope {
    /// Every namespace.
    pub fn cluster() -> Self {
        Self(None)
    }

    /// One namespace.
    pub fn namespace(namespace: &str) -> Self {
        Self(Some(namespace.to_owned()))
    }

    pub fn from_option(namespace: Option<&str>) -> Self {
        Self(namespace.filter(|n| !n.is_empty()).map(str::to_owned))
    }

    /// The namespace, when confined to one.
    pub fn only(&self) -> Option<&str> {
        self.0.as_deref()
    }

    /// The API of a namespaced kind within the scope.
    pub fn api<K>(&self, client: &kube::Client) -> kube::Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        K::DynamicType: Default,
    {
        match &self.0 {
            Some(ns) => kube::Api::namespaced(client.clone(), ns),
            None => kube::Api::all(client.clone()),
        }
    }

    /// The API of a custom resource within the scope.
    pub fn api_with(
        &self,
        client: &kube::Client,
        resource: &kube::api::ApiResource,
    ) -> kube::Api<kube::api::DynamicObject> {
        match &self.0 {
            Some(ns) => kube::Api::namespaced_with(client.clone(), ns, resource),
            None => kube::Api::all_with(client.clone(), resource),
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Some(ns) => write!(f, "namespace {ns}"),
            None => f.write_str("every namespace"),
        }
    }
}
