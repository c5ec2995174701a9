//! Fault test on a real Cassandra node: the node is stopped with
//! `scripts/cassandra stop` in the middle of a projection's catch-up and
//! started again. While it is down every operation fails with a typed
//! `Unavailable`; afterwards the projection resumes from its checkpoint and
//! its read models equal a rebuild from position 0 (values and versions, so
//! no batch was lost or applied twice).
//!
//! Needs `CASSANDRA_NODES` and a node started by `scripts/cassandra start`
//! (the test restarts it). Outside CI without a node it prints `SKIPPED: …`.

mod cassandra_support;

use std::time::Duration;

use metachat_conformance::projection::{CountingProjection, COUNTS};
use metachat_core::event::{NewEvent, StreamId};
use metachat_core::projection::ProjectionRunner;
use metachat_core::read_model::{Document, ReadModelStore};
use metachat_core::store::{EventAppender, EventReader, ExpectedVersion};
use metachat_core::Error;

const STREAMS: u64 = 20;
const EVENTS_PER_STREAM: u64 = 150;

async fn all_docs<R: ReadModelStore>(rm: &R) -> Vec<(String, Document)> {
    let mut out = Vec::new();
    loop {
        let after = out.last().map(|(k, _): &(String, Document)| k.clone());
        let page = rm
            .scan_prefix(COUNTS, "", after.as_deref(), 100)
            .await
            .expect("scan after the restart");
        if page.is_empty() {
            return out;
        }
        out.extend(page);
    }
}

fn unavailable<T: std::fmt::Debug>(what: &str, r: metachat_core::Result<T>) {
    match r {
        Err(Error::Unavailable { .. }) => {}
        other => panic!("{what} while the node is down: expected Unavailable, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_stopped_during_catch_up_then_restarted() {
    let Some(nodes) = cassandra_support::nodes() else {
        return;
    };
    let config = cassandra_support::config(&nodes);
    let store = metachat_adapters::cassandra::CassandraEventStore::connect(&config)
        .await
        .expect("store");
    let read_models = metachat_adapters::cassandra::CassandraReadModels::connect(&config)
        .await
        .expect("read models");
    for s in 0..STREAMS {
        let stream = StreamId::new(format!("fault-{s}")).unwrap();
        for chunk in 0..(EVENTS_PER_STREAM / 10) {
            let batch = (0..10)
                .map(|j| {
                    let n = s * 1000 + chunk * 10 + j;
                    NewEvent::new(
                        "Counted",
                        serde_json::to_vec(&serde_json::json!({ "n": n })).unwrap(),
                    )
                })
                .collect();
            store
                .append(&stream, ExpectedVersion::Any, batch)
                .await
                .expect("append before the fault");
        }
    }
    let total = STREAMS * EVENTS_PER_STREAM;
    assert_eq!(store.next_position().await.unwrap(), total);

    // Catch up in small batches in the background; stop the node once some
    // batches (not all) are committed.
    let runner = ProjectionRunner::new(
        store.clone(),
        read_models.clone(),
        CountingProjection::default(),
    )
    .with_batch_size(25);
    let catch_up = tokio::spawn(async move { runner.catch_up().await });
    loop {
        let cp = read_models
            .checkpoint("conformance-counter")
            .await
            .unwrap()
            .unwrap_or(0);
        if cp >= 200 {
            assert!(cp < total, "catch-up finished before the fault ({cp})");
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cassandra_support::script("stop");
    let outcome = catch_up.await.expect("catch-up task");
    match &outcome {
        Err(Error::Unavailable { .. }) => {}
        Err(Error::Projection { source, .. }) if matches!(**source, Error::Unavailable { .. }) => {}
        other => panic!("catch-up with the node stopped: expected Unavailable, got {other:?}"),
    }
    eprintln!("catch-up stopped with: {}", outcome.unwrap_err());

    // Down: typed errors, nothing acknowledged.
    let s = StreamId::new("fault-0").unwrap();
    unavailable(
        "append",
        store
            .append(
                &s,
                ExpectedVersion::Any,
                vec![NewEvent::new("Lost", b"{}".to_vec())],
            )
            .await,
    );
    unavailable("read_all", store.read_all(0, 10).await);
    unavailable("get", read_models.get(COUNTS, "fault-0").await);
    unavailable(
        "checkpoint",
        read_models.checkpoint("conformance-counter").await,
    );

    cassandra_support::script("start");
    // The driver reconnects on its own, each session separately: wait until
    // both the store's and the read models' sessions have.
    let mut waited = 0;
    while store.next_position().await.is_err()
        || read_models.checkpoint("conformance-counter").await.is_err()
    {
        waited += 1;
        assert!(
            waited < 120,
            "the store or the read models did not reconnect after the restart"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(
        store.next_position().await.unwrap(),
        total,
        "the append refused while the node was down must not appear"
    );
    let resumed_from = read_models
        .checkpoint("conformance-counter")
        .await
        .unwrap()
        .unwrap_or(0);
    assert!(resumed_from < total, "checkpoint {resumed_from}");
    let runner = ProjectionRunner::new(
        store.clone(),
        read_models.clone(),
        CountingProjection::default(),
    )
    .with_batch_size(25);
    let done = runner.catch_up().await.expect("catch-up after the restart");
    assert_eq!(done, total);
    let seen = runner.projection().seen();
    assert_eq!(
        seen.first().copied(),
        Some(resumed_from),
        "resumed exactly at the checkpoint"
    );

    // A rebuild from 0 into a fresh namespace must hold the same documents.
    let rebuilt = cassandra_support::read_models(&nodes).await;
    let fresh = ProjectionRunner::new(
        store.clone(),
        rebuilt.clone(),
        CountingProjection::default(),
    )
    .with_batch_size(500);
    assert_eq!(fresh.rebuild().await.unwrap(), total);
    let resumed = all_docs(&read_models).await;
    assert_eq!(resumed.len(), usize::try_from(STREAMS).unwrap());
    assert_eq!(
        resumed,
        all_docs(&rebuilt).await,
        "resumed read models != rebuild from 0"
    );
    for (key, doc) in &resumed {
        assert_eq!(
            doc.version, EVENTS_PER_STREAM,
            "{key}: one put per event, none twice"
        );
    }
}
