//! One socket's conversation, over a stream of incoming and a sink of outgoing frames (the
//! WebSocket adapter is thin; tests use channels).
//!
//! Authenticate (a token from the upgrade, or an `auth` frame within [`AUTH_WITHIN`]) → `ready`
//! → the room's live messages, while the client sends, resumes, re-authenticates and pings. A
//! send is published to the log and acknowledged with its offset only once the broker has it;
//! one socket's sends are published one after the other, so they keep the order they were
//! sent in. The socket is closed with a clear code when its token expires (unless `reauth`
//! brought a later one), within a second of its session's revocation, when it falls too far
//! behind, when pings go unanswered, and with "going away" when the gateway stops.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::{Sink, SinkExt, Stream, StreamExt};
use platform::events::Position;
use tokio::sync::watch;
use tokio::time::Instant;
use uuid::Uuid;

use crate::hub::{Hub, Outbound, Subscription};
use crate::message::message_id;
use crate::protocol::{ClientFrame, MAX_FRAME_BYTES, MessageView, ServerFrame, close, parse};

/// How long a socket may stay unauthenticated.
pub const AUTH_WITHIN: Duration = Duration::from_secs(5);
/// Frames written per flush at most.
const BATCH: usize = 64;

/// A frame from the client, as the transport saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    Text(String),
    Binary,
    Pong,
    /// Over [`MAX_FRAME_BYTES`] (the transport refused it).
    TooBig,
    Close,
}

/// A frame to the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outgoing {
    Text(Outbound),
    Ping,
    Close(u16, String),
}

/// Who is speaking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    pub user_id: Uuid,
    pub session_id: Uuid,
    pub expires_at: DateTime<Utc>,
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    Invalid,
    Expired,
}

/// What a session needs from the gateway around it.
pub trait Gateway: Send + Sync + 'static {
    /// Verifies an access token.
    fn verify(&self, token: &str) -> Result<Identity, Refused>;
    /// Whether the login session was ended.
    fn revoked(&self, session_id: &Uuid) -> bool;
    /// Raised the moment the login session is ended (the revocation event reached this
    /// gateway); [`Gateway::revoked`] is still looked at every second as a fallback.
    fn revocation(&self, session_id: &Uuid) -> Arc<tokio::sync::Notify>;
    /// The display name of a person.
    fn nickname(&self, user_id: &Uuid) -> String;
    /// The epoch of the offsets now.
    fn epoch(&self) -> String;
    /// Appends a sent message to the room's log; returns where it landed once durable.
    fn publish(&self, message: &MessageView) -> impl Future<Output = anyhow::Result<Position>> + Send;
    /// The room's messages with offsets in `(after, before)` from the stored history, in
    /// order — `None` when the history cannot vouch for all of them (not stored yet).
    fn history(
        &self,
        room: &str,
        partition: Option<i32>,
        after: i64,
        before: i64,
    ) -> impl Future<Output = anyhow::Result<Option<Vec<MessageView>>>> + Send;
    fn now(&self) -> DateTime<Utc>;
}

/// A send being published, on its own task: a socket that closes never cancels it halfway
/// (the bus's publish deadline and producer renewal always run to the end). Resolves to the
/// `ack` (or `not-sent`) for the client.
type Publishing = tokio::task::JoinHandle<ServerFrame>;

/// The reply of the send in flight, if any (never resolves when none is).
async fn published(publishing: &mut Option<Publishing>) -> ServerFrame {
    match publishing {
        Some(publish) => publish.await.unwrap_or_else(|_| ServerFrame::Error {
            code: "not-sent".into(),
            message: "the message was not sent; send it again (same clientMsgId)".into(),
            retry_after_ms: Some(1_000),
        }),
        None => std::future::pending().await,
    }
}

/// How long a closing socket waits for its send in flight, to answer it before the close.
const PUBLISH_WAIT_ON_CLOSE: Duration = Duration::from_secs(10);

/// A per-person token bucket shared by a gateway's sockets.
#[derive(Debug)]
pub struct SendLimit {
    per_second: f64,
    burst: f64,
    buckets: Mutex<HashMap<Uuid, (f64, Instant)>>,
}

impl SendLimit {
    pub fn new(per_second: f64, burst: u32) -> Self {
        Self { per_second, burst: f64::from(burst), buckets: Mutex::default() }
    }

    /// Takes one send of `user`; when none is left, how long until one is.
    pub fn take(&self, user: Uuid) -> Result<(), Duration> {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if buckets.len() > 100_000 {
            // Full buckets carry no information: forget them.
            let (rate, burst) = (self.per_second, self.burst);
            buckets.retain(|_, (tokens, at)| *tokens + at.elapsed().as_secs_f64() * rate < burst);
        }
        let (tokens, at) = buckets.entry(user).or_insert((self.burst, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * self.per_second).min(self.burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - *tokens) / self.per_second))
        }
    }
}

