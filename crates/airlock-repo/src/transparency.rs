//! Binary transparency on the publisher's side: the policy a root carries (set by `init` and
//! `rotate`), and logging every new root and targets-role version before it is published.
//!
//! Which policy a file's proof must satisfy is what a client will check (airlock-core's
//! `transparency` module): a new root N+1 under root N's policy (the one the client trusts
//! while it reads N+1), every targets-role file under the policy of the root that is live after
//! the publish. So:
//!
//! - a new root is logged under the published root's policy, or, when that one has none (the
//!   rotation that switches transparency on, or the first root), under its own;
//! - every new targets-role version is logged under the new live root's policy;
//! - when the live policy changes (switched on, another log or other witnesses, another
//!   repository name), every targets-role file the new snapshot lists is logged again under the
//!   new policy, changed or not, because clients holding the new root check them under it.
//!
//! Before a statement is submitted it is added to the publishing record,
//! `<repo>/transparency/logged` (format in airlock-core's `transparency` module docs): a
//! statement that reaches the log is always in the record, so `airlock log monitor --repo`
//! can report every logged statement the record lacks as a release this publisher never made.
//! Lines are only ever added (a crash between the record and the log leaves a line for a
//! statement the log may never have seen, which the monitor does not mind); the file is
//! rewritten whole through airlock-fs, so it is never torn.
//!
//! Each bundle is verified here, offline, exactly as a client with no log history would
//! (`ReleaseCheck` with an empty `VerifierState`) before anything is published: a log that
//! answers with a proof for other bytes, or a checkpoint below the witness quorum, stops the
//! publish with the published tree untouched.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use airlock_core::tlog::VerifierState;
use airlock_core::transparency::{
    EXTENSION_FIELD, RECORD_HEADER, ReleaseCheck, ReleaseError, ReleaseRecord, ReleaseStatement,
    ReleaseStep, TransparencyPolicy, proof_file_name,
};

use crate::delegate::ChangeReport;
use crate::error::RepoError;
use crate::fsutil::io_err;
use crate::repo::{
    PublishedState, Repository, published_dir, read_metadata, read_published, work_dir,
};

/// The publishing record, relative to the repository directory.
pub const RELEASE_RECORD: &str = "transparency/logged";

/// The publishing record of the repository in `dir`.
pub fn release_record_path(dir: &Path) -> PathBuf {
    dir.join(RELEASE_RECORD)
}

/// Read the publishing record of the repository in `dir` (empty when nothing was logged yet).
/// Takes no lock: a monitor may read it while a publish runs, and sees the old or the new file.
pub fn read_release_record(dir: &Path) -> Result<ReleaseRecord, RepoError> {
    let path = release_record_path(dir);
    match std::fs::read(&path) {
        Ok(bytes) => parse_record(&path, &bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(ReleaseRecord::default()),
        Err(e) => Err(io_err(&path, e)),
    }
}

fn parse_record(path: &Path, bytes: &[u8]) -> Result<ReleaseRecord, RepoError> {
    ReleaseRecord::parse(bytes).map_err(|e| RepoError::ReleaseRecord {
        path: path.to_path_buf(),
        source: Box::new(e),
    })
}

/// The transparency policy whose repository identity a monitor watches: the published root's,
/// or, when nothing is published or the published root has none, the staged root's. Read-only,
/// no lock.
pub fn monitored_policy(dir: &Path) -> Result<Option<TransparencyPolicy>, RepoError> {
    if !dir.join("work").exists() {
        return Err(RepoError::NotARepository {
            path: dir.to_path_buf(),
        });
    }
    if let Some(root) = read_published(&published_dir(dir))?.root
        && let Some(p) = policy_of(&root.signed, "published")?
    {
        return Ok(Some(p));
    }
    let work = work_dir(dir);
    let Some(staged) = work.current()? else {
        return Err(RepoError::NotARepository {
            path: dir.to_path_buf(),
        });
    };
    let root: airlock_core::tuf::metadata::Metadata<airlock_core::tuf::roles::Root> =
        read_metadata(&staged.join("root.json"))?;
    policy_of(&root.signed, "staged")
}

/// Add `statements` to the record of the repository in `dir`, durably, before they are
/// submitted. A damaged record stops the publish: appending to it would hide the damage.
fn record_submissions(dir: &Path, statements: &[ReleaseStatement]) -> Result<(), RepoError> {
    let path = release_record_path(dir);
    let mut text = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let parent = airlock_fs::parent_dir(&path);
            std::fs::create_dir_all(parent).map_err(|e| io_err(parent, e))?;
            airlock_fs::sync_dir(dir)?;
            format!("{RECORD_HEADER}\n").into_bytes()
        }
        Err(e) => return Err(io_err(&path, e)),
    };
    let mut record = parse_record(&path, &text)?;
    let mut added = false;
    for s in statements {
        if record.insert(s) {
            if !text.is_empty() && !text.ends_with(b"\n") {
                text.push(b'\n');
            }
            text.extend_from_slice(s.record_line().as_bytes());
            text.push(b'\n');
            added = true;
        }
    }
    if added {
        crate::fsutil::write_atomic(&path, &text)?;
    }
    Ok(())
}

