//! The sled event store against its baselines, measured in one run.
//!
//! Peers: `raw` (a plain file + `fdatasync`, the physical limit), `sqlite`
//! (rusqlite, WAL, `synchronous=FULL`), `sqlite_tuned` (the same with a
//! group-commit writer, a unique event-id index, a 1 GiB page cache and
//! `mmap` reads), `umadb` (UmaDB's engine embedded) and
//! `sled` (MetaChat's `SledEventStore`). Workloads of 1 KiB events:
//!
//! | group | one iteration |
//! |---|---|
//! | `append_1_writer` | one durable append of one event |
//! | `append_64_writers` | 64 concurrent writers each append one event (raw: one write of 64 events + `fdatasync`) |
//! | `append_batch_1000` | one append of 1,000 events to a new stream |
//! | `load_aggregate_1000` | read the 1,000 events of one stream |
//! | `replay_1m` | read the whole 1,000,000-event log in order |
//! | `projection_1m` | rebuild a counting projection over the 1,000,000 events |
//!
//! Run: `benches/run.sh` (or `cargo bench --bench event_store`); see `benches/README.md`.
//! Under `cargo test --benches` or `cargo bench --bench event_store -- --test`
//! each workload runs once, on a 10,000-event dataset.

mod common;
mod raw;
mod sled_store;
mod sqlite;
mod uma;

use std::cell::OnceCell;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, SamplingMode, Throughput};
use tokio::runtime::Runtime;

use common::{note, payload, temp_dir, timed, BATCH, BIG_STREAMS, SMOKE_STREAMS, WRITERS};
use metachat_adapters::sled::SledConfig;
use raw::{RawDataset, RawLog};
use sled_store::SledPeer;
use sqlite::SqliteStore;
use uma::UmaStore;

fn group<'a>(c: &'a mut Criterion, name: &str, elements: u64) -> BenchmarkGroup<'a, WallTime> {
    let mut g = c.benchmark_group(name);
    g.sampling_mode(SamplingMode::Flat);
    g.throughput(Throughput::Elements(elements));
    g
}

fn append_one_writer(c: &mut Criterion, rt: &Runtime, payload: &[u8]) {
    let mut g = group(c, "append_1_writer", 1);
    {
        let dir = temp_dir("raw");
        let mut log = RawLog::create(dir.path(), payload);
        g.bench_function("raw_fdatasync", |b| {
            b.iter_custom(|iters| log.append_each(iters))
        });
    }
    {
        let dir = temp_dir("raw");
        let mut log = RawLog::create(dir.path(), payload);
        g.bench_function("raw_fdatasync_overwrite", |b| {
            b.iter_custom(|iters| log.overwrite_each(iters))
        });
    }
    {
        let dir = temp_dir("sqlite");
        let store = SqliteStore::open(dir.path(), payload);
        g.bench_function("sqlite", |b| {
            b.iter_custom(|iters| store.append_each("single-0", iters))
        });
    }
    {
        let dir = temp_dir("sqlite-tuned");
        let store = SqliteStore::open_tuned(dir.path(), payload);
        g.bench_function("sqlite_tuned", |b| {
            b.iter_custom(|iters| store.append_each("single-0", iters))
        });
    }
    {
        let dir = temp_dir("umadb");
        let store = UmaStore::open(dir.path(), payload);
        g.bench_function("umadb", |b| {
            b.iter_custom(|iters| store.append_each(rt, "single-0", iters))
        });
    }
    {
        let dir = temp_dir("sled");
        let store = SledPeer::open(dir.path(), payload);
        g.bench_function("sled", |b| {
            b.iter_custom(|iters| store.append_each(rt, "single-0", iters))
        });
    }
    g.finish();
}

