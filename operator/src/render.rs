//! `ww-operator render`: the objects the operator would apply for campaigns at an instant, as
//! YAML, without a cluster. For platform engineers ("what will it create?") and for the test
//! command, which validates every rendered manifest with `kubernetes-validate --strict`.

use std::path::PathBuf;

use campaign::plan::Observed;
use chrono::{DateTime, Utc};
use kube::core::ObjectMeta;

use crate::children::{self, Running};
use crate::config::WorkloadConfig;

#[derive(Debug, clap::Args)]
pub struct RenderArgs {
    /// CouponCampaign YAML files.
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
    }
    Ok(out)
}
