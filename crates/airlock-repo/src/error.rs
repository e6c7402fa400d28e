//! What can go wrong while publishing, each variant naming the role, file or check concerned.
//!
//! A message leaves its cause to `source()`, so printing the chain shows each cause once.

use std::path::PathBuf;

use airlock_core::crypto::CryptoError;
use airlock_core::tuf::metadata::MetadataError;
use airlock_keystore::KeystoreError;

#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    #[error("{path}")]
    Io {
        path: PathBuf,
        #[source]
        error: std::io::Error,
    },
    #[error(transparent)]
    Fs(#[from] airlock_fs::FsError),
    #[error(
        "{path} is not an airlock repository (no work/airlock-repo.toml); run `airlock repo init` first"
    )]
    NotARepository { path: PathBuf },
    #[error("{path} already exists and is not empty; refusing to initialise a repository there")]
    AlreadyExists { path: PathBuf },
    #[error("another airlock command holds the lock on {path}")]
    Locked { path: PathBuf },
    #[error("config {path}: {reason}")]
    Config { path: PathBuf, reason: String },
    #[error("staged metadata {file}")]
    Metadata {
        file: String,
        #[source]
        error: MetadataError,
    },
    #[error(transparent)]
    Keystore(#[from] KeystoreError),
    #[error("{what}")]
    Crypto {
        what: String,
        #[source]
        error: CryptoError,
    },
    #[error("invalid input: {0}")]
    Invalid(String),
    /// The BitTorrent transport could not make a target's .torrent.
    #[error("making the .torrent of target {target:?}")]
    Torrent {
        target: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("unknown role {0:?}")]
    UnknownRole(String),
    #[error(
        "role {role} version {version} has {valid} valid signature(s), threshold is {threshold}; \
         missing signatures from key(s) {missing}: sign offline (`airlock repo export {role}`, \
         `airlock repo sign`, `airlock repo import`) or make the key files available"
    )]
    NotEnoughSignatures {
        role: String,
        version: u64,
        valid: u64,
        threshold: u64,
        missing: String,
    },
    #[error("target {path:?}: {reason}")]
    Target { path: String, reason: String },
    #[error(
        "key file {path} is encrypted and no passphrase source was given (the caller passes one, e.g. `airlock repo --passphrase-env VAR`)"
    )]
    NoPassphrase { path: PathBuf },
    #[error("import {file}: {reason}")]
    Import { file: String, reason: String },
    #[error("{what}: transparency policy")]
    Transparency {
        what: String,
        #[source]
        source: Box<airlock_core::transparency::TransparencyError>,
    },
    #[error("{what}: rebuilder policy")]
    Rebuilders {
        what: String,
        #[source]
        source: Box<airlock_core::rebuild::PolicyError>,
    },
    #[error(
        "the root requires releases to be logged in {origin}, and no transparency log was \
         configured for publishing (`airlock repo log-config --url URL --key FILE`); nothing was \
         published"
    )]
    NoReleaseLog { origin: String },
    #[error("logging {count} statement(s) in {log} failed; nothing was published")]
    ReleaseLog {
        log: String,
        count: usize,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
    #[error("publishing record {path}")]
    ReleaseRecord {
        path: PathBuf,
        #[source]
        source: Box<airlock_core::transparency::TransparencyError>,
    },
    #[error(
        "{file}: the proof bundle from {log} does not verify as a client would check it; nothing \
         was published"
    )]
    ReleaseProof {
        file: String,
        log: String,
        #[source]
        source: Box<airlock_core::transparency::ReleaseError>,
    },
}

impl RepoError {
    pub(crate) fn invalid(reason: impl Into<String>) -> Self {
        RepoError::Invalid(reason.into())
    }

    pub(crate) fn config(path: &std::path::Path, reason: impl Into<String>) -> Self {
        RepoError::Config {
            path: path.to_path_buf(),
            reason: reason.into(),
        }
    }

    pub(crate) fn metadata(file: impl Into<String>, error: MetadataError) -> Self {
        RepoError::Metadata {
            file: file.into(),
            error,
        }
    }
}
