//! Token text on the wire: extracting a bearer token from a header, generating and checking
//! opaque ids, and [`TokenRejection`], every reason a token is refused. Everything here runs
//! before any store or crypto sees the input; the signer and the strategies refuse tokens with
//! the same reasons, and `error` turns them into the protocol's 401.

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Why a token was not accepted; the `reason` of a 401 `invalid_token`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenRejection {
    /// No `Authorization` header.
    Missing,
    /// Not `Bearer <token>`, not ASCII, wrong length or alphabet, not a JWT shape, bad JSON.
    Malformed,
    /// Longer than any token this server issues.
    Oversized,
    /// The signature does not verify with the pinned key.
    BadSignature,
    /// The header names an algorithm other than the one pinned for the key.
    BadAlgorithm,
    /// `exp` is in the past (beyond the leeway).
    Expired,
    /// `nbf` is in the future (beyond the leeway).
    NotYetValid,
    /// `iss` or `aud` is not this service.
    WrongAudience,
    /// A required claim is absent.
    MissingClaim,
    /// The token was valid but has been revoked (or the session does not exist).
    Revoked,
}

impl TokenRejection {
    /// The `reason` string of the protocol.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Malformed => "malformed",
            Self::Oversized => "oversized",
            Self::BadSignature => "bad_signature",
            Self::BadAlgorithm => "bad_algorithm",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::WrongAudience => "wrong_audience",
            Self::MissingClaim => "missing_claim",
            Self::Revoked => "revoked",
        }
    }

    /// All reasons, for pre-registering metrics.
    pub const ALL: [Self; 10] = [
        Self::Missing,
        Self::Malformed,
        Self::Oversized,
        Self::BadSignature,
        Self::BadAlgorithm,
        Self::Expired,
        Self::NotYetValid,
        Self::WrongAudience,
        Self::MissingClaim,
        Self::Revoked,
    ];
}

/// Bytes of CSPRNG output in an opaque id: 256 bits, twice the 128-bit minimum, so a guess
/// stays hopeless even with billions of live sessions.
pub const OPAQUE_ID_BYTES: usize = 32;
/// Characters of an opaque id in unpadded base64url.
pub const OPAQUE_ID_CHARS: usize = 43;
/// Longest bearer token accepted at all. The largest token this server issues (a JWT with
/// 4 KiB of extra claims, RS256) is under 7 KiB; anything longer is rejected before parsing.
pub const MAX_TOKEN_BYTES: usize = 12 * 1024;

/// A fresh opaque id from the operating system's CSPRNG, base64url without padding.
pub fn new_opaque_id() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; OPAQUE_ID_BYTES];
    getrandom::fill(&mut bytes)?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// A JWT id: 128 bits from the CSPRNG, base64url (22 characters).
pub fn new_jti() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// Whether `s` has exactly the shape of an id from [`new_opaque_id`]. Only such strings are
/// ever put into a Redis key, so no client byte can act as a glob or a key separator.
pub fn is_opaque_id(s: &str) -> bool {
    s.len() == OPAQUE_ID_CHARS && s.bytes().all(is_base64url_byte)
}

/// Whether `s` has the shape of a jti from [`new_jti`].
pub fn is_jti(s: &str) -> bool {
    s.len() == 22 && s.bytes().all(is_base64url_byte)
}

fn is_base64url_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

/// The token of an `Authorization: Bearer <token>` header (scheme matched case-insensitively,
/// RFC 7235). Rejects a missing header, another scheme, non-ASCII, and oversized values.
pub fn bearer_token(headers: &HeaderMap) -> Result<&str, TokenRejection> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let value = values.next().ok_or(TokenRejection::Missing)?;
    if values.next().is_some() {
        // Two Authorization headers: refuse to guess which one is meant.
        return Err(TokenRejection::Malformed);
    }
    parse_bearer(value.as_bytes())
}

/// The token inside an `Authorization` header value.
pub fn parse_bearer(value: &[u8]) -> Result<&str, TokenRejection> {
    if value.len() > MAX_TOKEN_BYTES + 7 {
        return Err(TokenRejection::Oversized);
    }
    let value = std::str::from_utf8(value).map_err(|_| TokenRejection::Malformed)?;
    let (scheme, token) = value.split_once(' ').ok_or(TokenRejection::Malformed)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(TokenRejection::Malformed);
    }
    let token = token.trim_start_matches(' ');
    // RFC 6750 b64token: ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/", then "=" padding.
    let body = token.trim_end_matches('=');
    let ok = |b: u8| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b);
    if body.is_empty() || !body.bytes().all(ok) {
        return Err(TokenRejection::Malformed);
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn opaque_ids_are_unique_and_well_formed() {
        let a = new_opaque_id().unwrap();
        let b = new_opaque_id().unwrap();
        assert_ne!(a, b);
        assert!(is_opaque_id(&a), "{a}");
        assert!(is_jti(&new_jti().unwrap()));
        assert!(!is_opaque_id("*"));
        assert!(!is_opaque_id(&"a".repeat(42)));
        assert!(!is_opaque_id(&format!("{}*", "a".repeat(42))));
    }

    #[test]
    fn bearer_parsing() {
        assert_eq!(parse_bearer(b"Bearer abc.def"), Ok("abc.def"));
        assert_eq!(parse_bearer(b"bearer abc"), Ok("abc"));
        assert_eq!(parse_bearer(b"Basic abc"), Err(TokenRejection::Malformed));
        assert_eq!(parse_bearer(b"Bearer"), Err(TokenRejection::Malformed));
        assert_eq!(parse_bearer(b"Bearer "), Err(TokenRejection::Malformed));
        assert_eq!(parse_bearer(b"Bearer a b"), Err(TokenRejection::Malformed));
        assert_eq!(parse_bearer(b"Bearer \xff\xfe"), Err(TokenRejection::Malformed));
        assert_eq!(parse_bearer(b"Bearer user*"), Err(TokenRejection::Malformed));
        let long = format!("Bearer {}", "a".repeat(MAX_TOKEN_BYTES + 1));
        assert_eq!(parse_bearer(long.as_bytes()), Err(TokenRejection::Oversized));
    }

    proptest! {
        #[test]
        fn arbitrary_header_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            if let Ok(token) = parse_bearer(&bytes) {
                prop_assert!(!token.is_empty());
                prop_assert!(token.is_ascii());
            }
        }

        #[test]
        fn only_exact_ids_pass(s in ".{0,64}") {
            if is_opaque_id(&s) {
                prop_assert_eq!(s.len(), OPAQUE_ID_CHARS);
                prop_assert!(!s.contains(['*', '?', '[', ']', ':', '\\']));
            }
        }
    }
}
