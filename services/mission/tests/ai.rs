//! The AI writer against a fake OpenAI-compatible endpoint started here over real HTTP: a good
//! answer becomes tomorrow's missions (written ahead, before the person's midnight); slow,
//! failing and schema-breaking answers write nothing and are tried once; and a person asking
//! while the model is slow gets catalog missions at once, which then stay their day's.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use chrono::{NaiveDate, TimeZone, Utc};
use mission::ai::{AiConfig, Writer, sweep};
use mission::catalog::Catalog;
use mission::daily::Daily;
use mission::store::{self, Source};
use platform::clock::Clock;
use platform::db::{Database, DatabaseUrl};
use serde_json::{Value, json};
use uuid::Uuid;
use weather::provider::Provider;
use weather::simulated::Simulated;
use weather::{Cache, Timing, WeatherSource};

#[derive(Default)]
struct Fake {
    /// 0 good, 1 slow, 2 status 500, 3 prose instead of JSON, 4 two missions.
    mode: AtomicU64,
    /// How long the slow mode takes (ms).
    delay: AtomicU64,
    calls: AtomicUsize,
    last: std::sync::Mutex<(Value, Option<String>)>,
}

const GOOD: &str = r#"{"missions":[
    {"title":{"en":"Puddle hop","ko":"웅덩이 건너기"},"description":{"en":"Photograph a puddle reflection.","ko":"웅덩이에 비친 풍경을 찍어요."},"proof":"photo","indoor":false},
    {"title":{"en":"Tea time","ko":"차 한 잔"},"description":{"en":"Make tea and say which.","ko":"차를 끓이고 무엇인지 적어요."},"proof":"text","indoor":true},
    {"title":{"en":"Rain view","ko":"비 오는 창밖"},"description":{"en":"Your window in the rain.","ko":"비 오는 창밖을 찍어요."},"proof":"photo-and-text","indoor":true}]}"#;

async fn completions(
    State(f): State<Arc<Fake>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> axum::response::Response {
    f.calls.fetch_add(1, Ordering::SeqCst);
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).map(str::to_owned);
    *f.last.lock().unwrap() = (request, auth);
    let content = match f.mode.load(Ordering::SeqCst) {
        1 => {
            tokio::time::sleep(Duration::from_millis(f.delay.load(Ordering::SeqCst))).await;
            GOOD.to_owned()
        }
        2 => return (StatusCode::INTERNAL_SERVER_ERROR, "model overloaded").into_response(),
        3 => "Sure! Here are three fun missions for a rainy day: 1. …".to_owned(),
        4 => {
            let mut v: Value = serde_json::from_str(GOOD).unwrap();
            v["missions"].as_array_mut().unwrap().pop();
            v.to_string()
        }
        _ => GOOD.to_owned(),
    };
    axum::Json(json!({"id": "x", "object": "chat.completion", "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}]}))
        .into_response()
}

async fn start_fake() -> (String, Arc<Fake>) {
    let fake = Arc::new(Fake::default());
    let app = Router::new().route("/v1/chat/completions", post(completions)).with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, fake)
}

/// 20:00 in Seoul on 26 November: four hours before the person's tomorrow.
fn evening() -> chrono::DateTime<Utc> {
    chrono_tz::Asia::Seoul.with_ymd_and_hms(2026, 11, 26, 20, 0, 0).single().unwrap().with_timezone(&Utc)
}

fn tomorrow() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 27).unwrap()
}

async fn setup(clock: Clock) -> (Arc<Daily>, tempfile::TempDir, Uuid) {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(&DatabaseUrl::SqliteDir(dir.path().to_owned()), mission::SERVICE, 2, mission::migrator())
        .await
        .unwrap();
    let timing = Timing {
        fresh: Duration::from_secs(600),
        stale_max: Duration::from_secs(3600),
        upstream_timeout: Duration::from_secs(2),
        stale_after: Duration::from_millis(500),
    };
    let weather = WeatherSource::new(Provider::Simulated(Simulated), Cache::memory(), None, clock.clone(), timing);
    let daily = Arc::new(Daily {
        db,
        catalog: Arc::new(Catalog::built_in()),
        weather,
        clock: clock.clone(),
        weather_wait: Duration::from_secs(1),
        ai_writes: true,
        caches: Default::default(),
    });
    let user = Uuid::new_v4();
    store::save_home(&daily.db.pool, user, Some((37.5665, 126.978)), "Asia/Seoul", 1).await.unwrap();
    (daily, dir, user)
}

fn writer(url: &str, key: Option<&str>) -> Writer {
    let config = AiConfig {
        mission_ai_url: Some(url.to_owned()),
        mission_ai_model: Some("llama3.1:8b".to_owned()),
        mission_ai_api_key: key.map(str::to_owned),
        mission_ai_timeout_ms: 800,
        ..AiConfig::default()
    };
    Writer::from_config(&config).unwrap().expect("configured")
}

