//! Instruction counts of airlock-client's cold and warm runs on the flat repository, under
//! `valgrind --tool=callgrind`: steady on a loaded machine where wall and even CPU time are not,
//! so they show progress (or a regression) that the timing tables hide.
//!
//! `update-bench callgrind` (or `./bench/run-callgrind`) prints the two counts; `update-bench
//! run` adds them to the Updating section when valgrind is installed.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use airlock_serve::TestCa;
use anyhow::{Context, Result, bail};

use crate::repo::{Generator, Layout, Repo};
use crate::server::CountingServer;

/// Instructions executed (callgrind's `Ir`, every thread of the client).
#[derive(Clone, Copy, Debug)]
pub struct Counts {
    pub cold: u64,
    pub warm: u64,
}

#[derive(clap::Args)]
pub struct CallgrindArgs {
    /// Number of small targets in the flat targets.json.
    #[arg(long, default_value_t = 100_000)]
    targets: usize,
}

/// Whether `valgrind` can be started.
pub fn available() -> bool {
    Command::new("valgrind")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// `update-bench callgrind`: generate the flat repository, serve it, print both counts.
pub fn run(args: CallgrindArgs) -> Result<()> {
    if !available() {
        bail!("valgrind is not installed (apt-get install valgrind)");
    }
    let client = std::env::current_exe()
        .context("locating update-bench")?
        .with_file_name("airlock-bench-client");
    let served = tempfile::Builder::new()
        .prefix("airlock-callgrind-repo")
        .tempdir()?;
    let work = tempfile::Builder::new()
        .prefix("airlock-callgrind-work")
        .tempdir()?;
    let chosen = (args.targets / 2 + 345).min(args.targets.saturating_sub(1));
    eprintln!(
        "generating the flat repository with {} targets …",
        args.targets
    );
    let flat = Generator::new(served.path(), args.targets, chosen)?.small(Layout::Flat)?;
    let ca = TestCa::new().context("test CA")?;
    let ca_file = ca.write_ca_pem(work.path())?;
    let server = CountingServer::start(served.path(), &ca)?;
    let url = |part: &str| server.server.url(&format!("/{}/{part}/", flat.name));
    let counts = measure(&client, &flat, &url, &ca_file, work.path())?;
    println!(
        "callgrind instructions (Ir), airlock-bench-client on the flat repository ({} targets):",
        args.targets
    );
    println!("cold  {:>15}", group(counts.cold));
    println!("warm  {:>15}", group(counts.warm));
    Ok(())
}

/// One cold run (init, refresh, download) and one warm run (refresh) of `client` under
/// callgrind, in a fresh directory under `work`.
pub fn measure(
    client: &Path,
    repo: &Repo,
    url: &dyn Fn(&str) -> String,
    ca_file: &Path,
    work: &Path,
) -> Result<Counts> {
    let dir = tempfile::Builder::new()
        .prefix("airlock-callgrind-run")
        .tempdir_in(work)?;
    let mut counts = [0u64; 2];
    for (i, mode) in ["cold", "warm"].into_iter().enumerate() {
        let out = dir.path().join(format!("callgrind.{mode}.out"));
        let mut argv: Vec<OsString> = vec![
            "--tool=callgrind".into(),
            format!("--callgrind-out-file={}", out.display()).into(),
            client.into(),
            mode.into(),
        ];
        let metadata_dir: PathBuf = dir.path().join("metadata");
        for (k, v) in [
            ("--root", repo.root_file.clone().into_os_string()),
            ("--metadata-dir", metadata_dir.into_os_string()),
            ("--metadata-url", url("metadata").into()),
            ("--targets-url", url("targets").into()),
            ("--ca", ca_file.into()),
        ] {
            argv.push(k.into());
            argv.push(v);
        }
        if mode == "cold" {
            argv.push("--target-dir".into());
            argv.push(dir.path().join("targets").into_os_string());
            argv.push("--target".into());
            argv.push(repo.target.clone().into());
        }
        eprintln!("callgrind: airlock-bench-client {mode} …");
        let run = Command::new("valgrind")
            .args(&argv)
            .output()
            .context("starting valgrind")?;
        if !run.status.success() {
            bail!(
                "airlock-bench-client {mode} under callgrind failed: {}",
                String::from_utf8_lossy(&run.stderr).trim_end()
            );
        }
        let text =
            std::fs::read_to_string(&out).with_context(|| format!("reading {}", out.display()))?;
        counts[i] = total(&text).with_context(|| format!("no totals in {}", out.display()))?;
    }
    Ok(Counts {
        cold: counts[0],
        warm: counts[1],
    })
}

/// The `totals:` (or `summary:`) line of a callgrind output file.
fn total(text: &str) -> Option<u64> {
    text.lines()
        .filter_map(|l| {
            l.strip_prefix("totals:")
                .or_else(|| l.strip_prefix("summary:"))
        })
        .find_map(|rest| rest.split_whitespace().next()?.parse().ok())
}

/// `1234567` as `1,234,567`.
pub fn group(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_totals_line_and_groups_digits() {
        assert_eq!(
            total("events: Ir\nfn=main\n1 5\nsummary: 1234567\ntotals: 1234567\n"),
            Some(1_234_567)
        );
        assert_eq!(total("events: Ir\n"), None);
        assert_eq!(group(1_234_567), "1,234,567");
        assert_eq!(group(999), "999");
    }
}
