//! `init`: keys for the four top-level roles, a first root and an empty targets role.

use std::path::Path;

use airlock_core::crypto::KeyScheme;
use airlock_core::tuf::metadata::Metadata;
use airlock_core::tuf::roles::{RoleKeys, Root, Targets};
use chrono::{DateTime, SubsecRound, Utc};

use crate::config::{ExpiryConfig, RepoConfig};
use crate::error::RepoError;
use crate::keys::{self, KeySource, NewKey};
use crate::repo::{self, Repository};
use airlock_keystore::Protection;

/// Keys of one top-level role: how many, of which scheme, and how many must sign.
#[derive(Clone, Copy, Debug)]
pub struct RoleKeySpec {
    pub scheme: KeyScheme,
    pub count: usize,
    pub threshold: u64,
}

impl RoleKeySpec {
    pub fn new(scheme: KeyScheme, count: usize, threshold: u64) -> Self {
        RoleKeySpec {
            scheme,
            count,
            threshold,
        }
    }

    fn check(&self, role: &str) -> Result<(), RepoError> {
        if self.count == 0 || self.count > 64 {
            return Err(RepoError::invalid(format!(
                "{role}: the number of keys must be between 1 and 64, not {}",
                self.count
            )));
        }
        if self.threshold == 0 || self.threshold > self.count as u64 {
            return Err(RepoError::invalid(format!(
                "{role}: threshold {} must be between 1 and the number of keys ({})",
                self.threshold, self.count
            )));
        }
        Ok(())
    }
}

/// Everything `init` needs.
#[derive(Clone, Debug)]
pub struct InitOptions {
    pub root: RoleKeySpec,
    pub targets: RoleKeySpec,
    pub snapshot: RoleKeySpec,
    pub timestamp: RoleKeySpec,
    pub expiry: ExpiryConfig,
    pub protection: Protection,
    /// Publishing settings (meta hashes in the snapshot, releases kept).
    pub publish: crate::config::PublishConfig,
    /// Reference time for expiry dates (`None`: now).
    pub now: Option<DateTime<Utc>>,
    /// Roles whose keys are held outside Airlock's key files (GnuPG, a PKCS#11 token) instead
    /// of generated: role name -> key references. The role's `count` must equal their number.
    pub external_keys: std::collections::BTreeMap<String, Vec<airlock_keystore::KeyRef>>,
}

impl InitOptions {
    /// 1 Ed25519 key per role, threshold 1, default periods, keys protected by `protection`.
    pub fn simple(protection: Protection) -> Self {
        let one = RoleKeySpec::new(KeyScheme::Ed25519, 1, 1);
        InitOptions {
            root: one,
            targets: one,
            snapshot: one,
            timestamp: one,
            expiry: ExpiryConfig::default(),
            protection,
            publish: crate::config::PublishConfig::default(),
            now: None,
            external_keys: Default::default(),
        }
    }
}

impl Repository {
    /// Create a repository in `dir` (which must not exist or be empty): generate the keys, stage
    /// root version 1 signed by every root key and an empty `targets` signed by its keys.
    /// Nothing is published yet: run [`Repository::publish`]. On any error, everything this
    /// call created is removed again.
    pub fn init(dir: &Path, options: &InitOptions) -> Result<Repository, RepoError> {
        for (name, spec) in [
            ("root", &options.root),
            ("targets", &options.targets),
            ("snapshot", &options.snapshot),
            ("timestamp", &options.timestamp),
        ] {
            spec.check(name)?;
            if spec.scheme == KeyScheme::HybridEd25519SlhDsa {
                crate::delegate::check_timestamp_hybrid_keys(name, spec.count)?;
            }
            if let Some(refs) = options.external_keys.get(name)
                && refs.len() != spec.count
            {
                return Err(RepoError::invalid(format!(
                    "{name}: {} key(s) given, the role is set up for {}",
                    refs.len(),
                    spec.count
                )));
            }
        }
        if let Some(role) = options
            .external_keys
            .keys()
            .find(|r| !["root", "targets", "snapshot", "timestamp"].contains(&r.as_str()))
        {
            return Err(RepoError::invalid(format!(
                "{role} is not a top-level role; give its keys with `repo delegate`"
            )));
        }
        let created = repo::create_skeleton(dir)?;
        let result = init_inner(dir, options);
        match result {
            Ok(repo) => Ok(repo),
            Err(e) => {
                if created {
                    let _ = std::fs::remove_dir_all(dir);
                } else if let Ok(entries) = std::fs::read_dir(dir) {
                    for entry in entries.flatten() {
                        let p = entry.path();
                        let _ = if p.is_dir() && !p.is_symlink() {
                            std::fs::remove_dir_all(&p)
                        } else {
                            std::fs::remove_file(&p)
                        };
                    }
                }
                Err(e)
            }
        }
    }
}

fn init_inner(dir: &Path, options: &InitOptions) -> Result<Repository, RepoError> {
    let now = options.now.unwrap_or_else(Utc::now).trunc_subsecs(0);
    let mut config = RepoConfig::new(options.expiry.clone());
    if options.publish.keep_releases == 0 {
        return Err(RepoError::invalid(
            "keep_releases must be at least 1 (the current release)",
        ));
    }
    config.publish = options.publish.clone();
    let mut root = Root::new(now + options.expiry.root.to_duration());
    let mut all_keys: Vec<NewKey> = Vec::new();
    for (role, spec) in [
        ("root", &options.root),
        ("targets", &options.targets),
        ("snapshot", &options.snapshot),
        ("timestamp", &options.timestamp),
    ] {
        let source = match options.external_keys.get(role) {
            Some(refs) => KeySource::External(refs.clone()),
            None => KeySource::Generate {
                scheme: spec.scheme,
                count: spec.count,
            },
        };
        let new = keys::make_keys(dir, role, &source, &options.protection)?;
        let mut keyids = Vec::new();
        for k in &new {
            root.keys.insert(k.entry.keyid.clone(), k.public.clone());
            if let Some(pq) = &k.pq {
                root.pq.insert(k.entry.keyid.clone(), pq.clone());
            }
            keyids.push(k.entry.keyid.clone());
            config.keys.push(k.entry.clone());
        }
        root.roles
            .insert(role.to_string(), RoleKeys::new(keyids, spec.threshold));
        all_keys.extend(new);
    }
    let targets = Targets::new(1, now + options.expiry.targets.to_duration());
    // Write a first work generation so that `open` can read it, then sign through the normal
    // path (which uses the in-memory keys, no passphrase needed).
    let lock = repo::lock(dir)?;
    let work = repo::work_dir(dir);
    let mut next = crate::fsutil::NextGeneration::default();
    next.write.insert(
        repo::CONFIG_FILE.into(),
        config
            .to_toml()
            .map_err(|r| RepoError::config(&dir.join("work"), r))?
            .into_bytes(),
    );
    next.write.insert(
        "root.json".into(),
        repo::to_bytes(&Metadata::new(root), "root.json")?,
    );
    next.write.insert(
        "targets.json".into(),
        repo::to_bytes(&Metadata::new(targets), "targets.json")?,
    );
    work.commit(next)?;
    drop(lock);
    let mut repo = Repository::open(dir, keys::passphrase_of(&options.protection))?;
    repo.set_time(now);
    for k in all_keys {
        if let Some(private) = k.private {
            repo.keyring.insert(private);
        }
    }
    let published = repo.published_state()?;
    repo.sign_available("root", &published)?;
    repo.sign_available("targets", &published)?;
    repo.commit()?;
    Ok(repo)
}
