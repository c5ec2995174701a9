//! Golden file for the persisted record format: a change to `event::wire`
//! that cannot read records written by release 0.1 fails here.
//!
//! Regenerate only for a deliberate new format version, with
//! `METACHAT_BLESS=1 cargo test -p metachat-core --test wire_golden`, and keep
//! the old file readable.

use std::collections::BTreeMap;

use metachat_core::event::{wire, Envelope, EventId, Metadata, StreamId, Timestamp};
use metachat_core::Error;
use uuid::Uuid;

const GOLDEN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/envelope_v1.bin");

fn fixture() -> Envelope {
    let mut headers = BTreeMap::new();
    headers.insert("content-type".to_owned(), "application/json".to_owned());
    headers.insert("tenant".to_owned(), "дневник".to_owned());
    Envelope {
        event_id: EventId(Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef)),
        stream_id: StreamId::new("entry-7f3a").unwrap(),
        version: 41,
        position: 1_000_042,
        event_type: "EntryCreated".to_owned(),
        schema_version: 2,
        payload: r#"{"text":"Сегодня хороший день","author":"u-1"}"#.as_bytes().to_vec(),
        metadata: Metadata {
            correlation_id: Some(Uuid::from_u128(7)),
            causation_id: None,
            actor: Some("user-1".to_owned()),
            headers,
        },
        recorded_at: Timestamp(1_764_000_000_123_456),
    }
}

#[test]
fn golden_v1_record_still_decodes() {
    if std::env::var_os("METACHAT_BLESS").is_some() {
        std::fs::write(GOLDEN, wire::encode(&fixture())).unwrap();
    }
    let bytes = std::fs::read(GOLDEN).expect("golden file present");
    assert_eq!(wire::decode(&bytes, String::new).unwrap(), fixture());
    assert_eq!(wire::encode(&fixture()), bytes, "encoder output changed");
}

#[test]
fn truncated_golden_record_is_a_typed_corruption() {
    let bytes = std::fs::read(GOLDEN).unwrap();
    for cut in [0, 1, 4, 20, bytes.len() - 1] {
        let err = wire::decode(&bytes[..cut], || "global position 1000042".into()).unwrap_err();
        assert!(
            matches!(err, Error::Corrupted { ref location, .. } if location.contains("1000042")),
            "{err}"
        );
    }
}
