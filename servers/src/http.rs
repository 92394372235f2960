//! The protocol (version 1): routes, handlers, the authentication extractor and the middleware
//! that counts every request and turns every non-JSON rejection into a JSON one, and the one
//! that reads every request body within the body read timeout.
//!
//! Handlers are generic over the strategy and monomorphised once per strategy at start, so a
//! request pays no dynamic dispatch and every strategy runs exactly the same plumbing.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, HttpBody};
use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, MatchedPath, Path, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::json;
use subtle::ConstantTimeEq;

use crate::error::{ApiError, AuthError, code_for_status};
use crate::metrics::Metrics;
use crate::strategy::{AuthStrategy, Issued, Principal, UserRevocation};
use crate::users::{AccountChange, HashError, MAX_PASSWORD_BYTES, UserDirectory, validate_roles};

/// Largest request body accepted; every protocol body is a few hundred bytes.
pub const MAX_BODY_BYTES: usize = 16 * 1024;
/// Time a client has to send a whole request body after its head, unless configured.
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Shared state of one server: the strategy, the users, the admin key digest, the counters.
#[derive(Debug)]
pub struct AppState<S> {
    pub strategy: S,
    pub users: Arc<UserDirectory>,
    pub metrics: Arc<Metrics>,
    /// SHA-256 of the admin key: comparing digests in constant time hides the key's length too.
    admin_key_digest: [u8; 32],
    /// Test instrument: acknowledge revocations at once, apply them this much later.
    pub revocation_delay: Option<Duration>,
    /// False on a verify-only instance (public key alone): /login and /refresh answer 501.
    pub issues: bool,
    /// Deadline for a whole request body, from the end of its head: hyper bounds only the head,
    /// and a body that never comes would otherwise hold its connection (and permit) forever.
    pub body_read_timeout: Duration,
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

impl<S: AuthStrategy> AppState<S> {
    pub fn new(strategy: S, users: Arc<UserDirectory>, metrics: Arc<Metrics>, admin_key: &str) -> Self {
        Self {
            strategy,
            users,
            metrics,
            admin_key_digest: sha256(admin_key.as_bytes()),
            revocation_delay: None,
            issues: true,
            body_read_timeout: BODY_READ_TIMEOUT,
        }
    }

    fn require_admin(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let given = headers.get("x-admin-key").map(HeaderValue::as_bytes).unwrap_or_default();
        if bool::from(sha256(given).ct_eq(&self.admin_key_digest)) { Ok(()) } else { Err(ApiError::AdminKey) }
    }
}

/// Performs a revocation now, or, with the revocation-delay test instrument, acknowledges it
/// now and performs it later (so the harness can check it measures a known window).
async fn revoke<S, F, Fut>(state: &Arc<AppState<S>>, op: F) -> Result<(), AuthError>
where
    S: AuthStrategy,
    F: FnOnce(Arc<AppState<S>>) -> Fut + Send + 'static,
    Fut: Future<Output = Result<(), AuthError>> + Send,
{
    match state.revocation_delay {
        None => op(state.clone()).await,
        Some(delay) => {
            let state = state.clone();
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                if let Err(e) = op(state).await {
                    tracing::warn!(error = %e, "delayed revocation failed");
                }
            });
            Ok(())
        }
    }
}

/// The protocol router for one strategy.
pub fn router<S: AuthStrategy>(state: Arc<AppState<S>>) -> Router {
    Router::new()
        .route("/login", post(login::<S>))
        .route("/me", get(me))
        .route("/logout", post(logout::<S>))
        .route("/logout-all", post(logout_all::<S>))
        .route("/refresh", post(refresh::<S>))
        .route("/password", post(password::<S>))
        .route("/admin/users/{username}/revoke", post(admin_revoke::<S>))
        .route("/admin/users/{username}/roles", put(admin_roles::<S>))
        .route("/admin/revoke-all", post(admin_revoke_all::<S>))
        .route("/capabilities", get(capabilities::<S>))
        .route("/healthz", get(healthz::<S>))
        .route("/metrics", get(metrics::<S>))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), read_body::<S>))
        .layer(middleware::from_fn_with_state(state.clone(), observe::<S>))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// The route template as a static label; anything unmatched is one label, whatever its path.
