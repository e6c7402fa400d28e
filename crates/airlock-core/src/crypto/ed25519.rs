//! Ed25519 (RFC 8032) with strict verification: non-canonical signatures and small-order keys
//! are refused, so a signature cannot be mauled into a second valid one.

use std::collections::BTreeMap;

use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use serde_json::Value;
use zeroize::Zeroize;

use super::{CryptoError, PublicKey};

const SCHEME: &str = "ed25519";

pub(crate) fn public_key_from_bytes(bytes: &[u8; 32]) -> PublicKey {
    let mut keyval = BTreeMap::new();
    keyval.insert("public".to_string(), Value::String(hex::encode(bytes)));
    PublicKey {
        keytype: SCHEME.into(),
        scheme: SCHEME.into(),
        keyval,
        unrecognized: BTreeMap::new(),
    }
}

fn malformed_key(reason: impl Into<String>) -> CryptoError {
    CryptoError::MalformedKey {
        scheme: SCHEME.into(),
        reason: reason.into(),
    }
}

pub(crate) fn verifying_key(key: &PublicKey) -> Result<VerifyingKey, CryptoError> {
    let hex_str = key
        .public_str()
        .ok_or_else(|| malformed_key("keyval.public is missing"))?;
    let raw = hex::decode(hex_str).map_err(|e| malformed_key(format!("not hex: {e}")))?;
    let arr: [u8; 32] = raw
        .as_slice()
        .try_into()
        .map_err(|_| malformed_key(format!("{} bytes, expected 32", raw.len())))?;
    strict_verifying_key(&arr).map_err(malformed_key)
}

/// The point's canonical encoding: a key given with a non-canonical y coordinate (or in upper-case
/// hex) is the same key as its canonical form.
pub(crate) fn canonical_bytes(vk: &VerifyingKey) -> [u8; 32] {
    vk.to_edwards().compress().to_bytes()
}

/// Decode a 32-byte Ed25519 public key, refusing small-order points.
pub(crate) fn strict_verifying_key(bytes: &[u8; 32]) -> Result<VerifyingKey, String> {
    let vk = VerifyingKey::from_bytes(bytes).map_err(|e| format!("Ed25519 key: {e}"))?;
    if vk.is_weak() {
        return Err("small-order Ed25519 public key".into());
    }
    Ok(vk)
}

pub(crate) fn verify(key: &PublicKey, msg: &[u8], sig: &[u8]) -> Result<(), CryptoError> {
    let vk = verifying_key(key)?;
    let sig =
        ed25519_dalek::Signature::from_slice(sig).map_err(|e| CryptoError::MalformedSignature {
            scheme: SCHEME.into(),
            reason: e.to_string(),
        })?;
    vk.verify_strict(msg, &sig)
        .map_err(|_| CryptoError::BadSignature {
            scheme: SCHEME.into(),
        })
}

/// An Ed25519 private key with its public half.
pub struct Ed25519Private {
    signing: SigningKey,
    public: PublicKey,
}

