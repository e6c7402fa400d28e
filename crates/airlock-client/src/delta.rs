//! Delta delivery of a target: when a local file is proven to be the base of a patch the
//! target's signed metadata lists, download the (verified) patch, apply it, verify the result
//! against the target's own length and hashes, and put it in place atomically. Which patch to
//! try and what to do when it fails is decided by `airlock_core::delta`; this module moves the
//! bytes.
//!
//! Nothing a patch produces is trusted: a patch is downloaded like a target (length and hashes
//! listed in the signed `delta` field, every mirror tried), the local base is read once into
//! memory and checked against the signed base hashes there (so the bytes patched are the bytes
//! checked), and the output is checked like a full download before it takes the destination's
//! name. Any failure leaves the destination as it was.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use airlock_core::delta::{self, Fallback, Patch};
use airlock_core::tuf::{MultiHasher, TargetFile};
use airlock_fetch::{Progress, Resumable};

use crate::error::UpdateError;
use crate::target::{Partial, TargetFileError};
use crate::updater::{TargetInfo, Updater};

/// How a target reached its destination.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Delivery {
    /// `delta` (a patch applied to `base`) or `full`.
    pub method: DeliveryMethod,
    /// Bytes of target or patch moved over the network for this target (the listed lengths).
    pub bytes_moved: u64,
    /// The target's length less `bytes_moved` (0 for a full download).
    pub bytes_saved: u64,
    /// Patch path and local base used, for `delta`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patch: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base: Option<PathBuf>,
    /// Why a delta that was tried or considered was not used (then `method` is `full`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub delta_skipped: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryMethod {
    Delta,
    Full,
}

/// Why one patch could not be used.
#[derive(Debug, thiserror::Error)]
pub enum DeltaError {
    #[error("local file {path} is not the base of patch {patch}: {reason}")]
    BaseMismatch {
        path: PathBuf,
        patch: String,
        reason: String,
    },
    #[error("patch {patch} changed on disk after its download ({path}): {reason}")]
    PatchChanged {
        path: PathBuf,
        patch: String,
        reason: String,
    },
    #[error("downloading patch {patch}")]
    Download {
        patch: String,
        #[source]
        source: Box<UpdateError>,
    },
    #[error("applying patch {patch}: {reason}")]
    Apply { patch: String, reason: String },
    #[error("the output of patch {patch}")]
    Result {
        patch: String,
        #[source]
        source: TargetFileError,
    },
    #[error("{path}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl Updater {
    /// Deliver `info` to `dest`: by a patch when a local file (the file at `dest`, then the
    /// configured `delta_bases`) is the base of one the metadata lists, otherwise (or when the
    /// patch fails) by [`Updater::download_target_with_progress`]. A metered client stops
    /// with [`UpdateError::DeltaStopped`] instead of falling back, leaving `dest` unchanged.
    pub fn deliver_target(
        &self,
        info: &TargetInfo,
        dest: &Path,
        progress: Progress<'_>,
    ) -> Result<Delivery, UpdateError> {
        // Whichever way the bytes come, the target must be attested first.
        self.check_rebuilds(info)?;
        let policy = &self.config().delta;
        let mut skipped = Vec::new();
        let patches = delta::patches(info.file.custom.as_deref()).unwrap_or_else(|e| {
            skipped.push(format!("target {:?}: {e}", info.path));
            Vec::new()
        });
        let locals: Vec<PathBuf> = std::iter::once(dest.to_path_buf())
            .chain(self.config().delta_bases.iter().cloned())
            .collect();
        // A missing file has no length any base can have.
        let lengths: Vec<u64> = locals
            .iter()
            .map(|p| {
                std::fs::metadata(p)
                    .ok()
                    .filter(|m| m.is_file())
                    .map_or(u64::MAX, |m| m.len())
            })
            .collect();
        let mut planned = false;
        for (pi, li) in delta::candidates(&patches, info.file.length, &lengths, policy) {
            let (Some(patch), Some(local)) = (patches.get(pi), locals.get(li)) else {
                continue;
            };
            let base = match read_base(local, patch) {
                Ok(b) => b,
                Err(e) => {
                    tracing::info!("{}", airlock_core::error_chain(&e));
                    skipped.push(airlock_core::error_chain(&e));
                    continue;
                }
            };
            planned = true;
            match self.apply_patch(info, dest, patch, &base, &mut *progress) {
                Ok(()) => {
                    return Ok(Delivery {
                        method: DeliveryMethod::Delta,
                        bytes_moved: patch.file.length,
                        bytes_saved: info.file.length.saturating_sub(patch.file.length),
                        patch: Some(patch.path.clone()),
                        base: Some(local.clone()),
                        delta_skipped: skipped,
                    });
                }
                Err(e) => {
                    tracing::warn!(
                        "delta update of {:?}: {}",
                        info.path,
                        airlock_core::error_chain(&e)
                    );
                    skipped.push(airlock_core::error_chain(&e));
                }
            }
        }
        if planned && delta::after_failure(policy) == Fallback::Stop {
            return Err(UpdateError::DeltaStopped {
                target: info.path.clone(),
                length: info.file.length,
                reasons: skipped,
            });
        }
        self.download_unchecked(info, dest, progress)?;
        Ok(Delivery {
            method: DeliveryMethod::Full,
            bytes_moved: info.file.length,
            bytes_saved: 0,
            patch: None,
            base: None,
            delta_skipped: skipped,
        })
    }

