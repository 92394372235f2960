//! The seeded user directory: `user0` .. `user{N-1}`, argon2id password hashes, roles.
//!
//! All seeded users share one password, so they share one PHC hash computed at start: hashing
//! 10^4 users one by one at ~20 ms each would delay start-up by minutes without changing any
//! measurement (a verify costs the same whatever the salt). A changed password gets its own hash.
//!
//! Every hash a request asks for (a login's verify, a password change's verify and new hash)
//! runs in one of a few hashing slots: argon2id holds 19 MiB for the whole of a hash, so
//! unbounded concurrent logins were unbounded memory (128 wrong-password logins took a server
//! to 2.3 GiB). A request that cannot get a slot within the wait is turned away
//! ([`HashingBusy`]) before any work or any change. Each slot is a thread of its own whose
//! argon2 memory is allocated once and reused, so hashing holds one 19 MiB block per slot
//! whatever the traffic.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use tokio::sync::Semaphore;

/// Longest password accepted; argon2 takes any length, but a cap keeps a login's cost bounded.
pub const MAX_PASSWORD_BYTES: usize = 1024;
/// Longest username accepted before any lookup.
pub const MAX_USERNAME_BYTES: usize = 64;
/// Most roles a user can hold, and the longest role name.
pub const MAX_ROLES: usize = 16;
pub const MAX_ROLE_BYTES: usize = 64;

#[derive(Debug, Clone)]
struct UserRecord {
    /// PHC string (argon2id, salt and parameters included).
    password_hash: Arc<str>,
    roles: Arc<[String]>,
}

/// The users a server knows. Fixed membership; passwords and roles can change.
///
/// A std `RwLock` per user rather than a tokio one: it is held only to copy two `Arc`s out,
/// never across an `.await`, so it is cheaper and cannot deadlock a task.
#[derive(Debug)]
pub struct UserDirectory {
    users: HashMap<String, RwLock<UserRecord>>,
    /// Verified against when the username is unknown, so that an unknown user costs the same
    /// argon2 time as a wrong password and the two cannot be told apart.
    decoy_hash: Arc<str>,
    /// Bounds the hashes in flight, and so their memory.
    slots: HashingSlots,
}

/// Every hashing slot stayed taken for longer than the wait: the request did no work and
/// changed nothing, and the client should retry later (503 with `Retry-After`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("every password hashing slot is busy")]
pub struct HashingBusy;

/// Why a new password could not be hashed.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error(transparent)]
    Busy(#[from] HashingBusy),
    #[error("password hashing failed: {0}")]
    Failed(String),
}

/// How much password hashing may run at once, and how long a request waits for its turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashingLimit {
    /// Hashes in flight at once, each on a hashing thread of its own.
    pub concurrency: usize,
    /// How long a request queues for a free hashing thread before it is turned away.
    pub wait: Duration,
}

impl Default for HashingLimit {
    /// One hash per core (more would only wait for a CPU while holding their 19 MiB), and a
    /// second's wait (tens of hashes' time).
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
        Self { concurrency: cores, wait: Duration::from_secs(1) }
    }
}

/// A job for a hashing thread, run in that thread's workspace.
type HashJob = Box<dyn FnOnce(&mut Workspace) + Send>;

/// A fixed set of hashing threads, each with its own [`Workspace`], and one permit per thread.
///
/// Threads of their own rather than the blocking pool (`spawn_blocking`), whose threads come
/// and go: a workspace lives as long as its thread, so the threads must be few and lasting for
/// the memory to be the slots' count of blocks.
#[derive(Debug)]
struct HashingSlots {
    /// One permit per hashing thread; a job is queued only with a permit, so it never waits
    /// for a thread.
    permits: Arc<Semaphore>,
    wait: Duration,
    jobs: std::sync::mpsc::Sender<HashJob>,
}

impl HashingSlots {
    fn new(limit: HashingLimit) -> Result<Self, String> {
        let concurrency = limit.concurrency.max(1);
        let (jobs, queue) = std::sync::mpsc::channel::<HashJob>();
        let queue = Arc::new(std::sync::Mutex::new(queue));
        for i in 0..concurrency {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(format!("argon2-{i}"))
                .spawn(move || {
                    let mut workspace = Workspace::default();
                    loop {
                        // One idle thread waits in `recv` holding the lock; the others wait for it.
                        let job = match queue.lock() {
                            Ok(queue) => queue.recv(),
                            Err(poisoned) => poisoned.into_inner().recv(),
                        };
                        // The directory is gone once its sender is.
                        let Ok(job) = job else { break };
                        // A panicking hash loses its answer (the caller sees a failure), not the thread.
                        let run = std::panic::AssertUnwindSafe(|| job(&mut workspace));
                        let _ = std::panic::catch_unwind(run);
                    }
                })
                .map_err(|e| format!("cannot start a hashing thread: {e}"))?;
        }
        Ok(Self { permits: Arc::new(Semaphore::new(concurrency)), wait: limit.wait, jobs })
    }

