//! The issuer engine's contract, without HTTP: the Redis scripts and the in-memory engine
//! give the same answers through every step — take, confirm, release, seed, adopt,
//! replace, claim, the rebuild lease, the epoch and the one clock.

mod common;

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use coupon::issuer::engine::{Adopt, Claim, Engine, Record, Snapshot, Take, TakeRequest};
use platform::clock::Clock;
use uuid::Uuid;

fn start() -> DateTime<Utc> {
    "2026-11-25T10:00:00Z".parse().unwrap()
}

fn day() -> NaiveDate {
    start().date_naive()
}

struct Req {
    user: Uuid,
    per_user: u32,
    eligible: bool,
    total: Option<u64>,
    key: Option<String>,
    opens_at: DateTime<Utc>,
    closes_at: DateTime<Utc>,
}

impl Req {
    fn of(user: Uuid) -> Self {
        Req {
            user,
            per_user: 1,
            eligible: false,
            total: None,
            key: None,
            opens_at: start(),
            closes_at: start() + TimeDelta::hours(2),
        }
    }

    fn per_user(mut self, n: u32) -> Self {
        self.per_user = n;
        self
    }

    fn key(mut self, k: &str) -> Self {
        self.key = Some(k.to_owned());
        self
    }

    fn eligible_only(mut self) -> Self {
        self.eligible = true;
        self
    }

    fn total(mut self, n: u64) -> Self {
        self.total = Some(n);
        self
    }

    fn window(mut self, opens_at: DateTime<Utc>, closes_at: DateTime<Utc>) -> Self {
        self.opens_at = opens_at;
        self.closes_at = closes_at;
        self
    }

    async fn on(&self, engine: &Engine) -> Take {
        let code = coupon::model::new_code();
        let req = TakeRequest {
            day: day(),
            opens_at: self.opens_at,
            closes_at: self.closes_at,
            user: self.user,
            per_user: self.per_user,
            require_eligible: self.eligible,
            total_limit: self.total,
            idempotency_key: self.key.as_deref(),
            coupon_id: Uuid::now_v7(),
            code: &code,
            validity: TimeDelta::days(7),
        };
        engine.take(&req).await.expect("engine reachable")
    }
}

fn taken(t: Take) -> (u32, Record) {
    match t {
        Take::Taken { seq, record } => (seq, record),
        other => panic!("expected a unit taken, got {other:?}"),
    }
}

fn holds(t: Take) -> (u32, Record) {
    match t {
        Take::Holds { seq, record, .. } => (seq, record),
        other => panic!("expected the person's coupon, got {other:?}"),
    }
}

async fn open(engine: &Engine, snapshot: &Snapshot) {
    assert!(engine.lock_rebuild("rebuilder").await.unwrap());
    engine.apply(snapshot).await.unwrap();
    assert!(engine.mark_ready("rebuilder").await.unwrap());
    engine.unlock_rebuild("rebuilder").await.unwrap();
}

