//! Configuration of a [`KafkaEventBus`](super::KafkaEventBus): a typed
//! builder, or the environment.

use std::collections::BTreeMap;
use std::time::Duration;

use super::error::KafkaConfigError;

/// Environment variable with the bootstrap brokers, e.g. `127.0.0.1:19092`.
pub const ENV_BROKERS: &str = "KAFKA_BROKERS";
/// Environment variable with the topic prefix (default `metachat.`).
pub const ENV_TOPIC_PREFIX: &str = "KAFKA_TOPIC_PREFIX";
/// Environment variable with the default consumer group id (default `metachat`).
pub const ENV_GROUP_ID: &str = "KAFKA_GROUP_ID";
/// Environment variable with the partitions of topics the bus creates (default 3).
pub const ENV_PARTITIONS: &str = "KAFKA_PARTITIONS";

/// Everything a [`KafkaEventBus`](super::KafkaEventBus) needs; build it with
/// [`KafkaConfig::builder`] or [`KafkaConfig::from_env`].
///
/// ```
/// use std::time::Duration;
/// use metachat_adapters::kafka::KafkaConfig;
///
/// let config = KafkaConfig::builder("127.0.0.1:19092")
///     .topic_prefix("diary.")
///     .group_id("mood-worker")
///     .partitions(6)
///     .delivery_timeout(Duration::from_secs(10))
///     .max_handler_attempts(5)
///     .build()
///     .unwrap();
/// assert_eq!(config.topic_prefix(), "diary.");
/// assert_eq!(config.dead_letter_topic("diary.user"), "diary.user.dlt");
/// ```
#[derive(Debug, Clone)]
pub struct KafkaConfig {
    pub(crate) brokers: String,
    pub(crate) topic_prefix: String,
    pub(crate) group_id: String,
    pub(crate) client_id: String,
    pub(crate) partitions: i32,
    pub(crate) replication: i32,
    pub(crate) create_topics: bool,
    pub(crate) dead_letter_suffix: String,
    pub(crate) content_type: String,
    pub(crate) delivery_timeout: Duration,
    pub(crate) linger: Duration,
    pub(crate) session_timeout: Duration,
    pub(crate) max_handler_attempts: u32,
    pub(crate) retry_backoff: Duration,
    pub(crate) extra: BTreeMap<String, String>,
}

impl KafkaConfig {
    /// A builder with defaults for everything but the bootstrap brokers
    /// (`host:port[,host:port…]`).
    pub fn builder(brokers: impl Into<String>) -> KafkaConfigBuilder {
        KafkaConfigBuilder {
            config: KafkaConfig {
                brokers: brokers.into(),
                topic_prefix: "metachat.".into(),
                group_id: "metachat".into(),
                client_id: "metachat".into(),
                partitions: 3,
                replication: 1,
                create_topics: true,
                dead_letter_suffix: ".dlt".into(),
                content_type: "application/json".into(),
                delivery_timeout: Duration::from_secs(30),
                linger: Duration::from_millis(1),
                session_timeout: Duration::from_secs(10),
                max_handler_attempts: 3,
                retry_backoff: Duration::from_millis(100),
                extra: BTreeMap::new(),
            },
        }
    }

    /// A builder from the environment: [`ENV_BROKERS`] (required),
    /// [`ENV_TOPIC_PREFIX`], [`ENV_GROUP_ID`] and [`ENV_PARTITIONS`]
    /// (optional). Further settings can be chained before `build`.
    pub fn from_env() -> Result<KafkaConfigBuilder, KafkaConfigError> {
        Self::from_vars(std::env::var)
    }

