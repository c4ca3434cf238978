//! Weather by place (`GET /api/weather?lat=&lon=`): Open-Meteo or the simulated provider
//! behind one interface ([`provider::Provider`]), cached per 0.1° grid cell in Redis
//! (in memory in the embedded mode) by [`WeatherSource`], which the mission service uses too —
//! the same keys, no call to this service on anyone's request path.

pub mod model;
pub mod open_meteo;
pub mod provider;
pub mod simulated;
mod source;
mod store;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{FromRef, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use platform::ApiError;
use platform::auth::{AuthUser, JwtKeys};
use platform::db::Database;
use platform::http::Query;
use platform::service::{Context, Started};
use serde::Deserialize;
use utoipa::{IntoParams, OpenApi};

pub use model::{Cell, Condition, Weather};
pub use source::{Cache, Timing, Unavailable, WeatherSource};

pub const SERVICE: &str = "weather";

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

pub fn migrator() -> &'static sqlx::migrate::Migrator {
    &MIGRATOR
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProviderKind {
    /// Open-Meteo over HTTPS (keyless for non-commercial use; a key selects the customer hosts).
    OpenMeteo,
    /// Deterministic, plausible weather with no network.
    Simulated,
}

/// Settings of weather, for the weather service and every service that reads weather.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Weather")]
pub struct WeatherConfig {
    /// Where weather comes from. Default: `open-meteo` under `ww serve`, `simulated` under
    /// `ww dev` (no network needed).
    #[arg(long, env = "WW_WEATHER_PROVIDER", value_enum)]
    pub weather_provider: Option<ProviderKind>,
    /// The forecast API's host (default: Open-Meteo's public host, or its customer host when
    /// an API key is set).
    #[arg(long, env = "WW_OPEN_METEO_URL")]
    pub open_meteo_url: Option<String>,
    /// The air-quality API's host (default: the public or customer air-quality host).
    #[arg(long, env = "WW_OPEN_METEO_AIR_QUALITY_URL")]
    pub open_meteo_air_quality_url: Option<String>,
    /// Open-Meteo API key for commercial use (sent as `apikey`).
    #[arg(long, env = "WW_OPEN_METEO_API_KEY", hide_env_values = true)]
    pub open_meteo_api_key: Option<String>,
    /// Seconds a cell's weather is served from the cache without asking the provider.
    #[arg(long, env = "WW_WEATHER_FRESH_SECONDS", default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub weather_fresh_seconds: u64,
    /// Seconds the last known value may still be served (marked stale) while the provider is
    /// down; older, a 503.
    #[arg(long, env = "WW_WEATHER_STALE_MAX_SECONDS", default_value_t = 21_600, value_parser = clap::value_parser!(u64).range(0..=604_800))]
    pub weather_stale_max_seconds: u64,
    /// The longest one call to the provider may take (milliseconds).
    #[arg(long, env = "WW_WEATHER_UPSTREAM_TIMEOUT_MS", default_value_t = 4_000, value_parser = clap::value_parser!(u64).range(100..=60_000))]
    pub weather_upstream_timeout_ms: u64,
    /// How long a request waits for a refresh before serving the last known value marked
    /// stale (milliseconds).
    #[arg(long, env = "WW_WEATHER_STALE_AFTER_MS", default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(10..=60_000))]
    pub weather_stale_after_ms: u64,
}

impl Default for WeatherConfig {
    fn default() -> Self {
        Self {
            weather_provider: None,
            open_meteo_url: None,
            open_meteo_air_quality_url: None,
            open_meteo_api_key: None,
            weather_fresh_seconds: 600,
            weather_stale_max_seconds: 21_600,
            weather_upstream_timeout_ms: 4_000,
            weather_stale_after_ms: 1_000,
        }
    }
}

impl WeatherConfig {
    pub fn timing(&self) -> Timing {
        Timing {
            fresh: Duration::from_secs(self.weather_fresh_seconds),
            stale_max: Duration::from_secs(self.weather_stale_max_seconds),
            upstream_timeout: Duration::from_millis(self.weather_upstream_timeout_ms),
            stale_after: Duration::from_millis(self.weather_stale_after_ms),
        }
    }

    /// The configured provider, or `default` when none is.
    pub fn provider(&self, default: ProviderKind) -> anyhow::Result<provider::Provider> {
        Ok(match self.weather_provider.unwrap_or(default) {
            ProviderKind::Simulated => provider::Provider::Simulated(simulated::Simulated),
            ProviderKind::OpenMeteo => provider::Provider::OpenMeteo(open_meteo::OpenMeteo::new(
                self.open_meteo_url.as_deref(),
                self.open_meteo_air_quality_url.as_deref(),
                self.open_meteo_api_key.as_deref(),
                Duration::from_millis(self.weather_upstream_timeout_ms),
            )?),
        })
    }

