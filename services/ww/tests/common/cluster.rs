//! A deployment in miniature for fault drills: two `ww serve coupon-issuer` processes
//! (the replicas an HPA would run behind the crowd) and a `ww serve coupon` process (the
//! persister), on PostgreSQL, Redis and Kafka. Every process can be killed with SIGKILL
//! and started again; the crowd talks HTTP to the replicas over real sockets; the audit
//! reads PostgreSQL in both directions once the row count is stable.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use campaign::{Campaign, CampaignSpec, CouponTemplate, Eligibility, MissionRequirement, Quota, Schedule};
use chrono::{NaiveTime, Utc};
use futures::StreamExt;
use platform::auth::JwtKeys;
use platform::config::KeyRing;
use platform::db::{Database, DatabaseUrl};
use uuid::Uuid;
use ww::bench::load;
use ww::bench::proc::{ChildProc, free_addr};

use super::RealEnv;

/// The producer's message timeout in the drills: outages are measured against it.
pub const MESSAGE_TIMEOUT_MS: u64 = 3000;

/// The environment of a drill's `ww` process on `env`: database `ww_test_<id>`, Redis keys and
/// Kafka topics prefixed by `id`, one local broker's replication settings, the producer timeout
/// the drills measure outages against, JWT key `drill`, JSON logs; `extra` on top (a later
/// variable wins).
pub fn drill_env(env: &RealEnv, id: &str, secret: &str, extra: &[(&str, String)]) -> Vec<(String, String)> {
    let log = std::env::var("RUST_LOG").unwrap_or_else(|_| "error".into());
    [
        ("WW_DATABASE_URL", format!("{}/ww_test_{id}", env.postgres)),
        ("WW_REDIS_URL", env.redis.clone()),
        ("WW_REDIS_KEY_PREFIX", format!("ww-test:{id}:")),
        ("WW_KAFKA_BROKERS", env.kafka.clone()),
        ("WW_KAFKA_PREFIX", format!("test-{id}.")),
        ("WW_KAFKA_REPLICATION_FACTOR", "1".into()),
        ("WW_KAFKA_MIN_INSYNC_REPLICAS", "1".into()),
        ("WW_KAFKA_PARTITIONS", "1".into()),
        ("WW_KAFKA_MESSAGE_TIMEOUT_MS", MESSAGE_TIMEOUT_MS.to_string()),
        ("WW_JWT_KEYS", format!("drill={secret}")),
        ("WW_LOG_FORMAT", "json".into()),
        ("RUST_LOG", log),
    ]
    .iter()
    .chain(extra.iter())
    .map(|(k, v)| ((*k).to_owned(), v.clone()))
    .collect()
}

pub struct Cluster {
    pub env: RealEnv,
    pub id: String,
    pub campaign: Campaign,
    file: std::path::PathBuf,
    _dir: tempfile::TempDir,
    secret: String,
    pub keys: JwtKeys,
    /// Replica addresses (fixed: a restarted replica comes back on its port).
    pub addrs: Vec<SocketAddr>,
    issuers: tokio::sync::Mutex<Vec<Option<ChildProc>>>,
    persister_addr: SocketAddr,
    persister: tokio::sync::Mutex<Option<ChildProc>>,
    /// Which replicas are up, for the crowd.
    up: Arc<RwLock<Vec<bool>>>,
}

/// Today (UTC), open all day, `daily` units, one per person, no mission needed.
pub fn campaign(daily: u32) -> Campaign {
    let today = Utc::now().date_naive();
    let spec = CampaignSpec {
        display_name: "Fault drill".into(),
        coupon: CouponTemplate { title: "Pass".into(), benefit: "One pass".into(), validity_days: 7 },
        schedule: Schedule {
            time_zone: "UTC".into(),
            start_date: today.pred_opt().unwrap(),
            end_date: today.succ_opt().unwrap(),
            opens_at: NaiveTime::from_hms_opt(0, 0, 0).unwrap(),
            closes_at: None,
        },
        quota: Quota { daily_quantity: daily, total_quantity: None, per_user: 1 },
        eligibility: Eligibility { mission: MissionRequirement::None },
        workload: Default::default(),
        suspend: false,
    };
    Campaign::new(&format!("f-{}", &Uuid::new_v4().simple().to_string()[..10]), spec).unwrap()
}

