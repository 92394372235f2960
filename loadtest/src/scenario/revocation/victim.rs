//! The client the probers of one victim share, acting as a real client library for whoever
//! holds the victim's tokens (a thief with the pair its login returned, and no password).
//!
//! It holds the access token, the refresh token when the design issues one, and the access
//! token's `expires_in`, counted on its own clock from when the pair was received. It adopts a
//! token handed back in `X-Refreshed-Token` and uses it from then on. When the access token has
//! expired by that clock, or a probe is refused as `expired`, it calls `POST /refresh`: a 200
//! gives the pair it uses from then on; a refused refresh (401) leaves it no way back in, and it
//! goes on presenting what it has. Refreshes are single-flight: two concurrent refreshes with one
//! refresh token would look like reuse to a rotating server and end the family, so one prober
//! refreshes and the others wait for it and take its result.
//!
//! Every token the client takes on is kept with the send time of the request that brought it,
//! so the scenario can tell which token the victim held when the revoke was acknowledged, and
//! which refreshes came after.

use std::net::SocketAddr;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use hyper::Method;

use super::bound::TokenTimes;
use crate::engine::client::{self, Issued};

/// How long a refresh that got no answer (a transport error, a 503) waits before another is
/// tried: the probers would otherwise retry it every few milliseconds.
const REFRESH_RETRY: Duration = Duration::from_millis(100);

/// How a token came to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Login,
    Refresh,
    /// Handed back in `X-Refreshed-Token`.
    Adopted,
}

/// One token the client took on.
#[derive(Debug, Clone)]
pub struct Obtained {
    /// When the request that brought it was sent.
    pub sent: Instant,
    /// When its answer arrived: the client's clock for its expiry starts here.
    pub received: Instant,
    pub expires_in: u64,
    pub source: Source,
    /// `iat` and `exp`, when it is a JWT.
    pub times: Option<TokenTimes>,
}

/// One `POST /refresh` the client made.
#[derive(Debug, Clone, Copy)]
pub struct RefreshCall {
    pub sent: Instant,
    /// `Some(true)`: granted (200); `Some(false)`: refused (401); `None`: no answer that says
    /// either (a transport error, a 503).
    pub granted: Option<bool>,
}

/// What the client did over a trial, for the record.
#[derive(Debug, Clone)]
pub struct ClientLog {
    /// Whether the login gave a refresh token.
    pub refreshable: bool,
    /// Every token taken on, the login's first.
    pub obtained: Vec<Obtained>,
    pub refreshes: Vec<RefreshCall>,
}

impl ClientLog {
    /// The token the victim held at `t1`: of the tokens brought by requests sent before it,
    /// the one the server would let live longest (the latest `iat`, and so `exp`), since the
    /// holder has every one of them; the last by send time when none is a JWT.
    pub fn held_at(&self, t1: Instant) -> Option<&Obtained> {
        let before = self.obtained.iter().filter(|o| o.sent < t1);
        match before.clone().filter_map(|o| o.times.map(|t| (t.iat, t.exp, o))).max_by_key(|(iat, exp, _)| (*iat, *exp))
        {
            Some((_, _, o)) => Some(o),
            None => before.max_by_key(|o| o.sent),
        }
    }

    /// Tokens adopted from `X-Refreshed-Token` over the trial.
    pub fn adopted(&self) -> u64 {
        self.obtained.iter().filter(|o| o.source == Source::Adopted).count() as u64
    }

    /// Refresh calls sent at or after `t1`, and how many of them were granted; `None` when the
    /// client had no refresh token to call with.
    pub fn refreshes_since(&self, t1: Instant) -> Option<(u64, u64)> {
        self.refreshable.then(|| {
            let after = self.refreshes.iter().filter(|r| r.sent >= t1);
            let granted = after.clone().filter(|r| r.granted == Some(true)).count() as u64;
            (after.count() as u64, granted)
        })
    }
}

/// The token state one victim's probers share.
#[derive(Debug)]
struct Held {
    /// `Bearer <access token>`.
    bearer: String,
    access_token: String,
    refresh_token: Option<String>,
    expires_in: u64,
    /// When the current token arrived: it expires `expires_in` later on this clock.
    received: Instant,
    /// Raised with every new token, so a prober that waited for a refresh can tell it happened.
    generation: u64,
    /// A refresh was refused: there is no way back in.
    shut_out: bool,
    /// No refresh before this, after one that got no answer.
    retry_at: Option<Instant>,
    log: ClientLog,
}

impl Held {
    fn take(&mut self, token: &str, source: Source, sent: Instant, expires_in: u64) {
        let received = Instant::now();
        self.bearer = format!("Bearer {token}");
        token.clone_into(&mut self.access_token);
        self.expires_in = expires_in;
        self.received = received;
        self.generation += 1;
        self.log.obtained.push(Obtained { sent, received, expires_in, source, times: TokenTimes::of(token) });
    }
}

/// What a prober presents next, and whether it should refresh first.
#[derive(Debug, Clone)]
pub struct Current {
    pub bearer: String,
    pub generation: u64,
    /// The access token has expired by the client's clock and a refresh may be tried.
    pub should_refresh: bool,
}

