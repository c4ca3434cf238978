//! The embedded event bus: a durable append-only log in SQLite with one cursor per
//! consumer group and topic, so `ww dev` keeps Kafka's semantics (groups, at-least-once,
//! commit after success, survives restarts) with no broker.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use sqlx::Row;
use tokio::sync::watch;

use super::{BusError, Delivery, Envelope, Handler, Position, deliver};
use crate::db::{Database, DatabaseUrl};
use crate::http::ReadinessCheck;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/bus");

pub struct EmbeddedBus {
    db: Database,
    appended: watch::Sender<u64>,
}

impl EmbeddedBus {
    /// Opens (or creates) the log in `dir/bus.db`.
    pub async fn open(dir: &Path) -> anyhow::Result<Self> {
        let db = Database::open(&DatabaseUrl::SqliteDir(dir.to_path_buf()), "bus", 4, &MIGRATOR).await?;
        let (appended, _) = watch::channel(0);
        Ok(Self { db, appended })
    }

    pub(super) async fn publish(&self, topic: &str, key: &str, payload: &[u8]) -> Result<Position, BusError> {
        let payload = std::str::from_utf8(payload).map_err(|e| BusError::Other(e.to_string()))?;
        let row = sqlx::query("INSERT INTO bus_events (topic, msg_key, payload) VALUES ($1, $2, $3) RETURNING seq")
            .bind(topic)
            .bind(key)
            .bind(payload)
            .fetch_one(&self.db.pool)
            .await?;
        self.appended.send_modify(|n| *n += 1);
        Ok(Position { partition: 0, offset: row.get::<i64, _>(0) })
    }

    pub(super) fn readiness(&self) -> ReadinessCheck {
        let pool = self.db.pool.clone();
        ReadinessCheck::new("event-log", move || {
            let pool = pool.clone();
            async move { sqlx::query("SELECT 1").execute(&pool).await.map(|_| ()).map_err(|e| e.to_string()) }
        })
    }

    async fn cursor(&self, group: &str, topic: &str) -> Result<i64, sqlx::Error> {
        let row = sqlx::query("SELECT last_seq FROM bus_offsets WHERE group_id = $1 AND topic = $2")
            .bind(group)
            .bind(topic)
            .fetch_optional(&self.db.pool)
            .await?;
        Ok(row.map_or(0, |r| r.get::<i64, _>(0)))
    }

    async fn end(&self, topic: &str) -> Result<i64, sqlx::Error> {
        let row = sqlx::query("SELECT MAX(seq) FROM bus_events WHERE topic = $1")
            .bind(topic)
            .fetch_one(&self.db.pool)
            .await?;
        Ok(row.get::<Option<i64>, _>(0).unwrap_or(0))
    }

    pub(super) async fn ends(&self, topic: &str) -> Result<Vec<(i32, i64)>, BusError> {
        Ok(vec![(0, self.end(topic).await? + 1)])
    }

    /// The sequence after which the last `back` events of `topic` follow.
    async fn before_last(&self, topic: &str, back: i64) -> Result<i64, sqlx::Error> {
        if back <= 0 {
            return self.end(topic).await;
        }
        let row = sqlx::query("SELECT seq FROM bus_events WHERE topic = $1 ORDER BY seq DESC LIMIT 1 OFFSET $2")
            .bind(topic)
            .bind(back)
            .fetch_optional(&self.db.pool)
            .await?;
        Ok(row.map_or(0, |r| r.get::<i64, _>(0)))
    }

    async fn commit(&self, group: &str, topic: &str, seq: i64) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO bus_offsets (group_id, topic, last_seq) VALUES ($1, $2, $3) \
             ON CONFLICT (group_id, topic) DO UPDATE SET last_seq = excluded.last_seq",
        )
        .bind(group)
        .bind(topic)
        .bind(seq)
        .execute(&self.db.pool)
        .await?;
        Ok(())
    }

    async fn batch(&self, topic: &str, after: i64) -> Result<Vec<(i64, String)>, sqlx::Error> {
        let rows =
            sqlx::query("SELECT seq, payload FROM bus_events WHERE topic = $1 AND seq > $2 ORDER BY seq LIMIT 256")
                .bind(topic)
                .bind(after)
                .fetch_all(&self.db.pool)
                .await?;
        Ok(rows.into_iter().map(|r| (r.get::<i64, _>(0), r.get::<String, _>(1))).collect())
    }
}

