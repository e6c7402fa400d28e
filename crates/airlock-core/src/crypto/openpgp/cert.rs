//! Which key of a certificate may sign at a given time: the policy airlock applies on top of
//! rpgp, which parses the certificate and verifies each self-signature.

use pgp::composed::SignedPublicKey;
use pgp::crypto::hash::HashAlgorithm;
use pgp::packet::{PublicKey as PgpKey, PublicSubkey, Signature, SignatureType};
use pgp::types::Tag;

/// Hashes accepted on self-signatures inside a certificate (SHA-1 and MD5 are not).
const CERT_HASHES: &[HashAlgorithm] = &[
    HashAlgorithm::Sha256,
    HashAlgorithm::Sha384,
    HashAlgorithm::Sha512,
];

/// Which key of a certificate the metadata lists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Which {
    Primary,
    Subkey(usize),
}

/// What the newest valid self-signature of a key says.
pub(super) struct Binding {
    pub sign: bool,
    /// Expiry as an absolute time, if the key expires.
    pub expires: Option<u64>,
}

pub(super) fn hash_name(h: HashAlgorithm) -> &'static str {
    match h {
        HashAlgorithm::Md5 => "MD5",
        HashAlgorithm::Sha1 => "SHA-1",
        HashAlgorithm::Ripemd160 => "RIPEMD-160",
        HashAlgorithm::Sha256 => "SHA-256",
        HashAlgorithm::Sha384 => "SHA-384",
        HashAlgorithm::Sha512 => "SHA-512",
        HashAlgorithm::Sha224 => "SHA-224",
        _ => "unknown",
    }
}

pub(super) fn created(sig: &Signature) -> Result<u64, String> {
    sig.created()
        .map(|t| u64::from(t.as_secs()))
        .ok_or_else(|| "the signature has no hashed creation time".into())
}

pub(super) fn expired_sig(sig: &Signature, created: u64, now: u64) -> bool {
    match sig.signature_expiration_time().map(|d| d.as_secs()) {
        None | Some(0) => false,
        Some(v) => created + u64::from(v) <= now,
    }
}

fn accepted_hash(sig: &Signature) -> bool {
    sig.hash_alg().is_some_and(|h| CERT_HASHES.contains(&h))
}

/// A self-signature that counts at `now`: `verified` (rpgp's check that the primary key made it
/// over the right data) with an accepted hash, not dated after `now` and not expired. Returns
/// its creation time.
fn live(sig: &Signature, verified: bool, now: u64) -> Option<u64> {
    if !verified || !accepted_hash(sig) {
        return None;
    }
    let t = created(sig).ok()?;
    (t <= now && !expired_sig(sig, t, now)).then_some(t)
}

fn binding_of(sig: &Signature, key_created: u64) -> Binding {
    let expires = match sig.key_expiration_time().map(|d| d.as_secs()) {
        None | Some(0) => None,
        Some(v) => Some(key_created + u64::from(v)),
    };
    Binding {
        sign: sig.key_flags().sign(),
        expires,
    }
}

fn fmt_time(t: u64) -> String {
    i64::try_from(t)
        .ok()
        .and_then(|t| chrono::DateTime::from_timestamp(t, 0))
        .map(|d| d.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|| t.to_string())
}

pub(super) fn fpr_hex(key: &impl pgp::types::KeyDetails) -> String {
    hex::encode(key.fingerprint().as_bytes())
}

fn key_created(key: &impl pgp::types::KeyDetails) -> u64 {
    u64::from(key.created_at().as_secs())
}

