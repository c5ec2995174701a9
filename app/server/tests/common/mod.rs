//! What the end-to-end tests share: the real `metachat-server` process on a
//! temporary data directory and a free loopback port (killed on drop), an
//! HTTP client speaking the contract of `app/server/API.md`, bounded
//! polling, and the checks every answer must pass (error shape, mood shape).
//!
//! Every test talks to the server over HTTP only; nothing here reaches into
//! the server's code.
//!
//! The suite runs on one [`Backend`] per run, chosen by
//! `METACHAT_E2E_BACKEND`: `sled` (the default: the embedded server) or
//! `cassandra` (the server on the Cassandra store and read models at
//! `CASSANDRA_NODES`, relaying every event to the Kafka broker at
//! `KAFKA_BROKERS`; each test server gets a namespace and topic prefix of
//! its own). `scripts/test` runs it once on each.

#![allow(dead_code, unreachable_pub)]

pub mod distributed;

use std::collections::HashSet;
use std::fs::{self, OpenOptions};
use std::future::Future;
use std::io::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, CONTENT_TYPE};
use reqwest::{Client, Method, StatusCode};
use serde_json::{json, Value};
use tempfile::TempDir;
use uuid::Uuid;

/// The server binary cargo built for these tests.
pub const BIN: &str = env!("CARGO_BIN_EXE_metachat-server");

/// How long a server may take to answer `/healthz` after it was spawned.
pub const START_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a test waits for the projections or the mood worker to catch up.
pub const CATCH_UP: Duration = Duration::from_secs(90);

/// The repository root (two levels above this package).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The model directory: `$METACHAT_MODEL_DIR`, else `<repo>/models`.
pub fn model_dir() -> PathBuf {
    match std::env::var_os("METACHAT_MODEL_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => repo_root().join("models"),
    }
}

/// The backends the test servers run on (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The embedded sled database in the server's data directory.
    Sled,
    /// Cassandra for the store and the read models, Kafka for the bus.
    Cassandra,
    /// The same, as one process per role behind the nginx gateway
    /// (`distributed.rs`).
    Distributed,
}

impl Backend {
    /// The backend this run is for, from `METACHAT_E2E_BACKEND`.
    pub fn current() -> Backend {
        match std::env::var("METACHAT_E2E_BACKEND").as_deref() {
            Err(_) | Ok("" | "sled") => Backend::Sled,
            Ok("cassandra") => Backend::Cassandra,
            Ok("distributed") => Backend::Distributed,
            Ok(other) => {
                panic!("METACHAT_E2E_BACKEND={other}: expected sled, cassandra or distributed")
            }
        }
    }

    /// The server's flags and environment for this backend; `ns` makes the
    /// Cassandra namespace of one server (the same across its restarts). A Cassandra run without a node or a broker to
    /// talk to fails: it was asked for explicitly.
    fn configure(self, cmd: &mut Command, ns: &str) {
        if self == Backend::Sled {
            return;
        }
        for var in ["CASSANDRA_NODES", "KAFKA_BROKERS"] {
            let set = std::env::var(var).is_ok_and(|v| !v.trim().is_empty());
            assert!(
                set,
                "METACHAT_E2E_BACKEND={self:?} needs {var}: start the servers with \
                 `eval \"$(scripts/cassandra start)\"; eval \"$(scripts/kafka start)\"`"
            );
        }
        cmd.args([
            "--store",
            "cassandra",
            "--read-models",
            "cassandra",
            "--bus",
            "kafka",
        ])
        .env("CASSANDRA_NAMESPACE", format!("e2e{ns}"));
        // (`Server::cassandra_namespace` names it for the tests.)
    }
}

/// Which mood analyzer the server runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Analyzer {
    /// `--analyzer lexicon`: fast, needs only `vader/vader_lexicon.txt`.
    Lexicon,
    /// The server's default: the real e5 model from the model directory.
    Model,
}

impl Analyzer {
    /// The model file this analyzer needs, relative to the model directory.
    fn needs(self) -> &'static str {
        match self {
            Analyzer::Lexicon => "vader/vader_lexicon.txt",
            Analyzer::Model => "e5/e5-small-q4.bin",
        }
    }
}

/// True when the files `analyzer` needs are in the model directory.
/// Otherwise skips ([`metachat_testkit::skip`]: fails in CI, where a missing
/// model must fail the suite) and returns false.
pub fn models_present(analyzer: Analyzer) -> bool {
    let file = model_dir().join(analyzer.needs());
    if file.is_file() {
        return true;
    }
    metachat_testkit::skip(format!(
        "{} is missing; run scripts/fetch-models",
        file.display()
    ));
    false
}

