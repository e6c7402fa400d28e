//! Offline signing: export a staged role, sign the file on a machine that holds only a key file
//! ([`sign_metadata`], no repository needed), import the signatures back.
//!
//! What travels is the metadata file itself (`{"signatures": [...], "signed": {...}}`): the
//! signer sees exactly what it signs, and several signers can sign the same file in turn (a
//! threshold above 1 across machines). The message signed is the canonical JSON of `signed`.

use std::collections::BTreeSet;

use airlock_core::cjson;
use airlock_core::crypto::{PairedSigner, PrivateKey, Signer};
use airlock_core::tuf::metadata::{Signature, sign_entries};
use serde_json::Value;

use crate::error::RepoError;
use crate::repo::Repository;

/// A staged role exported for offline signing.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ExportedRole {
    pub role: String,
    pub version: u64,
    /// Suggested file name, `ROLE.json`.
    pub file_name: String,
    #[serde(skip)]
    pub bytes: Vec<u8>,
    /// Key ids whose signatures count (for root: the new and the published root's keys).
    pub keyids: Vec<String>,
    /// Key ids that have signed already.
    pub signed_by: Vec<String>,
    pub threshold: u64,
}

/// Status of one role: each staged role, then the published snapshot and timestamp.
#[derive(Clone, Debug, serde::Serialize)]
pub struct RoleStatus {
    pub role: String,
    pub version: u64,
    pub published_version: u64,
    pub expires: String,
    pub valid_signatures: u64,
    pub threshold: u64,
    /// Meets its thresholds (for a new root: the published root's too).
    pub signed: bool,
    /// Changed since the last publish.
    pub unpublished: bool,
    /// Authorised key ids without a signature yet.
    pub missing: Vec<String>,
}

/// What [`Repository::import_signatures`] did.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ImportReport {
    pub role: String,
    pub version: u64,
    pub added: Vec<String>,
    /// Whether the role now meets its thresholds.
    pub signed: bool,
}

fn envelope_parts(bytes: &[u8], file: &str) -> Result<(Value, Vec<Signature>, Vec<u8>), RepoError> {
    let err = |reason: String| RepoError::Import {
        file: file.to_string(),
        reason,
    };
    let value: Value = serde_json::from_slice(bytes).map_err(|e| err(format!("not JSON: {e}")))?;
    // serde keeps the last of two equal keys, a reviewer's tool may show the first: refuse.
    airlock_core::unique_keys::check_unique_keys(bytes).map_err(|e| err(e.to_string()))?;
    let signed = value
        .get("signed")
        .cloned()
        .ok_or_else(|| err("no `signed` object".into()))?;
    let signatures: Vec<Signature> = serde_json::from_value(
        value
            .get("signatures")
            .cloned()
            .ok_or_else(|| err("no `signatures` list".into()))?,
    )
    .map_err(|e| err(format!("malformed signatures: {e}")))?;
    let msg =
        cjson::to_vec(&signed).map_err(|e| err(format!("`signed` has no canonical form: {e}")))?;
    Ok((value, signatures, msg))
}

/// Sign a metadata file with `signer`: returns the file with the signature added (one by the
/// same key id is replaced) and the key id. A hybrid key in its additive form adds its SLH-DSA
/// half as a second entry. Needs no repository: this is what runs on the offline machine.
pub fn sign_metadata(
    bytes: &[u8],
    signer: &dyn Signer,
    file: &str,
) -> Result<(Vec<u8>, String), RepoError> {
    let (mut value, mut signatures, msg) = envelope_parts(bytes, file)?;
    let entries = sign_entries(signer, &msg).map_err(|error| RepoError::Crypto {
        what: format!("signing {file}"),
        error,
    })?;
    let keyid = signer.public_key().key_id();
    signatures.retain(|s| !entries.iter().any(|e| e.keyid == s.keyid));
    signatures.extend(entries);
    if let Some(obj) = value.as_object_mut() {
        obj.insert(
            "signatures".into(),
            serde_json::to_value(&signatures).map_err(|e| RepoError::Import {
                file: file.to_string(),
                reason: e.to_string(),
            })?,
        );
    }
    let mut out = serde_json::to_vec_pretty(&value).map_err(|e| RepoError::Import {
        file: file.to_string(),
        reason: e.to_string(),
    })?;
    out.push(b'\n');
    Ok((out, keyid))
}

