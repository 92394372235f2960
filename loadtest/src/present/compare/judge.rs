//! How a figure of A is judged against B's: which way is better, how large a difference must
//! be before it counts, B/A, and the verdict printed with it.

use crate::results::Results;

/// Figures without a spread that differ by less than this share are called noise.
pub(super) const NOISE: f64 = 0.05;

/// Which way is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Better {
    Higher,
    Lower,
}

/// How large a difference must be before it counts.
#[derive(Debug, Clone, Copy)]
pub(super) enum Noise {
    /// A figure measured in rounds (or trials): overlapping intervals are "within interval";
    /// with no interval on either side, the band `relative` of A's figure or `absolute`.
    Spread { relative: f64, absolute: f64 },
    /// Within `relative` of A's figure, or within `absolute` (the figure's resolution).
    Band { relative: f64, absolute: f64 },
    /// A count ratio measured in rounds (commands per user request): within when the
    /// intervals overlap, or when the figures differ by less than `relative` of A's (0.9999
    /// and 1.0000 commands per request do not differ, however tight their intervals).
    Counts { relative: f64 },
    /// Counted figures: any difference is real.
    Exact,
}

/// How a metric is judged.
#[derive(Debug, Clone, Copy)]
pub(super) struct Judge {
    pub(super) better: Better,
    /// Words for a real improvement and a real regression.
    pub(super) up: &'static str,
    pub(super) down: &'static str,
    pub(super) noise: Noise,
}

pub(super) const THROUGHPUT: Judge = Judge {
    better: Better::Higher,
    up: "faster",
    down: "slower",
    noise: Noise::Spread { relative: NOISE, absolute: 0.0 },
};
/// A cost or latency measured in rounds: lower is better, judged by its interval.
pub(super) const COST: Judge = Judge {
    better: Better::Lower,
    up: "better",
    down: "worse",
    noise: Noise::Spread { relative: NOISE, absolute: 0.0 },
};
/// The sweep's knee, from one pass whose steps are fractions of a measured maximum: within a
/// third, it has not moved by more than the steps' own spacing.
pub(super) const KNEE: Judge = Judge {
    better: Better::Higher,
    up: "better",
    down: "worse",
    noise: Noise::Band { relative: 1.0 / 3.0, absolute: 0.0 },
};
/// Logins per second, from one window of argon2-bound work: within 15 %.
pub(super) const LOGINS: Judge = Judge {
    better: Better::Higher,
    up: "faster",
    down: "slower",
    noise: Noise::Band { relative: 0.15, absolute: 0.0 },
};
pub(super) const LATENCY: Judge =
    Judge { better: Better::Lower, up: "better", down: "worse", noise: Noise::Band { relative: NOISE, absolute: 0.0 } };
pub(super) const COMMANDS: Judge =
    Judge { better: Better::Lower, up: "better", down: "worse", noise: Noise::Band { relative: 0.02, absolute: 0.02 } };
/// An achieved rate: within 1 % of A's is noise (an open loop holds its offered rate closely).
pub(super) const ACHIEVED: Judge =
    Judge { better: Better::Higher, up: "better", down: "worse", noise: Noise::Band { relative: 0.01, absolute: 0.0 } };
/// Commands per user request of a population point, over its rounds.
pub(super) const USER_COMMANDS: Judge =
    Judge { better: Better::Lower, up: "better", down: "worse", noise: Noise::Counts { relative: NOISE } };
pub(super) const COUNTED: Judge = Judge { better: Better::Lower, up: "better", down: "worse", noise: Noise::Exact };
/// Revocation windows, over their trials: the range of the trials (each revoke lands at a
/// random phase of the issuing second or grace), else 5 % or 1 ms (probes go out about every
/// half millisecond).
pub(super) const WINDOW: Judge = Judge {
    better: Better::Lower,
    up: "better",
    down: "worse",
    noise: Noise::Spread { relative: NOISE, absolute: 1.0 },
};
/// A window's distance under the bound its settings give it, over the trials: the range of
/// the trials, else 10 ms (the probes' spacing under load and the acknowledgement's trip).
pub(super) const SLACK: Judge = Judge {
    better: Better::Higher,
    up: "better",
    down: "worse",
    noise: Noise::Spread { relative: 0.0, absolute: 10.0 },
};
/// Redis bytes per request: within 5 %, or a byte (the harness's own INFO calls are in it).
pub(super) const REDIS_BYTES: Judge =
    Judge { better: Better::Lower, up: "better", down: "worse", noise: Noise::Band { relative: NOISE, absolute: 1.0 } };