/// How a server is started.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The mood analyzer.
    pub analyzer: Analyzer,
    /// `METACHAT_TOKEN_TTL_SECS`, when set.
    pub token_ttl_secs: Option<u64>,
    /// Extra arguments after the defaults.
    pub args: Vec<String>,
    /// Extra environment variables of the server process(es).
    pub env: Vec<(String, String)>,
    /// The processes (name, `--roles`) of a distributed system
    /// ([`Backend::Distributed`] only).
    pub processes: &'static [(&'static str, &'static str)],
}

impl ServerConfig {
    /// The lexicon analyzer, default token lifetime.
    pub fn lexicon() -> Self {
        ServerConfig {
            analyzer: Analyzer::Lexicon,
            token_ttl_secs: None,
            args: Vec::new(),
            env: Vec::new(),
            processes: &distributed::PROCESSES,
        }
    }

    /// The real model, default token lifetime.
    pub fn model() -> Self {
        ServerConfig {
            analyzer: Analyzer::Model,
            ..ServerConfig::lexicon()
        }
    }
}

/// A running `metachat-server` process on its own temporary data directory.
/// Dropping it kills the process (SIGKILL) and removes the directory.
#[derive(Debug)]
pub struct Server {
    /// Holds the data directory (`data/`) and the server's log (`server.log`).
    dir: TempDir,
    child: Option<Child>,
    /// The processes and gateway of a distributed system.
    cluster: Option<distributed::Cluster>,
    /// `http://127.0.0.1:<port>` of the current process.
    pub base: String,
    /// `http://127.0.0.1:<port>` of the current process's metrics listener
    /// (`--metrics-addr`, a free port picked by the server, read from its
    /// log).
    pub metrics_base: String,
    config: ServerConfig,
    starts: u32,
    /// Names this server's Cassandra namespace and Kafka topics.
    ns: String,
    /// The backend it runs on.
    pub backend: Backend,
}

impl Server {
    /// Starts a server with `config`, or returns `None` (after printing
    /// `SKIPPED: …`) when the model files it needs are missing outside CI.
    pub async fn start(config: ServerConfig) -> Option<Server> {
        if !models_present(config.analyzer) {
            return None;
        }
        let dir = tempfile::Builder::new()
            .prefix("metachat-e2e-")
            .tempdir()
            .expect("create a temporary directory");
        fs::create_dir_all(dir.path().join("data")).expect("create the data directory");
        let mut server = Server {
            dir,
            child: None,
            cluster: None,
            base: String::new(),
            metrics_base: String::new(),
            config,
            starts: 0,
            ns: Uuid::new_v4().simple().to_string(),
            backend: Backend::current(),
        };
        server.spawn().await;
        Some(server)
    }

    /// Starts a lexicon server (see [`Server::start`]).
    pub async fn lexicon() -> Option<Server> {
        Server::start(ServerConfig::lexicon()).await
    }

    /// The data directory (the same across restarts).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The server's combined stdout and stderr, all runs so far.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    /// The log's text (lossy).
    pub fn log(&self) -> String {
        String::from_utf8_lossy(&fs::read(self.log_path()).unwrap_or_default()).into_owned()
    }

    /// The last `n` lines of the log, for failure messages, without the
    /// frames of a backtrace (with `RUST_BACKTRACE` set, a process that
    /// fails at start would fill the tail with them and hide its error).
    pub fn log_tail(&self, n: usize) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().filter(|l| !is_backtrace_frame(l)).collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// The process id of the running server (of a distributed system:
    /// the `user` process's).
    pub fn pid(&self) -> u32 {
        if let Some(cluster) = &self.cluster {
            return cluster.pid();
        }
        self.child.as_ref().expect("the server is running").id()
    }

    /// `base` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// `host:port` of the server process's own listener: the public one,
    /// or in a distributed system the user process's (not the gateway).
    pub fn process_addr(&self) -> String {
        match &self.cluster {
            Some(cluster) => cluster
                .process_url("user")
                .trim_start_matches("http://")
                .to_owned(),
            None => self.addr(),
        }
    }

    /// `host:port` of the public listener, for raw TCP.
    pub fn addr(&self) -> String {
        self.base.trim_start_matches("http://").to_owned()
    }

    /// `GET /metrics` on the metrics listener; asserts 200 and returns the
    /// Prometheus text.
    pub async fn metrics(&self) -> String {
        let r = Api::new(&self.metrics_base)
            .raw(Method::GET, "/metrics", &[], None)
            .await;
        r.expect(200);
        r.text
    }

    /// The processes of the distributed system; panics on another backend.
    pub fn cluster(&mut self) -> &mut distributed::Cluster {
        self.cluster.as_mut().expect("a distributed system")
    }

