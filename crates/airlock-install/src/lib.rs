#![forbid(unsafe_code)]
//! The install engine of the Airlock agent (see the README): unpack a verified artifact into
//! `releases/<version>/`, switch `current` with one rename, run hooks and a health check, roll
//! back on failure, and recover from a crash at any point.
//!
//! Decisions are `airlock_core::install`'s (no I/O, tested there); this crate moves bytes.
//!
//! ```text
//! let layout = AppLayout::new(Path::new("/srv/app"));
//! recover(&layout)?;                                  // at agent start
//! match install(&layout, &spec, &downloaded, "2.1.0", false) {
//!     Ok(report) => ...,                              // current -> releases/2.1.0, healthy
//!     Err(InstallError::RolledBack { .. }) => ...,    // 2.1.0 failed, marked bad, old one back
//!     Err(e) => ...,                                  // refused or failed before the switch
//! }
//! ```

use std::path::PathBuf;

pub use airlock_core::install::{
    EntryRefusal, InstallRefusal, Journal, Operation, Phase, RecoveryOutcome, UnpackLimits,
};
use airlock_fs::FsError;

mod engine;
mod health;
mod layout;
mod run;
mod state;
mod unpack;

pub use engine::{
    AppStatus, InstallOutcome, InstallReport, InstallSpec, RecoveryReport, clear_bad, install,
    recover, rollback, status,
};
pub use health::{HealthCheck, Hooks, is_loopback_url};
pub use layout::{AppLayout, LOCK_WAIT};
pub use run::CommandRecord;
pub use state::{
    BadVersion, Event, EventKind, HISTORY_LEN, Manifest, ManifestEntry, manifest_of, verify_release,
};
pub use unpack::ArchiveFormat;

/// Why an operation did not happen or did not stick. Each names the application root, artifact,
/// version or file concerned; causes are reached through `source()`.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("{root}: refused")]
    Refused {
        root: PathBuf,
        #[source]
        source: InstallRefusal,
    },
    #[error("{artifact}: archive refused")]
    ArchiveRefused {
        artifact: PathBuf,
        #[source]
        source: EntryRefusal,
    },
    #[error("{artifact}: not a readable {format} artifact")]
    Unreadable {
        artifact: PathBuf,
        format: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error(transparent)]
    Fs(#[from] FsError),
    #[error("{path}: unreadable state")]
    StateUnreadable {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{link} points at {target:?}, not at a release")]
    BadCurrent { link: PathBuf, target: String },
    #[error("another operation holds {lock}")]
    Busy { lock: PathBuf },
    #[error("pre-install hook for {version} failed ({result}); nothing was switched")]
    PreInstallHook { version: String, result: String },
    #[error(
        "{version} failed after the switch ({reason}); {} is current again and {version} is marked bad",
        back_to.as_deref().unwrap_or("no release")
    )]
    RolledBack {
        version: String,
        back_to: Option<String>,
        reason: String,
    },
    #[error("release {version} does not match its manifest: {detail}")]
    ReleaseChanged { version: String, detail: String },
}
