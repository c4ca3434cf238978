//! SQL of the mission service.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AnyPool, Row};
use uuid::Uuid;

use crate::catalog::{Conditions, Proof, Review, Text};

/// Where a person lives, as their last profile edit said.
#[derive(Debug, Clone, PartialEq)]
pub struct Home {
    pub location: Option<(f64, f64)>,
    pub time_zone: String,
}

/// Records a profile edit; an older event (redelivered, or overtaken) changes nothing.
pub async fn save_home(
    pool: &AnyPool,
    user: Uuid,
    location: Option<(f64, f64)>,
    time_zone: &str,
    updated_at: i64,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO homes (user_id, lat, lon, time_zone, updated_at) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (user_id) DO UPDATE SET lat = excluded.lat, lon = excluded.lon, time_zone = excluded.time_zone, \
         updated_at = excluded.updated_at WHERE homes.updated_at <= excluded.updated_at",
    )
    .bind(user.to_string())
    .bind(location.map(|l| l.0))
    .bind(location.map(|l| l.1))
    .bind(time_zone)
    .bind(updated_at)
    .execute(pool)
    .await?;
    Ok(())
}

pub async fn home(pool: &AnyPool, user: Uuid) -> sqlx::Result<Option<Home>> {
    let row = sqlx::query("SELECT lat, lon, time_zone FROM homes WHERE user_id = $1")
        .bind(user.to_string())
        .fetch_optional(pool)
        .await?;
    row.map(|r| {
        let lat: Option<f64> = r.try_get("lat")?;
        let lon: Option<f64> = r.try_get("lon")?;
        Ok(Home { location: lat.zip(lon), time_zone: r.try_get("time_zone")? })
    })
    .transpose()
}

/// One mission of a day, as given.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Assigned {
    /// `YYYYMMDD-<slug>`: unique per person, names the day.
    pub id: String,
    /// The catalog entry it came from (absent for one written by the AI model).
    pub catalog_id: Option<String>,
    pub title: Text,
    pub description: Text,
    pub proof: Proof,
    pub review: Review,
    pub indoor: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// Chosen from the catalog by the weather.
    Catalog,
    /// Written by the AI model ahead of the day.
    Ai,
}

impl Source {
    fn as_str(self) -> &'static str {
        match self {
            Source::Catalog => "catalog",
            Source::Ai => "ai",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Assignment {
    pub user_id: Uuid,
    pub date: NaiveDate,
    pub time_zone: String,
    pub weather: Option<Conditions>,
    pub missions: Vec<Assigned>,
    pub source: Source,
}

fn decode_assignment(r: &AnyRow) -> anyhow::Result<Assignment> {
    let user: String = r.try_get("user_id")?;
    let date: String = r.try_get("local_date")?;
    let weather: Option<String> = r.try_get("weather")?;
    let missions: String = r.try_get("missions")?;
    let source: String = r.try_get("source")?;
    Ok(Assignment {
        user_id: Uuid::parse_str(&user)?,
        date: date.parse()?,
        time_zone: r.try_get("time_zone")?,
        weather: weather.map(|w| serde_json::from_str(&w)).transpose()?,
        missions: serde_json::from_str(&missions)?,
        source: if source == "ai" { Source::Ai } else { Source::Catalog },
    })
}

pub async fn assignment(pool: &AnyPool, user: Uuid, date: NaiveDate) -> anyhow::Result<Option<Assignment>> {
    let row = sqlx::query(
        "SELECT user_id, local_date, time_zone, weather, missions, source FROM assignments WHERE user_id = $1 AND local_date = $2",
    )
    .bind(user.to_string())
    .bind(date.to_string())
    .fetch_optional(pool)
    .await?;
    row.as_ref().map(decode_assignment).transpose()
}

/// Stores `a` unless the person already has that day's missions; returns the stored ones
/// (whichever replica wrote first).
pub async fn give(pool: &AnyPool, a: &Assignment, now: i64) -> anyhow::Result<Assignment> {
    sqlx::query(
        "INSERT INTO assignments (user_id, local_date, time_zone, weather, missions, source, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (user_id, local_date) DO NOTHING",
    )
    .bind(a.user_id.to_string())
    .bind(a.date.to_string())
    .bind(&a.time_zone)
    .bind(a.weather.as_ref().map(serde_json::to_string).transpose()?)
    .bind(serde_json::to_string(&a.missions)?)
    .bind(a.source.as_str())
    .bind(now)
    .execute(pool)
    .await?;
    assignment(pool, a.user_id, a.date).await?.ok_or_else(|| anyhow::anyhow!("an assignment vanished after its insert"))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Accepted,
    Pending,
    Rejected,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Accepted => "accepted",
            Status::Pending => "pending",
            Status::Rejected => "rejected",
        }
    }

