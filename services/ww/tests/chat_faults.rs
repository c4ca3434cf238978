//! Chat fault drills that really fault, on PostgreSQL, Redis and the Kafka broker: two
//! `ww serve chat-gateway` processes and a `ww serve chat-persister` process (started together
//! against an empty database), a crowd of WebSocket clients in two rooms spread over both
//! gateways, and mid-conversation a gateway SIGKILLed (its clients reconnect to the other one and
//! resume), the persister SIGKILLed and started again, the broker down longer than the
//! producer's message timeout, or the persister paused while clients resume. Some clients give
//! up mid-send (the socket closed before the ack) and send again later under the same
//! clientMsgId, as every client does with what was not acknowledged.
//!
//! Each drill ends with an audit in both directions, once the stored rows are stable: every
//! acknowledged message is in SQL, every row is a message a client sent, each once; and every
//! client saw exactly its room's rows, in the log's order, each once, every resume complete.

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::RealEnv;
use common::cluster::{MESSAGE_TIMEOUT_MS, drill_env, ww_exe};
use common::procs::Tansu;
use futures::{SinkExt, StreamExt};
use platform::auth::JwtKeys;
use platform::config::KeyRing;
use platform::db::{Database, DatabaseUrl};
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use uuid::Uuid;
use ww::bench::proc::{ChildProc, free_addr};

