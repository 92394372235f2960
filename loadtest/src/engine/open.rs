//! The open loop of one generator thread: its own share of the arrival schedule, paced by a
//! timerfd on the thread's event loop (microsecond wake-ups, no hand-off between threads), and
//! connections opened on demand up to a limit.
//!
//! Every intended send inside the window ends in the outcome: answered, failed, timed out (not
//! answered by its intended time plus the deadline), or dropped (no connection could be had
//! because the limit was reached: the generator's shortfall, never the server's). Latency is
//! measured from the intended send time for every request sent; the pacer's own lateness
//! (emit − intended), the wait for a connection (start − emit) and the service time (answer −
//! start) are kept apart.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::rc::Rc;
use std::time::{Duration, Instant};

use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};
use tokio::io::unix::AsyncFd;

use super::connection::{Answer, Inflight, Requests, Watched, exchange, tally};
use super::cpu::ThreadClock;
use super::population::Users;
use super::wire::{Want, Wire};
use super::{Keep, LoadOutcome, LoadSpec, Stop, Window, record};

/// Connections a thread opens at once. A burst of sends (after the thread was descheduled, or
/// the server paused) is mostly served by connections coming free; opening one per waiting
/// send instead would open thousands, which costs the server more than the burst.
const MAX_CONNECTING: usize = 4;

/// The shortest time between two wake-ups of a pacer. Each wake-up costs about 10 µs of CPU in
/// a virtual machine (the timer is reprogrammed through the hypervisor), and at 50 000 sends a
/// second per thread waking for every send spent a seventh of the generator's CPU on that alone;
/// sends due within a quantum leave together, at most this much late (in their pacer lag).
const QUANTUM: Duration = Duration::from_micros(50);

/// How long a connection may stay idle before the generator closes it.
const IDLE_CLOSE: Duration = Duration::from_secs(1);

/// A connection of the pool, idle or lent to one request.
struct Slot {
    wire: Wire,
    inflight: Rc<Inflight>,
    /// The server instance it talks to.
    target: usize,
}

/// What the thread's pacer and its requests share.
struct Pool {
    /// Idle connections per server instance, with when each came free, the most recent last:
    /// sends take the warmest, the coldest are closed once idle for [`IDLE_CLOSE`].
    idle: Vec<VecDeque<(Slot, Instant)>>,
    /// The instance the next send goes to (round robin, so load is split evenly).
    next_target: usize,
    /// Connections this thread holds (idle, busy, or being opened).
    open: usize,
    connecting: usize,
    /// Sends waiting for a connection to come free or to open.
    waiting: VecDeque<Job>,
    peak: usize,
    limit: usize,
    outcome: LoadOutcome,
    /// Requests sent from `t0` on, warm-up included (the generator's cost is per send).
    sent: u64,
    /// Sends dispatched and not yet accounted for (waiting or on a connection).
    in_flight: usize,
    next_template: usize,
    requests: Requests,
}

/// What does not change during the run.
struct Plan {
    spec: LoadSpec,
    window: Window,
    keep: Keep,
    epoch: Instant,
    threads: usize,
    watched: Watched,
    /// Population: this thread's users, whose clients send instead of the templates.
    users: Option<Users>,
}

/// One generator thread's part of an open-loop run.
pub(super) struct Share {
    pub(super) rate: f64,
    /// Connections this thread may hold.
    pub(super) limit: usize,
    pub(super) thread: usize,
    pub(super) threads: usize,
    pub(super) window: Window,
    pub(super) t0: Instant,
}