/// Every step, on `a`, with `b` a second replica on the same state.
async fn contract(a: Engine, b: Engine, clock: Clock) {
    // Nothing there yet: every step asks for a rebuild.
    assert_eq!(Req::of(Uuid::new_v4()).on(&a).await, Take::Rebuild);
    assert!(!a.probe().await.unwrap().trusted);
    assert_eq!(a.seed(day(), 3, None).await.unwrap(), None);

    // The lease: one owner at a time, only the owner renews, opens or releases it.
    assert!(a.lock_rebuild("first").await.unwrap());
    assert!(!b.lock_rebuild("second").await.unwrap());
    assert!(!b.renew_rebuild("second").await.unwrap());
    b.unlock_rebuild("second").await.unwrap();
    a.apply(&Snapshot::default()).await.unwrap();
    assert!(a.renew_rebuild("first").await.unwrap());
    a.unlock_rebuild("first").await.unwrap();
    open(&a, &Snapshot::default()).await;
    assert!(a.probe().await.unwrap().trusted);

    // Before the stock is seeded; then seeded once.
    let alice = Uuid::new_v4();
    assert_eq!(Req::of(alice).on(&a).await, Take::Unseeded);
    assert_eq!(a.seed(day(), 3, None).await.unwrap(), Some(3));
    assert_eq!(
        b.seed(day(), 99, None).await.unwrap(),
        Some(3),
        "the second replica adopts the epoch and seeds nothing new"
    );

    // Outside the window on the one clock: the answer names the clock's time.
    let early = Req::of(alice).window(start() + TimeDelta::minutes(10), start() + TimeDelta::hours(1)).on(&a).await;
    assert_eq!(early, Take::Outside { now: clock.now() });

    // A unit is taken, pending; times come from the one clock.
    let (seq, record) = taken(Req::of(alice).on(&a).await);
    assert_eq!(seq, 1);
    assert!(record.pending);
    assert_eq!(record.issued_at, clock.now());
    assert_eq!(record.expires_at, clock.now() + TimeDelta::days(7));
    // Asking again hands back the pending coupon, on either replica.
    assert_eq!(holds(Req::of(alice).on(&b).await), (1, record.clone()));
    // Confirm acts on the exact coupon only.
    assert!(!a.confirm(alice, 1, Uuid::now_v7()).await.unwrap());
    assert!(a.confirm(alice, 1, record.coupon_id).await.unwrap());
    let (_, issued) = holds(Req::of(alice).on(&a).await);
    assert!(!issued.pending);

    // Eligibility.
    let bob = Uuid::new_v4();
    assert_eq!(Req::of(bob).eligible_only().on(&a).await, Take::NotEligible);
    a.add_eligible(day(), bob).await.unwrap();
    let (_, bobs) = taken(Req::of(bob).eligible_only().on(&a).await);

    // Release acts on the exact, pending coupon only; the unit comes back.
    let wrong = Record { coupon_id: Uuid::now_v7(), ..bobs.clone() };
    assert!(!a.release(bob, 1, &wrong).await.unwrap());
    assert_eq!(a.counters(day()).await.unwrap().remaining_today, Some(1));
    assert!(a.release(bob, 1, &bobs).await.unwrap());
    assert!(!a.release(bob, 1, &bobs).await.unwrap(), "twice gives back nothing");
    assert_eq!(a.counters(day()).await.unwrap().remaining_today, Some(2));
    assert_eq!(a.holder(bob, 1).await.unwrap(), None);

    // The day's stock runs out; the campaign total too.
    let carol = Uuid::new_v4();
    taken(Req::of(carol).on(&a).await);
    taken(Req::of(Uuid::new_v4()).on(&b).await);
    assert_eq!(Req::of(Uuid::new_v4()).on(&a).await, Take::SoldOutToday);
    assert_eq!(Req::of(bob).on(&a).await, Take::SoldOutToday);
    let c = a.counters(day()).await.unwrap();
    assert_eq!((c.issued_today, c.remaining_today, c.issued_total), (3, Some(0), 3));
    // A holder is answered with their coupon after the sell-out, too.
    holds(Req::of(alice).on(&a).await);

    // Idempotency keys, several coupons per person.
    let dave = Uuid::new_v4();
    let first = |engine: &Engine| {
        let engine = engine.clone();
        async move { Req::of(dave).per_user(2).key("k-1").total(100).on(&engine).await }
    };
    // Sold out today: nobody new gets a unit, a key does not change that.
    assert_eq!(first(&a).await, Take::SoldOutToday);

    // Adopting what the log holds: known, pending→issued, unknown (counted), conflicting.
    let (_, carols) = holds(Req::of(carol).on(&a).await);
    assert_eq!(a.adopt(carol, 1, &carols).await.unwrap(), Adopt::Confirmed);
    assert_eq!(a.adopt(carol, 1, &carols).await.unwrap(), Adopt::Known);
    let erin = Uuid::new_v4();
    let late = Record {
        coupon_id: Uuid::now_v7(),
        code: "LATE".into(),
        day: day(),
        issued_at: clock.now(),
        expires_at: clock.now(),
        pending: false,
        idempotency_key: Some("erin-key".into()),
    };
    assert_eq!(a.adopt(erin, 1, &late).await.unwrap(), Adopt::Oversold, "the stock was gone");
    let c = a.counters(day()).await.unwrap();
    assert_eq!((c.issued_today, c.issued_total), (4, 4), "a late event is counted");
    let (_, erins) = holds(Req::of(erin).key("erin-key").on(&b).await);
    assert_eq!(erins.coupon_id, late.coupon_id, "its key is restored with it");
    let rival = Record { coupon_id: Uuid::now_v7(), code: "RIVAL".into(), ..late.clone() };
    assert_eq!(a.adopt(erin, 1, &rival).await.unwrap(), Adopt::Conflict(late.clone()));
    assert!(a.replace(erin, 1, &rival).await.unwrap());
    assert_eq!(a.holder(erin, 1).await.unwrap().map(|r| r.coupon_id), Some(rival.coupon_id));
    assert_eq!(a.counters(day()).await.unwrap().issued_total, 4, "a replaced coupon counts once");

    // Claims: pending coupons older than the limit, leased to one replica at a time.
    let frank = Uuid::new_v4();
    let (_, franks) = {
        // A fresh state with room, so a pending coupon exists.
        a.wipe().await.unwrap();
        assert_eq!(Req::of(frank).on(&b).await, Take::Rebuild, "a wiped state is rebuilt first");
        open(&a, &Snapshot::default()).await;
        a.seed(day(), 5, None).await.unwrap();
        taken(Req::of(frank).on(&b).await)
    };
    assert_eq!(a.claim_stale(std::time::Duration::from_secs(60), 10).await.unwrap(), vec![], "not old enough");
    clock.advance(TimeDelta::seconds(61));
    let claim = Claim { user: frank, seq: 1, coupon_id: franks.coupon_id };
    assert_eq!(a.claim_stale(std::time::Duration::from_secs(60), 10).await.unwrap(), vec![claim]);
    assert_eq!(b.claim_stale(std::time::Duration::from_secs(60), 10).await.unwrap(), vec![], "leased to a");
    assert!(a.confirm(frank, 1, franks.coupon_id).await.unwrap());
    clock.advance(TimeDelta::seconds(61));
    assert_eq!(a.claim_stale(std::time::Duration::from_secs(60), 10).await.unwrap(), vec![], "confirmed: resolved");

    // Several per person with keys: one key never yields two coupons, also while pending.
    let (s1, k1) = taken(Req::of(dave).per_user(2).key("k-1").on(&a).await);
    assert_eq!(holds(Req::of(dave).per_user(2).key("k-1").on(&b).await), (s1, k1.clone()));
    assert_eq!(
        holds(Req::of(dave).per_user(2).key("k-2").on(&b).await).1.coupon_id,
        k1.coupon_id,
        "the latest is still pending"
    );
    assert!(a.confirm(dave, s1, k1.coupon_id).await.unwrap());
    let (s2, k2) = taken(Req::of(dave).per_user(2).key("k-2").on(&b).await);
    assert_eq!(s2, 2);
    assert_eq!(holds(Req::of(dave).per_user(2).key("k-1").on(&a).await).1.coupon_id, k1.coupon_id);
    assert_eq!(holds(Req::of(dave).per_user(2).key("k-2").on(&a).await).1.coupon_id, k2.coupon_id);

    // A rebuild restores holders, keys and counts.
    let mut snapshot = Snapshot::default();
    snapshot.holders.entry(dave).or_default().insert(1, k1.clone().issued());
    a.wipe().await.unwrap();
    open(&a, &snapshot).await;
    assert_eq!(holds(Req::of(dave).per_user(2).key("k-1").on(&b).await).1.coupon_id, k1.coupon_id);
    assert_eq!(a.counters(day()).await.unwrap().issued_total, 1);
    let before = b.generation();
    a.wipe().await.unwrap();
    open(&a, &Snapshot::default()).await;
    assert_eq!(a.seed(day(), 5, None).await.unwrap(), Some(5));
    taken(Req::of(Uuid::new_v4()).on(&b).await);
    assert!(b.generation() > before, "the other replica moved to the new epoch");

    // A lost lease cannot open the state.
    a.wipe().await.unwrap();
    assert!(a.lock_rebuild("owner").await.unwrap());
    assert!(!a.mark_ready("intruder").await.unwrap());
    assert!(!a.probe().await.unwrap().trusted);
}

