//! Where a log keeps its tiles, checkpoint and guard: the [`TileStore`] trait and its
//! local-filesystem implementation [`FsTileStore`].
//!
//! The sequencer only talks to the trait, so an object-store or database backend can replace
//! the filesystem without touching it. Every write method returns only once the data is durable.

use std::fs::{self, File};
use std::io::{self, Write};

use airlock_fs::{AtomicFile, WriteOptions};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use airlock_core::tlog::Hash;
use airlock_core::tlog::tiles::TileId;

/// A storage failure, naming the file or object.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: the log is not halted; there is nothing to recover")]
    NotHalted { path: PathBuf },
    #[error("{path}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path}: malformed: {reason}")]
    Malformed { path: PathBuf, reason: String },
    #[error(transparent)]
    Fs(#[from] airlock_fs::FsError),
    #[error("{path}: another process holds the log's lock")]
    Locked { path: PathBuf },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The last checkpoint the log signed (size and root), persisted before the checkpoint is
/// published. The log refuses to sign anything that is not this tree or a consistent extension
/// of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Guard {
    pub size: u64,
    pub root: Hash,
}

/// A batch the sequencer started writing but has not committed yet: after a crash, the tiles
/// between `from_size` and `to_size` are discarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PendingBatch {
    pub from_size: u64,
    pub to_size: u64,
}

/// Storage for a tiled log. Writes are durable when they return; each object is replaced
/// atomically (a reader sees the old or the new content, never a mix).
///
/// Hash tiles and entry bundles are both named by airlock-core's [`TileId`] (an entry bundle by
/// the level-0 tile whose leaf hashes it holds), so each has its own read method and its own
/// list in a write.
pub trait TileStore: Send + Sync + 'static {
    /// A hash tile, `None` if absent.
    fn read_hash_tile(&self, id: &TileId) -> Result<Option<Vec<u8>>, StoreError>;
    /// The entry bundle of level-0 tile `id`, `None` if absent.
    fn read_entry_bundle(&self, id: &TileId) -> Result<Option<Vec<u8>>, StoreError>;
    /// Writes hash tiles and entry bundles; durable when it returns.
    fn write_tiles(
        &self,
        hash_tiles: &[(TileId, Vec<u8>)],
        entry_bundles: &[(TileId, Vec<u8>)],
    ) -> Result<(), StoreError>;
    /// Removes hash tiles and entry bundles if present (recovery of an uncommitted batch);
    /// durable.
    fn delete_tiles(
        &self,
        hash_tiles: &[TileId],
        entry_bundles: &[TileId],
    ) -> Result<(), StoreError>;
    /// The published (cosigned) checkpoint note.
    fn read_checkpoint(&self) -> Result<Option<Vec<u8>>, StoreError>;
    fn write_checkpoint(&self, note: &[u8]) -> Result<(), StoreError>;
    fn read_guard(&self) -> Result<Option<Guard>, StoreError>;
    fn write_guard(&self, guard: &Guard) -> Result<(), StoreError>;
    fn read_pending(&self) -> Result<Option<PendingBatch>, StoreError>;
    /// Records (`Some`) or clears (`None`) the batch in progress.
    fn write_pending(&self, pending: Option<&PendingBatch>) -> Result<(), StoreError>;
    /// Why the log halted (a witness holds a tree this log does not extend), if it did.
    fn read_halt(&self) -> Result<Option<String>, StoreError>;
    /// Records the halt durably, so that a restart stays halted.
    fn write_halt(&self, reason: &str) -> Result<(), StoreError>;
    /// A person's deliberate recovery: appends `record` (which should include the halt's reason)
    /// to the incident log, durably, then removes the halt. Refused if the log is not halted.
    fn clear_halt(&self, record: &str) -> Result<(), StoreError>;
}

/// A log on the local filesystem.
///
/// `public/` holds exactly what readers may see, laid out as c2sp.org/tlog-tiles says
/// (`checkpoint`, `tile/<L>/<N>[.p/<W>]`, `tile/entries/<N>[.p/<W>]`), so any web server can
/// serve it as static files. `state/` holds the guard, the pending-batch record, the lock
/// file, and after a halt `halt` (the reason) and `incidents` (recoveries); it must not be
/// published.
pub struct FsTileStore {
    public: PathBuf,
    state: PathBuf,
    _lock: File,
}

