//! The decision guide in the report: one row per requirement, the variants that meet it, that
//! fail it, and those the figures cannot decide, each with the figures and intervals that
//! decided it (computed in [`crate::present::guide`]).

use crate::present::guide::{Requirement, requirements};
use crate::results::{Results, Verdict};

use super::doc::{Block, Table};

fn cells(line: &Requirement) -> Vec<String> {
    let list = |verdict: Verdict| {
        let items: Vec<String> = line
            .verdicts
            .iter()
            .filter(|v| v.1 == verdict)
            .map(|(variant, _, figure)| format!("**{variant}** ({figure})"))
            .collect();
        if items.is_empty() { "none".to_owned() } else { items.join("; ") }
    };
    let mut requirement = line.text.clone();
    if let Some(c) = &line.caveat {
        requirement.push_str(&format!(" Note: {c}"));
    }
    if line.verdicts.is_empty() {
        vec![requirement, format!("not measured in this run: {}", line.missing), "–".to_owned(), "–".to_owned()]
    } else {
        vec![requirement, list(Verdict::Meets), list(Verdict::Fails), list(Verdict::Undecided)]
    }
}

pub fn guide(r: &Results) -> Vec<Block> {
    let mut t = Table::new(["requirement", "met by", "not met by", "undecided"]);
    for line in requirements(r) {
        t.row(cells(&line));
    }
    t.note = Some(
        "A figure measured in rounds decides only when its 95 % interval lies wholly on one side of the threshold; ratios (against baseline, between rtt or claim sizes) are taken round by round, so drift that hits both sides alike cancels. \"Undecided\": the interval straddles the threshold, or a design's own settings allow more than the trials happened to show. Counted figures (commands per request, probes accepted, sessions lost) decide as counted. A strategy not listed on a line was not measured for it."
            .into(),
    );
    vec![Block::Table(t)]
}
