//! Every unit ends as exactly one row its owner can get back — through lost answers,
//! uncertain publishes, late events, rebuilds and replicas that disagree on the time.
//! Each scenario here failed on the issuer before issue 7.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use campaign::{Campaign, CampaignSpec, CouponTemplate, Eligibility, MissionRequirement, Quota, Schedule};
use chrono::{DateTime, NaiveDate, NaiveTime, TimeDelta, TimeZone, Utc};
use common::{Backend, Resp, TestApp};
use coupon::issuer::Issuer;
use coupon::issuer::engine::{Take, TakeRequest};
use platform::clock::Clock;
use platform::events::Envelope;
use platform::events::contracts::{COUPON_ISSUED, CouponIssued, topics};
use uuid::Uuid;

/// A KST wall-clock instant on 2026-12-`d`.
fn kst(d: u32, h: u32, m: u32) -> DateTime<Utc> {
    chrono_tz::Asia::Seoul.with_ymd_and_hms(2026, 12, d, h, m, 0).single().unwrap().with_timezone(&Utc)
}

fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 12, d).unwrap()
}

/// Dec 7–9, 10:00–12:00 KST, no mission needed.
fn campaign(daily: u32) -> Campaign {
    let spec = CampaignSpec {
        display_name: "Exactly once".into(),
        coupon: CouponTemplate { title: "Pass".into(), benefit: "One pass".into(), validity_days: 7 },
        schedule: Schedule {
            time_zone: "Asia/Seoul".into(),
            start_date: day(7),
            end_date: day(9),
            opens_at: NaiveTime::from_hms_opt(10, 0, 0).unwrap(),
            closes_at: Some(NaiveTime::from_hms_opt(12, 0, 0).unwrap()),
        },
        quota: Quota { daily_quantity: daily, total_quantity: None, per_user: 1 },
        eligibility: Eligibility { mission: MissionRequirement::None },
        workload: Default::default(),
        suspend: false,
    };
    Campaign::new(&format!("x-{}", &Uuid::new_v4().simple().to_string()[..10]), spec).unwrap()
}

fn token(app: &TestApp, user: Uuid) -> String {
    app.keys.sign(user, Uuid::new_v4(), Utc::now(), Duration::from_secs(3600)).unwrap()
}

