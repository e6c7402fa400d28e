//! Hybrid Ed25519 + SLH-DSA-SHA2-128s (FIPS 205): a signature is valid only when BOTH halves
//! verify over the same message, so it stays unforgeable as long as either scheme holds
//! (SLH-DSA against a quantum computer, Ed25519 against a flaw in the young SLH-DSA code).
//!
//! Wire format (see docs/keys.md):
//! - keytype = scheme = `ed25519-slh-dsa-sha2-128s`;
//!   `keyval = {"ed25519": hex(32-byte Ed25519 key), "slh-dsa-sha2-128s": hex(32-byte SLH-DSA
//!   key)}`, no other members.
//! - signature = `u16be(64) || ed25519_sig || u16be(7856) || slh_dsa_sig`, nothing after.
//!
//! Domain separation: both halves sign under the label [`CONTEXT`]. The Ed25519 half signs
//! `CONTEXT || 0x00 || msg`; the SLH-DSA half signs `msg` with FIPS 205 context string
//! `CONTEXT`. A half lifted out of a hybrid signature therefore never verifies as a plain
//! Ed25519 or plain (empty-context) SLH-DSA signature over `msg`, and a plain Ed25519 signature
//! made by the same Ed25519 key never counts as the hybrid's half.

use std::collections::BTreeMap;

use ed25519_dalek::{Signer as _, SigningKey as EdSigningKey, VerifyingKey as EdVerifyingKey};
use serde_json::Value;
use slh_dsa::{Sha2_128s, SigningKey as SlhSigningKey, VerifyingKey as SlhVerifyingKey};
use zeroize::Zeroize;

use super::{CryptoError, PublicKey, ed25519, names};

const SCHEME: &str = names::HYBRID;
/// Domain-separation label both halves sign under.
pub const CONTEXT: &[u8] = b"airlock/ed25519-slh-dsa-sha2-128s/v1";
/// keyval member holding the Ed25519 half.
pub const KEYVAL_ED25519: &str = "ed25519";
/// keyval member holding the SLH-DSA half.
pub const KEYVAL_SLH_DSA: &str = "slh-dsa-sha2-128s";
const ED_SIG_LEN: usize = 64;
/// FIPS 205 table 2: SLH-DSA-SHA2-128s signatures are 7856 bytes.
const SLH_SIG_LEN: usize = 7856;
const SLH_PK_LEN: usize = 32;
/// Total length of a hybrid signature.
pub const SIGNATURE_LEN: usize = 2 + ED_SIG_LEN + 2 + SLH_SIG_LEN;

fn malformed_key(reason: impl Into<String>) -> CryptoError {
    CryptoError::MalformedKey {
        scheme: SCHEME.into(),
        reason: reason.into(),
    }
}

fn malformed_sig(reason: impl Into<String>) -> CryptoError {
    CryptoError::MalformedSignature {
        scheme: SCHEME.into(),
        reason: reason.into(),
    }
}

fn ed_message(msg: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(CONTEXT.len() + 1 + msg.len());
    m.extend_from_slice(CONTEXT);
    m.push(0);
    m.extend_from_slice(msg);
    m
}

fn hex_member<const N: usize>(key: &PublicKey, name: &str) -> Result<[u8; N], CryptoError> {
    let s = key
        .keyval
        .get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| malformed_key(format!("keyval.{name} is missing or not a string")))?;
    let raw = hex::decode(s).map_err(|e| malformed_key(format!("keyval.{name}: not hex: {e}")))?;
    raw.as_slice()
        .try_into()
        .map_err(|_| malformed_key(format!("keyval.{name}: {} bytes, expected {N}", raw.len())))
}

pub(crate) fn verifying_keys(
    key: &PublicKey,
) -> Result<(EdVerifyingKey, SlhVerifyingKey<Sha2_128s>), CryptoError> {
    if key.keyval.len() != 2 {
        return Err(malformed_key(format!(
            "keyval must hold exactly {KEYVAL_ED25519:?} and {KEYVAL_SLH_DSA:?}"
        )));
    }
    let ed: [u8; 32] = hex_member(key, KEYVAL_ED25519)?;
    let ed = ed25519::strict_verifying_key(&ed).map_err(malformed_key)?;
    let slh: [u8; SLH_PK_LEN] = hex_member(key, KEYVAL_SLH_DSA)?;
    let slh = SlhVerifyingKey::<Sha2_128s>::try_from(slh.as_slice())
        .map_err(|_| malformed_key("not an SLH-DSA-SHA2-128s public key"))?;
    Ok((ed, slh))
}

