//! [`CassandraEventStore`]: streams, a gap-free log per partition and
//! optimistic concurrency on Cassandra lightweight transactions.

use std::sync::Arc;

use async_trait::async_trait;
use futures::future::BoxFuture;
use futures::{StreamExt, TryStreamExt};
use metachat_core::event::{wire, Envelope, Limits, NewEvent, StreamId, Timestamp};
use metachat_core::store::{
    check_reappend, AppendOutcome, Direction, EventAppender, EventReader, ExpectedVersion, LogOrder,
};
use metachat_core::{Error, Result};
use scylla::client::session::Session;
use scylla::statement::batch::{Batch, BatchType};
use scylla::statement::prepared::PreparedStatement;

use super::config::CassandraConfig;
use super::{connect, error, i64_of, lwt_applied, prepare, u64_of};

/// Positions per `global_log` partition (2^14).
const BUCKET_BITS: u32 = 14;
/// Appends that lose the sequencer this often in a row give up as unavailable.
const MAX_ATTEMPTS: usize = 10_000;
/// Decisions of one append whose outcome the server could not tell (a Paxos
/// round that timed out) before the append gives up as unavailable.
const MAX_UNKNOWN: usize = 8;
/// Longest pause between two attempts after a lost race (the pause grows
/// from 1 ms, with jitter, so racing writers spread out instead of
/// colliding on the next Paxos round too).
const MAX_BACKOFF_MS: u64 = 32;
/// How long an append waits for another writer's unfinished batch before
/// finishing it itself (that writer crashed, or stalls).
const HELP_AFTER: std::time::Duration = std::time::Duration::from_millis(25);
/// Write timestamp of commit mark 0: above any wall-clock timestamp in
/// microseconds (year 146,000), so a commit mark outranks every cell a
/// lightweight transaction wrote with a real-time ballot (as the commit
/// marks of earlier versions were), and marks compare by value.
const COMMIT_EPOCH: i64 = 1 << 62;
/// Record writes in flight at once while an append is written.
const WRITE_CONCURRENCY: usize = 64;

/// An event store in a Cassandra keyspace: events partitioned by stream,
/// optimistic concurrency and a gap-free log per partition (one, a total
/// order, by default) through lightweight transactions on each partition's
/// head.
///
/// The [module docs](super) explain the protocol. Cheap to clone: clones
/// share one session.
#[derive(Clone)]
pub struct CassandraEventStore {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for CassandraEventStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CassandraEventStore")
            .field("namespace", &self.inner.ns)
            .finish_non_exhaustive()
    }
}

#[derive(Clone)]
struct Inner {
    session: Arc<Session>,
    layout_get: PreparedStatement,
    layout_put: PreparedStatement,
    ns: String,
    limits: Limits,
    /// Partitions of the log (fixed per namespace: `log_layout`).
    partitions: u32,
    /// What of a stream id chooses its partition.
    partition_key: PartitionKey,
    /// Head rows' and log rows' namespace key of each partition.
    heads: Vec<String>,
    head: PreparedStatement,
    head_serial: PreparedStatement,
    stream_head: PreparedStatement,
    stream_head_serial: PreparedStatement,
    decide_log: PreparedStatement,
    decide_stream: PreparedStatement,
    commit: PreparedStatement,
    write_stream: PreparedStatement,
    write_log: PreparedStatement,
    write_id: PreparedStatement,
    id_get: PreparedStatement,
    stream_one: PreparedStatement,
    stream_fwd: PreparedStatement,
    stream_bwd: PreparedStatement,
    log_range: PreparedStatement,
    consistency: scylla::frame::types::Consistency,
    serial: scylla::frame::types::SerialConsistency,
}

/// The static columns of a namespace's head partition.
#[derive(Debug, Clone, Default)]
struct Head {
    next: Option<i64>,
    committed: Option<i64>,
    pending: Option<Vec<u8>>,
}

impl Head {
    fn next(&self) -> Result<u64> {
        self.next.map_or(Ok(0), |n| u64_of(n, "log head"))
    }
    fn committed(&self) -> Result<u64> {
        self.committed.map_or(Ok(0), |n| u64_of(n, "log head"))
    }
}

/// What of a stream id chooses its partition: a function from the stream
/// id to its *partition key*; the partition is `crc32(key) % partitions`.
/// Streams with the same key share a partition, so their events keep their
/// append order. The default key is the whole stream id.
pub type PartitionKey = fn(&StreamId) -> &str;

fn whole_stream_id(stream: &StreamId) -> &str {
    stream.as_str()
}

