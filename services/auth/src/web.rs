//! Sessions for the browser app (`/api/auth/web/...`). The JSON API hands both tokens to the
//! client; a page must not hold a long-lived secret where any script could read it. Here the
//! refresh token lives in a cookie the page's JavaScript cannot read (`HttpOnly`, `Secure`,
//! `SameSite=Strict`), and the access token only in the page's memory: a reload gets a new one
//! from `refresh`. Both cookies carry the `__Host-` prefix (host-only, `Path=/`): a sibling
//! subdomain cannot plant its own session in this browser (cookie tossing); only the session
//! endpoints read them.
//!
//! Cross-site request forgery: every endpoint that reads the refresh cookie also requires the
//! `X-CSRF-Token` header to equal the `__Host-ww-csrf` cookie (double submit). Another site
//! can make the browser send cookies but can neither read ours nor set that header without a
//! CORS preflight we never answer; `SameSite=Strict` and the `Sec-Fetch-Site` check are two
//! more fences. Login takes only a JSON body, which a cross-site form cannot send.
//! See `docs/decisions/0016-web-app.md`.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use platform::ApiError;
use platform::http::{ClientIp, Json};
use serde::Serialize;
use utoipa::ToSchema;

use crate::AuthState;
use crate::handlers::{self, LoginRequest, TokenResponse};

/// The refresh token. `__Host-`: only over HTTPS (or loopback), only from this host, `Path=/`.
pub const REFRESH_COOKIE: &str = "__Host-ww-refresh";
/// The CSRF token, readable by the page. `__Host-`: Secure, `Path=/`, no `Domain`, so a
/// sibling subdomain cannot plant one.
pub const CSRF_COOKIE: &str = "__Host-ww-csrf";
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The tokens the page keeps: the access token only (the refresh token went into a cookie).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebTokenResponse {
    /// JWT for `Authorization: Bearer`; keep it in memory only.
    pub access_token: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    #[schema(example = "Bearer")]
    pub token_type: String,
}

fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim_matches('"'))
        .filter(|v| !v.is_empty())
}

/// Equal without an early exit (the comparison time does not tell how much matched).
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The refresh cookie of a request that proved it came from our page.
fn session_cookie(headers: &HeaderMap) -> Result<&str, ApiError> {
    if headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()).is_some_and(|s| s == "cross-site") {
        return Err(ApiError::forbidden("cross-site-request", "Session requests must come from this site's pages."));
    }
    let csrf_cookie = cookie_value(headers, CSRF_COOKIE);
    let csrf_header = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
    let proven = matches!((csrf_cookie, csrf_header), (Some(c), Some(h)) if same(c.as_bytes(), h.as_bytes()));
    let refresh = cookie_value(headers, REFRESH_COOKIE);
    if headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter(|pair| pair.trim().split_once('=').is_some_and(|(k, _)| k == REFRESH_COOKIE || k == CSRF_COOKIE))
        .count()
        > 2
    {
        // Two cookies of one name: one was planted (the browser keeps ours under the prefix
        // rules, so this should not happen; refuse rather than guess which is ours).
        return Err(ApiError::bad_request("ambiguous-session", "The request carries two session cookies of one name."));
    }
    match (refresh, proven) {
        (None, _) => Err(ApiError::unauthorized("no-session", "This browser has no session here; log in.")),
        (Some(_), false) => Err(ApiError::forbidden(
            "csrf-mismatch",
            format!("The {CSRF_HEADER} header must repeat the {CSRF_COOKIE} cookie."),
        )),
        (Some(token), true) if token.len() > 256 => {
            Err(ApiError::unauthorized("invalid-refresh-token", "The refresh token is not valid."))
        }
        (Some(token), true) => Ok(token),
    }
}

fn set_cookie(response: &mut Response, cookie: String) -> Result<(), ApiError> {
    let value = HeaderValue::from_str(&cookie).map_err(ApiError::internal)?;
    response.headers_mut().append(header::SET_COOKIE, value);
    Ok(())
}

/// The response that hands the page its access token and the browser its cookies.
fn signed_in(state: &AuthState, tokens: TokenResponse, csrf: Option<&str>) -> Result<Response, ApiError> {
    let max_age = state.config.refresh_ttl().as_secs();
    let csrf = csrf.map(str::to_owned).unwrap_or_else(crate::tokens::new_refresh_token);
    let body = WebTokenResponse {
        access_token: tokens.access_token,
        expires_in: tokens.expires_in,
        token_type: tokens.token_type,
    };
    let mut response = Json(body).into_response();
    set_cookie(
        &mut response,
        format!(
            "{REFRESH_COOKIE}={}; Path=/; Max-Age={max_age}; HttpOnly; Secure; SameSite=Strict",
            tokens.refresh_token
        ),
    )?;
    set_cookie(&mut response, format!("{CSRF_COOKIE}={csrf}; Path=/; Max-Age={max_age}; Secure; SameSite=Strict"))?;
    Ok(response)
}

fn cleared(mut response: Response) -> Result<Response, ApiError> {
    set_cookie(&mut response, format!("{REFRESH_COOKIE}=; Path=/; Max-Age=0; HttpOnly; Secure; SameSite=Strict"))?;
    set_cookie(&mut response, format!("{CSRF_COOKIE}=; Path=/; Max-Age=0; Secure; SameSite=Strict"))?;
    Ok(response)
}