impl FsTileStore {
    /// Opens (creating if needed) a store under `public` and `state`, and takes an exclusive
    /// lock so that two log processes never write the same store.
    pub fn open(public: &Path, state: &Path) -> Result<Self, StoreError> {
        fs::create_dir_all(public).map_err(io_err(public))?;
        fs::create_dir_all(state).map_err(io_err(state))?;
        let lock_path = state.join("lock");
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io_err(&lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                return Err(StoreError::Locked { path: lock_path });
            }
            Err(fs::TryLockError::Error(e)) => return Err(io_err(&lock_path)(e)),
        }
        // Temporary files of writes a crash interrupted are never renamed into place: remove
        // them so that a static web server serving `public/` does not show them.
        airlock_fs::remove_temporaries(public, true)?;
        airlock_fs::remove_temporaries(state, true)?;
        Ok(Self {
            public: public.to_path_buf(),
            state: state.to_path_buf(),
            _lock: lock,
        })
    }

    /// The directory to publish.
    pub fn public_dir(&self) -> &Path {
        &self.public
    }

    fn hash_tile_path(&self, id: &TileId) -> PathBuf {
        self.public.join(id.path())
    }

    fn entry_bundle_path(&self, id: &TileId) -> PathBuf {
        self.public.join(id.entries_path())
    }

    fn read_opt(path: &Path) -> Result<Option<Vec<u8>>, StoreError> {
        match fs::read(path) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err(path)(e)),
        }
    }

    fn read_state_lines(&self, name: &str) -> Result<Option<(PathBuf, Vec<String>)>, StoreError> {
        let path = self.state.join(name);
        let Some(bytes) = Self::read_opt(&path)? else {
            return Ok(None);
        };
        let text = String::from_utf8(bytes).map_err(|_| StoreError::Malformed {
            path: path.clone(),
            reason: "not UTF-8".into(),
        })?;
        let lines = text.lines().map(str::to_string).collect();
        Ok(Some((path, lines)))
    }
}

/// Writes `data` to a temporary file next to `path`, fsyncs it and renames it into place. The
/// directory is NOT fsynced here; callers fsync each touched directory once per batch. Returns
/// the directories this call created (their parents need an fsync too).
fn write_file_unsynced_dir(path: &Path, data: &[u8]) -> Result<Vec<PathBuf>, StoreError> {
    let options = WriteOptions::public().sync_dir(false).create_parents();
    let mut file = AtomicFile::create(path, &options)?;
    let created = file.created_dirs().to_vec();
    file.write_all(data).map_err(io_err(path))?;
    file.commit()?;
    Ok(created)
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    Ok(airlock_fs::sync_dir(dir)?)
}

/// Atomic durable write of one file: temp, fsync, rename, fsync the directory (and the parents
/// of any directory it had to create).
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<(), StoreError> {
    let options = WriteOptions::public().create_parents();
    Ok(airlock_fs::write_atomic(path, data, &options)?)
}

impl TileStore for FsTileStore {
    fn read_hash_tile(&self, id: &TileId) -> Result<Option<Vec<u8>>, StoreError> {
        Self::read_opt(&self.hash_tile_path(id))
    }

    fn read_entry_bundle(&self, id: &TileId) -> Result<Option<Vec<u8>>, StoreError> {
        Self::read_opt(&self.entry_bundle_path(id))
    }

