//! `ww-operator bench`: N CouponCampaigns reconciled to steady state against the API-server
//! stand-in running in its own process (5–20 ms of latency, a share of writes refused with 409).
//!
//! Reports the time to converge, reconciles per second, API writes per campaign once steady
//! (target 0), status writes per minute while some campaigns are open and their counters flow,
//! and this process's peak RSS; beside them a ceiling measured in the same run (the same
//! minimum writes sent straight to the stand-in, as fast as it takes them) and the ratio. With
//! `--json` the last line is one JSON object. The end checks every campaign's children in the
//! stand-in: each has exactly its own, owned by it.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use chrono::{TimeDelta, Utc};
use kube::api::{Api, ApiResource, DynamicObject, PostParams};
use kube::runtime::reflector::ObjectRef;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc;

use crate::config::WorkloadConfig;
use crate::controller::{self, ChildWatches, Context};
use crate::counters::{Counters, Snapshot};
use crate::http::Readiness;

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// How many campaigns.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=20_000))]
    pub campaigns: u32,
    /// The share of them open now, with counters flowing once a second.
    #[arg(long, default_value_t = 0.1)]
    pub open_share: f64,
    /// The stand-in's latency range in milliseconds.
    #[arg(long, default_value = "5-20")]
    pub latency_ms: String,
    /// The share of writes the stand-in refuses with 409.
    #[arg(long, default_value_t = 0.02)]
    pub conflict_rate: f64,
    /// How long the steady and open phases are watched.
    #[arg(long, default_value_t = 30)]
    pub steady_seconds: u64,
    /// Print one JSON object as the last line.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct StandInArgs {
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: std::net::SocketAddr,
    #[arg(long, default_value = "5-20")]
    pub latency_ms: String,
    #[arg(long, default_value_t = 0.0)]
    pub conflict_rate: f64,
}

fn latency(range: &str) -> anyhow::Result<(u64, u64)> {
    let (lo, hi) = range.split_once('-').unwrap_or((range, range));
    let (lo, hi) = (lo.trim().parse::<u64>()?, hi.trim().parse::<u64>()?);
    anyhow::ensure!(lo <= hi && hi <= 10_000, "latency range `{range}` is not MIN-MAX milliseconds");
    Ok((lo, hi))
}

/// The stand-in as its own process: prints `listening on ADDR` and serves until killed.
pub async fn standin(args: StandInArgs) -> anyhow::Result<()> {
    let faults = crate::standin::Faults { latency_ms: latency(&args.latency_ms)?, conflict_rate: args.conflict_rate };
    let addr = crate::standin::StandIn::new(faults, true).serve(args.listen).await?;
    println!("listening on {addr}");
    std::future::pending::<()>().await;
    Ok(())
}

fn peak_rss_mib() -> f64 {
    proc_status_mib("VmHWM:")
}

fn current_rss_mib() -> f64 {
    proc_status_mib("VmRSS:")
}

fn proc_status_mib(field: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn campaign(i: u32, open: bool) -> Value {
    let today = Utc::now().date_naive();
    let (start, end, opens, closes) = if open {
        (today, today + TimeDelta::days(1), "00:00", "23:59")
    } else {
        (today + TimeDelta::days(30), today + TimeDelta::days(36), "10:00", "11:00")
    };
    json!({
        "apiVersion": "weatherwise.io/v1alpha1",
        "kind": "CouponCampaign",
        "metadata": {"name": format!("bench-{i:05}"), "namespace": format!("team-{}", i % 10)},
        "spec": {
            "displayName": format!("Bench campaign {i}"),
            "coupon": {"title": "Bench pass", "benefit": "One free pass", "validityDays": 7},
            "schedule": {"timeZone": "UTC", "startDate": start.to_string(), "endDate": end.to_string(), "opensAt": opens, "closesAt": closes},
            "quota": {"dailyQuantity": 1000},
            "workload": {"replicas": {"idle": 1, "min": 2, "max": 8}}
        }
    })
}

async fn start_standin(latency_ms: &str, conflict_rate: f64) -> anyhow::Result<(tokio::process::Child, String)> {
    let mut child = tokio::process::Command::new(std::env::current_exe()?)
        .args(["standin", "--latency-ms", latency_ms, "--conflict-rate", &conflict_rate.to_string()])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let stdout = child.stdout.take().ok_or_else(|| anyhow::anyhow!("no stdout from the stand-in"))?;
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line()).await??.unwrap_or_default();
    let addr = line.strip_prefix("listening on ").ok_or_else(|| anyhow::anyhow!("stand-in said `{line}`"))?.to_owned();
    Ok((child, format!("http://{addr}")))
}

