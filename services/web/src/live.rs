//! The dashboard's live counts: one subscription per process to the issuers' `CampaignCounted`
//! events (the ones the operator's status reads), one frame built per second from them, and
//! that same frame — one shared buffer — written to every open dashboard. A viewer costs the
//! issuers nothing: they publish their counts once a second whether ten or ten thousand people
//! watch, and no viewer's request reaches them.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, NaiveDate, Utc};
use platform::clock::Clock;
use platform::events::contracts::{CAMPAIGN_COUNTED, CampaignCounted};
use platform::events::{Envelope, Handler};
use serde::Serialize;
use tokio::sync::watch;
use utoipa::ToSchema;

/// How often a frame goes out (also when nothing changed: the page sees the stream is alive).
pub const TICK: Duration = Duration::from_secs(1);
/// The window the issuance rate is measured over.
const RATE_WINDOW: chrono::TimeDelta = chrono::TimeDelta::seconds(3);
/// Counts older than this leave the frames: issuers report only while a window is open, so
/// after it (or once a campaign is deleted) the catalog's persisted counts are the truth again,
/// and yesterday's last report never stands for today's stock before the opening.
pub const FORGET_AFTER: chrono::TimeDelta = chrono::TimeDelta::minutes(10);

/// One campaign's latest counts, as a frame carries them.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LiveCampaign {
    pub name: String,
    /// The campaign-local day the counts are for.
    pub day: NaiveDate,
    pub issued_today: u64,
    /// `null` before the day's stock is seeded at its opening.
    pub remaining_today: Option<u64>,
    pub issued_total: u64,
    /// When the issuers counted.
    pub counted_at: DateTime<Utc>,
    /// Coupons issued per second over the last few seconds (0 when the issuers went quiet).
    pub rate_per_second: f64,
}

/// What each `counts` event of the stream carries.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LiveFrame {
    pub at: DateTime<Utc>,
    /// Campaigns whose issuers reported since this process started following, by name.
    pub campaigns: Vec<LiveCampaign>,
}

#[derive(Debug)]
struct Tracked {
    latest: CampaignCounted,
    /// (counted at, issued in all) within the rate window.
    recent: VecDeque<(DateTime<Utc>, u64)>,
}

/// The process's one view of every campaign's counts.
#[derive(Debug)]
pub struct Live {
    campaigns: Mutex<HashMap<String, Tracked>>,
    frames: watch::Sender<Bytes>,
    clock: Clock,
    /// Dashboards streaming from this process now.
    pub viewers: AtomicU64,
    /// Open streams by login session.
    pub sessions: Mutex<HashMap<uuid::Uuid, u32>>,
    /// Frames built since start (one per tick, whatever the number of viewers).
    pub frames_built: AtomicU64,
}

impl Live {
    pub fn new(clock: Clock) -> Arc<Self> {
        let (frames, _) = watch::channel(Bytes::new());
        let live = Arc::new(Self {
            campaigns: Mutex::default(),
            frames,
            clock,
            viewers: AtomicU64::new(0),
            sessions: Mutex::default(),
            frames_built: AtomicU64::new(0),
        });
        live.publish();
        live
    }

    /// Keeps `counted` unless a later count of the campaign is already held (issuer replicas
    /// report independently, so reports may cross; a late report of a deleted instance loses
    /// to its successor's newer ones too).
    pub fn record(&self, counted: CampaignCounted) {
        let mut campaigns = self.campaigns.lock().unwrap_or_else(|e| e.into_inner());
        match campaigns.get_mut(&counted.name) {
            Some(t) if t.latest.at >= counted.at => {}
            Some(t) if t.latest.uid == counted.uid => {
                t.recent.push_back((counted.at, counted.issued_total));
                while t.recent.front().is_some_and(|(at, _)| *at < counted.at - RATE_WINDOW) {
                    t.recent.pop_front();
                }
                t.latest = counted;
            }
            _ => {
                let recent = VecDeque::from([(counted.at, counted.issued_total)]);
                campaigns.insert(counted.name.clone(), Tracked { latest: counted, recent });
            }
        }
    }

    /// The frame as of now.
    pub fn frame(&self) -> LiveFrame {
        let now = self.clock.now();
        let mut campaigns = self.campaigns.lock().unwrap_or_else(|e| e.into_inner());
        campaigns.retain(|_, t| t.latest.at > now - FORGET_AFTER);
        let mut out: Vec<LiveCampaign> = campaigns
            .values()
            .map(|t| {
                let c = &t.latest;
                LiveCampaign {
                    name: c.name.clone(),
                    day: c.day,
                    issued_today: c.issued_today,
                    remaining_today: c.remaining_today,
                    issued_total: c.issued_total,
                    counted_at: c.at,
                    rate_per_second: rate(&t.recent, now),
                }
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        LiveFrame { at: now, campaigns: out }
    }

    /// Builds this tick's frame once, as the bytes of one Server-Sent Event, for every viewer.
    pub fn publish(&self) {
        let json = serde_json::to_string(&self.frame()).unwrap_or_else(|_| "{}".to_owned());
        self.frames.send_replace(Bytes::from(format!("event: counts\ndata: {json}\n\n")));
        self.frames_built.fetch_add(1, Ordering::Relaxed);
    }

    /// The frames as they are built; the current one is marked seen only once read.
    pub fn subscribe(&self) -> watch::Receiver<Bytes> {
        let mut rx = self.frames.subscribe();
        rx.mark_changed();
        rx
    }

    /// Builds a frame every [`TICK`] until `stop`.
    pub fn spawn_ticker(self: &Arc<Self>, mut stop: watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
        let live = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(TICK);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => live.publish(),
                    _ = stop.wait_for(|s| *s) => return,
                }
            }
        })
    }
}

