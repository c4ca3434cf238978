//! The per-event issuing workload (`ww serve coupon-issuer --campaign NAME`): answers
//! `POST /api/campaigns/{campaign}/issue` first come, first served, never overselling,
//! never issuing twice, never telling anyone "issued" before the issuance is durable.
//!
//! One request: the schedule says whether the window is open (pure rules, the issuer's
//! clock); a local sold-out flag answers the crowd after the last unit without touching
//! Redis; a bounded number of requests at a time go on (the rest get 429 at once); one
//! atomic engine step takes a unit; the `CouponIssued` event is published (acks=all)
//! before the 201. If publishing certainly failed the unit is given back; if it may
//! have succeeded the unit stays taken and the person's retry re-sends the same coupon.

mod eligibility;
pub mod engine;
pub mod http;
mod rebuild;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use campaign::{Campaign, Phase};
use chrono::{DateTime, NaiveDate, Utc};
use platform::ApiError;
use platform::clock::Clock;
use platform::db::Database;
use platform::events::contracts::{COUPON_ISSUED, CouponIssued, topics};
use platform::events::{Envelope, EventBus};
use tokio::sync::{Semaphore, watch};
use uuid::Uuid;

use self::engine::{Engine, Record, Take, TakeRequest};
use crate::CampaignRef;
use crate::model::{Coupon, new_code};

pub use http::{IssuerState, router};

pub const SOURCE: &str = "coupon-issuer";

/// Settings of the issuing workload.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Coupon issuer")]
pub struct IssuerConfig {
    /// The campaign this issuer serves (its `metadata.name`).
    #[arg(long, env = "WW_CAMPAIGN")]
    pub campaign: Option<String>,
    /// A CouponCampaign YAML file holding the campaign's rules.
    #[arg(long, env = "WW_CAMPAIGN_FILE")]
    pub campaign_file: Option<std::path::PathBuf>,
    /// A folder of CouponCampaign YAML files (used when no file is given).
    #[arg(long, env = "WW_CAMPAIGNS_DIR", default_value = "config/samples")]
    pub campaigns_dir: std::path::PathBuf,
    /// Issue requests handled at once per campaign; beyond it requests get 429 at once.
    #[arg(long, env = "WW_ISSUE_MAX_IN_FLIGHT", default_value_t = 512, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub issue_max_in_flight: u64,
}

impl Default for IssuerConfig {
    fn default() -> Self {
        Self { campaign: None, campaign_file: None, campaigns_dir: "config/samples".into(), issue_max_in_flight: 512 }
    }
}

/// What an issue request ended in.
#[derive(Debug)]
pub enum Outcome {
    /// A new coupon, durable in the log.
    Issued(Coupon),
    /// The person already has their coupon(s); this is (the latest of) it.
    AlreadyIssued(Coupon),
}

/// The issuer of one campaign.
pub struct Issuer {
    campaign: CampaignRef,
    engine: Engine,
    bus: EventBus,
    db: Database,
    clock: Clock,
    permits: Arc<Semaphore>,
    /// The campaign-local day (days since CE) found sold out, or `i64::MIN`.
    sold_out_day: AtomicI64,
    sold_out_total: AtomicBool,
    /// The engine state is known complete (false until rebuilt after a loss).
    ready: AtomicBool,
    rebuild: rebuild::Rebuilder,
    stop: watch::Receiver<bool>,
    /// Coupons whose event is durable, to be marked issued off the request path.
    confirms: tokio::sync::mpsc::UnboundedSender<(Uuid, u32)>,
    /// Durable coupons whose pending mark has not flipped in the engine yet.
    unflushed: Arc<std::sync::Mutex<std::collections::HashSet<(Uuid, u32)>>>,
    confirms_rx: std::sync::Mutex<Option<tokio::sync::mpsc::UnboundedReceiver<(Uuid, u32)>>>,
}

fn day_number(day: NaiveDate) -> i64 {
    i64::from(chrono::Datelike::num_days_from_ce(&day))
}

impl Issuer {
    pub fn new(
        campaign: CampaignRef,
        engine: Engine,
        bus: EventBus,
        db: Database,
        clock: Clock,
        config: &IssuerConfig,
        stop: watch::Receiver<bool>,
    ) -> Arc<Self> {
        let (confirms, confirms_rx) = tokio::sync::mpsc::unbounded_channel();
        Arc::new(Self {
            campaign,
            engine,
            bus,
            db,
            clock,
            permits: Arc::new(Semaphore::new(usize::try_from(config.issue_max_in_flight).unwrap_or(512))),
            sold_out_day: AtomicI64::new(i64::MIN),
            sold_out_total: AtomicBool::new(false),
            ready: AtomicBool::new(false),
            rebuild: rebuild::Rebuilder::default(),
            stop,
            confirms,
            unflushed: Arc::default(),
            confirms_rx: std::sync::Mutex::new(Some(confirms_rx)),
        })
    }

