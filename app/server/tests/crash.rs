//! End to end, against the real `metachat-server` process over HTTP: the
//! server is stopped in the middle of a write burst, by SIGKILL (a crash) or
//! by SIGTERM (a graceful shutdown, which must exit 0), and restarted on the
//! same data directory. Every write that got a 2xx is there afterwards, by
//! id and with its text; nothing is there twice or that was never sent; the
//! projections and the mood worker resume and reach the head.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{assert_mood, eventually, wait_all_moods, Api, Created, Server, User, CATCH_UP};
use reqwest::Method;
use uuid::Uuid;

/// Clients writing entries as fast as they can until told to stop or the
/// server goes away.
struct Burst {
    acked: Arc<Mutex<Vec<Created>>>,
    attempted: Arc<Mutex<HashSet<String>>>,
    unexpected: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    tasks: tokio::task::JoinSet<()>,
}

impl Burst {
    fn start(base: &str, token: &str, clients: usize) -> Burst {
        let mut burst = Burst {
            acked: Arc::default(),
            attempted: Arc::default(),
            unexpected: Arc::default(),
            stop: Arc::default(),
            tasks: tokio::task::JoinSet::new(),
        };
        for client in 0..clients {
            let api = Api::new(base);
            let token = token.to_owned();
            let (acked, attempted, unexpected, stop) = (
                burst.acked.clone(),
                burst.attempted.clone(),
                burst.unexpected.clone(),
                burst.stop.clone(),
            );
            burst.tasks.spawn(async move {
                for n in 0..20_000 {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let text = format!(
                        "burst client {client} write {n} {}",
                        Uuid::new_v4().simple()
                    );
                    attempted.lock().expect("lock").insert(text.clone());
                    let body =
                        serde_json::to_vec(&serde_json::json!({"text": text})).expect("serialize");
                    let headers = [
                        ("content-type", "application/json".to_owned()),
                        ("authorization", format!("Bearer {token}")),
                    ];
                    match api
                        .try_raw(Method::POST, "/v1/entries", &headers, Some(body))
                        .await
                    {
                        Ok(r) if r.status.as_u16() == 201 => {
                            let entry_id =
                                r.json["entry_id"].as_str().unwrap_or_default().to_owned();
                            acked.lock().expect("lock").push(Created {
                                entry_id,
                                position: r.position(),
                                text,
                            });
                        }
                        // Shutting down: documented, nothing was acknowledged.
                        Ok(r) if r.status.as_u16() == 503 && r.code() == Some("unavailable") => {
                            tokio::time::sleep(Duration::from_millis(5)).await;
                        }
                        Ok(r) => {
                            unexpected
                                .lock()
                                .expect("lock")
                                .push(format!("{} {}", r.status, r.text));
                            return;
                        }
                        // The server is gone.
                        Err(_) => return,
                    }
                }
            });
        }
        burst
    }

    /// Waits until at least `n` writes were acknowledged.
    async fn wait_acked(&self, n: usize) {
        eventually(
            "the burst's first acknowledged writes",
            Duration::from_secs(60),
            || async { (self.acked.lock().expect("lock").len() >= n).then_some(()) },
        )
        .await;
    }

    /// Stops the clients and returns (acknowledged writes, texts sent).
    async fn finish(mut self) -> (Vec<Created>, HashSet<String>) {
        self.stop.store(true, Ordering::Relaxed);
        while let Some(done) = self.tasks.join_next().await {
            done.expect("burst client");
        }
        let unexpected = self.unexpected.lock().expect("lock").clone();
        assert!(
            unexpected.is_empty(),
            "answers other than 201 or 503 unavailable: {unexpected:?}"
        );
        let acked = self.acked.lock().expect("lock").clone();
        let attempted = self.attempted.lock().expect("lock").clone();
        (acked, attempted)
    }
}