    /// Runs `work` on a hashing thread once one is free, or fails after the wait. The permit
    /// moves into the job, so a request that is dropped meanwhile (its client gone) still holds
    /// its slot until the hash really ends: the bound is on work, not on requests.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Workspace) -> T + Send + 'static,
    ) -> Result<T, HashError> {
        let permit = match tokio::time::timeout(self.wait, self.permits.clone().acquire_owned()).await {
            Ok(Ok(permit)) => permit,
            // A timeout, or a closed semaphore (never closed): either way no slot.
            Ok(Err(_)) | Err(_) => return Err(HashingBusy.into()),
        };
        let (answer, answered) = tokio::sync::oneshot::channel();
        let job: HashJob = Box::new(move |workspace| {
            let result = work(workspace);
            drop(permit);
            let _ = answer.send(result);
        });
        self.jobs.send(job).map_err(|_| HashError::Failed("the hashing threads are gone".to_owned()))?;
        answered.await.map_err(|_| HashError::Failed("a hash panicked".to_owned()))
    }
}

/// An argon2id hash of a new password, ready to install.
#[derive(Debug, Clone)]
pub struct NewPasswordHash(Arc<str>);

/// A successful password check: who, with which roles, and how long argon2 took.
#[derive(Debug, Clone)]
pub struct VerifiedUser {
    pub username: String,
    pub roles: Arc<[String]>,
    pub argon2_time: Duration,
}

/// Argon2 working memory of one hashing thread (19 MiB with the default parameters),
/// allocated at its first hash and reused by every later one.
///
/// The argon2 crate's own `hash_password`/`verify_password` allocate the memory afresh for
/// every hash, and glibc's allocator kept most of the freed blocks instead of reusing them
/// (measured: 20 logins one after another left a server 350 MiB larger; 128 concurrent logins
/// hashed two at a time took it to 779 MiB on the blocking pool, 399 MiB on two threads of its
/// own). Allocated once per hashing thread, the memory is one block per thread whatever the traffic.
#[derive(Debug, Default)]
struct Workspace(Vec<Block>);

/// Largest memory a stored hash may ask for: four times the default. Every stored hash is one
/// this server made with the default parameters; this only keeps a bad one from growing a
/// workspace without bound.
const MAX_BLOCKS: usize = 4 * Params::DEFAULT.block_count();

impl Workspace {
    /// Hashes `password` under `salt` with `argon2` into `out`, in this workspace.
    fn hash_into(
        &mut self,
        argon2: &Argon2<'_>,
        params: &Params,
        password: &[u8],
        salt: &[u8],
        out: &mut [u8],
    ) -> Result<(), argon2::Error> {
        let needed = params.block_count();
        if needed > MAX_BLOCKS {
            return Err(argon2::Error::MemoryTooMuch);
        }
        if self.0.len() < needed {
            self.0.resize(needed, Block::default());
        }
        argon2.hash_password_into_with_memory(password, salt, out, &mut self.0)
    }

    /// A PHC string for `password`: argon2id, the crate's default (OWASP-recommended)
    /// parameters, a fresh 16-byte salt. The same string `Argon2::default().hash_password` makes.
    fn hash(&mut self, password: &str) -> Result<Arc<str>, String> {
        let mut salt = [0u8; 16];
        getrandom::fill(&mut salt).map_err(|e| e.to_string())?;
        let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
        let mut salt_buf = [0u8; 64];
        let raw_salt = salt.as_salt().decode_b64(&mut salt_buf).map_err(|e| e.to_string())?;
        let params = Params::DEFAULT;
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
        let output = Output::init_with(Params::DEFAULT_OUTPUT_LEN, |out| {
            Ok(self.hash_into(&argon2, &params, password.as_bytes(), raw_salt, out)?)
        })
        .map_err(|e| e.to_string())?;
        let phc = PasswordHash {
            algorithm: Algorithm::Argon2id.ident(),
            version: Some(Version::V0x13.into()),
            params: ParamsString::try_from(&params).map_err(|e| e.to_string())?,
            salt: Some(salt.as_salt()),
            hash: Some(output),
        };
        Ok(Arc::from(phc.to_string()))
    }

