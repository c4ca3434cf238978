//! The `CouponCampaign` resource exactly as it is written in YAML and stored in Kubernetes.
//! These types only describe the shape; [`crate::Campaign::new`] decides whether the values make sense.

use std::collections::BTreeMap;

use chrono::{NaiveDate, NaiveTime};
use serde::{Deserialize, Serialize};

use crate::time_of_day;

pub const API_VERSION: &str = "weatherwise.io/v1alpha1";
pub const KIND: &str = "CouponCampaign";

/// One YAML document, shaped like every Kubernetes object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CouponCampaign {
    /// Must be [`API_VERSION`].
    pub api_version: String,
    /// Must be [`KIND`].
    pub kind: String,
    pub metadata: ObjectMeta,
    pub spec: CampaignSpec,
}

/// The part of Kubernetes object metadata campaigns use. Unknown fields are accepted because the API
/// server adds many (uid, resourceVersion, managedFields, ...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectMeta {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CampaignSpec {
    /// Shown to users, 1 to 80 characters.
    pub display_name: String,
    pub coupon: CouponTemplate,
    pub schedule: Schedule,
    pub quota: Quota,
    #[serde(default)]
    pub eligibility: Eligibility,
}

/// What every coupon issued by the campaign looks like.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CouponTemplate {
    /// 1 to 80 characters.
    pub title: String,
    /// What the holder gets, 1 to 200 characters.
    pub benefit: String,
    /// A coupon stays usable this many 24-hour periods after it is issued, 1 to 365.
    pub validity_days: u32,
}

/// The campaign runs every local day from `start_date` to `end_date`, both included, and each of those
/// days hands out coupons from `opens_at` until `closes_at` (or midnight).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Schedule {
    /// IANA time zone, e.g. `Asia/Seoul`; dates and times below are wall-clock times there.
    pub time_zone: String,
    pub start_date: NaiveDate,
    pub end_date: NaiveDate,
    #[serde(with = "time_of_day")]
    pub opens_at: NaiveTime,
    /// Absent: the window stays open until local midnight.
    #[serde(default, with = "time_of_day::optional", skip_serializing_if = "Option::is_none")]
    pub closes_at: Option<NaiveTime>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Quota {
    /// Coupons available each campaign day, first come first served, 1 to 10,000,000.
    pub daily_quantity: u32,
    /// A cap over the whole campaign; absent means only the daily quantity limits it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_quantity: Option<u64>,
    /// Coupons one user may claim each campaign day, 1 to 100.
    #[serde(default = "one_per_user")]
    pub per_user: u32,
}

fn one_per_user() -> u32 {
    1
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Eligibility {
    #[serde(default)]
    pub mission: MissionRequirement,
}

/// Written exactly as the variant names, as Kubernetes string enums are.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MissionRequirement {
    /// Only users who completed a verified weather mission on the same campaign-local day may claim.
    #[default]
    VerifiedSameDay,
    /// Any signed-in user may claim.
    None,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule(opens_at: &str) -> Result<Schedule, serde_json::Error> {
        serde_json::from_value(serde_json::json!({
            "timeZone": "Asia/Seoul",
            "startDate": "2026-12-01",
            "endDate": "2026-12-07",
            "opensAt": opens_at,
            "closesAt": "22:00:00",
        }))
    }

    #[test]
    fn times_of_day_are_read_with_or_without_seconds() {
        assert_eq!(schedule("10:00").unwrap().opens_at, NaiveTime::from_hms_opt(10, 0, 0).unwrap());
        assert_eq!(schedule("10:00:30").unwrap().opens_at, NaiveTime::from_hms_opt(10, 0, 30).unwrap());
        assert_eq!(schedule("10:00").unwrap().closes_at, NaiveTime::from_hms_opt(22, 0, 0));
        let yaml: Schedule = serde_yaml::from_str(
            "timeZone: Asia/Seoul\nstartDate: 2026-12-01\nendDate: 2026-12-07\nopensAt: 10:00:30\n",
        )
        .unwrap();
        assert_eq!(yaml.opens_at, NaiveTime::from_hms_opt(10, 0, 30).unwrap());
        assert_eq!(yaml.closes_at, None);
    }

    #[test]
    fn malformed_times_of_day_are_rejected() {
        for bad in ["10", "10:00:00:00", "25:00", "10:60", "10:00:60", "ten", "10:00 "] {
            let error = schedule(bad).unwrap_err().to_string();
            assert!(error.contains("\"HH:MM\" or \"HH:MM:SS\""), "{bad}: {error}");
        }
    }

    #[test]
    fn times_of_day_are_written_without_seconds_when_they_are_zero() {
        let mut s = schedule("10:00").unwrap();
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!((json["opensAt"].as_str(), json["closesAt"].as_str()), (Some("10:00"), Some("22:00")));
        s.opens_at = NaiveTime::from_hms_opt(10, 0, 30).unwrap();
        s.closes_at = None;
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["opensAt"], "10:00:30");
        assert!(json.get("closesAt").is_none());
    }

    #[test]
    fn omitted_quota_and_eligibility_fields_take_their_defaults() {
        let quota: Quota = serde_json::from_str(r#"{"dailyQuantity": 10}"#).unwrap();
        assert_eq!(quota, Quota { daily_quantity: 10, total_quantity: None, per_user: 1 });
        let eligibility: Eligibility = serde_json::from_str("{}").unwrap();
        assert_eq!(eligibility.mission, MissionRequirement::VerifiedSameDay);
    }

    #[test]
    fn mission_requirements_are_written_as_kubernetes_string_enums() {
        assert_eq!(serde_json::to_value(MissionRequirement::VerifiedSameDay).unwrap(), "VerifiedSameDay");
        assert_eq!(serde_json::to_value(MissionRequirement::None).unwrap(), "None");
        assert!(serde_json::from_str::<MissionRequirement>(r#""verifiedSameDay""#).is_err());
    }

    #[test]
    fn metadata_keeps_the_fields_it_knows_and_ignores_the_rest() {
        let meta: ObjectMeta =
            serde_json::from_str(r#"{"name": "x", "uid": "1234", "labels": {"team": "marketing"}}"#).unwrap();
        assert_eq!(meta.name, "x");
        assert_eq!(meta.labels.get("team").map(String::as_str), Some("marketing"));
    }
}
