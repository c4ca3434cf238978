//! Who is in a room, across gateways: each gateway writes its own socket count per room to a
//! shared table (a Redis hash per room, a field per gateway with the time it was written; a
//! process-wide table in the embedded mode), sums the fresh fields of the rooms it serves every
//! second, and sends `presence {online}` to its sockets there when the sum changed. A gateway
//! that died stops refreshing its fields and drops out of the sums after [`STALE_AFTER`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use redis::aio::ConnectionManager;
use tokio::sync::watch;

use crate::hub::Hub;
use crate::protocol::ServerFrame;

/// How often a gateway writes its counts and reads the sums.
pub const EVERY: Duration = Duration::from_secs(1);
/// A gateway's count older than this no longer counts (it stopped refreshing it).
pub const STALE_AFTER: Duration = Duration::from_secs(10);

/// Counts by room, then by gateway: (sockets, written at in ms).
type Table = HashMap<String, HashMap<String, (u64, i64)>>;

pub enum PresenceStore {
    Redis { conn: ConnectionManager, prefix: String },
    Memory(Arc<Mutex<Table>>),
}

impl std::fmt::Debug for PresenceStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PresenceStore::Redis { prefix, .. } => write!(f, "PresenceStore::Redis({prefix})"),
            PresenceStore::Memory(_) => write!(f, "PresenceStore::Memory"),
        }
    }
}

/// The table every gateway of this process shares in the embedded mode.
fn process_table(cluster: &str) -> Arc<Mutex<Table>> {
    static TABLES: OnceLock<Mutex<HashMap<String, Arc<Mutex<Table>>>>> = OnceLock::new();
    let tables = TABLES.get_or_init(Mutex::default);
    tables.lock().unwrap_or_else(std::sync::PoisonError::into_inner).entry(cluster.to_owned()).or_default().clone()
}

impl PresenceStore {
    pub fn memory(cluster: &str) -> Self {
        PresenceStore::Memory(process_table(cluster))
    }

    fn key(prefix: &str, room: &str) -> String {
        format!("{prefix}presence:{{{room}}}")
    }

    /// Writes this gateway's counts (0 for a room it no longer has sockets in) and returns the
    /// fresh sums of those rooms.
    async fn exchange(
        &self,
        gateway: &str,
        counts: &[(String, u64)],
        now_ms: i64,
    ) -> anyhow::Result<Vec<(String, u64)>> {
        let fresh = |at: i64| now_ms - at <= i64::try_from(STALE_AFTER.as_millis()).unwrap_or(i64::MAX);
        match self {
            PresenceStore::Redis { conn, prefix } => {
                let mut conn = conn.clone();
                let mut write = redis::pipe();
                for (room, n) in counts {
                    let key = Self::key(prefix, room);
                    write.hset(&key, gateway, format!("{n}:{now_ms}")).ignore();
                    write.pexpire(&key, i64::try_from(STALE_AFTER.as_millis() * 6).unwrap_or(60_000)).ignore();
                }
                write.query_async::<()>(&mut conn).await?;
                let mut read = redis::pipe();
                for (room, _) in counts {
                    read.hvals(Self::key(prefix, room));
                }
                let all: Vec<Vec<String>> = read.query_async(&mut conn).await?;
                Ok(counts
                    .iter()
                    .zip(all)
                    .map(|((room, _), values)| {
                        let sum = values
                            .iter()
                            .filter_map(|v| v.split_once(':'))
                            .filter_map(|(n, at)| Some((n.parse::<u64>().ok()?, at.parse::<i64>().ok()?)))
                            .filter(|(_, at)| fresh(*at))
                            .map(|(n, _)| n)
                            .sum();
                        (room.clone(), sum)
                    })
                    .collect())
            }
            PresenceStore::Memory(table) => {
                let mut table = table.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                for (room, n) in counts {
                    table.entry(room.clone()).or_default().insert(gateway.to_owned(), (*n, now_ms));
                }
                Ok(counts
                    .iter()
                    .map(|(room, _)| {
                        let sum = table
                            .get(room)
                            .map(|g| g.values().filter(|(_, at)| fresh(*at)).map(|(n, _)| *n).sum())
                            .unwrap_or(0);
                        (room.clone(), sum)
                    })
                    .collect())
            }
        }
    }
}

/// Runs one gateway's presence until `stop`.
pub async fn run(store: PresenceStore, gateway: String, hub: Arc<Hub>, mut stop: watch::Receiver<bool>) {
    // The sums last sent per room, and the rooms this gateway wrote a count for.
    let mut sent: HashMap<String, u64> = HashMap::new();
    // Local counts last round: a room whose own sockets changed hears the sum again (a socket
    // that just joined learns it even when someone else left at the same time).
    let mut last_local: HashMap<String, u64> = HashMap::new();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(EVERY) => {}
            _ = stop.wait_for(|s| *s) => break,
        }
        let local: HashMap<String, u64> =
            hub.local_counts().into_iter().map(|(room, n)| (room, u64::try_from(n).unwrap_or(u64::MAX))).collect();
        // Rooms left empty are written once as 0, so the others' sums drop at once.
        let mut counts: Vec<(String, u64)> = local.iter().map(|(r, n)| (r.clone(), *n)).collect();
        counts.extend(sent.keys().filter(|r| !local.contains_key(*r)).map(|r| (r.clone(), 0)));
        if counts.is_empty() {
            continue;
        }
        let now_ms = chrono::Utc::now().timestamp_millis();
        match store.exchange(&gateway, &counts, now_ms).await {
            Ok(sums) => {
                for (room, online) in sums {
                    if !local.contains_key(&room) {
                        sent.remove(&room);
                        continue;
                    }
                    let joined = last_local.get(&room) != local.get(&room);
                    if sent.get(&room) != Some(&online) || joined {
                        hub.broadcast(&room, &ServerFrame::Presence { online });
                        sent.insert(room, online);
                    }
                }
            }
            Err(e) => tracing::debug!(error = %format!("{e:#}"), "presence unavailable this round"),
        }
        last_local = local;
    }
    // Leaving: this gateway's sockets are gone.
    let gone: Vec<(String, u64)> = sent.keys().map(|r| (r.clone(), 0)).collect();
    if !gone.is_empty() {
        let _ = store.exchange(&gateway, &gone, chrono::Utc::now().timestamp_millis()).await;
    }
}