pub(super) async fn consume<H: Handler>(
    bus: Arc<EmbeddedBus>,
    group: String,
    topics: Vec<String>,
    handler: Arc<H>,
    mut stop: watch::Receiver<bool>,
    delivery: Delivery,
) {
    let mut appended = bus.appended.subscribe();
    let mut cursors = Vec::with_capacity(topics.len());
    for topic in &topics {
        let start = match delivery {
            Delivery::Group => bus.cursor(&group, topic).await,
            Delivery::Broadcast => bus.end(topic).await,
        };
        match start {
            Ok(seq) => cursors.push(seq),
            Err(e) => {
                tracing::error!(group = %group, error = %e, "cannot read the event log");
                return;
            }
        }
    }
    loop {
        let mut progressed = false;
        for (topic, cursor) in topics.iter().zip(cursors.iter_mut()) {
            match drain(&bus, &group, topic, cursor, delivery, handler.as_ref(), &mut stop).await {
                Ok(Some(n)) => progressed |= n > 0,
                Ok(None) => return,
                Err(e) => tracing::warn!(group = %group, error = %e, "event log read failed; retrying"),
            }
        }
        if progressed {
            continue;
        }
        if !more_or_stop(&mut appended, &mut stop).await {
            return;
        }
    }
}

pub(super) async fn replay<H: Handler>(
    bus: Arc<EmbeddedBus>,
    topics: Vec<String>,
    back: Option<i64>,
    handler: Arc<H>,
    mut stop: watch::Receiver<bool>,
    caught_up: watch::Sender<bool>,
) {
    let mut appended = bus.appended.subscribe();
    let mut ends = Vec::with_capacity(topics.len());
    let mut cursors = Vec::with_capacity(topics.len());
    for topic in &topics {
        let start = match back {
            None => Ok(0),
            Some(n) => bus.before_last(topic, n).await,
        };
        match (bus.end(topic).await, start) {
            (Ok(end), Ok(start)) => {
                ends.push(end);
                cursors.push(start);
                // Sequences are the log's: the next event of this topic is after `start`.
                handler.reading_from(Position { partition: 0, offset: start + 1 });
            }
            (Err(e), _) | (_, Err(e)) => {
                tracing::error!(error = %e, "cannot read the event log");
                return;
            }
        }
    }
    loop {
        let mut progressed = false;
        for (topic, cursor) in topics.iter().zip(cursors.iter_mut()) {
            match drain(&bus, "", topic, cursor, Delivery::Broadcast, handler.as_ref(), &mut stop).await {
                Ok(Some(n)) => progressed |= n > 0,
                Ok(None) => return,
                Err(e) => tracing::warn!(error = %e, "event log read failed; retrying"),
            }
        }
        if !*caught_up.borrow() && cursors.iter().zip(&ends).all(|(c, e)| c >= e) {
            let _ = caught_up.send(true);
        }
        if progressed {
            continue;
        }
        if !more_or_stop(&mut appended, &mut stop).await {
            return;
        }
    }
}

/// Waits for an append (or half a second); false when asked to stop instead.
async fn more_or_stop(appended: &mut watch::Receiver<u64>, stop: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = appended.changed() => true,
        _ = tokio::time::sleep(Duration::from_millis(500)) => true,
        _ = stop.wait_for(|s| *s) => false,
    }
}

/// Delivers every pending event of one topic after `cursor`, advancing it (and, for a
/// group, committing it); `None` when stopped midway.
async fn drain<H: Handler>(
    bus: &EmbeddedBus,
    group: &str,
    topic: &str,
    cursor: &mut i64,
    delivery: Delivery,
    handler: &H,
    stop: &mut watch::Receiver<bool>,
) -> Result<Option<usize>, sqlx::Error> {
    let batch = bus.batch(topic, *cursor).await?;
    let Some((last, _)) = batch.last() else { return Ok(Some(0)) };
    let events: Vec<Envelope> = batch
        .iter()
        .filter_map(|(seq, payload)| {
            serde_json::from_str::<Envelope>(payload)
                .map_err(|e| tracing::error!(topic, seq, error = %e, "skipping malformed event"))
                .ok()
                .map(|mut event| {
                    event.position = Some(Position { partition: 0, offset: *seq });
                    event
                })
        })
        .collect();
    if !deliver(handler, &events, stop).await {
        return Ok(None);
    }
    if delivery == Delivery::Group {
        bus.commit(group, topic, *last).await?;
    }
    *cursor = *last;
    Ok(Some(batch.len()))
}