    /// SIGKILLs one process of the distributed system.
    pub fn kill_process(&mut self, name: &str) {
        self.cluster().kill_process(name);
    }

    /// Starts one more process (name, `--roles`) in the distributed system
    /// (not behind the gateway: reach it with [`Cluster::process_url`]).
    pub async fn add_process(&mut self, name: &'static str, roles: &'static str) {
        let mut cluster = self.cluster.take().expect("a distributed system");
        cluster.add_process(self, name, roles).await;
        self.cluster = Some(cluster);
    }

    /// Starts a killed process of the distributed system again.
    pub async fn restart_process(&mut self, name: &str) {
        let mut cluster = self.cluster.take().expect("a distributed system");
        cluster.restart_process(self, name).await;
        self.cluster = Some(cluster);
    }

    /// A client for this process (a restart changes the port: take a new one).
    pub fn api(&self) -> Api {
        let api = Api::new(&self.base);
        match &self.cluster {
            Some(cluster) => api.with_ready(cluster.process_urls()),
            None => api,
        }
    }

    /// Spawns the process on a free port and waits for `/healthz`; retries
    /// on a fresh port when the process dies before answering (the port may
    /// have been taken between our probe and its bind).
    async fn spawn(&mut self) {
        if self.backend == Backend::Distributed {
            self.starts += 1;
            let cluster = distributed::Cluster::start(self).await;
            self.base = cluster.gateway_url.clone();
            self.metrics_base = cluster.metrics_url.clone();
            self.cluster = Some(cluster);
            return;
        }
        let mut last_err = String::new();
        for _attempt in 0..3 {
            let port = free_port();
            self.starts += 1;
            let mut cmd = self.command(port, &self.data_dir(), &format!("on port {port}"));
            cmd.args(&self.config.args);
            cmd.envs(self.config.env.iter().map(|(k, v)| (k, v)));
            let child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {BIN}: {e}"));
            self.child = Some(child);
            self.base = format!("http://127.0.0.1:{port}");
            match self.wait_healthy().await {
                Ok(()) => {
                    self.metrics_base = self.metrics_address();
                    return;
                }
                Err(e) => {
                    last_err = e;
                    self.kill_now();
                }
            }
        }
        panic!(
            "the server did not become healthy: {last_err}\n--- server log ---\n{}",
            self.log_tail(60)
        );
    }