/// How a key file's key signs `bytes` offline. A hybrid key signs in the additive form
/// (docs/keys.md), unless the file already names its legacy `ed25519-slh-dsa-sha2-128s` key id
/// (a root listing it in `keys`, or a signature by it): repositories made before the additive
/// form keep their keys until they rotate them.
pub fn offline_signer(key: PrivateKey, bytes: &[u8]) -> Result<Box<dyn Signer>, RepoError> {
    let PrivateKey::Hybrid(h) = key else {
        return Ok(Box::new(key));
    };
    let legacy_id = h.public_key().key_id();
    let value: Value = serde_json::from_slice(bytes).unwrap_or(Value::Null);
    let listed = value
        .pointer("/signed/keys")
        .and_then(Value::as_object)
        .is_some_and(|keys| keys.contains_key(&legacy_id));
    let signed = value
        .get("signatures")
        .and_then(Value::as_array)
        .is_some_and(|sigs| {
            sigs.iter()
                .any(|s| s.get("keyid").and_then(Value::as_str) == Some(legacy_id.as_str()))
        });
    if listed || signed {
        return Ok(Box::new(PrivateKey::Hybrid(h)));
    }
    let paired = PairedSigner::new(h).map_err(|error| RepoError::Crypto {
        what: format!("hybrid key {legacy_id}"),
        error,
    })?;
    Ok(Box::new(paired))
}

impl Repository {
    fn role_msg(&self, role: &str) -> Result<(Vec<u8>, &Vec<Signature>, u64), RepoError> {
        if role == "root" {
            Ok((
                self.root
                    .signed_bytes()
                    .map_err(|e| RepoError::metadata("root.json", e))?,
                &self.root.signatures,
                self.root.signed.version,
            ))
        } else {
            let md = self
                .targets
                .get(role)
                .ok_or_else(|| RepoError::UnknownRole(role.to_string()))?;
            Ok((
                md.signed_bytes()
                    .map_err(|e| RepoError::metadata(format!("{role}.json"), e))?,
                &md.signatures,
                md.signed.version,
            ))
        }
    }

    /// Key ids whose signatures count for `role` (root: new and published root keys).
    fn signing_keyids(&self, role: &str) -> Result<(Vec<String>, u64), RepoError> {
        let a = self
            .authority(role)
            .ok_or_else(|| RepoError::UnknownRole(role.to_string()))?;
        let mut ids = a.keyids.to_vec();
        let threshold = a.threshold;
        if role == "root"
            && let Some(old) = self.published_state()?.root
            && old.signed.version < self.root.signed.version
            && let Some(a) = old.signed.authority("root")
        {
            for k in a.keyids {
                if !ids.contains(k) {
                    ids.push(k.clone());
                }
            }
        }
        Ok((ids, threshold))
    }

    /// The staged metadata of `role` as a file to carry to an offline signer.
    pub fn export_role(&self, role: &str) -> Result<ExportedRole, RepoError> {
        let (keyids, threshold) = self.signing_keyids(role)?;
        let (bytes, signatures, version) = if role == "root" {
            (
                self.root
                    .to_pretty_bytes()
                    .map_err(|e| RepoError::metadata("root.json", e))?,
                &self.root.signatures,
                self.root.signed.version,
            )
        } else {
            let md = self
                .targets
                .get(role)
                .ok_or_else(|| RepoError::UnknownRole(role.to_string()))?;
            (
                md.to_pretty_bytes()
                    .map_err(|e| RepoError::metadata(format!("{role}.json"), e))?,
                &md.signatures,
                md.signed.version,
            )
        };
        Ok(ExportedRole {
            role: role.to_string(),
            version,
            file_name: format!("{role}.json"),
            bytes,
            keyids,
            signed_by: signatures.iter().map(|s| s.keyid.clone()).collect(),
            threshold,
        })
    }

