//! End to end, against the real `metachat-server` process over HTTP: the
//! limits that keep it standing under abuse. Password hashing runs in a
//! bounded number of slots (the excess gets 503 `busy`); failed logins
//! back off and lock an account (the right password too) and a client
//! out (429 `rate_limited`); registrations per client have a quota; and
//! expired sessions are swept from the store.
//!
//! Every limit is set small by flags here; the harness's defaults are
//! generous so that the other suites are not limited.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{eventually, Api, Server, ServerConfig};
use reqwest::{Method, StatusCode};
use serde_json::json;
use tokio::sync::Barrier;
use uuid::Uuid;

/// A lexicon server with `flags`.
async fn server_with(flags: &[&str]) -> Option<Server> {
    Server::start(ServerConfig {
        args: flags.iter().map(|f| (*f).to_owned()).collect(),
        ..ServerConfig::lexicon()
    })
    .await
}

/// `POST /v1/sessions`, whatever it answers.
async fn try_login(api: &Api, email: &str, password: &str) -> common::Resp {
    api.send(
        Method::POST,
        "/v1/sessions",
        None,
        Some(&json!({"email": email, "password": password})),
    )
    .await
}

/// `POST /v1/users` with a fresh address, whatever it answers.
async fn try_register(api: &Api) -> common::Resp {
    let email = format!("u-{}@example.com", Uuid::new_v4().simple());
    api.send(
        Method::POST,
        "/v1/users",
        None,
        Some(&json!({"email": email, "password": "long enough", "display_name": "U"})),
    )
    .await
}

