//! Revocation windows as distributions: the trials of one kind and instance pairing, and what
//! they add up to (median and maximum of both bounds of the window, trials still accepted at
//! the cap, the longest window the design's settings allowed, and what the victim's client did:
//! refreshes after the revoke and tokens adopted). The report, the guide, the terminal and
//! `compare` all read the trials through here, so they agree.

use crate::present::units::{count as n, ms};
use crate::results::{Kind, Results, RevocationRecord};

/// How far a window may pass its expected bound before it counts as past it: a probe accepted
/// was sent before the server refused the token, so only the two clocks' readings (the wall
/// clock at the acknowledgement, the monotonic clock of the probes) separate them.
pub(crate) const BOUND_SLACK_MS: f64 = 10.0;

/// Whether a trial's window passed the bound its design's settings give: the design (or this
/// reading of its settings) did not do what the settings say. A token still accepted at the
/// cap passes any bound.
pub(crate) fn past_bound(x: &RevocationRecord) -> bool {
    x.accepted_before_revoke > 0
        && match (x.window_ms, x.expected_bound_ms) {
            (Some(w), Some(b)) => w > b + BOUND_SLACK_MS,
            (None, Some(_)) => true,
            _ => false,
        }
}

/// Every trial of `kind` on `instances` for `variant`, in trial order.
pub(crate) fn trials<'r>(r: &'r Results, variant: &str, kind: Kind, instances: u32) -> Vec<&'r RevocationRecord> {
    let mut out: Vec<&RevocationRecord> =
        r.revocation.iter().filter(|x| x.variant == variant && x.kind == kind && x.instances == instances).collect();
    out.sort_by_key(|x| x.trial);
    out
}

/// What the trials of one kind and instance pairing add up to. A window of `None` is a token
/// still accepted when probing stopped at the cap: it counts as longer than any measured one.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct WindowStats {
    /// Median and maximum of the windows' lower bounds (send time of the last accepted probe).
    pub(crate) median_ms: Option<f64>,
    pub(crate) max_ms: Option<f64>,
    /// Median and maximum of their upper bounds (that probe's answer time); a file before
    /// schema 7 has none, and the send time stands in.
    pub(crate) answer_median_ms: Option<f64>,
    pub(crate) answer_max_ms: Option<f64>,
    /// Trials that say something: the victim token worked before its revoke.
    pub(crate) trials: u32,
    /// Of those, trials whose token was still accepted at the cap.
    pub(crate) still_accepted: u32,
    /// Trials left out because the token never worked on the probed instance.
    pub(crate) never_worked: u32,
    /// Trials whose window passed their expected bound ([`past_bound`]).
    pub(crate) past_bound: u32,
    /// The longest window the design's settings allowed in these trials (each trial's bound
    /// depends on where its revoke landed); `None` when the settings bound nothing.
    pub(crate) expected_bound_ms: Option<f64>,
    /// What `/capabilities` claimed (the same in every trial).
    pub(crate) supported: bool,
    /// Refresh calls the victim's client sent after the acknowledgements, and how many the
    /// server granted, over the trials; `None` where it held no refresh token (or the file
    /// predates the count).
    pub(crate) refreshes_after_revoke: Option<(u64, u64)>,
    /// Tokens the victim's client adopted from `X-Refreshed-Token` over the trials; `None` in
    /// files before it was counted.
    pub(crate) adopted_tokens: Option<u64>,
}

/// The trials of `kind` on `instances` for `variant`, summed up; `None` when there is none.
pub(crate) fn stats(r: &Results, variant: &str, kind: Kind, instances: u32) -> Option<WindowStats> {
    stats_of(&trials(r, variant, kind, instances))
}

