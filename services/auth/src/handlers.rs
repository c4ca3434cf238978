//! The auth endpoints: signup, login, refresh, logout.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use platform::ApiError;
use platform::error::unique_as;
use platform::events::contracts::{USER_REGISTERED, UserRegistered, topics};
use platform::events::{Envelope, Outbox};
use platform::http::{ClientIp, Json};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{AuthState, SERVICE, password, store, tokens, validate};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SignupRequest {
    /// Normalised to lower case; one account per address.
    #[schema(format = Email, max_length = 254, example = "minji@example.com")]
    pub email: String,
    /// 10–128 characters, not a common password, not containing the email.
    #[schema(min_length = 10, max_length = 128, example = "rainy-day-umbrella")]
    pub password: String,
    #[schema(min_length = 1, max_length = 32, example = "minji")]
    pub nickname: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SignupResponse {
    pub user_id: Uuid,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LoginRequest {
    #[schema(max_length = 254, example = "minji@example.com")]
    pub email: String,
    #[schema(max_length = 1024, example = "rainy-day-umbrella")]
    pub password: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RefreshRequest {
    #[schema(max_length = 256)]
    pub refresh_token: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenResponse {
    /// JWT for `Authorization: Bearer`.
    pub access_token: String,
    /// Opaque; single use: each refresh returns a new one.
    pub refresh_token: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    #[schema(example = "Bearer")]
    pub token_type: String,
}

#[utoipa::path(post, path = "/api/auth/signup", tag = "auth", request_body = SignupRequest,
    responses(
        (status = 201, description = "Account created; the profile follows asynchronously.", body = SignupResponse),
        (status = 409, description = "An account with this email exists.", body = platform::error::Problem, content_type = "application/problem+json"),
    ))]
pub async fn signup(
    State(state): State<AuthState>,
    Json(req): Json<SignupRequest>,
) -> Result<(StatusCode, Json<SignupResponse>), ApiError> {
    let email = validate::normalize_email(&req.email)?;
    let nickname = validate::nickname(&req.nickname)?;
    password::check_policy(&req.password, &email)?;
    let taken = || ApiError::conflict("email-taken", "An account with this email already exists.");
    // Cheap early answer for the common case; the unique index decides under races.
    if store::email_taken(&state.db.pool, &email).await? {
        return Err(taken());
    }
    let hash = state.hasher.hash(req.password).await?;
    let now = state.clock.now();
    let user_id = Uuid::now_v7();
    let event = Envelope::new(
        USER_REGISTERED,
        SERVICE,
        now,
        &UserRegistered { user_id, email: email.clone(), nickname, registered_at: now },
    )
    .map_err(ApiError::internal)?;
    let mut tx = state.db.pool.begin().await?;
    store::insert_user(&mut tx, user_id, &email, &hash, now.timestamp_millis())
        .await
        .map_err(|e| unique_as(e, taken()))?;
    Outbox::enqueue(&mut tx, topics::IDENTITY, &user_id.to_string(), &event).await?;
    tx.commit().await?;
    state.outbox.committed();
    metrics::counter!("auth_signups_total").increment(1);
    Ok((StatusCode::CREATED, Json(SignupResponse { user_id })))
}

#[utoipa::path(post, path = "/api/auth/login", tag = "auth", request_body = LoginRequest,
    responses(
        (status = 200, description = "Logged in.", body = TokenResponse),
        (status = 401, description = "Wrong email or password.", body = platform::error::Problem, content_type = "application/problem+json"),
    ))]
