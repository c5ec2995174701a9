//! The sled read models' own tests: checkpoints with documents across a
//! reopen, serialised conditional commits, and sharing a database with the
//! event store.

use metachat_adapters::sled::{SledConfig, SledDatabase, SledReadModels};
use metachat_core::read_model::{Commit, DocExpect, ReadModelStore, ReadModelStoreExt, WriteOp};
use metachat_core::Error;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documents_and_checkpoint_survive_reopen_together() {
    let dir = tempfile::tempdir().unwrap();
    {
        let rm = SledReadModels::open(SledConfig::new(dir.path())).unwrap();
        for i in 0..10u64 {
            let mut c = Commit::default();
            c.put_json("timeline", &format!("user-1/{i:04}"), &i, DocExpect::Absent)
                .unwrap();
            c.put_json("users", "user-1", &i, DocExpect::Any).unwrap();
            c.checkpoint = Some(("timeline".into(), i + 1));
            rm.commit(c).await.unwrap();
        }
        // A failing commit leaves documents and checkpoint as they were.
        let mut c = Commit::default();
        c.put_json("users", "user-2", &0u64, DocExpect::Absent)
            .unwrap();
        c.put_json("users", "user-1", &0u64, DocExpect::Absent)
            .unwrap();
        c.checkpoint = Some(("timeline".into(), 99));
        let err = rm.commit(c).await.unwrap_err();
        assert!(
            matches!(
                err,
                Error::DocumentConflict {
                    actual: Some(10),
                    ..
                }
            ),
            "{err}"
        );
    }
    let rm = SledReadModels::open(SledConfig::new(dir.path())).unwrap();
    assert_eq!(rm.checkpoint("timeline").await.unwrap(), Some(10));
    assert_eq!(
        rm.get_json::<u64>("users", "user-1").await.unwrap(),
        Some((9, 10))
    );
    assert_eq!(rm.get("users", "user-2").await.unwrap(), None);
    let page = rm
        .scan_prefix("timeline", "user-1/", Some("user-1/0004"), 3)
        .await
        .unwrap();
    let keys: Vec<_> = page.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["user-1/0005", "user-1/0006", "user-1/0007"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_conditional_increments_never_lose_an_update() {
    let dir = tempfile::tempdir().unwrap();
    let rm = SledReadModels::open(SledConfig::new(dir.path())).unwrap();
    rm.put_json("c", "n", &0u64, DocExpect::Absent)
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let rm = rm.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..5 {
                loop {
                    let (n, v) = rm.get_json::<u64>("c", "n").await.unwrap().unwrap();
                    match rm.put_json("c", "n", &(n + 1), DocExpect::Version(v)).await {
                        Ok(()) => break,
                        Err(Error::DocumentConflict { .. }) => continue,
                        Err(e) => panic!("{e}"),
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(rm.get_json::<u64>("c", "n").await.unwrap(), Some((80, 81)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_database_serves_events_and_read_models() {
    use metachat_core::event::{NewEvent, StreamId};
    use metachat_core::store::{EventAppender, EventReader, ExpectedVersion};
    let dir = tempfile::tempdir().unwrap();
    {
        let db = SledDatabase::open(SledConfig::new(dir.path())).unwrap();
        let s = StreamId::new("user-1").unwrap();
        db.event_store()
            .append(
                &s,
                ExpectedVersion::NoStream,
                vec![NewEvent::new("A", b"{}".to_vec())],
            )
            .await
            .unwrap();
        db.read_models()
            .commit(Commit {
                ops: vec![WriteOp::Put {
                    collection: "x".into(),
                    key: "k".into(),
                    value: b"v".to_vec(),
                    expect: DocExpect::Absent,
                }],
                checkpoint: Some(("p".into(), 1)),
            })
            .await
            .unwrap();
    }
    let db = SledDatabase::open(SledConfig::new(dir.path())).unwrap();
    assert_eq!(db.event_store().next_position().await.unwrap(), 1);
    assert_eq!(db.read_models().checkpoint("p").await.unwrap(), Some(1));
    // Clearing a collection and resetting a checkpoint also persist.
    db.read_models().clear_collection("x").await.unwrap();
    db.read_models().reset_checkpoint("p").await.unwrap();
    drop(db);
    let rm = SledReadModels::open(SledConfig::new(dir.path())).unwrap();
    assert_eq!(rm.get("x", "k").await.unwrap(), None);
    assert_eq!(rm.checkpoint("p").await.unwrap(), None);
}
