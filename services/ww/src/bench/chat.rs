//! `ww bench chat`: WebSocket clients in rooms against `ww serve chat-gateway` processes and
//! `ww serve chat-persister` on PostgreSQL, Redis and Kafka; then every acknowledged message
//! looked for in SQL. Beside it, in the same run, the same shape against a gateway in this
//! process on the in-memory bus with persistence off — what Kafka and persistence cost.
//!
//! Shapes (`--shape`): `default` — 5,000 clients in 100 rooms of 50 over two gateways, each
//! sending one message every 5 s for 60 s (1,000 sent/s, ≈ 49,000 deliveries/s); `seed` — the
//! replaced system's own test, 1,500 people each sending once a second for 60 s.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use platform::auth::JwtKeys;
use platform::config::KeyRing;
use platform::db::{Database, DatabaseUrl};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use uuid::Uuid;

use super::proc::{ChildProc, free_addr};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Shape {
    Default,
    Seed,
}

#[derive(Debug, clap::Args)]
pub struct ChatBenchArgs {
    /// `default`: 5,000 clients, 100 rooms, one message per client every 5 s; `seed`: the
    /// replaced system's 1,500 people each sending once a second.
    #[arg(long, value_enum, default_value = "default")]
    pub shape: Shape,
    /// Clients instead of the shape's (a smaller load shows the latency of the path itself).
    #[arg(long, value_parser = clap::value_parser!(u64).range(2..=20_000))]
    pub clients: Option<u64>,
    /// Rooms instead of the shape's.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub rooms: Option<u64>,
    /// Seconds of sending.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(5..=600))]
    pub duration_seconds: u64,
    /// Gateway processes the clients are spread over.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=8))]
    pub gateways: u64,
    /// Partitions of the run's chat topic (rooms are spread over them by key).
    #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub partitions: u32,
    /// Skip the in-process ceiling run (figures without a ratio).
    #[arg(long)]
    pub no_ceiling: bool,
    #[command(flatten)]
    pub backends: super::BenchBackends,
    /// Print one JSON object with the figures as the last line.
    #[arg(long)]
    pub json: bool,
}

struct Load {
    clients: usize,
    rooms: usize,
    every: Duration,
    duration: Duration,
}

impl ChatBenchArgs {
    fn load(&self) -> Load {
        let duration = Duration::from_secs(self.duration_seconds);
        let load = match self.shape {
            Shape::Default => Load { clients: 5_000, rooms: 100, every: Duration::from_secs(5), duration },
            Shape::Seed => Load { clients: 1_500, rooms: 30, every: Duration::from_secs(1), duration },
        };
        let as_usize = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
        Load {
            clients: self.clients.map_or(load.clients, as_usize),
            rooms: self.rooms.map_or(load.rooms, as_usize),
            ..load
        }
    }
}

/// What one run of the load saw.
struct Figures {
    connected: usize,
    sent: u64,
    acked: HashSet<Uuid>,
    delivered: u64,
    duplicated: u64,
    latency_us: Histogram<u64>,
    /// Send → the sender's own ack (the broker has it): the produce path alone.
    ack_us: Histogram<u64>,
    sending: Duration,
    /// Cores each process used while the load was sent.
    cpu: Vec<(String, f64)>,
}

impl Figures {
    fn per_s(&self, n: u64) -> f64 {
        n as f64 / self.sending.as_secs_f64().max(1e-9)
    }

    fn ms(&self, q: f64) -> f64 {
        self.latency_us.value_at_quantile(q) as f64 / 1000.0
    }
}

