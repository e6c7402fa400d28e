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
//! - a threshold of 0 is never met.

use std::collections::{BTreeMap, BTreeSet};

use super::metadata::Signature;
use crate::crypto::{KeyMaterial, PublicKey};

/// The keys and threshold one role is given by its delegator (root, or a targets role).
#[derive(Clone, Copy, Debug)]
pub struct Authority<'a> {
    /// The delegator's key table (root `keys` or `delegations.keys`).
    pub keys: &'a BTreeMap<String, PublicKey>,
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
            let signed_by_key = signatures.iter().filter(|s| &s.keyid == keyid).any(|s| {
                key.signature_bytes(&s.sig, &s.unrecognized)
                    .map(|raw| key.verify(msg, &raw).is_ok())
                    .unwrap_or(false)
            });
            if signed_by_key {
                counted.insert(material);
            }
        }
        counted.len() as u64
    }
}
