//! A person's missions of the day: stored once per (person, local date) so every replica
//! answers the same all day; chosen from the weather at their home (read through the weather
//! crate's cache, never by calling the weather service) when it is known.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use platform::clock::Clock;
use platform::db::Database;
use uuid::Uuid;
use weather::{Cell, WeatherSource};

use crate::catalog::{Catalog, Conditions};
use crate::store::{self, Assigned, Assignment, Home, Source, Status};
use platform::ttl::TtlCache;

pub struct Daily {
    pub db: Database,
    pub catalog: Arc<Catalog>,
    pub weather: WeatherSource,
    pub clock: Clock,
    /// How long a request waits for weather before answering without it.
    pub weather_wait: Duration,
    /// An AI writer runs: a day chosen from the catalog here is a day it did not write.
    pub ai_writes: bool,
    pub caches: Caches,
}

/// What a replica keeps of recent reads, so `GET /api/missions/today` — asked at every app
/// start — mostly costs no SQL. A stored day never changes (kept 10 minutes); homes change
/// through events (kept 2 s: at most that on top of the event's own lag); proofs' statuses are
/// kept 1 s and dropped at once on this replica's own writes (another replica's show within 1 s).
pub struct Caches {
    homes: TtlCache<Uuid, Option<Home>>,
    days: TtlCache<(Uuid, NaiveDate), Assignment>,
    statuses: TtlCache<(Uuid, NaiveDate), Vec<(String, Status)>>,
    /// `GET /api/missions/today`'s answer by (person, date, language), as long as statuses.
    views: TtlCache<(Uuid, NaiveDate, &'static str), bytes::Bytes>,
    /// Bumped by every write on this replica: a read that began before a write does not put
    /// what it read (it may predate the write).
    generation: std::sync::atomic::AtomicU64,
}

impl Default for Caches {
    fn default() -> Self {
        Self {
            homes: TtlCache::new(Duration::from_secs(2), 200_000),
            days: TtlCache::new(Duration::from_secs(600), 200_000),
            statuses: TtlCache::new(Duration::from_secs(1), 200_000),
            views: TtlCache::new(Duration::from_secs(1), 200_000),
            generation: std::sync::atomic::AtomicU64::new(0),
        }
    }
}

/// Today's missions and what they were chosen from.
pub struct Today {
    pub home: Option<Home>,
    pub assignment: Assignment,
    /// Not stored: chosen without a home location or without weather, so a later request
    /// (once either is known) may choose again.
    pub provisional: bool,
    pub weather_stale: bool,
}

/// The time zone a person's day is counted in (UTC when none is known or it is not valid).
pub fn zone(home: Option<&Home>) -> Tz {
    home.and_then(|h| h.time_zone.parse().ok()).unwrap_or(Tz::UTC)
}

/// The local date of `at` in `tz`.
pub fn local_date(at: DateTime<Utc>, tz: Tz) -> NaiveDate {
    at.with_timezone(&tz).date_naive()
}

/// `YYYYMMDD-slug`.
pub fn mission_id(date: NaiveDate, slug: &str) -> String {
    format!("{}-{slug}", date.format("%Y%m%d"))
}

/// The date a mission id names.
pub fn date_of(mission_id: &str) -> Option<NaiveDate> {
    let (day, slug) = mission_id.split_once('-')?;
    if day.len() != 8 || !crate::catalog::is_mission_slug(slug) {
        return None;
    }
    NaiveDate::parse_from_str(day, "%Y%m%d").ok()
}

impl Daily {
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// The day's missions: the stored ones, else chosen now (and stored when chosen from real
    /// weather at a known home).
    pub async fn today(&self, user: Uuid) -> anyhow::Result<Today> {
        let home = self.home(user).await?;
        let tz = zone(home.as_ref());
        let date = local_date(self.now(), tz);
        self.day(user, date, home, tz).await
    }

    /// The missions of `date` (which must be today in the person's zone for anything to be
    /// chosen: a past day without stored missions has none).
    pub async fn day(&self, user: Uuid, date: NaiveDate, home: Option<Home>, tz: Tz) -> anyhow::Result<Today> {
        if let Some(assignment) = self.stored(user, date).await? {
            return Ok(Today { home, assignment, provisional: false, weather_stale: false });
        }
        let today = self.choose(user, date, home, tz).await;
        if today.provisional {
            return Ok(today);
        }
        self.fix(today).await
    }

    /// Stores a chosen day (unless one was stored meanwhile: then that one).
    pub async fn fix(&self, today: Today) -> anyhow::Result<Today> {
        let assignment = self.give(&today.assignment).await?;
        if self.ai_writes && assignment.source == Source::Catalog {
            metrics::counter!("mission_ai_fallbacks_total").increment(1);
        }
        Ok(Today { assignment, provisional: false, ..today })
    }

    /// Stores a day unless one is stored already; returns the stored one.
    pub async fn give(&self, a: &Assignment) -> anyhow::Result<Assignment> {
        let stored = store::give(&self.db.pool, a, self.clock.now_millis()).await?;
        self.caches.days.put((stored.user_id, stored.date), stored.clone());
        Ok(stored)
    }

    /// Where the person lives (their last profile edit this service has seen).
    pub async fn home(&self, user: Uuid) -> anyhow::Result<Option<Home>> {
        if let Some(home) = self.caches.homes.get(&user) {
            return Ok(home);
        }
        let home = store::home(&self.db.pool, user).await?;
        self.caches.homes.put(user, home.clone());
        Ok(home)
    }

