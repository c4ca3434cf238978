//! The issuer state in this process (the embedded mode): the same steps and answers as
//! the Redis scripts, under one mutex. Its "server" is the process: a wipe is a restart
//! (a new run id), and its clock is the issuer's.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use platform::clock::Clock;
use uuid::Uuid;

use super::{
    Adopt, Claim, DayCounters, Guarded, ProbeReading, Record, Snapshot, Take, TakeRequest, UNSETTLED_GRACE,
    from_millis, millis,
};

#[derive(Debug, Default)]
struct Holder {
    coupons: BTreeMap<u32, Record>,
    keys: HashMap<String, u32>,
}

impl Holder {
    /// The highest seq, as Redis keeps it in `n` (a rebuild may leave gaps).
    fn latest(&self) -> u32 {
        self.coupons.keys().next_back().copied().unwrap_or(0)
    }
}

#[derive(Debug)]
pub struct MemoryState {
    clock: Clock,
    pub(super) shift: TimeDelta,
    run_id: String,
    epoch: Option<String>,
    stock: HashMap<NaiveDate, i64>,
    issued: HashMap<NaiveDate, i64>,
    total: i64,
    eligible: HashMap<NaiveDate, HashSet<Uuid>>,
    holders: HashMap<Uuid, Holder>,
    /// Pending coupons by when they were taken (or last leased), as in the Redis set.
    pending: HashMap<Claim, i64>,
    /// The rebuild lease: owner and until when (ms on this state's clock).
    lease: Option<(String, i64)>,
    /// Holders not yet known to every index: pending (`i64::MAX`) or issued at (ms).
    unsettled: HashMap<Uuid, i64>,
}

impl MemoryState {
    pub(super) fn new(clock: Clock) -> Self {
        Self {
            clock,
            shift: TimeDelta::zero(),
            run_id: Uuid::new_v4().simple().to_string(),
            epoch: None,
            stock: HashMap::new(),
            issued: HashMap::new(),
            total: 0,
            eligible: HashMap::new(),
            holders: HashMap::new(),
            pending: HashMap::new(),
            lease: None,
            unsettled: HashMap::new(),
        }
    }

    /// The prelude's `settled`: issued now, forgotten after the grace period.
    fn settled(&mut self, user: Uuid) {
        let now = millis(self.now());
        self.unsettled.insert(user, now);
        let grace = UNSETTLED_GRACE.as_millis() as i64;
        self.unsettled.retain(|_, at| *at > now - grace);
    }

    pub(super) fn unsettled(&self) -> (i64, Vec<Uuid>) {
        let now = millis(self.now());
        let grace = UNSETTLED_GRACE.as_millis() as i64;
        (now, self.unsettled.iter().filter(|(_, at)| **at >= now - grace).map(|(u, _)| *u).collect())
    }

    fn lease_holder(&self) -> Option<&str> {
        let now = millis(self.now());
        self.lease.as_ref().filter(|(_, until)| *until > now).map(|(owner, _)| owner.as_str())
    }

    pub(super) fn lock(&mut self, owner: &str, ttl_ms: i64) -> bool {
        if self.lease_holder().is_some() {
            return false;
        }
        self.lease = Some((owner.to_owned(), millis(self.now()) + ttl_ms));
        true
    }

    /// Renews (`ttl_ms` > 0) or releases the lease, only for its owner.
    pub(super) fn lease(&mut self, owner: &str, ttl_ms: i64) -> bool {
        if self.lease_holder() != Some(owner) {
            return false;
        }
        self.lease = (ttl_ms > 0).then(|| (owner.to_owned(), millis(self.now()) + ttl_ms));
        true
    }

    /// People the state holds anything for (tests: refused requesters leave nothing).
    pub(super) fn people(&self) -> usize {
        self.holders.len()
    }

    fn now(&self) -> DateTime<Utc> {
        self.clock.now() + self.shift
    }

    /// The prelude's `check_epoch`.
    fn check<T>(&self, expected: &str) -> Option<Guarded<T>> {
        match &self.epoch {
            None => Some(Guarded::Rebuild),
            Some(e) if e.split_once(':').map(|(run, _)| run) != Some(self.run_id.as_str()) => Some(Guarded::Rebuild),
            Some(e) if e != expected => Some(Guarded::Stale(e.clone())),
            Some(_) => None,
        }
    }

    fn rebuilding(&self) -> bool {
        matches!(self.check::<()>(""), Some(Guarded::Rebuild))
    }

