//! File-system primitives of the repository: atomic file writes, and directories that change
//! as a whole (`airlock_fs::generations`).

use std::path::Path;

use airlock_fs::WriteOptions;
pub(crate) use airlock_fs::generations::{GenerationDir, NextGeneration};

use crate::error::RepoError;

pub(crate) fn io_err(path: &Path, error: std::io::Error) -> RepoError {
    RepoError::Io {
        path: path.to_path_buf(),
        error,
    }
}

/// fsync a directory so that renames and new entries in it are durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), RepoError> {
    Ok(airlock_fs::sync_dir(dir)?)
}

/// Write `bytes` to `path` atomically (replacing it), mode 0644, with the one atomic writer.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), RepoError> {
    Ok(airlock_fs::write_atomic(
        path,
        bytes,
        &WriteOptions::public(),
    )?)
}

/// Flush every dirty page of the file system holding `path` (Linux `syncfs`). Used once before
/// the metadata switch instead of one fsync per target file.
pub(crate) fn sync_filesystem(path: &Path) -> Result<(), RepoError> {
    Ok(airlock_fs::sync_filesystem(path)?)
}

/// [`airlock_fs::generations::create_public_dir_all`] with the repository's error.
pub(crate) fn create_public_dir_all(dir: &Path) -> Result<(), RepoError> {
    Ok(airlock_fs::generations::create_public_dir_all(dir)?)
}
