//! The local metadata directory and atomic file writes.
//!
//! The metadata directory holds only the exact bytes the client accepted, one file per role under
//! its non-versioned name (`root.json`, `timestamp.json`, `snapshot.json`, `targets.json`,
//! `<role>.json`). Role names are percent-encoded the way python-tuf encodes them
//! (`urllib.parse.quote(name, safe="")`), so a role called `../x` or `a/b` can never name a file
//! outside the directory. Temporary files start with `airlock_fs::TEMP_PREFIX` and never end in `.json`.
//!
//! Durability per update, not per file: the updater [stages](MetadataStore::stage) what one
//! refresh (or one lookup) accepted and [commits](MetadataStore::commit_staged) it before that
//! call returns, through `airlock_fs::write_atomic_batch`: every file written and `fsync`ed,
//! then renamed into place in the order accepted, then one `fsync` of the directory. Nothing is
//! renamed before its bytes are on disk, so a crash never leaves an empty or partial file under
//! a role's name, only the old file or the new one (each load verifies the file anyway, so a
//! damaged one would be refused, never trusted; the stored timestamp and snapshot are rollback
//! baselines, which is why they are not left to that). A crash during the renames leaves the
//! earlier roles new and the later ones old, the same state as a crash between two stores
//! would: a newer timestamp over an older snapshot or targets, which the next update
//! re-fetches. `root.json` is stored at once ([`MetadataStore::store`]), before anything
//! checked under it.

use std::io;
use std::path::{Path, PathBuf};

use airlock_fs::WriteOptions;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// Characters python's `urllib.parse.quote(s, safe="")` leaves alone: letters, digits and `_.-~`.
const QUOTE_SAFE_NONE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'_')
    .remove(b'.')
    .remove(b'-')
    .remove(b'~');

/// Characters python's `urllib.parse.quote(s)` (default `safe="/"`) leaves alone.
const QUOTE_SAFE_SLASH: &AsciiSet = &QUOTE_SAFE_NONE.remove(b'/');

/// Percent-encode a role name for a URL path segment or a file name (every byte except
/// letters, digits and `_.-~`).
pub fn encode_role_name(role: &str) -> String {
    utf8_percent_encode(role, QUOTE_SAFE_NONE).to_string()
}

/// Percent-encode a target path for a URL, keeping `/` separators.
pub fn encode_target_path(path: &str) -> String {
    utf8_percent_encode(path, QUOTE_SAFE_SLASH).to_string()
}

/// Percent-encode a whole target path into one file name (no directories are created for
/// `a/b/c.txt`; it becomes `a%2Fb%2Fc.txt`).
pub fn encode_target_file_name(path: &str) -> String {
    utf8_percent_encode(path, QUOTE_SAFE_NONE).to_string()
}

/// A failed local read or write. Names the file.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("reading {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("writing {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// The metadata directory of one client.
#[derive(Clone, Debug)]
pub struct MetadataStore {
    dir: PathBuf,
    /// Roles accepted but not written yet, in the order accepted (one entry per role).
    staged: Vec<(String, Vec<u8>)>,
}

