//! The one rule for "are we in CI", and the one way a test skips.
//!
//! Tests that need something outside the process (a Kafka broker, a
//! Cassandra node, the model files) run against the real thing that
//! `scripts/test` starts. Without it they may skip on a developer's
//! machine, saying so, but never in CI:
//!
//! - [`in_ci`] is true when the environment variable `CI` is set to
//!   anything but empty, `0` or `false` (`.ci/run` sets `CI=true`; most CI
//!   systems set it too). `scripts/test` uses the same rule.
//! - [`skip`] prints `SKIPPED: <reason>` and appends the reason to the file
//!   named by `METACHAT_SKIP_LOG` (which `scripts/test` sets, and reads at
//!   the end to list every skip: libtest hides a passing test's output);
//!   in CI it panics instead, so the test fails.
//!
//! ```
//! fn brokers() -> Option<String> {
//!     match std::env::var("KAFKA_BROKERS") {
//!         Ok(b) if !b.is_empty() => Some(b),
//!         _ => {
//!             metachat_testkit::skip("KAFKA_BROKERS not set; run scripts/kafka start");
//!             None
//!         }
//!     }
//! }
//! # let _ = brokers;
//! ```

use std::fmt::Display;
use std::io::Write;

/// The environment variable naming the file skips are recorded in.
pub const SKIP_LOG: &str = "METACHAT_SKIP_LOG";

/// Whether this is a CI run: `CI` is set, and not to empty, `0` or
/// `false` (any case).
pub fn in_ci() -> bool {
    ci_value(std::env::var("CI").ok().as_deref())
}

fn ci_value(value: Option<&str>) -> bool {
    match value.map(str::trim) {
        None | Some("" | "0") => false,
        Some(v) => !v.eq_ignore_ascii_case("false"),
    }
}

/// Skips the calling test for `reason`: in CI it panics (the test must run
/// there); elsewhere it prints `SKIPPED: <reason>` on stderr and records
/// the reason, with the caller's place, in `$METACHAT_SKIP_LOG`. The caller
/// returns after it.
#[track_caller]
pub fn skip(reason: impl Display) {
    let place = std::panic::Location::caller();
    assert!(
        !in_ci(),
        "{place}: would skip ({reason}), but this is a CI run (CI is set): \
         what the test needs must be there"
    );
    let line = format!("{place}: {reason}");
    eprintln!("SKIPPED: {line}");
    if let Some(path) = std::env::var_os(SKIP_LOG) {
        let recorded = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| writeln!(f, "{line}"));
        if let Err(e) = recorded {
            eprintln!("cannot record the skip in {}: {e}", path.to_string_lossy());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ci_value;

    #[test]
    fn ci_is_any_value_but_empty_zero_or_false() {
        for yes in ["true", "1", "TRUE", "yes", "github"] {
            assert!(ci_value(Some(yes)), "{yes}");
        }
        for no in [
            None,
            Some(""),
            Some("0"),
            Some("false"),
            Some("False"),
            Some(" "),
        ] {
            assert!(!ci_value(no), "{no:?}");
        }
    }
}
