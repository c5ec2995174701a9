//! Given/when/then tests of the `DiaryEntry` aggregate and properties of
//! its fold.
//!
//! Commands carry sealed text; the aggregate copies it into the event, so a
//! value sealed once can be expected byte for byte.

use std::sync::OnceLock;

use metachat_conformance::testing::AggregateTest;
use metachat_core::aggregate::Aggregate;
use metachat_core::codec::Codec;
use metachat_core::event::{Envelope, NewEvent, StreamId, Timestamp};
use metachat_domain::diary::{self, seal_text};
use metachat_domain::{
    DataKey, DiaryCommand, DiaryEntry, DiaryError, DiaryEvent, EntryId, EntryText, Sealed, UserId,
    MAX_TEXT_BYTES,
};
use proptest::prelude::*;

fn key() -> &'static DataKey {
    static KEY: OnceLock<DataKey> = OnceLock::new();
    KEY.get_or_init(DataKey::generate)
}

fn seal(entry_id: EntryId, text: &str) -> Sealed {
    seal_text(key(), entry_id, text).expect("seal")
}

fn created(entry_id: EntryId, author: UserId, text: &str) -> DiaryEvent {
    DiaryEvent::EntryCreated {
        entry_id,
        author,
        text: EntryText::Sealed(seal(entry_id, text)),
        revision: 1,
    }
}

fn edit(entry_id: EntryId, author: UserId, text: &str) -> DiaryCommand {
    DiaryCommand::Edit {
        author,
        text: seal(entry_id, text),
        expected_revision: None,
    }
}

#[test]
fn create() {
    let (e, a) = (EntryId::new(), UserId::new());
    let text = seal(e, "  today was fine\n\tmostly  ");
    AggregateTest::<DiaryEntry>::given_no_events()
        .when(&DiaryCommand::Create {
            entry_id: e,
            author: a,
            text: text.clone(),
        })
        .then_expect(vec![DiaryEvent::EntryCreated {
            entry_id: e,
            author: a,
            text: EntryText::Sealed(text),
            revision: 1,
        }]);
}

#[test]
fn create_twice_is_refused_even_after_delete() {
    let (e, a) = (EntryId::new(), UserId::new());
    let cmd = DiaryCommand::Create {
        entry_id: e,
        author: a,
        text: seal(e, "again"),
    };
    AggregateTest::<DiaryEntry>::given([created(e, a, "x")])
        .when(&cmd)
        .then_error(|err| *err == DiaryError::AlreadyExists);
    AggregateTest::<DiaryEntry>::given([
        created(e, a, "x"),
        DiaryEvent::EntryDeleted {
            entry_id: e,
            author: a,
            revision: 2,
        },
    ])
    .when(&cmd)
    .then_error(|err| *err == DiaryError::AlreadyExists);
}

/// The aggregate sees only the sealed size: empty and oversized texts are
/// refused (the other rules are `validate_text`'s, checked by `Diaries`).
#[test]
fn sealed_size_is_checked_on_create_and_edit() {
    let (e, a) = (EntryId::new(), UserId::new());
    let too_long = "x".repeat(MAX_TEXT_BYTES + 1);
    let truncated = Sealed {
        ciphertext: vec![1, 2, 3],
        ..seal(e, "x")
    };
    type Check = fn(&DiaryError) -> bool;
    let cases: [(Sealed, Check); 3] = [
        (seal(e, ""), |e| *e == DiaryError::EmptyText),
        (truncated, |e| *e == DiaryError::EmptyText),
        (seal(e, &too_long), |e| {
            *e == DiaryError::TextTooLong {
                len: MAX_TEXT_BYTES + 1,
                max: MAX_TEXT_BYTES,
            }
        }),
    ];
    for (text, pred) in cases {
        AggregateTest::<DiaryEntry>::given_no_events()
            .when(&DiaryCommand::Create {
                entry_id: e,
                author: a,
                text: text.clone(),
            })
            .then_error(pred);
        AggregateTest::<DiaryEntry>::given([created(e, a, "x")])
            .when(&DiaryCommand::Edit {
                author: a,
                text,
                expected_revision: None,
            })
            .then_error(pred);
    }
    let max = seal(e, &"x".repeat(MAX_TEXT_BYTES));
    AggregateTest::<DiaryEntry>::given_no_events()
        .when(&DiaryCommand::Create {
            entry_id: e,
            author: a,
            text: max.clone(),
        })
        .then_expect(vec![DiaryEvent::EntryCreated {
            entry_id: e,
            author: a,
            text: EntryText::Sealed(max),
            revision: 1,
        }]);
}

