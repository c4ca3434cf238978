//! Kafka through rdkafka: an idempotent producer (acks=all) and consumer groups that
//! store an offset only after the handler succeeded (at-least-once).

use std::collections::HashMap;

use futures::FutureExt as _;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer, PurgeConfig};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::watch;

use super::{BusError, Delivery, Envelope, Handler, Position, deliver};
use crate::http::ReadinessCheck;

#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Kafka")]
pub struct KafkaConfig {
    /// Bootstrap servers, e.g. `kafka-0:9092,kafka-1:9092`.
    #[arg(long, env = "WW_KAFKA_BROKERS")]
    pub kafka_brokers: Option<String>,
    /// Prefix of every topic and consumer group name (one cluster, several environments).
    #[arg(long, env = "WW_KAFKA_PREFIX", default_value = "")]
    pub kafka_prefix: String,
    /// Prefix of consumer group names when it must differ from the topic prefix (e.g. a
    /// second environment reading the same topics). Defaults to `WW_KAFKA_PREFIX`.
    #[arg(long, env = "WW_KAFKA_GROUP_PREFIX")]
    pub kafka_group_prefix: Option<String>,
    /// Partitions of topics this process creates.
    #[arg(long, env = "WW_KAFKA_PARTITIONS", default_value_t = 3, value_parser = clap::value_parser!(i32).range(1..=1024))]
    pub kafka_partitions: i32,
    /// Replication factor of topics this process creates. With `acks=all`, an event is
    /// durable once every in-sync replica has it: 3 replicas and `min.insync.replicas` 2
    /// survive one broker lost. (`ww dev` needs no broker; tests use 1.)
    #[arg(long, env = "WW_KAFKA_REPLICATION_FACTOR", default_value_t = 3, value_parser = clap::value_parser!(i32).range(1..=16))]
    pub kafka_replication_factor: i32,
    /// `min.insync.replicas` of topics this process creates: a produce with `acks=all` is
    /// refused unless this many replicas have it. At most the replication factor.
    #[arg(long, env = "WW_KAFKA_MIN_INSYNC_REPLICAS", default_value_t = 2, value_parser = clap::value_parser!(i32).range(1..=16))]
    pub kafka_min_insync_replicas: i32,
    /// How long the producer keeps trying to deliver one event before giving up; after it,
    /// an event is either in the log or never will be.
    #[arg(long, env = "WW_KAFKA_MESSAGE_TIMEOUT_MS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1000..=300_000))]
    pub kafka_message_timeout_ms: u64,
}

pub struct KafkaBus {
    config: KafkaConfig,
    brokers: String,
    /// Replaced (with a generation number) when it can no longer produce or one of its
    /// messages outlived the publish deadline (see [`KafkaBus::publish`]).
    producer: std::sync::RwLock<(u64, FutureProducer)>,
    last_renewal: std::sync::Mutex<Option<std::time::Instant>>,
}

fn new_producer(brokers: &str, config: &KafkaConfig) -> Result<FutureProducer, KafkaError> {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("client.id", "weatherwise")
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "1")
        .set("message.timeout.ms", config.kafka_message_timeout_ms.to_string())
        // A produce request in flight when its message is given up on can still be written
        // for this long: part of the longest publish ([`KafkaBus::max_publish_time`]).
        .set("request.timeout.ms", request_timeout_ms(config).to_string())
        .create()
}

fn request_timeout_ms(config: &KafkaConfig) -> u64 {
    (config.kafka_message_timeout_ms / 2).min(30_000)
}

impl KafkaBus {
    pub fn new(config: &KafkaConfig) -> Result<Self, BusError> {
        let brokers = config
            .kafka_brokers
            .clone()
            .ok_or_else(|| BusError::Other("no Kafka brokers configured: set WW_KAFKA_BROKERS".to_owned()))?;
        if config.kafka_min_insync_replicas > config.kafka_replication_factor {
            return Err(BusError::Other(format!(
                "WW_KAFKA_MIN_INSYNC_REPLICAS ({}) exceeds WW_KAFKA_REPLICATION_FACTOR ({}): no produce could succeed",
                config.kafka_min_insync_replicas, config.kafka_replication_factor
            )));
        }
        let producer = new_producer(&brokers, config)?;
        Ok(Self {
            config: config.clone(),
            brokers,
            producer: std::sync::RwLock::new((0, producer)),
            last_renewal: std::sync::Mutex::new(None),
        })
    }

