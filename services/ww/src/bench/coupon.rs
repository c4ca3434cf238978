//! `ww bench coupon`: a coupon event against the real per-event workload — `ww serve
//! coupon-issuer` and `ww serve coupon` (the persister) as separate processes on
//! PostgreSQL, Redis and Kafka — then every invariant checked against SQL.
//!
//! Scenarios (`--scenario`):
//! - `burst`: N people, M of them eligible, S units, R requests where everyone retries
//!   several times — the opening-time crowd.
//! - `stock`: S = M, each eligible person asks once — the durable path under load.
//! - `legacy`: the replaced system's own load test shape, open loop: 10 s at 150
//!   arrivals/s, 30 s at 300/s, 50 s at 150/s, each arrival one person's single attempt.
//!
//! Beside it, in the same run: the ceiling (a minimal axum handler, same client) and the
//! raw rate of the same engine step plus Kafka publish called directly, each as a ratio.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use chrono::{NaiveDate, Timelike, Utc};
use coupon::issuer::engine::{Engine, Take, TakeRequest};
use hdrhistogram::Histogram;
use platform::auth::JwtKeys;
use platform::config::KeyRing;
use platform::db::{Database, DatabaseUrl};
use platform::events::contracts::{
    COUPON_ISSUED, CouponIssued, MISSION_VERIFIED, MissionSource, MissionVerified, topics,
};
use platform::events::{Envelope, EventBus};
use rand::seq::SliceRandom;
use serde_json::json;
use uuid::Uuid;

use super::load;
use super::proc::{ChildProc, free_addr};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    Burst,
    Stock,
    Legacy,
}

#[derive(Debug, clap::Args)]
pub struct CouponBenchArgs {
    /// `burst`: the opening crowd retrying; `stock`: every unit through the durable path;
    /// `legacy`: the replaced system's own 90 s open-loop load shape.
    #[arg(long, value_enum, default_value = "burst")]
    pub scenario: Scenario,
    /// People (default: burst 20,000; stock 50,000; legacy 18,000).
    #[arg(long)]
    pub users: Option<u64>,
    /// Eligible people (default: burst 10,000; stock = users; legacy = users).
    #[arg(long)]
    pub eligible: Option<u64>,
    /// Daily quantity (default: burst 1,000; stock 50,000; legacy 4,245).
    #[arg(long)]
    pub stock: Option<u64>,
    /// Requests in all (default: burst 200,000; stock = eligible).
    #[arg(long)]
    pub requests: Option<u64>,
    /// Concurrent connections (default: burst 256; stock 48 — the durable path is bound
    /// by the broker's acknowledgement latency, so more connections only queue).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub concurrency: Option<u64>,
    /// Issuer replicas (separate processes) the crowd's connections are spread over.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=8))]
    pub replicas: u64,
    /// Seconds of the ceiling and direct measurements.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=60))]
    pub side_seconds: u64,
    #[command(flatten)]
    pub backends: super::BenchBackends,
    /// Print one JSON object with the figures as the last line.
    #[arg(long)]
    pub json: bool,
}

struct Plan {
    users: u64,
    eligible: u64,
    stock: u64,
    requests: u64,
}

impl CouponBenchArgs {
    fn plan(&self) -> Plan {
        let (users, eligible, stock, requests) = match self.scenario {
            Scenario::Burst => (20_000, 10_000, 1_000, 200_000),
            Scenario::Stock => (50_000, 50_000, 50_000, 50_000),
            Scenario::Legacy => (18_000, 18_000, 4_245, 18_000),
        };
        let users = self.users.unwrap_or(users);
        let eligible = self.eligible.unwrap_or(eligible.min(users)).min(users);
        let requests = self.requests.unwrap_or(if self.scenario == Scenario::Burst { requests } else { eligible });
        Plan { users, eligible, stock: self.stock.unwrap_or(stock), requests }
    }
}

