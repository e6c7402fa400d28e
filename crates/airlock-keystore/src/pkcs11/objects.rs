//! What a key object on a token is: its type, label and id, and the TUF public key its public
//! attributes make (through `airlock_core::crypto::external`, the code key files use too).
//! Only public attributes are read here.

use airlock_core::crypto::{CryptoError, KeyScheme, PublicKey, external};
use cryptoki::error::Error as CkError;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;

/// DER of the P-256 curve OID (1.2.840.10045.3.1.7), as CKA_EC_PARAMS holds it.
const P256_OID: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
/// DER of the Ed25519 OID (1.3.101.112); PKCS#11 3.0 also allows the curve name below.
const ED25519_OID: &[u8] = &[0x06, 0x03, 0x2b, 0x65, 0x70];
const ED25519_NAME: &[u8] = b"\x13\x0cedwards25519";
const NO_PUBLIC: &str = "no single public key object with this key's id (or label) on the token";

/// The TUF key of a token key and its scheme, or why Airlock cannot sign with it.
pub(super) type TufKey = Result<(KeyScheme, PublicKey), String>;

/// What a key pair on the token is, read from its public attributes only.
pub(super) struct KeyInfo {
    pub(super) label: String,
    pub(super) id: Vec<u8>,
    pub(super) key_type: String,
    /// The TUF key, or why it cannot be one.
    pub(super) public: TufKey,
}

pub(super) fn attrs(
    session: &Session,
    obj: ObjectHandle,
    want: &[AttributeType],
) -> Result<Vec<Attribute>, CkError> {
    session.get_attributes(obj, want)
}

pub(super) fn bytes_attr(list: &[Attribute], t: AttributeType) -> Option<&[u8]> {
    list.iter().find_map(|a| match (a, t) {
        (Attribute::EcParams(v), AttributeType::EcParams)
        | (Attribute::EcPoint(v), AttributeType::EcPoint)
        | (Attribute::Modulus(v), AttributeType::Modulus)
        | (Attribute::PublicExponent(v), AttributeType::PublicExponent)
        | (Attribute::Label(v), AttributeType::Label)
        | (Attribute::Id(v), AttributeType::Id) => Some(v.as_slice()),
        _ => None,
    })
}

pub(super) fn bool_attr(list: &[Attribute], t: AttributeType) -> Option<bool> {
    list.iter().find_map(|a| match (a, t) {
        (Attribute::Sensitive(v), AttributeType::Sensitive)
        | (Attribute::Extractable(v), AttributeType::Extractable)
        | (Attribute::AlwaysSensitive(v), AttributeType::AlwaysSensitive)
        | (Attribute::NeverExtractable(v), AttributeType::NeverExtractable)
        | (Attribute::Sign(v), AttributeType::Sign) => Some(*v),
        _ => None,
    })
}

/// CKA_EC_POINT is a DER OCTET STRING around the point (PKCS#11 2.40 and 3.0); some tokens
/// give the bare point. `bare` are the lengths a bare point has for the curve (no DER-wrapped
/// point has one of them), so the two forms cannot be confused.
fn ec_point<'a>(raw: &'a [u8], bare: &[usize]) -> &'a [u8] {
    if bare.contains(&raw.len()) {
        return raw;
    }
    match raw {
        [0x04, len, rest @ ..] if usize::from(*len) == rest.len() && *len < 0x80 => rest,
        [0x04, 0x81, len, rest @ ..] if usize::from(*len) == rest.len() && *len >= 0x80 => rest,
        _ => raw,
    }
}

