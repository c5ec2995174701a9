//! The mood worker over the in-memory stores with a deterministic analyzer
//! (a real `MoodAnalyzer` that reads the mood off the words): one
//! `MoodAnalyzed` per entry revision, restarts and crashes, shredded users,
//! and the mood timeline it feeds.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use metachat_analysis::{Emotion, Mood, TextAnalyzer};
use metachat_core::codec::Codec;
use metachat_core::event::{Envelope, Metadata};
use metachat_core::memory::{InMemoryEventStore, InMemoryReadModels};
use metachat_core::projection::ProjectionRunner;
use metachat_core::read_model::{Commit, ReadModelStore};
use metachat_core::store::{Direction, EventReader};
use metachat_domain::mood::{self, mood_event_id, mood_stream, open_mood, open_theme};
use metachat_domain::mood_worker::MOOD_WORKER;
use metachat_domain::{
    Date, Diaries, EntryId, KeyVault, MoodEvent, MoodTimeline, MoodWorker, UserId, Users,
};
use proptest::prelude::*;

const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA";

/// Reads the mood off the words: each "glad" pulls valence up, each "sad"
/// down; the dominant emotion follows the majority. Its embedding is a
/// small unit vector of letter statistics.
#[derive(Debug, Default, Clone)]
struct WordAnalyzer {
    calls: Arc<AtomicUsize>,
    largest_batch: Arc<AtomicUsize>,
}

fn mood_of(text: &str) -> Mood {
    let glad = text.matches("glad").count();
    let sad = text.matches("sad").count();
    let (g, s) = (glad as f32, sad as f32);
    let dominant = match glad.cmp(&sad) {
        std::cmp::Ordering::Greater => Emotion::Joy,
        std::cmp::Ordering::Less => Emotion::Sadness,
        std::cmp::Ordering::Equal => Emotion::Neutral,
    };
    Mood {
        valence: (g - s) / (g + s + 1.0),
        valence_label: metachat_analysis::mood::ValenceLabel::with_band(
            (g - s) / (g + s + 1.0),
            0.2,
            false,
        ),
        valence_probability: None,
        arousal: (g + s) / (g + s + 1.0),
        emotions: Emotion::ALL
            .iter()
            .map(|&e| (e, if e == dominant { 1.0 } else { 0.0 }))
            .collect(),
        dominant,
        confidence: 1.0,
        model_id: "glad-sad/v1".into(),
        schema_version: Mood::SCHEMA_VERSION,
        windows: 1,
    }
}

fn embedding_of(text: &str) -> Vec<f32> {
    let v = [
        text.len() as f32,
        text.chars().filter(|c| "aeiou".contains(*c)).count() as f32,
        text.chars().filter(|c| c.is_whitespace()).count() as f32,
        1.0,
    ];
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter().map(|x| x / norm).collect()
}

#[async_trait]
impl TextAnalyzer for WordAnalyzer {
    type Output = Mood;

    async fn analyze(&self, texts: &[String]) -> metachat_core::Result<Vec<Mood>> {
        Ok(self
            .analyze_with_embeddings(texts)
            .await?
            .into_iter()
            .map(|(m, _)| m)
            .collect())
    }

    async fn analyze_with_embeddings(
        &self,
        texts: &[String],
    ) -> metachat_core::Result<Vec<(Mood, Option<Vec<f32>>)>> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.largest_batch.fetch_max(texts.len(), Ordering::Relaxed);
        Ok(texts
            .iter()
            .map(|t| (mood_of(t), Some(embedding_of(t))))
            .collect())
    }

    fn model_id(&self) -> &str {
        "glad-sad/v1"
    }
}

type Store = Arc<InMemoryEventStore>;
type Rm = Arc<InMemoryReadModels>;
type Worker = MoodWorker<Store, Rm, WordAnalyzer>;

struct World {
    store: Store,
    rm: Rm,
    vault: KeyVault<Rm>,
    users: Users<Store, Rm>,
    diaries: Diaries<Store, Rm>,
    analyzer: WordAnalyzer,
}

impl World {
    fn new() -> Self {
        let store = Arc::new(InMemoryEventStore::new());
        let rm = Arc::new(InMemoryReadModels::new());
        let vault = KeyVault::new(rm.clone());
        World {
            users: Users::new(
                store.clone(),
                vault.clone(),
                metachat_domain::BlindIndexKey::from_bytes([1; 32]),
            ),
            diaries: Diaries::new(store.clone(), vault.clone()),
            vault,
            rm,
            store,
            analyzer: WordAnalyzer::default(),
        }
    }

