//! End to end, against the real `metachat-server` process over HTTP: the
//! whole flow for two users (register, log in, write, edit, page, read your
//! own write, delete, mood timeline, matches, log out), and authorization:
//! user B tries every route on user A's data and is refused or sees only
//! their own.

mod common;

use std::collections::HashSet;

use common::{assert_mood, eventually, wait_all_moods, Api, Server, User, CATCH_UP};
use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

/// `GET /v1/matches` until `viewer` sees `other`; returns the matches.
async fn wait_match(api: &Api, viewer: &User, other: &User) -> Vec<Value> {
    eventually("the other user shows up in matches", CATCH_UP, || async {
        let r = api.get("/v1/matches?k=10", &viewer.token).await;
        let body = r.expect(200);
        let matches = body["matches"].as_array().expect("matches array").clone();
        matches
            .iter()
            .any(|m| m["user_id"] == other.user_id.as_str())
            .then_some(matches)
    })
    .await
}

#[track_caller]
fn assert_matches_shape(matches: &[Value], viewer: &User) {
    for m in matches {
        assert_ne!(
            m["user_id"],
            viewer.user_id.as_str(),
            "never matched with oneself: {m}"
        );
        assert!(m["display_name"].is_string(), "{m}");
        assert!(m["score"].is_number(), "{m}");
        let ex = &m["explanation"];
        assert!(ex["shared_emotions"].is_array(), "explanation: {m}");
        assert!(ex["theme_similarity"].is_number(), "explanation: {m}");
        assert!(ex["mood_similarity"].is_number(), "explanation: {m}");
    }
}

