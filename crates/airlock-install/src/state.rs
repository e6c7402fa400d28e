//! What the engine remembers: the journal of the operation in progress, the bad versions and
//! the history (`state/state.json`), the manifest of each release. All written atomically.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use airlock_core::install::{BadChanges, Journal};
use airlock_fs::{FsError, WriteOptions, write_atomic};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::run::CommandRecord;
use crate::{AppLayout, InstallError};

/// Events kept in the history (the oldest go first).
pub const HISTORY_LEN: usize = 200;

/// Why and when a version was marked bad.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BadVersion {
    pub reason: String,
    /// RFC 3339.
    pub at: String,
}

/// What happened, as kept in the history.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A new release became current and passed its checks.
    Installed,
    /// An install stopped before the switch (archive refused, pre-install hook failed);
    /// nothing changed.
    InstallFailed,
    /// A release failed after the switch; the previous one is current again.
    RolledBack,
    /// A person made an older release current.
    ManualRollback,
    /// An operation a crash interrupted was finished or undone at start.
    Recovered,
    /// A person lifted a bad mark.
    BadCleared,
}

/// One history entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// The operation's id (an event recorded twice after a crash is recognised by it).
    pub id: String,
    /// RFC 3339.
    pub at: String,
    pub kind: EventKind,
    pub version: String,
    pub from: Option<String>,
    pub detail: String,
    /// Hooks and health checks, with their output.
    pub commands: Vec<CommandRecord>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct StateFile {
    #[serde(default)]
    pub bad: BTreeMap<String, BadVersion>,
    #[serde(default)]
    pub history: Vec<Event>,
}

pub(crate) fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>, InstallError> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(FsError::new("reading", path, e).into()),
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|source| InstallError::StateUnreadable {
            path: path.to_path_buf(),
            source,
        })
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), InstallError> {
    let bytes =
        serde_json::to_vec_pretty(value).map_err(|source| InstallError::StateUnreadable {
            path: path.to_path_buf(),
            source,
        })?;
    write_atomic(path, &bytes, &WriteOptions::public())?;
    Ok(())
}

impl StateFile {
    pub fn load(layout: &AppLayout) -> Result<Self, InstallError> {
        Ok(read_json(&layout.state_path())?.unwrap_or_default())
    }

    pub fn save(&self, layout: &AppLayout) -> Result<(), InstallError> {
        write_json(&layout.state_path(), self)
    }

    pub fn apply(&mut self, changes: &BadChanges) {
        if let Some(v) = &changes.clear {
            self.bad.remove(v);
        }
        if let Some((v, reason)) = &changes.mark {
            self.bad.insert(
                v.clone(),
                BadVersion {
                    reason: reason.clone(),
                    at: now(),
                },
            );
        }
    }

    /// Add `event` unless an event of the same operation and kind is there already.
    pub fn record(&mut self, event: Event) {
        if self
            .history
            .iter()
            .any(|e| e.id == event.id && e.kind == event.kind)
        {
            return;
        }
        self.history.push(event);
        let excess = self.history.len().saturating_sub(HISTORY_LEN);
        self.history.drain(..excess);
    }
}

pub(crate) fn read_journal(layout: &AppLayout) -> Result<Option<Journal>, InstallError> {
    read_json(&layout.journal_path())
}

pub(crate) fn write_journal(layout: &AppLayout, journal: &Journal) -> Result<(), InstallError> {
    write_json(&layout.journal_path(), journal)
}

pub(crate) fn remove_journal(layout: &AppLayout) -> Result<(), InstallError> {
    let path = layout.journal_path();
    match fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(FsError::new("removing", path, e).into()),
    }
    airlock_fs::sync_dir(&layout.state_dir())?;
    Ok(())
}

/// One entry of a release's manifest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum ManifestEntry {
    Dir {
        mode: u32,
    },
    File {
        mode: u32,
        size: u64,
        sha256: String,
    },
    Symlink {
        target: String,
    },
}

/// Every path of a release tree (relative, `/`-separated) and what it is.
pub type Manifest = BTreeMap<String, ManifestEntry>;

/// The manifest of the tree at `dir`, read from disk.
pub fn manifest_of(dir: &Path) -> Result<Manifest, InstallError> {
    let mut out = Manifest::new();
    walk(dir, dir, &mut out)?;
    Ok(out)
}

fn walk(root: &Path, dir: &Path, out: &mut Manifest) -> Result<(), InstallError> {
    let entries = fs::read_dir(dir).map_err(|e| FsError::new("listing", dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| FsError::new("listing", dir, e))?;
        let path: PathBuf = entry.path();
        let rel = path
            .strip_prefix(root)
            .unwrap_or(&path)
            .to_string_lossy()
            .into_owned();
        let meta = fs::symlink_metadata(&path).map_err(|e| FsError::new("inspecting", &path, e))?;
        let mode = meta.permissions().mode() & 0o7777;
        if meta.file_type().is_symlink() {
            let target =
                fs::read_link(&path).map_err(|e| FsError::new("reading the link", &path, e))?;
            out.insert(
                rel,
                ManifestEntry::Symlink {
                    target: target.to_string_lossy().into_owned(),
                },
            );
        } else if meta.is_dir() {
            out.insert(rel, ManifestEntry::Dir { mode });
            walk(root, &path, out)?;
        } else {
            let mut hasher = Sha256::new();
            let mut file = fs::File::open(&path).map_err(|e| FsError::new("opening", &path, e))?;
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = io::Read::read(&mut file, &mut buf)
                    .map_err(|e| FsError::new("reading", &path, e))?;
                if n == 0 {
                    break;
                }
                hasher.update(buf.get(..n).unwrap_or_default());
            }
            out.insert(
                rel,
                ManifestEntry::File {
                    mode,
                    size: meta.len(),
                    sha256: hex::encode(hasher.finalize()),
                },
            );
        }
    }
    Ok(())
}

pub(crate) fn write_manifest(
    layout: &AppLayout,
    version: &str,
    manifest: &Manifest,
) -> Result<(), InstallError> {
    write_json(&layout.manifest_path(version), manifest)
}

/// Check that `releases/<version>` is exactly what was unpacked (the manifest written then).
pub fn verify_release(layout: &AppLayout, version: &str) -> Result<(), InstallError> {
    let path = layout.manifest_path(version);
    let Some(expected): Option<Manifest> = read_json(&path)? else {
        return Err(InstallError::ReleaseChanged {
            version: version.to_string(),
            detail: "no manifest".into(),
        });
    };
    let found = manifest_of(&layout.release_dir(version))?;
    if found == expected {
        return Ok(());
    }
    let differs = expected
        .keys()
        .chain(found.keys())
        .find(|k| expected.get(*k) != found.get(*k))
        .cloned()
        .unwrap_or_default();
    Err(InstallError::ReleaseChanged {
        version: version.to_string(),
        detail: format!("{differs:?} differs from the manifest"),
    })
}
