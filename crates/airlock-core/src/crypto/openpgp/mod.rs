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

mod packet;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use serde_json::Value;
use sha2::Digest as _;

use packet::{
    ALGO_EDDSA, ALGO_RSA, HASH_SHA256, HASH_SHA384, HASH_SHA512, KeyPacket, KeyParams, SigPacket,
    SigValue,
};

use super::{CryptoError, KeyMaterial, KeyScheme, PublicKey, names};

/// The `keyval` member holding the armored certificate (airlock's addition).
pub const CERTIFICATE_FIELD: &str = "certificate";
/// The signature member holding the hashed signature header (securesystemslib's name).
pub const OTHER_HEADERS_FIELD: &str = "other_headers";

const SIG_BINARY: u8 = 0x00;
const SIG_CERTIFICATIONS: std::ops::RangeInclusive<u8> = 0x10..=0x13;
const SIG_SUBKEY_BINDING: u8 = 0x18;
const SIG_PRIMARY_BINDING: u8 = 0x19;
const SIG_DIRECT_KEY: u8 = 0x1F;
const SIG_KEY_REVOCATION: u8 = 0x20;
const SIG_SUBKEY_REVOCATION: u8 = 0x28;
const SIG_CERT_REVOCATION: u8 = 0x30;
const FLAG_SIGN: u8 = 0x02;
/// Hashes accepted on self-signatures inside a certificate (SHA-1 and MD5 are not).
const CERT_HASHES: &[u8] = &[HASH_SHA256, HASH_SHA384, HASH_SHA512];
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