impl Cluster {
    /// Starts the persister and `replicas` issuers of `campaign` on `env`.
    pub async fn start(env: RealEnv, campaign: Campaign, replicas: usize) -> Self {
        let id = Uuid::new_v4().simple().to_string()[..12].to_owned();
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("campaign.yaml");
        // JSON is YAML: the resource as `kubectl apply` would take it.
        let resource = serde_json::json!({
            "apiVersion": "weatherwise.io/v1alpha1",
            "kind": "CouponCampaign",
            "metadata": {"name": campaign.name()},
            "spec": campaign.spec(),
        });
        std::fs::write(&file, resource.to_string()).unwrap();
        platform::db::create_postgres_database(&format!("{}/ww_test_{id}", env.postgres)).await.unwrap();
        let secret = format!("drill-secret-{}", Uuid::new_v4().simple());
        let keys =
            JwtKeys::new(&KeyRing(vec![("drill".into(), secret.clone().into_bytes())]), None, "weatherwise").unwrap();
        let cluster = Cluster {
            env,
            id,
            campaign,
            file,
            _dir: dir,
            secret,
            keys,
            addrs: (0..replicas).map(|_| free_addr().unwrap()).collect(),
            issuers: tokio::sync::Mutex::new((0..replicas).map(|_| None).collect()),
            persister_addr: free_addr().unwrap(),
            persister: tokio::sync::Mutex::new(None),
            up: Arc::new(RwLock::new(vec![false; replicas])),
        };
        cluster.start_persister().await;
        // Replicas starting together, as a rollout does.
        let starts = (0..replicas).map(|i| cluster.spawn_issuer(i));
        let started = futures::future::join_all(starts).await;
        for (i, proc) in started.into_iter().enumerate() {
            cluster.issuers.lock().await[i] = Some(proc);
            cluster.up.write().unwrap()[i] = true;
        }
        cluster
    }

    fn child_env(&self) -> Vec<(String, String)> {
        self.child_env_with(&[])
    }

    fn child_env_with(&self, extra: &[(&str, String)]) -> Vec<(String, String)> {
        let campaign =
            [("WW_CAMPAIGN", self.campaign.name().to_owned()), ("WW_CAMPAIGN_FILE", self.file.display().to_string())];
        drill_env(&self.env, &self.id, &self.secret, &[&campaign, extra].concat())
    }

    async fn spawn_issuer(&self, i: usize) -> ChildProc {
        let addr = self.addrs[i];
        let args: Vec<String> =
            ["serve", "coupon-issuer", "--listen", &addr.to_string()].iter().map(|s| (*s).to_owned()).collect();
        ChildProc::start_exe(&ww_exe(), &args, &self.child_env(), addr, "/readyz")
            .await
            .unwrap_or_else(|e| panic!("issuer replica {i} did not come up: {e:#}"))
    }

    /// SIGKILLs issuer replica `i`.
    pub async fn kill_issuer(&self, i: usize) {
        self.up.write().unwrap()[i] = false;
        let proc = self.issuers.lock().await[i].take();
        if let Some(p) = proc {
            p.stop().await;
        }
    }

    pub async fn start_issuer(&self, i: usize) {
        let proc = self.spawn_issuer(i).await;
        self.issuers.lock().await[i] = Some(proc);
        self.up.write().unwrap()[i] = true;
    }

    pub async fn start_persister(&self) {
        self.start_persister_with(&[]).await;
    }

    /// Starts the persister again after a crash. tansu 0.6 never rebalances a group whose
    /// member was SIGKILLed (on Kafka the group resumes after `session.timeout.ms`), so
    /// it joins a fresh group: it reads `coupons.issued` from the start again, which the
    /// idempotent inserts make harmless.
    pub async fn restart_persister_after_crash(&self) {
        eprintln!("tansu 0.6: the crashed persister's group does not rebalance; restarting it in a fresh group");
        let group = format!("test-{}.after-crash-{}.", self.id, Uuid::new_v4().simple());
        self.start_persister_with(&[("WW_KAFKA_GROUP_PREFIX", group)]).await;
    }

    async fn start_persister_with(&self, extra: &[(&str, String)]) {
        let addr = self.persister_addr;
        let args: Vec<String> =
            ["serve", "coupon", "--listen", &addr.to_string()].iter().map(|s| (*s).to_owned()).collect();
        let env = self.child_env_with(extra);
        let proc = ChildProc::start_exe(&ww_exe(), &args, &env, addr, "/readyz")
            .await
            .unwrap_or_else(|e| panic!("persister did not come up: {e:#}"));
        *self.persister.lock().await = Some(proc);
    }

    /// SIGKILLs the persister: no drain, no final offset commit.
    pub async fn kill_persister(&self) {
        let proc = self.persister.lock().await.take();
        if let Some(p) = proc {
            p.stop().await;
        }
    }

    pub async fn db(&self) -> Database {
        let url = DatabaseUrl::Postgres(format!("{}/ww_test_{}", self.env.postgres, self.id));
        Database::open(&url, coupon::SERVICE, 4, coupon::migrator()).await.unwrap()
    }

    fn token(&self, user: Uuid) -> String {
        self.keys.sign(user, Uuid::new_v4(), Utc::now(), Duration::from_secs(3600)).unwrap()
    }