/// The fields of a server frame the load generator reads.
#[derive(serde::Deserialize)]
struct FrameView<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    id: Option<&'a str>,
    #[serde(rename = "clientMsgId")]
    client_msg_id: Option<&'a str>,
    #[serde(borrow)]
    text: Option<std::borrow::Cow<'a, str>>,
}

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(addr: SocketAddr, room: &str, token: &str) -> anyhow::Result<Socket> {
    let mut request = format!("ws://{addr}/ws/chat/{room}").into_client_request()?;
    request.headers_mut().insert("sec-websocket-protocol", format!("ww.chat.v1, ww.bearer.{token}").parse()?);
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await?;
    loop {
        match tokio::time::timeout(Duration::from_secs(30), socket.next()).await? {
            Some(Ok(Message::Text(t))) if t.contains(r#""type":"ready""#) => return Ok(socket),
            Some(Ok(_)) => continue,
            other => anyhow::bail!("no ready frame: {other:?}"),
        }
    }
}

/// Runs the load against `gateways`: connects every client, then each sends every `every`
/// (spread evenly) for `duration`; every client reads everything. Messages carry their send
/// time (ns since `origin`), so latency is send → delivered to each other client in the room.
async fn drive(
    gateways: &[SocketAddr],
    keys: &JwtKeys,
    load: &Load,
    run: &str,
    labels: &BTreeMap<u32, String>,
) -> anyhow::Result<Figures> {
    let origin = Instant::now();
    let sent = Arc::new(AtomicU64::new(0));
    let delivered = Arc::new(AtomicU64::new(0));
    let duplicated = Arc::new(AtomicU64::new(0));
    let acked = Arc::new(std::sync::Mutex::new(HashSet::new()));
    let latency = Arc::new(std::sync::Mutex::new(Histogram::<u64>::new_with_bounds(1, 600_000_000, 3)?));
    let ack_latency = Arc::new(std::sync::Mutex::new(Histogram::<u64>::new_with_bounds(1, 600_000_000, 3)?));
    let last_frame = Arc::new(AtomicU64::new(0));
    // Connect, a few hundred at a time.
    let mut sockets = Vec::with_capacity(load.clients);
    let connecting = futures::stream::iter((0..load.clients).map(|i| {
        let addr = gateways[i % gateways.len()];
        let room = format!("{run}-{}", i % load.rooms);
        let user = Uuid::new_v4();
        let token = keys.sign(user, Uuid::new_v4(), chrono::Utc::now(), Duration::from_secs(3600));
        async move {
            let token = token.map_err(|e| anyhow::anyhow!("{e:?}"))?;
            let socket = connect(addr, &room, &token).await?;
            anyhow::Ok((i, room, socket))
        }
    }))
    .buffer_unordered(200);
    futures::pin_mut!(connecting);
    while let Some(result) = connecting.next().await {
        sockets.push(result?);
    }
    let connected = sockets.len();
    eprintln!("{connected} clients connected in {:.1}s", origin.elapsed().as_secs_f64());

    let start = Instant::now() + Duration::from_millis(500);
    let stop_at = start + load.duration;
    let mut tasks = Vec::with_capacity(connected);
    for (i, _room, socket) in sockets {
        let (mut tx, mut rx) = socket.split();
        let (sent, delivered, duplicated, acked, latency, ack_latency, last_frame) = (
            sent.clone(),
            delivered.clone(),
            duplicated.clone(),
            acked.clone(),
            latency.clone(),
            ack_latency.clone(),
            last_frame.clone(),
        );
        let every = load.every;
        let offset = every.mul_f64(i as f64 / load.clients as f64);
        let me = format!("{i}-");
        let writer = tokio::spawn(async move {
            tokio::time::sleep_until((start + offset).into()).await;
            let mut seq = 0u64;
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                if Instant::now() >= stop_at {
                    break;
                }
                let stamp = origin.elapsed().as_nanos();
                // The send time twice: in the text (for the others) and the clientMsgId (for the ack).
                let frame = json!({"type": "send", "clientMsgId": format!("{me}{seq}-{stamp}"), "text": format!("{me}{stamp}")});
                if tx.send(Message::Text(frame.to_string().into())).await.is_err() {
                    break;
                }
                sent.fetch_add(1, Ordering::Relaxed);
                seq += 1;
            }
            tx
        });
        let mine = format!("{i}-");
        let reader = tokio::spawn(async move {
            let mut seen = HashSet::new();
            let mut local = Histogram::<u64>::new_with_bounds(1, 600_000_000, 3).expect("constant bounds");
            let mut local_ack = local.clone();
            while let Some(Ok(frame)) = rx.next().await {
                let Message::Text(text) = frame else { continue };
                last_frame.store(origin.elapsed().as_millis() as u64, Ordering::Relaxed);
                // Only the fields looked at, borrowed: the load generator must stay cheaper than
                // what it measures (it shares the machine).
                let Ok(v) = serde_json::from_str::<FrameView<'_>>(text.as_str()) else { continue };
                match v.kind {
                    "message" => {
                        delivered.fetch_add(1, Ordering::Relaxed);
                        let id = v.id.and_then(|id| Uuid::parse_str(id).ok()).unwrap_or_default();
                        if !seen.insert(id) {
                            duplicated.fetch_add(1, Ordering::Relaxed);
                        }
                        let body = v.text.as_deref().unwrap_or_default();
                        if !body.starts_with(&mine)
                            && let Some(ns) = body.split_once('-').and_then(|(_, t)| t.parse::<u128>().ok())
                        {
                            let now = origin.elapsed().as_nanos();
                            let _ = local.record(u64::try_from(now.saturating_sub(ns) / 1_000).unwrap_or(u64::MAX));
                        }
                    }
                    "ack" => {
                        if let Some(ns) =
                            v.client_msg_id.and_then(|c| c.rsplit_once('-')).and_then(|(_, t)| t.parse::<u128>().ok())
                        {
                            let now = origin.elapsed().as_nanos();
                            let _ = local_ack.record(u64::try_from(now.saturating_sub(ns) / 1_000).unwrap_or(u64::MAX));
                        }
                        if let Some(Ok(id)) = v.id.map(Uuid::parse_str) {
                            acked.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(id);
                        }
                    }
                    _ => {}
                }
            }
            let _ = latency.lock().unwrap_or_else(std::sync::PoisonError::into_inner).add(&local);
            let _ = ack_latency.lock().unwrap_or_else(std::sync::PoisonError::into_inner).add(&local_ack);
        });
        tasks.push((writer, reader));
    }
    tokio::time::sleep_until(start.into()).await;
    let cpu_before = super::cpu::Snapshot::take();
    tokio::time::sleep_until(stop_at.into()).await;
    let cpu = cpu_before.cores_until(&super::cpu::Snapshot::take(), labels);
    let sending = stop_at - start;
    // Let the last messages arrive: until nothing came for two seconds (at most 30 s).
    let settle = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let quiet = (origin.elapsed().as_millis() as u64).saturating_sub(last_frame.load(Ordering::Relaxed));
        if quiet > 2_000 || settle.elapsed() > Duration::from_secs(30) {
            break;
        }
    }
    for (writer, reader) in tasks {
        if let Ok(mut tx) = writer.await {
            let _ = tx.close().await;
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), reader).await;
    }
    let latency_us = latency.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
    let ack_us = ack_latency.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
    let acked = acked.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
    Ok(Figures {
        connected,
        sent: sent.load(Ordering::Relaxed),
        acked,
        delivered: delivered.load(Ordering::Relaxed),
        duplicated: duplicated.load(Ordering::Relaxed),
        latency_us,
        ack_us,
        sending,
        cpu,
    })
}

