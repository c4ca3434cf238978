//! [`WeatherSource`]: weather for a cell, from the cache when fresh, else from the provider
//! — at most one upstream call per cell at a time in a process (concurrent misses share one
//! flight) and across replicas (a Redis lease per cell; the others wait for its value in the
//! cache). When the provider is down or slow, the last known value (Redis, else SQL) is
//! served marked stale after a bounded wait; with none, a clear error — never a hang.
//!
//! Other services (missions) read weather through this type, with the same cache keys: they
//! never call the weather service on their request path (docs/decisions/0012).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::FutureExt as _;
use futures::future::{BoxFuture, Shared};
use platform::clock::Clock;
use platform::db::Database;
use redis::aio::ConnectionManager;

use crate::model::{Cell, Weather};
use crate::provider::{Provider, ProviderError};

/// How long answers stay good, and how long a request waits.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// A cached value younger than this is served without asking the provider.
    pub fresh: Duration,
    /// A value older than this is never served, not even marked stale.
    pub stale_max: Duration,
    /// The longest one upstream call may take.
    pub upstream_timeout: Duration,
    /// How long a request holding a last known value waits for a refresh before serving
    /// that value marked stale.
    pub stale_after: Duration,
}

/// Why no weather could be given.
#[derive(Debug, Clone, thiserror::Error)]
#[error("no weather for this place: {0}")]
pub struct Unavailable(pub ProviderError);

type Flight = Shared<BoxFuture<'static, Result<Weather, ProviderError>>>;

pub enum Cache {
    Redis { conn: ConnectionManager, prefix: String },
    Memory(Mutex<HashMap<Cell, Weather>>),
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Cache::Redis { prefix, .. } => write!(f, "Cache::Redis({prefix})"),
            Cache::Memory(_) => write!(f, "Cache::Memory"),
        }
    }
}

/// The longest any one Redis call may take: a stalled Redis is a miss, not a hang.
const REDIS_TIMEOUT: Duration = Duration::from_secs(1);
/// Cells the in-memory cache keeps before dropping values past their last use.
const MEMORY_CELLS: usize = 50_000;

async fn bounded<T>(call: impl Future<Output = redis::RedisResult<T>>) -> anyhow::Result<T> {
    Ok(tokio::time::timeout(REDIS_TIMEOUT, call)
        .await
        .map_err(|_| anyhow::anyhow!("Redis did not answer within {REDIS_TIMEOUT:?}"))??)
}

/// Deletes the lease only while it is still ours.
const RELEASE: &str =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end";

impl Cache {
    pub fn memory() -> Self {
        Cache::Memory(Mutex::default())
    }

    /// `prefix` is the platform's Redis key prefix.
    pub fn redis(conn: ConnectionManager, prefix: &str) -> Self {
        Cache::Redis { conn, prefix: prefix.to_owned() }
    }

    /// The key of a cell's value: `{prefix}weather:v1:{lat10}:{lon10}`, shared by every
    /// service that reads weather.
    fn key(prefix: &str, cell: Cell) -> String {
        format!("{prefix}weather:v1:{}", cell.key())
    }

    fn lease_key(prefix: &str, cell: Cell) -> String {
        format!("{prefix}weather:lease:{}", cell.key())
    }

    /// Set briefly by a refresh that failed, so replicas waiting on it fail too instead of
    /// waiting out its lease or asking the provider again at once.
    fn failed_key(prefix: &str, cell: Cell) -> String {
        format!("{prefix}weather:failed:{}", cell.key())
    }

    async fn get(&self, cell: Cell) -> anyhow::Result<Option<Weather>> {
        match self {
            Cache::Redis { conn, prefix } => {
                let raw: Option<String> =
                    bounded(redis::cmd("GET").arg(Self::key(prefix, cell)).query_async(&mut conn.clone())).await?;
                // A value this version cannot read is a miss, not an error.
                Ok(raw.and_then(|r| serde_json::from_str(&r).ok()))
            }
            Cache::Memory(m) => Ok(m.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(&cell).cloned()),
        }
    }

    async fn put(&self, cell: Cell, weather: &Weather, keep: Duration) -> anyhow::Result<()> {
        match self {
            Cache::Redis { conn, prefix } => {
                bounded(
                    redis::cmd("SET")
                        .arg(Self::key(prefix, cell))
                        .arg(serde_json::to_string(weather)?)
                        .arg("PX")
                        .arg(u64::try_from(keep.as_millis()).unwrap_or(u64::MAX).max(1))
                        .query_async::<()>(&mut conn.clone()),
                )
                .await?;
            }
            Cache::Memory(m) => {
                let mut cells = m.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                if cells.len() >= MEMORY_CELLS {
                    let keep = chrono::Duration::from_std(keep).unwrap_or(chrono::Duration::MAX);
                    cells.retain(|_, w| weather.fetched_at - w.fetched_at < keep);
                }
                cells.insert(cell, weather.clone());
            }
        }
        Ok(())
    }

