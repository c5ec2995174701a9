//! The read models fed from a bus: a realistic history (registrations,
//! profile updates, entries written, edited and deleted, moods analyzed,
//! late re-analyses, erasures racing with a write or the mood worker, keys
//! shredded or not) is projected once in the log's total order by a
//! `ProjectionRunner`, and once by a `BusProjectionRunner` fed any
//! interleaving that keeps each stream's order, with redeliveries of a
//! stream's prefix (which its per-stream guard drops), in batches of any
//! size. Every projection must answer its queries the same both ways, and
//! nothing personal of an erased user may remain in its collections.
//!
//! `PROPTEST_CASES` sets the number of cases (64 by default).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use futures::StreamExt;
use metachat_analysis::matching::{IndexConfig, MatchProfile, ProfileConfig};
use metachat_analysis::{Emotion, Mood, TextAnalyzer};
use metachat_core::bus::{Acknowledge, Delivery, DeliveryStream, EventBus};
use metachat_core::codec::Codec;
use metachat_core::event::{Envelope, Metadata, NewEvent, StreamId, Timestamp};
use metachat_core::memory::{InMemoryEventStore, InMemoryReadModels};
use metachat_core::projection::{BusProjectionRunner, Projection, ProjectionRunner};
use metachat_core::read_model::ReadModelStore;
use metachat_core::store::{Direction, EventAppender, EventReader, ExpectedVersion};
use metachat_domain::directory::{UserProfile, USERS, USERS_BY_EMAIL};
use metachat_domain::matching::{
    top_k_shared, MatchingProjection, SharedMatchIndex, MATCH_ENTRIES, MATCH_PROFILES,
};
use metachat_domain::mood::{self, mood_event_id, mood_stream, seal_mood, seal_theme};
use metachat_domain::mood_timeline::{MOOD_DAYS, MOOD_ENTRIES};
use metachat_domain::timeline::{DIARY_ENTRIES, DIARY_TIMELINE};
use metachat_domain::{
    AnalyzedMood, BlindIndexKey, Diaries, DiaryCommand, DiaryTimeline, Email, EntryId, KeyVault,
    MoodDay, MoodEvent, MoodTimeline, MoodWorker, TimelineEntry, UserDirectory, UserId, UserStatus,
    Users,
};
use proptest::prelude::*;

const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA";
const DIM: usize = 4;
const USERS_N: usize = 3;
/// Two addresses for three users: an erased user's address is taken again.
const EMAILS: [&str; 2] = ["ada@example.org", "bob@example.org"];
const TEXTS: [&str; 4] = ["a glad day", "a sad day", "glad glad sad", "nothing much"];

type Store = Arc<InMemoryEventStore>;
type Rm = Arc<InMemoryReadModels>;
type Vault = KeyVault<Rm>;

// ---------------------------------------------------------------- analyzer

/// Reads the mood off the words ("glad" up, "sad" down); the embedding is
/// a small vector of letter statistics.
#[derive(Debug, Clone)]
struct WordAnalyzer;

fn mood_of(text: &str, model: &str) -> Mood {
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
            .map(|&e| (e, if e == dominant { 0.8 } else { 0.2 / 6.0 }))
            .collect(),
        dominant,
        confidence: 1.0,
        model_id: model.into(),
        schema_version: Mood::SCHEMA_VERSION,
        windows: 1,
    }
}

fn embedding_of(text: &str) -> Vec<f32> {
    let v = [
        text.len() as f32,
        text.chars().filter(|c| "aeiou".contains(*c)).count() as f32,
        text.matches("sad").count() as f32,
        1.0,
    ];
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter().map(|x| x / norm).collect()
}

#[async_trait]
impl TextAnalyzer for WordAnalyzer {
    type Output = Mood;

    async fn analyze(&self, texts: &[String]) -> metachat_core::Result<Vec<Mood>> {
        Ok(texts.iter().map(|t| mood_of(t, "glad-sad/v1")).collect())
    }

    async fn analyze_with_embeddings(
        &self,
        texts: &[String],
    ) -> metachat_core::Result<Vec<(Mood, Option<Vec<f32>>)>> {
        Ok(texts
            .iter()
            .map(|t| (mood_of(t, "glad-sad/v1"), Some(embedding_of(t))))
            .collect())
    }