/// Split a hybrid signature into its two halves, checking the framing exactly.
fn split(sig: &[u8]) -> Result<(&[u8], &[u8]), CryptoError> {
    fn take<'a>(rest: &mut &'a [u8], want: usize, what: &str) -> Result<&'a [u8], CryptoError> {
        let (len, tail) = rest
            .split_first_chunk::<2>()
            .ok_or_else(|| malformed_sig(format!("truncated before the {what} length")))?;
        let len = usize::from(u16::from_be_bytes(*len));
        if len != want {
            return Err(malformed_sig(format!(
                "{what} half is {len} bytes, expected {want}"
            )));
        }
        let (part, tail) = tail
            .split_at_checked(len)
            .ok_or_else(|| malformed_sig(format!("truncated inside the {what} half")))?;
        *rest = tail;
        Ok(part)
    }
    let mut rest = sig;
    let ed = take(&mut rest, ED_SIG_LEN, "Ed25519")?;
    let slh = take(&mut rest, SLH_SIG_LEN, "SLH-DSA")?;
    if !rest.is_empty() {
        return Err(malformed_sig(format!(
            "{} unexpected bytes after the SLH-DSA half",
            rest.len()
        )));
    }
    Ok((ed, slh))
}

pub(crate) fn verify(key: &PublicKey, msg: &[u8], sig: &[u8]) -> Result<(), CryptoError> {
    let (ed_vk, slh_vk) = verifying_keys(key)?;
    let (ed_sig, slh_sig) = split(sig)?;
    let bad = || CryptoError::BadSignature {
        scheme: SCHEME.into(),
    };
    // Both halves are always checked; the result is the conjunction.
    let ed_sig = ed25519_dalek::Signature::from_slice(ed_sig)
        .map_err(|e| malformed_sig(format!("Ed25519 half: {e}")))?;
    let ed_ok = ed_vk.verify_strict(&ed_message(msg), &ed_sig).is_ok();
    let slh_sig = slh_dsa::Signature::<Sha2_128s>::try_from(slh_sig)
        .map_err(|_| malformed_sig("SLH-DSA half does not decode"))?;
    let slh_ok = slh_vk
        .try_verify_with_context(msg, CONTEXT, &slh_sig)
        .is_ok();
    if ed_ok && slh_ok { Ok(()) } else { Err(bad()) }
}

/// A hybrid private key: an Ed25519 key and an SLH-DSA-SHA2-128s key.
pub struct HybridPrivate {
    ed: EdSigningKey,
    slh: SlhSigningKey<Sha2_128s>,
    public: PublicKey,
}

impl HybridPrivate {
    pub fn generate() -> Result<Self, CryptoError> {
        let mut seeds = [0u8; 32 + 3 * 16];
        getrandom::fill(&mut seeds).map_err(|e| CryptoError::KeyGeneration(e.to_string()))?;
        let (ed_seed, slh_seeds) = seeds.split_at(32);
        let mut ed_arr = [0u8; 32];
        ed_arr.copy_from_slice(ed_seed);
        let ed = EdSigningKey::from_bytes(&ed_arr);
        ed_arr.zeroize();
        let (sk_seed, rest) = slh_seeds.split_at(16);
        let (sk_prf, pk_seed) = rest.split_at(16);
        let slh = SlhSigningKey::<Sha2_128s>::slh_keygen_internal(sk_seed, sk_prf, pk_seed);
        seeds.zeroize();
        // Freshly derived from its seeds: no need to recompute the public key.
        Self::assemble(ed, slh)
    }

    /// Combine two halves read from a key file. The SLH-DSA key's public half is recomputed
    /// from its secret seeds and must match the stored one, so a tampered file is refused
    /// instead of producing signatures that never verify.
    pub(crate) fn from_parts(
        ed: EdSigningKey,
        slh: SlhSigningKey<Sha2_128s>,
    ) -> Result<Self, CryptoError> {
        let bytes = zeroize::Zeroizing::new(slh.to_vec());
        let (sk_seed, rest) = bytes.split_at(16);
        let (sk_prf, pk) = rest.split_at(16);
        let (pk_seed, _) = pk.split_at(16);
        let recomputed = SlhSigningKey::<Sha2_128s>::slh_keygen_internal(sk_seed, sk_prf, pk_seed);
        let slh_vk: &SlhVerifyingKey<Sha2_128s> = slh.as_ref();
        let rec_vk: &SlhVerifyingKey<Sha2_128s> = recomputed.as_ref();
        if slh_vk != rec_vk {
            return Err(malformed_key(
                "SLH-DSA private key does not match its public key",
            ));
        }
        Self::assemble(ed, slh)
    }

