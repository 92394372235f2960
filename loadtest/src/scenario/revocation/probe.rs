//! Probing one revocation kind: how long a revoked token keeps working.
//!
//! For one revocation kind, a victim token is probed by several concurrent probers (each on
//! its own keep-alive connection, together at least one probe per millisecond). The revoke is
//! sent at `t0` and acknowledged at `t1`. Every probe's send time and outcome is kept; the
//! window is the send time of the last probe accepted *after* `t1`, minus `t1` (0 when none;
//! unknown, `null`, when the token was still accepted when the cap ran out). Probing stops once
//! probes have been refused for `settle` after the last accepted one, or at the cap.
//!
//! With two instances the revoke goes to instance A and the probes to instance B, the "site A
//! and site B" case: shared Redis state crosses over, in-process state does not.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{AUTHORIZATION, HOST};
use hyper::{Method, Request};

use crate::engine::client;
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
    /// Probing before the revoke, to show the token accepted.
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

/// One persistent connection that sends `GET /me` with a token.
struct Prober {
    http: Http1,
    /// `Bearer <token>`.
    bearer: String,
    role_change: bool,
}

impl Prober {
    fn new(addr: SocketAddr, token: &str, role_change: bool) -> Self {
        Self { http: Http1::new(addr), bearer: format!("Bearer {token}"), role_change }
    }

    async fn probe(&mut self) -> Outcome {
        let Ok(request) = Request::builder()
            .method(Method::GET)
            .uri("/me")
            .header(HOST, self.http.host())
            .header(AUTHORIZATION, &self.bearer)
            .body(Full::new(Bytes::new()))
        else {
            return Outcome::Error;
        };
        match tokio::time::timeout(Duration::from_secs(2), self.http.exchange(request)).await {
            Ok(Ok((head, body))) if head.status() == 200 => {
                // For a role change, an answer that already carries the new role means the
                // change took effect: the old claims are no longer accepted.
                if self.role_change && String::from_utf8_lossy(&body).contains(NEW_ROLE) {
                    Outcome::Rejected
                } else {
                    Outcome::Accepted
                }
            }
            Ok(Ok((head, _))) if head.status() == 401 => Outcome::Rejected,
            Ok(Ok(_)) => Outcome::Error,
            Ok(Err(_)) => Outcome::Error,
            Err(_) => {
                // Timed out: a late answer must not be read as the next probe's.
                self.http.reset();
                Outcome::Error
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

/// The raw measurement of one kind.
#[derive(Debug)]
pub struct RawProbes {
    /// Status of the revoking request.
    pub status: u16,
    pub ack_ms: f64,
    /// Send time (since probing started) and outcome of every probe, in send order.
    pub probes: Vec<(Duration, Outcome)>,
    /// The acknowledgement, since probing started.
    pub t1: Duration,
    pub lifetime_left_ms: f64,
}

/// Measures one kind: log the victim in on A, probe on B, revoke on A.
pub async fn measure(
    kind: Kind,
    pair: Pair,
    victim: &str,
    plan: &ProbePlan,
    cancel: &Arc<AtomicBool>,
) -> anyhow::Result<RawProbes> {
    let login = |addr| {
        let body = serde_json::json!({"username": victim, "password": plan.password, "device": "probed"});
        async move {
            let answer = client::call(addr, Method::POST, "/login", &[], Some(&body)).await?;
            anyhow::ensure!(answer.status == 200, "login of {victim} answered {}", answer.status);
            let json = answer.json()?;
            let token = json.get("access_token").and_then(|t| t.as_str()).unwrap_or_default().to_owned();
            let expires_in = json.get("expires_in").and_then(serde_json::Value::as_u64).unwrap_or(0);
            Ok::<_, anyhow::Error>((token, expires_in))
        }
    };
    let (token, expires_in) = login(pair.a).await?;
    let logged_in = Instant::now();
    let other_token = if kind == Kind::LogoutAll { login(pair.a).await?.0 } else { String::new() };

    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    // Send time (ns since start) of the latest accepted probe, for deciding when to stop.
    let last_accepted = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut tasks = Vec::with_capacity(plan.probers);
    for p in 0..plan.probers {
        let mut prober = Prober::new(pair.b, &token, kind == Kind::RoleChange);
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
                let sent = Instant::now();
                let outcome = prober.probe().await;
                if outcome == Outcome::Accepted {
                    let ns = u64::try_from(sent.duration_since(start).as_nanos()).unwrap_or(u64::MAX);
                    last_accepted.fetch_max(ns, Ordering::Relaxed);
                }
                seen.push((sent, outcome));
            }
            seen
        }));
    }
    tokio::time::sleep(plan.lead).await;
    let t0 = Instant::now();
    let status = revoke(kind, pair.a, victim, &token, &other_token, plan).await;
    let t1 = Instant::now();
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
        for (sent, outcome) in task.await? {
            probes.push((sent, outcome));
        }
    }
    probes.sort_by_key(|(sent, _)| *sent);
    let probes = probes.iter().map(|(s, o)| (s.saturating_duration_since(start), *o)).collect();
    let lifetime_left_ms = (expires_in as f64 - t1.duration_since(logged_in).as_secs_f64()) * 1e3;
    Ok(RawProbes {
        status,
        ack_ms: t1.duration_since(t0).as_secs_f64() * 1e3,
        probes,
        t1: t1.duration_since(start),
        lifetime_left_ms,
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
    let RawProbes { status, ack_ms, probes, t1, lifetime_left_ms } = raw;
    let ms = |d: Duration| d.as_secs_f64() * 1e3 - t1.as_secs_f64() * 1e3;
    let after: Vec<&(Duration, Outcome)> = probes.iter().filter(|(s, _)| *s >= t1).collect();
    let accepted: Vec<f64> = after.iter().filter(|(_, o)| *o == Outcome::Accepted).map(|(s, _)| ms(*s)).collect();
    let still_accepted_at_end = after.last().is_some_and(|(_, o)| *o == Outcome::Accepted)
        && after.last().is_some_and(|(s, _)| ms(*s) >= cap.as_secs_f64() * 1e3 - 500.0);
    let window_ms = if still_accepted_at_end { None } else { Some(accepted.iter().copied().fold(0.0, f64::max)) };
    let mut timeline: Vec<Segment> = Vec::new();
    for (sent, outcome) in &probes {
        let name = match outcome {
            Outcome::Accepted => "accepted",
            Outcome::Rejected => "rejected",
            Outcome::Error => "error",
        };
        let t = ms(*sent);
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
        ack_ms,
        window_ms,
        accepted_after_ack: accepted.len() as u64,
        accepted_before_revoke: probes
            .iter()
            .filter(|(s, o)| *s < t1.saturating_sub(Duration::from_secs_f64(ack_ms / 1e3)) && *o == Outcome::Accepted)
            .count() as u64,
        rejected_after_ack: after.iter().filter(|(_, o)| *o == Outcome::Rejected).count() as u64,
        errors_after_ack: after.iter().filter(|(_, o)| *o == Outcome::Error).count() as u64,
        probes: probes.len() as u64,
        cap_ms: cap.as_secs_f64() * 1e3,
        token_lifetime_left_ms: lifetime_left_ms,
        timeline,
        background: None,
    }
}