    fn model_id(&self) -> &str {
        "glad-sad/v1"
    }
}

// ----------------------------------------------------------------- history

/// One step of the history; indexes are taken modulo what exists.
#[derive(Debug, Clone)]
enum Op {
    Register {
        user: usize,
        email: usize,
    },
    Profile {
        user: usize,
        name: u8,
        about: u8,
    },
    Create {
        user: usize,
        text: usize,
    },
    Edit {
        entry: usize,
        text: usize,
    },
    Delete {
        entry: usize,
    },
    /// The mood worker catches up.
    Analyze,
    /// Another model analyzes an entry revision (maybe an old one) late.
    Reanalyze {
        entry: usize,
        back: u64,
    },
    /// `Users::erase`; an entry written concurrently lands after
    /// `UserErased` (`late_entry`), the mood worker runs before the key is
    /// shredded (`late_mood`), and the server shreds the key (`shred`; not:
    /// it crashed before step 2 of the erasure sequence).
    Erase {
        user: usize,
        late_entry: bool,
        late_mood: bool,
        shred: bool,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let u = 0..USERS_N;
    prop_oneof![
        3 => (u.clone(), 0..EMAILS.len()).prop_map(|(user, email)| Op::Register { user, email }),
        1 => (u.clone(), 0u8..3, 0u8..3).prop_map(|(user, name, about)| Op::Profile { user, name, about }),
        4 => (u.clone(), 0..TEXTS.len()).prop_map(|(user, text)| Op::Create { user, text }),
        2 => (0usize..16, 0..TEXTS.len()).prop_map(|(entry, text)| Op::Edit { entry, text }),
        2 => (0usize..16).prop_map(|entry| Op::Delete { entry }),
        3 => Just(Op::Analyze),
        1 => (0usize..16, 0u64..3).prop_map(|(entry, back)| Op::Reanalyze { entry, back }),
        1 => (u, any::<bool>(), any::<bool>(), any::<bool>()).prop_map(
            |(user, late_entry, late_mood, shred)| Op::Erase { user, late_entry, late_mood, shred }
        ),
    ]
}

struct World {
    store: Store,
    /// The worker's checkpoint (never a projection's store).
    worker_rm: Rm,
    vault: Vault,
    users: Users<Store, Rm>,
    diaries: Diaries<Store, Rm>,
    user_ids: Vec<UserId>,
    /// Entries in creation order, with their authors.
    entries: Vec<(EntryId, UserId)>,
    erased: BTreeSet<UserId>,
}

impl World {
    fn new() -> Self {
        let store = Arc::new(InMemoryEventStore::new());
        let vault = KeyVault::new(Arc::new(InMemoryReadModels::new()));
        World {
            users: Users::new(
                store.clone(),
                vault.clone(),
                BlindIndexKey::from_bytes([7; 32]),
            ),
            diaries: Diaries::new(store.clone(), vault.clone()),
            worker_rm: Arc::new(InMemoryReadModels::new()),
            vault,
            store,
            // Fixed ids: a failing case replays the same stream names.
            user_ids: (1..=USERS_N as u128)
                .map(|i| UserId(uuid::Uuid::from_u128(i)))
                .collect(),
            entries: Vec::new(),
            erased: BTreeSet::new(),
        }
    }

    fn next_entry_id(&self) -> EntryId {
        EntryId(uuid::Uuid::from_u128(
            0x1000 + self.entries.len() as u128 + 1,
        ))
    }

    async fn analyze(&self) {
        MoodWorker::new(
            self.store.clone(),
            self.worker_rm.clone(),
            self.vault.clone(),
            WordAnalyzer,
        )
        .catch_up()
        .await
        .expect("mood worker");
    }

    async fn status(&self, user: UserId) -> UserStatus {
        self.users.load(user).await.expect("load").state.status()
    }

