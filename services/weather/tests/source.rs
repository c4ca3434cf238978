//! The weather source against a fake Open-Meteo started here over real HTTP: answers parsed,
//! one upstream call per cell however many miss at once (in a process, and across replicas on
//! Redis), and slow, failing and malformed upstreams answered with the last known value marked
//! stale within a bounded time — from Redis, else from SQL — or a clear error, never a hang.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use platform::clock::Clock;
use platform::db::{Database, DatabaseUrl};
use weather::provider::{Provider, ProviderError};
use weather::{Cache, Cell, Condition, Timing, WeatherSource};

/// What the fake answers.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Ok,
    /// Answers after this many milliseconds.
    Slow(u64),
    Status(u16),
    Malformed,
}

#[derive(Default)]
struct Fake {
    /// Mode::Ok = 0, Slow = 1, Status = 2, Malformed = 3; with its argument.
    mode: AtomicU64,
    arg: AtomicU64,
    air_mode: AtomicU64,
    forecast_calls: AtomicUsize,
    air_calls: AtomicUsize,
    last_query: std::sync::Mutex<String>,
}

impl Fake {
    fn set(&self, mode: Mode) {
        let (m, a) = match mode {
            Mode::Ok => (0, 0),
            Mode::Slow(ms) => (1, ms),
            Mode::Status(s) => (2, u64::from(s)),
            Mode::Malformed => (3, 0),
        };
        self.arg.store(a, Ordering::SeqCst);
        self.mode.store(m, Ordering::SeqCst);
    }

    fn calls(&self) -> usize {
        self.forecast_calls.load(Ordering::SeqCst)
    }
}

const FORECAST: &str = r#"{"latitude":37.6,"longitude":127.0,"generationtime_ms":0.1,"utc_offset_seconds":32400,
    "timezone":"Asia/Seoul","timezone_abbreviation":"GMT+9","elevation":38.0,
    "current":{"time":1764115200,"interval":900,"temperature_2m":-2.5,"apparent_temperature":-6.0,
        "precipitation":1.2,"relative_humidity_2m":90,"wind_speed_10m":14.0,"weather_code":73,"is_day":0},
    "hourly":{"time":[1764118800,1764122400],"temperature_2m":[-2.8,-3.0],"precipitation_probability":[80,75],"weather_code":[73,71]},
    "daily":{"time":[1764082800,1764169200],"weather_code":[75,3],"temperature_2m_max":[0.5,2.0],"temperature_2m_min":[-4.0,-5.0],
        "precipitation_sum":[6.0,0.0],"precipitation_probability_max":[90,10]}}"#;
const AIR: &str = r#"{"latitude":37.6,"longitude":127.0,"current":{"time":1764115200,"interval":3600,"pm10":60.1,"pm2_5":41.0,"us_aqi":114,"european_aqi":55}}"#;

async fn answer(fake: &Fake, mode: u64, body: &'static str) -> axum::response::Response {
    match mode {
        1 => {
            tokio::time::sleep(Duration::from_millis(fake.arg.load(Ordering::SeqCst))).await;
            ([("content-type", "application/json")], body).into_response()
        }
        2 => {
            let status = StatusCode::from_u16(u16::try_from(fake.arg.load(Ordering::SeqCst)).unwrap()).unwrap();
            (
                status,
                [("content-type", "application/json")],
                r#"{"error":true,"reason":"Daily API request limit exceeded"}"#,
            )
                .into_response()
        }
        3 => ([("content-type", "application/json")], r#"{"current": {"time": "yesterday"}"#).into_response(),
        _ => ([("content-type", "application/json")], body).into_response(),
    }
}

async fn start_fake() -> (String, Arc<Fake>) {
    let fake = Arc::new(Fake::default());
    let app = Router::new()
        .route(
            "/v1/forecast",
            get(|State(f): State<Arc<Fake>>, RawQuery(q): RawQuery| async move {
                f.forecast_calls.fetch_add(1, Ordering::SeqCst);
                *f.last_query.lock().unwrap() = q.unwrap_or_default();
                answer(&f, f.mode.load(Ordering::SeqCst), FORECAST).await
            }),
        )
        .route(
            "/v1/air-quality",
            get(|State(f): State<Arc<Fake>>| async move {
                f.air_calls.fetch_add(1, Ordering::SeqCst);
                answer(&f, f.air_mode.load(Ordering::SeqCst), AIR).await
            }),
        )
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, fake)
}

