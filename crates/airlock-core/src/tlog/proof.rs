//! Offline proofs of logging (c2sp.org/tlog-proof@v1).
//!
//! ```text
//! c2sp.org/tlog-proof@v1
//! extra <base64>            (optional, unauthenticated)
//! index <decimal>
//! <base64 hash>             (zero or more: the inclusion proof, leaf's sibling first)
//!
//! <checkpoint note, verbatim, with its signatures and cosignatures>
//! ```
//!
//! [`ProofBundle::parse`] and [`ProofBundle::to_bytes`] are exact inverses on every accepted
//! input. [`ProofBundle::verify`] checks the log signature, the cosignatures of the given
//! witnesses and the inclusion proof; deciding whether the witnesses are enough is the policy's
//! job ([`Policy`](super::policy::Policy)).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::checkpoint::{
    Checkpoint, CheckpointError, VerifiedCheckpoint, decode_hash, open_checkpoint,
};
use super::keys::NoteVerifier;
use super::merkle::{Hash, HashReader, MerkleError, NodeId, inclusion_proof, verify_inclusion};
use super::note::{MAX_NOTE_SIZE, Note};

/// First line of every proof.
pub const PROOF_HEADER: &str = "c2sp.org/tlog-proof@v1";
/// An inclusion proof in a tree of at most 2^64 - 1 leaves has at most 64 hashes.
pub const MAX_PROOF_HASHES: usize = 64;

