//! One vocabulary for where a campaign stands. The schedule alone gives a [`Phase`] (what the HTTP
//! API shows as `phase`); the operator, which also knows pre-warming, sell-out, suspension and
//! invalid specs, shows a [`ResourcePhase`] in the resource's status. [`PHASES`] maps one to the
//! other, and every word either side uses comes from it.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::rules::Phase;

/// The phase in `status.phase` of a `CouponCampaign`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum ResourcePhase {
    /// Before the first campaign day, or on a campaign day before pre-warming begins.
    Scheduled,
    /// The issuer runs at `replicas.min` ahead of the opening.
    Prewarming,
    /// Inside a day's window: coupons can be claimed.
    Open,
    /// Inside a day's window, with nothing left today (or over the whole campaign).
    SoldOut,
    /// After a day's window, until the next campaign day.
    Closed,
    /// The last day's window has closed; final totals are in the status.
    Completed,
    /// `spec.suspend` is set.
    Suspended,
    /// The spec breaks a rule the schema cannot state; the `InvalidSpec` condition says which.
    Invalid,
}

/// A schedule phase with the word the API uses for it and the resource phase it becomes when
/// nothing else (pre-warming, sell-out, suspension) applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PhaseWords {
    pub phase: Phase,
    pub api: &'static str,
    pub resource: ResourcePhase,
}

pub const PHASES: [PhaseWords; 5] = [
    PhaseWords { phase: Phase::Scheduled, api: "scheduled", resource: ResourcePhase::Scheduled },
    PhaseWords { phase: Phase::Waiting, api: "waiting", resource: ResourcePhase::Scheduled },
    PhaseWords { phase: Phase::Open, api: "open", resource: ResourcePhase::Open },
    PhaseWords { phase: Phase::Closed, api: "closed", resource: ResourcePhase::Closed },
    PhaseWords { phase: Phase::Ended, api: "ended", resource: ResourcePhase::Completed },
];

/// The API's `phase` words as a regular expression, for OpenAPI parameters.
pub const API_PHASE_PATTERN: &str = "^(scheduled|waiting|open|closed|ended)$";

impl Phase {
    fn words(self) -> &'static PhaseWords {
        PHASES.iter().find(|w| w.phase == self).unwrap_or(&PHASES[0])
    }

    /// The word the HTTP API uses.
    pub fn api_word(self) -> &'static str {
        self.words().api
    }

    /// The phase an API word names.
    pub fn from_api_word(word: &str) -> Option<Self> {
        PHASES.iter().find(|w| w.api == word).map(|w| w.phase)
    }

    /// The resource phase this schedule phase shows as, before pre-warming, sell-out and suspension.
    pub fn resource_phase(self) -> ResourcePhase {
        self.words().resource
    }
}

impl ResourcePhase {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Scheduled => "Scheduled",
            Self::Prewarming => "Prewarming",
            Self::Open => "Open",
            Self::SoldOut => "SoldOut",
            Self::Closed => "Closed",
            Self::Completed => "Completed",
            Self::Suspended => "Suspended",
            Self::Invalid => "Invalid",
        }
    }
}

impl std::fmt::Display for ResourcePhase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Every API word, in table order.
pub fn api_words() -> impl Iterator<Item = &'static str> {
    PHASES.iter().map(|w| w.api)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_schedule_phase_has_exactly_one_row_and_serializes_as_its_api_word() {
        for words in PHASES {
            assert_eq!(PHASES.iter().filter(|w| w.phase == words.phase).count(), 1);
            assert_eq!(serde_json::to_value(words.phase).unwrap(), words.api);
            assert_eq!(Phase::from_api_word(words.api), Some(words.phase));
        }
        assert_eq!(Phase::from_api_word("Open"), None);
    }

    #[test]
    fn the_api_pattern_accepts_exactly_the_api_words() {
        let pattern = regex_lite::Regex::new(API_PHASE_PATTERN).unwrap();
        assert!(api_words().all(|w| pattern.is_match(w)));
        let alternatives = API_PHASE_PATTERN.trim_start_matches("^(").trim_end_matches(")$").split('|');
        assert!(alternatives.eq(api_words()));
    }

    #[test]
    fn resource_phases_serialize_as_their_names() {
        for phase in [ResourcePhase::Scheduled, ResourcePhase::SoldOut, ResourcePhase::Completed] {
            assert_eq!(serde_json::to_value(phase).unwrap(), phase.as_str());
        }
    }
}
