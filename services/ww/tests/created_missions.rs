//! Created missions through the whole app on both backends: creation within validated ranges,
//! joins that never pass capacity however many arrive at once, completions accepted at once or
//! by the creator only, and the lists (active, mine, joined) with cursors.

mod common;

use std::time::Duration;

use axum::http::StatusCode;
use chrono::Utc;
use common::TestApp;
use serde_json::{Value, json};
use uuid::Uuid;

on_both_backends!(
    a_mission_is_created_within_validated_ranges,
    concurrent_joins_at_capacity_minus_one_let_exactly_one_in,
    completions_are_accepted_automatically_or_by_the_creator_only,
    lists_filter_and_page_with_cursors,
);

fn person(app: &TestApp) -> (Uuid, String) {
    let user = Uuid::new_v4();
    (user, app.keys.sign(user, Uuid::new_v4(), Utc::now(), Duration::from_secs(3600)).unwrap())
}

fn today() -> String {
    Utc::now().date_naive().to_string()
}

fn in_days(n: i64) -> String {
    (Utc::now().date_naive() + chrono::Duration::days(n)).to_string()
}

fn mission(capacity: i64, verification: &str) -> Value {
    json!({"title": "Pick up litter by the river", "description": "Bring a bag.", "startsOn": today(),
           "endsOn": in_days(7), "verification": verification, "capacity": capacity})
}

