//! A PromQL subset for Slipway: parser, evaluator over a pluggable [`Storage`], and the
//! Prometheus HTTP API's JSON shapes.
//!
//! ```ignore
//! let mut db = promql::MemoryStorage::new();
//! db.push(&promql::Labels::new([("__name__", "up"), ("job", "api")]), 1_000, 1.0);
//! let engine = promql::Engine::default();
//! let v = engine.instant_query(&db, "sum by (job) (up)", 60_000)?;
//! let body = promql::render_success(&v); // {"status":"success","data":{"resultType":"vector",...}}
//! let m = engine.range_query(&db, "rate(up[5m])", 0, 3_600_000, 10_000)?;
//! ```
//!
//! # Semantics (Prometheus 3)
//!
//! * Instant selectors take the newest sample in `(t - 5m, t]`; range selectors take
//!   `(t - range, t]`. Both windows are left-open, staleness markers end a series.
//! * `rate`/`increase`/`delta` are Prometheus' `extrapolatedRate`, `irate`/`idelta` use the
//!   last two samples, `histogram_quantile` reads classic `le` buckets.
//! * Functions and arithmetic drop `__name__`; comparison filters and `last_over_time`,
//!   `sort*`, `label_*`, `topk`/`bottomk` keep it.
//! * Limits: 11,000 points per series in range queries, 50M loaded samples, 2 min timeout
//!   (see [`Engine`]).
//!
//! # Not supported
//!
//! The `@` modifier, native histograms, Prometheus 3's quoted UTF-8 metric names
//! (`{"a.b"}`), and the functions [`is_supported_function`] rejects (each is named in the
//! parse error).

mod aggregate;
mod ast;
mod binary;
mod engine;
mod functions;
mod json;
mod labels;
mod lexer;
mod parser;
mod range;
mod storage;

pub use ast::{
    AggOp, AggregateExpr, BinOp, BinaryExpr, Call, Cardinality, Expr, Grouping, MatrixSelector,
    Subquery, ValueType, VectorMatching, VectorSelector, format_duration, format_number,
};
pub use engine::{Engine, QueryValue, Sample};
pub use json::{
    format_value, parse_step, parse_time, render_data, render_error, render_series,
    render_string_list, render_success, write_timestamp,
};
pub use labels::{Labels, METRIC_NAME, MatchOp, Matcher};
pub use parser::{parse, parse_metric_selector};

/// Whether `name` is a function this crate evaluates.
pub fn is_supported_function(name: &str) -> bool {
    functions::signature(name).is_some()
}
pub use storage::{
    MemoryStorage, STALE_NAN_BITS, SelectHints, Series, Storage, StorageError, is_stale_marker,
};

/// Everything that can go wrong parsing or evaluating a query.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The query text is invalid; `pos` is the 0-based byte offset (shown 1-based, as Prometheus does).
    #[error("parse error at char {}: {msg}", pos + 1)]
    Parse { pos: usize, msg: String },
    /// A request parameter is invalid.
    #[error("{0}")]
    BadData(String),
    /// Evaluation failed (vector matching, limits, bad function arguments).
    #[error("{0}")]
    Execution(String),
    /// The query ran out of time.
    #[error("{0}")]
    Timeout(String),
    /// The storage failed.
    #[error("{0}")]
    Storage(#[from] StorageError),
}

impl Error {
    /// Prometheus' `errorType` for this error.
    pub fn error_type(&self) -> &'static str {
        match self {
            Error::Parse { .. } | Error::BadData(_) => "bad_data",
            Error::Execution(_) => "execution",
            Error::Timeout(_) => "timeout",
            Error::Storage(_) => "internal",
        }
    }

    /// The HTTP status Prometheus answers with for this error.
    pub fn http_status(&self) -> u16 {
        match self {
            Error::Parse { .. } | Error::BadData(_) => 400,
            Error::Execution(_) => 422,
            Error::Timeout(_) => 503,
            Error::Storage(_) => 500,
        }
    }
}