    /// Runs one step; refusals (a taken address, an erased author, a
    /// deleted entry) are part of a realistic history and ignored.
    async fn run(&mut self, op: Op) {
        let meta = Metadata::default;
        match op {
            Op::Register { user, email } => {
                let id = self.user_ids[user];
                let _ = self
                    .users
                    .register(id, EMAILS[email], HASH, &format!("User {user}"), meta())
                    .await;
            }
            Op::Profile { user, name, about } => {
                let id = self.user_ids[user];
                let name = (name > 0).then(|| format!("Name {name}"));
                let about = (about > 0).then(|| format!("About {about}"));
                let _ = self.users.update_profile(id, name, about, meta()).await;
            }
            Op::Create { user, text } => {
                let id = self.user_ids[user];
                let entry = self.next_entry_id();
                if self
                    .diaries
                    .create(entry, id, TEXTS[text], meta())
                    .await
                    .is_ok()
                {
                    self.entries.push((entry, id));
                }
            }
            Op::Edit { entry, text } => {
                if let Some(&(entry, author)) = self.pick(entry) {
                    let _ = self
                        .diaries
                        .edit(entry, author, TEXTS[text], None, meta())
                        .await;
                }
            }
            Op::Delete { entry } => {
                if let Some(&(entry, author)) = self.pick(entry) {
                    let _ = self.diaries.delete(entry, author, None, meta()).await;
                }
            }
            Op::Analyze => self.analyze().await,
            Op::Reanalyze { entry, back } => {
                if let Some(&(entry, author)) = self.pick(entry) {
                    self.reanalyze(entry, author, back).await;
                }
            }
            Op::Erase {
                user,
                late_entry,
                late_mood,
                shred,
            } => {
                let id = self.user_ids[user];
                if self.status(id).await != UserStatus::Active {
                    return;
                }
                self.users.erase(id, meta()).await.expect("erase");
                self.erased.insert(id);
                if late_entry && self.vault.get(id).await.expect("vault").is_some() {
                    // A create that checked the author before the erasure
                    // and appended after it.
                    let entry = self.next_entry_id();
                    let text = self
                        .diaries
                        .seal(id, entry, TEXTS[user % TEXTS.len()])
                        .await
                        .expect("seal");
                    let create = DiaryCommand::Create {
                        entry_id: entry,
                        author: id,
                        text,
                    };
                    self.diaries
                        .repository()
                        .execute(&entry.to_string(), &create, meta())
                        .await
                        .expect("late create");
                    self.entries.push((entry, id));
                }
                if late_mood {
                    self.analyze().await;
                }
                if shred {
                    self.vault.shred(id).await.expect("shred");
                }
            }
        }
    }

    fn pick(&self, i: usize) -> Option<&(EntryId, UserId)> {
        (!self.entries.is_empty()).then(|| &self.entries[i % self.entries.len()])
    }

    /// A late analysis of revision `current - back` by another model.
    async fn reanalyze(&self, entry: EntryId, author: UserId, back: u64) {
        let Some(key) = self.vault.get(author).await.expect("vault") else {
            return;
        };
        let stream = StreamId::from_parts("entry", entry).expect("stream");
        let events = self
            .store
            .read_stream(&stream, 0, Direction::Forward, usize::MAX)
            .await
            .expect("read");
        let Some(first) = events.first() else {
            return;
        };
        let current = self
            .diaries
            .load(entry)
            .await
            .expect("load")
            .state
            .revision();
        let revision = current.saturating_sub(back).max(1);
        let pick = (revision + back) % TEXTS.len() as u64;
        let text = TEXTS[usize::try_from(pick).expect("an index below TEXTS.len()")];
        let model = "late/v0";
        let event = MoodEvent::MoodAnalyzed {
            entry_id: entry,
            author,
            entry_revision: revision,
            entry_created_at: first.recorded_at,
            mood: seal_mood(&key, entry, revision, &mood_of(text, model)).expect("seal"),
            theme: Some(seal_theme(&key, entry, revision, &embedding_of(text)).expect("seal")),
        };
        let enc = mood::codec().encode(&event).expect("encode");
        // The same revision by the same model again is refused as a partial
        // re-append (the nonces differ): the first analysis stays, as for the
        // worker.
        let _ = self
            .store
            .append(
                &mood_stream(entry).expect("stream"),
                ExpectedVersion::Any,
                vec![NewEvent::new(enc.event_type, enc.payload)
                    .with_schema_version(enc.schema_version)
                    .with_id(mood_event_id(entry, revision, model))],
            )
            .await;
    }
}

// ------------------------------------------------------ the scripted bus

#[derive(Debug)]
struct NoAck;

#[async_trait]
impl Acknowledge for NoAck {
    async fn ack(self: Box<Self>) -> metachat_core::Result<()> {
        Ok(())
    }
}

/// A bus that delivers a given sequence once, then ends.
#[derive(Debug)]
struct ScriptedBus {
    script: Mutex<Vec<Envelope>>,
}

#[async_trait]
impl EventBus for ScriptedBus {
    async fn publish(&self, _topic: &str, _events: &[Envelope]) -> metachat_core::Result<()> {
        Ok(())
    }

