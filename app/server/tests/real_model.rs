//! End to end with the real mood model (the server's default analyzer, e5
//! from the model directory): entries get a mood from the model, not from
//! the lexicon fallback, and a glad entry reads more positive than a
//! miserable one. Skips (`SKIPPED: …`) when the model files are missing,
//! unless `CI` is set.

mod common;

use common::{assert_mood, wait_all_moods, Server, ServerConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn entries_get_their_mood_from_the_real_model() {
    let Some(server) = Server::start(ServerConfig::model()).await else {
        return;
    };
    let api = server.api();
    let user = api.user("Kim").await;
    let glad = api
        .create_entry(
            &user.token,
            "Best day in years: we got married and everyone was laughing and dancing.",
        )
        .await;
    let sad = api
        .create_entry(
            &user.token,
            "I feel miserable and alone, I cried all night after the funeral.",
        )
        .await;
    let ru = api
        .create_entry(&user.token, "Сегодня я очень счастлив, всё получилось!")
        .await;

    let entries = wait_all_moods(&api, &user.token, 3).await;
    let mood_of = |id: &str| {
        entries
            .iter()
            .find(|e| e["entry_id"] == id)
            .map(|e| e["mood"].clone())
            .expect("listed")
    };
    for e in &entries {
        let mood = &e["mood"];
        assert_mood(mood);
        let model = mood["model_id"].as_str().unwrap_or("");
        assert!(
            !model.starts_with("lexicon"),
            "the default analyzer is the real model, not the lexicon fallback: {model}"
        );
        assert!(mood["windows"].as_u64().unwrap_or(0) >= 1, "{mood}");
        // The model's three-way valence is calibrated: its label comes with
        // the label's probability, the most probable of three.
        let p = mood["valence_probability"]
            .as_f64()
            .expect("a probability from the model");
        assert!(p > 1.0 / 3.0, "{mood}");
    }
    let (g, s, r) = (
        mood_of(&glad.entry_id),
        mood_of(&sad.entry_id),
        mood_of(&ru.entry_id),
    );
    let v = |m: &serde_json::Value| m["valence"].as_f64().unwrap_or(f64::NAN);
    assert!(v(&g) > v(&s), "glad {} vs sad {}", v(&g), v(&s));
    assert!(v(&r) > v(&s), "Russian glad {} vs sad {}", v(&r), v(&s));
    let label = |m: &serde_json::Value| m["valence_label"].as_str().unwrap_or("").to_owned();
    assert_eq!(label(&s), "negative", "{s}");
}