    pub fn campaign(&self) -> &Campaign {
        &self.campaign
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    /// Starts following the mission log and makes sure the engine state is complete.
    pub async fn start(self: &Arc<Self>) -> anyhow::Result<()> {
        let confirms = self.confirms_rx.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        if let Some(rx) = confirms {
            tokio::spawn(confirm_loop(self.engine.clone(), rx, self.unflushed.clone()));
        }
        self.restart_eligibility().await;
        tokio::spawn(self.clone().seed_at_openings());
        if self.engine.is_ready().await? {
            self.ready.store(true, Ordering::SeqCst);
        } else {
            self.trigger_rebuild();
        }
        Ok(())
    }

    /// Seeds each day's stock at its opening (pre-warm), so the first request of the
    /// crowd and the live counters find it; requests seed lazily too, idempotently.
    async fn seed_at_openings(self: Arc<Self>) {
        let mut stop = self.stop.clone();
        loop {
            let now = self.clock.now();
            let status = self.campaign.status_at(now);
            if status.phase == Phase::Ended {
                return;
            }
            if status.phase == Phase::Open && self.is_ready() {
                let quota = &self.campaign.spec().quota;
                match self.engine.seed(status.day, quota.daily_quantity, quota.total_quantity).await {
                    Ok(Some(stock)) => {
                        tracing::debug!(campaign = self.campaign.name(), day = %status.day, stock, "stock seeded")
                    }
                    Ok(None) => {}
                    Err(e) => {
                        tracing::warn!(campaign = self.campaign.name(), error = %e, "could not seed today's stock")
                    }
                }
            }
            // Wake at the next opening; re-check at least every five minutes (a rebuild
            // clears the stock key) and every second while the state is not ready.
            let until_opening = self
                .campaign
                .next_opening_after(now)
                .and_then(|t| (t - now).to_std().ok())
                .unwrap_or(Duration::from_secs(300));
            let wait =
                if self.is_ready() { until_opening.min(Duration::from_secs(300)) } else { Duration::from_secs(1) };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    }

    /// Handles one request of `user`.
    pub async fn issue(self: &Arc<Self>, user: Uuid, idempotency_key: Option<&str>) -> Result<Outcome, ApiError> {
        let now = self.clock.now();
        let status = self.campaign.status_at(now);
        match status.phase {
            Phase::Open => {}
            Phase::Ended => {
                return Err(ApiError::new(axum::http::StatusCode::GONE, "campaign-ended", "This campaign has ended."));
            }
            Phase::Scheduled | Phase::Waiting | Phase::Closed => return Err(self.not_open(now)),
        }
        let day = status.day;
        if self.sold_out_total.load(Ordering::Relaxed) {
            return Err(self.sold_out(now, true));
        }
        if self.sold_out_day.load(Ordering::Relaxed) == day_number(day) {
            metrics::counter!("coupon_issue_total", "outcome" => "sold-out-local").increment(1);
            return Err(self.sold_out(now, false));
        }
        let Ok(_permit) = self.permits.clone().try_acquire_owned() else {
            metrics::counter!("coupon_issue_total", "outcome" => "shed").increment(1);
            return Err(ApiError::too_many_requests(
                "overloaded",
                "Too many requests for this campaign right now; retry in a moment.",
                1,
            ));
        };
        if !self.is_ready() {
            self.trigger_rebuild();
            return Err(rebuilding());
        }
        let spec = self.campaign.spec();
        let candidate = Record {
            coupon_id: Uuid::now_v7(),
            code: new_code(),
            day,
            issued_at: now,
            expires_at: self.campaign.coupon_expiry(now),
            pending: true,
        };
        let request = TakeRequest {
            day,
            user,
            per_user: spec.quota.per_user,
            require_eligible: spec.eligibility.mission == campaign::MissionRequirement::VerifiedSameDay,
            total_limit: spec.quota.total_quantity,
            idempotency_key,
            candidate,
        };
        let mut seeded = false;
        let mut reread = false;
        let mut confirmed_now = false;
        loop {
            let take = self.engine.take(&request).await.map_err(engine_down)?;
            let label = match &take {
                Take::Taken { .. } => "issued",
                Take::Holds { .. } => "already-issued",
                Take::NotEligible => "not-eligible",
                Take::SoldOutToday | Take::SoldOutTotal => "sold-out",
                Take::Rebuild => "rebuilding",
                Take::Unseeded => "unseeded",
            };
            metrics::counter!("coupon_issue_total", "outcome" => label).increment(1);
            match take {
                Take::Unseeded if !seeded => {
                    seeded = true;
                    if self
                        .engine
                        .seed(day, spec.quota.daily_quantity, spec.quota.total_quantity)
                        .await
                        .map_err(engine_down)?
                        .is_none()
                    {
                        return Err(self.lost_state());
                    }
                }
                // Seeded, yet gone again: the state was lost in between.
                Take::Unseeded | Take::Rebuild => return Err(self.lost_state()),
                Take::SoldOutToday => {
                    self.sold_out_day.store(day_number(day), Ordering::Relaxed);
                    return Err(self.sold_out(now, false));
                }
                Take::SoldOutTotal => {
                    self.sold_out_total.store(true, Ordering::Relaxed);
                    return Err(self.sold_out(now, true));
                }
                Take::NotEligible => {
                    return Err(ApiError::forbidden(
                        "not-eligible",
                        "Verify today's mission first: this campaign is for people who completed it today.",
                    ));
                }
                Take::Holds { seq, record } if record.pending && self.is_unflushed(user, seq) => {
                    // Durable; only its mark lags. Below the per-person limit this request
                    // may be for another coupon: flip the mark now and look again.
                    if seq < spec.quota.per_user && !confirmed_now {
                        confirmed_now = true;
                        self.engine.confirm(user, seq).await.map_err(engine_down)?;
                        continue;
                    }
                    return Ok(Outcome::AlreadyIssued(self.coupon(user, seq, &record)));
                }
                Take::Holds { record, .. }
                    if record.pending && !reread && now - record.issued_at < self.in_flight_limit() =>
                {
                    // The mark may have flipped between our read and the local check.
                    reread = true;
                }
                Take::Holds { record, .. } if record.pending && now - record.issued_at < self.in_flight_limit() => {
                    // Another request of this person is publishing this coupon right now.
                    return Err(ApiError::unavailable(
                        "issue-in-progress",
                        "Your coupon is being issued by another request; retry in a moment to receive it.",
                        1,
                    ));
                }
                Take::Holds { seq, record } if record.pending => {
                    // An earlier attempt took the unit but its publish failed or was cut
                    // off, so the event may or may not be in the log: send the very same
                    // coupon again (the persister keeps one row).
                    return self.publish(user, seq, &record, idempotency_key, false).await.map(Outcome::Issued);
                }
                Take::Holds { seq, record } => return Ok(Outcome::AlreadyIssued(self.coupon(user, seq, &record))),
                Take::Taken { seq } => {
                    return self
                        .publish(user, seq, &request.candidate, idempotency_key, true)
                        .await
                        .map(Outcome::Issued);
                }
            }
        }
    }

    async fn publish(
        &self,
        user: Uuid,
        seq: u32,
        record: &Record,
        key: Option<&str>,
        fresh: bool,
    ) -> Result<Coupon, ApiError> {
        let event = self.event(user, seq, record);
        let envelope = Envelope::new(COUPON_ISSUED, SOURCE, record.issued_at, &event).map_err(ApiError::internal)?;
        match self.bus.publish(topics::COUPONS_ISSUED, &user.to_string(), &envelope).await {
            Ok(()) => {
                // The event is durable: the answer does not wait for the pending mark to
                // flip (if that is lost, a later retry only re-sends the same coupon).
                self.unflushed.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert((user, seq));
                let _ = self.confirms.send((user, seq));
                Ok(self.coupon(user, seq, record))
            }
            Err(e) if fresh && e.certainly_unpublished() => {
                tracing::error!(error = %e, %user, "issuance event not published; giving the unit back");
                if let Err(release) = self.engine.release(record.day, user, seq, key).await {
                    tracing::error!(error = %release, %user, "could not give the unit back; it stays held for this person");
                }
                Err(ApiError::unavailable(
                    "issue-failed",
                    "The coupon could not be issued; nothing was taken. Retry in a moment.",
                    1,
                ))
            }
            Err(e) => {
                tracing::error!(error = %e, %user, "issuance event may not be durable; the unit stays held");
                Err(ApiError::unavailable(
                    "issue-pending",
                    "Your coupon is reserved but not confirmed yet; retry and you will get this same coupon.",
                    1,
                ))
            }
        }
    }

    fn event(&self, user: Uuid, seq: u32, r: &Record) -> CouponIssued {
        let spec = self.campaign.spec();
        CouponIssued {
            coupon_id: r.coupon_id,
            code: r.code.clone(),
            campaign: self.campaign.name().to_owned(),
            user_id: user,
            seq,
            day: r.day,
            title: spec.coupon.title.clone(),
            benefit: spec.coupon.benefit.clone(),
            issued_at: r.issued_at,
            expires_at: r.expires_at,
        }
    }

    fn coupon(&self, user: Uuid, seq: u32, r: &Record) -> Coupon {
        Coupon::from_event(&self.event(user, seq, r), self.clock.now())
    }

    fn lost_state(self: &Arc<Self>) -> ApiError {
        self.ready.store(false, Ordering::SeqCst);
        self.trigger_rebuild();
        rebuilding()
    }

    fn is_unflushed(&self, user: Uuid, seq: u32) -> bool {
        self.unflushed.lock().unwrap_or_else(std::sync::PoisonError::into_inner).contains(&(user, seq))
    }

    /// How long a pending coupon may belong to a publish still under way.
    fn in_flight_limit(&self) -> chrono::TimeDelta {
        chrono::TimeDelta::from_std(settle_time(&self.bus)).unwrap_or(chrono::TimeDelta::seconds(15))
    }

    fn not_open(&self, now: DateTime<Utc>) -> ApiError {
        let opens = self.campaign.next_opening_after(now);
        let wait = opens.map_or(60, |t| u64::try_from((t - now).num_seconds()).unwrap_or(0).max(1));
        let mut err =
            ApiError::new(axum::http::StatusCode::TOO_EARLY, "not-open", "The campaign is not open right now.")
                .retry_after(wait);
        if let Some(t) = opens {
            err = err.with("opensAt", t.to_rfc3339());
        }
        err
    }

    fn sold_out(&self, now: DateTime<Utc>, campaign_total: bool) -> ApiError {
        let next = if campaign_total { None } else { self.campaign.next_opening_after(now) };
        let detail = match (campaign_total, next) {
            (true, _) => "Every coupon of this campaign has been given out.".to_owned(),
            (false, Some(t)) => format!("Today's coupons are gone. The next opening is at {}.", t.to_rfc3339()),
            (false, None) => "Today's coupons are gone, and this was the last day.".to_owned(),
        };
        ApiError::new(axum::http::StatusCode::GONE, "sold-out", detail)
            .with("nextOpening", next.map(|t| t.to_rfc3339()))
            .with("hint", "If you already received a coupon, it is in GET /api/coupons/me.")
    }
}

/// Marks coupons issued in batches; the multiplexed Redis connection pipelines them.
async fn confirm_loop(
    engine: Engine,
    mut rx: tokio::sync::mpsc::UnboundedReceiver<(Uuid, u32)>,
    unflushed: Arc<std::sync::Mutex<std::collections::HashSet<(Uuid, u32)>>>,
) {
    let mut batch = Vec::with_capacity(1024);
    while rx.recv_many(&mut batch, 1024).await > 0 {
        let results = futures::future::join_all(batch.drain(..).map(|(user, seq)| {
            let engine = engine.clone();
            async move { (user, seq, engine.confirm(user, seq).await) }
        }))
        .await;
        let mut pending = unflushed.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for (user, seq, result) in results {
            pending.remove(&(user, seq));
            if let Err(e) = result {
                tracing::warn!(error = %e, %user, seq, "could not mark coupon issued; a retry will re-send it");
            }
        }
    }
}

/// Redis unreachable (or failing): nothing was taken; the client may retry.
fn engine_down(e: anyhow::Error) -> ApiError {
    metrics::counter!("coupon_issue_total", "outcome" => "engine-unavailable").increment(1);
    tracing::error!(error = %format!("{e:#}"), "issuer engine unavailable");
    ApiError::unavailable(
        "backend-unavailable",
        "The issuer cannot reach its state store right now; retry in a moment.",
        1,
    )
}

fn rebuilding() -> ApiError {
    ApiError::unavailable("rebuilding", "The issuer is restoring its state; retry in a moment.", 1)
}

/// The issuers a process runs, by campaign name.
pub type Issuers = Arc<HashMap<String, Arc<Issuer>>>;

pub(crate) fn settle_time(bus: &EventBus) -> Duration {
    bus.max_publish_time() + Duration::from_millis(500)
}
