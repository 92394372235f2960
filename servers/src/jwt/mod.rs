//! JWT keys, claims, signing and verification, shared by the `jwt` and `hybrid` strategies.
//!
//! Security decisions, in one place:
//! - The accepted algorithm is pinned per key: [`Validation`] lists exactly the configured
//!   algorithm, so a token's `alg` header (`none`, or HS256 signed with an RSA public key) only
//!   ever leads to a rejection.
//! - `iss`, `aud`, `exp` and `nbf` are required and validated with an explicit leeway of
//!   [`LEEWAY_SECS`]; `iat`, `jti` and `sub` must be present or the claims do not deserialize.
//! - Keys are generated at start from the system CSPRNG (aws-lc-rs); revoke-all rotates them.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair};
use base64::Engine;
use clap::ValueEnum;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::token::{MAX_TOKEN_BYTES, TokenRejection, new_jti};

mod key_file;

use key_file::{lock_key_file, material_from_file, write_atomically, write_public};

/// Signature algorithm of the JWT strategies; one key per algorithm, pinned at verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize, Serialize)]
pub enum JwtAlg {
    #[value(name = "HS256")]
    HS256,
    #[value(name = "RS256")]
    RS256,
    #[value(name = "ES256")]
    ES256,
    #[value(name = "EdDSA")]
    EdDSA,
}

/// `iss` of every token this server issues and accepts.
pub const ISSUER: &str = "authbench";
/// `aud` of every token this server issues and accepts.
pub const AUDIENCE: &str = "authbench-api";
/// Clock skew tolerated on `exp` and `nbf`, in seconds.
pub const LEEWAY_SECS: u64 = 2;

/// The claims of an access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    pub aud: String,
    pub sub: String,
    pub exp: u64,
    pub nbf: u64,
    pub iat: u64,
    pub jti: String,
    pub roles: Vec<String>,
    /// Filler of a chosen size, for measuring what token size costs; absent normally.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pad: Option<String>,
    /// `versioned`: the user's and the global token version when the token was issued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ver: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gver: Option<u64>,
    /// `refresh`: the refresh-token family this access token belongs to (a digest, not the
    /// family's secret), so a logout can end the family.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fam: Option<String>,
    /// hybrid denylist and `pushed`: when the token was issued, in microseconds of the
    /// revocation clock in Redis, the unit and clock its revocation marks are compared in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat_us: Option<u64>,
}

impl AccessClaims {
    /// Claims for a token issued now to `username`, valid for `ttl`, with `iat` set to `iat`
    /// (now, except for seeded tokens and for the designs that take it from Redis's clock).
    pub fn new(username: &str, roles: &[String], ttl: std::time::Duration, iat: u64) -> Result<Self, getrandom::Error> {
        let now = now_secs();
        Ok(Self {
            iss: ISSUER.to_owned(),
            aud: AUDIENCE.to_owned(),
            sub: username.to_owned(),
            exp: now + ttl.as_secs(),
            nbf: now,
            iat,
            jti: new_jti()?,
            roles: roles.to_vec(),
            pad: None,
            ver: None,
            gver: None,
            fam: None,
            iat_us: None,
        })
    }
}

/// One signing key and the matching verification key.
struct KeyPairSet {
    kid: String,
    /// None on a verify-only instance, which holds the public key alone.
    encoding: Option<EncodingKey>,
    decoding: DecodingKey,
    /// The public key (DER) for asymmetric algorithms; tests use it to forge key-confusion tokens.
    public_der: Option<Vec<u8>>,
}

/// The key ring of one server: the current key, the algorithm pinned to it, and the ids of
/// keys retired by revoke-all (to answer `revoked` rather than `bad_signature` for them).
pub struct JwtKeys {
    alg: Algorithm,
    current: ArcSwap<KeyPairSet>,
    validation: Validation,
    /// Read when a signature fails, never on the accepting path. Lock-free: every forged token
    /// reaches this read, and with a lock a flood of them would queue behind one another.
    retired: ArcSwap<HashSet<String>>,
    /// Where the key lives, when instances share it: a rotation is written there (and to
    /// `<file>.pub`) before it takes effect, so a restart or a later instance cannot bring the
    /// retired key back.
    key_file: Option<std::path::PathBuf>,
    /// One rotation at a time, so the key in the file is the key in use.
    rotation: Mutex<()>,
}

