#![forbid(unsafe_code)]
//! Airlock's privileged update agent.
//!
//! The application asks, the agent verifies and installs: the agent runs as a user that owns
//! the install directories (or root), checks each configured app on a schedule (interval,
//! jitter, backoff, maintenance windows) or when triggered, verifies releases with
//! airlock-client exactly as `airlock update` does (TUF, the root's transparency policy, peers),
//! lets airlock-core's [`airlock_core::rollout`] choose the release (channel, staged rollout,
//! bad versions, never a downgrade) and hands the verified file to an [`Installer`].
//!
//! The application never writes anything the agent reads except trigger lines: `check` and
//! `status` over a Unix socket whose peer credentials are checked, or `check` through a FIFO
//! writable by one group. See [`server`] for the protocol and `docs/agent.md` for the
//! configuration and deployment.

pub mod check;
pub mod config;
pub mod daemon;
pub mod engine;
pub mod installer;
pub mod server;
pub mod state;

pub use check::{CheckError, CheckReport, check_app};
pub use config::{AgentConfig, AppConfig, ConfigError};
pub use daemon::{AgentHandle, StartError, Stopper, take_lock};
pub use engine::{Engine, install_spec};
pub use installer::{
    Call, InstallOutcome, Installer, InstallerError, InstallerStatus, RecordingInstaller,
};
pub use server::{ClientError, request};
pub use state::{AppRecord, AppStatus, LastResult, Pending};
