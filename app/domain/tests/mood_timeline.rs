//! The `MoodTimeline` projection against a reference computed from the final
//! state of the log, for any sequence of analyses (in or out of revision
//! order), deletions and erasures; rebuilds from 0 give the same documents.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use metachat_analysis::{Emotion, Mood};
use metachat_core::codec::{Codec, JsonCodec};
use metachat_core::event::{NewEvent, StreamId, Timestamp};
use metachat_core::memory::{InMemoryEventStore, InMemoryReadModels};
use metachat_core::projection::ProjectionRunner;
use metachat_core::read_model::ReadModelStore;
use metachat_core::store::{EventAppender, ExpectedVersion};
use metachat_domain::mood::{self, mood_event_id, mood_stream, seal_mood};
use metachat_domain::mood_timeline::{MOOD_DAYS, MOOD_ENTRIES, MOOD_ERASED_USERS};
use metachat_domain::{
    diary, Date, DiaryEvent, EntryId, KeyVault, MoodDay, MoodEvent, MoodTimeline, UserEvent, UserId,
};
use proptest::prelude::*;

type Store = Arc<InMemoryEventStore>;
type Rm = Arc<InMemoryReadModels>;

const DAY_MICROS: u64 = 86_400 * 1_000_000;
/// 2026-01-01T00:00:00Z.
const BASE: u64 = 1_767_225_600 * 1_000_000;

fn mood(valence_millis: i32, dominant: Emotion) -> Mood {
    Mood {
        valence: valence_millis as f32 / 1000.0,
        valence_label: metachat_analysis::mood::ValenceLabel::with_band(
            valence_millis as f32 / 1000.0,
            0.2,
            false,
        ),
        valence_probability: None,
        arousal: 0.5,
        emotions: Emotion::ALL
            .iter()
            .map(|&e| (e, if e == dominant { 1.0 } else { 0.0 }))
            .collect(),
        dominant,
        confidence: 1.0,
        model_id: "test".into(),
        schema_version: Mood::SCHEMA_VERSION,
        windows: 1,
    }
}

struct Log {
    store: Store,
    vault: KeyVault<Rm>,
}

impl Log {
    fn new() -> Self {
        Log {
            store: Arc::new(InMemoryEventStore::new()),
            vault: KeyVault::new(Arc::new(InMemoryReadModels::new())),
        }
    }

    async fn analyzed(
        &self,
        entry: EntryId,
        author: UserId,
        revision: u64,
        created: Timestamp,
        mood: Mood,
    ) {
        let key = self.vault.get_or_create(author).await.expect("key");
        let event = MoodEvent::MoodAnalyzed {
            entry_id: entry,
            author,
            entry_revision: revision,
            entry_created_at: created,
            mood: seal_mood(&key, entry, revision, &mood).expect("seal"),
            theme: None,
        };
        let enc = mood::codec().encode(&event).expect("encode");
        // Distinct ids: a re-analysis by another model of the same revision.
        let id = mood_event_id(entry, revision, &uuid_like());
        self.append(
            mood_stream(entry).expect("stream"),
            NewEvent::new(enc.event_type, enc.payload)
                .with_schema_version(enc.schema_version)
                .with_id(id),
        )
        .await;
    }

    async fn deleted(&self, entry: EntryId, author: UserId, revision: u64) {
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
        let enc = JsonCodec::<UserEvent>::new()
            .encode(&UserEvent::UserErased { user_id: user })
            .expect("encode");
        self.append(
            StreamId::from_parts("user", user).expect("stream"),
            NewEvent::new(enc.event_type, enc.payload),
        )
        .await;
    }

    async fn append(&self, stream: StreamId, event: NewEvent) {
        self.store
            .append(&stream, ExpectedVersion::Any, vec![event])
            .await
            .expect("append");
    }

    fn runner(&self, rm: &Rm, batch: usize) -> ProjectionRunner<Store, Rm, MoodTimeline<Rm>> {
        ProjectionRunner::new(
            self.store.clone(),
            rm.clone(),
            MoodTimeline::new(self.vault.clone()),
        )
        .with_batch_size(batch)
    }
}

fn uuid_like() -> String {
    EntryId::new().to_string()
}

