//! The auth endpoints: signup, login, refresh, logout, logout everywhere, password change.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use platform::ApiError;
use platform::auth::AuthUser;
use platform::error::unique_as;
use platform::events::contracts::{SESSION_REVOKED, SessionRevoked, USER_REGISTERED, UserRegistered, topics};
use platform::events::{Envelope, Outbox};
use platform::http::{ClientIp, Json};
use platform::roles::Roles;
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
    /// 10–128 characters with at least 4 different ones, not a common password, not
    /// containing the email. (Rules beyond the length cannot be written in JSON Schema: a
    /// password that breaks them is answered 422 `weak-password`.)
    #[schema(min_length = 10, max_length = 128, example = "rainy-day-umbrella")]
    pub password: String,
    #[schema(
        min_length = 1,
        max_length = 32,
        pattern = r"^[^\x00-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F][^\x00-\x1F\x7F-\x9F]*$",
        example = "minji"
    )]
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

/// The longest refresh token a request may carry (the ones issued are far shorter).
const REFRESH_TOKEN_MAX: usize = 256;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RefreshRequest {
    #[schema(max_length = 256)]
    pub refresh_token: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ChangePasswordRequest {
    #[schema(min_length = 1, max_length = 1024, example = "rainy-day-umbrella")]
    pub current_password: String,
    /// 10–128 characters with at least 4 different ones, not a common password, not
    /// containing the email, not the current one (beyond the length: 422 `weak-password`).
    #[schema(min_length = 10, max_length = 128, example = "sunny-day-sunglasses")]
    pub new_password: String,
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
        (status = 409, description = "An account with this email exists (`email-taken`).", body = platform::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid email, nickname or a weak password (`invalid-email`, `invalid-nickname`, `weak-password`), or a body of the wrong shape (`invalid-body`).", body = platform::error::Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many signups and logins from this address (`too-many-login-attempts`); `Retry-After` says when to try again.", body = platform::error::Problem, content_type = "application/problem+json"),
    ))]
pub async fn signup(
    State(state): State<AuthState>,
    ip: ClientIp,
    Json(req): Json<SignupRequest>,
) -> Result<(StatusCode, Json<SignupResponse>), ApiError> {
    check_address(&state, &ip).await?;
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

/// Counts one signup or login attempt against the client address's budget (one budget
/// for both, so signups cannot be used to guess passwords or flood the hashers for free).
async fn check_address(state: &AuthState, ip: &ClientIp) -> Result<(), ApiError> {
    let cfg = &state.config;
    let address_window = Duration::from_secs(cfg.login_address_window_seconds);
    if let Some(w) = state.limit_hit(&format!("auth:ip:{}", ip.key()), address_window).await
        && w.count > cfg.login_max_per_address
    {
        metrics::counter!("auth_login_limited_total", "by" => "address").increment(1);
        return Err(ApiError::too_many_requests(
            "too-many-login-attempts",
            "Too many signup or login attempts from this address; wait before trying again.",
            w.resets_in.as_secs(),
        ));
    }
    Ok(())
}

/// Counts one password check of `email`'s account *before* it is made and refuses it
/// once the count passes the limit. Counting first (one atomic increment returning the
/// new count) is what makes the lockout hold under concurrency: N parallel guesses get N
/// distinct counts, so at most `login_max_failures` of them ever reach the hasher. A
/// successful check resets the count.
async fn count_password_check(state: &AuthState, email: &str) -> Result<String, ApiError> {
    let cfg = &state.config;
    let failures_key = format!("auth:login:fail:{email}");
    if let Some(w) = state.limit_hit(&failures_key, Duration::from_secs(cfg.login_failure_window_seconds)).await
        && w.count > cfg.login_max_failures
    {
        metrics::counter!("auth_login_limited_total", "by" => "account").increment(1);
        return Err(ApiError::too_many_requests(
            "account-locked",
            "Too many failed logins for this account; wait before trying again.",
            w.resets_in.as_secs(),
        ));
    }
    Ok(failures_key)
}

#[utoipa::path(post, path = "/api/auth/login", tag = "auth", request_body = LoginRequest,
    responses(
        (status = 200, description = "Logged in. Sent with `Cache-Control: no-store`.", body = TokenResponse),
        (status = 401, description = "Wrong email or password (`invalid-credentials`).", body = platform::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "A body of the wrong shape (`invalid-body`).", body = platform::error::Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many failed logins for this account (`account-locked`) or attempts from this address (`too-many-login-attempts`); `Retry-After` says when to try again.", body = platform::error::Problem, content_type = "application/problem+json"),
    ))]
