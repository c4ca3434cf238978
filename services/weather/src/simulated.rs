//! The simulated provider: weather with no network, the same for the same place and hour on
//! every replica and every run. Plausible rather than real: warmer near the equator and in the
//! local summer, warmest mid-afternoon (local solar time), rain or snow on some days, snow
//! only when it is cold, wind and air quality varying day to day. `ww dev` uses it when no
//! provider is configured; tests use it as a deterministic source.

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone as _, Timelike, Utc};

use crate::model::{AirLevel, AirQuality, Cell, Condition, Coordinates, Current, Day, Hour, Weather};
use crate::open_meteo::{DAYS, HOURS};

#[derive(Debug, Default)]
pub struct Simulated;

/// One hour's weather at one place.
struct Sample {
    temperature_c: f64,
    precipitation_mm: f64,
    wind_kmh: f64,
    humidity_pct: f64,
    code: u8,
    precipitation_chance: f64,
}

/// A well-mixed 64-bit hash (splitmix64) of the parts: the simulation's only randomness.
fn mix(parts: &[i64]) -> u64 {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for p in parts {
        x ^= *p as u64;
        x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        x = z ^ (z >> 31);
    }
    x
}

/// A number in [0, 1) from the parts.
fn unit(parts: &[i64]) -> f64 {
    (mix(parts) >> 11) as f64 / (1u64 << 53) as f64
}

impl Simulated {
    /// The place's offset from UTC by its longitude (whole hours; no political time zones).
    fn offset_seconds(cell: Cell) -> i32 {
        ((cell.lon() / 15.0).round() as i32) * 3600
    }

    fn sample(cell: Cell, at: DateTime<Utc>) -> Sample {
        let (lat, lon) = (cell.lat(), cell.lon());
        let (lat10, lon10) = (i64::from(cell.lat10), i64::from(cell.lon10));
        let day = at.date_naive();
        let day_no = i64::from(day.num_days_from_ce());
        let solar_hour = (f64::from(at.hour()) + f64::from(at.minute()) / 60.0 + lon / 15.0).rem_euclid(24.0);
        // Seasons: coldest mid-January in the north, mid-July in the south.
        let season = (2.0 * std::f64::consts::PI * (f64::from(day.ordinal()) - 15.0) / 365.25).cos();
        let hemisphere = if lat >= 0.0 { 1.0 } else { -1.0 };
        let winter = season * hemisphere; // 1 in deep winter, -1 in high summer
        let mean = 29.0 - 0.45 * lat.abs();
        let swing = 0.32 * lat.abs();
        let diurnal = 4.5 * (2.0 * std::f64::consts::PI * (solar_hour - 9.0) / 24.0).sin();
        // Day-to-day weather: a spell per place and day, a little noise per hour.
        let spell = unit(&[lat10, lon10, day_no, 1]);
        let noise = unit(&[lat10, lon10, day_no, i64::from(at.hour()), 2]);
        let temperature_c = mean - swing * winter + diurnal + (spell - 0.5) * 8.0 + (noise - 0.5) * 1.5;

        // Wetter in summer; some days dry all day, some wet for a block of hours.
        let chance = (0.25 + 0.1 * -winter).clamp(0.05, 0.6);
        let wet_day = spell < chance;
        let block = i64::from(at.hour() / 6);
        let wet_now = wet_day && unit(&[lat10, lon10, day_no, block, 3]) < 0.7;
        let precipitation_mm =
            if wet_now { 0.2 + 6.0 * unit(&[lat10, lon10, day_no, i64::from(at.hour()), 4]) } else { 0.0 };
        let wind_kmh = 3.0 + 32.0 * unit(&[lat10, lon10, day_no, block, 5]).powi(2);
        let humidity_pct = if wet_now { 85.0 + 12.0 * noise } else { 35.0 + 45.0 * noise };
        let code = if wet_now {
            let snow = temperature_c <= 0.5;
            match (snow, precipitation_mm) {
                (true, p) if p < 2.0 => 71,
                (true, p) if p < 4.5 => 73,
                (true, _) => 75,
                (false, p) if p < 1.0 => 61,
                (false, p) if p < 4.0 => 63,
                (false, _) if temperature_c > 22.0 => 95,
                (false, _) => 65,
            }
        } else {
            let cloud = unit(&[lat10, lon10, day_no, block, 6]);
            let fog = solar_hour < 8.0 && humidity_pct > 75.0 && cloud > 0.9;
            if fog { 45 } else { [0u8, 1, 2, 3][(cloud * 4.0) as usize % 4] }
        };
        Sample {
            temperature_c: round1(temperature_c),
            precipitation_mm: round1(precipitation_mm),
            wind_kmh: round1(wind_kmh),
            humidity_pct: humidity_pct.round(),
            code,
            precipitation_chance: if wet_day {
                (chance * 100.0 + 40.0).min(95.0).round()
            } else {
                (chance * 40.0).round()
            },
        }
    }

