//! `verify`: check a published tree the way a client would, and list every problem found
//! (not only the first): signatures and thresholds, root rotations, versions, expiry, lengths
//! and hashes of metadata and target files, missing files, targets outside their delegation.

use airlock_core::error_chain;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use airlock_core::tuf::metadata::{Metadata, Role};
use airlock_core::tuf::roles::{Root, Snapshot, Targets, Timestamp};
use airlock_core::tuf::verify::Authority;
use chrono::{DateTime, Utc};
use rayon::prelude::*;

use crate::targets::{check_target_path, hash_file, hashed_target_path};

/// One thing wrong with a published tree.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    /// The file concerned, relative to the tree (`metadata/3.targets.json`, `targets/a/HASH.x`).
    pub file: String,
    /// Which check failed: `signature`, `version`, `expiry`, `length`, `hash`, `missing`,
    /// `parse`, `delegation`, `path`.
    pub check: String,
    pub message: String,
}

/// The result of [`verify_published`].
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct VerifyReport {
    pub ok: bool,
    pub root_version: u64,
    pub snapshot_version: u64,
    pub timestamp_version: u64,
    pub roles_checked: usize,
    pub targets_checked: usize,
    pub problems: Vec<Problem>,
}

struct Checker {
    problems: Vec<Problem>,
}

impl Checker {
    fn problem(&mut self, file: impl Into<String>, check: &str, message: impl Into<String>) {
        self.problems.push(Problem {
            file: file.into(),
            check: check.to_string(),
            message: message.into(),
        });
    }

    fn load<T: Role>(&mut self, dir: &Path, name: &str) -> Option<(Metadata<T>, Vec<u8>, Vec<u8>)> {
        let file = format!("metadata/{name}");
        let bytes = match fs::read(dir.join(name)) {
            Ok(b) => b,
            Err(e) => {
                self.problem(file, "missing", format!("cannot read: {e}"));
                return None;
            }
        };
        match Metadata::<T>::parse(&bytes) {
            Ok(p) => Some((p.metadata, p.signed_bytes, bytes)),
            Err(e) => {
                self.problem(file, "parse", error_chain(&e));
                None
            }
        }
    }

    fn threshold(
        &mut self,
        file: &str,
        who: &str,
        a: Option<Authority<'_>>,
        sigs: &[airlock_core::tuf::metadata::Signature],
        msg: &[u8],
    ) {
        match a {
            None => self.problem(
                file,
                "delegation",
                format!("{who} gives no keys for this role"),
            ),
            Some(a) => {
                if let Err(e) = a.verify(sigs, msg) {
                    self.problem(
                        file,
                        "signature",
                        format!("threshold of {who} not met: {}", error_chain(&e)),
                    );
                }
            }
        }
    }

    fn expiry(&mut self, file: &str, expires: DateTime<Utc>, now: DateTime<Utc>) {
        if expires <= now {
            self.problem(file, "expiry", format!("expired at {expires}"));
        }
    }
}

/// Verify the tree at `published` (holding `metadata/` and `targets/`) at time `now`.
pub fn verify_published(published: &Path, now: DateTime<Utc>) -> VerifyReport {
    verify_dirs(&published.join("metadata"), &published.join("targets"), now)
}

