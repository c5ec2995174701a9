//! Users, sessions and the caller's own account: register, log in, log
//! out, read and erase oneself.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use metachat_core::store::EventReader;
use metachat_domain::{Email, UserDirectory, UserError, UserId, UsersError};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{wait_read, written, written_at, ReadQuery};
use crate::auth::{hash_password, verify_password, AuthUser};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, ApiQuery, ClientIp};
use crate::state::AppState;
use crate::token::rfc3339;
use metachat_core::progress::reported;

/// Shortest password, in bytes.
const MIN_PASSWORD: usize = 8;
/// Longest password, in bytes.
const MAX_PASSWORD: usize = 256;

/// `POST /v1/users`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Register {
    /// A valid address of at most 254 bytes; compared case-insensitively.
    #[schema(example = "ada@example.com")]
    email: String,
    /// 8 to 256 bytes.
    #[schema(example = "correct horse battery")]
    password: String,
    /// 1 to 64 characters after trimming.
    #[schema(example = "Ada")]
    display_name: String,
}

/// A registered user.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Registered {
    /// The new user's id.
    #[schema(value_type = String, format = Uuid)]
    user_id: UserId,
    /// Log position of the registration.
    position: u64,
}

/// `POST /v1/sessions`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Login {
    /// The registered address.
    #[schema(example = "ada@example.com")]
    email: String,
    /// The password.
    #[schema(example = "correct horse battery")]
    password: String,
}

/// `POST /v1/sessions/refresh`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Refresh {
    /// The `refresh_token` of the last login or refresh.
    refresh_token: String,
}

/// A session's tokens.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Session {
    /// The access token: send as `Authorization: Bearer <token>`. A signed
    /// PASETO `v4.public` token, valid until `expires_at`.
    token: String,
    /// Always `Bearer`.
    #[schema(example = "Bearer")]
    token_type: String,
    /// The access token's expiry, RFC 3339 UTC.
    expires_at: String,
    /// Trade it at `POST /v1/sessions/refresh` for a new pair before the
    /// session ends; it can be used once.
    refresh_token: String,
    /// The session's end (the refresh token's expiry), RFC 3339 UTC.
    refresh_expires_at: String,
    /// Whose token it is.
    #[schema(value_type = String, format = Uuid)]
    user_id: UserId,
}

impl Session {
    fn of(issued: crate::auth::Issued, user_id: UserId) -> Self {
        Session {
            token: issued.token,
            token_type: "Bearer".into(),
            expires_at: rfc3339(issued.expires_at),
            refresh_token: issued.refresh_token,
            refresh_expires_at: rfc3339(issued.refresh_expires_at),
            user_id,
        }
    }
}

/// The caller's account.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Me {
    /// The caller's id.
    #[schema(value_type = String, format = Uuid)]
    user_id: UserId,
    /// Their address as registered.
    email: String,
    /// Their display name.
    display_name: String,
    /// How far the user directory has caught up.
    position: u64,
}

/// A write's position.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Position {
    /// Log position of the write's last event.
    pub(crate) position: u64,
}

fn check_password(password: &str) -> Result<(), ApiError> {
    if password.len() < MIN_PASSWORD || password.len() > MAX_PASSWORD {
        return Err(ApiError::field(
            "password",
            format!("must be {MIN_PASSWORD} to {MAX_PASSWORD} bytes"),
        ));
    }
    Ok(())
}

fn user_error(e: UsersError) -> ApiError {
    match e {
        UsersError::EmailTaken => ApiError::EmailTaken,
        UsersError::User(UserError::InvalidEmail(e)) => ApiError::field("email", e.to_string()),
        UsersError::User(UserError::InvalidDisplayName(e)) => {
            ApiError::field("display_name", e.to_string())
        }
        UsersError::User(UserError::Erased) => ApiError::Unauthorized,
        UsersError::User(e) => ApiError::internal(e),
        UsersError::Store(e) => ApiError::store(e),
        other => ApiError::internal(other),
    }
}

