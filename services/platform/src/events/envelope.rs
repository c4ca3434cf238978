//! The JSON envelope every event travels in: `{id, type, occurredAt, source, data}`, plus
//! the W3C `traceparent` of the work that published it when there was one (absent in
//! events from before it existed, which still decode).

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::trace::TraceParent;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Envelope {
    /// Unique per event; consumers deduplicate on it.
    pub id: Uuid,
    #[serde(rename = "type")]
    pub kind: String,
    pub occurred_at: DateTime<Utc>,
    /// The service that published it.
    pub source: String,
    pub data: serde_json::Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    /// Where the event was read from (set by consumers; never on the wire).
    #[serde(skip)]
    pub position: Option<super::Position>,
}

impl Envelope {
    pub fn new<T: Serialize>(
        kind: &str,
        source: &str,
        occurred_at: DateTime<Utc>,
        data: &T,
    ) -> Result<Self, serde_json::Error> {
        Ok(Self {
            id: Uuid::now_v7(),
            kind: kind.to_owned(),
            occurred_at,
            source: source.to_owned(),
            data: serde_json::to_value(data)?,
            traceparent: TraceParent::current().map(|t| t.to_string()),
            position: None,
        })
    }

    /// The trace this event belongs to, if it carries a valid one.
    pub fn trace(&self) -> Option<TraceParent> {
        self.traceparent.as_deref().and_then(TraceParent::parse)
    }

    /// The payload as `T`.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        T::deserialize(&self.data)
    }

    /// The payload as `T`, or `None` (logged and counted) when it is not one: retrying
    /// such an event can never succeed, and blocking on it would stop everything behind.
    pub fn decode_or_skip<T: DeserializeOwned>(&self) -> Option<T> {
        match self.decode() {
            Ok(value) => Some(value),
            Err(e) => {
                metrics::counter!("events_undecodable_total", "type" => self.kind.clone()).increment(1);
                tracing::error!(event_id = %self.id, event_type = %self.kind, error = %e, "skipping an event whose data cannot be read");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_from_before_traceparent_still_decodes() {
        let old = r#"{"id":"0193a3a0-0000-7000-8000-000000000001","type":"T","occurredAt":"2026-01-01T00:00:00Z","source":"s","data":{}}"#;
        let event: Envelope = serde_json::from_str(old).unwrap();
        assert_eq!(event.traceparent, None);
        assert!(!serde_json::to_string(&event).unwrap().contains("traceparent"), "absent, not null");
    }

    #[tokio::test]
    async fn an_event_published_inside_a_trace_carries_it() {
        let parent = TraceParent::new_root();
        let event = parent.scope(async { Envelope::new("T", "s", Utc::now(), &serde_json::json!({})) }).await.unwrap();
        assert_eq!(event.trace(), Some(parent));
        let decoded: Envelope = serde_json::from_str(&serde_json::to_string(&event).unwrap()).unwrap();
        assert_eq!(decoded.trace().map(|t| t.trace_id), Some(parent.trace_id));
    }
}
