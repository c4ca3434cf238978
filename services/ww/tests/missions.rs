//! Daily missions through the whole app on both backends (simulated weather): chosen from the
//! weather at the home set in the profile and the same all day on every replica; without a
//! home, any-weather missions that say so; a photo proof stored without its location metadata,
//! accepted once, counted in the streak; a moderated proof approved or rejected by a moderator
//! only; and a real verification making the person eligible on a coupon issuer.

mod common;

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::campaigns::{Rules, campaign, kst};
use common::{Backend, Resp, TestApp, unique_email};
use platform::clock::Clock;
use platform::roles::{Role, Roles};
use serde_json::{Value, json};
use uuid::Uuid;

on_both_backends!(
    todays_missions_follow_the_home_weather_and_stay_the_same_all_day,
    without_a_home_the_missions_suit_any_weather_and_say_so,
    a_photo_proof_is_stored_without_its_metadata_accepted_once_and_counted,
    bad_proofs_are_clear_4xx_problems_and_leave_the_mission_open,
);

const BOUNDARY: &str = "ww-test-boundary-7MA4YWxkTrZu0gW";

/// A JPEG with EXIF GPS data (structure only; enough for the type check and the stripping).
fn jpeg_with_gps() -> Vec<u8> {
    let mut j = vec![0xFF, 0xD8];
    let segment = |marker: u8, body: &[u8]| {
        let mut s = vec![0xFF, marker];
        s.extend_from_slice(&u16::try_from(body.len() + 2).unwrap().to_be_bytes());
        s.extend_from_slice(body);
        s
    };
    j.extend(segment(0xE0, b"JFIF\0\x01\x01\0\0\x01\0\x01\0\0"));
    j.extend(segment(0xE1, b"Exif\0\0MM\0*GPSLatitude 37.5665 N GPSLongitude 126.978 E"));
    j.extend(segment(0xDB, &[0u8; 65]));
    j.extend(segment(0xDA, &[1, 1, 0, 0, 0x3F, 0]));
    j.extend_from_slice(&[0x12, 0x34, 0x56, 0xFF, 0xD9]);
    j
}

fn form(parts: &[(&str, Option<&str>, &[u8])]) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, filename, bytes) in parts {
        body.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
        match filename {
            Some(f) => body.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\nContent-Type: image/gif\r\n\r\n")
                    .as_bytes(),
            ),
            None => body.extend_from_slice(format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes()),
        }
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    body
}

async fn submit(app: &TestApp, token: &str, mission: &str, body: Vec<u8>) -> Resp {
    let req = Request::post(format!("/api/missions/{mission}/verifications"))
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", format!("multipart/form-data; boundary={BOUNDARY}"))
        .body(Body::from(body))
        .unwrap();
    app.send(req).await
}

/// The proof a mission asks for.
fn proof_for(mission: &Value) -> Vec<u8> {
    let photo = jpeg_with_gps();
    match mission["proof"].as_str() {
        Some("text") => form(&[("text", None, "I did it".as_bytes())]),
        Some("photo-and-text") => form(&[("photo", Some("me.jpg"), &photo), ("text", None, "I did it".as_bytes())]),
        _ => form(&[("photo", Some("../../etc/passwd.gif"), &photo)]),
    }
}

/// Signs up, sets a home in Seoul, and waits until the mission service knows it.
async fn person_in_seoul(app: &TestApp, tag: &str) -> (String, String) {
    let (user_id, token, _) = app.account(&unique_email(tag)).await;
    app.wait_active(&token).await;
    let home = json!({"homeLocation": {"lat": 37.5665, "lon": 126.978}, "timeZone": "Asia/Seoul"});
    assert_eq!(app.call("PATCH", "/api/users/me", Some(&token), Some(home)).await.status, StatusCode::OK);
    (user_id, token)
}

