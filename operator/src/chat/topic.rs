//! A chat cluster's Kafka topic, kept at the partitions its resource asks for: created when
//! missing, grown when it has fewer, never shrunk (Kafka cannot remove partitions, and the CEL rule
//! refuses a lower count; a topic with more — grown by hand, or left by an earlier resource of the
//! same name — is reported, not touched). The broker is reached through [`TopicAdmin`], so the
//! decision is tested against [`MemoryAdmin`] and the real calls ([`KafkaTopicAdmin`], the Kafka
//! admin API through rdkafka) against the test broker.
//!
//! The operator creates the topic before the cluster's pods exist (the roles would otherwise
//! create it themselves with the platform's default partition count). Growing moves rooms to other
//! partitions: the persister starts a new epoch when it sees the count change, and resumes from
//! before it answer `recovered: false` (0010); gateways pick the new partitions up on restart.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use platform::events::KafkaConfig;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewPartitions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    /// No answer from the broker (or none in time).
    #[error("the broker did not answer: {0}")]
    Unreachable(String),
    /// The broker answered no.
    #[error("the broker refused: {0}")]
    Refused(String),
}

/// The Kafka admin calls the controller makes, on full topic names (prefix included).
pub trait TopicAdmin: Send + Sync {
    /// The topic's partition count; `None` when the broker has no such topic.
    fn partitions<'a>(&'a self, topic: &'a str) -> BoxFuture<'a, Result<Option<u32>, TopicError>>;
    /// Creates the topic with `partitions`.
    fn create<'a>(&'a self, topic: &'a str, partitions: u32) -> BoxFuture<'a, Result<(), TopicError>>;
    /// Raises the topic's partition count to `total` (Kafka's CreatePartitions).
    fn grow<'a>(&'a self, topic: &'a str, total: u32) -> BoxFuture<'a, Result<(), TopicError>>;
}

/// What to do about a topic with `actual` partitions (`None`: missing) when `asked` are wanted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Create(u32),
    Grow {
        from: u32,
        to: u32,
    },
    Keep(u32),
    /// More than asked: Kafka cannot remove partitions, so they stay.
    AboveSpec {
        actual: u32,
        asked: u32,
    },
}

pub fn step(actual: Option<u32>, asked: u32) -> Step {
    match actual {
        None => Step::Create(asked),
        Some(actual) if actual < asked => Step::Grow { from: actual, to: asked },
        Some(actual) if actual > asked => Step::AboveSpec { actual, asked },
        Some(actual) => Step::Keep(actual),
    }
}

/// Where the topic stands after [`ensure`], as the status's `partitions` and `TopicReady`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The partitions the topic has, when known; `None` when it does not exist or the broker did
    /// not answer.
    pub partitions: Option<u32>,
    /// The topic exists (the cluster's pods may start).
    pub exists: bool,
    /// `TopicReady`: the topic has at least the partitions asked for.
    pub ready: bool,
    pub reason: &'static str,
    pub message: String,
}

/// Brings `topic` to `asked` partitions as far as the broker allows, and says where it stands.
pub async fn ensure(admin: &dyn TopicAdmin, topic: &str, asked: u32) -> Outcome {
    let unreachable = |e: TopicError| Outcome {
        partitions: None,
        exists: false,
        ready: false,
        reason: "BrokerUnavailable",
        message: format!("cannot read topic {topic}: {e}"),
    };
    let actual = match admin.partitions(topic).await {
        Ok(actual) => actual,
        Err(e) => return unreachable(e),
    };
    let actual = match step(actual, asked) {
        Step::Create(n) => match admin.create(topic, n).await {
            Ok(()) => {
                tracing::info!(topic, partitions = n, "created the chat topic");
                return Outcome {
                    partitions: Some(n),
                    exists: true,
                    ready: true,
                    reason: "Created",
                    message: format!("created topic {topic} with {n} partitions"),
                };
            }
            Err(e) => match admin.partitions(topic).await {
                // Created by someone else in between: go on from what it has.
                Ok(Some(now)) => now,
                Ok(None) => {
                    return Outcome {
                        partitions: None,
                        exists: false,
                        ready: false,
                        reason: "CreateFailed",
                        message: format!("cannot create topic {topic} with {n} partitions: {e}"),
                    };
                }
                Err(e) => return unreachable(e),
            },
        },
        _ => actual.unwrap_or(asked),
    };
    match step(Some(actual), asked) {
        Step::Grow { from, to } => match admin.grow(topic, to).await {
            Ok(()) => {
                tracing::info!(topic, from, to, "grew the chat topic");
                Outcome {
                    partitions: Some(to),
                    exists: true,
                    ready: true,
                    reason: "Grown",
                    message: format!("topic {topic} grown from {from} to {to} partitions"),
                }
            }
            Err(e) => Outcome {
                partitions: Some(from),
                exists: true,
                ready: false,
                reason: "GrowRefused",
                message: format!(
                    "topic {topic} has {from} partitions, {to} asked, and growing it failed: {e}; the cluster runs on {from}"
                ),
            },
        },
        Step::AboveSpec { actual, asked } => Outcome {
            partitions: Some(actual),
            exists: true,
            ready: true,
            reason: "MorePartitionsThanAsked",
            message: format!(
                "topic {topic} has {actual} partitions, more than the {asked} asked; Kafka cannot remove partitions, so it keeps {actual}"
            ),
        },
        Step::Keep(n) | Step::Create(n) => Outcome {
            partitions: Some(n),
            exists: true,
            ready: true,
            reason: "PartitionsAsAsked",
            message: format!("topic {topic} has the {n} partitions asked"),
        },
    }
}

