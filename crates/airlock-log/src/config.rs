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

use airlock_core::tlog::{KeyAlgorithm, NoteSigner, NoteVerifier};
use airlock_keystore::{KeystoreError, PassphraseSource};

use crate::service::LogOptions;
use crate::tile_store::FsTileStore;
use crate::witness_client::WitnessEndpoint;

/// A configuration problem, naming the file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
    /// Reading or writing a key file (wrong passphrase, truncated file, ...); names the file.
    #[error(transparent)]
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
        crate::tile_store::write_atomic(path, text.as_bytes())
            .map_err(|e| invalid(path, e.to_string()))
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
        airlock_keystore::read_note_key(
            &path,
            self.key_name.as_deref(),
            KeyAlgorithm::Ed25519,
            passphrase,
        )
        .map_err(|e| match e {
            KeystoreError::NoteKeyNameMissing { path } => invalid(
                config_path,
                format!("key_name is missing (needed to read {})", path.display()),
            ),
            e => ConfigError::Key(e),
        })
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
    /// Opens the log's store, taking its lock (refused while another process holds it).
    pub fn open_store(&self, config_path: &Path) -> Result<FsTileStore, ConfigError> {
        let public = Self::resolve(config_path, &self.public_dir);
        let state = Self::resolve(config_path, &self.state_dir);
        FsTileStore::open(&public, &state).map_err(|e| invalid(config_path, e.to_string()))
    }

    pub fn log_options(
        &self,
        config_path: &Path,
        passphrase: &PassphraseSource,
    ) -> Result<LogOptions, ConfigError> {
        // The key first: a wrong passphrase fails (and a prompt waits) before the store's lock
        // is taken.
        let signer = self.signer(config_path, passphrase)?;
        let store = self.open_store(config_path)?;
        let witnesses = self.witnesses(config_path)?;
        let witness_client = if witnesses.is_empty() {
            None
        } else {
            let trust = match &self.witness_ca {
                Some(p) => airlock_fetch::Trust::ca_bundle_file(&Self::resolve(config_path, p))
                    .map_err(|e| invalid(config_path, e.to_string()))?,
                None => airlock_fetch::Trust::WebPki,
            };
            let timeout = Duration::from_secs(self.witness_timeout_secs.max(1));
            // Plain http is allowed only for witness URLs the operator wrote as http://
            // (loopback tests); the fetcher refuses http to anything but loopback.
            let allow_http = witnesses.iter().any(|w| w.url.starts_with("http://"));
            Some(Arc::new(
                airlock_fetch::Fetcher::new(witness_fetcher_config(trust, allow_http, timeout))
                    .map_err(|e| invalid(config_path, e.to_string()))?,
            ))
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

/// The fetcher settings for calling witnesses: `timeout` bounds connecting and each read, and
/// a witness has no retries beyond the log's next checkpoint.
pub fn witness_fetcher_config(
    trust: airlock_fetch::Trust,
    allow_http_loopback: bool,
    timeout: Duration,
) -> airlock_fetch::FetcherConfig {
    airlock_fetch::FetcherConfig {
        trust,
        allow_http_loopback,
        connect_timeout: timeout,
        read_timeout: timeout,
        retries: 0,
        ..airlock_fetch::FetcherConfig::default()
    }
}
