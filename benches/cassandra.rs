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
//!    (`CassandraEventStore::append`, `NoStream`) on logs of 1 (one total
//!    order), 4 and 16 partitions vs the raw driver running the append
//!    protocol's statements on the same layout (partition head read, id
//!    lookup, stream head read, the deciding LWT batch, three inserts, the
//!    commit mark) with the same coordination: the same jittered backoff
//!    after a lost round or while a batch is in flight, but without our
//!    checks, helping or decoding. Neither side
//!    serialises its tasks: 32 writers race through the LWTs on both.
//!    Ours and raw alternate (A/B, B/A, A/B, …: `CASSANDRA_BENCH_ROUNDS`
//!    rounds, default 3), each run in a fresh namespace after the same warm-up.
//!
//! The read-model workloads run `CASSANDRA_BENCH_OPS` operations (default
//! 20,000), each append run `CASSANDRA_BENCH_APPENDS` (default 2,000), from
//! 32 concurrent tasks; each reports ops/s and p50/p99 latency.
//!
//! Run: `eval "$(scripts/cassandra start)" && export CASSANDRA_NODES &&
//! cargo bench --features cassandra --bench cassandra`.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use metachat_adapters::cassandra::{
    partition_for_key, CassandraConfig, CassandraEventStore, CassandraReadModels,
};
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
        commit: p(format!("UPDATE {ks}.log_heads USING TIMESTAMP ? SET committed = ? WHERE ns = ?")).await,
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

    /// The append protocol's statements for one event on `log`, retrying
    /// lost races after the same backoff as the adapter.
    async fn append(&self, log: &RawLog, stream: &str, event: NewEvent) {
        let s = &self.session;
        let p = partition_for_key(stream, log.partitions) as usize;
        let hk = &log.heads[p];
        let mut backoff = Backoff::default();
        let mut first_try = true;
        loop {
            let (next, committed, _pending) = s
                .execute_unpaged(&self.head, (hk,))
                .await
                .expect("head")
                .into_rows_result()
                .expect("rows")
                .maybe_first_row::<(Option<i64>, Option<i64>, Option<Vec<u8>>)>()
                .expect("row")
                .unwrap_or((None, None, None));
            if committed.unwrap_or(0) < next.unwrap_or(0) {
                // A batch in flight: the raw client waits for its writer.
                backoff.pause().await;
                continue;
            }
            // The id lookup; the stream head (at the same time) only after a
            // lost round: the first try takes the expected `NoStream`, as
            // the adapter does.
            let stream_head = async {
                if first_try {
                    return None;
                }
                s.execute_unpaged(&self.stream_head, (hk, stream))
                    .await
                    .expect("stream head")
                    .into_rows_result()
                    .expect("rows")
                    .maybe_first_row::<(Option<i64>,)>()
                    .expect("row")
                    .and_then(|(v,)| v)
            };
            let (id, version) = tokio::join!(
                s.execute_unpaged(&self.id_get, (&log.ns, event.event_id.0)),
                stream_head
            );
            id.expect("id lookup");
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
                        (n + 1, &record, hk, next, committed),
                        (new_version, hk, stream, version),
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
                first_try = false;
                backoff.pause().await;
                continue;
            }
            let (a, b, c) = tokio::join!(
                s.execute_unpaged(
                    &self.write_stream,
                    (&log.ns, stream, new_version, n, &record)
                ),
                s.execute_unpaged(&self.write_log, (hk, n >> 14, n, &record)),
                s.execute_unpaged(
                    &self.write_id,
                    (&log.ns, event.event_id.0, stream, new_version, n)
                ),
            );
            a.and(b).and(c).expect("writes");
            s.execute_unpaged(&self.commit, ((1i64 << 62) + n + 1, n + 1, hk))
                .await
                .expect("commit");
            return;
        }
    }
}

/// A namespace's log as the raw side addresses it: the same head keys as
/// the adapter (`ns` for partition 0, `ns\u{1f}p` for the others).
struct RawLog {
    ns: String,
    heads: Vec<String>,
    partitions: u32,
}

impl RawLog {
    fn new(ns: &str, partitions: u32) -> Self {
        RawLog {
            ns: ns.to_owned(),
            heads: (0..partitions)
                .map(|p| {
                    if p == 0 {
                        ns.to_owned()
                    } else {
                        format!("{ns}\u{1f}{p}")
                    }
                })
                .collect(),
            partitions,
        }
    }
}

/// The adapter's pause after a lost round: 1, 2, 4, … 32 ms, times a
/// random factor in [0.5, 1.5).
#[derive(Default)]
struct Backoff {
    round: u32,
}

