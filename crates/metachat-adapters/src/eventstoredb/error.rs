//! Errors of the EventStoreDB adapter and their single mapping onto
//! [`metachat_core::Error`], by the `kurrentdb` client's error variant and
//! the gRPC status code, never by message text.

use metachat_core::error::BoxError;
use metachat_core::event::StreamId;
use metachat_core::store::ExpectedVersion;
use metachat_core::Error;

/// A configuration that cannot work.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EventStoreDbConfigError {
    /// No connection string: `EVENTSTOREDB_URL` unset or empty.
    #[error(
        "no EventStoreDB connection string (set EVENTSTOREDB_URL, e.g. esdb://127.0.0.1:2113?tls=false)"
    )]
    MissingUrl,
    /// A connection string the `kurrentdb` client refuses.
    #[error("EventStoreDB connection string `{url}`: {reason}")]
    Url {
        /// The string, its password replaced by `***`.
        url: String,
        /// Why the client refused it.
        reason: String,
    },
    /// A builder field with a value that cannot be used.
    #[error("EventStoreDB configuration `{field}`: {reason}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// Why its value was refused.
        reason: String,
    },
}

impl From<EventStoreDbConfigError> for Error {
    fn from(e: EventStoreDbConfigError) -> Self {
        Error::backend(e)
    }
}

/// A failure of the client or the server during one operation; the `source`
/// of the core [`Error`] the adapter returns.
#[derive(Debug, thiserror::Error)]
#[error("eventstoredb {op}: {source}")]
pub struct EventStoreDbOpError {
    op: &'static str,
    #[source]
    source: BoxError,
}

impl EventStoreDbOpError {
    /// The operation that failed (`connect`, `append`, `read_all`, …).
    pub fn op(&self) -> &'static str {
        self.op
    }
}

/// How a failure reaches the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Retryable: the server is unreachable, not the leader, overloaded or
    /// too slow.
    Unavailable,
    /// Anything else: refused requests, access denied, deleted streams,
    /// client bugs.
    Backend,
}

/// gRPC codes that mean "cannot serve this now".
fn grpc_kind(code: tonic::Code) -> Kind {
    use tonic::Code;
    match code {
        Code::Unavailable
        | Code::DeadlineExceeded
        | Code::Cancelled
        | Code::ResourceExhausted
        | Code::Aborted => Kind::Unavailable,
        _ => Kind::Backend,
    }
}

/// The one place that decides how a client error reaches callers.
pub(crate) fn kind(e: &kurrentdb::Error) -> Kind {
    use kurrentdb::Error as E;
    match e {
        // The connection broke, no node could be discovered, the deadline
        // passed, the node is a follower (the client reconnects to the
        // leader), or the client folded the status codes Unavailable,
        // Internal, DataLoss and Unknown into `ServerError`: the client
        // crate does not keep them apart, and Unavailable is by far the
        // common one (a node going away), so all are treated as retryable.
        E::ConnectionClosed
        | E::GrpcConnectionError(_)
        | E::DeadlineExceeded
        | E::NotLeaderException(_)
        | E::ServerError(_) => Kind::Unavailable,
        E::Grpc { code, .. } => grpc_kind(*code),
        // Access denied, deleted streams, unsupported features, parse and
        // client errors, and a WrongExpectedVersion that reaches this point
        // (where it was not expected: it is mapped by `conflict` instead).
        _ => Kind::Backend,
    }
}

/// Wraps any error of operation `op` into the core error of `kind`.
pub(crate) fn wrap(op: &'static str, kind: Kind, source: BoxError) -> Error {
    let e = EventStoreDbOpError { op, source };
    match kind {
        Kind::Unavailable => Error::unavailable(e),
        Kind::Backend => Error::backend(e),
    }
}

/// Maps a failed client call of operation `op`.
pub(crate) fn op(op: &'static str, e: kurrentdb::Error) -> Error {
    let k = kind(&e);
    wrap(op, k, Box::new(e))
}

/// A client construction error (`eyre::Report` from `Client::new`).
pub(crate) fn init(e: impl std::fmt::Display) -> Error {
    wrap("connect", Kind::Backend, e.to_string().into())
}

