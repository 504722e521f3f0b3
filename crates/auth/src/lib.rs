//! Identities, roles, environment policies and secret encryption: every access decision of Slipway.
//!
//! This crate is pure logic plus cryptography: no HTTP, no SQL, no async. The server stores
//! users, tokens, policies and sealed secrets and calls in here for every decision:
//!
//! * **Login** — [`parse_authorization`] turns an `Authorization` header into [`Credentials`]
//!   (`Basic`, `Bearer` or the DC/OS style `token=`). Basic credentials are checked with
//!   [`verify_login`] (or [`verify_password`]) against the stored PHC string produced by
//!   [`hash_password`]; bearer tokens are looked up by [`token_hash`]. Any error is a 401.
//! * **Tokens** — [`new_token`] creates an opaque `slw_…` token that is shown once; only its
//!   [`token_hash`] is stored. [`random_password`] seeds the bootstrap admin.
//! * **Authorization** — the authenticated user becomes a [`Principal`] (name plus [`Role`]);
//!   [`PolicySet::authorize`] answers an [`Action`] with a [`Decision`] whose deny reason can be
//!   returned to the client verbatim (403). [`PolicySet::environment_for`] tells which
//!   environment ([`Policy`]) an app belongs to, e.g. to show `confirm` prompts.
//! * **Secrets** — a [`SecretKey`] lives in a key file outside the database
//!   ([`SecretKey::load_or_create`]); [`SecretKey::seal`] / [`SecretKey::open`] encrypt values
//!   bound to their names. [`SecretString`] never prints its value and [`mask`] scrubs secrets
//!   from log lines.

mod credentials;
mod decide;
mod password;
mod policy;
mod role;
mod scope;
mod secret;

#[cfg(test)]
mod tests;

pub use credentials::{Credentials, parse_authorization};
pub use decide::{Action, Decision};
pub use password::{
    MAX_PASSWORD_BYTES, TOKEN_PREFIX, hash_password, new_token, random_password, token_hash,
    verify_login, verify_password,
};
pub use policy::{DEFAULT_ENV, EnvLimits, Policy, PolicySet, environment_name};
pub use role::{Principal, Role, Subject};
pub use scope::SecretScope;
pub use secret::{KEY_LEN, SecretKey, SecretString, mask};

use std::path::PathBuf;

/// Everything that can go wrong in this crate. Messages are safe to show to clients: they
/// never contain passwords, tokens or key material.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// `hash_password` was given an empty password.
    #[error("password must not be empty")]
    EmptyPassword,
    /// `hash_password` was given more than [`MAX_PASSWORD_BYTES`] bytes.
    #[error("password must be at most {MAX_PASSWORD_BYTES} bytes")]
    PasswordTooLong,
    /// The Argon2 implementation failed (should not happen with valid input).
    #[error("password hashing failed: {0}")]
    Hash(String),
    /// The operating system's random number generator failed.
    #[error("operating system random number generator failed: {0}")]
    Random(String),
    /// An `Authorization` header that could not be parsed.
    #[error("malformed authorization header: {0}")]
    MalformedAuthorization(&'static str),
    /// An `Authorization` header with a scheme other than Basic, Bearer or `token=`.
    #[error("unsupported authorization scheme {0:?}")]
    UnsupportedScheme(String),
    /// A role name other than viewer, developer, deployer or admin.
    #[error("unknown role {0:?} (expected viewer, developer, deployer or admin)")]
    UnknownRole(String),
    /// A policy subject that is neither `role:<role>` nor `user:<name>`.
    #[error("invalid subject {0:?} (expected role:<role> or user:<name>)")]
    InvalidSubject(String),
    /// A policy document that did not parse or failed [`PolicySet::validate`].
    #[error("invalid policy: {0}")]
    InvalidPolicy(String),
    /// Reading or creating the key file failed at the operating-system level.
    #[error("cannot access secret key file {path}: {source}")]
    KeyFileIo {
        /// The key file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The key file exists but must not be used (wrong length, loose permissions, not a file).
    #[error("refusing secret key file {path}: {reason}")]
    KeyFileRejected {
        /// The key file.
        path: PathBuf,
        /// Why it was refused, including how to fix it.
        reason: String,
    },
    /// A key given as base64 (e.g. from an environment variable) that is not 32 bytes.
    #[error("invalid secret key: {0}")]
    InvalidKey(&'static str),
    /// Encryption failed (plaintext too large for ChaCha20-Poly1305).
    #[error("cannot encrypt secret {0:?}")]
    Seal(String),
    /// Decryption failed: wrong key, wrong name, truncated or tampered ciphertext.
    #[error("cannot decrypt secret {0:?}: wrong key, wrong name or tampered data")]
    Open(String),
}

/// Fills an array from the operating system's random number generator.
pub(crate) fn os_random<const N: usize>() -> Result<[u8; N], AuthError> {
    let mut buf = [0u8; N];
    getrandom::fill(&mut buf).map_err(|e| AuthError::Random(e.to_string()))?;
    Ok(buf)
}

/// Like [`os_random`] for the infallible token helpers.
///
/// # Panics
/// When the operating system's random number generator fails. On Linux `getrandom(2)` only
/// blocks until the pool is initialised and does not fail afterwards, so there is no sensible
/// fallback: issuing a predictable token would be worse than aborting the request.
pub(crate) fn os_random_or_panic<const N: usize>() -> [u8; N] {
    match os_random() {
        Ok(buf) => buf,
        Err(e) => panic!("{e}"),
    }
}
