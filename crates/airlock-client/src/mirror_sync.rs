//! Making and refreshing a mirror of a repository: everything it serves was accepted by the
//! client's own trust code first, and its metadata changes as a whole.
//!
//! Layout of a mirror directory (`airlock mirror sync --to DIR`):
//! - `DIR/public/`: what a static web server serves (its document root):
//!   `metadata` (a symbolic link to the current generation in `.metadata.d/`, see
//!   [`airlock_fs::generations`]) and `targets/` (hash-prefixed files that never change).
//! - `DIR/state/metadata/`: the sync's own trusted client state (like `airlock update`'s).
//!
//! One sync: refresh as a client (root rotations, timestamp, snapshot, targets, every delegated
//! role, each with its transparency proof when the root requires one), then place every target
//! the metadata lists that the mirror lacks (downloaded, verified, renamed into place; an
//! interrupted download goes on from its bytes at the next sync), and only then switch the
//! metadata generation: the files of the previous generation plus those accepted in this run.
//! A sync that fails at any point leaves the previous generation served. Only new or changed
//! files are fetched: the trusted state says which metadata is current, and a target already
//! under its hash-prefixed name was verified when it was placed.
//!
//! Root versions older than the trusted root the mirror starts from are fetched on the first
//! sync and accepted only as a chain of signatures that ends in exactly that root.
//!
//! When the root requires rebuilds (`x-airlock-rebuilders`), every attestation of a listed
//! target by a key of that policy is carried too, under `DIR/public/rebuilds/` (the layout of
//! docs/rebuild.md), each verified by that key for exactly the target's path, digest and length
//! before it is placed; one that does not verify is not served. Attestations never change under
//! their names, so they are placed before the metadata switch, like targets.
//!
//! When the root requires transparency, the mirror also serves the log's hash tiles under
//! `DIR/public/log/` (a client points `log_url` there): for every checkpoint its proof bundles
//! carry (verified against the root's log policy), the tiles of that tree, fetched from the
//! log's URL (or `log_url`) when the mirror lacks them and placed only once
//! `airlock_core::tlog::check_tiles` bound every hash to the checkpoint's root. Tiles never
//! change under their names (a partial tile has its width in its name), so they are placed
//! before the metadata switch, like targets.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use airlock_core::tlog::{Hash, MerkleError, ProofBundle, TileId, TileReader, check_tiles};
use airlock_core::transparency::{PROOF_SUFFIX, TransparencyPolicy};
use airlock_core::tuf::TrustedSet;
use airlock_fetch::Fetcher;
use airlock_fs::generations::{GenerationDir, NextGeneration, create_public_dir_all};

use crate::config::UpdaterConfig;
use crate::error::UpdateError;
use crate::transparency::{HttpTiles, tiles_base};
use crate::updater::Updater;

/// What a sync did.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct SyncReport {
    pub root_version: u64,
    pub timestamp_version: u64,
    /// Metadata files (proof bundles included) new in this generation.
    pub metadata_written: usize,
    /// Metadata files carried over from the previous generation.
    pub metadata_kept: usize,
    pub targets_fetched: usize,
    pub targets_present: usize,
    pub bytes_fetched: u64,
    /// Log tiles fetched in this run (transparency only).
    pub tiles_fetched: usize,
    /// Rebuilder attestations placed in this run (when the root requires rebuilds).
    pub attestations_fetched: usize,
}

/// Why a sync stopped; the mirror still serves its previous generation.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("syncing from the repository")]
    Update(#[from] UpdateError),
    #[error(
        "the repository does not use consistent snapshots (root consistent_snapshot is not \
         true): its files change under their names, so a mirror could not switch atomically"
    )]
    NotConsistent,
    #[error("root version {version} from {url}: {reason}")]
    RootHistory {
        version: u64,
        url: String,
        reason: String,
    },
    #[error("target {0:?} cannot be stored as a file below the mirror's targets directory")]
    TargetPath(String),
    #[error("proof bundle {name}: {reason}")]
    Bundle { name: String, reason: String },
    #[error(
        "the root requires transparency, but neither its policy nor log_url names where the \
         log's tiles are (a mirror serves them)"
    )]
    NoLogUrl,
    #[error("the log's tiles at {url} for the checkpoint of size {size}")]
    Tiles {
        url: String,
        size: u64,
        #[source]
        source: TileSyncFailure,
    },
    #[error("writing the mirror")]
    Fs(#[from] airlock_fs::FsError),
}

