//! Configuration by flags and environment variables (`--help` lists both).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

/// The MetaChat server: REST API, auth, mood worker and matching in one
/// process, on the embedded sled store by default, or on Cassandra (and
/// Kafka) by configuration.
#[derive(Debug, Clone, Parser)]
#[command(name = "metachat-server", version, about)]
pub(crate) struct Config {
    /// Directory of the sled database (created if missing), used when the
    /// store or the read models are on sled.
    #[arg(long, env = "METACHAT_DATA_DIR", default_value = "./data")]
    pub(crate) data_dir: PathBuf,

    /// Where events are stored: `sled` (embedded, in --data-dir) or
    /// `cassandra` (the nodes in CASSANDRA_NODES; CASSANDRA_KEYSPACE,
    /// CASSANDRA_NAMESPACE, CASSANDRA_CONSISTENCY and CASSANDRA_REPLICATION
    /// are read too).
    #[arg(long, env = "METACHAT_STORE", value_enum, default_value_t = StoreChoice::Sled)]
    pub(crate) store: StoreChoice,

    /// Where read models, checkpoints, sessions and data keys are kept:
    /// `sled` or `cassandra` (as for --store).
    #[arg(long, env = "METACHAT_READ_MODELS", value_enum, default_value_t = StoreChoice::Sled)]
    pub(crate) read_models: StoreChoice,

    /// The event bus every stored event is relayed to: `none`, or `kafka`
    /// (the brokers in KAFKA_BROKERS; topics `{KAFKA_TOPIC_PREFIX}{category}`,
    /// prefix `metachat.` by default).
    #[arg(long, env = "METACHAT_BUS", value_enum, default_value_t = BusChoice::None)]
    pub(crate) bus: BusChoice,

    /// Address to listen on.
    #[arg(long, env = "METACHAT_ADDR", default_value = "127.0.0.1:8080")]
    pub(crate) addr: SocketAddr,

    /// Directory of the model assets fetched by `scripts/fetch-models`
    /// (`e5/e5-small-q4.bin`, `vader/vader_lexicon.txt`). Without a usable e5
    /// model the server falls back to the lexicon analyzer and says so loudly.
    #[arg(long, env = "METACHAT_MODEL_DIR", default_value = "models/")]
    pub(crate) model_dir: PathBuf,

    /// Which mood analyzer to run: `auto` (e5 from the model directory, else
    /// the lexicon) or `lexicon` (fast start, no model needed).
    #[arg(long, env = "METACHAT_ANALYZER", value_enum, default_value_t = AnalyzerChoice::Auto)]
    pub(crate) analyzer: AnalyzerChoice,

    /// Lifetime of a bearer token in seconds.
    #[arg(long, env = "METACHAT_TOKEN_TTL_SECS", default_value_t = 86_400,
          value_parser = clap::value_parser!(u64).range(1..=31_536_000))]
    pub(crate) token_ttl_secs: u64,

    /// Log format.
    #[arg(long, env = "METACHAT_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub(crate) log_format: LogFormat,

    /// When sled acknowledges writes: `sync` (after an fsync; a 2xx write
    /// survives a crash) or `periodic` (fsync every `--sync-interval-ms`; a
    /// crash can lose the last interval's acknowledged writes). Cassandra
    /// acknowledges at its configured consistency.
    #[arg(long, env = "METACHAT_DURABILITY", value_enum, default_value_t = DurabilityChoice::Sync)]
    pub(crate) durability: DurabilityChoice,

    /// Rebuild every projection from position 0 before serving (the read
    /// models are cleared first; the log is untouched).
    #[arg(long, env = "METACHAT_REBUILD_PROJECTIONS")]
    pub(crate) rebuild_projections: bool,

    /// File of the blind-index key that hides email addresses (64 hex
    /// digits; made with mode 0600 on first start if missing). Default:
    /// `index.key` in --data-dir. `METACHAT_INDEX_KEY` (the key itself)
    /// overrides it. Every process serving the same users needs the same
    /// key.
    #[arg(long, env = "METACHAT_INDEX_KEY_FILE")]
    pub(crate) index_key_file: Option<PathBuf>,

    /// The fsync interval of `--durability periodic`, in milliseconds.
    #[arg(long, env = "METACHAT_SYNC_INTERVAL_MS", default_value_t = 100,
          value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub(crate) sync_interval_ms: u64,
}

