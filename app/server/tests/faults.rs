//! Faults of the distributed system, each under a load of diary writes
//! through the gateway, each checked against the stores: nothing
//! acknowledged is lost, no effect is doubled.
//!
//! - one of two mood workers SIGKILLed mid-stream: every entry ends with
//!   exactly one `MoodAnalyzed` in the Cassandra event store;
//! - the relay SIGKILLed mid-stream and started again: the same;
//! - the Kafka broker stopped for 10 s and started again: every write is
//!   answered 201 or 503, every 201 is stored with exactly one mood;
//! - the Cassandra node stopped for 10 s and started again: the same (the
//!   writes of the outage get 503, none is acknowledged and then lost);
//! - the surviving mood worker's `/metrics` shows the group's lag per
//!   partition draining to 0;
//! - after each, a matching process started from scratch (its own read
//!   models and consumer group, so it rebuilds from the first event)
//!   answers `/v1/matches` exactly as the one that lived through the fault.
//!
//! These run where the whole end-to-end suite runs distributed
//! (`METACHAT_E2E_BACKEND=distributed`, as `scripts/test` does); on the
//! other backends each test says so and returns (the fault is a fault of
//! the distributed system). The broker and node faults stop and start the
//! services of `scripts/kafka` and `scripts/cassandra`, so they run one at
//! a time (`SERVICES`).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::distributed::SCALED_OUT;
use common::{eventually, repo_root, Api, Backend, Server, ServerConfig, User};
use metachat_adapters::cassandra::{CassandraConfig, CassandraEventStore};
use metachat_core::store::{Direction, EventReader};
use metachat_domain::EntryId;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// How long the system may take to settle after a fault.
const SETTLE: Duration = Duration::from_secs(240);

/// The broker and node faults stop services every test of this file uses.
static SERVICES: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A distributed system with the relay alone and two mood workers, or
/// `None` (after saying why) on another backend.
async fn system() -> Option<Server> {
    if Backend::current() != Backend::Distributed {
        println!(
            "faults.rs: a distributed-system test; it runs with \
             METACHAT_E2E_BACKEND=distributed (scripts/test's distributed run)"
        );
        return None;
    }
    Server::start(ServerConfig {
        processes: &SCALED_OUT,
        ..ServerConfig::lexicon()
    })
    .await
}

/// What the writers saw: the entries acknowledged (201) per user, and the
/// count of each other status.
#[derive(Debug, Default)]
struct Outcome {
    acked: BTreeMap<String, Vec<String>>,
    refused: BTreeMap<u16, usize>,
    transport_errors: usize,
}

impl Outcome {
    fn acked_total(&self) -> usize {
        self.acked.values().map(Vec::len).sum()
    }
}

/// `clients` writers, one user each, writing entries through the gateway
/// until `total` are acknowledged or `stop` is set; each write's answer is
/// recorded. A 503 is retried as a new entry (a new text), as a client
/// would.
struct Load {
    stop: Arc<AtomicBool>,
    acked: Arc<std::sync::atomic::AtomicUsize>,
    tasks: Vec<tokio::task::JoinHandle<Written>>,
}

/// What one writer saw.
struct Written {
    user: String,
    acked: Vec<String>,
    refused: BTreeMap<u16, usize>,
    transport_errors: usize,
}

