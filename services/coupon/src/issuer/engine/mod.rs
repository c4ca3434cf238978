//! The issuer's shared state and its atomic steps, in Redis (one Lua script per step,
//! keys hash-tagged by campaign so a Redis Cluster keeps them on one slot) or in memory
//! for the embedded mode — the same answers either way (one contract test runs both):
//!
//! - `take`: what the person already holds, the opening window on the one clock,
//!   eligibility, the day's stock and the campaign total; takes one unit and records the
//!   coupon as *pending* — all in one step.
//! - `confirm`: the event of exactly this coupon is durable; the coupon is *issued*.
//! - `release`: the event of exactly this coupon certainly never reached the log; the
//!   unit goes back.
//! - `adopt`: a coupon seen in the log that the state lacks (an event that landed after a
//!   rebuild) is taken in and counted; a different coupon under the same (user, seq) is
//!   reported so the database row can win.
//! - `claim_stale`: pending coupons older than the longest publish, leased to one replica
//!   to re-send.
//! - `seed`: the day's stock, set once.
//!
//! **Epoch.** Every step carries the epoch this replica knows. The state is trusted only
//! when its epoch key exists and names the server process answering (`run_id`): a Redis
//! restarted from an older snapshot or a promoted replica that missed writes keeps an
//! epoch, but not one of its own, so it is rebuilt like an empty one. An epoch other than
//! the one the replica knew means another replica rebuilt the state: the replica adopts
//! it and bumps its [`Engine::generation`], so flags it derived from the old state go.
//!
//! **One clock.** The window, the campaign day and `issued_at` are decided on the state's
//! clock (Redis `TIME`, inside the scripts), never on a replica's own. Replicas estimate
//! their offset to it every second ([`Engine::probe`]) for the checks they make locally.

mod memory;
mod record;
mod redis;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use platform::clock::Clock;
use uuid::Uuid;

pub use self::memory::MemoryState;
pub use self::record::Record;
use self::redis::RedisEngine;

pub struct TakeRequest<'a> {
    /// The campaign day the replica believes it is, and that day's window.
    pub day: NaiveDate,
    pub opens_at: DateTime<Utc>,
    pub closes_at: DateTime<Utc>,
    pub user: Uuid,
    pub per_user: u32,
    pub require_eligible: bool,
    pub total_limit: Option<u64>,
    pub idempotency_key: Option<&'a str>,
    /// The coupon to record if a unit is taken (its times come from the one clock).
    pub coupon_id: Uuid,
    pub code: &'a str,
    pub validity: TimeDelta,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Take {
    /// State lost or not trusted; rebuild before answering.
    Rebuild,
    /// On the one clock it is `now`, outside the window the request was made for.
    Outside {
        now: DateTime<Utc>,
    },
    /// The day's stock has not been seeded yet.
    Unseeded,
    SoldOutToday,
    SoldOutTotal,
    NotEligible,
    /// The person already holds their limit, used this idempotency key, or their latest
    /// coupon is still pending: that coupon, and the one clock's time.
    Holds {
        seq: u32,
        record: Record,
        now: DateTime<Utc>,
    },
    Taken {
        seq: u32,
        record: Record,
    },
}

/// What [`Engine::adopt`] did with a coupon seen durable in the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Adopt {
    /// The state had it (issued).
    Known,
    /// The state had it pending; it is issued now.
    Confirmed,
    /// The state lacked it; it is counted now.
    Adopted,
    /// Counted, but the day's stock was already gone: a unit was sold twice.
    Oversold,
    /// Another coupon holds that (user, seq).
    Conflict(Record),
    Rebuild,
}

/// A pending coupon handed to one replica to resolve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Claim {
    pub user: Uuid,
    pub seq: u32,
    pub coupon_id: Uuid,
}

impl Claim {
    fn member(&self) -> String {
        format!("{}:{}:{}", self.user, self.seq, self.coupon_id)
    }

    fn parse(member: &str) -> Option<Self> {
        let mut parts = member.split(':');
        let claim = Claim {
            user: Uuid::parse_str(parts.next()?).ok()?,
            seq: parts.next()?.parse().ok()?,
            coupon_id: Uuid::parse_str(parts.next()?).ok()?,
        };
        parts.next().is_none().then_some(claim)
    }
}

/// What the state store says of itself ([`Engine::probe`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    /// The state exists and belongs to the server process answering.
    pub trusted: bool,
    /// `maxmemory-policy`; anything but `noeviction` can silently drop taken units.
    pub eviction_policy: String,
}