/// The partition of `key` among `partitions`: CRC-32 (IEEE) of its UTF-8
/// bytes modulo the count, so every process and version agrees.
pub fn partition_for_key(key: &str, partitions: u32) -> u32 {
    crc32fast::hash(key.as_bytes()) % partitions.max(1)
}

/// The namespace key of partition `p`'s head and log rows: the namespace
/// itself for partition 0 (so a single-partition namespace is the layout
/// of earlier versions), `{ns}\u{1f}{p}` for the others (a namespace holds
/// no control characters, so no namespace's key collides with another's).
fn head_key(ns: &str, p: u32) -> String {
    if p == 0 {
        ns.to_owned()
    } else {
        format!("{ns}\u{1f}{p}")
    }
}

impl CassandraEventStore {
    /// Connects, runs the schema migrations and prepares the statements.
    pub async fn connect(config: &CassandraConfig) -> Result<Self> {
        let session = connect(config).await?;
        Self::with_session(session, config).await
    }

    /// An event store on an open session; runs the migrations and prepares
    /// the statements.
    pub(crate) async fn with_session(
        session: Arc<Session>,
        config: &CassandraConfig,
    ) -> Result<Self> {
        super::schema::migrate(&session, config).await?;
        let ks = &config.keyspace;
        let c = config.consistency;
        let p = |cql: String| {
            let session = session.clone();
            async move { prepare(&session, cql, c, config.page_size).await }
        };
        let serial = |mut s: PreparedStatement| {
            s.set_consistency(match c.serial() {
                scylla::frame::types::SerialConsistency::Serial => {
                    scylla::frame::types::Consistency::Serial
                }
                scylla::frame::types::SerialConsistency::LocalSerial => {
                    scylla::frame::types::Consistency::LocalSerial
                }
            });
            s
        };
        let head_cql = format!(
            "SELECT next_position, committed, pending FROM {ks}.log_heads WHERE ns = ? LIMIT 1"
        );
        let stream_head_cql =
            format!("SELECT version FROM {ks}.log_heads WHERE ns = ? AND stream = ?");
        let store = CassandraEventStore {
            inner: Arc::new(Inner {
                layout_get: serial(
                    p(format!("SELECT partitions FROM {ks}.log_layout WHERE ns = ?")).await?,
                ),
                layout_put: p(format!(
                    "INSERT INTO {ks}.log_layout (ns, partitions) VALUES (?, ?) IF NOT EXISTS"
                ))
                .await?,
                head: p(head_cql.clone()).await?,
                head_serial: serial(p(head_cql).await?),
                stream_head: p(stream_head_cql.clone()).await?,
                stream_head_serial: serial(p(stream_head_cql).await?),
                decide_log: p(format!(
                    "UPDATE {ks}.log_heads SET next_position = ?, pending = ? WHERE ns = ? \
                     IF next_position = ? AND committed = ?"
                ))
                .await?,
                decide_stream: p(format!(
                    "UPDATE {ks}.log_heads SET version = ? WHERE ns = ? AND stream = ? IF version = ?"
                ))
                .await?,
                commit: p(format!(
                    "UPDATE {ks}.log_heads USING TIMESTAMP ? SET committed = ? WHERE ns = ?"
                ))
                .await?,
                write_stream: p(format!(
                    "INSERT INTO {ks}.stream_events (ns, stream, version, position, record) \
                     VALUES (?, ?, ?, ?, ?)"
                ))
                .await?,
                write_log: p(format!(
                    "INSERT INTO {ks}.global_log (ns, bucket, position, record) VALUES (?, ?, ?, ?)"
                ))
                .await?,
                write_id: p(format!(
                    "INSERT INTO {ks}.event_ids (ns, event_id, stream, version, position) \
                     VALUES (?, ?, ?, ?, ?)"
                ))
                .await?,
                id_get: p(format!(
                    "SELECT stream, version FROM {ks}.event_ids WHERE ns = ? AND event_id = ?"
                ))
                .await?,
                stream_one: p(format!(
                    "SELECT record FROM {ks}.stream_events WHERE ns = ? AND stream = ? AND version = ?"
                ))
                .await?,
                stream_fwd: p(format!(
                    "SELECT position, record FROM {ks}.stream_events WHERE ns = ? AND stream = ? \
                     AND version >= ? LIMIT ?"
                ))
                .await?,
                stream_bwd: p(format!(
                    "SELECT position, record FROM {ks}.stream_events WHERE ns = ? AND stream = ? \
                     AND version <= ? ORDER BY version DESC LIMIT ?"
                ))
                .await?,
                log_range: p(format!(
                    "SELECT record FROM {ks}.global_log WHERE ns = ? AND bucket = ? \
                     AND position >= ? AND position < ? LIMIT ?"
                ))
                .await?,
                consistency: c.driver(),
                serial: c.serial(),
                ns: config.namespace.clone(),
                limits: Limits::default(),
                partitions: config.partitions,
                partition_key: whole_stream_id,
                heads: (0..config.partitions)
                    .map(|p| head_key(&config.namespace, p))
                    .collect(),
                session,
            }),
        };
        store.fix_layout().await?;
        Ok(store)
    }

