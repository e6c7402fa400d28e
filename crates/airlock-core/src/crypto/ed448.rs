//! Ed448 (RFC 8032, pure Ed448 with an empty context), through RustCrypto's `ed448-goldilocks`
//! (a 0.14 prerelease of the current crypto generation, pinned).
//!
//! Strict like our Ed25519: public keys must decode to a torsion-free point (small-order and
//! mixed-order keys are refused), S must be canonical (< L), R must not be the identity, and the
//! verification equation is the cofactorless `[S]B = R + [k]A`.
//!
//! TUF names: keytype = scheme = `ed448`, `keyval.public` = hex of the 57-byte key. No other TUF
//! implementation defines Ed448 (python-tuf cannot read such a key); see docs/keys.md.

use ed448_goldilocks::{
    PUBLIC_KEY_LENGTH, SECRET_KEY_LENGTH, SecretKey, Signature, SigningKey, VerifyingKey,
};
use signature::Signer as _;
use zeroize::Zeroize;

use super::{CryptoError, PublicKey, names, public_key_with};

const SCHEME: &str = names::ED448;

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
    let arr: [u8; PUBLIC_KEY_LENGTH] = raw
        .as_slice()
        .try_into()
        .map_err(|_| malformed_key(format!("{} bytes, expected {PUBLIC_KEY_LENGTH}", raw.len())))?;
    // from_bytes decompresses with an on-curve and torsion-free check and refuses the identity.
    VerifyingKey::from_bytes(&arr).map_err(|_| malformed_key("not a valid prime-order Ed448 point"))
}

/// The point's canonical encoding (a non-canonical y coordinate decodes to the same key).
pub(crate) fn canonical_bytes(vk: &VerifyingKey) -> Vec<u8> {
    vk.to_edwards().to_affine().compress().to_bytes().to_vec()
}

pub(crate) fn verify(key: &PublicKey, msg: &[u8], sig: &[u8]) -> Result<(), CryptoError> {
    let vk = verifying_key(key)?;
    let sig = Signature::from_slice(sig).map_err(|e| CryptoError::MalformedSignature {
        scheme: SCHEME.into(),
        reason: e.to_string(),
    })?;
    vk.verify_raw(&sig, msg)
        .map_err(|_| CryptoError::BadSignature {
            scheme: SCHEME.into(),
        })
}

/// An Ed448 private key with its public half.
pub struct Ed448Private {
    signing: SigningKey,
    public: PublicKey,
}

impl Ed448Private {
    pub fn generate() -> Result<Self, CryptoError> {
        let mut seed = [0u8; SECRET_KEY_LENGTH];
        getrandom::fill(&mut seed).map_err(|e| CryptoError::KeyGeneration(e.to_string()))?;
        let k = Self::from_seed(&seed);
        seed.zeroize();
        Ok(k)
    }

    /// From the 57-byte RFC 8032 private key.
    pub fn from_seed(seed: &[u8; SECRET_KEY_LENGTH]) -> Self {
        let secret = SecretKey::from(*seed);
        Self::from_signing_key(SigningKey::from(&secret))
    }

    pub(crate) fn from_signing_key(signing: SigningKey) -> Self {
        let public = public_key_with(
            SCHEME,
            SCHEME,
            hex::encode(signing.verifying_key().as_bytes()),
        );
        Ed448Private { signing, public }
    }

