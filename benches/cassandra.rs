//! Cassandra bench, all in one run against one node (`CASSANDRA_NODES`,
//! started by `scripts/cassandra start`), each workload through our adapter
//! and through the raw `scylla` driver executing the same prepared
//! statements without our layer:
//!
//! 1. read-model upserts (`CassandraReadModels::commit` of one `Any` put:
//!    read the version, write value + version+1) vs the raw driver doing the
//!    same `SELECT … key IN ?` + `UPDATE`;
//! 2. point reads (`ReadModelStore::get`) vs the raw prepared `SELECT`;
//! 3. event appends of one event to its own stream
//!    (`CassandraEventStore::append`, expected version exact) vs the raw
//!    driver running the append protocol's statements (head read, id
//!    lookup, stream head read, the deciding LWT batch, three inserts, the
//!    committing LWT) without our checks, helping or decoding.
//!
//! Each workload runs `CASSANDRA_BENCH_OPS` operations (default 20,000;
//! appends: a fifth of that) from 32 concurrent tasks and reports ops/s
//! and p50/p99 latency.
//!
//! Run: `eval "$(scripts/cassandra start)" && export CASSANDRA_NODES &&
//! cargo bench --features cassandra --bench cassandra`.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use metachat_adapters::cassandra::{CassandraConfig, CassandraEventStore, CassandraReadModels};
use metachat_core::event::{wire, Envelope, NewEvent, StreamId, Timestamp};
use metachat_core::read_model::{Commit, DocExpect, ReadModelStore, WriteOp};
use metachat_core::store::{EventAppender, ExpectedVersion};
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::statement::batch::{Batch, BatchType};
use scylla::statement::prepared::PreparedStatement;

const TASKS: usize = 32;
/// Documents written by the upserts (fewer when fewer operations run).
const MAX_KEYS: usize = 10_000;
const VALUE: usize = 256;

#[derive(Debug, Clone, Copy)]
struct Figures {
    per_sec: f64,
    p50: Duration,
    p99: Duration,
}

/// Runs `ops` calls of `op(i)` from [`TASKS`] tasks; throughput and latency.
async fn measure<F, Fut>(ops: usize, op: F) -> Figures
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send,
{
    let op = Arc::new(op);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let op = op.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut i = t;
            while i < ops {
                let s = Instant::now();
                op(i).await;
                lat.push(s.elapsed());
                i += TASKS;
            }
            lat
        }));
    }
    let mut lat = Vec::with_capacity(ops);
    for t in tasks {
        lat.extend(t.await.expect("bench task"));
    }
    let elapsed = start.elapsed();
    lat.sort_unstable();
    // Percentile q (in per mille) of the sorted latencies.
    let pick = |q: usize| lat[(lat.len() * q / 1000).min(lat.len() - 1)];
    Figures {
        per_sec: ops as f64 / elapsed.as_secs_f64(),
        p50: pick(500),
        p99: pick(990),
    }
}

fn row(workload: &str, ours: Figures, raw: Figures) {
    println!(
        "| {workload} | {:.0} | {:.2} | {:.2} | {:.0} | {:.2} | {:.2} | {:.2} |",
        ours.per_sec,
        ours.p50.as_secs_f64() * 1e3,
        ours.p99.as_secs_f64() * 1e3,
        raw.per_sec,
        raw.p50.as_secs_f64() * 1e3,
        raw.p99.as_secs_f64() * 1e3,
        ours.per_sec / raw.per_sec
    );
}

struct Raw {
    session: Arc<Session>,
    ns: String,
    versions: PreparedStatement,
    put: PreparedStatement,
    get: PreparedStatement,
    head: PreparedStatement,
    id_get: PreparedStatement,
    stream_head: PreparedStatement,
    decide_log: PreparedStatement,
    decide_stream: PreparedStatement,
    commit: PreparedStatement,
    write_stream: PreparedStatement,
    write_log: PreparedStatement,
    write_id: PreparedStatement,
}