pub async fn login(
    State(state): State<AuthState>,
    ip: ClientIp,
    Json(req): Json<LoginRequest>,
) -> Result<Json<TokenResponse>, ApiError> {
    open_session(&state, &ip, req).await.map(Json)
}

/// Checks the credentials and starts a session: its first access and refresh tokens.
pub(crate) async fn open_session(
    state: &AuthState,
    ip: &ClientIp,
    req: LoginRequest,
) -> Result<TokenResponse, ApiError> {
    check_address(state, ip).await?;
    let invalid = || ApiError::unauthorized("invalid-credentials", "The email or password is wrong.");
    // A malformed email cannot belong to an account; answer like any wrong credential.
    let Ok(email) = validate::normalize_email(&req.email) else {
        return Err(invalid());
    };
    if req.password.len() > 1024 {
        return Err(invalid());
    }
    let failures_key = count_password_check(state, &email).await?;
    let user = store::user_by_email(&state.db.pool, &email).await?;
    let (user_id, stored) = match user {
        Some(u) => (Some(u.id), Some(u.password_hash)),
        None => (None, None),
    };
    let ok = state.hasher.verify(req.password, stored).await?;
    let Some(user_id) = user_id.filter(|_| ok) else {
        metrics::counter!("auth_logins_total", "outcome" => "failed").increment(1);
        return Err(invalid());
    };
    state.limit_reset(&failures_key).await;
    let session_id = Uuid::now_v7();
    let mut tx = state.db.pool.begin().await?;
    let now = state.clock.now_millis();
    store::insert_session(&mut tx, session_id, user_id, now).await?;
    let refresh = issue_refresh(state, &mut tx, session_id, now).await?;
    let roles = store::roles_of(&mut tx, user_id).await?;
    tx.commit().await?;
    metrics::counter!("auth_logins_total", "outcome" => "ok").increment(1);
    state.token_response(user_id, session_id, Roles::from_names(&roles), refresh)
}

/// A new refresh token for `session_id`, which started at `session_started`; it never
/// outlives the session's absolute lifetime.
async fn issue_refresh(
    state: &AuthState,
    conn: &mut sqlx::AnyConnection,
    session_id: Uuid,
    session_started: i64,
) -> Result<String, ApiError> {
    let token = tokens::new_refresh_token();
    let now = state.clock.now_millis();
    let expires = (now + millis(state.config.refresh_ttl())).min(session_end(state, session_started));
    store::insert_refresh(conn, &tokens::hash(&token), session_id, now, expires).await?;
    Ok(token)
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 4)
}

fn session_end(state: &AuthState, session_started: i64) -> i64 {
    session_started.saturating_add(millis(state.config.session_max_age()))
}

/// Revokes `session_ids` inside `conn`'s transaction and enqueues a `SessionRevoked` for
/// each one that was still live, so every replica refuses its access tokens. Returns the
/// events, for [`deny_locally`] after the commit.
async fn revoke_sessions(
    state: &AuthState,
    conn: &mut sqlx::AnyConnection,
    user_id: Uuid,
    session_ids: &[Uuid],
    reason: &str,
) -> Result<Vec<SessionRevoked>, ApiError> {
    let now = state.clock.now();
    // Every access token of the session expires within its lifetime (plus the verifier's
    // leeway); after that the deny-list entry is useless.
    let expires_at = now
        + chrono::TimeDelta::from_std(state.config.access_ttl()).map_err(ApiError::internal)?
        + chrono::TimeDelta::seconds(30);
    let mut revoked = Vec::new();
    for session_id in session_ids {
        if !store::revoke_session(conn, *session_id, now.timestamp_millis(), reason).await? {
            continue;
        }
        let event = SessionRevoked { session_id: *session_id, user_id, revoked_at: now, expires_at };
        let envelope = Envelope::new(SESSION_REVOKED, SERVICE, now, &event).map_err(ApiError::internal)?;
        Outbox::enqueue(conn, topics::SESSIONS_REVOKED, &session_id.to_string(), &envelope).await?;
        revoked.push(event);
    }
    metrics::counter!("auth_sessions_revoked_total", "reason" => reason.to_owned()).increment(revoked.len() as u64);
    Ok(revoked)
}