impl Health {
    pub fn evicting(&self) -> bool {
        self.eviction_policy != "noeviction"
    }
}

/// Live counters of one campaign day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DayCounters {
    pub issued_today: i64,
    /// `None` until the day's stock is seeded at its opening.
    pub remaining_today: Option<i64>,
    pub issued_total: i64,
}

/// Everything the issuer state must contain, rebuilt from the log and the database.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Per person: their coupons by seq.
    pub holders: HashMap<Uuid, BTreeMap<u32, Record>>,
}

impl Snapshot {
    pub(crate) fn issued_per_day(&self) -> HashMap<NaiveDate, i64> {
        let mut days = HashMap::new();
        for coupons in self.holders.values() {
            for r in coupons.values() {
                *days.entry(r.day).or_default() += 1;
            }
        }
        days
    }

    pub(crate) fn total(&self) -> i64 {
        self.holders.values().map(|c| c.len() as i64).sum()
    }
}

/// Day keys outlive their day by this much (yesterday's counters stay readable).
pub(crate) const DAY_TTL_SECONDS: u64 = 3 * 86_400;

/// How long an issued coupon's holder stays "unsettled" (possibly unknown to an index
/// that follows the log): far above any follower lag.
pub const UNSETTLED_GRACE: Duration = Duration::from_secs(60);

/// How long the rebuild lease lasts unless renewed: a crashed rebuilder costs this much.
pub const LEASE: Duration = Duration::from_secs(5);

/// A step's answer before the epoch is settled (the backends' common vocabulary).
pub(crate) enum Guarded<T> {
    Rebuild,
    Stale(String),
    Done(T),
}

enum Backend {
    Redis(RedisEngine),
    Memory(Mutex<MemoryState>),
}

struct Inner {
    backend: Backend,
    /// The epoch this replica works under ('' until known).
    epoch: RwLock<String>,
    generation: AtomicU64,
    /// The replica's own clock; the one clock is it plus `offset_ms`.
    clock: Clock,
    offset_ms: AtomicI64,
    /// Smallest probe round trip seen lately, and when: offsets are taken from good samples.
    best_rtt: Mutex<Option<(Duration, Instant)>>,
    /// Added to the one clock by every replica alike (rehearsals and tests).
    shift_ms: i64,
}

#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

impl Engine {
    /// The state of `campaign` in Redis, under `prefix`.
    pub fn redis(conn: ::redis::aio::ConnectionManager, prefix: &str, campaign: &str, clock: Clock) -> Self {
        Self::with(Backend::Redis(RedisEngine::new(conn, prefix, campaign)), clock, 0)
    }

    /// The state in this process (the embedded mode): its clock is `clock`.
    pub fn memory(clock: Clock) -> Self {
        Self::with(Backend::Memory(Mutex::new(MemoryState::new(clock.clone()))), clock, 0)
    }

