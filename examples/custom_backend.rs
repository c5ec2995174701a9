//! A backend of your own: an event store over a plain `Vec` behind a mutex,
//! built from the toolkit's shared rules (`Limits::check`, `check_reappend`,
//! `ExpectedVersion::check`), then run through the same conformance checks
//! every shipped store passes.
//!
//! Run: `cargo run --example custom_backend`. In a backend crate's own
//! tests, `metachat_conformance::event_store_suite!(fresh_store)` turns the
//! same checks into one `#[test]` each.

use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use metachat::event::{Envelope, Limits, NewEvent, StreamId, Timestamp};
use metachat::store::{
    check_reappend, AppendOutcome, Direction, EventAppender, EventReader, ExpectedVersion,
};
use metachat::Result;
use metachat_conformance::store as checks;

/// The whole log in one `Vec`, in position order.
#[derive(Debug, Default)]
struct VecStore {
    log: Mutex<Vec<Envelope>>,
}

impl VecStore {
    fn log(&self) -> MutexGuard<'_, Vec<Envelope>> {
        self.log.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn version_of(log: &[Envelope], stream: &StreamId) -> Option<u64> {
    log.iter()
        .filter(|e| &e.stream_id == stream)
        .map(|e| e.version)
        .max()
}

#[async_trait]
impl EventAppender for VecStore {
    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendOutcome> {
        // The rules every store shares, each written once in core.
        Limits::default().check(&events)?;
        let mut log = self.log();
        let stored: Vec<Option<Envelope>> = events
            .iter()
            .map(|e| log.iter().find(|s| s.event_id == e.event_id).cloned())
            .collect();
        if let Some(outcome) = check_reappend(stream, &events, &stored)? {
            return Ok(outcome); // an idempotent retry
        }
        let actual = version_of(&log, stream);
        expected.check(stream, actual)?;

        let first_version = actual.map_or(0, |v| v + 1);
        let first_position = log.len() as u64;
        let now = Timestamp::now();
        let n = events.len() as u64;
        for (i, e) in (0u64..).zip(events) {
            let env = Envelope::recorded(
                e,
                stream.clone(),
                first_version + i,
                first_position + i,
                now,
            );
            log.push(env);
        }
        Ok(AppendOutcome {
            first_version,
            last_version: first_version + n - 1,
            first_position,
            last_position: first_position + n - 1,
            recorded_at: now,
        })
    }
}

#[async_trait]
impl EventReader for VecStore {
    async fn read_stream(
        &self,
        stream: &StreamId,
        from: u64,
        direction: Direction,
        limit: usize,
    ) -> Result<Vec<Envelope>> {
        let log = self.log();
        let events = log.iter().filter(|e| &e.stream_id == stream).cloned();
        Ok(match direction {
            Direction::Forward => events.filter(|e| e.version >= from).take(limit).collect(),
            Direction::Backward => {
                let mut back: Vec<Envelope> = events.filter(|e| e.version <= from).collect();
                back.reverse();
                back.truncate(limit);
                back
            }
        })
    }

    async fn read_all(&self, from: u64, limit: usize) -> Result<Vec<Envelope>> {
        let log = self.log();
        Ok(log
            .iter()
            .filter(|e| e.position >= from)
            .take(limit)
            .cloned()
            .collect())
    }

    async fn stream_version(&self, stream: &StreamId) -> Result<Option<u64>> {
        Ok(version_of(&self.log(), stream))
    }

    async fn next_position(&self) -> Result<u64> {
        Ok(self.log().len() as u64)
    }
    // No `head_watch`: subscriptions over this store poll.
}

/// Runs each check on a fresh store and says which passed; a failing check
/// panics with what the contract expected.
macro_rules! run_checks {
    ($($check:ident),* $(,)?) => {{
        let mut passed = 0;
        $(
            checks::$check(std::sync::Arc::new(VecStore::default())).await;
            println!("ok  {}", stringify!($check));
            passed += 1;
        )*
        passed
    }};
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let passed = run_checks!(
        check_expected_version_absent_stream,
        check_expected_version_present_stream,
        check_idempotent_reappend,
        check_partial_reappend_refused,
        check_duplicate_event_id_in_other_stream,
        check_per_stream_order_and_gap_free_positions,
        check_read_stream_forward,
        check_read_stream_backward,
        check_read_all_from_any_position,
        check_envelope_round_trip,
        check_stream_version_and_next_position,
        check_empty_batch_refused,
        check_oversized_event_refused,
        check_batch_too_large_refused,
        check_invalid_event_type_refused,
        check_duplicate_id_in_batch_refused,
    );
    println!("VecStore passes {passed} event-store conformance checks");
}
