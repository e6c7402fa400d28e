//! Signed notes (c2sp.org/signed-note v1.0.0): parse, serialize, sign, verify.
//!
//! A note is a text ending in `\n`, a blank line, then one or more lines `— <name> <base64(key ID
//! || signature)>`. The whole note must be UTF-8 without control characters other than `\n`;
//! the text is separated from the signatures by the *last* blank line.
//!
//! Parsing ([`Note::parse`]) is structural only and keeps every signature line, so that
//! `parse(b).to_bytes() == b` for every accepted `b`. Verification ([`Note::verify`]) then looks
//! each signature up by (name, key ID) among the known keys: unknown ones are ignored, a known one
//! that fails makes the whole note fail, and at least one known signature must verify.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::keys::{NoteSigner, NoteVerifier, is_valid_key_name};

/// Largest note accepted (bytes). Go's sumdb/note has no size cap but at most 100 signatures;
/// 1 MiB leaves room for 100 post-quantum signatures.
pub const MAX_NOTE_SIZE: usize = 1 << 20;
/// Largest number of signature lines accepted (the spec requires at least 16; Go allows 100).
pub const MAX_SIGNATURES: usize = 100;

const SIG_PREFIX: &str = "\u{2014} ";

/// Why a note was refused.
#[derive(Debug, thiserror::Error)]
pub enum NoteError {
    #[error("malformed note: larger than {MAX_NOTE_SIZE} bytes")]
    TooLarge,
    #[error("malformed note: not valid UTF-8")]
    NotUtf8,
    #[error("malformed note: control character 0x{byte:02x} at byte {offset}")]
    ControlCharacter { byte: u8, offset: usize },
    #[error("malformed note: no blank line separating text and signatures")]
    NoSignatureBlock,
    #[error("malformed note: the signature block is empty or does not end in a newline")]
    SignatureBlockUnterminated,
    #[error("malformed note: signature line {line}: {reason}")]
    BadSignatureLine { line: usize, reason: &'static str },
    #[error("malformed note: more than {MAX_SIGNATURES} signatures")]
    TooManySignatures,
    #[error("malformed note text: {0}")]
    BadText(&'static str),
    #[error("invalid signature by known key {name}+{key_id:08x}")]
    InvalidSignature { name: String, key_id: u32 },
    #[error("note has no valid signature by any known key")]
    NoKnownSignature,
}

/// One signature line of a note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    /// Key name.
    pub name: String,
    /// Key ID (first four bytes of the decoded signature).
    pub key_id: u32,
    /// Signature bytes after the key ID (for cosignature/v1: timestamp || Ed25519 signature).
    pub bytes: Vec<u8>,
}

impl Signature {
    /// The line `— name base64(key ID || bytes)\n`.
    pub fn to_line(&self) -> String {
        let mut raw = Vec::with_capacity(4 + self.bytes.len());
        raw.extend_from_slice(&self.key_id.to_be_bytes());
        raw.extend_from_slice(&self.bytes);
        format!("{SIG_PREFIX}{} {}\n", self.name, STANDARD.encode(raw))
    }

    /// Parse one line (without its newline). `line_no` is only used in errors.
    pub fn parse_line(line: &str, line_no: usize) -> Result<Self, NoteError> {
        let bad = |reason| NoteError::BadSignatureLine {
            line: line_no,
            reason,
        };
        let rest = line
            .strip_prefix(SIG_PREFIX)
            .ok_or(bad("does not start with an em dash and a space"))?;
        let (name, b64) = rest
            .split_once(' ')
            .ok_or(bad("no space between key name and signature"))?;
        if !is_valid_key_name(name) {
            return Err(bad("invalid key name"));
        }
        if b64.is_empty() {
            return Err(bad("empty signature"));
        }
        let raw = STANDARD
            .decode(b64)
            .map_err(|_| bad("signature is not canonical standard base64"))?;
        if raw.len() < 5 {
            return Err(bad("signature shorter than a key ID and one byte"));
        }
        let (id, bytes) = raw.split_at(4);
        let key_id = u32::from_be_bytes(id.try_into().map_err(|_| bad("no key ID"))?);
        Ok(Signature {
            name: name.into(),
            key_id,
            bytes: bytes.to_vec(),
        })
    }
}

/// A signature that verified, with the index of the known key that verified it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedSignature {
    /// Index into the `known` slice given to [`Note::verify`].
    pub verifier: usize,
    pub signature: Signature,
}

/// A signed note: its text and its signature lines, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    text: String,
    signatures: Vec<Signature>,
}

