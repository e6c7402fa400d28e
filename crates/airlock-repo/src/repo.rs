//! The repository on disk, its staged state, and the signing rules shared by every command.
//!
//! Layout:
//! ```text
//! REPO/
//!   .lock                      one command at a time
//!   keys/                      private key files (encrypted by default) and public keys
//!   work -> .work.d/00000007   staged state, replaced as a whole by each command:
//!       airlock-repo.toml      expiry periods, key index
//!       root.json              staged root (may be newer than the published one)
//!       targets.json           staged top-level targets
//!       delegated.json         every staged delegated role and hash bin, in one file
//!       pending-targets.json   target files added but not yet copied into published/targets
//!   published/                 what a web server serves
//!       metadata -> .metadata.d/00000004   N.root.json, root.json, N.targets.json, N.ROLE.json,
//!                                          N.snapshot.json, timestamp.json
//!       targets/DIR/SHA256.NAME            hash-prefixed target files (content-addressed)
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::path::{Path, PathBuf};

use airlock_core::crypto::Signer;
use airlock_core::tuf::metadata::{Metadata, Role, SignMode, Signature};
use airlock_core::tuf::roles::{Root, Snapshot, TOP_LEVEL_ROLES, Targets, Timestamp};
use airlock_core::tuf::verify::Authority;
use airlock_keystore::PassphraseSource;
use chrono::{DateTime, SubsecRound, Utc};

use crate::config::RepoConfig;
use crate::error::RepoError;
use crate::fsutil::{self, GenerationDir, NextGeneration, io_err};
use crate::keys::Keyring;

pub(crate) const CONFIG_FILE: &str = "airlock-repo.toml";
pub(crate) const PENDING_FILE: &str = "pending-targets.json";
/// Every delegated targets role (hash bins included) in one file: `{"ROLE": metadata, ...}`.
/// One file instead of one per role, because creating files is what costs most here (256 bins
/// would mean 256 new files per command).
pub(crate) const DELEGATED_FILE: &str = "delegated.json";

/// An open repository, locked for the lifetime of this value.
///
/// Every changing method either commits its whole change to disk or returns an error with the
/// disk untouched. After an error the in-memory value may hold part of the refused change:
/// drop it and [`Repository::open`] again (the CLI opens once per command).
pub struct Repository {
    pub(crate) dir: PathBuf,
    pub(crate) work: GenerationDir,
    pub(crate) published: GenerationDir,
    pub(crate) config: RepoConfig,
    pub(crate) root: Metadata<Root>,
    /// `targets` and every delegated role (hash bins included), by role name.
    pub(crate) targets: BTreeMap<String, Metadata<Targets>>,
    /// Target path -> source file, for files added but not yet copied into `published/targets`.
    pub(crate) pending: BTreeMap<String, PathBuf>,
    /// Staged files changed by this command (written at the next [`Repository::commit`]).
    pub(crate) dirty: BTreeSet<String>,
    pub(crate) keyring: Keyring,
    pub(crate) now: DateTime<Utc>,
    _lock: File,
}

impl std::fmt::Debug for Repository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Repository")
            .field("dir", &self.dir)
            .field("root_version", &self.root.signed.version)
            .field("targets_roles", &self.targets.len())
            .finish_non_exhaustive()
    }
}

/// What is live in `published/metadata` now.
#[derive(Clone, Debug, Default)]
pub(crate) struct PublishedState {
    pub root_version: u64,
    pub root: Option<Metadata<Root>>,
    pub timestamp: Option<Metadata<Timestamp>>,
    pub snapshot: Option<Metadata<Snapshot>>,
}

impl PublishedState {
    pub fn role_version(&self, role: &str) -> u64 {
        match role {
            "root" => self.root_version,
            _ => self
                .snapshot
                .as_ref()
                .and_then(|s| s.signed.role_meta(role))
                .map_or(0, |m| m.version),
        }
    }
}

pub(crate) fn work_dir(dir: &Path) -> GenerationDir {
    GenerationDir::new(dir.join("work"), dir.join(".work.d"))
}