/// The Kafka admin API through rdkafka, creating topics with the operator's replication factor and
/// `min.insync.replicas` (its `--kafka-*` settings, the same the services create theirs with).
pub struct KafkaTopicAdmin {
    admin: Arc<AdminClient<DefaultClientContext>>,
    replication_factor: i32,
    min_insync_replicas: String,
}

/// Every admin call is bounded: a reconcile must fail with a reason, never hang.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(10);

impl KafkaTopicAdmin {
    pub fn new(config: &KafkaConfig) -> Result<Self, KafkaError> {
        let brokers = config.kafka_brokers.clone().unwrap_or_default();
        // Looking a topic up must never create it with the broker's defaults (a producer-side
        // handle asks for auto-creation unless told not to; Kafka's default honours it).
        let admin =
            ClientConfig::new().set("bootstrap.servers", &brokers).set("allow.auto.create.topics", "false").create()?;
        Ok(Self {
            admin: Arc::new(admin),
            replication_factor: config.kafka_replication_factor,
            min_insync_replicas: config.kafka_min_insync_replicas.to_string(),
        })
    }

    fn options() -> AdminOptions {
        AdminOptions::new().operation_timeout(Some(ADMIN_TIMEOUT)).request_timeout(Some(ADMIN_TIMEOUT))
    }
}

fn one_result(results: Vec<Result<String, (String, RDKafkaErrorCode)>>) -> Result<(), TopicError> {
    match results.into_iter().next() {
        Some(Ok(_)) => Ok(()),
        Some(Err((_, code))) => Err(TopicError::Refused(format!("{code} ({code:?})"))),
        None => Err(TopicError::Refused("no result for the topic".to_owned())),
    }
}

/// A timeout or no broker is "unreachable"; any other error is the broker (or librdkafka on its
/// behalf, e.g. `UnsupportedFeature` when the broker does not offer the API) saying no.
fn kafka_error(e: KafkaError) -> TopicError {
    let code = match &e {
        KafkaError::AdminOp(code) | KafkaError::MetadataFetch(code) => Some(*code),
        other => other.rdkafka_error_code(),
    };
    match code {
        Some(
            RDKafkaErrorCode::OperationTimedOut
            | RDKafkaErrorCode::RequestTimedOut
            | RDKafkaErrorCode::AllBrokersDown
            | RDKafkaErrorCode::BrokerTransportFailure,
        )
        | None => TopicError::Unreachable(e.to_string()),
        Some(_) => TopicError::Refused(e.to_string()),
    }
}

