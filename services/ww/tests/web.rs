//! The web role through the whole app on both backends: the pages (compressed, revalidated,
//! locked down by their Content-Security-Policy), browser sessions whose refresh token stays in
//! an HttpOnly cookie behind a CSRF check, the live counts pushed to many viewers from one
//! subscription, and the dashboard's campaign check. The pages themselves run in Chromium in
//! `tests/browser`.

mod common;

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use chrono::Utc;
use common::{Backend, PASSWORD, Resp, TestApp, fast_config, unique_email};
use http_body_util::BodyExt;
use platform::clock::Clock;
use platform::events::Envelope;
use platform::events::contracts::{CAMPAIGN_COUNTED, CampaignCounted, topics};
use platform::roles::{Role, Roles};
use serde_json::{Value, json};
use tower::ServiceExt;
use uuid::Uuid;
use ww::cli::ServiceName;

macro_rules! web_tests {
    ($($name:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    $crate::common::watchdog(stringify!($name), async {
                        super::$name(super::app($crate::common::Backend::Embedded).await).await;
                    })
                    .await;
                }
            )*
        }
        mod real {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                #[cfg_attr(ww_no_backends, ignore = "WW_TEST_NO_BACKENDS was set: needs PostgreSQL, Redis and Kafka")]
                async fn $name() {
                    $crate::common::watchdog(stringify!($name), async {
                        super::$name(super::app($crate::common::Backend::Real).await).await;
                    })
                    .await;
                }
            )*
        }
    };
}

web_tests!(
    pages_are_compressed_revalidated_and_locked_down,
    browser_sessions_keep_the_refresh_token_out_of_the_page,
    live_counts_reach_every_viewer_from_one_subscription,
    the_campaign_check_is_for_marketing_and_names_each_problem,
);

async fn app(backend: Backend) -> TestApp {
    let services = [ServiceName::Auth, ServiceName::User, ServiceName::Coupon, ServiceName::Web];
    TestApp::start_custom(backend, fast_config(), Clock::System, &services, None).await.expect("backends")
}

fn get(path: &str, headers: &[(&str, &str)]) -> Request<Body> {
    let mut req = Request::builder().uri(path);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.body(Body::empty()).unwrap()
}

fn header<'a>(r: &'a Resp, name: &str) -> &'a str {
    r.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default()
}

async fn pages_are_compressed_revalidated_and_locked_down(app: TestApp) {
    for page in ["/", "/dashboard"] {
        let r = app.send(get(page, &[("accept-encoding", "gzip, br")])).await;
        assert_eq!(r.status, StatusCode::OK, "{page}");
        assert_eq!(r.content_type(), "text/html; charset=utf-8");
        assert_eq!(header(&r, "content-encoding"), "gzip");
        let csp = header(&r, "content-security-policy");
        assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"), "{csp}");
        assert!(!csp.contains("unsafe"), "{csp}");
        assert_eq!(header(&r, "x-content-type-options"), "nosniff");
        let etag = header(&r, "etag").to_owned();
        let again = app.send(get(page, &[("if-none-match", &etag), ("accept-encoding", "gzip")])).await;
        assert_eq!(again.status, StatusCode::NOT_MODIFIED);
        assert!(again.raw.is_empty());
        // The uncompressed body is another representation, with its own tag.
        let plain = app.send(get(page, &[("if-none-match", &etag)])).await;
        assert_eq!(plain.status, StatusCode::OK);
        assert_ne!(header(&plain, "etag"), etag);
    }
    let plain = app.send(get("/assets/app.js", &[])).await;
    assert_eq!(plain.status, StatusCode::OK);
    assert_eq!(plain.content_type(), "text/javascript; charset=utf-8");
    assert_eq!(header(&plain, "content-encoding"), "");
    assert!(std::str::from_utf8(&plain.raw).unwrap().contains("import"));
    let missing = app.send(get("/assets/nothing.js", &[])).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.content_type(), "application/problem+json");
}

/// The `Set-Cookie` values of a response, by cookie name.
fn set_cookies(r: &Resp) -> Vec<(String, String)> {
    r.headers
        .get_all("set-cookie")
        .iter()
        .map(|v| {
            let v = v.to_str().unwrap();
            let name = v.split('=').next().unwrap().to_owned();
            (name, v.to_owned())
        })
        .collect()
}