/// Check the character rules on `s`, reporting offsets from `base`.
fn check_chars(s: &str) -> Result<(), NoteError> {
    match s.bytes().enumerate().find(|&(_, b)| b < 0x20 && b != b'\n') {
        Some((offset, byte)) => Err(NoteError::ControlCharacter { byte, offset }),
        None => Ok(()),
    }
}

impl Note {
    /// A note with `text` and no signatures yet. The text must end in a newline and follow the
    /// character rules.
    pub fn new(text: impl Into<String>) -> Result<Self, NoteError> {
        let text = text.into();
        if !text.ends_with('\n') {
            return Err(NoteError::BadText("does not end in a newline"));
        }
        if text.len() > MAX_NOTE_SIZE {
            return Err(NoteError::TooLarge);
        }
        check_chars(&text)?;
        Ok(Note {
            text,
            signatures: Vec::new(),
        })
    }

    /// Parse a signed note without verifying it.
    pub fn parse(msg: &[u8]) -> Result<Self, NoteError> {
        if msg.len() > MAX_NOTE_SIZE {
            return Err(NoteError::TooLarge);
        }
        let msg = std::str::from_utf8(msg).map_err(|_| NoteError::NotUtf8)?;
        check_chars(msg)?;
        let split = msg.rfind("\n\n").ok_or(NoteError::NoSignatureBlock)?;
        let (text, sigs) = (
            msg.get(..split + 1).unwrap_or_default(),
            msg.get(split + 2..).unwrap_or_default(),
        );
        let Some(sigs) = sigs.strip_suffix('\n') else {
            return Err(NoteError::SignatureBlockUnterminated);
        };
        let mut signatures = Vec::new();
        for (i, line) in sigs.split('\n').enumerate() {
            if signatures.len() == MAX_SIGNATURES {
                return Err(NoteError::TooManySignatures);
            }
            signatures.push(Signature::parse_line(line, i + 1)?);
        }
        Ok(Note {
            text: text.into(),
            signatures,
        })
    }

    /// The note text, including its final newline.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Every signature line, in order, verified or not.
    pub fn signatures(&self) -> &[Signature] {
        &self.signatures
    }

    /// Add a signature, replacing any existing one with the same key name and ID (as Go's
    /// `note.Sign` does); new signatures go last.
    pub fn add_signature(&mut self, sig: Signature) -> Result<(), NoteError> {
        if !is_valid_key_name(&sig.name) {
            return Err(NoteError::BadText("invalid signer key name"));
        }
        self.signatures
            .retain(|s| !(s.name == sig.name && s.key_id == sig.key_id));
        if self.signatures.len() == MAX_SIGNATURES {
            return Err(NoteError::TooManySignatures);
        }
        self.signatures.push(sig);
        Ok(())
    }

    /// Sign the text with an Ed25519 (0x01) note key and add the signature.
    pub fn sign(&mut self, signer: &NoteSigner) -> Result<(), NoteError> {
        let sig = signer
            .sign_text(&self.text)
            .map_err(|_| NoteError::BadText("signer is not an Ed25519 (0x01) note key"))?;
        self.add_signature(sig)
    }

    /// The encoded note: text, blank line, signature lines. A note without signatures encodes
    /// to a string that [`Note::parse`] refuses.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.to_string().into_bytes()
    }

    /// Verify against `known` keys. Signatures whose (name, key ID) match no known key are
    /// ignored; a matching one that does not verify fails the whole note; repeated signatures by
    /// one key count once. Returns the signatures that verified.
    pub fn verify(&self, known: &[NoteVerifier]) -> Result<Vec<VerifiedSignature>, NoteError> {
        let mut verified: Vec<VerifiedSignature> = Vec::new();
        for sig in &self.signatures {
            let Some(index) = known
                .iter()
                .position(|k| k.name() == sig.name && k.key_id() == sig.key_id)
            else {
                continue;
            };
            if verified.iter().any(|v| v.verifier == index) {
                continue;
            }
            let ok = known
                .get(index)
                .is_some_and(|k| k.verify(self.text.as_bytes(), &sig.bytes));
            if !ok {
                return Err(NoteError::InvalidSignature {
                    name: sig.name.clone(),
                    key_id: sig.key_id,
                });
            }
            verified.push(VerifiedSignature {
                verifier: index,
                signature: sig.clone(),
            });
        }
        if verified.is_empty() {
            return Err(NoteError::NoKnownSignature);
        }
        Ok(verified)
    }
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)?;
        f.write_str("\n")?;
        for s in &self.signatures {
            f.write_str(&s.to_line())?;
        }
        Ok(())
    }
}