pub(crate) fn published_dir(dir: &Path) -> GenerationDir {
    GenerationDir::new(
        dir.join("published").join("metadata"),
        dir.join("published").join(".metadata.d"),
    )
}

pub(crate) fn lock(dir: &Path) -> Result<File, RepoError> {
    let path = dir.join(".lock");
    let f = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| io_err(&path, e))?;
    match f.try_lock() {
        Ok(()) => Ok(f),
        Err(std::fs::TryLockError::WouldBlock) => Err(RepoError::Locked { path }),
        Err(std::fs::TryLockError::Error(e)) => Err(io_err(&path, e)),
    }
}

/// Read and parse one metadata file.
pub(crate) fn read_metadata<T: Role>(path: &Path) -> Result<Metadata<T>, RepoError> {
    let bytes = fs::read(path).map_err(|e| io_err(path, e))?;
    Metadata::<T>::from_bytes(&bytes)
        .map_err(|e| RepoError::metadata(path.display().to_string(), e))
}

/// The bytes of a metadata file: compact JSON. (Not canonical JSON: that form writes control
/// characters raw, e.g. the newlines of a PEM key, which JSON parsers refuse. Canonical JSON is
/// only the message that signatures cover.)
pub(crate) fn to_bytes<T: Role>(md: &Metadata<T>, name: &str) -> Result<Vec<u8>, RepoError> {
    serde_json::to_vec(md).map_err(|e| {
        RepoError::metadata(
            name,
            airlock_core::tuf::metadata::MetadataError::Malformed {
                role: T::TYPE,
                reason: e.to_string(),
            },
        )
    })
}

/// Read what `published/metadata` holds now (without verifying it; `verify` does that).
pub(crate) fn read_published(published: &GenerationDir) -> Result<PublishedState, RepoError> {
    let Some(dir) = published.current()? else {
        return Ok(PublishedState::default());
    };
    let mut state = PublishedState::default();
    for name in published.current_files()? {
        if let Some(v) = name
            .strip_suffix(".root.json")
            .and_then(|v| v.parse::<u64>().ok())
        {
            state.root_version = state.root_version.max(v);
        }
    }
    if state.root_version > 0 {
        state.root = Some(read_metadata(
            &dir.join(format!("{}.root.json", state.root_version)),
        )?);
    }
    let ts_path = dir.join("timestamp.json");
    if ts_path.exists() {
        let ts: Metadata<Timestamp> = read_metadata(&ts_path)?;
        if let Some(meta) = ts.signed.snapshot_meta() {
            let snap_path = dir.join(format!("{}.snapshot.json", meta.version));
            state.snapshot = Some(read_metadata(&snap_path)?);
        }
        state.timestamp = Some(ts);
    }
    Ok(state)
}

/// Validate a role name chosen by a user: it becomes a file name and a URL path segment.
pub(crate) fn check_role_name(name: &str) -> Result<(), RepoError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && name
            .as_bytes()
            .first()
            .is_some_and(u8::is_ascii_alphanumeric)
        // `Root.json` is `root.json` on a case-insensitive file system.
        && !TOP_LEVEL_ROLES.contains(&name.to_ascii_lowercase().as_str());
    if ok {
        Ok(())
    } else {
        Err(RepoError::invalid(format!(
            "role name {name:?}: use 1-64 ASCII letters, digits, '-', '_' or '.', starting with a \
             letter or digit, and not a top-level role name in any case"
        )))
    }
}

