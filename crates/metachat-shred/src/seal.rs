//! Sealing personal data with a per-user [`DataKey`] (crypto-shredding).
//!
//! [`seal`] encrypts with XChaCha20-Poly1305 under a random 24-byte nonce
//! (random nonces of that length never repeat in practice, so one key can
//! seal any number of values). The *associated data* names the place the
//! value belongs to (e.g. `entry/{entry_id}/text`): it is authenticated but
//! not stored, so a ciphertext copied to another place does not open there.
//! [`open`] checks the tag: a wrong key, wrong associated data or a changed
//! byte all fail with [`ShredError::Unreadable`] (the cipher cannot tell
//! them apart, by design).
//!
//! Keys live in a [`KeyVault`](crate::KeyVault), never in the log;
//! destroying a key makes every value sealed with it unreadable for good.

use std::fmt;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zeroize::{Zeroize, Zeroizing};

use metachat_core::error::Error;
use uuid::Uuid;

/// Bytes of a [`DataKey`].
pub const KEY_LEN: usize = 32;
/// Bytes of a [`Sealed::nonce`].
pub const NONCE_LEN: usize = 24;
/// Bytes the authentication tag adds to a sealed value.
pub const TAG_LEN: usize = 16;

/// Why sealing, opening or a key lookup failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ShredError {
    /// The subject's key was destroyed (the subject was erased): what it
    /// sealed can never be read again, and no new key is made for it.
    #[error("the key of subject {subject} was shredded")]
    Shredded {
        /// The subject (for MetaChat, a user id).
        subject: Uuid,
    },
    /// The value does not open with this key and associated data: a wrong
    /// key, a wrong place, or a changed byte.
    #[error("sealed value does not open: wrong key, wrong associated data, or tampered")]
    Unreadable,
    /// The opened value is not what its place holds (e.g. text that is not
    /// UTF-8, a vector whose length is not a multiple of 4).
    #[error("opened value is malformed: {0}")]
    Malformed(&'static str),
    /// The cipher refused to seal (not expected with valid keys).
    #[error("sealing failed")]
    Seal,
    /// The key store failed.
    #[error(transparent)]
    Store(#[from] Error),
}

/// A 256-bit data key. Its bytes are wiped from memory when it is dropped;
/// `Debug` never prints them.
#[derive(Clone, PartialEq, Eq)]
pub struct DataKey([u8; KEY_LEN]);

impl Drop for DataKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl DataKey {
    /// A new random key from the operating system's generator.
    pub fn generate() -> Self {
        let key = XChaCha20Poly1305::generate_key(&mut OsRng);
        let mut bytes = [0u8; KEY_LEN];
        bytes.copy_from_slice(&key);
        DataKey(bytes)
    }

    /// The key made of these bytes.
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        DataKey(bytes)
    }

    /// The key's bytes.
    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// The key as base64 (for storage), wiped when dropped.
    pub(crate) fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(B64.encode(self.0))
    }

    /// The key from base64; `None` if it is not 32 bytes of base64.
    pub(crate) fn from_base64(text: &str) -> Option<Self> {
        let bytes = Zeroizing::new(B64.decode(text).ok()?);
        let arr: [u8; KEY_LEN] = bytes.as_slice().try_into().ok()?;
        Some(DataKey(arr))
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new((&self.0).into())
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey(<redacted>)")
    }
}

/// A value sealed by [`seal`]: nonce and ciphertext (with its tag). As JSON,
/// `{"nonce": "<base64>", "ciphertext": "<base64>"}` (standard alphabet, padded).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sealed {
    /// The random nonce.
    #[serde(with = "b64_nonce")]
    pub nonce: [u8; NONCE_LEN],
    /// The encrypted value followed by the 16-byte tag.
    #[serde(with = "b64_bytes")]
    pub ciphertext: Vec<u8>,
}

impl Sealed {
    /// Bytes of the value that was sealed.
    pub fn plaintext_len(&self) -> usize {
        self.ciphertext.len().saturating_sub(TAG_LEN)
    }
}

impl fmt::Debug for Sealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealed")
            .field("ciphertext_len", &self.ciphertext.len())
            .finish_non_exhaustive()
    }
}

