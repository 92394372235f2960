//! `pushed`: a signed JWT checked against an in-process denylist, so a request costs no Redis
//! command. Revocations are events in a Redis Stream (the durable log every instance reads): a
//! revoked jti until its `exp`, a per-user mark and a global mark ("tokens issued before this
//! second are revoked", as hybrid's denylist has them). The instance that revokes applies the
//! event at once; every instance follows the stream with a blocking `XREAD` on a connection of
//! its own, which wakes as soon as an event is appended and, after a reconnect, resumes from
//! the last id it applied, so nothing published while it was cut off is lost.
//!
//! While Redis is unreachable the instance keeps serving with the state it has and reports how
//! stale it is (`/capabilities` `push`, and the `authbench_push_*` metrics); revoking needs
//! Redis (the event must reach the others) and answers 503 meanwhile.
//!
//! Every key lives under the hash tag `{abp}`, so the mark scripts touch one slot.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, RwLock};
use std::time::Duration;

use redis::Script;

use super::jwt::{new_claims, padding, principal_of};
use super::{AuthStrategy, Capabilities, Issued, Principal, PushReport, RevocationSupport, UserRevocation};
use crate::error::AuthError;
use crate::jwt::{JwtKeys, LEEWAY_SECS, now_secs};
use crate::metrics::Metrics;
use crate::store::RedisStore;
use crate::token::TokenRejection;

/// The revocation log.
pub(crate) const STREAM: &str = "ab:{abp}:log";
const USER_MARK: &str = "ab:{abp}:m:";
const GLOBAL_MARK: &str = "ab:{abp}:m-all";
const HIGHEST_USER_MARK: &str = "ab:{abp}:m-top";
/// Events kept in the stream; older ones concern tokens long expired at benchmark rates.
const STREAM_MAX: u64 = 1_000_000;
/// How long one XREAD waits before asking again (it returns at once when an event arrives).
const BLOCK: Duration = Duration::from_secs(1);
/// Events read per XREAD.
const BATCH: u64 = 1000;

/// Raises a user's mark to `max(user, global, now) + 1`, records it, appends the event.
/// KEYS: user mark, global mark, highest user mark, stream; ARGV: now, ttl, user, maxlen.
const RAISE_USER_MARK: &str = r"
local function num(k) return tonumber(redis.call('GET', k) or '0') end
local n = math.max(num(KEYS[1]), num(KEYS[2]), tonumber(ARGV[1])) + 1
redis.call('SET', KEYS[1], n, 'EX', ARGV[2])
if n > num(KEYS[3]) then redis.call('SET', KEYS[3], n, 'EX', ARGV[2]) end
local id = redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[4], '*', 'k', 'user', 'v', ARGV[3], 'n', n)
return {n, id}
";
static RAISE_USER_MARK_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(RAISE_USER_MARK));

/// Raises the global mark above every user mark and the clock, appends the event.
/// KEYS: global mark, highest user mark, stream; ARGV: now, ttl, maxlen.
const RAISE_GLOBAL_MARK: &str = r"
local function num(k) return tonumber(redis.call('GET', k) or '0') end
local n = math.max(num(KEYS[1]), num(KEYS[2]), tonumber(ARGV[1])) + 1
redis.call('SET', KEYS[1], n, 'EX', ARGV[2])
local id = redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[3], '*', 'k', 'all', 'v', '', 'n', n)
return {n, id}
";
static RAISE_GLOBAL_MARK_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(RAISE_GLOBAL_MARK));

/// What this instance knows has been revoked.
#[derive(Debug, Default)]
struct Denylist {
    /// Revoked jti → its `exp`.
    jtis: HashMap<String, u64>,
    /// User → mark: tokens of the user with `iat` below it are revoked.
    users: HashMap<String, u64>,
    global: u64,
}

impl Denylist {
    fn apply(&mut self, kind: &str, value: &str, n: u64) {
        match kind {
            "jti" => {
                self.jtis.insert(value.to_owned(), n);
            }
            "user" => {
                let mark = self.users.entry(value.to_owned()).or_insert(0);
                *mark = (*mark).max(n);
            }
            "all" => self.global = self.global.max(n),
            _ => {}
        }
    }

