//! The embedded store's event-id tables (`{segment}.ids` beside each
//! sealed log segment, read on open): the decoder on arbitrary bytes.
//!
//! Invariants: no panic; a table the decoder accepts encodes back to the
//! very same bytes (whole, sorted, its CRC right), so nothing it accepts is
//! read differently from what was written.
#![no_main]

use libfuzzer_sys::fuzz_target;
use metachat_adapters::sled::fuzzing::id_table_round_trip;

fuzz_target!(|data: &[u8]| {
    if let Some(again) = id_table_round_trip(data) {
        assert_eq!(again, data, "an accepted table encodes back to other bytes");
    }
});
