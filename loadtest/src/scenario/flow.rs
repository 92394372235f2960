//! The `login` scenario as goose user flows: each user logs in, holds its token, calls `/me`,
//! and logs out, over and over. Goose is embedded with `initialize_with_config` (never argv) and
//! schedules the users; every step is timed here, around the goose call, into HdrHistograms at
//! nanosecond resolution, because goose's own figures are whole milliseconds.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use goose::config::GooseConfiguration;
use goose::prelude::*;
use hdrhistogram::Histogram;

use crate::results::new_histogram;

/// What the flows measured.
#[derive(Debug)]
pub struct FlowOutcome {
    /// Login latency as the client saw it.
    pub login: Histogram<u64>,
    pub me: Histogram<u64>,
    pub logout: Histogram<u64>,
    /// Server-side argon2 time per login (from `Server-Timing`), in nanoseconds.
    pub argon2: Histogram<u64>,
    /// Server-side token minting time per login, in nanoseconds.
    pub mint: Histogram<u64>,
    pub logins: u64,
    pub failures: u64,
    /// From the first login sent to the last step answered.
    pub window: Duration,
    pub token_bytes: u64,
}

#[derive(Debug)]
struct Recorder {
    outcome: FlowOutcome,
    first: Option<Instant>,
    last: Option<Instant>,
}

impl Recorder {
    fn step(&mut self, which: Step, started: Instant, ok: bool) {
        let now = Instant::now();
        self.first = Some(self.first.map_or(started, |f| f.min(started)));
        self.last = Some(self.last.map_or(now, |l| l.max(now)));
        if !ok {
            self.outcome.failures += 1;
            return;
        }
        let ns = u64::try_from((now - started).as_nanos()).unwrap_or(u64::MAX).max(1);
        let h = match which {
            Step::Login => {
                self.outcome.logins += 1;
                &mut self.outcome.login
            }
            Step::Me => &mut self.outcome.me,
            Step::Logout => &mut self.outcome.logout,
        };
        h.saturating_record(ns);
    }
}

#[derive(Debug, Clone, Copy)]
enum Step {
    Login,
    Me,
    Logout,
}

/// The token a goose user holds between steps.
#[derive(Debug, Clone)]
struct Held {
    token: String,
}

/// A flow step that sends the held token to `path`, timed and counted as `step`; an answer
/// with one of the `ok` statuses is a success.
fn bearer_step(
    recorder: Arc<Mutex<Recorder>>,
    step: Step,
    method: GooseMethod,
    path: &'static str,
    ok: &'static [u16],
) -> TransactionFunction {
    Arc::new(move |user| {
        let rec = recorder.clone();
        Box::pin(async move {
            let Some(token) = user.get_session_data::<Held>().map(|h| h.token.clone()) else { return Ok(()) };
            let started = Instant::now();
            let builder = user.get_request_builder(&method, path)?.bearer_auth(&token);
            let answer = user.request(GooseRequest::builder().path(path).set_request_builder(builder).build()).await?;
            let success = answer.response.as_ref().is_ok_and(|r| ok.contains(&r.status().as_u16()));
            if let Ok(mut r) = rec.lock() {
                r.step(step, started, success);
            }
            Ok(())
        })
    })
}

/// Parses `argon2;dur=12.3, mint;dur=0.05` (milliseconds) into nanoseconds per metric.
pub fn parse_server_timing(value: &str) -> (Option<u64>, Option<u64>) {
    let mut argon2 = None;
    let mut mint = None;
    for metric in value.split(',') {
        let mut parts = metric.trim().split(';');
        let name = parts.next().unwrap_or_default().trim();
        let dur = parts.find_map(|p| p.trim().strip_prefix("dur=")).and_then(|d| d.parse::<f64>().ok());
        let ns = dur.map(|ms| (ms * 1e6).max(1.0) as u64);
        match name {
            "argon2" => argon2 = ns,
            "mint" => mint = ns,
            _ => {}
        }
    }
    (argon2, mint)
}

