//! Consumers of the coupon service: the persister that writes `CouponIssued` to SQL
//! under its unique keys (so redeliveries and re-sent events never make a second row),
//! and the store of campaign definitions.

use platform::db::Database;
use platform::events::contracts::{
    CAMPAIGN_DEFINED, CAMPAIGN_REMOVED, COUPON_ISSUED, CampaignDefined, CampaignRemoved, CouponIssued,
};
use platform::events::{Envelope, Handler};

use crate::store;

pub struct Persister {
    pub db: Database,
}

impl Persister {
    /// A coupon the unique keys refused: a redelivery of itself (fine), or a different
    /// coupon under the same (campaign, user, seq), which must never become a row.
    async fn refused(&self, issued: &CouponIssued) -> anyhow::Result<()> {
        let stored = store::coupon_at(&self.db.pool, &instance_of(issued), issued.user_id, issued.seq).await?;
        if stored.is_some_and(|id| id != issued.coupon_id) {
            metrics::counter!("coupon_persist_conflicts_total").increment(1);
            tracing::error!(coupon_id = %issued.coupon_id, campaign = %issued.campaign, user = %issued.user_id, seq = issued.seq, "a second coupon for the same person and seq was refused");
        } else {
            metrics::counter!("coupon_persist_duplicates_total").increment(1);
        }
        Ok(())
    }
}

impl Handler for Persister {
    async fn handle(&self, event: &Envelope) -> anyhow::Result<()> {
        self.handle_batch(std::slice::from_ref(event)).await
    }

    /// One multi-row INSERT per batch (at most 500 events: 5,000 bind parameters, within
    /// both PostgreSQL's and SQLite's limits).
    async fn handle_batch(&self, events: &[Envelope]) -> anyhow::Result<()> {
        let issued: Vec<CouponIssued> =
            events.iter().filter(|e| e.kind == COUPON_ISSUED).filter_map(Envelope::decode_or_skip).collect();
        // The same coupon twice in one batch (a re-sent event) would make one statement
        // touch a row twice; keep the first.
        let mut seen = std::collections::HashSet::new();
        let unique: Vec<CouponIssued> = issued.into_iter().filter(|c| seen.insert(c.coupon_id)).collect();
        for chunk in unique.chunks(500) {
            let written: std::collections::HashSet<uuid::Uuid> =
                store::insert_coupons(&self.db.pool, chunk).await?.into_iter().collect();
            metrics::counter!("coupon_persisted_total").increment(written.len() as u64);
            for c in chunk.iter().filter(|c| !written.contains(&c.coupon_id)) {
                self.refused(c).await?;
            }
        }
        // How far behind the issuers the stored coupons are (the `PersisterLag` alert).
        // A batch shorter than the most a delivery holds means nothing more was waiting: caught up.
        if let Some(last) = events.last() {
            let caught_up = events.len() < self.max_batch();
            let age = (chrono::Utc::now() - last.occurred_at).num_milliseconds().max(0) as f64 / 1000.0;
            let behind = if caught_up { 0.0 } else { age };
            metrics::gauge!("coupon_persister_lag_seconds").set(behind);
        }
        Ok(())
    }
}

fn instance_of(issued: &CouponIssued) -> store::Instance<'_> {
    store::Instance { name: &issued.campaign, uid: &issued.campaign_uid }
}

pub struct Definitions {
    pub db: Database,
}

impl Handler for Definitions {
    async fn handle(&self, event: &Envelope) -> anyhow::Result<()> {
        match event.kind.as_str() {
            CAMPAIGN_DEFINED => {
                let Some(defined) = event.decode_or_skip::<CampaignDefined>() else { return Ok(()) };
                // A definition that does not validate is logged and skipped: it can never succeed.
                let spec: Result<campaign::CampaignSpec, _> = serde_json::from_value(defined.spec.clone());
                match spec
                    .map_err(|e| e.to_string())
                    .and_then(|s| campaign::Campaign::new(&defined.name, s).map_err(|e| e.to_string()))
                {
                    Ok(_) => {
                        let instance = store::Instance { name: &defined.name, uid: &defined.uid };
                        store::upsert_campaign(&self.db.pool, &instance, defined.version, &defined.spec.to_string())
                            .await?
                    }
                    Err(e) => {
                        tracing::error!(campaign = %defined.name, error = %e, "ignoring an invalid campaign definition")
                    }
                }
            }
            CAMPAIGN_REMOVED => {
                let Some(removed) = event.decode_or_skip::<CampaignRemoved>() else { return Ok(()) };
                let instance = store::Instance { name: &removed.name, uid: &removed.uid };
                store::remove_campaign(&self.db.pool, &instance, removed.version).await?;
                tracing::info!(campaign = %removed.name, namespace = %removed.namespace, uid = %removed.uid, issued_total = ?removed.totals.map(|t| t.issued_total), "campaign removed; its coupons stay valid");
            }
            _ => {}
        }
        Ok(())
    }
}
