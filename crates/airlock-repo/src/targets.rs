//! Adding and removing target files: collecting, hashing (in parallel), routing each target to
//! the role a client will look in, and copying files into `published/targets` at publish time.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use airlock_core::rebuild::RebuildInfo;
use airlock_core::rebuild::recipe::CUSTOM_FIELD as REBUILD_FIELD;
use airlock_core::tuf::roles::TargetFile;
use rayon::prelude::*;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use airlock_fs::{AtomicFile, WriteOptions};

use crate::error::RepoError;
use crate::fsutil::io_err;
use crate::repo::Repository;

/// Custom metadata attached to added targets (in the target's `custom`).
#[derive(Clone, Debug, Default)]
pub struct TargetCustom {
    /// Release version, e.g. `1.4.2`.
    pub version: Option<String>,
    /// Release channel, e.g. `stable`.
    pub channel: Option<String>,
    /// Where rebuilders find the source, e.g. `git+https://example.org/app@v1.4.2`.
    pub source_ref: Option<String>,
    /// Staged rollout: the share of machines (0 to 100) an update agent offers it to
    /// (docs/agent.md); none means every machine.
    pub rollout_percent: Option<u8>,
    /// Source reference and build recipe for rebuilders (`custom.rebuild`, docs/rebuild.md).
    pub rebuild: Option<RebuildInfo>,
}

impl TargetCustom {
    fn to_value(&self) -> Option<Value> {
        let mut m = Map::new();
        for (k, v) in [
            ("version", &self.version),
            ("channel", &self.channel),
            ("source_ref", &self.source_ref),
        ] {
            if let Some(v) = v {
                m.insert(k.to_string(), Value::String(v.clone()));
            }
        }
        if let Some(p) = self.rollout_percent {
            m.insert("rollout_percent".to_string(), Value::from(p));
        }
        if let Some(r) = &self.rebuild {
            m.insert(REBUILD_FIELD.to_string(), r.to_value());
        }
        (!m.is_empty()).then_some(Value::Object(m))
    }
}

/// `custom` with a `delta` field listing `patches` (unchanged when there are none).
fn with_delta(custom: Option<Value>, patches: &[airlock_core::delta::Patch]) -> Option<Value> {
    if patches.is_empty() {
        return custom;
    }
    let mut m = match custom {
        Some(Value::Object(m)) => m,
        _ => Map::new(),
    };
    m.insert("delta".into(), airlock_core::delta::field_value(patches));
    Some(Value::Object(m))
}

/// What to add: a file or a directory (walked recursively), under a target path prefix.
#[derive(Clone, Debug)]
pub struct AddSource {
    pub path: PathBuf,
    /// Target path of a single file, or the prefix (ending in `/`, or empty) under which a
    /// directory's files (or a file's name) are listed.
    pub target: TargetName,
}

#[derive(Clone, Debug)]
pub enum TargetName {
    /// Use this exact target path (files only).
    Exact(String),
    /// Prefix + the file name (for a file) or the path relative to the directory.
    Prefix(String),
}

/// Options for [`Repository::add_targets`].
#[derive(Clone, Debug, Default)]
pub struct AddOptions {
    pub custom: TargetCustom,
    /// Put every target in this role instead of the one a client's search would reach first.
    pub role: Option<String>,
    /// Patches from this many earlier versions of the same target path (crate::delta).
    pub deltas: usize,
    /// Patches from the staged version of each of these target paths.
    pub delta_from: Vec<String>,
    /// Make a .torrent of each file: its info hash goes into the target's signed custom
    /// metadata (`bittorrent`), the file beside the target in `published/targets`.
    pub torrent: Option<std::sync::Arc<dyn TorrentMaker>>,
}

/// A .torrent made of one target file.
#[derive(Clone, Debug)]
pub struct MadeTorrent {
    /// BitTorrent v1 info hash (SHA-1 of the info dictionary), 40 lowercase hex digits.
    pub btih: String,
    /// BitTorrent v2 info hash (SHA-256), 64 hex digits, when the maker supports v2.
    pub btmh: Option<String>,
    /// The bencoded .torrent file.
    pub torrent: Vec<u8>,
}

/// Makes a .torrent of one file (provided by the BitTorrent transport, which this crate does
/// not link).
pub trait TorrentMaker: std::fmt::Debug + Send + Sync {
    /// The torrent of `file`, whose one file is named `name` in the torrent (the name the
    /// target has in `published/targets`, so that a seeder finds it there).
    fn make(
        &self,
        file: &Path,
        name: &str,
    ) -> Result<MadeTorrent, Box<dyn std::error::Error + Send + Sync>>;
}

