//! The one error type of the HTTP API and its JSON shape:
//! `{"error": {"code", "message", ...extra}}` (see `API.md`).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// Everything a request can fail with; each variant has one status and one
/// stable code.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ApiError {
    /// 400 `invalid_json`.
    #[error("the body is not valid JSON: {0}")]
    InvalidJson(String),
    /// 400 `invalid_body`.
    #[error("the body does not have the expected shape")]
    InvalidBody(String),
    /// 400 `invalid_query`.
    #[error("invalid query: {0}")]
    InvalidQuery(String),
    /// 413 `body_too_large`.
    #[error("the request body exceeds 65536 bytes")]
    BodyTooLarge,
    /// 408 `request_timeout`: the body did not arrive in time.
    #[error("the request body did not arrive in time")]
    RequestTimeout,
    /// 415 `unsupported_media_type`.
    #[error("the body must be sent with Content-Type: application/json")]
    UnsupportedMediaType,
    /// 422 `invalid_field`.
    #[error("invalid {field}: {message}")]
    InvalidField {
        /// The field's name in the request body.
        field: &'static str,
        /// Why.
        message: String,
    },
    /// 401 `unauthorized`.
    #[error("a valid bearer token is required")]
    Unauthorized,
    /// 401 `invalid_credentials`.
    #[error("unknown email or wrong password")]
    InvalidCredentials,
    /// 401 `invalid_refresh_token`.
    #[error("the refresh token is unknown, used up, revoked or expired: log in again")]
    InvalidRefreshToken,
    /// 404 `not_found`.
    #[error("not found")]
    NotFound,
    /// 405 `method_not_allowed`.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// 409 `email_taken`.
    #[error("this email address is already registered")]
    EmailTaken,
    /// 409 `revision_conflict`.
    #[error("the entry is at revision {current_revision}")]
    RevisionConflict {
        /// The entry's revision now.
        current_revision: u64,
    },
    /// 410 `entry_deleted`.
    #[error("the entry was deleted")]
    EntryDeleted,
    /// 429 `rate_limited`: too many attempts (failed logins, registrations)
    /// from this client or for this account; `Retry-After` says when to
    /// try again.
    #[error("too many attempts, retry after {retry_after_secs} s")]
    RateLimited {
        /// Seconds to wait.
        retry_after_secs: u64,
    },
    /// 503 `busy`: every password-hashing slot stayed taken; `Retry-After`
    /// says when to try again.
    #[error("the server is busy, retry after {retry_after_secs} s")]
    Busy {
        /// Seconds to wait.
        retry_after_secs: u64,
    },
    /// 503 `not_caught_up`.
    #[error("the projections did not reach the requested position in time")]
    NotCaughtUp {
        /// How far they got.
        position: u64,
    },
    /// 503 `unavailable`.
    #[error("the service is unavailable, try again")]
    Unavailable,
    /// 500 `internal`.
    #[error("internal error")]
    Internal,
}