fn timing() -> Timing {
    Timing {
        fresh: Duration::from_secs(600),
        stale_max: Duration::from_secs(3600),
        upstream_timeout: Duration::from_millis(800),
        stale_after: Duration::from_millis(300),
    }
}

fn open_meteo(url: &str, key: Option<&str>) -> Provider {
    Provider::OpenMeteo(
        weather::open_meteo::OpenMeteo::new(Some(url), Some(url), key, timing().upstream_timeout).unwrap(),
    )
}

const SEOUL: Cell = Cell { lat10: 376, lon10: 1270 };

async fn sqlite() -> (Database, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(&DatabaseUrl::SqliteDir(dir.path().to_owned()), weather::SERVICE, 2, weather::migrator())
        .await
        .unwrap();
    (db, dir)
}

async fn redis_cache(prefix: &str) -> Cache {
    let client = redis::Client::open(platform::testing::backend("WW_TEST_REDIS_URL")).unwrap();
    Cache::redis(redis::aio::ConnectionManager::new(client).await.unwrap(), prefix)
}

#[tokio::test]
async fn an_open_meteo_answer_is_served_and_then_cached() {
    let (url, fake) = start_fake().await;
    let source = WeatherSource::new(open_meteo(&url, Some("k3y")), Cache::memory(), None, Clock::System, timing());
    let w = source.get(SEOUL).await.unwrap();
    assert_eq!((w.provider.as_str(), w.stale), ("open-meteo", false));
    assert_eq!(w.current.condition, Condition::Snow);
    assert_eq!(w.current.temperature_c, -2.5);
    assert_eq!(w.air_quality.as_ref().map(|a| a.us_aqi), Some(Some(114.0)));
    assert_eq!(w.daily.len(), 2);
    let query = fake.last_query.lock().unwrap().clone();
    for part in ["latitude=37.6", "longitude=127", "timeformat=unixtime", "timezone=auto", "apikey=k3y", "weather_code"]
    {
        assert!(query.contains(part), "{part} missing from {query}");
    }
    for _ in 0..5 {
        assert_eq!(source.get(SEOUL).await.unwrap(), w);
    }
    assert_eq!(fake.calls(), 1, "a fresh value is served from the cache");
}

#[tokio::test]
async fn a_hundred_concurrent_misses_make_one_upstream_call() {
    let (url, fake) = start_fake().await;
    fake.set(Mode::Slow(150));
    let source = WeatherSource::new(open_meteo(&url, None), Cache::memory(), None, Clock::System, timing());
    let gets = (0..100).map(|_| {
        let source = source.clone();
        tokio::spawn(async move { source.get(SEOUL).await })
    });
    for r in futures::future::join_all(gets).await {
        assert!(!r.unwrap().unwrap().stale);
    }
    assert_eq!(fake.calls(), 1);
}

#[tokio::test]
#[cfg_attr(ww_no_backends, ignore = "WW_TEST_NO_BACKENDS was set: needs Redis")]
async fn replicas_sharing_redis_make_one_upstream_call_between_them() {
    let (url, fake) = start_fake().await;
    fake.set(Mode::Slow(200));
    let prefix = format!("ww-test:{}:", uuid_like());
    let mut gets = Vec::new();
    for _ in 0..3 {
        let replica =
            WeatherSource::new(open_meteo(&url, None), redis_cache(&prefix).await, None, Clock::System, timing());
        for _ in 0..40 {
            let replica = replica.clone();
            gets.push(tokio::spawn(async move { replica.get(SEOUL).await }));
        }
    }
    for r in futures::future::join_all(gets).await {
        assert!(!r.unwrap().unwrap().stale);
    }
    assert_eq!(fake.calls(), 1, "one replica holds the cell's lease; the others read its value");
}

