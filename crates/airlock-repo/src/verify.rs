//! `verify`: check a published tree the way a client would. The verdict comes from the
//! client's own trust code: the tree is loaded into airlock-core's `TrustedSet` (root chain,
//! timestamp, snapshot, targets) and every delegated role is reached through `TargetSearch`,
//! exactly as `airlock update` reads them; each target is then resolved with the client's search
//! and its file checked against every listed hash. This module adds only what a publisher needs
//! on top: which file a refusal concerns, checks of the published layout (`root.json` is the
//! newest `N.root.json`, no gap in the root chain, consistent snapshots, target files present
//! under their hash-prefixed names), and a list of problems rather than the first one.
//!
//! An expired role does not hide the rest: the walk is repeated at a reference time just
//! before that expiry, so every expiry is listed and every signature still checked.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use airlock_core::error_chain;
use airlock_core::tuf::hashes::MultiHasher;
use airlock_core::tuf::roles::TargetFile;
use airlock_core::tuf::search::{SearchStep, TargetSearch};
use airlock_core::tuf::trusted::{TrustError, TrustedSet};
use chrono::{DateTime, Utc};
use rayon::prelude::*;

use crate::targets::{check_target_path, hashed_target_path};

/// One thing wrong with a published tree.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    /// The file concerned, relative to the tree (`metadata/3.targets.json`, `targets/a/HASH.x`).
    pub file: String,
    /// Which check failed: `signature`, `version`, `expiry`, `length`, `hash`, `missing`,
    /// `parse`, `delegation`, `path`, `consistent_snapshot`, `refused` (any other refusal of the
    /// client's trust code).
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

impl Problem {
    fn new(file: impl Into<String>, check: &str, message: impl Into<String>) -> Self {
        Problem {
            file: file.into(),
            check: check.to_string(),
            message: message.into(),
        }
    }
}

/// How many times an expiry may lower the reference time: one per role is plenty, this only
/// bounds the loop.
const MAX_EXPIRY_RETRIES: usize = 64;

/// The client's walk over the local tree, stopped at its first refusal.
struct Walk {
    trusted: Option<TrustedSet>,
    /// `metadata/<file>` each role was read from.
    files: BTreeMap<String, String>,
    /// (role, parent) pairs loaded, in walk order.
    roles: Vec<(String, String)>,
    /// Hash bins and delegations the walk could not reach (cap), if any.
    not_visited: u64,
    refusal: Option<Refusal>,
}

struct Refusal {
    file: String,
    error: Result<TrustError, Problem>,
}

fn read(metadata: &Path, name: &str) -> Result<Vec<u8>, Problem> {
    fs::read(metadata.join(name)).map_err(|e| {
        Problem::new(
            format!("metadata/{name}"),
            "missing",
            format!("cannot read: {e}"),
        )
    })
}

fn root_versions(metadata: &Path) -> Vec<u64> {
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
    versions
}

/// Load the tree into a `TrustedSet` as a client does, at `reference` time.
fn walk(metadata: &Path, newest_root: u64, reference: DateTime<Utc>) -> Walk {
    let mut w = Walk {
        trusted: None,
        files: BTreeMap::new(),
        roles: Vec::new(),
        not_visited: 0,
        refusal: None,
    };
    if let Err(r) = load(metadata, newest_root, reference, &mut w) {
        w.refusal = Some(*r);
    }
    w
}

/// A refusal by the client's trust code while loading `file` (under `metadata/`).
fn refused(file: &str) -> impl FnOnce(TrustError) -> Box<Refusal> + '_ {
    move |e| {
        Box::new(Refusal {
            file: format!("metadata/{file}"),
            error: Ok(e),
        })
    }
}

/// A file that could not be read.
fn unreadable(p: Problem) -> Box<Refusal> {
    Box::new(Refusal {
        file: p.file.clone(),
        error: Err(p),
    })
}

