//! `ww bench dashboard`: what live dashboards cost. A coupon issuer (`ww serve coupon-issuer`),
//! its persister (`ww serve coupon`) and the web role (`ww serve web`) run as separate processes
//! on PostgreSQL, Redis and Kafka. The same issue load runs twice: with no dashboard open, then
//! with `--viewers` open streams (`GET /api/live/campaigns`) reading every frame. The issuer's
//! throughput with viewers is set against its own throughput without them, measured in the
//! same run (the viewers must cost it nothing). The web process's CPU, with no viewers and with
//! all of them, gives the cost of one delivered frame. The coupons issued are then audited in
//! SQL.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use chrono::Utc;
use hdrhistogram::Histogram;
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use platform::auth::JwtKeys;
use platform::config::KeyRing;
use platform::events::contracts::topics;
use serde_json::json;
use tokio::net::TcpStream;
use uuid::Uuid;

use super::cpu::Snapshot;
use super::load;
use super::proc::{ChildProc, free_addr};

#[derive(Debug, clap::Args)]
pub struct DashboardBenchArgs {
    /// Open dashboards (each its own connection reading every frame).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub viewers: u64,
    /// Issue requests in each load phase (each a new person).
    #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u64).range(100..=1_000_000))]
    pub requests: u64,
    /// Concurrent issue connections.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub concurrency: u64,
    /// Seconds of each idle phase (web CPU with no load).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(2..=60))]
    pub idle_seconds: u64,
    #[command(flatten)]
    pub backends: super::BenchBackends,
    /// Print one JSON object with the figures as the last line.
    #[arg(long)]
    pub json: bool,
}

/// What the viewers saw.
struct Viewed {
    frames: AtomicU64,
    bytes: AtomicU64,
    /// How long after the server built each frame it arrived, in µs.
    lag_us: Mutex<Histogram<u64>>,
    connected: AtomicU64,
    failed: AtomicU64,
    /// Frames that held `needle`.
    matched: AtomicU64,
    needle: Option<String>,
}

