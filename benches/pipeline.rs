//! The write-to-mood pipeline of a running MetaChat system, measured
//! through its HTTP API (the gateway): one burst of diary entries written
//! by concurrent clients, then polled until every entry shows its mood.
//!
//! Not a criterion bench: it drives a system that `benches/pipeline.sh`
//! starts (distributed with one or two mood workers, or the embedded
//! server behind the same gateway) and prints one JSON line of figures:
//!
//! - `write_p50_ms`, `write_p99_ms`: `POST /v1/entries` latency as the
//!   clients saw it, over the burst;
//! - `entries_per_s`: entries from the first POST to the last mood visible;
//! - `delay_p50_ms`, `delay_p99_ms`: per entry, from its POST's answer to
//!   the first poll that showed its mood (polls every `PIPELINE_POLL_MS`,
//!   so each delay is late by up to that much; a burst queues, so the
//!   delays include the wait behind the entries written before).
//!
//! Environment: `PIPELINE_URL` (the API, required), `PIPELINE_ENTRIES`
//! (default 1000), `PIPELINE_CLIENTS` (concurrent writers, one user each;
//! default 16, raised so that no user has more than 100 entries),
//! `PIPELINE_POLL_MS` (default 250), `PIPELINE_TIMEOUT_S` (default 900).
//!
//! Run: `benches/pipeline.sh` (it builds this with
//! `cargo bench -p metachat-benches --bench pipeline --no-run`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

fn env_or(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v}: expected a whole number")),
        Err(_) => default,
    }
}

/// The nearest-rank percentile `p` (1..=100) of `sorted`.
fn percentile(sorted: &[f64], p: usize) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (p * sorted.len()).div_ceil(100);
    sorted[rank.clamp(1, sorted.len()) - 1]
}

struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    async fn post(&self, path: &str, token: Option<&str>, body: &Value) -> (u16, Value) {
        let mut req = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(serde_json::to_vec(body).expect("json"));
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let r = req.send().await.expect("POST: transport error");
        let status = r.status().as_u16();
        let bytes = r.bytes().await.expect("POST: body");
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    async fn get(&self, path: &str, token: &str) -> (u16, Value) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .header("authorization", format!("Bearer {token}"))
            .send()
            .await
            .expect("GET: transport error");
        let status = r.status().as_u16();
        let bytes = r.bytes().await.expect("GET: body");
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// Registers and logs in a user; their bearer token.
    async fn user(&self, i: usize, run: &str) -> String {
        let email = format!("bench-{run}-{i}@example.com");
        let password = "correct horse battery staple";
        let (status, body) = self
            .post(
                "/v1/users",
                None,
                &json!({"email": email, "password": password, "display_name": format!("bench {i}")}),
            )
            .await;
        assert_eq!(status, 201, "register: {body}");
        let (status, body) = self
            .post(
                "/v1/sessions",
                None,
                &json!({"email": email, "password": password}),
            )
            .await;
        assert_eq!(status, 201, "login: {body}");
        body["token"].as_str().expect("token").to_owned()
    }
}

/// `n` as a float for a rate (entry counts are far below 2^52).
fn written_count(n: usize) -> f64 {
    f64::from(u32::try_from(n).unwrap_or(u32::MAX))
}

