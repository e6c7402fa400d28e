//! The seam to the install engine.
//!
//! The agent decides what to install and hands a verified file to an [`Installer`]; the engine
//! (airlock-install: unpack, `releases/<version>/` plus the `current` symlink, health check,
//! hooks, rollback, crash recovery) does the rest. [`RecordingInstaller`] unpacks nothing: it
//! records the calls and keeps a version record, for the agent's own tests.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::config::AppConfig;

/// An install engine's failure, carried as its error.
pub type InstallerError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What an install or rollback ended with.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "result", rename_all = "kebab-case")]
pub enum InstallOutcome {
    /// `current` now points at `version`.
    Installed { version: String },
    /// The health check failed: `current` went back to `to` and `version` is marked bad.
    RolledBack {
        version: String,
        to: Option<String>,
        reason: String,
    },
}

/// What the engine knows about an app's install directory.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct InstallerStatus {
    /// The version `current` points at.
    pub current: Option<String>,
    /// Versions never to be installed again automatically.
    pub bad: Vec<String>,
    /// The engine's full status (releases kept, history), as it serializes it.
    pub detail: serde_json::Value,
}

/// The install engine as the agent calls it.
pub trait Installer: Send + Sync {
    /// Install `artifact` (already verified) as `version` of `app`.
    fn install(
        &self,
        app: &AppConfig,
        artifact: &Path,
        version: &str,
        allow_downgrade: bool,
    ) -> Result<InstallOutcome, InstallerError>;
    /// Switch back to the previous release, or to `to`.
    fn rollback(&self, app: &AppConfig, to: Option<&str>)
    -> Result<InstallOutcome, InstallerError>;
    /// Finish or undo what a crash interrupted.
    fn recover(&self, app: &AppConfig) -> Result<(), InstallerError>;
    fn status(&self, app: &AppConfig) -> Result<InstallerStatus, InstallerError>;
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Call {
    Install {
        app: String,
        version: String,
        /// The artifact's bytes when called (the file is the agent's to remove afterwards).
        bytes: Vec<u8>,
        artifact: PathBuf,
        allow_downgrade: bool,
    },
    Rollback {
        app: String,
        to: Option<String>,
    },
    Recover {
        app: String,
    },
}

#[derive(Debug, Default)]
struct Record {
    calls: Vec<Call>,
    current: std::collections::BTreeMap<String, Vec<String>>,
    bad: std::collections::BTreeMap<String, Vec<String>>,
}

/// A test installer: unpacks nothing, records calls, keeps each app's version history, and
/// fails the health check of the versions it is told to.
#[derive(Debug, Default)]
pub struct RecordingInstaller {
    record: Mutex<Record>,
    unhealthy: Mutex<Vec<String>>,
}

#[derive(Debug, thiserror::Error)]
#[error("recording installer: {0}")]
pub struct RecordingError(String);

impl RecordingInstaller {
    pub fn new() -> Self {
        Self::default()
    }

    /// Installs of `version` end rolled back, as a failed health check would.
    pub fn fail_health_of(&self, version: &str) {
        self.lock_unhealthy().push(version.to_string());
    }

    pub fn calls(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Record> {
        self.record
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn lock_unhealthy(&self) -> std::sync::MutexGuard<'_, Vec<String>> {
        self.unhealthy
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Installer for RecordingInstaller {
    fn install(
        &self,
        app: &AppConfig,
        artifact: &Path,
        version: &str,
        allow_downgrade: bool,
    ) -> Result<InstallOutcome, InstallerError> {
        let bytes = std::fs::read(artifact)
            .map_err(|e| RecordingError(format!("reading {}: {e}", artifact.display())))?;
        let unhealthy = self.lock_unhealthy().contains(&version.to_string());
        let mut r = self.lock();
        r.calls.push(Call::Install {
            app: app.name.clone(),
            version: version.to_string(),
            bytes,
            artifact: artifact.to_path_buf(),
            allow_downgrade,
        });
        if unhealthy {
            r.bad
                .entry(app.name.clone())
                .or_default()
                .push(version.to_string());
            let to = r.current.get(&app.name).and_then(|h| h.last().cloned());
            return Ok(InstallOutcome::RolledBack {
                version: version.to_string(),
                to,
                reason: "health check failed".into(),
            });
        }
        r.current
            .entry(app.name.clone())
            .or_default()
            .push(version.to_string());
        Ok(InstallOutcome::Installed {
            version: version.to_string(),
        })
    }

    fn rollback(
        &self,
        app: &AppConfig,
        to: Option<&str>,
    ) -> Result<InstallOutcome, InstallerError> {
        let mut r = self.lock();
        r.calls.push(Call::Rollback {
            app: app.name.clone(),
            to: to.map(str::to_string),
        });
        let history = r.current.entry(app.name.clone()).or_default();
        let from = history
            .pop()
            .ok_or_else(|| RecordingError("nothing installed".into()))?;
        if let Some(to) = to {
            history.retain(|v| v != to);
            history.push(to.to_string());
        }
        let to = history.last().cloned();
        Ok(InstallOutcome::RolledBack {
            version: from,
            to,
            reason: "asked by a person".into(),
        })
    }

    fn recover(&self, app: &AppConfig) -> Result<(), InstallerError> {
        self.lock().calls.push(Call::Recover {
            app: app.name.clone(),
        });
        Ok(())
    }

    fn status(&self, app: &AppConfig) -> Result<InstallerStatus, InstallerError> {
        let r = self.lock();
        let history = r.current.get(&app.name).cloned().unwrap_or_default();
        Ok(InstallerStatus {
            current: history.last().cloned(),
            bad: r.bad.get(&app.name).cloned().unwrap_or_default(),
            detail: serde_json::json!({ "history": history }),
        })
    }
}