/// Coupons a second between the oldest and newest count in the window, if the newest is recent.
fn rate(recent: &VecDeque<(DateTime<Utc>, u64)>, now: DateTime<Utc>) -> f64 {
    let (Some((first_at, first)), Some((last_at, last))) = (recent.front(), recent.back()) else { return 0.0 };
    let span = (*last_at - *first_at).num_milliseconds();
    if *last_at < now - RATE_WINDOW || span < 500 {
        return 0.0;
    }
    let per_second = last.saturating_sub(*first) as f64 * 1000.0 / span as f64;
    (per_second * 10.0).round() / 10.0
}

/// Feeds [`Live`] from the counts topic.
pub struct CountsFeed(pub Arc<Live>);

impl Handler for CountsFeed {
    async fn handle(&self, event: &Envelope) -> anyhow::Result<()> {
        if event.kind == CAMPAIGN_COUNTED {
            // A report we cannot read is skipped: the next one, a second later, replaces it.
            match event.decode::<CampaignCounted>() {
                Ok(counted) => self.0.record(counted),
                Err(e) => tracing::warn!(error = %e, "unreadable CampaignCounted skipped"),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counted(name: &str, uid: &str, secs: i64, total: u64) -> CampaignCounted {
        CampaignCounted {
            name: name.to_owned(),
            uid: uid.to_owned(),
            day: NaiveDate::from_ymd_opt(2026, 11, 26).unwrap(),
            issued_today: total,
            remaining_today: Some(1000 - total),
            issued_total: total,
            at: DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap(),
        }
    }

    #[test]
    fn the_rate_follows_the_latest_reports_and_older_ones_are_ignored() {
        let clock = Clock::manual(DateTime::from_timestamp(1_800_000_003, 0).unwrap());
        let live = Live::new(clock);
        live.record(counted("a", "u1", 0, 100));
        live.record(counted("a", "u1", 2, 300));
        // A report from another replica, taken earlier, arriving later.
        live.record(counted("a", "u1", 1, 150));
        let frame = live.frame();
        assert_eq!(frame.campaigns.len(), 1);
        assert_eq!(frame.campaigns[0].issued_total, 300);
        assert_eq!(frame.campaigns[0].rate_per_second, 100.0);
        // A new instance under the same name starts afresh.
        live.record(counted("a", "u2", 3, 5));
        assert_eq!(live.frame().campaigns[0].issued_total, 5);
        assert_eq!(live.frame().campaigns[0].rate_per_second, 0.0);
    }

    #[test]
    fn old_counts_leave_the_frames() {
        let clock = Clock::manual(DateTime::from_timestamp(1_800_000_000, 0).unwrap());
        let live = Live::new(clock.clone());
        live.record(counted("a", "", 0, 100));
        assert_eq!(live.frame().campaigns.len(), 1);
        clock.advance(FORGET_AFTER + chrono::TimeDelta::seconds(1));
        assert!(live.frame().campaigns.is_empty());
        // A late report of an earlier instance does not replace its successor's.
        live.record(counted("b", "new", 5, 7));
        live.record(counted("b", "old", 4, 900));
        assert_eq!(live.frame().campaigns[0].issued_total, 7);
    }

    #[test]
    fn a_quiet_campaign_has_no_rate() {
        let clock = Clock::manual(DateTime::from_timestamp(1_800_000_060, 0).unwrap());
        let live = Live::new(clock);
        live.record(counted("a", "", 0, 100));
        live.record(counted("a", "", 2, 300));
        assert_eq!(live.frame().campaigns[0].rate_per_second, 0.0);
    }

    #[tokio::test]
    async fn every_viewer_gets_the_same_frame_built_once() {
        let live = Live::new(Clock::System);
        let built = live.frames_built.load(Ordering::Relaxed);
        let mut viewers: Vec<_> = (0..100).map(|_| live.subscribe()).collect();
        live.record(counted("a", "", 0, 1));
        live.publish();
        let first = viewers[0].borrow_and_update().clone();
        assert!(std::str::from_utf8(&first).unwrap().starts_with("event: counts\ndata: {"));
        for v in &mut viewers[1..] {
            let frame = v.borrow_and_update().clone();
            // The very same buffer, not a copy per viewer.
            assert_eq!(frame.as_ptr(), first.as_ptr());
        }
        assert_eq!(live.frames_built.load(Ordering::Relaxed), built + 1);
    }
}