const AHEAD: Duration = Duration::from_secs(6 * 3600);

#[tokio::test]
async fn a_good_answer_becomes_tomorrows_missions_written_ahead() {
    let (url, fake) = start_fake().await;
    let clock = Clock::manual(evening() - chrono::Duration::hours(8));
    let (daily, _dir, user) = setup(clock.clone()).await;
    let w = writer(&url, Some("sk-test"));
    // Noon: tomorrow is 12 hours away, more than the 6 ahead: nothing asked yet.
    assert_eq!(sweep(&daily, &w, AHEAD, 10, "a").await.unwrap(), 0);
    assert_eq!(fake.calls.load(Ordering::SeqCst), 0);
    clock.set(evening());
    assert_eq!(sweep(&daily, &w, AHEAD, 10, "a").await.unwrap(), 1);
    let day = store::assignment(&daily.db.pool, user, tomorrow()).await.unwrap().expect("written");
    assert_eq!(day.source, Source::Ai);
    assert_eq!(day.missions.len(), 3);
    assert_eq!(day.missions[0].title.ko, "웅덩이 건너기");
    assert!(day.weather.is_some(), "the forecast it was written for");
    let (request, auth) = fake.last.lock().unwrap().clone();
    assert_eq!(request["model"], "llama3.1:8b");
    assert_eq!(request["response_format"]["type"], "json_schema");
    assert!(request["messages"][1]["content"].as_str().unwrap().contains("2026-11-27"));
    assert_eq!(auth.as_deref(), Some("Bearer sk-test"));
    // Written once: the next sweep has nothing to do.
    assert_eq!(sweep(&daily, &w, AHEAD, 10, "b").await.unwrap(), 0);
    assert_eq!(fake.calls.load(Ordering::SeqCst), 1);
    // And tomorrow, the person gets exactly those.
    clock.set(evening() + chrono::Duration::hours(5));
    let today = daily.today(user).await.unwrap();
    assert_eq!(today.assignment.source, Source::Ai);
    assert_eq!(today.assignment, day);
}

#[tokio::test]
async fn slow_failing_and_schema_breaking_answers_write_nothing_and_are_tried_once() {
    for mode in [1, 2, 3, 4] {
        let (url, fake) = start_fake().await;
        fake.mode.store(mode, Ordering::SeqCst);
        fake.delay.store(5_000, Ordering::SeqCst);
        let clock = Clock::manual(evening());
        let (daily, _dir, user) = setup(clock.clone()).await;
        let w = writer(&url, None);
        let started = Instant::now();
        assert_eq!(sweep(&daily, &w, AHEAD, 10, "a").await.unwrap(), 0, "mode {mode}");
        assert!(started.elapsed() < Duration::from_secs(3), "bounded by the timeout: {:?}", started.elapsed());
        assert!(store::assignment(&daily.db.pool, user, tomorrow()).await.unwrap().is_none(), "mode {mode}");
        assert_eq!(sweep(&daily, &w, AHEAD, 10, "b").await.unwrap(), 0);
        assert_eq!(fake.calls.load(Ordering::SeqCst), 1, "mode {mode}: one attempt per day");
        assert_eq!(fake.last.lock().unwrap().1, None, "no key, no Authorization");
        // The person's day comes from the catalog.
        clock.set(evening() + chrono::Duration::hours(5));
        let today = daily.today(user).await.unwrap();
        assert_eq!(today.assignment.source, Source::Catalog);
        assert_eq!(today.assignment.missions.len(), 3);
    }
}

#[tokio::test]
async fn a_person_never_waits_on_the_model() {
    let (url, fake) = start_fake().await;
    fake.mode.store(1, Ordering::SeqCst);
    fake.delay.store(500, Ordering::SeqCst);
    // Five minutes before the person's midnight; the model takes 0.5 s (within its 0.8 s timeout).
    let clock = Clock::manual(evening() + chrono::Duration::minutes(235));
    let (daily, _dir, user) = setup(clock.clone()).await;
    let w = writer(&url, None);
    let sweeping = {
        let daily = daily.clone();
        tokio::spawn(async move { sweep(&daily, &w, AHEAD, 10, "a").await.unwrap() })
    };
    while fake.calls.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Midnight passes while the model is thinking: the person asks and is answered at once.
    clock.set(evening() + chrono::Duration::hours(4) + chrono::Duration::seconds(1));
    let started = Instant::now();
    let today = daily.today(user).await.unwrap();
    assert!(started.elapsed() < Duration::from_millis(500), "answered in {:?}", started.elapsed());
    assert_eq!((today.assignment.date, today.assignment.source), (tomorrow(), Source::Catalog));
    assert_eq!(sweeping.await.unwrap(), 0, "the model's answer came after the person's day was given");
    let stored = store::assignment(&daily.db.pool, user, tomorrow()).await.unwrap().unwrap();
    assert_eq!(stored, today.assignment, "what the person was shown stays their day");
}
