//! First-come issuance, on both backends: the invariants under concurrency (checked
//! against the database), the window and day rollover with a fake clock, state loss,
//! the catalog, wallet and redemption, and bad input.

mod common;

use std::collections::{HashMap, HashSet};

use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use campaign::{Campaign, CampaignSpec, MissionRequirement};
use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use common::campaigns::{Rules, campaign, day, kst};
use common::{Backend, Resp, TestApp};
use futures::StreamExt;
use platform::clock::Clock;
use platform::events::Envelope;
use platform::events::contracts::{MISSION_VERIFIED, MissionSource, MissionVerified, topics};
use uuid::Uuid;

async fn app_at(backend: Backend, t: DateTime<Utc>) -> Option<TestApp> {
    TestApp::start_with(backend, common::fast_config(), Clock::manual(t)).await
}

fn token(app: &TestApp, user: Uuid) -> String {
    app.keys.sign(user, Uuid::new_v4(), Utc::now(), Duration::from_secs(3600)).unwrap()
}

async fn verify_mission(app: &TestApp, user: Uuid, at: DateTime<Utc>) {
    verify_mission_of(app, user, at, MissionSource::Daily).await;
}

async fn verify_mission_of(app: &TestApp, user: Uuid, at: DateTime<Utc>, source: MissionSource) {
    let event = Envelope::new(
        MISSION_VERIFIED,
        "test",
        at,
        &MissionVerified { user_id: user, mission_id: "m".into(), source, verified_at: at },
    )
    .unwrap();
    app.ctx.bus.publish(topics::MISSIONS_VERIFIED, &user.to_string(), &event).await.unwrap();
}

