//! Named targets: the seed's datacenters (AA, BB) as the places apps run.
//!
//! - [`TargetSpec`]: one target, parsed from `NAME=local`, `NAME=swarm[:DOCKER_HOST]` or
//!   `NAME=marathon:URL[?secret=SECRET]` (the `--target` flag), or from a targets file
//!   ([`parse_file`]: `NAME = SPEC` lines and `default = NAME`).
//! - [`Targets`]: the set, and which target an app id belongs to: the one its first
//!   segment names (`/AA/prod/orders` → `AA`), else the default (`local`).
//! - [`MarathonClient`]: a remote target's Marathon v2 API (another Slipway or a real
//!   Marathon), with [`Credentials`] read from a secret: put an app, wait for its
//!   deployment, read apps, tasks and the image they run.
//!
//! This crate knows no engine, store or HTTP server: the server resolves a target's secret
//! and hands the value to [`Credentials::from_secret`].

mod client;
mod file;
mod set;
mod spec;

pub use client::{
    ClientError, Credentials, DeploymentOutcome, DeploymentRef, FieldError, MarathonClient,
    POLL_INTERVAL, REQUEST_TIMEOUT, RemoteApp, RemoteDeployment, RemoteTask, TaskFailure,
    image_digest,
};
pub use file::{FileError, FileErrors, parse_file};
pub use set::{Targets, TargetsError};
pub use spec::{DEFAULT_TARGET, MAX_NAME_LEN, MAX_SECRET_LEN, SpecError, TargetKind, TargetSpec};