impl std::fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtKeys").field("alg", &self.alg).field("kid", &self.current.load().kid).finish()
    }
}

/// Seconds since the Unix epoch.
pub fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl JwtKeys {
    /// Generates a fresh key for `alg`.
    pub fn generate(alg: JwtAlg) -> Result<Self, String> {
        Self::new(alg, None)
    }

    /// Keys for `alg`: from `key_file` when given (created there if missing), else fresh.
    /// For an asymmetric algorithm the public key is also written to `<key_file>.pub`, for
    /// instances that should only verify ([`JwtKeys::verify_only`]).
    pub fn new(alg: JwtAlg, key_file: Option<&std::path::Path>) -> Result<Self, String> {
        let algorithm = algorithm_of(alg);
        let keys = match key_file {
            Some(path) => {
                // Read the key and write its public half under the file lock, so that a rotation
                // in another process cannot land between the two and leave `.pub` holding the
                // retired key.
                let _locked = lock_key_file(path)?;
                let keys = keys_from_material(algorithm, &material_from_file(algorithm, path)?)?;
                if let Some(public) = &keys.public_der {
                    write_public(path, public)?;
                }
                keys
            }
            None => generate_key(algorithm)?,
        };
        Ok(Self {
            alg: algorithm,
            current: ArcSwap::from_pointee(keys),
            validation: validation_for(algorithm),
            retired: ArcSwap::from_pointee(HashSet::new()),
            key_file: key_file.map(std::path::Path::to_path_buf),
            rotation: Mutex::new(()),
        })
    }

    /// The pinned algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    /// The current public key (DER), `None` for HMAC.
    pub fn public_key_der(&self) -> Option<Vec<u8>> {
        self.current.load().public_der.clone()
    }

    /// Keys that verify `alg` tokens with the public key in `path` (base64 of its DER, as
    /// [`JwtKeys::new`] writes next to a key file) and cannot sign: an instance that only
    /// checks tokens another one issued.
    pub fn verify_only(alg: JwtAlg, path: &std::path::Path) -> Result<Self, String> {
        let algorithm = algorithm_of(alg);
        let text =
            std::fs::read_to_string(path).map_err(|e| format!("cannot read public key {}: {e}", path.display()))?;
        let public = base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map_err(|e| format!("public key {}: not base64: {e}", path.display()))?;
        let decoding = match algorithm {
            Algorithm::RS256 => DecodingKey::from_rsa_der(&public),
            Algorithm::ES256 => DecodingKey::from_ec_der(&public),
            Algorithm::EdDSA => DecodingKey::from_ed_der(&public),
            _ => return Err("HS256 has no public key: an HS256 instance needs the shared secret".to_owned()),
        };
        let keys = KeyPairSet { kid: kid_of(&public), encoding: None, decoding, public_der: Some(public) };
        Ok(Self {
            alg: algorithm,
            current: ArcSwap::from_pointee(keys),
            validation: validation_for(algorithm),
            retired: ArcSwap::from_pointee(HashSet::new()),
            key_file: None,
            rotation: Mutex::new(()),
        })
    }

    /// Whether this instance holds a signing key.
    pub fn can_sign(&self) -> bool {
        self.current.load().encoding.is_some()
    }

    /// Signs claims with the current key; the header carries the key id. Generic so that tests
    /// can sign claim sets this server would never issue and check that they are refused.
    pub fn sign<T: Serialize>(&self, claims: &T) -> Result<String, SignError> {
        let keys = self.current.load();
        let encoding = keys.encoding.as_ref().ok_or(SignError::VerifyOnly)?;
        let mut header = Header::new(self.alg);
        header.kid = Some(keys.kid.clone());
        jsonwebtoken::encode(&header, claims, encoding).map_err(|e| SignError::Failed(e.to_string()))
    }

    /// Verifies signature and claims. Never panics, whatever the input.
    pub fn verify(&self, token: &str) -> Result<AccessClaims, TokenRejection> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenRejection::Oversized);
        }
        let keys = self.current.load();
        match jsonwebtoken::decode::<AccessClaims>(token, &keys.decoding, &self.validation) {
            Ok(data) => Ok(data.claims),
            Err(e) => Err(match e.kind() {
                ErrorKind::InvalidSignature => {
                    if self.signed_by_retired_key(token) {
                        TokenRejection::Revoked
                    } else {
                        TokenRejection::BadSignature
                    }
                }
                ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName | ErrorKind::UnsupportedAlgorithm => {
                    TokenRejection::BadAlgorithm
                }
                ErrorKind::ExpiredSignature => TokenRejection::Expired,
                ErrorKind::ImmatureSignature => TokenRejection::NotYetValid,
                ErrorKind::InvalidIssuer | ErrorKind::InvalidAudience | ErrorKind::InvalidSubject => {
                    TokenRejection::WrongAudience
                }
                ErrorKind::MissingRequiredClaim(_) => TokenRejection::MissingClaim,
                _ => TokenRejection::Malformed,
            }),
        }
    }

    /// Replaces the key: every token signed before stops verifying. The stateless design's
    /// only lever, and it logs out every user at once.
    pub fn rotate(&self) -> Result<(), SignError> {
        if !self.can_sign() {
            return Err(SignError::VerifyOnly);
        }
        let _one_at_a_time =
            self.rotation.lock().map_err(|_| SignError::Failed("key rotation lock poisoned".to_owned()))?;
        let material = new_material(self.alg).map_err(SignError::Failed)?;
        let fresh = keys_from_material(self.alg, &material).map_err(SignError::Failed)?;
        if let Some(path) = &self.key_file {
            // Across processes too: another signer starting or rotating meanwhile waits.
            let _locked = lock_key_file(path).map_err(SignError::Failed)?;
            // The public key first: a verify-only instance starting in between already refuses
            // the old tokens (a signer starting in between still signs with the old key until
            // the next line, and its tokens are refused too: failing closed). Each file is
            // replaced whole by a rename, so no reader sees half a key.
            if let Some(public) = &fresh.public_der {
                write_public(path, public).map_err(SignError::Failed)?;
            }
            let text = base64::engine::general_purpose::STANDARD.encode(&material);
            write_atomically(path, text.as_bytes(), 0o600).map_err(SignError::Failed)?;
        }
        let old = self.current.swap(std::sync::Arc::new(fresh));
        // Copy on write: rotations are rare (one per revoke-all), reads are every failed signature.
        self.retired.rcu(|retired| {
            let mut retired = HashSet::clone(retired);
            retired.insert(old.kid.clone());
            retired
        });
        Ok(())
    }

    fn signed_by_retired_key(&self, token: &str) -> bool {
        let Ok(header) = jsonwebtoken::decode_header(token) else { return false };
        let Some(kid) = header.kid else { return false };
        self.retired.load().contains(&kid)
    }
}

