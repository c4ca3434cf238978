//! `ww bench http`: `GET /api/users/me` with valid tokens at a fixed concurrency against
//! `ww serve auth user weather mission` on PostgreSQL, Redis and Kafka, beside the ceiling (a
//! minimal axum handler, same client, same run); `GET /api/weather` on a warm cache and `GET
//! /api/missions/today` (stored days), each beside a ceiling answering a body of the same size;
//! then login throughput (Argon2id-bound).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde_json::json;

use super::load::{self, Stats};
use super::proc::{ChildProc, free_addr};

#[derive(Debug, clap::Args)]
pub struct HttpBenchArgs {
    /// Seconds each measured phase runs.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=300))]
    pub duration_seconds: u64,
    /// Concurrent connections for `/api/users/me` and the ceiling.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub concurrency: u64,
    /// Concurrent connections for login.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=256))]
    pub login_concurrency: u64,
    /// Distinct users whose tokens the `/me` load rotates through.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub users: u64,
    #[command(flatten)]
    pub backends: super::BenchBackends,
    /// Print one JSON object with the figures as the last line.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(args: HttpBenchArgs) -> anyhow::Result<()> {
    let duration = Duration::from_secs(args.duration_seconds);
    platform::db::create_postgres_database(&args.backends.database_url)
        .await
        .with_context(|| format!("cannot prepare the benchmark database {}", args.backends.database_url))?;
    let run_id = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let secret = super::new_secret();
    let service_addr = free_addr()?;
    let env = args.backends.child_env(
        &run_id,
        &secret,
        &[
            ("WW_LOGIN_MAX_PER_ADDRESS", "100000000".to_owned()),
            ("WW_TRUSTED_PROXIES", "none".to_owned()),
            // No network here: the weather is simulated (the cache and the service are what is measured).
            ("WW_WEATHER_PROVIDER", "simulated".to_owned()),
        ],
    );
    let serve_args =
        ["serve", "auth", "user", "weather", "mission", "--listen", &service_addr.to_string()].map(str::to_owned);
    eprintln!("starting `ww serve auth user weather mission` on {service_addr} (PostgreSQL, Redis, Kafka)…");
    let service = ChildProc::start(&serve_args, &env, service_addr, "/readyz").await?;
    let ceiling_addr = free_addr()?;
    let ceiling_args = ["internal", "ceiling", "--listen", &ceiling_addr.to_string()].map(str::to_owned);
    let ceiling = ChildProc::start(&ceiling_args, &[], ceiling_addr, super::ceiling::PATH).await?;

    let password = "bench-password-rainy-day";
    let users = prepare_users(service_addr, &run_id, args.users, password).await?;
    let tokens: Arc<Vec<String>> = Arc::new(users.iter().map(|(_, t)| t.clone()).collect());
    let emails: Arc<Vec<String>> = Arc::new(users.iter().map(|(e, _)| e.clone()).collect());

    let concurrency = usize::try_from(args.concurrency)?;
    eprintln!("warming up…");
    let warm = Duration::from_secs(2);
    let _ = load::run(ceiling_addr, concurrency, warm, get_maker(ceiling_addr, super::ceiling::PATH, None)).await;
    let _ = load::run(service_addr, concurrency, warm, get_maker(service_addr, "/api/users/me", Some(tokens.clone())))
        .await;

    eprintln!("measuring the ceiling for {}s at concurrency {concurrency}…", duration.as_secs());
    let ceiling_stats =
        load::run(ceiling_addr, concurrency, duration, get_maker(ceiling_addr, super::ceiling::PATH, None)).await;
    eprintln!("measuring GET /api/users/me for {}s at concurrency {concurrency}…", duration.as_secs());
    let me_stats =
        load::run(service_addr, concurrency, duration, get_maker(service_addr, "/api/users/me", Some(tokens.clone())))
            .await;
    let app = app_phases(service_addr, ceiling_addr, &tokens, concurrency, duration).await?;
    let login_concurrency = usize::try_from(args.login_concurrency)?;
    eprintln!("measuring POST /api/auth/login for {}s at concurrency {login_concurrency}…", duration.as_secs());
    let login_stats = load::run(service_addr, login_concurrency, duration, {
        let emails = emails.clone();
        Arc::new(move |w, n| {
            let email = &emails[(w + n as usize * 7) % emails.len()];
            load::request(
                "POST",
                service_addr,
                "/api/auth/login",
                None,
                Some(&json!({"email": email, "password": password})),
            )
        })
    })
    .await;
    service.stop().await;
    ceiling.stop().await;

