//! Fetching a target's source exactly as its metadata names it: a git repository checked out at
//! the commit (and checked to be at it), or a tarball whose SHA-256 must match before anything
//! is unpacked.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use airlock_core::rebuild::SourceRef;
use airlock_fetch::{FetchError, Fetcher};
use sha2::{Digest, Sha256};

/// Largest source tarball fetched.
pub const MAX_TARBALL_LEN: u64 = 2 * 1024 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("git {step} of {url} failed: {detail}")]
    Git {
        step: &'static str,
        url: String,
        detail: String,
    },
    #[error("git checkout of {url} is at {got}, not the commit {want} the metadata names")]
    WrongCommit {
        url: String,
        want: String,
        got: String,
    },
    #[error("fetching {url}")]
    Fetch {
        url: String,
        #[source]
        source: FetchError,
    },
    #[error("tarball {url} has SHA-256 {got}, not {want} as the metadata says")]
    TarballDigest {
        url: String,
        want: String,
        got: String,
    },
    #[error("unpacking tarball {url}")]
    Unpack {
        url: String,
        #[source]
        source: std::io::Error,
    },
    #[error("no fetcher for the HTTPS source {url}")]
    NoFetcher { url: String },
    #[error("{op} {}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Fetches sources; HTTPS through the same fetcher (TLS trust, proxies, caps) as metadata.
pub struct SourceFetcher {
    pub fetcher: Option<Arc<Fetcher>>,
}

impl SourceFetcher {
    /// Fetch `source` into `dest` (which must not exist yet).
    pub fn fetch(&self, source: &SourceRef, dest: &Path) -> Result<(), SourceError> {
        match source {
            SourceRef::Git { url, commit } => fetch_git(url, commit, dest),
            SourceRef::Tarball { url, sha256 } => self.fetch_tarball(url, sha256, dest),
        }
    }

    fn fetch_tarball(&self, url: &str, sha256: &str, dest: &Path) -> Result<(), SourceError> {
        let fetcher = self
            .fetcher
            .as_ref()
            .ok_or_else(|| SourceError::NoFetcher {
                url: url.to_string(),
            })?;
        let bytes = fetcher
            .fetch_capped(url, MAX_TARBALL_LEN)
            .map_err(|source| SourceError::Fetch {
                url: url.to_string(),
                source,
            })?;
        let got = hex::encode(Sha256::digest(&bytes));
        if got != sha256 {
            return Err(SourceError::TarballDigest {
                url: url.to_string(),
                want: sha256.to_string(),
                got,
            });
        }
        unpack(url, &bytes, dest)
    }
}

fn fetch_git(url: &str, commit: &str, dest: &Path) -> Result<(), SourceError> {
    let run = |step: &'static str, args: &[&str], dir: Option<&Path>| {
        let mut c = crate::git();
        if let Some(d) = dir {
            c.current_dir(d);
        }
        let out = c.args(args).output().map_err(|e| SourceError::Git {
            step,
            url: url.to_string(),
            detail: format!("cannot run git: {e}"),
        })?;
        if !out.status.success() {
            return Err(SourceError::Git {
                step,
                url: url.to_string(),
                detail: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    let d = dest.to_str().ok_or_else(|| SourceError::Io {
        op: "using (not UTF-8)",
        path: dest.to_path_buf(),
        source: std::io::Error::other("path is not UTF-8"),
    })?;
    // `--` keeps a URL starting with '-' from being read as an option.
    run(
        "clone",
        &["clone", "--quiet", "--no-checkout", "--", url, d],
        None,
    )?;
    run(
        "checkout",
        &[
            "-c",
            "advice.detachedHead=false",
            "checkout",
            "--quiet",
            "--detach",
            commit,
        ],
        Some(dest),
    )?;
    let head = run("rev-parse", &["rev-parse", "HEAD"], Some(dest))?;
    if head != commit {
        return Err(SourceError::WrongCommit {
            url: url.to_string(),
            want: commit.to_string(),
            got: head,
        });
    }
    // The build gets the tree, not the history: a recipe must not depend on what else the
    // repository holds.
    let git_dir = dest.join(".git");
    fs::remove_dir_all(&git_dir).map_err(|source| SourceError::Io {
        op: "removing",
        path: git_dir,
        source,
    })
}

/// Unpack a tar (plain or gzip) into `dest`. An archive whose entries all sit under one
/// top-level directory (`app-1.0/...`, the usual layout) is unpacked from inside it, so the
/// recipe's paths are relative to the project's root either way. Paths leaving the directory,
/// links and device files are refused by the `tar` crate's checks and ours.
fn unpack(url: &str, bytes: &[u8], dest: &Path) -> Result<(), SourceError> {
    let bad = |source: std::io::Error| SourceError::Unpack {
        url: url.to_string(),
        source,
    };
    let reader: Box<dyn Read> = if bytes.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::GzDecoder::new(bytes))
    } else {
        Box::new(bytes)
    };
    let staging = dest.with_extension("unpack");
    fs::create_dir_all(&staging).map_err(bad)?;
    let mut archive = tar::Archive::new(reader);
    archive.set_preserve_permissions(false);
    archive.set_overwrite(false);
    for entry in archive.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        let kind = entry.header().entry_type();
        if !(kind.is_file() || kind.is_dir()) {
            return Err(bad(std::io::Error::other(format!(
                "entry {} is not a regular file or directory",
                entry
                    .path()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default()
            ))));
        }
        // unpack_in refuses absolute paths and '..'; false means it skipped such an entry.
        if !entry.unpack_in(&staging).map_err(bad)? {
            return Err(bad(std::io::Error::other(
                "an entry's path leaves the archive",
            )));
        }
    }
    let mut top = fs::read_dir(&staging)
        .map_err(bad)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(bad)?;
    let root = match top.as_mut_slice() {
        [only] if only.file_type().map_err(bad)?.is_dir() => only.path(),
        _ => staging.clone(),
    };
    fs::rename(&root, dest).map_err(bad)?;
    if root != staging {
        fs::remove_dir_all(&staging).map_err(bad)?;
    }
    Ok(())
}