/// A backend for the event store or the read models.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum StoreChoice {
    /// The embedded sled database in the data directory.
    Sled,
    /// Apache Cassandra.
    Cassandra,
}

/// The event bus.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum BusChoice {
    /// No bus.
    None,
    /// Apache Kafka, fed by the outbox relay.
    Kafka,
}

/// The mood analyzer to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum AnalyzerChoice {
    /// e5 from the model directory; the lexicon when it is missing or broken.
    Auto,
    /// The lexicon baseline only.
    Lexicon,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Durability of acknowledged writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum DurabilityChoice {
    /// fsync before answering.
    Sync,
    /// fsync in the background.
    Periodic,
}

impl Config {
    /// The blind-index key file (`--index-key-file`, else in --data-dir).
    pub(crate) fn index_key_file(&self) -> PathBuf {
        self.index_key_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("index.key"))
    }

    /// The token lifetime.
    pub(crate) fn token_ttl(&self) -> Duration {
        Duration::from_secs(self.token_ttl_secs)
    }

    /// The sled durability setting.
    pub(crate) fn durability(&self) -> metachat_adapters::sled::Durability {
        match self.durability {
            DurabilityChoice::Sync => metachat_adapters::sled::Durability::Sync,
            DurabilityChoice::Periodic => metachat_adapters::sled::Durability::Periodic(
                Duration::from_millis(self.sync_interval_ms),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Config, clap::Error> {
        Config::try_parse_from(std::iter::once("metachat-server").chain(args.iter().copied()))
    }

    #[test]
    fn flags_override_defaults() {
        let c = parse(&[
            "--data-dir",
            "/tmp/x",
            "--addr",
            "0.0.0.0:9000",
            "--analyzer",
            "lexicon",
            "--token-ttl-secs",
            "60",
            "--log-format",
            "json",
            "--durability",
            "periodic",
        ])
        .expect("valid flags");
        assert_eq!(c.data_dir, PathBuf::from("/tmp/x"));
        assert_eq!(c.addr.port(), 9000);
        assert_eq!(c.analyzer, AnalyzerChoice::Lexicon);
        assert_eq!(c.token_ttl(), Duration::from_secs(60));
        assert_eq!(c.log_format, LogFormat::Json);
        assert!(matches!(
            c.durability(),
            metachat_adapters::sled::Durability::Periodic(d) if d == Duration::from_millis(100)
        ));
        assert_eq!(
            (c.store, c.read_models, c.bus),
            (StoreChoice::Sled, StoreChoice::Sled, BusChoice::None),
            "the embedded server is the default"
        );
        let c = parse(&[
            "--store",
            "cassandra",
            "--read-models",
            "cassandra",
            "--bus",
            "kafka",
        ])
        .expect("valid backends");
        assert_eq!(
            (c.store, c.read_models, c.bus),
            (
                StoreChoice::Cassandra,
                StoreChoice::Cassandra,
                BusChoice::Kafka
            )
        );
    }

    #[test]
    fn bad_values_are_refused() {
        assert!(parse(&["--addr", "nowhere"]).is_err());
        assert!(parse(&["--token-ttl-secs", "0"]).is_err());
        assert!(parse(&["--analyzer", "gpt"]).is_err());
        assert!(parse(&["--log-format", "xml"]).is_err());
        assert!(parse(&["--unknown"]).is_err());
        assert!(parse(&["--store", "eventstoredb"]).is_err());
        assert!(parse(&["--bus", "rabbitmq"]).is_err());
    }

    #[test]
    fn help_lists_the_environment() {
        let help = parse(&["--help"])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        for var in [
            "METACHAT_DATA_DIR",
            "METACHAT_ADDR",
            "METACHAT_MODEL_DIR",
            "METACHAT_TOKEN_TTL_SECS",
            "METACHAT_LOG_FORMAT",
            "METACHAT_DURABILITY",
            "METACHAT_STORE",
            "METACHAT_READ_MODELS",
            "METACHAT_BUS",
        ] {
            assert!(help.contains(var), "{var} missing from --help");
        }
    }
}
