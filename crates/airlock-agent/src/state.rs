//! The agent's record per app (`<state_dir>/apps/<app>/agent.json`) and the status it shows.

use std::path::Path;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::installer::InstallerStatus;

/// A newer release that staging holds back from this machine.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    pub version: String,
    pub rollout_percent: u8,
    /// Offered once `rollout_percent` is above this.
    pub machine_bucket: u8,
}

/// The last check's outcome.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastResult {
    pub at: DateTime<Utc>,
    pub ok: bool,
    /// One line: what was installed, or why the check failed.
    pub result: String,
    /// `schedule`, `trigger`, `person`.
    pub by: String,
}

/// What the agent remembers about an app across restarts.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppRecord {
    pub last_check: Option<LastResult>,
    /// Failed checks in a row.
    pub failures: u32,
    pub next_check: Option<DateTime<Utc>>,
    pub pending: Option<Pending>,
    /// Checks run since the record was created.
    pub checks: u64,
}

const RECORD_FILE: &str = "agent.json";

impl AppRecord {
    /// The stored record; a missing or unreadable one starts afresh (it holds no trust).
    pub fn load(app_dir: &Path) -> Self {
        std::fs::read(app_dir.join(RECORD_FILE))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    pub fn save(&self, app_dir: &Path) -> Result<(), airlock_fs::FsError> {
        let bytes = serde_json::to_vec_pretty(self).unwrap_or_default();
        airlock_fs::write_atomic(
            &app_dir.join(RECORD_FILE),
            &bytes,
            &airlock_fs::WriteOptions::private().create_parents(),
        )
    }
}

/// One app's status, as `status` answers and the status file shows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AppStatus {
    pub app: String,
    pub channel: String,
    pub installed: Option<String>,
    pub last_check: Option<LastResult>,
    pub next_check: Option<DateTime<Utc>>,
    pub failures: u32,
    pub checks: u64,
    pub pending: Option<Pending>,
    pub bad_versions: Vec<String>,
    /// A check is queued or running.
    pub check_queued: bool,
    /// The install engine's own status (releases kept, history).
    pub installer: serde_json::Value,
}

impl AppStatus {
    pub fn new(
        app: &str,
        channel: &str,
        record: &AppRecord,
        installer: &InstallerStatus,
        check_queued: bool,
    ) -> Self {
        Self {
            app: app.to_string(),
            channel: channel.to_string(),
            installed: installer.current.clone(),
            last_check: record.last_check.clone(),
            next_check: record.next_check,
            failures: record.failures,
            checks: record.checks,
            pending: record.pending.clone(),
            bad_versions: installer.bad.clone(),
            check_queued,
            installer: installer.detail.clone(),
        }
    }
}
