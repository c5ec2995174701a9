//! `MatchingProjection` over the in-memory store: similar users match,
//! re-analyses replace an entry's contribution, deletions and erasures
//! remove it, and a rebuild from 0 (or a restart) gives the same answers.

use std::sync::Arc;

use metachat_analysis::matching::{IndexConfig, MatchError, ProfileConfig};
use metachat_analysis::mood::{Emotion, Mood};
use metachat_core::codec::{Codec, JsonCodec};
use metachat_core::event::{NewEvent, StreamId, Timestamp};
use metachat_core::memory::{InMemoryEventStore, InMemoryReadModels};
use metachat_core::projection::{Projection, ProjectionRunner};
use metachat_core::read_model::ReadModelStore;
use metachat_core::store::{EventAppender, ExpectedVersion};
use metachat_domain::matching::{top_k_shared, MatchingProjection, MATCH_ENTRIES, MATCH_PROFILES};
use metachat_domain::mood::{self, mood_stream, seal_mood, seal_theme};
use metachat_domain::{
    diary, DataKey, DiaryEvent, EntryId, KeyVault, MoodEvent, UserEvent, UserId,
};

const DIM: usize = 4;
/// 2026-01-01T00:00:00Z.
const BASE: u64 = 1_767_225_600 * 1_000_000;

type Store = Arc<InMemoryEventStore>;
type Rm = Arc<InMemoryReadModels>;
type Runner = ProjectionRunner<Store, Rm, MatchingProjection<Rm>>;

fn mood(dominant: Emotion) -> Mood {
    Mood {
        valence: 0.2,
        valence_label: metachat_analysis::mood::ValenceLabel::with_band(0.2, 0.2, false),
        valence_probability: None,
        arousal: 0.5,
        emotions: Emotion::ALL
            .iter()
            .map(|&e| (e, if e == dominant { 0.8 } else { 0.2 / 6.0 }))
            .collect(),
        dominant,
        confidence: 1.0,
        model_id: "test".into(),
        schema_version: Mood::SCHEMA_VERSION,
        windows: 1,
    }
}

struct World {
    store: Store,
    /// The vault's own store (never a projection's collection).
    vault: KeyVault<Rm>,
    rm: Rm,
}

impl World {
    fn new() -> Self {
        World {
            store: Arc::new(InMemoryEventStore::new()),
            vault: KeyVault::new(Arc::new(InMemoryReadModels::new())),
            rm: Arc::new(InMemoryReadModels::new()),
        }
    }

    fn projection(&self) -> MatchingProjection<Rm> {
        MatchingProjection::new(
            self.vault.clone(),
            ProfileConfig::new(DIM).expect("profile config"),
            IndexConfig::new(DIM).expect("index config"),
        )
        .expect("projection")
    }

    fn runner(&self, rm: &Rm) -> Runner {
        ProjectionRunner::new(self.store.clone(), rm.clone(), self.projection()).with_batch_size(3)
    }

    async fn append(&self, stream: StreamId, event: NewEvent) {
        self.store
            .append(&stream, ExpectedVersion::Any, vec![event])
            .await
            .expect("append");
    }

    async fn analyzed(
        &self,
        author: UserId,
        entry: EntryId,
        revision: u64,
        feeling: Emotion,
        embedding: &[f32],
    ) {
        // Shredded: the worker would have no key either; seal with a
        // stranger's key, which the projection cannot have.
        let key = self
            .vault
            .get_or_create(author)
            .await
            .unwrap_or_else(|_| DataKey::generate());
        let event = MoodEvent::MoodAnalyzed {
            entry_id: entry,
            author,
            entry_revision: revision,
            entry_created_at: Timestamp(BASE),
            mood: seal_mood(&key, entry, revision, &mood(feeling)).expect("seal"),
            theme: Some(seal_theme(&key, entry, revision, embedding).expect("seal")),
        };
        let enc = mood::codec().encode(&event).expect("encode");
        self.append(
            mood_stream(entry).expect("stream"),
            NewEvent::new(enc.event_type, enc.payload)
                // A fresh id: a late re-analysis (another model) of a revision.
                .with_schema_version(enc.schema_version),
        )
        .await;
    }

    async fn deleted(&self, author: UserId, entry: EntryId, revision: u64) {
        let enc = diary::codec()
            .encode(&DiaryEvent::EntryDeleted {
                entry_id: entry,
                author,
                revision,
            })
            .expect("encode");
        self.append(
            StreamId::from_parts("entry", entry).expect("stream"),
            NewEvent::new(enc.event_type, enc.payload).with_schema_version(enc.schema_version),
        )
        .await;
    }

    async fn erased(&self, user: UserId) {
        self.vault.shred(user).await.expect("shred");
        let enc = JsonCodec::<UserEvent>::new()
            .encode(&UserEvent::UserErased { user_id: user })
            .expect("encode");
        self.append(
            StreamId::from_parts("user", user).expect("stream"),
            NewEvent::new(enc.event_type, enc.payload),
        )
        .await;
    }
}