/// Settings of every session of a gateway.
#[derive(Debug, Clone, Copy)]
pub struct SessionConfig {
    pub ping_every: Duration,
    /// Pings that may go unanswered before the socket counts as dead.
    pub missed_pings: u32,
    /// How often the session's revocation is looked at.
    pub revocation_check: Duration,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self { ping_every: Duration::from_secs(20), missed_pings: 2, revocation_check: Duration::from_secs(1) }
    }
}

/// Runs one socket in `room` until it closes. `token`: the access token that came with the
/// upgrade, if any.
#[allow(clippy::too_many_arguments)]
pub async fn run<G, I, O>(
    gateway: Arc<G>,
    hub: Arc<Hub>,
    limit: Arc<SendLimit>,
    config: SessionConfig,
    room: String,
    token: Option<String>,
    mut incoming: I,
    mut outgoing: O,
    mut stop: watch::Receiver<bool>,
) where
    G: Gateway,
    I: Stream<Item = Incoming> + Unpin + Send,
    O: Sink<Outgoing> + Unpin + Send,
{
    let closing = |code: u16, reason: &str| Outgoing::Close(code, reason.to_owned());
    let text = |frame: ServerFrame| Outgoing::Text(frame.to_text().into());

    // Authenticate.
    let identity = match token {
        Some(token) => gateway.verify(&token),
        None => match tokio::time::timeout(AUTH_WITHIN, incoming.next()).await {
            Ok(Some(Incoming::Text(t))) => match parse(&t) {
                Ok(ClientFrame::Auth { token }) => gateway.verify(&token),
                _ => Err(Refused::Invalid),
            },
            Ok(Some(Incoming::Close) | None) => return,
            _ => Err(Refused::Invalid),
        },
    };
    let mut identity = match identity {
        Ok(id) if !gateway.revoked(&id.session_id) => id,
        Ok(_) => {
            let _ = outgoing.send(closing(close::SESSION_REVOKED, "the login session was ended")).await;
            return;
        }
        Err(Refused::Expired) => {
            let _ = outgoing.send(closing(close::TOKEN_EXPIRED, "the access token has expired")).await;
            return;
        }
        Err(Refused::Invalid) => {
            let _ = outgoing.send(closing(close::UNAUTHORIZED, "a valid access token is required")).await;
            return;
        }
    };
    let ready = ServerFrame::Ready { room: room.clone(), epoch: gateway.epoch(), user_id: identity.user_id };
    if outgoing.send(text(ready)).await.is_err() {
        return;
    }
    let (mut subscription, _) = hub.subscribe(&room, None);
    let mut ping = tokio::time::interval_at(Instant::now() + config.ping_every, config.ping_every);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut revocation = tokio::time::interval(config.revocation_check);
    revocation.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut unanswered = 0u32;
    // A reconnecting client sends `resume` first: a frame that comes at once is handled before
    // anything queued is written, so a resume is never preceded by live frames it would then
    // receive again.
    let mut pending = match tokio::time::timeout(FIRST_FRAME_WAIT, incoming.next()).await {
        Ok(None) => return,
        Ok(Some(frame)) => Some(frame),
        Err(_) => None,
    };

    // One timer for the token's expiry, moved when `reauth` brings a later token (not a new
    // timer per frame: a busy room writes tens of frames a second per socket).
    let expiry_at =
        |identity: &Identity| Instant::now() + (identity.expires_at - gateway.now()).to_std().unwrap_or(Duration::ZERO);
    let mut expires = identity.expires_at;
    let expiry = tokio::time::sleep_until(expiry_at(&identity));
    tokio::pin!(expiry);
    let mut session = identity.session_id;
    let mut revoked = gateway.revocation(&session);
    // A send waits for the broker's acknowledgement without holding up the room: the socket
    // goes on writing the room's frames meanwhile; the client's next frame is read once the
    // ack is out (one send in flight per socket keeps a person's messages in their order).
    let mut publishing: Option<Publishing> = None;
    loop {
        if identity.expires_at != expires {
            expires = identity.expires_at;
            expiry.as_mut().reset(expiry_at(&identity));
        }
        if identity.session_id != session {
            // `reauth` with a token of another login session of the same person.
            session = identity.session_id;
            revoked = gateway.revocation(&session);
        }
        let reason = if let Some(frame) = pending.take() {
            match on_frame(
                &gateway,
                &hub,
                &limit,
                &room,
                &mut identity,
                &mut subscription,
                &mut unanswered,
                frame,
                &mut outgoing,
                &mut publishing,
            )
            .await
            {
                Some(Ok(())) => None,
                Some(Err(reason)) => Some(reason),
                None => return,
            }
        } else {
            tokio::select! {
                biased;
                // An answered send is written before anything closes the socket.
                reply = published(&mut publishing), if publishing.is_some() => {
                    publishing = None;
                    if outgoing.send(text(reply)).await.is_err() { return; }
                    None
                }
                () = stopped(&mut stop) => Some((close::GOING_AWAY, "the gateway is shutting down; reconnect")),
                _ = subscription.too_slow.notified() => Some((close::TOO_SLOW, "too far behind; reconnect and resume")),
                () = &mut expiry => Some((close::TOKEN_EXPIRED, "the access token has expired")),
                () = revoked.notified() => Some((close::SESSION_REVOKED, "the login session was ended")),
                _ = revocation.tick() => {
                    gateway.revoked(&identity.session_id).then_some((close::SESSION_REVOKED, "the login session was ended"))
                }
                _ = ping.tick() => {
                    if unanswered >= config.missed_pings {
                        Some((close::DEAD, "pings went unanswered"))
                    } else {
                        unanswered += 1;
                        if outgoing.send(Outgoing::Ping).await.is_err() { return; }
                        None
                    }
                }
                // The client's frames before the room's: a busy room must not starve its sends
                // and pongs.
                frame = incoming.next(), if publishing.is_none() => {
                    let Some(frame) = frame else { return };
                    match on_frame(&gateway, &hub, &limit, &room, &mut identity, &mut subscription, &mut unanswered, frame, &mut outgoing, &mut publishing).await {
                        Some(Ok(())) => None,
                        Some(Err(reason)) => Some(reason),
                        None => return,
                    }
                }
                frame = subscription.rx.recv() => {
                    let Some(frame) = frame else { return };
                    match tokio::time::timeout(WRITE_WITHIN, write_batch(&mut outgoing, &mut subscription, frame)).await {
                        Ok(Ok(())) => None,
                        Ok(Err(_)) => return,
                        // The client does not read: it is too slow, whatever its queue says.
                        Err(_) => Some((close::TOO_SLOW, "too far behind; reconnect and resume")),
                    }
                }
            }
        };
        if let Some((code, reason)) = reason {
            // The send in flight is answered first: its ack (or not-sent) tells the client
            // whether to send it again elsewhere.
            if publishing.is_some()
                && let Ok(reply) = tokio::time::timeout(PUBLISH_WAIT_ON_CLOSE, published(&mut publishing)).await
            {
                let _ = tokio::time::timeout(WRITE_WITHIN, outgoing.send(text(reply))).await;
            }
            let _ = tokio::time::timeout(WRITE_WITHIN, outgoing.send(closing(code, reason))).await;
            return;
        }
    }
}

