//! Test harness: the same app `ww` runs, on embedded backends (SQLite, event log,
//! in-memory counters) or on real PostgreSQL, Redis and Kafka, driven through
//! `Router::oneshot`.
#![allow(dead_code)]

pub mod campaigns;
pub mod cluster;
pub mod procs;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use http_body_util::BodyExt;
use platform::auth::JwtKeys;
use platform::clock::Clock;
use platform::config::KeyRing;
use platform::counters::Counters;
use platform::db::DatabaseUrl;
use platform::events::{EmbeddedBus, EventBus, KafkaBus, KafkaConfig};
use platform::http::{ForwardedPolicy, HttpSettings};
use platform::service::Context;
use serde_json::{Value, json};
use tokio::sync::watch;
use tower::ServiceExt;
use ww::cli::{ServiceConfig, ServiceName};

pub const PASSWORD: &str = "rainy-day-umbrella";
pub const SECRET: &str = "test-secret-test-secret-test-secret-0123";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Embedded,
    Real,
}

/// Connection settings of the real backends, from the environment `scripts/test.sh` sets.
#[derive(Clone)]
pub struct RealEnv {
    pub postgres: String,
    pub redis: String,
    pub kafka: String,
}

impl RealEnv {
    /// The real backends. A real-backend test without them fails: it never passes
    /// without running (build with `WW_TEST_NO_BACKENDS=1` to have them ignored instead).
    pub fn get() -> Self {
        Self {
            postgres: platform::testing::backend("WW_TEST_POSTGRES_URL"),
            redis: platform::testing::backend("WW_TEST_REDIS_URL"),
            kafka: platform::testing::backend("WW_TEST_KAFKA_BROKERS"),
        }
    }
}

/// A context on the real backends: database `ww_test_<id>` (created when missing), Redis
/// keys and Kafka topics prefixed by `id`. Several contexts with one `id` are replicas.
pub async fn real_context(
    env: &RealEnv,
    id: &str,
    clock: Clock,
    keys: Arc<JwtKeys>,
    stop: watch::Receiver<bool>,
) -> Context {
    let db_url = format!("{}/ww_test_{id}", env.postgres);
    platform::db::create_postgres_database(&db_url).await.expect("create test database");
    let kafka = KafkaConfig {
        kafka_brokers: Some(env.kafka.clone()),
        kafka_prefix: format!("test-{id}."),
        kafka_group_prefix: None,
        kafka_partitions: 1,
        kafka_replication_factor: 1,
        kafka_min_insync_replicas: 1,
        kafka_message_timeout_ms: 3000,
    };
    Context {
        database: DatabaseUrl::Postgres(db_url),
        db_max_connections: 8,
        counters: Counters::redis(&env.redis, &format!("ww-test:{id}:")).await.expect("redis"),
        bus: EventBus::Kafka(Arc::new(KafkaBus::new(&kafka).expect("kafka"))),
        keys,
        clock,
        forwarded: Arc::new(ForwardedPolicy::default()),
        stop,
    }
}

pub struct TestApp {
    pub router: Router,
    pub keys: Arc<JwtKeys>,
    pub ctx: Context,
    pub backend: Backend,
    /// Prefix of this app's Kafka topics and groups (real backend).
    pub kafka_prefix: String,
    stop: watch::Sender<bool>,
    _dir: Option<tempfile::TempDir>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
    /// The body's bytes as sent (for bodies that are not JSON).
    pub raw: bytes::Bytes,
}

impl Resp {
    pub fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or_default()
    }

    pub fn content_type(&self) -> &str {
        self.headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default()
    }
}

/// Service settings for tests: cheap hashing, default limits, simulated weather (no network).
pub fn fast_config() -> ServiceConfig {
    ServiceConfig {
        auth: auth::AuthConfig { argon2_memory_kib: 1024, argon2_iterations: 1, ..auth::AuthConfig::default() },
        weather: weather::WeatherConfig {
            weather_provider: Some(weather::ProviderKind::Simulated),
            ..weather::WeatherConfig::default()
        },
        data_dir: Some(std::env::temp_dir().join("ww-test-data")),
        ..ServiceConfig::default()
    }
}

pub fn test_keys() -> JwtKeys {
    JwtKeys::new(&KeyRing(vec![("test".to_owned(), SECRET.as_bytes().to_vec())]), None, "weatherwise").expect("keys")
}

