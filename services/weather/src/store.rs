//! SQL of the weather service: the last value of each cell, for when the provider is down
//! and the cache has lost it.

use sqlx::{AnyPool, Row};

use crate::model::{Cell, Weather};

pub async fn remember(pool: &AnyPool, cell: Cell, weather: &Weather) -> anyhow::Result<()> {
    // A slower replica's older value never replaces a newer one.
    sqlx::query(
        "INSERT INTO last_known (lat10, lon10, provider, fetched_at, body) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (lat10, lon10) DO UPDATE SET provider = excluded.provider, fetched_at = excluded.fetched_at, body = excluded.body \
         WHERE last_known.fetched_at < excluded.fetched_at",
    )
    .bind(cell.lat10)
    .bind(cell.lon10)
    .bind(&weather.provider)
    .bind(weather.fetched_at.timestamp_millis())
    .bind(serde_json::to_string(weather)?)
    .execute(pool)
    .await?;
    Ok(())
}

pub async fn last_known(pool: &AnyPool, cell: Cell) -> anyhow::Result<Option<Weather>> {
    let row = sqlx::query("SELECT body FROM last_known WHERE lat10 = $1 AND lon10 = $2")
        .bind(cell.lat10)
        .bind(cell.lon10)
        .fetch_optional(pool)
        .await?;
    // A body this version cannot read is as good as none.
    Ok(row.and_then(|r| r.try_get::<String, _>("body").ok()).and_then(|b| serde_json::from_str(&b).ok()))
}
