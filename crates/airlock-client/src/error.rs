//! What can go wrong in an update, said so that a person can tell which role, which check and
//! which URL failed.

use std::path::PathBuf;

use airlock_core::tuf::{SearchError, TrustError};
use airlock_fetch::FetchError;

use crate::store::StoreError;
use crate::target::TargetFileError;
use crate::transparency::LogCheckError;

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
    /// The root handed to [`crate::Updater::init`] does not verify on its own (the caller names
    /// where it came from).
    #[error("the root is not usable as a trust anchor")]
    BadInitialRoot {
        #[source]
        source: Box<TrustError>,
    },
    /// The root stored in the metadata directory does not verify on its own: it was altered or
    /// damaged after it was trusted. Nothing can be checked without it, and no newer root can be
    /// trusted through it, so only a root from the vendor can restore trust.
    #[error(
        "the trusted root {path} is damaged or was altered; restore trust with a root.json \
         obtained from the vendor: `airlock update init --force ROOT.json` (or \
         `Updater::init`)"
    )]
    CorruptTrustedRoot {
        path: PathBuf,
        #[source]
        source: Box<TrustError>,
    },
    /// A metadata download failed (the transport error names the URL).
    #[error("downloading {role} metadata failed")]
    Fetch {
        role: String,
        #[source]
        source: FetchError,
    },
    /// Trusted metadata lists a length above the configured cap for the role; nothing was
    /// requested.
    #[error(
        "{role} metadata: {listed_by} lists a length of {listed} bytes, above the maximum of \
         {max} bytes allowed for {role}; not downloaded"
    )]
    ListedLengthTooLarge {
        role: String,
        listed_by: String,
        listed: u64,
        max: u64,
    },
    /// Downloaded metadata failed a check of the trust logic.
    #[error("{role} metadata from {url} refused")]
    Refused {
        role: String,
        url: String,
        #[source]
        source: Box<TrustError>,
    },
    /// A root or targets-role file that passed every TUF check was not shown to be in the
    /// transparency log the trusted root requires (the bundle URL and the failed check are
    /// named). Nothing was trusted or stored.
    #[error("{role} v{version} refused by the transparency check (proof bundle {bundle_url})")]
    Transparency {
        role: String,
        version: u64,
        bundle_url: String,
        #[source]
        source: Box<LogCheckError>,
    },
    /// The peer check holds the update: a peer showed another tree of the log, or too few
    /// peers agreed.
    #[error("target {target:?} refused by the rebuilder policy{}",
        if fetch_failures.is_empty() { String::new() }
        else { format!(" (attestations not fetched: {})", fetch_failures.join("; ")) })]
    Rebuilds {
        target: String,
        /// Attestations that could not be fetched for another reason than absence.
        fetch_failures: Vec<String>,
        #[source]
        source: Box<airlock_core::rebuild::PolicyError>,
    },
    #[error("peer check of log {origin:?} holds the update")]
    PeerCheck {
        origin: String,
        #[source]
        source: Box<airlock_core::peer_check::PeerHold>,
    },
    /// The delegation search could not go on.
    #[error("searching the delegations for {what}")]
    Search {
        /// `target "PATH"`, or `the target listing`.
        what: String,
        #[source]
        source: SearchError,
    },
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
    #[error("target {target:?}")]
    Target {
        target: String,
        #[source]
        source: TargetFileError,
    },
    /// The client's transparency-log state (`tlog-state`) could not be read.
    #[error("loading the client's transparency-log state")]
    LogState(#[source] Box<LogCheckError>),
    /// Every mirror that serves the file failed; what each did, in the order they were asked.
    #[error("no mirror delivered {what}: {}", attempts.join("; "))]
    NoMirror { what: String, attempts: Vec<String> },
    /// The mirror configuration is unusable.
    #[error("mirror configuration")]
    Mirrors(#[source] airlock_core::mirrors::MirrorError),
    /// Metered: a delta update of the target failed, and the client is configured not to move
    /// the full size on its own. Nothing was changed.
    #[error(
        "delta update of {target:?} failed and this client is metered (--metered or metered = \
         true in client.toml): not downloading the full {length} bytes; {}",
        reasons.join("; ")
    )]
    DeltaStopped {
        target: String,
        length: u64,
        reasons: Vec<String>,
    },
    /// Reading or writing the local store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}