    fn worker(&self, batch: usize) -> Worker {
        MoodWorker::new(
            self.store.clone(),
            self.rm.clone(),
            self.vault.clone(),
            self.analyzer.clone(),
        )
        .with_batch_size(batch)
    }

    async fn user(&self, email: &str) -> UserId {
        let id = UserId::new();
        self.users
            .register(id, email, HASH, "Someone", Metadata::default())
            .await
            .expect("register");
        id
    }

    async fn create(&self, author: UserId, text: &str) -> EntryId {
        let id = EntryId::new();
        self.diaries
            .create(id, author, text, Metadata::default())
            .await
            .expect("create");
        id
    }

    async fn edit(&self, author: UserId, entry: EntryId, text: &str) {
        self.diaries
            .edit(entry, author, text, None, Metadata::default())
            .await
            .expect("edit");
    }

    /// Every mood event of the log, with its envelope.
    async fn moods(&self) -> Vec<(Envelope, MoodEvent)> {
        let codec = mood::codec();
        self.store
            .read_all(0, usize::MAX)
            .await
            .expect("log")
            .into_iter()
            .filter(|e| e.stream_id.category() == "mood")
            .map(|e| {
                let m = codec.decode(&e).expect("decode").expect("mood");
                (e, m)
            })
            .collect()
    }

    async fn created_at(&self, entry: EntryId) -> metachat_core::event::Timestamp {
        let stream = metachat_core::event::StreamId::from_parts("entry", entry).expect("id");
        self.store
            .read_stream(&stream, 0, Direction::Forward, 1)
            .await
            .expect("read")[0]
            .recorded_at
    }
}

#[tokio::test]
async fn created_and_edited_entries_each_get_their_mood() {
    let w = World::new();
    let (ada, bob) = (
        w.user("ada@example.org").await,
        w.user("bob@example.org").await,
    );
    let e1 = w.create(ada, "glad glad morning").await;
    w.edit(ada, e1, "a sad sad evening").await;
    let e2 = w.create(bob, "plain words").await;
    let texts: HashMap<(EntryId, u64), &str> = [
        ((e1, 1), "glad glad morning"),
        ((e1, 2), "a sad sad evening"),
        ((e2, 1), "plain words"),
    ]
    .into();

    let worker = w.worker(2);
    let next = worker.catch_up().await.expect("catch up");
    assert_eq!(next, w.store.next_position().await.expect("head"));
    assert_eq!(worker.checkpoint().await.expect("checkpoint"), next);

    let moods = w.moods().await;
    assert_eq!(moods.len(), 3);
    for (env, event) in &moods {
        let MoodEvent::MoodAnalyzed {
            entry_id,
            author,
            entry_revision,
            entry_created_at,
            mood,
            theme,
        } = event;
        let text = texts[&(*entry_id, *entry_revision)];
        assert_eq!(env.stream_id, mood_stream(*entry_id).expect("stream"));
        assert_eq!(
            env.event_id,
            mood_event_id(*entry_id, *entry_revision, "glad-sad/v1")
        );
        assert_eq!(*author, if *entry_id == e1 { ada } else { bob });
        assert_eq!(*entry_created_at, w.created_at(*entry_id).await);
        let key = w.vault.get(*author).await.expect("vault").expect("key");
        assert_eq!(
            open_mood(&key, *entry_id, *entry_revision, mood).expect("opens"),
            mood_of(text)
        );
        let theme = theme.as_ref().expect("theme");
        assert_eq!(
            open_theme(&key, *entry_id, *entry_revision, theme).expect("opens"),
            embedding_of(text)
        );
    }
    let stats = worker.stats();
    assert_eq!((stats.analyzed, stats.skipped, stats.duplicates), (3, 0, 0));
    assert!(w.analyzer.largest_batch.load(Ordering::Relaxed) <= 2);

    // The timeline shows the latest revision's mood.
    ProjectionRunner::new(
        w.store.clone(),
        w.rm.clone(),
        MoodTimeline::new(w.vault.clone()),
    )
    .catch_up()
    .await
    .expect("timeline");
    let latest = MoodTimeline::analyzed_mood(&*w.rm, &w.vault, ada, e1)
        .await
        .expect("read")
        .expect("mood");
    assert_eq!(latest.revision, 2);
    assert_eq!(latest.mood, mood_of("a sad sad evening"));
    assert_eq!(
        MoodTimeline::entry_mood(&*w.rm, &w.vault, bob, e1)
            .await
            .expect("read"),
        None
    );
    let days = MoodTimeline::days(&*w.rm, &w.vault, ada, None, None)
        .await
        .expect("days");
    assert_eq!(days.len(), 1);
    assert_eq!(days[0].date, Date::of_timestamp(w.created_at(e1).await));
    assert_eq!(
        (days[0].entries, days[0].dominant_emotion),
        (1, Emotion::Sadness)
    );
}