    /// One attempt of `user` on replica `i` (or the next one up), bounded by `limit`.
    async fn attempt(&self, user: Uuid, token: &str, i: usize, limit: Duration) -> Attempt {
        let up = self.up.read().unwrap().clone();
        let Some(replica) = (0..up.len()).map(|k| (i + k) % up.len()).find(|k| up[*k]) else {
            return Attempt::Unreachable;
        };
        let addr = self.addrs[replica];
        let path = format!("/api/campaigns/{}/issue", self.campaign.name());
        let req = load::request("POST", addr, &path, Some(token), None);
        let _ = user;
        match tokio::time::timeout(limit, load::send_once(addr, req)).await {
            Err(_) => Attempt::GaveUp,
            Ok(Err(_)) => Attempt::Unreachable,
            Ok(Ok((status, body))) => Attempt::Answer(status, body),
        }
    }
}

enum Attempt {
    Answer(u16, serde_json::Value),
    /// The client stopped waiting (the request may still complete on the server).
    GaveUp,
    /// Connection refused or reset: the replica is down or went down mid-request.
    Unreachable,
}

/// The crowd's shape.
pub struct Crowd {
    pub people: usize,
    pub concurrency: usize,
    /// Every n-th person abandons their first request after `abandon_after` and comes
    /// back once the burst is over (0 = nobody does).
    pub abandon_every: usize,
    pub abandon_after: Duration,
}

impl Default for Crowd {
    fn default() -> Self {
        Self { people: 400, concurrency: 8, abandon_every: 0, abandon_after: Duration::from_millis(3) }
    }
}

/// What the crowd was told.
#[derive(Default, Debug)]
pub struct Told {
    pub coupons: HashSet<Uuid>,
    pub winners: HashMap<Uuid, Uuid>,
    pub statuses: HashMap<u16, usize>,
    pub abandoned: usize,
    pub unreachable: usize,
}

impl Crowd {
    /// Runs the crowd to the end: every person gets a final answer (201, 409 or 410);
    /// `progress` counts the 201s so a fault can strike mid-burst.
    pub async fn run(&self, cluster: &Cluster, progress: Arc<AtomicUsize>) -> Told {
        let people: Vec<(usize, Uuid, String)> = (0..self.people)
            .map(|i| {
                let u = Uuid::new_v4();
                (i, u, cluster.token(u))
            })
            .collect();
        let first: Vec<Outcome> = futures::stream::iter(people.clone())
            .map(|(i, user, token)| {
                let progress = progress.clone();
                let abandons = self.abandon_every > 0 && i % self.abandon_every == 0;
                async move {
                    if abandons {
                        match cluster.attempt(user, &token, i, self.abandon_after).await {
                            Attempt::GaveUp => return Outcome::abandoned(user),
                            Attempt::Answer(s, body) if is_final(s) => return Outcome::of(user, vec![s], &body),
                            _ => {}
                        }
                    }
                    let out = until_final(cluster, user, &token, i).await;
                    if out.statuses.last() == Some(&201) {
                        progress.fetch_add(1, Ordering::SeqCst);
                    }
                    out
                }
            })
            .buffer_unordered(self.concurrency)
            .collect()
            .await;
        // The people who gave up come back after the burst, as a person would.
        let mut told = Told::default();
        let tokens: HashMap<Uuid, (usize, String)> = people.into_iter().map(|(i, u, t)| (u, (i, t))).collect();
        for out in first {
            let out = if out.abandoned {
                told.abandoned += 1;
                let (i, token) = &tokens[&out.user];
                until_final(cluster, out.user, token, *i).await
            } else {
                out
            };
            told.unreachable += out.unreachable;
            for s in &out.statuses {
                *told.statuses.entry(*s).or_default() += 1;
            }
            if let Some(c) = out.coupon {
                told.coupons.insert(c);
                let previous = told.winners.insert(out.user, c);
                assert!(previous.is_none(), "{} answered twice", out.user);
            }
        }
        told
    }
}

struct Outcome {
    user: Uuid,
    statuses: Vec<u16>,
    coupon: Option<Uuid>,
    abandoned: bool,
    unreachable: usize,
}

impl Outcome {
    fn abandoned(user: Uuid) -> Self {
        Outcome { user, statuses: Vec::new(), coupon: None, abandoned: true, unreachable: 0 }
    }

    fn of(user: Uuid, statuses: Vec<u16>, body: &serde_json::Value) -> Self {
        let coupon = match statuses.last() {
            Some(201) => body["couponId"].as_str(),
            Some(409) => body["coupon"]["couponId"].as_str(),
            _ => None,
        }
        .and_then(|s| Uuid::parse_str(s).ok());
        Outcome { user, statuses, coupon, abandoned: false, unreachable: 0 }
    }
}

