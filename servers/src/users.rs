//! The seeded user directory: `user0` .. `user{N-1}`, argon2id password hashes, roles.
//!
//! All seeded users share one password, so they share one PHC hash computed at start: hashing
//! 10^4 users one by one at ~20 ms each would delay start-up by minutes without changing any
//! measurement (a verify costs the same whatever the salt). A changed password gets its own hash.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

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
}

/// A successful password check: who, with which roles, and how long argon2 took.
#[derive(Debug, Clone)]
pub struct VerifiedUser {
    pub username: String,
    pub roles: Arc<[String]>,
    pub argon2_time: Duration,
}

/// Hashes a password with argon2id and the crate's default (OWASP-recommended) parameters.
pub fn hash_password(password: &str) -> Result<Arc<str>, String> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| e.to_string())?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| Arc::from(h.to_string()))
        .map_err(|e| e.to_string())
}

fn verify_password(hash: &str, password: &str) -> bool {
    match PasswordHash::new(hash) {
        Ok(parsed) => Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok(),
        Err(_) => false,
    }
}

impl UserDirectory {
    /// Seeds `count` users sharing `password`, with roles `["user"]`.
    pub fn seed(count: u32, password: &str) -> Result<Self, String> {
        let shared = hash_password(password)?;
        let decoy_hash = hash_password("decoy password that nobody has")?;
        let roles: Arc<[String]> = Arc::from(vec!["user".to_owned()]);
        let users = (0..count)
            .map(|i| {
                let record = UserRecord { password_hash: shared.clone(), roles: roles.clone() };
                (format!("user{i}"), RwLock::new(record))
            })
            .collect();
        Ok(Self { users, decoy_hash })
    }

    /// Whether the user exists.
    pub fn contains(&self, username: &str) -> bool {
        self.users.contains_key(username)
    }

    /// The user's current roles.
    pub fn roles(&self, username: &str) -> Option<Arc<[String]>> {
        self.users.get(username).map(|u| read(u).roles)
    }

    /// Checks a password on a blocking thread (argon2 takes milliseconds of CPU).
    /// Unknown users and wrong passwords both give `None` after the same work.
    pub async fn verify(self: &Arc<Self>, username: &str, password: &str) -> Option<VerifiedUser> {
        if username.len() > MAX_USERNAME_BYTES || password.len() > MAX_PASSWORD_BYTES {
            return None;
        }
        let record = self.users.get(username).map(read);
        let hash = record.as_ref().map_or_else(|| self.decoy_hash.clone(), |r| r.password_hash.clone());
        let password = password.to_owned();
        let started = Instant::now();
        let ok = tokio::task::spawn_blocking(move || verify_password(&hash, &password)).await.unwrap_or(false);
        let argon2_time = started.elapsed();
        match (ok, record) {
            (true, Some(record)) => {
                Some(VerifiedUser { username: username.to_owned(), roles: record.roles, argon2_time })
            }
            _ => None,
        }
    }

    /// Replaces a user's password with a fresh argon2id hash.
    pub async fn set_password(&self, username: &str, password: &str) -> Result<(), String> {
        let password = password.to_owned();
        let hash = tokio::task::spawn_blocking(move || hash_password(&password)).await.map_err(|e| e.to_string())??;
        let user = self.users.get(username).ok_or("unknown user")?;
        write(user, |r| r.password_hash = hash);
        Ok(())
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
        assert!(dir.verify("user1", "pw-secret").await.is_some());
        assert!(dir.verify("user1", "wrong").await.is_none());
        assert!(dir.verify("user9", "pw-secret").await.is_none());
        dir.set_password("user1", "new-secret").await.unwrap();
        assert!(dir.verify("user1", "pw-secret").await.is_none());
        assert!(dir.verify("user1", "new-secret").await.is_some());
        assert!(dir.verify("user2", "pw-secret").await.is_some());
    }

    #[test]
    fn roles_are_validated() {
        assert!(validate_roles(&["admin".into(), "user".into()]).is_ok());
        assert!(validate_roles(&[]).is_err());
        assert!(validate_roles(&["Admin".into()]).is_err());
        assert!(validate_roles(&["a*".into()]).is_err());
    }
}
