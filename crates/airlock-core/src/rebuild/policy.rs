//! The client's rebuilder policy: which rebuilder keys it trusts and how many distinct ones must
//! have attested to exactly a target's digest before it is downloaded or installed.
//!
//! A root carries it in an additive field other TUF clients keep and ignore:
//!
//! ```json
//! "x-airlock-rebuilders": {
//!   "version": 1,
//!   "threshold": 2,
//!   "keys": { "<TUF key id>": { "keytype": "ed25519", "scheme": "ed25519", "keyval": {...} } }
//! }
//! ```
//!
//! A local client configuration may name a further policy of the same form; it only adds a
//! requirement ([`decide_all`]: every policy must be met), never relaxes the root's.
//!
//! [`decide`] is the whole decision, with no I/O: each attestation is verified against each
//! trusted key that signed it, must be for exactly this target path, SHA-256 and length, and a
//! key counts once however many attestations or key ids it appears under.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use crate::crypto::{KeyMaterial, PublicKey};
use crate::rebuild::attestation::{Envelope, PAYLOAD_TYPE, RebuildStatement};

/// The name of the field inside a root's `signed` object.
pub const EXTENSION_FIELD: &str = "x-airlock-rebuilders";
/// The version of the field this code reads and writes.
pub const POLICY_VERSION: u64 = 1;
/// Most rebuilder keys one policy may name.
pub const MAX_KEYS: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("{EXTENSION_FIELD}: {0}")]
    Field(String),
    #[error(
        "{target}: {found} of the {needed} required rebuilder attestations for sha256 {sha256} \
         ({}){}",
        if from.is_empty() { "none found".to_string() } else { format!("from {}", from.join(", ")) },
        if refused.is_empty() { String::new() } else { format!("; not counted: {}", refused.join("; ")) }
    )]
    NotEnough {
        target: String,
        sha256: String,
        found: usize,
        needed: usize,
        /// `name (key id)` of each rebuilder counted.
        from: Vec<String>,
        /// Why each other attestation was not counted.
        refused: Vec<String>,
    },
}

fn field(reason: impl Into<String>) -> PolicyError {
    PolicyError::Field(reason.into())
}

/// Trusted rebuilder keys and a threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct RebuilderPolicy {
    threshold: usize,
    keys: BTreeMap<String, PublicKey>,
}

impl RebuilderPolicy {
    /// A policy; refused when the threshold is 0 or above the number of distinct keys, a key
    /// does not parse, or two entries are one key (it would count twice).
    pub fn new(threshold: usize, keys: Vec<PublicKey>) -> Result<Self, PolicyError> {
        if keys.len() > MAX_KEYS {
            return Err(field(format!("more than {MAX_KEYS} keys")));
        }
        let mut by_id = BTreeMap::new();
        let mut seen: BTreeSet<KeyMaterial> = BTreeSet::new();
        for key in keys {
            let id = key.key_id();
            let material = key
                .material()
                .map_err(|e| field(format!("key {id}: {}", crate::error_chain(&e))))?;
            if !seen.insert(material) {
                return Err(field(format!(
                    "key {id} is listed twice (one key, written two ways, would count twice)"
                )));
            }
            by_id.insert(id, key);
        }
        if threshold == 0 || threshold > by_id.len() {
            return Err(field(format!(
                "threshold {threshold} must be between 1 and the {} key(s) named",
                by_id.len()
            )));
        }
        Ok(RebuilderPolicy {
            threshold,
            keys: by_id,
        })
    }

    /// The policy a root's `signed` fields carry, `None` when none; malformed is an error.
    pub fn from_root_fields(fields: &BTreeMap<String, Value>) -> Result<Option<Self>, PolicyError> {
        fields
            .get(EXTENSION_FIELD)
            .map(Self::from_value)
            .transpose()
    }

