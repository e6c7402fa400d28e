//! Delta updates, publisher side: patches from earlier versions of a target to the new one,
//! listed in the new target's custom `delta` field (format: `airlock_core::delta`,
//! docs/publishing.md) and published beside the targets.
//!
//! The earlier versions ("bases") of a target being added are, in order:
//! - with `--deltas N`, the version of the same target path staged now, then the bases its own
//!   `delta` field lists (the versions before it), N in all;
//! - with `--delta-from TARGET`, the version of TARGET staged now (for versioned paths such as
//!   `app/1.1/app.bin` following `app/1.0/app.bin`).
//!
//! A base's bytes are read from `published/targets` (hash-prefixed name under the path it was
//! listed at) or, when it was added and not yet published, from its source file; they are
//! checked against the staged length and SHA-256 first. A base that cannot be found is
//! skipped (reported), never guessed.
//!
//! Patches are bsdiff 4 (qbsdiff, pure Rust), chosen over `zstd --patch-from` by the
//! measurement in docs/benchmarks.md ("Delta updates").

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::Path;

use airlock_core::delta::{FORMAT_BSDIFF4, FileRef, Patch};
use airlock_core::tuf::roles::TargetFile;
use sha2::{Digest, Sha256};

use crate::error::RepoError;
use crate::fsutil::io_err;
use crate::repo::Repository;
use crate::targets::hashed_target_path;

/// Where patches wait for `publish` (like the source files of pending targets).
pub(crate) const PATCH_STAGING: &str = "patches";

/// A bsdiff 4 patch that turns `old` into `new`. bzip2 at its best level: a patch is made
/// once and downloaded by every client.
pub fn make_patch(old: &[u8], new: &[u8]) -> Result<Vec<u8>, RepoError> {
    let mut out = Vec::new();
    qbsdiff::Bsdiff::new(old, new)
        .compression_level(9)
        .compare(&mut out)
        .map_err(|e| RepoError::invalid(format!("computing a bsdiff patch: {e}")))?;
    Ok(out)
}

/// A base found for a new target: where it was listed and what it is.
#[derive(Clone, Debug)]
pub(crate) struct Base {
    /// The target path it was listed at.
    pub path: String,
    pub file: FileRef,
}

/// What came of one base.
#[derive(Clone, Debug, serde::Serialize)]
pub struct PatchReport {
    pub target: String,
    /// SHA-256 of the base.
    pub base: String,
    /// Patch length, or none when it was not made (see `skipped`).
    pub length: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
}

fn sha256_of(f: &FileRef) -> Option<&String> {
    f.hashes.get("sha256")
}

fn file_ref(tf: &TargetFile) -> FileRef {
    FileRef {
        length: tf.length,
        hashes: tf.hashes.clone(),
    }
}

impl Repository {
    /// The staged entry of `target`, in whichever role lists it.
    fn staged(&self, target: &str) -> Option<&TargetFile> {
        let role = self.role_for_target(target);
        self.targets
            .get(&role)
            .and_then(|m| m.signed.targets.get(target))
            .or_else(|| {
                self.targets
                    .values()
                    .find_map(|m| m.signed.targets.get(target))
            })
    }

    /// The bases for a new version of `target`: `deltas` earlier versions of the same path,
    /// then the staged version of each `delta_from` path (duplicates dropped).
    pub(crate) fn delta_bases(
        &self,
        target: &str,
        deltas: usize,
        delta_from: &[String],
    ) -> Vec<Base> {
        let mut out: Vec<Base> = Vec::new();
        let mut push = |b: Base| {
            if !out.iter().any(|o| sha256_of(&o.file) == sha256_of(&b.file)) {
                out.push(b);
            }
        };
        if deltas > 0
            && let Some(tf) = self.staged(target)
        {
            let mut same = vec![Base {
                path: target.to_string(),
                file: file_ref(tf),
            }];
            for p in airlock_core::delta::patches(tf.custom.as_deref()).unwrap_or_default() {
                same.push(Base {
                    path: target.to_string(),
                    file: p.base,
                });
            }
            same.into_iter().take(deltas).for_each(&mut push);
        }
        for from in delta_from {
            if let Some(tf) = self.staged(from) {
                push(Base {
                    path: from.clone(),
                    file: file_ref(tf),
                });
            }
        }
        out
    }

