//! Identity: accounts with Argon2id passwords, short-lived access tokens carrying the
//! account's roles, and rotating refresh tokens with reuse detection inside sessions of
//! bounded age. Announces `UserRegistered` and `SessionRevoked` through the outbox; never
//! calls another service.

pub mod config;
mod handlers;
mod password;
mod store;
mod tokens;
mod validate;
mod web;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::FromRef;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use axum::routing::post;
use platform::ApiError;
use platform::auth::JwtKeys;
use platform::clock::Clock;
use platform::counters::{Counters, Window};
use platform::db::Database;
use platform::events::Outbox;
use platform::events::contracts::topics;
use platform::http::ForwardedPolicy;
use platform::roles::Roles;
use platform::service::{Context, Started};
use utoipa::OpenApi;
use uuid::Uuid;

pub use config::AuthConfig;
pub use handlers::TokenResponse;
pub use web::{CSRF_COOKIE, CSRF_HEADER, REFRESH_COOKIE};

pub const SERVICE: &str = "auth";

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

#[derive(OpenApi)]
#[openapi(
    paths(
        handlers::signup,
        handlers::login,
        handlers::refresh,
        handlers::logout,
        handlers::logout_all,
        handlers::change_password,
        web::login,
        web::refresh,
        web::logout
    ),
    tags((name = "auth", description = "Accounts and tokens"))
)]
struct ApiDoc;

#[derive(Clone)]
pub struct AuthState {
    db: Database,
    keys: Arc<JwtKeys>,
    counters: Counters,
    outbox: Outbox,
    hasher: password::Hasher,
    clock: Clock,
    config: Arc<AuthConfig>,
    forwarded: Arc<ForwardedPolicy>,
}

impl FromRef<AuthState> for Arc<ForwardedPolicy> {
    fn from_ref(state: &AuthState) -> Self {
        state.forwarded.clone()
    }
}

impl FromRef<AuthState> for Arc<JwtKeys> {
    fn from_ref(state: &AuthState) -> Self {
        state.keys.clone()
    }
}

impl AuthState {
    fn token_response(
        &self,
        user_id: Uuid,
        session_id: Uuid,
        roles: Roles,
        refresh_token: String,
    ) -> Result<TokenResponse, ApiError> {
        let ttl = self.config.access_ttl();
        Ok(TokenResponse {
            access_token: self.keys.sign_with_roles(user_id, session_id, roles, self.clock.now(), ttl)?,
            refresh_token,
            expires_in: ttl.as_secs(),
            token_type: "Bearer".to_owned(),
        })
    }

    // Rate limits fail open: an unreachable counter store must not lock everyone out
    // of their accounts. The failure is logged and counted.
    async fn limit_hit(&self, key: &str, window: Duration) -> Option<Window> {
        self.counters.hit(key, window).await.map_err(limit_down).ok()
    }

    async fn limit_reset(&self, key: &str) {
        let _ = self.counters.reset(key).await.map_err(limit_down);
    }
}

fn limit_down(e: platform::counters::CounterError) {
    metrics::counter!("auth_rate_limit_unavailable_total").increment(1);
    tracing::error!(error = %e, "login rate limit unavailable; allowing the attempt");
}

pub fn router(state: AuthState) -> Router {
    Router::new()
        .route("/api/auth/signup", post(handlers::signup))
        .route("/api/auth/login", post(handlers::login))
        .route("/api/auth/refresh", post(handlers::refresh))
        .route("/api/auth/logout", post(handlers::logout))
        .route("/api/auth/logout-all", post(handlers::logout_all))
        .route("/api/auth/password", post(handlers::change_password))
        .route("/api/auth/web/login", post(web::login))
        .route("/api/auth/web/refresh", post(web::refresh))
        .route("/api/auth/web/logout", post(web::logout))
        .layer(axum::middleware::map_response(no_store))
        .with_state(state)
}

/// Token responses must not be kept by browsers or proxies (RFC 6749 §5.1); nothing else
/// auth answers is worth caching either.
async fn no_store(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

/// Opens the auth database (running its migrations), for `ww admin`.
pub async fn open_database(url: &platform::db::DatabaseUrl) -> anyhow::Result<Database> {
    Database::open(url, SERVICE, 2, &MIGRATOR).await
}

/// What a role change did, for `ww admin` to report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoleChange {
    Done,
    Unchanged,
    NoSuchAccount,
}

/// Grants (`grant = true`) or revokes `role` of the account with `email`; effective at the
/// account's next login or refresh.
pub async fn set_role(
    db: &Database,
    email: &str,
    role: platform::roles::Role,
    grant: bool,
) -> anyhow::Result<RoleChange> {
    let email = validate::normalize_email(email).map_err(|e| anyhow::anyhow!("{email}: {e}"))?;
    let changed = if grant {
        store::grant_role(&db.pool, &email, role.as_str(), chrono::Utc::now().timestamp_millis()).await?
    } else {
        store::revoke_role(&db.pool, &email, role.as_str()).await?
    };
    Ok(match changed {
        None => RoleChange::NoSuchAccount,
        Some(true) => RoleChange::Done,
        Some(false) => RoleChange::Unchanged,
    })
}

/// Opens the database, runs migrations, starts the outbox relay and returns the router.
pub async fn start(ctx: &Context, config: &AuthConfig) -> anyhow::Result<Started> {
    let db = Database::open(&ctx.database, SERVICE, ctx.db_max_connections, &MIGRATOR).await?;
    ctx.bus.ensure_topics(&[topics::IDENTITY]).await?;
    let outbox = Outbox::new(db.clone(), ctx.bus.clone());
    let hasher = password::Hasher::new(config)?;
    tracing::info!(hash = %describe_hash_cost(config), "auth service ready");
    let state = AuthState {
        db: db.clone(),
        keys: ctx.keys.clone(),
        counters: ctx.counters.clone(),
        outbox: outbox.clone(),
        hasher,
        clock: ctx.clock.clone(),
        config: Arc::new(config.clone()),
        forwarded: ctx.forwarded.clone(),
    };
    let mut readiness = vec![db.readiness(), ctx.bus.readiness()];
    readiness.extend(ctx.counters.readiness());
    Ok(Started {
        name: SERVICE,
        router: router(state),
        openapi: ApiDoc::openapi(),
        readiness,
        tasks: vec![outbox.spawn_relay(ctx.stop.clone())],
    })
}

/// The Argon2id cost in force, as benchmarks report it.
pub fn describe_hash_cost(config: &AuthConfig) -> String {
    format!("argon2id m={}KiB t={} p={}", config.argon2_memory_kib, config.argon2_iterations, config.argon2_parallelism)
}
