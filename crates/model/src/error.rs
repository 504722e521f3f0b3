//! Definition errors with Marathon's field paths (`/healthChecks(0)/protocol`).

use serde::Serialize;
use std::collections::BTreeMap;

/// Errors for one field, as Marathon reports them in `details`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// Marathon-style path: `/a/b(0)/c`; `/` for object-level errors.
    pub path: String,
    /// Human-readable messages.
    pub errors: Vec<String>,
}

/// Why a definition was rejected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DefinitionError {
    /// The body is not JSON at all (HTTP 400, `details` is a string).
    #[error("invalid JSON: {0}")]
    Malformed(String),
    /// A field has the wrong JSON type (HTTP 400, `details` is a list).
    #[error("invalid JSON: {}", summary(.0))]
    Type(Vec<FieldError>),
    /// The definition is well-formed but violates a rule (HTTP 422).
    #[error("object is not valid: {}", summary(.0))]
    Invalid(Vec<FieldError>),
}

fn summary(errs: &[FieldError]) -> String {
    errs.iter()
        .map(|e| format!("{}: {}", e.path, e.errors.join("; ")))
        .collect::<Vec<_>>()
        .join(", ")
}

impl DefinitionError {
    /// A single 422 error at `path`.
    pub fn invalid(path: &str, msg: impl Into<String>) -> Self {
        DefinitionError::Invalid(vec![FieldError {
            path: path.to_string(),
            errors: vec![msg.into()],
        }])
    }
}

/// Collects validation messages grouped by path, keeping first-seen path order.
#[derive(Default, Debug)]
pub(crate) struct Errors {
    order: Vec<String>,
    by_path: BTreeMap<String, Vec<String>>,
}

impl Errors {
    pub(crate) fn add(&mut self, path: impl Into<String>, msg: impl Into<String>) {
        let path = path.into();
        let msg = msg.into();
        let entry = self.by_path.entry(path.clone()).or_insert_with(|| {
            self.order.push(path);
            Vec::new()
        });
        if !entry.contains(&msg) {
            entry.push(msg);
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    pub(crate) fn into_vec(mut self) -> Vec<FieldError> {
        self.order
            .into_iter()
            .map(|path| {
                let errors = self.by_path.remove(&path).unwrap_or_default();
                FieldError { path, errors }
            })
            .collect()
    }
}

/// Converts a serde path (`healthChecks[0].protocol`) to Marathon's form (`/healthChecks(0)/protocol`).
pub(crate) fn marathon_path(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for seg in path.iter() {
        match seg {
            Segment::Seq { index } => out.push_str(&format!("({index})")),
            Segment::Map { key } => {
                out.push('/');
                out.push_str(key);
            }
            Segment::Enum { variant } => {
                out.push('/');
                out.push_str(variant);
            }
            Segment::Unknown => {}
        }
    }
    if out.is_empty() { "/".to_string() } else { out }
}

/// Maps a serde type error message to Play JSON's error keys where one fits.
pub(crate) fn play_error_key(msg: &str) -> String {
    let expected = msg.split("expected ").nth(1).unwrap_or("");
    let key = if expected.starts_with("a string") || expected.starts_with("a borrowed string") {
        "error.expected.jsstring"
    } else if expected.starts_with("a sequence") {
        "error.expected.jsarray"
    } else if expected.starts_with("a boolean") {
        "error.expected.jsboolean"
    } else if expected.starts_with("i64")
        || expected.starts_with("u32")
        || expected.starts_with("f64")
        || expected.starts_with("u64")
    {
        "error.expected.jsnumber"
    } else if expected.starts_with("a map") || expected.starts_with("struct") {
        "error.expected.jsobject"
    } else {
        return msg.to_string();
    };
    key.to_string()
}
