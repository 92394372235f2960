//! One request on one keep-alive HTTP/1.1 connection, under a deadline: the exchange both
//! loops share, the watchdog that enforces deadlines, the requests as bytes (with the tokens a
//! server hands back adopted), and the closed loop's connection, which sends its templates in
//! turn.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use std::net::SocketAddr;

use bytes::Bytes;
use hyper::header::HeaderValue;

use super::wire::{Want, Wire};
use super::{Keep, LoadOutcome, RequestTemplate, Stop, Window, record};

/// The deadline of the request a connection has in flight.
///
/// A `tokio::time::timeout` per request registers and cancels a timer every time, which cost
/// the engine several percent of its rate against wrk; instead each generator thread runs one
/// watchdog that looks at every connection's deadline ten times a second (or ten times per
/// deadline, when that is shorter) and wakes the ones past it. A generator thread runs its
/// connections and its watchdog on one event loop, so this needs no lock and no atomic.
#[derive(Debug, Default)]
pub(super) struct Inflight {
    /// Nanoseconds since the thread's epoch when the request must be answered; 0 when idle.
    deadline: Cell<u64>,
    /// Set by the watchdog when the deadline passed.
    expired: Cell<bool>,
    /// The request's task, to wake when it expires.
    waker: RefCell<Option<Waker>>,
}

impl Inflight {
    /// Ready once the watchdog has found the request past its deadline.
    fn expired(&self) -> impl Future<Output = ()> + '_ {
        std::future::poll_fn(move |cx| {
            if self.expired.get() {
                return Poll::Ready(());
            }
            let mut waker = self.waker.borrow_mut();
            if !waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                *waker = Some(cx.waker().clone());
            }
            Poll::Pending
        })
    }
}

/// Every connection of a generator thread, as its watchdog sees them.
pub(super) type Watched = Rc<RefCell<Vec<Rc<Inflight>>>>;

/// Wakes requests past their deadline until `stop` is set.
pub(super) async fn watchdog(watched: Watched, epoch: Instant, timeout: Duration, stop: Rc<Cell<bool>>) {
    let tick = (timeout / 10).clamp(Duration::from_millis(1), Duration::from_millis(100));
    while !stop.get() {
        tokio::time::sleep(tick).await;
        let now = nanos_since(epoch, Instant::now());
        for f in watched.borrow().iter() {
            let deadline = f.deadline.get();
            if deadline != 0 && now > deadline && !f.expired.get() {
                f.expired.set(true);
                if let Some(waker) = f.waker.borrow_mut().take() {
                    waker.wake();
                }
            }
        }
    }
}

fn nanos_since(epoch: Instant, t: Instant) -> u64 {
    u64::try_from(t.saturating_duration_since(epoch).as_nanos()).unwrap_or(u64::MAX).max(1)
}

/// How one request ended.
pub(super) enum Answer {
    Status(u16, Option<String>),
    Timeout,
    Failed,
}

/// What one exchange learned.
pub(super) struct Exchanged {
    pub(super) answer: Answer,
    /// A token the server handed back in `X-Refreshed-Token`, as an `Authorization` value.
    pub(super) refreshed: Option<HeaderValue>,
    /// When the request was written: after the connection was (re)opened.
    pub(super) started: Instant,
    /// `Retry-After` seconds of a 503.
    pub(super) retry_after: Option<u64>,
    /// The body, when asked for.
    pub(super) body: Option<Bytes>,
}

/// Sends `request` on `wire` (opening it first if needed) and reads the whole answer, unless
/// `deadline` passes first; the connection is reset after a timeout or failure, so a late
/// answer is never read as the next one's.
pub(super) async fn exchange(
    wire: &mut Wire,
    request: &[u8],
    want: Want,
    inflight: &Inflight,
    epoch: Instant,
    deadline: Instant,
) -> Exchanged {
    inflight.expired.set(false);
    inflight.deadline.set(nanos_since(epoch, deadline));
    let aborted = inflight.expired();
    let mut started = None;
    let work = async {
        wire.connect().await?;
        started = Some(Instant::now());
        wire.exchange(request, want).await
    };
    let result = tokio::select! {
        biased;
        r = work => Some(r),
        () = aborted => None,
    };
    inflight.deadline.set(0);
    let started = started.unwrap_or_else(Instant::now);
    let ended = |answer| Exchanged { answer, refreshed: None, started, retry_after: None, body: None };
    match result {
        Some(Ok(reply)) => Exchanged {
            answer: Answer::Status(reply.status, reply.timing),
            refreshed: reply.refreshed,
            started,
            retry_after: reply.retry_after,
            body: reply.body,
        },
        Some(Err(_)) => {
            wire.reset();
            ended(Answer::Failed)
        }
        None => {
            wire.reset();
            ended(Answer::Timeout)
        }
    }
}

