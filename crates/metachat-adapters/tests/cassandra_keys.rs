//! `CassandraKeyStore` against a real node: the first key wins among
//! concurrent creators, a shred leaves no key and a permanent marker (also
//! against a create racing it), the sweep's checkpoint round-trips, and the
//! table is created with the one-day `gc_grace_seconds` its docs promise.
//!
//! Outside CI without `CASSANDRA_NODES` it prints `SKIPPED: …`.

mod cassandra_support;

use metachat_adapters::cassandra::CassandraDatabase;
use metachat_shred::{DataKey, KeyState, KeyStore, KeyVault};
use uuid::Uuid;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn keys_are_created_once_and_shredded_for_good() {
    let Some(nodes) = cassandra_support::nodes() else {
        return;
    };
    let config = cassandra_support::config(&nodes);
    let db = CassandraDatabase::connect(&config).await.expect("connect");
    let keys = db.key_store();
    let (anna, bob) = (Uuid::new_v4(), Uuid::new_v4());
    assert_eq!(keys.load(anna).await.expect("load"), KeyState::Missing);

    // Eight concurrent creators: one key, and every creator gets it.
    let made: Vec<KeyState> = futures::future::join_all((0..8).map(|_| {
        let keys = keys.clone();
        async move {
            keys.create(anna, &DataKey::generate())
                .await
                .expect("create")
        }
    }))
    .await;
    let KeyState::Active(first) = made[0].clone() else {
        panic!("not created: {:?}", made[0]);
    };
    assert!(made.iter().all(|m| *m == KeyState::Active(first.clone())));
    assert_eq!(
        keys.load(anna).await.expect("load"),
        KeyState::Active(first)
    );

    // Shred, twice (idempotent), and a subject that never had a key.
    keys.shred(&[anna, bob], Some(42)).await.expect("shred");
    keys.shred(&[anna], None).await.expect("shred again");
    for s in [anna, bob] {
        assert_eq!(keys.load(s).await.expect("load"), KeyState::Shredded);
        assert_eq!(
            keys.create(s, &DataKey::generate()).await.expect("create"),
            KeyState::Shredded,
            "a shredded key is never made again"
        );
    }
    assert_eq!(keys.sweep_checkpoint().await.expect("checkpoint"), Some(42));

    // Creates racing shreds: whatever the order, the subject ends shredded.
    for _ in 0..4 {
        let s = Uuid::new_v4();
        let (a, b) = (keys.clone(), keys.clone());
        let create = tokio::spawn(async move { a.create(s, &DataKey::generate()).await });
        let shred = tokio::spawn(async move { b.shred(&[s], None).await });
        create.await.expect("join").expect("create");
        shred.await.expect("join").expect("shred");
        assert_eq!(keys.load(s).await.expect("load"), KeyState::Shredded);
    }

    // Through a vault, as the server uses it.
    let vault = KeyVault::new(keys.clone());
    let cy = Uuid::new_v4();
    let k = vault.get_or_create(cy).await.expect("key");
    assert_eq!(
        KeyVault::new(keys.clone()).get(cy).await.expect("get"),
        Some(k)
    );
    vault.shred(cy).await.expect("shred");
    assert_eq!(KeyVault::new(keys).get(cy).await.expect("get"), None);
}

#[test]
fn the_key_table_collects_tombstones_after_one_day() {
    let Some(nodes) = cassandra_support::nodes() else {
        return;
    };
    // Make sure the migrations ran on this keyspace.
    let config = cassandra_support::config(&nodes);
    tokio::runtime::Runtime::new()
        .expect("runtime")
        .block_on(CassandraDatabase::connect(&config))
        .expect("connect");
    let py = cassandra_support::python();
    let code = r#"
import sys
from cassandra.cluster import Cluster
host, port = sys.argv[1].split(",")[0].rsplit(":", 1)
s = Cluster([host], port=int(port)).connect()
row = s.execute("SELECT gc_grace_seconds FROM system_schema.tables WHERE keyspace_name = %s AND table_name = 'data_keys'", [sys.argv[2]]).one()
print(row.gc_grace_seconds)
"#;
    let out = std::process::Command::new(&py)
        .args(["-c", code, &nodes, cassandra_support::KEYSPACE])
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", py.display()));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "86400");
}