/// Runs thread `thread` of `threads`' share of the schedule: intended send `k` of this thread
/// is at `t0 + (k · threads + thread) / rate`. Returns the outcome, requests sent since `t0`,
/// and the thread's counters when its pacing ended.
pub(super) async fn run_thread(
    spec: LoadSpec,
    share: Share,
    keep: Keep,
    stop: Stop,
) -> anyhow::Result<(LoadOutcome, u64, Option<ThreadClock>)> {
    let Share { rate, limit, thread, threads, window, t0 } = share;
    let targets = share_targets(&spec);
    // The kernel may fire a sleeping thread's timers up to 50 µs late to batch wake-ups; a pacer
    // wants them on time (pacer lag is added to every latency).
    let _ = nix::sys::prctl::set_timerslack(1);
    let epoch = Instant::now();
    let watched: Watched = Rc::new(RefCell::new(Vec::new()));
    let templates = Rc::new(spec.requests.clone());
    let users = spec.population.as_ref().map(|p| Users::for_thread(p, thread, threads));
    let plan = Rc::new(Plan { spec, window, keep, epoch, threads, watched: watched.clone(), users });
    let pool = Rc::new(RefCell::new(Pool {
        idle: (0..targets).map(|_| VecDeque::new()).collect(),
        next_target: thread % targets,
        open: 0,
        connecting: 0,
        waiting: VecDeque::new(),
        peak: 0,
        limit,
        outcome: LoadOutcome::empty(window.end - window.start),
        sent: 0,
        in_flight: 0,
        next_template: thread % templates.len().max(1),
        requests: Requests::new(templates),
    }));
    // This thread's share of the connections, opened before the clock starts, spread over the
    // instances; one that cannot be opened in time is left out (the run opens more on demand).
    let share = plan.spec.connections.div_ceil(threads).min(limit);
    for i in 0..share {
        if stop.now() {
            break;
        }
        let target = (thread + i) % targets;
        let mut slot = new_slot(&plan, &mut pool.borrow_mut(), target);
        match tokio::time::timeout(plan.spec.timeout, slot.wire.connect()).await {
            Ok(Ok(())) => push_idle(&mut pool.borrow_mut(), slot),
            _ => pool.borrow_mut().open -= 1,
        }
    }
    let dog_stop = Rc::new(Cell::new(false));
    let dog =
        tokio::task::spawn_local(super::connection::watchdog(watched, epoch, plan.spec.timeout, dog_stop.clone()));

    let timer = Timer::new()?;
    let mut k: u64 = 0;
    // Evenly spaced sends; a population's arrivals are a Poisson process instead.
    let intended_at = |k: u64| t0 + Duration::from_secs_f64((k * threads as u64 + thread as u64) as f64 / rate);
    let thread_rate = rate / threads as f64;
    let mut next = plan.users.as_ref().map_or_else(|| intended_at(0), |u| t0 + u.gap(thread_rate));
    let mut tidied = Instant::now();
    let mut woke = Instant::now();
    while next < window.end && !stop.now() {
        let now = Instant::now();
        if now.saturating_duration_since(tidied) > Duration::from_millis(100) {
            close_idle(&plan, &pool, now);
            tidied = now;
        }
        if next > now {
            // Wake at the next send, but not sooner than a quantum after the last wake-up: at high
            // rates, sends due within a quantum leave together (their lag is measured).
            let wake = next.max(woke + QUANTUM);
            timer.sleep(wake.saturating_duration_since(Instant::now())).await?;
            woke = Instant::now();
            continue;
        }
        // Everything due now (a wake-up can be several intervals late under load).
        while next <= now && next < window.end {
            let user = plan.users.as_ref().map_or(0, Users::pick);
            if plan.users.is_some() && window.contains(next) {
                pool.borrow_mut().outcome.offered += 1;
            }
            dispatch(&plan, &pool, Job { intended: next, emitted: now, user });
            k += 1;
            next = match &plan.users {
                Some(users) => next + users.gap(thread_rate),
                None => intended_at(k),
            };
        }
        // Let the requests just started run before the next wake-up.
        tokio::task::yield_now().await;
    }
    let paced = ThreadClock::now();
    let stopped_sending = Instant::now();
    // The answers still owed arrive, or their deadline passes (the watchdog ends them).
    let give_up = Instant::now() + plan.spec.timeout + Duration::from_secs(1);
    while pool.borrow().in_flight > 0 && Instant::now() < give_up && !stop.now() {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    dog_stop.set(true);
    let _ = dog.await;
    let mut pool = pool.borrow_mut();
    // Sends still waiting for a connection (only after the run was stopped): their clients
    // gave up at their deadline.
    while let Some(job) = pool.waiting.pop_front() {
        pool.in_flight -= 1;
        let deadline = job.intended + plan.spec.timeout;
        account(&plan, &mut pool, job, &Answer::Timeout, deadline, None);
    }
    let mut outcome = std::mem::replace(&mut pool.outcome, LoadOutcome::empty(window.end - window.start));
    outcome.peak_connections = pool.peak;
    outcome.ended = Some(stopped_sending);
    outcome.holdings = plan.users.as_ref().map(Users::holdings).unwrap_or_default();
    outcome.connection_limit = pool.limit;
    Ok((outcome, pool.sent, Some(paced)))
}

/// A timerfd on the thread's event loop: tokio's own timer has millisecond resolution, which
/// would add up to a millisecond of pacer lag to every send.
struct Timer(AsyncFd<OwnedTimer>);

/// The timerfd, owned for as long as the event loop watches it.
struct OwnedTimer(TimerFd);

impl AsRawFd for OwnedTimer {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

impl Timer {
    fn new() -> anyhow::Result<Self> {
        let fd = OwnedTimer(TimerFd::new(ClockId::CLOCK_MONOTONIC, TimerFlags::TFD_NONBLOCK)?);
        // `AsyncFd::new` is deprecated for types whose descriptor could change or close while
        // registered; `OwnedTimer` owns its timerfd and always returns the same one.
        #[allow(deprecated)]
        let registered = AsyncFd::with_interest(fd, tokio::io::Interest::READABLE)?;
        Ok(Self(registered))
    }

    /// Sleeps `wait`.
    async fn sleep(&self, wait: Duration) -> anyhow::Result<()> {
        let spec = TimeSpec::from_duration(wait.max(Duration::from_micros(1)));
        self.0.get_ref().0.set(Expiration::OneShot(spec), TimerSetTimeFlags::empty())?;
        loop {
            let mut guard = self.0.readable().await?;
            let mut buf = [0u8; 8];
            match nix::unistd::read(self.0.get_ref().0.as_fd(), &mut buf) {
                Ok(_) => {
                    guard.clear_ready();
                    return Ok(());
                }
                Err(nix::errno::Errno::EAGAIN) => guard.clear_ready(),
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// Server instances a load goes to.
fn share_targets(spec: &LoadSpec) -> usize {
    spec.others.len() + 1
}

/// A new connection to instance `target`, not opened yet.
fn new_slot(plan: &Plan, pool: &mut Pool, target: usize) -> Slot {
    pool.open += 1;
    pool.peak = pool.peak.max(pool.open);
    let inflight = Rc::new(Inflight::default());
    plan.watched.borrow_mut().push(inflight.clone());
    Slot { wire: Wire::new(plan.spec.target(target)), inflight, target }
}

fn push_idle(pool: &mut Pool, slot: Slot) {
    if let Some(idle) = pool.idle.get_mut(slot.target) {
        idle.push_back((slot, Instant::now()));
    }
}

/// A send the pacer emitted.
#[derive(Debug, Clone, Copy)]
struct Job {
    intended: Instant,
    emitted: Instant,
    /// Population: the user whose request this is.
    user: usize,
}

/// Starts the send intended at `intended` (emitted at `emitted`) on an idle connection to the
/// next instance in turn; without one, it waits for the first connection to come free or to
/// open (a new one to that instance is opened for it while under the limit, as a client's pool
/// does); at the limit, it is dropped.
fn dispatch(plan: &Rc<Plan>, pool: &Rc<RefCell<Pool>>, job: Job) {
    let mut p = pool.borrow_mut();
    p.in_flight += 1;
    let targets = p.idle.len().max(1);
    let target = p.next_target % targets;
    p.next_target = (target + 1) % targets;
    if let Some((slot, _)) = p.idle.get_mut(target).and_then(VecDeque::pop_back) {
        drop(p);
        tokio::task::spawn_local(send(plan.clone(), pool.clone(), slot, job));
        return;
    }
    if p.open < p.limit || p.connecting > p.waiting.len() {
        p.waiting.push_back(job);
        if p.connecting < p.waiting.len().min(MAX_CONNECTING) && p.open < p.limit {
            p.connecting += 1;
            let slot = new_slot(plan, &mut p, target);
            drop(p);
            tokio::task::spawn_local(open_connection(plan.clone(), pool.clone(), slot));
        }
        return;
    }
    p.in_flight -= 1;
    if plan.window.contains(job.intended) {
        p.outcome.dropped += 1;
        if let Some(b) = p.outcome.bucket(plan.keep, plan.window, job.intended) {
            b.dropped += 1;
        }
    }
}

/// Opens a new connection and hands it to the first waiting send.
async fn open_connection(plan: Rc<Plan>, pool: Rc<RefCell<Pool>>, mut slot: Slot) {
    let opened = tokio::time::timeout(plan.spec.timeout, slot.wire.connect()).await;
    let mut p = pool.borrow_mut();
    p.connecting -= 1;
    if matches!(opened, Ok(Ok(()))) {
        drop(p);
        release(&plan, &pool, slot);
        return;
    }
    // The client the connection was for gets the error.
    p.open -= 1;
    if let Some(job) = p.waiting.pop_front() {
        p.in_flight -= 1;
        let learned = Instant::now();
        let deadline = job.intended + plan.spec.timeout;
        let answer = if learned > deadline { Answer::Timeout } else { Answer::Failed };
        account(&plan, &mut p, job, &answer, learned.min(deadline), None);
    }
    // The sends still waiting need a connection too: with none in use or opening, nothing
    // else would give them one.
    if p.connecting == 0 && !p.waiting.is_empty() && p.open < p.limit {
        p.connecting += 1;
        let slot = new_slot(&plan, &mut p, slot.target);
        drop(p);
        tokio::task::spawn_local(open_connection(plan.clone(), pool.clone(), slot));
    }
}

/// A connection came free: it serves the first waiting send still within its deadline, or
/// goes back to the idle ones.
fn release(plan: &Rc<Plan>, pool: &Rc<RefCell<Pool>>, slot: Slot) {
    let job = next_waiting(plan, &mut pool.borrow_mut());
    match job {
        Some(job) => {
            tokio::task::spawn_local(send(plan.clone(), pool.clone(), slot, job));
        }
        None => push_idle(&mut pool.borrow_mut(), slot),
    }
}

/// The first waiting send whose client has not given up yet; the ones that have are counted as
/// timeouts (they waited for a connection past their deadline).
fn next_waiting(plan: &Plan, p: &mut Pool) -> Option<Job> {
    while let Some(job) = p.waiting.pop_front() {
        let deadline = job.intended + plan.spec.timeout;
        if Instant::now() <= deadline {
            return Some(job);
        }
        p.in_flight -= 1;
        account(plan, p, job, &Answer::Timeout, deadline, None);
    }
    None
}

/// Closes connections idle for longer than [`IDLE_CLOSE`], as a client's pool does: a server
/// caps the connections it holds (4 096 for authbench-server), and idle ones held forever
/// would keep the connections a later burst needs waiting in its accept queue.
fn close_idle(plan: &Plan, pool: &RefCell<Pool>, now: Instant) {
    let mut p = pool.borrow_mut();
    let mut closed = 0;
    for idle in &mut p.idle {
        while idle.front().is_some_and(|(_, since)| now.saturating_duration_since(*since) > IDLE_CLOSE) {
            idle.pop_front();
            closed += 1;
        }
    }
    if closed > 0 {
        p.open -= closed;
        plan.watched.borrow_mut().retain(|f| Rc::strong_count(f) > 1);
    }
}

/// Sends `job` on `slot`, then each waiting send in turn while there are any; the connection
/// goes back to the idle ones when none waits.
async fn send(plan: Rc<Plan>, pool: Rc<RefCell<Pool>>, mut slot: Slot, mut job: Job) {
    loop {
        let deadline = job.intended + plan.spec.timeout;
        let (done, extras, index) = match &plan.users {
            Some(users) => {
                let (done, extras) =
                    users.converse(job.user, &mut slot.wire, &slot.inflight, plan.epoch, deadline).await;
                (Some(done), extras, None)
            }
            None => {
                let (index, request) = {
                    let mut p = pool.borrow_mut();
                    let len = p.requests.len().max(1);
                    let index = p.next_template % len;
                    p.next_template = (p.next_template + plan.threads) % len;
                    let request = p.requests.encoded(index, slot.wire.addr());
                    (index, request)
                };
                let want = Want { timing: plan.keep.server_timing, body: false };
                let done = match request {
                    Some(request) => {
                        Some(exchange(&mut slot.wire, &request, want, &slot.inflight, plan.epoch, deadline).await)
                    }
                    None => None,
                };
                (done, Vec::new(), Some(index))
            }
        };
        let learned = Instant::now();
        let mut p = pool.borrow_mut();
        p.in_flight -= 1;
        p.sent += 1;
        if let Some(done) = done {
            if let (Some(token), Some(index)) = (&done.refreshed, index) {
                p.requests.adopt(index, token.clone());
            }
            if plan.window.contains(job.intended) {
                for extra in extras {
                    p.outcome.extra_calls.entry(extra.kind.name()).or_default().add(extra.took, extra.ok);
                }
            }
            // Answered after the deadline, but before the watchdog noticed: a client with this
            // deadline had already given up.
            let answer = if learned > deadline { Answer::Timeout } else { done.answer };
            let learned = if matches!(answer, Answer::Timeout) { deadline } else { learned };
            account(&plan, &mut p, job, &answer, learned, Some(done.started));
        }
        match next_waiting(&plan, &mut p) {
            Some(next) => job = next,
            None => {
                push_idle(&mut p, slot);
                return;
            }
        }
    }
}

/// Counts how a send inside the window ended, learned at `learned`; `started` is when it left
/// (none when it never did).
fn account(plan: &Plan, p: &mut Pool, job: Job, answer: &Answer, learned: Instant, started: Option<Instant>) {
    if !plan.window.contains(job.intended) {
        return;
    }
    let o = &mut p.outcome;
    record(&mut o.latency, learned.saturating_duration_since(job.intended));
    record(&mut o.pacer_lag, job.emitted.saturating_duration_since(job.intended));
    if started.is_some() {
        o.written += 1;
    }
    let left = started.unwrap_or(learned);
    record(&mut o.connection_wait, left.saturating_duration_since(job.emitted));
    if let (Answer::Status(..), Some(started)) = (answer, started) {
        record(&mut o.service, learned.saturating_duration_since(started));
    }
    if let Some(b) = o.bucket(plan.keep, plan.window, job.intended) {
        match answer {
            Answer::Status(s, _) if (200..300).contains(s) => b.ok += 1,
            Answer::Status(401, _) => b.unauthorized += 1,
            Answer::Status(503, _) => b.unavailable += 1,
            Answer::Status(..) => b.other += 1,
            Answer::Timeout | Answer::Failed => b.timeout += 1,
        }
    }
    tally(o, answer);
}
