//! Target files: streamed download with length cap and hashing, cache check, atomic placement.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;

use airlock_core::tuf::{HashError, MultiHasher, TargetFile};
use airlock_fetch::{FetchError, Fetcher, Progress, Resumable};

use airlock_fs::{AtomicFile, WriteOptions};

/// Why a target file could not be downloaded or checked (the caller adds the target path).
#[derive(Debug, thiserror::Error)]
pub enum TargetFileError {
    #[error(transparent)]
    Fetch(FetchError),
    #[error("{url}: got {actual} bytes, metadata lists {expected}")]
    Length {
        url: String,
        expected: u64,
        actual: u64,
    },
    #[error("{url}")]
    Hash {
        url: String,
        #[source]
        source: HashError,
    },
    /// A source other than the HTTPS mirrors (e.g. a BitTorrent swarm) did not deliver it.
    #[error("{name}")]
    Source {
        name: String,
        #[source]
        source: crate::fallback::SourceError,
    },
    #[error("{path}")]
    Io {
        path: String,
        #[source]
        source: io::Error,
    },
}

/// Does `path` hold exactly the file `info` describes (length and every listed hash)?
/// A missing file is `Ok(false)`; so is one that does not match (it will be replaced).
pub(crate) fn matches_on_disk(path: &Path, info: &TargetFile) -> Result<bool, TargetFileError> {
    let io_err = |source| TargetFileError::Io {
        path: path.display().to_string(),
        source,
    };
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(io_err(e)),
    };
    let meta = file.metadata().map_err(io_err)?;
    if !meta.is_file() || meta.len() != info.length {
        return Ok(false);
    }
    let Ok(mut hasher) = MultiHasher::new(&info.hashes) else {
        // No usable hash: nothing on disk can be proven to match.
        return Ok(false);
    };
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        let n = file.read(&mut buf).map_err(io_err)?;
        if n == 0 {
            break;
        }
        let chunk = buf.get(..n).unwrap_or_default();
        hasher.update(chunk);
        total += n as u64;
        if total > info.length {
            return Ok(false);
        }
    }
    Ok(total == info.length && hasher.finish().is_ok())
}

/// A download in progress: the bytes received so far in a file beside the destination (kept
/// when the run stops, so a later run goes on from them), and their running hashes.
///
/// The file's name carries the target's first listed hash, so the bytes of one version are
/// never continued as another. Its bytes are not trusted: they are hashed again when it is
/// opened, and the whole file is checked against the trusted length and every hash before it
/// takes the destination's name.
pub(crate) struct Partial<'a> {
    file: AtomicFile,
    hasher: MultiHasher,
    held: u64,
    info: &'a TargetFile,
}

impl<'a> Partial<'a> {
    /// Open (or start) the partial download of `info` for `dest`.
    pub(crate) fn open(dest: &Path, info: &'a TargetFile) -> Result<Self, TargetFileError> {
        let io_err = |source| TargetFileError::Io {
            path: dest.display().to_string(),
            source,
        };
        let hash_err = |source| TargetFileError::Hash {
            url: dest.display().to_string(),
            source,
        };
        // Refuse unknown or missing hash algorithms before a single byte is requested.
        let hasher = MultiHasher::new(&info.hashes).map_err(hash_err)?;
        let dir = airlock_fs::parent_dir(dest);
        std::fs::create_dir_all(dir).map_err(io_err)?;
        let base = dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tag: String = info
            .hashes
            .values()
            .next()
            .map(|h| h.chars().take(16).collect())
            .unwrap_or_default();
        let name = format!(".{base}.{tag}.partial");
        // A verified target is a public artifact, readable by all like any downloaded file.
        let (file, held) = AtomicFile::resume(dest, &name, &WriteOptions::public())
            .map_err(|e| io_err(e.source))?;
        let mut partial = Partial {
            file,
            hasher,
            held: 0,
            info,
        };
        if held > info.length {
            partial.restart().map_err(io_err)?;
        } else if held > 0 {
            partial.rehash(held).map_err(io_err)?;
        }
        Ok(partial)
    }

    /// Hash the `len` bytes already in the file, leaving it positioned at their end.
    fn rehash(&mut self, len: u64) -> io::Result<()> {
        use std::io::Seek;
        let f = self.file.as_file_mut();
        f.seek(io::SeekFrom::Start(0))?;
        let mut buf = vec![0u8; 256 * 1024];
        let mut left = len;
        while left > 0 {
            let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
            let chunk = buf.get_mut(..want).unwrap_or_default();
            let n = f.read(chunk)?;
            if n == 0 {
                break;
            }
            self.hasher.update(chunk.get(..n).unwrap_or_default());
            left -= n as u64;
        }
        self.held = len - left;
        f.seek(io::SeekFrom::Start(self.held))?;
        f.set_len(self.held)?;
        Ok(())
    }

    /// Bytes held so far.
    pub(crate) fn held(&self) -> u64 {
        self.held
    }

    /// Fetch what is missing from `url` (a Range request when bytes are held).
    pub(crate) fn fetch(
        &mut self,
        fetcher: &Fetcher,
        url: &str,
        progress: Progress<'_>,
    ) -> Result<(), TargetFileError> {
        let length = self.info.length;
        if self.held < length {
            fetcher
                .fetch_resumable(url, self.held, length, self, progress)
                .map_err(TargetFileError::Fetch)?;
        }
        Ok(())
    }

    /// Check the whole file against the trusted length and every hash. When it does not match,
    /// the bytes are dropped (the next attempt starts from zero) and the error names `url`.
    pub(crate) fn check(&mut self, url: &str) -> Result<(), TargetFileError> {
        let result = if self.held != self.info.length {
            Err(TargetFileError::Length {
                url: url.to_string(),
                expected: self.info.length,
                actual: self.held,
            })
        } else {
            let fresh =
                MultiHasher::new(&self.info.hashes).map_err(|source| TargetFileError::Hash {
                    url: url.to_string(),
                    source,
                })?;
            let hasher = std::mem::replace(&mut self.hasher, fresh);
            hasher.finish().map_err(|source| TargetFileError::Hash {
                url: url.to_string(),
                source,
            })
        };
        if result.is_err() {
            self.restart().map_err(|source| TargetFileError::Io {
                path: self.file.path().display().to_string(),
                source,
            })?;
        }
        result
    }

    /// Move a checked download to its destination (fsync, rename, fsync of the directory).
    pub(crate) fn commit(self) -> Result<(), TargetFileError> {
        let dest = self.file.path().display().to_string();
        self.file.commit().map_err(|e| TargetFileError::Io {
            path: dest,
            source: e.source,
        })
    }

    /// Remove the partial file (a download that will not be resumed).
    pub(crate) fn discard(self) {
        let _ = self.file.discard();
    }
}

impl Write for Partial<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hasher.update(buf.get(..n).unwrap_or_default());
        self.held += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl airlock_fetch::Resumable for Partial<'_> {
    fn restart(&mut self) -> io::Result<()> {
        self.file.truncate().map_err(|e| e.source)?;
        self.hasher = MultiHasher::new(&self.info.hashes).map_err(io::Error::other)?;
        self.held = 0;
        Ok(())
    }
}
