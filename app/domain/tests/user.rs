//! Given/when/then tests of the `User` and `EmailReservation` aggregates,
//! the validation of what goes into them, and properties of their folds.

use metachat_conformance::testing::AggregateTest;
use metachat_core::aggregate::Aggregate;
use metachat_domain::email::MAX_EMAIL_LEN;
use metachat_domain::user::{
    open_field, seal_field, validate_about, validate_display_name, validate_password_hash,
    UserField, MAX_ABOUT_CHARS, MAX_DISPLAY_NAME_CHARS,
};
use metachat_domain::{
    BlindIndexKey, DataKey, Email, EmailError, EmailReservation, FieldError, ReservationCommand,
    ReservationError, ReservationEvent, Sealed, User, UserCommand, UserError, UserEvent, UserId,
};
use proptest::prelude::*;

const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo";

fn key() -> DataKey {
    DataKey::from_bytes([42; 32])
}

fn sealed(id: UserId, field: UserField, value: &str) -> Sealed {
    seal_field(&key(), id, field, value).expect("seals")
}

fn register(id: UserId) -> UserCommand {
    let email = Email::parse("ada@example.org").expect("valid");
    UserCommand::Register {
        user_id: id,
        email_index: email.index(&BlindIndexKey::from_bytes([1; 32])),
        email: sealed(id, UserField::Email, email.as_str()),
        password_hash: sealed(id, UserField::PasswordHash, HASH),
        display_name: sealed(id, UserField::DisplayName, "Ada"),
    }
}

fn registered(cmd: &UserCommand) -> UserEvent {
    let UserCommand::Register {
        user_id,
        email_index,
        email,
        password_hash,
        display_name,
    } = cmd.clone()
    else {
        unreachable!("a Register command")
    };
    UserEvent::UserRegistered {
        user_id,
        email_index,
        email,
        password_hash,
        display_name,
    }
}

#[test]
fn register_records_the_sealed_values() {
    let id = UserId::new();
    let cmd = register(id);
    AggregateTest::<User>::given_no_events()
        .when(&cmd)
        .then_expect(vec![registered(&cmd)]);
    let mut user = User::default();
    user.apply(&registered(&cmd));
    let personal = user.open(&key()).expect("opens").expect("active");
    assert_eq!(personal.email, "ada@example.org");
    assert_eq!(personal.password_hash, HASH);
    assert_eq!(personal.display_name, "Ada");
    assert_eq!(personal.about, None);
    assert!(
        user.open(&DataKey::generate()).is_err(),
        "only the user's key opens it"
    );
    assert!(!format!("{personal:?}").contains("Ada"), "Debug redacts");
}

#[test]
fn register_twice_is_refused() {
    let id = UserId::new();
    AggregateTest::<User>::given([registered(&register(id))])
        .when(&register(id))
        .then_error(|e| *e == UserError::AlreadyRegistered);
}

#[test]
fn email_validation() {
    for (email, want) in [
        ("", EmailError::Empty),
        ("ada.example.org", EmailError::MissingAt),
        ("ada@example", EmailError::InvalidDomain),
        ("ada@@example.org", EmailError::MultipleAt),
    ] {
        assert_eq!(Email::parse(email), Err(want), "{email:?}");
    }
    let long = format!("{}@example.org", "a.".repeat(MAX_EMAIL_LEN));
    assert!(matches!(
        Email::parse(&long),
        Err(EmailError::TooLong { .. })
    ));
}

#[test]
fn display_name_validation() {
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
        assert_eq!(validate_display_name(name), Err(want), "{name:?}");
    }
    assert_eq!(validate_display_name(" Ada L. ").as_deref(), Ok("Ada L."));
}

#[test]
fn password_hash_and_about_validation() {
    for hash in ["", "two words"] {
        assert_eq!(
            validate_password_hash(hash),
            Err(UserError::InvalidPasswordHash)
        );
    }
    assert!(matches!(
        validate_about(&"y".repeat(MAX_ABOUT_CHARS + 1)),
        Err(FieldError::TooLong { .. })
    ));
    assert_eq!(
        validate_about("bell\u{7}"),
        Err(FieldError::ControlCharacter)
    );
}

