//! The ceiling: the smallest axum server answering a JSON body like the one measured,
//! so a ratio against it says what the service's own work costs.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::routing::get;

pub const PATH: &str = "/ceiling";
/// A JSON body of `n` bytes (`/ceiling/sized/{n}`): the ceiling of an endpoint whose answers
/// are that large.
pub const SIZED: &str = "/ceiling/sized";

/// `{"pad":"xxx…"}` of exactly `n` bytes (at least the 10 of the frame).
pub fn sized_body(n: usize) -> bytes::Bytes {
    let pad = n.saturating_sub(10);
    bytes::Bytes::from(format!("{{\"pad\":\"{}\"}}", "x".repeat(pad)))
}

pub async fn serve(listen: SocketAddr) -> anyhow::Result<()> {
    let app = Router::new().route(
        PATH,
        get(|| async {
            axum::Json(serde_json::json!({
                "userId": "01938c4e-7f3a-7c1e-9a51-0c2f5b7d9e10",
                "status": "active",
                "email": "bench@example.com",
                "nickname": "bench",
                "homeLocation": null,
                "timeZone": "UTC",
                "preferences": {"units": "metric", "language": "en", "notifications": {"missions": true, "coupons": true, "chat": true}},
            }))
        }),
    );
    let bodies: Arc<Mutex<HashMap<usize, bytes::Bytes>>> = Arc::default();
    let app = app.route(
        &format!("{SIZED}/{{n}}"),
        get(move |axum::extract::Path(n): axum::extract::Path<usize>| {
            let bodies = bodies.clone();
            async move {
                let n = n.min(1 << 20);
                let body = bodies
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .entry(n)
                    .or_insert_with(|| sized_body(n))
                    .clone();
                ([(axum::http::header::CONTENT_TYPE, "application/json")], body)
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind(listen).await?;
    axum::serve(listener, app).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_sized_body_is_that_many_bytes_of_json() {
        for n in [10, 11, 2_345] {
            let body = super::sized_body(n);
            assert_eq!(body.len(), n);
            assert!(serde_json::from_slice::<serde_json::Value>(&body).is_ok());
        }
    }
}
