//! Key files of a repository: creating them at `init`/`delegate`/`rotate`, and loading the ones
//! a signing step needs (decrypted on first use, then kept in memory for the command's duration).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use airlock_core::crypto::{KeyScheme, PrivateKey, PublicKey, Signer};
use airlock_keystore::{PassphraseSource, Protection};

use crate::config::{KeyEntry, RepoConfig};
use crate::error::RepoError;

/// How new private key files are protected.
#[derive(Clone, Debug)]
pub enum KeyProtection {
    /// Encrypted PKCS#8 (scrypt), passphrase from this source. The default.
    Encrypted(PassphraseSource),
    /// Encrypted with a cheap scrypt cost: test suites only.
    EncryptedFastForTests(PassphraseSource),
    /// Not encrypted at all: tests and throw-away demos only (`--plaintext-keys`).
    PlaintextForTests,
}

impl KeyProtection {
    pub(crate) fn protection(&self) -> Protection {
        match self {
            KeyProtection::Encrypted(p) => Protection::encrypted(p.clone()),
            KeyProtection::EncryptedFastForTests(p) => {
                Protection::encrypted_fast_for_tests(p.clone())
            }
            KeyProtection::PlaintextForTests => Protection::PlaintextForTests,
        }
    }

    pub(crate) fn passphrase(&self) -> Option<PassphraseSource> {
        match self {
            KeyProtection::Encrypted(p) | KeyProtection::EncryptedFastForTests(p) => {
                Some(p.clone())
            }
            KeyProtection::PlaintextForTests => None,
        }
    }
}

/// Where the keys of a new role (or new keys of a rotated one) come from.
#[derive(Clone, Debug)]
pub enum KeySource {
    /// Generate `count` keys of `scheme`, stored under `keys/`.
    Generate { scheme: KeyScheme, count: usize },
    /// Use these public keys; their private halves live elsewhere (offline signing).
    Public(Vec<PublicKey>),
}

/// A key created by this command, written under `keys/`.
pub(crate) struct NewKey {
    pub entry: KeyEntry,
    pub public: PublicKey,
    pub private: Option<PrivateKey>,
    /// Files written, removed again if the command fails before it commits.
    pub files: Vec<PathBuf>,
}

/// Decrypted private keys, loaded on demand.
pub(crate) struct Keyring {
    repo_dir: PathBuf,
    passphrase: Option<PassphraseSource>,
    loaded: BTreeMap<String, PrivateKey>,
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

    pub fn insert(&mut self, key: PrivateKey) {
        self.loaded.insert(key.public_key().key_id(), key);
    }

    /// The signer for `keyid`, if its private key file is listed in the config and present on
    /// this machine. A listed file that is absent means the key is kept offline: `None`. A file
    /// that is present but cannot be decrypted is an error (never silently skipped).
    pub fn signer(
        &mut self,
        config: &RepoConfig,
        keyid: &str,
    ) -> Result<Option<&PrivateKey>, RepoError> {
        if !self.loaded.contains_key(keyid) {
            let Some(rel) = config.key(keyid).and_then(|k| k.private.as_ref()) else {
                return Ok(None);
            };
            let path = self.repo_dir.join(rel);
            if !path.exists() {
                return Ok(None);
            }
            let pass = self
                .passphrase
                .clone()
                .unwrap_or_else(|| PassphraseSource::Env("AIRLOCK_PASSPHRASE".into()));
            let key = airlock_keystore::read_private_key(&path, &pass)?;
            if key.public_key().key_id() != keyid {
                return Err(RepoError::config(
                    &path,
                    format!(
                        "holds key {}, the config says {keyid}",
                        key.public_key().key_id()
                    ),
                ));
            }
            self.loaded.insert(keyid.to_string(), key);
        }
        Ok(self.loaded.get(keyid))
    }
}

/// Generate or take the keys for `role` (nothing written yet except key files).
pub(crate) fn make_keys(
    repo_dir: &Path,
    role: &str,
    source: &KeySource,
    protection: &KeyProtection,
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
                    let public = key.public_key().clone();
                    let keyid = public.key_id();
                    let short = keyid.get(..12).unwrap_or(&keyid);
                    let private_rel = format!("keys/{role}-{short}.key");
                    let public_rel = format!("keys/{role}-{short}.pub.json");
                    let private_path = repo_dir.join(&private_rel);
                    let public_path = repo_dir.join(&public_rel);
                    std::fs::create_dir_all(repo_dir.join("keys"))
                        .map_err(|e| crate::fsutil::io_err(&repo_dir.join("keys"), e))?;
                    airlock_keystore::write_private_key(
                        &private_path,
                        &key,
                        &protection.protection(),
                    )?;
                    let mut files = vec![private_path];
                    airlock_keystore::write_public_key(&public_path, &public)?;
                    files.push(public_path);
                    out.push(NewKey {
                        entry: KeyEntry {
                            keyid,
                            role: role.to_string(),
                            scheme: scheme.short_name().to_string(),
                            private: Some(private_rel),
                            public: public_rel,
                        },
                        public,
                        private: Some(key),
                        files,
                    });
                }
            }
            KeySource::Public(keys) => {
                for public in keys {
                    public.validate().map_err(|error| RepoError::Crypto {
                        what: format!("public key for {role}"),
                        error,
                    })?;
                    let keyid = public.key_id();
                    let short = keyid.get(..12).unwrap_or(&keyid);
                    let public_rel = format!("keys/{role}-{short}.pub.json");
                    let public_path = repo_dir.join(&public_rel);
                    std::fs::create_dir_all(repo_dir.join("keys"))
                        .map_err(|e| crate::fsutil::io_err(&repo_dir.join("keys"), e))?;
                    let existed = public_path.exists();
                    airlock_keystore::write_public_key(&public_path, public)?;
                    out.push(NewKey {
                        entry: KeyEntry {
                            keyid,
                            role: role.to_string(),
                            scheme: public.scheme.clone(),
                            private: None,
                            public: public_rel,
                        },
                        public: public.clone(),
                        private: None,
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

/// Undo [`make_keys`] when the command fails before committing.
pub(crate) fn remove_key_files(keys: &[NewKey]) {
    for k in keys {
        for f in &k.files {
            let _ = std::fs::remove_file(f);
        }
    }
}