/// Where the .torrent of a target listed with `sha256` lies under `published/targets`.
pub fn torrent_file_path(path: &str, sha256: &str) -> String {
    format!("{}.torrent", hashed_target_path(path, sha256))
}

/// `custom` with the `bittorrent` entry of `made` (a target's custom metadata is an object).
fn with_torrent(custom: Option<Value>, made: &MadeTorrent) -> Value {
    let mut m = match custom {
        Some(Value::Object(m)) => m,
        _ => Map::new(),
    };
    let mut bt = Map::new();
    bt.insert("btih".into(), Value::String(made.btih.clone()));
    if let Some(v2) = &made.btmh {
        bt.insert("btmh".into(), Value::String(v2.clone()));
    }
    m.insert("bittorrent".into(), Value::Object(bt));
    Value::Object(m)
}

/// What [`Repository::add_targets`] did.
#[derive(Clone, Debug, serde::Serialize)]
pub struct AddReport {
    pub added: usize,
    /// The target paths added, in order.
    pub targets: Vec<String>,
    pub bytes: u64,
    /// Roles changed (new versions, re-signed where keys were available).
    pub roles: Vec<String>,
    /// Roles that still need signatures (keys offline).
    pub unsigned: Vec<String>,
    /// Patches made (or not) from earlier versions.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub patches: Vec<crate::delta::PatchReport>,
    /// With a [`TorrentMaker`]: each target's v1 info hash (for a private tracker's list).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub torrents: BTreeMap<String, String>,
}

/// Check a target path. It becomes a file path under `published/targets` and, unescaped, part
/// of the URL every client fetches, so it must be relative, `/`-separated, without empty, `.`
/// or `..` segments, backslashes or control characters, and without `%`, `#` or `?` (a URL
/// would read them as an escape, a fragment or a query: python-tuf and tough cannot fetch such
/// a target).
pub fn check_target_path(path: &str) -> Result<(), RepoError> {
    let bad = |why: &str| RepoError::Target {
        path: path.to_string(),
        reason: why.to_string(),
    };
    if path.is_empty() || path.len() > 1024 {
        return Err(bad("must be 1 to 1024 bytes long"));
    }
    if path.chars().any(char::is_control) {
        return Err(bad("contains a control character"));
    }
    if path.contains('\\') {
        return Err(bad("contains a backslash"));
    }
    if let Some(c) = path.chars().find(|c| matches!(c, '%' | '#' | '?')) {
        return Err(bad(&format!(
            "contains '{c}', which a URL reads as an escape, a fragment or a query: no client could fetch it"
        )));
    }
    if path.starts_with('/') {
        return Err(bad("has a leading '/' (target paths are relative)"));
    }
    for seg in path.split('/') {
        if seg.is_empty() {
            return Err(bad("has an empty segment ('//' or a trailing '/')"));
        }
        if seg == "." || seg == ".." {
            return Err(bad(&format!("has a '{seg}' segment")));
        }
        if seg.len() > 180 {
            return Err(bad("has a segment longer than 180 bytes"));
        }
    }
    Ok(())
}

/// The hash-prefixed file name of a target under `targets/`: `DIR/SHA256.NAME`.
pub fn hashed_target_path(path: &str, sha256: &str) -> String {
    match path.rsplit_once('/') {
        Some((dir, name)) => format!("{dir}/{sha256}.{name}"),
        None => format!("{sha256}.{path}"),
    }
}

