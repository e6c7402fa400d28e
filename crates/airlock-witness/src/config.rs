//! The witness's TOML configuration (`witness.toml`), e.g.:
//!
//! ```toml
//! key_file = "witness.key"          # cosignature/v1 signer key (skey), mode 0600
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

use airlock_core::tlog::{CosignatureSigner, NoteVerifier};

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

    /// Reads the signer key named by `key_file`.
    pub fn signer(&self, config_path: &Path) -> Result<CosignatureSigner, WitnessError> {
        let path = Self::resolve(config_path, &self.key_file);
        let text = std::fs::read_to_string(&path).map_err(|source| WitnessError::Io {
            path: path.clone(),
            source,
        })?;
        CosignatureSigner::from_skey(text.trim()).map_err(|e| cfg_err(&path, e.to_string()))
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

/// Writes a secret key string to a new file with mode 0600 (refuses to overwrite).
pub fn write_secret_key(path: &Path, skey: &str) -> Result<(), WitnessError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let io = |source| WitnessError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io)?;
    f.write_all(skey.as_bytes()).map_err(io)?;
    f.write_all(b"\n").map_err(io)?;
    f.sync_all().map_err(io)
}
