//! The event-bus contract on the embedded log and on Kafka: every event reaches each
//! consumer group, a failing handler is retried (the event is not committed until it
//! succeeds), and a restarted consumer resumes after the last committed event.
#![cfg(feature = "storage")]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use platform::events::{EmbeddedBus, Envelope, EventBus, Handler, KafkaBus, KafkaConfig};
use tokio::sync::watch;
use uuid::Uuid;

#[derive(Clone, Default)]
struct Recorder {
    /// Deliveries per event id (retries included).
    attempts: Arc<Mutex<HashMap<Uuid, u32>>>,
    /// Event ids handled successfully, in order.
    handled: Arc<Mutex<Vec<Uuid>>>,
    /// Events whose first delivery fails.
    fail_first: Arc<Mutex<Vec<Uuid>>>,
}

impl Handler for Recorder {
    async fn handle(&self, event: &Envelope) -> anyhow::Result<()> {
        let attempt = {
            let mut attempts = self.attempts.lock().unwrap();
            let n = attempts.entry(event.id).or_default();
            *n += 1;
            *n
        };
        if attempt == 1 && self.fail_first.lock().unwrap().contains(&event.id) {
            anyhow::bail!("simulated failure");
        }
        self.handled.lock().unwrap().push(event.id);
        Ok(())
    }
}

