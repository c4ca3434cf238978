//! Transactional outbox: a service writes its state change and the event announcing it
//! in one SQL transaction; a relay publishes pending rows to the bus and deletes them
//! once the bus acknowledged. Nothing is announced that was not committed, and nothing
//! committed goes unannounced. A row may be published twice (relay crash between
//! publish and delete, or two replicas), so consumers deduplicate by event id.
//!
//! Each service's migrations create its own `outbox` table:
//! `(id TEXT PRIMARY KEY, topic TEXT, msg_key TEXT, payload TEXT, created_at BIGINT)`.

use std::sync::Arc;
use std::time::Duration;

use sqlx::{AnyConnection, Row};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use super::{Envelope, EventBus};
use crate::db::Database;

#[derive(Clone)]
pub struct Outbox {
    db: Database,
    bus: EventBus,
    wake: Arc<Notify>,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Outbox({})", self.db.service)
    }
}

impl Outbox {
    pub fn new(db: Database, bus: EventBus) -> Self {
        Self { db, bus, wake: Arc::new(Notify::new()) }
    }

    /// Adds `event` to the outbox inside the caller's transaction.
    pub async fn enqueue(conn: &mut AnyConnection, topic: &str, key: &str, event: &Envelope) -> anyhow::Result<()> {
        let payload = serde_json::to_string(event)?;
        sqlx::query("INSERT INTO outbox (id, topic, msg_key, payload, created_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(event.id.to_string())
            .bind(topic)
            .bind(key)
            .bind(payload)
            .bind(event.occurred_at.timestamp_millis())
            .execute(conn)
            .await?;
        Ok(())
    }

    /// Tells the relay a transaction holding events has committed.
    pub fn committed(&self) {
        self.wake.notify_one();
    }

    /// Publishes pending events until `stop` turns true.
    pub fn spawn_relay(&self, mut stop: watch::Receiver<bool>) -> JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            let mut backoff = Duration::from_millis(100);
            loop {
                match this.relay_batch().await {
                    Ok(n) if n > 0 => {
                        backoff = Duration::from_millis(100);
                        continue;
                    }
                    Ok(_) => backoff = Duration::from_millis(100),
                    Err(e) => {
                        tracing::warn!(service = this.db.service, error = %format!("{e:#}"), "outbox relay failed; retrying");
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                    }
                }
                tokio::select! {
                    _ = this.wake.notified() => {}
                    _ = tokio::time::sleep(backoff.max(Duration::from_millis(500))) => {}
                    _ = stop.wait_for(|s| *s) => return,
                }
            }
        })
    }

    /// Publishes up to 100 of the oldest pending events; returns how many went out.
    pub async fn relay_batch(&self) -> anyhow::Result<usize> {
        let rows = sqlx::query("SELECT id, topic, msg_key, payload FROM outbox ORDER BY created_at, id LIMIT 100")
            .fetch_all(&self.db.pool)
            .await?;
        for row in &rows {
            let id: String = row.get(0);
            let topic: String = row.get(1);
            let key: String = row.get(2);
            let payload: String = row.get(3);
            let event: Envelope = serde_json::from_str(&payload)?;
            self.bus.publish(&topic, &key, &event).await?;
            sqlx::query("DELETE FROM outbox WHERE id = $1").bind(&id).execute(&self.db.pool).await?;
            metrics::counter!("outbox_published_total", "service" => self.db.service).increment(1);
        }
        Ok(rows.len())
    }

    /// Events committed but not yet published.
    pub async fn pending(&self) -> anyhow::Result<i64> {
        Ok(sqlx::query("SELECT COUNT(*) FROM outbox").fetch_one(&self.db.pool).await?.get::<i64, _>(0))
    }
}
