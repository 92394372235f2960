//! The noise monitor: how much of the machine something other than the measured processes
//! used during a window. Two readings of `/proc/stat`'s aggregate `cpu` line give the busy and
//! stolen time of all CPUs; the CPU time of our own processes (servers, Redis, the generator)
//! over the same window comes off the busy time, and what is left is foreign load, in CPUs.
//!
//! Both sides are in clock ticks from the same accounting: `/proc/<pid>/stat` keeps the time
//! of threads that exited (the generator's come and go), which per-thread schedstat would lose.
//! On a kernel without IRQ time accounting (this one), a tick spent in an interrupt or softirq
//! is charged to the task it interrupted, so interrupt time counts as busy here to match. What
//! the kernel does for our traffic in its own threads (`ksoftirqd`, kworkers) reads as foreign.

use std::collections::BTreeMap;
use std::time::Instant;

use super::cost::{clock_ticks, cpu_seconds};
use crate::results::NoiseSample;

/// The aggregate `cpu` line of `/proc/stat`, in clock ticks (`guest` time is already in `user`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct CpuTimes {
    user: u64,
    nice: u64,
    system: u64,
    idle: u64,
    iowait: u64,
    irq: u64,
    softirq: u64,
    steal: u64,
}

impl CpuTimes {
    /// Ticks something ran: neither idle, waiting for I/O, nor stolen.
    fn busy(&self) -> u64 {
        self.user + self.nice + self.system + self.irq + self.softirq
    }

    fn total(&self) -> u64 {
        self.busy() + self.idle + self.iowait + self.steal
    }

    fn since(&self, before: &CpuTimes) -> CpuTimes {
        let d = |a: u64, b: u64| a.saturating_sub(b);
        CpuTimes {
            user: d(self.user, before.user),
            nice: d(self.nice, before.nice),
            system: d(self.system, before.system),
            idle: d(self.idle, before.idle),
            iowait: d(self.iowait, before.iowait),
            irq: d(self.irq, before.irq),
            softirq: d(self.softirq, before.softirq),
            steal: d(self.steal, before.steal),
        }
    }
}

/// The `cpu` line of a `/proc/stat` text.
fn parse_proc_stat(text: &str) -> Option<CpuTimes> {
    let line = text.lines().find(|l| l.split_whitespace().next() == Some("cpu"))?;
    let mut fields = line.split_whitespace().skip(1).map(|f| f.parse::<u64>().ok());
    let mut next = || fields.next().flatten();
    Some(CpuTimes {
        user: next()?,
        nice: next()?,
        system: next()?,
        idle: next()?,
        iowait: next()?,
        irq: next()?,
        softirq: next()?,
        // Kernels before 2.6.11 had no steal field; every kernel this runs on has it.
        steal: next()?,
    })
}

/// The machine's CPU counters and our processes' CPU time at one instant.
#[derive(Debug, Clone)]
pub struct MachineSnapshot {
    at: Instant,
    /// None when `/proc/stat` could not be read.
    cpu: Option<CpuTimes>,
    /// CPU seconds of each of our processes that could be read, by process id.
    ours: BTreeMap<u32, f64>,
}

impl MachineSnapshot {
    /// Reads `/proc/stat` and the CPU time of `ours`: the servers, Redis and the generator
    /// (this process), everything whose load is the measurement rather than noise.
    pub fn take(ours: &[u32]) -> Self {
        let ours = ours.iter().filter_map(|&pid| Some((pid, cpu_seconds(pid)?))).collect();
        let cpu = std::fs::read_to_string("/proc/stat").ok().as_deref().and_then(parse_proc_stat);
        Self { at: Instant::now(), cpu, ours }
    }
}

/// What the machine did between two snapshots.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NoiseWindow {
    /// Share of all CPUs' time busy, ours included (0 to 1).
    pub busy: f64,
    /// Share of all CPUs' time the hypervisor gave to someone else (0 to 1).
    pub steal: f64,
    /// CPUs' worth of time used by processes other than ours: busy CPU-seconds minus ours,
    /// over the window (0 to the number of CPUs; 1.0 is one CPU fully taken).
    pub foreign_cpu: f64,
    /// Wall time of the window.
    pub seconds: f64,
}