    /// Takes the cell's refresh lease for `hold` under `token` (Redis); true when taken.
    async fn lease(&self, cell: Cell, token: &str, hold: Duration) -> anyhow::Result<bool> {
        match self {
            Cache::Redis { conn, prefix } => {
                let set: Option<String> = bounded(
                    redis::cmd("SET")
                        .arg(Self::lease_key(prefix, cell))
                        .arg(token)
                        .arg("NX")
                        .arg("PX")
                        .arg(u64::try_from(hold.as_millis()).unwrap_or(u64::MAX).max(1))
                        .query_async(&mut conn.clone()),
                )
                .await?;
                Ok(set.is_some())
            }
            // One process: its flights are the only callers.
            Cache::Memory(_) => Ok(true),
        }
    }

    async fn release(&self, cell: Cell, token: &str) {
        if let Cache::Redis { conn, prefix } = self {
            let script = redis::Script::new(RELEASE);
            let mut invocation = script.key(Self::lease_key(prefix, cell));
            invocation.arg(token);
            let _: anyhow::Result<i64> = bounded(invocation.invoke_async(&mut conn.clone())).await;
        }
    }

    async fn mark_failed(&self, cell: Cell, error: &ProviderError, for_: Duration) {
        if let Cache::Redis { conn, prefix } = self {
            let Ok(text) = serde_json::to_string(&FailedRefresh::from(error)) else { return };
            let _: anyhow::Result<()> = bounded(
                redis::cmd("SET")
                    .arg(Self::failed_key(prefix, cell))
                    .arg(text)
                    .arg("PX")
                    .arg(u64::try_from(for_.as_millis()).unwrap_or(u64::MAX).max(1))
                    .query_async::<()>(&mut conn.clone()),
            )
            .await;
        }
    }

    /// A refresh of `cell` that failed moments ago on some replica.
    async fn failed(&self, cell: Cell) -> Option<ProviderError> {
        let Cache::Redis { conn, prefix } = self else { return None };
        let raw: Option<String> =
            bounded(redis::cmd("GET").arg(Self::failed_key(prefix, cell)).query_async(&mut conn.clone())).await.ok()?;
        raw.and_then(|r| serde_json::from_str::<FailedRefresh>(&r).ok()).map(ProviderError::from)
    }

    /// Whether anyone holds the cell's lease (a Redis error counts as held: wait for the value).
    async fn leased(&self, cell: Cell) -> bool {
        let Cache::Redis { conn, prefix } = self else { return false };
        bounded(redis::cmd("EXISTS").arg(Self::lease_key(prefix, cell)).query_async::<i64>(&mut conn.clone()))
            .await
            .map_or(true, |n| n > 0)
    }
}

/// A failed refresh as other replicas read it.
#[derive(serde::Serialize, serde::Deserialize)]
struct FailedRefresh {
    outcome: String,
    detail: String,
}

impl From<&ProviderError> for FailedRefresh {
    fn from(e: &ProviderError) -> Self {
        Self { outcome: e.outcome().to_owned(), detail: e.to_string() }
    }
}

impl From<FailedRefresh> for ProviderError {
    fn from(f: FailedRefresh) -> Self {
        match f.outcome.as_str() {
            "timeout" => ProviderError::Timeout(0),
            "malformed" => ProviderError::Malformed(f.detail),
            "refused" | "rate-limited" => {
                ProviderError::Refused { status: if f.outcome == "rate-limited" { 429 } else { 502 }, reason: f.detail }
            }
            _ => ProviderError::Unreachable(f.detail),
        }
    }
}

struct Inner {
    provider: Provider,
    cache: Cache,
    /// Where the last value of each cell outlives the cache (the weather service's own
    /// database; readers in other services go without).
    store: Option<Database>,
    clock: Clock,
    timing: Timing,
    flights: Mutex<HashMap<Cell, (u64, Flight)>>,
    next_flight: std::sync::atomic::AtomicU64,
    /// Fresh values this replica read lately, for [`LOCAL_TTL`]: the busiest cells cost no
    /// Redis round trip (a value is at most that much older than another replica's).
    /// With each value, its JSON as the API answers it (serialized once, not per request).
    /// Shared, not copied, on each hit: a weather value is a dozen hours and days of forecast.
    local: platform::ttl::TtlCache<Cell, Arc<(Weather, bytes::Bytes)>>,
}

