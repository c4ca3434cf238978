//! The issuer's shared state and its atomic steps, in Redis (one Lua script per step,
//! keys hash-tagged by campaign so a Redis Cluster keeps them on one slot) or in memory
//! for the embedded mode — the same semantics either way:
//!
//! - `take`: checks readiness, an idempotency key, the per-person limit, eligibility,
//!   the day's stock and the campaign total, then takes one unit and records the coupon
//!   as *pending* for the person — all in one step.
//! - `confirm`: the issuance event is durable; the coupon is *issued*.
//! - `release`: the event definitely never reached the log; the unit goes back.
//! - `seed`: the day's stock is set once (daily quantity, capped by what the campaign
//!   total still allows, minus what was already counted against the day).
//!
//! A missing epoch key means the state was lost (Redis flushed or restarted empty):
//! every step answers `Rebuild` until the issuer rebuilt it from the log and database.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, NaiveDate, Utc};
use redis::Script;
use redis::aio::ConnectionManager;
use uuid::Uuid;

/// A person's coupon as the issuer state keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub coupon_id: Uuid,
    pub code: String,
    pub day: NaiveDate,
    pub issued_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// Taken, but the issuance event is not known to be durable yet.
    pub pending: bool,
}

impl Record {
    fn encode(&self) -> String {
        format!(
            "{}|{}|{}|{}|{}|{}",
            self.coupon_id,
            self.code,
            self.issued_at.timestamp_millis(),
            self.expires_at.timestamp_millis(),
            self.day,
            if self.pending { "P" } else { "I" }
        )
    }

    fn decode(raw: &str) -> Option<Self> {
        let mut parts = raw.split('|');
        let coupon_id = Uuid::parse_str(parts.next()?).ok()?;
        let code = parts.next()?.to_owned();
        let issued_at = DateTime::from_timestamp_millis(parts.next()?.parse().ok()?)?;
        let expires_at = DateTime::from_timestamp_millis(parts.next()?.parse().ok()?)?;
        let day = parts.next()?.parse().ok()?;
        let pending = parts.next()? == "P";
        Some(Self { coupon_id, code, day, issued_at, expires_at, pending })
    }
}

pub struct TakeRequest<'a> {
    pub day: NaiveDate,
    pub user: Uuid,
    pub per_user: u32,
    pub require_eligible: bool,
    pub total_limit: Option<u64>,
    pub idempotency_key: Option<&'a str>,
    /// The coupon to record if a unit is taken.
    pub candidate: Record,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Take {
    /// State lost; rebuild before answering.
    Rebuild,
    /// The day's stock has not been seeded yet.
    Unseeded,
    SoldOutToday,
    SoldOutTotal,
    NotEligible,
    /// The person already holds their limit (or used this idempotency key): their coupon.
    Holds {
        seq: u32,
        record: Record,
    },
    Taken {
        seq: u32,
    },
}

/// Live counters of one campaign day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DayCounters {
    pub issued_today: i64,
    /// `None` until the day's stock is seeded at its first request.
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
    fn issued_per_day(&self) -> HashMap<NaiveDate, i64> {
        let mut days = HashMap::new();
        for coupons in self.holders.values() {
            for r in coupons.values() {
                *days.entry(r.day).or_default() += 1;
            }
        }
        days
    }

    fn total(&self) -> i64 {
        self.holders.values().map(|c| c.len() as i64).sum()
    }
}

/// Day keys outlive their day by this much (yesterday's counters stay readable).
const DAY_TTL_SECONDS: u64 = 3 * 86_400;

#[derive(Clone)]
pub enum Engine {
    Redis(Arc<RedisEngine>),
    Memory(Arc<Mutex<MemoryState>>),
}

impl Engine {
    pub fn redis(conn: ConnectionManager, prefix: &str, campaign: &str) -> Self {
        Engine::Redis(Arc::new(RedisEngine::new(conn, prefix, campaign)))
    }

    pub fn memory() -> Self {
        Engine::Memory(Arc::new(Mutex::new(MemoryState::default())))
    }

    pub async fn take(&self, req: &TakeRequest<'_>) -> anyhow::Result<Take> {
        match self {
            Engine::Redis(r) => r.take(req).await,
            Engine::Memory(m) => Ok(lock(m).take(req)),
        }
    }

