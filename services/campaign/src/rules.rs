//! A validated campaign and where it stands at any instant.
//!
//! Every campaign day is a local calendar day in the campaign's time zone. On each day the campaign is
//! `waiting` until `opensAt`, `open` until `closesAt` (or local midnight), then `closed` until the next
//! local midnight. Before the first day it is `scheduled`; once the last day's window closes, `ended`.
//!
//! Wall-clock times that a DST change skips or repeats are turned into instants in one place,
//! `resolve`, so that the coupon service and the operator never disagree about an opening.

use std::fmt::Display;
use std::ops::RangeInclusive;

use chrono::{
    DateTime, Datelike, MappedLocalTime, NaiveDate, NaiveDateTime, NaiveTime, SubsecRound, TimeDelta, TimeZone, Utc,
};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::resource::CampaignSpec;
use crate::resource::limits::{
    BENEFIT_MAX, CPU_UTILIZATION, DAILY_QUANTITY, IMAGE_MAX, NAME_MAX, PER_USER, PERIOD_DAYS_MAX, PREWARM_SECONDS,
    REPLICAS, TEXT_MAX, TOTAL_QUANTITY, VALIDITY_DAYS,
};

/// A campaign whose name and spec passed validation, with its time zone resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct Campaign {
    name: String,
    spec: CampaignSpec,
    tz: Tz,
    /// The resource's `metadata.uid`: a campaign deleted and re-created under the same name
    /// is a new campaign. Empty for a campaign read from a file that has none (`ww dev`).
    uid: String,
    /// The resource's `metadata.generation` (0 when not given): orders redefinitions.
    generation: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Before the first campaign day.
    Scheduled,
    /// A campaign day whose window has not opened yet.
    Waiting,
    /// Inside a day's window: coupons can be claimed.
    Open,
    /// After a day's window closed, until local midnight; more days follow.
    Closed,
    /// The last day's window has closed.
    Ended,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    pub phase: Phase,
    /// The campaign-local calendar date at the instant asked about.
    pub day: NaiveDate,
    /// When `phase` next changes; `None` once the campaign has ended.
    pub next_transition: Option<DateTime<Utc>>,
}

/// Every problem found in a campaign, each prefixed with the camelCase path of its field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .problems.join("; "))]
pub struct InvalidCampaign {
    pub problems: Vec<String>,
}

/// The years a campaign's dates may fall in.
pub const DATE_YEARS: std::ops::RangeInclusive<i32> = 2000..=9999;