/// Collect `(target path, source file)` pairs, refusing duplicates and symbolic links.
pub(crate) fn collect(sources: &[AddSource]) -> Result<Vec<(String, PathBuf)>, RepoError> {
    let mut out = Vec::new();
    for src in sources {
        let meta = fs::symlink_metadata(&src.path).map_err(|e| io_err(&src.path, e))?;
        // Absolute paths, so that `publish` finds the files whatever its working directory.
        let base = fs::canonicalize(&src.path).map_err(|e| io_err(&src.path, e))?;
        if meta.is_file() {
            let name = match &src.target {
                TargetName::Exact(t) => t.clone(),
                TargetName::Prefix(p) => {
                    let file = src
                        .path
                        .file_name()
                        .and_then(|n| n.to_str())
                        .ok_or_else(|| {
                            RepoError::invalid(format!(
                                "{}: file name is not UTF-8",
                                src.path.display()
                            ))
                        })?;
                    format!("{p}{file}")
                }
            };
            out.push((name, base));
        } else if meta.is_dir() {
            let prefix = match &src.target {
                TargetName::Prefix(p) => p.clone(),
                TargetName::Exact(_) => {
                    return Err(RepoError::invalid(format!(
                        "{} is a directory: give a prefix, not an exact target path",
                        src.path.display()
                    )));
                }
            };
            for entry in walkdir::WalkDir::new(&base).sort_by_file_name() {
                let entry = entry.map_err(|e| {
                    let path = e.path().unwrap_or(&src.path).to_path_buf();
                    io_err(&path, e.into())
                })?;
                let ft = entry.file_type();
                if ft.is_dir() {
                    continue;
                }
                if !ft.is_file() {
                    return Err(RepoError::invalid(format!(
                        "{} is not a regular file (symbolic links are not followed)",
                        entry.path().display()
                    )));
                }
                let rel = entry
                    .path()
                    .strip_prefix(&base)
                    .map_err(|_| RepoError::invalid("walked outside the directory"))?;
                let mut parts = Vec::new();
                for c in rel.components() {
                    parts.push(c.as_os_str().to_str().ok_or_else(|| {
                        RepoError::invalid(format!("{}: path is not UTF-8", entry.path().display()))
                    })?);
                }
                out.push((
                    format!("{prefix}{}", parts.join("/")),
                    entry.path().to_path_buf(),
                ));
            }
        } else {
            return Err(RepoError::invalid(format!(
                "{} is neither a regular file nor a directory (symbolic links are not followed)",
                src.path.display()
            )));
        }
    }
    let mut seen = BTreeSet::new();
    for (t, _) in &out {
        check_target_path(t)?;
        if !seen.insert(t.as_str()) {
            return Err(RepoError::Target {
                path: t.clone(),
                reason: "given twice in one command".into(),
            });
        }
    }
    Ok(out)
}

/// Length and SHA-256 of a file: small files in one read, large ones streamed.
pub(crate) fn hash_file(path: &Path) -> Result<(u64, String), RepoError> {
    let mut f = File::open(path).map_err(|e| io_err(path, e))?;
    let size = f.metadata().map_err(|e| io_err(path, e))?.len();
    let mut hasher = Sha256::new();
    let mut len = 0u64;
    if size <= 256 * 1024 {
        let mut buf = Vec::with_capacity(size as usize + 1);
        f.read_to_end(&mut buf).map_err(|e| io_err(path, e))?;
        hasher.update(&buf);
        len = buf.len() as u64;
    } else {
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = f.read(&mut buf).map_err(|e| io_err(path, e))?;
            if n == 0 {
                break;
            }
            hasher.update(buf.get(..n).unwrap_or_default());
            len += n as u64;
        }
    }
    Ok((len, hex::encode(hasher.finalize())))
}

impl Repository {
    /// The role a client will find `target` in: starting at `targets`, follow the first
    /// delegation (in order) that covers the path and is staged here, as far as it goes.
    pub fn role_for_target(&self, target: &str) -> String {
        let mut current = "targets".to_string();
        for _ in 0..32 {
            let Some(md) = self.targets.get(&current) else {
                break;
            };
            let Some(d) = &md.signed.delegations else {
                break;
            };
            let next = d
                .roles_for_target(target)
                .into_iter()
                .find(|c| self.targets.contains_key(&c.name));
            match next {
                Some(child) => current = child.name,
                None => break,
            }
        }
        current
    }

    /// The roles a client's search for `target` visits when none of them lists it, in visit
    /// order: the delegation search of spec 5.7.7 (as airlock-core's `TargetSearch` walks it:
    /// depth-first, pre-order, nothing after a terminating delegation, at most
    /// `MAX_DELEGATIONS` delegated roles) over the staged roles. The staged roles may not be
    /// signed yet, so the core's search over a `TrustedSet` cannot be used here.
    pub(crate) fn search_order(&self, target: &str) -> Vec<String> {
        let mut order: Vec<String> = Vec::new();
        let mut visited = BTreeSet::new();
        let mut pending = vec![("targets".to_string(), "root".to_string())];
        while let Some((role, parent)) = pending.pop() {
            if order.len() > airlock_core::tuf::search::MAX_DELEGATIONS {
                break;
            }
            if !visited.insert((role.clone(), parent)) {
                continue;
            }
            let Some(md) = self.targets.get(&role) else {
                continue;
            };
            order.push(role.clone());
            let Some(d) = &md.signed.delegations else {
                continue;
            };
            let mut children = Vec::new();
            for child in d.roles_for_target(target) {
                let terminating = child.terminating;
                children.push((child.name, role.clone()));
                if terminating {
                    pending.clear();
                    break;
                }
            }
            pending.extend(children.into_iter().rev());
        }
        order
    }

