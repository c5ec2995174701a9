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

    /// The built web client to serve at `/` (the folder `npm run build`
    /// makes in `app/web`: `dist/`, with `index.html` and `assets/`; read
    /// once at start). Without it the server serves the API only.
    /// `scripts/serve` builds the client and sets it.
    #[arg(long, env = "METACHAT_WEB_DIR")]
    pub(crate) web_dir: Option<PathBuf>,

    /// Directory of the model assets fetched by `scripts/fetch-models`
    /// (`e5/e5-small-q4.bin`, `vader/vader_lexicon.txt`). Without a usable e5
    /// model the server falls back to the lexicon analyzer and says so loudly.
    #[arg(long, env = "METACHAT_MODEL_DIR", default_value = "models/")]
    pub(crate) model_dir: PathBuf,

    /// Which mood analyzer to run: `auto` (e5 from the model directory, else
    /// the lexicon) or `lexicon` (fast start, no model needed).
    #[arg(long, env = "METACHAT_ANALYZER", value_enum, default_value_t = AnalyzerChoice::Auto)]
    pub(crate) analyzer: AnalyzerChoice,

    /// Lifetime of an access token (a signed bearer token) in seconds;
    /// `POST /v1/sessions/refresh` gives a new one.
    #[arg(long, env = "METACHAT_TOKEN_TTL_SECS", default_value_t = 900,
          value_parser = clap::value_parser!(u64).range(1..=31_536_000))]
    pub(crate) token_ttl_secs: u64,

    /// Lifetime of a session (its refresh token) in seconds.
    #[arg(long, env = "METACHAT_REFRESH_TTL_SECS", default_value_t = 2_592_000,
          value_parser = clap::value_parser!(u64).range(1..=31_536_000))]
    pub(crate) refresh_ttl_secs: u64,

    /// The roles this process plays: `all` (the embedded server: every
    /// role, followers reading the log) or a comma-separated set of
    /// `user`, `diary`, `mood`, `matching`, `relay` (a distributed process:
    /// needs --store cassandra, --read-models cassandra and --bus kafka).
    #[arg(long, env = "METACHAT_ROLES", default_value = "all")]
    pub(crate) roles: crate::roles::RoleSet,

    /// This process's name among the instances of its roles (Kafka client
    /// and group names; a matching instance's read-model namespace).
    #[arg(long, env = "METACHAT_INSTANCE", default_value = "0",
          value_parser = parse_instance)]
    pub(crate) instance: String,

    /// The Cassandra namespace of a distributed process's read models.
    /// Default: `{CASSANDRA_NAMESPACE}_{roles}` (plus `_{instance}` with
    /// the matching role, whose instances each keep a full index).
    #[arg(long, env = "METACHAT_READ_MODEL_NAMESPACE")]
    pub(crate) read_model_namespace: Option<String>,

    /// The token signing key (PASERK `k4.secret`) of the `user` role; made
    /// with mode 0600 on first start if missing, its public key written to
    /// `<file>.pub`. Default: `token.key` in --data-dir.
    #[arg(long, env = "METACHAT_TOKEN_KEY_FILE")]
    pub(crate) token_key_file: Option<PathBuf>,

    /// The public token key (PASERK `k4.public`) that a process without the
    /// `user` role verifies tokens with. Default: `<--token-key-file>.pub`.
    #[arg(long, env = "METACHAT_TOKEN_PUBLIC_KEY_FILE")]
    pub(crate) token_public_key_file: Option<PathBuf>,

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
    /// models are cleared first; the log is untouched). In a distributed
    /// process: its own projections' read models are cleared and they read
    /// their topics again from the earliest record, as new consumer groups
    /// (the topics must still hold every event: Kafka's retention).
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

    /// Address of the Prometheus `/metrics` listener (kept off the public
    /// address; port 0 picks a free port, logged as `metrics listening`).
    #[arg(long, env = "METACHAT_METRICS_ADDR", default_value = "127.0.0.1:9464")]
    pub(crate) metrics_addr: SocketAddr,

    /// Seconds a client has to send a whole request head once its first
    /// byte arrived; then the connection is closed.
    #[arg(long, env = "METACHAT_HEADER_TIMEOUT_SECS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=3_600))]
    pub(crate) header_timeout_secs: u64,

    /// Seconds a client has to send a request body, from when its handler
    /// starts reading it; then 408 `request_timeout` and the connection is
    /// closed.
    #[arg(long, env = "METACHAT_BODY_TIMEOUT_SECS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=3_600))]
    pub(crate) body_timeout_secs: u64,

    /// Seconds a kept-alive connection may sit idle (no request under way,
    /// none started) before it is closed.
    #[arg(long, env = "METACHAT_IDLE_TIMEOUT_SECS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..=3_600))]
    pub(crate) idle_timeout_secs: u64,

    /// The most client connections open at once; one more is answered 503
    /// (`Retry-After: 1`) and closed.
    #[arg(long, env = "METACHAT_MAX_CONNECTIONS", default_value_t = 1_024,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub(crate) max_connections: u64,

    /// On SIGTERM or Ctrl-C, seconds the open connections get to finish
    /// their requests before they are closed.
    #[arg(long, env = "METACHAT_SHUTDOWN_TIMEOUT_SECS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=3_600))]
    pub(crate) shutdown_timeout_secs: u64,

    /// The most password hashes or verifications (argon2id, ~19 MiB and
    /// one core each) run at once; 0 means one per core.
    #[arg(long, env = "METACHAT_HASH_CONCURRENCY", default_value_t = 0)]
    pub(crate) hash_concurrency: usize,

    /// Milliseconds a login or registration waits for a hashing slot; then
    /// 503 `busy` with `Retry-After`.
    #[arg(long, env = "METACHAT_HASH_WAIT_MS", default_value_t = 2_000,
          value_parser = clap::value_parser!(u64).range(0..=600_000))]
    pub(crate) hash_wait_ms: u64,

    /// Failed logins of one account that lock it out for
    /// --login-lockout-secs (the first half are free, then each waits
    /// twice as long as the one before, from --login-backoff-ms).
    #[arg(long, env = "METACHAT_LOGIN_ACCOUNT_MAX_FAILURES", default_value_t = 5,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) login_account_max_failures: u32,

    /// Failed logins from one client address (over any accounts) that lock
    /// it out, with the same backoff and lockout.
    #[arg(long, env = "METACHAT_LOGIN_CLIENT_MAX_FAILURES", default_value_t = 100,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) login_client_max_failures: u32,

    /// The first backoff after the free failed logins, in milliseconds.
    #[arg(long, env = "METACHAT_LOGIN_BACKOFF_MS", default_value_t = 1_000)]
    pub(crate) login_backoff_ms: u64,

    /// How long a lockout lasts, and how long a failed login is remembered,
    /// in seconds.
    #[arg(long, env = "METACHAT_LOGIN_LOCKOUT_SECS", default_value_t = 900,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub(crate) login_lockout_secs: u64,

    /// Registrations one client address may make per minute (the quota
    /// refills evenly); more are answered 429 with `Retry-After`.
    #[arg(long, env = "METACHAT_REGISTER_PER_MINUTE", default_value_t = 10,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) register_per_minute: u32,

    /// Registrations one client address may make in a burst.
    #[arg(long, env = "METACHAT_REGISTER_BURST", default_value_t = 5,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) register_burst: u32,

    /// Seconds between sweeps that delete expired sessions and forget
    /// stale throttling records.
    #[arg(long, env = "METACHAT_SWEEP_INTERVAL_SECS", default_value_t = 300,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub(crate) sweep_interval_secs: u64,
}

