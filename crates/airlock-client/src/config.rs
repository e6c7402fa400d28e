//! Updater settings.

use std::path::PathBuf;
use std::sync::Arc;

use airlock_core::mirrors::Mirror;
use airlock_core::tuf;
use airlock_fetch::Fetcher;

/// How much the client is willing to read and how far it is willing to walk.
///
/// The metadata caps are hard maxima, one per role, because every metadata file is held in
/// memory to be verified. A download whose length the trusted metadata does not give (root,
/// timestamp, and snapshot or targets roles listed without `length`) stops at the cap. A listed
/// length above the cap is refused before anything is requested
/// ([`crate::UpdateError::ListedLengthTooLarge`]): a compromised timestamp key must not be able
/// to make the client read a 100 GB "snapshot". Defaults are python-tuf's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest `N.root.json` accepted. Default 512,000 (python-tuf's).
    pub root_max_len: u64,
    /// Largest `timestamp.json` accepted. Default 16,384.
    pub timestamp_max_len: u64,
    /// Largest `snapshot.json` accepted, listed or not. Default 2,000,000.
    pub snapshot_max_len: u64,
    /// Largest top-level `targets.json` accepted, listed or not. Default 5,000,000.
    pub targets_max_len: u64,
    /// Largest delegated targets role accepted, listed or not. Default 5,000,000 (python-tuf
    /// uses its targets cap for every targets role).
    pub delegated_targets_max_len: u64,
    /// Root versions fetched per refresh at most. Default and upper bound 256 (the core's
    /// `MAX_ROOT_ROTATIONS`): a larger setting is treated as 256.
    pub max_root_rotations: u32,
    /// Targets roles visited per target lookup at most. Default 32.
    pub max_delegations: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            root_max_len: tuf::DEFAULT_MAX_ROOT_BYTES,
            timestamp_max_len: tuf::DEFAULT_MAX_TIMESTAMP_BYTES,
            snapshot_max_len: tuf::DEFAULT_MAX_SNAPSHOT_BYTES,
            targets_max_len: tuf::DEFAULT_MAX_TARGETS_BYTES,
            delegated_targets_max_len: tuf::DEFAULT_MAX_TARGETS_BYTES,
            max_root_rotations: tuf::MAX_ROOT_ROTATIONS,
            max_delegations: tuf::MAX_DELEGATIONS as u32,
        }
    }
}

/// Where the client keeps its trusted metadata and where it finds the repository.
#[derive(Clone, Debug)]
pub struct UpdaterConfig {
    /// Directory holding the trusted metadata (`root.json` must be there; see
    /// [`crate::Updater::init`]).
    pub metadata_dir: PathBuf,
    /// Base URL of the repository's metadata, e.g. `https://example.org/metadata/`.
    pub metadata_base_url: String,
    /// Base URL of the target files; needed only for downloads.
    pub targets_base_url: Option<String>,
    /// Size caps and walk limits.
    pub limits: Limits,
    /// Download `dir/HASH.name` when the root sets `consistent_snapshot` (default true). Turn off
    /// only for repositories that publish consistent metadata but plain target names.
    pub prefix_targets_with_hash: bool,
    /// The HTTPS transport (CA trust, timeouts, retries, proxy) shared with the caller.
    pub fetcher: Arc<Fetcher>,
    /// Where the transparency log's tiles are read (a mirror or CDN), in place of the log URL
    /// the trusted root's policy gives; used only when a consistency proof is needed.
    pub log_url: Option<String>,
    /// Peers asked for their newest checkpoint of the log by [`crate::Updater::check_peers`]:
    /// URLs answering GET with a checkpoint note (a witness's or another client's published
    /// checkpoint, a distributor).
    pub peers: Vec<String>,
    /// How many peers must answer with a checkpoint consistent with the client's; fewer holds
    /// the update.
    pub peers_required: usize,
    /// Further mirrors, after the one the base URLs above name (mirror 0). Each is untrusted;
    /// see [`airlock_core::mirrors`] for the order in which they are asked.
    pub mirrors: Vec<Mirror>,
    /// Delta updates: whether to try patches, the memory cap, and metered mode
    /// (docs/publishing.md, "Delta updates").
    pub delta: airlock_core::delta::Policy,
    /// Local files besides the destination that may be an earlier version of a target (each
    /// is proven against the signed base hashes before a patch is applied to it).
    pub delta_bases: Vec<PathBuf>,
    /// Asked, in order, for a target no mirror delivered (e.g. a BitTorrent swarm); their
    /// bytes are checked exactly as a mirror's. See [`crate::fallback`].
    pub fallback_sources: Vec<Arc<dyn crate::fallback::TargetSource>>,
    /// A local rebuilder policy on top of the trusted root's (docs/rebuild.md): it only adds a
    /// requirement, both must be met.
    pub rebuilders: Option<airlock_core::rebuild::RebuilderPolicy>,
    /// Check rebuilder attestations before a target is downloaded (the default). Off only for
    /// a rebuilder or a mirror, which compare or copy the bytes and never install them.
    pub require_rebuilds: bool,
}

impl UpdaterConfig {
    /// Settings with default limits.
    pub fn new(
        metadata_dir: impl Into<PathBuf>,
        metadata_base_url: impl Into<String>,
        fetcher: Arc<Fetcher>,
    ) -> Self {
        Self {
            metadata_dir: metadata_dir.into(),
            metadata_base_url: metadata_base_url.into(),
            targets_base_url: None,
            limits: Limits::default(),
            prefix_targets_with_hash: true,
            fetcher,
            log_url: None,
            peers: Vec::new(),
            peers_required: 0,
            mirrors: Vec::new(),
            delta: airlock_core::delta::Policy::default(),
            delta_bases: Vec::new(),
            fallback_sources: Vec::new(),
            rebuilders: None,
            require_rebuilds: true,
        }
    }

    /// Set the base URL of target files.
    pub fn with_targets_base_url(mut self, url: impl Into<String>) -> Self {
        self.targets_base_url = Some(url.into());
        self
    }

    /// Add a mirror, tried after the ones before it when they fail.
    pub fn with_mirror(mut self, mirror: Mirror) -> Self {
        self.mirrors.push(mirror);
        self
    }

    /// Replace the limits.
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }
}

/// `url` with exactly one trailing `/`, so that file names can be appended.
pub(crate) fn with_trailing_slash(url: &str) -> String {
    if url.ends_with('/') {
        url.to_string()
    } else {
        format!("{url}/")
    }
}
