//! Errors of the sled backend, and their mapping onto the core [`Error`].

use metachat_core::Error;

/// What failed inside the sled backend. Callers receive it as the `source` of
/// a core [`Error::Backend`] or [`Error::Unavailable`]; downcast to inspect it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SledError {
    /// sled reported an error.
    #[error("sled: {message}")]
    Sled {
        /// sled's message (sled's types are not part of this API).
        message: String,
        /// The underlying I/O error, where sled had one.
        #[source]
        source: Option<std::io::Error>,
    },
    /// A file-system operation of the durability barrier failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was attempted.
        op: &'static str,
        /// The file or directory.
        path: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// An earlier flush or fsync failed; the store refuses writes since then,
    /// because what reached the disk is unknown. Reopen the database.
    #[error("the store stopped accepting writes after a failed write or sync: {reason}")]
    Failed {
        /// The first failure.
        reason: String,
    },
    /// The segment log of events failed.
    #[error("event log: {0}")]
    Log(#[source] super::segment::SegmentError),
    /// The database directory is locked by another open handle or process.
    #[error("database at {path} is in use by another handle or process")]
    Locked {
        /// The directory.
        path: String,
    },
}

impl SledError {
    pub(crate) fn io(op: &'static str, path: &std::path::Path, source: std::io::Error) -> Self {
        SledError::Io {
            op,
            path: path.display().to_string(),
            source,
        }
    }
}

impl From<SledError> for Error {
    fn from(e: SledError) -> Self {
        match e {
            SledError::Locked { .. } => Error::unavailable(e),
            other => Error::backend(other),
        }
    }
}

impl From<super::segment::SegmentError> for Error {
    fn from(e: super::segment::SegmentError) -> Self {
        match e {
            super::segment::SegmentError::Corrupted { at, reason } => Error::Corrupted {
                location: format!("event log segment {} offset {}", at.segment, at.offset),
                reason,
            },
            other => SledError::Log(other).into(),
        }
    }
}

/// Maps a sled error onto the core error, once, by kind.
pub(crate) fn from_sled(e: sled::Error) -> Error {
    match e {
        sled::Error::Corruption { at, .. } => Error::Corrupted {
            location: match at {
                Some(ptr) => format!("sled page at {ptr}"),
                None => "sled log".to_owned(),
            },
            reason: "sled found a corrupted page".to_owned(),
        },
        sled::Error::Io(io) => {
            let message = io.to_string();
            SledError::Sled {
                message,
                source: Some(io),
            }
            .into()
        }
        other => SledError::Sled {
            message: other.to_string(),
            source: None,
        }
        .into(),
    }
}

/// A `Corrupted` error at `location`.
pub(crate) fn corrupted(location: String, reason: &str) -> Error {
    Error::Corrupted {
        location,
        reason: reason.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;
    use crate::sled::segment::{Location, SegmentError};

    fn inner(e: &Error) -> &SledError {
        e.source()
            .and_then(|s| s.downcast_ref::<SledError>())
            .unwrap_or_else(|| panic!("no SledError under {e:?}"))
    }

    #[test]
    fn a_locked_directory_is_unavailable_and_other_failures_are_backend_errors() {
        let locked: Error = SledError::Locked { path: "/d".into() }.into();
        assert!(matches!(locked, Error::Unavailable { .. }), "{locked:?}");
        assert!(locked.is_retryable());
        assert!(locked.to_string().contains("/d is in use"), "{locked}");

        let failed: Error = SledError::Failed {
            reason: "fsync: EIO".into(),
        }
        .into();
        assert!(matches!(failed, Error::Backend { .. }), "{failed:?}");
        assert!(
            inner(&failed)
                .to_string()
                .contains("after a failed write or sync: fsync: EIO"),
            "{failed}"
        );

        let io = SledError::io(
            "fsync",
            std::path::Path::new("/d/log"),
            std::io::Error::other("EIO"),
        );
        assert_eq!(io.to_string(), "fsync /d/log: EIO");
        assert!(io.source().is_some(), "the OS error is the source");
    }

    #[test]
    fn damage_to_the_log_is_corrupted_with_its_place_and_other_log_errors_are_backend() {
        let corrupted: Error = SegmentError::Corrupted {
            at: Location {
                segment: 3,
                offset: 4096,
            },
            reason: "a CRC mismatch".into(),
        }
        .into();
        match &corrupted {
            Error::Corrupted { location, reason } => {
                assert_eq!(location, "event log segment 3 offset 4096");
                assert_eq!(reason, "a CRC mismatch");
            }
            other => panic!("{other:?}"),
        }
        assert!(!corrupted.is_retryable());

        let failed: Error = SegmentError::Failed.into();
        assert!(matches!(failed, Error::Backend { .. }), "{failed:?}");
        assert!(matches!(
            inner(&failed),
            SledError::Log(SegmentError::Failed)
        ));
        assert!(
            inner(&failed).to_string().starts_with("event log: "),
            "{failed}"
        );
    }

    #[test]
    fn sled_errors_map_by_kind() {
        match from_sled(sled::Error::Corruption { at: None, bt: () }) {
            Error::Corrupted { location, reason } => {
                assert_eq!(location, "sled log");
                assert!(reason.contains("corrupted page"), "{reason}");
            }
            other => panic!("{other:?}"),
        }

        let io = from_sled(sled::Error::Io(std::io::Error::other("disk gone")));
        assert!(matches!(io, Error::Backend { .. }), "{io:?}");
        match inner(&io) {
            SledError::Sled { message, source } => {
                assert_eq!(message, "disk gone");
                assert!(source.is_some(), "the I/O error is kept as the source");
            }
            other => panic!("{other:?}"),
        }

        let unsupported = from_sled(sled::Error::Unsupported("two writers".into()));
        match inner(&unsupported) {
            SledError::Sled { message, source } => {
                assert!(message.contains("two writers"), "{message}");
                assert!(source.is_none());
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn corrupted_names_the_place_and_the_reason() {
        match corrupted("stream index key 7".into(), "not a version") {
            Error::Corrupted { location, reason } => {
                assert_eq!(
                    (location.as_str(), reason.as_str()),
                    ("stream index key 7", "not a version")
                );
            }
            other => panic!("{other:?}"),
        }
    }
}