/// Reads one stream until `stop`: counts frames and bytes, and how late each frame arrived
/// after the server built it (`"at"` of the frame).
async fn view(addr: SocketAddr, token: String, seen: Arc<Viewed>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let opened = async {
        let stream = TcpStream::connect(addr).await?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        let resp = sender.send_request(load::request("GET", addr, "/api/live/campaigns", Some(&token), None)).await?;
        anyhow::ensure!(resp.status() == 200, "stream answered {}", resp.status());
        anyhow::Ok(resp.into_body())
    };
    let mut body = match opened.await {
        Ok(b) => b,
        Err(_) => {
            seen.failed.fetch_add(1, Ordering::Relaxed);
            return;
        }
    };
    let mut first = true;
    loop {
        let frame = tokio::select! {
            f = body.frame() => f,
            _ = stop.wait_for(|s| *s) => return,
        };
        let Some(Ok(frame)) = frame else {
            seen.failed.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let Ok(data) = frame.into_data() else { continue };
        if first {
            seen.connected.fetch_add(1, Ordering::Relaxed);
            first = false;
        }
        seen.frames.fetch_add(1, Ordering::Relaxed);
        seen.bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
        if let Some(needle) = &seen.needle
            && std::str::from_utf8(&data).is_ok_and(|t| t.contains(needle.as_str()))
        {
            seen.matched.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(at) = frame_at(&data) {
            let lag = (Utc::now() - at).num_microseconds().unwrap_or(0).max(1) as u64;
            let _ = seen.lag_us.lock().unwrap_or_else(std::sync::PoisonError::into_inner).record(lag);
        }
    }
}

/// The `at` of a frame (`data: {"at":"…",…}`): read without parsing the whole frame.
fn frame_at(data: &Bytes) -> Option<chrono::DateTime<Utc>> {
    let text = std::str::from_utf8(data).ok()?;
    let start = text.find("\"at\":\"")? + 6;
    let end = start + text[start..].find('"')?;
    chrono::DateTime::parse_from_rfc3339(&text[start..end]).ok().map(|t| t.with_timezone(&Utc))
}

struct Phase {
    rps: f64,
    p99_ms: f64,
    issued: u64,
    issuer_cores: f64,
    web_cores: f64,
}

fn cores_of(before: &Snapshot, after: &Snapshot, pid: Option<u32>, label: &str) -> f64 {
    let Some(pid) = pid else { return 0.0 };
    let labels = BTreeMap::from([(pid, label.to_owned())]);
    before.cores_until(after, &labels).into_iter().find(|(l, _)| l == label).map_or(0.0, |(_, c)| c)
}

pub async fn run(args: DashboardBenchArgs) -> anyhow::Result<()> {
    platform::db::create_postgres_database(&args.backends.database_url)
        .await
        .context("cannot prepare the benchmark database")?;
    let run_id = Uuid::new_v4().simple().to_string()[..8].to_owned();
    let name = format!("bench-{run_id}");
    let secret = super::new_secret();
    let keys =
        Arc::new(JwtKeys::new(&KeyRing(vec![("bench".into(), secret.clone().into_bytes())]), None, "weatherwise")?);
    let bus = args.backends.bus(&run_id)?;
    bus.ensure_topics(&[topics::COUPONS_ISSUED, topics::MISSIONS_VERIFIED, topics::CAMPAIGNS, topics::CAMPAIGN_COUNTS])
        .await?;

    // A campaign open from a minute ago until the end of the day (UTC), stock for every request.
    let (dir, file) = super::open_campaign_file(&run_id, &name, args.requests * 2 + 1000)?;

    let env = args.backends.issuer_env(&run_id, &secret, &name, &file, &[]);
    let args_of = |a: &[&str]| a.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    let (issuer_addr, persister_addr, web_addr) = (free_addr()?, free_addr()?, free_addr()?);
    eprintln!("starting the issuer, the persister and the web role…");
    let issuer = ChildProc::start(
        &args_of(&["serve", "coupon-issuer", "--listen", &issuer_addr.to_string()]),
        &env,
        issuer_addr,
        "/readyz",
    )
    .await?;
    let persister = ChildProc::start(
        &args_of(&["serve", "coupon", "--listen", &persister_addr.to_string()]),
        &env,
        persister_addr,
        "/readyz",
    )
    .await?;
    let web =
        ChildProc::start(&args_of(&["serve", "web", "--listen", &web_addr.to_string()]), &env, web_addr, "/readyz")
            .await?;

    let viewer_token = keys.sign(Uuid::new_v4(), Uuid::new_v4(), Utc::now(), Duration::from_secs(3600))?;
    // The web role has the campaign's counts once the issuer reported (it does every second).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let probe = Arc::new(viewed(Some(format!("\"name\":\"{name}\"")))?);
        let (stop_tx, stop) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(view(web_addr, viewer_token.clone(), probe.clone(), stop));
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let _ = stop_tx.send(true);
        let _ = task.await;
        if probe.matched.load(Ordering::Relaxed) > 0 {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "the web role never showed the campaign's counts");
    }

    let path = format!("/api/campaigns/{name}/issue");
    let told = Arc::new(Mutex::new(HashSet::<Uuid>::new()));
    let issue_load = |keys: Arc<JwtKeys>, told: Arc<Mutex<HashSet<Uuid>>>| {
        let path = path.clone();
        let make: load::MakeRequest = Arc::new(move |_, _| {
            let token =
                keys.sign(Uuid::new_v4(), Uuid::new_v4(), Utc::now(), Duration::from_secs(600)).unwrap_or_default();
            load::request("POST", issuer_addr, &path, Some(&token), None)
        });
        let observe: load::Observe = Arc::new(move |_, status, body: &Bytes, _| {
            if status == 201
                && let Ok(v) = serde_json::from_slice::<serde_json::Value>(body)
                && let Some(id) = v["couponId"].as_str().and_then(|s| Uuid::parse_str(s).ok())
            {
                told.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(id);
            }
        });
        (make, observe)
    };
    let concurrency = usize::try_from(args.concurrency)?;
    let measure = |label: &'static str| {
        let (make, observe) = issue_load(keys.clone(), told.clone());
        let (issuer_pid, web_pid) = (issuer.pid(), web.pid());
        async move {
            eprintln!("{label}: {} issue requests at concurrency {concurrency}…", args.requests);
            let before = Snapshot::take();
            let stats = load::run_count(issuer_addr, concurrency, args.requests, make, observe).await;
            let after = Snapshot::take();
            Phase {
                rps: stats.answered() as f64 / stats.elapsed.as_secs_f64().max(1e-9),
                p99_ms: stats.ms(0.99),
                issued: stats.count(201),
                issuer_cores: cores_of(&before, &after, issuer_pid, "issuer"),
                web_cores: cores_of(&before, &after, web_pid, "web"),
            }
        }
    };
    let idle = |label: &'static str| {
        let web_pid = web.pid();
        let seconds = args.idle_seconds;
        async move {
            eprintln!("{label}: {seconds} s without load…");
            let before = Snapshot::take();
            tokio::time::sleep(Duration::from_secs(seconds)).await;
            cores_of(&before, &Snapshot::take(), web_pid, "web")
        }
    };

    let idle_without = idle("no viewers").await;
    let without = measure("no viewers").await;

    eprintln!("opening {} dashboard streams…", args.viewers);
    let seen = Arc::new(viewed(None)?);
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    // Each viewer is its own person (one login session holds only a few streams).
    let viewers: Vec<_> = (0..args.viewers)
        .map(|_| {
            let token =
                keys.sign(Uuid::new_v4(), Uuid::new_v4(), Utc::now(), Duration::from_secs(3600)).unwrap_or_default();
            tokio::spawn(view(web_addr, token, seen.clone(), stop.clone()))
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen.connected.load(Ordering::Relaxed) + seen.failed.load(Ordering::Relaxed) < args.viewers {
        anyhow::ensure!(Instant::now() < deadline, "the streams did not all open within 60 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let frames_at = |s: &Viewed| s.frames.load(Ordering::Relaxed);
    let frames_before_idle = frames_at(&seen);
    let idle_started = Instant::now();
    let idle_with = idle("with viewers").await;
    let frames_idle = frames_at(&seen) - frames_before_idle;
    let idle_frame_rate = frames_idle as f64 / idle_started.elapsed().as_secs_f64();
    let frames_before_load = frames_at(&seen);
    let load_started = Instant::now();
    let with = measure("with viewers").await;
    let frame_rate_during_load = (frames_at(&seen) - frames_before_load) as f64 / load_started.elapsed().as_secs_f64();
    let _ = stop_tx.send(true);
    futures::future::join_all(viewers).await;
    let failed = seen.failed.load(Ordering::Relaxed);
    let frame_bytes = seen.bytes.load(Ordering::Relaxed) as f64 / frames_at(&seen).max(1) as f64;
    let (lag_p50, lag_p99) = {
        let h = seen.lag_us.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        (h.value_at_quantile(0.5) as f64 / 1000.0, h.value_at_quantile(0.99) as f64 / 1000.0)
    };

    // Every coupon answered 201 is stored, once, within the stock.
    let issued = without.issued + with.issued;
    eprintln!("waiting for the persister to write {issued} rows…");
    let told = std::mem::take(&mut *told.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
    let violations = args.backends.audit_coupons(&file, told, issued, None).await?;
    issuer.stop().await;
    persister.stop().await;
    web.stop().await;
    let _ = std::fs::remove_dir_all(&dir);

    let ratio = with.rps / without.rps.max(1e-9);
    let web_extra = (idle_with - idle_without).max(0.0);
    let us_per_frame = web_extra * 1e6 / idle_frame_rate.max(1e-9);
    println!(
        "ww bench dashboard — {} viewers, {} issue requests per phase at concurrency {concurrency}",
        args.viewers, args.requests
    );
    println!(
        "issuer, no viewers      {:>8.0} req/s  p99 {:>6.2} ms  issuer {:.2} cores  web {:.3} cores",
        without.rps, without.p99_ms, without.issuer_cores, without.web_cores
    );
    println!(
        "issuer, {:>5} viewers   {:>8.0} req/s  p99 {:>6.2} ms  issuer {:.2} cores  web {:.3} cores   ratio {ratio:.3}",
        args.viewers, with.rps, with.p99_ms, with.issuer_cores, with.web_cores
    );
    println!(
        "web, idle               no viewers {idle_without:.3} cores; {} viewers {idle_with:.3} cores = {us_per_frame:.1} µs of CPU per frame delivered",
        args.viewers
    );
    println!(
        "frames                  {idle_frame_rate:.0}/s delivered idle, {frame_rate_during_load:.0}/s during load; {frame_bytes:.0} bytes each; lag p50 {lag_p50:.1} ms p99 {lag_p99:.1} ms; {failed} streams failed"
    );
    println!("issued                  {issued}; violations {}", violations.len());
    for v in violations.iter().take(20) {
        println!("  - {v}");
    }
    if args.json {
        let round = |x: f64| (x * 1000.0).round() / 1000.0;
        println!(
            "{}",
            json!({
                "viewers": args.viewers,
                "requests_per_phase": args.requests,
                "concurrency": concurrency,
                "issue_rps_without_viewers": round(without.rps),
                "issue_rps_with_viewers": round(with.rps),
                "ratio": round(ratio),
                "issue_p99_ms_without_viewers": round(without.p99_ms),
                "issue_p99_ms_with_viewers": round(with.p99_ms),
                "issuer_cores_without_viewers": round(without.issuer_cores),
                "issuer_cores_with_viewers": round(with.issuer_cores),
                "web_cores_idle_without_viewers": round(idle_without),
                "web_cores_idle_with_viewers": round(idle_with),
                "web_cpu_us_per_frame": round(us_per_frame),
                "frames_per_s_idle": round(idle_frame_rate),
                "frames_per_s_during_load": round(frame_rate_during_load),
                "frame_bytes": round(frame_bytes),
                "lag_p50_ms": round(lag_p50),
                "lag_p99_ms": round(lag_p99),
                "failed_streams": failed,
                "issued": issued,
                "violations": violations.len(),
            })
        );
    }
    anyhow::ensure!(violations.is_empty(), "the audit found violations");
    Ok(())
}

fn viewed(needle: Option<String>) -> anyhow::Result<Viewed> {
    Ok(Viewed {
        frames: AtomicU64::new(0),
        bytes: AtomicU64::new(0),
        lag_us: Mutex::new(Histogram::new_with_bounds(1, 600_000_000, 3)?),
        connected: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        matched: AtomicU64::new(0),
        needle,
    })
}
