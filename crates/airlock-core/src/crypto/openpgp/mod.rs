//! OpenPGP keys in TUF metadata, in the form securesystemslib's GnuPG support defines
//! (`securesystemslib.signer.GPGKey`/`GPGSigner`), verified in pure Rust with the strict
//! checks a GnuPG user expects (see `docs/keys.md`, "OpenPGP").
//!
//! The key: `keytype` `rsa` with `scheme` `pgp+rsa-pkcsv1.5`, or `eddsa` with
//! `pgp+eddsa-ed25519`; `keyval.public` holds the key's numbers as securesystemslib exports
//! them (`{"e", "n"}` or `{"q"}`, hex), and airlock adds `keyval.certificate`, the key's
//! ASCII-armored OpenPGP certificate (`gpg --export --armor`). securesystemslib ignores that
//! member; airlock needs it to know when the key expires, whether it was revoked and whether it
//! may sign, and refuses a key without it. The key id is the listed key's fingerprint (lower-case
//! hex), as securesystemslib names GnuPG keys.
//!
//! The signature: `sig` holds the signature value (RSA: the integer; Ed25519: `R || S`) and
//! `other_headers` the signature packet's version-to-hashed-subpackets bytes, which the value
//! signs after the data. Through airlock's API (`Signer::sign`, `PublicKey::verify`) the raw
//! bytes are `other_headers || value`; `other_headers` carries its own length.
//!
//! Only the listed key may sign: its certificate must show it valid *now* (not expired, not
//! revoked, primary key valid too, signing capability granted by a valid self-signature, and
//! for a subkey a valid back-signature), the signature must be a binary-document signature made
//! with SHA-256 (the only hash securesystemslib verifies with), name the listed key's fingerprint
//! as its issuer, and verify with the listed key's material. The certificate's other keys never
//! verify anything in its place.
//!
//! "Now" is the system clock: `PublicKey::verify` takes no time, and key expiry is a statement
//! about the present. This is the one place the core reads a clock; [`verify_at`] takes it.

mod cert;
mod packet;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use serde_json::Value;

use cert::{Cert, Verifier, Which, check_sig, created, expired_sig, listed_binding, verifier};
use packet::{ALGO_EDDSA, ALGO_RSA, HASH_SHA256, KeyParams, SigPacket};

use super::{CryptoError, KeyMaterial, KeyScheme, PublicKey, names};

/// The `keyval` member holding the armored certificate (airlock's addition).
pub const CERTIFICATE_FIELD: &str = "certificate";
/// The signature member holding the hashed signature header (securesystemslib's name).
pub const OTHER_HEADERS_FIELD: &str = "other_headers";

const SIG_BINARY: u8 = 0x00;
/// The one hash accepted on metadata signatures: securesystemslib verifies with SHA-256 only.
const DOCUMENT_HASHES: &[u8] = &[HASH_SHA256];

/// The two OpenPGP schemes airlock verifies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Scheme {
    Rsa,
    Ed25519,
}

impl Scheme {
    fn name(self) -> &'static str {
        match self {
            Scheme::Rsa => names::PGP_RSA_SCHEME,
            Scheme::Ed25519 => names::PGP_EDDSA_SCHEME,
        }
    }
    fn algo(self) -> u8 {
        match self {
            Scheme::Rsa => ALGO_RSA,
            Scheme::Ed25519 => ALGO_EDDSA,
        }
    }
}

/// The OpenPGP scheme of `key`, if its (keytype, scheme) pair is one.
pub(crate) fn scheme_of(key: &PublicKey) -> Option<Scheme> {
    match (key.keytype.as_str(), key.scheme.as_str()) {
        (names::RSA_KEYTYPE, names::PGP_RSA_SCHEME) => Some(Scheme::Rsa),
        (names::PGP_EDDSA_KEYTYPE, names::PGP_EDDSA_SCHEME) => Some(Scheme::Ed25519),
        _ => None,
    }
}

fn malformed_key(scheme: Scheme, reason: impl Into<String>) -> CryptoError {
    CryptoError::MalformedKey {
        scheme: scheme.name().into(),
        reason: reason.into(),
    }
}

fn malformed_sig(scheme: Scheme, reason: impl Into<String>) -> CryptoError {
    CryptoError::MalformedSignature {
        scheme: scheme.name().into(),
        reason: reason.into(),
    }
}

fn refused(scheme: Scheme, reason: impl Into<String>) -> CryptoError {
    CryptoError::Refused {
        scheme: scheme.name().into(),
        reason: reason.into(),
    }
}

