//! What the operator makes of a campaign at each instant, from YAML fixtures: every phase, a whole
//! week of a daily campaign walked with a fake clock, two time zones and both daylight-saving
//! changes. The walk follows `next_change` and checks at each step that nothing changes before it
//! and something changes at it, so the operator's requeue times are exact.

use std::path::Path;

use campaign::plan::{COOLDOWN, Observed, Plan, Scale};
use campaign::{Campaign, ResourcePhase};
use chrono::{DateTime, NaiveDate, TimeDelta, Utc};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

fn fixture(name: &str) -> Campaign {
    let mut found = campaign::load_file(&Path::new(FIXTURES).join(format!("{name}.yaml"))).unwrap();
    assert_eq!(found.len(), 1, "{name}");
    found.remove(0)
}

fn at(rfc3339: &str) -> DateTime<Utc> {
    rfc3339.parse().unwrap()
}

fn date(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

/// A step of the walk: from `at`, this plan holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Step {
    at: DateTime<Utc>,
    phase: ResourcePhase,
    scale: Scale,
}

fn plan(c: &Campaign, t: DateTime<Utc>) -> Plan {
    c.plan_at(t, Observed::default())
}

/// Follows `next_change` from `from` until the plan stops changing, probing between changes.
fn walk(c: &Campaign, from: DateTime<Utc>) -> Vec<Step> {
    let mut t = from;
    let first = plan(c, t);
    let mut steps = vec![Step { at: t, phase: first.phase, scale: first.scale }];
    let mut current = first;
    while let Some(next) = current.next_change {
        assert!(next > t, "{next} does not come after {t}");
        assert!(steps.len() < 1_000, "the walk never ends");
        let mut probe = t;
        while probe < next {
            let p = plan(c, probe);
            assert_eq!((p.phase, p.scale), (current.phase, current.scale), "at {probe}, before the change at {next}");
            probe += TimeDelta::minutes(3);
        }
        let before = plan(c, next - TimeDelta::seconds(1));
        assert_eq!((before.phase, before.scale), (current.phase, current.scale), "just before {next}");
        current = plan(c, next);
        t = next;
        // A change of day alone (midnight) is a change of plan too; record only visible changes.
        if (current.phase, current.scale) != (steps[steps.len() - 1].phase, steps[steps.len() - 1].scale) {
            steps.push(Step { at: t, phase: current.phase, scale: current.scale });
        }
    }
    steps
}

fn step(at_: &str, phase: ResourcePhase, scale: Scale) -> Step {
    Step { at: at(at_), phase, scale }
}

const AUTO_3_20: Scale = Scale::Autoscaled { min: 3, max: 20 };
const AUTO_2_10: Scale = Scale::Autoscaled { min: 2, max: 10 };

#[test]
fn a_daily_campaign_walked_through_a_week_prewarms_opens_cools_down_and_idles_every_day() {
    let c = fixture("daily-week-seoul");
    let steps = walk(&c, at("2026-11-30T12:00:00+09:00"));
    let mut expected = vec![step("2026-11-30T12:00:00+09:00", ResourcePhase::Scheduled, Scale::Fixed(1))];
    for day in 1..=7 {
        let d = format!("2026-12-{day:02}");
        expected.push(step(&format!("{d}T09:55:00+09:00"), ResourcePhase::Prewarming, AUTO_3_20));
        expected.push(step(&format!("{d}T10:00:00+09:00"), ResourcePhase::Open, AUTO_3_20));
        expected.push(step(&format!("{d}T10:30:00+09:00"), ResourcePhase::Closed, AUTO_3_20));
        if day < 7 {
            expected.push(step(&format!("{d}T10:31:00+09:00"), ResourcePhase::Closed, Scale::Fixed(1)));
            // Midnight: the next campaign day waits for its pre-warm.
            expected.push(step(
                &format!("2026-12-{:02}T00:00:00+09:00", day + 1),
                ResourcePhase::Scheduled,
                Scale::Fixed(1),
            ));
        } else {
            expected.push(step(&format!("{d}T10:31:00+09:00"), ResourcePhase::Completed, Scale::Fixed(0)));
        }
    }
    assert_eq!(steps, expected);
    assert_eq!(plan(&c, at("2026-12-08T00:00:00+09:00")).next_change, None, "nothing to wake up for once completed");
}

#[test]
fn the_scale_down_after_closing_takes_exactly_the_documented_cooldown() {
    let c = fixture("daily-week-seoul");
    let closing = at("2026-12-03T10:30:00+09:00");
    assert_eq!(plan(&c, closing + COOLDOWN - TimeDelta::seconds(1)).scale, AUTO_3_20);
    assert_eq!(plan(&c, closing + COOLDOWN).scale, Scale::Fixed(1));
    assert_eq!(COOLDOWN, TimeDelta::seconds(60), "the cooldown the docs and the preview state");
}

