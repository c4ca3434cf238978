//! `ww bench isolation`: the reason the platform exists, measured. In the system this replaced,
//! a coupon event's spike took login down with it. Here the steady-state roles and a campaign's
//! issuer are separate processes, each confined to its own CPU quota (Linux cgroups, as pods
//! with CPU limits are), on the same PostgreSQL, Redis and Kafka. A storm of issue requests hits
//! the issuer while login and `GET /api/users/me` run at a fixed rate; their p99 and throughput
//! are compared before and during the storm.
//!
//! The same run repeats three ways:
//! - `isolated`: steady roles, issuer and persister, each in its own cgroup;
//! - `isolated-dedicated-redis`: the same, with the issuer on its own Redis (as the chart
//!   allows);
//! - `isolated-own-cores`: the same again, with the steady roles on one CPU and the event workload
//!   (issuer, persister, their Redis and the storm's clients) on the other (cpusets), as
//!   `events.nodeSelector` gives event workloads nodes of their own;
//! - `monolith`: every role in one `ww serve` process, confined to the sum of those quotas. This
//!   is the shape of the old system.
//!
//! Each variant first measures the issuer's burst rate alone (the `ww bench coupon` burst
//! shape), and storms at no less than half of it. Every issued coupon is audited in SQL at the
//! end.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use chrono::Utc;
use hdrhistogram::Histogram;
use http_body_util::BodyExt;
use platform::auth::JwtKeys;
use platform::config::KeyRing;
use serde_json::json;
use uuid::Uuid;

use super::load;
use super::proc::{ChildProc, free_addr};

#[derive(Debug, clap::Args)]
pub struct IsolationBenchArgs {
    /// CPU (cores) of the steady-state roles' process (auth and user), as a pod limit.
    #[arg(long, default_value_t = 0.5)]
    pub steady_cpu: f64,
    /// CPU (cores) of the campaign's issuer process.
    #[arg(long, default_value_t = 0.5)]
    pub issuer_cpu: f64,
    /// CPU (cores) of the coupon persister (`ww serve coupon`).
    #[arg(long, default_value_t = 0.25)]
    pub persister_cpu: f64,
    /// Seconds of each measured phase.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(3..=120))]
    pub phase_seconds: u64,
    /// `GET /api/users/me` per second during the steady load (open loop).
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..=20_000))]
    pub me_rate: u64,
    /// Logins per second during the steady load (each an Argon2id hash).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(0..=200))]
    pub login_rate: u64,
    /// Connections of the storm.
    #[arg(long, default_value_t = 128, value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub storm_concurrency: u64,
    /// The storm's rate as a share of the issuer's burst rate alone (measured first in each
    /// variant): 1 storms as fast as the issuer answers; 0.5 is the least the benchmark accepts.
    #[arg(long, default_value_t = 1.0)]
    pub storm_fraction: f64,
    /// Run the storm's clients as `cpu.idle` (only CPU nothing else wants), so the load generator's
    /// own cost does not land on the cluster it loads, as clients elsewhere would not; the storm
    /// then slows when the cores are busy, and its burst rate is measured that way too.
    #[arg(long)]
    pub storm_idle: bool,
    /// Run only these variants (default: all).
    #[arg(long, value_delimiter = ',')]
    pub variants: Vec<String>,
    /// In the own-cores variant, also move this machine's PostgreSQL, Redis and Kafka broker
    /// processes to the event core for its duration (put back afterwards): the steady roles'
    /// core then holds nothing else, as a node of their own would. The backends stay shared.
    #[arg(long)]
    pub pin_backends: bool,
    #[command(flatten)]
    pub backends: super::BenchBackends,
    /// Print one JSON object with the figures as the last line.
    #[arg(long)]
    pub json: bool,
}

const CGROUP_CPU: &str = "/sys/fs/cgroup/cpu";
const CGROUP_V2: &str = "/sys/fs/cgroup/unified";
const PASSWORD: &str = "bench-password-rainy-day";
/// The weight of all confined processes together against everything outside them, in cores.
const PODS_WEIGHT: u64 = 16;
/// The variant with nodes of their own for steady and event workloads.
const OWN_CORES: &str = "isolated-own-cores";

/// A CPU quota for some processes, removed when dropped.
struct Quota {
    dir: PathBuf,
    cores: f64,
    /// Inside the pods' parent (removed with the last of its groups) rather than beside it.
    nested: bool,
}