    /// A source on the platform's cache (Redis when configured) with `store` for last known
    /// values; `default` is the provider when none is configured.
    pub fn source(
        &self,
        ctx: &Context,
        store: Option<Database>,
        default: ProviderKind,
    ) -> anyhow::Result<WeatherSource> {
        let cache = match ctx.counters.redis_connection() {
            Some((conn, prefix)) => Cache::redis(conn, &prefix),
            None => Cache::memory(),
        };
        Ok(WeatherSource::new(self.provider(default)?, cache, store, ctx.clock.clone(), self.timing()))
    }
}

#[derive(OpenApi)]
#[openapi(paths(weather), tags((name = "weather", description = "Weather by place")))]
struct ApiDoc;

/// The handlers' state: one `Arc`, because axum clones a route's state for every request
/// (a struct of many `Arc`s cost an atomic increment and decrement each, per request).
#[derive(Clone)]
pub struct WeatherState(Arc<WeatherParts>);

impl std::ops::Deref for WeatherState {
    type Target = WeatherParts;

    fn deref(&self) -> &WeatherParts {
        &self.0
    }
}

pub struct WeatherParts {
    pub source: WeatherSource,
    pub keys: Arc<JwtKeys>,
}

impl FromRef<WeatherState> for Arc<JwtKeys> {
    fn from_ref(state: &WeatherState) -> Self {
        state.keys.clone()
    }
}

pub fn router(state: WeatherState) -> Router {
    Router::new().route("/api/weather", get(weather)).with_state(state)
}

/// A place.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct WeatherQuery {
    /// Latitude, degrees north (rounded to 0.1°).
    #[param(minimum = -90.0, maximum = 90.0, example = 37.57)]
    pub lat: f64,
    /// Longitude, degrees east (rounded to 0.1°).
    #[param(minimum = -180.0, maximum = 180.0, example = 126.98)]
    pub lon: f64,
}

#[utoipa::path(get, path = "/api/weather", tag = "weather", security(("bearer" = [])), params(WeatherQuery),
    responses(
        (status = 200, description = "Current conditions and forecast of the place's 0.1° cell. `stale: true` when the provider did not answer in time and this is the last known value.", body = Weather),
        (status = 400, description = "lat/lon missing, not numbers or out of range.", body = platform::error::Problem, content_type = "application/problem+json"),
        (status = 503, description = "The provider is unavailable and nothing recent is known for this place; retry after `Retry-After`.", body = platform::error::Problem, content_type = "application/problem+json"),
    ))]
pub async fn weather(
    State(state): State<WeatherState>,
    _user: AuthUser,
    Query(q): Query<WeatherQuery>,
) -> Result<Response, ApiError> {
    let cell = Cell::of(q.lat, q.lon).ok_or_else(|| {
        ApiError::bad_request("invalid-location", "lat must be -90 to 90 and lon -180 to 180 (degrees).")
    })?;
    let (json, stale) = state.source.get_json(cell).await.map_err(|e| {
        // The provider's own words stay in the logs (source.rs logs each failure).
        ApiError::unavailable(
            "weather-unavailable",
            format!("The weather provider did not answer for this place ({}); retry later.", e.0.outcome()),
            30,
        )
    })?;
    let cache = if stale { "no-cache" } else { "private, max-age=60" };
    Ok((
        [
            (header::CACHE_CONTROL, HeaderValue::from_static(cache)),
            (header::CONTENT_TYPE, HeaderValue::from_static("application/json")),
        ],
        json,
    )
        .into_response())
}

/// `ww serve weather`: Open-Meteo unless configured otherwise.
pub async fn start(ctx: &Context, config: &WeatherConfig) -> anyhow::Result<Started> {
    start_with(ctx, config, ProviderKind::OpenMeteo).await
}

/// The weather role with `default` as the provider when none is configured (`ww dev`:
/// simulated).
pub async fn start_with(ctx: &Context, config: &WeatherConfig, default: ProviderKind) -> anyhow::Result<Started> {
    let db = Database::open(&ctx.database, SERVICE, ctx.db_max_connections, &MIGRATOR).await?;
    let source = config.source(ctx, Some(db.clone()), default)?;
    tracing::info!(provider = source.provider(), "weather");
    let mut readiness = vec![db.readiness()];
    readiness.extend(ctx.counters.readiness());
    Ok(Started {
        name: SERVICE,
        router: router(WeatherState(Arc::new(WeatherParts { source, keys: ctx.keys.clone() }))),
        openapi: ApiDoc::openapi(),
        readiness,
        tasks: Vec::new(),
    })
}
