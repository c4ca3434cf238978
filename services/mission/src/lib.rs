//! Daily missions. Each person gets up to three missions a day, chosen from the weather at
//! their home location (a catalog in `catalog/daily.yaml`), stored once per (person, local
//! date) so every replica answers the same. A proof (a photo with its location metadata
//! removed, and/or a text) is accepted at once or by a moderator; an accepted one publishes
//! `MissionVerified` through the outbox — the event coupon eligibility is built from.
//!
//! Homes come from `UserProfileUpdated` events and weather from the weather crate's cache:
//! nothing here calls another service on a request path.

pub mod ai;
pub mod catalog;
pub mod daily;
mod http;
pub mod objects;
pub mod proof;
pub mod store;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRef};
use axum::routing::{get, post};
use platform::auth::JwtKeys;
use platform::db::Database;
use platform::events::contracts::{USER_PROFILE_UPDATED, UserProfileUpdated, topics};
use platform::events::{Envelope, Handler, Outbox};
use platform::service::{Context, Started};
use utoipa::OpenApi;

pub use http::streak;

pub const SERVICE: &str = "mission";
/// The consumer group that keeps people's homes.
pub const GROUP: &str = "mission.homes";

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

pub fn migrator() -> &'static sqlx::migrate::Migrator {
    &MIGRATOR
}

/// Settings of the mission service.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Missions")]
pub struct MissionConfig {
    /// A mission catalog file replacing the built-in one (same format as
    /// `services/mission/catalog/daily.yaml`; checked at start).
    #[arg(long, env = "WW_MISSION_CATALOG")]
    pub mission_catalog: Option<PathBuf>,
    /// Largest proof photo, in bytes.
    #[arg(long, env = "WW_MISSION_MAX_PHOTO_BYTES", default_value_t = 8 * 1024 * 1024, value_parser = clap::value_parser!(u64).range(1024..=64 * 1024 * 1024))]
    pub mission_max_photo_bytes: u64,
    /// How long choosing today's missions waits for the weather before choosing without it
    /// (milliseconds; the weather keeps coming and the next request uses it).
    #[arg(long, env = "WW_MISSION_WEATHER_WAIT_MS", default_value_t = 1_500, value_parser = clap::value_parser!(u64).range(10..=30_000))]
    pub mission_weather_wait_ms: u64,
    #[command(flatten)]
    pub objects: objects::ObjectConfig,
    #[command(flatten)]
    pub ai: ai::AiConfig,
}

impl Default for MissionConfig {
    fn default() -> Self {
        Self {
            mission_catalog: None,
            mission_max_photo_bytes: 8 * 1024 * 1024,
            mission_weather_wait_ms: 1_500,
            objects: objects::ObjectConfig::default(),
            ai: ai::AiConfig::default(),
        }
    }
}

impl MissionConfig {
    pub fn catalog(&self) -> anyhow::Result<catalog::Catalog> {
        match &self.mission_catalog {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| anyhow::anyhow!("WW_MISSION_CATALOG {}: {e}", path.display()))?;
                catalog::Catalog::parse(&text)
                    .map_err(|e| anyhow::anyhow!("WW_MISSION_CATALOG {}: {e}", path.display()))
            }
            None => Ok(catalog::Catalog::built_in()),
        }
    }
}

#[derive(OpenApi)]
#[openapi(
    paths(http::today, http::verify, http::history, http::pending, http::approve, http::reject, http::photo, http::streak_of),
    tags((name = "missions", description = "Daily weather missions and their proofs"))
)]
struct ApiDoc;

/// The handlers' state: one `Arc`, because axum clones a route's state for every request
/// (a struct of many `Arc`s cost an atomic increment and decrement each, per request).
#[derive(Clone)]
pub struct MissionState(Arc<MissionParts>);

impl std::ops::Deref for MissionState {
    type Target = MissionParts;

    fn deref(&self) -> &MissionParts {
        &self.0
    }
}

pub struct MissionParts {
    daily: Arc<daily::Daily>,
    objects: Arc<objects::Objects>,
    outbox: Outbox,
    keys: Arc<JwtKeys>,
    max_photo_bytes: usize,
}