/// Per-answer observations of the issue run.
#[derive(Default)]
struct Seen {
    told: HashSet<Uuid>,
    /// When each answer arrived (any status), since the opening.
    answered_at: Vec<Duration>,
    issued_at: Vec<Duration>,
    issued_latency: Option<Histogram<u64>>,
}

pub async fn run(args: CouponBenchArgs) -> anyhow::Result<()> {
    let plan = args.plan();
    platform::db::create_postgres_database(&args.backends.database_url)
        .await
        .context("cannot prepare the benchmark database")?;
    let run_id = Uuid::new_v4().simple().to_string()[..8].to_owned();
    let name = format!("bench-{run_id}");
    let secret = super::new_secret();
    let keys = JwtKeys::new(&KeyRing(vec![("bench".into(), secret.clone().into_bytes())]), None, "weatherwise")?;
    let bus = args.backends.bus(&run_id)?;
    bus.ensure_topics(&[topics::COUPONS_ISSUED, topics::MISSIONS_VERIFIED, topics::CAMPAIGNS]).await?;

    // The campaign opens a little after the issuer is up, in UTC, for today only.
    let today = Utc::now().date_naive();
    let dir = tempfile_dir(&run_id)?;
    let lead = Duration::from_secs(25);
    let opens = (Utc::now() + chrono::TimeDelta::from_std(lead)?).with_nanosecond(0).context("time")?;
    if opens.date_naive() != today {
        anyhow::bail!("too close to midnight UTC for a one-day campaign; retry in a minute");
    }
    let file = dir.join("campaign.yaml");
    std::fs::write(&file, campaign_yaml(&name, today, &opens.format("%H:%M:%S").to_string(), plan.stock))?;

    // People, tokens, and who verified a mission today (before the issuer starts, so
    // its replay of the mission log sees them all).
    let users: Vec<Uuid> = (0..plan.users).map(|_| Uuid::new_v4()).collect();
    let eligible: HashSet<Uuid> = users[..plan.eligible as usize].iter().copied().collect();
    eprintln!("publishing {} MissionVerified events…", eligible.len());
    publish_missions(&bus, &eligible).await?;
    let tokens: Arc<Vec<String>> = Arc::new(
        users
            .iter()
            .map(|u| keys.sign(*u, Uuid::new_v4(), Utc::now(), Duration::from_secs(3600)))
            .collect::<Result<_, _>>()?,
    );

    let env = args.backends.issuer_env(&run_id, &secret, &name, &file, &[]);
    let mut issuers = Vec::new();
    let mut issuer_addrs = Vec::new();
    for _ in 0..args.replicas {
        let addr = free_addr()?;
        eprintln!("starting `ww serve coupon-issuer --campaign {name}` on {addr}…");
        issuer_addrs.push(addr);
        issuers.push(args_of(&["serve", "coupon-issuer", "--listen", &addr.to_string()]));
    }
    // Replicas start together, as a rollout starts them.
    let issuers: Vec<ChildProc> = futures::future::try_join_all(
        issuers.iter().zip(&issuer_addrs).map(|(argv, addr)| ChildProc::start(argv, &env, *addr, "/readyz")),
    )
    .await?;
    let issuer_addr = issuer_addrs[0];
    let persister_addr = free_addr()?;
    let persister = ChildProc::start(
        &args_of(&["serve", "coupon", "--listen", &persister_addr.to_string()]),
        &env,
        persister_addr,
        "/readyz",
    )
    .await?;
    let ceiling_addr = free_addr()?;
    let ceiling = ChildProc::start(
        &args_of(&["internal", "ceiling", "--listen", &ceiling_addr.to_string()]),
        &[],
        ceiling_addr,
        super::ceiling::PATH,
    )
    .await?;

    // Wait for the opening.
    let wait = (opens - Utc::now()).to_std().unwrap_or_default();
    eprintln!(
        "campaign {name} opens at {opens} (in {:.1}s); {} people, {} eligible, {} units",
        wait.as_secs_f64(),
        plan.users,
        plan.eligible,
        plan.stock
    );
    tokio::time::sleep(wait).await;

    let path = format!("/api/campaigns/{name}/issue");
    let seen = Arc::new(Mutex::new(Seen {
        issued_latency: Some(Histogram::new_with_bounds(1, 120_000_000, 3)?),
        ..Seen::default()
    }));
    let opened = Instant::now();
    let concurrency =
        usize::try_from(args.concurrency.unwrap_or(if args.scenario == Scenario::Stock { 48 } else { 256 }))?;
    let stats = match args.scenario {
        Scenario::Burst | Scenario::Stock => {
            let order = request_order(args.scenario, &plan);
            let make = issue_maker(issuer_addr, path.clone(), tokens.clone(), Arc::new(order));
            let observe = observer(seen.clone(), opened);
            eprintln!(
                "firing {} requests at concurrency {concurrency} over {} replicas…",
                plan.requests,
                issuer_addrs.len()
            );
            load::run_count_on(&issuer_addrs, concurrency, plan.requests, make, observe).await
        }
        Scenario::Legacy => legacy_shape(&issuer_addrs, &path, tokens.clone(), seen.clone(), opened).await,
    };
    let issued = stats.count(201);
    let (told, issued_times, issued_hist, answered_times) = {
        let mut s = seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        (
            std::mem::take(&mut s.told),
            std::mem::take(&mut s.issued_at),
            s.issued_latency.take(),
            std::mem::take(&mut s.answered_at),
        )
    };

    // Persisted and correct?
    eprintln!("waiting for the persister to write {issued} rows…");
    let db = Database::open(
        &DatabaseUrl::Postgres(args.backends.database_url.clone()),
        coupon::SERVICE,
        4,
        coupon::migrator(),
    )
    .await?;
    let drained = wait_rows(&db, &name, issued as i64).await?;
    let campaign = coupon::load_campaigns(&coupon::IssuerConfig {
        campaign: Some(name.clone()),
        campaign_file: Some(file.clone()),
        ..Default::default()
    })?
    .pop()
    .context("bench campaign")?;
    let mut by_day = HashMap::new();
    by_day.insert(campaign.day_of(Utc::now()), eligible.clone());
    let violations =
        coupon::audit::violations(&db, &campaign, &coupon::audit::Told { coupons: told }, Some(&by_day)).await?;

    // Side by side: the ceiling and the direct engine + publish rate.
    let side = Duration::from_secs(args.side_seconds);
    eprintln!("measuring the ceiling for {}s…", side.as_secs());
    let ceiling_stats = load::run(
        ceiling_addr,
        concurrency,
        side,
        Arc::new(move |_, _| load::request("GET", ceiling_addr, super::ceiling::PATH, None, None)),
    )
    .await;
    eprintln!("measuring the engine step + Kafka publish called directly for {}s…", side.as_secs());
    let direct = direct_rate(&args, &bus, &run_id, side, concurrency).await?;
    for issuer in issuers {
        issuer.stop().await;
    }
    persister.stop().await;
    ceiling.stop().await;
    let _ = std::fs::remove_dir_all(&dir);

    // Figures.
    let rps = stats.answered() as f64 / stats.elapsed.as_secs_f64().max(1e-9);
    let ceiling_rps = ceiling_stats.count(200) as f64 / ceiling_stats.elapsed.as_secs_f64().max(1e-9);
    let issue_span = match (issued_times.iter().min(), issued_times.iter().max()) {
        (Some(first), Some(last)) if last > first => (*last - *first).as_secs_f64(),
        _ => stats.elapsed.as_secs_f64(),
    };
    let issued_per_s = issued as f64 / issue_span.max(1e-3);
    let sold_out_after_ms = (issued as u64 >= plan.stock.min(plan.eligible))
        .then(|| issued_times.iter().max().map_or(0.0, |d| d.as_secs_f64() * 1000.0));
    let issued_p99 = issued_hist.as_ref().map_or(0.0, |h| h.value_at_quantile(0.99) as f64 / 1000.0);
    // The part of the run before the last unit went (most burst answers after it are the
    // cheap sold-out answer).
    let before_sold_out = sold_out_after_ms.map(|ms| {
        let cut = Duration::from_secs_f64(ms / 1000.0);
        let n = answered_times.iter().filter(|t| **t <= cut).count();
        (n, n as f64 / cut.as_secs_f64().max(1e-3))
    });
    println!(
        "ww bench coupon — scenario {:?}: {} people, {} eligible, {} units, {} requests, concurrency {concurrency}",
        args.scenario,
        plan.users,
        plan.eligible,
        plan.stock,
        stats.answered()
    );
    println!("answers            {:?}  (connection errors {})", stats.statuses, stats.errors);
    println!("throughput         {rps:>9.0} req/s over {:.2}s", stats.elapsed.as_secs_f64());
    println!(
        "latency (all)      p50 {:.2} ms  p90 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
        stats.ms(0.5),
        stats.ms(0.9),
        stats.ms(0.99),
        stats.ms(1.0)
    );
    println!(
        "latency (201s)     p50 {:.2} ms  p99 {issued_p99:.2} ms",
        issued_hist.as_ref().map_or(0.0, |h| h.value_at_quantile(0.5) as f64 / 1000.0)
    );
    println!(
        "issued             {issued} in {issue_span:.2}s = {issued_per_s:.0}/s; sold out after {}",
        sold_out_after_ms.map_or("(not sold out)".to_owned(), |ms| format!("{ms:.0} ms"))
    );
    if let Some((n, rate)) = before_sold_out {
        println!("before sell-out    {n} answers = {rate:.0} req/s; 201s p99 {issued_p99:.2} ms");
    }
    println!("ceiling            {ceiling_rps:>9.0} req/s   ratio {:.3}", rps / ceiling_rps.max(1e-9));
    println!("direct engine+kafka{direct:>9.0} issues/s   ratio {:.3}", issued_per_s / direct.max(1e-9));
    println!("persister drained  {drained}");
    if args.scenario == Scenario::Legacy {
        println!("old system, same shape: 4,245 accepted, 5,045 refused, 8,708 timed out, p99 9.8 s");
        println!(
            "this run:            {} accepted, {} refused, {} timed out, p99 {:.3} s",
            issued,
            stats.answered() - issued,
            stats.errors,
            stats.ms(0.99) / 1000.0
        );
    }
    println!("violations         {}", violations.len());
    for v in violations.iter().take(20) {
        println!("  - {v}");
    }
    if args.json {
        let summary = json!({
            "scenario": format!("{:?}", args.scenario).to_lowercase(),
            "replicas": args.replicas,
            "before_sold_out_answers": before_sold_out.map(|(n, _)| n),
            "before_sold_out_rps": before_sold_out.map(|(_, rate)| round(rate)),
            "rps": round(rps),
            "p50_ms": round(stats.ms(0.5)),
            "p99_ms": round(stats.ms(0.99)),
            "issued_p99_ms": round(issued_p99),
            "issued": issued,
            "issued_per_s": round(issued_per_s),
            "sold_out_after_ms": sold_out_after_ms.map(round),
            "ceiling_rps": round(ceiling_rps),
            "ratio_to_ceiling": round(rps / ceiling_rps.max(1e-9)),
            "direct_issue_per_s": round(direct),
            "ratio_to_direct": round(issued_per_s / direct.max(1e-9)),
            "violations": violations.len(),
            "statuses": stats.statuses,
            "connection_errors": stats.errors,
            "requests": stats.answered(),
        });
        println!("{summary}");
    }
    Ok(())
}