impl ApiError {
    /// The HTTP status.
    pub(crate) fn status(&self) -> StatusCode {
        use ApiError::*;
        match self {
            InvalidJson(_) | InvalidBody(_) | InvalidQuery(_) => StatusCode::BAD_REQUEST,
            BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            InvalidField { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Unauthorized | InvalidCredentials | InvalidRefreshToken => StatusCode::UNAUTHORIZED,
            NotFound => StatusCode::NOT_FOUND,
            MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            EmailTaken | RevisionConflict { .. } => StatusCode::CONFLICT,
            EntryDeleted => StatusCode::GONE,
            RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Busy { .. } | NotCaughtUp { .. } | Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable code.
    pub(crate) fn code(&self) -> &'static str {
        use ApiError::*;
        match self {
            InvalidJson(_) => "invalid_json",
            InvalidBody(_) => "invalid_body",
            InvalidQuery(_) => "invalid_query",
            BodyTooLarge => "body_too_large",
            RequestTimeout => "request_timeout",
            UnsupportedMediaType => "unsupported_media_type",
            InvalidField { .. } => "invalid_field",
            Unauthorized => "unauthorized",
            InvalidCredentials => "invalid_credentials",
            InvalidRefreshToken => "invalid_refresh_token",
            NotFound => "not_found",
            MethodNotAllowed => "method_not_allowed",
            EmailTaken => "email_taken",
            RevisionConflict { .. } => "revision_conflict",
            EntryDeleted => "entry_deleted",
            RateLimited { .. } => "rate_limited",
            Busy { .. } => "busy",
            NotCaughtUp { .. } => "not_caught_up",
            Unavailable => "unavailable",
            Internal => "internal",
        }
    }

    /// The JSON body.
    pub(crate) fn body(&self) -> ErrorBody {
        let mut detail = ErrorDetail {
            code: self.code().to_owned(),
            message: self.to_string(),
            detail: None,
            field: None,
            current_revision: None,
            position: None,
            retry_after_secs: None,
        };
        match self {
            ApiError::InvalidBody(d) => detail.detail = Some(d.clone()),
            ApiError::InvalidField { field, .. } => detail.field = Some((*field).to_owned()),
            ApiError::RevisionConflict { current_revision } => {
                detail.current_revision = Some(*current_revision)
            }
            ApiError::NotCaughtUp { position } => detail.position = Some(*position),
            ApiError::RateLimited { retry_after_secs } | ApiError::Busy { retry_after_secs } => {
                detail.retry_after_secs = Some(*retry_after_secs)
            }
            _ => {}
        }
        ErrorBody { error: detail }
    }

    /// A 422 for `field`.
    pub(crate) fn field(field: &'static str, message: impl Into<String>) -> Self {
        ApiError::InvalidField {
            field,
            message: message.into(),
        }
    }

    /// A store failure: logged (without payloads), answered as 503.
    pub(crate) fn store(e: impl std::fmt::Display) -> Self {
        tracing::error!(error = %e, "store operation failed");
        ApiError::Unavailable
    }

    /// A bug: logged, answered as 500 without internals.
    pub(crate) fn internal(e: impl std::fmt::Display) -> Self {
        tracing::error!(error = %e, "internal error");
        ApiError::Internal
    }
}

impl From<metachat_core::progress::NotCaughtUp> for ApiError {
    fn from(e: metachat_core::progress::NotCaughtUp) -> Self {
        ApiError::NotCaughtUp {
            position: e.position,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut res = (status, axum::Json(self.body())).into_response();
        match self {
            ApiError::Unauthorized => {
                res.headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            ApiError::RateLimited { retry_after_secs } | ApiError::Busy { retry_after_secs } => {
                res.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
            }
            _ => {}
        }
        res
    }
}

/// The error body: `{"error": {...}}`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ErrorBody {
    /// What went wrong.
    pub(crate) error: ErrorDetail,
}

/// What went wrong: a stable code, a human message and, for some codes, one
/// more field.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ErrorDetail {
    /// The stable code, e.g. `invalid_field`.
    #[schema(example = "invalid_field")]
    pub(crate) code: String,
    /// Human-readable text; never carries internals.
    pub(crate) message: String,
    /// `invalid_body`: what did not fit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) detail: Option<String>,
    /// `invalid_field`: the field's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) field: Option<String>,
    /// `revision_conflict`: the entry's current revision.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) current_revision: Option<u64>,
    /// `not_caught_up`: the position the projections reached.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) position: Option<u64>,
    /// `rate_limited`, `busy`: seconds to wait (as `Retry-After` says).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) retry_after_secs: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_has_its_status_and_code() {
        let cases = [
            (ApiError::InvalidJson("x".into()), 400, "invalid_json"),
            (ApiError::InvalidBody("x".into()), 400, "invalid_body"),
            (ApiError::InvalidQuery("x".into()), 400, "invalid_query"),
            (ApiError::BodyTooLarge, 413, "body_too_large"),
            (ApiError::RequestTimeout, 408, "request_timeout"),
            (
                ApiError::UnsupportedMediaType,
                415,
                "unsupported_media_type",
            ),
            (ApiError::field("text", "empty"), 422, "invalid_field"),
            (ApiError::Unauthorized, 401, "unauthorized"),
            (ApiError::InvalidCredentials, 401, "invalid_credentials"),
            (ApiError::InvalidRefreshToken, 401, "invalid_refresh_token"),
            (ApiError::NotFound, 404, "not_found"),
            (ApiError::MethodNotAllowed, 405, "method_not_allowed"),
            (ApiError::EmailTaken, 409, "email_taken"),
            (
                ApiError::RevisionConflict {
                    current_revision: 3,
                },
                409,
                "revision_conflict",
            ),
            (ApiError::EntryDeleted, 410, "entry_deleted"),
            (
                ApiError::RateLimited {
                    retry_after_secs: 3,
                },
                429,
                "rate_limited",
            ),
            (
                ApiError::Busy {
                    retry_after_secs: 2,
                },
                503,
                "busy",
            ),
            (ApiError::NotCaughtUp { position: 7 }, 503, "not_caught_up"),
            (ApiError::Unavailable, 503, "unavailable"),
            (ApiError::Internal, 500, "internal"),
        ];
        for (e, status, code) in cases {
            assert_eq!(e.status().as_u16(), status, "{code}");
            assert_eq!(e.code(), code);
            let json = serde_json::to_value(e.body()).unwrap_or_default();
            assert_eq!(json["error"]["code"], code);
            assert!(json["error"]["message"].is_string());
        }
    }

    #[test]
    fn extras_are_carried() {
        let v = serde_json::to_value(
            ApiError::RevisionConflict {
                current_revision: 4,
            }
            .body(),
        )
        .unwrap_or_default();
        assert_eq!(v["error"]["current_revision"], 4);
        let v = serde_json::to_value(ApiError::field("email", "bad").body()).unwrap_or_default();
        assert_eq!(v["error"]["field"], "email");
        let v =
            serde_json::to_value(ApiError::NotCaughtUp { position: 9 }.body()).unwrap_or_default();
        assert_eq!(v["error"]["position"], 9);
        let v = serde_json::to_value(ApiError::NotFound.body()).unwrap_or_default();
        assert!(v["error"].get("field").is_none());
    }

    #[test]
    fn unauthorized_carries_the_challenge() {
        let res = ApiError::Unauthorized.into_response();
        assert_eq!(res.headers()[header::WWW_AUTHENTICATE], "Bearer");
    }

    #[test]
    fn refusals_carry_retry_after() {
        for e in [
            ApiError::RateLimited {
                retry_after_secs: 7,
            },
            ApiError::Busy {
                retry_after_secs: 7,
            },
        ] {
            let body = serde_json::to_value(e.body()).unwrap_or_default();
            assert_eq!(body["error"]["retry_after_secs"], 7);
            let res = e.into_response();
            assert_eq!(res.headers()[header::RETRY_AFTER], "7");
        }
        let res = ApiError::NotFound.into_response();
        assert!(res.headers().get(header::RETRY_AFTER).is_none());
    }
}
