//! What one load run measured: latency histograms (from the intended send time in the open
//! loop, with the pacer's lag, the wait for a connection and the service time apart), every
//! request by how it ended, the outage timeline, and what the generator itself cost.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use super::{Credentials, GeneratorUse, Keep, Window};
use crate::results::{Bucket, new_histogram};

/// What one load run measured (warm-up excluded).
#[derive(Debug)]
pub struct LoadOutcome {
    /// Closed loop: service time of answered requests. Open loop: from the intended send time
    /// to when the client learned the outcome, for every request sent (answered, failed, or
    /// timed out at its deadline).
    pub latency: Histogram<u64>,
    /// Open loop only: from the actual send to the end of the answer, answered requests.
    pub service: Histogram<u64>,
    /// Open loop only: how late the pacer emitted each send (emit − intended).
    pub pacer_lag: Histogram<u64>,
    /// Open loop only: waiting for a free or new connection (start − emit).
    pub connection_wait: Histogram<u64>,
    /// Answers received for requests started (open loop: intended) inside the window.
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
    /// Open loop: intended sends that found every connection busy at the limit.
    pub dropped: u64,
    /// Open loop: requests written to a connection (not those whose client gave up waiting for
    /// one, or whose connection could not be opened).
    pub written: u64,
    /// Open loop: most connections held at once, and the limit.
    pub peak_connections: usize,
    pub connection_limit: usize,
    /// Response header lines seen for `server-timing` (login scenario), when asked for.
    pub server_timings: Vec<String>,
    /// Outcomes per bucket of intended send time (open loop) or start (closed), when asked for.
    pub timeline: Vec<Bucket>,
    /// What the generator threads themselves cost.
    pub generator: GeneratorUse,
    /// Population: the calls clients made besides their users' requests, by kind (`refresh`,
    /// `login`, `retry`), for user requests intended inside the window.
    pub extra_calls: BTreeMap<&'static str, ExtraCalls>,
    /// Population: what each user's client held when the run ended, by the user's place.
    pub holdings: Vec<(usize, Credentials)>,
    /// When the threads stopped sending (the end of the window after a Ctrl-C).
    pub(super) ended: Option<Instant>,
}

impl LoadOutcome {
    pub(super) fn empty(window: Duration) -> Self {
        Self {
            latency: new_histogram(),
            service: new_histogram(),
            pacer_lag: new_histogram(),
            connection_wait: new_histogram(),
            requests: 0,
            statuses: BTreeMap::new(),
            errors: 0,
            timeouts: 0,
            window,
            offered: 0,
            dropped: 0,
            written: 0,
            peak_connections: 0,
            connection_limit: 0,
            server_timings: Vec::new(),
            timeline: Vec::new(),
            generator: GeneratorUse::default(),
            extra_calls: BTreeMap::new(),
            holdings: Vec::new(),
            ended: None,
        }
    }

    pub(super) fn bucket(&mut self, keep: Keep, window: Window, at: Instant) -> Option<&mut Bucket> {
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
        let _ = self.pacer_lag.add(&other.pacer_lag);
        let _ = self.connection_wait.add(&other.connection_wait);
        self.requests += other.requests;
        for (status, n) in other.statuses {
            *self.statuses.entry(status).or_default() += n;
        }
        self.errors += other.errors;
        self.timeouts += other.timeouts;
        self.offered += other.offered;
        self.dropped += other.dropped;
        self.written += other.written;
        self.peak_connections += other.peak_connections;
        self.connection_limit += other.connection_limit;
        self.server_timings.extend(other.server_timings);
        if self.timeline.len() < other.timeline.len() {
            self.timeline.resize(other.timeline.len(), Bucket::default());
        }
        for (mine, theirs) in self.timeline.iter_mut().zip(&other.timeline) {
            mine.add(theirs);
        }
        self.generator.merge(other.generator);
        self.holdings.extend(other.holdings);
        for (kind, calls) in other.extra_calls {
            self.extra_calls.entry(kind).or_default().merge(&calls);
        }
        self.ended = self.ended.max(other.ended);
    }

    /// Completed requests per second of window.
    pub fn throughput(&self) -> f64 {
        self.requests as f64 / self.window.as_secs_f64().max(1e-9)
    }

    /// Open loop: requests written per second of window (by intended send time).
    pub fn achieved_rps(&self) -> f64 {
        self.written as f64 / self.window.as_secs_f64().max(1e-9)
    }

    /// Answers with a status other than 2xx, plus transport errors.
    pub fn failures(&self) -> u64 {
        self.errors + self.statuses.iter().filter(|(s, _)| !(200..300).contains(*s)).map(|(_, n)| n).sum::<u64>()
    }

    /// Every request by how it ended: `2xx`, `3xx`, `4xx`, `5xx`, `timeout`, `error`, and
    /// (open loop) `dropped` by the generator.
    pub fn outcomes(&self) -> BTreeMap<String, u64> {
        let mut classes = BTreeMap::new();
        for (status, n) in &self.statuses {
            *classes.entry(format!("{}xx", status / 100)).or_insert(0) += n;
        }
        classes.insert("timeout".to_owned(), self.timeouts);
        classes.insert("error".to_owned(), self.errors - self.timeouts);
        classes.entry("2xx".to_owned()).or_insert(0);
        classes.entry("4xx".to_owned()).or_insert(0);
        classes.entry("5xx".to_owned()).or_insert(0);
        classes
    }

    /// Whether the latency figures describe the server: not when the generator dropped sends
    /// (the requests it could not send are missing from them).
    pub fn latency_valid(&self) -> bool {
        self.dropped == 0
    }
}

/// Calls of one kind a client made besides its user's requests, each timed from when it was
/// written to its answer.
#[derive(Debug, Clone)]
pub struct ExtraCalls {
    pub calls: u64,
    /// Answered other than 2xx, or not answered.
    pub failed: u64,
    pub latency: Histogram<u64>,
}

impl Default for ExtraCalls {
    fn default() -> Self {
        Self { calls: 0, failed: 0, latency: new_histogram() }
    }
}

impl ExtraCalls {
    pub(super) fn add(&mut self, took: Duration, ok: bool) {
        self.calls += 1;
        self.failed += u64::from(!ok);
        super::record(&mut self.latency, took);
    }

    fn merge(&mut self, other: &Self) {
        self.calls += other.calls;
        self.failed += other.failed;
        let _ = self.latency.add(&other.latency);
    }
}