impl Quota {
    /// A cgroup (v1 `cpu` controller, or v2 `cpu.max`) allowing `cores` of CPU.
    fn new(run_id: &str, name: &str, cores: f64) -> anyhow::Result<Self> {
        anyhow::ensure!(cores > 0.0 && cores <= 64.0, "{name}: {cores} cores is not a CPU limit");
        let period: u64 = 100_000;
        let quota = (cores * period as f64).round() as u64;
        let v1 = Path::new(CGROUP_CPU);
        // As the kubelet does: a limit is a quota; a request (here equal to the limit, the
        // Guaranteed class) is a weight, so a busy neighbour cannot take what was requested. The
        // pods' parent outweighs the processes outside it, as `kubepods` outweighs system daemons.
        let dir = if v1.join("cpu.cfs_quota_us").exists() {
            let parent = v1.join(format!("ww-bench-{run_id}"));
            let dir = parent.join(name);
            std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
            std::fs::write(parent.join("cpu.shares"), (PODS_WEIGHT * 1024).to_string())?;
            std::fs::write(dir.join("cpu.cfs_period_us"), period.to_string())?;
            std::fs::write(dir.join("cpu.cfs_quota_us"), quota.to_string())?;
            std::fs::write(dir.join("cpu.shares"), ((cores * 1024.0) as u64).max(2).to_string())?;
            dir
        } else {
            let root = [Path::new("/sys/fs/cgroup"), Path::new(CGROUP_V2)]
                .into_iter()
                .find(|p| p.join("cgroup.controllers").exists())
                .context("no writable cgroup CPU controller (v1 at /sys/fs/cgroup/cpu or v2 with cpu.max)")?;
            let parent = root.join(format!("ww-bench-{run_id}"));
            std::fs::create_dir_all(&parent)?;
            std::fs::write(root.join("cgroup.subtree_control"), "+cpu").ok();
            std::fs::write(parent.join("cgroup.subtree_control"), "+cpu")
                .context("cannot enable the cpu controller for the benchmark's cgroups")?;
            std::fs::write(parent.join("cpu.weight"), (PODS_WEIGHT * 100).to_string()).ok();
            let dir = parent.join(name);
            std::fs::create_dir_all(&dir)?;
            std::fs::write(dir.join("cpu.max"), format!("{quota} {period}"))?;
            std::fs::write(dir.join("cpu.weight"), ((cores * 100.0) as u64).clamp(1, 10_000).to_string()).ok();
            dir
        };
        Ok(Self { dir, cores, nested: true })
    }

    /// A group beside the pods for a load generator, which stands for people outside the
    /// cluster: their CPU is not the cluster's, but here it must come from the same cores.
    fn outside(run_id: &str, name: &str, weight: Outside) -> anyhow::Result<Self> {
        let v1 = Path::new(CGROUP_CPU);
        let root = if v1.join("cpu.cfs_quota_us").exists() {
            v1.to_path_buf()
        } else {
            [Path::new("/sys/fs/cgroup"), Path::new(CGROUP_V2)]
                .into_iter()
                .find(|p| p.join("cgroup.controllers").exists())
                .context("no writable cgroup CPU controller")?
                .to_path_buf()
        };
        let dir = root.join(format!("ww-bench-{run_id}-{name}"));
        std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let cores = match weight {
            Outside::Idle => {
                std::fs::write(dir.join("cpu.idle"), "1")
                    .with_context(|| format!("cannot mark {} idle (cpu.idle)", dir.display()))?;
                0
            }
            Outside::Process => 1,
            Outside::AllPods => PODS_WEIGHT,
        };
        if cores > 0 {
            if root == v1 {
                std::fs::write(dir.join("cpu.shares"), (cores * 1024).to_string())?;
            } else {
                std::fs::write(dir.join("cpu.weight"), (cores * 100).to_string())?;
            }
        }
        Ok(Self { dir, cores: 0.0, nested: false })
    }

    /// Moves the process `pid` (all its threads) into the quota and checks it is there.
    fn confine(&self, pid: u32, what: &str) -> anyhow::Result<String> {
        std::fs::write(self.dir.join("cgroup.procs"), pid.to_string())
            .with_context(|| format!("cannot move {what} (pid {pid}) into {}", self.dir.display()))?;
        let rel = self
            .dir
            .strip_prefix(CGROUP_CPU)
            .or_else(|_| self.dir.strip_prefix("/sys/fs/cgroup"))
            .or_else(|_| self.dir.strip_prefix(CGROUP_V2))
            .map(|p| format!("/{}", p.display()))
            .unwrap_or_default();
        let membership = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
        anyhow::ensure!(
            membership.lines().any(|l| l.ends_with(&rel)),
            "{what} (pid {pid}) is not in {rel} after the move: {membership}"
        );
        if !self.nested {
            // v1 `cpu.shares` (1024 a core), or v2 `cpu.weight` (100 a core) in the same units.
            let shares = std::fs::read_to_string(self.dir.join("cpu.shares"))
                .or_else(|_| {
                    std::fs::read_to_string(self.dir.join("cpu.weight"))
                        .map(|w| (w.trim().parse::<u64>().unwrap_or(0) * 1024 / 100).to_string())
                })
                .unwrap_or_default();
            let how = if std::fs::read_to_string(self.dir.join("cpu.idle")).is_ok_and(|v| v.trim() == "1") {
                "only CPU nothing else wants (cpu.idle)".to_owned()
            } else if shares.trim() == (PODS_WEIGHT * 1024).to_string() {
                "a weight equal to all the pods' together, no quota".to_owned()
            } else {
                format!("an ordinary process's weight ({}), no quota", shares.trim())
            };
            return Ok(format!("{what} (pid {pid}) outside the pods, given {how}, by {}", self.dir.display()));
        }
        Ok(format!(
            "{what} (pid {pid}) confined to {:.2} cores (quota; weight as requested) by {}",
            self.cores,
            self.dir.display()
        ))
    }

    /// How often the quota held its processes back.
    fn throttled(&self) -> u64 {
        let stat = std::fs::read_to_string(self.dir.join("cpu.stat")).unwrap_or_default();
        stat.lines().find_map(|l| l.strip_prefix("nr_throttled ").and_then(|n| n.trim().parse().ok())).unwrap_or(0)
    }
}

