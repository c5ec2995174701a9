//! End to end, against the real `metachat-server` process over raw TCP and
//! HTTP: connection hygiene (a slow request head, an idle connection and a
//! slow body are cut off; an announced body over the limit is refused at
//! once; connections past the cap are refused; SIGTERM ends the process by
//! its deadline even with a request left unfinished), the headers every
//! answer carries, and `/metrics` on its own listener with a fixed label
//! set.
//!
//! These are the server process's own transport rules: in a distributed
//! run the raw connections and the `/metrics` labels address one role
//! process (the user process) directly, not the gateway, whose own limits
//! `scripts/gateway selftest` checks.
//!
//! Each deadline is set to 1 s by flags; the assertions are about what
//! happened (closed, answered, exited), with generous outer waits, never
//! about how long it took.

mod common;

use std::time::Duration;

use common::{closed_within, eventually, read_answer, RawRead, Server, ServerConfig};
use reqwest::Method;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// Outer wait for something a 1 s deadline should cause.
const PATIENCE: Duration = Duration::from_secs(30);

async fn server_with(flags: &[&str]) -> Option<Server> {
    Server::start(ServerConfig {
        args: flags.iter().map(|f| (*f).to_owned()).collect(),
        ..ServerConfig::lexicon()
    })
    .await
}

async fn connect(server: &Server) -> TcpStream {
    TcpStream::connect(server.process_addr())
        .await
        .expect("connect to the server")
}