impl Repository {
    /// Open the repository in `dir` (taking its lock). `passphrase` decrypts key files when a
    /// command needs to sign; `None` means the `AIRLOCK_PASSPHRASE` environment variable.
    pub fn open(dir: &Path, passphrase: Option<PassphraseSource>) -> Result<Self, RepoError> {
        let config_path = dir.join("work").join(CONFIG_FILE);
        if !config_path.exists() {
            return Err(RepoError::NotARepository {
                path: dir.to_path_buf(),
            });
        }
        let lock = lock(dir)?;
        let work = work_dir(dir);
        let work_now = work.current()?.ok_or_else(|| RepoError::NotARepository {
            path: dir.to_path_buf(),
        })?;
        let text =
            fs::read_to_string(work_now.join(CONFIG_FILE)).map_err(|e| io_err(&config_path, e))?;
        let config = RepoConfig::from_toml(&text)
            .map_err(|reason| RepoError::config(&config_path, reason))?;
        let root: Metadata<Root> = read_metadata(&work_now.join("root.json"))?;
        let mut targets = BTreeMap::new();
        targets.insert(
            "targets".to_string(),
            read_metadata::<Targets>(&work_now.join("targets.json"))?,
        );
        let delegated_path = work_now.join(DELEGATED_FILE);
        if delegated_path.exists() {
            let bytes = fs::read(&delegated_path).map_err(|e| io_err(&delegated_path, e))?;
            let roles: BTreeMap<String, Metadata<Targets>> = serde_json::from_slice(&bytes)
                .map_err(|e| RepoError::config(&delegated_path, e.to_string()))?;
            for (role, md) in roles {
                check_role_name(&role)?;
                md.signed
                    .validate()
                    .map_err(|e| RepoError::metadata(format!("{DELEGATED_FILE}: {role}"), e))?;
                targets.insert(role, md);
            }
        }
        let pending_path = work_now.join(PENDING_FILE);
        let pending = if pending_path.exists() {
            let bytes = fs::read(&pending_path).map_err(|e| io_err(&pending_path, e))?;
            serde_json::from_slice(&bytes)
                .map_err(|e| RepoError::config(&pending_path, e.to_string()))?
        } else {
            BTreeMap::new()
        };
        Ok(Repository {
            dir: dir.to_path_buf(),
            work,
            published: published_dir(dir),
            config,
            root,
            targets,
            pending,
            dirty: BTreeSet::new(),
            keyring: Keyring::new(dir, passphrase),
            now: Utc::now().trunc_subsecs(0),
            _lock: lock,
        })
    }

    /// The repository directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// `published/`: the directory a web server serves (`metadata/` and `targets/` inside).
    pub fn published_path(&self) -> PathBuf {
        self.dir.join("published")
    }

    /// Use `now` instead of the system clock for expiry dates (tests, reproducible runs).
    pub fn set_time(&mut self, now: DateTime<Utc>) {
        self.now = now.trunc_subsecs(0);
    }

    pub fn config(&self) -> &RepoConfig {
        &self.config
    }

    /// The staged root.
    pub fn root(&self) -> &Metadata<Root> {
        &self.root
    }

    /// A staged targets role (`targets`, a delegated role or a hash bin).
    pub fn targets_role(&self, role: &str) -> Option<&Metadata<Targets>> {
        self.targets.get(role)
    }

    /// Names of every staged targets role.
    pub fn targets_roles(&self) -> impl Iterator<Item = &str> {
        self.targets.keys().map(String::as_str)
    }

    pub(crate) fn published_state(&self) -> Result<PublishedState, RepoError> {
        read_published(&self.published)
    }

    pub(crate) fn expires_for(&self, role: &str) -> DateTime<Utc> {
        self.now + self.config.expiry.for_role(role).to_duration()
    }

    /// The role that delegates to `role` (`None` for `targets`, whose keys root gives).
    pub(crate) fn delegator_of(&self, role: &str) -> Option<&str> {
        if role == "targets" {
            return None;
        }
        self.targets
            .iter()
            .find(|(_, md)| {
                md.signed
                    .delegations
                    .as_ref()
                    .is_some_and(|d| d.authority(role).is_some())
            })
            .map(|(name, _)| name.as_str())
    }

