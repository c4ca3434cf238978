//! Chat over real WebSockets (tokio-tungstenite against the served listener), on both backends:
//! two gateways, one room — every client sees every message in one order, acks come with
//! offsets, the persister stores each message once; a client that reconnects to the other
//! gateway resumes with exactly what it missed; bad input gets clear close codes and the room
//! goes on; history pages over HTTP.

mod common;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{Backend, TestApp};
use futures::{SinkExt, StreamExt};
use platform::http::HttpSettings;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use uuid::Uuid;
use ww::roles::ServiceName;

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A gateway (or any set of roles) on these backends, served on a loopback port.
async fn serve(app: &TestApp, services: &[ServiceName]) -> SocketAddr {
    let built = ww::app::build(services, &app.ctx, &common::fast_config(), &HttpSettings::default()).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = app.ctx.stop.clone();
    tokio::spawn(built.server.serve(listener, stop));
    addr
}

async fn start(backend: Backend) -> (TestApp, SocketAddr, SocketAddr) {
    let services = [ServiceName::Auth, ServiceName::User, ServiceName::Chat, ServiceName::ChatPersister];
    let app = TestApp::start_custom(backend, common::fast_config(), platform::clock::Clock::System, &services, None)
        .await
        .unwrap();
    let one = serve(&app, &[ServiceName::ChatGateway]).await;
    let two = serve(&app, &[ServiceName::ChatGateway]).await;
    for gateway in [one, two] {
        wait_ready(gateway).await;
    }
    (app, one, two)
}

async fn wait_ready(addr: SocketAddr) {
    let started = Instant::now();
    loop {
        let ok = tokio::net::TcpStream::connect(addr).await.is_ok()
            && reqwest_like_get(addr, "/readyz").await.is_some_and(|status| status == 200);
        if ok {
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "gateway {addr} never ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The status of a plain GET (no HTTP client crate needed for one line).
async fn reqwest_like_get(addr: SocketAddr, path: &str) -> Option<u16> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    stream.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes()).await.ok()?;
    let mut head = vec![0u8; 12];
    stream.read_exact(&mut head).await.ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

fn token(app: &TestApp, user: Uuid) -> String {
    app.keys.sign(user, Uuid::new_v4(), chrono::Utc::now(), Duration::from_secs(3600)).unwrap()
}

/// Connects to `room` with the token in the subprotocol list, as a browser would.
async fn connect(addr: SocketAddr, room: &str, token: Option<&str>) -> Socket {
    let mut request = format!("ws://{addr}/ws/chat/{room}").into_client_request().unwrap();
    let protocols = match token {
        Some(t) => format!("ww.chat.v1, ww.bearer.{t}"),
        None => "ww.chat.v1".to_owned(),
    };
    request.headers_mut().insert("sec-websocket-protocol", protocols.parse().unwrap());
    let (socket, response) = tokio_tungstenite::connect_async(request).await.unwrap();
    assert_eq!(response.headers().get("sec-websocket-protocol").unwrap(), "ww.chat.v1");
    socket
}

/// The next frame as JSON; a close as `{"close": code}`.
async fn next(socket: &mut Socket) -> Value {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(20), socket.next()).await.expect("a frame in 20 s");
        match frame {
            Some(Ok(Message::Text(t))) => return serde_json::from_str(t.as_str()).unwrap(),
            Some(Ok(Message::Close(c))) => return json!({"close": c.map(|c| u16::from(c.code))}),
            Some(Ok(_)) => continue,
            Some(Err(e)) => return json!({"error": e.to_string()}),
            None => return json!({"ended": true}),
        }
    }
}

async fn say(socket: &mut Socket, frame: Value) {
    socket.send(Message::Text(frame.to_string().into())).await.unwrap();
}

async fn ready(socket: &mut Socket) -> Value {
    let f = next(socket).await;
    assert_eq!(f["type"], "ready", "{f}");
    f
}

on_both_backends!(two_gateways_one_room_one_order_and_a_resume_on_the_other_gateway, bad_input_closes_only_that_socket);

