//! A server's `/capabilities` answer as protocol 1 defines it, typed. Any server speaking the
//! protocol can be measured, so this is the protocol's view rather than the authbench server
//! crate's struct: the fields the protocol names are typed, and whatever else a server adds
//! (token lifetime, JWT algorithm, grace, ...) is kept as it came, so the JSON round-trips
//! unchanged. Every run reads each server's answer through it, so a strategy whose answer
//! drifted from the protocol fails the smoke run.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Kind;

/// What a server says it is and can do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Capabilities {
    pub protocol: u32,
    pub strategy: String,
    /// `redis`, `postgres` or `none`.
    pub store: String,
    /// `closed`, `open` or `n/a`.
    pub fail_mode: String,
    /// Which revocation kinds the server performs, by the protocol's names.
    pub revocation: BTreeMap<String, bool>,
    /// `immediate`, `access_ttl`, `grace_window`, `propagation`, or `n/a`.
    pub revocation_delay: String,
    /// Every other field the server sent, as it sent it.
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

impl Capabilities {
    /// Whether the server says it performs `kind`.
    pub fn supports(&self, kind: Kind) -> bool {
        self.revocation.get(kind.capability()).copied().unwrap_or(false)
    }

    /// A server that checks no token (`revocation_delay` "n/a") can never refuse one.
    pub fn checks_nothing(&self) -> bool {
        self.revocation_delay == "n/a"
    }

    /// Whether the server keeps no state in a store.
    pub fn storeless(&self) -> bool {
        self.store == "none"
    }

    /// Lifetime of the tokens it issues, in seconds, when it says.
    pub fn access_ttl_s(&self) -> Option<u64> {
        self.extra.get("access_ttl_s").and_then(serde_json::Value::as_u64).filter(|t| *t > 0)
    }
}