    /// Import signatures from a signed copy of a staged role. The file's `signed` part must be
    /// byte-for-byte (canonically) the staged one; every new signature must be by a key
    /// authorised for the role and must verify, or nothing is imported.
    pub fn import_signatures(
        &mut self,
        bytes: &[u8],
        file: &str,
    ) -> Result<ImportReport, RepoError> {
        let (value, signatures, msg) = envelope_parts(bytes, file)?;
        let kind = value
            .get("signed")
            .and_then(|s| s.get("_type"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let mut candidates: Vec<String> = Vec::new();
        match kind.as_str() {
            "root" => candidates.push("root".into()),
            "targets" => candidates.extend(self.targets.keys().cloned()),
            other => {
                return Err(RepoError::Import {
                    file: file.into(),
                    reason: format!(
                        "_type {other:?}: only root and targets roles are signed offline"
                    ),
                });
            }
        }
        let mut role = None;
        for c in candidates {
            if self.role_msg(&c)?.0 == msg {
                role = Some(c);
                break;
            }
        }
        let role = role.ok_or_else(|| RepoError::Import {
            file: file.into(),
            reason: "its `signed` content matches no staged role (was the role changed after it was exported?)".into(),
        })?;
        // Who may sign: the staged delegator's authority and, for a new root, the published
        // root's. Each entry is checked as the client will count it (one verification path).
        let published_root = self.published_state()?.root;
        let mut authorities = Vec::new();
        if let Some(a) = self.authority(&role) {
            authorities.push(a);
        }
        if role == "root"
            && let Some(old) = &published_root
            && old.signed.version < self.root.signed.version
            && let Some(a) = old.signed.authority("root")
        {
            authorities.push(a);
        }
        let (_, existing, version) = self.role_msg(&role)?;
        let have: BTreeSet<(String, String)> = existing
            .iter()
            .map(|s| (s.keyid.clone(), s.sig.clone()))
            .collect();
        let mut new = Vec::new();
        for s in signatures {
            if have.contains(&(s.keyid.clone(), s.sig.clone())) {
                continue;
            }
            let err = |reason: String| RepoError::Import {
                file: file.into(),
                reason,
            };
            let checked = authorities
                .iter()
                .find_map(|a| a.verify_entry(&s, &msg))
                .ok_or_else(|| {
                    err(format!(
                        "signature by key {} which may not sign {role}",
                        s.keyid
                    ))
                })?;
            checked.map_err(|e| err(format!("signature by {} does not verify: {e}", s.keyid)))?;
            new.push(s);
        }
        let added: Vec<String> = new.iter().map(|s| s.keyid.clone()).collect();
        if role == "root" {
            for s in new {
                self.root.add_signature(s);
            }
        } else if let Some(md) = self.targets.get_mut(&role) {
            for s in new {
                md.add_signature(s);
            }
        }
        self.dirty.insert(role.clone());
        let published = self.published_state()?;
        let signed = self.check_signed(&role, &published).is_ok();
        self.commit()?;
        Ok(ImportReport {
            role,
            version,
            added,
            signed,
        })
    }

    /// Every staged role with its signature state.
    pub fn status(&self) -> Result<Vec<RoleStatus>, RepoError> {
        let published = self.published_state()?;
        let mut out = Vec::new();
        let mut roles = vec!["root".to_string()];
        roles.extend(self.targets.keys().cloned());
        for role in roles {
            let (msg, signatures, version) = self.role_msg(&role)?;
            let (keyids, threshold) = self.signing_keyids(&role)?;
            let authority = self.authority(&role);
            let valid = authority.map_or(0, |a| a.count_valid(signatures, &msg));
            let mut missing = authority
                .map(|a| crate::repo::missing_signers(&a, signatures))
                .unwrap_or_default();
            // For a new root: the published root's keys too.
            let signed_ids: BTreeSet<&str> = signatures.iter().map(|s| s.keyid.as_str()).collect();
            for k in keyids {
                if !signed_ids.contains(k.as_str()) && !missing.contains(&k) {
                    missing.push(k);
                }
            }
            let expires = if role == "root" {
                self.root.signed.expires
            } else {
                self.targets
                    .get(&role)
                    .map_or(self.now, |m| m.signed.expires)
            };
            out.push(RoleStatus {
                role: role.clone(),
                version,
                published_version: published.role_version(&role),
                expires: expires.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                valid_signatures: valid,
                threshold,
                signed: self.check_signed(&role, &published).is_ok(),
                unpublished: version > published.role_version(&role),
                missing,
            });
        }
        // Snapshot and timestamp are never staged: what matters is when the published ones
        // expire (the cron job's `refresh` must run before that), checked against the
        // published root, whose keys sign them.
        let published_root = published.root.as_ref().map(|r| &r.signed);
        if let (Some(root), Some(snapshot)) = (published_root, &published.snapshot) {
            out.push(online_status("snapshot", root, snapshot)?);
        }
        if let (Some(root), Some(timestamp)) = (published_root, &published.timestamp) {
            out.push(online_status("timestamp", root, timestamp)?);
        }
        Ok(out)
    }
}

/// Status of a published snapshot or timestamp.
fn online_status<T: airlock_core::tuf::metadata::Role>(
    role: &str,
    root: &airlock_core::tuf::roles::Root,
    md: &airlock_core::tuf::metadata::Metadata<T>,
) -> Result<RoleStatus, RepoError> {
    let authority = root
        .authority(role)
        .ok_or_else(|| RepoError::UnknownRole(role.to_string()))?;
    let msg = md
        .signed_bytes()
        .map_err(|e| RepoError::metadata(format!("{role}.json"), e))?;
    let valid = authority.count_valid(&md.signatures, &msg);
    Ok(RoleStatus {
        role: role.to_string(),
        version: md.signed.version(),
        published_version: md.signed.version(),
        expires: md
            .signed
            .expires()
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        valid_signatures: valid,
        threshold: authority.threshold,
        signed: valid >= authority.threshold,
        unpublished: false,
        missing: crate::repo::missing_signers(&authority, &md.signatures),
    })
}

#[cfg(test)]
mod tests {
    use airlock_core::crypto::{KeyScheme, PrivateKey};

    use super::*;

    #[test]
    fn a_file_with_a_duplicated_key_is_neither_signed_nor_imported() {
        let key = PrivateKey::generate(KeyScheme::Ed25519).unwrap();
        let twice = br#"{"signatures":[],"signed":{"_type":"targets","targets":{"a":1,"a":2}}}"#;
        let err = sign_metadata(twice, &key, "targets.json").unwrap_err();
        assert!(err.to_string().contains(r#"duplicate key "a""#), "{err}");
        let once = br#"{"signatures":[],"signed":{"_type":"targets","targets":{"a":1,"b":2}}}"#;
        sign_metadata(once, &key, "targets.json").unwrap();
    }
}