    pub(super) fn take(&mut self, expected: &str, req: &TakeRequest<'_>) -> Guarded<Take> {
        if let Some(stop) = self.check(expected) {
            return stop;
        }
        let now = self.now();
        // A person who was refused leaves nothing behind: look, do not insert.
        let latest = match self.holders.get(&req.user) {
            Some(holder) => {
                if let Some(seq) = req.idempotency_key.and_then(|k| holder.keys.get(k))
                    && let Some(record) = holder.coupons.get(seq)
                {
                    return Guarded::Done(Take::Holds { seq: *seq, record: record.clone(), now });
                }
                let n = holder.latest();
                if let Some(last) = holder.coupons.get(&n)
                    && (n >= req.per_user || last.pending)
                {
                    return Guarded::Done(Take::Holds { seq: n, record: last.clone(), now });
                }
                n
            }
            None => 0,
        };
        if now < req.opens_at || now >= req.closes_at {
            return Guarded::Done(Take::Outside { now: from_millis(millis(now)) });
        }
        if req.require_eligible && !self.eligible.get(&req.day).is_some_and(|s| s.contains(&req.user)) {
            return Guarded::Done(Take::NotEligible);
        }
        let Some(stock) = self.stock.get(&req.day).copied() else { return Guarded::Done(Take::Unseeded) };
        if stock <= 0 {
            return Guarded::Done(Take::SoldOutToday);
        }
        if req.total_limit.is_some_and(|limit| self.total >= limit as i64) {
            return Guarded::Done(Take::SoldOutTotal);
        }
        self.stock.insert(req.day, stock - 1);
        *self.issued.entry(req.day).or_default() += 1;
        self.total += 1;
        let seq = latest + 1;
        // Millisecond times, as the Redis record keeps them.
        let issued_at = from_millis(millis(now));
        let record = Record {
            coupon_id: req.coupon_id,
            code: req.code.to_owned(),
            day: req.day,
            issued_at,
            expires_at: issued_at + req.validity,
            pending: true,
            idempotency_key: req.idempotency_key.map(str::to_owned),
        };
        let holder = self.holders.entry(req.user).or_default();
        holder.coupons.insert(seq, record.clone());
        if let Some(k) = req.idempotency_key {
            holder.keys.insert(k.to_owned(), seq);
        }
        self.pending.insert(Claim { user: req.user, seq, coupon_id: req.coupon_id }, millis(now));
        self.unsettled.insert(req.user, i64::MAX);
        Guarded::Done(Take::Taken { seq, record })
    }

    pub(super) fn confirm(&mut self, expected: &str, user: Uuid, seq: u32, coupon_id: Uuid) -> bool {
        let _ = expected;
        if self.rebuilding() {
            return false;
        }
        let Some(record) = self.holders.get_mut(&user).and_then(|h| h.coupons.get_mut(&seq)) else { return false };
        if record.coupon_id != coupon_id {
            return false;
        }
        let was_pending = std::mem::replace(&mut record.pending, false);
        self.pending.remove(&Claim { user, seq, coupon_id });
        let latest_pending =
            self.holders.get(&user).and_then(|h| h.coupons.values().next_back()).is_some_and(|r| r.pending);
        if was_pending && !latest_pending {
            self.settled(user);
        }
        was_pending
    }

    pub(super) fn release(&mut self, expected: &str, user: Uuid, seq: u32, record: &Record) -> bool {
        let _ = expected;
        if self.rebuilding() {
            return false;
        }
        let Some(holder) = self.holders.get_mut(&user) else { return false };
        let Some(held) = holder.coupons.get(&seq) else { return false };
        if !held.pending || held.coupon_id != record.coupon_id {
            return false;
        }
        // Claimed meanwhile by a replica re-sending it: its publish may have landed.
        let claim = Claim { user, seq, coupon_id: record.coupon_id };
        if self.pending.get(&claim) != Some(&millis(held.issued_at)) {
            return false;
        }
        let held = holder.coupons.remove(&seq).map(|r| r.idempotency_key);
        if let Some(Some(key)) = held
            && holder.keys.get(&key) == Some(&seq)
        {
            holder.keys.remove(&key);
        }
        if holder.coupons.is_empty() {
            self.holders.remove(&user);
        }
        if let Some(stock) = self.stock.get_mut(&record.day) {
            *stock += 1;
        }
        *self.issued.entry(record.day).or_default() -= 1;
        self.total -= 1;
        self.pending.remove(&claim);
        self.settled(user);
        true
    }

    pub(super) fn seed(
        &mut self,
        expected: &str,
        day: NaiveDate,
        daily: u32,
        total_limit: Option<u64>,
    ) -> Guarded<Option<i64>> {
        if let Some(stop) = self.check(expected) {
            return stop;
        }
        if let Some(s) = self.stock.get(&day) {
            return Guarded::Done(Some((*s).max(0)));
        }
        let issued = self.issued.get(&day).copied().unwrap_or(0);
        let mut stock = i64::from(daily) - issued;
        if let Some(limit) = total_limit {
            stock = stock.min(limit as i64 - self.total);
        }
        let stock = stock.max(0);
        self.stock.insert(day, stock);
        Guarded::Done(Some(stock))
    }

