//! Real-time chat (`docs/decisions/0010-chat-design.md`): gateways that take WebSockets,
//! produce each sent message to the cluster's topic keyed by room (so a room keeps one order)
//! and fan out what the topic carries to their own sockets in the room; a persister that
//! writes the messages to SQL; history and moderation over HTTP.
//!
//! The protocol ([`protocol`]), the room names ([`room`]), the message identity
//! ([`message`]), the local rooms of one gateway ([`hub`]) and a socket's conversation
//! ([`session`]) are written over plain values, streams and sinks, so they are tested without
//! a network.

pub mod gateway;
pub mod http;
pub mod hub;
pub mod message;
pub mod persister;
pub mod presence;
pub mod protocol;
pub mod recent;
pub mod room;
pub mod session;
pub mod store;

use std::sync::{Arc, RwLock};
use std::time::Duration;

use platform::db::Database;
use platform::events::contracts::topics;
use platform::service::{Context, Started};

use crate::gateway::{ChatGateway, EPOCH_POLL, Fanout, GatewayState, NicknameFeed, Nicknames};
use crate::hub::{Hub, HubConfig};
use crate::persister::Persister;
use crate::recent::Recent;
use crate::session::{SendLimit, SessionConfig};

pub const SERVICE: &str = "chat";

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Settings of the chat roles.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Chat")]
pub struct ChatConfig {
    /// The ChatCluster these roles serve: its rooms are on its own topic (`default` uses
    /// `chat.messages`, any other `chat.<cluster>.messages`).
    #[arg(long, env = "WW_CHAT_CLUSTER", default_value = "default", value_parser = parse_cluster)]
    pub chat_cluster: String,
    /// Messages each gateway reads back per partition at start (what resumes find in its rings).
    #[arg(long, env = "WW_CHAT_TAIL", default_value_t = 20_000, value_parser = clap::value_parser!(i64).range(0..=10_000_000))]
    pub chat_tail: i64,
    /// Recent messages a gateway keeps per room for resumes and duplicates.
    #[arg(long, env = "WW_CHAT_RING", default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub chat_ring: u64,
    /// Frames queued per socket before it counts as too slow and is closed.
    #[arg(long, env = "WW_CHAT_SOCKET_QUEUE", default_value_t = 1_024, value_parser = clap::value_parser!(u64).range(8..=1_000_000))]
    pub chat_socket_queue: u64,
    /// Messages a person may send per second (sustained), per gateway.
    #[arg(long, env = "WW_CHAT_SEND_RATE", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=1_000))]
    pub chat_send_rate: u32,
    /// Messages a person may send at once before the rate applies.
    #[arg(long, env = "WW_CHAT_SEND_BURST", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub chat_send_burst: u32,
    /// Newest messages per room the persister keeps in Redis for the history's first page.
    #[arg(long, env = "WW_CHAT_HISTORY_SIZE", default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub chat_history_size: u64,
    /// The start every room name this cluster's gateways serve begins with (the ingress routes
    /// `/ws/chat/{prefix}…` here); empty: any room (the default cluster takes the rest).
    #[arg(long, env = "WW_CHAT_ROOM_PREFIX", default_value = "", value_parser = parse_prefix)]
    pub chat_room_prefix: String,
    /// Most messages the persister writes in one transaction.
    #[arg(long, env = "WW_CHAT_PERSIST_BATCH", default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..=5_000))]
    pub chat_persist_batch: u64,
}

impl Default for ChatConfig {
    fn default() -> Self {
        Self {
            chat_cluster: "default".into(),
            chat_tail: 20_000,
            chat_ring: 1_000,
            chat_socket_queue: 1_024,
            chat_send_rate: 5,
            chat_send_burst: 10,
            chat_history_size: 100,
            chat_room_prefix: String::new(),
            chat_persist_batch: 500,
        }
    }
}

fn parse_cluster(raw: &str) -> Result<String, String> {
    if room::is_room_name(raw) && raw.len() <= 40 {
        Ok(raw.to_owned())
    } else {
        Err("a cluster name is 1 to 40 lowercase letters, digits, '-' or '_'".to_owned())
    }
}

fn parse_prefix(raw: &str) -> Result<String, String> {
    if raw.is_empty() || (room::is_room_name(raw) && raw.len() <= 40) {
        Ok(raw.to_owned())
    } else {
        Err("a room prefix is empty or 1 to 40 lowercase letters, digits, '-' or '_'".to_owned())
    }
}

impl ChatConfig {
    /// The cluster's topic.
    pub fn topic(&self) -> String {
        if self.chat_cluster == "default" {
            topics::CHAT_MESSAGES.to_owned()
        } else {
            format!("chat.{}.messages", self.chat_cluster)
        }
    }
}