    /// The stored missions of `date`, if any.
    pub async fn stored(&self, user: Uuid, date: NaiveDate) -> anyhow::Result<Option<Assignment>> {
        if let Some(a) = self.caches.days.get(&(user, date)) {
            return Ok(Some(a));
        }
        let stored = store::assignment(&self.db.pool, user, date).await?;
        if let Some(a) = &stored {
            self.caches.days.put((user, date), a.clone());
        }
        Ok(stored)
    }

    /// The statuses of the person's proofs of `date`, by mission.
    pub async fn statuses(&self, user: Uuid, date: NaiveDate) -> anyhow::Result<Vec<(String, Status)>> {
        if let Some(s) = self.caches.statuses.get(&(user, date)) {
            return Ok(s);
        }
        let generation = self.generation();
        let statuses = store::day_statuses(&self.db.pool, user, date).await?;
        if generation == self.generation() {
            self.caches.statuses.put((user, date), statuses.clone());
        }
        Ok(statuses)
    }

    /// A proof of `date` was written here: the next read sees it.
    pub fn forget_statuses(&self, user: Uuid, date: NaiveDate) {
        self.caches.generation.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.caches.statuses.remove(&(user, date));
        for lang in ["en", "ko"] {
            self.caches.views.remove(&(user, date, lang));
        }
    }

    /// The answer of `GET /api/missions/today` made within the last second.
    pub fn view(&self, user: Uuid, date: NaiveDate, lang: &'static str) -> Option<bytes::Bytes> {
        self.caches.views.get(&(user, date, lang))
    }

    /// Keeps an answer computed from reads that began at `generation` — unless a write came
    /// since.
    pub fn keep_view(&self, user: Uuid, date: NaiveDate, lang: &'static str, view: bytes::Bytes, generation: u64) {
        if generation == self.generation() {
            self.caches.views.put((user, date, lang), view);
        }
    }

    /// The count of this replica's writes so far (see [`Caches`]).
    pub fn generation(&self) -> u64 {
        self.caches.generation.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The missions `date` would get now, not stored: for the weather at the home when both are
    /// known, else any-weather ones (`provisional`).
    pub async fn choose(&self, user: Uuid, date: NaiveDate, home: Option<Home>, tz: Tz) -> Today {
        let cell = home.as_ref().and_then(|h| h.location).and_then(|(lat, lon)| Cell::of(lat, lon));
        let weather = match cell {
            Some(cell) => match tokio::time::timeout(self.weather_wait, self.weather.get(cell)).await {
                Ok(Ok(w)) => Some(w),
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "no weather for missions; choosing without it");
                    metrics::counter!("mission_choices_without_weather_total", "why" => "unavailable").increment(1);
                    None
                }
                Err(_) => {
                    metrics::counter!("mission_choices_without_weather_total", "why" => "slow").increment(1);
                    None
                }
            },
            None => None,
        };
        let conditions = weather.as_ref().map(|w| Conditions {
            condition: w.current.condition,
            temperature_c: w.current.temperature_c,
            wind_speed_kmh: w.current.wind_speed_kmh,
            air: w.air_quality.as_ref().map(|a| a.level),
        });
        let weather_stale = weather.as_ref().is_some_and(|w| w.stale);
        Today {
            home,
            assignment: self.from_catalog(user, date, tz, conditions),
            provisional: conditions.is_none(),
            weather_stale,
        }
    }

    /// The catalog's missions for `date` under `conditions` (none: any-weather ones).
    pub fn from_catalog(&self, user: Uuid, date: NaiveDate, tz: Tz, conditions: Option<Conditions>) -> Assignment {
        let missions = self
            .catalog
            .choose(user, date, conditions.as_ref())
            .into_iter()
            .map(|e| Assigned {
                id: mission_id(date, &e.id),
                catalog_id: Some(e.id.clone()),
                title: e.title.clone(),
                description: e.description.clone(),
                proof: e.proof,
                review: e.review,
                indoor: e.indoor,
            })
            .collect();
        Assignment {
            user_id: user,
            date,
            time_zone: tz.name().to_owned(),
            weather: conditions,
            missions,
            source: Source::Catalog,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mission_ids_name_their_day() {
        let day = NaiveDate::from_ymd_opt(2026, 11, 26).unwrap();
        let id = mission_id(day, "umbrella-out");
        assert_eq!(id, "20261126-umbrella-out");
        assert_eq!(date_of(&id), Some(day));
        for bad in ["20261126", "2026112-x", "20261332-x", "20261126-Bad", "20261126-", "x-20261126", "20261126-a/b"] {
            assert_eq!(date_of(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_day_is_counted_in_the_persons_zone() {
        let at: DateTime<Utc> = "2026-11-26T16:30:00Z".parse().unwrap();
        let seoul = Home { location: None, time_zone: "Asia/Seoul".into() };
        assert_eq!(local_date(at, zone(Some(&seoul))), NaiveDate::from_ymd_opt(2026, 11, 27).unwrap());
        assert_eq!(local_date(at, zone(None)), NaiveDate::from_ymd_opt(2026, 11, 26).unwrap());
        let broken = Home { location: None, time_zone: "Mars/Olympus".into() };
        assert_eq!(zone(Some(&broken)), Tz::UTC);
    }
}