/// The key's certificate (decoded) and its listed numbers.
struct Parsed {
    scheme: Scheme,
    cert_bytes: Vec<u8>,
    params: KeyParams,
}

fn parse_key(key: &PublicKey) -> Result<Parsed, CryptoError> {
    let scheme = scheme_of(key).ok_or_else(|| key.unsupported())?;
    for name in key.keyval.keys() {
        if name != "public" && name != CERTIFICATE_FIELD {
            return Err(malformed_key(
                scheme,
                format!("unknown keyval member {name:?}"),
            ));
        }
    }
    let public = key
        .keyval
        .get("public")
        .and_then(Value::as_object)
        .ok_or_else(|| malformed_key(scheme, "keyval.public is not an object"))?;
    let field = |name: &str| -> Result<Vec<u8>, CryptoError> {
        let text = public
            .get(name)
            .and_then(Value::as_str)
            .ok_or_else(|| malformed_key(scheme, format!("keyval.public.{name} is missing")))?;
        let bytes = hex::decode(text)
            .map_err(|e| malformed_key(scheme, format!("keyval.public.{name}: {e}")))?;
        Ok(bytes.into_iter().skip_while(|b| *b == 0).collect())
    };
    let expected: &[&str] = match scheme {
        Scheme::Rsa => &["e", "n"],
        Scheme::Ed25519 => &["q"],
    };
    if public.len() != expected.len() {
        return Err(malformed_key(
            scheme,
            format!("keyval.public must hold exactly {expected:?}"),
        ));
    }
    let params = match scheme {
        Scheme::Rsa => KeyParams::Rsa {
            n: field("n")?,
            e: field("e")?,
        },
        Scheme::Ed25519 => {
            let text = public.get("q").and_then(Value::as_str).unwrap_or_default();
            let q: [u8; 32] = hex::decode(text)
                .ok()
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| malformed_key(scheme, "keyval.public.q is not 32 bytes of hex"))?;
            KeyParams::Ed25519(q)
        }
    };
    let armored = key
        .keyval
        .get(CERTIFICATE_FIELD)
        .and_then(Value::as_str)
        .ok_or_else(|| {
            malformed_key(
                scheme,
                "keyval.certificate (the armored OpenPGP certificate, `gpg --export --armor`) is \
                 missing: without it expiry, revocation and signing capability cannot be checked",
            )
        })?;
    let cert_bytes = packet::dearmor(armored, "PUBLIC KEY BLOCK")
        .map_err(|e| malformed_key(scheme, format!("keyval.certificate: {e}")))?;
    Ok(Parsed {
        scheme,
        cert_bytes,
        params,
    })
}

/// Find the listed key in the certificate by its material (never by a name or id).
fn find_listed(parsed: &Parsed, cert: &Cert<'_>) -> Result<Which, CryptoError> {
    let mut found = Vec::new();
    if cert.primary.params == parsed.params {
        found.push(Which::Primary);
    }
    for (i, (k, _)) in cert.subkeys.iter().enumerate() {
        if k.params == parsed.params {
            found.push(Which::Subkey(i));
        }
    }
    match found.as_slice() {
        [one] => Ok(*one),
        [] => Err(malformed_key(
            parsed.scheme,
            "keyval.public is not a key of keyval.certificate",
        )),
        _ => Err(malformed_key(
            parsed.scheme,
            "keyval.public appears more than once in keyval.certificate",
        )),
    }
}

