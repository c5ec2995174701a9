//! Given/when/then tests of the `User` and `EmailReservation` aggregates,
//! and properties of their folds.

use metachat_conformance::testing::AggregateTest;
use metachat_core::aggregate::Aggregate;
use metachat_domain::email::MAX_EMAIL_LEN;
use metachat_domain::user::{MAX_ABOUT_CHARS, MAX_DISPLAY_NAME_CHARS};
use metachat_domain::{
    Email, EmailError, EmailReservation, FieldError, ReservationCommand, ReservationError,
    ReservationEvent, User, UserCommand, UserError, UserEvent, UserId,
};
use proptest::prelude::*;

const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo";

fn register(id: UserId, email: &str, name: &str) -> UserCommand {
    UserCommand::Register {
        user_id: id,
        email: email.to_owned(),
        password_hash: HASH.to_owned(),
        display_name: name.to_owned(),
    }
}

fn registered(id: UserId) -> UserEvent {
    let email = Email::parse("ada@example.org").expect("valid");
    UserEvent::UserRegistered {
        user_id: id,
        email_hash: email.hash(),
        email: email.as_str().to_owned(),
        password_hash: HASH.to_owned(),
        display_name: "Ada".to_owned(),
    }
}

fn update(name: Option<&str>, about: Option<&str>) -> UserCommand {
    UserCommand::UpdateProfile {
        display_name: name.map(str::to_owned),
        about: about.map(str::to_owned),
    }
}

#[test]
fn register_normalises_email_and_name() {
    let id = UserId::new();
    AggregateTest::<User>::given_no_events()
        .when(&register(id, "  Ada@Example.ORG ", "  Ada  "))
        .then_expect(vec![registered(id)]);
}

#[test]
fn register_twice_is_refused() {
    let id = UserId::new();
    AggregateTest::<User>::given([registered(id)])
        .when(&register(id, "ada@example.org", "Ada"))
        .then_error(|e| *e == UserError::AlreadyRegistered);
}

#[test]
fn register_refuses_invalid_email() {
    let id = UserId::new();
    for (email, want) in [
        ("", EmailError::Empty),
        ("ada.example.org", EmailError::MissingAt),
        ("ada@example", EmailError::InvalidDomain),
        ("ada@@example.org", EmailError::MultipleAt),
    ] {
        AggregateTest::<User>::given_no_events()
            .when(&register(id, email, "Ada"))
            .then_error(|e| *e == UserError::InvalidEmail(want));
    }
    let long = format!("{}@example.org", "a.".repeat(MAX_EMAIL_LEN));
    AggregateTest::<User>::given_no_events()
        .when(&register(id, &long, "Ada"))
        .then_error(|e| matches!(e, UserError::InvalidEmail(EmailError::TooLong { .. })));
}

#[test]
fn register_refuses_invalid_display_name() {
    let id = UserId::new();
    let too_long = "x".repeat(MAX_DISPLAY_NAME_CHARS + 1);
    for (name, want) in [
        ("   ", FieldError::Empty),
        ("Ada\u{1b}[31m", FieldError::ControlCharacter),
        (
            too_long.as_str(),
            FieldError::TooLong {
                len: MAX_DISPLAY_NAME_CHARS + 1,
                max: MAX_DISPLAY_NAME_CHARS,
            },
        ),
    ] {
        AggregateTest::<User>::given_no_events()
            .when(&register(id, "ada@example.org", name))
            .then_error(|e| *e == UserError::InvalidDisplayName(want));
    }
}

#[test]
fn register_refuses_invalid_password_hash() {
    let id = UserId::new();
    for hash in ["", "two words"] {
        AggregateTest::<User>::given_no_events()
            .when(&UserCommand::Register {
                user_id: id,
                email: "ada@example.org".into(),
                password_hash: hash.into(),
                display_name: "Ada".into(),
            })
            .then_error(|e| *e == UserError::InvalidPasswordHash);
    }
}

#[test]
fn update_profile_emits_only_changed_fields() {
    let id = UserId::new();
    AggregateTest::<User>::given([registered(id)])
        .when(&update(Some(" Ada L. "), Some("hello\nworld")))
        .then_expect(vec![UserEvent::ProfileUpdated {
            user_id: id,
            display_name: Some("Ada L.".into()),
            about: Some("hello\nworld".into()),
        }]);
    AggregateTest::<User>::given([registered(id)])
        .when(&update(Some("Ada"), Some("new")))
        .then_expect(vec![UserEvent::ProfileUpdated {
            user_id: id,
            display_name: None,
            about: Some("new".into()),
        }]);
}

#[test]
fn update_profile_without_change_emits_nothing() {
    let id = UserId::new();
    AggregateTest::<User>::given([registered(id)])
        .when(&update(Some("Ada"), None))
        .then_expect(vec![]);
    AggregateTest::<User>::given([registered(id)])
        .when(&update(None, Some("")))
        .then_expect(vec![]);
    AggregateTest::<User>::given([registered(id)])
        .when(&update(None, None))
        .then_expect(vec![]);
}

#[test]
fn update_profile_refuses_invalid_fields() {
    let id = UserId::new();
    AggregateTest::<User>::given([registered(id)])
        .when(&update(Some(""), None))
        .then_error(|e| *e == UserError::InvalidDisplayName(FieldError::Empty));
    AggregateTest::<User>::given([registered(id)])
        .when(&update(None, Some(&"y".repeat(MAX_ABOUT_CHARS + 1))))
        .then_error(|e| matches!(e, UserError::InvalidAbout(FieldError::TooLong { .. })));
    AggregateTest::<User>::given([registered(id)])
        .when(&update(None, Some("bell\u{7}")))
        .then_error(|e| *e == UserError::InvalidAbout(FieldError::ControlCharacter));
}

