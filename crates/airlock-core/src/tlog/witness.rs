//! The witness protocol's request format and decision (c2sp.org/tlog-witness `add-checkpoint`),
//! without I/O.
//!
//! Request body: `old <size>\n`, zero to 63 base64 consistency-proof lines, a blank line, then the
//! checkpoint note. [`check_add_checkpoint`] applies every rule of the spec in its order and
//! returns the checkpoint to cosign, or an [`AddCheckpointError`] whose
//! [`status`](AddCheckpointError::status) is the HTTP status the spec requires. The caller
//! performs the check and the store of the new checkpoint atomically (the spec's race), then
//! cosigns and answers with [`Cosignature::to_line`](super::Cosignature::to_line).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::checkpoint::{Checkpoint, CheckpointError, decode_hash};
use super::keys::NoteVerifier;
use super::merkle::{Hash, MerkleError, empty_root, verify_consistency};
use super::note::{MAX_NOTE_SIZE, Note, NoteError};

/// At most 63 consistency proof lines.
pub const MAX_CONSISTENCY_LINES: usize = 63;

/// A parsed add-checkpoint request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddCheckpointRequest {
    /// Size of the checkpoint the client believes the witness holds (0 if none).
    pub old_size: u64,
    /// Consistency proof from `old_size` to the checkpoint's size.
    pub consistency_proof: Vec<Hash>,
    /// The checkpoint note (structure checked, signatures not yet).
    pub note: Note,
    /// Its parsed text.
    pub checkpoint: Checkpoint,
}

/// Why a request was refused, with the HTTP status the spec prescribes.
#[derive(Debug, thiserror::Error)]
pub enum AddCheckpointError {
    #[error("add-checkpoint: malformed request: {0}")]
    Malformed(String),
    #[error("add-checkpoint: unknown origin {0:?}")]
    UnknownOrigin(String),
    #[error("add-checkpoint: no valid signature by a trusted key for {origin:?}: {reason}")]
    Unauthorized { origin: String, reason: NoteError },
    #[error("add-checkpoint: old size {old} is larger than the checkpoint size {new}")]
    OldSizeTooLarge { old: u64, new: u64 },
    #[error("add-checkpoint: old size {claimed} does not match the witness's size {stored}")]
    Conflict { claimed: u64, stored: u64 },
    #[error("add-checkpoint: checkpoint of size 0 must have the empty tree's root")]
    BadEmptyRoot,
    #[error("add-checkpoint: consistency proof must be empty when the old size is 0")]
    ProofNotEmpty,
    #[error("add-checkpoint: same size {size} with a different root hash: the log shows two trees")]
    SplitView { size: u64 },
    #[error("add-checkpoint: consistency proof from {old} to {new} does not verify")]
    BadProof {
        old: u64,
        new: u64,
        #[source]
        source: MerkleError,
    },
}

impl AddCheckpointError {
    /// HTTP status code for the response.
    pub fn status(&self) -> u16 {
        match self {
            AddCheckpointError::Malformed(_) | AddCheckpointError::OldSizeTooLarge { .. } => 400,
            AddCheckpointError::UnknownOrigin(_) => 404,
            AddCheckpointError::Unauthorized { .. } => 403,
            AddCheckpointError::Conflict { .. } => 409,
            AddCheckpointError::BadEmptyRoot
            | AddCheckpointError::ProofNotEmpty
            | AddCheckpointError::SplitView { .. }
            | AddCheckpointError::BadProof { .. } => 422,
        }
    }

    /// For 409: the `text/x.tlog.size` body (`<size>\n`).
    pub fn conflict_body(&self) -> Option<String> {
        match self {
            AddCheckpointError::Conflict { stored, .. } => Some(format!("{stored}\n")),
            _ => None,
        }
    }
}

fn parse_decimal(s: &str) -> Option<u64> {
    let ok =
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'));
    if ok { s.parse().ok() } else { None }
}

impl AddCheckpointRequest {
    /// Build a request (the log side).
    pub fn new(
        old_size: u64,
        consistency_proof: Vec<Hash>,
        checkpoint_note: &[u8],
    ) -> Result<Self, AddCheckpointError> {
        let mut body = format!("old {old_size}\n");
        for h in &consistency_proof {
            body.push_str(&STANDARD.encode(h));
            body.push('\n');
        }
        body.push('\n');
        let mut bytes = body.into_bytes();
        bytes.extend_from_slice(checkpoint_note);
        Self::parse(&bytes)
    }