impl Drop for Quota {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.dir);
        if let Some(parent) = self.dir.parent().filter(|_| self.nested) {
            let _ = std::fs::remove_dir(parent);
        }
    }
}

/// How a load generator outside the pods shares the cores.
#[derive(Clone, Copy)]
enum Outside {
    /// Only CPU no other process wants (`cpu.idle`, as `SCHED_IDLE`): its own cost does not land
    /// on what it loads, but it slows when the cores are busy.
    Idle,
    /// As a process of its own outside any pod (the weight of one core).
    Process,
    /// As much as all the pods together: what it measures is the servers' delay, not its own.
    AllPods,
}

/// This process, the client measuring the steady roles, moved into a group (and a node, in the
/// own-cores variant) for a variant and put back where it was when dropped.
struct MeasuringClient {
    /// Removed after this process has left it.
    group: Quota,
    /// The cgroup directories (cpu, cpuset) this process was in before.
    back: Vec<PathBuf>,
}

impl MeasuringClient {
    fn place(run_id: &str, node: Option<&Pinned>, confinement: &mut Vec<String>) -> anyhow::Result<Self> {
        let pid = std::process::id();
        let mut back = vec![own_cgroup("cpu")?];
        if node.is_some() {
            back.push(own_cgroup("cpuset")?);
        }
        if let Some(missing) = back.iter().find(|dir| !dir.join("cgroup.procs").exists()) {
            anyhow::bail!(
                "cannot tell where to put this process back afterwards: {} does not exist",
                missing.display()
            );
        }
        // Built before any move, so that dropping it always moves this process back.
        let client = Self { group: Quota::outside(run_id, "measuring-client", Outside::AllPods)?, back };
        confinement.push(client.group.confine(pid, "the client measuring login and /me (this process)")?);
        if let Some(node) = node {
            confinement.push(format!("{}, beside the steady roles", node.pin(pid, "the measuring client")?));
        }
        Ok(client)
    }
}

impl Drop for MeasuringClient {
    fn drop(&mut self) {
        let pid = std::process::id().to_string();
        for dir in &self.back {
            if let Err(e) = std::fs::write(dir.join("cgroup.procs"), &pid) {
                eprintln!("warning: cannot move this process back to {}: {e}", dir.display());
            }
        }
    }
}

/// The directory of the cgroup v1 `controller` (or the v2 group) this process is in.
fn own_cgroup(controller: &str) -> anyhow::Result<PathBuf> {
    let membership = std::fs::read_to_string("/proc/self/cgroup")?;
    for line in membership.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next()) else { continue };
        let path = path.trim_start_matches('/');
        if controllers.split(',').any(|c| c == controller) {
            return Ok(Path::new("/sys/fs/cgroup").join(controller).join(path));
        }
        if controllers.is_empty() && controller == "cpu" && !Path::new(CGROUP_CPU).join("cpu.cfs_quota_us").exists() {
            let root = [Path::new("/sys/fs/cgroup"), Path::new(CGROUP_V2)]
                .into_iter()
                .find(|p| p.join("cgroup.controllers").exists())
                .context("no cgroup v2 root")?;
            return Ok(root.join(path));
        }
    }
    anyhow::bail!("this process is in no {controller} cgroup: {membership}")
}

/// The CPUs a group of processes may run on (cgroup v1 `cpuset`), removed when dropped: the
/// steady roles on one core and the event workload (issuer, persister, the storm's clients) on
/// the other, as `events.nodeSelector` puts event workloads on nodes of their own.
struct Pinned {
    dir: PathBuf,
    cpus: String,
}

impl Pinned {
    fn new(run_id: &str, name: &str, cpus: &str) -> anyhow::Result<Self> {
        let root = Path::new("/sys/fs/cgroup/cpuset");
        anyhow::ensure!(root.join("cpuset.cpus").exists(), "no cpuset controller at {}", root.display());
        let parent = root.join(format!("ww-bench-{run_id}"));
        std::fs::create_dir_all(&parent)?;
        let mems = std::fs::read_to_string(root.join("cpuset.mems"))?.trim().to_owned();
        std::fs::write(parent.join("cpuset.cpus"), std::fs::read_to_string(root.join("cpuset.cpus"))?.trim())?;
        std::fs::write(parent.join("cpuset.mems"), &mems)?;
        let dir = parent.join(name);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("cpuset.cpus"), cpus)?;
        std::fs::write(dir.join("cpuset.mems"), &mems)?;
        Ok(Self { dir, cpus: cpus.to_owned() })
    }

    fn pin(&self, pid: u32, what: &str) -> anyhow::Result<String> {
        std::fs::write(self.dir.join("cgroup.procs"), pid.to_string())
            .with_context(|| format!("cannot pin {what} (pid {pid}) to CPU {}", self.cpus))?;
        Ok(format!("{what} (pid {pid}) runs on CPU {}", self.cpus))
    }
}