    /// Whether `password` matches the PHC string `hash`, as `Argon2::verify_password` decides
    /// (algorithm, version and parameters from the string; outputs compared in constant time).
    fn verify(&mut self, hash: &str, password: &str) -> bool {
        let Ok(parsed) = PasswordHash::new(hash) else { return false };
        let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else { return false };
        let (Ok(algorithm), Ok(params)) = (Algorithm::try_from(parsed.algorithm), Params::try_from(&parsed)) else {
            return false;
        };
        let version = match parsed.version.map(Version::try_from).transpose() {
            Ok(version) => version.unwrap_or_default(),
            Err(_) => return false,
        };
        let argon2 = Argon2::new(algorithm, version, params.clone());
        let mut salt_buf = [0u8; 64];
        let Ok(salt) = salt.decode_b64(&mut salt_buf) else { return false };
        let computed = Output::init_with(expected.len(), |out| {
            Ok(self.hash_into(&argon2, &params, password.as_bytes(), salt, out)?)
        });
        // `Output`'s equality is constant-time.
        computed.is_ok_and(|computed| computed == expected)
    }
}

/// Hashes a password with argon2id and the crate's default (OWASP-recommended) parameters,
/// in memory of its own (for the seeded users, at start).
pub fn hash_password(password: &str) -> Result<Arc<str>, String> {
    Workspace::default().hash(password)
}

impl UserDirectory {
    /// Seeds `count` users sharing `password`, with roles `["user"]`, hashing requests within
    /// the default [`HashingLimit`].
    pub fn seed(count: u32, password: &str) -> Result<Self, String> {
        Self::seed_with_limit(count, password, HashingLimit::default())
    }

    /// Seeds `count` users sharing `password`, with roles `["user"]`; requests hash within `limit`.
    pub fn seed_with_limit(count: u32, password: &str, limit: HashingLimit) -> Result<Self, String> {
        let shared = hash_password(password)?;
        let decoy_hash = hash_password("decoy password that nobody has")?;
        let roles: Arc<[String]> = Arc::from(vec!["user".to_owned()]);
        let users = (0..count)
            .map(|i| {
                let record = UserRecord { password_hash: shared.clone(), roles: roles.clone() };
                (format!("user{i}"), RwLock::new(record))
            })
            .collect();
        Ok(Self { users, decoy_hash, slots: HashingSlots::new(limit)? })
    }

    /// Whether the user exists.
    pub fn contains(&self, username: &str) -> bool {
        self.users.contains_key(username)
    }

    /// The user's current roles.
    pub fn roles(&self, username: &str) -> Option<Arc<[String]>> {
        self.users.get(username).map(|u| read(u).roles)
    }

    /// Checks a password in a hashing slot (argon2 takes milliseconds of CPU and 19 MiB).
    /// Unknown users and wrong passwords both give `Ok(None)` after the same work; `Err` means
    /// no slot came free in time, whoever the user.
    pub async fn verify(self: &Arc<Self>, username: &str, password: &str) -> Result<Option<VerifiedUser>, HashingBusy> {
        if username.len() > MAX_USERNAME_BYTES || password.len() > MAX_PASSWORD_BYTES {
            return Ok(None);
        }
        let record = self.users.get(username).map(read);
        let hash = record.as_ref().map_or_else(|| self.decoy_hash.clone(), |r| r.password_hash.clone());
        let password = password.to_owned();
        let checked = self
            .slots
            .run(move |workspace| {
                // Timed inside the slot: the wait for one is not argon2's time.
                let started = Instant::now();
                (workspace.verify(&hash, &password), started.elapsed())
            })
            .await;
        let (ok, argon2_time) = match checked {
            Ok(checked) => checked,
            Err(HashError::Busy(busy)) => return Err(busy),
            Err(HashError::Failed(e)) => {
                tracing::error!(error = %e, "password check failed");
                (false, Duration::ZERO)
            }
        };
        match (ok, record) {
            (true, Some(record)) => {
                Ok(Some(VerifiedUser { username: username.to_owned(), roles: record.roles, argon2_time }))
            }
            _ => Ok(None),
        }
    }

    /// Hashes a new password in a hashing slot, for [`UserDirectory::install_password`]: a
    /// password change hashes before it revokes anything, so a change turned away changes nothing.
    pub async fn hash_new_password(&self, password: &str) -> Result<NewPasswordHash, HashError> {
        let password = password.to_owned();
        let hash = self.slots.run(move |workspace| workspace.hash(&password)).await?.map_err(HashError::Failed)?;
        Ok(NewPasswordHash(hash))
    }

    /// Makes `hash` the user's password; false when the user does not exist.
    pub fn install_password(&self, username: &str, hash: NewPasswordHash) -> bool {
        match self.users.get(username) {
            Some(user) => {
                write(user, |r| r.password_hash = hash.0);
                true
            }
            None => false,
        }
    }

    /// Replaces a user's password with a fresh argon2id hash.
    pub async fn set_password(&self, username: &str, password: &str) -> Result<(), HashError> {
        let hash = self.hash_new_password(password).await?;
        if self.install_password(username, hash) { Ok(()) } else { Err(HashError::Failed("unknown user".to_owned())) }
    }

