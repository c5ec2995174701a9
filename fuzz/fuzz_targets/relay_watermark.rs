//! `metachat_core::relay::Watermark::of` on arbitrary payloads: what a bus
//! consumer (a `BusProjectionRunner`) decodes from every record of type
//! `metachat.watermark` it receives.
//!
//! Invariants: no panic; a payload that decodes re-encodes (through
//! `Watermark::envelope`) to one that decodes to the same watermark; an
//! envelope of another type is never a watermark.
#![no_main]

use libfuzzer_sys::fuzz_target;
use metachat_core::event::{Envelope, NewEvent, StreamId, Timestamp};
use metachat_core::relay::{Watermark, WATERMARK_EVENT_TYPE};

fuzz_target!(|data: &[u8]| {
    let stream = StreamId::new("watermark-fuzz").expect("a valid stream id");
    let envelope = |event_type: &str| {
        Envelope::recorded(
            NewEvent::new(event_type, data.to_vec()),
            stream.clone(),
            0,
            0,
            Timestamp(0),
        )
    };
    assert_eq!(
        Watermark::of(&envelope("Other")),
        None,
        "only the watermark type"
    );
    if let Some(w) = Watermark::of(&envelope(WATERMARK_EVENT_TYPE)) {
        let again = Watermark::of(&w.envelope(&stream));
        assert_eq!(again, Some(w), "a watermark round-trips");
    }
});
