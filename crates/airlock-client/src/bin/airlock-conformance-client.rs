#![forbid(unsafe_code)]
//! The client-under-test binary for the TUF conformance suite
//! (github.com/theupdateframework/tuf-conformance, CLIENT-CLI.md):
//!
//! ```text
//! airlock-conformance-client --metadata-dir DIR init TRUSTED_ROOT
//! airlock-conformance-client --metadata-dir DIR --metadata-url URL refresh
//! airlock-conformance-client --metadata-dir DIR --metadata-url URL --target-name NAME
//!     [--target-name NAME ...] --target-base-url URL --target-dir DIR download
//! ```
//!
//! Options may come in any order, before or after the command. Exit status 0 only when
//! everything succeeded, 1 otherwise. Plain `http://` is allowed, but only to loopback
//! addresses (the suite serves from 127.0.0.1). Time comes from the system clock, so the binary
//! follows `faketime`. Logs go to stderr (`RUST_LOG`, default `info`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use airlock_client::{Updater, UpdaterConfig};
use airlock_fetch::{Fetcher, FetcherConfig};

#[derive(Debug, Default)]
struct Cli {
    metadata_dir: Option<PathBuf>,
    metadata_url: Option<String>,
    target_names: Vec<String>,
    target_base_url: Option<String>,
    target_dir: Option<PathBuf>,
    command: Option<String>,
    positional: Vec<String>,
}

const USAGE: &str = "usage:
  airlock-conformance-client --metadata-dir DIR init TRUSTED_ROOT
  airlock-conformance-client --metadata-dir DIR --metadata-url URL refresh
  airlock-conformance-client --metadata-dir DIR --metadata-url URL --target-name NAME \
[--target-name NAME ...] --target-base-url URL --target-dir DIR download";

fn parse_args(args: impl Iterator<Item = String>) -> Result<Cli, String> {
    let mut cli = Cli::default();
    let mut args = args.peekable();
    while let Some(arg) = args.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        let mut value = |name: &str| -> Result<String, String> {
            match &inline {
                Some(v) => Ok(v.clone()),
                None => args.next().ok_or_else(|| format!("{name} needs a value")),
            }
        };
        match name.as_str() {
            "--metadata-dir" => cli.metadata_dir = Some(PathBuf::from(value(&name)?)),
            "--metadata-url" => cli.metadata_url = Some(value(&name)?),
            "--target-name" => cli.target_names.push(value(&name)?),
            "--target-base-url" => cli.target_base_url = Some(value(&name)?),
            "--target-dir" => cli.target_dir = Some(PathBuf::from(value(&name)?)),
            "-v" | "-vv" | "-vvv" | "--verbose" => {}
            "-h" | "--help" => return Err(String::new()),
            other if other.starts_with("--") => return Err(format!("unknown option {other}")),
            _ if cli.command.is_none() => cli.command = Some(arg),
            _ => cli.positional.push(arg),
        }
    }
    Ok(cli)
}

fn required<'a, T: ?Sized>(value: &'a Option<impl AsRef<T>>, name: &str) -> Result<&'a T, String> {
    value
        .as_ref()
        .map(AsRef::as_ref)
        .ok_or_else(|| format!("{name} is required"))
}

fn updater(cli: &Cli, with_targets: bool) -> Result<Updater, String> {
    let metadata_dir: &Path = required(&cli.metadata_dir, "--metadata-dir")?;
    let metadata_url: &str = required(&cli.metadata_url, "--metadata-url")?;
    let fetcher = Fetcher::new(FetcherConfig {
        allow_http_loopback: true,
        ..FetcherConfig::default()
    })
    .map_err(|e| e.to_string())?;
    let mut config = UpdaterConfig::new(metadata_dir, metadata_url, Arc::new(fetcher));
    if with_targets {
        let base: &str = required(&cli.target_base_url, "--target-base-url")?;
        config = config.with_targets_base_url(base);
    }
    Updater::new(config).map_err(|e| e.to_string())
}