    /// [`KafkaConfig::from_env`] over any source of variables.
    fn from_vars(
        read: impl Fn(&'static str) -> Result<String, std::env::VarError>,
    ) -> Result<KafkaConfigBuilder, KafkaConfigError> {
        let var = |name: &'static str| -> Result<Option<String>, KafkaConfigError> {
            match read(name) {
                Ok(v) if v.trim().is_empty() => Ok(None),
                Ok(v) => Ok(Some(v.trim().to_owned())),
                Err(std::env::VarError::NotPresent) => Ok(None),
                Err(std::env::VarError::NotUnicode(_)) => Err(KafkaConfigError::Env {
                    var: name,
                    reason: "not valid UTF-8".into(),
                }),
            }
        };
        let brokers = var(ENV_BROKERS)?.ok_or(KafkaConfigError::MissingBrokers)?;
        let mut b = Self::builder(brokers);
        if let Some(p) = var(ENV_TOPIC_PREFIX)? {
            b = b.topic_prefix(p);
        }
        if let Some(g) = var(ENV_GROUP_ID)? {
            b = b.group_id(g);
        }
        if let Some(n) = var(ENV_PARTITIONS)? {
            let n: i32 = n.parse().map_err(|e| KafkaConfigError::Env {
                var: ENV_PARTITIONS,
                reason: format!("`{n}` is not a number: {e}"),
            })?;
            b = b.partitions(n);
        }
        Ok(b)
    }

    /// Bootstrap brokers.
    pub fn brokers(&self) -> &str {
        &self.brokers
    }

    /// Prefix of every topic the relay publishes to: `{prefix}{category}`.
    pub fn topic_prefix(&self) -> &str {
        &self.topic_prefix
    }

    /// Default consumer group of [`KafkaEventBus::consume`](super::KafkaEventBus::consume).
    pub fn group_id(&self) -> &str {
        &self.group_id
    }

    /// The dead-letter topic of `topic`: `{topic}{suffix}` (suffix `.dlt` by default).
    pub fn dead_letter_topic(&self, topic: &str) -> String {
        format!("{topic}{}", self.dead_letter_suffix)
    }
}

/// Builds a [`KafkaConfig`]; see there for an example.
#[derive(Debug, Clone)]
#[must_use]
pub struct KafkaConfigBuilder {
    config: KafkaConfig,
}