async fn wait_ready(issuer: &coupon::issuer::Issuer) {
    let started = Instant::now();
    while !(issuer.is_ready() && issuer.eligibility_caught_up()) {
        assert!(started.elapsed() < Duration::from_secs(60), "issuer not ready after 60s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn issue(router: &Router, campaign: &str, token: &str, key: Option<&str>) -> Resp {
    let mut req =
        Request::post(format!("/api/campaigns/{campaign}/issue")).header("authorization", format!("Bearer {token}"));
    if let Some(k) = key {
        req = req.header("idempotency-key", k);
    }
    TestApp::send_to(router, req.body(Body::empty()).unwrap()).await
}

fn coupon_id(r: &Resp) -> Option<Uuid> {
    let v = if r.status == StatusCode::CREATED { &r.body["couponId"] } else { &r.body["coupon"]["couponId"] };
    v.as_str().and_then(|s| Uuid::parse_str(s).ok())
}

/// Waits until the persister wrote `n` rows, then returns the invariant violations.
async fn audit(
    app: &TestApp,
    c: &Campaign,
    told: &HashSet<Uuid>,
    eligible: &HashMap<NaiveDate, HashSet<Uuid>>,
    n: i64,
) -> Vec<String> {
    let db = coupon::open_db(&app.ctx).await.unwrap();
    let started = Instant::now();
    loop {
        let stored = coupon::audit::stored_count(&db, c.name(), c.uid()).await.unwrap();
        if stored >= n {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "persister wrote {stored} of {n} rows in 60s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Give a straggler (which would be a violation) a moment to show up.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let told = coupon::audit::Told { coupons: told.clone() };
    coupon::audit::violations(&db, c, &told, Some(eligible)).await.unwrap()
}

on_both_backends!(
    thousands_of_concurrent_attempts_never_oversell_duplicate_or_reach_the_ineligible,
    the_window_and_the_day_roll_over_with_the_campaign_clock,
    a_person_gets_the_same_coupon_back_and_idempotency_keys_hold,
    losing_the_issuer_state_rebuilds_it_without_overselling,
    the_catalog_wallet_and_redemption_work,
    bad_issue_requests_are_clear_4xx_problems,
    the_coupon_service_answers_for_a_campaign_whose_issuers_are_not_running,
    a_campaign_re_created_under_the_same_name_is_a_new_campaign,
    the_issuers_publish_their_counts_about_once_a_second_while_open,
    a_quantity_change_reaches_running_issuers_and_applies_from_the_next_campaign_day,
    a_created_mission_counts_only_where_the_campaign_says_so,
);

/// `MissionVerified` says which kind of mission it was: a mission someone created (and may have
/// verified themselves) makes them eligible only on a campaign whose eligibility is
/// `AnyVerifiedSameDay`; the default counts daily weather missions alone.
async fn a_created_mission_counts_only_where_the_campaign_says_so(backend: TestApp) {
    let kind = backend.backend;
    drop(backend);
    let app = app_at(kind, kst(7, 10, 30)).await.unwrap();
    let (maker, walker) = (Uuid::new_v4(), Uuid::new_v4());
    verify_mission_of(&app, maker, kst(7, 10, 5), MissionSource::Created).await;
    verify_mission_of(&app, walker, kst(7, 10, 6), MissionSource::Daily).await;
    let strict = campaign(Rules::default());
    let mut spec = campaign(Rules::default()).spec().clone();
    spec.eligibility.mission = MissionRequirement::AnyVerifiedSameDay;
    let lenient = Campaign::new(&format!("{}-any", strict.name()), spec).unwrap();
    let (strict_router, strict_issuer) = app.issuer(strict.clone()).await;
    let (lenient_router, lenient_issuer) = app.issuer(lenient.clone()).await;
    wait_ready(&strict_issuer).await;
    wait_ready(&lenient_issuer).await;
    let refused = issue(&strict_router, strict.name(), &token(&app, maker), None).await;
    assert_eq!((refused.status, refused.code()), (StatusCode::FORBIDDEN, "not-eligible"));
    assert_eq!(issue(&strict_router, strict.name(), &token(&app, walker), None).await.status, StatusCode::CREATED);
    assert_eq!(issue(&lenient_router, lenient.name(), &token(&app, maker), None).await.status, StatusCode::CREATED);
}

/// The resource changed while its issuers run (the operator announces each generation): a new
/// `dailyQuantity` reaches them within seconds and applies from the next campaign day (today's
/// stock was set when today opened); `suspend` applies at once.
async fn a_quantity_change_reaches_running_issuers_and_applies_from_the_next_campaign_day(backend: TestApp) {
    let kind = backend.backend;
    drop(backend);
    let app = app_at(kind, kst(7, 10, 30)).await.unwrap();
    let c = campaign(Rules { daily: 2, mission: false, ..Rules::default() }).with_identity("quantity-uid", 1);
    let (router, issuer) = app.issuer(c.clone()).await;
    wait_ready(&issuer).await;
    let claim = || async { issue(&router, c.name(), &token(&app, Uuid::new_v4()), None).await };
    for _ in 0..2 {
        assert_eq!(claim().await.status, StatusCode::CREATED);
    }
    assert_eq!(claim().await.status, StatusCode::GONE, "sold out today at 2");

    let redefined = |generation: i64, edit: &dyn Fn(&mut CampaignSpec)| {
        let mut spec = c.spec().clone();
        edit(&mut spec);
        Campaign::new(c.name(), spec).unwrap().with_identity("quantity-uid", generation)
    };
    let four = redefined(2, &|s| s.quota.daily_quantity = 4);
    coupon::publish_definitions(&app.ctx.bus, std::slice::from_ref(&four), 2).await.unwrap();
    let started = Instant::now();
    while issuer.rules().generation() != 2 {
        assert!(started.elapsed() < Duration::from_secs(10), "the new definition never reached the issuer");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(issuer.rules().spec().quota.daily_quantity, 4);
    assert_eq!(claim().await.status, StatusCode::GONE, "today's stock stays what it was when today opened");

    app.ctx.clock.set(kst(8, 10, 30));
    for i in 0..4 {
        let r = claim().await;
        assert_eq!(r.status, StatusCode::CREATED, "claim {i} on the next day: {:?}", r.body);
    }
    assert_eq!(claim().await.status, StatusCode::GONE, "sold out at the new quantity");
    // A definition of another instance, or an older generation, changes nothing.
    let other = Campaign::new(c.name(), c.spec().clone()).unwrap().with_identity("another-uid", 9);
    assert!(!issuer.redefine(other));
    assert!(!issuer.redefine(redefined(1, &|s| s.quota.daily_quantity = 100)));

    let suspended = redefined(3, &|s| {
        s.quota.daily_quantity = 4;
        s.suspend = true;
    });
    coupon::publish_definitions(&app.ctx.bus, std::slice::from_ref(&suspended), 3).await.unwrap();
    let started = Instant::now();
    while issuer.rules().generation() != 3 {
        assert!(started.elapsed() < Duration::from_secs(10), "the suspension never reached the issuer");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    app.ctx.clock.set(kst(9, 10, 30));
    let r = claim().await;
    assert_eq!((r.status, r.code()), (StatusCode::TOO_EARLY, "not-open"), "suspended: {:?}", r.body);
}

/// A campaign deleted and re-created under the same name (a new resource uid) is a new
/// campaign: last season's winner is not refused this season, keeps last season's coupon, and
/// each season counts its own rows; the coupon service answers for the current one.
async fn a_campaign_re_created_under_the_same_name_is_a_new_campaign(backend: TestApp) {
    let kind = backend.backend;
    drop(backend);
    let app = app_at(kind, kst(11, 10, 30)).await.unwrap();
    let first = campaign(Rules { daily: 5, mission: false, ..Rules::default() }).with_identity("season-1-uid", 1);
    coupon::publish_definitions(&app.ctx.bus, std::slice::from_ref(&first), 1).await.unwrap();
    let (router, issuer) = app.issuer(first.clone()).await;
    wait_ready(&issuer).await;
    let winner = Uuid::new_v4();
    let last_season = issue(&router, first.name(), &token(&app, winner), None).await;
    assert_eq!(last_season.status, StatusCode::CREATED, "{:?}", last_season.body);
    let again = issue(&router, first.name(), &token(&app, winner), None).await;
    assert_eq!(again.status, StatusCode::CONFLICT);

    // Deleted (the operator announces the removal) and re-created: a new uid, generation 1.
    let removed = platform::events::contracts::CampaignRemoved {
        name: first.name().to_owned(),
        version: 2,
        namespace: "marketing".into(),
        uid: first.uid().to_owned(),
        totals: None,
    };
    let event = Envelope::new(platform::events::contracts::CAMPAIGN_REMOVED, "test", Utc::now(), &removed).unwrap();
    app.ctx.bus.publish(topics::CAMPAIGNS, first.name(), &event).await.unwrap();
    let second = Campaign::new(first.name(), first.spec().clone()).unwrap().with_identity("season-2-uid", 1);
    coupon::publish_definitions(&app.ctx.bus, std::slice::from_ref(&second), 1).await.unwrap();
    let (router, issuer) = app.issuer(second.clone()).await;
    wait_ready(&issuer).await;
    let this_season = issue(&router, second.name(), &token(&app, winner), None).await;
    assert_eq!(this_season.status, StatusCode::CREATED, "last season's winner is not refused: {:?}", this_season.body);
    assert_ne!(coupon_id(&this_season), coupon_id(&last_season));
    assert_eq!(this_season.body["seq"], 1, "their first coupon of this season");

    // Each season has its row; the wallet holds both; the coupon service answers for the new one.
    let db = coupon::open_db(&app.ctx).await.unwrap();
    let started = Instant::now();
    loop {
        let old = coupon::audit::stored_count(&db, first.name(), first.uid()).await.unwrap();
        let new = coupon::audit::stored_count(&db, second.name(), second.uid()).await.unwrap();
        if (old, new) == (1, 1) {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "rows per season: {old}, {new}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let wallet = app.call("GET", "/api/coupons/me", Some(&token(&app, winner)), None).await;
    assert_eq!(wallet.body.as_array().map(Vec::len), Some(2), "{:?}", wallet.body);
    let path = format!("/api/campaigns/{}/issue", second.name());
    let started = Instant::now();
    loop {
        let r = app.call("POST", &path, Some(&token(&app, winner)), None).await;
        if r.status == StatusCode::CONFLICT && r.body["coupon"]["couponId"] == this_season.body["couponId"] {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the coupon service never answered for season 2: {:?}",
            r.body
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A late definition of the deleted instance does not bring it back: after it, a marker
    // (season 2's next generation, same key so same order) shows it was handled.
    coupon::publish_definitions(&app.ctx.bus, std::slice::from_ref(&first), 1).await.unwrap();
    let mut marked = second.spec().clone();
    marked.display_name = "Season two, renamed".into();
    let marker = Campaign::new(second.name(), marked).unwrap().with_identity("season-2-uid", 2);
    coupon::publish_definitions(&app.ctx.bus, std::slice::from_ref(&marker), 2).await.unwrap();
    let started = Instant::now();
    loop {
        let listed = app.call("GET", "/api/coupons/campaigns", None, None).await;
        let names: Vec<&str> =
            listed.body.as_array().unwrap().iter().filter_map(|c| c["displayName"].as_str()).collect();
        if names.contains(&"Season two, renamed") {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "the marker definition never arrived: {names:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stranger = token(&app, Uuid::new_v4());
    let r = app.call("POST", &path, Some(&token(&app, winner)), None).await;
    assert_eq!(r.body["coupon"]["couponId"], this_season.body["couponId"], "{:?}", r.body);
    let open = app.call("POST", &path, Some(&stranger), None).await;
    assert_eq!(open.code(), "issuer-starting", "{:?}", open.body);
}

/// The issuers publish the campaign's counts (`CampaignCounted`) for the operator's status and
/// the dashboards: about once a second while open, from one replica at a time.
async fn the_issuers_publish_their_counts_about_once_a_second_while_open(backend: TestApp) {
    use platform::events::Handler;
    use platform::events::contracts::CampaignCounted;
    #[derive(Clone, Default)]
    struct Seen(std::sync::Arc<std::sync::Mutex<Vec<CampaignCounted>>>);
    impl Handler for Seen {
        async fn handle(&self, event: &Envelope) -> anyhow::Result<()> {
            if let Some(c) = event.decode_or_skip::<CampaignCounted>() {
                self.0.lock().unwrap().push(c);
            }
            Ok(())
        }
    }
    let kind = backend.backend;
    drop(backend);
    // The real clock: the issuers' loops run on it.
    let app = TestApp::start_with(kind, common::fast_config(), Clock::System).await.unwrap();
    let today = chrono::Utc::now().with_timezone(&chrono_tz::Asia::Seoul).date_naive();
    let mut c = campaign(Rules { daily: 5, mission: false, closes: None, ..Rules::default() });
    let mut spec = c.spec().clone();
    spec.schedule.start_date = today;
    spec.schedule.end_date = today;
    spec.schedule.opens_at = NaiveTime::from_hms_opt(0, 0, 0).unwrap();
    c = Campaign::new(c.name(), spec).unwrap().with_identity("counted-uid", 1);
    let (router, issuer) = app.issuer(c.clone()).await;
    wait_ready(&issuer).await;
    // Two replicas share the state in Redis; in memory there is one.
    let _second = match kind {
        Backend::Real => Some(app.issuer(c.clone()).await),
        Backend::Embedded => None,
    };
    for _ in 0..3 {
        let r = issue(&router, c.name(), &token(&app, Uuid::new_v4()), None).await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    }
    let seen = Seen::default();
    let (_stop, stop_rx) = tokio::sync::watch::channel(false);
    let _reader = app.ctx.bus.spawn_replay("test-counts", &[topics::CAMPAIGN_COUNTS], seen.clone(), stop_rx);
    let mine = |seen: &Seen| -> Vec<CampaignCounted> {
        seen.0.lock().unwrap().iter().filter(|e| e.name == c.name()).cloned().collect()
    };
    let started = Instant::now();
    while !mine(&seen).iter().any(|e| e.issued_today == 3) {
        assert!(started.elapsed() < Duration::from_secs(30), "no counts of 3 issued: {:?}", mine(&seen));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let latest = mine(&seen).into_iter().find(|e| e.issued_today == 3).unwrap();
    assert_eq!((latest.uid.as_str(), latest.remaining_today, latest.issued_total), ("counted-uid", Some(2), 3));
    // Over four seconds: about one a second in all, not one per replica.
    let before = mine(&seen).len();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let published = mine(&seen).len() - before;
    assert!((2..=6).contains(&published), "{published} counts in 4 s");
}

/// With no issuer running (between openings with `idle: 0`, after the last day), the platform's
/// Ingress sends `/api/campaigns/` to the coupon service: it answers as the issuer would, from
/// the definitions it holds, and a holder still gets their coupon back.
async fn the_coupon_service_answers_for_a_campaign_whose_issuers_are_not_running(backend: TestApp) {
    let kind = backend.backend;
    drop(backend);
    let app = app_at(kind, kst(11, 10, 30)).await.unwrap();
    let c = campaign(Rules { daily: 5, mission: false, closes: Some("12:00"), ..Rules::default() });
    coupon::publish_definitions(&app.ctx.bus, std::slice::from_ref(&c), 1).await.unwrap();
    let (router, issuer) = app.issuer(c.clone()).await;
    wait_ready(&issuer).await;
    let holder = Uuid::new_v4();
    let issued = issue(&router, c.name(), &token(&app, holder), None).await;
    assert_eq!(issued.status, StatusCode::CREATED);
    let id = coupon_id(&issued).unwrap();
    let path = format!("/api/campaigns/{}/issue", c.name());
    let stranger = token(&app, Uuid::new_v4());
    // The coupon service (no issuer in its process) learns the definition and the row.
    let started = Instant::now();
    loop {
        let r = app.call("POST", &path, Some(&token(&app, holder)), None).await;
        if r.status == StatusCode::CONFLICT {
            assert_eq!(r.body["coupon"]["couponId"], id.to_string(), "{:?}", r.body);
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "the holder never got their coupon back: {:?}", r.body);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let open = app.call("POST", &path, Some(&stranger), None).await;
    assert_eq!((open.status, open.code()), (StatusCode::SERVICE_UNAVAILABLE, "issuer-starting"), "{:?}", open.body);
    app.ctx.clock.set(kst(11, 12, 30));
    let closed = app.call("POST", &path, Some(&stranger), None).await;
    assert_eq!((closed.status, closed.code()), (StatusCode::TOO_EARLY, "not-open"), "{:?}", closed.body);
    assert_eq!(closed.body["opensAt"], kst(12, 10, 0).to_rfc3339());
    app.ctx.clock.set(kst(14, 9, 0));
    let ended = app.call("POST", &path, Some(&stranger), None).await;
    assert_eq!((ended.status, ended.code()), (StatusCode::GONE, "campaign-ended"), "{:?}", ended.body);
    let again = app.call("POST", &path, Some(&token(&app, holder)), None).await;
    assert_eq!(again.status, StatusCode::CONFLICT, "a holder gets their coupon back after the end too");
    let unknown = app.call("POST", "/api/campaigns/no-such-campaign/issue", Some(&stranger), None).await;
    assert_eq!((unknown.status, unknown.code()), (StatusCode::NOT_FOUND, "unknown-campaign"));
    let anonymous = app.call("POST", &path, None, None).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
}

async fn thousands_of_concurrent_attempts_never_oversell_duplicate_or_reach_the_ineligible(backend: TestApp) {
    let backend_kind = backend.backend;
    drop(backend);
    let now = kst(8, 10, 30);
    let app = app_at(backend_kind, now).await.unwrap();
    let c = campaign(Rules { daily: 40, ..Rules::default() });
    let users: Vec<Uuid> = (0..300).map(|_| Uuid::new_v4()).collect();
    let eligible: HashSet<Uuid> = users[..150].iter().copied().collect();
    for u in &eligible {
        verify_mission(&app, *u, now - chrono::TimeDelta::minutes(20)).await;
    }
    let (router, issuer) = app.issuer(c.clone()).await;
    wait_ready(&issuer).await;

    // Each person tries 5 times, all mixed together, 64 at once.
    let tokens: HashMap<Uuid, String> = users.iter().map(|u| (*u, token(&app, *u))).collect();
    let mut attempts: Vec<Uuid> = users.iter().flat_map(|u| std::iter::repeat_n(*u, 5)).collect();
    attempts.sort_by_key(|u| u.as_u128() ^ 0x9e37_79b9_7f4a_7c15);
    let name = c.name().to_owned();
    let answers: Vec<(Uuid, Resp)> = futures::stream::iter(attempts)
        .map(|u| {
            let (router, name, token) = (router.clone(), name.clone(), tokens[&u].clone());
            async move { (u, issue(&router, &name, &token, None).await) }
        })
        .buffer_unordered(64)
        .collect()
        .await;

    let mut by_status: HashMap<u16, usize> = HashMap::new();
    let mut winners = HashSet::new();
    let mut issued = HashSet::new();
    let mut told = HashSet::new();
    for (user, r) in &answers {
        *by_status.entry(r.status.as_u16()).or_default() += 1;
        assert!(r.status.is_success() || r.content_type() == "application/problem+json", "{:?}", r.body);
        match r.status {
            StatusCode::CREATED => {
                assert!(winners.insert(*user), "{user} got two 201s");
                issued.insert(coupon_id(r).unwrap());
            }
            StatusCode::CONFLICT => {}
            StatusCode::FORBIDDEN => assert!(!eligible.contains(user), "eligible {user} refused"),
            StatusCode::GONE => assert_eq!(r.code(), "sold-out"),
            // The same person's concurrent attempt while their coupon is being published.
            StatusCode::SERVICE_UNAVAILABLE => assert_eq!(r.code(), "issue-in-progress"),
            other => panic!("unexpected {other}: {:?}", r.body),
        }
        told.extend(coupon_id(r));
    }
    assert_eq!(issued.len(), 40, "exactly the daily quantity was issued: {by_status:?}");
    assert!(winners.iter().all(|u| eligible.contains(u)));
    assert!(told.is_subset(&issued), "every 409 hands back a coupon that was issued");
    // Ineligible people hear 403 — or 410 once the day is sold out, which is answered
    // from the local flag before anything else is looked at.
    let ineligible_answers: HashSet<u16> =
        answers.iter().filter(|(u, _)| !eligible.contains(u)).map(|(_, r)| r.status.as_u16()).collect();
    assert!(ineligible_answers.is_subset(&HashSet::from([403, 410])), "{ineligible_answers:?}");
    assert!(by_status.get(&403).copied().unwrap_or(0) > 0, "{by_status:?}");

    let mut eligible_by_day = HashMap::new();
    eligible_by_day.insert(day(8), eligible.clone());
    let violations = audit(&app, &c, &told, &eligible_by_day, 40).await;
    assert!(violations.is_empty(), "{violations:#?}");

    let counters =
        TestApp::send_to(&router, Request::get(format!("/api/campaigns/{name}/counters")).body(Body::empty()).unwrap())
            .await;
    assert_eq!(counters.body["issuedToday"], 40);
    assert_eq!(counters.body["remainingToday"], 0);
}

async fn the_window_and_the_day_roll_over_with_the_campaign_clock(backend: TestApp) {
    let kind = backend.backend;
    drop(backend);
    let app = app_at(kind, kst(7, 9, 0)).await.unwrap();
    let c = campaign(Rules { daily: 1, ..Rules::default() });
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    verify_mission(&app, a, kst(7, 8, 0)).await;
    verify_mission(&app, b, kst(7, 8, 30)).await;
    let (router, issuer) = app.issuer(c.clone()).await;
    wait_ready(&issuer).await;
    let (ta, tb) = (token(&app, a), token(&app, b));

    // Before the opening: 425 with when it opens.
    let early = issue(&router, c.name(), &ta, None).await;
    assert_eq!((early.status, early.code()), (StatusCode::TOO_EARLY, "not-open"));
    assert_eq!(early.headers["retry-after"], "3600");
    assert_eq!(early.body["opensAt"], kst(7, 10, 0).to_rfc3339());

    app.ctx.clock.set(kst(7, 10, 0));
    assert_eq!(issue(&router, c.name(), &ta, None).await.status, StatusCode::CREATED);
    let sold = issue(&router, c.name(), &tb, None).await;
    assert_eq!((sold.status, sold.code()), (StatusCode::GONE, "sold-out"));
    assert_eq!(sold.body["nextOpening"], kst(8, 10, 0).to_rfc3339());

    // After closing: 425 pointing at tomorrow's opening.
    app.ctx.clock.set(kst(7, 12, 0));
    let closed = issue(&router, c.name(), &tb, None).await;
    assert_eq!((closed.status, closed.code()), (StatusCode::TOO_EARLY, "not-open"));
    assert_eq!(closed.body["opensAt"], kst(8, 10, 0).to_rfc3339());

    // Next day: fresh stock, but yesterday's mission does not count today.
    app.ctx.clock.set(kst(8, 10, 5));
    let stale = issue(&router, c.name(), &tb, None).await;
    assert_eq!((stale.status, stale.code()), (StatusCode::FORBIDDEN, "not-eligible"));
    verify_mission(&app, b, kst(8, 10, 1)).await;
    let started = Instant::now();
    let won = loop {
        let r = issue(&router, c.name(), &tb, None).await;
        if r.status != StatusCode::FORBIDDEN || started.elapsed() > Duration::from_secs(30) {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(won.status, StatusCode::CREATED, "{:?}", won.body);
    assert_eq!(won.body["day"], "2026-12-08");
    // The per-person limit spans the campaign: a's second day is a 409 with day 1's coupon.
    verify_mission(&app, a, kst(8, 10, 2)).await;
    let again = issue(&router, c.name(), &ta, None).await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(again.body["coupon"]["day"], "2026-12-07");

    // After the last day's closing: ended — and a holder still gets their coupon back.
    app.ctx.clock.set(kst(13, 12, 0));
    let ended = issue(&router, c.name(), &token(&app, Uuid::new_v4()), None).await;
    assert_eq!((ended.status, ended.code()), (StatusCode::GONE, "campaign-ended"));
    let kept = issue(&router, c.name(), &ta, None).await;
    assert_eq!((kept.status, kept.body["coupon"]["day"].as_str()), (StatusCode::CONFLICT, Some("2026-12-07")));
}

async fn a_person_gets_the_same_coupon_back_and_idempotency_keys_hold(backend: TestApp) {
    let kind = backend.backend;
    drop(backend);
    let app = app_at(kind, kst(9, 11, 0)).await.unwrap();
    let c = campaign(Rules { daily: 100, per_user: 2, mission: false, ..Rules::default() });
    let (router, issuer) = app.issuer(c.clone()).await;
    wait_ready(&issuer).await;
    let u = Uuid::new_v4();
    let t = token(&app, u);
    let first = issue(&router, c.name(), &t, Some("tap-1")).await;
    assert_eq!(first.status, StatusCode::CREATED);
    // The answer was "lost": the retry with the same key is the same coupon.
    let retry = issue(&router, c.name(), &t, Some("tap-1")).await;
    assert_eq!(retry.status, StatusCode::CONFLICT);
    assert_eq!(coupon_id(&retry), coupon_id(&first));
    let second = issue(&router, c.name(), &t, Some("tap-2")).await;
    assert_eq!(second.status, StatusCode::CREATED);
    assert_eq!(second.body["seq"], 2);
    // At the limit, any further attempt hands back the latest coupon.
    let third = issue(&router, c.name(), &t, Some("tap-3")).await;
    assert_eq!(third.status, StatusCode::CONFLICT);
    assert_eq!(coupon_id(&third), coupon_id(&second));
    let told: HashSet<Uuid> = [coupon_id(&first).unwrap(), coupon_id(&second).unwrap()].into();
    let violations = audit(&app, &c, &told, &HashMap::from([(day(9), HashSet::from([u]))]), 2).await;
    assert!(violations.is_empty(), "{violations:#?}");
}

async fn losing_the_issuer_state_rebuilds_it_without_overselling(backend: TestApp) {
    let kind = backend.backend;
    drop(backend);
    let app = app_at(kind, kst(10, 10, 30)).await.unwrap();
    let c = campaign(Rules { daily: 20, mission: false, ..Rules::default() });
    let (router, issuer) = app.issuer(c.clone()).await;
    wait_ready(&issuer).await;
    let users: Vec<Uuid> = (0..60).map(|_| Uuid::new_v4()).collect();
    let mut told = HashSet::new();
    let mut first_coupon = HashMap::new();
    for u in &users[..12] {
        let r = issue(&router, c.name(), &token(&app, *u), None).await;
        assert_eq!(r.status, StatusCode::CREATED);
        told.insert(coupon_id(&r).unwrap());
        first_coupon.insert(*u, coupon_id(&r).unwrap());
    }
    // Redis is flushed (or restarted empty) mid-campaign.
    issuer.engine().wipe().await.unwrap();
    let lost = issue(&router, c.name(), &token(&app, users[20]), None).await;
    assert_eq!((lost.status, lost.code()), (StatusCode::SERVICE_UNAVAILABLE, "rebuilding"), "{:?}", lost.body);
    assert!(lost.headers.contains_key("retry-after"));
    wait_ready(&issuer).await;

    // Holders get their same coupon back; the rest compete for what is really left.
    for u in &users[..12] {
        let r = issue(&router, c.name(), &token(&app, *u), None).await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{:?}", r.body);
        assert_eq!(coupon_id(&r), first_coupon.get(u).copied());
    }
    let mut created = 0;
    for u in &users[12..] {
        let r = issue(&router, c.name(), &token(&app, *u), None).await;
        if r.status == StatusCode::CREATED {
            created += 1;
            told.insert(coupon_id(&r).unwrap());
        } else {
            assert_eq!(r.code(), "sold-out");
        }
    }
    assert_eq!(created, 8, "20 per day: 12 before the loss, 8 after");
    let everyone: HashSet<Uuid> = users.iter().copied().collect();
    let violations = audit(&app, &c, &told, &HashMap::from([(day(10), everyone)]), 20).await;
    assert!(violations.is_empty(), "{violations:#?}");
}

async fn the_catalog_wallet_and_redemption_work(backend: TestApp) {
    let kind = backend.backend;
    drop(backend);
    let app = app_at(kind, kst(11, 10, 30)).await.unwrap();
    let c = campaign(Rules { daily: 5, mission: false, ..Rules::default() });
    coupon::publish_definitions(&app.ctx.bus, std::slice::from_ref(&c), 1).await.unwrap();
    let (router, issuer) = app.issuer(c.clone()).await;
    wait_ready(&issuer).await;
    let u = Uuid::new_v4();
    let t = token(&app, u);
    let issued = issue(&router, c.name(), &t, None).await;
    assert_eq!(issued.status, StatusCode::CREATED);
    let id = coupon_id(&issued).unwrap();

    let started = Instant::now();
    let listed = loop {
        let r = app.call("GET", "/api/coupons/campaigns?phase=open", None, None).await;
        let mine = r.body.as_array().and_then(|a| a.iter().find(|x| x["name"] == c.name()).cloned());
        if let Some(m) = mine.filter(|m| m["remainingToday"] == 4) {
            break m;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "catalog never showed the campaign: {:?}", r.body);
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(listed["phase"], "open");
    assert_eq!(listed["opensAt"], kst(11, 10, 0).to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    let wallet = app.call("GET", "/api/coupons/me", Some(&t), None).await;
    assert_eq!(wallet.body[0]["couponId"], id.to_string());
    assert_eq!(wallet.body[0]["status"], "active");

    let path = format!("/api/coupons/{id}/redeem");
    let other = app.call("POST", &path, Some(&token(&app, Uuid::new_v4())), None).await;
    assert_eq!((other.status, other.code()), (StatusCode::NOT_FOUND, "unknown-coupon"));
    let redeemed = app.call("POST", &path, Some(&t), None).await;
    assert_eq!(redeemed.status, StatusCode::OK, "{:?}", redeemed.body);
    assert_eq!(redeemed.body["status"], "redeemed");
    let twice = app.call("POST", &path, Some(&t), None).await;
    assert_eq!((twice.status, twice.code()), (StatusCode::CONFLICT, "already-redeemed"));

    // A coupon past its validity cannot be redeemed.
    let late = Uuid::new_v4();
    let tl = token(&app, late);
    let r = issue(&router, c.name(), &tl, None).await;
    let late_id = coupon_id(&r).unwrap();
    let started = Instant::now();
    while app.call("GET", "/api/coupons/me", Some(&tl), None).await.body.as_array().is_none_or(Vec::is_empty) {
        assert!(started.elapsed() < Duration::from_secs(60));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    app.ctx.clock.advance(chrono::TimeDelta::days(8));
    let expired = app.call("POST", &format!("/api/coupons/{late_id}/redeem"), Some(&tl), None).await;
    assert_eq!((expired.status, expired.code()), (StatusCode::GONE, "coupon-expired"));
}

async fn bad_issue_requests_are_clear_4xx_problems(backend: TestApp) {
    let kind = backend.backend;
    drop(backend);
    let app = app_at(kind, kst(12, 10, 30)).await.unwrap();
    let c = campaign(Rules::default());
    let (router, issuer) = app.issuer(c.clone()).await;
    wait_ready(&issuer).await;
    let t = token(&app, Uuid::new_v4());
    let path = format!("/api/campaigns/{}/issue", c.name());
    let cases: Vec<(Request<Body>, u16, &str)> = vec![
        (Request::post(&path).body(Body::empty()).unwrap(), 401, "missing-token"),
        (
            Request::post(&path).header("authorization", "Bearer nope").body(Body::empty()).unwrap(),
            401,
            "invalid-token",
        ),
        (
            Request::post("/api/campaigns/no-such-campaign/issue")
                .header("authorization", format!("Bearer {t}"))
                .body(Body::empty())
                .unwrap(),
            404,
            "unknown-campaign",
        ),
        (
            Request::post(&path)
                .header("authorization", format!("Bearer {t}"))
                .header("content-length", "10000000")
                .body(Body::from(vec![b'x'; 10_000_000]))
                .unwrap(),
            413,
            "body-too-large",
        ),
        (
            Request::get(&path).header("authorization", format!("Bearer {t}")).body(Body::empty()).unwrap(),
            405,
            "method-not-allowed",
        ),
        (
            Request::post(&path)
                .header("authorization", format!("Bearer {t}"))
                .header("idempotency-key", "x".repeat(65))
                .body(Body::empty())
                .unwrap(),
            400,
            "invalid-idempotency-key",
        ),
        (
            Request::get("/api/campaigns/no-such-campaign/counters").body(Body::empty()).unwrap(),
            404,
            "unknown-campaign",
        ),
    ];
    for (req, status, code) in cases {
        let what = format!("{} {}", req.method(), req.uri());
        let r = TestApp::send_to(&router, req).await;
        assert_eq!((r.status.as_u16(), r.code()), (status, code), "{what}: {:?}", r.body);
        assert_eq!(r.content_type(), "application/problem+json", "{what}");
    }
}