    /// The 57-byte RFC 8032 private key.
    pub(crate) fn seed(&self) -> SecretKey {
        self.signing.to_bytes()
    }

    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    pub fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let sig: Signature = self
            .signing
            .try_sign(msg)
            .map_err(|e| CryptoError::Signing {
                scheme: SCHEME.into(),
                reason: e.to_string(),
            })?;
        Ok(sig.to_bytes().to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arr57(h: &str) -> [u8; 57] {
        hex::decode(h).unwrap().try_into().unwrap()
    }

    /// RFC 8032 section 7.4, "1 octet" test vector.
    #[test]
    fn rfc8032_vector() {
        let k = Ed448Private::from_seed(&arr57(
            "c4eab05d357007c632f3dbb48489924d552b08fe0c353a0d4a1f00acda2c463a\
             fbea67c5e8d2877c5e3bc397a659949ef8021e954e0a12274e",
        ));
        assert_eq!(
            k.public_key().public_str().unwrap(),
            "43ba28f430cdff456ae531545f7ecd0ac834a55d9358c0372bfa0c6c6798c086\
             6aea01eb00742802b8438ea4cb82169c235160627b4c3a9480"
        );
        let sig = k.sign(&[0x03]).unwrap();
        assert_eq!(
            hex::encode(&sig),
            "26b8f91727bd62897af15e41eb43c377efb9c610d48f2335cb0bd0087810f435\
             2541b143c4b981b7e18f62de8ccdf633fc1bf037ab7cd779805e0dbcc0aae1cb\
             cee1afb2e027df36bc04dcecbf154336c19f0af7e0a6472905e799f1953d2a0f\
             f3348ab21aa4adafd1d234441cf807c03a00"
        );
        verify(k.public_key(), &[0x03], &sig).unwrap();
        assert!(verify(k.public_key(), &[0x04], &sig).is_err());
    }

    /// S + L (non-canonical) is refused.
    #[test]
    fn non_canonical_s_refused() {
        let k = Ed448Private::generate().unwrap();
        let sig = k.sign(b"m").unwrap();
        // L = 2^446 - 13818066809895115352007386748515426880336692474882178609894547503885,
        // little endian, 57 bytes (last byte zero).
        let l = hex::decode(
            "f34458ab92c27823558fc58d72c26c219036d6ae49db4ec4e923ca7cffffffff\
             ffffffffffffffffffffffffffffffffffffffffffffff3f00",
        )
        .unwrap();
        let mut s_plus_l = [0u8; 57];
        let mut carry = 0u16;
        for i in 0..57 {
            let v = u16::from(sig[57 + i]) + u16::from(l[i]) + carry;
            s_plus_l[i] = (v & 0xff) as u8;
            carry = v >> 8;
        }
        let mut mauled = sig.clone();
        mauled[57..].copy_from_slice(&s_plus_l);
        assert_ne!(mauled, sig);
        assert!(verify(k.public_key(), b"m", &mauled).is_err());
    }

    /// Small-order public keys are refused: the identity (y = 1) and the order-2 point
    /// (0, -1), and the order-4 points (y = 0).
    #[test]
    fn small_order_keys_refused() {
        let mut identity = [0u8; 57];
        identity[0] = 1;
        // p - 1 = 2^448 - 2^224 - 2, little endian, 56 bytes, plus the sign byte.
        let mut minus_one = [0xffu8; 57];
        minus_one[0] = 0xfe;
        minus_one[28] = 0xfe;
        minus_one[56] = 0;
        let zero = [0u8; 57];
        let mut zero_neg = [0u8; 57];
        zero_neg[56] = 0x80;
        for bad in [identity, minus_one, zero, zero_neg] {
            let key = public_key_with(SCHEME, SCHEME, hex::encode(bad));
            assert!(
                matches!(
                    verify(&key, b"m", &[0u8; 114]),
                    Err(CryptoError::MalformedKey { .. })
                ),
                "{}",
                hex::encode(bad)
            );
        }
    }

    #[test]
    fn malformed_inputs_refused() {
        let k = Ed448Private::generate().unwrap();
        let sig = k.sign(b"m").unwrap();
        for bad in [&sig[..113], &[][..], &[0u8; 115][..], &[0xffu8; 114][..]] {
            assert!(verify(k.public_key(), b"m", bad).is_err());
        }
        let mut key = k.public_key().clone();
        for bad in [
            "",
            "zz",
            &"ab".repeat(56),
            &"ab".repeat(58),
            &"ff".repeat(57),
        ] {
            key.keyval
                .insert("public".into(), serde_json::Value::String(bad.into()));
            assert!(matches!(
                verify(&key, b"m", &sig),
                Err(CryptoError::MalformedKey { .. })
            ));
        }
    }
}
