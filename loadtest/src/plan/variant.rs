//! The strategy variants authbench knows: a strategy plus the server flags that configure it,
//! and what each variant's design implies for the scenarios (does it use Redis, sign JWTs,
//! keep an entry per session). The design facts come from the server crate's
//! [`StrategyName`]; nothing here re-states them as strings.

use authbench_server::StrategyName;

use crate::results::EntryKind;

/// A strategy plus the server flags that configure it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Variant {
    /// e.g. `session-pool`.
    pub name: &'static str,
    pub strategy: StrategyName,
    /// Flags for `authbench-server` (the harness adds `--listen`, `--redis-url`, users).
    pub args: &'static [&'static str],
}

impl Variant {
    /// Whether the revocation scenario measures this variant. Variants that only change the
    /// Redis client or the signature algorithm revoke exactly as their sibling does, so they
    /// are left out to keep the suite short.
    pub fn measures_revocation(&self) -> bool {
        matches!(
            self.name,
            "baseline"
                | "session"
                | "session-pg"
                | "jwt"
                | "hybrid"
                | "hybrid-denylist"
                | "refresh"
                | "versioned"
                | "versioned-g1"
                | "pushed"
        )
    }

    /// Whether the variant keeps its state in Redis.
    pub fn uses_redis(&self) -> bool {
        self.strategy.uses_store() && !self.uses_postgres()
    }

    /// Whether the variant keeps its state in PostgreSQL (`--store postgres`).
    pub fn uses_postgres(&self) -> bool {
        self.flag("--store") == Some("postgres")
    }

    /// Whether the variant keeps state in a store (Redis or PostgreSQL).
    pub fn uses_store(&self) -> bool {
        self.strategy.uses_store()
    }

    /// Whether losing its store can change what a request gets: a store call on the request
    /// path, or state that a restart may lose (pushed keeps serving but its log goes).
    pub fn outage_matters(&self) -> bool {
        self.store_on_request_path() || self.strategy == StrategyName::Pushed
    }

    /// Whether an authenticated request may cost a call to the variant's store, Redis or
    /// PostgreSQL.
    pub fn store_on_request_path(&self) -> bool {
        self.redis_on_request_path() || (self.uses_postgres() && self.strategy == StrategyName::Session)
    }

    /// Whether the strategy signs JWTs, so that instances must share a key file.
    pub fn uses_jwt(&self) -> bool {
        self.strategy.uses_jwt()
    }

    /// Whether an authenticated request may cost a Redis command (refresh's never does; its
    /// Redis is for logins and refreshes; pushed's follows a stream in the background).
    pub fn redis_on_request_path(&self) -> bool {
        self.uses_redis()
            && matches!(self.strategy, StrategyName::Session | StrategyName::Hybrid | StrategyName::Versioned)
    }

    /// The value this variant gives a server flag, if it sets it (`flag("--jti-mode")`).
    pub fn flag(&self, flag: &str) -> Option<&'static str> {
        let i = self.args.iter().position(|a| *a == flag)?;
        self.args.get(i + 1).copied()
    }

    /// The server flags as owned strings, to extend with the harness's own.
    pub fn server_args(&self) -> Vec<String> {
        self.args.iter().map(|s| (*s).to_owned()).collect()
    }

    /// What one entry this variant keeps in its store is, or `None` for a design that keeps
    /// nothing per entry.
    pub fn entry_kind(&self) -> Option<EntryKind> {
        Some(match self.strategy {
            StrategyName::Session => EntryKind::Session,
            StrategyName::Hybrid if self.flag("--jti-mode") == Some("denylist") => EntryKind::RevokedJti,
            StrategyName::Hybrid => EntryKind::LiveJti,
            StrategyName::Refresh => EntryKind::RefreshFamily,
            StrategyName::Versioned => EntryKind::UserVersion,
            StrategyName::Pushed => EntryKind::RevokedJtiEvent,
            StrategyName::Baseline | StrategyName::Jwt => return None,
        })
    }
}

