//! `ww bench broker`: the Kafka broker alone, at the chat benchmark's rate and shape, from
//! one process: keyed appends (acks=all, through the platform's producer) read back by live
//! tails (what each chat gateway runs) and a consumer group (what the persister runs). No
//! WebSocket, no SQL: what is left of `ww bench chat`'s latency is the broker's and the
//! client library's. Beside it, in the same run, the same load on the in-memory bus.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use platform::events::{Envelope, EventBus, Handler, KafkaBus, KafkaConfig, MemoryBus};
use serde_json::json;
use uuid::Uuid;

const TOPIC: &str = "bench.broker";

#[derive(Debug, clap::Args)]
pub struct BrokerBenchArgs {
    /// Messages appended per second (`ww bench chat`'s default shape sends 1,000/s).
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(1..=20_000))]
    pub rate: u64,
    /// Keys the messages are spread over (the chat benchmark's rooms).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub keys: u64,
    /// Live tails reading every message (one per chat gateway).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=8))]
    pub tails: u64,
    /// Partitions of the run's topic.
    #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub partitions: u32,
    /// Bytes of text per message (a chat message's envelope is about 400 bytes in all).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(0..=100_000))]
    pub payload_bytes: u64,
    /// Seconds of appending.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(5..=600))]
    pub duration_seconds: u64,
    /// Kafka brokers (the run's topic and groups get a fresh prefix).
    #[arg(long, env = "WW_BENCH_KAFKA_BROKERS", default_value = "127.0.0.1:9092")]
    pub kafka_brokers: String,
    /// Skip the in-memory bus run (figures without a ratio).
    #[arg(long)]
    pub no_ceiling: bool,
    /// Print one JSON object with the figures as the last line.
    #[arg(long)]
    pub json: bool,
}

/// Every reader's record: when each message arrived (µs after it was appended) and how often.
#[derive(Default)]
struct Seen {
    latency_us: Option<Histogram<u64>>,
    count: HashMap<Uuid, u32>,
}

#[derive(Clone)]
struct Reader {
    origin: Instant,
    seen: Arc<Mutex<Seen>>,
}

impl Reader {
    fn new(origin: Instant) -> Self {
        let seen = Seen { latency_us: Some(histogram()), count: HashMap::new() };
        Self { origin, seen: Arc::new(Mutex::new(seen)) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Handler for Reader {
    async fn handle(&self, event: &Envelope) -> anyhow::Result<()> {
        let now = self.origin.elapsed().as_micros() as u64;
        let Some(sent) = event.data.get("t").and_then(serde_json::Value::as_u64) else { return Ok(()) };
        let mut seen = self.lock();
        if let Some(h) = seen.latency_us.as_mut() {
            h.saturating_record(now.saturating_sub(sent).max(1));
        }
        *seen.count.entry(event.id).or_default() += 1;
        Ok(())
    }

    fn max_batch(&self) -> usize {
        500
    }
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds")
}

struct Figures {
    sent: u64,
    acked: HashSet<Uuid>,
    ack_us: Histogram<u64>,
    /// Append → each tail (every tail's arrivals together).
    tail_us: Histogram<u64>,
    /// Append → the consumer group.
    group_us: Histogram<u64>,
    lost: u64,
    duplicated: u64,
    sending: Duration,
    cpu: Vec<(String, f64)>,
}

fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    (h.value_at_quantile(q) as f64 / 100.0).round() / 10.0
}

async fn drive(bus: EventBus, args: &BrokerBenchArgs, run_id: &str) -> anyhow::Result<Figures> {
    let origin = Instant::now();
    bus.ensure_topics(&[TOPIC]).await?;
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let mut tails = Vec::new();
    for i in 0..args.tails {
        let reader = Reader::new(origin);
        let (_task, mut caught_up) =
            bus.spawn_tail(&format!("bench-tail-{i}"), &[TOPIC], 0, reader.clone(), stop.clone());
        tokio::time::timeout(Duration::from_secs(30), caught_up.wait_for(|c| *c))
            .await
            .map_err(|_| anyhow::anyhow!("tail {i} did not start within 30 s"))??;
        tails.push(reader);
    }
    let group = Reader::new(origin);
    bus.spawn_consumer(&format!("bench-group-{run_id}"), &[TOPIC], group.clone(), stop.clone());
    // The group's first assignment takes a moment; its first message must not count that.
    tokio::time::sleep(Duration::from_secs(3)).await;

    let text = "x".repeat(usize::try_from(args.payload_bytes).unwrap_or(0));
    let acked = Arc::new(Mutex::new((HashSet::new(), histogram())));
    let before = super::cpu::Snapshot::take();
    let started = Instant::now();
    let duration = Duration::from_secs(args.duration_seconds);
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / args.rate as f64));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut sent = 0u64;
    let mut appends = tokio::task::JoinSet::new();
    while started.elapsed() < duration {
        tick.tick().await;
        let key = format!("room-{}", sent % args.keys);
        sent += 1;
        let (bus, acked, text) = (bus.clone(), acked.clone(), text.clone());
        appends.spawn(async move {
            let t = origin.elapsed().as_micros() as u64;
            let event = Envelope::new("BenchAppended", "bench", chrono::Utc::now(), &json!({ "t": t, "text": text }))?;
            bus.append(TOPIC, &key, &event).await?;
            let took = (origin.elapsed().as_micros() as u64).saturating_sub(t).max(1);
            let mut acked = acked.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            acked.0.insert(event.id);
            acked.1.saturating_record(took);
            anyhow::Ok(())
        });
        while appends.try_join_next().is_some() {}
    }
    let sending = started.elapsed();
    while appends.join_next().await.is_some() {}
    let cpu = before.cores_until(
        &super::cpu::Snapshot::take(),
        &BTreeMap::from([(std::process::id(), "ww bench broker".to_owned())]),
    );
    let (acked, ack_us) = std::mem::replace(
        &mut *acked.lock().unwrap_or_else(std::sync::PoisonError::into_inner),
        (HashSet::new(), histogram()),
    );