    fn revoked(&self, jti: &str, sub: &str, iat: u64) -> bool {
        iat < self.global || self.users.get(sub).is_some_and(|m| iat < *m) || self.jtis.contains_key(jti)
    }

    /// Forgets jtis whose tokens have expired anyway.
    fn prune(&mut self, now: u64) {
        self.jtis.retain(|_, exp| *exp + LEEWAY_SECS + 1 >= now);
    }
}

/// How current the instance's view of the log is.
#[derive(Debug, Default)]
struct SyncState {
    connected: AtomicBool,
    /// When the follower last heard from Redis (an XREAD returned), ms since the epoch.
    last_contact_ms: AtomicU64,
    events: AtomicU64,
    last_id: RwLock<String>,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

type Entries = Vec<(String, Vec<(String, HashMap<String, String>)>)>;

/// What `pushed` is built from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PushedSettings {
    /// Lifetime of an access token (and so of a revocation mark).
    pub access_ttl: Duration,
    /// The single-device policy: a login raises the user's mark, ending every older token.
    pub single_device: bool,
    /// Extra claim bytes per token (0: none).
    pub claims_padding: usize,
}

#[derive(Debug)]
pub struct PushedStrategy {
    keys: Arc<JwtKeys>,
    store: RedisStore,
    denylist: Arc<RwLock<Denylist>>,
    sync: Arc<SyncState>,
    single_device: bool,
    ttl: Duration,
    pad: Option<String>,
}

impl PushedStrategy {
    /// Builds the strategy: replays the whole log before serving (so a restarted instance does
    /// not accept what was revoked while it was down), then follows it in the background.
    pub async fn new(
        settings: PushedSettings,
        keys: Arc<JwtKeys>,
        store: RedisStore,
        metrics: Arc<Metrics>,
    ) -> Result<Self, AuthError> {
        let denylist = Arc::new(RwLock::new(Denylist::default()));
        let sync = Arc::new(SyncState { last_id: RwLock::new("0".to_owned()), ..SyncState::default() });
        loop {
            let entries: Option<Entries> = store.cmd(&read_after(&sync, None)).await?;
            if apply_entries(&denylist, &sync, &metrics, entries) == 0 {
                break;
            }
        }
        sync.connected.store(true, Ordering::Relaxed);
        sync.last_contact_ms.store(now_ms(), Ordering::Relaxed);
        tokio::spawn(follow(store.clone(), denylist.clone(), sync.clone(), metrics));
        Ok(Self {
            keys,
            store,
            denylist,
            sync,
            single_device: settings.single_device,
            ttl: settings.access_ttl,
            pad: padding(settings.claims_padding),
        })
    }

    fn mark_ttl_secs(&self) -> u64 {
        self.ttl.as_secs() + LEEWAY_SECS + 1
    }

    fn local(&self) -> std::sync::RwLockWriteGuard<'_, Denylist> {
        self.denylist.write().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    async fn raise_user_mark(&self, username: &str) -> Result<u64, AuthError> {
        let mut script = RAISE_USER_MARK_SCRIPT.prepare_invoke();
        script
            .key(format!("{USER_MARK}{username}"))
            .key(GLOBAL_MARK)
            .key(HIGHEST_USER_MARK)
            .key(STREAM)
            .arg(now_secs())
            .arg(self.mark_ttl_secs())
            .arg(username)
            .arg(STREAM_MAX);
        let (mark, _id): (u64, String) = self.store.script(&script).await?;
        self.local().apply("user", username, mark);
        Ok(mark)
    }

    /// How stale this instance may be, for `/capabilities`.
    pub fn report(&self) -> PushReport {
        let last = self.sync.last_contact_ms.load(Ordering::Relaxed);
        PushReport {
            connected: self.sync.connected.load(Ordering::Relaxed),
            stale_ms: if last == 0 { None } else { Some(now_ms().saturating_sub(last)) },
            events: self.sync.events.load(Ordering::Relaxed),
            last_id: self.sync.last_id(),
        }
    }
}

