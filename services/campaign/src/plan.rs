//! What a campaign's workload should look like at an instant, and when that next changes: the
//! operator's reconcile and `ww campaign preview` both read it from here, so what marketing
//! previews is what the cluster does.
//!
//! Around each opening: from `opensAt − prewarmSeconds` the issuer runs autoscaled between
//! `replicas.min` and `replicas.max` (pre-warmed, so it is Ready when the window opens); it stays
//! so until [`COOLDOWN`] after the window closes, so the issuers can settle what they sold; then it
//! goes back to `replicas.idle`. While the window is open and nothing is left, the phase reads
//! `SoldOut` and the autoscaler's own scale-down brings it towards `min`.

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};

use crate::rules::{Campaign, Phase};
use crate::vocabulary::ResourcePhase;

/// How long issuers keep running after a window closes: long enough for a publish that was
/// in flight at closing to be resolved (the issuer's bound is its in-flight limit plus a second
/// plus one publish), short next to the 5 to 11 minutes a cron-and-HPA setup takes.
pub const COOLDOWN: TimeDelta = TimeDelta::seconds(60);

/// How many issuer pods, and who decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scale {
    /// A fixed count (`replicas.idle` between openings, 0 while suspended or completed), no
    /// autoscaler.
    Fixed(u32),
    /// An autoscaler between these bounds owns the count.
    Autoscaled { min: u32, max: u32 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    pub phase: ResourcePhase,
    /// The campaign-local date the plan belongs to.
    pub day: NaiveDate,
    pub scale: Scale,
    /// The next instant at which the plan changes; `None` when only a change of the resource can
    /// change it (completed, suspended).
    pub next_change: Option<DateTime<Utc>>,
    /// The window of `day`, when it has one, for the status and the preview.
    pub window: Option<(DateTime<Utc>, DateTime<Utc>)>,
}

/// What the operator knows beyond the schedule.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Observed {
    /// The issuers report nothing left today (or over the whole campaign).
    pub sold_out: bool,
}

impl Campaign {
    /// The plan at `now`.
    pub fn plan_at(&self, now: DateTime<Utc>, observed: Observed) -> Plan {
        let spec = self.spec();
        let replicas = spec.workload.replicas;
        let autoscaled = Scale::Autoscaled { min: replicas.min, max: replicas.max };
        let status = self.status_at(now);
        let day = status.day;
        if spec.suspend {
            return Plan {
                phase: ResourcePhase::Suspended,
                day,
                scale: Scale::Fixed(0),
                next_change: None,
                window: None,
            };
        }
        let prewarm = TimeDelta::seconds(i64::from(spec.workload.prewarm_seconds));
        let next_opening = self.next_opening_after(now);
        let prewarm_at = next_opening.map(|o| o - prewarm);
        // The most recent closing at or before `now`, if its cooldown still runs.
        let cooling_until = self.last_closing_at_or_before(now).map(|c| c + COOLDOWN).filter(|end| *end > now);
        let earliest = |a: Option<DateTime<Utc>>, b: Option<DateTime<Utc>>| match (a, b) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let window = self.runs_on(day).then(|| (self.opening(day), self.closing(day)));

        match status.phase {
            Phase::Open => {
                let phase = if observed.sold_out { ResourcePhase::SoldOut } else { ResourcePhase::Open };
                Plan { phase, day, scale: autoscaled, next_change: status.next_transition, window }
            }
            _ if prewarm_at.is_some_and(|p| p <= now) => {
                Plan { phase: ResourcePhase::Prewarming, day, scale: autoscaled, next_change: next_opening, window }
            }
            Phase::Ended if cooling_until.is_none() => {
                Plan { phase: ResourcePhase::Completed, day, scale: Scale::Fixed(0), next_change: None, window }
            }
            _ => {
                let phase = match status.phase {
                    Phase::Closed | Phase::Ended => ResourcePhase::Closed,
                    other => other.resource_phase(),
                };
                let scale = if cooling_until.is_some() { autoscaled } else { Scale::Fixed(replicas.idle) };
                // The schedule's own next transition matters too: the day changes at midnight.
                let next = earliest(earliest(cooling_until, prewarm_at), status.next_transition);
                let next = if status.phase == Phase::Ended { cooling_until } else { next };
                Plan { phase, day, scale, next_change: next, window }
            }
        }
    }

