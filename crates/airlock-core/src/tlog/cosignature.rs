//! Witness cosignatures (c2sp.org/tlog-cosignature, cosignature/v1 with Ed25519).
//!
//! A cosignature is a note signature on a checkpoint by a key with algorithm byte 0x04. Its
//! bytes are an 8-byte big-endian POSIX timestamp followed by an Ed25519 signature over
//! `cosignature/v1\ntime <timestamp>\n` + the checkpoint note text. Verification goes through
//! [`NoteVerifier::verify`](super::keys::NoteVerifier::verify) like any note signature, so a
//! cosigned checkpoint is verified in one pass by [`open_checkpoint`](super::open_checkpoint).

use zeroize::Zeroizing;

use super::checkpoint::{Checkpoint, CheckpointError};
use super::keys::{
    KeyAlgorithm, KeyError, NoteSigner, NoteVerifier, cosignature_message, split_timestamped,
};
use super::note::{Note, Signature};

/// Largest timestamp a cosignature may carry (2^63 - 1).
pub const MAX_TIMESTAMP: u64 = i64::MAX as u64;

/// Why a cosignature was refused.
#[derive(Debug, thiserror::Error)]
pub enum CosignatureError {
    #[error(
        "cosignature by {name}: {len} signature bytes, expected 72 (timestamp and Ed25519), or timestamp above 2^63-1"
    )]
    Malformed { name: String, len: usize },
    #[error("cosignature timestamp {0} is above 2^63-1")]
    Timestamp(u64),
    #[error("cosignature key {0}: {1}")]
    Key(String, KeyError),
    #[error("cosignature by {name}+{key_id:08x} does not verify over this checkpoint")]
    Invalid { name: String, key_id: u32 },
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
}

/// A cosignature/v1 signature line, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cosignature {
    /// Cosigner (witness) name.
    pub name: String,
    /// Key ID (computed with algorithm byte 0x04).
    pub key_id: u32,
    /// POSIX seconds at which the witness cosigned.
    pub timestamp: u64,
    /// Ed25519 signature over the cosignature/v1 message.
    pub signature: [u8; 64],
}

impl Cosignature {
    /// Decode a note signature as a cosignature (structure only; no verification).
    pub fn from_signature(sig: &Signature) -> Result<Self, CosignatureError> {
        let malformed = || CosignatureError::Malformed {
            name: sig.name.clone(),
            len: sig.bytes.len(),
        };
        let (timestamp, ed) = split_timestamped(&sig.bytes).ok_or_else(malformed)?;
        let signature: [u8; 64] = ed.try_into().map_err(|_| malformed())?;
        Ok(Cosignature {
            name: sig.name.clone(),
            key_id: sig.key_id,
            timestamp,
            signature,
        })
    }

    /// As a note signature.
    pub fn to_signature(&self) -> Signature {
        let mut bytes = Vec::with_capacity(72);
        bytes.extend_from_slice(&self.timestamp.to_be_bytes());
        bytes.extend_from_slice(&self.signature);
        Signature {
            name: self.name.clone(),
            key_id: self.key_id,
            bytes,
        }
    }

    /// The signature line `— name base64(...)\n`, as a witness returns it from add-checkpoint.
    pub fn to_line(&self) -> String {
        self.to_signature().to_line()
    }

    /// Verify against a witness key (alg 0x04) over the checkpoint note text.
    pub fn verify(&self, witness: &NoteVerifier, checkpoint_text: &str) -> bool {
        witness.algorithm() == KeyAlgorithm::CosignatureV1
            && witness.name() == self.name
            && witness.key_id() == self.key_id
            && witness.verify(checkpoint_text.as_bytes(), &self.to_signature().bytes)
    }
}

/// A witness's private key (cosignature/v1, algorithm byte 0x04).
#[derive(Debug)]
pub struct CosignatureSigner(NoteSigner);

impl CosignatureSigner {
    /// A fresh key.
    pub fn generate(name: &str) -> Result<Self, KeyError> {
        NoteSigner::generate(name, KeyAlgorithm::CosignatureV1).map(CosignatureSigner)
    }

