//! A client no one here wrote, the Python `cassandra-driver` (from PyPI,
//! installed by `scripts/cassandra install`), reads what the adapter wrote:
//! the documents of a collection with their versions, a projection's
//! checkpoint, a stream's versions and positions; and a document it writes
//! in the documented layout reads back through `CassandraReadModels`.
//!
//! Outside CI without `CASSANDRA_NODES` it prints `SKIPPED: …`.

mod cassandra_support;

use std::process::Command;

use metachat_core::event::{NewEvent, StreamId};
use metachat_core::read_model::{Commit, DocExpect, ReadModelStore, ReadModelStoreExt};
use metachat_core::store::{EventAppender, ExpectedVersion};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Profile {
    name: String,
    moods: Vec<String>,
}

/// Runs `code` with the venv's Python and the driver; returns stdout lines.
fn python(code: &str, args: &[&str]) -> Vec<String> {
    let py = cassandra_support::python();
    let out = Command::new(&py)
        .arg("-c")
        .arg(code)
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {} ({e}); `scripts/cassandra install` installs it",
                py.display()
            )
        });
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

const CONNECT: &str = r#"
import sys, json
from cassandra.cluster import Cluster
host, port = sys.argv[1].split(",")[0].rsplit(":", 1)
cluster = Cluster([host], port=int(port))
s = cluster.connect(sys.argv[2])
ns = sys.argv[3]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_driver_reads_and_writes_our_tables() {
    let Some(nodes) = cassandra_support::nodes() else {
        return;
    };
    let config = cassandra_support::config(&nodes);
    let rm = metachat_adapters::cassandra::CassandraReadModels::connect(&config)
        .await
        .expect("read models");
    let store = metachat_adapters::cassandra::CassandraEventStore::connect(&config)
        .await
        .expect("store");
    let ada = Profile {
        name: "Ada".into(),
        moods: vec!["joy".into(), "calm".into()],
    };
    let bob = Profile {
        name: "Bob — ünïcode".into(),
        moods: vec![],
    };
    rm.put_json("profiles", "user-1", &ada, DocExpect::Absent)
        .await
        .unwrap();
    rm.put_json("profiles", "user-2", &bob, DocExpect::Any)
        .await
        .unwrap();
    rm.put_json("profiles", "user-2", &bob, DocExpect::Version(1))
        .await
        .unwrap();
    rm.commit(Commit {
        ops: Vec::new(),
        checkpoint: Some(("profiles-projection".into(), 42)),
    })
    .await
    .unwrap();
    let s = StreamId::new("user-1").unwrap();
    store
        .append(
            &s,
            ExpectedVersion::NoStream,
            vec![
                NewEvent::new("A", b"{}".to_vec()),
                NewEvent::new("B", b"{}".to_vec()),
            ],
        )
        .await
        .unwrap();

    let ns = config.namespace();
    let ks = config.keyspace();
    let code = format!(
        "{CONNECT}{}",
        r#"
for r in s.execute("SELECT key, value, version FROM documents WHERE ns = %s AND collection = %s", (ns, "profiles")):
    print(json.dumps({"key": r.key, "doc": json.loads(r.value.decode("utf-8")), "version": r.version}))
r = s.execute("SELECT next_position FROM checkpoints WHERE ns = %s AND projection = %s", (ns, "profiles-projection")).one()
print(json.dumps({"checkpoint": r.next_position}))
for r in s.execute("SELECT version, position FROM stream_events WHERE ns = %s AND stream = %s", (ns, "user-1")):
    print(json.dumps({"version": r.version, "position": r.position}))
s.execute("INSERT INTO documents (ns, collection, key, value, version) VALUES (%s, %s, %s, %s, %s)",
          (ns, "profiles", "user-3", json.dumps({"name": "Cy", "moods": ["awe"]}).encode("utf-8"), 1))
cluster.shutdown()
"#
    );
    let lines = python(&code, &[&nodes, ks, ns]);
    let rows: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).expect("a JSON line from python"))
        .collect();
    assert_eq!(rows.len(), 5, "{lines:?}");
    assert_eq!(rows[0]["key"], "user-1");
    assert_eq!(
        serde_json::from_value::<Profile>(rows[0]["doc"].clone()).unwrap(),
        ada
    );
    assert_eq!(rows[0]["version"], 1);
    assert_eq!(rows[1]["key"], "user-2");
    assert_eq!(
        serde_json::from_value::<Profile>(rows[1]["doc"].clone()).unwrap(),
        bob
    );
    assert_eq!(rows[1]["version"], 2);
    assert_eq!(rows[2]["checkpoint"], 42);
    assert_eq!(rows[3], serde_json::json!({"version": 0, "position": 0}));
    assert_eq!(rows[4], serde_json::json!({"version": 1, "position": 1}));

    let (cy, version): (Profile, u64) = rm.get_json("profiles", "user-3").await.unwrap().unwrap();
    assert_eq!(
        (cy, version),
        (
            Profile {
                name: "Cy".into(),
                moods: vec!["awe".into()]
            },
            1
        )
    );
    let keys: Vec<String> = rm
        .scan_prefix("profiles", "user-", None, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(keys, ["user-1", "user-2", "user-3"]);
}