    /// Parse the field's JSON value strictly.
    pub fn from_value(value: &Value) -> Result<Self, PolicyError> {
        let obj = value
            .as_object()
            .ok_or_else(|| field("must be a JSON object"))?;
        if let Some(k) = obj
            .keys()
            .find(|k| !matches!(k.as_str(), "version" | "threshold" | "keys"))
        {
            return Err(field(format!("unknown member {k:?}")));
        }
        match obj.get("version").and_then(Value::as_u64) {
            Some(POLICY_VERSION) => {}
            Some(v) => {
                return Err(field(format!(
                    "version {v} is not supported (this client reads version {POLICY_VERSION})"
                )));
            }
            None => return Err(field("version must be a number")),
        }
        let threshold = obj
            .get("threshold")
            .and_then(Value::as_u64)
            .ok_or_else(|| field("threshold must be a whole number"))?;
        let keys = obj
            .get("keys")
            .and_then(Value::as_object)
            .ok_or_else(|| field("keys must be an object of key id to key"))?;
        let mut list = Vec::new();
        for (id, k) in keys {
            let key: PublicKey =
                serde_json::from_value(k.clone()).map_err(|e| field(format!("key {id}: {e}")))?;
            if key.key_id() != *id {
                return Err(field(format!(
                    "key {id}: its key id is {}, not the name it is listed under",
                    key.key_id()
                )));
            }
            list.push(key);
        }
        Self::new(usize::try_from(threshold).unwrap_or(usize::MAX), list)
    }

    /// The field's JSON value.
    pub fn to_value(&self) -> Value {
        let keys: Map<String, Value> = self
            .keys
            .iter()
            .map(|(id, k)| (id.clone(), serde_json::to_value(k).unwrap_or(Value::Null)))
            .collect();
        let mut m = Map::new();
        m.insert("version".into(), Value::from(POLICY_VERSION));
        m.insert("threshold".into(), Value::from(self.threshold));
        m.insert("keys".into(), Value::Object(keys));
        Value::Object(m)
    }

    pub fn threshold(&self) -> usize {
        self.threshold
    }

    pub fn keys(&self) -> &BTreeMap<String, PublicKey> {
        &self.keys
    }
}

/// A rebuilder counted towards a policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confirmation {
    pub keyid: String,
    /// The name the rebuilder gave itself in the attestation.
    pub rebuilder: String,
}

/// Decide whether `attestations` (DSSE envelopes as published) meet `policy` for the target
/// `target` with `sha256` and `length` from trusted metadata. Returns the rebuilders counted.
pub fn decide(
    policy: &RebuilderPolicy,
    target: &str,
    sha256: &str,
    length: u64,
    attestations: &[&[u8]],
) -> Result<Vec<Confirmation>, PolicyError> {
    let any: Vec<(Option<&str>, &[u8])> = attestations.iter().map(|a| (None, *a)).collect();
    decide_inner(policy, target, sha256, length, &any)
}

/// [`decide`] for attestations each shown to be logged for one key id (the key id of the
/// transparency statement it was checked against): an envelope counts only for that key,
/// never for another trusted key that also signed it, whose use the log does not show.
pub fn decide_logged(
    policy: &RebuilderPolicy,
    target: &str,
    sha256: &str,
    length: u64,
    attestations: &[(&str, &[u8])],
) -> Result<Vec<Confirmation>, PolicyError> {
    let only: Vec<(Option<&str>, &[u8])> =
        attestations.iter().map(|(k, a)| (Some(*k), *a)).collect();
    decide_inner(policy, target, sha256, length, &only)
}

fn decide_inner(
    policy: &RebuilderPolicy,
    target: &str,
    sha256: &str,
    length: u64,
    attestations: &[(Option<&str>, &[u8])],
) -> Result<Vec<Confirmation>, PolicyError> {
    let mut counted: BTreeMap<KeyMaterial, Confirmation> = BTreeMap::new();
    let mut refused = Vec::new();
    for (i, (only, bytes)) in attestations.iter().enumerate() {
        let env = match Envelope::parse(bytes) {
            Ok(e) if e.payload_type == PAYLOAD_TYPE => e,
            Ok(e) => {
                refused.push(format!("attestation {i}: payloadType {:?}", e.payload_type));
                continue;
            }
            Err(e) => {
                refused.push(format!("attestation {i}: {}", crate::error_chain(&e)));
                continue;
            }
        };
        let mut trusted_signer = false;
        for sig in &env.signatures {
            if only.is_some_and(|k| k != sig.keyid) {
                continue;
            }
            let Some(key) = policy.keys.get(&sig.keyid) else {
                continue;
            };
            trusted_signer = true;
            let why = match env
                .verify_by(key)
                .and_then(|()| RebuildStatement::parse(&env.payload))
            {
                Err(e) => crate::error_chain(&e),
                Ok(st) if st.target != target => format!("for target {:?}", st.target),
                Ok(st) if st.sha256 != sha256 => format!("for sha256 {}", st.sha256),
                Ok(st) if st.length != length => format!("for length {}", st.length),
                Ok(st) => {
                    // The key was checked to parse when the policy was made.
                    if let Ok(material) = key.material() {
                        counted.entry(material).or_insert(Confirmation {
                            keyid: sig.keyid.clone(),
                            rebuilder: st.rebuilder,
                        });
                    }
                    continue;
                }
            };
            refused.push(format!("attestation {i} by key {}: {why}", sig.keyid));
        }
        if !trusted_signer {
            let ids: Vec<&str> = env.signatures.iter().map(|s| s.keyid.as_str()).collect();
            refused.push(format!(
                "attestation {i}: signed by unknown key(s) {}",
                ids.join(", ")
            ));
        }
    }
    let confirmations: Vec<Confirmation> = counted.into_values().collect();
    if confirmations.len() >= policy.threshold {
        return Ok(confirmations);
    }
    Err(PolicyError::NotEnough {
        target: target.to_string(),
        sha256: sha256.to_string(),
        found: confirmations.len(),
        needed: policy.threshold,
        from: confirmations
            .iter()
            .map(|c| format!("{} ({})", c.rebuilder, c.keyid))
            .collect(),
        refused,
    })
}

