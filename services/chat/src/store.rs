//! SQL of chat: rooms, each cluster's epoch, messages under their log offsets, and the
//! persister's progress per partition (written in the same transaction as the rows).

use chrono::{DateTime, Utc};
use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};
use uuid::Uuid;

use crate::protocol::MessageView;

/// The log a cluster's offsets belong to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Epoch {
    /// What clients see and give back (`ready`, `resume`).
    pub token: String,
    /// Grows by one at each rotation; history orders by it first.
    pub number: i64,
    pub partitions: i32,
}

fn epoch_of(r: &AnyRow) -> sqlx::Result<Epoch> {
    Ok(Epoch { token: r.try_get(0)?, number: r.try_get(1)?, partitions: r.try_get::<i32, _>(2)? })
}

/// The cluster's epoch, created (number 1) when it has none.
pub async fn ensure_epoch(pool: &AnyPool, cluster: &str, partitions: i32, now: DateTime<Utc>) -> sqlx::Result<Epoch> {
    sqlx::query(
        "INSERT INTO chat_epochs (cluster, epoch, epoch_no, partitions, rotated_at) VALUES ($1, $2, 1, $3, $4) \
         ON CONFLICT (cluster) DO NOTHING",
    )
    .bind(cluster)
    .bind(Uuid::new_v4().simple().to_string())
    .bind(partitions)
    .bind(now.timestamp_millis())
    .execute(pool)
    .await?;
    current_epoch(pool, cluster).await?.ok_or(sqlx::Error::RowNotFound)
}

pub async fn current_epoch(pool: &AnyPool, cluster: &str) -> sqlx::Result<Option<Epoch>> {
    let row = sqlx::query("SELECT epoch, epoch_no, partitions FROM chat_epochs WHERE cluster = $1")
        .bind(cluster)
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(epoch_of).transpose()
}

/// Starts a new epoch after `from` (only one of several racing persisters does; all read the
/// winner's).
pub async fn rotate_epoch(
    pool: &AnyPool,
    cluster: &str,
    from: &Epoch,
    partitions: i32,
    now: DateTime<Utc>,
) -> sqlx::Result<Epoch> {
    sqlx::query(
        "UPDATE chat_epochs SET epoch = $1, epoch_no = epoch_no + 1, partitions = $2, rotated_at = $3 \
         WHERE cluster = $4 AND epoch = $5",
    )
    .bind(Uuid::new_v4().simple().to_string())
    .bind(partitions)
    .bind(now.timestamp_millis())
    .bind(cluster)
    .bind(&from.token)
    .execute(pool)
    .await?;
    current_epoch(pool, cluster).await?.ok_or(sqlx::Error::RowNotFound)
}

/// One message as the persister stores it.
#[derive(Debug, Clone)]
pub struct Stored {
    pub partition: i32,
    pub message: MessageView,
}

