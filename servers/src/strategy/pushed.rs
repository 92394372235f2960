//! `pushed`: a signed JWT checked against an in-process denylist, so a request costs no Redis
//! command. Revocations are events in a Redis Stream (the durable log every instance reads): a
//! revoked jti until its `exp`, a per-user mark and a global mark ("tokens issued before this
//! time are revoked", drawn from the revocation clock in Redis exactly as hybrid's denylist
//! draws them, [`super::marks`]). The instance that revokes applies the event at once; every
//! instance follows the stream with a blocking `XREAD` on a connection of its own, which wakes
//! as soon as an event is appended and, after a reconnect, resumes from the last id it applied,
//! so nothing published while it was cut off is lost. In memory, marks only rise and are
//! forgotten when Redis forgets them, once every token they end has expired.
//!
//! While Redis is unreachable the instance keeps serving with the state it has and reports how
//! stale it is (`/capabilities` `push`, and the `authbench_push_*` metrics); revoking needs
//! Redis (the event must reach the others) and answers 503 meanwhile, and so does logging in:
//! a token's issue time must come from the clock its marks come from.
//!
//! The log keeps every event for as long as the token it concerns can live (trimmed by age,
//! `MINID`, with the time taken from Redis): an instance started later replays every
//! revocation of a live token, however many events came since. The log has an epoch, a random
//! id kept beside it and created with it; an instance that finds the epoch changed or gone
//! (Redis restarted empty, whatever its clock says of the new ids) or events after its last
//! id trimmed away (a gap) replays the log from its start, keeps what it already knew, and
//! counts it (`/capabilities` `push.resets`, `push.gaps`; metrics `authbench_push_resets`,
//! `authbench_push_gaps`).
//!
//! Every key lives under the hash tag `{abp}`, so the scripts touch one slot.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, RwLock};
use std::time::Duration;

use redis::{Script, ScriptInvocation};

use super::jwt::{padding, principal_of};
use super::marks::{self, EventLog, Mark, MarkKeys};
use super::{AuthStrategy, Capabilities, Issued, Principal, PushReport, RevocationSupport, UserRevocation};
use crate::error::AuthError;
use crate::jwt::{JwtKeys, LEEWAY_SECS, now_secs};
use crate::metrics::Metrics;
use crate::store::{DedicatedConnection, RedisStore};
use crate::token::TokenRejection;

/// The revocation log.
pub(crate) const STREAM: &str = "ab:{abp}:log";
/// The log's epoch: a random id created with the log, gone when Redis loses its data.
pub(crate) const EPOCH: &str = "ab:{abp}:epoch";
/// The revocation clock and marks.
const MARKS: MarkKeys = MarkKeys { clock: "ab:{abp}:clock", user: "ab:{abp}:m:", global: "ab:{abp}:m-all" };
/// How long one XREAD waits before asking again (it returns at once when an event arrives).
const BLOCK: Duration = Duration::from_secs(1);
/// Events read per XREAD.
const BATCH: u64 = 1000;

