//! The persister (`ww serve chat-persister`): a consumer group on the cluster's topic that
//! writes messages to SQL in batches under their ids (a message stored once, whatever is
//! redelivered or re-sent), records per partition how far it stored in the same transaction,
//! keeps the newest N per room in the recent cache, and applies deletions. Offsets are
//! committed only after the batch's transaction (the bus commits after the handler).
//!
//! It also keeps the cluster's epoch honest: when the topic's partition count changed, or a
//! partition ends below what was stored from it (the topic was re-created), it starts a new
//! epoch — offsets of the old one mean nothing in the new log.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};

use platform::clock::Clock;
use platform::db::Database;
use platform::events::contracts::{CHAT_MESSAGE_DELETED, CHAT_MESSAGE_SENT, ChatMessageDeleted, ChatMessageSent};
use platform::events::{Envelope, EventBus, Handler};

use crate::protocol::MessageView;
use crate::recent::Recent;
use crate::store::{self, Epoch, Stored};

pub struct Persister {
    pub db: Database,
    pub cluster: String,
    pub topic: String,
    pub epoch: Arc<RwLock<Epoch>>,
    pub recent: Arc<Recent>,
    pub clock: Clock,
    /// Rooms whose cached newest messages may miss one (a cache write failed): their cache is
    /// dropped as soon as Redis answers, so readers fall back to SQL rather than a gap.
    dirty: Mutex<HashSet<(i64, String)>>,
}

impl Persister {
    pub fn new(db: Database, cluster: &str, topic: &str, epoch: Epoch, recent: Arc<Recent>, clock: Clock) -> Self {
        Self {
            db,
            cluster: cluster.to_owned(),
            topic: topic.to_owned(),
            epoch: Arc::new(RwLock::new(epoch)),
            recent,
            clock,
            dirty: Mutex::default(),
        }
    }

    pub fn epoch(&self) -> Epoch {
        self.epoch.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Drops the cache of rooms marked dirty, where Redis answers.
    async fn clean(&self) {
        let dirty: Vec<(i64, String)> =
            self.dirty.lock().unwrap_or_else(std::sync::PoisonError::into_inner).iter().cloned().collect();
        for (epoch_no, room) in dirty {
            if self.recent.forget(epoch_no, &room).await.is_ok() {
                self.dirty.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&(epoch_no, room));
            }
        }
    }

    /// Starts a new epoch when the log the offsets belong to changed; returns whether it did.
    pub async fn check_epoch(&self, bus: &EventBus) -> anyhow::Result<bool> {
        let current = self.epoch();
        let ends = bus.ends(&self.topic).await?;
        let partitions = i32::try_from(ends.len())?;
        let stored = store::all_progress(&self.db.pool, &self.cluster, &current).await?;
        let recreated = stored.iter().any(|(p, next)| ends.iter().any(|(q, end)| p == q && end < next));
        if partitions == current.partitions && !recreated {
            return Ok(false);
        }
        let rotated = store::rotate_epoch(&self.db.pool, &self.cluster, &current, partitions, self.clock.now()).await?;
        tracing::warn!(
            cluster = %self.cluster,
            from = current.number,
            to = rotated.number,
            partitions,
            recreated,
            "the chat log changed (re-created topic or partition count): new epoch; clients resuming from before reload"
        );
        metrics::counter!("chat_epoch_rotations_total").increment(1);
        *self.epoch.write().unwrap_or_else(std::sync::PoisonError::into_inner) = rotated;
        Ok(true)
    }
}

impl Handler for Persister {
    async fn handle(&self, event: &Envelope) -> anyhow::Result<()> {
        self.handle_batch(std::slice::from_ref(event)).await
    }

    async fn handle_batch(&self, events: &[Envelope]) -> anyhow::Result<()> {
        self.clean().await;
        let epoch = self.epoch();
        let mut rows = Vec::new();
        let mut deletions = Vec::new();
        // The last offset handled per partition: stored as progress with the rows.
        let mut handled: BTreeMap<i32, i64> = BTreeMap::new();
        for event in events {
            let Some(position) = event.position else { continue };
            let last = handled.entry(position.partition).or_insert(position.offset);
            *last = (*last).max(position.offset);
            match event.kind.as_str() {
                CHAT_MESSAGE_SENT => {
                    let Some(sent) = event.decode_or_skip::<ChatMessageSent>() else { continue };
                    rows.push(Stored {
                        partition: position.partition,
                        message: MessageView {
                            room: sent.room,
                            offset: position.offset,
                            id: sent.id,
                            user_id: sent.user_id,
                            nickname: sent.nickname,
                            text: sent.text,
                            sent_at: sent.sent_at,
                        },
                    });
                }
                CHAT_MESSAGE_DELETED => {
                    if let Some(deleted) = event.decode_or_skip::<ChatMessageDeleted>() {
                        deletions.push(deleted);
                    }
                }
                _ => {}
            }
        }
        // A re-sent message in the same batch as its first record: the first one counts.
        let mut ids = HashSet::new();
        rows.retain(|r| ids.insert(r.message.id));
        let handled: Vec<(i32, i64)> = handled.into_iter().collect();
        let written = store::store_batch(&self.db.pool, &self.cluster, &epoch, &rows, &handled).await?;
        metrics::counter!("chat_messages_persisted_total").increment(written.len() as u64);
        // How far behind the gateways the stored history is (the `PersisterLag` alert).
        // A batch shorter than the most a delivery holds means nothing more was waiting: caught up.
        if let Some(last) = events.last() {
            let caught_up = events.len() < self.max_batch();
            let age = (chrono::Utc::now() - last.occurred_at).num_milliseconds().max(0) as f64 / 1000.0;
            let behind = if caught_up { 0.0 } else { age };
            metrics::gauge!("chat_persister_lag_seconds").set(behind);
        }
        metrics::counter!("chat_messages_duplicates_total").increment((rows.len() - written.len()) as u64);
        let written: HashSet<uuid::Uuid> = written.into_iter().collect();
        // Rows stored by an earlier delivery of this batch (the process died after the commit)
        // are cached again, so the cache has no hole; a re-sent copy under another offset is not.
        let again: Vec<uuid::Uuid> = rows.iter().map(|r| r.message.id).filter(|id| !written.contains(id)).collect();
        let stored = if again.is_empty() {
            std::collections::HashMap::new()
        } else {
            store::stored_offsets(&self.db.pool, &again).await?
        };
        let fresh: Vec<MessageView> = rows
            .into_iter()
            .map(|r| r.message)
            .filter(|m| written.contains(&m.id) || stored.get(&m.id) == Some(&m.offset))
            .collect();
        if let Err(e) = self.recent.add(epoch.number, &fresh).await {
            tracing::warn!(error = %format!("{e:#}"), "could not cache the newest messages; their rooms read SQL until Redis is back");
            let mut dirty = self.dirty.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            dirty.extend(fresh.iter().map(|m| (epoch.number, m.room.clone())));
        }
        for d in deletions {
            store::mark_deleted(&self.db.pool, &d.room, d.id, d.deleted_at).await?;
            if self.recent.remove(epoch.number, &d.room, d.id).await.is_err() {
                self.dirty.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert((epoch.number, d.room));
            }
        }
        Ok(())
    }
}