    /// Download `patch` beside `dest`, apply it to `base`, check the output as the target and
    /// commit it to `dest`. The patch file is removed afterwards, whatever happened.
    fn apply_patch(
        &self,
        info: &TargetInfo,
        dest: &Path,
        patch: &Patch,
        base: &[u8],
        progress: Progress<'_>,
    ) -> Result<(), DeltaError> {
        let patch_info = patch_target(info, patch);
        let name = dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tag: String = patch
            .file
            .hashes
            .values()
            .next()
            .map(|h| h.chars().take(16).collect())
            .unwrap_or_default();
        let patch_dest = dest.with_file_name(format!(".{name}.{tag}.patch"));
        let result = self
            .download_unchecked(&patch_info, &patch_dest, progress)
            .map_err(|source| DeltaError::Download {
                patch: patch.path.clone(),
                source: Box::new(source),
            })
            .and_then(|()| {
                // Checked again as read: the bytes applied are the bytes checked.
                read_verified(&patch_dest, &patch_info.file, |reason| {
                    DeltaError::PatchChanged {
                        path: patch_dest.clone(),
                        patch: patch.path.clone(),
                        reason,
                    }
                })
            })
            .and_then(|bytes| patch_into(info, dest, patch, base, &bytes));
        let _ = std::fs::remove_file(&patch_dest);
        result
    }
}

/// The patch as a target the ordinary download path can fetch (mirrors, hash-prefixed names,
/// resume, length cap, hash check).
pub(crate) fn patch_target(info: &TargetInfo, patch: &Patch) -> TargetInfo {
    TargetInfo {
        path: patch.path.clone(),
        file: TargetFile {
            length: patch.file.length,
            hashes: patch.file.hashes.clone(),
            custom: None,
            unrecognized: Default::default(),
        },
        role: info.role.clone(),
    }
}

/// The patches a target lists, as targets (for mirrors, which carry them like targets).
pub fn patch_targets(info: &TargetInfo) -> Vec<TargetInfo> {
    delta::patches(info.file.custom.as_deref())
        .unwrap_or_default()
        .iter()
        .map(|p| patch_target(info, p))
        .collect()
}