    pub async fn confirm(&self, user: Uuid, seq: u32) -> anyhow::Result<()> {
        match self {
            Engine::Redis(r) => r.confirm(user, seq).await,
            Engine::Memory(m) => {
                lock(m).confirm(user, seq);
                Ok(())
            }
        }
    }

    pub async fn release(&self, day: NaiveDate, user: Uuid, seq: u32, key: Option<&str>) -> anyhow::Result<bool> {
        match self {
            Engine::Redis(r) => r.release(day, user, seq, key).await,
            Engine::Memory(m) => Ok(lock(m).release(day, user, seq, key)),
        }
    }

    /// Seeds the day's stock once; `None` when the state must be rebuilt first.
    pub async fn seed(&self, day: NaiveDate, daily: u32, total_limit: Option<u64>) -> anyhow::Result<Option<i64>> {
        match self {
            Engine::Redis(r) => r.seed(day, daily, total_limit).await,
            Engine::Memory(m) => Ok(lock(m).seed(day, daily, total_limit)),
        }
    }

    pub async fn add_eligible(&self, day: NaiveDate, user: Uuid) -> anyhow::Result<()> {
        match self {
            Engine::Redis(r) => r.add_eligible(day, user).await,
            Engine::Memory(m) => {
                lock(m).eligible.entry(day).or_default().insert(user);
                Ok(())
            }
        }
    }

    pub async fn is_ready(&self) -> anyhow::Result<bool> {
        match self {
            Engine::Redis(r) => r.is_ready().await,
            Engine::Memory(m) => Ok(lock(m).epoch.is_some()),
        }
    }

    /// Takes the rebuild lock for `owner` (one replica rebuilds; the others wait).
    pub async fn lock_rebuild(&self, owner: &str) -> anyhow::Result<bool> {
        match self {
            Engine::Redis(r) => r.lock_rebuild(owner).await,
            Engine::Memory(_) => Ok(true),
        }
    }

    /// Extends the rebuild lock if `owner` still holds it; false when it does not.
    pub async fn renew_rebuild(&self, owner: &str) -> anyhow::Result<bool> {
        match self {
            Engine::Redis(r) => r.renew_rebuild(owner).await,
            Engine::Memory(_) => Ok(true),
        }
    }

    pub async fn unlock_rebuild(&self, owner: &str) -> anyhow::Result<()> {
        match self {
            Engine::Redis(r) => r.unlock_rebuild(owner).await,
            Engine::Memory(_) => Ok(()),
        }
    }

    /// Replaces the whole state with `snapshot` (no epoch yet: still not ready).
    pub async fn apply(&self, snapshot: &Snapshot) -> anyhow::Result<()> {
        match self {
            Engine::Redis(r) => r.apply(snapshot).await,
            Engine::Memory(m) => {
                lock(m).apply(snapshot);
                Ok(())
            }
        }
    }

    pub async fn mark_ready(&self, epoch: &str) -> anyhow::Result<()> {
        match self {
            Engine::Redis(r) => r.mark_ready(epoch).await,
            Engine::Memory(m) => {
                lock(m).epoch = Some(epoch.to_owned());
                Ok(())
            }
        }
    }

    pub async fn counters(&self, day: NaiveDate) -> anyhow::Result<DayCounters> {
        match self {
            Engine::Redis(r) => r.counters(day).await,
            Engine::Memory(m) => Ok(lock(m).counters(day)),
        }
    }

    /// Forgets everything, as a Redis flush would (tests and fault drills).
    pub async fn wipe(&self) -> anyhow::Result<()> {
        match self {
            Engine::Redis(r) => r.wipe().await,
            Engine::Memory(m) => {
                *lock(m) = MemoryState::default();
                Ok(())
            }
        }
    }
}

fn lock(m: &Mutex<MemoryState>) -> std::sync::MutexGuard<'_, MemoryState> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

// ---------------------------------------------------------------------------------------
// In memory

#[derive(Debug, Default)]
struct Holder {
    coupons: BTreeMap<u32, Record>,
    keys: HashMap<String, u32>,
}