fn route_label(matched: Option<&MatchedPath>) -> &'static str {
    match matched.map(MatchedPath::as_str) {
        Some("/login") => "/login",
        Some("/me") => "/me",
        Some("/logout") => "/logout",
        Some("/logout-all") => "/logout-all",
        Some("/refresh") => "/refresh",
        Some("/password") => "/password",
        Some("/admin/users/{username}/revoke") => "/admin/users/{username}/revoke",
        Some("/admin/users/{username}/roles") => "/admin/users/{username}/roles",
        Some("/admin/revoke-all") => "/admin/revoke-all",
        Some("/capabilities") => "/capabilities",
        Some("/healthz") => "/healthz",
        Some("/metrics") => "/metrics",
        _ => "unmatched",
    }
}

/// Counts the request and re-expresses any non-JSON error (axum's 404/405/413/415/...) as JSON.
async fn observe<S: AuthStrategy>(
    State(state): State<Arc<AppState<S>>>,
    matched: Option<MatchedPath>,
    request: Request,
    next: Next,
) -> Response {
    let route = route_label(matched.as_ref());
    let mut response = next.run(request).await;
    let status = response.status();
    let is_json =
        response.headers().get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if (status.is_client_error() || status.is_server_error()) && !is_json {
        let old_headers = std::mem::take(response.headers_mut());
        response = ApiError::Http(status, code_for_status(status)).into_response();
        for (name, value) in &old_headers {
            if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
                response.headers_mut().insert(name.clone(), value.clone());
            }
        }
    }
    state.metrics.request(route, status.as_u16());
    response
}

/// Reads the whole request body within the body read timeout before any handler runs; a
/// body that does not arrive in time gets 408 and the connection is closed, which frees its
/// connection permit. Buffering costs nothing extra: every protocol body is read whole anyway,
/// and bodies are capped at [`MAX_BODY_BYTES`]. Requests without a body pass straight through.
async fn read_body<S: AuthStrategy>(State(state): State<Arc<AppState<S>>>, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    if body.is_end_stream() {
        return next.run(Request::from_parts(parts, body)).await;
    }
    match tokio::time::timeout(state.body_read_timeout, axum::body::to_bytes(body, MAX_BODY_BYTES)).await {
        Ok(Ok(bytes)) => next.run(Request::from_parts(parts, Body::from(bytes))).await,
        Ok(Err(e)) => body_error(&e).into_response(),
        Err(_) => {
            let mut response = ApiError::Http(StatusCode::REQUEST_TIMEOUT, "request_timeout").into_response();
            // The unread rest of the body makes the connection unusable: say so, and hyper closes it.
            response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
            response
        }
    }
}

async fn not_found() -> ApiError {
    ApiError::Http(StatusCode::NOT_FOUND, "not_found")
}

/// A request whose token the strategy accepted.
#[derive(Debug)]
pub struct Authenticated(pub Principal);

impl<S: AuthStrategy> FromRequestParts<Arc<AppState<S>>> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState<S>>) -> Result<Self, ApiError> {
        match state.strategy.authenticate_request(&parts.headers).await {
            Ok(principal) => {
                state.metrics.auth_ok();
                Ok(Self(principal))
            }
            Err(e) => {
                if let AuthError::Token(reason) = &e {
                    state.metrics.auth_rejected(*reason);
                }
                Err(e.into())
            }
        }
    }
}

/// A JSON object body whose rejections follow the protocol: 400 for anything malformed
/// (syntax or shape, or a body that is not an object), 413 when too large, 415 without
/// `Content-Type: application/json`.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, St: Send + Sync> FromRequest<St> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &St) -> Result<Self, ApiError> {
        let (parts, body) = request.into_parts();
        // Already in memory: `read_body` read it.
        let bytes = axum::body::to_bytes(body, MAX_BODY_BYTES).await.map_err(|e| body_error(&e))?;
        // serde reads a struct from a JSON array too (its sequence form: `["user1","pw"]` is a
        // login), so the object is checked here, for every body of the protocol.
        let is_object = bytes.iter().find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r')) == Some(&b'{');
        match Json::<T>::from_request(Request::from_parts(parts, Body::from(bytes)), state).await {
            Ok(_) if !is_object => Err(ApiError::BadRequest("the body must be a JSON object".to_owned())),
            Ok(Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(json_rejection(&rejection)),
        }
    }
}