    /// Keys and threshold that must sign `role` in the staged state.
    pub(crate) fn authority(&self, role: &str) -> Option<Authority<'_>> {
        match role {
            "root" | "targets" | "snapshot" | "timestamp" => self.root.signed.authority(role),
            _ => {
                let parent = self.delegator_of(role)?;
                self.targets
                    .get(parent)?
                    .signed
                    .delegations
                    .as_ref()?
                    .authority(role)
            }
        }
    }

    /// Mark a staged role as changed: a new version above the published one, a fresh expiry,
    /// and no signatures (they covered the old content).
    pub(crate) fn touch(
        &mut self,
        role: &str,
        published: &PublishedState,
    ) -> Result<(), RepoError> {
        let published_version = published.role_version(role);
        let expires = self.expires_for(role);
        if role == "root" {
            let s = &mut self.root.signed;
            s.version = s.version.max(published_version + 1);
            s.expires = expires;
            self.root.signatures.clear();
        } else {
            let md = self
                .targets
                .get_mut(role)
                .ok_or_else(|| RepoError::UnknownRole(role.to_string()))?;
            md.signed.version = md.signed.version.max(published_version + 1);
            md.signed.expires = expires;
            md.signatures.clear();
        }
        self.dirty.insert(role.to_string());
        Ok(())
    }

    /// Sign a staged role with every key for it available on this machine. For root that is
    /// the keys of the new root and of the published root (a rotation needs both thresholds).
    /// Returns how many signatures were added.
    pub(crate) fn sign_available(
        &mut self,
        role: &str,
        published: &PublishedState,
    ) -> Result<usize, RepoError> {
        let mut keyids: Vec<String> = self
            .authority(role)
            .map(|a| a.keyids.to_vec())
            .unwrap_or_default();
        if role == "root"
            && let Some(old) = &published.root
            && let Some(a) = old.signed.authority("root")
        {
            for k in a.keyids {
                if !keyids.contains(k) {
                    keyids.push(k.clone());
                }
            }
        }
        let mut added = 0;
        for keyid in keyids {
            let Some(signer) = self.keyring.signer(&self.config, &keyid)? else {
                continue;
            };
            if role == "root" {
                self.root
                    .sign(signer, SignMode::Append)
                    .map_err(|e| RepoError::metadata("root.json", e))?;
            } else {
                let md = self
                    .targets
                    .get_mut(role)
                    .ok_or_else(|| RepoError::UnknownRole(role.to_string()))?;
                md.sign(signer as &dyn Signer, SignMode::Append)
                    .map_err(|e| RepoError::metadata(format!("{role}.json"), e))?;
            }
            added += 1;
        }
        self.dirty.insert(role.to_string());
        Ok(added)
    }

    /// Signature check of a staged role against the staged delegator (and, for a new root, the
    /// published root too). `Ok` when every threshold is met.
    pub(crate) fn check_signed(
        &self,
        role: &str,
        published: &PublishedState,
    ) -> Result<(), RepoError> {
        let (signatures, msg, version) = if role == "root" {
            (
                &self.root.signatures,
                self.root
                    .signed_bytes()
                    .map_err(|e| RepoError::metadata("root.json", e))?,
                self.root.signed.version,
            )
        } else {
            let md = self
                .targets
                .get(role)
                .ok_or_else(|| RepoError::UnknownRole(role.to_string()))?;
            (
                &md.signatures,
                md.signed_bytes()
                    .map_err(|e| RepoError::metadata(format!("{role}.json"), e))?,
                md.signed.version,
            )
        };
        let mut authorities = Vec::new();
        if let Some(a) = self.authority(role) {
            authorities.push(a);
        } else {
            return Err(RepoError::UnknownRole(role.to_string()));
        }
        if role == "root"
            && let Some(old) = &published.root
            && old.signed.version < self.root.signed.version
            && let Some(a) = old.signed.authority("root")
        {
            authorities.push(a);
        }
        for a in authorities {
            if let Err(e) = a.verify(signatures, &msg) {
                let missing = missing_signers(&a, signatures);
                return Err(RepoError::NotEnoughSignatures {
                    role: role.to_string(),
                    version,
                    valid: e.valid,
                    threshold: e.threshold,
                    missing: missing.join(", "),
                });
            }
        }
        Ok(())
    }

    /// Write every changed staged file (and the config) as a new generation of `work/`.
    pub(crate) fn commit(&mut self) -> Result<(), RepoError> {
        let mut next = NextGeneration::default();
        let config_text = self.config.to_toml().map_err(|reason| {
            RepoError::config(&self.dir.join("work").join(CONFIG_FILE), reason)
        })?;
        next.write
            .insert(CONFIG_FILE.to_string(), config_text.into_bytes());
        let pending = serde_json::to_vec(&self.pending).map_err(|e| {
            RepoError::config(&self.dir.join("work").join(PENDING_FILE), e.to_string())
        })?;
        next.write.insert(PENDING_FILE.to_string(), pending);
        let mut written: BTreeSet<&str> = BTreeSet::new();
        if self.dirty.contains("root") {
            next.write
                .insert("root.json".into(), to_bytes(&self.root, "root.json")?);
            written.insert("root.json");
        }
        if self.dirty.contains("targets")
            && let Some(md) = self.targets.get("targets")
        {
            next.write
                .insert("targets.json".into(), to_bytes(md, "targets.json")?);
            written.insert("targets.json");
        }
        if self
            .dirty
            .iter()
            // A delegated role changed or removed (`undelegate`): rewrite the file.
            .any(|r| r != "root" && r != "targets")
        {
            let delegated: BTreeMap<&String, &Metadata<Targets>> = self
                .targets
                .iter()
                .filter(|(name, _)| name.as_str() != "targets")
                .collect();
            let bytes = serde_json::to_vec(&delegated).map_err(|e| {
                RepoError::config(&self.dir.join("work").join(DELEGATED_FILE), e.to_string())
            })?;
            next.write.insert(DELEGATED_FILE.into(), bytes);
            written.insert(DELEGATED_FILE);
        }
        for name in self.work.current_files()? {
            let staged = matches!(name.as_str(), "root.json" | "targets.json" | DELEGATED_FILE);
            if staged && !written.contains(name.as_str()) {
                next.keep.push(name);
            }
        }
        self.work.commit(next)?;
        self.dirty.clear();
        Ok(())
    }
}

