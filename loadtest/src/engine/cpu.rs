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
        ThreadUse {
            wall: later.at.saturating_duration_since(self.at),
            cpu: d(self.ran_ns, later.ran_ns),
            waited: d(self.waited_ns, later.waited_ns),
        }
    }
}

/// One generator thread over a run.
#[derive(Debug, Clone, Copy, Default)]
pub struct ThreadUse {
    pub wall: Duration,
    pub cpu: Option<Duration>,
    /// Runnable, but waiting for a CPU (the machine was busy with something else).
    pub waited: Option<Duration>,
}

impl ThreadUse {
    /// Share of the wall time the thread was running or wanted to run: 1.0 means it never
    /// waited for the server.
    pub fn busy(&self) -> Option<f64> {
        let wall = self.wall.as_secs_f64();
        let busy = self.cpu?.as_secs_f64() + self.waited?.as_secs_f64();
        (wall > 0.0).then_some(busy / wall)
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
        self.threads.iter().filter_map(ThreadUse::busy).reduce(f64::max)
    }

    pub fn merge(&mut self, other: GeneratorUse) {
        self.threads.extend(other.threads);
        self.sent += other.sent;
    }
}
