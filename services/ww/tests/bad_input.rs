//! Bad input, table-driven: every case is a 4xx `application/problem+json` with a
//! stable code — never a 5xx — on both backends, and nothing accepted before is lost.

mod common;

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::{PASSWORD, TestApp, unique_email};
use platform::auth::JwtKeys;
use platform::config::KeyRing;
use serde_json::json;

struct Case {
    name: &'static str,
    method: &'static str,
    path: &'static str,
    content_type: Option<&'static str>,
    auth: Auth,
    body: Option<String>,
    status: u16,
    code: &'static str,
}

enum Auth {
    None,
    Valid,
    Raw(String),
}

fn forged(secret: &str, kid: &str, ttl: i64) -> String {
    let keys = JwtKeys::new(&KeyRing(vec![(kid.to_owned(), secret.as_bytes().to_vec())]), None, "weatherwise").unwrap();
    let now = chrono::Utc::now() + chrono::TimeDelta::seconds(ttl.min(0) * 2);
    keys.sign(uuid::Uuid::new_v4(), uuid::Uuid::new_v4(), now, Duration::from_secs(ttl.unsigned_abs())).unwrap()
}

fn cases() -> Vec<Case> {
    let json = Some("application/json");
    let signup = |body: &str, status, code| Case {
        name: "signup",
        method: "POST",
        path: "/api/auth/signup",
        content_type: json,
        auth: Auth::None,
        body: Some(body.to_owned()),
        status,
        code,
    };
    let me = |auth: Auth, status, code| Case {
        name: "me",
        method: "GET",
        path: "/api/users/me",
        content_type: None,
        auth,
        body: None,
        status,
        code,
    };
    let password = |auth: Auth, body: &str, status, code| Case {
        name: "change password",
        method: "POST",
        path: "/api/auth/password",
        content_type: json,
        auth,
        body: Some(body.to_owned()),
        status,
        code,
    };
    let logout_all = |auth: Auth, status, code| Case {
        name: "logout everywhere",
        method: "POST",
        path: "/api/auth/logout-all",
        content_type: None,
        auth,
        body: None,
        status,
        code,
    };
    let weather = |path: &'static str, auth: Auth, status, code| Case {
        name: "weather",
        method: "GET",
        path,
        content_type: None,
        auth,
        body: None,
        status,
        code,
    };
    let patch = |body: &str, status, code| Case {
        name: "patch me",
        method: "PATCH",
        path: "/api/users/me",
        content_type: json,
        auth: Auth::Valid,
        body: Some(body.to_owned()),
        status,
        code,
    };
    let board = |method, path, auth: Auth, body: Option<&str>, status, code| Case {
        name: "board",
        method,
        path,
        content_type: body.map(|_| "application/json"),
        auth,
        body: body.map(str::to_owned),
        status,
        code,
    };
    let web = |method, path, auth: Auth, body: Option<&str>, status, code| Case {
        name: "web",
        method,
        path,
        content_type: body.map(|_| "application/json"),
        auth,
        body: body.map(str::to_owned),
        status,
        code,
    };
    let long_title = format!(r#"{{"title": "{}", "body": "b"}}"#, "t".repeat(101));
    let long_note = format!(r#"{{"reason": "spam", "note": "{}"}}"#, " ".repeat(501));
    let huge_post = format!(r#"{{"title": "t", "body": "{}"}}"#, "b".repeat(40_000));
    let good_change = r#"{"currentPassword": "not-my-password", "newPassword": "sunny-day-sunglasses"}"#;
    vec![
        password(Auth::None, good_change, 401, "missing-token"),
        password(
            Auth::Raw(format!("Bearer {}", forged(common::SECRET, "test", -3600))),
            good_change,
            401,
            "token-expired",
        ),
        password(Auth::Raw("Bearer not.a.jwt".to_owned()), good_change, 401, "invalid-token"),
        password(Auth::Valid, "{\"currentPassword\": ", 400, "malformed-json"),
        password(Auth::Valid, r#"{"currentPassword": 5, "newPassword": "sunny-day-sunglasses"}"#, 422, "invalid-body"),
        password(Auth::Valid, r#"{"currentPassword": "not-my-password"}"#, 422, "invalid-body"),
        password(
            Auth::Valid,
            r#"{"current_password": "a", "newPassword": "sunny-day-sunglasses"}"#,
            422,
            "invalid-body",
        ),
        password(
            Auth::Valid,
            r#"{"currentPassword": "not-my-password", "newPassword": "short"}"#,
            422,
            "weak-password",
        ),
        password(Auth::Valid, good_change, 403, "wrong-password"),
        password(
            Auth::Valid,
            &format!(r#"{{"currentPassword": "x", "newPassword": "{}"}}"#, "p".repeat(40_000)),
            413,
            "body-too-large",
        ),
        logout_all(Auth::None, 401, "missing-token"),
        logout_all(Auth::Raw("Bearer not.a.jwt".to_owned()), 401, "invalid-token"),
        logout_all(Auth::Raw(format!("Bearer {}", forged(common::SECRET, "test", -3600))), 401, "token-expired"),
        signup("{\"email\": ", 400, "malformed-json"),
        signup("", 400, "malformed-json"),
        signup("[]", 422, "invalid-body"),
        signup(r#"{"email": 5, "password": "rainy-day-umbrella", "nickname": "x"}"#, 422, "invalid-body"),
        signup(r#"{"email": "a@example.com", "password": "rainy-day-umbrella"}"#, 422, "invalid-body"),
        // serde reads a struct from an array of its fields; the document allows objects only.
        signup(r#"["a@example.com", "rainy-day-umbrella", "x"]"#, 422, "invalid-body"),
        signup(
            r#"{"email": "a@example.com", "password": "rainy-day-umbrella", "nickname": "x", "admin": true}"#,
            422,
            "invalid-body",
        ),
        signup(r#"{"email": "not-an-email", "password": "rainy-day-umbrella", "nickname": "x"}"#, 422, "invalid-email"),
        signup(
            &format!(
                r#"{{"email": "a@example.com", "password": "rainy-day-umbrella", "nickname": "{}"}}"#,
                "n".repeat(33)
            ),
            422,
            "invalid-nickname",
        ),
        signup(
            &format!(r#"{{"email": "a@example.com", "password": "{}", "nickname": "x"}}"#, "p".repeat(40_000)),
            413,
            "body-too-large",
        ),
        Case {
            name: "signup as form",
            method: "POST",
            path: "/api/auth/signup",
            content_type: Some("application/x-www-form-urlencoded"),
            auth: Auth::None,
            body: Some("email=a@example.com".to_owned()),
            status: 415,
            code: "unsupported-media-type",
        },
        Case {
            name: "login without content type",
            method: "POST",
            path: "/api/auth/login",
            content_type: None,
            auth: Auth::None,
            body: Some("{}".to_owned()),
            status: 415,
            code: "unsupported-media-type",
        },
        Case {
            name: "refresh with a number",
            method: "POST",
            path: "/api/auth/refresh",
            content_type: json,
            auth: Auth::None,
            body: Some(r#"{"refreshToken": 12}"#.to_owned()),
            status: 422,
            code: "invalid-body",
        },
        me(Auth::None, 401, "missing-token"),
        me(Auth::Raw("Basic dXNlcjpwYXNz".to_owned()), 401, "invalid-token"),
        me(Auth::Raw("Bearer ".to_owned()), 401, "invalid-token"),
        me(Auth::Raw("Bearer not.a.jwt".to_owned()), 401, "invalid-token"),
        me(
            Auth::Raw(format!("Bearer {}", forged("forged-secret-forged-secret-forged-secret", "test", 60))),
            401,
            "invalid-token",
        ),
        me(Auth::Raw(format!("Bearer {}", forged(common::SECRET, "retired-kid", 60))), 401, "invalid-token"),
        me(Auth::Raw(format!("Bearer {}", forged(common::SECRET, "test", -3600))), 401, "token-expired"),
        patch(r#"{"homeLocation": {"lat": "north", "lon": 0}}"#, 422, "invalid-body"),
        patch(r#"{"homeLocation": {"lat": 1e400, "lon": 0}}"#, 400, "malformed-json"),
        patch(r#"{"homeLocation": {"lat": -91, "lon": 0}}"#, 422, "invalid-location"),
        patch(r#"{"timeZone": "Asia/Nowhere"}"#, 422, "invalid-time-zone"),
        patch(r#"{"email": "new@example.com"}"#, 422, "invalid-body"),
        patch("null", 422, "invalid-body"),
        weather("/api/weather?lat=37.5&lon=127", Auth::None, 401, "missing-token"),
        weather("/api/weather?lat=37.5", Auth::Valid, 400, "invalid-query"),
        weather("/api/weather", Auth::Valid, 400, "invalid-query"),
        weather("/api/weather?lat=north&lon=127", Auth::Valid, 400, "invalid-query"),
        weather("/api/weather?lat=91&lon=127", Auth::Valid, 400, "invalid-location"),
        weather("/api/weather?lat=37.5&lon=-180.01", Auth::Valid, 400, "invalid-location"),
        weather("/api/weather?lat=NaN&lon=127", Auth::Valid, 400, "invalid-location"),
        weather("/api/weather?lat=1e999&lon=127", Auth::Valid, 400, "invalid-location"),
        weather("/api/weather?lat=37.5&lon=127&units=imperial", Auth::Valid, 400, "invalid-query"),
        board("POST", "/api/board/posts", Auth::None, Some(r#"{"title": "t", "body": "b"}"#), 401, "missing-token"),
        board("POST", "/api/board/posts", Auth::Valid, Some(r#"{"title": "t", "body": "#), 400, "malformed-json"),
        board("POST", "/api/board/posts", Auth::Valid, Some(r#"{"title": 5, "body": "b"}"#), 422, "invalid-body"),
        board("POST", "/api/board/posts", Auth::Valid, Some(r#"{"title": "t"}"#), 422, "invalid-body"),
        board(
            "POST",
            "/api/board/posts",
            Auth::Valid,
            Some(r#"{"title": "t", "body": "b", "pinned": true}"#),
            422,
            "invalid-body",
        ),
        board("POST", "/api/board/posts", Auth::Valid, Some(long_title.as_str()), 422, "invalid-title"),
        board(
            "POST",
            "/api/board/posts",
            Auth::Valid,
            Some(r#"{"title": "two\nlines", "body": "b"}"#),
            422,
            "invalid-title",
        ),
        board("POST", "/api/board/posts", Auth::Valid, Some(r#"{"title": "t", "body": "   "}"#), 422, "invalid-text"),
        board(
            "POST",
            "/api/board/posts",
            Auth::Valid,
            Some(r#"{"title": "t", "body": "bell\u0007"}"#),
            422,
            "invalid-text",
        ),
        board("POST", "/api/board/posts", Auth::Valid, Some(huge_post.as_str()), 413, "body-too-large"),
        board("GET", "/api/board/posts?limit=abc", Auth::Valid, None, 400, "invalid-query"),
        board("GET", "/api/board/posts?limit=0", Auth::Valid, None, 400, "invalid-query"),
        board("GET", "/api/board/posts?before=1.2", Auth::Valid, None, 400, "invalid-cursor"),
        board("GET", "/api/board/posts?q=", Auth::Valid, None, 422, "invalid-search"),
        board("GET", "/api/board/posts?q=%25%25", Auth::Valid, None, 422, "invalid-search"),
        board("GET", "/api/board/posts?q=rain%00", Auth::Valid, None, 422, "invalid-search"),
        board("GET", "/api/board/posts?q=rain%0Asnow", Auth::Valid, None, 422, "invalid-search"),
        board("GET", "/api/board/posts/not-a-post", Auth::Valid, None, 404, "unknown-post"),
        board("GET", "/api/board/posts/0190b3a0-0000-7000-8000-000000000000", Auth::None, None, 401, "missing-token"),
        board(
            "PUT",
            "/api/board/posts/0190b3a0-0000-7000-8000-000000000000/like",
            Auth::Valid,
            None,
            404,
            "unknown-post",
        ),
        board(
            "PATCH",
            "/api/board/posts/0190b3a0-0000-7000-8000-000000000000",
            Auth::Valid,
            Some(r#"{"title": "t"}"#),
            404,
            "unknown-post",
        ),
        board(
            "POST",
            "/api/board/posts/0190b3a0-0000-7000-8000-000000000000/comments",
            Auth::Valid,
            Some(r#"{"body": "hi"}"#),
            404,
            "unknown-post",
        ),
        board(
            "POST",
            "/api/board/posts/0190b3a0-0000-7000-8000-000000000000/comments",
            Auth::Valid,
            Some(r#"{"body": ""}"#),
            422,
            "invalid-text",
        ),
        board(
            "POST",
            "/api/board/posts/0190b3a0-0000-7000-8000-000000000000/reports",
            Auth::Valid,
            Some(r#"{"reason": "boring"}"#),
            422,
            "invalid-body",
        ),
        board(
            "POST",
            "/api/board/comments/0190b3a0-0000-7000-8000-000000000000/reports",
            Auth::Valid,
            Some(r#"{"reason": "spam"}"#),
            404,
            "unknown-comment",
        ),
        board(
            "POST",
            "/api/board/posts/0190b3a0-0000-7000-8000-000000000000/reports",
            Auth::Valid,
            Some(long_note.as_str()),
            422,
            "invalid-note",
        ),
        board(
            "POST",
            "/api/board/posts/0190b3a0-0000-7000-8000-000000000000/reports",
            Auth::Valid,
            Some(r#"{"reason": "spam", "note": "\u000b"}"#),
            422,
            "invalid-note",
        ),
        board(
            "POST",
            "/api/board/posts/0190b3a0-0000-7000-8000-000000000000/removal",
            Auth::Valid,
            Some(r#"{"reason": "x"}"#),
            403,
            "forbidden-role",
        ),
        board("GET", "/api/board/reports", Auth::Valid, None, 403, "forbidden-role"),
        board("PUT", "/api/board/blocks/nobody", Auth::Valid, None, 404, "unknown-user"),
        web(
            "POST",
            "/api/auth/web/login",
            Auth::None,
            Some(r#"{"email": "a@b.c", "password": "#),
            400,
            "malformed-json",
        ),
        web("POST", "/api/auth/web/login", Auth::None, Some(r#"{"email": 5, "password": "x"}"#), 422, "invalid-body"),
        web(
            "POST",
            "/api/auth/web/login",
            Auth::None,
            Some(r#"{"email": "nobody@example.com", "password": "x"}"#),
            401,
            "invalid-credentials",
        ),
        web("POST", "/api/auth/web/refresh", Auth::None, None, 401, "no-session"),
        web("POST", "/api/auth/web/logout", Auth::None, None, 401, "no-session"),
        web("GET", "/api/live/campaigns", Auth::None, None, 401, "missing-token"),
        web(
            "GET",
            "/api/live/campaigns",
            Auth::Raw(format!("Bearer {}", forged(common::SECRET, "test", -3600))),
            None,
            401,
            "token-expired",
        ),
        web(
            "POST",
            "/api/dashboard/campaigns/check",
            Auth::Valid,
            Some(r#"{"yaml": "kind: X"}"#),
            403,
            "forbidden-role",
        ),
        web("POST", "/api/dashboard/campaigns/check", Auth::None, Some(r#"{"yaml": "kind: X"}"#), 401, "missing-token"),
        web("GET", "/assets/../Cargo.toml", Auth::None, None, 404, "not-found"),
        web("GET", "/assets/app.js/", Auth::None, None, 404, "not-found"),
        Case {
            name: "unknown path",
            method: "GET",
            path: "/api/nothing-here",
            content_type: None,
            auth: Auth::None,
            body: None,
            status: 404,
            code: "not-found",
        },
        Case {
            name: "wrong method",
            method: "DELETE",
            path: "/api/auth/login",
            content_type: None,
            auth: Auth::None,
            body: None,
            status: 405,
            code: "method-not-allowed",
        },
    ]
}

on_both_backends!(bad_input_is_a_clear_4xx_problem_and_loses_nothing);

async fn bad_input_is_a_clear_4xx_problem_and_loses_nothing(app: TestApp) {
    let email = unique_email("keep");
    let (user_id, token, _) = app.account(&email).await;
    app.wait_active(&token).await;
    let kept = app.call("PATCH", "/api/users/me", Some(&token), Some(json!({"timeZone": "Asia/Seoul"}))).await;
    assert_eq!(kept.status, StatusCode::OK);
    let made =
        app.call("POST", "/api/board/posts", Some(&token), Some(json!({"title": "kept", "body": "before"}))).await;
    let kept_post = made.body["id"].as_str().expect("a post").to_owned();
    app.call("PUT", &format!("/api/board/posts/{kept_post}/like"), Some(&token), None).await;

    let mut failures = Vec::new();
    for case in cases() {
        let mut req = Request::builder().method(case.method).uri(case.path);
        if let Some(ct) = case.content_type {
            req = req.header("content-type", ct);
        }
        match &case.auth {
            Auth::None => {}
            Auth::Valid => req = req.header("authorization", format!("Bearer {token}")),
            Auth::Raw(v) => req = req.header("authorization", v.as_str()),
        }
        let body = case.body.clone().map_or_else(Body::empty, Body::from);
        let resp = app.send(req.body(body).unwrap()).await;
        let problem = resp.content_type() == "application/problem+json";
        let well_formed =
            resp.body["status"] == case.status && resp.body["type"].as_str().is_some_and(|t| t.ends_with(case.code));
        if resp.status.as_u16() != case.status || resp.code() != case.code || !problem || !well_formed {
            failures.push(format!(
                "{} {} ({}): expected {} {}, got {} {} [{}] {:?}",
                case.method,
                case.path,
                case.name,
                case.status,
                case.code,
                resp.status,
                resp.code(),
                resp.content_type(),
                resp.body
            ));
        }
        if resp.status.as_u16() == 401 && !resp.headers.contains_key("www-authenticate") {
            failures.push(format!("{}: 401 without WWW-Authenticate", case.name));
        }
    }
    assert!(failures.is_empty(), "{} cases failed:\n{}", failures.len(), failures.join("\n"));

    // What was accepted before the barrage is intact.
    let me = app.call("GET", "/api/users/me", Some(&token), None).await;
    assert_eq!(me.body["userId"], user_id.as_str());
    assert_eq!(me.body["timeZone"], "Asia/Seoul");
    assert_eq!(app.login(&email, PASSWORD).await.status, StatusCode::OK);
    let post = app.call("GET", &format!("/api/board/posts/{kept_post}"), Some(&token), None).await;
    assert_eq!(
        (post.status, post.body["title"].as_str(), post.body["likes"].as_i64()),
        (StatusCode::OK, Some("kept"), Some(1))
    );
}
