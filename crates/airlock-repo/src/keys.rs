//! Key files of a repository: creating them at `init`/`delegate`/`rotate`, and loading the ones
//! a signing step needs (decrypted on first use, then kept in memory for the command's duration).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use airlock_core::crypto::paired::split_hybrid;
use airlock_core::crypto::{KeyScheme, PairedSigner, PqKey, PrivateKey, PublicKey, Signer, names};
use airlock_keystore::{KeyRef, KeystoreError, PassphraseSource, Protection};

use crate::config::{KeyEntry, RepoConfig};
use crate::error::RepoError;

/// The passphrase source of `protection`, if it has one.
pub(crate) fn passphrase_of(protection: &Protection) -> Option<PassphraseSource> {
    match protection {
        Protection::Encrypted { passphrase, .. } => Some(passphrase.clone()),
        Protection::PlaintextForTests => None,
    }
}

/// Where the keys of a new role (or new keys of a rotated one) come from.
#[derive(Clone, Debug)]
pub enum KeySource {
    /// Generate `count` keys of `scheme`, stored under `keys/`.
    Generate { scheme: KeyScheme, count: usize },
    /// Use these public keys; their private halves live elsewhere (offline signing).
    Public(Vec<PublicKey>),
    /// Use these keys held outside Airlock's key files (GnuPG, a PKCS#11 token): the
    /// configuration records the reference, and they sign whenever they are reachable.
    External(Vec<KeyRef>),
}

/// A key created by this command, written under `keys/`.
pub(crate) struct NewKey {
    pub entry: KeyEntry,
    /// The key as the role lists it (for a hybrid key: its Ed25519 half).
    pub public: PublicKey,
    /// For a hybrid key: the post-quantum key its delegator pairs with `public`.
    pub pq: Option<PqKey>,
    pub private: Option<Box<dyn Signer>>,
    /// Files written, removed again if the command fails before it commits.
    pub files: Vec<PathBuf>,
}

/// Decrypted private keys, loaded on demand.
pub(crate) struct Keyring {
    repo_dir: PathBuf,
    passphrase: Option<PassphraseSource>,
    loaded: BTreeMap<String, Box<dyn Signer>>,
}

impl Keyring {
    pub fn new(repo_dir: &Path, passphrase: Option<PassphraseSource>) -> Self {
        Keyring {
            repo_dir: repo_dir.to_path_buf(),
            passphrase,
            loaded: BTreeMap::new(),
        }
    }

    pub fn passphrase(&self) -> Option<PassphraseSource> {
        self.passphrase.clone()
    }

    pub fn insert(&mut self, key: Box<dyn Signer>) {
        self.loaded.insert(key.public_key().key_id(), key);
    }

    /// The passphrase source, or an empty value when the caller gave none (only plaintext key
    /// files and PIN-less tokens open with it; an empty value is refused before any decryption).
    fn secret(&self) -> PassphraseSource {
        self.passphrase
            .clone()
            .unwrap_or_else(|| PassphraseSource::Value(zeroize::Zeroizing::new(String::new())))
    }

    /// The signer for `keyid`, if its private key file is listed in the config and present on
    /// this machine. A listed file that is absent means the key is kept offline: `None`. A file
    /// that is present but cannot be decrypted is an error (never silently skipped).
    pub fn signer(
        &mut self,
        config: &RepoConfig,
        keyid: &str,
    ) -> Result<Option<&dyn Signer>, RepoError> {
        if !self.loaded.contains_key(keyid) {
            let Some(entry) = config.key(keyid) else {
                return Ok(None);
            };
            let (key, origin): (Box<dyn Signer>, PathBuf) = if let Some(external) = &entry.external
            {
                let r = KeyRef::parse(external)?;
                match r.open(&self.secret()) {
                    Ok(k) => (k, PathBuf::from(r.to_string())),
                    // A token not plugged in, or a GnuPG key kept on another machine: offline.
                    Err(KeystoreError::KeyNotHere { .. }) => return Ok(None),
                    Err(e) => return Err(e.into()),
                }
            } else {
                let Some(rel) = entry.private.as_ref() else {
                    return Ok(None);
                };
                let path = self.repo_dir.join(rel);
                if !path.exists() {
                    return Ok(None);
                }
                let key = airlock_keystore::read_private_key(&path, &self.secret()).map_err(
                    |e| match e {
                        KeystoreError::Passphrase { .. } if self.passphrase.is_none() => {
                            RepoError::NoPassphrase { path: path.clone() }
                        }
                        other => other.into(),
                    },
                )?;
                (private_as_listed(key, keyid)?, path)
            };
            if key.public_key().key_id() != keyid {
                return Err(RepoError::config(
                    &origin,
                    format!(
                        "holds key {}, the config says {keyid}",
                        key.public_key().key_id()
                    ),
                ));
            }
            self.loaded.insert(keyid.to_string(), key);
        }
        Ok(self.loaded.get(keyid).map(|k| k.as_ref()))
    }
}

