//! A per-replica cache of serialized profiles, so `GET /api/users/me` — the most frequent
//! call of every app start — does not cost a database round trip.
//!
//! Coherence: a replica's own edits replace its entry at once (read-your-writes on that
//! replica); edits made on other replicas arrive as `UserProfileUpdated` on a broadcast
//! subscription and evict the entry. Entries also expire after the TTL, which bounds
//! staleness if an eviction is missed (e.g. while the subscription is still joining).
//! Pending profiles are never cached.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use bytes::Bytes;
use platform::events::contracts::{USER_PROFILE_UPDATED, UserProfileUpdated};
use platform::events::{Envelope, Handler};
use uuid::Uuid;

pub struct ProfileCache {
    entries: RwLock<HashMap<Uuid, (Bytes, Instant)>>,
    ttl: Duration,
    capacity: usize,
}

impl ProfileCache {
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        Self { entries: RwLock::new(HashMap::new()), ttl, capacity }
    }

    fn enabled(&self) -> bool {
        !self.ttl.is_zero() && self.capacity > 0
    }

    pub fn get(&self, user_id: &Uuid) -> Option<Bytes> {
        if !self.enabled() {
            return None;
        }
        let entries = self.entries.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        entries.get(user_id).filter(|(_, until)| *until > Instant::now()).map(|(b, _)| b.clone())
    }

    pub fn put(&self, user_id: Uuid, body: Bytes) {
        if !self.enabled() {
            return;
        }
        let now = Instant::now();
        let mut entries = self.entries.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        if entries.len() >= self.capacity {
            entries.retain(|_, (_, until)| *until > now);
            if entries.len() >= self.capacity {
                // Still full of live entries: drop everything rather than track recency;
                // the cache refills from the database within one request per user.
                entries.clear();
            }
        }
        entries.insert(user_id, (body, now + self.ttl));
    }

    pub fn evict(&self, user_id: &Uuid) {
        self.entries.write().unwrap_or_else(std::sync::PoisonError::into_inner).remove(user_id);
    }
}

/// Evicts entries edited on other replicas.
pub struct Evictor(pub std::sync::Arc<ProfileCache>);

impl Handler for Evictor {
    async fn handle(&self, event: &Envelope) -> anyhow::Result<()> {
        if event.kind == USER_PROFILE_UPDATED {
            let Some(updated) = event.decode_or_skip::<UserProfileUpdated>() else { return Ok(()) };
            self.0.evict(&updated.user_id);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_and_can_be_evicted() {
        let cache = ProfileCache::new(Duration::from_millis(50), 10);
        let id = Uuid::new_v4();
        cache.put(id, Bytes::from_static(b"{}"));
        assert!(cache.get(&id).is_some());
        cache.evict(&id);
        assert!(cache.get(&id).is_none());
        cache.put(id, Bytes::from_static(b"{}"));
        std::thread::sleep(Duration::from_millis(60));
        assert!(cache.get(&id).is_none(), "expired");
    }

    #[test]
    fn a_zero_ttl_disables_the_cache() {
        let cache = ProfileCache::new(Duration::ZERO, 10);
        let id = Uuid::new_v4();
        cache.put(id, Bytes::from_static(b"{}"));
        assert!(cache.get(&id).is_none());
    }

    #[test]
    fn a_full_cache_stays_within_capacity() {
        let cache = ProfileCache::new(Duration::from_secs(60), 3);
        for _ in 0..10 {
            cache.put(Uuid::new_v4(), Bytes::from_static(b"{}"));
        }
        assert!(cache.entries.read().unwrap().len() <= 3);
    }
}
