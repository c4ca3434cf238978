//! The steady-state coupon service answering for a campaign while none of its issuers runs
//! (between openings with `idle: 0`, suspended, before pre-warm completes, after the last day).
//! The platform's Ingress sends `/api/campaigns/` here; a campaign's own route, which the
//! operator creates only while its issuers serve, is longer and wins.
//!
//! The answers are the issuer's, from the definition this service holds (the `CampaignDefined`
//! events): a holder gets 409 with their coupon at any time (the one their `Idempotency-Key`
//! named, when it names one); otherwise 425 with the next opening, 410 once the campaign has
//! ended, and 503 when the window is open but the request reached no issuer (it will, in a
//! moment).

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use campaign::{Campaign, Phase};
use platform::ApiError;
use platform::auth::AuthUser;
use platform::http::Path;

use crate::catalog::CatalogState;
use crate::issuer::IssueError;
use crate::issuer::http::{idempotency_key, truncate};
use crate::store;

pub fn router(state: CatalogState) -> Router {
    Router::new().route("/api/campaigns/{campaign}/issue", post(issue)).with_state(state)
}

/// Seconds a client waits before asking again when the window is open and no issuer answered.
const RETRY_OPEN_SECONDS: u64 = 2;

#[utoipa::path(post, path = "/api/campaigns/{campaign}/issue", tag = "coupon-issuer", security(("bearer" = [])),
    params(
        ("campaign" = String, Path, description = "The campaign's name.", max_length = 63, example = "daily-demo"),
        ("Idempotency-Key" = Option<String>, Header, description = "Retries with the same key return the same coupon. 1 to 64 visible ASCII characters.", min_length = 1, max_length = 64, pattern = "^[!-~]{1,64}$"),
    ),
    responses(
        (status = 404, description = "No such campaign.", body = platform::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "Already issued; the problem's `coupon` member is the coupon you have.", body = platform::error::Problem, content_type = "application/problem+json"),
        (status = 410, description = "The campaign ended.", body = platform::error::Problem, content_type = "application/problem+json"),
        (status = 425, description = "Not open; `Retry-After` and `opensAt` say when it opens.", body = platform::error::Problem, content_type = "application/problem+json"),
        (status = 503, description = "`issuer-starting`: the window is open and the issuers are coming up; retry after `Retry-After`.", body = platform::error::Problem, content_type = "application/problem+json"),
    ))]
pub async fn issue(
    State(state): State<CatalogState>,
    Path(name): Path<String>,
    user: AuthUser,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let key = idempotency_key(&headers)?;
    let now = state.clock.now();
    let unknown = || ApiError::not_found("unknown-campaign", format!("There is no campaign `{}`.", truncate(&name)));
    let stored = store::campaign(&state.db.pool, &name).await?.ok_or_else(unknown)?;
    let spec = serde_json::from_str(&stored.spec).map_err(ApiError::internal)?;
    let campaign = Campaign::new(&name, spec)
        .map_err(|e| ApiError::internal(anyhow::anyhow!("stored campaign `{name}` no longer validates: {e}")))?;
    // A holder gets their coupon back whenever they ask, issuer or not: the one their key
    // named, or, once they hold all they may, the latest.
    let held = store::coupons_of_user_in_campaign(&state.db.pool, &stored.instance(), user.user_id, now).await?;
    let keyed = key.as_deref().and_then(|k| held.iter().find(|(_, stored)| stored.as_deref() == Some(k)));
    let full = held.first().filter(|_| held.len() >= campaign.spec().quota.per_user as usize);
    if let Some((coupon, _)) = keyed.or(full) {
        return Err(ApiError::conflict("already-issued", "You already have this campaign's coupon.")
            .with("coupon", serde_json::to_value(coupon).map_err(ApiError::internal)?));
    }
    let status = campaign.status_at(now);
    Err(match status.phase {
        Phase::Ended => IssueError::Ended.into_api(),
        _ if campaign.spec().suspend => IssueError::NotOpen { opens_at: None, now }.into_api(),
        Phase::Open => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "issuer-starting",
            "The campaign is open and its issuers are starting; ask again in a moment.",
        )
        .retry_after(RETRY_OPEN_SECONDS),
        _ => IssueError::NotOpen { opens_at: campaign.next_opening_after(now), now }.into_api(),
    })
}
