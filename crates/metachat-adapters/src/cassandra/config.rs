//! Configuration of the Cassandra adapter: a typed builder, or the
//! environment.

use std::collections::BTreeMap;
use std::time::Duration;

use super::error::CassandraConfigError;

/// Environment variable with the contact points, e.g. `127.0.0.1:19042`
/// (comma-separated `host:port`).
pub const ENV_NODES: &str = "CASSANDRA_NODES";
/// Environment variable with the keyspace (default `metachat`).
pub const ENV_KEYSPACE: &str = "CASSANDRA_KEYSPACE";
/// Environment variable with the namespace inside the keyspace (default `default`).
pub const ENV_NAMESPACE: &str = "CASSANDRA_NAMESPACE";
/// Environment variable with the consistency of reads and writes
/// (`one`, `local_quorum`, `quorum`, `each_quorum`, `all`; default `local_quorum`).
pub const ENV_CONSISTENCY: &str = "CASSANDRA_CONSISTENCY";
/// Environment variable with the replication of a keyspace the adapter
/// creates: a number (SimpleStrategy with that factor) or
/// `dc1:3,dc2:3` (NetworkTopologyStrategy). Default `1`.
pub const ENV_REPLICATION: &str = "CASSANDRA_REPLICATION";

/// Environment variable with the number of partitions of the event log
/// (default `1`: one total order). Fixed per namespace at its first use.
pub const ENV_PARTITIONS: &str = "CASSANDRA_PARTITIONS";
/// The most partitions a log may have.
pub const MAX_PARTITIONS: u32 = 1024;

/// Consistency of the adapter's reads and writes. Lightweight transactions
/// use the matching serial consistency (`LOCAL_SERIAL` for the `LOCAL_*` and
/// `ONE` levels, `SERIAL` otherwise).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Consistency {
    /// One replica.
    One,
    /// A quorum in the local datacenter (the default).
    LocalQuorum,
    /// A quorum of all replicas.
    Quorum,
    /// A quorum in every datacenter.
    EachQuorum,
    /// Every replica.
    All,
}

impl Consistency {
    fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "one" => Some(Consistency::One),
            "local_quorum" => Some(Consistency::LocalQuorum),
            "quorum" => Some(Consistency::Quorum),
            "each_quorum" => Some(Consistency::EachQuorum),
            "all" => Some(Consistency::All),
            _ => None,
        }
    }

    pub(crate) fn driver(self) -> scylla::frame::types::Consistency {
        use scylla::frame::types::Consistency as C;
        match self {
            Consistency::One => C::One,
            Consistency::LocalQuorum => C::LocalQuorum,
            Consistency::Quorum => C::Quorum,
            Consistency::EachQuorum => C::EachQuorum,
            Consistency::All => C::All,
        }
    }

    pub(crate) fn serial(self) -> scylla::frame::types::SerialConsistency {
        use scylla::frame::types::SerialConsistency as S;
        match self {
            Consistency::One | Consistency::LocalQuorum => S::LocalSerial,
            _ => S::Serial,
        }
    }
}

/// How a keyspace the adapter creates is replicated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replication {
    /// `SimpleStrategy` with this replication factor (one datacenter).
    Simple(u32),
    /// `NetworkTopologyStrategy` with a factor per datacenter.
    NetworkTopology(BTreeMap<String, u32>),
}

impl Replication {
    fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        if let Ok(rf) = s.parse::<u32>() {
            return (rf > 0).then_some(Replication::Simple(rf));
        }
        let mut dcs = BTreeMap::new();
        for part in s.split(',') {
            let (dc, rf) = part.split_once(':')?;
            let dc = dc.trim();
            let rf: u32 = rf.trim().parse().ok()?;
            if dc.is_empty()
                || rf == 0
                || !dc
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                return None;
            }
            dcs.insert(dc.to_owned(), rf);
        }
        (!dcs.is_empty()).then_some(Replication::NetworkTopology(dcs))
    }

    /// The CQL map literal of `WITH replication = …`.
    pub(crate) fn cql(&self) -> String {
        match self {
            Replication::Simple(rf) => {
                format!("{{'class': 'SimpleStrategy', 'replication_factor': {rf}}}")
            }
            Replication::NetworkTopology(dcs) => {
                let mut s = String::from("{'class': 'NetworkTopologyStrategy'");
                for (dc, rf) in dcs {
                    s.push_str(&format!(", '{dc}': {rf}"));
                }
                s.push('}');
                s
            }
        }
    }
}