    /// Replaces a user's roles; returns false when the user does not exist.
    pub fn set_roles(&self, username: &str, roles: Vec<String>) -> bool {
        match self.users.get(username) {
            Some(user) => {
                write(user, |r| r.roles = Arc::from(roles));
                true
            }
            None => false,
        }
    }
}

/// Reads a record, recovering from a poisoned lock: a record is two `Arc`s, always consistent.
fn read(lock: &RwLock<UserRecord>) -> UserRecord {
    match lock.read() {
        Ok(guard) => guard.clone(),
        Err(poisoned) => poisoned.into_inner().clone(),
    }
}

fn write(lock: &RwLock<UserRecord>, f: impl FnOnce(&mut UserRecord)) {
    match lock.write() {
        Ok(mut guard) => f(&mut guard),
        Err(poisoned) => f(&mut poisoned.into_inner()),
    }
}

/// Checks a role list from an admin request: 1..=16 names of `[a-z0-9_:.-]`, at most 64 bytes.
pub fn validate_roles(roles: &[String]) -> Result<(), String> {
    if roles.is_empty() || roles.len() > MAX_ROLES {
        return Err(format!("roles must hold 1 to {MAX_ROLES} names"));
    }
    for role in roles {
        let ok_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || "_:.-".contains(c);
        if role.is_empty() || role.len() > MAX_ROLE_BYTES || !role.chars().all(ok_char) {
            return Err(format!("role names are 1 to {MAX_ROLE_BYTES} characters of [a-z0-9_:.-]"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn unknown_user_and_wrong_password_both_fail() {
        let dir = Arc::new(UserDirectory::seed(3, "pw-secret").unwrap());
        assert!(dir.verify("user1", "pw-secret").await.unwrap().is_some());
        assert!(dir.verify("user1", "wrong").await.unwrap().is_none());
        assert!(dir.verify("user9", "pw-secret").await.unwrap().is_none());
        dir.set_password("user1", "new-secret").await.unwrap();
        assert!(dir.verify("user1", "pw-secret").await.unwrap().is_none());
        assert!(dir.verify("user1", "new-secret").await.unwrap().is_some());
        assert!(dir.verify("user2", "pw-secret").await.unwrap().is_some());
    }

    #[test]
    fn hashes_match_the_argon2_crates_own() {
        use argon2::password_hash::{PasswordHasher, PasswordVerifier};
        let mut workspace = Workspace::default();
        let ours = workspace.hash("pw-secret").unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(ours.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{ours}");
        assert!(Argon2::default().verify_password(b"pw-secret", &parsed).is_ok());
        assert!(Argon2::default().verify_password(b"pw-secreT", &parsed).is_err());
        let salt = SaltString::encode_b64(b"sixteen byte salt").unwrap();
        let theirs = Argon2::default().hash_password(b"pw-secret", &salt).unwrap().to_string();
        assert!(workspace.verify(&theirs, "pw-secret"));
        assert!(!workspace.verify(&theirs, "pw-secret "));
        assert!(!workspace.verify(&theirs, ""));
        assert!(!workspace.verify("not a phc string", "pw-secret"));
        let weaker = Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::new(1024, 1, 1, Some(16)).unwrap());
        let weaker = weaker.hash_password(b"pw-secret", &salt).unwrap().to_string();
        assert!(workspace.verify(&weaker, "pw-secret"), "parameters come from the stored hash");
        let greedy = weaker.replace("m=1024", "m=4000000");
        assert!(!workspace.verify(&greedy, "pw-secret"), "a hash asking for 4 GB is refused");
        assert!(workspace.0.len() <= MAX_BLOCKS);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_busy_slot_turns_requests_away_after_the_wait() {
        let limit = HashingLimit { concurrency: 1, wait: Duration::ZERO };
        let dir = Arc::new(UserDirectory::seed_with_limit(2, "pw-secret", limit).unwrap());
        let held = dir.slots.permits.clone().try_acquire_owned().unwrap();
        assert_eq!(dir.verify("user1", "pw-secret").await.unwrap_err(), HashingBusy);
        assert!(dir.verify("nobody", "pw-secret").await.is_err(), "unknown users wait like known ones");
        assert!(matches!(dir.hash_new_password("x").await, Err(HashError::Busy(_))));
        drop(held);
        assert!(dir.verify("user1", "pw-secret").await.unwrap().is_some());
    }

    #[test]
    fn roles_are_validated() {
        assert!(validate_roles(&["admin".into(), "user".into()]).is_ok());
        assert!(validate_roles(&[]).is_err());
        assert!(validate_roles(&["Admin".into()]).is_err());
        assert!(validate_roles(&["a*".into()]).is_err());
    }
}
