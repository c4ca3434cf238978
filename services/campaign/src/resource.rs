//! The `CouponCampaign` custom resource: the one definition that the API server's schema (`crds/`),
//! the operator, the issuer and `ww dev` all use. The shape and the bounds a schema can state live
//! here, next to the doc comments `kubectl explain` shows; [`crate::Campaign::new`] decides whether
//! the values make sense together, with the same limits (see [`limits`]).

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscalerBehavior;
use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

use crate::time_of_day;
use crate::vocabulary::ResourcePhase;

pub const GROUP: &str = "weatherwise.io";
pub const VERSION: &str = "v1alpha1";
pub const API_VERSION: &str = "weatherwise.io/v1alpha1";
pub const KIND: &str = "CouponCampaign";

/// The limits both the schema and [`crate::Campaign::new`] enforce, so the API server and the rules
/// never disagree about what a campaign may say.
pub mod limits {
    use std::ops::RangeInclusive;

    pub const NAME_MAX: usize = 63;
    pub const TEXT_MAX: usize = 80;
    pub const BENEFIT_MAX: usize = 200;
    pub const PERIOD_DAYS_MAX: i64 = 366;
    pub const VALIDITY_DAYS: RangeInclusive<u32> = 1..=365;
    pub const DAILY_QUANTITY: RangeInclusive<u32> = 1..=10_000_000;
    pub const TOTAL_QUANTITY: RangeInclusive<u64> = 1..=3_660_000_000;
    pub const PER_USER: RangeInclusive<u32> = 1..=100;
    pub const PREWARM_SECONDS: RangeInclusive<u32> = 0..=3_600;
    pub const REPLICAS: RangeInclusive<u32> = 0..=1_000;
    pub const CPU_UTILIZATION: RangeInclusive<u32> = 10..=100;
    pub const IMAGE_MAX: usize = 512;
}

/// The name rule of [`crate::Campaign::new`], stated once for the schema.
const NAME_RULE: &str =
    "self.metadata.name.size() <= 63 && self.metadata.name.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')";

/// What may not change once the first campaign day has begun (`status.startedAt` set by the
/// operator): changing them would change who may claim, or what a day is, half-way through.
/// Quantities may change; a change applies from the next campaign day.
const STARTED_RULE: &str = "!has(oldSelf.status) || !has(oldSelf.status.startedAt) || (\
self.spec.schedule.timeZone == oldSelf.spec.schedule.timeZone && \
self.spec.schedule.startDate == oldSelf.spec.schedule.startDate && \
self.spec.quota.perUser == oldSelf.spec.quota.perUser && \
self.spec.eligibility.mission == oldSelf.spec.eligibility.mission)";

/// A first-come coupon campaign: every campaign day from `startDate` to `endDate`, from `opensAt`
/// to `closesAt` in `timeZone`, the first `dailyQuantity` eligible people to claim get a coupon.
/// The operator runs a dedicated, pre-warmed issuer for it around each opening.
#[derive(CustomResource, JsonSchema, Debug, Clone, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "weatherwise.io",
    version = "v1alpha1",
    kind = "CouponCampaign",
    namespaced,
    status = "CouponCampaignStatus",
    shortname = "cc",
    category = "weatherwise",
    doc = "A first-come coupon campaign and the dedicated issuer the operator runs for it around each opening. `kubectl get cc` shows today's issued and remaining counts.",
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Issued","type":"integer","description":"Coupons issued today","jsonPath":".status.issuedToday"}"#,
    printcolumn = r#"{"name":"Remaining","type":"integer","description":"Coupons left today","jsonPath":".status.remainingToday"}"#,
    printcolumn = r#"{"name":"Next","type":"date","description":"When the phase next changes","jsonPath":".status.nextTransition"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    validation = Rule::new(NAME_RULE).message("metadata.name must be a DNS label: at most 63 lowercase letters, digits or '-', starting and ending with a letter or digit").field_path(".metadata.name"),
    validation = Rule::new(STARTED_RULE).message("timeZone, startDate, perUser and eligibility cannot change once the campaign has started").reason(Reason::FieldValueForbidden)
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CampaignSpec {
    /// The campaign's name as users see it in the app, 1 to 80 characters.
    #[schemars(length(min = 1, max = limits::TEXT_MAX), regex(pattern = r"\S"))]
    pub display_name: String,
    pub coupon: CouponTemplate,
    pub schedule: Schedule,
    pub quota: Quota,
    #[serde(default)]
    pub eligibility: Eligibility,
    /// How the operator runs this campaign's issuer. Ignored outside Kubernetes (`ww dev`).
    #[serde(default, skip_serializing_if = "Workload::is_default")]
    pub workload: Workload,
    /// While true the campaign hands out nothing: its issuer is scaled to zero and claims are
    /// answered "not open". Setting it back resumes the schedule where it stands.
    #[serde(default, skip_serializing_if = "is_false")]
    pub suspend: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// What every coupon issued by the campaign looks like.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CouponTemplate {
    /// The coupon's title in the user's wallet, 1 to 80 characters.
    #[schemars(length(min = 1, max = limits::TEXT_MAX), regex(pattern = r"\S"))]
    pub title: String,
    /// What the holder gets, 1 to 200 characters.
    #[schemars(length(min = 1, max = limits::BENEFIT_MAX), regex(pattern = r"\S"))]
    pub benefit: String,
    /// A coupon stays usable this many 24-hour periods after it is issued, 1 to 365.
    #[schemars(range(min = *limits::VALIDITY_DAYS.start(), max = *limits::VALIDITY_DAYS.end()))]
    pub validity_days: u32,
}

