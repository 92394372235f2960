//! The report's comparisons between designs: each variant's CPU per request at the common
//! rate and its capacity, as ratios to baseline, jwt and session taken round by round (both
//! figures of a pair were measured in the same round). A ratio whose 95 % interval holds 1 is
//! printed as no difference: the report states a comparison only when its interval decides it.

use super::*;

/// The designs every variant is compared with.
const REFERENCES: [&str; 3] = ["baseline", "jwt", "session"];

/// `1.32× [1.25–1.41]` when the interval excludes 1, else `≈ same (0.98× [0.91–1.05])`.
fn stated(ratio: &Estimate) -> String {
    let text = ratio_interval(ratio.median, ratio.ci95);
    if ratio.ci95[0] <= 1.0 && ratio.ci95[1] >= 1.0 { format!("≈ same ({text})") } else { text }
}

impl Report<'_> {
    pub(super) fn ratios(&mut self) {
        let references: Vec<&str> = REFERENCES
            .iter()
            .copied()
            .filter(|r| self.r.steady(r).is_some() || self.r.run(r, Scenario::Cost).is_some())
            .collect();
        if references.is_empty() {
            return;
        }
        let cpu = |r: &Results, v: &str| r.run(v, Scenario::Cost).and_then(|c| c.server_cpu_ns_per_request.clone());
        let capacity = |r: &Results, v: &str| r.steady(v).and_then(|s| s.throughput_rps.estimate());
        let mut header = vec!["variant".to_owned()];
        header.extend(references.iter().map(|r| format!("server CPU/req ÷ {r}")));
        header.extend(references.iter().map(|r| format!("capacity ÷ {r}")));
        let mut t = Table::new(header);
        let mut any = false;
        for v in self.variants() {
            let mut row = vec![v.clone()];
            let mut filled = false;
            for of in [&cpu as &dyn Fn(&Results, &str) -> Option<Estimate>, &capacity] {
                for reference in &references {
                    let cell = if *reference == v {
                        "–".to_owned()
                    } else {
                        match (of(self.r, &v), of(self.r, reference)) {
                            (Some(a), Some(b)) => a.ratio_to(&b).map_or_else(
                                || "–".to_owned(),
                                |r| {
                                    filled = true;
                                    stated(&r)
                                },
                            ),
                            _ => "–".to_owned(),
                        }
                    };
                    row.push(cell);
                }
            }
            if filled {
                any = true;
                t.row(row);
            }
        }
        if !any {
            return;
        }
        t.note = Some("Each ratio is the median of the per-round ratios (both figures measured in the same round, so drift of the machine that hits both cancels) with its 95 % interval. \"≈ same\": the interval holds 1, so this run cannot tell the two apart. Server CPU at the common rate; capacity in the closed loop.".into());
        self.h2("Comparisons between designs");
        self.push(Block::Table(t));
    }
}