/// Every policy must be met (the root's, and a local configuration's, which only adds).
pub fn decide_all(
    policies: &[&RebuilderPolicy],
    target: &str,
    sha256: &str,
    length: u64,
    attestations: &[&[u8]],
) -> Result<Vec<Confirmation>, PolicyError> {
    let mut all = Vec::new();
    for p in policies {
        for c in decide(p, target, sha256, length, attestations)? {
            if !all.contains(&c) {
                all.push(c);
            }
        }
    }
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{KeyScheme, PrivateKey, Signer};
    use crate::rebuild::attestation::tests::statement;

    fn attest(key: &PrivateKey, name: &str, edit: impl Fn(&mut RebuildStatement)) -> Vec<u8> {
        let mut st = statement();
        st.rebuilder = name.into();
        edit(&mut st);
        st.sign(key).unwrap().to_json()
    }

    fn keys(n: usize) -> Vec<PrivateKey> {
        (0..n)
            .map(|_| PrivateKey::generate(KeyScheme::Ed25519).unwrap())
            .collect()
    }

    fn policy(k: usize, keys: &[PrivateKey]) -> RebuilderPolicy {
        RebuilderPolicy::new(k, keys.iter().map(|k| k.public_key().clone()).collect()).unwrap()
    }

    #[test]
    fn two_distinct_rebuilders_meet_k_2() {
        let ks = keys(3);
        let p = policy(2, &ks);
        let st = statement();
        let a = attest(&ks[0], "a", |_| {});
        let b = attest(&ks[1], "b", |_| {});
        let got = decide(&p, &st.target, &st.sha256, st.length, &[&a, &b]).unwrap();
        assert_eq!(got.len(), 2);
        // Round trip through the root field.
        let again = RebuilderPolicy::from_value(&p.to_value()).unwrap();
        assert_eq!(again, p);
    }

    /// One rebuilder twice, another digest, another target, an unknown key, a forged
    /// signature: none of them adds a second confirmation, and the message says who was found.
    /// One envelope signed by both rebuilders but logged for the first only: under
    /// transparency it counts once (the second key's use is not in the log), without it twice.
    #[test]
    fn a_logged_envelope_counts_only_for_the_key_it_was_logged_for() {
        let ks = keys(2);
        let p = policy(2, &ks);
        let st = statement();
        let mut both = Envelope::parse(&attest(&ks[0], "a", |_| {})).unwrap();
        let second = Envelope::sign(PAYLOAD_TYPE, both.payload.clone(), &ks[1]).unwrap();
        both.signatures.extend(second.signatures);
        let both = both.to_json();
        let got = decide(&p, &st.target, &st.sha256, st.length, &[&both]).unwrap();
        assert_eq!(got.len(), 2);
        let a = ks[0].public_key().key_id();
        let e = decide_logged(&p, &st.target, &st.sha256, st.length, &[(&a, &both)]).unwrap_err();
        assert!(e.to_string().contains("1 of the 2 required"), "{e}");
    }

    #[test]
    fn no_double_counting_and_no_wrong_attestations() {
        let ks = keys(2);
        let stranger = keys(1).pop().unwrap();
        let p = policy(2, &ks);
        let st = statement();
        let a1 = attest(&ks[0], "a", |_| {});
        let a2 = attest(&ks[0], "a-again", |_| {});
        let other_digest = attest(&ks[1], "b", |s| s.sha256 = "cd".repeat(32));
        let other_target = attest(&ks[1], "b", |s| s.target = "app/2.0/app".into());
        let other_length = attest(&ks[1], "b", |s| s.length += 1);
        let unknown = attest(&stranger, "x", |_| {});
        let mut forged = Envelope::parse(&attest(&stranger, "b", |_| {})).unwrap();
        forged.signatures[0].keyid = ks[1].public_key().key_id();
        let forged = forged.to_json();
        let all: Vec<&[u8]> = vec![
            &a1,
            &a2,
            &other_digest,
            &other_target,
            &other_length,
            &unknown,
            &forged,
            b"not json",
        ];
        let e = decide(&p, &st.target, &st.sha256, st.length, &all).unwrap_err();
        let PolicyError::NotEnough {
            found,
            needed,
            refused,
            ..
        } = &e
        else {
            panic!("{e}")
        };
        assert_eq!((*found, *needed), (1, 2), "{e}");
        assert_eq!(refused.len(), 6, "{e}");
        let msg = e.to_string();
        assert!(msg.contains("1 of the 2 required"), "{msg}");
        assert!(
            msg.contains(&format!("from a ({})", ks[0].public_key().key_id())),
            "{msg}"
        );
        assert!(msg.contains("unknown key"), "{msg}");
        assert!(msg.contains("for sha256"), "{msg}");
        // Nothing at all.
        let e = decide(&p, &st.target, &st.sha256, st.length, &[]).unwrap_err();
        assert!(e.to_string().contains("0 of the 2 required"), "{e}");
        assert!(e.to_string().contains("none found"), "{e}");
    }

    #[test]
    fn a_local_policy_only_adds() {
        let ks = keys(3);
        let root = policy(1, &ks[..2]);
        let local = policy(1, &ks[2..]);
        let st = statement();
        let a = attest(&ks[0], "a", |_| {});
        let c = attest(&ks[2], "c", |_| {});
        assert!(decide_all(&[&root], &st.target, &st.sha256, st.length, &[&a]).is_ok());
        assert!(decide_all(&[&root, &local], &st.target, &st.sha256, st.length, &[&a]).is_err());
        assert!(decide_all(&[&root, &local], &st.target, &st.sha256, st.length, &[&c]).is_err());
        let got = decide_all(
            &[&root, &local],
            &st.target,
            &st.sha256,
            st.length,
            &[&a, &c],
        );
        assert_eq!(got.unwrap().len(), 2);
    }

    #[test]
    fn bad_policies_are_refused() {
        let ks = keys(2);
        let pk = |i: usize| ks[i].public_key().clone();
        assert!(RebuilderPolicy::new(0, vec![pk(0)]).is_err());
        assert!(RebuilderPolicy::new(2, vec![pk(0)]).is_err());
        // One key under two spellings (an extra unrecognized member keeps the id, so change
        // the hex case of the key: another key id, same key).
        let mut upper = pk(0);
        let hexkey = upper.public_str().unwrap().to_uppercase();
        upper.keyval.insert("public".into(), Value::String(hexkey));
        let e = RebuilderPolicy::new(2, vec![pk(0), upper]).unwrap_err();
        assert!(e.to_string().contains("listed twice"), "{e}");
        let good = policy(1, &ks).to_value();
        for (edit, expect) in [
            (serde_json::json!({"version": 2}), "version 2"),
            (serde_json::json!({"extra": 1}), "unknown member"),
            (serde_json::json!({"threshold": "1"}), "threshold"),
        ] {
            let mut v = good.clone();
            for (k, x) in edit.as_object().unwrap() {
                v[k] = x.clone();
            }
            let e = RebuilderPolicy::from_value(&v).unwrap_err();
            assert!(e.to_string().contains(expect), "{expect}: {e}");
        }
        let mut v = good.clone();
        let (id, key) = v["keys"]
            .as_object()
            .unwrap()
            .iter()
            .next()
            .map(|(a, b)| (a.clone(), b.clone()))
            .unwrap();
        v["keys"].as_object_mut().unwrap().remove(&id);
        v["keys"]["0000"] = key;
        assert!(
            RebuilderPolicy::from_value(&v)
                .unwrap_err()
                .to_string()
                .contains("key id")
        );
    }
}
