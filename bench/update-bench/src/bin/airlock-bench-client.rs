#![forbid(unsafe_code)]
//! airlock-client as a peer in the updater benchmark: the same contract as the other peers
//! (bench/README.md), built on the public `Updater` API exactly as an application would use it.
//!
//! ```text
//! airlock-bench-client cold --root ROOT --metadata-dir D --metadata-url U --targets-url T
//!                           --target-dir O --target NAME --ca CA.pem
//! airlock-bench-client warm --root ROOT --metadata-dir D --metadata-url U --targets-url T --ca CA.pem
//! ```
//!
//! `cold`: `Updater::init` from ROOT, `refresh`, `fetch_target(NAME)` into O.
//! `warm`: `refresh` with the metadata a cold run left in D. Exit 0 only on success.
//! The transport is `FetcherConfig::default()` except that it trusts only CA.pem. The cap on
//! the top-level targets role is raised to 64 MB: the flat workload's 15 MB `targets.json` is
//! above the default 5 MB (python-tuf's), and an application serving such a repository would
//! raise it the same way.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use airlock_client::{Limits, Updater, UpdaterConfig};
use airlock_fetch::{Fetcher, FetcherConfig, Trust};
use anyhow::{Context, bail};

#[derive(Default)]
struct Args {
    mode: String,
    root: PathBuf,
    metadata_dir: PathBuf,
    metadata_url: String,
    targets_url: String,
    target_dir: Option<PathBuf>,
    target: Option<String>,
    ca: Option<PathBuf>,
}

fn parse() -> anyhow::Result<Args> {
    let mut a = Args::default();
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut val = || it.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--root" => a.root = val()?.into(),
            "--metadata-dir" => a.metadata_dir = val()?.into(),
            "--metadata-url" => a.metadata_url = val()?,
            "--targets-url" => a.targets_url = val()?,
            "--target-dir" => a.target_dir = Some(val()?.into()),
            "--target" => a.target = Some(val()?),
            "--ca" => a.ca = Some(val()?.into()),
            "cold" | "warm" if a.mode.is_empty() => a.mode = arg,
            other => bail!("unexpected argument {other:?}"),
        }
    }
    if a.mode.is_empty() {
        bail!("mode cold|warm is required");
    }
    Ok(a)
}

fn run(a: Args) -> anyhow::Result<()> {
    let trust = match &a.ca {
        Some(path) => Trust::ca_bundle_file(path)?,
        None => Trust::WebPki,
    };
    let fetcher = Fetcher::new(FetcherConfig {
        trust,
        ..FetcherConfig::default()
    })?;
    if a.mode == "cold" {
        let root =
            std::fs::read(&a.root).with_context(|| format!("reading {}", a.root.display()))?;
        Updater::init(&a.metadata_dir, &root)?;
    }
    let config = UpdaterConfig::new(&a.metadata_dir, &a.metadata_url, Arc::new(fetcher))
        .with_targets_base_url(&a.targets_url)
        .with_limits(Limits {
            targets_max_len: 64_000_000,
            ..Limits::default()
        });
    let mut updater = Updater::new(config)?;
    updater.refresh()?;
    if a.mode == "cold" {
        let (Some(name), Some(dir)) = (&a.target, &a.target_dir) else {
            bail!("cold needs --target and --target-dir");
        };
        let dest = Updater::local_target_path(dir, name);
        updater.fetch_target(name, &dest, &mut |_, _| {})?;
    }
    Ok(())
}

fn main() -> ExitCode {
    match parse().and_then(run) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}
