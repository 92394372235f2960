//! One request on one keep-alive HTTP/1.1 connection, under a deadline: the exchange both
//! loops share, the watchdog that enforces deadlines, and the closed loop's connection, which
//! sends its templates in turn and adopts tokens a server hands back.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use authbench_server::http::REFRESHED_TOKEN;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::header::HeaderValue;

use super::http1::Http1;
use super::{Keep, LoadOutcome, RequestTemplate, Window, record};

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
}

/// Sends `request` on `http` (opening it first if needed) and reads the whole answer, unless
/// `deadline` passes first; the connection is reset after a timeout or failure, so a late
/// answer is never read as the next one's.
pub(super) async fn exchange(
    http: &mut Http1,
    request: Request<Full<Bytes>>,
    keep: Keep,
    inflight: &Inflight,
    epoch: Instant,
    deadline: Instant,
) -> Exchanged {
    inflight.expired.set(false);
    inflight.deadline.set(nanos_since(epoch, deadline));
    let aborted = inflight.expired();
    let mut started = None;
    let work = async {
        http.connect().await.ok()?;
        started = Some(Instant::now());
        let response = http.send(request).await.ok()?;
        let status = response.status().as_u16();
        let timing = if keep.server_timing {
            response.headers().get("server-timing").and_then(|v| v.to_str().ok()).map(str::to_owned)
        } else {
            None
        };
        let refreshed = response
            .headers()
            .get(REFRESHED_TOKEN)
            .and_then(|v| v.to_str().ok())
            .and_then(|t| HeaderValue::from_str(&format!("Bearer {t}")).ok());
        // Read to the end without gathering: the engine needs the answer's end, not its body.
        let mut body = response.into_body();
        while let Some(frame) = body.frame().await {
            frame.ok()?;
        }
        Some((status, timing, refreshed))
    };
    let result = tokio::select! {
        biased;
        r = work => Some(r),
        () = aborted => None,
    };
    inflight.deadline.set(0);
    let (answer, refreshed) = match result {
        Some(Some((status, timing, refreshed))) => (Answer::Status(status, timing), refreshed),
        Some(None) => {
            http.reset();
            (Answer::Failed, None)
        }
        None => {
            http.reset();
            (Answer::Timeout, None)
        }
    };
    Exchanged { answer, refreshed, started: started.unwrap_or_else(Instant::now) }
}

/// The templates one closed-loop connection sends, in turn.
pub(super) struct Rotation {
    pub(super) templates: Rc<Vec<RequestTemplate>>,
    pub(super) next: usize,
    pub(super) stride: usize,
}

impl Rotation {
    /// The next template's index.
    pub(super) fn take(&mut self) -> usize {
        let i = self.next;
        self.next = (self.next + self.stride) % self.templates.len().max(1);
        i
    }
}

/// Authorization values adopted from `X-Refreshed-Token`, by template index, as a client does:
/// empty until a server hands one back.
#[derive(Debug, Default)]
pub(super) struct Adopted(Vec<Option<HeaderValue>>);

impl Adopted {
    /// Template `index` built for `host`, with the token adopted for it, if any.
    pub(super) fn build(&self, template: &RequestTemplate, index: usize, host: &HeaderValue) -> Request<Full<Bytes>> {
        let mut request = template.build(host);
        if let Some(Some(token)) = self.0.get(index) {
            request.headers_mut().insert(hyper::header::AUTHORIZATION, token.clone());
        }
        request
    }

    pub(super) fn adopt(&mut self, index: usize, token: HeaderValue) {
        if self.0.len() <= index {
            self.0.resize(index + 1, None);
        }
        if let Some(slot) = self.0.get_mut(index) {
            *slot = Some(token);
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
    pub(super) http: Http1,
    pub(super) rotation: Rotation,
    pub(super) inflight: Rc<Inflight>,
    pub(super) epoch: Instant,
    pub(super) adopted: Adopted,
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
        cancel: &std::sync::atomic::AtomicBool,
    ) -> (LoadOutcome, u64) {
        let mut outcome = LoadOutcome::empty(window.end - window.start);
        let mut sent = 0u64;
        tokio::time::sleep_until(t0.into()).await;
        loop {
            let now = Instant::now();
            if now >= window.end || cancel.load(Ordering::Relaxed) {
                break;
            }
            let index = self.rotation.take();
            let Some(template) = self.rotation.templates.get(index) else { break };
            let request = self.adopted.build(template, index, self.http.host());
            let done =
                exchange(&mut self.http, request, keep, &self.inflight, self.epoch, Instant::now() + timeout).await;
            sent += 1;
            if let Some(token) = done.refreshed {
                self.adopted.adopt(index, token);
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
