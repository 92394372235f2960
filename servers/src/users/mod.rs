//! The seeded user directory: `user0` .. `user{N-1}`, argon2id password hashes, roles, and the
//! record generation that keeps a login from outliving a change to its user made meanwhile.
//!
//! All seeded users share one password, so they share one PHC hash computed at start: hashing
//! 10^4 users one by one at ~20 ms each would delay start-up by minutes without changing any
//! measurement (a verify costs the same whatever the salt). A changed password gets its own hash.
//!
//! Every hash a request asks for (a login's verify, a password change's verify and new hash)
//! runs in one of a few hashing slots ([`hashing`]): unbounded concurrent logins were
//! unbounded memory (128 wrong-password logins took a server to 2.3 GiB).
//!
//! A login reads the record, spends milliseconds in argon2, then has its token minted and
//! stored; a password change, role change, ban or logout-all of the same user can land in
//! between. So every such change goes through [`UserDirectory::begin_change`], which under the
//! record's lock stores the new password or roles and raises the record's generation, and whose
//! guard raises it again when the change's revocation has run; and a login, once its token is
//! stored, asks [`UserDirectory::confirm`], under the same lock, whether the generation is the
//! one it read before its password check and no change is running. Either the login's token
//! was stored before the change began, and the change's revocation (which runs after the new
//! record is stored) ends it, or the login is refused; a login that starts after the change
//! began reads the new password and roles. What each strategy's revocation covers is
//! [`AuthStrategy::revoke_user`](crate::strategy::AuthStrategy::revoke_user)'s contract.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

mod hashing;

use hashing::HashingSlots;
pub use hashing::{HashError, HashingBusy, HashingLimit, hash_password};

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
    /// Raised when a change to the user begins and again when it ends, never lowered: a login
    /// that sees the same value before its password check and after its token is stored (with
    /// no change running) overlapped no change.
    generation: u64,
    /// Changes begun and not yet ended: their revocation may not have reached the store yet.
    changing: u32,
    /// Raised by every password change (and by its undoing), never lowered, so that a password
    /// check can tell that the password it checked is still the user's.
    password_version: u64,
}

/// The users a server knows. Fixed membership; passwords and roles can change.
///
/// A std `RwLock` per user rather than a tokio one: it is held only to copy or swap a few
/// fields, never across an `.await`, so it is cheaper and cannot deadlock a task.
#[derive(Debug)]
pub struct UserDirectory {
    users: HashMap<String, RwLock<UserRecord>>,
    /// Verified against when the username is unknown, so that an unknown user costs the same
    /// argon2 time as a wrong password and the two cannot be told apart.
    decoy_hash: Arc<str>,
    /// Bounds the hashes in flight, and so their memory.
    slots: HashingSlots,
}

/// An argon2id hash of a new password, ready to install.
#[derive(Debug, Clone)]
pub struct NewPasswordHash(Arc<str>);

/// A successful password check: who, with which roles, how long argon2 took, and which
/// version of the record the check was made against.
#[derive(Debug, Clone)]
pub struct VerifiedUser {
    pub username: String,
    pub roles: Arc<[String]>,
    pub argon2_time: Duration,
    generation: u64,
    password_version: u64,
}

/// Why a login whose password checked out must not hand out its token: the user's record
/// changed while it ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LoginRaced {
    /// The password it checked was replaced: to the client, a wrong password.
    #[error("the password changed during the login")]
    PasswordChanged,
    /// Roles changed, or the user's tokens were revoked: the client may log in again.
    #[error("the account changed during the login")]
    AccountChanged,
}

/// What a change other than a password change does to the user's record as it begins; its
/// revocation follows.
#[derive(Debug, Clone)]
pub enum AccountChange {
    /// New roles, already validated.
    Roles(Arc<[String]>),
    /// Nothing in the record: logout-all or a ban, which end the user's tokens.
    Tokens,
}

/// A change of one user in progress, from [`UserDirectory::begin_change`]. Dropping it ends
/// the change: hold it until the change's revocation has run (or failed), and move it into a
/// revocation that runs later. Ends on drop so that an error, or a client that hangs up and
/// cancels the handler, cannot leave the user's logins refused for good.
#[derive(Debug)]
pub struct ChangeGuard {
    users: Arc<UserDirectory>,
    username: String,
    replaced: Replaced,
}

