//! End to end, against the real `metachat-server` process over HTTP: a user
//! erases their account. Their tokens are refused, they cannot log in, their
//! entries are unreadable, nobody sees them in matches (also after a
//! restart), and the raw files of the data directory (on sled) or the raw
//! rows of the namespace (on Cassandra) never held their diary text in
//! plaintext (crypto-shredding: the log keeps only ciphertext). Nor does the
//! server's log.

mod common;

use std::time::Duration;

use common::{eventually, wait_all_moods, Api, Server, User, CATCH_UP};
use reqwest::Method;
use uuid::Uuid;

/// `GET /v1/matches?k=50&min_position=…` → the matched user ids.
async fn match_ids(api: &Api, viewer: &User, min_position: u64) -> Vec<String> {
    let r = api
        .get(
            &format!("/v1/matches?k=50&min_position={min_position}"),
            &viewer.token,
        )
        .await;
    r.expect(200)["matches"]
        .as_array()
        .expect("matches")
        .iter()
        .map(|m| m["user_id"].as_str().unwrap_or("").to_owned())
        .collect()
}

/// Where `needle` occurs in the data directory's files.
fn occurrences(server: &Server, needle: &[u8]) -> Vec<String> {
    common::found_in(&server.data_files(), needle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn erased_account_is_unreadable_and_gone_from_matches() {
    let Some(mut server) = Server::lexicon().await else {
        return;
    };
    let api = server.api();
    let a = api.user("Ivan").await;
    let b = api.user("Judy").await;
    let c = api.user("Mallory").await;
    let a_second_token = api.login(&a.email, &a.password).await;

    // A unique marker in A's diary text, to look for in the raw files.
    let marker = format!("zebraquokka{}", Uuid::new_v4().simple());
    let mut a_entries = Vec::new();
    for text in [
        format!("Today I was so happy, {marker} made me laugh."),
        format!("A joyful morning with {marker} and coffee."),
    ] {
        a_entries.push(api.create_entry(&a.token, &text).await);
    }
    let edit_text = format!("Edited: still happy about {marker}.");
    let r = api
        .send(
            Method::PUT,
            &format!("/v1/entries/{}", a_entries[0].entry_id),
            Some(&a.token),
            Some(&serde_json::json!({"text": edit_text, "expected_revision": 0})),
        )
        .await;
    r.expect(200);
    let b1 = api
        .create_entry(&b.token, "A happy day in the park, full of joy.")
        .await;
    api.create_entry(&c.token, "Joyful and grateful for my friends.")
        .await;
    wait_all_moods(&api, &a.token, 2).await;
    wait_all_moods(&api, &b.token, 1).await;
    wait_all_moods(&api, &c.token, 1).await;
    eventually("B sees A in matches", CATCH_UP, || async {
        match_ids(&api, &b, 0)
            .await
            .contains(&a.user_id)
            .then_some(())
    })
    .await;

    // A erases the account.
    let r = api
        .send(Method::DELETE, "/v1/me", Some(&a.token), None)
        .await;
    r.expect(200);
    let erased_at = r.position();

    // Every token of A is refused; A cannot log in again.
    for token in [&a.token, &a_second_token] {
        api.get("/v1/me", token)
            .await
            .expect_error(401, "unauthorized");
        api.get("/v1/entries", token)
            .await
            .expect_error(401, "unauthorized");
        api.get(&format!("/v1/entries/{}", a_entries[1].entry_id), token)
            .await
            .expect_error(401, "unauthorized");
    }
    api.send(
        Method::POST,
        "/v1/sessions",
        None,
        Some(&serde_json::json!({"email": a.email, "password": a.password})),
    )
    .await
    .expect_error(401, "invalid_credentials");

    // Nobody else can read A's entries; B and C no longer see A in matches.
    for e in &a_entries {
        let r = api
            .get(
                &format!("/v1/entries/{}?min_position={erased_at}", e.entry_id),
                &b.token,
            )
            .await;
        r.expect_error(404, "not_found");
        assert!(!r.text.contains(&marker));
    }
    for viewer in [&b, &c] {
        eventually("A is gone from matches", CATCH_UP, || async {
            (!match_ids(&api, viewer, erased_at)
                .await
                .contains(&a.user_id))
            .then_some(())
        })
        .await;
        let r = api.get("/v1/matches?k=50", &viewer.token).await;
        assert!(
            !r.text.contains(&marker),
            "no text of A in matches: {}",
            r.text
        );
        assert!(
            !r.text.contains(&a.user_id),
            "A is gone from matches: {}",
            r.text
        );
    }
    // B's own data is intact.
    let r = api
        .get(&format!("/v1/entries/{}", b1.entry_id), &b.token)
        .await;
    assert_eq!(r.expect(200)["text"], b1.text.as_str());

    // A graceful stop flushes everything to disk; then the raw bytes of the
    // data directory must not contain A's text anywhere.
    let status = server.sigterm(Duration::from_secs(30)).await;
    assert!(status.success(), "graceful shutdown exits 0, got {status}");
    match server.cassandra_occurrences(marker.as_bytes()) {
        Some((found, rows)) => {
            assert!(rows > 0, "the scan read the namespace's rows");
            assert!(
                found.is_empty(),
                "A's diary text is in Cassandra rows after erasure: {found:?}"
            );
            // The scan finds what is there: B's user id names B's streams.
            let (b_hits, _) = server
                .cassandra_occurrences(b.user_id.as_bytes())
                .expect("a Cassandra server");
            assert!(!b_hits.is_empty(), "the scan sees plain bytes in rows");
        }
        None => {
            assert!(
                !occurrences(&server, b.user_id.as_bytes()).is_empty(),
                "the scan sees plain bytes in the files (B's user id names B's streams)"
            );
            let found = occurrences(&server, marker.as_bytes());
            assert!(
                found.is_empty(),
                "A's diary text is in the raw data files after erasure: {found:?}"
            );
        }
    }
    assert!(
        !server.log().contains(&marker),
        "diary text appears in the server's log"
    );
    assert!(
        !server.log().contains(&a.password),
        "a password appears in the server's log"
    );

    // After a restart (replaying the log) A is still unreadable and unmatched.
    server.restart().await;
    let api = server.api();
    api.send(
        Method::POST,
        "/v1/sessions",
        None,
        Some(&serde_json::json!({"email": a.email, "password": a.password})),
    )
    .await
    .expect_error(401, "invalid_credentials");
    let b_token = api.login(&b.email, &b.password).await;
    let b = User {
        token: b_token,
        ..b
    };
    let head = api.caught_up(erased_at).await;
    assert!(!match_ids(&api, &b, head).await.contains(&a.user_id));
    for e in &a_entries {
        api.get(&format!("/v1/entries/{}", e.entry_id), &b.token)
            .await
            .expect_error(404, "not_found");
    }
    assert_eq!(api.list_all(&b.token, 100, 0).await.len(), 1);
}