#[tokio::test]
async fn the_memory_engine_keeps_the_contract() {
    let clock = Clock::manual(start() + TimeDelta::minutes(5));
    let engine = Engine::memory(clock.clone());
    contract(engine.clone(), engine, clock).await;
}

#[tokio::test]
async fn a_refused_requester_leaves_nothing_in_the_memory_engine() {
    let clock = Clock::manual(start() + TimeDelta::minutes(5));
    let engine = Engine::memory(clock.clone());
    open(&engine, &Snapshot::default()).await;
    engine.seed(day(), 1, None).await.unwrap();
    taken(Req::of(Uuid::new_v4()).on(&engine).await);
    for _ in 0..1000 {
        assert_eq!(Req::of(Uuid::new_v4()).on(&engine).await, Take::SoldOutToday);
        assert_eq!(Req::of(Uuid::new_v4()).eligible_only().on(&engine).await, Take::NotEligible);
    }
    assert_eq!(engine.people(), Some(1));
}

mod real {
    use super::*;

    async fn redis_engine(url: &str, prefix: &str, name: &str, clock: Clock) -> Engine {
        let counters = platform::counters::Counters::redis(url, prefix).await.expect("redis");
        let (conn, prefix) = counters.redis_connection().expect("a redis connection");
        Engine::redis(conn, &prefix, name, clock)
    }

