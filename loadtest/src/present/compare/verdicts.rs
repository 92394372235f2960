//! The guide's verdicts of two runs side by side: how many (requirement, variant) cells agree,
//! and every cell that does not, with the figures each run decided it on. A disagreement with
//! `undecided` on one side is the interval doing its job; `meets` against `fails` is not.

use std::fmt::Write;

use crate::present::guide::entries;
use crate::results::{GuideEntry, Results, Verdict};

/// The verdict section of `compare`.
pub(super) fn section(out: &mut String, a: &Results, b: &Results) {
    let (ea, eb) = (entries(a), entries(b));
    let key = |e: &GuideEntry| (e.requirement.clone(), e.variant.clone());
    let mut both = 0;
    let mut differ: Vec<(&GuideEntry, &GuideEntry)> = Vec::new();
    for x in &ea {
        if let Some(y) = eb.iter().find(|y| key(y) == key(x)) {
            both += 1;
            if x.verdict != y.verdict {
                differ.push((x, y));
            }
        }
    }
    let _ = writeln!(out);
    if both == 0 {
        let _ = writeln!(out, "Guide: no (requirement, variant) verdict is in both runs.");
        return;
    }
    let opposite =
        differ.iter().filter(|(x, y)| x.verdict != Verdict::Undecided && y.verdict != Verdict::Undecided).count();
    let _ = writeln!(
        out,
        "Guide: {} of {both} (requirement, variant) verdicts agree ({:.0} %); {} differ, {opposite} of them meets against fails.",
        both - differ.len(),
        (both - differ.len()) as f64 * 100.0 / both as f64,
        differ.len(),
    );
    for (x, y) in differ {
        let _ = writeln!(out, "  {} — {}: {} → {}", x.variant, x.requirement, x.verdict.as_str(), y.verdict.as_str());
        let _ = writeln!(out, "      A: {}", x.figures);
        let _ = writeln!(out, "      B: {}", y.figures);
    }
}