#[tokio::test]
async fn a_restart_or_a_crash_analyses_nothing_twice() {
    let w = World::new();
    let ada = w.user("ada@example.org").await;
    for i in 0..5 {
        w.create(ada, &format!("glad day {i}")).await;
    }
    w.worker(2).catch_up().await.expect("first run");
    assert_eq!(w.moods().await.len(), 5);

    // A restart resumes from the checkpoint.
    let again = w.worker(2);
    again.catch_up().await.expect("restart");
    assert_eq!(again.stats().analyzed, 0);
    assert_eq!(w.moods().await.len(), 5);
    w.create(ada, "one more, sad").await;
    again.catch_up().await.expect("more");
    assert_eq!(again.stats().analyzed, 1);
    assert_eq!(w.moods().await.len(), 6);

    // A crash after the appends, before the checkpoint: everything is
    // analyzed again, and nothing is appended again.
    w.rm.reset_checkpoint(MOOD_WORKER).await.expect("reset");
    let after_crash = w.worker(4);
    after_crash.catch_up().await.expect("after crash");
    assert_eq!(after_crash.stats().duplicates, 6);
    assert_eq!(after_crash.stats().analyzed, 0);
    assert_eq!(w.moods().await.len(), 6);
}

#[tokio::test]
async fn entries_of_a_shredded_user_are_skipped() {
    let w = World::new();
    let (ada, bob) = (
        w.user("ada@example.org").await,
        w.user("bob@example.org").await,
    );
    let e = w.create(ada, "glad").await;
    w.edit(ada, e, "sad").await;
    let b = w.create(bob, "glad too").await;
    w.users
        .erase(ada, Metadata::default())
        .await
        .expect("erase");
    w.vault.shred(ada).await.expect("shred");

    let worker = w.worker(8);
    worker.catch_up().await.expect("catch up");
    let moods = w.moods().await;
    assert_eq!(moods.len(), 1);
    assert_eq!(moods[0].1.entry_id(), b);
    let stats = worker.stats();
    assert_eq!((stats.analyzed, stats.skipped), (1, 2));
}