/// The victim's client: its token state behind a short-held std mutex (never held across an
/// await), and a tokio mutex held across a refresh, the single flight.
#[derive(Debug)]
pub struct VictimClient {
    /// Where refreshes go: the issuing instance (a verify-only instance cannot refresh).
    issuer: SocketAddr,
    held: Mutex<Held>,
    refreshing: tokio::sync::Mutex<()>,
}

impl VictimClient {
    /// A client holding the pair `issued`, whose login was sent at `sent` and answered at
    /// `received`.
    pub fn new(issuer: SocketAddr, issued: &Issued, sent: Instant, received: Instant) -> Self {
        let first = Obtained {
            sent,
            received,
            expires_in: issued.expires_in,
            source: Source::Login,
            times: TokenTimes::of(&issued.access_token),
        };
        let held = Held {
            bearer: format!("Bearer {}", issued.access_token),
            access_token: issued.access_token.clone(),
            refresh_token: issued.refresh_token.clone(),
            expires_in: issued.expires_in,
            received,
            generation: 0,
            shut_out: false,
            retry_at: None,
            log: ClientLog {
                refreshable: issued.refresh_token.is_some(),
                obtained: vec![first],
                refreshes: Vec::new(),
            },
        };
        Self { issuer, held: Mutex::new(held), refreshing: tokio::sync::Mutex::new(()) }
    }

    fn lock(&self) -> MutexGuard<'_, Held> {
        // Nothing that can panic runs between the fields of one update, so a state whose
        // holder panicked is still whole.
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The token to present now.
    pub fn current(&self) -> Current {
        let held = self.lock();
        let now = Instant::now();
        let expired = now >= held.received + Duration::from_secs(held.expires_in);
        Current {
            bearer: held.bearer.clone(),
            generation: held.generation,
            should_refresh: expired && can_refresh(&held, now),
        }
    }

    /// Takes on a token handed back in `X-Refreshed-Token` by a probe sent at `sent`.
    pub fn adopt(&self, token: &str, sent: Instant) {
        let mut held = self.lock();
        if held.access_token != token {
            let expires_in = held.expires_in;
            held.take(token, Source::Adopted, sent, expires_in);
        }
    }

    /// Refreshes the pair, unless the token has changed since the caller read `generation`
    /// (another prober refreshed, or a token was adopted: the caller takes that one), the client
    /// is shut out, or a refresh without an answer was tried too recently.
    pub async fn refresh(&self, generation: u64) {
        let _flight = self.refreshing.lock().await;
        let refresh_token = {
            let held = self.lock();
            if held.generation != generation || !can_refresh(&held, Instant::now()) {
                return;
            }
            held.refresh_token.clone()
        };
        let Some(refresh_token) = refresh_token else { return };
        let body = serde_json::json!({ "refresh_token": refresh_token });
        let sent = Instant::now();
        let answer = client::call(self.issuer, Method::POST, "/refresh", &[], Some(&body)).await;
        let mut held = self.lock();
        let granted = match answer {
            Ok(a) if a.status == 200 => match a.json().ok().and_then(|j| Issued::from_json(&j).ok()) {
                Some(pair) => {
                    held.refresh_token = pair.refresh_token.or(held.refresh_token.take());
                    held.take(&pair.access_token, Source::Refresh, sent, pair.expires_in);
                    Some(true)
                }
                None => None,
            },
            Ok(a) if a.status == 401 => {
                held.shut_out = true;
                Some(false)
            }
            _ => None,
        };
        if granted.is_none() {
            held.retry_at = Some(Instant::now() + REFRESH_RETRY);
        }
        held.log.refreshes.push(RefreshCall { sent, granted });
    }

    /// Everything the client did.
    pub fn log(&self) -> ClientLog {
        self.lock().log.clone()
    }
}