/// A certificate: the primary key, its user ids and subkeys, each with its signatures.
struct Cert<'a> {
    primary: KeyPacket,
    direct: Vec<SigPacket<'a>>,
    /// The bytes a certification hashes for each user id or attribute, with its signatures.
    uids: Vec<(Vec<u8>, Vec<SigPacket<'a>>)>,
    subkeys: Vec<(KeyPacket, Vec<SigPacket<'a>>)>,
}

impl<'a> Cert<'a> {
    fn parse(data: &'a [u8]) -> Result<Cert<'a>, String> {
        let packets = packet::packets(data)?;
        let mut iter = packets.into_iter();
        let first = iter.next().ok_or("the certificate is empty")?;
        if first.tag != packet::TAG_PUBLIC_KEY {
            return Err("the certificate does not start with a public key packet".into());
        }
        let mut cert = Cert {
            primary: KeyPacket::parse(first.body)?,
            direct: Vec::new(),
            uids: Vec::new(),
            subkeys: Vec::new(),
        };
        enum At {
            Primary,
            Uid,
            Subkey,
        }
        let mut at = At::Primary;
        for p in iter {
            match p.tag {
                packet::TAG_SIGNATURE => {
                    let sig = SigPacket::parse(p.body)?;
                    let sigs = match at {
                        At::Primary => &mut cert.direct,
                        At::Uid => cert.uids.last_mut().map(|u| &mut u.1).ok_or("no uid")?,
                        At::Subkey => cert.subkeys.last_mut().map(|s| &mut s.1).ok_or("no key")?,
                    };
                    sigs.push(sig);
                }
                packet::TAG_USER_ID | packet::TAG_USER_ATTRIBUTE => {
                    let prefix_byte = if p.tag == packet::TAG_USER_ID {
                        0xB4
                    } else {
                        0xD1
                    };
                    let mut prefix = vec![prefix_byte];
                    prefix.extend_from_slice(&(p.body.len() as u32).to_be_bytes());
                    prefix.extend_from_slice(p.body);
                    cert.uids.push((prefix, Vec::new()));
                    at = At::Uid;
                }
                packet::TAG_PUBLIC_SUBKEY => {
                    cert.subkeys.push((KeyPacket::parse(p.body)?, Vec::new()));
                    at = At::Subkey;
                }
                packet::TAG_TRUST => {}
                packet::TAG_PUBLIC_KEY => {
                    return Err("the certificate holds more than one primary key".into());
                }
                other => return Err(format!("unexpected OpenPGP packet (tag {other})")),
            }
        }
        Ok(cert)
    }

    fn key(&self, which: Which) -> &KeyPacket {
        match which {
            Which::Primary => &self.primary,
            Which::Subkey(i) => self.subkeys.get(i).map(|s| &s.0).unwrap_or(&self.primary),
        }
    }
}

/// Which key of a certificate the metadata lists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Which {
    Primary,
    Subkey(usize),
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

enum Verifier {
    Rsa(rsa::PublicKey),
    Ed25519(ed25519_dalek::VerifyingKey),
}

fn verifier(params: &KeyParams) -> Result<Verifier, String> {
    match params {
        KeyParams::Rsa { n, e } => {
            let n = rsa::BoxedUint::from_be_slice_vartime(n);
            let e = rsa::BoxedUint::from_be_slice_vartime(e);
            let pk = rsa::PublicKey::new_with_size_limits(n, e, 1024..=16384)
                .map_err(|err| format!("RSA key: {err}"))?;
            super::rsa::check_public(&pk).map_err(|err| err.to_string())?;
            Ok(Verifier::Rsa(pk))
        }
        KeyParams::Ed25519(q) => super::ed25519::strict_verifying_key(q).map(Verifier::Ed25519),
        KeyParams::Other(algo) => Err(format!(
            "OpenPGP public-key algorithm {algo} is not supported"
        )),
    }
}

fn usable_params(scheme: Scheme, params: &KeyParams) -> Result<Verifier, CryptoError> {
    verifier(params).map_err(|e| malformed_key(scheme, e))
}

/// Check one signature over `data` (everything hashed before the trailer) by `key`.
fn check_sig(
    key: &KeyPacket,
    sig: &SigPacket<'_>,
    data: &[u8],
    hashes: &[u8],
) -> Result<(), String> {
    if !hashes.contains(&sig.hash_algo) {
        return Err(format!(
            "the signature uses hash algorithm {} ({}); allowed: {}",
            sig.hash_algo,
            hash_name(sig.hash_algo),
            hashes
                .iter()
                .map(|h| hash_name(*h))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if let Some(t) = sig.unknown_critical() {
        return Err(format!(
            "the signature has a critical subpacket {t} that is not understood"
        ));
    }
    let expected_algo = match key.params {
        KeyParams::Rsa { .. } => ALGO_RSA,
        KeyParams::Ed25519(_) => ALGO_EDDSA,
        KeyParams::Other(a) => a,
    };
    if sig.pk_algo != expected_algo {
        return Err(format!(
            "the signature is of public-key algorithm {}, the key of {expected_algo}",
            sig.pk_algo
        ));
    }
    let trailer = sig.trailer();
    let digest: Vec<u8> = match sig.hash_algo {
        HASH_SHA256 => sha2::Sha256::new()
            .chain_update(data)
            .chain_update(&trailer)
            .finalize()
            .to_vec(),
        HASH_SHA384 => sha2::Sha384::new()
            .chain_update(data)
            .chain_update(&trailer)
            .finalize()
            .to_vec(),
        HASH_SHA512 => sha2::Sha512::new()
            .chain_update(data)
            .chain_update(&trailer)
            .finalize()
            .to_vec(),
        other => return Err(format!("hash algorithm {other} is not supported")),
    };
    let ok = match (verifier(&key.params)?, &sig.value) {
        (Verifier::Rsa(pk), SigValue::Rsa(v)) => {
            use rsa::traits::PublicKeyParts as _;
            let size = pk.size();
            if v.len() > size {
                return Err("the RSA signature is longer than the modulus".into());
            }
            // An MPI drops leading zeros; PKCS#1 wants the modulus length back.
            let mut padded = vec![0u8; size - v.len()];
            padded.extend_from_slice(v);
            let scheme = match sig.hash_algo {
                HASH_SHA256 => rsa::Pkcs1v15Sign::new::<sha2::Sha256>(),
                HASH_SHA384 => rsa::Pkcs1v15Sign::new::<sha2::Sha384>(),
                _ => rsa::Pkcs1v15Sign::new::<sha2::Sha512>(),
            };
            pk.verify(scheme, &digest, &padded).is_ok()
        }
        (Verifier::Ed25519(vk), SigValue::Ed25519(v)) => {
            let s = ed25519_dalek::Signature::from_bytes(v);
            vk.verify_strict(&digest, &s).is_ok()
        }
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err("the signature does not verify".into())
    }
}

fn hash_name(algo: u8) -> &'static str {
    match algo {
        1 => "MD5",
        2 => "SHA-1",
        3 => "RIPEMD-160",
        HASH_SHA256 => "SHA-256",
        HASH_SHA384 => "SHA-384",
        HASH_SHA512 => "SHA-512",
        11 => "SHA-224",
        _ => "unknown",
    }
}

fn created(sig: &SigPacket<'_>) -> Result<u64, String> {
    sig.hashed_u32(packet::SUB_CREATION_TIME)?
        .map(u64::from)
        .ok_or_else(|| "the signature has no hashed creation time".into())
}

/// A self-signature that counts at `now`: made by the primary key over `data`, with an
/// accepted hash, not dated after `now` and not expired. Returns its creation time.
fn live_self_sig(cert: &Cert<'_>, sig: &SigPacket<'_>, data: &[u8], now: u64) -> Option<u64> {
    check_sig(&cert.primary, sig, data, CERT_HASHES).ok()?;
    let t = created(sig).ok()?;
    if t > now || expired_sig(sig, t, now) {
        return None;
    }
    Some(t)
}

fn expired_sig(sig: &SigPacket<'_>, created: u64, now: u64) -> bool {
    match sig.hashed_u32(packet::SUB_SIG_EXPIRATION) {
        Ok(Some(0) | None) => false,
        Ok(Some(v)) => created + u64::from(v) <= now,
        Err(_) => true,
    }
}

/// What the newest valid self-signature of a key says.
struct Binding {
    flags: Option<u8>,
    /// Expiry as an absolute time, if the key expires.
    expires: Option<u64>,
}

fn binding_of(sig: &SigPacket<'_>, key: &KeyPacket) -> Result<Binding, String> {
    let flags = sig
        .hashed_sub(packet::SUB_KEY_FLAGS)
        .and_then(|f| f.first().copied());
    let expires = match sig.hashed_u32(packet::SUB_KEY_EXPIRATION)? {
        None | Some(0) => None,
        Some(v) => Some(u64::from(key.created) + u64::from(v)),
    };
    Ok(Binding { flags, expires })
}

fn fmt_time(t: u64) -> String {
    i64::try_from(t)
        .ok()
        .and_then(|t| chrono::DateTime::from_timestamp(t, 0))
        .map(|d| d.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|| t.to_string())
}

/// The primary key's state at `now`: refused if revoked, expired or without a valid
/// self-signature.
fn primary_binding(cert: &Cert<'_>, now: u64) -> Result<Binding, String> {
    let prefix = cert.primary.hash_prefix();
    let fpr = hex::encode(cert.primary.fingerprint);
    if cert.direct.iter().any(|s| {
        s.sig_type == SIG_KEY_REVOCATION
            && check_sig(&cert.primary, s, &prefix, CERT_HASHES).is_ok()
    }) {
        return Err(format!("primary key {fpr} is revoked"));
    }
    let mut candidates: Vec<(u64, &SigPacket<'_>)> = Vec::new();
    for s in cert.direct.iter().filter(|s| s.sig_type == SIG_DIRECT_KEY) {
        if let Some(t) = live_self_sig(cert, s, &prefix, now) {
            candidates.push((t, s));
        }
    }
    for (uid, sigs) in &cert.uids {
        let mut data = prefix.clone();
        data.extend_from_slice(uid);
        let revoked = sigs.iter().any(|s| {
            s.sig_type == SIG_CERT_REVOCATION
                && check_sig(&cert.primary, s, &data, CERT_HASHES).is_ok()
        });
        if revoked {
            continue;
        }
        for s in sigs
            .iter()
            .filter(|s| SIG_CERTIFICATIONS.contains(&s.sig_type))
        {
            if let Some(t) = live_self_sig(cert, s, &data, now) {
                candidates.push((t, s));
            }
        }
    }
    // The newest self-signature states the key's current flags and expiry.
    let best = candidates.into_iter().max_by_key(|(t, _)| *t);
    let (_, sig) = best.ok_or_else(|| format!("primary key {fpr} has no valid self-signature"))?;
    let binding = binding_of(sig, &cert.primary)?;
    if let Some(e) = binding.expires
        && now >= e
    {
        return Err(format!("primary key {fpr} expired at {}", fmt_time(e)));
    }
    Ok(binding)
}

/// The listed key's state at `now`; refused unless it is valid and may sign.
fn listed_binding(cert: &Cert<'_>, which: Which, now: u64) -> Result<Binding, String> {
    let primary = primary_binding(cert, now)?;
    let (key, binding) = match which {
        Which::Primary => (&cert.primary, primary),
        Which::Subkey(i) => {
            let Some((sub, sigs)) = cert.subkeys.get(i) else {
                return Err("no such subkey".into());
            };
            let fpr = hex::encode(sub.fingerprint);
            let mut data = cert.primary.hash_prefix();
            data.extend_from_slice(&sub.hash_prefix());
            if sigs.iter().any(|s| {
                s.sig_type == SIG_SUBKEY_REVOCATION
                    && check_sig(&cert.primary, s, &data, CERT_HASHES).is_ok()
            }) {
                return Err(format!("subkey {fpr} is revoked"));
            }
            let best = sigs
                .iter()
                .filter(|s| s.sig_type == SIG_SUBKEY_BINDING)
                .filter_map(|s| live_self_sig(cert, s, &data, now).map(|t| (t, s)))
                .max_by_key(|(t, _)| *t);
            let (_, sig) =
                best.ok_or_else(|| format!("subkey {fpr} has no valid binding signature"))?;
            let binding = binding_of(sig, sub)?;
            if binding.flags.unwrap_or(0) & FLAG_SIGN != 0 && !back_signed(sig, sub, &data) {
                return Err(format!(
                    "signing subkey {fpr} has no valid primary key binding (back) signature"
                ));
            }
            // A subkey cannot outlive its primary key.
            let expires = match (binding.expires, primary.expires) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            (sub, Binding { expires, ..binding })
        }
    };
    let fpr = hex::encode(key.fingerprint);
    if binding.flags.unwrap_or(0) & FLAG_SIGN == 0 {
        return Err(format!(
            "key {fpr} may not sign: its self-signature does not grant the signing capability"
        ));
    }
    if let Some(e) = binding.expires
        && now >= e
    {
        return Err(format!("key {fpr} expired at {}", fmt_time(e)));
    }
    Ok(binding)
}

/// Whether a subkey binding signature embeds the subkey's own signature over the binding
/// (RFC 4880 5.2.1, 0x19): without it anyone could claim another's signing key as a subkey.
fn back_signed(binding: &SigPacket<'_>, sub: &KeyPacket, data: &[u8]) -> bool {
    binding
        .hashed
        .iter()
        .chain(binding.unhashed.iter())
        .filter(|s| s.typ == packet::SUB_EMBEDDED_SIGNATURE)
        .filter_map(|s| SigPacket::parse(s.data).ok())
        .any(|b| b.sig_type == SIG_PRIMARY_BINDING && check_sig(sub, &b, data, CERT_HASHES).is_ok())
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
