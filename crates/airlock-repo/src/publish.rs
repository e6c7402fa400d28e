//! Publishing: the staged roles, a new snapshot and timestamp, written as a new generation of
//! `published/metadata` and switched in with one rename.
//!
//! Order of work, so that nothing half-done is ever visible: (1) check every signature threshold
//! (nothing is written if one is short); (2) copy new target files into `published/targets`
//! (content-addressed names no published metadata refers to yet); (3) `syncfs`; (4) build the new
//! metadata directory beside the live one (hard links for unchanged files), fsync it; (5) switch
//! the `metadata` link. A client that reads before the switch sees the old repository, complete;
//! after it, the new one, complete.

use std::collections::BTreeSet;

use airlock_core::transparency::PROOF_SUFFIX;
use airlock_core::tuf::metadata::{Metadata, SignMode};
use airlock_core::tuf::roles::{MetaFile, Root, Snapshot, Timestamp};

use crate::error::RepoError;
use crate::fsutil::{self, NextGeneration};
use crate::repo::{PublishedState, Repository, to_bytes};
use crate::transparency::{ReleaseLog, ToLog};

/// How [`Repository::publish_with`] puts new target files into `published/targets`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TargetFiles {
    /// Copy each file, checking its length and hash on the way (the default).
    #[default]
    Copy,
    /// Hard-link each file (after checking its length and hash) when it is on the same file
    /// system, else copy. Much faster for many small files, but the published file *is* the
    /// source file: the source file itself becomes mode 0444 (read-only, readable by
    /// everyone, as a web server needs), and must never be modified in place afterwards
    /// (replacing it with a new file, as build tools do, is fine).
    HardLink,
}

/// What [`Repository::publish`] or [`Repository::refresh`] wrote.
#[derive(Clone, Debug, serde::Serialize)]
pub struct PublishReport {
    pub root_version: u64,
    pub snapshot_version: u64,
    pub timestamp_version: u64,
    /// Targets roles written in a new version by this publish.
    pub roles_written: Vec<String>,
    /// Target files copied into `published/targets`.
    pub target_files_copied: u64,
    /// The metadata directory now live.
    pub metadata_dir: String,
    /// Milliseconds spent copying target files (with their hash check) and `syncfs`.
    pub copy_targets_ms: u64,
}

impl Repository {
    /// Sign `md` with the online keys `root` gives `role`, and require its threshold.
    fn sign_online<T: airlock_core::tuf::metadata::Role>(
        &mut self,
        role: &str,
        md: &mut Metadata<T>,
        root: &Root,
    ) -> Result<(), RepoError> {
        let authority = root
            .authority(role)
            .ok_or_else(|| RepoError::UnknownRole(role.to_string()))?;
        let keyids = authority.keyids.to_vec();
        let threshold = authority.threshold;
        for keyid in &keyids {
            if let Some(signer) = self.keyring.signer(&self.config, keyid)? {
                md.sign(signer, SignMode::Append)
                    .map_err(|e| RepoError::metadata(role, e))?;
            }
        }
        let msg = md
            .signed_bytes()
            .map_err(|e| RepoError::metadata(role, e))?;
        let authority = root
            .authority(role)
            .ok_or_else(|| RepoError::UnknownRole(role.to_string()))?;
        authority
            .verify(&md.signatures, &msg)
            .map_err(|e| RepoError::NotEnoughSignatures {
                role: role.to_string(),
                version: md.signed.version(),
                valid: e.valid,
                threshold,
                missing: format!(
                    "{} (the {role} key is an online key: its file must be on this machine)",
                    keyids.join(", ")
                ),
            })?;
        Ok(())
    }

    /// Load the snapshot and timestamp keys; refuse if fewer than their thresholds are here.
    fn preload_online(&mut self, root: &Root) -> Result<(), RepoError> {
        for role in ["snapshot", "timestamp"] {
            let a = root
                .authority(role)
                .ok_or_else(|| RepoError::UnknownRole(role.to_string()))?;
            let (keyids, threshold) = (a.keyids.to_vec(), a.threshold);
            let mut here = 0u64;
            for k in &keyids {
                if self.keyring.signer(&self.config, k)?.is_some() {
                    here += 1;
                }
            }
            if here < threshold {
                return Err(RepoError::NotEnoughSignatures {
                    role: role.to_string(),
                    version: 0,
                    valid: here,
                    threshold,
                    missing: format!(
                        "{} (the {role} key is an online key: its file must be on this machine)",
                        keyids.join(", ")
                    ),
                });
            }
        }
        Ok(())
    }

