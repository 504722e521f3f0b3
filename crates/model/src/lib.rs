//! Marathon app definitions: types, normalisation of 1.4/1.5+ input, validation with
//! Marathon's error bodies, path ids and timestamps; and pipeline files ([`pipeline`]).
//!
//! This crate is pure: no tokio, HTTP, SQL or Docker. Everything that reaches the store has
//! passed through [`AppInput::into_definition`], so the rest of Slipway works with one
//! canonical [`AppDefinition`] shape.

mod app;
pub mod endpoints;
mod error;
mod input;
mod path_id;
pub mod pipeline;
mod privilege;
mod selector;
mod timestamp;
mod validate;

pub use app::*;
pub use error::{DefinitionError, FieldError};
pub use input::*;
pub use path_id::{ID_PATTERN, MAX_ID_LEN, PathId, RESERVED};
pub use privilege::{PRIVILEGES, Privilege};
pub use selector::{Condition, Selector};
pub use timestamp::Timestamp;

/// Parses, normalises and validates a full definition from a request body.
/// `id` overrides the body's id (PUT on `/v2/apps/{id}`).
pub fn parse_definition(
    body: &[u8],
    id: Option<&PathId>,
    version: Timestamp,
) -> Result<AppDefinition, DefinitionError> {
    parse_input(body)?.into_definition(id, version)
}

#[cfg(test)]
mod tests;
