//! `Users` and `Diaries` against the in-memory event store: registration,
//! uniqueness under concurrency, retries after partial failures, erasure.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use metachat_core::aggregate::Repository;
use metachat_core::codec::{Codec, JsonCodec};
use metachat_core::event::{Envelope, Metadata, NewEvent, StreamId};
use metachat_core::memory::{InMemoryEventStore, InMemoryReadModels};
use metachat_core::store::{
    AppendOutcome, Direction, EventAppender, EventReader, ExpectedVersion, HeadWatch,
};
use metachat_core::{Error, Result};
use metachat_domain::{
    BlindIndexKey, Diaries, DiariesError, DiaryError, Email, EmailReservation, EntryId,
    ReservationCommand, ReservationEvent, UserError, UserEvent, UserId, Users, UsersError,
};
use metachat_domain::{DiaryEntry, KeyVault};

const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA";

/// A store whose next `n` appends to streams of `category` fail.
#[derive(Clone)]
struct Flaky {
    inner: Arc<InMemoryEventStore>,
    category: &'static str,
    failures: Arc<AtomicUsize>,
}

impl Flaky {
    fn new(category: &'static str) -> Self {
        Flaky {
            inner: Arc::new(InMemoryEventStore::new()),
            category,
            failures: Arc::new(AtomicUsize::new(0)),
        }
    }
    fn fail_next(&self, n: usize) {
        self.failures.store(n, Ordering::SeqCst);
    }
}

#[async_trait]
impl EventAppender for Flaky {
    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendOutcome> {
        if stream.category() == self.category
            && self
                .failures
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
        {
            return Err(Error::unavailable("injected failure"));
        }
        self.inner.append(stream, expected, events).await
    }
}

#[async_trait]
impl EventReader for Flaky {
    async fn read_stream(
        &self,
        stream: &StreamId,
        from: u64,
        direction: Direction,
        limit: usize,
    ) -> Result<Vec<Envelope>> {
        self.inner.read_stream(stream, from, direction, limit).await
    }
    async fn read_all(&self, from: u64, limit: usize) -> Result<Vec<Envelope>> {
        self.inner.read_all(from, limit).await
    }
    async fn stream_version(&self, stream: &StreamId) -> Result<Option<u64>> {
        self.inner.stream_version(stream).await
    }
    async fn next_position(&self) -> Result<u64> {
        self.inner.next_position().await
    }
    fn head_watch(&self) -> Option<HeadWatch> {
        self.inner.head_watch()
    }
}

async fn event_types(store: &impl EventReader) -> Vec<String> {
    store
        .read_all(0, usize::MAX)
        .await
        .expect("read_all")
        .into_iter()
        .map(|e| e.event_type)
        .collect()
}

fn count(types: &[String], ty: &str) -> usize {
    types.iter().filter(|t| *t == ty).count()
}

type Keys = Arc<InMemoryReadModels>;

fn index_key() -> BlindIndexKey {
    BlindIndexKey::from_bytes([1; 32])
}

fn users_over<S: metachat_core::store::EventStore + Clone>(store: S) -> Users<S, Keys> {
    Users::new(
        store,
        KeyVault::new(Arc::new(InMemoryReadModels::new())),
        index_key(),
    )
}

fn users() -> (
    Arc<InMemoryEventStore>,
    Users<Arc<InMemoryEventStore>, Keys>,
) {
    let store = Arc::new(InMemoryEventStore::new());
    (store.clone(), users_over(store))
}