    let auth_defaults = auth::AuthConfig::default();
    let ratio = me_stats.count(200) as f64
        / duration_of(&me_stats)
        / (ceiling_stats.count(200) as f64 / duration_of(&ceiling_stats)).max(1e-9);
    println!(
        "ww bench http — {} cores, concurrency {concurrency}, {}s per phase",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        duration.as_secs()
    );
    print_row("ceiling (minimal axum)", &ceiling_stats);
    print_row("GET /api/users/me", &me_stats);
    print_row("POST /api/auth/login", &login_stats);
    println!("ratio /me ÷ ceiling (200s per second): {ratio:.3}   (target ≥ 0.5)");
    for phase in [&app.weather, &app.missions] {
        print_row(&format!("ceiling ({} B body)", phase.bytes), &phase.ceiling);
        print_row(phase.name, &phase.stats);
        println!("ratio {} ÷ its ceiling: {:.3}   (target ≥ 0.5)", phase.name, phase.ratio());
    }
    println!("login cost: {} (OWASP minimum; slow by design)", auth::describe_hash_cost(&auth_defaults));
    let healthy = [&me_stats, &app.weather.stats, &app.missions.stats]
        .iter()
        .all(|s| s.count(200) == s.answered() && s.errors == 0);
    if !healthy {
        println!(
            "WARNING: a measured endpoint answered non-200 statuses or failed: /me {:?} ({} errors), weather {:?}, missions {:?}",
            me_stats.statuses, me_stats.errors, app.weather.stats.statuses, app.missions.stats.statuses
        );
    }
    if args.json {
        let app_non_200: u64 =
            [&app.weather.stats, &app.missions.stats].iter().map(|s| s.answered() - s.count(200) + s.errors).sum();
        let summary = json!({
            "me_rps": round(me_stats.count(200) as f64 / duration_of(&me_stats)),
            "me_p50_ms": round(me_stats.ms(0.5)),
            "me_p99_ms": round(me_stats.ms(0.99)),
            "ceiling_rps": round(ceiling_stats.count(200) as f64 / duration_of(&ceiling_stats)),
            "ceiling_p99_ms": round(ceiling_stats.ms(0.99)),
            "ratio": round(ratio),
            "login_rps": round(login_stats.count(200) as f64 / duration_of(&login_stats)),
            "login_p99_ms": round(login_stats.ms(0.99)),
            "login_hash": auth::describe_hash_cost(&auth_defaults),
            "concurrency": concurrency,
            "login_concurrency": login_concurrency,
            "duration_s": duration.as_secs(),
            "me_non_200": me_stats.answered() - me_stats.count(200) + me_stats.errors,
            "weather_rps": round(app.weather.rps()),
            "weather_p99_ms": round(app.weather.stats.ms(0.99)),
            "weather_ratio": round(app.weather.ratio()),
            "weather_ceiling_rps": round(app.weather.ceiling_rps()),
            "weather_body_bytes": app.weather.bytes,
            "missions_rps": round(app.missions.rps()),
            "missions_p99_ms": round(app.missions.stats.ms(0.99)),
            "missions_ratio": round(app.missions.ratio()),
            "missions_ceiling_rps": round(app.missions.ceiling_rps()),
            "missions_body_bytes": app.missions.bytes,
            "app_non_200": app_non_200,
        });
        println!("{summary}");
    }
    Ok(())
}

/// One endpoint beside a ceiling answering as many bytes.
struct Phase {
    name: &'static str,
    bytes: usize,
    stats: Stats,
    ceiling: Stats,
}

impl Phase {
    fn rps(&self) -> f64 {
        self.stats.count(200) as f64 / duration_of(&self.stats)
    }

    fn ceiling_rps(&self) -> f64 {
        self.ceiling.count(200) as f64 / duration_of(&self.ceiling)
    }

    fn ratio(&self) -> f64 {
        self.rps() / self.ceiling_rps().max(1e-9)
    }
}

struct AppPhases {
    weather: Phase,
    missions: Phase,
}

/// Places the weather load rotates through (16 cells, warm in the cache once read).
const PLACES: [(f64, f64); 16] = [
    (37.5665, 126.978),
    (35.1796, 129.0756),
    (33.4996, 126.5312),
    (35.6762, 139.6503),
    (1.3521, 103.8198),
    (-33.8688, 151.2093),
    (51.5074, -0.1278),
    (48.8566, 2.3522),
    (52.52, 13.405),
    (40.7128, -74.006),
    (34.0522, -118.2437),
    (-23.5505, -46.6333),
    (19.4326, -99.1332),
    (55.7558, 37.6173),
    (28.6139, 77.209),
    (-1.2921, 36.8219),
];