/// The key type, label and TUF public key of `obj` (a public key, or an RSA private key, whose
/// modulus and exponent are public attributes).
pub(super) fn key_info(session: &Session, obj: ObjectHandle) -> Result<KeyInfo, CkError> {
    use AttributeType as A;
    let list = attrs(
        session,
        obj,
        &[
            A::KeyType,
            A::Label,
            A::Id,
            A::EcParams,
            A::EcPoint,
            A::Modulus,
            A::PublicExponent,
        ],
    )?;
    let key_type = list.iter().find_map(|a| match a {
        Attribute::KeyType(k) => Some(*k),
        _ => None,
    });
    let label = String::from_utf8_lossy(bytes_attr(&list, A::Label).unwrap_or(&[])).into_owned();
    let id = bytes_attr(&list, A::Id).unwrap_or(&[]).to_vec();
    let params = bytes_attr(&list, A::EcParams);
    let point = bytes_attr(&list, A::EcPoint);
    let crypto = |e: CryptoError| e.to_string();
    let (key_type, public) = match key_type {
        Some(KeyType::EC) => {
            let public = if params != Some(P256_OID) {
                Err(format!(
                    "EC key on another curve than P-256 (parameters {}); Airlock signs with \
                     P-256",
                    hex::encode(params.unwrap_or(&[]))
                ))
            } else if let Some(p) = point {
                external::ecdsa_p256_public_key(ec_point(p, &[33, 65]))
                    .map(|k| (KeyScheme::EcdsaP256, k))
                    .map_err(crypto)
            } else {
                Err(NO_PUBLIC.into())
            };
            ("EC P-256".to_string(), public)
        }
        Some(KeyType::EC_EDWARDS) => {
            let public = if params != Some(ED25519_OID) && params != Some(ED25519_NAME) {
                Err(format!(
                    "Edwards curve other than Ed25519 (parameters {})",
                    hex::encode(params.unwrap_or(&[]))
                ))
            } else if let Some(p) = point {
                external::ed25519_public_key(ec_point(p, &[32]))
                    .map(|k| (KeyScheme::Ed25519, k))
                    .map_err(crypto)
            } else {
                Err(NO_PUBLIC.into())
            };
            ("EC Ed25519".to_string(), public)
        }
        Some(KeyType::RSA) => {
            let n = bytes_attr(&list, A::Modulus);
            let e = bytes_attr(&list, A::PublicExponent);
            let bits = n
                .map(|n| {
                    let lead = n.iter().take_while(|b| **b == 0).count();
                    n.len().saturating_sub(lead) * 8
                })
                .unwrap_or(0);
            let public = match (n, e) {
                (Some(n), Some(e)) => external::rsa_public_key(n, e)
                    .map(|k| (KeyScheme::RsaPssSha256, k))
                    .map_err(crypto),
                _ => Err("the token does not show the modulus".into()),
            };
            (format!("RSA {bits}"), public)
        }
        other => (
            other.map_or("unknown".into(), |k| k.to_string()),
            Err("not a key type Airlock signs with (Ed25519, EC P-256, RSA)".into()),
        ),
    };
    Ok(KeyInfo {
        label,
        id,
        key_type,
        public,
    })
}

/// The public key object that pairs with `private` (same CKA_ID, else same label).
fn public_of(session: &Session, private: &KeyInfo) -> Result<Option<ObjectHandle>, CkError> {
    let mut t = vec![Attribute::Class(ObjectClass::PUBLIC_KEY)];
    if !private.id.is_empty() {
        t.push(Attribute::Id(private.id.clone()));
    } else if !private.label.is_empty() {
        t.push(Attribute::Label(private.label.as_bytes().to_vec()));
    } else {
        return Ok(None);
    }
    let found = session.find_objects(&t)?;
    Ok(match found.as_slice() {
        [one] => Some(*one),
        _ => None,
    })
}

/// The TUF key of the pair `private` belongs to.
pub(super) fn pair_public(
    session: &Session,
    private: ObjectHandle,
) -> Result<(KeyInfo, TufKey), CkError> {
    let info = key_info(session, private)?;
    if info.public.is_ok() {
        let public = info.public.clone();
        return Ok((info, public));
    }
    let public = match public_of(session, &info)? {
        Some(p) => {
            let public = key_info(session, p)?;
            let same = public.key_type == info.key_type
                || (public.key_type.starts_with("RSA") && info.key_type.starts_with("RSA"));
            if same {
                public.public
            } else {
                Err(format!(
                    "the public key object with this key's id is {}, the private key {}",
                    public.key_type, info.key_type
                ))
            }
        }
        None => info.public.clone(),
    };
    Ok((info, public))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ec_points_bare_or_wrapped() {
        // A bare uncompressed P-256 point whose second byte happens to look like a DER length.
        let mut bare = vec![0x04, 63];
        bare.extend_from_slice(&[7u8; 63]);
        assert_eq!(ec_point(&bare, &[33, 65]), &bare[..]);
        let mut wrapped = vec![0x04, 65];
        wrapped.extend_from_slice(&bare);
        assert_eq!(ec_point(&wrapped, &[33, 65]), &bare[..]);
        let ed = [9u8; 32];
        assert_eq!(ec_point(&ed, &[32]), &ed[..]);
        let mut ed_wrapped = vec![0x04, 32];
        ed_wrapped.extend_from_slice(&ed);
        assert_eq!(ec_point(&ed_wrapped, &[32]), &ed[..]);
        // Anything else is passed on as it is, and refused as a point by the caller.
        assert_eq!(ec_point(&[0x04, 5, 1], &[32]), &[0x04, 5, 1][..]);
    }
}