    async fn subscribe(&self, topic: &str, _group: &str) -> metachat_core::Result<DeliveryStream> {
        let script = std::mem::take(&mut *self.script.lock().expect("script"));
        let topic = topic.to_owned();
        Ok(futures::stream::iter(
            script
                .into_iter()
                .map(move |e| Ok(Delivery::new(e, topic.clone(), Box::new(NoAck)))),
        )
        .boxed())
    }
}

/// A merge of the log's streams that keeps each stream's order, driven by
/// `choices`: a choice picks the stream whose next event comes next, or (one
/// in eight) delivers an already delivered prefix of a stream again.
fn interleave(log: &[Envelope], choices: &[u16]) -> Vec<Envelope> {
    let mut streams: BTreeMap<&str, (Vec<&Envelope>, usize)> = BTreeMap::new();
    for e in log {
        streams.entry(e.stream_id.as_str()).or_default().0.push(e);
    }
    let mut streams: Vec<_> = streams.into_values().collect();
    let mut out = Vec::with_capacity(log.len() * 2);
    let mut choices = choices.iter().map(|&c| usize::from(c));
    loop {
        let open: Vec<usize> = (0..streams.len())
            .filter(|&i| streams[i].1 < streams[i].0.len())
            .collect();
        if open.is_empty() {
            return out;
        }
        let c = choices.next().unwrap_or(0);
        let started: Vec<usize> = (0..streams.len()).filter(|&i| streams[i].1 > 0).collect();
        if c % 8 == 7 && !started.is_empty() {
            let (events, done) = &streams[started[(c / 8) % started.len()]];
            let from = (c / 64) % *done;
            out.extend(events[from..*done].iter().map(|e| (*e).clone()));
            continue;
        }
        let (events, done) = &mut streams[open[c % open.len()]];
        out.push(events[*done].clone());
        *done += 1;
    }
}

// --------------------------------------------------------------- answers

fn projections(vault: &Vault) -> (Vec<Box<dyn Projection>>, SharedMatchIndex) {
    let matching = MatchingProjection::new(
        vault.clone(),
        // Two recent entries: a user soon has more, so which are kept shows.
        ProfileConfig::new(DIM)
            .expect("profile config")
            .with_recent_entries(2),
        IndexConfig::new(DIM).expect("index config"),
    )
    .expect("matching");
    let index = matching.index();
    let all: Vec<Box<dyn Projection>> = vec![
        Box::new(UserDirectory::new()),
        Box::new(DiaryTimeline::new()),
        Box::new(MoodTimeline::new(vault.clone())),
        Box::new(matching),
    ];
    (all, index)
}

struct BoxedProjection(Box<dyn Projection>);

#[async_trait]
impl Projection for BoxedProjection {
    fn name(&self) -> &str {
        self.0.name()
    }
    fn collections(&self) -> Vec<String> {
        self.0.collections()
    }
    async fn apply(
        &self,
        event: &Envelope,
        tx: &mut metachat_core::projection::ProjectionTx<'_>,
    ) -> metachat_core::Result<()> {
        self.0.apply(event, tx).await
    }
}

/// The read models after the log in its total order.
async fn in_log_order(w: &World) -> (Rm, SharedMatchIndex) {
    let rm: Rm = Arc::new(InMemoryReadModels::new());
    let (all, index) = projections(&w.vault);
    for p in all {
        ProjectionRunner::new(w.store.clone(), rm.clone(), BoxedProjection(p))
            .with_batch_size(5)
            .catch_up()
            .await
            .expect("catch up");
    }
    (rm, index)
}

/// The read models after `script` came over a bus, `batch` deliveries per
/// commit.
async fn over_bus(w: &World, script: &[Envelope], batch: usize) -> (Rm, SharedMatchIndex) {
    let rm: Rm = Arc::new(InMemoryReadModels::new());
    let (all, index) = projections(&w.vault);
    for p in all {
        let bus = ScriptedBus {
            script: Mutex::new(script.to_vec()),
        };
        BusProjectionRunner::new(bus, rm.clone(), BoxedProjection(p), &["metachat.all"], "g")
            .with_batch_size(batch)
            .run(std::future::pending())
            .await
            .expect("bus runner");
    }
    (rm, index)
}

/// What the directory, the diary and mood timelines answer.
#[derive(Debug, PartialEq)]
struct Answers {
    profiles: Vec<Option<UserProfile>>,
    logins: Vec<Option<UserId>>,
    pages: Vec<Vec<TimelineEntry>>,
    entries: Vec<Option<TimelineEntry>>,
    days: Vec<Vec<MoodDay>>,
    moods: Vec<Option<AnalyzedMood>>,
}

async fn answers(w: &World, rm: &Rm) -> Answers {
    let mut a = Answers {
        profiles: Vec::new(),
        logins: Vec::new(),
        pages: Vec::new(),
        entries: Vec::new(),
        days: Vec::new(),
        moods: Vec::new(),
    };
    for &u in &w.user_ids {
        a.profiles
            .push(UserDirectory::get(&**rm, u).await.expect("profile"));
        let mut page = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let p = DiaryTimeline::page(&**rm, &w.vault, u, cursor.as_deref(), 2)
                .await
                .expect("page");
            page.extend(p.entries);
            match p.next_cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        a.pages.push(page);
        a.days.push(
            MoodTimeline::days(&**rm, &w.vault, u, None, None)
                .await
                .expect("days"),
        );
    }
    for email in EMAILS {
        let index = w.users.email_index(&Email::parse(email).expect("address"));
        a.logins.push(
            UserDirectory::find_by_email_index(&**rm, &index)
                .await
                .expect("login"),
        );
    }
    for &(entry, author) in &w.entries {
        a.entries.push(
            DiaryTimeline::entry(&**rm, &w.vault, author, entry)
                .await
                .expect("entry"),
        );
        a.moods.push(
            MoodTimeline::analyzed_mood(&**rm, &w.vault, author, entry)
                .await
                .expect("mood"),
        );
    }
    a
}

/// What matching answers for one user.
#[derive(Debug)]
struct MatchAnswer {
    entries: u64,
    moods: u64,
    theme: Option<Vec<f32>>,
    mood: Option<Vec<f32>>,
    recent: Vec<(uuid::Uuid, Timestamp)>,
    /// Candidates with their scores, or the error.
    top: Result<BTreeMap<uuid::Uuid, f32>, String>,
    /// Closest theme pairs per candidate (the explanations).
    pairs: BTreeMap<uuid::Uuid, BTreeSet<(uuid::Uuid, uuid::Uuid)>>,
}

/// Equal but for the rounding of sums taken in another order.
fn close(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() <= 1e-4)
}

