//! Configuration of the EventStoreDB adapter: a connection string plus a
//! typed builder, or the environment.

use std::fmt;
use std::time::Duration;

use kurrentdb::ClientSettings;

use super::error::EventStoreDbConfigError;

/// Environment variable with the connection string, e.g.
/// `esdb://127.0.0.1:2113?tls=false` (any `esdb://` or `kurrentdb://`
/// string the `kurrentdb` client accepts, credentials, cluster seeds and
/// `+discover` included).
pub const ENV_URL: &str = "EVENTSTOREDB_URL";
/// Environment variable with the namespace (default `metachat`).
pub const ENV_NAMESPACE: &str = "EVENTSTOREDB_NAMESPACE";

/// Longest namespace, in bytes.
pub const MAX_NAMESPACE_LEN: usize = 64;

/// Everything the EventStoreDB adapter needs; build it with
/// [`EventStoreDbConfig::builder`] or [`EventStoreDbConfig::from_env`].
///
/// ```
/// use std::time::Duration;
/// use metachat_adapters::eventstoredb::EventStoreDbConfig;
///
/// let config = EventStoreDbConfig::builder("esdb://admin:changeit@127.0.0.1:2113?tls=false")
///     .namespace("diary")
///     .request_timeout(Duration::from_secs(5))
///     .build()
///     .unwrap();
/// assert_eq!(config.namespace(), "diary");
/// assert_eq!(config.stream_prefix(), "diary:");
/// // The password never reaches logs or errors.
/// assert_eq!(config.url(), "esdb://admin:***@127.0.0.1:2113?tls=false");
/// assert!(!format!("{config:?}").contains("changeit"));
/// ```
#[derive(Clone)]
pub struct EventStoreDbConfig {
    pub(crate) settings: ClientSettings,
    pub(crate) url: String,
    pub(crate) namespace: String,
    pub(crate) request_timeout: Duration,
    pub(crate) page_size: usize,
    pub(crate) visibility_timeout: Duration,
    pub(crate) backoff: Backoff,
}

impl fmt::Debug for EventStoreDbConfig {
    // `ClientSettings`' own Debug prints the credentials: leave it out.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventStoreDbConfig")
            .field("url", &self.url)
            .field("namespace", &self.namespace)
            .field("request_timeout", &self.request_timeout)
            .field("page_size", &self.page_size)
            .field("visibility_timeout", &self.visibility_timeout)
            .field("backoff", &self.backoff)
            .finish()
    }
}

impl EventStoreDbConfig {
    /// A builder with defaults for everything but the connection string.
    pub fn builder(url: impl Into<String>) -> EventStoreDbConfigBuilder {
        EventStoreDbConfigBuilder {
            url: url.into(),
            namespace: "metachat".into(),
            request_timeout: Duration::from_secs(10),
            page_size: 512,
            visibility_timeout: Duration::from_secs(5),
            backoff: Backoff::default(),
        }
    }

    /// A builder from [`ENV_URL`] (required) and [`ENV_NAMESPACE`].
    pub fn from_env() -> Result<EventStoreDbConfigBuilder, EventStoreDbConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    pub(crate) fn from_lookup(
        get: impl Fn(&str) -> Option<String>,
    ) -> Result<EventStoreDbConfigBuilder, EventStoreDbConfigError> {
        let url = get(ENV_URL)
            .filter(|u| !u.trim().is_empty())
            .ok_or(EventStoreDbConfigError::MissingUrl)?;
        let mut b = Self::builder(url.trim());
        if let Some(ns) = get(ENV_NAMESPACE) {
            b = b.namespace(ns.trim());
        }
        Ok(b)
    }

    /// The connection string with its password replaced by `***`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The namespace: every stream the adapter writes is named
    /// `{namespace}:{stream id}`, and the global log of this store is the
    /// namespace's events in `$all` order.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The stream-name prefix of this namespace (`{namespace}:`): the
    /// server-side filter of every `$all` read and subscription.
    pub fn stream_prefix(&self) -> String {
        format!("{}:", self.namespace)
    }

    /// A copy with another namespace (validated like the builder's).
    pub fn with_namespace(
        &self,
        namespace: impl Into<String>,
    ) -> Result<Self, EventStoreDbConfigError> {
        let namespace = namespace.into();
        check_namespace(&namespace)?;
        Ok(EventStoreDbConfig {
            namespace,
            ..self.clone()
        })
    }

    /// Client-side limit of one request.
    pub fn request_timeout(&self) -> Duration {
        self.request_timeout
    }

    /// Events per `$all` or stream read.
    pub fn page_size(&self) -> usize {
        self.page_size
    }

    /// How a subscription waits between reconnection attempts.
    pub fn backoff(&self) -> Backoff {
        self.backoff
    }
}

