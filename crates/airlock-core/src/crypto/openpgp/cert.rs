//! Certificates: which of a certificate's keys may sign at a given time, and the signature
//! checks shared by self-signatures and metadata signatures (RFC 4880 5.2 and 11.1).

use sha2::Digest as _;

use super::packet::{
    self, ALGO_EDDSA, ALGO_RSA, HASH_SHA256, HASH_SHA384, HASH_SHA512, KeyPacket, KeyParams,
    SigPacket, SigValue,
};

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
/// A certificate: the primary key, its user ids and subkeys, each with its signatures.
pub(super) struct Cert<'a> {
    pub primary: KeyPacket,
    direct: Vec<SigPacket<'a>>,
    /// The bytes a certification hashes for each user id or attribute, with its signatures.
    uids: Vec<(Vec<u8>, Vec<SigPacket<'a>>)>,
    pub subkeys: Vec<(KeyPacket, Vec<SigPacket<'a>>)>,
}

impl<'a> Cert<'a> {
    pub fn parse(data: &'a [u8]) -> Result<Cert<'a>, String> {
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

    pub fn key(&self, which: Which) -> &KeyPacket {
        match which {
            Which::Primary => &self.primary,
            Which::Subkey(i) => self.subkeys.get(i).map(|s| &s.0).unwrap_or(&self.primary),
        }
    }
}

/// Which key of a certificate the metadata lists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Which {
    Primary,
    Subkey(usize),
}

/// A key ready to verify with.
pub(super) enum Verifier {
    Rsa(rsa::PublicKey),
    Ed25519(ed25519_dalek::VerifyingKey),
}

pub(super) fn verifier(params: &KeyParams) -> Result<Verifier, String> {
    match params {
        KeyParams::Rsa { n, e } => {
            let n = rsa::BoxedUint::from_be_slice_vartime(n);
            let e = rsa::BoxedUint::from_be_slice_vartime(e);
            let pk = rsa::PublicKey::new_with_size_limits(n, e, 1024..=16384)
                .map_err(|err| format!("RSA key: {err}"))?;
            crate::crypto::rsa::check_public(&pk).map_err(|err| err.to_string())?;
            Ok(Verifier::Rsa(pk))
        }
        KeyParams::Ed25519(q) => {
            crate::crypto::ed25519::strict_verifying_key(q).map(Verifier::Ed25519)
        }
        KeyParams::Other(algo) => Err(format!(
            "OpenPGP public-key algorithm {algo} is not supported"
        )),
    }
}

/// Check one signature over `data` (everything hashed before the trailer) by `key`.
pub(super) fn check_sig(
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

pub(super) fn created(sig: &SigPacket<'_>) -> Result<u64, String> {
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

pub(super) fn expired_sig(sig: &SigPacket<'_>, created: u64, now: u64) -> bool {
    match sig.hashed_u32(packet::SUB_SIG_EXPIRATION) {
        Ok(Some(0) | None) => false,
        Ok(Some(v)) => created + u64::from(v) <= now,
        Err(_) => true,
    }
}

/// What the newest valid self-signature of a key says.
pub(super) struct Binding {
    pub flags: Option<u8>,
    /// Expiry as an absolute time, if the key expires.
    pub expires: Option<u64>,
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
pub(super) fn listed_binding(cert: &Cert<'_>, which: Which, now: u64) -> Result<Binding, String> {
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