    // Until every reader has every acked message, or nothing moved for 15 s.
    let readers: Vec<&Reader> = tails.iter().chain([&group]).collect();
    let mut last = (0usize, Instant::now());
    loop {
        let have: usize = readers.iter().map(|r| r.lock().count.len()).sum();
        if have != last.0 {
            last = (have, Instant::now());
        }
        if have >= acked.len() * readers.len() || last.1.elapsed() > Duration::from_secs(15) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let _ = stop_tx.send(true);

    let (mut lost, mut duplicated) = (0, 0);
    let mut tail_us = histogram();
    for (i, r) in readers.iter().enumerate() {
        let mut seen = r.lock();
        lost += acked.iter().filter(|id| !seen.count.contains_key(id)).count() as u64;
        duplicated += seen.count.values().map(|n| u64::from(n.saturating_sub(1))).sum::<u64>();
        if i < tails.len() {
            tail_us.add(seen.latency_us.take().unwrap_or_else(histogram))?;
        }
    }
    let group_us = group.lock().latency_us.take().unwrap_or_else(histogram);
    Ok(Figures { sent, acked, ack_us, tail_us, group_us, lost, duplicated, sending, cpu })
}

pub async fn run(args: BrokerBenchArgs) -> anyhow::Result<()> {
    let run_id = Uuid::new_v4().simple().to_string()[..8].to_owned();
    let config = KafkaConfig {
        kafka_brokers: Some(args.kafka_brokers.clone()),
        kafka_prefix: super::kafka_prefix(&run_id),
        kafka_group_prefix: None,
        kafka_partitions: i32::try_from(args.partitions)?,
        // One local broker.
        kafka_replication_factor: 1,
        kafka_min_insync_replicas: 1,
        kafka_message_timeout_ms: 10_000,
    };
    eprintln!(
        "{}/s appends over {} keys and {} partitions, read by {} tails and a consumer group, for {} s…",
        args.rate, args.keys, args.partitions, args.tails, args.duration_seconds
    );
    let real = drive(EventBus::Kafka(Arc::new(KafkaBus::new(&config)?)), &args, &run_id).await?;
    let ceiling = if args.no_ceiling {
        None
    } else {
        eprintln!("the same load on the in-memory bus…");
        Some(drive(EventBus::Memory(Arc::new(MemoryBus::new())), &args, &run_id).await?)
    };

    let per_s = |f: &Figures| f.acked.len() as f64 / f.sending.as_secs_f64().max(1e-9);
    let ratio = ceiling.as_ref().map(|c| per_s(&real) / per_s(c).max(1e-9));
    println!("appended         {} sent, {} acked ({:.0}/s)", real.sent, real.acked.len(), per_s(&real));
    println!(
        "ack (ms)         p50 {}  p99 {}  max {}   (append → the broker's ack, acks=all)",
        ms(&real.ack_us, 0.5),
        ms(&real.ack_us, 0.99),
        ms(&real.ack_us, 1.0)
    );
    println!(
        "tail (ms)        p50 {}  p90 {}  p99 {}  max {}   (append → each live tail: a chat gateway's path)",
        ms(&real.tail_us, 0.5),
        ms(&real.tail_us, 0.9),
        ms(&real.tail_us, 0.99),
        ms(&real.tail_us, 1.0)
    );
    println!(
        "group (ms)       p50 {}  p99 {}   (append → the consumer group: the persister's path)",
        ms(&real.group_us, 0.5),
        ms(&real.group_us, 0.99)
    );
    println!("check            lost {} (acked, missing at a reader); duplicated {}", real.lost, real.duplicated);
    println!("cpu (cores)      {}", super::cpu::describe(&real.cpu));
    if let (Some(c), Some(ratio)) = (&ceiling, ratio) {
        println!(
            "ceiling          {:.0}/s, tail p99 {} ms (in-memory bus); ratio {ratio:.3}",
            per_s(c),
            ms(&c.tail_us, 0.99)
        );
    }
    if args.json {
        println!(
            "{}",
            json!({
                "rate": args.rate,
                "partitions": args.partitions,
                "tails": args.tails,
                "acked_per_s": (per_s(&real) * 10.0).round() / 10.0,
                "ack_p50_ms": ms(&real.ack_us, 0.5),
                "ack_p99_ms": ms(&real.ack_us, 0.99),
                "p50_ms": ms(&real.tail_us, 0.5),
                "p90_ms": ms(&real.tail_us, 0.9),
                "p99_ms": ms(&real.tail_us, 0.99),
                "max_ms": ms(&real.tail_us, 1.0),
                "group_p99_ms": ms(&real.group_us, 0.99),
                "lost": real.lost,
                "duplicated": real.duplicated,
                "ceiling_p99_ms": ceiling.as_ref().map(|c| ms(&c.tail_us, 0.99)),
                "ratio": ratio.map(|r| (r * 1000.0).round() / 1000.0),
                "cpu_cores": real.cpu.iter().map(|(l, c)| (l.clone(), json!((c * 100.0).round() / 100.0))).collect::<serde_json::Map<_, _>>(),
            })
        );
    }
    if real.lost > 0 || real.duplicated > 0 {
        anyhow::bail!("{} acked messages missing at a reader, {} read twice", real.lost, real.duplicated);
    }
    Ok(())
}
