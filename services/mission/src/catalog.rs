//! The daily mission catalog (`catalog/daily.yaml`, or a file given by `WW_MISSION_CATALOG`)
//! and how a day's missions are chosen from it: up to two that suit the weather at the person's
//! home, topped up with any-weather ones, ordered by a hash of (person, date, mission) — the
//! same choice on every replica, different from person to person.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;
use uuid::Uuid;
use weather::Condition;
use weather::model::AirLevel;

/// The catalog compiled in.
pub const BUILT_IN: &str = include_str!("../catalog/daily.yaml");
/// Missions a day.
pub const PER_DAY: usize = 3;
/// Of which at most this many are chosen for the weather.
const FOR_THE_WEATHER: usize = 2;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Text {
    pub en: String,
    pub ko: String,
}

impl Text {
    /// The text in `language` (a BCP 47 tag's primary subtag), English otherwise.
    pub fn pick(&self, language: &str) -> &str {
        if language == "ko" { &self.ko } else { &self.en }
    }
}

/// What a mission's proof must hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Proof {
    Photo,
    Text,
    PhotoAndText,
}

impl Proof {
    pub fn needs_photo(self) -> bool {
        matches!(self, Proof::Photo | Proof::PhotoAndText)
    }

    pub fn needs_text(self) -> bool {
        matches!(self, Proof::Text | Proof::PhotoAndText)
    }
}

/// Who accepts a proof.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Review {
    /// Accepted when submitted.
    Automatic,
    /// A moderator approves or rejects it.
    Moderator,
}

/// The weather a mission suits; every test given must pass, none given = any weather.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct When {
    pub conditions: Option<Vec<Condition>>,
    pub min_temp_c: Option<f64>,
    pub max_temp_c: Option<f64>,
    pub min_wind_kmh: Option<f64>,
    pub poor_air: Option<bool>,
}

/// The weather a choice is made from.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Conditions {
    pub condition: Condition,
    pub temperature_c: f64,
    pub wind_speed_kmh: f64,
    /// Absent when the provider gave no air quality.
    pub air: Option<AirLevel>,
}

impl When {
    fn is_any(&self) -> bool {
        *self == When::default()
    }

