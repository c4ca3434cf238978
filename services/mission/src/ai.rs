//! The optional AI writer: when an OpenAI-compatible chat-completions endpoint is configured
//! (Ollama, vLLM, llama.cpp's server and hosted providers all serve one), people's missions for
//! *tomorrow* are written by the model from tomorrow's forecast at their home and what they did
//! lately, ahead of time, by a background sweep — a request never waits on the model. The answer
//! must match a strict JSON schema (asked for with `response_format`, then checked here); a
//! slow, failing or schema-breaking answer writes nothing, and the person gets catalog missions
//! when they ask (counted: `mission_ai_total{outcome}`).
//!
//! One replica writes a person's day: a claim row `(person, date)` is taken first. A failed day
//! is not retried (the catalog answers instead).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Days, NaiveDate, Utc};
use chrono_tz::Tz;
use serde::Deserialize;
use serde_json::{Value, json};
use sqlx::Row;
use tokio::sync::watch;
use uuid::Uuid;
use weather::{Cell, Condition};

use crate::catalog::{Conditions, Proof, Review, Text};
use crate::daily::{Daily, mission_id};
use crate::store::{self, Assigned, Assignment, Source};

/// Settings of the AI writer; it runs when `mission_ai_url` and `mission_ai_model` are set.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Mission AI writer")]
pub struct AiConfig {
    /// Base URL of an OpenAI-compatible API (`…/v1`), e.g. `http://ollama:11434/v1`; unset, no
    /// AI writer runs.
    #[arg(long, env = "WW_MISSION_AI_URL")]
    pub mission_ai_url: Option<String>,
    /// The model, e.g. `llama3.1:8b` or `gpt-4o-mini`.
    #[arg(long, env = "WW_MISSION_AI_MODEL")]
    pub mission_ai_model: Option<String>,
    /// Bearer key for the endpoint (hosted providers); none for a local server.
    #[arg(long, env = "WW_MISSION_AI_API_KEY", hide_env_values = true)]
    pub mission_ai_api_key: Option<String>,
    /// The longest one answer may take (milliseconds).
    #[arg(long, env = "WW_MISSION_AI_TIMEOUT_MS", default_value_t = 20_000, value_parser = clap::value_parser!(u64).range(100..=300_000))]
    pub mission_ai_timeout_ms: u64,
    /// Tomorrow's missions are written from this many hours before the person's midnight.
    #[arg(long, env = "WW_MISSION_AI_AHEAD_HOURS", default_value_t = 6, value_parser = clap::value_parser!(u64).range(1..=23))]
    pub mission_ai_ahead_hours: u64,
    /// Seconds between sweeps for people whose next day needs writing.
    #[arg(long, env = "WW_MISSION_AI_INTERVAL_SECONDS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub mission_ai_interval_seconds: u64,
    /// People written per sweep at most (the model's throughput bounds it).
    #[arg(long, env = "WW_MISSION_AI_BATCH", default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub mission_ai_batch: u64,
}

impl Default for AiConfig {
    fn default() -> Self {
        Self {
            mission_ai_url: None,
            mission_ai_model: None,
            mission_ai_api_key: None,
            mission_ai_timeout_ms: 20_000,
            mission_ai_ahead_hours: 6,
            mission_ai_interval_seconds: 60,
            mission_ai_batch: 50,
        }
    }
}

