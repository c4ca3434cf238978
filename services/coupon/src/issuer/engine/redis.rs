//! The issuer state in Redis: one Lua script per step (`lua/*.lua`, each prefixed by
//! `lua/prelude.lua`), keys `{prefix}{c:<campaign>}:…` so a Redis Cluster keeps a
//! campaign on one slot. Redis must run with `maxmemory-policy noeviction`.

use chrono::NaiveDate;
use redis::Script;
use redis::aio::ConnectionManager;
use uuid::Uuid;

use super::{
    Adopt, Claim, DAY_TTL_SECONDS, DayCounters, Guarded, LEASE, ProbeReading, Record, Snapshot, Take, TakeRequest,
    UNSETTLED_GRACE, from_millis, millis,
};

const PRELUDE: &str = include_str!("lua/prelude.lua");

fn script(body: &str) -> Script {
    Script::new(&format!("{PRELUDE}\n{body}"))
}

pub(super) struct RedisEngine {
    conn: ConnectionManager,
    /// `{prefix}{c:<campaign>}:` — the braces are the Redis Cluster hash tag.
    base: String,
    take: Script,
    confirm: Script,
    release: Script,
    seed: Script,
    adopt: Script,
    replace: Script,
    claim: Script,
    probe: Script,
    mark_ready: Script,
    lease: Script,
    unsettled: Script,
}

/// A reply's first word: STALE and REBUILD are settled here, the rest by the caller.
fn guarded(reply: Vec<String>) -> Guarded<Vec<String>> {
    match reply.first().map(String::as_str) {
        Some("REBUILD") => Guarded::Rebuild,
        Some("STALE") => Guarded::Stale(reply.get(1).cloned().unwrap_or_default()),
        _ => Guarded::Done(reply),
    }
}

fn map<T>(g: Guarded<Vec<String>>, f: impl FnOnce(Vec<String>) -> anyhow::Result<T>) -> anyhow::Result<Guarded<T>> {
    Ok(match g {
        Guarded::Rebuild => Guarded::Rebuild,
        Guarded::Stale(e) => Guarded::Stale(e),
        Guarded::Done(reply) => Guarded::Done(f(reply)?),
    })
}

fn record_at(reply: &[String], i: usize) -> anyhow::Result<Record> {
    reply.get(i).and_then(|r| Record::decode(r)).ok_or_else(|| anyhow::anyhow!("corrupt coupon record in {reply:?}"))
}

fn number<T: std::str::FromStr>(reply: &[String], i: usize) -> anyhow::Result<T> {
    reply.get(i).and_then(|s| s.parse().ok()).ok_or_else(|| anyhow::anyhow!("malformed reply {reply:?}"))
}

impl RedisEngine {
    pub(super) fn new(conn: ConnectionManager, prefix: &str, campaign: &str) -> Self {
        Self {
            conn,
            base: format!("{prefix}{{c:{campaign}}}:"),
            take: script(include_str!("lua/take.lua")),
            confirm: script(include_str!("lua/confirm.lua")),
            release: script(include_str!("lua/release.lua")),
            seed: script(include_str!("lua/seed.lua")),
            adopt: script(include_str!("lua/adopt.lua")),
            replace: script(include_str!("lua/replace.lua")),
            claim: script(include_str!("lua/claim.lua")),
            probe: script(include_str!("lua/probe.lua")),
            mark_ready: script(include_str!("lua/mark_ready.lua")),
            lease: script(include_str!("lua/lease.lua")),
            unsettled: script(include_str!("lua/unsettled.lua")),
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

    /// The keys of the steps that give a unit back or count one in (`release`, `adopt`):
    /// epoch, holder, the day's stock and count, the total, the pending and unsettled sets.
    fn unit_keys<'a>(&self, script: &'a Script, user: Uuid, day: NaiveDate) -> redis::ScriptInvocation<'a> {
        let mut invocation = script.key(self.key("epoch"));
        invocation
            .key(self.user(user))
            .key(self.day("stock", day))
            .key(self.day("issued", day))
            .key(self.key("total"))
            .key(self.key("pending"))
            .key(self.key("unsettled"));
        invocation
    }

