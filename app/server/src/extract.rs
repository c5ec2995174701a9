//! Extractors whose rejections are the API's JSON errors: a JSON body
//! ([`ApiJson`]), a query string ([`ApiQuery`]) and an entry id in the path
//! ([`EntryPath`]); and the client's address ([`ClientIp`]).

use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Path, Request};
use axum::http::{header, request::Parts};
use metachat_domain::EntryId;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// How long a handler may take to read a request body, as a request
/// extension (set by the accept loop, `serve.rs`); without it a body is
/// read without a deadline.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BodyTimeout(pub(crate) Duration);

/// A JSON request body: `Content-Type: application/json` (else 415), at most
/// the body limit (else 413), arrived within the [`BodyTimeout`] (else 408
/// `request_timeout`), UTF-8 JSON (else 400 `invalid_json`) of the expected
/// shape (else 400 `invalid_body`).
#[derive(Debug)]
pub(crate) struct ApiJson<T>(pub(crate) T);

fn is_json(parts_ct: Option<&header::HeaderValue>) -> bool {
    let Some(ct) = parts_ct.and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = ct.split(';').next().unwrap_or("").trim();
    essence.eq_ignore_ascii_case("application/json")
        || (essence.len() > 5 && {
            // application/*+json
            let lower = essence.to_ascii_lowercase();
            lower.starts_with("application/") && lower.ends_with("+json")
        })
}

/// Decodes a JSON body already read into memory.
pub(crate) fn decode_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if let Err(e) = std::str::from_utf8(bytes) {
        return Err(ApiError::InvalidJson(format!("the body is not UTF-8: {e}")));
    }
    serde_json::from_slice(bytes).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => ApiError::InvalidBody(e.to_string()),
        _ => ApiError::InvalidJson(e.to_string()),
    })
}

impl<S, T> FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        if !is_json(req.headers().get(header::CONTENT_TYPE)) {
            return Err(ApiError::UnsupportedMediaType);
        }
        let deadline = req.extensions().get::<BodyTimeout>().map(|t| t.0);
        let read = Bytes::from_request(req, state);
        let read = match deadline {
            Some(d) => tokio::time::timeout(d, read)
                .await
                .map_err(|_| ApiError::RequestTimeout)?,
            None => read.await,
        };
        let bytes = read.map_err(|e| {
            if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::BodyTooLarge
            } else {
                ApiError::InvalidJson(e.body_text())
            }
        })?;
        decode_json(&bytes).map(ApiJson)
    }
}

/// A query string, decoded into `T`; any failure is 400 `invalid_query`.
#[derive(Debug)]
pub(crate) struct ApiQuery<T>(pub(crate) T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or_default();
        serde_urlencoded::from_str(query)
            .map(ApiQuery)
            .map_err(|e| ApiError::InvalidQuery(e.to_string()))
    }
}

/// The client's IP address: the TCP peer (`ConnectInfo`, set by the
/// accept loop); `0.0.0.0` where the server runs without one. Behind a
/// reverse proxy every client is the proxy.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClientIp(pub(crate) IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Infallible> {
        Ok(ClientIp(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip()),
        ))
    }
}

/// An entry id in the path; anything that is not a UUID is 404 `not_found`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EntryPath(pub(crate) EntryId);

impl<S: Send + Sync> FromRequestParts<S> for EntryPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::NotFound)?;
        raw.parse::<EntryId>()
            .map(EntryPath)
            .map_err(|_| ApiError::NotFound)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        text: String,
    }

    #[test]
    fn json_errors_are_classified() {
        assert!(matches!(
            decode_json::<Body>(br#"{"text":"hi"}"#),
            Ok(Body { .. })
        ));
        for bad in [
            &b"{"[..],
            b"",
            b"nope",
            b"{\"text\": \"\xff\"}",
            b"\xff\xfe",
        ] {
            assert!(
                matches!(decode_json::<Body>(bad), Err(ApiError::InvalidJson(_))),
                "{bad:?}"
            );
        }
        for wrong in [
            &br#"{"text": 5}"#[..],
            br#"{}"#,
            br#"{"text":"a","extra":1}"#,
            br#"[]"#,
            br#"null"#,
        ] {
            assert!(
                matches!(decode_json::<Body>(wrong), Err(ApiError::InvalidBody(_))),
                "{:?}",
                std::str::from_utf8(wrong)
            );
        }
    }

    #[test]
    fn content_types() {
        let ok = [
            "application/json",
            "application/json; charset=utf-8",
            "Application/JSON",
            "application/problem+json",
        ];
        for ct in ok {
            assert!(is_json(Some(&HeaderValue::from_static(ct))), "{ct}");
        }
        for ct in ["text/plain", "application/jsonx", "multipart/form-data", ""] {
            assert!(!is_json(Some(&HeaderValue::from_static(ct))), "{ct}");
        }
        assert!(!is_json(None));
    }
}