#[test]
fn edit_by_author() {
    let (e, a) = (EntryId::new(), UserId::new());
    let two = seal(e, "two");
    AggregateTest::<DiaryEntry>::given([created(e, a, "one")])
        .when(&DiaryCommand::Edit {
            author: a,
            text: two.clone(),
            expected_revision: None,
        })
        .then_expect(vec![DiaryEvent::EntryEdited {
            entry_id: e,
            author: a,
            text: EntryText::Sealed(two),
            revision: 2,
        }]);
}

#[test]
fn edit_with_expected_revision() {
    let (e, a) = (EntryId::new(), UserId::new());
    let history = [
        created(e, a, "one"),
        DiaryEvent::EntryEdited {
            entry_id: e,
            author: a,
            text: EntryText::Sealed(seal(e, "two")),
            revision: 2,
        },
    ];
    let three = seal(e, "three");
    let at = |rev| DiaryCommand::Edit {
        author: a,
        text: three.clone(),
        expected_revision: Some(rev),
    };
    AggregateTest::<DiaryEntry>::given(history.clone())
        .when(&at(2))
        .then_expect(vec![DiaryEvent::EntryEdited {
            entry_id: e,
            author: a,
            text: EntryText::Sealed(three.clone()),
            revision: 3,
        }]);
    AggregateTest::<DiaryEntry>::given(history)
        .when(&at(1))
        .then_error(|e| {
            *e == DiaryError::RevisionMismatch {
                expected: 1,
                actual: 2,
            }
        });
}

#[test]
fn only_the_author_may_change_an_entry() {
    let (e, a, b) = (EntryId::new(), UserId::new(), UserId::new());
    for cmd in [
        edit(e, b, "mine now"),
        DiaryCommand::Delete {
            author: b,
            expected_revision: None,
        },
    ] {
        AggregateTest::<DiaryEntry>::given([created(e, a, "x")])
            .when(&cmd)
            .then_error(|e| *e == DiaryError::NotAuthor);
    }
}

#[test]
fn delete_then_nothing() {
    let (e, a) = (EntryId::new(), UserId::new());
    AggregateTest::<DiaryEntry>::given([created(e, a, "x")])
        .when(&DiaryCommand::Delete {
            author: a,
            expected_revision: None,
        })
        .then_expect(vec![DiaryEvent::EntryDeleted {
            entry_id: e,
            author: a,
            revision: 2,
        }]);
    let deleted = [
        created(e, a, "x"),
        DiaryEvent::EntryDeleted {
            entry_id: e,
            author: a,
            revision: 2,
        },
    ];
    for cmd in [
        edit(e, a, "y"),
        DiaryCommand::Delete {
            author: a,
            expected_revision: None,
        },
    ] {
        AggregateTest::<DiaryEntry>::given(deleted.clone())
            .when(&cmd)
            .then_error(|e| *e == DiaryError::Deleted);
    }
}

#[test]
fn unknown_entry_cannot_be_changed() {
    let (e, a) = (EntryId::new(), UserId::new());
    for cmd in [
        edit(e, a, "y"),
        DiaryCommand::Delete {
            author: a,
            expected_revision: None,
        },
    ] {
        AggregateTest::<DiaryEntry>::given_no_events()
            .when(&cmd)
            .then_error(|e| *e == DiaryError::NotFound);
    }
}

