//! The lean load engine: keep-alive HTTP/1.1 connections (`wire.rs`) on a few generator
//! threads, requests encoded once per template, every request timed into an HdrHistogram in
//! nanoseconds.
//!
//! Two schedules:
//! - closed loop: each connection sends its next request as soon as the previous answer is
//!   read; latency is the service time.
//! - open loop: each generator thread paces its share of a constant arrival rate on its own
//!   event loop (see `open.rs`), with connections opened on demand; latency is measured from
//!   the *intended* send time (as wrk2 does), so a slow server cannot hide its queueing
//!   (coordinated omission), and every intended send is accounted for, dropped ones included.
//!
//! Each thread's CPU time and run-queue wait are read from the kernel (`cpu.rs`), so a figure
//! the generator itself limited can be told apart from the server's.

pub mod client;
mod connection;
mod cpu;
pub mod http1;
mod open;
mod outcome;
pub mod population;
mod wire;

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use hyper::Method;
use hyper::header::{CONTENT_TYPE, HeaderName, HeaderValue};

use crate::results::MAX_TRACKABLE_NS;
use connection::{Connection, Inflight, Requests, Rotation, Watched, watchdog};
pub use cpu::GeneratorUse;
use cpu::ThreadClock;
pub use outcome::LoadOutcome;
pub use population::{Credentials, ExtraKind, Population};

fn record(h: &mut Histogram<u64>, d: Duration) {
    let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX).clamp(1, MAX_TRACKABLE_NS);
    h.saturating_record(ns);
}

