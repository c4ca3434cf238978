//! Access tokens: HS256 JWTs with a key id, so keys rotate without a flag day. The auth
//! service signs with the active key; every service verifies through [`AuthUser`], which
//! also refuses tokens of sessions on this process's [`DenyList`] of revoked sessions.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use chrono::{DateTime, Utc};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::ApiError;
use crate::config::{JwtConfig, KeyRing};
use crate::roles::{Role, Roles};
use crate::sessions::DenyList;

const AUDIENCE: &str = "weatherwise-api";

/// Claims of an access token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: Uuid,
    /// The refresh-token family (login session) the token was minted for.
    pub sid: Uuid,
    pub iss: String,
    pub aud: String,
    pub iat: i64,
    pub exp: i64,
    /// Roles beyond being a user (`moderator`, `marketing`, `admin`), as of the login or
    /// refresh that minted the token.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
}

/// The signing key and every key that may verify.
pub struct JwtKeys {
    active_kid: String,
    encoding: EncodingKey,
    decoding: HashMap<String, DecodingKey>,
    issuer: String,
    validation: Validation,
    revoked: Arc<DenyList>,
    /// Tokens this replica verified lately, with what they say: a client sends the same token
    /// for its 15 minutes, and checking the signature and parsing the claims again each time was
    /// a tenth of a cached read's cost. Only verified tokens enter, keyed by the whole token; the
    /// expiry is checked on every use and revocation after it, as for a fresh verification.
    accepted: crate::ttl::TtlCache<Box<str>, Accepted>,
}

/// What a verified access token says, as requests need it.
#[derive(Debug, Clone, Copy)]
struct Accepted {
    user: AuthUser,
    exp: i64,
}

/// How long a verified token is remembered (it is still checked for expiry on each use).
const ACCEPTED_FOR: Duration = Duration::from_secs(60);
/// Tokens remembered at most (past it the cache starts over).
const ACCEPTED_MAX: usize = 20_000;

impl std::fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtKeys").field("active_kid", &self.active_kid).field("issuer", &self.issuer).finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("no JWT keys configured: set WW_JWT_KEYS (kid=secret, secret at least 32 bytes)")]
    Missing,
    #[error("WW_JWT_ACTIVE_KID `{0}` is not one of the ids in WW_JWT_KEYS")]
    UnknownActive(String),
}

impl JwtKeys {
    pub fn from_config(config: &JwtConfig) -> Result<Self, KeyError> {
        let ring = config.jwt_keys.as_ref().ok_or(KeyError::Missing)?;
        Self::new(ring, config.jwt_active_kid.as_deref(), &config.jwt_issuer)
    }

