//! The status a chat cluster should show: its topic and partitions as the broker reports them,
//! ready gateways, connections (the autoscaler's reading, or nothing), the endpoint, and the
//! conditions Ready, TopicReady, Autoscaling and InvalidSpec. `lastTransitionTime` is kept while a
//! condition's status does not change, as the API conventions ask.

use chrono::{DateTime, Utc};

use super::autoscaling::{Choice, Metric};
use super::resource::ChatClusterStatus;
use super::topic::Outcome;
use crate::status::{conditions, verdict};

/// Ready pods of a role against the count it should have.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pods {
    pub ready: u32,
    pub wanted: u32,
}

/// What the reconciler knows of the cluster.
#[derive(Debug, Clone)]
pub struct Seen<'a> {
    pub old: Option<&'a ChatClusterStatus>,
    pub generation: Option<i64>,
    pub topic_name: String,
    pub topic: &'a Outcome,
    /// Gateways: `wanted` is the floor (`min`).
    pub gateways: Pods,
    pub persisters: Pods,
    pub api: Pods,
    pub autoscaling: &'a Choice,
    /// What the autoscaler says when it cannot scale (see `autoscaling::trouble`).
    pub autoscaler_trouble: Option<String>,
    /// The autoscaler's count of open sockets (see `autoscaling::connections`).
    pub connections: Option<u64>,
    pub endpoint: Option<String>,
}

/// The status of a valid cluster.
pub fn desired(seen: Seen<'_>, now: DateTime<Utc>) -> ChatClusterStatus {
    let Seen {
        old,
        generation,
        topic_name,
        topic,
        gateways,
        persisters,
        api,
        autoscaling,
        autoscaler_trouble,
        connections,
        endpoint,
    } = seen;
    let ready = if !topic.exists {
        verdict("Ready", false, "TopicMissing", format!("no pods start before the topic exists: {}", topic.message))
    } else if gateways.ready < gateways.wanted {
        verdict(
            "Ready",
            false,
            "WaitingForGateways",
            format!("{} of at least {} gateway(s) ready", gateways.ready, gateways.wanted),
        )
    } else if persisters.ready < persisters.wanted {
        verdict(
            "Ready",
            false,
            "WaitingForPersister",
            format!("{} of {} persister(s) ready", persisters.ready, persisters.wanted),
        )
    } else if api.ready < api.wanted {
        verdict("Ready", false, "WaitingForChatApi", format!("{} of {} chat API pod(s) ready", api.ready, api.wanted))
    } else {
        verdict(
            "Ready",
            true,
            "Serving",
            format!(
                "{} gateway(s), {} persister(s) and {} chat API pod(s) ready",
                gateways.ready, persisters.ready, api.ready
            ),
        )
    };
    let metric = autoscaling.metric;
    let scaling = match autoscaler_trouble {
        Some(trouble) => verdict(
            "Autoscaling",
            false,
            "AutoscalerCannotScale",
            format!("scaling on {}, but the autoscaler says {trouble}", autoscaling.metric.as_str()),
        ),
        None => verdict("Autoscaling", autoscaling.ok, autoscaling.reason, autoscaling.message.clone()),
    };
    let verdicts = vec![
        ready,
        verdict("TopicReady", topic.ready, topic.reason, topic.message.clone()),
        scaling,
        verdict("InvalidSpec", false, "Valid", ""),
    ];
    ChatClusterStatus {
        observed_generation: generation,
        topic: Some(topic_name),
        // The broker did not answer: the last count it gave stays.
        partitions: topic.partitions.or(old.and_then(|s| s.partitions)),
        ready_gateways: Some(gateways.ready),
        // Only the autoscaler counts sockets, and only while it scales on them.
        connections: connections.filter(|_| metric == Metric::Connections),
        autoscaled_on: Some(metric.as_str().to_owned()),
        endpoint,
        conditions: conditions(old.map(|s| s.conditions.as_slice()).unwrap_or_default(), generation, verdicts, now),
    }
}

/// The status of a cluster whose spec breaks a rule: what it was, plus InvalidSpec.
pub fn invalid(
    old: Option<&ChatClusterStatus>,
    generation: Option<i64>,
    problems: &str,
    now: DateTime<Utc>,
) -> ChatClusterStatus {
    let verdicts = vec![
        verdict("Ready", false, "InvalidSpec", "the spec is invalid; see InvalidSpec"),
        verdict("InvalidSpec", true, "RulesBroken", problems),
    ];
    let mut status = old.cloned().unwrap_or_default();
    status.observed_generation = generation;
    status.conditions = conditions(old.map(|s| s.conditions.as_slice()).unwrap_or_default(), generation, verdicts, now);
    status
}
