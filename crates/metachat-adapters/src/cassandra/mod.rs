//! Read models and an event store on Apache Cassandra, through the `scylla`
//! driver (prepared statements, token-aware routing).
//!
//! ```no_run
//! use metachat_adapters::cassandra::{CassandraConfig, CassandraEventStore, CassandraReadModels};
//! use metachat_core::event::{NewEvent, StreamId};
//! use metachat_core::read_model::{DocExpect, ReadModelStoreExt};
//! use metachat_core::store::{EventAppender, EventReader, ExpectedVersion};
//!
//! # async fn run() -> metachat_core::Result<()> {
//! // CASSANDRA_NODES=127.0.0.1:19042, plus optional keyspace, namespace,
//! // consistency and replication variables.
//! let config = CassandraConfig::from_env()?.keyspace("diary").build()?;
//! let store = CassandraEventStore::connect(&config).await?;
//! let read_models = CassandraReadModels::connect(&config).await?;
//!
//! let stream = StreamId::new("user-42")?;
//! let out = store
//!     .append(&stream, ExpectedVersion::NoStream, vec![NewEvent::new("UserRegistered", b"{}".to_vec())])
//!     .await?;
//! assert_eq!(store.read_all(out.first_position, 10).await?.len(), 1);
//!
//! read_models.put_json("users", "42", &"Ada", DocExpect::Absent).await?;
//! let (name, version): (String, u64) = read_models.get_json("users", "42").await?.unwrap();
//! assert_eq!((name.as_str(), version), ("Ada", 1));
//! # Ok(()) }
//! ```
//!
//! # Schema
//!
//! The adapter runs versioned migrations when it connects (see
//! `schema_migrations` in the keyspace): the keyspace (replication from
//! [`CassandraConfig::replication`], unless `create_keyspace(false)`), then
//! numbered, idempotent DDL steps. Every partition key starts with the
//! configured *namespace*, so several stores (or tests) share one keyspace.
//!
//! | table | partition key | clustering | holds |
//! |---|---|---|---|
//! | `documents` | namespace, collection | key | value, version |
//! | `checkpoints` | namespace | projection | next position |
//! | `data_keys` | namespace, subject | | key, shredded (`gc_grace_seconds` one day: see [`CassandraKeyStore`]) |
//! | `log_layout` | namespace | | partitions of its log |
//! | `log_heads` | namespace (partition 0) or namespace + `\u{1f}` + partition | stream | stream version; static: next position, committed position, pending batch |
//! | `stream_events` | namespace, stream | version | position, record |
//! | `global_log` | namespace (+ partition, as above), position / 16384 | position | record |
//! | `event_ids` | namespace, event id | | stream, version, position |
//!
//! Records are the core's checksummed [`wire`](metachat_core::event::wire) format.
//!
//! # Read models
//!
//! A collection is one partition, its documents clustered by key, so a prefix
//! scan is one ordered range read, paged by `key > after LIMIT n`. (A
//! collection is thereby bounded by what one partition holds well: keep it in
//! the low millions of small documents, or split it by key prefix into
//! several collections.)
//!
//! [`commit`](metachat_core::read_model::ReadModelStore::commit) reads the
//! versions of the documents it touches (one `key IN …` query per
//! collection), plays its ops over them (so a failing condition is a
//! [`DocumentConflict`](metachat_core::Error::DocumentConflict) before
//! anything is written) and then writes:
//!
//! - **Without conditions** (every op [`DocExpect::Any`](metachat_core::read_model::DocExpect::Any),
//!   which is what a [`ProjectionRunner`](metachat_core::projection::ProjectionRunner)
//!   writes): one `LOGGED` batch holding every document write *and the
//!   checkpoint*. Cassandra's batch log makes it all or nothing: after a
//!   crash or a timeout either the whole batch (writes and checkpoint) is
//!   applied, or none of it. A restarted runner reads the checkpoint and so
//!   resumes exactly after the last batch applied: nothing lost, nothing
//!   applied twice. Versions are computed from the versions read, so they are
//!   exact as long as one writer at a time writes a document (a projection
//!   owns its collections). The batch must fit the node's
//!   `batch_size_fail_threshold`; keep the runner's batch size accordingly.
//! - **With conditions**: one lightweight-transaction batch per collection
//!   (a single partition), every touched document conditioned on the version
//!   read (`IF version = ?`, `null` for absent). A concurrent writer that
//!   slipped in makes the batch not apply; the collection is re-read and
//!   retried, and a condition that no longer holds is the conflict.
//!
//! [`capabilities`](metachat_core::read_model::ReadModelStore::capabilities)
//! says `atomic_commit: false`, honestly: a logged batch is atomic but not
//! isolated across partitions (a reader may see part of it while it is being
//! applied), and a conditional commit over several collections applies them
//! one after another. Projections need only the durability half, which holds.
//!
//! # Event store
//!
//! The log of a namespace has a fixed number of **partitions**
//! ([`CassandraConfigBuilder::partitions`], `CASSANDRA_PARTITIONS`; default
//! 1, recorded in `log_layout` at the namespace's first use). Each stream
//! lives in one partition, chosen by its *partition key*
//! ([`CassandraEventStore::with_partition_key`]; default the stream id) as
//! `crc32(key) % partitions` ([`partition_for_key`]). Each partition is a
//! gap-free log of its own, positions `0, 1, 2, …`, with its own sequencer:
//! its `log_heads` partition holds the sequencer (static `next_position`),
//! the commit mark (static `committed`), the batch being written (static
//! `pending`) and one row per stream of the partition with its version.
//! With one partition the log is one total order
//! ([`LogOrder::Total`](metachat_core::store::LogOrder)); with more, order
//! holds within each partition ([`LogOrder::Partitioned`](metachat_core::store::LogOrder)):
//! `read_all` and `next_position` answer
//! [`PartitionedLog`](metachat_core::Error::PartitionedLog), and followers
//! read each partition (`read_partition`, or a
//! [`Partition`](metachat_core::store::Partition) view, with a checkpoint per
//! partition: [`ProjectionRunner::for_partition`](metachat_core::projection::ProjectionRunner::for_partition)).
//!
//! An append to a stream of partition `p`:
//!
//! 1. reads `p`'s head; if `committed < next_position`, an earlier append was
//!    decided but not finished: it waits a moment for its writer, and if the
//!    batch is still unfinished after 25 ms (the writer crashed or stalls)
//!    *helps*, finishing that batch from the `pending` column (steps 4–5),
//!    and starts over;
//! 2. looks the event ids up in `event_ids`: a whole match is an idempotent
//!    re-append (the original outcome), a partial match or an id of another
//!    stream is refused;
//! 3. checks the expected version against the stream's row (on the first
//!    try of a `NoStream` or `Exact` append it takes the expected version
//!    instead of reading it: the decision checks it), then **decides** with
//!    one conditional batch on `p`'s head partition:
//!    `SET next_position = n + k, pending = <batch> IF next_position = n AND committed = n`
//!    and `SET version = v + k IF version = v` for the stream. Losing on the
//!    stream is a [`Conflict`](metachat_core::Error::Conflict) carrying the
//!    winner's version (after a serial reread); losing on the sequencer is a
//!    retry after a short jittered pause. Losers write nothing, so positions
//!    have no gaps;
//! 4. writes the records to `stream_events`, `global_log` and `event_ids`
//!    (idempotent inserts, so a helper and the writer may both write them);
//! 5. **commits**: `SET committed = n + k` with the write timestamp
//!    `2^62 + n + k`, a plain write whose timestamp grows with the mark, so
//!    the highest mark wins whoever writes it when, then returns.
//!
//! One lightweight transaction per append, and no lock in the process:
//! several instances and processes append to one namespace at once and
//! race only through the conditions. Readers (`read_partition`,
//! `read_stream`, `stream_version`, and with one partition `read_all` and
//! `next_position`) see only positions below `committed`, which moves only
//! after every record below it was written: no reader sees position `N + 1`
//! before `N` in a partition, and a decided batch is never half visible.
//!
//! **What the partitions cost and buy.** Appends of one partition are
//! serialized by its sequencer; 32 writers on one node reach a few hundred
//! appends per second on one partition, and more with more partitions,
//! since appends to different partitions never contend (figures in
//! `benches/README.md`). Reads scale with the cluster either way. Keep one
//! partition when a consumer needs one total order of every event; the
//! price is that ceiling. Event-id uniqueness *across streams* is checked,
//! but two appends racing the same id into streams of different partitions
//! can both succeed (ids are random UUIDs: only a client bug does that); a
//! retry into the same stream is always recognised.
//!
//! A decision that times out (Paxos contention on a busy head, a slow node)
//! is settled by the append itself: it rereads the head with `SERIAL`
//! consistency, which finishes or fences off the round, and either finds its
//! own batch (finishing it if needed, and returning its outcome) or decides
//! again; only after several unsettled rounds in a row does it give up as
//! [`Unavailable`](metachat_core::Error::Unavailable). A timeout while
//! writing a decided batch is `Unavailable` too: the batch is completed later
//! by a helper, and a retry with the same event ids returns its outcome
//! instead of appending twice.
//!
//! Subscriptions poll (no [`HeadWatch`](metachat_core::store::HeadWatch)), so
//! appends from other processes are seen too.
//!
//! # Errors
//!
//! Driver and server failures are mapped once (see [`CassandraOpError`]):
//! unreachable nodes, timeouts, `Unavailable`, `Overloaded` and unknown Paxos
//! outcomes become [`Unavailable`](metachat_core::Error::Unavailable)
//! (retryable); anything else [`Backend`](metachat_core::Error::Backend).