    /// Add files (hashing them in parallel; `progress` is called with the number of files
    /// finished so far). The staged roles change; files are copied at [`Repository::publish`].
    pub fn add_targets(
        &mut self,
        sources: &[AddSource],
        options: &AddOptions,
        progress: &(dyn Fn(u64, u64) + Sync),
    ) -> Result<AddReport, RepoError> {
        if let Some(role) = &options.role
            && !self.targets.contains_key(role)
        {
            return Err(RepoError::UnknownRole(role.clone()));
        }
        // A recipe no rebuilder could read must not be signed into a release.
        if let Some(r) = &options.custom.rebuild {
            r.validate()
                .map_err(|e| RepoError::invalid(e.to_string()))?;
        }
        let files = collect(sources)?;
        if files.is_empty() {
            return Err(RepoError::invalid("no files to add"));
        }
        let total = files.len() as u64;
        let done = AtomicU64::new(0);
        let hashed: Vec<(u64, String)> = files
            .par_iter()
            .map(|(_, src)| {
                let r = hash_file(src);
                let n = done.fetch_add(1, Ordering::Relaxed) + 1;
                if n.is_multiple_of(256) || n == total {
                    progress(n, total);
                }
                r
            })
            .collect::<Result<_, _>>()?;
        let custom = options.custom.to_value();
        let published = self.published_state()?;
        let mut changed: BTreeSet<String> = BTreeSet::new();
        let mut bytes = 0u64;
        let mut patch_reports = Vec::new();
        let mut torrents = BTreeMap::new();
        for ((target, src), (len, sha)) in files.iter().zip(hashed) {
            bytes += len;
            // Bases come from what is staged before this version replaces it.
            let bases = self.delta_bases(target, options.deltas, &options.delta_from);
            let patches = self.make_patches(target, src, &sha, &bases, &mut patch_reports)?;
            let custom = with_delta(custom.clone(), &patches);
            let role = match &options.role {
                Some(r) => r.clone(),
                None => self.role_for_target(target),
            };
            let order = self.search_order(target);
            let Some(position) = order.iter().position(|r| *r == role) else {
                return Err(RepoError::Target {
                    path: target.clone(),
                    reason: format!(
                        "a client looking for it never searches role {role}: no chain of \
                         delegations from targets to {role} covers this path (or a terminating \
                         delegation is searched first); delegate the path to {role} or drop --role"
                    ),
                });
            };
            // A role searched earlier that still lists the path would shadow the new entry.
            for earlier in order.iter().take(position) {
                if let Some(md) = self.targets.get_mut(earlier)
                    && md.signed.targets.remove(target).is_some()
                {
                    changed.insert(earlier.clone());
                }
            }
            let custom = match &options.torrent {
                // A swarm cannot share an empty file.
                Some(maker) if len > 0 => {
                    let (custom, btih) =
                        self.write_torrent(maker.as_ref(), (target, src, &sha), custom.clone())?;
                    torrents.insert(target.clone(), btih);
                    Some(custom)
                }
                _ => custom.clone(),
            };
            let md = self
                .targets
                .get_mut(&role)
                .ok_or_else(|| RepoError::UnknownRole(role.clone()))?;
            md.signed.targets.insert(
                target.clone(),
                TargetFile {
                    length: len,
                    hashes: airlock_core::tuf::Hashes::from([("sha256".to_string(), sha)]),
                    custom: custom.map(Box::new),
                    unrecognized: BTreeMap::new(),
                },
            );
            self.pending.insert(target.clone(), src.clone());
            changed.insert(role);
        }
        self.finish_change(&changed, &published)
            .map(|(roles, unsigned)| AddReport {
                added: files.len(),
                targets: files.iter().map(|(t, _)| t.clone()).collect(),
                bytes,
                roles,
                unsigned,
                patches: patch_reports,
                torrents,
            })
    }