    /// Publish everything staged: check thresholds, copy new target files, write the new
    /// metadata generation with a new snapshot and timestamp, switch it in atomically.
    pub fn publish(
        &mut self,
        progress: &(dyn Fn(u64, u64) + Sync),
    ) -> Result<PublishReport, RepoError> {
        self.publish_with(TargetFiles::Copy, progress)
    }

    /// [`Repository::publish`], choosing how target files get into `published/targets`.
    /// Refused when the published or the staged root carries a transparency policy: use
    /// [`Repository::publish_logged`].
    pub fn publish_with(
        &mut self,
        files: TargetFiles,
        progress: &(dyn Fn(u64, u64) + Sync),
    ) -> Result<PublishReport, RepoError> {
        self.publish_logged(files, None, progress)
    }

    /// [`Repository::publish_with`], logging every new root and targets-role version in the
    /// transparency log through `log` when a root requires it (see the `transparency` module),
    /// and publishing each verified proof bundle as `<metadata file>.tlog-proof` beside its
    /// metadata. The log is asked before anything is written: when it or the witness quorum
    /// cannot be had, the published tree is untouched.
    pub fn publish_logged(
        &mut self,
        files: TargetFiles,
        log: Option<&dyn ReleaseLog>,
        progress: &(dyn Fn(u64, u64) + Sync),
    ) -> Result<PublishReport, RepoError> {
        let published = self.published_state()?;
        // 1. Every changed role must meet its thresholds; refuse before writing anything.
        let root_changed = self.root.signed.version > published.root_version;
        if root_changed {
            if published.root_version > 0 && self.root.signed.version != published.root_version + 1
            {
                return Err(RepoError::invalid(format!(
                    "staged root is version {}, the published one {}: a new root must be exactly one version higher",
                    self.root.signed.version, published.root_version
                )));
            }
            self.check_signed("root", &published)?;
        }
        let mut changed_roles = Vec::new();
        for (role, md) in &self.targets {
            if md.signed.version > published.role_version(role) {
                changed_roles.push(role.clone());
            }
        }
        for role in &changed_roles {
            self.check_signed(role, &published)?;
        }
        for role in ["snapshot", "timestamp"] {
            self.root
                .signed
                .authority(role)
                .ok_or_else(|| RepoError::UnknownRole(role.to_string()))?;
        }
        // Decrypt the online keys now: a wrong passphrase must fail before any file is copied.
        let signing_root = self.root.signed.clone();
        self.preload_online(&signing_root)?;
        // The new metadata files, then the log (before anything is written, so that a log or
        // a quorum out of reach leaves the published tree as it was).
        let mut next = NextGeneration::default();
        let mut new_root = None;
        if root_changed {
            let bytes = to_bytes(&self.root, "root.json")?;
            let name = format!("{}.root.json", self.root.signed.version);
            new_root = Some(ToLog {
                role: "root".into(),
                version: self.root.signed.version,
                file: name.clone(),
                bytes: bytes.clone(),
            });
            next.write.insert(name, bytes.clone());
            next.write.insert("root.json".into(), bytes);
        }
        let mut new_targets = Vec::new();
        for role in &changed_roles {
            let md = self
                .targets
                .get(role)
                .ok_or_else(|| RepoError::UnknownRole(role.clone()))?;
            let name = format!("{}.{role}.json", md.signed.version);
            let bytes = to_bytes(md, &name)?;
            new_targets.push(ToLog {
                role: role.clone(),
                version: md.signed.version,
                file: name.clone(),
                bytes: bytes.clone(),
            });
            next.write.insert(name, bytes);
        }
        let current_dir = self.published.current()?;
        // The bytes clients will fetch for each role: new ones, or the published file.
        let live_bytes = |next: &NextGeneration, name: &str| -> Result<Vec<u8>, RepoError> {
            match (next.write.get(name), &current_dir) {
                (Some(b), _) => Ok(b.clone()),
                (None, Some(dir)) => {
                    let path = dir.join(name);
                    std::fs::read(&path).map_err(|e| fsutil::io_err(&path, e))
                }
                (None, None) => Err(RepoError::invalid(format!(
                    "{name} is neither new nor published"
                ))),
            }
        };
        let bundles = self.log_release(&published, log, new_root, new_targets, || {
            self.targets
                .iter()
                .map(|(role, md)| {
                    let file = format!("{}.{role}.json", md.signed.version);
                    Ok(ToLog {
                        role: role.clone(),
                        version: md.signed.version,
                        bytes: live_bytes(&next, &file)?,
                        file,
                    })
                })
                .collect()
        })?;
        next.write.extend(bundles);
        // 2-3. Target files, then one flush of the file system.
        let copy_started = std::time::Instant::now();
        let copied = self.copy_pending(files, progress)?;
        fsutil::sync_filesystem(&self.dir.join("published"))?;
        let copy_targets_ms = copy_started.elapsed().as_millis() as u64;
        // 4. Metadata.
        let mut snapshot = Snapshot::new(
            published
                .snapshot
                .as_ref()
                .map_or(1, |s| s.signed.version + 1),
            self.expires_for("snapshot"),
        );
        for (role, md) in &self.targets {
            let version = md.signed.version;
            let meta = if self.config.publish.meta_hashes {
                let bytes = live_bytes(&next, &format!("{version}.{role}.json"))?;
                MetaFile::with_bytes(version, &bytes)
            } else {
                MetaFile::new(version)
            };
            snapshot.meta.insert(format!("{role}.json"), meta);
        }
        let mut report = self.write_snapshot_and_timestamp(
            &published,
            &signing_root,
            snapshot,
            next,
            copied,
            changed_roles,
        )?;
        report.copy_targets_ms = copy_targets_ms;
        // The staged state is now what is published: nothing pending.
        self.pending.clear();
        self.commit()?;
        Ok(report)
    }