impl Load {
    fn start(api: &Api, users: &[User], total: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let tasks = users
            .iter()
            .map(|user| {
                let (api, user) = (api.clone(), user.clone());
                let (stop, acked) = (stop.clone(), acked.clone());
                tokio::spawn(async move {
                    let mut mine = Vec::new();
                    let mut refused = BTreeMap::new();
                    let mut transport = 0;
                    let mut n = 0u32;
                    while !stop.load(Ordering::Relaxed) {
                        if acked.fetch_add(1, Ordering::SeqCst) >= total {
                            acked.fetch_sub(1, Ordering::SeqCst);
                            break;
                        }
                        n += 1;
                        let text = format!(
                            "{} day {n}: a walk, some work, {} thoughts",
                            user.display_name,
                            if n.is_multiple_of(2) { "happy" } else { "sad" }
                        );
                        let body = serde_json::to_vec(&json!({ "text": text })).expect("json");
                        let r = api
                            .try_raw(
                                Method::POST,
                                "/v1/entries",
                                &[
                                    ("content-type", "application/json".to_owned()),
                                    ("authorization", format!("Bearer {}", user.token)),
                                ],
                                Some(body),
                            )
                            .await;
                        match r {
                            Ok(r) if r.status == StatusCode::CREATED => {
                                let id = r.json["entry_id"].as_str().expect("entry_id");
                                mine.push(id.to_owned());
                                continue;
                            }
                            Ok(r) => {
                                *refused.entry(r.status.as_u16()).or_insert(0) += 1;
                            }
                            Err(_) => transport += 1,
                        }
                        // Not acknowledged: give the slot back, pause a little.
                        acked.fetch_sub(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    Written {
                        user: user.user_id.clone(),
                        acked: mine,
                        refused,
                        transport_errors: transport,
                    }
                })
            })
            .collect();
        Load { stop, acked, tasks }
    }

    /// Waits until at least `n` writes were acknowledged (or reserved).
    async fn wait_acked(&self, n: usize) {
        eventually("writes acknowledged", SETTLE, || async {
            (self.acked.load(Ordering::SeqCst) >= n).then_some(())
        })
        .await;
    }

    async fn finish(self) -> Outcome {
        let mut out = Outcome::default();
        for t in self.tasks {
            let w = t.await.expect("a writer task");
            out.acked.insert(w.user, w.acked);
            for (status, n) in w.refused {
                *out.refused.entry(status).or_insert(0) += n;
            }
            out.transport_errors += w.transport_errors;
        }
        out
    }

    /// Runs until `duration` has passed, then stops the writers.
    async fn stop_after(self, duration: Duration) -> Outcome {
        tokio::time::sleep(duration).await;
        self.stop.store(true, Ordering::Relaxed);
        self.finish().await
    }
}

async fn users(api: &Api, n: usize) -> Vec<User> {
    let mut out = Vec::new();
    for i in 0..n {
        out.push(api.user(&format!("writer {i}")).await);
    }
    out
}

/// The system's event store, read directly.
async fn store(server: &Server) -> CassandraEventStore {
    let config = CassandraConfig::from_env()
        .expect("CASSANDRA_NODES")
        .namespace(server.cassandra_namespace())
        .build()
        .expect("a Cassandra config");
    CassandraEventStore::connect(&config)
        .await
        .expect("connect to the system's event store")
}

/// Waits until every acknowledged entry has a mood, then checks in the
/// event store that each has exactly one `MoodAnalyzed` (one revision
/// each), and that each user's list holds exactly their acknowledged
/// entries.
async fn check_one_mood_each(server: &Server, users: &[User], outcome: &Outcome) {
    let api = server.api();
    for user in users {
        let mine: BTreeSet<&String> = outcome.acked[&user.user_id].iter().collect();
        let listed = eventually(
            "every acknowledged entry listed with a mood",
            SETTLE,
            || async {
                let r = api.get("/v1/entries?limit=100", &user.token).await;
                if r.status != StatusCode::OK {
                    return None;
                }
                let mut all: Vec<Value> = r.json["entries"].as_array()?.clone();
                let mut cursor = r.json["next_cursor"].as_str().map(str::to_owned);
                while let Some(c) = cursor {
                    let r = api
                        .get(
                            &format!("/v1/entries?limit=100&cursor={}", common::urlencode(&c)),
                            &user.token,
                        )
                        .await;
                    if r.status != StatusCode::OK {
                        return None;
                    }
                    all.extend(r.json["entries"].as_array()?.iter().cloned());
                    cursor = r.json["next_cursor"].as_str().map(str::to_owned);
                }
                (all.len() >= mine.len() && all.iter().all(|e| !e["mood"].is_null())).then_some(all)
            },
        )
        .await;
        let listed: BTreeSet<String> = listed
            .iter()
            .map(|e| e["entry_id"].as_str().expect("entry_id").to_owned())
            .collect();
        let mine: BTreeSet<String> = mine.into_iter().cloned().collect();
        // Every acknowledged entry is there; an entry not acknowledged (a
        // 503 whose write had in fact been applied) may be there too.
        let missing: Vec<_> = mine.difference(&listed).collect();
        assert!(
            missing.is_empty(),
            "acknowledged entries lost: {missing:?}\n--- log ---\n{}",
            server.log_tail(80)
        );
    }
    let store = store(server).await;
    let mut doubled = Vec::new();
    for id in outcome.acked.values().flatten() {
        let entry: EntryId = id.parse().expect("a UUID");
        let stream = metachat_domain::mood::mood_stream(entry).expect("a mood stream");
        let moods = store
            .read_stream(&stream, 0, Direction::Forward, 16)
            .await
            .expect("read a mood stream");
        if moods.len() != 1 {
            doubled.push((id.clone(), moods.len()));
        }
    }
    assert!(
        doubled.is_empty(),
        "entries without exactly one MoodAnalyzed (entry, count): {doubled:?}"
    );
}

/// Starts a matching process from scratch (instance 9: its own read
/// models and consumer group), waits until it has caught up, and checks
/// that it answers `/v1/matches` for every user exactly as the matching
/// process that lived through the fault.
async fn check_matching_equals_rebuild(server: &mut Server, users: &[User]) {
    server.add_process("matching-9", "matching").await;
    let old = Api::new(&server.cluster().process_url("matching"));
    let fresh = Api::new(&server.cluster().process_url("matching-9"));
    for api in [&old, &fresh] {
        api.caught_up(0).await;
    }
    for user in users {
        let answer = |api: Api| {
            let token = user.token.clone();
            async move {
                let r = api.get("/v1/matches?k=50", &token).await;
                r.expect(200)["matches"].clone()
            }
        };
        // Both at the head of every topic they follow: equal now.
        let a = answer(old.clone()).await;
        let b = answer(fresh.clone()).await;
        assert_eq!(
            a, b,
            "matches of {} differ between the live and the rebuilt read model",
            user.user_id
        );
    }
}

/// Runs `scripts/<service> <action>`; panics on failure.
fn service(service: &str, action: &str) {
    let out = Command::new(repo_root().join("scripts").join(service))
        .arg(action)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run scripts/{service} {action}: {e}"));
    assert!(
        out.status.success(),
        "scripts/{service} {action}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_one_of_two_mood_workers_mid_stream() {
    let _guard = SERVICES.lock().await;
    let Some(mut server) = system().await else {
        return;
    };
    let api = server.api();
    let users = users(&api, 10).await;
    let load = Load::start(&api, &users, 500);
    load.wait_acked(150).await;
    server.kill_process("mood-1");
    let outcome = load.finish().await;
    assert_eq!(outcome.acked_total(), 500, "{outcome:?}");
    assert!(outcome.refused.is_empty(), "{outcome:?}");
    check_one_mood_each(&server, &users, &outcome).await;
    check_consumer_lag_drains(&mut server).await;
    check_matching_equals_rebuild(&mut server, &users).await;
}

/// The surviving worker's `/metrics` reports the mood group's lag on every
/// partition of the entry topic, and it drains to 0 (every entry
/// analyzed and its offset committed).
async fn check_consumer_lag_drains(server: &mut Server) {
    let metrics = Api::new(&server.cluster().metrics_url_of("mood-2"));
    let group = format!("group=\"{}mood\"", server.topic_prefix());
    eventually("the mood group's lag drains to 0", SETTLE, || async {
        let r = metrics.raw(Method::GET, "/metrics", &[], None).await;
        let lines: Vec<&str> = r
            .text
            .lines()
            .filter(|l| l.starts_with("metachat_kafka_consumer_lag_records{") && l.contains(&group))
            .collect();
        (!lines.is_empty() && lines.iter().all(|l| l.ends_with(" 0"))).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_the_relay_mid_stream_and_restart_it() {
    let _guard = SERVICES.lock().await;
    let Some(mut server) = system().await else {
        return;
    };
    let api = server.api();
    let users = users(&api, 5).await;
    let load = Load::start(&api, &users, 300);
    load.wait_acked(100).await;
    server.kill_process("relay");
    load.wait_acked(200).await;
    server.restart_process("relay").await;
    let outcome = load.finish().await;
    assert_eq!(outcome.acked_total(), 300, "{outcome:?}");
    assert!(outcome.refused.is_empty(), "{outcome:?}");
    check_one_mood_each(&server, &users, &outcome).await;
    check_matching_equals_rebuild(&mut server, &users).await;
}

/// Stops `svc` for 10 s while writers run, starts it again, and checks
/// that every answer was 201 or 503 and every 201 survived once.
async fn outage(svc: &str) {
    let _guard = SERVICES.lock().await;
    let Some(mut server) = system().await else {
        return;
    };
    let api = server.api();
    let users = users(&api, 4).await;
    let load = Load::start(&api, &users, usize::MAX);
    load.wait_acked(40).await;
    service(svc, "stop");
    tokio::time::sleep(Duration::from_secs(10)).await;
    service(svc, "start");
    let outcome = load.stop_after(Duration::from_secs(5)).await;
    println!(
        "{svc} outage: {} writes acknowledged, refused {:?}, {} transport errors",
        outcome.acked_total(),
        outcome.refused,
        outcome.transport_errors
    );
    let unexpected: Vec<_> = outcome
        .refused
        .keys()
        .filter(|&&status| status != 503)
        .collect();
    assert!(
        unexpected.is_empty() && outcome.transport_errors == 0,
        "during the {svc} outage writes got other answers than 201 and 503: {outcome:?}\n--- log ---\n{}",
        server.log_tail(60)
    );
    check_one_mood_each(&server, &users, &outcome).await;
    check_matching_equals_rebuild(&mut server, &users).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_down_for_ten_seconds_under_load() {
    outage("kafka").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cassandra_down_for_ten_seconds_under_load() {
    outage("cassandra").await;
}
