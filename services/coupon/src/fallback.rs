//! The steady-state coupon service answering for a campaign while none of its issuers runs
//! (between openings with `idle: 0`, suspended, before pre-warm completes, after the last day).
//! The platform's Ingress sends `/api/campaigns/` here; a campaign's own route, which the
//! operator creates only while its issuers serve, is longer and wins.
//!
//! The answers are the issuer's, from the definition this service already holds (the
//! `CampaignDefined` events): a holder gets 409 with their coupon, at any time; otherwise 425
//! with the next opening, 410 once the campaign has ended, and 503 when the window is open but
//! the request reached no issuer (it will, in a moment).

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::post;
use campaign::{Campaign, Phase};
use platform::ApiError;
use platform::auth::AuthUser;

use crate::catalog::CatalogState;
use crate::issuer::IssueError;
use crate::store;

pub fn router(state: CatalogState) -> Router {
    Router::new().route("/api/campaigns/{campaign}/issue", post(issue)).with_state(state)
}

/// Seconds a client waits before asking again when the window is open and no issuer answered.
const RETRY_OPEN_SECONDS: u64 = 2;

#[utoipa::path(post, path = "/api/campaigns/{campaign}/issue", tag = "coupons", security(("bearer" = [])),
    params(("campaign" = String, Path, description = "The campaign's name.")),
    responses(
        (status = 404, description = "No such campaign.", body = platform::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "Already issued; the problem's `coupon` member is the coupon you have.", body = platform::error::Problem, content_type = "application/problem+json"),
        (status = 410, description = "The campaign ended.", body = platform::error::Problem, content_type = "application/problem+json"),
        (status = 425, description = "Not open; `Retry-After` and `opensAt` say when it opens.", body = platform::error::Problem, content_type = "application/problem+json"),
        (status = 503, description = "`issuer-starting`: the window is open and the issuers are coming up; retry after `Retry-After`.", body = platform::error::Problem, content_type = "application/problem+json"),
    ))]
pub async fn issue(
    State(state): State<CatalogState>,
    user: AuthUser,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    let now = state.clock.now();
    let campaign = store::campaigns(&state.db.pool)
        .await?
        .into_iter()
        .find(|(n, _)| *n == name)
        .and_then(|(n, spec)| serde_json::from_str(&spec).ok().and_then(|s| Campaign::new(&n, s).ok()))
        .ok_or_else(|| ApiError::not_found("unknown-campaign", format!("There is no campaign `{name}`.")))?;
    // A holder gets their coupon back whenever they ask, issuer or not.
    let held: Vec<_> = store::coupons_of_user(&state.db.pool, user.user_id, now)
        .await?
        .into_iter()
        .filter(|c| c.campaign == name)
        .collect();
    if let Some(latest) = held.first().filter(|_| held.len() >= campaign.spec().quota.per_user as usize) {
        return Err(ApiError::conflict("already-issued", "You already have this campaign's coupon.")
            .with("coupon", serde_json::to_value(latest).map_err(ApiError::internal)?));
    }
    let status = campaign.status_at(now);
    Err(match status.phase {
        Phase::Open if !campaign.spec().suspend => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "issuer-starting",
            "The campaign is open and its issuers are starting; ask again in a moment.",
        )
        .retry_after(RETRY_OPEN_SECONDS),
        Phase::Ended => IssueError::Ended.into_api(),
        _ if campaign.spec().suspend => IssueError::NotOpen { opens_at: None, now }.into_api(),
        _ => IssueError::NotOpen { opens_at: campaign.next_opening_after(now), now }.into_api(),
    })
}