impl Campaign {
    /// Validates `name` (the resource's `metadata.name`) and `spec`, reporting every problem at once so
    /// that whoever edits the YAML fixes them in one pass.
    pub fn new(name: &str, spec: CampaignSpec) -> Result<Self, InvalidCampaign> {
        let mut problems = Vec::new();
        if !is_dns_label(name) {
            problems.push(format!(
                "metadata.name: `{name}` must be 1 to 63 lowercase letters, digits or '-', \
                 starting and ending with a letter or digit"
            ));
        }
        check_text(&mut problems, "spec.displayName", &spec.display_name, TEXT_MAX);
        check_text(&mut problems, "spec.coupon.title", &spec.coupon.title, TEXT_MAX);
        check_text(&mut problems, "spec.coupon.benefit", &spec.coupon.benefit, BENEFIT_MAX);
        check_range(&mut problems, "spec.coupon.validityDays", spec.coupon.validity_days, VALIDITY_DAYS);

        let schedule = &spec.schedule;
        let tz = schedule.time_zone.parse::<Tz>().ok();
        if tz.is_none() {
            problems.push(format!(
                "spec.schedule.timeZone: `{}` is not an IANA time zone such as `Asia/Seoul`",
                schedule.time_zone
            ));
        }
        // What the API server's `format: date` accepts (four-digit years), and what every
        // computation on the campaign's instants stays far from overflowing with.
        for (path, date) in
            [("spec.schedule.startDate", schedule.start_date), ("spec.schedule.endDate", schedule.end_date)]
        {
            if !(DATE_YEARS).contains(&date.year()) {
                problems.push(format!(
                    "{path}: {date} is not a date from {}-01-01 to {}-12-31",
                    DATE_YEARS.start(),
                    DATE_YEARS.end()
                ));
            }
        }
        let period = (schedule.end_date - schedule.start_date).num_days() + 1;
        if period < 1 {
            problems.push(format!(
                "spec.schedule.endDate: {} is before startDate {}",
                schedule.end_date, schedule.start_date
            ));
        } else if period > PERIOD_DAYS_MAX {
            problems.push(format!("spec.schedule.endDate: the period is {period} days; at most {PERIOD_DAYS_MAX}"));
        }
        if let Some(closes_at) = schedule.closes_at
            && closes_at <= schedule.opens_at
        {
            problems.push(format!(
                "spec.schedule.closesAt: {closes_at} must be after opensAt {}; a window never crosses midnight",
                schedule.opens_at
            ));
        }

        let quota = &spec.quota;
        check_range(&mut problems, "spec.quota.dailyQuantity", quota.daily_quantity, DAILY_QUANTITY);
        if let Some(total) = quota.total_quantity {
            check_range(&mut problems, "spec.quota.totalQuantity", total, TOTAL_QUANTITY);
            if u64::from(quota.daily_quantity) > total {
                problems.push(format!(
                    "spec.quota.dailyQuantity: {} is more than totalQuantity {total}",
                    quota.daily_quantity
                ));
            }
        }
        check_range(&mut problems, "spec.quota.perUser", quota.per_user, PER_USER);

        let workload = &spec.workload;
        if let Some(image) = &workload.image {
            check_text(&mut problems, "spec.workload.image", image, IMAGE_MAX);
        }
        check_range(&mut problems, "spec.workload.prewarmSeconds", workload.prewarm_seconds, PREWARM_SECONDS);
        let replicas = workload.replicas;
        check_range(&mut problems, "spec.workload.replicas.idle", replicas.idle, REPLICAS);
        check_range(&mut problems, "spec.workload.replicas.min", replicas.min, 1..=*REPLICAS.end());
        check_range(&mut problems, "spec.workload.replicas.max", replicas.max, 1..=*REPLICAS.end());
        if !(replicas.idle <= replicas.min && replicas.min <= replicas.max) {
            problems.push(format!(
                "spec.workload.replicas: idle {} <= min {} <= max {} does not hold",
                replicas.idle, replicas.min, replicas.max
            ));
        }
        check_range(
            &mut problems,
            "spec.workload.targetCpuUtilization",
            workload.target_cpu_utilization,
            CPU_UTILIZATION,
        );

        match tz {
            Some(tz) if problems.is_empty() => {
                Ok(Self { name: name.to_owned(), spec, tz, uid: String::new(), generation: 0 })
            }
            _ => Err(InvalidCampaign { problems }),
        }
    }

