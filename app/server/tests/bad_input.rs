//! End to end, against the real `metachat-server` process over HTTP: every
//! bad input of `API.md` answers its documented status and stable error
//! code, and loses nothing (the user's entries are intact afterwards).

mod common;

use common::{eventually, Api, Server, ServerConfig, User};
use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

const JSON: &str = "application/json";

/// A POST/PUT with raw bytes and a content type (None: no header).
async fn send_bytes(
    api: &Api,
    method: Method,
    path: &str,
    token: Option<&str>,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> common::Resp {
    let mut headers = Vec::new();
    if let Some(ct) = content_type {
        headers.push(("content-type", ct.to_owned()));
    }
    if let Some(t) = token {
        headers.push(("authorization", format!("Bearer {t}")));
    }
    api.raw(method, path, &headers, Some(body)).await
}

/// The user's entries as (id, text, revision), newest first.
async fn snapshot(api: &Api, user: &User) -> Vec<(String, String, u64)> {
    api.list_all(&user.token, 100, 0)
        .await
        .iter()
        .map(|e| {
            (
                e["entry_id"].as_str().unwrap_or("").to_owned(),
                e["text"].as_str().unwrap_or("").to_owned(),
                e["revision"].as_u64().unwrap_or(u64::MAX),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn malformed_bodies_answer_their_codes_and_lose_nothing() {
    let Some(server) = Server::lexicon().await else {
        return;
    };
    let api = server.api();
    let user = api.user("Carol").await;
    let t = Some(user.token.as_str());
    let e1 = api
        .create_entry(&user.token, "First entry, all is well.")
        .await;
    let e2 = api
        .create_entry(&user.token, "Second entry, a quiet day.")
        .await;
    let before = snapshot(&api, &user).await;
    assert_eq!(before.len(), 2);
    let put_path = format!("/v1/entries/{}", e1.entry_id);

    // Bodies that are not JSON, or not UTF-8: 400 invalid_json.
    let not_json: Vec<Vec<u8>> = vec![
        b"{\"text\": ".to_vec(),
        b"not json at all".to_vec(),
        b"{\"text\": \"x\",}".to_vec(),
        b"".to_vec(),
        // Invalid UTF-8 inside the string and as a whole.
        b"{\"text\": \"\xff\xfe bad\"}".to_vec(),
        vec![0xc3, 0x28, 0xa0, 0xa1],
    ];
    for body in not_json {
        let shown = String::from_utf8_lossy(&body).into_owned();
        let r = send_bytes(
            &api,
            Method::POST,
            "/v1/entries",
            t,
            Some(JSON),
            body.clone(),
        )
        .await;
        assert_eq!(
            r.code(),
            Some("invalid_json"),
            "POST body {shown:?}: {} {}",
            r.status,
            r.text
        );
        r.expect_error(400, "invalid_json");
        let r = send_bytes(&api, Method::PUT, &put_path, t, Some(JSON), body).await;
        r.expect_error(400, "invalid_json");
    }

    // Valid JSON of the wrong shape: 400 invalid_body with a detail.
    let wrong_shape = [
        ("/v1/entries", Method::POST, json!({"text": 5})),
        ("/v1/entries", Method::POST, json!({"text": null})),
        ("/v1/entries", Method::POST, json!({"text": ["a"]})),
        ("/v1/entries", Method::POST, json!({})),
        ("/v1/entries", Method::POST, json!([])),
        ("/v1/entries", Method::POST, json!("text")),
        (
            "/v1/entries",
            Method::POST,
            json!({"text": "ok", "mood": "joy"}),
        ),
        ("/v1/entries", Method::POST, json!({"Text": "ok"})),
        (put_path.as_str(), Method::PUT, json!({"text": "ok"})),
        (
            put_path.as_str(),
            Method::PUT,
            json!({"expected_revision": 0}),
        ),
        (
            put_path.as_str(),
            Method::PUT,
            json!({"text": "ok", "expected_revision": "0"}),
        ),
        (
            put_path.as_str(),
            Method::PUT,
            json!({"text": "ok", "expected_revision": -1}),
        ),
        (
            put_path.as_str(),
            Method::PUT,
            json!({"text": "ok", "expected_revision": 0, "x": 1}),
        ),
        (
            "/v1/users",
            Method::POST,
            json!({"email": "a@example.com", "password": "password1"}),
        ),
        (
            "/v1/users",
            Method::POST,
            json!({"email": "a@example.com", "password": "password1", "display_name": "A", "admin": true}),
        ),
        (
            "/v1/users",
            Method::POST,
            json!({"email": 1, "password": "password1", "display_name": "A"}),
        ),
        ("/v1/sessions", Method::POST, json!({"email": user.email})),
        (
            "/v1/sessions",
            Method::POST,
            json!({"email": user.email, "password": user.password, "ttl": 9}),
        ),
    ];
    for (path, method, body) in wrong_shape {
        let token = if path.starts_with("/v1/entries") {
            t
        } else {
            None
        };
        let bytes = serde_json::to_vec(&body).expect("serialize");
        let r = send_bytes(&api, method.clone(), path, token, Some(JSON), bytes).await;
        assert_eq!(
            r.code(),
            Some("invalid_body"),
            "{method} {path} {body}: {} {}",
            r.status,
            r.text
        );
        let err = r.expect_error(400, "invalid_body");
        assert!(
            err["detail"].is_string(),
            "invalid_body carries a detail: {}",
            r.text
        );
    }

    // A body without the JSON content type: 415.
    let good = serde_json::to_vec(&json!({"text": "would be fine"})).expect("serialize");
    for ct in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
    ] {
        let r = send_bytes(&api, Method::POST, "/v1/entries", t, ct, good.clone()).await;
        assert_eq!(
            r.code(),
            Some("unsupported_media_type"),
            "content type {ct:?}: {} {}",
            r.status,
            r.text
        );
        r.expect_error(415, "unsupported_media_type");
    }
    let reg = serde_json::to_vec(
        &json!({"email": "ct@example.com", "password": "password1", "display_name": "Ct"}),
    )
    .expect("serialize");
    send_bytes(
        &api,
        Method::POST,
        "/v1/users",
        None,
        Some("text/plain"),
        reg,
    )
    .await
    .expect_error(415, "unsupported_media_type");
    // `application/json; charset=utf-8` is JSON.
    let r = send_bytes(
        &api,
        Method::POST,
        "/v1/entries",
        t,
        Some("application/json; charset=utf-8"),
        good,
    )
    .await;
    let with_charset = r.expect(201)["entry_id"]
        .as_str()
        .expect("entry_id")
        .to_owned();

    // Over 64 KiB: 413, whatever the text.
    for size in [65_537usize, 200_000, 2_000_000] {
        let body = serde_json::to_vec(&json!({"text": "a".repeat(size)})).expect("serialize");
        assert!(body.len() > 65_536);
        let r = api
            .try_raw(
                Method::POST,
                "/v1/entries",
                &[
                    ("content-type", JSON.to_owned()),
                    ("authorization", format!("Bearer {}", user.token)),
                ],
                Some(body),
            )
            .await;
        match r {
            Ok(r) => {
                r.expect_error(413, "body_too_large");
            }
            // The server may answer 413 and close before reading it all: the
            // client may see the reset instead. Only for the huge bodies.
            Err(e) => assert!(size >= 200_000, "{size} bytes: transport error {e}"),
        }
    }

    // Entry text: 1..=16,384 bytes after trimming, not whitespace-only: 422 invalid_field.
    let too_long = "é".repeat(8_192) + "a"; // 16,385 bytes, 8,193 chars
    for text in [
        "",
        " ",
        "   \n\t  ",
        "\u{3000}\u{a0}",
        too_long.as_str(),
        &"b".repeat(16_385),
    ] {
        let r = api
            .send(Method::POST, "/v1/entries", t, Some(&json!({"text": text})))
            .await;
        assert_eq!(
            r.code(),
            Some("invalid_field"),
            "text of {} bytes: {} {}",
            text.len(),
            r.status,
            r.text
        );
        let err = r.expect_error(422, "invalid_field");
        assert_eq!(err["field"], "text", "{}", r.text);
        let r = api
            .send(
                Method::PUT,
                &put_path,
                t,
                Some(&json!({"text": text, "expected_revision": 0})),
            )
            .await;
        r.expect_error(422, "invalid_field");
    }
    // The bounds themselves are fine: 16,384 bytes (multi-byte too) and 1 byte.
    let max_text = "é".repeat(8_192);
    assert_eq!(max_text.len(), 16_384);
    let at_max = api.create_entry(&user.token, &max_text).await;
    let one = api.create_entry(&user.token, "x").await;

    // Registration fields: 422 with the field named.
    let long_email = format!("{}@example.com", "a".repeat(250));
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({"email": "not-an-email", "password": "password1", "display_name": "A"}),
            "email",
        ),
        (
            json!({"email": "", "password": "password1", "display_name": "A"}),
            "email",
        ),
        (
            json!({"email": "a@", "password": "password1", "display_name": "A"}),
            "email",
        ),
        (
            json!({"email": long_email, "password": "password1", "display_name": "A"}),
            "email",
        ),
        (
            json!({"email": "p@example.com", "password": "short77", "display_name": "A"}),
            "password",
        ),
        (
            json!({"email": "p@example.com", "password": "", "display_name": "A"}),
            "password",
        ),
        (
            json!({"email": "p@example.com", "password": "x".repeat(257), "display_name": "A"}),
            "password",
        ),
        (
            json!({"email": "d@example.com", "password": "password1", "display_name": ""}),
            "display_name",
        ),
        (
            json!({"email": "d@example.com", "password": "password1", "display_name": "   "}),
            "display_name",
        ),
        (
            json!({"email": "d@example.com", "password": "password1", "display_name": "n".repeat(65)}),
            "display_name",
        ),
    ];
    for (body, field) in cases {
        let r = api.send(Method::POST, "/v1/users", None, Some(&body)).await;
        assert_eq!(
            r.code(),
            Some("invalid_field"),
            "{body}: {} {}",
            r.status,
            r.text
        );
        let err = r.expect_error(422, "invalid_field");
        assert_eq!(err["field"], field, "{}", r.text);
    }
    // Bounds: a password of 8 bytes and a display name of 64 chars register.
    let email = format!("bounds-{}@example.com", Uuid::new_v4().simple());
    api.register(&email, "12345678", &"ü".repeat(64)).await;
    // An email already taken: 409.
    api.send(
        Method::POST,
        "/v1/users",
        None,
        Some(&json!({"email": user.email, "password": "another-password", "display_name": "Imposter"})),
    )
    .await
    .expect_error(409, "email_taken");

    // Login: unknown email and wrong password answer the same.
    let wrong_pw = api
        .send(
            Method::POST,
            "/v1/sessions",
            None,
            Some(&json!({"email": user.email, "password": "wrong-password"})),
        )
        .await;
    wrong_pw.expect_error(401, "invalid_credentials");
    let unknown = api
        .send(
            Method::POST,
            "/v1/sessions",
            None,
            Some(&json!({"email": "nobody@example.com", "password": "wrong-password"})),
        )
        .await;
    unknown.expect_error(401, "invalid_credentials");
    assert_eq!(
        wrong_pw.json, unknown.json,
        "no hint whether the email exists"
    );

    // Bad query parameters: 400 invalid_query.
    for q in [
        "/v1/entries?limit=abc",
        "/v1/entries?limit=0",
        "/v1/entries?limit=101",
        "/v1/entries?limit=-1",
        "/v1/entries?cursor=%%%",
        "/v1/entries?cursor=bm90LWEtY3Vyc29y",
        "/v1/entries?min_position=abc",
        "/v1/entries?min_position=-5",
        "/v1/entries?wait_ms=abc",
        "/v1/entries?wait_ms=30001",
        "/v1/mood/timeline?from=2024-13-45",
        "/v1/mood/timeline?to=yesterday",
        "/v1/mood/timeline?from=2024-02-30",
        "/v1/matches?k=0",
        "/v1/matches?k=51",
        "/v1/matches?k=ten",
    ] {
        let r = api.get(q, &user.token).await;
        assert_eq!(
            r.code(),
            Some("invalid_query"),
            "{q}: {} {}",
            r.status,
            r.text
        );
        r.expect_error(400, "invalid_query");
    }
    let r = api
        .send(
            Method::DELETE,
            &format!("/v1/entries/{}?expected_revision=x", e2.entry_id),
            t,
            None,
        )
        .await;
    r.expect_error(400, "invalid_query");

    // A min_position beyond the log's last position (no write ever answered
    // it) is a bad query on every read, never a wait ending in a 5xx.
    for min in [u64::MAX / 2, 1 << 63, e2.position + 1_000_000] {
        for path in [
            "/v1/entries".to_owned(),
            format!("/v1/entries/{}", e2.entry_id),
            "/v1/mood/timeline".to_owned(),
            "/v1/matches".to_owned(),
            "/v1/me".to_owned(),
        ] {
            let r = api
                .get(
                    &format!("{path}?min_position={min}&wait_ms=100"),
                    &user.token,
                )
                .await;
            assert_eq!(
                r.code(),
                Some("invalid_query"),
                "{path}?min_position={min}: {} {}",
                r.status,
                r.text
            );
            r.expect_error(400, "invalid_query");
        }
    }

    // Unknown routes, ids and methods.
    api.get("/v1/nope", &user.token)
        .await
        .expect_error(404, "not_found");
    api.raw(Method::GET, "/nope", &[], None)
        .await
        .expect_error(404, "not_found");
    api.get("/v1/entries/not-a-uuid", &user.token)
        .await
        .expect_error(404, "not_found");
    api.get(&format!("/v1/entries/{}", Uuid::new_v4()), &user.token)
        .await
        .expect_error(404, "not_found");
    api.send(Method::PATCH, "/v1/entries", t, None)
        .await
        .expect_error(405, "method_not_allowed");
    api.send(Method::DELETE, "/v1/users", None, None)
        .await
        .expect_error(405, "method_not_allowed");

    // Stale revisions: 409 with the current one; a deleted entry: 410.
    let r = api
        .send(
            Method::PUT,
            &put_path,
            t,
            Some(&json!({"text": "edit", "expected_revision": 0})),
        )
        .await;
    r.expect(200);
    let r = api
        .send(
            Method::PUT,
            &put_path,
            t,
            Some(&json!({"text": "stale", "expected_revision": 0})),
        )
        .await;
    assert_eq!(
        r.expect_error(409, "revision_conflict")["current_revision"],
        1,
        "{}",
        r.text
    );
    let r = api
        .send(
            Method::PUT,
            &put_path,
            t,
            Some(&json!({"text": "future", "expected_revision": 5})),
        )
        .await;
    assert_eq!(
        r.expect_error(409, "revision_conflict")["current_revision"],
        1,
        "{}",
        r.text
    );
    let r = api
        .send(
            Method::DELETE,
            &format!("/v1/entries/{}?expected_revision=0", e1.entry_id),
            t,
            None,
        )
        .await;
    assert_eq!(
        r.expect_error(409, "revision_conflict")["current_revision"],
        1,
        "{}",
        r.text
    );
    let r = api
        .send(
            Method::DELETE,
            &format!("/v1/entries/{}", one.entry_id),
            t,
            None,
        )
        .await;
    r.expect(200);
    api.send(
        Method::PUT,
        &format!("/v1/entries/{}", one.entry_id),
        t,
        Some(&json!({"text": "again", "expected_revision": 0})),
    )
    .await
    .expect_error(410, "entry_deleted");

    // Nothing was lost: e2 untouched, e1 at its one accepted edit, the two
    // valid bound entries there, the deleted one gone, no stray entries.
    let after = snapshot(&api, &user).await;
    let ids: Vec<&str> = after.iter().map(|(id, _, _)| id.as_str()).collect();
    assert_eq!(
        ids,
        vec![
            at_max.entry_id.as_str(),
            with_charset.as_str(),
            e2.entry_id.as_str(),
            e1.entry_id.as_str()
        ],
        "exactly the accepted entries, newest first: {after:?}"
    );
    assert_eq!(after[2], before[0], "e2 untouched");
    assert_eq!(
        after[3],
        (e1.entry_id.clone(), "edit".to_owned(), 1),
        "e1 at its accepted edit"
    );
    assert_eq!(after[0].1, max_text, "16,384-byte text intact");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn wrong_missing_and_expired_tokens_are_refused() {
    let Some(server) = Server::start(ServerConfig {
        token_ttl_secs: Some(2),
        ..ServerConfig::lexicon()
    })
    .await
    else {
        return;
    };
    let api = server.api();
    let user = api.user("Dave").await;
    let entry = api.create_entry(&user.token, "Dave's entry stays.").await;

    let protected: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, "/v1/me".into(), None),
        (Method::DELETE, "/v1/me".into(), None),
        (Method::DELETE, "/v1/sessions/current".into(), None),
        (Method::GET, "/v1/entries".into(), None),
        (
            Method::POST,
            "/v1/entries".into(),
            Some(json!({"text": "sneaky"})),
        ),
        (Method::GET, format!("/v1/entries/{}", entry.entry_id), None),
        (
            Method::PUT,
            format!("/v1/entries/{}", entry.entry_id),
            Some(json!({"text": "sneaky", "expected_revision": 0})),
        ),
        (
            Method::DELETE,
            format!("/v1/entries/{}", entry.entry_id),
            None,
        ),
        (Method::GET, "/v1/mood/timeline".into(), None),
        (Method::GET, "/v1/matches".into(), None),
    ];
    let random_token = {
        // 32 bytes in base64url: the shape of a real token, but unknown.
        let a = Uuid::new_v4().simple().to_string();
        let b = Uuid::new_v4().simple().to_string();
        format!("{a}{b}")[..43].to_owned()
    };
    let bad_headers: Vec<Option<String>> = vec![
        None,
        Some(String::new()),
        Some("Bearer".into()),
        Some("Bearer ".into()),
        Some(format!("Basic {}", user.token)),
        Some(format!("bearer{}", user.token)),
        Some("Bearer not a token".into()),
        Some(format!("Bearer {random_token}")),
        Some(format!("Bearer {}x", user.token)),
    ];
    for (method, path, body) in &protected {
        for h in &bad_headers {
            let mut headers = Vec::new();
            if let Some(h) = h {
                headers.push(("authorization", h.clone()));
            }
            let bytes = body.as_ref().map(|b| {
                headers.push(("content-type", JSON.to_owned()));
                serde_json::to_vec(b).expect("serialize")
            });
            let r = api.raw(method.clone(), path, &headers, bytes).await;
            assert_eq!(
                r.code(),
                Some("unauthorized"),
                "{method} {path} with {h:?}: {} {}",
                r.status,
                r.text
            );
            r.expect_error(401, "unauthorized");
            let www = r
                .headers
                .get("www-authenticate")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            assert!(
                www.starts_with("Bearer"),
                "{method} {path}: WWW-Authenticate {www:?}"
            );
        }
    }

    // The token expires: refused everywhere once its TTL passed.
    let fresh = api.login(&user.email, &user.password).await;
    eventually(
        "the 2 s token expires",
        std::time::Duration::from_secs(30),
        || async {
            let r = api.get("/v1/me", &fresh).await;
            (r.status.as_u16() == 401).then_some(())
        },
    )
    .await;
    for (method, path, body) in &protected {
        let r = api
            .send(method.clone(), path, Some(&fresh), body.as_ref())
            .await;
        r.expect_error(401, "unauthorized");
    }

    // Nothing was lost: a new login sees the entry, unchanged.
    let token = api.login(&user.email, &user.password).await;
    let e = api
        .get(&format!("/v1/entries/{}", entry.entry_id), &token)
        .await;
    let e = e.expect(200);
    assert_eq!(e["text"], "Dave's entry stays.");
    assert_eq!(e["revision"], 0);
    assert_eq!(api.list_all(&token, 100, 0).await.len(), 1);
}
