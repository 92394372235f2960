//! The one line a scenario prints per variant once its steps for the variant end, from
//! everything they recorded: the revocation trials of every kind, the outage faults, the
//! scale sizes, and the rtt or tokensize points of every variant.

use std::fmt::Write;

use super::*;
use crate::present::report::fault_name;
use crate::results::Fault;

/// The one line of a variant's revocation scenario, from every trial written for it: how many
/// trials of which kinds, the kind and pairing with the longest median window (its maximum and
/// the bound the settings give beside it), and what did not go as the settings say.
pub fn revocation_summary(results: &Results, variant: &str) -> Option<String> {
    let records: Vec<&RevocationRecord> = results.revocation.iter().filter(|r| r.variant == variant).collect();
    let first = records.first()?;
    let mut pairings: Vec<u32> = records.iter().map(|r| r.instances).collect();
    pairings.sort_unstable();
    pairings.dedup();
    let trials = records.iter().map(|r| r.trial + 1).max().unwrap_or(1);
    let kinds = Kind::ALL.iter().filter(|k| records.iter().any(|r| r.kind == **k)).count();
    // The longest median; a token still accepted at the cap is longer than any window.
    let mut longest: Option<(Kind, u32, revocations::WindowStats)> = None;
    for &n in &pairings {
        for kind in Kind::ALL {
            let Some(s) = revocations::stats(results, variant, kind, n).filter(|s| s.measured()) else { continue };
            let key = |m: Option<f64>| m.unwrap_or(f64::INFINITY);
            if longest.as_ref().is_none_or(|(_, _, l)| key(s.median_ms) > key(l.median_ms)) {
                longest = Some((kind, n, s));
            }
        }
    }
    let still: usize = records.iter().filter(|r| r.accepted_before_revoke > 0 && r.window_ms.is_none()).count();
    let past = records.iter().filter(|r| revocations::past_bound(r)).count();
    let instances = pairings.iter().map(u32::to_string).collect::<Vec<_>>().join(" and ");
    let mut line = format!("  {:<16} revoke {trials} trial(s) × {kinds} kinds on {instances} inst.", variant);
    match longest {
        Some((kind, n, s)) => {
            let _ = write!(
                line,
                "  longest median {} ({}, {n} inst.), max {}, expected {}",
                s.median_text(first.cap_ms),
                kind.as_str(),
                s.max_text(first.cap_ms),
                s.expected_text()
            );
        }
        None => line.push_str("  no victim token ever worked"),
    }
    if still > 0 {
        let _ = write!(line, ", {still} still accepted at the cap");
    }
    if past > 0 {
        line.push_str(&red(&format!(", {past} past the expected bound")));
    }
    let _ = write!(
        line,
        "{}",
        first
            .background
            .as_ref()
            .map_or_else(|| ", idle".to_owned(), |b| format!(", under {} req/s", rate(b.offered_rps)))
    );
    Some(line)
}

/// One line per variant of the rtt or tokensize scenario, from every point of it: each step's
/// capacity with its interval, and its ratio to the first step (round by round).
pub fn points_summary(results: &Results, scenario: Scenario) -> Vec<String> {
    let mut variants: Vec<&str> = Vec::new();
    for r in results.runs.iter().filter(|r| r.scenario == scenario) {
        if !variants.contains(&r.variant.as_str()) {
            variants.push(&r.variant);
        }
    }
    let step = |r: &RunRecord| match scenario {
        Scenario::Rtt => ms(r.redis_rtt_ms.unwrap_or(0.0)),
        _ => format!("+{} B", r.claims_padding_bytes.unwrap_or(0)),
    };
    variants
        .into_iter()
        .map(|v| {
            let points = results.runs_of(v, scenario);
            let first = points.first().and_then(|p| p.throughput_rps.estimate());
            let cells: Vec<String> = points
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    let t = &p.throughput_rps;
                    let ratio = match (i, &first, t.estimate()) {
                        (0, _, _) => String::new(),
                        (_, Some(f), Some(e)) => e
                            .ratio_to(f)
                            .map_or_else(String::new, |q| format!(" ({})", ratio_interval(q.median, q.ci95))),
                        _ => String::new(),
                    };
                    format!("{} {}{ratio}", step(p), rate(t.median))
                })
                .collect();
            format!("  {:<16} {:<6} req/s: {}", v, scenario.as_str(), cells.join(", "))
        })
        .collect()
}