mod config;
mod error;
mod event_store;
mod keys;
mod read_models;
mod schema;

use std::sync::Arc;

use scylla::client::execution_profile::ExecutionProfile;
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::response::query_result::QueryResult;
use scylla::statement::prepared::PreparedStatement;

pub use config::{
    CassandraConfig, CassandraConfigBuilder, Consistency, Replication, ENV_CONSISTENCY,
    ENV_KEYSPACE, ENV_NAMESPACE, ENV_NODES, ENV_PARTITIONS, ENV_REPLICATION, MAX_PARTITIONS,
};
pub use error::{CassandraConfigError, CassandraOpError};
pub use event_store::{partition_for_key, CassandraEventStore, PartitionKey};
pub use keys::CassandraKeyStore;
pub use read_models::CassandraReadModels;
pub use schema::SCHEMA_VERSION;

use metachat_core::{Error, Result};

/// The event store and the read models of one namespace on one session
/// (one set of connections, the schema migrated once): what a program that
/// keeps both on Cassandra opens.
///
/// ```no_run
/// use metachat_adapters::cassandra::{CassandraConfig, CassandraDatabase};
///
/// # async fn run() -> metachat_core::Result<()> {
/// let config = CassandraConfig::from_env()?.namespace("diary").build()?;
/// let db = CassandraDatabase::connect(&config).await?;
/// let (store, read_models) = (db.event_store(), db.read_models());
/// # let _ = (store, read_models);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct CassandraDatabase {
    events: CassandraEventStore,
    read_models: CassandraReadModels,
    keys: CassandraKeyStore,
}

