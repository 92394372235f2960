//! `jwt`: a signed token verified locally; no I/O per request. Nothing can be revoked before
//! `exp` except by rotating the signing key, which is what revoke-all does (and it logs out
//! every user). Per-token and per-user revocation answer 501 `unsupported`.

use std::sync::Arc;
use std::time::Duration;

use super::{AuthStrategy, Capabilities, Issued, Principal, RevocationSupport, UserRevocation};
use crate::error::AuthError;
use crate::jwt::{AccessClaims, JwtKeys, now_secs};

/// What `jwt` is built from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JwtSettings {
    /// Lifetime of an access token.
    pub access_ttl: Duration,
    /// Extra claim bytes per token (0: none), to measure what token size costs.
    pub claims_padding: usize,
}

#[derive(Debug)]
pub struct JwtStrategy {
    keys: Arc<JwtKeys>,
    ttl: Duration,
    /// Filler claim of `--claims-padding` bytes, built once.
    pad: Option<String>,
}

impl JwtStrategy {
    pub fn new(settings: JwtSettings, keys: Arc<JwtKeys>) -> Self {
        Self { keys, ttl: settings.access_ttl, pad: padding(settings.claims_padding) }
    }
}

/// Claims for a new token issued now, with the given `iat`.
pub(crate) fn new_claims(
    username: &str,
    roles: &[String],
    ttl: Duration,
    iat: u64,
    pad: Option<&String>,
) -> Result<AccessClaims, AuthError> {
    let mut claims = AccessClaims::new(username, roles, ttl, iat).map_err(|e| AuthError::Internal(e.to_string()))?;
    claims.pad = pad.cloned();
    Ok(claims)
}

/// The filler for `--claims-padding` bytes, or none.
pub(crate) fn padding(bytes: usize) -> Option<String> {
    (bytes > 0).then(|| "x".repeat(bytes))
}

/// The principal a verified token stands for.
pub(crate) fn principal_of(claims: AccessClaims) -> Principal {
    Principal {
        sub: claims.sub,
        roles: Arc::from(claims.roles),
        token_id: claims.jti,
        exp: claims.exp,
        refreshed: None,
    }
}

impl AuthStrategy for JwtStrategy {
    fn capabilities(&self) -> Capabilities {
        Capabilities::new("jwt", None)
            .revocation(RevocationSupport { revoke_all: true, ..RevocationSupport::default() }, "access_ttl")
            .access_ttl(self.ttl)
            .jwt_alg(&self.keys)
    }

    async fn issue(&self, username: &str, roles: &Arc<[String]>, _device: Option<&str>) -> Result<Issued, AuthError> {
        let claims = new_claims(username, roles, self.ttl, now_secs(), self.pad.as_ref())?;
        let token = self.keys.sign(&claims)?;
        Ok(Issued { access_token: token, expires_in: self.ttl.as_secs(), refresh_token: None })
    }

    async fn authenticate(&self, token: &str) -> Result<Principal, AuthError> {
        Ok(principal_of(self.keys.verify(token)?))
    }

    async fn logout(&self, _principal: &Principal) -> Result<(), AuthError> {
        Err(AuthError::Unsupported)
    }

    async fn revoke_user(&self, _username: &str, _kind: UserRevocation) -> Result<(), AuthError> {
        // A password change still succeeds (the handler stored it); old tokens live on.
        Err(AuthError::Unsupported)
    }

    async fn roles_changed(&self, _username: &str, _roles: &Arc<[String]>) -> Result<(), AuthError> {
        // New logins get the new roles; tokens already issued keep theirs until `exp`.
        Ok(())
    }

    async fn revoke_all(&self) -> Result<(), AuthError> {
        let keys = self.keys.clone();
        tokio::task::spawn_blocking(move || keys.rotate())
            .await
            .map_err(|e| AuthError::Internal(e.to_string()))?
            .map_err(AuthError::from)
    }
}
