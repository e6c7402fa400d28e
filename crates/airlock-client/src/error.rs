//! What can go wrong in an update, said so that a person can tell which role, which check and
//! which URL failed.

use std::path::PathBuf;

use airlock_core::tuf::TrustError;
use airlock_fetch::FetchError;

use crate::store::StoreError;
use crate::target::TargetFileError;

/// An update step that failed. Nothing the client refused is ever written to the metadata
/// directory or the target location.
#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    /// `root.json` is missing from the metadata directory.
    #[error(
        "no trusted root in {dir}: initialise the client with a root.json you trust first \
         (e.g. `airlock update init ROOT.json`)"
    )]
    NotInitialised { dir: PathBuf },
    /// The locally stored root (or the one given to `init`) does not verify on its own.
    #[error("trusted root {path} is not usable: {source}")]
    BadTrustedRoot {
        path: PathBuf,
        #[source]
        source: Box<TrustError>,
    },
    /// A metadata download failed (the transport error names the URL).
    #[error("downloading {role} metadata failed: {source}")]
    Fetch {
        role: String,
        #[source]
        source: FetchError,
    },
    /// Downloaded metadata failed a check of the trust logic.
    #[error("{role} metadata from {url} refused: {source}")]
    Refused {
        role: String,
        url: String,
        #[source]
        source: Box<TrustError>,
    },
    /// The delegation search could not go on.
    #[error("looking up target {target:?}: {reason}")]
    Search { target: String, reason: String },
    /// A targets role that the trusted snapshot does not list cannot be loaded.
    #[error("{role} metadata is not listed in the trusted snapshot, so it cannot be loaded")]
    NotInSnapshot { role: String },
    /// A base URL is not usable.
    #[error("{what} {url:?} is not an http(s) URL")]
    BadUrl { what: &'static str, url: String },
    /// Download asked for without a targets base URL.
    #[error("no targets base URL is configured, so targets cannot be downloaded")]
    NoTargetsBaseUrl,
    /// No trusted targets role lists the target (within the delegation limit).
    #[error("target {target:?} is not listed by any trusted targets role")]
    TargetNotFound { target: String },
    /// A target file failed its download or its length/hash check.
    #[error("target {target:?}: {source}")]
    Target {
        target: String,
        #[source]
        source: TargetFileError,
    },
    /// Reading or writing the local store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}