impl TopicAdmin for KafkaTopicAdmin {
    fn partitions<'a>(&'a self, topic: &'a str) -> BoxFuture<'a, Result<Option<u32>, TopicError>> {
        let admin = self.admin.clone();
        let topic = topic.to_owned();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                let metadata = admin.inner().fetch_metadata(Some(&topic), ADMIN_TIMEOUT).map_err(kafka_error)?;
                let Some(t) = metadata.topics().iter().find(|t| t.name() == topic) else { return Ok(None) };
                match t.error() {
                    None => Ok(Some(u32::try_from(t.partitions().len()).unwrap_or(u32::MAX))),
                    Some(e) if RDKafkaErrorCode::from(e) == RDKafkaErrorCode::UnknownTopicOrPartition => Ok(None),
                    Some(e) => Err(TopicError::Refused(format!("metadata of {topic}: {}", RDKafkaErrorCode::from(e)))),
                }
            })
            .await
            .map_err(|e| TopicError::Unreachable(e.to_string()))?
        })
    }

    fn create<'a>(&'a self, topic: &'a str, partitions: u32) -> BoxFuture<'a, Result<(), TopicError>> {
        Box::pin(async move {
            let count = i32::try_from(partitions).map_err(|e| TopicError::Refused(e.to_string()))?;
            let new = NewTopic::new(topic, count, TopicReplication::Fixed(self.replication_factor))
                .set("min.insync.replicas", &self.min_insync_replicas);
            let options = Self::options();
            let call = self.admin.create_topics([&new], &options);
            let results = tokio::time::timeout(ADMIN_TIMEOUT * 2, call)
                .await
                .map_err(|_| TopicError::Unreachable(format!("no answer within {:?}", ADMIN_TIMEOUT * 2)))?
                .map_err(kafka_error)?;
            one_result(results)
        })
    }

    fn grow<'a>(&'a self, topic: &'a str, total: u32) -> BoxFuture<'a, Result<(), TopicError>> {
        Box::pin(async move {
            let total = usize::try_from(total).map_err(|e| TopicError::Refused(e.to_string()))?;
            let new = NewPartitions::new(topic, total);
            let options = Self::options();
            let call = self.admin.create_partitions([&new], &options);
            let results = tokio::time::timeout(ADMIN_TIMEOUT * 2, call)
                .await
                .map_err(|_| TopicError::Unreachable(format!("no answer within {:?}", ADMIN_TIMEOUT * 2)))?
                .map_err(kafka_error)?;
            one_result(results)
        })
    }
}

/// Topics in memory, with a switch for a broker that refuses to grow them and one for a broker
/// that is down: for tests, and wherever the controller runs without a broker.
#[derive(Debug, Default)]
pub struct MemoryAdmin {
    topics: Mutex<BTreeMap<String, u32>>,
    refuse_grow: Mutex<Option<String>>,
    down: std::sync::atomic::AtomicBool,
    calls: Mutex<Vec<String>>,
}

impl MemoryAdmin {
    /// Puts a topic there as someone else would have.
    pub fn put(&self, topic: &str, partitions: u32) {
        self.topics.lock().unwrap_or_else(|e| e.into_inner()).insert(topic.to_owned(), partitions);
    }

    pub fn get(&self, topic: &str) -> Option<u32> {
        self.topics.lock().unwrap_or_else(|e| e.into_inner()).get(topic).copied()
    }

    /// From now on growing answers `Refused(message)` (`None`: grows again).
    pub fn refuse_grow(&self, message: Option<&str>) {
        *self.refuse_grow.lock().unwrap_or_else(|e| e.into_inner()) = message.map(str::to_owned);
    }

    /// From now on every call answers `Unreachable`, or answers again.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, std::sync::atomic::Ordering::SeqCst);
    }

    /// The writes made, as `create TOPIC N` and `grow TOPIC N`.
    pub fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn check_up(&self) -> Result<(), TopicError> {
        if self.down.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(TopicError::Unreachable("the broker is down".to_owned()));
        }
        Ok(())
    }
}

impl TopicAdmin for MemoryAdmin {
    fn partitions<'a>(&'a self, topic: &'a str) -> BoxFuture<'a, Result<Option<u32>, TopicError>> {
        Box::pin(async move {
            self.check_up()?;
            Ok(self.get(topic))
        })
    }

    fn create<'a>(&'a self, topic: &'a str, partitions: u32) -> BoxFuture<'a, Result<(), TopicError>> {
        Box::pin(async move {
            self.check_up()?;
            self.calls.lock().unwrap_or_else(|e| e.into_inner()).push(format!("create {topic} {partitions}"));
            let mut topics = self.topics.lock().unwrap_or_else(|e| e.into_inner());
            if topics.contains_key(topic) {
                return Err(TopicError::Refused("TopicAlreadyExists".to_owned()));
            }
            topics.insert(topic.to_owned(), partitions);
            Ok(())
        })
    }