    pub(super) fn adopt(&mut self, expected: &str, user: Uuid, seq: u32, record: &Record) -> Guarded<Adopt> {
        if let Some(stop) = self.check(expected) {
            return stop;
        }
        let holder = self.holders.entry(user).or_default();
        if let Some(held) = holder.coupons.get_mut(&seq) {
            if held.coupon_id != record.coupon_id {
                return Guarded::Done(Adopt::Conflict(held.clone()));
            }
            if held.pending {
                held.pending = false;
                self.pending.remove(&Claim { user, seq, coupon_id: record.coupon_id });
                self.settled(user);
                return Guarded::Done(Adopt::Confirmed);
            }
            return Guarded::Done(Adopt::Known);
        }
        holder.coupons.insert(seq, record.clone().issued());
        if let Some(key) = &record.idempotency_key {
            holder.keys.insert(key.clone(), seq);
        }
        self.settled(user);
        *self.issued.entry(record.day).or_default() += 1;
        self.total += 1;
        if let Some(stock) = self.stock.get_mut(&record.day) {
            *stock -= 1;
            if *stock < 0 {
                return Guarded::Done(Adopt::Oversold);
            }
        }
        Guarded::Done(Adopt::Adopted)
    }

    pub(super) fn replace(&mut self, expected: &str, user: Uuid, seq: u32, record: &Record) -> Guarded<()> {
        if let Some(stop) = self.check(expected) {
            return stop;
        }
        let holder = self.holders.entry(user).or_default();
        if let Some(old) = holder.coupons.get(&seq) {
            if let Some(key) = &old.idempotency_key
                && holder.keys.get(key) == Some(&seq)
            {
                holder.keys.remove(key);
            }
            self.pending.remove(&Claim { user, seq, coupon_id: old.coupon_id });
        }
        holder.coupons.insert(seq, record.clone().issued());
        if let Some(key) = &record.idempotency_key {
            holder.keys.insert(key.clone(), seq);
        }
        Guarded::Done(())
    }

    pub(super) fn claim_stale(&mut self, expected: &str, older_ms: i64, max: usize) -> Guarded<Vec<Claim>> {
        if let Some(stop) = self.check(expected) {
            return stop;
        }
        let now = millis(self.now());
        let mut stale: Vec<(i64, Claim)> =
            self.pending.iter().filter(|(_, at)| **at <= now - older_ms).map(|(c, at)| (*at, *c)).collect();
        stale.sort_by_key(|(at, c)| (*at, c.member()));
        stale.truncate(max);
        for (_, claim) in &stale {
            self.pending.insert(*claim, now);
        }
        Guarded::Done(stale.into_iter().map(|(_, c)| c).collect())
    }

    pub(super) fn holder(&self, user: Uuid, seq: u32) -> Option<Record> {
        self.holders.get(&user).and_then(|h| h.coupons.get(&seq)).cloned()
    }

    pub(super) fn forget(&mut self, claim: Claim) {
        self.pending.remove(&claim);
    }

    pub(super) fn add_eligible(&mut self, day: NaiveDate, user: Uuid) {
        self.eligible.entry(day).or_default().insert(user);
    }

    pub(super) fn probe(&self) -> ProbeReading {
        ProbeReading {
            epoch: self.epoch.clone().unwrap_or_default(),
            run_id: self.run_id.clone(),
            eviction_policy: "noeviction".to_owned(),
            now: from_millis(millis(self.now())),
        }
    }

    pub(super) fn apply(&mut self, snapshot: &Snapshot) {
        // Eligibility comes from the mission log replay, not from the snapshot.
        let eligible = std::mem::take(&mut self.eligible);
        let (clock, shift, run_id, lease) =
            (self.clock.clone(), self.shift, std::mem::take(&mut self.run_id), self.lease.take());
        *self = MemoryState::new(clock);
        self.shift = shift;
        self.run_id = run_id;
        self.lease = lease;
        self.eligible = eligible;
        for (user, coupons) in &snapshot.holders {
            let holder = self.holders.entry(*user).or_default();
            for (seq, record) in coupons {
                if let Some(key) = &record.idempotency_key {
                    holder.keys.insert(key.clone(), *seq);
                }
                holder.coupons.insert(*seq, record.clone().issued());
            }
        }
        self.issued = snapshot.issued_per_day();
        self.total = snapshot.total();
    }

    pub(super) fn mark_ready(&mut self, owner: &str, id: &str) -> Option<String> {
        if self.lease_holder() != Some(owner) {
            return None;
        }
        let epoch = format!("{}:{id}", self.run_id);
        self.epoch = Some(epoch.clone());
        Some(epoch)
    }

    pub(super) fn counters(&self, day: NaiveDate) -> DayCounters {
        DayCounters {
            issued_today: self.issued.get(&day).copied().unwrap_or(0),
            remaining_today: self.stock.get(&day).copied(),
            issued_total: self.total,
        }
    }

    /// A restart of the process that held the state: everything, eligibility included, is gone.
    pub(super) fn wipe(&mut self) {
        let (clock, shift, lease) = (self.clock.clone(), self.shift, self.lease.take());
        *self = MemoryState::new(clock);
        self.shift = shift;
        self.lease = lease;
    }
}