#[tokio::test]
async fn run_follows_the_log_and_stops_on_shutdown() {
    let w = Arc::new(World::new());
    let ada = w.user("ada@example.org").await;
    w.create(ada, "before start").await;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = Arc::new(w.worker(3));
    let task = {
        let worker = worker.clone();
        tokio::spawn(async move {
            worker
                .run(async {
                    let _ = stopped.await;
                })
                .await
        })
    };
    w.create(ada, "while running").await;
    // Wait (bounded) until the worker recorded both.
    for _ in 0..500 {
        if w.moods().await.len() == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(w.moods().await.len(), 2);
    stop.send(()).expect("stop");
    let next = task.await.expect("join").expect("run");
    assert_eq!(worker.checkpoint().await.expect("checkpoint"), next);
    assert!(next > 0);
}

#[derive(Debug, Clone)]
enum Op {
    Create {
        user: usize,
        text: usize,
    },
    Edit {
        nth: usize,
        text: usize,
    },
    Delete {
        nth: usize,
    },
    CatchUp,
    /// The worker's checkpoint goes back to a fraction of the head (a crash
    /// before checkpoints were stored).
    Crash {
        back_to_percent: u64,
    },
}

const TEXTS: [&str; 4] = ["glad", "sad sad", "glad sad glad", "nothing much"];

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..3usize, 0..TEXTS.len()).prop_map(|(user, text)| Op::Create { user, text }),
        3 => (0..12usize, 0..TEXTS.len()).prop_map(|(nth, text)| Op::Edit { nth, text }),
        1 => (0..12usize).prop_map(|nth| Op::Delete { nth }),
        1 => Just(Op::CatchUp),
        1 => (0..=100u64).prop_map(|back_to_percent| Op::Crash { back_to_percent }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]

    /// Any interleaving of creates, edits and deletes across users, with
    /// catch-ups and crashes in between: afterwards every entry revision that
    /// set a text has exactly one `MoodAnalyzed`, with that text's mood.
    #[test]
    fn one_mood_per_entry_revision(ops in proptest::collection::vec(op(), 0..40), batch in 1usize..6) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().build()
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        rt.block_on(async {
            let w = World::new();
            let users = [
                w.user("a@example.org").await,
                w.user("b@example.org").await,
                w.user("c@example.org").await,
            ];
            // (entry, author, revision, live) in creation order.
            let mut entries: Vec<(EntryId, UserId, u64, bool)> = Vec::new();
            let mut current_text: HashMap<EntryId, &str> = HashMap::new();
            let mut expected: BTreeMap<(EntryId, u64), &str> = BTreeMap::new();
            for op in ops {
                match op {
                    Op::Create { user, text } => {
                        let id = w.create(users[user], TEXTS[text]).await;
                        entries.push((id, users[user], 1, true));
                        current_text.insert(id, TEXTS[text]);
                        expected.insert((id, 1), TEXTS[text]);
                    }
                    Op::Edit { nth, text } => {
                        if let Some(e) = entries.get_mut(nth).filter(|e| e.3) {
                            w.edit(e.1, e.0, TEXTS[text]).await;
                            if current_text[&e.0] != TEXTS[text] {
                                e.2 += 1;
                                current_text.insert(e.0, TEXTS[text]);
                                expected.insert((e.0, e.2), TEXTS[text]);
                            }
                        }
                    }
                    Op::Delete { nth } => {
                        if let Some(e) = entries.get_mut(nth).filter(|e| e.3) {
                            w.diaries.delete(e.0, e.1, None, Metadata::default()).await.expect("delete");
                            e.2 += 1;
                            e.3 = false;
                        }
                    }
                    Op::CatchUp => {
                        w.worker(batch).catch_up().await.expect("catch up");
                    }
                    Op::Crash { back_to_percent } => {
                        let head = w.store.next_position().await.expect("head");
                        let at = w.worker(batch).checkpoint().await.expect("checkpoint");
                        let back = at.min(head * back_to_percent / 100);
                        w.rm.commit(Commit { ops: vec![], checkpoint: Some((MOOD_WORKER.into(), back)) })
                            .await.expect("rewind");
                    }
                }
            }
            w.worker(batch).catch_up().await.expect("final catch up");
            let mut got: BTreeMap<(EntryId, u64), Vec<Mood>> = BTreeMap::new();
            for (_, m) in w.moods().await {
                let MoodEvent::MoodAnalyzed { entry_id, entry_revision, mood, author, .. } = m;
                let key = w.vault.get(author).await.expect("vault").expect("key");
                let mood = open_mood(&key, entry_id, entry_revision, &mood).expect("opens");
                got.entry((entry_id, entry_revision)).or_default().push(mood);
            }
            prop_assert_eq!(
                got.keys().collect::<Vec<_>>(),
                expected.keys().collect::<Vec<_>>()
            );
            for (k, moods) in &got {
                prop_assert_eq!(moods.len(), 1, "one event for {:?}", k);
                prop_assert_eq!(&moods[0], &mood_of(expected[k]));
            }
            Ok(())
        })?;
    }
}

