//! How a population point is judged against its design's rule (within 1.5× or off by how
//! much), and where a design's curve crosses a flat level such as session's.

use crate::present::units::{per_request, quantity, ratio};

/// A point is within its design's rule when its interval reaches into
/// `[expected / TOLERANCE, expected × TOLERANCE]`.
pub(super) const TOLERANCE: f64 = 1.5;
/// Where the rule expects 0, a point is within it below this many commands per user request.
pub(super) const ZERO_BELOW: f64 = 0.01;
/// A one-point design is "about the same" as session's within this share of it.
pub(super) const SAME_BAND: f64 = 0.10;

/// How a point stands against what its design's rules expect.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Verdict {
    Within,
    /// 0 expected, and the median below [`ZERO_BELOW`].
    WithinZero,
    /// Off by `factor` (at least [`TOLERANCE`]), above or below.
    Off {
        factor: f64,
        above: bool,
    },
    /// Off where a ratio means nothing: 0 against something, or something against 0.
    OffFrom {
        measured: f64,
        expected: f64,
    },
    /// The commands were not measured.
    Unknown,
}

impl Verdict {
    /// `median` with its interval `[lo, hi]` against `expected`.
    pub(super) fn of(median: f64, lo: f64, hi: f64, expected: f64) -> Self {
        if expected <= 0.0 {
            return if median < ZERO_BELOW { Self::WithinZero } else { Self::OffFrom { measured: median, expected } };
        }
        if hi >= expected / TOLERANCE && lo <= expected * TOLERANCE {
            return Self::Within;
        }
        if median <= 0.0 {
            return Self::OffFrom { measured: median, expected };
        }
        let q = median / expected;
        Self::Off { factor: q.max(1.0 / q), above: q > 1.0 }
    }

    pub(super) fn text(self) -> String {
        match self {
            Self::Within => format!("within {}×", quantity(TOLERANCE)),
            Self::WithinZero => format!("within (below {})", quantity(ZERO_BELOW)),
            Self::Off { factor, above } => {
                format!("off by {}× ({})", ratio(factor), if above { "above" } else { "below" })
            }
            Self::OffFrom { measured, expected } => {
                format!("off: {} where {} is expected", per_request(measured), per_request(expected))
            }
            Self::Unknown => "–".into(),
        }
    }
}

/// Where a design's curve meets a flat `level`, from its measured points.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Crossing {
    /// Goes from above to below (`falls`) or the other way between the points at `between`;
    /// `at`, interpolated on log-log, when both points are above zero.
    Crosses {
        falls: bool,
        at: Option<f64>,
        between: (f64, f64),
    },
    Below,
    Above,
    /// One point within [`SAME_BAND`] of the level.
    Same,
}

/// `points` as (requests per lifetime, commands per user request), sorted by the first.
pub(super) fn crossing(points: &[(f64, f64)], level: f64) -> Crossing {
    if let [(_, y)] = points {
        return if (y - level).abs() <= SAME_BAND * level {
            Crossing::Same
        } else if *y < level {
            Crossing::Below
        } else {
            Crossing::Above
        };
    }
    for pair in points.windows(2) {
        let [(x0, y0), (x1, y1)] = pair else { continue };
        let (was_below, is_below) = (*y0 < level, *y1 < level);
        if was_below == is_below {
            continue;
        }
        let at = (*y0 > 0.0 && *y1 > 0.0 && level > 0.0 && y0 != y1).then(|| {
            let t = (y0.ln() - level.ln()) / (y0.ln() - y1.ln());
            (x0.ln() + t * (x1.ln() - x0.ln())).exp()
        });
        return Crossing::Crosses { falls: is_below, at, between: (*x0, *x1) };
    }
    if points.iter().all(|(_, y)| *y < level) { Crossing::Below } else { Crossing::Above }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_point_is_within_when_its_interval_reaches_the_band() {
        assert_eq!(Verdict::of(1.96, 1.95, 2.02, 2.0), Verdict::Within);
        // 0.60–0.65 does not reach 1 / 1.5 = 0.667: off, below; 0.60–0.70 does.
        let off = Verdict::of(0.62, 0.6, 0.65, 1.0);
        assert!(matches!(off, Verdict::Off { above: false, .. }), "{off:?}");
        assert_eq!(Verdict::of(0.62, 0.6, 0.7, 1.0), Verdict::Within);
        assert_eq!(Verdict::of(0.0002, 0.0002, 0.0002, 0.0), Verdict::WithinZero);
        assert!(matches!(Verdict::of(0.05, 0.04, 0.06, 0.0), Verdict::OffFrom { .. }));
        assert_eq!(Verdict::of(2.6, 2.5, 2.7, 1.0).text(), "off by 2.60× (above)");
    }

    #[test]
    fn the_crossing_is_interpolated_on_log_log() {
        // 4 / (1 + L) meets 1 at L = 3; between the points at 1 (2.0) and 10 (0.364).
        let points = [(1.0, 2.0), (10.0, 4.0 / 11.0), (100.0, 4.0 / 101.0)];
        let Crossing::Crosses { falls: true, at: Some(x), between } = crossing(&points, 1.0) else { panic!() };
        assert_eq!(between, (1.0, 10.0));
        assert!(x > 2.0 && x < 3.5, "{x}");
        assert_eq!(crossing(&points, 5.0), Crossing::Below);
        assert_eq!(crossing(&points, 0.01), Crossing::Above);
        assert_eq!(crossing(&[(3600.0, 0.9998)], 0.9994), Crossing::Same);
        assert_eq!(crossing(&[(3600.0, 0.63)], 1.0), Crossing::Below);
        assert_eq!(crossing(&[(3600.0, 0.0)], 1.0), Crossing::Below);
    }
}