async fn open(ctx: &Context, config: &ChatConfig) -> anyhow::Result<(Database, String, store::Epoch)> {
    let db = Database::open(&ctx.database, SERVICE, ctx.db_max_connections, &MIGRATOR).await?;
    let topic = config.topic();
    ctx.bus.ensure_topics(&[&topic, topics::IDENTITY, topics::PROFILES, topics::SESSIONS_REVOKED]).await?;
    let partitions = ctx.bus.partitions(&topic).await?;
    let epoch = store::ensure_epoch(&db.pool, &config.chat_cluster, partitions, ctx.clock.now()).await?;
    Ok((db, topic, epoch))
}

/// The `chat-gateway` role.
pub async fn start_gateway(ctx: &Context, config: &ChatConfig) -> anyhow::Result<Started> {
    let (db, topic, epoch) = open(ctx, config).await?;
    let hub = Arc::new(Hub::new(HubConfig {
        ring: usize::try_from(config.chat_ring)?,
        queue: usize::try_from(config.chat_socket_queue)?,
    }));
    let nicknames = Arc::new(Nicknames::default());
    let (names_task, names_ready) = ctx.bus.spawn_replay(
        "chat-gateway.nicknames",
        &[topics::IDENTITY, topics::PROFILES],
        NicknameFeed(nicknames.clone()),
        ctx.stop.clone(),
    );
    let (tail_task, mut tail_ready) = ctx.bus.spawn_tail(
        "chat-gateway.tail",
        &[&topic],
        config.chat_tail,
        Fanout { hub: hub.clone() },
        ctx.stop.clone(),
    );
    let caught_up = {
        let hub = hub.clone();
        tokio::spawn(async move {
            if tail_ready.wait_for(|c| *c).await.is_ok() {
                hub.mark_caught_up();
            }
        })
    };
    let epoch = Arc::new(RwLock::new(epoch));
    let revocations = Arc::new(gateway::Revocations::default());
    let revocation_task = ctx.bus.spawn_broadcast(
        "chat-gateway.revocations",
        &[topics::SESSIONS_REVOKED],
        gateway::RevocationFeed(revocations.clone()),
        ctx.stop.clone(),
    );
    let gateway = Arc::new(ChatGateway {
        keys: ctx.keys.clone(),
        bus: ctx.bus.clone(),
        topic,
        db: db.clone(),
        cluster: config.chat_cluster.clone(),
        epoch: epoch.clone(),
        nicknames,
        revocations,
        clock: ctx.clock.clone(),
    });
    let poll =
        tokio::spawn(follow_epoch(db.clone(), config.chat_cluster.clone(), epoch, hub.clone(), ctx.stop.clone()));
    let presence_store = match ctx.counters.redis_connection() {
        Some((conn, prefix)) => {
            presence::PresenceStore::Redis { conn, prefix: format!("{prefix}chat:{}:", config.chat_cluster) }
        }
        None => presence::PresenceStore::memory(&config.chat_cluster),
    };
    let presence = tokio::spawn(presence::run(
        presence_store,
        uuid::Uuid::new_v4().simple().to_string(),
        hub.clone(),
        ctx.stop.clone(),
    ));
    let state = GatewayState {
        gateway,
        hub: hub.clone(),
        limit: Arc::new(SendLimit::new(f64::from(config.chat_send_rate), config.chat_send_burst)),
        session: SessionConfig::default(),
        room_prefix: config.chat_room_prefix.clone(),
        stop: ctx.stop.clone(),
    };
    let ready_hub = hub.clone();
    let readiness = vec![
        db.readiness(),
        ctx.bus.readiness(),
        platform::http::ReadinessCheck::new("chat-log", move || {
            let hub = ready_hub.clone();
            async move { if hub.is_caught_up() { Ok(()) } else { Err("reading the chat log".to_owned()) } }
        }),
        platform::http::ReadinessCheck::new("nicknames", move || {
            let ready = *names_ready.borrow();
            async move { if ready { Ok(()) } else { Err("reading the profiles".to_owned()) } }
        }),
    ];
    Ok(Started {
        name: "chat-gateway",
        router: gateway::router(state),
        openapi: utoipa::openapi::OpenApi::default(),
        readiness,
        tasks: vec![names_task, tail_task, caught_up, poll, presence, revocation_task],
    })
}

