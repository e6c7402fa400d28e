//! Checkpoints (c2sp.org/tlog-checkpoint v1.0.0) and opening a signed, cosigned checkpoint.
//!
//! The note text is: origin line, tree size in decimal without leading zeroes, base64 root hash,
//! then optional non-empty extension lines, each ending in `\n`.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::cosignature::Cosignature;
use super::keys::{KeyAlgorithm, NoteSigner, NoteVerifier};
use super::merkle::Hash;
use super::note::{Note, NoteError};

/// Why a checkpoint was refused.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("checkpoint note")]
    Note(#[from] NoteError),
    #[error("checkpoint text: {0}")]
    Text(&'static str),
    #[error("checkpoint text: tree size {0:?} is not a decimal number without leading zeroes")]
    Size(String),
    #[error("checkpoint text: root hash {0:?} is not base64 of 32 bytes")]
    RootHash(String),
    #[error("checkpoint origin {origin:?} does not match the log key name {key:?}")]
    OriginMismatch { origin: String, key: String },
    #[error("checkpoint for {origin:?} carries no valid signature by the log key {key}")]
    NoLogSignature { origin: String, key: String },
    #[error("log key {0} is not an Ed25519 (0x01) note key")]
    LogKeyAlgorithm(String),
}

/// A checkpoint: the log's signed statement of its size and root hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// Log identity (first line).
    pub origin: String,
    /// Number of leaves.
    pub size: u64,
    /// RFC 6962 root hash of the tree of `size` leaves.
    pub root_hash: Hash,
    /// Extension lines (opaque, non-empty, without their newline).
    pub extensions: Vec<String>,
}

fn valid_line(s: &str) -> bool {
    !s.is_empty() && !s.bytes().any(|b| b < 0x20)
}

impl Checkpoint {
    /// A checkpoint without extension lines.
    pub fn new(origin: &str, size: u64, root_hash: Hash) -> Result<Self, CheckpointError> {
        if !valid_line(origin) {
            return Err(CheckpointError::Text(
                "origin is empty or contains control characters",
            ));
        }
        Ok(Checkpoint {
            origin: origin.into(),
            size,
            root_hash,
            extensions: Vec::new(),
        })
    }

    /// Parse a checkpoint note text (everything before the blank line, final newline included).
    pub fn parse_text(text: &str) -> Result<Self, CheckpointError> {
        // Apply the note character rules too, for texts that did not come from a parsed note.
        Note::new(text)?;
        let body = text
            .strip_suffix('\n')
            .ok_or(CheckpointError::Text("does not end in a newline"))?;
        let mut lines = body.split('\n');
        let origin = lines.next().unwrap_or_default();
        let size = lines
            .next()
            .ok_or(CheckpointError::Text("fewer than three lines"))?;
        let root = lines
            .next()
            .ok_or(CheckpointError::Text("fewer than three lines"))?;
        if origin.is_empty() {
            return Err(CheckpointError::Text("empty origin line"));
        }
        let size_ok = !size.is_empty()
            && size.bytes().all(|b| b.is_ascii_digit())
            && (size == "0" || !size.starts_with('0'));
        let size_n = size
            .parse::<u64>()
            .ok()
            .filter(|_| size_ok)
            .ok_or_else(|| CheckpointError::Size(size.into()))?;
        let root_hash = decode_hash(root).ok_or_else(|| CheckpointError::RootHash(root.into()))?;
        let mut extensions = Vec::new();
        for ext in lines {
            if ext.is_empty() {
                return Err(CheckpointError::Text("empty extension line"));
            }
            extensions.push(ext.to_string());
        }
        Ok(Checkpoint {
            origin: origin.into(),
            size: size_n,
            root_hash,
            extensions,
        })
    }

    /// The note text.
    pub fn to_text(&self) -> String {
        let mut s = format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            STANDARD.encode(self.root_hash)
        );
        for e in &self.extensions {
            s.push_str(e);
            s.push('\n');
        }
        s
    }

    /// Sign as the log: a note whose only signature is the log's. The log key must be an
    /// Ed25519 (0x01) key named after the origin.
    pub fn sign(&self, log: &NoteSigner) -> Result<Note, CheckpointError> {
        if log.name() != self.origin {
            return Err(CheckpointError::OriginMismatch {
                origin: self.origin.clone(),
                key: log.name().into(),
            });
        }
        if log.algorithm() != KeyAlgorithm::Ed25519 {
            return Err(CheckpointError::LogKeyAlgorithm(log.name().into()));
        }
        let mut note = Note::new(self.to_text())?;
        note.sign(log)?;
        Ok(note)
    }
}

impl fmt::Display for Checkpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_text())
    }
}

/// Decode canonical base64 of exactly 32 bytes.
pub(crate) fn decode_hash(s: &str) -> Option<Hash> {
    let raw = STANDARD.decode(s).ok()?;
    raw.as_slice().try_into().ok()
}