/// Runs `users` goose users against `addr` for `duration` (whole seconds, at least one).
/// Users are `user{first_user + i}` with `password`.
pub async fn run_login_flows(
    addr: SocketAddr,
    users: usize,
    first_user: usize,
    password: &str,
    duration: Duration,
) -> anyhow::Result<FlowOutcome> {
    let recorder = Arc::new(Mutex::new(Recorder {
        outcome: FlowOutcome {
            login: new_histogram(),
            me: new_histogram(),
            logout: new_histogram(),
            argon2: new_histogram(),
            mint: new_histogram(),
            logins: 0,
            failures: 0,
            window: Duration::ZERO,
            token_bytes: 0,
        },
        first: None,
        last: None,
    }));

    let rec = recorder.clone();
    let password = password.to_owned();
    let login: TransactionFunction = Arc::new(move |user| {
        let rec = rec.clone();
        let body = serde_json::json!({
            "username": format!("user{}", first_user + user.weighted_users_index),
            "password": password.clone(),
            "device": "goose",
        });
        Box::pin(async move {
            let started = Instant::now();
            let answer = user.post_json("/login", &body).await?;
            let mut held = None;
            let mut timing = (None, None);
            if let Ok(response) = answer.response
                && response.status().as_u16() == 200
            {
                if let Some(v) = response.headers().get("server-timing").and_then(|v| v.to_str().ok()) {
                    timing = parse_server_timing(v);
                }
                if let Ok(json) = response.json::<serde_json::Value>().await {
                    held = json.get("access_token").and_then(|t| t.as_str()).map(|t| Held { token: t.to_owned() });
                }
            }
            if let Ok(mut r) = rec.lock() {
                r.step(Step::Login, started, held.is_some());
                if let Some(h) = &held {
                    r.outcome.token_bytes = h.token.len() as u64;
                }
                if let Some(ns) = timing.0 {
                    r.outcome.argon2.saturating_record(ns);
                }
                if let Some(ns) = timing.1 {
                    r.outcome.mint.saturating_record(ns);
                }
            }
            if let Some(h) = held {
                user.set_session_data(h);
            }
            Ok(())
        })
    });

    let me = bearer_step(recorder.clone(), Step::Me, GooseMethod::Get, "/me", &[200]);
    // 501 is a valid answer to a logout: the strategy cannot log a token out (jwt, baseline).
    let logout = bearer_step(recorder.clone(), Step::Logout, GooseMethod::Post, "/logout", &[204, 501]);

    let mut config = GooseConfiguration::default();
    config.host = Some(format!("http://{addr}"));
    config.users = Some(users);
    config.increase_rate = Some(users.to_string());
    config.run_time = Some(format!("{}s", duration.as_secs().max(1)));
    config.quiet = 1;
    config.no_print_metrics = true;
    config.no_error_summary = true;
    config.no_telnet = true;
    config.timeout = Some("10".to_owned());

    let scenario = scenario!("LoginFlow")
        .register_transaction(Transaction::new(login).set_name("login"))
        .register_transaction(Transaction::new(me).set_name("me"))
        .register_transaction(Transaction::new(logout).set_name("logout"));
    GooseAttack::initialize_with_config(config)
        .map_err(|e| anyhow::anyhow!("goose: {e}"))?
        .register_scenario(scenario)
        .execute()
        .await
        .map_err(|e| anyhow::anyhow!("goose: {e}"))?;

    let mut recorder = recorder.lock().map_err(|_| anyhow::anyhow!("recorder lock poisoned"))?;
    if let (Some(first), Some(last)) = (recorder.first, recorder.last) {
        recorder.outcome.window = last - first;
    }
    let empty = FlowOutcome {
        login: new_histogram(),
        me: new_histogram(),
        logout: new_histogram(),
        argon2: new_histogram(),
        mint: new_histogram(),
        logins: 0,
        failures: 0,
        window: Duration::ZERO,
        token_bytes: 0,
    };
    Ok(std::mem::replace(&mut recorder.outcome, empty))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_timing_is_parsed() {
        assert_eq!(parse_server_timing("argon2;dur=12.5, mint;dur=0.05"), (Some(12_500_000), Some(50_000)));
        assert_eq!(parse_server_timing("garbage"), (None, None));
    }
}
