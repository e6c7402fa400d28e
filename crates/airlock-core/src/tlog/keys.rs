//! Signed-note keys (c2sp.org/signed-note): key IDs, verifier keys (vkeys) and signer keys.
//!
//! - key ID = `SHA-256(name || 0x0A || alg || public key)[:4]`, big endian.
//! - vkey   = `name+hex(key ID)+base64(alg || public key)`
//! - skey   = `PRIVATE+KEY+name+hex(key ID)+base64(alg || 32-byte Ed25519 seed)`
//!
//! Two algorithms are supported: plain Ed25519 note signatures (0x01, what a log signs its
//! checkpoints with) and timestamped Ed25519 cosignatures (0x04, c2sp.org/tlog-cosignature, what
//! witnesses sign with). Strings are parsed strictly: the key ID must be eight lowercase hex
//! digits and must match the name and key, base64 must be canonical, and small-order Ed25519
//! keys are refused, so any change to a key string is refused rather than silently accepted.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// Signature type byte of a note key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyAlgorithm {
    /// 0x01: Ed25519 over the note text (checkpoint signatures of a log).
    Ed25519,
    /// 0x04: timestamped Ed25519 cosignature/v1 (witness cosignatures).
    CosignatureV1,
}

impl KeyAlgorithm {
    pub fn byte(self) -> u8 {
        match self {
            KeyAlgorithm::Ed25519 => 0x01,
            KeyAlgorithm::CosignatureV1 => 0x04,
        }
    }

    pub fn from_byte(b: u8) -> Option<Self> {
        match b {
            0x01 => Some(KeyAlgorithm::Ed25519),
            0x04 => Some(KeyAlgorithm::CosignatureV1),
            _ => None,
        }
    }
}

impl fmt::Display for KeyAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyAlgorithm::Ed25519 => f.write_str("Ed25519 (0x01)"),
            KeyAlgorithm::CosignatureV1 => f.write_str("cosignature/v1 Ed25519 (0x04)"),
        }
    }
}

/// Why a key string or key could not be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("note key {what}: not of the form {form}")]
    Format {
        what: &'static str,
        form: &'static str,
    },
    #[error("note key: invalid key name {0:?} (must be non-empty, without spaces or '+')")]
    Name(String),
    #[error("note key {name}: key ID {got} is not eight lowercase hex digits")]
    KeyIdSyntax { name: String, got: String },
    #[error("note key {name}: key material is not canonical standard base64")]
    Base64 { name: String },
    #[error("note key {name}: unknown signature algorithm byte 0x{alg:02x}")]
    UnknownAlgorithm { name: String, alg: u8 },
    #[error("note key {name}: {got} bytes of key material, expected 32")]
    Length { name: String, got: usize },
    #[error(
        "note key {name}: key ID {got:08x} does not match the name and key (expected {want:08x})"
    )]
    KeyIdMismatch { name: String, got: u32, want: u32 },
    #[error("note key {name}: not a valid Ed25519 public key ({reason})")]
    BadPublicKey { name: String, reason: String },
    #[error("note key {name}: algorithm {got} where {want} is required")]
    WrongAlgorithm {
        name: String,
        got: KeyAlgorithm,
        want: KeyAlgorithm,
    },
    #[error("note key generation: {0}")]
    Generation(String),
}

/// Key names must be non-empty and contain no Unicode space and no '+'.
pub fn is_valid_key_name(name: &str) -> bool {
    !name.is_empty() && !name.contains('+') && !name.chars().any(char::is_whitespace)
}

/// `SHA-256(name || 0x0A || alg || public key)[:4]` as a big-endian u32.
pub fn key_id(name: &str, alg: KeyAlgorithm, public_key: &[u8]) -> u32 {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update([b'\n', alg.byte()]);
    h.update(public_key);
    let d = h.finalize();
    u32::from_be_bytes([d[0], d[1], d[2], d[3]])
}

fn parse_key_id(name: &str, s: &str) -> Result<u32, KeyError> {
    let ok = s.len() == 8 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    let parsed = if ok {
        u32::from_str_radix(s, 16).ok()
    } else {
        None
    };
    parsed.ok_or_else(|| KeyError::KeyIdSyntax {
        name: name.into(),
        got: s.into(),
    })
}

/// Decode `base64(alg || 32 bytes)`.
fn parse_material(name: &str, s: &str) -> Result<(KeyAlgorithm, Zeroizing<[u8; 32]>), KeyError> {
    let raw = Zeroizing::new(
        STANDARD
            .decode(s)
            .map_err(|_| KeyError::Base64 { name: name.into() })?,
    );
    let Some((&alg_byte, key)) = raw.split_first() else {
        return Err(KeyError::Length {
            name: name.into(),
            got: 0,
        });
    };
    let alg = KeyAlgorithm::from_byte(alg_byte).ok_or_else(|| KeyError::UnknownAlgorithm {
        name: name.into(),
        alg: alg_byte,
    })?;
    let key: [u8; 32] = key.try_into().map_err(|_| KeyError::Length {
        name: name.into(),
        got: key.len(),
    })?;
    Ok((alg, Zeroizing::new(key)))
}