    fn write_tiles(
        &self,
        hash_tiles: &[(TileId, Vec<u8>)],
        entry_bundles: &[(TileId, Vec<u8>)],
    ) -> Result<(), StoreError> {
        let tiles: Vec<(PathBuf, &[u8])> = hash_tiles
            .iter()
            .map(|(id, data)| (self.hash_tile_path(id), data.as_slice()))
            .chain(
                entry_bundles
                    .iter()
                    .map(|(id, data)| (self.entry_bundle_path(id), data.as_slice())),
            )
            .collect();
        // fsync is the cost of durability; spread the files over a few threads so the
        // filesystem can commit them together.
        let threads = tiles.len().clamp(1, 8);
        let chunk = tiles.len().div_ceil(threads).max(1);
        let panicked = || StoreError::Malformed {
            path: self.public.clone(),
            reason: "tile writer thread panicked".into(),
        };
        let dirs = std::thread::scope(|s| {
            let handles: Vec<_> = tiles
                .chunks(chunk)
                .map(|part| {
                    s.spawn(move || {
                        let mut dirs = std::collections::BTreeSet::new();
                        for (path, data) in part {
                            for created in write_file_unsynced_dir(path, data)? {
                                if let Some(parent) = created.parent() {
                                    dirs.insert(parent.to_path_buf());
                                }
                            }
                            if let Some(parent) = path.parent() {
                                dirs.insert(parent.to_path_buf());
                            }
                        }
                        Ok::<_, StoreError>(dirs)
                    })
                })
                .collect();
            let mut dirs = std::collections::BTreeSet::new();
            for h in handles {
                dirs.extend(h.join().map_err(|_| panicked())??);
            }
            Ok::<_, StoreError>(dirs)
        })?;
        // Every directory that gained a name (a renamed file or a new subdirectory), in
        // parallel: the batch is durable once all of them are synced.
        let dirs: Vec<PathBuf> = dirs.into_iter().collect();
        let chunk = dirs.len().div_ceil(8).max(1);
        std::thread::scope(|s| {
            let handles: Vec<_> = dirs
                .chunks(chunk)
                .map(|part| s.spawn(move || part.iter().try_for_each(|d| sync_dir(d))))
                .collect();
            for h in handles {
                h.join().map_err(|_| panicked())??;
            }
            Ok::<(), StoreError>(())
        })
    }

