//! Clients like real ones (the population workload): many users, each holding credentials of
//! its own. The arrivals of all users together are one Poisson process, and each arrival
//! belongs to a user drawn uniformly from the thread's users, which is the same as every user
//! sending at `rate / users` with exponential gaps of its own.
//!
//! A user's client behaves as a client library does: it adopts `X-Refreshed-Token`; when its
//! access token has expired by the `expires_in` it was given (on its own clock), or the server
//! answers 401 `expired`, it calls `/refresh` with its refresh token, then sends the request;
//! without a refresh token, when the refresh is refused, or on another 401, it logs in again;
//! on 503 with `Retry-After` it waits and retries when the wait fits the request's deadline.
//! One renewal at a time per user: the user's other requests wait for it and use what it got
//! (two refreshes with one rotated refresh token would look like reuse and end the family).
//! Every extra call is timed and counted; the user request's latency includes them.

use std::cell::Cell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::header::HeaderValue;
use serde::Deserialize;
use tokio::sync::Mutex;

use super::RequestTemplate;
use super::client::Issued;
use super::connection::{Answer, Exchanged, Inflight, exchange};
use super::wire::{Want, Wire};

/// Most calls one user request leads to besides itself, so a server that keeps refusing cannot
/// keep a client busy past a few round trips.
const MAX_EXTRA: usize = 4;

/// What one user's client holds when the run starts.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub username: String,
    pub access_token: String,
    pub refresh_token: Option<String>,
    /// When the access token expires on the client's clock; `None`: it does not.
    pub expires_at: Option<Instant>,
    /// How long a token this client is given lasts (its `expires_in`), for tokens it adopts.
    pub lifetime: Option<Duration>,
}

/// The users of a population run and what their clients send.
#[derive(Debug, Clone)]
pub struct Population {
    pub users: Vec<Credentials>,
    /// The password every user logs in with.
    pub password: String,
    /// The path each user request gets (`/me`).
    pub path: String,
    /// Seed of the arrivals and of the users drawn.
    pub seed: u64,
}

/// A call a client made besides its user's request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExtraKind {
    Refresh,
    Login,
    /// The user's request sent again (after a refusal, or a `Retry-After`).
    Retry,
}

impl ExtraKind {
    pub const ALL: [Self; 3] = [Self::Refresh, Self::Login, Self::Retry];

    pub fn name(self) -> &'static str {
        match self {
            Self::Refresh => "refresh",
            Self::Login => "login",
            Self::Retry => "retry",
        }
    }
}

/// One extra call: what, how long from its write to its answer, and whether it succeeded.
#[derive(Debug, Clone, Copy)]
pub(super) struct Extra {
    pub(super) kind: ExtraKind,
    pub(super) took: Duration,
    pub(super) ok: bool,
}

/// One user's client.
#[derive(Debug)]
struct Client {
    /// Its user's place in the population.
    index: usize,
    username: String,
    bearer: Option<HeaderValue>,
    refresh_token: Option<String>,
    expires_at: Option<Instant>,
    /// How long the tokens it is given last (learned from `expires_in`), for adopted ones.
    lifetime: Option<Duration>,
    /// Set when only a login can help (a refused refresh, a revoked token).
    must_login: bool,
    /// Raised whenever the token changes, so a refusal of an older one renews nothing.
    generation: u64,
    /// The user request as bytes, for the server it was made for.
    encoded: Option<(SocketAddr, Bytes)>,
}

impl Client {
    fn expired(&self, now: Instant) -> bool {
        self.expires_at.is_some_and(|at| now >= at)
    }

    fn take(&mut self, bearer: Option<HeaderValue>, now: Instant) {
        self.bearer = bearer;
        self.expires_at = self.lifetime.map(|l| now + l);
        self.generation += 1;
        self.encoded = None;
    }

    fn request(&mut self, addr: SocketAddr, path: &str) -> Bytes {
        if let Some((a, bytes)) = &self.encoded
            && *a == addr
        {
            return bytes.clone();
        }
        let template = RequestTemplate::get(path, None).unwrap_or_else(|_| RequestTemplate {
            method: hyper::Method::GET,
            uri: hyper::Uri::from_static("/"),
            headers: Vec::new(),
            body: Bytes::new(),
        });
        let bytes = template.encode(addr, self.bearer.as_ref());
        self.encoded = Some((addr, bytes.clone()));
        bytes
    }
}

