//! The server's request bodies and the domain's validation of their fields.
//!
//! The request types (`Register`, `Login`, `CreateEntry`, `EditEntry` in
//! app/server/src/routes) are private to the server binary, so they are
//! mirrored here with the same fields and `deny_unknown_fields`; decoding
//! follows the server's `extract::decode_json` (UTF-8 first, then serde_json)
//! and each accepted body goes through the checks its handler runs, which
//! are the domain's public validators: `Email::parse`,
//! `user::validate_display_name`, `diary::validate_text` (after trimming,
//! as `check_text` does) and the
//! `YYYY-MM-DD` parser of `Date` (the mood timeline's `from`/`to`).
//! The whole input, as text, also goes to every validator directly, and to
//! `user::validate_about` (the domain's profile rule; no route takes it yet).
//!
//! Invariants: no panic; every validator is idempotent (what it accepts and
//! returns, it accepts again unchanged); a date that parses prints back as
//! the same text and rebuilds from its year, month and day; the first 12
//! bytes as `Date::from_ymd` arguments and the first 8 as a timestamp give
//! days that round-trip through their text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use metachat_core::event::Timestamp;
use metachat_domain::{diary, user, Date, Email};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Register {
    email: String,
    password: String,
    display_name: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Login {
    email: String,
    password: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateEntry {
    text: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct EditEntry {
    text: String,
    expected_revision: u64,
}

fn email(raw: &str) {
    if let Ok(e) = Email::parse(raw) {
        let again = Email::parse(e.as_str())
            .unwrap_or_else(|err| panic!("{raw:?} normalised to {:?}, refused: {err}", e.as_str()));
        assert_eq!(again, e, "Email::parse is not idempotent on {raw:?}");
    }
}

fn display_name(raw: &str) {
    if let Ok(n) = user::validate_display_name(raw) {
        assert_eq!(
            user::validate_display_name(&n).ok().as_deref(),
            Some(n.as_str()),
            "validate_display_name is not idempotent on {raw:?}"
        );
    }
}

fn about(raw: &str) {
    if let Ok(a) = user::validate_about(raw) {
        assert_eq!(
            user::validate_about(&a).ok().as_deref(),
            Some(a.as_str()),
            "validate_about is not idempotent on {raw:?}"
        );
    }
}

fn entry_text(raw: &str) {
    let _ = diary::validate_text(raw);
    let trimmed = raw.trim();
    if diary::validate_text(trimmed).is_ok() {
        assert!(!trimmed.is_empty());
    }
}

fn date(raw: &str) {
    if let Ok(d) = raw.parse::<Date>() {
        assert_eq!(d.to_string(), raw, "a date does not print as its text");
        let (y, m, day) = d.ymd();
        assert_eq!(Date::from_ymd(y, m, day), Some(d));
    }
}

fn day_round_trip(d: Date) {
    let text = d.to_string();
    assert_eq!(text.len(), 10, "{text:?}");
    assert_eq!(text.parse::<Date>(), Ok(d), "{text:?}");
    assert!(d.pred() <= d && d <= d.succ());
}

fn decode<'a, T: Deserialize<'a>>(body: &'a str) -> Option<T> {
    serde_json::from_str(body).ok()
}

fuzz_target!(|data: &[u8]| {
    if let Some(b) = data.get(..12) {
        let n = |i: usize| [b[i], b[i + 1], b[i + 2], b[i + 3]];
        let (y, m, d) = (
            i32::from_le_bytes(n(0)),
            u32::from_le_bytes(n(4)) % 16,
            u32::from_le_bytes(n(8)) % 40,
        );
        if let Some(date) = Date::from_ymd(y, m, d) {
            assert_eq!(date.ymd(), (y, m, d));
            day_round_trip(date);
        }
    }
    if let Some(b) = data.get(..8) {
        let mut t = [0; 8];
        t.copy_from_slice(b);
        day_round_trip(Date::of_timestamp(Timestamp(u64::from_le_bytes(t))));
    }

    // `decode_json`: the body must be UTF-8 before serde_json sees it.
    let Ok(body) = std::str::from_utf8(data) else {
        return;
    };
    for check in [email, display_name, about, entry_text, date] {
        check(body);
    }
    if let Some(r) = decode::<Register>(body) {
        email(&r.email);
        display_name(&r.display_name);
    }
    if let Some(l) = decode::<Login>(body) {
        email(&l.email);
    }
    if let Some(c) = decode::<CreateEntry>(body) {
        entry_text(&c.text);
    }
    if let Some(e) = decode::<EditEntry>(body) {
        entry_text(&e.text);
    }
    if let Ok(serde_json::Value::Object(q)) = serde_json::from_str::<serde_json::Value>(body) {
        for key in ["from", "to"] {
            if let Some(serde_json::Value::String(s)) = q.get(key) {
                date(s);
            }
        }
    }
});
