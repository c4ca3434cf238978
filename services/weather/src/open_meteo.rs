//! The Open-Meteo client: the forecast API (current conditions, the next hours and days) and
//! the air-quality API, asked at once. Keyless on the public hosts for non-commercial use;
//! with an API key, the customer hosts (`customer-api.open-meteo.com`,
//! `customer-air-quality-api.open-meteo.com`) and `apikey` on every request.
//!
//! Times are asked as Unix seconds (`timeformat=unixtime`, all in UTC) with `timezone=auto`, so
//! daily values are the place's local days: a daily timestamp is local midnight, and the
//! local date is that instant plus `utc_offset_seconds` (Open-Meteo's documented rule).

use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use serde::Deserialize;

use crate::model::{AirLevel, AirQuality, Cell, Condition, Coordinates, Current, Day, Hour, Weather};
use crate::provider::ProviderError;

pub const PUBLIC_URL: &str = "https://api.open-meteo.com";
pub const PUBLIC_AIR_QUALITY_URL: &str = "https://air-quality-api.open-meteo.com";
pub const CUSTOMER_URL: &str = "https://customer-api.open-meteo.com";
pub const CUSTOMER_AIR_QUALITY_URL: &str = "https://customer-air-quality-api.open-meteo.com";

const CURRENT: &str =
    "temperature_2m,apparent_temperature,precipitation,relative_humidity_2m,wind_speed_10m,weather_code,is_day";
const HOURLY: &str = "temperature_2m,precipitation_probability,weather_code";
const DAILY: &str =
    "weather_code,temperature_2m_max,temperature_2m_min,precipitation_sum,precipitation_probability_max";
const AIR_CURRENT: &str = "pm10,pm2_5,us_aqi,european_aqi";
/// Hours ahead in an answer.
pub const HOURS: usize = 12;
/// Days in an answer, today included.
pub const DAYS: usize = 3;
/// The largest answer read (a forecast answer is a few kB).
const MAX_BODY: usize = 256 * 1024;

#[derive(Debug)]
pub struct OpenMeteo {
    client: reqwest::Client,
    forecast_url: String,
    air_quality_url: String,
    api_key: Option<String>,
    timeout: Duration,
}

impl OpenMeteo {
    /// `forecast_url`/`air_quality_url` are the hosts (`None`: the public ones, or the customer
    /// ones with a key); `timeout` bounds each call, connection included.
    pub fn new(
        forecast_url: Option<&str>,
        air_quality_url: Option<&str>,
        api_key: Option<&str>,
        timeout: Duration,
    ) -> anyhow::Result<Self> {
        let keyed = api_key.is_some();
        let pick = |given: Option<&str>, public: &str, customer: &str| {
            given.map_or_else(
                || if keyed { customer } else { public }.to_owned(),
                |u| u.trim_end_matches('/').to_owned(),
            )
        };
        let client = reqwest::Client::builder()
            .connect_timeout(timeout.min(Duration::from_secs(3)))
            .timeout(timeout)
            .user_agent(concat!("weatherwise/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            client,
            forecast_url: pick(forecast_url, PUBLIC_URL, CUSTOMER_URL),
            air_quality_url: pick(air_quality_url, PUBLIC_AIR_QUALITY_URL, CUSTOMER_AIR_QUALITY_URL),
            api_key: api_key.map(str::to_owned),
            timeout,
        })
    }

