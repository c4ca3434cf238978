//! A small closed-loop HTTP/1.1 load generator: `concurrency` keep-alive connections,
//! each sending its next request when the previous answer arrived, until a deadline.
//! Latencies go into an HDR histogram in microseconds.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Builds the `n`-th request of worker `w`.
pub type MakeRequest = Arc<dyn Fn(usize, u64) -> Request<Full<Bytes>> + Send + Sync>;

#[derive(Debug, Clone)]
pub struct Stats {
    pub statuses: BTreeMap<u16, u64>,
    /// Connection or protocol failures (no HTTP answer).
    pub errors: u64,
    pub latency_us: Histogram<u64>,
    pub elapsed: Duration,
}

impl Stats {
    fn new() -> Self {
        Self {
            statuses: BTreeMap::new(),
            errors: 0,
            latency_us: Histogram::new_with_bounds(1, 120_000_000, 3).expect("constant bounds are valid"),
            elapsed: Duration::ZERO,
        }
    }

    pub fn answered(&self) -> u64 {
        self.statuses.values().sum()
    }

    pub fn count(&self, status: u16) -> u64 {
        self.statuses.get(&status).copied().unwrap_or(0)
    }

    pub fn rps(&self) -> f64 {
        self.answered() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Latency at quantile `q` (0..=1), in milliseconds.
    pub fn ms(&self, q: f64) -> f64 {
        self.latency_us.value_at_quantile(q) as f64 / 1000.0
    }

    /// Figures from answers collected elsewhere (an open-loop run).
    pub fn from_answers(answers: &[(u16, Duration)], errors: u64, elapsed: Duration) -> Self {
        let mut stats = Stats::new();
        for (status, took) in answers {
            *stats.statuses.entry(*status).or_default() += 1;
            let _ = stats.latency_us.record(u64::try_from(took.as_micros()).unwrap_or(u64::MAX).max(1));
        }
        stats.errors = errors;
        stats.elapsed = elapsed;
        stats
    }

    fn merge(&mut self, other: &Stats) {
        for (s, n) in &other.statuses {
            *self.statuses.entry(*s).or_default() += n;
        }
        self.errors += other.errors;
        let _ = self.latency_us.add(&other.latency_us);
    }
}

/// Runs the closed loop for `duration` and returns the merged figures.
pub async fn run(addr: SocketAddr, concurrency: usize, duration: Duration, make: MakeRequest) -> Stats {
    run_observed(addr, concurrency, duration, make, None, None).await
}

/// [`run`], handing every answer to `observe` (which then reads each body); with `pace`, each
/// connection sends its n-th request no earlier than n × `pace` after the start.
pub async fn run_observed(
    addr: SocketAddr,
    concurrency: usize,
    duration: Duration,
    make: MakeRequest,
    observe: Option<Observe>,
    pace: Option<Duration>,
) -> Stats {
    let started = Instant::now();
    let deadline = started + duration;
    let workers: Vec<_> = (0..concurrency)
        .map(|w| tokio::spawn(worker(addr, w, started, deadline, make.clone(), observe.clone(), pace)))
        .collect();
    let mut total = Stats::new();
    for w in workers {
        if let Ok(stats) = w.await {
            total.merge(&stats);
        }
    }
    total.elapsed = started.elapsed();
    total
}

/// A keep-alive HTTP/1.1 connection (its driver runs on its own task).
pub(crate) async fn connect(addr: SocketAddr) -> Option<hyper::client::conn::http1::SendRequest<Full<Bytes>>> {
    let stream = TcpStream::connect(addr).await.ok()?;
    let _ = stream.set_nodelay(true);
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.ok()?;
    tokio::spawn(conn);
    Some(sender)
}

async fn worker(
    addr: SocketAddr,
    w: usize,
    started: Instant,
    deadline: Instant,
    make: MakeRequest,
    observe: Option<Observe>,
    pace: Option<Duration>,
) -> Stats {
    let mut stats = Stats::new();
    let mut n = 0u64;
    'connect: while Instant::now() < deadline {
        let Some(mut sender) = connect(addr).await else {
            stats.errors += 1;
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        while Instant::now() < deadline {
            if let Some(pace) = pace {
                tokio::time::sleep_until((started + pace.mul_f64(n as f64)).into()).await;
            }
            let req = make(w, n);
            n += 1;
            let sent = Instant::now();
            if sender.ready().await.is_err() {
                stats.errors += 1;
                continue 'connect;
            }
            match sender.send_request(req).await {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let body = resp.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                    let took = sent.elapsed();
                    let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX).max(1);
                    let _ = stats.latency_us.record(us);
                    *stats.statuses.entry(status).or_default() += 1;
                    if let Some(observe) = &observe {
                        observe(n - 1, status, &body, took);
                    }
                }
                Err(_) => {
                    stats.errors += 1;
                    continue 'connect;
                }
            }
        }
    }
    stats
}

