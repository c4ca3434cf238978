//! A small per-replica cache whose entries expire after a fixed time: for values another
//! replica may change, where serving one that is at most the TTL old is fine and a database or
//! Redis round trip per request is not. Bounded: past its capacity, expired entries go first,
//! then everything (a cold cache is correct, only slower).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::RwLock;
use std::time::{Duration, Instant};

pub struct TtlCache<K, V> {
    entries: RwLock<HashMap<K, (Instant, V)>>,
    ttl: Duration,
    capacity: usize,
    puts: std::sync::atomic::AtomicU64,
}

/// Expired entries are swept every this many puts (and whenever the cache is full).
const SWEEP_EVERY: u64 = 4096;

impl<K, V> std::fmt::Debug for TtlCache<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TtlCache(ttl {:?}, capacity {})", self.ttl, self.capacity)
    }
}

impl<K: Eq + Hash, V: Clone> TtlCache<K, V> {
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        Self { entries: RwLock::new(HashMap::new()), ttl, capacity, puts: std::sync::atomic::AtomicU64::new(0) }
    }

    /// The value put less than the TTL ago.
    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let entries = self.entries.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        entries.get(key).filter(|(at, _)| at.elapsed() < self.ttl).map(|(_, v)| v.clone())
    }

    pub fn put(&self, key: K, value: V) {
        if self.ttl.is_zero() || self.capacity == 0 {
            return;
        }
        let mut entries = self.entries.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        let sweep = self.puts.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1;
        if sweep || entries.len() >= self.capacity {
            entries.retain(|_, (at, _)| at.elapsed() < self.ttl);
            if entries.len() >= self.capacity {
                entries.clear();
            }
        }
        entries.insert(key, (Instant::now(), value));
    }

    pub fn remove(&self, key: &K) {
        self.entries.write().unwrap_or_else(std::sync::PoisonError::into_inner).remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_and_the_cache_stays_bounded() {
        let c = TtlCache::new(Duration::from_millis(50), 3);
        c.put(1, "a");
        assert_eq!(c.get(&1), Some("a"));
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(c.get(&1), None);
        for k in 0..10 {
            c.put(k, "x");
        }
        assert!(c.entries.read().unwrap().len() <= 3);
        c.remove(&9);
        assert_eq!(c.get(&9), None);
        let off = TtlCache::new(Duration::ZERO, 10);
        off.put(1, "a");
        assert_eq!(off.get(&1), None);
    }
}