    fn delete_tiles(
        &self,
        hash_tiles: &[TileId],
        entry_bundles: &[TileId],
    ) -> Result<(), StoreError> {
        let mut dirs = std::collections::BTreeSet::new();
        let paths = hash_tiles
            .iter()
            .map(|id| self.hash_tile_path(id))
            .chain(entry_bundles.iter().map(|id| self.entry_bundle_path(id)));
        for p in paths {
            match fs::remove_file(&p) {
                Ok(()) => {
                    if let Some(parent) = p.parent() {
                        dirs.insert(parent.to_path_buf());
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err(&p)(e)),
            }
        }
        for d in &dirs {
            sync_dir(d)?;
        }
        Ok(())
    }

    fn read_checkpoint(&self) -> Result<Option<Vec<u8>>, StoreError> {
        Self::read_opt(&self.public.join("checkpoint"))
    }

    fn write_checkpoint(&self, note: &[u8]) -> Result<(), StoreError> {
        write_atomic(&self.public.join("checkpoint"), note)
    }

    fn read_guard(&self) -> Result<Option<Guard>, StoreError> {
        let Some((path, lines)) = self.read_state_lines("guard")? else {
            return Ok(None);
        };
        let malformed = |reason: &str| StoreError::Malformed {
            path: path.clone(),
            reason: reason.to_string(),
        };
        match lines.as_slice() {
            [magic, size, root] if magic == "airlock-log guard v1" => {
                let size = size.parse().map_err(|_| malformed("bad size line"))?;
                let root: Hash = STANDARD
                    .decode(root)
                    .ok()
                    .and_then(|r| r.try_into().ok())
                    .ok_or_else(|| malformed("bad root line"))?;
                Ok(Some(Guard { size, root }))
            }
            _ => Err(malformed("expected 3 lines: magic, size, base64 root")),
        }
    }

    fn write_guard(&self, guard: &Guard) -> Result<(), StoreError> {
        let text = format!(
            "airlock-log guard v1\n{}\n{}\n",
            guard.size,
            STANDARD.encode(guard.root)
        );
        write_atomic(&self.state.join("guard"), text.as_bytes())
    }

    fn read_pending(&self) -> Result<Option<PendingBatch>, StoreError> {
        let Some((path, lines)) = self.read_state_lines("pending")? else {
            return Ok(None);
        };
        let malformed = || StoreError::Malformed {
            path: path.clone(),
            reason: "expected: magic line, from size, to size".into(),
        };
        match lines.as_slice() {
            [magic, from, to] if magic == "airlock-log pending v1" => Ok(Some(PendingBatch {
                from_size: from.parse().map_err(|_| malformed())?,
                to_size: to.parse().map_err(|_| malformed())?,
            })),
            _ => Err(malformed()),
        }
    }

    fn write_pending(&self, pending: Option<&PendingBatch>) -> Result<(), StoreError> {
        let path = self.state.join("pending");
        match pending {
            Some(p) => write_atomic(
                &path,
                format!("airlock-log pending v1\n{}\n{}\n", p.from_size, p.to_size).as_bytes(),
            ),
            None => match fs::remove_file(&path) {
                Ok(()) => sync_dir(&self.state),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(io_err(&path)(e)),
            },
        }
    }

    fn read_halt(&self) -> Result<Option<String>, StoreError> {
        let Some((path, lines)) = self.read_state_lines("halt")? else {
            return Ok(None);
        };
        match lines.split_first() {
            Some((magic, reason)) if magic == HALT_MAGIC && !reason.is_empty() => {
                Ok(Some(reason.join("\n")))
            }
            // A damaged halt file still halts: only a person clears it.
            _ => Ok(Some(format!(
                "{} is not a halt record this version can read",
                path.display()
            ))),
        }
    }

    fn write_halt(&self, reason: &str) -> Result<(), StoreError> {
        let text = format!("{HALT_MAGIC}\n{}\n", reason.replace('\n', " "));
        write_atomic(&self.state.join("halt"), text.as_bytes())
    }

    fn clear_halt(&self, record: &str) -> Result<(), StoreError> {
        let halt = self.state.join("halt");
        if Self::read_opt(&halt)?.is_none() {
            return Err(StoreError::NotHalted { path: halt });
        }
        let incidents = self.state.join("incidents");
        let mut all = Self::read_opt(&incidents)?.unwrap_or_default();
        all.extend_from_slice(record.as_bytes());
        if !all.ends_with(b"\n") {
            all.push(b'\n');
        }
        // The record is durable before the halt goes, so no recovery goes unrecorded.
        write_atomic(&incidents, &all)?;
        fs::remove_file(&halt).map_err(io_err(&halt))?;
        sync_dir(&self.state)
    }
}

const HALT_MAGIC: &str = "airlock-log halt v1";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_land_where_tlog_tiles_says_and_state_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let store =
            FsTileStore::open(&dir.path().join("public"), &dir.path().join("state")).unwrap();
        let id = TileId {
            level: 0,
            index: 1234067,
            width: 256,
        };
        store
            .write_tiles(&[(id, vec![1; 8192])], &[(id, vec![0, 1, 7])])
            .unwrap();
        assert!(dir.path().join("public/tile/0/x001/x234/067").is_file());
        assert!(
            dir.path()
                .join("public/tile/entries/x001/x234/067")
                .is_file()
        );
        assert_eq!(store.read_hash_tile(&id).unwrap().unwrap(), vec![1; 8192]);
        assert_eq!(
            store.read_entry_bundle(&id).unwrap().unwrap(),
            vec![0, 1, 7]
        );
        let absent = TileId { index: 1, ..id };
        assert_eq!(store.read_hash_tile(&absent).unwrap(), None);
        let g = Guard {
            size: 42,
            root: [9; 32],
        };
        store.write_guard(&g).unwrap();
        assert_eq!(store.read_guard().unwrap(), Some(g));
        let p = PendingBatch {
            from_size: 1,
            to_size: 2,
        };
        store.write_pending(Some(&p)).unwrap();
        assert_eq!(store.read_pending().unwrap(), Some(p));
        store.write_pending(None).unwrap();
        assert_eq!(store.read_pending().unwrap(), None);
        // The lock keeps a second process (or store) out.
        assert!(matches!(
            FsTileStore::open(&dir.path().join("public"), &dir.path().join("state")),
            Err(StoreError::Locked { .. })
        ));
        // Nothing private is published.
        assert!(!dir.path().join("public/guard").exists());
        // Leftover temporaries of a crashed write are removed when the store is opened again.
        drop(store);
        let tmp = dir.path().join(format!(
            "public/tile/0/x001/x234/{}abc",
            airlock_fs::TEMP_PREFIX
        ));
        fs::write(&tmp, b"partial").unwrap();
        let _store =
            FsTileStore::open(&dir.path().join("public"), &dir.path().join("state")).unwrap();
        assert!(!tmp.exists());
        assert!(dir.path().join("public/tile/0/x001/x234/067").is_file());
    }

    #[test]
    fn a_corrupt_guard_is_an_error_not_a_reset() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsTileStore::open(&dir.path().join("p"), &dir.path().join("s")).unwrap();
        fs::write(dir.path().join("s/guard"), "airlock-log guard v1\n12\n").unwrap();
        assert!(matches!(
            store.read_guard(),
            Err(StoreError::Malformed { .. })
        ));
    }
}
