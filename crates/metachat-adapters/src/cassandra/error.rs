//! Errors of the Cassandra adapter and their single mapping onto
//! [`metachat_core::Error`], by the driver's error kind and the server's
//! error code.

use metachat_core::error::BoxError;
use scylla::errors::{DbError, ExecutionError, NewSessionError, PrepareError, RequestAttemptError};

/// A configuration that cannot work.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CassandraConfigError {
    /// No contact points: `CASSANDRA_NODES` unset or empty.
    #[error("no Cassandra nodes configured (set CASSANDRA_NODES, e.g. 127.0.0.1:19042)")]
    MissingNodes,
    /// An environment variable with a value that cannot be used.
    #[error("environment variable {var}: {reason}")]
    Env {
        /// The variable.
        var: &'static str,
        /// Why its value was refused.
        reason: String,
    },
    /// A builder field with a value that cannot be used.
    #[error("Cassandra configuration `{field}`: {reason}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// Why its value was refused.
        reason: String,
    },
    /// The namespace's event log already has another number of partitions
    /// (fixed at its first use: events already stored are placed by it).
    #[error(
        "namespace `{namespace}` holds an event log of {stored} partition(s); \
         configured {configured}: open it with {stored}"
    )]
    Layout {
        /// The namespace.
        namespace: String,
        /// The partitions its log has.
        stored: u32,
        /// The partitions configured.
        configured: u32,
    },
}

impl From<CassandraConfigError> for metachat_core::Error {
    fn from(e: CassandraConfigError) -> Self {
        metachat_core::Error::backend(e)
    }
}

/// A failure of the driver or the server during one operation; the `source`
/// of the core [`Error`](metachat_core::Error) the adapter returns.
#[derive(Debug, thiserror::Error)]
#[error("cassandra {op}: {source}")]
pub struct CassandraOpError {
    op: &'static str,
    #[source]
    source: BoxError,
}

impl CassandraOpError {
    /// The operation that failed (`connect`, `append`, `commit`, …).
    pub fn op(&self) -> &'static str {
        self.op
    }
}

/// How a failure reaches the caller: retryable unavailability or another
/// backend error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Unavailable,
    Backend,
}

/// Server error codes that mean "the cluster cannot serve this now": not
/// enough replicas, timeouts (the outcome of a write may be unknown),
/// overload, a node still starting, a Paxos round whose outcome is unknown.
fn db_kind(e: &DbError) -> Kind {
    match e {
        DbError::Unavailable { .. }
        | DbError::Overloaded
        | DbError::IsBootstrapping
        | DbError::ReadTimeout { .. }
        | DbError::WriteTimeout { .. }
        | DbError::ReadFailure { .. }
        | DbError::WriteFailure { .. }
        // CAS_WRITE_UNKNOWN (protocol v5): the outcome of a Paxos round is unknown.
        | DbError::Other(0x1700)
        | DbError::RateLimitReached { .. }
        | DbError::TruncateError => Kind::Unavailable,
        _ => Kind::Backend,
    }
}

fn attempt_kind(e: &RequestAttemptError) -> Kind {
    match e {
        RequestAttemptError::DbError(db, _) => db_kind(db),
        RequestAttemptError::BrokenConnectionError(_)
        | RequestAttemptError::UnableToAllocStreamId => Kind::Unavailable,
        _ => Kind::Backend,
    }
}

fn execution_kind(e: &ExecutionError) -> Kind {
    match e {
        ExecutionError::LastAttemptError(a) => attempt_kind(a),
        ExecutionError::ConnectionPoolError(_)
        | ExecutionError::EmptyPlan
        | ExecutionError::RequestTimeout(_) => Kind::Unavailable,
        ExecutionError::PrepareError(p) => prepare_kind(p),
        _ => Kind::Backend,
    }
}

fn prepare_kind(e: &PrepareError) -> Kind {
    match e {
        PrepareError::ConnectionPoolError(_) => Kind::Unavailable,
        PrepareError::AllAttemptsFailed { first_attempt } => attempt_kind(first_attempt),
        _ => Kind::Backend,
    }
}

fn wrap(op: &'static str, kind: Kind, source: BoxError) -> metachat_core::Error {
    let e = CassandraOpError { op, source };
    match kind {
        Kind::Unavailable => metachat_core::Error::unavailable(e),
        Kind::Backend => metachat_core::Error::backend(e),
    }
}

/// Whether a failed lightweight transaction may still have been applied:
/// the server timed out waiting for its Paxos round (under contention, or a
/// slow replica), reported `CAS_WRITE_UNKNOWN`, or the driver gave up
/// waiting. A later `SERIAL` read settles the outcome: it finishes an
/// accepted round or fences it off for good.
pub(crate) fn outcome_unknown(e: &ExecutionError) -> bool {
    match e {
        ExecutionError::LastAttemptError(RequestAttemptError::DbError(db, _)) => matches!(
            db,
            DbError::WriteTimeout { .. } | DbError::WriteFailure { .. } | DbError::Other(0x1700)
        ),
        ExecutionError::RequestTimeout(_) => true,
        _ => false,
    }
}

/// Maps a failed statement.
pub(crate) fn execution(op: &'static str, e: ExecutionError) -> metachat_core::Error {
    let kind = execution_kind(&e);
    wrap(op, kind, Box::new(e))
}

