//! The log's TOML configuration (`log.toml`), e.g.:
//!
//! ```toml
//! key_file = "log.key"               # Ed25519 seed: encrypted PKCS#8 key file (airlock-keystore)
//! key_name = "log.example/airlock"   # the signer's note key name (the origin)
//! public_dir = "public"              # checkpoint + tiles: publish this directory
//! state_dir = "state"                # guard, pending batch, lock: never publish
//! listen = "127.0.0.1:7370"
//! tls_cert = "tls/cert.pem"          # optional: serve HTTPS
//! tls_key = "tls/key.pem"
//! max_batch = 65536
//! publishers = ["publisher.example+1a2b3c4d+AT..."]   # keys allowed to POST /add
//! witness_ca = "ca.pem"              # optional: CA bundle for witness HTTPS (default webpki)
//! witness_timeout_secs = 10
//!
//! [[witness]]
//! key = "witness.example/w1+5e6f7a8b+BA..."
//! url = "https://witness.example/w1"
//! ```
//!
//! Relative paths are relative to the directory holding the file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use airlock_core::crypto::{Ed25519Private, PrivateKey};
use airlock_core::tlog::{KeyAlgorithm, NoteSigner, NoteVerifier};
use airlock_keystore::{KeystoreError, PassphraseSource, Protection};

use crate::http::HttpClient;
use crate::service::LogOptions;
use crate::store::FsTileStore;
use crate::witnessing::WitnessEndpoint;

/// A configuration problem, naming the file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
    /// Reading or writing a key file (wrong passphrase, truncated file, ...); names the file.
    #[error("{0}")]
    Key(#[from] KeystoreError),
}

fn invalid(path: &Path, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// One witness in the configuration.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct WitnessEntry {
    /// The witness's cosignature/v1 verifier key.
    pub key: String,
    /// Submission prefix (`/add-checkpoint` is appended).
    pub url: String,
}

fn default_max_batch() -> usize {
    65_536
}
fn default_timeout() -> u64 {
    10
}

/// `log.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    pub key_file: PathBuf,
    /// The signer's key name (the log's origin). Required for a keystore key file; absent in
    /// configurations written before keys were encrypted, whose key file is a plaintext skey.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_name: Option<String>,
    pub public_dir: PathBuf,
    pub state_dir: PathBuf,
    pub listen: SocketAddr,
    #[serde(default)]
    pub tls_cert: Option<PathBuf>,
    #[serde(default)]
    pub tls_key: Option<PathBuf>,
    #[serde(default = "default_max_batch")]
    pub max_batch: usize,
    #[serde(default)]
    pub publishers: Vec<String>,
    #[serde(default)]
    pub witness_ca: Option<PathBuf>,
    #[serde(default = "default_timeout")]
    pub witness_timeout_secs: u64,
    #[serde(default, rename = "witness")]
    pub witnesses: Vec<WitnessEntry>,
}

impl LogConfig {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| invalid(path, e.message().to_string()))
    }

    pub fn save(&self, path: &Path) -> Result<(), ConfigError> {
        let text = toml::to_string_pretty(self).map_err(|e| invalid(path, e.to_string()))?;
        crate::store::write_atomic(path, text.as_bytes()).map_err(|e| invalid(path, e.to_string()))
    }

    /// `p` relative to the directory of the configuration file.
    pub fn resolve(config_path: &Path, p: &Path) -> PathBuf {
        config_path.parent().unwrap_or(Path::new(".")).join(p)
    }

    /// Reads the note signer from `key_file`: an airlock-keystore key file (encrypted PKCS#8
    /// Ed25519 seed; `passphrase` is asked only if it is encrypted) named by `key_name`, or, for
    /// logs created before that, a legacy plaintext `PRIVATE+KEY+...` skey file.
    pub fn signer(
        &self,
        config_path: &Path,
        passphrase: &PassphraseSource,
    ) -> Result<NoteSigner, ConfigError> {
        let path = Self::resolve(config_path, &self.key_file);
        read_signer(
            &path,
            self.key_name.as_deref(),
            KeyAlgorithm::Ed25519,
            config_path,
            passphrase,
        )
    }

    pub fn publishers(&self, config_path: &Path) -> Result<Vec<NoteVerifier>, ConfigError> {
        self.publishers
            .iter()
            .map(|k| {
                NoteVerifier::from_vkey(k)
                    .map_err(|e| invalid(config_path, format!("publisher key {k:?}: {e}")))
            })
            .collect()
    }

    pub fn witnesses(&self, config_path: &Path) -> Result<Vec<WitnessEndpoint>, ConfigError> {
        self.witnesses
            .iter()
            .map(|w| {
                let verifier = NoteVerifier::from_vkey(&w.key)
                    .map_err(|e| invalid(config_path, format!("witness key {:?}: {e}", w.key)))?;
                Ok(WitnessEndpoint {
                    verifier,
                    url: w.url.clone(),
                })
            })
            .collect()
    }

    /// Everything [`crate::Log::start`] needs: opens the store (taking its lock) and reads keys.
    pub fn log_options(
        &self,
        config_path: &Path,
        passphrase: &PassphraseSource,
    ) -> Result<LogOptions, ConfigError> {
        // The key first: a wrong passphrase fails (and a prompt waits) before the store's lock
        // is taken.
        let signer = self.signer(config_path, passphrase)?;
        let public = Self::resolve(config_path, &self.public_dir);
        let state = Self::resolve(config_path, &self.state_dir);
        let store =
            FsTileStore::open(&public, &state).map_err(|e| invalid(config_path, e.to_string()))?;
        let witnesses = self.witnesses(config_path)?;
        let witness_client = if witnesses.is_empty() {
            None
        } else {
            let ca = match &self.witness_ca {
                Some(p) => {
                    let p = Self::resolve(config_path, p);
                    Some(std::fs::read(&p).map_err(|source| ConfigError::Io { path: p, source })?)
                }
                None => None,
            };
            // Plain http is allowed only for witness URLs the operator wrote as http://
            // (loopback tests); the client refuses http otherwise.
            let allow_http = witnesses.iter().any(|w| w.url.starts_with("http://"));
            Some(
                HttpClient::new(
                    ca.as_deref(),
                    allow_http,
                    Duration::from_secs(self.witness_timeout_secs.max(1)),
                )
                .map_err(|e| invalid(config_path, e.to_string()))?,
            )
        };
        Ok(LogOptions {
            signer,
            store: Arc::new(store),
            publishers: self.publishers(config_path)?,
            witnesses,
            witness_client,
            max_batch: self.max_batch,
        })
    }
}

