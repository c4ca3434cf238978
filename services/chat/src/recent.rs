//! The newest messages of each room, for the history API's first page without a SQL read: a
//! sorted set per room in Redis (score = offset, member = the message as JSON), trimmed to the
//! newest N; in memory in the embedded mode. Written by the persister after the rows are
//! durable, so it never holds a message SQL lacks. Resumes never read it (a flush loses
//! nothing they need).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use redis::aio::ConnectionManager;

use crate::protocol::MessageView;

pub enum Recent {
    Redis { conn: ConnectionManager, prefix: String, keep: usize },
    Memory { rooms: Mutex<HashMap<(i64, String), BTreeMap<i64, MessageView>>>, keep: usize },
}

impl std::fmt::Debug for Recent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Recent::Redis { prefix, keep, .. } => write!(f, "Recent::Redis({prefix}, {keep})"),
            Recent::Memory { keep, .. } => write!(f, "Recent::Memory({keep})"),
        }
    }
}

impl Recent {
    pub fn memory(keep: usize) -> Self {
        Recent::Memory { rooms: Mutex::default(), keep }
    }

    /// `prefix` names the cluster (`{platform prefix}chat:{cluster}:`).
    pub fn redis(conn: ConnectionManager, prefix: String, keep: usize) -> Self {
        Recent::Redis { conn, prefix, keep }
    }

    pub fn keep(&self) -> usize {
        match self {
            Recent::Redis { keep, .. } | Recent::Memory { keep, .. } => *keep,
        }
    }

    fn key(prefix: &str, epoch_no: i64, room: &str) -> String {
        // The room in braces: one Redis Cluster slot per room.
        format!("{prefix}recent:{epoch_no}:{{{room}}}")
    }

    /// Adds messages (any rooms) of epoch `epoch_no`, keeping the newest N per room.
    pub async fn add(&self, epoch_no: i64, messages: &[MessageView]) -> anyhow::Result<()> {
        if messages.is_empty() {
            return Ok(());
        }
        match self {
            Recent::Redis { conn, prefix, keep } => {
                let mut pipe = redis::pipe();
                let mut rooms = std::collections::HashSet::new();
                for m in messages {
                    let key = Self::key(prefix, epoch_no, &m.room);
                    pipe.zadd(&key, serde_json::to_string(m)?, m.offset).ignore();
                    rooms.insert(key);
                }
                let keep = isize::try_from(*keep).unwrap_or(isize::MAX);
                for key in rooms {
                    pipe.zremrangebyrank(&key, 0, -(keep + 1)).ignore();
                }
                let mut conn = conn.clone();
                pipe.query_async::<()>(&mut conn).await?;
            }
            Recent::Memory { rooms, keep } => {
                let mut rooms = rooms.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                for m in messages {
                    let room = rooms.entry((epoch_no, m.room.clone())).or_default();
                    room.insert(m.offset, m.clone());
                    while room.len() > *keep {
                        room.pop_first();
                    }
                }
            }
        }
        Ok(())
    }

    /// Drops a room's cache (readers fall back to SQL until it fills again).
    pub async fn forget(&self, epoch_no: i64, room: &str) -> anyhow::Result<()> {
        match self {
            Recent::Redis { conn, prefix, .. } => {
                let mut conn = conn.clone();
                redis::cmd("DEL").arg(Self::key(prefix, epoch_no, room)).query_async::<()>(&mut conn).await?;
            }
            Recent::Memory { rooms, .. } => {
                rooms.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&(epoch_no, room.to_owned()));
            }
        }
        Ok(())
    }

    /// Removes a deleted message.
    pub async fn remove(&self, epoch_no: i64, room: &str, id: uuid::Uuid) -> anyhow::Result<()> {
        match self {
            Recent::Redis { conn, prefix, .. } => {
                let key = Self::key(prefix, epoch_no, room);
                let mut conn = conn.clone();
                let members: Vec<String> = redis::cmd("ZRANGE").arg(&key).arg(0).arg(-1).query_async(&mut conn).await?;
                let id = id.to_string();
                for member in members {
                    if serde_json::from_str::<MessageView>(&member).is_ok_and(|m| m.id.to_string() == id) {
                        redis::cmd("ZREM").arg(&key).arg(&member).query_async::<()>(&mut conn).await?;
                    }
                }
            }
            Recent::Memory { rooms, .. } => {
                let mut rooms = rooms.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                if let Some(r) = rooms.get_mut(&(epoch_no, room.to_owned())) {
                    r.retain(|_, m| m.id != id);
                }
            }
        }
        Ok(())
    }

    /// Up to `limit` of the room's newest messages of epoch `epoch_no` with offsets below
    /// `before`, newest first; `None` when the cache holds nothing for the room (flushed, or
    /// a room with no message yet): read SQL then.
    pub async fn newest(
        &self,
        epoch_no: i64,
        room: &str,
        before: Option<i64>,
        limit: usize,
    ) -> anyhow::Result<Option<Vec<MessageView>>> {
        match self {
            Recent::Redis { conn, prefix, .. } => {
                let key = Self::key(prefix, epoch_no, room);
                let mut conn = conn.clone();
                let max = before.map_or("+inf".to_owned(), |b| format!("({b}"));
                let (count, members): (u64, Vec<String>) = redis::pipe()
                    .zcard(&key)
                    .cmd("ZREVRANGEBYSCORE")
                    .arg(&key)
                    .arg(max)
                    .arg("-inf")
                    .arg("LIMIT")
                    .arg(0)
                    .arg(limit)
                    .query_async(&mut conn)
                    .await?;
                if count == 0 {
                    return Ok(None);
                }
                Ok(Some(members.iter().filter_map(|m| serde_json::from_str(m).ok()).collect()))
            }
            Recent::Memory { rooms, .. } => {
                let rooms = rooms.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                let Some(r) = rooms.get(&(epoch_no, room.to_owned())).filter(|r| !r.is_empty()) else {
                    return Ok(None);
                };
                let below = before.unwrap_or(i64::MAX);
                Ok(Some(r.range(..below).rev().take(limit).map(|(_, m)| m.clone()).collect()))
            }
        }
    }

    /// The lowest offset the cache holds for the room (what it can vouch for starts there).
    pub async fn oldest(&self, epoch_no: i64, room: &str) -> anyhow::Result<Option<i64>> {
        match self {
            Recent::Redis { conn, prefix, .. } => {
                let key = Self::key(prefix, epoch_no, room);
                let mut conn = conn.clone();
                let first: Vec<(String, f64)> =
                    redis::cmd("ZRANGE").arg(&key).arg(0).arg(0).arg("WITHSCORES").query_async(&mut conn).await?;
                Ok(first.first().map(|(_, score)| *score as i64))
            }
            Recent::Memory { rooms, .. } => {
                let rooms = rooms.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                Ok(rooms.get(&(epoch_no, room.to_owned())).and_then(|r| r.keys().next().copied()))
            }
        }
    }
}
