//! CPU time of another process in nanoseconds, from the scheduler's per-thread counters
//! (`/proc/<pid>/task/<tid>/schedstat`, whose first field is the thread's time on a CPU).
//! `/proc/<pid>/stat` counts in 10 ms clock ticks: over a window of a few hundred thousand
//! requests that is a few hundred nanoseconds of rounding per request, which is the size of
//! the differences between designs.
//!
//! The process-wide `/proc/<pid>/schedstat` is the main thread's alone, hence the walk over
//! `task/`. A thread that exits takes its counter with it: a total summed over live threads
//! drops by everything an exiting thread ever ran. So a snapshot keeps each thread's counter
//! and a window adds up per-thread differences: an exiting thread then loses only what it ran
//! inside the window, before it exited.

use std::collections::BTreeMap;

/// The scheduler's CPU counters of every live thread of one process.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcessCpu {
    /// Nanoseconds on a CPU since each thread started, by thread id.
    threads: BTreeMap<u32, u64>,
}

impl ProcessCpu {
    /// The counters of `pid`'s threads now; none when the process is gone or unreadable.
    pub fn read(pid: u32) -> Option<Self> {
        let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
        let threads: BTreeMap<u32, u64> = tasks
            .filter_map(Result::ok)
            .filter_map(|task| {
                let tid = task.file_name().to_str()?.parse().ok()?;
                // A thread that exited between the listing and this read is simply not there.
                let text = std::fs::read_to_string(task.path().join("schedstat")).ok()?;
                Some((tid, parse_schedstat(&text)?))
            })
            .collect();
        (!threads.is_empty()).then_some(Self { threads })
    }

    /// Counters as given, thread id and nanoseconds.
    #[cfg(test)]
    pub(super) fn of(threads: &[(u32, u64)]) -> Self {
        Self { threads: threads.iter().copied().collect() }
    }

    /// Nanoseconds on a CPU of the threads alive now, each since it started.
    #[cfg(test)]
    pub fn total_ns(&self) -> u64 {
        self.threads.values().sum()
    }

    /// Nanoseconds on a CPU between `before` and `self`, thread by thread: a thread started
    /// since counts whole, one that exited since counts nothing (what it ran in the window
    /// before exiting is lost; the servers' and Redis's threads are long-lived). A thread id
    /// whose counter went down was reused by a new thread, which counts whole.
    pub fn ns_since(&self, before: &ProcessCpu) -> u64 {
        self.threads
            .iter()
            .map(|(tid, &now)| match before.threads.get(tid) {
                Some(&then) if then <= now => now - then,
                _ => now,
            })
            .sum()
    }
}

/// Nanoseconds on a CPU of `pid`'s live threads, each since it started: the sum of the first
/// field of `/proc/<pid>/task/*/schedstat`. Threads that already exited are not in it, so two
/// readings do not make a window across a thread's exit: use [`ProcessCpu::ns_since`] for that.
#[cfg(test)]
pub fn process_cpu_ns(pid: u32) -> Option<u64> {
    ProcessCpu::read(pid).map(|cpu| cpu.total_ns())
}

/// The first field of a `schedstat` line: `<ns on CPU> <ns waiting> <timeslices>`.
fn parse_schedstat(text: &str) -> Option<u64> {
    text.split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

    use std::process::{Child, Command};
    use std::time::{Duration, Instant};

    use super::*;
    use crate::observe::cost::cpu_seconds;

    /// Kills and reaps the child when the test ends, however it ends.
    struct Reaped(Child);

    impl Drop for Reaped {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    fn stop(child: &Child, signal: nix::sys::signal::Signal) {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
        nix::sys::signal::kill(pid, signal).unwrap();
    }

    #[test]
    fn schedstat_lines_parse() {
        assert_eq!(parse_schedstat("331730114 285893 31\n"), Some(331_730_114));
        assert_eq!(parse_schedstat(""), None);
        assert_eq!(parse_schedstat("x 1 2"), None);
    }

    #[test]
    fn a_window_keeps_what_a_thread_ran_before_it_exited_out_of_it() {
        let before = ProcessCpu::of(&[(1, 1_000), (2, 5_000_000), (3, 700)]);
        // Thread 2 exited (its 5 ms before the window must not come off the total), 4 started,
        // and 3's id was reused by a new thread whose counter is below the old one's.
        let after = ProcessCpu::of(&[(1, 1_500), (3, 200), (4, 300)]);
        assert_eq!(after.ns_since(&before), 500 + 200 + 300);
        assert_eq!(after.total_ns(), 2_000);
        assert_eq!(before.ns_since(&before), 0);
    }

    /// A child that spins for a while reads, to within 30 %, what its `/proc/<pid>/stat` says
    /// in clock ticks; a sleeping one reads next to nothing.
    #[test]
    fn a_busy_child_reads_what_its_stat_says_and_a_sleeping_one_nothing() {
        let _quiet = crate::observe::CHILD_CPU.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let busy = Reaped(Command::new("sh").args(["-c", "while :; do :; done"]).spawn().unwrap());
        let sleeper = Reaped(Command::new("sleep").arg("5").spawn().unwrap());
        let pid = busy.0.id();

        // Until it has run 200 ms by its ticks, for at most 3 s of wall time.
        let deadline = Instant::now() + Duration::from_secs(3);
        while cpu_seconds(pid).unwrap_or(0.0) < 0.2 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        // Stopped, so that both counters are read at the same point of its life.
        stop(&busy.0, nix::sys::signal::Signal::SIGSTOP);
        std::thread::sleep(Duration::from_millis(20));
        let ticks_s = cpu_seconds(pid).unwrap();
        let ns = process_cpu_ns(pid).unwrap();
        assert!(ticks_s >= 0.1, "the child ran only {ticks_s} s in 3 s");
        let ratio = ns as f64 / 1e9 / ticks_s;
        assert!((0.7..=1.3).contains(&ratio), "schedstat {ns} ns, stat {ticks_s} s: ratio {ratio}");

        let idle = process_cpu_ns(sleeper.0.id()).unwrap();
        assert!(idle < 20_000_000, "a sleeping child read {idle} ns");
        assert_eq!(process_cpu_ns(u32::MAX), None);
    }
}