    /// The cron job: a new timestamp (and, with `snapshot`, or when the snapshot would expire
    /// before the new timestamp, a new snapshot version with the same contents), signed with
    /// the online keys. Staged but unpublished changes are not published by this.
    pub fn refresh(&mut self, snapshot: bool) -> Result<PublishReport, RepoError> {
        let published = self.published_state()?;
        let Some(old_snapshot) = published.snapshot.clone() else {
            return Err(RepoError::invalid(
                "nothing is published yet: run `airlock repo publish` first",
            ));
        };
        // Sign with the keys of the *published* root: a staged rotation is not live yet.
        let signing_root = published
            .root
            .as_ref()
            .map(|r| r.signed.clone())
            .ok_or_else(|| RepoError::invalid("published metadata has no root"))?;
        let ts_expires = self.expires_for("timestamp");
        let new_snapshot = snapshot || old_snapshot.signed.expires <= ts_expires;
        let next = NextGeneration::default();
        if new_snapshot {
            let mut s = old_snapshot.signed.clone();
            s.version += 1;
            s.expires = self.expires_for("snapshot");
            self.write_snapshot_and_timestamp(&published, &signing_root, s, next, 0, Vec::new())
        } else {
            let mut ts = Metadata::new(Timestamp::new(
                published
                    .timestamp
                    .as_ref()
                    .map_or(1, |t| t.signed.version + 1),
                ts_expires,
                published
                    .timestamp
                    .as_ref()
                    .and_then(|t| t.signed.snapshot_meta().cloned())
                    .ok_or_else(|| {
                        RepoError::invalid("published timestamp has no snapshot entry")
                    })?,
            ));
            self.sign_online("timestamp", &mut ts, &signing_root)?;
            let mut next = next;
            next.write
                .insert("timestamp.json".into(), to_bytes(&ts, "timestamp.json")?);
            self.switch(
                &published,
                next,
                &old_snapshot.signed,
                ts.signed.version,
                Vec::new(),
                0,
            )
        }
    }