fn verifying_key(name: &str, bytes: &[u8; 32]) -> Result<VerifyingKey, KeyError> {
    let vk = VerifyingKey::from_bytes(bytes).map_err(|e| KeyError::BadPublicKey {
        name: name.into(),
        reason: e.to_string(),
    })?;
    if vk.is_weak() {
        return Err(KeyError::BadPublicKey {
            name: name.into(),
            reason: "small-order point".into(),
        });
    }
    Ok(vk)
}

/// A public note key: verifies note signatures (0x01) or cosignatures (0x04).
#[derive(Clone, PartialEq, Eq)]
pub struct NoteVerifier {
    name: String,
    key_id: u32,
    alg: KeyAlgorithm,
    key: VerifyingKey,
}

impl fmt::Debug for NoteVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NoteVerifier({})", self.to_vkey())
    }
}

impl NoteVerifier {
    /// A verifier for `name` and a raw Ed25519 public key.
    pub fn new(name: &str, alg: KeyAlgorithm, public_key: &[u8; 32]) -> Result<Self, KeyError> {
        if !is_valid_key_name(name) {
            return Err(KeyError::Name(name.into()));
        }
        let key = verifying_key(name, public_key)?;
        Ok(NoteVerifier {
            name: name.into(),
            key_id: key_id(name, alg, public_key),
            alg,
            key,
        })
    }

    /// Parse a vkey `name+hash+base64(alg||key)`.
    pub fn from_vkey(vkey: &str) -> Result<Self, KeyError> {
        let form = "name+hash+base64(alg||key)";
        let (name, rest) = vkey.split_once('+').ok_or(KeyError::Format {
            what: "verifier",
            form,
        })?;
        let (hash, material) = rest.split_once('+').ok_or(KeyError::Format {
            what: "verifier",
            form,
        })?;
        if !is_valid_key_name(name) {
            return Err(KeyError::Name(name.into()));
        }
        let got = parse_key_id(name, hash)?;
        let (alg, key) = parse_material(name, material)?;
        let want = key_id(name, alg, key.as_slice());
        if got != want {
            return Err(KeyError::KeyIdMismatch {
                name: name.into(),
                got,
                want,
            });
        }
        Self::new(name, alg, &key)
    }

    /// The vkey string.
    pub fn to_vkey(&self) -> String {
        let mut material = Vec::with_capacity(33);
        material.push(self.alg.byte());
        material.extend_from_slice(self.key.as_bytes());
        format!(
            "{}+{:08x}+{}",
            self.name,
            self.key_id,
            STANDARD.encode(material)
        )
    }

    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn key_id(&self) -> u32 {
        self.key_id
    }
    pub fn algorithm(&self) -> KeyAlgorithm {
        self.alg
    }
    /// The raw 32-byte Ed25519 public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    /// Whether `sig` (without the 4-byte key ID) is a valid signature by this key over the note
    /// `text`. For cosignature/v1 keys `sig` is the 8-byte timestamp followed by the Ed25519
    /// signature over `cosignature/v1\ntime <ts>\n` + text; timestamps above 2^63-1 are refused.
    pub fn verify(&self, text: &[u8], sig: &[u8]) -> bool {
        match self.alg {
            KeyAlgorithm::Ed25519 => ed25519_dalek::Signature::from_slice(sig)
                .is_ok_and(|s| self.key.verify_strict(text, &s).is_ok()),
            KeyAlgorithm::CosignatureV1 => {
                let Some((ts, ed_sig)) = split_timestamped(sig) else {
                    return false;
                };
                let msg = cosignature_message(ts, text);
                ed25519_dalek::Signature::from_slice(ed_sig)
                    .is_ok_and(|s| self.key.verify_strict(&msg, &s).is_ok())
            }
        }
    }
}

impl fmt::Display for NoteVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_vkey())
    }
}

impl FromStr for NoteVerifier {
    type Err = KeyError;
    fn from_str(s: &str) -> Result<Self, KeyError> {
        Self::from_vkey(s)
    }
}

/// Split a cosignature/v1 signature into its timestamp and the 64-byte Ed25519 signature.
/// Refuses any other length and timestamps above 2^63 - 1.
pub(crate) fn split_timestamped(sig: &[u8]) -> Option<(u64, &[u8])> {
    if sig.len() != 72 {
        return None;
    }
    let (ts, ed) = sig.split_at(8);
    let ts = u64::from_be_bytes(ts.try_into().ok()?);
    if ts > i64::MAX as u64 {
        return None;
    }
    Some((ts, ed))
}

/// The message a cosignature/v1 signs: `cosignature/v1\ntime <ts>\n` followed by the note text.
pub fn cosignature_message(timestamp: u64, text: &[u8]) -> Vec<u8> {
    let mut msg = format!("cosignature/v1\ntime {timestamp}\n").into_bytes();
    msg.extend_from_slice(text);
    msg
}