impl SyncState {
    /// Stream id of the last event applied ("0" before any).
    fn last_id(&self) -> String {
        self.last_id.read().map(|s| s.clone()).unwrap_or_else(|_| "0".to_owned())
    }
}

/// `XREAD` of the events after the last one applied, waiting up to `block` for one.
fn read_after(sync: &SyncState, block: Option<Duration>) -> redis::Cmd {
    let mut cmd = redis::cmd("XREAD");
    cmd.arg("COUNT").arg(BATCH);
    if let Some(block) = block {
        cmd.arg("BLOCK").arg(block.as_millis() as u64);
    }
    cmd.arg("STREAMS").arg(STREAM).arg(sync.last_id());
    cmd
}

/// The event that revokes one token (`logout`): its jti until its `exp`, appended to the log.
pub(crate) fn jti_event(jti: &str, exp: u64) -> redis::Cmd {
    redis::cmd("XADD")
        .arg(STREAM)
        .arg("MAXLEN")
        .arg("~")
        .arg(STREAM_MAX)
        .arg("*")
        .arg("k")
        .arg("jti")
        .arg("v")
        .arg(jti)
        .arg("n")
        .arg(exp)
        .to_owned()
}

/// Applies one XREAD reply; returns how many events it held.
fn apply_entries(denylist: &RwLock<Denylist>, sync: &SyncState, metrics: &Metrics, entries: Option<Entries>) -> usize {
    let events: Vec<(String, HashMap<String, String>)> =
        entries.unwrap_or_default().into_iter().flat_map(|(_, e)| e).collect();
    let Some(last) = events.last().map(|(id, _)| id.clone()) else { return 0 };
    {
        let mut list = denylist.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        for (_, fields) in &events {
            let n = fields.get("n").and_then(|n| n.parse().ok()).unwrap_or(0);
            list.apply(fields.get("k").map_or("", String::as_str), fields.get("v").map_or("", String::as_str), n);
        }
        list.prune(now_secs());
    }
    sync.events.fetch_add(events.len() as u64, Ordering::Relaxed);
    metrics.push_events.inc_by(events.len() as u64);
    if let Ok(mut id) = sync.last_id.write() {
        *id = last;
    }
    events.len()
}

/// Records whether the follower is connected, and how long ago it last heard from Redis.
fn report_contact(sync: &SyncState, metrics: &Metrics, connected: bool) {
    sync.connected.store(connected, Ordering::Relaxed);
    if connected {
        sync.last_contact_ms.store(now_ms(), Ordering::Relaxed);
    }
    let stale = now_ms().saturating_sub(sync.last_contact_ms.load(Ordering::Relaxed));
    metrics.push_connected.set(i64::from(connected));
    metrics.push_staleness_ms.set(i64::try_from(stale).unwrap_or(i64::MAX));
}