/// Everything the Cassandra adapter needs; build it with
/// [`CassandraConfig::builder`] or [`CassandraConfig::from_env`].
///
/// ```
/// use std::time::Duration;
/// use metachat_adapters::cassandra::{CassandraConfig, Consistency, Replication};
///
/// let config = CassandraConfig::builder("127.0.0.1:19042")
///     .keyspace("diary")
///     .namespace("prod")
///     .consistency(Consistency::Quorum)
///     .replication(Replication::Simple(3))
///     .request_timeout(Duration::from_secs(5))
///     .build()
///     .unwrap();
/// assert_eq!(config.keyspace(), "diary");
/// assert_eq!(config.nodes(), ["127.0.0.1:19042"]);
/// ```
#[derive(Debug, Clone)]
pub struct CassandraConfig {
    pub(crate) nodes: Vec<String>,
    pub(crate) keyspace: String,
    pub(crate) namespace: String,
    pub(crate) consistency: Consistency,
    pub(crate) replication: Replication,
    pub(crate) create_keyspace: bool,
    pub(crate) request_timeout: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) page_size: i32,
    pub(crate) partitions: u32,
}

impl CassandraConfig {
    /// A builder with defaults for everything but the contact points
    /// (`host:port[,host:port…]`).
    pub fn builder(nodes: impl AsRef<str>) -> CassandraConfigBuilder {
        CassandraConfigBuilder {
            nodes: nodes
                .as_ref()
                .split(',')
                .map(|n| n.trim().to_owned())
                .filter(|n| !n.is_empty())
                .collect(),
            config_keyspace: "metachat".into(),
            namespace: "default".into(),
            consistency: Consistency::LocalQuorum,
            replication: Replication::Simple(1),
            create_keyspace: true,
            request_timeout: Duration::from_secs(12),
            connect_timeout: Duration::from_secs(5),
            page_size: 1000,
            partitions: 1,
        }
    }

    /// A builder from [`ENV_NODES`] (required), [`ENV_KEYSPACE`],
    /// [`ENV_NAMESPACE`], [`ENV_CONSISTENCY`], [`ENV_REPLICATION`] and
    /// [`ENV_PARTITIONS`].
    pub fn from_env() -> Result<CassandraConfigBuilder, CassandraConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    fn from_lookup(
        get: impl Fn(&str) -> Option<String>,
    ) -> Result<CassandraConfigBuilder, CassandraConfigError> {
        let nodes = get(ENV_NODES)
            .filter(|n| !n.trim().is_empty())
            .ok_or(CassandraConfigError::MissingNodes)?;
        let mut b = Self::builder(nodes);
        if let Some(ks) = get(ENV_KEYSPACE) {
            b = b.keyspace(ks);
        }
        if let Some(ns) = get(ENV_NAMESPACE) {
            b = b.namespace(ns);
        }
        if let Some(c) = get(ENV_CONSISTENCY) {
            b = b.consistency(
                Consistency::parse(&c).ok_or_else(|| CassandraConfigError::Env {
                    var: ENV_CONSISTENCY,
                    reason: format!(
                        "`{c}` is not one of one, local_quorum, quorum, each_quorum, all"
                    ),
                })?,
            );
        }
        if let Some(n) = get(ENV_PARTITIONS) {
            b = b.partitions(n.trim().parse().map_err(|_| CassandraConfigError::Env {
                var: ENV_PARTITIONS,
                reason: format!("`{n}` is not a number of partitions (1 to {MAX_PARTITIONS})"),
            })?);
        }
        if let Some(r) = get(ENV_REPLICATION) {
            b = b.replication(
                Replication::parse(&r).ok_or_else(|| CassandraConfigError::Env {
                    var: ENV_REPLICATION,
                    reason: format!("`{r}` is neither a factor (`3`) nor `dc1:3,dc2:3`"),
                })?,
            );
        }
        Ok(b)
    }