    fn assemble(ed: EdSigningKey, slh: SlhSigningKey<Sha2_128s>) -> Result<Self, CryptoError> {
        let slh_vk: &SlhVerifyingKey<Sha2_128s> = slh.as_ref();
        let mut keyval = BTreeMap::new();
        keyval.insert(
            KEYVAL_ED25519.to_string(),
            Value::String(hex::encode(ed.verifying_key().as_bytes())),
        );
        keyval.insert(
            KEYVAL_SLH_DSA.to_string(),
            Value::String(hex::encode(slh_vk.to_bytes())),
        );
        let public = PublicKey {
            keytype: SCHEME.into(),
            scheme: SCHEME.into(),
            keyval,
            unrecognized: BTreeMap::new(),
        };
        Ok(HybridPrivate { ed, slh, public })
    }

    pub(crate) fn ed25519_key(&self) -> &EdSigningKey {
        &self.ed
    }

    pub(crate) fn slh_dsa_key(&self) -> &SlhSigningKey<Sha2_128s> {
        &self.slh
    }

    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    pub fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let ed_sig = self.ed.sign(&ed_message(msg)).to_bytes();
        let slh_sig = self
            .slh
            .try_sign_with_context(msg, CONTEXT, None)
            .map_err(|e| CryptoError::Signing {
                scheme: SCHEME.into(),
                reason: format!("SLH-DSA half: {e}"),
            })?
            .to_vec();
        if slh_sig.len() != SLH_SIG_LEN {
            return Err(CryptoError::Signing {
                scheme: SCHEME.into(),
                reason: format!("SLH-DSA signature of {} bytes", slh_sig.len()),
            });
        }
        Ok(encode(&ed_sig, &slh_sig))
    }
}

