//! An event bus in this process's memory: one append-only log per topic, nothing durable.
//! For what must measure the services without a broker (the benchmarks' ceilings) — the same
//! semantics as the other buses (groups, at-least-once, commit after the handler), none of
//! their cost.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use super::{Delivery, Envelope, Handler, Position, deliver};
use crate::http::ReadinessCheck;

#[derive(Default)]
struct Logs {
    topics: HashMap<String, Vec<Arc<[u8]>>>,
    /// Committed cursors by (group, topic).
    groups: HashMap<(String, String), usize>,
}

pub struct MemoryBus {
    logs: Mutex<Logs>,
    appended: watch::Sender<u64>,
}

impl Default for MemoryBus {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryBus {
    pub fn new() -> Self {
        let (appended, _) = watch::channel(0);
        Self { logs: Mutex::default(), appended }
    }

    fn logs(&self) -> std::sync::MutexGuard<'_, Logs> {
        self.logs.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(super) fn publish(&self, topic: &str, payload: &[u8]) -> Position {
        let offset = {
            let mut logs = self.logs();
            let log = logs.topics.entry(topic.to_owned()).or_default();
            log.push(Arc::from(payload));
            log.len() - 1
        };
        self.appended.send_modify(|n| *n += 1);
        Position { partition: 0, offset: i64::try_from(offset).unwrap_or(i64::MAX) }
    }

    pub(super) fn len(&self, topic: &str) -> usize {
        self.logs().topics.get(topic).map_or(0, Vec::len)
    }

    fn read(&self, topic: &str, from: usize, max: usize) -> Vec<(usize, Arc<[u8]>)> {
        let logs = self.logs();
        let Some(log) = logs.topics.get(topic) else { return Vec::new() };
        log.iter().enumerate().skip(from).take(max).map(|(i, p)| (i, p.clone())).collect()
    }

    fn cursor(&self, group: &str, topic: &str) -> usize {
        self.logs().groups.get(&(group.to_owned(), topic.to_owned())).copied().unwrap_or(0)
    }

    fn commit(&self, group: &str, topic: &str, next: usize) {
        self.logs().groups.insert((group.to_owned(), topic.to_owned()), next);
    }

    pub(super) fn readiness(&self) -> ReadinessCheck {
        ReadinessCheck::new("event-log", || async { Ok(()) })
    }
}

/// Delivers the events of `topics` from `cursors` on, until stopped; `caught_up` turns true
/// once every cursor passed `ends`.
#[allow(clippy::too_many_arguments)]
async fn follow<H: Handler>(
    bus: Arc<MemoryBus>,
    group: Option<String>,
    topics: Vec<String>,
    mut cursors: Vec<usize>,
    ends: Vec<usize>,
    handler: Arc<H>,
    mut stop: watch::Receiver<bool>,
    caught_up: Option<watch::Sender<bool>>,
) {
    let mut appended = bus.appended.subscribe();
    loop {
        let mut progressed = false;
        for (topic, cursor) in topics.iter().zip(cursors.iter_mut()) {
            let batch = bus.read(topic, *cursor, 512);
            let Some((last, _)) = batch.last() else { continue };
            let last = *last;
            let events: Vec<Envelope> = batch
                .iter()
                .filter_map(|(i, payload)| {
                    let mut event: Envelope = serde_json::from_slice(payload).ok()?;
                    event.position = Some(Position { partition: 0, offset: i64::try_from(*i).unwrap_or(i64::MAX) });
                    Some(event)
                })
                .collect();
            if !deliver(handler.as_ref(), &events, &mut stop).await {
                return;
            }
            *cursor = last + 1;
            if let Some(group) = &group {
                bus.commit(group, topic, *cursor);
            }
            progressed = true;
        }
        if let Some(flag) = &caught_up
            && !*flag.borrow()
            && cursors.iter().zip(&ends).all(|(c, e)| c >= e)
        {
            let _ = flag.send(true);
        }
        if progressed {
            continue;
        }
        tokio::select! {
            _ = appended.changed() => {}
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

pub(super) async fn consume<H: Handler>(
    bus: Arc<MemoryBus>,
    group: String,
    topics: Vec<String>,
    handler: Arc<H>,
    stop: watch::Receiver<bool>,
    delivery: Delivery,
) {
    let cursors: Vec<usize> = topics
        .iter()
        .map(|t| match delivery {
            Delivery::Group => bus.cursor(&group, t),
            Delivery::Broadcast => bus.len(t),
        })
        .collect();
    let ends = cursors.clone();
    let group = (delivery == Delivery::Group).then_some(group);
    follow(bus, group, topics, cursors, ends, handler, stop, None).await;
}

pub(super) async fn replay<H: Handler>(
    bus: Arc<MemoryBus>,
    topics: Vec<String>,
    back: Option<i64>,
    handler: Arc<H>,
    stop: watch::Receiver<bool>,
    caught_up: watch::Sender<bool>,
) {
    let ends: Vec<usize> = topics.iter().map(|t| bus.len(t)).collect();
    let cursors: Vec<usize> = ends
        .iter()
        .map(|end| match back {
            None => 0,
            Some(n) => end.saturating_sub(usize::try_from(n).unwrap_or(usize::MAX)),
        })
        .collect();
    for cursor in &cursors {
        handler.reading_from(Position { partition: 0, offset: i64::try_from(*cursor).unwrap_or(i64::MAX) });
    }
    follow(bus, None, topics, cursors, ends, handler, stop, Some(caught_up)).await;
}
