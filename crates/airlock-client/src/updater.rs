//! The TUF client workflow (specification 1.0.34, section 5) as a thin driver: fetch bytes,
//! hand them to [`TrustedSet`] (airlock-core, where every trust decision is made), store what it
//! accepted.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use airlock_core::mirrors::{Failure, Mirror, MirrorReport, MirrorSet, Transfer, Use};
use airlock_core::peer_check::{PeerTally, PeerVerdict};
use airlock_core::transparency::{PROOF_SUFFIX, TransparencyPolicy};
use airlock_core::tuf::{
    CachedSnapshot, Gated, MAX_ROOT_ROTATIONS, Metadata, Root, SearchStep, TargetFile,
    TargetSearch, Targets, TargetsLoad, TimestampUpdate, TrustError, TrustedSet,
};
use airlock_fetch::{FetchError, Fetcher, Progress};
use chrono::{DateTime, Utc};

use crate::config::{UpdaterConfig, with_trailing_slash};
use crate::error::UpdateError;
use crate::store::{MetadataStore, encode_role_name, encode_target_file_name, encode_target_path};
use crate::target::{self, TargetFileError};
use crate::transparency::{LogCheckError, LogChecker, LogState};

/// A target found in trusted metadata: its path, length, hashes and custom data, and the role
/// that listed it.
#[derive(Clone, Debug, PartialEq)]
pub struct TargetInfo {
    /// The TUF target path, e.g. `app/1.2/app.tar.gz`.
    pub path: String,
    /// Length, hashes and custom data as the signing role listed them.
    pub file: TargetFile,
    /// The targets role that signed for it (`targets` or a delegated role).
    pub role: String,
}

/// The result of [`Updater::list_targets_within`].
#[derive(Clone, Debug, PartialEq)]
pub struct TargetListing {
    pub targets: Vec<TargetInfo>,
    /// Targets roles read (top-level `targets` included).
    pub roles_visited: u32,
    /// Delegated roles reachable but not read because of the role limit (0: the list is
    /// complete).
    pub roles_not_visited: usize,
}

/// What a refresh left trusted.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct RefreshSummary {
    pub root_version: u64,
    /// How many new root versions this refresh accepted.
    pub roots_rotated: u32,
    pub timestamp_version: u64,
    pub snapshot_version: u64,
    /// The top-level targets version the trusted snapshot lists. A refresh that found nothing
    /// changed since the last update leaves the stored `targets.json` to the first lookup,
    /// which verifies it (and refuses it if it is not this version).
    pub targets_version: u64,
    /// The final root's expiry, RFC 3339.
    pub expires: String,
}

/// What [`Updater::check_peers`] found.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct PeerReport {
    /// Peers whose checkpoint agreed with the client's.
    pub agreeing: usize,
    /// The number required.
    pub required: usize,
    /// `(peer URL, what it showed)`, in the configured order.
    pub peers: Vec<(String, String)>,
    /// The client's checkpoint size after the check.
    pub checkpoint_size: Option<u64>,
}

/// A TUF updater for one repository and one local metadata directory.
///
/// The reference time for every expiry check is taken once, when the updater is created (TUF
/// 5.1: "the time at which the update began").
pub struct Updater {
    config: UpdaterConfig,
    /// Mirror 0 from the base URLs, then `config.mirrors`; what each did in this run.
    mirrors: Mutex<MirrorSet>,
    /// The mirror metadata is read from: the one the last refresh succeeded with.
    current: usize,
    store: MetadataStore,
    trusted: TrustedSet,
    reference_time: DateTime<Utc>,
    /// The largest checkpoint accepted per log (the client is its own witness). Behind a lock
    /// because a download (`&self`) checks attestations' bundles too, and the state must
    /// never move backwards whichever check advanced it last.
    log_state: Mutex<LogState>,
    /// Metadata files (and proof bundles) accepted in this run, by their name on the server,
    /// when [`Updater::capture_metadata`] asked for them (a mirror publishes exactly these).
    captured: Option<Vec<(String, Vec<u8>)>>,
    /// A refresh succeeded: lookups need not refresh first.
    refreshed: bool,
}

impl std::fmt::Debug for Updater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Updater")
            .field("metadata_dir", &self.store.dir())
            .field("metadata_base_url", &self.metadata_base())
            .field("reference_time", &self.reference_time)
            .finish()
    }
}

fn check_url(what: &'static str, url: &str) -> Result<(), UpdateError> {
    if url.starts_with("https://") || url.starts_with("http://") {
        Ok(())
    } else {
        Err(UpdateError::BadUrl {
            what,
            url: url.to_string(),
        })
    }
}

impl Updater {
    /// Trust `root_bytes` as the initial root: it must parse and carry a threshold of its own
    /// signatures (its expiry is not checked here; the first refresh checks the final root's).
    /// The exact bytes are stored as `root.json`, replacing any trusted metadata in the directory.
    pub fn init(metadata_dir: &Path, root_bytes: &[u8]) -> Result<Root, UpdateError> {
        let trusted = TrustedSet::new(root_bytes, Utc::now()).map_err(|source| {
            UpdateError::BadInitialRoot {
                source: Box::new(source),
            }
        })?;
        let mut store = MetadataStore::open(metadata_dir)?;
        // A new trust anchor makes every other stored role meaningless.
        for entry in
            std::fs::read_dir(store.dir()).map_err(|source| crate::store::StoreError::Read {
                path: store.dir().to_path_buf(),
                source,
            })?
        {
            let Ok(entry) = entry else { continue };
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.ends_with(".json") && name != "root.json" {
                let path = entry.path();
                std::fs::remove_file(&path)
                    .map_err(|source| crate::store::StoreError::Write { path, source })?;
            }
        }
        store.store("root", root_bytes)?;
        Ok(trusted.root().signed.clone())
    }