async fn two_gateways_one_room_one_order_and_a_resume_on_the_other_gateway(app: TestApp) {
    let kind = app.backend;
    drop(app);
    let (app, one, two) = start(kind).await;
    let room = format!("r-{}", &Uuid::new_v4().simple().to_string()[..8]);
    let (alice, bob) = (Uuid::new_v4(), Uuid::new_v4());
    let mut a = connect(one, &room, Some(&token(&app, alice))).await;
    let mut b = connect(two, &room, Some(&token(&app, bob))).await;
    let epoch = ready(&mut a).await["epoch"].as_str().unwrap().to_owned();
    ready(&mut b).await;
    // Both are in the room once a ping round trip came back.
    for s in [&mut a, &mut b] {
        say(s, json!({"type": "ping"})).await;
        assert_eq!(next(s).await["type"], "pong");
    }
    for i in 0..8 {
        say(&mut a, json!({"type": "send", "clientMsgId": format!("a{i}"), "text": format!("from alice {i}")})).await;
        say(&mut b, json!({"type": "send", "clientMsgId": format!("b{i}"), "text": format!("from bob {i}")})).await;
    }
    let mut seen = [Vec::new(), Vec::new()];
    let mut acks = [0, 0];
    let mut online = [0, 0];
    for (n, s) in [&mut a, &mut b].into_iter().enumerate() {
        while seen[n].len() < 16 || acks[n] < 8 {
            let f = next(s).await;
            match f["type"].as_str() {
                Some("message") => seen[n].push((f["offset"].as_i64().unwrap(), f["id"].as_str().unwrap().to_owned())),
                Some("ack") => acks[n] += 1,
                Some("presence") => online[n] = f["online"].as_u64().unwrap(),
                other => panic!("unexpected {other:?}: {f}"),
            }
        }
    }
    assert_eq!(seen[0], seen[1], "both gateways show the room in the log's one order");
    // Presence counts the room across both gateways.
    for (n, s) in [&mut a, &mut b].into_iter().enumerate() {
        let started = Instant::now();
        while online[n] != 2 {
            let f = next(s).await;
            if f["type"] == "presence" {
                online[n] = f["online"].as_u64().unwrap();
            }
            assert!(started.elapsed() < Duration::from_secs(15), "presence never said 2: {f}");
        }
    }
    assert!(seen[0].windows(2).all(|w| w[0].0 < w[1].0), "offsets grow");
    let ids: HashSet<&String> = seen[0].iter().map(|(_, id)| id).collect();
    assert_eq!(ids.len(), 16, "each message once");

    // Alice goes away having seen up to the eighth message; Bob sends four more; Alice comes
    // back on the other gateway and resumes from what she saw.
    let (last_seen, _) = seen[0][7].clone();
    drop(a);
    // Within Bob's send rate (a burst of ten, five a second after): his first eight left two.
    tokio::time::sleep(Duration::from_secs(1)).await;
    for i in 8..12 {
        say(&mut b, json!({"type": "send", "clientMsgId": format!("b{i}"), "text": format!("from bob {i}")})).await;
    }
    let mut acked = 0;
    while acked < 4 {
        let f = next(&mut b).await;
        assert_ne!(f["type"], "error", "{f}");
        if f["type"] == "ack" {
            acked += 1;
        }
    }
    let mut back = connect(two, &room, Some(&token(&app, alice))).await;
    ready(&mut back).await;
    say(&mut back, json!({"type": "resume", "epoch": epoch, "sinceOffset": last_seen})).await;
    // What the gateway had when the resume came, then `resumed`, then — live — what reached it
    // after (the four may still be on their way from the log to this gateway).
    let mut missed = Vec::new();
    let mut recovered = None;
    while recovered.is_none() || missed.len() < 12 {
        let f = next(&mut back).await;
        match f["type"].as_str() {
            Some("message") => missed.push(f["offset"].as_i64().unwrap()),
            Some("resumed") => recovered = f["recovered"].as_bool(),
            Some("presence") => {}
            other => panic!("unexpected {other:?}: {f}"),
        }
    }
    assert_eq!(recovered, Some(true));
    assert_eq!(missed.len(), 8 + 4, "the rest of the first sixteen and the four sent while away: {missed:?}");
    assert!(missed.iter().all(|o| *o > last_seen) && missed.windows(2).all(|w| w[0] < w[1]));

    // The persister stored each message once; the history pages over HTTP agree.
    let t = token(&app, alice);
    let started = Instant::now();
    let history = loop {
        let page = app.call("GET", &format!("/api/chat/rooms/{room}/messages?limit=200"), Some(&t), None).await;
        assert_eq!(page.status, 200, "{:?}", page.body);
        if page.body["messages"].as_array().unwrap().len() >= 20 {
            break page.body;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "the persister stored {:?}", page.body);
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let stored: Vec<i64> =
        history["messages"].as_array().unwrap().iter().map(|m| m["offset"].as_i64().unwrap()).collect();
    assert_eq!(stored.len(), 20, "twenty messages, once each");
    assert!(stored.windows(2).all(|w| w[0] > w[1]), "newest first");
    let first = app.call("GET", &format!("/api/chat/rooms/{room}/messages?limit=7"), Some(&t), None).await;
    let cursor = first.body["next"].as_str().unwrap().to_owned();
    let second =
        app.call("GET", &format!("/api/chat/rooms/{room}/messages?limit=7&before={cursor}"), Some(&t), None).await;
    let pages: Vec<i64> = [&first.body, &second.body]
        .iter()
        .flat_map(|b| b["messages"].as_array().unwrap().iter().map(|m| m["offset"].as_i64().unwrap()))
        .collect();
    assert_eq!(pages, stored[..14], "one cursor format across the cache and SQL");
}

async fn bad_input_closes_only_that_socket(app: TestApp) {
    let kind = app.backend;
    drop(app);
    let (app, one, _) = start(kind).await;
    let user = Uuid::new_v4();
    let mut steady = connect(one, "lobby", Some(&token(&app, user))).await;
    ready(&mut steady).await;
    // No token, and a first frame that is not `auth`.
    let mut anonymous = connect(one, "lobby", None).await;
    say(&mut anonymous, json!({"type": "ping"})).await;
    assert_eq!(next(&mut anonymous).await["close"], 4001);
    let mut forged = connect(one, "lobby", Some("not.a.token")).await;
    assert_eq!(next(&mut forged).await["close"], 4001);
    let mut bad_room = connect(one, "Not%20A%20Room", Some(&token(&app, user))).await;
    assert_eq!(next(&mut bad_room).await["close"], 4005);
    let mut binary = connect(one, "lobby", Some(&token(&app, user))).await;
    ready(&mut binary).await;
    binary.send(Message::Binary(vec![1, 2, 3].into())).await.unwrap();
    assert_eq!(next(&mut binary).await["close"], 1003);
    let mut big = connect(one, "lobby", Some(&token(&app, user))).await;
    ready(&mut big).await;
    let huge = json!({"type": "send", "clientMsgId": "big", "text": "x".repeat(20_000)}).to_string();
    let _ = big.send(Message::Text(huge.into())).await;
    let closed = next(&mut big).await;
    assert!(closed["close"] == 1009 || closed.get("error").is_some() || closed.get("ended").is_some(), "{closed}");
    say(&mut steady, json!({"type": "nonsense"})).await;
    assert_eq!(next(&mut steady).await["code"], "unknown-frame");
    say(&mut steady, json!({"type": "send", "clientMsgId": "ok", "text": "still here"})).await;
    let mut types = Vec::new();
    while types.len() < 2 {
        let f = next(&mut steady).await;
        if f["type"] != "presence" {
            types.push(f["type"].as_str().unwrap().to_owned());
        }
    }
    types.sort();
    assert_eq!(types, ["ack", "message"], "the steady socket and its room went on");
}