/// Homes for every user (spread over the places), caches warm, every user's day stored; then
/// `GET /api/weather` and `GET /api/missions/today`, each beside the sized ceiling.
async fn app_phases(
    service: std::net::SocketAddr,
    ceiling: std::net::SocketAddr,
    tokens: &Arc<Vec<String>>,
    concurrency: usize,
    duration: Duration,
) -> anyhow::Result<AppPhases> {
    eprintln!("setting {} homes and waiting for the mission service to have them…", tokens.len());
    for (i, token) in tokens.iter().enumerate() {
        let (lat, lon) = PLACES[i % PLACES.len()];
        let body = json!({"homeLocation": {"lat": lat, "lon": lon}, "timeZone": "Asia/Seoul"});
        let (status, answer) =
            load::send_once(service, load::request("PATCH", service, "/api/users/me", Some(token), Some(&body)))
                .await?;
        anyhow::ensure!(status == 200, "PATCH /api/users/me answered {status}: {answer}");
    }
    let started = Instant::now();
    let mut missions_bytes = 0;
    for token in tokens.iter() {
        loop {
            let (status, body) =
                load::send_raw(service, load::request("GET", service, "/api/missions/today", Some(token), None))
                    .await?;
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            if status == 200 && !v["homeLocation"].is_null() && v["provisional"] == false {
                missions_bytes = body.len();
                break;
            }
            anyhow::ensure!(
                started.elapsed() < Duration::from_secs(60),
                "missions not chosen within 60 s ({status}: {v})"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let paths: Arc<Vec<String>> =
        Arc::new(PLACES.iter().map(|(lat, lon)| format!("/api/weather?lat={lat}&lon={lon}")).collect());
    let mut weather_bytes = 0;
    for path in paths.iter() {
        let (status, body) =
            load::send_raw(service, load::request("GET", service, path, Some(&tokens[0]), None)).await?;
        anyhow::ensure!(status == 200, "GET {path} answered {status}");
        weather_bytes = weather_bytes.max(body.len());
    }
    let weather_maker: load::MakeRequest = {
        let (paths, tokens) = (paths.clone(), tokens.clone());
        Arc::new(move |w, n| {
            let i = w + n as usize;
            load::request("GET", service, &paths[i % paths.len()], Some(&tokens[i % tokens.len()]), None)
        })
    };
    let sized = |bytes: usize| -> load::MakeRequest {
        let path = format!("{}/{bytes}", super::ceiling::SIZED);
        Arc::new(move |_, _| load::request("GET", ceiling, &path, None, None))
    };
    let mut phases = Vec::new();
    for (name, bytes, maker) in [
        ("GET /api/weather", weather_bytes, weather_maker),
        ("GET /api/missions/today", missions_bytes, get_maker(service, "/api/missions/today", Some(tokens.clone()))),
    ] {
        let _ = load::run(service, concurrency, Duration::from_secs(1), maker.clone()).await;
        eprintln!("measuring a ceiling answering {bytes} bytes, then {name}, {}s each…", duration.as_secs());
        let ceiling_stats = load::run(ceiling, concurrency, duration, sized(bytes)).await;
        let stats = load::run(service, concurrency, duration, maker).await;
        phases.push(Phase { name, bytes, stats, ceiling: ceiling_stats });
    }
    let missions = phases.pop().context("missions phase")?;
    let weather = phases.pop().context("weather phase")?;
    Ok(AppPhases { weather, missions })
}

fn duration_of(s: &Stats) -> f64 {
    s.elapsed.as_secs_f64().max(1e-9)
}

fn round(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn print_row(name: &str, s: &Stats) {
    println!(
        "{name:<24} {:>9.0} req/s   p50 {:>7.2} ms   p90 {:>7.2} ms   p99 {:>7.2} ms   max {:>8.2} ms   statuses {:?} errors {}",
        s.rps(),
        s.ms(0.5),
        s.ms(0.9),
        s.ms(0.99),
        s.ms(1.0),
        s.statuses,
        s.errors
    );
}

fn get_maker(addr: std::net::SocketAddr, path: &'static str, tokens: Option<Arc<Vec<String>>>) -> load::MakeRequest {
    Arc::new(move |w, n| {
        let token = tokens.as_ref().map(|t| t[(w + n as usize) % t.len()].as_str());
        load::request("GET", addr, path, token, None)
    })
}

/// Signs up `count` users, waits until their profiles exist (the signup event went
/// through Kafka to the user service) and logs each in. Returns (email, access token).
async fn prepare_users(
    addr: std::net::SocketAddr,
    run_id: &str,
    count: u64,
    password: &str,
) -> anyhow::Result<Vec<(String, String)>> {
    eprintln!("signing up {count} users…");
    let mut users = Vec::new();
    for i in 0..count {
        let email = format!("bench-{run_id}-{i}@example.com");
        let (status, body) = load::post_once(
            addr,
            "/api/auth/signup",
            &json!({"email": email, "password": password, "nickname": format!("bench{i}")}),
        )
        .await?;
        anyhow::ensure!(status == 201, "signup answered {status}: {body}");
        let (status, body) =
            load::post_once(addr, "/api/auth/login", &json!({"email": email, "password": password})).await?;
        anyhow::ensure!(status == 200, "login answered {status}: {body}");
        let token = body["accessToken"].as_str().context("no accessToken")?.to_owned();
        users.push((email, token));
    }
    let started = Instant::now();
    for (_, token) in &users {
        loop {
            let (status, body) = load::get_once(addr, "/api/users/me", Some(token)).await?;
            if status == 200 && body["status"] == "active" {
                break;
            }
            anyhow::ensure!(
                started.elapsed() < Duration::from_secs(60),
                "profiles not created within 60s (last answer {status}: {body})"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    eprintln!("profiles of {count} users created through Kafka in {:?}", started.elapsed());
    Ok(users)
}