/// An instance name: 1 to 32 ASCII letters, digits, `_` or `-`.
fn parse_instance(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.len() <= 32
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(s.to_owned())
    } else {
        Err("1 to 32 ASCII letters, digits, `_` or `-`".into())
    }
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

    /// How many password hashes may run at once (`--hash-concurrency`, 0:
    /// one per core).
    pub(crate) fn hash_concurrency(&self) -> usize {
        match self.hash_concurrency {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            n => n,
        }
    }

    /// The HTTP connection limits.
    pub(crate) fn http(&self) -> crate::serve::HttpLimits {
        crate::serve::HttpLimits {
            header_timeout: Duration::from_secs(self.header_timeout_secs),
            body_timeout: Duration::from_secs(self.body_timeout_secs),
            idle_timeout: Duration::from_secs(self.idle_timeout_secs),
            max_connections: usize::try_from(self.max_connections).unwrap_or(usize::MAX),
            shutdown_timeout: Duration::from_secs(self.shutdown_timeout_secs),
        }
    }

    /// The interval of the session and throttle sweep.
    pub(crate) fn sweep_interval(&self) -> Duration {
        Duration::from_secs(self.sweep_interval_secs)
    }

    /// The access-token lifetime.
    pub(crate) fn token_ttl(&self) -> Duration {
        Duration::from_secs(self.token_ttl_secs)
    }

    /// The session (refresh-token) lifetime.
    pub(crate) fn refresh_ttl(&self) -> Duration {
        Duration::from_secs(self.refresh_ttl_secs)
    }

    /// The token signing key file (`--token-key-file`, else in --data-dir).
    pub(crate) fn token_key_file(&self) -> PathBuf {
        self.token_key_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("token.key"))
    }

    /// The public token key file.
    pub(crate) fn token_public_key_file(&self) -> PathBuf {
        self.token_public_key_file
            .clone()
            .unwrap_or_else(|| crate::token::public_key_path(&self.token_key_file()))
    }

    /// The read-model namespace of a distributed process (see
    /// `--read-model-namespace`), given the store's namespace.
    pub(crate) fn read_model_namespace_for(&self, base: &str) -> String {
        if let Some(ns) = &self.read_model_namespace {
            return ns.clone();
        }
        let mut ns = base.to_owned();
        for role in self.roles.iter() {
            ns.push('_');
            ns.push_str(role.name());
        }
        if self.roles.has(crate::roles::Role::Matching) {
            ns.push('_');
            ns.push_str(&self.instance);
        }
        ns
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
        assert!(parse(&["--max-connections", "0"]).is_err());
        assert!(parse(&["--header-timeout-secs", "0"]).is_err());
        assert!(parse(&["--register-per-minute", "0"]).is_err());
        assert!(parse(&["--login-account-max-failures", "0"]).is_err());
        assert!(parse(&["--roles", "gateway"]).is_err());
        assert!(parse(&["--roles", "all,mood"]).is_err());
        assert!(parse(&["--instance", "a b"]).is_err());
        assert!(parse(&["--instance", ""]).is_err());
    }

    #[test]
    fn hardening_defaults_are_documented_values() {
        let c = parse(&[]).expect("defaults");
        let http = c.http();
        assert_eq!(http.header_timeout, Duration::from_secs(10));
        assert_eq!(http.body_timeout, Duration::from_secs(30));
        assert_eq!(http.idle_timeout, Duration::from_secs(60));
        assert_eq!(http.max_connections, 1_024);
        assert_eq!(http.shutdown_timeout, Duration::from_secs(10));
        assert_eq!(c.metrics_addr.port(), 9464);
        assert!(c.metrics_addr.ip().is_loopback());
        assert!(c.hash_concurrency() >= 1, "0 means one per core");
        assert_eq!(c.hash_wait_ms, 2_000);
        assert_eq!(
            (c.login_account_max_failures, c.login_client_max_failures),
            (5, 100)
        );
        assert_eq!((c.register_per_minute, c.register_burst), (10, 5));
        let c =
            parse(&["--hash-concurrency", "3", "--metrics-addr", "127.0.0.1:0"]).expect("valid");
        assert_eq!(c.hash_concurrency(), 3);
        assert_eq!(c.metrics_addr.port(), 0);
    }

    #[test]
    fn a_distributed_process_has_read_models_of_its_own() {
        let c = parse(&[]).expect("defaults");
        assert!(c.roles.is_embedded(), "`all` is the default");
        let c = parse(&["--roles", "diary"]).expect("valid");
        assert_eq!(c.read_model_namespace_for("prod"), "prod_diary");
        let c = parse(&["--roles", "mood,relay", "--instance", "2"]).expect("valid");
        assert_eq!(
            c.read_model_namespace_for("prod"),
            "prod_mood_relay",
            "mood workers share their records whatever the instance"
        );
        let c = parse(&["--roles", "matching", "--instance", "b"]).expect("valid");
        assert_eq!(
            c.read_model_namespace_for("prod"),
            "prod_matching_b",
            "each matching instance keeps a whole index"
        );
        let c = parse(&["--roles", "user", "--read-model-namespace", "mine"]).expect("valid");
        assert_eq!(c.read_model_namespace_for("prod"), "mine");
        let c = parse(&["--data-dir", "/d"]).expect("valid");
        assert_eq!(c.token_key_file(), PathBuf::from("/d/token.key"));
        assert_eq!(c.token_public_key_file(), PathBuf::from("/d/token.key.pub"));
        assert_eq!(
            c.token_ttl(),
            Duration::from_secs(900),
            "short access tokens"
        );
        assert_eq!(c.refresh_ttl(), Duration::from_secs(30 * 86_400));
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
            "METACHAT_METRICS_ADDR",
            "METACHAT_HEADER_TIMEOUT_SECS",
            "METACHAT_BODY_TIMEOUT_SECS",
            "METACHAT_IDLE_TIMEOUT_SECS",
            "METACHAT_MAX_CONNECTIONS",
            "METACHAT_SHUTDOWN_TIMEOUT_SECS",
            "METACHAT_HASH_CONCURRENCY",
            "METACHAT_HASH_WAIT_MS",
            "METACHAT_LOGIN_ACCOUNT_MAX_FAILURES",
            "METACHAT_LOGIN_CLIENT_MAX_FAILURES",
            "METACHAT_LOGIN_BACKOFF_MS",
            "METACHAT_LOGIN_LOCKOUT_SECS",
            "METACHAT_REGISTER_PER_MINUTE",
            "METACHAT_REGISTER_BURST",
            "METACHAT_SWEEP_INTERVAL_SECS",
            "METACHAT_ROLES",
            "METACHAT_INSTANCE",
            "METACHAT_READ_MODEL_NAMESPACE",
            "METACHAT_TOKEN_KEY_FILE",
            "METACHAT_TOKEN_PUBLIC_KEY_FILE",
            "METACHAT_REFRESH_TTL_SECS",
        ] {
            assert!(help.contains(var), "{var} missing from --help");
        }
    }
}
