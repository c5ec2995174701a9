//! A request's id follows what it causes: the answer carries the
//! `X-Request-Id` the client sent, the request's log lines carry it, and
//! the mood worker's log line for the entry's mood carries it as the
//! correlation id: in the embedded server, and across the Kafka hops of the
//! distributed system (diary process → relay → Kafka → mood worker), whose
//! processes all write to the one log of the test.

mod common;

use common::{eventually, Server, ServerConfig, CATCH_UP};
use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

/// The JSON log lines whose `fields.message` is `message`.
fn lines_with(log: &str, message: &str) -> Vec<Value> {
    log.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["fields"]["message"] == message)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_id_follows_the_entry_to_its_mood() {
    // The per-event trace lines are opt-in (`correlation.rs`). This test
    // binary holds this one test, so setting the variable races nothing.
    std::env::set_var("RUST_LOG", "info,metachat::trace=debug");
    let Some(server) = Server::start(ServerConfig {
        args: vec!["--log-format".into(), "json".into()],
        ..ServerConfig::lexicon()
    })
    .await
    else {
        return;
    };
    let api = server.api();
    let user = api.user("traced").await;
    let request_id = Uuid::new_v4();
    let body = serde_json::to_vec(&json!({"text": "a quiet, happy day"})).expect("json");
    let r = api
        .raw(
            Method::POST,
            "/v1/entries",
            &[
                ("content-type", "application/json".to_owned()),
                ("authorization", format!("Bearer {}", user.token)),
                ("x-request-id", request_id.to_string()),
            ],
            Some(body),
        )
        .await;
    let entry_id = r.expect(201)["entry_id"]
        .as_str()
        .expect("entry_id")
        .to_owned();
    assert_eq!(
        r.headers.get("x-request-id").and_then(|v| v.to_str().ok()),
        Some(request_id.to_string().as_str()),
        "the answer carries the request's id back"
    );
    let id = request_id.to_string();
    let mood_line = eventually("the mood's trace line", CATCH_UP, || async {
        lines_with(&server.log(), "mood recorded")
            .into_iter()
            .find(|l| l["fields"]["entry"] == entry_id.as_str())
    })
    .await;
    let correlation = mood_line["fields"]["correlation_id"]
        .as_str()
        .expect("a correlation_id field");
    assert!(
        correlation.contains(&id),
        "the mood carries the request's correlation id: {mood_line}"
    );
    let causation = mood_line["fields"]["causation_id"]
        .as_str()
        .expect("a causation_id field");
    assert!(
        causation.starts_with("Some(") && !causation.contains(&id),
        "the mood names the entry's event as its cause: {mood_line}"
    );
    let answered = lines_with(&server.log(), "answered");
    assert!(
        answered.iter().any(|l| {
            l["fields"]["path"] == "/v1/entries"
                && l["span"]["request_id"] == id.as_str()
                && l["span"]["correlation_id"] == id.as_str()
        }),
        "the request's own log line carries its id"
    );
    // A request without an id gets one, and the answer names it.
    let r = api.get("/v1/entries?limit=1", &user.token).await;
    let generated = r
        .headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .expect("a generated X-Request-Id");
    assert!(!generated.is_empty() && generated != id);
}
