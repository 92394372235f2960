//! A server's `/capabilities` answer as protocol 1 defines it, typed. Any server speaking the
//! protocol can be measured, so this is the protocol's view rather than the authbench server
//! crate's struct: the fields the protocol names are typed, and whatever else a server adds
//! (token lifetime, JWT algorithm, grace, ...) is kept as it came, so the JSON round-trips
//! unchanged. A test reads the authbench servers' own answers through it, and every run reads
//! each server's answer through it.

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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use authbench_server::jwt::{JwtAlg, JwtKeys};
    use authbench_server::strategy::{Capabilities as ServerCapabilities, PushReport, RevocationSupport};

    use super::*;

    /// The authbench servers' own answer reads into the protocol's view and writes back the
    /// same JSON, with what each kind's support says kept.
    #[test]
    fn the_servers_answers_read_into_the_protocol_view_unchanged() {
        let keys = JwtKeys::generate(JwtAlg::EdDSA).unwrap();
        let support = RevocationSupport { logout: false, ..RevocationSupport::all(true) };
        let answers = [
            ServerCapabilities::new("baseline", None),
            ServerCapabilities::new("jwt", None).access_ttl(Duration::from_secs(60)).jwt_alg(&keys),
            ServerCapabilities::new("pushed", None)
                .revocation(support, "propagation")
                .fail_mode("open")
                .jti_mode("denylist")
                .grace(Duration::from_secs(30))
                .refresh_ttl(Duration::from_secs(3600))
                .push(PushReport {
                    connected: true,
                    stale_ms: Some(4),
                    events: 3,
                    last_id: "1-0".to_owned(),
                    ..PushReport::default()
                }),
        ];
        for answer in answers {
            let json = serde_json::to_value(&answer).unwrap();
            let read: Capabilities = serde_json::from_value(json.clone()).unwrap();
            assert_eq!(serde_json::to_value(&read).unwrap(), json);
            assert_eq!(read.strategy, answer.strategy);
            assert_eq!(read.supports(Kind::Logout), answer.revocation.logout, "{json}");
            assert_eq!(read.supports(Kind::AdminBan), answer.revocation.admin_revoke, "{json}");
            assert_eq!(read.supports(Kind::SingleDevice), answer.revocation.single_device, "{json}");
            assert_eq!(read.access_ttl_s(), (answer.access_ttl_s > 0).then_some(answer.access_ttl_s));
            assert_eq!(read.checks_nothing(), answer.revocation_delay == "n/a");
        }
    }
}
