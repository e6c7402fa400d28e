//! Target files: streamed download with length cap and hashing, cache check, atomic placement.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

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
///
/// Bytes written to it are collected in chunks that a second thread writes and hashes, so that
/// receiving, hashing and writing overlap; that thread also starts the disk writeback of each
/// span written, so that the `fsync` of [`Partial::commit`] has little left to do. Every
/// method that looks at the bytes as a whole ([`check`](Self::check), `flush`,
/// [`restart`](airlock_fetch::Resumable::restart), [`commit`](Self::commit)) first waits for
/// that thread, and reports its write error if it had one.
pub(crate) struct Partial<'a> {
    file: AtomicFile,
    /// Running hashes of the bytes in the file; the writer thread holds them while it runs.
    hasher: Option<MultiHasher>,
    /// Bytes taken: in the file, queued for the writer, or in `pending`.
    held: u64,
    info: &'a TargetFile,
    /// Bytes taken and not yet handed to the writer.
    pending: Vec<u8>,
    writer: Option<Writer>,
}

/// Bytes handed to the writer thread at a time: large, so that each hand-over moves a lot;
/// small enough to be hashed while still in the CPU's cache after being written.
const CHUNK: usize = 256 * 1024;
/// Chunks that may wait for the writer: with the one it works on and the one being filled,
/// a download holds at most (QUEUED + 2) * CHUNK = 2.5 MiB of buffers.
const QUEUED: usize = 8;
/// How many written bytes the writer lets accumulate before it starts their writeback.
const WRITEBACK_SPAN: u64 = 8 * 1024 * 1024;

/// The thread that writes and hashes the chunks of a [`Partial`], in order.
struct Writer {
    chunks: Option<SyncSender<Vec<u8>>>,
    /// Emptied chunks, sent back to be filled again (no allocation per chunk).
    spare: Receiver<Vec<u8>>,
    thread: Option<JoinHandle<Written>>,
    /// Where in the file the writer started.
    start: u64,
}

/// What the writer thread did: the running hashes over every byte it wrote (the bytes of a
/// chunk it could not write whole are not in them), how many bytes, and its write error.
struct Written {
    hasher: MultiHasher,
    bytes: u64,
    error: Option<io::Error>,
}

impl Writer {
    fn spawn(file: &AtomicFile, hasher: MultiHasher, start: u64) -> io::Result<Self> {
        // A second descriptor of the same open file: it shares the position, which only the
        // writer moves while it runs.
        let out = file.as_file().try_clone()?;
        let (chunks, inbox) = sync_channel::<Vec<u8>>(QUEUED);
        let (give_back, spare) = sync_channel::<Vec<u8>>(QUEUED + 2);
        let thread = std::thread::Builder::new()
            .name("airlock-target-writer".into())
            .spawn(move || write_chunks(out, hasher, start, &inbox, &give_back))?;
        Ok(Writer {
            chunks: Some(chunks),
            spare,
            thread: Some(thread),
            start,
        })
    }

    /// Queue a chunk; `false` when the writer has stopped (on a write error).
    fn send(&self, chunk: Vec<u8>) -> bool {
        self.chunks.as_ref().is_some_and(|c| c.send(chunk).is_ok())
    }

    /// Let the writer finish what is queued; what it did.
    fn finish(mut self) -> io::Result<Written> {
        self.chunks = None;
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(written)) => Ok(written),
            _ => Err(io::Error::other("the target writer thread panicked")),
        }
    }
}

