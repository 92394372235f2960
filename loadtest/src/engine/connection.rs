//! One keep-alive HTTP/1.1 connection of the load engine: it sends its templates in turn,
//! adopts tokens a server hands back, and runs the closed or the open loop; a watchdog per
//! generator thread aborts requests past their deadline.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use authbench_server::http::REFRESHED_TOKEN;
use http_body_util::BodyExt;
use hyper::header::HeaderValue;

use super::http1::Http1;
use super::{Keep, LoadOutcome, RequestTemplate, Window, record};

/// The request a connection has in flight, watched for its deadline.
///
/// A `tokio::time::timeout` per request registers and cancels a timer every time, which cost
/// the engine several percent of its rate against wrk; instead each generator thread runs one
/// watchdog that looks at every connection's start time ten times a second and wakes the ones
/// past the deadline.
#[derive(Debug)]
pub(super) struct Inflight {
    /// Nanoseconds since `epoch` when the request was sent; 0 when idle.
    started: std::sync::atomic::AtomicU64,
    abort: tokio::sync::Notify,
}

/// The templates one connection sends, in turn.
pub(super) struct Rotation {
    pub(super) templates: Arc<Vec<RequestTemplate>>,
    pub(super) next: usize,
    pub(super) stride: usize,
}

impl Rotation {
    /// The next template and its index.
    fn take(&mut self) -> Option<(usize, &RequestTemplate)> {
        let len = self.templates.len();
        let i = self.next;
        self.next = (self.next + self.stride) % len.max(1);
        self.templates.get(i).map(|t| (i, t))
    }
}

/// One keep-alive connection and the templates it sends.
pub(super) struct Connection {
    http: Http1,
    rotation: Rotation,
    pub(super) inflight: Arc<Inflight>,
    epoch: Instant,
    /// Authorization values this connection adopted from `X-Refreshed-Token`, by template
    /// index, as a client does: empty until a server hands one back.
    adopted: Vec<Option<HeaderValue>>,
}

/// Wakes connections whose request has run past `timeout`, until `stop` is set.
pub(super) async fn watchdog(inflight: Vec<Arc<Inflight>>, epoch: Instant, timeout: Duration, stop: Arc<AtomicBool>) {
    let limit = u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX);
    while !stop.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = u64::try_from(epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
        for f in &inflight {
            let started = f.started.load(Ordering::Relaxed);
            if started != 0 && now.saturating_sub(started) > limit {
                f.abort.notify_waiters();
            }
        }
    }
}

pub(super) enum Answer {
    Status(u16, Option<String>),
    Timeout,
    Failed,
}

impl Connection {
    /// Opens a connection to `addr` for `rotation`'s templates (before the clock starts).
    pub(super) async fn open(addr: SocketAddr, rotation: Rotation, epoch: Instant) -> anyhow::Result<Self> {
        let inflight =
            Arc::new(Inflight { started: std::sync::atomic::AtomicU64::new(0), abort: tokio::sync::Notify::new() });
        let mut http = Http1::new(addr);
        http.connect().await?;
        Ok(Self { http, rotation, inflight, epoch, adopted: Vec::new() })
    }