const TEXTS: [&str; 6] = [
    "I had a wonderful day with my friends at the lake, laughing a lot",
    "Work was exhausting and my manager ignored everything I said",
    "Quiet evening, some reading, a cup of tea, nothing special",
    "I am anxious about tomorrow's exam and could not sleep",
    "We finally moved into the new flat and I feel so relieved and happy",
    "Lost my keys, missed the bus, and it rained all afternoon",
];

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let base = std::env::var("PIPELINE_URL").expect("PIPELINE_URL: the API of a running system");
    let entries = env_or("PIPELINE_ENTRIES", 1000);
    let clients = env_or("PIPELINE_CLIENTS", 16).max(entries.div_ceil(100));
    let poll = Duration::from_millis(env_or("PIPELINE_POLL_MS", 250) as u64);
    let timeout = Duration::from_secs(env_or("PIPELINE_TIMEOUT_S", 900) as u64);
    let client = Arc::new(Client {
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .no_proxy()
            .build()
            .expect("an HTTP client"),
        base,
    });
    let run = uuid::Uuid::new_v4().simple().to_string();
    let mut tokens = Vec::with_capacity(clients);
    for i in 0..clients {
        tokens.push(client.user(i, &run).await);
    }

    // The burst: `clients` writers, `entries` in all.
    let start = Instant::now();
    let mut writers = Vec::new();
    for (i, token) in tokens.iter().enumerate() {
        let n = entries / clients + usize::from(i < entries % clients);
        let (client, token) = (client.clone(), token.clone());
        writers.push(tokio::spawn(async move {
            let mut out = Vec::with_capacity(n);
            for k in 0..n {
                let text = format!("{} ({i}.{k})", TEXTS[(i + k) % TEXTS.len()]);
                let t0 = Instant::now();
                let (status, body) = client
                    .post("/v1/entries", Some(&token), &json!({ "text": text }))
                    .await;
                let acked = Instant::now();
                assert_eq!(status, 201, "POST /v1/entries: {body}");
                let id = body["entry_id"].as_str().expect("entry_id").to_owned();
                out.push((id, acked, (acked - t0).as_secs_f64() * 1000.0));
            }
            out
        }));
    }
    // Poll every user's entries until each shows its mood.
    let mut acked_at: HashMap<String, Instant> = HashMap::new();
    let mut write_ms = Vec::with_capacity(entries);
    let mut per_user: Vec<Vec<String>> = Vec::with_capacity(clients);
    for w in writers {
        let out = w.await.expect("a writer");
        let mut ids = Vec::with_capacity(out.len());
        for (id, at, ms) in out {
            acked_at.insert(id.clone(), at);
            write_ms.push(ms);
            ids.push(id);
        }
        per_user.push(ids);
    }
    let written = start.elapsed();
    let mut seen: HashMap<String, Instant> = HashMap::new();
    let deadline = Instant::now() + timeout;
    while seen.len() < entries {
        assert!(
            Instant::now() < deadline,
            "only {} of {entries} moods visible after {timeout:?}",
            seen.len()
        );
        for (u, token) in tokens.iter().enumerate() {
            if per_user[u].iter().all(|id| seen.contains_key(id)) {
                continue;
            }
            let (status, body) = client.get("/v1/entries?limit=100", token).await;
            if status != 200 {
                continue;
            }
            let now = Instant::now();
            for e in body["entries"].as_array().into_iter().flatten() {
                if e["mood"].is_null() {
                    continue;
                }
                if let Some(id) = e["entry_id"].as_str() {
                    if acked_at.contains_key(id) {
                        seen.entry(id.to_owned()).or_insert(now);
                    }
                }
            }
        }
        tokio::time::sleep(poll).await;
    }
    let last = seen.values().max().copied().expect("entries");
    let pipeline = last - start;
    let mut delays: Vec<f64> = seen
        .iter()
        .map(|(id, at)| (*at - acked_at[id]).as_secs_f64() * 1000.0)
        .collect();
    delays.sort_by(f64::total_cmp);
    write_ms.sort_by(f64::total_cmp);
    println!(
        "{}",
        json!({
            "entries": entries,
            "clients": clients,
            "write_s": written.as_secs_f64(),
            "write_p50_ms": percentile(&write_ms, 50),
            "write_p99_ms": percentile(&write_ms, 99),
            "pipeline_s": pipeline.as_secs_f64(),
            "entries_per_s": written_count(entries) / pipeline.as_secs_f64(),
            "delay_p50_ms": percentile(&delays, 50),
            "delay_p99_ms": percentile(&delays, 99),
            "poll_ms": poll.as_secs_f64() * 1000.0,
        })
    );
}
