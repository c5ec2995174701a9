//! A projection fed from a real Kafka broker (`KAFKA_BROKERS`): a store's
//! log relayed to two topics with watermarks, consumed by a
//! `BusProjectionRunner`. Its checkpoint reaches the log's head, its read
//! models equal a fold of the log, and a second relay publishing everything
//! again (a relay that crashed before its checkpoint) changes nothing.
//!
//! Outside CI without a broker it prints `SKIPPED: …`; in CI it fails.

mod kafka_support;

use std::time::Duration;

use async_trait::async_trait;
use metachat_core::event::{Envelope, NewEvent, StreamId};
use metachat_core::memory::{InMemoryEventStore, InMemoryReadModels};
use metachat_core::projection::{BusProjectionRunner, Projection, ProjectionTx};
use metachat_core::read_model::{ReadModelStore, ReadModelStoreExt};
use metachat_core::relay::Relay;
use metachat_core::store::{EventAppender, ExpectedVersion};

/// Records, per stream, the versions it was handed.
#[derive(Debug)]
struct Versions;

#[async_trait]
impl Projection for Versions {
    fn name(&self) -> &str {
        "versions"
    }
    fn collections(&self) -> Vec<String> {
        vec!["versions".into()]
    }
    async fn apply(&self, e: &Envelope, tx: &mut ProjectionTx<'_>) -> metachat_core::Result<()> {
        let mut seen: Vec<u64> = tx
            .get_json("versions", e.stream_id.as_str())
            .await?
            .unwrap_or_default();
        seen.push(e.version);
        tx.put_json("versions", e.stream_id.as_str(), &seen)
    }
}

async fn wait_for_checkpoint(rm: &InMemoryReadModels, want: u64) {
    for _ in 0..600 {
        if rm.checkpoint("versions").await.unwrap() == Some(want) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "the checkpoint did not reach {want}: {:?}",
        rm.checkpoint("versions").await.unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relayed_log_projects_once_with_a_watermark_checkpoint() {
    let Some(brokers) = kafka_support::brokers() else {
        return;
    };
    let bus = std::sync::Arc::new(kafka_support::bus(&brokers));
    let prefix = format!("proj{}.", uuid::Uuid::new_v4().simple());
    let store = std::sync::Arc::new(InMemoryEventStore::new());
    let mut want: Vec<(String, u64)> = Vec::new();
    for (category, streams, events) in [("user", 5u64, 3u64), ("entry", 7, 2)] {
        for i in 0..streams {
            let s = StreamId::from_parts(category, i).unwrap();
            for _ in 0..events {
                store
                    .append(
                        &s,
                        ExpectedVersion::Any,
                        vec![NewEvent::new("A", b"{}".to_vec())],
                    )
                    .await
                    .unwrap();
            }
            want.push((s.as_str().to_owned(), events));
        }
    }
    let head = 5 * 3 + 7 * 2;
    let relay = |name: &str| {
        Relay::new(
            store.clone(),
            bus.clone(),
            InMemoryReadModels::new(),
            name,
            &prefix,
        )
        .with_watermarks(["user", "entry"])
    };
    assert_eq!(relay("r").catch_up().await.unwrap(), head);

    let rm = std::sync::Arc::new(InMemoryReadModels::new());
    let topics = [format!("{prefix}user"), format!("{prefix}entry")];
    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
    let runner = BusProjectionRunner::new(bus.clone(), rm.clone(), Versions, &names, "g");
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let run = tokio::spawn(async move {
        let mut stop = stop_rx;
        runner
            .run(async move {
                let _ = stop.wait_for(|s| *s).await;
            })
            .await
    });
    wait_for_checkpoint(&rm, head).await;
    // Published again from position 0 by a relay with no checkpoint.
    assert_eq!(relay("r").catch_up().await.unwrap(), head);
    // One more event: the checkpoint moves past it only once it is applied.
    let late = StreamId::from_parts("user", 0).unwrap();
    store
        .append(
            &late,
            ExpectedVersion::Exact(2),
            vec![NewEvent::new("A", b"{}".to_vec())],
        )
        .await
        .unwrap();
    assert_eq!(relay("r2").catch_up().await.unwrap(), head + 1);
    wait_for_checkpoint(&rm, head + 1).await;
    for (s, n) in want {
        let n = if s == late.as_str() { n + 1 } else { n };
        let (seen, _): (Vec<u64>, u64) = rm.get_json("versions", &s).await.unwrap().unwrap();
        assert_eq!(
            seen,
            (0..n).collect::<Vec<_>>(),
            "`{s}`: each event once, in order"
        );
    }
    stop_tx.send(true).unwrap();
    assert_eq!(run.await.unwrap().unwrap(), head + 1);
}
