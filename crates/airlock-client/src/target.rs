//! Target files: streamed download with length cap and hashing, cache check, atomic placement.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;

use airlock_core::tuf::{HashError, MultiHasher, TargetFile};
use airlock_fetch::{FetchError, Fetcher, Progress};

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

/// Writes to the temporary file and feeds the hasher with the same bytes.
struct HashingWriter<'a> {
    file: &'a mut File,
    hasher: &'a mut MultiHasher,
}

impl Write for HashingWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hasher.update(buf.get(..n).unwrap_or_default());
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// Download `url` to `dest`: streamed into a temporary file next to `dest` while hashing, never
/// more than `info.length` bytes read, every listed hash checked, then an atomic rename. On any
/// failure `dest` is left as it was and the temporary file is removed.
pub(crate) fn download(
    fetcher: &Fetcher,
    url: &str,
    info: &TargetFile,
    dest: &Path,
    progress: Progress<'_>,
) -> Result<(), TargetFileError> {
    let io_err = |source| TargetFileError::Io {
        path: dest.display().to_string(),
        source,
    };
    let hash_err = |source| TargetFileError::Hash {
        url: url.to_string(),
        source,
    };
    // Refuse unknown or missing hash algorithms before a single byte is requested.
    let mut hasher = MultiHasher::new(&info.hashes).map_err(hash_err)?;
    // A verified target is a public artifact, readable by all like any downloaded file.
    let mut tmp = AtomicFile::create(dest, &WriteOptions::public().create_parents())
        .map_err(|e| io_err(e.source))?;
    let written = {
        let mut writer = HashingWriter {
            file: tmp.as_file_mut(),
            hasher: &mut hasher,
        };
        fetcher
            .fetch_to_writer(url, info.length, &mut writer, progress)
            .map_err(TargetFileError::Fetch)?
    };
    if written != info.length {
        return Err(TargetFileError::Length {
            url: url.to_string(),
            expected: info.length,
            actual: written,
        });
    }
    hasher.finish().map_err(hash_err)?;
    tmp.commit().map_err(|e| io_err(e.source))
}
