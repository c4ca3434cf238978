//! The profile as clients see and edit it.

use chrono::{DateTime, Utc};
use platform::ApiError;
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ProfileStatus {
    /// The account exists; its profile is still being created from the signup event.
    Pending,
    Active,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Location {
    #[schema(minimum = -90.0, maximum = 90.0, example = 37.5665)]
    pub lat: f64,
    #[schema(minimum = -180.0, maximum = 180.0, example = 126.978)]
    pub lon: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Units {
    Metric,
    Imperial,
}

impl Units {
    pub fn as_str(self) -> &'static str {
        match self {
            Units::Metric => "metric",
            Units::Imperial => "imperial",
        }
    }

    pub fn parse(s: &str) -> Self {
        if s == "imperial" { Units::Imperial } else { Units::Metric }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Notifications {
    pub missions: bool,
    pub coupons: bool,
    pub chat: bool,
}

impl Default for Notifications {
    fn default() -> Self {
        Self { missions: true, coupons: true, chat: true }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Preferences {
    pub units: Units,
    /// BCP 47 language tag, e.g. `ko` or `en-US`.
    #[schema(example = "ko")]
    pub language: String,
    pub notifications: Notifications,
}

/// `GET /api/users/me`. While `status` is `pending` only `userId` is set.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    pub user_id: Uuid,
    pub status: ProfileStatus,
    pub email: Option<String>,
    pub nickname: Option<String>,
    pub home_location: Option<Location>,
    /// IANA time zone, e.g. `Asia/Seoul`.
    pub time_zone: Option<String>,
    pub preferences: Option<Preferences>,
    pub created_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
}

impl Profile {
    pub fn pending(user_id: Uuid) -> Self {
        Self {
            user_id,
            status: ProfileStatus::Pending,
            email: None,
            nickname: None,
            home_location: None,
            time_zone: None,
            preferences: None,
            created_at: None,
            updated_at: None,
        }
    }
}

/// `PATCH /api/users/me`: every field optional; `homeLocation: null` clears it.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ProfilePatch {
    #[schema(
        min_length = 1,
        max_length = 32,
        pattern = r"^[^\x00-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F][^\x00-\x1F\x7F-\x9F]*$"
    )]
    pub nickname: Option<String>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Location>)]
    pub home_location: Option<Option<Location>>,
    /// An IANA time zone name exactly as the tz database spells it (the schema lists them).
    #[schema(schema_with = time_zone_schema)]
    pub time_zone: Option<String>,
    pub preferences: Option<PreferencesPatch>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PreferencesPatch {
    pub units: Option<Units>,
    #[schema(min_length = 2, max_length = 16, pattern = "^[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8})*$")]
    pub language: Option<String>,
    pub notifications: Option<NotificationsPatch>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NotificationsPatch {
    pub missions: Option<bool>,
    pub coupons: Option<bool>,
    pub chat: Option<bool>,
}

/// Distinguishes an absent field (outer `None`) from an explicit `null` (`Some(None)`).
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

pub fn check_location(loc: &Location) -> Result<(), ApiError> {
    if !(-90.0..=90.0).contains(&loc.lat) || !(-180.0..=180.0).contains(&loc.lon) {
        return Err(ApiError::unprocessable(
            "invalid-location",
            "Latitude must be within -90..90 and longitude within -180..180.",
        )
        .with("field", "homeLocation"));
    }
    Ok(())
}

/// The time zones the service accepts, as the document lists them: every name of the
/// tz database this build knows (what [`check_time_zone`] parses), or `null`.
fn time_zone_schema() -> utoipa::openapi::Object {
    use utoipa::openapi::schema::{SchemaType, Type};
    let names = chrono_tz::TZ_VARIANTS.iter().map(|z| serde_json::Value::from(z.name()));
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
        .enum_values(Some(names.chain([serde_json::Value::Null])))
        .description(Some("An IANA time zone name, e.g. `Asia/Seoul` or `UTC`."))
        .examples([serde_json::json!("Asia/Seoul")])
        .build()
}

pub fn check_time_zone(tz: &str) -> Result<String, ApiError> {
    tz.parse::<chrono_tz::Tz>().map(|z| z.name().to_owned()).map_err(|_| {
        ApiError::unprocessable(
            "invalid-time-zone",
            "The time zone must be an IANA name such as `Asia/Seoul` or `UTC`.",
        )
        .with("field", "timeZone")
    })
}

pub fn check_language(tag: &str) -> Result<String, ApiError> {
    let mut parts = tag.split('-');
    let primary_ok =
        parts.next().is_some_and(|p| (2..=8).contains(&p.len()) && p.chars().all(|c| c.is_ascii_alphabetic()));
    let rest_ok = parts.all(|p| (1..=8).contains(&p.len()) && p.chars().all(|c| c.is_ascii_alphanumeric()));
    if tag.len() > 16 || !primary_ok || !rest_ok {
        return Err(ApiError::unprocessable(
            "invalid-language",
            "The language must be a BCP 47 tag such as `ko` or `en-US`.",
        )
        .with("field", "preferences.language"));
    }
    Ok(tag.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn null_home_location_clears_and_absent_keeps() {
        let clear: ProfilePatch = serde_json::from_str(r#"{"homeLocation": null}"#).unwrap();
        assert_eq!(clear.home_location, Some(None));
        let keep: ProfilePatch = serde_json::from_str("{}").unwrap();
        assert_eq!(keep.home_location, None);
    }

    #[test]
    fn time_zones_are_iana_names() {
        assert_eq!(check_time_zone("Asia/Seoul").unwrap(), "Asia/Seoul");
        assert!(check_time_zone("Mars/Olympus").is_err());
        assert!(check_time_zone("").is_err());
    }

    #[test]
    fn out_of_range_coordinates_are_refused() {
        assert!(check_location(&Location { lat: 91.0, lon: 0.0 }).is_err());
        assert!(check_location(&Location { lat: 0.0, lon: -180.5 }).is_err());
        assert!(check_location(&Location { lat: -90.0, lon: 180.0 }).is_ok());
    }
}
