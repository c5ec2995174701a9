//! `metachat_core::event::wire::decode` on arbitrary records.
//!
//! Each input is decoded twice: as given (almost always a checksum mismatch,
//! which must be a typed error) and with its CRC-32 appended, so that the
//! field parser behind the checksum sees every input the fuzzer makes.
//!
//! Invariants: no panic; an accepted record re-encodes to a record that
//! decodes to the same envelope and is no longer than the input (decoding
//! may only drop duplicate headers, never invent bytes). `decode_verified`
//! (no CRC of its own) accepts what `decode` accepts, as the same envelope,
//! and never panics on the rest.
#![no_main]

use libfuzzer_sys::fuzz_target;
use metachat_core::event::wire;
use metachat_core::Error;

fuzz_target!(|data: &[u8]| {
    check(data);
    let mut sealed = data.to_vec();
    sealed.extend_from_slice(&crc32fast::hash(data).to_be_bytes());
    check(&sealed);
});

fn check(bytes: &[u8]) {
    let verified = wire::decode_verified(bytes, || "fuzz record".to_owned());
    let checked = wire::decode(bytes, || "fuzz record".to_owned());
    if let Ok(envelope) = &checked {
        assert_eq!(verified.as_ref().ok(), Some(envelope));
    }
    match checked {
        Ok(envelope) => {
            let again = wire::encode(&envelope);
            assert!(
                again.len() <= bytes.len(),
                "re-encoding grew the record: {} > {}",
                again.len(),
                bytes.len()
            );
            let redecoded = wire::decode(&again, || "re-encoded record".to_owned())
                .expect("a re-encoded envelope must decode");
            assert_eq!(redecoded, envelope);
            assert_eq!(wire::encode(&redecoded), again, "encoding is not stable");
        }
        Err(Error::Corrupted { location, .. }) => assert_eq!(location, "fuzz record"),
        Err(Error::InvalidStreamId { .. }) => {}
        Err(other) => panic!("unexpected error kind: {other:?}"),
    }
}
