//! Delegations (by paths, or TAP 15 succinct hash bins), key rotation and version bumps.

use std::collections::{BTreeMap, BTreeSet};

use airlock_core::crypto::{KeyMaterial, PublicKey};
use airlock_core::tuf::delegation::{DelegatedRole, Delegations, SuccinctRoles, fold_case};
use airlock_core::tuf::metadata::Metadata;
use airlock_core::tuf::roles::Targets;

use crate::error::RepoError;
use crate::keys::{self, KeySource, NewKey};
use crate::repo::{Repository, check_role_name};
use airlock_keystore::Protection;

/// A delegation by paths: `from` lets `name` sign for targets matching `paths`.
#[derive(Clone, Debug)]
pub struct PathDelegation {
    pub from: String,
    pub name: String,
    /// Glob patterns (`*` and `?` never match `/`).
    pub paths: Vec<String>,
    pub keys: KeySource,
    pub threshold: u64,
    pub terminating: bool,
}

/// TAP 15 succinct hash bins: `from` delegates to `bins` roles named `{prefix}-{index}`.
#[derive(Clone, Debug)]
pub struct BinDelegation {
    pub from: String,
    /// Number of bins: a power of two between 2 and 65536.
    pub bins: u64,
    pub name_prefix: String,
    pub keys: KeySource,
    pub threshold: u64,
}

/// A key rotation of one role.
#[derive(Clone, Debug)]
pub struct Rotation {
    /// `root`, `targets`, `snapshot`, `timestamp`, a delegated role, or a hash-bin prefix.
    pub role: String,
    /// New keys (generated or given as public keys).
    pub add: Option<KeySource>,
    /// Key ids to drop. With `replace_all`, every old key is dropped.
    pub remove: Vec<String>,
    pub replace_all: bool,
    /// New threshold (unchanged if `None`).
    pub threshold: Option<u64>,
}

/// What a delegation or rotation did.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ChangeReport {
    pub roles: Vec<String>,
    pub unsigned: Vec<String>,
    /// Key ids created or added.
    pub new_keyids: Vec<String>,
}

fn key_count(source: &KeySource) -> usize {
    match source {
        KeySource::Generate { count, .. } => *count,
        KeySource::Public(k) => k.len(),
        KeySource::External(k) => k.len(),
    }
}

fn check_threshold(threshold: u64, keys: usize, what: &str) -> Result<(), RepoError> {
    if threshold == 0 || threshold > keys as u64 {
        return Err(RepoError::invalid(format!(
            "{what}: threshold {threshold} must be between 1 and the number of keys ({keys})"
        )));
    }
    Ok(())
}

/// At most one hybrid key for timestamp: each SLH-DSA signature adds about 15.8 kB, and two make
/// `timestamp.json` larger than the 16 384 bytes python-tuf and Airlock accept for it by default.
pub(crate) fn check_timestamp_hybrid_keys(role: &str, hybrid_keys: usize) -> Result<(), RepoError> {
    if role == "timestamp" && hybrid_keys > 1 {
        return Err(RepoError::invalid(format!(
            "timestamp: {hybrid_keys} hybrid keys would make timestamp.json larger than the \
             16384 bytes TUF clients accept for it; give timestamp at most one hybrid key"
        )));
    }
    Ok(())
}

/// Refuse a role key list that holds one public key twice (two encodings of it have two key
/// ids): a client counts that key once, so the role could never reach the threshold it appears
/// to have.
fn check_distinct_keys<'a>(
    role: &str,
    keys: impl IntoIterator<Item = (&'a str, &'a PublicKey)>,
) -> Result<(), RepoError> {
    let mut seen: Vec<(KeyMaterial, &str)> = Vec::new();
    for (keyid, key) in keys {
        let material = key.material().map_err(|error| RepoError::Crypto {
            what: format!("key {keyid} of {role}"),
            error,
        })?;
        if let Some((_, first)) = seen.iter().find(|(m, _)| *m == material) {
            return Err(RepoError::invalid(format!(
                "{role}: key ids {first} and {keyid} are the same public key; a key counts \
                 once toward a threshold, so list it once"
            )));
        }
        seen.push((material, keyid));
    }
    Ok(())
}

/// The post-quantum pairings of the hybrid keys among `new` (docs/keys.md).
fn pairings(new: &[NewKey]) -> airlock_core::crypto::PqPairings {
    new.iter()
        .filter_map(|k| Some((k.entry.keyid.clone(), k.pq.clone()?)))
        .collect()
}

fn new_keys(new: &[NewKey]) -> impl Iterator<Item = (&str, &PublicKey)> {
    new.iter().map(|k| (k.entry.keyid.as_str(), &k.public))
}