/// Follows the log for as long as the process runs: read from the last id applied (an XREAD
/// that blocks until an event arrives), apply, repeat; on any error, reconnect and resume.
async fn follow(store: RedisStore, denylist: Arc<RwLock<Denylist>>, sync: Arc<SyncState>, metrics: Arc<Metrics>) {
    loop {
        // The reply to a blocking read may take BLOCK; a hung Redis is noticed shortly after.
        let mut con = match store.dedicated(BLOCK + Duration::from_millis(500)).await {
            Ok(con) => con,
            Err(e) => {
                report_contact(&sync, &metrics, false);
                tracing::debug!(error = %e, "push log: cannot connect");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        loop {
            match con.query::<Option<Entries>>(&read_after(&sync, Some(BLOCK))).await {
                Ok(entries) => {
                    report_contact(&sync, &metrics, true);
                    apply_entries(&denylist, &sync, &metrics, entries);
                }
                Err(e) => {
                    report_contact(&sync, &metrics, false);
                    tracing::debug!(error = %e, "push log: read failed, reconnecting");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    break;
                }
            }
        }
    }
}

impl AuthStrategy for PushedStrategy {
    fn capabilities(&self) -> Capabilities {
        Capabilities::new("pushed", Some(&self.store))
            .revocation(RevocationSupport::all(self.single_device), "propagation")
            // Requests never wait for Redis: the state in memory serves, however stale.
            .fail_mode("open")
            .access_ttl(self.ttl)
            .jwt_alg(&self.keys)
            .push(self.report())
    }

    async fn issue(&self, username: &str, roles: &Arc<[String]>, _device: Option<&str>) -> Result<Issued, AuthError> {
        let iat = if self.single_device {
            // Raising the user's mark ends every older token of the user, everywhere.
            self.raise_user_mark(username).await?
        } else {
            // A new token must not be born revoked: its iat is at least every mark known.
            let known = {
                let list = self.denylist.read().unwrap_or_else(std::sync::PoisonError::into_inner);
                list.users.get(username).copied().unwrap_or(0).max(list.global)
            };
            let marks: Result<(Option<u64>, Option<u64>), _> =
                self.store.cmd(redis::cmd("MGET").arg(format!("{USER_MARK}{username}")).arg(GLOBAL_MARK)).await;
            let (user, global) = marks.unwrap_or((None, None));
            now_secs().max(known).max(user.unwrap_or(0)).max(global.unwrap_or(0))
        };
        let claims = new_claims(username, roles, self.ttl, iat, self.pad.as_ref())?;
        let token = self.keys.sign(&claims)?;
        Ok(Issued { access_token: token, expires_in: claims.exp.saturating_sub(now_secs()), refresh_token: None })
    }

    async fn authenticate(&self, token: &str) -> Result<Principal, AuthError> {
        let claims = self.keys.verify(token)?;
        let revoked = {
            let list = self.denylist.read().unwrap_or_else(std::sync::PoisonError::into_inner);
            list.revoked(&claims.jti, &claims.sub, claims.iat)
        };
        if revoked {
            return Err(TokenRejection::Revoked.into());
        }
        Ok(principal_of(claims))
    }

    async fn logout(&self, principal: &Principal) -> Result<(), AuthError> {
        self.store.cmd::<String>(&jti_event(&principal.token_id, principal.exp)).await?;
        self.local().apply("jti", &principal.token_id, principal.exp);
        Ok(())
    }

    async fn revoke_user(&self, username: &str, _kind: UserRevocation) -> Result<(), AuthError> {
        self.raise_user_mark(username).await.map(|_| ())
    }

    async fn roles_changed(&self, username: &str, _roles: &Arc<[String]>) -> Result<(), AuthError> {
        // Roles travel inside the token: the old tokens must go; the next login carries the new roles.
        self.revoke_user(username, UserRevocation::AdminRevoke).await
    }

    async fn revoke_all(&self) -> Result<(), AuthError> {
        let mut script = RAISE_GLOBAL_MARK_SCRIPT.prepare_invoke();
        script
            .key(GLOBAL_MARK)
            .key(HIGHEST_USER_MARK)
            .key(STREAM)
            .arg(now_secs())
            .arg(self.mark_ttl_secs())
            .arg(STREAM_MAX);
        let (mark, _id): (u64, String) = self.store.script(&script).await?;
        self.local().apply("all", "", mark);
        Ok(())
    }

    async fn health(&self) -> Result<(), AuthError> {
        // Serving does not need Redis; health says whether revocations can be published.
        Ok(self.store.ping().await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_only_rise_and_revoke_older_tokens() {
        let mut d = Denylist::default();
        d.apply("user", "u1", 100);
        d.apply("user", "u1", 90);
        assert!(d.revoked("j", "u1", 99));
        assert!(!d.revoked("j", "u1", 100));
        assert!(!d.revoked("j", "u2", 50));
        d.apply("all", "", 200);
        assert!(d.revoked("j", "u2", 199));
        d.apply("jti", "abc", 500);
        assert!(d.revoked("abc", "u3", 300));
        d.prune(500 + LEEWAY_SECS + 2);
        assert!(!d.jtis.contains_key("abc"));
    }
}
