//! The latest counters snapshot of each campaign, as its issuers publish them (at most once a
//! second while open). The operator's status reads them from here; whatever feeds them (the
//! event consumer, or a test) writes them here and names the campaign to reconcile.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use chrono::{DateTime, NaiveDate, Utc};

/// One report of a campaign's counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Snapshot {
    /// The campaign-local day the counts are for.
    pub day: NaiveDate,
    pub issued_today: u64,
    pub remaining_today: u64,
    pub issued_total: u64,
    /// When the issuer took the snapshot.
    pub at: DateTime<Utc>,
}

/// Snapshots by `namespace/name`.
#[derive(Debug, Clone, Default)]
pub struct Counters {
    latest: Arc<RwLock<HashMap<String, Snapshot>>>,
}

impl Counters {
    pub fn key(namespace: &str, name: &str) -> String {
        format!("{namespace}/{name}")
    }

    /// Keeps `snapshot` unless a newer one is already there (events may arrive out of order across
    /// issuer replicas). Returns whether it was kept.
    pub fn record(&self, namespace: &str, name: &str, snapshot: Snapshot) -> bool {
        let mut latest = self.latest.write().unwrap_or_else(|e| e.into_inner());
        let key = Self::key(namespace, name);
        match latest.get(&key) {
            Some(old) if old.at > snapshot.at => false,
            _ => {
                latest.insert(key, snapshot);
                true
            }
        }
    }

    pub fn latest(&self, namespace: &str, name: &str) -> Option<Snapshot> {
        self.latest.read().unwrap_or_else(|e| e.into_inner()).get(&Self::key(namespace, name)).copied()
    }

    /// Forgets a deleted campaign.
    pub fn forget(&self, namespace: &str, name: &str) {
        self.latest.write().unwrap_or_else(|e| e.into_inner()).remove(&Self::key(namespace, name));
    }
}
