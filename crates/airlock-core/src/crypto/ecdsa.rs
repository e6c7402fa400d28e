//! ECDSA over NIST P-256 with SHA-256, as securesystemslib writes it: the public key is a PEM
//! SubjectPublicKeyInfo in `keyval.public`, signatures are ASN.1 DER `SEQUENCE { r, s }`.
//!
//! Signing uses RFC 6979 deterministic nonces and normalises S to the low half, so our
//! signatures are never malleated by us. Verification accepts high-S signatures too, because
//! securesystemslib (pyca/cryptography, i.e. OpenSSL) produces them half of the time. ECDSA
//! signatures are therefore malleable ((r, s) and (r, n - s) both verify); a threshold counts
//! distinct keys, never distinct signatures, so that is harmless here.

use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
use p256::pkcs8::{DecodePublicKey, EncodePublicKey, LineEnding};
use signature::{Signer as _, Verifier as _};
use zeroize::Zeroize;

use super::{CryptoError, PublicKey, names, public_key_with};

const SCHEME: &str = names::ECDSA_SCHEME;

fn malformed_key(reason: impl Into<String>) -> CryptoError {
    CryptoError::MalformedKey {
        scheme: SCHEME.into(),
        reason: reason.into(),
    }
}

pub(crate) fn verifying_key(key: &PublicKey) -> Result<VerifyingKey, CryptoError> {
    let pem = key
        .public_str()
        .ok_or_else(|| malformed_key("keyval.public is missing"))?;
    // from_public_key_pem checks the label, the algorithm OID (id-ecPublicKey), the curve
    // parameter (P-256) and that the point is on the curve and not the identity.
    VerifyingKey::from_public_key_pem(pem.trim())
        .map_err(|e| malformed_key(format!("not a P-256 SubjectPublicKeyInfo PEM: {e}")))
}

/// The uncompressed SEC1 point, whatever form the SubjectPublicKeyInfo carried.
pub(crate) fn canonical_bytes(vk: &VerifyingKey) -> Vec<u8> {
    use p256::elliptic_curve::sec1::ToSec1Point as _;
    p256::PublicKey::from(vk)
        .to_sec1_point(false)
        .as_bytes()
        .to_vec()
}

pub(crate) fn verify(key: &PublicKey, msg: &[u8], sig: &[u8]) -> Result<(), CryptoError> {
    let vk = verifying_key(key)?;
    let sig = Signature::from_der(sig).map_err(|e| CryptoError::MalformedSignature {
        scheme: SCHEME.into(),
        reason: format!("not a DER ECDSA signature: {e}"),
    })?;
    vk.verify(msg, &sig).map_err(|_| CryptoError::BadSignature {
        scheme: SCHEME.into(),
    })
}

pub(crate) fn public_key_of(vk: &VerifyingKey) -> Result<PublicKey, CryptoError> {
    let pem = vk
        .to_public_key_pem(LineEnding::LF)
        .map_err(|e| malformed_key(e.to_string()))?;
    Ok(public_key_with(names::ECDSA_KEYTYPE, SCHEME, pem))
}

/// A P-256 private key with its public half.
pub struct EcdsaP256Private {
    signing: SigningKey,
    public: PublicKey,
}

impl EcdsaP256Private {
    pub fn generate() -> Result<Self, CryptoError> {
        // Rejection sampling: a random 32-byte string is a valid scalar with overwhelming
        // probability; retry in the astronomically unlikely other case.
        for _ in 0..16 {
            let mut bytes = [0u8; 32];
            getrandom::fill(&mut bytes).map_err(|e| CryptoError::KeyGeneration(e.to_string()))?;
            let key = SigningKey::from_slice(&bytes);
            bytes.zeroize();
            if let Ok(signing) = key {
                return Self::from_signing_key(signing);
            }
        }
        Err(CryptoError::KeyGeneration(
            "no valid P-256 scalar after 16 tries".into(),
        ))
    }

    pub(crate) fn from_signing_key(signing: SigningKey) -> Result<Self, CryptoError> {
        let public = public_key_of(signing.verifying_key())?;
        Ok(EcdsaP256Private { signing, public })
    }