fn cookie_value(set_cookie: &str) -> &str {
    set_cookie.split(';').next().unwrap().split_once('=').unwrap().1
}

struct Browser {
    refresh: String,
    csrf: String,
}

impl Browser {
    fn from(r: &Resp) -> Self {
        let cookies = set_cookies(r);
        let find = |n: &str| cookies.iter().find(|(k, _)| k == n).map(|(_, v)| cookie_value(v).to_owned()).unwrap();
        Self { refresh: find(auth::REFRESH_COOKIE), csrf: find(auth::CSRF_COOKIE) }
    }

    fn request(&self, path: &str, csrf: Option<&str>) -> Request<Body> {
        let mut req = Request::builder().method("POST").uri(path).header(
            "cookie",
            format!("{}={}; {}={}", auth::REFRESH_COOKIE, self.refresh, auth::CSRF_COOKIE, self.csrf),
        );
        if let Some(token) = csrf {
            req = req.header(auth::CSRF_HEADER, token);
        }
        req.body(Body::empty()).unwrap()
    }
}

async fn browser_sessions_keep_the_refresh_token_out_of_the_page(app: TestApp) {
    let email = unique_email("browser");
    assert_eq!(app.signup(&email).await.status, StatusCode::CREATED);
    let login =
        app.call("POST", "/api/auth/web/login", None, Some(json!({"email": email, "password": PASSWORD}))).await;
    assert_eq!(login.status, StatusCode::OK, "{:?}", login.body);
    assert!(login.body["accessToken"].is_string());
    assert!(login.body.get("refreshToken").is_none(), "the page never sees the refresh token");
    assert_eq!(header(&login, "cache-control"), "no-store");
    let cookies = set_cookies(&login);
    let refresh_cookie = &cookies.iter().find(|(k, _)| k == auth::REFRESH_COOKIE).unwrap().1;
    for attribute in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/;"] {
        assert!(refresh_cookie.contains(attribute), "{refresh_cookie}");
    }
    let csrf_cookie = &cookies.iter().find(|(k, _)| k == auth::CSRF_COOKIE).unwrap().1;
    assert!(!csrf_cookie.contains("HttpOnly") && csrf_cookie.contains("Path=/;"), "{csrf_cookie}");
    let first = Browser::from(&login);

    // Without the CSRF header (what a forged cross-site request would look like): refused.
    let forged = app.send(first.request("/api/auth/web/refresh", None)).await;
    assert_eq!((forged.status, forged.code()), (StatusCode::FORBIDDEN, "csrf-mismatch"));
    let wrong = app.send(first.request("/api/auth/web/refresh", Some("guess"))).await;
    assert_eq!((wrong.status, wrong.code()), (StatusCode::FORBIDDEN, "csrf-mismatch"));
    let mut cross = first.request("/api/auth/web/refresh", Some(&first.csrf));
    cross.headers_mut().insert("sec-fetch-site", "cross-site".parse().unwrap());
    assert_eq!(app.send(cross).await.code(), "cross-site-request");
    let none = app.send(Request::post("/api/auth/web/refresh").body(Body::empty()).unwrap()).await;
    assert_eq!((none.status, none.code()), (StatusCode::UNAUTHORIZED, "no-session"));

    // With it: a new access token and a new refresh cookie; the CSRF token stays.
    let refreshed = app.send(first.request("/api/auth/web/refresh", Some(&first.csrf))).await;
    assert_eq!(refreshed.status, StatusCode::OK, "{:?}", refreshed.body);
    let second = Browser::from(&refreshed);
    assert_ne!(second.refresh, first.refresh);
    assert_eq!(second.csrf, first.csrf);
    let access = refreshed.body["accessToken"].as_str().unwrap().to_owned();
    assert_eq!(app.call("GET", "/api/users/me", Some(&access), None).await.status, StatusCode::OK);

    // The spent cookie again (stolen, or replayed): the whole session ends, the cookies are cleared.
    let replayed = app.send(first.request("/api/auth/web/refresh", Some(&first.csrf))).await;
    assert_eq!((replayed.status, replayed.code()), (StatusCode::UNAUTHORIZED, "refresh-token-reused"));
    assert!(set_cookies(&replayed).iter().all(|(_, v)| v.contains("Max-Age=0")), "{:?}", set_cookies(&replayed));
    let after = app.send(second.request("/api/auth/web/refresh", Some(&second.csrf))).await;
    assert_eq!((after.status, after.code()), (StatusCode::UNAUTHORIZED, "session-revoked"));

    // Logout needs the CSRF header too, revokes the session and clears the cookies.
    let login =
        app.call("POST", "/api/auth/web/login", None, Some(json!({"email": email, "password": PASSWORD}))).await;
    let third = Browser::from(&login);
    let access = login.body["accessToken"].as_str().unwrap().to_owned();
    assert_eq!(app.send(third.request("/api/auth/web/logout", None)).await.status, StatusCode::FORBIDDEN);
    let out = app.send(third.request("/api/auth/web/logout", Some(&third.csrf))).await;
    assert_eq!(out.status, StatusCode::NO_CONTENT);
    assert!(set_cookies(&out).iter().all(|(_, v)| v.contains("Max-Age=0")));
    let me = app.call("GET", "/api/users/me", Some(&access), None).await;
    assert_eq!((me.status, me.code()), (StatusCode::UNAUTHORIZED, "session-revoked"));
}

