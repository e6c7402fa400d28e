//! airlock-rebuild: rebuild a target from the source and recipe its signed metadata names, in
//! a sandbox, and compare with the published bytes (see README.md and docs/rebuild.md).
//!
//! A rebuild's work directory keeps everything a person needs afterwards:
//!
//! ```text
//! WORK/source/          the source tree as fetched and as the build left it
//! WORK/build.log        the build's standard output and error
//! WORK/rebuilt          a copy of the artifact the build produced
//! WORK/published        the published bytes (verified against the metadata by the caller)
//! WORK/mismatch.json    on a mismatch: both digests and sizes (the report)
//! WORK/attestation.dsse.json   on a match: the signed attestation (written by the caller)
//! ```
#![forbid(unsafe_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use airlock_core::crypto::Signer;
use airlock_core::rebuild::{AttestationError, Envelope, RebuildInfo, RebuildStatement};
use airlock_fs::{FsError, WriteOptions, write_atomic};
use sha2::{Digest, Sha256};

pub mod publish;
pub mod sandbox;
pub mod source;

pub use sandbox::{Sandbox, SandboxError};
pub use source::SourceError;

/// File names inside a rebuild's work directory.
pub const SOURCE_DIR: &str = "source";
pub const BUILD_LOG: &str = "build.log";
pub const REBUILT_FILE: &str = "rebuilt";
pub const PUBLISHED_FILE: &str = "published";
pub const MISMATCH_REPORT: &str = "mismatch.json";
/// What `airlock diff` shows between the published and the rebuilt file, on a mismatch.
pub const MISMATCH_DIFF: &str = "mismatch.diff.txt";
pub const ATTESTATION_FILE: &str = "attestation.dsse.json";

/// Why a rebuild could not be carried out (a mismatch is not an error: see [`Outcome`]).
#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    #[error("target {target}: its metadata has no rebuild recipe (custom.rebuild)")]
    NoRecipe { target: String },
    #[error("fetching the source")]
    Source(#[source] SourceError),
    #[error("building")]
    Sandbox(#[source] SandboxError),
    #[error(
        "the build succeeded but left no file at the recipe's artifact path {artifact} (log: {})",
        log.display()
    )]
    NoArtifact { artifact: String, log: PathBuf },
    #[error("rebuild work directory")]
    Fs(#[source] FsError),
    #[error("{op} {}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("signing the attestation")]
    Attestation(#[source] AttestationError),
}

fn io_err(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> RebuildError {
    let path = path.to_path_buf();
    move |source| RebuildError::Io { op, path, source }
}

/// What is being rebuilt: a target as trusted metadata lists it.
#[derive(Debug, Clone)]
pub struct Job {
    pub target: String,
    /// SHA-256 (lowercase hex) and length of the published file, from trusted metadata.
    pub sha256: String,
    pub length: u64,
    pub rebuild: RebuildInfo,
}

/// A file's digest and size.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FileDigest {
    pub sha256: String,
    pub length: u64,
    pub path: PathBuf,
}

/// How a rebuild ended.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// The rebuilt artifact is byte for byte the published file.
    Match { rebuilt: FileDigest },
    /// It differs; the report names both digests and sizes, and both files are kept.
    Mismatch {
        published: FileDigest,
        rebuilt: FileDigest,
        report: PathBuf,
        /// What `airlock diff` says, in one line (its full account is in the report).
        headline: String,
    },
}

fn digest_file(path: &Path) -> Result<FileDigest, RebuildError> {
    let bytes = fs::read(path).map_err(io_err("reading", path))?;
    Ok(FileDigest {
        sha256: hex::encode(Sha256::digest(&bytes)),
        length: bytes.len() as u64,
        path: path.to_path_buf(),
    })
}

