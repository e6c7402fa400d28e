//! The directories of one application and the moves on them: reading and switching `current`,
//! listing, removing and cleaning up releases, the lock.

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::{DirBuilderExt, symlink};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use airlock_core::install::{DIR_MODE, check_version_name};
use airlock_fs::{FsError, TEMP_PREFIX, sync_dir};

use crate::InstallError;

/// How long an operation waits for another one's lock before it gives up.
pub const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Where one application lives (see the crate README).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppLayout {
    root: PathBuf,
}

impl AppLayout {
    pub fn new(root: &Path) -> Self {
        AppLayout {
            root: root.to_path_buf(),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn releases_dir(&self) -> PathBuf {
        self.root.join("releases")
    }

    pub fn release_dir(&self, version: &str) -> PathBuf {
        self.releases_dir().join(version)
    }

    /// The `current` symlink (relative: `releases/<version>`).
    pub fn current_link(&self) -> PathBuf {
        self.root.join("current")
    }

    pub fn state_dir(&self) -> PathBuf {
        self.root.join("state")
    }

    pub(crate) fn journal_path(&self) -> PathBuf {
        self.state_dir().join("journal.json")
    }

    pub(crate) fn state_path(&self) -> PathBuf {
        self.state_dir().join("state.json")
    }

    pub(crate) fn manifest_path(&self, version: &str) -> PathBuf {
        self.state_dir()
            .join("manifests")
            .join(format!("{version}.json"))
    }

    /// The version `current` points at; `None` when there is no `current`.
    pub fn current_version(&self) -> Result<Option<String>, InstallError> {
        let link = self.current_link();
        let target = match fs::read_link(&link) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(FsError::new("reading the link", link, e).into()),
        };
        let text = target.to_str().unwrap_or("");
        match text.strip_prefix("releases/") {
            Some(v) if check_version_name(v).is_ok() => Ok(Some(v.to_string())),
            _ => Err(InstallError::BadCurrent {
                link,
                target: target.display().to_string(),
            }),
        }
    }

    /// Create root, `releases/`, `state/` and `state/manifests/` as needed (0755).
    pub(crate) fn ensure_dirs(&self) -> Result<(), InstallError> {
        for dir in [
            self.root.clone(),
            self.releases_dir(),
            self.state_dir(),
            self.state_dir().join("manifests"),
        ] {
            match fs::DirBuilder::new().mode(DIR_MODE).create(&dir) {
                Ok(()) => sync_dir(airlock_fs::parent_dir(&dir))?,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => {}
                Err(e) => return Err(FsError::new("creating directory", dir, e).into()),
            }
        }
        Ok(())
    }

    /// Hold the application's lock until the returned file is dropped (a killed holder
    /// releases it with its process).
    pub(crate) fn lock(&self) -> Result<File, InstallError> {
        let path = self.state_dir().join("lock");
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| FsError::new("opening the lock", &path, e))?;
        // A short wait, not none: a hook forked by a holder that was just killed keeps the
        // lock (inherited across fork) until its exec closes it.
        let deadline = std::time::Instant::now() + LOCK_WAIT;
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(file),
                Err(fs::TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                Err(fs::TryLockError::WouldBlock) => return Err(InstallError::Busy { lock: path }),
                Err(fs::TryLockError::Error(e)) => {
                    return Err(FsError::new("locking", path, e).into());
                }
            }
        }
    }

    /// Point `current` at `releases/<to>` with one rename of a fresh symlink, or remove it for
    /// `None`; then fsync the root so the switch survives a power loss.
    pub(crate) fn switch_current(&self, to: Option<&str>) -> Result<(), InstallError> {
        let link = self.current_link();
        match to {
            Some(v) => {
                let tmp = self.root.join(temp_name("current"));
                symlink(format!("releases/{v}"), &tmp)
                    .map_err(|e| FsError::new("creating the link", &tmp, e))?;
                if let Err(e) = fs::rename(&tmp, &link) {
                    let _ = fs::remove_file(&tmp);
                    return Err(FsError::new("switching", link, e).into());
                }
            }
            None => match fs::remove_file(&link) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(FsError::new("removing", link, e).into()),
            },
        }
        sync_dir(&self.root)?;
        Ok(())
    }

    /// Complete releases: the directories of `releases/` with a version name (temporary ones
    /// start with a dot).
    pub fn releases_on_disk(&self) -> Result<Vec<String>, InstallError> {
        let dir = self.releases_dir();
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(FsError::new("listing", dir, e).into()),
        };
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| FsError::new("listing", &dir, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
            if is_dir && check_version_name(&name).is_ok() {
                out.push(name);
            }
        }
        out.sort();
        Ok(out)
    }

    /// Delete `releases/<version>` and its manifest: first renamed to a temporary name (one
    /// atomic step, so a crash never leaves a half-deleted release under a version name).
    pub(crate) fn remove_release(&self, version: &str) -> Result<(), InstallError> {
        let dir = self.release_dir(version);
        if fs::symlink_metadata(&dir).is_ok() {
            let trash = self.releases_dir().join(temp_name("trash"));
            fs::rename(&dir, &trash).map_err(|e| FsError::new("moving aside", &dir, e))?;
            sync_dir(&self.releases_dir())?;
            fs::remove_dir_all(&trash).map_err(|e| FsError::new("removing", trash, e))?;
        }
        let manifest = self.manifest_path(version);
        match fs::remove_file(&manifest) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(FsError::new("removing", manifest, e).into()),
        }
        Ok(())
    }

    /// Remove what interrupted operations left: temporary directories under `releases/`,
    /// temporary links in the root, temporary files in `state/`. Returns how many.
    pub(crate) fn remove_temporaries(&self) -> Result<usize, InstallError> {
        let mut removed = 0;
        for dir in [self.root.clone(), self.releases_dir()] {
            let entries = match fs::read_dir(&dir) {
                Ok(e) => e,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(FsError::new("listing", dir, e).into()),
            };
            for entry in entries {
                let entry = entry.map_err(|e| FsError::new("listing", &dir, e))?;
                if !entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
                    continue;
                }
                let path = entry.path();
                let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
                let result = if is_dir {
                    fs::remove_dir_all(&path)
                } else {
                    fs::remove_file(&path)
                };
                result.map_err(|e| FsError::new("removing", &path, e))?;
                removed += 1;
            }
        }
        airlock_fs::remove_temporaries(&self.state_dir(), true)?;
        Ok(removed)
    }
}

/// A name no other operation uses: the temporary prefix, what it is for, the process id and a
/// counter.
pub(crate) fn temp_name(what: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{TEMP_PREFIX}{what}-{}-{nanos}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}
