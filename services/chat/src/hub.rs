//! The rooms of one gateway: its sockets in each room, each room's recent messages (a ring,
//! which also drops duplicates), and the fan-out of what the log carries to those sockets.
//!
//! One message is serialized once and shared by every socket's queue. Queues are bounded: a
//! socket whose queue is full is dropped from the room and told to close (too slow) — it
//! never holds the room back. A room's lock is held only to append to its ring and hand the
//! frame to the queues, so rooms never wait on each other.
//!
//! Completeness, for resumes: the gateway reads every partition of the topic from some offset
//! on (its start), so for each room it knows the offset from which it has seen every message
//! — the partition's first offset read, or, once the ring dropped old messages, the offset
//! after the last one dropped. A resume from before that cannot be served from the ring alone.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use platform::events::Position;
use tokio::sync::{Notify, mpsc};
use uuid::Uuid;

use crate::protocol::{MessageView, ServerFrame};

/// Sizes of one gateway's rooms.
#[derive(Debug, Clone, Copy)]
pub struct HubConfig {
    /// Recent messages kept per room (for resumes and duplicates).
    pub ring: usize,
    /// Frames queued per socket before it counts as too slow.
    pub queue: usize,
}

impl Default for HubConfig {
    fn default() -> Self {
        Self { ring: 1_000, queue: 1_024 }
    }
}

/// A frame on its way to a socket: serialized once, shared.
pub type Outbound = Arc<str>;

/// One message as the ring keeps it.
#[derive(Debug)]
pub struct Entry {
    pub offset: i64,
    pub id: Uuid,
    /// The `message` frame, serialized.
    pub frame: Outbound,
}

/// A socket's place in a room.
struct Subscriber {
    tx: mpsc::Sender<Outbound>,
    /// Raised when the socket fell too far behind and was dropped from the room.
    too_slow: Arc<Notify>,
    /// The client resumed having seen the room up to this offset: messages at or below it are
    /// not sent again (a gateway whose reading is behind the one the client came from reads
    /// them later).
    seen_through: Option<i64>,
}

#[derive(Default)]
struct RoomState {
    sockets: HashMap<u64, Subscriber>,
    ring: VecDeque<Arc<Entry>>,
    /// Ids of the room's last messages (a window [`DEDUPE_RINGS`] times the ring: ids only, no
    /// frames) and of those deleted: a second copy of one is dropped.
    ids: HashSet<Uuid>,
    /// The window's ids, oldest first.
    recent: VecDeque<Uuid>,
    /// From this offset on, every message of the room this gateway read is in the ring.
    complete_from: Option<i64>,
    /// The highest offset seen (older records re-read are ignored).
    last_offset: Option<i64>,
    /// The partition the room's messages are on, once one was seen.
    partition: Option<i32>,
}

/// How many rings' worth of message ids a room remembers to drop second copies. A message sent
/// again after its acknowledgement was lost (a broker outage) lands far after its first copy —
/// about 170 records later in the broker drill — so the window is wider than the ring it would
/// otherwise be; ids are 16 bytes, frames hundreds.
pub const DEDUPE_RINGS: usize = 4;

/// What a new socket gets: the messages after the offset it asked from that the ring holds,
/// and whether those are all there are.
#[derive(Debug)]
pub struct Backlog {
    pub entries: Vec<Arc<Entry>>,
    /// Every message of the room after the offset asked from is in `entries`.
    pub complete: bool,
    /// When not complete: the offset from which the ring is complete (older ones are elsewhere).
    pub ring_from: Option<i64>,
    /// The room's partition, when known.
    pub partition: Option<i32>,
}

/// A socket subscribed to a room: its queue and its slow-reader signal. Dropping it leaves
/// the room.
pub struct Subscription {
    pub id: u64,
    pub room: Arc<Room>,
    pub rx: mpsc::Receiver<Outbound>,
    pub too_slow: Arc<Notify>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.room.state().sockets.remove(&self.id);
    }
}

pub struct Room {
    name: String,
    state: Mutex<RoomState>,
}

impl Room {
    fn state(&self) -> std::sync::MutexGuard<'_, RoomState> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Sockets of this gateway in the room.
    pub fn local_sockets(&self) -> usize {
        self.state().sockets.len()
    }
}