/// Why the log's tiles were not placed.
#[derive(Debug, thiserror::Error)]
pub enum TileSyncFailure {
    #[error("downloading")]
    Fetch(#[source] airlock_fetch::FetchError),
    #[error("they do not make up the checkpoint's tree")]
    Check(#[source] airlock_core::tlog::TileSetError),
}

/// The directories of a mirror under `dir`.
pub struct MirrorDirs {
    pub public: PathBuf,
    pub state: PathBuf,
}

impl MirrorDirs {
    pub fn new(dir: &Path) -> Self {
        MirrorDirs {
            public: dir.join("public"),
            state: dir.join("state"),
        }
    }

    /// The client's trusted metadata of the sync.
    pub fn metadata_state(&self) -> PathBuf {
        self.state.join("metadata")
    }

    fn generations(&self) -> GenerationDir {
        GenerationDir::new(
            self.public.join("metadata"),
            self.public.join(".metadata.d"),
        )
    }
}

/// Sync the mirror in `dirs` from the repository `config` names (its `metadata_dir` is
/// replaced by the mirror's state). `trusted_root` is used the first time only; later syncs
/// start from the root their state trusts.
pub fn sync(
    config: UpdaterConfig,
    dirs: &MirrorDirs,
    trusted_root: &[u8],
) -> Result<SyncReport, SyncError> {
    // The sync works on a copy of its trusted state, which replaces the state only once the
    // mirror serves what it accepted: a sync that fails after the refresh must find the same
    // new metadata again next time, or the mirror would never publish it.
    let trusted_state = dirs.metadata_state();
    dirs.recover_state()?;
    let metadata_state = dirs.state.join("metadata.next");
    remove_dir_if_there(&metadata_state)?;
    let first = !trusted_state.join("root.json").exists();
    let generations = dirs.generations();
    // What the mirror serves now (nothing below changes it until the new generation).
    let current = generations.current_files()?;
    let served_nothing = current.is_empty();
    if first {
        Updater::init(&metadata_state, trusted_root)?;
    } else if served_nothing {
        // The public tree is gone (the state is not): start from the trusted root alone, so
        // that every current metadata file is fetched, accepted and published again.
        let root_path = trusted_state.join("root.json");
        let root = std::fs::read(&root_path).map_err(fs_err("reading", &root_path))?;
        Updater::init(&metadata_state, &root)?;
    } else {
        copy_flat_dir(&trusted_state, &metadata_state)?;
    }
    let fetcher = config.fetcher.clone();
    let limits = config.limits;
    let log_url = config.log_url.clone();
    let base = crate::config::with_trailing_slash(&config.metadata_base_url);
    let mut updater = Updater::new(UpdaterConfig {
        metadata_dir: metadata_state.clone(),
        ..config
    })?;
    let start_version = updater.trusted().root().signed.version;
    // The root the sync starts from: the given one on a first sync, the one its state trusts
    // later (a mirror whose public tree was deleted is rebuilt from it).
    let start_root_path = metadata_state.join("root.json");
    let start_root =
        std::fs::read(&start_root_path).map_err(fs_err("reading", &start_root_path))?;
    updater.capture_metadata();
    let summary = updater.refresh()?;
    if updater.trusted().root().signed.consistent_snapshot != Some(true) {
        return Err(SyncError::NotConsistent);
    }
    let listing = updater.list_targets_within(u32::MAX)?;
    let mut captured = updater.take_captured();
    let policy = updater.transparency().cloned();
    let now = u64::try_from(updater.reference_time().timestamp()).unwrap_or(0);

    if current.is_empty() {
        // A new mirror: the roots before the one it starts from, for clients that are behind.
        captured.extend(root_history(
            &fetcher,
            &base,
            &start_root,
            start_version,
            &limits,
        )?);
    }

    // Targets first: nothing refers to them until the metadata switch.
    let targets_dir = dirs.public.join("targets");
    create_public_dir_all(&targets_dir)?;
    let mut report = SyncReport {
        root_version: summary.root_version,
        timestamp_version: summary.timestamp_version,
        ..SyncReport::default()
    };
    // Each target's patches (its signed custom `delta` field) are carried like targets, so a
    // client asking this mirror can update by patch.
    let files = listing
        .targets
        .iter()
        .flat_map(|t| std::iter::once(t.clone()).chain(crate::delta::patch_targets(t)));
    for info in files {
        let info = &info;
        let Some(rel) = updater.target_store_path(info) else {
            return Err(SyncError::TargetPath(info.path.clone()));
        };
        let dest = targets_dir.join(&rel);
        if std::fs::metadata(&dest).is_ok_and(|m| m.is_file() && m.len() == info.file.length) {
            report.targets_present += 1;
            continue;
        }
        if let Some(parent) = dest.parent() {
            create_public_dir_all(parent)?;
        }
        // A mirror copies; whether the target is attested is each client's check.
        updater.download_unchecked(info, &dest, &mut |_, _| {})?;
        report.targets_fetched += 1;
        report.bytes_fetched += info.file.length;
    }
    report.attestations_fetched = updater.mirror_attestations(&listing.targets, &dirs.public)?;

    let written: BTreeMap<String, Vec<u8>> = captured.into_iter().collect();
    if let Some(policy) = &policy {
        // The bundles the mirror will serve: those accepted now and those it keeps.
        let mut bundles: Vec<(String, Vec<u8>)> = written
            .iter()
            .filter(|(name, _)| name.ends_with(PROOF_SUFFIX))
            .map(|(n, b)| (n.clone(), b.clone()))
            .collect();
        if let Some(dir) = generations.current()? {
            for name in current.iter().filter(|n| n.ends_with(PROOF_SUFFIX)) {
                if !written.contains_key(name) {
                    let path = dir.join(name);
                    bundles.push((
                        name.clone(),
                        std::fs::read(&path).map_err(fs_err("reading", &path))?,
                    ));
                }
            }
        }
        let base = tiles_base(policy, log_url.as_deref()).ok_or(SyncError::NoLogUrl)?;
        report.tiles_fetched = sync_tiles(
            &fetcher,
            &base,
            policy,
            &bundles,
            &dirs.public.join("log"),
            now,
        )?;
    }

    let keep: Vec<String> = current
        .into_iter()
        .filter(|name| !written.contains_key(name))
        .collect();
    report.metadata_kept = keep.len();
    report.metadata_written = written.len();
    generations.commit(NextGeneration {
        keep,
        write: written,
    })?;
    dirs.replace_state(&metadata_state)?;
    Ok(report)
}

/// Place under `log_dir` the tiles of every checkpoint in `bundles` that the mirror lacks,
/// each tree checked against its checkpoint first. Returns how many tiles were fetched.
fn sync_tiles(
    fetcher: &Fetcher,
    base: &str,
    policy: &TransparencyPolicy,
    bundles: &[(String, Vec<u8>)],
    log_dir: &Path,
    now: u64,
) -> Result<usize, SyncError> {
    let mut trees: BTreeSet<(u64, Hash)> = BTreeSet::new();
    for (name, bytes) in bundles {
        let refused = |reason: String| SyncError::Bundle {
            name: name.clone(),
            reason,
        };
        let bundle =
            ProofBundle::parse(bytes).map_err(|e| refused(airlock_core::error_chain(&e)))?;
        let accepted = policy
            .policy()
            .verify_checkpoint(&bundle.checkpoint, now)
            .map_err(|e| refused(airlock_core::error_chain(&e)))?;
        let c = accepted.checkpoint();
        trees.insert((c.size, c.root_hash));
    }
    let mut fetched = 0;
    for (size, root) in trees {
        let tiles_err = |source| SyncError::Tiles {
            url: base.to_string(),
            size,
            source,
        };
        let mut tiles = MirrorTiles {
            dir: Some(log_dir),
            http: HttpTiles::new(fetcher, base),
            fetched: RefCell::new(BTreeMap::new()),
        };
        let mut checked = check_tiles(size, &root, &tiles);
        if checked.is_err() && tiles.http.take_failure().is_none() {
            // A tile the mirror holds may have been damaged since it was placed: the whole
            // tree once more from the log alone (what checks out then replaces it).
            tracing::info!("the tiles of tree size {size} did not check out; fetching all again");
            tiles = MirrorTiles { dir: None, ..tiles };
            tiles.fetched.borrow_mut().clear();
            checked = check_tiles(size, &root, &tiles);
        }
        if let Err(e) = checked {
            return Err(tiles_err(match tiles.http.take_failure() {
                Some(f) => TileSyncFailure::Fetch(f),
                None => TileSyncFailure::Check(e),
            }));
        }
        for (path, bytes) in tiles.fetched.into_inner() {
            let dest = log_dir.join(&path);
            if let Some(parent) = dest.parent() {
                create_public_dir_all(parent)?;
            }
            airlock_fs::write_atomic(&dest, &bytes, &airlock_fs::WriteOptions::public())?;
            fetched += 1;
        }
    }
    Ok(fetched)
}

/// The tiles a mirror has, else the log's (kept aside until the whole tree checks out).
struct MirrorTiles<'a> {
    /// The mirror's tiles; none to read every tile from the log.
    dir: Option<&'a Path>,
    http: HttpTiles<'a>,
    fetched: RefCell<BTreeMap<String, Vec<u8>>>,
}

impl TileReader for MirrorTiles<'_> {
    fn read_tile(&self, tile: &TileId) -> Result<Vec<u8>, MerkleError> {
        let path = tile.path();
        if let Some(b) = self.fetched.borrow().get(&path) {
            return Ok(b.clone());
        }
        // Placed by an earlier sync, after its tree was checked.
        if let Some(dir) = self.dir
            && let Ok(b) = std::fs::read(dir.join(&path))
            && b.len() == tile.hash_tile_len()
        {
            return Ok(b);
        }
        // The log may answer for a partial tile with the full one that replaced it: the mirror
        // keeps the partial tile's own hashes under its own name.
        let mut bytes = self.http.read_tile(tile)?;
        bytes.truncate(tile.hash_tile_len());
        self.fetched.borrow_mut().insert(path, bytes.clone());
        Ok(bytes)
    }
}