    /// What the provider reports for `cell` at `now`.
    pub fn weather(&self, cell: Cell, now: DateTime<Utc>) -> Weather {
        let observed_at = Utc
            .with_ymd_and_hms(now.year(), now.month(), now.day(), now.hour(), (now.minute() / 15) * 15, 0)
            .single()
            .unwrap_or(now);
        let s = Self::sample(cell, observed_at);
        let current = Current {
            temperature_c: s.temperature_c,
            feels_like_c: round1(feels_like(s.temperature_c, s.wind_kmh, s.humidity_pct)),
            precipitation_mm: s.precipitation_mm,
            wind_speed_kmh: s.wind_kmh,
            humidity_pct: s.humidity_pct,
            condition_code: s.code,
            condition: Condition::from_wmo(s.code),
            is_day: {
                let solar = (f64::from(observed_at.hour()) + cell.lon() / 15.0).rem_euclid(24.0);
                (6.0..18.0).contains(&solar)
            },
        };
        let hour0 = observed_at - Duration::minutes(i64::from(observed_at.minute()));
        let hourly = (1..=HOURS as i64)
            .map(|i| {
                let t = hour0 + Duration::hours(i);
                let s = Self::sample(cell, t);
                Hour {
                    time: t,
                    temperature_c: s.temperature_c,
                    precipitation_probability_pct: Some(s.precipitation_chance),
                    condition_code: s.code,
                    condition: Condition::from_wmo(s.code),
                }
            })
            .collect();
        let offset = Self::offset_seconds(cell);
        let today = (now + Duration::seconds(i64::from(offset))).date_naive();
        let daily = (0..DAYS as u64)
            .filter_map(|i| today.checked_add_days(chrono::Days::new(i)))
            .map(|d| day(cell, d, offset))
            .collect();
        // Air: worse on still, dry days.
        let (lat10, lon10) = (i64::from(cell.lat10), i64::from(cell.lon10));
        let haze = unit(&[lat10, lon10, i64::from(now.date_naive().num_days_from_ce()), 7]);
        let pm2_5 = round1(4.0 + 70.0 * haze.powi(3) * (1.0 - s.wind_kmh / 40.0).max(0.2));
        let us_aqi = us_aqi_of_pm2_5(pm2_5);
        Weather {
            provider: "simulated".to_owned(),
            location: Coordinates { lat: cell.lat(), lon: cell.lon() },
            utc_offset_seconds: offset,
            observed_at,
            fetched_at: now,
            stale: false,
            current,
            air_quality: Some(AirQuality {
                pm10: Some(round1(pm2_5 * 1.6)),
                pm2_5: Some(pm2_5),
                us_aqi: Some(us_aqi),
                european_aqi: Some((pm2_5 * 1.4).round()),
                level: AirLevel::from_us_aqi(Some(us_aqi)),
            }),
            hourly,
            daily,
        }
    }
}