    fn runs_on(&self, day: NaiveDate) -> bool {
        let schedule = &self.spec().schedule;
        schedule.start_date <= day && day <= schedule.end_date
    }

    /// The latest closing at or before `t`.
    fn last_closing_at_or_before(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let schedule = &self.spec().schedule;
        let day = self.day_of(t).min(schedule.end_date);
        [Some(day), day.pred_opt()]
            .into_iter()
            .flatten()
            .filter(|d| self.runs_on(*d))
            .map(|d| self.closing(d))
            .find(|c| *c <= t)
    }

    /// Every campaign day from `from` on, at most `days` of them, as the preview prints them.
    pub fn preview(&self, from: NaiveDate, days: usize) -> Vec<PreviewDay> {
        let schedule = &self.spec().schedule;
        let prewarm = TimeDelta::seconds(i64::from(self.spec().workload.prewarm_seconds));
        schedule
            .start_date
            .max(from)
            .iter_days()
            .take_while(|d| *d <= schedule.end_date)
            .take(days)
            .map(|day| {
                let opening = self.opening(day);
                let closing = self.closing(day);
                PreviewDay {
                    day,
                    prewarm: opening - prewarm,
                    opening,
                    closing,
                    idle: closing + COOLDOWN,
                    quantity: self.spec().quota.daily_quantity,
                    notes: self.dst_notes(day),
                }
            })
            .collect()
    }

    /// What a daylight-saving change does to `day`, in words.
    fn dst_notes(&self, day: NaiveDate) -> Vec<String> {
        use chrono::Offset;
        let tz = self.tz();
        let (start, end) = self.day_bounds(day);
        let offset_at = |t: DateTime<Utc>| t.with_timezone(&tz).offset().fix().local_minus_utc();
        let mut notes = Vec::new();
        if offset_at(start) != offset_at(end - TimeDelta::seconds(1)) {
            let hours = f64::from(offset_at(end - TimeDelta::seconds(1)) - offset_at(start)) / 3600.0;
            let change = if hours > 0.0 { "clocks go forward" } else { "clocks go back" };
            notes.push(format!(
                "{change} {} h this day ({} hours long)",
                hours.abs(),
                (end - start).num_minutes() as f64 / 60.0
            ));
        }
        let schedule = &self.spec().schedule;
        let wall = |t: DateTime<Utc>| t.with_timezone(&tz).time();
        if wall(self.opening(day)) != schedule.opens_at {
            notes.push(format!(
                "opensAt {} does not exist this day; opens at {} when the gap ends",
                schedule.opens_at.format("%H:%M"),
                wall(self.opening(day)).format("%H:%M")
            ));
        } else if is_repeated(tz, day, schedule.opens_at) {
            notes.push(format!(
                "opensAt {} happens twice this day; opens at the first",
                schedule.opens_at.format("%H:%M")
            ));
        }
        notes
    }
}

fn is_repeated(tz: chrono_tz::Tz, day: NaiveDate, time: chrono::NaiveTime) -> bool {
    use chrono::TimeZone;
    matches!(tz.from_local_datetime(&day.and_time(time)), chrono::MappedLocalTime::Ambiguous(..))
}

/// One campaign day of `ww campaign preview`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreviewDay {
    pub day: NaiveDate,
    /// The issuer starts at `replicas.min`.
    pub prewarm: DateTime<Utc>,
    pub opening: DateTime<Utc>,
    pub closing: DateTime<Utc>,
    /// Back to `replicas.idle`.
    pub idle: DateTime<Utc>,
    /// Coupons on offer that day.
    pub quantity: u32,
    pub notes: Vec<String>,
}
