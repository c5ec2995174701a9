//! Given/when/then tests of the `DiaryEntry` aggregate and properties of
//! its fold. Run with `--features test-util`.
#![cfg(feature = "test-util")]

use metachat_core::aggregate::Aggregate;
use metachat_core::codec::{Codec, JsonCodec};
use metachat_core::domain::{
    DiaryCommand, DiaryEntry, DiaryError, DiaryEvent, EntryId, UserId, MAX_TEXT_BYTES,
};
use metachat_core::event::{Envelope, NewEvent, StreamId, Timestamp};
use metachat_core::testing::AggregateTest;
use proptest::prelude::*;

fn created(entry_id: EntryId, author: UserId, text: &str) -> DiaryEvent {
    DiaryEvent::EntryCreated {
        entry_id,
        author,
        text: text.to_owned(),
        revision: 1,
    }
}

fn edit(author: UserId, text: &str) -> DiaryCommand {
    DiaryCommand::Edit {
        author,
        text: text.to_owned(),
        expected_revision: None,
    }
}

#[test]
fn create() {
    let (e, a) = (EntryId::new(), UserId::new());
    AggregateTest::<DiaryEntry>::given_no_events()
        .when(&DiaryCommand::Create {
            entry_id: e,
            author: a,
            text: "  today was fine\n\tmostly  ".into(),
        })
        .then_expect(vec![DiaryEvent::EntryCreated {
            entry_id: e,
            author: a,
            text: "  today was fine\n\tmostly  ".into(),
            revision: 1,
        }]);
}