/// The boxed error a [`ReleaseLog`] returns (its message should name the log's URL).
pub type ReleaseLogError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A transparency log the publisher submits statements to. `publish` takes one, so that this
/// crate needs no HTTP client (airlock-log's `client::LogClient` is the real one).
pub trait ReleaseLog {
    /// Log every statement in the log that `policy` names and return each one's tlog-proof
    /// bundle (c2sp.org/tlog-proof), in order, once a checkpoint covering them is published.
    fn log(
        &self,
        policy: &TransparencyPolicy,
        statements: &[Vec<u8>],
    ) -> Result<Vec<Vec<u8>>, ReleaseLogError>;

    /// How errors name the log that `policy` names, e.g. its origin and URL.
    fn describe(&self, policy: &TransparencyPolicy) -> String {
        format!("log {}", policy.log_origin())
    }
}

/// The transparency policy of a root, as a repository error when it cannot be read.
pub(crate) fn policy_of(
    root: &airlock_core::tuf::roles::Root,
    which: &str,
) -> Result<Option<TransparencyPolicy>, RepoError> {
    TransparencyPolicy::from_root(root).map_err(|e| RepoError::Transparency {
        what: format!("{which} root v{}", root.version),
        source: Box::new(e),
    })
}

/// One metadata file to log: its role, version, published file name and exact bytes.
pub(crate) struct ToLog {
    pub role: String,
    pub version: u64,
    pub file: String,
    pub bytes: Vec<u8>,
}

impl Repository {
    /// The transparency policy of the staged root (`None`: transparency is off).
    pub fn transparency(&self) -> Result<Option<TransparencyPolicy>, RepoError> {
        policy_of(&self.root.signed, "staged")
    }

    /// Set (or, with `None`, remove) the transparency policy in the staged root: a new root
    /// version, signed with every root key on this machine. Publishing it needs the root
    /// thresholds of the published and the new root, like any other root change.
    pub fn set_transparency(
        &mut self,
        policy: Option<&TransparencyPolicy>,
    ) -> Result<ChangeReport, RepoError> {
        let current = self.transparency()?;
        if current.as_ref() == policy {
            return Err(RepoError::invalid(match policy {
                Some(_) => "the staged root already carries this transparency policy",
                None => "the staged root carries no transparency policy",
            }));
        }
        self.set_root_field(EXTENSION_FIELD, policy.map(TransparencyPolicy::to_value))
    }

    /// Set (`Some`) or remove (`None`) an extension field of the staged root's `signed`: a
    /// new root version, signed with every root key on this machine.
    pub(crate) fn set_root_field(
        &mut self,
        field: &str,
        value: Option<serde_json::Value>,
    ) -> Result<ChangeReport, RepoError> {
        let fields = &mut self.root.signed.unrecognized;
        match value {
            Some(v) => {
                fields.insert(field.to_string(), v);
            }
            None => {
                fields.remove(field);
            }
        }
        let published = self.published_state()?;
        let (roles, unsigned) = self.finish_change(
            &std::collections::BTreeSet::from(["root".to_string()]),
            &published,
        )?;
        Ok(ChangeReport {
            roles,
            unsigned,
            new_keyids: Vec::new(),
        })
    }

    /// The transparency policy of the published root (`None`: none, or nothing published).
    pub fn published_root_transparency(&self) -> Result<Option<TransparencyPolicy>, RepoError> {
        match &self.published_state()?.root {
            Some(r) => policy_of(&r.signed, "published"),
            None => Ok(None),
        }
    }