    pub(crate) fn signing_key(&self) -> &SigningKey {
        &self.signing
    }

    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// RFC 6979 deterministic signature, low-S normalised, DER encoded.
    pub fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let sig: Signature = self
            .signing
            .try_sign(msg)
            .map_err(|e| CryptoError::Signing {
                scheme: SCHEME.into(),
                reason: e.to_string(),
            })?;
        let sig = sig.normalize_s();
        Ok(sig.to_der().as_bytes().to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::elliptic_curve::PrimeField;
    use p256::elliptic_curve::scalar::IsHigh;

    fn is_high_s(sig: &Signature) -> bool {
        sig.s().is_high().into()
    }

    #[test]
    fn sign_is_deterministic_low_s_and_der() {
        let k = EcdsaP256Private::generate().unwrap();
        for i in 0..32u8 {
            let msg = [i; 5];
            let a = k.sign(&msg).unwrap();
            let b = k.sign(&msg).unwrap();
            assert_eq!(a, b, "RFC 6979 signatures are deterministic");
            let sig = Signature::from_der(&a).unwrap();
            assert!(!is_high_s(&sig));
            verify(k.public_key(), &msg, &a).unwrap();
        }
    }

    /// A high-S signature (as OpenSSL produces half the time) still verifies.
    #[test]
    fn high_s_accepted() {
        let k = EcdsaP256Private::generate().unwrap();
        let der = k.sign(b"m").unwrap();
        let sig = Signature::from_der(&der).unwrap();
        let (r, s) = sig.split_scalars();
        let neg_s = -*s;
        let high = Signature::from_scalars(r.to_repr(), neg_s.to_repr()).unwrap();
        assert!(is_high_s(&high));
        verify(k.public_key(), b"m", high.to_der().as_bytes()).unwrap();
    }

    /// RFC 6979 appendix A.2.5, P-256 with SHA-256, message "sample".
    #[test]
    fn rfc6979_vector() {
        let x = hex::decode("C9AFA9D845BA75166B5C215767B1D6934E50C3DB36E89B127B8A622B120F6721")
            .unwrap();
        let k = EcdsaP256Private::from_signing_key(SigningKey::from_slice(&x).unwrap()).unwrap();
        let der = k.sign(b"sample").unwrap();
        let sig = Signature::from_der(&der).unwrap();
        let (r, s) = sig.split_bytes();
        assert_eq!(
            hex::encode_upper(r),
            "EFD48B2AACB6A8FD1140DD9CD45E81D69D2C877B56AAF991C34D0EA84EAF3716"
        );
        // The RFC's s is F7CB1C94...; it is high, so we emit n - s.
        let rfc_s = "F7CB1C942D657C41D436C7A1B6E29F65F3E900DBB9AFF4064DC4AB2F843ACDA8";
        let expected_low = -p256::Scalar::from_repr(
            p256::FieldBytes::try_from(hex::decode(rfc_s).unwrap().as_slice())
                .unwrap()
                .to_owned(),
        )
        .unwrap();
        assert_eq!(s, expected_low.to_repr());
    }

    #[test]
    fn malformed_inputs_refused() {
        let k = EcdsaP256Private::generate().unwrap();
        let sig = k.sign(b"m").unwrap();
        // Raw r||s (64 bytes) is not DER.
        let raw = Signature::from_der(&sig).unwrap().to_bytes();
        assert!(matches!(
            verify(k.public_key(), b"m", &raw),
            Err(CryptoError::MalformedSignature { .. })
        ));
        // DER with trailing garbage.
        let mut trailing = sig.clone();
        trailing.push(0);
        assert!(verify(k.public_key(), b"m", &trailing).is_err());
        for n in 0..sig.len() {
            assert!(verify(k.public_key(), b"m", &sig[..n]).is_err());
        }
        let mut key = k.public_key().clone();
        let pem = key.public_str().unwrap().to_string();
        for bad in [
            "",
            "garbage",
            &pem[..pem.len() / 2],
            &pem.replace("PUBLIC KEY", "PRIVATE KEY"),
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
