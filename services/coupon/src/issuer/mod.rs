//! The per-event issuing workload (`ww serve coupon-issuer --campaign NAME`): answers
//! `POST /api/campaigns/{campaign}/issue` first come, first served, never overselling,
//! never issuing twice, never telling anyone "issued" before the issuance is durable.
//!
//! One request: what the person already holds (the replica's index of the log: a 409 with
//! their coupon at any time, also after sell-out, closing or the end); the window on the
//! one clock; a local sold-out flag answers the crowd after the last unit without touching
//! Redis; a bounded number of requests at a time go on (the rest get 429 at once); one
//! atomic engine step takes a unit; the `CouponIssued` event is published (acks=all)
//! before the 201. From the engine step on, the work runs to its end even if the client
//! goes away. If publishing certainly failed the unit is given back; if it may have
//! succeeded the unit stays the person's and is resolved by the issuer itself: the same
//! coupon is re-sent until durable ([`upkeep`]), or seen in the log ([`follow`]).

mod eligibility;
pub mod engine;
mod error;
mod follow;
pub mod http;
mod index;
mod rebuild;
mod redefine;
mod upkeep;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use campaign::Phase;
use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use platform::db::Database;
use platform::events::contracts::{COUPON_ISSUED, CouponIssued, topics};
use platform::events::{Envelope, EventBus};
use tokio::sync::{Semaphore, watch};
use uuid::Uuid;

use self::engine::{Engine, Record, Take, TakeRequest};
pub use self::error::IssueError;
use self::index::{Index, Known};
use crate::CampaignRef;
use crate::model::{Coupon, new_code};

pub use http::{IssuerState, router};

pub const SOURCE: &str = "coupon-issuer";

/// A local sold-out flag is trusted this long before one request re-checks Redis, so a
/// unit given back (a publish that certainly failed) is sold again, not stranded.
const SOLD_OUT_RECHECK: Duration = Duration::from_secs(1);

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
    /// Moves the one clock of every replica alike (rehearsals and tests only; never set
    /// in production). Not a flag: tests set it in code.
    #[arg(skip)]
    pub time_shift: Option<TimeDelta>,
}