/// Sum of `entries` over the timeline's days; checks each day's shape.
#[track_caller]
fn timeline_total(body: &Value) -> u64 {
    let days = body["days"].as_array().expect("days array");
    let mut prev: Option<&str> = None;
    let mut total = 0;
    for d in days {
        let date = d["date"].as_str().expect("date");
        assert_eq!(date.len(), 10, "YYYY-MM-DD: {date}");
        if let Some(p) = prev {
            assert!(p < date, "days oldest first, one per date: {p} then {date}");
        }
        prev = Some(date);
        let n = d["entries"].as_u64().expect("entries count");
        let counts = d["emotion_counts"].as_object().expect("emotion_counts");
        let sum: u64 = counts.values().map(|c| c.as_u64().expect("count")).sum();
        assert_eq!(sum, n, "emotion counts add up to the day's entries: {d}");
        let dominant = d["dominant_emotion"].as_str().expect("dominant_emotion");
        assert!(
            counts.contains_key(dominant),
            "dominant emotion is counted: {d}"
        );
        let v = d["mean_valence"].as_f64().expect("mean_valence");
        assert!((-1.0..=1.0).contains(&v), "mean valence {v}");
        total += n;
    }
    total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_users_full_flow() {
    let Some(server) = Server::lexicon().await else {
        return;
    };
    let api = server.api();

    // Operations endpoints.
    api.raw(Method::GET, "/healthz", &[], None)
        .await
        .expect(200);
    let openapi = api.raw(Method::GET, "/openapi.json", &[], None).await;
    assert!(
        openapi.expect(200)["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.")),
        "an OpenAPI 3 document: {}",
        &openapi.text[..openapi.text.len().min(200)]
    );
    let metrics = server.metrics().await;
    assert!(metrics.contains("# TYPE"), "Prometheus text: {metrics}");
    // Not on the public address.
    api.raw(Method::GET, "/metrics", &[], None)
        .await
        .expect_error(404, "not_found");

    let a = api.user("Alice").await;
    let b = api.user("Bob").await;
    assert_ne!(a.user_id, b.user_id);

    let me = api.get("/v1/me", &a.token).await;
    let me = me.expect(200);
    assert_eq!(me["user_id"], a.user_id.as_str());
    assert_eq!(me["email"], a.email.as_str());
    assert_eq!(me["display_name"], "Alice");

    // A writes five entries; every write reads back at once with min_position.
    let texts = [
        "Woke up early and went for a run, feeling great and full of energy.",
        "Work was stressful today, the deadline scares me.",
        "Dinner with old friends, we laughed a lot. I love them.",
        "Rainy day, a bit sad and lonely at home.",
        "Got the promotion! I am so happy and proud.",
    ];
    let mut created = Vec::new();
    let mut last_position = 0;
    for t in texts {
        let c = api.create_entry(&a.token, t).await;
        assert!(c.position > last_position, "positions increase");
        last_position = c.position;
        let r = api
            .get(
                &format!("/v1/entries/{}?min_position={}", c.entry_id, c.position),
                &a.token,
            )
            .await;
        let e = r.expect(200);
        assert_eq!(e["entry_id"], c.entry_id.as_str());
        assert_eq!(e["text"], t);
        assert_eq!(e["revision"], 0);
        assert!(
            e["created_at"].is_string() && e["updated_at"].is_string(),
            "{e}"
        );
        assert!(r.position() >= c.position, "the read waited for its write");
        created.push(c);
    }

    // Paging, newest first, with a cursor, two per page.
    let mut pages = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/v1/entries?limit=2&min_position={last_position}");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={}", common::urlencode(c)));
        }
        let r = api.get(&path, &a.token).await;
        let body = r.expect(200);
        assert!(r.position() >= last_position);
        let ids: Vec<String> = body["entries"]
            .as_array()
            .expect("entries")
            .iter()
            .map(|e| e["entry_id"].as_str().expect("entry_id").to_owned())
            .collect();
        pages.push(ids);
        match body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
        assert!(pages.len() < 10, "paging ends");
    }
    let newest_first: Vec<String> = created.iter().rev().map(|c| c.entry_id.clone()).collect();
    assert_eq!(
        pages.iter().map(Vec::len).collect::<Vec<_>>(),
        vec![2, 2, 1],
        "five entries in pages of two: {pages:?}"
    );
    assert_eq!(pages.concat(), newest_first, "newest first, each once");

    // Edit one entry.
    let edited = &created[1];
    let new_text = "Work was stressful, but I finished on time and I am relieved.";
    let r = api
        .send(
            Method::PUT,
            &format!("/v1/entries/{}", edited.entry_id),
            Some(&a.token),
            Some(&json!({"text": new_text, "expected_revision": 0})),
        )
        .await;
    let body = r.expect(200);
    assert_eq!(body["entry_id"], edited.entry_id.as_str());
    assert_eq!(body["revision"], 1);
    let edit_pos = r.position();
    assert_eq!(r.position_header(), Some(edit_pos));
    let e = api
        .get(
            &format!("/v1/entries/{}?min_position={edit_pos}", edited.entry_id),
            &a.token,
        )
        .await;
    let e = e.expect(200);
    assert_eq!(e["text"], new_text);
    assert_eq!(e["revision"], 1);

    // Delete another, with its revision.
    let deleted = &created[3];
    let r = api
        .send(
            Method::DELETE,
            &format!("/v1/entries/{}?expected_revision=0", deleted.entry_id),
            Some(&a.token),
            None,
        )
        .await;
    r.expect(200);
    let del_pos = r.position();
    let gone = api
        .get(
            &format!("/v1/entries/{}?min_position={del_pos}", deleted.entry_id),
            &a.token,
        )
        .await;
    assert!(
        matches!(gone.code(), Some("not_found") | Some("entry_deleted"))
            && matches!(gone.status.as_u16(), 404 | 410),
        "a deleted entry is gone: {} {}",
        gone.status,
        gone.text
    );
    let put_deleted = api
        .send(
            Method::PUT,
            &format!("/v1/entries/{}", deleted.entry_id),
            Some(&a.token),
            Some(&json!({"text": "resurrect", "expected_revision": 0})),
        )
        .await;
    put_deleted.expect_error(410, "entry_deleted");

    let listed = api.list_all(&a.token, 100, del_pos).await;
    let listed_ids: Vec<&str> = listed
        .iter()
        .map(|e| e["entry_id"].as_str().unwrap_or(""))
        .collect();
    let expected: Vec<&str> = created
        .iter()
        .rev()
        .filter(|c| c.entry_id != deleted.entry_id)
        .map(|c| c.entry_id.as_str())
        .collect();
    assert_eq!(listed_ids, expected, "four entries left, newest first");

    // B writes too.
    let b1 = api
        .create_entry(
            &b.token,
            "A joyful walk in the sun, I feel happy and grateful.",
        )
        .await;
    let b2 = api
        .create_entry(&b.token, "Nervous about tomorrow's exam, a little afraid.")
        .await;
    assert!(b2.position > b1.position);
    let b_list = api.list_all(&b.token, 100, b2.position).await;
    assert_eq!(b_list.len(), 2, "B sees only B's entries");

    // Moods after the worker caught up: the edited entry's mood is of its new text.
    let a_entries = wait_all_moods(&api, &a.token, 4).await;
    for e in &a_entries {
        assert_mood(&e["mood"]);
    }
    wait_all_moods(&api, &b.token, 2).await;

    // Timeline: per day, counting A's four live entries once each.
    let total = eventually(
        "the timeline counts A's four live entries",
        CATCH_UP,
        || async {
            let r = api.get("/v1/mood/timeline", &a.token).await;
            let body = r.expect(200).clone();
            assert!(body["position"].is_u64(), "timeline answers a position");
            let t = timeline_total(&body);
            (t == 4).then_some(t)
        },
    )
    .await;
    assert_eq!(total, 4);
    let today = e["updated_at"].as_str().expect("updated_at")[..10].to_owned();
    let r = api
        .get(
            &format!("/v1/mood/timeline?from={today}&to={today}"),
            &a.token,
        )
        .await;
    let body = r.expect(200);
    for d in body["days"].as_array().expect("days") {
        assert_eq!(d["date"], today.as_str(), "from/to bound the days");
    }

    // Matches: each sees the other, with an explanation, never themself.
    let am = wait_match(&api, &a, &b).await;
    assert_matches_shape(&am, &a);
    let bm = wait_match(&api, &b, &a).await;
    assert_matches_shape(&bm, &b);
    let r = api.get("/v1/matches?k=1", &a.token).await;
    assert!(
        r.expect(200)["matches"].as_array().expect("matches").len() <= 1,
        "k bounds the list"
    );

    // Logout revokes this token only.
    let r = api
        .send(Method::DELETE, "/v1/sessions/current", Some(&a.token), None)
        .await;
    r.expect(204);
    api.get("/v1/me", &a.token)
        .await
        .expect_error(401, "unauthorized");
    api.get("/v1/entries", &a.token)
        .await
        .expect_error(401, "unauthorized");
    api.get("/v1/me", &b.token).await.expect(200);
    // A new login works and still sees A's data.
    let token = api.login(&a.email, &a.password).await;
    assert_eq!(api.list_all(&token, 100, 0).await.len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn user_b_cannot_touch_user_a_data() {
    let Some(server) = Server::lexicon().await else {
        return;
    };
    let api = server.api();
    let a = api.user("Alice").await;
    let b = api.user("Bob").await;

    let a1 = api
        .create_entry(&a.token, "Alice's secret: I am happy about the garden.")
        .await;
    let a2 = api
        .create_entry(&a.token, "Alice's second entry, a calm evening.")
        .await;
    let b1 = api
        .create_entry(&b.token, "Bob is angry about the traffic.")
        .await;
    let head = a2.position.max(b1.position);

    // Read, edit, delete A's entry by id: 404, exactly as for an id nobody has.
    let nobody = Uuid::new_v4();
    for id in [a1.entry_id.clone(), nobody.to_string()] {
        let path = format!("/v1/entries/{id}?min_position={head}");
        let r = api.get(&path, &b.token).await;
        r.expect_error(404, "not_found");
        assert!(
            !r.text.contains("Alice"),
            "nothing of A's entry leaks: {}",
            r.text
        );
        let r = api
            .send(
                Method::PUT,
                &format!("/v1/entries/{id}"),
                Some(&b.token),
                Some(&json!({"text": "Bob was here", "expected_revision": 0})),
            )
            .await;
        r.expect_error(404, "not_found");
        assert!(
            r.json["error"].get("current_revision").is_none(),
            "no revision leaks: {}",
            r.text
        );
        for q in ["", "?expected_revision=0", "?expected_revision=7"] {
            let r = api
                .send(
                    Method::DELETE,
                    &format!("/v1/entries/{id}{q}"),
                    Some(&b.token),
                    None,
                )
                .await;
            r.expect_error(404, "not_found");
        }
    }

    // Lists, timeline and matches only ever show B's own data.
    let b_list = api.list_all(&b.token, 100, head).await;
    let ids: HashSet<&str> = b_list
        .iter()
        .map(|e| e["entry_id"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        ids,
        HashSet::from([b1.entry_id.as_str()]),
        "B lists only B's entry"
    );
    wait_all_moods(&api, &b.token, 1).await;
    wait_all_moods(&api, &a.token, 2).await;
    let r = api
        .get(&format!("/v1/mood/timeline?min_position={head}"), &b.token)
        .await;
    assert_eq!(
        timeline_total(r.expect(200)),
        1,
        "B's timeline counts B's one entry: {}",
        r.text
    );
    let r = api.get("/v1/matches?k=50", &b.token).await;
    let matches = r.expect(200)["matches"]
        .as_array()
        .expect("matches")
        .clone();
    assert_matches_shape(&matches, &b);
    assert!(
        !r.text.contains("garden"),
        "matches never carry another's text: {}",
        r.text
    );

    // A deletes a2; B still gets 404 (not 410) for it.
    let r = api
        .send(
            Method::DELETE,
            &format!("/v1/entries/{}", a2.entry_id),
            Some(&a.token),
            None,
        )
        .await;
    r.expect(200);
    let r = api
        .send(
            Method::PUT,
            &format!("/v1/entries/{}", a2.entry_id),
            Some(&b.token),
            Some(&json!({"text": "x", "expected_revision": 1})),
        )
        .await;
    r.expect_error(404, "not_found");

    // A's data is unchanged.
    let r = api
        .get(&format!("/v1/entries/{}", a1.entry_id), &a.token)
        .await;
    let e = r.expect(200);
    assert_eq!(e["text"], a1.text.as_str());
    assert_eq!(e["revision"], 0);
    let a_list = api.list_all(&a.token, 100, 0).await;
    assert_eq!(a_list.len(), 1);
    assert_eq!(a_list[0]["entry_id"], a1.entry_id.as_str());
}