/// Stores messages (a message id already stored is skipped) and moves the progress of each
/// partition to after the last offset handled, in one transaction. Returns the ids written.
pub async fn store_batch(
    pool: &AnyPool,
    cluster: &str,
    epoch: &Epoch,
    rows: &[Stored],
    handled: &[(i32, i64)],
) -> sqlx::Result<Vec<Uuid>> {
    let mut tx = pool.begin().await?;
    let mut written = Vec::new();
    // 10 parameters per row: 500 rows stay within both PostgreSQL's and SQLite's limits.
    for chunk in rows.chunks(500) {
        let mut sql = String::from(
            "INSERT INTO chat_messages (id, cluster, epoch_no, room, part, msg_offset, user_id, nickname, body, sent_at) VALUES ",
        );
        sql.push_str(&platform::db::values_rows(chunk.len(), 10));
        sql.push_str(" ON CONFLICT (id) DO NOTHING RETURNING id");
        let mut query = sqlx::query(&sql);
        for r in chunk {
            let m = &r.message;
            query = query
                .bind(m.id.to_string())
                .bind(cluster)
                .bind(epoch.number)
                .bind(m.room.clone())
                .bind(r.partition)
                .bind(m.offset)
                .bind(m.user_id.to_string())
                .bind(m.nickname.clone())
                .bind(m.text.clone())
                .bind(m.sent_at.timestamp_millis());
        }
        for row in query.fetch_all(&mut *tx).await? {
            if let Ok(id) = Uuid::parse_str(&row.try_get::<String, _>(0)?) {
                written.push(id);
            }
        }
    }
    for (partition, offset) in handled {
        sqlx::query(
            "INSERT INTO chat_progress (cluster, epoch_no, part, next_offset) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (cluster, epoch_no, part) DO UPDATE SET next_offset = excluded.next_offset \
             WHERE chat_progress.next_offset < excluded.next_offset",
        )
        .bind(cluster)
        .bind(epoch.number)
        .bind(*partition)
        .bind(*offset + 1)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(written)
}

/// The first offset of `partition` not stored yet in `epoch` (0 when nothing was).
pub async fn progress(pool: &AnyPool, cluster: &str, epoch: &Epoch, partition: i32) -> sqlx::Result<i64> {
    let row = sqlx::query("SELECT next_offset FROM chat_progress WHERE cluster = $1 AND epoch_no = $2 AND part = $3")
        .bind(cluster)
        .bind(epoch.number)
        .bind(partition)
        .fetch_optional(pool)
        .await?;
    Ok(row.map(|r| r.try_get::<i64, _>(0)).transpose()?.unwrap_or(0))
}

/// Every partition's progress in `epoch`.
pub async fn all_progress(pool: &AnyPool, cluster: &str, epoch: &Epoch) -> sqlx::Result<Vec<(i32, i64)>> {
    let rows = sqlx::query("SELECT part, next_offset FROM chat_progress WHERE cluster = $1 AND epoch_no = $2")
        .bind(cluster)
        .bind(epoch.number)
        .fetch_all(pool)
        .await?;
    rows.iter().map(|r| Ok((r.try_get::<i32, _>(0)?, r.try_get::<i64, _>(1)?))).collect()
}

const COLUMNS: &str = "id, room, msg_offset, user_id, nickname, body, sent_at";

fn message_of(r: &AnyRow) -> sqlx::Result<MessageView> {
    let bad = |e: String| sqlx::Error::Decode(e.into());
    let id: String = r.try_get(0)?;
    let user: String = r.try_get(3)?;
    let sent: i64 = r.try_get(6)?;
    Ok(MessageView {
        id: Uuid::parse_str(&id).map_err(|e| bad(e.to_string()))?,
        room: r.try_get(1)?,
        offset: r.try_get(2)?,
        user_id: Uuid::parse_str(&user).map_err(|e| bad(e.to_string()))?,
        nickname: r.try_get(4)?,
        text: r.try_get(5)?,
        sent_at: DateTime::from_timestamp_millis(sent).ok_or_else(|| bad("sent_at".into()))?,
    })
}

/// The room's messages of `epoch` with offsets in `(after, before)`, in order, deleted ones
/// left out; at most `limit`.
#[allow(clippy::too_many_arguments)]
pub async fn between(
    pool: &AnyPool,
    cluster: &str,
    epoch: &Epoch,
    room: &str,
    after: i64,
    before: i64,
    limit: i64,
) -> sqlx::Result<Vec<MessageView>> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM chat_messages WHERE room = $1 AND cluster = $2 AND epoch_no = $3 \
         AND msg_offset > $4 AND msg_offset < $5 AND deleted_at IS NULL ORDER BY msg_offset LIMIT $6"
    ))
    .bind(room)
    .bind(cluster)
    .bind(epoch.number)
    .bind(after)
    .bind(before)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.iter().map(message_of).collect()
}