async fn create(app: &TestApp, token: &str, body: Value) -> String {
    let r = app.call("POST", "/api/created-missions", Some(token), Some(body)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    r.body["id"].as_str().unwrap().to_owned()
}

async fn a_mission_is_created_within_validated_ranges(app: TestApp) {
    let (creator, token) = person(&app);
    let created = app.call("POST", "/api/created-missions", Some(&token), Some(mission(10, "creator"))).await;
    assert_eq!(created.status, StatusCode::CREATED);
    assert_eq!(
        (created.body["creator"].as_str(), created.body["joined"].as_i64()),
        (Some(creator.to_string().as_str()), Some(0))
    );
    let id = created.body["id"].as_str().unwrap();
    let got = app.call("GET", &format!("/api/created-missions/{id}"), Some(&token), None).await;
    assert_eq!(got.body, created.body);

    let with = |k: &str, v: Value| {
        let mut m = mission(10, "creator");
        m[k] = v;
        m
    };
    let cases = [
        (with("title", json!("  ")), "invalid-title"),
        (with("title", json!("x".repeat(81))), "invalid-title"),
        (with("description", json!("x".repeat(1001))), "invalid-description"),
        (with("startsOn", json!(in_days(-2))), "invalid-period"),
        (with("endsOn", json!(in_days(-1))), "invalid-period"),
        (with("endsOn", json!(in_days(95))), "invalid-period"),
        (with("startsOn", json!(in_days(400))), "invalid-period"),
        (with("timeZone", json!("Mars/Olympus")), "invalid-time-zone"),
        (with("capacity", json!(0)), "invalid-capacity"),
        (with("capacity", json!(10_001)), "invalid-capacity"),
    ];
    for (body, code) in cases {
        let r = app.call("POST", "/api/created-missions", Some(&token), Some(body.clone())).await;
        assert_eq!((r.status, r.code()), (StatusCode::UNPROCESSABLE_ENTITY, code), "{body}");
    }
    for path in [format!("/api/created-missions/{}", Uuid::new_v4()), "/api/created-missions/not-a-uuid".to_owned()] {
        let unknown = app.call("GET", &path, Some(&token), None).await;
        assert_eq!((unknown.status, unknown.code()), (StatusCode::NOT_FOUND, "unknown-mission"), "{path}");
    }
    let (_, other) = person(&app);
    let theirs = app.call("GET", &format!("/api/created-missions/{id}/participants"), Some(&other), None).await;
    assert_eq!((theirs.status, theirs.code()), (StatusCode::FORBIDDEN, "not-creator"));
}

async fn concurrent_joins_at_capacity_minus_one_let_exactly_one_in(app: TestApp) {
    let (_, creator) = person(&app);
    let id = create(&app, &creator, mission(5, "automatic")).await;
    let own = app.call("POST", &format!("/api/created-missions/{id}/join"), Some(&creator), None).await;
    assert_eq!((own.status, own.code()), (StatusCode::FORBIDDEN, "own-mission"));
    let mut early = Vec::new();
    for _ in 0..4 {
        let (_, t) = person(&app);
        assert_eq!(
            app.call("POST", &format!("/api/created-missions/{id}/join"), Some(&t), None).await.status,
            StatusCode::CREATED
        );
        early.push(t);
    }
    // One place left, twenty people at once.
    let joins = (0..20).map(|_| {
        let (_, t) = person(&app);
        let path = format!("/api/created-missions/{id}/join");
        let app = &app;
        async move { app.call("POST", &path, Some(&t), None).await }
    });
    let answers = futures::future::join_all(joins).await;
    let won = answers.iter().filter(|r| r.status == StatusCode::CREATED).count();
    let full = answers.iter().filter(|r| r.status == StatusCode::CONFLICT && r.code() == "full").count();
    assert_eq!(
        (won, full),
        (1, 19),
        "{:?}",
        answers.iter().map(|r| (r.status, r.code().to_owned())).collect::<Vec<_>>()
    );
    let m = app.call("GET", &format!("/api/created-missions/{id}"), Some(&creator), None).await;
    assert_eq!(m.body["joined"], 5);
    let participants = app.call("GET", &format!("/api/created-missions/{id}/participants"), Some(&creator), None).await;
    assert_eq!(participants.body.as_array().unwrap().len(), 5, "as many rows as the count");
    let again = app.call("POST", &format!("/api/created-missions/{id}/join"), Some(&early[0]), None).await;
    assert_eq!(again.status, StatusCode::CONFLICT, "full (or already joined): never a sixth");

    // Someone joining twice at once on a roomy mission: one row, one place.
    let roomy = create(&app, &creator, mission(100, "automatic")).await;
    let (_, t) = person(&app);
    let path = format!("/api/created-missions/{roomy}/join");
    let twice = futures::future::join_all((0..5).map(|_| app.call("POST", &path, Some(&t), None))).await;
    assert_eq!(twice.iter().filter(|r| r.status == StatusCode::CREATED).count(), 1);
    assert!(twice.iter().filter(|r| r.status != StatusCode::CREATED).all(|r| r.code() == "already-joined"));
    let m = app.call("GET", &format!("/api/created-missions/{roomy}"), Some(&creator), None).await;
    assert_eq!(m.body["joined"], 1);
}

async fn completions_are_accepted_automatically_or_by_the_creator_only(app: TestApp) {
    let (_, creator) = person(&app);
    let (walker_id, walker) = person(&app);
    let auto = create(&app, &creator, mission(10, "automatic")).await;
    let not_joined = app
        .call(
            "POST",
            &format!("/api/created-missions/{auto}/completions"),
            Some(&walker),
            Some(json!({"text": "done"})),
        )
        .await;
    assert_eq!((not_joined.status, not_joined.code()), (StatusCode::FORBIDDEN, "not-joined"));
    app.call("POST", &format!("/api/created-missions/{auto}/join"), Some(&walker), None).await;
    let done = app
        .call(
            "POST",
            &format!("/api/created-missions/{auto}/completions"),
            Some(&walker),
            Some(json!({"text": "Two bags full"})),
        )
        .await;
    assert_eq!((done.status, done.body["status"].as_str()), (StatusCode::CREATED, Some("completed")));
    let twice = app
        .call(
            "POST",
            &format!("/api/created-missions/{auto}/completions"),
            Some(&walker),
            Some(json!({"text": "again"})),
        )
        .await;
    assert_eq!((twice.status, twice.code()), (StatusCode::CONFLICT, "already-submitted"));

    let checked = create(&app, &creator, mission(10, "creator")).await;
    app.call("POST", &format!("/api/created-missions/{checked}/join"), Some(&walker), None).await;
    let blank = app
        .call(
            "POST",
            &format!("/api/created-missions/{checked}/completions"),
            Some(&walker),
            Some(json!({"text": " \n "})),
        )
        .await;
    assert_eq!((blank.status, blank.code()), (StatusCode::UNPROCESSABLE_ENTITY, "invalid-text"));
    let sent = app
        .call(
            "POST",
            &format!("/api/created-missions/{checked}/completions"),
            Some(&walker),
            Some(json!({"text": "Done at noon"})),
        )
        .await;
    assert_eq!(sent.body["status"], "submitted");
    let approve = format!("/api/created-missions/{checked}/participants/{walker_id}/approve");
    let reject = format!("/api/created-missions/{checked}/participants/{walker_id}/reject");
    let (_, stranger) = person(&app);
    let denied = app.call("POST", &approve, Some(&stranger), None).await;
    assert_eq!((denied.status, denied.code()), (StatusCode::FORBIDDEN, "not-creator"));
    let self_approved = app.call("POST", &approve, Some(&walker), None).await;
    assert_eq!(self_approved.status, StatusCode::FORBIDDEN, "a participant cannot approve themselves");
    let no = app.call("POST", &reject, Some(&creator), None).await;
    assert_eq!(no.body["status"], "rejected");
    let nothing = app.call("POST", &approve, Some(&creator), None).await;
    assert_eq!((nothing.status, nothing.code()), (StatusCode::CONFLICT, "nothing-to-decide"));
    let resent = app
        .call(
            "POST",
            &format!("/api/created-missions/{checked}/completions"),
            Some(&walker),
            Some(json!({"text": "Done properly"})),
        )
        .await;
    assert_eq!(resent.body["status"], "submitted");
    let yes = app.call("POST", &approve, Some(&creator), None).await;
    assert_eq!((yes.status, yes.body["status"].as_str()), (StatusCode::OK, Some("completed")));
    let unknown = app
        .call(
            "POST",
            &format!("/api/created-missions/{checked}/participants/{}/approve", Uuid::new_v4()),
            Some(&creator),
            None,
        )
        .await;
    assert_eq!((unknown.status, unknown.code()), (StatusCode::NOT_FOUND, "unknown-participant"));
}

async fn lists_filter_and_page_with_cursors(app: TestApp) {
    let (_, creator) = person(&app);
    let (_, joiner) = person(&app);
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(create(&app, &creator, mission(10, "automatic")).await);
    }
    app.call("POST", &format!("/api/created-missions/{}/join", ids[1]), Some(&joiner), None).await;
    let mut seen = Vec::new();
    let mut path = "/api/created-missions?filter=mine&limit=2".to_owned();
    loop {
        let page = app.call("GET", &path, Some(&creator), None).await;
        assert_eq!(page.status, StatusCode::OK, "{:?}", page.body);
        seen.extend(page.body["missions"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap().to_owned()));
        match page.body["next"].as_str() {
            Some(next) => path = format!("/api/created-missions?filter=mine&limit=2&before={next}"),
            None => break,
        }
    }
    let mut expected = ids.clone();
    expected.reverse();
    assert_eq!(seen, expected, "every mission once, newest first");
    let joined = app.call("GET", "/api/created-missions?filter=joined", Some(&joiner), None).await;
    let joined: Vec<&str> =
        joined.body["missions"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(joined, [ids[1].as_str()]);
    let active = app.call("GET", "/api/created-missions?limit=100", Some(&joiner), None).await;
    assert!(active.body["missions"].as_array().unwrap().iter().any(|m| m["id"] == ids[0].as_str()));
    for bad in ["?filter=everything", "?limit=0", "?before=yesterday", "?limit=x"] {
        let r = app.call("GET", &format!("/api/created-missions{bad}"), Some(&joiner), None).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}: {:?}", r.body);
    }
}