/// Verify metadata in `metadata` and hash-prefixed target files in `targets`.
pub fn verify_dirs(metadata: &Path, targets: &Path, now: DateTime<Utc>) -> VerifyReport {
    let mut c = Checker {
        problems: Vec::new(),
    };
    let mut report = VerifyReport::default();

    // Root chain: 1.root.json .. N.root.json, each signed by its predecessor's and its own
    // threshold.
    let mut versions: Vec<u64> = fs::read_dir(metadata)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| {
                    e.file_name()
                        .to_str()?
                        .strip_suffix(".root.json")?
                        .parse()
                        .ok()
                })
                .collect()
        })
        .unwrap_or_default();
    versions.sort_unstable();
    if versions.is_empty() {
        c.problem(
            "metadata/1.root.json",
            "missing",
            "no versioned root metadata (N.root.json)",
        );
        report.problems = c.problems;
        return report;
    }
    let mut root: Option<(Metadata<Root>, Vec<u8>)> = None;
    for want in 1..=versions.last().copied().unwrap_or(1) {
        let name = format!("{want}.root.json");
        if !versions.contains(&want) {
            c.problem(
                format!("metadata/{name}"),
                "missing",
                "gap in the root chain",
            );
            continue;
        }
        let Some((md, msg, bytes)) = c.load::<Root>(metadata, &name) else {
            continue;
        };
        let file = format!("metadata/{name}");
        if md.signed.version != want {
            c.problem(
                &file,
                "version",
                format!("says version {}, file name says {want}", md.signed.version),
            );
        }
        let prev = root.as_ref().map(|(r, _)| r.signed.clone());
        if let Some(p) = &prev {
            c.threshold(
                &file,
                &format!("root version {}", p.version),
                p.authority("root"),
                &md.signatures,
                &msg,
            );
        }
        c.threshold(
            &file,
            "itself",
            md.signed.authority("root"),
            &md.signatures,
            &msg,
        );
        root = Some((md, bytes));
    }
    let Some((root, root_bytes)) = root else {
        report.problems = c.problems;
        return report;
    };
    let root_file = format!("metadata/{}.root.json", root.signed.version);
    report.root_version = root.signed.version;
    c.expiry(&root_file, root.signed.expires, now);
    if root.signed.consistent_snapshot != Some(true) {
        c.problem(
            &root_file,
            "consistent_snapshot",
            "consistent_snapshot is not true",
        );
    }
    match fs::read(metadata.join("root.json")) {
        Ok(b) if b == root_bytes => {}
        Ok(_) => c.problem(
            "metadata/root.json",
            "version",
            "differs from the newest N.root.json",
        ),
        Err(e) => c.problem("metadata/root.json", "missing", error_chain(&e)),
    }

    // Timestamp -> snapshot.
    let Some((ts, ts_msg, _)) = c.load::<Timestamp>(metadata, "timestamp.json") else {
        report.problems = c.problems;
        return report;
    };
    report.timestamp_version = ts.signed.version;
    c.threshold(
        "metadata/timestamp.json",
        "root",
        root.signed.authority("timestamp"),
        &ts.signatures,
        &ts_msg,
    );
    c.expiry("metadata/timestamp.json", ts.signed.expires, now);
    let Some(snap_meta) = ts.signed.snapshot_meta().cloned() else {
        c.problem("metadata/timestamp.json", "parse", "no snapshot.json entry");
        report.problems = c.problems;
        return report;
    };
    let snap_name = format!("{}.snapshot.json", snap_meta.version);
    let snap_file = format!("metadata/{snap_name}");
    let Some((snap, snap_msg, snap_bytes)) = c.load::<Snapshot>(metadata, &snap_name) else {
        report.problems = c.problems;
        return report;
    };
    if let Err(e) = snap_meta.verify_bytes(&snap_bytes) {
        c.problem(
            &snap_file,
            "hash",
            format!("does not match timestamp.json: {}", error_chain(&e)),
        );
    }
    if snap.signed.version != snap_meta.version {
        c.problem(
            &snap_file,
            "version",
            format!(
                "says version {}, timestamp says {}",
                snap.signed.version, snap_meta.version
            ),
        );
    }
    report.snapshot_version = snap.signed.version;
    c.threshold(
        &snap_file,
        "root",
        root.signed.authority("snapshot"),
        &snap.signatures,
        &snap_msg,
    );
    c.expiry(&snap_file, snap.signed.expires, now);

    // Targets roles, walked from `targets` through the delegations.
    let mut loaded: BTreeMap<String, Metadata<Targets>> = BTreeMap::new();
    let mut queue: Vec<(String, Option<String>)> = vec![("targets".into(), None)];
    let mut visited: BTreeSet<String> = BTreeSet::new();
    let bins_listable = u64::try_from(snap.signed.meta.len()).unwrap_or(u64::MAX);
    while let Some((role, parent)) = queue.pop() {
        if !visited.insert(role.clone()) {
            continue;
        }
        let Some(meta) = snap.signed.role_meta(&role).cloned() else {
            c.problem(
                &snap_file,
                "missing",
                format!("does not list delegated role {role}"),
            );
            continue;
        };
        let name = format!("{}.{role}.json", meta.version);
        let file = format!("metadata/{name}");
        let Some((md, msg, bytes)) = c.load::<Targets>(metadata, &name) else {
            continue;
        };
        if let Err(e) = meta.verify_bytes(&bytes) {
            c.problem(
                &file,
                "hash",
                format!("does not match the snapshot: {}", error_chain(&e)),
            );
        }
        if md.signed.version != meta.version {
            c.problem(
                &file,
                "version",
                format!(
                    "says version {}, snapshot says {}",
                    md.signed.version, meta.version
                ),
            );
        }
        match &parent {
            None => c.threshold(
                &file,
                "root",
                root.signed.authority("targets"),
                &md.signatures,
                &msg,
            ),
            Some(p) => {
                let a = loaded
                    .get(p)
                    .and_then(|pm| pm.signed.delegations.as_ref())
                    .and_then(|d| d.authority(&role));
                c.threshold(&file, p, a, &md.signatures, &msg);
            }
        }
        c.expiry(&file, md.signed.expires, now);
        if let Some(d) = &md.signed.delegations {
            if let Some(roles) = &d.roles {
                for r in roles.iter().rev() {
                    queue.push((r.name.clone(), Some(role.clone())));
                }
            }
            if let Some(b) = &d.succinct_roles {
                // Every bin must be in the snapshot (TAP 15); checking that first keeps a
                // bit_length of 32 from making us list 2^32 role names.
                if b.number_of_bins() > bins_listable {
                    c.problem(
                        &file,
                        "delegation",
                        format!(
                            "delegates to {} hash bins, more than the {} roles the snapshot lists",
                            b.number_of_bins(),
                            bins_listable
                        ),
                    );
                } else {
                    let names: Vec<String> = b.bin_names().collect();
                    for n in names.into_iter().rev() {
                        queue.push((n, Some(role.clone())));
                    }
                }
            }
        }
        loaded.insert(role, md);
    }
    for name in snap.signed.meta.keys() {
        let role = name.trim_end_matches(".json");
        if !visited.contains(role) {
            c.problem(
                &snap_file,
                "delegation",
                format!("lists {name}, which no role delegates to"),
            );
        }
    }
    report.roles_checked = loaded.len();

    // Target files: each in its role's delegation, present under its hash-prefixed name.
    let parent_of: BTreeMap<String, String> = loaded
        .iter()
        .flat_map(|(p, md)| {
            let mut v = Vec::new();
            if let Some(d) = &md.signed.delegations {
                for r in d.roles.iter().flatten() {
                    v.push((r.name.clone(), p.clone()));
                }
                if let Some(b) = &d.succinct_roles
                    && b.number_of_bins() <= bins_listable
                {
                    v.extend(b.bin_names().map(|n| (n, p.clone())));
                }
            }
            v
        })
        .collect();
    let mut jobs: Vec<(String, String, PathBuf, u64, Option<String>)> = Vec::new();
    for (role, md) in &loaded {
        for (path, tf) in &md.signed.targets {
            report.targets_checked += 1;
            if let Err(e) = check_target_path(path) {
                c.problem(format!("targets/{path}"), "path", error_chain(&e));
                continue;
            }
            if let Some(parent) = parent_of.get(role)
                && let Some(d) = loaded
                    .get(parent)
                    .and_then(|m| m.signed.delegations.as_ref())
                && !d.roles_for_target(path).iter().any(|x| &x.name == role)
            {
                c.problem(
                    format!("targets/{path}"),
                    "delegation",
                    format!("listed by {role}, but {parent}'s delegation to {role} does not cover this path"),
                );
            }
            let Some(sha) = tf.hashes.get("sha256") else {
                c.problem(
                    format!("targets/{path}"),
                    "hash",
                    format!("{role} lists no sha256 hash"),
                );
                continue;
            };
            let rel = hashed_target_path(path, sha);
            jobs.push((
                role.clone(),
                rel.clone(),
                targets.join(&rel),
                tf.length,
                Some(sha.clone()),
            ));
        }
    }
    let file_problems: Vec<Problem> = jobs
        .par_iter()
        .filter_map(|(role, rel, full, length, sha)| {
            let file = format!("targets/{rel}");
            let p = |check: &str, message: String| {
                Some(Problem {
                    file: file.clone(),
                    check: check.into(),
                    message,
                })
            };
            match hash_file(full) {
                Err(e) => p("missing", format!("listed by {role}: {e}")),
                Ok((len, _)) if len != *length => {
                    p("length", format!("is {len} bytes, {role} says {length}"))
                }
                Ok((_, h)) if Some(&h) != sha.as_ref() => p(
                    "hash",
                    format!(
                        "sha256 is {h}, {role} says {}",
                        sha.clone().unwrap_or_default()
                    ),
                ),
                Ok(_) => None,
            }
        })
        .collect();
    c.problems.extend(file_problems);
    report.ok = c.problems.is_empty();
    report.problems = c.problems;
    report
}
