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
    parallel_wrong_passwords_get_at_most_the_limit_of_401s,
    logout_stops_the_access_token_on_another_role_within_a_bounded_time,
    refresh_token_reuse_stops_the_access_tokens_of_the_session,
    a_password_change_keeps_this_session_and_ends_the_others,
    logout_all_ends_every_session_of_the_account,
    token_responses_are_not_cacheable,
    roles_granted_with_ww_admin_arrive_with_the_next_refresh,
    signups_share_the_per_address_budget_of_logins,
    a_signup_event_carries_the_trace_of_its_request,
);

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// GET /api/users/me on `router` with `token`.
async fn me_on(router: &axum::Router, token: &str) -> common::Resp {
    let req = axum::http::Request::get("/api/users/me")
        .header("authorization", bearer(token))
        .body(axum::body::Body::empty())
        .unwrap();
    TestApp::send_to(router, req).await
}

/// Another process on the same backends running only the user role, with its own key
/// ring and therefore its own deny-list: it learns of revocations only through events.
async fn user_role_elsewhere(app: &TestApp) -> axum::Router {
    let mut ctx = app.ctx.clone();
    ctx.keys = std::sync::Arc::new(common::test_keys());
    let built = ww::app::build(
        &[ww::cli::ServiceName::User],
        &ctx,
        &common::fast_config(),
        &platform::http::HttpSettings::default(),
    )
    .await
    .expect("user role starts");
    built.server.router()
}