#[test]
fn commands_on_unregistered_user_are_refused() {
    for cmd in [update(Some("Ada"), None), UserCommand::Erase] {
        AggregateTest::<User>::given_no_events()
            .when(&cmd)
            .then_error(|e| *e == UserError::NotRegistered);
    }
}

#[test]
fn erase_leaves_a_tombstone() {
    let id = UserId::new();
    AggregateTest::<User>::given([registered(id)])
        .when(&UserCommand::Erase)
        .then_expect(vec![UserEvent::UserErased { user_id: id }]);

    let mut user = User::default();
    user.apply(&registered(id));
    user.apply(&UserEvent::UserErased { user_id: id });
    assert!(user.is_erased());
    assert_eq!(user.user_id(), Some(id));
    assert_eq!(user.email(), None);
    assert_eq!(user.password_hash(), None);
    assert_eq!(user.display_name(), None);
    let hash = Email::parse("ada@example.org").map(|e| e.hash()).ok();
    assert_eq!(user.email_hash(), hash.as_ref());
}

#[test]
fn erased_user_refuses_every_command() {
    let id = UserId::new();
    let history = [registered(id), UserEvent::UserErased { user_id: id }];
    for cmd in [
        register(id, "ada@example.org", "Ada"),
        update(Some("Eve"), None),
        UserCommand::Erase,
    ] {
        AggregateTest::<User>::given(history.clone())
            .when(&cmd)
            .then_error(|e| *e == UserError::Erased);
    }
}

#[test]
fn reservation_given_when_then() {
    let (a, b) = (UserId::new(), UserId::new());
    let reserve = |u| ReservationCommand::Reserve { user_id: u };
    let release = |u| ReservationCommand::Release { user_id: u };
    AggregateTest::<EmailReservation>::given_no_events()
        .when(&reserve(a))
        .then_expect(vec![ReservationEvent::EmailReserved { user_id: a }]);
    AggregateTest::<EmailReservation>::given([ReservationEvent::EmailReserved { user_id: a }])
        .when(&reserve(a))
        .then_expect(vec![]);
    AggregateTest::<EmailReservation>::given([ReservationEvent::EmailReserved { user_id: a }])
        .when(&reserve(b))
        .then_error(|e| *e == ReservationError::Taken);
    AggregateTest::<EmailReservation>::given([ReservationEvent::EmailReserved { user_id: a }])
        .when(&release(a))
        .then_expect(vec![ReservationEvent::EmailReleased { user_id: a }]);
    AggregateTest::<EmailReservation>::given([ReservationEvent::EmailReserved { user_id: a }])
        .when(&release(b))
        .then_error(|e| *e == ReservationError::NotHolder);
    AggregateTest::<EmailReservation>::given_no_events()
        .when(&release(a))
        .then_expect(vec![]);
    AggregateTest::<EmailReservation>::given([
        ReservationEvent::EmailReserved { user_id: a },
        ReservationEvent::EmailReleased { user_id: a },
    ])
    .when(&reserve(b))
    .then_expect(vec![ReservationEvent::EmailReserved { user_id: b }]);
}

fn any_user_command() -> impl Strategy<Value = UserCommand> {
    let text = prop_oneof![
        Just(String::new()),
        "[a-zA-Z ]{0,12}",
        "\\PC{0,80}",
        "[a-z]{1,8}@[a-z]{1,8}\\.[a-z]{2,3}",
    ];
    prop_oneof![
        (text.clone(), text.clone()).prop_map(|(e, n)| register(UserId::new(), &e, &n)),
        (
            proptest::option::of(text.clone()),
            proptest::option::of(text)
        )
            .prop_map(|(n, a)| UserCommand::UpdateProfile {
                display_name: n,
                about: a
            }),
        Just(UserCommand::Erase),
    ]
}

proptest! {
    /// Any sequence of commands: the revision counts accepted events, the
    /// events survive the codec, and once erased every command is refused.
    #[test]
    fn user_fold_invariants(cmds in proptest::collection::vec(any_user_command(), 0..24)) {
        use metachat_core::codec::{Codec, JsonCodec};
        let codec = JsonCodec::<UserEvent>::new();
        let mut user = User::default();
        let mut accepted = 0u64;
        for cmd in &cmds {
            let was_erased = user.is_erased();
            match user.handle(cmd) {
                Ok(events) => {
                    prop_assert!(!was_erased, "erased user accepted {cmd:?}");
                    for e in &events {
                        let enc = codec.encode(e).map_err(|e| TestCaseError::fail(e.to_string()))?;
                        let env = metachat_core::event::Envelope::recorded(
                            metachat_core::event::NewEvent::new(enc.event_type, enc.payload),
                            metachat_core::event::StreamId::new("user-x").map_err(|e| TestCaseError::fail(e.to_string()))?,
                            accepted, accepted, Default::default(),
                        );
                        let back = codec.decode(&env).map_err(|e| TestCaseError::fail(e.to_string()))?;
                        prop_assert_eq!(back.as_ref(), Some(e));
                        user.apply(e);
                        accepted += 1;
                    }
                }
                Err(e) => {
                    if was_erased {
                        prop_assert_eq!(e, UserError::Erased);
                    }
                }
            }
            prop_assert_eq!(user.revision(), accepted);
        }
    }
}