    /// The bytes of `base`: its published file or its pending source, checked.
    fn base_bytes(&self, base: &Base) -> Result<Vec<u8>, String> {
        let sha = sha256_of(&base.file).ok_or("the base has no sha256 hash")?;
        let mut places = vec![
            self.dir
                .join("published")
                .join("targets")
                .join(hashed_target_path(&base.path, sha)),
        ];
        if let Some(src) = self.pending.get(&base.path) {
            places.push(src.clone());
        }
        for place in &places {
            let Ok(bytes) = fs::read(place) else {
                continue;
            };
            if bytes.len() as u64 == base.file.length && hex::encode(Sha256::digest(&bytes)) == *sha
            {
                return Ok(bytes);
            }
        }
        Err(format!(
            "no file with its bytes in published/targets or among the pending targets (looked at {})",
            places
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ))
    }

    /// Make the patches from `bases` to the new file `new` of `target`, stage them for publish
    /// and return their `delta` entries (patches not smaller than the target are dropped:
    /// the full download is cheaper).
    pub(crate) fn make_patches(
        &mut self,
        target: &str,
        new: &Path,
        new_sha: &str,
        bases: &[Base],
        report: &mut Vec<PatchReport>,
    ) -> Result<Vec<Patch>, RepoError> {
        let mut out = Vec::new();
        if bases.is_empty() {
            return Ok(out);
        }
        let new_bytes = fs::read(new).map_err(|e| io_err(new, e))?;
        let staging = self.dir.join(PATCH_STAGING);
        for base in bases {
            let base_sha = sha256_of(&base.file).cloned().unwrap_or_default();
            let mut note = |length: Option<u64>, skipped: Option<String>| {
                report.push(PatchReport {
                    target: target.to_string(),
                    base: base_sha.clone(),
                    length,
                    skipped,
                })
            };
            if base_sha == new_sha {
                continue;
            }
            let old = match self.base_bytes(base) {
                Ok(b) => b,
                Err(why) => {
                    tracing::warn!("no patch of {target} from {}: {why}", base.path);
                    note(None, Some(why));
                    continue;
                }
            };
            let patch = make_patch(&old, &new_bytes)?;
            if patch.len() as u64 >= new_bytes.len() as u64 {
                note(
                    Some(patch.len() as u64),
                    Some("not smaller than the target".into()),
                );
                continue;
            }
            let sha = hex::encode(Sha256::digest(&patch));
            fs::create_dir_all(&staging).map_err(|e| io_err(&staging, e))?;
            let file = staging.join(format!("{sha}.bsdiff"));
            let mut tmp =
                airlock_fs::AtomicFile::create(&file, &airlock_fs::WriteOptions::public())?;
            tmp.write_all(&patch).map_err(|e| io_err(&file, e))?;
            tmp.commit()?;
            let path = airlock_core::delta::patch_path(target, &base_sha);
            crate::targets::check_target_path(&path)?;
            self.pending.insert(path.clone(), file);
            note(Some(patch.len() as u64), None);
            out.push(Patch {
                format: FORMAT_BSDIFF4.to_string(),
                path,
                file: FileRef {
                    length: patch.len() as u64,
                    hashes: airlock_core::tuf::Hashes::from([("sha256".to_string(), sha)]),
                },
                base: base.file.clone(),
            });
        }
        Ok(out)
    }

    /// The length and hashes of a pending patch file, from the staged `delta` field that lists
    /// it (so `publish` copies and checks it like a target).
    pub(crate) fn staged_patch(&self, path: &str) -> Option<TargetFile> {
        self.targets.values().find_map(|m| {
            m.signed.targets.values().find_map(|tf| {
                airlock_core::delta::patches(tf.custom.as_deref())
                    .unwrap_or_default()
                    .into_iter()
                    .find(|p| p.path == path)
                    .map(|p| TargetFile {
                        length: p.file.length,
                        hashes: p.file.hashes,
                        custom: None,
                        unrecognized: BTreeMap::new(),
                    })
            })
        })
    }
}