/// As [`stats`], over records at hand.
pub(crate) fn stats_of(records: &[&RevocationRecord]) -> Option<WindowStats> {
    let first = records.first()?;
    let worked: Vec<&&RevocationRecord> = records.iter().filter(|x| x.accepted_before_revoke > 0).collect();
    let sends: Vec<Option<f64>> = worked.iter().map(|x| x.window_ms).collect();
    let answers: Vec<Option<f64>> =
        worked.iter().map(|x| x.window_ms.map(|w| x.window_answer_ms.unwrap_or(w))).collect();
    let bounds: Vec<f64> = worked.iter().filter_map(|x| x.expected_bound_ms).collect();
    Some(WindowStats {
        median_ms: median(&sends),
        max_ms: maximum(&sends),
        answer_median_ms: median(&answers),
        answer_max_ms: maximum(&answers),
        trials: count(worked.len()),
        still_accepted: count(sends.iter().filter(|w| w.is_none()).count()),
        never_worked: count(records.len() - worked.len()),
        past_bound: count(records.iter().filter(|x| past_bound(x)).count()),
        // Only when every trial has one: a bound for some trials is no bound for the kind.
        expected_bound_ms: (!bounds.is_empty() && bounds.len() == worked.len())
            .then(|| bounds.iter().copied().fold(0.0_f64, f64::max)),
        supported: first.supported,
        refreshes_after_revoke: sum(records, |x| {
            Some((x.refreshes_after_revoke?, x.refreshed_after_revoke.unwrap_or(0)))
        }),
        adopted_tokens: sum(records, |x| x.adopted_tokens.map(|a| (a, 0))).map(|(a, _)| a),
    })
}

