//! `baseline`: checks nothing. `/me` answers a fixed user whatever the request carries, so its
//! throughput is the ceiling of the HTTP stack that every other strategy is measured against.

use std::sync::Arc;

use axum::http::HeaderMap;

use super::{AuthStrategy, Capabilities, Issued, Principal, UserRevocation};
use crate::error::AuthError;

/// The token every baseline login returns; nothing ever checks it.
const BASELINE_TOKEN: &str = "baseline";

#[derive(Debug)]
pub struct BaselineStrategy {
    /// The fixed principal `/me` answers, built once so a request allocates as little as possible.
    fixed: Principal,
}

impl Default for BaselineStrategy {
    fn default() -> Self {
        Self::new()
    }
}

impl BaselineStrategy {
    pub fn new() -> Self {
        Self {
            fixed: Principal {
                sub: "user0".to_owned(),
                roles: Arc::from(vec!["user".to_owned()]),
                token_id: BASELINE_TOKEN.to_owned(),
                // Nothing expires because nothing is checked; 0 says "no expiry" to clients.
                exp: 0,
                refreshed: None,
            },
        }
    }
}

impl AuthStrategy for BaselineStrategy {
    fn capabilities(&self) -> Capabilities {
        // Checks nothing, stores nothing, revokes nothing.
        Capabilities::new("baseline", None)
    }

    async fn issue(&self, _username: &str, _roles: &Arc<[String]>, _device: Option<&str>) -> Result<Issued, AuthError> {
        Ok(Issued { access_token: BASELINE_TOKEN.to_owned(), expires_in: 0, refresh_token: None })
    }

    async fn authenticate(&self, _token: &str) -> Result<Principal, AuthError> {
        Ok(self.fixed.clone())
    }

    async fn authenticate_request(&self, _headers: &HeaderMap) -> Result<Principal, AuthError> {
        Ok(self.fixed.clone())
    }

    fn verifies_tokens(&self) -> bool {
        false
    }

    async fn logout(&self, _principal: &Principal) -> Result<(), AuthError> {
        Err(AuthError::Unsupported)
    }

    async fn revoke_user(&self, _username: &str, _kind: UserRevocation) -> Result<(), AuthError> {
        Err(AuthError::Unsupported)
    }

    async fn roles_changed(&self, _username: &str, _roles: &Arc<[String]>) -> Result<(), AuthError> {
        Ok(())
    }

    async fn revoke_all(&self) -> Result<(), AuthError> {
        Err(AuthError::Unsupported)
    }
}
