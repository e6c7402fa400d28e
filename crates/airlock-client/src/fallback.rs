//! Transports other than the HTTPS mirrors (a BitTorrent swarm, built outside this crate so that
//! the updater links no server or peer-to-peer code), asked for a target when no mirror
//! delivered it.
//!
//! A source is as untrusted as a mirror: what it writes goes into the same partial file as an
//! HTTPS download, capped at the trusted length, and is checked against the trusted length and
//! every listed hash before it takes the destination's name. Bytes that do not verify are
//! dropped.

use std::io::{self, Write};
use std::sync::Arc;

use airlock_fetch::{Progress, Resumable};

use crate::error::UpdateError;
use crate::target::{Partial, TargetFileError};
use crate::updater::TargetInfo;

/// Why a source could not deliver a target (its own error type, boxed).
pub type SourceError = Box<dyn std::error::Error + Send + Sync>;

/// A place other than the HTTPS mirrors that may hold a target's bytes.
pub trait TargetSource: std::fmt::Debug + Send + Sync {
    /// How reports name this source, e.g. `bittorrent swarm`.
    fn name(&self) -> String;

    /// Called before the HTTPS mirrors are asked: a source configured to run in parallel
    /// starts fetching here, so that its bytes are ready if every mirror fails. The default
    /// does nothing.
    fn prefetch(&self, _info: &TargetInfo) {}

    /// Write the whole target, from its first byte, to `out` (`Ok(false)`: this source has no
    /// way to reach it, e.g. no info hash is listed for it). `out` refuses bytes past the
    /// trusted length; what was written is checked by the caller.
    fn fetch(
        &self,
        info: &TargetInfo,
        out: &mut dyn Write,
        progress: Progress<'_>,
    ) -> Result<bool, SourceError>;
}

/// Ask the configured sources to start, where they run in parallel with the mirrors.
pub(crate) fn prefetch(sources: &[Arc<dyn TargetSource>], info: &TargetInfo) {
    for s in sources {
        s.prefetch(info);
    }
}

/// Ask each source in turn for the target, into `partial`. `Ok(true)`: `partial` holds the
/// checked target, ready to be committed. A source's failure is added to `failed`.
pub(crate) fn fetch(
    sources: &[Arc<dyn TargetSource>],
    info: &TargetInfo,
    partial: &mut Partial<'_>,
    progress: Progress<'_>,
    failed: &mut Vec<(String, UpdateError)>,
) -> Result<bool, UpdateError> {
    let target_err = |source| UpdateError::Target {
        target: info.path.clone(),
        source,
    };
    for s in sources {
        let name = s.name();
        let io_err = |source| TargetFileError::Io {
            path: name.clone(),
            source,
        };
        // A source delivers the file from its first byte.
        partial.restart().map_err(io_err).map_err(target_err)?;
        let mut out = Capped {
            inner: &mut *partial,
            left: info.file.length,
        };
        match s.fetch(info, &mut out, &mut *progress) {
            Ok(false) => continue,
            Ok(true) => match partial.check(&name) {
                Ok(()) => return Ok(true),
                Err(e) => {
                    tracing::info!("{name}: {}", airlock_core::error_chain(&e));
                    failed.push((name, target_err(e)));
                }
            },
            Err(source) => {
                // What arrived was not checked as a whole: it is not kept.
                partial.restart().map_err(io_err).map_err(target_err)?;
                let e = target_err(TargetFileError::Source {
                    name: name.clone(),
                    source,
                });
                tracing::info!("{name}: {}", airlock_core::error_chain(&e));
                failed.push((name, e));
            }
        }
    }
    Ok(false)
}

/// A writer that refuses bytes past the trusted length, whatever the source believes the file
/// to be.
struct Capped<'a, 'b> {
    inner: &'a mut Partial<'b>,
    left: u64,
}

impl Write for Capped<'_, '_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.len() as u64 > self.left {
            return Err(io::Error::other(
                "the source sent more bytes than the trusted length",
            ));
        }
        let n = self.inner.write(buf)?;
        self.left -= n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