/// For a password change: the hash it replaced and the version it set, for [`ChangeGuard::undo`].
type Replaced = Option<(Arc<str>, u64)>;

impl ChangeGuard {
    /// Puts back the password this change replaced, unless another change has replaced it
    /// since: for a change whose revocation failed, so that the client's 503 means "nothing
    /// changed, try again" and a retry with the same current password works.
    pub fn undo(&mut self) {
        let Some((previous, version)) = self.replaced.take() else { return };
        if let Some(user) = self.users.users.get(&self.username) {
            write(user, |r| {
                if r.password_version == version {
                    r.password_hash = previous;
                    r.password_version += 1;
                }
            });
        }
    }
}

impl Drop for ChangeGuard {
    fn drop(&mut self) {
        if let Some(user) = self.users.users.get(&self.username) {
            write(user, |r| {
                r.changing = r.changing.saturating_sub(1);
                r.generation += 1;
            });
        }
    }
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
                let record = UserRecord {
                    password_hash: shared.clone(),
                    roles: roles.clone(),
                    generation: 0,
                    changing: 0,
                    password_version: 0,
                };
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
            (true, Some(record)) => Ok(Some(VerifiedUser {
                username: username.to_owned(),
                roles: record.roles,
                argon2_time,
                generation: record.generation,
                password_version: record.password_version,
            })),
            _ => Ok(None),
        }
    }

    /// Hashes a new password in a hashing slot, for
    /// [`begin_password_change`](Self::begin_password_change): a password change hashes before
    /// it changes anything, so a change turned away (503) changes nothing.
    pub async fn hash_new_password(&self, password: &str) -> Result<NewPasswordHash, HashError> {
        let password = password.to_owned();
        let hash = self.slots.run(move |workspace| workspace.hash(&password)).await?.map_err(HashError::Failed)?;
        Ok(NewPasswordHash(hash))
    }

    /// Whether a login checked against `user` may hand out the token it has now stored: no
    /// change of the user began since the password check, and none is running. Called after
    /// the token is stored, so that a change that begins later revokes it.
    pub fn confirm(&self, user: &VerifiedUser) -> Result<(), LoginRaced> {
        let record = self.users.get(&user.username).map(read).ok_or(LoginRaced::AccountChanged)?;
        if record.password_version != user.password_version {
            return Err(LoginRaced::PasswordChanged);
        }
        if record.generation != user.generation || record.changing > 0 {
            return Err(LoginRaced::AccountChanged);
        }
        Ok(())
    }

    /// Begins a change of `username`'s roles or tokens: stores the new roles and marks the
    /// change as running, both under the record's lock, so that every login in flight is
    /// refused at its [`confirm`](Self::confirm) unless its token was stored before this.
    /// `None` when the user does not exist.
    pub fn begin_change(self: &Arc<Self>, username: &str, change: AccountChange) -> Option<ChangeGuard> {
        self.begin(username, |r| {
            if let AccountChange::Roles(roles) = change {
                r.roles = roles;
            }
            Some(None)
        })
    }

    /// Begins a password change to `hash` (as [`begin_change`](Self::begin_change) does) for
    /// a user whose current password was checked as `checked`; `None` when the password was
    /// changed since that check: the current password the client gave is no longer the user's.
    pub fn begin_password_change(
        self: &Arc<Self>,
        checked: &VerifiedUser,
        hash: NewPasswordHash,
    ) -> Option<ChangeGuard> {
        self.begin(&checked.username, |r| {
            (r.password_version == checked.password_version).then(|| {
                r.password_version += 1;
                Some((std::mem::replace(&mut r.password_hash, hash.0), r.password_version))
            })
        })
    }

    /// Applies `apply` to the record and, unless it declines (`None`), marks a change as
    /// running; all under one write lock.
    fn begin(
        self: &Arc<Self>,
        username: &str,
        apply: impl FnOnce(&mut UserRecord) -> Option<Replaced>,
    ) -> Option<ChangeGuard> {
        let user = self.users.get(username)?;
        let replaced = write(user, |r| {
            let replaced = apply(r)?;
            r.generation += 1;
            r.changing += 1;
            Some(replaced)
        })?;
        Some(ChangeGuard { users: self.clone(), username: username.to_owned(), replaced })
    }
}