/// Availability: within one percentage point.
pub(super) const AVAILABILITY: Judge =
    Judge { better: Better::Higher, up: "better", down: "worse", noise: Noise::Band { relative: 0.0, absolute: 0.01 } };

/// One run's figure in one row.
#[derive(Debug, Clone)]
pub(super) struct Figure {
    pub(super) text: String,
    /// What is compared; `f64::INFINITY` for "still accepted at the cap", "never", "no knee".
    pub(super) value: f64,
    /// The 95 % interval over rounds (or trials), when there were at least two.
    pub(super) spread: Option<(f64, f64)>,
}

impl Figure {
    pub(super) fn new(text: String, value: f64) -> Self {
        Self { text, value, spread: None }
    }
}

/// How a row's figure is read from one run (none when the run does not have it).
pub(super) type Measure<'a> = dyn Fn(&Results) -> Option<Figure> + 'a;

/// One row: a metric of one variant in both runs.
#[derive(Debug)]
pub(super) struct Row {
    pub(super) name: String,
    pub(super) judge: Judge,
    pub(super) a: Option<Figure>,
    pub(super) b: Option<Figure>,
    /// The machine's own drift from A to B for this figure (baseline's B/A, the control), by
    /// which B is divided before it is judged; none for baseline itself and other figures.
    pub(super) drift: Option<f64>,
}

impl Row {
    /// The verdict, after the machine's drift is taken out of B.
    pub(super) fn verdict(&self) -> &'static str {
        let b = match (self.drift, &self.b) {
            (Some(f), Some(b)) if f > 0.0 && f.is_finite() => Some(Figure {
                text: b.text.clone(),
                value: b.value / f,
                spread: b.spread.map(|(lo, hi)| (lo / f, hi / f)),
            }),
            _ => self.b.clone(),
        };
        verdict(self.judge, self.a.as_ref(), b.as_ref())
    }
}

pub(super) fn ratio(a: &Figure, b: &Figure) -> String {
    if !a.value.is_finite() || !b.value.is_finite() || a.value == 0.0 {
        return "–".to_owned();
    }
    let r = b.value / a.value;
    match r {
        r if !r.is_finite() => "–".to_owned(),
        r if r >= 100.0 => format!("{r:.0}"),
        r if r > 0.0 && r < 0.01 => "<0.01".to_owned(),
        r => format!("{r:.2}"),
    }
}

pub(super) fn verdict(judge: Judge, a: Option<&Figure>, b: Option<&Figure>) -> &'static str {
    let (a, b) = match (a, b) {
        (Some(a), Some(b)) => (a, b),
        (Some(_), None) => return "only in A",
        (None, Some(_)) => return "only in B",
        (None, None) => return "",
    };
    if a.value == b.value {
        return "= same";
    }
    let (x, y) = (a.value, b.value);
    let within = x.is_finite()
        && y.is_finite()
        && match judge.noise {
            // Within the figure's resolution (`absolute`) is never a difference, intervals or not.
            Noise::Spread { relative, absolute } => {
                (y - x).abs() <= absolute
                    || match (a.spread, b.spread) {
                        (Some((a_min, a_max)), Some((b_min, b_max))) => a_min <= b_max && b_min <= a_max,
                        _ => (y - x).abs() <= relative * x.abs(),
                    }
            }
            Noise::Band { relative, absolute } => (y - x).abs() <= (relative * x.abs()).max(absolute),
            Noise::Counts { relative } => {
                (y - x).abs() <= relative * x.abs()
                    || matches!((a.spread, b.spread), (Some((a_min, a_max)), Some((b_min, b_max))) if a_min <= b_max && b_min <= a_max)
            }
            Noise::Exact => false,
        };
    if within {
        return if matches!(judge.noise, Noise::Spread { .. } | Noise::Counts { .. })
            && a.spread.is_some()
            && b.spread.is_some()
        {
            "~ within interval"
        } else {
            "~ within noise"
        };
    }
    let b_higher = y > x;
    if b_higher == (judge.better == Better::Higher) { judge.up } else { judge.down }
}