    /// Load the trusted root from `config.metadata_dir`. No network access.
    pub fn new(config: UpdaterConfig) -> Result<Self, UpdateError> {
        check_url("metadata base URL", &config.metadata_base_url)?;
        if let Some(url) = &config.targets_base_url {
            check_url("targets base URL", url)?;
        }
        for m in &config.mirrors {
            if let Some(url) = &m.metadata_url {
                check_url("mirror metadata URL", url)?;
            }
            if let Some(url) = &m.targets_url {
                check_url("mirror targets URL", url)?;
            }
        }
        let mut mirrors = vec![Mirror {
            name: config.metadata_base_url.clone(),
            metadata_url: Some(config.metadata_base_url.clone()),
            targets_url: config.targets_base_url.clone(),
            target_paths: Vec::new(),
        }];
        mirrors.extend(config.mirrors.iter().cloned());
        let mirrors = MirrorSet::new(mirrors).map_err(UpdateError::Mirrors)?;
        // Not `open`: a failing run does not create a directory that was not there.
        let store = MetadataStore::existing(&config.metadata_dir);
        let root_bytes = store
            .load("root")?
            .ok_or_else(|| UpdateError::NotInitialised {
                dir: config.metadata_dir.clone(),
            })?;
        let reference_time = Utc::now();
        let trusted = TrustedSet::new(&root_bytes, reference_time).map_err(|source| {
            UpdateError::CorruptTrustedRoot {
                path: store.path_of("root"),
                source: Box::new(source),
            }
        })?;
        let log_state =
            LogState::load(&config.metadata_dir).map_err(|e| UpdateError::LogState(Box::new(e)))?;
        Ok(Self {
            mirrors: Mutex::new(mirrors),
            current: 0,
            config,
            store,
            trusted,
            reference_time,
            log_state: Mutex::new(log_state),
            captured: None,
            refreshed: false,
        })
    }

    /// From now on, keep a copy of every metadata file and proof bundle this updater accepts
    /// (see [`Updater::take_captured`]).
    pub fn capture_metadata(&mut self) {
        self.captured.get_or_insert_with(Vec::new);
    }