fn round(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn args_of(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| (*s).to_owned()).collect()
}

fn tempfile_dir(run_id: &str) -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("ww-bench-{run_id}"));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

fn campaign_yaml(name: &str, day: NaiveDate, opens: &str, stock: u64) -> String {
    format!(
        "apiVersion: weatherwise.io/v1alpha1\nkind: CouponCampaign\nmetadata:\n  name: {name}\nspec:\n  displayName: Benchmark\n  coupon:\n    title: Bench pass\n    benefit: One free pass\n    validityDays: 7\n  schedule:\n    timeZone: UTC\n    startDate: {day}\n    endDate: {day}\n    opensAt: \"{opens}\"\n  quota:\n    dailyQuantity: {stock}\n    perUser: 1\n  eligibility:\n    mission: VerifiedSameDay\n"
    )
}

async fn publish_missions(bus: &EventBus, eligible: &HashSet<Uuid>) -> anyhow::Result<()> {
    let users: Vec<Uuid> = eligible.iter().copied().collect();
    let now = Utc::now();
    futures::future::try_join_all(users.chunks(users.len().div_ceil(64).max(1)).map(|chunk| async move {
        for u in chunk {
            let verified = MissionVerified {
                user_id: *u,
                mission_id: "bench".into(),
                source: MissionSource::Daily,
                verified_at: now,
            };
            let event = Envelope::new(MISSION_VERIFIED, "bench", now, &verified)?;
            bus.publish(topics::MISSIONS_VERIFIED, &u.to_string(), &event).await?;
        }
        anyhow::Ok(())
    }))
    .await?;
    Ok(())
}

