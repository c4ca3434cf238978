//! Restoring the engine state after it was lost (Redis flushed or restarted empty, or a
//! first start): the state is recomputed from what is durable — the coupon rows in the
//! database and the `coupons.issued` log, including its not-yet-persisted tail — and the
//! mission log is replayed for eligibility. Until the epoch key is written again every
//! engine step answers `Rebuild`, so nobody is answered from a partial state.
//!
//! Before reading the log the rebuild waits out the longest a publish can take: a unit
//! taken just before the loss has its event either in the log by then, or never.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use platform::events::contracts::{COUPON_ISSUED, CouponIssued, topics};
use platform::events::{Envelope, Handler};
use tokio::sync::watch;
use uuid::Uuid;

use super::eligibility::Eligibility;
use super::engine::{Record, Snapshot};
use super::{Issuer, settle_time};
use crate::store;

const CATCH_UP_LIMIT: Duration = Duration::from_secs(300);

#[derive(Default)]
pub(super) struct Rebuilder {
    running: AtomicBool,
    eligibility: Mutex<Option<Replay>>,
}

struct Replay {
    stop: watch::Sender<bool>,
    caught_up: watch::Receiver<bool>,
}

impl Issuer {
    /// Starts a rebuild in the background unless one is running.
    pub(super) fn trigger_rebuild(self: &Arc<Self>) {
        if self.rebuild.running.swap(true, Ordering::SeqCst) {
            return;
        }
        let this = self.clone();
        tokio::spawn(async move {
            let mut backoff = Duration::from_millis(500);
            loop {
                match this.rebuild_once().await {
                    Ok(()) => break,
                    Err(e) => {
                        metrics::counter!("coupon_issuer_rebuild_failures_total").increment(1);
                        tracing::error!(campaign = this.campaign.name(), error = %format!("{e:#}"), "rebuild failed; retrying");
                    }
                }
                if *this.stop.borrow() {
                    break;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
            this.rebuild.running.store(false, Ordering::SeqCst);
        });
    }

    async fn rebuild_once(self: &Arc<Self>) -> anyhow::Result<()> {
        let owner = Uuid::new_v4().to_string();
        // One replica rebuilds; the others wait for its epoch.
        loop {
            if self.engine.lock_rebuild(&owner).await? {
                break;
            }
            if self.engine.is_ready().await? {
                self.ready.store(true, Ordering::SeqCst);
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        // The lock expires after two minutes unless renewed; a long replay renews it.
        let renew = {
            let (engine, owner) = (self.engine.clone(), owner.clone());
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_secs(20)).await;
                    if !matches!(engine.renew_rebuild(&owner).await, Ok(true)) {
                        return;
                    }
                }
            })
        };
        let result = self.rebuild_locked(&owner).await;
        renew.abort();
        self.engine.unlock_rebuild(&owner).await?;
        result
    }

    async fn rebuild_locked(self: &Arc<Self>, owner: &str) -> anyhow::Result<()> {
        if self.engine.is_ready().await? {
            self.ready.store(true, Ordering::SeqCst);
            return Ok(());
        }
        let started = Instant::now();
        tracing::info!(
            campaign = self.campaign.name(),
            "issuer state missing: rebuilding from the database and the log"
        );
        tokio::time::sleep(settle_time(&self.bus)).await;

        let mut durable: HashMap<Uuid, CouponIssued> = store::issued_in_campaign(&self.db.pool, self.campaign.name())
            .await?
            .into_iter()
            .map(|c| (c.coupon_id, c))
            .collect();
        let from_db = durable.len();
        for c in self.replay_issued().await? {
            durable.entry(c.coupon_id).or_insert(c);
        }
        let snapshot = snapshot_of(durable.into_values());
        // Never write over a state another replica may have rebuilt after our lock lapsed.
        anyhow::ensure!(self.engine.renew_rebuild(owner).await?, "lost the rebuild lock before applying");
        self.engine.apply(&snapshot).await?;

        self.restart_eligibility().await;
        let caught_up = self
            .rebuild
            .eligibility
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_ref()
            .map(|r| r.caught_up.clone());
        if let Some(mut caught_up) = caught_up {
            tokio::time::timeout(CATCH_UP_LIMIT, caught_up.wait_for(|c| *c))
                .await
                .map(|r| r.map(|_| ()))
                .map_err(|_| anyhow::anyhow!("mission log replay did not catch up within {CATCH_UP_LIMIT:?}"))??;
        }

        anyhow::ensure!(self.engine.renew_rebuild(owner).await?, "lost the rebuild lock before opening");
        self.engine.mark_ready(&Uuid::new_v4().to_string()).await?;
        self.sold_out_day.store(i64::MIN, Ordering::Relaxed);
        self.sold_out_total.store(false, Ordering::Relaxed);
        self.ready.store(true, Ordering::SeqCst);
        let holders = snapshot.holders.len();
        let took_ms = started.elapsed().as_millis() as u64;
        metrics::counter!("coupon_issuer_rebuilds_total").increment(1);
        if holders > 0 {
            tracing::warn!(
                campaign = self.campaign.name(),
                holders,
                from_db,
                took_ms,
                "issuer state restored after a loss"
            );
        } else {
            tracing::info!(campaign = self.campaign.name(), took_ms, "issuer state initialised");
        }
        Ok(())
    }

