//! The witness's TOML configuration (`witness.toml`), e.g.:
//!
//! ```toml
//! key_file = "witness.key"          # Ed25519 seed: encrypted PKCS#8 key file (airlock-keystore)
//! key_name = "witness.example/w1"   # the cosignature/v1 key name
//! state_dir = "state"               # latest cosigned checkpoint per log
//! listen = "127.0.0.1:7380"
//! tls_cert = "tls/cert.pem"         # optional: serve HTTPS
//! tls_key = "tls/key.pem"
//!
//! [[log]]
//! origin = "log.example/airlock"
//! keys = ["log.example/airlock+0a1b2c3d+AT..."]
//! ```
//!
//! Relative paths are relative to the directory holding the file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use airlock_core::tlog::{CosignatureSigner, KeyAlgorithm, NoteSigner, NoteVerifier};
use airlock_keystore::{PassphraseSource, Protection};

use crate::{FollowedLog, WitnessError, write_atomic};

/// One followed log in the configuration.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LogEntry {
    pub origin: String,
    /// Checkpoint verifier keys (vkeys).
    pub keys: Vec<String>,
}

/// `witness.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WitnessConfig {
    pub key_file: PathBuf,
    /// The cosignature key name. Required for a keystore key file; absent in configurations
    /// written before keys were encrypted, whose key file is a plaintext skey.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_name: Option<String>,
    pub state_dir: PathBuf,
    pub listen: SocketAddr,
    #[serde(default)]
    pub tls_cert: Option<PathBuf>,
    #[serde(default)]
    pub tls_key: Option<PathBuf>,
    #[serde(default, rename = "log")]
    pub logs: Vec<LogEntry>,
}

fn cfg_err(path: &Path, reason: impl Into<String>) -> WitnessError {
    WitnessError::Corrupt {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

impl WitnessConfig {
    pub fn load(path: &Path) -> Result<Self, WitnessError> {
        let text = std::fs::read_to_string(path).map_err(|source| WitnessError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| cfg_err(path, e.message().to_string()))
    }

    pub fn save(&self, path: &Path) -> Result<(), WitnessError> {
        let text = toml::to_string_pretty(self).map_err(|e| cfg_err(path, e.to_string()))?;
        write_atomic(path, text.as_bytes())
    }

    /// `p` relative to the configuration's directory.
    pub fn resolve(config_path: &Path, p: &Path) -> PathBuf {
        config_path.parent().unwrap_or(Path::new(".")).join(p)
    }

    /// Reads the signer from `key_file`: an airlock-keystore key file (encrypted PKCS#8 Ed25519
    /// seed; `passphrase` is asked only if it is encrypted) named by `key_name`, or, for witnesses
    /// created before that, a legacy plaintext `PRIVATE+KEY+...` skey file.
    pub fn signer(
        &self,
        config_path: &Path,
        passphrase: &PassphraseSource,
    ) -> Result<CosignatureSigner, WitnessError> {
        let path = Self::resolve(config_path, &self.key_file);
        let signer = airlock_keystore::read_note_key(
            &path,
            self.key_name.as_deref(),
            KeyAlgorithm::CosignatureV1,
            passphrase,
        )
        .map_err(|e| match e {
            airlock_keystore::KeystoreError::NoteKeyNameMissing { path } => key_err(
                config_path,
                format!("key_name is missing (needed to read {})", path.display()),
            ),
            e => WitnessError::Key(e),
        })?;
        as_cosigner(&signer, &path)
    }

    /// The followed logs with parsed keys.
    pub fn followed(&self, config_path: &Path) -> Result<Vec<FollowedLog>, WitnessError> {
        self.logs
            .iter()
            .map(|l| {
                let keys = l
                    .keys
                    .iter()
                    .map(|k| {
                        NoteVerifier::from_vkey(k).map_err(|e| {
                            cfg_err(config_path, format!("log {:?}: key {k:?}: {e}", l.origin))
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(FollowedLog {
                    origin: l.origin.clone(),
                    keys,
                })
            })
            .collect()
    }
}

fn key_err(path: &Path, reason: impl Into<String>) -> WitnessError {
    WitnessError::Config {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// The cosignature signer of a note signer whose algorithm is cosignature/v1 (checked by the
/// key loader already).
fn as_cosigner(signer: &NoteSigner, path: &Path) -> Result<CosignatureSigner, WitnessError> {
    CosignatureSigner::from_skey(&signer.to_skey()).map_err(|e| key_err(path, e.to_string()))
}

/// Generates a fresh cosignature/v1 signer named `name` and writes its Ed25519 seed to the new
/// key file `path` as an airlock-keystore private key (encrypted PKCS#8 unless `protection` is
/// `PlaintextForTests`; mode 0600, atomic, never overwrites).
pub fn generate_signer_key(
    path: &Path,
    name: &str,
    protection: &Protection,
) -> Result<CosignatureSigner, WitnessError> {
    let signer =
        airlock_keystore::generate_note_key(path, name, KeyAlgorithm::CosignatureV1, protection)?;
    as_cosigner(&signer, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn pass(p: &str) -> PassphraseSource {
        PassphraseSource::Value(p.to_string().into())
    }

    #[test]
    fn signer_key_is_encrypted_0600_never_overwritten_and_needs_the_passphrase() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("witness.key");
        let cfg_path = dir.path().join("witness.toml");
        let made = generate_signer_key(
            &key,
            "witness.test/w",
            &Protection::encrypted_fast_for_tests(pass("right")),
        )
        .unwrap();
        let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let text = std::fs::read_to_string(&key).unwrap();
        assert!(text.contains("ENCRYPTED PRIVATE KEY"), "{text}");
        assert!(
            generate_signer_key(&key, "witness.test/w", &Protection::PlaintextForTests).is_err()
        );
        assert_eq!(std::fs::read_to_string(&key).unwrap(), text);

        let cfg = WitnessConfig {
            key_file: "witness.key".into(),
            key_name: Some("witness.test/w".into()),
            state_dir: "state".into(),
            listen: "127.0.0.1:0".parse().unwrap(),
            tls_cert: None,
            tls_key: None,
            logs: Vec::new(),
        };
        let read = cfg.signer(&cfg_path, &pass("right")).unwrap();
        assert_eq!(read.verifier().to_vkey(), made.verifier().to_vkey());
        let err = cfg.signer(&cfg_path, &pass("wrong")).unwrap_err();
        assert!(err.to_string().contains("witness.key"), "{err}");
        // Truncated: an error naming the file, not a panic.
        std::fs::write(&key, &text.as_bytes()[..text.len() / 2]).unwrap();
        let err = cfg.signer(&cfg_path, &pass("right")).unwrap_err();
        assert!(err.to_string().contains("witness.key"), "{err}");
    }
}
