//! Probing one revocation kind: how long a revoked token keeps working.
//!
//! For one revocation kind, a victim token is probed by several concurrent probers (each on
//! its own keep-alive connection, together one probe per half millisecond for a trial alone).
//! The revoke is sent a lead plus a random phase after the victim's login, at `t0`, and
//! acknowledged at `t1`. Every probe's send time, answer time and outcome is kept; the window
//! is the send time of the last probe accepted *after* `t1`, minus `t1` (0 when none; unknown,
//! `null`, when the token was still accepted when the cap ran out), and that probe's answer
//! time bounds it from above. Probing stops once probes have been refused for `settle` after
//! the last accepted one, or at the cap.
//!
//! With two instances the revoke goes to instance A and the probes to instance B, the "site A
//! and site B" case: shared Redis state crosses over, in-process state does not.
//!
//! The probers present the victim's tokens as a real client would ([`VictimClient`]): they
//! adopt refreshed tokens and refresh an expired access token, so a design that lets the holder
//! of a revoked pair refresh its way back in shows a long or unbounded window.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use authbench_server::http::REFRESHED_TOKEN;
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{AUTHORIZATION, HOST};
use hyper::{Method, Request};

use super::bound::{Design, TokenTimes, expected_bound_ms};
use super::victim::VictimClient;
use crate::engine::client;
use crate::engine::client::Issued;
use crate::engine::http1::Http1;
use crate::results::{Kind, RevocationRecord, Segment};

/// A role the role-change kind grants; a probe answered with it shows the change took effect.
const NEW_ROLE: &str = "auditor";

/// How one kind is probed.
#[derive(Debug, Clone)]
pub struct ProbePlan {
    /// Concurrent probers.
    pub probers: usize,
    /// Pause between one prober's probes.
    pub interval: Duration,
    /// Probing before the revoke (and before its random phase), to show the token accepted.
    pub lead: Duration,
    /// Stop once probes have been refused this long after the last accepted one.
    pub settle: Duration,
    /// Stop at the latest this long after the acknowledgement.
    pub cap: Duration,
    pub password: String,
    pub admin_key: String,
}

/// What a probe saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Accepted,
    Rejected,
    Error,
}

/// What a probe's answer tells the victim's client besides its outcome.
struct Answer {
    outcome: Outcome,
    /// Refused as `expired`: time to refresh.
    expired: bool,
    /// A fresh token handed back in `X-Refreshed-Token`.
    refreshed: Option<String>,
}

impl Answer {
    fn error() -> Self {
        Self { outcome: Outcome::Error, expired: false, refreshed: None }
    }
}

/// One persistent connection that sends `GET /me` with a token.
struct Prober {
    http: Http1,
    role_change: bool,
}

impl Prober {
    fn new(addr: SocketAddr, role_change: bool) -> Self {
        Self { http: Http1::new(addr), role_change }
    }

    /// Sends `GET /me` with `bearer` (`Bearer <token>`).
    async fn probe(&mut self, bearer: &str) -> Answer {
        let Ok(request) = Request::builder()
            .method(Method::GET)
            .uri("/me")
            .header(HOST, self.http.host())
            .header(AUTHORIZATION, bearer)
            .body(Full::new(Bytes::new()))
        else {
            return Answer::error();
        };
        match tokio::time::timeout(Duration::from_secs(2), self.http.exchange(request)).await {
            Ok(Ok((head, body))) if head.status() == 200 => {
                let refreshed = head.headers().get(REFRESHED_TOKEN).and_then(|v| v.to_str().ok()).map(str::to_owned);
                // For a role change, an answer that already carries the new role means the
                // change took effect: the old claims are no longer accepted.
                let outcome = if self.role_change && String::from_utf8_lossy(&body).contains(NEW_ROLE) {
                    Outcome::Rejected
                } else {
                    Outcome::Accepted
                };
                Answer { outcome, expired: false, refreshed }
            }
            Ok(Ok((head, body))) if head.status() == 401 => {
                let reason = serde_json::from_slice::<serde_json::Value>(&body)
                    .ok()
                    .and_then(|j| j.get("reason").and_then(serde_json::Value::as_str).map(str::to_owned));
                Answer { outcome: Outcome::Rejected, expired: reason.as_deref() == Some("expired"), refreshed: None }
            }
            Ok(Ok(_)) | Ok(Err(_)) => Answer::error(),
            Err(_) => {
                // Timed out: a late answer must not be read as the next probe's.
                self.http.reset();
                Answer::error()
            }
        }
    }
}