/// Every document; a day's (sealed with a random nonce) as its opened JSON.
/// No document holds a mood in the clear.
async fn dump(rm: &Rm, vault: &KeyVault<Rm>) -> BTreeMap<(String, String), Vec<u8>> {
    let mut out = BTreeMap::new();
    for c in [MOOD_ENTRIES, MOOD_DAYS, MOOD_ERASED_USERS] {
        for (k, d) in rm.scan_prefix(c, "", None, usize::MAX).await.expect("scan") {
            let text = String::from_utf8_lossy(&d.value).into_owned();
            assert!(
                !text.contains("valence") && !text.contains("dominant"),
                "a mood in the clear: {text}"
            );
            let value = if c == MOOD_DAYS {
                let user: UserId = k[..36].parse().expect("user id");
                let key = vault.get(user).await.expect("vault").expect("key");
                let sealed: metachat_domain::Sealed = d.json().expect("sealed");
                let aad = format!("metachat/mood_days/{k}");
                let day: serde_json::Value =
                    metachat_shred::open_json(&key, aad.as_bytes(), &sealed).expect("opens");
                serde_json::to_vec(&day).expect("json")
            } else {
                d.value
            };
            out.insert((c.to_owned(), k), value);
        }
    }
    out
}

#[tokio::test]
async fn days_follow_analyses_edits_deletions_and_erasure() {
    let log = Log::new();
    let rm: Rm = Arc::new(InMemoryReadModels::new());
    let (ada, bob) = (UserId::new(), UserId::new());
    let (e1, e2, e3) = (EntryId::new(), EntryId::new(), EntryId::new());
    let day1 = Timestamp(BASE + 3_600_000_000);
    let day2 = Timestamp(BASE + DAY_MICROS + 60_000_000);
    log.analyzed(e1, ada, 1, day1, mood(500, Emotion::Joy))
        .await;
    log.analyzed(e2, ada, 1, day1, mood(-300, Emotion::Sadness))
        .await;
    log.analyzed(e3, ada, 1, day2, mood(100, Emotion::Joy))
        .await;
    log.analyzed(EntryId::new(), bob, 1, day1, mood(0, Emotion::Fear))
        .await;
    log.runner(&rm, 2).catch_up().await.expect("catch up");

    let days = MoodTimeline::days(&*rm, &log.vault, ada, None, None)
        .await
        .expect("days");
    let d1 = Date::from_ymd(2026, 1, 1).expect("date");
    let d2 = Date::from_ymd(2026, 1, 2).expect("date");
    assert_eq!(days.len(), 2);
    assert_eq!(days[0].date, d1);
    assert_eq!(days[0].entries, 2);
    assert!((days[0].mean_valence - 0.1).abs() < 1e-6);
    // Joy 1, Sadness 1: the tie goes to the first in `Emotion::ALL`.
    assert_eq!(days[0].dominant_emotion, Emotion::Joy);
    assert_eq!(
        days[0].emotion_counts,
        BTreeMap::from([(Emotion::Joy, 1), (Emotion::Sadness, 1)])
    );
    assert_eq!(days[1].date, d2);
    let only_d2 = MoodTimeline::days(&*rm, &log.vault, ada, Some(d2), None)
        .await
        .expect("days");
    assert_eq!(only_d2.iter().map(|d| d.date).collect::<Vec<_>>(), [d2]);
    let only_d1 = MoodTimeline::days(&*rm, &log.vault, ada, None, Some(d1))
        .await
        .expect("days");
    assert_eq!(only_d1.iter().map(|d| d.date).collect::<Vec<_>>(), [d1]);

    // An edit re-analyzed: the entry's contribution is replaced, on its
    // creation day; a late analysis of an older revision changes nothing.
    log.analyzed(e1, ada, 2, day1, mood(-900, Emotion::Sadness))
        .await;
    log.analyzed(e1, ada, 1, day1, mood(1000, Emotion::Love))
        .await;
    log.runner(&rm, 1).catch_up().await.expect("catch up");
    let days = MoodTimeline::days(&*rm, &log.vault, ada, Some(d1), Some(d1))
        .await
        .expect("days");
    assert_eq!(days[0].entries, 2);
    assert!((days[0].mean_valence - (-0.6)).abs() < 1e-6);
    assert_eq!(days[0].dominant_emotion, Emotion::Sadness);
    let latest = MoodTimeline::analyzed_mood(&*rm, &log.vault, ada, e1)
        .await
        .expect("read")
        .expect("mood");
    assert_eq!(latest.revision, 2);

    // Deletion removes the entry; a later analysis of it is ignored.
    log.deleted(e2, ada, 2).await;
    log.analyzed(e2, ada, 1, day1, mood(200, Emotion::Joy))
        .await;
    log.runner(&rm, 3).catch_up().await.expect("catch up");
    let days = MoodTimeline::days(&*rm, &log.vault, ada, None, None)
        .await
        .expect("days");
    assert_eq!(days[0].entries, 1);
    assert_eq!(
        MoodTimeline::entry_mood(&*rm, &log.vault, ada, e2)
            .await
            .expect("read"),
        None
    );

    // Erasure removes everything of the user, and later events are ignored.
    log.erased(ada).await;
    log.analyzed(EntryId::new(), ada, 1, day2, mood(0, Emotion::Joy))
        .await;
    log.runner(&rm, 3).catch_up().await.expect("catch up");
    assert!(MoodTimeline::days(&*rm, &log.vault, ada, None, None)
        .await
        .expect("days")
        .is_empty());
    assert_eq!(
        MoodTimeline::entry_mood(&*rm, &log.vault, ada, e1)
            .await
            .expect("read"),
        None
    );
    assert_eq!(
        MoodTimeline::days(&*rm, &log.vault, bob, None, None)
            .await
            .expect("days")
            .len(),
        1
    );
    let left = rm
        .scan_prefix(MOOD_ENTRIES, &format!("{ada}/"), None, 10)
        .await
        .expect("scan");
    assert!(left.is_empty());
}