    fn producer(&self) -> (u64, FutureProducer) {
        self.producer.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// How long a publish waits for the broker's acknowledgement: short of the message
    /// timeout, so that librdkafka never times a message out itself (see
    /// [`KafkaBus::renew_after`]) — at the deadline the producer is purged and replaced.
    fn deadline(&self) -> Duration {
        let timeout = self.config.kafka_message_timeout_ms;
        Duration::from_millis(timeout - (timeout / 5).max(500).min(timeout / 2))
    }

    /// The longest from a publish's start until its event can no longer be written.
    pub(super) fn max_publish_time(&self) -> Duration {
        Duration::from_millis(self.config.kafka_message_timeout_ms + request_timeout_ms(&self.config))
    }

    /// Replaces producer `generation` (if it is still the current one), purging it.
    fn replace(&self, generation: u64, why: &dyn std::fmt::Display) {
        let fresh = match new_producer(&self.brokers, &self.config) {
            Ok(fresh) => fresh,
            Err(e) => return tracing::error!(error = %e, "cannot renew the Kafka producer"),
        };
        let old = {
            let mut current = self.producer.write().unwrap_or_else(std::sync::PoisonError::into_inner);
            if current.0 != generation {
                return;
            }
            std::mem::replace(&mut *current, (generation + 1, fresh)).1
        };
        old.purge(PurgeConfig::default().queue().inflight());
        *self.last_renewal.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(std::time::Instant::now());
        metrics::counter!("events_producer_renewals_total").increment(1);
        tracing::warn!(reason = %why, "Kafka producer replaced");
    }

    /// After a produce error other than a full local queue, replaces the producer (at
    /// most once a second), purging the old one.
    ///
    /// Why this matters, and why a publish has its own deadline short of the message
    /// timeout: when a message times out, librdkafka's idempotent producer bumps its own
    /// epoch and goes on with sequence 0 (INTRODUCTION.md, "Message timeout
    /// considerations") — valid Kafka, which a broker must accept. tansu 0.6 does not:
    /// looking up the producer row of the new epoch panics its storage task
    /// (`tansu-storage/src/lite.rs`, `idempotent_message_check`), and every produce after
    /// that fails with UNKNOWN_SERVER_ERROR until tansu restarts — a broker outage longer
    /// than the message timeout never healed. A producer purged and dropped before any
    /// of its messages times out never sends a bumped epoch; its successor (a new producer
    /// id, epoch 0) works as soon as the broker is back (docs/decisions/0008). Purged
    /// messages fail as not certainly unpublished: their issuers resolve them.
    fn renew_after(&self, generation: u64, error: &KafkaError) {
        use rdkafka::types::RDKafkaErrorCode as Code;
        match error {
            KafkaError::MessageProduction(Code::QueueFull | Code::PurgeQueue | Code::PurgeInflight) => {}
            KafkaError::MessageProduction(Code::MessageTimedOut) => self.replace(generation, error),
            _ => {
                let recent = self
                    .last_renewal
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .is_some_and(|t| t.elapsed() < Duration::from_secs(1));
                if !recent {
                    self.replace(generation, error);
                }
            }
        }
    }

    fn topic(&self, name: &str) -> String {
        format!("{}{name}", self.config.kafka_prefix)
    }

    pub(super) async fn publish(&self, topic: &str, key: &str, payload: &[u8]) -> Result<Position, BusError> {
        let topic = self.topic(topic);
        let record = FutureRecord::to(&topic).key(key).payload(payload);
        // No waiting for room in a full local queue: that fails at once (certainly not
        // published), so the deadline bounds how long any publish can take.
        let (generation, producer) = self.producer();
        match tokio::time::timeout(self.deadline(), producer.send(record, Duration::ZERO)).await {
            Ok(Ok(delivery)) => Ok(Position { partition: delivery.partition, offset: delivery.offset }),
            Ok(Err((e, _))) => {
                self.renew_after(generation, &e);
                Err(BusError::Kafka(e))
            }
            Err(_) => {
                self.replace(generation, &"a publish reached its deadline");
                Err(BusError::Uncertain(format!("no acknowledgement within {:?}", self.deadline())))
            }
        }
    }

    pub(super) async fn ends(&self, topic: &str) -> Result<Vec<(i32, i64)>, BusError> {
        let topic = self.topic(topic);
        let consumer = self.consumer("metadata", Delivery::Broadcast)?;
        tokio::task::spawn_blocking(move || -> Result<Vec<(i32, i64)>, KafkaError> {
            let metadata = consumer.fetch_metadata(Some(&topic), Duration::from_secs(10))?;
            let mut ends = Vec::new();
            for t in metadata.topics() {
                // A topic the broker does not report (yet, or briefly) is an error, not a
                // topic without partitions.
                if let Some(e) = t.error() {
                    return Err(KafkaError::MetadataFetch(e.into()));
                }
                for p in t.partitions() {
                    let (_, high) = consumer.fetch_watermarks(&topic, p.id(), Duration::from_secs(10))?;
                    ends.push((p.id(), high));
                }
            }
            if ends.is_empty() {
                return Err(KafkaError::MetadataFetch(RDKafkaErrorCode::UnknownTopicOrPartition));
            }
            Ok(ends)
        })
        .await
        .map_err(|e| BusError::Other(e.to_string()))?
        .map_err(BusError::Kafka)
    }

    pub(super) async fn partitions(&self, topic: &str) -> Result<i32, BusError> {
        let topic = self.topic(topic);
        let consumer = self.consumer("metadata", Delivery::Broadcast)?;
        let metadata = tokio::task::spawn_blocking(move || {
            consumer
                .fetch_metadata(Some(&topic), Duration::from_secs(10))
                .map(|m| m.topics().first().map_or(0, |t| if t.error().is_some() { 0 } else { t.partitions().len() }))
        })
        .await
        .map_err(|e| BusError::Other(e.to_string()))??;
        i32::try_from(metadata).map_err(|e| BusError::Other(e.to_string()))
    }

    pub(super) async fn ensure_topics(&self, topics: &[&str]) -> Result<(), BusError> {
        let admin: AdminClient<DefaultClientContext> =
            ClientConfig::new().set("bootstrap.servers", &self.brokers).create()?;
        let names: Vec<String> = topics.iter().map(|t| self.topic(t)).collect();
        let min_insync = self.config.kafka_min_insync_replicas.to_string();
        let new: Vec<NewTopic<'_>> = names
            .iter()
            .map(|n| {
                NewTopic::new(
                    n,
                    self.config.kafka_partitions,
                    TopicReplication::Fixed(self.config.kafka_replication_factor),
                )
                .set("min.insync.replicas", &min_insync)
            })
            .collect();
        // Both the broker's side (operation) and the client's wait (request) are bounded, and
        // the whole call once more: a start-up must fail with a reason, never hang.
        let options = AdminOptions::new()
            .operation_timeout(Some(Duration::from_secs(10)))
            .request_timeout(Some(Duration::from_secs(15)));
        let created = tokio::time::timeout(Duration::from_secs(30), admin.create_topics(&new, &options))
            .await
            .map_err(|_| BusError::Other(format!("creating topics {names:?}: no answer within 30s")))??;
        for result in created {
            match result {
                Ok(name) => tracing::info!(topic = %name, "created topic"),
                Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((name, code)) => {
                    return Err(BusError::Other(format!("cannot create topic {name}: {code}")));
                }
            }
        }
        Ok(())
    }

    pub(super) fn readiness(self: &Arc<Self>) -> ReadinessCheck {
        let bus = self.clone();
        ReadinessCheck::new("kafka", move || {
            let (_, producer) = bus.producer();
            async move {
                tokio::task::spawn_blocking(move || {
                    producer.client().fetch_metadata(None, Duration::from_secs(2)).map(|_| ())
                })
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())
            }
        })
    }