/// The server's "wrong expected version", by its error variant, as the core
/// [`Error::Conflict`]: `expected` is the caller's own expectation (so a
/// local refusal and the server's read the same), `actual` the stream's
/// revision the server reported. `None` for any other error.
pub(crate) fn conflict(
    stream: &StreamId,
    expected: ExpectedVersion,
    e: &kurrentdb::Error,
) -> Option<Error> {
    match e {
        kurrentdb::Error::WrongExpectedVersion { current, .. } => Some(Error::Conflict {
            stream: stream.clone(),
            expected,
            actual: actual_version(*current),
        }),
        _ => None,
    }
}

/// The server's current revision as a core stream version.
pub(crate) fn actual_version(current: kurrentdb::CurrentRevision) -> Option<u64> {
    match current {
        kurrentdb::CurrentRevision::Current(v) => Some(v),
        kurrentdb::CurrentRevision::NoStream => None,
    }
}

/// A result whose shape the adapter does not expect (a backend error).
pub(crate) fn shape(op: &'static str, reason: impl Into<String>) -> Error {
    wrap(op, Kind::Backend, reason.into().into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kurrentdb::{CurrentRevision, Endpoint, GrpcConnectionError, StreamState};

    fn stream() -> StreamId {
        StreamId::new("user-1").unwrap()
    }

    #[test]
    fn transport_failures_are_unavailable_and_retryable() {
        for e in [
            kurrentdb::Error::ConnectionClosed,
            kurrentdb::Error::DeadlineExceeded,
            kurrentdb::Error::GrpcConnectionError(GrpcConnectionError::MaxDiscoveryAttemptReached(
                3,
            )),
            kurrentdb::Error::GrpcConnectionError(GrpcConnectionError::Grpc("reset".into())),
            kurrentdb::Error::NotLeaderException(Endpoint {
                host: "b".into(),
                port: 2113,
            }),
            kurrentdb::Error::ServerError("status: Unavailable".into()),
            kurrentdb::Error::Grpc {
                code: tonic::Code::Unavailable,
                message: "x".into(),
            },
            kurrentdb::Error::Grpc {
                code: tonic::Code::ResourceExhausted,
                message: "x".into(),
            },
            kurrentdb::Error::Grpc {
                code: tonic::Code::Cancelled,
                message: "x".into(),
            },
        ] {
            let mapped = op("append", e.clone());
            assert!(matches!(mapped, Error::Unavailable { .. }), "{e:?}");
            assert!(mapped.is_retryable(), "{e:?}");
            assert!(
                mapped.to_string().contains("eventstoredb append"),
                "{mapped}"
            );
        }
    }

    #[test]
    fn refusals_are_backend_errors() {
        for e in [
            kurrentdb::Error::AccessDenied,
            kurrentdb::Error::ResourceDeleted,
            kurrentdb::Error::ResourceNotFound,
            kurrentdb::Error::UnsupportedFeature,
            kurrentdb::Error::InternalClientError,
            kurrentdb::Error::InternalParsingError("bad".into()),
            kurrentdb::Error::Grpc {
                code: tonic::Code::InvalidArgument,
                message: "Maximum Append Size exceeded".into(),
            },
            kurrentdb::Error::Grpc {
                code: tonic::Code::PermissionDenied,
                message: "x".into(),
            },
        ] {
            let mapped = op("append", e.clone());
            assert!(matches!(mapped, Error::Backend { .. }), "{e:?}");
            assert!(!mapped.is_retryable(), "{e:?}");
        }
    }

    #[test]
    fn wrong_expected_version_is_a_conflict_with_the_servers_actual() {
        let s = stream();
        for (current, actual) in [
            (CurrentRevision::Current(2), Some(2)),
            (CurrentRevision::Current(0), Some(0)),
            (CurrentRevision::NoStream, None),
        ] {
            let e = kurrentdb::Error::WrongExpectedVersion {
                expected: StreamState::StreamRevision(7),
                current,
            };
            for expected in [
                ExpectedVersion::Exact(7),
                ExpectedVersion::NoStream,
                ExpectedVersion::StreamExists,
            ] {
                match conflict(&s, expected, &e) {
                    Some(Error::Conflict {
                        stream: got,
                        expected: x,
                        actual: a,
                    }) => {
                        assert_eq!(got, s);
                        assert_eq!(x, expected, "the caller's expectation, not the server's");
                        assert_eq!(a, actual);
                    }
                    other => panic!("{e:?}: {other:?}"),
                }
            }
        }
        // Only that variant is a conflict, whatever a message says.
        assert!(conflict(
            &s,
            ExpectedVersion::Any,
            &kurrentdb::Error::ServerError("WrongExpectedVersion".into())
        )
        .is_none());
    }
}
