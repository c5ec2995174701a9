//! End to end: the deployment files in `deploy/` name only what the server
//! really exports. A server (every process of it, in a distributed run) is
//! exercised (sign-up, entries, their moods, matches, a refused login) and
//! scraped; every `metachat_*` metric named by the Prometheus alert rules
//! (`deploy/prometheus/alerts.yml`) and the Grafana dashboard
//! (`deploy/grafana/dashboards/metachat.json`) must be in a scrape. The
//! Kafka ones (consumer lag, the broker's up gauge) exist only where there
//! are consumer groups, so only the distributed run must show them.
//!
//! And the server's JSON log lines carry the request's correlation id where
//! the Fluent Bit config (`deploy/fluent-bit/fluent-bit.yaml`) lifts it
//! from: `span.correlation_id`.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{eventually, repo_root, Backend, Server, ServerConfig};
use reqwest::Method;

/// The `metachat_*` metric names in `text`, histogram series folded into
/// their metric (`_bucket`, `_sum`, `_count`).
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(at) = text[i..].find("metachat_") {
        let start = i + at;
        let boundary =
            start == 0 || !(bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
        let end = text[start..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .map_or(text.len(), |n| start + n);
        if boundary {
            let name = &text[start..end];
            let base = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .unwrap_or(name);
            names.insert(base.to_owned());
        }
        i = end;
    }
    names
}

/// The names the scrape of one metrics listener exports (its `# TYPE` lines).
fn exported(scrape: &str) -> BTreeSet<String> {
    scrape
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

fn deploy_file(path: &str) -> String {
    let file = repo_root().join(path);
    std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_the_alerts_and_the_dashboard_name_is_exported() {
    let Some(mut server) = Server::start(ServerConfig::lexicon()).await else {
        return;
    };
    let api = server.api();
    let ada = api.user("Ada").await;
    let bob = api.user("Bob").await;
    for (user, text) in [
        (&ada, "A wonderful sunny day with friends, I am so happy."),
        (
            &bob,
            "Such a happy day, the sun was out and we laughed a lot.",
        ),
    ] {
        api.create_entry(&user.token, text).await;
    }
    // The moods are analysed and the matches served (the matches route in
    // the request metrics, the mood worker's counters).
    eventually("Ada's matches include Bob", Duration::from_secs(60), || {
        let api = api.clone();
        let token = ada.token.clone();
        let bob_id = bob.user_id.clone();
        async move {
            let r = api.get("/v1/matches?k=5", &token).await;
            (r.status == 200 && r.text.contains(&bob_id)).then_some(())
        }
    })
    .await;
    api.get("/v1/mood/timeline", &ada.token).await.expect(200);
    // A refused login (the limits' counter) and an error answer.
    for _ in 0..4 {
        let _ = api
            .send(
                Method::POST,
                "/v1/sessions",
                None,
                Some(&serde_json::json!({"email": ada.email, "password": "wrong password"})),
            )
            .await;
    }

    let metrics_urls: Vec<String> = match server.backend {
        Backend::Distributed => {
            let cluster = server.cluster();
            ["user", "diary", "matching", "mood"]
                .iter()
                .map(|p| cluster.metrics_url_of(p))
                .collect()
        }
        _ => vec![server.metrics_base.clone()],
    };
    let mut named = metric_names(&deploy_file("deploy/prometheus/alerts.yml"));
    named.extend(metric_names(&deploy_file(
        "deploy/grafana/dashboards/metachat.json",
    )));
    // The HPA's external metric is prometheus-adapter's name for the
    // consumer lag (deploy/helm/metachat/README.md), not the server's.
    named.remove("metachat_mood_consumer_lag");
    assert!(named.len() >= 8, "too few names found: {named:?}");
    let kafka_only = ["metachat_kafka_consumer_lag_records"];
    let backend = server.backend;
    // Some series appear with the first periodic reading (the log head is
    // polled once a second on Cassandra): scrape until all are there.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let (scraped, missing) = loop {
        let mut scraped = BTreeSet::new();
        for url in &metrics_urls {
            let text = reqwest::get(format!("{url}/metrics"))
                .await
                .and_then(reqwest::Response::error_for_status)
                .unwrap_or_else(|e| panic!("scrape {url}: {e}"))
                .text()
                .await
                .unwrap();
            scraped.extend(exported(&text));
        }
        let missing: Vec<String> = named
            .iter()
            .filter(|n| !scraped.contains(*n))
            .filter(|n| backend == Backend::Distributed || !kafka_only.contains(&n.as_str()))
            .cloned()
            .collect();
        if missing.is_empty() || std::time::Instant::now() > deadline {
            break (scraped, missing);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert!(
        missing.is_empty(),
        "named in deploy/ but not exported by the server ({backend:?}) within 30 s: {missing:?}\nexported: {scraped:?}"
    );
    if server.backend == Backend::Distributed {
        let mood = reqwest::get(format!("{}/metrics", metrics_urls[3]))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            mood.contains("metachat_dependency_up{dependency=\"kafka\"} 1"),
            "the mood process reaches Kafka: {mood}"
        );
        // The alerts and the autoscaler select the mood workers' group by
        // `group=~".*mood.*"`.
        assert!(
            mood.lines()
                .any(|l| l.starts_with("metachat_kafka_consumer_lag_records{")
                    && l.contains("group=\"")
                    && l.split("group=\"")
                        .nth(1)
                        .is_some_and(|g| g.split('"').next().is_some_and(|g| g.contains("mood")))),
            "the mood process exports its group's lag with `mood` in the group: {mood}"
        );
    }
}

#[tokio::test]
async fn json_log_lines_carry_the_correlation_id_where_fluent_bit_lifts_it() {
    // One line per answered request, in its span (README, "metachat::trace").
    let Some(server) = Server::start(ServerConfig {
        args: vec!["--log-format".into(), "json".into()],
        env: vec![("RUST_LOG".into(), "info,metachat::trace=debug".into())],
        ..ServerConfig::lexicon()
    })
    .await
    else {
        return;
    };
    let fluent_bit = deploy_file("deploy/fluent-bit/fluent-bit.yaml");
    assert!(
        fluent_bit.contains("nested_under: span")
            && fluent_bit.contains("span_correlation_id correlation_id"),
        "the Fluent Bit config lifts span.correlation_id"
    );
    let id = "3f2c1a5e-8d4b-4c1f-9e2a-7b6d5c4e3f21";
    let r = server
        .api()
        .raw(
            Method::POST,
            "/v1/users",
            &[
                ("x-request-id", id.to_owned()),
                ("content-type", "application/json".to_owned()),
            ],
            Some(b"{\"email\":\"x\"}".to_vec()),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    let line = eventually("a log line of the request", Duration::from_secs(10), || {
        let log = server.log();
        async move {
            log.lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .find(|v| v["span"]["correlation_id"] == id)
        }
    })
    .await;
    assert_eq!(line["span"]["request_id"], id, "{line}");
    assert!(line["timestamp"].is_string(), "{line}");
    assert!(line["level"].is_string(), "{line}");
}

#[test]
fn metric_names_are_found_in_expressions() {
    let names = metric_names(
        r#"sum(rate(metachat_http_requests_total{x="y"}[5m])) / histogram_quantile(0.9, metachat_http_request_duration_seconds_bucket) not_metachat_x"#,
    );
    assert_eq!(
        names.into_iter().collect::<Vec<_>>(),
        [
            "metachat_http_request_duration_seconds",
            "metachat_http_requests_total"
        ]
    );
}