fn client(url: &str) -> anyhow::Result<kube::Client> {
    Ok(kube::Client::try_from(kube::Config::new(url.parse()?))?)
}

async fn create_all(client: &kube::Client, objects: &[Value]) -> anyhow::Result<()> {
    let ar = ApiResource::erase::<campaign::CouponCampaign>(&());
    let mut tasks = tokio::task::JoinSet::new();
    let objects = Arc::new(objects.to_vec());
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    for _ in 0..32 {
        let (client, ar, objects, next) = (client.clone(), ar.clone(), objects.clone(), next.clone());
        tasks.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(object) = objects.get(i) else { return Ok::<_, anyhow::Error>(()) };
                let ns = object["metadata"]["namespace"].as_str().unwrap_or("default");
                let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &ar);
                let dynamic: DynamicObject = serde_json::from_value(object.clone())?;
                loop {
                    match api.create(&PostParams::default(), &dynamic).await {
                        Ok(_) => break,
                        Err(kube::Error::Api(e)) if e.code == 409 && e.reason == "Conflict" => continue,
                        Err(e) => return Err(e.into()),
                    }
                }
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    Ok(())
}

/// Whether every campaign shows a status for its generation and has all its children.
async fn converged(client: &kube::Client, expected: usize) -> anyhow::Result<bool> {
    let ar = ApiResource::erase::<campaign::CouponCampaign>(&());
    let campaigns: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
    let list = campaigns.list(&Default::default()).await?;
    let done = list
        .items
        .iter()
        .filter(|c| {
            let status = c.data.get("status");
            let observed = status.and_then(|s| s.get("observedGeneration")).and_then(Value::as_i64);
            observed.is_some()
                && observed == c.metadata.generation
                && status
                    .and_then(|s| s.pointer("/conditions"))
                    .and_then(Value::as_array)
                    .is_some_and(|cs| cs.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
        })
        .count();
    Ok(done == expected)
}

/// The minimum writes of one campaign, sent straight to the stand-in: what the operator cannot
/// beat at this latency and concurrency.
async fn ceiling(url: &str, campaigns: u32, concurrency: usize) -> anyhow::Result<Duration> {
    let client = client(url)?;
    let started = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (client, next) = (client.clone(), next.clone());
        tasks.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= campaigns {
                    return Ok::<_, anyhow::Error>(());
                }
                let ns = format!("ceiling-{}", i % 10);
                for plural in ["configmaps", "services", "configmaps", "services", "configmaps", "services"] {
                    let api: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(client.clone(), &ns);
                    let name = format!("c-{i}-{plural}");
                    let body = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": ns}, "data": {"x": plural}});
                    loop {
                        match api.patch(&name, &kube::api::PatchParams::apply("ceiling").force(), &kube::api::Patch::Apply(&body)).await {
                            Ok(_) => break,
                            Err(kube::Error::Api(e)) if e.code == 409 => continue,
                            Err(e) => return Err(e.into()),
                        }
                    }
                }
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    Ok(started.elapsed())
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let n = args.campaigns;
    let open_count = ((f64::from(n) * args.open_share.clamp(0.0, 1.0)).round() as u32).min(n);
    let (_standin, url) = start_standin(&args.latency_ms, args.conflict_rate).await?;
    let seed = client(&url)?;
    let objects: Vec<Value> = (0..n).map(|i| campaign(i, i < open_count)).collect();
    create_all(&seed, &objects).await?;
    eprintln!(
        "{n} campaigns created in the stand-in ({open_count} open now); starting the operator (RSS so far {:.1} MiB)",
        current_rss_mib()
    );

    let operator_client = client(&url)?;
    let watches = ChildWatches::new(&operator_client, &crate::config::Scope::cluster());
    let counters = Counters::default();
    let ctx = Arc::new(Context::new(
        operator_client,
        WorkloadConfig::example(),
        Arc::new(Utc::now),
        watches.stores.clone(),
        counters.clone(),
        None,
    ));
    let (poke, pokes) = mpsc::unbounded_channel::<ObjectRef<DynamicObject>>();
    let pokes = futures::stream::unfold(pokes, |mut rx| async move { rx.recv().await.map(|r| (r, rx)) });
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let started = Instant::now();
    let controller = tokio::spawn(controller::run(ctx.clone(), watches, pokes, Readiness::default(), async move {
        let _ = stopped.await;
    }));
    while !converged(&seed, n as usize).await? {
        anyhow::ensure!(started.elapsed() < Duration::from_secs(600), "no convergence within 10 minutes");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let converge = started.elapsed();
    let reconciles = ctx.reconciles.load(Ordering::Relaxed);
    eprintln!(
        "converged in {:.2} s ({reconciles} reconciles); RSS {:.1} MiB, peak {:.1} MiB",
        converge.as_secs_f64(),
        current_rss_mib(),
        peak_rss_mib()
    );

    // Steady: every campaign looked at again, the open ones with counters once a second.
    let writes_before = ctx.writes.children.load(Ordering::Relaxed);
    let status_before = ctx.writes.status.load(Ordering::Relaxed);
    let ar = ApiResource::erase::<campaign::CouponCampaign>(&());
    let refs: Vec<ObjectRef<DynamicObject>> = objects
        .iter()
        .map(|o| {
            ObjectRef::new_with(o["metadata"]["name"].as_str().unwrap_or(""), ar.clone())
                .within(o["metadata"]["namespace"].as_str().unwrap_or(""))
        })
        .collect();
    // The issuers' counts name the campaign by its uid, which the API server gave it.
    let listed: Api<DynamicObject> = Api::all_with(seed.clone(), &ar);
    let uids: std::collections::HashMap<(String, String), String> = listed
        .list(&Default::default())
        .await?
        .items
        .into_iter()
        .map(|c| {
            (
                (c.metadata.namespace.unwrap_or_default(), c.metadata.name.unwrap_or_default()),
                c.metadata.uid.unwrap_or_default(),
            )
        })
        .collect();
    let steady_started = Instant::now();
    let mut issued = 0u64;
    while steady_started.elapsed() < Duration::from_secs(args.steady_seconds) {
        issued += 5;
        let now = Utc::now();
        for o in objects.iter().take(open_count as usize) {
            let (ns, name) =
                (o["metadata"]["namespace"].as_str().unwrap_or(""), o["metadata"]["name"].as_str().unwrap_or(""));
            let uid = uids.get(&(ns.to_owned(), name.to_owned())).map_or("", String::as_str);
            counters.record(
                uid,
                Snapshot {
                    day: now.date_naive(),
                    issued_today: issued,
                    remaining_today: Some(1000 - issued.min(999)),
                    issued_total: issued,
                    at: now,
                },
            );
            let _ = poke.send(ObjectRef::new_with(name, ar.clone()).within(ns));
        }
        // The scheduled ones are looked at again too (as a resync would), and must write nothing.
        for r in refs.iter().skip(open_count as usize).step_by(10) {
            let _ = poke.send(r.clone());
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let steady = steady_started.elapsed();
    let child_writes = ctx.writes.children.load(Ordering::Relaxed) - writes_before;
    let status_writes = ctx.writes.status.load(Ordering::Relaxed) - status_before;
    let per_minute = status_writes as f64 * 60.0 / steady.as_secs_f64();
    let per_open_per_minute = if open_count > 0 { per_minute / f64::from(open_count) } else { 0.0 };
    let _ = stop.send(());
    let _ = controller.await;
    let rss = peak_rss_mib();

    // The end: every campaign has its own children, owned by it, and nothing else exists.
    audit(&seed, &objects, open_count).await?;
    let ceiling = ceiling(&url, n, 64).await?;

    let converge_s = converge.as_secs_f64();
    let result = json!({
        "campaigns": n,
        "open": open_count,
        "converge_s": round(converge_s),
        "reconciles_per_s": round(reconciles as f64 / converge_s),
        "steady_writes_per_campaign": round(child_writes as f64 / f64::from(n)),
        "status_writes_per_min": round(per_minute),
        "status_writes_per_open_campaign_per_min": round(per_open_per_minute),
        "peak_rss_mib": round(rss),
        "ceiling_s": round(ceiling.as_secs_f64()),
        "ratio_to_ceiling": round(ceiling.as_secs_f64() / converge_s),
        "latency_ms": args.latency_ms,
        "conflict_rate": args.conflict_rate,
    });
    println!("campaigns                 {n} ({open_count} open, counters once a second)");
    println!(
        "converge                  {converge_s:.2} s   (ceiling: the same minimum writes straight to the stand-in {:.2} s; ratio {:.3})",
        ceiling.as_secs_f64(),
        ceiling.as_secs_f64() / converge_s
    );
    println!("reconciles/s              {:.1}", reconciles as f64 / converge_s);
    println!(
        "steady writes/campaign    {:.3}   ({child_writes} child writes in {:.0} s of steady state)",
        child_writes as f64 / f64::from(n),
        steady.as_secs_f64()
    );
    println!(
        "status writes/min         {per_minute:.1}   ({per_open_per_minute:.1} per open campaign; counts at most every {} s)",
        controller::STATUS_COUNTS_INTERVAL.as_secs()
    );
    println!("peak RSS (operator)       {rss:.1} MiB");
    println!("audit                     every campaign has exactly its own children, owned by it");
    if args.json {
        println!("{result}");
    }
    Ok(())
}

fn round(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

async fn audit(client: &kube::Client, objects: &[Value], open_count: u32) -> anyhow::Result<()> {
    let campaigns =
        Api::<DynamicObject>::all_with(client.clone(), &ApiResource::erase::<campaign::CouponCampaign>(&()))
            .list(&Default::default())
            .await?;
    let uids: std::collections::HashMap<String, String> = campaigns
        .items
        .iter()
        .map(|c| {
            (
                format!(
                    "{}/{}",
                    c.metadata.namespace.clone().unwrap_or_default(),
                    c.metadata.name.clone().unwrap_or_default()
                ),
                c.metadata.uid.clone().unwrap_or_default(),
            )
        })
        .collect();
    let deployments: Api<k8s_openapi::api::apps::v1::Deployment> = Api::all(client.clone());
    let hpas: Api<k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler> = Api::all(client.clone());
    let deployments = deployments.list(&Default::default()).await?.items;
    let hpas = hpas.list(&Default::default()).await?.items;
    anyhow::ensure!(
        deployments.len() == objects.len(),
        "{} deployments for {} campaigns",
        deployments.len(),
        objects.len()
    );
    anyhow::ensure!(hpas.len() == open_count as usize, "{} autoscalers for {open_count} open campaigns", hpas.len());
    for d in &deployments {
        let ns = d.metadata.namespace.clone().unwrap_or_default();
        let campaign = d
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(crate::children::CAMPAIGN_LABEL))
            .cloned()
            .unwrap_or_default();
        let owner = d.metadata.owner_references.as_ref().and_then(|o| o.first()).map(|o| o.uid.clone());
        let expected = uids.get(&format!("{ns}/{campaign}"));
        anyhow::ensure!(
            owner.as_ref() == expected,
            "deployment {ns}/{:?} is not owned by its campaign",
            d.metadata.name
        );
    }
    Ok(())
}