impl TestApp {
    pub async fn embedded() -> Self {
        Self::start(Backend::Embedded, fast_config()).await.expect("embedded backends always exist")
    }

    pub async fn real() -> Option<Self> {
        Self::start(Backend::Real, fast_config()).await
    }

    pub async fn on(backend: Backend) -> Option<Self> {
        Self::start(backend, fast_config()).await
    }

    pub async fn start(backend: Backend, config: ServiceConfig) -> Option<Self> {
        Self::start_with(backend, config, Clock::System).await
    }

    /// Every steady-state service (issuers are started per test with [`TestApp::issuer`]).
    pub fn services() -> Vec<ServiceName> {
        vec![
            ServiceName::Auth,
            ServiceName::User,
            ServiceName::Coupon,
            ServiceName::Weather,
            ServiceName::Mission,
            ServiceName::CreatedMission,
            ServiceName::Board,
            ServiceName::Web,
            ServiceName::DevTools,
        ]
    }

    pub async fn start_with(backend: Backend, config: ServiceConfig, clock: Clock) -> Option<Self> {
        Self::start_custom(backend, config, clock, &Self::services(), None).await
    }

    /// Full control: which services run, and (real backend) which Redis and Kafka.
    pub async fn start_custom(
        backend: Backend,
        config: ServiceConfig,
        clock: Clock,
        services: &[ServiceName],
        env: Option<RealEnv>,
    ) -> Option<Self> {
        if std::env::var_os("RUST_LOG").is_some() {
            platform::telemetry::init(platform::telemetry::LogFormat::Pretty);
        }
        let (stop_tx, stop) = watch::channel(false);
        let keys = Arc::new(test_keys());
        let id = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
        let (ctx, dir, kafka_prefix) = match backend {
            Backend::Embedded => {
                let dir = tempfile::tempdir().expect("tempdir");
                let bus = EmbeddedBus::open(dir.path()).await.expect("event log");
                let ctx = Context {
                    database: DatabaseUrl::SqliteDir(dir.path().to_path_buf()),
                    db_max_connections: 4,
                    counters: Counters::memory(),
                    bus: EventBus::Embedded(Arc::new(bus)),
                    keys: keys.clone(),
                    clock: clock.clone(),
                    forwarded: Arc::new(ForwardedPolicy::default()),
                    stop,
                };
                (ctx, Some(dir), String::new())
            }
            Backend::Real => {
                let env = env.unwrap_or_else(RealEnv::get);
                let ctx = real_context(&env, &id, clock.clone(), keys.clone(), stop).await;
                (ctx, None, format!("test-{id}."))
            }
        };
        let settings = HttpSettings { max_body_bytes: 16 * 1024, ..HttpSettings::default() };
        let app = tokio::time::timeout(REQUEST_LIMIT, ww::app::build(services, &ctx, &config, &settings))
            .await
            .expect("the app starts within the request limit")
            .expect("app starts");
        Some(Self { router: app.server.router(), keys, ctx, backend, kafka_prefix, stop: stop_tx, _dir: dir })
    }

    /// A second replica of every service on the same backends (database, bus, Redis).
    pub async fn replica(&self, config: &ServiceConfig) -> Router {
        let app = tokio::time::timeout(
            REQUEST_LIMIT,
            ww::app::build(&Self::services(), &self.ctx, config, &HttpSettings::default()),
        )
        .await
        .expect("the replica starts within the request limit")
        .expect("replica starts");
        app.server.router()
    }

    /// An issuer for `campaign` on this app's backends, behind the shared HTTP stack.
    pub async fn issuer(&self, campaign: campaign::Campaign) -> (Router, Arc<coupon::issuer::Issuer>) {
        let config = coupon::IssuerConfig::default();
        let (started, issuers) =
            coupon::start_issuers(&self.ctx, vec![campaign], &config).await.expect("issuer starts");
        let issuer = issuers.values().next().expect("one issuer").clone();
        let server = platform::http::Server::new(
            started.router,
            serde_json::json!({}),
            platform::http::Readiness::default(),
            &HttpSettings::default(),
        );
        (server.router(), issuer)
    }

    pub async fn send(&self, req: Request<Body>) -> Resp {
        Self::send_to(&self.router, req).await
    }

