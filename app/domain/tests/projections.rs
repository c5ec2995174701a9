//! `UserDirectory` and `DiaryTimeline` caught up by a `ProjectionRunner`
//! over the in-memory store: contents, paging, erasure, and rebuilds.

use std::collections::BTreeMap;
use std::sync::Arc;

use metachat_core::event::Metadata;
use metachat_core::memory::{InMemoryEventStore, InMemoryReadModels};
use metachat_core::projection::{Projection, ProjectionRunner};
use metachat_core::read_model::ReadModelStore;
use metachat_core::store::EventReader;
use metachat_domain::directory::{USERS, USERS_BY_EMAIL};
use metachat_domain::timeline::{DIARY_ENTRIES, DIARY_TIMELINE};
use metachat_domain::{
    BlindIndexKey, Diaries, DiaryTimeline, Email, EntryId, KeyVault, TimelineEntry, TimelineError,
    UserDirectory, UserId, Users,
};
use proptest::prelude::*;

const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA";

type Store = Arc<InMemoryEventStore>;
type Docs = BTreeMap<(String, String), (Vec<u8>, u64)>;

async fn dump(rm: &InMemoryReadModels, projection: &impl Projection) -> Docs {
    let mut out = BTreeMap::new();
    for c in projection.collections() {
        for (k, d) in rm
            .scan_prefix(&c, "", None, usize::MAX)
            .await
            .expect("scan")
        {
            out.insert((c.clone(), k), (d.value, d.version));
        }
    }
    out
}

type Vault = KeyVault<Arc<InMemoryReadModels>>;

async fn all_pages(
    vault: &Vault,
    rm: &InMemoryReadModels,
    user: UserId,
    limit: usize,
) -> Vec<TimelineEntry> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = DiaryTimeline::page(rm, vault, user, cursor.as_deref(), limit)
            .await
            .expect("page");
        assert!(page.entries.len() <= limit);
        out.extend(page.entries);
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => return out,
        }
    }
}

struct World {
    store: Store,
    users: Users<Store, Arc<InMemoryReadModels>>,
    diaries: Diaries<Store, Arc<InMemoryReadModels>>,
    vault: Vault,
}

impl World {
    fn new() -> Self {
        let store = Arc::new(InMemoryEventStore::new());
        let vault = KeyVault::new(Arc::new(InMemoryReadModels::new()));
        World {
            users: Users::new(
                store.clone(),
                vault.clone(),
                BlindIndexKey::from_bytes([1; 32]),
            ),
            diaries: Diaries::new(store.clone(), vault.clone()),
            vault,
            store,
        }
    }

    async fn user(&self, email: &str, name: &str) -> UserId {
        let id = UserId::new();
        self.users
            .register(id, email, HASH, name, Metadata::default())
            .await
            .expect("register");
        id
    }

    async fn entry(&self, author: UserId, text: &str) -> EntryId {
        let id = EntryId::new();
        self.diaries
            .create(id, author, text, Metadata::default())
            .await
            .expect("create");
        id
    }
}