impl Drop for Writer {
    /// A download dropped half-way keeps the bytes it received (a later run goes on from them).
    fn drop(&mut self) {
        self.chunks = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn write_chunks(
    mut out: File,
    mut hasher: MultiHasher,
    start: u64,
    inbox: &Receiver<Vec<u8>>,
    give_back: &SyncSender<Vec<u8>>,
) -> Written {
    let mut bytes = 0u64;
    let mut unsynced_from = start;
    for mut chunk in inbox {
        if let Err(e) = out.write_all(&chunk) {
            return Written {
                hasher,
                bytes,
                error: Some(e),
            };
        }
        hasher.update(&chunk);
        bytes += chunk.len() as u64;
        let end = start + bytes;
        if end - unsynced_from >= WRITEBACK_SPAN {
            // A hint; should it fail, the fsync before the rename does all the work.
            let _ = airlock_fs::start_writeback(&out, unsynced_from, end - unsynced_from);
            unsynced_from = end;
        }
        chunk.clear();
        let _ = give_back.try_send(chunk);
    }
    Written {
        hasher,
        bytes,
        error: None,
    }
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
            hasher: Some(hasher),
            held: 0,
            info,
            pending: Vec::new(),
            writer: None,
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
        let hasher = self.hasher.as_mut().ok_or_else(writer_running)?;
        while left > 0 {
            let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
            let chunk = buf.get_mut(..want).unwrap_or_default();
            let n = f.read(chunk)?;
            if n == 0 {
                break;
            }
            hasher.update(chunk.get(..n).unwrap_or_default());
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
            let fetched = fetcher.fetch_resumable(url, self.held, length, self, progress);
            // Every byte received goes to the file now, also when the transfer failed: the next
            // attempt or run goes on from them.
            let settled = self.settle().map_err(|source| TargetFileError::Io {
                path: self.file.path().display().to_string(),
                source,
            });
            fetched.map_err(TargetFileError::Fetch)?;
            settled?;
        }
        Ok(())
    }

    /// Check the whole file against the trusted length and every hash. When it does not match,
    /// the bytes are dropped (the next attempt starts from zero) and the error names `url`.
    pub(crate) fn check(&mut self, url: &str) -> Result<(), TargetFileError> {
        self.settle().map_err(|source| TargetFileError::Io {
            path: self.file.path().display().to_string(),
            source,
        })?;
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
            let hasher = self
                .hasher
                .replace(fresh)
                .ok_or_else(|| TargetFileError::Io {
                    path: self.file.path().display().to_string(),
                    source: writer_running(),
                })?;
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
    pub(crate) fn commit(mut self) -> Result<(), TargetFileError> {
        let dest = self.file.path().display().to_string();
        // `check` settled the writer already; bytes taken since would not have been checked.
        self.settle().map_err(|source| TargetFileError::Io {
            path: dest.clone(),
            source,
        })?;
        if self.held != self.info.length {
            return Err(TargetFileError::Length {
                url: dest,
                expected: self.info.length,
                actual: self.held,
            });
        }
        self.file.commit().map_err(|e| TargetFileError::Io {
            path: dest,
            source: e.source,
        })
    }

    /// Remove the partial file (a download that will not be resumed).
    pub(crate) fn discard(mut self) {
        drop(self.writer.take());
        let _ = self.file.discard();
    }

    /// Hand what `pending` holds to the writer (starting it if need be).
    fn hand_over(&mut self) -> io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        if self.writer.is_none() {
            let hasher = self.hasher.take().ok_or_else(writer_running)?;
            let start = self.held - self.pending.len() as u64;
            match Writer::spawn(&self.file, hasher, start) {
                Ok(w) => self.writer = Some(w),
                Err(e) => {
                    // The hashes went with the thread that did not start: what is held cannot
                    // be checked any more, so it is dropped.
                    self.restart()?;
                    return Err(e);
                }
            }
        }
        let next = self
            .writer
            .as_ref()
            .and_then(|w| w.spare.try_recv().ok())
            .unwrap_or_else(|| Vec::with_capacity(CHUNK));
        let chunk = std::mem::replace(&mut self.pending, next);
        if self.writer.as_ref().is_some_and(|w| w.send(chunk)) {
            Ok(())
        } else {
            // The writer stopped on an error; `settle` reports it.
            self.settle()
                .and(Err(io::Error::other("the target writer stopped")))
        }
    }

    /// Write out every byte taken, wait for the writer and take its hashes back. On a write
    /// error the file and `held` are cut back to the bytes written and hashed, and the error
    /// is returned.
    fn settle(&mut self) -> io::Result<()> {
        let pending = std::mem::take(&mut self.pending);
        let start = self.held - pending.len() as u64;
        let (start, written) = match self.writer.take() {
            Some(writer) => {
                if !pending.is_empty() {
                    // If the writer has stopped, its error says why.
                    let _ = writer.send(pending);
                }
                (writer.start, writer.finish()?)
            }
            // Nothing handed over yet (a small file): no thread for it.
            None => {
                let mut hasher = self.hasher.take().ok_or_else(writer_running)?;
                let error = self.file.write_all(&pending).err();
                if error.is_none() {
                    hasher.update(&pending);
                }
                let bytes = if error.is_none() {
                    pending.len() as u64
                } else {
                    0
                };
                (
                    start,
                    Written {
                        hasher,
                        bytes,
                        error,
                    },
                )
            }
        };
        self.hasher = Some(written.hasher);
        let end = start + written.bytes;
        self.held = end;
        match written.error {
            None => Ok(()),
            Some(e) => {
                use std::io::Seek;
                let f = self.file.as_file_mut();
                f.set_len(end)?;
                f.seek(io::SeekFrom::Start(end))?;
                Err(e)
            }
        }
    }
}

/// A hash is asked for while the writer thread holds it: a bug, reported as an error.
fn writer_running() -> io::Error {
    io::Error::other("the target's hashes are with its writer thread")
}

impl Write for Partial<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.pending.capacity() == 0 {
            self.pending.reserve_exact(CHUNK);
        }
        let room = CHUNK.saturating_sub(self.pending.len());
        let n = room.min(buf.len());
        self.pending
            .extend_from_slice(buf.get(..n).unwrap_or_default());
        self.held += n as u64;
        if self.pending.len() >= CHUNK {
            self.hand_over()?;
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.settle()?;
        self.file.flush()
    }
}

impl airlock_fetch::Resumable for Partial<'_> {
    fn restart(&mut self) -> io::Result<()> {
        // What the writer holds is dropped with the rest; so is its error, if it had one.
        let _ = self.settle();
        self.pending.clear();
        self.file.truncate().map_err(|e| e.source)?;
        self.hasher = Some(MultiHasher::new(&self.info.hashes).map_err(io::Error::other)?);
        self.held = 0;
        Ok(())
    }
}
