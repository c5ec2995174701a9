//! Golden payloads of the sealed domain events: a change that cannot read
//! what release 0.1 wrote (the v1 plaintext `EntryCreated`, the v2 sealed
//! one, `MoodAnalyzed` with a sealed theme), or that changes the associated
//! data, the base64 layout or the deterministic mood event ids, fails here.
//!
//! The v2 files hold values sealed with random nonces, so they are written
//! once: regenerate only for a deliberate new schema version, with
//! `METACHAT_BLESS=1 cargo test -p metachat-domain --test golden`, and
//! keep the old files readable.

use metachat_analysis::mood::ValenceLabel;
use metachat_analysis::{Emotion, Mood};
use metachat_core::codec::Codec;
use metachat_core::event::{Envelope, NewEvent, StreamId, Timestamp};
use metachat_domain::diary::{self, seal_text};
use metachat_domain::mood::{self, mood_event_id, open_theme, seal_theme};
use metachat_domain::{DataKey, DiaryEvent, EntryId, EntryText, MoodEvent, MoodValue, UserId};
use uuid::Uuid;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/");

fn key() -> DataKey {
    DataKey::from_bytes([7; 32])
}
fn entry() -> EntryId {
    EntryId(Uuid::from_u128(0x1111_2222_3333_4444_5555_6666_7777_8888))
}
fn author() -> UserId {
    UserId(Uuid::from_u128(0x9999_aaaa_bbbb_cccc_dddd_eeee_ffff_0000))
}
const TEXT: &str = "Сегодня хороший день — a good day";
const THEME: [f32; 4] = [0.5, -0.25, 0.125, 0.0];

/// The mood of the version 1 golden files, as version 2 reads it: the
/// label upcast from the valence (0.75 > 0.2: positive), no probability.
fn mood_fixture() -> Mood {
    Mood {
        valence: 0.75,
        valence_label: ValenceLabel::Positive,
        valence_probability: None,
        arousal: 0.5,
        emotions: Emotion::ALL
            .iter()
            .map(|&e| (e, if e == Emotion::Joy { 1.0 } else { 0.0 }))
            .collect(),
        dominant: Emotion::Joy,
        confidence: 1.0,
        model_id: "golden/v1".into(),
        schema_version: Mood::SCHEMA_VERSION,
        windows: 1,
    }
}

/// A version 2 mood, with its label's probability.
fn mood_fixture_v2() -> Mood {
    Mood {
        valence: -0.5,
        valence_label: ValenceLabel::Negative,
        valence_probability: Some(0.625),
        dominant: Emotion::Sadness,
        emotions: Emotion::ALL
            .iter()
            .map(|&e| (e, if e == Emotion::Sadness { 1.0 } else { 0.0 }))
            .collect(),
        model_id: "golden/v2".into(),
        ..mood_fixture()
    }
}

fn envelope(stream: StreamId, event_type: &str, schema_version: u32, payload: &[u8]) -> Envelope {
    Envelope::recorded(
        NewEvent::new(event_type, payload.to_vec()).with_schema_version(schema_version),
        stream,
        0,
        0,
        Timestamp(0),
    )
}

fn read(name: &str) -> Vec<u8> {
    std::fs::read(format!("{DIR}{name}")).unwrap_or_else(|e| panic!("golden file {name}: {e}"))
}

fn bless(name: &str, bytes: &[u8]) {
    if std::env::var_os("METACHAT_BLESS").is_some() {
        std::fs::write(format!("{DIR}{name}"), bytes).expect("write golden file");
    }
}

#[test]
fn entry_created_v1_reads_as_plain_text() {
    let payload = read("entry_created_v1.json");
    let stream = StreamId::from_parts("entry", entry()).expect("stream");
    let env = envelope(stream, "EntryCreated", 1, &payload);
    let event = diary::codec().decode(&env).expect("decode").expect("event");
    assert_eq!(
        event,
        DiaryEvent::EntryCreated {
            entry_id: entry(),
            author: author(),
            text: EntryText::Plain(TEXT.into()),
            revision: 1,
        }
    );
}

#[test]
fn entry_created_v2_opens_with_its_key_and_reencodes_identically() {
    let codec = diary::codec();
    let name = "entry_created_v2.json";
    if std::env::var_os("METACHAT_BLESS").is_some() {
        let event = DiaryEvent::EntryCreated {
            entry_id: entry(),
            author: author(),
            text: EntryText::Sealed(seal_text(&key(), entry(), TEXT).expect("seal")),
            revision: 1,
        };
        bless(name, &codec.encode(&event).expect("encode").payload);
    }
    let payload = read(name);
    let stream = StreamId::from_parts("entry", entry()).expect("stream");
    let env = envelope(stream, "EntryCreated", 2, &payload);
    let event = codec.decode(&env).expect("decode").expect("event");
    let Some(text @ EntryText::Sealed(_)) = event.text() else {
        panic!("not sealed: {event:?}");
    };
    assert_eq!(text.open(Some(&key()), entry()).expect("opens"), TEXT);
    assert!(text.open(Some(&key()), EntryId::new()).is_err());
    assert!(!String::from_utf8_lossy(&payload).contains("хороший"));
    let again = codec.encode(&event).expect("encode");
    assert_eq!((again.schema_version, again.payload), (2, payload));
}