/// This replica learns of its own revocations at once; the others through the events.
fn deny_locally(state: &AuthState, revoked: &[SessionRevoked]) {
    if !revoked.is_empty() {
        state.outbox.committed();
    }
    for event in revoked {
        state.keys.revoked().deny(event.session_id, event.expires_at, state.clock.now());
    }
}

#[utoipa::path(post, path = "/api/auth/refresh", tag = "auth", request_body = RefreshRequest,
    responses(
        (status = 200, description = "A new access token (with the account's current roles) and a new refresh token; the old refresh token is spent. Sent with `Cache-Control: no-store`.", body = TokenResponse),
        (status = 401, description = "The refresh token is unknown (`invalid-refresh-token`), expired (`refresh-token-expired`), its session ended (`session-revoked`) or reached its absolute lifetime (`session-expired`), or it was already used (`refresh-token-reused`, which revokes its whole session).", body = platform::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "A body of the wrong shape (`invalid-body`).", body = platform::error::Problem, content_type = "application/problem+json"),
    ))]
pub async fn refresh(
    State(state): State<AuthState>,
    Json(req): Json<RefreshRequest>,
) -> Result<Json<TokenResponse>, ApiError> {
    rotate(&state, &req.refresh_token).await.map(Json)
}

/// Spends `refresh_token` for new tokens of its session (a reused one revokes the session).
pub(crate) async fn rotate(state: &AuthState, refresh_token: &str) -> Result<TokenResponse, ApiError> {
    let hash = tokens::hash(refresh_token.trim());
    let now = state.clock.now_millis();
    let mut tx = state.db.pool.begin().await?;
    let Some(row) = store::refresh_by_hash(&mut tx, &hash).await? else {
        return Err(ApiError::unauthorized("invalid-refresh-token", "The refresh token is not valid."));
    };
    if row.session_revoked {
        return Err(ApiError::unauthorized("session-revoked", "This session has ended; log in again."));
    }
    if now >= session_end(state, row.session_started) {
        return Err(ApiError::unauthorized("session-expired", "This session reached its maximum age; log in again."));
    }
    if row.expires_at <= now {
        return Err(ApiError::unauthorized("refresh-token-expired", "The refresh token has expired; log in again."));
    }
    if row.used || !store::mark_used(&mut tx, &hash, now).await? {
        // Someone presented a spent token: either it was stolen or the client raced
        // itself. Either way the whole session is no longer trustworthy.
        let revoked = revoke_sessions(state, &mut tx, row.user_id, &[row.session_id], "refresh-token-reuse").await?;
        tx.commit().await?;
        deny_locally(state, &revoked);
        metrics::counter!("auth_refresh_reuse_total").increment(1);
        tracing::warn!(user_id = %row.user_id, session_id = %row.session_id, "refresh token reuse: session revoked");
        return Err(ApiError::unauthorized(
            "refresh-token-reused",
            "This refresh token was already used; the session has been revoked. Log in again.",
        ));
    }
    let refresh = issue_refresh(state, &mut tx, row.session_id, row.session_started).await?;
    // Roles are read again on every refresh: a grant or revocation takes effect with the
    // next access token.
    let roles = store::roles_of(&mut tx, row.user_id).await?;
    tx.commit().await?;
    state.token_response(row.user_id, row.session_id, Roles::from_names(&roles), refresh)
}

#[utoipa::path(post, path = "/api/auth/logout", tag = "auth", request_body = RefreshRequest,
    responses(
        (status = 204, description = "The session is revoked, and its access tokens are refused from now on (also when it already was or the token is unknown)."),
        (status = 422, description = "A body of the wrong shape (`invalid-body`).", body = platform::error::Problem, content_type = "application/problem+json"),
    ))]