impl Drop for Pinned {
    fn drop(&mut self) {
        // Processes leaving it (PostgreSQL connection backends closing) take a moment.
        for _ in 0..50 {
            if std::fs::remove_dir(&self.dir).is_ok() || !self.dir.exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        if let Some(parent) = self.dir.parent() {
            let _ = std::fs::remove_dir(parent);
        }
    }
}

/// The machine's backend processes, moved into a cpuset and moved back (to the root cpuset)
/// when dropped.
struct MovedBackends {
    pids: Vec<u32>,
    /// The cpuset they were moved to: processes they forked meanwhile (PostgreSQL's connection
    /// backends) are there too, and go back with them.
    dir: PathBuf,
}

impl MovedBackends {
    fn to(node: &Pinned) -> anyhow::Result<Self> {
        let mut pids = Vec::new();
        for entry in std::fs::read_dir("/proc")?.flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
            let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
            if matches!(comm.trim(), "postgres" | "redis-server" | "tansu") {
                // Whole thread groups; a process gone meanwhile is skipped.
                if node.pin(pid, comm.trim()).is_ok() {
                    pids.push(pid);
                }
            }
        }
        anyhow::ensure!(!pids.is_empty(), "no PostgreSQL, Redis or broker process found to move");
        Ok(Self { pids, dir: node.dir.clone() })
    }
}

impl Drop for MovedBackends {
    fn drop(&mut self) {
        let forked = std::fs::read_to_string(self.dir.join("cgroup.procs")).unwrap_or_default();
        let forked = forked.lines().filter_map(|l| l.trim().parse::<u32>().ok());
        for pid in self.pids.iter().copied().chain(forked) {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            if matches!(comm.trim(), "postgres" | "redis-server" | "tansu") {
                let _ = std::fs::write("/sys/fs/cgroup/cpuset/cgroup.procs", pid.to_string());
            }
        }
    }
}

/// Latencies of an open-loop load: each request scheduled at a fixed rate, its latency counted
/// from when it was due (so a slow answer delays and counts against the next ones).
#[derive(Default)]
struct Steady {
    me: Option<Histogram<u64>>,
    login: Option<Histogram<u64>>,
    me_ok: u64,
    login_ok: u64,
    failed: u64,
    seconds: f64,
}

impl Steady {
    fn p99(h: &Option<Histogram<u64>>) -> f64 {
        h.as_ref().map_or(0.0, |h| h.value_at_quantile(0.99) as f64 / 1000.0)
    }
}

/// `rate` requests a second, spread over `connections` keep-alive connections, for `seconds`.
async fn open_loop(
    addr: SocketAddr,
    rate: u64,
    connections: u64,
    seconds: Duration,
    make: Arc<dyn Fn(u64) -> hyper::Request<http_body_util::Full<Bytes>> + Send + Sync>,
) -> (Histogram<u64>, u64, u64) {
    let hist = Arc::new(Mutex::new(Histogram::<u64>::new_with_bounds(1, 120_000_000, 3).expect("bounds")));
    let ok = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let failed = Arc::new(std::sync::atomic::AtomicU64::new(0));
    if rate == 0 {
        return (Histogram::new(3).expect("histogram"), 0, 0);
    }
    let connections = connections.clamp(1, rate);
    let interval = Duration::from_secs_f64(connections as f64 / rate as f64);
    let start = Instant::now();
    let workers: Vec<_> = (0..connections)
        .map(|k| {
            let (hist, ok, failed, make) = (hist.clone(), ok.clone(), failed.clone(), make.clone());
            tokio::spawn(async move {
                let mut due = start + interval.mul_f64(k as f64 / connections as f64);
                let mut n = k;
                let mut sender: Option<hyper::client::conn::http1::SendRequest<http_body_util::Full<Bytes>>> = None;
                while due < start + seconds {
                    tokio::time::sleep_until(due.into()).await;
                    if sender.as_mut().is_none_or(|s| s.is_closed()) {
                        sender = load::connect(addr).await;
                    }
                    let answered = match sender.as_mut() {
                        Some(s) => match s.ready().await {
                            Ok(()) => match s.send_request(make(n)).await {
                                Ok(resp) => {
                                    let status = resp.status();
                                    let _ = resp.into_body().collect().await;
                                    status.is_success()
                                }
                                Err(_) => false,
                            },
                            Err(_) => false,
                        },
                        None => false,
                    };
                    let took = due.elapsed();
                    if answered {
                        ok.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let _ = hist
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .record(u64::try_from(took.as_micros()).unwrap_or(u64::MAX).max(1));
                    } else {
                        failed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        sender = None;
                    }
                    n += connections;
                    due += interval;
                }
            })
        })
        .collect();
    futures::future::join_all(workers).await;
    let hist = std::mem::replace(
        &mut *hist.lock().unwrap_or_else(std::sync::PoisonError::into_inner),
        Histogram::new(3).expect("histogram"),
    );
    (hist, ok.load(std::sync::atomic::Ordering::Relaxed), failed.load(std::sync::atomic::Ordering::Relaxed))
}

