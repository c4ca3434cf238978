//! Missions people create for each other: a title, a period (local dates in a time zone), a
//! capacity and a verification rule (`creator` checks each completion, or `automatic`). Others
//! join — never beyond capacity, however many join at once — and complete within the period; an
//! accepted completion publishes `MissionVerified` with `source: created` through the outbox.
//! Campaigns count those only when their eligibility says so (`AnyVerifiedSameDay`).

mod http;
mod store;

use std::sync::Arc;

use axum::Router;
use axum::extract::FromRef;
use axum::routing::{get, post};
use platform::auth::JwtKeys;
use platform::clock::Clock;
use platform::db::Database;
use platform::events::Outbox;
use platform::events::contracts::topics;
use platform::service::{Context, Started};
use utoipa::OpenApi;

pub const SERVICE: &str = "created-mission";

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

pub fn migrator() -> &'static sqlx::migrate::Migrator {
    &MIGRATOR
}

#[derive(OpenApi)]
#[openapi(
    paths(http::create, http::list, http::get_one, http::join, http::complete, http::participants, http::approve, http::reject),
    tags((name = "created-missions", description = "Missions people create for each other"))
)]
struct ApiDoc;

/// The handlers' state: one `Arc`, because axum clones a route's state for every request
/// (a struct of many `Arc`s cost an atomic increment and decrement each, per request).
#[derive(Clone)]
pub struct CreatedState(Arc<CreatedParts>);

impl std::ops::Deref for CreatedState {
    type Target = CreatedParts;

    fn deref(&self) -> &CreatedParts {
        &self.0
    }
}

pub struct CreatedParts {
    db: Database,
    outbox: Outbox,
    keys: Arc<JwtKeys>,
    clock: Clock,
}

impl FromRef<CreatedState> for Arc<JwtKeys> {
    fn from_ref(state: &CreatedState) -> Self {
        state.keys.clone()
    }
}

pub fn router(state: CreatedState) -> Router {
    Router::new()
        .route("/api/created-missions", post(http::create).get(http::list))
        .route("/api/created-missions/{id}", get(http::get_one))
        .route("/api/created-missions/{id}/join", post(http::join))
        .route("/api/created-missions/{id}/completions", post(http::complete))
        .route("/api/created-missions/{id}/participants", get(http::participants))
        .route("/api/created-missions/{id}/participants/{user}/approve", post(http::approve))
        .route("/api/created-missions/{id}/participants/{user}/reject", post(http::reject))
        .with_state(state)
}

pub async fn start(ctx: &Context) -> anyhow::Result<Started> {
    let db = Database::open(&ctx.database, SERVICE, ctx.db_max_connections, &MIGRATOR).await?;
    ctx.bus.ensure_topics(&[topics::MISSIONS_VERIFIED]).await?;
    let outbox = Outbox::new(db.clone(), ctx.bus.clone());
    let state = CreatedState(Arc::new(CreatedParts {
        db: db.clone(),
        outbox: outbox.clone(),
        keys: ctx.keys.clone(),
        clock: ctx.clock.clone(),
    }));
    Ok(Started {
        name: SERVICE,
        router: router(state),
        openapi: ApiDoc::openapi(),
        readiness: vec![db.readiness(), ctx.bus.readiness()],
        tasks: vec![outbox.spawn_relay(ctx.stop.clone())],
    })
}