/// One line for a variant's outage faults: availability during each, the slowest recovery,
/// revoked tokens accepted, and what a restart lost (Redis restarted empty, or PostgreSQL
/// through crash recovery).
pub fn outage_summary(results: &Results, variant: &str) -> Option<String> {
    let records: Vec<&OutageRecord> = results.outage.iter().filter(|o| o.variant == variant).collect();
    if records.is_empty() {
        return None;
    }
    let during: Vec<String> =
        records.iter().map(|o| format!("{} {}", fault_name(o.fault), pct(o.availability_during))).collect();
    let recovery = if records.iter().any(|o| o.recovery_ms.is_none()) {
        "never".to_owned()
    } else {
        ms(records.iter().filter_map(|o| o.recovery_ms).fold(0.0, f64::max))
    };
    let accepted: u64 = records.iter().map(|o| o.revoked_accepted).sum();
    let probes: u64 = records.iter().map(|o| o.revoked_probes).sum();
    let mut line = format!(
        "  {variant:<16} outage available {}; recovery ≤ {recovery}; revoked accepted {accepted}/{probes}",
        during.join(" / ")
    );
    let restart = records.iter().find_map(|o| match o.fault {
        Fault::KillEmpty => Some((o, "empty restart")),
        Fault::KillRecover => Some((o, "crash-recovery restart")),
        Fault::Hang | Fault::KillAof => None,
    });
    if let Some((o, what)) = restart {
        let _ = write!(
            line,
            "; {what} lost {}/{} sessions, {} revocations",
            o.sessions_lost,
            o.keepers,
            o.revocations_lost.map_or("n/a".to_owned(), |n| format!("{n}/{}", o.revoked_checked))
        );
    }
    Some(line)
}

/// One line for a variant's scale points: Redis bytes per entry at each size, the server's
/// memory and start-up at the largest.
pub fn scale_summary(results: &Results, variant: &str) -> Option<String> {
    let mut points: Vec<&crate::results::ScaleRecord> = results.scale.iter().filter(|s| s.variant == variant).collect();
    points.sort_by_key(|s| s.entries);
    let largest = points.last()?;
    let sizes: Vec<String> = points
        .iter()
        .map(|s| format!("{} × {}: {} each", count(s.entries), s.entry_kind, bytes(s.bytes_per_entry)))
        .collect();
    let mut line = format!("  {variant:<16} scale  {}", sizes.join("; "));
    if let (Some(rss), Some(start)) = (largest.server_rss_bytes, largest.server_start_seconds) {
        let _ =
            write!(line, "; server {} and up in {} at {}", bytes(rss as f64), ms(start * 1e3), count(largest.entries));
    }
    Some(line)
}

/// The one line of a variant's population points: per point, the requests per lifetime, the
/// Redis commands per user request (median over the rounds) against what the design's rules
/// expect, and the refreshes and logins the clients added.
pub fn population_summary(results: &Results, variant: &str) -> Option<String> {
    let mut points: Vec<(&RunRecord, &crate::results::PopulationRun)> = results
        .runs
        .iter()
        .filter(|r| r.variant == variant && r.scenario == Scenario::Population)
        .filter_map(|r| Some((r, r.population.as_ref()?)))
        .collect();
    points.sort_by(|a, b| a.1.requests_per_lifetime.total_cmp(&b.1.requests_per_lifetime));
    if points.is_empty() {
        return None;
    }
    let parts: Vec<String> = points
        .iter()
        .map(|(r, p)| {
            let measured =
                p.redis_commands_per_user_request.as_ref().map_or("no store".to_owned(), |e| per_request(e.median));
            let mut part = format!(
                "{} req/lifetime: {measured} cmd/user req (expected {})",
                count(p.requests_per_lifetime.round() as u64),
                per_request(p.expected_redis_commands_per_user_request)
            );
            for kind in ["refresh", "login"] {
                let n = p.extra_calls.get(kind).copied().unwrap_or(0);
                if n > 0 {
                    let _ = write!(part, ", {} {kind}/user req", per_request(p.per_user_request(kind)));
                }
            }
            if let Some(p99) = &r.latency_p99_us {
                let _ = write!(part, ", p99 {}", us(p99.median));
            }
            part
        })
        .collect();
    Some(format!("  {variant:<16} population  {}", parts.join("; ")))
}