    pub async fn fetch(&self, cell: Cell, now: DateTime<Utc>) -> Result<Weather, ProviderError> {
        let (lat, lon) = (cell.lat().to_string(), cell.lon().to_string());
        let mut forecast = vec![
            ("latitude", lat.clone()),
            ("longitude", lon.clone()),
            ("current", CURRENT.to_owned()),
            ("hourly", HOURLY.to_owned()),
            ("forecast_hours", HOURS.to_string()),
            ("daily", DAILY.to_owned()),
            ("forecast_days", DAYS.to_string()),
            ("timezone", "auto".to_owned()),
            ("timeformat", "unixtime".to_owned()),
        ];
        let mut air = vec![
            ("latitude", lat),
            ("longitude", lon),
            ("current", AIR_CURRENT.to_owned()),
            ("timeformat", "unixtime".to_owned()),
        ];
        if let Some(key) = &self.api_key {
            forecast.push(("apikey", key.clone()));
            air.push(("apikey", key.clone()));
        }
        let (forecast_url, air_url) =
            (format!("{}/v1/forecast", self.forecast_url), format!("{}/v1/air-quality", self.air_quality_url));
        let (forecast, air) =
            tokio::join!(self.get::<ForecastWire>(&forecast_url, &forecast), self.get::<AirWire>(&air_url, &air));
        // Air quality is where the provider gives it: its failure leaves it out.
        let air_quality = match air {
            Ok(a) => Some(a.into_model()),
            Err(e) => {
                tracing::warn!(error = %e, cell = %cell.key(), "Open-Meteo air quality unavailable");
                metrics::counter!("weather_air_quality_failures_total", "outcome" => e.outcome()).increment(1);
                None
            }
        };
        forecast?.into_model(cell, now, air_quality)
    }

    async fn get<T: serde::de::DeserializeOwned>(
        &self,
        url: &str,
        query: &[(&str, String)],
    ) -> Result<T, ProviderError> {
        let timeout_ms = u64::try_from(self.timeout.as_millis()).unwrap_or(u64::MAX);
        let transport = |e: reqwest::Error| {
            // Without the URL: it holds the API key.
            if e.is_timeout() {
                ProviderError::Timeout(timeout_ms)
            } else {
                ProviderError::Unreachable(e.without_url().to_string())
            }
        };
        let mut response = self.client.get(url).query(query).send().await.map_err(transport)?;
        let status = response.status();
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(transport)? {
            body.extend_from_slice(&chunk);
            if body.len() > MAX_BODY {
                return Err(ProviderError::Malformed(format!("an answer over {MAX_BODY} bytes")));
            }
        }
        if !status.is_success() {
            let reason = serde_json::from_slice::<ErrorWire>(&body)
                .map(|e| e.reason)
                .unwrap_or_else(|_| String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned());
            return Err(ProviderError::Refused { status: status.as_u16(), reason });
        }
        serde_json::from_slice(&body).map_err(|e| ProviderError::Malformed(e.to_string()))
    }
}

#[derive(Deserialize)]
struct ErrorWire {
    reason: String,
}

#[derive(Deserialize)]
struct ForecastWire {
    utc_offset_seconds: i32,
    current: CurrentWire,
    hourly: HourlyWire,
    daily: DailyWire,
}

#[derive(Deserialize)]
struct CurrentWire {
    time: i64,
    temperature_2m: Option<f64>,
    apparent_temperature: Option<f64>,
    precipitation: Option<f64>,
    relative_humidity_2m: Option<f64>,
    wind_speed_10m: Option<f64>,
    weather_code: Option<f64>,
    is_day: Option<f64>,
}

#[derive(Deserialize)]
struct HourlyWire {
    time: Vec<i64>,
    temperature_2m: Vec<Option<f64>>,
    precipitation_probability: Vec<Option<f64>>,
    weather_code: Vec<Option<f64>>,
}

#[derive(Deserialize)]
struct DailyWire {
    time: Vec<i64>,
    weather_code: Vec<Option<f64>>,
    temperature_2m_max: Vec<Option<f64>>,
    temperature_2m_min: Vec<Option<f64>>,
    precipitation_sum: Vec<Option<f64>>,
    precipitation_probability_max: Vec<Option<f64>>,
}

#[derive(Deserialize)]
struct AirWire {
    current: AirCurrentWire,
}

#[derive(Deserialize)]
struct AirCurrentWire {
    pm10: Option<f64>,
    pm2_5: Option<f64>,
    us_aqi: Option<f64>,
    european_aqi: Option<f64>,
}