/// Reads Server-Sent Events from a streaming body.
struct Events {
    body: Body,
    buffer: String,
}

impl Events {
    async fn next(&mut self) -> Value {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let data = block.lines().find_map(|l| l.strip_prefix("data: ")).expect("a data line");
                assert!(block.starts_with("event: counts\n"), "{block}");
                return serde_json::from_str(data).unwrap();
            }
            let frame = tokio::time::timeout(Duration::from_secs(10), self.body.frame())
                .await
                .expect("an event within 10 s (one comes every second)")
                .expect("the stream stays open")
                .expect("a frame");
            if let Ok(data) = frame.into_data() {
                self.buffer.push_str(std::str::from_utf8(&data).unwrap());
            }
        }
    }

    /// The next frame in which `campaign` shows `issued_total`.
    async fn until(&mut self, campaign: &str, issued_total: u64) -> Value {
        for _ in 0..30 {
            let frame = self.next().await;
            if let Some(c) = frame["campaigns"].as_array().unwrap().iter().find(|c| c["name"] == campaign)
                && c["issuedTotal"] == issued_total
            {
                return c.clone();
            }
        }
        panic!("{campaign} never showed {issued_total} issued");
    }
}

async fn open(app: &TestApp, token: &str) -> Events {
    let req =
        Request::get("/api/live/campaigns").header("authorization", format!("Bearer {token}")).body(Body::empty());
    let resp = app.router.clone().oneshot(req.unwrap()).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    Events { body: resp.into_body(), buffer: String::new() }
}

async fn counted(app: &TestApp, name: &str, issued: u64, at: chrono::DateTime<Utc>) {
    let event = CampaignCounted {
        name: name.to_owned(),
        uid: String::new(),
        day: at.date_naive(),
        issued_today: issued,
        remaining_today: Some(100 - issued),
        issued_total: issued,
        at,
    };
    let envelope = Envelope::new(CAMPAIGN_COUNTED, "coupon-issuer", at, &event).unwrap();
    app.ctx.bus.publish(topics::CAMPAIGN_COUNTS, name, &envelope).await.unwrap();
}