impl NoteSigner {
    /// Sign a note text with an Ed25519 (0x01) key. Refused for other algorithms: a cosignature
    /// key signs with a timestamp through `CosignatureSigner`.
    pub fn sign_text(&self, text: &str) -> Result<Signature, super::keys::KeyError> {
        if self.algorithm() != super::keys::KeyAlgorithm::Ed25519 {
            return Err(super::keys::KeyError::WrongAlgorithm {
                name: self.name().into(),
                got: self.algorithm(),
                want: super::keys::KeyAlgorithm::Ed25519,
            });
        }
        Ok(Signature {
            name: self.name().into(),
            key_id: self.key_id(),
            bytes: self.sign_raw(text.as_bytes()).to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tlog::keys::KeyAlgorithm;

    fn signed(text: &str) -> (Note, NoteSigner) {
        let k = NoteSigner::generate("example.com/k", KeyAlgorithm::Ed25519).unwrap();
        let mut n = Note::new(text).unwrap();
        n.sign(&k).unwrap();
        (n, k)
    }

    #[test]
    fn round_trip_and_blank_lines_in_text() {
        for text in ["a\n", "a\n\nb\n", "a\n\n", "\n"] {
            let (n, k) = signed(text);
            let b = n.to_bytes();
            let p = Note::parse(&b).unwrap();
            assert_eq!(p.text(), text);
            assert_eq!(p.to_bytes(), b);
            p.verify(&[k.verifier()]).unwrap();
        }
    }

    #[test]
    fn malformed_notes_refused() {
        let (n, _) = signed("hello\n");
        let good = n.to_string();
        let sig_line = n.signatures()[0].to_line();
        let cases: Vec<String> = vec![
            good.trim_end_matches('\n').into(),   // no final newline
            good.replacen("\n\n", "\n", 1),       // no blank line
            good.replacen("hello", "hel\rlo", 1), // control character
            good.replacen("hello", "hel\tlo", 1), // tab is a control character
            "hello\n\n".into(),                   // no signatures
            format!("hello\n\n{sig_line}\n"),     // empty line among signatures
            format!("hello\n\n{}", sig_line.replacen('\u{2014}', "-", 1)), // not an em dash
            format!("hello\n\n{}", sig_line.replacen(' ', "  ", 1)), // double space
            format!("hello\n\n{}", sig_line.replacen("example.com/k", "a+b", 1)),
            format!("hello\n\n\u{2014} name \n"), // empty signature
            format!("hello\n\n\u{2014} name AAAA\n"), // 3 bytes: shorter than key ID + 1
            format!("hello\n\n\u{2014} name AAAAAAB=\n"), // non-canonical base64
            format!("hello\n\n\u{2014} name !!!!\n"), // not base64
            format!("hello\n\n{}", sig_line.repeat(MAX_SIGNATURES + 1)),
        ];
        for c in cases {
            assert!(Note::parse(c.as_bytes()).is_err(), "accepted {c:?}");
        }
        assert!(Note::parse(b"hello\n\n\xff\n").is_err());
        assert!(Note::new("no newline").is_err());
        // Exactly MAX_SIGNATURES lines are fine.
        let many = format!("hello\n\n{}", sig_line.repeat(MAX_SIGNATURES));
        assert!(Note::parse(many.as_bytes()).is_ok());
    }

    #[test]
    fn unknown_signers_ignored_known_bad_refused() {
        let (mut n, k) = signed("text\n");
        let other = NoteSigner::generate("other", KeyAlgorithm::Ed25519).unwrap();
        n.sign(&other).unwrap();
        // Only `k` known: `other` is ignored.
        let v = n.verify(&[k.verifier()]).unwrap();
        assert_eq!(v.len(), 1);
        // No known key at all: refused.
        let stranger = NoteSigner::generate("stranger", KeyAlgorithm::Ed25519).unwrap();
        assert!(matches!(
            n.verify(&[stranger.verifier()]),
            Err(NoteError::NoKnownSignature)
        ));
        // Same name, different key (so different ID): ignored, not an error.
        let twin = NoteSigner::generate("example.com/k", KeyAlgorithm::Ed25519).unwrap();
        assert!(matches!(
            n.verify(&[twin.verifier()]),
            Err(NoteError::NoKnownSignature)
        ));
        // A known key with a bad signature fails the whole note, even if another verifies.
        let mut bad = n.clone();
        let mut sig = bad.signatures()[1].clone();
        sig.bytes[0] ^= 1;
        bad.add_signature(sig).unwrap();
        assert!(matches!(
            bad.verify(&[k.verifier(), other.verifier()]),
            Err(NoteError::InvalidSignature { .. })
        ));
        // Tampered text.
        let tampered = n.to_string().replacen("text", "texT", 1);
        let t = Note::parse(tampered.as_bytes()).unwrap();
        assert!(t.verify(&[k.verifier()]).is_err());
    }
}