    /// Make the .torrent of `src` (listed as `target` with `sha256`), write it beside where
    /// the target is published, and return `custom` with its info hash.
    fn write_torrent(
        &self,
        maker: &dyn TorrentMaker,
        (target, src, sha256): (&str, &Path, &str),
        custom: Option<Value>,
    ) -> Result<(Value, String), RepoError> {
        let hashed = hashed_target_path(target, sha256);
        let name = hashed.rsplit('/').next().unwrap_or(&hashed);
        let made = maker.make(src, name).map_err(|source| RepoError::Torrent {
            target: target.to_string(),
            source,
        })?;
        let path = self
            .dir
            .join("published")
            .join("targets")
            .join(torrent_file_path(target, sha256));
        crate::fsutil::create_public_dir_all(airlock_fs::parent_dir(&path))?;
        crate::fsutil::write_atomic(&path, &made.torrent)?;
        let btih = made.btih.clone();
        Ok((with_torrent(custom, &made), btih))
    }

    /// Add one file under an exact target path (a convenience for callers such as the demo).
    pub fn add_file(
        &mut self,
        file: &Path,
        target_path: &str,
        custom: TargetCustom,
    ) -> Result<AddReport, RepoError> {
        self.add_targets(
            &[AddSource {
                path: file.to_path_buf(),
                target: TargetName::Exact(target_path.to_string()),
            }],
            &AddOptions {
                custom,
                ..AddOptions::default()
            },
            &|_, _| {},
        )
    }

    /// Remove targets by exact path, or every target under a prefix ending in `/`.
    pub fn remove_targets(
        &mut self,
        paths: &[String],
    ) -> Result<(Vec<String>, Vec<String>), RepoError> {
        let published = self.published_state()?;
        let mut changed = BTreeSet::new();
        for p in paths {
            let mut found = false;
            for (role, md) in self.targets.iter_mut() {
                let before = md.signed.targets.len();
                if p.ends_with('/') {
                    md.signed.targets.retain(|t, _| !t.starts_with(p.as_str()));
                } else {
                    md.signed.targets.remove(p);
                }
                if md.signed.targets.len() != before {
                    found = true;
                    changed.insert(role.clone());
                }
            }
            self.pending
                .retain(|t, _| !(t == p || (p.ends_with('/') && t.starts_with(p.as_str()))));
            if !found {
                return Err(RepoError::Target {
                    path: p.clone(),
                    reason: "no staged target has this path (or prefix)".into(),
                });
            }
        }
        self.finish_change(&changed, &published)
    }

    /// Bump, sign and commit changed roles. Returns (changed roles, roles still unsigned).
    pub(crate) fn finish_change(
        &mut self,
        changed: &BTreeSet<String>,
        published: &crate::repo::PublishedState,
    ) -> Result<(Vec<String>, Vec<String>), RepoError> {
        let mut unsigned = Vec::new();
        for role in changed {
            self.touch(role, published)?;
        }
        for role in changed {
            self.sign_available(role, published)?;
            if self.check_signed(role, published).is_err() {
                unsigned.push(role.clone());
            }
        }
        self.commit()?;
        Ok((changed.iter().cloned().collect(), unsigned))
    }

    /// Copy pending target files into `published/targets` as `DIR/SHA256.NAME`, checking each
    /// file's length and hash while copying (a file changed since `add` is refused).
    pub(crate) fn copy_pending(
        &self,
        mode: crate::publish::TargetFiles,
        progress: &(dyn Fn(u64, u64) + Sync),
    ) -> Result<u64, RepoError> {
        let store = self.dir.join("published").join("targets");
        let mut jobs: Vec<(&String, &PathBuf, TargetFile)> = Vec::new();
        for (target, src) in &self.pending {
            // The target may have been re-added or removed since: copy what is staged now.
            let role = self.role_for_target(target);
            let tf = self
                .targets
                .get(&role)
                .and_then(|m| m.signed.targets.get(target))
                .or_else(|| {
                    self.targets
                        .values()
                        .find_map(|m| m.signed.targets.get(target))
                })
                .cloned()
                .or_else(|| self.staged_patch(target));
            if let Some(tf) = tf {
                jobs.push((target, src, tf));
            }
        }
        let total = jobs.len() as u64;
        let done = AtomicU64::new(0);
        let copied = AtomicU64::new(0);
        jobs.par_iter().try_for_each(|(target, src, tf)| {
            let sha = tf.hashes.get("sha256").ok_or_else(|| RepoError::Target {
                path: (*target).clone(),
                reason: "has no sha256 hash".into(),
            })?;
            let dest = store.join(hashed_target_path(target, sha));
            let n = done.fetch_add(1, Ordering::Relaxed) + 1;
            if n.is_multiple_of(256) || n == total {
                progress(n, total);
            }
            // Already there from an earlier publish: keep it only if its bytes are the listed
            // ones (a file damaged in place keeps its length); otherwise it is replaced below.
            if fs::metadata(&dest).is_ok_and(|m| m.is_file() && m.len() == tf.length)
                && hash_file(&dest).is_ok_and(|(len, actual)| len == tf.length && actual == *sha)
            {
                return Ok(());
            }
            if mode == crate::publish::TargetFiles::HardLink
                && link_verified(src, &dest, tf.length, sha, target)?
            {
                copied.fetch_add(1, Ordering::Relaxed);
                return Ok(());
            }
            copy_verified(src, &dest, tf.length, sha, target)?;
            copied.fetch_add(1, Ordering::Relaxed);
            Ok::<(), RepoError>(())
        })?;
        Ok(copied.into_inner())
    }
}