/// The JSON schema the model's answer must match (sent as `response_format` and checked here).
pub fn answer_schema() -> Value {
    let text = |max: u32| json!({"type": "string", "minLength": 1, "maxLength": max});
    let localized = |max: u32| {
        json!({"type": "object", "additionalProperties": false, "required": ["en", "ko"],
               "properties": {"en": text(max), "ko": text(max)}})
    };
    json!({
        "type": "object", "additionalProperties": false, "required": ["missions"],
        "properties": {"missions": {"type": "array", "minItems": 3, "maxItems": 3, "items": {
            "type": "object", "additionalProperties": false,
            "required": ["title", "description", "proof", "indoor"],
            "properties": {
                "title": localized(60),
                "description": localized(240),
                "proof": {"type": "string", "enum": ["photo", "text", "photo-and-text"]},
                "indoor": {"type": "boolean"}
            }
        }}}
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Answer {
    missions: Vec<Written>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Written {
    title: Text,
    description: Text,
    proof: Proof,
    indoor: bool,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum AiError {
    #[error("no answer within {0} ms")]
    Timeout(u64),
    #[error("the endpoint failed: {0}")]
    Http(String),
    #[error("the answer breaks the schema: {0}")]
    Invalid(String),
}

impl AiError {
    fn outcome(&self) -> &'static str {
        match self {
            AiError::Timeout(_) => "timeout",
            AiError::Http(_) => "http-error",
            AiError::Invalid(_) => "invalid",
        }
    }
}

/// Checks one text the model wrote: within bounds, one paragraph, no markup.
fn check_text(t: &str, max: usize, what: &str) -> Result<(), AiError> {
    let n = t.chars().count();
    if t.trim().is_empty() || n > max {
        return Err(AiError::Invalid(format!("{what} must be 1 to {max} characters")));
    }
    if t.chars().any(|c| c.is_control() || c == '<' || c == '>') {
        return Err(AiError::Invalid(format!("{what} holds control characters or markup")));
    }
    Ok(())
}

/// The model's answer (the `content` of its message) as the day's missions.
pub fn parse_answer(content: &str, date: NaiveDate) -> Result<Vec<Assigned>, AiError> {
    let answer: Answer = serde_json::from_str(content.trim()).map_err(|e| AiError::Invalid(e.to_string()))?;
    if answer.missions.len() != crate::catalog::PER_DAY {
        return Err(AiError::Invalid(format!("{} missions, not {}", answer.missions.len(), crate::catalog::PER_DAY)));
    }
    answer
        .missions
        .into_iter()
        .enumerate()
        .map(|(i, m)| {
            for (t, max, what) in [
                (&m.title.en, 60, "title.en"),
                (&m.title.ko, 60, "title.ko"),
                (&m.description.en, 240, "description.en"),
                (&m.description.ko, 240, "description.ko"),
            ] {
                check_text(t, max, what)?;
            }
            Ok(Assigned {
                id: mission_id(date, &format!("ai{}", i + 1)),
                catalog_id: None,
                title: m.title,
                description: m.description,
                proof: m.proof,
                // Daily missions count for coupons: a model's mission is checked like the
                // catalog's automatic ones (the proof is still stored and can be reviewed).
                review: Review::Automatic,
                indoor: m.indoor,
            })
        })
        .collect()
}

pub struct Writer {
    client: reqwest::Client,
    url: String,
    model: String,
    key: Option<String>,
    timeout: Duration,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Writer({}, {})", self.url, self.model)
    }
}

impl Writer {
    /// `None` when no endpoint or model is configured.
    pub fn from_config(config: &AiConfig) -> anyhow::Result<Option<Writer>> {
        let (Some(url), Some(model)) = (&config.mission_ai_url, &config.mission_ai_model) else { return Ok(None) };
        let timeout = Duration::from_millis(config.mission_ai_timeout_ms);
        let client =
            reqwest::Client::builder().connect_timeout(timeout.min(Duration::from_secs(5))).timeout(timeout).build()?;
        Ok(Some(Writer {
            client,
            url: format!("{}/chat/completions", url.trim_end_matches('/')),
            model: model.clone(),
            key: config.mission_ai_api_key.clone(),
            timeout,
        }))
    }

    /// Asks the model for a day's missions.
    pub async fn write(&self, date: NaiveDate, forecast: &str, recent: &[String]) -> Result<Vec<Assigned>, AiError> {
        let recent = if recent.is_empty() { "nothing yet".to_owned() } else { recent.join("; ") };
        let body = json!({
            "model": self.model,
            "temperature": 0.7,
            "messages": [
                {"role": "system", "content": "You write three short, safe, everyday missions for a weather app, \
                    each doable in under an hour and provable with a photo or a sentence. Suit the forecast; \
                    never suggest anything dangerous in bad weather (storms, extreme heat or cold, poor air: \
                    prefer indoor missions). Write each title and description in English (en) and Korean (ko). \
                    Answer with JSON only, matching the schema."},
                {"role": "user", "content": format!("Date: {date}. Forecast at the person's home: {forecast}. \
                    Missions they did lately: {recent}. Avoid repeating those.")}
            ],
            "response_format": {"type": "json_schema", "json_schema": {"name": "daily_missions", "strict": true, "schema": answer_schema()}}
        });
        let timeout_ms = u64::try_from(self.timeout.as_millis()).unwrap_or(u64::MAX);
        let mut request = self
            .client
            .post(&self.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(serde_json::to_vec(&body).map_err(|e| AiError::Http(e.to_string()))?);
        if let Some(key) = &self.key {
            request = request.bearer_auth(key);
        }
        let response = request.send().await.map_err(|e| {
            if e.is_timeout() { AiError::Timeout(timeout_ms) } else { AiError::Http(e.without_url().to_string()) }
        })?;
        if !response.status().is_success() {
            return Err(AiError::Http(format!("status {}", response.status())));
        }
        let bytes = response.bytes().await.map_err(|e| {
            if e.is_timeout() { AiError::Timeout(timeout_ms) } else { AiError::Http(e.without_url().to_string()) }
        })?;
        let reply: Value = serde_json::from_slice(&bytes).map_err(|e| AiError::Invalid(e.to_string()))?;
        let content = reply["choices"][0]["message"]["content"]
            .as_str()
            .ok_or_else(|| AiError::Invalid("no choices[0].message.content".to_owned()))?;
        parse_answer(content, date)
    }
}

/// A forecast day as the prompt states it, and as the missions' `weather`.
fn forecast_of(w: &weather::Weather, date: NaiveDate) -> Option<(String, Conditions)> {
    let day = w.daily.iter().find(|d| d.date == date)?;
    let mean = (day.temperature_min_c + day.temperature_max_c) / 2.0;
    let text = format!(
        "{:?}, {:.0} to {:.0} °C, precipitation {:.1} mm ({}% chance), air quality {}",
        day.condition,
        day.temperature_min_c,
        day.temperature_max_c,
        day.precipitation_mm,
        day.precipitation_probability_pct.map_or_else(|| "unknown".to_owned(), |p| format!("{p:.0}")),
        w.air_quality.as_ref().map_or("unknown", |a| if a.level.is_poor() { "poor" } else { "fine" }),
    );
    let conditions = Conditions {
        condition: if day.condition == Condition::Unknown { w.current.condition } else { day.condition },
        temperature_c: mean,
        wind_speed_kmh: w.current.wind_speed_kmh,
        air: w.air_quality.as_ref().map(|a| a.level),
    };
    Some((text, conditions))
}

/// When `date` starts in `tz`: local midnight, or — where midnight falls in a daylight-saving
/// gap (Santiago, Havana, …) — the first instant of the day.
fn day_start(date: NaiveDate, tz: Tz) -> Option<DateTime<Utc>> {
    let midnight = date.and_hms_opt(0, 0, 0)?;
    (0..=2)
        .find_map(|h| (midnight + chrono::Duration::hours(h)).and_local_timezone(tz).earliest())
        .map(|t| t.with_timezone(&Utc))
}

/// One sweep: writes tomorrow's missions for up to `batch` people whose tomorrow starts within
/// `ahead`. Returns how many days were written.
pub async fn sweep(daily: &Daily, writer: &Writer, ahead: Duration, batch: i64, me: &str) -> anyhow::Result<usize> {
    let pool = &daily.db.pool;
    let now = daily.now();
    let zones: Vec<String> = sqlx::query("SELECT DISTINCT time_zone FROM homes WHERE lat IS NOT NULL")
        .fetch_all(pool)
        .await?
        .iter()
        .map(|r| r.try_get("time_zone"))
        .collect::<Result<_, _>>()?;
    // Zones whose tomorrow starts within `ahead`, nearest midnight first (the batch is shared).
    let mut due = Vec::new();
    for zone in zones {
        let tz: Tz = zone.parse().unwrap_or(Tz::UTC);
        let Some(tomorrow) = now.with_timezone(&tz).date_naive().checked_add_days(Days::new(1)) else { continue };
        let Some(start) = day_start(tomorrow, tz) else { continue };
        let until = start - now;
        if until <= chrono::Duration::from_std(ahead).unwrap_or_default() {
            due.push((until, zone, tomorrow));
        }
    }
    due.sort();
    let mut written = 0;
    let mut budget = batch;
    for (_, zone, tomorrow) in due {
        if budget <= 0 {
            break;
        }
        let people = sqlx::query(
            "SELECT h.user_id, h.lat, h.lon FROM homes h \
             WHERE h.time_zone = $1 AND h.lat IS NOT NULL \
             AND NOT EXISTS (SELECT 1 FROM assignments a WHERE a.user_id = h.user_id AND a.local_date = $2) \
             AND NOT EXISTS (SELECT 1 FROM ai_claims c WHERE c.user_id = h.user_id AND c.local_date = $2) \
             ORDER BY h.user_id LIMIT $3",
        )
        .bind(&zone)
        .bind(tomorrow.to_string())
        .bind(budget)
        .fetch_all(pool)
        .await?;
        budget -= i64::try_from(people.len()).unwrap_or(i64::MAX);
        for row in people {
            let user: String = row.try_get("user_id")?;
            let (lat, lon): (f64, f64) = (row.try_get("lat")?, row.try_get("lon")?);
            let claimed = sqlx::query(
                "INSERT INTO ai_claims (user_id, local_date, claimed_by, claimed_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (user_id, local_date) DO NOTHING",
            )
            .bind(&user)
            .bind(tomorrow.to_string())
            .bind(me)
            .bind(now.timestamp_millis())
            .execute(pool)
            .await?
            .rows_affected()
                == 1;
            if !claimed {
                continue;
            }
            let user = Uuid::parse_str(&user)?;
            match write_one(daily, writer, user, tomorrow, &zone, (lat, lon), now).await {
                Ok(()) => {
                    written += 1;
                    metrics::counter!("mission_ai_total", "outcome" => "written").increment(1);
                }
                Err(outcome) => {
                    metrics::counter!("mission_ai_total", "outcome" => outcome).increment(1);
                }
            }
        }
    }
    Ok(written)
}

async fn write_one(
    daily: &Daily,
    writer: &Writer,
    user: Uuid,
    date: NaiveDate,
    zone: &str,
    (lat, lon): (f64, f64),
    now: DateTime<Utc>,
) -> Result<(), &'static str> {
    let cell = Cell::of(lat, lon).ok_or("no-weather")?;
    let weather = daily.weather.get(cell).await.map_err(|_| "no-weather")?;
    let (forecast, conditions) = forecast_of(&weather, date).ok_or("no-weather")?;
    let recent = recent_titles(daily, user).await.map_err(|_| "store")?;
    let missions = writer.write(date, &forecast, &recent).await.map_err(|e| {
        tracing::warn!(error = %e, "the AI writer failed; the catalog answers instead");
        e.outcome()
    })?;
    let assignment = Assignment {
        user_id: user,
        date,
        time_zone: zone.to_owned(),
        weather: Some(conditions),
        missions,
        source: Source::Ai,
    };
    let stored = store::give(&daily.db.pool, &assignment, now.timestamp_millis()).await.map_err(|_| "store")?;
    // The person asked first (past their midnight, the model still writing): what they were
    // shown stays their day.
    if stored.source != Source::Ai {
        return Err("overtaken");
    }
    Ok(())
}

/// The English titles of the missions `user` did lately (newest first, at most 7).
async fn recent_titles(daily: &Daily, user: Uuid) -> anyhow::Result<Vec<String>> {
    let done = store::page(&daily.db.pool, Some(user), Some(store::Status::Accepted), None, 7).await?;
    let mut days: std::collections::HashMap<NaiveDate, Option<Assignment>> = std::collections::HashMap::new();
    let mut titles = Vec::new();
    for v in done {
        if let std::collections::hash_map::Entry::Vacant(e) = days.entry(v.date) {
            e.insert(store::assignment(&daily.db.pool, user, v.date).await?);
        }
        if let Some(m) = days[&v.date].as_ref().and_then(|a| a.missions.iter().find(|m| m.id == v.mission_id)) {
            titles.push(m.title.en.clone());
        }
    }
    Ok(titles)
}

/// Runs sweeps every `interval` until `stop`.
pub async fn run(daily: Arc<Daily>, writer: Writer, config: AiConfig, mut stop: watch::Receiver<bool>) {
    let me = Uuid::new_v4().to_string();
    let ahead = Duration::from_secs(config.mission_ai_ahead_hours * 3600);
    let batch = i64::try_from(config.mission_ai_batch).unwrap_or(i64::MAX);
    let mut tick = tokio::time::interval(Duration::from_secs(config.mission_ai_interval_seconds));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        if *stop.borrow() {
            return;
        }
        match sweep(&daily, &writer, ahead, batch, &me).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(written = n, "AI-written missions for tomorrow"),
            Err(e) => tracing::warn!(error = %e, "AI mission sweep failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 27).unwrap()
    }

    const GOOD: &str = r#"{"missions":[
        {"title":{"en":"Puddle hop","ko":"웅덩이 건너기"},"description":{"en":"Photograph a puddle reflection.","ko":"웅덩이에 비친 풍경을 찍어요."},"proof":"photo","indoor":false},
        {"title":{"en":"Tea time","ko":"차 한 잔"},"description":{"en":"Make tea and say which.","ko":"차를 끓이고 무엇인지 적어요."},"proof":"text","indoor":true},
        {"title":{"en":"Rain view","ko":"비 오는 창밖"},"description":{"en":"Your window in the rain.","ko":"비 오는 창밖을 찍어요."},"proof":"photo-and-text","indoor":true}]}"#;

    #[test]
    fn a_good_answer_becomes_three_missions_of_the_day() {
        let missions = parse_answer(GOOD, day()).unwrap();
        let ids: Vec<&str> = missions.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(ids, ["20261127-ai1", "20261127-ai2", "20261127-ai3"]);
        assert_eq!(missions[2].proof, Proof::PhotoAndText);
        assert!(missions.iter().all(|m| m.catalog_id.is_none() && m.review == Review::Automatic));
    }

    #[test]
    fn answers_breaking_the_schema_are_refused() {
        let two = r#"{"missions":[{"title":{"en":"a","ko":"b"},"description":{"en":"c","ko":"d"},"proof":"photo","indoor":false},{"title":{"en":"a","ko":"b"},"description":{"en":"c","ko":"d"},"proof":"photo","indoor":false}]}"#;
        let cases = [
            two.to_owned(),
            GOOD.replace(r#""proof":"text""#, r#""proof":"video""#),
            GOOD.replace(r#""indoor":true}"#, r#""indoor":true,"points":100}"#),
            GOOD.replace("Puddle hop", "<script>alert(1)</script>"),
            GOOD.replace("Puddle hop", &"x".repeat(61)),
            GOOD.replace(r#""ko":"웅덩이 건너기""#, r#""ko":"""#),
            "Sure! Here are your missions: ...".to_owned(),
            String::new(),
        ];
        for c in cases {
            assert!(matches!(parse_answer(&c, day()), Err(AiError::Invalid(_))), "{c}");
        }
    }

    #[test]
    fn a_day_starting_in_a_daylight_saving_gap_starts_at_its_first_instant() {
        // Santiago: clocks went from 00:00 to 01:00 on 7 September 2025.
        let gap = NaiveDate::from_ymd_opt(2025, 9, 7).unwrap();
        let start = day_start(gap, chrono_tz::America::Santiago).expect("a start");
        assert_eq!(start.to_rfc3339(), "2025-09-07T04:00:00+00:00");
        let seoul = day_start(day(), chrono_tz::Asia::Seoul).unwrap();
        assert_eq!(seoul.to_rfc3339(), "2026-11-26T15:00:00+00:00");
    }

    #[test]
    fn the_schema_asks_for_what_the_parser_checks() {
        let s = answer_schema();
        assert_eq!(s["properties"]["missions"]["minItems"], 3);
        assert_eq!(s["properties"]["missions"]["items"]["properties"]["title"]["properties"]["en"]["maxLength"], 60);
        assert_eq!(s["properties"]["missions"]["items"]["additionalProperties"], false);
    }
}