impl Ed25519Private {
    pub fn generate() -> Result<Self, CryptoError> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| CryptoError::KeyGeneration(e.to_string()))?;
        let k = Self::from_seed(&seed);
        seed.zeroize();
        Ok(k)
    }

    pub fn from_seed(seed: &[u8; 32]) -> Self {
        Self::from_signing_key(SigningKey::from_bytes(seed))
    }

    pub fn seed(&self) -> [u8; 32] {
        self.signing.to_bytes()
    }

    pub(crate) fn signing_key(&self) -> &SigningKey {
        &self.signing
    }

    pub(crate) fn from_signing_key(signing: SigningKey) -> Self {
        let public = public_key_from_bytes(signing.verifying_key().as_bytes());
        Ed25519Private { signing, public }
    }

    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    pub fn sign(&self, msg: &[u8]) -> Vec<u8> {
        self.signing.sign(msg).to_bytes().to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_tamper() {
        let k = Ed25519Private::generate().unwrap();
        let sig = k.sign(b"hello");
        verify(k.public_key(), b"hello", &sig).unwrap();
        let mut bad = sig.clone();
        bad[0] ^= 1;
        assert!(verify(k.public_key(), b"hello", &bad).is_err());
        let other = Ed25519Private::generate().unwrap();
        assert!(verify(other.public_key(), b"hello", &sig).is_err());
    }

    /// RFC 8032 section 7.1, test 2: one-byte message.
    #[test]
    fn rfc8032_vector() {
        let seed: [u8; 32] =
            hex::decode("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb")
                .unwrap()
                .try_into()
                .unwrap();
        let k = Ed25519Private::from_seed(&seed);
        assert_eq!(
            k.public_key().public_str().unwrap(),
            "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c"
        );
        let sig = k.sign(&[0x72]);
        assert_eq!(
            hex::encode(&sig),
            "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da\
             085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"
        );
        verify(k.public_key(), &[0x72], &sig).unwrap();
    }

    /// A signature whose S is not reduced mod the group order (S + L) verifies under lax
    /// RFC 8032 implementations; strict verification must refuse it (malleability).
    #[test]
    fn non_canonical_s_refused() {
        let k = Ed25519Private::generate().unwrap();
        let sig = k.sign(b"msg");
        // L = 2^252 + 27742317777372353535851937790883648493, little endian.
        let l: [u8; 32] =
            hex::decode("edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010")
                .unwrap()
                .try_into()
                .unwrap();
        let mut s = [0u8; 32];
        s.copy_from_slice(&sig[32..]);
        let mut carry = 0u16;
        let mut s_plus_l = [0u8; 32];
        for i in 0..32 {
            let v = u16::from(s[i]) + u16::from(l[i]) + carry;
            s_plus_l[i] = (v & 0xff) as u8;
            carry = v >> 8;
        }
        // S < L < 2^253, so S + L < 2^254 fits in 32 bytes.
        assert_eq!(carry, 0);
        let mut mauled = sig.clone();
        mauled[32..].copy_from_slice(&s_plus_l);
        assert_ne!(mauled, sig);
        let err = verify(k.public_key(), b"msg", &mauled).unwrap_err();
        assert!(
            matches!(
                err,
                CryptoError::MalformedSignature { .. } | CryptoError::BadSignature { .. }
            ),
            "{err}"
        );
    }

    /// A small-order public key (here the identity point, encoded as y = 1) lets anyone forge
    /// signatures under lax verification; it is refused as a key.
    #[test]
    fn small_order_key_refused() {
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let key = public_key_from_bytes(&identity);
        // With the identity as A and R, S = 0 is a "valid" signature over anything for a lax
        // verifier: [S]B = R + [k]A.
        let mut forged = [0u8; 64];
        forged[0] = 1;
        let err = verify(&key, b"anything", &forged).unwrap_err();
        assert!(matches!(err, CryptoError::MalformedKey { .. }), "{err}");
        // A point of order 8 as well.
        let order8 =
            hex::decode("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa")
                .unwrap();
        let key = public_key_from_bytes(&order8.try_into().unwrap());
        assert!(verify(&key, b"anything", &forged).is_err());
    }

    #[test]
    fn malformed_inputs_refused_without_panic() {
        let k = Ed25519Private::generate().unwrap();
        let sig = k.sign(b"m");
        for bad_sig in [&sig[..63], &[][..], &[0u8; 65][..]] {
            assert!(verify(k.public_key(), b"m", bad_sig).is_err());
        }
        let mut key = k.public_key().clone();
        for bad in ["", "zz", "00", &"ab".repeat(33)] {
            key.keyval
                .insert("public".into(), Value::String(bad.to_string()));
            assert!(matches!(
                verify(&key, b"m", &sig),
                Err(CryptoError::MalformedKey { .. })
            ));
        }
        key.keyval.insert("public".into(), Value::from(5));
        assert!(verify(&key, b"m", &sig).is_err());
        key.keyval.clear();
        assert!(verify(&key, b"m", &sig).is_err());
    }
}