    pub fn new(ring: &KeyRing, active: Option<&str>, issuer: &str) -> Result<Self, KeyError> {
        let (first_kid, _) = ring.0.first().ok_or(KeyError::Missing)?;
        let active_kid = active.unwrap_or(first_kid).to_owned();
        let secret = ring
            .0
            .iter()
            .find(|(kid, _)| *kid == active_kid)
            .map(|(_, s)| s.clone())
            .ok_or_else(|| KeyError::UnknownActive(active_kid.clone()))?;
        let decoding = ring.0.iter().map(|(kid, s)| (kid.clone(), DecodingKey::from_secret(s))).collect();
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 5;
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "sub", "iss", "aud"]);
        Ok(Self {
            active_kid,
            encoding: EncodingKey::from_secret(&secret),
            decoding,
            issuer: issuer.to_owned(),
            validation,
            revoked: Arc::new(DenyList::new()),
            accepted: crate::ttl::TtlCache::new(ACCEPTED_FOR, ACCEPTED_MAX),
        })
    }

    /// The sessions whose tokens this process refuses (fed by `sessions::follow`).
    pub fn revoked(&self) -> &Arc<DenyList> {
        &self.revoked
    }

    /// Mints an access token for `user_id` in login session `session_id`.
    pub fn sign(&self, user_id: Uuid, session_id: Uuid, now: DateTime<Utc>, ttl: Duration) -> Result<String, ApiError> {
        self.sign_with_roles(user_id, session_id, Roles::default(), now, ttl)
    }

    /// Mints an access token carrying `roles`.
    pub fn sign_with_roles(
        &self,
        user_id: Uuid,
        session_id: Uuid,
        roles: Roles,
        now: DateTime<Utc>,
        ttl: Duration,
    ) -> Result<String, ApiError> {
        let iat = now.timestamp();
        let claims = Claims {
            sub: user_id,
            sid: session_id,
            iss: self.issuer.clone(),
            aud: AUDIENCE.to_owned(),
            iat,
            exp: iat + i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX / 2),
            roles: roles.names(),
        };
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(self.active_kid.clone());
        jsonwebtoken::encode(&header, &claims, &self.encoding).map_err(ApiError::internal)
    }

    /// The caller a token names: [`JwtKeys::verify`] once, then from memory until it expires.
    pub fn authenticate(&self, token: &str) -> Result<AuthUser, ApiError> {
        if let Some(hit) = self.accepted.get(token) {
            let now = i64::try_from(jsonwebtoken::get_current_timestamp()).unwrap_or(i64::MAX);
            // The same rule as the verification's: expired past the leeway.
            if hit.exp.saturating_add(i64::try_from(self.validation.leeway).unwrap_or(0)) >= now {
                return Ok(hit.user);
            }
        }
        let claims = self.verify(token)?;
        let user = AuthUser { user_id: claims.sub, session_id: claims.sid, roles: Roles::from_names(&claims.roles) };
        self.accepted.put(token.into(), Accepted { user, exp: claims.exp });
        Ok(user)
    }

    /// Verifies signature, key id, issuer, audience and expiry.
    pub fn verify(&self, token: &str) -> Result<Claims, ApiError> {
        let invalid = || ApiError::unauthorized("invalid-token", "The access token is not valid.");
        let header = jsonwebtoken::decode_header(token).map_err(|_| invalid())?;
        if header.alg != Algorithm::HS256 {
            return Err(invalid());
        }
        let key = header.kid.as_deref().and_then(|kid| self.decoding.get(kid)).ok_or_else(invalid)?;
        match jsonwebtoken::decode::<Claims>(token, key, &self.validation) {
            Ok(data) => Ok(data.claims),
            Err(e) if matches!(e.kind(), ErrorKind::ExpiredSignature) => {
                Err(ApiError::unauthorized("token-expired", "The access token has expired; refresh it."))
            }
            Err(_) => Err(invalid()),
        }
    }
}

/// The authenticated caller, extracted from `Authorization: Bearer <token>`.
#[derive(Debug, Clone, Copy)]
pub struct AuthUser {
    pub user_id: Uuid,
    pub session_id: Uuid,
    pub roles: Roles,
}

impl AuthUser {
    /// Ok when the caller holds `role`; otherwise 403 `forbidden-role`.
    pub fn require(&self, role: Role) -> Result<(), ApiError> {
        if self.roles.contains(role) {
            Ok(())
        } else {
            Err(ApiError::forbidden("forbidden-role", format!("This needs the `{role}` role."))
                .with("role", role.as_str()))
        }
    }
}