#[derive(Debug, Clone)]
enum Op {
    Analyzed {
        entry: usize,
        revision: u64,
        valence_millis: i32,
        emotion: usize,
    },
    Deleted {
        entry: usize,
    },
    Erased {
        user: usize,
    },
    CatchUp,
}

const USERS: usize = 3;
const ENTRIES: usize = 8;

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0..ENTRIES, 1..5u64, -1000..=1000i32, 0..Emotion::ALL.len()).prop_map(
            |(entry, revision, valence_millis, emotion)| Op::Analyzed { entry, revision, valence_millis, emotion }
        ),
        1 => (0..ENTRIES).prop_map(|entry| Op::Deleted { entry }),
        1 => (0..USERS).prop_map(|user| Op::Erased { user }),
        1 => Just(Op::CatchUp),
    ]
}

/// The expected days of one user from the final state of the log.
#[allow(clippy::cast_possible_truncation)] // a mean valence in [-1, 1]
fn reference_days(
    ops: &[Op],
    user: usize,
    created_day: impl Fn(usize) -> Date,
) -> (Vec<MoodDay>, BTreeMap<usize, (u64, Mood)>) {
    let author = |e: usize| e % USERS;
    let erased: BTreeSet<usize> = ops
        .iter()
        .filter_map(|o| match o {
            Op::Erased { user } => Some(*user),
            _ => None,
        })
        .collect();
    let deleted: BTreeSet<usize> = ops
        .iter()
        .filter_map(|o| match o {
            Op::Deleted { entry } => Some(*entry),
            _ => None,
        })
        .collect();
    // Latest revision wins; of equal revisions, the later event.
    let mut latest: BTreeMap<usize, (u64, i32, Emotion)> = BTreeMap::new();
    for o in ops {
        if let Op::Analyzed {
            entry,
            revision,
            valence_millis,
            emotion,
        } = o
        {
            if latest.get(entry).is_none_or(|(r, _, _)| revision >= r) {
                latest.insert(*entry, (*revision, *valence_millis, Emotion::ALL[*emotion]));
            }
        }
    }
    latest.retain(|e, _| author(*e) == user && !deleted.contains(e) && !erased.contains(&user));
    let mut by_day: BTreeMap<Date, Vec<(i64, Emotion)>> = BTreeMap::new();
    for (e, (_, millis, emotion)) in &latest {
        by_day
            .entry(created_day(*e))
            .or_default()
            .push((i64::from(*millis) * 1000, *emotion));
    }
    let latest = latest
        .into_iter()
        .map(|(e, (r, millis, emotion))| (e, (r, mood(millis, emotion))))
        .collect();
    let days = by_day
        .into_iter()
        .map(|(date, items)| {
            let mut counts = BTreeMap::new();
            for (_, e) in &items {
                *counts.entry(*e).or_insert(0u64) += 1;
            }
            let max = counts.values().copied().max().unwrap_or(0);
            let dominant = Emotion::ALL
                .iter()
                .copied()
                .find(|e| counts.get(e) == Some(&max))
                .unwrap_or(Emotion::Neutral);
            let sum: i64 = items.iter().map(|(v, _)| v).sum();
            let n = items.len() as u64;
            MoodDay {
                date,
                entries: n,
                mean_valence: (sum as f64 / 1e6 / n as f64) as f32,
                dominant_emotion: dominant,
                emotion_counts: counts,
            }
        })
        .collect();
    (days, latest)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any sequence: the projection (caught up in any batches, at any
    /// points) equals the reference over the final state, and a rebuild
    /// from 0 writes the same documents.
    #[test]
    fn timeline_equals_the_reference(
        ops in proptest::collection::vec(op(), 0..60),
        batch in 1usize..8,
        rebuild_batch in 1usize..50,
        range in (0..4i64, 0..4i64),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().build()
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        rt.block_on(async {
            let log = Log::new();
            let rm: Rm = Arc::new(InMemoryReadModels::new());
            let users: Vec<UserId> = (0..USERS).map(|_| UserId::new()).collect();
            let entries: Vec<EntryId> = (0..ENTRIES).map(|_| EntryId::new()).collect();
            // Entry e is by user e % USERS, created on day e % 4 (at an odd hour).
            let created = |e: usize| Timestamp(BASE + (e as u64 % 4) * DAY_MICROS + (e as u64) * 3_599_000_000 % DAY_MICROS);
            let created_day = |e: usize| Date::of_timestamp(created(e));
            for o in &ops {
                match o {
                    Op::Analyzed { entry, revision, valence_millis, emotion } => {
                        log.analyzed(entries[*entry], users[entry % USERS], *revision, created(*entry),
                            mood(*valence_millis, Emotion::ALL[*emotion])).await;
                    }
                    Op::Deleted { entry } => log.deleted(entries[*entry], users[entry % USERS], 9).await,
                    Op::Erased { user } => log.erased(users[*user]).await,
                    Op::CatchUp => { log.runner(&rm, batch).catch_up().await.expect("catch up"); }
                }
            }
            log.runner(&rm, batch).catch_up().await.expect("catch up");

            let d0 = Date::of_timestamp(Timestamp(BASE));
            let day = |n: i64| (0..n).fold(d0, |d, _| d.succ());
            let (from, to) = (day(range.0.min(range.1)), day(range.0.max(range.1)));
            for (u, user) in users.iter().enumerate() {
                let (want, latest) = reference_days(&ops, u, created_day);
                let got = MoodTimeline::days(&*rm, &log.vault, *user, None, None).await.expect("days");
                prop_assert_eq!(&got, &want);
                let got_range = MoodTimeline::days(&*rm, &log.vault, *user, Some(from), Some(to)).await.expect("days");
                let want_range: Vec<_> = want.iter().filter(|d| d.date >= from && d.date <= to).cloned().collect();
                prop_assert_eq!(got_range, want_range);
                for (e, id) in entries.iter().enumerate() {
                    let got = MoodTimeline::analyzed_mood(&*rm, &log.vault, *user, *id).await.expect("mood")
                        .map(|a| (a.revision, a.mood));
                    prop_assert_eq!(got, latest.get(&e).cloned());
                }
            }

            let rebuilt: Rm = Arc::new(InMemoryReadModels::new());
            log.runner(&rebuilt, rebuild_batch).catch_up().await.expect("rebuild");
            prop_assert_eq!(dump(&rm, &log.vault).await, dump(&rebuilt, &log.vault).await);
            // And a rebuild in place.
            log.runner(&rm, rebuild_batch).rebuild().await.expect("rebuild in place");
            prop_assert_eq!(dump(&rm, &log.vault).await, dump(&rebuilt, &log.vault).await);
            Ok(())
        })?;
    }
}
