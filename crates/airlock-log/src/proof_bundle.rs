//! Offline verification of a tlog-proof bundle for an entry, with a k-of-n witness quorum, on
//! top of airlock-core's [`ProofBundle`]. (For tlog-policy files and a persisted client state
//! that also demands consistency with the last accepted checkpoint, use
//! `airlock_core::tlog::LogVerifier`; `airlock log verify-proof --policy` does.)

use airlock_core::tlog::{Hash, NoteVerifier, ProofBundle, leaf_hash};

/// Why a proof bundle was refused.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error(transparent)]
    Proof(#[from] airlock_core::tlog::ProofError),
    #[error("tlog-proof: cosigned by {got} of the given witnesses, {want} required")]
    Quorum { got: usize, want: usize },
}

/// A bundle that verified.
#[derive(Debug, Clone)]
pub struct VerifiedEntry {
    pub index: u64,
    pub size: u64,
    pub root: Hash,
    /// Names of the witnesses whose cosignatures verified.
    pub cosigned_by: Vec<String>,
}

/// Verifies that `entry` is in the log whose checkpoint key is `log_key`, at the index the
/// bundle names, under a checkpoint cosigned by at least `quorum` of `witnesses`. Offline.
pub fn verify_bundle(
    bundle: &[u8],
    entry: &[u8],
    log_key: &NoteVerifier,
    witnesses: &[NoteVerifier],
    quorum: usize,
) -> Result<VerifiedEntry, BundleError> {
    let bundle = ProofBundle::parse(bundle)?;
    let opened = bundle.verify(&leaf_hash(entry), log_key, witnesses)?;
    let mut names: Vec<String> = opened
        .cosignatures
        .iter()
        .filter_map(|(i, _)| witnesses.get(*i).map(|w| w.name().to_string()))
        .collect();
    names.sort();
    names.dedup();
    if names.len() < quorum {
        return Err(BundleError::Quorum {
            got: names.len(),
            want: quorum,
        });
    }
    Ok(VerifiedEntry {
        index: bundle.index,
        size: opened.checkpoint.size,
        root: opened.checkpoint.root_hash,
        cosigned_by: names,
    })
}
