//! The app over a real TCP listener on port 0: requests through the socket, and a
//! graceful stop that lets the port go.

mod common;

use std::time::Duration;

use common::{PASSWORD, TestApp};
use platform::http::HttpSettings;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::watch;
use ww::bench::load;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_app_serves_over_a_real_socket_and_stops_cleanly() {
    // Borrow the embedded backends of a harness app; serve a second copy over TCP.
    let harness = TestApp::embedded().await;
    let (stop_tx, stop) = watch::channel(false);
    let mut ctx = harness.ctx.clone();
    ctx.stop = stop.clone();
    let app =
        ww::app::build(&TestApp::services(), &ctx, &common::fast_config(), &HttpSettings::default()).await.unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(app.run(listener, stop));

    let email = common::unique_email("socket");
    let (status, signed) =
        load::post_once(addr, "/api/auth/signup", &json!({"email": email, "password": PASSWORD, "nickname": "sock"}))
            .await
            .unwrap();
    assert_eq!(status, 201, "{signed}");
    let (status, body) =
        load::post_once(addr, "/api/auth/login", &json!({"email": email, "password": PASSWORD})).await.unwrap();
    assert_eq!(status, 200, "{body}");
    let token = body["accessToken"].as_str().unwrap().to_owned();
    let (status, me) = load::get_once(addr, "/api/users/me", Some(&token)).await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(me["userId"], signed["userId"]);
    let (status, ready) = load::get_once(addr, "/readyz", None).await.unwrap();
    assert_eq!(status, 200, "{ready}");

    stop_tx.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(15), server)
        .await
        .expect("stops within the grace period")
        .unwrap()
        .unwrap();
    assert!(load::get_once(addr, "/healthz", None).await.is_err(), "the port is closed after shutdown");
}