#[tokio::test]
async fn directory_and_timelines_after_catch_up_and_rebuild() {
    let w = World::new();
    let ada = w.user("ada@example.org", "Ada").await;
    let bob = w.user("bob@example.org", "Bob").await;
    let cy = w.user("cy@example.org", "Cy").await;

    let mut ada_entries = Vec::new();
    for i in 1..=5 {
        ada_entries.push(w.entry(ada, &format!("ada {i}")).await);
    }
    let bob_entry = w.entry(bob, "bob's only").await;
    let cy_entries = [w.entry(cy, "cy 1").await, w.entry(cy, "cy 2").await];
    w.diaries
        .edit(
            ada_entries[1],
            ada,
            "ada 2, edited",
            None,
            Metadata::default(),
        )
        .await
        .expect("edit");
    w.diaries
        .delete(ada_entries[3], ada, None, Metadata::default())
        .await
        .expect("delete");
    w.users
        .update_profile(bob, Some("Robert".into()), None, Metadata::default())
        .await
        .expect("update");
    w.users.erase(cy, Metadata::default()).await.expect("erase");
    // The entry aggregate does not know about erasure; the timeline must
    // ignore later events of an erased author.
    w.diaries
        .edit(
            cy_entries[0],
            cy,
            "after erasure",
            None,
            Metadata::default(),
        )
        .await
        .expect("edit");

    let rm = Arc::new(InMemoryReadModels::new());
    let head = w.store.next_position().await.expect("head");
    let dir = ProjectionRunner::new(w.store.clone(), rm.clone(), UserDirectory::new());
    let tl = ProjectionRunner::new(w.store.clone(), rm.clone(), DiaryTimeline::new());
    assert_eq!(dir.catch_up().await.expect("catch up"), head);
    assert_eq!(tl.catch_up().await.expect("catch up"), head);

    // Directory.
    let p = UserDirectory::get(&*rm, bob)
        .await
        .expect("get")
        .expect("bob");
    let bob_key = w.vault.get(bob).await.expect("vault").expect("key");
    assert_eq!(
        p.open(&bob_key).expect("opens").0.as_deref(),
        Some("Robert")
    );
    assert!(!p.erased);
    let ada_email = Email::parse("ADA@example.org").expect("valid");
    assert_eq!(
        UserDirectory::find_by_email_index(&*rm, &w.users.email_index(&ada_email))
            .await
            .expect("find"),
        Some(ada)
    );
    let cy_profile = UserDirectory::get(&*rm, cy)
        .await
        .expect("get")
        .expect("cy");
    assert!(cy_profile.erased);
    assert_eq!(cy_profile.display_name, None);
    assert_eq!(cy_profile.email_index, None);
    let cy_email = Email::parse("cy@example.org").expect("valid");
    assert_eq!(
        UserDirectory::find_by_email_index(&*rm, &w.users.email_index(&cy_email))
            .await
            .expect("find"),
        None
    );
    // Neither the plain address nor a display name is anywhere in the
    // directory.
    for ((_, key), (value, _)) in dump(&rm, dir.projection()).await {
        assert!(!key.contains("example.org"));
        let value = String::from_utf8_lossy(&value);
        assert!(
            !value.contains("example.org") && !value.contains("Robert"),
            "{value}"
        );
    }

    // Timelines: newest first, edits in place, deletions gone, erased empty.
    for limit in [1, 2, 3, 10] {
        let got = all_pages(&w.vault, &rm, ada, limit).await;
        let ids: Vec<_> = got.iter().map(|e| e.entry_id).collect();
        let want = [4, 2, 1, 0].map(|i| ada_entries[i]).to_vec();
        assert_eq!(ids, want, "limit {limit}");
    }
    let edited = DiaryTimeline::entry(&*rm, &w.vault, ada, ada_entries[1])
        .await
        .expect("entry")
        .expect("present");
    assert_eq!(
        (edited.text.as_str(), edited.revision),
        ("ada 2, edited", 2)
    );
    assert!(edited.updated_at >= edited.created_at);
    assert_eq!(
        DiaryTimeline::entry(&*rm, &w.vault, bob, ada_entries[1])
            .await
            .expect("entry"),
        None
    );
    assert_eq!(
        DiaryTimeline::entry(&*rm, &w.vault, ada, ada_entries[3])
            .await
            .expect("entry"),
        None
    );
    let bob_page = all_pages(&w.vault, &rm, bob, 10).await;
    assert_eq!(
        bob_page.iter().map(|e| e.entry_id).collect::<Vec<_>>(),
        [bob_entry]
    );
    assert!(all_pages(&w.vault, &rm, cy, 10).await.is_empty());
    for e in cy_entries {
        assert_eq!(
            DiaryTimeline::entry(&*rm, &w.vault, cy, e)
                .await
                .expect("entry"),
            None
        );
    }
    let bad = DiaryTimeline::page(&*rm, &w.vault, ada, Some("../bob"), 10).await;
    assert!(matches!(bad, Err(TimelineError::InvalidCursor)));

    // A rebuild from 0 writes the same documents.
    let (dir_before, tl_before) = (
        dump(&rm, dir.projection()).await,
        dump(&rm, tl.projection()).await,
    );
    assert!(dir_before.keys().any(|(c, _)| c == USERS));
    assert!(dir_before.keys().any(|(c, _)| c == USERS_BY_EMAIL));
    assert!(tl_before.keys().any(|(c, _)| c == DIARY_TIMELINE));
    assert!(tl_before.keys().any(|(c, _)| c == DIARY_ENTRIES));
    assert_eq!(dir.rebuild().await.expect("rebuild"), head);
    assert_eq!(tl.rebuild().await.expect("rebuild"), head);
    assert_eq!(dump(&rm, dir.projection()).await, dir_before);
    assert_eq!(dump(&rm, tl.projection()).await, tl_before);

    // One event per batch gives the same documents too (with one big batch,
    // Cy's entries are created and erased inside one transaction).
    let rm1 = Arc::new(InMemoryReadModels::new());
    let tl1 = ProjectionRunner::new(w.store.clone(), rm1.clone(), DiaryTimeline::new())
        .with_batch_size(1);
    tl1.catch_up().await.expect("catch up");
    let values = |d: Docs| {
        d.into_iter()
            .map(|(k, (v, _))| (k, v))
            .collect::<BTreeMap<_, _>>()
    };
    assert_eq!(
        values(dump(&rm1, tl1.projection()).await),
        values(tl_before)
    );
}

