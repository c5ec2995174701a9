//! Errors of the Kafka adapter and their single mapping onto
//! [`metachat_core::Error`], by librdkafka error code.

use rdkafka::error::{KafkaError, RDKafkaErrorCode};

/// A configuration that cannot work.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KafkaConfigError {
    /// No bootstrap brokers: `KAFKA_BROKERS` unset or empty.
    #[error("no Kafka brokers configured (set KAFKA_BROKERS, e.g. 127.0.0.1:19092)")]
    MissingBrokers,
    /// An environment variable with a value that cannot be used.
    #[error("environment variable {var}: {reason}")]
    Env {
        /// The variable.
        var: &'static str,
        /// Why its value was refused.
        reason: String,
    },
    /// A builder field with a value that cannot be used.
    #[error("Kafka configuration `{field}`: {reason}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// Why its value was refused.
        reason: String,
    },
}

impl From<KafkaConfigError> for metachat_core::Error {
    fn from(e: KafkaConfigError) -> Self {
        metachat_core::Error::backend(e)
    }
}

/// A failure of the Kafka client during one operation; the `source` of the
/// core [`Error`](metachat_core::Error) the adapter returns.
#[derive(Debug, thiserror::Error)]
#[error("kafka {op}: {source}")]
pub struct KafkaOpError {
    op: &'static str,
    #[source]
    source: KafkaError,
}

impl KafkaOpError {
    /// The operation that failed (`publish`, `subscribe`, `commit`, …).
    pub fn op(&self) -> &'static str {
        self.op
    }

    /// librdkafka's error code, where the failure has one.
    pub fn code(&self) -> Option<RDKafkaErrorCode> {
        self.source.rdkafka_error_code()
    }
}

/// A record that could not be decoded into an envelope: the reason it goes to
/// the dead-letter topic.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct DecodeError(pub(crate) String);

/// True for error codes that mean "the broker cannot be reached now":
/// retryable, reported as [`metachat_core::Error::Unavailable`].
fn is_unavailable(code: RDKafkaErrorCode) -> bool {
    use RDKafkaErrorCode as C;
    matches!(
        code,
        C::MessageTimedOut
            | C::AllBrokersDown
            | C::BrokerTransportFailure
            | C::Resolve
            | C::TimedOutQueue
            | C::OperationTimedOut
            | C::RequestTimedOut
            | C::NetworkException
            | C::BrokerNotAvailable
            | C::LeaderNotAvailable
            | C::NotLeaderForPartition
            | C::NotEnoughReplicas
            | C::NotEnoughReplicasAfterAppend
            | C::CoordinatorNotAvailable
            | C::NotCoordinator
            | C::CoordinatorLoadInProgress
            | C::WaitingForCoordinator
            | C::UnknownTopicOrPartition
            | C::UnknownLeaderEpoch
            | C::FencedLeaderEpoch
            | C::KafkaStorageError
            | C::NotController
            | C::ThrottlingQuotaExceeded
            | C::QueueFull
    )
}

/// Maps a client error onto the core error, once, by its error code.
pub(crate) fn map(op: &'static str, e: KafkaError) -> metachat_core::Error {
    let unavailable = e.rdkafka_error_code().is_some_and(is_unavailable);
    let e = KafkaOpError { op, source: e };
    if unavailable {
        metachat_core::Error::unavailable(e)
    } else {
        metachat_core::Error::backend(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_down_is_unavailable_and_config_is_backend() {
        let down = map(
            "publish",
            KafkaError::MessageProduction(RDKafkaErrorCode::MessageTimedOut),
        );
        assert!(
            matches!(down, metachat_core::Error::Unavailable { .. }),
            "{down:?}"
        );
        assert!(down.is_retryable());
        let all_down = map(
            "subscribe",
            KafkaError::MetadataFetch(RDKafkaErrorCode::AllBrokersDown),
        );
        assert!(matches!(all_down, metachat_core::Error::Unavailable { .. }));
        let too_large = map(
            "publish",
            KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge),
        );
        assert!(matches!(too_large, metachat_core::Error::Backend { .. }));
        let no_code = map("subscribe", KafkaError::Subscription("bad".into()));
        assert!(matches!(no_code, metachat_core::Error::Backend { .. }));
    }
}
