//! The controller against an in-memory API server over real HTTP (a real `kube::Client`): watch →
//! reconcile → children applied → status patched, through a campaign's phases with a fake clock,
//! with drift, injected 409 conflicts, a malformed object beside a good one, an invalid spec,
//! two replicas competing for the leader lease, and — on the real Kafka-protocol broker — the
//! campaign announced on the bus, held by its finalizer until its removal is announced, and the
//! issuers' counts reaching the status from the bus.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use kube::api::{ApiResource, DynamicObject};
use kube::runtime::reflector::ObjectRef;
use operator::announce::{Announcer, FINALIZER};
use operator::config::{Scope, WorkloadConfig};
use operator::controller::{self, ChildWatches, Context};
use operator::counters::{Counters, CountsFeed, Snapshot};
use operator::http::Readiness;
use operator::standin::{Deleted, Faults, StandIn};
use platform::events::contracts::{CAMPAIGN_COUNTED, CampaignCounted, CampaignDefined, CampaignRemoved, topics};
use platform::events::{Envelope, EventBus, Handler, KafkaBus, KafkaConfig};
use serde_json::{Value, json};
use tokio::sync::mpsc;

const CAMPAIGNS: &str = "weatherwise.io/v1alpha1/couponcampaigns";
const DEPLOYMENTS: &str = "apps/v1/deployments";
const HPAS: &str = "autoscaling/v2/horizontalpodautoscalers";
const SERVICES: &str = "v1/services";
const INGRESSES: &str = "networking.k8s.io/v1/ingresses";

/// A running operator against a stand-in, with a clock the test moves.
struct Harness {
    api: StandIn,
    ctx: Arc<Context>,
    now: Arc<AtomicI64>,
    poke: mpsc::UnboundedSender<ObjectRef<DynamicObject>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    /// Where the issuers' counts arrive from the bus.
    feed: CountsFeed,
}

fn kst(rfc3339: &str) -> DateTime<Utc> {
    rfc3339.parse().unwrap()
}

async fn client_for(api: &StandIn) -> kube::Client {
    let addr = api.clone().serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let config = kube::Config::new(format!("http://{addr}").parse().unwrap());
    kube::Client::try_from(config).unwrap()
}

impl Harness {
    async fn start(at: &str) -> Self {
        Self::start_with(at, Faults::default()).await
    }

    async fn start_with(at: &str, faults: Faults) -> Self {
        Self::start_full(at, faults, false, None).await
    }

    /// Another operator against an API server already serving.
    async fn start_on(api: StandIn, at: &str) -> Self {
        Self::start_api(api, at, false, None).await
    }

    /// `events`: publish Kubernetes Events, as the real operator does; `bus`: announce
    /// campaigns on it and read counts from it, as the real operator does.
    async fn start_full(at: &str, faults: Faults, events: bool, bus: Option<EventBus>) -> Self {
        Self::start_api(StandIn::new(faults, true), at, events, bus).await
    }

    async fn start_api(api: StandIn, at: &str, events: bool, bus: Option<EventBus>) -> Self {
        Self::start_scoped(api, at, events, bus, &Scope::cluster()).await
    }