fn with_cert<T>(
    key: &PublicKey,
    f: impl FnOnce(&Parsed, &Cert<'_>, Which) -> Result<T, CryptoError>,
) -> Result<T, CryptoError> {
    let parsed = parse_key(key)?;
    let cert = Cert::parse(&parsed.cert_bytes)
        .map_err(|e| malformed_key(parsed.scheme, format!("keyval.certificate: {e}")))?;
    let which = find_listed(&parsed, &cert)?;
    f(&parsed, &cert, which)
}

/// Structural check: the key parses and its certificate holds it (validity is checked when
/// verifying, against the clock).
pub(crate) fn validate(key: &PublicKey) -> Result<(), CryptoError> {
    with_cert(key, |parsed, cert, which| {
        usable_params(parsed.scheme, &cert.key(which).params).map(|_| ())
    })
}

/// The listed key's fingerprint, lower-case hex: securesystemslib's key id for GnuPG keys.
pub(crate) fn key_id(key: &PublicKey) -> Option<String> {
    with_cert(key, |_, cert, which| {
        Ok(hex::encode(cert.key(which).fingerprint))
    })
    .ok()
}

/// The listed key's material, in the canonical form of the plain scheme with the same key
/// (RSA or Ed25519), so one key listed both ways counts once.
pub(crate) fn material(key: &PublicKey) -> Result<KeyMaterial, CryptoError> {
    with_cert(key, |parsed, cert, which| {
        Ok(
            match usable_params(parsed.scheme, &cert.key(which).params)? {
                Verifier::Rsa(pk) => KeyMaterial {
                    scheme: KeyScheme::RsaPssSha256,
                    bytes: super::rsa::canonical_bytes(&pk),
                },
                Verifier::Ed25519(vk) => KeyMaterial {
                    scheme: KeyScheme::Ed25519,
                    bytes: super::ed25519::canonical_bytes(&vk).to_vec(),
                },
            },
        )
    })
}

fn usable_params(scheme: Scheme, params: &KeyParams) -> Result<Verifier, CryptoError> {
    verifier(params).map_err(|e| malformed_key(scheme, e))
}

/// Split raw signature bytes (`other_headers || value`) into their two parts.
pub(crate) fn split_raw(raw: &[u8]) -> Option<(&[u8], &[u8])> {
    let len = match raw {
        [_, _, _, _, hi, lo, ..] => 6 + usize::from(u16::from_be_bytes([*hi, *lo])),
        _ => return None,
    };
    (len <= raw.len()).then(|| raw.split_at(len))
}

/// Verify `raw` (`other_headers || value`) over `msg` with the system clock.
pub(crate) fn verify(key: &PublicKey, msg: &[u8], raw: &[u8]) -> Result<(), CryptoError> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    verify_at(key, msg, raw, now)
}

/// Verify `raw` over `msg` as [`verify`] does, with `now` (seconds since the epoch) as the clock.
pub fn verify_at(key: &PublicKey, msg: &[u8], raw: &[u8], now: u64) -> Result<(), CryptoError> {
    with_cert(key, |parsed, cert, which| {
        let scheme = parsed.scheme;
        let listed = cert.key(which);
        usable_params(scheme, &listed.params)?;
        let (header, value) =
            split_raw(raw).ok_or_else(|| malformed_sig(scheme, "shorter than its header says"))?;
        let sig = SigPacket::from_parts(header, value).map_err(|e| malformed_sig(scheme, e))?;
        let binding = listed_binding(cert, which, now).map_err(|e| refused(scheme, e))?;
        if sig.sig_type != SIG_BINARY {
            return Err(refused(
                scheme,
                format!(
                    "signature type 0x{:02x} is not a binary document signature",
                    sig.sig_type
                ),
            ));
        }
        if sig.pk_algo != scheme.algo() {
            return Err(refused(
                scheme,
                format!(
                    "signature of public-key algorithm {} under this scheme",
                    sig.pk_algo
                ),
            ));
        }
        let fpr = listed.fingerprint;
        let mut issuer_fpr = None;
        for s in &sig.hashed {
            match s.typ {
                packet::SUB_ISSUER_FINGERPRINT => {
                    if s.data.len() != 21 || s.data[0] != 4 || s.data[1..] != fpr {
                        return Err(refused(
                            scheme,
                            format!(
                                "signature issued by {}, not by the listed key {}",
                                hex::encode(s.data.get(1..).unwrap_or_default()),
                                hex::encode(fpr)
                            ),
                        ));
                    }
                    issuer_fpr = Some(());
                }
                packet::SUB_ISSUER if *s.data != fpr[12..] => {
                    return Err(refused(
                        scheme,
                        format!(
                            "signature issued by key id {}, not by the listed key {}",
                            hex::encode(s.data),
                            hex::encode(fpr)
                        ),
                    ));
                }
                _ => {}
            }
        }
        if issuer_fpr.is_none() {
            return Err(refused(scheme, "signature names no issuer fingerprint"));
        }
        let t = created(&sig).map_err(|e| refused(scheme, e))?;
        if t < u64::from(listed.created) {
            return Err(refused(scheme, "signature is older than its key"));
        }
        if let Some(e) = binding.expires
            && t >= e
        {
            return Err(refused(scheme, "signature was made after its key expired"));
        }
        if expired_sig(&sig, t, now) {
            return Err(refused(scheme, "signature has expired"));
        }
        check_sig(listed, &sig, msg, DOCUMENT_HASHES).map_err(|e| {
            if e == "the signature does not verify" {
                CryptoError::BadSignature {
                    scheme: scheme.name().into(),
                }
            } else {
                refused(scheme, e)
            }
        })
    })
}

