//! The event bus: JSON envelopes on topics keyed by the entity whose order matters.
//! Kafka in production; in the embedded mode a durable log in SQLite with the same
//! semantics (consumer groups, at-least-once, commit after the handler succeeded).
//! Handlers must be idempotent: by event id or by a natural unique key.

pub mod contracts;
#[cfg(feature = "storage")]
mod embedded;
mod envelope;
mod kafka;
mod memory;
#[cfg(feature = "storage")]
mod outbox;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::Instrument as _;

#[cfg(feature = "storage")]
pub use embedded::EmbeddedBus;
pub use envelope::Envelope;
pub use kafka::{KafkaBus, KafkaConfig};
pub use memory::MemoryBus;
#[cfg(feature = "storage")]
pub use outbox::Outbox;

use crate::http::ReadinessCheck;
use crate::trace::TraceParent;

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[cfg(feature = "storage")]
    #[error("event log: {0}")]
    Log(#[from] sqlx::Error),
    #[error("encoding: {0}")]
    Encoding(#[from] serde_json::Error),
    /// The event may or may not have reached the log.
    #[error("uncertain: {0}")]
    Uncertain(String),
    #[error("{0}")]
    Other(String),
}

impl BusError {
    /// True when the event certainly did not reach the log (so an action taken for it
    /// may be undone); false when it may have (a timeout after sending, for instance).
    pub fn certainly_unpublished(&self) -> bool {
        use rdkafka::types::RDKafkaErrorCode as Code;
        match self {
            BusError::Kafka(rdkafka::error::KafkaError::MessageProduction(code)) => {
                matches!(
                    code,
                    Code::QueueFull | Code::MessageSizeTooLarge | Code::InvalidMessageSize | Code::UnknownTopic
                )
            }
            BusError::Kafka(_) | BusError::Uncertain(_) => false,
            #[cfg(feature = "storage")]
            BusError::Log(_) => true,
            BusError::Encoding(_) | BusError::Other(_) => true,
        }
    }
}

/// Where an event landed in its topic: a partition and its offset there (Kafka), or the
/// log's sequence (the embedded log: one partition). Events under one key share a partition,
/// so their offsets grow in publishing order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    pub partition: i32,
    pub offset: i64,
}

/// Something that handles events delivered to a consumer group. Returning an error
/// leaves the event uncommitted: it is retried (with backoff) until it succeeds.
pub trait Handler: Send + Sync + 'static {
    fn handle(&self, event: &Envelope) -> impl Future<Output = anyhow::Result<()>> + Send;

    /// Told, before any event, where a replay or tail reads each partition from: every event
    /// of that partition from `from` on will be handled (those before it will not).
    fn reading_from(&self, from: Position) {
        let _ = from;
    }

    /// Most events handed to one [`Handler::handle_batch`] call (a broker consumer may hold
    /// fewer; never more).
    fn max_batch(&self) -> usize {
        500
    }

    /// Handles the events that arrived together, in order. All or nothing: an error
    /// retries the whole batch, so each event must be idempotent. The default handles
    /// them one by one; a handler that can write many rows in one statement overrides it.
    fn handle_batch(&self, events: &[Envelope]) -> impl Future<Output = anyhow::Result<()>> + Send {
        async move {
            for event in events {
                self.handle(event).await?;
            }
            Ok(())
        }
    }
}

#[derive(Clone)]
pub enum EventBus {
    Kafka(Arc<KafkaBus>),
    #[cfg(feature = "storage")]
    Embedded(Arc<EmbeddedBus>),
    /// In this process's memory, nothing durable: for measuring without a broker.
    Memory(Arc<MemoryBus>),
}

impl std::fmt::Debug for EventBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EventBus::Kafka(_) => write!(f, "EventBus::Kafka"),
            #[cfg(feature = "storage")]
            EventBus::Embedded(_) => write!(f, "EventBus::Embedded"),
            EventBus::Memory(_) => write!(f, "EventBus::Memory"),
        }
    }
}

impl EventBus {
    /// Appends `event` to `topic` under `key`; returns once the backend made it durable
    /// (Kafka: acknowledged by all in-sync replicas).
    pub async fn publish(&self, topic: &str, key: &str, event: &Envelope) -> Result<(), BusError> {
        self.append(topic, key, event).await.map(|_| ())
    }