const ROOMS: usize = 2;
const PER_ROOM: usize = 6;
/// Messages each client sends, one every `EVERY` (while connected).
const QUOTA: usize = 24;
const EVERY: Duration = Duration::from_millis(250);
/// Every third client gives up on every fifth of its sends.
const ABANDON_EVERY: usize = 5;
/// The fault strikes once this many messages are acknowledged.
const FAULT_AT: usize = ROOMS * PER_ROOM * QUOTA / 4;

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The chat roles in miniature, as processes that can be killed and started again.
struct Deployment {
    env: RealEnv,
    id: String,
    secret: String,
    keys: JwtKeys,
    gateway_addrs: Vec<SocketAddr>,
    gateways: tokio::sync::Mutex<Vec<Option<ChildProc>>>,
    persister_addr: SocketAddr,
    persister: tokio::sync::Mutex<Option<ChildProc>>,
    /// Settings of this drill on top of the common ones.
    extra: Vec<(&'static str, String)>,
}

impl Deployment {
    /// Both gateways and the persister, started at once against an empty database.
    async fn start(env: RealEnv, extra: Vec<(&'static str, String)>) -> Self {
        let id = Uuid::new_v4().simple().to_string()[..12].to_owned();
        platform::db::create_postgres_database(&format!("{}/ww_test_{id}", env.postgres)).await.unwrap();
        let secret = format!("drill-secret-{}", Uuid::new_v4().simple());
        let keys =
            JwtKeys::new(&KeyRing(vec![("drill".into(), secret.clone().into_bytes())]), None, "weatherwise").unwrap();
        let deployment = Self {
            env,
            id,
            secret,
            keys,
            gateway_addrs: (0..2).map(|_| free_addr().unwrap()).collect(),
            gateways: tokio::sync::Mutex::new(vec![None, None]),
            persister_addr: free_addr().unwrap(),
            persister: tokio::sync::Mutex::new(None),
            extra,
        };
        let (one, two, persister) =
            tokio::join!(deployment.spawn_gateway(0), deployment.spawn_gateway(1), deployment.spawn_persister(&[]));
        *deployment.gateways.lock().await = vec![Some(one), Some(two)];
        *deployment.persister.lock().await = Some(persister);
        deployment
    }

    fn child_env(&self, extra: &[(&str, String)]) -> Vec<(String, String)> {
        let chat = [
            // Two partitions: the rooms' order holds per partition, not by luck of one.
            ("WW_KAFKA_PARTITIONS", "2".to_owned()),
            ("WW_CHAT_SEND_RATE", "50".to_owned()),
            ("WW_CHAT_SEND_BURST", "50".to_owned()),
        ];
        drill_env(&self.env, &self.id, &self.secret, &[&chat[..], &self.extra, extra].concat())
    }

    async fn spawn_gateway(&self, i: usize) -> ChildProc {
        let addr = self.gateway_addrs[i];
        let args = ["serve", "chat-gateway", "--listen", &addr.to_string()].map(str::to_owned);
        ChildProc::start_exe(&ww_exe(), &args, &self.child_env(&[]), addr, "/readyz")
            .await
            .unwrap_or_else(|e| panic!("gateway {i} did not come up: {e:#}"))
    }

    async fn spawn_persister(&self, extra: &[(&str, String)]) -> ChildProc {
        let addr = self.persister_addr;
        let args = ["serve", "chat-persister", "--listen", &addr.to_string()].map(str::to_owned);
        ChildProc::start_exe(&ww_exe(), &args, &self.child_env(extra), addr, "/readyz")
            .await
            .unwrap_or_else(|e| panic!("the persister did not come up: {e:#}"))
    }

    /// SIGKILLs gateway `i`: its sockets drop without a close frame.
    async fn kill_gateway(&self, i: usize) {
        if let Some(p) = self.gateways.lock().await[i].take() {
            p.stop().await;
        }
    }

    async fn start_gateway(&self, i: usize) {
        let proc = self.spawn_gateway(i).await;
        self.gateways.lock().await[i] = Some(proc);
    }

    /// SIGKILLs the persister (no final commit).
    async fn kill_persister(&self) {
        if let Some(p) = self.persister.lock().await.take() {
            p.stop().await;
        }
    }

    /// Starts the persister again after a crash. tansu 0.6 never rebalances a group whose
    /// member was SIGKILLed (Kafka would after `session.timeout.ms`), so it joins a fresh group
    /// and reads the topic from the start again, which the idempotent writes make harmless.
    async fn restart_persister_after_crash(&self) {
        eprintln!("tansu 0.6: the crashed persister's group does not rebalance; restarting it in a fresh group");
        let group = format!("test-{}.after-crash-{}.", self.id, Uuid::new_v4().simple());
        let proc = self.spawn_persister(&[("WW_KAFKA_GROUP_PREFIX", group)]).await;
        *self.persister.lock().await = Some(proc);
    }

    async fn signal_persister(&self, signal: &str) {
        self.persister.lock().await.as_ref().expect("the persister runs").signal(signal).unwrap();
    }

    fn token(&self, user: Uuid) -> String {
        self.keys.sign(user, Uuid::new_v4(), chrono::Utc::now(), Duration::from_secs(3600)).unwrap()
    }

    async fn db(&self) -> Database {
        let url = DatabaseUrl::Postgres(format!("{}/ww_test_{}", self.env.postgres, self.id));
        Database::open(&url, chat::SERVICE, 4, chat::migrator()).await.unwrap()
    }
}

/// What one client did and saw.
#[derive(Debug, Default)]
struct Record {
    /// Every message it sent (clientMsgId → text), acknowledged or not.
    sent: BTreeMap<String, String>,
    /// The message id each acknowledgement carried.
    acked: HashMap<String, Uuid>,
    /// The room's messages as shown to it, in the order shown.
    seen: Vec<(i64, Uuid)>,
    seen_ids: HashSet<Uuid>,
    /// Messages shown twice, and messages shown out of the log's order.
    shown_twice: Vec<(i64, Uuid)>,
    out_of_order: Vec<(i64, i64)>,
    resumes: Vec<bool>,
    epochs: HashSet<String>,
    connections: usize,
    abandoned: usize,
    not_sent: usize,
    errors: Vec<String>,
}

impl Record {
    fn pending(&self) -> Vec<(String, String)> {
        self.sent.iter().filter(|(id, _)| !self.acked.contains_key(*id)).map(|(i, t)| (i.clone(), t.clone())).collect()
    }

