//! What the Kafka tests share: the broker address from `KAFKA_BROKERS`, or a
//! skip (outside CI) or a failure (in CI) when it is not set.

#![allow(dead_code, unreachable_pub)]

use std::time::Duration;

use metachat_adapters::kafka::{KafkaConfig, KafkaConfigBuilder, KafkaEventBus};

/// The message a test prints when it skips.
pub const SKIP: &str = "SKIPPED: KAFKA_BROKERS not set; run scripts/kafka start";

/// The broker address, or `None` (after printing [`SKIP`]) outside CI.
/// In CI (`CI` set) a missing address fails the test.
pub fn brokers() -> Option<String> {
    match std::env::var("KAFKA_BROKERS") {
        Ok(b) if !b.trim().is_empty() => Some(b.trim().to_owned()),
        _ if std::env::var_os("CI").is_some() => panic!(
            "KAFKA_BROKERS is not set but CI is: the Kafka tests must run against a broker; \
             start one with `eval \"$(scripts/kafka start)\"`"
        ),
        _ => {
            println!("{SKIP}");
            None
        }
    }
}

/// A config builder on the test broker with a fresh topic prefix, short
/// timeouts and the broker's minimum session timeout.
pub fn config(brokers: &str) -> KafkaConfigBuilder {
    KafkaConfig::builder(brokers)
        .topic_prefix(format!("test.{}.", uuid::Uuid::new_v4().simple()))
        .delivery_timeout(Duration::from_secs(20))
        .session_timeout(Duration::from_secs(6))
        .retry_backoff(Duration::from_millis(20))
}

/// A bus on the test broker with a fresh topic prefix.
pub fn bus(brokers: &str) -> KafkaEventBus {
    KafkaEventBus::new(config(brokers).build().expect("a valid config")).expect("a Kafka client")
}
