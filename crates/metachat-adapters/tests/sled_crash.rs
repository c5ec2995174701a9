//! Crash test: a child process appends in a loop and reports every append
//! it tries and every one acknowledged; the parent kills it with SIGKILL at a
//! random moment, reopens the store and checks that nothing acknowledged was
//! lost, no batch is half-present, positions and versions are contiguous,
//! and the store accepts new appends, and every batch the child tried can be
//! appended again: a stored one idempotently, where it was stored. Twenty
//! rounds, alternating `Durability::Sync` and `Durability::Periodic` (a
//! process crash must lose nothing under either); each round kills only
//! after a minimum of acknowledged appends, so no round passes empty.
//!
//! A second test kills the store while it rebuilds the index of a large log
//! (its sled files removed), several times over, then checks the same.
//!
//! Reproduce a round with `METACHAT_CRASH_SEED=<seed>` (printed on failure).

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use metachat_adapters::sled::{Durability, SledConfig, SledEventStore};
use metachat_core::event::{EventId, NewEvent, StreamId};
use metachat_core::store::{EventAppender, EventReader, ExpectedVersion};

const CHILD_TEST: &str = "crash_child_appends_until_killed";
const DIR_VAR: &str = "METACHAT_CRASH_CHILD_DIR";
const SEED_VAR: &str = "METACHAT_CRASH_CHILD_SEED";
const MODE_VAR: &str = "METACHAT_CRASH_CHILD_MODE";
const ROUNDS: usize = 20;
/// Acknowledged appends a child reports before the kill's delay starts.
const MIN_ACKED: usize = 20;
/// Events per append of the bulk child that writes a large log.
const BULK_EVENTS: usize = 1000;
/// Concurrent appenders in the child, each owning its own streams.
const WRITERS: usize = 4;
const STREAMS_PER_WRITER: usize = 3;

fn config(dir: &Path, periodic: bool) -> SledConfig {
    let durability = if periodic {
        Durability::Periodic(Duration::from_millis(3))
    } else {
        Durability::Sync
    };
    SledConfig::new(dir).durability(durability)
}