/// The answer to a body that could not be read: 413 past [`MAX_BODY_BYTES`], else 400 (the
/// client broke off, or sent a malformed chunked body).
fn body_error(e: &axum::Error) -> ApiError {
    if std::error::Error::source(e).is_some_and(|s| s.is::<http_body_util::LengthLimitError>()) {
        ApiError::Http(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
    } else {
        ApiError::BadRequest("the request body could not be read".to_owned())
    }
}

fn json_rejection(rejection: &JsonRejection) -> ApiError {
    match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::Http(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            ApiError::Http(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
        }
        _ => ApiError::BadRequest(rejection.body_text()),
    }
}

#[derive(Debug, Deserialize)]
struct LoginBody {
    username: String,
    password: String,
    #[serde(default)]
    device: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RefreshBody {
    refresh_token: String,
}

#[derive(Debug, Deserialize)]
struct PasswordBody {
    current_password: String,
    new_password: String,
}

#[derive(Debug, Deserialize)]
struct RolesBody {
    roles: Vec<String>,
}

/// The body of `/login` and `/refresh`.
#[derive(Debug, serde::Serialize)]
struct TokenBody {
    access_token: String,
    token_type: &'static str,
    expires_in: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<String>,
}

fn token_response(issued: Issued) -> Response {
    let body = TokenBody {
        access_token: issued.access_token,
        token_type: "Bearer",
        expires_in: issued.expires_in,
        refresh_token: issued.refresh_token,
    };
    // RFC 6749 5.1: responses carrying tokens must not be cached.
    ([(header::CACHE_CONTROL, "no-store")], Json(body)).into_response()
}

fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

/// Treats "this strategy cannot revoke" as success, for operations whose main effect (a stored
/// password, new roles) happened anyway; `/capabilities` says the tokens were not touched.
fn unsupported_is_ok(result: Result<(), AuthError>) -> Result<(), ApiError> {
    match result {
        Ok(()) | Err(AuthError::Unsupported) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

async fn login<S: AuthStrategy>(
    State(state): State<Arc<AppState<S>>>,
    JsonBody(body): JsonBody<LoginBody>,
) -> Result<Response, ApiError> {
    if !state.issues {
        return Err(AuthError::Unsupported.into());
    }
    let user = state.users.verify(&body.username, &body.password).await?.ok_or(ApiError::InvalidCredentials)?;
    let minting = Instant::now();
    let issued = state.strategy.issue(&user.username, &user.roles, body.device.as_deref()).await?;
    let mint = minting.elapsed();
    // Only now that the token is stored may it be handed out: a change of the user that began
    // since the password check (or is still running) refuses it, and one that begins later
    // revokes it (see `users`). A refused token never leaves the server; it expires unused.
    state.users.confirm(&user)?;
    let mut response = token_response(issued);
    let headers = response.headers_mut();
    // Lets the login scenario report password hashing apart from token minting.
    let timing =
        format!("argon2;dur={:.3}, mint;dur={:.4}", user.argon2_time.as_secs_f64() * 1e3, mint.as_secs_f64() * 1e3);
    if let Ok(value) = HeaderValue::from_str(&timing) {
        headers.insert("server-timing", value);
    }
    Ok(response)
}

async fn me(Authenticated(mut principal): Authenticated) -> Response {
    // `versioned` hands a busy client a fresh token after checking the old one against Redis.
    let refreshed = principal.refreshed.take().and_then(|t| HeaderValue::from_str(&t).ok());
    let mut response = Json(principal).into_response();
    if let Some(token) = refreshed {
        response.headers_mut().insert(REFRESHED_TOKEN, token);
    }
    response
}

/// The header `versioned` returns a fresh token in.
pub const REFRESHED_TOKEN: &str = "x-refreshed-token";

async fn logout<S: AuthStrategy>(
    State(state): State<Arc<AppState<S>>>,
    Authenticated(principal): Authenticated,
) -> Result<Response, ApiError> {
    revoke(&state, move |st| async move { st.strategy.logout(&principal).await }).await?;
    Ok(no_content())
}

async fn logout_all<S: AuthStrategy>(
    State(state): State<Arc<AppState<S>>>,
    Authenticated(principal): Authenticated,
) -> Result<Response, ApiError> {
    // A design that cannot end a user's tokens answers 501 before anything changes: opening a
    // change would refuse the user's logins in flight (409) for nothing, and a thief holding
    // such a token could keep the victim from logging in by repeating the call.
    if !state.strategy.capabilities().revocation.logout_all {
        return Err(AuthError::Unsupported.into());
    }
    // A token of a user the directory does not know (baseline's) has no logins to race.
    let change = state.users.begin_change(&principal.sub, AccountChange::Tokens);
    revoke(&state, move |st| async move {
        let _change = change;
        st.strategy.revoke_user(&principal.sub, UserRevocation::LogoutAll).await
    })
    .await?;
    Ok(no_content())
}

async fn refresh<S: AuthStrategy>(
    State(state): State<Arc<AppState<S>>>,
    JsonBody(body): JsonBody<RefreshBody>,
) -> Result<Response, ApiError> {
    if !state.issues {
        return Err(AuthError::Unsupported.into());
    }
    let issued = state.strategy.refresh(&body.refresh_token, &state.users).await?;
    Ok(token_response(issued))
}

async fn password<S: AuthStrategy>(
    State(state): State<Arc<AppState<S>>>,
    Authenticated(principal): Authenticated,
    JsonBody(body): JsonBody<PasswordBody>,
) -> Result<Response, ApiError> {
    if !state.strategy.verifies_tokens() {
        return Err(AuthError::Unsupported.into());
    }
    if body.new_password.is_empty() || body.new_password.len() > MAX_PASSWORD_BYTES {
        return Err(ApiError::BadRequest(format!("new_password must be 1 to {MAX_PASSWORD_BYTES} bytes")));
    }
    let checked = state.users.verify(&principal.sub, &body.current_password).await?.ok_or(ApiError::WrongPassword)?;
    // The new hash comes before any change: a change turned away for want of a hashing slot
    // (503) leaves the password and the tokens as they were.
    let hash = state.users.hash_new_password(&body.new_password).await.map_err(|e| match e {
        HashError::Busy(busy) => ApiError::Overloaded(busy),
        HashError::Failed(message) => AuthError::Internal(message).into(),
    })?;
    // Store, then revoke. From the store on, a login with the old password fails its password
    // check, or, if it was past it already, its confirm; the revocation then ends every token
    // stored before. A change made meanwhile with the same current password makes this one's
    // current password wrong.
    let mut change = state.users.begin_password_change(&checked, hash).ok_or(ApiError::WrongPassword)?;
    let sub = principal.sub.clone();
    unsupported_is_ok(
        revoke(&state, move |st| async move {
            let result = st.strategy.revoke_user(&sub, UserRevocation::PasswordChange).await;
            if matches!(&result, Err(e) if !matches!(e, AuthError::Unsupported)) {
                // The client sees an error (503): put the old password back, so that "nothing changed, try
                // again" holds and the retry's current password is still right.
                change.undo();
            }
            drop(change);
            result
        })
        .await,
    )?;
    Ok(no_content())
}

async fn admin_revoke<S: AuthStrategy>(
    State(state): State<Arc<AppState<S>>>,
    headers: HeaderMap,
    Path(username): Path<String>,
) -> Result<Response, ApiError> {
    state.require_admin(&headers)?;
    if !state.users.contains(&username) {
        return Err(ApiError::UnknownUser);
    }
    // As for logout-all: no change opened for a revocation that cannot run.
    if !state.strategy.capabilities().revocation.admin_revoke {
        return Err(AuthError::Unsupported.into());
    }
    let change = state.users.begin_change(&username, AccountChange::Tokens).ok_or(ApiError::UnknownUser)?;
    revoke(&state, move |st| async move {
        let _change = change;
        st.strategy.revoke_user(&username, UserRevocation::AdminRevoke).await
    })
    .await?;
    Ok(no_content())
}

async fn admin_roles<S: AuthStrategy>(
    State(state): State<Arc<AppState<S>>>,
    headers: HeaderMap,
    Path(username): Path<String>,
    JsonBody(body): JsonBody<RolesBody>,
) -> Result<Response, ApiError> {
    state.require_admin(&headers)?;
    if !state.strategy.verifies_tokens() {
        return Err(AuthError::Unsupported.into());
    }
    validate_roles(&body.roles).map_err(ApiError::BadRequest)?;
    let roles: Arc<[String]> = Arc::from(body.roles);
    let change =
        state.users.begin_change(&username, AccountChange::Roles(roles.clone())).ok_or(ApiError::UnknownUser)?;
    revoke(&state, move |st| async move {
        let _change = change;
        st.strategy.roles_changed(&username, &roles).await
    })
    .await?;
    Ok(no_content())
}

async fn admin_revoke_all<S: AuthStrategy>(
    State(state): State<Arc<AppState<S>>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    state.require_admin(&headers)?;
    revoke(&state, move |st| async move { st.strategy.revoke_all().await }).await?;
    Ok(no_content())
}

async fn capabilities<S: AuthStrategy>(State(state): State<Arc<AppState<S>>>) -> Response {
    Json(state.strategy.capabilities()).into_response()
}

async fn healthz<S: AuthStrategy>(State(state): State<Arc<AppState<S>>>) -> Result<Response, ApiError> {
    state.strategy.health().await?;
    Ok(Json(json!({"status": "ok"})).into_response())
}

async fn metrics<S: AuthStrategy>(State(state): State<Arc<AppState<S>>>) -> Response {
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], state.metrics.render())
        .into_response()
}
