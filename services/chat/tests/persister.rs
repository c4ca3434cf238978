//! The persister on both backends (SQLite, the embedded log and the in-memory cache;
//! PostgreSQL, Kafka and Redis): each message stored once under the offset it first landed at,
//! whatever is re-sent or redelivered; progress stored with the rows; the newest N per room
//! cached without duplicates or deleted ones; a re-created log starts a new epoch.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chat::persister::Persister;
use chat::recent::Recent;
use chat::store;
use chrono::Utc;
use platform::clock::Clock;
use platform::db::{Database, DatabaseUrl};
use platform::events::contracts::{
    CHAT_MESSAGE_DELETED, CHAT_MESSAGE_SENT, ChatMessageDeleted, ChatMessageSent, topics,
};
use platform::events::{EmbeddedBus, Envelope, EventBus, KafkaBus, KafkaConfig, Position};
use tokio::sync::watch;
use uuid::Uuid;

struct Backends {
    db: Database,
    bus: EventBus,
    recent: Arc<Recent>,
    _dir: Option<tempfile::TempDir>,
}

async fn embedded() -> Backends {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(&DatabaseUrl::SqliteDir(dir.path().to_owned()), "chat", 4, chat::migrator()).await.unwrap();
    let bus = EventBus::Embedded(Arc::new(EmbeddedBus::open(dir.path()).await.unwrap()));
    Backends { db, bus, recent: Arc::new(Recent::memory(3)), _dir: Some(dir) }
}

async fn real() -> Backends {
    let id = Uuid::new_v4().simple().to_string();
    let url = format!("{}/ww_test_chat_{id}", platform::testing::backend("WW_TEST_POSTGRES_URL"));
    platform::db::create_postgres_database(&url).await.unwrap();
    let db = Database::open(&DatabaseUrl::Postgres(url), "chat", 4, chat::migrator()).await.unwrap();
    let config = KafkaConfig {
        kafka_brokers: Some(platform::testing::backend("WW_TEST_KAFKA_BROKERS")),
        kafka_prefix: format!("test-{id}."),
        kafka_group_prefix: None,
        kafka_partitions: 1,
        kafka_replication_factor: 1,
        kafka_min_insync_replicas: 1,
        kafka_message_timeout_ms: 3000,
    };
    let bus = EventBus::Kafka(Arc::new(KafkaBus::new(&config).unwrap()));
    let client = redis::Client::open(platform::testing::backend("WW_TEST_REDIS_URL")).unwrap();
    let conn = redis::aio::ConnectionManager::new(client).await.unwrap();
    Backends { db, bus, recent: Arc::new(Recent::redis(conn, format!("ww-test:{id}:chat:"), 3)), _dir: None }
}

fn sent(room: &str, user: Uuid, client_msg_id: &str, text: &str) -> ChatMessageSent {
    ChatMessageSent {
        id: chat::message::message_id(user, client_msg_id),
        room: room.to_owned(),
        user_id: user,
        nickname: "kim".into(),
        text: text.to_owned(),
        sent_at: Utc::now(),
    }
}

async fn append(bus: &EventBus, kind: &str, room: &str, data: &impl serde::Serialize) -> Position {
    let envelope = Envelope::new(kind, "test", Utc::now(), data).unwrap();
    bus.append(topics::CHAT_MESSAGES, room, &envelope).await.unwrap()
}