fn append_concurrent(c: &mut Criterion, rt: &Runtime, payload: &[u8]) {
    let mut g = group(
        c,
        "append_64_writers",
        u64::try_from(WRITERS).expect("fits"),
    );
    {
        let dir = temp_dir("raw");
        let mut log = RawLog::create(dir.path(), payload);
        g.bench_function("raw_fdatasync_batch64", |b| {
            b.iter_custom(|iters| log.append_batches(WRITERS, iters))
        });
    }
    let mut round = 0;
    {
        let dir = temp_dir("sqlite");
        let store = SqliteStore::open(dir.path(), payload);
        g.bench_function("sqlite", |b| {
            b.iter_custom(|iters| {
                round += 1;
                store.append_concurrent(round, iters)
            })
        });
    }
    {
        let dir = temp_dir("sqlite-tuned");
        let store = SqliteStore::open_tuned(dir.path(), payload);
        g.bench_function("sqlite_tuned", |b| {
            b.iter_custom(|iters| {
                round += 1;
                store.append_concurrent(round, iters)
            })
        });
    }
    {
        let dir = temp_dir("umadb");
        let store = Arc::new(UmaStore::open(dir.path(), payload));
        g.bench_function("umadb", |b| {
            b.iter_custom(|iters| {
                round += 1;
                store.append_concurrent(rt, round, iters)
            })
        });
    }
    {
        let dir = temp_dir("sled");
        let store = SledPeer::open(dir.path(), payload);
        g.bench_function("sled", |b| {
            b.iter_custom(|iters| {
                round += 1;
                store.append_concurrent(rt, round, iters)
            })
        });
    }
    g.finish();
}

fn append_batches(c: &mut Criterion, rt: &Runtime, payload: &[u8]) {
    let mut g = group(c, "append_batch_1000", u64::try_from(BATCH).expect("fits"));
    {
        let dir = temp_dir("raw");
        let mut log = RawLog::create(dir.path(), payload);
        g.bench_function("raw_fdatasync_batch1000", |b| {
            b.iter_custom(|iters| log.append_batches(BATCH, iters))
        });
    }
    let mut round = 0;
    {
        let dir = temp_dir("sqlite");
        let store = SqliteStore::open(dir.path(), payload);
        g.bench_function("sqlite", |b| {
            b.iter_custom(|iters| {
                round += 1;
                store.append_batches(round, iters)
            })
        });
    }
    {
        let dir = temp_dir("sqlite-tuned");
        let store = SqliteStore::open_tuned(dir.path(), payload);
        g.bench_function("sqlite_tuned", |b| {
            b.iter_custom(|iters| {
                round += 1;
                store.append_batches(round, iters)
            })
        });
    }
    {
        let dir = temp_dir("umadb");
        let store = UmaStore::open(dir.path(), payload);
        g.bench_function("umadb", |b| {
            b.iter_custom(|iters| {
                round += 1;
                store.append_batches(rt, round, iters)
            })
        });
    }
    {
        let dir = temp_dir("sled");
        let store = SledPeer::open(dir.path(), payload);
        g.bench_function("sled", |b| {
            b.iter_custom(|iters| {
                round += 1;
                store.append_batches(rt, round, iters)
            })
        });
    }
    g.finish();
}

/// The read datasets, each generated the first time a bench needs it (so a
/// filtered run builds only what it reads), and removed at the end.
struct Datasets<'a> {
    rt: &'a Runtime,
    payload: &'a [u8],
    streams: usize,
    raw: OnceCell<(tempfile::TempDir, RawDataset)>,
    sqlite: OnceCell<(tempfile::TempDir, SqliteStore)>,
    sqlite_tuned: OnceCell<(tempfile::TempDir, SqliteStore)>,
    umadb: OnceCell<(tempfile::TempDir, UmaStore)>,
    sled: OnceCell<(tempfile::TempDir, SledPeer)>,
    sled_copy: std::cell::Cell<Option<tempfile::TempDir>>,
    sled_big_cache: OnceCell<(tempfile::TempDir, SledPeer)>,
}

impl<'a> Datasets<'a> {
    fn events(&self) -> u64 {
        u64::try_from(self.streams * BATCH).expect("fits")
    }

    fn raw(&self) -> &RawDataset {
        &self
            .raw
            .get_or_init(|| {
                let dir = temp_dir("raw-data");
                let mut data = None;
                let took = timed(|| {
                    data = Some(RawDataset::generate(dir.path(), self.payload, self.streams))
                });
                note("raw dataset", dir.path(), took);
                (dir, data.expect("generated"))
            })
            .1
    }