    /// Parse a request body.
    pub fn parse(body: &[u8]) -> Result<Self, AddCheckpointError> {
        let bad = |s: &str| AddCheckpointError::Malformed(s.into());
        if body.len() > MAX_NOTE_SIZE + 8 * 1024 {
            return Err(bad("body too large"));
        }
        let text = std::str::from_utf8(body).map_err(|_| bad("not UTF-8"))?;
        let (header, note) = text
            .split_once("\n\n")
            .ok_or_else(|| bad("no blank line before the checkpoint"))?;
        let mut lines = header.split('\n');
        let old_size = lines
            .next()
            .and_then(|l| l.strip_prefix("old "))
            .and_then(parse_decimal)
            .ok_or_else(|| bad("first line is not `old <size>`"))?;
        let mut consistency_proof = Vec::new();
        for l in lines {
            if consistency_proof.len() == MAX_CONSISTENCY_LINES {
                return Err(bad("more than 63 consistency proof lines"));
            }
            consistency_proof
                .push(decode_hash(l).ok_or_else(|| bad("proof line is not a base64 hash"))?);
        }
        let note = Note::parse(note.as_bytes())
            .map_err(|e| AddCheckpointError::Malformed(crate::error_chain(&e)))?;
        let checkpoint = Checkpoint::parse_text(note.text())
            .map_err(|e: CheckpointError| AddCheckpointError::Malformed(crate::error_chain(&e)))?;
        Ok(AddCheckpointRequest {
            old_size,
            consistency_proof,
            note,
            checkpoint,
        })
    }

    /// Encode the request body.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut body = format!("old {}\n", self.old_size);
        for h in &self.consistency_proof {
            body.push_str(&STANDARD.encode(h));
            body.push('\n');
        }
        body.push('\n');
        let mut bytes = body.into_bytes();
        bytes.extend_from_slice(&self.note.to_bytes());
        bytes
    }
}