impl KafkaConfigBuilder {
    /// Topic prefix (default `metachat.`).
    pub fn topic_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.config.topic_prefix = prefix.into();
        self
    }

    /// Default consumer group id (default `metachat`).
    pub fn group_id(mut self, group: impl Into<String>) -> Self {
        self.config.group_id = group.into();
        self
    }

    /// Client id sent to the broker (default `metachat`).
    pub fn client_id(mut self, id: impl Into<String>) -> Self {
        self.config.client_id = id.into();
        self
    }

    /// Partitions of the topics the bus creates (default 3).
    pub fn partitions(mut self, n: i32) -> Self {
        self.config.partitions = n;
        self
    }

    /// Replication factor of the topics the bus creates (default 1).
    pub fn replication(mut self, n: i32) -> Self {
        self.config.replication = n;
        self
    }

    /// Whether the bus creates missing topics (default yes). Turn off where
    /// topics are provisioned by an operator.
    pub fn create_topics(mut self, yes: bool) -> Self {
        self.config.create_topics = yes;
        self
    }

    /// Suffix of dead-letter topics (default `.dlt`).
    pub fn dead_letter_suffix(mut self, suffix: impl Into<String>) -> Self {
        self.config.dead_letter_suffix = suffix.into();
        self
    }

    /// The `content-type` header of published records (default `application/json`).
    pub fn content_type(mut self, ct: impl Into<String>) -> Self {
        self.config.content_type = ct.into();
        self
    }

    /// How long a publish may wait for the broker's acknowledgement before it
    /// fails with `Error::Unavailable` (librdkafka's `message.timeout.ms`; default 30 s).
    pub fn delivery_timeout(mut self, t: Duration) -> Self {
        self.config.delivery_timeout = t;
        self
    }

    /// How long the producer waits to fill a batch (`linger.ms`; default 1 ms).
    pub fn linger(mut self, t: Duration) -> Self {
        self.config.linger = t;
        self
    }

    /// Consumer session timeout: how soon the group notices a member that
    /// died without leaving (default 10 s; the broker's minimum is 6 s).
    pub fn session_timeout(mut self, t: Duration) -> Self {
        self.config.session_timeout = t;
        self
    }

    /// Attempts of a handler in [`KafkaEventBus::consume`](super::KafkaEventBus::consume)
    /// before the record goes to the dead-letter topic (default 3, at least 1).
    pub fn max_handler_attempts(mut self, n: u32) -> Self {
        self.config.max_handler_attempts = n;
        self
    }

    /// Pause before the second attempt; doubled for each further one (default 100 ms).
    pub fn retry_backoff(mut self, t: Duration) -> Self {
        self.config.retry_backoff = t;
        self
    }

    /// A raw librdkafka property for both producer and consumers (e.g.
    /// `security.protocol`); it overrides what the bus sets.
    ///
    /// One of those is `statistics.interval.ms` (1000): the bus reads the
    /// statistics to notice a client that lost every broker (librdkafka
    /// issue 5301: a lone broker in controlled shutdown can leave a client
    /// with none, and it never bootstraps again) and to replace it. A
    /// longer interval notices later; `0` turns the statistics, and so
    /// that replacement, off.
    pub fn set(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.config.extra.insert(key.into(), value.into());
        self
    }

    /// Checks and returns the configuration.
    pub fn build(self) -> Result<KafkaConfig, KafkaConfigError> {
        let c = self.config;
        if c.brokers.trim().is_empty() {
            return Err(KafkaConfigError::MissingBrokers);
        }
        if c.partitions < 1 {
            return Err(KafkaConfigError::Invalid {
                field: "partitions",
                reason: format!("{} is less than 1", c.partitions),
            });
        }
        if c.replication < 1 {
            return Err(KafkaConfigError::Invalid {
                field: "replication",
                reason: format!("{} is less than 1", c.replication),
            });
        }
        if c.max_handler_attempts < 1 {
            return Err(KafkaConfigError::Invalid {
                field: "max_handler_attempts",
                reason: "must be at least 1".into(),
            });
        }
        if c.dead_letter_suffix.is_empty() {
            return Err(KafkaConfigError::Invalid {
                field: "dead_letter_suffix",
                reason: "empty: the dead-letter topic would be the topic itself".into(),
            });
        }
        if c.delivery_timeout.is_zero() {
            return Err(KafkaConfigError::Invalid {
                field: "delivery_timeout",
                reason: "zero".into(),
            });
        }
        Ok(c)
    }
}