async fn raw(session: Arc<Session>, ks: &str, ns: String) -> Raw {
    let p = |cql: String| {
        let session = session.clone();
        async move {
            let mut s = session.prepare(cql).await.expect("prepare");
            s.set_consistency(scylla::frame::types::Consistency::LocalQuorum);
            s.set_serial_consistency(Some(scylla::frame::types::SerialConsistency::LocalSerial));
            s
        }
    };
    let doc = "ns = ? AND collection = ?";
    Raw {
        versions: p(format!("SELECT key, version FROM {ks}.documents WHERE {doc} AND key IN ?")).await,
        put: p(format!("UPDATE {ks}.documents SET value = ?, version = ? WHERE {doc} AND key = ?")).await,
        get: p(format!("SELECT value, version FROM {ks}.documents WHERE {doc} AND key = ?")).await,
        head: p(format!("SELECT next_position, committed, pending FROM {ks}.log_heads WHERE ns = ? LIMIT 1")).await,
        id_get: p(format!("SELECT stream, version FROM {ks}.event_ids WHERE ns = ? AND event_id = ?")).await,
        stream_head: p(format!("SELECT version FROM {ks}.log_heads WHERE ns = ? AND stream = ?")).await,
        decide_log: p(format!(
            "UPDATE {ks}.log_heads SET next_position = ?, pending = ? WHERE ns = ? IF next_position = ? AND committed = ?"
        ))
        .await,
        decide_stream: p(format!(
            "UPDATE {ks}.log_heads SET version = ? WHERE ns = ? AND stream = ? IF version = ?"
        ))
        .await,
        commit: p(format!("UPDATE {ks}.log_heads SET committed = ? WHERE ns = ? IF committed = ?")).await,
        write_stream: p(format!(
            "INSERT INTO {ks}.stream_events (ns, stream, version, position, record) VALUES (?, ?, ?, ?, ?)"
        ))
        .await,
        write_log: p(format!("INSERT INTO {ks}.global_log (ns, bucket, position, record) VALUES (?, ?, ?, ?)")).await,
        write_id: p(format!(
            "INSERT INTO {ks}.event_ids (ns, event_id, stream, version, position) VALUES (?, ?, ?, ?, ?)"
        ))
        .await,
        ns,
        session,
    }
}

impl Raw {
    async fn upsert(&self, key: &str, value: &[u8]) {
        let r = self
            .session
            .execute_unpaged(&self.versions, (&self.ns, "bench", vec![key]))
            .await
            .expect("raw select")
            .into_rows_result()
            .expect("rows");
        let v = r
            .maybe_first_row::<(String, i64)>()
            .expect("row")
            .map_or(0, |(_, v)| v);
        self.session
            .execute_unpaged(&self.put, (value, v + 1, &self.ns, "bench", key))
            .await
            .expect("raw update");
    }

    async fn get(&self, key: &str) {
        let r = self
            .session
            .execute_unpaged(&self.get, (&self.ns, "bench", key))
            .await
            .expect("raw get")
            .into_rows_result()
            .expect("rows");
        assert!(r
            .maybe_first_row::<(Vec<u8>, i64)>()
            .expect("row")
            .is_some());
    }

    /// The append protocol's statements for one event, retrying lost races.
    async fn append(&self, stream: &str, event: NewEvent) {
        let s = &self.session;
        loop {
            let (next, committed, _pending) = s
                .execute_unpaged(&self.head, (&self.ns,))
                .await
                .expect("head")
                .into_rows_result()
                .expect("rows")
                .maybe_first_row::<(Option<i64>, Option<i64>, Option<Vec<u8>>)>()
                .expect("row")
                .unwrap_or((None, None, None));
            if committed.unwrap_or(0) < next.unwrap_or(0) {
                // Someone's batch is in flight; the raw client just waits.
                tokio::task::yield_now().await;
                continue;
            }
            s.execute_unpaged(&self.id_get, (&self.ns, event.event_id.0))
                .await
                .expect("id lookup");
            let version = s
                .execute_unpaged(&self.stream_head, (&self.ns, stream))
                .await
                .expect("stream head")
                .into_rows_result()
                .expect("rows")
                .maybe_first_row::<(Option<i64>,)>()
                .expect("row")
                .and_then(|(v,)| v);
            let n = next.unwrap_or(0);
            let new_version = version.map_or(0, |v| v + 1);
            let env = Envelope::recorded(
                event.clone(),
                StreamId::new(stream).expect("stream"),
                u64::try_from(new_version).expect("version"),
                u64::try_from(n).expect("position"),
                Timestamp::now(),
            );
            let record = wire::encode(&env);
            let mut batch = Batch::new(BatchType::Unlogged);
            batch
                .set_serial_consistency(Some(scylla::frame::types::SerialConsistency::LocalSerial));
            batch.append_statement(self.decide_log.clone());
            batch.append_statement(self.decide_stream.clone());
            let res = s
                .batch(
                    &batch,
                    (
                        (n + 1, &record, &self.ns, next, committed),
                        (new_version, &self.ns, stream, version),
                    ),
                )
                .await
                .expect("decide")
                .into_rows_result()
                .expect("rows");
            let applied = res
                .maybe_first_row::<scylla::value::Row>()
                .expect("row")
                .and_then(|r| r.columns.into_iter().next().flatten())
                == Some(scylla::value::CqlValue::Boolean(true));
            if !applied {
                continue;
            }
            let (a, b, c) = tokio::join!(
                s.execute_unpaged(
                    &self.write_stream,
                    (&self.ns, stream, new_version, n, &record)
                ),
                s.execute_unpaged(&self.write_log, (&self.ns, n >> 14, n, &record)),
                s.execute_unpaged(
                    &self.write_id,
                    (&self.ns, event.event_id.0, stream, new_version, n)
                ),
            );
            a.and(b).and(c).expect("writes");
            s.execute_unpaged(&self.commit, (n + 1, &self.ns, committed))
                .await
                .expect("commit");
            return;
        }
    }
}