    fn parse(s: &str) -> Status {
        match s {
            "accepted" => Status::Accepted,
            "pending" => Status::Pending,
            _ => Status::Rejected,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Verification {
    pub id: Uuid,
    pub user_id: Uuid,
    pub mission_id: String,
    pub date: NaiveDate,
    pub status: Status,
    pub review: Review,
    pub text: Option<String>,
    pub photo_key: Option<String>,
    pub photo_type: Option<String>,
    pub submitted_at: DateTime<Utc>,
    pub decided_at: Option<DateTime<Utc>>,
    pub reason: Option<String>,
}

const VERIFICATION_COLUMNS: &str = "id, user_id, mission_id, local_date, status, review, proof_text, photo_key, photo_type, submitted_at, decided_at, reason";

fn millis(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

fn decode_verification(r: &AnyRow) -> anyhow::Result<Verification> {
    let id: String = r.try_get("id")?;
    let user: String = r.try_get("user_id")?;
    let date: String = r.try_get("local_date")?;
    let status: String = r.try_get("status")?;
    let review: String = r.try_get("review")?;
    let decided: Option<i64> = r.try_get("decided_at")?;
    Ok(Verification {
        id: Uuid::parse_str(&id)?,
        user_id: Uuid::parse_str(&user)?,
        mission_id: r.try_get("mission_id")?,
        date: date.parse()?,
        status: Status::parse(&status),
        review: if review == "moderator" { Review::Moderator } else { Review::Automatic },
        text: r.try_get("proof_text")?,
        photo_key: r.try_get("photo_key")?,
        photo_type: r.try_get("photo_type")?,
        submitted_at: millis(r.try_get("submitted_at")?),
        decided_at: decided.map(millis),
        reason: r.try_get("reason")?,
    })
}

/// Inserts a verification; `false` when the mission already has a live (not rejected) one.
pub async fn insert_verification(conn: &mut AnyConnection, v: &Verification) -> anyhow::Result<bool> {
    let done = sqlx::query(
        "INSERT INTO verifications (id, user_id, mission_id, local_date, status, review, proof_text, photo_key, photo_type, submitted_at, decided_at, decided_by, reason) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, NULL, NULL)",
    )
    .bind(v.id.to_string())
    .bind(v.user_id.to_string())
    .bind(&v.mission_id)
    .bind(v.date.to_string())
    .bind(v.status.as_str())
    .bind(if v.review == Review::Moderator { "moderator" } else { "automatic" })
    .bind(v.text.as_deref())
    .bind(v.photo_key.as_deref())
    .bind(v.photo_type.as_deref())
    .bind(v.submitted_at.timestamp_millis())
    .bind(v.decided_at.map(|t| t.timestamp_millis()))
    .execute(conn)
    .await;
    match done {
        Ok(_) => Ok(true),
        Err(e) if platform::error::is_unique_violation(&e) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

pub async fn verification(conn: &mut AnyConnection, id: Uuid) -> anyhow::Result<Option<Verification>> {
    let row = sqlx::query(&format!("SELECT {VERIFICATION_COLUMNS} FROM verifications WHERE id = $1"))
        .bind(id.to_string())
        .fetch_optional(conn)
        .await?;
    row.as_ref().map(decode_verification).transpose()
}

/// Decides a pending verification; `false` when it was not pending any more (decided by
/// someone else meanwhile).
pub async fn decide(
    conn: &mut AnyConnection,
    id: Uuid,
    status: Status,
    by: Uuid,
    reason: Option<&str>,
    at: i64,
) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "UPDATE verifications SET status = $1, decided_at = $2, decided_by = $3, reason = $4 WHERE id = $5 AND status = 'pending'",
    )
    .bind(status.as_str())
    .bind(at)
    .bind(by.to_string())
    .bind(reason)
    .bind(id.to_string())
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The live verifications of `user`'s missions on `date`, by mission id.
pub async fn day_statuses(pool: &AnyPool, user: Uuid, date: NaiveDate) -> anyhow::Result<Vec<(String, Status)>> {
    let rows = sqlx::query(
        "SELECT mission_id, status FROM verifications WHERE user_id = $1 AND local_date = $2 ORDER BY submitted_at",
    )
    .bind(user.to_string())
    .bind(date.to_string())
    .fetch_all(pool)
    .await?;
    rows.iter().map(|r| Ok((r.try_get("mission_id")?, Status::parse(&r.try_get::<String, _>("status")?)))).collect()
}

/// A page of verifications, newest first, before the cursor `(submitted_at, id)`.
pub async fn page(
    pool: &AnyPool,
    user: Option<Uuid>,
    status: Option<Status>,
    before: Option<(i64, String)>,
    limit: i64,
) -> anyhow::Result<Vec<Verification>> {
    let mut sql = format!("SELECT {VERIFICATION_COLUMNS} FROM verifications WHERE 1 = 1");
    let mut n = 0;
    let mut arg = || {
        n += 1;
        format!("${n}")
    };
    if user.is_some() {
        sql.push_str(&format!(" AND user_id = {}", arg()));
    }
    if status.is_some() {
        sql.push_str(&format!(" AND status = {}", arg()));
    }
    if before.is_some() {
        let (a, b, c) = (arg(), arg(), arg());
        sql.push_str(&format!(" AND (submitted_at < {a} OR (submitted_at = {b} AND id < {c}))"));
    }
    sql.push_str(&format!(" ORDER BY submitted_at DESC, id DESC LIMIT {}", arg()));
    let mut q = sqlx::query(&sql);
    if let Some(u) = user {
        q = q.bind(u.to_string());
    }
    if let Some(s) = status {
        q = q.bind(s.as_str());
    }
    if let Some((at, id)) = &before {
        q = q.bind(*at).bind(*at).bind(id.clone());
    }
    let rows = q.bind(limit).fetch_all(pool).await?;
    rows.iter().map(decode_verification).collect()
}

/// The local dates (newest first, at most `days`) on which `user` had a daily mission accepted.
pub async fn accepted_days(pool: &AnyPool, user: Uuid, days: i64) -> anyhow::Result<Vec<NaiveDate>> {
    let rows = sqlx::query(
        "SELECT DISTINCT local_date FROM verifications WHERE user_id = $1 AND status = 'accepted' ORDER BY local_date DESC LIMIT $2",
    )
    .bind(user.to_string())
    .bind(days)
    .fetch_all(pool)
    .await?;
    rows.iter().map(|r| Ok(r.try_get::<String, _>("local_date")?.parse()?)).collect()
}
