//! The gateway role (`ww serve chat-gateway`): `GET /ws/chat/{room}` upgrades to a WebSocket
//! whose conversation is [`crate::session`]. The gateway reads every partition of its
//! cluster's topic itself — a window of recent messages at start, then live — and fans each
//! message out to its own sockets in the room ([`crate::hub`]), so a room spans gateways and
//! keeps the log's order on each.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::Router;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use chrono::{DateTime, Utc};
use futures::{SinkExt, StreamExt};
use platform::auth::JwtKeys;
use platform::clock::Clock;
use platform::db::Database;
use platform::events::contracts::{
    CHAT_MESSAGE_DELETED, CHAT_MESSAGE_SENT, ChatMessageDeleted, ChatMessageSent, USER_PROFILE_UPDATED,
    USER_REGISTERED, UserProfileUpdated, UserRegistered,
};
use platform::events::{Envelope, EventBus, Handler, Position};
use tokio::sync::watch;
use uuid::Uuid;

use crate::hub::Hub;
use crate::protocol::{MAX_FRAME_BYTES, MessageView, close};
use crate::room::is_room_name;
use crate::session::{self, Identity, Incoming, Outgoing, Refused, SendLimit, SessionConfig};
use crate::store::{self, Epoch};

/// The subprotocol the gateway speaks (and answers with).
pub const SUBPROTOCOL: &str = "ww.chat.v1";
/// A subprotocol entry carrying the access token: `ww.bearer.<token>`.
pub const BEARER_PREFIX: &str = "ww.bearer.";

/// The display names of people, from the identity and profile events (replayed at start, then
/// followed), so a message names its sender without a call on the send path.
#[derive(Default)]
pub struct Nicknames {
    names: RwLock<HashMap<Uuid, String>>,
}

impl Nicknames {
    pub fn get(&self, user: &Uuid) -> Option<String> {
        self.names.read().unwrap_or_else(std::sync::PoisonError::into_inner).get(user).cloned()
    }

    pub fn set(&self, user: Uuid, nickname: String) {
        self.names.write().unwrap_or_else(std::sync::PoisonError::into_inner).insert(user, nickname);
    }
}

/// Feeds [`Nicknames`] from the identity and profile topics.
pub struct NicknameFeed(pub Arc<Nicknames>);

