//! Restoring the engine state after it was lost (Redis flushed or restarted empty, or a
//! first start): the state is recomputed from what is durable — the coupon rows in the
//! database and the `coupons.issued` log, including its not-yet-persisted tail — and the
//! mission log is replayed for eligibility. Until the epoch key is written again every
//! engine step answers `Rebuild`, so nobody is answered from a partial state.
//!
//! Before reading the log the rebuild waits out the longest a publish can take: a unit
//! taken just before the loss has its event either in the log by then, or never (an event
//! that still lands later is adopted by the log follower). Where the database and the log
//! disagree on a (user, seq), the database row wins.
//!
//! One replica rebuilds under a short lease (renewed every second, released when it
//! finishes or the process is asked to stop): a crashed rebuilder costs seconds.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use platform::events::contracts::{COUPON_ISSUED, CouponIssued, topics};
use platform::events::{Envelope, Handler};
use tokio::sync::watch;
use uuid::Uuid;

use super::eligibility::Eligibility;
use super::engine::{LEASE, Record, Snapshot};
use super::follow::record_of;
use super::{Issuer, settle_time};
use crate::store;

const CATCH_UP_LIMIT: Duration = Duration::from_secs(300);

#[derive(Default)]
pub(super) struct Rebuilder {
    pub(super) running: AtomicBool,
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
                        tracing::error!(campaign = this.rules().name(), error = %format!("{e:#}"), "rebuild failed; retrying");
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
                self.opened();
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        // The lease is short and renewed while the rebuild runs.
        let renew = {
            let (engine, owner) = (self.engine.clone(), owner.clone());
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(LEASE / 5).await;
                    match engine.renew_rebuild(&owner).await {
                        Ok(true) => {}
                        // Lost: the apply checks the lease before writing and fails.
                        Ok(false) => return,
                        // A blip: try again on the next beat, well inside the lease.
                        Err(e) => tracing::warn!(error = %e, "could not renew the rebuild lease; retrying"),
                    }
                }
            })
        };
        let mut stop = self.stop.clone();
        let result = tokio::select! {
            r = self.rebuild_locked(&owner) => r,
            _ = stop.wait_for(|s| *s) => Err(anyhow::anyhow!("stopping: the rebuild lease is released for another replica")),
        };
        renew.abort();
        self.engine.unlock_rebuild(&owner).await?;
        result
    }

    /// The state is open under a (possibly new) epoch: flags derived from the old one go.
    fn opened(&self) {
        self.clear_sold_out();
        self.ready.store(true, Ordering::SeqCst);
    }

    pub(super) fn rebuild_running(&self) -> bool {
        self.rebuild.running.load(Ordering::SeqCst)
    }

    async fn rebuild_locked(self: &Arc<Self>, owner: &str) -> anyhow::Result<()> {
        if self.engine.is_ready().await? {
            self.opened();
            return Ok(());
        }
        let started = Instant::now();
        tracing::info!(
            campaign = self.rules().name(),
            "issuer state missing: rebuilding from the database and the log"
        );
        tokio::time::sleep(settle_time(&self.bus)).await;

        let rows = store::issued_in_campaign(&self.db.pool, &store::Instance::of(&self.rules())).await?;
        let from_db = rows.len();
        let snapshot = snapshot_of(rows, self.replay_issued().await?);
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

        // The epoch is written only while the lease is still ours, in one step.
        anyhow::ensure!(self.engine.mark_ready(owner).await?, "lost the rebuild lease before opening");
        self.opened();
        let holders = snapshot.holders.len();
        let took_ms = started.elapsed().as_millis() as u64;
        metrics::counter!("coupon_issuer_rebuilds_total").increment(1);
        if holders > 0 {
            tracing::warn!(
                campaign = self.rules().name(),
                holders,
                from_db,
                took_ms,
                "issuer state restored after a loss"
            );
        } else {
            tracing::info!(campaign = self.rules().name(), took_ms, "issuer state initialised");
        }
        Ok(())
    }

    /// Every `CouponIssued` of this campaign in the log.
    async fn replay_issued(&self) -> anyhow::Result<Vec<CouponIssued>> {
        let collector = Collector {
            campaign: self.rules().name().to_owned(),
            uid: self.rules().uid().to_owned(),
            seen: Arc::new(Mutex::new(Vec::new())),
        };
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
        let handler = Eligibility::new(self.campaign.clone(), self.engine.clone());
        let name = format!("coupon-issuer.{}.eligibility", self.rules().name());
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

/// The state implied by what is durable: the database's rows, then the log's events for
/// any (user, seq) the database does not have yet. Where both name a coupon for one
/// (user, seq), the row wins (the persister refused the other; nobody can hold it).
pub(super) fn snapshot_of(rows: Vec<CouponIssued>, log: Vec<CouponIssued>) -> Snapshot {
    let mut holders: HashMap<Uuid, BTreeMap<u32, Record>> = HashMap::new();
    for c in &rows {
        holders.entry(c.user_id).or_default().insert(c.seq, record_of(c));
    }
    let mut log = log;
    // Among log events for one vacant (user, seq), the earliest stands.
    log.sort_by_key(|c| (c.issued_at, c.coupon_id));
    for c in &log {
        holders.entry(c.user_id).or_default().entry(c.seq).or_insert_with(|| record_of(c));
    }
    Snapshot { holders }
}

#[derive(Clone)]
struct Collector {
    campaign: String,
    uid: String,
    seen: Arc<Mutex<Vec<CouponIssued>>>,
}

impl Handler for Collector {
    async fn handle(&self, event: &Envelope) -> anyhow::Result<()> {
        if event.kind == COUPON_ISSUED {
            let Some(issued) = event.decode_or_skip::<CouponIssued>() else { return Ok(()) };
            if issued.campaign == self.campaign && issued.campaign_uid == self.uid {
                self.seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(issued);
            }
        }
        Ok(())
    }
}