    pub async fn send_to(router: &Router, req: Request<Body>) -> Resp {
        let what = format!("{} {}", req.method(), req.uri());
        let resp = tokio::time::timeout(REQUEST_LIMIT, router.clone().oneshot(req))
            .await
            .unwrap_or_else(|_| panic!("{what} did not answer within {REQUEST_LIMIT:?}"))
            .expect("router never fails");
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.into_body().collect().await.expect("body").to_bytes();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        Resp { status, headers, body, raw: bytes }
    }

    pub async fn call(&self, method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> Resp {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let req = match body {
            Some(b) => req.header("content-type", "application/json").body(Body::from(b.to_string())),
            None => req.body(Body::empty()),
        };
        self.send(req.expect("request")).await
    }

    pub async fn signup(&self, email: &str) -> Resp {
        self.call(
            "POST",
            "/api/auth/signup",
            None,
            Some(json!({"email": email, "password": PASSWORD, "nickname": "tester"})),
        )
        .await
    }

    pub async fn login(&self, email: &str, password: &str) -> Resp {
        self.call("POST", "/api/auth/login", None, Some(json!({"email": email, "password": password}))).await
    }

    /// Signs up and logs in; returns (user id, access token, refresh token).
    pub async fn account(&self, email: &str) -> (String, String, String) {
        let signed = self.signup(email).await;
        assert_eq!(signed.status, StatusCode::CREATED, "{:?}", signed.body);
        let logged = self.login(email, PASSWORD).await;
        assert_eq!(logged.status, StatusCode::OK, "{:?}", logged.body);
        (
            signed.body["userId"].as_str().expect("userId").to_owned(),
            logged.body["accessToken"].as_str().expect("accessToken").to_owned(),
            logged.body["refreshToken"].as_str().expect("refreshToken").to_owned(),
        )
    }

    /// Polls `/api/users/me` until the profile is active (the signup event was handled).
    pub async fn wait_active(&self, token: &str) -> Value {
        let started = Instant::now();
        loop {
            let me = self.call("GET", "/api/users/me", Some(token), None).await;
            assert_eq!(me.status, StatusCode::OK, "{:?}", me.body);
            if me.body["status"] == "active" {
                return me.body;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "profile still pending after 60s on {:?}",
                self.backend
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// No request of a test waits longer: the services bound every backend call well below it,
/// so reaching it is a hang, reported with the request that hung.
pub const REQUEST_LIMIT: Duration = Duration::from_secs(45);

/// A scenario that has not finished within this long fails with its name, rather than
/// holding the whole suite until CI's own limit (a hang once cost a CI run its 90 minutes).
pub const SCENARIO_LIMIT: Duration = Duration::from_secs(300);

pub async fn watchdog(name: &str, scenario: impl std::future::Future<Output = ()>) {
    if tokio::time::timeout(SCENARIO_LIMIT, scenario).await.is_err() {
        panic!("{name} did not finish within {SCENARIO_LIMIT:?}");
    }
}

/// Fault drills run one at a time within their test binary: each kills and restarts processes
/// on fixed ports (a drill beside it could be handed such a port while it is free), and on two
/// cores they gain little from overlapping anyway.
pub static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A fault drill on the real backends: one at a time ([`ONE_AT_A_TIME`]), under the watchdog.
#[macro_export]
macro_rules! drill {
    ($(#[$m:meta])* async fn $name:ident() $body:block) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        #[cfg_attr(ww_no_backends, ignore = "WW_TEST_NO_BACKENDS was set: needs PostgreSQL, Redis and Kafka")]
        $(#[$m])*
        async fn $name() {
            let _alone = $crate::common::ONE_AT_A_TIME.lock().await;
            $crate::common::watchdog(stringify!($name), async $body).await;
        }
    };
}

pub fn unique_email(tag: &str) -> String {
    format!("{tag}-{}@example.com", uuid::Uuid::new_v4().simple())
}

/// Runs each named scenario `async fn name(app: TestApp)` once per backend.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    $crate::common::watchdog(stringify!($name), async {
                        let app = $crate::common::TestApp::on($crate::common::Backend::Embedded).await.expect("embedded");
                        super::$name(app).await;
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
                        let app = $crate::common::TestApp::on($crate::common::Backend::Real).await.expect("real backends");
                        super::$name(app).await;
                    })
                    .await;
                }
            )*
        }
    };
}
