//! Following `coupons.issued`: every replica reads the campaign's coupons from the log's
//! beginning and then live, so that
//! - its [index](super::index) knows what everyone holds (409 with their coupon at any time);
//! - a pending coupon whose event is seen durable is marked issued, whoever published it;
//! - an event that landed after a rebuild read the log (a publish the client side gave up
//!   on, that the broker still wrote) is adopted into the state and counted;
//! - two coupons under one (campaign, user, seq) are settled by the database: the row the
//!   persister kept wins in the state and the index.

use std::sync::Arc;
use std::time::{Duration, Instant};

use platform::events::contracts::{COUPON_ISSUED, CouponIssued, topics};
use platform::events::{Envelope, Handler};
use tokio::sync::watch;
use uuid::Uuid;

use super::Issuer;
use super::engine::{Adopt, Record};
use crate::store;

/// How long a conflict waits for the persister to write the winning row.
const SETTLE_LIMIT: Duration = Duration::from_secs(600);

/// Starts following; the flag turns true once the log was read to the end it had.
pub(super) fn spawn(issuer: &Arc<Issuer>) -> watch::Receiver<bool> {
    let name = format!("coupon-issuer.{}.follow", issuer.rules().name());
    let (_task, caught_up) = issuer.bus.spawn_replay(
        &name,
        &[topics::COUPONS_ISSUED],
        Follower { issuer: issuer.clone() },
        issuer.stop.clone(),
    );
    caught_up
}

pub(super) fn record_of(c: &CouponIssued) -> Record {
    Record {
        coupon_id: c.coupon_id,
        code: c.code.clone(),
        day: c.day,
        issued_at: c.issued_at,
        expires_at: c.expires_at,
        pending: false,
        idempotency_key: c.idempotency_key.clone(),
    }
}

struct Follower {
    issuer: Arc<Issuer>,
}

impl Handler for Follower {
    async fn handle(&self, event: &Envelope) -> anyhow::Result<()> {
        if event.kind != COUPON_ISSUED {
            return Ok(());
        }
        let Some(issued) = event.decode_or_skip::<CouponIssued>() else { return Ok(()) };
        if issued.campaign != self.issuer.rules().name() || issued.campaign_uid != self.issuer.rules().uid() {
            return Ok(());
        }
        let issuer = &self.issuer;
        let (user, seq, record) = (issued.user_id, issued.seq, record_of(&issued));
        // Published and confirmed by this replica: the state has it already.
        if issuer.index.contains(user, seq, record.coupon_id) && !issuer.is_unflushed(record.coupon_id) {
            return Ok(());
        }
        issuer.index.insert(user, seq, record.clone());
        let mut stop = issuer.stop.clone();
        loop {
            match issuer.engine.adopt(user, seq, &record).await? {
                Adopt::Known | Adopt::Confirmed => return Ok(()),
                Adopt::Adopted => {
                    metrics::counter!("coupon_issuer_late_events_total", "outcome" => "adopted").increment(1);
                    tracing::warn!(campaign = issued.campaign, %user, seq, coupon_id = %record.coupon_id, "a coupon the state lacked was seen in the log and adopted");
                    return Ok(());
                }
                Adopt::Oversold => {
                    metrics::counter!("coupon_issuer_late_events_total", "outcome" => "oversold").increment(1);
                    tracing::error!(campaign = issued.campaign, %user, seq, coupon_id = %record.coupon_id, day = %record.day, "a coupon landed after its day's stock was re-sold: one unit was sold twice");
                    return Ok(());
                }
                Adopt::Conflict(held) => {
                    metrics::counter!("coupon_issuer_late_events_total", "outcome" => "conflict").increment(1);
                    tracing::warn!(campaign = issued.campaign, %user, seq, log = %record.coupon_id, state = %held.coupon_id, "two coupons claim one (user, seq); the database row will decide");
                    tokio::spawn(settle(issuer.clone(), user, seq));
                    return Ok(());
                }
                Adopt::Rebuild => {
                    // The state is being rebuilt: adopt into the rebuilt state once it is
                    // open (the rebuild may have read the log before this event landed).
                    issuer.trigger_rebuild();
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                        _ = stop.wait_for(|s| *s) => return Ok(()),
                    }
                }
            }
        }
    }
}

/// Puts the database's coupon for (user, seq) in the state and the index, once the
/// persister wrote it.
async fn settle(issuer: Arc<Issuer>, user: Uuid, seq: u32) {
    let started = Instant::now();
    let mut stop = issuer.stop.clone();
    while started.elapsed() < SETTLE_LIMIT {
        match store::coupon_row(&issuer.db.pool, &store::Instance::of(&issuer.rules()), user, seq).await {
            Ok(Some(row)) => {
                let record = record_of(&row);
                match issuer.engine.replace(user, seq, &record).await {
                    Ok(true) => {
                        issuer.index.replace(user, seq, record.clone());
                        tracing::warn!(campaign = issuer.rules().name(), %user, seq, coupon_id = %record.coupon_id, "conflict settled: the database's coupon holds");
                        return;
                    }
                    Ok(false) => {}
                    Err(e) => tracing::warn!(error = %e, "could not settle a conflict yet"),
                }
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "could not read the coupon row to settle a conflict"),
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
    tracing::error!(campaign = issuer.rules().name(), %user, seq, "a conflict was not settled: no row appeared");
}