impl CassandraDatabase {
    /// Connects to the configured nodes, runs the schema migrations and
    /// prepares the statements of both the event store and the read models.
    ///
    /// # Errors
    /// [`Error::Unavailable`] when no node answers; [`Error::Backend`] for
    /// a schema or statement the cluster refuses.
    pub async fn connect(config: &CassandraConfig) -> Result<Self> {
        let session = connect(config).await?;
        let events = CassandraEventStore::with_session(session.clone(), config).await?;
        let read_models = CassandraReadModels::with_session(session.clone(), config).await?;
        let keys = CassandraKeyStore::with_session(session, config, read_models.clone()).await?;
        Ok(CassandraDatabase {
            events,
            read_models,
            keys,
        })
    }

    /// The crypto-shredding key store (a cheap clone): see
    /// [`CassandraKeyStore`] for what an erasure leaves and for how long.
    pub fn key_store(&self) -> CassandraKeyStore {
        self.keys.clone()
    }

    /// The event store (a cheap clone).
    pub fn event_store(&self) -> CassandraEventStore {
        self.events.clone()
    }

    /// The read models (a cheap clone).
    pub fn read_models(&self) -> CassandraReadModels {
        self.read_models.clone()
    }
}

/// Opens a session on the configured nodes, with the configured consistency
/// and request timeout.
pub(crate) async fn connect(config: &CassandraConfig) -> Result<Arc<Session>> {
    let profile = ExecutionProfile::builder()
        .consistency(config.consistency.driver())
        .serial_consistency(Some(config.consistency.serial()))
        .request_timeout(Some(config.request_timeout))
        .build();
    let session = SessionBuilder::new()
        .known_nodes(&config.nodes)
        .connection_timeout(config.connect_timeout)
        .default_execution_profile_handle(profile.into_handle())
        .build()
        .await
        .map_err(error::connect)?;
    Ok(Arc::new(session))
}

/// Prepares `cql` with the adapter's consistency and page size.
async fn prepare(
    session: &Session,
    cql: String,
    consistency: Consistency,
    page_size: i32,
) -> Result<PreparedStatement> {
    let mut p = session
        .prepare(cql)
        .await
        .map_err(|e| error::prepare("prepare", e))?;
    p.set_consistency(consistency.driver());
    p.set_serial_consistency(Some(consistency.serial()));
    p.set_page_size(page_size);
    Ok(p)
}

/// Whether a lightweight transaction applied: the `[applied]` column of its
/// first row.
fn lwt_applied(result: QueryResult, op: &'static str) -> Result<bool> {
    let rows = result.into_rows_result().map_err(|e| error::shape(op, e))?;
    let (index, _) = rows
        .column_specs()
        .get_by_name("[applied]")
        .ok_or_else(|| error::shape(op, "no [applied] column in an LWT result"))?;
    let row = rows
        .maybe_first_row::<scylla::value::Row>()
        .map_err(|e| error::shape(op, e))?
        .ok_or_else(|| error::shape(op, "an LWT result without rows"))?;
    match row.columns.get(index) {
        Some(Some(scylla::value::CqlValue::Boolean(b))) => Ok(*b),
        other => Err(error::shape(op, format!("[applied] is {other:?}"))),
    }
}

/// A version or position as CQL `bigint`.
fn i64_of(v: u64, what: &str) -> Result<i64> {
    i64::try_from(v).map_err(|_| Error::backend(format!("{what} {v} does not fit a CQL bigint")))
}

/// A stored `bigint` version or position.
fn u64_of(v: i64, what: &str) -> Result<u64> {
    u64::try_from(v).map_err(|_| Error::Corrupted {
        location: what.to_owned(),
        reason: format!("negative value {v}"),
    })
}
