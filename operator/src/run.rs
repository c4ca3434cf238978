//! `ww-operator run`: the CouponCampaign and ChatCluster controllers behind one leader lease,
//! with `/metrics`, `/healthz` and `/readyz`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use kube::api::Api;
use kube::runtime::events::Recorder;
use tokio::sync::watch;

use platform::events::contracts::topics;
use platform::events::{EventBus, KafkaBus, KafkaConfig};

use crate::announce::Announcer;
use crate::chat::controller::{self as chat_controller, ChatContext, ChatWatches};
use crate::chat::resource::AutoscaleOn;
use crate::chat::topic::KafkaTopicAdmin;
use crate::config::{Scope, WorkloadConfig};
use crate::controller::{self, ChildWatches, Context};
use crate::counters::{Counters, CountsFeed};
use crate::http::{self, Readiness};
use crate::leader::{self, LeaseConfig};

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Where `/metrics`, `/healthz` and `/readyz` are served.
    #[arg(long, env = "WW_OPERATOR_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,
    /// The namespace of the leader Lease (the operator's own).
    #[arg(long, env = "POD_NAMESPACE", default_value = "weatherwise")]
    pub lease_namespace: String,
    /// The Lease both replicas compete for.
    #[arg(long, env = "WW_OPERATOR_LEASE", default_value = "ww-operator")]
    pub lease_name: String,
    /// This replica's identity in the Lease (its pod name).
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
    /// A lease unchanged this long counts as expired.
    #[arg(long, env = "WW_OPERATOR_LEASE_SECONDS", default_value_t = 15)]
    pub lease_seconds: u64,
    /// How long a campaign's last issuers keep running after its route is removed, for the
    /// ingress controller to stop sending to them (cloud load balancers may need 30 s or more).
    #[arg(long, env = "WW_OPERATOR_ROUTE_DRAIN_SECONDS", default_value_t = 10)]
    pub route_drain_seconds: u64,
    /// What chat gateways scale on unless their ChatCluster says: `auto` (open connections when
    /// the cluster serves custom.metrics.k8s.io, else CPU), `connections` or `cpu`.
    #[arg(long, env = "WW_OPERATOR_CHAT_AUTOSCALE_ON", default_value = "auto")]
    pub chat_autoscale_on: AutoscaleOn,
    /// Only this namespace's campaigns and chat clusters (and their children), e.g. the release's,
    /// where the Secrets the workloads need are; absent or empty: every namespace.
    #[arg(long, env = "WW_OPERATOR_WATCH_NAMESPACE")]
    pub watch_namespace: Option<String>,
    #[command(flatten)]
    pub workload: WorkloadConfig,
    /// The event bus: the operator announces campaigns on it and reads their issuers' counts;
    /// chat clusters' topics are created and grown on it (with its prefix, replication factor
    /// and `min.insync.replicas`).
    #[command(flatten)]
    pub kafka: KafkaConfig,
}

/// A unique identity when the pod name is not given: the host name and a random suffix (two
/// replicas must never share one, or both would renew "their" lease).
fn default_identity() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok().map(|h| h.trim().to_owned()))
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "ww-operator".to_owned());
    format!("{host}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8])
}

