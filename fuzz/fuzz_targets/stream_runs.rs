//! The embedded store's stream index entries (sled tree `metachat.events`,
//! `s` + stream + version → one or more runs): the decoder on arbitrary
//! bytes.
//!
//! Invariants: no panic; an accepted value encodes back to the same bytes;
//! its runs start at the key's version, each next one at the version after
//! the one before ends and at a later position, none empty.
#![no_main]

use libfuzzer_sys::fuzz_target;
use metachat_adapters::sled::fuzzing::stream_runs_round_trip;

fuzz_target!(|data: &[u8]| {
    let (version, value) = match data.split_first_chunk::<8>() {
        Some((v, rest)) => (u64::from_be_bytes(*v), rest),
        None => (0, data),
    };
    let Some((again, runs)) = stream_runs_round_trip(version, value) else {
        return;
    };
    assert_eq!(
        again, value,
        "an accepted entry encodes back to other bytes"
    );
    assert!(!runs.is_empty(), "an accepted entry has no run");
    let (mut want_version, mut after) = (version, 0u64);
    for (first, position, count) in runs {
        assert_eq!(first, want_version, "runs are not consecutive versions");
        assert!(count > 0, "an empty run");
        assert!(
            position >= after,
            "a run starts before the one before it ends"
        );
        want_version = first.checked_add(count).expect("versions overflow");
        after = position.checked_add(count).expect("positions overflow");
    }
});
