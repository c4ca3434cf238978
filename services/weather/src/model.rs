//! Weather as clients (and the mission service) see it, whatever the provider.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Requests are rounded to a grid of this many cells per degree (0.1°: about 11 km north to
/// south): one cache entry and at most one upstream call per cell.
pub const CELLS_PER_DEGREE: f64 = 10.0;

/// A grid cell, by its centre in tenths of a degree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cell {
    pub lat10: i32,
    pub lon10: i32,
}

impl Cell {
    /// The cell holding a place; `None` outside [-90, 90] × [-180, 180] or not a number.
    pub fn of(lat: f64, lon: f64) -> Option<Cell> {
        if !(lat.is_finite() && lon.is_finite() && (-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon)) {
            return None;
        }
        // 180°E and 180°W are one meridian: one cell.
        let lon10 = (lon * CELLS_PER_DEGREE).round() as i32;
        let lon10 = if lon10 == 1800 { -1800 } else { lon10 };
        Some(Cell { lat10: (lat * CELLS_PER_DEGREE).round() as i32, lon10 })
    }

    pub fn lat(self) -> f64 {
        f64::from(self.lat10) / CELLS_PER_DEGREE
    }

    pub fn lon(self) -> f64 {
        f64::from(self.lon10) / CELLS_PER_DEGREE
    }

    /// `37.6:127.0`: the cell in cache keys and logs.
    pub fn key(self) -> String {
        format!("{}:{}", self.lat10, self.lon10)
    }
}

/// A place as coordinates.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Coordinates {
    #[schema(minimum = -90.0, maximum = 90.0, example = 37.6)]
    pub lat: f64,
    #[schema(minimum = -180.0, maximum = 180.0, example = 127.0)]
    pub lon: f64,
}

/// `GET /api/weather`: now, the next hours and the next days at a place.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Weather {
    /// Who observed it: `open-meteo` or `simulated`.
    #[schema(example = "open-meteo")]
    pub provider: String,
    /// The centre of the 0.1° grid cell the request was rounded to.
    pub location: Coordinates,
    /// The place's offset from UTC (seconds) on the provider's clock; daily dates are local.
    pub utc_offset_seconds: i32,
    /// When the current conditions were valid.
    pub observed_at: DateTime<Utc>,
    /// When this platform got them from the provider.
    pub fetched_at: DateTime<Utc>,
    /// True when the provider did not answer in time and this is the last known value.
    pub stale: bool,
    pub current: Current,
    /// Absent when the provider has none for this place or its air-quality service failed.
    pub air_quality: Option<AirQuality>,
    /// The next hours, hour by hour.
    pub hourly: Vec<Hour>,
    /// Today and the next days, by local date.
    pub daily: Vec<Day>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Current {
    #[schema(example = 3.4)]
    pub temperature_c: f64,
    /// Apparent temperature (wind chill, humidity).
    #[schema(example = -0.8)]
    pub feels_like_c: f64,
    /// Precipitation of the last interval, mm.
    #[schema(minimum = 0.0, example = 0.0)]
    pub precipitation_mm: f64,
    /// Wind speed at 10 m, km/h.
    #[schema(minimum = 0.0, example = 11.9)]
    pub wind_speed_kmh: f64,
    /// Relative humidity at 2 m, percent.
    #[schema(minimum = 0.0, maximum = 100.0, example = 81.0)]
    pub humidity_pct: f64,
    /// WMO weather interpretation code (0 clear … 99 thunderstorm with hail).
    #[schema(minimum = 0, maximum = 99, example = 3)]
    pub condition_code: u8,
    pub condition: Condition,
    pub is_day: bool,
}

/// The WMO code's family: what missions and icons key on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Condition {
    Clear,
    PartlyCloudy,
    Cloudy,
    Fog,
    Drizzle,
    Rain,
    FreezingRain,
    Snow,
    Thunderstorm,
    /// A code outside the WMO table Open-Meteo documents.
    Unknown,
}

impl Condition {
    /// The family of a WMO weather interpretation code (Open-Meteo's table).
    pub fn from_wmo(code: u8) -> Condition {
        match code {
            0 | 1 => Condition::Clear,
            2 => Condition::PartlyCloudy,
            3 => Condition::Cloudy,
            45 | 48 => Condition::Fog,
            51 | 53 | 55 => Condition::Drizzle,
            56 | 57 | 66 | 67 => Condition::FreezingRain,
            61 | 63 | 65 | 80..=82 => Condition::Rain,
            71 | 73 | 75 | 77 | 85 | 86 => Condition::Snow,
            95..=99 => Condition::Thunderstorm,
            _ => Condition::Unknown,
        }
    }