/// Login and `/me` at their rates, together, for `seconds`.
async fn steady_load(
    addr: SocketAddr,
    users: &Arc<Vec<(String, String)>>,
    me_rate: u64,
    login_rate: u64,
    seconds: Duration,
) -> Steady {
    let me_users = users.clone();
    let me = open_loop(
        addr,
        me_rate,
        16,
        seconds,
        Arc::new(move |n| {
            let (_, token) = &me_users[n as usize % me_users.len()];
            load::request("GET", addr, "/api/users/me", Some(token), None)
        }),
    );
    let login_users = users.clone();
    let login = open_loop(
        addr,
        login_rate,
        4,
        seconds,
        Arc::new(move |n| {
            let (email, _) = &login_users[n as usize % login_users.len()];
            load::request("POST", addr, "/api/auth/login", None, Some(&json!({"email": email, "password": PASSWORD})))
        }),
    );
    let ((me, me_ok, me_failed), (login, login_ok, login_failed)) = tokio::join!(me, login);
    Steady {
        me: Some(me),
        login: Some(login),
        me_ok,
        login_ok,
        failed: me_failed + login_failed,
        seconds: seconds.as_secs_f64(),
    }
}

struct Outcome {
    name: &'static str,
    before: Steady,
    during: Steady,
    burst_rps: f64,
    storm_rps: f64,
    issued: u64,
    violations: usize,
    confinement: Vec<String>,
    throttled: u64,
}

impl Outcome {
    fn ratio(&self) -> f64 {
        Steady::p99(&self.during.me) / Steady::p99(&self.before.me).max(1e-6)
    }
}

/// A Redis of the benchmark's own (for the issuers-only variant), stopped when dropped.
struct OwnRedis {
    child: std::process::Child,
    url: String,
}