/// The child's body. Ignored in normal runs; the parent runs it with `--ignored`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "child process of sigkill_during_appends_loses_nothing_acknowledged"]
async fn crash_child_appends_until_killed() {
    let Ok(dir) = std::env::var(DIR_VAR) else {
        eprintln!("crash child: nothing to do outside the parent crash test");
        return;
    };
    let seed: u64 = std::env::var(SEED_VAR).unwrap().parse().unwrap();
    let mode = std::env::var(MODE_VAR).unwrap_or_default();
    let periodic = mode == "periodic";
    let bulk = mode == "bulk";
    let store = SledEventStore::open(config(Path::new(&dir), periodic)).unwrap();
    let out = Arc::new(Mutex::new(std::io::stdout()));
    {
        let mut o = out.lock().unwrap();
        // A leading newline: libtest's "test … " line is still open.
        writeln!(o, "\nready").unwrap();
        o.flush().unwrap();
    }
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let (store, out) = (store.clone(), out.clone());
        let mut rng = fastrand::Rng::with_seed(seed.wrapping_add(w as u64));
        tasks.push(tokio::spawn(async move {
            let streams: Vec<StreamId> = (0..STREAMS_PER_WRITER)
                .map(|i| StreamId::new(format!("w{w}-s{i}")).unwrap())
                .collect();
            // A reopened store continues where the killed run left off.
            let mut versions = Vec::new();
            for s in &streams {
                versions.push(store.stream_version(s).await.unwrap());
            }
            loop {
                let i = rng.usize(..streams.len());
                let n = if bulk { BULK_EVENTS } else { rng.usize(1..=5) };
                let events: Vec<NewEvent> = (0..n)
                    .map(|_| {
                        let size = if bulk { 64 } else { rng.usize(16..2048) };
                        NewEvent::new("Appended", vec![rng.u8(..); size])
                    })
                    .collect();
                let ids: Vec<String> = events.iter().map(|e| e.event_id.to_string()).collect();
                {
                    let mut o = out.lock().unwrap();
                    writeln!(o, "try {} {}", streams[i], ids.join(",")).unwrap();
                    o.flush().unwrap();
                }
                let expected = ExpectedVersion::from_version(versions[i]);
                let r = store.append(&streams[i], expected, events).await.unwrap();
                versions[i] = Some(r.last_version);
                let mut o = out.lock().unwrap();
                writeln!(
                    o,
                    "ack {} {} {} {} {} {}",
                    streams[i],
                    r.first_version,
                    r.last_version,
                    r.first_position,
                    r.last_position,
                    ids.join(",")
                )
                .unwrap();
                o.flush().unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

#[derive(Debug)]
struct Ack {
    stream: String,
    first_version: u64,
    last_version: u64,
    first_position: u64,
    last_position: u64,
    ids: Vec<EventId>,
}

fn parse_ids(s: &str) -> Vec<EventId> {
    s.split(',')
        .map(|id| EventId(id.parse().expect("uuid")))
        .collect()
}

/// Lines the child completed (a line cut by the kill is ignored).
struct Report {
    tried: Vec<(String, Vec<EventId>)>,
    acked: Vec<Ack>,
}

fn parse(lines: &[String]) -> Report {
    let mut r = Report {
        tried: Vec::new(),
        acked: Vec::new(),
    };
    for line in lines {
        let f: Vec<&str> = line.split(' ').collect();
        match f.as_slice() {
            ["try", stream, ids] => r.tried.push((stream.to_string(), parse_ids(ids))),
            ["ack", stream, fv, lv, fp, lp, ids] => r.acked.push(Ack {
                stream: stream.to_string(),
                first_version: fv.parse().unwrap(),
                last_version: lv.parse().unwrap(),
                first_position: fp.parse().unwrap(),
                last_position: lp.parse().unwrap(),
                ids: parse_ids(ids),
            }),
            _ => {} // libtest's own output
        }
    }
    r
}

/// When the parent kills the child.
#[derive(Debug, Clone, Copy)]
enum Kill {
    /// `delay` after the child reported this many acknowledged appends.
    AfterAcks(usize, Duration),
    /// `delay` after the start, whatever the child is doing (opening).
    AfterStart(Duration),
}

/// Runs the child in `mode` (`sync`, `periodic`, `bulk`), kills it as
/// `kill` says, returns its complete lines.
fn run_child(dir: &Path, seed: u64, mode: &str, kill: Kill) -> Vec<String> {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            CHILD_TEST,
            "--exact",
            "--nocapture",
            "--ignored",
            "--test-threads=1",
        ])
        .env(DIR_VAR, dir)
        .env(SEED_VAR, seed.to_string())
        .env(MODE_VAR, mode)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().unwrap();
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let wanted = match kill {
        Kill::AfterAcks(n, _) => n,
        Kill::AfterStart(_) => 0,
    };
    let reader = {
        let lines = lines.clone();
        let mut acked = 0;
        std::thread::spawn(move || {
            let mut r = BufReader::new(stdout);
            let mut line = String::new();
            loop {
                line.clear();
                match r.read_line(&mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) if line.ends_with('\n') => {
                        let l = line.trim_end().to_owned();
                        if l.starts_with("ack ") {
                            acked += 1;
                            if acked == wanted {
                                let _ = ready_tx.send(());
                            }
                        }
                        lines.lock().unwrap().push(l);
                    }
                    Ok(_) => break, // cut by the kill
                }
            }
        })
    };
    match kill {
        Kill::AfterAcks(n, delay) => {
            ready_rx
                .recv_timeout(Duration::from_secs(120))
                .unwrap_or_else(|_| panic!("child did not acknowledge {n} appends"));
            std::thread::sleep(delay);
        }
        Kill::AfterStart(delay) => std::thread::sleep(delay),
    }
    let early = child.try_wait().unwrap();
    assert!(early.is_none(), "child died before the kill: {early:?}");
    // SIGKILL on Unix: no destructor, no flush runs in the child.
    child.kill().expect("kill child");
    let status = child.wait().unwrap();
    assert!(!status.success(), "child exited by itself: {status}");
    reader.join().unwrap();
    let out = lines.lock().unwrap().clone();
    out
}

async fn check_round(dir: &Path, report: &Report, periodic: bool) -> usize {
    let store = SledEventStore::open(config(dir, periodic)).expect("reopen after crash");
    let log = store.read_all(0, usize::MAX).await.unwrap();
    let n = log.len() as u64;
    assert_eq!(store.next_position().await.unwrap(), n);

    // Positions 0..N without gaps; per-stream versions 0..k in log order.
    let mut heads: BTreeMap<String, u64> = BTreeMap::new();
    let mut by_id = HashMap::new();
    for (i, e) in log.iter().enumerate() {
        assert_eq!(e.position, i as u64, "gap in global positions");
        let s = e.stream_id.to_string();
        let want = heads.get(&s).map_or(0, |v| v + 1);
        assert_eq!(e.version, want, "gap in versions of {s}");
        heads.insert(s, e.version);
        assert!(by_id.insert(e.event_id, e).is_none(), "event stored twice");
    }
    for (s, v) in &heads {
        let sid = StreamId::new(s.as_str()).unwrap();
        assert_eq!(store.stream_version(&sid).await.unwrap(), Some(*v));
    }

    // Every acknowledged event is there, where it was acknowledged.
    for a in &report.acked {
        assert_eq!(a.ids.len() as u64, a.last_version - a.first_version + 1);
        assert_eq!(a.ids.len() as u64, a.last_position - a.first_position + 1);
        for (k, id) in a.ids.iter().enumerate() {
            let e = by_id
                .get(id)
                .unwrap_or_else(|| panic!("acknowledged event {id} of {} lost", a.stream));
            assert_eq!(e.stream_id.as_str(), a.stream);
            assert_eq!(e.version, a.first_version + k as u64);
            assert_eq!(e.position, a.first_position + k as u64);
        }
    }

    // Every tried batch is all there or not at all; nothing else is there.
    let mut accounted = 0;
    for (stream, ids) in &report.tried {
        let present = ids.iter().filter(|id| by_id.contains_key(id)).count();
        assert!(
            present == 0 || present == ids.len(),
            "batch on {stream} half-present: {present} of {}",
            ids.len()
        );
        if present > 0 {
            let first = by_id[&ids[0]];
            for (k, id) in ids.iter().enumerate() {
                let e = by_id[id];
                assert_eq!(e.stream_id.as_str(), stream);
                assert_eq!(e.version, first.version + k as u64, "batch not contiguous");
                assert_eq!(
                    e.position,
                    first.position + k as u64,
                    "batch not contiguous"
                );
            }
        }
        accounted += present;
    }
    assert_eq!(accounted, log.len(), "events stored that no batch tried");

    // Every tried batch appended again: a stored one is answered where it
    // is, idempotently; one the crash took is stored now, once.
    let mut next = n;
    for (stream, ids) in &report.tried {
        let sid = StreamId::new(stream.as_str()).unwrap();
        let events: Vec<NewEvent> = ids
            .iter()
            .map(|id| match by_id.get(id) {
                Some(e) => NewEvent {
                    event_id: e.event_id,
                    event_type: e.event_type.clone(),
                    schema_version: e.schema_version,
                    payload: e.payload.clone(),
                    metadata: e.metadata.clone(),
                },
                None => {
                    let mut ev = NewEvent::new("Retried", b"{}".to_vec());
                    ev.event_id = *id;
                    ev
                }
            })
            .collect();
        let first = by_id.get(&ids[0]).map(|e| (e.version, e.position));
        for _ in 0..2 {
            let out = store
                .append(&sid, ExpectedVersion::Any, events.clone())
                .await
                .expect("re-append of a tried batch");
            match first {
                Some((version, position)) => {
                    assert_eq!((out.first_version, out.first_position), (version, position))
                }
                None => assert_eq!(out.first_position, next, "a retried batch stored twice"),
            }
        }
        if first.is_none() {
            next += ids.len() as u64;
        }
    }
    assert_eq!(store.next_position().await.unwrap(), next);
    for (s, v) in heads.iter_mut() {
        let sid = StreamId::new(s.as_str()).unwrap();
        *v = store.stream_version(&sid).await.unwrap().unwrap();
    }

    // The store goes on: appends continue the positions and versions.
    for (s, v) in &heads {
        let sid = StreamId::new(s.as_str()).unwrap();
        let out = store
            .append(
                &sid,
                ExpectedVersion::Exact(*v),
                vec![NewEvent::new("AfterCrash", b"{}".to_vec())],
            )
            .await
            .expect("append after crash");
        assert_eq!((out.first_version, out.first_position), (v + 1, next));
        next += 1;
    }
    let fresh = StreamId::new("after-crash").unwrap();
    let out = store
        .append(
            &fresh,
            ExpectedVersion::NoStream,
            vec![NewEvent::new("AfterCrash", b"{}".to_vec())],
        )
        .await
        .unwrap();
    assert_eq!(out.first_position, next);
    log.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_appends_loses_nothing_acknowledged() {
    let base_seed = std::env::var("METACHAT_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    let mut rng = fastrand::Rng::with_seed(base_seed);
    let started = Instant::now();
    let mut total_acked = 0;
    for round in 0..ROUNDS {
        let seed = rng.u64(..);
        let periodic = round % 2 == 1;
        let delay = Duration::from_millis(rng.u64(20..300));
        let dir = tempfile::tempdir().unwrap();
        // Half of the rounds crash a store that already holds data from an
        // earlier (also killed) run, so recovery of a reopened store is covered.
        let runs = if rng.bool() { 2 } else { 1 };
        let mut tried = Vec::new();
        let mut acked = Vec::new();
        let mode = if periodic { "periodic" } else { "sync" };
        for run in 0..runs {
            let kill = Kill::AfterAcks(MIN_ACKED, delay);
            let lines = run_child(dir.path(), seed.wrapping_add(run), mode, kill);
            let r = parse(&lines);
            assert!(
                r.acked.len() >= MIN_ACKED,
                "round {round}: {} acknowledged",
                r.acked.len()
            );
            tried.extend(r.tried);
            acked.extend(r.acked);
        }
        let report = Report { tried, acked };
        let ctx = format!(
            "round {round} (METACHAT_CRASH_SEED={base_seed}, periodic={periodic}, delay={delay:?}, runs={runs})"
        );
        let handle = tokio::spawn({
            let dir = dir.path().to_path_buf();
            async move { check_round(&dir, &report, periodic).await }
        });
        let stored = match handle.await {
            Ok(n) => n,
            Err(e) => panic!("{ctx}: {e}"),
        };
        eprintln!("{ctx}: {stored} events stored after the kill");
        total_acked += stored;
    }
    assert!(total_acked > 0, "no child ever appended anything");
    eprintln!("{ROUNDS} rounds in {:?}", started.elapsed());
}

/// A large log whose index is gone (the sled files removed) is re-indexed
/// on open; the child is killed during that, several times, then the store
/// must still hold every acknowledged append.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_recovery_of_a_large_log_loses_nothing() {
    let seed = std::env::var("METACHAT_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    let mut rng = fastrand::Rng::with_seed(seed);
    let dir = tempfile::tempdir().unwrap();
    let lines = run_child(
        dir.path(),
        seed,
        "bulk",
        Kill::AfterAcks(200, Duration::from_millis(rng.u64(0..200))),
    );
    let mut report = parse(&lines);
    let events: usize = report.acked.iter().map(|a| a.ids.len()).sum();
    assert!(events >= 200 * BULK_EVENTS, "{events} events acknowledged");
    for kill in 0..3 {
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name();
            if name == "log" || name == metachat_adapters::sled::LOCK_FILE {
                continue;
            }
            let path = entry.path();
            if path.is_dir() {
                std::fs::remove_dir_all(&path).unwrap();
            } else {
                std::fs::remove_file(&path).unwrap();
            }
        }
        let delay = Duration::from_millis(rng.u64(5..1500));
        let lines = run_child(
            dir.path(),
            seed.wrapping_add(kill),
            "sync",
            Kill::AfterStart(delay),
        );
        let opened = lines.iter().any(|l| l == "ready");
        let more = parse(&lines);
        report.tried.extend(more.tried);
        report.acked.extend(more.acked);
        let when = if opened {
            "after it opened"
        } else {
            "while it re-indexed"
        };
        eprintln!("kill {kill} after {delay:?}, {when}");
    }
    let stored = check_round(dir.path(), &report, false).await;
    assert!(
        stored >= events,
        "{stored} stored of {events} acknowledged (seed {seed})"
    );
}
