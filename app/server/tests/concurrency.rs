//! End to end, against the real `metachat-server` process over HTTP:
//! concurrent edits of one entry with the same `expected_revision` (exactly
//! one wins, the rest get 409 with the current revision, no lost update),
//! and 200 concurrent creations from 20 clients (exactly 200 entries, each
//! with a mood once the worker caught up).

mod common;

use std::collections::{BTreeMap, HashSet};

use common::{assert_mood, eventually, wait_all_moods, Api, Server, CATCH_UP};
use reqwest::Method;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_edits_of_one_entry_have_exactly_one_winner() {
    let Some(server) = Server::lexicon().await else {
        return;
    };
    let api = server.api();
    let user = api.user("Erin").await;
    let entry = api.create_entry(&user.token, "The original text.").await;
    let path = format!("/v1/entries/{}", entry.entry_id);
    const CLIENTS: usize = 16;

    for round in 0..5u64 {
        // Each client its own connection pool, all released together.
        let clients: Vec<Api> = (0..CLIENTS).map(|_| Api::new(&server.base)).collect();
        let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(CLIENTS));
        let mut tasks = tokio::task::JoinSet::new();
        for (i, client) in clients.into_iter().enumerate() {
            let (path, token, barrier) = (path.clone(), user.token.clone(), barrier.clone());
            tasks.spawn(async move {
                let text = format!("round {round}, client {i}");
                barrier.wait().await;
                let r = client
                    .send(
                        Method::PUT,
                        &path,
                        Some(&token),
                        Some(&json!({"text": text, "expected_revision": round})),
                    )
                    .await;
                (text, r)
            });
        }
        let mut winners = Vec::new();
        let mut losers = 0;
        while let Some(done) = tasks.join_next().await {
            let (text, r) = done.expect("client task");
            match r.status.as_u16() {
                200 => {
                    assert_eq!(r.json["revision"], round + 1, "{}", r.text);
                    winners.push((text, r.position()));
                }
                409 => {
                    let err = r.expect_error(409, "revision_conflict");
                    assert_eq!(
                        err["current_revision"],
                        round + 1,
                        "the loser learns the winner's revision: {}",
                        r.text
                    );
                    losers += 1;
                }
                _ => panic!("round {round}: unexpected {} {}", r.status, r.text),
            }
        }
        assert_eq!(
            winners.len(),
            1,
            "round {round}: exactly one winner, got {winners:?}"
        );
        assert_eq!(losers, CLIENTS - 1);
        let (text, position) = &winners[0];
        let r = api
            .get(&format!("{path}?min_position={position}"), &user.token)
            .await;
        let e = r.expect(200);
        assert_eq!(
            e["text"],
            text.as_str(),
            "round {round}: the winner's text, no lost update"
        );
        assert_eq!(e["revision"], round + 1);
    }

    // Concurrent deletes with the same revision: one wins, the rest 409 (or
    // 410 once deleted), and the entry is gone.
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (client, path, token) = (Api::new(&server.base), path.clone(), user.token.clone());
        tasks.spawn(async move {
            client
                .send(
                    Method::DELETE,
                    &format!("{path}?expected_revision=5"),
                    Some(&token),
                    None,
                )
                .await
        });
    }
    let mut ok = 0;
    let mut deleted_at = 0;
    while let Some(done) = tasks.join_next().await {
        let r = done.expect("client task");
        match r.status.as_u16() {
            200 => {
                ok += 1;
                deleted_at = r.position();
            }
            409 => assert_eq!(r.code(), Some("revision_conflict"), "{}", r.text),
            410 => assert_eq!(r.code(), Some("entry_deleted"), "{}", r.text),
            _ => panic!("unexpected {} {}", r.status, r.text),
        }
    }
    assert_eq!(ok, 1, "exactly one delete wins");
    let left = api.list_all(&user.token, 100, deleted_at).await;
    assert!(left.is_empty(), "the entry is deleted: {left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_concurrent_creations_from_twenty_clients() {
    let Some(server) = Server::lexicon().await else {
        return;
    };
    let api = server.api();
    let user = api.user("Frank").await;
    const CLIENTS: usize = 20;
    const PER_CLIENT: usize = 10;

    // Twenty clients, each with its own connection pool and its own session.
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        let c = Api::new(&server.base);
        let token = c.login(&user.email, &user.password).await;
        clients.push((c, token));
    }
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(CLIENTS));
    let mut tasks = tokio::task::JoinSet::new();
    for (i, (client, token)) in clients.into_iter().enumerate() {
        let barrier = barrier.clone();
        tasks.spawn(async move {
            barrier.wait().await;
            let mut mine = Vec::new();
            for j in 0..PER_CLIENT {
                let text = format!("Client {i} entry {j}: a happy, calm and grateful day.");
                mine.push(client.create_entry(&token, &text).await);
            }
            mine
        });
    }
    let mut created = Vec::new();
    while let Some(done) = tasks.join_next().await {
        created.extend(done.expect("client task"));
    }
    assert_eq!(created.len(), CLIENTS * PER_CLIENT);
    let ids: HashSet<&str> = created.iter().map(|c| c.entry_id.as_str()).collect();
    assert_eq!(ids.len(), 200, "200 distinct entry ids");
    let positions: HashSet<u64> = created.iter().map(|c| c.position).collect();
    assert_eq!(positions.len(), 200, "each write has its own log position");
    let head = created.iter().map(|c| c.position).max().unwrap_or(0);

    // Exactly 200 listed (pages of 100 and of 7), each with its text.
    let listed = api.list_all(&user.token, 100, head).await;
    assert_eq!(listed.len(), 200);
    let paged_small = api.list_all(&user.token, 7, head).await;
    assert_eq!(
        paged_small
            .iter()
            .map(|e| e["entry_id"].clone())
            .collect::<Vec<_>>(),
        listed
            .iter()
            .map(|e| e["entry_id"].clone())
            .collect::<Vec<_>>(),
        "the same order whatever the page size"
    );
    let by_id: BTreeMap<&str, &str> = created
        .iter()
        .map(|c| (c.entry_id.as_str(), c.text.as_str()))
        .collect();
    for e in &listed {
        let id = e["entry_id"].as_str().expect("entry_id");
        assert_eq!(
            Some(&e["text"].as_str().unwrap_or("")),
            by_id.get(id),
            "entry {id}"
        );
    }
    // All 200 carry a mood once the worker caught up.
    let with_moods = wait_all_moods(&api, &user.token, 200).await;
    for e in &with_moods {
        assert_mood(&e["mood"]);
    }
    // And the timeline counts all 200.
    eventually("the timeline counts 200 entries", CATCH_UP, || async {
        let r = api.get("/v1/mood/timeline", &user.token).await;
        let total: u64 = r.expect(200)["days"]
            .as_array()
            .expect("days")
            .iter()
            .map(|d| d["entries"].as_u64().unwrap_or(0))
            .sum();
        (total == 200).then_some(())
    })
    .await;
    api.caught_up(head).await;
}