#[derive(Debug, Default)]
pub struct MemoryState {
    epoch: Option<String>,
    stock: HashMap<NaiveDate, i64>,
    issued: HashMap<NaiveDate, i64>,
    total: i64,
    eligible: HashMap<NaiveDate, HashSet<Uuid>>,
    holders: HashMap<Uuid, Holder>,
}

impl MemoryState {
    fn take(&mut self, req: &TakeRequest<'_>) -> Take {
        if self.epoch.is_none() {
            return Take::Rebuild;
        }
        let holder = self.holders.entry(req.user).or_default();
        if let Some(seq) = req.idempotency_key.and_then(|k| holder.keys.get(k))
            && let Some(record) = holder.coupons.get(seq)
        {
            return Take::Holds { seq: *seq, record: record.clone() };
        }
        // The highest seq, as Redis keeps it in `n` (a rebuild may leave gaps).
        let held = holder.coupons.keys().next_back().copied().unwrap_or(0);
        // At the limit, or the latest coupon is still pending (its publish may not have
        // landed): hand that one back instead of taking another unit.
        if let Some((seq, record)) = holder.coupons.iter().next_back()
            && (held >= req.per_user || record.pending)
        {
            return Take::Holds { seq: *seq, record: record.clone() };
        }
        if req.require_eligible && !self.eligible.get(&req.day).is_some_and(|s| s.contains(&req.user)) {
            return Take::NotEligible;
        }
        let Some(stock) = self.stock.get_mut(&req.day) else { return Take::Unseeded };
        if *stock <= 0 {
            return Take::SoldOutToday;
        }
        if req.total_limit.is_some_and(|limit| self.total >= limit as i64) {
            return Take::SoldOutTotal;
        }
        *stock -= 1;
        *self.issued.entry(req.day).or_default() += 1;
        self.total += 1;
        let seq = held + 1;
        let holder = self.holders.entry(req.user).or_default();
        holder.coupons.insert(seq, req.candidate.clone());
        if let Some(k) = req.idempotency_key {
            holder.keys.insert(k.to_owned(), seq);
        }
        Take::Taken { seq }
    }

    fn confirm(&mut self, user: Uuid, seq: u32) {
        if let Some(r) = self.holders.get_mut(&user).and_then(|h| h.coupons.get_mut(&seq)) {
            r.pending = false;
        }
    }

    fn release(&mut self, day: NaiveDate, user: Uuid, seq: u32, key: Option<&str>) -> bool {
        let Some(holder) = self.holders.get_mut(&user) else { return false };
        let latest = holder.coupons.keys().next_back().copied();
        if latest != Some(seq) || !holder.coupons.get(&seq).is_some_and(|r| r.pending) {
            return false;
        }
        holder.coupons.remove(&seq);
        if let Some(k) = key {
            holder.keys.remove(k);
        }
        *self.stock.entry(day).or_default() += 1;
        *self.issued.entry(day).or_default() -= 1;
        self.total -= 1;
        true
    }

    fn seed(&mut self, day: NaiveDate, daily: u32, total_limit: Option<u64>) -> Option<i64> {
        self.epoch.as_ref()?;
        if let Some(s) = self.stock.get(&day) {
            return Some(*s);
        }
        let issued = self.issued.get(&day).copied().unwrap_or(0);
        let mut stock = i64::from(daily) - issued;
        if let Some(limit) = total_limit {
            stock = stock.min(limit as i64 - self.total);
        }
        let stock = stock.max(0);
        self.stock.insert(day, stock);
        Some(stock)
    }

    fn apply(&mut self, snapshot: &Snapshot) {
        let eligible = std::mem::take(&mut self.eligible);
        *self = MemoryState::default();
        // Eligibility comes from the mission log replay, not from the snapshot.
        self.eligible = eligible;
        for (user, coupons) in &snapshot.holders {
            let holder = self.holders.entry(*user).or_default();
            holder.coupons = coupons.clone();
        }
        self.issued = snapshot.issued_per_day();
        self.total = snapshot.total();
    }

    fn counters(&self, day: NaiveDate) -> DayCounters {
        DayCounters {
            issued_today: self.issued.get(&day).copied().unwrap_or(0),
            remaining_today: self.stock.get(&day).copied(),
            issued_total: self.total,
        }
    }
}

// ---------------------------------------------------------------------------------------
// In Redis