/// The offsets the given messages are stored under (those stored).
pub async fn stored_offsets(pool: &AnyPool, ids: &[Uuid]) -> sqlx::Result<std::collections::HashMap<Uuid, i64>> {
    let mut found = std::collections::HashMap::new();
    for chunk in ids.chunks(500) {
        let marks: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
        let sql = format!("SELECT id, msg_offset FROM chat_messages WHERE id IN ({})", marks.join(", "));
        let mut query = sqlx::query(&sql);
        for id in chunk {
            query = query.bind(id.to_string());
        }
        for row in query.fetch_all(pool).await? {
            if let Ok(id) = Uuid::parse_str(&row.try_get::<String, _>(0)?) {
                found.insert(id, row.try_get::<i64, _>(1)?);
            }
        }
    }
    Ok(found)
}

/// A place in a room's history: (epoch number, offset).
pub type Cursor = (i64, i64);

/// Up to `limit` of the room's messages before `before` (newest first), with their cursors.
pub async fn page(
    pool: &AnyPool,
    cluster: &str,
    room: &str,
    before: Option<Cursor>,
    limit: i64,
) -> sqlx::Result<Vec<(Cursor, MessageView)>> {
    let (epoch_no, offset) = before.unwrap_or((i64::MAX, i64::MAX));
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS}, epoch_no FROM chat_messages WHERE room = $1 AND cluster = $2 AND deleted_at IS NULL \
         AND (epoch_no < $3 OR (epoch_no = $3 AND msg_offset < $4)) \
         ORDER BY epoch_no DESC, msg_offset DESC LIMIT $5"
    ))
    .bind(room)
    .bind(cluster)
    .bind(epoch_no)
    .bind(offset)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            let m = message_of(r)?;
            Ok(((r.try_get::<i64, _>(7)?, m.offset), m))
        })
        .collect()
}

/// Marks a message deleted; false when there is no such message in the room.
pub async fn mark_deleted(pool: &AnyPool, room: &str, id: Uuid, at: DateTime<Utc>) -> sqlx::Result<bool> {
    let done =
        sqlx::query("UPDATE chat_messages SET deleted_at = $1 WHERE id = $2 AND room = $3 AND deleted_at IS NULL")
            .bind(at.timestamp_millis())
            .bind(id.to_string())
            .bind(room)
            .execute(pool)
            .await?;
    Ok(done.rows_affected() == 1)
}

/// A room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomRow {
    pub name: String,
    pub description: String,
    pub created_by: Uuid,
    pub created_at: DateTime<Utc>,
}

/// Creates a room; false when the name is taken.
pub async fn create_room(pool: &AnyPool, room: &RoomRow) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "INSERT INTO chat_rooms (name, description, created_by, created_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (name) DO NOTHING",
    )
    .bind(&room.name)
    .bind(&room.description)
    .bind(room.created_by.to_string())
    .bind(room.created_at.timestamp_millis())
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn rooms(pool: &AnyPool, limit: i64) -> sqlx::Result<Vec<RoomRow>> {
    let rows = sqlx::query("SELECT name, description, created_by, created_at FROM chat_rooms ORDER BY name LIMIT $1")
        .bind(limit)
        .fetch_all(pool)
        .await?;
    rows.iter()
        .map(|r| {
            let by: String = r.try_get(2)?;
            let at: i64 = r.try_get(3)?;
            Ok(RoomRow {
                name: r.try_get(0)?,
                description: r.try_get(1)?,
                created_by: Uuid::parse_str(&by).map_err(|e| sqlx::Error::Decode(e.into()))?,
                created_at: DateTime::from_timestamp_millis(at).unwrap_or_default(),
            })
        })
        .collect()
}

/// Ids of every message stored in the rooms whose names start with `prefix` (audits and
/// benchmarks: what was acknowledged must be here).
pub async fn ids_in_rooms(pool: &AnyPool, prefix: &str) -> sqlx::Result<Vec<Uuid>> {
    let rows = sqlx::query("SELECT id FROM chat_messages WHERE room LIKE $1")
        .bind(format!("{prefix}%"))
        .fetch_all(pool)
        .await?;
    Ok(rows.iter().filter_map(|r| r.try_get::<String, _>(0).ok()).filter_map(|id| Uuid::parse_str(&id).ok()).collect())
}