/// The servers a kind is measured on: revoke on `a`, probe on `b` (the same for one instance).
#[derive(Debug, Clone, Copy)]
pub struct Pair {
    pub a: SocketAddr,
    pub b: SocketAddr,
}

/// Performs the revocation on A and returns the status of the revoking request.
async fn revoke(
    kind: Kind,
    a: SocketAddr,
    victim: &str,
    token: &str,
    other_token: &str,
    plan: &ProbePlan,
) -> anyhow::Result<u16> {
    let bearer = format!("Bearer {token}");
    let admin = [("x-admin-key", plan.admin_key.as_str())];
    let answer = match kind {
        Kind::Logout => client::call(a, Method::POST, "/logout", &[("authorization", &bearer)], None).await?,
        Kind::LogoutAll => {
            // Logged out everywhere from another device of the same user.
            let other = format!("Bearer {other_token}");
            client::call(a, Method::POST, "/logout-all", &[("authorization", &other)], None).await?
        }
        Kind::SingleDevice => {
            let body = serde_json::json!({"username": victim, "password": plan.password, "device": "second"});
            client::call(a, Method::POST, "/login", &[], Some(&body)).await?
        }
        Kind::PasswordChange => {
            let body = serde_json::json!({"current_password": plan.password, "new_password": format!("{}-changed", plan.password)});
            client::call(a, Method::POST, "/password", &[("authorization", &bearer)], Some(&body)).await?
        }
        Kind::AdminBan => client::call(a, Method::POST, &format!("/admin/users/{victim}/revoke"), &admin, None).await?,
        Kind::RoleChange => {
            let body = serde_json::json!({"roles": ["user", NEW_ROLE]});
            client::call(a, Method::PUT, &format!("/admin/users/{victim}/roles"), &admin, Some(&body)).await?
        }
        Kind::RevokeAll => client::call(a, Method::POST, "/admin/revoke-all", &admin, None).await?,
    };
    Ok(answer.status)
}

/// One probe: when it was sent and answered (since probing started), and what it saw.
#[derive(Debug, Clone, Copy)]
pub struct Probe {
    pub sent: Duration,
    pub answered: Duration,
    pub outcome: Outcome,
}

/// The raw measurement of one kind.
#[derive(Debug)]
pub struct RawProbes {
    /// Status of the revoking request.
    pub status: u16,
    pub ack_ms: f64,
    /// Every probe, in send order.
    pub probes: Vec<Probe>,
    /// The acknowledgement, since probing started.
    pub t1: Duration,
    /// The lifetime left at t1 of the access token the victim's client held then, by the
    /// `expires_in` it came with, counted from its arrival.
    pub lifetime_left_ms: f64,
    /// `iat` and `exp` of that token, when it is a JWT.
    pub token: Option<TokenTimes>,
    /// Whether the victim's client held a refresh token.
    pub refreshable: bool,
    /// Refresh calls the client sent at or after t1, and how many were granted; `None` without
    /// a refresh token.
    pub refreshes_after_revoke: Option<(u64, u64)>,
    /// Tokens the client adopted from `X-Refreshed-Token` over the trial.
    pub adopted_tokens: u64,
    /// The acknowledgement on the wall clock, seconds since the Unix epoch.
    pub ack_unix_s: f64,
    /// From the victim's login answer to sending the revoke.
    pub revoke_after_login: Duration,
}

impl RawProbes {
    /// How long after t1 the design's settings let the victim's token be accepted, in ms (see
    /// [`expected_bound_ms`]), for the token its client held at t1.
    pub fn expected_bound_ms(&self, design: &Design, kind: Kind, instances: u32, supported: bool) -> Option<f64> {
        expected_bound_ms(design, kind, instances, supported, self.token, self.refreshable, self.ack_unix_s)
    }
}

