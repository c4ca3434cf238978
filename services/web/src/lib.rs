//! The web front end `ww` serves (role `web`): the app at `/` and the marketing dashboard at
//! `/dashboard` as static files embedded in the binary ([`assets`]), the dashboard's live counts
//! ([`live`]) and its campaign check and preview ([`preview`]). The pages call the same JSON API
//! as any client; see `docs/decisions/0016-web-app.md` for the stack and the token scheme.

pub mod assets;
pub mod http;
pub mod live;
pub mod preview;

use axum::Router;
use axum::routing::{get, post};
use platform::events::contracts::topics;
use platform::service::{Context, Started};
use utoipa::OpenApi;

pub const SERVICE: &str = "web";

/// How many recent counts per partition a starting process reads, so a dashboard opened right
/// after a restart shows every campaign that reported lately.
const COUNTS_BACKLOG: i64 = 500;

#[derive(OpenApi)]
#[openapi(
    paths(http::stream, http::check),
    tags((name = "dashboard", description = "Live campaign counts for the app and the dashboard; the dashboard's campaign editor (role `marketing`)"))
)]
struct ApiDoc;

pub fn router(state: http::WebState) -> Router {
    let mut pages = Router::new();
    for asset in assets::all() {
        pages = pages.route(asset.path, get(http::page));
    }
    pages.merge(
        Router::new()
            .route("/api/live/campaigns", get(http::stream))
            .route("/api/dashboard/campaigns/check", post(http::check))
            .with_state(state),
    )
}

/// Follows the counts topic (one subscription for the whole process) and serves the pages.
pub async fn start(ctx: &Context) -> anyhow::Result<Started> {
    ctx.bus.ensure_topics(&[topics::CAMPAIGN_COUNTS]).await?;
    let live = live::Live::new(ctx.clock.clone());
    let (feed, _caught_up) = ctx.bus.spawn_tail(
        "web.dashboard",
        &[topics::CAMPAIGN_COUNTS],
        COUNTS_BACKLOG,
        live::CountsFeed(live.clone()),
        ctx.stop.clone(),
    );
    let ticker = live.spawn_ticker(ctx.stop.clone());
    let state = http::WebState { live, keys: ctx.keys.clone(), clock: ctx.clock.clone(), stop: ctx.stop.clone() };
    Ok(Started {
        name: SERVICE,
        router: router(state),
        openapi: ApiDoc::openapi(),
        readiness: vec![ctx.bus.readiness()],
        tasks: vec![feed, ticker],
    })
}