fn fs_err(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> airlock_fs::FsError {
    let path = path.to_path_buf();
    move |e| airlock_fs::FsError::new(op, path, e)
}

fn remove_dir_if_there(dir: &Path) -> Result<(), airlock_fs::FsError> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(fs_err("removing", dir)(e)),
        _ => Ok(()),
    }
}

/// Copy the regular files of `from` (a client's metadata directory: no subdirectories).
fn copy_flat_dir(from: &Path, to: &Path) -> Result<(), airlock_fs::FsError> {
    std::fs::create_dir_all(to).map_err(fs_err("creating", to))?;
    for entry in std::fs::read_dir(from).map_err(fs_err("listing", from))? {
        let entry = entry.map_err(fs_err("listing", from))?;
        let path = entry.path();
        if entry
            .file_type()
            .map_err(fs_err("inspecting", &path))?
            .is_file()
        {
            std::fs::copy(&path, to.join(entry.file_name())).map_err(fs_err("copying", &path))?;
        }
    }
    Ok(())
}

impl MirrorDirs {
    fn old_state(&self) -> PathBuf {
        self.state.join("metadata.old")
    }

    /// Finish a state swap a crash interrupted.
    fn recover_state(&self) -> Result<(), airlock_fs::FsError> {
        let (current, old) = (self.metadata_state(), self.old_state());
        if !current.exists() && old.exists() {
            std::fs::rename(&old, &current).map_err(fs_err("restoring", &current))?;
        }
        remove_dir_if_there(&old)
    }