    fn last(&self) -> i64 {
        self.seen.last().map_or(-1, |(offset, _)| *offset)
    }
}

struct Talker {
    user: Uuid,
    token: String,
    room: String,
    home: usize,
    abandons: bool,
}

async fn open(addr: SocketAddr, room: &str, token: &str) -> Option<(Socket, String)> {
    let mut request = format!("ws://{addr}/ws/chat/{room}").into_client_request().ok()?;
    request.headers_mut().insert("sec-websocket-protocol", format!("ww.chat.v1, ww.bearer.{token}").parse().ok()?);
    let (mut socket, _) =
        tokio::time::timeout(Duration::from_secs(5), tokio_tungstenite::connect_async(request)).await.ok()?.ok()?;
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(5), socket.next()).await.ok()??.ok()?;
        if let Message::Text(t) = frame {
            let f: Value = serde_json::from_str(t.as_str()).ok()?;
            if f["type"] == "ready" {
                return Some((socket, f["epoch"].as_str()?.to_owned()));
            }
        }
    }
}

async fn say(socket: &mut Socket, frame: Value) -> bool {
    socket.send(Message::Text(frame.to_string().into())).await.is_ok()
}

fn send_frame(id: &str, text: &str) -> Value {
    json!({"type": "send", "clientMsgId": id, "text": text})
}

/// One client: connects (to its home gateway, else the next one up), resumes from the last
/// offset it saw (from the start at first), sends again whatever was not acknowledged, then
/// sends its quota at its pace, reconnecting whenever the socket ends, until `done`.
async fn talk(t: Talker, addrs: Vec<SocketAddr>, record: Arc<Mutex<Record>>, mut done: watch::Receiver<bool>) {
    let mut gateway = t.home;
    let mut next = 0;
    'connect: loop {
        if *done.borrow() {
            return;
        }
        let Some((mut socket, epoch)) = open(addrs[gateway % addrs.len()], &t.room, &t.token).await else {
            gateway += 1;
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let (since, pending) = {
            let mut r = record.lock().unwrap();
            r.connections += 1;
            r.epochs.insert(epoch.clone());
            (r.last(), r.pending())
        };
        if !say(&mut socket, json!({"type": "resume", "epoch": epoch, "sinceOffset": since})).await {
            continue;
        }
        for (id, text) in pending {
            if !say(&mut socket, send_frame(&id, &text)).await {
                continue 'connect;
            }
        }
        let mut tick = tokio::time::interval(EVERY);
        let mut resend_at: Option<tokio::time::Instant> = None;
        loop {
            let resend = tokio::time::sleep_until(resend_at.unwrap_or_else(tokio::time::Instant::now));
            tokio::select! {
                _ = tick.tick(), if next < QUOTA => {
                    // Zero-padded: the order of `sent` is the order of sending (resends keep it).
                    let id = format!("m{next:03}");
                    let text = format!("{} says {next}", t.user);
                    record.lock().unwrap().sent.insert(id.clone(), text.clone());
                    next += 1;
                    if !say(&mut socket, send_frame(&id, &text)).await {
                        continue 'connect;
                    }
                    if t.abandons && next % ABANDON_EVERY == 0 {
                        // Gives up before the ack and comes back later with the same clientMsgId.
                        record.lock().unwrap().abandoned += 1;
                        drop(socket);
                        tokio::time::sleep(Duration::from_millis(300)).await;
                        continue 'connect;
                    }
                }
                () = resend, if resend_at.is_some() => {
                    resend_at = None;
                    let pending = record.lock().unwrap().pending();
                    for (id, text) in pending {
                        if !say(&mut socket, send_frame(&id, &text)).await {
                            continue 'connect;
                        }
                    }
                }
                frame = socket.next() => match frame {
                    Some(Ok(Message::Text(text))) => {
                        let f: Value = serde_json::from_str(text.as_str()).unwrap_or_default();
                        if let Some(after) = on_frame(&f, &record) {
                            resend_at.get_or_insert(tokio::time::Instant::now() + after);
                        }
                    }
                    Some(Ok(_)) => {}
                    // Closed or broken (a killed gateway): the next gateway, after a breath.
                    Some(Err(_)) | None => {
                        gateway += 1;
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue 'connect;
                    }
                },
                _ = done.changed() => return,
            }
        }
    }
}

