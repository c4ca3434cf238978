//! The per-replica deny-list of revoked login sessions, so an access token stops working
//! soon after its session ends (logout, logout everywhere, password change, refresh-token
//! reuse) instead of living out its 15 minutes — without a backend read per request.
//!
//! Auth publishes `SessionRevoked` (through its outbox); every process replays the topic
//! at start and then follows it live, so a replica started after a logout still knows
//! about it. An entry lives until no access token of its session can be valid anymore
//! (`expiresAt`), which bounds the list by the revocations of one access-token lifetime.
//! Lookups take a shared read lock only when the list is not empty.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use chrono::{DateTime, TimeDelta, Utc};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::events::contracts::{SESSION_REVOKED, SessionRevoked, topics};
use crate::events::{BusError, Envelope, EventBus, Handler};
use crate::http::ReadinessCheck;

/// Longest an entry is kept, whatever an event says: access tokens live at most 15
/// minutes, so an `expiresAt` further out is a mistake that must not pin memory.
const MAX_ENTRY_LIFETIME: TimeDelta = TimeDelta::hours(1);

#[derive(Default)]
struct Entries {
    /// Session id → epoch milliseconds after which the entry may be dropped.
    until: HashMap<Uuid, i64>,
    /// Size at which the next insert first drops expired entries (amortised sweeping).
    sweep_at: usize,
}

/// Revoked sessions this process knows about.
#[derive(Default)]
pub struct DenyList {
    entries: RwLock<Entries>,
    // Read without a lock on every authenticated request: the common case is "nothing
    // revoked in the last 15 minutes" on a quiet replica, or a miss on a busy one.
    len: AtomicUsize,
}

impl std::fmt::Debug for DenyList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DenyList({} sessions)", self.len())
    }
}

impl DenyList {
    pub fn new() -> Self {
        Self::default()
    }

    /// True when `session_id` was revoked (and its access tokens may still be unexpired).
    /// This is the check for every authenticated request and for long-lived connections
    /// (WebSockets) that must end when their session does.
    pub fn is_revoked(&self, session_id: &Uuid) -> bool {
        if self.len.load(Ordering::Acquire) == 0 {
            return false;
        }
        self.entries.read().unwrap_or_else(std::sync::PoisonError::into_inner).until.contains_key(session_id)
    }

    /// Refuses `session_id` until `until` (clamped to an hour from `now`).
    pub fn deny(&self, session_id: Uuid, until: DateTime<Utc>, now: DateTime<Utc>) {
        if until <= now {
            return;
        }
        let until = until.min(now + MAX_ENTRY_LIFETIME).timestamp_millis();
        let mut entries = self.entries.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        if entries.until.len() >= entries.sweep_at {
            let now = now.timestamp_millis();
            entries.until.retain(|_, u| *u > now);
            entries.sweep_at = (entries.until.len() * 2).max(1024);
        }
        let kept = entries.until.entry(session_id).or_insert(until);
        *kept = (*kept).max(until);
        self.len.store(entries.until.len(), Ordering::Release);
        metrics::gauge!("sessions_denied").set(entries.until.len() as f64);
    }

    /// Drops entries whose access tokens have all expired.
    pub fn sweep(&self, now: DateTime<Utc>) {
        let now = now.timestamp_millis();
        let mut entries = self.entries.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        entries.until.retain(|_, u| *u > now);
        self.len.store(entries.until.len(), Ordering::Release);
    }

    pub fn len(&self) -> usize {
        self.len.load(Ordering::Acquire)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Feeds a [`DenyList`] from `SessionRevoked` events.
pub struct Feed(pub Arc<DenyList>);

impl Handler for Feed {
    async fn handle(&self, event: &Envelope) -> anyhow::Result<()> {
        if event.kind == SESSION_REVOKED
            && let Some(revoked) = event.decode_or_skip::<SessionRevoked>()
        {
            self.0.deny(revoked.session_id, revoked.expires_at, Utc::now());
        }
        Ok(())
    }
}

/// What [`follow`] started: its tasks, and a readiness check that passes once the replay
/// has caught up with the revocations that existed when it started (until then this
/// process could accept a token that was already revoked).
pub struct Following {
    pub tasks: Vec<JoinHandle<()>>,
    pub readiness: ReadinessCheck,
}

/// Replays `sessions.revoked` into `list` and follows it until `stop`; also sweeps
/// expired entries once a minute. Every role of every process runs one.
pub async fn follow(bus: &EventBus, list: Arc<DenyList>, stop: watch::Receiver<bool>) -> Result<Following, BusError> {
    bus.ensure_topics(&[topics::SESSIONS_REVOKED]).await?;
    let (feed, caught_up) =
        bus.spawn_replay("sessions.deny-list", &[topics::SESSIONS_REVOKED], Feed(list.clone()), stop.clone());
    let readiness = ReadinessCheck::new("session-revocations", move || {
        let ready = *caught_up.borrow();
        async move { if ready { Ok(()) } else { Err("replaying revoked sessions".to_owned()) } }
    });
    let mut stop = stop;
    let sweeper = tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(std::time::Duration::from_secs(60)) => list.sweep(Utc::now()),
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    });
    Ok(Following { tasks: vec![feed, sweeper], readiness })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_denied_session_is_revoked_until_its_tokens_expire() {
        let list = DenyList::new();
        let now = Utc::now();
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        assert!(!list.is_revoked(&a), "an empty list denies nothing");
        list.deny(a, now + TimeDelta::minutes(15), now);
        assert!(list.is_revoked(&a));
        assert!(!list.is_revoked(&b));
        list.sweep(now + TimeDelta::minutes(16));
        assert!(!list.is_revoked(&a), "dropped once no token of it can be valid");
        assert!(list.is_empty());
    }

    #[test]
    fn entries_are_bounded_in_time_whatever_the_event_says() {
        let list = DenyList::new();
        let now = Utc::now();
        let id = Uuid::new_v4();
        list.deny(id, now + TimeDelta::days(365), now);
        list.sweep(now + TimeDelta::hours(2));
        assert!(!list.is_revoked(&id));
        list.deny(Uuid::new_v4(), now - TimeDelta::seconds(1), now);
        assert!(list.is_empty(), "an already expired revocation is not kept");
    }

    #[test]
    fn inserts_sweep_expired_entries_as_the_list_grows() {
        let list = DenyList::new();
        let start = Utc::now();
        for _ in 0..2000 {
            list.deny(Uuid::new_v4(), start + TimeDelta::seconds(1), start);
        }
        let later = start + TimeDelta::seconds(2);
        for _ in 0..3000 {
            list.deny(Uuid::new_v4(), later + TimeDelta::minutes(15), later);
        }
        assert!(list.len() <= 3000 + 1024, "{}", list.len());
    }
}
