//! Archive-aware comparison of two artifacts, for a person judging why a rebuild does not
//! match a published release (`airlock diff A B`, and `airlock rebuild` on a mismatch).
//!
//! Two checksums that differ say nothing about *what* differs. This crate opens both sides
//! (tar, plain or compressed with gzip, xz or zstd; zip and jar; PHP's native phar format;
//! a single gzip/xz/zstd-compressed file), pairs their members by name, and sorts every
//! difference into one of two kinds:
//!
//! - **content**: a member added, removed, or with other bytes, another kind or link target;
//!   what a user of the unpacked artifact would get differently. Text members get a unified
//!   diff, binary ones their sizes and SHA-256, archives inside archives are opened in turn.
//! - **metadata only**: timestamps, modes, owners, member order, compression headers and
//!   methods, signatures over the rest; typical of a build that is not yet reproducible, not of
//!   a trojan.
//!
//! The result is a [`Report`]: it serialises to the `--json` form and renders the summary a
//! person reads ([`Report::render`]).
//!
//! Both inputs are untrusted (one of them is suspected of being tampered with), so reading is
//! bounded: [`Limits`] caps the member count, the bytes expanded in all and per member, and
//! the nesting depth, counting what actually comes out of a decompressor, never what a header
//! claims; exceeding a cap is an error that names the file, the member and the cap. A member
//! that is not a readable archive of the format its first bytes suggest is compared as bytes,
//! with a note saying why.
//!
//! Not for: unpacking or installing (that is `airlock-install`), deciding trust (a diff
//! informs a person; a rebuild's verdict is the digest comparison), or formats beyond the
//! above (hand those to diffoscope, see docs/diff.md).
#![forbid(unsafe_code)]

mod compare;
mod format;
pub mod phar;
mod report;

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

pub use report::{
    Change, ContentDiff, FieldDiff, MemberDiff, Node, Pair, Report, Summary, Verdict,
};

/// Bounds on what reading one side may cost. Each counts per side; nested archives and
/// compression layers count towards the same totals as the outer archive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Limits {
    /// Members in all, at every depth (directories and links included).
    pub max_members: u64,
    /// Bytes produced in all by decompression and member extraction, and the size of each
    /// input file.
    pub max_total_bytes: u64,
    /// Bytes of one member or one decompressed stream.
    pub max_member_bytes: u64,
    /// Archives and compression layers inside one another (a `.tar.gz` is 2 deep; a jar in it
    /// is 3).
    pub max_depth: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_members: 100_000,
            max_total_bytes: 1 << 30,
            max_member_bytes: 512 << 20,
            max_depth: 8,
        }
    }
}

/// How a comparison is made and shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Options {
    pub limits: Limits,
    /// A member larger than this (either side) gets no text diff, only sizes and digests.
    pub text_max_bytes: u64,
    /// Lines of unified diff kept per member; the rest is cut and marked as cut.
    pub text_max_lines: usize,
    /// Unchanged lines shown around each change.
    pub context_lines: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            limits: Limits::default(),
            text_max_bytes: 1 << 20,
            text_max_lines: 400,
            context_lines: 3,
        }
    }
}

/// Why two artifacts could not be compared. The cap variants are refusals of hostile or
/// oversized input: each names the side's file, the member (archive paths joined with `!/`)
/// and the cap.
#[derive(Debug, thiserror::Error)]
pub enum DiffError {
    #[error("reading {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: larger than the total size cap of {limit} bytes", path.display())]
    InputTooLarge { path: PathBuf, limit: u64 },
    #[error("{}: more than {limit} members (member count cap)", path.display())]
    TooManyMembers { path: PathBuf, limit: u64 },
    #[error("{}: {member} expands to more than {limit} bytes (per-member size cap)", path.display())]
    MemberTooLarge {
        path: PathBuf,
        member: String,
        limit: u64,
    },
    #[error(
        "{}: more than {limit} bytes expanded in all, reached at {member} (total expanded size cap)",
        path.display()
    )]
    TotalTooLarge {
        path: PathBuf,
        member: String,
        limit: u64,
    },
    #[error("{}: {member} is nested more than {limit} deep (nesting depth cap)", path.display())]
    TooDeep {
        path: PathBuf,
        member: String,
        limit: u32,
    },
}

impl DiffError {
    /// Whether this is a cap refusing the input (as opposed to a file that could not be read).
    pub fn is_limit(&self) -> bool {
        !matches!(self, DiffError::Read { .. })
    }
}

/// Compare the files `a` and `b` (typically: the published artifact and a rebuild).
pub fn diff_paths(a: &Path, b: &Path, options: &Options) -> Result<Report, DiffError> {
    let bytes_a = read_input(a, &options.limits)?;
    let bytes_b = read_input(b, &options.limits)?;
    diff_named(a, &bytes_a, b, &bytes_b, options)
}

/// Compare two artifacts already in memory; `name_a`/`name_b` are what errors and the report
/// call them.
pub fn diff_bytes(
    name_a: &Path,
    a: &[u8],
    name_b: &Path,
    b: &[u8],
    options: &Options,
) -> Result<Report, DiffError> {
    for (path, bytes) in [(name_a, a), (name_b, b)] {
        if bytes.len() as u64 > options.limits.max_total_bytes {
            return Err(DiffError::InputTooLarge {
                path: path.to_path_buf(),
                limit: options.limits.max_total_bytes,
            });
        }
    }
    diff_named(name_a, a, name_b, b, options)
}

fn diff_named(
    a: &Path,
    bytes_a: &[u8],
    b: &Path,
    bytes_b: &[u8],
    options: &Options,
) -> Result<Report, DiffError> {
    let mut budget_a = format::Budget::new(a, options.limits);
    let mut budget_b = format::Budget::new(b, options.limits);
    let root = if bytes_a == bytes_b {
        None
    } else {
        let name_a = file_name(a);
        let name_b = file_name(b);
        Some(compare::compare_top(
            (&name_a, bytes_a),
            (&name_b, bytes_b),
            &mut budget_a,
            &mut budget_b,
            options,
        )?)
    };
    Ok(Report::new(
        a.display().to_string(),
        b.display().to_string(),
        (bytes_a, bytes_b),
        root,
    ))
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| p.display().to_string())
}

fn read_input(path: &Path, limits: &Limits) -> Result<Vec<u8>, DiffError> {
    let read_err = |source| DiffError::Read {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(read_err)?;
    let mut data = Vec::new();
    file.take(limits.max_total_bytes.saturating_add(1))
        .read_to_end(&mut data)
        .map_err(read_err)?;
    if data.len() as u64 > limits.max_total_bytes {
        return Err(DiffError::InputTooLarge {
            path: path.to_path_buf(),
            limit: limits.max_total_bytes,
        });
    }
    Ok(data)
}