/// How long a failed refresh answers for the cell on every replica (no one asks the provider
/// again in that time: a failing provider is not hammered by every replica in turn).
pub const FAILURE_SHARED_FOR: Duration = Duration::from_secs(2);

/// How long a replica serves a fresh value it read without asking Redis again.
pub const LOCAL_TTL: Duration = Duration::from_secs(2);

/// Removes a flight's entry when its task ends however it ends (also by a panic): a finished
/// flight is never served again.
struct Landing {
    inner: Arc<Inner>,
    cell: Cell,
    id: u64,
}

impl Drop for Landing {
    fn drop(&mut self) {
        let mut flights = self.inner.flights.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if flights.get(&self.cell).is_some_and(|(id, _)| *id == self.id) {
            flights.remove(&self.cell);
        }
    }
}

#[derive(Clone)]
pub struct WeatherSource(Arc<Inner>);

impl std::fmt::Debug for WeatherSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WeatherSource({}, {:?})", self.0.provider.name(), self.0.cache)
    }
}

impl WeatherSource {
    pub fn new(provider: Provider, cache: Cache, store: Option<Database>, clock: Clock, timing: Timing) -> Self {
        Self(Arc::new(Inner {
            provider,
            cache,
            store,
            clock,
            timing,
            flights: Mutex::default(),
            next_flight: std::sync::atomic::AtomicU64::new(0),
            local: platform::ttl::TtlCache::new(LOCAL_TTL, MEMORY_CELLS),
        }))
    }

    pub fn provider(&self) -> &'static str {
        self.0.provider.name()
    }

    fn age(&self, w: &Weather, now: DateTime<Utc>) -> Duration {
        (now - w.fetched_at).to_std().unwrap_or(Duration::ZERO)
    }

    /// The weather of `cell`: fresh from the cache, else refreshed, else the last known
    /// value marked stale, else [`Unavailable`] — within `stale_after` when a last known
    /// value exists and `upstream_timeout` (plus a little) when none does.
    pub async fn get(&self, cell: Cell) -> Result<Weather, Unavailable> {
        let t = self.0.timing;
        let now = self.0.clock.now();
        if let Some(kept) = self.0.local.get(&cell)
            && self.age(&kept.0, now) < t.fresh
        {
            metrics::counter!("weather_reads_total", "result" => "fresh").increment(1);
            return Ok(kept.0.clone());
        }
        let cached = self.0.cache.get(cell).await.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "weather cache unreadable");
            None
        });
        if let Some(w) = &cached
            && self.age(w, now) < t.fresh
        {
            metrics::counter!("weather_reads_total", "result" => "fresh").increment(1);
            self.keep(cell, w);
            return Ok(w.clone());
        }
        let flight = self.flight(cell);
        let mut last = cached.filter(|w| self.age(w, now) <= t.stale_max);
        let waited = match &last {
            Some(_) => tokio::time::timeout(t.stale_after, flight.clone()).await,
            None => tokio::time::timeout(t.stale_after.min(t.upstream_timeout), flight.clone()).await,
        };
        let failure = match waited {
            Ok(Ok(w)) => {
                metrics::counter!("weather_reads_total", "result" => "refreshed").increment(1);
                self.keep(cell, &w);
                return Ok(w);
            }
            Ok(Err(e)) => Some(e),
            Err(_) => None,
        };
        if last.is_none() {
            last = self.last_known(cell).await.filter(|w| self.age(w, now) <= t.stale_max);
        }
        if let Some(w) = last {
            metrics::counter!("weather_reads_total", "result" => "stale").increment(1);
            return Ok(Weather { stale: true, ..w });
        }
        // Nothing to fall back on: the refresh is the only answer, for as long as it may take.
        let outcome = match failure {
            Some(e) => Err(e),
            None => match tokio::time::timeout(t.upstream_timeout + Duration::from_millis(500), flight).await {
                Ok(result) => result,
                Err(_) => {
                    Err(ProviderError::Timeout(u64::try_from(t.upstream_timeout.as_millis()).unwrap_or(u64::MAX)))
                }
            },
        };
        let result = if outcome.is_ok() { "refreshed" } else { "unavailable" };
        metrics::counter!("weather_reads_total", "result" => result).increment(1);
        outcome.map_err(Unavailable)
    }

    /// Keeps a fresh value (and its JSON) in this replica for [`LOCAL_TTL`].
    fn keep(&self, cell: Cell, w: &Weather) {
        if let Ok(json) = serde_json::to_vec(w) {
            self.0.local.put(cell, Arc::new((w.clone(), bytes::Bytes::from(json))));
        }
    }

    /// [`WeatherSource::get`] as the API's JSON, and whether it is stale. A fresh value read
    /// lately is answered from its serialized form.
    pub async fn get_json(&self, cell: Cell) -> Result<(bytes::Bytes, bool), Unavailable> {
        let fresh = |w: &Weather| self.age(w, self.0.clock.now()) < self.0.timing.fresh;
        if let Some(kept) = self.0.local.get(&cell)
            && fresh(&kept.0)
        {
            metrics::counter!("weather_reads_total", "result" => "fresh").increment(1);
            return Ok((kept.1.clone(), false));
        }
        let weather = self.get(cell).await?;
        // A fresh value was just kept with its JSON; a stale one is serialized here.
        if let Some(kept) = self.0.local.get(&cell)
            && kept.0 == weather
        {
            return Ok((kept.1.clone(), false));
        }
        let json = serde_json::to_vec(&weather).map_err(|e| Unavailable(ProviderError::Malformed(e.to_string())))?;
        Ok((bytes::Bytes::from(json), weather.stale))
    }

    async fn last_known(&self, cell: Cell) -> Option<Weather> {
        let db = self.0.store.as_ref()?;
        match crate::store::last_known(&db.pool, cell).await {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the last known weather");
                None
            }
        }
    }

    /// The refresh of `cell` in flight, started when there is none. It runs on its own task:
    /// a request that gives up does not cancel it, and its value fills the cache.
    fn flight(&self, cell: Cell) -> Flight {
        let mut flights = self.0.flights.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((_, f)) = flights.get(&cell) {
            return f.clone();
        }
        let id = self.0.next_flight.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let landing = Landing { inner: self.0.clone(), cell, id };
        // The task removes its entry when it ends; it cannot before the entry is in (the lock
        // is held until then).
        let task = tokio::spawn(async move {
            let landing = landing;
            refresh(&landing.inner, cell).await
        });
        let flight = async move { task.await.unwrap_or_else(|e| Err(ProviderError::Unreachable(e.to_string()))) }
            .boxed()
            .shared();
        flights.insert(cell, (id, flight.clone()));
        flight
    }
}