    #[tokio::test]
    #[cfg_attr(ww_no_backends, ignore = "WW_TEST_NO_BACKENDS was set: needs Redis")]
    async fn the_redis_engine_keeps_the_contract() {
        let env = common::RealEnv::get();
        let clock = Clock::manual(start() + TimeDelta::minutes(5));
        let prefix = format!("ww-test:{}:", Uuid::new_v4().simple());
        let a = redis_engine(&env.redis, &prefix, "contract", clock.clone()).await;
        let b = redis_engine(&env.redis, &prefix, "contract", clock.clone()).await;
        contract(a, b, clock).await;
    }

    #[tokio::test]
    #[cfg_attr(ww_no_backends, ignore = "WW_TEST_NO_BACKENDS was set: needs Redis")]
    async fn a_state_from_another_redis_process_is_not_trusted() {
        // What a restart from an older snapshot or a promoted lagging replica looks like:
        // the epoch is there, but it was written by another server process.
        let env = common::RealEnv::get();
        let clock = Clock::manual(start() + TimeDelta::minutes(5));
        let prefix = format!("ww-test:{}:", Uuid::new_v4().simple());
        let engine = redis_engine(&env.redis, &prefix, "foreign", clock.clone()).await;
        open(&engine, &Snapshot::default()).await;
        engine.seed(day(), 5, None).await.unwrap();
        taken(Req::of(Uuid::new_v4()).on(&engine).await);
        let client = redis::Client::open(env.redis.as_str()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let key = format!("{prefix}{{c:foreign}}:epoch");
        let epoch: String = redis::cmd("GET").arg(&key).query_async(&mut conn).await.unwrap();
        let (_, id) = epoch.split_once(':').unwrap();
        let _: () =
            redis::cmd("SET").arg(&key).arg(format!("0123456789abcdef:{id}")).query_async(&mut conn).await.unwrap();
        assert_eq!(Req::of(Uuid::new_v4()).on(&engine).await, Take::Rebuild);
        assert_eq!(engine.seed(day(), 5, None).await.unwrap(), None);
        assert!(!engine.probe().await.unwrap().trusted);
    }
}
