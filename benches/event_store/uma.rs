//! UmaDB embedded: `umadb-core`'s storage engine (`Mvcc`) with the same
//! group-commit writer thread (`writer_thread_blocking`, 2,048 events per
//! commit at most) and the same read path (`read_conditional` on an MVCC
//! snapshot) that `umadb-server`'s request handler uses, without the gRPC
//! layer. A stream is a tag `stream:<id>`; an append to a stream carries the
//! DCB condition "fail if an event with this tag exists after the position
//! I last saw", UmaDB's form of an expected version.

use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::runtime::Runtime;
use tokio::sync::{mpsc, oneshot, watch};
use umadb_core::common::Position;
use umadb_core::db::read_conditional;
use umadb_core::mvcc::{Mvcc, StorageOptions};
use umadb_core::writer_thread_blocking::writer_thread_blocking;
use umadb_core::writer_thread_request::WriterThreadRequest;
use umadb_dcb::{DcbAppendCondition, DcbEvent, DcbQuery, DcbQueryItem, DcbSequencedEvent};

use crate::common::{stream_name, AGGREGATE_STREAM, BATCH, EVENT_TYPE, REPLAY_PAGE, WRITERS};

/// The largest commit of the writer thread, as in `umadb-server`.
const APPEND_BATCH_MAX_EVENTS: usize = 2048;

/// An embedded UmaDB.
pub(crate) struct UmaStore {
    mvcc: Arc<Mvcc>,
    requests: Option<mpsc::Sender<WriterThreadRequest>>,
    writer: Option<JoinHandle<()>>,
    payload: Arc<Vec<u8>>,
}

fn tag(stream: &str) -> String {
    format!("stream:{stream}")
}

fn stream_query(stream: &str) -> DcbQuery {
    DcbQuery::new().item(DcbQueryItem::new().tags([tag(stream)]))
}

impl UmaStore {
    /// Opens (creates) `dir/uma.db` and starts its writer thread.
    pub(crate) fn open(dir: &Path, payload: &[u8]) -> Self {
        let options = StorageOptions::default().db_path(dir.join("uma.db"));
        let mvcc = Arc::new(Mvcc::new(false, options).expect("open umadb"));
        let (tx, rx) = mpsc::channel(1024);
        let (head_tx, _) = watch::channel(None);
        let m = mvcc.clone();
        let writer = std::thread::spawn(move || {
            writer_thread_blocking(m, rx, head_tx, APPEND_BATCH_MAX_EVENTS);
        });
        UmaStore {
            mvcc,
            requests: Some(tx),
            writer: Some(writer),
            payload: Arc::new(payload.to_vec()),
        }
    }

    fn event(&self, stream: &str) -> DcbEvent {
        DcbEvent::new()
            .event_type(EVENT_TYPE)
            .tags([tag(stream)])
            .data(self.payload.to_vec())
            .uuid(uuid::Uuid::new_v4())
    }

    /// Appends `events` to `stream` if no event of the stream is after
    /// `after` (`None`: the stream must not exist); returns the last position.
    async fn append(&self, stream: &str, after: Option<u64>, events: Vec<DcbEvent>) -> u64 {
        let condition = DcbAppendCondition::new(stream_query(stream)).after(after);
        let (response_tx, response_rx) = oneshot::channel();
        self.requests
            .as_ref()
            .expect("writer running")
            .send(WriterThreadRequest::Append {
                events,
                condition: Some(condition),
                tracking_info: None,
                response_tx,
                cancel: None,
            })
            .await
            .expect("send");
        response_rx.await.expect("response").expect("append")
    }

    fn read(
        &self,
        query: Option<DcbQuery>,
        start: Option<u64>,
        limit: Option<u32>,
    ) -> Vec<DcbSequencedEvent> {
        let reader = self.mvcc.reader().expect("reader");
        read_conditional(
            self.mvcc.as_ref(),
            &Default::default(),
            reader.events_tree_root_id,
            reader.tags_tree_root_id,
            query.unwrap_or_default(),
            start.map(Position),
            false,
            limit,
            false,
            None,
        )
        .expect("read")
    }

    /// `iters` appends of one event each to one stream.
    pub(crate) fn append_each(&self, rt: &Runtime, stream: &str, iters: u64) -> Duration {
        rt.block_on(async {
            let mut after = self
                .read(Some(stream_query(stream)), None, None)
                .last()
                .map(|e| e.position);
            let start = Instant::now();
            for _ in 0..iters {
                after = Some(self.append(stream, after, vec![self.event(stream)]).await);
            }
            start.elapsed()
        })
    }

    /// [`WRITERS`] tasks, each appending `iters` single events to its own stream.
    pub(crate) fn append_concurrent(
        self: &Arc<Self>,
        rt: &Runtime,
        round: usize,
        iters: u64,
    ) -> Duration {
        rt.block_on(async {
            let start = Instant::now();
            let tasks: Vec<_> = (0..WRITERS)
                .map(|w| {
                    let store = self.clone();
                    let stream = format!("w{round}-{w}");
                    tokio::spawn(async move {
                        let mut after = None;
                        for _ in 0..iters {
                            after = Some(
                                store
                                    .append(&stream, after, vec![store.event(&stream)])
                                    .await,
                            );
                        }
                    })
                })
                .collect();
            for t in tasks {
                t.await.expect("writer task");
            }
            start.elapsed()
        })
    }

    /// `iters` appends of [`BATCH`] events, each to a new stream (events built before timing).
    pub(crate) fn append_batches(&self, rt: &Runtime, round: usize, iters: u64) -> Duration {
        let batches: Vec<(String, Vec<DcbEvent>)> = (0..iters)
            .map(|i| {
                let stream = format!("b{round}-{i}");
                let events = (0..BATCH).map(|_| self.event(&stream)).collect();
                (stream, events)
            })
            .collect();
        rt.block_on(async {
            let start = Instant::now();
            for (stream, events) in batches {
                self.append(&stream, None, events).await;
            }
            start.elapsed()
        })
    }

    /// Writes the replay dataset: `streams` streams of [`BATCH`] events, one append each.
    pub(crate) fn generate(&self, rt: &Runtime, streams: usize) {
        rt.block_on(async {
            for s in 0..streams {
                let stream = stream_name("bench", s);
                let events = (0..BATCH).map(|_| self.event(&stream)).collect();
                self.append(&stream, None, events).await;
            }
        });
    }

    /// Reads the events tagged with [`AGGREGATE_STREAM`]; returns how many.
    pub(crate) fn load_aggregate(&self) -> usize {
        let events = self.read(Some(stream_query(AGGREGATE_STREAM)), None, None);
        std::hint::black_box(&events);
        events.len()
    }

    /// Reads the whole log in pages of [`REPLAY_PAGE`]; returns how many.
    pub(crate) fn replay(&self) -> u64 {
        let limit = u32::try_from(REPLAY_PAGE).expect("fits");
        let (mut from, mut count) = (0u64, 0u64);
        loop {
            let page = self.read(None, Some(from), Some(limit));
            let Some(last) = page.last() else {
                return count;
            };
            from = last.position + 1;
            count += u64::try_from(page.len()).expect("fits");
            std::hint::black_box(&page);
        }
    }
}

impl Drop for UmaStore {
    fn drop(&mut self) {
        // Closing the channel ends the writer thread.
        self.requests = None;
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
    }
}