/// Why a token could not be signed.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("this instance holds only the public key and cannot sign")]
    VerifyOnly,
    #[error("signing failed: {0}")]
    Failed(String),
}

fn algorithm_of(alg: JwtAlg) -> Algorithm {
    match alg {
        JwtAlg::HS256 => Algorithm::HS256,
        JwtAlg::RS256 => Algorithm::RS256,
        JwtAlg::ES256 => Algorithm::ES256,
        JwtAlg::EdDSA => Algorithm::EdDSA,
    }
}

/// The one algorithm accepted, claims required, `exp`/`nbf` checked with [`LEEWAY_SECS`].
fn validation_for(algorithm: Algorithm) -> Validation {
    let mut validation = Validation::new(algorithm);
    validation.leeway = LEEWAY_SECS;
    validation.validate_exp = true;
    validation.validate_nbf = true;
    validation.set_issuer(&[ISSUER]);
    validation.set_audience(&[AUDIENCE]);
    validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
    validation
}

/// A key id every instance derives alike: from the public key when there is one, else from
/// the secret.
fn kid_of(material: &[u8]) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, material);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest.as_ref().get(..12).unwrap_or_default())
}

/// The secret part of a key: an HMAC secret, or a PKCS#8 private key (DER).
fn new_material(alg: Algorithm) -> Result<Vec<u8>, String> {
    let rng = SystemRandom::new();
    let err = |e: &dyn std::fmt::Display| format!("key generation failed: {e}");
    match alg {
        Algorithm::HS256 => {
            let mut secret = vec![0u8; 32];
            getrandom::fill(&mut secret).map_err(|e| err(&e))?;
            Ok(secret)
        }
        Algorithm::RS256 => {
            let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).map_err(|e| err(&e))?;
            Ok(pair.as_der().map_err(|e| err(&e))?.as_ref().to_vec())
        }
        Algorithm::ES256 => Ok(EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|e| err(&e))?
            .as_ref()
            .to_vec()),
        Algorithm::EdDSA => Ok(Ed25519KeyPair::generate_pkcs8(&rng).map_err(|e| err(&e))?.as_ref().to_vec()),
        other => Err(format!("unsupported algorithm {other:?}")),
    }
}

