//! The status a campaign should show: phase, next transition, today's counts from the issuers'
//! counters (with a `Live` condition that says when they stopped arriving), endpoint, and the
//! conditions Ready, Live, SoldOut, InvalidSpec and Suspended. `lastTransitionTime` is kept
//! while a condition's status does not change, as the API conventions ask.

use std::time::Duration;

use campaign::plan::{Plan, Scale};
use campaign::{CouponCampaignStatus, ResourcePhase};
use chrono::{DateTime, Utc};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::children::Running;
use crate::counters::Snapshot;

/// Counters older than this are not live: the issuers publish at most once a second while open.
pub const COUNTERS_STALE_AFTER: Duration = Duration::from_secs(10);

/// A condition as the operator decides it, before times are attached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub type_: &'static str,
    pub status: bool,
    pub reason: &'static str,
    pub message: String,
}

pub(crate) fn verdict(type_: &'static str, status: bool, reason: &'static str, message: impl Into<String>) -> Verdict {
    Verdict { type_, status, reason, message: message.into() }
}

/// What the reconciler knows besides the plan.
#[derive(Debug, Clone)]
pub struct Seen<'a> {
    /// The status as it stands.
    pub old: Option<&'a CouponCampaignStatus>,
    pub generation: Option<i64>,
    pub running: Running,
    pub counters: Option<&'a Snapshot>,
    pub endpoint: Option<String>,
    /// When the first campaign day began, once it has.
    pub started: Option<DateTime<Utc>>,
}

/// The status of a valid campaign under `plan`.
pub fn desired(seen: Seen<'_>, plan: &Plan, now: DateTime<Utc>) -> CouponCampaignStatus {
    let Seen { old, generation, running, counters, endpoint, started } = seen;
    let mut verdicts = Vec::new();
    let ready = running.ready_replicas;
    verdicts.push(match (plan.phase, plan.scale) {
        (ResourcePhase::Suspended, _) => verdict("Ready", true, "Suspended", "suspended: no issuer runs"),
        (_, Scale::Fixed(0)) => {
            verdict("Ready", true, "Idle", "no issuer runs between openings; the coupon service answers")
        }
        (_, Scale::Fixed(n)) if ready >= n => verdict("Ready", true, "Idle", format!("{ready} idle issuer(s) ready")),
        (_, Scale::Fixed(n)) => {
            verdict("Ready", false, "WaitingForIssuers", format!("{ready} of {n} idle issuer(s) ready"))
        }
        (_, Scale::Autoscaled { min, .. }) if ready >= min => {
            verdict("Ready", true, "IssuersReady", format!("{ready} issuer(s) ready (at least {min})"))
        }
        (_, Scale::Autoscaled { min, .. }) => {
            verdict("Ready", false, "WaitingForIssuers", format!("{ready} of {min} issuer(s) ready"))
        }
    });
    let fresh = counters.filter(|c| (now - c.at).to_std().map_or(true, |age| age <= COUNTERS_STALE_AFTER));
    if plan.phase == ResourcePhase::SoldOut {
        // The issuers may be scaled down to idle: the day's counts are final, not stale.
        verdicts.push(verdict("Live", false, "SoldOut", "sold out today: the counts shown are the day's last"));
    } else if plan.phase == ResourcePhase::Open {
        verdicts.push(match (counters, fresh) {
            (_, Some(_)) => verdict("Live", true, "CountersFlowing", "the issuers report their counts"),
            (Some(c), None) => verdict(
                "Live",
                false,
                "IssuersSilent",
                format!("no counts from the issuers since {}; the numbers shown are from then", c.at.to_rfc3339()),
            ),
            (None, None) => verdict("Live", false, "IssuersSilent", "no counts from the issuers yet"),
        });
    } else {
        verdicts.push(verdict("Live", false, "NotOpen", "counts flow only while a window is open"));
    }
    let sold_out = plan.phase == ResourcePhase::SoldOut;
    verdicts.push(if sold_out {
        verdict("SoldOut", true, "NothingLeft", "nothing left today")
    } else {
        verdict("SoldOut", false, "StockLeft", "")
    });
    verdicts.push(if plan.phase == ResourcePhase::Suspended {
        verdict("Suspended", true, "SpecSuspend", "spec.suspend is set")
    } else {
        verdict("Suspended", false, "Running", "")
    });
    verdicts.push(verdict("InvalidSpec", false, "Valid", ""));

    // Counts for the plan's day only; another day's numbers would read as today's. With none
    // yet (a new leader), the day's last written ones stay.
    let today = counters.filter(|c| c.day == plan.day);
    let kept = old.filter(|s| counters.is_none() && s.day == Some(plan.day));
    CouponCampaignStatus {
        observed_generation: generation,
        phase: Some(plan.phase),
        day: Some(plan.day),
        next_transition: plan.next_change,
        started_at: old.and_then(|s| s.started_at).or(started),
        issued_today: today.map(|c| c.issued_today).or(kept.and_then(|s| s.issued_today)),
        remaining_today: today.and_then(|c| c.remaining_today).or(kept.and_then(|s| s.remaining_today)),
        issued_total: counters.map(|c| c.issued_total).or(old.and_then(|s| s.issued_total)),
        counted_at: counters.map(|c| c.at).or(old.and_then(|s| s.counted_at)),
        endpoint,
        conditions: conditions(old_conditions(old), generation, verdicts, now),
    }
}