impl Backoff {
    async fn pause(&mut self) {
        let base = (1u64 << self.round.min(6)).min(32) * 1000;
        self.round += 1;
        let r = u64::from(uuid::Uuid::new_v4().as_fields().0) % 1000;
        tokio::time::sleep(Duration::from_micros(base / 2 + base * r / 1000)).await;
    }
}

/// Min, median and max of the runs' appends/s; the p99s likewise.
fn spread(runs: &[Figures]) -> String {
    let mut rates: Vec<f64> = runs.iter().map(|f| f.per_sec).collect();
    rates.sort_by(f64::total_cmp);
    let mut p99: Vec<f64> = runs.iter().map(|f| f.p99.as_secs_f64() * 1e3).collect();
    p99.sort_by(f64::total_cmp);
    // The median; of an even count, the mean of the middle two.
    let mid = |v: &[f64]| (v[(v.len() - 1) / 2] + v[v.len() / 2]) / 2.0;
    format!(
        "{:.0} ({:.0}–{:.0}) | {:.1} ({:.1}–{:.1})",
        mid(&rates),
        rates[0],
        rates[rates.len() - 1],
        mid(&p99),
        p99[0],
        p99[p99.len() - 1]
    )
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

        let appends: usize = std::env::var("CASSANDRA_BENCH_APPENDS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(2_000);
        let rounds: usize = std::env::var("CASSANDRA_BENCH_ROUNDS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(3)
            .max(1);
        let event = || NewEvent::new("Bench", vec![b'e'; 1024]);
        println!();
        println!("| partitions | ours appends/s median (min–max) | ours p99 ms median (min–max) | raw appends/s median (min–max) | raw p99 ms median (min–max) | ours / raw (medians) |");
        println!("|---|---|---|---|---|---|");
        let counts: Vec<u32> = std::env::var("CASSANDRA_BENCH_PARTITIONS")
            .unwrap_or_else(|_| "1,4,16".into())
            .split(',')
            .map(|n| n.trim().parse().expect("CASSANDRA_BENCH_PARTITIONS: numbers, e.g. 1,4,16"))
            .collect();
        for partitions in counts {
            let (mut ours_runs, mut raw_runs) = (Vec::new(), Vec::new());
            for round in 0..rounds {
                // Alternate which side goes first: ours, raw, raw, ours, …
                for side in if round % 2 == 0 { [0, 1] } else { [1, 0] } {
                    // Each run: a fresh namespace with these partitions
                    // (tables and layout through the adapter), the same
                    // warm-up (a tenth of the run), then the measured run.
                    let cfg = CassandraConfig::builder(&nodes)
                        .keyspace("metachat_bench")
                        .namespace(format!("b{partitions}r{round}s{side}{}", uuid::Uuid::new_v4().simple()))
                        .partitions(partitions)
                        .build()
                        .expect("config");
                    let store = CassandraEventStore::connect(&cfg).await.expect("store");
                    if side == 0 {
                        let run = |store: CassandraEventStore, n: usize, tag: &'static str| {
                            measure(n, move |i| {
                                let store = store.clone();
                                async move {
                                    let s = StreamId::new(format!("{tag}-{i}")).expect("stream");
                                    store
                                        .append(&s, ExpectedVersion::NoStream, vec![event()])
                                        .await
                                        .expect("append");
                                }
                            })
                        };
                        run(store.clone(), appends / 10, "warm").await;
                        ours_runs.push(run(store, appends, "bench").await);
                    } else {
                        let log = Arc::new(RawLog::new(cfg.namespace(), partitions));
                        let raw_run = |n: usize, tag: &'static str| {
                            let raw = raw.clone();
                            let log = log.clone();
                            measure(n, move |i| {
                                let raw = raw.clone();
                                let log = log.clone();
                                async move { raw.append(&log, &format!("{tag}-{i}"), event()).await }
                            })
                        };
                        raw_run(appends / 10, "warm").await;
                        raw_runs.push(raw_run(appends, "bench").await);
                    }
                }
            }
            let median = |v: &[Figures]| {
                let mut r: Vec<f64> = v.iter().map(|f| f.per_sec).collect();
                r.sort_by(f64::total_cmp);
                (r[(r.len() - 1) / 2] + r[r.len() / 2]) / 2.0
            };
            println!(
                "| {partitions} | {} | {} | {:.2} |",
                spread(&ours_runs),
                spread(&raw_runs),
                median(&ours_runs) / median(&raw_runs)
            );
        }
    });
}