async fn issue(router: &Router, campaign: &str, token: &str) -> Resp {
    let req = Request::post(format!("/api/campaigns/{campaign}/issue"))
        .header("authorization", format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    TestApp::send_to(router, req).await
}

fn coupon_of(r: &Resp) -> Option<Uuid> {
    let v = if r.status == StatusCode::CREATED { &r.body["couponId"] } else { &r.body["coupon"]["couponId"] };
    v.as_str().and_then(|s| Uuid::parse_str(s).ok())
}

async fn ready(issuer: &Issuer) {
    let started = Instant::now();
    while issuer.not_ready_reason().is_some() {
        assert!(started.elapsed() < Duration::from_secs(60), "issuer not ready: {:?}", issuer.not_ready_reason());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls `check` until it holds, for at most `limit`.
async fn eventually<F, Fut>(limit: Duration, what: &str, check: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = bool>,
{
    let started = Instant::now();
    while !check().await {
        assert!(started.elapsed() < limit, "{what} did not happen within {limit:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn rows(app: &TestApp, c: &Campaign) -> Vec<CouponIssued> {
    let db = coupon::open_db(&app.ctx).await.unwrap();
    coupon::audit::rows(&db, c.name(), c.uid()).await.unwrap()
}

/// Takes a unit for `user` straight in the engine, as a request whose process died (or
/// whose client went away) right after the take: pending, never published.
async fn take_and_vanish(issuer: &Issuer, user: Uuid, at: DateTime<Utc>) -> Uuid {
    let c = issuer.rules();
    let d = c.day_of(at);
    issuer.engine().seed(d, c.spec().quota.daily_quantity, None).await.unwrap();
    let coupon_id = Uuid::now_v7();
    let req = TakeRequest {
        day: d,
        opens_at: c.opening(d),
        closes_at: c.closing(d),
        user,
        per_user: 1,
        require_eligible: false,
        total_limit: None,
        idempotency_key: None,
        coupon_id,
        code: "VANISHED",
        validity: TimeDelta::days(7),
    };
    assert!(matches!(issuer.engine().take(&req).await.unwrap(), Take::Taken { .. }));
    coupon_id
}

on_both_backends!(
    a_lost_answer_is_given_back_after_sell_out_closing_and_the_end,
    a_unit_taken_by_a_request_that_vanished_is_made_durable_by_the_issuer,
    a_coupon_that_lands_after_a_rebuild_read_the_log_is_adopted_and_counted,
    when_two_coupons_claim_one_seq_the_database_row_wins,
);

async fn a_lost_answer_is_given_back_after_sell_out_closing_and_the_end(backend: TestApp) {
    let kind = backend.backend;
    drop(backend);
    let app = TestApp::start_with(kind, common::fast_config(), Clock::manual(kst(7, 10, 1))).await.unwrap();
    let c = campaign(2);
    let (router, issuer) = app.issuer(c.clone()).await;
    ready(&issuer).await;
    let (alice, bob, carol) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    // Alice's 201 never reaches her (a client timeout, a dropped connection).
    let lost = issue(&router, c.name(), &token(&app, alice)).await;
    assert_eq!(lost.status, StatusCode::CREATED);
    let hers = coupon_of(&lost);
    assert_eq!(issue(&router, c.name(), &token(&app, bob)).await.status, StatusCode::CREATED);
    let late = issue(&router, c.name(), &token(&app, carol)).await;
    assert_eq!((late.status, late.code()), (StatusCode::GONE, "sold-out"));

    // She retries after the sell-out, after closing, on a later day, after the end.
    for at in [kst(7, 10, 2), kst(7, 12, 30), kst(8, 9, 0), kst(8, 10, 30), kst(10, 9, 0)] {
        app.ctx.clock.set(at);
        let retry = issue(&router, c.name(), &token(&app, alice)).await;
        assert_eq!(retry.status, StatusCode::CONFLICT, "at {at}: {:?}", retry.body);
        assert_eq!(coupon_of(&retry), hers, "at {at}");
    }
}

async fn a_unit_taken_by_a_request_that_vanished_is_made_durable_by_the_issuer(backend: TestApp) {
    let kind = backend.backend;
    drop(backend);
    let clock = Clock::manual(kst(7, 10, 1));
    let app = TestApp::start_with(kind, common::fast_config(), clock.clone()).await.unwrap();
    let c = campaign(3);
    let (router, issuer) = app.issuer(c.clone()).await;
    ready(&issuer).await;
    let dana = Uuid::new_v4();
    let vanished = take_and_vanish(&issuer, dana, clock.now()).await;
    // Nobody asks again. Once the longest publish has passed, the issuer re-sends it.
    clock.advance(TimeDelta::seconds(30));
    eventually(Duration::from_secs(30), "the vanished unit becoming a row", || async {
        rows(&app, &c).await.iter().any(|r| r.coupon_id == vanished)
    })
    .await;
    let retry = issue(&router, c.name(), &token(&app, dana)).await;
    assert_eq!((retry.status, coupon_of(&retry)), (StatusCode::CONFLICT, Some(vanished)), "{:?}", retry.body);
    // Nothing stays held: the other two units are sold, then the day is sold out.
    for _ in 0..2 {
        assert_eq!(issue(&router, c.name(), &token(&app, Uuid::new_v4())).await.status, StatusCode::CREATED);
    }
    assert_eq!(issue(&router, c.name(), &token(&app, Uuid::new_v4())).await.status, StatusCode::GONE);
    eventually(Duration::from_secs(30), "three rows", || async { rows(&app, &c).await.len() == 3 }).await;
}

/// Publishes a coupon event the issuer did not make (a publish that landed late).
async fn publish_coupon(app: &TestApp, c: &Campaign, user: Uuid, seq: u32, at: DateTime<Utc>) -> Uuid {
    let event = CouponIssued {
        coupon_id: Uuid::now_v7(),
        code: coupon::model::new_code(),
        campaign: c.name().to_owned(),
        campaign_uid: c.uid().to_owned(),
        user_id: user,
        seq,
        day: c.day_of(at),
        title: "Pass".into(),
        benefit: "One pass".into(),
        issued_at: at,
        expires_at: at + TimeDelta::days(7),
        idempotency_key: None,
    };
    let envelope = Envelope::new(COUPON_ISSUED, "late-publisher", at, &event).unwrap();
    app.ctx.bus.publish(topics::COUPONS_ISSUED, &user.to_string(), &envelope).await.unwrap();
    event.coupon_id
}

async fn a_coupon_that_lands_after_a_rebuild_read_the_log_is_adopted_and_counted(backend: TestApp) {
    let kind = backend.backend;
    drop(backend);
    let clock = Clock::manual(kst(7, 10, 1));
    let app = TestApp::start_with(kind, common::fast_config(), clock.clone()).await.unwrap();
    let c = campaign(2);
    let (router, issuer) = app.issuer(c.clone()).await;
    ready(&issuer).await;
    assert_eq!(issue(&router, c.name(), &token(&app, Uuid::new_v4())).await.status, StatusCode::CREATED);
    let erin = Uuid::new_v4();
    let late = publish_coupon(&app, &c, erin, 1, clock.now()).await;
    // The state takes it in: Erin holds it, and it counts against the day.
    eventually(Duration::from_secs(30), "the late coupon counted", || async {
        issuer.engine().counters(day(7)).await.unwrap().issued_today == 2
    })
    .await;
    let hers = issue(&router, c.name(), &token(&app, erin)).await;
    assert_eq!((hers.status, coupon_of(&hers)), (StatusCode::CONFLICT, Some(late)), "{:?}", hers.body);
    let next = issue(&router, c.name(), &token(&app, Uuid::new_v4())).await;
    assert_eq!((next.status, next.code()), (StatusCode::GONE, "sold-out"), "the late unit was not sold twice");
}

async fn when_two_coupons_claim_one_seq_the_database_row_wins(backend: TestApp) {
    let kind = backend.backend;
    drop(backend);
    let clock = Clock::manual(kst(7, 10, 1));
    let app = TestApp::start_with(kind, common::fast_config(), clock.clone()).await.unwrap();
    let c = campaign(5);
    let (router, issuer) = app.issuer(c.clone()).await;
    ready(&issuer).await;
    let fay = Uuid::new_v4();
    // The state holds one coupon for (fay, 1), never published; the log and then the
    // database get another one for the same (fay, 1).
    let in_state = take_and_vanish(&issuer, fay, clock.now()).await;
    let in_log = publish_coupon(&app, &c, fay, 1, clock.now()).await;
    eventually(Duration::from_secs(30), "the state holding the database's coupon", || async {
        issuer.engine().holder(fay, 1).await.unwrap().is_some_and(|r| r.coupon_id == in_log && !r.pending)
    })
    .await;
    clock.advance(TimeDelta::seconds(30));
    let hers = issue(&router, c.name(), &token(&app, fay)).await;
    assert_eq!((hers.status, coupon_of(&hers)), (StatusCode::CONFLICT, Some(in_log)), "{:?}", hers.body);
    // The loser is never re-sent by the resolver: one row, the database's.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let stored: Vec<Uuid> = rows(&app, &c).await.iter().map(|r| r.coupon_id).collect();
    assert_eq!(stored, vec![in_log], "not {in_state}");
    assert_eq!(issuer.engine().counters(day(7)).await.unwrap().issued_today, 1, "one unit for the one coupon");
}

async fn released_units_are_sold_again_by_every_replica_after_a_rebuild(backend: TestApp) {
    let kind = backend.backend;
    drop(backend);
    let clock = Clock::manual(kst(7, 10, 1));
    let app = TestApp::start_with(kind, common::fast_config(), clock.clone()).await.unwrap();
    let c = campaign(3);
    let (a, issuer_a) = app.issuer(c.clone()).await;
    let (b, issuer_b) = app.issuer(c.clone()).await;
    ready(&issuer_a).await;
    ready(&issuer_b).await;
    // One unit is taken by a request that vanished before publishing; two are sold.
    take_and_vanish(&issuer_a, Uuid::new_v4(), clock.now()).await;
    let mut told = HashSet::new();
    for _ in 0..2 {
        told.extend(coupon_of(&issue(&a, c.name(), &token(&app, Uuid::new_v4())).await));
    }
    assert_eq!(told.len(), 2);
    // Both replicas now answer sold out from their local flag.
    for router in [&a, &b] {
        assert_eq!(issue(router, c.name(), &token(&app, Uuid::new_v4())).await.status, StatusCode::GONE);
    }
    // The state is lost with the vanished (never published) unit; the rebuild frees it.
    eventually(Duration::from_secs(30), "both rows", || async { rows(&app, &c).await.len() == 2 }).await;
    issuer_a.engine().wipe().await.unwrap();
    let ivy = Uuid::new_v4();
    let started = Instant::now();
    // Replica b, which never rebuilt anything itself, sells the freed unit.
    let won = loop {
        let r = issue(&b, c.name(), &token(&app, ivy)).await;
        if r.status == StatusCode::CREATED || started.elapsed() > Duration::from_secs(60) {
            break r;
        }
        assert!(matches!(r.status.as_u16(), 410 | 503), "{:?}", r.body);
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(won.status, StatusCode::CREATED, "{:?}", won.body);
}

// --- real backends only -------------------------------------------------------------

/// Several replicas share one state only on Redis (each embedded issuer has its own).
mod real_only {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[cfg_attr(ww_no_backends, ignore = "WW_TEST_NO_BACKENDS was set: needs PostgreSQL, Redis and Kafka")]
    async fn released_units_are_sold_again_by_every_replica_after_a_rebuild() {
        let app = TestApp::on(Backend::Real).await.expect("real backends");
        super::released_units_are_sold_again_by_every_replica_after_a_rebuild(app).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[cfg_attr(ww_no_backends, ignore = "WW_TEST_NO_BACKENDS was set: needs PostgreSQL, Redis and Kafka")]
    async fn an_issuer_refuses_readiness_on_a_redis_that_evicts_keys() {
        let shared = common::RealEnv::get();
        let redis = common::procs::RedisServer::start(&["--maxmemory", "64mb", "--maxmemory-policy", "allkeys-lru"]);
        let env = common::RealEnv { redis: redis.url(), ..shared };
        let app = TestApp::start_custom(
            Backend::Real,
            common::fast_config(),
            Clock::System,
            &[ww::cli::ServiceName::Coupon],
            Some(env),
        )
        .await
        .unwrap();
        let (_router, issuer) = app.issuer(campaign(5)).await;
        eventually(Duration::from_secs(30), "readiness refused for eviction", || async {
            issuer.not_ready_reason().is_some_and(|why| why.contains("noeviction"))
        })
        .await;
    }
}

/// The rebuild lease: a rebuilder that dies costs the lease (5 s), one that is stopped
/// hands over at once — plus the new rebuilder's own wait for in-flight publishes.
mod lease {
    use super::*;

    async fn lock_held(app: &TestApp, c: &Campaign) -> bool {
        let (mut conn, prefix) = app.ctx.counters.redis_connection().unwrap();
        let key = format!("{prefix}{{c:{}}}:rebuild-lock", c.name());
        redis::cmd("EXISTS").arg(key).query_async::<i64>(&mut conn).await.unwrap() == 1
    }

    async fn time_to_ready(app: &TestApp, c: &Campaign) -> Duration {
        let started = Instant::now();
        let (_router, issuer) = app.issuer(c.clone()).await;
        ready(&issuer).await;
        started.elapsed()
    }

    #[test]
    #[cfg_attr(ww_no_backends, ignore = "WW_TEST_NO_BACKENDS was set: needs PostgreSQL, Redis and Kafka")]
    fn a_crashed_rebuilder_costs_seconds_not_minutes() {
        let main = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        main.block_on(async {
            let app = TestApp::on(Backend::Real).await.expect("real backends");
            let c = campaign(5);
            // Replica A starts on a runtime of its own and dies with it mid-rebuild: no
            // renewal, no release — as a SIGKILL leaves it.
            let doomed = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
            let (ctx, first) = (app.ctx.clone(), c.clone());
            doomed.spawn(async move {
                let kept = coupon::start_issuers(&ctx, vec![first], &coupon::IssuerConfig::default()).await;
                std::future::pending::<()>().await;
                drop(kept);
            });
            eventually(Duration::from_secs(30), "A holding the rebuild lease", || lock_held(&app, &c)).await;
            doomed.shutdown_background();
            let took = time_to_ready(&app, &c).await;
            assert!(took < Duration::from_secs(15), "B was ready after {took:?}");
        });
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[cfg_attr(ww_no_backends, ignore = "WW_TEST_NO_BACKENDS was set: needs PostgreSQL, Redis and Kafka")]
    async fn a_stopped_rebuilder_hands_the_lease_over_at_once() {
        let app = TestApp::on(Backend::Real).await.expect("real backends");
        let c = campaign(5);
        let (stop_a, stopped) = tokio::sync::watch::channel(false);
        let ctx = platform::service::Context { stop: stopped, ..app.ctx.clone() };
        let _a = coupon::start_issuers(&ctx, vec![c.clone()], &coupon::IssuerConfig::default()).await.unwrap();
        eventually(Duration::from_secs(30), "A holding the rebuild lease", || lock_held(&app, &c)).await;
        stop_a.send(true).unwrap();
        eventually(Duration::from_secs(2), "A releasing the lease", || async { !lock_held(&app, &c).await }).await;
        let took = time_to_ready(&app, &c).await;
        assert!(took < Duration::from_secs(8), "B was ready after {took:?}");
    }
}

/// How far apart the replicas' clocks are from the one clock in the skew test.
const SKEW: TimeDelta = TimeDelta::seconds(2);

mod skew {
    use super::*;

    /// One person's attempt as the test saw it on the true (one) clock.
    struct Attempt {
        sent: DateTime<Utc>,
        received: DateTime<Utc>,
        resp: Resp,
    }

    /// Two replicas, one 2 s fast and one 2 s slow, and a crowd alternating between them
    /// from 3 s before `boundary` (on the one clock) to 3 s after.
    async fn crowd_across(c: Campaign, boundary: DateTime<Utc>) -> (TestApp, Vec<Attempt>) {
        // The replicas come up (a first rebuild waits out the publish timeout) before the
        // crowd starts 2.5 s before the boundary.
        let shift = boundary - TimeDelta::seconds(15) - Utc::now();
        let app = TestApp::start_custom(
            Backend::Real,
            common::fast_config(),
            Clock::System,
            &[ww::cli::ServiceName::Coupon],
            None,
        )
        .await
        .unwrap();
        let mut replicas = Vec::new();
        for skew in [SKEW, -SKEW] {
            let ctx = platform::service::Context { clock: Clock::Skewed(shift + skew), ..app.ctx.clone() };
            let config = coupon::IssuerConfig { time_shift: Some(shift), ..Default::default() };
            let (started, issuers) = coupon::start_issuers(&ctx, vec![c.clone()], &config).await.unwrap();
            let issuer = issuers.values().next().unwrap().clone();
            ready(&issuer).await;
            let server = platform::http::Server::new(
                started.router,
                serde_json::json!({}),
                platform::http::Readiness::default(),
                &platform::http::HttpSettings::default(),
            );
            replicas.push((server.router(), issuer));
        }
        let one_clock = || Utc::now() + shift;
        // Wait for the crowd's start (the replicas took a moment to come up).
        while one_clock() < boundary - TimeDelta::milliseconds(2500) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let mut attempts = Vec::new();
        let mut i = 0;
        while one_clock() < boundary + TimeDelta::milliseconds(2500) {
            let (router, _) = &replicas[i % 2];
            let sent = one_clock();
            let resp = issue(router, c.name(), &token(&app, Uuid::new_v4())).await;
            attempts.push(Attempt { sent, received: one_clock(), resp });
            i += 1;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        (app, attempts)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[cfg_attr(ww_no_backends, ignore = "WW_TEST_NO_BACKENDS was set: needs PostgreSQL, Redis and Kafka")]
    async fn replicas_two_seconds_apart_open_together_on_the_one_clock() {
        let c = campaign(1000);
        let opening = c.opening(day(8));
        let (_app, attempts) = crowd_across(c, opening).await;
        let tolerance = TimeDelta::milliseconds(150);
        let mut issued = 0;
        for a in &attempts {
            match a.resp.status {
                StatusCode::CREATED => {
                    issued += 1;
                    assert!(a.received >= opening, "a 201 answered at {} before the opening {opening}", a.received);
                    let at: DateTime<Utc> = a.resp.body["issuedAt"].as_str().unwrap().parse().unwrap();
                    assert!(at >= opening && at >= a.sent - tolerance && at <= a.received + tolerance, "issuedAt {at}");
                }
                StatusCode::TOO_EARLY => {
                    assert!(a.sent < opening + tolerance, "425 for a request sent at {} after the opening", a.sent)
                }
                other => panic!("unexpected {other}: {:?}", a.resp.body),
            }
        }
        assert!(issued > 50 && issued < attempts.len(), "{issued} of {}", attempts.len());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[cfg_attr(ww_no_backends, ignore = "WW_TEST_NO_BACKENDS was set: needs PostgreSQL, Redis and Kafka")]
    async fn replicas_two_seconds_apart_roll_over_midnight_together_on_the_one_clock() {
        // Open all day long: the window of the 7th closes at midnight, the 8th's opens.
        let mut spec = campaign(1000).spec().clone();
        spec.schedule.opens_at = NaiveTime::MIN;
        spec.schedule.closes_at = None;
        let c = Campaign::new(&format!("m-{}", &Uuid::new_v4().simple().to_string()[..10]), spec).unwrap();
        let midnight = c.day_bounds(day(8)).0;
        let (app, attempts) = crowd_across(c.clone(), midnight).await;
        let tolerance = TimeDelta::milliseconds(150);
        let mut days = HashSet::new();
        for a in &attempts {
            assert_eq!(a.resp.status, StatusCode::CREATED, "{:?}", a.resp.body);
            let at: DateTime<Utc> = a.resp.body["issuedAt"].as_str().unwrap().parse().unwrap();
            let d: NaiveDate = a.resp.body["day"].as_str().unwrap().parse().unwrap();
            assert!(at >= a.sent - tolerance && at <= a.received + tolerance, "issuedAt {at} outside its request");
            assert_eq!(d, c.day_of(at), "a coupon issued at {at} counted against {d}");
            days.insert(d);
        }
        assert_eq!(days, HashSet::from([day(7), day(8)]));
        let db = coupon::open_db(&app.ctx).await.unwrap();
        eventually(Duration::from_secs(30), "every row", || async {
            coupon::audit::stored_count(&db, c.name(), c.uid()).await.unwrap() == attempts.len() as i64
        })
        .await;
        let told = coupon::audit::Told { coupons: attempts.iter().filter_map(|a| coupon_of(&a.resp)).collect() };
        let violations = coupon::audit::violations(&db, &c, &told, None).await.unwrap();
        assert!(violations.is_empty(), "{violations:#?}");
    }
}