fn is_final(status: u16) -> bool {
    matches!(status, 201 | 409 | 410)
}

/// Retries (503, 429, a replica down) until a final answer; 120 s at most.
async fn until_final(cluster: &Cluster, user: Uuid, token: &str, i: usize) -> Outcome {
    let started = Instant::now();
    let mut statuses = Vec::new();
    let mut unreachable = 0;
    let mut k = 0;
    loop {
        match cluster.attempt(user, token, i + k, Duration::from_secs(30)).await {
            Attempt::Answer(s, body) if is_final(s) => {
                statuses.push(s);
                let mut out = Outcome::of(user, statuses, &body);
                out.unreachable = unreachable;
                return out;
            }
            Attempt::Answer(s @ (429 | 503), _) => statuses.push(s),
            Attempt::Answer(s, body) => panic!("unexpected {s} for {user}: {body}"),
            Attempt::GaveUp | Attempt::Unreachable => unreachable += 1,
        }
        assert!(started.elapsed() < Duration::from_secs(120), "{user} got no final answer in 120s: {statuses:?}");
        k += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until `progress` reached `n` (the fault strikes mid-burst).
pub async fn after_issued(progress: &AtomicUsize, n: usize) -> usize {
    let started = Instant::now();
    while progress.load(Ordering::SeqCst) < n {
        assert!(started.elapsed() < Duration::from_secs(60), "the burst never reached {n} coupons");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    progress.load(Ordering::SeqCst)
}

impl Cluster {
    /// The audit every drill ends with, once the persister's row count is stable: no
    /// oversell, no duplicate, every told coupon a row and every row told, the day sold
    /// out (nothing stranded), and every row's owner gets exactly that coupon back.
    pub async fn audit(&self, told: &Told) {
        let db = self.db().await;
        let name = self.campaign.name();
        let started = Instant::now();
        let (mut last, mut stable_since) = (-1, Instant::now());
        loop {
            let n = coupon::audit::stored_count(&db, name, "").await.unwrap();
            if n != last {
                (last, stable_since) = (n, Instant::now());
            }
            // Stable for 2 s and at least what the clients were told.
            if n >= told.coupons.len() as i64 && stable_since.elapsed() >= Duration::from_secs(2) {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "rows not stable after 120s: {n}, told {}",
                told.coupons.len()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let audit = coupon::audit::Told { coupons: told.coupons.clone() };
        let violations = coupon::audit::violations(&db, &self.campaign, &audit, None).await.unwrap();
        assert!(violations.is_empty(), "{violations:#?}\n{told:?}");
        let daily = self.campaign.spec().quota.daily_quantity as usize;
        assert_eq!(told.coupons.len(), daily, "sold out exactly, nothing stranded: {:?}", told.statuses);
        for row in coupon::audit::rows(&db, name, "").await.unwrap() {
            let token = self.token(row.user_id);
            let back = loop {
                match self.attempt(row.user_id, &token, 0, Duration::from_secs(30)).await {
                    Attempt::Answer(s, body) if is_final(s) => break (s, body),
                    _ => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            };
            assert_eq!(back.0, 409, "the owner of {} asked again: {}", row.coupon_id, back.1);
            assert_eq!(back.1["coupon"]["couponId"], row.coupon_id.to_string());
            // And from the steady-state coupon service, which answers once the issuers are gone
            // (the issuers announced the definition from their campaign file).
            let path = format!("/api/campaigns/{name}/issue");
            let from_coupon_service = loop {
                let req = load::request("POST", self.persister_addr, &path, Some(&token), None);
                match load::send_once(self.persister_addr, req).await {
                    Ok((status, body)) if status != 404 => break (status, body),
                    _ => {
                        assert!(started.elapsed() < Duration::from_secs(180), "the coupon service never knew {name}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            };
            assert_eq!(from_coupon_service.0, 409, "the coupon service told the owner: {}", from_coupon_service.1);
            assert_eq!(from_coupon_service.1["coupon"]["couponId"], row.coupon_id.to_string());
        }
        eprintln!(
            "drill audit: {} rows, {} told, statuses {:?}, {} abandoned first requests, {} unreachable attempts",
            last,
            told.coupons.len(),
            told.statuses,
            told.abandoned,
            told.unreachable
        );
    }
}

/// The `ww` binary the drills start: this build's, or `WW_TEST_WW_BIN` to run the same drills
/// against another build (how the closing notes show a drill failing on an earlier commit).
pub fn ww_exe() -> std::path::PathBuf {
    match std::env::var_os("WW_TEST_WW_BIN") {
        Some(path) => {
            eprintln!("drills run {} (WW_TEST_WW_BIN), not this build", std::path::Path::new(&path).display());
            path.into()
        }
        None => env!("CARGO_BIN_EXE_ww").into(),
    }
}