fn malformed(what: &str) -> ProviderError {
    ProviderError::Malformed(what.to_owned())
}

fn instant(secs: i64) -> Result<DateTime<Utc>, ProviderError> {
    DateTime::from_timestamp(secs, 0).ok_or_else(|| malformed("a time out of range"))
}

/// A WMO code as sent (a JSON number, sometimes `3.0`).
fn wmo(code: f64) -> Result<u8, ProviderError> {
    if code.is_finite() && (0.0..=99.0).contains(&code) && code.fract() == 0.0 {
        Ok(code as u8)
    } else {
        Err(ProviderError::Malformed(format!("weather code {code}")))
    }
}

fn required(value: Option<f64>, what: &str) -> Result<f64, ProviderError> {
    value.filter(|v| v.is_finite()).ok_or_else(|| ProviderError::Malformed(format!("no current {what}")))
}

fn same_length(columns: &[usize], what: &str) -> Result<(), ProviderError> {
    if columns.windows(2).all(|w| w[0] == w[1]) {
        Ok(())
    } else {
        Err(ProviderError::Malformed(format!("{what} columns of different lengths")))
    }
}

impl ForecastWire {
    fn into_model(
        self,
        cell: Cell,
        now: DateTime<Utc>,
        air_quality: Option<AirQuality>,
    ) -> Result<Weather, ProviderError> {
        if self.utc_offset_seconds.abs() > 18 * 3600 {
            return Err(malformed("a UTC offset beyond 18 hours"));
        }
        let c = self.current;
        let current = Current {
            temperature_c: required(c.temperature_2m, "temperature")?,
            feels_like_c: required(c.apparent_temperature, "apparent temperature")?,
            precipitation_mm: required(c.precipitation, "precipitation")?.max(0.0),
            wind_speed_kmh: required(c.wind_speed_10m, "wind speed")?.max(0.0),
            humidity_pct: required(c.relative_humidity_2m, "humidity")?.clamp(0.0, 100.0),
            condition_code: wmo(required(c.weather_code, "weather code")?)?,
            condition: Condition::Unknown,
            is_day: c.is_day.is_none_or(|d| d >= 0.5),
        };
        let current = Current { condition: Condition::from_wmo(current.condition_code), ..current };

        let h = self.hourly;
        same_length(
            &[h.time.len(), h.temperature_2m.len(), h.precipitation_probability.len(), h.weather_code.len()],
            "hourly",
        )?;
        let mut hourly = Vec::new();
        for i in 0..h.time.len() {
            // An hour the model has no value for is left out, not invented.
            let (Some(t), Some(code)) = (h.temperature_2m[i], h.weather_code[i]) else { continue };
            let code = wmo(code)?;
            hourly.push(Hour {
                time: instant(h.time[i])?,
                temperature_c: t,
                precipitation_probability_pct: h.precipitation_probability[i],
                condition_code: code,
                condition: Condition::from_wmo(code),
            });
        }

        let d = self.daily;
        same_length(
            &[
                d.time.len(),
                d.weather_code.len(),
                d.temperature_2m_max.len(),
                d.temperature_2m_min.len(),
                d.precipitation_sum.len(),
                d.precipitation_probability_max.len(),
            ],
            "daily",
        )?;
        let mut daily = Vec::new();
        for i in 0..d.time.len() {
            let (Some(max), Some(min), Some(code)) =
                (d.temperature_2m_max[i], d.temperature_2m_min[i], d.weather_code[i])
            else {
                continue;
            };
            let code = wmo(code)?;
            daily.push(Day {
                date: local_date(d.time[i], self.utc_offset_seconds)?,
                temperature_min_c: min,
                temperature_max_c: max,
                precipitation_mm: d.precipitation_sum[i].unwrap_or(0.0).max(0.0),
                precipitation_probability_pct: d.precipitation_probability_max[i],
                condition_code: code,
                condition: Condition::from_wmo(code),
            });
        }
        Ok(Weather {
            provider: "open-meteo".to_owned(),
            location: Coordinates { lat: cell.lat(), lon: cell.lon() },
            utc_offset_seconds: self.utc_offset_seconds,
            observed_at: instant(c.time)?,
            fetched_at: now,
            stale: false,
            current,
            air_quality,
            hourly,
            daily,
        })
    }
}