/// Notes a server frame; returns when to send the unacknowledged messages again, if it asks.
fn on_frame(f: &Value, record: &Mutex<Record>) -> Option<Duration> {
    let mut r = record.lock().unwrap();
    match f["type"].as_str() {
        Some("message") => {
            let offset = f["offset"].as_i64().unwrap_or(-2);
            let id: Uuid = f["id"].as_str().and_then(|s| s.parse().ok()).unwrap_or_default();
            if !r.seen_ids.insert(id) {
                r.shown_twice.push((offset, id));
            } else {
                let last = r.last();
                if offset <= last {
                    r.out_of_order.push((last, offset));
                }
                r.seen.push((offset, id));
            }
        }
        Some("ack") => {
            let id = f["id"].as_str().and_then(|s| s.parse().ok()).unwrap_or_default();
            r.acked.insert(f["clientMsgId"].as_str().unwrap_or_default().to_owned(), id);
        }
        Some("resumed") => r.resumes.push(f["recovered"] == true),
        Some("error") => {
            let code = f["code"].as_str().unwrap_or_default();
            if code == "not-sent" || code == "rate-limited" {
                r.not_sent += 1;
                return Some(Duration::from_millis(f["retryAfterMs"].as_u64().unwrap_or(500).min(2_000)));
            }
            r.errors.push(f.to_string());
        }
        _ => {}
    }
    None
}

/// What a drill saw of its clients, for asserting that its fault had an effect.
#[derive(Debug)]
struct Seen {
    reconnects: usize,
    resumes: usize,
    abandoned: usize,
    not_sent: usize,
}

/// Gateways that keep only the last 16 messages of a room: a resume after a fault reaches
/// back past them into the stored history.
fn small_rings() -> Vec<(&'static str, String)> {
    vec![("WW_CHAT_RING", "16".into())]
}