impl NoiseWindow {
    /// The window from `before` to `after`; none when `/proc/stat` was unreadable at either end
    /// or no time passed. Only processes read at both ends count as ours: one that was gone at
    /// the end counts as foreign.
    pub fn between(before: &MachineSnapshot, after: &MachineSnapshot) -> Option<Self> {
        let d = after.cpu?.since(&before.cpu?);
        let seconds = after.at.saturating_duration_since(before.at).as_secs_f64();
        let total = d.total();
        if total == 0 || seconds <= 0.0 {
            return None;
        }
        let ours: f64 = after.ours.iter().filter_map(|(pid, a)| Some((a - before.ours.get(pid)?).max(0.0))).sum();
        let busy_seconds = d.busy() as f64 / clock_ticks();
        Some(Self {
            busy: d.busy() as f64 / total as f64,
            steal: d.steal as f64 / total as f64,
            foreign_cpu: ((busy_seconds - ours) / seconds).max(0.0),
            seconds,
        })
    }

    /// True when other processes used more than `threshold` CPUs: the window is to be repeated.
    pub fn above(&self, threshold: f64) -> bool {
        self.foreign_cpu > threshold
    }

    /// The window as the results record it.
    pub fn sample(&self, label: impl Into<String>, repeated: bool) -> NoiseSample {
        NoiseSample { label: label.into(), foreign_cpu: self.foreign_cpu, steal: self.steal, busy: self.busy, repeated }
    }
}

/// A window being watched: started before the measurement, finished after it.
#[derive(Debug, Clone)]
pub struct NoiseWatch {
    /// Our processes, read again at the end.
    ours: Vec<u32>,
    before: MachineSnapshot,
}

impl NoiseWatch {
    /// Starts watching; `ours` as for [`MachineSnapshot::take`].
    pub fn start(ours: &[u32]) -> Self {
        Self { ours: ours.to_vec(), before: MachineSnapshot::take(ours) }
    }