    /// Set (or remove) where `publish` logs releases (`[release_log]` in the config).
    pub fn set_release_log(
        &mut self,
        log: Option<crate::config::ReleaseLogConfig>,
    ) -> Result<(), RepoError> {
        self.config.release_log = log;
        self.commit()
    }

    /// Log `files` and return the bundles to publish, by bundle file name. `new_root` is the
    /// new root's file, if one is published; `targets` are the targets-role files to log;
    /// `all_live` is every targets-role file the new snapshot lists, logged again when the
    /// live policy changes. Does nothing (and needs no log) when neither root has a policy.
    pub(crate) fn log_release(
        &self,
        published: &PublishedState,
        log: Option<&dyn ReleaseLog>,
        new_root: Option<ToLog>,
        targets: Vec<ToLog>,
        all_live: impl FnOnce() -> Result<Vec<ToLog>, RepoError>,
    ) -> Result<BTreeMap<String, Vec<u8>>, RepoError> {
        let old = match &published.root {
            Some(r) => policy_of(&r.signed, "published")?,
            None => None,
        };
        let new = self.transparency()?;
        let mut batches: Vec<(TransparencyPolicy, Vec<ToLog>)> = Vec::new();
        if let Some(root) = new_root {
            // The client reads root N+1 while trusting root N.
            if let Some(p) = old.clone().or_else(|| new.clone()) {
                batches.push((p, vec![root]));
            }
        }
        if let Some(p) = &new {
            let files = if old.as_ref() != Some(p) {
                all_live()?
            } else {
                targets
            };
            if !files.is_empty() {
                match batches.iter_mut().find(|(q, _)| q == p) {
                    Some((_, b)) => b.extend(files),
                    None => batches.push((p.clone(), files)),
                }
            }
        }
        let mut out = BTreeMap::new();
        if batches.is_empty() {
            return Ok(out);
        }
        let log = log.ok_or_else(|| RepoError::NoReleaseLog {
            origin: batches
                .first()
                .map(|(p, _)| p.log_origin().to_string())
                .unwrap_or_default(),
        })?;
        for (policy, files) in batches {
            let statements: Vec<ReleaseStatement> = files
                .iter()
                .map(|f| {
                    ReleaseStatement::for_metadata(
                        policy.repository(),
                        &f.role,
                        f.version,
                        &f.bytes,
                    )
                })
                .collect();
            record_submissions(&self.dir, &statements)?;
            let statements: Vec<Vec<u8>> =
                statements.iter().map(ReleaseStatement::to_bytes).collect();
            let bundles =
                log.log(&policy, &statements)
                    .map_err(|source| RepoError::ReleaseLog {
                        log: log.describe(&policy),
                        count: statements.len(),
                        source,
                    })?;
            if bundles.len() != files.len() {
                return Err(RepoError::ReleaseLog {
                    log: log.describe(&policy),
                    count: statements.len(),
                    source: format!(
                        "the log client returned {} bundle(s) for {} statement(s)",
                        bundles.len(),
                        files.len()
                    )
                    .into(),
                });
            }
            // Read the clock after the log answered: a cosignature dated after `now` would not
            // count.
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            for (f, bundle) in files.iter().zip(bundles) {
                verify_bundle(&policy, &log.describe(&policy), f, &bundle, now)?;
                out.insert(proof_file_name(&f.file), bundle);
            }
        }
        Ok(out)
    }
}

/// Check `bundle` as a client that has seen nothing of the log yet would.
fn verify_bundle(
    policy: &TransparencyPolicy,
    log: &str,
    f: &ToLog,
    bundle: &[u8],
    now: u64,
) -> Result<(), RepoError> {
    let check = ReleaseCheck::new(policy, &f.role, f.version, &f.bytes);
    let refused = |source: ReleaseError| RepoError::ReleaseProof {
        file: proof_file_name(&f.file),
        log: log.to_string(),
        source: Box::new(source),
    };
    match check
        .verify(&VerifierState::new(), Some(bundle), None, now)
        .map_err(refused)?
    {
        ReleaseStep::Accepted(_) => Ok(()),
        // An empty state never asks for consistency; treat it as a refusal all the same.
        ReleaseStep::NeedConsistency { .. } => Err(RepoError::invalid(format!(
            "{}: the proof bundle from {log} asked for a consistency proof against an empty state",
            proof_file_name(&f.file),
        ))),
    }
}