impl<S> FromRequestParts<S> for AuthUser
where
    Arc<JwtKeys>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let keys = Arc::<JwtKeys>::from_ref(state);
        let value = parts.headers.get(AUTHORIZATION).ok_or_else(|| {
            ApiError::unauthorized("missing-token", "This endpoint needs `Authorization: Bearer <access token>`.")
        })?;
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                ApiError::unauthorized("invalid-token", "The Authorization header must be `Bearer <access token>`.")
            })?;
        let user = keys.authenticate(token)?;
        if keys.revoked.is_revoked(&user.session_id) {
            return Err(ApiError::unauthorized("session-revoked", "This session has ended; log in again."));
        }
        Ok(user)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(pairs: &[(&str, &str)]) -> KeyRing {
        KeyRing(pairs.iter().map(|(k, s)| ((*k).to_owned(), s.as_bytes().to_vec())).collect())
    }

    const S1: &str = "first-secret-first-secret-first-secret";
    const S2: &str = "second-secret-second-secret-second-secret";

    #[test]
    fn a_token_signed_with_an_old_key_still_verifies_after_rotation() {
        let old = JwtKeys::new(&ring(&[("k1", S1)]), None, "weatherwise").unwrap();
        let rotated = JwtKeys::new(&ring(&[("k1", S1), ("k2", S2)]), Some("k2"), "weatherwise").unwrap();
        let token = old.sign(Uuid::new_v4(), Uuid::new_v4(), Utc::now(), Duration::from_secs(60)).unwrap();
        assert!(rotated.verify(&token).is_ok());
    }

    #[test]
    fn a_token_from_an_unknown_key_or_issuer_is_refused() {
        let ours = JwtKeys::new(&ring(&[("k1", S1)]), None, "weatherwise").unwrap();
        let forged = JwtKeys::new(&ring(&[("k1", S2)]), None, "weatherwise").unwrap();
        let other_kid = JwtKeys::new(&ring(&[("k9", S1)]), None, "weatherwise").unwrap();
        let other_iss = JwtKeys::new(&ring(&[("k1", S1)]), None, "someone-else").unwrap();
        for signer in [&forged, &other_kid, &other_iss] {
            let token = signer.sign(Uuid::new_v4(), Uuid::new_v4(), Utc::now(), Duration::from_secs(60)).unwrap();
            assert_eq!(ours.verify(&token).unwrap_err().code(), "invalid-token");
        }
    }

    #[test]
    fn roles_travel_in_the_token_and_can_be_required() {
        let keys = JwtKeys::new(&ring(&[("k1", S1)]), None, "weatherwise").unwrap();
        let mut roles = Roles::default();
        roles.insert(Role::Marketing);
        let token = keys.sign_with_roles(Uuid::new_v4(), Uuid::new_v4(), roles, Utc::now(), Duration::from_secs(60));
        let claims = keys.verify(&token.unwrap()).unwrap();
        assert_eq!(claims.roles, vec!["marketing"]);
        let user = AuthUser { user_id: claims.sub, session_id: claims.sid, roles: Roles::from_names(&claims.roles) };
        assert!(user.require(Role::Marketing).is_ok());
        let refused = user.require(Role::Admin).unwrap_err();
        assert_eq!((refused.status().as_u16(), refused.code()), (403, "forbidden-role"));
    }

    #[test]
    fn a_remembered_token_still_expires() {
        let keys = JwtKeys::new(&ring(&[("k1", S1)]), None, "weatherwise").unwrap();
        let token = keys.sign(Uuid::new_v4(), Uuid::new_v4(), Utc::now(), Duration::from_secs(60)).unwrap();
        let first = keys.authenticate(&token).unwrap();
        assert_eq!(keys.authenticate(&token).unwrap().user_id, first.user_id, "remembered");
        // A token past its expiry (and the leeway), remembered as if verified earlier: refused.
        let old = keys.sign(
            Uuid::new_v4(),
            Uuid::new_v4(),
            Utc::now() - chrono::TimeDelta::hours(1),
            Duration::from_secs(60),
        );
        let old = old.unwrap();
        let exp = (Utc::now() - chrono::TimeDelta::minutes(59)).timestamp();
        keys.accepted.put(old.as_str().into(), Accepted { user: first, exp });
        assert_eq!(keys.authenticate(&old).unwrap_err().code(), "token-expired");
    }

    #[tokio::test]
    async fn a_token_of_a_revoked_session_is_refused() {
        let keys = Arc::new(JwtKeys::new(&ring(&[("k1", S1)]), None, "weatherwise").unwrap());
        let session = Uuid::new_v4();
        let token = keys.sign(Uuid::new_v4(), session, Utc::now(), Duration::from_secs(60)).unwrap();
        let extract = |keys: Arc<JwtKeys>| {
            let token = token.clone();
            async move {
                let req = axum::http::Request::get("/").header(AUTHORIZATION, format!("Bearer {token}")).body(());
                let (mut parts, ()) = req.unwrap().into_parts();
                AuthUser::from_request_parts(&mut parts, &keys).await
            }
        };
        assert!(extract(keys.clone()).await.is_ok());
        keys.revoked().deny(session, Utc::now() + chrono::TimeDelta::minutes(15), Utc::now());
        assert_eq!(extract(keys.clone()).await.unwrap_err().code(), "session-revoked");
    }

    #[test]
    fn an_expired_token_says_so() {
        let keys = JwtKeys::new(&ring(&[("k1", S1)]), None, "weatherwise").unwrap();
        let past = Utc::now() - chrono::TimeDelta::hours(1);
        let token = keys.sign(Uuid::new_v4(), Uuid::new_v4(), past, Duration::from_secs(60)).unwrap();
        assert_eq!(keys.verify(&token).unwrap_err().code(), "token-expired");
    }
}
