//! Crypto-shredding end to end over the in-memory stores: the key vault
//! (one key under concurrency, tombstones, the erased-user sweep), sealed
//! diary text in the log and the timeline, and old plaintext events.

use std::sync::Arc;

use metachat_core::codec::Codec;
use metachat_core::event::{Metadata, NewEvent, StreamId};
use metachat_core::memory::{InMemoryEventStore, InMemoryReadModels};
use metachat_core::projection::ProjectionRunner;
use metachat_core::read_model::ReadModelStore;
use metachat_core::store::{EventAppender, EventReader, ExpectedVersion};
use metachat_domain::diary::{self, text_aad};
use metachat_domain::timeline::DIARY_TIMELINE;
use metachat_domain::{
    BlindIndexKey, DataKey, Diaries, DiaryEvent, DiaryTimeline, EntryId, EntryText, KeyState,
    KeyVault, ShredError, UserId, Users,
};
use metachat_shred::DATA_KEYS;
use metachat_shred::{open, seal};

const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA";

type Store = Arc<InMemoryEventStore>;
type Rm = Arc<InMemoryReadModels>;

struct World {
    store: Store,
    rm: Rm,
    vault: KeyVault<Rm>,
    users: Users<Store, Rm>,
    diaries: Diaries<Store, Rm>,
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
                BlindIndexKey::from_bytes([1; 32]),
            ),
            diaries: Diaries::new(store.clone(), vault.clone()),
            vault,
            rm,
            store,
        }
    }

    async fn user(&self, email: &str) -> UserId {
        let id = UserId::new();
        self.users
            .register(id, email, HASH, "Someone", Metadata::default())
            .await
            .expect("register");
        id
    }

    async fn timeline(&self) {
        ProjectionRunner::new(self.store.clone(), self.rm.clone(), DiaryTimeline::new())
            .catch_up()
            .await
            .expect("timeline");
    }

    async fn texts(&self, user: UserId) -> Vec<String> {
        DiaryTimeline::page(&*self.rm, &self.vault, user, None, 100)
            .await
            .expect("page")
            .entries
            .into_iter()
            .map(|e| e.text)
            .collect()
    }

    async fn log_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for env in self.store.read_all(0, usize::MAX).await.expect("log") {
            out.extend_from_slice(&env.payload);
            out.extend_from_slice(format!("{:?}", env.metadata).as_bytes());
        }
        out
    }
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[tokio::test]
async fn the_log_holds_no_plaintext_and_shredding_makes_entries_unreadable() {
    let w = World::new();
    let (ada, bob) = (
        w.user("ada@example.org").await,
        w.user("bob@example.org").await,
    );
    let secret = "my secret diary text about the lighthouse";
    let e1 = EntryId::new();
    w.diaries
        .create(e1, ada, secret, Metadata::default())
        .await
        .expect("create");
    w.diaries
        .edit(
            e1,
            ada,
            "an edited secret, still mine",
            None,
            Metadata::default(),
        )
        .await
        .expect("edit");
    w.diaries
        .create(EntryId::new(), bob, "bob's words", Metadata::default())
        .await
        .expect("create");

    let log = w.log_bytes().await;
    for plain in [secret, "edited secret", "bob's words"] {
        assert!(!contains(&log, plain), "plaintext {plain:?} in the log");
    }
    w.timeline().await;
    // The read model holds the sealed text only.
    let docs =
        w.rm.scan_prefix(DIARY_TIMELINE, "", None, usize::MAX)
            .await
            .expect("scan");
    assert!(docs
        .iter()
        .all(|(_, d)| !contains(&d.value, "secret") && !contains(&d.value, "bob's")));
    assert_eq!(w.texts(ada).await, ["an edited secret, still mine"]);

    // The log's sealed text opens with ada's key, bound to its entry.
    let key = w.vault.get(ada).await.expect("vault").expect("key");
    let codec = diary::codec();
    let first = &w.store.read_all(0, usize::MAX).await.expect("log");
    let sealed: Vec<_> = first
        .iter()
        .filter(|e| e.stream_id.category() == "entry")
        .filter_map(|e| codec.decode(e).expect("decode"))
        .filter(|e| e.author() == ada)
        .filter_map(|e| match e.text() {
            Some(EntryText::Sealed(s)) => Some(s.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(sealed.len(), 2);
    assert_eq!(
        open(&key, &text_aad(e1), &sealed[0]).expect("opens"),
        secret.as_bytes()
    );
    assert!(matches!(
        open(&key, &text_aad(EntryId::new()), &sealed[0]),
        Err(ShredError::Unreadable)
    ));

    // Erase: event first, then the key.
    w.users
        .erase(ada, Metadata::default())
        .await
        .expect("erase");
    w.vault.shred(ada).await.expect("shred");
    // Even before the projection saw `UserErased`, reads give nothing.
    assert!(w.texts(ada).await.is_empty());
    assert_eq!(
        DiaryTimeline::entry(&*w.rm, &w.vault, ada, e1)
            .await
            .expect("entry"),
        None
    );
    // A fresh vault (no cache) agrees, and nothing reopens the old text.
    let fresh = KeyVault::new(w.rm.clone());
    assert_eq!(fresh.state(ada).await.expect("state"), KeyState::Shredded);
    assert!(fresh.get(ada).await.expect("get").is_none());
    assert!(matches!(
        fresh.get_or_create(ada).await,
        Err(ShredError::Shredded { subject }) if subject == ada.0
    ));
    let stored =
        w.rm.get(DATA_KEYS, &ada.to_string())
            .await
            .expect("get")
            .expect("tombstone");
    assert!(!contains(&stored.value, "key\""));
    w.timeline().await;
    assert!(w.texts(ada).await.is_empty());
    assert_eq!(w.texts(bob).await, ["bob's words"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_creators_end_with_one_key() {
    for _ in 0..20 {
        let rm = Arc::new(InMemoryReadModels::new());
        let user = UserId::new();
        // Separate vaults share no cache: only the store decides.
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let vault = KeyVault::new(rm.clone());
                tokio::spawn(async move { vault.get_or_create(user).await })
            })
            .collect();
        let mut keys = Vec::new();
        for t in tasks {
            keys.push(t.await.expect("task").expect("key"));
        }
        let stored = KeyVault::new(rm.clone())
            .get(user)
            .await
            .expect("get")
            .expect("key");
        assert!(keys.iter().all(|k| *k == stored), "one key for all");
    }
}

#[tokio::test]
async fn a_shredded_key_never_comes_back() {
    let rm = Arc::new(InMemoryReadModels::new());
    let vault = KeyVault::new(rm.clone());
    let user = UserId::new();
    assert_eq!(vault.state(user).await.expect("state"), KeyState::Missing);
    let key = vault.get_or_create(user).await.expect("key");
    assert_eq!(vault.get_or_create(user).await.expect("again"), key);
    let sealed = seal(&key, b"place", b"value").expect("seal");
    vault.shred(user).await.expect("shred");
    vault.shred(user).await.expect("idempotent");
    assert!(vault.get(user).await.expect("get").is_none());
    assert!(matches!(
        vault.get_or_create(user).await,
        Err(ShredError::Shredded { .. })
    ));
    // Shredding a user who never had a key prevents one.
    let never = UserId::new();
    vault.shred(never).await.expect("shred");
    assert!(vault.get_or_create(never).await.is_err());
    // Without the key the value is noise; with any other key it does not open.
    assert!(open(&DataKey::generate(), b"place", &sealed).is_err());
    assert_eq!(open(&key, b"place", &sealed).expect("opens"), b"value");
}

#[tokio::test]
async fn the_sweep_shreds_users_erased_before_a_crash() {
    let w = World::new();
    let (ada, bob) = (
        w.user("ada@example.org").await,
        w.user("bob@example.org").await,
    );
    for u in [ada, bob] {
        w.diaries
            .create(EntryId::new(), u, "text", Metadata::default())
            .await
            .expect("create");
    }
    // Erased, but the process stopped before `shred`.
    w.users
        .erase(ada, Metadata::default())
        .await
        .expect("erase");
    assert!(w.vault.get(ada).await.expect("get").is_some());
    let next = metachat_domain::shred_erased_users(&w.vault, &w.store)
        .await
        .expect("sweep");
    assert_eq!(next, w.store.next_position().await.expect("head"));
    assert!(w.vault.get(ada).await.expect("get").is_none());
    assert!(KeyVault::new(w.rm.clone())
        .get(ada)
        .await
        .expect("get")
        .is_none());
    assert!(w.vault.get(bob).await.expect("get").is_some());
    // Resumes from its checkpoint.
    assert_eq!(
        metachat_domain::shred_erased_users(&w.vault, &w.store)
            .await
            .expect("again"),
        next
    );
}

#[tokio::test]
async fn old_plaintext_events_still_load() {
    let w = World::new();
    let ada = w.user("ada@example.org").await;
    let e = EntryId::new();
    // An `EntryCreated` as schema version 1 wrote it.
    let v1 = serde_json::json!({
        "entry_id": e, "author": ada, "text": "written before sealing", "revision": 1
    });
    let stream = StreamId::from_parts("entry", e).expect("stream");
    w.store
        .append(
            &stream,
            ExpectedVersion::NoStream,
            vec![
                NewEvent::new("EntryCreated", serde_json::to_vec(&v1).expect("json"))
                    .with_schema_version(1),
            ],
        )
        .await
        .expect("append");

    let root = w.diaries.load(e).await.expect("load");
    assert_eq!(
        root.state.text(),
        Some(&EntryText::Plain("written before sealing".into()))
    );
    let env = &w
        .store
        .read_stream(&stream, 0, metachat_core::store::Direction::Forward, 1)
        .await
        .expect("read")[0];
    assert!(matches!(
        diary::codec().decode(env).expect("decode"),
        Some(DiaryEvent::EntryCreated {
            text: EntryText::Plain(_),
            revision: 1,
            ..
        })
    ));
    // A plain `JsonCodec` refuses version 1 rather than misreading it.
    assert!(metachat_core::codec::JsonCodec::<DiaryEvent>::new()
        .decode(env)
        .is_err());

    // Ada has no key yet: the plaintext still reads.
    w.timeline().await;
    assert_eq!(w.texts(ada).await, ["written before sealing"]);
    // An edit seals the new text.
    w.diaries
        .edit(e, ada, "sealed from now on", Some(1), Metadata::default())
        .await
        .expect("edit");
    w.timeline().await;
    assert_eq!(w.texts(ada).await, ["sealed from now on"]);
    assert!(!contains(&w.log_bytes().await, "sealed from now on"));
}

#[tokio::test]
async fn diaries_validate_before_sealing() {
    let w = World::new();
    let ada = w.user("ada@example.org").await;
    for bad in ["", "  \n", "a\rb"] {
        assert!(w
            .diaries
            .create(EntryId::new(), ada, bad, Metadata::default())
            .await
            .is_err());
    }
    // Nothing was appended to an entry stream.
    let log = w.store.read_all(0, usize::MAX).await.expect("log");
    assert!(log.iter().all(|e| e.stream_id.category() != "entry"));
}