impl Recorder {
    async fn wait_for(&self, ids: &[Uuid]) {
        let started = Instant::now();
        loop {
            let handled = self.handled.lock().unwrap().clone();
            if ids.iter().all(|id| handled.contains(id)) {
                return;
            }
            assert!(started.elapsed() < Duration::from_secs(60), "handled {handled:?}, wanted {ids:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn event(n: u32) -> Envelope {
    Envelope::new("TestHappened", "test", chrono::Utc::now(), &serde_json::json!({ "n": n })).unwrap()
}

async fn contract(bus_for_run: impl Fn() -> futures::future::BoxFuture<'static, EventBus>) {
    let bus = bus_for_run().await;
    bus.ensure_topics(&["things"]).await.unwrap();
    let events: Vec<Envelope> = (0..5).map(event).collect();
    let ids: Vec<Uuid> = events.iter().map(|e| e.id).collect();
    for e in &events {
        bus.publish("things", "key-1", e).await.unwrap();
    }

    // Group A: the third event fails once and is redelivered.
    let (stop_tx, stop) = watch::channel(false);
    let a = Recorder::default();
    a.fail_first.lock().unwrap().push(ids[2]);
    let task = bus.spawn_consumer("group-a", &["things"], a.clone(), stop.clone());
    a.wait_for(&ids).await;
    // At least once and in order: a failure retries the batch it was in, so events
    // handled before it in that batch may be seen again (handlers are idempotent).
    let handled = a.handled.lock().unwrap().clone();
    let mut first_seen = Vec::new();
    for id in &handled {
        if !first_seen.contains(id) {
            first_seen.push(*id);
        }
    }
    assert_eq!(first_seen, ids, "every event, in order");
    assert_eq!(a.attempts.lock().unwrap()[&ids[2]], 2, "the failed event was retried until it succeeded");

    // Group B sees everything independently.
    let b = Recorder::default();
    let task_b = bus.spawn_consumer("group-b", &["things"], b.clone(), stop.clone());
    b.wait_for(&ids).await;
    stop_tx.send(true).unwrap();
    task.await.unwrap();
    task_b.await.unwrap();

    // Restart: group A resumes after what it committed.
    let bus = bus_for_run().await;
    let later = event(99);
    bus.publish("things", "key-1", &later).await.unwrap();
    let (stop_tx, stop) = watch::channel(false);
    let again = Recorder::default();
    let task = bus.spawn_consumer("group-a", &["things"], again.clone(), stop);
    again.wait_for(&[later.id]).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(*again.handled.lock().unwrap(), vec![later.id], "nothing committed is delivered again");
    stop_tx.send(true).unwrap();
    task.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_log_keeps_kafka_semantics_across_restarts() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    contract(move || {
        let dir = dir.clone();
        Box::pin(async move { EventBus::Embedded(Arc::new(EmbeddedBus::open(dir.path()).await.unwrap())) })
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(ww_no_backends, ignore = "WW_TEST_NO_BACKENDS was set: needs Kafka")]
async fn kafka_delivers_at_least_once_and_commits_only_after_success() {
    let brokers = platform::testing::backend("WW_TEST_KAFKA_BROKERS");
    let config = KafkaConfig {
        kafka_brokers: Some(brokers),
        kafka_prefix: format!("bus-{}.", Uuid::new_v4().simple()),
        kafka_group_prefix: None,
        kafka_partitions: 1,
        kafka_replication_factor: 1,
        kafka_min_insync_replicas: 1,
        kafka_message_timeout_ms: 3000,
    };
    contract(move || {
        let config = config.clone();
        Box::pin(async move { EventBus::Kafka(Arc::new(KafkaBus::new(&config).unwrap())) })
    })
    .await;
}

/// Events handled by a tail reader, with the positions they were read at.
#[derive(Clone, Default)]
struct Positions(Arc<Mutex<Vec<(Uuid, platform::events::Position)>>>);

impl Handler for Positions {
    async fn handle(&self, event: &Envelope) -> anyhow::Result<()> {
        let position = event.position.expect("consumers say where each event was read");
        self.0.lock().unwrap().push((event.id, position));
        Ok(())
    }
}

/// `append` says where each event landed, in publishing order under one key; a tail reader
/// gets the last `back` events with those same positions, then follows live.
async fn positions_contract(bus: EventBus) {
    bus.ensure_topics(&["rooms"]).await.unwrap();
    let mut landed = Vec::new();
    for n in 0..6 {
        let e = event(n);
        let position = bus.append("rooms", "lobby", &e).await.unwrap();
        landed.push((e.id, position));
    }
    assert!(landed.windows(2).all(|w| w[0].1.partition == w[1].1.partition && w[0].1.offset < w[1].1.offset));
    assert_eq!(bus.partitions("rooms").await.unwrap(), 1);
    let seen = Positions::default();
    let (stop, stop_rx) = watch::channel(false);
    let (task, mut caught_up) = bus.spawn_tail("tail-test", &["rooms"], 3, seen.clone(), stop_rx);
    tokio::time::timeout(Duration::from_secs(30), caught_up.wait_for(|c| *c)).await.unwrap().unwrap();
    assert_eq!(*seen.0.lock().unwrap(), landed[3..], "the last three, where they landed");
    let live = event(6);
    let position = bus.append("rooms", "lobby", &live).await.unwrap();
    let started = Instant::now();
    while seen.0.lock().unwrap().len() < 4 {
        assert!(started.elapsed() < Duration::from_secs(30), "the live event never arrived");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(seen.0.lock().unwrap()[3], (live.id, position));
    stop.send(true).unwrap();
    task.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_log_says_where_events_land_and_reads_its_tail() {
    let dir = tempfile::tempdir().unwrap();
    positions_contract(EventBus::Embedded(Arc::new(EmbeddedBus::open(dir.path()).await.unwrap()))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(ww_no_backends, ignore = "WW_TEST_NO_BACKENDS was set: needs Kafka")]
async fn kafka_says_where_events_land_and_reads_its_tail() {
    let config = KafkaConfig {
        kafka_brokers: Some(platform::testing::backend("WW_TEST_KAFKA_BROKERS")),
        kafka_prefix: format!("tail-{}.", Uuid::new_v4().simple()),
        kafka_group_prefix: None,
        kafka_partitions: 1,
        kafka_replication_factor: 1,
        kafka_min_insync_replicas: 1,
        kafka_message_timeout_ms: 3000,
    };
    positions_contract(EventBus::Kafka(Arc::new(KafkaBus::new(&config).unwrap()))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_memory_bus_says_where_events_land_and_reads_its_tail() {
    positions_contract(EventBus::Memory(Arc::new(platform::events::MemoryBus::new()))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_memory_bus_keeps_the_contract_within_a_process() {
    let bus = EventBus::Memory(Arc::new(platform::events::MemoryBus::new()));
    contract(move || {
        let bus = bus.clone();
        Box::pin(async move { bus })
    })
    .await;
}
