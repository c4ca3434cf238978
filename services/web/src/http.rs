//! The web role's endpoints: the pages and their files, the dashboard's live stream, and the
//! campaign check and preview behind the dashboard's editor.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{FromRef, State};
use axum::http::{HeaderMap, HeaderValue, Uri, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use platform::ApiError;
use platform::auth::{AuthUser, JwtKeys};
use platform::clock::Clock;
use platform::http::Json;
use platform::roles::Role;
use tokio::sync::watch;

use crate::live::Live;
use crate::preview::{self, CheckRequest, CheckResponse};
use crate::{assets, live};

/// A stream ends after about this long (each one up to a minute earlier, so that streams opened
/// together do not all reconnect together); the page reconnects with its current access token,
/// so an expired or revoked session stops receiving within this bound.
pub const STREAM_MAX: Duration = Duration::from_secs(300);
/// Streams one process serves at once; beyond, 429 (another replica has room).
pub const STREAMS_MAX: u64 = 5_000;
/// Streams one login session may hold at once (a few tabs).
pub const STREAMS_PER_SESSION: u32 = 8;

#[derive(Clone)]
pub struct WebState {
    pub live: Arc<Live>,
    pub keys: Arc<JwtKeys>,
    pub clock: Clock,
    pub stop: watch::Receiver<bool>,
}

impl FromRef<WebState> for Arc<JwtKeys> {
    fn from_ref(state: &WebState) -> Self {
        state.keys.clone()
    }
}

/// `GET /`, `/dashboard` and `/assets/...`.
pub async fn page(uri: Uri, headers: HeaderMap) -> Result<Response, ApiError> {
    let asset =
        assets::find(uri.path()).ok_or_else(|| ApiError::not_found("not-found", "No resource at this path."))?;
    Ok(assets::serve(asset, &headers))
}

/// One open stream, counted (in all and per session) for as long as it lives.
struct Viewer {
    live: Arc<Live>,
    session: uuid::Uuid,
}

impl Viewer {
    fn new(live: Arc<Live>, session: uuid::Uuid) -> Result<Self, ApiError> {
        let busy = |detail: &str| {
            metrics::counter!("web_live_streams_refused_total").increment(1);
            ApiError::too_many_requests("too-many-streams", detail.to_owned(), 5)
        };
        if live.viewers.fetch_add(1, Ordering::Relaxed) >= STREAMS_MAX {
            live.viewers.fetch_sub(1, Ordering::Relaxed);
            return Err(busy("This server streams to as many viewers as it can; retry shortly."));
        }
        {
            let mut sessions = live.sessions.lock().unwrap_or_else(|e| e.into_inner());
            let open = sessions.entry(session).or_default();
            if *open >= STREAMS_PER_SESSION {
                drop(sessions);
                live.viewers.fetch_sub(1, Ordering::Relaxed);
                return Err(busy(&format!("At most {STREAMS_PER_SESSION} live streams per login session; close one.")));
            }
            *open += 1;
        }
        metrics::gauge!("web_dashboard_viewers").increment(1.0);
        Ok(Self { live, session })
    }
}

impl Drop for Viewer {
    fn drop(&mut self) {
        self.live.viewers.fetch_sub(1, Ordering::Relaxed);
        let mut sessions = self.live.sessions.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(open) = sessions.get_mut(&self.session) {
            *open -= 1;
            if *open == 0 {
                sessions.remove(&self.session);
            }
        }
        metrics::gauge!("web_dashboard_viewers").decrement(1.0);
    }
}

#[utoipa::path(get, path = "/api/live/campaigns", tag = "dashboard", security(("bearer" = [])),
    responses(
        (status = 200, description = "Server-Sent Events: a `counts` event at once and then every second, its data a `LiveFrame` (JSON): each campaign's counts as its issuers last reported them, and its issuance rate. Only what the catalog shows everyone (what is left today), live; the app's countdown and the dashboard both read it. The stream ends after 5 minutes, or when the session ends; reconnect with a current token.", body = live::LiveFrame, content_type = "text/event-stream"),
        (status = 401, description = "No valid access token.", body = platform::error::Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many streams open: on this server, or more than 8 for this login session (`too-many-streams`, with `Retry-After`).", body = platform::error::Problem, content_type = "application/problem+json"),
    ))]
pub async fn stream(State(state): State<WebState>, user: AuthUser) -> Result<Response, ApiError> {
    let viewer = Viewer::new(state.live.clone(), user.session_id)?;
    let frames = state.live.subscribe();
    let jitter = Duration::from_millis(u64::from(user.session_id.as_u128() as u16) % 60_000);
    let deadline = tokio::time::Instant::now() + STREAM_MAX - jitter;
    let keys = state.keys.clone();
    let session = user.session_id;
    let body = futures::stream::unfold((frames, state.stop.clone(), viewer), move |(mut frames, mut stop, viewer)| {
        let keys = keys.clone();
        async move {
            tokio::select! {
                changed = frames.changed() => changed.ok()?,
                _ = stop.wait_for(|s| *s) => return None,
                () = tokio::time::sleep_until(deadline) => return None,
            }
            if keys.revoked().is_revoked(&session) {
                return None;
            }
            let frame: Bytes = frames.borrow_and_update().clone();
            Some((Ok::<_, Infallible>(frame), (frames, stop, viewer)))
        }
    });
    let mut response = Body::from_stream(body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // Proxies (nginx ingress) must pass each event on at once.
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}

#[utoipa::path(post, path = "/api/dashboard/campaigns/check", tag = "dashboard", security(("bearer" = [])),
    request_body = CheckRequest,
    responses(
        (status = 200, description = "Each CouponCampaign of the YAML: its problems (what the API server and the operator would refuse), and when it has none, what it will do on each coming day — the checks and preview of `ww campaign check|preview`.", body = CheckResponse),
        (status = 401, description = "No valid access token.", body = platform::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token lacks the `marketing` role (`forbidden-role`).", body = platform::error::Problem, content_type = "application/problem+json"),
        (status = 413, description = "A body over the size limit.", body = platform::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Not YAML (`invalid-yaml`, with `line` and `column`), no CouponCampaign in it (`no-campaign`), or a field out of range (`invalid-body`).", body = platform::error::Problem, content_type = "application/problem+json"),
    ))]
pub async fn check(
    State(state): State<WebState>,
    user: AuthUser,
    Json(request): Json<CheckRequest>,
) -> Result<Json<CheckResponse>, ApiError> {
    user.require(Role::Marketing)?;
    preview::check(&request, state.clock.now()).map(Json)
}