fn uuid_like() -> String {
    format!("{:x}{:x}", std::process::id(), Instant::now().elapsed().as_nanos() ^ rand_nanos())
}

fn rand_nanos() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
}

/// A clock past the freshness window of a value fetched now, so a read must refresh.
fn later() -> Clock {
    Clock::Skewed(chrono::Duration::seconds(700))
}

#[tokio::test]
async fn slow_failing_and_malformed_upstreams_serve_the_last_known_value_marked_stale_in_bounded_time() {
    for mode in [Mode::Slow(5_000), Mode::Status(500), Mode::Status(429), Mode::Malformed] {
        let (url, fake) = start_fake().await;
        let (db, _dir) = sqlite().await;
        let clock = Clock::manual(chrono::Utc::now());
        let source =
            WeatherSource::new(open_meteo(&url, None), Cache::memory(), Some(db.clone()), clock.clone(), timing());
        let fresh = source.get(SEOUL).await.unwrap();
        // Past the freshness window, the provider in trouble: the cached value, marked stale…
        clock.advance(chrono::Duration::seconds(700));
        fake.set(mode);
        let bound = timing().stale_after + Duration::from_millis(700);
        let started = Instant::now();
        let w = source.get(SEOUL).await.unwrap();
        assert!(started.elapsed() < bound, "answered in {:?}, bound {bound:?}", started.elapsed());
        assert!(w.stale, "served the last known value marked stale");
        assert_eq!(w.current, fresh.current);
        // …and with the cache lost too (a fresh replica), the value kept in SQL.
        let replica = WeatherSource::new(open_meteo(&url, None), Cache::memory(), Some(db), clock.clone(), timing());
        let started = Instant::now();
        let w = replica.get(SEOUL).await.unwrap();
        assert!(started.elapsed() < bound, "answered in {:?}, bound {bound:?}", started.elapsed());
        assert!(w.stale);
        assert_eq!((w.current, w.fetched_at), (fresh.current.clone(), fresh.fetched_at));
        // Once the provider is back (and the failed refresh over), the next read is fresh again.
        fake.set(Mode::Ok);
        tokio::time::sleep(timing().upstream_timeout).await;
        let w = source.get(SEOUL).await.unwrap();
        assert!(!w.stale, "fresh after the provider recovered");
        assert!(w.fetched_at > fresh.fetched_at);
    }
}

#[tokio::test]
async fn with_nothing_known_a_broken_upstream_is_a_clear_error_within_the_timeout() {
    for (mode, expect) in [
        (Mode::Slow(10_000), "timeout"),
        (Mode::Status(503), "refused"),
        (Mode::Status(429), "rate-limited"),
        (Mode::Malformed, "malformed"),
    ] {
        let (url, fake) = start_fake().await;
        fake.set(mode);
        let source = WeatherSource::new(open_meteo(&url, None), Cache::memory(), None, Clock::System, timing());
        let started = Instant::now();
        let err = source.get(SEOUL).await.unwrap_err();
        assert_eq!(err.0.outcome(), expect, "{err}");
        let bound = timing().stale_after + timing().upstream_timeout + Duration::from_millis(1_000);
        assert!(started.elapsed() < bound, "took {:?}", started.elapsed());
        if let ProviderError::Refused { reason, .. } = &err.0 {
            assert!(reason.contains("limit exceeded"), "Open-Meteo's reason is kept: {reason}");
        }
    }
}