async fn every_message_is_stored_once_under_its_first_offset(b: Backends) {
    b.bus.ensure_topics(&[topics::CHAT_MESSAGES]).await.unwrap();
    let epoch = store::ensure_epoch(&b.db.pool, "default", 1, Utc::now()).await.unwrap();
    let user = Uuid::new_v4();
    let mut first = Vec::new();
    for i in 0..6 {
        let m = sent("lobby", user, &format!("c{i}"), &format!("hello {i}"));
        let at = append(&b.bus, CHAT_MESSAGE_SENT, "lobby", &m).await;
        first.push((m.id, at.offset));
    }
    // A retried send (same id, a later record) and a message elsewhere.
    let retry = sent("lobby", user, "c2", "hello 2");
    append(&b.bus, CHAT_MESSAGE_SENT, "lobby", &retry).await;
    append(&b.bus, CHAT_MESSAGE_SENT, "garden", &sent("garden", user, "g0", "elsewhere")).await;
    // A moderator removes the newest lobby message.
    let deleted =
        ChatMessageDeleted { id: first[5].0, room: "lobby".into(), deleted_by: Uuid::new_v4(), deleted_at: Utc::now() };
    let last = append(&b.bus, CHAT_MESSAGE_DELETED, "lobby", &deleted).await;

    let persister =
        Persister::new(b.db.clone(), "default", topics::CHAT_MESSAGES, epoch.clone(), b.recent.clone(), Clock::System);
    let (stop, stop_rx) = watch::channel(false);
    let task = b.bus.spawn_consumer(
        &format!("chat-persister-{}", Uuid::new_v4().simple()),
        &[topics::CHAT_MESSAGES],
        persister,
        stop_rx,
    );
    let started = Instant::now();
    while store::progress(&b.db.pool, "default", &epoch, last.partition).await.unwrap() <= last.offset {
        assert!(started.elapsed() < Duration::from_secs(60), "the persister did not reach the end");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.send(true).unwrap();
    let _ = task.await;

    let stored = store::between(&b.db.pool, "default", &epoch, "lobby", -1, i64::MAX, 1_000).await.unwrap();
    let got: Vec<(Uuid, i64)> = stored.iter().map(|m| (m.id, m.offset)).collect();
    assert_eq!(got, first[..5], "once each, under the offset it first landed at; the deleted one gone");
    // The cache: of the newest three of the lobby (first[3..6]), the deleted one is gone; no
    // duplicate; what it no longer holds comes from SQL.
    let cached = b.recent.newest(epoch.number, "lobby", None, 10).await.unwrap().expect("cached");
    let cached: Vec<i64> = cached.iter().map(|m| m.offset).collect();
    assert_eq!(cached, [first[4].1, first[3].1]);
    // A page of the history, newest first, with cursors that continue.
    let page = store::page(&b.db.pool, "default", "lobby", None, 2).await.unwrap();
    assert_eq!(page.iter().map(|(_, m)| m.offset).collect::<Vec<_>>(), [first[4].1, first[3].1]);
    let next = store::page(&b.db.pool, "default", "lobby", Some(page[1].0), 10).await.unwrap();
    assert_eq!(next.iter().map(|(_, m)| m.offset).collect::<Vec<_>>(), [first[2].1, first[1].1, first[0].1]);
}

/// A log whose partition ends below what was stored from it was re-created: new epoch.
async fn a_re_created_log_starts_a_new_epoch(b: Backends) {
    b.bus.ensure_topics(&[topics::CHAT_MESSAGES]).await.unwrap();
    let epoch = store::ensure_epoch(&b.db.pool, "default", 1, Utc::now()).await.unwrap();
    let persister =
        Persister::new(b.db.clone(), "default", topics::CHAT_MESSAGES, epoch.clone(), b.recent.clone(), Clock::System);
    append(&b.bus, CHAT_MESSAGE_SENT, "lobby", &sent("lobby", Uuid::new_v4(), "x", "y")).await;
    assert!(!persister.check_epoch(&b.bus).await.unwrap(), "nothing changed");
    // As if offsets up to 1,000,000 had been stored from a topic since deleted.
    store::store_batch(&b.db.pool, "default", &epoch, &[], &[(0, 1_000_000)]).await.unwrap();
    assert!(persister.check_epoch(&b.bus).await.unwrap());
    let now = store::current_epoch(&b.db.pool, "default").await.unwrap().unwrap();
    assert_eq!(now.number, epoch.number + 1);
    assert_ne!(now.token, epoch.token);
    assert_eq!(persister.epoch(), now);
    assert!(!persister.check_epoch(&b.bus).await.unwrap(), "settled in the new epoch");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_every_message_is_stored_once_under_its_first_offset() {
    every_message_is_stored_once_under_its_first_offset(embedded().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(ww_no_backends, ignore = "WW_TEST_NO_BACKENDS was set: needs PostgreSQL, Redis and Kafka")]
async fn real_every_message_is_stored_once_under_its_first_offset() {
    every_message_is_stored_once_under_its_first_offset(real().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_a_re_created_log_starts_a_new_epoch() {
    a_re_created_log_starts_a_new_epoch(embedded().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(ww_no_backends, ignore = "WW_TEST_NO_BACKENDS was set: needs PostgreSQL, Redis and Kafka")]
async fn real_a_re_created_log_starts_a_new_epoch() {
    a_re_created_log_starts_a_new_epoch(real().await).await;
}