/// A private note key (Ed25519 seed) with its name, key ID and algorithm.
///
/// Used directly for log checkpoint signatures (alg 0x01) through [`NoteSigner::sign_text`]; a
/// 0x04 key signs cosignatures through `tlog::cosignature::CosignatureSigner`.
pub struct NoteSigner {
    name: String,
    key_id: u32,
    alg: KeyAlgorithm,
    key: SigningKey,
}

impl fmt::Debug for NoteSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "NoteSigner({}+{:08x}, {})",
            self.name, self.key_id, self.alg
        )
    }
}

impl NoteSigner {
    /// A signer from a 32-byte Ed25519 seed.
    pub fn from_seed(name: &str, alg: KeyAlgorithm, seed: &[u8; 32]) -> Result<Self, KeyError> {
        if !is_valid_key_name(name) {
            return Err(KeyError::Name(name.into()));
        }
        let key = SigningKey::from_bytes(seed);
        let key_id = key_id(name, alg, key.verifying_key().as_bytes());
        Ok(NoteSigner {
            name: name.into(),
            key_id,
            alg,
            key,
        })
    }

    /// A fresh key from the operating system's randomness.
    pub fn generate(name: &str, alg: KeyAlgorithm) -> Result<Self, KeyError> {
        let mut seed = Zeroizing::new([0u8; 32]);
        getrandom::fill(seed.as_mut_slice()).map_err(|e| KeyError::Generation(e.to_string()))?;
        Self::from_seed(name, alg, &seed)
    }

    /// Parse a signer key `PRIVATE+KEY+name+hash+base64(alg||seed)`; the key ID must match the
    /// public key derived from the seed.
    pub fn from_skey(skey: &str) -> Result<Self, KeyError> {
        let form = "PRIVATE+KEY+name+hash+base64(alg||seed)";
        let err = KeyError::Format {
            what: "signer",
            form,
        };
        let rest = skey.strip_prefix("PRIVATE+KEY+").ok_or(err)?;
        let (name, rest) = rest.split_once('+').ok_or(KeyError::Format {
            what: "signer",
            form,
        })?;
        let (hash, material) = rest.split_once('+').ok_or(KeyError::Format {
            what: "signer",
            form,
        })?;
        if !is_valid_key_name(name) {
            return Err(KeyError::Name(name.into()));
        }
        let got = parse_key_id(name, hash)?;
        let (alg, seed) = parse_material(name, material)?;
        let signer = Self::from_seed(name, alg, &seed)?;
        if signer.key_id != got {
            return Err(KeyError::KeyIdMismatch {
                name: name.into(),
                got,
                want: signer.key_id,
            });
        }
        Ok(signer)
    }

    /// The signer key string. Secret: keep it out of logs.
    pub fn to_skey(&self) -> Zeroizing<String> {
        let mut material = Zeroizing::new(Vec::with_capacity(33));
        material.push(self.alg.byte());
        material.extend_from_slice(self.key.as_bytes());
        Zeroizing::new(format!(
            "PRIVATE+KEY+{}+{:08x}+{}",
            self.name,
            self.key_id,
            STANDARD.encode(material.as_slice())
        ))
    }

    /// The matching verifier.
    pub fn verifier(&self) -> NoteVerifier {
        NoteVerifier {
            name: self.name.clone(),
            key_id: self.key_id,
            alg: self.alg,
            key: self.key.verifying_key(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn key_id(&self) -> u32 {
        self.key_id
    }
    pub fn algorithm(&self) -> KeyAlgorithm {
        self.alg
    }

    /// Raw Ed25519 signature over `msg` (no key ID, no timestamp).
    pub(crate) fn sign_raw(&self, msg: &[u8]) -> [u8; 64] {
        self.key.sign(msg).to_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_strings_round_trip() {
        for alg in [KeyAlgorithm::Ed25519, KeyAlgorithm::CosignatureV1] {
            let s = NoteSigner::generate("example.com/log", alg).unwrap();
            let again = NoteSigner::from_skey(&s.to_skey()).unwrap();
            assert_eq!(again.verifier(), s.verifier());
            let v = NoteVerifier::from_vkey(&s.verifier().to_vkey()).unwrap();
            assert_eq!(v, s.verifier());
            assert_eq!(v.algorithm(), alg);
        }
    }

    #[test]
    fn same_key_different_algorithm_has_different_id() {
        let seed = [7u8; 32];
        let a = NoteSigner::from_seed("w", KeyAlgorithm::Ed25519, &seed).unwrap();
        let b = NoteSigner::from_seed("w", KeyAlgorithm::CosignatureV1, &seed).unwrap();
        assert_ne!(a.key_id(), b.key_id());
    }

    #[test]
    fn bad_names_refused() {
        for name in ["", "a+b", "a b", "a\u{a0}b", "a\tb"] {
            assert!(NoteSigner::from_seed(name, KeyAlgorithm::Ed25519, &[1; 32]).is_err());
        }
    }

    #[test]
    fn small_order_key_refused() {
        // The identity point encoding (y = 1) is a small-order key.
        let mut id = [0u8; 32];
        id[0] = 1;
        assert!(NoteVerifier::new("x", KeyAlgorithm::Ed25519, &id).is_err());
    }
}
