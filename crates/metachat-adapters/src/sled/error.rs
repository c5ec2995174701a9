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