    /// Records the namespace's partition count on first use; afterwards
    /// refuses a configuration with another count.
    async fn fix_layout(&self) -> Result<()> {
        let i = &self.inner;
        let configured =
            i32::try_from(i.partitions).map_err(|_| super::CassandraConfigError::Invalid {
                field: "partitions",
                reason: format!("{} does not fit a CQL int", i.partitions),
            })?;
        let mut stored = self.stored_layout().await?;
        if stored.is_none() {
            if configured > 1 && self.read_head(0, true).await?.next()? > 0 {
                // A namespace of an earlier version: one log, its streams'
                // heads all in partition 0.
                stored = Some(1);
            } else {
                i.session
                    .execute_unpaged(&i.layout_put, (&i.ns, configured))
                    .await
                    .map_err(|e| error::execution("fix layout", e))?;
                stored = self.stored_layout().await?;
            }
        }
        match stored {
            Some(n) if n == configured => Ok(()),
            Some(n) => Err(super::CassandraConfigError::Layout {
                namespace: i.ns.clone(),
                stored: u32::try_from(n).unwrap_or(0),
                configured: i.partitions,
            }
            .into()),
            None => Err(error::shape(
                "fix layout",
                "no layout row after inserting it",
            )),
        }
    }

    async fn stored_layout(&self) -> Result<Option<i32>> {
        let i = &self.inner;
        let rows = i
            .session
            .execute_unpaged(&i.layout_get, (&i.ns,))
            .await
            .map_err(|e| error::execution("read layout", e))?
            .into_rows_result()
            .map_err(|e| error::shape("read layout", e))?;
        Ok(rows
            .maybe_first_row::<(Option<i32>,)>()
            .map_err(|e| error::shape("read layout", e))?
            .and_then(|(n,)| n))
    }

    /// Chooses what of a stream id picks its partition (default: the whole
    /// id). Every instance on a namespace must use the same function: a
    /// stream's version and events live in its partition.
    ///
    /// ```no_run
    /// # use metachat_adapters::cassandra::{CassandraConfig, CassandraEventStore};
    /// # async fn run() -> metachat_core::Result<()> {
    /// let config = CassandraConfig::from_env()?.partitions(16).build()?;
    /// // `user-42` and `diary-42` share a partition: the key is the id after the category.
    /// let store = CassandraEventStore::connect(&config)
    ///     .await?
    ///     .with_partition_key(|s| s.as_str().split_once('-').map_or(s.as_str(), |(_, id)| id));
    /// # let _ = store; Ok(()) }
    /// ```
    pub fn with_partition_key(mut self, key: PartitionKey) -> Self {
        Arc::make_mut(&mut self.inner).partition_key = key;
        self
    }

    /// How many partitions the log has (1: one total order).
    pub fn partitions(&self) -> u32 {
        self.inner.partitions
    }

    /// Replaces the size limits every append is checked against (default
    /// [`Limits::default`]). Keep whole batches within the node's
    /// `max_mutation_size` (half of `commitlog_segment_size`).
    pub fn with_limits(mut self, limits: Limits) -> Self {
        Arc::make_mut(&mut self.inner).limits = limits;
        self
    }

    /// The namespace this store lives in.
    pub fn namespace(&self) -> &str {
        &self.inner.ns
    }

    /// The partition that holds `stream`.
    fn partition(&self, stream: &StreamId) -> u32 {
        let i = &self.inner;
        if i.partitions <= 1 {
            0
        } else {
            partition_for_key((i.partition_key)(stream), i.partitions)
        }
    }

    /// Partition `p`'s namespace key.
    fn hk(&self, p: u32) -> &str {
        &self.inner.heads[p as usize]
    }