/// Maps a failed prepare.
pub(crate) fn prepare(op: &'static str, e: PrepareError) -> metachat_core::Error {
    let kind = prepare_kind(&e);
    wrap(op, kind, Box::new(e))
}

/// Maps a failure to open a session: no node answered.
pub(crate) fn connect(e: NewSessionError) -> metachat_core::Error {
    let kind = match &e {
        NewSessionError::FailedToResolveAnyHostname(_) | NewSessionError::EmptyKnownNodesList => {
            Kind::Backend
        }
        _ => Kind::Unavailable,
    };
    wrap("connect", kind, Box::new(e))
}

/// Maps a result that does not have the shape the adapter expects.
pub(crate) fn shape(op: &'static str, e: impl Into<BoxError>) -> metachat_core::Error {
    wrap(op, Kind::Backend, e.into())
}

/// Maps a failed wait for schema agreement after a migration.
pub(crate) fn schema(e: scylla::errors::SchemaAgreementError) -> metachat_core::Error {
    wrap("migrate", Kind::Unavailable, Box::new(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_and_unreachable_nodes_are_unavailable() {
        let e = execution(
            "append",
            ExecutionError::RequestTimeout(std::time::Duration::from_secs(1)),
        );
        assert!(
            matches!(e, metachat_core::Error::Unavailable { .. }),
            "{e:?}"
        );
        assert!(e.is_retryable());
        let e = execution("append", ExecutionError::EmptyPlan);
        assert!(
            matches!(e, metachat_core::Error::Unavailable { .. }),
            "{e:?}"
        );
        let e = execution(
            "append",
            ExecutionError::LastAttemptError(RequestAttemptError::DbError(
                DbError::Overloaded,
                "busy".into(),
            )),
        );
        assert!(
            matches!(e, metachat_core::Error::Unavailable { .. }),
            "{e:?}"
        );
    }

    #[test]
    fn bad_statements_are_backend_errors() {
        let e = execution(
            "commit",
            ExecutionError::LastAttemptError(RequestAttemptError::DbError(
                DbError::Invalid,
                "Batch too large".into(),
            )),
        );
        assert!(matches!(e, metachat_core::Error::Backend { .. }), "{e:?}");
        assert!(e.to_string().contains("Batch too large"), "{e}");
    }

    fn attempt(db: DbError) -> RequestAttemptError {
        RequestAttemptError::DbError(db, "from the server".into())
    }

    fn unavailable(e: &metachat_core::Error) -> bool {
        matches!(e, metachat_core::Error::Unavailable { .. })
    }

    #[test]
    fn each_server_error_code_maps_to_its_kind_the_same_way_for_every_path() {
        // (server error, retryable, a write's outcome unknown)
        let cases = [
            (DbError::Overloaded, true, false),
            (DbError::IsBootstrapping, true, false),
            (DbError::TruncateError, true, false),
            (DbError::Other(0x1700), true, true),
            (DbError::Other(0x2200), false, false),
            (DbError::Invalid, false, false),
            (DbError::SyntaxError, false, false),
            (DbError::Unauthorized, false, false),
            (DbError::ServerError, false, false),
        ];
        for (db, retryable, unknown) in cases {
            let what = format!("{db:?}");
            let e = execution(
                "append",
                ExecutionError::LastAttemptError(attempt(db.clone())),
            );
            assert_eq!(unavailable(&e), retryable, "{what}: {e:?}");
            assert_eq!(e.is_retryable(), retryable, "{what}");
            assert!(e.to_string().contains("cassandra append"), "{what}: {e}");
            let through_prepare = prepare(
                "prepare",
                PrepareError::AllAttemptsFailed {
                    first_attempt: attempt(db.clone()),
                },
            );
            assert_eq!(
                unavailable(&through_prepare),
                retryable,
                "{what} via prepare"
            );
            let nested = execution(
                "read",
                ExecutionError::PrepareError(PrepareError::AllAttemptsFailed {
                    first_attempt: attempt(db.clone()),
                }),
            );
            assert_eq!(
                unavailable(&nested),
                retryable,
                "{what} via a statement's prepare"
            );
            assert_eq!(
                outcome_unknown(&ExecutionError::LastAttemptError(attempt(db))),
                unknown,
                "{what}"
            );
        }
    }

    #[test]
    fn driver_conditions_map_to_their_kind() {
        let e = execution(
            "append",
            ExecutionError::LastAttemptError(RequestAttemptError::UnableToAllocStreamId),
        );
        assert!(unavailable(&e), "{e:?}");
        assert!(outcome_unknown(&ExecutionError::RequestTimeout(
            std::time::Duration::from_secs(1)
        )));
        assert!(!outcome_unknown(&ExecutionError::EmptyPlan));
        let e = connect(NewSessionError::EmptyKnownNodesList);
        assert!(matches!(e, metachat_core::Error::Backend { .. }), "{e:?}");
        assert!(e.to_string().contains("cassandra connect"), "{e}");
        let e = shape("read", "a column of the wrong type");
        assert!(matches!(e, metachat_core::Error::Backend { .. }), "{e:?}");
        assert!(e.to_string().contains("wrong type"), "{e}");
        let config: metachat_core::Error = CassandraConfigError::Layout {
            namespace: "ns".into(),
            stored: 4,
            configured: 8,
        }
        .into();
        assert!(config.to_string().contains("open it with 4"), "{config}");
    }
}
