//! The lean load engine: hyper HTTP/1.1 connections on a few generator threads, requests built
//! from templates made once, every request timed into an HdrHistogram in nanoseconds.
//!
//! Two schedules:
//! - closed loop: each connection sends its next request as soon as the previous answer is
//!   read; latency is the service time.
//! - open loop: a pacer thread emits intended send times at a constant rate into a shared
//!   queue that every connection takes from; latency is measured from the *intended* send time
//!   (as wrk2 does), so a slow server cannot hide its queueing (coordinated omission). Service
//!   time and the pacer's own lateness are kept too, and intended sends that no connection could
//!   start before the end are counted as dropped.
//!
//! The pacer sleeps with `std::thread::sleep` (tens of microseconds of jitter on Linux) rather
//! than tokio's timer, whose millisecond wheel would add up to a millisecond to every latency.

pub mod client;
mod connection;
pub mod http1;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::Full;
use hyper::header::{CONTENT_TYPE, HOST, HeaderName, HeaderValue};
use hyper::{Method, Request};

use crate::results::{Bucket, MAX_TRACKABLE_NS, new_histogram};
use connection::{Connection, Rotation, watchdog};

fn record(h: &mut Histogram<u64>, d: Duration) {
    let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX).clamp(1, MAX_TRACKABLE_NS);
    h.saturating_record(ns);
}

/// One request, prepared once and cloned cheaply for every send.
#[derive(Debug, Clone)]
pub struct RequestTemplate {
    pub method: Method,
    pub path: String,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Bytes,
}

impl RequestTemplate {
    /// `GET path` with an optional bearer token.
    pub fn get(path: &str, bearer: Option<&str>) -> anyhow::Result<Self> {
        let mut headers = Vec::new();
        if let Some(token) = bearer {
            headers.push((hyper::header::AUTHORIZATION, HeaderValue::from_str(&format!("Bearer {token}"))?));
        }
        Ok(Self { method: Method::GET, path: path.to_owned(), headers, body: Bytes::new() })
    }

    /// `POST path` with a JSON body.
    pub fn post_json(path: &str, body: &serde_json::Value) -> Self {
        Self {
            method: Method::POST,
            path: path.to_owned(),
            headers: vec![(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
            body: Bytes::from(body.to_string()),
        }
    }

    fn build(&self, host: &HeaderValue) -> Request<Full<Bytes>> {
        let mut request = Request::new(Full::new(self.body.clone()));
        *request.method_mut() = self.method.clone();
        // The path was validated when the target was parsed; a bad one fails the request only.
        *request.uri_mut() = self.path.parse().unwrap_or_default();
        let headers = request.headers_mut();
        headers.insert(HOST, host.clone());
        for (name, value) in &self.headers {
            headers.insert(name.clone(), value.clone());
        }
        request
    }
}

/// When requests are sent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Schedule {
    /// Each connection sends again as soon as it has its answer.
    Closed,
    /// A constant arrival rate (requests per second) over all connections.
    Open { rate: f64 },
}

/// Everything one load run needs.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    pub addr: SocketAddr,
    /// Further instances of the same server: connection `i` goes to `[addr, others..][i % n]`,
    /// so the load is split evenly.
    pub others: Vec<SocketAddr>,
    /// Templates; connection `i` sends `requests[i]`, then `requests[i + connections]`, and so
    /// on around the list, so many templates (tokens) are drawn from evenly.
    pub requests: Vec<RequestTemplate>,
    pub connections: usize,
    pub threads: usize,
    pub warmup: Duration,
    pub duration: Duration,
    pub schedule: Schedule,
    /// Per-request deadline; a request past it counts as an error (timeout).
    pub timeout: Duration,
    /// CPUs the generator threads are pinned to, when set.
    pub cpus: Option<Vec<usize>>,
}

impl LoadSpec {
    /// The instance connection `c` talks to.
    pub fn target(&self, c: usize) -> SocketAddr {
        if self.others.is_empty() {
            return self.addr;
        }
        match c % (self.others.len() + 1) {
            0 => self.addr,
            k => self.others.get(k - 1).copied().unwrap_or(self.addr),
        }
    }
}

/// What one load run measured (warm-up excluded).
#[derive(Debug)]
pub struct LoadOutcome {
    /// Closed loop: service time. Open loop: from intended send time to the end of the answer.
    pub latency: Histogram<u64>,
    /// Open loop only: from actual send to the end of the answer.
    pub service: Histogram<u64>,
    /// Open loop only: how late the request left relative to its intended time.
    pub send_lag: Histogram<u64>,
    /// Answers received for requests started inside the window.
    pub requests: u64,
    /// Status codes of those answers.
    pub statuses: BTreeMap<u16, u64>,
    /// Connection failures and timeouts.
    pub errors: u64,
    pub timeouts: u64,
    /// Length of the measurement window.
    pub window: Duration,
    /// Open loop: intended sends inside the window.
    pub offered: u64,
    /// Open loop: intended sends no connection started before the end.
    pub dropped: u64,
    /// Response header lines seen for `server-timing` (login scenario), when asked for.
    pub server_timings: Vec<String>,
    /// Outcomes per bucket of intended send time, when asked for.
    pub timeline: Vec<Bucket>,
}