    fn consumer(&self, group: &str, delivery: Delivery) -> Result<StreamConsumer, KafkaError> {
        self.consumer_paced(group, delivery, BACKGROUND_FETCH_WAIT_MS)
    }

    /// A consumer whose fetches the broker may hold for `fetch_wait_ms` when nothing is there.
    fn consumer_paced(
        &self,
        group: &str,
        delivery: Delivery,
        fetch_wait_ms: u32,
    ) -> Result<StreamConsumer, KafkaError> {
        let durable = delivery == Delivery::Group;
        ClientConfig::new()
            .set("bootstrap.servers", &self.brokers)
            .set(
                "group.id",
                format!("{}{group}", self.config.kafka_group_prefix.as_ref().unwrap_or(&self.config.kafka_prefix)),
            )
            .set("client.id", format!("weatherwise-{group}"))
            .set("enable.auto.commit", if durable { "true" } else { "false" })
            .set("auto.commit.interval.ms", "500")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", if durable { "earliest" } else { "latest" })
            .set("session.timeout.ms", "10000")
            .set("fetch.wait.max.ms", fetch_wait_ms.to_string())
            .set("heartbeat.interval.ms", "1000")
            .create()
    }
}

/// Sleeps for `d`; false when asked to stop instead.
async fn pause_or_stop(d: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => true,
        _ = stop.wait_for(|s| *s) => false,
    }
}