/// The sum of a pair of counts over the records that have it; `None` when none has.
fn sum(records: &[&RevocationRecord], of: impl Fn(&RevocationRecord) -> Option<(u64, u64)>) -> Option<(u64, u64)> {
    records.iter().filter_map(|x| of(x)).reduce(|(a, b), (c, d)| (a + c, b + d))
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Windows in order, a token still accepted (`None`) after every measured one.
fn ordered(windows: &[Option<f64>]) -> Vec<f64> {
    let mut v: Vec<f64> = windows.iter().map(|w| w.unwrap_or(f64::INFINITY)).collect();
    v.sort_by(f64::total_cmp);
    v
}

/// The median (the mean of the middle two of an even count); `None` when it falls on a token
/// still accepted, or there is no window.
fn median(windows: &[Option<f64>]) -> Option<f64> {
    let v = ordered(windows);
    let n = v.len();
    let m = match n {
        0 => return None,
        n if n % 2 == 1 => *v.get(n / 2)?,
        n => (v.get(n / 2 - 1)? + v.get(n / 2)?) / 2.0,
    };
    m.is_finite().then_some(m)
}

fn maximum(windows: &[Option<f64>]) -> Option<f64> {
    ordered(windows).last().copied().filter(|m| m.is_finite())
}

impl WindowStats {
    /// Whether any trial's window is known (not every token still accepted, or never working).
    pub(crate) fn measured(&self) -> bool {
        self.trials > 0
    }

    /// `median` of the lower bounds, or why there is none.
    pub(crate) fn median_text(&self, cap_ms: f64) -> String {
        window(self, self.median_ms, cap_ms)
    }

    pub(crate) fn max_text(&self, cap_ms: f64) -> String {
        window(self, self.max_ms, cap_ms)
    }

    /// `1.20 s … 1.21 s`: both bounds of the median (or maximum) window.
    pub(crate) fn bounds_text(&self, lower: Option<f64>, upper: Option<f64>, cap_ms: f64) -> String {
        match (lower, upper) {
            (Some(l), Some(u)) if (u - l).abs() < 0.05 => ms(l),
            (Some(l), Some(u)) => format!("{} … {}", ms(l), ms(u)),
            _ => window(self, lower, cap_ms),
        }
    }

    /// What the victim's client did, where it applies: `refreshes after revoke: 2, granted: 0`
    /// for a client with a refresh token, `adopted 3 refreshed tokens` for one handed any.
    pub(crate) fn client_text(&self) -> Option<String> {
        let refreshes = self
            .refreshes_after_revoke
            .map(|(made, granted)| format!("refreshes after revoke: {}, granted: {}", n(made), n(granted)));
        let adopted = self.adopted_tokens.filter(|a| *a > 0).map(|a| format!("adopted {} refreshed tokens", n(a)));
        let parts: Vec<String> = refreshes.into_iter().chain(adopted).collect();
        (!parts.is_empty()).then(|| parts.join("; "))
    }

    /// `≤ 5.50 s` when the design's settings bound the window, else `–`.
    pub(crate) fn expected_text(&self) -> String {
        self.expected_bound_ms.map_or_else(|| "–".to_owned(), |b| format!("≤ {}", ms(b)))
    }
}

fn window(s: &WindowStats, w: Option<f64>, cap_ms: f64) -> String {
    match w {
        _ if !s.measured() => "token never worked".to_owned(),
        Some(w) => ms(w),
        None => format!("> {} (cap)", ms(cap_ms)),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::*;

    fn record(trial: u32, window: Option<f64>, answer: Option<f64>, bound: Option<f64>) -> RevocationRecord {
        RevocationRecord {
            strategy: "versioned".into(),
            variant: "versioned-g1".into(),
            kind: Kind::AdminBan,
            instances: 2,
            trial,
            supported: true,
            operation_status: 204,
            ack_ms: 1.0,
            window_ms: window,
            window_answer_ms: answer,
            expected_bound_ms: bound,
            revoke_after_login_ms: Some(500.0),
            accepted_after_ack: 3,
            accepted_before_revoke: 100,
            rejected_after_ack: 100,
            errors_after_ack: 0,
            probes: 203,
            cap_ms: 8000.0,
            token_lifetime_left_ms: 3000.0,
            timeline: Vec::new(),
            background: None,
            refreshes_after_revoke: None,
            refreshed_after_revoke: None,
            adopted_tokens: None,
        }
    }

    #[test]
    fn median_and_maximum_of_both_bounds() {
        let records = [
            record(0, Some(700.0), Some(701.0), Some(720.0)),
            record(1, Some(100.0), Some(102.0), Some(110.0)),
            record(2, Some(0.0), Some(0.4), Some(0.0)),
        ];
        let refs: Vec<&RevocationRecord> = records.iter().collect();
        let s = stats_of(&refs).unwrap();
        assert_eq!((s.median_ms, s.max_ms), (Some(100.0), Some(700.0)));
        assert_eq!((s.answer_median_ms, s.answer_max_ms), (Some(102.0), Some(701.0)));
        assert_eq!((s.trials, s.still_accepted, s.never_worked, s.past_bound), (3, 0, 0, 0));
        assert_eq!(s.expected_bound_ms, Some(720.0), "the longest bound of the trials");
        assert_eq!(s.bounds_text(s.median_ms, s.answer_median_ms, 8000.0), "100 ms … 102 ms");
        assert_eq!(s.expected_text(), "≤ 720 ms");

        // An even count takes the mean of the middle two.
        let s = stats_of(&refs[..2]).unwrap();
        assert_eq!(s.median_ms, Some(400.0));
    }

    #[test]
    fn what_the_victims_client_did_adds_up_over_the_trials() {
        let client = |refreshes: Option<u64>, granted: Option<u64>, adopted: Option<u64>| {
            let mut r = record(0, Some(1.0), Some(1.0), Some(2.0));
            (r.refreshes_after_revoke, r.refreshed_after_revoke, r.adopted_tokens) = (refreshes, granted, adopted);
            r
        };
        let refresh = [client(Some(1), Some(0), Some(0)), client(Some(2), Some(1), Some(0))];
        let s = stats_of(&refresh.iter().collect::<Vec<_>>()).unwrap();
        assert_eq!((s.refreshes_after_revoke, s.adopted_tokens), (Some((3, 1)), Some(0)));
        assert_eq!(s.client_text().unwrap(), "refreshes after revoke: 3, granted: 1");
        let versioned = [client(None, None, Some(4)), client(None, None, Some(3))];
        let s = stats_of(&versioned.iter().collect::<Vec<_>>()).unwrap();
        assert_eq!(s.client_text().unwrap(), "adopted 7 refreshed tokens");
        let plain = [client(None, None, Some(0))];
        assert_eq!(stats_of(&plain.iter().collect::<Vec<_>>()).unwrap().client_text(), None);
        let older = [client(None, None, None)];
        assert_eq!(stats_of(&older.iter().collect::<Vec<_>>()).unwrap().adopted_tokens, None);
    }

    #[test]
    fn a_token_still_accepted_counts_as_longer_than_any_window() {
        let records = [
            record(0, None, None, None),
            record(1, Some(10.0), Some(11.0), None),
            record(2, Some(30.0), Some(31.0), None),
        ];
        let refs: Vec<&RevocationRecord> = records.iter().collect();
        let s = stats_of(&refs).unwrap();
        assert_eq!((s.median_ms, s.max_ms, s.still_accepted), (Some(30.0), None, 1));
        assert_eq!(s.max_text(8000.0), "> 8.00 s (cap)");
        assert_eq!((s.expected_bound_ms, s.past_bound), (None, 0));
        let s = stats_of(&refs[..2]).unwrap();
        assert_eq!(s.median_ms, None, "the median falls on the token still accepted");
    }

    #[test]
    fn windows_past_their_bound_are_counted() {
        let records = [
            record(0, Some(735.0), Some(736.0), Some(720.0)),
            record(1, Some(725.0), Some(726.0), Some(720.0)),
            record(2, None, None, Some(720.0)),
        ];
        let refs: Vec<&RevocationRecord> = records.iter().collect();
        let s = stats_of(&refs).unwrap();
        assert_eq!(s.past_bound, 2, "735 ms and still accepted are past 720 ms; 725 ms is within the slack");
    }

    #[test]
    fn trials_whose_token_never_worked_say_nothing() {
        let mut dead = record(1, Some(0.0), Some(0.0), Some(0.0));
        dead.accepted_before_revoke = 0;
        let records = [record(0, Some(5.0), Some(6.0), Some(9.0)), dead];
        let refs: Vec<&RevocationRecord> = records.iter().collect();
        let s = stats_of(&refs).unwrap();
        assert_eq!((s.trials, s.never_worked, s.median_ms), (1, 1, Some(5.0)));
        let all_dead: Vec<&RevocationRecord> = refs[1..].to_vec();
        let s = stats_of(&all_dead).unwrap();
        assert!(!s.measured());
        assert_eq!(s.median_text(8000.0), "token never worked");
    }

    #[test]
    fn trials_are_found_in_trial_order_and_a_file_before_trials_reads_as_trial_0() {
        let mut results: Results = serde_json::from_str(include_str!("../../../tests/fixtures/results.json")).unwrap();
        let one = trials(&results, "jwt", Kind::Logout, 1);
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].trial, 0);
        assert_eq!(one[0].window_answer_ms, None);
        let mut later = one[0].clone();
        later.trial = 1;
        later.window_ms = Some(1.0);
        results.revocation.insert(0, later);
        let both = trials(&results, "jwt", Kind::Logout, 1);
        assert_eq!(both.iter().map(|x| x.trial).collect::<Vec<_>>(), [0, 1]);
        let s = stats(&results, "jwt", Kind::Logout, 1).unwrap();
        assert_eq!(s.trials, 2);
        assert_eq!(s.max_ms, one_window(&results));
    }

    fn one_window(r: &Results) -> Option<f64> {
        r.revocation
            .iter()
            .find(|x| x.variant == "jwt" && x.kind == Kind::Logout && x.trial == 0 && x.instances == 1)?
            .window_ms
    }
}