impl Repository {
    /// Refuse a new role name that differs only in case from an existing role: on a
    /// case-insensitive file system both would be one `<role>.json`.
    fn check_case_collision<'a>(
        &self,
        names: impl IntoIterator<Item = &'a str>,
    ) -> Result<(), RepoError> {
        for name in names {
            let fold = fold_case(name);
            if let Some(existing) = self
                .targets
                .keys()
                .find(|r| r.as_str() != name && fold_case(r) == fold)
            {
                return Err(RepoError::invalid(format!(
                    "role name {name:?} differs only in case from the existing role \
                     {existing:?}; both would be one file on a case-insensitive file system"
                )));
            }
        }
        Ok(())
    }

    /// New key files are encrypted with the passphrase source the caller opened the
    /// repository with; without one only `plaintext` (tests) is possible.
    fn key_protection(&self, plaintext: bool) -> Result<Protection, RepoError> {
        if plaintext {
            return Ok(Protection::PlaintextForTests);
        }
        self.keyring
            .passphrase()
            .map(Protection::encrypted)
            .ok_or_else(|| {
                RepoError::invalid("new key files are encrypted and no passphrase source was given")
            })
    }

    fn all_role_names(&self) -> BTreeSet<String> {
        self.targets.keys().cloned().collect()
    }

    /// Run `change` with new keys made first; if anything fails, the key files go again.
    fn with_new_keys<T>(
        &mut self,
        role: &str,
        source: Option<&KeySource>,
        plaintext: bool,
        change: impl FnOnce(&mut Self, &[NewKey]) -> Result<T, RepoError>,
    ) -> Result<T, RepoError> {
        let protection = self.key_protection(plaintext)?;
        let mut new = match source {
            Some(s) => keys::make_keys(&self.dir, role, s, &protection)?,
            None => Vec::new(),
        };
        for k in &mut new {
            if let Some(private) = k.private.take() {
                self.keyring.insert(private);
            }
        }
        let snapshot_config = self.config.clone();
        match change(self, &new) {
            Ok(v) => Ok(v),
            Err(e) => {
                keys::remove_key_files(&new);
                self.config = snapshot_config;
                Err(e)
            }
        }
    }

    fn register_keys(&mut self, new: &[NewKey]) {
        for k in new {
            if self.config.key(&k.entry.keyid).is_none() {
                self.config.keys.push(k.entry.clone());
            }
        }
    }

    /// Delegate targets matching `paths` from one targets role to a new role.
    pub fn delegate_paths(
        &mut self,
        d: &PathDelegation,
        plaintext_keys: bool,
    ) -> Result<ChangeReport, RepoError> {
        check_role_name(&d.name)?;
        if self.targets.contains_key(&d.name) || self.delegator_of(&d.name).is_some() {
            return Err(RepoError::invalid(format!(
                "role {:?} exists already",
                d.name
            )));
        }
        let parent = self
            .targets
            .get(&d.from)
            .ok_or_else(|| RepoError::UnknownRole(d.from.clone()))?;
        if parent
            .signed
            .delegations
            .as_ref()
            .is_some_and(|x| x.succinct_roles.is_some())
        {
            return Err(RepoError::invalid(format!(
                "{} delegates to hash bins; TUF allows no other delegation beside them",
                d.from
            )));
        }
        if d.paths.is_empty() {
            return Err(RepoError::invalid(
                "a path delegation needs at least one --path pattern",
            ));
        }
        for p in &d.paths {
            if p.is_empty() || p.starts_with('/') {
                return Err(RepoError::invalid(format!(
                    "path pattern {p:?} must be relative and non-empty"
                )));
            }
        }
        check_threshold(d.threshold, key_count(&d.keys), &d.name)?;
        self.check_case_collision([d.name.as_str()])?;
        let published = self.published_state()?;
        self.with_new_keys(
            &d.name.clone(),
            Some(&d.keys),
            plaintext_keys,
            |repo, new| {
                check_distinct_keys(&d.name, new_keys(new))?;
                repo.register_keys(new);
                let keyids: Vec<String> = new.iter().map(|k| k.entry.keyid.clone()).collect();
                let parent = repo
                    .targets
                    .get_mut(&d.from)
                    .ok_or_else(|| RepoError::UnknownRole(d.from.clone()))?;
                let delegations = parent
                    .signed
                    .delegations
                    .get_or_insert_with(|| Delegations::with_roles(BTreeMap::new(), Vec::new()));
                for k in new {
                    delegations
                        .keys
                        .insert(k.entry.keyid.clone(), k.public.clone());
                    if let Some(pq) = &k.pq {
                        delegations.pq.insert(k.entry.keyid.clone(), pq.clone());
                    }
                }
                let mut role = DelegatedRole::with_paths(
                    &d.name,
                    keyids.clone(),
                    d.threshold,
                    d.paths.clone(),
                );
                role.terminating = d.terminating;
                delegations.roles.get_or_insert_with(Vec::new).push(role);
                let version = published.role_version(&d.name) + 1;
                let expires = repo.expires_for(&d.name);
                repo.targets.insert(
                    d.name.clone(),
                    Metadata::new(Targets::new(version, expires)),
                );
                let changed = BTreeSet::from([d.from.clone(), d.name.clone()]);
                let (roles, unsigned) = repo.finish_change(&changed, &published)?;
                Ok(ChangeReport {
                    roles,
                    unsigned,
                    new_keyids: keyids,
                })
            },
        )
    }

    /// Delegate everything under `from` to succinct hash bins (TAP 15).
    pub fn delegate_bins(
        &mut self,
        d: &BinDelegation,
        plaintext_keys: bool,
    ) -> Result<ChangeReport, RepoError> {
        check_role_name(&d.name_prefix)?;
        if !(2..=65_536).contains(&d.bins) || !d.bins.is_power_of_two() {
            return Err(RepoError::invalid(format!(
                "the number of bins must be a power of two from 2 to 65536, not {}",
                d.bins
            )));
        }
        let parent = self
            .targets
            .get(&d.from)
            .ok_or_else(|| RepoError::UnknownRole(d.from.clone()))?;
        if parent.signed.delegations.is_some() {
            return Err(RepoError::invalid(format!(
                "{} already delegates; hash bins must be its only delegation",
                d.from
            )));
        }
        check_threshold(d.threshold, key_count(&d.keys), &d.name_prefix)?;
        let bit_length = d.bins.trailing_zeros();
        let probe = SuccinctRoles::new(Vec::new(), d.threshold, bit_length, &d.name_prefix);
        let existing = self.all_role_names();
        if let Some(clash) = probe.bin_names().find(|n| existing.contains(n)) {
            return Err(RepoError::invalid(format!("role {clash:?} exists already")));
        }
        self.check_case_collision(
            probe
                .bin_names()
                .collect::<Vec<_>>()
                .iter()
                .map(String::as_str),
        )?;
        let published = self.published_state()?;
        self.with_new_keys(
            &d.name_prefix.clone(),
            Some(&d.keys),
            plaintext_keys,
            |repo, new| {
                check_distinct_keys(&d.name_prefix, new_keys(new))?;
                repo.register_keys(new);
                let keyids: Vec<String> = new.iter().map(|k| k.entry.keyid.clone()).collect();
                let keys = new
                    .iter()
                    .map(|k| (k.entry.keyid.clone(), k.public.clone()))
                    .collect();
                let bins =
                    SuccinctRoles::new(keyids.clone(), d.threshold, bit_length, &d.name_prefix);
                let names: Vec<String> = bins.bin_names().collect();
                let parent = repo
                    .targets
                    .get_mut(&d.from)
                    .ok_or_else(|| RepoError::UnknownRole(d.from.clone()))?;
                let mut delegations = Delegations::with_succinct_roles(keys, bins);
                delegations.pq = pairings(new);
                parent.signed.delegations = Some(delegations);
                let mut changed = BTreeSet::from([d.from.clone()]);
                for name in names {
                    let version = published.role_version(&name) + 1;
                    let expires = repo.expires_for(&name);
                    repo.targets
                        .insert(name.clone(), Metadata::new(Targets::new(version, expires)));
                    changed.insert(name);
                }
                let (roles, unsigned) = repo.finish_change(&changed, &published)?;
                Ok(ChangeReport {
                    roles,
                    unsigned,
                    new_keyids: keyids,
                })
            },
        )
    }

    /// Remove a delegation: `name` is a delegated role or a hash-bin prefix. Its delegator
    /// drops it (and the keys no other role it delegates to uses) and gets a new version; the
    /// role, and every role only it delegated to, leaves the staged state, so the next snapshot
    /// no longer lists them and their targets are no longer reachable. Key files stay under
    /// `keys/`.
    pub fn undelegate(&mut self, name: &str) -> Result<ChangeReport, RepoError> {
        let published = self.published_state()?;
        let parent = self
            .targets
            .iter()
            .find(|(_, md)| {
                md.signed.delegations.as_ref().is_some_and(|d| {
                    d.roles
                        .as_ref()
                        .is_some_and(|rs| rs.iter().any(|r| r.name == name))
                        || d.succinct_roles
                            .as_ref()
                            .is_some_and(|b| b.name_prefix == name)
                })
            })
            .map(|(p, _)| p.clone())
            .ok_or_else(|| RepoError::UnknownRole(name.to_string()))?;
        let delegations = self
            .targets
            .get_mut(&parent)
            .and_then(|md| md.signed.delegations.as_mut())
            .ok_or_else(|| RepoError::UnknownRole(name.to_string()))?;
        let mut queue: Vec<String> = Vec::new();
        if delegations
            .succinct_roles
            .as_ref()
            .is_some_and(|b| b.name_prefix == name)
        {
            if let Some(bins) = delegations.succinct_roles.take() {
                queue.extend(bins.bin_names());
            }
        } else if let Some(roles) = delegations.roles.as_mut() {
            roles.retain(|r| r.name != name);
            queue.push(name.to_string());
        }
        let mut used: BTreeSet<String> = BTreeSet::new();
        for r in delegations.roles.iter().flatten() {
            used.extend(r.keyids.iter().cloned());
        }
        if let Some(b) = &delegations.succinct_roles {
            used.extend(b.keyids.iter().cloned());
        }
        delegations.keys.retain(|k, _| used.contains(k));
        delegations.pq.retain(|k, _| used.contains(k));
        if delegations.roles.as_ref().is_some_and(Vec::is_empty)
            && delegations.succinct_roles.is_none()
            && let Some(md) = self.targets.get_mut(&parent)
        {
            md.signed.delegations = None;
        }
        while let Some(role) = queue.pop() {
            let Some(md) = self.targets.remove(&role) else {
                continue;
            };
            self.dirty.insert(role);
            if let Some(d) = &md.signed.delegations {
                let mut children: Vec<String> =
                    d.roles.iter().flatten().map(|r| r.name.clone()).collect();
                if let Some(b) = &d.succinct_roles {
                    children.extend(b.bin_names());
                }
                for child in children {
                    if self.delegator_of(&child).is_none() {
                        queue.push(child);
                    }
                }
            }
        }
        let targets = &self.targets;
        self.pending
            .retain(|t, _| targets.values().any(|md| md.signed.targets.contains_key(t)));
        let (roles, unsigned) = self.finish_change(&BTreeSet::from([parent]), &published)?;
        Ok(ChangeReport {
            roles,
            unsigned,
            new_keyids: Vec::new(),
        })
    }

    /// Give a role a new version and expiry, re-signed (e.g. to extend an expiry date).
    pub fn bump(&mut self, role: &str) -> Result<ChangeReport, RepoError> {
        if role != "root" && !self.targets.contains_key(role) {
            return Err(RepoError::UnknownRole(role.to_string()));
        }
        let published = self.published_state()?;
        let (roles, unsigned) =
            self.finish_change(&BTreeSet::from([role.to_string()]), &published)?;
        Ok(ChangeReport {
            roles,
            unsigned,
            new_keyids: Vec::new(),
        })
    }

    /// Rotate the keys of a role. For a top-level role this makes a new root version, signed by
    /// the keys of the published root and of the new one (both thresholds); for a delegated
    /// role, the delegator changes and the role is re-signed with its new keys.
    pub fn rotate(
        &mut self,
        r: &Rotation,
        plaintext_keys: bool,
    ) -> Result<ChangeReport, RepoError> {
        let top = matches!(
            r.role.as_str(),
            "root" | "targets" | "snapshot" | "timestamp"
        );
        // Locate the current key list and threshold.
        let (old_keyids, old_threshold, parent): (Vec<String>, u64, Option<String>) = if top {
            let rk = self
                .root
                .signed
                .roles
                .get(&r.role)
                .ok_or_else(|| RepoError::UnknownRole(r.role.clone()))?;
            (rk.keyids.clone(), rk.threshold, None)
        } else {
            let found = self.targets.iter().find_map(|(name, md)| {
                let d = md.signed.delegations.as_ref()?;
                if let Some(b) = &d.succinct_roles
                    && b.name_prefix == r.role
                {
                    return Some((b.keyids.clone(), b.threshold, name.clone()));
                }
                d.roles
                    .as_ref()?
                    .iter()
                    .find(|x| x.name == r.role)
                    .map(|x| (x.keyids.clone(), x.threshold, name.clone()))
            });
            let (k, t, p) = found.ok_or_else(|| RepoError::UnknownRole(r.role.clone()))?;
            (k, t, Some(p))
        };
        for k in &r.remove {
            if !old_keyids.contains(k) {
                return Err(RepoError::invalid(format!(
                    "role {} has no key {k}",
                    r.role
                )));
            }
        }
        let kept: Vec<String> = if r.replace_all {
            Vec::new()
        } else {
            old_keyids
                .iter()
                .filter(|k| !r.remove.contains(k))
                .cloned()
                .collect()
        };
        let added = r.add.as_ref().map_or(0, key_count);
        let threshold = r.threshold.unwrap_or(old_threshold);
        check_threshold(threshold, kept.len() + added, &r.role)?;
        if added == 0 && kept == old_keyids && threshold == old_threshold {
            return Err(RepoError::invalid(format!(
                "rotation of {} changes nothing",
                r.role
            )));
        }
        let kept_keys: Vec<(String, PublicKey)> = {
            let table = match &parent {
                None => Some(&self.root.signed.keys),
                Some(p) => self
                    .targets
                    .get(p)
                    .and_then(|md| md.signed.delegations.as_ref())
                    .map(|d| &d.keys),
            };
            kept.iter()
                .filter_map(|k| Some((k.clone(), table?.get(k)?.clone())))
                .collect()
        };
        let published = self.published_state()?;
        let role_label = r.role.clone();
        self.with_new_keys(&role_label, r.add.as_ref(), plaintext_keys, |repo, new| {
            let kept_iter = kept_keys.iter().map(|(id, k)| (id.as_str(), k));
            check_distinct_keys(&r.role, kept_iter.chain(new_keys(new)))?;
            if parent.is_none() {
                let kept_hybrid = kept
                    .iter()
                    .filter(|k| repo.root.signed.pq.contains_key(*k))
                    .count();
                let new_hybrid = new.iter().filter(|k| k.pq.is_some()).count();
                check_timestamp_hybrid_keys(&r.role, kept_hybrid + new_hybrid)?;
            }
            repo.register_keys(new);
            let new_ids: Vec<String> = new.iter().map(|k| k.entry.keyid.clone()).collect();
            let mut keyids = kept.clone();
            keyids.extend(new_ids.iter().cloned());
            let mut changed = BTreeSet::new();
            match &parent {
                None => {
                    let root = &mut repo.root.signed;
                    for k in new {
                        root.keys.insert(k.entry.keyid.clone(), k.public.clone());
                    }
                    root.pq.extend(pairings(new));
                    if let Some(rk) = root.roles.get_mut(&r.role) {
                        rk.keyids = keyids.clone();
                        rk.threshold = threshold;
                    }
                    let used: BTreeSet<String> = root
                        .roles
                        .values()
                        .flat_map(|x| x.keyids.iter().cloned())
                        .collect();
                    root.keys.retain(|k, _| used.contains(k));
                    root.pq.retain(|k, _| used.contains(k));
                    changed.insert("root".to_string());
                }
                Some(p) => {
                    let md = repo
                        .targets
                        .get_mut(p)
                        .ok_or_else(|| RepoError::UnknownRole(p.clone()))?;
                    let Some(d) = md.signed.delegations.as_mut() else {
                        return Err(RepoError::UnknownRole(r.role.clone()));
                    };
                    for k in new {
                        d.keys.insert(k.entry.keyid.clone(), k.public.clone());
                    }
                    d.pq.extend(pairings(new));
                    let mut affected: Vec<String> = Vec::new();
                    if let Some(b) = d
                        .succinct_roles
                        .as_mut()
                        .filter(|b| b.name_prefix == r.role)
                    {
                        b.keyids = keyids.clone();
                        b.threshold = threshold;
                        affected.extend(b.bin_names());
                    } else if let Some(x) = d
                        .roles
                        .as_mut()
                        .and_then(|v| v.iter_mut().find(|x| x.name == r.role))
                    {
                        x.keyids = keyids.clone();
                        x.threshold = threshold;
                        affected.push(r.role.clone());
                    }
                    let mut used: BTreeSet<String> = BTreeSet::new();
                    if let Some(b) = &d.succinct_roles {
                        used.extend(b.keyids.iter().cloned());
                    }
                    for x in d.roles.iter().flatten() {
                        used.extend(x.keyids.iter().cloned());
                    }
                    d.keys.retain(|k, _| used.contains(k));
                    d.pq.retain(|k, _| used.contains(k));
                    changed.insert(p.clone());
                    for a in affected {
                        if repo.targets.contains_key(&a) {
                            changed.insert(a);
                        }
                    }
                }
            }
            let (roles, unsigned) = repo.finish_change(&changed, &published)?;
            Ok(ChangeReport {
                roles,
                unsigned,
                new_keyids: new_ids,
            })
        })
    }
}