#[utoipa::path(post, path = "/api/auth/web/login", tag = "auth", request_body = LoginRequest,
    responses(
        (status = 200, description = "Logged in: the access token in the body; the refresh token in the `__Host-ww-refresh` cookie (HttpOnly) and the CSRF token in the `__Host-ww-csrf` cookie. Sent with `Cache-Control: no-store`.", body = WebTokenResponse),
        (status = 401, description = "Wrong email or password (`invalid-credentials`).", body = platform::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "A body of the wrong shape (`invalid-body`).", body = platform::error::Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many failed logins for this account or from this address; `Retry-After` says when to try again.", body = platform::error::Problem, content_type = "application/problem+json"),
    ))]
pub async fn login(
    State(state): State<AuthState>,
    ip: ClientIp,
    Json(req): Json<LoginRequest>,
) -> Result<Response, ApiError> {
    let tokens = handlers::open_session(&state, &ip, req).await?;
    signed_in(&state, tokens, None)
}

#[utoipa::path(post, path = "/api/auth/web/refresh", tag = "auth",
    params(
        ("X-CSRF-Token" = String, Header, description = "The value of the `__Host-ww-csrf` cookie.", max_length = 256),
        ("__Host-ww-refresh" = String, Cookie, description = "Set by `/api/auth/web/login`.", max_length = 256),
    ),
    responses(
        (status = 200, description = "A new access token; the refresh cookie is replaced (the old one is spent). Sent with `Cache-Control: no-store`.", body = WebTokenResponse),
        (status = 401, description = "No session cookie (`no-session`), or the session ended, expired or its refresh token was reused (the codes of `/api/auth/refresh`); the cookies are cleared.", body = platform::error::Problem, content_type = "application/problem+json"),
        (status = 400, description = "Two session cookies of one name (`ambiguous-session`).", body = platform::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "The `X-CSRF-Token` header does not repeat the CSRF cookie (`csrf-mismatch`), or the request came from another site (`cross-site-request`).", body = platform::error::Problem, content_type = "application/problem+json"),
    ))]
pub async fn refresh(State(state): State<AuthState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let token = session_cookie(&headers)?;
    match handlers::rotate(&state, token).await {
        Ok(tokens) => signed_in(&state, tokens, cookie_value(&headers, CSRF_COOKIE)),
        // A session that cannot be refreshed is over for this browser: forget its cookies.
        Err(e) if e.status() == StatusCode::UNAUTHORIZED => cleared(e.into_response()),
        Err(e) => Err(e),
    }
}

#[utoipa::path(post, path = "/api/auth/web/logout", tag = "auth",
    params(
        ("X-CSRF-Token" = String, Header, description = "The value of the `__Host-ww-csrf` cookie.", max_length = 256),
        ("__Host-ww-refresh" = String, Cookie, description = "Set by `/api/auth/web/login`.", max_length = 256),
    ),
    responses(
        (status = 204, description = "The session is revoked (its access tokens are refused from now on) and the cookies are cleared."),
        (status = 401, description = "No session cookie (`no-session`).", body = platform::error::Problem, content_type = "application/problem+json"),
        (status = 400, description = "Two session cookies of one name (`ambiguous-session`).", body = platform::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "The `X-CSRF-Token` header does not repeat the CSRF cookie (`csrf-mismatch`), or the request came from another site (`cross-site-request`).", body = platform::error::Problem, content_type = "application/problem+json"),
    ))]
pub async fn logout(State(state): State<AuthState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let token = session_cookie(&headers)?;
    handlers::end_session(&state, token).await?;
    cleared(StatusCode::NO_CONTENT.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn the_refresh_cookie_is_read_only_with_the_matching_csrf_header() {
        let cookie = format!("a=1; {REFRESH_COOKIE}=tok; {CSRF_COOKIE}=c5rf");
        let ok = headers(&[("cookie", &cookie), (CSRF_HEADER, "c5rf")]);
        assert_eq!(session_cookie(&ok).unwrap(), "tok");

        let wrong = headers(&[("cookie", &cookie), (CSRF_HEADER, "c5rX")]);
        assert_eq!(session_cookie(&wrong).unwrap_err().code(), "csrf-mismatch");
        let missing = headers(&[("cookie", &cookie)]);
        assert_eq!(session_cookie(&missing).unwrap_err().code(), "csrf-mismatch");
        // A forger who cannot read our cookie cannot send an empty pair either.
        let empty = headers(&[("cookie", &format!("{REFRESH_COOKIE}=tok; {CSRF_COOKIE}=")), (CSRF_HEADER, "")]);
        assert_eq!(session_cookie(&empty).unwrap_err().code(), "csrf-mismatch");

        let none = headers(&[(CSRF_HEADER, "c5rf")]);
        assert_eq!(session_cookie(&none).unwrap_err().code(), "no-session");

        let cross = headers(&[("cookie", &cookie), (CSRF_HEADER, "c5rf"), ("sec-fetch-site", "cross-site")]);
        assert_eq!(session_cookie(&cross).unwrap_err().code(), "cross-site-request");

        let tossed = format!("{REFRESH_COOKIE}=planted; {REFRESH_COOKIE}=tok; {CSRF_COOKIE}=c5rf");
        let twice = headers(&[("cookie", &tossed), (CSRF_HEADER, "c5rf")]);
        assert_eq!(session_cookie(&twice).unwrap_err().code(), "ambiguous-session");
    }

    #[test]
    fn cookies_split_across_headers_are_found() {
        let h = headers(&[("cookie", &format!("{CSRF_COOKIE}=x")), ("cookie", &format!("{REFRESH_COOKIE}=\"y\""))]);
        assert_eq!(cookie_value(&h, REFRESH_COOKIE), Some("y"));
        assert_eq!(cookie_value(&h, CSRF_COOKIE), Some("x"));
        assert_eq!(cookie_value(&h, "other"), None);
    }
}