    /// Make `next` the trusted state (two renames; [`MirrorDirs::recover_state`] finishes them
    /// after a crash).
    fn replace_state(&self, next: &Path) -> Result<(), airlock_fs::FsError> {
        let (current, old) = (self.metadata_state(), self.old_state());
        if current.exists() {
            std::fs::rename(&current, &old).map_err(fs_err("moving aside", &current))?;
        }
        std::fs::rename(next, &current).map_err(fs_err("installing", &current))?;
        airlock_fs::sync_dir(&self.state)?;
        remove_dir_if_there(&old)
    }
}

/// Root versions 1..`upto` (those before the trusted root at `upto`), fetched from `base` and
/// accepted only if each is signed by the one before it and the chain ends in `trusted_root`.
fn root_history(
    fetcher: &airlock_fetch::Fetcher,
    base: &str,
    trusted_root: &[u8],
    upto: u64,
    limits: &crate::config::Limits,
) -> Result<Vec<(String, Vec<u8>)>, SyncError> {
    if upto <= 1 {
        return Ok(vec![("1.root.json".into(), trusted_root.to_vec())]);
    }
    let mut files = Vec::new();
    let mut chain: Option<TrustedSet> = None;
    for version in 1..upto {
        let name = format!("{version}.root.json");
        let url = format!("{base}{name}");
        let bytes = fetcher
            .fetch_capped(&url, limits.root_max_len)
            .map_err(|e| SyncError::RootHistory {
                version,
                url: url.clone(),
                reason: airlock_core::error_chain(&e),
            })?;
        let refused = |reason: String| SyncError::RootHistory {
            version,
            url: url.clone(),
            reason,
        };
        match &mut chain {
            None => {
                chain = Some(
                    TrustedSet::new(&bytes, chrono::Utc::now())
                        .map_err(|e| refused(airlock_core::error_chain(&e)))?,
                );
            }
            Some(c) => {
                c.update_root(&bytes)
                    .map_err(|e| refused(airlock_core::error_chain(&e)))?;
            }
        }
        files.push((name, bytes));
    }
    if let Some(c) = &mut chain {
        c.update_root(trusted_root)
            .map_err(|e| SyncError::RootHistory {
                version: upto,
                url: "the trusted root".into(),
                reason: format!(
                    "not signed by root version {} from the repository: {}",
                    upto - 1,
                    airlock_core::error_chain(&e)
                ),
            })?;
    }
    files.push((format!("{upto}.root.json"), trusted_root.to_vec()));
    Ok(files)
}