/// Frame two halves as a hybrid signature. Lengths are fixed and small, so they always fit.
fn encode(ed_sig: &[u8], slh_sig: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + ed_sig.len() + slh_sig.len());
    for part in [ed_sig, slh_sig] {
        let len = u16::try_from(part.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(part);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::OnceLock;

    /// SLH-DSA-128s signing is slow (a few hundred ms), so tests share two keys and a few
    /// signatures.
    fn keys() -> &'static (HybridPrivate, HybridPrivate) {
        static K: OnceLock<(HybridPrivate, HybridPrivate)> = OnceLock::new();
        K.get_or_init(|| {
            (
                HybridPrivate::generate().unwrap(),
                HybridPrivate::generate().unwrap(),
            )
        })
    }

    fn sigs() -> &'static (Vec<u8>, Vec<u8>, Vec<u8>) {
        static S: OnceLock<(Vec<u8>, Vec<u8>, Vec<u8>)> = OnceLock::new();
        S.get_or_init(|| {
            let (a, b) = keys();
            (
                a.sign(b"message one").unwrap(),
                a.sign(b"message two").unwrap(),
                b.sign(b"message one").unwrap(),
            )
        })
    }

    #[test]
    fn round_trip() {
        let (a, _) = keys();
        let (s1, _, _) = sigs();
        assert_eq!(s1.len(), SIGNATURE_LEN);
        verify(a.public_key(), b"message one", s1).unwrap();
        a.public_key().validate().unwrap();
    }

    #[test]
    fn flipped_bits_refused() {
        let (a, _) = keys();
        let (s1, _, _) = sigs();
        // One bit in the Ed25519 half, one in the SLH-DSA half, one in each length.
        for pos in [0, 1, 2, 40, 66, 67, 68, 500, SIGNATURE_LEN - 1] {
            let mut bad = s1.clone();
            bad[pos] ^= 0x01;
            assert!(
                verify(a.public_key(), b"message one", &bad).is_err(),
                "{pos}"
            );
        }
        assert!(verify(a.public_key(), b"message onE", s1).is_err());
    }

    #[test]
    fn wrong_key_refused() {
        let (_, b) = keys();
        let (s1, _, _) = sigs();
        assert!(matches!(
            verify(b.public_key(), b"message one", s1),
            Err(CryptoError::BadSignature { .. })
        ));
    }

    #[test]
    fn stripped_half_refused() {
        let (a, _) = keys();
        let (s1, _, _) = sigs();
        let (ed, slh) = split(s1).unwrap();
        // Only one half, framed or raw.
        for only in [
            ed.to_vec(),
            slh.to_vec(),
            s1[..2 + ED_SIG_LEN].to_vec(),
            s1[2 + ED_SIG_LEN..].to_vec(),
        ] {
            assert!(verify(a.public_key(), b"message one", &only).is_err());
        }
        // A half replaced by zeros (right framing, wrong content).
        let zeros_ed = encode(&[0u8; ED_SIG_LEN], slh);
        let zeros_slh = encode(ed, &[0u8; SLH_SIG_LEN]);
        for bad in [zeros_ed, zeros_slh] {
            assert!(matches!(
                verify(a.public_key(), b"message one", &bad),
                Err(CryptoError::BadSignature { .. })
            ));
        }
    }

    #[test]
    fn swapped_halves_refused() {
        let (a, _) = keys();
        let (s1, _, _) = sigs();
        let (ed, slh) = split(s1).unwrap();
        let swapped = encode(slh, ed);
        assert!(matches!(
            verify(a.public_key(), b"message one", &swapped),
            Err(CryptoError::MalformedSignature { .. })
        ));
        // Swapped keys inside the public key: each half under the other's member name.
        let mut key = a.public_key().clone();
        let e = key.keyval.remove(KEYVAL_ED25519).unwrap();
        let s = key.keyval.remove(KEYVAL_SLH_DSA).unwrap();
        key.keyval.insert(KEYVAL_ED25519.into(), s);
        key.keyval.insert(KEYVAL_SLH_DSA.into(), e);
        assert!(verify(&key, b"message one", s1).is_err());
    }

    #[test]
    fn replayed_half_refused() {
        let (a, _) = keys();
        let (s1, s2, s_other_key) = sigs();
        let (ed1, slh1) = split(s1).unwrap();
        let (ed2, slh2) = split(s2).unwrap();
        let (ed_b, slh_b) = split(s_other_key).unwrap();
        // Halves from another message by the same key.
        for bad in [encode(ed1, slh2), encode(ed2, slh1)] {
            assert!(matches!(
                verify(a.public_key(), b"message one", &bad),
                Err(CryptoError::BadSignature { .. })
            ));
        }
        // Halves from the same message by another key.
        for bad in [encode(ed1, slh_b), encode(ed_b, slh1)] {
            assert!(matches!(
                verify(a.public_key(), b"message one", &bad),
                Err(CryptoError::BadSignature { .. })
            ));
        }
    }

    /// The Ed25519 half is not a plain Ed25519 signature over the message, and a plain Ed25519
    /// signature by the same key is not a hybrid half.
    #[test]
    fn halves_are_domain_separated() {
        let (a, _) = keys();
        let (s1, _, _) = sigs();
        let (ed, slh) = split(s1).unwrap();
        let plain_key = ed25519::public_key_from_bytes(a.ed.verifying_key().as_bytes());
        assert!(plain_key.verify(b"message one", ed).is_err());
        // The SLH-DSA half does not verify as a pure SLH-DSA signature with empty context.
        let slh_sig = slh_dsa::Signature::<Sha2_128s>::try_from(slh).unwrap();
        let vk: &SlhVerifyingKey<Sha2_128s> = a.slh.as_ref();
        assert!(
            vk.try_verify_with_context(b"message one", b"", &slh_sig)
                .is_err()
        );
        // A plain Ed25519 signature by the same key, framed as the Ed25519 half.
        let plain_ed = a.ed.sign(b"message one").to_bytes();
        let forged = encode(&plain_ed, slh);
        assert!(verify(a.public_key(), b"message one", &forged).is_err());
    }

    #[test]
    fn malformed_key_and_signature_refused() {
        let (a, _) = keys();
        let (s1, _, _) = sigs();
        let mut trailing = s1.clone();
        trailing.push(0);
        assert!(verify(a.public_key(), b"message one", &trailing).is_err());
        for n in [0, 1, 2, 3, 66, 67, 68, SIGNATURE_LEN - 1] {
            assert!(verify(a.public_key(), b"message one", &s1[..n]).is_err());
        }
        let mut key = a.public_key().clone();
        key.keyval
            .insert("public".into(), Value::String("00".repeat(32)));
        assert!(matches!(
            verify(&key, b"message one", s1),
            Err(CryptoError::MalformedKey { .. })
        ));
        for (member, bad) in [
            (KEYVAL_ED25519, "zz".to_string()),
            (KEYVAL_ED25519, "00".repeat(31)),
            (KEYVAL_SLH_DSA, "00".repeat(33)),
            (KEYVAL_SLH_DSA, String::new()),
        ] {
            let mut key = a.public_key().clone();
            key.keyval.insert(member.into(), Value::String(bad));
            assert!(matches!(
                verify(&key, b"message one", s1),
                Err(CryptoError::MalformedKey { .. })
            ));
        }
        // Small-order Ed25519 half.
        let mut key = a.public_key().clone();
        let mut identity = [0u8; 32];
        identity[0] = 1;
        key.keyval
            .insert(KEYVAL_ED25519.into(), Value::String(hex::encode(identity)));
        assert!(verify(&key, b"message one", s1).is_err());
    }
}