/// The rooms of one gateway.
pub struct Hub {
    config: HubConfig,
    rooms: RwLock<HashMap<String, Arc<Room>>>,
    /// The first offset read per partition (the gateway has seen every message from there).
    starts: RwLock<HashMap<i32, i64>>,
    /// The log was read to the end it had at start (readiness; never unset).
    caught_up: std::sync::atomic::AtomicBool,
    next_socket: AtomicU64,
}

/// What happened to one message handed to the hub.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fanned {
    /// Delivered to this many local sockets.
    Delivered(usize),
    /// A message already seen (a retried send, or a record read again): dropped.
    Duplicate,
}

impl Hub {
    pub fn new(config: HubConfig) -> Self {
        Self {
            config,
            rooms: RwLock::default(),
            starts: RwLock::default(),
            caught_up: std::sync::atomic::AtomicBool::new(false),
            next_socket: AtomicU64::new(1),
        }
    }

    fn room(&self, name: &str) -> Arc<Room> {
        if let Some(room) = self.rooms.read().unwrap_or_else(std::sync::PoisonError::into_inner).get(name) {
            return room.clone();
        }
        let mut rooms = self.rooms.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        rooms
            .entry(name.to_owned())
            .or_insert_with(|| Arc::new(Room { name: name.to_owned(), state: Mutex::default() }))
            .clone()
    }

    /// Notes that `partition` is read from `offset` on: every message of a room on it from
    /// there is seen. Only the first call per partition counts.
    pub fn partition_starts(&self, partition: i32, offset: i64) {
        self.starts.write().unwrap_or_else(std::sync::PoisonError::into_inner).entry(partition).or_insert(offset);
    }

    /// Forgets every room's ring (the epoch changed: the offsets it held mean nothing now);
    /// resumes go to the stored history until new messages fill the rings again.
    pub fn reset(&self) {
        let rooms: Vec<Arc<Room>> =
            self.rooms.read().unwrap_or_else(std::sync::PoisonError::into_inner).values().cloned().collect();
        for room in rooms {
            let mut state = room.state();
            state.ring.clear();
            state.ids.clear();
            state.recent.clear();
            state.complete_from = None;
            state.last_offset = None;
            state.partition = None;
        }
        self.starts.write().unwrap_or_else(std::sync::PoisonError::into_inner).clear();
    }

    /// The log was read to the end it had when reading started.
    pub fn mark_caught_up(&self) {
        self.caught_up.store(true, Ordering::SeqCst);
    }

    pub fn is_caught_up(&self) -> bool {
        self.caught_up.load(Ordering::SeqCst)
    }

    /// Hands a message read from the log at `position` to the room's sockets.
    pub fn fan_out(&self, position: Position, message: MessageView) -> Fanned {
        self.partition_starts(position.partition, position.offset);
        let room = self.room(&message.room);
        let id = message.id;
        let offset = position.offset;
        let frame: Outbound = ServerFrame::Message(MessageView { offset, ..message }).to_text().into();
        let mut state = room.state();
        if state.ids.contains(&id) {
            metrics::counter!("chat_fanout_duplicates_total").increment(1);
            return Fanned::Duplicate;
        }
        if state.last_offset.is_some_and(|last| offset <= last) {
            // The log reads each record once, in order: an offset going back means the topic
            // was re-created. What the ring held belongs to the old log.
            tracing::warn!(room = %room.name, offset, "offsets went back: the log was re-created; the room's ring starts over");
            state.ring.clear();
            state.ids.clear();
            state.recent.clear();
            state.complete_from = Some(offset);
            for subscriber in state.sockets.values_mut() {
                subscriber.seen_through = None;
            }
        }
        if state.complete_from.is_none() {
            let start = self.partition_start(position.partition).unwrap_or(offset);
            state.complete_from = Some(start.min(offset));
        }
        state.last_offset = Some(offset);
        state.partition = Some(position.partition);
        remember(&mut state, id, self.config.ring.saturating_mul(DEDUPE_RINGS));
        state.ring.push_back(Arc::new(Entry { offset, id, frame: frame.clone() }));
        while state.ring.len() > self.config.ring {
            if let Some(old) = state.ring.pop_front() {
                state.complete_from = Some(old.offset + 1);
            }
        }
        Fanned::Delivered(push(&mut state, &frame, Some(offset)))
    }