const TAKE_LUA: &str = r"
-- KEYS: epoch, stock:D, issued:D, total, eligible:D, user
-- ARGV: user, perUser, requireEligible, totalLimit(0 = none), idempotencyKey('' = none), record
if redis.call('EXISTS', KEYS[1]) == 0 then return {'REBUILD'} end
local u = KEYS[6]
if ARGV[5] ~= '' then
  local s = redis.call('HGET', u, 'k:' .. ARGV[5])
  if s then return {'HOLDS', s, redis.call('HGET', u, 'c:' .. s)} end
end
local n = tonumber(redis.call('HGET', u, 'n') or '0')
if n > 0 then
  local last = redis.call('HGET', u, 'c:' .. n)
  -- at the limit, or the latest coupon still pending: hand that one back
  if n >= tonumber(ARGV[2]) or (last and string.sub(last, -2) == '|P') then return {'HOLDS', tostring(n), last} end
end
if ARGV[3] == '1' and redis.call('SISMEMBER', KEYS[5], ARGV[1]) == 0 then return {'NOT_ELIGIBLE'} end
local stock = redis.call('GET', KEYS[2])
if not stock then return {'UNSEEDED'} end
if tonumber(stock) <= 0 then return {'SOLD_OUT_TODAY'} end
local limit = tonumber(ARGV[4])
if limit > 0 and tonumber(redis.call('GET', KEYS[4]) or '0') >= limit then return {'SOLD_OUT_TOTAL'} end
redis.call('DECR', KEYS[2])
redis.call('INCR', KEYS[3])
redis.call('INCR', KEYS[4])
local seq = n + 1
redis.call('HSET', u, 'n', seq, 'c:' .. seq, ARGV[6])
if ARGV[5] ~= '' then redis.call('HSET', u, 'k:' .. ARGV[5], seq) end
return {'TAKEN', tostring(seq)}
";

const CONFIRM_LUA: &str = r"
local v = redis.call('HGET', KEYS[1], 'c:' .. ARGV[1])
if v and string.sub(v, -2) == '|P' then
  redis.call('HSET', KEYS[1], 'c:' .. ARGV[1], string.sub(v, 1, -3) .. '|I')
end
return 1
";

const RELEASE_LUA: &str = r"
-- KEYS: user, stock:D, issued:D, total   ARGV: seq, idempotencyKey
local v = redis.call('HGET', KEYS[1], 'c:' .. ARGV[1])
if not v or string.sub(v, -2) ~= '|P' then return 0 end
local n = tonumber(redis.call('HGET', KEYS[1], 'n') or '0')
if n ~= tonumber(ARGV[1]) then return 0 end
redis.call('HDEL', KEYS[1], 'c:' .. ARGV[1])
redis.call('HSET', KEYS[1], 'n', n - 1)
if ARGV[2] ~= '' then redis.call('HDEL', KEYS[1], 'k:' .. ARGV[2]) end
redis.call('INCR', KEYS[2])
redis.call('DECR', KEYS[3])
redis.call('DECR', KEYS[4])
return 1
";

const SEED_LUA: &str = r"
-- KEYS: epoch, stock:D, issued:D, total   ARGV: daily, totalLimit(0 = none), ttl
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local existing = redis.call('GET', KEYS[2])
if existing then return tonumber(existing) end
local s = tonumber(ARGV[1]) - tonumber(redis.call('GET', KEYS[3]) or '0')
local limit = tonumber(ARGV[2])
if limit > 0 then
  local left = limit - tonumber(redis.call('GET', KEYS[4]) or '0')
  if left < s then s = left end
end
if s < 0 then s = 0 end
redis.call('SET', KEYS[2], s, 'EX', ARGV[3])
redis.call('EXPIRE', KEYS[3], ARGV[3])
return s
";

pub struct RedisEngine {
    conn: ConnectionManager,
    /// `{prefix}{c:<campaign>}:` — the braces are the Redis Cluster hash tag.
    base: String,
    take: Script,
    confirm: Script,
    release: Script,
    seed: Script,
}

impl RedisEngine {
    fn new(conn: ConnectionManager, prefix: &str, campaign: &str) -> Self {
        Self {
            conn,
            base: format!("{prefix}{{c:{campaign}}}:"),
            take: Script::new(TAKE_LUA),
            confirm: Script::new(CONFIRM_LUA),
            release: Script::new(RELEASE_LUA),
            seed: Script::new(SEED_LUA),
        }
    }