/// Exponential backoff of a subscription that lost its connection: the
/// first retry after `initial`, each next one after twice the previous
/// wait, at most `max`; reset once an event or a checkpoint arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Wait before the first retry (default 100 ms).
    pub initial: Duration,
    /// Longest wait (default 10 s).
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(10),
        }
    }
}

impl Backoff {
    /// The wait before retry number `attempt` (0-based).
    ///
    /// ```
    /// use std::time::Duration;
    /// use metachat_adapters::eventstoredb::Backoff;
    ///
    /// let b = Backoff { initial: Duration::from_millis(100), max: Duration::from_secs(1) };
    /// assert_eq!(b.delay(0), Duration::from_millis(100));
    /// assert_eq!(b.delay(3), Duration::from_millis(800));
    /// assert_eq!(b.delay(4), Duration::from_secs(1));
    /// assert_eq!(b.delay(u32::MAX), Duration::from_secs(1));
    /// ```
    pub fn delay(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX);
        self.initial
            .checked_mul(factor)
            .map_or(self.max, |d| d.min(self.max))
    }
}

/// Builds an [`EventStoreDbConfig`]; see [`EventStoreDbConfig::builder`].
#[derive(Clone)]
pub struct EventStoreDbConfigBuilder {
    url: String,
    namespace: String,
    request_timeout: Duration,
    page_size: usize,
    visibility_timeout: Duration,
    backoff: Backoff,
}

impl fmt::Debug for EventStoreDbConfigBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventStoreDbConfigBuilder")
            .field("url", &redact(&self.url))
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

impl EventStoreDbConfigBuilder {
    /// The namespace (default `metachat`): 1 to [`MAX_NAMESPACE_LEN`] ASCII
    /// letters, digits or `_`. Each store sees only its namespace's streams.
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// Client-side limit of one request (default 10 s); past it the
    /// operation fails with [`Error::Unavailable`](metachat_core::Error::Unavailable).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Events per read (default 512, at most 65,536).
    pub fn page_size(mut self, events: usize) -> Self {
        self.page_size = events;
        self
    }

    /// How long an append waits for its own events to show in `$all`
    /// before it reports [`Error::Unavailable`](metachat_core::Error::Unavailable)
    /// (default 5 s; on a leader they show at once).
    pub fn visibility_timeout(mut self, timeout: Duration) -> Self {
        self.visibility_timeout = timeout;
        self
    }

    /// Reconnection backoff of subscriptions (default 100 ms doubling to 10 s).
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Validates and builds: parses the connection string with the
    /// `kurrentdb` client's own parser.
    pub fn build(self) -> Result<EventStoreDbConfig, EventStoreDbConfigError> {
        let url = self.url.trim();
        if url.is_empty() {
            return Err(EventStoreDbConfigError::MissingUrl);
        }
        let redacted = redact(url);
        let settings: ClientSettings =
            url.parse()
                .map_err(
                    |e: kurrentdb::ClientSettingsParseError| EventStoreDbConfigError::Url {
                        url: redacted.clone(),
                        reason: match e.error() {
                            Some(parse) => parse.to_string(),
                            // The parser's own message may quote the whole string.
                            None => e.message().replace(url, &redacted),
                        },
                    },
                )?;
        check_namespace(&self.namespace)?;
        if self.page_size == 0 || self.page_size > 65_536 {
            return Err(EventStoreDbConfigError::Invalid {
                field: "page_size",
                reason: format!("{}: 1 to 65536 events", self.page_size),
            });
        }
        if self.request_timeout.is_zero() || self.visibility_timeout.is_zero() {
            return Err(EventStoreDbConfigError::Invalid {
                field: "timeout",
                reason: "must be positive".into(),
            });
        }
        if self.backoff.initial.is_zero() || self.backoff.max < self.backoff.initial {
            return Err(EventStoreDbConfigError::Invalid {
                field: "backoff",
                reason: "initial must be positive and at most max".into(),
            });
        }
        Ok(EventStoreDbConfig {
            settings,
            url: redacted,
            namespace: self.namespace,
            request_timeout: self.request_timeout,
            page_size: self.page_size,
            visibility_timeout: self.visibility_timeout,
            backoff: self.backoff,
        })
    }
}

fn check_namespace(ns: &str) -> Result<(), EventStoreDbConfigError> {
    let ok = !ns.is_empty()
        && ns.len() <= MAX_NAMESPACE_LEN
        && ns.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(EventStoreDbConfigError::Invalid {
            field: "namespace",
            reason: format!("`{ns}`: 1 to {MAX_NAMESPACE_LEN} ASCII letters, digits or `_`"),
        })
    }
}

