//! End to end: after an account is erased, nothing under the data
//! directory opens or names that person's data.
//!
//! Two users write entries and get their moods; one erases the account; the
//! server stops; then every byte of every file under the data directory is
//! scanned for the erased user's data key (raw, base64 and hex), email
//! address, display name, the unsalted SHA-256 of the address and diary
//! text. The user who was not erased must be found by the same scan (their
//! key file is there), so the scan is proven able to see a key. No argon2
//! password hash may be in the clear for anyone.
//!
//! On Cassandra the erased key survives in SSTables until compaction (the
//! documented window), so there only the plaintext checks run, against the
//! namespace's rows.

mod common;

use std::path::{Path, PathBuf};

use std::time::Duration;

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine as _;
use common::{found_in, wait_all_moods, Backend, Server};
use reqwest::Method;
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// The key file of `user` under the data directory (see `DirKeys`).
fn key_file(data_dir: &Path, user: &str) -> PathBuf {
    data_dir
        .join("keys")
        .join("keys")
        .join(&user[..2])
        .join(user)
}

/// Every form in which a 32-byte key could be written down.
fn key_forms(key: &[u8]) -> Vec<Vec<u8>> {
    let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
    vec![
        key.to_vec(),
        STANDARD.encode(key).into_bytes(),
        STANDARD_NO_PAD.encode(key).into_bytes(),
        URL_SAFE.encode(key).into_bytes(),
        URL_SAFE_NO_PAD.encode(key).into_bytes(),
        hex.clone().into_bytes(),
        hex.to_uppercase().into_bytes(),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nothing_under_the_data_directory_opens_or_names_an_erased_user() {
    let Some(mut server) = Server::lexicon().await else {
        return;
    };
    let api = server.api();
    let tag = Uuid::new_v4().simple().to_string();
    let erased_name = format!("Quillon{}", &tag[..8]);
    let kept_name = format!("Brambleton{}", &tag[..8]);
    let a = api.user(&erased_name).await;
    let b = api.user(&kept_name).await;
    let marker = format!("wombatsaffron{tag}");
    for text in [
        format!("Today was wonderful, {marker} made me smile."),
        format!("A sad evening, {marker} was gone."),
    ] {
        api.create_entry(&a.token, &text).await;
    }
    api.create_entry(&b.token, "A calm and happy walk by the sea.")
        .await;
    wait_all_moods(&api, &a.token, 2).await;
    wait_all_moods(&api, &b.token, 1).await;

    // The keys as they are on disk before the erasure (sled only).
    let sled = server.backend == Backend::Sled;
    let read_key = |user: &str| {
        let path = key_file(&server.data_dir(), user);
        std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
    };
    let (a_key, b_key) = if sled {
        let (a_key, b_key) = (read_key(&a.user_id), read_key(&b.user_id));
        assert_eq!((a_key.len(), b_key.len()), (32, 32), "32-byte keys");
        (Some(a_key), Some(b_key))
    } else {
        (None, None)
    };

    let r = api
        .send(Method::DELETE, "/v1/me", Some(&a.token), None)
        .await;
    r.expect(200);
    let erased_at = r.position();
    api.caught_up(erased_at).await;
    let status = server.sigterm(Duration::from_secs(30)).await;
    assert!(status.success(), "graceful shutdown exits 0, got {status}");

    let email_sha256 = format!("{:x}", Sha256::digest(a.email.as_bytes()));
    let mut personal: Vec<(&str, Vec<u8>)> = vec![
        ("the email address", a.email.clone().into_bytes()),
        ("the display name", erased_name.clone().into_bytes()),
        ("the diary text", marker.clone().into_bytes()),
        ("the SHA-256 of the email", email_sha256.into_bytes()),
        ("an argon2 password hash", b"$argon2id$".to_vec()),
        // Not erased, but sealed all the same.
        ("the kept user's email", b.email.clone().into_bytes()),
        ("the kept user's name", kept_name.clone().into_bytes()),
    ];

    match server.cassandra_occurrences(a.user_id.as_bytes()) {
        Some((_, rows)) => {
            assert!(rows > 0, "the scan read the namespace's rows");
            for (what, needle) in &personal {
                let (hits, _) = server
                    .cassandra_occurrences(needle)
                    .expect("a Cassandra server");
                assert!(hits.is_empty(), "{what} is in Cassandra rows: {hits:?}");
            }
        }
        None => {
            let files = server.data_files();
            // The scan sees what is there: the kept user's key, in its file.
            let b_key = b_key.expect("sled");
            assert!(
                !found_in(&files, &b_key).is_empty(),
                "the scan finds a live key"
            );
            for (i, form) in key_forms(&a_key.expect("sled")).into_iter().enumerate() {
                personal.push((
                    [
                        "the key",
                        "the key (base64)",
                        "the key (base64, no padding)",
                        "the key (base64url)",
                        "the key (base64url, no padding)",
                        "the key (hex)",
                        "the key (HEX)",
                    ][i],
                    form,
                ));
            }
            for (what, needle) in &personal {
                let hits = found_in(&files, needle);
                assert!(
                    hits.is_empty(),
                    "{what} is under the data directory after erasure: {hits:?}"
                );
            }
            assert!(
                !key_file(&server.data_dir(), &a.user_id).exists(),
                "the erased user's key file is gone"
            );
        }
    }
    let log = server.log();
    for needle in [&a.email, &a.password, &marker, &erased_name] {
        assert!(!log.contains(needle.as_str()), "{needle} in the server log");
    }
}
