//! RSASSA-PSS with SHA-256 and MGF1-SHA-256 (TUF `rsa` / `rsassa-pss-sha256`).
//!
//! Salt length: securesystemslib signs with a salt as long as the digest (32 bytes), in every
//! version (old `rsa_keys.py`: `salt_length=digest_size`; current `CryptoSigner`:
//! `PSS.DIGEST_LENGTH`). Old versions also verified with exactly 32; current ones verify with
//! `PSS.AUTO`. We sign with 32 (accepted by both) and verify with exactly 32: that is what every
//! securesystemslib, go-tuf and tough signer produces, and a fixed salt length leaves one
//! fewer knob for an attacker.
//!
//! Keys: PEM SubjectPublicKeyInfo in `keyval.public` (what securesystemslib writes); a PKCS#1
//! `RSA PUBLIC KEY` PEM is accepted when reading for older metadata. The public exponent must be
//! 65537 and the modulus at least 2048 bits.

use rsa::pkcs8::{DecodePublicKey, EncodePublicKey, LineEnding};
use rsa::pss::{Signature, SigningKey, VerifyingKey};
use rsa::sha2::Sha256;
use rsa::traits::PublicKeyParts;
use signature::{RandomizedSigner as _, SignatureEncoding as _, Verifier as _};

use super::{CryptoError, PublicKey, names, public_key_with};

const SCHEME: &str = names::RSA_SCHEME;
/// The smallest RSA modulus airlock accepts, in bits.
pub const MIN_RSA_BITS: usize = 2048;
/// The size of RSA keys airlock generates by default (as securesystemslib does).
pub(crate) const DEFAULT_RSA_BITS: usize = 3072;
/// PSS salt length in bytes: the SHA-256 digest length.
const SALT_LEN: usize = 32;

fn malformed_key(reason: impl Into<String>) -> CryptoError {
    CryptoError::MalformedKey {
        scheme: SCHEME.into(),
        reason: reason.into(),
    }
}

/// Check the rules every RSA key must meet, public or private.
pub(crate) fn check_public(pk: &rsa::PublicKey) -> Result<(), CryptoError> {
    let bits = pk.n().bit_width_vartime() as usize;
    if bits < MIN_RSA_BITS {
        return Err(CryptoError::RsaKeyTooSmall {
            bits,
            min: MIN_RSA_BITS,
        });
    }
    let e = pk.e_bytes();
    let e_trimmed: Vec<u8> = e.iter().copied().skip_while(|b| *b == 0).collect();
    if e_trimmed != [0x01, 0x00, 0x01] {
        return Err(malformed_key(format!(
            "public exponent is 0x{}, only 65537 is accepted",
            hex::encode(&e_trimmed)
        )));
    }
    Ok(())
}

pub(crate) fn verifying_key(key: &PublicKey) -> Result<rsa::PublicKey, CryptoError> {
    let pem = key
        .public_str()
        .ok_or_else(|| malformed_key("keyval.public is missing"))?
        .trim();
    let pk = if pem.starts_with("-----BEGIN RSA PUBLIC KEY-----") {
        use rsa::pkcs1::DecodeRsaPublicKey;
        rsa::PublicKey::from_pkcs1_pem(pem)
            .map_err(|e| malformed_key(format!("not a PKCS#1 RSA public key PEM: {e}")))?
    } else {
        rsa::PublicKey::from_public_key_pem(pem)
            .map_err(|e| malformed_key(format!("not an RSA SubjectPublicKeyInfo PEM: {e}")))?
    };
    check_public(&pk)?;
    Ok(pk)
}

/// Modulus and exponent (big-endian, no leading zeros, the modulus length-prefixed), whether the
/// PEM was SubjectPublicKeyInfo or PKCS#1.
pub(crate) fn canonical_bytes(pk: &rsa::PublicKey) -> Vec<u8> {
    let (n, e) = (pk.n_bytes(), pk.e_bytes());
    let mut out = Vec::with_capacity(8 + n.len() + e.len());
    out.extend_from_slice(&(n.len() as u64).to_be_bytes());
    out.extend_from_slice(&n);
    out.extend_from_slice(&e);
    out
}

pub(crate) fn verify(key: &PublicKey, msg: &[u8], sig: &[u8]) -> Result<(), CryptoError> {
    let pk = verifying_key(key)?;
    // The signature must be exactly as long as the modulus (RFC 8017 8.1.2 step 1).
    if sig.len() != pk.size() {
        return Err(CryptoError::MalformedSignature {
            scheme: SCHEME.into(),
            reason: format!("{} bytes, expected {}", sig.len(), pk.size()),
        });
    }
    let sig = Signature::try_from(sig).map_err(|e| CryptoError::MalformedSignature {
        scheme: SCHEME.into(),
        reason: e.to_string(),
    })?;
    let vk = VerifyingKey::<Sha256>::new_with_salt_len(pk, SALT_LEN);
    vk.verify(msg, &sig).map_err(|_| CryptoError::BadSignature {
        scheme: SCHEME.into(),
    })
}

pub(crate) fn public_key_of(pk: &rsa::PublicKey) -> Result<PublicKey, CryptoError> {
    let pem = pk
        .to_public_key_pem(LineEnding::LF)
        .map_err(|e| malformed_key(e.to_string()))?;
    Ok(public_key_with(names::RSA_KEYTYPE, SCHEME, pem))
}

/// An RSA private key with its public half.
pub struct RsaPrivate {
    signing: SigningKey<Sha256>,
    public: PublicKey,
}

impl RsaPrivate {
    /// Generate a key of `bits` bits with e = 65537.
    pub fn generate(bits: usize) -> Result<Self, CryptoError> {
        if bits < MIN_RSA_BITS {
            return Err(CryptoError::RsaKeyTooSmall {
                bits,
                min: MIN_RSA_BITS,
            });
        }
        let key = rsa::PrivateKey::new(&mut getrandom::SysRng, bits)
            .map_err(|e| CryptoError::KeyGeneration(format!("RSA-{bits}: {e}")))?;
        Self::from_private(key)
    }

    /// Wrap an existing key, refusing one that breaks the size or exponent rule.
    pub(crate) fn from_private(key: rsa::PrivateKey) -> Result<Self, CryptoError> {
        key.validate()
            .map_err(|e| malformed_key(format!("inconsistent RSA private key: {e}")))?;
        check_public(key.as_public_key())?;
        let public = public_key_of(key.as_public_key())?;
        Ok(RsaPrivate {
            signing: SigningKey::new_with_salt_len(key, SALT_LEN),
            public,
        })
    }

    pub(crate) fn private_key(&self) -> &rsa::PrivateKey {
        self.signing.as_ref()
    }

    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    pub fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let sig = self
            .signing
            .try_sign_with_rng(&mut getrandom::SysRng, msg)
            .map_err(|e| CryptoError::Signing {
                scheme: SCHEME.into(),
                reason: e.to_string(),
            })?;
        Ok(sig.to_vec())
    }
}