impl MetadataStore {
    /// Use `dir`, creating it if it does not exist.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir).map_err(|source| StoreError::Write {
            path: dir.clone(),
            source,
        })?;
        Ok(Self {
            dir,
            staged: Vec::new(),
        })
    }

    /// Use `dir` as it is (reads of a missing directory find nothing; writes fail).
    pub fn existing(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            staged: Vec::new(),
        }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file that holds `role`'s trusted metadata.
    pub fn path_of(&self, role: &str) -> PathBuf {
        self.dir.join(format!("{}.json", encode_role_name(role)))
    }

    /// The stored bytes of `role` (staged ones first), or `None` when there are none.
    pub fn load(&self, role: &str) -> Result<Option<Vec<u8>>, StoreError> {
        if let Some((_, bytes)) = self.staged.iter().find(|(r, _)| r == role) {
            return Ok(Some(bytes.clone()));
        }
        let path = self.path_of(role);
        match std::fs::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(StoreError::Read { path, source }),
        }
    }

    /// The length of `role`'s stored bytes (staged ones first), without reading them; `None`
    /// when there are none.
    pub fn stored_len(&self, role: &str) -> Option<u64> {
        if let Some((_, bytes)) = self.staged.iter().find(|(r, _)| r == role) {
            return Some(bytes.len() as u64);
        }
        std::fs::metadata(self.path_of(role))
            .ok()
            .filter(|m| m.is_file())
            .map(|m| m.len())
    }

    /// Atomically and durably replace `role`'s file with `bytes`, now (a staged copy of the
    /// role is dropped: this one is newer).
    pub fn store(&mut self, role: &str, bytes: &[u8]) -> Result<(), StoreError> {
        self.staged.retain(|(r, _)| r != role);
        let path = self.path_of(role);
        airlock_fs::write_atomic(&path, bytes, &WriteOptions::public()).map_err(|e| {
            StoreError::Write {
                path,
                source: e.source,
            }
        })
    }

    /// Replace `role`'s file with `bytes` at the next [`MetadataStore::commit_staged`].
    pub fn stage(&mut self, role: &str, bytes: Vec<u8>) {
        self.staged.retain(|(r, _)| r != role);
        self.staged.push((role.to_string(), bytes));
    }

    /// Write every staged role atomically, then make them durable together (see the module
    /// docs). Nothing is left staged, also when the write fails.
    pub fn commit_staged(&mut self) -> Result<(), StoreError> {
        let staged = std::mem::take(&mut self.staged);
        if staged.is_empty() {
            return Ok(());
        }
        let paths: Vec<PathBuf> = staged.iter().map(|(role, _)| self.path_of(role)).collect();
        let files: Vec<(&Path, &[u8])> = paths
            .iter()
            .zip(&staged)
            .map(|(path, (_, bytes))| (path.as_path(), bytes.as_slice()))
            .collect();
        airlock_fs::write_atomic_batch(&files, &WriteOptions::public()).map_err(|e| {
            StoreError::Write {
                path: e.path,
                source: e.source,
            }
        })
    }

    /// Remove every stored targets role (top-level and delegated): every `.json` file but
    /// root, timestamp and snapshot. Used when the root's transparency policy changed, so that
    /// no copy trusted before it is used without a proof.
    pub fn remove_targets_roles(&mut self) -> Result<(), StoreError> {
        let keep = ["root.json", "timestamp.json", "snapshot.json"];
        self.staged
            .retain(|(role, _)| ["root", "timestamp", "snapshot"].contains(&role.as_str()));
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(source) => {
                return Err(StoreError::Read {
                    path: self.dir.clone(),
                    source,
                });
            }
        };
        for entry in entries {
            let entry = entry.map_err(|source| StoreError::Read {
                path: self.dir.clone(),
                source,
            })?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.ends_with(".json") && !keep.contains(&name.as_ref()) {
                let path = entry.path();
                std::fs::remove_file(&path).map_err(|source| StoreError::Write { path, source })?;
            }
        }
        Ok(())
    }

    /// Remove `role`'s file, if any (used when a stored file is no longer trusted).
    pub fn remove(&mut self, role: &str) -> Result<(), StoreError> {
        self.staged.retain(|(r, _)| r != role);
        let path = self.path_of(role);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(StoreError::Write { path, source }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_names_are_encoded_like_python_quote() {
        assert_eq!(encode_role_name("targets"), "targets");
        assert_eq!(encode_role_name("?"), "%3F");
        assert_eq!(encode_role_name("#"), "%23");
        assert_eq!(encode_role_name("/delegatedrole"), "%2Fdelegatedrole");
        assert_eq!(encode_role_name("../delegatedrole"), "..%2Fdelegatedrole");
        assert_eq!(encode_role_name("a b~c_d-e.f"), "a%20b~c_d-e.f");
        assert_eq!(encode_role_name("é"), "%C3%A9");
        assert_eq!(encode_target_path("a dir/x?.txt"), "a%20dir/x%3F.txt");
    }

    #[test]
    fn store_writes_only_under_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = MetadataStore::open(dir.path()).unwrap();
        store.store("../evil", b"x").unwrap();
        store.store("root", b"{}").unwrap();
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, vec!["..%2Fevil.json", "root.json"]);
        assert_eq!(store.load("root").unwrap().as_deref(), Some(&b"{}"[..]));
        assert_eq!(store.load("snapshot").unwrap(), None);
        store.remove("root").unwrap();
        assert_eq!(store.load("root").unwrap(), None);
    }

    #[test]
    fn staged_roles_are_read_back_and_written_only_at_the_commit() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = MetadataStore::open(dir.path()).unwrap();
        store.store("timestamp", b"t1").unwrap();
        store.stage("timestamp", b"t2".to_vec());
        store.stage("snapshot", b"s2".to_vec());
        store.stage("targets", b"g2".to_vec());
        assert_eq!(
            store.load("timestamp").unwrap().as_deref(),
            Some(&b"t2"[..])
        );
        assert_eq!(std::fs::read(store.path_of("timestamp")).unwrap(), b"t1");
        assert!(!store.path_of("snapshot").exists());
        // A removal drops the staged copy too.
        store.remove_targets_roles().unwrap();
        store.commit_staged().unwrap();
        assert_eq!(std::fs::read(store.path_of("timestamp")).unwrap(), b"t2");
        assert_eq!(std::fs::read(store.path_of("snapshot")).unwrap(), b"s2");
        assert!(!store.path_of("targets").exists());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
        store.commit_staged().unwrap();
    }
}
