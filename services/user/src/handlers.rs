//! `GET /api/users/me` and `PATCH /api/users/me`.

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use platform::ApiError;
use platform::auth::AuthUser;
use platform::events::contracts::{USER_PROFILE_UPDATED, UserProfileUpdated, topics};
use platform::events::{Envelope, Outbox};
use platform::http::Json;

use crate::model::{self, Notifications, Preferences, Profile, ProfilePatch, Units};
use crate::{SERVICE, UserState, store};

#[utoipa::path(get, path = "/api/users/me", tag = "users", security(("bearer" = [])),
    responses((status = 200, description = "Your profile; `status: pending` right after signup, until the signup event has been handled.", body = Profile)))]
pub async fn me(State(state): State<UserState>, user: AuthUser) -> Result<Response, ApiError> {
    if let Some(body) = state.cache.get(&user.user_id) {
        return Ok(json_response(body));
    }
    let Some(profile) = store::get(&state.db.pool, user.user_id).await? else {
        return Ok(Json(Profile::pending(user.user_id)).into_response());
    };
    let body = Bytes::from(serde_json::to_vec(&profile).map_err(ApiError::internal)?);
    state.cache.put(user.user_id, body.clone());
    Ok(json_response(body))
}

fn json_response(body: Bytes) -> Response {
    ([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body).into_response()
}

#[utoipa::path(patch, path = "/api/users/me", tag = "users", security(("bearer" = [])), request_body = ProfilePatch,
    responses(
        (status = 200, description = "The updated profile.", body = Profile),
        (status = 409, description = "The profile is still being created; retry after `Retry-After`.", body = platform::error::Problem, content_type = "application/problem+json"),
    ))]
pub async fn update_me(
    State(state): State<UserState>,
    user: AuthUser,
    Json(patch): Json<ProfilePatch>,
) -> Result<Json<Profile>, ApiError> {
    // Validate everything before touching the database.
    let nickname = patch.nickname.as_deref().map(platform::validate::nickname).transpose()?;
    if let Some(Some(loc)) = &patch.home_location {
        model::check_location(loc)?;
    }
    let time_zone = patch.time_zone.as_deref().map(model::check_time_zone).transpose()?;
    let language =
        patch.preferences.as_ref().and_then(|p| p.language.as_deref()).map(model::check_language).transpose()?;

    let now = state.clock.now();
    let mut tx = state.db.pool.begin().await?;
    let Some(mut profile) = store::get_for_update(&mut tx, state.db.dialect, user.user_id).await? else {
        return Err(ApiError::conflict("profile-pending", "Your profile is still being created; retry in a moment.")
            .retry_after(1));
    };
    if let Some(nick) = nickname {
        profile.nickname = Some(nick);
    }
    if let Some(loc) = patch.home_location {
        profile.home_location = loc;
    }
    if let Some(tz) = time_zone {
        profile.time_zone = Some(tz);
    }
    if let Some(p) = patch.preferences {
        let mut prefs = profile.preferences.take().unwrap_or(Preferences {
            units: Units::Metric,
            language: store::DEFAULT_LANGUAGE.to_owned(),
            notifications: Notifications::default(),
        });
        if let Some(units) = p.units {
            prefs.units = units;
        }
        if let Some(lang) = language {
            prefs.language = lang;
        }
        if let Some(n) = p.notifications {
            prefs.notifications.missions = n.missions.unwrap_or(prefs.notifications.missions);
            prefs.notifications.coupons = n.coupons.unwrap_or(prefs.notifications.coupons);
            prefs.notifications.chat = n.chat.unwrap_or(prefs.notifications.chat);
        }
        profile.preferences = Some(prefs);
    }
    profile.updated_at = Some(now);
    store::save(&mut tx, &profile, now.timestamp_millis()).await?;
    let event = Envelope::new(
        USER_PROFILE_UPDATED,
        SERVICE,
        now,
        &UserProfileUpdated {
            user_id: user.user_id,
            nickname: profile.nickname.clone().unwrap_or_default(),
            home_lat: profile.home_location.map(|l| l.lat),
            home_lon: profile.home_location.map(|l| l.lon),
            time_zone: profile.time_zone.clone().unwrap_or_else(|| store::DEFAULT_TIME_ZONE.to_owned()),
            updated_at: now,
        },
    )
    .map_err(ApiError::internal)?;
    Outbox::enqueue(&mut tx, topics::PROFILES, &user.user_id.to_string(), &event).await?;
    tx.commit().await?;
    state.outbox.committed();
    match serde_json::to_vec(&profile) {
        Ok(body) => state.cache.put(user.user_id, Bytes::from(body)),
        Err(_) => state.cache.evict(&user.user_id),
    }
    Ok(Json(profile))
}