/// A gateway in this process on the in-memory bus, with no persister: the ceiling.
async fn ceiling_gateway(
    keys: Arc<JwtKeys>,
    dir: &std::path::Path,
) -> anyhow::Result<(SocketAddr, tokio::sync::watch::Sender<bool>)> {
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let ctx = platform::service::Context {
        database: DatabaseUrl::SqliteDir(dir.to_owned()),
        db_max_connections: 4,
        counters: platform::counters::Counters::memory(),
        bus: platform::events::EventBus::Memory(Arc::new(platform::events::MemoryBus::new())),
        keys,
        clock: platform::clock::Clock::System,
        forwarded: Arc::new(platform::http::client_ip::ForwardedPolicy::default()),
        stop: stop.clone(),
    };
    let config = ::chat::ChatConfig { chat_send_rate: 100, chat_send_burst: 100, ..::chat::ChatConfig::default() };
    let started = ::chat::start_gateway(&ctx, &config).await?;
    let readiness = platform::http::Readiness::default();
    let server =
        platform::http::Server::new(started.router, json!({}), readiness, &platform::http::HttpSettings::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(server.serve(listener, stop));
    // The gateway is ready once it read the (empty) log.
    tokio::time::sleep(Duration::from_millis(500)).await;
    Ok((addr, stop_tx))
}

pub async fn run(args: ChatBenchArgs) -> anyhow::Result<()> {
    let load = args.load();
    platform::db::create_postgres_database(&args.backends.database_url)
        .await
        .context("cannot prepare the benchmark database")?;
    let run_id = Uuid::new_v4().simple().to_string()[..8].to_owned();
    let secret = super::new_secret();
    let keys =
        Arc::new(JwtKeys::new(&KeyRing(vec![("bench".into(), secret.clone().into_bytes())]), None, "weatherwise")?);
    let env = args.backends.child_env(
        &run_id,
        &secret,
        &[
            ("WW_KAFKA_PARTITIONS", args.partitions.to_string()),
            // The load's own pace is the limit here, not the per-person send rate.
            ("WW_CHAT_SEND_RATE", "100".to_owned()),
            ("WW_CHAT_SEND_BURST", "100".to_owned()),
            ("WW_CHAT_TAIL", "1000".to_owned()),
            // A cluster of this run: its own topic and epoch in the shared benchmark database.
            ("WW_CHAT_CLUSTER", format!("b{run_id}")),
        ],
    );
    let argv = |role: &str, addr: SocketAddr| -> Vec<String> {
        ["serve", role, "--listen", &addr.to_string()].iter().map(|s| (*s).to_owned()).collect()
    };
    let persister_addr = free_addr()?;
    eprintln!("starting `ww serve chat-persister` on {persister_addr}…");
    let persister = ChildProc::start(&argv("chat-persister", persister_addr), &env, persister_addr, "/readyz").await?;
    let mut addrs = Vec::new();
    let mut gateways = Vec::new();
    for _ in 0..args.gateways {
        let addr = free_addr()?;
        eprintln!("starting `ww serve chat-gateway` on {addr}…");
        gateways.push(ChildProc::start(&argv("chat-gateway", addr), &env, addr, "/readyz").await?);
        addrs.push(addr);
    }
    let rooms = format!("b{run_id}");
    eprintln!(
        "{} clients in {} rooms over {} gateways, one message each every {:?}, for {:?}…",
        load.clients, load.rooms, args.gateways, load.every, load.duration
    );
    let mut labels = BTreeMap::from([(std::process::id(), "load generator (ww bench)".to_owned())]);
    labels.extend(persister.pid().map(|p| (p, "ww chat-persister".to_owned())));
    for (i, g) in gateways.iter().enumerate() {
        labels.extend(g.pid().map(|p| (p, format!("ww chat-gateway {}", i + 1))));
    }
    let real = drive(&addrs, &keys, &load, &rooms, &labels).await?;
    let publish = publish_quantiles(&addrs).await;

    // Every acknowledged message must be a row; nothing twice.
    let db = Database::open(
        &DatabaseUrl::Postgres(args.backends.database_url.clone()),
        ::chat::SERVICE,
        4,
        ::chat::migrator(),
    )
    .await?;
    let prefix = format!("{rooms}-");
    let stored = {
        let started = Instant::now();
        let mut last = (0usize, Instant::now());
        loop {
            let ids: HashSet<Uuid> = ::chat::store::ids_in_rooms(&db.pool, &prefix).await?.into_iter().collect();
            let n = ids.len();
            if n != last.0 {
                last = (n, Instant::now());
            }
            // Until every acked message is there, or the count stopped moving (at most 3 min).
            let complete = real.acked.iter().all(|id| ids.contains(id));
            let stalled = last.1.elapsed() > Duration::from_secs(15);
            if (complete && last.1.elapsed() > Duration::from_secs(1))
                || stalled
                || started.elapsed() > Duration::from_secs(180)
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        ::chat::store::ids_in_rooms(&db.pool, &prefix).await?.into_iter().collect::<HashSet<Uuid>>()
    };
    let lost = real.acked.iter().filter(|id| !stored.contains(id)).count();
    drop(persister);
    drop(gateways);

    let ceiling = if args.no_ceiling {
        None
    } else {
        eprintln!("the same load against a gateway in this process on the in-memory bus, no persistence…");
        let dir = std::env::temp_dir().join(format!("ww-bench-chat-{run_id}"));
        std::fs::create_dir_all(&dir)?;
        let (addr, stop) = ceiling_gateway(keys.clone(), &dir).await?;
        let labels = BTreeMap::from([(std::process::id(), "load generator + gateway (ww bench)".to_owned())]);
        let figures = drive(&[addr], &keys, &load, &format!("c{run_id}"), &labels).await?;
        let _ = stop.send(true);
        let _ = std::fs::remove_dir_all(&dir);
        Some(figures)
    };

    let sent_per_s = real.per_s(real.sent);
    let delivered_per_s = real.per_s(real.delivered);
    let ceiling_per_s = ceiling.as_ref().map(|c| c.per_s(c.delivered));
    let ratio = ceiling_per_s.map(|c| delivered_per_s / c.max(1e-9));
    println!("clients          {} connected of {}", real.connected, load.clients);
    println!(
        "sent             {} ({sent_per_s:.0}/s), acked {} ({} not acked: refused or cut off)",
        real.sent,
        real.acked.len(),
        real.sent.saturating_sub(real.acked.len() as u64)
    );
    println!("delivered        {} ({delivered_per_s:.0}/s)", real.delivered);
    println!(
        "latency (ms)     p50 {:.1}  p90 {:.1}  p99 {:.1}  max {:.1}   (send → the other clients of the room)",
        real.ms(0.5),
        real.ms(0.9),
        real.ms(0.99),
        real.latency_us.max() as f64 / 1000.0
    );
    println!(
        "ack (ms)         p50 {:.1}  p99 {:.1}   (send → the sender's ack: the broker has it)",
        real.ack_us.value_at_quantile(0.5) as f64 / 1000.0,
        real.ack_us.value_at_quantile(0.99) as f64 / 1000.0
    );
    if let Some((p50, p99)) = publish {
        println!(
            "publish (ms)     p50 ≤ {p50}  p99 ≤ {p99}   (the gateways' append → the broker's ack; histogram bucket bounds)"
        );
    }
    println!(
        "persisted        {} rows; lost {lost} (acked, no row); duplicated {} (a message shown twice)",
        stored.len(),
        real.duplicated
    );
    println!("cpu (cores)      {}", super::cpu::describe(&real.cpu));
    if let (Some(c), Some(per_s), Some(ratio)) = (&ceiling, ceiling_per_s, ratio) {
        println!(
            "ceiling          {per_s:.0} delivered/s, p99 {:.1} ms (in-process gateway, in-memory bus, no persistence); ratio {ratio:.3}",
            c.ms(0.99)
        );
    }
    if args.json {
        println!(
            "{}",
            json!({
                "shape": format!("{:?}", args.shape).to_lowercase(),
                "clients": real.connected,
                "sent_per_s": round(sent_per_s),
                "delivered_per_s": round(delivered_per_s),
                "p50_ms": round(real.ms(0.5)),
                "p90_ms": round(real.ms(0.9)),
                "p99_ms": round(real.ms(0.99)),
                "max_ms": round(real.latency_us.max() as f64 / 1000.0),
                "ack_p50_ms": round(real.ack_us.value_at_quantile(0.5) as f64 / 1000.0),
                "ack_p99_ms": round(real.ack_us.value_at_quantile(0.99) as f64 / 1000.0),
                "publish_p50_le_ms": publish.map(|p| p.0),
                "publish_p99_le_ms": publish.map(|p| p.1),
                "lost": lost,
                "duplicated": real.duplicated,
                "ceiling_delivered_per_s": ceiling_per_s.map(round),
                "ceiling_p99_ms": ceiling.as_ref().map(|c| round(c.ms(0.99))),
                "ratio": ratio.map(|r| (r * 1000.0).round() / 1000.0),
                "cpu_cores": real.cpu.iter().map(|(l, c)| (l.clone(), json!((c * 100.0).round() / 100.0))).collect::<serde_json::Map<_, _>>(),
            })
        );
    }
    Ok(())
}

/// The upper bounds (ms) of the buckets holding the median and the 99th percentile of the
/// gateways' `chat_publish_seconds`, summed over every gateway's `/metrics`.
async fn publish_quantiles(gateways: &[SocketAddr]) -> Option<(f64, f64)> {
    let mut buckets: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    for addr in gateways {
        let req = super::load::request("GET", *addr, "/metrics", None, None);
        let Ok((200, body)) = super::load::send_raw(*addr, req).await else { continue };
        for line in String::from_utf8_lossy(&body).lines() {
            let Some(rest) = line.strip_prefix("chat_publish_seconds_bucket{le=\"") else { continue };
            let Some((le, count)) = rest.split_once("\"} ") else { continue };
            let bound = if le == "+Inf" { f64::INFINITY } else { le.parse().unwrap_or(f64::INFINITY) };
            let entry = buckets.entry(le.to_owned()).or_insert((bound, 0.0));
            entry.1 += count.trim().parse::<f64>().unwrap_or(0.0);
        }
    }
    let mut sorted: Vec<(f64, f64)> = buckets.into_values().collect();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total = sorted.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let at = |q: f64| sorted.iter().find(|(_, n)| *n >= q * total).map_or(f64::INFINITY, |(le, _)| le * 1000.0);
    Some((at(0.5), at(0.99)))
}

fn round(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}