    /// A message removed by a moderator: out of the ring (its id stays known, so a duplicate
    /// record of it is not shown again) and out of every local view.
    pub fn delete(&self, room: &str, id: Uuid) -> usize {
        let room = self.room(room);
        let frame: Outbound = ServerFrame::Deleted { room: room.name.clone(), id }.to_text().into();
        let mut state = room.state();
        state.ring.retain(|e| e.id != id);
        if !state.ids.contains(&id) {
            remember(&mut state, id, self.config.ring.saturating_mul(DEDUPE_RINGS));
        }
        push(&mut state, &frame, None)
    }

    /// Sends `frame` to every local socket of `room` (presence updates).
    pub fn broadcast(&self, room: &str, frame: &ServerFrame) -> usize {
        let room = self.room(room);
        let frame: Outbound = frame.to_text().into();
        push(&mut room.state(), &frame, None)
    }

    fn partition_start(&self, partition: i32) -> Option<i64> {
        self.starts.read().unwrap_or_else(std::sync::PoisonError::into_inner).get(&partition).copied()
    }

    /// Joins `room`: the ring's messages after `after` (`None`: none, live only) and the
    /// subscription, taken under the room's lock so nothing falls between the two.
    pub fn subscribe(&self, room: &str, after: Option<i64>) -> (Subscription, Backlog) {
        let room = self.room(room);
        let id = self.next_socket.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(self.config.queue);
        let too_slow = Arc::new(Notify::new());
        let backlog = {
            let mut state = room.state();
            state.sockets.insert(id, Subscriber { tx, too_slow: too_slow.clone(), seen_through: after });
            match after {
                None => Backlog { entries: Vec::new(), complete: true, ring_from: None, partition: state.partition },
                Some(after) => {
                    let entries: Vec<Arc<Entry>> = state.ring.iter().filter(|e| e.offset > after).cloned().collect();
                    // Complete when this gateway saw every message of the room after `after`:
                    // from the ring's complete point on, or — a room it has no message of —
                    // from every partition's start on (the room's partition is not known, and
                    // at or past the latest start is past its own).
                    let from = state.complete_from.or_else(|| self.latest_start());
                    let complete = from.is_some_and(|from| after + 1 >= from);
                    Backlog { entries, complete, ring_from: from, partition: state.partition }
                }
            }
        };
        (Subscription { id, room, rx, too_slow }, backlog)
    }

    /// The latest partition start: a room with no message read since then had none.
    fn latest_start(&self) -> Option<i64> {
        self.starts.read().unwrap_or_else(std::sync::PoisonError::into_inner).values().copied().max()
    }

    /// Local socket counts of the rooms that have sockets.
    pub fn local_counts(&self) -> Vec<(String, usize)> {
        let rooms: Vec<Arc<Room>> =
            self.rooms.read().unwrap_or_else(std::sync::PoisonError::into_inner).values().cloned().collect();
        rooms.into_iter().map(|r| (r.name.clone(), r.local_sockets())).filter(|(_, n)| *n > 0).collect()
    }
}

/// Adds `id` to the room's dedupe window of `window` ids, forgetting the oldest beyond it.
fn remember(state: &mut RoomState, id: Uuid, window: usize) {
    if state.ids.insert(id) {
        state.recent.push_back(id);
    }
    while state.recent.len() > window.max(1) {
        if let Some(old) = state.recent.pop_front() {
            state.ids.remove(&old);
        }
    }
}

