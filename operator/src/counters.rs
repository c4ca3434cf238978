//! The latest counts of each campaign, as its issuers publish them (`CampaignCounted` on
//! `campaigns.counts`, about once a second while a window is open). The status reads them from
//! here; [`CountsFeed`] writes them here from the bus and names the campaign to reconcile.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use chrono::{DateTime, NaiveDate, Utc};
use platform::events::contracts::{CAMPAIGN_COUNTED, CampaignCounted};
use platform::events::{Envelope, Handler};
use tokio::sync::mpsc;

/// One report of a campaign's counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Snapshot {
    /// The campaign-local day the counts are for.
    pub day: NaiveDate,
    pub issued_today: u64,
    /// `None` before the day's stock was seeded at its opening.
    pub remaining_today: Option<u64>,
    pub issued_total: u64,
    /// When the issuer took the snapshot.
    pub at: DateTime<Utc>,
}

impl From<&CampaignCounted> for Snapshot {
    fn from(c: &CampaignCounted) -> Self {
        Self {
            day: c.day,
            issued_today: c.issued_today,
            remaining_today: c.remaining_today,
            issued_total: c.issued_total,
            at: c.at,
        }
    }
}

/// Snapshots by campaign uid: a campaign deleted and re-created never shows its predecessor's
/// counts.
#[derive(Debug, Clone, Default)]
pub struct Counters {
    latest: Arc<RwLock<HashMap<String, Snapshot>>>,
}

impl Counters {
    /// Keeps `snapshot` unless a newer one is already there (events may arrive out of order
    /// across issuer replicas). Returns whether it was kept.
    pub fn record(&self, uid: &str, snapshot: Snapshot) -> bool {
        let mut latest = self.latest.write().unwrap_or_else(|e| e.into_inner());
        match latest.get(uid) {
            Some(old) if old.at >= snapshot.at => false,
            _ => {
                latest.insert(uid.to_owned(), snapshot);
                true
            }
        }
    }

    pub fn latest(&self, uid: &str) -> Option<Snapshot> {
        self.latest.read().unwrap_or_else(|e| e.into_inner()).get(uid).copied()
    }

    /// Forgets a deleted campaign.
    pub fn forget(&self, uid: &str) {
        self.latest.write().unwrap_or_else(|e| e.into_inner()).remove(uid);
    }
}

/// Records the counts arriving on the bus and sends the uid of each campaign whose counts
/// changed, for its reconcile.
pub struct CountsFeed {
    pub counters: Counters,
    pub changed: mpsc::Sender<String>,
}

impl Handler for CountsFeed {
    async fn handle(&self, event: &Envelope) -> anyhow::Result<()> {
        if event.kind != CAMPAIGN_COUNTED {
            return Ok(());
        }
        let Some(counted) = event.decode_or_skip::<CampaignCounted>() else { return Ok(()) };
        // Campaigns from files (no uid) have no resource to show them.
        if counted.uid.is_empty() {
            return Ok(());
        }
        let previous = self.counters.latest(&counted.uid);
        let snapshot = Snapshot::from(&counted);
        if self.counters.record(&counted.uid, snapshot) {
            let same = |p: &Snapshot| Snapshot { at: snapshot.at, ..*p } == snapshot;
            // Unchanged counts only refresh liveness; the reconcile reads them when it runs.
            if !previous.as_ref().is_some_and(same) {
                // A full queue means reconciles are pending anyway: dropping is fine.
                let _ = self.changed.try_send(counted.uid);
            }
        }
        Ok(())
    }
}
