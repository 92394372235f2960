//! Prometheus counters served on `/metrics`: requests by route and status, authentication
//! outcomes by reason, Redis commands and PostgreSQL statements issued, and their errors by kind.
//!
//! Labels are `&'static str` so that counting a request allocates nothing; the route label is
//! the route template, never the raw path, so hostile paths cannot grow the label set.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::token::TokenRejection;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    kind: &'static str,
}

/// The server's counters and the registry that renders them.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    auth_outcomes: Family<OutcomeLabels, Counter>,
    /// Redis commands sent (a pipeline counts each command in it).
    pub redis_commands: Counter,
    redis_errors: Family<ErrorLabels, Counter>,
    /// PostgreSQL statements that ended (answered, failed or timed out; `--store postgres`).
    pub postgres_statements: Counter,
    postgres_errors: Family<ErrorLabels, Counter>,
    /// `pushed`: 1 while the revocation-log follower is connected to Redis.
    pub push_connected: Gauge,
    /// `pushed`: milliseconds since the follower last heard from Redis.
    pub push_staleness_ms: Gauge,
    /// `pushed`: revocation events applied from the log.
    pub push_events: Counter,
    /// `pushed`: times the log was found replaced and replayed from its start.
    pub push_resets: Counter,
    /// `pushed`: times events not yet applied were found trimmed away.
    pub push_gaps: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("authbench");
        let requests = Family::<RequestLabels, Counter>::default();
        let auth_outcomes = Family::<OutcomeLabels, Counter>::default();
        let redis_commands = Counter::default();
        let redis_errors = Family::<ErrorLabels, Counter>::default();
        registry.register("http_requests", "HTTP requests by route template and status", requests.clone());
        registry.register("auth_outcomes", "Token checks by outcome (ok or rejection reason)", auth_outcomes.clone());
        registry.register("redis_commands", "Redis commands issued", redis_commands.clone());
        registry.register("redis_errors", "Redis calls that failed, by kind", redis_errors.clone());
        let postgres_statements = Counter::default();
        let postgres_errors = Family::<ErrorLabels, Counter>::default();
        registry.register("postgres_statements", "PostgreSQL statements issued", postgres_statements.clone());
        registry.register("postgres_errors", "PostgreSQL calls that failed, by kind", postgres_errors.clone());
        let push_connected = Gauge::default();
        let push_staleness_ms = Gauge::default();
        let push_events = Counter::default();
        registry.register(
            "push_connected",
            "pushed: 1 while the revocation-log follower is connected to Redis",
            push_connected.clone(),
        );
        registry.register(
            "push_staleness_ms",
            "pushed: milliseconds since the revocation-log follower last heard from Redis",
            push_staleness_ms.clone(),
        );
        registry.register("push_events", "pushed: revocation events applied from the log", push_events.clone());
        let push_resets = Counter::default();
        let push_gaps = Counter::default();
        registry.register(
            "push_resets",
            "pushed: times the revocation log was found replaced (Redis lost it) and replayed",
            push_resets.clone(),
        );
        registry.register(
            "push_gaps",
            "pushed: times events not yet applied were found trimmed from the revocation log",
            push_gaps.clone(),
        );
        // Pre-create the outcome series so a scrape shows zeros rather than absent series.
        let _ = auth_outcomes.get_or_create(&OutcomeLabels { outcome: "ok" });
        let _ = auth_outcomes.get_or_create(&OutcomeLabels { outcome: "fail_open" });
        for reason in TokenRejection::ALL {
            let _ = auth_outcomes.get_or_create(&OutcomeLabels { outcome: reason.as_str() });
        }
        Self {
            registry,
            requests,
            auth_outcomes,
            redis_commands,
            redis_errors,
            postgres_statements,
            postgres_errors,
            push_connected,
            push_staleness_ms,
            push_events,
            push_resets,
            push_gaps,
        }
    }

    pub fn request(&self, route: &'static str, status: u16) {
        self.requests.get_or_create(&RequestLabels { route, status }).inc();
    }

    pub fn auth_ok(&self) {
        self.auth_outcomes.get_or_create(&OutcomeLabels { outcome: "ok" }).inc();
    }

    pub fn auth_rejected(&self, reason: TokenRejection) {
        self.auth_outcomes.get_or_create(&OutcomeLabels { outcome: reason.as_str() }).inc();
    }

    /// A token accepted without its Redis check because Redis failed (hybrid, fail-open).
    pub fn auth_fail_open(&self) {
        self.auth_outcomes.get_or_create(&OutcomeLabels { outcome: "fail_open" }).inc();
    }

    pub fn redis_error(&self, kind: &'static str) {
        self.redis_errors.get_or_create(&ErrorLabels { kind }).inc();
    }

    pub fn postgres_error(&self, kind: &'static str) {
        self.postgres_errors.get_or_create(&ErrorLabels { kind }).inc();
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Encoding into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