impl Default for IssuerConfig {
    fn default() -> Self {
        Self {
            campaign: None,
            campaign_file: None,
            campaigns_dir: "config/samples".into(),
            issue_max_in_flight: 512,
            time_shift: None,
        }
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

/// The local sold-out flag: the campaign day it holds for, under which state epoch, and
/// when (ms since the issuer started) Redis last confirmed it.
struct SoldOut {
    day: AtomicI64,
    total: AtomicBool,
    generation: AtomicU64,
    checked_ms: AtomicI64,
    /// When the flag was last raised (ms since the issuer started).
    marked_ms: AtomicI64,
}

/// A read of the holders some index may not know yet ([`Engine::unsettled`]).
struct UnsettledRead {
    /// On the one clock.
    at: DateTime<Utc>,
    /// When the read was sent (ms since the issuer started).
    sent_ms: i64,
    users: HashSet<Uuid>,
}

/// The transition after which a read of the unsettled holders names everyone who may
/// hold a unit this replica's index does not know: no unit is taken after it.
#[derive(Debug, Clone, Copy)]
enum After {
    /// The local sold-out flag was raised at this many ms since start.
    SoldOut(i64),
    /// The window closed at this instant of the one clock.
    Closing(DateTime<Utc>),
}

/// Reads of the unsettled holders are reused this long.
const UNSETTLED_REUSE_MS: i64 = 5_000;

/// The issuer of one campaign.
pub struct Issuer {
    /// The rules in force: replaced when a newer definition of this campaign instance arrives
    /// ([`Issuer::redefine`]).
    campaign: Rules,
    engine: Engine,
    bus: EventBus,
    db: Database,
    permits: Arc<Semaphore>,
    started: Instant,
    sold_out: SoldOut,
    /// The engine state is known complete (false until rebuilt after a loss).
    ready: AtomicBool,
    /// The state store keeps what it is given (`maxmemory-policy noeviction`).
    store_ok: AtomicBool,
    rebuild: rebuild::Rebuilder,
    index: Index,
    /// The log of coupons was read to its end once (the index is complete).
    followed: Mutex<Option<watch::Receiver<bool>>>,
    unsettled: std::sync::RwLock<Option<Arc<UnsettledRead>>>,
    unsettled_read: tokio::sync::Mutex<()>,
    stop: watch::Receiver<bool>,
    /// Coupons whose event is durable, to be marked issued off the request path.
    confirms: tokio::sync::mpsc::UnboundedSender<(Uuid, u32, Uuid)>,
    /// Durable coupons (by id) whose pending mark has not flipped in the engine yet.
    unflushed: Arc<Mutex<HashSet<Uuid>>>,
    confirms_rx: Mutex<Option<tokio::sync::mpsc::UnboundedReceiver<(Uuid, u32, Uuid)>>>,
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
        config: &IssuerConfig,
        stop: watch::Receiver<bool>,
    ) -> Arc<Self> {
        let (confirms, confirms_rx) = tokio::sync::mpsc::unbounded_channel();
        Arc::new(Self {
            campaign: Arc::new(std::sync::RwLock::new(campaign)),
            engine,
            bus,
            db,
            permits: Arc::new(Semaphore::new(usize::try_from(config.issue_max_in_flight).unwrap_or(512))),
            started: Instant::now(),
            sold_out: SoldOut {
                day: AtomicI64::new(i64::MIN),
                total: AtomicBool::new(false),
                generation: AtomicU64::new(0),
                checked_ms: AtomicI64::new(0),
                marked_ms: AtomicI64::new(0),
            },
            ready: AtomicBool::new(false),
            store_ok: AtomicBool::new(true),
            rebuild: rebuild::Rebuilder::default(),
            index: Index::default(),
            followed: Mutex::new(None),
            unsettled: std::sync::RwLock::new(None),
            unsettled_read: tokio::sync::Mutex::new(()),
            stop,
            confirms,
            unflushed: Arc::default(),
            confirms_rx: Mutex::new(Some(confirms_rx)),
        })
    }

    /// The rules in force now.
    pub fn rules(&self) -> CampaignRef {
        current(&self.campaign)
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    /// Why this replica should not receive traffic, if it should not.
    pub fn not_ready_reason(&self) -> Option<&'static str> {
        if !self.is_ready() {
            Some("rebuilding state")
        } else if !self.store_ok.load(Ordering::SeqCst) {
            Some("Redis evicts keys (maxmemory-policy is not noeviction)")
        } else if !self.eligibility_caught_up() {
            Some("replaying the mission log")
        } else if !self.log_followed() {
            Some("reading the coupon log")
        } else {
            None
        }
    }

    /// The coupon log was read to the end it had at start (the index is complete).
    pub fn log_followed(&self) -> bool {
        self.followed.lock().unwrap_or_else(std::sync::PoisonError::into_inner).as_ref().is_some_and(|r| *r.borrow())
    }

    /// Starts following the mission and coupon logs and the state store, and makes sure
    /// the engine state is complete.
    pub async fn start(self: &Arc<Self>) -> anyhow::Result<()> {
        let confirms = self.confirms_rx.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        if let Some(rx) = confirms {
            tokio::spawn(confirm_loop(self.engine.clone(), rx, self.unflushed.clone()));
        }
        self.restart_eligibility().await;
        let name = format!("coupon-issuer.{}.definitions", self.rules().name());
        let definitions = redefine::Definitions { issuer: Arc::downgrade(self) };
        let _ = self.bus.spawn_replay(
            &name,
            &[platform::events::contracts::topics::CAMPAIGNS],
            definitions,
            self.stop.clone(),
        );
        let followed = follow::spawn(self);
        *self.followed.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(followed);
        tokio::spawn(self.clone().seed_at_openings());
        upkeep::spawn(self);
        let health = self.engine.probe().await?;
        self.store_ok.store(!health.evicting(), Ordering::SeqCst);
        if health.trusted {
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
            let now = self.engine.now();
            let rules = self.rules();
            let status = rules.status_at(now);
            if status.phase == Phase::Ended {
                return;
            }
            if status.phase == Phase::Open && self.is_ready() {
                let quota = &rules.spec().quota;
                match self.engine.seed(status.day, quota.daily_quantity, quota.total_quantity).await {
                    Ok(Some(stock)) => {
                        tracing::debug!(campaign = self.rules().name(), day = %status.day, stock, "stock seeded")
                    }
                    Ok(None) => {}
                    Err(e) => {
                        tracing::warn!(campaign = self.rules().name(), error = %e, "could not seed today's stock")
                    }
                }
            }
            // Wake at the next opening; re-check at least every five minutes (a rebuild
            // clears the stock key) and every second while the state is not ready.
            let until_opening = self
                .rules()
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
    pub async fn issue(self: &Arc<Self>, user: Uuid, idempotency_key: Option<&str>) -> Result<Outcome, IssueError> {
        let result = self.decide(user, idempotency_key).await;
        let label = match &result {
            Ok(Outcome::Issued(_)) => "issued",
            Ok(Outcome::AlreadyIssued(_)) => "already-issued",
            Err(e) => e.label(),
        };
        metrics::counter!("coupon_issue_total", "outcome" => label).increment(1);
        result
    }

    async fn decide(self: &Arc<Self>, user: Uuid, key: Option<&str>) -> Result<Outcome, IssueError> {
        let rules = self.rules();
        let spec = rules.spec();
        // What the person holds is theirs at any time: before the window, the flags or the
        // campaign's end are looked at.
        if let Known::Holds(seq, record) = self.index.lookup(user, key, spec.quota.per_user) {
            return Ok(Outcome::AlreadyIssued(self.coupon(user, seq, &record)));
        }
        let now = self.engine.now();
        if spec.suspend {
            // Suspended: nothing is issued until `suspend` is lifted (no opening to name).
            return Err(IssueError::NotOpen { opens_at: None, now });
        }
        let status = rules.status_at(now);
        // A refusal decided locally stands unless the person may hold a unit this
        // replica's index does not know yet (a publish under way or just done elsewhere):
        // then the engine answers, looking at what they hold first.
        let local = match status.phase {
            Phase::Open => self
                .sold_out_locally(status.day, now)
                .map(|refusal| (refusal, Some(After::SoldOut(self.sold_out.marked_ms.load(Ordering::Relaxed))))),
            Phase::Ended => Some((IssueError::Ended, self.last_closing(status.day, now).map(After::Closing))),
            Phase::Scheduled | Phase::Waiting | Phase::Closed => {
                Some((self.not_open(now), self.last_closing(status.day, now).map(After::Closing)))
            }
        };
        if let Some((refusal, after)) = local {
            // Nobody is refused from a state being rebuilt, or without knowing who may
            // hold an unsettled unit: those answers would be guesses.
            if after.is_some() && !self.is_ready() {
                return Err(IssueError::Rebuilding);
            }
            match after {
                Some(after) if self.may_hold(user, after).await? => {}
                _ => return Err(refusal),
            }
        }
        let permit = self.permits.clone().try_acquire_owned().map_err(|_| IssueError::Shed)?;
        if !self.is_ready() {
            self.trigger_rebuild();
            return Err(IssueError::Rebuilding);
        }
        if !self.store_ok.load(Ordering::Relaxed) {
            return Err(IssueError::BackendUnavailable);
        }
        // From here the work runs to its end even when the client goes away: a unit taken
        // is published and confirmed, or given back — never left to a dropped future.
        let this = self.clone();
        let key = key.map(str::to_owned);
        tokio::spawn(async move {
            let _permit = permit;
            this.take_and_publish(user, key.as_deref(), status.day).await
        })
        .await
        .map_err(|e| IssueError::Internal(e.to_string()))?
    }

    /// The local flag's answer, if it still holds (same day, same state epoch, confirmed
    /// by Redis within [`SOLD_OUT_RECHECK`]); past that one request goes on to re-check.
    fn sold_out_locally(&self, day: NaiveDate, now: DateTime<Utc>) -> Option<IssueError> {
        let flags = &self.sold_out;
        let total = flags.total.load(Ordering::Relaxed);
        if !total && flags.day.load(Ordering::Relaxed) != day_number(day) {
            return None;
        }
        if flags.generation.load(Ordering::Relaxed) != self.engine.generation() {
            return None;
        }
        let checked = flags.checked_ms.load(Ordering::Relaxed);
        let elapsed = self.elapsed_ms();
        if elapsed - checked >= SOLD_OUT_RECHECK.as_millis() as i64
            && flags.checked_ms.compare_exchange(checked, elapsed, Ordering::Relaxed, Ordering::Relaxed).is_ok()
        {
            return None;
        }
        Some(self.sold_out(now, total))
    }

    /// The latest closing at or before `now`, if any day of the campaign closed yet.
    fn last_closing(&self, day: NaiveDate, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let rules = self.rules();
        let schedule = &rules.spec().schedule;
        let day = day.min(schedule.end_date);
        [Some(day), day.pred_opt()]
            .into_iter()
            .flatten()
            .filter(|d| *d >= schedule.start_date)
            .map(|d| self.rules().closing(d))
            .find(|closing| *closing <= now)
    }

    /// Whether `user` may hold a unit no index knows yet, by a read of the unsettled
    /// holders sent after `after` (one read per transition and replica, reused for
    /// [`UNSETTLED_REUSE_MS`]). The state store unreachable: 503, not a guess.
    async fn may_hold(&self, user: Uuid, after: After) -> Result<bool, IssueError> {
        let usable = |read: &UnsettledRead| {
            let covers = match after {
                After::SoldOut(marked_ms) => read.sent_ms > marked_ms,
                After::Closing(t) => read.at >= t,
            };
            covers && self.elapsed_ms() - read.sent_ms < UNSETTLED_REUSE_MS
        };
        let cached = |this: &Self| this.unsettled.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        if let Some(read) = cached(self).filter(|r| usable(r)) {
            return Ok(read.users.contains(&user));
        }
        let _one_reader = self.unsettled_read.lock().await;
        if let Some(read) = cached(self).filter(|r| usable(r)) {
            return Ok(read.users.contains(&user));
        }
        let sent_ms = self.elapsed_ms();
        match self.engine.unsettled().await {
            Ok((at, users)) => {
                let holds = users.contains(&user);
                *self.unsettled.write().unwrap_or_else(std::sync::PoisonError::into_inner) =
                    Some(Arc::new(UnsettledRead { at, sent_ms, users }));
                Ok(holds)
            }
            Err(e) => Err(engine_down(e)),
        }
    }

    fn mark_sold_out(&self, day: NaiveDate, total: bool) {
        let flags = &self.sold_out;
        flags.marked_ms.store(self.elapsed_ms(), Ordering::Relaxed);
        flags.generation.store(self.engine.generation(), Ordering::Relaxed);
        flags.checked_ms.store(self.elapsed_ms(), Ordering::Relaxed);
        flags.day.store(day_number(day), Ordering::Relaxed);
        if total {
            flags.total.store(true, Ordering::Relaxed);
        }
    }

    /// Forgets the sold-out flags (the state was rebuilt: units may be back).
    fn clear_sold_out(&self) {
        self.sold_out.day.store(i64::MIN, Ordering::Relaxed);
        self.sold_out.total.store(false, Ordering::Relaxed);
    }

    fn elapsed_ms(&self) -> i64 {
        i64::try_from(self.started.elapsed().as_millis()).unwrap_or(i64::MAX)
    }

    async fn take_and_publish(
        self: &Arc<Self>,
        user: Uuid,
        key: Option<&str>,
        mut day: NaiveDate,
    ) -> Result<Outcome, IssueError> {
        let rules = self.rules();
        let spec = rules.spec();
        let code = new_code();
        let coupon_id = Uuid::now_v7();
        let (mut seeded, mut reread, mut confirmed_now, mut moved) = (false, false, false, false);
        loop {
            let request = TakeRequest {
                day,
                opens_at: self.rules().opening(day),
                closes_at: self.rules().closing(day),
                user,
                per_user: spec.quota.per_user,
                require_eligible: spec.eligibility.mission.needs_mission(),
                total_limit: spec.quota.total_quantity,
                idempotency_key: key,
                coupon_id,
                code: &code,
                validity: TimeDelta::days(i64::from(spec.coupon.validity_days)),
            };
            match self.engine.take(&request).await.map_err(engine_down)? {
                Take::Rebuild => return Err(self.lost_state()),
                Take::Outside { now } => {
                    // The one clock disagrees with this replica's estimate near a boundary:
                    // decide again on the one clock's time, once.
                    let status = self.rules().status_at(now);
                    match status.phase {
                        Phase::Open if !moved && status.day != day => {
                            moved = true;
                            day = status.day;
                        }
                        Phase::Ended => return Err(IssueError::Ended),
                        _ => return Err(self.not_open(now)),
                    }
                }
                Take::Unseeded if !seeded => {
                    seeded = true;
                    let stock = self
                        .engine
                        .seed(day, spec.quota.daily_quantity, spec.quota.total_quantity)
                        .await
                        .map_err(engine_down)?;
                    if stock.is_none() {
                        return Err(self.lost_state());
                    }
                }
                // Seeded, yet gone again: the state was lost in between.
                Take::Unseeded => return Err(self.lost_state()),
                Take::SoldOutToday => {
                    self.mark_sold_out(day, false);
                    return Err(self.sold_out(self.engine.now(), false));
                }
                Take::SoldOutTotal => {
                    self.mark_sold_out(day, true);
                    return Err(self.sold_out(self.engine.now(), true));
                }
                Take::NotEligible => return Err(IssueError::NotEligible),
                Take::Holds { seq, record, .. } if !record.pending => {
                    self.index.insert(user, seq, record.clone());
                    return Ok(Outcome::AlreadyIssued(self.coupon(user, seq, &record)));
                }
                Take::Holds { seq, record, .. } if self.is_unflushed(record.coupon_id) => {
                    // Durable; only its mark lags. Below the per-person limit this request
                    // may be for another coupon: flip the mark now and look again.
                    if seq < spec.quota.per_user && !confirmed_now {
                        confirmed_now = true;
                        self.engine.confirm(user, seq, record.coupon_id).await.map_err(engine_down)?;
                        continue;
                    }
                    return Ok(Outcome::AlreadyIssued(self.coupon(user, seq, &record)));
                }
                Take::Holds { record, now, .. } if now - record.issued_at < self.in_flight_limit() => {
                    if !reread {
                        // The mark may have flipped between our read and the local check.
                        reread = true;
                        continue;
                    }
                    return Err(IssueError::InProgress);
                }
                Take::Holds { seq, record, .. } => {
                    // An earlier attempt took the unit but its publish failed or was cut
                    // off, so the event may or may not be in the log: send the very same
                    // coupon again (the persister keeps one row).
                    return self.publish(user, seq, &record, false).await.map(Outcome::Issued);
                }
                Take::Taken { seq, record } => {
                    // A unit came back (a release, a rebuild): this replica's flag is stale.
                    if self.sold_out.day.load(Ordering::Relaxed) == day_number(day) {
                        self.clear_sold_out();
                    }
                    return self.publish(user, seq, &record, true).await.map(Outcome::Issued);
                }
            }
        }
    }

    /// Publishes the coupon's event; `fresh` when the unit was taken by this request (a
    /// certain failure gives it back), false for a re-send of an earlier attempt.
    async fn publish(&self, user: Uuid, seq: u32, record: &Record, fresh: bool) -> Result<Coupon, IssueError> {
        match self.send(user, seq, record).await {
            Ok(()) => {
                self.durable(user, seq, record);
                Ok(self.coupon(user, seq, record))
            }
            Err(e) if fresh && e.certainly_unpublished() => {
                tracing::error!(error = %e, %user, "issuance event not published; giving the unit back");
                match self.engine.release(user, seq, record).await {
                    Ok(true) => Err(IssueError::PublishFailed),
                    // Claimed by a resolver meanwhile, or the release did not go through:
                    // the unit stays the person's and is re-sent; nothing is promised.
                    Ok(false) => Err(IssueError::PublishUncertain),
                    Err(release) => {
                        tracing::error!(error = %release, %user, "could not give the unit back; the issuer re-sends it");
                        Err(IssueError::PublishUncertain)
                    }
                }
            }
            Err(e) => {
                tracing::error!(error = %e, %user, "issuance event may not be durable; the issuer resolves it");
                Err(IssueError::PublishUncertain)
            }
        }
    }

    async fn send(&self, user: Uuid, seq: u32, record: &Record) -> Result<(), platform::events::BusError> {
        let event = self.event(user, seq, record);
        let envelope = Envelope::new(COUPON_ISSUED, SOURCE, record.issued_at, &event)?;
        self.bus.publish(topics::COUPONS_ISSUED, &user.to_string(), &envelope).await
    }

    /// The event is durable: the answer does not wait for the pending mark to flip (if
    /// that is lost, the log follower or the resolver flips it).
    fn durable(&self, user: Uuid, seq: u32, record: &Record) {
        self.unflushed.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(record.coupon_id);
        self.index.insert(user, seq, record.clone());
        let _ = self.confirms.send((user, seq, record.coupon_id));
    }

    fn event(&self, user: Uuid, seq: u32, r: &Record) -> CouponIssued {
        let rules = self.rules();
        let spec = rules.spec();
        CouponIssued {
            coupon_id: r.coupon_id,
            code: r.code.clone(),
            campaign: self.rules().name().to_owned(),
            campaign_uid: self.rules().uid().to_owned(),
            user_id: user,
            seq,
            day: r.day,
            title: spec.coupon.title.clone(),
            benefit: spec.coupon.benefit.clone(),
            issued_at: r.issued_at,
            expires_at: r.expires_at,
            idempotency_key: r.idempotency_key.clone(),
        }
    }

    fn coupon(&self, user: Uuid, seq: u32, r: &Record) -> Coupon {
        Coupon::from_event(&self.event(user, seq, r), self.engine.now())
    }

    fn lost_state(self: &Arc<Self>) -> IssueError {
        self.ready.store(false, Ordering::SeqCst);
        self.trigger_rebuild();
        IssueError::Rebuilding
    }

    fn is_unflushed(&self, coupon_id: Uuid) -> bool {
        self.unflushed.lock().unwrap_or_else(std::sync::PoisonError::into_inner).contains(&coupon_id)
    }

    /// How long a pending coupon may belong to a publish still under way.
    fn in_flight_limit(&self) -> TimeDelta {
        TimeDelta::from_std(settle_time(&self.bus)).unwrap_or(TimeDelta::seconds(15))
    }

    fn not_open(&self, now: DateTime<Utc>) -> IssueError {
        IssueError::NotOpen { opens_at: self.rules().next_opening_after(now), now }
    }

    fn sold_out(&self, now: DateTime<Utc>, campaign_total: bool) -> IssueError {
        let next = if campaign_total { None } else { self.rules().next_opening_after(now) };
        IssueError::SoldOut { next, campaign_total }
    }
}

/// Marks coupons issued in batches; the multiplexed Redis connection pipelines them.
async fn confirm_loop(
    engine: Engine,
    mut rx: tokio::sync::mpsc::UnboundedReceiver<(Uuid, u32, Uuid)>,
    unflushed: Arc<Mutex<HashSet<Uuid>>>,
) {
    let mut batch = Vec::with_capacity(1024);
    while rx.recv_many(&mut batch, 1024).await > 0 {
        let results = futures::future::join_all(batch.drain(..).map(|(user, seq, coupon_id)| {
            let engine = engine.clone();
            async move { (user, coupon_id, engine.confirm(user, seq, coupon_id).await) }
        }))
        .await;
        let mut pending = unflushed.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for (user, coupon_id, result) in results {
            pending.remove(&coupon_id);
            if let Err(e) = result {
                tracing::warn!(error = %e, %user, %coupon_id, "could not mark coupon issued; the log follower will");
            }
        }
    }
}

/// Redis unreachable (or failing): nothing was taken; the client may retry.
fn engine_down(e: anyhow::Error) -> IssueError {
    tracing::error!(error = %format!("{e:#}"), "issuer engine unavailable");
    IssueError::BackendUnavailable
}

/// A campaign's rules, shared by its issuer and the handlers it starts; replaced whole when a
/// newer definition arrives.
pub(crate) type Rules = Arc<std::sync::RwLock<CampaignRef>>;

pub(crate) fn current(rules: &Rules) -> CampaignRef {
    rules.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
}

/// The issuers a process runs, by campaign name.
pub type Issuers = Arc<HashMap<String, Arc<Issuer>>>;

/// The longest a publish can take, plus a margin: after it, an event whose publish was
/// under way is in the log or never will be.
pub(crate) fn settle_time(bus: &EventBus) -> Duration {
    bus.max_publish_time() + Duration::from_millis(500)
}