/// Signing and verification keys from key material; the key id is derived from the material,
/// so every instance sharing a key file names it the same.
fn keys_from_material(alg: Algorithm, material: &[u8]) -> Result<KeyPairSet, String> {
    let err = |e: &dyn std::fmt::Display| format!("unusable {alg:?} key: {e}");
    let (encoding, decoding, public_der) = match alg {
        Algorithm::HS256 => {
            if material.len() < 32 {
                return Err("an HS256 secret must have at least 32 bytes".to_owned());
            }
            (EncodingKey::from_secret(material), DecodingKey::from_secret(material), None)
        }
        Algorithm::RS256 => {
            let pair = aws_lc_rs::rsa::KeyPair::from_pkcs8(material).map_err(|e| err(&e))?;
            // jsonwebtoken takes an RSA private key as PKCS#1 DER or as PEM (PKCS#1 or #8).
            let pem = format!(
                "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
                base64::engine::general_purpose::STANDARD.encode(material)
            );
            let public = pair.public_key().as_ref().to_vec();
            let encoding = EncodingKey::from_rsa_pem(pem.as_bytes()).map_err(|e| err(&e))?;
            (encoding, DecodingKey::from_rsa_der(&public), Some(public))
        }
        Algorithm::ES256 => {
            let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, material).map_err(|e| err(&e))?;
            let public = pair.public_key().as_ref().to_vec();
            (EncodingKey::from_ec_der(material), DecodingKey::from_ec_der(&public), Some(public))
        }
        Algorithm::EdDSA => {
            let pair = Ed25519KeyPair::from_pkcs8(material).map_err(|e| err(&e))?;
            let public = pair.public_key().as_ref().to_vec();
            (EncodingKey::from_ed_der(material), DecodingKey::from_ed_der(&public), Some(public))
        }
        other => return Err(format!("unsupported algorithm {other:?}")),
    };
    let kid = kid_of(public_der.as_deref().unwrap_or(material));
    Ok(KeyPairSet { kid, encoding: Some(encoding), decoding, public_der })
}