/// Rebuild `job` in `work` (created; must not exist or be empty) with the source fetched by
/// `fetch`, and compare with `published` (the bytes the caller downloaded and verified).
pub fn rebuild(
    job: &Job,
    published: &Path,
    work: &Path,
    sandbox: &Sandbox,
    fetch: &source::SourceFetcher,
) -> Result<Outcome, RebuildError> {
    fs::create_dir_all(work).map_err(io_err("creating", work))?;
    let src = work.join(SOURCE_DIR);
    fetch
        .fetch(&job.rebuild.source, &src)
        .map_err(RebuildError::Source)?;
    let log = work.join(BUILD_LOG);
    sandbox
        .run(&job.rebuild, &src, &log)
        .map_err(RebuildError::Sandbox)?;
    let artifact = src.join(&job.rebuild.recipe.artifact);
    if !artifact.is_file() {
        return Err(RebuildError::NoArtifact {
            artifact: job.rebuild.recipe.artifact.clone(),
            log,
        });
    }
    let rebuilt_path = work.join(REBUILT_FILE);
    fs::copy(&artifact, &rebuilt_path).map_err(io_err("copying the artifact to", &rebuilt_path))?;
    let kept = work.join(PUBLISHED_FILE);
    if published != kept {
        fs::copy(published, &kept).map_err(io_err("keeping the published file as", &kept))?;
    }
    let rebuilt = digest_file(&rebuilt_path)?;
    let published = digest_file(&kept)?;
    // The published copy is compared too: a caller that handed in unverified bytes gets a
    // mismatch, not an attestation for the metadata's digest.
    if rebuilt.sha256 == job.sha256
        && rebuilt.length == job.length
        && published.sha256 == rebuilt.sha256
        && published.length == rebuilt.length
    {
        return Ok(Outcome::Match { rebuilt });
    }
    let (report, headline) = report_mismatch(job, &published, &rebuilt, work)?;
    Ok(Outcome::Mismatch {
        published,
        rebuilt,
        report,
        headline,
    })
}

/// Write the mismatch report: the target, both digests and sizes, where both files are, and
/// what differs inside them (`airlock diff`, archive-aware: content apart from metadata-only
/// differences), also as text in [`MISMATCH_DIFF`]. Returns the report's path and the diff's
/// one-line verdict. A diff that cannot be made (an input over its caps) is named in the
/// report instead; the mismatch stands either way.
pub fn report_mismatch(
    job: &Job,
    published: &FileDigest,
    rebuilt: &FileDigest,
    work: &Path,
) -> Result<(PathBuf, String), RebuildError> {
    let (diff, headline) = match airlock_diff::diff_paths(
        &published.path,
        &rebuilt.path,
        &airlock_diff::Options::default(),
    ) {
        Ok(d) => {
            let text_path = work.join(MISMATCH_DIFF);
            write_atomic(
                &text_path,
                d.render(usize::MAX).as_bytes(),
                &WriteOptions::default(),
            )
            .map_err(RebuildError::Fs)?;
            (d.to_json(), d.headline())
        }
        Err(e) => {
            let why = format!("no diff: {}", airlock_core::error_chain(&e));
            (serde_json::Value::String(why.clone()), why)
        }
    };
    let report = serde_json::json!({
        "target": job.target,
        "expected": {"sha256": job.sha256, "length": job.length},
        "published": published,
        "rebuilt": rebuilt,
        "source": job.rebuild.source_value(),
        "recipe": job.rebuild.recipe_value(),
        "build_log": work.join(BUILD_LOG),
        "diff": diff,
    });
    let path = work.join(MISMATCH_REPORT);
    let mut bytes = serde_json::to_vec_pretty(&report).unwrap_or_default();
    bytes.push(b'\n');
    write_atomic(&path, &bytes, &WriteOptions::default()).map_err(RebuildError::Fs)?;
    Ok((path, headline))
}

/// Sign the attestation for a matching rebuild and write it into `work`.
pub fn attest(
    job: &Job,
    rebuilt: &FileDigest,
    sandbox: &Sandbox,
    rebuilder: &str,
    signer: &dyn Signer,
    work: &Path,
) -> Result<(PathBuf, Envelope), RebuildError> {
    let mut environment = std::collections::BTreeMap::new();
    environment.insert("sandbox".to_string(), sandbox.describe());
    if let (Some(dir), airlock_core::rebuild::Builder::Toolchain(name)) = (
        sandbox.toolchain_for(&job.rebuild),
        &job.rebuild.recipe.builder,
    ) {
        environment.insert(
            "toolchain".to_string(),
            format!("{name} from {}", dir.display()),
        );
    }
    environment.insert(
        "platform".to_string(),
        format!("{}-{}", std::env::consts::ARCH, std::env::consts::OS),
    );
    let statement = RebuildStatement {
        target: job.target.clone(),
        sha256: rebuilt.sha256.clone(),
        length: rebuilt.length,
        rebuild: job.rebuild.clone(),
        environment,
        rebuilder: rebuilder.to_string(),
    };
    let envelope = statement.sign(signer).map_err(RebuildError::Attestation)?;
    let path = work.join(ATTESTATION_FILE);
    write_atomic(&path, &envelope.to_json(), &WriteOptions::default()).map_err(RebuildError::Fs)?;
    Ok((path, envelope))
}

/// `git` from PATH, for the source fetcher.
pub(crate) fn git() -> Command {
    let mut c = Command::new("git");
    // The rebuilder's own git configuration must not change what is checked out.
    c.env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_TERMINAL_PROMPT", "0");
    c
}
