//! The ceiling: the smallest axum server answering a JSON body like the one measured,
//! so a ratio against it says what the service's own work costs.

use std::net::SocketAddr;

use axum::Router;
use axum::routing::get;

pub const PATH: &str = "/ceiling";

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
    let listener = tokio::net::TcpListener::bind(listen).await?;
    axum::serve(listener, app).await?;
    Ok(())
}
