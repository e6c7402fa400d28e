//! `airlock log monitor --repo DIR | --expect FILE`: the vendor's alarm. Every logged release
//! statement for the vendor's repository must be in the vendor's own publishing record; one
//! that is not is a release signed with the vendor's keys that the vendor did not publish
//! (stolen keys), visible here even when it was sent to a single user.

use std::path::{Path, PathBuf};

use anyhow::Context;

use airlock_core::tlog::NoteVerifier;
use airlock_core::transparency::{ReleaseRecord, ReleaseScan, TransparencyPolicy};

use super::output::{Kind, Reported, usage};

#[derive(clap::Args, Debug)]
pub struct WatchArgs {
    /// Report every logged release statement for this repository (the identity in its root's
    /// transparency policy) that its publishing record, DIR/transparency/logged, does not hold;
    /// exit status 3 when there is one. --log-key defaults to the policy's log key.
    #[arg(long, value_name = "DIR", conflicts_with = "expect")]
    pub repo: Option<PathBuf>,
    /// As --repo, with the expected statements listed in FILE (the record's format: a copy of
    /// DIR/transparency/logged taken off the publishing machine). Needs --repository.
    #[arg(long, value_name = "FILE", requires = "repository")]
    pub expect: Option<PathBuf>,
    /// The repository identity to watch with --expect (the root field's `repository`).
    #[arg(long, value_name = "NAME", requires = "expect")]
    pub repository: Option<String>,
}

/// What to watch: one repository's statements against its record.
pub struct Watch {
    pub repository: String,
    pub record: ReleaseRecord,
    /// Where the record was read (named in the report).
    pub source: PathBuf,
    /// The log key the repository's policy names (`--repo` only).
    pub log_key: Option<NoteVerifier>,
}

impl WatchArgs {
    /// The repository and record to watch, `None` when neither --repo nor --expect is given.
    pub fn load(&self) -> anyhow::Result<Option<Watch>> {
        if let Some(dir) = &self.repo {
            let policy: TransparencyPolicy =
                airlock_repo::monitored_policy(dir)?.ok_or_else(|| {
                    usage(format!(
                        "{}: its root carries no transparency policy, so it names no repository \
                         identity to watch (give --expect FILE --repository NAME instead)",
                        dir.display()
                    ))
                })?;
            let record = airlock_repo::read_release_record(dir)?;
            return Ok(Some(Watch {
                repository: policy.repository().to_string(),
                record,
                source: airlock_repo::release_record_path(dir),
                log_key: policy.policy().logs.first().map(|l| l.verifier.clone()),
            }));
        }
        let (Some(file), Some(repository)) = (&self.expect, &self.repository) else {
            return Ok(None);
        };
        let record = read_expect(file)?;
        // A mistyped identity would match nothing and report nothing: refuse a list that names
        // other repositories only.
        if !record.is_empty() && !record.iter().any(|s| &s.repository == repository) {
            let mut named: Vec<String> = record.iter().map(|s| s.repository).collect();
            named.sort();
            named.dedup();
            return Err(usage(format!(
                "{} lists no statement for repository {repository:?} (it names {}); check \
                 --repository",
                file.display(),
                named.join(", ")
            )));
        }
        Ok(Some(Watch {
            repository: repository.clone(),
            record,
            source: file.clone(),
            log_key: None,
        }))
    }
}

fn read_expect(file: &Path) -> anyhow::Result<ReleaseRecord> {
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    ReleaseRecord::parse(&bytes).with_context(|| format!("expect list {}", file.display()))
}

/// The `releases` member of `log monitor --json`.
pub fn to_json(watch: &Watch, scan: &ReleaseScan) -> serde_json::Value {
    let unexpected: Vec<_> = scan
        .unexpected
        .iter()
        .map(|u| {
            serde_json::json!({
                "index": u.index,
                "role": u.statement.role,
                "version": u.statement.version,
                "sha256": hex::encode(u.statement.sha256),
            })
        })
        .collect();
    serde_json::json!({
        "repository": watch.repository,
        "record": watch.source,
        "expected": scan.expected,
        "unexpected": unexpected,
        "other_repositories": scan.other_repositories,
        "not_statements": scan.not_statements,
    })
}

/// Human output: one line per unexpected statement on standard output.
pub fn print(scan: &ReleaseScan) {
    for u in &scan.unexpected {
        println!(
            "unexpected release: entry {}: {} version {} sha256 {}",
            u.index,
            u.statement.role,
            u.statement.version,
            hex::encode(u.statement.sha256)
        );
    }
}

/// The summary for standard error.
pub fn summary(watch: &Watch, scan: &ReleaseScan) -> String {
    format!(
        "{} release statement(s) of {} found in {}; ignored: {} for other repositories, {} not \
         release statements",
        scan.expected,
        watch.repository,
        watch.source.display(),
        scan.other_repositories,
        scan.not_statements
    )
}

/// Exit status 3 when the log holds a statement the record lacks (already printed).
pub fn outcome(watch: &Watch, scan: &ReleaseScan) -> anyhow::Result<()> {
    if scan.unexpected.is_empty() {
        return Ok(());
    }
    Err(Reported {
        kind: Kind::Refused,
        message: format!(
            "{} logged release statement(s) for {} are not in {}: releases signed with this \
             repository's keys that its publisher did not record (stolen keys?)",
            scan.unexpected.len(),
            watch.repository,
            watch.source.display()
        ),
    }
    .into())
}