#[tokio::test]
async fn register_update_lookup() -> std::result::Result<(), Box<dyn std::error::Error>> {
    let (store, users) = users();
    let id = UserId::new();
    let done = users
        .register(id, " Ada@Example.org", HASH, " Ada ", Metadata::default())
        .await?;
    // What was appended comes back with the state: no read-back needed.
    let outcome = done.outcome.expect("registration appends");
    let stored = store.read_all(outcome.last_position, 1).await?;
    assert_eq!(stored[0].stream_id.as_str(), format!("user-{id}"));
    assert_eq!(stored[0].recorded_at, outcome.recorded_at);
    let root = done.root;
    assert!(root.state.is_active());
    let personal = users.personal(id).await?.expect("active");
    assert_eq!(personal.email, "ada@example.org");
    assert_eq!(personal.display_name, "Ada");

    assert_eq!(users.find_by_email("ADA@example.org").await?, Some(id));
    assert_eq!(users.find_by_email("bob@example.org").await?, None);
    assert_eq!(users.find_by_email("not an email").await?, None);
    let creds = users.credentials("ada@example.org").await?;
    assert_eq!(creds.as_ref().map(|c| c.user_id), Some(id));
    assert_eq!(creds.as_ref().map(|c| c.password_hash.as_str()), Some(HASH));
    assert!(!format!("{creds:?}").contains(HASH), "Debug leaks the hash");

    let root = users
        .update_profile(
            id,
            Some("Ada L.".into()),
            Some("hi".into()),
            Metadata::default(),
        )
        .await?
        .root;
    assert_eq!(root.version, Some(1));
    let personal = users.personal(id).await?.expect("active");
    assert_eq!(personal.display_name, "Ada L.");
    assert_eq!(personal.about.as_deref(), Some("hi"));
    // Nothing changes: no event.
    let again = users
        .update_profile(
            id,
            Some(" Ada L. ".into()),
            Some("hi".into()),
            Metadata::default(),
        )
        .await?;
    assert_eq!(again.root.version, Some(1));
    Ok(())
}

#[tokio::test]
async fn invalid_input_reserves_nothing() {
    let (store, users) = users();
    let r = users
        .register(
            UserId::new(),
            "ada@example.org",
            HASH,
            "  ",
            Metadata::default(),
        )
        .await;
    assert!(matches!(
        r,
        Err(UsersError::User(UserError::InvalidDisplayName(_)))
    ));
    let r = users
        .register(UserId::new(), "ada@", HASH, "Ada", Metadata::default())
        .await;
    assert!(matches!(
        r,
        Err(UsersError::User(UserError::InvalidEmail(_)))
    ));
    assert!(event_types(&store).await.is_empty());
}

#[tokio::test]
async fn second_registration_of_an_address_is_refused() -> std::result::Result<(), UsersError> {
    let (store, users) = users();
    users
        .register(
            UserId::new(),
            "ada@example.org",
            HASH,
            "Ada",
            Metadata::default(),
        )
        .await?;
    let eve = UserId::new();
    let r = users
        .register(eve, "  ADA@example.ORG", HASH, "Eve", Metadata::default())
        .await;
    assert!(matches!(r, Err(UsersError::EmailTaken)), "{r:?}");
    // The refused registration made no key.
    assert_eq!(
        users.vault().state(eve).await?,
        metachat_domain::KeyState::Missing
    );
    let again = users
        .register(
            UserId::new(),
            "bob@example.org",
            HASH,
            "Bob",
            Metadata::default(),
        )
        .await;
    assert!(again.is_ok());
    let types = event_types(&store).await;
    assert_eq!(count(&types, "UserRegistered"), 2);
    assert_eq!(count(&types, "EmailReserved"), 2);
    Ok(())
}