    fn write_snapshot_and_timestamp(
        &mut self,
        published: &PublishedState,
        signing_root: &Root,
        snapshot: Snapshot,
        mut next: NextGeneration,
        copied: u64,
        roles_written: Vec<String>,
    ) -> Result<PublishReport, RepoError> {
        let mut snap = Metadata::new(snapshot);
        self.sign_online("snapshot", &mut snap, signing_root)?;
        let snap_name = format!("{}.snapshot.json", snap.signed.version);
        let snap_bytes = to_bytes(&snap, &snap_name)?;
        let mut ts = Metadata::new(Timestamp::new(
            published
                .timestamp
                .as_ref()
                .map_or(1, |t| t.signed.version + 1),
            self.expires_for("timestamp"),
            MetaFile::with_bytes(snap.signed.version, &snap_bytes),
        ));
        self.sign_online("timestamp", &mut ts, signing_root)?;
        next.write.insert(snap_name, snap_bytes);
        next.write
            .insert("timestamp.json".into(), to_bytes(&ts, "timestamp.json")?);
        self.switch(
            published,
            next,
            &snap.signed,
            ts.signed.version,
            roles_written,
            copied,
        )
    }

    /// Carry over what readers may still need, then switch the metadata link.
    fn switch(
        &mut self,
        published: &PublishedState,
        mut next: NextGeneration,
        snapshot: &Snapshot,
        timestamp_version: u64,
        roles_written: Vec<String>,
        copied: u64,
    ) -> Result<PublishReport, RepoError> {
        let wanted =
            self.wanted_metadata(snapshot, published, self.config.publish.keep_releases)?;
        for name in self.published.current_files()? {
            if keeps(&wanted, &name) && !next.write.contains_key(&name) {
                next.keep.push(name);
            }
        }
        let root_version = next
            .write
            .keys()
            .filter_map(|n| n.strip_suffix(".root.json")?.parse::<u64>().ok())
            .max()
            .unwrap_or(published.root_version);
        let dir = self.published.commit(next)?;
        Ok(PublishReport {
            root_version,
            snapshot_version: snapshot.version,
            timestamp_version,
            roles_written,
            target_files_copied: copied,
            metadata_dir: dir.display().to_string(),
            copy_targets_ms: 0,
        })
    }
}

/// Whether a published file stays in the next generation: every root, the `wanted` metadata,
/// and the proof bundle of each file that stays.
fn keeps(wanted: &BTreeSet<String>, name: &str) -> bool {
    let name = name.strip_suffix(PROOF_SUFFIX).unwrap_or(name);
    name == "root.json" || name.ends_with(".root.json") || wanted.contains(name)
}

/// What [`Repository::gc`] removed.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct GcReport {
    /// Releases (snapshot versions) whose files were kept, the current one included.
    pub releases_kept: u64,
    pub metadata_files_removed: usize,
    pub target_files_removed: usize,
    pub bytes_removed: u64,
}

impl Repository {
    /// Metadata files of the last `keep` releases: the new `snapshot`'s files, then those of
    /// the most recent earlier snapshots still in `published/metadata` (a client that read an
    /// older timestamp a moment ago still fetches them). Root files are kept separately.
    fn wanted_metadata(
        &self,
        snapshot: &Snapshot,
        published: &PublishedState,
        keep: u64,
    ) -> Result<BTreeSet<String>, RepoError> {
        let mut wanted: BTreeSet<String> = BTreeSet::new();
        wanted.insert(format!("{}.snapshot.json", snapshot.version));
        wanted.insert("timestamp.json".into());
        for (name, meta) in &snapshot.meta {
            wanted.insert(format!("{}.{name}", meta.version));
        }
        let mut older: Vec<u64> = self
            .published
            .current_files()?
            .iter()
            .filter_map(|n| n.strip_suffix(".snapshot.json")?.parse::<u64>().ok())
            .filter(|v| *v < snapshot.version)
            .collect();
        // The previous snapshot is listed by the live timestamp even if its file went missing.
        if let Some(old) = &published.snapshot
            && old.signed.version < snapshot.version
            && !older.contains(&old.signed.version)
        {
            older.push(old.signed.version);
        }
        older.sort_unstable_by(|a, b| b.cmp(a));
        let dir = self.published.current()?;
        for version in older.into_iter().take(keep.saturating_sub(1) as usize) {
            let name = format!("{version}.snapshot.json");
            let old = match (&published.snapshot, &dir) {
                (Some(s), _) if s.signed.version == version => s.signed.clone(),
                (_, Some(dir)) => crate::repo::read_metadata::<Snapshot>(&dir.join(&name))?.signed,
                (_, None) => continue,
            };
            for (role, meta) in &old.meta {
                wanted.insert(format!("{}.{role}", meta.version));
            }
            wanted.insert(name);
        }
        Ok(wanted)
    }