    /// The files accepted since [`Updater::capture_metadata`] (or the last call), each with its
    /// file name on the server (`3.root.json`, `timestamp.json`, `4.targets.json.tlog-proof`)
    /// and its exact bytes.
    pub fn take_captured(&mut self) -> Vec<(String, Vec<u8>)> {
        self.captured
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    fn capture(&mut self, url: &str, bytes: &[u8]) {
        if let Some(c) = &mut self.captured {
            let name = url.rsplit('/').next().unwrap_or(url);
            c.push((name.to_string(), bytes.to_vec()));
        }
    }

    /// The time every expiry is checked against.
    pub fn reference_time(&self) -> DateTime<Utc> {
        self.reference_time
    }

    /// The trust state (trusted root, timestamp, snapshot, targets roles).
    pub fn trusted(&self) -> &TrustedSet {
        &self.trusted
    }

    /// The transport, e.g. for its request counter.
    pub fn fetcher(&self) -> &Arc<Fetcher> {
        &self.config.fetcher
    }

    /// Refresh the top-level metadata: root rotation, timestamp, snapshot, targets (TUF 5.3 to
    /// 5.6). Delegated roles are loaded later, only when a target lookup needs them.
    ///
    /// With several mirrors, the whole refresh runs against one mirror; when that mirror fails
    /// (down, stalled, an HTTP error, or metadata the trust checks refuse), it starts again,
    /// from the root, on the next one. What was verified stays trusted, and starting from the
    /// root means a mirror that hid a new root (answering 404) cannot keep the client from it.
    pub fn refresh(&mut self) -> Result<RefreshSummary, UpdateError> {
        let mut tried = BTreeSet::new();
        let mut failed = Vec::new();
        loop {
            let next = self
                .mirror_set()
                .candidates(Use::Metadata)
                .into_iter()
                .find(|m| !tried.contains(m));
            let Some(m) = next else {
                return Err(no_mirror("the repository's metadata".into(), failed));
            };
            tried.insert(m);
            self.current = m;
            let started = Instant::now();
            let result = self.refresh_here();
            let result = self.commit_staged(result);
            match result {
                Ok(summary) => {
                    self.refreshed = true;
                    let elapsed = started.elapsed();
                    self.mirror_set()
                        .record_success(m, "metadata", Transfer { bytes: 0, elapsed });
                    return Ok(summary);
                }
                Err(e) => match mirror_failure(&e) {
                    Some(f) => {
                        let name = self.note_failure(m, "metadata", f, &e);
                        tracing::info!("mirror {name} failed: {}", airlock_core::error_chain(&e));
                        failed.push((name, e));
                    }
                    None => return Err(e),
                },
            }
        }
    }

    /// One refresh against the current mirror.
    fn refresh_here(&mut self) -> Result<RefreshSummary, UpdateError> {
        self.load_root()?;
        self.check_final_root_expiry()?;
        self.load_timestamp()?;
        self.load_snapshot()?;
        // The core decides: when nothing changed since the last update, the stored
        // targets.json (15 MB in a large flat repository) waits for the first lookup, which
        // runs every check on it (`load_targets_here` through the search).
        let stored_len = self.store.stored_len("targets");
        if self.trusted.top_level_targets_load(stored_len) == TargetsLoad::Now {
            self.load_targets_here("targets", "root")?;
        }
        self.summary()
    }

    /// Write what `result`'s call accepted (staged in the store) and make it durable, whether
    /// the call succeeded or not: what the core accepted stays accepted (a newer timestamp is
    /// the rollback baseline of the next run even when this one failed later). A failed write
    /// wins over the call's own error, which is logged: it is this machine's failure, the same
    /// whichever mirror is asked.
    fn commit_staged<T>(&mut self, result: Result<T, UpdateError>) -> Result<T, UpdateError> {
        match self.store.commit_staged() {
            Ok(()) => result,
            Err(e) => {
                if let Err(first) = &result {
                    tracing::info!(
                        "storing the accepted metadata failed; before that: {}",
                        airlock_core::error_chain(first)
                    );
                }
                Err(e.into())
            }
        }
    }

    /// The mirror set (a poisoned lock only means a panic elsewhere; the scores are still
    /// usable).
    /// The client's memory of the logs (see the field).
    pub(crate) fn log_state(&self) -> std::sync::MutexGuard<'_, LogState> {
        self.log_state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn mirror_set(&self) -> std::sync::MutexGuard<'_, MirrorSet> {
        self.mirrors
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn note_failure(&self, m: usize, file: &str, f: Failure, e: &UpdateError) -> String {
        let mut set = self.mirror_set();
        set.record_failure(m, file, f, airlock_core::error_chain(e));
        set.mirror(m).name.clone()
    }

    /// What each mirror did in this run, in the configured order.
    pub fn mirror_report(&self) -> Vec<MirrorReport> {
        self.mirror_set().report()
    }

    fn metadata_base(&self) -> String {
        let set = self.mirror_set();
        with_trailing_slash(
            set.mirror(self.current)
                .metadata_url
                .as_deref()
                .unwrap_or(""),
        )
    }

    fn summary(&self) -> Result<RefreshSummary, UpdateError> {
        let root = &self.trusted.root().signed;
        let version = |v: Option<u64>| v.unwrap_or(0);
        Ok(RefreshSummary {
            root_version: root.version,
            roots_rotated: self.trusted.root_rotations(),
            timestamp_version: version(self.trusted.timestamp().map(|t| t.signed.version)),
            snapshot_version: version(self.trusted.snapshot().map(|s| s.signed.version)),
            targets_version: version(self.trusted.targets().map(|t| t.signed.version).or_else(
                || {
                    self.trusted
                        .snapshot_entry("targets")
                        .ok()
                        .map(|m| m.version)
                },
            )),
            expires: root.expires.to_rfc3339(),
        })
    }

    fn metadata_url(&self, role: &str, version: Option<u64>) -> String {
        let name = encode_role_name(role);
        let base = self.metadata_base();
        match version {
            Some(v) => format!("{base}{v}.{name}.json"),
            None => format!("{base}{name}.json"),
        }
    }

    fn fetch_metadata(&self, role: &str, url: &str, max_len: u64) -> Result<Vec<u8>, UpdateError> {
        tracing::debug!("fetching {role} metadata from {url} (at most {max_len} bytes)");
        self.config
            .fetcher
            .fetch_capped(url, max_len)
            .map_err(|source| UpdateError::Fetch {
                role: role.to_string(),
                source,
            })
    }

    fn refused(role: &str, url: &str) -> impl FnOnce(TrustError) -> UpdateError {
        let role = role.to_string();
        let url = url.to_string();
        move |source| UpdateError::Refused {
            role,
            url,
            source: Box::new(source),
        }
    }

    /// TUF 5.3: fetch N+1.root.json until the repository has none (404), at most
    /// `max_root_rotations` times; each new root is checked by the core and stored as received.
    fn load_root(&mut self) -> Result<(), UpdateError> {
        let lower = self.trusted.root().signed.version.saturating_add(1);
        // The core refuses more than MAX_ROOT_ROTATIONS in one update whatever the setting.
        let cap = self
            .config
            .limits
            .max_root_rotations
            .min(MAX_ROOT_ROTATIONS);
        let upper = lower.saturating_add(u64::from(cap));
        for next in lower..upper {
            let url = self.metadata_url("root", Some(next));
            let bytes = match self
                .config
                .fetcher
                .fetch_capped(&url, self.config.limits.root_max_len)
            {
                Ok(bytes) => bytes,
                Err(e) if is_absent(&e) => break,
                Err(source) => {
                    return Err(UpdateError::Fetch {
                        role: "root".into(),
                        source,
                    });
                }
            };
            // A new root is shown to be logged under the policy of the root trusted before it.
            let policy = self.trusted.transparency().cloned();
            let bundle_url = format!("{url}{PROOF_SUFFIX}");
            let mut checker = LogChecker {
                fetcher: &self.config.fetcher,
                state: self
                    .log_state
                    .get_mut()
                    .unwrap_or_else(std::sync::PoisonError::into_inner),
                log_url: self.config.log_url.as_deref(),
                now: unix_seconds(self.reference_time),
            };
            let mut bundle = None;
            self.trusted
                .update_root_admitted(&bytes, |_| match &policy {
                    Some(p) => checker
                        .check_release(p, "root", next, &bytes, &bundle_url)
                        .map(|b| bundle = Some(b)),
                    None => Ok(()),
                })
                .map_err(|e| gated("root", next, &url, &bundle_url, e))?;
            self.capture(&url, &bytes);
            if let Some(b) = bundle {
                self.capture(&bundle_url, &b);
            }
            // Stored targets roles were checked under the old policy (or none): a root that
            // switches the policy on or changes it makes them unusable. Removed before the root
            // is stored, so that a run that stops here cannot leave them trusted.
            if let Some(now) = self.trusted.transparency()
                && Some(now) != policy.as_ref()
            {
                tracing::info!("the transparency policy changed: dropping stored targets roles");
                self.store.remove_targets_roles()?;
            }
            self.store.store("root", &bytes)?;
        }
        // TUF 5.3.11: after a timestamp or snapshot key rotation the stored timestamp and
        // snapshot are deleted, so that a version pushed up with a compromised key cannot block
        // the repository's recovery (fast-forward attack).
        if self.trusted.cached_timestamp_and_snapshot_invalid() {
            tracing::info!("timestamp or snapshot keys rotated: deleting the stored copies");
            self.store.remove("timestamp")?;
            self.store.remove("snapshot")?;
        }
        Ok(())
    }

    /// TUF 5.3.10: the final root must not be expired (intermediate roots may be). The core
    /// checks it again when the timestamp arrives; checking here names the right file.
    fn check_final_root_expiry(&self) -> Result<(), UpdateError> {
        let version = self.trusted.root().signed.version;
        self.trusted.check_final_root().map_err(Self::refused(
            "root",
            &self.metadata_url("root", Some(version)),
        ))
    }

    /// TUF 5.4: the stored timestamp (if it still verifies) is the base for the rollback check;
    /// the new one is stored only when the core accepted it and its version is new.
    fn load_timestamp(&mut self) -> Result<(), UpdateError> {
        if let Some(bytes) = self.store.load("timestamp")?
            && let Err(e) = self.trusted.load_cached_timestamp(&bytes)
        {
            tracing::info!(
                "stored timestamp not used as rollback baseline: {}",
                airlock_core::error_chain(&e)
            );
        }
        let url = self.metadata_url("timestamp", None);
        let bytes = self.fetch_metadata("timestamp", &url, self.config.limits.timestamp_max_len)?;
        let update = self
            .trusted
            .update_timestamp(&bytes)
            .map_err(Self::refused("timestamp", &url))?;
        self.capture(&url, &bytes);
        if update == TimestampUpdate::Updated {
            self.store.stage("timestamp", bytes);
        }
        Ok(())
    }

    /// TUF 5.5: a stored snapshot that still matches the timestamp is used as is; otherwise the
    /// one the timestamp names is fetched (version-prefixed with consistent snapshots).
    fn load_snapshot(&mut self) -> Result<(), UpdateError> {
        if let Some(bytes) = self.store.load("snapshot")? {
            match self.trusted.load_cached_snapshot(&bytes) {
                Ok(CachedSnapshot::Current) => return Ok(()),
                Ok(CachedSnapshot::Outdated) => {}
                Err(e) => tracing::info!(
                    "stored snapshot not used: {}",
                    airlock_core::error_chain(&e)
                ),
            }
        }
        let (version, length) = match self
            .trusted
            .timestamp()
            .and_then(|t| t.signed.snapshot_meta())
        {
            Some(meta) => (meta.version, meta.length),
            None => (0, None),
        };
        let url = self.metadata_url("snapshot", self.consistent().then_some(version));
        let max_len = capped_length(
            "snapshot",
            "timestamp",
            length,
            self.config.limits.snapshot_max_len,
        )?;
        let bytes = self.fetch_metadata("snapshot", &url, max_len)?;
        self.trusted
            .update_snapshot(&bytes)
            .map_err(Self::refused("snapshot", &url))?;
        self.capture(&url, &bytes);
        self.store.stage("snapshot", bytes);
        Ok(())
    }

    fn consistent(&self) -> bool {
        self.trusted.root().signed.consistent_snapshot == Some(true)
    }

    /// A delegated role for a lookup: the snapshot fixes which version is needed, so when the
    /// current mirror fails to deliver it the next mirror is asked for the same file.
    fn load_targets(&mut self, role: &str, delegator: &str) -> Result<(), UpdateError> {
        let mut tried = BTreeSet::new();
        let mut failed = Vec::new();
        loop {
            tried.insert(self.current);
            let m = self.current;
            match self.load_targets_here(role, delegator) {
                Ok(()) => return Ok(()),
                Err(e) => match mirror_failure(&e) {
                    Some(f) => {
                        let name = self.note_failure(m, role, f, &e);
                        failed.push((name, e));
                    }
                    None => return Err(e),
                },
            }
            let next = self
                .mirror_set()
                .candidates(Use::Metadata)
                .into_iter()
                .find(|m| !tried.contains(m));
            match next {
                Some(m) => self.current = m,
                None => return Err(no_mirror(format!("{role} metadata"), failed)),
            }
        }
    }

    /// TUF 5.6 (and 5.7 for delegated roles): load `role` as delegated by `delegator`, from the
    /// store when the stored copy is still what the snapshot lists, else from the current mirror.
    fn load_targets_here(&mut self, role: &str, delegator: &str) -> Result<(), UpdateError> {
        if self.trusted.targets_role(role, delegator).is_some() {
            return Ok(());
        }
        if let Some(bytes) = self.store.load(role)? {
            match self
                .trusted
                .update_delegated_targets(&bytes, role, delegator)
            {
                Ok(_) => return Ok(()),
                Err(e) => {
                    tracing::info!("stored {role} not used: {}", airlock_core::error_chain(&e))
                }
            }
        }
        let meta = self.trusted.snapshot_entry(role).map_err(|source| {
            // No URL to name: without a snapshot entry there is no version to ask for.
            Self::refused(role, &self.metadata_url(role, None))(source)
        })?;
        let (version, length) = (meta.version, meta.length);
        let url = self.metadata_url(role, self.consistent().then_some(version));
        let cap = if role == "targets" {
            self.config.limits.targets_max_len
        } else {
            self.config.limits.delegated_targets_max_len
        };
        let max_len = capped_length(role, "snapshot", length, cap)?;
        let bytes = self.fetch_metadata(role, &url, max_len)?;
        // Checked under the final root's policy, after the TUF checks, before it is trusted.
        let policy = self.trusted.transparency().cloned();
        let bundle_url = format!("{}{PROOF_SUFFIX}", self.metadata_url(role, Some(version)));
        let mut checker = LogChecker {
            fetcher: &self.config.fetcher,
            state: self
                .log_state
                .get_mut()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
            log_url: self.config.log_url.as_deref(),
            now: unix_seconds(self.reference_time),
        };
        let mut bundle = None;
        self.trusted
            .update_delegated_targets_admitted(&bytes, role, delegator, |md| match &policy {
                Some(p) => checker
                    .check_release(p, role, md.signed.version, &bytes, &bundle_url)
                    .map(|b| bundle = Some(b)),
                None => Ok(()),
            })
            .map_err(|e| gated(role, version, &url, &bundle_url, e))?;
        self.capture(&url, &bytes);
        if let Some(b) = bundle {
            self.capture(&bundle_url, &b);
        }
        self.store.stage(role, bytes);
        Ok(())
    }

    /// The trusted root's transparency policy, if it requires one.
    pub fn transparency(&self) -> Option<&TransparencyPolicy> {
        self.trusted.transparency()
    }

    /// The client's trusted cosigned checkpoint of the log the trusted root names (what
    /// `airlock update checkpoint` prints for peers to compare), if it has one.
    pub fn trusted_checkpoint(&self) -> Option<String> {
        self.trusted
            .transparency()
            .and_then(|p| self.log_state().checkpoint_note(p))
    }

    /// The peer check: ask every configured peer for its newest checkpoint of the log and
    /// compare it with the client's (signed by the log and the witness quorum; consistent,
    /// through the log's tiles when sizes differ). Held (`UpdateError::PeerCheck`) when a peer
    /// shows another tree, or fewer than `peers_required` agree; peers that did not answer are
    /// listed in the error or the report. Without a policy in the trusted root, or without
    /// peers, nothing is asked.
    pub fn check_peers(&mut self) -> Result<PeerReport, UpdateError> {
        let required = self.config.peers_required;
        let Some(policy) = self.trusted.transparency().cloned() else {
            return Ok(PeerReport {
                agreeing: 0,
                required,
                peers: Vec::new(),
                checkpoint_size: None,
            });
        };
        let mut checker = LogChecker {
            fetcher: &self.config.fetcher,
            state: self
                .log_state
                .get_mut()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
            log_url: self.config.log_url.as_deref(),
            now: unix_seconds(self.reference_time),
        };
        let mut tally = PeerTally::default();
        let mut peers = Vec::new();
        for peer in &self.config.peers {
            let verdict = checker.check_peer(&policy, peer);
            let shown = match &verdict {
                PeerVerdict::Agrees { size } => format!("agrees (size {size})"),
                PeerVerdict::Fork(e) => format!("DIFFERENT TREE: {}", airlock_core::error_chain(e)),
                PeerVerdict::Unusable(why) => format!("not counted: {why}"),
            };
            peers.push((peer.clone(), shown));
            tally.record(peer, verdict);
        }
        let agreeing = tally
            .decide(required)
            .map_err(|source| UpdateError::PeerCheck {
                origin: policy.log_origin().to_string(),
                source: Box::new(source),
            })?;
        Ok(PeerReport {
            agreeing,
            required,
            peers,
            checkpoint_size: self
                .log_state()
                .for_policy(&policy)
                .checkpoint(policy.log_origin())
                .map(|c| c.size),
        })
    }

    fn trusted_targets(&self, role: &str, delegator: &str) -> Option<&Targets> {
        self.trusted
            .targets_role(role, delegator)
            .map(|m: &Metadata<Targets>| &m.signed)
    }

    /// Find `target_path` by the pre-order depth-first search of TUF 5.6.7: roles in delegation
    /// order, a terminating delegation ends the search, at most `max_delegations` roles visited.
    /// Refreshes first if this updater has not refreshed yet. `Ok(None)` when no role lists it.
    pub fn get_target_info(
        &mut self,
        target_path: &str,
    ) -> Result<Option<TargetInfo>, UpdateError> {
        if !self.refreshed {
            self.refresh()?;
        }
        let mut search = TargetSearch::with_max_delegations(
            target_path,
            self.config.limits.max_delegations as usize,
        );
        match self.run_search(&mut search, &format!("target {target_path:?}"))? {
            SearchStep::Found { role, target } => Ok(Some(TargetInfo {
                path: target_path.to_string(),
                file: target,
                role,
            })),
            SearchStep::LimitReached => {
                tracing::info!(
                    "stopped looking for {target_path:?} after {} delegated roles \
                     (max_delegations)",
                    self.config.limits.max_delegations
                );
                Ok(None)
            }
            _ => Ok(None),
        }
    }

    /// Drive a core search to its end, loading each role it asks for. Returns the final step
    /// (never `NeedRole`). The roles it fetched are stored together at the end.
    fn run_search(
        &mut self,
        search: &mut TargetSearch,
        what: &str,
    ) -> Result<SearchStep, UpdateError> {
        let result = self.search_roles(search, what);
        self.commit_staged(result)
    }

    fn search_roles(
        &mut self,
        search: &mut TargetSearch,
        what: &str,
    ) -> Result<SearchStep, UpdateError> {
        loop {
            let step = search
                .step(&self.trusted)
                .map_err(|source| UpdateError::Search {
                    what: what.to_string(),
                    source,
                })?;
            match step {
                SearchStep::NeedRole { role, parent } => self.load_targets(&role, &parent)?,
                done => return Ok(done),
            }
        }
    }

    /// Every target the trusted metadata lists, delegated ones included as far as
    /// `max_delegations` roles reach (see [`Updater::list_targets_within`]).
    pub fn list_targets(&mut self) -> Result<Vec<TargetInfo>, UpdateError> {
        let max = self.config.limits.max_delegations;
        Ok(self.list_targets_within(max)?.targets)
    }

    /// Every target listed by the first `max_roles` targets roles (top-level included, and
    /// always read) in pre-order, delegation order: the core's [`TargetSearch::every_role`]
    /// decides which roles are read, as it does for a lookup. Each path found is then resolved
    /// by the same search as [`Updater::get_target_info`], so a path listed by a role that is
    /// not authorised for it is left out, and each is reported with the role a download would
    /// use. May fetch delegated roles; a role that fails its checks fails the listing.
    pub fn list_targets_within(&mut self, max_roles: u32) -> Result<TargetListing, UpdateError> {
        if !self.refreshed {
            self.refresh()?;
        }
        let max_delegations = max_roles.saturating_sub(1) as usize;
        let mut walk = TargetSearch::every_role(max_delegations);
        self.run_search(&mut walk, "the target listing")?;
        let mut candidates: BTreeSet<String> = BTreeSet::new();
        let mut roles_visited = 0u32;
        for (role, parent) in walk.visited_roles() {
            roles_visited = roles_visited.saturating_add(1);
            if let Some(targets) = self.trusted_targets(role, parent) {
                candidates.extend(targets.targets.keys().cloned());
            }
        }
        let roles_not_visited = usize::try_from(walk.roles_not_visited()).unwrap_or(usize::MAX);
        let mut targets = Vec::new();
        for path in candidates {
            if let Some(info) = self.get_target_info(&path)? {
                targets.push(info);
            }
        }
        Ok(TargetListing {
            targets,
            roles_visited,
            roles_not_visited,
        })
    }

    /// Where [`Updater::download_target`] puts `target_path` inside `target_dir` by default: the
    /// whole path percent-encoded into one file name (`a/b.txt` becomes `a%2Fb.txt`), so no
    /// target can name a file outside `target_dir`.
    pub fn local_target_path(target_dir: &Path, target_path: &str) -> PathBuf {
        target_dir.join(encode_target_file_name(target_path))
    }

    /// Is the target already at `dest` with its listed length and hashes, and may it be used?
    /// A copy on disk (an earlier run's, or one a crash left between download and install)
    /// meets the rebuilder policy like a download does: `Err` when it does not.
    pub fn find_cached_target(&self, info: &TargetInfo, dest: &Path) -> Result<bool, UpdateError> {
        let here =
            target::matches_on_disk(dest, &info.file).map_err(|source| UpdateError::Target {
                target: info.path.clone(),
                source,
            })?;
        if here {
            self.check_rebuilds(info)?;
        }
        Ok(here)
    }

    /// The URL a target is downloaded from: `dir/HASH.name` under the targets base URL when the
    /// trusted root sets `consistent_snapshot` (the first listed hash: sha256 before sha512),
    /// plain `dir/name` otherwise.
    pub fn target_url(&self, info: &TargetInfo) -> Result<String, UpdateError> {
        self.target_urls(info)?
            .into_iter()
            .next()
            .ok_or(UpdateError::NoTargetsBaseUrl)
    }

    /// Every URL the target may be at, in the order they are tried: with consistent snapshots
    /// one `dir/HASH.name` per listed hash (a repository may publish the file under only one of
    /// its hashes), otherwise the plain path.
    pub fn target_urls(&self, info: &TargetInfo) -> Result<Vec<String>, UpdateError> {
        let best = self.mirror_set().candidates(Use::Target(&info.path));
        let set = self.mirror_set();
        let base = best
            .first()
            .and_then(|&m| set.mirror(m).targets_url.clone())
            .ok_or(UpdateError::NoTargetsBaseUrl)?;
        Ok(self.target_urls_at(&base, info))
    }

    /// Where a mirror keeps `info` under its targets directory: the path a client asks for
    /// first (hash-prefixed with consistent snapshots), as a relative file path. `None` for a
    /// path that could not be a file below that directory (empty, `.` or `..` segments).
    pub fn target_store_path(&self, info: &TargetInfo) -> Option<PathBuf> {
        let name = match info.file.hashes.values().next() {
            Some(hash) if self.consistent() && self.config.prefix_targets_with_hash => {
                match info.path.rsplit_once('/') {
                    Some((dir, name)) => format!("{dir}/{hash}.{name}"),
                    None => format!("{hash}.{}", info.path),
                }
            }
            _ => info.path.clone(),
        };
        let safe = name
            .split('/')
            .all(|seg| !seg.is_empty() && seg != "." && seg != ".." && !seg.contains('\\'));
        safe.then(|| PathBuf::from(name))
    }

    /// [`Updater::target_urls`] under one mirror's targets base URL.
    fn target_urls_at(&self, base: &str, info: &TargetInfo) -> Vec<String> {
        let base = with_trailing_slash(base);
        let url = |path: &str| format!("{base}{}", encode_target_path(path));
        if !(self.consistent() && self.config.prefix_targets_with_hash)
            || info.file.hashes.is_empty()
        {
            return vec![url(&info.path)];
        }
        info.file
            .hashes
            .values()
            .map(|hash| match info.path.rsplit_once('/') {
                Some((dir, name)) => url(&format!("{dir}/{hash}.{name}")),
                None => url(&format!("{hash}.{}", info.path)),
            })
            .collect()
    }

    /// Download a target to `dest` (streamed, length-capped, every hash checked, atomic
    /// rename). `progress` gets (bytes so far, announced length). When a server has no file
    /// (404) under one hash-prefixed name, the next listed hash's name is tried. The mirrors
    /// that hold the target are asked in turn: one that fails, or serves bytes of another
    /// length or hash (then skipped for the rest of the run), is followed by the next; nothing
    /// but the listed bytes is ever kept.
    ///
    /// When a rebuilder policy applies (the trusted root's or the configuration's), the
    /// target's attestations are fetched and checked first, and a target without enough of
    /// them is refused before any byte of it is fetched ([`crate::rebuilds`]).
    pub fn download_target_with_progress(
        &self,
        info: &TargetInfo,
        dest: &Path,
        progress: Progress<'_>,
    ) -> Result<(), UpdateError> {
        self.check_rebuilds(info)?;
        self.download_unchecked(info, dest, progress)
    }

    /// [`Updater::download_target_with_progress`] without the rebuilder policy: for a delta's
    /// patch (its target was checked) and a mirror's copy.
    pub(crate) fn download_unchecked(
        &self,
        info: &TargetInfo,
        dest: &Path,
        progress: Progress<'_>,
    ) -> Result<(), UpdateError> {
        let candidates = self.mirror_set().candidates(Use::Target(&info.path));
        if candidates.is_empty() {
            return Err(if self.mirror_set().has_targets() {
                UpdateError::NoMirror {
                    what: format!("target {:?}", info.path),
                    attempts: vec!["no mirror's target paths cover it".into()],
                }
            } else {
                UpdateError::NoTargetsBaseUrl
            });
        }
        let target_err = |source| UpdateError::Target {
            target: info.path.clone(),
            source,
        };
        let mut partial = target::Partial::open(dest, &info.file).map_err(target_err)?;
        let mut failed = Vec::new();
        crate::fallback::prefetch(&self.config.fallback_sources, info);
        for m in candidates {
            let Some(base) = self.mirror_set().mirror(m).targets_url.clone() else {
                continue;
            };
            let started = Instant::now();
            let resumed = partial.held() > 0;
            let mut result = self.download_from(&base, info, &mut partial, &mut *progress);
            if resumed && result.as_ref().is_err_and(is_wrong_content) {
                // The bytes held came from an earlier attempt and may be what was wrong: this
                // mirror gets a clean attempt before it is judged (`check` dropped them).
                tracing::info!(
                    "resumed download of {:?} did not verify; starting over",
                    info.path
                );
                result = self.download_from(&base, info, &mut partial, &mut *progress);
            }
            match result {
                Ok(()) => {
                    partial.commit().map_err(target_err)?;
                    let elapsed = started.elapsed();
                    self.mirror_set().record_success(
                        m,
                        &info.path,
                        Transfer {
                            bytes: info.file.length,
                            elapsed,
                        },
                    );
                    return Ok(());
                }
                Err(e) => match mirror_failure(&e) {
                    Some(f) => {
                        let name = self.note_failure(m, &info.path, f, &e);
                        tracing::info!("mirror {name}: {}", airlock_core::error_chain(&e));
                        failed.push((name, e));
                    }
                    None => return Err(e),
                },
            }
        }
        let sources = &self.config.fallback_sources;
        if crate::fallback::fetch(sources, info, &mut partial, progress, &mut failed)? {
            return partial.commit().map_err(target_err);
        }
        // The bytes received stay beside `dest`, so that the next run goes on from them; an
        // empty partial file is not worth keeping.
        if partial.held() == 0 {
            partial.discard();
        }
        Err(no_mirror(format!("target {:?}", info.path), failed))
    }

    /// Fetch what `partial` lacks from one mirror (each hash-prefixed name tried on 404), then
    /// check the whole file.
    fn download_from(
        &self,
        base: &str,
        info: &TargetInfo,
        partial: &mut target::Partial<'_>,
        progress: Progress<'_>,
    ) -> Result<(), UpdateError> {
        let target_err = |source| UpdateError::Target {
            target: info.path.clone(),
            source,
        };
        let urls = self.target_urls_at(base, info);
        let last = urls.len().saturating_sub(1);
        for (i, url) in urls.iter().enumerate() {
            tracing::debug!(
                "downloading target {:?} from {url} (from byte {})",
                info.path,
                partial.held()
            );
            match partial.fetch(&self.config.fetcher, url, &mut *progress) {
                Ok(()) => return partial.check(url).map_err(target_err),
                Err(TargetFileError::Fetch(e)) if e.is_not_found() && i < last => {
                    tracing::debug!("{e}; trying the next hash-prefixed name");
                }
                Err(source) => return Err(target_err(source)),
            }
        }
        // Not reached: `target_urls_at` never returns an empty list.
        Err(UpdateError::NoTargetsBaseUrl)
    }

    /// [`Updater::download_target_with_progress`] without progress reports.
    pub fn download_target(&self, info: &TargetInfo, dest: &Path) -> Result<(), UpdateError> {
        self.download_target_with_progress(info, dest, &mut |_, _| {})
    }

    /// Look up `target_path`, and download it to `dest` unless a file with matching hashes is
    /// already there. Returns the target and whether it was downloaded.
    pub fn fetch_target(
        &mut self,
        target_path: &str,
        dest: &Path,
        progress: Progress<'_>,
    ) -> Result<(TargetInfo, bool), UpdateError> {
        let info =
            self.get_target_info(target_path)?
                .ok_or_else(|| UpdateError::TargetNotFound {
                    target: target_path.to_string(),
                })?;
        if self.find_cached_target(&info, dest)? {
            return Ok((info, false));
        }
        self.deliver_target(&info, dest, progress)?;
        Ok((info, true))
    }

    /// The configuration this updater was made with.
    pub fn config(&self) -> &UpdaterConfig {
        &self.config
    }

    /// Versions of the trusted top-level roles, for display.
    pub fn versions(&self) -> BTreeMap<&'static str, u64> {
        let mut out = BTreeMap::new();
        out.insert("root", self.trusted.root().signed.version);
        if let Some(t) = self.trusted.timestamp() {
            out.insert("timestamp", t.signed.version);
        }
        if let Some(s) = self.trusted.snapshot() {
            out.insert("snapshot", s.signed.version);
        }
        if let Some(t) = self.trusted.targets() {
            out.insert("targets", t.signed.version);
        }
        out
    }
}