async fn today_with_home(app: &TestApp, token: &str) -> Value {
    let started = Instant::now();
    loop {
        let r = app.call("GET", "/api/missions/today", Some(token), None).await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        if !r.body["homeLocation"].is_null() {
            return r.body;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "the home never reached the mission service");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn todays_missions_follow_the_home_weather_and_stay_the_same_all_day(app: TestApp) {
    let (_, token) = person_in_seoul(&app, "missions").await;
    let today = today_with_home(&app, &token).await;
    assert_eq!(today["provisional"], false, "{today}");
    assert_eq!(today["timeZone"], "Asia/Seoul");
    assert_eq!(today["source"], "catalog");
    assert!(today["weather"]["condition"].is_string(), "chosen for the weather: {today}");
    let missions = today["missions"].as_array().unwrap();
    assert_eq!(missions.len(), 3);
    for m in missions {
        assert!(m["id"].as_str().unwrap().starts_with(&today["date"].as_str().unwrap().replace('-', "")));
        assert_eq!(m["status"], "open");
    }
    // The same all day: again, on another replica, and in Korean with the same missions.
    let again = app.call("GET", "/api/missions/today", Some(&token), None).await;
    assert_eq!(again.body, today);
    let replica = app.replica(&common::fast_config()).await;
    let req = Request::get("/api/missions/today")
        .header("authorization", format!("Bearer {token}"))
        .header("accept-language", "ko-KR,ko;q=0.9")
        .body(Body::empty())
        .unwrap();
    let korean = TestApp::send_to(&replica, req).await;
    let ids = |v: &Value| v["missions"].as_array().unwrap().iter().map(|m| m["id"].clone()).collect::<Vec<_>>();
    assert_eq!(ids(&korean.body), ids(&today));
    assert!(korean.body["missions"][0]["title"].as_str().unwrap().chars().any(|c| ('가'..='힣').contains(&c)));
}

async fn without_a_home_the_missions_suit_any_weather_and_say_so(app: TestApp) {
    let (_, token, _) = app.account(&unique_email("homeless")).await;
    let r = app.call("GET", "/api/missions/today", Some(&token), None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["provisional"], true);
    assert!(r.body["note"].as_str().unwrap().contains("home location"));
    assert!(r.body["weather"].is_null() && r.body["homeLocation"].is_null());
    assert_eq!(r.body["missions"].as_array().unwrap().len(), 3);
    assert_eq!(app.call("GET", "/api/missions/today", Some(&token), None).await.body, r.body, "stable all the same");
    // A proof fixes the day's missions even then.
    let first = r.body["missions"][0].clone();
    let done = submit(&app, &token, first["id"].as_str().unwrap(), proof_for(&first)).await;
    assert_eq!(done.status, StatusCode::CREATED, "{:?}", done.body);
    let after = app.call("GET", "/api/missions/today", Some(&token), None).await;
    assert_eq!(after.body["provisional"], false);
    assert_eq!(after.body["missions"][0]["status"], "accepted");
}

async fn a_photo_proof_is_stored_without_its_metadata_accepted_once_and_counted(app: TestApp) {
    let (_, token) = person_in_seoul(&app, "proof").await;
    let today = today_with_home(&app, &token).await;
    // Any automatically reviewed mission; the proof it asks for, with a photo where it takes one.
    let mission = today["missions"].as_array().unwrap().iter().find(|m| m["review"] == "automatic").unwrap().clone();
    let id = mission["id"].as_str().unwrap();
    let r = submit(&app, &token, id, proof_for(&mission)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(r.body["status"], "accepted");
    assert!(r.headers.get("location").is_some());
    if let Some(url) = r.body["photoUrl"].as_str() {
        let photo = app
            .send(Request::get(url).header("authorization", format!("Bearer {token}")).body(Body::empty()).unwrap())
            .await;
        assert_eq!(photo.status, StatusCode::OK);
        assert_eq!(photo.content_type(), "image/jpeg", "the type told by the bytes, not the name or the declared type");
        assert!(!photo.raw.windows(11).any(|w| w == b"GPSLatitude"), "location metadata removed");
        assert!(photo.raw.ends_with(&[0x12, 0x34, 0x56, 0xFF, 0xD9]), "the picture kept");
        // Nobody else sees it.
        let (_, other, _) = app.account(&unique_email("other")).await;
        let theirs = app
            .send(Request::get(url).header("authorization", format!("Bearer {other}")).body(Body::empty()).unwrap())
            .await;
        assert_eq!(theirs.status, StatusCode::NOT_FOUND);
    }
    let again = submit(&app, &token, id, proof_for(&mission)).await;
    assert_eq!((again.status, again.code()), (StatusCode::CONFLICT, "already-submitted"));
    let today = app.call("GET", "/api/missions/today", Some(&token), None).await;
    let status = today.body["missions"].as_array().unwrap().iter().find(|m| m["id"] == id).unwrap()["status"].clone();
    assert_eq!(status, "accepted");
    let history = app.call("GET", "/api/missions/verifications?limit=10", Some(&token), None).await;
    assert_eq!(history.body["verifications"].as_array().unwrap().len(), 1);
    let streak = app.call("GET", "/api/missions/streak", Some(&token), None).await;
    assert_eq!((streak.body["current"].as_u64(), streak.body["doneToday"].as_bool()), (Some(1), Some(true)));
}

async fn bad_proofs_are_clear_4xx_problems_and_leave_the_mission_open(app: TestApp) {
    let (_, token) = person_in_seoul(&app, "badproof").await;
    let today = today_with_home(&app, &token).await;
    // A mission taking a photo, for the image checks (which of today's missions do depends on
    // the date: a text-only one first would answer text-required to every photo).
    let missions = today["missions"].as_array().unwrap();
    let mission = missions
        .iter()
        .find(|m| m["proof"] == "photo")
        .or_else(|| missions.iter().find(|m| m["proof"] != "text"))
        .unwrap_or(&missions[0])
        .clone();
    let id = mission["id"].as_str().unwrap();
    let date = today["date"].as_str().unwrap().replace('-', "");
    let gif: &[u8] = b"GIF89a\x01\x00\x01\x00";
    let missing = if mission["proof"] == "text" { "text-required" } else { "photo-required" };
    // (mission id, body, content type other than multipart, status, code)
    type Case<'a> = (String, Vec<u8>, Option<&'a str>, StatusCode, &'a str);
    let cases: Vec<Case> = vec![
        (
            id.to_owned(),
            form(&[("photo", Some("x.jpg"), gif)]),
            None,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-image",
        ),
        (
            id.to_owned(),
            form(&[("photo", Some("x.jpg"), &[0xFF, 0xD8, 0xFF, 0xE1, 0x40])]),
            None,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-image",
        ),
        (id.to_owned(), form(&[("selfie", None, b"x")]), None, StatusCode::UNPROCESSABLE_ENTITY, "invalid-upload"),
        (id.to_owned(), form(&[]), None, StatusCode::UNPROCESSABLE_ENTITY, missing),
        (
            id.to_owned(),
            form(&[("text", None, "x".repeat(1001).as_bytes())]),
            None,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-text",
        ),
        (id.to_owned(), b"not multipart at all".to_vec(), None, StatusCode::BAD_REQUEST, "invalid-upload"),
        (
            id.to_owned(),
            b"{}".to_vec(),
            Some("application/json"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
        ),
        (format!("{date}-not-mine"), proof_for(&mission), None, StatusCode::NOT_FOUND, "unknown-mission"),
        ("20200101-sky-today".to_owned(), proof_for(&mission), None, StatusCode::CONFLICT, "mission-expired"),
        ("not-a-mission".to_owned(), proof_for(&mission), None, StatusCode::NOT_FOUND, "unknown-mission"),
    ];
    let mut failures = Vec::new();
    for (mission_id, body, content_type, status, code) in cases {
        let ct = content_type.map_or_else(|| format!("multipart/form-data; boundary={BOUNDARY}"), str::to_owned);
        let req = Request::post(format!("/api/missions/{mission_id}/verifications"))
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", ct)
            .body(Body::from(body))
            .unwrap();
        let r = app.send(req).await;
        if r.status != status || r.code() != code || r.content_type() != "application/problem+json" {
            failures.push(format!(
                "{mission_id} → expected {status} {code}, got {} {} {:?}",
                r.status,
                r.code(),
                r.body
            ));
        }
    }
    // Too large: over the photo limit, and over the whole upload limit (refused unread).
    let big = form(&[("photo", Some("x.jpg"), &vec![0xFF; 9 * 1024 * 1024])]);
    let r = submit(&app, &token, id, big).await;
    if r.status != StatusCode::PAYLOAD_TOO_LARGE {
        failures.push(format!("oversize photo → {} {:?}", r.status, r.body));
    }
    let no_token = app.call("GET", "/api/missions/today", None, None).await;
    if no_token.status != StatusCode::UNAUTHORIZED {
        failures.push(format!("no token → {}", no_token.status));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let after = app.call("GET", "/api/missions/today", Some(&token), None).await;
    assert!(after.body["missions"].as_array().unwrap().iter().all(|m| m["status"] == "open"), "nothing was accepted");
}

/// A catalog where every mission is any-weather and reviewed by a moderator.
fn moderated_catalog() -> std::path::PathBuf {
    let entry = |id: &str| {
        format!(
            "  - id: {id}\n    title: {{ en: T {id}, ko: 티 }}\n    description: {{ en: D, ko: 디 }}\n    proof: text\n    review: moderator\n"
        )
    };
    let path = std::env::temp_dir().join(format!("ww-test-catalog-{}.yaml", Uuid::new_v4()));
    std::fs::write(&path, format!("missions:\n{}{}{}", entry("m-a"), entry("m-b"), entry("m-c"))).unwrap();
    path
}

fn moderator(app: &TestApp) -> String {
    let mut roles = Roles::default();
    roles.insert(Role::Moderator);
    app.keys
        .sign_with_roles(Uuid::new_v4(), Uuid::new_v4(), roles, chrono::Utc::now(), Duration::from_secs(600))
        .unwrap()
}

async fn moderated_proofs_wait_for_a_moderator(backend: Backend) {
    let mut config = common::fast_config();
    config.mission.mission_catalog = Some(moderated_catalog());
    let Some(app) = TestApp::start(backend, config).await else { panic!("backends") };
    let (_, token, _) = app.account(&unique_email("moderated")).await;
    let today = app.call("GET", "/api/missions/today", Some(&token), None).await;
    let [a, b] = [&today.body["missions"][0], &today.body["missions"][1]].map(|m| m["id"].as_str().unwrap().to_owned());
    let text = form(&[("text", None, "done".as_bytes())]);
    let first = submit(&app, &token, &a, text.clone()).await;
    assert_eq!((first.status, first.body["status"].as_str()), (StatusCode::CREATED, Some("pending")));
    let second = submit(&app, &token, &b, text.clone()).await;
    let (v1, v2) = (first.body["id"].as_str().unwrap().to_owned(), second.body["id"].as_str().unwrap().to_owned());

    // Not a moderator: 403, nothing decided.
    let denied = app.call("POST", &format!("/api/missions/verifications/{v1}/approve"), Some(&token), None).await;
    assert_eq!((denied.status, denied.code()), (StatusCode::FORBIDDEN, "forbidden-role"));
    let queue = app.call("GET", "/api/missions/verifications/pending", Some(&token), None).await;
    assert_eq!(queue.status, StatusCode::FORBIDDEN);

    let m = moderator(&app);
    let queue = app.call("GET", "/api/missions/verifications/pending?limit=100", Some(&m), None).await;
    assert!(queue.body["verifications"].as_array().unwrap().iter().any(|v| v["id"] == v1.as_str()));
    let ok = app.call("POST", &format!("/api/missions/verifications/{v1}/approve"), Some(&m), None).await;
    assert_eq!((ok.status, ok.body["status"].as_str()), (StatusCode::OK, Some("accepted")));
    let twice = app
        .call("POST", &format!("/api/missions/verifications/{v1}/reject"), Some(&m), Some(json!({"reason": "late"})))
        .await;
    assert_eq!((twice.status, twice.code()), (StatusCode::CONFLICT, "already-decided"));
    let no_reason = app
        .call("POST", &format!("/api/missions/verifications/{v2}/reject"), Some(&m), Some(json!({"reason": " "})))
        .await;
    assert_eq!((no_reason.status, no_reason.code()), (StatusCode::UNPROCESSABLE_ENTITY, "invalid-reason"));
    let no = app
        .call(
            "POST",
            &format!("/api/missions/verifications/{v2}/reject"),
            Some(&m),
            Some(json!({"reason": "Not a photo of snow"})),
        )
        .await;
    assert_eq!((no.status, no.body["reason"].as_str()), (StatusCode::OK, Some("Not a photo of snow")));

    // A rejected mission is open for another proof.
    let statuses = app.call("GET", "/api/missions/today", Some(&token), None).await;
    let status = |id: &str| {
        statuses.body["missions"].as_array().unwrap().iter().find(|m| m["id"] == id).unwrap()["status"].clone()
    };
    assert_eq!((status(&a), status(&b)), (json!("accepted"), json!("rejected")));
    assert_eq!(submit(&app, &token, &b, text).await.status, StatusCode::CREATED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moderated_proofs_wait_for_a_moderator_embedded() {
    common::watchdog("moderated_proofs_wait_for_a_moderator", moderated_proofs_wait_for_a_moderator(Backend::Embedded))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(ww_no_backends, ignore = "WW_TEST_NO_BACKENDS was set: needs PostgreSQL, Redis and Kafka")]
async fn moderated_proofs_wait_for_a_moderator_real() {
    common::watchdog("moderated_proofs_wait_for_a_moderator", moderated_proofs_wait_for_a_moderator(Backend::Real))
        .await;
}

/// The point of missions: a verified daily mission makes the person eligible on an issuer,
/// through `MissionVerified` from the mission service (not the dev shortcut).
async fn a_verified_mission_makes_the_person_eligible(backend: Backend) {
    // 10:30 KST on the campaign's second day, opening at 10:00.
    let Some(app) = TestApp::start_with(backend, common::fast_config(), Clock::manual(kst(8, 10, 30))).await else {
        panic!("backends")
    };
    let c = campaign(Rules::default());
    let name = c.name().to_owned();
    let (issuer, handle) = app.issuer(c).await;
    let started = Instant::now();
    while !(handle.is_ready() && handle.eligibility_caught_up()) {
        assert!(started.elapsed() < Duration::from_secs(60), "issuer not ready after 60 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (_, token) = person_in_seoul(&app, "eligible").await;
    let claim = |token: String| {
        let issuer = issuer.clone();
        let name = name.clone();
        async move {
            let req = Request::post(format!("/api/campaigns/{name}/issue"))
                .header("authorization", format!("Bearer {token}"))
                .body(Body::empty())
                .unwrap();
            TestApp::send_to(&issuer, req).await
        }
    };
    let before = claim(token.clone()).await;
    assert_eq!((before.status, before.code()), (StatusCode::FORBIDDEN, "not-eligible"));
    let today = today_with_home(&app, &token).await;
    assert_eq!(today["date"], "2026-12-08");
    let mission = today["missions"].as_array().unwrap().iter().find(|m| m["review"] == "automatic").unwrap().clone();
    let done = submit(&app, &token, mission["id"].as_str().unwrap(), proof_for(&mission)).await;
    assert_eq!(done.status, StatusCode::CREATED, "{:?}", done.body);
    let started = Instant::now();
    loop {
        let r = claim(token.clone()).await;
        if r.status == StatusCode::CREATED {
            break;
        }
        assert_eq!(r.code(), "not-eligible", "{:?}", r.body);
        assert!(started.elapsed() < Duration::from_secs(30), "never eligible after a verified mission");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verified_mission_makes_the_person_eligible_embedded() {
    common::watchdog(
        "a_verified_mission_makes_the_person_eligible",
        a_verified_mission_makes_the_person_eligible(Backend::Embedded),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(ww_no_backends, ignore = "WW_TEST_NO_BACKENDS was set: needs PostgreSQL, Redis and Kafka")]
async fn a_verified_mission_makes_the_person_eligible_real() {
    common::watchdog(
        "a_verified_mission_makes_the_person_eligible",
        a_verified_mission_makes_the_person_eligible(Backend::Real),
    )
    .await;
}