/// Registers a user.
#[utoipa::path(post, path = "/v1/users", tag = "users", request_body = Register,
    responses(
        (status = 201, description = "Registered", body = Registered,
            headers(("X-MetaChat-Position" = u64, description = "Log position of the write"))),
        (status = 400, description = "`invalid_json` or `invalid_body`", body = ErrorBody),
        (status = 409, description = "`email_taken`", body = ErrorBody),
        (status = 413, description = "`body_too_large`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`", body = ErrorBody),
        (status = 408, description = "`request_timeout`: the body did not arrive in time", body = ErrorBody),
        (status = 422, description = "`invalid_field`", body = ErrorBody),
        (status = 429, description = "`rate_limited`: this client's registration quota is used up",
            body = ErrorBody, headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, description = "`busy` (with `Retry-After`) or `unavailable`", body = ErrorBody),
    ))]
pub(crate) async fn register(
    State(state): State<AppState>,
    ClientIp(client): ClientIp,
    ApiJson(body): ApiJson<Register>,
) -> Result<Response, ApiError> {
    state.inner.limits.register.check(client)?;
    Email::parse(&body.email).map_err(|e| ApiError::field("email", e.to_string()))?;
    check_password(&body.password)?;
    metachat_domain::user::validate_display_name(&body.display_name)
        .map_err(|e| ApiError::field("display_name", e.to_string()))?;
    let hash = hash_password(&state.inner.limits.hashing, body.password).await?;
    let user_id = UserId::new();
    let done = state
        .inner
        .users()?
        .register(
            user_id,
            &body.email,
            &hash,
            &body.display_name,
            crate::correlation::metadata(),
        )
        .await
        .map_err(user_error)?;
    let (position, _) = written_at(&state, &done).await?;
    Ok(written(
        StatusCode::CREATED,
        position,
        Registered { user_id, position },
    ))
}

/// Logs in: a bearer token for the user.
#[utoipa::path(post, path = "/v1/sessions", tag = "sessions", request_body = Login,
    responses(
        (status = 201, description = "Logged in", body = Session),
        (status = 400, description = "`invalid_json` or `invalid_body`", body = ErrorBody),
        (status = 401, description = "`invalid_credentials`: unknown email or wrong password", body = ErrorBody),
        (status = 408, description = "`request_timeout`: the body did not arrive in time", body = ErrorBody),
        (status = 413, description = "`body_too_large`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`", body = ErrorBody),
        (status = 429, description = "`rate_limited`: too many failed logins for this account or from this client (the right password too is refused until `Retry-After`)",
            body = ErrorBody, headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, description = "`busy` (with `Retry-After`) or `unavailable`", body = ErrorBody),
    ))]
pub(crate) async fn login(
    State(state): State<AppState>,
    ClientIp(client): ClientIp,
    ApiJson(body): ApiJson<Login>,
) -> Result<(StatusCode, Json<Session>), ApiError> {
    let attempt = state
        .inner
        .limits
        .login
        .begin(crate::limits::account_key(&body.email), client)?;
    let found = if body.password.len() > MAX_PASSWORD {
        None
    } else {
        state
            .inner
            .users()?
            .credentials(&body.email)
            .await
            .map_err(user_error)?
    };
    let (user_id, hash) = match found {
        Some(c) => (Some(c.user_id), c.password_hash),
        None => (None, state.inner.dummy_hash.to_string()),
    };
    let ok = verify_password(&state.inner.limits.hashing, body.password, hash).await?;
    let Some(user_id) = user_id.filter(|_| ok) else {
        attempt.failed();
        return Err(ApiError::InvalidCredentials);
    };
    attempt.succeeded();
    let issued = state.inner.tokens()?.issue(user_id).await?;
    Ok((StatusCode::CREATED, Json(Session::of(issued, user_id))))
}

/// Trades a refresh token for a new access token and a new refresh token
/// (the one given is used up).
#[utoipa::path(post, path = "/v1/sessions/refresh", tag = "sessions", request_body = Refresh,
    responses(
        (status = 201, description = "Refreshed", body = Session),
        (status = 400, description = "`invalid_json` or `invalid_body`", body = ErrorBody),
        (status = 401, description = "`invalid_refresh_token`: unknown, used up, revoked or expired", body = ErrorBody),
        (status = 408, description = "`request_timeout`: the body did not arrive in time", body = ErrorBody),
        (status = 413, description = "`body_too_large`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`", body = ErrorBody),
        (status = 503, description = "`unavailable`", body = ErrorBody),
    ))]