    /// The window from the start until now.
    pub fn finish(&self) -> Option<NoiseWindow> {
        NoiseWindow::between(&self.before, &MachineSnapshot::take(&self.ours))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

    use std::process::{Child, Command};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    use super::*;

    /// Kills and reaps the child when the test ends, however it ends.
    struct Reaped(Child);

    impl Drop for Reaped {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    /// A thread of this process spinning until dropped: load that is ours.
    struct Spinner(Arc<AtomicBool>, Option<std::thread::JoinHandle<()>>);

    impl Spinner {
        fn start() -> Self {
            let stop = Arc::new(AtomicBool::new(false));
            let flag = Arc::clone(&stop);
            let thread = std::thread::spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::hint::spin_loop();
                }
            });
            Self(stop, Some(thread))
        }
    }

    impl Drop for Spinner {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Relaxed);
            if let Some(t) = self.1.take() {
                let _ = t.join();
            }
        }
    }

    fn window(ours: &[u32], length: Duration) -> NoiseWindow {
        let watch = NoiseWatch::start(ours);
        std::thread::sleep(length);
        watch.finish().expect("/proc/stat unreadable")
    }

    /// Pairs of windows, up to six, until one pair is `fine`; whether one was, and every pair
    /// seen. The machine is shared with whatever else runs, so a quiet reading gets a few
    /// chances, and a pair can also be judged against its own first window.
    fn pairs(
        mut measure: impl FnMut() -> (NoiseWindow, NoiseWindow),
        fine: impl Fn(&NoiseWindow, &NoiseWindow) -> bool,
    ) -> (bool, Vec<(NoiseWindow, NoiseWindow)>) {
        let mut seen = Vec::new();
        while seen.len() < 6 {
            let (a, b) = measure();
            seen.push((a, b));
            if fine(&a, &b) {
                return (true, seen);
            }
        }
        (false, seen)
    }

    #[test]
    fn the_cpu_line_parses_and_guest_time_is_not_counted_twice() {
        let text = "cpu  1498128 103899 484181 1401867 7675 0 145167 1403 17 0\n\
                    cpu0 749064 51949 242090 700933 3837 0 72583 701 17 0\n\
                    intr 12345\n";
        let cpu = parse_proc_stat(text).unwrap();
        assert_eq!(cpu.user, 1_498_128);
        assert_eq!(cpu.steal, 1403);
        assert_eq!(cpu.busy(), 1_498_128 + 103_899 + 484_181 + 145_167);
        assert_eq!(cpu.total(), cpu.busy() + 1_401_867 + 7675 + 1403);
        assert_eq!(parse_proc_stat("cpu0 1 2 3 4 5 6 7 8\n"), None);
        assert_eq!(parse_proc_stat("cpu 1 2 3\n"), None);
    }

    #[test]
    fn foreign_load_is_busy_time_less_ours_over_the_window() {
        let hz = clock_ticks();
        let at = Instant::now();
        let before =
            MachineSnapshot { at, cpu: Some(CpuTimes::default()), ours: [(10, 5.0), (11, 1.0), (12, 3.0)].into() };
        // Two CPUs for 2 s: 400 ticks at 100 Hz. 3 s busy, 0.2 s stolen; ours ran 1.2 s, and
        // process 12 was gone at the end (its time counts as foreign).
        let ticks = |s: f64| (s * hz).round() as u64;
        let after = MachineSnapshot {
            at: at + Duration::from_secs(2),
            cpu: Some(CpuTimes {
                user: ticks(2.0),
                system: ticks(0.8),
                softirq: ticks(0.2),
                steal: ticks(0.2),
                idle: ticks(0.8),
                ..CpuTimes::default()
            }),
            ours: [(10, 5.7), (11, 1.5), (13, 9.0)].into(),
        };
        let w = NoiseWindow::between(&before, &after).unwrap();
        assert!((w.busy - 0.75).abs() < 1e-9, "{w:?}");
        assert!((w.steal - 0.05).abs() < 1e-9, "{w:?}");
        assert!((w.foreign_cpu - (3.0 - 1.2) / 2.0).abs() < 1e-9, "{w:?}");
        assert!((w.seconds - 2.0).abs() < 1e-9);
        assert!(w.above(0.25) && !w.above(0.9));

        // Ours above the busy time (tick rounding) clamps at 0; an unreadable /proc/stat or an
        // empty window gives nothing.
        let mut busy_ours = after.clone();
        busy_ours.ours.insert(10, 100.0);
        assert_eq!(NoiseWindow::between(&before, &busy_ours).unwrap().foreign_cpu, 0.0);
        assert_eq!(NoiseWindow::between(&before, &MachineSnapshot { cpu: None, ..after.clone() }), None);
        assert_eq!(NoiseWindow::between(&before, &before), None);

        let s = w.sample("steady jwt round 2", true);
        assert_eq!(s.label, "steady jwt round 2");
        assert!(s.repeated && s.foreign_cpu == w.foreign_cpu && s.busy == w.busy);
    }

    /// A busy child that is not ours reads as foreign load; sleeping children plus a thread of
    /// ours spinning do not, nor does the busy child once counted as ours. The machine is
    /// shared: a quiet case gets a few tries, each judged on an absolute bound or against a
    /// window beside it.
    #[test]
    fn a_busy_stranger_is_noise_and_our_own_load_is_not() {
        let _quiet = crate::observe::CHILD_CPU.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let me = std::process::id();
        let sleepers: Vec<Reaped> = (0..2).map(|_| Reaped(Command::new("sleep").arg("10").spawn().unwrap())).collect();

        let short = Duration::from_millis(400);

        // A thread of ours spinning: the window reads below 0.3 CPU of foreign load, or (when
        // others load the machine) no more than a window without it.
        let (fine, seen) = pairs(
            || {
                let alone = window(&[me], short);
                let _spinner = Spinner::start();
                (alone, window(&[me], short))
            },
            |alone, spinning| spinning.foreign_cpu < 0.3 || spinning.foreign_cpu <= alone.foreign_cpu + 0.2,
        );
        assert!(fine, "our own spinning thread read as foreign load (window alone, window spinning): {seen:?}");

        let busy = Reaped(Command::new("sh").args(["-c", "while :; do :; done"]).spawn().unwrap());
        let w = window(&[me], Duration::from_secs(1));
        assert!(w.foreign_cpu >= 0.5, "a spinning child read as {w:?}");
        assert!(w.above(crate::plan::NOISE_THRESHOLD), "{w:?}");
        assert!((0.0..=1.0).contains(&w.busy) && (0.0..=1.0).contains(&w.steal), "{w:?}");
        assert!((0.9..1.5).contains(&w.seconds), "{w:?}");

        // The same child counted as ours is no longer noise: below 0.3, or (when others load
        // the machine) at least 0.4 CPU below the window that did not count it.
        let (fine, seen) = pairs(
            || (window(&[me], short), window(&[me, busy.0.id()], short)),
            |stranger, ours| ours.foreign_cpu < 0.3 || stranger.foreign_cpu - ours.foreign_cpu >= 0.4,
        );
        assert!(fine, "the spinning child, counted as ours, still read as foreign load (not ours, ours): {seen:?}");
        drop(sleepers);
    }
}