#[tokio::test]
async fn registering_a_registered_id_is_refused() -> std::result::Result<(), UsersError> {
    let (store, users) = users();
    let id = UserId::new();
    users
        .register(id, "ada@example.org", HASH, "Ada", Metadata::default())
        .await?;
    let r = users
        .register(id, "other@example.org", HASH, "Ada", Metadata::default())
        .await;
    assert!(matches!(
        r,
        Err(UsersError::User(UserError::AlreadyRegistered))
    ));
    // Refused before reserving: the other address stays free.
    assert_eq!(count(&event_types(&store).await, "EmailReserved"), 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_registrations_of_one_address_one_wins() {
    let (store, users) = users();
    let users = Arc::new(users);
    let barrier = Arc::new(tokio::sync::Barrier::new(16));
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let (users, barrier) = (users.clone(), barrier.clone());
            tokio::spawn(async move {
                // The same address, spelled differently.
                let email = if i % 2 == 0 {
                    "Race@Example.org"
                } else {
                    "race@example.org "
                };
                let id = UserId::new();
                barrier.wait().await;
                (
                    id,
                    users
                        .register(id, email, HASH, &format!("racer {i}"), Metadata::default())
                        .await,
                )
            })
        })
        .collect();
    let mut winners = Vec::new();
    for t in tasks {
        let (id, r) = t.await.expect("task");
        match r {
            Ok(root) => winners.push((id, root)),
            Err(UsersError::EmailTaken) => {}
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one registration wins");
    let types = event_types(&*store).await;
    assert_eq!(count(&types, "UserRegistered"), 1);
    assert_eq!(count(&types, "EmailReserved"), 1);
    assert_eq!(
        users.find_by_email("race@example.org").await.ok().flatten(),
        Some(winners[0].0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_registrations_of_one_id_release_the_losing_address() {
    for round in 0..20 {
        let (store, users) = users();
        let users = Arc::new(users);
        let id = UserId::new();
        let (a, b) = (
            format!("a{round}@example.org"),
            format!("b{round}@example.org"),
        );
        let ta = tokio::spawn({
            let users = users.clone();
            let a = a.clone();
            async move { users.register(id, &a, HASH, "A", Metadata::default()).await }
        });
        let tb = tokio::spawn({
            let users = users.clone();
            let b = b.clone();
            async move { users.register(id, &b, HASH, "B", Metadata::default()).await }
        });
        let (ra, rb) = (ta.await.expect("task"), tb.await.expect("task"));
        assert_eq!(
            ra.is_ok() as u8 + rb.is_ok() as u8,
            1,
            "one registration wins"
        );
        let (won, lost) = if ra.is_ok() { (&a, &b) } else { (&b, &a) };
        let loser = if ra.is_ok() { rb } else { ra };
        assert!(matches!(
            loser,
            Err(UsersError::User(UserError::AlreadyRegistered))
        ));
        assert_eq!(users.find_by_email(won).await.ok().flatten(), Some(id));
        // The loser's address is not held: its reservation was never made or
        // was released.
        let emails = Repository::<EmailReservation, _>::new(store.clone());
        let hash = Email::parse(lost).expect("valid").index(&index_key());
        let holder = emails
            .load(hash.as_str())
            .await
            .expect("load")
            .state
            .holder();
        assert_eq!(holder, None, "round {round}");
        assert_eq!(count(&event_types(&*store).await, "UserRegistered"), 1);
    }
}

#[tokio::test]
async fn registration_is_retried_after_the_user_append_failed(
) -> std::result::Result<(), UsersError> {
    let store = Flaky::new("user");
    let users = users_over(store.clone());
    let id = UserId::new();
    store.fail_next(1);
    let r = users
        .register(id, "ada@example.org", HASH, "Ada", Metadata::default())
        .await;
    assert!(
        matches!(r, Err(UsersError::Store(Error::Unavailable { .. }))),
        "{r:?}"
    );
    // The reservation points at a user that does not exist: no login, and
    // nobody else can take the address.
    assert_eq!(users.find_by_email("ada@example.org").await?, None);
    let other = users
        .register(
            UserId::new(),
            "ada@example.org",
            HASH,
            "Eve",
            Metadata::default(),
        )
        .await;
    assert!(matches!(other, Err(UsersError::EmailTaken)));
    // Retrying with the same id completes it without a second reservation.
    users
        .register(id, "ada@example.org", HASH, "Ada", Metadata::default())
        .await?;
    assert_eq!(users.find_by_email("ada@example.org").await?, Some(id));
    let types = event_types(&store).await;
    assert_eq!(count(&types, "EmailReserved"), 1);
    assert_eq!(count(&types, "UserRegistered"), 1);
    Ok(())
}

#[tokio::test]
async fn erase_releases_the_address() -> std::result::Result<(), UsersError> {
    let (store, users) = users();
    let ada = UserId::new();
    users
        .register(ada, "ada@example.org", HASH, "Ada", Metadata::default())
        .await?;
    users.erase(ada, Metadata::default()).await?;
    let root = users.load(ada).await?;
    assert!(root.state.is_erased());
    assert_eq!(users.personal(ada).await?, None);
    assert_eq!(users.find_by_email("ada@example.org").await?, None);
    assert!(users.credentials("ada@example.org").await?.is_none());

    let r = users
        .update_profile(ada, Some("Back".into()), None, Metadata::default())
        .await;
    assert!(matches!(r, Err(UsersError::User(UserError::Erased))));
    let r = users
        .register(ada, "ada@example.org", HASH, "Ada", Metadata::default())
        .await;
    assert!(matches!(r, Err(UsersError::User(UserError::Erased))));

    // Erasing again changes nothing.
    let before = event_types(&store).await.len();
    users.erase(ada, Metadata::default()).await?;
    assert_eq!(event_types(&store).await.len(), before);

    // The address is free for someone new.
    let eve = UserId::new();
    users
        .register(eve, "ada@example.org", HASH, "Eve", Metadata::default())
        .await?;
    assert_eq!(users.find_by_email("ada@example.org").await?, Some(eve));

    let r = users.erase(UserId::new(), Metadata::default()).await;
    assert!(matches!(r, Err(UsersError::User(UserError::NotRegistered))));
    Ok(())
}

#[tokio::test]
async fn erase_is_completed_by_a_retry() -> std::result::Result<(), UsersError> {
    let store = Flaky::new("email");
    let users = users_over(store.clone());
    let ada = UserId::new();
    users
        .register(ada, "ada@example.org", HASH, "Ada", Metadata::default())
        .await?;
    store.fail_next(1);
    assert!(users.erase(ada, Metadata::default()).await.is_err());
    assert!(users.load(ada).await?.state.is_erased());
    // Still reserved by the erased user: a new registration must wait.
    let r = users
        .register(
            UserId::new(),
            "ada@example.org",
            HASH,
            "Eve",
            Metadata::default(),
        )
        .await;
    assert!(matches!(r, Err(UsersError::EmailTaken)));
    users.erase(ada, Metadata::default()).await?;
    users
        .register(
            UserId::new(),
            "ada@example.org",
            HASH,
            "Eve",
            Metadata::default(),
        )
        .await?;
    // The reservation stream tells the whole story.
    let hash = Email::parse("ada@example.org")
        .expect("valid")
        .index(&index_key());
    let stream = StreamId::from_parts("email", &hash).expect("stream id");
    let codec = JsonCodec::<ReservationEvent>::new();
    let history: Vec<_> = store
        .read_stream(&stream, 0, Direction::Forward, 100)
        .await?
        .iter()
        .filter_map(|e| codec.decode(e).ok().flatten())
        .collect();
    assert!(matches!(
        history.as_slice(),
        [
            ReservationEvent::EmailReserved { user_id: a },
            ReservationEvent::EmailReleased { user_id: b },
            ReservationEvent::EmailReserved { user_id: c },
        ] if *a == ada && *b == ada && *c != ada
    ));
    Ok(())
}

#[tokio::test]
async fn user_events_carry_no_plain_address_in_stream_ids() -> std::result::Result<(), UsersError> {
    let (store, users) = users();
    users
        .register(
            UserId::new(),
            "ada@example.org",
            HASH,
            "Ada",
            Metadata::default(),
        )
        .await?;
    let all = store.read_all(0, 100).await?;
    assert!(all.iter().all(|e| !e.stream_id.as_str().contains("ada")));
    let codec = JsonCodec::<UserEvent>::new();
    let registered = all
        .iter()
        .find(|e| e.event_type == "UserRegistered")
        .map(|e| codec.decode(e));
    assert!(matches!(
        registered,
        Some(Ok(Some(UserEvent::UserRegistered { email_index, .. })))
            if Some(email_index.clone()) == Email::parse("ada@example.org").ok().map(|e| e.index(&index_key()))
    ));
    Ok(())
}

#[tokio::test]
async fn reservation_repository_uses_expected_versions() {
    // Two reservations loaded at the same version: the second append
    // conflicts, is retried, and sees the address taken.
    let store = Arc::new(InMemoryEventStore::new());
    let repo = Repository::<EmailReservation, _>::new(store.clone()).with_max_retries(0);
    let (a, b) = (UserId::new(), UserId::new());
    let stream = repo.stream_id("h").expect("stream id");
    let loaded = repo.load("h").await.expect("load");
    assert_eq!(loaded.version, None);
    repo.execute(
        "h",
        &ReservationCommand::Reserve { user_id: a },
        Metadata::default(),
    )
    .await
    .expect("first reservation");
    // A writer that loaded before the first append expects NoStream.
    let late = store
        .append(
            &stream,
            ExpectedVersion::from_version(loaded.version),
            vec![NewEvent::new(
                "EmailReserved",
                format!(r#"{{"user_id":"{b}"}}"#),
            )],
        )
        .await;
    assert!(matches!(
        late,
        Err(Error::Conflict {
            actual: Some(0),
            ..
        })
    ));
}

type TestDiaries = Diaries<Arc<InMemoryEventStore>, Arc<InMemoryReadModels>>;

fn diaries_over(store: &Arc<InMemoryEventStore>) -> TestDiaries {
    Diaries::new(
        store.clone(),
        KeyVault::new(Arc::new(InMemoryReadModels::new())),
    )
}

/// The entry's text opened with its author's key.
async fn text_of(diaries: &TestDiaries, entry_id: EntryId, state: &DiaryEntry) -> String {
    let author = state.author().expect("created");
    let key = diaries.vault().get(author).await.expect("vault");
    state
        .text()
        .expect("text")
        .open(key.as_ref(), entry_id)
        .expect("opens")
}

#[tokio::test]
async fn diaries_check_the_author() -> std::result::Result<(), DiariesError> {
    let store = Arc::new(InMemoryEventStore::new());
    let users = users_over(store.clone());
    let diaries = diaries_over(&store);
    let ada = UserId::new();
    users
        .register(ada, "ada@example.org", HASH, "Ada", Metadata::default())
        .await
        .expect("register");

    let r = diaries
        .create(EntryId::new(), UserId::new(), "hello", Metadata::default())
        .await;
    assert!(matches!(r, Err(DiariesError::UnknownAuthor)));

    let e = EntryId::new();
    let root = diaries
        .create(e, ada, "first", Metadata::default())
        .await?
        .root;
    assert_eq!(root.state.revision(), 1);
    assert_eq!(text_of(&diaries, e, &root.state).await, "first");
    let edited = diaries
        .edit(e, ada, "second", Some(1), Metadata::default())
        .await?;
    assert!(edited.outcome.is_some(), "an edit appends");
    let root = edited.root;
    assert_eq!(root.state.revision(), 2);
    assert_eq!(text_of(&diaries, e, &root.state).await, "second");
    // The same text again: accepted without an event.
    let same = diaries
        .edit(e, ada, "second", Some(2), Metadata::default())
        .await?;
    assert!(same.outcome.is_none(), "the same text appends nothing");
    assert_eq!(same.root.state.revision(), 2);
    let stale = diaries
        .edit(e, ada, "third", Some(1), Metadata::default())
        .await;
    assert!(matches!(
        stale,
        Err(DiariesError::Entry(DiaryError::RevisionMismatch {
            expected: 1,
            actual: 2
        }))
    ));
    let other = diaries
        .delete(e, UserId::new(), None, Metadata::default())
        .await;
    assert!(matches!(
        other,
        Err(DiariesError::Entry(DiaryError::NotAuthor))
    ));
    let stale = diaries.delete(e, ada, Some(1), Metadata::default()).await;
    assert!(matches!(
        stale,
        Err(DiariesError::Entry(DiaryError::RevisionMismatch {
            expected: 1,
            actual: 2
        }))
    ));
    assert!(
        !diaries.load(e).await?.state.is_deleted(),
        "a stale delete writes nothing"
    );
    diaries.delete(e, ada, Some(2), Metadata::default()).await?;
    assert!(diaries.load(e).await?.state.is_deleted());

    users.erase(ada, Metadata::default()).await.expect("erase");
    let r = diaries
        .create(EntryId::new(), ada, "after", Metadata::default())
        .await;
    assert!(matches!(r, Err(DiariesError::UnknownAuthor)));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_edits_at_one_revision_one_wins() -> std::result::Result<(), DiariesError> {
    let store = Arc::new(InMemoryEventStore::new());
    let users = users_over(store.clone());
    let diaries = Arc::new(diaries_over(&store));
    let ada = UserId::new();
    users
        .register(ada, "ada@example.org", HASH, "Ada", Metadata::default())
        .await
        .expect("register");
    let e = EntryId::new();
    diaries.create(e, ada, "v1", Metadata::default()).await?;
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let diaries = diaries.clone();
            tokio::spawn(async move {
                diaries
                    .edit(e, ada, &format!("edit {i}"), Some(1), Metadata::default())
                    .await
            })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        match t.await.expect("task") {
            Ok(_) => ok += 1,
            Err(DiariesError::Entry(DiaryError::RevisionMismatch {
                expected: 1,
                actual: 2,
            })) => {}
            Err(e) => panic!("unexpected: {e}"),
        }
    }
    assert_eq!(ok, 1, "no lost update");
    assert_eq!(diaries.load(e).await?.state.revision(), 2);
    Ok(())
}
