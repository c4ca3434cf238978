//! SQL of the user service.

use chrono::{DateTime, Utc};
use platform::db::Dialect;
use platform::events::contracts::UserRegistered;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AnyPool, Row};
use uuid::Uuid;

use crate::model::{Location, Notifications, Preferences, Profile, ProfileStatus, Units};

const COLUMNS: &str =
    "user_id, email, nickname, home_lat, home_lon, time_zone, units, language, notifications, created_at, updated_at";

pub const DEFAULT_TIME_ZONE: &str = "UTC";
pub const DEFAULT_LANGUAGE: &str = "en";

/// Creates the profile of a new account; a redelivered event changes nothing.
pub async fn create_from_signup(pool: &AnyPool, event: &UserRegistered, now: i64) -> sqlx::Result<bool> {
    let notifications = serde_json::to_string(&Notifications::default()).unwrap_or_default();
    let done = sqlx::query(
        "INSERT INTO profiles (user_id, email, nickname, home_lat, home_lon, time_zone, units, language, notifications, created_at, updated_at) \
         VALUES ($1, $2, $3, NULL, NULL, $4, $5, $6, $7, $8, $8) ON CONFLICT (user_id) DO NOTHING",
    )
    .bind(event.user_id.to_string())
    .bind(&event.email)
    .bind(&event.nickname)
    .bind(DEFAULT_TIME_ZONE)
    .bind(Units::Metric.as_str())
    .bind(DEFAULT_LANGUAGE)
    .bind(notifications)
    .bind(now)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn get(pool: &AnyPool, user_id: Uuid) -> sqlx::Result<Option<Profile>> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM profiles WHERE user_id = $1"))
        .bind(user_id.to_string())
        .fetch_optional(pool)
        .await?;
    row.map(|r| decode(&r)).transpose()
}

/// Reads a profile inside a transaction, locking it on PostgreSQL so concurrent
/// edits of different fields do not overwrite each other.
pub async fn get_for_update(
    conn: &mut AnyConnection,
    dialect: Dialect,
    user_id: Uuid,
) -> sqlx::Result<Option<Profile>> {
    let lock = if dialect == Dialect::Postgres { " FOR UPDATE" } else { "" };
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM profiles WHERE user_id = $1{lock}"))
        .bind(user_id.to_string())
        .fetch_optional(conn)
        .await?;
    row.map(|r| decode(&r)).transpose()
}

pub async fn save(conn: &mut AnyConnection, p: &Profile, now: i64) -> sqlx::Result<()> {
    let prefs = p.preferences.clone().unwrap_or_else(|| Preferences {
        units: Units::Metric,
        language: DEFAULT_LANGUAGE.to_owned(),
        notifications: Notifications::default(),
    });
    sqlx::query(
        "UPDATE profiles SET nickname = $1, home_lat = $2, home_lon = $3, time_zone = $4, units = $5, language = $6, \
         notifications = $7, updated_at = $8 WHERE user_id = $9",
    )
    .bind(p.nickname.clone().unwrap_or_default())
    .bind(p.home_location.map(|l| l.lat))
    .bind(p.home_location.map(|l| l.lon))
    .bind(p.time_zone.clone().unwrap_or_else(|| DEFAULT_TIME_ZONE.to_owned()))
    .bind(prefs.units.as_str())
    .bind(prefs.language)
    .bind(serde_json::to_string(&prefs.notifications).unwrap_or_default())
    .bind(now)
    .bind(p.user_id.to_string())
    .execute(conn)
    .await?;
    Ok(())
}

fn decode(r: &AnyRow) -> sqlx::Result<Profile> {
    let id: String = r.try_get(0)?;
    let user_id = Uuid::parse_str(&id).map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
    let lat: Option<f64> = r.try_get(3)?;
    let lon: Option<f64> = r.try_get(4)?;
    let notifications: String = r.try_get(8)?;
    let units: String = r.try_get(6)?;
    Ok(Profile {
        user_id,
        status: ProfileStatus::Active,
        email: Some(r.try_get(1)?),
        nickname: Some(r.try_get(2)?),
        home_location: lat.zip(lon).map(|(lat, lon)| Location { lat, lon }),
        time_zone: Some(r.try_get(5)?),
        preferences: Some(Preferences {
            units: Units::parse(&units),
            language: r.try_get(7)?,
            notifications: serde_json::from_str(&notifications).unwrap_or_default(),
        }),
        created_at: millis(r.try_get(9)?),
        updated_at: millis(r.try_get(10)?),
    })
}

fn millis(ms: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_millis(ms)
}
