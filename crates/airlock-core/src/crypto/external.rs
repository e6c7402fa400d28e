//! Keys whose private half lives elsewhere (a PKCS#11 token, an HSM): their public key material
//! and raw signatures, as the device hands them out, turned into exactly what Airlock's own key
//! files produce. One code path per scheme builds the TUF `PublicKey`, so a key on a token and
//! the same key in a file have the same key id.

use super::{CryptoError, PublicKey, ecdsa, ed25519, names, rsa};

/// The TUF public key of a raw 32-byte Ed25519 point (refusing small-order points).
pub fn ed25519_public_key(point: &[u8]) -> Result<PublicKey, CryptoError> {
    let malformed = |reason: String| CryptoError::MalformedKey {
        scheme: names::ED25519.into(),
        reason,
    };
    let arr: [u8; 32] = point
        .try_into()
        .map_err(|_| malformed(format!("{} bytes, expected 32", point.len())))?;
    ed25519::strict_verifying_key(&arr).map_err(malformed)?;
    Ok(ed25519::public_key_from_bytes(&arr))
}

/// The TUF public key (PEM SubjectPublicKeyInfo) of a P-256 point in SEC1 form (uncompressed
/// or compressed); the point must be on the curve.
pub fn ecdsa_p256_public_key(sec1_point: &[u8]) -> Result<PublicKey, CryptoError> {
    let vk = p256::ecdsa::VerifyingKey::from_sec1_bytes(sec1_point).map_err(|e| {
        CryptoError::MalformedKey {
            scheme: names::ECDSA_SCHEME.into(),
            reason: format!("not a P-256 point: {e}"),
        }
    })?;
    ecdsa::public_key_of(&vk)
}

/// The TUF public key (PEM SubjectPublicKeyInfo) of an RSA modulus and public exponent
/// (big-endian). The rules every RSA key meets apply: e = 65537, at least 2048 bits.
pub fn rsa_public_key(modulus: &[u8], exponent: &[u8]) -> Result<PublicKey, CryptoError> {
    let n = ::rsa::BoxedUint::from_be_slice_vartime(modulus);
    let e = ::rsa::BoxedUint::from_be_slice_vartime(exponent);
    let pk = ::rsa::PublicKey::new(n, e).map_err(|err| CryptoError::MalformedKey {
        scheme: names::RSA_SCHEME.into(),
        reason: err.to_string(),
    })?;
    rsa::check_public(&pk)?;
    rsa::public_key_of(&pk)
}

/// An ECDSA P-256 signature given as `r || s` (32 bytes each, as PKCS#11's CKM_ECDSA returns it)
/// in the form TUF metadata carries: DER `SEQUENCE { r, s }`, with S normalised to the low half
/// as Airlock's own ECDSA keys sign.
pub fn ecdsa_p256_signature_der(raw: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let sig =
        p256::ecdsa::Signature::from_slice(raw).map_err(|e| CryptoError::MalformedSignature {
            scheme: names::ECDSA_SCHEME.into(),
            reason: format!("not a 64-byte r || s signature ({} bytes): {e}", raw.len()),
        })?;
    Ok(sig.normalize_s().to_der().as_bytes().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{KeyScheme, PrivateKey, Signer};
    use p256::elliptic_curve::sec1::ToSec1Point as _;

    #[test]
    fn rebuilt_public_keys_equal_the_key_files_own() {
        let PrivateKey::Ed25519(ed) = PrivateKey::generate(KeyScheme::Ed25519).unwrap() else {
            unreachable!()
        };
        let point = ed.signing_key().verifying_key().to_bytes();
        let rebuilt = ed25519_public_key(&point).unwrap();
        assert_eq!(&rebuilt, ed.public_key());
        assert_eq!(rebuilt.key_id(), ed.public_key().key_id());

        let PrivateKey::EcdsaP256(ec) = PrivateKey::generate(KeyScheme::EcdsaP256).unwrap() else {
            unreachable!()
        };
        let vk = ec.signing_key().verifying_key();
        let point = p256::PublicKey::from(vk).to_sec1_point(false);
        assert_eq!(
            &ecdsa_p256_public_key(point.as_bytes()).unwrap(),
            ec.public_key()
        );

        let PrivateKey::Rsa(r) = PrivateKey::generate_rsa(2048).unwrap() else {
            unreachable!()
        };
        use ::rsa::traits::PublicKeyParts as _;
        let pk = r.private_key().as_ref();
        // A leading zero byte (some tokens pad) does not change the key.
        let mut n = vec![0u8];
        n.extend_from_slice(&pk.n_bytes());
        assert_eq!(&rsa_public_key(&n, &pk.e_bytes()).unwrap(), r.public_key());
    }

    #[test]
    fn refuses_bad_material() {
        assert!(ed25519_public_key(&[0u8; 31]).is_err());
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert!(ed25519_public_key(&identity).is_err());
        assert!(ecdsa_p256_public_key(&[4u8; 65]).is_err());
        assert!(rsa_public_key(&[0xff; 128], &[1, 0, 1]).is_err());
        assert!(ecdsa_p256_signature_der(&[1u8; 63]).is_err());
        assert!(ecdsa_p256_signature_der(&[0u8; 64]).is_err());
    }

    #[test]
    fn raw_signature_becomes_low_s_der_that_verifies() {
        use p256::elliptic_curve::scalar::IsHigh as _;
        let key = PrivateKey::generate(KeyScheme::EcdsaP256).unwrap();
        let der = key.sign(b"msg").unwrap();
        let sig = p256::ecdsa::Signature::from_der(&der).unwrap();
        // The same signature with S negated (high), as a token may return it.
        let (r, s) = sig.split_scalars();
        let high = p256::ecdsa::Signature::from_scalars(r.to_bytes(), (-*s).to_bytes()).unwrap();
        assert!(bool::from(high.s().is_high()));
        let out = ecdsa_p256_signature_der(&high.to_bytes()).unwrap();
        assert_eq!(out, der);
        key.public_key().verify(b"msg", &out).unwrap();
    }
}