fn run(cli: Cli) -> Result<(), String> {
    match cli.command.as_deref() {
        Some("init") => {
            let metadata_dir: &Path = required(&cli.metadata_dir, "--metadata-dir")?;
            let [root_file] = cli.positional.as_slice() else {
                return Err("init takes exactly one argument: TRUSTED_ROOT".into());
            };
            let bytes =
                std::fs::read(root_file).map_err(|e| format!("reading {root_file}: {e}"))?;
            let root = Updater::init(metadata_dir, &bytes).map_err(|e| e.to_string())?;
            tracing::info!(
                "initialised {} with trusted root version {}",
                metadata_dir.display(),
                root.version
            );
            Ok(())
        }
        Some("refresh") => {
            let mut updater = updater(&cli, false)?;
            let summary = updater.refresh().map_err(|e| e.to_string())?;
            tracing::info!("refreshed: {summary:?}");
            Ok(())
        }
        Some("download") => {
            let target_dir: &Path = required(&cli.target_dir, "--target-dir")?;
            if cli.target_names.is_empty() {
                return Err("--target-name is required".into());
            }
            let mut updater = updater(&cli, true)?;
            // TUF 5.6: metadata is brought up to date before any target is looked up.
            updater.refresh().map_err(|e| e.to_string())?;
            for name in &cli.target_names {
                let dest = Updater::local_target_path(target_dir, name);
                let (info, downloaded) = updater
                    .fetch_target(name, &dest, &mut |_, _| {})
                    .map_err(|e| e.to_string())?;
                tracing::info!(
                    "{}: {} ({} bytes, listed by {})",
                    info.path,
                    if downloaded {
                        "downloaded"
                    } else {
                        "already cached"
                    },
                    info.file.length,
                    info.role
                );
            }
            Ok(())
        }
        Some(other) => Err(format!("unknown command {other:?}")),
        None => Err("no command given".into()),
    }
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = match parse_args(std::env::args().skip(1)) {
        Ok(cli) => cli,
        Err(msg) => {
            if !msg.is_empty() {
                eprintln!("error: {msg}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(1);
        }
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("error: {msg}");
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, String> {
        parse_args(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn options_in_any_order() {
        let a = parse(&[
            "--metadata-url",
            "http://127.0.0.1:1/m/",
            "--metadata-dir",
            "/tmp/m",
            "--target-name",
            "a.txt",
            "--target-dir",
            "/tmp/t",
            "--target-base-url",
            "http://127.0.0.1:1/t/",
            "--target-name",
            "b/c.txt",
            "download",
        ])
        .unwrap();
        let b = parse(&[
            "download",
            "--target-name=a.txt",
            "--target-base-url",
            "http://127.0.0.1:1/t/",
            "--target-dir",
            "/tmp/t",
            "--metadata-dir",
            "/tmp/m",
            "--target-name",
            "b/c.txt",
            "--metadata-url",
            "http://127.0.0.1:1/m/",
        ])
        .unwrap();
        for cli in [a, b] {
            assert_eq!(cli.command.as_deref(), Some("download"));
            assert_eq!(cli.target_names, vec!["a.txt", "b/c.txt"]);
            assert_eq!(cli.metadata_dir, Some(PathBuf::from("/tmp/m")));
            assert_eq!(cli.target_dir, Some(PathBuf::from("/tmp/t")));
        }
        let init = parse(&["init", "/r.json", "--metadata-dir", "/tmp/m"]).unwrap();
        assert_eq!(init.command.as_deref(), Some("init"));
        assert_eq!(init.positional, vec!["/r.json"]);
    }

    #[test]
    fn bad_invocations_are_errors() {
        assert!(parse(&["--metadata-dir"]).is_err());
        assert!(parse(&["--bogus", "x", "refresh"]).is_err());
        let no_url = parse(&["--metadata-dir", "/tmp/m", "refresh"]).unwrap();
        assert!(run(no_url).is_err());
        let nothing = parse(&[]).unwrap();
        assert!(run(nothing).is_err());
    }
}
