//! The shared HTTP stack over a real socket: graceful drain on stop, load shedding,
//! timeouts, request ids and metrics.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use platform::http::{HttpSettings, Readiness, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};

async fn raw_get(addr: SocketAddr, path: &str) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(addr).await?;
    stream.write_all(format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n").as_bytes()).await?;
    let mut out = String::new();
    stream.read_to_string(&mut out).await?;
    Ok(out)
}

async fn start(
    settings: HttpSettings,
    gate: Arc<Notify>,
) -> (SocketAddr, watch::Sender<bool>, tokio::task::JoinHandle<std::io::Result<()>>) {
    let api = Router::new()
        .route(
            "/slow",
            get(move || {
                let gate = gate.clone();
                async move {
                    gate.notified().await;
                    "done"
                }
            }),
        )
        .route("/fast", get(|| async { "ok" }));
    let server = Server::new(api, serde_json::json!({}), Readiness::default(), &settings);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop_tx, stop) = watch::channel(false);
    (addr, stop_tx, tokio::spawn(server.serve(listener, stop)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_drains_the_request_in_flight_and_then_closes() {
    let gate = Arc::new(Notify::new());
    let (addr, stop, server) = start(HttpSettings::default(), gate.clone()).await;
    let in_flight = tokio::spawn(raw_get(addr, "/slow"));
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.send(true).unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!in_flight.is_finished(), "the in-flight request is still being served");
    gate.notify_one();
    let answer = in_flight.await.unwrap().unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("done"));
    tokio::time::timeout(Duration::from_secs(5), server).await.unwrap().unwrap().unwrap();
    assert!(raw_get(addr, "/fast").await.is_err(), "no new connections after shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_beyond_the_in_flight_bound_is_shed_at_once_with_429() {
    let gate = Arc::new(Notify::new());
    let settings = HttpSettings { max_in_flight: 2, ..HttpSettings::default() };
    let (addr, _stop, _server) = start(settings, gate.clone()).await;
    let held: Vec<_> = (0..2).map(|_| tokio::spawn(raw_get(addr, "/slow"))).collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let shed = raw_get(addr, "/fast").await.unwrap();
    assert!(shed.starts_with("HTTP/1.1 429"), "{shed}");
    assert!(shed.contains("application/problem+json") && shed.contains("\"code\":\"overloaded\""), "{shed}");
    assert!(shed.to_lowercase().contains("retry-after: 1"), "{shed}");
    // Health endpoints are never shed, so probes do not kill a busy pod.
    assert!(raw_get(addr, "/healthz").await.unwrap().starts_with("HTTP/1.1 200"));
    gate.notify_waiters();
    for h in held {
        assert!(h.await.unwrap().unwrap().starts_with("HTTP/1.1 200"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_over_the_timeout_is_a_503_problem() {
    let settings = HttpSettings { request_timeout: Duration::from_millis(100), ..HttpSettings::default() };
    let (addr, _stop, _server) = start(settings, Arc::new(Notify::new())).await;
    let answer = raw_get(addr, "/slow").await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("\"code\":\"timeout\""), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_has_a_request_id_and_is_counted_by_route() {
    let (addr, _stop, _server) = start(HttpSettings::default(), Arc::new(Notify::new())).await;
    let answer = raw_get(addr, "/fast").await.unwrap();
    assert!(answer.to_lowercase().contains("x-request-id: "), "{answer}");
    let metrics = raw_get(addr, "/metrics").await.unwrap();
    assert!(metrics.contains(r#"http_requests_total{method="GET",route="/fast",status="200"}"#), "{metrics}");
    assert!(metrics.contains("http_request_duration_seconds_bucket"), "{metrics}");
}

/// Reads until the peer closes (or `limit` passes); `None` when it was still open.
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> Option<String> {
    let mut out = Vec::new();
    let mut buf = [0u8; 1024];
    let read_all = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(limit, read_all).await.ok()?;
    Some(String::from_utf8_lossy(&out).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_sends_its_headers_too_slowly_is_closed() {
    let settings = HttpSettings { header_read_timeout: Duration::from_millis(300), ..HttpSettings::default() };
    let (addr, _stop, _server) = start(settings, Arc::new(Notify::new())).await;
    let mut slow = TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"GET /fast HTTP/1.1\r\nHost: test\r\n").await.unwrap();
    // ... and never the blank line that ends the headers.
    let answer = read_until_closed(&mut slow, Duration::from_secs(5)).await;
    let answer = answer.expect("the server closed the connection");
    assert!(answer.is_empty() || answer.starts_with("HTTP/1.1 408"), "{answer}");
    // Prompt clients are still served.
    assert!(raw_get(addr, "/fast").await.unwrap().starts_with("HTTP/1.1 200"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_cap_wait_until_one_closes() {
    let settings = HttpSettings { max_connections: 1, ..HttpSettings::default() };
    let (addr, _stop, _server) = start(settings, Arc::new(Notify::new())).await;
    let idle = TcpStream::connect(addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let waiting = tokio::spawn(raw_get(addr, "/fast"));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!waiting.is_finished(), "a second connection is not served while the first holds the only slot");
    drop(idle);
    let answer = tokio::time::timeout(Duration::from_secs(5), waiting).await.expect("served once the slot is free");
    assert!(answer.unwrap().unwrap().starts_with("HTTP/1.1 200"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_request_span_continues_the_callers_trace() {
    use axum::body::Body;
    use tower::ServiceExt as _;
    let api = Router::new().route(
        "/trace",
        get(|| async {
            let event = platform::events::Envelope::new("T", "test", chrono::Utc::now(), &serde_json::json!({}));
            event.unwrap().traceparent.unwrap_or_default()
        }),
    );
    let router = Server::new(api, serde_json::json!({}), Readiness::default(), &HttpSettings::default()).router();
    let sent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let call = |header: Option<&str>| {
        let mut req = axum::http::Request::get("/trace");
        if let Some(h) = header {
            req = req.header("traceparent", h);
        }
        let router = router.clone();
        let req = req.body(Body::empty()).unwrap();
        async move {
            let resp = router.oneshot(req).await.unwrap();
            let bytes = axum::body::to_bytes(resp.into_body(), 1024).await.unwrap();
            String::from_utf8(bytes.to_vec()).unwrap()
        }
    };
    let carried = call(Some(sent)).await;
    assert!(carried.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"), "{carried}");
    assert_ne!(carried, sent, "our span is the new parent");
    let started = call(Some("garbage")).await;
    assert_eq!(started.len(), 55, "a malformed header starts a new trace: {started}");
    assert!(!started.contains("4bf92f3577b34da6a3ce929d0e0e4736"));
}