/// The authorised key ids without a signature entry, and the hybrid ones whose SLH-DSA entry is
/// missing (`KEYID (its SLH-DSA half)`).
pub(crate) fn missing_signers(a: &Authority<'_>, signatures: &[Signature]) -> Vec<String> {
    let signed: BTreeSet<&str> = signatures.iter().map(|s| s.keyid.as_str()).collect();
    let mut missing = Vec::new();
    for k in a.keyids {
        if !signed.contains(k.as_str()) {
            missing.push(k.clone());
        } else if let Some(pq) = a.pq_signature_keyid(k)
            && !signed.contains(pq.as_str())
        {
            missing.push(format!("{k} (its SLH-DSA half)"));
        }
    }
    missing
}

/// Create the repository directory skeleton (called by `init` before anything else).
pub(crate) fn create_skeleton(dir: &Path) -> Result<bool, RepoError> {
    let created = !dir.exists();
    if !created {
        let mut entries = fs::read_dir(dir).map_err(|e| io_err(dir, e))?;
        if entries.next().is_some() {
            return Err(RepoError::AlreadyExists {
                path: dir.to_path_buf(),
            });
        }
    }
    // The repository directory (when made here) and the published tree are 0755 whatever
    // the umask, so that a web server running as its own user can serve `published/`; the
    // private keys stay behind `keys/` (0700, files 0600).
    fsutil::create_public_dir_all(&dir.join("published").join("targets"))?;
    fs::create_dir_all(dir.join("keys")).map_err(|e| io_err(dir, e))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let keys = dir.join("keys");
        fs::set_permissions(&keys, fs::Permissions::from_mode(0o700))
            .map_err(|e| io_err(&keys, e))?;
    }
    fsutil::sync_dir(dir)?;
    Ok(created)
}