#[test]
fn update_profile_records_the_fields_given() {
    let id = UserId::new();
    let name = sealed(id, UserField::DisplayName, "Ada L.");
    let about = sealed(id, UserField::About, "hello\nworld");
    AggregateTest::<User>::given([registered(&register(id))])
        .when(&UserCommand::UpdateProfile {
            display_name: Some(name.clone()),
            about: Some(about.clone()),
        })
        .then_expect(vec![UserEvent::ProfileUpdated {
            user_id: id,
            display_name: Some(name.clone()),
            about: Some(about.clone()),
        }]);
    let mut user = User::default();
    user.apply(&registered(&register(id)));
    user.apply(&UserEvent::ProfileUpdated {
        user_id: id,
        display_name: None,
        about: Some(about),
    });
    let p = user.open(&key()).expect("opens").expect("active");
    assert_eq!(
        (p.display_name.as_str(), p.about.as_deref()),
        ("Ada", Some("hello\nworld"))
    );
    AggregateTest::<User>::given([registered(&register(id))])
        .when(&UserCommand::UpdateProfile {
            display_name: None,
            about: None,
        })
        .then_expect(vec![]);
}

#[test]
fn commands_on_unregistered_user_are_refused() {
    let update = UserCommand::UpdateProfile {
        display_name: None,
        about: None,
    };
    for cmd in [update, UserCommand::Erase] {
        AggregateTest::<User>::given_no_events()
            .when(&cmd)
            .then_error(|e| *e == UserError::NotRegistered);
    }
}

#[test]
fn erase_leaves_a_tombstone() {
    let id = UserId::new();
    let cmd = register(id);
    AggregateTest::<User>::given([registered(&cmd)])
        .when(&UserCommand::Erase)
        .then_expect(vec![UserEvent::UserErased { user_id: id }]);

    let mut user = User::default();
    user.apply(&registered(&cmd));
    user.apply(&UserEvent::UserErased { user_id: id });
    assert!(user.is_erased());
    assert_eq!(user.user_id(), Some(id));
    assert_eq!(user.open(&key()).expect("no error"), None);
    let UserCommand::Register { email_index, .. } = cmd else {
        unreachable!()
    };
    assert_eq!(user.email_index(), Some(&email_index));
}

#[test]
fn erased_user_refuses_every_command() {
    let id = UserId::new();
    let history = [
        registered(&register(id)),
        UserEvent::UserErased { user_id: id },
    ];
    for cmd in [
        register(id),
        UserCommand::UpdateProfile {
            display_name: Some(sealed(id, UserField::DisplayName, "Eve")),
            about: None,
        },
        UserCommand::Erase,
    ] {
        AggregateTest::<User>::given(history.clone())
            .when(&cmd)
            .then_error(|e| *e == UserError::Erased);
    }
}

#[test]
fn user_events_carry_no_personal_value_in_the_clear() {
    let id = UserId::new();
    let event = registered(&register(id));
    let json = serde_json::to_string(&event).expect("json");
    for plain in ["ada@example.org", "Ada", "argon2id"] {
        assert!(!json.contains(plain), "{plain} in {json}");
    }
    let UserEvent::UserRegistered { email, .. } = &event else {
        unreachable!()
    };
    assert_eq!(
        open_field(&key(), id, UserField::Email, email).expect("opens"),
        "ada@example.org"
    );
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
    let id = UserId::new();
    let text = prop_oneof![Just(String::new()), "[a-zA-Z ]{0,12}", "\\PC{0,80}"];
    prop_oneof![
        Just(register(id)),
        (
            proptest::option::of(text.clone()),
            proptest::option::of(text)
        )
            .prop_map(move |(n, a)| UserCommand::UpdateProfile {
                display_name: n.map(|n| sealed(id, UserField::DisplayName, &n)),
                about: a.map(|a| sealed(id, UserField::About, &a)),
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
