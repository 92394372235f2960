//! The report's behaviour sections: revocation windows and what an outage of the store (Redis
//! or PostgreSQL) did.

use super::*;
use crate::present::units::count;
use revocations::BOUND_SLACK_MS;

impl Report<'_> {
    pub(super) fn revocation(&mut self) -> anyhow::Result<()> {
        self.h2("Revocation");
        if self.r.revocation.is_empty() {
            self.p("Not measured in this run: the revocation scenario did not run.");
            return Ok(());
        }
        let most = self.r.revocation.iter().map(|x| x.trial + 1).max().unwrap_or(1);
        self.p(format!("How long a revoked token keeps working: probes send `GET /me` with the victim's token continuously before and after the revoking request; the window runs from the revoke's acknowledgement to the last accepted probe, which was accepted somewhere between its send time (the lower bound) and its answer (the upper bound). Each kind is measured in {most} trial(s) per instance pairing, each on a victim of its own, with the revoke sent a random delay after the login (within a second, or within the grace where a grace decides), so a window that depends on where the revoke lands shows as a spread. ✓: the server says it supports the kind; ✗: it answers 501 and the token works until it expires (or past the probing cap)."));
        let mut head = vec!["variant".to_owned(), "instances".to_owned()];
        head.extend(Kind::ALL.iter().map(|k| k.as_str().to_owned()));
        let mut t = Table::new(head);
        let mut instance_counts: Vec<u32> = self.r.revocation.iter().map(|x| x.instances).collect();
        instance_counts.sort_unstable();
        instance_counts.dedup();
        let pairing = |n: u32| if n == 1 { "1".to_owned() } else { format!("{n} (revoke on A, probe B)") };
        let cap_of = |v: &str, kind: Kind, n: u32| self.r.revocation(v, kind, n).map_or(0.0, |x| x.cap_ms);
        for v in self.variants() {
            for &n in &instance_counts {
                if !self.r.revocation.iter().any(|x| x.variant == v && x.instances == n) {
                    continue;
                }
                let mut row = vec![v.clone(), pairing(n)];
                for kind in Kind::ALL {
                    row.push(opt(revocations::stats(self.r, &v, kind, n), |s| {
                        let cap = cap_of(&v, kind, n);
                        let max = if s.trials > 1 && s.max_ms != s.median_ms {
                            format!(" (max {})", s.max_text(cap))
                        } else {
                            String::new()
                        };
                        format!("{} {}{max}", if s.supported { "✓" } else { "✗" }, s.median_text(cap))
                    }));
                }
                t.row(row);
            }
        }
        let probe = self.r.revocation.first().map(|x| x.cap_ms).unwrap_or(0.0);
        t.note = Some(format!(
            "Capability matrix: supported per /capabilities, and the median window over the trials (the longest in brackets when it differs). Probing stops at a cap ({} for the first record; longer when the token's own lifetime ends sooner than never).",
            ms(probe)
        ));
        self.push(Block::Table(t));
        self.revocation_trials(&instance_counts);
        let loads: Vec<String> = self
            .variants()
            .iter()
            .filter_map(|v| {
                let loaded: Vec<&crate::results::BackgroundLoad> = self
                    .r
                    .revocation
                    .iter()
                    .filter(|x| &x.variant == v)
                    .filter_map(|x| x.background.as_ref())
                    .collect();
                let first = loaded.first()?;
                let served = loaded.iter().map(|b| b.achieved_rps).fold(f64::INFINITY, f64::min);
                let failures: u64 = loaded.iter().map(|b| b.failures).sum();
                Some(format!(
                    "{v} {} req/s offered (at least {} served{})",
                    rate(first.offered_rps),
                    rate(served),
                    if failures > 0 { format!(", {failures} failed") } else { String::new() }
                ))
            })
            .collect();
        if loads.is_empty() {
            self.p("The servers were idle while probed (no steady maximum to derive a background load from).");
        } else {
            self.p(format!(
                "Probed under load: while each kind was probed, an open-loop `GET /me` load at half the variant's steady maximum ran against every server of the scenario (other users' tokens): {}.",
                loads.join("; ")
            ));
        }
        for kind in Kind::ALL {
            let mut rows = Vec::new();
            for v in self.variants() {
                for &n in &instance_counts {
                    let all = revocations::trials(self.r, &v, kind, n);
                    let Some(rec) = all.first() else { continue };
                    let stats = revocations::stats_of(&all);
                    let segments = rec
                        .timeline
                        .iter()
                        .map(|s| {
                            let o = match s.outcome.as_str() {
                                "accepted" => charts::Outcome::Accepted,
                                "rejected" => charts::Outcome::Rejected,
                                _ => charts::Outcome::Error,
                            };
                            (s.from_ms, s.to_ms, o)
                        })
                        .collect();
                    rows.push(TimelineRow {
                        label: if n == 1 { v.clone() } else { format!("{v} A→B") },
                        colour: self.palette.colour(&v),
                        segments,
                        note: match stats {
                            Some(s) if all.len() > 1 => format!(
                                "{} {}; median {}, max {} of {}",
                                if rec.supported { "window" } else { "unsupported," },
                                window_text(rec),
                                s.median_text(rec.cap_ms),
                                s.max_text(rec.cap_ms),
                                all.len()
                            ),
                            _ => format!(
                                "{} {}",
                                if rec.supported { "window" } else { "unsupported," },
                                window_text(rec)
                            ),
                        },
                    });
                }
            }
            if rows.is_empty() {
                continue;
            }
            let tl = Timeline {
                title: format!("Revocation timeline: {}", kind.as_str()),
                x_desc: "probe send time relative to the revoke's acknowledgement (ms)".into(),
                rows,
            };
            let caption = format!(
                "Kind `{}`: every probe of the victim's token in the first trial, by send time, relative to the acknowledgement of the revoking request (vertical line); the note beside a row gives that trial's window, then the median and the longest over all trials. Red: accepted; green: rejected; grey: errors. A→B rows revoke on instance A and probe instance B.",
                kind.as_str()
            );
            self.chart(
                &tl,
                &format!("revocation_{}", kind.as_str()),
                &format!("Revocation timeline: {}", kind.as_str()),
                caption,
            )?;
        }
        Ok(())
    }

    /// Every kind and pairing with its trials' windows: median and longest, both bounds of each,
    /// and beside them the longest window the design's settings allowed, and where it applies
    /// what the victim's client did (refreshes after the revoke, tokens adopted).
    fn revocation_trials(&mut self, instance_counts: &[u32]) {
        let client_column = self
            .r
            .revocation
            .iter()
            .any(|x| x.refreshes_after_revoke.is_some() || x.adopted_tokens.is_some_and(|a| a > 0));
        let mut head = vec![
            "variant",
            "instances",
            "kind",
            "trials",
            "median window (send … answer)",
            "longest window (send … answer)",
            "expected from settings",
            "still accepted at cap",
        ];
        if client_column {
            head.push("victim's client");
        }
        let mut t = Table::new(head);
        let mut over = Vec::new();
        let mut let_back_in = Vec::new();
        for v in self.variants() {
            for &n in instance_counts {
                for kind in Kind::ALL {
                    let Some(s) = revocations::stats(self.r, &v, kind, n) else { continue };
                    let cap = self.r.revocation(&v, kind, n).map_or(0.0, |x| x.cap_ms);
                    let trials = if s.never_worked > 0 {
                        format!("{} (+{} whose token never worked)", s.trials, s.never_worked)
                    } else {
                        s.trials.to_string()
                    };
                    let mut row = vec![
                        v.clone(),
                        if n == 1 { "1".to_owned() } else { format!("{n} (A→B)") },
                        kind.as_str().to_owned(),
                        trials,
                        s.bounds_text(s.median_ms, s.answer_median_ms, cap),
                        s.bounds_text(s.max_ms, s.answer_max_ms, cap),
                        s.expected_text(),
                        s.still_accepted.to_string(),
                    ];
                    if client_column {
                        row.push(s.client_text().unwrap_or_else(|| "–".to_owned()));
                    }
                    t.row(row);
                    if s.past_bound > 0 {
                        over.push(format!("{v} {} ({n} inst.): {} trial(s)", kind.as_str(), s.past_bound));
                    }
                    // A role change may grant a refresh: the new pair carries the new role.
                    if let Some((made, granted)) = s.refreshes_after_revoke.filter(|(_, g)| *g > 0)
                        && kind != Kind::RoleChange
                    {
                        let_back_in.push(format!(
                            "{v} {} ({n} inst.): {} of {}",
                            kind.as_str(),
                            count(granted),
                            count(made)
                        ));
                    }
                }
            }
        }
        let client_note = if client_column {
            " Victim's client: the probers present the victim's tokens as a real client would, for whoever holds the pair its login returned; it adopts tokens handed back in `X-Refreshed-Token` (adopted: over the trials), and refreshes once its access token has expired by `expires_in` or a probe is refused as `expired` (refreshes after revoke: calls sent after the acknowledgement, over the trials; granted: those the server answered with a new pair, which a sound design never does, except that a role change may hand out a pair carrying the new role)."
        } else {
            ""
        };
        t.note = Some(format!(
            "Per kind and instance pairing over its trials. The window's lower bound is the send time of the last accepted probe after the acknowledgement, its upper bound that probe's answer time (one figure when they agree within 0.05 ms). Expected from settings: the longest window the design's settings allow in these trials, from each victim token's `iat` and `exp` and the wall-clock time of the acknowledgement: the token's remaining lifetime plus the servers' 2 s leeway and `exp`'s whole second where the revocation waits for expiry; `iat` plus the grace where it waits for the grace; 0 where it acts at once; – where no setting bounds it (a pushed revocation, a server that checks nothing). A measured window past its expected bound by more than {} is listed below the table.{client_note}",
            ms(BOUND_SLACK_MS)
        ));
        self.push(Block::Table(t));
        if !over.is_empty() {
            self.push(Block::Warning(format!("windows longer than the design's settings allow: {}.", over.join("; "))));
        }
        if !let_back_in.is_empty() {
            self.push(Block::Warning(format!(
                "refreshes granted to the holder of a revoked pair: {}.",
                let_back_in.join("; ")
            )));
        }
    }

    pub(super) fn outage(&mut self) -> anyhow::Result<()> {
        self.h2("Store failure");
        if self.r.outage.is_empty() {
            self.p("Not measured in this run: the outage scenario did not run.");
            return Ok(());
        }
        let drops = self.r.outage.iter().any(|o| o.dropped > 0);
        let mut head = vec![
            "variant",
            "fault",
            "available before",
            "during",
            "after",
            "recovery",
            "revoked token accepted",
            "sessions lost",
            "revocations lost",
        ];
        if drops {
            head.push("generator dropped");
        }
        let mut t = Table::new(head);
        let mut warnings = Vec::new();
        for v in self.variants() {
            for f in FAULTS {
                let Some(o) = self.r.outage(&v, f) else { continue };
                let phases = dropped_by_phase(o);
                let share = |i: usize, v: f64| {
                    let mark = if phases.get(i).is_some_and(|n| *n > 0) { " ✗" } else { "" };
                    format!("{}{mark}", pct(v))
                };
                let mut row = vec![
                    v.clone(),
                    fault_name(f).to_owned(),
                    share(0, o.availability_before),
                    share(1, o.availability_during),
                    share(2, o.availability_after),
                    o.recovery_ms.map_or_else(|| "never".into(), ms),
                    format!("{}/{}", o.revoked_accepted, o.revoked_probes),
                    format!("{}/{}", o.sessions_lost, o.keepers),
                    o.revocations_lost.map_or_else(|| "n/a".into(), |n| format!("{n}/{}", o.revoked_checked)),
                ];
                if drops {
                    row.push(o.dropped.to_string());
                }
                t.row(row);
                if o.dropped > 0 {
                    warnings.push(format!(
                        "**{v}** ({}): the generator dropped {} sends at its connection limit, so the availability marked ✗ is not the server's: the requests it could not send are missing from it.",
                        fault_name(f),
                        o.dropped
                    ));
                }
            }
        }
        let first = self.r.outage.first();
        let available = if self.r.schema_version >= 6 {
            format!(
                "Available: share of the requests intended in that phase (by intended send time) that were answered 2xx within the client's {} deadline from their intended send time; a client that waits out a slow answer within its deadline was served, one that gets nothing within it was not.",
                first.map_or("–".into(), |o| ms(o.client_timeout_ms))
            )
        } else {
            format!(
                "Available: share of requests answered 2xx, counted by when the client learned the outcome (schema {}).",
                self.r.schema_version
            )
        };
        let generator = if drops {
            " Generator dropped: sends the generator could not make at its connection limit; ✗: the generator dropped sends in that phase, so that availability is not the server's."
        } else {
            ""
        };
        let postgres = if self.r.outage.iter().any(|o| o.store() == "PostgreSQL") {
            " A variant that keeps its sessions in PostgreSQL has a PostgreSQL of its own, frozen (SIGSTOP to the postmaster and every backend) or killed (SIGKILL to all of them, no checkpoint) and restarted on the same data with crash recovery: a logged table replays its WAL and keeps its committed rows, an unlogged one comes back empty."
        } else {
            ""
        };
        t.note = Some(format!(
            "Open loop against each variant at half its closed-loop maximum (at most 2000 req/s), {} connections to start with and more opened as clients need them; the store (Redis, or PostgreSQL for the variants that keep their sessions there) unavailable for about {} per fault.{postgres} {available} Recovery: from the store back to the first 100 ms bucket in which at least 95 % of outcomes were answers from a working store (2xx, or 401 for tokens a restart lost). Revoked token accepted: probes with an already revoked token answered 2xx during the fault (fail-open shows here). Sessions lost: logged-in users whose token stopped working after the restart. Revocations lost: revoked tokens accepted again after the restart.{generator}",
            first.map_or(0, |o| o.connections),
            first.map_or("–".into(), |o| ms(o.redis_back_ms - o.fault_start_ms)),
        ));
        self.push(Block::Table(t));
        for w in warnings {
            self.push(Block::Warning(w));
        }
        for f in FAULTS {
            let records: Vec<&OutageRecord> = self.r.outage.iter().filter(|o| o.fault == f).collect();
            if records.is_empty() {
                continue;
            }
            // Small multiples: one panel per variant, the same axes, the fault shaded in each.
            let mut panels = Vec::new();
            let x_label = if self.r.schema_version >= 6 {
                "intended send time since the fault began (s)"
            } else {
                "time since the fault began (s)"
            };
            for o in &records {
                let mut panel = Panel::new(x_label, Unit::Seconds, "answered 2xx (%)", Unit::Percent);
                panel.title = Some(o.variant.clone());
                panel.y_range = Some((0.0, 112.0));
                let step = o.bucket_ms / 1000.0;
                let start = o.fault_start_ms / 1000.0;
                let end = o.timeline.len() as f64 * step - start;
                panel.x_range = Some((-start, end.max(1.0)));
                panel.shades.push(Shade {
                    from: 0.0,
                    to: (o.redis_back_ms - o.fault_start_ms) / 1000.0,
                    label: String::new(),
                });
                let points = o
                    .timeline
                    .iter()
                    .enumerate()
                    .map(|(i, b)| {
                        let total = b.total();
                        let share = if total == 0 { 0.0 } else { b.ok as f64 * 100.0 / total as f64 };
                        (i as f64 * step - start, share)
                    })
                    .collect();
                panel.series.push(Series {
                    label: String::new(),
                    colour: self.palette.colour(&o.variant),
                    points,
                    markers: false,
                });
                panels.push(panel);
            }
            let by = if self.r.schema_version >= 6 {
                "by intended send time, answered 2xx within the client deadline; sends the generator dropped left out"
            } else {
                "by completion"
            };
            let label = fault_label(f, &records);
            let caption = format!(
                "{label}: share of requests answered 2xx per {} bucket ({by}), with the time the store was unavailable shaded; each variant's clock starts at its own fault. A bucket with no request counts as 0 %.",
                ms(records.first().map_or(100.0, |o| o.bucket_ms))
            );
            let columns = if panels.len() > 4 { 3 } else { 2 };
            let fig = Figure { title: format!("Success rate through a store fault: {label}"), panels, columns };
            self.chart(&fig, &format!("outage_{}", f.as_str()), &format!("Outage timeline: {label}"), caption)?;
        }
        Ok(())
    }
}