/// Logs `victim` in at `addr` on `device`; returns the pair. A 503 (every password-hashing
/// slot busy while trials log in side by side) is retried.
async fn login(addr: SocketAddr, victim: &str, password: &str, device: &str) -> anyhow::Result<Issued> {
    let body = serde_json::json!({"username": victim, "password": password, "device": device});
    let mut attempts = 0;
    loop {
        let answer = client::call(addr, Method::POST, "/login", &[], Some(&body)).await?;
        attempts += 1;
        if answer.status == 503 && attempts < 10 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        anyhow::ensure!(answer.status == 200, "login of {victim} answered {}", answer.status);
        return Issued::from_json(&answer.json()?);
    }
}

/// Measures one kind: log the victim in on A, probe on B with the victim's client (which
/// refreshes on A, the instance that issues), revoke on A `plan.lead + phase` after the login.
pub async fn measure(
    kind: Kind,
    pair: Pair,
    victim: &str,
    plan: &ProbePlan,
    phase: Duration,
    cancel: &Arc<AtomicBool>,
) -> anyhow::Result<RawProbes> {
    let asked = Instant::now();
    let issued = login(pair.a, victim, &plan.password, "probed").await?;
    let logged_in = Instant::now();
    let token = issued.access_token.clone();
    let client = Arc::new(VictimClient::new(pair.a, &issued, asked, logged_in));
    let other_token = if kind == Kind::LogoutAll {
        login(pair.a, victim, &plan.password, "probed").await?.access_token
    } else {
        String::new()
    };

    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    // Send time (ns since start) of the latest accepted probe, for deciding when to stop.
    let last_accepted = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut tasks = Vec::with_capacity(plan.probers);
    for p in 0..plan.probers {
        let mut prober = Prober::new(pair.b, kind == Kind::RoleChange);
        let client = client.clone();
        let stop = stop.clone();
        let last_accepted = last_accepted.clone();
        let interval = plan.interval;
        // Staggered so the probers together cover the interval evenly.
        let offset = interval.mul_f64(p as f64 / plan.probers.max(1) as f64);
        tasks.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            let mut next = tokio::time::Instant::now() + offset;
            while !stop.load(Ordering::Relaxed) {
                tokio::time::sleep_until(next).await;
                next += interval;
                let mut current = client.current();
                if current.should_refresh {
                    client.refresh(current.generation).await;
                    current = client.current();
                }
                let sent = Instant::now();
                let answer = prober.probe(&current.bearer).await;
                if let Some(token) = &answer.refreshed {
                    client.adopt(token, sent);
                }
                if answer.expired {
                    client.refresh(current.generation).await;
                }
                let outcome = answer.outcome;
                if outcome == Outcome::Accepted {
                    let ns = u64::try_from(sent.duration_since(start).as_nanos()).unwrap_or(u64::MAX);
                    last_accepted.fetch_max(ns, Ordering::Relaxed);
                }
                seen.push((sent, Instant::now(), outcome));
            }
            seen
        }));
    }
    // The lead after probing starts at least, and the phase after the login.
    tokio::time::sleep_until((start + plan.lead).max(logged_in + plan.lead + phase).into()).await;
    let t0 = Instant::now();
    let status = revoke(kind, pair.a, victim, &token, &other_token, plan).await;
    let t1 = Instant::now();
    let ack_unix_s =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
    let status = match status {
        Ok(s) => s,
        Err(e) => {
            stop.store(true, Ordering::Relaxed);
            return Err(e);
        }
    };
    // Probe until refusals have lasted `settle` past the last acceptance (and past t1), or the cap.
    let deadline = t1 + plan.cap;
    loop {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let now = Instant::now();
        if now >= deadline || cancel.load(Ordering::Relaxed) {
            break;
        }
        let accepted_at = start + Duration::from_nanos(last_accepted.load(Ordering::Relaxed));
        if now.duration_since(accepted_at.max(t1)) >= plan.settle {
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    let mut probes = Vec::new();
    for task in tasks {
        for (sent, answered, outcome) in task.await? {
            let since = |t: Instant| t.saturating_duration_since(start);
            probes.push(Probe { sent: since(sent), answered: since(answered), outcome });
        }
    }
    probes.sort_by_key(|p| p.sent);
    let log = client.log();
    let held = log.held_at(t1);
    let lifetime_left_ms = held.map_or(0.0, |h| {
        // Negative once it has expired; its answer may also have come just after t1.
        let age_s = t1.saturating_duration_since(h.received).as_secs_f64()
            - h.received.saturating_duration_since(t1).as_secs_f64();
        (h.expires_in as f64 - age_s) * 1e3
    });
    Ok(RawProbes {
        status,
        ack_ms: t1.duration_since(t0).as_secs_f64() * 1e3,
        probes,
        t1: t1.duration_since(start),
        lifetime_left_ms,
        token: held.and_then(|h| h.times),
        refreshable: log.refreshable,
        refreshes_after_revoke: log.refreshes_since(t1),
        adopted_tokens: log.adopted(),
        ack_unix_s,
        revoke_after_login: t0.saturating_duration_since(logged_in),
    })
}

/// Turns raw probes into the record's figures.
pub fn summarize(
    strategy: &str,
    variant: &str,
    kind: Kind,
    instances: u32,
    supported: bool,
    raw: RawProbes,
    cap: Duration,
) -> RevocationRecord {
    let RawProbes {
        status,
        ack_ms,
        probes,
        t1,
        lifetime_left_ms,
        revoke_after_login,
        refreshes_after_revoke,
        adopted_tokens,
        ..
    } = raw;
    let ms = |d: Duration| d.as_secs_f64() * 1e3 - t1.as_secs_f64() * 1e3;
    let after: Vec<&Probe> = probes.iter().filter(|p| p.sent >= t1).collect();
    let accepted = after.iter().filter(|p| p.outcome == Outcome::Accepted).count();
    let still_accepted_at_end = after.last().is_some_and(|p| p.outcome == Outcome::Accepted)
        && after.last().is_some_and(|p| ms(p.sent) >= cap.as_secs_f64() * 1e3 - 500.0);
    // The last accepted probe by send time, before or after t1: the token was accepted at some
    // moment between its send and its answer.
    let last_accepted = probes.iter().filter(|p| p.outcome == Outcome::Accepted).max_by_key(|p| p.sent);
    let (window_ms, window_answer_ms) = if still_accepted_at_end {
        (None, None)
    } else {
        let bound = |t: Option<Duration>| Some(t.map_or(0.0, |t| ms(t).max(0.0)));
        (bound(last_accepted.map(|p| p.sent)), bound(last_accepted.map(|p| p.answered)))
    };
    let mut timeline: Vec<Segment> = Vec::new();
    for p in &probes {
        let name = match p.outcome {
            Outcome::Accepted => "accepted",
            Outcome::Rejected => "rejected",
            Outcome::Error => "error",
        };
        let t = ms(p.sent);
        match timeline.last_mut() {
            Some(seg) if seg.outcome == name => {
                seg.to_ms = t;
                seg.probes += 1;
            }
            _ => timeline.push(Segment { from_ms: t, to_ms: t, outcome: name.to_owned(), probes: 1 }),
        }
    }
    RevocationRecord {
        strategy: strategy.to_owned(),
        variant: variant.to_owned(),
        kind,
        instances,
        supported,
        operation_status: status,
        trial: 0,
        ack_ms,
        window_ms,
        window_answer_ms,
        // What the design's settings imply is the scenario's to say (it knows them).
        expected_bound_ms: None,
        revoke_after_login_ms: Some(revoke_after_login.as_secs_f64() * 1e3),
        accepted_after_ack: accepted as u64,
        accepted_before_revoke: probes
            .iter()
            .filter(|p| {
                p.sent < t1.saturating_sub(Duration::from_secs_f64(ack_ms / 1e3)) && p.outcome == Outcome::Accepted
            })
            .count() as u64,
        rejected_after_ack: after.iter().filter(|p| p.outcome == Outcome::Rejected).count() as u64,
        errors_after_ack: after.iter().filter(|p| p.outcome == Outcome::Error).count() as u64,
        probes: probes.len() as u64,
        cap_ms: cap.as_secs_f64() * 1e3,
        token_lifetime_left_ms: lifetime_left_ms,
        timeline,
        background: None,
        refreshes_after_revoke: refreshes_after_revoke.map(|(made, _)| made),
        refreshed_after_revoke: refreshes_after_revoke.map(|(_, granted)| granted),
        adopted_tokens: Some(adopted_tokens),
    }
}