/// How long a new socket's first frame is waited for before live frames flow.
const FIRST_FRAME_WAIT: Duration = Duration::from_millis(250);
/// A write the client does not take within this long closes the socket as too slow.
const WRITE_WITHIN: Duration = Duration::from_secs(10);

/// Handles one frame from the client: `None` when the connection is gone, `Some(Err)` to close
/// with that code and reason.
#[allow(clippy::too_many_arguments)]
async fn on_frame<G: Gateway, O: Sink<Outgoing> + Unpin>(
    gateway: &Arc<G>,
    hub: &Hub,
    limit: &SendLimit,
    room: &str,
    identity: &mut Identity,
    subscription: &mut Subscription,
    unanswered: &mut u32,
    frame: Incoming,
    outgoing: &mut O,
    publishing: &mut Option<Publishing>,
) -> Option<Result<(), (u16, &'static str)>> {
    match frame {
        Incoming::Close => None,
        Incoming::Binary => Some(Err((close::UNSUPPORTED, "only JSON text frames are spoken"))),
        Incoming::TooBig => Some(Err((close::TOO_BIG, "frames are at most 16 KiB"))),
        Incoming::Pong => {
            *unanswered = 0;
            Some(Ok(()))
        }
        Incoming::Text(t) => {
            *unanswered = 0;
            if t.len() > MAX_FRAME_BYTES {
                return Some(Err((close::TOO_BIG, "frames are at most 16 KiB")));
            }
            Some(handle(gateway, hub, limit, room, identity, subscription, &t, outgoing, publishing).await)
        }
    }
}

/// Resolves once the gateway is stopping.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Writes `first` and whatever else is queued (up to [`BATCH`]), then flushes once.
async fn write_batch<O: Sink<Outgoing> + Unpin>(
    outgoing: &mut O,
    subscription: &mut Subscription,
    first: Outbound,
) -> Result<(), O::Error> {
    outgoing.feed(Outgoing::Text(first)).await?;
    for _ in 1..BATCH {
        match subscription.rx.try_recv() {
            Ok(frame) => outgoing.feed(Outgoing::Text(frame)).await?,
            Err(_) => break,
        }
    }
    outgoing.flush().await
}

