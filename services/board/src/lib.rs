//! The community board: posts, comments and likes (counts exact under concurrency), edits and
//! soft deletes of your own content, a per-person write limit shared by every replica, reports
//! that hide what enough people flag until a moderator decides, blocks, moderator removal, and
//! search that finds Korean as well as English through an n-gram index on both backends
//! (`search`). Authors' nicknames come from the identity and profile events, never from a call
//! to the user service.

mod http;
pub mod search;
mod store;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::FromRef;
use axum::routing::{get, post, put};
use platform::auth::JwtKeys;
use platform::clock::Clock;
use platform::counters::Counters;
use platform::db::Database;
use platform::events::contracts::{USER_PROFILE_UPDATED, USER_REGISTERED, UserProfileUpdated, UserRegistered, topics};
use platform::events::{Envelope, Handler};
use platform::service::{Context, Started};
use utoipa::OpenApi;

pub const SERVICE: &str = "board";
/// The consumer group keeping authors' nicknames.
pub const GROUP: &str = "board.authors";

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

pub fn migrator() -> &'static sqlx::migrate::Migrator {
    &MIGRATOR
}

/// Settings of the board.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Board")]
pub struct BoardConfig {
    /// Posts one person may write in ten minutes (every replica counts together, in Redis).
    #[arg(long, env = "WW_BOARD_POSTS_PER_10_MIN", default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub board_posts_per_10_min: u64,
    /// Writes (posts, comments and edits) one person may make in a minute.
    #[arg(long, env = "WW_BOARD_WRITES_PER_MIN", default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub board_writes_per_min: u64,
    /// Distinct people whose reports hide a post or comment until a moderator decides.
    #[arg(long, env = "WW_BOARD_HIDE_AFTER_REPORTS", default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub board_hide_after_reports: u64,
}

impl Default for BoardConfig {
    fn default() -> Self {
        Self { board_posts_per_10_min: 5, board_writes_per_min: 20, board_hide_after_reports: 5 }
    }
}

#[derive(OpenApi)]
#[openapi(
    paths(
        http::create_post, http::list_posts, http::get_post, http::edit_post, http::delete_post,
        http::like, http::unlike,
        http::create_comment, http::list_comments, http::edit_comment, http::delete_comment,
        http::report_post, http::report_comment, http::blocks, http::block, http::unblock,
        http::queue, http::remove_post, http::remove_comment, http::dismiss_post, http::dismiss_comment,
    ),
    tags((name = "board", description = "The community board"))
)]
struct ApiDoc;

/// A write limit: so many in a window.
#[derive(Debug, Clone, Copy)]
pub struct Limit {
    pub count: u64,
    pub window: Duration,
}

/// The handlers' state: one `Arc`, because axum clones a route's state for every request
/// (a struct of many `Arc`s cost an atomic increment and decrement each, per request).
#[derive(Clone)]
pub struct BoardState(Arc<BoardParts>);

impl std::ops::Deref for BoardState {
    type Target = BoardParts;

    fn deref(&self) -> &BoardParts {
        &self.0
    }
}

pub struct BoardParts {
    db: Database,
    counters: Counters,
    keys: Arc<JwtKeys>,
    clock: Clock,
    posts: Limit,
    writes: Limit,
    actions: Limit,
    hide_at: i64,
}

impl FromRef<BoardState> for Arc<JwtKeys> {
    fn from_ref(state: &BoardState) -> Self {
        state.keys.clone()
    }
}

pub fn router(state: BoardState) -> Router {
    Router::new()
        .route("/api/board/posts", post(http::create_post).get(http::list_posts))
        .route("/api/board/posts/{id}", get(http::get_post).patch(http::edit_post).delete(http::delete_post))
        .route("/api/board/posts/{id}/like", put(http::like).delete(http::unlike))
        .route("/api/board/posts/{id}/comments", post(http::create_comment).get(http::list_comments))
        .route("/api/board/posts/{id}/reports", post(http::report_post))
        .route("/api/board/posts/{id}/removal", post(http::remove_post))
        .route("/api/board/posts/{id}/dismissal", post(http::dismiss_post))
        .route("/api/board/comments/{id}", axum::routing::patch(http::edit_comment).delete(http::delete_comment))
        .route("/api/board/comments/{id}/reports", post(http::report_comment))
        .route("/api/board/comments/{id}/removal", post(http::remove_comment))
        .route("/api/board/comments/{id}/dismissal", post(http::dismiss_comment))
        .route("/api/board/blocks", get(http::blocks))
        .route("/api/board/blocks/{user}", put(http::block).delete(http::unblock))
        .route("/api/board/reports", get(http::queue))
        .with_state(state)
}

/// Keeps authors' nicknames from signups and profile edits.
struct AuthorFeed {
    db: Database,
}

impl Handler for AuthorFeed {
    async fn handle(&self, event: &Envelope) -> anyhow::Result<()> {
        let (user, nickname, at) = match event.kind.as_str() {
            USER_REGISTERED => {
                let Some(r) = event.decode_or_skip::<UserRegistered>() else { return Ok(()) };
                (r.user_id, r.nickname, r.registered_at)
            }
            USER_PROFILE_UPDATED => {
                let Some(p) = event.decode_or_skip::<UserProfileUpdated>() else { return Ok(()) };
                (p.user_id, p.nickname, p.updated_at)
            }
            _ => return Ok(()),
        };
        store::save_author(&self.db.pool, user, &nickname, at.timestamp_millis()).await?;
        Ok(())
    }
}

pub async fn start(ctx: &Context, config: &BoardConfig) -> anyhow::Result<Started> {
    let db = Database::open(&ctx.database, SERVICE, ctx.db_max_connections, &MIGRATOR).await?;
    ctx.bus.ensure_topics(&[topics::IDENTITY, topics::PROFILES]).await?;
    let authors = ctx.bus.spawn_consumer(
        GROUP,
        &[topics::IDENTITY, topics::PROFILES],
        AuthorFeed { db: db.clone() },
        ctx.stop.clone(),
    );
    let state = BoardState(Arc::new(BoardParts {
        db: db.clone(),
        counters: ctx.counters.clone(),
        keys: ctx.keys.clone(),
        clock: ctx.clock.clone(),
        posts: Limit { count: config.board_posts_per_10_min, window: Duration::from_secs(600) },
        writes: Limit { count: config.board_writes_per_min, window: Duration::from_secs(60) },
        // Likes, reports and blocks: five times the write limit, per minute.
        actions: Limit { count: config.board_writes_per_min.saturating_mul(5), window: Duration::from_secs(60) },
        hide_at: i64::try_from(config.board_hide_after_reports).unwrap_or(i64::MAX),
    }));
    // Not ready without its database and bus; the write limit's Redis fails open (see `http`).
    let readiness = vec![db.readiness(), ctx.bus.readiness()];
    Ok(Started { name: SERVICE, router: router(state), openapi: ApiDoc::openapi(), readiness, tasks: vec![authors] })
}
