//! Sessions over HTTP: signed access tokens, refresh tokens that rotate and
//! are used once, and a logout that every route refuses at once (on the
//! distributed system, the diary and matching processes learn it from
//! Kafka before the logout answers).

mod common;

use common::{Api, Server};
use reqwest::Method;
use serde_json::{json, Value};

async fn login(api: &Api, email: &str, password: &str) -> Value {
    let r = api
        .send(
            Method::POST,
            "/v1/sessions",
            None,
            Some(&json!({"email": email, "password": password})),
        )
        .await;
    r.expect(201).clone()
}

async fn refresh(api: &Api, refresh_token: &Value) -> common::Resp {
    api.send(
        Method::POST,
        "/v1/sessions/refresh",
        None,
        Some(&json!({ "refresh_token": refresh_token })),
    )
    .await
}

fn token(session: &Value) -> &str {
    session["token"].as_str().expect("an access token")
}

#[tokio::test]
async fn refresh_tokens_rotate_and_a_logout_ends_the_session_everywhere() {
    let Some(server) = Server::lexicon().await else {
        return;
    };
    let api = server.api();
    let user = api.user("Rita").await;
    let first = login(&api, &user.email, &user.password).await;
    assert!(token(&first).starts_with("v4.public."), "{first}");
    assert!(first["refresh_token"].is_string(), "{first}");
    assert!(first["refresh_expires_at"].is_string(), "{first}");
    assert_eq!(first["user_id"], user.user_id.to_string());

    // A refresh gives a new pair; the refresh token given is used up.
    let second = refresh(&api, &first["refresh_token"]).await;
    let second = second.expect(201).clone();
    assert_ne!(second["refresh_token"], first["refresh_token"]);
    assert_eq!(second["user_id"], first["user_id"]);
    refresh(&api, &first["refresh_token"])
        .await
        .expect_error(401, "invalid_refresh_token");
    for junk in [
        json!(""),
        json!("x.y"),
        json!("00000000-0000-0000-0000-000000000000.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
    ] {
        refresh(&api, &junk)
            .await
            .expect_error(401, "invalid_refresh_token");
    }

    // Both access tokens of the session work on every service's routes.
    for t in [token(&first), token(&second)] {
        api.get("/v1/me", t).await.expect(200);
        api.get("/v1/entries", t).await.expect(200);
        api.get("/v1/matches", t).await.expect(200);
    }
    let entry = api
        .create_entry(token(&second), "a calm and happy day")
        .await;

    // Logout with the first token ends the session: the second token and
    // the latest refresh token die with it, on every route at once.
    api.send(
        Method::DELETE,
        "/v1/sessions/current",
        Some(token(&first)),
        None,
    )
    .await
    .expect(204);
    for t in [token(&first), token(&second)] {
        api.get("/v1/entries", t)
            .await
            .expect_error(401, "unauthorized");
        api.get(&format!("/v1/entries/{}", entry.entry_id), t)
            .await
            .expect_error(401, "unauthorized");
        api.get("/v1/matches", t)
            .await
            .expect_error(401, "unauthorized");
        api.get("/v1/me", t).await.expect_error(401, "unauthorized");
    }
    refresh(&api, &second["refresh_token"])
        .await
        .expect_error(401, "invalid_refresh_token");

    // Another session of the same user is untouched.
    api.get("/v1/entries", &user.token).await.expect(200);
}

#[tokio::test]
async fn erasure_ends_every_session_on_every_route() {
    let Some(server) = Server::lexicon().await else {
        return;
    };
    let api = server.api();
    let user = api.user("Sam").await;
    let other = login(&api, &user.email, &user.password).await;
    api.send(Method::DELETE, "/v1/me", Some(&user.token), None)
        .await
        .expect(200);
    for t in [user.token.as_str(), token(&other)] {
        api.get("/v1/entries", t)
            .await
            .expect_error(401, "unauthorized");
        api.get("/v1/matches", t)
            .await
            .expect_error(401, "unauthorized");
        api.get("/v1/me", t).await.expect_error(401, "unauthorized");
    }
    refresh(&api, &other["refresh_token"])
        .await
        .expect_error(401, "invalid_refresh_token");
}