    /// Like [`EventBus::publish`], and says where the event landed.
    pub async fn append(&self, topic: &str, key: &str, event: &Envelope) -> Result<Position, BusError> {
        let payload = serde_json::to_vec(event)?;
        match self {
            EventBus::Kafka(k) => k.publish(topic, key, &payload).await,
            #[cfg(feature = "storage")]
            EventBus::Embedded(e) => e.publish(topic, key, &payload).await,
            EventBus::Memory(m) => Ok(m.publish(topic, &payload)),
        }
    }

    /// The number of partitions of `topic` (1 for the embedded log).
    pub async fn partitions(&self, topic: &str) -> Result<i32, BusError> {
        match self {
            EventBus::Kafka(k) => k.partitions(topic).await,
            #[cfg(feature = "storage")]
            EventBus::Embedded(_) => Ok(1),
            EventBus::Memory(_) => Ok(1),
        }
    }

    /// One past the last offset of every partition of `topic` (Kafka's high watermark): an
    /// offset stored from this topic at or beyond it means the topic was re-created.
    pub async fn ends(&self, topic: &str) -> Result<Vec<(i32, i64)>, BusError> {
        match self {
            EventBus::Kafka(k) => k.ends(topic).await,
            #[cfg(feature = "storage")]
            EventBus::Embedded(e) => e.ends(topic).await,
            EventBus::Memory(m) => Ok(vec![(0, i64::try_from(m.len(topic)).unwrap_or(i64::MAX))]),
        }
    }

    /// Reads up to the last `back` events of every partition of `topics` into `handler` in
    /// this process, then follows them live; commits nothing. The flag turns true once every
    /// event that existed at the start has been handled. For local windows of recent events.
    pub fn spawn_tail<H: Handler>(
        &self,
        name: &str,
        topics: &[&str],
        back: i64,
        handler: H,
        stop: watch::Receiver<bool>,
    ) -> (JoinHandle<()>, watch::Receiver<bool>) {
        self.spawn_from(name, topics, Some(back.max(0)), handler, stop)
    }

    /// Creates the topics that do not exist yet (the broker never auto-creates them).
    pub async fn ensure_topics(&self, topics: &[&str]) -> Result<(), BusError> {
        match self {
            EventBus::Kafka(k) => k.ensure_topics(topics).await,
            #[cfg(feature = "storage")]
            EventBus::Embedded(_) => Ok(()),
            EventBus::Memory(_) => Ok(()),
        }
    }

    /// Runs `handler` for every event on `topics` delivered to consumer `group`, until
    /// `stop` turns true. The group's position is durable: a restarted consumer resumes
    /// after the last event its handler completed.
    pub fn spawn_consumer<H: Handler>(
        &self,
        group: &str,
        topics: &[&str],
        handler: H,
        stop: watch::Receiver<bool>,
    ) -> JoinHandle<()> {
        self.spawn(group.to_owned(), topics, handler, stop, Delivery::Group)
    }

    /// Runs `handler` in this process for every event published on `topics` from now on
    /// (every replica gets every event; nothing is committed). For local caches.
    pub fn spawn_broadcast<H: Handler>(
        &self,
        name: &str,
        topics: &[&str],
        handler: H,
        stop: watch::Receiver<bool>,
    ) -> JoinHandle<()> {
        let group = format!("{name}.{}", uuid::Uuid::new_v4().simple());
        self.spawn(group, topics, handler, stop, Delivery::Broadcast)
    }

    /// Replays `topics` from their beginning into `handler` in this process, then keeps
    /// following them live; commits nothing. The returned flag turns true once every
    /// event that existed when the replay started has been handled — the point from
    /// which state rebuilt from the log is complete.
    pub fn spawn_replay<H: Handler>(
        &self,
        name: &str,
        topics: &[&str],
        handler: H,
        stop: watch::Receiver<bool>,
    ) -> (JoinHandle<()>, watch::Receiver<bool>) {
        self.spawn_from(name, topics, None, handler, stop)
    }