/// Follows the cluster's epoch (the persister rotates it); on a change the rings start over.
async fn follow_epoch(
    db: Database,
    cluster: String,
    epoch: Arc<RwLock<store::Epoch>>,
    hub: Arc<Hub>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(EPOCH_POLL) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        match store::current_epoch(&db.pool, &cluster).await {
            Ok(Some(now)) => {
                let changed = epoch.read().unwrap_or_else(std::sync::PoisonError::into_inner).token != now.token;
                if changed {
                    tracing::warn!(cluster = %cluster, epoch = now.number, "new chat epoch: the rings start over");
                    // Rings first: no resume may pair the new epoch with old offsets.
                    hub.reset();
                    *epoch.write().unwrap_or_else(std::sync::PoisonError::into_inner) = now;
                }
            }
            Ok(None) => {}
            Err(e) => tracing::debug!(error = %e, "could not read the chat epoch"),
        }
    }
}

/// How often the persister checks that the log is the one its epoch names.
const EPOCH_CHECK: Duration = Duration::from_secs(10);

/// The newest messages per room: in Redis when the process has it, else in memory.
fn recent(ctx: &Context, config: &ChatConfig) -> anyhow::Result<Arc<Recent>> {
    let keep = usize::try_from(config.chat_history_size)?;
    Ok(Arc::new(match ctx.counters.redis_connection() {
        Some((conn, prefix)) => Recent::redis(conn, format!("{prefix}chat:{}:", config.chat_cluster), keep),
        None => Recent::memory(keep),
    }))
}

#[derive(utoipa::OpenApi)]
#[openapi(
    paths(http::list_rooms, http::create_room, http::messages, http::delete_message),
    tags((name = "chat", description = "Chat rooms, history and moderation (messages go over `GET /ws/chat/{room}`)"))
)]
struct ChatDoc;

/// The `chat` role: rooms, history pages and moderation over HTTP.
pub async fn start_chat(ctx: &Context, config: &ChatConfig) -> anyhow::Result<Started> {
    use utoipa::OpenApi as _;
    let (db, topic, _) = open(ctx, config).await?;
    let state = http::ChatState {
        db: db.clone(),
        keys: ctx.keys.clone(),
        bus: ctx.bus.clone(),
        topic,
        cluster: config.chat_cluster.clone(),
        recent: recent(ctx, config)?,
        clock: ctx.clock.clone(),
    };
    let mut readiness = vec![db.readiness(), ctx.bus.readiness()];
    readiness.extend(ctx.counters.readiness());
    Ok(Started { name: "chat", router: http::router(state), openapi: ChatDoc::openapi(), readiness, tasks: Vec::new() })
}

/// The `chat-persister` role.
pub async fn start_persister(ctx: &Context, config: &ChatConfig) -> anyhow::Result<Started> {
    let (db, topic, epoch) = open(ctx, config).await?;
    let recent = recent(ctx, config)?;
    let persister =
        Arc::new(Persister::new(db.clone(), &config.chat_cluster, &topic, epoch, recent, ctx.clock.clone()));
    let checker = {
        let (persister, bus, mut stop) = (persister.clone(), ctx.bus.clone(), ctx.stop.clone());
        tokio::spawn(async move {
            loop {
                if let Err(e) = persister.check_epoch(&bus).await {
                    tracing::warn!(error = %format!("{e:#}"), "could not check the chat epoch");
                }
                tokio::select! {
                    _ = tokio::time::sleep(EPOCH_CHECK) => {}
                    _ = stop.wait_for(|s| *s) => return,
                }
            }
        })
    };
    let group = format!("chat-persister.{}", config.chat_cluster);
    let consumer = ctx.bus.spawn_consumer(
        &group,
        &[&topic],
        SharedPersister { persister, batch: usize::try_from(config.chat_persist_batch).unwrap_or(usize::MAX) },
        ctx.stop.clone(),
    );
    let mut readiness = vec![db.readiness(), ctx.bus.readiness()];
    readiness.extend(ctx.counters.readiness());
    Ok(Started {
        name: "chat-persister",
        router: axum::Router::new(),
        openapi: utoipa::openapi::OpenApi::default(),
        readiness,
        tasks: vec![checker, consumer],
    })
}

/// The persister shared with its epoch checker.
struct SharedPersister {
    persister: Arc<Persister>,
    batch: usize,
}

impl platform::events::Handler for SharedPersister {
    async fn handle(&self, event: &platform::events::Envelope) -> anyhow::Result<()> {
        self.persister.handle(event).await
    }

    async fn handle_batch(&self, events: &[platform::events::Envelope]) -> anyhow::Result<()> {
        self.persister.handle_batch(events).await
    }

    fn max_batch(&self) -> usize {
        self.batch
    }
}

/// Chat's migrations (the roles and the tests open its database with them).
pub fn migrator() -> &'static sqlx::migrate::Migrator {
    &MIGRATOR
}
