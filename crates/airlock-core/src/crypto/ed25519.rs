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
    let vk = VerifyingKey::from_bytes(&arr).map_err(|e| malformed_key(e.to_string()))?;
    if vk.is_weak() {
        return Err(malformed_key("small-order public key"));
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
        let signing = SigningKey::from_bytes(seed);
        let public = public_key_from_bytes(signing.verifying_key().as_bytes());
        Ed25519Private { signing, public }
    }

    pub fn seed(&self) -> [u8; 32] {
        self.signing.to_bytes()
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
}