    fn sqlite(&self) -> &SqliteStore {
        &self
            .sqlite
            .get_or_init(|| {
                let dir = temp_dir("sqlite-data");
                let store = SqliteStore::open(dir.path(), self.payload);
                note(
                    "sqlite dataset",
                    dir.path(),
                    timed(|| store.generate(self.streams)),
                );
                (dir, store)
            })
            .1
    }

    fn sqlite_tuned(&self) -> &SqliteStore {
        &self
            .sqlite_tuned
            .get_or_init(|| {
                let dir = temp_dir("sqlite-tuned-data");
                let store = SqliteStore::open_tuned(dir.path(), self.payload);
                note(
                    "sqlite_tuned dataset",
                    dir.path(),
                    timed(|| store.generate(self.streams)),
                );
                (dir, store)
            })
            .1
    }

    fn umadb(&self) -> &UmaStore {
        &self
            .umadb
            .get_or_init(|| {
                let dir = temp_dir("umadb-data");
                let store = UmaStore::open(dir.path(), self.payload);
                note(
                    "umadb dataset",
                    dir.path(),
                    timed(|| store.generate(self.rt, self.streams)),
                );
                (dir, store)
            })
            .1
    }

    fn sled(&self) -> &SledPeer {
        &self
            .sled
            .get_or_init(|| {
                let dir = temp_dir("sled-data");
                let store = SledPeer::open(dir.path(), self.payload);
                note(
                    "sled dataset",
                    dir.path(),
                    timed(|| store.generate(self.rt, self.streams)),
                );
                drop(store);
                let copy = temp_dir("sled-data-copy");
                copy_dir(dir.path(), copy.path());
                // Kept for `sled_big_cache`.
                self.sled_copy.set(Some(copy));
                let store = SledPeer::open(dir.path(), self.payload);
                (dir, store)
            })
            .1
    }

    /// A copy of the sled dataset opened with a 4 GiB cache (`cache_capacity`),
    /// which holds the whole dataset (the default, 1 GiB, does not).
    fn sled_big_cache(&self) -> &SledPeer {
        &self
            .sled_big_cache
            .get_or_init(|| {
                self.sled();
                let dir = self.sled_copy.take().expect("copied with the sled dataset");
                let config = SledConfig::new(dir.path()).cache_capacity(4 << 30);
                let store = SledPeer::open_with(config, self.payload);
                (dir, store)
            })
            .1
    }

    /// Builds every dataset now, so that no warm-up includes building one.
    fn prepare(&self) {
        self.raw();
        self.sqlite();
        self.sqlite_tuned();
        self.umadb();
        self.sled();
        self.sled_big_cache();
    }
}

/// Copies the files of `from` (recursively) into `to`.
fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).expect("create dir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("dir entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

/// Runs `read` `iters` times, checking each returns `expect`. Callers get their
/// dataset before, so that generating it is never timed.
fn repeat(iters: u64, expect: u64, mut read: impl FnMut() -> u64) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        assert_eq!(read(), expect, "a read returned the wrong number of events");
    }
    start.elapsed()
}

fn load_aggregate(c: &mut Criterion, d: &Datasets<'_>) {
    let n = u64::try_from(BATCH).expect("fits");
    let to_u64 = |x: usize| u64::try_from(x).expect("fits");
    let mut g = group(c, "load_aggregate_1000", n);
    g.bench_function("raw_read", |b| {
        b.iter_custom(|iters| {
            let raw = d.raw();
            repeat(iters, n, || raw.load_aggregate())
        })
    });
    g.bench_function("sqlite", |b| {
        b.iter_custom(|iters| {
            let sqlite = d.sqlite();
            repeat(iters, n, || to_u64(sqlite.load_aggregate()))
        })
    });
    g.bench_function("sqlite_tuned", |b| {
        b.iter_custom(|iters| {
            let sqlite = d.sqlite_tuned();
            repeat(iters, n, || to_u64(sqlite.load_aggregate()))
        })
    });
    g.bench_function("umadb", |b| {
        b.iter_custom(|iters| {
            let umadb = d.umadb();
            repeat(iters, n, || to_u64(umadb.load_aggregate()))
        })
    });
    g.bench_function("sled", |b| {
        b.iter_custom(|iters| {
            let sled = d.sled();
            d.rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    assert_eq!(sled.load_aggregate().await, BATCH);
                }
                start.elapsed()
            })
        })
    });
    g.bench_function("sled_cache_4g", |b| {
        b.iter_custom(|iters| {
            let sled = d.sled_big_cache();
            d.rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    assert_eq!(sled.load_aggregate().await, BATCH);
                }
                start.elapsed()
            })
        })
    });
    g.finish();
}

