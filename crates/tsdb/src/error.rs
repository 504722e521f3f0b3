//! The crate's single error type.

use std::path::PathBuf;

use crate::ValueKind;

/// Everything that can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An operating-system call on a file of the store failed.
    #[error("i/o error on {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A file of the store does not decode (bad checksum, bad structure).
    #[error("corrupt file {path}: {detail}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        detail: String,
    },
    /// Encoded chunk or rollup bytes do not decode.
    #[error("corrupt chunk: {0}")]
    CorruptChunk(&'static str),
    /// The sample is older than the newest sample of its series.
    #[error("out of order sample: timestamp {t} is older than the series' last timestamp {last}")]
    OutOfOrder {
        /// The rejected sample's timestamp.
        t: i64,
        /// The series' newest timestamp.
        last: i64,
    },
    /// The sample repeats the series' last timestamp with another value.
    #[error("duplicate timestamp {t} with a different value")]
    DuplicateTimestamp {
        /// The timestamp.
        t: i64,
    },
    /// The sample is older than the retention floor.
    #[error("sample timestamp {t} is older than the retention floor {floor}")]
    TooOld {
        /// The rejected sample's timestamp.
        t: i64,
        /// The oldest accepted timestamp.
        floor: i64,
    },
    /// The series was created with another value kind.
    #[error("type conflict for series {labels}: it holds {existing} values, got {got}")]
    TypeConflict {
        /// The series, rendered as `name{k="v",...}`.
        labels: String,
        /// The kind recorded at the first append.
        existing: ValueKind,
        /// The kind of the rejected sample.
        got: ValueKind,
    },
    /// Creating the series would exceed [`crate::Options::max_series`].
    #[error("too many series: the limit is {limit}")]
    TooManySeries {
        /// The configured limit.
        limit: usize,
    },
    /// A label set is not valid (empty or duplicate names).
    #[error("invalid labels: {0}")]
    InvalidLabels(String),
    /// A regex matcher does not compile.
    #[error("invalid regex {pattern:?}: {reason}")]
    InvalidRegex {
        /// The pattern as given.
        pattern: String,
        /// The compiler's message.
        reason: String,
    },
    /// Another open [`crate::Db`] (in this or another process) holds the directory.
    #[error("database directory {path} is in use by another process")]
    Locked {
        /// The directory.
        path: PathBuf,
    },
    /// Options are inconsistent.
    #[error("invalid options: {0}")]
    InvalidOptions(String),
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn io_err(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}