pub async fn logout(State(state): State<AuthState>, Json(req): Json<RefreshRequest>) -> Result<StatusCode, ApiError> {
    // What the document says is accepted, and nothing else: no token we issue is longer.
    if req.refresh_token.chars().count() > REFRESH_TOKEN_MAX {
        return Err(ApiError::unprocessable(
            "invalid-body",
            format!("refreshToken is at most {REFRESH_TOKEN_MAX} characters."),
        )
        .with("field", "refreshToken"));
    }
    end_session(&state, &req.refresh_token).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Revokes the session `refresh_token` belongs to, if any.
pub(crate) async fn end_session(state: &AuthState, refresh_token: &str) -> Result<(), ApiError> {
    let hash = tokens::hash(refresh_token.trim());
    let mut tx = state.db.pool.begin().await?;
    let mut revoked = Vec::new();
    if let Some(row) = store::refresh_by_hash(&mut tx, &hash).await? {
        revoked = revoke_sessions(state, &mut tx, row.user_id, &[row.session_id], "logout").await?;
    }
    tx.commit().await?;
    deny_locally(state, &revoked);
    Ok(())
}

#[utoipa::path(post, path = "/api/auth/logout-all", tag = "auth", security(("bearer" = [])),
    responses(
        (status = 204, description = "Every session of the account is revoked, this one included; their access tokens are refused from now on."),
        (status = 401, description = "No valid access token (`missing-token`, `invalid-token`, `token-expired`, `session-revoked`).", body = platform::error::Problem, content_type = "application/problem+json"),
    ))]
pub async fn logout_all(State(state): State<AuthState>, user: AuthUser) -> Result<StatusCode, ApiError> {
    let mut tx = state.db.pool.begin().await?;
    let sessions = store::live_sessions(&mut tx, user.user_id).await?;
    let revoked = revoke_sessions(&state, &mut tx, user.user_id, &sessions, "logout-all").await?;
    tx.commit().await?;
    deny_locally(&state, &revoked);
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/auth/password", tag = "auth", request_body = ChangePasswordRequest, security(("bearer" = [])),
    responses(
        (status = 204, description = "The password is changed; every other session of the account is revoked, this one stays."),
        (status = 401, description = "No valid access token (`missing-token`, `invalid-token`, `token-expired`, `session-revoked`).", body = platform::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "The current password is wrong (`wrong-password`); it counts towards the account's lockout.", body = platform::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "The new password is too weak or unchanged (`weak-password`), or a body of the wrong shape (`invalid-body`).", body = platform::error::Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many failed password checks for this account (`account-locked`); `Retry-After` says when to try again.", body = platform::error::Problem, content_type = "application/problem+json"),
    ))]
pub async fn change_password(
    State(state): State<AuthState>,
    user: AuthUser,
    Json(req): Json<ChangePasswordRequest>,
) -> Result<StatusCode, ApiError> {
    let gone = || ApiError::unauthorized("invalid-token", "The account of this access token no longer exists.");
    let account = store::user_by_id(&state.db.pool, user.user_id).await?.ok_or_else(gone)?;
    password::check_policy(&req.new_password, &account.email)?;
    if req.new_password == req.current_password {
        return Err(ApiError::unprocessable("weak-password", "The new password must differ from the current one.")
            .with("field", "newPassword"));
    }
    let wrong =
        || ApiError::forbidden("wrong-password", "The current password is wrong.").with("field", "currentPassword");
    if req.current_password.len() > 1024 {
        return Err(wrong());
    }
    // The same lockout as logins: a stolen access token must not be a password oracle.
    let failures_key = count_password_check(&state, &account.email).await?;
    if !state.hasher.verify(req.current_password, Some(account.password_hash)).await? {
        return Err(wrong());
    }
    state.limit_reset(&failures_key).await;
    let hash = state.hasher.hash(req.new_password).await?;
    let mut tx = state.db.pool.begin().await?;
    store::set_password(&mut tx, user.user_id, &hash).await?;
    let others: Vec<Uuid> =
        store::live_sessions(&mut tx, user.user_id).await?.into_iter().filter(|s| *s != user.session_id).collect();
    let revoked = revoke_sessions(&state, &mut tx, user.user_id, &others, "password-change").await?;
    tx.commit().await?;
    deny_locally(&state, &revoked);
    metrics::counter!("auth_password_changes_total").increment(1);
    Ok(StatusCode::NO_CONTENT)
}