/// The templates one closed-loop connection sends, in turn.
pub(super) struct Rotation {
    pub(super) len: usize,
    pub(super) next: usize,
    pub(super) stride: usize,
}

impl Rotation {
    /// The next template's index.
    pub(super) fn take(&mut self) -> usize {
        let i = self.next;
        self.next = (self.next + self.stride) % self.len.max(1);
        i
    }
}

/// The requests a connection (closed loop) or a generator thread (open loop) sends, as bytes
/// made once per template and server, with the tokens adopted from `X-Refreshed-Token` as a
/// client does: each replaces its template's token from then on.
#[derive(Debug)]
pub(super) struct Requests {
    templates: Rc<Vec<RequestTemplate>>,
    adopted: Vec<Option<HeaderValue>>,
    /// Encoded requests by template index, for the server they were made for.
    encoded: Vec<Vec<(SocketAddr, Bytes)>>,
}

impl Requests {
    pub(super) fn new(templates: Rc<Vec<RequestTemplate>>) -> Self {
        let n = templates.len();
        Self { templates, adopted: vec![None; n], encoded: vec![Vec::new(); n] }
    }

    pub(super) fn len(&self) -> usize {
        self.templates.len()
    }

    /// Template `index` as bytes for the server at `addr`.
    pub(super) fn encoded(&mut self, index: usize, addr: SocketAddr) -> Option<Bytes> {
        let cached = self.encoded.get_mut(index)?;
        if let Some((_, bytes)) = cached.iter().find(|(a, _)| *a == addr) {
            return Some(bytes.clone());
        }
        let template = self.templates.get(index)?;
        let bytes = template.encode(addr, self.adopted.get(index).and_then(Option::as_ref));
        cached.push((addr, bytes.clone()));
        Some(bytes)
    }

    pub(super) fn adopt(&mut self, index: usize, token: HeaderValue) {
        if let (Some(slot), Some(cached)) = (self.adopted.get_mut(index), self.encoded.get_mut(index)) {
            *slot = Some(token);
            cached.clear();
        }
    }
}

/// Counts an answer in `outcome` (latency is the caller's business).
pub(super) fn tally(outcome: &mut LoadOutcome, answer: &Answer) {
    match answer {
        Answer::Status(status, timing) => {
            outcome.requests += 1;
            *outcome.statuses.entry(*status).or_default() += 1;
            if let Some(t) = timing {
                outcome.server_timings.push(t.clone());
            }
        }
        Answer::Timeout => {
            outcome.errors += 1;
            outcome.timeouts += 1;
        }
        Answer::Failed => outcome.errors += 1,
    }
}

/// One closed-loop connection: sends again as soon as it has its answer.
pub(super) struct Connection {
    pub(super) wire: Wire,
    pub(super) rotation: Rotation,
    pub(super) inflight: Rc<Inflight>,
    pub(super) epoch: Instant,
    pub(super) requests: Requests,
}

impl Connection {
    /// Runs until the window ends; returns what it measured and how many requests it sent
    /// from `t0` on (warm-up included), for the generator's cost per request.
    pub(super) async fn closed_loop(
        mut self,
        window: Window,
        t0: Instant,
        keep: Keep,
        timeout: Duration,
        stop: &Stop,
    ) -> (LoadOutcome, u64) {
        let mut outcome = LoadOutcome::empty(window.end - window.start);
        let mut sent = 0u64;
        tokio::time::sleep_until(t0.into()).await;
        loop {
            let now = Instant::now();
            if now >= window.end || stop.now() {
                break;
            }
            let index = self.rotation.take();
            let Some(request) = self.requests.encoded(index, self.wire.addr()) else { break };
            let want = Want { timing: keep.server_timing, body: false };
            let done =
                exchange(&mut self.wire, &request, want, &self.inflight, self.epoch, Instant::now() + timeout).await;
            sent += 1;
            if let Some(token) = done.refreshed {
                self.requests.adopt(index, token);
            }
            if window.contains(done.started) {
                if matches!(done.answer, Answer::Status(..)) {
                    record(&mut outcome.latency, done.started.elapsed());
                }
                tally(&mut outcome, &done.answer);
            }
        }
        (outcome, sent)
    }
}