enum Next<'a> {
    Message(rdkafka::message::BorrowedMessage<'a>),
    /// A consumer error, logged, after a short pause.
    Failed,
    Stop,
}

/// The next message, unless asked to stop first.
async fn next_message<'a>(consumer: &'a StreamConsumer, group: &str, stop: &mut watch::Receiver<bool>) -> Next<'a> {
    let received = tokio::select! {
        m = consumer.recv() => m,
        _ = stop.wait_for(|s| *s) => return Next::Stop,
    };
    match received {
        Ok(m) => Next::Message(m),
        Err(e) => {
            tracing::warn!(group = %group, error = %e, "consumer error");
            if pause_or_stop(Duration::from_millis(200), stop).await { Next::Failed } else { Next::Stop }
        }
    }
}

/// The envelope a message carries. A message that is not an envelope can never be
/// handled: it is logged, counted and skipped instead of blocking its partition.
fn envelope_of<M: Message>(message: &M) -> Option<Envelope> {
    match serde_json::from_slice::<Envelope>(message.payload()?) {
        Ok(mut event) => {
            event.position = Some(Position { partition: message.partition(), offset: message.offset() });
            Some(event)
        }
        Err(e) => {
            metrics::counter!("events_malformed_total", "topic" => message.topic().to_owned()).increment(1);
            tracing::error!(topic = message.topic(), partition = message.partition(), offset = message.offset(), error = %e, "skipping malformed event");
            None
        }
    }
}

/// The end offset a replay must reach, per (topic, partition).
type Watermarks = HashMap<(String, i32), i64>;

/// How long the broker may hold a fetch of most readers (groups, replays, broadcasts): they
/// follow state (deny-lists, definitions, caches), where 100 ms is prompt. Every open fetch
/// costs the broker (tansu 0.6 spends about a core on a few hundred fetches a second), so only
/// the readers that fan out to people ask for less.
const BACKGROUND_FETCH_WAIT_MS: u32 = 100;

/// The fetch wait of tails (`spawn_tail`: chat's fan-out), which the end-to-end latency of
/// every delivered message includes: a broker may hold a fetch this long even when data is
/// there (tansu does).
const LIVE_FETCH_WAIT_MS: u32 = 10;

/// Where a replay reads each partition from.
type Starts = Vec<Position>;

/// A consumer assigned to every partition of `names` from the beginning (or the last `back`
/// messages of each), and the end offsets it must reach.
fn replay_setup(
    bus: &KafkaBus,
    group: &str,
    names: &[String],
    back: Option<i64>,
) -> Result<(StreamConsumer, Watermarks, Starts), KafkaError> {
    // A tail (`back` given) fans out live; a replay from the beginning rebuilds state.
    let wait = if back.is_some() { LIVE_FETCH_WAIT_MS } else { BACKGROUND_FETCH_WAIT_MS };
    let consumer = bus.consumer_paced(group, Delivery::Broadcast, wait)?;
    let mut assignment = TopicPartitionList::new();
    let mut targets = HashMap::new();
    let mut starts = Vec::new();
    for topic in names {
        let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
        for t in metadata.topics() {
            for p in t.partitions() {
                let (low, high) = consumer.fetch_watermarks(topic, p.id(), Duration::from_secs(10))?;
                let start = back.map_or(low, |n| (high - n).max(low));
                let from = if back.is_some() { Offset::Offset(start) } else { Offset::Beginning };
                assignment.add_partition_offset(topic, p.id(), from)?;
                starts.push(Position { partition: p.id(), offset: start });
                if high > start {
                    targets.insert((topic.clone(), p.id()), high);
                }
            }
        }
    }
    consumer.assign(&assignment)?;
    Ok((consumer, targets, starts))
}