const HEALTHZ: &[u8] = b"GET /healthz HTTP/1.1\r\nhost: test\r\n\r\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_trickled_request_head_is_cut_off() {
    let Some(server) =
        server_with(&["--header-timeout-secs", "1", "--idle-timeout-secs", "3600"]).await
    else {
        return;
    };
    let mut stream = connect(&server).await;
    let (mut read, mut write) = stream.split();
    // A head that never ends, one header line at a time: the connection is
    // never idle, yet its head takes too long.
    let trickle = async {
        if write
            .write_all(b"GET /healthz HTTP/1.1\r\nhost: test\r\n")
            .await
            .is_err()
        {
            return;
        }
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if write.write_all(b"x-slow: still coming\r\n").await.is_err() {
                return;
            }
        }
    };
    let closed = async {
        use tokio::io::AsyncReadExt;
        let mut buf = [0u8; 1024];
        let mut got = Vec::new();
        loop {
            match read.read(&mut buf).await {
                Ok(0) | Err(_) => return got,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    };
    let outcome = tokio::time::timeout(PATIENCE, async {
        tokio::select! {
            got = closed => Some(got),
            () = trickle => None,
        }
    })
    .await
    .expect("the server cuts a trickled head off");
    // Either our read saw the close, or our next write failed on it.
    if let Some(got) = outcome {
        assert!(
            !String::from_utf8_lossy(&got).starts_with("HTTP/1.1 200"),
            "the head was never complete: no answer"
        );
    }
    // The server is fine.
    server
        .api()
        .raw(Method::GET, "/healthz", &[], None)
        .await
        .expect(200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_idle_connection_is_closed() {
    let Some(server) =
        server_with(&["--idle-timeout-secs", "1", "--header-timeout-secs", "3600"]).await
    else {
        return;
    };
    // Kept alive after an answer, then silent.
    let mut stream = connect(&server).await;
    stream.write_all(HEALTHZ).await.expect("send");
    match read_answer(&mut stream, PATIENCE).await {
        RawRead::Answer(a) => assert_eq!(a.status, 200, "{a:?}"),
        other => panic!("no answer: {other:?}"),
    }
    assert!(
        closed_within(&mut stream, PATIENCE).await,
        "an idle kept-alive connection is closed"
    );
    // Connected and never a byte sent.
    let mut silent = connect(&server).await;
    assert!(
        closed_within(&mut silent, PATIENCE).await,
        "a silent connection is closed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_slow_body_gets_408_and_the_connection_closes() {
    let Some(server) = server_with(&[
        "--body-timeout-secs",
        "1",
        "--idle-timeout-secs",
        "3600",
        "--header-timeout-secs",
        "3600",
    ])
    .await
    else {
        return;
    };
    let mut stream = connect(&server).await;
    stream
        .write_all(
            b"POST /v1/users HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\n\
              content-length: 100\r\n\r\n{\"email\":",
        )
        .await
        .expect("send");
    match read_answer(&mut stream, PATIENCE).await {
        RawRead::Answer(a) => {
            assert_eq!(a.status, 408, "{a:?}");
            assert!(a.body.contains("\"request_timeout\""), "{a:?}");
            assert!(a.head.contains("connection: close"), "{a:?}");
        }
        other => panic!("no 408: {other:?}"),
    }
    assert!(closed_within(&mut stream, PATIENCE).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_announced_body_over_the_limit_is_refused_before_it_is_read() {
    let Some(server) = Server::lexicon().await else {
        return;
    };
    let user = server.api().user("Big").await;
    let requests = [
        "POST /v1/users HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\n\
         content-length: 1000000000\r\n\r\n{\"a\":\"b\"}"
            .to_owned(),
        format!(
            "POST /v1/entries HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\n\
             authorization: Bearer {}\r\ncontent-length: 65537\r\n\r\n{{\"text\":",
            user.token
        ),
    ];
    for request in requests {
        let mut stream = connect(&server).await;
        stream.write_all(request.as_bytes()).await.expect("send");
        match read_answer(&mut stream, PATIENCE).await {
            RawRead::Answer(a) => {
                assert_eq!(a.status, 413, "{a:?}");
                assert!(a.body.contains("\"body_too_large\""), "{a:?}");
                assert!(a.head.contains("connection: close"), "{a:?}");
            }
            other => panic!("no 413 for {request:?}: {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn connections_past_the_cap_are_refused() {
    let Some(server) =
        server_with(&["--max-connections", "2", "--idle-timeout-secs", "3600"]).await
    else {
        return;
    };
    // Two connections held open (each answered, so each was accepted; a
    // connection of the harness's start-up probe may take a moment to go).
    let mut held = Vec::new();
    while held.len() < 2 {
        let mut s = connect(&server).await;
        s.write_all(HEALTHZ).await.expect("send");
        match read_answer(&mut s, PATIENCE).await {
            RawRead::Answer(a) if a.status == 200 => held.push(s),
            RawRead::Answer(a) if a.status == 503 => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => panic!("{other:?}"),
        }
    }
    // A third is told 503 and closed.
    let mut third = connect(&server).await;
    match read_answer(&mut third, PATIENCE).await {
        RawRead::Answer(a) => {
            assert_eq!(a.status, 503, "{a:?}");
            assert!(a.body.contains("\"busy\""), "{a:?}");
            assert!(a.head.contains("retry-after: 1"), "{a:?}");
        }
        other => panic!("no refusal: {other:?}"),
    }
    assert!(closed_within(&mut third, PATIENCE).await);
    // One held connection goes: there is room again.
    drop(held.pop());
    eventually("a connection is served again", PATIENCE, || async {
        let mut s = connect(&server).await;
        s.write_all(HEALTHZ).await.ok()?;
        match read_answer(&mut s, PATIENCE).await {
            RawRead::Answer(a) if a.status == 200 => Some(()),
            _ => None,
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_ends_the_process_by_its_deadline_with_a_request_unfinished() {
    // The body deadline is far beyond the outer wait: only the shutdown
    // deadline can end the unfinished request.
    let Some(mut server) = server_with(&[
        "--shutdown-timeout-secs",
        "1",
        "--body-timeout-secs",
        "3600",
        "--header-timeout-secs",
        "3600",
        "--idle-timeout-secs",
        "3600",
    ])
    .await
    else {
        return;
    };
    let mut unfinished = connect(&server).await;
    unfinished
        .write_all(
            b"POST /v1/users HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\n\
              content-length: 100\r\n\r\n{\"email\":",
        )
        .await
        .expect("send");
    // An idle kept-alive connection too.
    let mut idle = connect(&server).await;
    idle.write_all(HEALTHZ).await.expect("send");
    assert!(matches!(
        read_answer(&mut idle, PATIENCE).await,
        RawRead::Answer(_)
    ));
    // Let the unfinished request reach its handler.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let status = server.sigterm(Duration::from_secs(60)).await;
    assert!(status.success(), "exit status {status}");
    let log = server.log();
    assert!(
        log.contains("shutdown deadline passed"),
        "the deadline closed the unfinished request:\n{}",
        server.log_tail(30)
    );
    assert!(log.contains("stopped cleanly"), "{}", server.log_tail(30));
    assert!(closed_within(&mut unfinished, PATIENCE).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_closes_idle_connections_without_waiting_for_the_deadline() {
    // A deadline far beyond the outer wait: an idle kept-alive connection
    // must be closed by the graceful shutdown itself.
    let Some(mut server) = server_with(&[
        "--shutdown-timeout-secs",
        "3600",
        "--idle-timeout-secs",
        "3600",
        "--header-timeout-secs",
        "3600",
    ])
    .await
    else {
        return;
    };
    let mut idle = connect(&server).await;
    idle.write_all(HEALTHZ).await.expect("send");
    assert!(matches!(
        read_answer(&mut idle, PATIENCE).await,
        RawRead::Answer(_)
    ));
    let status = server.sigterm(Duration::from_secs(60)).await;
    assert!(status.success(), "exit status {status}");
    assert!(
        !server.log().contains("shutdown deadline passed"),
        "{}",
        server.log_tail(30)
    );
    assert!(closed_within(&mut idle, PATIENCE).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_answer_carries_the_security_headers() {
    let Some(server) = Server::lexicon().await else {
        return;
    };
    let api = server.api();
    let user = api.user("Careful").await;
    let entry = api.create_entry(&user.token, "A private thought.").await;
    let header = |r: &common::Resp, name: &str| {
        r.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let csp = Some("default-src 'none'; frame-ancestors 'none'".to_owned());

    // Answers with a token or personal data: never stored by a cache.
    let login = api
        .send(
            Method::POST,
            "/v1/sessions",
            None,
            Some(&serde_json::json!({"email": user.email, "password": user.password})),
        )
        .await;
    login.expect(201);
    let personal = [
        login,
        api.get("/v1/me", &user.token).await,
        api.get("/v1/entries", &user.token).await,
        api.get(&format!("/v1/entries/{}", entry.entry_id), &user.token)
            .await,
        api.get("/v1/mood/timeline", &user.token).await,
        api.get("/v1/matches", &user.token).await,
        api.get("/v1/me", "not-a-token").await,
    ];
    for r in &personal {
        assert_eq!(
            header(r, "cache-control").as_deref(),
            Some("no-store"),
            "{}",
            r.what
        );
    }
    // Every answer, personal or not, found or not.
    let others = [
        api.raw(Method::GET, "/healthz", &[], None).await,
        api.raw(Method::GET, "/readyz", &[], None).await,
        api.raw(Method::GET, "/openapi.json", &[], None).await,
        api.raw(Method::GET, "/no/such/route", &[], None).await,
    ];
    for r in personal.iter().chain(&others) {
        assert_eq!(
            header(r, "x-content-type-options").as_deref(),
            Some("nosniff"),
            "{}",
            r.what
        );
        assert_eq!(header(r, "content-security-policy"), csp, "{}", r.what);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn metrics_are_on_their_own_listener_with_fixed_labels() {
    let Some(server) = Server::lexicon().await else {
        return;
    };
    let api = common::Api::new(&format!("http://{}", server.process_addr()));
    assert_ne!(server.metrics_base, server.base);
    api.raw(Method::GET, "/metrics", &[], None)
        .await
        .expect_error(404, "not_found");
    // Made-up methods and paths, which used to become labels.
    let brew = Method::from_bytes(b"BREW").expect("a method");
    api.raw(brew, "/healthz", &[], None).await;
    let made_up = Method::from_bytes(b"XMADEUPX").expect("a method");
    api.raw(made_up, "/v1/entries", &[], None).await;
    api.raw(Method::GET, "/made-up-route-7f3a", &[], None)
        .await
        .expect_error(404, "not_found");
    let text = server.metrics().await;
    for leaked in ["BREW", "XMADEUPX", "made-up-route-7f3a", "unmatched"] {
        assert!(!text.contains(leaked), "{leaked} became a label:\n{text}");
    }
    let requests: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("metachat_http_requests_total{"))
        .collect();
    assert!(
        requests.iter().any(|l| l.contains("method=\"other\"")),
        "{requests:?}"
    );
    assert!(
        requests
            .iter()
            .any(|l| l.contains("route=\"other\"") && l.contains("status=\"404\"")),
        "{requests:?}"
    );
    assert!(
        requests
            .iter()
            .any(|l| l.contains("method=\"GET\"") && l.contains("route=\"/healthz\"")),
        "{requests:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_taken_metrics_address_stops_the_start_naming_the_flag() {
    if !common::models_present(common::Analyzer::Lexicon) {
        return;
    }
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a port");
    let addr = taken.local_addr().expect("its address").to_string();
    let mut cmd = std::process::Command::new(common::BIN);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("METACHAT_") {
            cmd.env_remove(key);
        }
    }
    let out = cmd
        .args(["--analyzer", "lexicon", "--metrics-addr", &addr])
        .env(
            "METACHAT_DATA_DIR",
            tempfile::tempdir().expect("dir").path(),
        )
        .env("METACHAT_ADDR", "127.0.0.1:0")
        .env("METACHAT_MODEL_DIR", common::model_dir())
        .output()
        .expect("run the server");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--metrics-addr") && stderr.contains(&addr),
        "{stderr}"
    );
}