/// Milliseconds as librdkafka wants them, saturating.
pub(crate) fn millis(d: Duration) -> String {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_checks_its_fields() {
        assert!(KafkaConfig::builder("").build().is_err());
        assert!(KafkaConfig::builder("b:1").partitions(0).build().is_err());
        assert!(KafkaConfig::builder("b:1")
            .max_handler_attempts(0)
            .build()
            .is_err());
        assert!(KafkaConfig::builder("b:1")
            .dead_letter_suffix("")
            .build()
            .is_err());
        let c = KafkaConfig::builder("b:1")
            .build()
            .expect("defaults are valid");
        assert_eq!(c.topic_prefix(), "metachat.");
        assert_eq!(c.dead_letter_topic("t"), "t.dlt");
    }

    fn vars<'a>(
        pairs: &'a [(&'static str, &'static str)],
    ) -> impl Fn(&'static str) -> Result<String, std::env::VarError> + 'a {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
                .ok_or(std::env::VarError::NotPresent)
        }
    }

    #[test]
    fn the_environment_gives_a_builder_or_a_typed_error() {
        let c = KafkaConfig::from_vars(vars(&[
            (ENV_BROKERS, " k1:9092,k2:9092 "),
            (ENV_TOPIC_PREFIX, "diary."),
            (ENV_GROUP_ID, "mood"),
            (ENV_PARTITIONS, "6"),
        ]))
        .unwrap()
        .build()
        .unwrap();
        assert_eq!(c.brokers(), "k1:9092,k2:9092");
        assert_eq!(c.topic_prefix(), "diary.");
        assert_eq!(c.group_id(), "mood");
        assert_eq!(c.partitions, 6);
        // Blank optional variables keep the defaults.
        let c = KafkaConfig::from_vars(vars(&[(ENV_BROKERS, "k:1"), (ENV_GROUP_ID, "  ")]))
            .unwrap()
            .build()
            .unwrap();
        assert_eq!(c.group_id(), "metachat");
        for missing in [&[][..], &[(ENV_BROKERS, "   ")][..]] {
            assert!(matches!(
                KafkaConfig::from_vars(vars(missing)),
                Err(KafkaConfigError::MissingBrokers)
            ));
        }
        let bad = KafkaConfig::from_vars(vars(&[(ENV_BROKERS, "k:1"), (ENV_PARTITIONS, "six")]));
        assert!(
            matches!(&bad, Err(KafkaConfigError::Env { var, reason }) if *var == ENV_PARTITIONS && reason.contains("six")),
            "{bad:?}"
        );
        let not_utf8 = KafkaConfig::from_vars(|name| {
            if name == ENV_BROKERS {
                Err(std::env::VarError::NotUnicode(std::ffi::OsString::from(
                    "x",
                )))
            } else {
                Err(std::env::VarError::NotPresent)
            }
        });
        assert!(
            matches!(&not_utf8, Err(KafkaConfigError::Env { var, .. }) if *var == ENV_BROKERS),
            "{not_utf8:?}"
        );
    }

    #[test]
    fn every_setting_is_kept_and_each_bad_one_named() {
        let c = KafkaConfig::builder("b:1")
            .topic_prefix("p.")
            .group_id("g")
            .client_id("c")
            .partitions(4)
            .replication(2)
            .create_topics(false)
            .dead_letter_suffix(".dead")
            .content_type("application/x")
            .delivery_timeout(Duration::from_secs(7))
            .linger(Duration::from_millis(3))
            .session_timeout(Duration::from_secs(9))
            .max_handler_attempts(4)
            .retry_backoff(Duration::from_millis(250))
            .set("fetch.min.bytes", "1")
            .build()
            .unwrap();
        assert_eq!(
            (
                c.client_id.as_str(),
                c.partitions,
                c.replication,
                c.create_topics
            ),
            ("c", 4, 2, false)
        );
        assert_eq!(c.dead_letter_topic("t"), "t.dead");
        assert_eq!(c.content_type, "application/x");
        assert_eq!(
            (
                c.delivery_timeout,
                c.linger,
                c.session_timeout,
                c.retry_backoff
            ),
            (
                Duration::from_secs(7),
                Duration::from_millis(3),
                Duration::from_secs(9),
                Duration::from_millis(250)
            )
        );
        assert_eq!(c.max_handler_attempts, 4);
        assert_eq!(
            c.extra.get("fetch.min.bytes").map(String::as_str),
            Some("1")
        );
        let field = |b: KafkaConfigBuilder| match b.build() {
            Err(KafkaConfigError::Invalid { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        let b = || KafkaConfig::builder("b:1");
        assert_eq!(field(b().partitions(0)), "partitions");
        assert_eq!(field(b().replication(0)), "replication");
        assert_eq!(field(b().max_handler_attempts(0)), "max_handler_attempts");
        assert_eq!(field(b().dead_letter_suffix("")), "dead_letter_suffix");
        assert_eq!(
            field(b().delivery_timeout(Duration::ZERO)),
            "delivery_timeout"
        );
    }

    #[test]
    fn millis_saturate() {
        assert_eq!(millis(Duration::from_millis(1500)), "1500");
        assert_eq!(millis(Duration::MAX), u32::MAX.to_string());
    }
}
