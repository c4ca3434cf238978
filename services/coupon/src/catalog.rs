//! The steady-state coupon endpoints: the campaign catalog (upcoming / open / closed,
//! with today's remaining), your wallet, and redemption.

use std::sync::Arc;

use axum::Router;
use axum::extract::{FromRef, State};
use axum::routing::{get, post};
use campaign::{Campaign, Phase};
use chrono::{DateTime, NaiveDate, Utc};
use platform::ApiError;
use platform::auth::{AuthUser, JwtKeys};
use platform::clock::Clock;
use platform::db::Database;
use platform::http::{Json, Path, Query};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::model::Coupon;
use crate::store::{self, Redeemed};

#[derive(Clone)]
pub struct CatalogState {
    pub db: Database,
    pub keys: Arc<JwtKeys>,
    pub clock: Clock,
}

impl FromRef<CatalogState> for Arc<JwtKeys> {
    fn from_ref(state: &CatalogState) -> Self {
        state.keys.clone()
    }
}

pub fn router(state: CatalogState) -> Router {
    Router::new()
        .route("/api/coupons/campaigns", get(campaigns))
        .route("/api/coupons/me", get(my_coupons))
        .route("/api/coupons/{id}/redeem", post(redeem))
        .with_state(state)
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CampaignSummary {
    pub name: String,
    pub display_name: String,
    /// `scheduled` (not started), `waiting` (today, before opening), `open`, `closed`
    /// (for today) or `ended`.
    #[schema(example = "open")]
    pub phase: String,
    pub time_zone: String,
    pub start_date: NaiveDate,
    pub end_date: NaiveDate,
    /// The current window's opening if open, otherwise the next one.
    pub opens_at: Option<DateTime<Utc>>,
    pub closes_at: Option<DateTime<Utc>>,
    pub daily_quantity: u32,
    pub total_quantity: Option<u64>,
    /// Units left today as persisted (may trail the live issuer by a moment); `null`
    /// when the campaign does not run today.
    pub remaining_today: Option<i64>,
    pub per_user: u32,
    pub requires_mission: bool,
    pub coupon_title: String,
    pub coupon_benefit: String,
    pub validity_days: u32,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct CampaignFilter {
    /// Only campaigns in this phase.
    // The pattern is `campaign::API_PHASE_PATTERN`: utoipa takes only a literal; a test compares.
    #[param(pattern = "^(scheduled|waiting|open|closed|ended)$")]
    pub phase: Option<String>,
}

fn phase_name(p: Phase) -> &'static str {
    p.api_word()
}

#[utoipa::path(get, path = "/api/coupons/campaigns", tag = "coupons", params(CampaignFilter),
    responses((status = 200, description = "Campaigns by name.", body = Vec<CampaignSummary>)))]
pub async fn campaigns(
    State(state): State<CatalogState>,
    Query(filter): Query<CampaignFilter>,
) -> Result<Json<Vec<CampaignSummary>>, ApiError> {
    if let Some(p) = &filter.phase
        && Phase::from_api_word(p).is_none()
    {
        return Err(ApiError::bad_request(
            "invalid-query",
            format!("phase must be one of {}.", campaign::api_words().collect::<Vec<_>>().join(", ")),
        ));
    }
    let now = state.clock.now();
    let mut out = Vec::new();
    for stored in store::campaigns(&state.db.pool).await? {
        let name = stored.name.clone();
        let Some(c) = serde_json::from_str(&stored.spec).ok().and_then(|s| Campaign::new(&name, s).ok()) else {
            tracing::warn!(campaign = %name, "stored campaign no longer validates; skipped");
            continue;
        };
        let status = c.status_at(now);
        let phase = phase_name(status.phase);
        if filter.phase.as_deref().is_some_and(|p| p != phase) {
            continue;
        }
        let spec = c.spec();
        let runs_today = matches!(status.phase, Phase::Waiting | Phase::Open | Phase::Closed);
        let remaining_today = if runs_today {
            let issued = store::issued_on(&state.db.pool, &stored.instance(), status.day).await?;
            let mut left = i64::from(spec.quota.daily_quantity) - issued;
            if let Some(total) = spec.quota.total_quantity {
                left = left.min(total as i64 - store::issued_total(&state.db.pool, &stored.instance()).await?);
            }
            Some(left.max(0))
        } else {
            None
        };
        let (opens_at, closes_at) = match status.phase {
            Phase::Open => (Some(c.opening(status.day)), Some(c.closing(status.day))),
            Phase::Ended => (None, None),
            _ => {
                let next = c.next_opening_after(now);
                (next, next.map(|t| c.closing(c.day_of(t))))
            }
        };
        out.push(CampaignSummary {
            name: name.clone(),
            display_name: spec.display_name.clone(),
            phase: phase.to_owned(),
            time_zone: spec.schedule.time_zone.clone(),
            start_date: spec.schedule.start_date,
            end_date: spec.schedule.end_date,
            opens_at,
            closes_at,
            daily_quantity: spec.quota.daily_quantity,
            total_quantity: spec.quota.total_quantity,
            remaining_today,
            per_user: spec.quota.per_user,
            requires_mission: spec.eligibility.mission.needs_mission(),
            coupon_title: spec.coupon.title.clone(),
            coupon_benefit: spec.coupon.benefit.clone(),
            validity_days: spec.coupon.validity_days,
        });
    }
    Ok(Json(out))
}

#[utoipa::path(get, path = "/api/coupons/me", tag = "coupons", security(("bearer" = [])),
    responses((status = 200, description = "Your coupons, newest first (at most 500).", body = Vec<Coupon>)))]
pub async fn my_coupons(State(state): State<CatalogState>, user: AuthUser) -> Result<Json<Vec<Coupon>>, ApiError> {
    Ok(Json(store::coupons_of_user(&state.db.pool, user.user_id, state.clock.now()).await?))
}

#[utoipa::path(post, path = "/api/coupons/{id}/redeem", tag = "coupons", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The coupon id.")),
    responses(
        (status = 200, description = "Redeemed now.", body = Coupon),
        (status = 404, description = "No such coupon of yours.", body = platform::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "Already redeemed.", body = platform::error::Problem, content_type = "application/problem+json"),
        (status = 410, description = "Expired.", body = platform::error::Problem, content_type = "application/problem+json"),
    ))]
pub async fn redeem(
    State(state): State<CatalogState>,
    user: AuthUser,
    Path(id): Path<Uuid>,
) -> Result<Json<Coupon>, ApiError> {
    match store::redeem(&state.db.pool, user.user_id, id, state.clock.now()).await? {
        Redeemed::Now(c) => Ok(Json(c)),
        Redeemed::Already(c) => Err(ApiError::conflict("already-redeemed", "This coupon was already redeemed.")
            .with("redeemedAt", c.redeemed_at.map(|t| t.to_rfc3339()))),
        Redeemed::Expired(c) => {
            Err(ApiError::new(axum::http::StatusCode::GONE, "coupon-expired", "This coupon has expired.")
                .with("expiredAt", c.expires_at.to_rfc3339()))
        }
        Redeemed::NotFound => Err(ApiError::not_found("unknown-coupon", "You have no coupon with this id.")),
    }
}
