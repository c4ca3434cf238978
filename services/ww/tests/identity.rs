//! Auth and user contract: the same scenarios on embedded and on real backends.

mod common;

use std::time::Duration;

use axum::http::StatusCode;
use common::{PASSWORD, TestApp, unique_email};
use serde_json::json;

on_both_backends!(
    signup_login_refresh_and_me_work_end_to_end,
    the_profile_is_pending_until_the_signup_event_is_handled,
    a_duplicate_signup_is_a_conflict_even_when_concurrent,
    a_refresh_token_rotates_and_its_reuse_revokes_the_session,
    logout_revokes_the_session,
    repeated_failed_logins_lock_the_account_for_the_window,
    the_profile_can_be_edited_within_validated_ranges,
    a_weak_password_is_refused_with_a_clear_message,
    a_profile_edit_on_one_replica_reaches_the_cache_of_another,
);

async fn a_profile_edit_on_one_replica_reaches_the_cache_of_another(app: TestApp) {
    let mut config = common::fast_config();
    config.user.profile_cache_ttl_seconds = 120;
    let other = app.replica(&config).await;
    let (_, token, _) = app.account(&unique_email("replica")).await;
    app.wait_active(&token).await;
    let get_other = |token: String| {
        let other = other.clone();
        async move {
            let req = axum::http::Request::get("/api/users/me")
                .header("authorization", format!("Bearer {token}"))
                .body(axum::body::Body::empty())
                .unwrap();
            TestApp::send_to(&other, req).await.body
        }
    };
    // The other replica caches the profile as it is now.
    assert_eq!(get_other(token.clone()).await["nickname"], "tester");
    // Edits go to the first replica; the second must notice well before its 120 s TTL.
    // (A broadcast subscription that has not finished joining misses an eviction, so
    // each attempt makes a fresh edit.)
    let started = std::time::Instant::now();
    for attempt in 0..15 {
        let nick = format!("edited-{attempt}");
        let edited = app.call("PATCH", "/api/users/me", Some(&token), Some(json!({"nickname": nick}))).await;
        assert_eq!(edited.status, StatusCode::OK);
        for _ in 0..40 {
            if get_other(token.clone()).await["nickname"] == nick.as_str() {
                eprintln!("other replica saw the edit after {:?} (attempt {attempt})", started.elapsed());
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    panic!("the other replica kept serving a stale profile for {:?}", started.elapsed());
}

async fn signup_login_refresh_and_me_work_end_to_end(app: TestApp) {
    let email = unique_email("Minji");
    let (user_id, access, refresh) = app.account(&email).await;
    let me = app.wait_active(&access).await;
    assert_eq!(me["userId"], user_id.as_str());
    assert_eq!(me["email"], email.to_lowercase(), "emails are stored normalised");
    assert_eq!(me["nickname"], "tester");

    let refreshed = app.call("POST", "/api/auth/refresh", None, Some(json!({"refreshToken": refresh}))).await;
    assert_eq!(refreshed.status, StatusCode::OK, "{:?}", refreshed.body);
    assert_ne!(refreshed.body["refreshToken"], refresh.as_str());
    assert_eq!(refreshed.body["tokenType"], "Bearer");
    let new_access = refreshed.body["accessToken"].as_str().unwrap();
    let me = app.call("GET", "/api/users/me", Some(new_access), None).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.body["userId"], user_id.as_str());

    // Login is case-insensitive on the email.
    assert_eq!(app.login(&email.to_uppercase(), PASSWORD).await.status, StatusCode::OK);
}

async fn the_profile_is_pending_until_the_signup_event_is_handled(app: TestApp) {
    // A valid token for an account whose signup event no consumer has seen yet.
    let user_id = uuid::Uuid::new_v4();
    let token = app.keys.sign(user_id, uuid::Uuid::new_v4(), chrono::Utc::now(), Duration::from_secs(60)).unwrap();
    let me = app.call("GET", "/api/users/me", Some(&token), None).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.body["status"], "pending");
    assert_eq!(me.body["userId"], user_id.to_string());
    let patch = app.call("PATCH", "/api/users/me", Some(&token), Some(json!({"nickname": "early"}))).await;
    assert_eq!(patch.status, StatusCode::CONFLICT);
    assert_eq!(patch.code(), "profile-pending");
    assert!(patch.headers.contains_key("retry-after"));
}

async fn a_duplicate_signup_is_a_conflict_even_when_concurrent(app: TestApp) {
    let email = unique_email("twin");
    let attempts = (0..8).map(|i| {
        let app = &app;
        let spelled = if i % 2 == 0 { email.clone() } else { email.to_uppercase() };
        async move { app.signup(&spelled).await.status }
    });
    let statuses = futures::future::join_all(attempts).await;
    let created = statuses.iter().filter(|s| **s == StatusCode::CREATED).count();
    let conflicts = statuses.iter().filter(|s| **s == StatusCode::CONFLICT).count();
    assert_eq!((created, conflicts), (1, 7), "{statuses:?}");
    let again = app.signup(&email).await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(again.code(), "email-taken");
}

async fn a_refresh_token_rotates_and_its_reuse_revokes_the_session(app: TestApp) {
    let (_, _, first) = app.account(&unique_email("rotate")).await;
    let second = app.call("POST", "/api/auth/refresh", None, Some(json!({"refreshToken": first}))).await;
    assert_eq!(second.status, StatusCode::OK);
    let second = second.body["refreshToken"].as_str().unwrap().to_owned();

    let reused = app.call("POST", "/api/auth/refresh", None, Some(json!({"refreshToken": first}))).await;
    assert_eq!(reused.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reused.code(), "refresh-token-reused");
    // The reuse revoked the whole family, including the legitimate newest token.
    let after = app.call("POST", "/api/auth/refresh", None, Some(json!({"refreshToken": second}))).await;
    assert_eq!(after.status, StatusCode::UNAUTHORIZED);
    assert_eq!(after.code(), "session-revoked");

    let unknown = app.call("POST", "/api/auth/refresh", None, Some(json!({"refreshToken": "not-a-token"}))).await;
    assert_eq!(unknown.code(), "invalid-refresh-token");
}

async fn logout_revokes_the_session(app: TestApp) {
    let email = unique_email("bye");
    let (_, _, refresh) = app.account(&email).await;
    // A second session of the same account is not affected.
    let other = app.login(&email, PASSWORD).await.body["refreshToken"].as_str().unwrap().to_owned();
    let out = app.call("POST", "/api/auth/logout", None, Some(json!({"refreshToken": refresh}))).await;
    assert_eq!(out.status, StatusCode::NO_CONTENT);
    let again = app.call("POST", "/api/auth/refresh", None, Some(json!({"refreshToken": refresh}))).await;
    assert_eq!(again.status, StatusCode::UNAUTHORIZED);
    assert_eq!(again.code(), "session-revoked");
    let other = app.call("POST", "/api/auth/refresh", None, Some(json!({"refreshToken": other}))).await;
    assert_eq!(other.status, StatusCode::OK);
    // Logging out twice, or with an unknown token, is not an error.
    let twice = app.call("POST", "/api/auth/logout", None, Some(json!({"refreshToken": refresh}))).await;
    assert_eq!(twice.status, StatusCode::NO_CONTENT);
}

async fn repeated_failed_logins_lock_the_account_for_the_window(app: TestApp) {
    let email = unique_email("locked");
    app.account(&email).await;
    for _ in 0..5 {
        let wrong = app.login(&email, "wrong-password-123").await;
        assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
        assert_eq!(wrong.code(), "invalid-credentials");
    }
    // Even the right password is refused while the account is locked.
    let locked = app.login(&email, PASSWORD).await;
    assert_eq!(locked.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(locked.code(), "account-locked");
    let retry: u64 = locked.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=900).contains(&retry), "{retry}");
    // Other accounts are unaffected.
    let (_, _, _) = app.account(&unique_email("free")).await;
    // An unknown account answers exactly like a wrong password.
    let unknown = app.login(&unique_email("ghost"), PASSWORD).await;
    assert_eq!((unknown.status, unknown.code()), (StatusCode::UNAUTHORIZED, "invalid-credentials"));
}