pub async fn run(
    mut args: RunArgs,
    metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
) -> anyhow::Result<()> {
    // The workloads it creates use the event bus exactly as it does: same prefix, partitions and
    // replication (else an issuer would publish to other topics than its persister reads).
    args.workload.bus_env = vec![
        ("WW_KAFKA_PREFIX".to_owned(), args.kafka.kafka_prefix.clone()),
        ("WW_KAFKA_PARTITIONS".to_owned(), args.kafka.kafka_partitions.to_string()),
        ("WW_KAFKA_REPLICATION_FACTOR".to_owned(), args.kafka.kafka_replication_factor.to_string()),
        ("WW_KAFKA_MIN_INSYNC_REPLICAS".to_owned(), args.kafka.kafka_min_insync_replicas.to_string()),
    ];
    anyhow::ensure!(
        args.kafka.kafka_brokers.is_some(),
        "the operator announces campaigns on the event bus and reads their issuers' counts from it: \
         set --kafka-brokers or WW_KAFKA_BROKERS"
    );
    let bus = EventBus::Kafka(Arc::new(KafkaBus::new(&args.kafka)?));
    let announcer = Arc::new(Announcer::new(bus.clone()));
    let client = kube::Client::try_default().await?;
    let identity = args.identity.clone().filter(|i| !i.is_empty()).unwrap_or_else(default_identity);
    let (stop_tx, stop_rx) = watch::channel(false);
    let ready = Readiness::default();
    let server = tokio::spawn(http::serve(args.listen, http::router(metrics, ready.clone()), {
        let mut stop = stop_rx.clone();
        async move {
            let _ = stop.changed().await;
        }
    }));
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop_tx.send(true);
    });

    let (leading_tx, mut leading_rx) = watch::channel(false);
    let lease = LeaseConfig {
        namespace: args.lease_namespace.clone(),
        name: args.lease_name.clone(),
        identity: identity.clone(),
        duration: Duration::from_secs(args.lease_seconds),
        retry: Duration::from_secs((args.lease_seconds / 5).max(1)),
    };
    // The election stops (and releases the lease) only once the controller has stopped.
    let (election_stop, election_stop_rx) = watch::channel(false);
    let election = tokio::spawn(leader::run(
        Api::<Lease>::namespaced(client.clone(), &args.lease_namespace),
        lease,
        leading_tx,
        election_stop_rx,
    ));
    // A standby is ready: it serves its endpoints and waits for the lease.
    ready.set(true);
    tracing::info!(%identity, "waiting for the lease");
    let mut stop = stop_rx.clone();
    loop {
        if *leading_rx.borrow() {
            break;
        }
        tokio::select! {
            changed = leading_rx.changed() => if changed.is_err() { break },
            _ = stop.changed() => {
                let _ = election_stop.send(true);
                let _ = election.await;
                return Ok(());
            }
        }
    }
    tracing::info!(%identity, "leading: starting the controller");
    ready.set(false);
    if let Err(e) = announcer.ensure_topics().await {
        // Announcements retry per campaign; the controller does not wait for the bus.
        tracing::warn!(error = %e, "could not create the campaign topics yet");
    }
    let scope = Scope::from_option(args.watch_namespace.as_deref());
    tracing::info!(%scope, "watching campaigns and chat clusters");
    let watches = ChildWatches::new(&client, &scope);
    let chat_watches = ChatWatches::new(&client, &scope);
    let recorder = Recorder::new(client.clone(), controller::reporter(Some(identity)));
    let chat_ctx = Arc::new(ChatContext::new(
        client.clone(),
        args.workload.clone(),
        args.kafka.kafka_prefix.clone(),
        args.chat_autoscale_on,
        Arc::new(KafkaTopicAdmin::new(&args.kafka)?),
        chat_watches.stores.clone(),
        Some(recorder.clone()),
    ));
    let counters = Counters::default();
    let ctx = Arc::new(
        Context::new(
            client,
            args.workload,
            Arc::new(chrono::Utc::now),
            watches.stores.clone(),
            counters.clone(),
            Some(recorder),
        )
        .with_route_drain(Duration::from_secs(args.route_drain_seconds))
        .with_announcer(announcer),
    );
    // The issuers' counts, from now on (this process only, nothing committed: a fresh
    // consumer group per process, so a killed operator leaves no member behind to wait for).
    let (changed_tx, changed_rx) = tokio::sync::mpsc::channel::<String>(1024);
    let feed = bus.spawn_broadcast(
        "ww-operator.counts",
        &[topics::CAMPAIGN_COUNTS],
        CountsFeed { counters, changed: changed_tx },
        stop_rx.clone(),
    );
    let reconcile_on = controller::on_counts(ctx.clone(), changed_rx);
    // Stop reconciling as soon as the lease is lost, or on SIGTERM.
    let mut lost = leading_rx.clone();
    let mut stop = stop_rx.clone();
    let shutdown = async move {
        tokio::select! {
            _ = async { while lost.changed().await.is_ok() && *lost.borrow() {} } => {}
            _ = stop.changed() => {}
        }
    };
    // Both controllers stop on one signal; the process is ready once both have synced.
    let (halt, halted) = watch::channel(false);
    let halted_on = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|h| *h).await;
    };
    let (campaigns_ready, chats_ready) = (Readiness::default(), Readiness::default());
    let both = (campaigns_ready.clone(), chats_ready.clone(), ready.clone());
    tokio::spawn(async move {
        while !(both.0.get() && both.1.get()) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        both.2.set(true);
    });
    let campaigns = controller::run(ctx, watches, reconcile_on, campaigns_ready, halted_on(halted.clone()));
    let chats =
        chat_controller::run(chat_ctx, chat_watches, futures::stream::pending(), chats_ready, halted_on(halted));
    let mut reconciling = tokio::spawn(async move {
        futures::join!(campaigns, chats);
    });
    shutdown.await;
    if *leading_rx.borrow() {
        // SIGTERM while leading: the lease is still renewed, so in-flight reconciles get a
        // bounded time to finish before it is given up.
        let _ = halt.send(true);
        if tokio::time::timeout(Duration::from_secs(20), &mut reconciling).await.is_err() {
            reconciling.abort();
        }
    } else {
        // The lease is lost: another replica may lead already; stop writing at once.
        reconciling.abort();
    }
    feed.abort();
    let lost_lease = !*leading_rx.borrow();
    let _ = election_stop.send(true);
    let _ = election.await;
    server.abort();
    if lost_lease && !*stop_rx.borrow() {
        // Exit so the kubelet restarts a clean standby; a replica that lost the lease must not
        // win it back with a stopped controller.
        anyhow::bail!("lost the leader lease; exiting");
    }
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(term) => term,
            Err(_) => return std::future::pending().await,
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
