//! Colours and number formats shared by every chart and table.
//!
//! One colour per strategy (Okabe–Ito, readable by colour-blind readers), the same in every
//! chart; a strategy's further variants get darker shades of its colour, decided once per
//! report so a variant keeps its shade everywhere.

use std::collections::BTreeMap;

use plotters::style::RGBColor;

use crate::results::Results;

/// The strategies in the order the report lists them.
pub const STRATEGY_ORDER: [&str; 7] = ["baseline", "session", "jwt", "hybrid", "refresh", "versioned", "pushed"];

fn strategy_colour(strategy: &str) -> RGBColor {
    match strategy {
        "baseline" => RGBColor(120, 120, 120),
        "session" => RGBColor(0, 114, 178),
        "jwt" => RGBColor(230, 159, 0),
        "hybrid" => RGBColor(0, 158, 115),
        "refresh" => RGBColor(213, 94, 0),
        "versioned" => RGBColor(204, 121, 167),
        "pushed" => RGBColor(86, 180, 233),
        _ => RGBColor(40, 40, 40),
    }
}

/// Darkens a colour by `k` steps (a variant's shade).
fn shade(c: RGBColor, k: usize) -> RGBColor {
    let f = 0.72_f64.powi(i32::try_from(k).unwrap_or(3).min(3));
    let scale = |v: u8| (f64::from(v) * f).round().clamp(0.0, 255.0) as u8;
    RGBColor(scale(c.0), scale(c.1), scale(c.2))
}

/// Every variant of a results file, in report order, with its strategy and colour.
#[derive(Debug, Clone)]
pub struct Palette {
    pub variants: Vec<(String, String)>,
    colours: BTreeMap<String, RGBColor>,
}

impl Palette {
    pub fn of(results: &Results) -> Self {
        let mut seen: Vec<(String, String)> = Vec::new();
        let mut add = |strategy: &str, variant: &str| {
            if !seen.iter().any(|(_, v)| v == variant) {
                seen.push((strategy.to_owned(), variant.to_owned()));
            }
        };
        for r in &results.runs {
            add(&r.strategy, &r.variant);
        }
        for r in &results.revocation {
            add(&r.strategy, &r.variant);
        }
        for r in &results.outage {
            add(&r.strategy, &r.variant);
        }
        for r in &results.scale {
            add(&r.strategy, &r.variant);
        }
        let rank = |s: &str| STRATEGY_ORDER.iter().position(|k| *k == s).unwrap_or(STRATEGY_ORDER.len());
        // Stable: variants keep their order of appearance within a strategy.
        seen.sort_by_key(|(s, _)| rank(s));
        let mut colours = BTreeMap::new();
        let mut per_strategy: BTreeMap<String, usize> = BTreeMap::new();
        for (strategy, variant) in &seen {
            let k = per_strategy.entry(strategy.clone()).or_insert(0);
            colours.insert(variant.clone(), shade(strategy_colour(strategy), *k));
            *k += 1;
        }
        Self { variants: seen, colours }
    }

    pub fn colour(&self, variant: &str) -> RGBColor {
        self.colours.get(variant).copied().unwrap_or(RGBColor(40, 40, 40))
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.variants.iter().map(|(_, v)| v.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variants_of_one_strategy_get_shades_of_its_colour() {
        let base = strategy_colour("session");
        assert_eq!(shade(base, 0), base);
        let darker = shade(base, 1);
        assert!(darker.2 < base.2);
    }
}
