//! What the generator's own threads cost: CPU time and time spent runnable but waiting for a
//! CPU, read from the kernel's per-thread scheduler statistics (`/proc/thread-self/schedstat`;
//! this VM has no hardware counters). A generator thread that was running or waiting to run for
//! nearly all of the window was the limit of what it measured.

use std::time::{Duration, Instant};

/// A thread's scheduler counters at one instant.
#[derive(Debug, Clone, Copy)]
pub(super) struct ThreadClock {
    at: Instant,
    /// Nanoseconds on a CPU and runnable-but-waiting; none when the kernel does not say.
    ran_ns: Option<u64>,
    waited_ns: Option<u64>,
}

impl ThreadClock {
    /// The calling thread's counters now.
    pub(super) fn now() -> Self {
        let (ran_ns, waited_ns) = match std::fs::read_to_string("/proc/thread-self/schedstat") {
            Ok(text) => {
                let mut fields = text.split_whitespace().map(|f| f.parse::<u64>().ok());
                (fields.next().flatten(), fields.next().flatten())
            }
            Err(_) => (None, None),
        };
        Self { at: Instant::now(), ran_ns, waited_ns }
    }

    /// What the thread did between `self` and `later`.
    pub(super) fn until(&self, later: &Self) -> ThreadUse {
        let d = |a: Option<u64>, b: Option<u64>| Some(Duration::from_nanos(b?.saturating_sub(a?)));
        let wall = later.at.saturating_duration_since(self.at);
        let cpu = d(self.ran_ns, later.ran_ns);
        let waited = d(self.waited_ns, later.waited_ns);
        let busy = match (cpu, waited) {
            (Some(c), Some(w)) if !wall.is_zero() => Some((c + w).as_secs_f64() / wall.as_secs_f64()),
            _ => None,
        };
        ThreadUse { wall, cpu, waited, busy }
    }
}

/// One generator thread over a run.
#[derive(Debug, Clone, Copy, Default)]
pub struct ThreadUse {
    pub wall: Duration,
    pub cpu: Option<Duration>,
    /// Runnable, but waiting for a CPU (the machine was busy with something else).
    pub waited: Option<Duration>,
    /// Share of the wall time the thread was running or wanted to run: 1.0 means it never
    /// waited for the server. An open loop's is over its pacing only, not the wait for the last
    /// answers after it.
    pub busy: Option<f64>,
}

impl ThreadUse {
    /// The same use, with the busy share of a shorter bracket.
    pub(super) fn busy_over(self, bracket: &ThreadUse) -> Self {
        Self { busy: bracket.busy, ..self }
    }
}

/// The generator's threads over a run.
#[derive(Debug, Clone, Default)]
pub struct GeneratorUse {
    pub threads: Vec<ThreadUse>,
    /// Requests the threads sent while measured (warm-up included), what their CPU is spread
    /// over.
    pub sent: u64,
}

impl GeneratorUse {
    /// CPU time of all threads; none unless every thread's is known.
    pub fn cpu(&self) -> Option<Duration> {
        self.threads.iter().map(|t| t.cpu).sum()
    }

    /// Generator CPU per request sent, in microseconds.
    pub fn cpu_us_per_request(&self) -> Option<f64> {
        let cpu = self.cpu()?;
        (self.sent > 0).then(|| cpu.as_secs_f64() * 1e6 / self.sent as f64)
    }

    /// The busiest thread's share of wall time running or runnable.
    pub fn busiest(&self) -> Option<f64> {
        self.threads.iter().filter_map(|t| t.busy).reduce(f64::max)
    }

    pub fn merge(&mut self, other: GeneratorUse) {
        self.threads.extend(other.threads);
        self.sent += other.sent;
    }
}