pub async fn login(
    State(state): State<AuthState>,
    ip: ClientIp,
    Json(req): Json<LoginRequest>,
) -> Result<Json<TokenResponse>, ApiError> {
    let cfg = &state.config;
    let address_window = Duration::from_secs(cfg.login_address_window_seconds);
    if let Some(w) = state.limit_hit(&format!("auth:login:ip:{}", ip.key()), address_window).await
        && w.count > cfg.login_max_per_address
    {
        metrics::counter!("auth_login_limited_total", "by" => "address").increment(1);
        return Err(ApiError::too_many_requests(
            "too-many-login-attempts",
            "Too many login attempts from this address; wait before trying again.",
            w.resets_in.as_secs(),
        ));
    }
    let invalid = || ApiError::unauthorized("invalid-credentials", "The email or password is wrong.");
    // A malformed email cannot belong to an account; answer like any wrong credential.
    let Ok(email) = validate::normalize_email(&req.email) else {
        return Err(invalid());
    };
    if req.password.len() > 1024 {
        return Err(invalid());
    }
    let failures_key = format!("auth:login:fail:{email}");
    if let Some(w) = state.limit_peek(&failures_key).await
        && w.count >= cfg.login_max_failures
    {
        metrics::counter!("auth_login_limited_total", "by" => "account").increment(1);
        return Err(ApiError::too_many_requests(
            "account-locked",
            "Too many failed logins for this account; wait before trying again.",
            w.resets_in.as_secs(),
        ));
    }
    let user = store::user_by_email(&state.db.pool, &email).await?;
    let (user_id, stored) = match user {
        Some(u) => (Some(u.id), Some(u.password_hash)),
        None => (None, None),
    };
    let ok = state.hasher.verify(req.password, stored).await?;
    let Some(user_id) = user_id.filter(|_| ok) else {
        state.limit_hit(&failures_key, Duration::from_secs(cfg.login_failure_window_seconds)).await;
        metrics::counter!("auth_logins_total", "outcome" => "failed").increment(1);
        return Err(invalid());
    };
    state.limit_reset(&failures_key).await;
    let session_id = Uuid::now_v7();
    let mut tx = state.db.pool.begin().await?;
    let now = state.clock.now();
    store::insert_session(&mut tx, session_id, user_id, now.timestamp_millis()).await?;
    let refresh = issue_refresh(&state, &mut tx, session_id).await?;
    tx.commit().await?;
    metrics::counter!("auth_logins_total", "outcome" => "ok").increment(1);
    Ok(Json(state.token_response(user_id, session_id, refresh)?))
}

async fn issue_refresh(
    state: &AuthState,
    conn: &mut sqlx::AnyConnection,
    session_id: Uuid,
) -> Result<String, ApiError> {
    let token = tokens::new_refresh_token();
    let now = state.clock.now_millis();
    let expires = now + i64::try_from(state.config.refresh_ttl().as_millis()).unwrap_or(i64::MAX / 2);
    store::insert_refresh(conn, &tokens::hash(&token), session_id, now, expires).await?;
    Ok(token)
}

#[utoipa::path(post, path = "/api/auth/refresh", tag = "auth", request_body = RefreshRequest,
    responses(
        (status = 200, description = "A new access token and a new refresh token; the old refresh token is spent.", body = TokenResponse),
        (status = 401, description = "The refresh token is unknown, expired, revoked or was already used (which revokes its whole session).", body = platform::error::Problem, content_type = "application/problem+json"),
    ))]
pub async fn refresh(
    State(state): State<AuthState>,
    Json(req): Json<RefreshRequest>,
) -> Result<Json<TokenResponse>, ApiError> {
    let hash = tokens::hash(req.refresh_token.trim());
    let now = state.clock.now_millis();
    let mut tx = state.db.pool.begin().await?;
    let Some(row) = store::refresh_by_hash(&mut tx, &hash).await? else {
        return Err(ApiError::unauthorized("invalid-refresh-token", "The refresh token is not valid."));
    };
    if row.session_revoked {
        return Err(ApiError::unauthorized("session-revoked", "This session has ended; log in again."));
    }
    if row.expires_at <= now {
        return Err(ApiError::unauthorized("refresh-token-expired", "The refresh token has expired; log in again."));
    }
    if row.used || !store::mark_used(&mut tx, &hash, now).await? {
        // Someone presented a spent token: either it was stolen or the client raced
        // itself. Either way the whole session is no longer trustworthy.
        store::revoke_session(&mut tx, row.session_id, now, "refresh-token-reuse").await?;
        tx.commit().await?;
        metrics::counter!("auth_refresh_reuse_total").increment(1);
        tracing::warn!(user_id = %row.user_id, session_id = %row.session_id, "refresh token reuse: session revoked");
        return Err(ApiError::unauthorized(
            "refresh-token-reused",
            "This refresh token was already used; the session has been revoked. Log in again.",
        ));
    }
    let refresh = issue_refresh(&state, &mut tx, row.session_id).await?;
    tx.commit().await?;
    Ok(Json(state.token_response(row.user_id, row.session_id, refresh)?))
}

#[utoipa::path(post, path = "/api/auth/logout", tag = "auth", request_body = RefreshRequest,
    responses((status = 204, description = "The session is revoked (also when it already was or the token is unknown).")))]
pub async fn logout(State(state): State<AuthState>, Json(req): Json<RefreshRequest>) -> Result<StatusCode, ApiError> {
    let hash = tokens::hash(req.refresh_token.trim());
    let mut tx = state.db.pool.begin().await?;
    if let Some(row) = store::refresh_by_hash(&mut tx, &hash).await? {
        store::revoke_session(&mut tx, row.session_id, state.clock.now_millis(), "logout").await?;
    }
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