fn users(r: &[metachat_analysis::matching::Match]) -> Vec<UserId> {
    r.iter().map(|m| UserId(m.user)).collect()
}

/// Ada and Bob write about the same thing and feel joy; Eve writes about
/// something else and feels sadness; Cy is in between.
async fn three_users(w: &World) -> (UserId, UserId, UserId, UserId) {
    let (ada, bob, eve, cy) = (UserId::new(), UserId::new(), UserId::new(), UserId::new());
    w.analyzed(ada, EntryId::new(), 1, Emotion::Joy, &[1.0, 0.1, 0.0, 0.0])
        .await;
    w.analyzed(bob, EntryId::new(), 1, Emotion::Joy, &[0.9, 0.2, 0.0, 0.0])
        .await;
    w.analyzed(
        eve,
        EntryId::new(),
        1,
        Emotion::Sadness,
        &[0.0, 0.0, 1.0, 0.1],
    )
    .await;
    w.analyzed(cy, EntryId::new(), 1, Emotion::Fear, &[0.5, 0.0, 0.5, 0.0])
        .await;
    (ada, bob, eve, cy)
}

#[tokio::test]
async fn similar_users_match_and_explanations_name_shared_emotions() {
    let w = World::new();
    let (ada, bob, eve, _cy) = three_users(&w).await;
    let runner = w.runner(&w.rm);
    runner.catch_up().await.expect("catch up");
    let best = runner.projection().top_k(ada, 3).expect("top k");
    assert_eq!(best.len(), 3);
    assert_eq!(best[0].user, bob.0);
    assert_eq!(best[2].user, eve.0);
    assert!(best[0]
        .explanation
        .shared_emotions
        .iter()
        .any(|s| s.emotion == Emotion::Joy));
    assert_eq!(
        users(&top_k_shared(&runner.projection().index(), bob, 1).expect("top k")),
        vec![ada]
    );
}

#[tokio::test]
async fn a_reanalysis_replaces_the_entry_and_a_deletion_removes_it() {
    let w = World::new();
    let (ada, bob, eve, _cy) = three_users(&w).await;
    // Ada's entry 2, edited (revision 2) to Eve's subject and mood.
    let entry = EntryId::new();
    w.analyzed(ada, entry, 1, Emotion::Joy, &[1.0, 0.0, 0.0, 0.0])
        .await;
    w.analyzed(ada, entry, 2, Emotion::Sadness, &[0.0, 0.0, 1.0, 0.0])
        .await;
    // A late analysis of revision 1 changes nothing.
    w.analyzed(ada, entry, 1, Emotion::Joy, &[1.0, 0.0, 0.0, 0.0])
        .await;
    let runner = w.runner(&w.rm);
    runner.catch_up().await.expect("catch up");
    let profile = MatchingProjection::<Rm>::profile(&*w.rm, &w.vault, ada)
        .await
        .expect("read")
        .expect("profile");
    assert_eq!(profile.theme().len(), 2, "an edit replaces, not adds");
    assert_eq!(profile.mood().len(), 2);

    // Deleting both of Ada's entries but one leaves her first entry alone.
    w.deleted(ada, entry, 2).await;
    runner.catch_up().await.expect("catch up");
    let profile = MatchingProjection::<Rm>::profile(&*w.rm, &w.vault, ada)
        .await
        .expect("read")
        .expect("profile");
    assert_eq!(profile.theme().len(), 1);
    assert_eq!(profile.mood().len(), 1);
    let best = runner.projection().top_k(ada, 1).expect("top k");
    assert_eq!(users(&best), vec![bob]);
    // An analysis of the deleted entry arriving late is ignored.
    w.analyzed(ada, entry, 3, Emotion::Sadness, &[0.0, 0.0, 1.0, 0.0])
        .await;
    runner.catch_up().await.expect("catch up");
    let profile = MatchingProjection::<Rm>::profile(&*w.rm, &w.vault, ada)
        .await
        .expect("read")
        .expect("profile");
    assert_eq!(profile.theme().len(), 1);
    let _ = eve;
}

#[tokio::test]
async fn an_erased_user_disappears_from_everyones_results_and_the_read_models() {
    let w = World::new();
    let (ada, bob, eve, cy) = three_users(&w).await;
    let runner = w.runner(&w.rm);
    runner.catch_up().await.expect("catch up");
    w.erased(bob).await;
    // Events of Bob after the erasure are ignored.
    w.analyzed(bob, EntryId::new(), 1, Emotion::Joy, &[1.0, 0.1, 0.0, 0.0])
        .await;
    runner.catch_up().await.expect("catch up");
    let p = runner.projection();
    for me in [ada, eve, cy] {
        let got = users(&p.top_k(me, 10).expect("top k"));
        assert!(!got.contains(&bob));
        assert_eq!(got.len(), 2);
    }
    assert_eq!(p.top_k(bob, 3), Err(MatchError::Erased(bob.0)));
    assert!(MatchingProjection::<Rm>::profile(&*w.rm, &w.vault, bob)
        .await
        .expect("read")
        .is_none());
    let left =
        w.rm.scan_prefix(MATCH_ENTRIES, &format!("{bob}/"), None, 10)
            .await
            .expect("scan");
    assert!(left.is_empty());
}

