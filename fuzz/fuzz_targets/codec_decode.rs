//! `metachat_core::codec::JsonCodec` with upcasters, on arbitrary envelopes.
//!
//! Two codecs: the diary's real one (`metachat_domain::diary::codec`, which
//! upcasts `EntryCreated`/`EntryEdited` v1 plain text to v2) and the counter
//! of the core's repository tests (`Added` v1 `{"amount"}` → v2 `{"n"}`).
//!
//! Input layout: byte 0 picks the codec (bit 2), the event type (bits 0-1:
//! three known types or an unknown one); byte 1 is the schema version
//! (`0xff` stands for `u32::MAX`); the rest is the payload.
//!
//! Invariants: no panic; the strict codec (unknown types fail) and the
//! lenient one (unknown types skipped) agree on every known type; a decoded
//! event encodes at its current schema version and decodes back equal.
#![no_main]

use libfuzzer_sys::fuzz_target;
use metachat_core::codec::{Codec, DomainEvent, JsonCodec, UnknownTypePolicy, Upcasters};
use metachat_core::event::{Envelope, EventId, Metadata, StreamId, Timestamp};
use metachat_core::Error;
use metachat_domain::diary;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
enum CounterEvent {
    Added { n: u32 },
    Reset {},
}

impl DomainEvent for CounterEvent {
    fn event_types() -> &'static [&'static str] {
        &["Added", "Reset"]
    }
    fn schema_version(event_type: &str) -> u32 {
        if event_type == "Added" {
            2
        } else {
            1
        }
    }
}

fn counter_codec() -> JsonCodec<CounterEvent> {
    // As in crates/metachat-core/tests/repository.rs.
    JsonCodec::new().with_upcasters(Upcasters::new().register("Added", 1, |mut v| {
        let amount = v
            .get_mut("amount")
            .map(serde_json::Value::take)
            .ok_or("v1 Added without amount")?;
        Ok(serde_json::json!({ "n": amount }))
    }))
}

fn envelope(event_type: &str, schema_version: u32, payload: Vec<u8>) -> Envelope {
    Envelope {
        event_id: EventId(Default::default()),
        stream_id: StreamId::new("fuzz-1").expect("a valid stream id"),
        version: 0,
        position: 0,
        event_type: event_type.to_owned(),
        schema_version,
        payload,
        metadata: Metadata::default(),
        recorded_at: Timestamp(0),
    }
}

fn check<E, C>(strict: &C, lenient: &C, types: &[&str], selector: u8, env: Envelope)
where
    E: DomainEvent + PartialEq + std::fmt::Debug,
    C: Codec<E>,
{
    let ty = types
        .get(usize::from(selector & 3))
        .copied()
        .unwrap_or("NoSuchEvent");
    let env = Envelope {
        event_type: ty.to_owned(),
        ..env
    };
    let known = E::event_types().contains(&ty);
    let s = strict.decode(&env);
    let l = lenient.decode(&env);
    if !known {
        assert!(
            matches!(s, Err(Error::UnknownEventType { .. })),
            "strict codec on an unknown type: {s:?}"
        );
        assert!(
            matches!(l, Ok(None)),
            "lenient codec on an unknown type: {l:?}"
        );
        return;
    }
    match (&s, &l) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "strict and lenient codecs disagree"),
        (Err(_), Err(_)) => {}
        _ => panic!("strict {s:?} and lenient {l:?} codecs disagree"),
    }
    let Ok(Some(event)) = s else {
        assert!(!matches!(s, Ok(None)), "a known type was skipped");
        return;
    };
    let enc = strict.encode(&event).expect("a decoded event encodes");
    assert_eq!(enc.event_type, ty);
    assert_eq!(enc.schema_version, E::schema_version(ty));
    let again = envelope(&enc.event_type, enc.schema_version, enc.payload);
    let back = strict
        .decode(&again)
        .expect("a re-encoded event decodes")
        .expect("a known type");
    assert_eq!(back, event, "decode(encode(e)) != e");
}

fuzz_target!(|data: &[u8]| {
    let [selector, version, payload @ ..] = data else {
        return;
    };
    let schema_version = if *version == 0xff {
        u32::MAX
    } else {
        u32::from(*version)
    };
    let env = envelope("", schema_version, payload.to_vec());
    if selector & 4 == 0 {
        check(
            &diary::codec(),
            &diary::lenient_codec(),
            &["EntryCreated", "EntryEdited", "EntryDeleted"],
            *selector,
            env,
        );
    } else {
        check(
            &counter_codec(),
            &counter_codec().on_unknown(UnknownTypePolicy::Skip),
            &["Added", "Reset", "Removed"],
            *selector,
            env,
        );
    }
});