    /// Reads `topics` from the last `back` events of each partition (`None`: from the
    /// beginning), then follows them live.
    fn spawn_from<H: Handler>(
        &self,
        name: &str,
        topics: &[&str],
        back: Option<i64>,
        handler: H,
        stop: watch::Receiver<bool>,
    ) -> (JoinHandle<()>, watch::Receiver<bool>) {
        let (caught_up_tx, caught_up) = watch::channel(false);
        let handler = Arc::new(handler);
        let topics: Vec<String> = topics.iter().map(|t| (*t).to_owned()).collect();
        let group = format!("{name}.{}", uuid::Uuid::new_v4().simple());
        let task = match self {
            EventBus::Kafka(k) => {
                tokio::spawn(kafka::replay(k.clone(), group, topics, back, handler, stop, caught_up_tx))
            }
            #[cfg(feature = "storage")]
            EventBus::Embedded(e) => {
                tokio::spawn(embedded::replay(e.clone(), topics, back, handler, stop, caught_up_tx))
            }
            EventBus::Memory(m) => tokio::spawn(memory::replay(m.clone(), topics, back, handler, stop, caught_up_tx)),
        };
        (task, caught_up)
    }

    fn spawn<H: Handler>(
        &self,
        group: String,
        topics: &[&str],
        handler: H,
        stop: watch::Receiver<bool>,
        delivery: Delivery,
    ) -> JoinHandle<()> {
        let handler = Arc::new(handler);
        let topics: Vec<String> = topics.iter().map(|t| (*t).to_owned()).collect();
        match self {
            EventBus::Kafka(k) => tokio::spawn(kafka::consume(k.clone(), group, topics, handler, stop, delivery)),
            #[cfg(feature = "storage")]
            EventBus::Embedded(e) => tokio::spawn(embedded::consume(e.clone(), group, topics, handler, stop, delivery)),
            EventBus::Memory(m) => tokio::spawn(memory::consume(m.clone(), group, topics, handler, stop, delivery)),
        }
    }

    /// The longest a `publish` can take before it fails; once this long has passed, an
    /// event whose publish was under way is either in the log or never will be.
    pub fn max_publish_time(&self) -> Duration {
        match self {
            EventBus::Kafka(k) => k.max_publish_time(),
            #[cfg(feature = "storage")]
            EventBus::Embedded(_) => Duration::ZERO,
            EventBus::Memory(_) => Duration::ZERO,
        }
    }

    pub fn readiness(&self) -> ReadinessCheck {
        match self {
            EventBus::Kafka(k) => k.readiness(),
            #[cfg(feature = "storage")]
            EventBus::Embedded(e) => e.readiness(),
            EventBus::Memory(m) => m.readiness(),
        }
    }
}

/// How a consumer takes part in its topics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Delivery {
    /// A durable consumer group: one member gets each event; progress is committed.
    Group,
    /// This process alone, from the end of the log, committing nothing.
    Broadcast,
}

/// Delivers one event, retrying with capped exponential backoff until the handler
/// succeeds. Returns false when asked to stop first (the event stays uncommitted).
async fn deliver<H: Handler>(handler: &H, events: &[Envelope], stop: &mut watch::Receiver<bool>) -> bool {
    if events.is_empty() {
        return true;
    }
    let mut backoff = Duration::from_millis(50);
    // The handling continues the publisher's trace (of the first event, for a batch).
    let trace = events[0].trace().map(|t| t.child()).unwrap_or_else(TraceParent::new_root);
    let span = tracing::info_span!("event", event_type = %events[0].kind, event_id = %events[0].id, trace_id = %trace.trace_id_hex());
    loop {
        let handling = async {
            if events.len() == 1 { handler.handle(&events[0]).await } else { handler.handle_batch(events).await }
        };
        let outcome = trace.scope(handling).instrument(span.clone()).await;
        match outcome {
            Ok(()) => return true,
            Err(e) => {
                let first = &events[0];
                metrics::counter!("events_handler_failures_total", "type" => first.kind.clone()).increment(1);
                tracing::warn!(event_id = %first.id, event_type = %first.kind, batch = events.len(), error = %format!("{e:#}"), retry_in_ms = backoff.as_millis() as u64, "event handler failed; retrying");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stop.wait_for(|s| *s) => return false,
        }
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
}