/// Sees every answer of [`run_count`]: (request index, status, body, latency).
pub type Observe = Arc<dyn Fn(u64, u16, &Bytes, Duration) + Send + Sync>;

/// Sends exactly `total` requests (`make(0, i)` for i in 0..total) over `concurrency`
/// keep-alive connections, as fast as they are answered, and returns the figures.
pub async fn run_count(addr: SocketAddr, concurrency: usize, total: u64, make: MakeRequest, observe: Observe) -> Stats {
    run_count_on(&[addr], concurrency, total, make, observe).await
}

/// [`run_count`] spread over several replicas: connection `k` goes to `addrs[k % n]`, as
/// a Service spreads connections over its endpoints.
pub async fn run_count_on(
    addrs: &[SocketAddr],
    concurrency: usize,
    total: u64,
    make: MakeRequest,
    observe: Observe,
) -> Stats {
    let started = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let workers: Vec<_> = (0..concurrency)
        .map(|k| {
            let (next, make, observe) = (next.clone(), make.clone(), observe.clone());
            let addr = addrs[k % addrs.len()];
            tokio::spawn(async move { count_worker(addr, next, total, make, observe).await })
        })
        .collect();
    let mut all = Stats::new();
    for w in workers {
        if let Ok(stats) = w.await {
            all.merge(&stats);
        }
    }
    all.elapsed = started.elapsed();
    all
}

async fn count_worker(
    addr: SocketAddr,
    next: Arc<std::sync::atomic::AtomicU64>,
    total: u64,
    make: MakeRequest,
    observe: Observe,
) -> Stats {
    use std::sync::atomic::Ordering;
    let mut stats = Stats::new();
    let mut pending: Option<u64> = None;
    'connect: loop {
        let Some(mut sender) = connect(addr).await else {
            stats.errors += 1;
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        loop {
            // A request cut off by a broken connection is sent again on a new one.
            let i = match pending.take() {
                Some(i) => i,
                None => next.fetch_add(1, Ordering::Relaxed),
            };
            if i >= total {
                return stats;
            }
            if sender.ready().await.is_err() {
                pending = Some(i);
                stats.errors += 1;
                continue 'connect;
            }
            let sent = Instant::now();
            match sender.send_request(make(0, i)).await {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let body = resp.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                    let took = sent.elapsed();
                    let _ = stats.latency_us.record(u64::try_from(took.as_micros()).unwrap_or(u64::MAX).max(1));
                    *stats.statuses.entry(status).or_default() += 1;
                    observe(i, status, &body, took);
                }
                Err(_) => {
                    stats.errors += 1;
                    pending = Some(i);
                    continue 'connect;
                }
            }
        }
    }
}

/// A request with the headers every benchmark request carries.
pub fn request(
    method: &str,
    addr: SocketAddr,
    path: &str,
    token: Option<&str>,
    body: Option<&serde_json::Value>,
) -> Request<Full<Bytes>> {
    let mut builder = Request::builder().method(method).uri(path).header("host", addr.to_string());
    if let Some(t) = token {
        builder = builder.header("authorization", format!("Bearer {t}"));
    }
    let body = match body {
        Some(json) => {
            builder = builder.header("content-type", "application/json");
            Full::new(Bytes::from(json.to_string()))
        }
        None => Full::new(Bytes::new()),
    };
    builder.body(body).unwrap_or_else(|_| Request::new(Full::new(Bytes::new())))
}

/// One request on a fresh connection; returns the status and the raw body.
pub async fn send_raw(addr: SocketAddr, req: Request<Full<Bytes>>) -> anyhow::Result<(u16, Bytes)> {
    let stream = TcpStream::connect(addr).await?;
    let _ = stream.set_nodelay(true);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let resp = sender.send_request(req).await?;
    let status = resp.status().as_u16();
    Ok((status, resp.into_body().collect().await?.to_bytes()))
}

/// One request on a fresh connection; returns the status and the JSON body (or Null).
pub async fn send_once(addr: SocketAddr, req: Request<Full<Bytes>>) -> anyhow::Result<(u16, serde_json::Value)> {
    let (status, body) = send_raw(addr, req).await?;
    Ok((status, serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null)))
}

pub async fn get_once(addr: SocketAddr, path: &str, token: Option<&str>) -> anyhow::Result<(u16, serde_json::Value)> {
    send_once(addr, request("GET", addr, path, token, None)).await
}

pub async fn post_once(
    addr: SocketAddr,
    path: &str,
    body: &serde_json::Value,
) -> anyhow::Result<(u16, serde_json::Value)> {
    send_once(addr, request("POST", addr, path, None, Some(body))).await
}