    /// Every `CouponIssued` of this campaign in the log.
    async fn replay_issued(&self) -> anyhow::Result<Vec<CouponIssued>> {
        let collector = Collector { campaign: self.campaign.name().to_owned(), seen: Arc::new(Mutex::new(Vec::new())) };
        let (stop_tx, stop) = watch::channel(false);
        let (task, mut caught_up) =
            self.bus.spawn_replay("coupon-issuer.rebuild", &[topics::COUPONS_ISSUED], collector.clone(), stop);
        let waited = tokio::time::timeout(CATCH_UP_LIMIT, caught_up.wait_for(|c| *c)).await.map(|r| r.map(|_| ()));
        let _ = stop_tx.send(true);
        let _ = task.await;
        waited.map_err(|_| anyhow::anyhow!("coupon log replay did not catch up within {CATCH_UP_LIMIT:?}"))??;
        let seen = std::mem::take(&mut *collector.seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
        Ok(seen)
    }

    /// (Re)starts following the mission log from its beginning into the engine.
    pub(super) async fn restart_eligibility(self: &Arc<Self>) {
        let (stop_tx, stop) = watch::channel(false);
        let mut outer = self.stop.clone();
        let forward = stop_tx.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = outer.wait_for(|s| *s) => { let _ = forward.send(true); }
                _ = forward.closed() => {}
            }
        });
        let handler = Eligibility::new(self.campaign.clone(), self.engine.clone(), self.clock.clone());
        let name = format!("coupon-issuer.{}.eligibility", self.campaign.name());
        let (_task, caught_up) = self.bus.spawn_replay(&name, &[topics::MISSIONS_VERIFIED], handler, stop);
        let previous = self
            .rebuild
            .eligibility
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .replace(Replay { stop: stop_tx, caught_up });
        if let Some(previous) = previous {
            let _ = previous.stop.send(true);
        }
    }

    /// The mission log replay reached the end it saw when it started.
    pub fn eligibility_caught_up(&self) -> bool {
        self.rebuild
            .eligibility
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_ref()
            .is_some_and(|r| *r.caught_up.borrow())
    }
}

fn snapshot_of(coupons: impl Iterator<Item = CouponIssued>) -> Snapshot {
    let mut sorted: Vec<CouponIssued> = coupons.collect();
    sorted.sort_by_key(|c| (c.issued_at, c.coupon_id));
    let mut holders: HashMap<Uuid, BTreeMap<u32, Record>> = HashMap::new();
    for c in sorted {
        // (user, seq) is unique among durable rows; if the log holds a second coupon
        // under the same key (never persisted), the first one stands.
        holders.entry(c.user_id).or_default().entry(c.seq).or_insert(Record {
            coupon_id: c.coupon_id,
            code: c.code,
            day: c.day,
            issued_at: c.issued_at,
            expires_at: c.expires_at,
            pending: false,
        });
    }
    Snapshot { holders }
}

#[derive(Clone)]
struct Collector {
    campaign: String,
    seen: Arc<Mutex<Vec<CouponIssued>>>,
}

impl Handler for Collector {
    async fn handle(&self, event: &Envelope) -> anyhow::Result<()> {
        if event.kind == COUPON_ISSUED {
            let Some(issued) = event.decode_or_skip::<CouponIssued>() else { return Ok(()) };
            if issued.campaign == self.campaign {
                self.seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(issued);
            }
        }
        Ok(())
    }
}