impl PartialEq for MatchAnswer {
    fn eq(&self, o: &Self) -> bool {
        let opt = |a: &Option<Vec<f32>>, b: &Option<Vec<f32>>| match (a, b) {
            (Some(a), Some(b)) => close(a, b),
            (None, None) => true,
            _ => false,
        };
        let top = match (&self.top, &o.top) {
            (Ok(a), Ok(b)) => {
                a.keys().eq(b.keys())
                    && a.values().zip(b.values()).all(|(x, y)| close(&[*x], &[*y]))
            }
            (a, b) => a == b,
        };
        self.entries == o.entries
            && self.moods == o.moods
            && opt(&self.theme, &o.theme)
            && opt(&self.mood, &o.mood)
            && self.recent == o.recent
            && top
            && self.pairs == o.pairs
    }
}

async fn match_answers(w: &World, rm: &Rm, index: &SharedMatchIndex) -> Vec<MatchAnswer> {
    let mut out = Vec::new();
    for &u in &w.user_ids {
        let profile: Option<MatchProfile> = MatchingProjection::profile(&**rm, &w.vault, u)
            .await
            .expect("match profile");
        let top = top_k_shared(index, u, 10).map_err(|e| format!("{e:?}"));
        let pairs = top
            .as_ref()
            .map(|ms| {
                ms.iter()
                    .map(|m| {
                        let set = m
                            .explanation
                            .closest_themes
                            .iter()
                            .map(|p| (p.requester_entry, p.candidate_entry))
                            .collect();
                        (m.user, set)
                    })
                    .collect()
            })
            .unwrap_or_default();
        let v = profile.as_ref().map(MatchProfile::vectors);
        out.push(MatchAnswer {
            entries: profile.as_ref().map_or(0, |p| p.theme().len()),
            moods: profile.as_ref().map_or(0, |p| p.mood().len()),
            theme: v.as_ref().and_then(|v| v.theme().map(<[f32]>::to_vec)),
            mood: v.as_ref().and_then(|v| v.mood().map(|m| m.to_vec())),
            recent: profile
                .as_ref()
                .map(|p| p.recent().iter().map(|r| (r.entry, r.at)).collect())
                .unwrap_or_default(),
            top: top.map(|ms| {
                ms.into_iter()
                    .map(|m| (m.user, m.similarity.score))
                    .collect()
            }),
            pairs,
        });
    }
    out
}