impl FromRef<MissionState> for Arc<JwtKeys> {
    fn from_ref(state: &MissionState) -> Self {
        state.keys.clone()
    }
}

pub fn router(state: MissionState) -> Router {
    // The upload route reads up to a photo plus the form's own overhead.
    let upload_limit = state.max_photo_bytes + 64 * 1024;
    Router::new()
        .route("/api/missions/today", get(http::today))
        .route("/api/missions/{id}/verifications", post(http::verify).layer(DefaultBodyLimit::max(upload_limit)))
        .route("/api/missions/verifications", get(http::history))
        .route("/api/missions/verifications/pending", get(http::pending))
        .route("/api/missions/verifications/{id}/approve", post(http::approve))
        .route("/api/missions/verifications/{id}/reject", post(http::reject))
        .route("/api/missions/verifications/{id}/photo", get(http::photo))
        .route("/api/missions/streak", get(http::streak_of))
        .with_state(state)
}

/// Keeps each person's home location and time zone from their profile edits.
struct HomeFeed {
    db: Database,
}

impl Handler for HomeFeed {
    async fn handle(&self, event: &Envelope) -> anyhow::Result<()> {
        if event.kind != USER_PROFILE_UPDATED {
            return Ok(());
        }
        let Some(p) = event.decode_or_skip::<UserProfileUpdated>() else { return Ok(()) };
        let location = p.home_lat.zip(p.home_lon);
        store::save_home(&self.db.pool, p.user_id, location, &p.time_zone, p.updated_at.timestamp_millis()).await?;
        Ok(())
    }
}

/// `ww serve mission` (and `ww dev`): `proof_dir` is where the local proof store defaults to.
pub async fn start(
    ctx: &Context,
    config: &MissionConfig,
    weather: &weather::WeatherConfig,
    default_provider: weather::ProviderKind,
    proof_dir: &Path,
) -> anyhow::Result<Started> {
    let catalog = Arc::new(config.catalog()?);
    let db = Database::open(&ctx.database, SERVICE, ctx.db_max_connections, &MIGRATOR).await?;
    ctx.bus.ensure_topics(&[topics::PROFILES, topics::MISSIONS_VERIFIED]).await?;
    let outbox = Outbox::new(db.clone(), ctx.bus.clone());
    let homes = ctx.bus.spawn_consumer(GROUP, &[topics::PROFILES], HomeFeed { db: db.clone() }, ctx.stop.clone());
    // Weather through the weather crate's cache (the same keys as the weather service); the
    // weather service's SQL is its own, so no last-known store here.
    let source = weather.source(ctx, None, default_provider)?;
    let writer = ai::Writer::from_config(&config.ai)?;
    let daily = Arc::new(daily::Daily {
        db: db.clone(),
        catalog,
        weather: source,
        clock: ctx.clock.clone(),
        weather_wait: Duration::from_millis(config.mission_weather_wait_ms),
        ai_writes: writer.is_some(),
        caches: daily::Caches::default(),
    });
    let mut tasks = vec![homes, outbox.spawn_relay(ctx.stop.clone())];
    if let Some(writer) = writer {
        tracing::info!(writer = ?writer, "missions for tomorrow are written by an AI model");
        tasks.push(tokio::spawn(ai::run(daily.clone(), writer, config.ai.clone(), ctx.stop.clone())));
    }
    let objects = Arc::new(objects::Objects::open(&config.objects, proof_dir)?);
    let state = MissionState(Arc::new(MissionParts {
        daily,
        objects,
        outbox: outbox.clone(),
        keys: ctx.keys.clone(),
        max_photo_bytes: usize::try_from(config.mission_max_photo_bytes).unwrap_or(usize::MAX),
    }));
    let mut readiness = vec![db.readiness(), ctx.bus.readiness()];
    readiness.extend(ctx.counters.readiness());
    Ok(Started { name: SERVICE, router: router(state), openapi: ApiDoc::openapi(), readiness, tasks })
}