    fn key(&self, name: &str) -> String {
        format!("{}{name}", self.base)
    }

    fn day(&self, what: &str, day: NaiveDate) -> String {
        format!("{}{what}:{day}", self.base)
    }

    fn user(&self, user: Uuid) -> String {
        format!("{}u:{user}", self.base)
    }

    async fn take(&self, req: &TakeRequest<'_>) -> anyhow::Result<Take> {
        let mut conn = self.conn.clone();
        let reply: Vec<String> = self
            .take
            .key(self.key("epoch"))
            .key(self.day("stock", req.day))
            .key(self.day("issued", req.day))
            .key(self.key("total"))
            .key(self.day("eligible", req.day))
            .key(self.user(req.user))
            .arg(req.user.to_string())
            .arg(req.per_user)
            .arg(if req.require_eligible { "1" } else { "0" })
            .arg(req.total_limit.unwrap_or(0))
            .arg(req.idempotency_key.unwrap_or(""))
            .arg(req.candidate.encode())
            .invoke_async(&mut conn)
            .await?;
        let word = reply.first().map(String::as_str).unwrap_or_default();
        Ok(match word {
            "REBUILD" => Take::Rebuild,
            "UNSEEDED" => Take::Unseeded,
            "SOLD_OUT_TODAY" => Take::SoldOutToday,
            "SOLD_OUT_TOTAL" => Take::SoldOutTotal,
            "NOT_ELIGIBLE" => Take::NotEligible,
            "TAKEN" => Take::Taken { seq: reply.get(1).and_then(|s| s.parse().ok()).unwrap_or(1) },
            "HOLDS" => {
                let seq = reply.get(1).and_then(|s| s.parse().ok()).unwrap_or(1);
                let record = reply
                    .get(2)
                    .and_then(|r| Record::decode(r))
                    .ok_or_else(|| anyhow::anyhow!("corrupt holder record for {}", req.user))?;
                Take::Holds { seq, record }
            }
            other => anyhow::bail!("unexpected reply from the take script: {other:?}"),
        })
    }

    async fn confirm(&self, user: Uuid, seq: u32) -> anyhow::Result<()> {
        let mut conn = self.conn.clone();
        let _: i64 = self.confirm.key(self.user(user)).arg(seq).invoke_async(&mut conn).await?;
        Ok(())
    }

    async fn release(&self, day: NaiveDate, user: Uuid, seq: u32, key: Option<&str>) -> anyhow::Result<bool> {
        let mut conn = self.conn.clone();
        let done: i64 = self
            .release
            .key(self.user(user))
            .key(self.day("stock", day))
            .key(self.day("issued", day))
            .key(self.key("total"))
            .arg(seq)
            .arg(key.unwrap_or(""))
            .invoke_async(&mut conn)
            .await?;
        Ok(done == 1)
    }

    async fn seed(&self, day: NaiveDate, daily: u32, total_limit: Option<u64>) -> anyhow::Result<Option<i64>> {
        let mut conn = self.conn.clone();
        let stock: i64 = self
            .seed
            .key(self.key("epoch"))
            .key(self.day("stock", day))
            .key(self.day("issued", day))
            .key(self.key("total"))
            .arg(daily)
            .arg(total_limit.unwrap_or(0))
            .arg(DAY_TTL_SECONDS)
            .invoke_async(&mut conn)
            .await?;
        Ok((stock >= 0).then_some(stock))
    }

    async fn add_eligible(&self, day: NaiveDate, user: Uuid) -> anyhow::Result<()> {
        let mut conn = self.conn.clone();
        let key = self.day("eligible", day);
        redis::pipe()
            .sadd(&key, user.to_string())
            .ignore()
            .expire(&key, DAY_TTL_SECONDS as i64)
            .ignore()
            .query_async::<()>(&mut conn)
            .await?;
        Ok(())
    }

    async fn is_ready(&self) -> anyhow::Result<bool> {
        let mut conn = self.conn.clone();
        Ok(redis::cmd("EXISTS").arg(self.key("epoch")).query_async::<i64>(&mut conn).await? == 1)
    }

