//! Development-only helpers, mounted by `ww dev` and never by `ww serve`: until the
//! mission services exist, a way to record a verified mission for yourself, published
//! as the same `MissionVerified` event the mission services will publish.

use std::sync::Arc;

use axum::Router;
use axum::extract::{FromRef, State};
use axum::http::StatusCode;
use axum::routing::post;
use chrono::{DateTime, Utc};
use platform::ApiError;
use platform::auth::{AuthUser, JwtKeys};
use platform::clock::Clock;
use platform::events::contracts::{MISSION_VERIFIED, MissionVerified, topics};
use platform::events::{Envelope, EventBus};
use platform::http::Json;
use serde::Serialize;
use utoipa::{OpenApi, ToSchema};

#[derive(Clone)]
pub struct DevState {
    pub bus: EventBus,
    pub keys: Arc<JwtKeys>,
    pub clock: Clock,
}

impl FromRef<DevState> for Arc<JwtKeys> {
    fn from_ref(state: &DevState) -> Self {
        state.keys.clone()
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VerifiedMission {
    pub mission_id: String,
    pub verified_at: DateTime<Utc>,
}

#[derive(OpenApi)]
#[openapi(paths(verify_mission), tags((name = "dev-only", description = "Only in `ww dev`; absent from `ww serve`.")))]
pub struct DevDoc;

pub fn router(state: DevState) -> Router {
    Router::new().route("/api/dev/missions/verify", post(verify_mission)).with_state(state)
}

/// DEV ONLY: records that you verified a mission now (publishes `MissionVerified`).
#[utoipa::path(post, path = "/api/dev/missions/verify", tag = "dev-only", security(("bearer" = [])),
    responses((status = 202, description = "The MissionVerified event was published; eligibility follows within moments.", body = VerifiedMission)))]
pub async fn verify_mission(
    State(state): State<DevState>,
    user: AuthUser,
) -> Result<(StatusCode, Json<VerifiedMission>), ApiError> {
    let verified = MissionVerified {
        user_id: user.user_id,
        mission_id: format!("dev-{}", uuid::Uuid::now_v7()),
        source: platform::events::contracts::MissionSource::Daily,
        verified_at: state.clock.now(),
    };
    let event =
        Envelope::new(MISSION_VERIFIED, "dev-tools", verified.verified_at, &verified).map_err(ApiError::internal)?;
    state
        .bus
        .publish(topics::MISSIONS_VERIFIED, &user.user_id.to_string(), &event)
        .await
        .map_err(ApiError::internal)?;
    Ok((
        StatusCode::ACCEPTED,
        Json(VerifiedMission { mission_id: verified.mission_id, verified_at: verified.verified_at }),
    ))
}
