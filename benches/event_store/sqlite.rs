//! The embedded alternative: SQLite (rusqlite, bundled) in WAL mode with
//! `synchronous=FULL`, one `events` table keyed by global position, a unique
//! (stream, version) index, and a read-model table + checkpoint table for the
//! projection. Two variants:
//!
//! * `sqlite`: writers share one connection behind a mutex, each append its
//!   own `BEGIN IMMEDIATE` transaction (SQLite allows one writer at a time;
//!   separate connections would only add busy-wait retries).
//! * `sqlite_tuned` ([`SqliteStore::open_tuned`]): what a careful user would
//!   build, and what our store does: a group-commit writer thread that takes
//!   every append queued and commits them in one transaction (one WAL sync),
//!   each append in a savepoint of its own so that a refused one rolls back
//!   alone; a unique index on the event id (our idempotency key); a 1 GiB
//!   page cache and a 4 GiB `mmap` for reads, on a connection of their own.

use std::collections::HashMap;
use std::path::Path;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use crate::common::{
    stream_name, AGGREGATE_STREAM, BATCH, EVENT_TYPE, PROJECTION_BATCH, REPLAY_PAGE, WRITERS,
};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS events (
    position INTEGER PRIMARY KEY,
    stream TEXT NOT NULL,
    version INTEGER NOT NULL,
    event_id BLOB NOT NULL,
    event_type TEXT NOT NULL,
    schema_version INTEGER NOT NULL,
    payload BLOB NOT NULL,
    metadata BLOB NOT NULL,
    recorded_at INTEGER NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS events_stream_version ON events (stream, version);
CREATE TABLE IF NOT EXISTS counts (stream TEXT PRIMARY KEY, n INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS checkpoints (name TEXT PRIMARY KEY, position INTEGER NOT NULL);
";

/// One stored event as a reader gets it.
#[allow(dead_code)] // Fields are read through `black_box` only.
#[derive(Debug)]
pub(crate) struct Row {
    position: i64,
    stream: String,
    version: i64,
    event_id: Vec<u8>,
    event_type: String,
    schema_version: i64,
    payload: Vec<u8>,
    metadata: Vec<u8>,
    recorded_at: i64,
}

const SELECT: &str = "SELECT position, stream, version, event_id, event_type, schema_version, payload, metadata, recorded_at FROM events";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
    Ok(Row {
        position: r.get(0)?,
        stream: r.get(1)?,
        version: r.get(2)?,
        event_id: r.get(3)?,
        event_type: r.get(4)?,
        schema_version: r.get(5)?,
        payload: r.get(6)?,
        metadata: r.get(7)?,
        recorded_at: r.get(8)?,
    })
}

fn now_micros() -> i64 {
    i64::try_from(metachat_core::event::Timestamp::now().0).unwrap_or(i64::MAX)
}

/// The tuned variant's extra index and read settings.
const TUNED_SCHEMA: &str = "
CREATE UNIQUE INDEX IF NOT EXISTS events_event_id ON events (event_id);
";

fn connect(path: &Path, tuned: bool) -> Connection {
    let conn = Connection::open(path).expect("open sqlite");
    conn.pragma_update(None, "journal_mode", "WAL")
        .expect("WAL");
    conn.pragma_update(None, "synchronous", "FULL")
        .expect("synchronous");
    if tuned {
        // Negative: KiB. 1 GiB of page cache, as our store's sled cache.
        conn.pragma_update(None, "cache_size", -(1i64 << 20))
            .expect("cache_size");
        conn.pragma_update(None, "mmap_size", 4i64 << 30)
            .expect("mmap_size");
    }
    conn
}

/// One append waiting for the group-commit writer: stream, expected
/// version, events, and where the new version goes.
type Request = (String, Option<u64>, usize, Sender<u64>);

/// A SQLite event store.
#[derive(Clone)]
pub(crate) struct SqliteStore {
    /// Reads (and, untuned, writes).
    conn: Arc<Mutex<Connection>>,
    /// Tuned: the group-commit writer's queue.
    writer: Option<Arc<Mutex<Sender<Request>>>>,
    payload: Arc<Vec<u8>>,
}

impl SqliteStore {
    /// Opens (creates) `dir/events.sqlite`.
    pub(crate) fn open(dir: &Path, payload: &[u8]) -> Self {
        let conn = connect(&dir.join("events.sqlite"), false);
        conn.execute_batch(SCHEMA).expect("schema");
        SqliteStore {
            conn: Arc::new(Mutex::new(conn)),
            writer: None,
            payload: Arc::new(payload.to_vec()),
        }
    }

    /// Opens (creates) `dir/events.sqlite` as the tuned variant (module docs).
    pub(crate) fn open_tuned(dir: &Path, payload: &[u8]) -> Self {
        let path = dir.join("events.sqlite");
        let conn = connect(&path, true);
        conn.execute_batch(SCHEMA).expect("schema");
        conn.execute_batch(TUNED_SCHEMA).expect("schema");
        let (tx, rx) = mpsc::channel();
        let write_conn = connect(&path, true);
        let payload = Arc::new(payload.to_vec());
        let writer_payload = payload.clone();
        std::thread::Builder::new()
            .name("sqlite-group-commit".into())
            .spawn(move || group_commit(write_conn, rx, &writer_payload))
            .expect("spawn writer");
        SqliteStore {
            conn: Arc::new(Mutex::new(conn)),
            writer: Some(Arc::new(Mutex::new(tx))),
            payload,
        }
    }

    /// Appends `n` events to `stream` in one transaction if the stream is at
    /// `expected` (`None`: must not exist); returns the new stream version.
    pub(crate) fn append(&self, stream: &str, expected: Option<u64>, n: usize) -> u64 {
        if let Some(writer) = &self.writer {
            let (reply, version) = mpsc::channel();
            writer
                .lock()
                .expect("lock")
                .send((stream.to_owned(), expected, n, reply))
                .expect("writer alive");
            return version.recv().expect("writer answered");
        }
        let mut conn = self.conn.lock().expect("lock");
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .expect("begin");
        let version = insert(&tx, &self.payload, stream, expected, n);
        tx.commit().expect("commit");
        version
    }

    /// `iters` appends of one event each to one stream.
    pub(crate) fn append_each(&self, stream: &str, iters: u64) -> Duration {
        let mut version = self.version(stream);
        let start = Instant::now();
        for _ in 0..iters {
            version = Some(self.append(stream, version, 1));
        }
        start.elapsed()
    }

    /// [`WRITERS`] threads, each appending `iters` single events to its own stream.
    pub(crate) fn append_concurrent(&self, round: usize, iters: u64) -> Duration {
        let streams: Vec<String> = (0..WRITERS).map(|w| format!("w{round}-{w}")).collect();
        let start = Instant::now();
        std::thread::scope(|s| {
            for stream in &streams {
                let store = self.clone();
                s.spawn(move || {
                    let mut version = None;
                    for _ in 0..iters {
                        version = Some(store.append(stream, version, 1));
                    }
                });
            }
        });
        start.elapsed()
    }

    /// `iters` appends of [`BATCH`] events, each to a new stream.
    pub(crate) fn append_batches(&self, round: usize, iters: u64) -> Duration {
        let start = Instant::now();
        for i in 0..iters {
            self.append(&format!("b{round}-{i}"), None, BATCH);
        }
        start.elapsed()
    }

    /// The stream's version.
    pub(crate) fn version(&self, stream: &str) -> Option<u64> {
        let conn = self.conn.lock().expect("lock");
        let v: Option<i64> = conn
            .query_row(
                "SELECT max(version) FROM events WHERE stream = ?1",
                [stream],
                |r| r.get(0),
            )
            .expect("version");
        v.map(|v| u64::try_from(v).expect("non-negative"))
    }

    /// Writes the replay dataset: `streams` streams of [`BATCH`] events, one transaction each.
    pub(crate) fn generate(&self, streams: usize) {
        for s in 0..streams {
            self.append(&stream_name("bench", s), None, BATCH);
        }
    }

    /// Reads the events of [`AGGREGATE_STREAM`] ordered by version; returns how many.
    pub(crate) fn load_aggregate(&self) -> usize {
        let conn = self.conn.lock().expect("lock");
        let mut stmt = conn
            .prepare_cached(&format!(
                "{SELECT} WHERE stream = ?1 AND version >= ?2 ORDER BY version LIMIT ?3"
            ))
            .expect("prepare");
        let rows: Vec<Row> = stmt
            .query_map(params![AGGREGATE_STREAM, 0, 4096], row)
            .expect("query")
            .collect::<rusqlite::Result<_>>()
            .expect("rows");
        std::hint::black_box(&rows);
        rows.len()
    }

    /// Reads the global log ordered by position, in pages of [`REPLAY_PAGE`]; returns how many.
    pub(crate) fn replay(&self) -> u64 {
        let conn = self.conn.lock().expect("lock");
        let mut stmt = conn
            .prepare_cached(&format!(
                "{SELECT} WHERE position >= ?1 ORDER BY position LIMIT ?2"
            ))
            .expect("prepare");
        let (mut from, mut count) = (0i64, 0u64);
        let page = i64::try_from(REPLAY_PAGE).expect("fits");
        loop {
            let rows: Vec<Row> = stmt
                .query_map(params![from, page], row)
                .expect("query")
                .collect::<rusqlite::Result<_>>()
                .expect("rows");
            let Some(last) = rows.last() else {
                return count;
            };
            from = last.position + 1;
            count += u64::try_from(rows.len()).expect("fits");
            std::hint::black_box(&rows);
        }
    }

    /// A projection rebuilt from position 0: per event, read-modify-write the
    /// event count of its stream in `counts`; every [`PROJECTION_BATCH`]
    /// events, commit those writes with the checkpoint in one transaction.
    /// Returns how many events it folded.
    pub(crate) fn project(&self) -> u64 {
        let mut conn = self.conn.lock().expect("lock");
        conn.execute_batch("DELETE FROM counts; DELETE FROM checkpoints WHERE name = 'counts';")
            .expect("reset");
        let page = i64::try_from(PROJECTION_BATCH).expect("fits");
        let mut next: i64 = conn
            .query_row(
                "SELECT position FROM checkpoints WHERE name = 'counts'",
                [],
                |r| r.get(0),
            )
            .optional()
            .expect("checkpoint")
            .unwrap_or(0);
        let mut folded = 0u64;
        loop {
            let rows: Vec<Row> = conn
                .prepare_cached(&format!(
                    "{SELECT} WHERE position >= ?1 ORDER BY position LIMIT ?2"
                ))
                .expect("prepare")
                .query_map(params![next, page], row)
                .expect("query")
                .collect::<rusqlite::Result<_>>()
                .expect("rows");
            let Some(last) = rows.last() else {
                return folded;
            };
            next = last.position + 1;
            folded += u64::try_from(rows.len()).expect("fits");
            let tx = conn.transaction().expect("begin");
            {
                let mut get = tx
                    .prepare_cached("SELECT n FROM counts WHERE stream = ?1")
                    .expect("prepare");
                let mut put = tx
                    .prepare_cached("INSERT INTO counts (stream, n) VALUES (?1, ?2) ON CONFLICT (stream) DO UPDATE SET n = excluded.n")
                    .expect("prepare");
                // The batch's own writes are visible to its later reads, as in a ProjectionTx.
                let mut pending: HashMap<&str, i64> = HashMap::new();
                for r in &rows {
                    let n = match pending.get(r.stream.as_str()) {
                        Some(n) => *n,
                        None => get
                            .query_row([&r.stream], |x| x.get(0))
                            .optional()
                            .expect("get")
                            .unwrap_or(0),
                    };
                    pending.insert(&r.stream, n + 1);
                    put.execute(params![r.stream, n + 1]).expect("put");
                }
                tx.execute(
                    "INSERT INTO checkpoints (name, position) VALUES ('counts', ?1) ON CONFLICT (name) DO UPDATE SET position = excluded.position",
                    [next],
                )
                .expect("checkpoint");
            }
            tx.commit().expect("commit");
        }
    }
}

/// Inserts `n` events into `stream` within `tx` if the stream is at
/// `expected`; returns the new stream version.
fn insert(tx: &Connection, payload: &[u8], stream: &str, expected: Option<u64>, n: usize) -> u64 {
    let current: Option<i64> = tx
        .prepare_cached("SELECT max(version) FROM events WHERE stream = ?1")
        .expect("prepare")
        .query_row([stream], |r| r.get(0))
        .expect("version");
    let current = current.map(|v| u64::try_from(v).expect("non-negative"));
    assert_eq!(current, expected, "version conflict on {stream}");
    let first = current.map_or(0, |v| v + 1);
    let now = now_micros();
    let mut insert = tx
        .prepare_cached(
            "INSERT INTO events (stream, version, event_id, event_type, schema_version, payload, metadata, recorded_at) \
             VALUES (?1, ?2, ?3, ?4, 1, ?5, ?6, ?7)",
        )
        .expect("prepare");
    for i in 0..n {
        let version = i64::try_from(first + u64::try_from(i).expect("fits")).expect("fits");
        let id = uuid::Uuid::new_v4();
        insert
            .execute(params![
                stream,
                version,
                id.as_bytes().as_slice(),
                EVENT_TYPE,
                payload,
                [0u8; 0].as_slice(),
                now
            ])
            .expect("insert");
    }
    first + u64::try_from(n).expect("fits") - 1
}

/// The tuned variant's writer: every append queued goes into one
/// transaction, each in a savepoint of its own, then one commit (one WAL
/// sync) answers them all.
fn group_commit(mut conn: Connection, rx: Receiver<Request>, payload: &[u8]) {
    while let Ok(first) = rx.recv() {
        let mut group = vec![first];
        while let Ok(more) = rx.try_recv() {
            group.push(more);
        }
        let mut tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .expect("begin");
        let mut answers = Vec::with_capacity(group.len());
        for (stream, expected, n, reply) in group {
            let sp = tx.savepoint().expect("savepoint");
            let version = insert(&sp, payload, &stream, expected, n);
            sp.commit().expect("release savepoint");
            answers.push((reply, version));
        }
        tx.commit().expect("commit");
        for (reply, version) in answers {
            let _ = reply.send(version);
        }
    }
}