    pub(super) async fn take(&self, epoch: &str, clock: &str, req: &TakeRequest<'_>) -> anyhow::Result<Guarded<Take>> {
        let mut conn = self.conn.clone();
        let reply: Vec<String> = self
            .take
            .key(self.key("epoch"))
            .key(self.day("stock", req.day))
            .key(self.day("issued", req.day))
            .key(self.key("total"))
            .key(self.day("eligible", req.day))
            .key(self.user(req.user))
            .key(self.key("pending"))
            .key(self.key("unsettled"))
            .arg(epoch)
            .arg(clock)
            .arg(req.user.to_string())
            .arg(req.per_user)
            .arg(if req.require_eligible { "1" } else { "0" })
            .arg(req.total_limit.unwrap_or(0))
            .arg(req.idempotency_key.unwrap_or(""))
            .arg(millis(req.opens_at))
            .arg(millis(req.closes_at))
            .arg(req.coupon_id.to_string())
            .arg(req.code)
            .arg(req.day.to_string())
            .arg(req.validity.num_milliseconds())
            .invoke_async(&mut conn)
            .await?;
        map(guarded(reply), |reply| {
            Ok(match reply.first().map(String::as_str).unwrap_or_default() {
                "OUTSIDE" => Take::Outside { now: from_millis(number(&reply, 1)?) },
                "UNSEEDED" => Take::Unseeded,
                "SOLD_OUT_TODAY" => Take::SoldOutToday,
                "SOLD_OUT_TOTAL" => Take::SoldOutTotal,
                "NOT_ELIGIBLE" => Take::NotEligible,
                "TAKEN" => Take::Taken { seq: number(&reply, 1)?, record: record_at(&reply, 2)? },
                "HOLDS" => Take::Holds {
                    seq: number(&reply, 1)?,
                    record: record_at(&reply, 2)?,
                    now: from_millis(number(&reply, 3)?),
                },
                other => anyhow::bail!("unexpected reply from the take script: {other:?}"),
            })
        })
    }

    pub(super) async fn confirm(
        &self,
        epoch: &str,
        clock: &str,
        user: Uuid,
        seq: u32,
        coupon_id: Uuid,
    ) -> anyhow::Result<bool> {
        let mut conn = self.conn.clone();
        let done: i64 = self
            .confirm
            .key(self.key("epoch"))
            .key(self.user(user))
            .key(self.key("pending"))
            .key(self.key("unsettled"))
            .arg(epoch)
            .arg(seq)
            .arg(coupon_id.to_string())
            .arg(user.to_string())
            .arg(clock)
            .arg(UNSETTLED_GRACE.as_millis() as u64)
            .invoke_async(&mut conn)
            .await?;
        Ok(done == 1)
    }

    pub(super) async fn release(
        &self,
        epoch: &str,
        clock: &str,
        user: Uuid,
        seq: u32,
        record: &Record,
    ) -> anyhow::Result<bool> {
        let mut conn = self.conn.clone();
        let done: i64 = self
            .unit_keys(&self.release, user, record.day)
            .arg(epoch)
            .arg(seq)
            .arg(record.coupon_id.to_string())
            .arg(user.to_string())
            .arg(clock)
            .arg(UNSETTLED_GRACE.as_millis() as u64)
            .invoke_async(&mut conn)
            .await?;
        Ok(done == 1)
    }

    pub(super) async fn seed(
        &self,
        epoch: &str,
        day: NaiveDate,
        daily: u32,
        total_limit: Option<u64>,
    ) -> anyhow::Result<Guarded<Option<i64>>> {
        let mut conn = self.conn.clone();
        let stock: i64 = self
            .seed
            .key(self.key("epoch"))
            .key(self.day("stock", day))
            .key(self.day("issued", day))
            .key(self.key("total"))
            .arg(epoch)
            .arg(daily)
            .arg(total_limit.unwrap_or(0))
            .arg(DAY_TTL_SECONDS)
            .invoke_async(&mut conn)
            .await?;
        Ok(match stock {
            -1 => Guarded::Rebuild,
            // Another epoch: the caller reads it with a probe and asks again.
            -2 => Guarded::Stale(self.current_epoch().await?),
            s => Guarded::Done(Some(s)),
        })
    }