async fn live_counts_reach_every_viewer_from_one_subscription(app: TestApp) {
    let unauthenticated = app.send(get("/api/live/campaigns", &[])).await;
    assert_eq!(unauthenticated.status, StatusCode::UNAUTHORIZED);

    let sign = || app.keys.sign(Uuid::new_v4(), Uuid::new_v4(), Utc::now(), Duration::from_secs(600)).unwrap();
    let mut viewers = Vec::new();
    for _ in 0..50 {
        viewers.push(open(&app, &sign()).await);
    }
    // One login session holds a few streams (tabs), not an unbounded number.
    let token = sign();
    let mut tabs = Vec::new();
    for _ in 0..web::http::STREAMS_PER_SESSION {
        tabs.push(open(&app, &token).await);
    }
    let refused = app.send(get("/api/live/campaigns", &[("authorization", &format!("Bearer {token}"))])).await;
    assert_eq!((refused.status, refused.code()), (StatusCode::TOO_MANY_REQUESTS, "too-many-streams"));
    drop(tabs);
    // The first frame comes at once.
    for v in &mut viewers {
        assert!(v.next().await["campaigns"].is_array());
    }
    let name = format!("live-{}", &Uuid::new_v4().simple().to_string()[..8]);
    let start = Utc::now();
    counted(&app, &name, 10, start).await;
    counted(&app, &name, 40, start + chrono::TimeDelta::seconds(2)).await;
    // An older report arriving late (another issuer replica) changes nothing.
    counted(&app, &name, 20, start + chrono::TimeDelta::seconds(1)).await;
    for v in &mut viewers {
        let c = v.until(&name, 40).await;
        assert_eq!(c["remainingToday"], 60);
        assert_eq!(c["ratePerSecond"], 15.0);
    }
    // Every viewer got the same bytes; the process built one frame per tick, not one per viewer.
    let metrics = app.send(get("/metrics", &[])).await;
    let text = String::from_utf8_lossy(&metrics.raw);
    // (Other tests in this binary may hold streams open too: at least ours.)
    let gauge = text.lines().find(|l| l.starts_with("web_dashboard_viewers ")).expect("the viewers gauge");
    let open_now: f64 = gauge.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(open_now >= 50.0, "{gauge}");
    drop(viewers);
}

async fn the_campaign_check_is_for_marketing_and_names_each_problem(app: TestApp) {
    let sample = include_str!("../../../config/samples/coupon-campaign-full.yaml");
    let body = json!({"yaml": sample, "days": 3});
    let none = app.call("POST", "/api/dashboard/campaigns/check", None, Some(body.clone())).await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);
    let user = app.keys.sign(Uuid::new_v4(), Uuid::new_v4(), Utc::now(), Duration::from_secs(600)).unwrap();
    let plain = app.call("POST", "/api/dashboard/campaigns/check", Some(&user), Some(body.clone())).await;
    assert_eq!((plain.status, plain.code()), (StatusCode::FORBIDDEN, "forbidden-role"));

    let mut roles = Roles::default();
    roles.insert(Role::Marketing);
    let marketer =
        app.keys.sign_with_roles(Uuid::new_v4(), Uuid::new_v4(), roles, Utc::now(), Duration::from_secs(600)).unwrap();
    let ok = app.call("POST", "/api/dashboard/campaigns/check", Some(&marketer), Some(body)).await;
    assert_eq!(ok.status, StatusCode::OK, "{:?}", ok.body);
    let first = &ok.body["campaigns"][0];
    assert_eq!(first["name"], "first-snow-latte");
    assert_eq!(first["problems"], json!([]));
    assert_eq!(first["preview"]["dailyQuantity"], 500);
    assert!(first["preview"]["days"].as_array().unwrap().len() <= 3);

    let broken = sample
        .replace("dailyQuantity: 500", "dailyQuantity: 0")
        .replace("timeZone: Asia/Seoul", "timeZone: Mars/Olympus");
    let bad = app.call("POST", "/api/dashboard/campaigns/check", Some(&marketer), Some(json!({"yaml": broken}))).await;
    assert_eq!(bad.status, StatusCode::OK);
    let problems = bad.body["campaigns"][0]["problems"].as_array().unwrap();
    let paths: Vec<&str> = problems.iter().map(|p| p["path"].as_str().unwrap()).collect();
    assert!(paths.contains(&"spec.quota.dailyQuantity"), "{problems:?}");
    assert!(paths.contains(&"spec.schedule.timeZone"), "{problems:?}");
    assert!(bad.body["campaigns"][0]["preview"].is_null());

    let not_yaml = app
        .call("POST", "/api/dashboard/campaigns/check", Some(&marketer), Some(json!({"yaml": "a: [1,\nb: }"})))
        .await;
    assert_eq!((not_yaml.status, not_yaml.code()), (StatusCode::UNPROCESSABLE_ENTITY, "invalid-yaml"));
    assert!(not_yaml.body["line"].is_number());
    let other =
        app.call("POST", "/api/dashboard/campaigns/check", Some(&marketer), Some(json!({"yaml": "kind: Pod"}))).await;
    assert_eq!(other.code(), "no-campaign");
    let days = app
        .call("POST", "/api/dashboard/campaigns/check", Some(&marketer), Some(json!({"yaml": sample, "days": 0})))
        .await;
    assert_eq!((days.status, days.code()), (StatusCode::UNPROCESSABLE_ENTITY, "invalid-body"));
}