    /// Remove what no kept release refers to: metadata files of releases older than the last
    /// `keep` (default: the config's `keep_releases`), then target files in
    /// `published/targets` that no targets role of a kept release (nor the staged state)
    /// lists. The current snapshot's files and targets always stay. Nothing is removed if a
    /// kept metadata file cannot be read.
    pub fn gc(&mut self, keep: Option<u64>) -> Result<GcReport, RepoError> {
        let keep = keep.unwrap_or(self.config.publish.keep_releases);
        if keep == 0 {
            return Err(RepoError::invalid(
                "keep at least 1 release (the current one)",
            ));
        }
        let published = self.published_state()?;
        let Some(current) = published.snapshot.clone() else {
            return Err(RepoError::invalid(
                "nothing is published yet: run `airlock repo publish` first",
            ));
        };
        let mut report = GcReport {
            releases_kept: keep,
            ..GcReport::default()
        };
        // 1. Metadata: a new generation holding only what the kept releases need.
        let wanted = self.wanted_metadata(&current.signed, &published, keep)?;
        let files = self.published.current_files()?;
        let mut next = NextGeneration::default();
        for name in &files {
            if keeps(&wanted, name) {
                next.keep.push(name.clone());
            }
        }
        report.metadata_files_removed = files.len() - next.keep.len();
        if report.metadata_files_removed > 0 {
            self.published.commit(next)?;
        }
        // 2. Targets listed by a kept targets role, or staged.
        let dir = self
            .published
            .current()?
            .ok_or_else(|| RepoError::invalid("published metadata vanished"))?;
        let mut listed: BTreeSet<String> = BTreeSet::new();
        let mut add = |targets: &airlock_core::tuf::roles::Targets| {
            for (path, tf) in &targets.targets {
                if let Some(sha) = tf.hashes.get("sha256") {
                    listed.insert(crate::targets::hashed_target_path(path, sha));
                    if tf
                        .custom
                        .as_ref()
                        .is_some_and(|c| c.get("bittorrent").is_some())
                    {
                        listed.insert(crate::targets::torrent_file_path(path, sha));
                    }
                }
                // Its patches (custom `delta`) are published files of the target too.
                for p in airlock_core::delta::patches(tf.custom.as_deref()).unwrap_or_default() {
                    if let Some(sha) = p.file.hashes.get("sha256") {
                        listed.insert(crate::targets::hashed_target_path(&p.path, sha));
                    }
                }
            }
        };
        for name in self.published.current_files()? {
            let is_role = name.ends_with(".json")
                && name != "root.json"
                && name != "timestamp.json"
                && !name.ends_with(".root.json")
                && !name.ends_with(".snapshot.json");
            if is_role {
                let md = crate::repo::read_metadata::<airlock_core::tuf::roles::Targets>(
                    &dir.join(&name),
                )?;
                add(&md.signed);
            }
        }
        for md in self.targets.values() {
            add(&md.signed);
        }
        let store = self.dir.join("published").join("targets");
        let mut doomed: Vec<(std::path::PathBuf, u64)> = Vec::new();
        for entry in walkdir::WalkDir::new(&store).min_depth(1) {
            let entry = entry.map_err(|e| {
                let path = e.path().unwrap_or(&store).to_path_buf();
                fsutil::io_err(&path, e.into())
            })?;
            if !entry.file_type().is_file() {
                continue;
            }
            let rel = entry
                .path()
                .strip_prefix(&store)
                .map_err(|_| RepoError::invalid("walked outside published/targets"))?;
            let rel: Vec<&str> = rel
                .components()
                .filter_map(|c| c.as_os_str().to_str())
                .collect();
            if !listed.contains(&rel.join("/")) {
                let len = entry.metadata().map(|m| m.len()).unwrap_or(0);
                doomed.push((entry.path().to_path_buf(), len));
            }
        }
        for (path, len) in doomed {
            std::fs::remove_file(&path).map_err(|e| fsutil::io_err(&path, e))?;
            report.target_files_removed += 1;
            report.bytes_removed += len;
        }
        Ok(report)
    }
}
