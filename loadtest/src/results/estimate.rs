//! Figures measured in rounds: the median of the rounds with a 95 % interval, and the ratio of
//! two figures measured in the same rounds.
//!
//! The interval is the distribution-free one for a median: the order statistics
//! `[x(k), x(n+1-k)]` with the largest `k` whose coverage, `1 - 2·P(Binomial(n, ½) < k)`, is
//! at least 95 %. It assumes nothing about the shape of the noise (a shared machine's is often
//! bimodal) and is the same on every rerun of the same values. With fewer than six values no
//! order statistic reaches 95 %; the interval is then the whole range, whose coverage
//! (`1 - 2^(1-n)`: 94 % for five rounds) the method section states.

use serde::{Deserialize, Serialize};

/// The interval a figure is reported with.
pub const CONFIDENCE: f64 = 0.95;

/// A figure measured once per round.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    pub median: f64,
    /// 95 % interval of the median (see the module comment for how it is made).
    pub ci95: [f64; 2],
    /// One value per round, in round order (so two figures of the same rounds can be paired).
    pub values: Vec<f64>,
}

impl Estimate {
    /// The estimate of `values` (non-finite values are left out); none when nothing is left.
    pub fn of(values: &[f64]) -> Option<Self> {
        let values: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
        if values.is_empty() {
            return None;
        }
        let mut sorted = values.clone();
        sorted.sort_by(f64::total_cmp);
        Some(Self { median: median_of_sorted(&sorted), ci95: interval_of_sorted(&sorted), values })
    }

    /// `self / other`, round by round: the median of the per-round ratios and its interval.
    /// Rounds are paired by position; pairs with a zero or missing denominator are left out.
    pub fn ratio_to(&self, other: &Self) -> Option<Self> {
        let ratios: Vec<f64> =
            self.values.iter().zip(&other.values).filter(|(_, b)| **b != 0.0).map(|(a, b)| a / b).collect();
        Self::of(&ratios)
    }

    /// Whether the interval lies wholly above `threshold`, wholly below it, or straddles it.
    pub fn against(&self, threshold: f64) -> Side {
        let [lo, hi] = self.ci95;
        if lo > threshold {
            Side::Above
        } else if hi < threshold {
            Side::Below
        } else {
            Side::Straddles
        }
    }

    /// Whether two estimates' intervals overlap (then they are not told apart).
    pub fn overlaps(&self, other: &Self) -> bool {
        self.ci95[0] <= other.ci95[1] && other.ci95[0] <= self.ci95[1]
    }
}

/// Where an interval lies against a threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Above,
    Below,
    Straddles,
}

/// Coverage of the whole range `[min, max]` of `n` values as an interval for their median.
pub fn range_coverage(n: usize) -> f64 {
    if n < 2 { 0.0 } else { 1.0 - 2.0 * 0.5f64.powi(n as i32) }
}

fn median_of_sorted(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    let at = |i: usize| sorted.get(i).copied().unwrap_or(0.0);
    if n == 0 {
        0.0
    } else if n % 2 == 1 {
        at(n / 2)
    } else {
        (at(n / 2 - 1) + at(n / 2)) / 2.0
    }
}

/// `[x(k), x(n+1-k)]` for the largest `k` (1-based) with coverage at least [`CONFIDENCE`];
/// the whole range when none reaches it.
fn interval_of_sorted(sorted: &[f64]) -> [f64; 2] {
    let n = sorted.len();
    let mut k = 1;
    // P(Binomial(n, 1/2) < j) for j = 1, 2, ...: the chance the median lies below x(j).
    let mut below = 0.0;
    let mut term = 0.5f64.powi(n as i32); // P(X = 0)
    for j in 1..=n / 2 {
        below += term; // now P(X < j) = P(X <= j-1)
        if 1.0 - 2.0 * below >= CONFIDENCE {
            k = j;
        } else {
            break;
        }
        // P(X = j) from P(X = j-1).
        term *= (n - j + 1) as f64 / j as f64;
    }
    let at = |i: usize| sorted.get(i).copied().unwrap_or(0.0);
    [at(k - 1), at(n - k)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_interval_is_the_order_statistic_with_95_percent_coverage() {
        // Five values: nothing narrower than the range reaches 95 %.
        let e = Estimate::of(&[5.0, 1.0, 4.0, 2.0, 3.0]).unwrap();
        assert_eq!(e.median, 3.0);
        assert_eq!(e.ci95, [1.0, 5.0]);
        assert_eq!(e.values, [5.0, 1.0, 4.0, 2.0, 3.0], "round order is kept");
        // Nine values: [x(2), x(8)] covers 1 - 2·(1+9)/512 = 96.1 %; [x(3), x(7)] only 82 %.
        let nine: Vec<f64> = (1..=9).map(f64::from).collect();
        assert_eq!(Estimate::of(&nine).unwrap().ci95, [2.0, 8.0]);
        // Twenty values: k = 6 (coverage 95.9 %), the textbook value.
        let twenty: Vec<f64> = (1..=20).map(f64::from).collect();
        assert_eq!(Estimate::of(&twenty).unwrap().ci95, [6.0, 15.0]);
        assert!((range_coverage(5) - 0.9375).abs() < 1e-12);
    }

    #[test]
    fn ratios_pair_rounds_and_sides_need_the_whole_interval() {
        let a = Estimate::of(&[100.0, 80.0, 120.0, 90.0, 110.0]).unwrap();
        let b = Estimate::of(&[50.0, 40.0, 60.0, 45.0, 55.0]).unwrap();
        // Drift that hits both alike cancels: every round's ratio is exactly 2.
        let r = a.ratio_to(&b).unwrap();
        assert_eq!(r.ci95, [2.0, 2.0]);
        assert_eq!(r.against(1.0), Side::Above);
        assert_eq!(r.against(2.5), Side::Below);
        assert_eq!(r.against(2.0), Side::Straddles);
        assert!(!a.overlaps(&b));
        assert!(Estimate::of(&[f64::NAN]).is_none());
    }
}