async fn the_profile_can_be_edited_within_validated_ranges(app: TestApp) {
    let (_, token, _) = app.account(&unique_email("edit")).await;
    app.wait_active(&token).await;
    let patch = json!({
        "nickname": "  비 오는 날  ",
        "homeLocation": {"lat": 37.5665, "lon": 126.978},
        "timeZone": "Asia/Seoul",
        "preferences": {"units": "imperial", "language": "ko", "notifications": {"chat": false}},
    });
    let updated = app.call("PATCH", "/api/users/me", Some(&token), Some(patch)).await;
    assert_eq!(updated.status, StatusCode::OK, "{:?}", updated.body);
    let me = app.call("GET", "/api/users/me", Some(&token), None).await.body;
    assert_eq!(me["nickname"], "비 오는 날");
    assert_eq!(me["homeLocation"], json!({"lat": 37.5665, "lon": 126.978}));
    assert_eq!(me["timeZone"], "Asia/Seoul");
    assert_eq!(me["preferences"]["units"], "imperial");
    assert_eq!(me["preferences"]["notifications"], json!({"missions": true, "coupons": true, "chat": false}));

    // null clears the location; absent fields stay.
    let cleared = app.call("PATCH", "/api/users/me", Some(&token), Some(json!({"homeLocation": null}))).await;
    assert_eq!(cleared.body["homeLocation"], serde_json::Value::Null);
    assert_eq!(cleared.body["timeZone"], "Asia/Seoul");

    for (body, code) in [
        (json!({"homeLocation": {"lat": 90.5, "lon": 0}}), "invalid-location"),
        (json!({"homeLocation": {"lat": 0, "lon": -181}}), "invalid-location"),
        (json!({"timeZone": "Mars/Olympus_Mons"}), "invalid-time-zone"),
        (json!({"nickname": ""}), "invalid-nickname"),
        (json!({"preferences": {"language": "not a tag"}}), "invalid-language"),
        (json!({"preferences": {"units": "cubits"}}), "invalid-body"),
    ] {
        let refused = app.call("PATCH", "/api/users/me", Some(&token), Some(body.clone())).await;
        assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {:?}", refused.body);
        assert_eq!(refused.code(), code, "{body}");
    }
    // Nothing that was refused changed the profile.
    let me = app.call("GET", "/api/users/me", Some(&token), None).await.body;
    assert_eq!(me["timeZone"], "Asia/Seoul");
    assert_eq!(me["nickname"], "비 오는 날");
}

async fn a_weak_password_is_refused_with_a_clear_message(app: TestApp) {
    let email = unique_email("weak");
    for password in ["short", "aaaaaaaaaaaaaaa", "password123"] {
        let resp = app
            .call(
                "POST",
                "/api/auth/signup",
                None,
                Some(json!({"email": email, "password": password, "nickname": "w"})),
            )
            .await;
        assert_eq!(resp.status, StatusCode::UNPROCESSABLE_ENTITY, "{password}");
        assert_eq!(resp.code(), "weak-password");
        assert!(resp.body["detail"].as_str().unwrap().contains("password"), "{:?}", resp.body);
    }
    // Nothing was created: the address is still free.
    assert_eq!(app.signup(&email).await.status, StatusCode::CREATED);
}