    /// Sends the request and reads the whole answer.
    async fn exchange(&mut self, keep: Keep) -> Answer {
        // Reconnecting after a close is not part of the request's deadline.
        if self.http.connect().await.is_err() {
            return Answer::Failed;
        }
        let Some((index, template)) = self.rotation.take() else { return Answer::Failed };
        let mut request = template.build(self.http.host());
        if let Some(Some(token)) = self.adopted.get(index) {
            request.headers_mut().insert(hyper::header::AUTHORIZATION, token.clone());
        }
        let http = &mut self.http;
        let work = async {
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
            response.into_body().collect().await.ok()?;
            Some((status, timing, refreshed))
        };
        let started = u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX).max(1);
        self.inflight.started.store(started, Ordering::Relaxed);
        let aborted = self.inflight.abort.notified();
        let result = tokio::select! {
            biased;
            r = work => Some(r),
            () = aborted => None,
        };
        self.inflight.started.store(0, Ordering::Relaxed);
        match result {
            Some(Some((status, timing, refreshed))) => {
                if let Some(token) = refreshed {
                    if self.adopted.len() <= index {
                        self.adopted.resize(self.rotation.templates.len().max(index + 1), None);
                    }
                    if let Some(slot) = self.adopted.get_mut(index) {
                        *slot = Some(token);
                    }
                }
                Answer::Status(status, timing)
            }
            Some(None) => {
                self.http.reset();
                Answer::Failed
            }
            None => {
                // The connection may still deliver the late answer; start a clean one.
                self.http.reset();
                Answer::Timeout
            }
        }
    }

    fn tally(outcome: &mut LoadOutcome, answer: Answer) {
        match answer {
            Answer::Status(status, timing) => {
                outcome.requests += 1;
                *outcome.statuses.entry(status).or_default() += 1;
                if let Some(t) = timing {
                    outcome.server_timings.push(t);
                }
            }
            Answer::Timeout => {
                outcome.errors += 1;
                outcome.timeouts += 1;
            }
            Answer::Failed => outcome.errors += 1,
        }
    }

    pub(super) async fn closed_loop(
        mut self,
        window: Window,
        t0: Instant,
        keep: Keep,
        cancel: Arc<AtomicBool>,
    ) -> LoadOutcome {
        let mut outcome = LoadOutcome::empty(window.end - window.start);
        tokio::time::sleep_until(t0.into()).await;
        loop {
            let started = Instant::now();
            if started >= window.end || cancel.load(Ordering::Relaxed) {
                break;
            }
            let answer = self.exchange(keep).await;
            if window.contains(started) {
                if matches!(answer, Answer::Status(..)) {
                    record(&mut outcome.latency, started.elapsed());
                }
                Self::tally(&mut outcome, answer);
            }
        }
        outcome
    }

    pub(super) async fn open_loop(
        mut self,
        rx: async_channel::Receiver<Instant>,
        window: Window,
        keep: Keep,
        cancel: Arc<AtomicBool>,
    ) -> LoadOutcome {
        let mut outcome = LoadOutcome::empty(window.end - window.start);
        // With a client deadline, sends due inside the window may still go out after it ends,
        // as long as they are within the deadline: the window's last moments count fully.
        let last_send = window.end + keep.max_send_lag.unwrap_or(Duration::ZERO);
        while let Ok(intended) = rx.recv().await {
            let started = Instant::now();
            if started >= last_send || cancel.load(Ordering::Relaxed) {
                // Due inside the window but never sent: a dropped send.
                if window.contains(intended) {
                    outcome.dropped += 1;
                    let gave_up = intended + keep.max_send_lag.unwrap_or(Duration::ZERO);
                    if let Some(b) = outcome.bucket(keep, window, gave_up) {
                        b.timeout += 1;
                    }
                }
                break;
            }
            if keep.max_send_lag.is_some_and(|lag| started.duration_since(intended) > lag) {
                // A real client would have given up on this one already.
                if window.contains(intended) {
                    outcome.dropped += 1;
                    outcome.errors += 1;
                    outcome.timeouts += 1;
                    let gave_up = intended + keep.max_send_lag.unwrap_or(Duration::ZERO);
                    if let Some(b) = outcome.bucket(keep, window, gave_up) {
                        b.timeout += 1;
                    }
                }
                continue;
            }
            let answer = self.exchange(keep).await;
            if window.contains(intended) {
                // Answered, but later than a client with this deadline would have waited: it
                // counts as a timeout when the deadline ran out.
                let deadline = keep.max_send_lag.map(|d| intended + d);
                let too_late = deadline.is_some_and(|d| Instant::now() > d);
                let learned = if too_late { deadline.unwrap_or(intended) } else { Instant::now() };
                if let Some(b) = outcome.bucket(keep, window, learned) {
                    match &answer {
                        _ if too_late => b.timeout += 1,
                        Answer::Status(s, _) if (200..300).contains(s) => b.ok += 1,
                        Answer::Status(401, _) => b.unauthorized += 1,
                        Answer::Status(503, _) => b.unavailable += 1,
                        Answer::Status(..) => b.other += 1,
                        Answer::Timeout | Answer::Failed => b.timeout += 1,
                    }
                }
                if matches!(answer, Answer::Status(..)) {
                    let done = Instant::now();
                    record(&mut outcome.latency, done - intended);
                    record(&mut outcome.service, done - started);
                    record(&mut outcome.send_lag, started.saturating_duration_since(intended));
                }
                Self::tally(&mut outcome, answer);
            }
        }
        outcome
    }
}
