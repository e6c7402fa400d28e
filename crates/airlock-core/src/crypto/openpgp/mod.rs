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
//! Packets, certificates and signatures are parsed, and every signature verified, by the `pgp`
//! crate (rpgp); what makes a key valid at a time (`cert.rs`) and the form checks above are
//! airlock's policy on top of it. rpgp brings the previous RustCrypto generation, used only here.
//!
//! "Now" is the system clock: `PublicKey::verify` takes no time, and key expiry is a statement
//! about the present. This is the one place the core reads a clock; [`verify_at`] takes it.

mod cert;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use pgp::armor::{BlockType, Dearmor};
use pgp::composed::{ArmorOptions, Deserializable as _, SignedPublicKey};
use pgp::crypto::hash::HashAlgorithm;
use pgp::crypto::public_key::PublicKeyAlgorithm;
use pgp::packet::{
    Packet, PacketHeader, PacketParser, PacketTrait as _, Signature, SignatureType,
    SignatureVersion, SubpacketData, SubpacketType,
};
use pgp::ser::Serialize as _;
use pgp::types::{
    EddsaLegacyPublicParams, KeyDetails, KeyVersion, Mpi, PublicParams, SignatureBytes, Tag,
};
use serde_json::Value;
use sha2::Digest as _;

use cert::{Which, created, expired_sig, fpr_hex, hash_name, listed_binding};

use super::{CryptoError, KeyMaterial, KeyScheme, PublicKey, names};

/// The `keyval` member holding the armored certificate (airlock's addition).
pub const CERTIFICATE_FIELD: &str = "certificate";
/// The signature member holding the hashed signature header (securesystemslib's name).
pub const OTHER_HEADERS_FIELD: &str = "other_headers";