fn load(
    metadata: &Path,
    newest_root: u64,
    reference: DateTime<Utc>,
    w: &mut Walk,
) -> Result<(), Box<Refusal>> {
    let first = read(metadata, "1.root.json").map_err(unreadable)?;
    let trusted = w
        .trusted
        .insert(TrustedSet::new(&first, reference).map_err(refused("1.root.json"))?);
    w.files.insert("root".into(), "1.root.json".into());
    for v in 2..=newest_root {
        let name = format!("{v}.root.json");
        let bytes = read(metadata, &name).map_err(|mut p| {
            p.message = "gap in the root chain".into();
            unreadable(p)
        })?;
        trusted.update_root(&bytes).map_err(refused(&name))?;
        w.files.insert("root".into(), name);
    }
    // The final root's expiry is checked when the timestamp is loaded: name the root file then.
    trusted
        .check_final_root()
        .map_err(refused(&w.files["root"]))?;
    let ts = read(metadata, "timestamp.json").map_err(unreadable)?;
    trusted
        .update_timestamp(&ts)
        .map_err(refused("timestamp.json"))?;
    w.files.insert("timestamp".into(), "timestamp.json".into());
    let snap_version = trusted
        .timestamp()
        .and_then(|t| t.signed.snapshot_meta())
        .map_or(0, |m| m.version);
    let snap_name = format!("{snap_version}.snapshot.json");
    let bytes = read(metadata, &snap_name).map_err(unreadable)?;
    trusted
        .update_snapshot(&bytes)
        .map_err(refused(&snap_name))?;
    w.files.insert("snapshot".into(), snap_name.clone());
    let max = trusted.snapshot().map_or(0, |s| s.signed.meta.len());
    let mut search = TargetSearch::every_role(max);
    loop {
        let step = search
            .step(trusted)
            .map_err(|e| unreadable(Problem::new("metadata", "refused", error_chain(&e))))?;
        let SearchStep::NeedRole { role, parent } = step else {
            break;
        };
        let version = trusted
            .snapshot_entry(&role)
            .map_err(refused(&snap_name))?
            .version;
        let name = format!("{version}.{role}.json");
        let bytes = read(metadata, &name).map_err(unreadable)?;
        if role == "targets" && parent == "root" {
            trusted.update_targets(&bytes).map_err(refused(&name))?;
        } else {
            trusted
                .update_delegated_targets(&bytes, &role, &parent)
                .map_err(refused(&name))?;
        }
        w.files.insert(role.clone(), name);
        w.roles.push((role, parent));
    }
    w.not_visited = search.roles_not_visited();
    Ok(())
}

/// The `check` name of a refusal by the client's trust code.
fn check_of(e: &TrustError) -> &'static str {
    match e {
        TrustError::Metadata(_) => "parse",
        TrustError::Signatures { .. } => "signature",
        TrustError::Expired { .. } => "expiry",
        TrustError::Content { .. } => "hash",
        TrustError::RootVersion { .. }
        | TrustError::Rollback { .. }
        | TrustError::SnapshotMetaRollback { .. }
        | TrustError::RoleRollbackInSnapshot { .. }
        | TrustError::VersionMismatch { .. } => "version",
        TrustError::NotInSnapshot { .. } | TrustError::RoleDroppedFromSnapshot { .. } => "missing",
        TrustError::NotDelegated { .. } | TrustError::RoleNameCase { .. } => "delegation",
        _ => "refused",
    }
}

/// Verify the tree at `published` (holding `metadata/` and `targets/`) at time `now`.
pub fn verify_published(published: &Path, now: DateTime<Utc>) -> VerifyReport {
    verify_dirs(&published.join("metadata"), &published.join("targets"), now)
}

