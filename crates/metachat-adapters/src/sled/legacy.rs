//! Opening a database of an earlier version, whose events live in sled
//! chunks (`e` keys) rather than in the segment log: the chunks are copied
//! into the log (one batch per chunk), indexed, synced, and only then
//! removed. A crash at any step leaves a state the next open finishes.

use metachat_core::Result;

use super::chunk;
use super::durability::Core;
use super::error::{corrupted, from_sled};
use super::index::{self, Recovered};
use super::keys;

/// Brings the index in line with the log, first moving an earlier
/// version's chunks into the log if there are any.
pub(crate) fn migrate(tree: &sled::Tree, core: &Core) -> Result<Recovered> {
    let legacy_end = match tree.scan_prefix([keys::EVENT]).next_back() {
        None => return index::recover(tree, &core.log, 0),
        Some(item) => {
            let (k, v) = item.map_err(from_sled)?;
            let first = keys::position_of_event_key(&k)
                .ok_or_else(|| corrupted("last event chunk".into(), "malformed key"))?;
            first + chunk::count(first, &v)?
        }
    };
    // Runs and ids of the chunks' events are in the index already.
    let before = index::recover(tree, &core.log, legacy_end)?;
    let mut moved = 0u64;
    if before.next < legacy_end {
        let mut log = core.log.writer();
        for item in tree.scan_prefix([keys::EVENT]) {
            let (k, v) = item.map_err(from_sled)?;
            let first = keys::position_of_event_key(&k)
                .ok_or_else(|| corrupted("event chunk".into(), "malformed key"))?;
            let mut records = Vec::new();
            for frame in chunk::Frames::new(first, &v) {
                let (pos, record) = frame?;
                if pos >= before.next {
                    records.push(record);
                }
            }
            if !records.is_empty() {
                moved += records.len() as u64;
                log.append(&records)?;
            }
        }
        log.sync()?;
    }
    let after = index::recover(tree, &core.log, legacy_end)?;
    if after.next != legacy_end {
        return Err(corrupted(
            format!("global position {}", after.next),
            "the earlier version's chunks do not end where the log does",
        ));
    }
    let mut batch = sled::Batch::default();
    for item in tree.scan_prefix([keys::EVENT]).keys() {
        batch.remove(item.map_err(from_sled)?);
    }
    tree.apply_batch(batch).map_err(from_sled)?;
    core.syncer.sync()?;
    tracing::info!(
        events = moved,
        "moved the events of an earlier version's store into the segment log"
    );
    Ok(after)
}

#[cfg(test)]
mod tests {
    use metachat_core::event::{wire, Envelope, NewEvent, StreamId, Timestamp};
    use metachat_core::store::{EventAppender, EventReader, ExpectedVersion};

    use super::super::{chunk, keys, SledConfig, SledDatabase};

    /// Writes a database as the earlier version did: events in chunks under
    /// `e`, runs under `s`, ids (position only) under `i`.
    fn write_earlier_version(dir: &std::path::Path, events: &[Envelope]) {
        let db = sled::Config::new()
            .path(dir)
            .segment_size(chunk::SEGMENT_SIZE)
            .open()
            .expect("sled");
        let tree = db.open_tree(keys::EVENTS_TREE).expect("tree");
        // Two chunks: positions 0..2 and 2..
        for (first, part) in [(0, &events[..2]), (2, &events[2..])] {
            let mut c = Vec::new();
            for e in part {
                chunk::push(&mut c, &wire::encode(e)).expect("frame");
            }
            tree.insert(keys::event(first), c).expect("chunk");
        }
        for e in events {
            let run = keys::Run {
                first_version: e.version,
                position: e.position,
                count: 1,
            };
            tree.insert(keys::stream_entry(&e.stream_id, e.version), &run.value())
                .expect("run");
            tree.insert(
                keys::event_id(e.event_id.0.as_bytes()),
                &e.position.to_be_bytes(),
            )
            .expect("id");
        }
        db.flush().expect("flush");
    }

    #[tokio::test]
    async fn an_earlier_versions_database_is_moved_into_the_log_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (a, b) = (
            StreamId::new("a-1").expect("id"),
            StreamId::new("b-1").expect("id"),
        );
        let now = Timestamp::now();
        let news: Vec<NewEvent> = (0..3u8).map(|i| NewEvent::new("E", vec![i; 10])).collect();
        let events = vec![
            Envelope::recorded(news[0].clone(), a.clone(), 0, 0, now),
            Envelope::recorded(news[1].clone(), b.clone(), 0, 1, now),
            Envelope::recorded(news[2].clone(), a.clone(), 1, 2, now),
        ];
        write_earlier_version(dir.path(), &events);
        for round in 0..2 {
            let db = SledDatabase::open(SledConfig::new(dir.path())).expect("open");
            let store = db.event_store();
            let all = store.read_all(0, 100).await.expect("read");
            assert_eq!(all.len(), 3 + round, "round {round}");
            assert_eq!(all[..3], events[..], "round {round}");
            assert_eq!(store.stream_version(&a).await.expect("head"), Some(1));
            // Ids of the earlier layout still answer re-appends.
            let again = store
                .append(&a, ExpectedVersion::Any, vec![news[2].clone()])
                .await
                .expect("re-append");
            assert_eq!(again.first_position, 2);
            if round == 0 {
                let out = store
                    .append(
                        &b,
                        ExpectedVersion::Exact(0),
                        vec![NewEvent::new("E", b"x".to_vec())],
                    )
                    .await
                    .expect("append");
                assert_eq!(out.first_position, 3);
            }
            drop((store, db));
            let db = sled::Config::new()
                .path(dir.path())
                .segment_size(chunk::SEGMENT_SIZE)
                .open()
                .expect("sled");
            let tree = db.open_tree(keys::EVENTS_TREE).expect("tree");
            assert!(
                tree.scan_prefix([keys::EVENT]).next().is_none(),
                "chunks removed"
            );
        }
    }
}