/// A 401's body: why the token was refused.
#[derive(Debug, Deserialize)]
struct Refusal {
    reason: Option<String>,
}

fn bearer(token: &str) -> Option<HeaderValue> {
    HeaderValue::from_str(&format!("Bearer {token}")).ok()
}

/// One generator thread's users (user `i` of the population belongs to thread `i % threads`)
/// and its source of randomness.
#[derive(Debug)]
pub(super) struct Users {
    clients: Vec<Rc<Mutex<Client>>>,
    rng: Cell<u64>,
    password: String,
    path: String,
}

impl Users {
    pub(super) fn for_thread(population: &Population, thread: usize, threads: usize) -> Self {
        let clients = population
            .users
            .iter()
            .enumerate()
            .filter(|(i, _)| i % threads.max(1) == thread)
            .map(|(index, c)| {
                Rc::new(Mutex::new(Client {
                    index,
                    username: c.username.clone(),
                    bearer: bearer(&c.access_token),
                    refresh_token: c.refresh_token.clone(),
                    expires_at: c.expires_at,
                    lifetime: c.lifetime,
                    must_login: false,
                    generation: 0,
                    encoded: None,
                }))
            })
            .collect();
        let seed = population.seed ^ (thread as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        Self { clients, rng: Cell::new(seed), password: population.password.clone(), path: population.path.clone() }
    }

    /// What each client holds now, by its user's place in the population, so a next run
    /// goes on from here (a refresh token used in this run is no longer valid).
    pub(super) fn holdings(&self) -> Vec<(usize, Credentials)> {
        self.clients
            .iter()
            .filter_map(|c| {
                let c = c.try_lock().ok()?;
                let access = c.bearer.as_ref()?.to_str().ok()?.strip_prefix("Bearer ")?.to_owned();
                Some((
                    c.index,
                    Credentials {
                        username: c.username.clone(),
                        access_token: access,
                        refresh_token: c.refresh_token.clone(),
                        expires_at: c.expires_at,
                        lifetime: c.lifetime,
                    },
                ))
            })
            .collect()
    }

    /// Arrivals need to be independent, not secret.
    fn next(&self) -> u64 {
        let mut state = self.rng.get();
        let n = splitmix64(&mut state);
        self.rng.set(state);
        n
    }

    /// A user of this thread, uniformly.
    pub(super) fn pick(&self) -> usize {
        (self.next() % self.clients.len().max(1) as u64) as usize
    }

    /// The gap to the next arrival of a Poisson process at `rate` per second.
    pub(super) fn gap(&self, rate: f64) -> Duration {
        // Uniform in (0, 1]: 53 random bits, never zero.
        let u = ((self.next() >> 11) + 1) as f64 / (1u64 << 53) as f64;
        Duration::from_secs_f64((-u.ln() / rate.max(1e-9)).min(3600.0))
    }

    /// User `user`'s request, with whatever renewal its client needs first, and retries.
    pub(super) async fn converse(
        &self,
        user: usize,
        wire: &mut Wire,
        inflight: &Inflight,
        epoch: Instant,
        deadline: Instant,
    ) -> (Exchanged, Vec<Extra>) {
        let mut extras = Vec::new();
        let Some(client) = self.clients.get(user).cloned() else {
            return (failed(Answer::Failed), extras);
        };
        let mut first_started = None;
        let mut attempt = 0usize;
        loop {
            let (request, generation) = {
                // Waits for a renewal another request of this user is making.
                let mut c = client.lock().await;
                if (c.must_login || c.expired(Instant::now())) && extras.len() < MAX_EXTRA {
                    self.renew(&mut c, wire, inflight, epoch, deadline, &mut extras).await;
                }
                (c.request(wire.addr(), &self.path), c.generation)
            };
            let mut done =
                exchange(wire, &request, Want { timing: false, body: true }, inflight, epoch, deadline).await;
            let started = *first_started.get_or_insert(done.started);
            if attempt > 0 {
                let ok = matches!(done.answer, Answer::Status(s, _) if (200..300).contains(&s));
                extras.push(Extra { kind: ExtraKind::Retry, took: done.started.elapsed(), ok });
            }
            attempt += 1;
            let retry = {
                let mut c = client.lock().await;
                if let Some(token) = done.refreshed.take()
                    && c.generation == generation
                {
                    c.take(Some(token), Instant::now());
                }
                match &done.answer {
                    Answer::Status(401, _) => {
                        let reason = done.body.as_ref().and_then(|b| serde_json::from_slice::<Refusal>(b).ok());
                        // A refusal of a token the client has since replaced renews nothing.
                        if c.generation == generation {
                            match reason.and_then(|r| r.reason).as_deref() {
                                Some("expired") => c.expires_at = Some(Instant::now()),
                                _ => c.must_login = true,
                            }
                        }
                        true
                    }
                    Answer::Status(503, _) => match done.retry_after {
                        Some(wait) if Instant::now() + Duration::from_secs(wait) < deadline => {
                            drop(c);
                            tokio::time::sleep(Duration::from_secs(wait)).await;
                            true
                        }
                        _ => false,
                    },
                    _ => false,
                }
            };
            if !retry || extras.len() >= MAX_EXTRA || Instant::now() >= deadline {
                done.started = started;
                return (done, extras);
            }
        }
    }

    /// Renews `c`'s credentials: a refresh when it holds a refresh token and nothing says only
    /// a login can help, else (or when the refresh is refused) a login.
    async fn renew(
        &self,
        c: &mut Client,
        wire: &mut Wire,
        inflight: &Inflight,
        epoch: Instant,
        deadline: Instant,
        extras: &mut Vec<Extra>,
    ) {
        if !c.must_login
            && let Some(token) = c.refresh_token.clone()
        {
            let body = serde_json::json!({ "refresh_token": token });
            match self.call(wire, "/refresh", &body, inflight, epoch, deadline, ExtraKind::Refresh, extras).await {
                Some(Ok(issued)) => return self.install(c, issued),
                // Refused: only a login gets the user back in.
                Some(Err(())) => c.must_login = true,
                // Not answered: the request goes with what the client has.
                None => return,
            }
        }
        if extras.len() >= MAX_EXTRA {
            return;
        }
        let body = serde_json::json!({ "username": c.username, "password": self.password });
        if let Some(Ok(issued)) =
            self.call(wire, "/login", &body, inflight, epoch, deadline, ExtraKind::Login, extras).await
        {
            self.install(c, issued);
        }
    }

    fn install(&self, c: &mut Client, issued: Issued) {
        c.lifetime = (issued.expires_in > 0).then(|| Duration::from_secs(issued.expires_in));
        if issued.refresh_token.is_some() {
            c.refresh_token = issued.refresh_token;
        }
        c.must_login = false;
        c.take(bearer(&issued.access_token), Instant::now());
    }

    /// One extra call: `Some(Ok)` with what it issued, `Some(Err)` refused, `None` not answered.
    #[allow(clippy::too_many_arguments)]
    async fn call(
        &self,
        wire: &mut Wire,
        path: &str,
        body: &serde_json::Value,
        inflight: &Inflight,
        epoch: Instant,
        deadline: Instant,
        kind: ExtraKind,
        extras: &mut Vec<Extra>,
    ) -> Option<Result<Issued, ()>> {
        let request = RequestTemplate::post_json(path, body).encode(wire.addr(), None);
        let done = exchange(wire, &request, Want { timing: false, body: true }, inflight, epoch, deadline).await;
        let took = done.started.elapsed();
        let result = match done.answer {
            Answer::Status(200, _) => {
                done.body.as_ref().and_then(|b| serde_json::from_slice::<Issued>(b).ok()).ok_or(()).map(Some)
            }
            Answer::Status(..) => Err(()),
            Answer::Timeout | Answer::Failed => Ok(None),
        };
        let ok = matches!(result, Ok(Some(_)));
        extras.push(Extra { kind, took, ok });
        match result {
            Ok(Some(issued)) => Some(Ok(issued)),
            Err(()) => Some(Err(())),
            Ok(None) => None,
        }
    }
}

/// The next number of a splitmix64 sequence at `state`: small, seedable, reproducible
/// randomness for schedules and orders (not for secrets).
pub fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn failed(answer: Answer) -> Exchanged {
    Exchanged { answer, refreshed: None, started: Instant::now(), retry_after: None, body: None }
}

impl Population {
    /// Takes over what the clients held at the end of a run, so the next run goes on from there.
    pub fn carry_on(&mut self, holdings: Vec<(usize, Credentials)>) {
        for (i, held) in holdings {
            if let Some(slot) = self.users.get_mut(i) {
                *slot = held;
            }
        }
    }
}
