//! The ChatCluster controller against the in-memory API server over real HTTP (a real
//! `kube::Client`) and an in-memory Kafka admin: a cluster gets its topic and its children, owned
//! by it; a higher partition count grows the topic; a broker that refuses, or a topic with more
//! partitions than asked, is reported; no pod starts before the topic exists; with a metrics
//! adapter the gateways scale on connections and the status counts them; a deletion leaves the
//! children to the garbage collector and the topic in place; a prefix already served is refused.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use kube::api::{ApiResource, DynamicObject};
use kube::runtime::reflector::ObjectRef;
use operator::chat::ChatCluster;
use operator::chat::controller::{self, ChatContext, ChatWatches};
use operator::chat::resource::AutoscaleOn;
use operator::chat::topic::MemoryAdmin;
use operator::config::WorkloadConfig;
use operator::http::Readiness;
use operator::standin::{Deleted, Faults, StandIn};
use serde_json::{Value, json};
use tokio::sync::mpsc;

const CLUSTERS: &str = "weatherwise.io/v1alpha1/chatclusters";
const DEPLOYMENTS: &str = "apps/v1/deployments";
const SERVICES: &str = "v1/services";
const HPAS: &str = "autoscaling/v2/horizontalpodautoscalers";
const PDBS: &str = "policy/v1/poddisruptionbudgets";
const INGRESSES: &str = "networking.k8s.io/v1/ingresses";

/// A running chat controller against a stand-in and an in-memory broker.
struct Harness {
    api: StandIn,
    admin: Arc<MemoryAdmin>,
    ctx: Arc<ChatContext>,
    poke: mpsc::UnboundedSender<ObjectRef<DynamicObject>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

async fn client_for(api: &StandIn) -> kube::Client {
    let addr = api.clone().serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    kube::Client::try_from(kube::Config::new(format!("http://{addr}").parse().unwrap())).unwrap()
}

impl Harness {
    async fn start() -> Self {
        Self::start_with(StandIn::new(Faults::default(), true), Arc::new(MemoryAdmin::default())).await
    }

    async fn start_with(api: StandIn, admin: Arc<MemoryAdmin>) -> Self {
        let client = client_for(&api).await;
        let watches = ChatWatches::new(&client, &operator::config::Scope::cluster());
        let ctx = Arc::new(ChatContext::new(
            client,
            WorkloadConfig::example(),
            String::new(),
            AutoscaleOn::Auto,
            admin.clone(),
            watches.stores.clone(),
            None,
        ));
        let (poke, pokes) = mpsc::unbounded_channel();
        let pokes = futures::stream::unfold(pokes, |mut rx| async move { rx.recv().await.map(|r| (r, rx)) });
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
        Self { api, admin, ctx, poke, stop: Some(stop) }
    }

    /// Has the cluster looked at again, as its requeue timer would.
    fn poke(&self, namespace: &str, name: &str) {
        let ar = ApiResource::erase::<ChatCluster>(&());
        let _ = self.poke.send(ObjectRef::new_with(name, ar).within(namespace));
    }

    fn cluster(&self, name: &str) -> Value {
        self.api.get(CLUSTERS, "weatherwise", name).unwrap_or(Value::Null)
    }

    fn child(&self, collection: &str, name: &str) -> Option<Value> {
        self.api.get(collection, "weatherwise", name)
    }

    fn writes(&self) -> u64 {
        self.ctx.writes.children.load(Ordering::Relaxed) + self.ctx.writes.status.load(Ordering::Relaxed)
    }

