//! `airlock rebuild publish`: place verified attestations into a repository's published tree at
//! the layout of docs/rebuild.md, so every web server and mirror serving the tree serves them.
//!
//! Every file is verified before any is written (one bad file publishes nothing): strictly, as
//! a client will, by a key the caller trusts, and it is filed under the key id of the key whose
//! signature verified, never under a key id the envelope merely names. Each file is written
//! whole through airlock-fs (a temporary, fsync, rename), 0644 in 0755 directories.
//!
//! An attestation's proof bundle (`<file>.tlog-proof`, written by `airlock rebuild` when it
//! logged it) is published beside it. When the published root has a transparency policy, every
//! attestation must come with a bundle that shows it in that policy's log, checked offline as a
//! client that knows nothing of the log would: without one no client counts it.

use std::path::{Path, PathBuf};

use airlock_core::crypto::PublicKey;
use airlock_core::rebuild::layout::attestation_path;
use airlock_core::rebuild::{AttestationError, Envelope, verify_attestation};
use airlock_core::tlog::VerifierState;
use airlock_core::transparency::{
    PROOF_SUFFIX, ReleaseCheck, ReleaseError, ReleaseStep, TransparencyError, TransparencyPolicy,
};
use airlock_fs::{FsError, WriteOptions, write_atomic};

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("{}: not signed by any of the {known} rebuilder key(s) given{}", file.display(),
        if signers.is_empty() { String::new() } else { format!(" (signed by {})", signers.join(", ")) })]
    UnknownSigner {
        file: PathBuf,
        known: usize,
        signers: Vec<String>,
    },
    #[error("{}: refused by key {keyid}", file.display())]
    Refused {
        file: PathBuf,
        keyid: String,
        #[source]
        source: Box<AttestationError>,
    },
    #[error("{}: not an attestation envelope", file.display())]
    Envelope {
        file: PathBuf,
        #[source]
        source: Box<AttestationError>,
    },
    #[error("{}: refused under the published root's transparency policy (log {log})", file.display())]
    NotLogged {
        file: PathBuf,
        log: String,
        #[source]
        source: Box<ReleaseError>,
    },
    #[error("{}: no log statement can be made for it", file.display())]
    Statement {
        file: PathBuf,
        #[source]
        source: Box<TransparencyError>,
    },
    #[error("{}: digest or key id is not a safe file name", file.display())]
    Name { file: PathBuf },
    #[error("publishing attestations")]
    Fs(#[source] FsError),
}

/// One attestation placed into the tree.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PlacedAttestation {
    pub target: String,
    pub sha256: String,
    pub keyid: String,
    pub rebuilder: String,
    /// Where it was written.
    pub path: PathBuf,
    /// Where its proof bundle was written, if it came with one.
    pub proof: Option<PathBuf>,
}

/// One attestation to publish: its file name (for messages), its bytes and its proof bundle.
#[derive(Debug, Clone)]
pub struct AttestationFile {
    pub file: PathBuf,
    pub envelope: Vec<u8>,
    pub proof: Option<Vec<u8>>,
}

/// `path` with [`PROOF_SUFFIX`] appended.
pub fn proof_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(PROOF_SUFFIX);
    PathBuf::from(p)
}

/// Verify every file against `keys` (and, with the published root's `transparency` policy, its
/// proof bundle at POSIX time `now`) and write them under `published` (the directory holding
/// `metadata/` and `targets/`).
pub fn publish_attestations(
    published: &Path,
    files: &[AttestationFile],
    keys: &[PublicKey],
    transparency: Option<&TransparencyPolicy>,
    now: u64,
) -> Result<Vec<PlacedAttestation>, PublishError> {
    let mut placed = Vec::new();
    let mut writes: Vec<(PathBuf, &[u8])> = Vec::new();
    for AttestationFile {
        file,
        envelope: bytes,
        proof,
    } in files
    {
        let env = Envelope::parse(bytes).map_err(|source| PublishError::Envelope {
            file: file.clone(),
            source: Box::new(source),
        })?;
        let mut signed_by_known = false;
        for sig in &env.signatures {
            let Some(key) = keys.iter().find(|k| k.key_id() == sig.keyid) else {
                continue;
            };
            signed_by_known = true;
            let st = verify_attestation(bytes, key).map_err(|source| PublishError::Refused {
                file: file.clone(),
                keyid: sig.keyid.clone(),
                source: Box::new(source),
            })?;
            let rel = attestation_path(&st.target, &st.sha256, &sig.keyid)
                .ok_or_else(|| PublishError::Name { file: file.clone() })?;
            let path: PathBuf = rel.iter().fold(published.to_path_buf(), |p, s| p.join(s));
            if let Some(policy) = transparency {
                check_logged(
                    policy,
                    file,
                    &sig.keyid,
                    &st.sha256,
                    bytes,
                    proof.as_deref(),
                    now,
                )?;
            }
            // The bundle first: a client that finds the attestation finds its bundle.
            let proof_at = proof.as_ref().map(|p| {
                writes.push((proof_path(&path), p.as_slice()));
                proof_path(&path)
            });
            writes.push((path.clone(), bytes));
            placed.push(PlacedAttestation {
                target: st.target,
                sha256: st.sha256,
                keyid: sig.keyid.clone(),
                rebuilder: st.rebuilder,
                path,
                proof: proof_at,
            });
        }
        if !signed_by_known {
            return Err(PublishError::UnknownSigner {
                file: file.clone(),
                known: keys.len(),
                signers: env.signatures.iter().map(|s| s.keyid.clone()).collect(),
            });
        }
    }
    for (path, bytes) in writes {
        airlock_fs::generations::create_public_dir_all(airlock_fs::parent_dir(&path))
            .map_err(PublishError::Fs)?;
        write_atomic(&path, bytes, &WriteOptions::public()).map_err(PublishError::Fs)?;
    }
    Ok(placed)
}

/// The client's check of an attestation's bundle, against an empty log state.
fn check_logged(
    policy: &TransparencyPolicy,
    file: &Path,
    keyid: &str,
    sha256: &str,
    envelope: &[u8],
    proof: Option<&[u8]>,
    now: u64,
) -> Result<(), PublishError> {
    let check = ReleaseCheck::attestation(policy, keyid, sha256, envelope).map_err(|source| {
        PublishError::Statement {
            file: file.to_path_buf(),
            source: Box::new(source),
        }
    })?;
    let refused = |source: ReleaseError| PublishError::NotLogged {
        file: file.to_path_buf(),
        log: policy.log_origin().to_string(),
        source: Box::new(source),
    };
    match check.verify(&VerifierState::new(), proof, None, now) {
        Ok(ReleaseStep::Accepted(_)) => Ok(()),
        // An empty state never asks for a consistency proof.
        Ok(ReleaseStep::NeedConsistency { .. }) => Err(refused(ReleaseError::MissingProof {
            subject: check.subject().to_string(),
        })),
        Err(e) => Err(refused(e)),
    }
}
