//! The crate's one error type: a policy that is not JSON, or one that breaks a rule.

use model::{DefinitionError, FieldError};
use std::collections::BTreeMap;

/// Why a policy was rejected.
///
/// `Invalid` carries every problem found, each with a field path in Marathon's form
/// (`/metrics(1)/target`, or `/labels/SLIPWAY_AUTOSCALE_MAX` for label policies), so the API can
/// answer 422 with all of them at once.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AutoscaleError {
    /// The body is not JSON at all (HTTP 400).
    #[error("invalid JSON: {0}")]
    Malformed(String),
    /// The body is JSON but the policy breaks a rule (HTTP 422).
    #[error("policy is not valid: {}", summary(.0))]
    Invalid(Vec<FieldError>),
}

impl AutoscaleError {
    /// The field errors of an `Invalid` error; empty for `Malformed`.
    pub fn fields(&self) -> &[FieldError] {
        match self {
            AutoscaleError::Malformed(_) => &[],
            AutoscaleError::Invalid(f) => f,
        }
    }
}

/// Lets the API reuse its Marathon error rendering (400 / 422 with `details`).
impl From<AutoscaleError> for DefinitionError {
    fn from(e: AutoscaleError) -> Self {
        match e {
            AutoscaleError::Malformed(m) => DefinitionError::Malformed(m),
            AutoscaleError::Invalid(f) => DefinitionError::Invalid(f),
        }
    }
}

fn summary(errs: &[FieldError]) -> String {
    errs.iter()
        .map(|e| format!("{}: {}", e.path, e.errors.join("; ")))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Collects messages grouped by path, keeping the order in which paths were first seen.
#[derive(Debug, Default)]
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

    /// `Ok(value)` when nothing was added, otherwise every error.
    pub(crate) fn finish<T>(mut self, value: T) -> Result<T, AutoscaleError> {
        if self.is_empty() {
            return Ok(value);
        }
        let fields = self
            .order
            .into_iter()
            .map(|path| {
                let errors = self.by_path.remove(&path).unwrap_or_default();
                FieldError { path, errors }
            })
            .collect();
        Err(AutoscaleError::Invalid(fields))
    }
}