impl LoadOutcome {
    fn empty(window: Duration) -> Self {
        Self {
            latency: new_histogram(),
            service: new_histogram(),
            send_lag: new_histogram(),
            requests: 0,
            statuses: BTreeMap::new(),
            errors: 0,
            timeouts: 0,
            window,
            offered: 0,
            dropped: 0,
            server_timings: Vec::new(),
            timeline: Vec::new(),
        }
    }

    fn bucket(&mut self, keep: Keep, window: Window, at: Instant) -> Option<&mut Bucket> {
        let width = keep.timeline?;
        let index = (at.checked_duration_since(window.start)?.as_nanos() / width.as_nanos().max(1)) as usize;
        if index >= 100_000 {
            return None;
        }
        if self.timeline.len() <= index {
            self.timeline.resize(index + 1, Bucket::default());
        }
        self.timeline.get_mut(index)
    }

    /// Adds another outcome of the same window (another thread, or another repetition).
    pub fn merge(&mut self, other: Self) {
        let _ = self.latency.add(&other.latency);
        let _ = self.service.add(&other.service);
        let _ = self.send_lag.add(&other.send_lag);
        self.requests += other.requests;
        for (status, n) in other.statuses {
            *self.statuses.entry(status).or_default() += n;
        }
        self.errors += other.errors;
        self.timeouts += other.timeouts;
        self.dropped += other.dropped;
        self.server_timings.extend(other.server_timings);
        if self.timeline.len() < other.timeline.len() {
            self.timeline.resize(other.timeline.len(), Bucket::default());
        }
        for (mine, theirs) in self.timeline.iter_mut().zip(&other.timeline) {
            mine.add(theirs);
        }
    }

    /// Completed requests per second of window.
    pub fn throughput(&self) -> f64 {
        self.requests as f64 / self.window.as_secs_f64().max(1e-9)
    }

    /// Answers with a status other than 2xx, plus transport errors.
    pub fn failures(&self) -> u64 {
        self.errors + self.statuses.iter().filter(|(s, _)| !(200..300).contains(*s)).map(|(_, n)| n).sum::<u64>()
    }
}

/// The time frame shared by every connection.
#[derive(Debug, Clone, Copy)]
struct Window {
    start: Instant,
    end: Instant,
}

impl Window {
    fn contains(&self, t: Instant) -> bool {
        t >= self.start && t < self.end
    }
}

/// Options that change what is kept.
#[derive(Debug, Clone, Copy, Default)]
pub struct Keep {
    /// Keep `server-timing` header values (login scenario).
    pub server_timing: bool,
    /// Count outcomes per bucket of this width, by the time the client learned the outcome:
    /// when the answer arrived, or when its deadline ran out (outage scenario).
    pub timeline: Option<Duration>,
    /// Open loop: an intended send this late is abandoned as a client would, counted as a
    /// timeout in its bucket instead of queueing behind the others.
    pub max_send_lag: Option<Duration>,
    /// Start the clock at this instant (so a caller can inject faults at known times).
    pub start_at: Option<Instant>,
}