const fn v(name: &'static str, strategy: StrategyName, args: &'static [&'static str]) -> Variant {
    Variant { name, strategy, args }
}

/// Every variant the harness knows, in report order.
pub const VARIANTS: &[Variant] = &[
    v("baseline", StrategyName::Baseline, &["--strategy", "baseline"]),
    v("session", StrategyName::Session, &["--strategy", "session"]),
    v("session-pool", StrategyName::Session, &["--strategy", "session", "--redis-client", "pool"]),
    // Sessions in PostgreSQL: an ordinary (logged) table, and an UNLOGGED one (no WAL, emptied
    // by a crash), so that what durability costs shows.
    v("session-pg", StrategyName::Session, &["--strategy", "session", "--store", "postgres"]),
    v(
        "session-pg-unlogged",
        StrategyName::Session,
        &["--strategy", "session", "--store", "postgres", "--postgres-table", "unlogged"],
    ),
    v("jwt", StrategyName::Jwt, &["--strategy", "jwt", "--jwt-alg", "HS256"]),
    v("jwt-rs256", StrategyName::Jwt, &["--strategy", "jwt", "--jwt-alg", "RS256"]),
    v("jwt-es256", StrategyName::Jwt, &["--strategy", "jwt", "--jwt-alg", "ES256"]),
    v("jwt-eddsa", StrategyName::Jwt, &["--strategy", "jwt", "--jwt-alg", "EdDSA"]),
    v("hybrid", StrategyName::Hybrid, &["--strategy", "hybrid"]),
    v("hybrid-denylist", StrategyName::Hybrid, &["--strategy", "hybrid", "--jti-mode", "denylist"]),
    v("hybrid-pool", StrategyName::Hybrid, &["--strategy", "hybrid", "--redis-client", "pool"]),
    v("hybrid-open", StrategyName::Hybrid, &["--strategy", "hybrid", "--fail-mode", "open"]),
    v("refresh", StrategyName::Refresh, &["--strategy", "refresh"]),
    v("versioned", StrategyName::Versioned, &["--strategy", "versioned"]),
    // A grace of one second: Redis is asked for every token older than that.
    v("versioned-g1", StrategyName::Versioned, &["--strategy", "versioned", "--grace", "1s"]),
    v("pushed", StrategyName::Pushed, &["--strategy", "pushed"]),
];

/// Looks a variant up by name.
pub fn variant(name: &str) -> Option<&'static Variant> {
    VARIANTS.iter().find(|v| v.name == name)
}

/// Chooses variants from a `--strategies` list: a strategy name selects every variant of that
/// strategy in the suite that keeps its state in Redis (or nowhere); a variant name selects that
/// variant, and with it the suite's variants named after it (`session-pg` selects
/// `session-pg-unlogged` too), so the PostgreSQL variants are chosen by name.
pub fn select_variants(suite: &[&'static Variant], wanted: &[String]) -> Result<Vec<&'static Variant>, String> {
    let mut chosen: Vec<&'static Variant> = Vec::new();
    for w in wanted {
        let of_strategy: Vec<&'static Variant> =
            suite.iter().copied().filter(|s| s.strategy.as_str() == w.as_str() && !s.uses_postgres()).collect();
        let matches = if !of_strategy.is_empty() {
            of_strategy
        } else {
            let family: Vec<&'static Variant> = suite
                .iter()
                .copied()
                .filter(|s| s.name.strip_prefix(w.as_str()).is_some_and(|rest| rest.starts_with('-')))
                .collect();
            variant(w).into_iter().chain(family).collect()
        };
        if matches.is_empty() {
            let known: Vec<&str> = VARIANTS.iter().map(|v| v.name).collect();
            return Err(format!("unknown strategy {w:?}; known: {}", known.join(", ")));
        }
        for m in matches {
            if !chosen.contains(&m) {
                chosen.push(m);
            }
        }
    }
    Ok(chosen)
}