    async fn read_head(&self, p: u32, serial: bool) -> Result<Head> {
        let i = &self.inner;
        let stmt = if serial { &i.head_serial } else { &i.head };
        let rows = i
            .session
            .execute_unpaged(stmt, (self.hk(p),))
            .await
            .map_err(|e| error::execution("read head", e))?
            .into_rows_result()
            .map_err(|e| error::shape("read head", e))?;
        Ok(rows
            .maybe_first_row::<(Option<i64>, Option<i64>, Option<Vec<u8>>)>()
            .map_err(|e| error::shape("read head", e))?
            .map(|(next, committed, pending)| Head {
                next,
                committed,
                pending,
            })
            .unwrap_or_default())
    }

    async fn read_stream_head(&self, stream: &StreamId, serial: bool) -> Result<Option<i64>> {
        let i = &self.inner;
        let stmt = if serial {
            &i.stream_head_serial
        } else {
            &i.stream_head
        };
        let rows = i
            .session
            .execute_unpaged(stmt, (self.hk(self.partition(stream)), stream.as_str()))
            .await
            .map_err(|e| error::execution("read stream head", e))?
            .into_rows_result()
            .map_err(|e| error::shape("read stream head", e))?;
        Ok(rows
            .maybe_first_row::<(Option<i64>,)>()
            .map_err(|e| error::shape("read stream head", e))?
            .and_then(|(v,)| v))
    }

    /// Finishes the decided batch in `head.pending` (writes its records,
    /// moves `committed`); a no-op when another writer finished it first.
    async fn complete(&self, p: u32, head: &Head) -> Result<()> {
        let next = head.next()?;
        if head.committed()? >= next {
            return Ok(());
        }
        let pending = head.pending.as_deref().ok_or_else(|| Error::Corrupted {
            location: format!("log head of namespace `{}` partition {p}", self.inner.ns),
            reason: "positions decided without a pending batch".into(),
        })?;
        let records = decode_batch(pending)?;
        match records.last() {
            Some(last) if last.position + 1 == next => {}
            _ => {
                return Err(Error::Corrupted {
                    location: format!("log head of namespace `{}` partition {p}", self.inner.ns),
                    reason: format!("pending batch does not end at position {next}"),
                })
            }
        }
        self.write_records(p, &records).await?;
        self.commit(p, next).await
    }

    /// Moves partition `p`'s commit mark to `next`: a plain write whose
    /// timestamp is [`COMMIT_EPOCH`]` + next`, so the highest mark always
    /// wins, whoever writes it when (a helper and the writer writing the
    /// same mark write the same cell twice; a late, lower mark is shadowed).
    async fn commit(&self, p: u32, next: u64) -> Result<()> {
        let i = &self.inner;
        let next = i64_of(next, "position")?;
        i.session
            .execute_unpaged(&i.commit, (COMMIT_EPOCH + next, next, self.hk(p)))
            .await
            .map_err(|e| error::execution("commit append", e))?;
        Ok(())
    }

    async fn write_records(&self, p: u32, records: &[Envelope]) -> Result<()> {
        let mut writes: Vec<BoxFuture<'_, Result<()>>> = Vec::with_capacity(records.len() * 3);
        for e in records {
            for table in 0..3u8 {
                writes.push(Box::pin(self.write_one(p, e, table)));
            }
        }
        futures::stream::iter(writes)
            .buffer_unordered(WRITE_CONCURRENCY)
            .try_collect::<()>()
            .await
    }

    /// Writes one record into `stream_events` (0), `global_log` (1) or `event_ids` (2).
    async fn write_one(&self, p: u32, e: &Envelope, table: u8) -> Result<()> {
        let i = &self.inner;
        let version = i64_of(e.version, "version")?;
        let position = i64_of(e.position, "position")?;
        let r = match table {
            0 => {
                i.session
                    .execute_unpaged(
                        &i.write_stream,
                        (
                            &i.ns,
                            e.stream_id.as_str(),
                            version,
                            position,
                            wire::encode(e),
                        ),
                    )
                    .await
            }
            1 => {
                i.session
                    .execute_unpaged(
                        &i.write_log,
                        (
                            self.hk(p),
                            position >> BUCKET_BITS,
                            position,
                            wire::encode(e),
                        ),
                    )
                    .await
            }
            _ => {
                i.session
                    .execute_unpaged(
                        &i.write_id,
                        (&i.ns, e.event_id.0, e.stream_id.as_str(), version, position),
                    )
                    .await
            }
        };
        r.map(|_| ()).map_err(|e| error::execution("append", e))
    }