    async fn current_epoch(&self) -> anyhow::Result<String> {
        let mut conn = self.conn.clone();
        let epoch: Option<String> = redis::cmd("GET").arg(self.key("epoch")).query_async(&mut conn).await?;
        Ok(epoch.unwrap_or_default())
    }

    pub(super) async fn adopt(
        &self,
        epoch: &str,
        clock: &str,
        user: Uuid,
        seq: u32,
        record: &Record,
    ) -> anyhow::Result<Guarded<Adopt>> {
        let mut conn = self.conn.clone();
        let reply: Vec<String> = self
            .unit_keys(&self.adopt, user, record.day)
            .arg(epoch)
            .arg(seq)
            .arg(record.coupon_id.to_string())
            .arg(record.clone().issued().encode())
            .arg(user.to_string())
            .arg(DAY_TTL_SECONDS)
            .arg(clock)
            .arg(UNSETTLED_GRACE.as_millis() as u64)
            .invoke_async(&mut conn)
            .await?;
        map(guarded(reply), |reply| {
            Ok(match reply.first().map(String::as_str).unwrap_or_default() {
                "KNOWN" => Adopt::Known,
                "CONFIRMED" => Adopt::Confirmed,
                "ADOPTED" => Adopt::Adopted,
                "OVERSOLD" => Adopt::Oversold,
                "CONFLICT" => Adopt::Conflict(record_at(&reply, 1)?),
                other => anyhow::bail!("unexpected reply from the adopt script: {other:?}"),
            })
        })
    }

    pub(super) async fn replace(
        &self,
        epoch: &str,
        user: Uuid,
        seq: u32,
        record: &Record,
    ) -> anyhow::Result<Guarded<()>> {
        let mut conn = self.conn.clone();
        let reply: Vec<String> = self
            .replace
            .key(self.key("epoch"))
            .key(self.user(user))
            .key(self.key("pending"))
            .arg(epoch)
            .arg(seq)
            .arg(record.clone().issued().encode())
            .arg(user.to_string())
            .invoke_async(&mut conn)
            .await?;
        map(guarded(reply), |_| Ok(()))
    }

    pub(super) async fn claim_stale(
        &self,
        epoch: &str,
        clock: &str,
        older_ms: i64,
        max: usize,
    ) -> anyhow::Result<Guarded<Vec<Claim>>> {
        let mut conn = self.conn.clone();
        let reply: Vec<String> = self
            .claim
            .key(self.key("epoch"))
            .key(self.key("pending"))
            .arg(epoch)
            .arg(clock)
            .arg(older_ms)
            .arg(max)
            .invoke_async(&mut conn)
            .await?;
        map(guarded(reply), |reply| Ok(reply.iter().skip(1).filter_map(|m| Claim::parse(m)).collect()))
    }

    pub(super) async fn unsettled(&self, clock: &str) -> anyhow::Result<(i64, Vec<Uuid>)> {
        let mut conn = self.conn.clone();
        let reply: Vec<String> = self
            .unsettled
            .key(self.key("unsettled"))
            .arg(clock)
            .arg(UNSETTLED_GRACE.as_millis() as u64)
            .invoke_async(&mut conn)
            .await?;
        let now = number(&reply, 0)?;
        Ok((now, reply.iter().skip(1).filter_map(|u| Uuid::parse_str(u).ok()).collect()))
    }

    pub(super) async fn holder(&self, user: Uuid, seq: u32) -> anyhow::Result<Option<Record>> {
        let mut conn = self.conn.clone();
        let raw: Option<String> =
            redis::cmd("HGET").arg(self.user(user)).arg(format!("c:{seq}")).query_async(&mut conn).await?;
        Ok(raw.and_then(|r| Record::decode(&r)))
    }