fn main() {
    let Ok(nodes) = std::env::var("CASSANDRA_NODES") else {
        eprintln!("cassandra bench: CASSANDRA_NODES not set; run `eval \"$(scripts/cassandra start)\"` first");
        return;
    };
    let ops: usize = std::env::var("CASSANDRA_BENCH_OPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    rt.block_on(async move {
        let config = |tag: &str| {
            CassandraConfig::builder(&nodes)
                .keyspace("metachat_bench")
                .namespace(format!("{tag}{}", uuid::Uuid::new_v4().simple()))
                .build()
                .expect("config")
        };
        let ours_cfg = config("ours");
        let raw_cfg = config("raw");
        let rm = CassandraReadModels::connect(&ours_cfg).await.expect("read models");
        let store = CassandraEventStore::connect(&ours_cfg).await.expect("store");
        // Migrations (tables) through the adapter; the raw side uses them
        // over a session of its own (its statements set the adapter's
        // consistency).
        CassandraEventStore::connect(&raw_cfg).await.expect("schema");
        let session = Arc::new(
            SessionBuilder::new()
                .known_nodes(raw_cfg.nodes())
                .build()
                .await
                .expect("session"),
        );
        let raw = Arc::new(raw(session, "metachat_bench", raw_cfg.namespace().to_owned()).await);
        let value = Arc::new(vec![b'x'; VALUE]);
        let keys = ops.clamp(1, MAX_KEYS);

        println!("| workload | ours ops/s | ours p50 ms | ours p99 ms | raw ops/s | raw p50 ms | raw p99 ms | ours / raw |");
        println!("|---|---|---|---|---|---|---|---|");
        // Warm-up: both paths, so neither measured run pays for a cold node.
        for (i, k) in (0..keys.min(2_000)).enumerate() {
            let key = format!("w{k}");
            if i % 2 == 0 {
                raw.upsert(&key, &value).await;
            } else {
                rm.get("bench", &key).await.expect("warm-up get");
            }
        }
        let upserts_ours = {
            let rm = rm.clone();
            let value = value.clone();
            measure(ops, move |i| {
                let rm = rm.clone();
                let value = value.clone();
                async move {
                    rm.commit(Commit {
                        ops: vec![WriteOp::Put {
                            collection: "bench".into(),
                            key: format!("k{}", i % keys),
                            value: value.to_vec(),
                            expect: DocExpect::Any,
                        }],
                        checkpoint: None,
                    })
                    .await
                    .expect("upsert");
                }
            })
            .await
        };
        let upserts_raw = {
            let raw = raw.clone();
            let value = value.clone();
            measure(ops, move |i| {
                let raw = raw.clone();
                let value = value.clone();
                async move { raw.upsert(&format!("k{}", i % keys), &value).await }
            })
            .await
        };
        row("read-model upsert (1 doc, 256 B)", upserts_ours, upserts_raw);

        let reads_ours = {
            let rm = rm.clone();
            measure(ops, move |i| {
                let rm = rm.clone();
                async move {
                    let d = rm.get("bench", &format!("k{}", (i * 7919) % keys)).await.expect("get");
                    assert!(d.is_some());
                }
            })
            .await
        };
        let reads_raw = {
            let raw = raw.clone();
            measure(ops, move |i| {
                let raw = raw.clone();
                async move { raw.get(&format!("k{}", (i * 7919) % keys)).await }
            })
            .await
        };
        row("read-model point read", reads_ours, reads_raw);

        let appends = ops / 5;
        let appends_ours = {
            let store = store.clone();
            measure(appends, move |i| {
                let store = store.clone();
                async move {
                    let s = StreamId::new(format!("bench-{i}")).expect("stream");
                    store
                        .append(&s, ExpectedVersion::NoStream, vec![NewEvent::new("Bench", vec![b'e'; 1024])])
                        .await
                        .expect("append");
                }
            })
            .await
        };
        let appends_raw = {
            let raw = raw.clone();
            measure(appends, move |i| {
                let raw = raw.clone();
                async move {
                    raw.append(&format!("bench-{i}"), NewEvent::new("Bench", vec![b'e'; 1024]))
                        .await
                }
            })
            .await
        };
        row("event append (1 event, 1 KiB, 32 writers)", appends_ours, appends_raw);
    });
}