#[test]
fn create_twice_is_refused_even_after_delete() {
    let (e, a) = (EntryId::new(), UserId::new());
    let cmd = DiaryCommand::Create {
        entry_id: e,
        author: a,
        text: "again".into(),
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

#[test]
fn invalid_text_is_refused_on_create_and_edit() {
    let (e, a) = (EntryId::new(), UserId::new());
    let too_long = "x".repeat(MAX_TEXT_BYTES + 1);
    type Check = fn(&DiaryError) -> bool;
    let cases: [(&str, Check); 4] = [
        ("", |e| *e == DiaryError::EmptyText),
        (" \n\t ", |e| *e == DiaryError::EmptyText),
        ("a\r\nb", |e| *e == DiaryError::ControlCharacter),
        ("esc\u{1b}", |e| *e == DiaryError::ControlCharacter),
    ];
    for (text, pred) in cases {
        AggregateTest::<DiaryEntry>::given_no_events()
            .when(&DiaryCommand::Create {
                entry_id: e,
                author: a,
                text: text.into(),
            })
            .then_error(pred);
        AggregateTest::<DiaryEntry>::given([created(e, a, "x")])
            .when(&edit(a, text))
            .then_error(pred);
    }
    AggregateTest::<DiaryEntry>::given_no_events()
        .when(&DiaryCommand::Create {
            entry_id: e,
            author: a,
            text: too_long.clone(),
        })
        .then_error(|e| {
            *e == DiaryError::TextTooLong {
                len: MAX_TEXT_BYTES + 1,
                max: MAX_TEXT_BYTES,
            }
        });
    AggregateTest::<DiaryEntry>::given([created(e, a, "x")])
        .when(&edit(a, &too_long))
        .then_error(|e| matches!(e, DiaryError::TextTooLong { .. }));
}

#[test]
fn edit_by_author() {
    let (e, a) = (EntryId::new(), UserId::new());
    AggregateTest::<DiaryEntry>::given([created(e, a, "one")])
        .when(&edit(a, "two"))
        .then_expect(vec![DiaryEvent::EntryEdited {
            entry_id: e,
            author: a,
            text: "two".into(),
            revision: 2,
        }]);
    AggregateTest::<DiaryEntry>::given([created(e, a, "one")])
        .when(&edit(a, "one"))
        .then_expect(vec![]);
}

#[test]
fn edit_with_expected_revision() {
    let (e, a) = (EntryId::new(), UserId::new());
    let history = [
        created(e, a, "one"),
        DiaryEvent::EntryEdited {
            entry_id: e,
            author: a,
            text: "two".into(),
            revision: 2,
        },
    ];
    let at = |rev| DiaryCommand::Edit {
        author: a,
        text: "three".into(),
        expected_revision: Some(rev),
    };
    AggregateTest::<DiaryEntry>::given(history.clone())
        .when(&at(2))
        .then_expect(vec![DiaryEvent::EntryEdited {
            entry_id: e,
            author: a,
            text: "three".into(),
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
    for cmd in [edit(b, "mine now"), DiaryCommand::Delete { author: b }] {
        AggregateTest::<DiaryEntry>::given([created(e, a, "x")])
            .when(&cmd)
            .then_error(|e| *e == DiaryError::NotAuthor);
    }
}

#[test]
fn delete_then_nothing() {
    let (e, a) = (EntryId::new(), UserId::new());
    AggregateTest::<DiaryEntry>::given([created(e, a, "x")])
        .when(&DiaryCommand::Delete { author: a })
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
    for cmd in [edit(a, "y"), DiaryCommand::Delete { author: a }] {
        AggregateTest::<DiaryEntry>::given(deleted.clone())
            .when(&cmd)
            .then_error(|e| *e == DiaryError::Deleted);
    }
}

#[test]
fn unknown_entry_cannot_be_changed() {
    let a = UserId::new();
    for cmd in [edit(a, "y"), DiaryCommand::Delete { author: a }] {
        AggregateTest::<DiaryEntry>::given_no_events()
            .when(&cmd)
            .then_error(|e| *e == DiaryError::NotFound);
    }
}

fn any_text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "\\PC{1,40}",
        1 => Just(String::new()),
        1 => Just(" \n ".to_owned()),
        1 => "[a-z]{1,5}[\\x00-\\x1f][a-z]{0,5}",
        1 => (MAX_TEXT_BYTES - 1..MAX_TEXT_BYTES + 2).prop_map(|n| "x".repeat(n)),
    ]
}

fn any_command(entry: EntryId, authors: [UserId; 2]) -> impl Strategy<Value = DiaryCommand> {
    let author = prop::sample::select(authors.to_vec());
    prop_oneof![
        (author.clone(), any_text()).prop_map(move |(author, text)| DiaryCommand::Create {
            entry_id: entry,
            author,
            text
        }),
        (author.clone(), any_text(), proptest::option::of(0u64..6)).prop_map(
            |(author, text, expected_revision)| DiaryCommand::Edit {
                author,
                text,
                expected_revision
            }
        ),
        author.prop_map(|author| DiaryCommand::Delete { author }),
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
    /// holds is the last accepted text, byte for byte, also after a trip
    /// through the codec; the author never changes; a deleted entry accepts
    /// nothing more.
    #[test]
    fn diary_fold_invariants((entry, _authors, cmds) in scenario()) {
        let codec = JsonCodec::<DiaryEvent>::new();
        let stream = StreamId::from_parts("entry", entry).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let mut state = DiaryEntry::default();
        let mut replayed = DiaryEntry::default();
        let mut accepted = 0u64;
        let mut last_text = String::new();
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
                        last_text = text.clone();
                    }
                    DiaryEvent::EntryDeleted { .. } => last_text.clear(),
                }
                state.apply(e);
                let enc = codec.encode(e).map_err(|e| TestCaseError::fail(e.to_string()))?;
                let env = Envelope::recorded(
                    NewEvent::new(enc.event_type, enc.payload),
                    stream.clone(), accepted - 1, accepted - 1, Timestamp(0),
                );
                match codec.decode(&env).map_err(|e| TestCaseError::fail(e.to_string()))? {
                    Some(back) => replayed.apply(&back),
                    None => return Err(TestCaseError::fail("decoded nothing")),
                }
            }
            prop_assert_eq!(state.revision(), accepted);
            prop_assert_eq!(state.text(), last_text.as_str());
            prop_assert_eq!(state.author(), author);
            prop_assert_eq!(&replayed, &state);
        }
    }
}
