//! `airlock rebuild publish`: place verified attestations into a repository's published tree at
//! the layout of docs/rebuild.md, so every web server and mirror serving the tree serves them.
//!
//! Every file is verified before any is written (one bad file publishes nothing): strictly, as
//! a client will, by a key the caller trusts, and it is filed under the key id of the key whose
//! signature verified, never under a key id the envelope merely names. Each file is written
//! whole through airlock-fs (a temporary, fsync, rename), 0644 in 0755 directories.

use std::path::{Path, PathBuf};

use airlock_core::crypto::PublicKey;
use airlock_core::rebuild::layout::attestation_path;
use airlock_core::rebuild::{AttestationError, Envelope, verify_attestation};
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
}

/// Verify every `(file name, bytes)` against `keys` and write them under `published` (the
/// directory holding `metadata/` and `targets/`).
pub fn publish_attestations(
    published: &Path,
    files: &[(PathBuf, Vec<u8>)],
    keys: &[PublicKey],
) -> Result<Vec<PlacedAttestation>, PublishError> {
    let mut placed = Vec::new();
    let mut writes: Vec<(PathBuf, &[u8])> = Vec::new();
    for (file, bytes) in files {
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
            writes.push((path.clone(), bytes));
            placed.push(PlacedAttestation {
                target: st.target,
                sha256: st.sha256,
                keyid: sig.keyid.clone(),
                rebuilder: st.rebuilder,
                path,
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