/// Reads a record, recovering from a poisoned lock: every write is a few assignments that
/// cannot panic half-way, so a record is always consistent.
fn read(lock: &RwLock<UserRecord>) -> UserRecord {
    match lock.read() {
        Ok(guard) => guard.clone(),
        Err(poisoned) => poisoned.into_inner().clone(),
    }
}

fn write<T>(lock: &RwLock<UserRecord>, f: impl FnOnce(&mut UserRecord) -> T) -> T {
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

    /// Changes `user`'s password from `current` to `new`, as `/password` does.
    async fn change_password(dir: &Arc<UserDirectory>, user: &str, current: &str, new: &str) -> ChangeGuard {
        let checked = dir.verify(user, current).await.unwrap().unwrap();
        dir.begin_password_change(&checked, dir.hash_new_password(new).await.unwrap()).unwrap()
    }

    #[tokio::test]
    async fn unknown_user_and_wrong_password_both_fail() {
        let dir = Arc::new(UserDirectory::seed(3, "pw-secret").unwrap());
        assert!(dir.verify("user1", "pw-secret").await.unwrap().is_some());
        assert!(dir.verify("user1", "wrong").await.unwrap().is_none());
        assert!(dir.verify("user9", "pw-secret").await.unwrap().is_none());
        drop(change_password(&dir, "user1", "pw-secret", "new-secret").await);
        assert!(dir.verify("user1", "pw-secret").await.unwrap().is_none());
        assert!(dir.verify("user1", "new-secret").await.unwrap().is_some());
        assert!(dir.verify("user2", "pw-secret").await.unwrap().is_some());
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

    #[tokio::test]
    async fn a_login_that_overlaps_a_change_is_refused() {
        let dir = Arc::new(UserDirectory::seed(3, "pw").unwrap());
        // A change that begins and ends while the login runs.
        let login = dir.verify("user1", "pw").await.unwrap().unwrap();
        drop(dir.begin_change("user1", AccountChange::Tokens).unwrap());
        assert_eq!(dir.confirm(&login), Err(LoginRaced::AccountChanged));
        // A change still running when the login ends, whenever the login began.
        let change = dir.begin_change("user1", AccountChange::Roles(Arc::from(vec!["admin".to_owned()]))).unwrap();
        let during = dir.verify("user1", "pw").await.unwrap().unwrap();
        assert_eq!(&*during.roles, ["admin".to_owned()]);
        assert_eq!(dir.confirm(&during), Err(LoginRaced::AccountChanged));
        drop(change);
        assert_eq!(dir.confirm(&during), Err(LoginRaced::AccountChanged));
        // A login that overlaps nothing; another user's change is not this user's.
        let after = dir.verify("user1", "pw").await.unwrap().unwrap();
        drop(dir.begin_change("user2", AccountChange::Tokens).unwrap());
        assert_eq!(dir.confirm(&after), Ok(()));
        assert!(dir.begin_change("nobody", AccountChange::Tokens).is_none());
    }

    #[tokio::test]
    async fn a_password_change_refuses_the_old_password_at_once_and_can_be_undone() {
        let dir = Arc::new(UserDirectory::seed(2, "old").unwrap());
        let in_flight = dir.verify("user1", "old").await.unwrap().unwrap();
        let mut change = change_password(&dir, "user1", "old", "new").await;
        assert_eq!(dir.confirm(&in_flight), Err(LoginRaced::PasswordChanged));
        // A second change made with the replaced password is refused.
        let stale = in_flight.clone();
        assert!(dir.begin_password_change(&stale, dir.hash_new_password("other").await.unwrap()).is_none());
        assert!(dir.verify("user1", "old").await.unwrap().is_none());
        // Undone (its revocation failed): the old password is back, the new one refused.
        change.undo();
        drop(change);
        assert!(dir.verify("user1", "old").await.unwrap().is_some());
        assert!(dir.verify("user1", "new").await.unwrap().is_none());
        assert_eq!(dir.confirm(&in_flight), Err(LoginRaced::PasswordChanged));
    }

    #[test]
    fn roles_are_validated() {
        assert!(validate_roles(&["admin".into(), "user".into()]).is_ok());
        assert!(validate_roles(&[]).is_err());
        assert!(validate_roles(&["Admin".into()]).is_err());
        assert!(validate_roles(&["a*".into()]).is_err());
    }
}