    /// From a 32-byte Ed25519 seed.
    pub fn from_seed(name: &str, seed: &[u8; 32]) -> Result<Self, KeyError> {
        NoteSigner::from_seed(name, KeyAlgorithm::CosignatureV1, seed).map(CosignatureSigner)
    }

    /// Parse `PRIVATE+KEY+name+hash+base64(0x04||seed)`.
    pub fn from_skey(skey: &str) -> Result<Self, KeyError> {
        let s = NoteSigner::from_skey(skey)?;
        if s.algorithm() != KeyAlgorithm::CosignatureV1 {
            return Err(KeyError::WrongAlgorithm {
                name: s.name().into(),
                got: s.algorithm(),
                want: KeyAlgorithm::CosignatureV1,
            });
        }
        Ok(CosignatureSigner(s))
    }

    pub fn to_skey(&self) -> Zeroizing<String> {
        self.0.to_skey()
    }
    pub fn verifier(&self) -> NoteVerifier {
        self.0.verifier()
    }
    pub fn name(&self) -> &str {
        self.0.name()
    }
    pub fn key_id(&self) -> u32 {
        self.0.key_id()
    }

    /// Cosign a checkpoint note text at `timestamp` (POSIX seconds).
    pub fn cosign_text(
        &self,
        checkpoint_text: &str,
        timestamp: u64,
    ) -> Result<Cosignature, CosignatureError> {
        if timestamp > MAX_TIMESTAMP {
            return Err(CosignatureError::Timestamp(timestamp));
        }
        let msg = cosignature_message(timestamp, checkpoint_text.as_bytes());
        Ok(Cosignature {
            name: self.0.name().into(),
            key_id: self.0.key_id(),
            timestamp,
            signature: self.0.sign_raw(&msg),
        })
    }

    /// Cosign a checkpoint.
    pub fn cosign(
        &self,
        checkpoint: &Checkpoint,
        timestamp: u64,
    ) -> Result<Cosignature, CosignatureError> {
        self.cosign_text(&checkpoint.to_text(), timestamp)
    }