    /// The same campaign as the resource instance `uid` at `generation`.
    pub fn with_identity(mut self, uid: impl Into<String>, generation: i64) -> Self {
        self.uid = uid.into();
        self.generation = generation;
        self
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The resource instance (`metadata.uid`); empty when the campaign came from a file
    /// without one. State, events and rows of a campaign are keyed by name and uid.
    pub fn uid(&self) -> &str {
        &self.uid
    }

    pub fn generation(&self) -> i64 {
        self.generation
    }

    pub fn spec(&self) -> &CampaignSpec {
        &self.spec
    }

    pub fn tz(&self) -> Tz {
        self.tz
    }

    /// The campaign-local calendar date at `t`.
    pub fn day_of(&self, t: DateTime<Utc>) -> NaiveDate {
        let date = t.with_timezone(&self.tz).date_naive();
        // A fall-back change that crosses midnight would replay the end of `date` after the next day
        // began; those instants count as the next day so that days never overlap (see `day_bounds`).
        if t >= self.midnight(next(date)) { next(date) } else { date }
    }

    /// Local midnight of `day` and of the following day: the instants `day` runs between.
    pub fn day_bounds(&self, day: NaiveDate) -> (DateTime<Utc>, DateTime<Utc>) {
        (self.midnight(day), self.midnight(next(day)))
    }

    /// When the window of `day` opens.
    pub fn opening(&self, day: NaiveDate) -> DateTime<Utc> {
        resolve(self.tz, day.and_time(self.spec.schedule.opens_at))
    }

    /// When the window of `day` closes: `closesAt`, or else the next local midnight.
    pub fn closing(&self, day: NaiveDate) -> DateTime<Utc> {
        match self.spec.schedule.closes_at {
            Some(closes_at) => resolve(self.tz, day.and_time(closes_at)),
            None => self.midnight(next(day)),
        }
    }

    pub fn status_at(&self, t: DateTime<Utc>) -> Status {
        let schedule = &self.spec.schedule;
        let day = self.day_of(t);
        let (phase, next_transition) = if day < schedule.start_date {
            (Phase::Scheduled, Some(self.midnight(schedule.start_date)))
        } else if day > schedule.end_date {
            (Phase::Ended, None)
        } else if t < self.opening(day) {
            (Phase::Waiting, Some(self.opening(day)))
        } else if t < self.closing(day) {
            (Phase::Open, Some(self.closing(day)))
        } else if day < schedule.end_date {
            // The next day starts out waiting for its own opening.
            (Phase::Closed, Some(self.midnight(next(day))))
        } else {
            (Phase::Ended, None)
        };
        Status { phase, day, next_transition }
    }

    /// Every campaign day, `startDate` to `endDate` inclusive.
    pub fn days(&self) -> impl Iterator<Item = NaiveDate> {
        let end = self.spec.schedule.end_date;
        self.spec.schedule.start_date.iter_days().take_while(move |day| *day <= end)
    }

    /// A coupon issued at `issued_at` is usable until `validityDays` whole 24-hour periods have passed.
    pub fn coupon_expiry(&self, issued_at: DateTime<Utc>) -> DateTime<Utc> {
        issued_at
            .checked_add_signed(TimeDelta::days(i64::from(self.spec.coupon.validity_days)))
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    }

    /// The first opening strictly after `t`, or `None` when no campaign day opens after it.
    pub fn next_opening_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let schedule = &self.spec.schedule;
        // Start a day early: an opening skipped forward by a DST gap can land on the following date.
        let from = self.day_of(t).pred_opt().map_or(schedule.start_date, |day| day.max(schedule.start_date));
        from.iter_days().take_while(|day| *day <= schedule.end_date).map(|day| self.opening(day)).find(|o| *o > t)
    }

    fn midnight(&self, day: NaiveDate) -> DateTime<Utc> {
        resolve(self.tz, day.and_time(NaiveTime::MIN))
    }
}

/// The following date; chrono's calendar ends in the year 262143, where this saturates.
fn next(day: NaiveDate) -> NaiveDate {
    day.succ_opt().unwrap_or(day)
}

/// The instant a wall-clock time in `tz` names. A time skipped by a spring-forward change becomes the
/// first instant after the gap (02:30 on a 02:00 to 03:00 jump is 03:00 new time); a time repeated by a
/// fall-back change becomes its earliest occurrence.
fn resolve(tz: Tz, local: NaiveDateTime) -> DateTime<Utc> {
    match tz.from_local_datetime(&local) {
        MappedLocalTime::Single(t) | MappedLocalTime::Ambiguous(t, _) => t.with_timezone(&Utc),
        MappedLocalTime::None => end_of_gap(tz, local),
    }
}