/// Which person each request belongs to: burst — everyone several times, shuffled;
/// stock — each eligible person once.
fn request_order(scenario: Scenario, plan: &Plan) -> Vec<u32> {
    let mut rng = rand::thread_rng();
    let mut order: Vec<u32> = match scenario {
        Scenario::Stock => (0..plan.eligible as u32).collect(),
        _ => (0..plan.requests).map(|i| (i % plan.users) as u32).collect(),
    };
    order.shuffle(&mut rng);
    order
}

fn issue_maker(addr: SocketAddr, path: String, tokens: Arc<Vec<String>>, order: Arc<Vec<u32>>) -> load::MakeRequest {
    Arc::new(move |_, i| {
        let who = order[i as usize % order.len()] as usize;
        load::request("POST", addr, &path, Some(&tokens[who]), None)
    })
}

fn observer(seen: Arc<Mutex<Seen>>, opened: Instant) -> load::Observe {
    Arc::new(move |_, status, body: &Bytes, took| {
        if status != 201 && status != 409 {
            seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner).answered_at.push(opened.elapsed());
            return;
        }
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else { return };
        let id = if status == 201 { &v["couponId"] } else { &v["coupon"]["couponId"] };
        let mut s = seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        s.answered_at.push(opened.elapsed());
        if let Some(id) = id.as_str().and_then(|s| Uuid::parse_str(s).ok()) {
            s.told.insert(id);
        }
        if status == 201 {
            s.issued_at.push(opened.elapsed());
            if let Some(h) = s.issued_latency.as_mut() {
                let _ = h.record(u64::try_from(took.as_micros()).unwrap_or(u64::MAX).max(1));
            }
        }
    })
}