impl Handler for NicknameFeed {
    async fn handle(&self, event: &Envelope) -> anyhow::Result<()> {
        match event.kind.as_str() {
            USER_REGISTERED => {
                if let Some(r) = event.decode_or_skip::<UserRegistered>() {
                    // A later profile edit wins over the name given at signup.
                    if self.0.get(&r.user_id).is_none() {
                        self.0.set(r.user_id, r.nickname);
                    }
                }
            }
            USER_PROFILE_UPDATED => {
                if let Some(u) = event.decode_or_skip::<UserProfileUpdated>() {
                    self.0.set(u.user_id, u.nickname);
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// The sockets of each login session on this gateway, to close them the moment the session
/// ends (`SessionRevoked` reaches the gateway), not at the next look at the deny-list.
#[derive(Default)]
pub struct Revocations {
    sockets: std::sync::Mutex<HashMap<Uuid, Vec<std::sync::Weak<tokio::sync::Notify>>>>,
}

impl Revocations {
    /// The signal of one socket of `session`.
    pub fn register(&self, session: Uuid) -> Arc<tokio::sync::Notify> {
        let signal = Arc::new(tokio::sync::Notify::new());
        let mut sockets = self.sockets.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if sockets.len() > 10_000 {
            // Sessions whose sockets all closed carry nothing.
            sockets.retain(|_, list| list.iter().any(|w| w.strong_count() > 0));
        }
        let list = sockets.entry(session).or_default();
        list.retain(|w| w.strong_count() > 0);
        list.push(Arc::downgrade(&signal));
        signal
    }

    /// Raises the signal of every socket of `session`.
    pub fn revoke(&self, session: &Uuid) -> usize {
        let list = self.sockets.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(session);
        list.into_iter().flatten().filter_map(|w| w.upgrade()).map(|signal| signal.notify_one()).count()
    }
}

/// Feeds [`Revocations`] from `SessionRevoked` (every gateway reads them all).
pub struct RevocationFeed(pub Arc<Revocations>);

impl Handler for RevocationFeed {
    async fn handle(&self, event: &Envelope) -> anyhow::Result<()> {
        if event.kind == platform::events::contracts::SESSION_REVOKED
            && let Some(r) = event.decode_or_skip::<platform::events::contracts::SessionRevoked>()
        {
            self.0.revoke(&r.session_id);
        }
        Ok(())
    }
}

/// Hands what the log carries to the hub.
pub struct Fanout {
    pub hub: Arc<Hub>,
}

impl Handler for Fanout {
    fn reading_from(&self, from: Position) {
        self.hub.partition_starts(from.partition, from.offset);
    }

    async fn handle(&self, event: &Envelope) -> anyhow::Result<()> {
        let Some(position) = event.position else { return Ok(()) };
        match event.kind.as_str() {
            CHAT_MESSAGE_SENT => {
                if let Some(m) = event.decode_or_skip::<ChatMessageSent>() {
                    let view = MessageView {
                        room: m.room,
                        offset: position.offset,
                        id: m.id,
                        user_id: m.user_id,
                        nickname: m.nickname,
                        text: m.text,
                        sent_at: m.sent_at,
                    };
                    self.hub.fan_out(position, view);
                }
            }
            CHAT_MESSAGE_DELETED => {
                self.hub.partition_starts(position.partition, position.offset);
                if let Some(d) = event.decode_or_skip::<ChatMessageDeleted>() {
                    self.hub.delete(&d.room, d.id);
                }
            }
            _ => self.hub.partition_starts(position.partition, position.offset),
        }
        Ok(())
    }
}

/// What the sessions of one gateway share.
pub struct ChatGateway {
    pub keys: Arc<JwtKeys>,
    pub bus: EventBus,
    pub topic: String,
    pub db: Database,
    pub cluster: String,
    pub epoch: Arc<RwLock<Epoch>>,
    pub nicknames: Arc<Nicknames>,
    pub revocations: Arc<Revocations>,
    pub clock: Clock,
}

impl ChatGateway {
    fn current_epoch(&self) -> Epoch {
        self.epoch.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }
}

impl session::Gateway for ChatGateway {
    fn verify(&self, token: &str) -> Result<Identity, Refused> {
        match self.keys.verify(token) {
            Ok(claims) => Ok(Identity {
                user_id: claims.sub,
                session_id: claims.sid,
                expires_at: DateTime::from_timestamp(claims.exp, 0).unwrap_or_default(),
            }),
            Err(e) if e.code() == "token-expired" => Err(Refused::Expired),
            Err(_) => Err(Refused::Invalid),
        }
    }

    fn revoked(&self, session_id: &Uuid) -> bool {
        self.keys.revoked().is_revoked(session_id)
    }

    fn revocation(&self, session_id: &Uuid) -> Arc<tokio::sync::Notify> {
        self.revocations.register(*session_id)
    }

    fn nickname(&self, user_id: &Uuid) -> String {
        self.nicknames.get(user_id).unwrap_or_else(|| format!("user-{}", &user_id.simple().to_string()[..6]))
    }

    fn epoch(&self) -> String {
        self.current_epoch().token
    }

    async fn publish(&self, message: &MessageView) -> anyhow::Result<Position> {
        let sent = ChatMessageSent {
            id: message.id,
            room: message.room.clone(),
            user_id: message.user_id,
            nickname: message.nickname.clone(),
            text: message.text.clone(),
            sent_at: message.sent_at,
        };
        let envelope = Envelope::new(CHAT_MESSAGE_SENT, "chat-gateway", message.sent_at, &sent)?;
        // The broker's part of a send's acknowledgement, as this gateway sees it.
        let started = std::time::Instant::now();
        let appended = self.bus.append(&self.topic, &message.room, &envelope).await;
        metrics::histogram!("chat_publish_seconds").record(started.elapsed().as_secs_f64());
        Ok(appended?)
    }

    async fn history(
        &self,
        room: &str,
        partition: Option<i32>,
        after: i64,
        before: i64,
    ) -> anyhow::Result<Option<Vec<MessageView>>> {
        let epoch = self.current_epoch();
        // The rows vouch for every offset below the persister's progress on the partition
        // (every partition when the room's is not known).
        let progress = store::all_progress(&self.db.pool, &self.cluster, &epoch).await?;
        let covered = match partition {
            Some(p) => progress.iter().any(|(q, next)| *q == p && *next >= before),
            None => {
                progress.len() == usize::try_from(epoch.partitions)? && progress.iter().all(|(_, next)| *next >= before)
            }
        };
        if !covered {
            return Ok(None);
        }
        // A resume reaching further back than this is a reload, not a catch-up.
        let rows = store::between(&self.db.pool, &self.cluster, &epoch, room, after, before, RESUME_MAX + 1).await?;
        Ok((i64::try_from(rows.len())? <= RESUME_MAX).then_some(rows))
    }

    fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }
}

/// The state of the WebSocket route.
#[derive(Clone)]
pub struct GatewayState {
    pub gateway: Arc<ChatGateway>,
    pub hub: Arc<Hub>,
    pub limit: Arc<SendLimit>,
    pub session: SessionConfig,
    /// Rooms outside it belong to another ChatCluster and are refused.
    pub room_prefix: String,
    pub stop: watch::Receiver<bool>,
}

pub fn router(state: GatewayState) -> Router {
    Router::new().route("/ws/chat/{room}", get(upgrade)).with_state(state)
}

/// The access token of an upgrade: a `ww.bearer.<token>` subprotocol entry (browsers cannot set
/// headers on a WebSocket) or `Authorization: Bearer` — never the URL.
pub fn upgrade_token(headers: &HeaderMap) -> Option<String> {
    let from_protocol = headers
        .get_all(axum::http::header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .find_map(|p| p.strip_prefix(BEARER_PREFIX))
        .map(str::to_owned);
    from_protocol.or_else(|| {
        headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::to_owned)
    })
}

async fn upgrade(
    State(state): State<GatewayState>,
    Path(room): Path<String>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let token = upgrade_token(&headers);
    ws.protocols([SUBPROTOCOL])
        .max_message_size(MAX_FRAME_BYTES)
        .max_frame_size(MAX_FRAME_BYTES)
        .on_upgrade(move |socket| serve(state, room, token, socket))
}

async fn serve(state: GatewayState, room: String, token: Option<String>, socket: WebSocket) {
    let (mut sink, stream) = socket.split();
    let refused = if !is_room_name(&room) {
        Some(crate::room::ROOM_NAME_RULE.to_owned())
    } else if !room.starts_with(&state.room_prefix) {
        Some(format!("this chat cluster serves rooms named {}…", state.room_prefix))
    } else {
        None
    };
    if let Some(reason) = refused {
        let frame = CloseFrame { code: close::BAD_ROOM, reason: reason.into() };
        let _ = sink.send(Message::Close(Some(frame))).await;
        return;
    }
    let incoming = stream.map(|m| match m {
        Ok(Message::Text(t)) => Incoming::Text(t.as_str().to_owned()),
        Ok(Message::Binary(_)) => Incoming::Binary,
        Ok(Message::Pong(_)) => Incoming::Pong,
        // Pings are answered by the transport.
        Ok(Message::Ping(_)) => Incoming::Pong,
        Ok(Message::Close(_)) => Incoming::Close,
        Err(e) if is_too_big(&e) => Incoming::TooBig,
        Err(_) => Incoming::Close,
    });
    let outgoing = sink.with(|o: Outgoing| {
        std::future::ready(Ok::<_, axum::Error>(match o {
            Outgoing::Text(t) => Message::Text(t.as_ref().into()),
            Outgoing::Ping => Message::Ping(Default::default()),
            Outgoing::Close(code, reason) => Message::Close(Some(CloseFrame { code, reason: reason.into() })),
        }))
    });
    metrics::gauge!("chat_sockets").increment(1.0);
    session::run(
        state.gateway.clone(),
        state.hub.clone(),
        state.limit.clone(),
        state.session,
        room,
        token,
        Box::pin(incoming),
        Box::pin(outgoing),
        state.stop.clone(),
    )
    .await;
    metrics::gauge!("chat_sockets").decrement(1.0);
}

fn is_too_big(e: &axum::Error) -> bool {
    let text = e.to_string();
    text.contains("Space limit exceeded") || text.contains("too long") || text.contains("too big")
}

/// The most messages a resume replays from the stored history (beyond, `recovered:false`).
pub const RESUME_MAX: i64 = 5_000;

/// How often the gateway looks at the cluster's epoch (the persister rotates it).
pub const EPOCH_POLL: Duration = Duration::from_secs(5);