#[test]
fn an_opening_skipped_by_spring_forward_is_prewarmed_before_the_gap_ends() {
    let c = fixture("new-york-spring-forward");
    // 02:30 does not exist on 8 March: the window opens at 03:00 EDT (07:00Z); pre-warm 10 min before.
    let p = plan(&c, at("2026-03-08T06:50:00Z"));
    assert_eq!(
        (p.phase, p.scale, p.next_change),
        (ResourcePhase::Prewarming, AUTO_2_10, Some(at("2026-03-08T07:00:00Z")))
    );
    assert_eq!(plan(&c, at("2026-03-08T06:49:59Z")).phase, ResourcePhase::Scheduled);
    assert_eq!(plan(&c, at("2026-03-08T07:00:00Z")).phase, ResourcePhase::Open);
    // The days either side open at 02:30 local: 07:30Z in winter, 06:30Z in summer.
    assert_eq!(plan(&c, at("2026-03-07T07:20:00Z")).phase, ResourcePhase::Prewarming);
    assert_eq!(plan(&c, at("2026-03-09T06:20:00Z")).phase, ResourcePhase::Prewarming);
    let steps = walk(&c, at("2026-03-05T12:00:00Z"));
    let openings: Vec<DateTime<Utc>> = steps.iter().filter(|s| s.phase == ResourcePhase::Open).map(|s| s.at).collect();
    assert_eq!(
        openings,
        [
            "2026-03-06T07:30:00Z",
            "2026-03-07T07:30:00Z",
            "2026-03-08T07:00:00Z",
            "2026-03-09T06:30:00Z",
            "2026-03-10T06:30:00Z"
        ]
        .map(at)
    );
}

#[test]
fn an_opening_repeated_by_fall_back_opens_once_at_its_first_occurrence() {
    let c = fixture("london-fall-back");
    let steps = walk(&c, at("2026-10-22T12:00:00Z"));
    let openings: Vec<DateTime<Utc>> = steps.iter().filter(|s| s.phase == ResourcePhase::Open).map(|s| s.at).collect();
    // 01:30 BST is 00:30Z; on the 25th the first 01:30 is still BST; from the 26th GMT (01:30Z).
    assert_eq!(
        openings,
        [
            "2026-10-23T00:30:00Z",
            "2026-10-24T00:30:00Z",
            "2026-10-25T00:30:00Z",
            "2026-10-26T01:30:00Z",
            "2026-10-27T01:30:00Z"
        ]
        .map(at)
    );
    // Open until midnight, so no day has a Closed phase except through cooldown after the last.
    assert_eq!(steps.last().map(|s| s.phase), Some(ResourcePhase::Completed));
}

#[test]
fn a_midnight_opening_is_prewarmed_on_the_day_before() {
    let c = fixture("midnight-opening");
    let p = plan(&c, at("2026-11-30T23:58:00+09:00"));
    assert_eq!((p.phase, p.scale), (ResourcePhase::Prewarming, AUTO_2_10));
    assert_eq!(p.day, date("2026-11-30"));
    assert_eq!(p.next_change, Some(at("2026-12-01T00:00:00+09:00")));
    assert_eq!(plan(&c, at("2026-11-30T23:57:59+09:00")).phase, ResourcePhase::Scheduled);
    // After the first day's window and its cooldown, the second day's pre-warm is on 1 December.
    assert_eq!(plan(&c, at("2026-12-01T23:58:00+09:00")).phase, ResourcePhase::Prewarming);
    walk(&c, at("2026-11-30T00:00:00+09:00"));
}

#[test]
fn a_suspended_campaign_runs_nothing_and_waits_for_a_change() {
    let mut c = fixture("daily-week-seoul").spec().clone();
    c.suspend = true;
    let c = Campaign::new("suspended", c).unwrap();
    let p = plan(&c, at("2026-12-02T10:10:00+09:00"));
    assert_eq!((p.phase, p.scale, p.next_change), (ResourcePhase::Suspended, Scale::Fixed(0), None));
}

#[test]
fn a_sold_out_window_reads_sold_out_and_stays_autoscaled_until_closing() {
    let c = fixture("daily-week-seoul");
    let p = c.plan_at(at("2026-12-02T10:10:00+09:00"), Observed { sold_out: true });
    assert_eq!((p.phase, p.scale), (ResourcePhase::SoldOut, AUTO_3_20));
    assert_eq!(p.next_change, Some(at("2026-12-02T10:30:00+09:00")));
}

#[test]
fn the_preview_lists_each_day_with_its_times_and_daylight_saving_notes() {
    let c = fixture("new-york-spring-forward");
    let days = c.preview(date("2026-03-01"), 3);
    assert_eq!(days.iter().map(|d| d.day).collect::<Vec<_>>(), ["2026-03-06", "2026-03-07", "2026-03-08"].map(date));
    let gap = &days[2];
    assert_eq!((gap.prewarm, gap.opening), (at("2026-03-08T06:50:00Z"), at("2026-03-08T07:00:00Z")));
    assert_eq!(gap.idle, gap.closing + COOLDOWN);
    assert!(gap.notes.iter().any(|n| n.contains("clocks go forward 1 h")), "{:?}", gap.notes);
    assert!(gap.notes.iter().any(|n| n.contains("02:30 does not exist")), "{:?}", gap.notes);
    assert!(days[0].notes.is_empty());
    let london = fixture("london-fall-back").preview(date("2026-10-25"), 1);
    assert!(london[0].notes.iter().any(|n| n.contains("happens twice")), "{:?}", london[0].notes);
}
