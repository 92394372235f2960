//! Every way a request can fail, and the JSON each failure becomes on the wire.
//!
//! Handlers return [`ApiError`]; its `IntoResponse` is the only place that decides status codes,
//! so the protocol's error shapes (`invalid_token` with a reason, `store_unavailable`,
//! `unsupported`, ...) cannot drift between strategies.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::jwt::SignError;
use crate::store::StoreError;
use crate::token::TokenRejection;
use crate::users::{HashingBusy, LoginRaced};

/// What a strategy operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("invalid token: {}", .0.as_str())]
    Token(TokenRejection),
    #[error("store unavailable: {0}")]
    Store(#[from] StoreError),
    #[error("operation not supported by this strategy")]
    Unsupported,
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<SignError> for AuthError {
    fn from(e: SignError) -> Self {
        match e {
            // A verify-only instance cannot issue: the operation is not one it performs.
            SignError::VerifyOnly => Self::Unsupported,
            SignError::Failed(message) => Self::Internal(message),
        }
    }
}

impl From<TokenRejection> for AuthError {
    fn from(r: TokenRejection) -> Self {
        Self::Token(r)
    }
}

/// Everything a handler can answer other than success.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// Unknown user or wrong password; deliberately indistinguishable.
    #[error("invalid credentials")]
    InvalidCredentials,
    /// A correct password, but the account changed (new roles, a ban, logout-all) while the
    /// login ran, so its token was not handed out; logging in again works.
    #[error("the account changed during the login")]
    AccountChanged,
    /// A correct token but the wrong current password on /password.
    #[error("wrong current password")]
    WrongPassword,
    #[error("admin key missing or wrong")]
    AdminKey,
    #[error("no such user")]
    UnknownUser,
    #[error("bad request: {0}")]
    BadRequest(String),
    /// Every password hashing slot stayed busy: the request did nothing and may be retried.
    #[error("overloaded: {0}")]
    Overloaded(#[from] HashingBusy),
    /// A rejection that axum or hyper produced (404, 405, 413, 415, ...), re-expressed as JSON.
    #[error("{1}")]
    Http(StatusCode, &'static str),
}

impl From<LoginRaced> for ApiError {
    fn from(raced: LoginRaced) -> Self {
        match raced {
            // The password the login checked is no longer the user's: to the client it is a
            // wrong password, and it must not be able to tell the two apart.
            LoginRaced::PasswordChanged => Self::InvalidCredentials,
            LoginRaced::AccountChanged => Self::AccountChanged,
        }
    }
}

impl From<TokenRejection> for ApiError {
    fn from(r: TokenRejection) -> Self {
        Self::Auth(AuthError::Token(r))
    }
}

/// The `WWW-Authenticate` value for a rejected bearer token (RFC 6750 section 3).
const BEARER_INVALID: &str = "Bearer realm=\"authbench\", error=\"invalid_token\"";
/// The `WWW-Authenticate` value when no credentials were sent: no error code (RFC 6750 3.1).
const BEARER_PLAIN: &str = "Bearer realm=\"authbench\"";
/// Seconds an overloaded client is told to wait (`Retry-After`): a hash takes tens of
/// milliseconds, so a slot is usually free well within it.
pub const RETRY_AFTER_SECS: u64 = 1;

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, body, challenge) = match &self {
            Self::Auth(AuthError::Token(reason)) => {
                let challenge = if *reason == TokenRejection::Missing { BEARER_PLAIN } else { BEARER_INVALID };
                (
                    StatusCode::UNAUTHORIZED,
                    json!({"error": "invalid_token", "reason": reason.as_str()}),
                    Some(challenge),
                )
            }
            Self::Auth(AuthError::Store(e)) => {
                tracing::debug!(error = %e, "store unavailable");
                (StatusCode::SERVICE_UNAVAILABLE, json!({"error": "store_unavailable"}), None)
            }
            Self::Auth(AuthError::Unsupported) => (StatusCode::NOT_IMPLEMENTED, json!({"error": "unsupported"}), None),
            Self::Auth(AuthError::Internal(message)) => {
                // Reached only by a bug (e.g. a signing failure); logged, never shown.
                tracing::error!(%message, "internal error");
                (StatusCode::INTERNAL_SERVER_ERROR, json!({"error": "internal"}), None)
            }
            Self::InvalidCredentials => {
                (StatusCode::UNAUTHORIZED, json!({"error": "invalid_credentials"}), Some(BEARER_PLAIN))
            }
            Self::AccountChanged => (StatusCode::CONFLICT, json!({"error": "account_changed"}), None),
            Self::WrongPassword => (StatusCode::FORBIDDEN, json!({"error": "wrong_password"}), None),
            Self::AdminKey => (StatusCode::FORBIDDEN, json!({"error": "forbidden"}), None),
            Self::UnknownUser => (StatusCode::NOT_FOUND, json!({"error": "unknown_user"}), None),
            Self::BadRequest(message) => {
                (StatusCode::BAD_REQUEST, json!({"error": "bad_request", "message": message}), None)
            }
            Self::Overloaded(_) => (StatusCode::SERVICE_UNAVAILABLE, json!({"error": "overloaded"}), None),
            Self::Http(status, code) => (*status, json!({"error": code}), None),
        };
        let mut response = (status, Json(body)).into_response();
        if let Some(challenge) = challenge {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
        }
        if matches!(self, Self::Overloaded(_)) {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
        }
        response
    }
}

/// The protocol's error code for a status that axum or hyper produced without a JSON body.
pub fn code_for_status(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::UNPROCESSABLE_ENTITY => "unprocessable_entity",
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => "headers_too_large",
        StatusCode::REQUEST_TIMEOUT => "request_timeout",
        s if s.is_server_error() => "internal",
        _ => "error",
    }
}
