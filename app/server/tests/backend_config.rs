//! The server refuses, at start and with a message naming the missing
//! setting, a backend it cannot reach the configuration of; it never falls
//! back to another backend silently.

mod common;

use std::process::{Command, Stdio};

use common::BIN;

/// Runs the server with `args` and no `METACHAT_*`, `CASSANDRA_*` or
/// `KAFKA_*` variables; returns its exit status and what it printed.
fn start_without_settings(args: &[&str]) -> (std::process::ExitStatus, String) {
    start_with_settings(args, &[])
}

/// Runs the server with `args` and, of the `METACHAT_*`, `CASSANDRA_*` and
/// `KAFKA_*` variables, only `env`; returns its exit status and output.
fn start_with_settings(args: &[&str], env: &[(&str, &str)]) -> (std::process::ExitStatus, String) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut cmd = Command::new(BIN);
    for (key, _) in std::env::vars_os() {
        let k = key.to_string_lossy();
        if k.starts_with("METACHAT_") || k.starts_with("CASSANDRA_") || k.starts_with("KAFKA_") {
            cmd.env_remove(key);
        }
    }
    cmd.envs(env.iter().copied());
    let out = cmd
        .args([
            "--addr",
            "127.0.0.1:0",
            "--analyzer",
            "lexicon",
            "--data-dir",
        ])
        .arg(dir.path())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run the server");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status, text)
}

#[test]
fn cassandra_without_nodes_is_refused_naming_the_variable() {
    for args in [
        &["--store", "cassandra"][..],
        &["--read-models", "cassandra"][..],
    ] {
        let (status, text) = start_without_settings(args);
        assert!(
            !status.success(),
            "{args:?} started without CASSANDRA_NODES"
        );
        // The adapter's typed error (MissingNodes), not only our context.
        assert!(
            text.contains("no Cassandra nodes configured (set CASSANDRA_NODES"),
            "{args:?}: {text}"
        );
    }
}

#[test]
fn kafka_without_brokers_is_refused_naming_the_variable() {
    let (status, text) = start_without_settings(&["--bus", "kafka"]);
    assert!(
        !status.success(),
        "--bus kafka started without KAFKA_BROKERS"
    );
    assert!(
        text.contains("no Kafka brokers configured (set KAFKA_BROKERS"),
        "{text}"
    );
}

#[test]
fn an_unknown_backend_is_a_usage_error() {
    let (status, text) = start_without_settings(&["--store", "eventstoredb"]);
    assert_eq!(status.code(), Some(2), "clap's usage error: {text}");
    assert!(
        text.contains("sled") && text.contains("cassandra"),
        "{text}"
    );
}

#[test]
fn a_partitioned_cassandra_log_is_refused_before_connecting() {
    // No node at port 1: the refusal comes before any connection.
    let (status, text) = start_with_settings(
        &["--store", "cassandra"],
        &[
            ("CASSANDRA_NODES", "127.0.0.1:1"),
            ("CASSANDRA_PARTITIONS", "4"),
        ],
    );
    assert!(!status.success(), "started on a partitioned log: {text}");
    assert!(
        text.contains("CASSANDRA_PARTITIONS=4") && text.contains("one total order"),
        "{text}"
    );
    let (status, text) = start_with_settings(
        &["--store", "cassandra"],
        &[
            ("CASSANDRA_NODES", "127.0.0.1:1"),
            ("CASSANDRA_PARTITIONS", "many"),
        ],
    );
    assert!(!status.success());
    assert!(text.contains("CASSANDRA_PARTITIONS"), "{text}");
}