    fn grow<'a>(&'a self, topic: &'a str, total: u32) -> BoxFuture<'a, Result<(), TopicError>> {
        Box::pin(async move {
            self.check_up()?;
            self.calls.lock().unwrap_or_else(|e| e.into_inner()).push(format!("grow {topic} {total}"));
            if let Some(message) = self.refuse_grow.lock().unwrap_or_else(|e| e.into_inner()).clone() {
                return Err(TopicError::Refused(message));
            }
            let mut topics = self.topics.lock().unwrap_or_else(|e| e.into_inner());
            match topics.get_mut(topic) {
                Some(n) if *n < total => {
                    *n = total;
                    Ok(())
                }
                Some(n) => Err(TopicError::Refused(format!("InvalidPartitions: already {n}"))),
                None => Err(TopicError::Refused("UnknownTopicOrPartition".to_owned())),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_topic_is_created_a_smaller_one_grown_and_none_ever_shrunk() {
        assert_eq!(step(None, 6), Step::Create(6));
        assert_eq!(step(Some(3), 6), Step::Grow { from: 3, to: 6 });
        assert_eq!(step(Some(6), 6), Step::Keep(6));
        assert_eq!(step(Some(12), 6), Step::AboveSpec { actual: 12, asked: 6 });
    }

    #[tokio::test]
    async fn ensure_creates_then_grows_and_reports_what_it_cannot_do() {
        let admin = MemoryAdmin::default();
        let created = ensure(&admin, "chat.snow.messages", 6).await;
        assert_eq!((created.partitions, created.ready, created.reason), (Some(6), true, "Created"));
        let kept = ensure(&admin, "chat.snow.messages", 6).await;
        assert_eq!((kept.partitions, kept.reason), (Some(6), "PartitionsAsAsked"));
        let grown = ensure(&admin, "chat.snow.messages", 12).await;
        assert_eq!((grown.partitions, grown.ready, grown.reason), (Some(12), true, "Grown"));
        assert_eq!(admin.get("chat.snow.messages"), Some(12));
        // Asked for fewer (an earlier resource's topic, or grown by hand): kept, and said.
        let above = ensure(&admin, "chat.snow.messages", 8).await;
        assert_eq!((above.partitions, above.ready, above.reason), (Some(12), true, "MorePartitionsThanAsked"));
        assert_eq!(admin.get("chat.snow.messages"), Some(12), "never shrunk");
        assert_eq!(admin.calls(), ["create chat.snow.messages 6", "grow chat.snow.messages 12"]);
        // A broker that cannot grow topics: the cluster runs on what there is, and the status says why.
        admin.refuse_grow(Some("UnsupportedVersion"));
        let refused = ensure(&admin, "chat.snow.messages", 16).await;
        assert_eq!((refused.partitions, refused.exists, refused.ready), (Some(12), true, false));
        assert_eq!(refused.reason, "GrowRefused");
        assert!(refused.message.contains("UnsupportedVersion"), "{}", refused.message);
        admin.set_down(true);
        let down = ensure(&admin, "chat.snow.messages", 16).await;
        assert_eq!((down.partitions, down.exists, down.reason), (None, false, "BrokerUnavailable"));
    }

    #[tokio::test]
    async fn a_topic_created_by_someone_else_in_between_is_taken_as_it_is() {
        struct Racing(MemoryAdmin);
        impl TopicAdmin for Racing {
            fn partitions<'a>(&'a self, topic: &'a str) -> BoxFuture<'a, Result<Option<u32>, TopicError>> {
                self.0.partitions(topic)
            }
            fn create<'a>(&'a self, topic: &'a str, _: u32) -> BoxFuture<'a, Result<(), TopicError>> {
                // A chat role created it first, with the platform's default count.
                self.0.put(topic, 3);
                Box::pin(async { Err(TopicError::Refused("TopicAlreadyExists".to_owned())) })
            }
            fn grow<'a>(&'a self, topic: &'a str, total: u32) -> BoxFuture<'a, Result<(), TopicError>> {
                self.0.grow(topic, total)
            }
        }
        let admin = Racing(MemoryAdmin::default());
        let outcome = ensure(&admin, "chat.messages", 6).await;
        assert_eq!((outcome.partitions, outcome.reason), (Some(6), "Grown"));
    }
}
