//! [`CassandraEventStore`]: streams, a gap-free global log and optimistic
//! concurrency on Cassandra lightweight transactions.

use std::sync::Arc;

use async_trait::async_trait;
use futures::future::BoxFuture;
use futures::{StreamExt, TryStreamExt};
use metachat_core::event::{wire, Envelope, Limits, NewEvent, StreamId, Timestamp};
use metachat_core::store::{
    check_reappend, AppendOutcome, Direction, EventAppender, EventReader, ExpectedVersion,
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
/// Record writes in flight at once while an append is written.
const WRITE_CONCURRENCY: usize = 64;

/// An event store in a Cassandra keyspace: events partitioned by stream,
/// optimistic concurrency and a gap-free global log through lightweight
/// transactions on one head partition per namespace.
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

struct Inner {
    session: Arc<Session>,
    ns: String,
    limits: Limits,
    /// Appends of this process take turns: racing our own tasks on one
    /// Paxos row would only add failed rounds. Other processes still race
    /// through the LWT conditions.
    turn: tokio::sync::Mutex<()>,
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
        Ok(CassandraEventStore {
            inner: Arc::new(Inner {
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
                    "UPDATE {ks}.log_heads SET committed = ? WHERE ns = ? IF committed = ?"
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
                turn: tokio::sync::Mutex::new(()),
                session,
            }),
        })
    }

    /// Replaces the size limits every append is checked against (default
    /// [`Limits::default`]). Keep whole batches within the node's
    /// `max_mutation_size` (half of `commitlog_segment_size`).
    pub fn with_limits(mut self, limits: Limits) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.limits = limits;
        }
        self
    }

    /// The namespace this store lives in.
    pub fn namespace(&self) -> &str {
        &self.inner.ns
    }

    async fn read_head(&self, serial: bool) -> Result<Head> {
        let i = &self.inner;
        let stmt = if serial { &i.head_serial } else { &i.head };
        let rows = i
            .session
            .execute_unpaged(stmt, (&i.ns,))
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
            .execute_unpaged(stmt, (&i.ns, stream.as_str()))
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
    async fn complete(&self, head: &Head) -> Result<()> {
        let next = head.next()?;
        if head.committed()? >= next {
            return Ok(());
        }
        let pending = head.pending.as_deref().ok_or_else(|| Error::Corrupted {
            location: format!("log head of namespace `{}`", self.inner.ns),
            reason: "positions decided without a pending batch".into(),
        })?;
        let records = decode_batch(pending)?;
        match records.last() {
            Some(last) if last.position + 1 == next => {}
            _ => {
                return Err(Error::Corrupted {
                    location: format!("log head of namespace `{}`", self.inner.ns),
                    reason: format!("pending batch does not end at position {next}"),
                })
            }
        }
        self.write_records(&records).await?;
        self.commit(head.committed, next).await
    }

    async fn commit(&self, committed: Option<i64>, next: u64) -> Result<()> {
        let i = &self.inner;
        i.session
            .execute_unpaged(&i.commit, (i64_of(next, "position")?, &i.ns, committed))
            .await
            .map_err(|e| error::execution("commit append", e))?;
        // Not applied: another writer committed it (or a later batch) first.
        Ok(())
    }

    async fn write_records(&self, records: &[Envelope]) -> Result<()> {
        let mut writes: Vec<BoxFuture<'_, Result<()>>> = Vec::with_capacity(records.len() * 3);
        for e in records {
            for table in 0..3u8 {
                writes.push(Box::pin(self.write_one(e, table)));
            }
        }
        futures::stream::iter(writes)
            .buffer_unordered(WRITE_CONCURRENCY)
            .try_collect::<()>()
            .await
    }

    /// Writes one record into `stream_events` (0), `global_log` (1) or `event_ids` (2).
    async fn write_one(&self, e: &Envelope, table: u8) -> Result<()> {
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
                        (&i.ns, position >> BUCKET_BITS, position, wire::encode(e)),
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
        head: &Head,
        stream: &StreamId,
        stream_version: Option<i64>,
        records: &[Envelope],
    ) -> Result<bool> {
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
                &i.ns,
                head.next,
                head.committed,
            ),
            (
                i64_of(last.version, "version")?,
                &i.ns,
                stream.as_str(),
                stream_version,
            ),
        );
        let result = i
            .session
            .batch(&batch, values)
            .await
            .map_err(|e| error::execution("append", e))?;
        lwt_applied(result, "append")
    }

    /// The position below which everything is written and visible.
    async fn committed(&self) -> Result<u64> {
        self.read_head(false).await?.committed()
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
        self.inner.limits.check(&events)?;
        let len = u64::try_from(events.len()).map_err(|_| Error::BatchTooLarge {
            len: events.len(),
            limit: self.inner.limits.max_batch_len,
        })?;
        // First try on plain reads; after a lost race or a conflict, reread
        // with SERIAL consistency so the decision sees every Paxos round.
        let mut serial = false;
        let _turn = self.inner.turn.lock().await;
        for _ in 0..MAX_ATTEMPTS {
            let head = self.read_head(serial).await?;
            let (next, committed) = (head.next()?, head.committed()?);
            if committed < next {
                self.complete(&head).await?;
                serial = true;
                continue;
            }
            let stored = self.lookup_ids(&events).await?;
            if stored.iter().flatten().any(|e| e.position >= committed) {
                // Ids of a batch decided after our read: finish it, reread.
                serial = true;
                continue;
            }
            if let Some(outcome) = check_reappend(stream, &events, &stored)? {
                return Ok(outcome);
            }
            let stream_version = self.read_stream_head(stream, serial).await?;
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
            if !self.decide(&head, stream, stream_version, &records).await? {
                serial = true;
                continue;
            }
            self.write_records(&records).await?;
            self.commit(head.committed, next + len).await?;
            return Ok(AppendOutcome {
                first_version,
                last_version: first_version + len - 1,
                first_position: next,
                last_position: next + len - 1,
                recorded_at: now,
            });
        }
        Err(Error::unavailable(error::shape(
            "append",
            format!("lost the log head {MAX_ATTEMPTS} times in a row"),
        )))
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
        let committed = self.committed().await?;
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
        let i = &self.inner;
        let committed = self.committed().await?;
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
                        &i.ns,
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
                let e = wire::decode(&record, || format!("global position {next}"))?;
                if e.position != next {
                    return Err(Error::Corrupted {
                        location: format!("global position {next}"),
                        reason: format!("found position {} instead", e.position),
                    });
                }
                next += 1;
                out.push(e);
            }
            if next == before || (next < bucket_end) {
                return Err(Error::Corrupted {
                    location: format!("global position {next}"),
                    reason: "committed but missing from the global log".into(),
                });
            }
        }
        Ok(out)
    }

    async fn stream_version(&self, stream: &StreamId) -> Result<Option<u64>> {
        Ok(self
            .read_stream(stream, u64::MAX, Direction::Backward, 1)
            .await?
            .first()
            .map(|e| e.version))
    }

    async fn next_position(&self) -> Result<u64> {
        self.committed().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
