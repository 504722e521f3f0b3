//! The labels that tie Swarm services and their containers to Slipway apps. The first four
//! are the ones the `docker` crate's Swarm code writes, so services made by either are
//! found by both.

/// The installation that owns a service (on the service and its containers).
pub const LABEL_AGENT: &str = "slipway.agent";
/// The app id (on the service and its containers).
pub const LABEL_APP: &str = "slipway.app";
/// The app version the service was last applied from (service only: a new version that
/// changes only the scale must not restart tasks).
pub const LABEL_VERSION: &str = "slipway.version";
/// The app's configuration version, `versionInfo.lastConfigChangeAt` (on the service and
/// its containers, so each task says which configuration it runs).
pub const LABEL_CONFIG: &str = "slipway.config";
/// Fingerprint of the task template (service only).
pub const LABEL_TEMPLATE: &str = "slipway.template";
/// Fingerprint of the whole service spec (service only).
pub const LABEL_SPEC: &str = "slipway.spec";
/// The app's ports in port-index order, `target/proto[+proto]/kind` (service only).
pub const LABEL_PORTS: &str = "slipway.ports";