fn generate_key(alg: Algorithm) -> Result<KeyPairSet, String> {
    keys_from_material(alg, &new_material(alg)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn claims(now: u64, ttl: u64) -> AccessClaims {
        AccessClaims {
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            sub: "user0".into(),
            exp: now + ttl,
            nbf: now,
            iat: now,
            jti: new_jti().unwrap(),
            roles: vec!["user".into()],
            pad: None,
            ver: None,
            gver: None,
            fam: None,
            iat_us: None,
        }
    }

    #[test]
    fn every_algorithm_round_trips_and_rotation_revokes() {
        for alg in [JwtAlg::HS256, JwtAlg::RS256, JwtAlg::ES256, JwtAlg::EdDSA] {
            let keys = JwtKeys::generate(alg).unwrap();
            let c = claims(now_secs(), 60);
            let token = keys.sign(&c).unwrap();
            assert_eq!(keys.verify(&token), Ok(c), "{alg:?}");
            keys.rotate().unwrap();
            assert_eq!(keys.verify(&token), Err(TokenRejection::Revoked), "{alg:?}");
        }
    }

    #[test]
    fn time_claims_are_enforced_with_leeway() {
        let keys = JwtKeys::generate(JwtAlg::HS256).unwrap();
        let now = now_secs();
        let expired = AccessClaims { exp: now - LEEWAY_SECS - 5, ..claims(now - 100, 0) };
        assert_eq!(keys.verify(&keys.sign(&expired).unwrap()), Err(TokenRejection::Expired));
        let within_leeway = AccessClaims { exp: now - 1, ..claims(now - 100, 0) };
        assert!(keys.verify(&keys.sign(&within_leeway).unwrap()).is_ok());
        let future = AccessClaims { nbf: now + 60, ..claims(now, 600) };
        assert_eq!(keys.verify(&keys.sign(&future).unwrap()), Err(TokenRejection::NotYetValid));
        let wrong_aud = AccessClaims { aud: "someone-else".into(), ..claims(now, 60) };
        assert_eq!(keys.verify(&keys.sign(&wrong_aud).unwrap()), Err(TokenRejection::WrongAudience));
    }

    #[test]
    fn a_shared_key_file_gives_both_instances_one_key() {
        let dir = std::env::temp_dir().join(format!("authbench-keyfile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for alg in [JwtAlg::HS256, JwtAlg::RS256, JwtAlg::ES256, JwtAlg::EdDSA] {
            let path = dir.join(format!("{alg:?}.key"));
            let a = JwtKeys::new(alg, Some(&path)).unwrap();
            let b = JwtKeys::new(alg, Some(&path)).unwrap();
            let token = a.sign(&claims(now_secs(), 60)).unwrap();
            assert!(b.verify(&token).is_ok(), "{alg:?}");
            let other = JwtKeys::generate(alg).unwrap();
            assert_eq!(other.verify(&token), Err(TokenRejection::BadSignature), "{alg:?}");
        }
        std::fs::write(dir.join("bad.key"), "!!!").unwrap();
        assert!(JwtKeys::new(JwtAlg::HS256, Some(&dir.join("bad.key"))).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn another_servers_key_is_a_bad_signature() {
        let a = JwtKeys::generate(JwtAlg::ES256).unwrap();
        let b = JwtKeys::generate(JwtAlg::ES256).unwrap();
        let token = a.sign(&claims(now_secs(), 60)).unwrap();
        assert_eq!(b.verify(&token), Err(TokenRejection::BadSignature));
    }

    proptest! {
        #[test]
        fn arbitrary_tokens_never_panic(s in "[A-Za-z0-9_.=-]{0,400}") {
            let keys = JwtKeys::generate(JwtAlg::HS256).unwrap();
            prop_assert!(keys.verify(&s).is_err());
        }

        #[test]
        fn arbitrary_segments_never_panic(h in proptest::collection::vec(any::<u8>(), 0..64),
                                          p in proptest::collection::vec(any::<u8>(), 0..128),
                                          s in proptest::collection::vec(any::<u8>(), 0..64)) {
            let keys = JwtKeys::generate(JwtAlg::HS256).unwrap();
            let enc = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
            let token = format!("{}.{}.{}", enc(&h), enc(&p), enc(&s));
            prop_assert!(keys.verify(&token).is_err());
        }
    }
}
