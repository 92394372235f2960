//! The rows of one variant: every figure either run has for it, with how it is judged.

use super::GENERATOR_BOUND;
use super::judge::{
    AVAILABILITY, COMMANDS, COST, COUNTED, Figure, Judge, KNEE, LATENCY, LOGINS, NOISE, Noise, REDIS_BYTES, Row, SLACK,
    THROUGHPUT, WINDOW,
};
use crate::present::report::revocations;
use crate::present::units::{bytes, count, cpu_us, ms, ns, pct, per_request, rate, us};
use crate::results::{Estimate, Kind, Results, RevocationRecord, RunRecord, Scenario};

/// A kind's window over its trials: the median is compared; the longest is shown beside it.
fn window(trials: &[&RevocationRecord]) -> Option<Figure> {
    let first = trials.first()?;
    let s = revocations::stats_of(trials)?;
    let longest = match s.max_ms {
        _ if s.trials < 2 || s.max_ms == s.median_ms => String::new(),
        Some(m) => format!(" (max {}, {} trials)", ms(m), s.trials),
        None => format!(" (max still accepted, {} trials)", s.trials),
    };
    // No trial's token ever worked: the first trial's figure, as a single trial reads.
    let median = if s.measured() { s.median_ms } else { first.window_ms };
    // The trials' range is the window's interval when every trial's token was refused.
    let windows: Option<Vec<f64>> =
        trials.iter().filter(|t| t.accepted_before_revoke > 0).map(|t| t.window_ms).collect();
    let spread = windows.filter(|w| w.len() >= 2).map(|w| {
        (w.iter().copied().fold(f64::INFINITY, f64::min), w.iter().copied().fold(f64::NEG_INFINITY, f64::max))
    });
    Some(match median {
        Some(w) => Figure { text: format!("{}{longest}", ms(w)), value: w, spread },
        None => Figure::new(format!("still accepted at {:.0} s cap{longest}", first.cap_ms / 1000.0), f64::INFINITY),
    })
}

/// How close to the bound its settings allow a window must end to be explained by them: the
/// probes' spacing and the acknowledgement's round trip, with room.
const AT_BOUND_MS: f64 = 50.0;

/// When every trial whose token worked ended within [`AT_BOUND_MS`] of the bound the design's
/// settings give it (jwt and refresh: lifetime left plus leeway; versioned: the grace; the
/// immediate designs: 0), the window is its settings at a random phase: the figure compared is
/// then how far under its bound each trial ended, which no phase moves.
fn slack(trials: &[&RevocationRecord]) -> Option<Figure> {
    let worked: Vec<&&RevocationRecord> = trials.iter().filter(|t| t.accepted_before_revoke > 0).collect();
    let slacks: Option<Vec<f64>> =
        worked.iter().map(|t| Some(t.expected_bound_ms? - t.window_ms?)).collect::<Option<Vec<f64>>>();
    let slacks = slacks.filter(|s| !s.is_empty() && s.iter().all(|x| x.abs() <= AT_BOUND_MS))?;
    let e = Estimate::of(&slacks)?;
    let widest = worked.iter().filter_map(|t| t.window_ms).fold(0.0, f64::max);
    Some(Figure {
        text: format!("at its bound ({} under, up to {})", ms(e.median), ms(widest)),
        value: e.median,
        spread: (slacks.len() >= 2).then(|| {
            (
                e.values.iter().copied().fold(f64::INFINITY, f64::min),
                e.values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            )
        }),
    })
}

/// Baseline's B/A of a CPU-per-request figure at the common rate: how much the machine itself
/// sped up or slowed down between the runs.
fn drift(a: &Results, b: &Results, field: fn(&RunRecord) -> Option<&Estimate>) -> Option<f64> {
    let of = |r: &Results| cost(r, "baseline").and_then(field).map(|e| e.median).filter(|m| *m > 0.0);
    Some(of(b)? / of(a)?)
}