impl OwnRedis {
    async fn start() -> anyhow::Result<Self> {
        let addr = free_addr()?;
        let child = std::process::Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &addr.port().to_string(), "--save", "", "--appendonly", "no"])
            .args(["--maxmemory-policy", "noeviction"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .context("cannot start a second redis-server for the issuer")?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(addr).await.is_err() {
            anyhow::ensure!(Instant::now() < deadline, "the issuer's own Redis did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(Self { child, url: format!("redis://{addr}/") })
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn variant(args: &IsolationBenchArgs, name: &'static str, secret: &str) -> anyhow::Result<Outcome> {
    eprintln!("\n== {name}");
    let run_id = Uuid::new_v4().simple().to_string()[..8].to_owned();
    let campaign = format!("storm-{run_id}");
    let (dir, file) = super::open_campaign_file(&run_id, &campaign, 10_000_000)?;
    let env = args.backends.issuer_env(
        &run_id,
        secret,
        &campaign,
        &file,
        &[
            ("WW_LOGIN_MAX_PER_ADDRESS", "100000000".to_owned()),
            ("WW_TRUSTED_PROXIES", "none".to_owned()),
            ("WW_WEATHER_PROVIDER", "simulated".to_owned()),
        ],
    );
    let argv = |a: &[&str]| a.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    let mut children = Vec::new();
    let mut quotas = Vec::new();
    let mut confinement = Vec::new();
    let own_redis =
        if name == "isolated-dedicated-redis" || name == OWN_CORES { Some(OwnRedis::start().await?) } else { None };
    // Own cores: the steady roles on CPU 0, the event workload (and the storm's clients) on CPU 1.
    let pins = if name == OWN_CORES {
        Some((Pinned::new(&run_id, "steady-node", "0")?, Pinned::new(&run_id, "event-node", "1")?))
    } else {
        None
    };
    if let (Some((_, events)), Some(redis)) = (&pins, &own_redis) {
        confinement.push(events.pin(redis.child.id(), "the issuers' own redis-server")?);
    }
    // The shared backends off the steady core, for this variant only (put back when dropped).
    let moved = match (&pins, args.pin_backends) {
        (Some((_, events)), true) => {
            let moved = MovedBackends::to(events)?;
            confinement.push(format!(
                "{} backend processes (PostgreSQL, Redis, the broker) moved to CPU {}",
                moved.pids.len(),
                events.cpus
            ));
            Some(moved)
        }
        _ => None,
    };
    let (steady_addr, issuer_addr) = if name == "monolith" {
        let addr = free_addr()?;
        let roles =
            ["auth", "user", "coupon", "coupon-issuer", "weather", "mission", "created-mission", "board", "web"];
        let mut a = vec!["serve"];
        a.extend(roles);
        let listen = addr.to_string();
        a.extend(["--listen", &listen]);
        eprintln!("starting `ww serve {}` (every role in one process, as the old system ran)…", roles.join(" "));
        let child = ChildProc::start(&argv(&a), &env, addr, "/readyz").await?;
        let quota = Quota::new(&run_id, "monolith", args.steady_cpu + args.issuer_cpu + args.persister_cpu)?;
        confinement.push(quota.confine(child.pid().context("pid")?, "ww serve (every role)")?);
        quotas.push(quota);
        children.push(child);
        (addr, addr)
    } else {
        let (steady, issuer, persister) = (free_addr()?, free_addr()?, free_addr()?);
        let mut issuer_env = env.clone();
        if let Some(redis) = &own_redis {
            issuer_env.retain(|(k, _)| k != "WW_REDIS_URL");
            issuer_env.push(("WW_REDIS_URL".to_owned(), redis.url.clone()));
        }
        let procs = [
            (
                "steady",
                args.steady_cpu,
                argv(&["serve", "auth", "user", "--listen", &steady.to_string()]),
                &env,
                steady,
                "ww serve auth user",
            ),
            (
                "issuer",
                args.issuer_cpu,
                argv(&["serve", "coupon-issuer", "--listen", &issuer.to_string()]),
                &issuer_env,
                issuer,
                "ww serve coupon-issuer",
            ),
            (
                "persister",
                args.persister_cpu,
                argv(&["serve", "coupon", "--listen", &persister.to_string()]),
                &env,
                persister,
                "ww serve coupon",
            ),
        ];
        for (group, cores, a, env, addr, what) in procs {
            eprintln!("starting `{what}`…");
            let child = ChildProc::start(&a, env, addr, "/readyz").await?;
            let quota = Quota::new(&run_id, group, cores)?;
            let pid = child.pid().context("pid")?;
            confinement.push(quota.confine(pid, what)?);
            if let Some((steady_node, event_node)) = &pins {
                let node = if group == "steady" { steady_node } else { event_node };
                confinement.push(node.pin(pid, what)?);
            }
            quotas.push(quota);
            children.push(child);
        }
        (steady, issuer)
    };
    // The load generators stand for people outside the cluster (see `Quota::outside`).
    let measuring = MeasuringClient::place(&run_id, pins.as_ref().map(|(steady, _)| steady), &mut confinement)?;
    let storm_group =
        Quota::outside(&run_id, "storm-clients", if args.storm_idle { Outside::Idle } else { Outside::Process })?;
    confinement.push(format!(
        "the storm's clients (a process per storm{}) outside the pods, {}, by {}",
        if pins.is_some() { ", on the event node" } else { "" },
        if args.storm_idle {
            "given only CPU nothing else wants (cpu.idle)"
        } else {
            "weighing as an ordinary process (one core's weight, no quota)"
        },
        storm_group.dir.display()
    ));
    for line in &confinement {
        eprintln!("  {line}");
    }

    // People for the steady load (real signups: their profiles exist), tokens for the storm.
    let mut users = Vec::new();
    for i in 0..16 {
        let email = format!("iso-{run_id}-{i}@example.com");
        let (status, body) = load::post_once(
            steady_addr,
            "/api/auth/signup",
            &json!({"email": email, "password": PASSWORD, "nickname": format!("iso{i}")}),
        )
        .await?;
        anyhow::ensure!(status == 201, "signup answered {status}: {body}");
        let (status, body) =
            load::post_once(steady_addr, "/api/auth/login", &json!({"email": email, "password": PASSWORD})).await?;
        anyhow::ensure!(status == 200, "login answered {status}: {body}");
        users.push((email, body["accessToken"].as_str().context("accessToken")?.to_owned()));
    }
    // Profiles are built from the signup events: wait until /me answers for all.
    let deadline = Instant::now() + Duration::from_secs(60);
    for (_, token) in &users {
        while load::get_once(steady_addr, "/api/users/me", Some(token)).await?.1["status"] != "active" {
            anyhow::ensure!(Instant::now() < deadline, "profiles were not built within 60 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let users = Arc::new(users);
    let seconds = Duration::from_secs(args.phase_seconds);
    let mut told = HashSet::<Uuid>::new();
    let event_node = pins.as_ref().map(|(_, events)| events);
    let storm_clients = &storm_group;
    let storm = |duration: Duration, rate: Option<f64>| {
        let (campaign, secret, run_id) = (campaign.clone(), secret.to_owned(), run_id.clone());
        let concurrency = args.storm_concurrency;
        async move {
            let plan = StormPlan {
                target: issuer_addr,
                campaign: &campaign,
                secret: &secret,
                run_id: &run_id,
                concurrency,
                group: storm_clients,
                node: event_node,
            };
            storm_from_process(&plan, duration, rate).await
        }
    };

    eprintln!("the issuer's burst rate alone ({} s)…", seconds.as_secs());
    let alone = storm(seconds, None).await?;
    let burst_rps = alone.rps();
    eprintln!("  {burst_rps:.0} req/s ({:?})", alone.statuses);
    told.extend(alone.coupons.iter().copied());
    // At least half the burst rate, as the benchmark requires; 1 (the default) storms unpaced.
    let rate = (args.storm_fraction < 1.0).then(|| burst_rps * args.storm_fraction.max(0.5));
    eprintln!(
        "steady load before the storm: {} /me/s and {} logins/s for {} s…",
        args.me_rate,
        args.login_rate,
        seconds.as_secs()
    );
    let before = steady_load(steady_addr, &users, args.me_rate, args.login_rate, seconds).await;
    eprintln!("the same during the storm…");
    let throttled_before: u64 = quotas.iter().map(Quota::throttled).sum();
    let (during, storm_stats) =
        tokio::join!(steady_load(steady_addr, &users, args.me_rate, args.login_rate, seconds), storm(seconds, rate));
    let storm_stats = storm_stats?;
    told.extend(storm_stats.coupons.iter().copied());
    let throttled = quotas.iter().map(Quota::throttled).sum::<u64>() - throttled_before;
    let storm_rps = storm_stats.rps();
    let issued = alone.issued() + storm_stats.issued();

    // Every coupon answered 201 was stored, once, within the rules.
    eprintln!("auditing {issued} issued coupons in PostgreSQL…");
    let violations = args.backends.audit_coupons(&file, told, issued, None).await?;
    for v in violations.iter().take(10) {
        eprintln!("  violation: {v}");
    }
    for child in children {
        child.stop().await;
    }
    drop(quotas);
    drop(measuring);
    drop(storm_group);
    drop(own_redis);
    drop(moved);
    drop(pins);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(Outcome {
        name,
        before,
        during,
        burst_rps,
        storm_rps,
        issued,
        violations: violations.len(),
        confinement,
        throttled,
    })
}

pub async fn run(args: IsolationBenchArgs) -> anyhow::Result<()> {
    platform::db::create_postgres_database(&args.backends.database_url)
        .await
        .context("cannot prepare the benchmark database")?;
    let secret = super::new_secret();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut all = vec!["isolated", "isolated-dedicated-redis"];
    if cores >= 2 {
        all.push(OWN_CORES);
    }
    all.push("monolith");
    let chosen: Vec<&'static str> =
        all.iter().copied().filter(|v| args.variants.is_empty() || args.variants.iter().any(|c| c == v)).collect();
    anyhow::ensure!(!chosen.is_empty(), "--variants: choose from {}", all.join(", "));
    let mut outcomes = Vec::new();
    for name in chosen {
        outcomes.push(variant(&args, name, &secret).await?);
    }

    println!(
        "\nww bench isolation — steady roles {:.2} cores, issuer {:.2}, persister {:.2} (monolith: {:.2} in one process); {} /me/s + {} logins/s; storm at concurrency {}; {} s phases",
        args.steady_cpu,
        args.issuer_cpu,
        args.persister_cpu,
        args.steady_cpu + args.issuer_cpu + args.persister_cpu,
        args.me_rate,
        args.login_rate,
        args.storm_concurrency,
        args.phase_seconds
    );
    for o in &outcomes {
        println!("{}:", o.name);
        for line in &o.confinement {
            println!("  {line}");
        }
        let row = |label: &str, s: &Steady| {
            println!(
                "  {label:<15} /me p99 {:>8.2} ms ({:>6.0}/s)   login p99 {:>8.2} ms ({:>4.1}/s)   failed {}",
                Steady::p99(&s.me),
                s.me_ok as f64 / s.seconds,
                Steady::p99(&s.login),
                s.login_ok as f64 / s.seconds,
                s.failed
            );
        };
        row("before storm", &o.before);
        row("during storm", &o.during);
        println!(
            "  storm {:.0} req/s = {:.2} of the issuer's burst rate alone ({:.0} req/s); /me p99 ratio during/before {:.2}; quotas throttled {} times; {} issued, {} violations",
            o.storm_rps,
            o.storm_rps / o.burst_rps.max(1e-9),
            o.burst_rps,
            o.ratio(),
            o.throttled,
            o.issued,
            o.violations
        );
    }
    let find = |n: &str| outcomes.iter().find(|o| o.name == n);
    let isolated = find("isolated").or_else(|| outcomes.first()).context("no variant ran")?;
    let monolith = find("monolith");
    let dedicated = find("isolated-dedicated-redis");
    let own_cores = find(OWN_CORES);
    if let Some(m) = monolith {
        println!(
            "isolated ratio {:.2} (target ≤ 1.2) vs monolith ratio {:.2}: the storm costs login and /me {:.1}× less isolated",
            isolated.ratio(),
            m.ratio(),
            m.ratio() / isolated.ratio().max(1e-9)
        );
    }
    if args.json {
        let r = |x: f64| (x * 1000.0).round() / 1000.0;
        println!(
            "{}",
            json!({
                "steady_p99_before_ms": r(Steady::p99(&isolated.before.me)),
                "steady_p99_during_ms": r(Steady::p99(&isolated.during.me)),
                "isolated_ratio": r(isolated.ratio()),
                "monolith_ratio": monolith.map(|m| r(m.ratio())),
                "dedicated_redis_ratio": dedicated.map(|d| r(d.ratio())),
                "own_cores_ratio": own_cores.map(|d| r(d.ratio())),
                "own_cores_steady_p99_during_ms": own_cores.map(|d| r(Steady::p99(&d.during.me))),
                "storm_rps": r(isolated.storm_rps),
                "coupon_burst_rps": r(isolated.burst_rps),
                "login_p99_before_ms": r(Steady::p99(&isolated.before.login)),
                "login_p99_during_ms": r(Steady::p99(&isolated.during.login)),
                "me_rps_before": r(isolated.before.me_ok as f64 / isolated.before.seconds),
                "me_rps_during": r(isolated.during.me_ok as f64 / isolated.during.seconds),
                "monolith_steady_p99_before_ms": monolith.map(|m| r(Steady::p99(&m.before.me))),
                "monolith_steady_p99_during_ms": monolith.map(|m| r(Steady::p99(&m.during.me))),
                "monolith_storm_rps": monolith.map(|m| r(m.storm_rps)),
                "issued": outcomes.iter().map(|o| o.issued).sum::<u64>(),
                "violations": outcomes.iter().map(|o| o.violations).sum::<usize>(),
                "steady_cpu": args.steady_cpu,
                "issuer_cpu": args.issuer_cpu,
                "persister_cpu": args.persister_cpu,
            })
        );
    }
    let violations: usize = outcomes.iter().map(|o| o.violations).sum();
    anyhow::ensure!(violations == 0, "the audit found {violations} violations");
    for o in &outcomes {
        anyhow::ensure!(
            o.storm_rps >= 0.5 * o.burst_rps,
            "{}: the storm ran at {:.0} req/s, under half the burst rate {:.0}",
            o.name,
            o.storm_rps,
            o.burst_rps
        );
    }
    Ok(())
}

/// `ww internal storm`: issue requests for a while, each as a new person, from this process.
#[derive(Debug, clap::Args)]
pub struct StormArgs {
    #[arg(long)]
    pub target: SocketAddr,
    #[arg(long)]
    pub campaign: String,
    #[arg(long)]
    pub concurrency: u64,
    #[arg(long)]
    pub millis: u64,
    /// Requests a second in all (default: as fast as answered).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Where the figures and the coupons told (JSON) are written.
    #[arg(long)]
    pub out: PathBuf,
    /// The token signing secret (key id `bench`).
    #[arg(long, env = "WW_STORM_SECRET", hide_env_values = true)]
    pub secret: String,
}

/// What one storm did.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct StormReport {
    statuses: std::collections::BTreeMap<u16, u64>,
    errors: u64,
    seconds: f64,
    coupons: Vec<Uuid>,
}

impl StormReport {
    fn rps(&self) -> f64 {
        self.statuses.values().sum::<u64>() as f64 / self.seconds.max(1e-9)
    }

    fn issued(&self) -> u64 {
        self.statuses.get(&201).copied().unwrap_or(0)
    }
}

pub async fn storm_process(args: StormArgs) -> anyhow::Result<()> {
    let keys = Arc::new(JwtKeys::new(
        &KeyRing(vec![("bench".into(), args.secret.clone().into_bytes())]),
        None,
        "weatherwise",
    )?);
    let path = format!("/api/campaigns/{}/issue", args.campaign);
    let target = args.target;
    // Paced: each connection sends at its share of the rate.
    let pace = args.rate.map(|r| Duration::from_secs_f64(args.concurrency as f64 / r.max(1e-3)));
    let make: load::MakeRequest = Arc::new(move |_, _| {
        // A new person each time (the burst's crowd), with a token the services accept.
        let token = keys.sign(Uuid::new_v4(), Uuid::new_v4(), Utc::now(), Duration::from_secs(600)).unwrap_or_default();
        load::request("POST", target, &path, Some(&token), None)
    });
    let told = Arc::new(Mutex::new(Vec::<Uuid>::new()));
    let seen = told.clone();
    let observe: load::Observe = Arc::new(move |_, status, body: &Bytes, _| {
        let coupon = match status {
            201 => serde_json::from_slice::<serde_json::Value>(body).ok().map(|v| v["couponId"].clone()),
            409 => serde_json::from_slice::<serde_json::Value>(body).ok().map(|v| v["coupon"]["couponId"].clone()),
            _ => None,
        };
        if let Some(id) = coupon.as_ref().and_then(|v| v.as_str()).and_then(|s| Uuid::parse_str(s).ok()) {
            seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(id);
        }
    });
    let stats = load::run_observed(
        target,
        args.concurrency as usize,
        Duration::from_millis(args.millis),
        make,
        Some(observe),
        pace,
    )
    .await;
    let coupons = std::mem::take(&mut *told.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
    let report =
        StormReport { statuses: stats.statuses, errors: stats.errors, seconds: stats.elapsed.as_secs_f64(), coupons };
    std::fs::write(&args.out, serde_json::to_vec(&report)?)?;
    Ok(())
}

/// Where a storm goes and as whom.
struct StormPlan<'a> {
    target: SocketAddr,
    campaign: &'a str,
    secret: &'a str,
    run_id: &'a str,
    concurrency: u64,
    /// The storm's clients' group, outside the pods.
    group: &'a Quota,
    /// The event workload's node, in the own-cores variant.
    node: Option<&'a Pinned>,
}

/// Runs `ww internal storm` as a process of its own and reads what it did.
async fn storm_from_process(
    plan: &StormPlan<'_>,
    duration: Duration,
    rate: Option<f64>,
) -> anyhow::Result<StormReport> {
    let StormPlan { target, campaign, secret, run_id, concurrency, group, node } = *plan;
    let out = std::env::temp_dir().join(format!("ww-storm-{run_id}-{}.json", Uuid::new_v4().simple()));
    let mut child = tokio::process::Command::new(std::env::current_exe()?)
        .args(["internal", "storm", "--target", &target.to_string(), "--campaign", campaign])
        .args(["--concurrency", &concurrency.to_string(), "--millis", &duration.as_millis().to_string()])
        .args(rate.map(|r| vec!["--rate".to_owned(), format!("{r:.1}")]).unwrap_or_default())
        .arg("--out")
        .arg(&out)
        .env("WW_STORM_SECRET", secret)
        .kill_on_drop(true)
        .spawn()
        .context("cannot start the storm process")?;
    let pid = child.id().context("the storm process has no pid")?;
    group.confine(pid, "the storm's clients")?;
    if let Some(node) = node {
        node.pin(pid, "the storm's clients")?;
    }
    let status = child.wait().await?;
    anyhow::ensure!(status.success(), "the storm process failed: {status}");
    let report: StormReport = serde_json::from_slice(&std::fs::read(&out)?)?;
    let _ = std::fs::remove_file(&out);
    Ok(report)
}