fn replay(c: &mut Criterion, d: &Datasets<'_>) {
    let n = d.events();
    let mut g = group(c, "replay_1m", n);
    g.bench_function("raw_read", |b| {
        b.iter_custom(|iters| {
            let raw = d.raw();
            repeat(iters, n, || raw.replay())
        })
    });
    g.bench_function("sqlite", |b| {
        b.iter_custom(|iters| {
            let sqlite = d.sqlite();
            repeat(iters, n, || sqlite.replay())
        })
    });
    g.bench_function("sqlite_tuned", |b| {
        b.iter_custom(|iters| {
            let sqlite = d.sqlite_tuned();
            repeat(iters, n, || sqlite.replay())
        })
    });
    g.bench_function("umadb", |b| {
        b.iter_custom(|iters| {
            let umadb = d.umadb();
            repeat(iters, n, || umadb.replay())
        })
    });
    g.bench_function("sled", |b| {
        b.iter_custom(|iters| {
            let sled = d.sled();
            d.rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    assert_eq!(sled.replay().await, n);
                }
                start.elapsed()
            })
        })
    });
    g.bench_function("sled_cache_4g", |b| {
        b.iter_custom(|iters| {
            let sled = d.sled_big_cache();
            d.rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    assert_eq!(sled.replay().await, n);
                }
                start.elapsed()
            })
        })
    });
    g.finish();
}

fn projection(c: &mut Criterion, d: &Datasets<'_>) {
    let n = d.events();
    let mut g = group(c, "projection_1m", n);
    g.bench_function("sqlite", |b| {
        b.iter_custom(|iters| {
            let sqlite = d.sqlite();
            repeat(iters, n, || sqlite.project())
        })
    });
    g.bench_function("sqlite_tuned", |b| {
        b.iter_custom(|iters| {
            let sqlite = d.sqlite_tuned();
            repeat(iters, n, || sqlite.project())
        })
    });
    g.bench_function("sled", |b| {
        b.iter_custom(|iters| {
            let sled = d.sled();
            d.rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    assert_eq!(sled.project().await, n);
                }
                start.elapsed()
            })
        })
    });
    g.bench_function("sled_cache_4g", |b| {
        b.iter_custom(|iters| {
            let sled = d.sled_big_cache();
            d.rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    assert_eq!(sled.project().await, n);
                }
                start.elapsed()
            })
        })
    });
    g.finish();
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` does not, and
    // `cargo bench -- --test` adds `--test`: those two are smoke runs.
    let args: Vec<String> = std::env::args().collect();
    let bench_mode = args.iter().any(|a| a == "--bench") && !args.iter().any(|a| a == "--test");
    let mut c = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let payload = payload();

    append_one_writer(&mut c, &rt, &payload);
    append_concurrent(&mut c, &rt, &payload);
    append_batches(&mut c, &rt, &payload);

    let data = Datasets {
        rt: &rt,
        payload: &payload,
        streams: if bench_mode {
            BIG_STREAMS
        } else {
            SMOKE_STREAMS
        },
        raw: OnceCell::new(),
        sqlite: OnceCell::new(),
        sqlite_tuned: OnceCell::new(),
        umadb: OnceCell::new(),
        sled: OnceCell::new(),
        sled_copy: std::cell::Cell::new(None),
        sled_big_cache: OnceCell::new(),
    };
    // Datasets are built before the first read bench (about a minute), or,
    // with METACHAT_BENCH_LAZY_DATA set, by the first bench that reads each
    // (then that bench's warm-up includes it: fine for a filtered look).
    if std::env::var_os("METACHAT_BENCH_LAZY_DATA").is_none() {
        data.prepare();
    }
    load_aggregate(&mut c, &data);
    replay(&mut c, &data);
    projection(&mut c, &data);
    drop(data);

    c.final_summary();
}