/// One request, prepared once and cloned cheaply for every send.
#[derive(Debug, Clone)]
pub struct RequestTemplate {
    pub method: Method,
    /// The path, parsed once (a request with a bad one is sent to `/`, and fails there).
    pub uri: hyper::Uri,
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
        Ok(Self { method: Method::GET, uri: path.parse()?, headers, body: Bytes::new() })
    }

    /// `POST path` with a JSON body.
    pub fn post_json(path: &str, body: &serde_json::Value) -> Self {
        Self {
            method: Method::POST,
            uri: path.parse().unwrap_or_default(),
            headers: vec![(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
            body: Bytes::from(body.to_string()),
        }
    }

    /// The request as bytes on the wire to the server at `addr`, with `authorization` in place
    /// of the template's own, when given.
    fn encode(&self, addr: SocketAddr, authorization: Option<&HeaderValue>) -> Bytes {
        use std::io::Write as _;
        let mut out = Vec::with_capacity(128 + self.body.len());
        let path = self.uri.path_and_query().map_or("/", |p| p.as_str());
        let _ = write!(out, "{} {path} HTTP/1.1\r\nhost: {addr}\r\n", self.method);
        let mut header = |name: &HeaderName, value: &HeaderValue| {
            out.extend_from_slice(name.as_str().as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        };
        for (name, value) in &self.headers {
            if authorization.is_none() || name != hyper::header::AUTHORIZATION {
                header(name, value);
            }
        }
        if let Some(value) = authorization {
            header(&hyper::header::AUTHORIZATION, value);
        }
        if !self.body.is_empty() || self.method == Method::POST {
            let _ = write!(out, "content-length: {}\r\n", self.body.len());
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&self.body);
        Bytes::from(out)
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
    /// Per-request deadline; a request past it counts as an error (timeout). Open loop: from
    /// the intended send time, as a client that gives up counts it.
    pub timeout: Duration,
    /// Open loop: most connections open at once; `None` for enough to keep `rate × timeout`
    /// requests in flight (at most [`CONNECTION_CEILING`]). Sends that find every connection
    /// busy at the limit are dropped.
    pub max_connections: Option<usize>,
    /// CPUs the generator threads are pinned to, when set.
    pub cpus: Option<Vec<usize>>,
    /// Open loop: users whose clients send (Poisson arrivals, each to a user drawn uniformly)
    /// instead of `requests`.
    pub population: Option<Arc<Population>>,
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

/// Most connections an open-loop run opens by default, over all its threads (authbench-server
/// accepts 4 096 at once and queues the rest in the kernel).
pub const CONNECTION_CEILING: usize = 8192;

/// Descriptors kept free for everything else the process opens.
const SPARE_DESCRIPTORS: u64 = 256;

impl LoadSpec {
    /// Open loop: the connection limit this run uses. By default enough for every request of
    /// `rate × deadline` in flight with a quarter to spare (the watchdog ends a request up to a
    /// tenth of the deadline late), at most [`CONNECTION_CEILING`]; never more than the
    /// process's descriptor limit allows.
    pub fn connection_limit(&self) -> usize {
        let wanted = match (self.max_connections, self.schedule) {
            (Some(n), _) => n.max(1),
            (None, Schedule::Open { rate }) => {
                let needed = (rate * self.timeout.as_secs_f64() * 1.25).ceil() as usize + self.threads;
                needed.max(self.connections).clamp(1, CONNECTION_CEILING)
            }
            (None, Schedule::Closed) => self.connections,
        };
        wanted.min(descriptor_room())
    }
}

/// Connections the process can still open: its descriptor limit, raised to the hard limit
/// first (a soft limit of 1 024 is common, and an open loop against a slow server needs more).
fn descriptor_room() -> usize {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else { return CONNECTION_CEILING };
    let soft = if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() { hard } else { soft };
    usize::try_from(soft.saturating_sub(SPARE_DESCRIPTORS)).unwrap_or(usize::MAX).max(1)
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
    /// Open loop: count outcomes per bucket of this width, by intended send time (outage
    /// scenario).
    pub timeline: Option<Duration>,
    /// Start the clock at this instant (so a caller can inject faults at known times).
    pub start_at: Option<Instant>,
}

/// What stops a run's threads: the user's Ctrl-C, or another thread's failure.
#[derive(Debug, Clone)]
struct Stop {
    cancel: Arc<AtomicBool>,
    halt: Arc<AtomicBool>,
}

impl Stop {
    fn now(&self) -> bool {
        self.cancel.load(Ordering::Relaxed) || self.halt.load(Ordering::Relaxed)
    }
}

/// Runs one load and returns what it measured. `cancel` stops it early (the window then ends
/// at the cancellation and the outcome covers what was measured).
pub fn run(spec: &LoadSpec, keep: Keep, cancel: &Arc<AtomicBool>) -> anyhow::Result<LoadOutcome> {
    anyhow::ensure!(
        !spec.requests.is_empty() || spec.population.as_ref().is_some_and(|p| !p.users.is_empty()),
        "no request templates"
    );
    anyhow::ensure!(
        spec.population.is_none() || matches!(spec.schedule, Schedule::Open { .. }),
        "a population runs on the open loop"
    );
    anyhow::ensure!(spec.connections > 0 && spec.threads > 0, "connections and threads must be positive");
    if let Schedule::Open { rate } = spec.schedule {
        anyhow::ensure!(rate > 0.0 && rate.is_finite(), "rate must be positive");
    }
    let threads = match spec.schedule {
        Schedule::Closed => spec.threads.min(spec.connections),
        Schedule::Open { .. } => spec.threads,
    };
    let limit = spec.connection_limit();
    // Connections are opened before the clock starts, so handshakes are not measured.
    let t0 = keep.start_at.unwrap_or_else(|| Instant::now() + Duration::from_millis(200));
    let window = Window { start: t0 + spec.warmup, end: t0 + spec.warmup + spec.duration };
    let mut handles = Vec::with_capacity(threads);
    let halt = Arc::new(AtomicBool::new(false));
    for t in 0..threads {
        let spec = spec.clone();
        let stop = Stop { cancel: cancel.clone(), halt: halt.clone() };
        let cpu = spec.cpus.as_ref().and_then(|cpus| cpus.get(t % cpus.len().max(1)).copied());
        // This thread's part of the connection limit.
        let share = limit / threads + usize::from(t < limit % threads);
        let spawned = std::thread::Builder::new().name(format!("authbench-gen-{t}")).spawn(move || {
            if let Some(cpu) = cpu {
                pin_current_thread(cpu);
            }
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            let local = tokio::task::LocalSet::new();
            local.block_on(&runtime, async move {
                let started = Rc::new(Cell::new(None));
                let clock = started.clone();
                // The thread's cost is read from when the clock starts to when it ends.
                let mark = tokio::task::spawn_local(async move {
                    tokio::time::sleep_until(t0.into()).await;
                    clock.set(Some(ThreadClock::now()));
                });
                let (mut outcome, sent, paced) = match spec.schedule {
                    Schedule::Open { rate } => {
                        let share = open::Share { rate, limit: share.max(1), thread: t, threads, window, t0 };
                        open::run_thread(spec, share, keep, stop).await?
                    }
                    Schedule::Closed => {
                        let (outcome, sent) = closed_thread(spec, t, threads, window, t0, keep, stop).await?;
                        (outcome, sent, None)
                    }
                };
                mark.abort();
                let end = ThreadClock::now();
                let start = started.get().unwrap_or(end);
                let mut used = start.until(&end);
                if let Some(paced) = paced {
                    used = used.busy_over(&start.until(&paced));
                }
                outcome.generator = GeneratorUse { threads: vec![used], sent };
                Ok::<_, anyhow::Error>(outcome)
            })
        });
        match spawned {
            Ok(handle) => handles.push(handle),
            Err(e) => {
                halt.store(true, Ordering::Relaxed);
                for handle in handles {
                    let _ = handle.join();
                }
                return Err(e.into());
            }
        }
    }
    let mut outcome = LoadOutcome::empty(spec.duration);
    // Every thread is joined, even after one failed (the others are told to stop first), so
    // no load outlives the run.
    let mut failure = None;
    for handle in handles {
        match handle.join().map_err(|_| anyhow::anyhow!("a generator thread panicked")).and_then(|r| r) {
            Ok(part) => outcome.merge(part),
            Err(e) => {
                halt.store(true, Ordering::Relaxed);
                failure.get_or_insert(e);
            }
        }
    }
    if let Some(e) = failure {
        return Err(e);
    }
    if let (Schedule::Open { rate }, None) = (spec.schedule, &spec.population) {
        // Intended sends inside the window, as the threads' schedules place them (a
        // population's threads count their random arrivals themselves).
        outcome.offered = (rate * spec.duration.as_secs_f64()).round() as u64;
    }
    if cancel.load(Ordering::Relaxed) {
        let ended = outcome.ended.unwrap_or_else(Instant::now);
        let measured = ended.saturating_duration_since(window.start);
        outcome.window = measured.min(spec.duration).max(Duration::from_millis(1));
        if let (Schedule::Open { rate }, None) = (spec.schedule, &spec.population) {
            outcome.offered = (rate * outcome.window.as_secs_f64()).round() as u64;
        }
    }
    Ok(outcome)
}

/// Thread `t`'s connections of a closed loop: connection `c` belongs to thread `c % threads`.
async fn closed_thread(
    spec: LoadSpec,
    t: usize,
    threads: usize,
    window: Window,
    t0: Instant,
    keep: Keep,
    stop: Stop,
) -> anyhow::Result<(LoadOutcome, u64)> {
    let templates = Rc::new(spec.requests.clone());
    let epoch = Instant::now();
    let watched: Watched = Rc::new(RefCell::new(Vec::new()));
    let mut tasks = Vec::new();
    for c in (0..spec.connections).filter(|c| c % threads == t) {
        let rotation = Rotation { len: templates.len(), next: c % templates.len(), stride: spec.connections };
        if stop.now() {
            break;
        }
        let mut wire = wire::Wire::new(spec.target(c));
        match tokio::time::timeout(spec.timeout, wire.connect()).await {
            Ok(result) => result.map_err(|e| anyhow::anyhow!("cannot connect to {}: {e}", spec.target(c)))?,
            Err(_) => anyhow::bail!("cannot connect to {} within {:?}", spec.target(c), spec.timeout),
        }
        let inflight = Rc::new(Inflight::default());
        watched.borrow_mut().push(inflight.clone());
        let requests = Requests::new(templates.clone());
        let connection = Connection { wire, rotation, inflight, epoch, requests };
        let stop = stop.clone();
        let timeout = spec.timeout;
        tasks.push(tokio::task::spawn_local(
            async move { connection.closed_loop(window, t0, keep, timeout, &stop).await },
        ));
    }
    let stop = Rc::new(Cell::new(false));
    let dog = tokio::task::spawn_local(watchdog(watched, epoch, spec.timeout, stop.clone()));
    let mut outcome = LoadOutcome::empty(spec.duration);
    let mut sent = 0;
    for task in tasks {
        let (part, n) = task.await?;
        outcome.merge(part);
        sent += n;
    }
    outcome.ended = Some(Instant::now());
    stop.set(true);
    let _ = dog.await;
    Ok((outcome, sent))
}

/// Pins the calling thread to one CPU (Linux); failure is logged, not fatal.
pub fn pin_current_thread(cpu: usize) {
    let mut set = nix::sched::CpuSet::new();
    if set.set(cpu).is_ok() && nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set).is_err() {
        eprintln!("authbench: could not pin a generator thread to CPU {cpu}");
    }
}