/// Generate or take the keys for `role` (nothing written yet except key files).
pub(crate) fn make_keys(
    repo_dir: &Path,
    role: &str,
    source: &KeySource,
    protection: &Protection,
) -> Result<Vec<NewKey>, RepoError> {
    let mut out: Vec<NewKey> = Vec::new();
    let result = (|| {
        match source {
            KeySource::Generate { scheme, count } => {
                for _ in 0..*count {
                    let key = PrivateKey::generate(*scheme).map_err(|error| RepoError::Crypto {
                        what: format!("generating a {scheme} key for {role}"),
                        error,
                    })?;
                    // Key files and `.pub.json` describe a hybrid key whole; the role lists
                    // its additive form (docs/keys.md).
                    let described = key.public_key().clone();
                    let (public, pq) =
                        listed_form(&described).map_err(|error| RepoError::Crypto {
                            what: format!("pairing the {scheme} key for {role}"),
                            error,
                        })?;
                    let keyid = public.key_id();
                    let short = keyid.get(..12).unwrap_or(&keyid);
                    let private_rel = format!("keys/{role}-{short}.key");
                    let public_rel = format!("keys/{role}-{short}.pub.json");
                    let private_path = repo_dir.join(&private_rel);
                    let public_path = repo_dir.join(&public_rel);
                    std::fs::create_dir_all(repo_dir.join("keys"))
                        .map_err(|e| crate::fsutil::io_err(&repo_dir.join("keys"), e))?;
                    airlock_keystore::write_private_key(&private_path, &key, protection)?;
                    let mut files = vec![private_path];
                    airlock_keystore::write_public_key(&public_path, &described)?;
                    files.push(public_path);
                    let private = private_as_listed(key, &keyid)?;
                    out.push(NewKey {
                        entry: KeyEntry {
                            keyid,
                            role: role.to_string(),
                            scheme: scheme.short_name().to_string(),
                            private: Some(private_rel),
                            external: None,
                            public: public_rel,
                        },
                        public,
                        pq,
                        private: Some(private),
                        files,
                    });
                }
            }
            KeySource::Public(keys) => {
                for described in keys {
                    described.validate().map_err(|error| RepoError::Crypto {
                        what: format!("public key for {role}"),
                        error,
                    })?;
                    let (public, pq) =
                        listed_form(described).map_err(|error| RepoError::Crypto {
                            what: format!("public key for {role}"),
                            error,
                        })?;
                    let public = &public;
                    let keyid = public.key_id();
                    let short = keyid.get(..12).unwrap_or(&keyid);
                    let public_rel = format!("keys/{role}-{short}.pub.json");
                    let public_path = repo_dir.join(&public_rel);
                    std::fs::create_dir_all(repo_dir.join("keys"))
                        .map_err(|e| crate::fsutil::io_err(&repo_dir.join("keys"), e))?;
                    let existed = public_path.exists();
                    airlock_keystore::write_public_key(&public_path, described)?;
                    out.push(NewKey {
                        entry: KeyEntry {
                            keyid,
                            role: role.to_string(),
                            scheme: public.scheme.clone(),
                            private: None,
                            external: None,
                            public: public_rel,
                        },
                        public: public.clone(),
                        pq,
                        private: None,
                        files: if existed {
                            Vec::new()
                        } else {
                            vec![public_path]
                        },
                    });
                }
            }
            KeySource::External(refs) => {
                let secret = passphrase_of(protection).unwrap_or_else(|| {
                    PassphraseSource::Value(zeroize::Zeroizing::new(String::new()))
                });
                for r in refs {
                    let key = r.open(&secret)?;
                    let public = key.public_key().clone();
                    let keyid = public.key_id();
                    let short = keyid.get(..12).unwrap_or(&keyid);
                    let public_rel = format!("keys/{role}-{short}.pub.json");
                    let public_path = repo_dir.join(&public_rel);
                    std::fs::create_dir_all(repo_dir.join("keys"))
                        .map_err(|e| crate::fsutil::io_err(&repo_dir.join("keys"), e))?;
                    let existed = public_path.exists();
                    airlock_keystore::write_public_key(&public_path, &public)?;
                    out.push(NewKey {
                        entry: KeyEntry {
                            keyid,
                            role: role.to_string(),
                            scheme: public.scheme.clone(),
                            private: None,
                            external: Some(r.to_string()),
                            public: public_rel,
                        },
                        pq: key.post_quantum().cloned(),
                        public,
                        private: Some(key),
                        files: if existed {
                            Vec::new()
                        } else {
                            vec![public_path]
                        },
                    });
                }
            }
        }
        Ok(())
    })();
    if let Err(e) = result {
        remove_key_files(&out);
        return Err(e);
    }
    Ok(out)
}