fn local_date(midnight: i64, offset: i32) -> Result<NaiveDate, ProviderError> {
    let local = midnight.checked_add(i64::from(offset)).ok_or_else(|| malformed("a time out of range"))?;
    Ok(instant(local)?.date_naive())
}

impl AirWire {
    fn into_model(self) -> AirQuality {
        let c = self.current;
        AirQuality {
            pm10: c.pm10,
            pm2_5: c.pm2_5,
            us_aqi: c.us_aqi,
            european_aqi: c.european_aqi,
            level: AirLevel::from_us_aqi(c.us_aqi),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An answer as Open-Meteo gives it for `timeformat=unixtime&timezone=auto` (Seoul, UTC+9).
    pub const SEOUL: &str = r#"{"latitude":37.6,"longitude":127.0,"generationtime_ms":0.1,"utc_offset_seconds":32400,
        "timezone":"Asia/Seoul","timezone_abbreviation":"GMT+9","elevation":38.0,
        "current_units":{"time":"unixtime","interval":"seconds","temperature_2m":"°C"},
        "current":{"time":1764115200,"interval":900,"temperature_2m":3.4,"apparent_temperature":-0.8,
            "precipitation":0.2,"relative_humidity_2m":81,"wind_speed_10m":11.9,"weather_code":61.0,"is_day":1},
        "hourly_units":{"time":"unixtime"},
        "hourly":{"time":[1764115200,1764118800],"temperature_2m":[3.4,null],"precipitation_probability":[70,65],"weather_code":[61,63]},
        "daily_units":{"time":"unixtime"},
        "daily":{"time":[1764082800],"weather_code":[63],"temperature_2m_max":[6.1],"temperature_2m_min":[-0.5],
            "precipitation_sum":[4.2],"precipitation_probability_max":[80]}}"#;

    fn parse(body: &str) -> Result<Weather, ProviderError> {
        let wire: ForecastWire = serde_json::from_str(body).map_err(|e| ProviderError::Malformed(e.to_string()))?;
        wire.into_model(Cell { lat10: 376, lon10: 1270 }, Utc::now(), None)
    }

    #[test]
    fn an_answer_becomes_the_model_with_local_dates() {
        let w = parse(SEOUL).expect("parses");
        assert_eq!(w.current.condition, Condition::Rain);
        assert_eq!(w.current.humidity_pct, 81.0);
        assert_eq!(w.observed_at.timestamp(), 1_764_115_200);
        // The hour without a temperature is left out, not invented.
        assert_eq!(w.hourly.len(), 1);
        // 1764082800 is 2025-11-25T15:00Z: local midnight of 26 November in Seoul.
        assert_eq!(w.daily[0].date, NaiveDate::from_ymd_opt(2025, 11, 26).expect("date"));
        assert_eq!(w.utc_offset_seconds, 32_400);
    }

    #[test]
    fn broken_answers_are_malformed_not_guessed() {
        let cases = [
            SEOUL.replace(r#""temperature_2m":3.4,"apparent"#, r#""temperature_2m":null,"apparent"#),
            SEOUL.replace(r#""weather_code":61.0"#, r#""weather_code":612"#),
            SEOUL.replace(r#""precipitation_probability":[70,65]"#, r#""precipitation_probability":[70]"#),
            SEOUL.replace(r#""utc_offset_seconds":32400"#, r#""utc_offset_seconds":"nine""#),
            SEOUL.replace(r#""daily":{"time":[1764082800]"#, r#""daily":{"time":[99999999999999]"#),
            r#"{"current":{}}"#.to_owned(),
        ];
        for body in cases {
            assert!(matches!(parse(&body), Err(ProviderError::Malformed(_))), "{body}");
        }
    }
}