fn can_refresh(held: &Held, now: Instant) -> bool {
    held.refresh_token.is_some() && !held.shut_out && held.retry_at.is_none_or(|t| now >= t)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    fn obtained(sent: Instant, source: Source, times: Option<TokenTimes>) -> Obtained {
        Obtained { sent, received: sent, expires_in: 2, source, times }
    }

    #[test]
    fn the_token_held_at_the_ack_is_the_longest_lived_of_those_asked_for_before_it() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let times = |iat: u64| Some(TokenTimes { iat, exp: iat + 2 });
        let log = ClientLog {
            refreshable: false,
            obtained: vec![
                obtained(at(0), Source::Login, times(100)),
                // Sent later but answered first: an older iat.
                obtained(at(30), Source::Adopted, times(101)),
                obtained(at(20), Source::Adopted, times(102)),
                // Asked for after the ack: not what the victim held at it.
                obtained(at(60), Source::Adopted, times(103)),
            ],
            refreshes: Vec::new(),
        };
        assert_eq!(log.held_at(at(50)).unwrap().times, times(102));
        assert_eq!(log.held_at(at(10)).unwrap().source, Source::Login);
        assert_eq!(log.adopted(), 3);
        assert_eq!(log.refreshes_since(at(50)), None, "no refresh token, nothing to count");

        let opaque = ClientLog {
            refreshable: true,
            obtained: vec![obtained(at(0), Source::Login, None), obtained(at(20), Source::Refresh, None)],
            refreshes: vec![
                RefreshCall { sent: at(20), granted: Some(true) },
                RefreshCall { sent: at(70), granted: Some(false) },
                RefreshCall { sent: at(80), granted: None },
            ],
        };
        assert_eq!(opaque.held_at(at(50)).unwrap().source, Source::Refresh);
        assert_eq!(opaque.refreshes_since(at(50)), Some((2, 0)));
        assert_eq!(opaque.refreshes_since(at(0)), Some((3, 1)));
    }

    #[test]
    fn a_pair_is_read_from_a_token_answer() {
        let json = serde_json::json!({"access_token": "a.b.c", "refresh_token": "f.s", "expires_in": 60, "token_type": "Bearer"});
        let pair = Issued::from_json(&json).unwrap();
        assert_eq!(
            (pair.access_token.as_str(), pair.refresh_token.as_deref(), pair.expires_in),
            ("a.b.c", Some("f.s"), 60)
        );
        let bare = Issued::from_json(&serde_json::json!({"access_token": "x", "expires_in": 4})).unwrap();
        assert_eq!(bare.refresh_token, None);
        assert!(Issued::from_json(&serde_json::json!({"expires_in": 4})).is_err());
    }

    /// A `/refresh` endpoint on loopback that answers every call with `reply` after 50 ms and
    /// counts the calls.
    async fn refresh_server(reply: String) -> (SocketAddr, Arc<AtomicUsize>) {
        let reply: Arc<str> = reply.into();
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = calls.clone();
        tokio::spawn(async move {
            loop {
                let (mut stream, _) = listener.accept().await.unwrap();
                counted.fetch_add(1, Ordering::SeqCst);
                let reply = reply.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    let _ = stream.read(&mut buf).await;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    let _ = stream.write_all(reply.as_bytes()).await;
                });
            }
        });
        (addr, calls)
    }

    fn expired_pair() -> Issued {
        Issued { access_token: "old".into(), refresh_token: Some("r1".into()), expires_in: 0 }
    }

    #[tokio::test]
    async fn probers_that_see_the_expiry_together_make_one_refresh_and_share_its_pair() {
        let body = r#"{"access_token":"new","refresh_token":"r2","expires_in":60,"token_type":"Bearer"}"#;
        let reply = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        let (addr, calls) = refresh_server(reply).await;
        let now = Instant::now();
        let client = VictimClient::new(addr, &expired_pair(), now, now);
        let seen = client.current();
        assert!(seen.should_refresh, "expired at once (expires_in 0)");
        tokio::join!(client.refresh(seen.generation), client.refresh(seen.generation), client.refresh(seen.generation));
        assert_eq!(calls.load(Ordering::SeqCst), 1, "one refresh in flight, the others took its pair");
        let after = client.current();
        assert_eq!((after.bearer.as_str(), after.should_refresh), ("Bearer new", false));
        assert_eq!(client.lock().refresh_token.as_deref(), Some("r2"), "the rotated refresh token is used next");
        let log = client.log();
        assert_eq!(log.refreshes.len(), 1);
        assert_eq!(log.refreshes[0].granted, Some(true));
        assert_eq!(log.obtained.last().unwrap().source, Source::Refresh);
    }

    #[tokio::test]
    async fn a_refused_refresh_leaves_no_way_back_in() {
        let refused = "HTTP/1.1 401 Unauthorized\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}";
        let (addr, calls) = refresh_server(refused.to_owned()).await;
        let now = Instant::now();
        let client = VictimClient::new(addr, &expired_pair(), now, now);
        client.refresh(client.current().generation).await;
        let after = client.current();
        assert_eq!(
            (after.bearer.as_str(), after.should_refresh),
            ("Bearer old", false),
            "kept, and never refreshed again"
        );
        client.refresh(after.generation).await;
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(client.log().refreshes_since(now), Some((1, 0)));
    }

    #[tokio::test]
    async fn a_refresh_without_an_answer_is_retried_later_not_at_once() {
        // Nothing listens on port 1 of loopback: the refresh fails to connect.
        let now = Instant::now();
        let client = VictimClient::new("127.0.0.1:1".parse().unwrap(), &expired_pair(), now, now);
        client.refresh(client.current().generation).await;
        assert_eq!(client.log().refreshes[0].granted, None);
        assert!(!client.current().should_refresh);
        tokio::time::sleep(REFRESH_RETRY).await;
        assert!(client.current().should_refresh);
    }

    #[test]
    fn an_adopted_token_counts_once_however_many_answers_carry_it() {
        let now = Instant::now();
        let client = VictimClient::new("127.0.0.1:1".parse().unwrap(), &expired_pair(), now, now);
        let before = client.current().generation;
        client.adopt("b", now);
        client.adopt("b", now);
        assert_eq!(client.log().adopted(), 1);
        let after = client.current();
        assert_eq!(after.bearer, "Bearer b");
        assert_ne!(after.generation, before, "a refresh decided on the old token is not made");
    }
}
