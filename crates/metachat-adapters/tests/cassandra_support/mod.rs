//! What the Cassandra tests share: the node address from `CASSANDRA_NODES`,
//! or a skip (outside CI) or a failure (in CI) when it is not set; stores in
//! a fresh namespace of the `metachat_test` keyspace.

#![allow(dead_code, unreachable_pub)]

use std::time::Duration;

use metachat_adapters::cassandra::{CassandraConfig, CassandraEventStore, CassandraReadModels};

/// Why a test skips without a node.
pub const SKIP: &str = "CASSANDRA_NODES not set; run `eval \"$(scripts/cassandra start)\"`";

/// The keyspace every test uses; each store gets its own namespace in it.
pub const KEYSPACE: &str = "metachat_test";

/// The node address, or `None` after [`metachat_testkit::skip`] (which
/// fails the test in CI).
#[track_caller]
pub fn nodes() -> Option<String> {
    match std::env::var("CASSANDRA_NODES") {
        Ok(n) if !n.trim().is_empty() => Some(n.trim().to_owned()),
        _ => {
            metachat_testkit::skip(SKIP);
            None
        }
    }
}

/// The node address, or (outside CI, without one) print [`SKIP`] on stderr
/// and end the process successfully: for the conformance macros, which
/// have no skip hook.
pub fn nodes_or_exit() -> String {
    match nodes() {
        Some(n) => n,
        // `nodes` recorded the skip (or failed, in CI).
        None => std::process::exit(0),
    }
}

/// A config on the test node with a fresh namespace.
pub fn config(nodes: &str) -> CassandraConfig {
    CassandraConfig::builder(nodes)
        .keyspace(KEYSPACE)
        .namespace(format!("t{}", uuid::Uuid::new_v4().simple()))
        .request_timeout(Duration::from_secs(10))
        .build()
        .expect("a valid config")
}

/// Read models in a fresh namespace.
pub async fn read_models(nodes: &str) -> CassandraReadModels {
    CassandraReadModels::connect(&config(nodes))
        .await
        .expect("read models on the test node")
}

/// An event store in a fresh namespace.
pub async fn event_store(nodes: &str) -> CassandraEventStore {
    CassandraEventStore::connect(&config(nodes))
        .await
        .expect("an event store on the test node")
}

/// An event store in namespace `ns` whose log has `partitions` partitions.
pub async fn store_in(nodes: &str, ns: &str, partitions: u32) -> CassandraEventStore {
    let config = CassandraConfig::builder(nodes)
        .keyspace(KEYSPACE)
        .namespace(ns)
        .request_timeout(Duration::from_secs(10))
        .partitions(partitions)
        .build()
        .expect("a valid config");
    CassandraEventStore::connect(&config)
        .await
        .expect("an event store on the test node")
}

/// An event store in a fresh namespace whose log has `partitions` partitions.
pub async fn partitioned_store(nodes: &str, partitions: u32) -> CassandraEventStore {
    let ns = format!("t{}", uuid::Uuid::new_v4().simple());
    store_in(nodes, &ns, partitions).await
}

/// Another instance on `store`'s namespace: its own session (connections,
/// prepared statements), as another process would open.
pub async fn peer(store: &CassandraEventStore) -> CassandraEventStore {
    let nodes = nodes().expect("a node: the store was opened on one");
    store_in(&nodes, store.namespace(), store.partitions()).await
}

/// Deletes `ns`'s row of `log_layout`, as in a namespace written before
/// the table existed (through a driver session of its own).
pub async fn delete_layout_row(nodes: &str, ns: &str) {
    let session = scylla::client::session_builder::SessionBuilder::new()
        .known_nodes(nodes.split(','))
        .build()
        .await
        .expect("a session on the test node");
    session
        .query_unpaged(
            format!("DELETE FROM {KEYSPACE}.log_layout WHERE ns = ?"),
            (ns,),
        )
        .await
        .expect("delete the layout row");
}

/// Runs `scripts/cassandra <cmd>` of this repository; panics if it fails.
pub fn script(cmd: &str) -> String {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/cassandra");
    let out = std::process::Command::new(&script)
        .arg(cmd)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    assert!(
        out.status.success() || cmd == "status",
        "scripts/cassandra {cmd} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The Python interpreter of the venv `scripts/cassandra install` fills with
/// the Python `cassandra-driver`.
pub fn python() -> std::path::PathBuf {
    let build = std::env::var_os("METACHAT_BUILD_DIR").map_or_else(
        || std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/services"),
        std::path::PathBuf::from,
    );
    build.join("cassandra/python/bin/python")
}