#[tokio::test]
async fn a_broken_air_quality_service_leaves_air_quality_out() {
    let (url, fake) = start_fake().await;
    fake.air_mode.store(3, Ordering::SeqCst);
    let source = WeatherSource::new(open_meteo(&url, None), Cache::memory(), None, Clock::System, timing());
    let w = source.get(SEOUL).await.unwrap();
    assert!(w.air_quality.is_none());
    assert_eq!(w.current.condition, Condition::Snow);
    assert_eq!(fake.air_calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_refresh_continues_after_its_caller_gave_up_and_fills_the_cache() {
    let (url, fake) = start_fake().await;
    fake.set(Mode::Slow(400));
    let source = WeatherSource::new(open_meteo(&url, None), Cache::memory(), None, Clock::System, timing());
    let gave_up = tokio::time::timeout(Duration::from_millis(50), source.get(SEOUL)).await;
    assert!(gave_up.is_err());
    tokio::time::sleep(Duration::from_millis(600)).await;
    fake.set(Mode::Status(500));
    let w = source.get(SEOUL).await.unwrap();
    assert!(!w.stale);
    assert_eq!(fake.calls(), 1);
}

#[tokio::test]
#[cfg_attr(ww_no_backends, ignore = "WW_TEST_NO_BACKENDS was set: needs Redis and PostgreSQL")]
async fn on_redis_and_postgres_the_last_known_value_outlives_a_lost_cache() {
    let (url, fake) = start_fake().await;
    let name = format!("ww_test_weather_{}", uuid_like());
    let pg = format!("{}/{name}", platform::testing::backend("WW_TEST_POSTGRES_URL"));
    platform::db::create_postgres_database(&pg).await.unwrap();
    let db = Database::open(&DatabaseUrl::Postgres(pg), weather::SERVICE, 2, weather::migrator()).await.unwrap();
    let source = WeatherSource::new(
        open_meteo(&url, None),
        redis_cache(&format!("{name}:a:")).await,
        Some(db.clone()),
        Clock::System,
        timing(),
    );
    let fresh = source.get(SEOUL).await.unwrap();
    // The cache is gone (another prefix: as after a flush) and the provider is down.
    fake.set(Mode::Status(502));
    let after_flush = WeatherSource::new(
        open_meteo(&url, None),
        redis_cache(&format!("{name}:b:")).await,
        Some(db),
        later(),
        timing(),
    );
    let w = after_flush.get(SEOUL).await.unwrap();
    assert!(w.stale);
    assert_eq!(w.current, fresh.current);
    assert_eq!(w.fetched_at, fresh.fetched_at);
}

#[tokio::test]
async fn too_old_a_value_is_not_served_even_marked_stale() {
    let (url, fake) = start_fake().await;
    let (db, _dir) = sqlite().await;
    let source = WeatherSource::new(open_meteo(&url, None), Cache::memory(), Some(db.clone()), Clock::System, timing());
    source.get(SEOUL).await.unwrap();
    fake.set(Mode::Status(500));
    let much_later = Clock::Skewed(chrono::Duration::seconds(3_700));
    let source = WeatherSource::new(open_meteo(&url, None), Cache::memory(), Some(db), much_later, timing());
    assert!(source.get(SEOUL).await.is_err());
}

#[tokio::test]
#[cfg_attr(ww_no_backends, ignore = "WW_TEST_NO_BACKENDS was set: needs Redis")]
async fn replicas_waiting_on_a_failed_refresh_fail_at_once_without_asking_again() {
    let (url, fake) = start_fake().await;
    fake.set(Mode::Status(500));
    let prefix = format!("ww-test:{}:", uuid_like());
    let mut replicas = Vec::new();
    for _ in 0..3 {
        replicas.push(WeatherSource::new(
            open_meteo(&url, None),
            redis_cache(&prefix).await,
            None,
            Clock::System,
            timing(),
        ));
    }
    // Every request starts together (a request after the failure's short window asks again).
    let mut gets = Vec::new();
    let started = Instant::now();
    for replica in replicas {
        for _ in 0..10 {
            let replica = replica.clone();
            gets.push(tokio::spawn(async move { replica.get(SEOUL).await }));
        }
    }
    for r in futures::future::join_all(gets).await {
        assert!(r.unwrap().is_err());
    }
    // Well under the lease's hold (upstream timeout + 1 s): the failure is shared, not waited out.
    assert!(started.elapsed() < Duration::from_millis(1_200), "took {:?}", started.elapsed());
    assert_eq!(fake.calls(), 1, "the failure is shared, not retried by every replica");
}