/// Verify metadata in `metadata` and hash-prefixed target files in `targets`.
pub fn verify_dirs(metadata: &Path, targets: &Path, now: DateTime<Utc>) -> VerifyReport {
    let mut problems: Vec<Problem> = Vec::new();
    let mut report = VerifyReport::default();

    let versions = root_versions(metadata);
    let Some(&newest) = versions.last() else {
        problems.push(Problem::new(
            "metadata/1.root.json",
            "missing",
            "no versioned root metadata (N.root.json)",
        ));
        report.problems = problems;
        return report;
    };

    // The client's walk; each expiry is listed and the walk repeated just before it.
    let mut reference = now;
    let mut walked = walk(metadata, newest, reference);
    for _ in 0..MAX_EXPIRY_RETRIES {
        let expires = match &walked.refusal {
            Some(Refusal {
                error: Ok(TrustError::Expired { expires, .. }),
                ..
            }) => *expires,
            _ => break,
        };
        if let Some(Refusal { file, error: Ok(e) }) = walked.refusal.take() {
            problems.push(Problem::new(file, "expiry", error_chain(&e)));
        }
        reference = expires - chrono::Duration::seconds(1);
        walked = walk(metadata, newest, reference);
    }
    let refused = walked.refusal.is_some();
    if let Some(r) = walked.refusal.take() {
        problems.push(match r.error {
            Ok(e) => Problem::new(r.file, check_of(&e), error_chain(&e)),
            Err(p) => p,
        });
    }
    if walked.not_visited > 0 {
        problems.push(Problem::new(
            "metadata",
            "delegation",
            format!(
                "{} delegated roles are beyond the client's reach (more than the snapshot lists)",
                walked.not_visited
            ),
        ));
    }

    // Layout checks a client does not make but a publisher must get right.
    if let Some(root_name) = walked.files.get("root") {
        let root_file = format!("metadata/{root_name}");
        match (
            fs::read(metadata.join("root.json")),
            fs::read(metadata.join(root_name)),
        ) {
            (Ok(a), Ok(b)) if a == b => {}
            (Ok(_), _) => problems.push(Problem::new(
                "metadata/root.json",
                "version",
                "differs from the newest N.root.json",
            )),
            (Err(e), _) => problems.push(Problem::new(
                "metadata/root.json",
                "missing",
                error_chain(&e),
            )),
        }
        if let Some(t) = &walked.trusted {
            report.root_version = t.root().signed.version;
            if t.root().signed.consistent_snapshot != Some(true) {
                problems.push(Problem::new(
                    root_file,
                    "consistent_snapshot",
                    "consistent_snapshot is not true",
                ));
            }
        }
    }
    let Some(trusted) = walked.trusted else {
        report.ok = false;
        report.problems = problems;
        return report;
    };
    report.timestamp_version = trusted.timestamp().map_or(0, |t| t.signed.version);
    report.snapshot_version = trusted.snapshot().map_or(0, |s| s.signed.version);
    report.roles_checked = walked.roles.len();
    if let Some(snap) = trusted.snapshot() {
        let reached: BTreeSet<&str> = walked.roles.iter().map(|(r, _)| r.as_str()).collect();
        if !refused && problems.iter().all(|p| p.check == "expiry") {
            for name in snap.signed.meta.keys() {
                let role = name.trim_end_matches(".json");
                if !reached.contains(role) {
                    problems.push(Problem::new(
                        format!(
                            "metadata/{}",
                            walked.files.get("snapshot").cloned().unwrap_or_default()
                        ),
                        "delegation",
                        format!("lists {name}, which no role delegates to"),
                    ));
                }
            }
        }
    }

    // Target files: each resolved by the client's search to the role listing it, and present
    // under its hash-prefixed name with every listed hash matching.
    let mut jobs: Vec<(String, String, PathBuf, TargetFile)> = Vec::new();
    for (role, parent) in &walked.roles {
        let Some(md) = trusted.targets_role(role, parent) else {
            continue;
        };
        for (path, tf) in &md.signed.targets {
            report.targets_checked += 1;
            if let Err(e) = check_target_path(path) {
                problems.push(Problem::new(
                    format!("targets/{path}"),
                    "path",
                    error_chain(&e),
                ));
                continue;
            }
            match resolve(&trusted, path) {
                Some(found) if &found == role => {}
                Some(found) => problems.push(Problem::new(
                    format!("targets/{path}"),
                    "delegation",
                    format!("listed by {role}, but a client finds it in {found}"),
                )),
                None => problems.push(Problem::new(
                    format!("targets/{path}"),
                    "delegation",
                    format!(
                        "listed by {role}, but a client's search never reaches {role} for this path"
                    ),
                )),
            }
            let Some(sha) = tf.hashes.get("sha256") else {
                problems.push(Problem::new(
                    format!("targets/{path}"),
                    "hash",
                    format!("{role} lists no sha256 hash"),
                ));
                continue;
            };
            let rel = hashed_target_path(path, sha);
            jobs.push((role.clone(), rel.clone(), targets.join(&rel), tf.clone()));
        }
    }
    let file_problems: Vec<Problem> = jobs
        .par_iter()
        .filter_map(|(role, rel, full, tf)| check_target_file(role, rel, full, tf))
        .collect();
    problems.extend(file_problems);
    report.ok = problems.is_empty();
    report.problems = problems;
    report
}

/// Which role a client's search finds `path` in (every role is already trusted).
fn resolve(trusted: &TrustedSet, path: &str) -> Option<String> {
    let mut search = TargetSearch::new(path);
    match search.step(trusted) {
        Ok(SearchStep::Found { role, .. }) => Some(role),
        _ => None,
    }
}

/// The client's check of a downloaded target: the length, then every listed hash.
fn check_target_file(role: &str, rel: &str, full: &Path, tf: &TargetFile) -> Option<Problem> {
    let file = format!("targets/{rel}");
    let problem = |check: &str, message: String| Some(Problem::new(file.clone(), check, message));
    let mut f = match fs::File::open(full) {
        Ok(f) => f,
        Err(e) => return problem("missing", format!("listed by {role}: {e}")),
    };
    let mut hasher = match MultiHasher::new(&tf.hashes) {
        Ok(h) => h,
        Err(e) => return problem("hash", format!("{role}: {e}")),
    };
    let mut buf = vec![0u8; 256 * 1024];
    let mut len = 0u64;
    loop {
        match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                len += n as u64;
                hasher.update(buf.get(..n).unwrap_or_default());
            }
            Err(e) => return problem("missing", format!("reading: {e}")),
        }
    }
    if len != tf.length {
        return problem(
            "length",
            format!("is {len} bytes, {role} says {}", tf.length),
        );
    }
    match hasher.finish() {
        Ok(()) => None,
        Err(e) => problem("hash", format!("{role}: {e}")),
    }
}