    /// The stored envelope of each event id of the batch, if any.
    async fn lookup_ids(&self, events: &[NewEvent]) -> Result<Vec<Option<Envelope>>> {
        let lookups: Vec<BoxFuture<'_, Result<Option<Envelope>>>> = events
            .iter()
            .map(|e| -> BoxFuture<'_, Result<Option<Envelope>>> { Box::pin(self.lookup_id(e)) })
            .collect();
        futures::stream::iter(lookups)
            .buffered(WRITE_CONCURRENCY)
            .try_collect()
            .await
    }

    async fn lookup_id(&self, e: &NewEvent) -> Result<Option<Envelope>> {
        let i = &self.inner;
        let rows = i
            .session
            .execute_unpaged(&i.id_get, (&i.ns, e.event_id.0))
            .await
            .map_err(|e| error::execution("append", e))?
            .into_rows_result()
            .map_err(|e| error::shape("append", e))?;
        let Some((stream, version)) = rows
            .maybe_first_row::<(String, i64)>()
            .map_err(|e| error::shape("append", e))?
        else {
            return Ok(None);
        };
        let rows = i
            .session
            .execute_unpaged(&i.stream_one, (&i.ns, &stream, version))
            .await
            .map_err(|e| error::execution("append", e))?
            .into_rows_result()
            .map_err(|e| error::shape("append", e))?;
        let (record,) = rows
            .maybe_first_row::<(Vec<u8>,)>()
            .map_err(|e| error::shape("append", e))?
            .ok_or_else(|| Error::Corrupted {
                location: format!("stream `{stream}` version {version}"),
                reason: format!("event id {} indexed but not stored", e.event_id),
            })?;
        wire::decode(&record, || format!("stream `{stream}` version {version}")).map(Some)
    }

    async fn decide(
        &self,
        p: u32,
        head: &Head,
        stream: &StreamId,
        stream_version: Option<i64>,
        records: &[Envelope],
    ) -> Result<Decision> {
        let i = &self.inner;
        let Some(last) = records.last() else {
            return Err(Error::EmptyBatch);
        };
        let mut batch = Batch::new(BatchType::Unlogged);
        batch.set_consistency(i.consistency);
        batch.set_serial_consistency(Some(i.serial));
        batch.append_statement(i.decide_log.clone());
        batch.append_statement(i.decide_stream.clone());
        let pending = encode_batch(records);
        let values = (
            (
                i64_of(last.position + 1, "position")?,
                pending,
                self.hk(p),
                head.next,
                head.committed,
            ),
            (
                i64_of(last.version, "version")?,
                self.hk(p),
                stream.as_str(),
                stream_version,
            ),
        );
        match i.session.batch(&batch, values).await {
            Ok(result) => Ok(if lwt_applied(result, "append")? {
                Decision::Won
            } else {
                Decision::Lost
            }),
            Err(e) if error::outcome_unknown(&e) => {
                Ok(Decision::Unknown(error::execution("append", e)))
            }
            Err(e) => Err(error::execution("append", e)),
        }
    }

    /// The position below which everything of partition `p` is written and visible.
    async fn committed(&self, p: u32) -> Result<u64> {
        self.read_head(p, false).await?.committed()
    }

    /// `Err(PartitionedLog)` when the log has more than one partition.
    fn whole_log(&self) -> Result<()> {
        match self.inner.partitions {
            0 | 1 => Ok(()),
            partitions => Err(Error::PartitionedLog { partitions }),
        }
    }

    /// Appends like [`append`](EventAppender::append) but stops after the
    /// decision, as a writer that crashed there would: the positions and the
    /// stream's version are taken, nothing is written and nothing is
    /// visible until another append on the same partition completes the
    /// batch. For fault tests only.
    #[doc(hidden)]
    pub async fn append_then_crash_after_decision(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendOutcome> {
        self.append_inner(stream, expected, events, true).await
    }

    async fn append_inner(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
        crash_after_decision: bool,
    ) -> Result<AppendOutcome> {
        self.inner.limits.check(&events)?;
        let len = u64::try_from(events.len()).map_err(|_| Error::BatchTooLarge {
            len: events.len(),
            limit: self.inner.limits.max_batch_len,
        })?;
        let p = self.partition(stream);
        // First try on plain reads; after a lost race or a conflict, reread
        // with SERIAL consistency so the decision sees every Paxos round.
        let mut serial = false;
        let mut backoff = Backoff::default();
        // An unfinished batch this append waits for: its end, and since when.
        let mut waiting: Option<(u64, std::time::Instant)> = None;
        // No decision of this append has lost yet.
        let mut first_try = true;
        // Decisions whose outcome the server could not tell.
        let mut unknown = 0;
        for _ in 0..MAX_ATTEMPTS {
            let head = self.read_head(p, serial).await?;
            let (next, committed) = (head.next()?, head.committed()?);
            if committed < next {
                // A batch decided but not finished: its writer is most
                // likely still writing it, so give it a moment; if it is
                // still unfinished after HELP_AFTER (its writer crashed or
                // stalls), finish it ourselves.
                match waiting {
                    Some((end, since)) if end == next && since.elapsed() >= HELP_AFTER => {
                        self.complete(p, &head).await?;
                    }
                    Some((end, _)) if end == next => backoff.pause().await,
                    _ => {
                        waiting = Some((next, std::time::Instant::now()));
                        backoff.pause().await;
                    }
                }
                continue;
            }
            // The ids after the head (an id stored before the head was read
            // is found). The stream's version: on the first try of a
            // `NoStream` or `Exact` append, the expected one (the decision's
            // condition checks it; if it is wrong the decision loses and the
            // next try reads it); otherwise read at the same time as the ids
            // (a stale read only makes the decision lose).
            let assumed = match expected {
                ExpectedVersion::NoStream if first_try => Some(None),
                ExpectedVersion::Exact(v) if first_try => i64::try_from(v).ok().map(Some),
                _ => None,
            };
            let (stored, stream_version) = match assumed {
                Some(version) => (self.lookup_ids(&events).await?, version),
                None => tokio::try_join!(
                    self.lookup_ids(&events),
                    self.read_stream_head(stream, serial)
                )?,
            };
            if stored
                .iter()
                .flatten()
                .any(|e| self.partition(&e.stream_id) == p && e.position >= committed)
            {
                // Ids of a batch decided after our read: finish it, reread.
                serial = true;
                continue;
            }
            if let Some(outcome) = check_reappend(stream, &events, &stored)? {
                return Ok(outcome);
            }
            let actual = stream_version
                .map(|v| u64_of(v, "stream version"))
                .transpose()?;
            if let Err(conflict) = expected.check(stream, actual) {
                if serial {
                    return Err(conflict);
                }
                serial = true;
                continue;
            }
            let first_version = actual.map_or(0, |v| v + 1);
            let now = Timestamp::now();
            let records: Vec<Envelope> = events
                .iter()
                .cloned()
                .zip(0..len)
                .map(|(e, j)| {
                    Envelope::recorded(e, stream.clone(), first_version + j, next + j, now)
                })
                .collect();
            match self
                .decide(p, &head, stream, stream_version, &records)
                .await?
            {
                Decision::Won => {}
                Decision::Lost => {
                    // Lost the race for the partition's head (or the
                    // stream's row): back off a little and reread. (A plain
                    // read may still miss the winner's round; then the next
                    // decision loses too, which is safe: the condition is
                    // linearizable.)
                    first_try = false;
                    backoff.pause().await;
                    continue;
                }
                Decision::Unknown(e) => {
                    // The round timed out (Paxos contention on the head, a
                    // slow node): it may have been applied. The SERIAL
                    // reread settles it. If it was applied, the batch is
                    // this partition's pending one (the loop finishes it)
                    // or already written, and the id lookup returns it as
                    // an idempotent re-append; if not, the next decision
                    // tries again. Either way nothing is doubled.
                    unknown += 1;
                    if unknown >= MAX_UNKNOWN {
                        return Err(e);
                    }
                    tracing::debug!(
                        namespace = %self.inner.ns,
                        partition = p,
                        unknown,
                        "append decision timed out; rereading to settle it"
                    );
                    serial = true;
                    first_try = false;
                    backoff.pause().await;
                    continue;
                }
            }
            let outcome = AppendOutcome {
                first_version,
                last_version: first_version + len - 1,
                first_position: next,
                last_position: next + len - 1,
                recorded_at: now,
            };
            if crash_after_decision {
                return Ok(outcome);
            }
            self.write_records(p, &records).await?;
            self.commit(p, next + len).await?;
            return Ok(outcome);
        }
        Err(Error::unavailable(error::shape(
            "append",
            format!("lost the log head {MAX_ATTEMPTS} times in a row"),
        )))
    }

    /// Up to `limit` events of partition `p` from position `from`.
    async fn read_log(&self, p: u32, from: u64, limit: usize) -> Result<Vec<Envelope>> {
        let i = &self.inner;
        let committed = self.committed(p).await?;
        let end = committed.min(from.saturating_add(u64::try_from(limit).unwrap_or(u64::MAX)));
        let mut out = Vec::new();
        let mut next = from;
        while next < end {
            let bucket = next >> BUCKET_BITS;
            let bucket_end = ((bucket + 1) << BUCKET_BITS).min(end);
            let want = i32::try_from(bucket_end - next).unwrap_or(i32::MAX);
            let rows = i
                .session
                .execute_unpaged(
                    &i.log_range,
                    (
                        self.hk(p),
                        i64_of(bucket, "bucket")?,
                        i64_of(next, "position")?,
                        i64_of(bucket_end, "position")?,
                        want,
                    ),
                )
                .await
                .map_err(|e| error::execution("read_all", e))?
                .into_rows_result()
                .map_err(|e| error::shape("read_all", e))?;
            let before = next;
            for row in rows
                .rows::<(Vec<u8>,)>()
                .map_err(|e| error::shape("read_all", e))?
            {
                let (record,) = row.map_err(|e| error::shape("read_all", e))?;
                let e = wire::decode(&record, || format!("partition {p} position {next}"))?;
                if e.position != next {
                    return Err(Error::Corrupted {
                        location: format!("partition {p} position {next}"),
                        reason: format!("found position {} instead", e.position),
                    });
                }
                next += 1;
                out.push(e);
            }
            if next == before || (next < bucket_end) {
                return Err(Error::Corrupted {
                    location: format!("partition {p} position {next}"),
                    reason: "committed but missing from the log".into(),
                });
            }
        }
        Ok(out)
    }
}

/// How one decision (the lightweight transaction on the partition's head
/// and the stream's row) ended.
enum Decision {
    /// Applied: the positions and versions are this append's.
    Won,
    /// Not applied: another writer moved the head or the stream.
    Lost,
    /// Not known: the round timed out; the error to return if it never
    /// settles.
    Unknown(Error),
}

/// Pauses between attempts after a lost race: 1, 2, 4, … up to
/// [`MAX_BACKOFF_MS`] milliseconds, each scaled by a random factor in
/// `[0.5, 1.5)`.
#[derive(Default)]
struct Backoff {
    round: u32,
}

impl Backoff {
    async fn pause(&mut self) {
        let base = (1u64 << self.round.min(6)).min(MAX_BACKOFF_MS) * 1000;
        self.round += 1;
        // Jitter from a v4 UUID's random bits: no extra dependency.
        let r = u64::from(uuid::Uuid::new_v4().as_fields().0) % 1000;
        let micros = base / 2 + base * r / 1000;
        tokio::time::sleep(std::time::Duration::from_micros(micros)).await;
    }
}

fn encode_batch(records: &[Envelope]) -> Vec<u8> {
    let encoded: Vec<Vec<u8>> = records.iter().map(wire::encode).collect();
    let mut out = Vec::with_capacity(4 + encoded.iter().map(|r| r.len() + 4).sum::<usize>());
    out.extend_from_slice(
        &u32::try_from(encoded.len())
            .unwrap_or(u32::MAX)
            .to_be_bytes(),
    );
    for r in &encoded {
        out.extend_from_slice(&u32::try_from(r.len()).unwrap_or(u32::MAX).to_be_bytes());
        out.extend_from_slice(r);
    }
    out
}

fn decode_batch(mut bytes: &[u8]) -> Result<Vec<Envelope>> {
    let corrupt = |reason: &str| Error::Corrupted {
        location: "pending batch".into(),
        reason: reason.into(),
    };
    let take = |n: usize, bytes: &mut &[u8]| -> Result<Vec<u8>> {
        if bytes.len() < n {
            return Err(corrupt("truncated"));
        }
        let (head, tail) = bytes.split_at(n);
        *bytes = tail;
        Ok(head.to_vec())
    };
    let count = take(4, &mut bytes)?;
    let count = u32::from_be_bytes([count[0], count[1], count[2], count[3]]);
    let mut out = Vec::new();
    for j in 0..count {
        let len = take(4, &mut bytes)?;
        let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]);
        let record = take(
            usize::try_from(len).map_err(|_| corrupt("length"))?,
            &mut bytes,
        )?;
        out.push(wire::decode(&record, || {
            format!("pending batch record {j}")
        })?);
    }
    Ok(out)
}

