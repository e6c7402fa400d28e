//! `airlock mirror`: make and refresh a mirror of a repository (airlock-client's
//! `mirror_sync`: everything verified as a client would, metadata switched as a whole).

use std::path::PathBuf;
use std::sync::Arc;

use airlock_client::UpdaterConfig;
use airlock_client::mirror_sync::{MirrorDirs, SyncError, sync};
use airlock_fetch::{Fetcher, FetcherConfig, ProxyUrl, Trust};
use anyhow::Context;
use clap::Subcommand;
use serde_json::json;

use super::common::print_json;
use super::output::usage;
use super::update::{check_url, parse_mirror};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Make or refresh a mirror in DIR: DIR/public is what a static web server serves.
    #[command(after_help = "Example:
  airlock mirror sync --to /srv/mirror --root root.json \\
      --from https://updates.example.org/metadata/,https://updates.example.org/targets/
  # then serve /srv/mirror/public (nginx: root /srv/mirror/public;) and run it again from cron")]
    Sync(SyncArgs),
    /// Seed a repository's targets to their BitTorrent swarms: every .torrent under DIR with
    /// the file beside it (`bittorrent` builds only).
    #[command(after_help = "Example:
  airlock mirror seed myrepo/published/targets --listen 0.0.0.0:6881 \\
      --tracker udp://tracker.example.org:6969/announce")]
    Seed(super::torrent::SeedArgs),
}

#[derive(clap::Args, Debug)]
struct SyncArgs {
    /// The repository: METADATA_URL,TARGETS_URL (as `airlock update` takes them).
    #[arg(long, value_name = "URLS")]
    from: String,
    /// The mirror directory (created on the first sync).
    #[arg(long, value_name = "DIR")]
    to: PathBuf,
    /// The root.json obtained out of band; needed on the first sync, which trusts it.
    #[arg(long, value_name = "FILE")]
    root: Option<PathBuf>,
    /// Trust only the CA certificates in this PEM file instead of the webpki roots.
    #[arg(long, value_name = "PEM")]
    ca_file: Option<PathBuf>,
    /// Allow plain http:// to 127.0.0.1, ::1 or localhost (tests only).
    #[arg(long)]
    allow_http_loopback: bool,
    /// Every request through this proxy (default: HTTPS_PROXY / ALL_PROXY, minus NO_PROXY).
    #[arg(long, value_name = "URL")]
    proxy: Option<String>,
    /// Where to read the transparency log's tiles (default: the log URL in the root's
    /// policy); the mirror serves them under public/log/.
    #[arg(long, value_name = "URL")]
    log_url: Option<String>,
}

pub fn run(args: Args, json: bool) -> anyhow::Result<()> {
    match args.command {
        Command::Sync(a) => sync_cmd(a, json),
        Command::Seed(a) => super::torrent::seed(&a, json),
    }
}

fn sync_cmd(a: SyncArgs, json: bool) -> anyhow::Result<()> {
    let from = parse_mirror(&a.from).map_err(|_| {
        usage(format!(
            "--from {:?}: give METADATA_URL,TARGETS_URL",
            a.from
        ))
    })?;
    let (Some(metadata_url), Some(targets_url)) = (from.metadata_url, from.targets_url) else {
        return Err(usage(format!(
            "--from {:?}: give METADATA_URL,TARGETS_URL (a mirror holds the targets too)",
            a.from
        )));
    };
    check_url("--from", &metadata_url, a.allow_http_loopback)?;
    check_url("--from", &targets_url, a.allow_http_loopback)?;
    if let Some(url) = &a.log_url {
        check_url("--log-url", url, a.allow_http_loopback)?;
    }
    let dirs = MirrorDirs::new(&a.to);
    let first = !dirs.metadata_state().join("root.json").exists();
    let root = match (&a.root, first) {
        (Some(path), _) => std::fs::read(path)
            .with_context(|| format!("reading trusted root {}", path.display()))?,
        (None, true) => {
            return Err(usage(format!(
                "{} is not a mirror yet: give --root ROOT.json (obtained out of band) for the \
                 first sync",
                a.to.display()
            )));
        }
        (None, false) => Vec::new(),
    };
    let trust = match &a.ca_file {
        Some(p) => Trust::ca_bundle_file(p)
            .with_context(|| format!("--ca-file {} is not usable", p.display()))?,
        None => Trust::WebPki,
    };
    let proxy = a
        .proxy
        .as_deref()
        .map(|p| ProxyUrl::parse(p).map_err(|e| usage(format!("--proxy {p:?}: {e}"))))
        .transpose()?;
    let fetcher = Fetcher::new(FetcherConfig {
        trust,
        allow_http_loopback: a.allow_http_loopback,
        proxy,
        use_env_proxy: true,
        ..FetcherConfig::default()
    })
    .context("setting up HTTPS")?;
    let mut config = UpdaterConfig::new(dirs.metadata_state(), metadata_url, Arc::new(fetcher))
        .with_targets_base_url(targets_url);
    config.log_url = a.log_url;
    let report = sync(config, &dirs, &root).map_err(|e| {
        let keeps = match &e {
            SyncError::RootHistory { .. } | SyncError::NotConsistent if first => {
                "nothing was published"
            }
            _ => "the mirror still serves its previous state",
        };
        anyhow::Error::new(e).context(format!("mirror sync of {} failed; {keeps}", a.to.display()))
    })?;
    if json {
        let mut v = serde_json::to_value(&report)?;
        v["public"] = json!(dirs.public);
        return print_json(&v);
    }
    println!(
        "{}: root v{}, timestamp v{}; {} metadata file(s) new, {} kept; {} target(s) fetched \
         ({} bytes), {} already here; {} log tile(s) fetched. Serve {} with any static web \
         server.",
        a.to.display(),
        report.root_version,
        report.timestamp_version,
        report.metadata_written,
        report.metadata_kept,
        report.targets_fetched,
        report.bytes_fetched,
        report.targets_present,
        report.tiles_fetched,
        dirs.public.display()
    );
    Ok(())
}