/// The line saying how the machine drifted, when it did by more than baseline's intervals allow.
pub(super) fn drift_line(a: &Results, b: &Results) -> Option<String> {
    let server = drift(a, b, |c| c.server_cpu_ns_per_request.as_ref())?;
    let generator = drift(a, b, |c| c.generator_cpu_ns_per_request.as_ref()).unwrap_or(1.0);
    Some(format!(
        "Machine drift: baseline (the same HTTP stack with no auth, the control) used {:.2}× the server CPU and {:.2}× the generator CPU per request in B as in A. Its own rows are judged as measured; every other variant's CPU per request is divided by that factor before it is judged (the B/A column shows the figures as measured).",
        server, generator
    ))
}

fn cost<'r>(r: &'r Results, v: &str) -> Option<&'r RunRecord> {
    r.run(v, Scenario::Cost)
}

pub(super) fn throughput(r: &RunRecord) -> Figure {
    let t = &r.throughput_rps;
    // Files before schema 7 have min..max over repetitions and no interval.
    let spread = t.ci95.map(|[lo, hi]| (lo, hi)).or((t.values.len() >= 2).then_some((t.min, t.max)));
    let mut text = match spread {
        Some((lo, hi)) => format!("{} [{}–{}]", rate(t.median), rate(lo), rate(hi)),
        None => rate(t.median),
    };
    if r.generator_bound {
        text.push_str(GENERATOR_BOUND);
    }
    Figure { text, value: t.median, spread }
}

/// A figure measured in rounds, with its interval.
pub(super) fn estimate(e: &Estimate, f: impl Fn(f64) -> String) -> Figure {
    Figure {
        text: format!("{} [{}–{}]", f(e.median), f(e.ci95[0]), f(e.ci95[1])),
        value: e.median,
        spread: (e.values.len() >= 2).then_some((e.ci95[0], e.ci95[1])),
    }
}

/// Variants in order of first appearance in A, then in B.
pub(super) fn variants<'r>(a: &'r Results, b: &'r Results) -> Vec<&'r str> {
    let mut out: Vec<&str> = Vec::new();
    for r in [a, b] {
        let names = r
            .runs
            .iter()
            .map(|x| x.variant.as_str())
            .chain(r.sweeps.iter().map(|x| x.variant.as_str()))
            .chain(r.revocation.iter().map(|x| x.variant.as_str()))
            .chain(r.outage.iter().map(|x| x.variant.as_str()))
            .chain(r.scale.iter().map(|x| x.variant.as_str()));
        for name in names {
            if !out.contains(&name) {
                out.push(name);
            }
        }
    }
    out
}

/// Keys in order of first appearance in A, then in B.
pub(super) fn union<K: PartialEq>(a: Vec<K>, b: Vec<K>) -> Vec<K> {
    let mut out = Vec::new();
    for k in a.into_iter().chain(b) {
        if !out.contains(&k) {
            out.push(k);
        }
    }
    out
}

