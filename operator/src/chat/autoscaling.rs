//! What the gateway autoscaler scales on. Open WebSockets per pod (the gauge `chat_sockets` every
//! gateway exports on `/metrics`) say how loaded a gateway is far better than CPU, but an HPA can
//! read them only through the custom metrics API (`custom.metrics.k8s.io`, served by an adapter
//! such as the Prometheus adapter; its rule is in docs/decisions/0011-chatcluster.md). Whether the
//! cluster serves that API is asked by discovery; without it the autoscaler scales on CPU. The
//! resource (`spec.gateway.autoscaleOn`) or the operator (`--chat-autoscale-on`) may force either.
//!
//! The autoscaler's own reading is also where the status's connection count comes from: its
//! average of `chat_sockets` per pod times its current replicas. Nothing else counts sockets for
//! the operator, so while it scales on CPU the count is absent rather than made up.

use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use tokio::time::Instant;

use super::resource::AutoscaleOn;

/// The gauge of open WebSockets every gateway exports.
pub const SOCKETS_METRIC: &str = "chat_sockets";
/// The API group an HPA reads per-pod custom metrics from.
pub const CUSTOM_METRICS_GROUP: &str = "custom.metrics.k8s.io";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// `chat_sockets` per pod, averaged (an HPA `Pods` metric).
    Connections,
    /// CPU utilisation of the request.
    Cpu,
}

impl Metric {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connections => "Connections",
            Self::Cpu => "Cpu",
        }
    }
}

/// The metric to scale on and what the `Autoscaling` condition says about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    pub metric: Metric,
    /// The condition's status: false when the autoscaler cannot work as asked.
    pub ok: bool,
    pub reason: &'static str,
    pub message: String,
}

/// Chooses the metric: the resource's choice, else the operator's, else connections when
/// `custom_metrics` (whether the cluster serves `custom.metrics.k8s.io`; `None`: not known) says
/// the autoscaler can read them.
pub fn choose(resource: AutoscaleOn, operator: AutoscaleOn, custom_metrics: Option<bool>) -> Choice {
    let asked = if resource == AutoscaleOn::Auto { operator } else { resource };
    let missing = "the cluster does not serve custom.metrics.k8s.io (no metrics adapter such as the Prometheus \
                   adapter is installed)";
    match (asked, custom_metrics) {
        (AutoscaleOn::Cpu, _) => Choice {
            metric: Metric::Cpu,
            ok: true,
            reason: "CpuRequested",
            message: "scaling on CPU, as spec.gateway.autoscaleOn or the operator's --chat-autoscale-on asks"
                .to_owned(),
        },
        (AutoscaleOn::Connections, Some(false)) => Choice {
            metric: Metric::Connections,
            ok: false,
            reason: "CustomMetricsMissing",
            message: format!(
                "scaling on connections was asked, but {missing}: the autoscaler cannot read {SOCKETS_METRIC}"
            ),
        },
        (AutoscaleOn::Connections, _) | (AutoscaleOn::Auto, Some(true)) => Choice {
            metric: Metric::Connections,
            ok: true,
            reason: "ScalingOnConnections",
            message: format!("scaling on {SOCKETS_METRIC} per gateway pod through {CUSTOM_METRICS_GROUP}"),
        },
        (AutoscaleOn::Auto, Some(false)) => Choice {
            metric: Metric::Cpu,
            ok: true,
            reason: "CpuFallback",
            message: format!("scaling on CPU: {missing}"),
        },
        (AutoscaleOn::Auto, None) => Choice {
            metric: Metric::Cpu,
            ok: true,
            reason: "CpuFallback",
            message: format!(
                "scaling on CPU: whether the cluster serves {CUSTOM_METRICS_GROUP} is not known yet (discovery failed)"
            ),
        },
    }
}

/// Why the autoscaler says it cannot scale (its `ScalingActive` condition false, e.g.
/// `FailedGetPodsMetric` when the adapter has no rule for `chat_sockets`), as `reason: message`.
pub fn trouble(hpa: &HorizontalPodAutoscaler) -> Option<String> {
    let conditions = hpa.status.as_ref()?.conditions.as_ref()?;
    let inactive = conditions.iter().find(|c| c.type_ == "ScalingActive" && c.status == "False")?;
    Some(format!(
        "{}: {}",
        inactive.reason.as_deref().unwrap_or("ScalingInactive"),
        inactive.message.as_deref().unwrap_or("")
    ))
}

/// Open WebSockets over all gateways as the autoscaler last read them: its current average of
/// `chat_sockets` per pod times its current replicas. `None` when it does not read them.
pub fn connections(hpa: &HorizontalPodAutoscaler) -> Option<u64> {
    let status = hpa.status.as_ref()?;
    let average = status.current_metrics.as_ref()?.iter().find_map(|m| {
        let pods = m.pods.as_ref().filter(|p| p.metric.name == SOCKETS_METRIC)?;
        pods.current.average_value.as_ref().and_then(|q| quantity(&q.0))
    })?;
    let replicas = f64::from(status.current_replicas.unwrap_or(0).max(0));
    let total = (average * replicas).round();
    (total.is_finite() && total >= 0.0).then_some(total as u64)
}

/// A Kubernetes quantity (`1500m`, `2k`, `1.5`, `3Ki`, `1e3`) as a number.
pub fn quantity(text: &str) -> Option<f64> {
    let text = text.trim();
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == '+')).unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let factor = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        s if s.starts_with(['e', 'E']) => 10f64.powi(s[1..].parse().ok()?),
        _ => return None,
    };
    Some(number * factor)
}