/// One refresh of `cell`: this replica asks the provider when it gets the cell's lease; else
/// it waits for the holder's value to reach the cache — or its failure, or for the lease to
/// be gone (the holder died), and then takes it.
async fn refresh(inner: &Inner, cell: Cell) -> Result<Weather, ProviderError> {
    let t = inner.timing;
    let timeout_ms = u64::try_from(t.upstream_timeout.as_millis()).unwrap_or(u64::MAX);
    let hold = t.upstream_timeout + Duration::from_secs(1);
    let token = uuid::Uuid::new_v4().to_string();
    let started = inner.clock.now();
    let deadline = tokio::time::Instant::now() + hold;
    loop {
        // A refresh that failed moments ago (anywhere) answers for the cell: the provider is
        // not asked again until its window passes.
        if let Some(e) = inner.cache.failed(cell).await {
            return Err(e);
        }
        let leased = match inner.cache.lease(cell, &token, hold).await {
            Ok(leased) => leased,
            Err(e) => {
                // Redis down: every replica may ask; the provider's limits still hold per cell.
                tracing::warn!(error = %e, "weather lease unavailable; refreshing without it");
                true
            }
        };
        if leased {
            break;
        }
        // Another replica is refreshing: its value, its failure, or its lease gone.
        loop {
            if tokio::time::Instant::now() >= deadline {
                return Err(ProviderError::Timeout(timeout_ms));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            if let Ok(Some(w)) = inner.cache.get(cell).await
                && w.fetched_at >= started - chrono::Duration::from_std(t.fresh).unwrap_or_default()
            {
                return Ok(w);
            }
            if let Some(e) = inner.cache.failed(cell).await {
                return Err(e);
            }
            if !inner.cache.leased(cell).await {
                break;
            }
        }
    }
    let now = inner.clock.now();
    let fetched = match tokio::time::timeout(t.upstream_timeout, inner.provider.fetch(cell, now)).await {
        Ok(r) => r,
        Err(_) => Err(ProviderError::Timeout(timeout_ms)),
    };
    match &fetched {
        Ok(weather) => {
            if let Err(e) = inner.cache.put(cell, weather, t.stale_max.max(t.fresh)).await {
                tracing::warn!(error = %e, "cannot cache weather");
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, provider = inner.provider.name(), cell = %cell.key(), "weather refresh failed");
            inner.cache.mark_failed(cell, e, FAILURE_SHARED_FOR).await;
        }
    }
    inner.cache.release(cell, &token).await;
    if let (Ok(weather), Some(db)) = (&fetched, &inner.store)
        && let Err(e) = crate::store::remember(&db.pool, cell, weather).await
    {
        tracing::warn!(error = %e, "cannot store the last known weather");
    }
    fetched
}