/// The campaign runs every local day from `startDate` to `endDate`, both included (at most 366
/// days), and each of those days hands out coupons from `opensAt` until `closesAt` (or midnight).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[x_kube(validation = Rule::new("self.endDate >= self.startDate").message("endDate must not be before startDate").field_path(".endDate"))]
#[x_kube(validation = Rule::new("!has(self.closesAt) || (self.closesAt.size() == 5 ? self.closesAt + ':00' : self.closesAt) > (self.opensAt.size() == 5 ? self.opensAt + ':00' : self.opensAt)").message("closesAt must be later than opensAt: a window never crosses midnight").field_path(".closesAt"))]
pub struct Schedule {
    /// IANA time zone, e.g. `Asia/Seoul`; every date and time of the schedule is wall-clock time
    /// there, daylight-saving changes included.
    #[schemars(schema_with = "time_zone_schema")]
    pub time_zone: String,
    /// The first campaign day, `YYYY-MM-DD`.
    #[schemars(schema_with = "date_schema")]
    pub start_date: NaiveDate,
    /// The last campaign day, `YYYY-MM-DD`, not before `startDate`.
    #[schemars(schema_with = "date_schema")]
    pub end_date: NaiveDate,
    /// When each day's window opens, `"HH:MM"` or `"HH:MM:SS"` local time. A time skipped by a
    /// daylight-saving change opens when the gap ends; a repeated time opens at its first occurrence.
    #[serde(with = "time_of_day")]
    #[schemars(schema_with = "time_of_day_schema")]
    pub opens_at: NaiveTime,
    /// When each day's window closes, later than `opensAt`; absent: at local midnight.
    #[serde(default, with = "time_of_day::optional", skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "time_of_day_schema")]
    pub closes_at: Option<NaiveTime>,
}

/// How many coupons there are: each day, over the whole campaign, and per person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[x_kube(validation = Rule::new("!has(self.totalQuantity) || self.dailyQuantity <= self.totalQuantity").message("dailyQuantity must not exceed totalQuantity").field_path(".dailyQuantity"))]
pub struct Quota {
    /// Coupons available each campaign day, first come first served, 1 to 10,000,000. A change
    /// applies from the next campaign day; today's stock stays as it was when the day began.
    #[schemars(range(min = *limits::DAILY_QUANTITY.start(), max = *limits::DAILY_QUANTITY.end()))]
    pub daily_quantity: u32,
    /// A cap over the whole campaign, at least `dailyQuantity`; absent: only the daily quantity
    /// limits it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = *limits::TOTAL_QUANTITY.start(), max = *limits::TOTAL_QUANTITY.end()))]
    pub total_quantity: Option<u64>,
    /// Coupons one person may claim over the whole campaign (not per day), 1 to 100; 1 when absent.
    /// Cannot change once the campaign has started.
    #[serde(default = "one_per_user")]
    #[schemars(range(min = *limits::PER_USER.start(), max = *limits::PER_USER.end()))]
    pub per_user: u32,
}

