//! What the Kafka tests share: the broker address from `KAFKA_BROKERS`, or a
//! skip (outside CI) or a failure (in CI) when it is not set.

#![allow(dead_code, unreachable_pub)]

use std::time::Duration;

use metachat_adapters::kafka::{KafkaConfig, KafkaConfigBuilder, KafkaEventBus};

/// Why a test skips without a broker.
pub const SKIP: &str = "KAFKA_BROKERS not set; run `eval \"$(scripts/kafka start)\"`";

/// The broker address, or `None` after [`metachat_testkit::skip`] (which
/// fails the test in CI).
#[track_caller]
pub fn brokers() -> Option<String> {
    match std::env::var("KAFKA_BROKERS") {
        Ok(b) if !b.trim().is_empty() => Some(b.trim().to_owned()),
        _ => {
            metachat_testkit::skip(SKIP);
            None
        }
    }
}

/// Runs `scripts/kafka cmd` (`stop`, `start`, `status`) and returns what it
/// printed; panics if it fails (but `status`, which fails when the broker is
/// down).
pub fn script(cmd: &str) -> String {
    let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/kafka");
    let out = std::process::Command::new(path)
        .arg(cmd)
        .output()
        .unwrap_or_else(|e| panic!("scripts/kafka {cmd}: {e}"));
    assert!(
        out.status.success() || cmd == "status",
        "scripts/kafka {cmd} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The broker address when it is the one `scripts/kafka` manages, so that a
/// test may stop and start it; `None` after a skip otherwise.
#[track_caller]
pub fn managed_brokers() -> Option<String> {
    let brokers = brokers()?;
    let managed = script("status");
    if managed != format!("KAFKA_BROKERS={brokers}") {
        metachat_testkit::skip(format!(
            "KAFKA_BROKERS={brokers} is not the broker scripts/kafka manages (status says `{managed}`)"
        ));
        return None;
    }
    Some(brokers)
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

/// Runs Debian's `kcat` with `args`, feeding `stdin`; returns its stdout.
/// Panics if kcat is missing (`scripts/kafka install` installs it) or fails.
pub fn kcat(args: &[&str], stdin: &str) -> String {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new("kcat")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run kcat ({e}); `scripts/kafka install` installs it"));
    if let Some(mut input) = child.stdin.take() {
        input.write_all(stdin.as_bytes()).expect("write to kcat");
    }
    let out = child.wait_with_output().expect("kcat output");
    assert!(
        out.status.success(),
        "kcat {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("kcat prints UTF-8")
}

/// One record as `kcat -J` prints it.
#[derive(Debug)]
pub struct KcatRecord {
    /// Partition.
    pub partition: i64,
    /// Key, if any.
    pub key: Option<String>,
    /// Value, if any.
    pub payload: Option<String>,
    /// Headers in order.
    pub headers: Vec<(String, String)>,
}

impl KcatRecord {
    /// The last value of header `k`.
    pub fn header(&self, k: &str) -> Option<&str> {
        self.headers
            .iter()
            .rev()
            .find(|(hk, _)| hk == k)
            .map(|(_, v)| v.as_str())
    }
}

/// Every record of `topic` from the beginning, read by kcat (not our client).
pub fn kcat_read(brokers: &str, topic: &str) -> Vec<KcatRecord> {
    let out = kcat(
        &[
            "-C",
            "-b",
            brokers,
            "-t",
            topic,
            "-o",
            "beginning",
            "-e",
            "-q",
            "-J",
        ],
        "",
    );
    out.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: serde_json::Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("kcat -J line {l}: {e}"));
            let s = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_owned);
            let flat: Vec<String> = v
                .get("headers")
                .and_then(|h| h.as_array())
                .map(|a| {
                    a.iter()
                        .map(|x| x.as_str().unwrap_or_default().to_owned())
                        .collect()
                })
                .unwrap_or_default();
            KcatRecord {
                partition: v.get("partition").and_then(|p| p.as_i64()).unwrap_or(-1),
                key: s("key"),
                payload: s("payload"),
                headers: flat
                    .chunks(2)
                    .map(|c| (c[0].clone(), c.get(1).cloned().unwrap_or_default()))
                    .collect(),
            }
        })
        .collect()
}

/// A bus from a config builder.
pub fn bus_with(config: KafkaConfigBuilder) -> KafkaEventBus {
    KafkaEventBus::new(config.build().expect("a valid config")).expect("a Kafka client")
}
