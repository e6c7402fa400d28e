//! `airlock diff A B`: what differs between two artifacts, member by member (airlock-diff).
//!
//! Exit status as diff(1) and `repo verify`: 0 when the files are identical, 1 when they
//! differ (the report is the output; with `--json` it is the one document), 3 when a cap
//! refused an input (too many members, too large, too deep), 1 for other errors. With
//! `--diffoscope` the process becomes diffoscope, whose exit status is then the command's.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use airlock_diff::{Limits, Options, Verdict, diff_paths};
use anyhow::{Context, Result};
use clap::Parser;

use super::common::print_json;
use super::output::{Kind, Reported};

/// Compare two artifacts (e.g. a published release and a rebuild): tar (plain, .gz, .xz,
/// .zst), zip/jar and PHP phar archives are opened, recursively, and their members paired by
/// name. Content differences (added, removed, changed members, with text diffs) are listed
/// apart from metadata-only ones (times, modes, owners, order, compression headers).
///
/// Exit status: 0 identical, 1 different (or an error), 3 an input refused by a cap.
#[derive(Parser, Debug)]
#[command(after_help = "Examples:
  airlock diff published/app-1.2.tar.gz rebuilt/app-1.2.tar.gz
  airlock diff --json app.phar rebuilt/app.phar | jq .verdict
  airlock diff --diffoscope app.deb rebuilt/app.deb   # formats Airlock does not read")]
pub struct Args {
    /// The first artifact (shown as ---, side A).
    a: PathBuf,
    /// The second artifact (shown as +++, side B).
    b: PathBuf,
    /// Hand both files to diffoscope instead (it must be installed: Debian's diffoscope or
    /// diffoscope-minimal); its output and exit status are the command's. With --json,
    /// diffoscope writes its own JSON.
    #[arg(long)]
    diffoscope: bool,
    /// Refuse an input with more members than this, at all depths.
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_members)]
    max_members: u64,
    /// Refuse an input expanding to more bytes than this in all (every decompressed stream
    /// and extracted member counts).
    #[arg(long, value_name = "BYTES", default_value_t = Limits::default().max_total_bytes)]
    max_total_bytes: u64,
    /// Refuse an input with one member or stream larger than this.
    #[arg(long, value_name = "BYTES", default_value_t = Limits::default().max_member_bytes)]
    max_member_bytes: u64,
    /// Refuse archives nested deeper than this (each compression layer counts).
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_depth)]
    max_depth: u32,
    /// Lines of unified diff shown per text member.
    #[arg(long, value_name = "N", default_value_t = Options::default().text_max_lines)]
    max_diff_lines: usize,
    /// Metadata-only lines shown (all of them are in --json).
    #[arg(long, value_name = "N", default_value_t = 200)]
    max_metadata_lines: usize,
}

pub fn run(args: Args, json: bool) -> Result<()> {
    if args.diffoscope {
        return diffoscope(&args, json);
    }
    let options = Options {
        limits: Limits {
            max_members: args.max_members,
            max_total_bytes: args.max_total_bytes,
            max_member_bytes: args.max_member_bytes,
            max_depth: args.max_depth,
        },
        text_max_lines: args.max_diff_lines,
        ..Options::default()
    };
    let report = diff_paths(&args.a, &args.b, &options)
        .with_context(|| format!("comparing {} with {}", args.a.display(), args.b.display()))?;
    if json {
        print_json(&report.to_json())?;
    } else {
        print!("{}", report.render(args.max_metadata_lines));
    }
    if report.verdict == Verdict::Identical {
        return Ok(());
    }
    let how = match report.verdict {
        Verdict::MetadataOnly => "in metadata only",
        _ => "in content",
    };
    Err(Reported {
        kind: Kind::Error,
        message: format!("{} and {} differ {how}", args.a.display(), args.b.display()),
    }
    .into())
}

/// The first `name` on PATH that is an executable file.
fn on_path(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt as _;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

fn diffoscope(args: &Args, json: bool) -> Result<()> {
    use std::os::unix::process::CommandExt as _;
    let Some(program) = on_path("diffoscope") else {
        anyhow::bail!(
            "--diffoscope: diffoscope is not installed (not found on PATH); install Debian's \
             diffoscope or diffoscope-minimal, or leave out --diffoscope for Airlock's own \
             comparison"
        );
    };
    let mut cmd = std::process::Command::new(&program);
    if json {
        cmd.args(["--json", "-"]);
    }
    cmd.arg("--").arg(path_arg(&args.a)).arg(path_arg(&args.b));
    // exec only returns on failure; on success diffoscope's exit status is ours.
    let err = cmd.exec();
    Err(err).with_context(|| format!("--diffoscope: running {}", program.display()))
}

fn path_arg(p: &Path) -> OsString {
    p.as_os_str().to_os_string()
}