    pub fn suits(&self, now: &Conditions) -> bool {
        self.conditions.as_ref().is_none_or(|c| c.contains(&now.condition))
            && self.min_temp_c.is_none_or(|t| now.temperature_c >= t)
            && self.max_temp_c.is_none_or(|t| now.temperature_c <= t)
            && self.min_wind_kmh.is_none_or(|w| now.wind_speed_kmh >= w)
            // Unknown air is not poor air.
            && self.poor_air.is_none_or(|p| p == now.air.is_some_and(AirLevel::is_poor))
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Entry {
    pub id: String,
    pub title: Text,
    pub description: Text,
    #[serde(default)]
    pub when: When,
    pub proof: Proof,
    pub review: Review,
    #[serde(default)]
    pub indoor: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    missions: Vec<Entry>,
}

#[derive(Debug, Clone)]
pub struct Catalog {
    entries: Vec<Entry>,
}

/// `[a-z0-9-]`, 1–40, not starting or ending with `-`.
pub fn is_mission_slug(id: &str) -> bool {
    (1..=40).contains(&id.len())
        && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !id.starts_with('-')
        && !id.ends_with('-')
}

impl Catalog {
    /// Parses and checks a catalog: ids unique and well formed, texts present, bounds that can
    /// hold, and enough any-weather missions that every day has a full set.
    pub fn parse(yaml: &str) -> anyhow::Result<Catalog> {
        let file: File = serde_yaml::from_str(yaml)?;
        let mut seen = std::collections::HashSet::new();
        for e in &file.missions {
            anyhow::ensure!(
                is_mission_slug(&e.id),
                "mission id `{}`: 1-40 of [a-z0-9-], not starting or ending with -",
                e.id
            );
            anyhow::ensure!(seen.insert(e.id.clone()), "mission id `{}` appears twice", e.id);
            for (what, t) in [("title", &e.title), ("description", &e.description)] {
                anyhow::ensure!(
                    !t.en.trim().is_empty() && !t.ko.trim().is_empty() && t.en.len() <= 500 && t.ko.len() <= 500,
                    "mission `{}`: {what} needs en and ko, each 1-500 bytes",
                    e.id
                );
            }
            if let (Some(lo), Some(hi)) = (e.when.min_temp_c, e.when.max_temp_c) {
                anyhow::ensure!(lo <= hi, "mission `{}`: minTempC above maxTempC", e.id);
            }
            anyhow::ensure!(
                e.when.conditions.as_ref().is_none_or(|c| !c.is_empty()),
                "mission `{}`: conditions is empty (leave it out for any weather)",
                e.id
            );
        }
        let any = file.missions.iter().filter(|e| e.when.is_any()).count();
        anyhow::ensure!(any >= PER_DAY, "the catalog needs at least {PER_DAY} any-weather missions, has {any}");
        Ok(Catalog { entries: file.missions })
    }

    pub fn built_in() -> Catalog {
        // Checked by a test; a broken built-in catalog is a build that must not ship.
        Catalog::parse(BUILT_IN).unwrap_or_else(|e| panic!("the built-in mission catalog is invalid: {e}"))
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    pub fn get(&self, id: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.id == id)
    }

    /// The day's missions for `user` on `date`: with known weather, up to two suiting it, then
    /// any-weather ones; without, any-weather ones only. Always [`PER_DAY`].
    pub fn choose(&self, user: Uuid, date: NaiveDate, weather: Option<&Conditions>) -> Vec<&Entry> {
        let rank = |e: &&Entry| -> [u8; 8] {
            let digest = Sha256::digest(format!("{user}|{date}|{}", e.id));
            let mut first = [0u8; 8];
            first.copy_from_slice(&digest[..8]);
            first
        };
        let mut suited: Vec<&Entry> = match weather {
            Some(now) => self.entries.iter().filter(|e| !e.when.is_any() && e.when.suits(now)).collect(),
            None => Vec::new(),
        };
        suited.sort_by_key(rank);
        suited.truncate(FOR_THE_WEATHER);
        let mut any: Vec<&Entry> = self.entries.iter().filter(|e| e.when.is_any()).collect();
        any.sort_by_key(rank);
        suited.extend(any.into_iter().take(PER_DAY - suited.len()));
        suited
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now(condition: Condition, t: f64, wind: f64, air: Option<AirLevel>) -> Conditions {
        Conditions { condition, temperature_c: t, wind_speed_kmh: wind, air }
    }

    fn ids(chosen: &[&Entry]) -> Vec<String> {
        chosen.iter().map(|e| e.id.clone()).collect()
    }

    #[test]
    fn the_built_in_catalog_is_valid() {
        assert!(Catalog::built_in().entries().len() >= 10);
    }

    #[test]
    fn the_weather_picks_its_missions() {
        let c = Catalog::built_in();
        let (user, day) = (Uuid::from_u128(7), NaiveDate::from_ymd_opt(2026, 11, 26).unwrap());
        let cases = [
            (now(Condition::Rain, 12.0, 5.0, None), ["umbrella-out", "rain-sounds"].as_slice()),
            (now(Condition::Clear, 18.0, 5.0, Some(AirLevel::Good)), &["sunny-walk"]),
            (now(Condition::Clear, 33.0, 5.0, Some(AirLevel::Good)), &["hydrate", "shade-break"]),
            (now(Condition::Snow, -3.0, 5.0, None), &["snow-photo", "snowman", "bundle-up"]),
            (now(Condition::Cloudy, 8.0, 40.0, None), &["windy-day", "cloud-shapes"]),
            (now(Condition::Clear, 18.0, 5.0, Some(AirLevel::Unhealthy)), &["mask-on", "indoor-stretch"]),
            (now(Condition::Thunderstorm, 24.0, 20.0, None), &["storm-safe", "rain-sounds"]),
            (now(Condition::Fog, 6.0, 2.0, None), &["fog-photo"]),
        ];
        for (weather, expected) in cases {
            let chosen = c.choose(user, day, Some(&weather));
            assert_eq!(chosen.len(), PER_DAY);
            let for_weather: Vec<String> = chosen.iter().filter(|e| !e.when.is_any()).map(|e| e.id.clone()).collect();
            assert!(!for_weather.is_empty(), "{weather:?}: nothing for the weather in {:?}", ids(&chosen));
            for id in &for_weather {
                assert!(expected.contains(&id.as_str()), "{weather:?}: {id} does not suit it");
            }
            // Nothing that contradicts the weather: no sunny walk in the rain.
            assert!(chosen.iter().all(|e| e.when.is_any() || e.when.suits(&weather)));
        }
    }

    #[test]
    fn without_weather_a_day_gets_any_weather_missions_and_the_choice_is_stable() {
        let c = Catalog::built_in();
        let day = NaiveDate::from_ymd_opt(2026, 11, 26).unwrap();
        let a = ids(&c.choose(Uuid::from_u128(1), day, None));
        assert_eq!(a.len(), PER_DAY);
        assert!(a.iter().all(|id| c.get(id).is_some_and(|e| e.when.is_any())));
        assert_eq!(a, ids(&c.choose(Uuid::from_u128(1), day, None)), "same person, same day: same missions");
        let others: std::collections::HashSet<Vec<String>> = (0..50)
            .map(|u| ids(&c.choose(Uuid::from_u128(u), day, Some(&now(Condition::Rain, 10.0, 3.0, None)))))
            .collect();
        assert!(others.len() > 1, "people get different sets");
    }

    #[test]
    fn broken_catalogs_are_refused_with_the_reason() {
        let entry = |id: &str, when: &str| {
            format!(
                "  - id: {id}\n    title: {{ en: T, ko: 티 }}\n    description: {{ en: D, ko: 디 }}\n{when}    proof: photo\n    review: automatic\n"
            )
        };
        let any3 = format!("{}{}{}", entry("a", ""), entry("b", ""), entry("c", ""));
        assert!(Catalog::parse(&format!("missions:\n{any3}")).is_ok());
        let cases = [
            (format!("missions:\n{any3}{}", entry("a", "")), "twice"),
            (format!("missions:\n{any3}{}", entry("Bad_Id", "")), "[a-z0-9-]"),
            (format!("missions:\n{}{}", entry("a", ""), entry("b", "")), "at least 3"),
            (format!("missions:\n{any3}{}", entry("d", "    when: { minTempC: 5, maxTempC: 1 }\n")), "minTempC"),
            (format!("missions:\n{any3}{}", entry("d", "    when: { conditions: [] }\n")), "empty"),
            (format!("missions:\n{any3}{}", entry("d", "    when: { conditions: [sleet] }\n")), "sleet"),
            (format!("missions:\n{any3}{}", entry("d", "    when: { colour: blue }\n")), "colour"),
        ];
        for (yaml, reason) in cases {
            let err = Catalog::parse(&yaml).unwrap_err().to_string();
            assert!(err.contains(reason), "expected `{reason}` in: {err}");
        }
    }
}