/// Apply the add-checkpoint rules.
///
/// `log_keys` are the keys the witness trusts for the request's origin (empty if the origin is
/// unknown); `stored` is the latest checkpoint the witness cosigned for that origin. On success
/// the returned checkpoint is the one to persist (atomically with this check) and cosign.
pub fn check_add_checkpoint(
    req: &AddCheckpointRequest,
    log_keys: &[NoteVerifier],
    stored: Option<&Checkpoint>,
) -> Result<Checkpoint, AddCheckpointError> {
    let cp = &req.checkpoint;
    if log_keys.is_empty() {
        return Err(AddCheckpointError::UnknownOrigin(cp.origin.clone()));
    }
    req.note
        .verify(log_keys)
        .map_err(|reason| AddCheckpointError::Unauthorized {
            origin: cp.origin.clone(),
            reason,
        })?;
    if req.old_size > cp.size {
        return Err(AddCheckpointError::OldSizeTooLarge {
            old: req.old_size,
            new: cp.size,
        });
    }
    let stored_size = stored.map_or(0, |s| s.size);
    if req.old_size != stored_size {
        return Err(AddCheckpointError::Conflict {
            claimed: req.old_size,
            stored: stored_size,
        });
    }
    if cp.size == 0 && cp.root_hash != empty_root() {
        return Err(AddCheckpointError::BadEmptyRoot);
    }
    match stored {
        None => {
            if !req.consistency_proof.is_empty() {
                return Err(AddCheckpointError::ProofNotEmpty);
            }
        }
        Some(s) if s.size == 0 => {
            if !req.consistency_proof.is_empty() {
                return Err(AddCheckpointError::ProofNotEmpty);
            }
        }
        Some(s) => {
            if s.size == cp.size && s.root_hash != cp.root_hash {
                return Err(AddCheckpointError::SplitView { size: cp.size });
            }
            verify_consistency(
                s.size,
                cp.size,
                &req.consistency_proof,
                &s.root_hash,
                &cp.root_hash,
            )
            .map_err(|source| AddCheckpointError::BadProof {
                old: s.size,
                new: cp.size,
                source,
            })?;
        }
    }
    Ok(cp.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tlog::keys::{KeyAlgorithm, NoteSigner};
    use crate::tlog::merkle::{MemoryTree, consistency_proof};

    const O: &str = "example.com/behind-the-sofa";

    fn signed(t: &MemoryTree, k: &NoteSigner) -> Vec<u8> {
        Checkpoint::new(O, t.size(), t.root())
            .unwrap()
            .sign(k)
            .unwrap()
            .to_bytes()
    }

    fn tree(n: u64, fork: bool) -> MemoryTree {
        let mut t = MemoryTree::new();
        for i in 0..n {
            t.push(&[u8::from(fork && i == 2), i as u8]);
        }
        t
    }

    #[test]
    fn spec_example_request_parses_and_round_trips() {
        let body = "old 20852014
PlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw=
jrJZDmY8Y7SyJE0MWLpLozkIVMSMZcD5kvuKxPC3swk=
5+pKlUdi2LeF/BcMHBn+Ku6yhPGNCswZZD1X/6QgPd8=
/6WVhPs2CwSsb5rYBH5cjHV/wSmA79abXAwhXw3Kj/0=

example.com/behind-the-sofa
20852163
CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=

\u{2014} example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=
\u{2014} example.com/behind-the-sofa opLqBQsREYCgu6xQkYQwJr9fo45a62DN9EdmHXnZdXNqlcVGlCum2Wks+49/V6267UEjw6QUXTS5Rovnzv++qbSzm9Q=
";
        let r = AddCheckpointRequest::parse(body.as_bytes()).unwrap();
        assert_eq!(r.old_size, 20852014);
        assert_eq!(r.consistency_proof.len(), 4);
        assert_eq!(r.checkpoint.size, 20852163);
        assert_eq!(r.to_bytes(), body.as_bytes());
    }

    #[test]
    fn every_status_code() {
        let log = NoteSigner::generate(O, KeyAlgorithm::Ed25519).unwrap();
        let keys = [log.verifier()];
        let t5 = tree(5, false);
        let t8 = tree(8, false);
        let cp5 = Checkpoint::new(O, 5, t5.root()).unwrap();
        let proof = consistency_proof(&t8, 5, 8).unwrap();
        let req = |old, proof: Vec<Hash>, note: &[u8]| {
            AddCheckpointRequest::new(old, proof, note).unwrap()
        };
        let status = |r: &AddCheckpointRequest, keys: &[NoteVerifier], s: Option<&Checkpoint>| {
            check_add_checkpoint(r, keys, s)
                .map(|_| 200)
                .unwrap_or_else(|e| e.status())
        };

        // 200: first checkpoint, then a consistent extension.
        assert_eq!(
            status(&req(0, vec![], &signed(&t5, &log)), &keys, None),
            200
        );
        let good = req(5, proof.clone(), &signed(&t8, &log));
        assert_eq!(status(&good, &keys, Some(&cp5)), 200);
        // Same checkpoint again: 200 (nothing new, still consistent).
        assert_eq!(
            status(&req(5, vec![], &signed(&t5, &log)), &keys, Some(&cp5)),
            200
        );
        // 400: malformed, and old size above the checkpoint size.
        assert!(AddCheckpointRequest::parse(b"old 05\n\nx").is_err());
        assert_eq!(
            AddCheckpointRequest::parse(b"old 5\n\nnot a note")
                .unwrap_err()
                .status(),
            400
        );
        assert_eq!(
            status(&req(9, vec![], &signed(&t8, &log)), &keys, None),
            400
        );
        // 404: unknown origin.
        assert_eq!(status(&good, &[], Some(&cp5)), 404);
        // 403: signed by someone else, or a bad signature by the trusted key.
        let other = NoteSigner::generate(O, KeyAlgorithm::Ed25519).unwrap();
        assert_eq!(
            status(
                &req(5, proof.clone(), &signed(&t8, &other)),
                &keys,
                Some(&cp5)
            ),
            403
        );
        let mut forged = Note::parse(&signed(&t8, &log)).unwrap();
        let mut sig = forged.signatures()[0].clone();
        sig.bytes[3] ^= 1;
        forged.add_signature(sig).unwrap();
        assert_eq!(
            status(
                &req(5, proof.clone(), &forged.to_bytes()),
                &keys,
                Some(&cp5)
            ),
            403
        );
        // 409: old size is not what the witness holds; body is the stored size.
        let e = check_add_checkpoint(&req(3, vec![], &signed(&t8, &log)), &keys, Some(&cp5))
            .unwrap_err();
        assert_eq!(e.status(), 409);
        assert_eq!(e.conflict_body().as_deref(), Some("5\n"));
        // 422: bad proof, fork, proof with old size 0, same size different root, bad empty root.
        let mut bad = proof.clone();
        bad[0][0] ^= 1;
        assert_eq!(
            status(&req(5, bad, &signed(&t8, &log)), &keys, Some(&cp5)),
            422
        );
        let forked = tree(8, true);
        let fproof = consistency_proof(&forked, 5, 8).unwrap();
        assert_eq!(
            status(&req(5, fproof, &signed(&forked, &log)), &keys, Some(&cp5)),
            422
        );
        assert_eq!(
            status(&req(0, proof.clone(), &signed(&t8, &log)), &keys, None),
            422
        );
        let split = tree(5, true);
        assert_eq!(
            status(&req(5, vec![], &signed(&split, &log)), &keys, Some(&cp5)),
            422
        );
        let empty_bad = Checkpoint::new(O, 0, [1; 32]).unwrap().sign(&log).unwrap();
        assert_eq!(
            status(&req(0, vec![], &empty_bad.to_bytes()), &keys, None),
            422
        );
        let empty_ok = Checkpoint::new(O, 0, empty_root())
            .unwrap()
            .sign(&log)
            .unwrap();
        assert_eq!(
            status(&req(0, vec![], &empty_ok.to_bytes()), &keys, None),
            200
        );
    }
}