#[test]
fn mood_analyzed_v1_opens_its_theme_and_keeps_its_id() {
    let codec = mood::codec();
    // Written by release 0.1 (mood schema version 1); never blessed again.
    let name = "mood_analyzed_v1.json";
    if std::env::var_os("METACHAT_BLESS").is_some() {
        bless(
            "mood_event_id.txt",
            mood_event_id(entry(), 3, "golden/v1")
                .to_string()
                .as_bytes(),
        );
    }
    let payload = read(name);
    let stream = mood::mood_stream(entry()).expect("stream");
    let env = envelope(stream, "MoodAnalyzed", 1, &payload);
    let event = codec.decode(&env).expect("decode").expect("event");
    let MoodEvent::MoodAnalyzed {
        entry_id,
        author: a,
        entry_revision,
        entry_created_at,
        mood,
        theme,
    } = &event;
    assert_eq!((*entry_id, *a, *entry_revision), (entry(), author(), 3));
    assert_eq!(*entry_created_at, Timestamp(1_764_000_000_123_456));
    assert_eq!(*mood, MoodValue::Plain(mood_fixture()));
    let theme = theme.as_ref().expect("theme");
    assert_eq!(open_theme(&key(), entry(), 3, theme).expect("opens"), THEME);
    // Encoded again, the mood is version 2 and reads back the same.
    let again = codec.encode(&event).expect("encode");
    assert!(String::from_utf8_lossy(&again.payload).contains("\"schema_version\":2"));
    let env = envelope(
        mood::mood_stream(entry()).expect("stream"),
        "MoodAnalyzed",
        1,
        &again.payload,
    );
    assert_eq!(codec.decode(&env).expect("decode").expect("event"), event);
    // The id of a re-analysis must not change between releases, or a
    // re-analysis after an upgrade would record a second event.
    let id = String::from_utf8(read("mood_event_id.txt")).expect("utf-8");
    assert_eq!(
        mood_event_id(entry(), 3, "golden/v1").to_string(),
        id.trim()
    );
}

#[test]
fn mood_analyzed_with_a_sealed_mood_opens_with_its_key() {
    let codec = mood::codec();
    // A version 1 mood, sealed by release 0.1; never blessed again.
    let name = "mood_analyzed_sealed.json";
    let payload = read(name);
    assert!(!String::from_utf8_lossy(&payload).contains("valence"));
    let stream = mood::mood_stream(entry()).expect("stream");
    let env = envelope(stream, "MoodAnalyzed", 1, &payload);
    let event = codec.decode(&env).expect("decode").expect("event");
    let MoodEvent::MoodAnalyzed { mood, .. } = &event;
    assert!(matches!(mood, MoodValue::Sealed(_)));
    assert_eq!(
        mood::open_mood(&key(), entry(), 3, mood).expect("opens"),
        mood_fixture()
    );
    assert!(mood::open_mood(&key(), entry(), 4, mood).is_err());
    let again = codec.encode(&event).expect("encode");
    assert_eq!(again.payload, payload);
}

#[test]
fn mood_analyzed_with_a_sealed_v2_mood_opens_with_its_label_and_probability() {
    let codec = mood::codec();
    let name = "mood_analyzed_sealed_v2.json";
    if std::env::var_os("METACHAT_BLESS").is_some() {
        let event = MoodEvent::MoodAnalyzed {
            entry_id: entry(),
            author: author(),
            entry_revision: 3,
            entry_created_at: Timestamp(1_764_000_000_123_456),
            mood: mood::seal_mood(&key(), entry(), 3, &mood_fixture_v2()).expect("seal"),
            theme: Some(seal_theme(&key(), entry(), 3, &THEME).expect("seal")),
        };
        bless(name, &codec.encode(&event).expect("encode").payload);
    }
    let payload = read(name);
    assert!(!String::from_utf8_lossy(&payload).contains("valence"));
    let stream = mood::mood_stream(entry()).expect("stream");
    let env = envelope(stream, "MoodAnalyzed", 1, &payload);
    let event = codec.decode(&env).expect("decode").expect("event");
    let MoodEvent::MoodAnalyzed { mood, .. } = &event;
    assert_eq!(
        mood::open_mood(&key(), entry(), 3, mood).expect("opens"),
        mood_fixture_v2()
    );
    let again = codec.encode(&event).expect("encode");
    assert_eq!(again.payload, payload);
}

#[test]
fn a_mood_of_an_unknown_version_or_a_v2_without_its_label_is_refused() {
    let v1 = serde_json::to_value(mood_fixture()).expect("json");
    let mut future = v1.clone();
    future["schema_version"] = 3.into();
    assert!(serde_json::from_value::<Mood>(future).is_err());
    let mut unlabelled = v1;
    unlabelled
        .as_object_mut()
        .expect("object")
        .remove("valence_label");
    assert!(serde_json::from_value::<Mood>(unlabelled).is_err());
}