fn end_of_gap(tz: Tz, local: NaiveDateTime) -> DateTime<Utc> {
    // UTC offsets are under a day, so one day either side of `local` read as UTC brackets the gap: the
    // wall clock is before `local` at `lo` and past it at `hi`. Within the bracket the wall clock only
    // jumps forward, and zone transitions fall on whole seconds, so bisecting whole seconds ends exactly
    // on the instant the gap ends.
    let anchor = local.and_utc().trunc_subsecs(0);
    let mut lo = anchor.checked_sub_signed(TimeDelta::days(1)).unwrap_or(DateTime::<Utc>::MIN_UTC);
    let mut hi = anchor.checked_add_signed(TimeDelta::days(1)).unwrap_or(DateTime::<Utc>::MAX_UTC);
    while (hi - lo).num_seconds() > 1 {
        let mid = lo + TimeDelta::seconds((hi - lo).num_seconds() / 2);
        if mid.with_timezone(&tz).naive_local() > local {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    hi
}

/// A Kubernetes DNS-1123 label, which is what `metadata.name` must be for this resource.
fn is_dns_label(name: &str) -> bool {
    let bytes = name.as_bytes();
    (1..=NAME_MAX).contains(&bytes.len())
        && bytes.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
}

fn check_text(problems: &mut Vec<String>, path: &str, value: &str, max: usize) {
    let chars = value.chars().count();
    if value.trim().is_empty() {
        problems.push(format!("{path}: must not be blank"));
    } else if chars > max {
        problems.push(format!("{path}: {chars} characters; at most {max}"));
    }
}

fn check_range<T: PartialOrd + Display>(problems: &mut Vec<String>, path: &str, value: T, range: RangeInclusive<T>) {
    if !range.contains(&value) {
        problems.push(format!("{path}: {value} is not within {} to {}", range.start(), range.end()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::{CouponTemplate, Eligibility, Quota, Replicas, Schedule, Workload};

    fn spec(tz: &str, start: &str, end: &str, opens: &str, closes: Option<&str>) -> CampaignSpec {
        let time = |t: &str| NaiveTime::parse_from_str(t, "%H:%M").unwrap();
        CampaignSpec {
            display_name: "Test campaign".to_owned(),
            coupon: CouponTemplate {
                title: "Test coupon".to_owned(),
                benefit: "Something nice".to_owned(),
                validity_days: 7,
            },
            schedule: Schedule {
                time_zone: tz.to_owned(),
                start_date: start.parse().unwrap(),
                end_date: end.parse().unwrap(),
                opens_at: time(opens),
                closes_at: closes.map(time),
            },
            quota: Quota { daily_quantity: 100, total_quantity: None, per_user: 1 },
            eligibility: Eligibility::default(),
            workload: Workload::default(),
            suspend: false,
        }
    }

    fn campaign(tz: &str, start: &str, end: &str, opens: &str, closes: Option<&str>) -> Campaign {
        Campaign::new("test", spec(tz, start, end, opens, closes)).unwrap()
    }

    /// Instants are written with the campaign's offset for readability and compared in UTC.
    fn at(rfc3339: &str) -> DateTime<Utc> {
        rfc3339.parse().unwrap()
    }

    fn date(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn status(phase: Phase, day: &str, next: Option<&str>) -> Status {
        Status { phase, day: date(day), next_transition: next.map(at) }
    }

    #[test]
    fn a_seoul_campaign_goes_through_every_phase_with_the_right_next_transition() {
        let c = campaign("Asia/Seoul", "2026-12-01", "2026-12-03", "10:00", Some("22:00"));
        let cases = [
            ("2026-11-28T12:00:00+09:00", status(Phase::Scheduled, "2026-11-28", Some("2026-12-01T00:00:00+09:00"))),
            ("2026-11-30T23:59:59+09:00", status(Phase::Scheduled, "2026-11-30", Some("2026-12-01T00:00:00+09:00"))),
            ("2026-12-01T00:00:00+09:00", status(Phase::Waiting, "2026-12-01", Some("2026-12-01T10:00:00+09:00"))),
            ("2026-12-01T09:59:59+09:00", status(Phase::Waiting, "2026-12-01", Some("2026-12-01T10:00:00+09:00"))),
            ("2026-12-01T10:00:00+09:00", status(Phase::Open, "2026-12-01", Some("2026-12-01T22:00:00+09:00"))),
            ("2026-12-01T21:59:59+09:00", status(Phase::Open, "2026-12-01", Some("2026-12-01T22:00:00+09:00"))),
            ("2026-12-01T22:00:00+09:00", status(Phase::Closed, "2026-12-01", Some("2026-12-02T00:00:00+09:00"))),
            ("2026-12-02T00:00:00+09:00", status(Phase::Waiting, "2026-12-02", Some("2026-12-02T10:00:00+09:00"))),
            ("2026-12-03T10:00:00+09:00", status(Phase::Open, "2026-12-03", Some("2026-12-03T22:00:00+09:00"))),
            ("2026-12-03T22:00:00+09:00", status(Phase::Ended, "2026-12-03", None)),
            ("2026-12-04T11:00:00+09:00", status(Phase::Ended, "2026-12-04", None)),
        ];
        for (t, expected) in cases {
            assert_eq!(c.status_at(at(t)), expected, "at {t}");
        }
    }

    #[test]
    fn the_campaign_day_is_the_local_date_not_the_utc_date() {
        let c = campaign("Asia/Seoul", "2026-12-01", "2026-12-03", "10:00", Some("22:00"));
        // 2026-11-30T15:00Z is already 1 December in Seoul.
        assert_eq!(c.day_of(at("2026-11-30T15:00:00Z")), date("2026-12-01"));
        assert_eq!(c.day_bounds(date("2026-12-01")), (at("2026-11-30T15:00:00Z"), at("2026-12-01T15:00:00Z")));
    }

    #[test]
    fn without_closes_at_the_window_stays_open_until_local_midnight_and_the_next_day_waits() {
        let c = campaign("Asia/Seoul", "2026-12-01", "2026-12-02", "10:00", None);
        assert_eq!(c.closing(date("2026-12-01")), at("2026-12-02T00:00:00+09:00"));
        assert_eq!(
            c.status_at(at("2026-12-01T23:59:59+09:00")),
            status(Phase::Open, "2026-12-01", Some("2026-12-02T00:00:00+09:00"))
        );
        assert_eq!(
            c.status_at(at("2026-12-02T00:00:00+09:00")),
            status(Phase::Waiting, "2026-12-02", Some("2026-12-02T10:00:00+09:00"))
        );
        assert_eq!(c.status_at(at("2026-12-03T00:00:00+09:00")), status(Phase::Ended, "2026-12-03", None));
    }

    #[test]
    fn an_opening_skipped_by_spring_forward_happens_when_the_gap_ends() {
        // New York jumps from 02:00 EST to 03:00 EDT on 8 March 2026; 02:30 does not exist.
        let c = campaign("America/New_York", "2026-03-07", "2026-03-09", "02:30", Some("04:00"));
        assert_eq!(c.opening(date("2026-03-08")), at("2026-03-08T07:00:00Z"));
        assert_eq!(c.opening(date("2026-03-07")), at("2026-03-07T07:30:00Z"));
        assert_eq!(c.opening(date("2026-03-09")), at("2026-03-09T06:30:00Z"));
        assert_eq!(c.status_at(at("2026-03-08T06:59:59Z")).phase, Phase::Waiting);
        assert_eq!(c.status_at(at("2026-03-08T07:00:00Z")).phase, Phase::Open);
    }

    #[test]
    fn an_opening_repeated_by_fall_back_happens_at_its_first_occurrence() {
        // New York falls back from 02:00 EDT to 01:00 EST on 1 November 2026; 01:30 happens twice.
        let c = campaign("America/New_York", "2026-10-31", "2026-11-02", "01:30", None);
        assert_eq!(c.opening(date("2026-11-01")), at("2026-11-01T05:30:00Z"));
        assert_eq!(c.status_at(at("2026-11-01T06:30:00Z")).phase, Phase::Open, "the repeated 01:30 is still open");
    }

    #[test]
    fn a_local_midnight_skipped_by_dst_starts_the_day_when_the_gap_ends() {
        // Beirut jumps from 00:00 EET to 01:00 EEST on 29 March 2026, so that day starts at 01:00.
        let c = campaign("Asia/Beirut", "2026-03-28", "2026-03-30", "00:30", None);
        let (start, end) = c.day_bounds(date("2026-03-29"));
        assert_eq!(start, at("2026-03-28T22:00:00Z"));
        assert_eq!(end, at("2026-03-30T00:00:00+03:00"));
        assert_eq!(c.closing(date("2026-03-28")), start);
        assert_eq!(c.opening(date("2026-03-29")), start, "00:30 falls in the gap too");
        assert_eq!(c.day_of(start - TimeDelta::seconds(1)), date("2026-03-28"));
        assert_eq!(c.day_of(start), date("2026-03-29"));
    }

    /// Follows `next_transition` from before the campaign to its end, checking that each reported
    /// instant is exactly where the phase changes and that nothing changes in between.
    fn walk(c: &Campaign) -> Vec<Status> {
        let first_day = c.spec().schedule.start_date;
        let mut t = c.day_bounds(first_day.pred_opt().unwrap().pred_opt().unwrap()).0 + TimeDelta::hours(5);
        let mut seen = vec![c.status_at(t)];
        while let Some(next) = seen[seen.len() - 1].next_transition {
            let current = seen[seen.len() - 1];
            assert!(next > t, "{next} does not come after {t}");
            assert!(seen.len() < 10_000, "the walk never ends");
            let mut probe = t;
            while probe < next {
                assert_eq!(c.status_at(probe).phase, current.phase, "at {probe}, inside {current:?}");
                probe += TimeDelta::minutes(7);
            }
            assert_eq!(c.status_at(next - TimeDelta::seconds(1)).phase, current.phase, "just before {next}");
            let after = c.status_at(next);
            assert_ne!(after.phase, current.phase, "at {next}, after {current:?}");
            seen.push(after);
            t = next;
        }
        seen
    }

    fn expected_phases(c: &Campaign) -> Vec<(Phase, Option<NaiveDate>)> {
        let days: Vec<NaiveDate> = c.days().collect();
        let mut phases = vec![(Phase::Scheduled, None)];
        for (i, day) in days.iter().enumerate() {
            phases.push((Phase::Waiting, Some(*day)));
            phases.push((Phase::Open, Some(*day)));
            if c.spec().schedule.closes_at.is_some() && i + 1 < days.len() {
                phases.push((Phase::Closed, Some(*day)));
            }
        }
        phases.push((Phase::Ended, None));
        phases
    }

    #[test]
    fn every_reported_transition_is_exactly_where_the_phase_changes_across_dst() {
        let campaigns = [
            // London springs forward at 01:00 GMT on 29 March 2026: 01:30 that day does not exist.
            campaign("Europe/London", "2026-03-24", "2026-04-03", "01:30", Some("22:00")),
            // London falls back at 02:00 BST on 25 October 2026: 01:30 that day happens twice.
            campaign("Europe/London", "2026-10-20", "2026-10-30", "01:30", None),
            campaign("Europe/London", "2026-10-20", "2026-10-30", "01:30", Some("01:45")),
            // Beirut skips midnight on 29 March and repeats 23:00 to 24:00 on 24 October 2026.
            campaign("Asia/Beirut", "2026-03-25", "2026-04-02", "09:00", Some("21:00")),
            campaign("Asia/Beirut", "2026-10-20", "2026-10-28", "23:10", Some("23:50")),
        ];
        // The periods really do straddle the changes.
        assert_eq!(campaigns[0].opening(date("2026-03-29")), at("2026-03-29T01:00:00Z"));
        assert_eq!(campaigns[1].opening(date("2026-10-25")), at("2026-10-25T00:30:00Z"));
        assert_eq!(campaigns[4].opening(date("2026-10-24")), at("2026-10-24T20:10:00Z"));
        for c in campaigns {
            let seen = walk(&c);
            let phases: Vec<_> = seen
                .iter()
                .map(|s| (s.phase, matches!(s.phase, Phase::Waiting | Phase::Open | Phase::Closed).then_some(s.day)))
                .collect();
            assert_eq!(phases, expected_phases(&c), "{:?}", c.spec().schedule);
        }
    }

    #[test]
    fn next_opening_after_skips_to_the_following_day_and_stops_after_the_last() {
        let c = campaign("Asia/Seoul", "2026-12-01", "2026-12-02", "10:00", Some("22:00"));
        assert_eq!(c.next_opening_after(at("2026-01-01T00:00:00Z")), Some(at("2026-12-01T10:00:00+09:00")));
        assert_eq!(c.next_opening_after(at("2026-12-01T09:00:00+09:00")), Some(at("2026-12-01T10:00:00+09:00")));
        assert_eq!(c.next_opening_after(at("2026-12-01T10:00:00+09:00")), Some(at("2026-12-02T10:00:00+09:00")));
        assert_eq!(c.next_opening_after(at("2026-12-02T10:00:00+09:00")), None);
    }

    #[test]
    fn days_run_from_start_to_end_inclusive() {
        let c = campaign("Asia/Seoul", "2026-12-30", "2027-01-02", "10:00", None);
        let days: Vec<NaiveDate> = c.days().collect();
        assert_eq!(days, ["2026-12-30", "2026-12-31", "2027-01-01", "2027-01-02"].map(date));
    }

    #[test]
    fn a_coupon_expires_after_whole_24_hour_periods_even_across_dst() {
        let c = campaign("America/New_York", "2026-03-01", "2026-03-31", "10:00", None);
        assert_eq!(c.coupon_expiry(at("2026-03-05T15:00:00Z")), at("2026-03-12T15:00:00Z"));
    }

    #[test]
    fn validation_reports_every_problem_at_once() {
        let mut bad = spec("Asia/Seul", "2026-12-10", "2026-12-01", "10:00", Some("09:00"));
        bad.display_name = "   ".to_owned();
        bad.coupon.title = "x".repeat(81);
        bad.coupon.validity_days = 0;
        bad.quota = Quota { daily_quantity: 0, total_quantity: Some(0), per_user: 101 };
        let problems = Campaign::new("Rainy_Day", bad).unwrap_err().problems;
        let paths: Vec<&str> = problems.iter().map(|p| p.split(':').next().unwrap()).collect();
        assert_eq!(
            paths,
            [
                "metadata.name",
                "spec.displayName",
                "spec.coupon.title",
                "spec.coupon.validityDays",
                "spec.schedule.timeZone",
                "spec.schedule.endDate",
                "spec.schedule.closesAt",
                "spec.quota.dailyQuantity",
                "spec.quota.totalQuantity",
                "spec.quota.perUser",
            ]
        );
    }

    #[test]
    fn quantities_and_replicas_must_agree_with_each_other() {
        let mut bad = spec("Asia/Seoul", "2026-12-01", "2026-12-01", "10:00", None);
        bad.quota.total_quantity = Some(50);
        bad.workload.replicas = Replicas { idle: 3, min: 2, max: 1 };
        bad.workload.target_cpu_utilization = 5;
        let problems = Campaign::new("x", bad).unwrap_err().problems;
        assert_eq!(
            problems,
            [
                "spec.quota.dailyQuantity: 100 is more than totalQuantity 50",
                "spec.workload.replicas: idle 3 <= min 2 <= max 1 does not hold",
                "spec.workload.targetCpuUtilization: 5 is not within 10 to 100",
            ]
        );
    }

    #[test]
    fn the_error_message_joins_the_problems_with_semicolons() {
        let mut bad = spec("Asia/Seoul", "2026-12-01", "2026-12-01", "10:00", None);
        bad.quota.per_user = 0;
        let message = Campaign::new("-bad", bad).unwrap_err().to_string();
        assert!(message.starts_with("metadata.name: `-bad` must be"), "{message}");
        assert!(message.contains("; spec.quota.perUser: 0 is not within 1 to 100"), "{message}");
    }

    #[test]
    fn a_period_longer_than_366_days_is_rejected_and_366_is_accepted() {
        assert!(Campaign::new("leap", spec("UTC", "2028-01-01", "2028-12-31", "10:00", None)).is_ok());
        let problems = Campaign::new("long", spec("UTC", "2028-01-01", "2029-01-01", "10:00", None)).unwrap_err();
        assert_eq!(problems.problems, ["spec.schedule.endDate: the period is 367 days; at most 366"]);
    }

    #[test]
    fn names_must_be_dns_labels() {
        for good in ["a", "rainy-day-pass", "2026-winter", &"a".repeat(63)] {
            assert!(is_dns_label(good), "{good}");
        }
        for bad in ["", "-a", "a-", "Rainy", "rainy_day", "rainy.day", &"a".repeat(64)] {
            assert!(!is_dns_label(bad), "{bad}");
        }
    }
}