/// Asserts a 429 `rate_limited` whose `Retry-After` header (whole seconds,
/// equal to the body's `retry_after_secs`) lies in `range`; returns it.
#[track_caller]
fn assert_rate_limited(r: &common::Resp, range: std::ops::RangeInclusive<u64>) -> u64 {
    let err = r.expect_error(429, "rate_limited");
    let header: u64 = r
        .headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{}: no numeric Retry-After: {:?}", r.what, r.headers));
    assert_eq!(err["retry_after_secs"], header, "{}", r.text);
    assert!(
        range.contains(&header),
        "Retry-After {header} not in {range:?}"
    );
    header
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hashing_runs_in_bounded_slots_and_the_excess_gets_503() {
    // One slot, no waiting for it: concurrent registrations beyond the
    // one being hashed are refused rather than queued without bound.
    let Some(server) = server_with(&["--hash-concurrency", "1", "--hash-wait-ms", "0"]).await
    else {
        return;
    };
    const CLIENTS: usize = 24;
    let barrier = Arc::new(Barrier::new(CLIENTS));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..CLIENTS {
        let (api, barrier) = (Api::new(&server.base), barrier.clone());
        tasks.spawn(async move {
            barrier.wait().await;
            try_register(&api).await
        });
    }
    let (mut created, mut busy) = (0, 0);
    while let Some(done) = tasks.join_next().await {
        let r = done.expect("client task");
        match r.status.as_u16() {
            201 => created += 1,
            503 => {
                let err = r.expect_error(503, "busy");
                let retry = r
                    .headers
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok())
                    .expect("a numeric Retry-After");
                assert!(retry >= 1);
                assert_eq!(err["retry_after_secs"], retry);
                busy += 1;
            }
            other => panic!("{other}: {}", r.text),
        }
    }
    assert!(created >= 1, "one slot serves someone");
    assert!(
        busy >= 1,
        "{CLIENTS} concurrent hashes through one slot refuse some ({created} created)"
    );
    // The slot is free again once the burst is over.
    let api = server.api();
    eventually(
        "a registration after the burst",
        Duration::from_secs(30),
        || async { (try_register(&api).await.status == StatusCode::CREATED).then_some(()) },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn failed_logins_lock_the_account_and_the_right_password_waits_too() {
    // Three failures lock the account for 10 s; no backoff before.
    let Some(server) = server_with(&[
        "--login-account-max-failures",
        "3",
        "--login-backoff-ms",
        "0",
        "--login-lockout-secs",
        "10",
    ])
    .await
    else {
        return;
    };
    let api = server.api();
    let victim = api.user("Victim").await;
    let bystander = api.user("Bystander").await;

    // The finding: 50 wrong passwords in a row, then the right one.
    for i in 0..50 {
        let r = try_login(&api, &victim.email, &format!("wrong-{i}-password")).await;
        if i < 3 {
            r.expect_error(401, "invalid_credentials");
        } else {
            assert_rate_limited(&r, 1..=10);
        }
    }
    let r = try_login(&api, &victim.email, &victim.password).await;
    assert_rate_limited(&r, 1..=10);
    // The same account written differently is the same account.
    let shouting = victim.email.to_uppercase();
    assert_rate_limited(&try_login(&api, &shouting, &victim.password).await, 1..=10);
    // A locked account's tokens still work; other accounts log in.
    api.get("/v1/me", &victim.token).await.expect(200);
    api.login(&bystander.email, &bystander.password).await;

    // Once the lockout is over, the right password works again.
    eventually("the lockout ends", Duration::from_secs(60), || async {
        let r = try_login(&api, &victim.email, &victim.password).await;
        match r.status.as_u16() {
            201 => Some(()),
            429 => None,
            other => panic!("{other}: {}", r.text),
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn failed_logins_back_off_before_the_lockout() {
    // Four failures lock out (for the default 900 s); the first two are
    // free, the third makes the next attempt wait 60 s (not the lockout).
    let Some(server) = server_with(&[
        "--login-account-max-failures",
        "4",
        "--login-backoff-ms",
        "60000",
    ])
    .await
    else {
        return;
    };
    let api = server.api();
    let user = api.user("Typo").await;
    for _ in 0..3 {
        try_login(&api, &user.email, "wrong password")
            .await
            .expect_error(401, "invalid_credentials");
    }
    let r = try_login(&api, &user.email, &user.password).await;
    assert_rate_limited(&r, 1..=60);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_client_guessing_across_accounts_is_locked_out() {
    let Some(server) = server_with(&[
        "--login-client-max-failures",
        "4",
        "--login-backoff-ms",
        "0",
    ])
    .await
    else {
        return;
    };
    let api = server.api();
    let mut users = Vec::new();
    for i in 0..5 {
        users.push(api.user(&format!("Target {i}")).await);
    }
    // One wrong guess at each of four accounts: no account is throttled,
    // but the client made four failures.
    for u in &users[..4] {
        try_login(&api, &u.email, "a guess at it")
            .await
            .expect_error(401, "invalid_credentials");
    }
    let last = &users[4];
    let r = try_login(&api, &last.email, &last.password).await;
    assert_rate_limited(&r, 1..=900);
    // An unknown address is refused the same way (no account to protect).
    let r = try_login(&api, "nobody@example.com", "whatever it is").await;
    assert_rate_limited(&r, 1..=900);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn registrations_per_client_have_a_quota() {
    let Some(server) = server_with(&["--register-per-minute", "1", "--register-burst", "3"]).await
    else {
        return;
    };
    let api = server.api();
    for _ in 0..3 {
        try_register(&api).await.expect(201);
    }
    let r = try_register(&api).await;
    assert_rate_limited(&r, 1..=60);
    assert_eq!(
        r.headers.get("cache-control").and_then(|v| v.to_str().ok()),
        Some("no-store")
    );
    // Logging in is not registering.
    let r = try_login(&api, "nobody@example.com", "whatever it is").await;
    r.expect_error(401, "invalid_credentials");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn expired_sessions_are_swept_from_the_store() {
    let Some(server) = Server::start(ServerConfig {
        token_ttl_secs: Some(1),
        // A session ends with its refresh token: sessions of one second.
        args: vec![
            "--sweep-interval-secs".into(),
            "1".into(),
            "--refresh-ttl-secs".into(),
            "1".into(),
        ],
        ..ServerConfig::lexicon()
    })
    .await
    else {
        return;
    };
    let api = server.api();
    let mut tokens = Vec::new();
    for i in 0..3 {
        tokens.push(api.user(&format!("Brief {i}")).await.token);
    }
    let purged = eventually(
        "the sweep deletes the three expired sessions",
        Duration::from_secs(60),
        || async {
            let text = server.metrics().await;
            let n = text
                .lines()
                .find_map(|l| l.strip_prefix("metachat_sessions_purged_total "))
                .and_then(|v| v.trim().parse::<f64>().ok())
                .unwrap_or(0.0);
            (n >= 3.0).then_some(n)
        },
    )
    .await;
    assert!(purged >= 3.0);
    for t in &tokens {
        api.get("/v1/me", t).await.expect_error(401, "unauthorized");
    }
    assert!(
        server.log().contains("expired sessions deleted"),
        "the sweep says what it did"
    );
}