fn any_text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "\\PC{1,40}",
        1 => Just(String::new()),
        1 => (MAX_TEXT_BYTES - 1..MAX_TEXT_BYTES + 2).prop_map(|n| "x".repeat(n)),
    ]
}

fn any_command(entry: EntryId, authors: [UserId; 2]) -> impl Strategy<Value = DiaryCommand> {
    let author = prop::sample::select(authors.to_vec());
    prop_oneof![
        (author.clone(), any_text()).prop_map(move |(author, text)| DiaryCommand::Create {
            entry_id: entry,
            author,
            text: seal(entry, &text),
        }),
        (author.clone(), any_text(), proptest::option::of(0u64..6)).prop_map(
            move |(author, text, expected_revision)| DiaryCommand::Edit {
                author,
                text: seal(entry, &text),
                expected_revision
            }
        ),
        author.prop_map(|author| DiaryCommand::Delete {
            author,
            expected_revision: None,
        }),
    ]
}

fn scenario() -> impl Strategy<Value = (EntryId, [UserId; 2], Vec<DiaryCommand>)> {
    let (entry, authors) = (EntryId::new(), [UserId::new(), UserId::new()]);
    proptest::collection::vec(any_command(entry, authors), 0..30)
        .prop_map(move |cmds| (entry, authors, cmds))
}

proptest! {
    /// Any sequence of diary commands: the revision equals the number of
    /// accepted events and each event's own revision; the text the state
    /// holds is the last accepted text, byte for byte (and opens to it),
    /// also after a trip through the codec; the author never changes; a deleted entry accepts
    /// nothing more.
    #[test]
    fn diary_fold_invariants((entry, _authors, cmds) in scenario()) {
        let codec = diary::codec();
        let stream = StreamId::from_parts("entry", entry).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let mut state = DiaryEntry::default();
        let mut replayed = DiaryEntry::default();
        let mut accepted = 0u64;
        let mut last_text: Option<EntryText> = None;
        let mut author = None;
        for cmd in &cmds {
            let was_deleted = state.is_deleted();
            let Ok(events) = state.handle(cmd) else { continue };
            prop_assert!(!was_deleted || events.is_empty());
            for e in &events {
                accepted += 1;
                prop_assert_eq!(e.revision(), accepted);
                prop_assert_eq!(e.entry_id(), entry);
                prop_assert_eq!(*author.get_or_insert(e.author()), e.author());
                match e {
                    DiaryEvent::EntryCreated { text, .. } | DiaryEvent::EntryEdited { text, .. } => {
                        prop_assert!(text.is_sealed());
                        last_text = Some(text.clone());
                    }
                    DiaryEvent::EntryDeleted { .. } => last_text = None,
                }
                state.apply(e);
                let enc = codec.encode(e).map_err(|e| TestCaseError::fail(e.to_string()))?;
                let env = Envelope::recorded(
                    NewEvent::new(enc.event_type, enc.payload).with_schema_version(enc.schema_version),
                    stream.clone(), accepted - 1, accepted - 1, Timestamp(0),
                );
                match codec.decode(&env).map_err(|e| TestCaseError::fail(e.to_string()))? {
                    Some(back) => replayed.apply(&back),
                    None => return Err(TestCaseError::fail("decoded nothing")),
                }
            }
            prop_assert_eq!(state.revision(), accepted);
            prop_assert_eq!(state.text(), last_text.as_ref());
            if let Some(t) = state.text() {
                let opened = t.open(Some(key()), entry).map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert!(!opened.is_empty() && opened.len() <= MAX_TEXT_BYTES);
            }
            prop_assert_eq!(state.author(), author);
            prop_assert_eq!(&replayed, &state);
        }
    }
}