/// The raw bytes (`other_headers || value`) of a binary OpenPGP signature packet, as
/// `gpg --detach-sign` writes it.
pub fn raw_from_packet(packet_bytes: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let bad = |reason: String| CryptoError::MalformedSignature {
        scheme: "OpenPGP".into(),
        reason,
    };
    let packets = packet::packets(packet_bytes).map_err(bad)?;
    let [p] = packets.as_slice() else {
        return Err(bad(format!(
            "{} packets, expected one signature",
            packets.len()
        )));
    };
    if p.tag != packet::TAG_SIGNATURE {
        return Err(bad(format!("packet tag {}, expected a signature", p.tag)));
    }
    let sig = SigPacket::parse(p.body).map_err(bad)?;
    let value = sig.value_bytes().ok_or_else(|| {
        bad(format!(
            "public-key algorithm {} is not supported",
            sig.pk_algo
        ))
    })?;
    let mut raw = sig.header.to_vec();
    raw.extend_from_slice(&value);
    Ok(raw)
}

/// The TUF public key for the key with `fingerprint` (40 hex digits) in the binary
/// certificate `cert` (`gpg --export`), refused unless that key may sign at `now`.
pub fn public_key_from_certificate(
    cert_bytes: &[u8],
    fingerprint: &str,
    now: u64,
) -> Result<PublicKey, CryptoError> {
    let key = listed_key(cert_bytes, fingerprint)?;
    let s = scheme_of(&key).ok_or_else(|| key.unsupported())?;
    // Refuse now what every client would refuse later.
    with_cert(&key, |_, cert, which| {
        listed_binding(cert, which, now).map_err(|e| refused(s, e))
    })?;
    Ok(key)
}

/// The fingerprints (lower-case hex) of a binary certificate's primary key and subkeys, in
/// order.
pub fn fingerprints(cert_bytes: &[u8]) -> Result<Vec<String>, CryptoError> {
    let cert = Cert::parse(cert_bytes).map_err(|reason| CryptoError::MalformedKey {
        scheme: "OpenPGP".into(),
        reason,
    })?;
    Ok(std::iter::once(&cert.primary)
        .chain(cert.subkeys.iter().map(|(k, _)| k))
        .map(|k| hex::encode(k.fingerprint))
        .collect())
}

/// The TUF public key for the key with `fingerprint` in `cert`, checked for form only (as
/// `validate`): whether it may sign is decided when verifying.
pub fn listed_key(cert_bytes: &[u8], fingerprint: &str) -> Result<PublicKey, CryptoError> {
    let bad = |reason: String| CryptoError::MalformedKey {
        scheme: "OpenPGP".into(),
        reason,
    };
    let cert = Cert::parse(cert_bytes).map_err(bad)?;
    let want = fingerprint.to_ascii_lowercase();
    let which = if hex::encode(cert.primary.fingerprint) == want {
        Which::Primary
    } else {
        let i = cert
            .subkeys
            .iter()
            .position(|(k, _)| hex::encode(k.fingerprint) == want)
            .ok_or_else(|| bad(format!("the certificate has no key {fingerprint}")))?;
        Which::Subkey(i)
    };
    let listed = cert.key(which);
    let (keytype, scheme, public) = match &listed.params {
        KeyParams::Rsa { n, e } => (
            names::RSA_KEYTYPE,
            names::PGP_RSA_SCHEME,
            serde_json::json!({"e": hex::encode(e), "n": hex::encode(n)}),
        ),
        KeyParams::Ed25519(q) => (
            names::PGP_EDDSA_KEYTYPE,
            names::PGP_EDDSA_SCHEME,
            serde_json::json!({"q": hex::encode(q)}),
        ),
        KeyParams::Other(a) => {
            return Err(bad(format!(
                "key {fingerprint}: public-key algorithm {a} is not supported"
            )));
        }
    };
    let mut keyval = BTreeMap::new();
    keyval.insert("public".to_string(), public);
    keyval.insert(
        CERTIFICATE_FIELD.to_string(),
        Value::String(packet::armor(cert_bytes, "PUBLIC KEY BLOCK")),
    );
    let key = PublicKey {
        keytype: keytype.into(),
        scheme: scheme.into(),
        keyval,
        unrecognized: BTreeMap::new(),
    };
    validate(&key)?;
    Ok(key)
}