/// A checkpoint whose log signature verified, with every witness cosignature that verified.
#[derive(Debug, Clone)]
pub struct VerifiedCheckpoint {
    pub checkpoint: Checkpoint,
    /// The note as received (all signature lines kept).
    pub note: Note,
    /// Valid cosignatures by the given witnesses: (index into `witnesses`, cosignature), at most
    /// one per witness public key (however many names it is listed under).
    pub cosignatures: Vec<(usize, Cosignature)>,
}

/// Open a signed checkpoint: parse it, require the origin to equal the log key's name and a
/// valid log signature, and verify the cosignatures of the known `witnesses` (cosignature/v1
/// keys). Unknown signatures are ignored; a bad signature by any known key refuses the whole
/// checkpoint, as the signed-note spec recommends.
pub fn open_checkpoint(
    msg: &[u8],
    log: &NoteVerifier,
    witnesses: &[NoteVerifier],
) -> Result<VerifiedCheckpoint, CheckpointError> {
    if log.algorithm() != KeyAlgorithm::Ed25519 {
        return Err(CheckpointError::LogKeyAlgorithm(log.to_vkey()));
    }
    let note = Note::parse(msg)?;
    let checkpoint = Checkpoint::parse_text(note.text())?;
    if checkpoint.origin != log.name() {
        return Err(CheckpointError::OriginMismatch {
            origin: checkpoint.origin,
            key: log.name().into(),
        });
    }
    let mut known = Vec::with_capacity(witnesses.len() + 1);
    known.push(log.clone());
    known.extend_from_slice(witnesses);
    let no_log_sig = || CheckpointError::NoLogSignature {
        origin: checkpoint.origin.clone(),
        key: log.to_vkey(),
    };
    let verified = match note.verify(&known) {
        Ok(v) => v,
        Err(NoteError::NoKnownSignature) => return Err(no_log_sig()),
        Err(e) => return Err(e.into()),
    };
    if !verified.iter().any(|v| v.verifier == 0) {
        return Err(no_log_sig());
    }
    // cosignature/v1 does not sign the key name, so a cosignature copied onto a line with
    // another name verifies under every listed name of the same key: keep one per public key,
    // so that any count of `cosignatures` counts witnesses, not names.
    let mut cosigners: Vec<[u8; 32]> = Vec::new();
    let mut cosignatures = Vec::new();
    for v in verified.iter().filter(|v| v.verifier > 0) {
        let index = v.verifier - 1;
        let Some(witness) = witnesses.get(index) else {
            continue;
        };
        let Ok(c) = Cosignature::from_signature(&v.signature) else {
            continue;
        };
        let key = witness.public_key();
        if !cosigners.contains(&key) {
            cosigners.push(key);
            cosignatures.push((index, c));
        }
    }
    Ok(VerifiedCheckpoint {
        checkpoint,
        note,
        cosignatures,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_round_trip_and_rules() {
        let mut c = Checkpoint::new("example.com/log", 42, [9; 32]).unwrap();
        c.extensions.push("ext one".into());
        let t = c.to_text();
        assert_eq!(Checkpoint::parse_text(&t).unwrap(), c);
        let good = "o\n10\nCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQk=\n";
        assert_eq!(Checkpoint::parse_text(good).unwrap().size, 10);
        let zero = "o\n0\nCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQk=\n";
        assert_eq!(Checkpoint::parse_text(zero).unwrap().size, 0);
        for bad in [
            "o\n010\nCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQk=\n", // leading zero
            "o\n+10\nCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQk=\n",
            "o\n-1\nCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQk=\n",
            "o\n18446744073709551616\nCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQk=\n",
            "o\n10\nCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQ==\n", // 31 bytes
            "o\n10\nCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQk=",   // no newline
            "o\n10\n",
            "\n10\nCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQk=\n", // empty origin
            "o\n10\nCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQk=\n\n", // empty extension
            "o\n1 0\nCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQk=\n",
        ] {
            assert!(Checkpoint::parse_text(bad).is_err(), "accepted {bad:?}");
        }
    }

    #[test]
    fn log_signature_required_and_origin_bound() {
        let log = NoteSigner::generate("example.com/log", KeyAlgorithm::Ed25519).unwrap();
        let c = Checkpoint::new("example.com/log", 3, [1; 32]).unwrap();
        let note = c.sign(&log).unwrap();
        let opened = open_checkpoint(&note.to_bytes(), &log.verifier(), &[]).unwrap();
        assert_eq!(opened.checkpoint, c);

        let other = NoteSigner::generate("example.com/log", KeyAlgorithm::Ed25519).unwrap();
        assert!(matches!(
            open_checkpoint(&note.to_bytes(), &other.verifier(), &[]),
            Err(CheckpointError::NoLogSignature { .. })
        ));
        // A log key named differently from the origin can neither sign nor verify it.
        let misnamed = NoteSigner::generate("example.com/other", KeyAlgorithm::Ed25519).unwrap();
        assert!(c.sign(&misnamed).is_err());
        let mut n2 = Note::new(c.to_text()).unwrap();
        n2.sign(&misnamed).unwrap();
        assert!(matches!(
            open_checkpoint(&n2.to_bytes(), &misnamed.verifier(), &[]),
            Err(CheckpointError::OriginMismatch { .. })
        ));
    }
}
