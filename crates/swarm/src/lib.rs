//! Docker Swarm services for Marathon apps: one replicated service per app, which the
//! Swarm schedules over its nodes.
//!
//! [`build_service`] turns an [`model::AppDefinition`] into a [`ServiceDraft`] (pure, see
//! [`spec`] for the mapping); a [`SwarmClient`] connected to a manager applies it
//! (create, update with the service's version index, or nothing when unchanged), checks
//! and pins the image to its registry digest, removes services, and reads back services
//! ([`ServiceInfo`], with the rolling update's [`ServiceUpdate`]), tasks ([`SwarmTask`], in
//! Marathon's `TASK_*` terms, reached at their node's address and host-mode published
//! port) and nodes.
//!
//! Services and their containers carry the labels in [`labels`], so the Swarm is the source
//! of truth: a restarted Slipway lists what its agent owns and adopts it. Only this crate
//! names bollard types; its API uses plain types and `model`'s.

mod client;
mod error;
pub mod labels;
mod params;
pub mod placement;
pub mod spec;
mod tasks;

pub use client::{
    Applied, ApplyOutcome, RegistryAuth, ResolvedImage, ServiceInfo, SwarmClient, registry_host,
};
pub use error::SwarmError;
pub use params::SWARM_PARAMETERS;
pub use placement::Placement;
pub use spec::{
    BuildOptions, PortSlot, Publish, ServiceDraft, UpdatePlan, build_service, service_name,
};
pub use tasks::{ServiceUpdate, SwarmNode, SwarmTask, TaskStatus, UpdateState};
