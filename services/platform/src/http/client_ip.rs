//! The client's address for rate limits: the first `X-Forwarded-For` hop when the
//! service sits behind a trusted ingress, the socket peer otherwise.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRef, FromRequestParts};
use axum::http::request::Parts;

/// Whether `X-Forwarded-For` is believed (only behind an ingress that overwrites it).
#[derive(Debug, Clone, Copy, Default)]
pub struct ForwardedPolicy {
    pub trust_forwarded_for: bool,
}

/// The caller's IP address, or `None` when the transport did not tell (in-memory tests).
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub Option<IpAddr>);

impl ClientIp {
    pub fn key(&self) -> String {
        self.0.map_or_else(|| "unknown".to_owned(), |ip| ip.to_string())
    }
}

impl<S> FromRequestParts<S> for ClientIp
where
    Arc<ForwardedPolicy>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let policy = Arc::<ForwardedPolicy>::from_ref(state);
        if policy.trust_forwarded_for {
            let forwarded = parts
                .headers
                .get("x-forwarded-for")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(',').next())
                .and_then(|v| v.trim().parse::<IpAddr>().ok());
            if forwarded.is_some() {
                return Ok(ClientIp(forwarded));
            }
        }
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(addr)| addr.ip());
        Ok(ClientIp(peer))
    }
}