    /// Cosign a checkpoint note and add the cosignature to it.
    pub fn cosign_note(&self, note: &mut Note, timestamp: u64) -> Result<(), CosignatureError> {
        Checkpoint::parse_text(note.text())?;
        let c = self.cosign_text(note.text(), timestamp)?;
        note.add_signature(c.to_signature())
            .map_err(|e| CosignatureError::Checkpoint(e.into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tlog::checkpoint::open_checkpoint;

    #[test]
    fn cosign_verify_and_refuse() {
        let log = NoteSigner::generate("example.com/log", KeyAlgorithm::Ed25519).unwrap();
        let w1 = CosignatureSigner::generate("witness1.example").unwrap();
        let w2 = CosignatureSigner::generate("witness2.example").unwrap();
        let cp = Checkpoint::new("example.com/log", 7, [3; 32]).unwrap();
        let mut note = cp.sign(&log).unwrap();
        w1.cosign_note(&mut note, 1_700_000_000).unwrap();
        w2.cosign_note(&mut note, 1_700_000_001).unwrap();

        let opened = open_checkpoint(
            &note.to_bytes(),
            &log.verifier(),
            &[w1.verifier(), w2.verifier()],
        )
        .unwrap();
        assert_eq!(opened.cosignatures.len(), 2);
        assert_eq!(opened.cosignatures[0].1.timestamp, 1_700_000_000);
        let c = &opened.cosignatures[1].1;
        assert!(c.verify(&w2.verifier(), &cp.to_text()));
        assert!(!c.verify(&w1.verifier(), &cp.to_text()));
        // Changing the timestamp breaks the signature: it is signed.
        let mut moved = c.clone();
        moved.timestamp += 1;
        assert!(!moved.verify(&w2.verifier(), &cp.to_text()));
        // A different checkpoint does not verify.
        let other = Checkpoint::new("example.com/log", 8, [3; 32]).unwrap();
        assert!(!c.verify(&w2.verifier(), &other.to_text()));

        // A tampered cosignature fails the whole checkpoint.
        let mut bad = note.clone();
        let mut s = moved.to_signature();
        s.bytes[70] ^= 1;
        bad.add_signature(s).unwrap();
        assert!(
            open_checkpoint(
                &bad.to_bytes(),
                &log.verifier(),
                &[w1.verifier(), w2.verifier()]
            )
            .is_err()
        );
        assert!(w1.cosign(&cp, MAX_TIMESTAMP + 1).is_err());
    }

    #[test]
    fn plain_ed25519_signature_is_not_a_cosignature() {
        // The same seed as a 0x01 key: different key ID, and its signature is not accepted by
        // the 0x04 verifier.
        let seed = [5u8; 32];
        let plain = NoteSigner::from_seed("w", KeyAlgorithm::Ed25519, &seed).unwrap();
        let cos = CosignatureSigner::from_seed("w", &seed).unwrap();
        let text = Checkpoint::new("o", 1, [0; 32]).unwrap().to_text();
        let mut sig = plain.sign_text(&text).unwrap();
        sig.key_id = cos.key_id();
        assert!(!cos.verifier().verify(text.as_bytes(), &sig.bytes));
        assert!(CosignatureSigner::from_skey(&plain.to_skey()).is_err());
    }

    /// cosignature/v1 does not sign the witness's name: one cosignature copied onto a line with
    /// another name (and that name's key ID) verifies under a verifier of the same key with that
    /// name. Listing one witness key under two names must not make one witness count twice.
    #[test]
    fn one_witness_key_under_two_names_counts_once() {
        let log = NoteSigner::generate("example.com/log", KeyAlgorithm::Ed25519).unwrap();
        let w = CosignatureSigner::generate("witness.example").unwrap();
        let alias = NoteVerifier::new(
            "alias.example",
            KeyAlgorithm::CosignatureV1,
            &w.verifier().public_key(),
        )
        .unwrap();
        let cp = Checkpoint::new("example.com/log", 7, [3; 32]).unwrap();
        let mut note = cp.sign(&log).unwrap();
        w.cosign_note(&mut note, 1_700_000_000).unwrap();
        let mut relabelled = note.signatures()[1].clone();
        relabelled.name = alias.name().into();
        relabelled.key_id = alias.key_id();
        note.add_signature(relabelled).unwrap();
        let witnesses = [w.verifier(), alias];
        let opened = open_checkpoint(&note.to_bytes(), &log.verifier(), &witnesses).unwrap();
        assert_eq!(opened.cosignatures.len(), 1, "{:?}", opened.cosignatures);
        assert_eq!(opened.cosignatures[0].0, 0);

        // A policy built in code (not parsed, so its duplicate-key check never ran) with
        // "2 of" the two names: one witness does not meet it.
        let policy = crate::tlog::Policy {
            logs: vec![crate::tlog::policy::PolicyLog {
                verifier: log.verifier(),
                url: None,
            }],
            witnesses: witnesses
                .iter()
                .map(|v| crate::tlog::policy::PolicyWitness {
                    name: v.name().into(),
                    verifier: v.clone(),
                    url: None,
                })
                .collect(),
            groups: vec![crate::tlog::policy::PolicyGroup {
                name: "both".into(),
                threshold: 2,
                members: vec![
                    crate::tlog::policy::Member::Witness(0),
                    crate::tlog::policy::Member::Witness(1),
                ],
            }],
            quorum: crate::tlog::policy::Quorum::Member(crate::tlog::policy::Member::Group(0)),
        };
        let err = policy
            .verify_checkpoint(&note.to_bytes(), 1_800_000_000)
            .unwrap_err();
        assert!(
            matches!(
                err,
                crate::tlog::policy::PolicyCheckError::QuorumNotMet { .. }
            ),
            "{err}"
        );
    }
}
