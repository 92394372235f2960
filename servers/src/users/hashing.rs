//! Password hashing within a bound: argon2id holds 19 MiB for the whole of a hash, so every
//! hash a request asks for runs in one of a few hashing slots, each a thread of its own whose
//! argon2 memory is allocated once and reused. A request that cannot get a slot within the
//! wait is turned away ([`HashingBusy`]) before any work.

use std::sync::Arc;
use std::time::Duration;

use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use tokio::sync::Semaphore;

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
pub(super) struct HashingSlots {
    /// One permit per hashing thread; a job is queued only with a permit, so it never waits
    /// for a thread.
    pub(super) permits: Arc<Semaphore>,
    wait: Duration,
    jobs: std::sync::mpsc::Sender<HashJob>,
}

impl HashingSlots {
    pub(super) fn new(limit: HashingLimit) -> Result<Self, String> {
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
    pub(super) async fn run<T: Send + 'static>(
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

/// Argon2 working memory of one hashing thread (19 MiB with the default parameters),
/// allocated at its first hash and reused by every later one.
///
/// The argon2 crate's own `hash_password`/`verify_password` allocate the memory afresh for
/// every hash, and glibc's allocator kept most of the freed blocks instead of reusing them
/// (measured: 20 logins one after another left a server 350 MiB larger; 128 concurrent logins
/// hashed two at a time took it to 779 MiB on the blocking pool, 399 MiB on two threads of its
/// own). Allocated once per hashing thread, the memory is one block per thread whatever the traffic.
#[derive(Debug, Default)]
pub(super) struct Workspace(pub(super) Vec<Block>);

/// Largest memory a stored hash may ask for: four times the default. Every stored hash is one
/// this server made with the default parameters; this only keeps a bad one from growing a
/// workspace without bound.
pub(super) const MAX_BLOCKS: usize = 4 * Params::DEFAULT.block_count();

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
    pub(super) fn hash(&mut self, password: &str) -> Result<Arc<str>, String> {
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
    pub(super) fn verify(&mut self, hash: &str, password: &str) -> bool {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