/// How many bytes to read at most for `role`: the listed length, or the configured cap when none
/// is listed. A listed length above the cap is refused before any request.
fn capped_length(
    role: &str,
    listed_by: &str,
    listed: Option<u64>,
    max: u64,
) -> Result<u64, UpdateError> {
    match listed {
        Some(listed) if listed > max => Err(UpdateError::ListedLengthTooLarge {
            role: role.to_string(),
            listed_by: listed_by.to_string(),
            listed,
            max,
        }),
        Some(listed) => Ok(listed),
        None => Ok(max),
    }
}

/// POSIX seconds of `t` (0 before 1970).
fn unix_seconds(t: DateTime<Utc>) -> u64 {
    u64::try_from(t.timestamp()).unwrap_or(0)
}

/// The error of a gated core update: the TUF refusal, or the transparency refusal.
fn gated(
    role: &str,
    version: u64,
    url: &str,
    bundle_url: &str,
    e: Gated<LogCheckError>,
) -> UpdateError {
    match e {
        Gated::Trust(source) => UpdateError::Refused {
            role: role.to_string(),
            url: url.to_string(),
            source: Box::new(source),
        },
        Gated::Admit(source) => UpdateError::Transparency {
            role: role.to_string(),
            version,
            bundle_url: bundle_url.to_string(),
            source: Box::new(source),
        },
    }
}