/// Two workers in one consumer group on a bus fed by the relay: every entry
/// revision gets exactly one mood, though the in-memory bus hands both
/// members the same deliveries (at-least-once, the worst a rebalance does).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_in_one_group_record_one_mood_per_revision() {
    use metachat_core::memory::InMemoryEventBus;
    use metachat_core::relay::Relay;

    let w = Arc::new(World::new());
    let ada = w.user("ada@example.org").await;
    let bob = w.user("bob@example.org").await;
    let mut entries = Vec::new();
    for i in 0..12 {
        let author = if i % 2 == 0 { ada } else { bob };
        entries.push((author, w.create(author, &format!("entry {i} happy")).await));
    }
    for (author, entry) in entries.iter().take(3) {
        w.edit(*author, *entry, "edited and sad").await;
    }
    let bus = Arc::new(InMemoryEventBus::new());
    Relay::new(
        w.store.clone(),
        bus.clone(),
        InMemoryReadModels::new(),
        "relay",
        "t.",
    )
    .catch_up()
    .await
    .expect("relay");
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut tasks = Vec::new();
    let mut workers = Vec::new();
    for _ in 0..2 {
        let worker = Arc::new(w.worker(4));
        workers.push(worker.clone());
        let (bus, mut stop) = (bus.clone(), stop_rx.clone());
        tasks.push(tokio::spawn(async move {
            worker
                .run_on_bus(&bus, "t.entry", "mood", async move {
                    let _ = stop.wait_for(|s| *s).await;
                })
                .await
        }));
    }
    for _ in 0..500 {
        if w.moods().await.len() >= 15 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    // Let any late duplicate land before counting.
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    stop_tx.send(true).expect("stop");
    for t in tasks {
        t.await.expect("join").expect("run_on_bus");
    }
    let mut revisions = std::collections::BTreeSet::new();
    for (_, m) in w.moods().await {
        let MoodEvent::MoodAnalyzed {
            entry_id,
            entry_revision,
            ..
        } = m;
        assert!(
            revisions.insert((entry_id, entry_revision)),
            "a second mood for {entry_id} revision {entry_revision}"
        );
    }
    assert_eq!(
        revisions.len(),
        15,
        "12 creations and 3 edits, one mood each"
    );
    let analyzed: u64 = workers.iter().map(|w| w.stats().analyzed).sum();
    assert!(analyzed >= 15, "the workers recorded every revision");
}

/// A mood worker keeps the creation dates itself: an edit delivered in a
/// later batch than its entry's creation counts for the creation's day
/// even when the worker's store holds none of the diary's streams (as a
/// mood service fed by the bus, reading no other service's data); a
/// deletion forgets the date.
#[tokio::test]
async fn an_edit_in_a_later_batch_keeps_the_creation_date_without_the_diary_stream() {
    let w = World::new();
    let ada = w.user("ada@example.org").await;
    let entry = w.create(ada, "glad glad morning").await;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    w.edit(ada, entry, "a sad sad evening").await;
    let created_at = w.created_at(entry).await;
    let diary: Vec<Envelope> = w
        .store
        .read_all(0, usize::MAX)
        .await
        .expect("log")
        .into_iter()
        .filter(|e| e.stream_id.category() == "entry")
        .collect();
    assert_eq!(diary.len(), 2);
    assert!(diary[1].recorded_at > created_at);

    // The worker's own store: no diary stream in it.
    let own: Store = Arc::new(InMemoryEventStore::new());
    let worker: Worker = MoodWorker::new(
        own.clone(),
        w.rm.clone(),
        w.vault.clone(),
        w.analyzer.clone(),
    );
    worker.handle(&diary[..1]).await.expect("the creation");
    worker.handle(&diary[1..]).await.expect("the edit, alone");
    let codec = mood::codec();
    let moods: Vec<MoodEvent> = own
        .read_all(0, usize::MAX)
        .await
        .expect("log")
        .iter()
        .map(|e| codec.decode(e).expect("decode").expect("mood"))
        .collect();
    assert_eq!(moods.len(), 2);
    for MoodEvent::MoodAnalyzed {
        entry_created_at,
        entry_revision,
        ..
    } in &moods
    {
        assert_eq!(
            *entry_created_at, created_at,
            "revision {entry_revision} counts for the creation's day"
        );
    }

    w.diaries
        .delete(entry, ada, None, Metadata::default())
        .await
        .expect("delete");
    let deleted = w.store.read_all(0, usize::MAX).await.expect("log");
    let deleted: Vec<Envelope> = deleted
        .into_iter()
        .filter(|e| e.stream_id.category() == "entry")
        .skip(2)
        .collect();
    assert_eq!(deleted.len(), 1);
    assert!(w
        .rm
        .get(Worker::ENTRY_DATES, &entry.to_string())
        .await
        .expect("get")
        .is_some());
    worker.handle(&deleted).await.expect("the deletion");
    assert!(w
        .rm
        .get(Worker::ENTRY_DATES, &entry.to_string())
        .await
        .expect("get")
        .is_none());
}