/// Handles one text frame; `Err` closes the socket with that code and reason. A send that
/// goes to the broker leaves its reply to `publishing`.
#[allow(clippy::too_many_arguments)]
async fn handle<G: Gateway, O: Sink<Outgoing> + Unpin>(
    gateway: &Arc<G>,
    hub: &Hub,
    limit: &SendLimit,
    room: &str,
    identity: &mut Identity,
    subscription: &mut Subscription,
    text: &str,
    outgoing: &mut O,
    publishing: &mut Option<Publishing>,
) -> Result<(), (u16, &'static str)> {
    let gone = (close::GOING_AWAY, "");
    let send = |frame: ServerFrame| Outgoing::Text(frame.to_text().into());
    let frame = match parse(text) {
        Ok(frame) => frame,
        Err(e) => {
            return outgoing.send(send(ServerFrame::error(e.code(), e.to_string()))).await.map_err(|_| gone);
        }
    };
    let reply = match frame {
        ClientFrame::Ping => ServerFrame::Pong,
        ClientFrame::Auth { .. } => ServerFrame::error("already-authenticated", "this socket is authenticated already"),
        ClientFrame::Reauth { token } => match gateway.verify(&token) {
            Ok(fresh) if fresh.user_id == identity.user_id => {
                *identity = fresh;
                return Ok(());
            }
            Ok(_) => ServerFrame::error("reauth-refused", "the token is another person's"),
            Err(Refused::Expired) => ServerFrame::error("token-expired", "the new token has expired already"),
            Err(Refused::Invalid) => ServerFrame::error("invalid-token", "the new token is not valid"),
        },
        ClientFrame::Send { client_msg_id, text } => {
            if let Err(wait) = limit.take(identity.user_id) {
                let retry = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX).max(1);
                ServerFrame::Error {
                    code: "rate-limited".into(),
                    message: "too many messages; wait a moment".into(),
                    retry_after_ms: Some(retry),
                }
            } else {
                let message = MessageView {
                    room: room.to_owned(),
                    offset: 0,
                    id: message_id(identity.user_id, &client_msg_id),
                    user_id: identity.user_id,
                    nickname: gateway.nickname(&identity.user_id),
                    text,
                    sent_at: gateway.now(),
                };
                let gateway = gateway.clone();
                debug_assert!(publishing.is_none(), "one send in flight per socket");
                *publishing = Some(tokio::spawn(async move {
                    match gateway.publish(&message).await {
                        Ok(position) => {
                            metrics::counter!("chat_messages_sent_total").increment(1);
                            ServerFrame::Ack { client_msg_id, id: message.id, offset: position.offset }
                        }
                        Err(e) => {
                            tracing::warn!(error = %format!("{e:#}"), room = %message.room, "a message could not be published");
                            ServerFrame::Error {
                                code: "not-sent".into(),
                                message: format!("`{client_msg_id}` was not sent; send it again (same clientMsgId)"),
                                retry_after_ms: Some(1_000),
                            }
                        }
                    }
                }));
                return Ok(());
            }
        }
        ClientFrame::Resume { epoch, since_offset } => {
            let recovered = if epoch != gateway.epoch() {
                false
            } else {
                resume(gateway.as_ref(), hub, room, since_offset, subscription, outgoing).await?
            };
            ServerFrame::Resumed { recovered }
        }
    };
    outgoing.send(send(reply)).await.map_err(|_| gone)
}