/// Why a proof bundle was refused.
#[derive(Debug, thiserror::Error)]
pub enum ProofError {
    #[error("tlog-proof: {0}")]
    Format(&'static str),
    #[error("tlog-proof line {line}: {reason}")]
    Line { line: usize, reason: &'static str },
    #[error("tlog-proof checkpoint")]
    Checkpoint(#[from] CheckpointError),
    #[error("tlog-proof: entry {index} is not included in the checkpoint of size {size}")]
    Inclusion {
        index: u64,
        size: u64,
        #[source]
        source: MerkleError,
    },
}

/// A parsed tlog-proof.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProofBundle {
    /// Optional opaque extra data (never authenticated).
    pub extra: Option<Vec<u8>>,
    /// Index of the entry in the log.
    pub index: u64,
    /// Inclusion proof of the entry in the checkpoint's tree.
    pub inclusion_proof: Vec<Hash>,
    /// The checkpoint note, verbatim.
    pub checkpoint: Vec<u8>,
}

fn parse_decimal(s: &str) -> Option<u64> {
    let canonical =
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'));
    if canonical { s.parse().ok() } else { None }
}

impl ProofBundle {
    /// Parse a proof. The checkpoint is kept as bytes; it is checked by [`ProofBundle::verify`].
    pub fn parse(bytes: &[u8]) -> Result<Self, ProofError> {
        if bytes.len() > MAX_NOTE_SIZE + 64 * 1024 {
            return Err(ProofError::Format("larger than allowed"));
        }
        let mut rest = bytes;
        let mut line_no = 0;
        let mut next_line = |rest: &mut &[u8]| -> Result<(usize, String), ProofError> {
            line_no += 1;
            let pos = rest
                .iter()
                .position(|&b| b == b'\n')
                .ok_or(ProofError::Format(
                    "ends before the blank line and checkpoint",
                ))?;
            let (line, tail) = rest.split_at(pos);
            *rest = tail.get(1..).unwrap_or_default();
            let line = std::str::from_utf8(line).map_err(|_| ProofError::Line {
                line: line_no,
                reason: "not UTF-8",
            })?;
            Ok((line_no, line.to_string()))
        };
        let (_, first) = next_line(&mut rest)?;
        if first != PROOF_HEADER {
            return Err(ProofError::Format(
                "first line is not c2sp.org/tlog-proof@v1",
            ));
        }
        let (mut n, mut line) = next_line(&mut rest)?;
        let mut extra = None;
        if let Some(b64) = line.strip_prefix("extra ") {
            extra = Some(STANDARD.decode(b64).map_err(|_| ProofError::Line {
                line: n,
                reason: "extra is not canonical standard base64",
            })?);
            (n, line) = next_line(&mut rest)?;
        }
        let index =
            line.strip_prefix("index ")
                .and_then(parse_decimal)
                .ok_or(ProofError::Line {
                    line: n,
                    reason: "expected `index <decimal without leading zeroes>`",
                })?;
        let mut inclusion_proof = Vec::new();
        loop {
            let (n, line) = next_line(&mut rest)?;
            if line.is_empty() {
                break;
            }
            if inclusion_proof.len() == MAX_PROOF_HASHES {
                return Err(ProofError::Format("more than 64 inclusion proof hashes"));
            }
            inclusion_proof.push(decode_hash(&line).ok_or(ProofError::Line {
                line: n,
                reason: "not the base64 of a 32-byte hash",
            })?);
        }
        if rest.is_empty() {
            return Err(ProofError::Format("no checkpoint after the blank line"));
        }
        Ok(ProofBundle {
            extra,
            index,
            inclusion_proof,
            checkpoint: rest.to_vec(),
        })
    }

    /// Build the proof for entry `index` in the tree of a checkpoint (the log side). The
    /// checkpoint's size and root are read from its note; the proof is checked against that
    /// root before it is returned, so a log never hands out a bundle that does not verify.
    pub fn build(
        reader: &dyn HashReader,
        index: u64,
        checkpoint_note: &[u8],
        extra: Option<Vec<u8>>,
    ) -> Result<Self, ProofError> {
        let note = Note::parse(checkpoint_note).map_err(CheckpointError::from)?;
        let cp = Checkpoint::parse_text(note.text())?;
        let inclusion = |source| ProofError::Inclusion {
            index,
            size: cp.size,
            source,
        };
        let proof = inclusion_proof(reader, index, cp.size).map_err(inclusion)?;
        let leaf = reader
            .read_hashes(&[NodeId::new(0, index)])
            .map_err(inclusion)?
            .first()
            .copied()
            .ok_or_else(|| inclusion(MerkleError::ReaderCount { got: 0, want: 1 }))?;
        verify_inclusion(&leaf, index, cp.size, &proof, &cp.root_hash).map_err(inclusion)?;
        Ok(ProofBundle {
            extra,
            index,
            inclusion_proof: proof,
            checkpoint: checkpoint_note.to_vec(),
        })
    }

    /// Encode the proof.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut s = format!("{PROOF_HEADER}\n");
        if let Some(extra) = &self.extra {
            s.push_str(&format!("extra {}\n", STANDARD.encode(extra)));
        }
        s.push_str(&format!("index {}\n", self.index));
        for h in &self.inclusion_proof {
            s.push_str(&STANDARD.encode(h));
            s.push('\n');
        }
        s.push('\n');
        let mut out = s.into_bytes();
        out.extend_from_slice(&self.checkpoint);
        out
    }

    /// Open the checkpoint with the log key and witness keys, then check that `leaf` (the RFC
    /// 6962 leaf hash of the entry) is at `index` in the checkpoint's tree. Returns the opened
    /// checkpoint with its valid cosignatures; whether they are enough is decided by a policy.
    pub fn verify(
        &self,
        leaf: &Hash,
        log: &NoteVerifier,
        witnesses: &[NoteVerifier],
    ) -> Result<VerifiedCheckpoint, ProofError> {
        let opened = open_checkpoint(&self.checkpoint, log, witnesses)?;
        self.verify_inclusion_in(leaf, &opened)?;
        Ok(opened)
    }

    /// Check only the inclusion proof against an already opened checkpoint.
    pub fn verify_inclusion_in(
        &self,
        leaf: &Hash,
        opened: &VerifiedCheckpoint,
    ) -> Result<(), ProofError> {
        let cp = &opened.checkpoint;
        verify_inclusion(
            leaf,
            self.index,
            cp.size,
            &self.inclusion_proof,
            &cp.root_hash,
        )
        .map_err(|source| ProofError::Inclusion {
            index: self.index,
            size: cp.size,
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tlog::cosignature::CosignatureSigner;
    use crate::tlog::keys::{KeyAlgorithm, NoteSigner};
    use crate::tlog::merkle::{MemoryTree, inclusion_proof, leaf_hash};

    fn setup() -> (ProofBundle, NoteSigner, CosignatureSigner) {
        let log = NoteSigner::generate("example.com/log", KeyAlgorithm::Ed25519).unwrap();
        let w = CosignatureSigner::generate("witness.example").unwrap();
        let mut t = MemoryTree::new();
        for i in 0..10u8 {
            t.push(&[i]);
        }
        let cp = Checkpoint::new("example.com/log", 10, t.root()).unwrap();
        let mut note = cp.sign(&log).unwrap();
        w.cosign_note(&mut note, 1_700_000_000).unwrap();
        let bundle = ProofBundle {
            extra: Some(b"context".to_vec()),
            index: 6,
            inclusion_proof: inclusion_proof(&t, 6, 10).unwrap(),
            checkpoint: note.to_bytes(),
        };
        (bundle, log, w)
    }

    #[test]
    fn round_trip_and_verify() {
        let (b, log, w) = setup();
        let bytes = b.to_bytes();
        let parsed = ProofBundle::parse(&bytes).unwrap();
        assert_eq!(parsed, b);
        assert_eq!(parsed.to_bytes(), bytes);
        let ok = parsed
            .verify(&leaf_hash(&[6]), &log.verifier(), &[w.verifier()])
            .unwrap();
        assert_eq!(ok.cosignatures.len(), 1);
        // Wrong entry, wrong index: refused.
        assert!(
            parsed
                .verify(&leaf_hash(&[7]), &log.verifier(), &[])
                .is_err()
        );
        let mut moved = parsed.clone();
        moved.index = 7;
        assert!(
            moved
                .verify(&leaf_hash(&[6]), &log.verifier(), &[])
                .is_err()
        );
        // Without extra.
        let mut plain = b.clone();
        plain.extra = None;
        assert_eq!(ProofBundle::parse(&plain.to_bytes()).unwrap(), plain);
    }

    #[test]
    fn build_checks_against_the_checkpoint() {
        let (b, log, _) = setup();
        let mut t = MemoryTree::new();
        for i in 0..10u8 {
            t.push(&[i]);
        }
        let built = ProofBundle::build(&t, 6, &b.checkpoint, b.extra.clone()).unwrap();
        assert_eq!(built, b);
        assert!(ProofBundle::build(&t, 10, &b.checkpoint, None).is_err());
        // A checkpoint whose root is not this tree's: the log refuses to hand out the bundle.
        let wrong = Checkpoint::new("example.com/log", 10, [0; 32])
            .unwrap()
            .sign(&log)
            .unwrap();
        assert!(ProofBundle::build(&t, 6, &wrong.to_bytes(), None).is_err());
    }

    #[test]
    fn spec_example_round_trips() {
        // The example in c2sp.org/tlog-proof, verbatim. Its signatures are elided ("[...]"), so
        // the checkpoint cannot be opened; the proof structure round-trips byte for byte.
        let text = "c2sp.org/tlog-proof@v1
extra YWdlLXYxLjIuMS1kYXJ3aW4tYXJtNjQudGFyLmd6kYXJ3aW4tYXJ
index 73894
gSKyXoYZUgZ6jduWYrkDOARinOMGJveXjgMkBTcdPlQ=
B95lDa8R83lS8n0eG+o0buTxRKQTYFi//1U8anccXmA=
EKNzoDWG8LGC0Yp9o+sv3qllpMP9uHQ9B20KNL+Q1zs=
RoopEkOdqkYqMB4MJXrbt/hMjOxsVn0IrWjpz1ZMMes=
AHCioX9nLjsrse6YhjRRmk1WUEirVOLLRoOQ6vfO5vk=

example.com/fancylog
109482
sFodV/vSp5O8n9a8QpW6PRY97tfOSW5bsc2Xl/EQi08=

\u{2014} example.com/fancylog hI2DJw[...]1roloI=
\u{2014} witness1.example mJirIklj[...]qY9v2B/5bg==
\u{2014} witness2.example TnKKVHLX[...]xwYwrSjgow==
\u{2014} witness3.example S4X82uH5[...]3oEcROGLFQ==
";
        let b = ProofBundle::parse(text.as_bytes()).unwrap();
        assert_eq!(b.index, 73894);
        assert_eq!(b.inclusion_proof.len(), 5);
        assert!(
            b.extra
                .as_deref()
                .unwrap()
                .starts_with(b"age-v1.2.1-darwin-arm64.tar.gz")
        );
        assert!(b.checkpoint.starts_with(b"example.com/fancylog\n109482\n"));
        assert_eq!(b.to_bytes(), text.as_bytes());
    }

    #[test]
    fn malformed_refused() {
        let (b, _, _) = setup();
        let good = String::from_utf8(b.to_bytes()).unwrap();
        let cases = [
            good.replacen("c2sp.org/tlog-proof@v1", "c2sp.org/tlog-proof@v2", 1),
            good.replacen("index 6", "index 06", 1),
            good.replacen("index 6", "index -6", 1),
            good.replacen("index 6", "index  6", 1),
            good.replacen("index 6", "idx 6", 1),
            good.replacen("extra ", "extra !", 1),
            good.replacen("index 6\n", "index 6\nnot-a-hash\n", 1),
            good.replacen("index 6\n", "index 6\nAAAA\n", 1),
            good.split("\n\n").next().unwrap().to_string(),
            format!("{}\n\n", good.split("\n\n").next().unwrap()),
        ];
        for c in cases {
            assert!(ProofBundle::parse(c.as_bytes()).is_err(), "accepted {c:?}");
        }
    }
}
