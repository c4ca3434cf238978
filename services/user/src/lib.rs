//! User profiles. A profile is created by consuming `UserRegistered` (never by a call
//! from auth); until then `GET /api/users/me` answers a profile marked `pending`.
//! Edits are announced as `UserProfileUpdated` through the outbox.

mod cache;
mod handlers;
pub mod model;
mod store;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::FromRef;
use axum::routing::get;
use platform::auth::JwtKeys;
use platform::clock::Clock;
use platform::db::Database;
use platform::events::contracts::{USER_REGISTERED, UserRegistered, topics};
use platform::events::{Envelope, Handler, Outbox};
use platform::service::{Context, Started};
use utoipa::OpenApi;

pub const SERVICE: &str = "user";
/// The consumer group that builds profiles from identity events.
pub const GROUP: &str = "user.profiles";

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

#[derive(OpenApi)]
#[openapi(paths(handlers::me, handlers::update_me), tags((name = "users", description = "Your profile")))]
struct ApiDoc;

/// The handlers' state: one `Arc`, because axum clones a route's state for every request
/// (a struct of many `Arc`s cost an atomic increment and decrement each, per request).
#[derive(Clone)]
pub struct UserState(Arc<UserParts>);

impl std::ops::Deref for UserState {
    type Target = UserParts;

    fn deref(&self) -> &UserParts {
        &self.0
    }
}

pub struct UserParts {
    db: Database,
    keys: Arc<JwtKeys>,
    outbox: Outbox,
    clock: Clock,
    cache: Arc<cache::ProfileCache>,
}

/// Settings of the user service.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "User")]
pub struct UserConfig {
    /// How long a replica serves a cached profile before rereading it (0 disables the
    /// cache). Edits on other replicas evict entries sooner, through events.
    #[arg(long, env = "WW_PROFILE_CACHE_TTL_SECONDS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(0..=3600))]
    pub profile_cache_ttl_seconds: u64,
    /// Profiles a replica keeps cached at most.
    #[arg(long, env = "WW_PROFILE_CACHE_CAPACITY", default_value_t = 200_000, value_parser = clap::value_parser!(u64).range(0..=10_000_000))]
    pub profile_cache_capacity: u64,
}

impl Default for UserConfig {
    fn default() -> Self {
        Self { profile_cache_ttl_seconds: 30, profile_cache_capacity: 200_000 }
    }
}

impl FromRef<UserState> for Arc<JwtKeys> {
    fn from_ref(state: &UserState) -> Self {
        state.keys.clone()
    }
}

pub fn router(state: UserState) -> Router {
    Router::new().route("/api/users/me", get(handlers::me).patch(handlers::update_me)).with_state(state)
}

/// Creates profiles from `UserRegistered`; idempotent by the user id.
struct ProfileBuilder {
    db: Database,
    clock: Clock,
}

impl Handler for ProfileBuilder {
    async fn handle(&self, event: &Envelope) -> anyhow::Result<()> {
        if event.kind != USER_REGISTERED {
            return Ok(());
        }
        let Some(registered) = event.decode_or_skip::<UserRegistered>() else { return Ok(()) };
        let created = store::create_from_signup(&self.db.pool, &registered, self.clock.now_millis()).await?;
        tracing::debug!(user_id = %registered.user_id, created, "profile from signup");
        Ok(())
    }
}

pub async fn start(ctx: &Context, config: &UserConfig) -> anyhow::Result<Started> {
    let db = Database::open(&ctx.database, SERVICE, ctx.db_max_connections, &MIGRATOR).await?;
    ctx.bus.ensure_topics(&[topics::IDENTITY, topics::PROFILES]).await?;
    let outbox = Outbox::new(db.clone(), ctx.bus.clone());
    let consumer = ctx.bus.spawn_consumer(
        GROUP,
        &[topics::IDENTITY],
        ProfileBuilder { db: db.clone(), clock: ctx.clock.clone() },
        ctx.stop.clone(),
    );
    let cache = Arc::new(cache::ProfileCache::new(
        Duration::from_secs(config.profile_cache_ttl_seconds),
        usize::try_from(config.profile_cache_capacity).unwrap_or(usize::MAX),
    ));
    let evictor = ctx.bus.spawn_broadcast(
        "user.profile-cache",
        &[topics::PROFILES],
        cache::Evictor(cache.clone()),
        ctx.stop.clone(),
    );
    let state = UserState(Arc::new(UserParts {
        db: db.clone(),
        keys: ctx.keys.clone(),
        outbox: outbox.clone(),
        clock: ctx.clock.clone(),
        cache,
    }));
    Ok(Started {
        name: SERVICE,
        router: router(state),
        openapi: ApiDoc::openapi(),
        readiness: vec![db.readiness(), ctx.bus.readiness()],
        tasks: vec![consumer, evictor, outbox.spawn_relay(ctx.stop.clone())],
    })
}