/// The one hash accepted on metadata signatures: securesystemslib verifies with SHA-256 only.
const DOCUMENT_HASH: HashAlgorithm = HashAlgorithm::Sha256;

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
    fn algo(self) -> PublicKeyAlgorithm {
        match self {
            Scheme::Rsa => PublicKeyAlgorithm::RSA,
            Scheme::Ed25519 => PublicKeyAlgorithm::EdDSALegacy,
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

/// The public numbers of a key airlock can verify with.
#[derive(Clone, Debug, PartialEq, Eq)]
enum KeyParams {
    /// Modulus and public exponent, big-endian, minimal.
    Rsa { n: Vec<u8>, e: Vec<u8> },
    /// The 32-byte Ed25519 point (legacy EdDSA, algorithm 22).
    Ed25519([u8; 32]),
    /// Anything else, named for error messages.
    Other(String),
}

/// The numbers of a certificate's (sub)key, as rpgp parsed them.
fn params_of(key: &impl KeyDetails) -> KeyParams {
    if key.version() != KeyVersion::V4 {
        return KeyParams::Other(format!("key version {:?}", key.version()));
    }
    match key.public_params() {
        PublicParams::RSA(p) => {
            // rpgp writes the numbers as the key packet holds them: two MPIs, n then e.
            let mpis = p.to_bytes().ok().and_then(|bytes| {
                let mut r = bytes.as_slice();
                let n = Mpi::try_from_reader(&mut r).ok()?;
                let e = Mpi::try_from_reader(&mut r).ok()?;
                r.is_empty()
                    .then(|| (n.as_ref().to_vec(), e.as_ref().to_vec()))
            });
            match mpis {
                Some((n, e)) => KeyParams::Rsa { n, e },
                None => KeyParams::Other("unreadable RSA numbers".into()),
            }
        }
        PublicParams::EdDSALegacy(EddsaLegacyPublicParams::Ed25519 { key }) => {
            KeyParams::Ed25519(key.to_bytes())
        }
        _ => KeyParams::Other(format!("public-key algorithm {:?}", key.algorithm())),
    }
}

/// The key's certificate (parsed) and its listed numbers.
struct Parsed {
    scheme: Scheme,
    cert: SignedPublicKey,
    params: KeyParams,
}

/// A binary certificate (`gpg --export`): exactly one primary key with its user ids, subkeys and
/// signatures.
fn parse_cert(bytes: &[u8]) -> Result<SignedPublicKey, String> {
    one_cert(SignedPublicKey::from_bytes_many(bytes).map_err(|e| e.to_string())?)
}

/// An ASCII-armored certificate; its CRC-24, when present, must match.
fn parse_armored_cert(text: &str) -> Result<SignedPublicKey, String> {
    let mut armor = Dearmor::new(text.as_bytes());
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut armor, &mut bytes).map_err(|e| format!("armor: {e}"))?;
    if armor.typ != Some(BlockType::PublicKey) {
        return Err("not a PGP PUBLIC KEY BLOCK".into());
    }
    // rpgp 0.21's own check (`DearmorOptions::enable_crc24_check`) drops its running sum and
    // refuses every armor, so the sum is compared here.
    if let Some(sum) = armor.checksum
        && sum != u64::from(crc24::hash_raw(&bytes))
    {
        return Err("armor checksum does not match".into());
    }
    parse_cert(&bytes)
}

fn one_cert(
    mut certs: impl Iterator<Item = pgp::errors::Result<SignedPublicKey>>,
) -> Result<SignedPublicKey, String> {
    let cert = certs
        .next()
        .ok_or("the certificate is empty")?
        .map_err(|e| e.to_string())?;
    if certs.next().is_some() {
        return Err("the certificate holds more than one primary key".into());
    }
    Ok(cert)
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
    let cert = parse_armored_cert(armored)
        .map_err(|e| malformed_key(scheme, format!("keyval.certificate: {e}")))?;
    Ok(Parsed {
        scheme,
        cert,
        params,
    })
}

/// Find the listed key in the certificate by its material (never by a name or id).
fn find_listed(parsed: &Parsed) -> Result<Which, CryptoError> {
    let cert = &parsed.cert;
    let mut found = Vec::new();
    if params_of(&cert.primary_key) == parsed.params {
        found.push(Which::Primary);
    }
    for (i, k) in cert.public_subkeys.iter().enumerate() {
        if params_of(&k.key) == parsed.params {
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

/// The fingerprint (lower-case hex), creation time and numbers of one key of a certificate.
fn key_of(cert: &SignedPublicKey, which: Which) -> (String, u64, KeyParams) {
    fn of(k: &impl KeyDetails) -> (String, u64, KeyParams) {
        (
            fpr_hex(k),
            u64::from(k.created_at().as_secs()),
            params_of(k),
        )
    }
    match which {
        Which::Subkey(i) => cert
            .public_subkeys
            .get(i)
            .map(|s| of(&s.key))
            .unwrap_or_else(|| of(&cert.primary_key)),
        Which::Primary => of(&cert.primary_key),
    }
}

fn with_cert<T>(
    key: &PublicKey,
    f: impl FnOnce(&Parsed, Which) -> Result<T, CryptoError>,
) -> Result<T, CryptoError> {
    let parsed = parse_key(key)?;
    let which = find_listed(&parsed)?;
    f(&parsed, which)
}

/// Structural check: the key parses and its certificate holds it (validity is checked when
/// verifying, against the clock).
pub(crate) fn validate(key: &PublicKey) -> Result<(), CryptoError> {
    with_cert(key, |parsed, which| {
        usable_params(parsed.scheme, &key_of(&parsed.cert, which).2).map(|_| ())
    })
}

/// The listed key's fingerprint, lower-case hex: securesystemslib's key id for GnuPG keys.
pub(crate) fn key_id(key: &PublicKey) -> Option<String> {
    with_cert(key, |parsed, which| Ok(key_of(&parsed.cert, which).0)).ok()
}

/// The listed key's material, in the canonical form of the plain scheme with the same key
/// (RSA or Ed25519), so one key listed both ways counts once.
pub(crate) fn material(key: &PublicKey) -> Result<KeyMaterial, CryptoError> {
    with_cert(key, |parsed, which| {
        Ok(
            match usable_params(parsed.scheme, &key_of(&parsed.cert, which).2)? {
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

/// The listed numbers as the workspace's own key types: airlock's key-size and
/// weak-point rules apply to OpenPGP keys as to the others, and the material counts thresholds.
enum Verifier {
    Rsa(rsa::PublicKey),
    Ed25519(ed25519_dalek::VerifyingKey),
}

fn usable_params(scheme: Scheme, params: &KeyParams) -> Result<Verifier, CryptoError> {
    let bad = |e: String| malformed_key(scheme, e);
    match params {
        KeyParams::Rsa { n, e } => {
            let n = rsa::BoxedUint::from_be_slice_vartime(n);
            let e = rsa::BoxedUint::from_be_slice_vartime(e);
            let pk = rsa::PublicKey::new_with_size_limits(n, e, 1024..=16384)
                .map_err(|err| bad(format!("RSA key: {err}")))?;
            super::rsa::check_public(&pk).map_err(|err| bad(err.to_string()))?;
            Ok(Verifier::Rsa(pk))
        }
        KeyParams::Ed25519(q) => super::ed25519::strict_verifying_key(q)
            .map(Verifier::Ed25519)
            .map_err(bad),
        KeyParams::Other(what) => Err(bad(format!("OpenPGP {what} is not supported"))),
    }
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
    with_cert(key, |parsed, which| {
        let scheme = parsed.scheme;
        let (fpr, key_created, params) = key_of(&parsed.cert, which);
        usable_params(scheme, &params)?;
        let (header, value) =
            split_raw(raw).ok_or_else(|| malformed_sig(scheme, "shorter than its header says"))?;
        let sig = sig_from_parts(scheme, header, value, msg)?;
        let binding = listed_binding(&parsed.cert, which, now).map_err(|e| refused(scheme, e))?;
        let config = sig
            .config()
            .ok_or_else(|| malformed_sig(scheme, "not a version 4 signature"))?;
        if config.typ != SignatureType::Binary {
            return Err(refused(
                scheme,
                format!(
                    "signature type 0x{:02x} is not a binary document signature",
                    u8::from(config.typ)
                ),
            ));
        }
        if config.pub_alg != scheme.algo() {
            return Err(refused(
                scheme,
                format!(
                    "signature of public-key algorithm {:?} under this scheme",
                    config.pub_alg
                ),
            ));
        }
        if config.hash_alg != DOCUMENT_HASH {
            return Err(refused(
                scheme,
                format!(
                    "the signature uses hash algorithm {} ({}); allowed: {}",
                    u8::from(config.hash_alg),
                    hash_name(config.hash_alg),
                    hash_name(DOCUMENT_HASH)
                ),
            ));
        }
        let mut issuer_fpr = false;
        for s in config.hashed_subpackets() {
            match &s.data {
                SubpacketData::IssuerFingerprint(f) => {
                    let named = hex::encode(f.as_bytes());
                    if f.version() != Some(KeyVersion::V4) || named != fpr {
                        return Err(refused(
                            scheme,
                            format!("signature issued by {named}, not by the listed key {fpr}"),
                        ));
                    }
                    issuer_fpr = true;
                }
                SubpacketData::IssuerKeyId(id) if !fpr.ends_with(&hex::encode(id.as_ref())) => {
                    return Err(refused(
                        scheme,
                        format!(
                            "signature issued by key id {}, not by the listed key {fpr}",
                            hex::encode(id.as_ref())
                        ),
                    ));
                }
                _ if s.is_critical && matches!(s.typ(), SubpacketType::Other(_)) => {
                    return Err(refused(
                        scheme,
                        format!(
                            "the signature has a critical subpacket {:?} that is not understood",
                            s.typ()
                        ),
                    ));
                }
                _ => {}
            }
        }
        if !issuer_fpr {
            return Err(refused(scheme, "signature names no issuer fingerprint"));
        }
        let t = created(&sig).map_err(|e| refused(scheme, e))?;
        if t < key_created {
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
        // Only the listed key verifies: never another key of the certificate.
        let verified = match which {
            Which::Primary => sig.verify(&parsed.cert.primary_key, msg),
            Which::Subkey(i) => match parsed.cert.public_subkeys.get(i) {
                Some(sub) => sig.verify(&sub.key, msg),
                None => return Err(refused(scheme, "no such subkey")),
            },
        };
        verified.map_err(|_| CryptoError::BadSignature {
            scheme: scheme.name().into(),
        })
    })
}

/// The signature securesystemslib's two members describe, as rpgp's packet.
///
/// Those members drop the packet's unhashed subpackets and the left 16 bits of the hash (a
/// quick check that protects nothing); rpgp wants the latter, so they are computed from `msg`.
/// A wrong `msg` then fails rpgp's verification of the signature itself.
fn sig_from_parts(
    scheme: Scheme,
    header: &[u8],
    value: &[u8],
    msg: &[u8],
) -> Result<Signature, CryptoError> {
    let bad = |reason: String| malformed_sig(scheme, reason);
    if header.first() != Some(&4) {
        return Err(bad("only version 4 signatures are supported".into()));
    }
    let mpis = match scheme {
        Scheme::Rsa if !value.is_empty() => vec![Mpi::from_slice(value)],
        Scheme::Ed25519 if value.len() == 64 => {
            let (r, s) = value.split_at(32);
            vec![Mpi::from_slice(r), Mpi::from_slice(s)]
        }
        _ => {
            return Err(bad(format!(
                "a signature value of {} bytes under this scheme",
                value.len()
            )));
        }
    };
    let mut body = header.to_vec();
    body.extend_from_slice(&[0, 0, 0, 0]); // no unhashed subpackets; hash bits filled in below
    mpis.to_writer(&mut body)
        .map_err(|e| bad(format!("signature value: {e}")))?;
    let value = SignatureBytes::Mpis(mpis);
    let len = u32::try_from(body.len()).map_err(|_| bad("too long".into()))?;
    let mut rest = body.as_slice();
    let parsed =
        Signature::try_from_reader(PacketHeader::new_fixed(Tag::Signature, len), &mut rest)
            .map_err(|e| bad(e.to_string()))?;
    if !rest.is_empty() {
        return Err(bad(
            "other_headers does not parse as one signature header".into()
        ));
    }
    let config = match parsed.config() {
        Some(c) if c.version() == SignatureVersion::V4 => c.clone(),
        _ => return Err(bad("only version 4 signatures are supported".into())),
    };
    let header_len = u32::try_from(header.len()).map_err(|_| bad("too long".into()))?;
    let digest = sha2::Sha256::new()
        .chain_update(msg)
        .chain_update(header)
        .chain_update([4, 0xFF])
        .chain_update(header_len.to_be_bytes())
        .finalize();
    let left16 = [digest[0], digest[1]];
    Signature::from_config(config, left16, value).map_err(|e| bad(e.to_string()))
}

/// The raw bytes (`other_headers || value`) of a binary OpenPGP signature packet, as
/// `gpg --detach-sign` writes it.
pub fn raw_from_packet(packet_bytes: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let bad = |reason: String| CryptoError::MalformedSignature {
        scheme: "OpenPGP".into(),
        reason,
    };
    let packets = PacketParser::new(packet_bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(e.to_string()))?;
    let [p] = packets.as_slice() else {
        return Err(bad(format!(
            "{} packets, expected one signature",
            packets.len()
        )));
    };
    let Packet::Signature(sig) = p else {
        return Err(bad(format!(
            "packet {:?}, expected a signature",
            p.packet_header().tag()
        )));
    };
    if sig.version() != SignatureVersion::V4 {
        return Err(bad("only version 4 signatures are supported".into()));
    }
    let body = sig.to_bytes().map_err(|e| bad(e.to_string()))?;
    let (header, _) = split_raw(&body).ok_or_else(|| bad("truncated header".into()))?;
    let pub_alg = sig.config().map(|c| c.pub_alg);
    let value = match (pub_alg, sig.signature()) {
        (Some(PublicKeyAlgorithm::RSA), Some(SignatureBytes::Mpis(m))) if m.len() == 1 => {
            m.iter().flat_map(|m| m.as_ref().to_vec()).collect()
        }
        (Some(PublicKeyAlgorithm::EdDSALegacy), Some(SignatureBytes::Mpis(m))) if m.len() == 2 => {
            // R || S, each left-padded to 32 bytes, as securesystemslib stores it.
            let mut out = Vec::with_capacity(64);
            for half in m {
                let half = half.as_ref();
                let pad = 32usize
                    .checked_sub(half.len())
                    .ok_or_else(|| bad("Ed25519 signature value is too long".into()))?;
                out.extend(std::iter::repeat_n(0u8, pad));
                out.extend_from_slice(half);
            }
            out
        }
        (alg, _) => {
            return Err(bad(format!(
                "public-key algorithm {alg:?} is not supported"
            )));
        }
    };
    let mut raw = header.to_vec();
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
    with_cert(&key, |parsed, which| {
        listed_binding(&parsed.cert, which, now).map_err(|e| refused(s, e))
    })?;
    Ok(key)
}

/// The fingerprints (lower-case hex) of a binary certificate's primary key and subkeys, in
/// order.
pub fn fingerprints(cert_bytes: &[u8]) -> Result<Vec<String>, CryptoError> {
    let cert = parse_cert(cert_bytes).map_err(|reason| CryptoError::MalformedKey {
        scheme: "OpenPGP".into(),
        reason,
    })?;
    Ok(std::iter::once(fpr_hex(&cert.primary_key))
        .chain(cert.public_subkeys.iter().map(|k| fpr_hex(&k.key)))
        .collect())
}

/// The TUF public key for the key with `fingerprint` in `cert`, checked for form only (as
/// `validate`): whether it may sign is decided when verifying.
pub fn listed_key(cert_bytes: &[u8], fingerprint: &str) -> Result<PublicKey, CryptoError> {
    let bad = |reason: String| CryptoError::MalformedKey {
        scheme: "OpenPGP".into(),
        reason,
    };
    let cert = parse_cert(cert_bytes).map_err(bad)?;
    let want = fingerprint.to_ascii_lowercase();
    let which = if fpr_hex(&cert.primary_key) == want {
        Which::Primary
    } else {
        let i = cert
            .public_subkeys
            .iter()
            .position(|k| fpr_hex(&k.key) == want)
            .ok_or_else(|| bad(format!("the certificate has no key {fingerprint}")))?;
        Which::Subkey(i)
    };
    let (keytype, scheme, public) = match key_of(&cert, which).2 {
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
        KeyParams::Other(what) => {
            return Err(bad(format!("key {fingerprint}: {what} is not supported")));
        }
    };
    let armored = cert
        .to_armored_string(ArmorOptions::default())
        .map_err(|e| bad(format!("armoring the certificate: {e}")))?;
    let mut keyval = BTreeMap::new();
    keyval.insert("public".to_string(), public);
    keyval.insert(CERTIFICATE_FIELD.to_string(), Value::String(armored));
    let key = PublicKey {
        keytype: keytype.into(),
        scheme: scheme.into(),
        keyval,
        unrecognized: BTreeMap::new(),
    };
    validate(&key)?;
    Ok(key)
}