    async fn until(&self, what: &str, check: impl Fn(&Self) -> bool) {
        let started = std::time::Instant::now();
        while !check(self) {
            assert!(started.elapsed() < Duration::from_secs(15), "never: {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

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

/// The snow-festival sample, in a namespace.
fn snow(namespace: &str) -> Value {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../config/samples/chat-cluster-snow-festival.yaml"
    ))
    .unwrap();
    let mut c: Value = serde_yaml::from_str(&text).unwrap();
    c["metadata"]["namespace"] = json!(namespace);
    c
}

fn condition(c: &Value, type_: &str) -> Value {
    c.pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|cs| cs.iter().find(|x| x["type"] == type_))
        .cloned()
        .unwrap_or(Value::Null)
}

fn reason(c: &Value, type_: &str) -> String {
    condition(c, type_)["reason"].as_str().unwrap_or_default().to_owned()
}

const CHILDREN: [(&str, &str); 8] = [
    (DEPLOYMENTS, "chat-snow-festival-gateway"),
    (DEPLOYMENTS, "chat-snow-festival-persister"),
    (DEPLOYMENTS, "chat-snow-festival-api"),
    (SERVICES, "chat-snow-festival-gateway"),
    (SERVICES, "chat-snow-festival-api"),
    (HPAS, "chat-snow-festival-gateway"),
    (PDBS, "chat-snow-festival-gateway"),
    (INGRESSES, "chat-snow-festival"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_cluster_gets_its_topic_then_its_children_owned_by_it_and_a_status() {
    let h = Harness::start().await;
    h.api.put(CLUSTERS, snow("weatherwise"));
    h.until("every child", |h| CHILDREN.iter().all(|(c, n)| h.child(c, n).is_some())).await;
    h.until("serving", |h| condition(&h.cluster("snow-festival"), "Ready")["status"] == "True").await;
    let uid = h.cluster("snow-festival")["metadata"]["uid"].clone();
    for (collection, name) in CHILDREN {
        let child = h.child(collection, name).unwrap();
        let owner = &child["metadata"]["ownerReferences"][0];
        assert_eq!(
            (&owner["kind"], &owner["uid"], &owner["controller"]),
            (&json!("ChatCluster"), &uid, &json!(true)),
            "{name}"
        );
    }
    assert_eq!(h.admin.get("chat.snow-festival.messages"), Some(12), "the topic, with the partitions asked");
    assert_eq!(h.admin.calls(), ["create chat.snow-festival.messages 12"]);
    let gateway = h.child(DEPLOYMENTS, "chat-snow-festival-gateway").unwrap();
    assert_eq!(gateway["spec"]["replicas"], 3, "created at the floor");
    let c = h.cluster("snow-festival");
    let status = &c["status"];
    assert_eq!(status["topic"], "chat.snow-festival.messages");
    assert_eq!(status["partitions"], 12);
    assert_eq!(status["readyGateways"], 3);
    assert_eq!(status["observedGeneration"], 1);
    assert_eq!(status["endpoint"], "wss://weather.example.com/ws/chat/snow-festival-");
    assert_eq!(reason(&c, "Ready"), "Serving");
    assert_eq!(
        (condition(&c, "TopicReady")["status"].clone(), reason(&c, "TopicReady")),
        (json!("True"), "Created".to_owned())
    );
    // No metrics adapter in this API server: CPU, and no connection count made up.
    assert_eq!(reason(&c, "Autoscaling"), "CpuFallback");
    assert_eq!(status["autoscaledOn"], "Cpu");
    assert!(status.get("connections").is_none(), "{status}");
    let hpa = h.child(HPAS, "chat-snow-festival-gateway").unwrap();
    assert_eq!(hpa["spec"]["metrics"][0]["type"], "Resource");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_steady_the_controller_writes_nothing_however_often_it_looks() {
    let h = Harness::start().await;
    h.api.put(CLUSTERS, snow("weatherwise"));
    h.until("serving", |h| reason(&h.cluster("snow-festival"), "Ready") == "Serving").await;
    h.settle().await;
    let (writes, changes) = (h.writes(), h.api.counts.changes.load(Ordering::Relaxed));
    let object: Arc<DynamicObject> = Arc::new(serde_json::from_value(h.cluster("snow-festival")).unwrap());
    for _ in 0..20 {
        controller::reconcile(object.clone(), h.ctx.clone()).await.unwrap();
    }
    assert_eq!(h.writes(), writes, "writes after 20 more reconciles of a steady cluster");
    assert_eq!(h.api.counts.changes.load(Ordering::Relaxed), changes);
    assert_eq!(h.admin.calls().len(), 1, "the topic is not touched again: {:?}", h.admin.calls());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_partitions_grow_the_topic_and_a_refusal_is_reported_while_the_cluster_runs_on() {
    let h = Harness::start().await;
    h.api.put(CLUSTERS, snow("weatherwise"));
    h.until("serving", |h| reason(&h.cluster("snow-festival"), "Ready") == "Serving").await;
    let mut grown = h.cluster("snow-festival");
    grown["spec"]["partitions"] = json!(16);
    h.api.put(CLUSTERS, grown);
    h.until("grown", |h| h.cluster("snow-festival")["status"]["partitions"] == 16).await;
    assert_eq!(h.admin.get("chat.snow-festival.messages"), Some(16));
    assert_eq!(h.admin.calls().last().map(String::as_str), Some("grow chat.snow-festival.messages 16"));
    let c = h.cluster("snow-festival");
    assert_eq!(reason(&c, "TopicReady"), "Grown");
    assert_eq!(c["status"]["observedGeneration"], 2);

    // A broker without CreatePartitions (tansu 0.6, say).
    h.admin.refuse_grow(Some("UnsupportedFeature (Local: Required feature not supported by broker)"));
    let mut more = h.cluster("snow-festival");
    more["spec"]["partitions"] = json!(24);
    h.api.put(CLUSTERS, more);
    h.until("the refusal reported", |h| reason(&h.cluster("snow-festival"), "TopicReady") == "GrowRefused").await;
    let c = h.cluster("snow-festival");
    assert_eq!(condition(&c, "TopicReady")["status"], "False");
    assert!(condition(&c, "TopicReady")["message"].as_str().unwrap().contains("UnsupportedFeature"), "{c:#}");
    assert_eq!(c["status"]["partitions"], 16, "what the broker has, not what was asked");
    assert_eq!(condition(&c, "Ready")["status"], "True", "the cluster runs on the partitions it has");
    assert_eq!(h.admin.get("chat.snow-festival.messages"), Some(16));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_with_more_partitions_than_asked_is_kept_as_it_is_and_reported() {
    let admin = Arc::new(MemoryAdmin::default());
    admin.put("chat.snow-festival.messages", 30);
    let h = Harness::start_with(StandIn::new(Faults::default(), true), admin).await;
    h.api.put(CLUSTERS, snow("weatherwise"));
    h.until("reported", |h| reason(&h.cluster("snow-festival"), "TopicReady") == "MorePartitionsThanAsked").await;
    let c = h.cluster("snow-festival");
    assert_eq!(c["status"]["partitions"], 30);
    assert_eq!(condition(&c, "TopicReady")["status"], "True", "the topic works; Kafka cannot take partitions away");
    assert!(h.admin.calls().is_empty(), "never shrunk, never re-created: {:?}", h.admin.calls());
    assert_eq!(h.admin.get("chat.snow-festival.messages"), Some(30));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_pod_starts_before_the_topic_exists() {
    let h = Harness::start().await;
    h.admin.set_down(true);
    h.api.put(CLUSTERS, snow("weatherwise"));
    h.until("the missing topic reported", |h| reason(&h.cluster("snow-festival"), "Ready") == "TopicMissing").await;
    let c = h.cluster("snow-festival");
    assert_eq!(reason(&c, "TopicReady"), "BrokerUnavailable");
    assert!(h.child(SERVICES, "chat-snow-festival-gateway").is_some(), "what runs no pod is there");
    for role in ["gateway", "persister", "api"] {
        assert!(
            h.child(DEPLOYMENTS, &format!("chat-snow-festival-{role}")).is_none(),
            "{role} started without its topic"
        );
    }
    h.admin.set_down(false);
    // The retry comes in 30 s; a look now, as that timer would.
    h.poke("weatherwise", "snow-festival");
    h.until("pods once the topic exists", |h| h.child(DEPLOYMENTS, "chat-snow-festival-gateway").is_some()).await;
    h.until("serving", |h| reason(&h.cluster("snow-festival"), "Ready") == "Serving").await;
    assert_eq!(h.admin.get("chat.snow-festival.messages"), Some(12));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_metrics_adapter_the_gateways_scale_on_connections_and_the_status_counts_them() {
    let api = StandIn::new(Faults::default(), true);
    api.serve_group("custom.metrics.k8s.io", true);
    let h = Harness::start_with(api, Arc::new(MemoryAdmin::default())).await;
    h.api.put(CLUSTERS, snow("weatherwise"));
    h.until("an autoscaler", |h| h.child(HPAS, "chat-snow-festival-gateway").is_some()).await;
    let hpa = h.child(HPAS, "chat-snow-festival-gateway").unwrap();
    assert_eq!(
        hpa["spec"]["metrics"],
        json!([{"type": "Pods", "pods": {"metric": {"name": "chat_sockets"}, "target": {"type": "AverageValue", "averageValue": "3000"}}}])
    );
    h.until("scaling on connections", |h| reason(&h.cluster("snow-festival"), "Autoscaling") == "ScalingOnConnections")
        .await;
    assert!(h.cluster("snow-festival")["status"].get("connections").is_none(), "nothing read yet, nothing shown");
    // The HPA controller reads 1,500 sockets per pod on 4 gateways.
    let mut read = hpa.clone();
    read["status"] = json!({
        "currentReplicas": 4, "desiredReplicas": 4,
        "currentMetrics": [{"type": "Pods", "pods": {"metric": {"name": "chat_sockets"}, "current": {"averageValue": "1500"}}}],
        "conditions": [{"type": "ScalingActive", "status": "True", "reason": "ValidMetricFound", "message": "ok"}]
    });
    h.api.put(HPAS, read.clone());
    h.until("connections counted", |h| h.cluster("snow-festival")["status"]["connections"] == 6000).await;
    assert_eq!(h.cluster("snow-festival")["status"]["autoscaledOn"], "Connections");
    // The adapter lacks the rule for chat_sockets: the autoscaler says so, and so does the status.
    read["status"]["conditions"] = json!([{"type": "ScalingActive", "status": "False", "reason": "FailedGetPodsMetric", "message": "unable to get metric chat_sockets"}]);
    h.api.put(HPAS, read);
    h.until("the autoscaler's trouble shown", |h| {
        reason(&h.cluster("snow-festival"), "Autoscaling") == "AutoscalerCannotScale"
    })
    .await;
    let message = condition(&h.cluster("snow-festival"), "Autoscaling")["message"].as_str().unwrap().to_owned();
    assert!(message.contains("FailedGetPodsMetric"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_scaled_to_zero_by_hand_is_raised_to_its_floor_and_an_edited_child_put_back() {
    let h = Harness::start().await;
    h.api.put(CLUSTERS, snow("weatherwise"));
    h.until("serving", |h| reason(&h.cluster("snow-festival"), "Ready") == "Serving").await;
    h.settle().await;
    h.api.put(DEPLOYMENTS, json!({"metadata": {"name": "chat-snow-festival-gateway", "namespace": "weatherwise"}, "spec": {"replicas": 0}}));
    h.until("raised to the floor", |h| {
        h.child(DEPLOYMENTS, "chat-snow-festival-gateway").unwrap()["spec"]["replicas"] == 3
    })
    .await;
    let mut edited = h.child(INGRESSES, "chat-snow-festival").unwrap();
    edited["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-read-timeout"] = json!("60");
    h.api.put(INGRESSES, edited);
    h.until("the WebSocket timeout put back", |h| {
        h.child(INGRESSES, "chat-snow-festival").unwrap()["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-read-timeout"]
            == "3600"
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_cluster_leaves_its_children_to_the_garbage_collector_and_its_topic_in_place() {
    let h = Harness::start().await;
    h.api.put(CLUSTERS, snow("weatherwise"));
    h.until("every child", |h| CHILDREN.iter().all(|(c, n)| h.child(c, n).is_some())).await;
    h.settle().await;
    let writes = h.writes();
    // No finalizer: the API server deletes it at once and collects what it owns.
    assert_eq!(h.api.remove(CLUSTERS, "weatherwise", "snow-festival"), Deleted::Gone);
    h.until("children gone", |h| CHILDREN.iter().all(|(c, n)| h.child(c, n).is_none())).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(CHILDREN.iter().all(|(c, n)| h.child(c, n).is_none()), "nothing recreated them");
    assert_eq!(h.writes(), writes, "the operator wrote nothing for the deletion");
    assert_eq!(h.admin.get("chat.snow-festival.messages"), Some(12), "the topic and its messages stay");
    assert_eq!(h.admin.calls(), ["create chat.snow-festival.messages 12"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prefix_already_served_or_an_invalid_spec_is_refused_and_runs_nothing() {
    let h = Harness::start().await;
    h.api.put(CLUSTERS, snow("weatherwise"));
    h.until("the first serves", |h| reason(&h.cluster("snow-festival"), "Ready") == "Serving").await;
    let mut twin = snow("weatherwise");
    // (Created within the same second, which is the API server's resolution, the order falls to
    // the names: this one's comes after.)
    twin["metadata"]["name"] = json!("snow-twin");
    h.api.put(CLUSTERS, twin);
    h.until("the second refused", |h| condition(&h.cluster("snow-twin"), "InvalidSpec")["status"] == "True").await;
    let c = h.cluster("snow-twin");
    assert!(condition(&c, "InvalidSpec")["message"].as_str().unwrap().contains("weatherwise/snow-festival"), "{c:#}");
    assert_eq!(condition(&c, "Ready")["status"], "False");
    assert!(h.child(DEPLOYMENTS, "chat-snow-twin-gateway").is_none());
    assert_eq!(h.admin.get("chat.snow-twin.messages"), None, "no topic for a refused cluster");
    // The API server's CEL rules refuse min > max; an object stored before them is refused here.
    let mut broken = snow("weatherwise");
    broken["metadata"]["name"] = json!("broken");
    broken["spec"]["roomPrefix"] = json!("broken-");
    broken["spec"]["gateway"]["replicas"] = json!({"min": 5, "max": 2});
    h.api.put(CLUSTERS, broken);
    h.until("invalid", |h| reason(&h.cluster("broken"), "InvalidSpec") == "RulesBroken").await;
    assert!(condition(&h.cluster("broken"), "InvalidSpec")["message"].as_str().unwrap().contains("min <= max"));
    assert!(h.child(DEPLOYMENTS, "chat-broken-gateway").is_none());
}
