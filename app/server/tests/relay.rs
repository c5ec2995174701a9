//! End to end, against the real `metachat-server` process and the real Kafka
//! broker (`KAFKA_BROKERS`): with `--bus kafka` the outbox relay publishes
//! every stored event to `{prefix}{category}`, keyed by its stream, whatever
//! store the server runs on (this test adds the bus to the run's backend).

mod common;

use std::collections::BTreeMap;
use std::process::Command;

use common::{eventually, Backend, Server, ServerConfig, CATCH_UP};

/// The message keys (stream ids) of `topic`, read from the beginning with
/// Debian's `kcat` (installed by `scripts/kafka install`); empty while the
/// topic does not exist.
fn keys(brokers: &str, topic: &str) -> Vec<String> {
    let out = Command::new("kcat")
        .args([
            "-b",
            brokers,
            "-C",
            "-t",
            topic,
            "-o",
            "beginning",
            "-e",
            "-q",
        ])
        .args(["-f", "%k\\n"])
        .output()
        .unwrap_or_else(|e| panic!("cannot run kcat ({e}); `scripts/kafka install` installs it"));
    if !out.status.success() {
        return Vec::new();
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        // Not events: the relay's watermark records (stream
        // `watermark-{relay}`), which a distributed relay publishes on
        // every partition for the followers' checkpoints.
        .filter(|l| !l.is_empty() && !l.starts_with("watermark-"))
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_stored_event_reaches_its_kafka_topic() {
    let Some(brokers) = common::kafka_brokers() else {
        return;
    };
    let mut config = ServerConfig::lexicon();
    if Backend::current() == Backend::Sled {
        config.args = vec!["--bus".into(), "kafka".into()];
    }
    let Some(server) = Server::start(config).await else {
        return;
    };
    let api = server.api();
    let user = api.user("Relay").await;
    let entry = api
        .create_entry(&user.token, "Relayed to Kafka today")
        .await;
    let prefix = server.topic_prefix();

    // Each category's topic holds its streams' events, keyed by stream id.
    let expected: BTreeMap<&str, String> = [
        ("user", format!("user-{}", user.user_id)),
        ("entry", format!("entry-{}", entry.entry_id)),
        ("mood", format!("mood-{}", entry.entry_id)),
    ]
    .into_iter()
    .collect();
    let mut total = 0;
    for (category, stream) in &expected {
        let topic = format!("{prefix}{category}");
        let got = eventually(&format!("{stream} on {topic}"), CATCH_UP, || {
            let (brokers, topic, stream) = (brokers.clone(), topic.clone(), stream.clone());
            async move {
                let keys = keys(&brokers, &topic);
                keys.contains(&stream).then_some(keys)
            }
        })
        .await;
        assert!(
            got.iter().all(|k| k.starts_with(&format!("{category}-"))),
            "{topic}: {got:?}"
        );
        total += got.len();
    }
    let email = keys(&brokers, &format!("{prefix}email"));
    assert!(!email.is_empty(), "the email reservation is relayed too");
    total += email.len();
    // Registration (user + email), the entry and its mood are the whole log,
    // and the relay (at the head once /readyz says lag 0) published each
    // event once: the producer is idempotent.
    let head = api.caught_up(entry.position + 1).await;
    assert_eq!(
        total as u64,
        head + 1,
        "one message per position 0..={head}"
    );
}