/// The drill: the crowd talks, `fault` strikes once `FAULT_AT` messages are acknowledged,
/// every client sends its quota and has it acknowledged, then the audit.
async fn drill<F>(env: RealEnv, extra: Vec<(&'static str, String)>, fault: F) -> Seen
where
    F: AsyncFnOnce(&Deployment),
{
    let d = Deployment::start(env, extra).await;
    let rooms: Vec<String> = (0..ROOMS).map(|r| format!("drill-{r}-{}", &d.id[..6])).collect();
    let (done_tx, done) = watch::channel(false);
    let mut records = Vec::new();
    let mut tasks = Vec::new();
    for n in 0..ROOMS * PER_ROOM {
        let user = Uuid::new_v4();
        let talker =
            Talker { user, token: d.token(user), room: rooms[n % ROOMS].clone(), home: n % 2, abandons: n % 3 == 0 };
        let record = Arc::new(Mutex::new(Record::default()));
        records.push((user, talker.room.clone(), record.clone()));
        tasks.push(tokio::spawn(talk(talker, d.gateway_addrs.clone(), record, done.clone())));
    }
    let acked = |records: &[(Uuid, String, Arc<Mutex<Record>>)]| -> usize {
        records.iter().map(|(_, _, r)| r.lock().unwrap().acked.len()).sum()
    };
    let started = Instant::now();
    while acked(&records) < FAULT_AT {
        assert!(started.elapsed() < Duration::from_secs(60), "only {} acked after 60 s", acked(&records));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!("fault strikes after {} acknowledged messages", acked(&records));
    fault(&d).await;
    let total = ROOMS * PER_ROOM * QUOTA;
    while acked(&records) < total {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "only {} of {total} acknowledged after 120 s",
            acked(&records)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The stored rows, once stable.
    let db = d.db().await;
    let rows = |db: &Database| {
        let pool = db.pool.clone();
        async move {
            sqlx::query_as::<_, (String, String, i64, i64, String, String)>(
                "SELECT id, room, epoch_no, msg_offset, user_id, body FROM chat_messages \
                 ORDER BY room, epoch_no, msg_offset",
            )
            .fetch_all(&pool)
            .await
            .unwrap()
        }
    };
    let (mut last, mut stable_since) = (usize::MAX, Instant::now());
    let stored = loop {
        let now = rows(&db).await;
        if now.len() != last {
            (last, stable_since) = (now.len(), Instant::now());
        }
        if now.len() >= total && stable_since.elapsed() >= Duration::from_secs(2) {
            break now;
        }
        assert!(started.elapsed() < Duration::from_secs(180), "rows not stable: {} of {total}", now.len());
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // Every client shown its whole room (the last messages may still be on their way).
    let per_room: HashMap<&str, Vec<Uuid>> = rooms
        .iter()
        .map(|room| {
            let ids = stored.iter().filter(|r| &r.1 == room).map(|r| r.0.parse().unwrap()).collect();
            (room.as_str(), ids)
        })
        .collect();
    for (_, room, record) in &records {
        while record.lock().unwrap().seen.len() < per_room[room.as_str()].len() {
            assert!(started.elapsed() < Duration::from_secs(200), "a client never saw all of {room}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let _ = done_tx.send(true);
    for task in tasks {
        task.await.unwrap();
    }

    // Both directions: every row a message some client sent, each once; every acked message a row.
    let sent: HashMap<Uuid, (String, String)> = records
        .iter()
        .flat_map(|(user, room, r)| {
            let r = r.lock().unwrap();
            r.sent
                .iter()
                .map(|(cid, text)| (chat::message::message_id(*user, cid), (room.clone(), text.clone())))
                .collect::<Vec<_>>()
        })
        .collect();
    let mut stored_ids = HashSet::new();
    for (id, room, _, _, user, body) in &stored {
        let id: Uuid = id.parse().unwrap();
        stored_ids.insert(id);
        let Some((sent_room, text)) = sent.get(&id) else { panic!("row {id} is no message any client sent") };
        assert_eq!((sent_room, text), (room, body), "row {id} is what was sent, where it was sent");
        assert!(body.starts_with(user.as_str()), "row {id} is under its sender ({user}): {body}");
    }
    let (mut reconnects, mut abandoned, mut not_sent, mut resumes) = (0, 0, 0, 0);
    for (user, room, record) in &records {
        let r = record.lock().unwrap();
        for (cid, id) in &r.acked {
            assert_eq!(*id, chat::message::message_id(*user, cid), "the ack names the message");
            assert!(stored_ids.contains(id), "acknowledged {cid} of {user} is not stored");
        }
        assert_eq!(r.acked.len(), QUOTA, "every message of {user} acknowledged at last");
        assert!(
            r.shown_twice.is_empty(),
            "{user} was shown {} messages twice (offset, id): {:?}; it saw offsets {:?}; resumes {:?}, {} connections",
            r.shown_twice.len(),
            r.shown_twice
                .iter()
                .take(8)
                .map(|(o, id)| (*o, r.seen.iter().find(|(_, s)| s == id).map(|(f, _)| *f)))
                .collect::<Vec<_>>(),
            r.seen.iter().map(|(o, _)| *o).collect::<Vec<_>>(),
            r.resumes,
            r.connections
        );
        assert!(r.out_of_order.is_empty(), "{user} saw offsets go back: {:?}", r.out_of_order);
        assert!(r.errors.is_empty(), "{user} got errors: {:?}", r.errors);
        assert!(r.resumes.iter().all(|ok| *ok), "a resume of {user} was incomplete: {:?}", r.resumes);
        assert_eq!(r.epochs.len(), 1, "the epoch never changed in a drill: {:?}", r.epochs);
        let shown: Vec<Uuid> = r.seen.iter().map(|(_, id)| *id).collect();
        assert_eq!(shown, per_room[room.as_str()], "{user} saw exactly {room}'s rows in the log's order");
        reconnects += r.connections - 1;
        abandoned += r.abandoned;
        not_sent += r.not_sent;
        resumes += r.resumes.len();
    }
    eprintln!(
        "chat drill audit: {} rows in {ROOMS} rooms, {} clients each saw their whole room once in order; \
         {reconnects} reconnects, {resumes} resumes (all complete), {abandoned} sends abandoned before the ack \
         and sent again, {not_sent} refused sends sent again",
        stored.len(),
        records.len()
    );
    assert!(abandoned > 0, "some clients gave up mid-send");
    Seen { reconnects, resumes, abandoned, not_sent }
}

fn shared() -> RealEnv {
    RealEnv::get()
}

drill! {
    async fn a_gateway_killed_mid_conversation_loses_and_duplicates_nothing() {
        let seen = drill(shared(), small_rings(), async |d: &Deployment| {
            d.kill_gateway(0).await;
            tokio::time::sleep(Duration::from_millis(500)).await;
            d.start_gateway(0).await;
        })
        .await;
        // Half the clients were on the killed gateway: more reconnects than the give-ups made,
        // and every connection resumed.
        assert!(seen.reconnects > seen.abandoned, "the gateway's clients reconnected: {seen:?}");
        assert!(seen.resumes > seen.reconnects, "each connection resumed: {seen:?}");
    }
}

drill! {
    async fn the_persister_killed_and_restarted_stores_every_message_once() {
        drill(shared(), small_rings(), async |d: &Deployment| {
            d.kill_persister().await;
            tokio::time::sleep(Duration::from_millis(500)).await;
            d.restart_persister_after_crash().await;
        })
        .await;
    }
}

drill! {
    async fn resumes_while_the_persister_is_paused_miss_nothing() {
        // The persister stops storing (SIGSTOP) and a gateway dies: its clients resume on the
        // other gateway from what that gateway holds (its ring, the default size), nothing of
        // it stored yet. The persister goes on before the gateway comes back (a stopped member
        // held past the group's session timeout is another drill).
        let seen = drill(shared(), Vec::new(), async |d: &Deployment| {
            d.signal_persister("STOP").await;
            d.kill_gateway(1).await;
            tokio::time::sleep(Duration::from_secs(2)).await;
            d.signal_persister("CONT").await;
            d.start_gateway(1).await;
        })
        .await;
        assert!(seen.reconnects > seen.abandoned, "the gateway's clients reconnected: {seen:?}");
    }
}

drill! {
    async fn the_broker_down_longer_than_the_producer_timeout_loses_and_duplicates_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let broker = Arc::new(tokio::sync::Mutex::new(Some(Tansu::start(dir.path()))));
        let (addr, port) = {
            let b = broker.lock().await;
            (b.as_ref().unwrap().address(), b.as_ref().unwrap().port)
        };
        let env = RealEnv { kafka: addr, ..shared() };
        let keep = broker.clone();
        let data = dir.path().to_path_buf();
        // The default ring: messages the broker wrote but whose acknowledgement died with it
        // are sent again and land ~170 offsets after their first copy (measured), and a gateway
        // drops a second copy only while the first is in its ring (0010, known limits).
        let seen = drill(env, Vec::new(), async move |_: &Deployment| {
            keep.lock().await.take(); // SIGKILL; the log is on disk
            let down = Instant::now();
            tokio::time::sleep(Duration::from_millis(MESSAGE_TIMEOUT_MS * 2)).await;
            *keep.lock().await = Some(Tansu::start_on(port, &data));
            eprintln!("broker down for {:?} (producer message timeout {MESSAGE_TIMEOUT_MS} ms)", down.elapsed());
        })
        .await;
        assert!(seen.not_sent > 0, "sends were refused while the broker was down: {seen:?}");
        assert_eq!(Tansu::panic_in(dir.path()), None, "the broker itself broke");
    }
}