    /// The server command for one process on `port` with `data_dir`, its
    /// output appended to the log after a `==== e2e: start` line naming
    /// `what`; the test's own arguments are not added yet.
    fn command(&self, port: u16, data_dir: &Path, what: &str) -> Command {
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("open the server log");
        writeln!(log, "==== e2e: start #{} {what} ====", self.starts)
            .expect("write the server log");
        let err = log.try_clone().expect("clone the log handle");
        let mut cmd = Command::new(BIN);
        // Nothing of the caller's METACHAT_* environment leaks in.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("METACHAT_") {
                cmd.env_remove(key);
            }
        }
        cmd.env("METACHAT_DATA_DIR", data_dir)
            .env("METACHAT_ADDR", format!("127.0.0.1:{port}"))
            .env("METACHAT_MODEL_DIR", model_dir())
            // A free port for /metrics, found in the log after start.
            .env("METACHAT_METRICS_ADDR", "127.0.0.1:0")
            // Every test registers its users from 127.0.0.1, and some
            // many at once: generous registration and hashing limits
            // unless a test asks for small ones (its flags win).
            .env("METACHAT_REGISTER_PER_MINUTE", "1000000")
            .env("METACHAT_REGISTER_BURST", "1000000")
            .env("METACHAT_HASH_WAIT_MS", "600000")
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(err));
        if self.config.analyzer == Analyzer::Lexicon {
            cmd.args(["--analyzer", "lexicon"]);
        }
        if let Some(ttl) = self.config.token_ttl_secs {
            cmd.env("METACHAT_TOKEN_TTL_SECS", ttl.to_string());
        }
        // Topics of its own, should it run a bus (`--bus kafka`).
        cmd.env("KAFKA_TOPIC_PREFIX", self.topic_prefix());
        self.backend.configure(&mut cmd, &self.ns);
        cmd
    }

    async fn wait_healthy(&mut self) -> Result<(), String> {
        let url = self.url("/healthz");
        let child = self.child.as_mut().expect("a spawned process");
        wait_healthy(child, &url).await
    }

    /// The metrics listener's address, from this start's
    /// `metrics listening addr=…` log line (logged before the server
    /// answers `/healthz`).
    fn metrics_address(&self) -> String {
        let log = self.log();
        let marker = format!("==== e2e: start #{} ", self.starts);
        let this_start = log.rfind(&marker).map_or(log.as_str(), |i| &log[i..]);
        let plain = strip_ansi(this_start);
        let line = plain
            .lines()
            .find(|l| l.contains("metrics listening"))
            .unwrap_or_else(|| panic!("no `metrics listening` line in the log:\n{plain}"));
        // A text line (`addr=…`) or a JSON one (`--log-format json`).
        let json_addr = serde_json::from_str::<Value>(line)
            .ok()
            .and_then(|v| v["fields"]["addr"].as_str().map(str::to_owned));
        let addr = json_addr.unwrap_or_else(|| {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix("addr="))
                .unwrap_or_else(|| panic!("no addr= in {line:?}"))
                .trim_matches('"')
                .to_owned()
        });
        format!("http://{addr}")
    }

    fn kill_now(&mut self) -> Option<ExitStatus> {
        if let Some(cluster) = self.cluster.take() {
            return Some(cluster.kill());
        }
        let mut child = self.child.take()?;
        let _ = child.kill();
        child.wait().ok()
    }

    /// SIGKILL: the process dies at once, wherever it is.
    pub fn sigkill(&mut self) -> ExitStatus {
        self.kill_now().expect("the server was running")
    }

    /// SIGTERM, then waits (bounded) for the process to exit.
    pub async fn sigterm(&mut self, within: Duration) -> ExitStatus {
        if let Some(cluster) = self.cluster.take() {
            return match cluster.sigterm(within).await {
                Ok(status) => status,
                Err(e) => panic!("{e}\n--- server log ---\n{}", self.log_tail(40)),
            };
        }
        let pid = self.pid();
        let pid = nix::unistd::Pid::from_raw(i32::try_from(pid).expect("pid fits i32"));
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("send SIGTERM");
        let deadline = Instant::now() + within;
        loop {
            let child = self.child.as_mut().expect("the server was running");
            if let Some(status) = child.try_wait().expect("poll the server process") {
                self.child = None;
                return status;
            }
            if Instant::now() > deadline {
                let tail = self.log_tail(40);
                self.kill_now();
                panic!("the server did not exit within {within:?} of SIGTERM\n--- server log ---\n{tail}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Starts the server again on the same data directory (new port). Kills
    /// the running process first, if any.
    pub async fn restart(&mut self) {
        self.kill_now();
        self.spawn().await;
    }

    /// Like [`Server::restart`], with extra arguments for this start only.
    pub async fn restart_with(&mut self, args: &[&str]) {
        let saved = self.config.args.clone();
        self.config
            .args
            .extend(args.iter().map(|a| (*a).to_owned()));
        self.restart().await;
        self.config.args = saved;
    }

    /// The Cassandra namespace of the server's event store.
    pub fn cassandra_namespace(&self) -> String {
        format!("e2e{}", self.ns)
    }

    /// The Kafka topic prefix the server relays to when it runs a bus.
    pub fn topic_prefix(&self) -> String {
        format!("e2e.{}.", self.ns)
    }

    /// Where `needle` occurs in the rows of this server's Cassandra
    /// namespace (`table.column` per hit), with how many rows were read;
    /// `None` on sled. Reads through the Python driver that
    /// `scripts/cassandra install` puts under the build directory.
    pub fn cassandra_occurrences(&self, needle: &[u8]) -> Option<(Vec<String>, usize)> {
        if !matches!(self.backend, Backend::Cassandra | Backend::Distributed) {
            return None;
        }
        let build = std::env::var_os("METACHAT_BUILD_DIR")
            .map_or_else(|| repo_root().join("target/services"), PathBuf::from);
        let python = build.join("cassandra/python/bin/python");
        let hex: String = needle.iter().map(|b| format!("{b:02x}")).collect();
        let out = Command::new(&python)
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/cassandra_rows.py"))
            .arg(std::env::var("CASSANDRA_NODES").expect("CASSANDRA_NODES"))
            .arg(std::env::var("CASSANDRA_KEYSPACE").unwrap_or_else(|_| "metachat".into()))
            .arg(format!("e2e{}", self.ns))
            .arg(hex)
            .output()
            .unwrap_or_else(|e| {
                panic!("run {} ({e}): scripts/cassandra install", python.display())
            });
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "the Cassandra row scan failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let hits = text
            .lines()
            .filter_map(|l| l.strip_prefix("hit "))
            .map(str::to_owned)
            .collect();
        let rows = text
            .lines()
            .find_map(|l| l.strip_prefix("rows "))
            .and_then(|n| n.trim().parse().ok())
            .expect("the scan reports the rows it read");
        Some((hits, rows))
    }

    /// Every byte of every file under the data directory, with its path.
    pub fn data_files(&self) -> Vec<(PathBuf, Vec<u8>)> {
        let mut out = Vec::new();
        let mut stack = vec![self.data_dir()];
        while let Some(dir) = stack.pop() {
            for entry in fs::read_dir(&dir).expect("read the data directory") {
                let path = entry.expect("a directory entry").path();
                if path.is_dir() {
                    stack.push(path);
                } else if let Ok(bytes) = fs::read(&path) {
                    out.push((path, bytes));
                }
            }
        }
        out
    }
}

/// The paths of the `files` that contain `needle`.
pub fn found_in(files: &[(PathBuf, Vec<u8>)], needle: &[u8]) -> Vec<String> {
    files
        .iter()
        .filter(|(_, bytes)| bytes.windows(needle.len()).any(|w| w == needle))
        .map(|(path, _)| path.display().to_string())
        .collect()
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill_now();
        if std::thread::panicking() {
            eprintln!("--- server log (tail) ---\n{}", self.log_tail(80));
        }
    }
}

/// The server's `--help` text.
pub fn server_help() -> String {
    let out = Command::new(BIN)
        .arg("--help")
        .output()
        .unwrap_or_else(|e| panic!("run {BIN} --help: {e}"));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `text` without ANSI escape sequences (the log may be coloured).
pub fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ parameters final-byte (0x40..=0x7e).
            if chars.next() == Some('[') {
                for c in chars.by_ref() {
                    if ('\u{40}'..='\u{7e}').contains(&c) {
                        break;
                    }
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Waits until `url` (a `/healthz`) answers 200, at most
/// [`START_TIMEOUT`]; an error if `child` exits first or time runs out.
pub async fn wait_healthy(child: &mut Child, url: &str) -> Result<(), String> {
    let http = Client::builder()
        .timeout(Duration::from_secs(2))
        .no_proxy()
        .build()
        .expect("build an HTTP client");
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().expect("poll the server process") {
            return Err(format!("the process exited early with {status}"));
        }
        if let Ok(r) = http.get(url).send().await {
            if r.status() == StatusCode::OK {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            return Err(format!("no 200 from {url} within {START_TIMEOUT:?}"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The Kafka broker (`KAFKA_BROKERS`), or `None` after
/// [`metachat_testkit::skip`] (which fails the test in CI).
pub fn kafka_brokers() -> Option<String> {
    match std::env::var("KAFKA_BROKERS") {
        Ok(b) if !b.trim().is_empty() => Some(b.trim().to_owned()),
        _ => {
            metachat_testkit::skip("KAFKA_BROKERS not set; run `eval \"$(scripts/kafka start)\"`");
            None
        }
    }
}

/// A port nobody listens on right now, handed out once per test process.
///
/// It is taken below the kernel's ephemeral range
/// (`/proc/sys/net/ipv4/ip_local_port_range`), never from it: a port the
/// kernel hands out for `:0` is also what it picks as the local port of an
/// outgoing connection (a Kafka or Cassandra client in a process started
/// before), so between this probe and the server's own bind it could be
/// taken, and the server would exit with "cannot listen".
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    const FLOOR: u32 = 20_000;
    let ceiling = fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32_768)
        .clamp(FLOOR + 1_000, 65_535);
    let span = ceiling - FLOOR;
    // Test processes that run one after another start at different places.
    let start = std::process::id().wrapping_mul(7_919) % span;
    for _ in 0..span {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = FLOOR + (start + n) % span;
        let port = u16::try_from(port).expect("below 65536");
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in {FLOOR}..{ceiling}")
}

/// A line of a printed backtrace: `  12: some::function` or `at src/x.rs:1:2`.
fn is_backtrace_frame(line: &str) -> bool {
    let t = line.trim_start();
    if t.len() == line.len() {
        return false;
    }
    // anyhow's numbered "Caused by" lines are kept: a frame names a path.
    t.starts_with("at ")
        || t.split_once(": ").is_some_and(|(n, f)| {
            !n.is_empty()
                && n.bytes().all(|b| b.is_ascii_digit())
                && (f.contains("::") || f.starts_with('<') || f.starts_with('_'))
        })
}

/// One HTTP answer: status, headers, body text and the body as JSON
/// (`Value::Null` when it is empty or not JSON).
#[derive(Debug)]
pub struct Resp {
    /// Status code.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// The body as text.
    pub text: String,
    /// The body as JSON, `Null` when it is not JSON.
    pub json: Value,
    /// "METHOD path", for messages.
    pub what: String,
}

impl Resp {
    /// The stable error code, when the body is an error.
    pub fn code(&self) -> Option<&str> {
        self.json["error"]["code"].as_str()
    }

    /// Asserts the status and returns the JSON body.
    #[track_caller]
    pub fn expect(&self, status: u16) -> &Value {
        assert_eq!(
            self.status.as_u16(),
            status,
            "{}: expected {status}, got {} {}",
            self.what,
            self.status,
            self.text
        );
        &self.json
    }

    /// Asserts an error answer of the contract: `status`, JSON content type,
    /// `{"error":{"code":code,"message":<non-empty string>}}`. Returns the
    /// `error` object.
    #[track_caller]
    pub fn expect_error(&self, status: u16, code: &str) -> &Value {
        assert_eq!(
            (self.status.as_u16(), self.code()),
            (status, Some(code)),
            "{}: expected {status} {code}, got {} {}",
            self.what,
            self.status,
            self.text
        );
        let ct = self
            .headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        assert!(
            ct.starts_with("application/json"),
            "{}: error content type {ct:?}",
            self.what
        );
        let message = self.json["error"]["message"].as_str().unwrap_or("");
        assert!(
            !message.is_empty(),
            "{}: error without a message: {}",
            self.what,
            self.text
        );
        &self.json["error"]
    }

    /// The `X-MetaChat-Position` header as a number.
    pub fn position_header(&self) -> Option<u64> {
        self.headers
            .get("x-metachat-position")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
    }

    /// The body's `"position"`.
    #[track_caller]
    pub fn position(&self) -> u64 {
        self.json["position"]
            .as_u64()
            .unwrap_or_else(|| panic!("{}: no position in {}", self.what, self.text))
    }
}

/// A user of the API: credentials, id and a bearer token.
#[derive(Debug, Clone)]
pub struct User {
    /// Email.
    pub email: String,
    /// Password.
    pub password: String,
    /// Display name.
    pub display_name: String,
    /// `user_id` from registration.
    pub user_id: String,
    /// A bearer token from login.
    pub token: String,
}

/// A created entry as the server acknowledged it.
#[derive(Debug, Clone)]
pub struct Created {
    /// `entry_id`.
    pub entry_id: String,
    /// `position` of the write.
    pub position: u64,
    /// The text sent.
    pub text: String,
}

/// An HTTP client for one server process.
#[derive(Debug, Clone)]
pub struct Api {
    http: Client,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// The processes whose `/readyz` [`Api::caught_up`] asks: the server
    /// itself, or each process of a distributed system (the gateway
    /// answers its own `/readyz` without their lag).
    ready: Vec<String>,
}

impl Api {
    /// A client with its own connection pool.
    pub fn new(base: &str) -> Api {
        let http = Client::builder()
            .timeout(Duration::from_secs(60))
            .no_proxy()
            .build()
            .expect("build an HTTP client");
        Api {
            http,
            base: base.to_owned(),
            ready: vec![base.to_owned()],
        }
    }

    /// This client, with [`Api::caught_up`] asking each of `processes`.
    pub fn with_ready(mut self, processes: Vec<String>) -> Api {
        self.ready = processes;
        self
    }

    /// Sends a request; `body` is sent as JSON with its content type.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Resp {
        let mut headers = vec![];
        let bytes = body.map(|b| serde_json::to_vec(b).expect("serialize a body"));
        if bytes.is_some() {
            headers.push(("content-type", "application/json".to_owned()));
        }
        if let Some(t) = token {
            headers.push(("authorization", format!("Bearer {t}")));
        }
        self.raw(method, path, &headers, bytes).await
    }

    /// Sends exactly these headers and body bytes. Panics on a transport
    /// error (use [`Api::try_raw`] to see it).
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, String)],
        body: Option<Vec<u8>>,
    ) -> Resp {
        let what = format!("{method} {path}");
        self.try_raw(method, path, headers, body)
            .await
            .unwrap_or_else(|e| panic!("{what}: transport error: {e:?}"))
    }

    /// Like [`Api::raw`], with the transport error as a value.
    pub async fn try_raw(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, String)],
        body: Option<Vec<u8>>,
    ) -> Result<Resp, reqwest::Error> {
        let what = format!("{method} {path}");
        let mut req = self.http.request(method, format!("{}{}", self.base, path));
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        if let Some(b) = body {
            req = req.body(b);
        }
        let r = req.send().await?;
        let status = r.status();
        let headers = r.headers().clone();
        let bytes = r.bytes().await?;
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Ok(Resp {
            status,
            headers,
            text,
            json,
            what,
        })
    }

    /// GET with a token.
    pub async fn get(&self, path: &str, token: &str) -> Resp {
        self.send(Method::GET, path, Some(token), None).await
    }

    /// `POST /v1/users`; asserts 201 and returns `user_id`.
    pub async fn register(&self, email: &str, password: &str, display_name: &str) -> String {
        let r = self
            .send(
                Method::POST,
                "/v1/users",
                None,
                Some(&json!({"email": email, "password": password, "display_name": display_name})),
            )
            .await;
        let body = r.expect(201);
        let id = body["user_id"].as_str().expect("user_id").to_owned();
        Uuid::parse_str(&id).expect("user_id is a UUID");
        assert!(
            body["position"].is_u64(),
            "register answers a position: {}",
            r.text
        );
        id
    }

    /// `POST /v1/sessions`; asserts 201 and the answer's shape, returns the token.
    pub async fn login(&self, email: &str, password: &str) -> String {
        let r = self
            .send(
                Method::POST,
                "/v1/sessions",
                None,
                Some(&json!({"email": email, "password": password})),
            )
            .await;
        let body = r.expect(201);
        assert_eq!(body["token_type"], "Bearer", "{}", r.text);
        assert!(body["expires_at"].is_string(), "{}", r.text);
        assert!(body["user_id"].is_string(), "{}", r.text);
        body["token"].as_str().expect("token").to_owned()
    }

    /// Registers a user with a unique email and logs them in.
    pub async fn user(&self, display_name: &str) -> User {
        let email = format!(
            "{}-{}@example.com",
            display_name.to_lowercase().replace(' ', "."),
            Uuid::new_v4().simple()
        );
        let password = format!("pw-{}", Uuid::new_v4().simple());
        let user_id = self.register(&email, &password, display_name).await;
        let token = self.login(&email, &password).await;
        User {
            email,
            password,
            display_name: display_name.to_owned(),
            user_id,
            token,
        }
    }

    /// `POST /v1/entries`; asserts 201 and the answer's shape.
    pub async fn create_entry(&self, token: &str, text: &str) -> Created {
        let r = self
            .send(
                Method::POST,
                "/v1/entries",
                Some(token),
                Some(&json!({"text": text})),
            )
            .await;
        let body = r.expect(201);
        let entry_id = body["entry_id"].as_str().expect("entry_id").to_owned();
        Uuid::parse_str(&entry_id).expect("entry_id is a UUID");
        assert_eq!(body["revision"], 0, "{}", r.text);
        assert!(body["created_at"].is_string(), "{}", r.text);
        let position = r.position();
        assert_eq!(
            r.position_header(),
            Some(position),
            "X-MetaChat-Position equals the body's position"
        );
        Created {
            entry_id,
            position,
            text: text.to_owned(),
        }
    }

    /// All of a user's entries, newest first, paging with `limit` (the first
    /// page waits for `min_position`). Asserts the pages chain and that no
    /// entry repeats.
    pub async fn list_all(&self, token: &str, limit: u32, min_position: u64) -> Vec<Value> {
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        let mut cursor: Option<String> = None;
        for _page in 0..10_000 {
            let mut path = format!("/v1/entries?limit={limit}&min_position={min_position}");
            if let Some(c) = &cursor {
                path.push_str("&cursor=");
                path.push_str(&urlencode(c));
            }
            let r = self.get(&path, token).await;
            let body = r.expect(200);
            let entries = body["entries"].as_array().expect("entries array");
            assert!(
                entries.len() <= limit as usize,
                "a page holds at most limit"
            );
            for e in entries {
                let id = e["entry_id"].as_str().expect("entry_id").to_owned();
                assert!(seen.insert(id.clone()), "entry {id} listed twice");
                out.push(e.clone());
            }
            match body["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => {
                    assert!(
                        body["next_cursor"].is_null(),
                        "next_cursor is a string or null"
                    );
                    return out;
                }
            }
        }
        panic!("paging did not end");
    }

    /// `GET /readyz` as JSON (200 or 503).
    pub async fn readyz(&self) -> Resp {
        self.raw(Method::GET, "/readyz", &[], None).await
    }

    /// Waits until `/readyz` says ready with every projection's lag 0 and a
    /// position of at least `min_position`; returns the position.
    pub async fn caught_up(&self, min_position: u64) -> u64 {
        eventually("readyz: every projection at the head", CATCH_UP, || async {
            let mut at = u64::MAX;
            for base in &self.ready {
                let r = Api::new(base).readyz().await;
                let lag_zero = r.json["lag"]
                    .as_object()
                    .is_some_and(|l| l.values().all(|v| v.as_u64() == Some(0)));
                let pos = r.json["position"].as_u64().unwrap_or(0);
                let ready = r.status == StatusCode::OK
                    && r.json["status"] == "ready"
                    && lag_zero
                    && pos >= min_position;
                if !ready {
                    return None;
                }
                at = at.min(pos);
            }
            Some(at)
        })
        .await
    }
}

/// Percent-encodes a query value (everything but unreserved characters).
pub fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Polls `f` every 50 ms until it returns `Some`, at most `timeout`; panics
/// naming `what` when time runs out.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Asserts the shape and ranges of a `Mood` of the contract.
#[track_caller]
pub fn assert_mood(mood: &Value) {
    let valence = mood["valence"].as_f64().expect("valence");
    assert!((-1.0..=1.0).contains(&valence), "valence {valence}");
    let label = mood["valence_label"].as_str().expect("valence_label");
    assert!(
        ["negative", "neutral", "positive"].contains(&label),
        "valence_label {label}"
    );
    match &mood["valence_probability"] {
        Value::Null => {}
        p => {
            let p = p.as_f64().expect("valence_probability is a number or null");
            assert!((0.0..=1.0).contains(&p), "valence_probability {p}");
        }
    }
    let arousal = mood["arousal"].as_f64().expect("arousal");
    assert!((0.0..=1.0).contains(&arousal), "arousal {arousal}");
    let confidence = mood["confidence"].as_f64().expect("confidence");
    assert!((0.0..=1.0).contains(&confidence), "confidence {confidence}");
    let emotions = mood["emotions"].as_object().expect("emotions object");
    assert!(!emotions.is_empty(), "emotions");
    let sum: f64 = emotions
        .values()
        .map(|p| p.as_f64().expect("probability"))
        .sum();
    assert!(
        (sum - 1.0).abs() < 1e-3,
        "emotion probabilities sum to {sum}"
    );
    let dominant = mood["dominant_emotion"].as_str().expect("dominant_emotion");
    let top = emotions
        .values()
        .map(|p| p.as_f64().unwrap_or(0.0))
        .fold(f64::MIN, f64::max);
    let p_dominant = emotions
        .get(dominant)
        .and_then(Value::as_f64)
        .unwrap_or_else(|| panic!("dominant emotion {dominant} is not in emotions {mood}"));
    assert!(
        (p_dominant - top).abs() < 1e-6,
        "dominant emotion is the most probable: {mood}"
    );
    assert!(
        !mood["model_id"].as_str().unwrap_or("").is_empty(),
        "model_id: {mood}"
    );
    assert!(mood["windows"].is_u64(), "windows: {mood}");
}

/// Waits until every entry of a user (a full listing) carries a mood and
/// returns the listing.
pub async fn wait_all_moods(api: &Api, token: &str, expected: usize) -> Vec<Value> {
    eventually("every entry has a mood", CATCH_UP, || async {
        let entries = api.list_all(token, 100, 0).await;
        (entries.len() == expected && entries.iter().all(|e| !e["mood"].is_null()))
            .then_some(entries)
    })
    .await
}

/// A text no other test or entry contains.
pub fn unique_text(prefix: &str) -> String {
    format!("{prefix} {}", Uuid::new_v4().simple())
}

/// One answer read off a raw TCP connection.
#[derive(Debug)]
pub struct RawAnswer {
    /// The status code.
    pub status: u16,
    /// The head, lowercased (`name: value` lines).
    pub head: String,
    /// The body (`Content-Length` bytes).
    pub body: String,
}

/// What a raw read ended with.
#[derive(Debug)]
pub enum RawRead {
    /// A whole answer.
    Answer(RawAnswer),
    /// The server closed the connection (EOF or reset) before a whole
    /// answer; what had arrived.
    Closed(Vec<u8>),
    /// Neither within the wait.
    Nothing,
}

/// Reads one HTTP/1.1 answer (head and `Content-Length` body) from
/// `stream`, waiting at most `within` in all.
pub async fn read_answer(stream: &mut tokio::net::TcpStream, within: Duration) -> RawRead {
    use tokio::io::AsyncReadExt;
    let deadline = tokio::time::Instant::now() + within;
    let mut buf = Vec::new();
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
            let len = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                let status = head
                    .split_whitespace()
                    .nth(1)
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                let body = String::from_utf8_lossy(&buf[end + 4..end + 4 + len]).into_owned();
                return RawRead::Answer(RawAnswer { status, head, body });
            }
        }
        let mut chunk = [0u8; 4096];
        match tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await {
            Err(_) => return RawRead::Nothing,
            Ok(Ok(0)) | Ok(Err(_)) => return RawRead::Closed(buf),
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Waits at most `within` for the server to close `stream`; true when it
/// did (EOF or reset), false when it stayed open. Bytes that arrive are
/// discarded.
pub async fn closed_within(stream: &mut tokio::net::TcpStream, within: Duration) -> bool {
    use tokio::io::AsyncReadExt;
    let deadline = tokio::time::Instant::now() + within;
    let mut chunk = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}