#[tokio::test]
async fn a_shredded_key_leaves_nothing() {
    let w = World::new();
    let (ada, ..) = three_users(&w).await;
    let dan = UserId::new();
    let entry = EntryId::new();
    let key = w.vault.get_or_create(dan).await.expect("key");
    let theme = seal_theme(&key, entry, 1, &[1.0, 0.0, 0.0, 0.0]).expect("seal");
    w.vault.shred(dan).await.expect("shred");
    let enc = mood::codec()
        .encode(&MoodEvent::MoodAnalyzed {
            entry_id: entry,
            author: dan,
            entry_revision: 1,
            entry_created_at: Timestamp(BASE),
            mood: seal_mood(&key, entry, 1, &mood(Emotion::Joy)).expect("seal"),
            theme: Some(theme),
        })
        .expect("encode");
    w.append(
        mood_stream(entry).expect("stream"),
        NewEvent::new(enc.event_type, enc.payload).with_schema_version(enc.schema_version),
    )
    .await;
    let runner = w.runner(&w.rm);
    runner.catch_up().await.expect("catch up");
    // Neither the mood nor the theme opens without the key: Dan counts for
    // nothing, and nothing of his is stored.
    assert!(MatchingProjection::<Rm>::profile(&*w.rm, &w.vault, dan)
        .await
        .expect("read")
        .is_none());
    assert!(w
        .rm
        .scan_prefix(MATCH_ENTRIES, &format!("{dan}/"), None, 10)
        .await
        .expect("scan")
        .is_empty());
    assert_eq!(runner.projection().top_k(ada, 10).expect("top k").len(), 3);
}

async fn answers(
    p: &MatchingProjection<Rm>,
    who: &[UserId],
) -> Vec<Result<Vec<UserId>, MatchError>> {
    who.iter()
        .map(|u| p.top_k(*u, 10).map(|r| users(&r)))
        .collect()
}

/// The stored profiles opened, by user; none holds a profile in the clear.
async fn opened(
    w: &World,
    docs: &[(String, metachat_core::read_model::Document)],
) -> Vec<(UserId, metachat_analysis::matching::MatchProfile)> {
    let mut out = Vec::new();
    for (k, d) in docs {
        assert!(
            !String::from_utf8_lossy(&d.value).contains("theme"),
            "sealed"
        );
        let user: UserId = k.parse().expect("user id");
        let key = w.vault.get(user).await.expect("vault").expect("key");
        let sealed: metachat_domain::Sealed = d.json().expect("sealed");
        let aad = format!("metachat/match_profiles/{user}");
        let profile = metachat_shred::open_json(&key, aad.as_bytes(), &sealed).expect("opens");
        out.push((user, profile));
    }
    out
}

#[tokio::test]
async fn rebuild_from_zero_and_restart_give_the_same_top_k() {
    let w = World::new();
    let (ada, bob, eve, cy) = three_users(&w).await;
    let e = EntryId::new();
    w.analyzed(cy, e, 1, Emotion::Joy, &[0.0, 1.0, 0.0, 0.0])
        .await;
    w.analyzed(cy, e, 2, Emotion::Anger, &[0.0, 1.0, 1.0, 0.0])
        .await;
    w.erased(eve).await;
    w.deleted(cy, e, 3).await;
    let who = [ada, bob, eve, cy];
    let runner = w.runner(&w.rm);
    runner.catch_up().await.expect("catch up");
    let before = answers(runner.projection(), &who).await;
    let profiles_before =
        w.rm.scan_prefix(MATCH_PROFILES, "", None, 100)
            .await
            .expect("scan");

    // Rebuild from 0 in place, then reload the index from the read models.
    runner.rebuild().await.expect("rebuild");
    runner
        .projection()
        .load_index(&*w.rm)
        .await
        .expect("load index");
    assert_eq!(answers(runner.projection(), &who).await, before);
    let profiles_after =
        w.rm.scan_prefix(MATCH_PROFILES, "", None, 100)
            .await
            .expect("scan");
    // Profiles are sealed under a fresh nonce each time: compare them opened.
    assert_eq!(
        opened(&w, &profiles_before).await,
        opened(&w, &profiles_after).await
    );

    // A restart: a new projection whose index is loaded from the stored profiles.
    let restarted = w.projection();
    assert_eq!(restarted.load_index(&*w.rm).await.expect("load"), 3);
    assert_eq!(answers(&restarted, &who).await, before);

    // A projection over fresh read models, from 0.
    let fresh: Rm = Arc::new(InMemoryReadModels::new());
    let other = w.runner(&fresh);
    other.catch_up().await.expect("catch up");
    assert_eq!(answers(other.projection(), &who).await, before);
    assert_eq!(other.projection().collections().len(), 3);
}