#[async_trait]
impl EventAppender for CassandraEventStore {
    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendOutcome> {
        self.append_inner(stream, expected, events, false).await
    }
}

#[async_trait]
impl EventReader for CassandraEventStore {
    async fn read_stream(
        &self,
        stream: &StreamId,
        from: u64,
        direction: Direction,
        limit: usize,
    ) -> Result<Vec<Envelope>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let i = &self.inner;
        let committed = self.committed(self.partition(stream)).await?;
        let mut out = Vec::new();
        let mut cursor = i64::try_from(from).unwrap_or(i64::MAX);
        loop {
            let want = i32::try_from(limit - out.len())
                .unwrap_or(i32::MAX)
                .min(1000);
            let stmt = match direction {
                Direction::Forward => &i.stream_fwd,
                Direction::Backward => &i.stream_bwd,
            };
            let rows = i
                .session
                .execute_unpaged(stmt, (&i.ns, stream.as_str(), cursor, want))
                .await
                .map_err(|e| error::execution("read_stream", e))?
                .into_rows_result()
                .map_err(|e| error::shape("read_stream", e))?;
            let mut n = 0;
            for row in rows
                .rows::<(i64, Vec<u8>)>()
                .map_err(|e| error::shape("read_stream", e))?
            {
                let (position, record) = row.map_err(|e| error::shape("read_stream", e))?;
                n += 1;
                let e = wire::decode(&record, || format!("stream `{stream}`"))?;
                cursor = match direction {
                    Direction::Forward => i64_of(e.version, "version")?.saturating_add(1),
                    Direction::Backward => i64_of(e.version, "version")? - 1,
                };
                if u64_of(position, "position")? >= committed {
                    // Decided but not yet committed: invisible. Forwards it is
                    // the stream's tail; backwards it is skipped.
                    if direction == Direction::Forward {
                        return Ok(out);
                    }
                    continue;
                }
                out.push(e);
                if out.len() == limit {
                    return Ok(out);
                }
            }
            if n < want || cursor < 0 {
                return Ok(out);
            }
        }
    }

    async fn read_all(&self, from: u64, limit: usize) -> Result<Vec<Envelope>> {
        self.whole_log()?;
        self.read_log(0, from, limit).await
    }

    async fn stream_version(&self, stream: &StreamId) -> Result<Option<u64>> {
        Ok(self
            .read_stream(stream, u64::MAX, Direction::Backward, 1)
            .await?
            .first()
            .map(|e| e.version))
    }

    async fn next_position(&self) -> Result<u64> {
        self.whole_log()?;
        self.committed(0).await
    }

    fn log_order(&self) -> LogOrder {
        match self.inner.partitions {
            0 | 1 => LogOrder::Total,
            partitions => LogOrder::Partitioned { partitions },
        }
    }

    fn partition_of(&self, stream: &StreamId) -> u32 {
        self.partition(stream)
    }

    async fn read_partition(
        &self,
        partition: u32,
        from: u64,
        limit: usize,
    ) -> Result<Vec<Envelope>> {
        self.log_order().check(partition)?;
        self.read_log(partition, from, limit).await
    }

    async fn partition_next_position(&self, partition: u32) -> Result<u64> {
        self.log_order().check(partition)?;
        self.committed(partition).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_are_stable_and_in_range() {
        // CRC-32 (IEEE) of "user-42" is 0x7d06_b873: every process and
        // version places a key in the same partition.
        assert_eq!(crc32fast::hash(b"user-42"), 0x7d06_b873);
        assert_eq!(partition_for_key("user-42", 16), 0x7d06_b873 % 16);
        assert_eq!(partition_for_key("user-42", 1), 0);
        assert_eq!(partition_for_key("anything", 0), 0, "no division by zero");
        let mut used = std::collections::HashSet::new();
        for i in 0..1000 {
            let p = partition_for_key(&format!("stream-{i}"), 16);
            assert!(p < 16);
            used.insert(p);
        }
        assert_eq!(used.len(), 16, "1000 keys reach every one of 16 partitions");
        assert_eq!(
            head_key("ns", 0),
            "ns",
            "partition 0 is the layout of one log"
        );
        assert_eq!(head_key("ns", 3), "ns\u{1f}3");
    }

    #[test]
    fn pending_batches_round_trip_and_refuse_garbage() {
        let s = StreamId::new("user-1").unwrap();
        let records: Vec<Envelope> = (0..3)
            .map(|j| {
                Envelope::recorded(
                    NewEvent::new("T", vec![j; 10]),
                    s.clone(),
                    j.into(),
                    u64::from(j) + 7,
                    Timestamp(5),
                )
            })
            .collect();
        let bytes = encode_batch(&records);
        assert_eq!(decode_batch(&bytes).unwrap(), records);
        assert!(matches!(
            decode_batch(&bytes[..bytes.len() - 1]),
            Err(Error::Corrupted { .. })
        ));
        assert!(matches!(
            decode_batch(&[0, 0]),
            Err(Error::Corrupted { .. })
        ));
    }
}
