//! The key vault over a real key directory (`DirKeys` on a temporary
//! folder): a key is made once and kept, survives a new vault on the same
//! folder, and once shredded it is gone for good: not re-creatable, sealed
//! values unreadable, in this vault and in a fresh one. The repair sweep
//! (`shred_erased`) shreds the subjects an event of the log erases, keeps
//! its checkpoint, and stops at an error of the caller's function.

use metachat_core::event::{NewEvent, StreamId};
use metachat_core::memory::InMemoryEventStore;
use metachat_core::store::{EventAppender, ExpectedVersion};
use metachat_core::Error;
use metachat_shred::{open, seal, DirKeys, KeyState, KeyVault, ShredError};
use uuid::Uuid;

fn vault(dir: &std::path::Path) -> KeyVault<DirKeys> {
    KeyVault::new(DirKeys::open(dir).expect("open the key directory"))
}

#[tokio::test]
async fn a_key_is_made_once_and_shredding_is_for_good() {
    let dir = tempfile::tempdir().unwrap();
    let v = vault(dir.path());
    let (ada, bob) = (Uuid::new_v4(), Uuid::new_v4());

    assert!(matches!(v.state(ada).await.unwrap(), KeyState::Missing));
    assert!(v.get(ada).await.unwrap().is_none());
    let key = v.get_or_create(ada).await.unwrap();
    let again = v.get_or_create(ada).await.unwrap();
    let sealed = seal(&key, b"place", b"ada's diary").unwrap();
    assert_eq!(open(&again, b"place", &sealed).unwrap(), b"ada's diary");

    // A second vault on the same folder (another process, a restart) finds it.
    let other = vault(dir.path());
    let found = other.get(ada).await.unwrap().expect("the key is durable");
    assert_eq!(open(&found, b"place", &sealed).unwrap(), b"ada's diary");

    v.shred(ada).await.unwrap();
    v.shred(ada).await.unwrap(); // idempotent
    v.shred(bob).await.unwrap(); // never had a key
    for vault in [&v, &vault(dir.path())] {
        assert!(matches!(
            vault.state(ada).await.unwrap(),
            KeyState::Shredded
        ));
        assert!(vault.get(ada).await.unwrap().is_none());
        assert!(matches!(
            vault.get_or_create(ada).await,
            Err(ShredError::Shredded { subject }) if subject == ada
        ));
        assert!(matches!(
            vault.get_or_create(bob).await,
            Err(ShredError::Shredded { subject }) if subject == bob
        ));
    }
}

fn event(kind: &str, subject: Uuid) -> NewEvent {
    NewEvent::new(kind, subject.to_string().into_bytes())
}

#[tokio::test]
async fn the_sweep_shreds_the_erased_subjects_from_its_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let v = vault(dir.path());
    let store = InMemoryEventStore::default();
    let (ada, bob, cyd) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    for s in [ada, bob, cyd] {
        v.get_or_create(s).await.unwrap();
    }
    let log = &store;
    let append = |stream: &str, events: Vec<NewEvent>| {
        let store = log;
        let stream = StreamId::new(stream).unwrap();
        async move {
            store
                .append(&stream, ExpectedVersion::Any, events)
                .await
                .unwrap()
        }
    };
    append(
        "user-a",
        vec![event("Registered", ada), event("Erased", ada)],
    )
    .await;
    append("user-b", vec![event("Registered", bob)]).await;
    let erased = |env: &metachat_core::event::Envelope| -> metachat_core::Result<Option<Uuid>> {
        if env.event_type == "Erased" {
            let text = String::from_utf8(env.payload.clone()).unwrap();
            Ok(Some(Uuid::parse_str(&text).unwrap()))
        } else {
            Ok(None)
        }
    };

    let next = v.shred_erased(&store, erased).await.unwrap();
    assert_eq!(next, 3, "the sweep read the whole log");
    let fresh = vault(dir.path());
    assert!(matches!(
        fresh.state(ada).await.unwrap(),
        KeyState::Shredded
    ));
    assert!(matches!(
        fresh.state(bob).await.unwrap(),
        KeyState::Active(_)
    ));

    // Later erasures only: the sweep goes on from its checkpoint.
    append("user-c", vec![event("Erased", cyd)]).await;
    let next = fresh.shred_erased(&store, erased).await.unwrap();
    assert_eq!(next, 4);
    assert!(matches!(
        vault(dir.path()).state(cyd).await.unwrap(),
        KeyState::Shredded
    ));
    assert!(matches!(
        vault(dir.path()).state(bob).await.unwrap(),
        KeyState::Active(_)
    ));

    // An error of the caller's function stops the sweep with that error,
    // before the checkpoint moves.
    append("user-b", vec![event("Erased", bob)]).await;
    let err = vault(dir.path())
        .shred_erased(&store, |_| {
            Err(Error::Decode {
                event_type: "Erased".into(),
                source: "unreadable".into(),
            })
        })
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Decode { .. }), "{err:?}");
    assert!(matches!(
        vault(dir.path()).state(bob).await.unwrap(),
        KeyState::Active(_)
    ));
    assert_eq!(
        vault(dir.path())
            .shred_erased(&store, erased)
            .await
            .unwrap(),
        5
    );
    assert!(matches!(
        vault(dir.path()).state(bob).await.unwrap(),
        KeyState::Shredded
    ));
}