/// After a restart: every acknowledged write is there with its text, every
/// listed entry was sent once, moods and projections reach the head.
async fn check_after_restart(
    server: &Server,
    user: &User,
    acked: &[Created],
    attempted: &HashSet<String>,
) {
    let api = server.api();
    let token = api.login(&user.email, &user.password).await;
    let acked_head = acked.iter().map(|c| c.position).max().unwrap_or(0);
    // The restarted projections catch up from the log first (as separate
    // processes, over Kafka and Cassandra, that took more than the read's
    // 5-second wait once on a loaded 2-core machine: 503 `not_caught_up`
    // at 242 of 267). Durability is checked here, not catch-up speed.
    api.caught_up(acked_head).await;
    let listed = api.list_all(&token, 100, acked_head).await;
    let by_id: HashMap<&str, &str> = listed
        .iter()
        .map(|e| {
            (
                e["entry_id"].as_str().unwrap_or(""),
                e["text"].as_str().unwrap_or(""),
            )
        })
        .collect();
    for c in acked {
        assert_eq!(
            by_id.get(c.entry_id.as_str()).copied(),
            Some(c.text.as_str()),
            "acknowledged entry {} (position {}) survives the restart",
            c.entry_id,
            c.position
        );
    }
    assert!(listed.len() >= acked.len() && listed.len() <= attempted.len());
    println!(
        "after the restart: {} acknowledged, {} sent, {} listed",
        acked.len(),
        attempted.len(),
        listed.len()
    );

    // Each acknowledged entry also reads back by id.
    for c in acked.iter().step_by(7) {
        let r = api
            .get(&format!("/v1/entries/{}", c.entry_id), &token)
            .await;
        assert_eq!(r.expect(200)["text"], c.text.as_str());
    }

    // The mood worker resumes: every entry gets its mood, the timeline counts
    // them all, and every projection reaches the head. On a store whose
    // appends are decided, then written (Cassandra), an append the killed
    // process had decided but not finished is completed by the next append
    // (the worker's): an unacknowledged entry may surface now, once.
    let with_moods = eventually("every entry has a mood", CATCH_UP, || async {
        let entries = api.list_all(&token, 100, 0).await;
        (entries.len() >= listed.len()
            && entries.len() <= attempted.len()
            && entries.iter().all(|e| !e["mood"].is_null()))
        .then_some(entries)
    })
    .await;
    // Every entry was sent by the burst, and stored once.
    let mut texts = HashSet::new();
    for e in &with_moods {
        assert_mood(&e["mood"]);
        let text = e["text"].as_str().unwrap_or("");
        assert!(attempted.contains(text), "an entry nobody sent: {e}");
        assert!(texts.insert(text), "a write stored twice: {text}");
    }
    let n = with_moods.len() as u64;
    eventually("the timeline counts every entry", CATCH_UP, || async {
        let r = api.get("/v1/mood/timeline", &token).await;
        let total: u64 = r.expect(200)["days"]
            .as_array()
            .expect("days")
            .iter()
            .map(|d| d["entries"].as_u64().unwrap_or(0))
            .sum();
        (total == n).then_some(())
    })
    .await;
    let ready_at = api.caught_up(acked_head).await;

    // The log goes on after the restart, past every position handed out before.
    let after = api.create_entry(&token, "written after the restart").await;
    assert!(
        after.position > acked_head && after.position > ready_at,
        "positions are never reused"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_mid_burst_loses_no_acknowledged_write() {
    let Some(mut server) = Server::lexicon().await else {
        return;
    };
    let user = server.api().user("Grace").await;
    let burst = Burst::start(&server.base, &user.token, 8);
    burst.wait_acked(150).await;
    server.sigkill();
    let (acked, attempted) = burst.finish().await;
    assert!(acked.len() >= 150);

    server.restart().await;
    check_after_restart(&server, &user, &acked, &attempted).await;

    // The projections after the crash equal a rebuild from position 0.
    const REBUILD: &str = "--rebuild-projections";
    if !common::server_help().contains(REBUILD) {
        println!("NOTE: the server has no {REBUILD} flag: the comparison with a rebuild from 0 is not run");
        return;
    }
    let resumed = read_state(&server, &user).await;
    server.restart_with(&[REBUILD]).await;
    let rebuilt = read_state(&server, &user).await;
    assert_eq!(
        resumed, rebuilt,
        "projections resumed after a crash equal a rebuild from 0"
    );
}

/// Everything a user can read, once every projection reached the head.
async fn read_state(server: &Server, user: &User) -> serde_json::Value {
    let api = server.api();
    let head = api.caught_up(0).await;
    let token = api.login(&user.email, &user.password).await;
    let entries = wait_all_moods(&api, &token, api.list_all(&token, 100, head).await.len()).await;
    let timeline = api
        .get(&format!("/v1/mood/timeline?min_position={head}"), &token)
        .await;
    let me = api.get("/v1/me", &token).await;
    let mut me = me.expect(200).clone();
    me["position"] = serde_json::Value::Null;
    let mut timeline = timeline.expect(200).clone();
    timeline["position"] = serde_json::Value::Null;
    serde_json::json!({"entries": entries, "timeline": timeline, "me": me})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_mid_burst_exits_zero_and_loses_nothing() {
    let Some(mut server) = Server::lexicon().await else {
        return;
    };
    let user = server.api().user("Heidi").await;
    let burst = Burst::start(&server.base, &user.token, 8);
    burst.wait_acked(150).await;
    let status = server.sigterm(Duration::from_secs(30)).await;
    let (acked, attempted) = burst.finish().await;
    assert!(
        status.success(),
        "graceful shutdown exits 0, got {status}\n{}",
        server.log_tail(30)
    );
    assert!(acked.len() >= 150);

    server.restart().await;
    check_after_restart(&server, &user, &acked, &attempted).await;
}