    /// Falling precipitation of any kind.
    pub fn is_wet(self) -> bool {
        matches!(
            self,
            Condition::Drizzle | Condition::Rain | Condition::FreezingRain | Condition::Snow | Condition::Thunderstorm
        )
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AirQuality {
    /// PM10, μg/m³.
    pub pm10: Option<f64>,
    /// PM2.5, μg/m³.
    pub pm2_5: Option<f64>,
    /// US AQI (0–500).
    pub us_aqi: Option<f64>,
    /// European AQI (0–100+).
    pub european_aqi: Option<f64>,
    /// The US AQI's band; `unknown` without it.
    pub level: AirLevel,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum AirLevel {
    Good,
    Moderate,
    UnhealthyForSensitiveGroups,
    Unhealthy,
    VeryUnhealthy,
    Hazardous,
    Unknown,
}

impl AirLevel {
    /// The band of a US AQI value (EPA breakpoints).
    pub fn from_us_aqi(aqi: Option<f64>) -> AirLevel {
        match aqi {
            Some(a) if a.is_finite() && a >= 0.0 => match a {
                a if a <= 50.0 => AirLevel::Good,
                a if a <= 100.0 => AirLevel::Moderate,
                a if a <= 150.0 => AirLevel::UnhealthyForSensitiveGroups,
                a if a <= 200.0 => AirLevel::Unhealthy,
                a if a <= 300.0 => AirLevel::VeryUnhealthy,
                _ => AirLevel::Hazardous,
            },
            _ => AirLevel::Unknown,
        }
    }

    /// Worse than moderate: a reason to stay in.
    pub fn is_poor(self) -> bool {
        matches!(
            self,
            AirLevel::UnhealthyForSensitiveGroups | AirLevel::Unhealthy | AirLevel::VeryUnhealthy | AirLevel::Hazardous
        )
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Hour {
    pub time: DateTime<Utc>,
    pub temperature_c: f64,
    /// Percent; absent when the provider has no probability for the hour.
    pub precipitation_probability_pct: Option<f64>,
    #[schema(minimum = 0, maximum = 99)]
    pub condition_code: u8,
    pub condition: Condition,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Day {
    /// The place's local date.
    pub date: NaiveDate,
    pub temperature_min_c: f64,
    pub temperature_max_c: f64,
    pub precipitation_mm: f64,
    pub precipitation_probability_pct: Option<f64>,
    /// The day's most severe WMO code.
    #[schema(minimum = 0, maximum = 99)]
    pub condition_code: u8,
    pub condition: Condition,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_round_to_one_cell_per_tenth_of_a_degree() {
        assert_eq!(Cell::of(37.5665, 126.978), Some(Cell { lat10: 376, lon10: 1270 }));
        assert_eq!(Cell::of(37.55, 126.95), Cell::of(37.5999, 127.0499));
        assert_eq!(Cell::of(-33.87, 151.21).map(Cell::key).as_deref(), Some("-339:1512"));
        assert_eq!(Cell::of(0.0, 180.0), Cell::of(0.0, -180.0));
        for (lat, lon) in [(90.01, 0.0), (0.0, -180.5), (f64::NAN, 0.0), (0.0, f64::INFINITY)] {
            assert_eq!(Cell::of(lat, lon), None, "{lat},{lon}");
        }
    }

    #[test]
    fn every_documented_wmo_code_has_its_family() {
        let table = [
            (0, Condition::Clear),
            (2, Condition::PartlyCloudy),
            (3, Condition::Cloudy),
            (48, Condition::Fog),
            (53, Condition::Drizzle),
            (57, Condition::FreezingRain),
            (65, Condition::Rain),
            (81, Condition::Rain),
            (77, Condition::Snow),
            (86, Condition::Snow),
            (96, Condition::Thunderstorm),
            (4, Condition::Unknown),
        ];
        for (code, family) in table {
            assert_eq!(Condition::from_wmo(code), family, "code {code}");
        }
    }

    #[test]
    fn aqi_bands_follow_the_epa_breakpoints() {
        assert_eq!(AirLevel::from_us_aqi(Some(50.0)), AirLevel::Good);
        assert_eq!(AirLevel::from_us_aqi(Some(101.0)), AirLevel::UnhealthyForSensitiveGroups);
        assert_eq!(AirLevel::from_us_aqi(Some(301.0)), AirLevel::Hazardous);
        assert_eq!(AirLevel::from_us_aqi(None), AirLevel::Unknown);
        assert!(AirLevel::Unhealthy.is_poor() && !AirLevel::Moderate.is_poor());
    }
}