/// Runs one load and returns what it measured. `cancel` stops it early (the window then ends
/// at the cancellation and the outcome covers what was measured).
pub fn run(spec: &LoadSpec, keep: Keep, cancel: &Arc<AtomicBool>) -> anyhow::Result<LoadOutcome> {
    anyhow::ensure!(!spec.requests.is_empty(), "no request templates");
    anyhow::ensure!(spec.connections > 0 && spec.threads > 0, "connections and threads must be positive");
    let threads = spec.threads.min(spec.connections);
    // Connections are opened before the clock starts, so handshakes are not measured.
    let t0 = keep.start_at.unwrap_or_else(|| Instant::now() + Duration::from_millis(200));
    let window = Window { start: t0 + spec.warmup, end: t0 + spec.warmup + spec.duration };
    let queue = match spec.schedule {
        Schedule::Open { rate } => {
            anyhow::ensure!(rate > 0.0 && rate.is_finite(), "rate must be positive");
            Some(async_channel::unbounded::<Instant>())
        }
        Schedule::Closed => None,
    };
    let pacer = match (&queue, spec.schedule) {
        (Some((tx, _)), Schedule::Open { rate }) => {
            let tx = tx.clone();
            let cancel = cancel.clone();
            Some(std::thread::spawn(move || pace(&tx, rate, t0, window, &cancel)))
        }
        _ => None,
    };
    let mut handles = Vec::with_capacity(threads);
    for t in 0..threads {
        let conns: Vec<usize> = (0..spec.connections).filter(|c| c % threads == t).collect();
        let spec = spec.clone();
        let rx = queue.as_ref().map(|(_, rx)| rx.clone());
        let cancel = cancel.clone();
        let cpu = spec.cpus.as_ref().and_then(|cpus| cpus.get(t % cpus.len().max(1)).copied());
        handles.push(std::thread::Builder::new().name(format!("authbench-gen-{t}")).spawn(move || {
            if let Some(cpu) = cpu {
                pin_current_thread(cpu);
            }
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            runtime.block_on(generator_thread(spec, conns, window, t0, rx, keep, cancel))
        })?);
    }
    let mut outcome = LoadOutcome::empty(spec.duration);
    for handle in handles {
        let part = handle.join().map_err(|_| anyhow::anyhow!("a generator thread panicked"))??;
        outcome.merge(part);
    }
    if let Some(pacer) = pacer {
        let (offered, _) = pacer.join().map_err(|_| anyhow::anyhow!("the pacer panicked"))?;
        outcome.offered = offered;
    }
    if let Some((_, rx)) = queue {
        // Intended sends still queued: no connection was free to send them in time.
        while let Ok(intended) = rx.try_recv() {
            if window.contains(intended) {
                outcome.dropped += 1;
                let gave_up = intended + keep.max_send_lag.unwrap_or(Duration::ZERO);
                if let Some(b) = outcome.bucket(keep, window, gave_up) {
                    b.timeout += 1;
                }
            }
        }
    }
    if cancel.load(Ordering::Relaxed) {
        let measured = Instant::now().saturating_duration_since(window.start);
        outcome.window = measured.min(spec.duration).max(Duration::from_millis(1));
    }
    Ok(outcome)
}

/// Emits intended send times at `rate` from `t0` to the end of the window; returns how many
/// fell inside the window.
fn pace(tx: &async_channel::Sender<Instant>, rate: f64, t0: Instant, window: Window, cancel: &AtomicBool) -> (u64, ()) {
    let interval = Duration::from_secs_f64(1.0 / rate);
    let mut next = t0;
    let mut offered = 0u64;
    while next < window.end && !cancel.load(Ordering::Relaxed) {
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        }
        // Emit everything due (at high rates the sleep overshoots several intervals).
        let now = Instant::now();
        while next <= now && next < window.end {
            if window.contains(next) {
                offered += 1;
            }
            if tx.try_send(next).is_err() {
                return (offered, ());
            }
            next += interval;
        }
    }
    tx.close();
    (offered, ())
}

/// One generator thread's connections, on its own single-threaded runtime.
async fn generator_thread(
    spec: LoadSpec,
    conns: Vec<usize>,
    window: Window,
    t0: Instant,
    rx: Option<async_channel::Receiver<Instant>>,
    keep: Keep,
    cancel: Arc<AtomicBool>,
) -> anyhow::Result<LoadOutcome> {
    let mut tasks = Vec::with_capacity(conns.len());
    let templates = Arc::new(spec.requests.clone());
    anyhow::ensure!(!templates.is_empty(), "no request templates");
    let epoch = Instant::now();
    let mut watched = Vec::with_capacity(conns.len());
    for c in conns {
        let rotation = Rotation { templates: templates.clone(), next: c % templates.len(), stride: spec.connections };
        let addr = spec.target(c);
        let connection = Connection::open(addr, rotation, epoch).await?;
        watched.push(connection.inflight.clone());
        let rx = rx.clone();
        let cancel = cancel.clone();
        tasks.push(tokio::spawn(async move {
            match rx {
                Some(rx) => connection.open_loop(rx, window, keep, cancel).await,
                None => connection.closed_loop(window, t0, keep, cancel).await,
            }
        }));
    }
    let stop = Arc::new(AtomicBool::new(false));
    let dog = tokio::spawn(watchdog(watched, epoch, spec.timeout, stop.clone()));
    let mut outcome = LoadOutcome::empty(spec.duration);
    for task in tasks {
        outcome.merge(task.await?);
    }
    stop.store(true, Ordering::Relaxed);
    let _ = dog.await;
    Ok(outcome)
}

/// Pins the calling thread to one CPU (Linux); failure is logged, not fatal.
pub fn pin_current_thread(cpu: usize) {
    let mut set = nix::sched::CpuSet::new();
    if set.set(cpu).is_ok() && nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set).is_err() {
        eprintln!("authbench: could not pin a generator thread to CPU {cpu}");
    }
}