/// Every key of `collection`.
async fn keys(rm: &Rm, collection: &str) -> Vec<(String, Vec<u8>)> {
    rm.scan_prefix(collection, "", None, usize::MAX)
        .await
        .expect("scan")
        .into_iter()
        .map(|(k, d)| (k, d.value))
        .collect()
}

/// Nothing of an erased user remains but the tombstones the projections
/// document: the directory's profile without personal fields and the
/// erased-user markers.
async fn assert_forgotten(w: &World, rm: &Rm, index: &SharedMatchIndex, how: &str) {
    for &u in &w.erased {
        let id = u.to_string();
        let p = UserDirectory::get(&**rm, u)
            .await
            .expect("profile")
            .unwrap_or_else(|| panic!("{how}: erased {id} has no tombstone"));
        assert!(
            p.erased && p.display_name.is_none() && p.about.is_none() && p.email_index.is_none(),
            "{how}: erased {id} keeps personal fields: {p:?}"
        );
        for (_, v) in keys(rm, USERS_BY_EMAIL).await {
            assert!(
                !String::from_utf8_lossy(&v).contains(&id),
                "{how}: erased {id} is still a login"
            );
        }
        for c in [
            DIARY_TIMELINE,
            MOOD_ENTRIES,
            MOOD_DAYS,
            MATCH_ENTRIES,
            MATCH_PROFILES,
        ] {
            let left: Vec<_> = keys(rm, c)
                .await
                .into_iter()
                .filter(|(k, _)| k.starts_with(&id))
                .collect();
            assert!(left.is_empty(), "{how}: {c} keeps {left:?} of erased {id}");
        }
        for (k, v) in keys(rm, DIARY_ENTRIES).await {
            assert!(
                !String::from_utf8_lossy(&v).contains(&id),
                "{how}: {DIARY_ENTRIES}/{k} points at erased {id}"
            );
        }
        assert!(
            index.read().expect("index").is_erased(u.0),
            "{how}: erased {id} is not erased from the match index"
        );
    }
    // Every profile document belongs to a known user.
    for (k, _) in keys(rm, USERS).await {
        assert!(
            w.user_ids.iter().any(|u| u.to_string() == k),
            "{how}: unknown profile {k}"
        );
    }
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    /// Any history, any per-stream-ordered interleaving with redeliveries,
    /// any batch size: the same answers as in the log's order, and nothing
    /// left of erased users.
    #[test]
    fn projections_do_not_depend_on_the_order_between_streams(
        ops in proptest::collection::vec(op(), 1..40),
        choices in proptest::collection::vec(any::<u16>(), 0..300),
        batch in 1usize..8,
    ) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        rt.block_on(async {
            let mut w = World::new();
            for op in ops {
                w.run(op).await;
            }
            let log = w.store.read_all(0, usize::MAX).await.expect("log");
            let script = interleave(&log, &choices);

            let (ordered, ordered_index) = in_log_order(&w).await;
            let (shuffled, shuffled_index) = over_bus(&w, &script, batch).await;
            assert_forgotten(&w, &ordered, &ordered_index, "in log order").await;
            assert_forgotten(&w, &shuffled, &shuffled_index, "over the bus").await;

            prop_assert_eq!(answers(&w, &shuffled).await, answers(&w, &ordered).await);
            prop_assert_eq!(
                match_answers(&w, &shuffled, &shuffled_index).await,
                match_answers(&w, &ordered, &ordered_index).await
            );
            Ok(())
        })?;
    }
}