/// Generates a fresh Ed25519 note signer named `name` (algorithm `alg`) and writes its seed to
/// the new key file `path` as an airlock-keystore private key (encrypted PKCS#8 unless
/// `protection` is `PlaintextForTests`; mode 0600, atomic, never overwrites).
pub fn generate_signer_key(
    path: &Path,
    name: &str,
    alg: KeyAlgorithm,
    protection: &Protection,
) -> Result<NoteSigner, ConfigError> {
    let ed = Ed25519Private::generate().map_err(|e| invalid(path, e.to_string()))?;
    let signer = NoteSigner::from_seed(name, alg, &ed.seed())
        .map_err(|e| invalid(path, format!("key name {name:?}: {e}")))?;
    airlock_keystore::write_private_key(path, &PrivateKey::Ed25519(ed), protection)?;
    Ok(signer)
}

/// Reads a note signer key file written by [`generate_signer_key`] (the name comes from the
/// configuration), or a legacy plaintext skey file (`PRIVATE+KEY+...`, which carries its name).
pub fn read_signer(
    path: &Path,
    name: Option<&str>,
    alg: KeyAlgorithm,
    config_path: &Path,
    passphrase: &PassphraseSource,
) -> Result<NoteSigner, ConfigError> {
    let head = read_head(path)?;
    if head.starts_with(b"PRIVATE+KEY+") {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let signer =
            NoteSigner::from_skey(text.trim()).map_err(|e| invalid(path, e.to_string()))?;
        if signer.algorithm() != alg {
            return Err(invalid(
                path,
                format!("key algorithm {} where {alg} is needed", signer.algorithm()),
            ));
        }
        if name.is_some_and(|n| n != signer.name()) {
            return Err(invalid(
                path,
                format!(
                    "key name {:?} differs from key_name in the configuration",
                    signer.name()
                ),
            ));
        }
        return Ok(signer);
    }
    let Some(name) = name else {
        return Err(invalid(
            config_path,
            "key_name is missing (needed to read the keystore key file)",
        ));
    };
    match airlock_keystore::read_private_key(path, passphrase)? {
        PrivateKey::Ed25519(ed) => NoteSigner::from_seed(name, alg, &ed.seed())
            .map_err(|e| invalid(config_path, format!("key_name {name:?}: {e}"))),
        _ => Err(invalid(path, "not an Ed25519 private key")),
    }
}

/// The first bytes of a file (to tell a legacy skey file from a PEM key file).
fn read_head(path: &Path) -> Result<Vec<u8>, ConfigError> {
    use std::io::Read;
    let io = |source| ConfigError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut head = Vec::with_capacity(16);
    std::fs::File::open(path)
        .map_err(io)?
        .take(16)
        .read_to_end(&mut head)
        .map_err(io)?;
    Ok(head)
}

/// Writes a secret key string to a new file with mode 0600 (refuses to overwrite), atomically
/// (the one atomic writer: temp file, fsync, no-clobber rename, fsync the directory): a crash
/// never leaves a truncated key under the final name.
pub fn write_secret_key(path: &Path, skey: &str) -> Result<(), ConfigError> {
    let bytes = format!("{skey}\n");
    airlock_fs::write_atomic(
        path,
        bytes.as_bytes(),
        &airlock_fs::WriteOptions::private().no_clobber(),
    )
    .map_err(|e| ConfigError::Io {
        path: path.to_path_buf(),
        source: e.source,
    })
}

#[cfg(test)]
mod secret_key_tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn secret_key_is_written_0600_once_and_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.key");
        write_secret_key(&path, "PRIVATE+KEY+first").unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(write_secret_key(&path, "PRIVATE+KEY+second").is_err());
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "PRIVATE+KEY+first\n"
        );
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