/// Hard-link `src` as `dest` after checking its length and hash, and make it mode 0444.
/// A hard link shares the source's inode, so this is the source file's mode too: read-only
/// (it must not change in place once published) and readable by everyone (the web server's
/// user must read it; it is public once published anyway). The user asked for exactly this
/// file to be published, so changing its mode is accepted and documented (`--link-targets`).
/// Returns `false` (caller copies instead) when the two are on different file systems.
fn link_verified(
    src: &Path,
    dest: &Path,
    length: u64,
    sha: &str,
    target: &str,
) -> Result<bool, RepoError> {
    let (len, actual) = hash_file(src)?;
    if len != length || actual != sha {
        return Err(RepoError::Target {
            path: target.to_string(),
            reason: format!(
                "source {} changed since it was added (now {len} bytes, sha256 {actual}); add it again",
                src.display()
            ),
        });
    }
    let dir = dest
        .parent()
        .ok_or_else(|| RepoError::invalid(format!("{}: no parent directory", dest.display())))?;
    crate::fsutil::create_public_dir_all(dir)?;
    match fs::hard_link(src, dest) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::CrossesDevices => return Ok(false),
        // A stale file with the wrong contents: let the copy path replace it.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(false),
        Err(e) => return Err(io_err(dest, e)),
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(dest, fs::Permissions::from_mode(0o444))
            .map_err(|e| io_err(dest, e))?;
    }
    Ok(true)
}

/// Copy `src` to `dest` through a temporary file, hashing on the way; refuse a mismatch.
fn copy_verified(
    src: &Path,
    dest: &Path,
    length: u64,
    sha: &str,
    target: &str,
) -> Result<(), RepoError> {
    let dir = dest
        .parent()
        .ok_or_else(|| RepoError::invalid(format!("{}: no parent directory", dest.display())))?;
    crate::fsutil::create_public_dir_all(dir)?;
    let mut input = File::open(src).map_err(|e| io_err(src, e))?;
    // 0644: a web server running as its own user serves published targets.
    let mut tmp = AtomicFile::create(dest, &WriteOptions::public().sync_dir(false))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut len = 0u64;
    loop {
        let n = input.read(&mut buf).map_err(|e| io_err(src, e))?;
        if n == 0 {
            break;
        }
        let chunk = buf.get(..n).unwrap_or_default();
        hasher.update(chunk);
        tmp.write_all(chunk).map_err(|e| io_err(dest, e))?;
        len += n as u64;
    }
    let actual = hex::encode(hasher.finalize());
    if len != length || actual != sha {
        return Err(RepoError::Target {
            path: target.to_string(),
            reason: format!(
                "source {} changed since it was added (now {len} bytes, sha256 {actual}); add it again",
                src.display()
            ),
        });
    }
    // Durability comes from one syncfs before the metadata switch, not one fsync per file.
    tmp.commit_unsynced()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_paths_that_would_escape_are_refused() {
        for ok in ["a", "dir/a.tgz", "x/y/z", "é/ü", "a b"] {
            assert!(check_target_path(ok).is_ok(), "{ok}");
        }
        for bad in [
            "", "/abs", "a/", "a//b", "../x", "a/../b", "./a", "a\\b", "a\nb", "a\0b", "a%20b",
            "a#b", "a?b", "a\u{7f}b", "a\u{85}b",
        ] {
            assert!(check_target_path(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn hashed_names() {
        assert_eq!(hashed_target_path("a/b/c.tgz", "ff"), "a/b/ff.c.tgz");
        assert_eq!(hashed_target_path("c.tgz", "ff"), "ff.c.tgz");
    }
}