#[tokio::test]
async fn erasure_removes_many_entries_created_in_the_same_batch() {
    let w = World::new();
    let ada = w.user("ada@example.org", "Ada").await;
    let bob = w.user("bob@example.org", "Bob").await;
    for i in 0..250 {
        w.entry(ada, &format!("ada {i}")).await;
        if i % 50 == 0 {
            w.entry(bob, &format!("bob {i}")).await;
        }
    }
    let rm = Arc::new(InMemoryReadModels::new());
    let tl = ProjectionRunner::new(w.store.clone(), rm.clone(), DiaryTimeline::new())
        .with_batch_size(120);
    tl.catch_up().await.expect("catch up");
    assert_eq!(all_pages(&w.vault, &rm, ada, 100).await.len(), 250);
    w.users
        .erase(ada, Metadata::default())
        .await
        .expect("erase");
    w.entry(bob, "after").await;
    tl.catch_up().await.expect("catch up");
    assert!(all_pages(&w.vault, &rm, ada, 100).await.is_empty());
    assert_eq!(all_pages(&w.vault, &rm, bob, 100).await.len(), 6);
    let entries = rm
        .scan_prefix(DIARY_ENTRIES, "", None, usize::MAX)
        .await
        .expect("scan");
    assert_eq!(entries.len(), 6);
}

/// Operations on a small diary world, for the model check below.
#[derive(Debug, Clone)]
enum Op {
    Create {
        author: usize,
    },
    Edit {
        author: usize,
        nth: usize,
        text: String,
    },
    Delete {
        author: usize,
        nth: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..2usize).prop_map(|author| Op::Create { author }),
        2 => (0..2usize, 0..8usize, "[a-z][a-z ]{0,11}")
            .prop_map(|(author, nth, text)| Op::Edit { author, nth, text }),
        1 => (0..2usize, 0..8usize).prop_map(|(author, nth)| Op::Delete { author, nth }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Any sequence of creates, edits and deletes: each user's paged
    /// timeline equals a plain model (live entries, newest first, latest
    /// text and revision), whatever the page size and the batch size.
    #[test]
    fn timeline_matches_a_model(ops in proptest::collection::vec(op(), 0..40), limit in 1usize..5, batch in 1usize..20) {
        let rt = tokio::runtime::Builder::new_current_thread().build().map_err(|e| TestCaseError::fail(e.to_string()))?;
        rt.block_on(async {
            let w = World::new();
            let users = [w.user("a@example.org", "A").await, w.user("b@example.org", "B").await];
            // Per user: (entry id, text, revision, live), in creation order.
            let mut model: [Vec<(EntryId, String, u64, bool)>; 2] = Default::default();
            for op in ops {
                match op {
                    Op::Create { author } => {
                        let text = format!("entry {}", model[author].len());
                        let id = w.entry(users[author], &text).await;
                        model[author].push((id, text, 1, true));
                    }
                    Op::Edit { author, nth, text } => {
                        if let Some(e) = model[author].get_mut(nth).filter(|e| e.3) {
                            w.diaries.edit(e.0, users[author], &text, None, Metadata::default()).await.expect("edit");
                            if e.1 != text { e.1 = text; e.2 += 1; }
                        }
                    }
                    Op::Delete { author, nth } => {
                        if let Some(e) = model[author].get_mut(nth).filter(|e| e.3) {
                            w.diaries.delete(e.0, users[author], None, Metadata::default()).await.expect("delete");
                            e.3 = false;
                        }
                    }
                }
            }
            let rm = Arc::new(InMemoryReadModels::new());
            ProjectionRunner::new(w.store.clone(), rm.clone(), DiaryTimeline::new())
                .with_batch_size(batch)
                .catch_up()
                .await
                .expect("catch up");
            for (u, user) in users.iter().enumerate() {
                let got: Vec<_> = all_pages(&w.vault, &rm, *user, limit).await
                    .into_iter().map(|e| (e.entry_id, e.text, e.revision)).collect();
                let want: Vec<_> = model[u].iter().rev().filter(|e| e.3)
                    .map(|e| (e.0, e.1.clone(), e.2)).collect();
                prop_assert_eq!(got, want);
            }
            Ok(())
        })?;
    }
}
