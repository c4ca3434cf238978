//! What every replica does every second, whatever traffic it gets:
//! - **watch** the state store: is the state there and this server's own (else rebuild),
//!   did another replica move it to a new epoch (then local flags go), does it evict keys
//!   (then this replica is not ready), and how far is the one clock from ours;
//! - **resolve** pending coupons older than the longest publish: their publish failed or
//!   was cut off (a client that went away, a broker outage). The same coupon — same id,
//!   code and seq — is re-sent until the log has it; the persister keeps one row. A unit
//!   is therefore never left held: once the broker accepts writes again, a pending coupon
//!   is durable within the in-flight limit plus one round of this loop;
//! - **count**: one replica per second (whichever takes the turn in the shared state)
//!   publishes the campaign's counts (`CampaignCounted`) while a window is open, and every
//!   [`COUNT_IDLE`] otherwise, for the operator's status and the dashboards — so nobody
//!   reads the issuer's hot path per viewer.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use campaign::Phase;
use platform::events::Envelope;
use platform::events::contracts::{CAMPAIGN_COUNTED, CampaignCounted, topics};

use super::Issuer;
use super::settle_time;

const EVERY: Duration = Duration::from_secs(1);
/// How often the counts are published outside an open window.
pub const COUNT_IDLE: Duration = Duration::from_secs(30);
/// Pending coupons one replica re-sends per round.
const CLAIM_BATCH: usize = 200;

pub(super) fn spawn(issuer: &Arc<Issuer>) {
    tokio::spawn(watch(issuer.clone()));
    tokio::spawn(resolve(issuer.clone()));
    tokio::spawn(count(issuer.clone()));
}

async fn count(issuer: Arc<Issuer>) {
    let mut stop = issuer.stop.clone();
    loop {
        if issuer.is_ready() {
            let open = issuer.rules().status_at(issuer.engine.now()).phase == Phase::Open;
            // One turn per mode: an idle turn still held when a window opens must not silence
            // the first 30 s of the opening.
            let (what, period) = if open { ("counted:open", EVERY) } else { ("counted:idle", COUNT_IDLE) };
            // The turn lasts a little less than the period, so the next round finds it free.
            let turn = period.saturating_sub(Duration::from_millis(100));
            match issuer.engine.turn(what, turn).await {
                Ok(true) => {
                    if let Err(e) = publish_counts(&issuer).await {
                        tracing::debug!(error = %format!("{e:#}"), "could not publish the counts this round");
                    }
                }
                Ok(false) => {}
                Err(e) => tracing::debug!(error = %format!("{e:#}"), "state store unavailable for the counts"),
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(EVERY) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// Publishes the campaign's counts for its current day, as the shared state holds them.
pub(super) async fn publish_counts(issuer: &Issuer) -> anyhow::Result<()> {
    let at = issuer.engine.now();
    let rules = issuer.rules();
    let day = rules.day_of(at);
    let counts = issuer.engine.counters(day).await?;
    let unsigned = |n: i64| u64::try_from(n).unwrap_or(0);
    // What can still be issued today: the day's stock, within what the total cap leaves (a cap
    // lowered after the day was seeded binds before the stock does).
    let left_in_total = rules.spec().quota.total_quantity.map(|t| t.saturating_sub(unsigned(counts.issued_total)));
    let remaining_today = counts.remaining_today.map(unsigned).map(|r| left_in_total.map_or(r, |t| r.min(t)));
    let event = CampaignCounted {
        name: issuer.rules().name().to_owned(),
        uid: issuer.rules().uid().to_owned(),
        day,
        issued_today: unsigned(counts.issued_today),
        remaining_today,
        issued_total: unsigned(counts.issued_total),
        at,
    };
    let envelope = Envelope::new(CAMPAIGN_COUNTED, super::SOURCE, at, &event)?;
    issuer.bus.publish(topics::CAMPAIGN_COUNTS, issuer.rules().name(), &envelope).await?;
    Ok(())
}

async fn watch(issuer: Arc<Issuer>) {
    let mut stop = issuer.stop.clone();
    let mut generation = issuer.engine.generation();
    let mut warned_policy = false;
    loop {
        match issuer.engine.probe().await {
            Ok(health) => {
                let evicting = health.evicting();
                issuer.store_ok.store(!evicting, Ordering::SeqCst);
                if evicting && !warned_policy {
                    tracing::error!(campaign = issuer.rules().name(), policy = %health.eviction_policy, "Redis may evict keys (maxmemory-policy is not noeviction): this issuer reports not ready");
                }
                warned_policy = evicting;
                if !health.trusted {
                    if issuer.ready.swap(false, Ordering::SeqCst) {
                        tracing::warn!(
                            campaign = issuer.rules().name(),
                            "the issuer state is missing or from another Redis process (restart, restore, failover): rebuilding"
                        );
                    }
                    issuer.trigger_rebuild();
                } else if !issuer.is_ready() && !issuer.rebuild_running() {
                    issuer.ready.store(true, Ordering::SeqCst);
                }
            }
            Err(e) => tracing::debug!(error = %e, "state store probe failed"),
        }
        let now = issuer.engine.generation();
        if now != generation {
            generation = now;
            issuer.clear_sold_out();
        }
        tokio::select! {
            _ = tokio::time::sleep(EVERY) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

async fn resolve(issuer: Arc<Issuer>) {
    let mut stop = issuer.stop.clone();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(EVERY) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        if !issuer.is_ready() {
            continue;
        }
        if let Err(e) = resolve_once(&issuer).await {
            tracing::debug!(error = %format!("{e:#}"), "could not resolve pending coupons this round");
        }
    }
}

/// One round: claims the stale pending coupons and re-sends each; returns how many became
/// durable.
pub(super) async fn resolve_once(issuer: &Arc<Issuer>) -> anyhow::Result<usize> {
    let claims = issuer.engine.claim_stale(settle_time(&issuer.bus), CLAIM_BATCH).await?;
    let resent = futures::future::join_all(claims.into_iter().map(|claim| async move {
        let held = issuer.engine.holder(claim.user, claim.seq).await?;
        match held {
            Some(record) if record.pending && record.coupon_id == claim.coupon_id => {
                match issuer.send(claim.user, claim.seq, &record).await {
                    Ok(()) => {
                        issuer.durable(claim.user, claim.seq, &record);
                        metrics::counter!("coupon_issuer_resolved_total").increment(1);
                        tracing::info!(campaign = issuer.rules().name(), user = %claim.user, seq = claim.seq, coupon_id = %claim.coupon_id, "a pending coupon was re-sent and is durable");
                        Ok::<_, anyhow::Error>(1)
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, coupon_id = %claim.coupon_id, "re-sending a pending coupon failed; retrying later");
                        Ok(0)
                    }
                }
            }
            // Confirmed, given back or replaced meanwhile.
            _ => {
                issuer.engine.forget(claim).await?;
                Ok(0)
            }
        }
    }))
    .await;
    let mut durable = 0;
    for r in resent {
        durable += r?;
    }
    Ok(durable)
}
