//! The JSON envelope every event travels in: `{id, type, occurredAt, source, data}`.

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

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
        })
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
