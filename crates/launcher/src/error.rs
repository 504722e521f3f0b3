//! Error type of the launcher: every failure is one variant with a lowercase message.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong while launching or signalling a task.
///
/// Messages are lowercase without a trailing period so the engine can embed them
/// (e.g. as `lastTaskFailure.message`).
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// The task id cannot be used as a file name (cgroup directory).
    #[error("invalid task id {task_id:?}: {reason}")]
    InvalidTaskId {
        /// The offending task id.
        task_id: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// The command to run is empty.
    #[error("task {task_id} has an empty command")]
    EmptyCommand {
        /// The task whose command is empty.
        task_id: String,
    },
    /// The sandbox directory or one of the log files could not be prepared.
    #[error("cannot prepare sandbox {path}: {source}")]
    Sandbox {
        /// The path that failed.
        path: PathBuf,
        /// The underlying I/O error.
        source: io::Error,
    },
    /// Fetching an artifact into the sandbox failed.
    #[error("fetching {uri} failed: {reason}")]
    Fetch {
        /// The URI as given in the fetch spec.
        uri: String,
        /// What went wrong (includes curl/tar stderr when relevant).
        reason: String,
    },
    /// The task cannot be run as the requested user.
    #[error("cannot run task as user {user:?}: {reason}")]
    User {
        /// The requested user.
        user: String,
        /// Why it is impossible.
        reason: String,
    },
    /// A cgroup directory or control file could not be set up.
    #[error("cannot set up cgroup {path}: {source}")]
    Cgroup {
        /// The directory or file that failed.
        path: PathBuf,
        /// The underlying I/O error.
        source: io::Error,
    },
    /// The task process could not move itself into its cgroups.
    #[error("task {task_id} could not join its cgroups (see its stderr)")]
    CgroupJoin {
        /// The task that failed to join.
        task_id: String,
    },
    /// A helper program (setsid, sh) could not be started.
    #[error("cannot start {program}: {source}")]
    Spawn {
        /// The program that failed to start.
        program: String,
        /// The underlying I/O error.
        source: io::Error,
    },
    /// The task was spawned but did not become a session leader in time.
    #[error("task {task_id} did not start: {reason}")]
    Startup {
        /// The task that did not start.
        task_id: String,
        /// What was observed.
        reason: String,
    },
    /// `/proc` could not be read while observing a task: the outcome is unknown.
    #[error("cannot observe process {pid}: {source}")]
    Observe {
        /// The process looked at.
        pid: i32,
        /// The I/O error from `/proc` (e.g. too many open files).
        source: io::Error,
    },
    /// Sending a signal failed for a reason other than the group being gone.
    #[error("cannot signal process group {pid}: {source}")]
    Signal {
        /// The process group id.
        pid: i32,
        /// The errno returned by `killpg`/`kill`.
        source: nix::errno::Errno,
    },
}
