//! SQL of the created-mission service.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AnyPool, Row};
use utoipa::ToSchema;
use uuid::Uuid;

/// Who accepts a completion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = CreatedMissionVerification)]
pub enum Verification {
    /// The creator approves or rejects each completion.
    Creator,
    /// Accepted when submitted.
    Automatic,
}

impl Verification {
    fn as_str(self) -> &'static str {
        match self {
            Verification::Creator => "creator",
            Verification::Automatic => "automatic",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Mission {
    pub id: Uuid,
    pub creator: Uuid,
    pub title: String,
    pub description: String,
    pub starts_on: NaiveDate,
    pub ends_on: NaiveDate,
    pub time_zone: String,
    pub verification: Verification,
    pub capacity: i64,
    pub joined: i64,
    pub created_at: i64,
}

const COLUMNS: &str =
    "id, creator, title, description, starts_on, ends_on, time_zone, verification, capacity, joined, created_at";

fn decode(r: &AnyRow) -> anyhow::Result<Mission> {
    let id: String = r.try_get("id")?;
    let creator: String = r.try_get("creator")?;
    let starts: String = r.try_get("starts_on")?;
    let ends: String = r.try_get("ends_on")?;
    let verification: String = r.try_get("verification")?;
    Ok(Mission {
        id: Uuid::parse_str(&id)?,
        creator: Uuid::parse_str(&creator)?,
        title: r.try_get("title")?,
        description: r.try_get("description")?,
        starts_on: starts.parse()?,
        ends_on: ends.parse()?,
        time_zone: r.try_get("time_zone")?,
        verification: if verification == "automatic" { Verification::Automatic } else { Verification::Creator },
        capacity: r.try_get("capacity")?,
        joined: r.try_get("joined")?,
        created_at: r.try_get("created_at")?,
    })
}

pub async fn insert(pool: &AnyPool, m: &Mission) -> anyhow::Result<()> {
    sqlx::query(&format!(
        "INSERT INTO created_missions ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
    ))
    .bind(m.id.to_string())
    .bind(m.creator.to_string())
    .bind(&m.title)
    .bind(&m.description)
    .bind(m.starts_on.to_string())
    .bind(m.ends_on.to_string())
    .bind(&m.time_zone)
    .bind(m.verification.as_str())
    .bind(m.capacity)
    .bind(m.joined)
    .bind(m.created_at)
    .execute(pool)
    .await?;
    Ok(())
}

pub async fn get(conn: &mut AnyConnection, id: Uuid) -> anyhow::Result<Option<Mission>> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM created_missions WHERE id = $1"))
        .bind(id.to_string())
        .fetch_optional(conn)
        .await?;
    row.as_ref().map(decode).transpose()
}

/// Which missions a list shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = CreatedMissionFilter)]
pub enum Filter {
    /// Not over yet: ends on or after today's earliest date anywhere (UTC−12).
    Active,
    /// Created by you.
    Mine,
    /// Joined by you.
    Joined,
}

/// A page of missions, newest first, before the cursor `(created_at, id)`.
pub async fn page(
    pool: &AnyPool,
    filter: Filter,
    user: Uuid,
    today: NaiveDate,
    before: Option<(i64, String)>,
    limit: i64,
) -> anyhow::Result<Vec<Mission>> {
    let cols = COLUMNS.split(", ").map(|c| format!("m.{c}")).collect::<Vec<_>>().join(", ");
    let (join, condition) = match filter {
        Filter::Active => ("", "m.ends_on >= $1"),
        Filter::Mine => ("", "m.creator = $1"),
        Filter::Joined => ("JOIN participants p ON p.mission_id = m.id", "p.user_id = $1"),
    };
    let cursor = if before.is_some() { " AND (m.created_at < $2 OR (m.created_at = $3 AND m.id < $4))" } else { "" };
    let limit_arg = if before.is_some() { "$5" } else { "$2" };
    let sql = format!(
        "SELECT {cols} FROM created_missions m {join} WHERE {condition}{cursor} ORDER BY m.created_at DESC, m.id DESC LIMIT {limit_arg}"
    );
    let mut q = sqlx::query(&sql);
    q = match filter {
        Filter::Active => q.bind(today.to_string()),
        Filter::Mine | Filter::Joined => q.bind(user.to_string()),
    };
    if let Some((at, id)) = before {
        q = q.bind(at).bind(at).bind(id);
    }
    let rows = q.bind(limit).fetch_all(pool).await?;
    rows.iter().map(decode).collect()
}

/// Counts a join if there is room; false when the mission is full.
pub async fn take_place(conn: &mut AnyConnection, id: Uuid) -> sqlx::Result<bool> {
    let done = sqlx::query("UPDATE created_missions SET joined = joined + 1 WHERE id = $1 AND joined < capacity")
        .bind(id.to_string())
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = ParticipantStatus)]
pub enum Status {
    /// Joined; nothing submitted yet.
    Joined,
    /// A completion waits for the creator.
    Submitted,
    /// Accepted: `MissionVerified` was published.
    Completed,
    /// The creator rejected the completion; another may be submitted.
    Rejected,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Joined => "joined",
            Status::Submitted => "submitted",
            Status::Completed => "completed",
            Status::Rejected => "rejected",
        }
    }

    fn parse(s: &str) -> Status {
        match s {
            "submitted" => Status::Submitted,
            "completed" => Status::Completed,
            "rejected" => Status::Rejected,
            _ => Status::Joined,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Participant {
    pub user_id: Uuid,
    pub status: Status,
    pub proof_text: Option<String>,
    pub joined_at: i64,
    pub submitted_at: Option<i64>,
}

fn decode_participant(r: &AnyRow) -> anyhow::Result<Participant> {
    let user: String = r.try_get("user_id")?;
    let status: String = r.try_get("status")?;
    Ok(Participant {
        user_id: Uuid::parse_str(&user)?,
        status: Status::parse(&status),
        proof_text: r.try_get("proof_text")?,
        joined_at: r.try_get("joined_at")?,
        submitted_at: r.try_get("submitted_at")?,
    })
}

/// Adds a participant; false when they had joined already.
pub async fn add_participant(conn: &mut AnyConnection, id: Uuid, user: Uuid, at: i64) -> anyhow::Result<bool> {
    let done = sqlx::query(
        "INSERT INTO participants (mission_id, user_id, status, proof_text, joined_at, submitted_at, decided_at) \
         VALUES ($1, $2, 'joined', NULL, $3, NULL, NULL)",
    )
    .bind(id.to_string())
    .bind(user.to_string())
    .bind(at)
    .execute(conn)
    .await;
    match done {
        Ok(_) => Ok(true),
        Err(e) if platform::error::is_unique_violation(&e) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

pub async fn participant(conn: &mut AnyConnection, id: Uuid, user: Uuid) -> anyhow::Result<Option<Participant>> {
    let row = sqlx::query(
        "SELECT user_id, status, proof_text, joined_at, submitted_at FROM participants WHERE mission_id = $1 AND user_id = $2",
    )
    .bind(id.to_string())
    .bind(user.to_string())
    .fetch_optional(conn)
    .await?;
    row.as_ref().map(decode_participant).transpose()
}

pub async fn participants(pool: &AnyPool, id: Uuid) -> anyhow::Result<Vec<Participant>> {
    let rows = sqlx::query(
        "SELECT user_id, status, proof_text, joined_at, submitted_at FROM participants WHERE mission_id = $1 ORDER BY joined_at, user_id",
    )
    .bind(id.to_string())
    .fetch_all(pool)
    .await?;
    rows.iter().map(decode_participant).collect()
}

/// Records a completion (`to`: submitted, or completed when accepted at once) of a participant
/// who is `joined` or was `rejected`; false otherwise.
pub async fn submit(
    conn: &mut AnyConnection,
    id: Uuid,
    user: Uuid,
    to: Status,
    text: &str,
    at: i64,
) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "UPDATE participants SET status = $1, proof_text = $2, submitted_at = $3 \
         WHERE mission_id = $4 AND user_id = $5 AND status IN ('joined', 'rejected')",
    )
    .bind(to.as_str())
    .bind(text)
    .bind(at)
    .bind(id.to_string())
    .bind(user.to_string())
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The creator's decision on a `submitted` completion; false when there is none.
pub async fn decide(conn: &mut AnyConnection, id: Uuid, user: Uuid, to: Status, at: i64) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "UPDATE participants SET status = $1, decided_at = $2 WHERE mission_id = $3 AND user_id = $4 AND status = 'submitted'",
    )
    .bind(to.as_str())
    .bind(at)
    .bind(id.to_string())
    .bind(user.to_string())
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}