/// The status of a campaign whose spec breaks a rule: what it was, plus InvalidSpec.
pub fn invalid(
    old: Option<&CouponCampaignStatus>,
    generation: Option<i64>,
    problems: &str,
    now: DateTime<Utc>,
) -> CouponCampaignStatus {
    let verdicts = vec![
        verdict("Ready", false, "InvalidSpec", "the spec is invalid; see InvalidSpec"),
        verdict("InvalidSpec", true, "RulesBroken", problems),
    ];
    let mut status = old.cloned().unwrap_or_default();
    status.observed_generation = generation;
    status.phase = Some(ResourcePhase::Invalid);
    status.next_transition = None;
    status.conditions = conditions(old_conditions(old), generation, verdicts, now);
    status
}

fn to_time(t: DateTime<Utc>) -> Time {
    Time(k8s_openapi::jiff::Timestamp::from_second(t.timestamp()).unwrap_or(k8s_openapi::jiff::Timestamp::UNIX_EPOCH))
}

/// The conditions the verdicts make, each keeping its `lastTransitionTime` from `old` while its
/// status stays (shared by every resource the operator reports on).
pub(crate) fn conditions(
    old: &[Condition],
    generation: Option<i64>,
    verdicts: Vec<Verdict>,
    now: DateTime<Utc>,
) -> Vec<Condition> {
    verdicts
        .into_iter()
        .map(|v| {
            let status = if v.status { "True" } else { "False" };
            let since = match old.iter().find(|c| c.type_ == v.type_) {
                Some(p) if p.status == status => p.last_transition_time.clone(),
                _ => to_time(now),
            };
            Condition {
                type_: v.type_.to_owned(),
                status: status.to_owned(),
                reason: v.reason.to_owned(),
                message: v.message,
                observed_generation: generation,
                last_transition_time: since,
            }
        })
        .collect()
}

fn old_conditions(old: Option<&CouponCampaignStatus>) -> &[Condition] {
    old.map_or(&[], |s| s.conditions.as_slice())
}

/// Whether writing `new` over `old` changes anything a reader could see.
pub fn differs(old: Option<&CouponCampaignStatus>, new: &CouponCampaignStatus) -> bool {
    old != Some(new)
}

/// Whether the change from `old` is only in the live counts (which are written at most every few
/// seconds), not in the phase, the next transition or a condition.
pub fn only_counts_changed(old: Option<&CouponCampaignStatus>, new: &CouponCampaignStatus) -> bool {
    let Some(old) = old else { return false };
    let strip = |s: &CouponCampaignStatus| CouponCampaignStatus {
        issued_today: None,
        remaining_today: None,
        issued_total: None,
        counted_at: None,
        ..s.clone()
    };
    strip(old) == strip(new)
}