/// The old system's open-loop shape: each arrival is one person's single attempt on its
/// own connection, at 150/s for 10 s, 300/s for 30 s, 150/s for 50 s.
async fn legacy_shape(
    addrs: &[SocketAddr],
    path: &str,
    tokens: Arc<Vec<String>>,
    seen: Arc<Mutex<Seen>>,
    opened: Instant,
) -> load::Stats {
    let phases = [(10u64, 150u64), (30, 300), (50, 150)];
    let results = Arc::new(Mutex::new(Vec::<(u16, Duration)>::new()));
    let errors = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let observe = observer(seen, opened);
    let mut tasks = Vec::new();
    let mut person = 0usize;
    let started = Instant::now();
    let mut at = Duration::ZERO;
    for (secs, rate) in phases {
        let gap = Duration::from_secs_f64(1.0 / rate as f64);
        for _ in 0..secs * rate {
            tokio::time::sleep_until((started + at).into()).await;
            at += gap;
            let token = tokens[person % tokens.len()].clone();
            let addr = addrs[person % addrs.len()];
            person += 1;
            let (path, results, errors, observe) = (path.to_owned(), results.clone(), errors.clone(), observe.clone());
            tasks.push(tokio::spawn(async move {
                let sent = Instant::now();
                let req = load::request("POST", addr, &path, Some(&token), None);
                match tokio::time::timeout(Duration::from_secs(30), load::send_raw(addr, req)).await {
                    Ok(Ok((status, body))) => {
                        let took = sent.elapsed();
                        observe(0, status, &body, took);
                        results.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push((status, took));
                    }
                    _ => {
                        errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            }));
        }
    }
    futures::future::join_all(tasks).await;
    let results = std::mem::take(&mut *results.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
    load::Stats::from_answers(&results, errors.load(std::sync::atomic::Ordering::Relaxed), started.elapsed())
}

/// The ceiling of the issue path without HTTP: the same engine step (Redis script) and
/// the same Kafka publish, called directly at the same concurrency.
async fn direct_rate(
    args: &CouponBenchArgs,
    bus: &EventBus,
    run_id: &str,
    window: Duration,
    concurrency: usize,
) -> anyhow::Result<f64> {
    let (conn, _) = platform::counters::Counters::redis(&args.backends.redis_url, "ww-bench:")
        .await?
        .redis_connection()
        .context("redis")?;
    bus.ensure_topics(&["bench.direct"]).await?;
    let engine = Engine::redis(conn, "ww-bench:", &format!("direct-{run_id}"), platform::clock::Clock::System);
    anyhow::ensure!(engine.lock_rebuild("direct").await? && engine.mark_ready("direct").await?, "direct engine");
    let now = Utc::now();
    let day = now.date_naive();
    engine.seed(day, 10_000_000, None).await?;
    let done = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let deadline = Instant::now() + window;
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (engine, bus, done) = (engine.clone(), bus.clone(), done.clone());
            tokio::spawn(async move {
                while Instant::now() < deadline {
                    let user = Uuid::new_v4();
                    let code = coupon::model::new_code();
                    let req = TakeRequest {
                        day,
                        opens_at: now - chrono::TimeDelta::hours(1),
                        closes_at: now + chrono::TimeDelta::hours(1),
                        user,
                        per_user: 1,
                        require_eligible: false,
                        total_limit: None,
                        idempotency_key: None,
                        coupon_id: Uuid::now_v7(),
                        code: &code,
                        validity: chrono::TimeDelta::days(1),
                    };
                    let Ok(Take::Taken { seq, record }) = engine.take(&req).await else { continue };
                    let event = CouponIssued {
                        coupon_id: record.coupon_id,
                        code: record.code.clone(),
                        campaign: "direct".into(),
                        campaign_uid: String::new(),
                        user_id: user,
                        seq,
                        day,
                        title: "t".into(),
                        benefit: "b".into(),
                        issued_at: record.issued_at,
                        expires_at: record.expires_at,
                        idempotency_key: None,
                    };
                    let Ok(envelope) = Envelope::new(COUPON_ISSUED, "bench", record.issued_at, &event) else {
                        continue;
                    };
                    // A separate topic name, so the persister of the run does not see these.
                    if bus.publish("bench.direct", &user.to_string(), &envelope).await.is_ok() {
                        let _ = engine.confirm(user, seq, record.coupon_id).await;
                        done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    futures::future::join_all(workers).await;
    let _ = engine.wipe().await;
    Ok(done.load(std::sync::atomic::Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64())
}

async fn wait_rows(db: &Database, campaign: &str, expected: i64) -> anyhow::Result<String> {
    let started = Instant::now();
    loop {
        let n = coupon::audit::stored_count(db, campaign, "").await?;
        if n >= expected {
            return Ok(format!("{n} rows in {:.2}s after the last answer", started.elapsed().as_secs_f64()));
        }
        if started.elapsed() > Duration::from_secs(180) {
            return Ok(format!("only {n} of {expected} rows after 180s"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