/// One local day from its 24 hours.
fn day(cell: Cell, date: NaiveDate, offset: i32) -> Day {
    let midnight =
        date.and_hms_opt(0, 0, 0).map_or_else(Utc::now, |d| d.and_utc()) - Duration::seconds(i64::from(offset));
    let hours: Vec<Sample> = (0..24).map(|h| Simulated::sample(cell, midnight + Duration::hours(h))).collect();
    let worst = hours.iter().map(|s| s.code).max().unwrap_or(0);
    Day {
        date,
        temperature_min_c: hours.iter().map(|s| s.temperature_c).fold(f64::INFINITY, f64::min),
        temperature_max_c: hours.iter().map(|s| s.temperature_c).fold(f64::NEG_INFINITY, f64::max),
        precipitation_mm: round1(hours.iter().map(|s| s.precipitation_mm).sum()),
        precipitation_probability_pct: hours.iter().map(|s| s.precipitation_chance).reduce(f64::max),
        condition_code: worst,
        condition: Condition::from_wmo(worst),
    }
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// Apparent temperature: wind chill when cold and windy, a humidity term when hot.
fn feels_like(t: f64, wind_kmh: f64, humidity: f64) -> f64 {
    if t <= 10.0 && wind_kmh > 4.8 {
        let v = wind_kmh.powf(0.16);
        13.12 + 0.6215 * t - 11.37 * v + 0.3965 * t * v
    } else if t >= 27.0 {
        t + 0.1 * (humidity - 40.0).max(0.0)
    } else {
        t
    }
}

/// The US AQI of a PM2.5 concentration (EPA breakpoints, linear within each band).
fn us_aqi_of_pm2_5(pm: f64) -> f64 {
    const BANDS: [(f64, f64, f64, f64); 6] = [
        (0.0, 9.0, 0.0, 50.0),
        (9.1, 35.4, 51.0, 100.0),
        (35.5, 55.4, 101.0, 150.0),
        (55.5, 125.4, 151.0, 200.0),
        (125.5, 225.4, 201.0, 300.0),
        (225.5, 500.0, 301.0, 500.0),
    ];
    let pm = pm.clamp(0.0, 500.0);
    let (c_lo, c_hi, i_lo, i_hi) = BANDS.iter().copied().find(|b| pm <= b.1).unwrap_or(BANDS[5]);
    ((i_hi - i_lo) / (c_hi - c_lo) * (pm.max(c_lo) - c_lo) + i_lo).round()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, 0, 0).single().expect("valid time")
    }

    #[test]
    fn the_same_place_and_hour_give_the_same_weather() {
        let seoul = Cell::of(37.57, 126.98).expect("cell");
        let a = Simulated.weather(seoul, at(2026, 11, 26, 3));
        let b = Simulated.weather(seoul, at(2026, 11, 26, 3));
        assert_eq!(a, b);
        assert_eq!(a.hourly.len(), HOURS);
        assert_eq!(a.daily.len(), DAYS);
    }

    #[test]
    fn seasons_latitudes_and_hours_vary_plausibly() {
        let seoul = Cell::of(37.57, 126.98).expect("cell");
        let sydney = Cell::of(-33.87, 151.21).expect("cell");
        let singapore = Cell::of(1.35, 103.82).expect("cell");
        let mean = |cell: Cell, month: u32| -> f64 {
            let days: Vec<f64> = (1..=28)
                .map(|d| day(cell, NaiveDate::from_ymd_opt(2026, month, d).expect("date"), 0))
                .map(|d| (d.temperature_max_c + d.temperature_min_c) / 2.0)
                .collect();
            days.iter().sum::<f64>() / days.len() as f64
        };
        assert!(mean(seoul, 1) < 3.0 && mean(seoul, 7) > 20.0, "Seoul: cold January, warm July");
        assert!(mean(sydney, 7) < mean(sydney, 1), "the south's winter is July");
        assert!(mean(singapore, 1) > 24.0, "the tropics stay warm");
        // Mid-afternoon (local) is warmer than before dawn on average.
        let (mut afternoon, mut dawn) = (0.0, 0.0);
        for d in 1..=28 {
            // 15:00 and 05:00 in Seoul (UTC+8.5 solar) are 06:30 and 20:30 UTC the day before.
            afternoon += Simulated::sample(seoul, at(2026, 4, d, 6)).temperature_c;
            dawn += Simulated::sample(seoul, at(2026, 4, d, 20)).temperature_c;
        }
        assert!(afternoon > dawn + 28.0 * 4.0, "afternoons {afternoon} vs dawns {dawn}");
    }

    #[test]
    fn a_month_has_dry_and_wet_days_and_snow_only_when_cold() {
        let seoul = Cell::of(37.57, 126.98).expect("cell");
        let (mut wet, mut dry) = (0, 0);
        for month in [1, 7] {
            for d in 1..=28 {
                for h in 0..24 {
                    let s = Simulated::sample(seoul, at(2026, month, d, h));
                    if Condition::from_wmo(s.code) == Condition::Snow {
                        assert!(s.temperature_c <= 0.5, "snow at {} °C", s.temperature_c);
                    }
                    if s.precipitation_mm > 0.0 { wet += 1 } else { dry += 1 }
                }
            }
        }
        assert!(wet > 30 && dry > wet, "wet hours {wet}, dry hours {dry}");
    }

    #[test]
    fn pm2_5_maps_to_the_epa_bands() {
        assert_eq!(us_aqi_of_pm2_5(0.0), 0.0);
        assert_eq!(us_aqi_of_pm2_5(9.0), 50.0);
        assert_eq!(us_aqi_of_pm2_5(35.4), 100.0);
        assert_eq!(us_aqi_of_pm2_5(1000.0), 500.0);
    }
}