pub(crate) async fn refresh(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<Refresh>,
) -> Result<(StatusCode, Json<Session>), ApiError> {
    let issued = state.inner.tokens()?.refresh(&body.refresh_token).await?;
    let user_id = issued.user_id;
    Ok((StatusCode::CREATED, Json(Session::of(issued, user_id))))
}

/// Logs out: ends the session of the token used (its access and refresh
/// tokens). The other services learn it from the bus; the answer comes
/// once the revocation is there (see `revocations.rs`).
#[utoipa::path(delete, path = "/v1/sessions/current", tag = "sessions",
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Revoked"),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 503, description = "`unavailable`", body = ErrorBody),
    ))]
pub(crate) async fn logout(
    State(state): State<AppState>,
    auth: AuthUser,
) -> Result<StatusCode, ApiError> {
    // The event first: a failure leaves the session live and the logout
    // can be retried (the event's id is the session's, so it is recorded
    // once).
    metachat_domain::session::record_revocation(
        &*state.inner.store,
        auth.user_id,
        auth.session_id,
        // No token of the session outlives this: the newest was issued
        // at the latest now.
        crate::token::now_secs() + state.inner.tokens()?.ttl().as_secs(),
        crate::correlation::metadata(),
    )
    .await
    .map_err(ApiError::store)?;
    state
        .inner
        .tokens()?
        .revoke(auth.user_id, auth.session_id)
        .await?;
    if let Some(revocations) = &state.inner.revocations {
        if !revocations
            .wait_for(auth.session_id, crate::state::REVOCATION_WAIT)
            .await
        {
            tracing::warn!(
                "the logout's revocation did not come back from Kafka in time; the other \
                 services refuse the session once it does"
            );
        }
    }
    Ok(StatusCode::NO_CONTENT)
}

/// The caller's account.
#[utoipa::path(get, path = "/v1/me", tag = "users",
    security(("bearer" = [])),
    params(ReadQuery),
    responses(
        (status = 200, description = "The caller", body = Me),
        (status = 400, description = "`invalid_query`", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 503, description = "`not_caught_up` or `unavailable`", body = ErrorBody),
    ))]
pub(crate) async fn me(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiQuery(q): ApiQuery<ReadQuery>,
) -> Result<Json<Me>, ApiError> {
    let position = wait_read(
        &state,
        auth.user_id,
        &[UserDirectory::NAME],
        q.min_position,
        q.wait_ms,
    )
    .await?;
    let Some(personal) = state
        .inner
        .users()?
        .personal(auth.user_id)
        .await
        .map_err(user_error)?
    else {
        return Err(ApiError::Unauthorized);
    };
    Ok(Json(Me {
        user_id: auth.user_id,
        email: personal.email,
        display_name: personal.display_name,
        position,
    }))
}

/// Erases the caller's account: the key that sealed their diary text is
/// destroyed, every token revoked, and the projections drop their entries,
/// mood and matches.
#[utoipa::path(delete, path = "/v1/me", tag = "users",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Erased", body = Position,
            headers(("X-MetaChat-Position" = u64, description = "Log position of the write"))),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 503, description = "`unavailable`", body = ErrorBody),
    ))]
pub(crate) async fn erase(
    State(state): State<AppState>,
    auth: AuthUser,
) -> Result<Response, ApiError> {
    state
        .inner
        .users()?
        .erase(auth.user_id, crate::correlation::metadata())
        .await
        .map_err(user_error)?;
    state
        .inner
        .vault
        .shred(auth.user_id)
        .await
        .map_err(ApiError::store)?;
    state.inner.tokens()?.revoke_all(auth.user_id).await?;
    // The other services refuse the user's tokens once they read
    // `UserErased` from the bus: answer once it is there.
    if let Some(revocations) = &state.inner.revocations {
        if !revocations
            .wait_for_erasure(auth.user_id, crate::state::REVOCATION_WAIT)
            .await
        {
            tracing::warn!(
                "the erasure did not come back from Kafka in time; the other services \
                 refuse the user's tokens once it does"
            );
        }
    }
    let head = state
        .inner
        .store
        .next_position()
        .await
        .map_err(ApiError::store)?;
    let position = reported(head);
    Ok(written(StatusCode::OK, position, Position { position }))
}
