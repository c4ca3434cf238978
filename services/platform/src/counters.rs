//! Expiring counters (rate limits, windows) in Redis or in memory, with one semantics:
//! `hit` atomically increments a key and starts its window on the first hit; `peek`
//! reads without counting; `reset` forgets. Redis runs each step as one Lua script over
//! a multiplexed connection, so concurrent replicas agree.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::Script;
use redis::aio::ConnectionManager;

use crate::http::ReadinessCheck;

#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Redis")]
pub struct RedisConfig {
    /// `redis://host:6379/0`; counters and caches live here.
    #[arg(long, env = "WW_REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,
    /// Prefix of every key this deployment writes (several deployments may share Redis).
    #[arg(long, env = "WW_REDIS_KEY_PREFIX", default_value = "ww:")]
    pub redis_key_prefix: String,
}

/// The state of a counter after a hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub count: u64,
    /// Time until the window (and the count) expires.
    pub resets_in: Duration,
}

#[derive(Debug, thiserror::Error)]
#[error("counter backend: {0}")]
pub struct CounterError(String);

impl From<redis::RedisError> for CounterError {
    fn from(e: redis::RedisError) -> Self {
        CounterError(e.to_string())
    }
}

#[derive(Clone)]
pub enum Counters {
    Redis(RedisCounters),
    Memory(Arc<MemoryCounters>),
}

impl std::fmt::Debug for Counters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Counters::Redis(r) => write!(f, "Counters::Redis({})", r.prefix),
            Counters::Memory(_) => write!(f, "Counters::Memory"),
        }
    }
}

impl Counters {
    pub async fn redis(url: &str, prefix: &str) -> Result<Self, CounterError> {
        let client = redis::Client::open(url)?;
        let conn = ConnectionManager::new(client).await?;
        Ok(Counters::Redis(RedisCounters {
            conn,
            prefix: prefix.to_owned(),
            hit: Script::new(HIT_LUA),
            peek: Script::new(PEEK_LUA),
        }))
    }

    pub fn memory() -> Self {
        Counters::Memory(Arc::new(MemoryCounters::default()))
    }

    /// Counts one event in `key`'s window (started by the first hit, lasting `window`).
    pub async fn hit(&self, key: &str, window: Duration) -> Result<Window, CounterError> {
        match self {
            Counters::Redis(r) => r.hit(key, window).await,
            Counters::Memory(m) => Ok(m.hit(key, window)),
        }
    }

    /// The current window without counting; zero when none is open.
    pub async fn peek(&self, key: &str) -> Result<Window, CounterError> {
        match self {
            Counters::Redis(r) => r.peek(key).await,
            Counters::Memory(m) => Ok(m.peek(key)),
        }
    }

    pub async fn reset(&self, key: &str) -> Result<(), CounterError> {
        match self {
            Counters::Redis(r) => {
                let mut conn = r.conn.clone();
                redis::cmd("DEL").arg(r.key(key)).query_async::<()>(&mut conn).await?;
                Ok(())
            }
            Counters::Memory(m) => {
                m.lock().remove(key);
                Ok(())
            }
        }
    }

    /// The Redis connection and key prefix, for services that keep their own scripts
    /// there; `None` in the embedded mode.
    pub fn redis_connection(&self) -> Option<(ConnectionManager, String)> {
        match self {
            Counters::Redis(r) => Some((r.conn.clone(), r.prefix.clone())),
            Counters::Memory(_) => None,
        }
    }

    pub fn readiness(&self) -> Option<ReadinessCheck> {
        let Counters::Redis(r) = self else {
            return None;
        };
        let conn = r.conn.clone();
        Some(ReadinessCheck::new("redis", move || {
            let mut conn = conn.clone();
            async move { redis::cmd("PING").query_async::<String>(&mut conn).await.map(|_| ()).map_err(|e| e.to_string()) }
        }))
    }
}

// Returns {count, pttl}. The window starts on the first hit and is never extended.
const HIT_LUA: &str = r"
local c = redis.call('INCR', KEYS[1])
if c == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]); ttl = tonumber(ARGV[1]) end
return {c, ttl}
";

const PEEK_LUA: &str = r"
local c = redis.call('GET', KEYS[1])
if not c then return {0, 0} end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then ttl = 0 end
return {tonumber(c), ttl}
";

#[derive(Clone)]
pub struct RedisCounters {
    conn: ConnectionManager,
    prefix: String,
    hit: Script,
    peek: Script,
}

impl RedisCounters {
    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    async fn hit(&self, key: &str, window: Duration) -> Result<Window, CounterError> {
        let mut conn = self.conn.clone();
        let millis = u64::try_from(window.as_millis()).unwrap_or(u64::MAX).max(1);
        let (count, ttl): (u64, i64) = self.hit.key(self.key(key)).arg(millis).invoke_async(&mut conn).await?;
        Ok(window_of(count, ttl))
    }

    async fn peek(&self, key: &str) -> Result<Window, CounterError> {
        let mut conn = self.conn.clone();
        let (count, ttl): (u64, i64) = self.peek.key(self.key(key)).invoke_async(&mut conn).await?;
        Ok(window_of(count, ttl))
    }
}

fn window_of(count: u64, ttl_ms: i64) -> Window {
    Window { count, resets_in: Duration::from_millis(u64::try_from(ttl_ms).unwrap_or(0)) }
}

/// In-process counters for the embedded mode and tests.
#[derive(Default)]
pub struct MemoryCounters {
    entries: Mutex<HashMap<String, (u64, Instant)>>,
}

impl MemoryCounters {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (u64, Instant)>> {
        self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn hit(&self, key: &str, window: Duration) -> Window {
        let now = Instant::now();
        let mut entries = self.lock();
        if entries.len() > 100_000 {
            entries.retain(|_, (_, until)| *until > now);
        }
        let entry = entries.entry(key.to_owned()).or_insert((0, now + window));
        if entry.1 <= now {
            *entry = (0, now + window);
        }
        entry.0 += 1;
        Window { count: entry.0, resets_in: entry.1 - now }
    }

    fn peek(&self, key: &str) -> Window {
        let now = Instant::now();
        match self.lock().get(key) {
            Some((count, until)) if *until > now => Window { count: *count, resets_in: *until - now },
            _ => Window { count: 0, resets_in: Duration::ZERO },
        }
    }
}