    /// The same engine with the one clock moved by `shift` for every step (every replica
    /// of a rehearsal must be given the same shift).
    pub fn shifted(self, shift: TimeDelta) -> Self {
        let inner = Arc::into_inner(self.inner).expect("shift an engine before sharing it");
        let backend = match inner.backend {
            Backend::Memory(m) => {
                let mut state = m.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner);
                state.shift = shift;
                Backend::Memory(Mutex::new(state))
            }
            redis @ Backend::Redis(_) => redis,
        };
        Self::with(backend, inner.clock, shift.num_milliseconds())
    }

    fn with(backend: Backend, clock: Clock, shift_ms: i64) -> Self {
        Self {
            inner: Arc::new(Inner {
                backend,
                epoch: RwLock::new(String::new()),
                generation: AtomicU64::new(0),
                clock,
                offset_ms: AtomicI64::new(shift_ms),
                best_rtt: Mutex::new(None),
                shift_ms,
            }),
        }
    }

    /// The one clock, as well as this replica knows it (its own clock plus the measured
    /// offset). Exact decisions are taken inside the steps.
    pub fn now(&self) -> DateTime<Utc> {
        self.inner.clock.now() + TimeDelta::milliseconds(self.inner.offset_ms.load(Ordering::Relaxed))
    }

    /// The one clock as the scripts take it: Redis `TIME` plus the shift, or — under a
    /// test's manual clock — that clock's time, so fake-clock tests run on both engines.
    fn clock_arg(&self) -> String {
        match &self.inner.clock {
            Clock::Manual(_) => format!("={}", self.inner.clock.now_millis() + self.inner.shift_ms),
            Clock::System | Clock::Skewed(_) => self.inner.shift_ms.to_string(),
        }
    }

    /// Changes whenever the replica moved to another epoch of the state.
    pub fn generation(&self) -> u64 {
        self.inner.generation.load(Ordering::SeqCst)
    }

    fn epoch(&self) -> String {
        self.inner.epoch.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    fn adopt_epoch(&self, epoch: &str) {
        let mut current = self.inner.epoch.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        if *current != epoch {
            *current = epoch.to_owned();
            self.inner.generation.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Runs `step` under the known epoch; when another replica moved the state to a new
    /// epoch, adopts it and runs the step again.
    async fn guarded<T, F, Fut>(&self, step: F) -> anyhow::Result<Option<T>>
    where
        F: Fn(String) -> Fut,
        Fut: Future<Output = anyhow::Result<Guarded<T>>>,
    {
        for _ in 0..3 {
            match step(self.epoch()).await? {
                Guarded::Done(value) => return Ok(Some(value)),
                Guarded::Rebuild => return Ok(None),
                Guarded::Stale(epoch) => self.adopt_epoch(&epoch),
            }
        }
        anyhow::bail!("the state's epoch keeps changing")
    }

    fn mem(&self) -> Option<std::sync::MutexGuard<'_, MemoryState>> {
        match &self.inner.backend {
            Backend::Memory(m) => Some(m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)),
            Backend::Redis(_) => None,
        }
    }

    pub async fn take(&self, req: &TakeRequest<'_>) -> anyhow::Result<Take> {
        let taken = self
            .guarded(|epoch| async move {
                match &self.inner.backend {
                    Backend::Redis(r) => r.take(&epoch, &self.clock_arg(), req).await,
                    Backend::Memory(_) => Ok(self.mem().map_or(Guarded::Rebuild, |mut m| m.take(&epoch, req))),
                }
            })
            .await?;
        Ok(taken.unwrap_or(Take::Rebuild))
    }

    /// Marks exactly `coupon_id` issued; false when the state holds something else there.
    pub async fn confirm(&self, user: Uuid, seq: u32, coupon_id: Uuid) -> anyhow::Result<bool> {
        let epoch = self.epoch();
        match &self.inner.backend {
            Backend::Redis(r) => r.confirm(&epoch, &self.clock_arg(), user, seq, coupon_id).await,
            Backend::Memory(_) => Ok(self.mem().is_some_and(|mut m| m.confirm(&epoch, user, seq, coupon_id))),
        }
    }

    /// Gives exactly `record`'s unit back; false when it is not pending there any more.
    pub async fn release(&self, user: Uuid, seq: u32, record: &Record) -> anyhow::Result<bool> {
        let epoch = self.epoch();
        match &self.inner.backend {
            Backend::Redis(r) => r.release(&epoch, &self.clock_arg(), user, seq, record).await,
            Backend::Memory(_) => Ok(self.mem().is_some_and(|mut m| m.release(&epoch, user, seq, record))),
        }
    }

    /// Seeds the day's stock once; `None` when the state must be rebuilt first.
    pub async fn seed(&self, day: NaiveDate, daily: u32, total_limit: Option<u64>) -> anyhow::Result<Option<i64>> {
        self.guarded(|epoch| async move {
            match &self.inner.backend {
                Backend::Redis(r) => r.seed(&epoch, day, daily, total_limit).await,
                Backend::Memory(_) => {
                    Ok(self.mem().map_or(Guarded::Rebuild, |mut m| m.seed(&epoch, day, daily, total_limit)))
                }
            }
        })
        .await
        .map(Option::flatten)
    }

    /// Takes in a coupon seen durable in the log (see [`Adopt`]).
    pub async fn adopt(&self, user: Uuid, seq: u32, record: &Record) -> anyhow::Result<Adopt> {
        let adopted = self
            .guarded(|epoch| async move {
                match &self.inner.backend {
                    Backend::Redis(r) => r.adopt(&epoch, &self.clock_arg(), user, seq, record).await,
                    Backend::Memory(_) => {
                        Ok(self.mem().map_or(Guarded::Rebuild, |mut m| m.adopt(&epoch, user, seq, record)))
                    }
                }
            })
            .await?;
        Ok(adopted.unwrap_or(Adopt::Rebuild))
    }

    /// Puts `record` (the database's coupon) under (user, seq) in place of another one.
    pub async fn replace(&self, user: Uuid, seq: u32, record: &Record) -> anyhow::Result<bool> {
        let replaced = self
            .guarded(|epoch| async move {
                match &self.inner.backend {
                    Backend::Redis(r) => r.replace(&epoch, user, seq, record).await,
                    Backend::Memory(_) => {
                        Ok(self.mem().map_or(Guarded::Rebuild, |mut m| m.replace(&epoch, user, seq, record)))
                    }
                }
            })
            .await?;
        Ok(replaced.is_some())
    }

    /// Pending coupons older than `older_than` on the one clock, at most `max`, each
    /// leased to this replica for another `older_than`.
    pub async fn claim_stale(&self, older_than: Duration, max: usize) -> anyhow::Result<Vec<Claim>> {
        let older_ms = i64::try_from(older_than.as_millis()).unwrap_or(i64::MAX);
        let claimed = self
            .guarded(|epoch| async move {
                match &self.inner.backend {
                    Backend::Redis(r) => r.claim_stale(&epoch, &self.clock_arg(), older_ms, max).await,
                    Backend::Memory(_) => {
                        Ok(self.mem().map_or(Guarded::Rebuild, |mut m| m.claim_stale(&epoch, older_ms, max)))
                    }
                }
            })
            .await?;
        Ok(claimed.unwrap_or_default())
    }

    /// The one clock's time and everyone who may hold a unit that some replica's index
    /// does not know yet (pending, or issued within [`UNSETTLED_GRACE`]).
    pub async fn unsettled(&self) -> anyhow::Result<(DateTime<Utc>, std::collections::HashSet<Uuid>)> {
        let (now, users) = match &self.inner.backend {
            Backend::Redis(r) => r.unsettled(&self.clock_arg()).await?,
            Backend::Memory(_) => self.mem().map(|m| m.unsettled()).unwrap_or_default(),
        };
        Ok((from_millis(now), users.into_iter().collect()))
    }

    /// The coupon under (user, seq), if any.
    pub async fn holder(&self, user: Uuid, seq: u32) -> anyhow::Result<Option<Record>> {
        match &self.inner.backend {
            Backend::Redis(r) => r.holder(user, seq).await,
            Backend::Memory(_) => Ok(self.mem().and_then(|m| m.holder(user, seq))),
        }
    }

    /// Drops a claim whose coupon is no longer pending there.
    pub async fn forget(&self, claim: Claim) -> anyhow::Result<()> {
        match &self.inner.backend {
            Backend::Redis(r) => r.forget(claim).await,
            Backend::Memory(_) => {
                if let Some(mut m) = self.mem() {
                    m.forget(claim);
                }
                Ok(())
            }
        }
    }

    pub async fn add_eligible(&self, day: NaiveDate, user: Uuid) -> anyhow::Result<()> {
        match &self.inner.backend {
            Backend::Redis(r) => r.add_eligible(day, user).await,
            Backend::Memory(_) => {
                if let Some(mut m) = self.mem() {
                    m.add_eligible(day, user);
                }
                Ok(())
            }
        }
    }

    /// Reads the state's epoch, server identity, eviction policy and clock; adopts a new
    /// epoch and re-estimates this replica's offset to the one clock.
    pub async fn probe(&self) -> anyhow::Result<Health> {
        let sent = Instant::now();
        let local_before = self.inner.clock.now();
        let probe = match &self.inner.backend {
            Backend::Redis(r) => r.probe(&self.clock_arg()).await?,
            Backend::Memory(_) => self.mem().map(|m| m.probe()).ok_or_else(|| anyhow::anyhow!("no state"))?,
        };
        let rtt = sent.elapsed();
        let local_mid = local_before + TimeDelta::from_std(rtt / 2).unwrap_or_default();
        self.learn_offset((probe.now - local_mid).num_milliseconds(), rtt);
        let trusted = probe.epoch.split_once(':').is_some_and(|(run, _)| run == probe.run_id);
        if trusted {
            self.adopt_epoch(&probe.epoch);
        }
        Ok(Health { trusted, eviction_policy: probe.eviction_policy })
    }

    /// Keeps offsets measured over short round trips: a sample is taken when its round
    /// trip is within twice the best of the last minute.
    fn learn_offset(&self, offset_ms: i64, rtt: Duration) {
        let mut best = self.inner.best_rtt.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let fresh = best.is_none_or(|(b, at)| at.elapsed() > Duration::from_secs(60) || rtt <= b * 2);
        if fresh {
            if best.is_none_or(|(b, at)| rtt < b || at.elapsed() > Duration::from_secs(60)) {
                *best = Some((rtt, Instant::now()));
            }
            self.inner.offset_ms.store(offset_ms, Ordering::Relaxed);
        }
    }

    /// The state exists and this replica works under its epoch.
    pub async fn is_ready(&self) -> anyhow::Result<bool> {
        Ok(self.probe().await?.trusted)
    }

    /// Takes the rebuild lease for `owner` (one replica rebuilds; the others wait).
    pub async fn lock_rebuild(&self, owner: &str) -> anyhow::Result<bool> {
        match &self.inner.backend {
            Backend::Redis(r) => r.lock_rebuild(owner).await,
            Backend::Memory(_) => Ok(self.mem().is_some_and(|mut m| m.lock(owner, LEASE.as_millis() as i64))),
        }
    }

    /// Extends the lease if `owner` still holds it; false when it does not.
    pub async fn renew_rebuild(&self, owner: &str) -> anyhow::Result<bool> {
        match &self.inner.backend {
            Backend::Redis(r) => r.lease(owner, true).await,
            Backend::Memory(_) => Ok(self.mem().is_some_and(|mut m| m.lease(owner, LEASE.as_millis() as i64))),
        }
    }

    pub async fn unlock_rebuild(&self, owner: &str) -> anyhow::Result<()> {
        match &self.inner.backend {
            Backend::Redis(r) => r.lease(owner, false).await.map(|_| ()),
            Backend::Memory(_) => {
                if let Some(mut m) = self.mem() {
                    m.lease(owner, 0);
                }
                Ok(())
            }
        }
    }

    /// Replaces the whole state with `snapshot`, without an epoch: still not ready.
    pub async fn apply(&self, snapshot: &Snapshot) -> anyhow::Result<()> {
        match &self.inner.backend {
            Backend::Redis(r) => r.apply(snapshot).await,
            Backend::Memory(_) => {
                if let Some(mut m) = self.mem() {
                    m.apply(snapshot);
                }
                Ok(())
            }
        }
    }

    /// Opens the rebuilt state under a new epoch, only while `owner` holds the lease (one
    /// atomic step). False when the lease was lost.
    pub async fn mark_ready(&self, owner: &str) -> anyhow::Result<bool> {
        let id = Uuid::new_v4().to_string();
        let epoch = match &self.inner.backend {
            Backend::Redis(r) => r.mark_ready(owner, &id).await?,
            Backend::Memory(_) => self.mem().and_then(|mut m| m.mark_ready(owner, &id)),
        };
        match epoch {
            Some(epoch) => {
                self.adopt_epoch(&epoch);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    pub async fn counters(&self, day: NaiveDate) -> anyhow::Result<DayCounters> {
        match &self.inner.backend {
            Backend::Redis(r) => r.counters(day).await,
            Backend::Memory(_) => Ok(self.mem().map(|m| m.counters(day)).unwrap_or_default()),
        }
    }

    /// Whether this replica takes `what`'s turn: true for one replica of the campaign per
    /// `period` (in memory, one process: always).
    pub async fn turn(&self, what: &str, period: Duration) -> anyhow::Result<bool> {
        match &self.inner.backend {
            Backend::Redis(r) => r.turn(what, period).await,
            Backend::Memory(_) => Ok(true),
        }
    }

    /// People the in-memory state holds anything for; `None` for Redis (tests).
    pub fn people(&self) -> Option<usize> {
        self.mem().map(|m| m.people())
    }

    /// Forgets everything, as a restart of an empty Redis would (tests and fault drills).
    pub async fn wipe(&self) -> anyhow::Result<()> {
        match &self.inner.backend {
            Backend::Redis(r) => r.wipe().await,
            Backend::Memory(_) => {
                if let Some(mut m) = self.mem() {
                    m.wipe();
                }
                Ok(())
            }
        }
    }
}

/// What a probe read, before it is interpreted.
pub(crate) struct ProbeReading {
    pub epoch: String,
    pub run_id: String,
    pub eviction_policy: String,
    pub now: DateTime<Utc>,
}

pub(crate) fn millis(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

pub(crate) fn from_millis(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_are_read_back_from_their_set_members() {
        let claim = Claim { user: Uuid::new_v4(), seq: 3, coupon_id: Uuid::now_v7() };
        assert_eq!(Claim::parse(&claim.member()), Some(claim));
        assert_eq!(Claim::parse("nope"), None);
        assert_eq!(Claim::parse(&format!("{}:x", claim.member())), None);
    }
}
