//! End to end: one mailbox is one account whatever Unicode form its address
//! is typed in, and display names that hide or spoof are refused.

mod common;

use common::Server;
use reqwest::Method;
use serde_json::json;
use uuid::Uuid;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_mailbox_one_account() {
    let Some(server) = Server::lexicon().await else {
        return;
    };
    let api = server.api();
    let tag = &Uuid::new_v4().simple().to_string()[..10];
    let password = "correct horse battery";
    // (the address registered, the look-alikes that must be the same one)
    let cases = [
        (
            format!("ada{tag}@example.org"),
            vec![
                format!("ＡＤＡ{}@ＥＸＡＭＰＬＥ.org", to_fullwidth(tag)),
                format!("ADA{tag}@Example.ORG"),
            ],
        ),
        (
            format!("jos\u{e9}{tag}@caf\u{e9}.fr"),
            vec![format!("jose\u{301}{tag}@cafe\u{301}.fr")],
        ),
        (
            format!("anna{tag}@пример.рф"),
            vec![
                format!("anna{tag}@xn--e1afmkfd.xn--p1ai"),
                format!("ANNA{tag}@ПРИМЕР.РФ"),
            ],
        ),
    ];
    for (first, alikes) in &cases {
        api.register(first, password, "Ada").await;
        for alike in alikes {
            let r = api
                .send(
                    Method::POST,
                    "/v1/users",
                    None,
                    Some(&json!({"email": alike, "password": password, "display_name": "Eve"})),
                )
                .await;
            r.expect_error(409, "email_taken");
            // And the look-alike logs in to the one account.
            api.login(alike, password).await;
        }
    }
    // Invisible characters make no new address: they are refused.
    let r = api
        .send(
            Method::POST,
            "/v1/users",
            None,
            Some(&json!({"email": format!("ada\u{200b}{tag}@example.org"), "password": password, "display_name": "Eve"})),
        )
        .await;
    r.expect_error(422, "invalid_field");
}

fn to_fullwidth(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '0'..='9' | 'a'..='z' => char::from_u32(c as u32 - 0x21 + 0xFF01).unwrap_or(c),
            _ => c,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hiding_and_spoofing_display_names_are_refused() {
    let Some(server) = Server::lexicon().await else {
        return;
    };
    let api = server.api();
    for name in [
        "Ada\u{202e}",
        "\u{2066}Admin",
        "\u{200b}",
        "\u{3164}",
        "\u{200b}\u{2060}",
        "...",
        "P\u{430}ypal",
    ] {
        let email = format!("n{}@example.org", Uuid::new_v4().simple());
        let r = api
            .send(
                Method::POST,
                "/v1/users",
                None,
                Some(&json!({"email": email, "password": "password1", "display_name": name})),
            )
            .await;
        let body = r.expect_error(422, "invalid_field");
        assert!(
            body.to_string().contains("display_name"),
            "{name:?}: {body}"
        );
    }
    for name in ["Ivan Иванов", "山田 太郎", "Zoë"] {
        let email = format!("n{}@example.org", Uuid::new_v4().simple());
        api.register(&email, "password1", name).await;
    }
}