/// The connection string with the password of its user info replaced by `***`.
pub(crate) fn redact(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let (scheme, rest) = url.split_at(scheme_end + 3);
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => {
            let user = rest[..at].split(':').next().unwrap_or("");
            format!("{scheme}{user}:***{}", &rest[at..])
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn from_env_reads_url_and_namespace() {
        let c = EventStoreDbConfig::from_lookup(env(&[
            (ENV_URL, " esdb://127.0.0.1:2113?tls=false "),
            (ENV_NAMESPACE, "tenant_1"),
        ]))
        .unwrap()
        .build()
        .unwrap();
        assert_eq!(c.url(), "esdb://127.0.0.1:2113?tls=false");
        assert_eq!(c.namespace(), "tenant_1");
        assert_eq!(c.stream_prefix(), "tenant_1:");
        assert!(!c.settings.is_secure_mode_enabled());
        let defaults = EventStoreDbConfig::from_lookup(env(&[(ENV_URL, "esdb://h:2113")]))
            .unwrap()
            .build()
            .unwrap();
        assert_eq!(defaults.namespace(), "metachat");
        assert!(defaults.settings.is_secure_mode_enabled());
    }

    #[test]
    fn cluster_and_discover_strings_parse() {
        for url in [
            "esdb://a:2113,b:2113,c:2113?tls=false",
            "esdb+discover://cluster.example.org:2113",
            "kurrentdb://admin:changeit@localhost:2113?tls=true&tlsVerifyCert=false",
        ] {
            EventStoreDbConfig::builder(url)
                .build()
                .unwrap_or_else(|e| panic!("{url}: {e}"));
        }
    }

    #[test]
    fn bad_values_are_typed_errors() {
        assert!(matches!(
            EventStoreDbConfig::from_lookup(env(&[])),
            Err(EventStoreDbConfigError::MissingUrl)
        ));
        assert!(matches!(
            EventStoreDbConfig::from_lookup(env(&[(ENV_URL, "  ")])),
            Err(EventStoreDbConfigError::MissingUrl)
        ));
        for bad in [
            "http://127.0.0.1:2113",
            "not a url",
            "esdb://",
            "esdb://h:99999",
        ] {
            assert!(
                matches!(
                    EventStoreDbConfig::builder(bad).build(),
                    Err(EventStoreDbConfigError::Url { .. })
                ),
                "{bad}"
            );
        }
        for ns in ["", "has space", "a:b", "dollar$", &"n".repeat(65)] {
            assert!(
                matches!(
                    EventStoreDbConfig::builder("esdb://h:2113")
                        .namespace(ns)
                        .build(),
                    Err(EventStoreDbConfigError::Invalid {
                        field: "namespace",
                        ..
                    })
                ),
                "{ns:?}"
            );
        }
        assert!(matches!(
            EventStoreDbConfig::builder("esdb://h:2113")
                .page_size(0)
                .build(),
            Err(EventStoreDbConfigError::Invalid {
                field: "page_size",
                ..
            })
        ));
        assert!(matches!(
            EventStoreDbConfig::builder("esdb://h:2113")
                .request_timeout(Duration::ZERO)
                .build(),
            Err(EventStoreDbConfigError::Invalid {
                field: "timeout",
                ..
            })
        ));
        assert!(matches!(
            EventStoreDbConfig::builder("esdb://h:2113")
                .backoff(Backoff {
                    initial: Duration::from_secs(2),
                    max: Duration::from_secs(1)
                })
                .build(),
            Err(EventStoreDbConfigError::Invalid {
                field: "backoff",
                ..
            })
        ));
    }

    #[test]
    fn errors_and_debug_never_show_the_password() {
        let url = "esdb://admin:s3cret@[::1:2113?tls=false";
        let e = EventStoreDbConfig::builder(url).build().unwrap_err();
        assert!(!e.to_string().contains("s3cret"), "{e}");
        let b = EventStoreDbConfig::builder("esdb://admin:s3cret@h:2113");
        assert!(!format!("{b:?}").contains("s3cret"));
        let c = b.build().unwrap();
        assert!(!format!("{c:?}").contains("s3cret"));
    }

    #[test]
    fn redact_replaces_only_the_password() {
        assert_eq!(redact("esdb://h:2113?tls=false"), "esdb://h:2113?tls=false");
        assert_eq!(redact("esdb://u:p@h:2113"), "esdb://u:***@h:2113");
        assert_eq!(redact("esdb://u@h:2113/"), "esdb://u:***@h:2113/");
        assert_eq!(
            redact("esdb://u:p@a:1,b:2?x=@y"),
            "esdb://u:***@a:1,b:2?x=@y"
        );
        assert_eq!(redact("no scheme"), "no scheme");
    }

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let b = Backoff::default();
        let delays: Vec<_> = (0..10).map(|a| b.delay(a)).collect();
        assert!(delays.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(delays[0], Duration::from_millis(100));
        assert_eq!(b.delay(60), Duration::from_secs(10));
    }
}