fn one_per_user() -> u32 {
    1
}

/// Who may claim. Cannot change once the campaign has started.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Eligibility {
    /// `VerifiedSameDay` (the default): only people who completed a verified daily weather mission on
    /// the same campaign-local day may claim. `AnyVerifiedSameDay`: a mission people created counts
    /// too (so a self-made, self-verified mission is enough: use it only where that is fine).
    /// `None`: anyone signed in may claim.
    #[serde(default)]
    pub mission: MissionRequirement,
}

/// Written exactly as the variant names, as Kubernetes string enums are.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MissionRequirement {
    /// Only users who completed a verified daily weather mission on the same campaign-local day may claim.
    #[default]
    VerifiedSameDay,
    /// Like `VerifiedSameDay`, and a verified mission a person created counts too.
    AnyVerifiedSameDay,
    /// Any signed-in user may claim.
    None,
}

impl MissionRequirement {
    /// Whether a claim needs a verified mission that day.
    pub fn needs_mission(self) -> bool {
        self != MissionRequirement::None
    }

    /// Whether a verified mission a person created (not a daily weather mission) counts.
    pub fn counts_created_missions(self) -> bool {
        self != MissionRequirement::VerifiedSameDay
    }
}

impl JsonSchema for MissionRequirement {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "MissionRequirement".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({"type": "string", "enum": ["VerifiedSameDay", "AnyVerifiedSameDay", "None"]})
    }
}

/// How the operator runs the campaign's dedicated issuer. Every field has a default that suits a
/// campaign of a few thousand coupons a day.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Workload {
    /// The issuer's container image; absent: the image the operator is configured with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = limits::IMAGE_MAX))]
    pub image: Option<String>,
    /// How long before each opening the issuer is started at `replicas.min` so that it is Ready
    /// when the window opens, 0 to 3600 seconds; 300 when absent.
    #[serde(default = "default_prewarm_seconds")]
    #[schemars(range(min = *limits::PREWARM_SECONDS.start(), max = *limits::PREWARM_SECONDS.end()))]
    pub prewarm_seconds: u32,
    #[serde(default)]
    pub replicas: Replicas,
    /// The average CPU utilisation, in percent of the requested CPU, the autoscaler keeps the
    /// issuer at while open, 10 to 100; 60 when absent.
    #[serde(default = "default_cpu_utilization")]
    #[schemars(range(min = *limits::CPU_UTILIZATION.start(), max = *limits::CPU_UTILIZATION.end()))]
    pub target_cpu_utilization: u32,
    /// CPU and memory for each issuer pod; absent: 500m CPU and 256Mi memory requested, 1Gi
    /// memory limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// The autoscaler's scale-up and scale-down behaviour while open; absent: double or add 4
    /// pods every 15 seconds with no stabilisation up, and remove at most half every 30 seconds
    /// after 60 seconds of lower load down.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub behavior: Option<HorizontalPodAutoscalerBehavior>,
}

impl Default for Workload {
    fn default() -> Self {
        Self {
            image: None,
            prewarm_seconds: default_prewarm_seconds(),
            replicas: Replicas::default(),
            target_cpu_utilization: default_cpu_utilization(),
            resources: None,
            behavior: None,
        }
    }
}