/// The start of the script that appends a jti to the log (marks go through
/// [`MarkKeys::raise`], which appends the same way). The log and its epoch are the last two
/// KEYS; the retention (ms) and the epoch to create if there is none are the last two ARGV.
/// `append` adds an event and trims, by age on Redis's clock, every event older than the
/// longest a token can live: those concern only expired tokens. The trim is exact (no `~`), so
/// what the log holds is exactly what a new instance must know; each append removes at most
/// the few events that aged out since the last one.
macro_rules! log_prelude {
    () => {
        r"
local log, epoch_key = KEYS[#KEYS - 1], KEYS[#KEYS]
local retention, new_epoch = tonumber(ARGV[#ARGV - 1]), ARGV[#ARGV]
local clock = redis.call('TIME')
local now_ms = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
redis.call('SET', epoch_key, new_epoch .. ':' .. now_ms, 'NX')
local function append(k, v, n)
  return redis.call('XADD', log, 'MINID', tostring(now_ms - retention), '*', 'k', k, 'v', v, 'n', n)
end
"
    };
}

/// Appends a jti's revocation until its `exp`. KEYS: log, epoch; ARGV: jti, exp, retention,
/// epoch.
const APPEND_JTI: &str = concat!(log_prelude!(), "return append('jti', ARGV[1], ARGV[2])\n");
static APPEND_JTI_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(APPEND_JTI));

/// What this instance knows has been revoked.
#[derive(Debug, Default)]
struct Denylist {
    /// Revoked jti → its `exp`.
    jtis: HashMap<String, u64>,
    /// User → mark: tokens of the user issued before it (`iat_us`) are revoked.
    users: HashMap<String, u64>,
    global: u64,
    /// How long a mark stands after its own second ([`marks::life_secs`]).
    mark_life_secs: u64,
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

    fn revoked(&self, jti: &str, sub: &str, issued_us: u64) -> bool {
        marks::ends(Some(self.global), issued_us)
            || marks::ends(self.users.get(sub).copied(), issued_us)
            || self.jtis.contains_key(jti)
    }

    /// Forgets jtis and user marks whose tokens have expired anyway, as Redis forgets them.
    fn prune(&mut self, now: u64) {
        self.jtis.retain(|_, exp| *exp + LEEWAY_SECS + 1 >= now);
        let life = self.mark_life_secs;
        self.users.retain(|_, mark| !marks::outlived(*mark, life, now));
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
    /// The epoch of the log the last id belongs to (`None`: no log in Redis yet).
    epoch: RwLock<Option<String>>,
    /// Times the log was found replaced (its epoch changed or gone) and replayed from its start.
    resets: AtomicU64,
    /// Times events after the last id applied were found trimmed away, and the log replayed.
    gaps: AtomicU64,
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
    /// The epoch this instance creates if it is the first to append to an empty log.
    new_epoch: String,
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
        let mark_life_secs = marks::life_secs(settings.access_ttl);
        let denylist = Arc::new(RwLock::new(Denylist { mark_life_secs, ..Denylist::default() }));
        let sync = Arc::new(SyncState { last_id: RwLock::new("0".to_owned()), ..SyncState::default() });
        let new_epoch = crate::token::new_opaque_id().map_err(|e| AuthError::Internal(e.to_string()))?;
        // The epoch of the log about to be replayed (made now if the log has none yet).
        // Every creation of the epoch is unique (the scripts append Redis's time to it as well):
        // a log recreated by this same instance after Redis lost it must not look unchanged.
        let start_epoch = format!("{new_epoch}:start:{}", now_ms());
        let _: Option<String> = store.cmd(redis::cmd("SET").arg(EPOCH).arg(&start_epoch).arg("NX")).await?;
        let epoch: Option<String> = store.cmd(redis::cmd("GET").arg(EPOCH)).await?;
        if let Ok(mut known) = sync.epoch.write() {
            *known = epoch;
        }
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
            new_epoch,
            denylist,
            sync,
            single_device: settings.single_device,
            ttl: settings.access_ttl,
            pad: padding(settings.claims_padding),
        })
    }

    /// How long the log keeps an event: as long as the token it concerns can be accepted.
    fn retention_ms(&self) -> u64 {
        retention_ms(self.ttl)
    }

    fn local(&self) -> std::sync::RwLockWriteGuard<'_, Denylist> {
        self.denylist.write().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Raises `mark` to a time drawn now, publishes it and applies it here before answering;
    /// returns the new mark.
    async fn raise(&self, mark: Mark<'_>) -> Result<u64, AuthError> {
        let log = EventLog {
            stream: STREAM,
            epoch_key: EPOCH,
            new_epoch: &self.new_epoch,
            retention_ms: self.retention_ms(),
        };
        let cmd = MARKS.raise(mark, marks::life_secs(self.ttl), Some(log));
        let value: u64 = self.store.script(&cmd).await?;
        match mark {
            Mark::User(username) => self.local().apply("user", username, value),
            Mark::Global => self.local().apply("all", "", value),
        }
        Ok(value)
    }

    /// How stale this instance may be, for `/capabilities`.
    pub fn report(&self) -> PushReport {
        let last = self.sync.last_contact_ms.load(Ordering::Relaxed);
        PushReport {
            connected: self.sync.connected.load(Ordering::Relaxed),
            stale_ms: if last == 0 { None } else { Some(now_ms().saturating_sub(last)) },
            events: self.sync.events.load(Ordering::Relaxed),
            last_id: self.sync.last_id(),
            epoch: self.sync.epoch.read().ok().and_then(|e| e.clone()),
            resets: self.sync.resets.load(Ordering::Relaxed),
            gaps: self.sync.gaps.load(Ordering::Relaxed),
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

/// How long the log keeps an event for tokens that live `ttl`: their lifetime, the leeway and
/// a second of rounding.
pub(crate) fn retention_ms(ttl: Duration) -> u64 {
    marks::life_secs(ttl) * 1000
}

/// The event that revokes one token (`logout`): its jti until its `exp`, appended to the log,
/// which keeps it for `retention_ms`; `new_epoch` names the log if this append starts it. Sent
/// by digest.
pub(crate) fn jti_event(jti: &str, exp: u64, retention_ms: u64, new_epoch: &str) -> ScriptInvocation<'static> {
    let mut invocation = APPEND_JTI_SCRIPT.prepare_invoke();
    invocation.key(STREAM).key(EPOCH).arg(jti).arg(exp).arg(retention_ms).arg(new_epoch);
    invocation
}

/// The same event as one `EVAL` command, for the seeding pipelines (which cannot carry an
/// invocation); seeding is not measured, so the script's text on each call costs nothing that
/// counts.
pub(crate) fn jti_event_command(jti: &str, exp: u64, retention_ms: u64, new_epoch: &str) -> redis::Cmd {
    let mut cmd = redis::cmd("EVAL");
    cmd.arg(APPEND_JTI).arg(2).arg(STREAM).arg(EPOCH).arg(jti).arg(exp).arg(retention_ms).arg(new_epoch);
    cmd
}

/// A stream id as `(ms, seq)`, for ordering; `None` for anything else.
fn stream_id(id: &str) -> Option<(u64, u64)> {
    let (ms, seq) = id.split_once('-').unwrap_or((id, "0"));
    Some((ms.parse().ok()?, seq.parse().ok()?))
}

/// `max-deleted-entry-id` of `XINFO STREAM` (Redis 7): the newest event trimmed away.
fn max_deleted(info: &redis::Value) -> Option<String> {
    let text = |v: &redis::Value| <String as redis::FromRedisValue>::from_redis_value_ref(v).ok();
    let wanted = |k: &redis::Value| text(k).is_some_and(|k| k == "max-deleted-entry-id");
    match info {
        redis::Value::Map(pairs) => pairs.iter().find(|(k, _)| wanted(k)).and_then(|(_, v)| text(v)),
        redis::Value::Array(items) => items.chunks(2).find_map(|pair| match pair {
            [k, v] if wanted(k) => text(v),
            _ => None,
        }),
        _ => None,
    }
}

/// Checks that the log the follower reads is still the one its last id belongs to: the epoch
/// unchanged, and no event after the last id trimmed. When not, the next read starts over
/// from the start of the log (what is known stays known). Returns an error when Redis does not
/// answer.
async fn check_log(con: &mut DedicatedConnection, sync: &SyncState, metrics: &Metrics) -> redis::RedisResult<()> {
    let epoch: Option<String> = con.query(redis::cmd("GET").arg(EPOCH)).await?;
    let known = sync.epoch.read().ok().and_then(|e| e.clone());
    if epoch != known {
        // From no log to a first one, the reads already started at its beginning.
        if known.is_some() {
            sync.resets.fetch_add(1, Ordering::Relaxed);
            metrics.push_resets.inc();
            tracing::warn!(was = ?known, now = ?epoch, "push log replaced: replaying it from the start");
            if let Ok(mut id) = sync.last_id.write() {
                *id = "0".to_owned();
            }
        }
        if let Ok(mut e) = sync.epoch.write() {
            *e = epoch;
        }
        return Ok(());
    }
    let last = sync.last_id();
    if last == "0" {
        return Ok(());
    }
    let info: redis::Value = match con.query(redis::cmd("XINFO").arg("STREAM").arg(STREAM)).await {
        Ok(info) => info,
        // No stream: nothing to miss.
        Err(e) if matches!(e.kind(), redis::ErrorKind::Server(_)) => return Ok(()),
        Err(e) => return Err(e),
    };
    if let (Some(deleted), Some(applied)) = (max_deleted(&info).as_deref().and_then(stream_id), stream_id(&last))
        && deleted > applied
    {
        sync.gaps.fetch_add(1, Ordering::Relaxed);
        metrics.push_gaps.inc();
        tracing::warn!(last = %last, "push log: events after the last one applied were trimmed; replaying it");
        if let Ok(mut id) = sync.last_id.write() {
            *id = "0".to_owned();
        }
    }
    Ok(())
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
            if let Err(e) = check_log(&mut con, &sync, &metrics).await {
                report_contact(&sync, &metrics, false);
                tracing::debug!(error = %e, "push log: check failed, reconnecting");
                tokio::time::sleep(Duration::from_millis(50)).await;
                break;
            }
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
        let issued = if self.single_device {
            // Raising the user's mark ends every older token of the user, everywhere; the new
            // token is issued at the mark, which does not end it.
            self.raise(Mark::User(username)).await?
        } else {
            // Drawn after every mark already raised (so not born revoked) and before every
            // mark raised later (so ended by it). Without Redis there is no such time: 503.
            self.store.script(&MARKS.issue(username, marks::life_secs(self.ttl))).await?
        };
        let claims = marks::stamped_claims(username, roles, self.ttl, issued, self.pad.as_ref())?;
        let token = self.keys.sign(&claims)?;
        Ok(Issued { access_token: token, expires_in: claims.exp.saturating_sub(now_secs()), refresh_token: None })
    }

    async fn authenticate(&self, token: &str) -> Result<Principal, AuthError> {
        let claims = self.keys.verify(token)?;
        let issued = marks::issued_us(&claims)?;
        let revoked = {
            let list = self.denylist.read().unwrap_or_else(std::sync::PoisonError::into_inner);
            list.revoked(&claims.jti, &claims.sub, issued)
        };
        if revoked {
            return Err(TokenRejection::Revoked.into());
        }
        Ok(principal_of(claims))
    }

    async fn logout(&self, principal: &Principal) -> Result<(), AuthError> {
        let event = jti_event(&principal.token_id, principal.exp, self.retention_ms(), &self.new_epoch);
        self.store.script::<String>(&event).await?;
        self.local().apply("jti", &principal.token_id, principal.exp);
        Ok(())
    }

    async fn revoke_user(&self, username: &str, _kind: UserRevocation) -> Result<(), AuthError> {
        self.raise(Mark::User(username)).await.map(|_| ())
    }

    async fn roles_changed(&self, username: &str, _roles: &Arc<[String]>) -> Result<(), AuthError> {
        // Roles travel inside the token: the old tokens must go; the next login carries the new roles.
        self.revoke_user(username, UserRevocation::AdminRevoke).await
    }

    async fn revoke_all(&self) -> Result<(), AuthError> {
        self.raise(Mark::Global).await.map(|_| ())
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
    fn marks_only_rise_end_older_tokens_and_are_forgotten_after_them() {
        let mut d = Denylist { mark_life_secs: 63, ..Denylist::default() };
        let second = 1_700_000_000;
        let mark = second * 1_000_000 + 500;
        d.apply("user", "u1", mark);
        d.apply("user", "u1", mark - 10);
        assert!(d.revoked("j", "u1", mark - 1));
        assert!(!d.revoked("j", "u1", mark), "issued at the mark: after the revoke");
        assert!(!d.revoked("j", "u2", mark - 1));
        d.apply("all", "", mark + 100);
        assert!(d.revoked("j", "u2", mark + 99));
        d.apply("jti", "abc", second + 60);
        assert!(d.revoked("abc", "u3", mark + 200));
        // Both stand until the tokens they end have expired (exp 60 s after the mark's second
        // at most, plus the leeway), and go after that, as their keys in Redis do.
        d.prune(second + 63);
        assert!(d.users.contains_key("u1") && d.jtis.contains_key("abc"));
        d.prune(second + 64);
        assert!(!d.users.contains_key("u1") && !d.jtis.contains_key("abc"));
    }
}
