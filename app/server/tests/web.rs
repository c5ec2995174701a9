//! End to end: the web client's files served by the server process (behind
//! the gateway in a distributed run) with `--web-dir`: the page and its
//! assets with their media types, caching and the page's
//! Content-Security-Policy; names outside the folder's files, traversal
//! included, are 404; without `--web-dir` `/` is 404 like any unknown
//! path; a folder without a page is refused at start.
//!
//! The client itself is tested in a real browser by `scripts/web test`
//! (app/web/tests).

mod common;

use std::path::Path;
use std::process::Command;

use common::{Server, ServerConfig};

const PAGE: &str = "<!doctype html><title>MetaChat</title><script type=\"module\" \
                    src=\"/assets/main-T3ST.js\"></script>";
const SCRIPT: &str = "console.log('metachat');";

fn web_dir(root: &Path) -> String {
    let dir = root.join("dist");
    std::fs::create_dir_all(dir.join("assets")).unwrap();
    std::fs::write(dir.join("index.html"), PAGE).unwrap();
    std::fs::write(dir.join("assets/main-T3ST.js"), SCRIPT).unwrap();
    std::fs::write(dir.join("assets/style-T3ST.css"), "body{}").unwrap();
    std::fs::write(dir.join("secret.txt"), "not served").unwrap();
    dir.display().to_string()
}

#[tokio::test]
async fn the_page_and_its_assets_are_served_with_the_page_policy() {
    let files = tempfile::tempdir().unwrap();
    let dir = web_dir(files.path());
    let Some(server) = Server::start(ServerConfig {
        args: vec!["--web-dir".into(), dir],
        ..ServerConfig::lexicon()
    })
    .await
    else {
        return;
    };
    let http = reqwest::Client::new();

    let page = http.get(server.url("/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let h = page.headers().clone();
    assert_eq!(h["content-type"], "text/html; charset=utf-8");
    assert_eq!(h["cache-control"], "no-cache");
    let csp = h["content-security-policy"].to_str().unwrap();
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "form-action 'none'",
    ] {
        assert!(csp.contains(directive), "{directive} missing from {csp}");
    }
    assert!(!csp.contains("unsafe"), "{csp}");
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["x-frame-options"], "DENY");
    assert_eq!(h["referrer-policy"], "no-referrer");
    assert_eq!(h["cross-origin-opener-policy"], "same-origin");
    assert!(h.contains_key("permissions-policy"));
    assert_eq!(page.text().await.unwrap(), PAGE);

    let script = http
        .get(server.url("/assets/main-T3ST.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(script.status(), 200);
    assert_eq!(
        script.headers()["content-type"],
        "text/javascript; charset=utf-8"
    );
    assert_eq!(
        script.headers()["cache-control"],
        "public, max-age=31536000, immutable"
    );
    assert_eq!(script.text().await.unwrap(), SCRIPT);
    let style = http
        .get(server.url("/assets/style-T3ST.css"))
        .send()
        .await
        .unwrap();
    assert_eq!(style.headers()["content-type"], "text/css; charset=utf-8");

    // Only the files of assets/ by exact name: nothing else of the folder,
    // no traversal, no listing.
    for path in [
        "/assets/nope.js",
        "/assets/",
        "/assets/..%2Findex.html",
        "/assets/..%2Fsecret.txt",
        "/assets/%2e%2e/secret.txt",
        "/secret.txt",
        "/index.html",
        "/assets/main-T3ST.js/x",
    ] {
        let res = http.get(server.url(path)).send().await.unwrap();
        assert_eq!(res.status(), 404, "{path}");
        assert_eq!(
            res.headers()["content-security-policy"],
            "default-src 'none'; frame-ancestors 'none'",
            "{path}"
        );
    }

    // The API keeps its own policy and no-store.
    let health = http.get(server.url("/healthz")).send().await.unwrap();
    assert_eq!(
        health.headers()["content-security-policy"],
        "default-src 'none'; frame-ancestors 'none'"
    );
    let users = http
        .post(server.url("/v1/users"))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(users.headers()["cache-control"], "no-store");
}

#[tokio::test]
async fn without_a_web_dir_the_root_is_not_found() {
    let Some(server) = Server::lexicon().await else {
        return;
    };
    let res = reqwest::get(server.url("/")).await.unwrap();
    assert_eq!(res.status(), 404);
    let body: serde_json::Value = serde_json::from_str(&res.text().await.unwrap()).unwrap();
    assert_eq!(body["error"]["code"], "not_found");
}

#[test]
fn a_web_dir_without_a_page_is_refused_at_start() {
    let empty = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_metachat-server"))
        .args(["--analyzer", "lexicon", "--addr", "127.0.0.1:0"])
        .args(["--metrics-addr", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(data.path())
        .arg("--web-dir")
        .arg(empty.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = common::strip_ansi(&String::from_utf8_lossy(&out.stderr));
    assert!(
        stderr.contains("cannot serve the web client") && stderr.contains("no index.html"),
        "{stderr}"
    );
}