/// Re-joins the room from `after`: the stored history up to the ring when the ring alone does
/// not reach back, then the ring, then live. Returns whether nothing was missed.
async fn resume<G: Gateway, O: Sink<Outgoing> + Unpin>(
    gateway: &G,
    hub: &Hub,
    room: &str,
    after: i64,
    subscription: &mut Subscription,
    outgoing: &mut O,
) -> Result<bool, (u16, &'static str)> {
    let gone = (close::GOING_AWAY, "");
    let (fresh, backlog) = hub.subscribe(room, Some(after));
    // The old subscription's queued frames are covered by the backlog or come again live.
    *subscription = fresh;
    let mut complete = backlog.complete;
    let first_in_ring = backlog.entries.first().map(|e| e.offset);
    if !complete && let Some(ring_from) = backlog.ring_from.or(first_in_ring) {
        match gateway.history(room, backlog.partition, after, ring_from).await {
            Ok(Some(older)) => {
                for m in older {
                    let frame: Outbound = ServerFrame::Message(m).to_text().into();
                    outgoing.feed(Outgoing::Text(frame)).await.map_err(|_| gone)?;
                }
                complete = true;
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %format!("{e:#}"), room, "history unavailable for a resume"),
        }
    }
    if complete {
        for entry in &backlog.entries {
            outgoing.feed(Outgoing::Text(entry.frame.clone())).await.map_err(|_| gone)?;
        }
    }
    Ok(complete)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

    use futures::channel::mpsc;

    use super::*;
    use crate::hub::HubConfig;

    /// A gateway whose log is a counter that fans out at once (as the consumer would).
    struct Fake {
        hub: Arc<Hub>,
        next: AtomicI64,
        revoked: AtomicBool,
        stored: Mutex<Vec<MessageView>>,
        fail_publish: AtomicBool,
        revocation: Arc<tokio::sync::Notify>,
        /// While held, publishes of user 1 wait for the broker (a permit per acknowledgement).
        held: AtomicBool,
        acks: tokio::sync::Semaphore,
    }

    const GOOD: &str = "good";
    const SHORT: &str = "short";
    const OTHER: &str = "other";

    impl Gateway for Fake {
        fn verify(&self, token: &str) -> Result<Identity, Refused> {
            let user_id = if token == OTHER { Uuid::from_u128(2) } else { Uuid::from_u128(1) };
            let ttl = match token {
                GOOD | OTHER => chrono::TimeDelta::minutes(15),
                SHORT => chrono::TimeDelta::milliseconds(300),
                "later" => chrono::TimeDelta::minutes(30),
                "expired" => return Err(Refused::Expired),
                _ => return Err(Refused::Invalid),
            };
            Ok(Identity { user_id, session_id: Uuid::from_u128(7), expires_at: Utc::now() + ttl })
        }
        fn revoked(&self, _: &Uuid) -> bool {
            self.revoked.load(Ordering::SeqCst)
        }
        fn revocation(&self, _: &Uuid) -> Arc<tokio::sync::Notify> {
            self.revocation.clone()
        }
        fn nickname(&self, _: &Uuid) -> String {
            "kim".into()
        }
        fn epoch(&self) -> String {
            "e1".into()
        }
        async fn publish(&self, message: &MessageView) -> anyhow::Result<Position> {
            anyhow::ensure!(!self.fail_publish.load(Ordering::SeqCst), "broker down");
            if self.held.load(Ordering::SeqCst) && message.user_id == Uuid::from_u128(1) {
                self.acks.acquire().await?.forget();
            }
            let position = Position { partition: 0, offset: self.next.fetch_add(1, Ordering::SeqCst) };
            self.hub.fan_out(position, message.clone());
            self.stored.lock().unwrap().push(MessageView { offset: position.offset, ..message.clone() });
            Ok(position)
        }
        async fn history(
            &self,
            _: &str,
            _: Option<i32>,
            after: i64,
            before: i64,
        ) -> anyhow::Result<Option<Vec<MessageView>>> {
            let stored = self.stored.lock().unwrap();
            Ok(Some(stored.iter().filter(|m| m.offset > after && m.offset < before).cloned().collect()))
        }
        fn now(&self) -> DateTime<Utc> {
            Utc::now()
        }
    }

    struct Client {
        tx: mpsc::UnboundedSender<Incoming>,
        rx: mpsc::UnboundedReceiver<Outgoing>,
    }

    impl Client {
        fn say(&self, frame: serde_json::Value) {
            self.tx.unbounded_send(Incoming::Text(frame.to_string())).unwrap();
        }

        /// The next frame, as JSON (`{"close": code}` for a close).
        async fn next(&mut self) -> serde_json::Value {
            loop {
                let frame = tokio::time::timeout(Duration::from_secs(5), self.rx.next()).await.expect("a frame in 5 s");
                match frame {
                    Some(Outgoing::Text(t)) => return serde_json::from_str(&t).unwrap(),
                    Some(Outgoing::Close(code, _)) => return serde_json::json!({"close": code}),
                    Some(Outgoing::Ping) => continue,
                    None => return serde_json::json!({"ended": true}),
                }
            }
        }
    }

    struct Setup {
        fake: Arc<Fake>,
        hub: Arc<Hub>,
        limit: Arc<SendLimit>,
        stop: watch::Sender<bool>,
    }

    impl Setup {
        fn new() -> Self {
            let hub = Arc::new(Hub::new(HubConfig { ring: 4, queue: 64 }));
            hub.partition_starts(0, 0);
            let fake = Arc::new(Fake {
                hub: hub.clone(),
                next: AtomicI64::new(0),
                revoked: AtomicBool::new(false),
                stored: Mutex::default(),
                fail_publish: AtomicBool::new(false),
                revocation: Arc::default(),
                held: AtomicBool::new(false),
                acks: tokio::sync::Semaphore::new(0),
            });
            let (stop, _) = watch::channel(false);
            Self { fake, hub, limit: Arc::new(SendLimit::new(5.0, 10)), stop }
        }

        fn connect(&self, room: &str, token: Option<&str>, config: SessionConfig) -> Client {
            let (tx, incoming) = mpsc::unbounded();
            let (outgoing, rx) = mpsc::unbounded();
            tokio::spawn(run(
                self.fake.clone(),
                self.hub.clone(),
                self.limit.clone(),
                config,
                room.to_owned(),
                token.map(str::to_owned),
                incoming,
                outgoing,
                self.stop.subscribe(),
            ));
            Client { tx, rx }
        }
    }

    fn send(id: &str, text: &str) -> serde_json::Value {
        serde_json::json!({"type": "send", "clientMsgId": id, "text": text})
    }

    #[tokio::test]
    async fn a_sent_message_is_acked_with_its_offset_and_reaches_everyone_in_the_room_in_order() {
        let s = Setup::new();
        let mut a = s.connect("lobby", Some(GOOD), SessionConfig::default());
        let mut b = s.connect("lobby", None, SessionConfig::default());
        b.say(serde_json::json!({"type": "auth", "token": OTHER}));
        assert_eq!(a.next().await["type"], "ready");
        let ready = b.next().await;
        assert_eq!((ready["type"].as_str(), ready["epoch"].as_str()), (Some("ready"), Some("e1")));
        // b is in the room once its ready came; a ping round trip proves its subscription.
        b.say(serde_json::json!({"type": "ping"}));
        assert_eq!(b.next().await["type"], "pong");
        for i in 0..3 {
            a.say(send(&format!("c{i}"), &format!("hello {i}")));
        }
        let mut acks = Vec::new();
        let mut seen_by_a = Vec::new();
        while acks.len() < 3 || seen_by_a.len() < 3 {
            let f = a.next().await;
            match f["type"].as_str() {
                Some("ack") => acks.push(f["offset"].as_i64().unwrap()),
                Some("message") => seen_by_a.push(f["offset"].as_i64().unwrap()),
                other => panic!("unexpected {other:?}: {f}"),
            }
        }
        assert_eq!(acks, [0, 1, 2], "acked in the order sent");
        assert_eq!(seen_by_a, [0, 1, 2]);
        let mut seen_by_b = Vec::new();
        for _ in 0..3 {
            let f = b.next().await;
            assert_eq!(f["type"], "message");
            assert_eq!(f["nickname"], "kim");
            seen_by_b.push((f["offset"].as_i64().unwrap(), f["text"].as_str().unwrap().to_owned()));
        }
        assert_eq!(seen_by_b, [(0, "hello 0".into()), (1, "hello 1".into()), (2, "hello 2".into())]);
    }

    #[tokio::test]
    async fn the_room_keeps_flowing_to_a_socket_whose_send_awaits_the_broker() {
        let s = Setup::new();
        s.fake.held.store(true, Ordering::SeqCst);
        let mut a = s.connect("lobby", Some(GOOD), SessionConfig::default());
        let mut b = s.connect("lobby", Some(OTHER), SessionConfig::default());
        for c in [&mut a, &mut b] {
            assert_eq!(c.next().await["type"], "ready");
            c.say(serde_json::json!({"type": "ping"}));
            assert_eq!(c.next().await["type"], "pong");
        }
        // a's send waits for the broker; meanwhile b talks, and a sees it at once.
        a.say(send("slow", "waiting for the broker"));
        a.say(serde_json::json!({"type": "ping"}));
        for i in 0..3 {
            b.say(send(&format!("b{i}"), &format!("from b {i}")));
        }
        for i in 0..3 {
            let f = a.next().await;
            assert_eq!(
                (f["type"].as_str(), f["text"].as_str()),
                (Some("message"), Some(format!("from b {i}").as_str()))
            );
        }
        // a's next frame (the ping) is read only once its send is answered: one send in
        // flight per socket keeps a person's messages in order.
        s.fake.acks.add_permits(1);
        let mut after = Vec::new();
        while after.len() < 3 {
            after.push(a.next().await["type"].as_str().unwrap().to_owned());
        }
        let at = |t: &str| after.iter().position(|x| x == t).unwrap_or_else(|| panic!("no {t} in {after:?}"));
        assert!(at("ack") < at("pong"), "the ping is answered after the send: {after:?}");
        at("message");
    }

    #[tokio::test]
    async fn a_socket_closed_while_its_send_awaits_the_broker_answers_the_send_first() {
        let s = Setup::new();
        s.fake.held.store(true, Ordering::SeqCst);
        let mut a = s.connect("lobby", Some(GOOD), SessionConfig::default());
        assert_eq!(a.next().await["type"], "ready");
        a.say(serde_json::json!({"type": "ping"}));
        assert_eq!(a.next().await["type"], "pong");
        a.say(send("last", "sent as the gateway stops"));
        tokio::time::sleep(Duration::from_millis(50)).await;
        let _ = s.stop.send(true);
        tokio::time::sleep(Duration::from_millis(50)).await;
        s.fake.acks.add_permits(1);
        let mut frames = Vec::new();
        loop {
            let f = a.next().await;
            let closed = f.get("close").is_some();
            frames.push(f);
            if closed {
                break;
            }
        }
        let ack = frames.iter().position(|f| f["type"] == "ack").unwrap_or_else(|| panic!("no ack: {frames:?}"));
        assert_eq!(frames[ack]["clientMsgId"], "last");
        assert_eq!(frames.last().unwrap()["close"], close::GOING_AWAY, "then going away: {frames:?}");
        assert_eq!(s.fake.stored.lock().unwrap().len(), 1, "the message is in the log once");
    }

    #[tokio::test]
    async fn a_retried_send_is_one_message() {
        let s = Setup::new();
        let mut a = s.connect("lobby", Some(GOOD), SessionConfig::default());
        assert_eq!(a.next().await["type"], "ready");
        a.say(send("same", "once"));
        a.say(send("same", "once"));
        let mut messages = 0;
        let mut acks = 0;
        while acks < 2 {
            match a.next().await["type"].as_str() {
                Some("ack") => acks += 1,
                Some("message") => messages += 1,
                _ => {}
            }
        }
        a.say(serde_json::json!({"type": "ping"}));
        loop {
            match a.next().await["type"].as_str() {
                Some("pong") => break,
                Some("message") => messages += 1,
                _ => {}
            }
        }
        assert_eq!(messages, 1, "shown once");
    }

    #[tokio::test]
    async fn bad_frames_get_error_frames_and_the_socket_and_room_go_on() {
        let s = Setup::new();
        let mut a = s.connect("lobby", Some(GOOD), SessionConfig::default());
        assert_eq!(a.next().await["type"], "ready");
        a.tx.unbounded_send(Incoming::Text("{nope".into())).unwrap();
        assert_eq!(a.next().await["code"], "malformed-frame");
        a.say(serde_json::json!({"type": "dance"}));
        assert_eq!(a.next().await["code"], "unknown-frame");
        a.say(send("c1", ""));
        assert_eq!(a.next().await["code"], "invalid-frame");
        a.say(serde_json::json!({"type": "auth", "token": GOOD}));
        assert_eq!(a.next().await["code"], "already-authenticated");
        a.say(send("c2", "still here"));
        let mut got = Vec::new();
        for _ in 0..2 {
            got.push(a.next().await["type"].as_str().unwrap().to_owned());
        }
        got.sort();
        assert_eq!(got, ["ack", "message"]);
        // A binary frame closes this socket only.
        let mut b = s.connect("lobby", Some(GOOD), SessionConfig::default());
        assert_eq!(b.next().await["type"], "ready");
        b.tx.unbounded_send(Incoming::Binary).unwrap();
        assert_eq!(b.next().await["close"], close::UNSUPPORTED);
        let mut c = s.connect("lobby", Some(GOOD), SessionConfig::default());
        assert_eq!(c.next().await["type"], "ready");
        c.tx.unbounded_send(Incoming::TooBig).unwrap();
        assert_eq!(c.next().await["close"], close::TOO_BIG);
        a.say(send("c3", "after the others closed"));
        let mut types = Vec::new();
        for _ in 0..2 {
            types.push(a.next().await["type"].as_str().unwrap().to_owned());
        }
        types.sort();
        assert_eq!(types, ["ack", "message"]);
    }

    #[tokio::test]
    async fn no_valid_token_closes_with_a_clear_code() {
        let s = Setup::new();
        assert_eq!(
            s.connect("lobby", Some("forged"), SessionConfig::default()).next().await["close"],
            close::UNAUTHORIZED
        );
        assert_eq!(
            s.connect("lobby", Some("expired"), SessionConfig::default()).next().await["close"],
            close::TOKEN_EXPIRED
        );
        let mut late = s.connect("lobby", None, SessionConfig::default());
        late.say(serde_json::json!({"type": "send", "clientMsgId": "c", "text": "before auth"}));
        assert_eq!(late.next().await["close"], close::UNAUTHORIZED);
        s.fake.revoked.store(true, Ordering::SeqCst);
        assert_eq!(
            s.connect("lobby", Some(GOOD), SessionConfig::default()).next().await["close"],
            close::SESSION_REVOKED
        );
    }

    #[tokio::test]
    async fn an_expiring_token_closes_the_socket_unless_reauth_brings_a_later_one() {
        let s = Setup::new();
        let mut quiet = s.connect("lobby", Some(SHORT), SessionConfig::default());
        assert_eq!(quiet.next().await["type"], "ready");
        assert_eq!(quiet.next().await["close"], close::TOKEN_EXPIRED);
        let mut renewed = s.connect("lobby", Some(SHORT), SessionConfig::default());
        assert_eq!(renewed.next().await["type"], "ready");
        renewed.say(serde_json::json!({"type": "reauth", "token": OTHER}));
        assert_eq!(renewed.next().await["code"], "reauth-refused", "another person's token");
        renewed.say(serde_json::json!({"type": "reauth", "token": "later"}));
        tokio::time::sleep(Duration::from_millis(500)).await;
        renewed.say(serde_json::json!({"type": "ping"}));
        assert_eq!(renewed.next().await["type"], "pong", "still open past the first token's expiry");
    }

    #[tokio::test]
    async fn a_revocation_event_closes_the_socket_at_once() {
        let s = Setup::new();
        let mut a = s.connect(
            "lobby",
            Some(GOOD),
            SessionConfig { revocation_check: Duration::from_secs(3600), ..SessionConfig::default() },
        );
        assert_eq!(a.next().await["type"], "ready");
        let started = std::time::Instant::now();
        s.fake.revocation.notify_one();
        assert_eq!(a.next().await["close"], close::SESSION_REVOKED);
        assert!(started.elapsed() < Duration::from_millis(300), "{:?}", started.elapsed());
    }

    #[tokio::test]
    async fn a_revoked_session_is_closed_within_a_second() {
        let s = Setup::new();
        let mut a = s.connect("lobby", Some(GOOD), SessionConfig::default());
        assert_eq!(a.next().await["type"], "ready");
        let started = std::time::Instant::now();
        s.fake.revoked.store(true, Ordering::SeqCst);
        assert_eq!(a.next().await["close"], close::SESSION_REVOKED);
        assert!(started.elapsed() < Duration::from_millis(1_500));
    }

    #[tokio::test]
    async fn dead_sockets_are_closed_and_stopping_says_going_away() {
        let s = Setup::new();
        let fast_pings =
            SessionConfig { ping_every: Duration::from_millis(50), missed_pings: 2, ..SessionConfig::default() };
        let (tx, incoming) = mpsc::unbounded::<Incoming>();
        let (outgoing, mut rx) = mpsc::unbounded();
        tokio::spawn(run(
            s.fake.clone(),
            s.hub.clone(),
            s.limit.clone(),
            fast_pings,
            "lobby".into(),
            Some(GOOD.into()),
            incoming,
            outgoing,
            s.stop.subscribe(),
        ));
        let mut pings = 0;
        let code = loop {
            match tokio::time::timeout(Duration::from_secs(5), rx.next()).await.unwrap() {
                Some(Outgoing::Ping) => pings += 1,
                Some(Outgoing::Close(code, _)) => break code,
                _ => {}
            }
        };
        drop(tx);
        assert_eq!((code, pings), (close::DEAD, 2));
        let mut a = s.connect("lobby", Some(GOOD), SessionConfig::default());
        assert_eq!(a.next().await["type"], "ready");
        s.stop.send(true).unwrap();
        assert_eq!(a.next().await["close"], close::GOING_AWAY);
    }

    #[tokio::test]
    async fn a_resume_delivers_exactly_what_was_missed_from_the_ring_and_the_stored_history() {
        let s = Setup::new();
        let mut writer = s.connect("lobby", Some(OTHER), SessionConfig::default());
        assert_eq!(writer.next().await["type"], "ready");
        for i in 0..10 {
            writer.say(send(&format!("w{i}"), &format!("m{i}")));
        }
        let mut acked = 0;
        while acked < 10 {
            if writer.next().await["type"] == "ack" {
                acked += 1;
            }
        }
        // Saw up to offset 2; the ring holds only 6..=9, the rest comes from the history.
        let mut back = s.connect("lobby", Some(GOOD), SessionConfig::default());
        assert_eq!(back.next().await["type"], "ready");
        back.say(serde_json::json!({"type": "resume", "epoch": "e1", "sinceOffset": 2}));
        let mut offsets = Vec::new();
        let recovered = loop {
            let f = back.next().await;
            match f["type"].as_str() {
                Some("message") => offsets.push(f["offset"].as_i64().unwrap()),
                Some("resumed") => break f["recovered"].as_bool().unwrap(),
                other => panic!("unexpected {other:?}"),
            }
        };
        assert!(recovered);
        assert_eq!(offsets, (3..10).collect::<Vec<_>>(), "no gap, no duplicate");
        // Live messages follow (once the writer's burst of ten has refilled a little).
        tokio::time::sleep(Duration::from_millis(300)).await;
        writer.say(send("w10", "live"));
        loop {
            let f = back.next().await;
            if f["type"] == "message" {
                assert_eq!(f["offset"], 10);
                break;
            }
        }
        // Another epoch: the client must reload.
        back.say(serde_json::json!({"type": "resume", "epoch": "e0", "sinceOffset": 2}));
        loop {
            let f = back.next().await;
            if f["type"] == "resumed" {
                assert_eq!(f["recovered"], false);
                break;
            }
        }
    }

    #[tokio::test]
    async fn sends_beyond_the_rate_limit_and_failed_publishes_are_refused_clearly() {
        let s = Setup::new();
        let mut a = s.connect("lobby", Some(GOOD), SessionConfig::default());
        assert_eq!(a.next().await["type"], "ready");
        for i in 0..12 {
            a.say(send(&format!("r{i}"), "spam"));
        }
        let (mut acks, mut limited) = (0, 0);
        while acks + limited < 12 {
            let f = a.next().await;
            match (f["type"].as_str(), f["code"].as_str()) {
                (Some("ack"), _) => acks += 1,
                (Some("error"), Some("rate-limited")) => {
                    assert!(f["retryAfterMs"].as_u64().unwrap() > 0);
                    limited += 1;
                }
                _ => {}
            }
        }
        assert_eq!((acks, limited), (10, 2), "a burst of 10, then refused");
        s.fake.fail_publish.store(true, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(400)).await;
        a.say(send("down", "while the broker is down"));
        loop {
            let f = a.next().await;
            if f["type"] == "error" {
                assert_eq!(f["code"], "not-sent");
                break;
            }
        }
    }
}