/// Seals `plaintext` with `key`, bound to `aad` (the value's place).
///
/// # Errors
/// [`ShredError::Seal`] if the cipher refuses (only for inputs beyond its
/// 256 GiB limit).
pub fn seal(key: &DataKey, aad: &[u8], plaintext: &[u8]) -> Result<Sealed, ShredError> {
    let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
    let ciphertext = key
        .cipher()
        .encrypt(
            &nonce,
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .map_err(|_| ShredError::Seal)?;
    let mut n = [0u8; NONCE_LEN];
    n.copy_from_slice(&nonce);
    Ok(Sealed {
        nonce: n,
        ciphertext,
    })
}

/// Opens `sealed` with `key` and the `aad` it was sealed with.
///
/// # Errors
/// [`ShredError::Unreadable`] for a wrong key, wrong `aad` or a tampered value.
pub fn open(key: &DataKey, aad: &[u8], sealed: &Sealed) -> Result<Vec<u8>, ShredError> {
    key.cipher()
        .decrypt(
            XNonce::from_slice(&sealed.nonce),
            Payload {
                msg: &sealed.ciphertext,
                aad,
            },
        )
        .map_err(|_| ShredError::Unreadable)
}

/// Opens `sealed` as UTF-8 text.
///
/// # Errors
/// As [`open`], and [`ShredError::Malformed`] if the value is not UTF-8.
pub fn open_text(key: &DataKey, aad: &[u8], sealed: &Sealed) -> Result<String, ShredError> {
    String::from_utf8(open(key, aad, sealed)?).map_err(|_| ShredError::Malformed("not UTF-8"))
}

/// Seals `value` as JSON (for whole documents: a read model's record, a
/// structured event field).
///
/// # Errors
/// [`ShredError::Malformed`] if `value` does not serialise; as [`seal`].
pub fn seal_json<T: Serialize + ?Sized>(
    key: &DataKey,
    aad: &[u8],
    value: &T,
) -> Result<Sealed, ShredError> {
    let bytes = Zeroizing::new(
        serde_json::to_vec(value).map_err(|_| ShredError::Malformed("not serialisable"))?,
    );
    seal(key, aad, &bytes)
}

/// Opens a value sealed by [`seal_json`].
///
/// # Errors
/// As [`open`], and [`ShredError::Malformed`] if the JSON is not a `T`.
pub fn open_json<T: serde::de::DeserializeOwned>(
    key: &DataKey,
    aad: &[u8],
    sealed: &Sealed,
) -> Result<T, ShredError> {
    let bytes = Zeroizing::new(open(key, aad, sealed)?);
    serde_json::from_slice(&bytes).map_err(|_| ShredError::Malformed("not the expected JSON"))
}

mod b64_nonce {
    use super::*;

    pub(super) fn serialize<S: Serializer>(v: &[u8; NONCE_LEN], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&B64.encode(v))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<[u8; NONCE_LEN], D::Error> {
        let text = String::deserialize(d)?;
        let bytes = B64.decode(text).map_err(serde::de::Error::custom)?;
        bytes
            .as_slice()
            .try_into()
            .map_err(|_| serde::de::Error::custom("nonce must be 24 bytes"))
    }
}

mod b64_bytes {
    use super::*;

    pub(super) fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&B64.encode(v))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        B64.decode(text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn round_trip_and_json_shape() {
        let key = DataKey::generate();
        let sealed = seal(&key, b"entry/1/text", b"dear diary").unwrap();
        assert_eq!(sealed.plaintext_len(), 10);
        let json = serde_json::to_value(&sealed).unwrap();
        assert!(json["nonce"].is_string() && json["ciphertext"].is_string());
        let back: Sealed = serde_json::from_value(json).unwrap();
        assert_eq!(back, sealed);
        assert_eq!(
            open_text(&key, b"entry/1/text", &back).unwrap(),
            "dear diary"
        );
    }

    #[test]
    fn wrong_key_aad_or_bytes_do_not_open() {
        let key = DataKey::generate();
        let sealed = seal(&key, b"a", b"secret").unwrap();
        assert!(matches!(
            open(&DataKey::generate(), b"a", &sealed),
            Err(ShredError::Unreadable)
        ));
        assert!(matches!(
            open(&key, b"b", &sealed),
            Err(ShredError::Unreadable)
        ));
        for i in 0..sealed.ciphertext.len() {
            let mut t = sealed.clone();
            t.ciphertext[i] ^= 1;
            assert!(matches!(open(&key, b"a", &t), Err(ShredError::Unreadable)));
        }
        let mut t = sealed.clone();
        t.nonce[0] ^= 1;
        assert!(matches!(open(&key, b"a", &t), Err(ShredError::Unreadable)));
        let mut t = sealed;
        t.ciphertext.truncate(3);
        assert!(matches!(open(&key, b"a", &t), Err(ShredError::Unreadable)));
    }

    #[test]
    fn json_values_round_trip_and_keep_their_place() {
        let key = DataKey::generate();
        let sealed = seal_json(&key, b"doc/1", &vec![1.5f32, -2.0]).unwrap();
        assert_eq!(
            open_json::<Vec<f32>>(&key, b"doc/1", &sealed).unwrap(),
            [1.5, -2.0]
        );
        assert!(open_json::<Vec<f32>>(&key, b"doc/2", &sealed).is_err());
        assert!(matches!(
            open_json::<String>(&key, b"doc/1", &sealed),
            Err(ShredError::Malformed(_))
        ));
    }

    #[test]
    fn bad_json_is_refused() {
        let short = serde_json::json!({"nonce": B64.encode([0u8; 12]), "ciphertext": ""});
        assert!(serde_json::from_value::<Sealed>(short).is_err());
        let not_b64 = serde_json::json!({"nonce": "!!", "ciphertext": ""});
        assert!(serde_json::from_value::<Sealed>(not_b64).is_err());
    }

    #[test]
    fn key_base64_and_debug() {
        let key = DataKey::generate();
        let text = key.to_base64();
        assert_eq!(DataKey::from_base64(&text), Some(key.clone()));
        assert_eq!(DataKey::from_base64("AAAA"), None);
        assert!(!format!("{key:?}").contains(text.as_str()));
    }

    proptest! {
        #[test]
        fn seal_open_round_trips(data in proptest::collection::vec(any::<u8>(), 0..2048),
                                 aad in proptest::collection::vec(any::<u8>(), 0..64)) {
            let key = DataKey::generate();
            let sealed = seal(&key, &aad, &data).unwrap();
            prop_assert_eq!(sealed.ciphertext.len(), data.len() + TAG_LEN);
            let json = serde_json::to_string(&sealed).unwrap();
            let back: Sealed = serde_json::from_str(&json).unwrap();
            prop_assert_eq!(open(&key, &aad, &back).unwrap(), data);
        }
    }
}
