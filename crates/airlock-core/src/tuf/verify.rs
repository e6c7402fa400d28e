//! Threshold signature checks: does a delegator's key set sign off on some metadata?
//!
//! Counting rules (each one a past CVE in some TUF client):
//! - only key ids the delegator lists for the role count; a signature by any other key, even one
//!   the delegator knows for another role, is ignored;
//! - each listed key id counts at most once, however many signatures carry it;
//! - each *key* counts at most once, even when listed under several key ids: key ids are opaque
//!   strings, and even a correctly computed one hashes one *encoding* of a key (upper-case hex,
//!   a compressed point, PKCS#1 instead of SPKI all give other ids), so keys are compared by
//!   their decoded material ([`PublicKey::material`]) — the spec's "each KEY MUST only
//!   contribute one SIGNATURE";
//! - a key of a scheme airlock cannot verify, or a key id with no key, never counts;
//! - a threshold of 0 is never met;
//! - a key the delegator pairs with a post-quantum key (`x-airlock-pq`, hybrid keys in their
//!   additive form, docs/keys.md) counts only when its own signature AND the pairing's SLH-DSA
//!   signature (the entry under [`PqKey::signature_keyid`]) both verify over the same bytes; and
//!   once a key is paired under one key id, it counts under no unpaired key id of the same table.
//!
//! The pairing is part of the delegator's signed content: only a delegator version that meets
//! its own threshold (root: the previous root's too) can add, change or remove it.

use std::collections::{BTreeMap, BTreeSet};

use super::metadata::Signature;
use crate::crypto::{CryptoError, KeyMaterial, PqKey, PqPairings, PublicKey};

/// The keys and threshold one role is given by its delegator (root, or a targets role).
#[derive(Clone, Copy, Debug)]
pub struct Authority<'a> {
    /// The delegator's key table (root `keys` or `delegations.keys`).
    pub keys: &'a BTreeMap<String, PublicKey>,
    /// The delegator's post-quantum pairings (`x-airlock-pq`) for keys of that table.
    pub pq: &'a PqPairings,
    /// Key ids the delegator lists for this role.
    pub keyids: &'a [String],
    pub threshold: u64,
}

/// The threshold was not met.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{valid} valid signature(s) from distinct authorised keys, threshold is {threshold}")]
pub struct ThresholdError {
    pub valid: u64,
    pub threshold: u64,
}

impl Authority<'_> {
    /// Count valid signatures over `msg` and require the threshold. Returns the count.
    pub fn verify(&self, signatures: &[Signature], msg: &[u8]) -> Result<u64, ThresholdError> {
        let valid = self.count_valid(signatures, msg);
        if self.threshold > 0 && valid >= self.threshold {
            Ok(valid)
        } else {
            Err(ThresholdError {
                valid,
                threshold: self.threshold,
            })
        }
    }

    /// The number of distinct authorised keys with a valid signature over `msg`.
    pub fn count_valid(&self, signatures: &[Signature], msg: &[u8]) -> u64 {
        let mut seen_keyids: BTreeSet<&str> = BTreeSet::new();
        let mut counted: BTreeSet<KeyMaterial> = BTreeSet::new();
        // Keys paired under some key id: hybrid whatever key id lists them.
        let paired: BTreeSet<KeyMaterial> = self
            .pq
            .keys()
            .filter_map(|id| self.keys.get(id)?.material().ok())
            .collect();
        for keyid in self.keyids {
            if !seen_keyids.insert(keyid.as_str()) {
                continue;
            }
            let Some(key) = self.keys.get(keyid) else {
                continue;
            };
            // A key that does not decode cannot verify anything either.
            let Ok(material) = key.material() else {
                continue;
            };
            if counted.contains(&material) {
                continue;
            }
            let classical = signatures.iter().filter(|s| &s.keyid == keyid).any(|s| {
                key.signature_bytes(&s.sig, &s.unrecognized)
                    .map(|raw| key.verify(msg, &raw).is_ok())
                    .unwrap_or(false)
            });
            let post_quantum = match self.pq.get(keyid) {
                Some(pq) => pq_signed(key, pq, signatures, msg),
                None => !paired.contains(&material),
            };
            if classical && post_quantum {
                counted.insert(material);
            }
        }
        counted.len() as u64
    }

    /// The key id of the signature entry that must carry the post-quantum half for `keyid`,
    /// when the delegator pairs that key.
    pub fn pq_signature_keyid(&self, keyid: &str) -> Option<String> {
        let pq = self.pq.get(keyid)?;
        pq.signature_keyid(self.keys.get(keyid)?).ok()
    }

    /// Verify one signature entry as this authority reads it: the signature of a key it lists
    /// for the role, or the post-quantum half of one of their pairings. `None` when the entry
    /// is by no key of this authority.
    pub fn verify_entry(
        &self,
        signature: &Signature,
        msg: &[u8],
    ) -> Option<Result<(), CryptoError>> {
        let raw = |s: &Signature| {
            hex::decode(&s.sig).map_err(|e| CryptoError::MalformedSignature {
                scheme: "hex".into(),
                reason: e.to_string(),
            })
        };
        if self.keyids.contains(&signature.keyid) {
            let key = self.keys.get(&signature.keyid)?;
            return Some(
                key.signature_bytes(&signature.sig, &signature.unrecognized)
                    .and_then(|sig| key.verify(msg, &sig)),
            );
        }
        self.keyids.iter().find_map(|keyid| {
            if self.pq_signature_keyid(keyid).as_deref() != Some(signature.keyid.as_str()) {
                return None;
            }
            let (key, pq) = (self.keys.get(keyid)?, self.pq.get(keyid)?);
            Some(raw(signature).and_then(|sig| pq.verify(key, msg, &sig)))
        })
    }
}

/// Whether the SLH-DSA half of `key`'s pairing `pq` signed `msg`.
fn pq_signed(key: &PublicKey, pq: &PqKey, signatures: &[Signature], msg: &[u8]) -> bool {
    let Ok(pq_keyid) = pq.signature_keyid(key) else {
        return false;
    };
    signatures.iter().filter(|s| s.keyid == pq_keyid).any(|s| {
        hex::decode(&s.sig)
            .map(|raw| pq.verify(key, msg, &raw).is_ok())
            .unwrap_or(false)
    })
}

/// Checks of a key table's pairings that make metadata malformed when they fail: each pairs a
/// listed `ed25519` key with a usable post-quantum key, and no listed key id is one of the
/// pairings' signature key ids (a key must not be able to pass for a post-quantum half).
pub(crate) fn validate_pairings(
    keys: &BTreeMap<String, PublicKey>,
    pq: &PqPairings,
) -> Result<(), String> {
    for (keyid, pairing) in pq {
        let key = keys.get(keyid).ok_or_else(|| {
            format!("x-airlock-pq pairs key id {keyid}, which keys does not list")
        })?;
        let pq_keyid = pairing
            .signature_keyid(key)
            .map_err(|e| format!("x-airlock-pq pairing of key {keyid}: {e}"))?;
        if keys.contains_key(&pq_keyid) {
            return Err(format!(
                "keys lists {pq_keyid}, the signature key id of the post-quantum half of {keyid}"
            ));
        }
    }
    Ok(())
}