impl Workload {
    fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

fn default_prewarm_seconds() -> u32 {
    300
}

fn default_cpu_utilization() -> u32 {
    60
}

/// Issuer replicas in each phase: `idle` between openings (0: no pods, the steady-state coupon
/// service answers for the campaign), `min` from pre-warm to closing, up to `max` under load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[x_kube(validation = Rule::new("self.idle <= self.min && self.min <= self.max").message("replicas must satisfy idle <= min <= max"))]
pub struct Replicas {
    /// Replicas between openings, 0 to 1000; 0 when absent.
    #[serde(default)]
    #[schemars(range(min = *limits::REPLICAS.start(), max = *limits::REPLICAS.end()))]
    pub idle: u32,
    /// Replicas from pre-warm until the window closes, 1 to 1000; 2 when absent.
    #[serde(default = "default_min_replicas")]
    #[schemars(range(min = 1, max = *limits::REPLICAS.end()))]
    pub min: u32,
    /// The most replicas the autoscaler may run while open, 1 to 1000; 10 when absent.
    #[serde(default = "default_max_replicas")]
    #[schemars(range(min = 1, max = *limits::REPLICAS.end()))]
    pub max: u32,
}

impl Default for Replicas {
    fn default() -> Self {
        Self { idle: 0, min: default_min_replicas(), max: default_max_replicas() }
    }
}

fn default_min_replicas() -> u32 {
    2
}

fn default_max_replicas() -> u32 {
    10
}

/// What the operator last saw of the campaign. Counts come from the issuers' counters events;
/// when those stop arriving, the `Live` condition says so instead of showing old numbers as live.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CouponCampaignStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Where the campaign stands: Scheduled, Prewarming, Open, SoldOut, Closed, Completed,
    /// Suspended or Invalid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<ResourcePhase>,
    /// The campaign-local date the phase belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "optional_date_schema")]
    pub day: Option<NaiveDate>,
    /// When the phase next changes; absent once completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_transition: Option<DateTime<Utc>>,
    /// When the first campaign day began; from then on timeZone, startDate, perUser and
    /// eligibility cannot change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    /// Coupons issued on `day`, as last reported by the issuers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issued_today: Option<u64>,
    /// Coupons left on `day`, as last reported by the issuers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remaining_today: Option<u64>,
    /// Coupons issued over the whole campaign, as last reported by the issuers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issued_total: Option<u64>,
    /// When the issuers last reported the counts above.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counted_at: Option<DateTime<Utc>>,
    /// Where clients claim: the campaign's path under the platform's public host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Ready, Live, SoldOut, InvalidSpec and Suspended, each with a reason and a message.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}

fn date_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({"type": "string", "format": "date"})
}

fn optional_date_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({"type": "string", "format": "date", "nullable": true})
}

/// `HH:MM` or `HH:MM:SS`, 24-hour clock.
pub const TIME_OF_DAY_PATTERN: &str = "^([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9])?$";

fn time_of_day_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({"type": "string", "pattern": TIME_OF_DAY_PATTERN})
}

fn time_zone_schema(_: &mut SchemaGenerator) -> Schema {
    let names: Vec<&str> = chrono_tz::TZ_VARIANTS.iter().map(|z| z.name()).collect();
    json_schema!({"type": "string", "enum": names})
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
    fn the_schema_pattern_for_times_of_day_accepts_exactly_what_the_parser_accepts() {
        let pattern = regex_lite::Regex::new(TIME_OF_DAY_PATTERN).unwrap();
        for text in ["00:00", "10:00", "23:59:59", "10:00:30", "9:00", "10", "24:00", "10:60", "10:00:60", "10:00 "] {
            assert_eq!(pattern.is_match(text), schedule(text).is_ok(), "{text}");
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
    fn omitted_quota_eligibility_and_workload_fields_take_their_defaults() {
        let quota: Quota = serde_json::from_str(r#"{"dailyQuantity": 10}"#).unwrap();
        assert_eq!(quota, Quota { daily_quantity: 10, total_quantity: None, per_user: 1 });
        let eligibility: Eligibility = serde_json::from_str("{}").unwrap();
        assert_eq!(eligibility.mission, MissionRequirement::VerifiedSameDay);
        let workload: Workload = serde_json::from_str("{}").unwrap();
        assert_eq!(workload, Workload::default());
        assert_eq!(workload.replicas, Replicas { idle: 0, min: 2, max: 10 });
        let replicas: Replicas = serde_json::from_str(r#"{"max": 40}"#).unwrap();
        assert_eq!(replicas, Replicas { idle: 0, min: 2, max: 40 });
    }

    #[test]
    fn mission_requirements_are_written_as_kubernetes_string_enums() {
        assert_eq!(serde_json::to_value(MissionRequirement::VerifiedSameDay).unwrap(), "VerifiedSameDay");
        assert_eq!(serde_json::to_value(MissionRequirement::None).unwrap(), "None");
        assert_eq!(serde_json::to_value(MissionRequirement::AnyVerifiedSameDay).unwrap(), "AnyVerifiedSameDay");
        assert!(serde_json::from_str::<MissionRequirement>(r#""verifiedSameDay""#).is_err());
    }
}