    /// The contact points.
    pub fn nodes(&self) -> &[String] {
        &self.nodes
    }

    /// The keyspace.
    pub fn keyspace(&self) -> &str {
        &self.keyspace
    }

    /// The namespace: every row the adapter writes carries it in its
    /// partition key, so several stores can share one keyspace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The consistency of reads and writes.
    pub fn consistency(&self) -> Consistency {
        self.consistency
    }

    /// The replication of a keyspace the adapter creates.
    pub fn replication(&self) -> &Replication {
        &self.replication
    }

    /// Partitions of the event log (1: one total order).
    pub fn partitions(&self) -> u32 {
        self.partitions
    }

    /// A copy with another namespace (validated like the builder's).
    pub fn with_namespace(
        &self,
        namespace: impl Into<String>,
    ) -> Result<Self, CassandraConfigError> {
        let namespace = namespace.into();
        check_namespace(&namespace)?;
        Ok(CassandraConfig {
            namespace,
            ..self.clone()
        })
    }
}

/// Builds a [`CassandraConfig`]; see [`CassandraConfig::builder`].
#[derive(Debug, Clone)]
pub struct CassandraConfigBuilder {
    nodes: Vec<String>,
    config_keyspace: String,
    namespace: String,
    consistency: Consistency,
    replication: Replication,
    create_keyspace: bool,
    request_timeout: Duration,
    connect_timeout: Duration,
    page_size: i32,
    partitions: u32,
}

impl CassandraConfigBuilder {
    /// The keyspace (default `metachat`): letters, digits and `_`, at most 48.
    pub fn keyspace(mut self, keyspace: impl Into<String>) -> Self {
        self.config_keyspace = keyspace.into();
        self
    }

    /// The namespace inside the keyspace (default `default`): at most 128
    /// bytes, no control characters.
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// Consistency of reads and writes (default [`Consistency::LocalQuorum`]).
    pub fn consistency(mut self, consistency: Consistency) -> Self {
        self.consistency = consistency;
        self
    }

    /// Replication of the keyspace if the adapter creates it (default
    /// `SimpleStrategy`, factor 1).
    pub fn replication(mut self, replication: Replication) -> Self {
        self.replication = replication;
        self
    }

    /// Whether the migrations may create the keyspace (default true); false
    /// expects an operator to have created it.
    pub fn create_keyspace(mut self, create: bool) -> Self {
        self.create_keyspace = create;
        self
    }

    /// Client-side limit of one request (default 12 s); past it the
    /// operation fails with [`Error::Unavailable`](metachat_core::Error::Unavailable).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Limit of opening a connection (default 5 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Rows per page of scans and log reads (default 1000).
    pub fn page_size(mut self, rows: i32) -> Self {
        self.page_size = rows;
        self
    }

    /// Partitions of the event log (default 1; at most [`MAX_PARTITIONS`]).
    ///
    /// One partition is one total order of every event, decided by one
    /// lightweight-transaction row: a few hundred appends per second per
    /// namespace, whatever the cluster size. With `n` partitions each has its
    /// own sequencer (appends to different partitions never contend), and
    /// order holds only within a partition: followers read each partition
    /// with its own checkpoint. Fixed per namespace at its first use; opening
    /// a namespace with another count fails with
    /// [`CassandraConfigError::Layout`].
    pub fn partitions(mut self, partitions: u32) -> Self {
        self.partitions = partitions;
        self
    }