    pub(super) async fn forget(&self, claim: Claim) -> anyhow::Result<()> {
        let mut conn = self.conn.clone();
        redis::cmd("ZREM").arg(self.key("pending")).arg(claim.member()).query_async::<()>(&mut conn).await?;
        Ok(())
    }

    pub(super) async fn add_eligible(&self, day: NaiveDate, user: Uuid) -> anyhow::Result<()> {
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

    pub(super) async fn probe(&self, clock: &str) -> anyhow::Result<ProbeReading> {
        let mut conn = self.conn.clone();
        let reply: Vec<String> = self.probe.key(self.key("epoch")).arg(clock).invoke_async(&mut conn).await?;
        Ok(ProbeReading {
            epoch: reply.first().cloned().unwrap_or_default(),
            run_id: reply.get(1).cloned().unwrap_or_default(),
            eviction_policy: reply.get(2).cloned().unwrap_or_default(),
            now: from_millis(number(&reply, 3)?),
        })
    }

    pub(super) async fn lock_rebuild(&self, owner: &str) -> anyhow::Result<bool> {
        let mut conn = self.conn.clone();
        let set: Option<String> = redis::cmd("SET")
            .arg(self.key("rebuild-lock"))
            .arg(owner)
            .arg("NX")
            .arg("PX")
            .arg(LEASE.as_millis() as u64)
            .query_async(&mut conn)
            .await?;
        Ok(set.is_some())
    }

    /// Renews (`keep`) or releases the lease, only for its owner.
    pub(super) async fn lease(&self, owner: &str, keep: bool) -> anyhow::Result<bool> {
        let mut conn = self.conn.clone();
        let ttl = if keep { LEASE.as_millis() as u64 } else { 0 };
        let done: i64 = self.lease.key(self.key("rebuild-lock")).arg(owner).arg(ttl).invoke_async(&mut conn).await?;
        Ok(done == 1)
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

    pub(super) async fn apply(&self, snapshot: &Snapshot) -> anyhow::Result<()> {
        let mut conn = self.conn.clone();
        // Eligibility sets are rebuilt by the mission-log replay; keep them. The epoch
        // goes too (a state restored from an older snapshot still has one).
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
                pipe.hset(&key, format!("c:{seq}"), record.clone().issued().encode()).ignore();
                if let Some(k) = &record.idempotency_key {
                    pipe.hset(&key, format!("k:{k}"), seq).ignore();
                }
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

    pub(super) async fn mark_ready(&self, owner: &str, id: &str) -> anyhow::Result<Option<String>> {
        let mut conn = self.conn.clone();
        let epoch: String = self
            .mark_ready
            .key(self.key("rebuild-lock"))
            .key(self.key("epoch"))
            .arg(owner)
            .arg(id)
            .invoke_async(&mut conn)
            .await?;
        Ok((!epoch.is_empty()).then_some(epoch))
    }

    pub(super) async fn counters(&self, day: NaiveDate) -> anyhow::Result<DayCounters> {
        let mut conn = self.conn.clone();
        let (issued, stock, total): (Option<i64>, Option<i64>, Option<i64>) = redis::pipe()
            .get(self.day("issued", day))
            .get(self.day("stock", day))
            .get(self.key("total"))
            .query_async(&mut conn)
            .await?;
        Ok(DayCounters { issued_today: issued.unwrap_or(0), remaining_today: stock, issued_total: total.unwrap_or(0) })
    }

    /// True for the one caller that takes `what`'s turn within `period` (SET NX PX).
    pub(super) async fn turn(&self, what: &str, period: std::time::Duration) -> anyhow::Result<bool> {
        let mut conn = self.conn.clone();
        let taken: Option<String> = redis::cmd("SET")
            .arg(self.key(&format!("turn:{what}")))
            .arg(1)
            .arg("NX")
            .arg("PX")
            .arg(u64::try_from(period.as_millis()).unwrap_or(u64::MAX).max(1))
            .query_async(&mut conn)
            .await?;
        Ok(taken.is_some())
    }

    pub(super) async fn wipe(&self) -> anyhow::Result<()> {
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
