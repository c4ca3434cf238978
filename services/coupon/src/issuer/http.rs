//! The issuer's HTTP surface: the issue endpoint and the live counters.

use std::sync::Arc;

use axum::Router;
use axum::extract::{FromRef, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use campaign::Phase;
use chrono::{DateTime, NaiveDate, Utc};
use platform::ApiError;
use platform::auth::{AuthUser, JwtKeys};
use platform::http::{Json, Path};
use serde::Serialize;
use utoipa::ToSchema;

use super::{IssueError, Issuer, Issuers, Outcome};
use crate::model::Coupon;

#[derive(Clone)]
pub struct IssuerState {
    pub issuers: Issuers,
    pub keys: Arc<JwtKeys>,
}

impl FromRef<IssuerState> for Arc<JwtKeys> {
    fn from_ref(state: &IssuerState) -> Self {
        state.keys.clone()
    }
}

pub fn router(state: IssuerState) -> Router {
    Router::new()
        .route("/api/campaigns/{campaign}/issue", post(issue))
        .route("/api/campaigns/{campaign}/counters", get(counters))
        .with_state(state)
}

fn find(state: &IssuerState, name: &str) -> Result<Arc<Issuer>, ApiError> {
    state.issuers.get(name).cloned().ok_or_else(|| {
        ApiError::not_found("unknown-campaign", format!("No campaign named `{}` is issued here.", truncate(name)))
    })
}

pub(crate) fn truncate(s: &str) -> String {
    s.chars().take(64).collect()
}

/// The optional `Idempotency-Key`: retries with the same key get the same coupon.
pub(crate) fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(v) = headers.get("idempotency-key") else { return Ok(None) };
    // Exactly what the document says (`^[!-~]{1,64}$`): no trimming, no spaces.
    let key = v.to_str().ok().filter(|k| !k.is_empty() && k.len() <= 64 && k.chars().all(|c| c.is_ascii_graphic()));
    key.map(|k| Some(k.to_owned())).ok_or_else(|| {
        ApiError::bad_request("invalid-idempotency-key", "Idempotency-Key must be 1 to 64 visible ASCII characters.")
    })
}

#[utoipa::path(post, path = "/api/campaigns/{campaign}/issue", tag = "coupon-issuer", security(("bearer" = [])),
    params(
        ("campaign" = String, Path, description = "The campaign's name.", max_length = 63, example = "daily-demo"),
        ("Idempotency-Key" = Option<String>, Header, description = "Retries with the same key return the same coupon (needed when a campaign allows several per person). 1 to 64 visible ASCII characters.", min_length = 1, max_length = 64, pattern = "^[!-~]{1,64}$"),
    ),
    responses(
        (status = 201, description = "Issued: the coupon is durable.", body = Coupon),
        (status = 403, description = "Not eligible: no mission verified today.", body = platform::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such campaign here.", body = platform::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "Already issued; the problem's `coupon` member is the coupon you have.", body = platform::error::Problem, content_type = "application/problem+json"),
        (status = 410, description = "Sold out for today (`nextOpening` says when the next opening is, if any) or the campaign ended.", body = platform::error::Problem, content_type = "application/problem+json"),
        (status = 425, description = "Not open yet, or closed for today; `Retry-After` and `opensAt` say when it opens.", body = platform::error::Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many requests for this campaign at once; retry after `Retry-After`.", body = platform::error::Problem, content_type = "application/problem+json"),
        (status = 503, description = "`rebuilding`, `backend-unavailable`, `issue-in-progress`, `issue-failed` (nothing taken) or `issue-pending` (your coupon is reserved: a retry returns it).", body = platform::error::Problem, content_type = "application/problem+json"),
    ))]
pub async fn issue(
    State(state): State<IssuerState>,
    Path(name): Path<String>,
    user: AuthUser,
    headers: HeaderMap,
) -> Result<(StatusCode, Json<Coupon>), ApiError> {
    let issuer = find(&state, &name)?;
    let key = idempotency_key(&headers)?;
    match issuer.issue(user.user_id, key.as_deref()).await.map_err(IssueError::into_api)? {
        Outcome::Issued(coupon) => Ok((StatusCode::CREATED, Json(coupon))),
        Outcome::AlreadyIssued(coupon) => {
            Err(ApiError::conflict("already-issued", "You already have this campaign's coupon.")
                .with("coupon", serde_json::to_value(&coupon).map_err(ApiError::internal)?))
        }
    }
}

/// Live counters of a campaign, for the operator and dashboards.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CampaignCounters {
    pub campaign: String,
    #[schema(value_type = String, example = "open")]
    pub phase: Phase,
    /// The campaign-local date now.
    pub day: NaiveDate,
    pub next_transition: Option<DateTime<Utc>>,
    pub daily_quantity: u32,
    pub total_quantity: Option<u64>,
    pub issued_today: i64,
    /// `null` until today's stock is seeded by the first request after opening.
    pub remaining_today: Option<i64>,
    pub issued_total: i64,
    /// The issuer's state is complete and it answers (false while rebuilding).
    pub ready: bool,
}

#[utoipa::path(get, path = "/api/campaigns/{campaign}/counters", tag = "coupon-issuer",
    params(("campaign" = String, Path, description = "The campaign's name.", max_length = 63, example = "daily-demo")),
    responses(
        (status = 200, description = "Live counters.", body = CampaignCounters),
        (status = 404, description = "No such campaign here.", body = platform::error::Problem, content_type = "application/problem+json"),
    ))]
pub async fn counters(
    State(state): State<IssuerState>,
    Path(name): Path<String>,
) -> Result<Json<CampaignCounters>, ApiError> {
    let issuer = find(&state, &name)?;
    let status = issuer.rules().status_at(issuer.engine.now());
    let c = issuer.engine.counters(status.day).await.map_err(|e| {
        tracing::warn!(error = %e, "counters unavailable");
        ApiError::unavailable("counters-unavailable", "The live counters cannot be read right now.", 1)
    })?;
    let rules = issuer.rules();
    let quota = &rules.spec().quota;
    Ok(Json(CampaignCounters {
        campaign: name,
        phase: status.phase,
        day: status.day,
        next_transition: status.next_transition,
        daily_quantity: quota.daily_quantity,
        total_quantity: quota.total_quantity,
        issued_today: c.issued_today,
        remaining_today: c.remaining_today,
        issued_total: c.issued_total,
        ready: issuer.is_ready(),
    }))
}
