//! How noisy the machine was while a run measured: per watched window, the CPU used by
//! processes other than the servers, Redis and the generator, and the hypervisor's steal.
//! A window above the threshold is measured again (a bounded number of times); the record says
//! how often that happened, so a reader can tell a quiet run from one that fought for the CPU.

use serde::{Deserialize, Serialize};

/// The noise monitor's account of a run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Noise {
    /// Windows watched, repeats included.
    pub windows: u32,
    /// Windows thrown away and measured again because their foreign load passed `threshold`.
    pub repeated: u32,
    /// The most foreign load of any window, in CPUs (0 to the number of CPUs).
    pub max_foreign_cpu: f64,
    /// The largest share of all CPUs' time the hypervisor stole in any window (0 to 1).
    pub max_steal: f64,
    /// Foreign load, in CPUs, above which a window was repeated.
    pub threshold: f64,
    /// Every window watched, in the order measured.
    pub per_window: Vec<NoiseSample>,
}

/// One watched window.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NoiseSample {
    /// What was measured, e.g. `steady session round 3`.
    pub label: String,
    /// CPUs' worth of time used by processes other than ours over the window.
    pub foreign_cpu: f64,
    /// Share of all CPUs' time stolen by the hypervisor.
    pub steal: f64,
    /// Share of all CPUs' time busy (ours and everyone else's; steal and idle excluded).
    pub busy: f64,
    /// True when this window's measurement was thrown away and taken again.
    pub repeated: bool,
}

impl Noise {
    /// The account of `per_window`, watched against `threshold`.
    pub fn of(threshold: f64, per_window: Vec<NoiseSample>) -> Self {
        let most = |f: fn(&NoiseSample) -> f64| per_window.iter().map(f).filter(|v| v.is_finite()).fold(0.0, f64::max);
        Self {
            windows: u32::try_from(per_window.len()).unwrap_or(u32::MAX),
            repeated: u32::try_from(per_window.iter().filter(|s| s.repeated).count()).unwrap_or(u32::MAX),
            max_foreign_cpu: most(|s| s.foreign_cpu),
            max_steal: most(|s| s.steal),
            threshold,
            per_window,
        }
    }

    /// The window with the most foreign load.
    pub fn worst(&self) -> Option<&NoiseSample> {
        self.per_window.iter().max_by(|a, b| a.foreign_cpu.total_cmp(&b.foreign_cpu))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(label: &str, foreign_cpu: f64, steal: f64, repeated: bool) -> NoiseSample {
        NoiseSample { label: label.into(), foreign_cpu, steal, busy: 0.5, repeated }
    }

    #[test]
    fn the_account_counts_repeats_and_keeps_the_worst() {
        let noise = Noise::of(
            0.25,
            vec![
                sample("steady jwt round 1", 0.05, 0.001, false),
                sample("steady session round 1", 0.62, 0.0, true),
                sample("steady session round 1", 0.11, 0.004, false),
            ],
        );
        assert_eq!((noise.windows, noise.repeated), (3, 1));
        assert_eq!(noise.max_foreign_cpu, 0.62);
        assert_eq!(noise.max_steal, 0.004);
        assert_eq!(noise.worst().map(|s| s.label.as_str()), Some("steady session round 1"));
        let empty = Noise::of(0.25, Vec::new());
        assert_eq!((empty.windows, empty.repeated, empty.max_foreign_cpu), (0, 0, 0.0));
        assert!(empty.worst().is_none());
    }
}