/// Assigns every partition of `topics` from the beginning, tracks the high watermarks
/// seen at the start, and signals `caught_up` once each partition reached its mark.
pub(super) async fn replay<H: Handler>(
    bus: Arc<KafkaBus>,
    group: String,
    topics: Vec<String>,
    back: Option<i64>,
    handler: Arc<H>,
    mut stop: watch::Receiver<bool>,
    caught_up: watch::Sender<bool>,
) {
    let names: Vec<String> = topics.iter().map(|t| bus.topic(t)).collect();
    // A broker that is briefly unreachable must not leave the replay dead: retry setup.
    let mut backoff = Duration::from_millis(500);
    let (consumer, mut targets, starts) = loop {
        let attempt = {
            let (bus, group, names) = (bus.clone(), group.clone(), names.clone());
            tokio::task::spawn_blocking(move || replay_setup(&bus, &group, &names, back)).await
        };
        match attempt {
            Ok(Ok(v)) => break v,
            Ok(Err(e)) => tracing::warn!(group = %group, error = %e, "cannot start replay; retrying"),
            Err(e) => tracing::error!(group = %group, error = %e, "replay setup panicked; retrying"),
        }
        if !pause_or_stop(backoff, &mut stop).await {
            return;
        }
        backoff = (backoff * 2).min(Duration::from_secs(10));
    };
    for from in starts {
        handler.reading_from(from);
    }
    if targets.is_empty() {
        let _ = caught_up.send(true);
    }
    loop {
        let message = match next_message(&consumer, &group, &mut stop).await {
            Next::Message(m) => m,
            Next::Failed => continue,
            Next::Stop => return,
        };
        if let Some(event) = envelope_of(&message)
            && !deliver(handler.as_ref(), std::slice::from_ref(&event), &mut stop).await
        {
            return;
        }
        if !targets.is_empty() {
            let key = (message.topic().to_owned(), message.partition());
            if targets.get(&key).is_some_and(|high| message.offset() + 1 >= *high) {
                targets.remove(&key);
                if targets.is_empty() {
                    let _ = caught_up.send(true);
                }
            }
        }
    }
}

pub(super) async fn consume<H: Handler>(
    bus: Arc<KafkaBus>,
    group: String,
    topics: Vec<String>,
    handler: Arc<H>,
    mut stop: watch::Receiver<bool>,
    delivery: Delivery,
) {
    let consumer = loop {
        match bus.consumer(&group, delivery) {
            Ok(c) => break c,
            Err(e) => {
                tracing::error!(group = %group, error = %e, "cannot create Kafka consumer; retrying");
                if !pause_or_stop(Duration::from_secs(2), &mut stop).await {
                    return;
                }
            }
        }
    };
    let names: Vec<String> = topics.iter().map(|t| bus.topic(t)).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut backoff = Duration::from_millis(500);
    while let Err(e) = consumer.subscribe(&refs) {
        tracing::warn!(group = %group, error = %e, "cannot subscribe; retrying");
        if !pause_or_stop(backoff, &mut stop).await {
            return;
        }
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
    tracing::info!(group = %group, topics = ?names, "consumer started");
    loop {
        let first = match next_message(&consumer, &group, &mut stop).await {
            Next::Message(m) => m,
            Next::Failed => continue,
            Next::Stop => break,
        };
        // Take whatever else is already fetched, so a busy topic is handled in batches.
        let mut batch = vec![first];
        while batch.len() < handler.max_batch() {
            match consumer.recv().now_or_never() {
                Some(Ok(m)) => batch.push(m),
                Some(Err(e)) => {
                    tracing::warn!(group = %group, error = %e, "consumer error");
                    break;
                }
                None => break,
            }
        }
        let events: Vec<Envelope> = batch.iter().filter_map(envelope_of).collect();
        if !deliver(handler.as_ref(), &events, &mut stop).await {
            break;
        }
        if delivery == Delivery::Group {
            for message in &batch {
                if let Err(e) = consumer.store_offset_from_message(message) {
                    tracing::warn!(group = %group, error = %e, "cannot store offset");
                }
            }
        }
    }
    if delivery == Delivery::Group
        && let Err(e) = consumer.commit_consumer_state(CommitMode::Sync)
    {
        // Nothing stored since the last automatic commit is also reported as an error.
        tracing::debug!(group = %group, error = %e, "final commit");
    }
    tracing::info!(group = %group, "consumer stopped");
}