    /// Validates and builds.
    pub fn build(self) -> Result<CassandraConfig, CassandraConfigError> {
        if self.nodes.is_empty() {
            return Err(CassandraConfigError::MissingNodes);
        }
        let ks = &self.config_keyspace;
        if ks.is_empty()
            || ks.len() > 48
            || !ks.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return Err(CassandraConfigError::Invalid {
                field: "keyspace",
                reason: format!("`{ks}`: 1 to 48 letters, digits or `_`"),
            });
        }
        check_namespace(&self.namespace)?;
        if self.page_size < 1 {
            return Err(CassandraConfigError::Invalid {
                field: "page_size",
                reason: "at least 1".into(),
            });
        }
        if self.partitions == 0 || self.partitions > MAX_PARTITIONS {
            return Err(CassandraConfigError::Invalid {
                field: "partitions",
                reason: format!("{}: 1 to {MAX_PARTITIONS}", self.partitions),
            });
        }
        if self.request_timeout.is_zero() || self.connect_timeout.is_zero() {
            return Err(CassandraConfigError::Invalid {
                field: "timeout",
                reason: "must be positive".into(),
            });
        }
        Ok(CassandraConfig {
            nodes: self.nodes,
            keyspace: self.config_keyspace,
            namespace: self.namespace,
            consistency: self.consistency,
            replication: self.replication,
            create_keyspace: self.create_keyspace,
            request_timeout: self.request_timeout,
            connect_timeout: self.connect_timeout,
            page_size: self.page_size,
            partitions: self.partitions,
        })
    }
}

pub(crate) fn check_namespace(ns: &str) -> Result<(), CassandraConfigError> {
    if ns.is_empty() || ns.len() > 128 || ns.chars().any(char::is_control) {
        return Err(CassandraConfigError::Invalid {
            field: "namespace",
            reason: format!("`{ns}`: 1 to 128 bytes, no control characters"),
        });
    }
    Ok(())
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
    fn from_env_reads_every_variable() {
        let c = CassandraConfig::from_lookup(env(&[
            (ENV_NODES, "10.0.0.1:9042, 10.0.0.2:9042"),
            (ENV_KEYSPACE, "diary"),
            (ENV_NAMESPACE, "tenant-1"),
            (ENV_CONSISTENCY, "QUORUM"),
            (ENV_REPLICATION, "dc1:3,dc2:2"),
            (ENV_PARTITIONS, " 16 "),
        ]))
        .unwrap()
        .build()
        .unwrap();
        assert_eq!(c.partitions(), 16);
        assert_eq!(c.nodes(), ["10.0.0.1:9042", "10.0.0.2:9042"]);
        assert_eq!(c.keyspace(), "diary");
        assert_eq!(c.namespace(), "tenant-1");
        assert_eq!(c.consistency(), Consistency::Quorum);
        assert_eq!(
            c.replication().cql(),
            "{'class': 'NetworkTopologyStrategy', 'dc1': 3, 'dc2': 2}"
        );
    }

    #[test]
    fn partitions_default_to_one_and_are_bounded() {
        let b = CassandraConfig::builder("a:1");
        assert_eq!(b.clone().build().unwrap().partitions(), 1);
        for bad in [0, MAX_PARTITIONS + 1] {
            assert!(matches!(
                b.clone().partitions(bad).build(),
                Err(CassandraConfigError::Invalid {
                    field: "partitions",
                    ..
                })
            ));
        }
        for bad in ["", "-1", "four", "1.5"] {
            assert!(matches!(
                CassandraConfig::from_lookup(env(&[(ENV_NODES, "a:1"), (ENV_PARTITIONS, bad)])),
                Err(CassandraConfigError::Env {
                    var: ENV_PARTITIONS,
                    ..
                })
            ));
        }
    }

    #[test]
    fn bad_values_are_typed_errors() {
        assert!(matches!(
            CassandraConfig::from_lookup(env(&[])),
            Err(CassandraConfigError::MissingNodes)
        ));
        assert!(matches!(
            CassandraConfig::from_lookup(env(&[(ENV_NODES, "a:1"), (ENV_CONSISTENCY, "most")])),
            Err(CassandraConfigError::Env {
                var: ENV_CONSISTENCY,
                ..
            })
        ));
        assert!(matches!(
            CassandraConfig::from_lookup(env(&[(ENV_NODES, "a:1"), (ENV_REPLICATION, "0")])),
            Err(CassandraConfigError::Env {
                var: ENV_REPLICATION,
                ..
            })
        ));
        assert!(matches!(
            CassandraConfig::builder("a:1")
                .keyspace("drop table")
                .build(),
            Err(CassandraConfigError::Invalid {
                field: "keyspace",
                ..
            })
        ));
        assert!(matches!(
            CassandraConfig::builder(" , ").build(),
            Err(CassandraConfigError::MissingNodes)
        ));
    }
}
