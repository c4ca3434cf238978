//! `ww-operator render`: the objects the operator would apply for campaigns at an instant and for
//! chat clusters, as YAML, without a cluster. For platform engineers ("what will it create?") and
//! for the test command, which validates every rendered manifest with `kubernetes-validate
//! --strict`.

use std::path::PathBuf;

use campaign::plan::Observed;
use chrono::{DateTime, Utc};
use kube::core::ObjectMeta;

use crate::chat::autoscaling;
use crate::chat::children as chat_children;
use crate::chat::resource::AutoscaleOn;
use crate::children::{self, Running};
use crate::config::WorkloadConfig;

#[derive(Debug, clap::Args)]
pub struct RenderArgs {
    /// CouponCampaign and ChatCluster YAML files (other kinds are passed over).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// The instant to plan for (RFC 3339); default: now.
    #[arg(long)]
    pub at: Option<DateTime<Utc>>,
    /// Issuer pods taken as Ready (decides where the Ingress routes).
    #[arg(long, default_value_t = 0)]
    pub ready_replicas: u32,
    /// The namespace of campaigns that name none.
    #[arg(long, default_value = "default")]
    pub namespace: String,
    /// The deployment's Kafka topic prefix, as `ww-operator run` is given it (chat pods).
    #[arg(long, default_value = "")]
    pub kafka_prefix: String,
    /// What chat gateway autoscalers scale on unless a cluster says: auto, connections or cpu.
    #[arg(long, default_value = "auto")]
    pub chat_autoscale_on: AutoscaleOn,
    /// Take the cluster as serving `custom.metrics.k8s.io` (decides `auto`; the operator asks
    /// the API server's discovery).
    #[arg(long)]
    pub custom_metrics_served: bool,
    #[command(flatten)]
    pub workload: WorkloadConfig,
}

/// The YAML stream of every child of every campaign in the files.
pub fn render(args: &RenderArgs) -> anyhow::Result<String> {
    let at = args.at.unwrap_or_else(Utc::now);
    let mut out = String::new();
    for file in &args.files {
        let text = std::fs::read_to_string(file)?;
        for (_, value) in campaign::resources_in_yaml(&text)? {
            let mut resource: campaign::CouponCampaign = serde_json::from_value(value)?;
            let name = resource.metadata.name.clone().unwrap_or_default();
            resource.metadata = ObjectMeta {
                namespace: Some(resource.metadata.namespace.clone().unwrap_or_else(|| args.namespace.clone())),
                // A stand-in uid: the API server assigns the real one.
                uid: Some(format!("00000000-0000-4000-8000-{:012x}", name.len())),
                ..resource.metadata
            };
            let validated = campaign::Campaign::new(&name, resource.spec.clone())
                .map_err(|e| anyhow::anyhow!("{}: {name}: {e}", file.display()))?;
            let plan = validated.plan_at(at, Observed::default());
            let running = Running { ready_replicas: args.ready_replicas };
            let built = children::build(&resource, &validated, &plan, &args.workload, running)
                .ok_or_else(|| anyhow::anyhow!("{name}: no owner reference"))?;
            out.push_str(&format!("# {name} at {at}: {} {:?}\n", plan.phase, plan.scale));
            for object in built.objects()? {
                out.push_str("---\n");
                out.push_str(&serde_yaml::to_string(&object)?);
            }
        }
        for value in chat_clusters_in_yaml(&text)? {
            out.push_str(&render_chat(args, value).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?);
        }
    }
    Ok(out)
}

/// Every `ChatCluster` document of a YAML stream, unvalidated.
fn chat_clusters_in_yaml(text: &str) -> anyhow::Result<Vec<serde_json::Value>> {
    use serde::Deserialize;
    let mut found = Vec::new();
    for document in serde_yaml::Deserializer::from_str(text) {
        let value = serde_json::Value::deserialize(document)?;
        if value.get("kind").and_then(serde_json::Value::as_str) == Some(crate::chat::resource::KIND) {
            found.push(value);
        }
    }
    Ok(found)
}

fn render_chat(args: &RenderArgs, value: serde_json::Value) -> anyhow::Result<String> {
    let mut resource: crate::chat::ChatCluster = serde_json::from_value(value)?;
    let name = resource.metadata.name.clone().unwrap_or_default();
    let problems = resource.spec.problems(&name);
    anyhow::ensure!(problems.is_empty(), "{name}: {}", problems.join("; "));
    resource.metadata = ObjectMeta {
        namespace: Some(resource.metadata.namespace.clone().unwrap_or_else(|| args.namespace.clone())),
        // A stand-in uid: the API server assigns the real one.
        uid: Some(format!("00000000-0000-4000-8000-{:012x}", name.len())),
        ..resource.metadata
    };
    let choice = autoscaling::choose(
        resource.spec.gateway.autoscale_on,
        args.chat_autoscale_on,
        Some(args.custom_metrics_served),
    );
    let inputs =
        chat_children::Inputs { config: &args.workload, kafka_prefix: &args.kafka_prefix, metric: choice.metric };
    let built =
        chat_children::build(&resource, &inputs).ok_or_else(|| anyhow::anyhow!("{name}: no owner reference"))?;
    let mut out = format!(
        "# chat cluster {name}: topic {} ({} partitions), gateways {}..{} scaling on {}\n",
        crate::chat::resource::topic_name(&name, &args.kafka_prefix),
        resource.spec.partitions,
        resource.spec.gateway.replicas.min,
        resource.spec.gateway.replicas.max,
        choice.metric.as_str(),
    );
    for object in built.objects()? {
        out.push_str("---\n");
        out.push_str(&serde_yaml::to_string(&object)?);
    }
    Ok(out)
}