/// A download whose bytes were refused (as opposed to one that did not arrive).
fn is_wrong_content(e: &UpdateError) -> bool {
    matches!(
        e,
        UpdateError::Target {
            source: TargetFileError::Length { .. } | TargetFileError::Hash { .. },
            ..
        }
    )
}

/// Whether an error is the mirror's doing (so another mirror may do better), and how.
/// `None`: a local failure or a decision of the trusted metadata itself, the same whichever
/// mirror is asked.
fn mirror_failure(e: &UpdateError) -> Option<Failure> {
    match e {
        UpdateError::Fetch { source, .. } => fetch_failure(source),
        UpdateError::Refused { .. } | UpdateError::Transparency { .. } => Some(Failure::Refused),
        UpdateError::Target { source, .. } => match source {
            TargetFileError::Fetch(f) => fetch_failure(f),
            TargetFileError::Length { .. } | TargetFileError::Hash { .. } => Some(Failure::Refused),
            TargetFileError::Io { .. } | TargetFileError::Source { .. } => None,
        },
        _ => None,
    }
}

fn fetch_failure(e: &FetchError) -> Option<Failure> {
    Some(match e {
        FetchError::NotFound { .. } => Failure::Missing,
        FetchError::HttpStatus { .. } | FetchError::Redirect { .. } => Failure::HttpError,
        FetchError::InvalidUrl { .. } => Failure::HttpError,
        // Longer than the trusted length, or a redirect to plain http: not an accident.
        FetchError::TooLarge { .. } | FetchError::InsecureUrl { .. } => Failure::Refused,
        FetchError::TooSlow { .. } | FetchError::Timeout { .. } => Failure::Stalled,
        FetchError::Tls { .. } | FetchError::Connect { .. } | FetchError::Transport { .. } => {
            Failure::Unreachable
        }
        FetchError::Write { .. } => return None,
    })
}

/// The error after every mirror failed: with one mirror, its own error unchanged.
fn no_mirror(what: String, mut failed: Vec<(String, UpdateError)>) -> UpdateError {
    if failed.len() == 1
        && let Some((_, e)) = failed.pop()
    {
        return e;
    }
    UpdateError::NoMirror {
        what,
        attempts: failed
            .iter()
            .map(|(name, e)| format!("{name}: {}", airlock_core::error_chain(e)))
            .collect(),
    }
}

/// The end of the root chain: 404, or 403 as some object stores answer for missing keys.
fn is_absent(e: &FetchError) -> bool {
    e.is_not_found() || matches!(e, FetchError::HttpStatus { status: 403, .. })
}