/// How long an answer of discovery is used before the API server is asked again.
pub const DISCOVERY_TTL: Duration = Duration::from_secs(60);

/// Whether the cluster serves `custom.metrics.k8s.io`, asked of the API server's discovery
/// (`GET /apis`, which every authenticated client may read) at most once a [`DISCOVERY_TTL`].
/// A failed look keeps the last answer, so a hiccup of the API server never flips the metric.
#[derive(Debug, Default)]
pub struct Discovery {
    last: Mutex<Option<(bool, Instant)>>,
}

impl Discovery {
    pub async fn custom_metrics_served(&self, client: &kube::Client) -> Option<bool> {
        let cached = *self.last.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((served, at)) = cached
            && at.elapsed() < DISCOVERY_TTL
        {
            return Some(served);
        }
        match client.list_api_groups().await {
            Ok(groups) => {
                let served = groups.groups.iter().any(|g| g.name == CUSTOM_METRICS_GROUP);
                if cached.map(|(s, _)| s) != Some(served) {
                    tracing::info!(served, "discovery: {CUSTOM_METRICS_GROUP}");
                }
                *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Some((served, Instant::now()));
                Some(served)
            }
            Err(e) => {
                tracing::warn!(error = %e, "discovery of the API groups failed; keeping the last answer");
                cached.map(|(served, _)| served)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::autoscaling::v2::{
        HorizontalPodAutoscalerCondition, HorizontalPodAutoscalerStatus, MetricIdentifier, MetricStatus,
        MetricValueStatus, PodsMetricStatus,
    };
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

    use super::*;

    #[test]
    fn auto_scales_on_connections_only_where_the_cluster_serves_custom_metrics() {
        use AutoscaleOn::*;
        let metric = |r, o, served| choose(r, o, served).metric;
        assert_eq!(metric(Auto, Auto, Some(true)), Metric::Connections);
        assert_eq!(metric(Auto, Auto, Some(false)), Metric::Cpu);
        assert_eq!(metric(Auto, Auto, None), Metric::Cpu);
        assert_eq!(choose(Auto, Auto, Some(false)).reason, "CpuFallback");
        // The resource's choice wins over the operator's, which wins over discovery.
        assert_eq!(metric(Cpu, Connections, Some(true)), Metric::Cpu);
        assert_eq!(metric(Auto, Cpu, Some(true)), Metric::Cpu);
        assert_eq!(metric(Connections, Cpu, Some(true)), Metric::Connections);
        // Connections asked where nothing serves them: done, and said to fail.
        let forced = choose(Connections, Auto, Some(false));
        assert_eq!((forced.metric, forced.ok, forced.reason), (Metric::Connections, false, "CustomMetricsMissing"));
        assert!(choose(Connections, Auto, Some(true)).ok);
    }

    #[test]
    fn quantities_are_read_in_every_notation_the_api_server_writes() {
        for (text, value) in
            [("1500", 1500.0), ("1500m", 1.5), ("2k", 2000.0), ("1.5", 1.5), ("3Ki", 3072.0), ("1e3", 1000.0)]
        {
            assert_eq!(quantity(text), Some(value), "{text}");
        }
        assert_eq!(quantity("lots"), None);
        assert_eq!(quantity("3x"), None);
    }

    fn hpa(average: Option<&str>, replicas: i32, active: bool) -> HorizontalPodAutoscaler {
        HorizontalPodAutoscaler {
            status: Some(HorizontalPodAutoscalerStatus {
                current_replicas: Some(replicas),
                current_metrics: average.map(|a| {
                    vec![MetricStatus {
                        type_: "Pods".to_owned(),
                        pods: Some(PodsMetricStatus {
                            metric: MetricIdentifier { name: SOCKETS_METRIC.to_owned(), selector: None },
                            current: MetricValueStatus {
                                average_value: Some(Quantity(a.to_owned())),
                                ..MetricValueStatus::default()
                            },
                        }),
                        ..MetricStatus::default()
                    }]
                }),
                conditions: Some(vec![HorizontalPodAutoscalerCondition {
                    type_: "ScalingActive".to_owned(),
                    status: if active { "True" } else { "False" }.to_owned(),
                    reason: Some(if active { "ValidMetricFound" } else { "FailedGetPodsMetric" }.to_owned()),
                    message: Some("the HPA's own words".to_owned()),
                    ..HorizontalPodAutoscalerCondition::default()
                }]),
                ..HorizontalPodAutoscalerStatus::default()
            }),
            ..HorizontalPodAutoscaler::default()
        }
    }

    #[test]
    fn connections_are_the_autoscalers_average_times_its_replicas_or_nothing() {
        assert_eq!(connections(&hpa(Some("1250500m"), 4, true)), Some(5002));
        assert_eq!(connections(&hpa(Some("0"), 2, true)), Some(0));
        assert_eq!(connections(&hpa(None, 4, true)), None, "an autoscaler on CPU counts no sockets");
        assert_eq!(connections(&HorizontalPodAutoscaler::default()), None);
    }

    #[test]
    fn an_autoscaler_that_cannot_read_its_metric_is_reported_in_its_own_words() {
        assert_eq!(trouble(&hpa(None, 2, true)), None);
        assert_eq!(trouble(&hpa(None, 2, false)).as_deref(), Some("FailedGetPodsMetric: the HPA's own words"));
    }
}