/// Queues `frame` (the message at `offset`, if it is one) for every socket of the room that has
/// not seen it; a socket whose queue is full leaves the room and is told it is too slow.
/// Returns the sockets reached.
fn push(state: &mut RoomState, frame: &Outbound, offset: Option<i64>) -> usize {
    let mut slow = Vec::new();
    let mut reached = 0;
    for (id, subscriber) in &state.sockets {
        if let (Some(offset), Some(seen)) = (offset, subscriber.seen_through)
            && offset <= seen
        {
            continue;
        }
        match subscriber.tx.try_send(frame.clone()) {
            Ok(()) => reached += 1,
            Err(mpsc::error::TrySendError::Full(_)) => slow.push(*id),
            // The socket is going away; its subscription removes it.
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }
    for id in slow {
        if let Some(subscriber) = state.sockets.remove(&id) {
            metrics::counter!("chat_sockets_too_slow_total").increment(1);
            subscriber.too_slow.notify_one();
        }
    }
    reached
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;

    fn msg(room: &str, n: u128) -> MessageView {
        MessageView {
            room: room.to_owned(),
            offset: 0,
            id: Uuid::from_u128(n),
            user_id: Uuid::from_u128(99),
            nickname: "kim".into(),
            text: format!("m{n}"),
            sent_at: Utc::now(),
        }
    }

    fn at(offset: i64) -> Position {
        Position { partition: 0, offset }
    }

    fn offsets(frames: &[Outbound]) -> Vec<i64> {
        frames
            .iter()
            .map(|f| serde_json::from_str::<serde_json::Value>(f).unwrap()["offset"].as_i64().unwrap())
            .collect()
    }

    fn drain(sub: &mut Subscription) -> Vec<Outbound> {
        let mut out = Vec::new();
        while let Ok(f) = sub.rx.try_recv() {
            out.push(f);
        }
        out
    }

    #[test]
    fn a_message_reaches_every_socket_of_its_room_once_and_no_other() {
        let hub = Hub::new(HubConfig::default());
        let (mut a, _) = hub.subscribe("lobby", None);
        let (mut b, _) = hub.subscribe("lobby", None);
        let (mut other, _) = hub.subscribe("elsewhere", None);
        assert_eq!(hub.fan_out(at(10), msg("lobby", 1)), Fanned::Delivered(2));
        // The same message again (a retried send, a record read twice) is dropped.
        assert_eq!(hub.fan_out(at(11), msg("lobby", 1)), Fanned::Duplicate);
        assert_eq!(offsets(&drain(&mut a)), [10]);
        assert_eq!(offsets(&drain(&mut b)), [10]);
        // Offsets going back (a re-created topic): delivered, and the ring starts over.
        assert_eq!(hub.fan_out(at(0), msg("lobby", 2)), Fanned::Delivered(2));
        let (_, backlog) = hub.subscribe("lobby", Some(-1));
        assert_eq!(backlog.entries.iter().map(|e| e.offset).collect::<Vec<_>>(), [0]);
        assert!(drain(&mut other).is_empty());
    }

    #[tokio::test]
    async fn a_socket_that_falls_behind_is_dropped_and_the_room_goes_on() {
        let hub = Hub::new(HubConfig { ring: 100, queue: 2 });
        let (slow, _) = hub.subscribe("lobby", None);
        let (mut fast, _) = hub.subscribe("lobby", None);
        for i in 0..3 {
            hub.fan_out(at(i), msg("lobby", i as u128 + 1));
            drain(&mut fast);
        }
        assert_eq!(slow.room.local_sockets(), 1, "the slow one left the room");
        assert_eq!(hub.fan_out(at(3), msg("lobby", 4)), Fanned::Delivered(1));
        assert_eq!(offsets(&drain(&mut fast)), [3]);
        // Its signal was raised: a waiter sees it at once.
        let waited = tokio::time::timeout(std::time::Duration::from_millis(100), slow.too_slow.notified()).await;
        assert!(waited.is_ok());
    }

    #[tokio::test]
    async fn a_resume_gets_what_the_ring_holds_after_its_offset_and_knows_when_that_is_all() {
        let hub = Hub::new(HubConfig { ring: 3, queue: 16 });
        hub.partition_starts(0, 100);
        for (i, off) in [100, 105, 107, 110].into_iter().enumerate() {
            hub.fan_out(at(off), msg("lobby", i as u128 + 1));
        }
        // The ring keeps 105, 107, 110: complete from 101 on.
        let (_, backlog) = hub.subscribe("lobby", Some(105));
        assert!(backlog.complete);
        assert_eq!(backlog.entries.iter().map(|e| e.offset).collect::<Vec<_>>(), [107, 110]);
        let (_, from_start) = hub.subscribe("lobby", Some(100));
        assert!(from_start.complete, "101..=104 held nothing of the room");
        let (_, too_old) = hub.subscribe("lobby", Some(99));
        assert!(!too_old.complete, "100 itself was dropped from the ring");
        assert_eq!(too_old.ring_from, Some(101));
        // A room with no message since the gateway's start has nothing to resume.
        let (_, quiet) = hub.subscribe("quiet", Some(100));
        assert!(quiet.complete && quiet.entries.is_empty());
        let (_, quiet_old) = hub.subscribe("quiet", Some(50));
        assert!(!quiet_old.complete, "before the gateway's start it cannot know");
    }

    #[test]
    fn a_resume_on_a_gateway_still_behind_is_not_sent_what_the_client_saw_elsewhere() {
        let hub = Hub::new(HubConfig { ring: 4, queue: 16 });
        hub.partition_starts(0, 0);
        for off in 0..5 {
            hub.fan_out(at(off), msg("lobby", off as u128 + 1));
        }
        // The client saw up to 8 on another gateway; this one has read up to 4.
        let (mut resumed, backlog) = hub.subscribe("lobby", Some(8));
        assert!(backlog.complete && backlog.entries.is_empty());
        for off in 5..11 {
            hub.fan_out(at(off), msg("lobby", off as u128 + 1));
        }
        assert_eq!(offsets(&drain(&mut resumed)), [9, 10], "5 to 8 were seen already");
        // A re-created topic starts its offsets over: nothing is held back then.
        hub.fan_out(at(0), msg("lobby", 100));
        assert_eq!(offsets(&drain(&mut resumed)), [0]);
    }

    #[test]
    fn a_second_copy_is_dropped_long_after_its_first_left_the_ring() {
        let hub = Hub::new(HubConfig { ring: 2, queue: 64 });
        let (mut socket, _) = hub.subscribe("lobby", None);
        for n in 1..=8 {
            assert!(matches!(hub.fan_out(at(n as i64), msg("lobby", n)), Fanned::Delivered(1)));
        }
        // Message 1 left the ring six messages ago, but not the window (4 rings = 8 ids).
        assert_eq!(hub.fan_out(at(9), msg("lobby", 1)), Fanned::Duplicate);
        hub.fan_out(at(10), msg("lobby", 9));
        // Now it is past the window: a copy this late is shown (and stored once).
        assert!(matches!(hub.fan_out(at(11), msg("lobby", 1)), Fanned::Delivered(1)));
        assert_eq!(offsets(&drain(&mut socket)), [1, 2, 3, 4, 5, 6, 7, 8, 10, 11]);
    }

    #[test]
    fn nothing_published_between_the_backlog_and_the_subscription_is_lost() {
        let hub = Arc::new(Hub::new(HubConfig { ring: 10_000, queue: 10_000 }));
        hub.partition_starts(0, 0);
        let writer = {
            let hub = hub.clone();
            std::thread::spawn(move || {
                for i in 0..5_000i64 {
                    hub.fan_out(at(i), msg("lobby", i as u128 + 1));
                }
            })
        };
        std::thread::sleep(std::time::Duration::from_millis(1));
        let (mut sub, backlog) = hub.subscribe("lobby", Some(-1));
        writer.join().unwrap();
        let mut seen: Vec<i64> = backlog.entries.iter().map(|e| e.offset).collect();
        seen.extend(offsets(&drain(&mut sub)));
        assert_eq!(seen, (0..5_000).collect::<Vec<_>>(), "every offset once, in order");
    }

    #[test]
    fn a_deleted_message_leaves_the_ring_and_every_view_and_does_not_come_back() {
        let hub = Hub::new(HubConfig::default());
        hub.partition_starts(0, 0);
        let (mut a, _) = hub.subscribe("lobby", None);
        hub.fan_out(at(1), msg("lobby", 1));
        assert_eq!(hub.delete("lobby", Uuid::from_u128(1)), 1);
        let frames = drain(&mut a);
        assert!(frames[1].contains(r#""type":"deleted""#), "{frames:?}");
        assert_eq!(hub.fan_out(at(2), msg("lobby", 1)), Fanned::Duplicate);
        let (_, backlog) = hub.subscribe("lobby", Some(-1));
        assert!(backlog.entries.is_empty());
    }
}