/// Read `path` (at most `file.length` bytes) and check it against `file` in memory.
fn read_verified(
    path: &Path,
    file: &TargetFile,
    mismatch: impl Fn(String) -> DeltaError,
) -> Result<Vec<u8>, DeltaError> {
    let io_err = |source| DeltaError::Io {
        path: path.to_path_buf(),
        source,
    };
    let f = std::fs::File::open(path).map_err(io_err)?;
    let cap = usize::try_from(file.length).unwrap_or(usize::MAX);
    let mut bytes = Vec::with_capacity(cap.min(1 << 30));
    f.take(file.length.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(io_err)?;
    if bytes.len() as u64 != file.length {
        return Err(mismatch(format!(
            "{} bytes, {} listed",
            bytes.len(),
            file.length
        )));
    }
    let mut hasher = MultiHasher::new(&file.hashes).map_err(|e| mismatch(e.to_string()))?;
    hasher.update(&bytes);
    hasher.finish().map_err(|e| mismatch(e.to_string()))?;
    Ok(bytes)
}

/// The local file, read once into memory and proven to be the patch's signed base.
fn read_base(local: &Path, patch: &Patch) -> Result<Vec<u8>, DeltaError> {
    let base = TargetFile {
        length: patch.base.length,
        hashes: patch.base.hashes.clone(),
        custom: None,
        unrecognized: Default::default(),
    };
    read_verified(local, &base, |reason| DeltaError::BaseMismatch {
        path: local.to_path_buf(),
        patch: patch.path.clone(),
        reason,
    })
}

/// Apply `patch_bytes` to `base`, streaming the output into the target's partial file (length
/// capped), check it as the target and commit it.
fn patch_into(
    info: &TargetInfo,
    dest: &Path,
    patch: &Patch,
    base: &[u8],
    patch_bytes: &[u8],
) -> Result<(), DeltaError> {
    let apply_err = |reason: String| DeltaError::Apply {
        patch: patch.path.clone(),
        reason,
    };
    let result_err = |source| DeltaError::Result {
        patch: patch.path.clone(),
        source,
    };
    check_bsdiff_header(patch_bytes, info.file.length).map_err(apply_err)?;
    let mut partial = Partial::open(dest, &info.file).map_err(result_err)?;
    partial.restart().map_err(|source| DeltaError::Io {
        path: dest.to_path_buf(),
        source,
    })?;
    let mut out = Capped {
        inner: &mut partial,
        left: info.file.length,
    };
    // The patch passed its signed hashes, so a panic would be a bug of the patcher on odd
    // input; it must cost a fallback, not the process.
    let applied = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        qbsdiff::Bspatch::new(patch_bytes).and_then(|p| p.apply(base, &mut out))
    }));
    let failed = match applied {
        Ok(Ok(_)) => None,
        Ok(Err(e)) => Some(e.to_string()),
        Err(_) => Some("the patcher panicked".to_string()),
    };
    let checked = match failed {
        Some(reason) => Err(apply_err(reason)),
        None => partial
            .check(&dest.display().to_string())
            .map_err(result_err),
    };
    match checked {
        Ok(()) => partial.commit().map_err(result_err),
        Err(e) => {
            partial.discard();
            Err(e)
        }
    }
}

/// The BSDIFF40 header: the three block lengths must be non-negative and fit the patch, and
/// the output length must be the target's, before the patcher sees it.
fn check_bsdiff_header(patch: &[u8], target_length: u64) -> Result<(), String> {
    let field = |at: usize| -> Result<u64, String> {
        let b: [u8; 8] = patch
            .get(at..at + 8)
            .and_then(|s| s.try_into().ok())
            .ok_or("shorter than a bsdiff header")?;
        // bsdiff's sign-magnitude integers: a set top bit is negative.
        if b[7] & 0x80 != 0 {
            return Err("a negative length in the bsdiff header".into());
        }
        Ok(u64::from_le_bytes(b))
    };
    if patch.get(..8) != Some(b"BSDIFF40".as_slice()) {
        return Err("not a bsdiff 4 patch (no BSDIFF40 header)".into());
    }
    let (ctrl, diff, out) = (field(8)?, field(16)?, field(24)?);
    if ctrl
        .checked_add(diff)
        .and_then(|n| n.checked_add(32))
        .is_none_or(|n| n > patch.len() as u64)
    {
        return Err("the bsdiff header's block lengths exceed the patch".into());
    }
    if out != target_length {
        return Err(format!(
            "the patch makes {out} bytes, the target is {target_length}"
        ));
    }
    Ok(())
}

/// A writer that refuses to go past the target's length.
struct Capped<'a, W: Write> {
    inner: &'a mut W,
    left: u64,
}

impl<W: Write> Write for Capped<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.len() as u64 > self.left {
            return Err(io::Error::other("output longer than the target"));
        }
        let n = self.inner.write(buf)?;
        self.left -= n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
