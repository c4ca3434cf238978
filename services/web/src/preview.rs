//! The dashboard's campaign editor: YAML pasted or uploaded, checked and previewed with the code
//! `ww campaign check|preview` and the operator run (`campaign::check`, `Campaign::plan_at`,
//! `Campaign::preview`), answered as data for the page to show.

use campaign::check::{Layer, Problem};
use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use platform::ApiError;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

/// The longest YAML accepted (the whole body is bounded by the server's body limit too).
pub const YAML_MAX_BYTES: usize = 60_000;
pub const DAYS_MAX: u16 = 31;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CheckRequest {
    /// One or more YAML documents; documents of other kinds are passed over.
    #[schema(
        min_length = 1,
        max_length = 60000,
        example = "apiVersion: weatherwise.io/v1alpha1\nkind: CouponCampaign\n…"
    )]
    pub yaml: String,
    /// How many campaign days to preview (default 7).
    #[schema(minimum = 1, maximum = 31)]
    pub days: Option<u16>,
    /// The first day to preview (default: today in each campaign's time zone); 2000-01-01 to
    /// 9999-12-31.
    pub from: Option<NaiveDate>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CheckResponse {
    pub campaigns: Vec<CheckedCampaign>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CheckedCampaign {
    /// The document's number in the YAML, from 1.
    pub document: usize,
    pub name: String,
    /// Empty when the API server would store it and the operator would run it.
    pub problems: Vec<CheckProblem>,
    /// Present when there are no problems.
    pub preview: Option<CampaignPreview>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CheckProblem {
    /// `schema` and `cel`: refused by the API server; `rules`: stored, then refused by the operator.
    #[schema(example = "cel")]
    pub layer: &'static str,
    /// The field, e.g. `spec.quota.dailyQuantity`; empty for the whole object.
    pub path: String,
    pub message: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CampaignPreview {
    pub display_name: String,
    pub time_zone: String,
    pub daily_quantity: u32,
    pub total_quantity: Option<u64>,
    pub per_user: u32,
    pub requires_mission: bool,
    pub suspended: bool,
    pub replicas_idle: u32,
    pub replicas_min: u32,
    pub replicas_max: u32,
    pub prewarm_seconds: u32,
    /// What the operator would report now (`Scheduled`, `Prewarming`, `Open`, …).
    pub phase_now: String,
    pub next_change: Option<DateTime<Utc>>,
    pub days: Vec<PreviewDay>,
}

/// One campaign day. Times are instants (UTC); `local` gives the wall-clock times in the
/// campaign's time zone.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PreviewDay {
    pub day: NaiveDate,
    pub prewarm: DateTime<Utc>,
    pub opening: DateTime<Utc>,
    pub closing: DateTime<Utc>,
    pub idle: DateTime<Utc>,
    /// `HH:MM` of pre-warm, opening, closing and idle, in the campaign's time zone.
    pub local: [String; 4],
    pub quantity: u32,
    /// Daylight-saving and other notes.
    pub notes: Vec<String>,
}

fn layer(l: Layer) -> &'static str {
    match l {
        Layer::Shape => "schema",
        Layer::Cel => "cel",
        Layer::Rules => "rules",
    }
}

fn unprocessable(code: &'static str, detail: impl Into<String>) -> ApiError {
    ApiError::unprocessable(code, detail)
}

/// Checks every campaign of `request.yaml` and previews the ones without problems, at `now`.
pub fn check(request: &CheckRequest, now: DateTime<Utc>) -> Result<CheckResponse, ApiError> {
    if request.yaml.len() > YAML_MAX_BYTES {
        return Err(
            unprocessable("invalid-body", format!("yaml is at most {YAML_MAX_BYTES} bytes.")).with("field", "yaml")
        );
    }
    let days = request.days.unwrap_or(7);
    if !(1..=DAYS_MAX).contains(&days) {
        return Err(unprocessable("invalid-body", format!("days is 1 to {DAYS_MAX}.")).with("field", "days"));
    }
    if let Some(from) = request.from
        && !campaign::DATE_YEARS.contains(&chrono::Datelike::year(&from))
    {
        return Err(unprocessable(
            "invalid-body",
            format!(
                "from must be a date from {}-01-01 to {}-12-31.",
                campaign::DATE_YEARS.start(),
                campaign::DATE_YEARS.end()
            ),
        )
        .with("field", "from"));
    }
    let documents = campaign::resources_in_yaml(&request.yaml).map_err(|e| {
        let mut error = unprocessable("invalid-yaml", format!("Not YAML: {e}"));
        if let Some(at) = e.location() {
            error = error.with("line", at.line()).with("column", at.column());
        }
        error
    })?;
    if documents.is_empty() {
        return Err(unprocessable("no-campaign", "No document of kind CouponCampaign in the YAML."));
    }
    let campaigns = documents
        .into_iter()
        .map(|(document, object)| checked(document, &object, usize::from(days), request.from, now))
        .collect();
    Ok(CheckResponse { campaigns })
}

fn checked(
    document: usize,
    object: &Value,
    days: usize,
    from: Option<NaiveDate>,
    now: DateTime<Utc>,
) -> CheckedCampaign {
    let name = object.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("").to_owned();
    let problems: Vec<Problem> = campaign::check::check(object, None);
    let preview = if problems.is_empty() { preview(object, days, from, now) } else { None };
    let problems = problems
        .into_iter()
        .map(|p| CheckProblem { layer: layer(p.layer), path: p.path, message: p.message })
        .collect();
    CheckedCampaign { document, name, problems, preview }
}

fn preview(object: &Value, days: usize, from: Option<NaiveDate>, now: DateTime<Utc>) -> Option<CampaignPreview> {
    let resource = campaign::check::read(object).ok()?;
    let name = resource.metadata.name.clone().unwrap_or_default();
    let c = campaign::Campaign::new(&name, resource.spec).ok()?;
    let spec = c.spec();
    let tz: Tz = c.tz();
    let plan = c.plan_at(now, campaign::plan::Observed::default());
    let local = |t: DateTime<Utc>| t.with_timezone(&tz).format("%H:%M").to_string();
    let start = from.unwrap_or_else(|| c.day_of(now));
    let days = c
        .preview(start, days)
        .into_iter()
        .map(|d| PreviewDay {
            day: d.day,
            local: [local(d.prewarm), local(d.opening), local(d.closing), local(d.idle)],
            prewarm: d.prewarm,
            opening: d.opening,
            closing: d.closing,
            idle: d.idle,
            quantity: d.quantity,
            notes: d.notes,
        })
        .collect();
    Some(CampaignPreview {
        display_name: spec.display_name.clone(),
        time_zone: spec.schedule.time_zone.clone(),
        daily_quantity: spec.quota.daily_quantity,
        total_quantity: spec.quota.total_quantity,
        per_user: spec.quota.per_user,
        requires_mission: spec.eligibility.mission.needs_mission(),
        suspended: spec.suspend,
        replicas_idle: spec.workload.replicas.idle,
        replicas_min: spec.workload.replicas.min,
        replicas_max: spec.workload.replicas.max,
        prewarm_seconds: spec.workload.prewarm_seconds,
        phase_now: plan.phase.to_string(),
        next_change: plan.next_change,
        days,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = include_str!("../../../config/samples/coupon-campaign-demo.yaml");

    fn request(yaml: &str) -> CheckRequest {
        CheckRequest { yaml: yaml.to_owned(), days: Some(3), from: None }
    }

    #[test]
    fn a_sample_campaign_is_previewed_day_by_day() {
        let response = check(&request(SAMPLE), Utc::now()).unwrap();
        let first = &response.campaigns[0];
        assert!(first.problems.is_empty(), "{:?}", first.problems);
        let preview = first.preview.as_ref().unwrap();
        assert!(preview.days.len() <= 3);
        for d in &preview.days {
            assert!(d.prewarm <= d.opening && d.opening < d.closing && d.closing <= d.idle);
        }
    }

    #[test]
    fn problems_name_their_field_and_layer() {
        let broken = SAMPLE.replacen("dailyQuantity:", "dailyQuantity: -5\n    ignoredQuantity:", 1);
        let response = check(&request(&broken), Utc::now()).unwrap();
        let first = &response.campaigns[0];
        assert!(first.preview.is_none());
        assert!(first.problems.iter().any(|p| p.path.contains("quota")), "{:?}", first.problems);
    }

    #[test]
    fn bad_input_is_a_clear_422() {
        assert_eq!(check(&request("a: [b"), Utc::now()).unwrap_err().code(), "invalid-yaml");
        assert_eq!(check(&request("kind: ConfigMap"), Utc::now()).unwrap_err().code(), "no-campaign");
        let too_many = CheckRequest { yaml: SAMPLE.to_owned(), days: Some(99), from: None };
        assert_eq!(check(&too_many, Utc::now()).unwrap_err().code(), "invalid-body");
        let far =
            CheckRequest { yaml: SAMPLE.to_owned(), days: Some(7), from: NaiveDate::from_ymd_opt(-262_000, 1, 1) };
        assert_eq!(check(&far, Utc::now()).unwrap_err().code(), "invalid-body");
    }

    #[test]
    fn dates_beyond_what_the_api_server_accepts_are_problems_not_panics() {
        let far = SAMPLE
            .replace("startDate: 2026-11-01", "startDate: \"+262142-12-25\"")
            .replace("endDate: 2027-10-31", "endDate: \"+262142-12-31\"");
        assert_ne!(far, SAMPLE);
        let response = check(&request(&far), Utc::now()).unwrap();
        let problems = &response.campaigns[0].problems;
        assert!(problems.iter().any(|p| p.path == "spec.schedule.startDate"), "{problems:?}");
        assert!(response.campaigns[0].preview.is_none());
    }
}
