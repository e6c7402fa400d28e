//! Offline verification of a tlog-proof bundle for an entry, with a k-of-n witness quorum.
//!
//! Bridge until airlock-core's `tlog::proof::ProofBundle` lands in main: the bundle is encoded
//! and parsed here (c2sp.org/tlog-proof@v1, no extra data).
// TODO(logsrv): replace encode/parse with airlock_core::tlog::ProofBundle once merged.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use airlock_core::tlog::{Hash, NoteVerifier, leaf_hash, open_checkpoint, verify_inclusion};

/// Why a proof bundle was refused.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("tlog-proof: malformed: {0}")]
    Malformed(&'static str),
    #[error("tlog-proof: checkpoint: {0}")]
    Checkpoint(String),
    #[error("tlog-proof: entry {index} is not in the checkpoint's tree of size {size}: {reason}")]
    Inclusion {
        index: u64,
        size: u64,
        reason: String,
    },
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

pub(crate) fn encode_bundle(index: u64, proof: &[Hash], checkpoint: &[u8]) -> Vec<u8> {
    let mut s = format!("c2sp.org/tlog-proof@v1\nindex {index}\n");
    for h in proof {
        s.push_str(&STANDARD.encode(h));
        s.push('\n');
    }
    s.push('\n');
    let mut out = s.into_bytes();
    out.extend_from_slice(checkpoint);
    out
}

fn parse_bundle(bytes: &[u8]) -> Result<(u64, Vec<Hash>, &[u8]), BundleError> {
    let mut rest = bytes;
    let mut line = || -> Result<&str, BundleError> {
        let pos = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or(BundleError::Malformed("unterminated line"))?;
        let l =
            std::str::from_utf8(&rest[..pos]).map_err(|_| BundleError::Malformed("not UTF-8"))?;
        rest = &rest[pos + 1..];
        Ok(l)
    };
    if line()? != "c2sp.org/tlog-proof@v1" {
        return Err(BundleError::Malformed(
            "first line is not c2sp.org/tlog-proof@v1",
        ));
    }
    let mut l = line()?;
    if l.starts_with("extra ") {
        l = line()?;
    }
    let idx = l
        .strip_prefix("index ")
        .filter(|s| *s == "0" || !s.starts_with('0'))
        .and_then(|s| s.parse::<u64>().ok())
        .ok_or(BundleError::Malformed("no canonical 'index <n>' line"))?;
    let mut proof = Vec::new();
    loop {
        let l = line()?;
        if l.is_empty() {
            break;
        }
        if proof.len() == 64 {
            return Err(BundleError::Malformed("more than 64 proof hashes"));
        }
        let h: Hash = STANDARD
            .decode(l)
            .ok()
            .and_then(|v| v.try_into().ok())
            .ok_or(BundleError::Malformed(
                "a proof line is not base64 of 32 bytes",
            ))?;
        proof.push(h);
    }
    Ok((idx, proof, rest))
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
    let (index, proof, checkpoint) = parse_bundle(bundle)?;
    let opened = open_checkpoint(checkpoint, log_key, witnesses)
        .map_err(|e| BundleError::Checkpoint(e.to_string()))?;
    let cp = &opened.checkpoint;
    verify_inclusion(&leaf_hash(entry), index, cp.size, &proof, &cp.root_hash).map_err(|e| {
        BundleError::Inclusion {
            index,
            size: cp.size,
            reason: e.to_string(),
        }
    })?;
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
        index,
        size: cp.size,
        root: cp.root_hash,
        cosigned_by: names,
    })
}