/// Every row of one variant that has a figure in at least one run.
pub(super) fn rows(a: &Results, b: &Results, v: &str) -> Vec<Row> {
    let mut rows = Vec::new();
    let mut add = |name: String, judge: Judge, f: &dyn Fn(&Results) -> Option<Figure>| {
        let (fa, fb) = (f(a), f(b));
        if fa.is_some() || fb.is_some() {
            rows.push(Row { name, judge, a: fa, b: fb, drift: None });
        }
    };
    add("capacity req/s [95 %]".into(), THROUGHPUT, &|r| r.steady(v).map(throughput));
    if [a, b].iter().any(|r| r.steady(v).is_some_and(|s| s.errors > 0)) {
        add("steady errors".into(), COUNTED, &|r| {
            r.steady(v).map(|s| Figure::new(s.errors.to_string(), s.errors as f64))
        });
    }
    // Cost at the common rate: CPU per request and latency from the intended send time. Files
    // before schema 7 have no cost records: their server CPU at saturation stands in.
    add("server CPU/request [95 %]".into(), COST, &|r| match cost(r, v) {
        Some(c) => c.server_cpu_ns_per_request.as_ref().map(|e| estimate(e, ns)),
        None => r.steady(v).and_then(|s| s.server_cpu_us_per_request).map(|c| Figure::new(cpu_us(c), c * 1e3)),
    });
    add("store CPU/request [95 %]".into(), COST, &|r| {
        cost(r, v).and_then(|c| c.redis_cpu_ns_per_request.as_ref()).map(|e| estimate(e, ns))
    });
    add("generator CPU/request [95 %]".into(), COST, &|r| {
        cost(r, v).and_then(|c| c.generator_cpu_ns_per_request.as_ref()).map(|e| estimate(e, ns))
    });
    // CPU time per request moves with the machine's own speed: baseline (the same HTTP stack,
    // no auth) is the control, and its B/A is taken out of every other variant's before judging.
    if v != "baseline" && cost(a, v).is_some() && cost(b, v).is_some() {
        let (server, generator) = (
            drift(a, b, |c| c.server_cpu_ns_per_request.as_ref()),
            drift(a, b, |c| c.generator_cpu_ns_per_request.as_ref()),
        );
        for row in rows.iter_mut() {
            row.drift = match row.name.as_str() {
                "server CPU/request [95 %]" | "store CPU/request [95 %]" => server,
                "generator CPU/request [95 %]" => generator,
                _ => None,
            };
        }
    }
    let mut add = |name: String, judge: Judge, f: &dyn Fn(&Results) -> Option<Figure>| {
        let (fa, fb) = (f(a), f(b));
        if fa.is_some() || fb.is_some() {
            rows.push(Row { name, judge, a: fa, b: fb, drift: None });
        }
    };
    add("cost p50 [95 %]".into(), COST, &|r| {
        cost(r, v).and_then(|c| c.latency_p50_us.as_ref()).map(|e| estimate(e, us))
    });
    add("cost p99 [95 %]".into(), COST, &|r| {
        cost(r, v).and_then(|c| c.latency_p99_us.as_ref()).map(|e| estimate(e, us))
    });
    if [a, b].iter().any(|r| cost(r, v).is_some_and(|c| c.errors > 0 || c.dropped.unwrap_or(0) > 0)) {
        add("cost errors".into(), COUNTED, &|r| cost(r, v).map(|c| Figure::new(c.errors.to_string(), c.errors as f64)));
    }
    add("store calls/request".into(), COMMANDS, &|r| {
        r.steady(v).and_then(|s| s.redis_commands_per_request).map(|c| Figure::new(per_request(c), c))
    });
    add("Redis bytes/request".into(), REDIS_BYTES, &|r| {
        r.steady(v).and_then(|s| s.redis_bytes_per_request).map(|b| Figure::new(bytes(b), b))
    });
    add("token bytes".into(), COUNTED, &|r| {
        r.steady(v).and_then(|s| s.token_bytes).map(|t| Figure::new(format!("{t} B"), t as f64))
    });
    add("sweep knee req/s (one pass)".into(), KNEE, &|r| {
        r.sweeps.iter().find(|s| s.variant == v).map(|s| match s.knee_rps {
            Some(k) => Figure::new(rate(k), k),
            None => Figure::new("none (flat)".into(), f64::INFINITY),
        })
    });
    super::rate::rows(a, b, v, &mut add);
    super::population::rows(a, b, v, &mut add);
    add("login logins/s (one window)".into(), LOGINS, &|r| {
        r.run(v, Scenario::Login).map(|l| Figure::new(rate(l.throughput_rps.median), l.throughput_rps.median))
    });

    // One row per kind and pairing, however many trials.
    let of_variant = |r: &Results| -> Vec<(Kind, u32)> {
        r.revocation.iter().filter(|x| x.variant == v).map(|x| (x.kind, x.instances)).collect()
    };
    let mut keys = union(of_variant(a), of_variant(b));
    // Kinds in protocol order, one instance before two.
    keys.sort_by_key(|(kind, instances)| (Kind::ALL.iter().position(|k| k == kind), *instances));
    for (kind, instances) in keys {
        // Both runs' windows explained by the design's settings: compare how far under the
        // bound they ended (ms, probes' resolution), not where the random phase put the bound.
        let explained = [a, b].iter().all(|r| slack(&revocations::trials(r, v, kind, instances)).is_some());
        if explained {
            add(format!("revoke {} ({instances} inst.)", kind.as_str()), SLACK, &|r| {
                slack(&revocations::trials(r, v, kind, instances))
            });
        } else {
            add(format!("revoke {} ({instances} inst.)", kind.as_str()), WINDOW, &|r| {
                window(&revocations::trials(r, v, kind, instances))
            });
        }
    }

    let faults = |r: &Results| -> Vec<_> { r.outage.iter().filter(|x| x.variant == v).map(|x| x.fault).collect() };
    for fault in union(faults(a), faults(b)) {
        add(format!("outage {}: availability", fault.as_str()), AVAILABILITY, &|r| {
            r.outage(v, fault).map(|x| Figure::new(pct(x.availability_during), x.availability_during))
        });
        let bucket = [a, b].iter().filter_map(|r| r.outage(v, fault)).map(|x| x.bucket_ms).fold(0.0, f64::max);
        let judge = Judge { noise: Noise::Band { relative: NOISE, absolute: bucket }, ..LATENCY };
        add(format!("outage {}: recovery", fault.as_str()), judge, &|r| {
            r.outage(v, fault).map(|x| match x.recovery_ms {
                Some(m) => Figure::new(ms(m), m),
                None => Figure::new("never".into(), f64::INFINITY),
            })
        });
    }

    // rtt and tokensize points, by the round trip injected and the claim bytes added.
    let point = |r: &Results, scenario: Scenario, key: &dyn Fn(&RunRecord) -> String| -> Vec<String> {
        r.runs_of(v, scenario).into_iter().map(key).collect()
    };
    let rtt_key = |x: &RunRecord| x.redis_rtt_ms.map_or_else(String::new, |m| format!("{m}"));
    for key in union(point(a, Scenario::Rtt, &rtt_key), point(b, Scenario::Rtt, &rtt_key)) {
        add(format!("rtt {key} ms: req/s [95 %]"), THROUGHPUT, &|r| {
            r.runs_of(v, Scenario::Rtt).into_iter().find(|x| rtt_key(x) == key).map(throughput)
        });
    }
    let pad_key = |x: &RunRecord| x.claims_padding_bytes.map_or_else(String::new, |p| p.to_string());
    for key in union(point(a, Scenario::Tokensize, &pad_key), point(b, Scenario::Tokensize, &pad_key)) {
        add(format!("tokensize +{key} B: req/s [95 %]"), THROUGHPUT, &|r| {
            r.runs_of(v, Scenario::Tokensize).into_iter().find(|x| pad_key(x) == key).map(throughput)
        });
    }

    let sizes = |r: &Results| -> Vec<u64> { r.scale.iter().filter(|x| x.variant == v).map(|x| x.entries).collect() };
    for entries in union(sizes(a), sizes(b)) {
        let kind = [a, b].iter().find_map(|r| r.scale(v, entries)).map_or("", |x| x.entry_kind.as_str());
        add(format!("scale {} {kind}: bytes/entry", count(entries)), LATENCY, &|r| {
            r.scale(v, entries).map(|x| Figure::new(bytes(x.bytes_per_entry), x.bytes_per_entry))
        });
    }
    // Server CPU per user request moves with the machine as the cost figures do.
    let server = drift(a, b, |c| c.server_cpu_ns_per_request.as_ref()).filter(|_| v != "baseline");
    for row in rows.iter_mut().filter(|r| r.name.ends_with(super::population::CPU)) {
        row.drift = server;
    }
    rows
}