/// Polls `router` until `token` is refused as `session-revoked`; panics after 60 s.
async fn wait_refused(router: &axum::Router, token: &str, what: &str) {
    let started = std::time::Instant::now();
    loop {
        let me = me_on(router, token).await;
        if me.status == StatusCode::UNAUTHORIZED {
            assert_eq!(me.code(), "session-revoked", "{what}: {:?}", me.body);
            eprintln!("{what}: refused after {:?}", started.elapsed());
            return;
        }
        assert_eq!(me.status, StatusCode::OK, "{what}: {:?}", me.body);
        assert!(started.elapsed() < Duration::from_secs(60), "{what}: token still accepted after 60s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn parallel_wrong_passwords_get_at_most_the_limit_of_401s(app: TestApp) {
    let email = unique_email("parallel");
    app.account(&email).await;
    let limit = common::fast_config().auth.login_max_failures as usize;
    let attempts = (0..30).map(|i| {
        let (app, email) = (&app, email.clone());
        async move { app.login(&email, &format!("wrong-password-{i}")).await }
    });
    let answers = futures::future::join_all(attempts).await;
    let refused = answers.iter().filter(|r| r.status == StatusCode::UNAUTHORIZED).count();
    let locked = answers.iter().filter(|r| r.status == StatusCode::TOO_MANY_REQUESTS).count();
    assert!(refused <= limit, "{refused} wrong passwords were checked; the limit is {limit}");
    assert_eq!(refused + locked, 30, "{:?}", answers.iter().map(|r| r.status).collect::<Vec<_>>());
    assert!(answers.iter().filter(|r| r.status == StatusCode::TOO_MANY_REQUESTS).all(|r| r.code() == "account-locked"));
    assert_eq!(app.login(&email, PASSWORD).await.code(), "account-locked", "the right password waits too");
}

async fn logout_stops_the_access_token_on_another_role_within_a_bounded_time(app: TestApp) {
    let elsewhere = user_role_elsewhere(&app).await;
    let (_, access, refresh) = app.account(&unique_email("everywhere")).await;
    app.wait_active(&access).await;
    assert_eq!(me_on(&elsewhere, &access).await.status, StatusCode::OK);
    let out = app.call("POST", "/api/auth/logout", None, Some(json!({"refreshToken": refresh}))).await;
    assert_eq!(out.status, StatusCode::NO_CONTENT);
    // The replica that logged out knows at once; another process through the event.
    let here = app.call("GET", "/api/users/me", Some(&access), None).await;
    assert_eq!((here.status, here.code()), (StatusCode::UNAUTHORIZED, "session-revoked"));
    wait_refused(&elsewhere, &access, "user role in another process").await;
    // A process that starts after the logout learns it from the log, before it is ready.
    let later = user_role_elsewhere(&app).await;
    let started = std::time::Instant::now();
    loop {
        let req = axum::http::Request::get("/readyz").body(axum::body::Body::empty()).unwrap();
        let ready = TestApp::send_to(&later, req).await;
        if ready.body["checks"]["session-revocations"] == "ok" {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "replay never caught up: {:?}", ready.body);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let me = me_on(&later, &access).await;
    assert_eq!((me.status, me.code()), (StatusCode::UNAUTHORIZED, "session-revoked"), "once ready it knows");
}

async fn refresh_token_reuse_stops_the_access_tokens_of_the_session(app: TestApp) {
    let (_, access, first) = app.account(&unique_email("reuse")).await;
    app.wait_active(&access).await;
    let second = app.call("POST", "/api/auth/refresh", None, Some(json!({"refreshToken": first}))).await;
    let newer_access = second.body["accessToken"].as_str().unwrap().to_owned();
    assert_eq!(app.call("GET", "/api/users/me", Some(&newer_access), None).await.status, StatusCode::OK);
    let reused = app.call("POST", "/api/auth/refresh", None, Some(json!({"refreshToken": first}))).await;
    assert_eq!(reused.code(), "refresh-token-reused");
    for token in [&access, &newer_access] {
        let me = app.call("GET", "/api/users/me", Some(token), None).await;
        assert_eq!((me.status, me.code()), (StatusCode::UNAUTHORIZED, "session-revoked"));
    }
}

async fn a_password_change_keeps_this_session_and_ends_the_others(app: TestApp) {
    let email = unique_email("change");
    let (_, access, _) = app.account(&email).await;
    app.wait_active(&access).await;
    let other = app.login(&email, PASSWORD).await;
    let (other_access, other_refresh) = (
        other.body["accessToken"].as_str().unwrap().to_owned(),
        other.body["refreshToken"].as_str().unwrap().to_owned(),
    );
    let change = |current: &str, new: &str| {
        let body = json!({"currentPassword": current, "newPassword": new});
        app.call("POST", "/api/auth/password", Some(&access), Some(body))
    };
    let wrong = change("not-my-password", "sunny-day-sunglasses").await;
    assert_eq!((wrong.status, wrong.code()), (StatusCode::FORBIDDEN, "wrong-password"));
    let weak = change(PASSWORD, "short").await;
    assert_eq!((weak.status, weak.code()), (StatusCode::UNPROCESSABLE_ENTITY, "weak-password"));
    let same = change(PASSWORD, PASSWORD).await;
    assert_eq!((same.status, same.code()), (StatusCode::UNPROCESSABLE_ENTITY, "weak-password"));
    assert_eq!(change(PASSWORD, "sunny-day-sunglasses").await.status, StatusCode::NO_CONTENT);

    assert_eq!(
        app.call("GET", "/api/users/me", Some(&access), None).await.status,
        StatusCode::OK,
        "this session stays"
    );
    let ended = app.call("GET", "/api/users/me", Some(&other_access), None).await;
    assert_eq!((ended.status, ended.code()), (StatusCode::UNAUTHORIZED, "session-revoked"));
    let refused = app.call("POST", "/api/auth/refresh", None, Some(json!({"refreshToken": other_refresh}))).await;
    assert_eq!(refused.code(), "session-revoked");
    assert_eq!(app.login(&email, PASSWORD).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(app.login(&email, "sunny-day-sunglasses").await.status, StatusCode::OK);
}

async fn logout_all_ends_every_session_of_the_account(app: TestApp) {
    let email = unique_email("all");
    let (_, access, refresh) = app.account(&email).await;
    app.wait_active(&access).await;
    let second = app.login(&email, PASSWORD).await.body["accessToken"].as_str().unwrap().to_owned();
    let (_, bystander, _) = app.account(&unique_email("bystander")).await;
    assert_eq!(app.call("POST", "/api/auth/logout-all", None, None).await.code(), "missing-token");
    assert_eq!(app.call("POST", "/api/auth/logout-all", Some(&second), None).await.status, StatusCode::NO_CONTENT);
    for token in [&access, &second] {
        let me = app.call("GET", "/api/users/me", Some(token), None).await;
        assert_eq!((me.status, me.code()), (StatusCode::UNAUTHORIZED, "session-revoked"));
    }
    let again = app.call("POST", "/api/auth/logout-all", Some(&second), None).await;
    assert_eq!(again.code(), "session-revoked", "the ended session cannot act anymore");
    let refreshed = app.call("POST", "/api/auth/refresh", None, Some(json!({"refreshToken": refresh}))).await;
    assert_eq!(refreshed.code(), "session-revoked");
    assert_eq!(app.call("GET", "/api/users/me", Some(&bystander), None).await.status, StatusCode::OK);
}

async fn token_responses_are_not_cacheable(app: TestApp) {
    let email = unique_email("cache");
    app.signup(&email).await;
    let login = app.login(&email, PASSWORD).await;
    let refresh = login.body["refreshToken"].as_str().unwrap().to_owned();
    let refreshed = app.call("POST", "/api/auth/refresh", None, Some(json!({"refreshToken": refresh}))).await;
    let failed = app.login(&email, "wrong-password-1").await;
    for (what, resp) in [("login", &login), ("refresh", &refreshed), ("failed login", &failed)] {
        assert_eq!(resp.headers.get("cache-control").and_then(|v| v.to_str().ok()), Some("no-store"), "{what}");
        assert_eq!(resp.headers.get("pragma").and_then(|v| v.to_str().ok()), Some("no-cache"), "{what}");
    }
}

/// Runs `ww admin ARGS…` against the app's database.
fn ww_admin(app: &TestApp, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_ww"))
        .arg("admin")
        .args(args)
        .env("WW_DATABASE_URL", app.ctx.database.url_with_secrets())
        .output()
        .expect("ww runs")
}

async fn roles_granted_with_ww_admin_arrive_with_the_next_refresh(app: TestApp) {
    let email = unique_email("moderator");
    let (_, access, refresh) = app.account(&email).await;
    assert!(app.keys.verify(&access).unwrap().roles.is_empty());
    let granted = ww_admin(&app, &["grant-role", &email, "moderator"]);
    assert!(granted.status.success(), "{}", String::from_utf8_lossy(&granted.stderr));
    assert!(app.keys.verify(&access).unwrap().roles.is_empty(), "an issued token keeps its roles");
    let refreshed = app.call("POST", "/api/auth/refresh", None, Some(json!({"refreshToken": refresh}))).await;
    let access = refreshed.body["accessToken"].as_str().unwrap();
    assert_eq!(app.keys.verify(access).unwrap().roles, vec!["moderator"]);
    let relogged = app.login(&email, PASSWORD).await;
    assert_eq!(app.keys.verify(relogged.body["accessToken"].as_str().unwrap()).unwrap().roles, vec!["moderator"]);

    let revoked = ww_admin(&app, &["revoke-role", &email, "moderator"]);
    assert!(revoked.status.success(), "{}", String::from_utf8_lossy(&revoked.stderr));
    let refresh = refreshed.body["refreshToken"].as_str().unwrap();
    let refreshed = app.call("POST", "/api/auth/refresh", None, Some(json!({"refreshToken": refresh}))).await;
    assert!(app.keys.verify(refreshed.body["accessToken"].as_str().unwrap()).unwrap().roles.is_empty());

    let unknown_role = ww_admin(&app, &["grant-role", &email, "Superuser"]);
    assert!(!unknown_role.status.success());
    assert!(String::from_utf8_lossy(&unknown_role.stderr).contains("moderator, marketing, admin"));
    let unknown_account = ww_admin(&app, &["grant-role", &unique_email("nobody"), "admin"]);
    assert!(!unknown_account.status.success());
    assert!(String::from_utf8_lossy(&unknown_account.stderr).contains("no account"));
}

async fn signups_share_the_per_address_budget_of_logins(app: TestApp) {
    // The test harness has no socket peer: every request comes from one "unknown" address.
    let budget = common::fast_config().auth.login_max_per_address;
    let mut last = None;
    for i in 0..=budget {
        let resp = if i % 2 == 0 {
            app.signup(&unique_email("flood")).await
        } else {
            app.login(&unique_email("x"), PASSWORD).await
        };
        last = Some(resp);
    }
    let last = last.unwrap();
    assert_eq!((last.status, last.code()), (StatusCode::TOO_MANY_REQUESTS, "too-many-login-attempts"));
    let signup = app.signup(&unique_email("late")).await;
    assert_eq!((signup.status, signup.code()), (StatusCode::TOO_MANY_REQUESTS, "too-many-login-attempts"));
}

async fn a_signup_event_carries_the_trace_of_its_request(app: TestApp) {
    use platform::events::contracts::topics;
    let (seen_tx, mut seen) = tokio::sync::mpsc::unbounded_channel();
    struct Capture(tokio::sync::mpsc::UnboundedSender<platform::events::Envelope>);
    impl platform::events::Handler for Capture {
        async fn handle(&self, event: &platform::events::Envelope) -> anyhow::Result<()> {
            let _ = self.0.send(event.clone());
            Ok(())
        }
    }
    let (_task, _) =
        app.ctx.bus.spawn_replay("test.trace", &[topics::IDENTITY], Capture(seen_tx), app.ctx.stop.clone());
    let trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let email = unique_email("traced");
    let req = axum::http::Request::post("/api/auth/signup")
        .header("content-type", "application/json")
        .header("traceparent", trace)
        .body(axum::body::Body::from(json!({"email": email, "password": PASSWORD, "nickname": "t"}).to_string()))
        .unwrap();
    let signed = app.send(req).await;
    assert_eq!(signed.status, StatusCode::CREATED);
    let user_id = signed.body["userId"].as_str().unwrap().to_owned();
    let found = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(event) = seen.recv().await {
            if event.data["userId"] == user_id.as_str() {
                return event;
            }
        }
        panic!("the replay stopped");
    })
    .await
    .expect("the signup event is published");
    let carried = found.trace().expect("the event carries a traceparent");
    assert_eq!(carried.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
}

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

/// The absolute session lifetime needs a clock that can be moved: its own pair of tests.
mod lifetime {
    use super::*;
    use common::Backend;
    use platform::clock::Clock;

    async fn a_session_cannot_be_refreshed_past_its_absolute_lifetime(backend: Backend) {
        let start = chrono::Utc::now();
        let clock = Clock::manual(start);
        let app = TestApp::start_with(backend, common::fast_config(), clock.clone()).await.expect("backends");
        let max_age = chrono::TimeDelta::days(common::fast_config().auth.session_max_age_days as i64);
        let (_, _, mut refresh) = app.account(&unique_email("ageing")).await;
        for day in [10, 20, 29] {
            clock.set(start + chrono::TimeDelta::days(day));
            let refreshed = app.call("POST", "/api/auth/refresh", None, Some(json!({"refreshToken": refresh}))).await;
            assert_eq!(refreshed.status, StatusCode::OK, "day {day}: {:?}", refreshed.body);
            refresh = refreshed.body["refreshToken"].as_str().unwrap().to_owned();
        }
        clock.set(start + max_age + chrono::TimeDelta::minutes(1));
        let refused = app.call("POST", "/api/auth/refresh", None, Some(json!({"refreshToken": refresh}))).await;
        assert_eq!(
            (refused.status, refused.code()),
            (StatusCode::UNAUTHORIZED, "session-expired"),
            "{:?}",
            refused.body
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn embedded_a_session_cannot_be_refreshed_past_its_absolute_lifetime() {
        a_session_cannot_be_refreshed_past_its_absolute_lifetime(Backend::Embedded).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[cfg_attr(ww_no_backends, ignore = "WW_TEST_NO_BACKENDS was set: needs PostgreSQL, Redis and Kafka")]
    async fn real_a_session_cannot_be_refreshed_past_its_absolute_lifetime() {
        a_session_cannot_be_refreshed_past_its_absolute_lifetime(Backend::Real).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_describes_the_new_auth_endpoints() {
    let app = TestApp::embedded().await;
    let doc = app.call("GET", "/openapi.json", None, None).await.body;
    let change = &doc["paths"]["/api/auth/password"]["post"];
    for status in ["204", "401", "403", "422", "429"] {
        assert!(change["responses"][status].is_object(), "password change lacks {status}: {change}");
    }
    assert!(change["responses"]["403"]["content"]["application/problem+json"].is_object());
    assert!(change["security"].is_array(), "needs a bearer token");
    let schema = &doc["components"]["schemas"]["ChangePasswordRequest"];
    let required: Vec<&str> = schema["required"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert_eq!(required, vec!["currentPassword", "newPassword"]);
    assert_eq!(schema["properties"]["newPassword"]["minLength"], 10);
    assert_eq!(schema["properties"]["newPassword"]["maxLength"], 128);
    assert_eq!(schema["additionalProperties"], false, "unknown fields are refused");
    let logout_all = &doc["paths"]["/api/auth/logout-all"]["post"];
    assert!(logout_all["responses"]["204"].is_object() && logout_all["responses"]["401"].is_object());
    for path in ["/api/auth/login", "/api/auth/signup"] {
        let op = &doc["paths"][path]["post"];
        for status in ["422", "429"] {
            assert!(op["responses"][status]["content"]["application/problem+json"].is_object(), "{path} {status}");
        }
    }
    assert!(
        doc["paths"]["/api/auth/refresh"]["post"]["responses"]["401"]["description"]
            .as_str()
            .unwrap()
            .contains("session-expired")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_states_the_nickname_rule_the_service_applies() {
    let app = TestApp::embedded().await;
    let doc = app.call("GET", "/openapi.json", None, None).await.body;
    let schemas = &doc["components"]["schemas"];
    for body in ["SignupRequest", "ProfilePatch"] {
        assert_eq!(
            schemas[body]["properties"]["nickname"]["pattern"],
            platform::validate::NICKNAME_PATTERN,
            "{body}: {}",
            schemas[body]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_states_the_campaign_phase_words_the_service_accepts() {
    let app = TestApp::embedded().await;
    let doc = app.call("GET", "/openapi.json", None, None).await.body;
    let params = doc["paths"]["/api/coupons/campaigns"]["get"]["parameters"].as_array().unwrap();
    let phase = params.iter().find(|p| p["name"] == "phase").unwrap();
    assert_eq!(phase["schema"]["pattern"], campaign::API_PHASE_PATTERN);
}