/// A public key as a role lists it: a hybrid key description (both halves in one key, as key
/// files and `airlock key generate` write it) becomes its Ed25519 half and the pairing.
fn listed_form(
    key: &PublicKey,
) -> Result<(PublicKey, Option<PqKey>), airlock_core::crypto::CryptoError> {
    if key.keytype == names::HYBRID && key.scheme == names::HYBRID {
        let (ed, pq) = split_hybrid(key)?;
        Ok((ed, Some(pq)))
    } else {
        Ok((key.clone(), None))
    }
}

/// A key file's key as the config lists it: a hybrid key listed under its Ed25519 half's key
/// id signs in the additive form; listed under the hybrid key id (repositories made before the
/// additive form) it signs as the legacy `ed25519-slh-dsa-sha2-128s` key.
fn private_as_listed(key: PrivateKey, keyid: &str) -> Result<Box<dyn Signer>, RepoError> {
    match key {
        PrivateKey::Hybrid(h) if h.public_key().key_id() != keyid => {
            let paired = PairedSigner::new(h).map_err(|error| RepoError::Crypto {
                what: format!("hybrid key {keyid}"),
                error,
            })?;
            Ok(Box::new(paired))
        }
        other => Ok(Box::new(other)),
    }
}

/// Undo [`make_keys`] when the command fails before committing.
pub(crate) fn remove_key_files(keys: &[NewKey]) {
    for k in keys {
        for f in &k.files {
            let _ = std::fs::remove_file(f);
        }
    }
}

#[cfg(test)]
mod legacy_hybrid {
    use super::*;
    use crate::{InitOptions, Rotation};

    /// A repository made before the additive form (its timestamp key listed as one legacy
    /// `ed25519-slh-dsa-sha2-128s` key) keeps publishing with the same key file, then moves to
    /// the additive form by rotation (docs/keys.md).
    #[test]
    fn a_legacy_hybrid_repository_keeps_publishing_and_migrates_by_rotation() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("repo");
        let mut repo =
            crate::Repository::init(&dir, &InitOptions::simple(Protection::PlaintextForTests))
                .unwrap();
        repo.publish(&|_, _| {}).unwrap();
        // Stage what an older Airlock wrote: the timestamp key as a legacy hybrid key.
        let legacy = PrivateKey::generate(KeyScheme::HybridEd25519SlhDsa).unwrap();
        let legacy_id = legacy.public_key().key_id();
        let (private_rel, public_rel) = (
            "keys/timestamp-legacy.key",
            "keys/timestamp-legacy.pub.json",
        );
        airlock_keystore::write_private_key(
            &dir.join(private_rel),
            &legacy,
            &Protection::PlaintextForTests,
        )
        .unwrap();
        airlock_keystore::write_public_key(&dir.join(public_rel), legacy.public_key()).unwrap();
        let published = repo.published_state().unwrap();
        let old: Vec<String> = repo.root.signed.roles["timestamp"].keyids.clone();
        for k in old {
            repo.root.signed.remove_key("timestamp", &k);
        }
        repo.root
            .signed
            .add_key("timestamp", legacy.public_key().clone());
        repo.config.keys.push(crate::KeyEntry {
            keyid: legacy_id.clone(),
            role: "timestamp".into(),
            scheme: "hybrid".into(),
            private: Some(private_rel.into()),
            external: None,
            public: public_rel.into(),
        });
        repo.touch("root", &published).unwrap();
        repo.sign_available("root", &published).unwrap();
        repo.commit().unwrap();
        drop(repo);

        let mut repo = crate::Repository::open(&dir, None).unwrap();
        repo.publish(&|_, _| {}).unwrap();
        let meta = dir.join("published/metadata");
        let v = crate::verify_published(&dir.join("published"), chrono::Utc::now());
        assert!(v.ok, "{:#?}", v.problems);
        let ts: serde_json::Value =
            serde_json::from_slice(&std::fs::read(meta.join("timestamp.json")).unwrap()).unwrap();
        let sigs = ts["signatures"].as_array().unwrap();
        assert_eq!(sigs.len(), 1);
        assert_eq!(sigs[0]["keyid"], legacy_id.as_str());

        // Migration: rotate the role to a new hybrid key, written in the additive form.
        repo.rotate(
            &Rotation {
                role: "timestamp".into(),
                add: Some(KeySource::Generate {
                    scheme: KeyScheme::HybridEd25519SlhDsa,
                    count: 1,
                }),
                remove: Vec::new(),
                replace_all: true,
                threshold: None,
            },
            true,
        )
        .unwrap();
        repo.publish(&|_, _| {}).unwrap();
        let v = crate::verify_published(&dir.join("published"), chrono::Utc::now());
        assert!(v.ok, "{:#?}", v.problems);
        let root = &repo.root.signed;
        assert!(root.keys.values().all(|k| k.keytype == "ed25519"));
        assert_eq!(root.pq.len(), 1);
        let ts: serde_json::Value =
            serde_json::from_slice(&std::fs::read(meta.join("timestamp.json")).unwrap()).unwrap();
        assert_eq!(ts["signatures"].as_array().unwrap().len(), 2);
    }
}