    async fn lock_rebuild(&self, owner: &str) -> anyhow::Result<bool> {
        let mut conn = self.conn.clone();
        let set: Option<String> = redis::cmd("SET")
            .arg(self.key("rebuild-lock"))
            .arg(owner)
            .arg("NX")
            .arg("PX")
            .arg(120_000)
            .query_async(&mut conn)
            .await?;
        Ok(set.is_some())
    }

    async fn renew_rebuild(&self, owner: &str) -> anyhow::Result<bool> {
        let mut conn = self.conn.clone();
        let script = Script::new(
            "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0",
        );
        let renewed: i64 = script.key(self.key("rebuild-lock")).arg(owner).arg(120_000).invoke_async(&mut conn).await?;
        Ok(renewed == 1)
    }

    async fn unlock_rebuild(&self, owner: &str) -> anyhow::Result<()> {
        let mut conn = self.conn.clone();
        let script =
            Script::new("if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0");
        let _: i64 = script.key(self.key("rebuild-lock")).arg(owner).invoke_async(&mut conn).await?;
        Ok(())
    }

    /// Every key of this campaign except the rebuild lock.
    async fn campaign_keys(&self) -> anyhow::Result<Vec<String>> {
        let mut conn = self.conn.clone();
        let pattern = format!("{}*", escape_glob(&self.base));
        let mut cursor: u64 = 0;
        let mut keys = Vec::new();
        loop {
            let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut conn)
                .await?;
            keys.extend(batch.into_iter().filter(|k| !k.ends_with("rebuild-lock")));
            if next == 0 {
                return Ok(keys);
            }
            cursor = next;
        }
    }

    async fn apply(&self, snapshot: &Snapshot) -> anyhow::Result<()> {
        let mut conn = self.conn.clone();
        // Eligibility sets are rebuilt by the mission-log replay; keep them.
        let stale: Vec<String> =
            self.campaign_keys().await?.into_iter().filter(|k| !k.contains(":eligible:")).collect();
        for chunk in stale.chunks(500) {
            redis::cmd("DEL").arg(chunk).query_async::<()>(&mut conn).await?;
        }
        let mut pipe = redis::pipe();
        let mut queued = 0;
        for (user, coupons) in &snapshot.holders {
            let key = self.user(*user);
            let n = coupons.keys().next_back().copied().unwrap_or(0);
            pipe.hset(&key, "n", n).ignore();
            for (seq, record) in coupons {
                pipe.hset(&key, format!("c:{seq}"), record.encode()).ignore();
            }
            queued += 1;
            if queued % 1000 == 0 {
                pipe.query_async::<()>(&mut conn).await?;
                pipe = redis::pipe();
            }
        }
        for (day, issued) in snapshot.issued_per_day() {
            pipe.set_ex(self.day("issued", day), issued, DAY_TTL_SECONDS).ignore();
        }
        pipe.set(self.key("total"), snapshot.total()).ignore();
        pipe.query_async::<()>(&mut conn).await?;
        Ok(())
    }

    async fn mark_ready(&self, epoch: &str) -> anyhow::Result<()> {
        let mut conn = self.conn.clone();
        redis::cmd("SET").arg(self.key("epoch")).arg(epoch).query_async::<()>(&mut conn).await?;
        Ok(())
    }

    async fn counters(&self, day: NaiveDate) -> anyhow::Result<DayCounters> {
        let mut conn = self.conn.clone();
        let (issued, stock, total): (Option<i64>, Option<i64>, Option<i64>) = redis::pipe()
            .get(self.day("issued", day))
            .get(self.day("stock", day))
            .get(self.key("total"))
            .query_async(&mut conn)
            .await?;
        Ok(DayCounters { issued_today: issued.unwrap_or(0), remaining_today: stock, issued_total: total.unwrap_or(0) })
    }

    async fn wipe(&self) -> anyhow::Result<()> {
        let mut conn = self.conn.clone();
        for chunk in self.campaign_keys().await?.chunks(500) {
            redis::cmd("DEL").arg(chunk).query_async::<()>(&mut conn).await?;
        }
        Ok(())
    }
}

fn escape_glob(s: &str) -> String {
    s.chars().flat_map(|c| if matches!(c, '*' | '?' | '[' | ']' | '\\') { vec!['\\', c] } else { vec![c] }).collect()
}