    /// An operator watching `scope` only.
    async fn start_scoped(api: StandIn, at: &str, events: bool, bus: Option<EventBus>, scope: &Scope) -> Self {
        let client = client_for(&api).await;
        let now = Arc::new(AtomicI64::new(kst(at).timestamp_millis()));
        let clock_now = now.clone();
        let clock: controller::Clock =
            Arc::new(move || Utc.timestamp_millis_opt(clock_now.load(Ordering::SeqCst)).unwrap());
        let watches = ChildWatches::new(&client, scope);
        let recorder = events.then(|| {
            kube::runtime::events::Recorder::new(client.clone(), controller::reporter(Some("test".to_owned())))
        });
        let counters = Counters::default();
        let mut ctx =
            Context::new(client, WorkloadConfig::example(), clock, watches.stores.clone(), counters.clone(), recorder)
                .with_route_drain(Duration::from_millis(500));
        if let Some(bus) = &bus {
            ctx = ctx.with_announcer(Arc::new(Announcer::new(bus.clone())));
        }
        let ctx = Arc::new(ctx);
        let (poke, pokes) = mpsc::unbounded_channel();
        let pokes = futures::stream::unfold(pokes, |mut rx| async move { rx.recv().await.map(|r| (r, rx)) });
        // Counts from the bus, wired as `ww-operator run` wires them.
        let (changed, changed_rx) = mpsc::channel(1024);
        let feed = CountsFeed { counters, changed };
        let pokes = futures::stream::select(pokes, controller::on_counts(ctx.clone(), changed_rx));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let ready = Readiness::default();
        tokio::spawn(controller::run(ctx.clone(), watches, pokes, ready.clone(), async move {
            let _ = stopped.await;
        }));
        let started = std::time::Instant::now();
        while !ready.get() {
            assert!(started.elapsed() < Duration::from_secs(10), "the watches never synced");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Self { api, ctx, now, poke, stop: Some(stop), feed }
    }

    /// Moves the clock and has the campaign looked at again, as its requeue timer would.
    fn set_time(&self, at: &str, campaign: &str) {
        self.now.store(kst(at).timestamp_millis(), Ordering::SeqCst);
        self.poke(campaign);
    }

    fn poke(&self, campaign: &str) {
        let ar = ApiResource::erase::<campaign::CouponCampaign>(&());
        let _ = self.poke.send(ObjectRef::new_with(campaign, ar).within("marketing"));
    }

    fn campaign(&self, name: &str) -> Option<Value> {
        self.api.get(CAMPAIGNS, "marketing", name)
    }

    fn child(&self, collection: &str, campaign: &str) -> Option<Value> {
        self.api.get(collection, "marketing", &format!("cc-{campaign}"))
    }

    fn writes(&self) -> u64 {
        self.ctx.writes.children.load(Ordering::Relaxed) + self.ctx.writes.status.load(Ordering::Relaxed)
    }

    /// Waits until `check` holds, or fails with `what`.
    async fn until(&self, what: &str, check: impl Fn(&Self) -> bool) {
        let started = std::time::Instant::now();
        while !check(self) {
            assert!(started.elapsed() < Duration::from_secs(15), "never: {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until no write happened for a while (the controller is idle).
    async fn settle(&self) {
        let mut last = self.writes();
        loop {
            tokio::time::sleep(Duration::from_millis(400)).await;
            let now = self.writes();
            if now == last {
                return;
            }
            last = now;
        }
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

fn campaign(name: &str, extra: Value) -> Value {
    let mut c = json!({
        "apiVersion": "weatherwise.io/v1alpha1",
        "kind": "CouponCampaign",
        "metadata": {"name": name, "namespace": "marketing"},
        "spec": {
            "displayName": "Rainy Day Pass",
            "coupon": {"title": "Umbrella discount", "benefit": "20% off", "validityDays": 7},
            "schedule": {"timeZone": "Asia/Seoul", "startDate": "2026-12-07", "endDate": "2026-12-08", "opensAt": "10:00", "closesAt": "12:00"},
            "quota": {"dailyQuantity": 1000},
            "workload": {"replicas": {"idle": 1, "min": 3, "max": 30}, "prewarmSeconds": 300}
        }
    });
    merge(&mut c, &extra);
    c
}

fn merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                merge(t.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (t, p) => *t = p.clone(),
    }
}

fn phase(c: &Option<Value>) -> Option<String> {
    c.as_ref().and_then(|c| c.pointer("/status/phase")).and_then(Value::as_str).map(str::to_owned)
}

fn condition(c: &Value, type_: &str) -> Value {
    c.pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|cs| cs.iter().find(|x| x["type"] == type_))
        .cloned()
        .unwrap_or(Value::Null)
}

fn replicas(d: &Option<Value>) -> Option<i64> {
    d.as_ref().and_then(|d| d.pointer("/spec/replicas")).and_then(Value::as_i64)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_kept_to_one_namespace_leaves_campaigns_elsewhere_alone() {
    let api = StandIn::new(Faults::default(), true);
    let h = Harness::start_scoped(api, "2026-12-07T08:00:00+09:00", false, None, &Scope::namespace("marketing")).await;
    h.api.put(CAMPAIGNS, campaign("elsewhere", json!({"metadata": {"namespace": "staging"}})));
    h.api.put(CAMPAIGNS, campaign("rainy", json!({})));
    h.until("the campaign in its namespace scheduled with its children", |h| {
        phase(&h.campaign("rainy")).as_deref() == Some("Scheduled") && h.child(INGRESSES, "rainy").is_some()
    })
    .await;
    h.settle().await;
    let elsewhere = h.api.get(CAMPAIGNS, "staging", "elsewhere").expect("stored");
    assert!(elsewhere.pointer("/status").is_none(), "another namespace's campaign was touched: {elsewhere}");
    for collection in [DEPLOYMENTS, SERVICES, INGRESSES] {
        assert!(h.api.get(collection, "staging", "cc-elsewhere").is_none(), "{collection} made in staging");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_campaign_walks_from_scheduled_through_prewarm_and_opening_to_idle_and_completion() {
    let h = Harness::start("2026-12-07T08:00:00+09:00").await;
    h.api.put(CAMPAIGNS, campaign("rainy", json!({})));

    h.until("scheduled with its children", |h| {
        phase(&h.campaign("rainy")).as_deref() == Some("Scheduled") && h.child(INGRESSES, "rainy").is_some()
    })
    .await;
    assert_eq!(replicas(&h.child(DEPLOYMENTS, "rainy")), Some(1), "idle replicas");
    assert!(h.child(HPAS, "rainy").is_none(), "no autoscaler while idle");
    let c = h.campaign("rainy").unwrap();
    assert_eq!(
        c.pointer("/status/nextTransition").and_then(Value::as_str),
        Some("2026-12-07T00:55:00Z"),
        "pre-warm at 09:55 KST"
    );
    assert_eq!(c.pointer("/status/observedGeneration"), Some(&json!(1)));

    h.set_time("2026-12-07T09:55:00+09:00", "rainy");
    h.until("pre-warming with an autoscaler", |h| {
        phase(&h.campaign("rainy")).as_deref() == Some("Prewarming") && h.child(HPAS, "rainy").is_some()
    })
    .await;
    h.until("pre-warmed to min", |h| replicas(&h.child(DEPLOYMENTS, "rainy")) == Some(3)).await;
    h.until("ready and routed to the issuer", |h| {
        let c = h.campaign("rainy").unwrap();
        condition(&c, "Ready")["status"] == "True"
            && h.child(INGRESSES, "rainy")
                .and_then(|i| i.pointer("/spec/rules/0/http/paths/0/backend/service/name").cloned())
                .as_ref()
                == Some(&json!("cc-rainy"))
    })
    .await;

    h.set_time("2026-12-07T10:00:00+09:00", "rainy");
    h.until("open", |h| phase(&h.campaign("rainy")).as_deref() == Some("Open")).await;
    let c = h.campaign("rainy").unwrap();
    assert_eq!(condition(&c, "Live")["status"], "False", "no counters yet: not live");

    h.set_time("2026-12-07T12:01:00+09:00", "rainy");
    h.until("closed and idle again", |h| {
        phase(&h.campaign("rainy")).as_deref() == Some("Closed") && h.child(HPAS, "rainy").is_none()
    })
    .await;
    h.until("scaled back to idle", |h| replicas(&h.child(DEPLOYMENTS, "rainy")) == Some(1)).await;

    h.set_time("2026-12-08T12:01:00+09:00", "rainy");
    h.until("completed", |h| phase(&h.campaign("rainy")).as_deref() == Some("Completed")).await;
    h.until("no pods once completed", |h| replicas(&h.child(DEPLOYMENTS, "rainy")) == Some(0)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_steady_the_controller_writes_nothing_however_often_it_looks() {
    let h = Harness::start("2026-12-07T08:00:00+09:00").await;
    h.api.put(CAMPAIGNS, campaign("rainy", json!({})));
    h.until("scheduled", |h| phase(&h.campaign("rainy")).as_deref() == Some("Scheduled")).await;
    h.settle().await;
    let before = h.writes();
    let server_changes = h.api.counts.changes.load(Ordering::Relaxed);
    let reconciles = h.ctx.reconciles.load(Ordering::Relaxed);
    // Reconcile it directly, 20 times, from the object as the API holds it.
    let object: DynamicObject = serde_json::from_value(h.campaign("rainy").unwrap()).unwrap();
    let object = Arc::new(object);
    for _ in 0..20 {
        controller::reconcile(object.clone(), h.ctx.clone()).await.unwrap();
    }
    assert!(h.ctx.reconciles.load(Ordering::Relaxed) >= reconciles + 20);
    assert_eq!(h.writes(), before, "writes after 20 more reconciles of a steady campaign");
    assert_eq!(h.api.counts.changes.load(Ordering::Relaxed), server_changes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_idle_issuers_prewarm_scales_up_from_zero_and_the_route_drains_before_scale_down() {
    let h = Harness::start("2026-12-07T08:00:00+09:00").await;
    h.api.put(
        CAMPAIGNS,
        campaign("rainy", json!({"spec": {"workload": {"replicas": {"idle": 0, "min": 3, "max": 30}}}})),
    );
    h.until("idle at zero, no route", |h| replicas(&h.child(DEPLOYMENTS, "rainy")) == Some(0)).await;
    assert!(h.child(INGRESSES, "rainy").is_none(), "no route while nothing runs");
    // An HPA never scales a Deployment up from zero: the operator raises it to min itself.
    h.set_time("2026-12-07T09:55:00+09:00", "rainy");
    h.until("pre-warmed from zero", |h| replicas(&h.child(DEPLOYMENTS, "rainy")) == Some(3)).await;
    h.until("routed once ready", |h| h.child(INGRESSES, "rainy").is_some()).await;
    h.set_time("2026-12-07T12:01:00+09:00", "rainy");
    h.until("the route goes first", |h| h.child(INGRESSES, "rainy").is_none()).await;
    let removed = std::time::Instant::now();
    assert_eq!(replicas(&h.child(DEPLOYMENTS, "rainy")), Some(3), "issuers stay while the route drains");
    h.until("then scaled to zero", |h| replicas(&h.child(DEPLOYMENTS, "rainy")) == Some(0)).await;
    assert!(removed.elapsed() >= Duration::from_millis(400), "{:?}", removed.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_another_namespace_routes_and_an_image_not_allowed_are_refused() {
    let h = Harness::start("2026-12-07T08:00:00+09:00").await;
    h.api.put(CAMPAIGNS, campaign("rainy", json!({})));
    h.until("the first runs", |h| phase(&h.campaign("rainy")).as_deref() == Some("Scheduled")).await;
    let mut twin = campaign("rainy", json!({}));
    twin["metadata"]["namespace"] = json!("other-team");
    h.api.put(CAMPAIGNS, twin);
    h.until("the second is refused", |h| {
        h.api.get(CAMPAIGNS, "other-team", "rainy").is_some_and(|c| phase(&Some(c)).as_deref() == Some("Invalid"))
    })
    .await;
    let twin = h.api.get(CAMPAIGNS, "other-team", "rainy").unwrap();
    assert!(condition(&twin, "InvalidSpec")["message"].as_str().unwrap().contains("namespace `marketing`"));
    assert!(h.api.get(DEPLOYMENTS, "other-team", "cc-rainy").is_none());
    h.api.put(CAMPAIGNS, campaign("evil", json!({"spec": {"workload": {"image": "docker.io/someone/miner:latest"}}})));
    h.until("a foreign image is refused", |h| phase(&h.campaign("evil")).as_deref() == Some("Invalid")).await;
    assert!(h.child(DEPLOYMENTS, "evil").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_or_edited_child_is_put_back() {
    let h = Harness::start("2026-12-07T08:00:00+09:00").await;
    h.api.put(CAMPAIGNS, campaign("rainy", json!({})));
    h.until("children", |h| h.child(SERVICES, "rainy").is_some()).await;
    h.settle().await;
    assert_eq!(h.api.remove(SERVICES, "marketing", "cc-rainy"), Deleted::Gone);
    h.until("the service is back", |h| h.child(SERVICES, "rainy").is_some()).await;
    let mut edited = h.child(SERVICES, "rainy").unwrap();
    edited["spec"]["ports"][0]["port"] = json!(8081);
    h.api.put(SERVICES, edited);
    h.until("the port is corrected", |h| {
        h.child(SERVICES, "rainy").unwrap().pointer("/spec/ports/0/port") == Some(&json!(80))
    })
    .await;
    h.api
        .put(DEPLOYMENTS, json!({"metadata": {"name": "cc-rainy", "namespace": "marketing"}, "spec": {"replicas": 7}}));
    h.until("a manual scale is undone while idle", |h| replicas(&h.child(DEPLOYMENTS, "rainy")) == Some(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflicts_and_latency_from_the_api_server_are_retried_until_the_campaign_converges() {
    let h = Harness::start_with("2026-12-07T09:56:00+09:00", Faults { latency_ms: (5, 20), conflict_rate: 0.3 }).await;
    for name in ["a", "b", "c"] {
        h.api.put(CAMPAIGNS, campaign(name, json!({})));
    }
    for name in ["a", "b", "c"] {
        h.until("pre-warming despite conflicts", |h| {
            phase(&h.campaign(name)).as_deref() == Some("Prewarming") && h.child(HPAS, name).is_some()
        })
        .await;
    }
    assert!(h.api.counts.conflicts_injected.load(Ordering::Relaxed) > 0, "conflicts were injected");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_campaign_is_reported_and_does_not_stop_the_others() {
    let h = Harness::start("2026-12-07T08:00:00+09:00").await;
    h.api.put(CAMPAIGNS, campaign("broken", json!({"spec": {"quota": {"dailyQuantity": "lots"}}})));
    h.api.put(CAMPAIGNS, campaign("fine", json!({})));
    h.until("the good one runs", |h| phase(&h.campaign("fine")).as_deref() == Some("Scheduled")).await;
    h.until("the broken one says why", |h| phase(&h.campaign("broken")).as_deref() == Some("Invalid")).await;
    let broken = h.campaign("broken").unwrap();
    let invalid = condition(&broken, "InvalidSpec");
    assert_eq!(invalid["status"], "True");
    assert!(invalid["message"].as_str().unwrap().contains("dailyQuantity"), "{invalid}");
    assert!(h.child(DEPLOYMENTS, "broken").is_none(), "nothing runs for it");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_spec_waits_for_a_fix_and_then_runs() {
    let h = Harness::start("2026-12-07T08:00:00+09:00").await;
    let bad = campaign("rainy", json!({"spec": {"quota": {"dailyQuantity": 1000, "totalQuantity": 10}}}));
    h.api.put(CAMPAIGNS, bad);
    h.until("invalid", |h| phase(&h.campaign("rainy")).as_deref() == Some("Invalid")).await;
    let since = condition(&h.campaign("rainy").unwrap(), "InvalidSpec")["lastTransitionTime"].clone();
    h.settle().await;
    let writes = h.writes();
    h.poke("rainy");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(h.writes(), writes, "an unchanged invalid spec is not rewritten");
    assert_eq!(condition(&h.campaign("rainy").unwrap(), "InvalidSpec")["lastTransitionTime"], since);
    h.api.put(CAMPAIGNS, campaign("rainy", json!({"spec": {"quota": {"totalQuantity": 5000}}})));
    h.until("runs once fixed", |h| phase(&h.campaign("rainy")).as_deref() == Some("Scheduled")).await;
    assert_eq!(condition(&h.campaign("rainy").unwrap(), "InvalidSpec")["status"], "False");
    assert_eq!(h.campaign("rainy").unwrap().pointer("/status/observedGeneration"), Some(&json!(2)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_from_the_issuers_reach_the_status_at_most_every_few_seconds_and_silence_shows() {
    let h = Harness::start("2026-12-07T10:00:05+09:00").await;
    h.api.put(CAMPAIGNS, campaign("rainy", json!({})));
    h.until("open", |h| phase(&h.campaign("rainy")).as_deref() == Some("Open")).await;
    h.settle().await;
    let status_writes = h.ctx.writes.status.load(Ordering::Relaxed);
    let day = chrono::NaiveDate::from_ymd_opt(2026, 12, 7).unwrap();
    let uid = h.campaign("rainy").unwrap()["metadata"]["uid"].as_str().unwrap().to_owned();
    for i in 1..=10u64 {
        let at = kst("2026-12-07T10:00:05+09:00") + chrono::TimeDelta::milliseconds(i64::try_from(i).unwrap() * 200);
        h.now.store(at.timestamp_millis(), Ordering::SeqCst);
        h.ctx.counters.record(
            &uid,
            Snapshot { day, issued_today: i * 10, remaining_today: Some(1000 - i * 10), issued_total: i * 10, at },
        );
        h.poke("rainy");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let written = h.ctx.writes.status.load(Ordering::Relaxed) - status_writes;
    assert!(written <= 2, "{written} status writes in 2 s of counters (at most one per 5 s, plus the first)");
    h.until("counts shown", |h| h.campaign("rainy").unwrap().pointer("/status/issuedToday").is_some()).await;
    assert_eq!(condition(&h.campaign("rainy").unwrap(), "Live")["status"], "True");
    // The issuers go quiet for longer than the staleness bound.
    h.set_time("2026-12-07T10:01:00+09:00", "rainy");
    h.until("silence shows", |h| condition(&h.campaign("rainy").unwrap(), "Live")["reason"] == "IssuersSilent").await;
    // Sold out: the phase says so.
    let at = kst("2026-12-07T10:01:00+09:00");
    h.ctx.counters.record(&uid, Snapshot { day, issued_today: 1000, remaining_today: Some(0), issued_total: 1000, at });
    h.poke("rainy");
    h.until("sold out", |h| phase(&h.campaign("rainy")).as_deref() == Some("SoldOut")).await;
}

/// A bus on the test broker, with topics of this run only.
async fn test_bus() -> EventBus {
    let config = KafkaConfig {
        kafka_brokers: Some(platform::testing::backend("WW_TEST_KAFKA_BROKERS")),
        kafka_prefix: format!("test-operator-{}.", uuid::Uuid::new_v4().simple()),
        kafka_group_prefix: None,
        kafka_partitions: 1,
        kafka_replication_factor: 1,
        kafka_min_insync_replicas: 1,
        kafka_message_timeout_ms: 3000,
    };
    let bus = EventBus::Kafka(Arc::new(KafkaBus::new(&config).unwrap()));
    Announcer::new(bus.clone()).ensure_topics().await.unwrap();
    bus
}

/// Everything on `topic` from its beginning, once read to its end.
async fn read_topic(bus: &EventBus, topic: &str) -> Vec<Envelope> {
    #[derive(Clone, Default)]
    struct Collect(Arc<std::sync::Mutex<Vec<Envelope>>>);
    impl Handler for Collect {
        async fn handle(&self, event: &Envelope) -> anyhow::Result<()> {
            self.0.lock().unwrap().push(event.clone());
            Ok(())
        }
    }
    let collect = Collect::default();
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let (task, mut caught_up) = bus.spawn_replay("test-read", &[topic], collect.clone(), stop_rx);
    tokio::time::timeout(Duration::from_secs(30), caught_up.wait_for(|c| *c)).await.unwrap().unwrap();
    let _ = stop.send(true);
    let _ = task.await;
    collect.0.lock().unwrap().clone()
}

fn finalizers(c: &Option<Value>) -> Vec<String> {
    c.as_ref()
        .and_then(|c| c.pointer("/metadata/finalizers"))
        .and_then(Value::as_array)
        .map(|f| f.iter().filter_map(Value::as_str).map(str::to_owned).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_campaign_is_announced_when_created_and_changed_and_its_removal_with_totals_before_it_goes() {
    let bus = test_bus().await;
    let h = Harness::start_full("2026-12-07T10:00:05+09:00", Faults::default(), false, Some(bus.clone())).await;
    h.api.put(CAMPAIGNS, campaign("rainy", json!({})));
    h.until("held by the finalizer", |h| finalizers(&h.campaign("rainy")) == [FINALIZER]).await;
    h.until("open", |h| phase(&h.campaign("rainy")).as_deref() == Some("Open")).await;
    let uid = h.campaign("rainy").unwrap()["metadata"]["uid"].as_str().unwrap().to_owned();
    // A change of the spec is a new generation, announced again.
    let mut changed = h.campaign("rainy").unwrap();
    changed["spec"]["quota"]["dailyQuantity"] = json!(500);
    h.api.put(CAMPAIGNS, changed);
    h.until("generation 2 seen", |h| {
        h.campaign("rainy").unwrap().pointer("/status/observedGeneration") == Some(&json!(2))
    })
    .await;
    // The issuers counted 42 so far.
    let at = kst("2026-12-07T10:00:06+09:00");
    let day = chrono::NaiveDate::from_ymd_opt(2026, 12, 7).unwrap();
    h.ctx.counters.record(&uid, Snapshot { day, issued_today: 42, remaining_today: Some(958), issued_total: 42, at });
    h.until("routed", |h| h.child(INGRESSES, "rainy").is_some()).await;
    // Deleted: held while its issuers wind down (route first, then the count to zero), until
    // the removal is on the bus; then gone, and its children with it.
    assert!(matches!(h.api.remove(CAMPAIGNS, "marketing", "rainy"), Deleted::Held(_)), "held by the finalizer");
    h.until("gone", |h| h.campaign("rainy").is_none()).await;
    h.until("children gone", |h| h.child(DEPLOYMENTS, "rainy").is_none()).await;
    // In the API's own order of changes: the route went first, then the autoscaler and the
    // issuers (scaled to zero), and only then the campaign. (Polling for the held state misses
    // it: the stand-in's pods stop at once, so the hold lasts milliseconds.)
    let changes = h.api.changes();
    let first = |what: &str, matches: &dyn Fn(&str, &str, &Value) -> bool| {
        changes
            .iter()
            .position(|(kind, collection, object)| matches(kind, collection, object))
            .unwrap_or_else(|| panic!("no {what} among the changes"))
    };
    let named = |o: &Value, n: &str| o.pointer("/metadata/name") == Some(&json!(n));
    let deleting = first("deletion mark", &|k, c, o| {
        k == "MODIFIED" && c == CAMPAIGNS && o.pointer("/metadata/deletionTimestamp").is_some()
    });
    let route_gone = first("route removal", &|k, c, o| k == "DELETED" && c == INGRESSES && named(o, "cc-rainy"));
    let hpa_gone = first("autoscaler removal", &|k, c, o| k == "DELETED" && c == HPAS && named(o, "cc-rainy"));
    let scaled_down = first("scale to zero", &|k, c, o| {
        k == "MODIFIED" && c == DEPLOYMENTS && named(o, "cc-rainy") && o.pointer("/spec/replicas") == Some(&json!(0))
    });
    let campaign_gone = first("campaign removal", &|k, c, o| k == "DELETED" && c == CAMPAIGNS && named(o, "rainy"));
    assert!(deleting < route_gone, "the route goes once the campaign is deleted");
    assert!(route_gone < hpa_gone && route_gone < scaled_down, "the route goes before the issuers");
    assert!(hpa_gone < campaign_gone && scaled_down < campaign_gone, "the issuers stop before the campaign goes");

    let events = read_topic(&bus, topics::CAMPAIGNS).await;
    let defined: Vec<CampaignDefined> =
        events.iter().filter(|e| e.kind == "CampaignDefined").filter_map(|e| e.decode().ok()).collect();
    let versions: Vec<i64> = defined.iter().map(|d| d.version).collect();
    assert_eq!(versions, [1, 2], "each generation announced once: {defined:?}");
    assert!(defined.iter().all(|d| d.uid == uid && d.namespace == "marketing" && d.name == "rainy"));
    assert_eq!(defined[1].spec["quota"]["dailyQuantity"], 500);
    let removed: Vec<CampaignRemoved> =
        events.iter().filter(|e| e.kind == "CampaignRemoved").filter_map(|e| e.decode().ok()).collect();
    assert_eq!(removed.len(), 1, "{removed:?}");
    assert_eq!(removed[0].uid, uid);
    assert!(removed[0].version > 2, "the removal outranks every definition: {removed:?}");
    assert_eq!(removed[0].totals.map(|t| t.issued_total), Some(42));
    assert_eq!(events.last().map(|e| e.kind.as_str()), Some("CampaignRemoved"), "the removal comes last");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_leader_without_counts_keeps_the_days_last_ones_and_stays_sold_out() {
    let at = "2026-12-07T10:30:00+09:00";
    let first = Harness::start(at).await;
    first.api.put(CAMPAIGNS, campaign("rainy", json!({})));
    first.until("open", |h| phase(&h.campaign("rainy")).as_deref() == Some("Open")).await;
    let uid = first.campaign("rainy").unwrap()["metadata"]["uid"].as_str().unwrap().to_owned();
    let day = chrono::NaiveDate::from_ymd_opt(2026, 12, 7).unwrap();
    let snapshot = Snapshot { day, issued_today: 1000, remaining_today: Some(0), issued_total: 1000, at: kst(at) };
    first.ctx.counters.record(&uid, snapshot);
    first.poke("rainy");
    first.until("sold out", |h| phase(&h.campaign("rainy")).as_deref() == Some("SoldOut")).await;
    // Another replica takes over with no counts yet, against the same API.
    let api = first.api.clone();
    drop(first);
    let second = Harness::start_on(api, at).await;
    second.poke("rainy");
    second.settle().await;
    let c = second.campaign("rainy").unwrap();
    assert_eq!(phase(&Some(c.clone())).as_deref(), Some("SoldOut"), "{c:#}");
    assert_eq!(c["status"]["issuedToday"], 1000);
    assert_eq!(c["status"]["remainingToday"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_from_the_bus_reach_the_status_of_the_campaign_with_their_uid_only() {
    let h = Harness::start("2026-12-07T10:00:05+09:00").await;
    h.api.put(CAMPAIGNS, campaign("rainy", json!({})));
    h.until("open", |h| phase(&h.campaign("rainy")).as_deref() == Some("Open")).await;
    h.settle().await;
    let uid = h.campaign("rainy").unwrap()["metadata"]["uid"].as_str().unwrap().to_owned();
    let counted = |uid: &str, issued: u64| {
        let event = CampaignCounted {
            name: "rainy".to_owned(),
            uid: uid.to_owned(),
            day: chrono::NaiveDate::from_ymd_opt(2026, 12, 7).unwrap(),
            issued_today: issued,
            remaining_today: Some(1000 - issued),
            issued_total: issued,
            at: h.ctx.clock.as_ref()(),
        };
        Envelope::new(CAMPAIGN_COUNTED, "coupon-issuer", event.at, &event).unwrap()
    };
    // Another instance of the same name (deleted and re-created, say) is not this campaign.
    h.feed.handle(&counted("another-uid", 900)).await.unwrap();
    h.feed.handle(&counted(&uid, 7)).await.unwrap();
    h.until("counts shown", |h| h.campaign("rainy").unwrap().pointer("/status/issuedToday") == Some(&json!(7))).await;
    assert_eq!(h.campaign("rainy").unwrap()["status"]["remainingToday"], 993);
    assert_eq!(condition(&h.campaign("rainy").unwrap(), "Live")["status"], "True");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_campaign_takes_its_children_with_it() {
    let h = Harness::start("2026-12-07T08:00:00+09:00").await;
    h.api.put(CAMPAIGNS, campaign("rainy", json!({})));
    h.until("children", |h| h.child(DEPLOYMENTS, "rainy").is_some() && h.child(INGRESSES, "rainy").is_some()).await;
    assert_eq!(h.api.remove(CAMPAIGNS, "marketing", "rainy"), Deleted::Gone);
    h.until("children gone", |h| h.child(DEPLOYMENTS, "rainy").is_none() && h.child(SERVICES, "rainy").is_none()).await;
    // A reconcile already running from the campaign as it was may write a child once more
    // (the API server takes it; the garbage collector removes it, its owner being gone); after
    // that the operator leaves the campaign alone.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let settled = h.writes();
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(h.writes(), settled, "no writes for a deleted campaign");
    assert!(h.child(DEPLOYMENTS, "rainy").is_none(), "nothing of it remains");
}

mod lease {
    use k8s_openapi::api::coordination::v1::Lease;
    use kube::api::Api;
    use operator::leader::{self, LeaseConfig};
    use tokio::sync::watch;

    use super::*;

    fn config(identity: &str) -> LeaseConfig {
        LeaseConfig {
            namespace: "weatherwise".to_owned(),
            name: "ww-operator".to_owned(),
            identity: identity.to_owned(),
            duration: Duration::from_secs(2),
            retry: Duration::from_millis(100),
        }
    }

    struct Candidate {
        leading: watch::Receiver<bool>,
        stop: watch::Sender<bool>,
        task: tokio::task::JoinHandle<()>,
    }

    fn candidate(client: &kube::Client, identity: &str) -> Candidate {
        let (leading_tx, leading) = watch::channel(false);
        let (stop, stop_rx) = watch::channel(false);
        let api: Api<Lease> = Api::namespaced(client.clone(), "weatherwise");
        let task = tokio::spawn(leader::run(api, config(identity), leading_tx, stop_rx));
        Candidate { leading, stop, task }
    }

    async fn until(what: &str, check: impl Fn() -> bool) {
        let started = std::time::Instant::now();
        while !check() {
            assert!(started.elapsed() < Duration::from_secs(10), "never: {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn of_two_replicas_one_leads_and_the_other_takes_over_when_it_stops() {
        let api = StandIn::new(Faults::default(), false);
        let client = client_for(&api).await;
        let a = candidate(&client, "a");
        let b = candidate(&client, "b");
        until("someone leads", || *a.leading.borrow() || *b.leading.borrow()).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(*a.leading.borrow() != *b.leading.borrow(), "exactly one leads");
        let (leader, standby) = if *a.leading.borrow() { (a, b) } else { (b, a) };
        let _ = leader.stop.send(true);
        leader.task.await.unwrap();
        let released = std::time::Instant::now();
        until("the standby takes over", || *standby.leading.borrow()).await;
        assert!(
            released.elapsed() < Duration::from_millis(1200),
            "a released lease is taken at the next look, not a lease later"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lease_left_unchanged_for_its_duration_is_taken_over() {
        let api = StandIn::new(Faults::default(), false);
        let client = client_for(&api).await;
        let a = candidate(&client, "a");
        until("a leads", || *a.leading.borrow()).await;
        // The leader dies without a word (its task is aborted: no release).
        a.task.abort();
        let b = candidate(&client, "b");
        let died = std::time::Instant::now();
        tokio::time::sleep(Duration::from_millis(1000)).await;
        assert!(!*b.leading.borrow(), "not before the lease is unchanged for its duration");
        until("b takes over", || *b.leading.borrow()).await;
        assert!(died.elapsed() >= Duration::from_secs(2), "{:?}", died.elapsed());
        let lease = api.get("coordination.k8s.io/v1/leases", "weatherwise", "ww-operator").unwrap();
        assert_eq!(lease.pointer("/spec/holderIdentity"), Some(&json!("b")));
        assert_eq!(lease.pointer("/spec/leaseTransitions"), Some(&json!(1)));
    }
}

/// The RBAC manifest grants every call the controller and the election make, and nothing else.
mod rbac {
    use std::collections::BTreeSet;

    use super::*;

    const RBAC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../config/rbac/ww-operator.yaml");

    /// Every (verb, group, resource) the manifest's roles grant.
    fn granted() -> BTreeSet<(String, String, String)> {
        let text = std::fs::read_to_string(RBAC).unwrap();
        let mut granted = BTreeSet::new();
        for document in serde_yaml::Deserializer::from_str(&text) {
            let role: Value = serde::Deserialize::deserialize(document).unwrap();
            if !matches!(role["kind"].as_str(), Some("ClusterRole" | "Role")) {
                continue;
            }
            for rule in role["rules"].as_array().unwrap() {
                for group in rule["apiGroups"].as_array().unwrap() {
                    for resource in rule["resources"].as_array().unwrap() {
                        for verb in rule["verbs"].as_array().unwrap() {
                            granted.insert((
                                verb.as_str().unwrap().to_owned(),
                                group.as_str().unwrap().to_owned(),
                                resource.as_str().unwrap().to_owned(),
                            ));
                        }
                    }
                }
            }
        }
        granted
    }

    async fn chat_walk(api: &StandIn) {
        use operator::chat::controller::{self as chat, ChatContext, ChatWatches};
        use operator::chat::topic::MemoryAdmin;

        const CLUSTERS: &str = "weatherwise.io/v1alpha1/chatclusters";
        let client = client_for(api).await;
        let watches = ChatWatches::new(&client, &operator::config::Scope::cluster());
        let recorder =
            kube::runtime::events::Recorder::new(client.clone(), controller::reporter(Some("test".to_owned())));
        let ctx = Arc::new(ChatContext::new(
            client,
            WorkloadConfig::example(),
            String::new(),
            operator::chat::resource::AutoscaleOn::Auto,
            Arc::new(MemoryAdmin::default()),
            watches.stores.clone(),
            Some(recorder),
        ));
        let ready = Readiness::default();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(chat::run(ctx, watches, futures::stream::pending(), ready.clone(), async move {
            let _ = stopped.await;
        }));
        let until = |what: &'static str, check: Box<dyn Fn() -> bool>| async move {
            let started = std::time::Instant::now();
            while !check() {
                assert!(started.elapsed() < Duration::from_secs(15), "never: {what}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        let ready_now = ready.clone();
        until("chat watches synced", Box::new(move || ready_now.get())).await;
        let cluster = |name: &str, namespace: &str, partitions: u32| {
            json!({"apiVersion": "weatherwise.io/v1alpha1", "kind": "ChatCluster",
                   "metadata": {"name": name, "namespace": namespace},
                   "spec": {"roomPrefix": "festival-", "partitions": partitions}})
        };
        let condition = |api: &StandIn, ns: &str, name: &str, type_: &str| {
            api.get(CLUSTERS, ns, name)
                .and_then(|c| c.pointer("/status/conditions").cloned())
                .and_then(|cs| cs.as_array().and_then(|cs| cs.iter().find(|c| c["type"] == type_).cloned()))
                .map(|c| c["reason"].as_str().unwrap_or_default().to_owned())
                .unwrap_or_default()
        };
        api.put(CLUSTERS, cluster("festival", "chat", 6));
        let a = api.clone();
        until("serving", Box::new(move || condition(&a, "chat", "festival", "Ready") == "Serving")).await;
        api.put(CLUSTERS, cluster("festival", "chat", 8));
        let a = api.clone();
        until("grown", Box::new(move || condition(&a, "chat", "festival", "TopicReady") == "Grown")).await;
        api.put(
            DEPLOYMENTS,
            json!({"metadata": {"name": "chat-festival-gateway", "namespace": "chat"}, "spec": {"replicas": 0}}),
        );
        let a = api.clone();
        until(
            "raised",
            Box::new(move || {
                a.get(DEPLOYMENTS, "chat", "chat-festival-gateway").and_then(|d| d.pointer("/spec/replicas").cloned())
                    == Some(json!(2))
            }),
        )
        .await;
        // A cluster in another namespace asking for the same prefix is refused (it came later).
        api.put(CLUSTERS, cluster("another", "chat-b", 6));
        let a = api.clone();
        until(
            "the later cluster refused",
            Box::new(move || condition(&a, "chat-b", "another", "InvalidSpec") == "RulesBroken"),
        )
        .await;
        let _ = stop.send(());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_manifest_grants_exactly_the_calls_the_operator_makes() {
        let h = Harness::start_full("2026-12-07T08:00:00+09:00", Faults::default(), true, Some(test_bus().await)).await;
        h.api.put(CAMPAIGNS, campaign("rainy", json!({})));
        h.until("scheduled", |h| phase(&h.campaign("rainy")).as_deref() == Some("Scheduled")).await;
        h.set_time("2026-12-07T09:55:00+09:00", "rainy");
        h.until("pre-warming", |h| h.child(HPAS, "rainy").is_some()).await;
        // The route comes once the floor is Ready; it must exist to be taken away below.
        h.until("routed", |h| h.child(INGRESSES, "rainy").is_some()).await;
        h.set_time("2026-12-07T12:01:00+09:00", "rainy");
        h.until("idle again", |h| {
            h.child(HPAS, "rainy").is_none() && replicas(&h.child(DEPLOYMENTS, "rainy")) == Some(1)
        })
        .await;
        h.until("events published", |h| !h.api.list("events.k8s.io/v1/events").is_empty()).await;
        // Someone edits the issuer's pod template: the operator applies it back.
        let mut drifted = h.child(DEPLOYMENTS, "rainy").unwrap();
        drifted["spec"]["template"]["spec"]["containers"][0]["image"] = json!("elsewhere/ww:old");
        h.api.put(DEPLOYMENTS, drifted);
        h.until("the template is put back", |h| {
            h.child(DEPLOYMENTS, "rainy").unwrap().pointer("/spec/template/spec/containers/0/image")
                == Some(&json!("ghcr.io/weatherwise/ww:0.1.0"))
        })
        .await;
        // Suspended: the route goes (its delete is a call the manifest must allow).
        let mut suspended = h.campaign("rainy").unwrap();
        suspended["spec"]["suspend"] = json!(true);
        h.api.put(CAMPAIGNS, suspended);
        h.until("route removed", |h| h.child(INGRESSES, "rainy").is_none()).await;
        // The election, against the same API.
        let client = client_for(&h.api).await;
        let (leading_tx, leading) = tokio::sync::watch::channel(false);
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        let config = operator::leader::LeaseConfig {
            namespace: "weatherwise".to_owned(),
            name: "ww-operator".to_owned(),
            identity: "a".to_owned(),
            duration: Duration::from_secs(2),
            retry: Duration::from_millis(50),
        };
        let election = tokio::spawn(operator::leader::run(
            kube::Api::namespaced(client, "weatherwise"),
            config,
            leading_tx,
            stop_rx,
        ));
        h.until("leading", |_| *leading.borrow()).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let _ = stop.send(true);
        election.await.unwrap();
        // The chat controller, against the same API: a cluster created, its topic grown (an
        // Event), a gateway scaled to zero by hand raised again, a second cluster refused.
        chat_walk(&h.api).await;

        let seen = h.api.counts.seen.lock().unwrap().clone();
        let granted = granted();
        let denied: Vec<_> = seen.difference(&granted).collect();
        assert!(denied.is_empty(), "calls the manifest does not allow: {denied:?}");
        // kube's Recorder patches an Event when the same one repeats (an event series), which
        // this walk does not produce.
        let series = ("patch".to_owned(), "events.k8s.io".to_owned(), "events".to_owned());
        let unused: Vec<_> = granted.difference(&seen).filter(|g| **g != series).collect();
        assert!(unused.is_empty(), "granted but never used (least privilege): {unused:?}");
    }
}