/// The primary key's state at `now`: refused if revoked, expired or without a valid
/// self-signature.
fn primary_binding(cert: &SignedPublicKey, now: u64) -> Result<Binding, String> {
    let primary: &PgpKey = &cert.primary_key;
    let fpr = fpr_hex(primary);
    let direct = || {
        cert.details
            .revocation_signatures
            .iter()
            .chain(&cert.details.direct_signatures)
    };
    if direct().any(|s| {
        s.typ() == Some(SignatureType::KeyRevocation)
            && accepted_hash(s)
            && s.verify_key(primary).is_ok()
    }) {
        return Err(format!("primary key {fpr} is revoked"));
    }
    let mut candidates: Vec<(u64, &Signature)> = Vec::new();
    for s in direct().filter(|s| s.typ() == Some(SignatureType::Key)) {
        if let Some(t) = live(s, s.verify_key(primary).is_ok(), now) {
            candidates.push((t, s));
        }
    }
    for user in &cert.details.users {
        let ok = |s: &Signature| {
            s.verify_certification(primary, Tag::UserId, &user.id)
                .is_ok()
        };
        collect_certifications(&user.signatures, ok, now, &mut candidates);
    }
    for attr in &cert.details.user_attributes {
        let ok = |s: &Signature| {
            s.verify_certification(primary, Tag::UserAttribute, &attr.attr)
                .is_ok()
        };
        collect_certifications(&attr.signatures, ok, now, &mut candidates);
    }
    // The newest self-signature states the key's current flags and expiry.
    let best = candidates.into_iter().max_by_key(|(t, _)| *t);
    let (_, sig) = best.ok_or_else(|| format!("primary key {fpr} has no valid self-signature"))?;
    let binding = binding_of(sig, key_created(primary));
    if let Some(e) = binding.expires
        && now >= e
    {
        return Err(format!("primary key {fpr} expired at {}", fmt_time(e)));
    }
    Ok(binding)
}

/// The live certifications of one user id or attribute, unless the primary key revoked it.
fn collect_certifications<'a>(
    sigs: &'a [Signature],
    verified: impl Fn(&Signature) -> bool,
    now: u64,
    out: &mut Vec<(u64, &'a Signature)>,
) {
    let revoked = sigs
        .iter()
        .any(|s| s.typ() == Some(SignatureType::CertRevocation) && accepted_hash(s) && verified(s));
    if revoked {
        return;
    }
    for s in sigs
        .iter()
        .filter(|s| s.is_certification() && s.typ() != Some(SignatureType::CertRevocation))
    {
        if let Some(t) = live(s, verified(s), now) {
            out.push((t, s));
        }
    }
}

/// The listed key's state at `now`; refused unless it is valid and may sign.
pub(super) fn listed_binding(
    cert: &SignedPublicKey,
    which: Which,
    now: u64,
) -> Result<Binding, String> {
    let primary = primary_binding(cert, now)?;
    let (fpr, binding) = match which {
        Which::Primary => (fpr_hex(&cert.primary_key), primary),
        Which::Subkey(i) => {
            let Some(sub) = cert.public_subkeys.get(i) else {
                return Err("no such subkey".into());
            };
            let key = &sub.key;
            let fpr = fpr_hex(key);
            let bound = |s: &Signature| s.verify_subkey_binding(&cert.primary_key, key).is_ok();
            if sub.signatures.iter().any(|s| {
                s.typ() == Some(SignatureType::SubkeyRevocation) && accepted_hash(s) && bound(s)
            }) {
                return Err(format!("subkey {fpr} is revoked"));
            }
            let best = sub
                .signatures
                .iter()
                .filter(|s| s.typ() == Some(SignatureType::SubkeyBinding))
                .filter_map(|s| live(s, bound(s), now).map(|t| (t, s)))
                .max_by_key(|(t, _)| *t);
            let (_, sig) =
                best.ok_or_else(|| format!("subkey {fpr} has no valid binding signature"))?;
            let binding = binding_of(sig, key_created(key));
            if binding.sign && !back_signed(sig, key, &cert.primary_key) {
                return Err(format!(
                    "signing subkey {fpr} has no valid primary key binding (back) signature"
                ));
            }
            // A subkey cannot outlive its primary key.
            let expires = match (binding.expires, primary.expires) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            (fpr, Binding { expires, ..binding })
        }
    };
    if !binding.sign {
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
/// (0x19): without it anyone could claim another's signing key as a subkey.
fn back_signed(binding: &Signature, sub: &PublicSubkey, primary: &PgpKey) -> bool {
    binding.embedded_signature().is_some_and(|b| {
        b.typ() == Some(SignatureType::KeyBinding)
            && accepted_hash(b)
            && b.verify_primary_key_binding(sub, primary).is_ok()
    })
}
