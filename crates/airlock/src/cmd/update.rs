//! `airlock update`: the updater client for people and scripts.
//!
//! State lives in one directory (`--dir`, default `./airlock-update`):
//! - `client.toml`: where the repository is (written by `init`, read by the other commands;
//!   flags override it),
//! - `metadata/`: the trusted TUF metadata, exactly as received (managed by airlock-client),
//! - `targets/`: downloads, unless `download --out` says otherwise. A target is stored under its
//!   whole path percent-encoded into one file name (`a/b.txt` becomes `a%2Fb.txt`), the one
//!   mapping airlock-client, its conformance binary and python-tuf use, so no target can name a
//!   file outside the directory.
//!
//! Values are checked by the command that takes them: a URL that is not `https://` (or plain
//! `http://` to loopback with `--allow-http-loopback`), has no host or a port that is not a
//! number, or a `--ca-file` that does not load, is refused at once with an error naming the flag.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use airlock_client::{RefreshSummary, TargetInfo, Updater, UpdaterConfig};
use airlock_core::mirrors::Mirror;
use airlock_fetch::{FetchError, Fetcher, FetcherConfig, ProxyUrl, Trust, check_url_scheme};
use anyhow::{Context, bail};
use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::common::print_json;
use super::output::usage;

const CONFIG_FILE: &str = "client.toml";

#[derive(clap::Args, Debug)]
#[command(after_help = "Example:
  airlock update --dir ~/.app-updates init root.json \\
      --metadata-url https://updates.example.org/metadata/ \\
      --targets-url https://updates.example.org/targets/
  airlock update --dir ~/.app-updates download app-1.2.tar.gz")]
pub struct Args {
    /// Client state directory (client.toml, metadata/, targets/).
    #[arg(
        long,
        global = true,
        env = "AIRLOCK_UPDATE_DIR",
        default_value = "airlock-update"
    )]
    dir: PathBuf,
    /// Base URL of the repository's metadata (overrides client.toml).
    #[arg(long, global = true)]
    metadata_url: Option<String>,
    /// Base URL of the repository's target files (overrides client.toml).
    #[arg(long, global = true)]
    targets_url: Option<String>,
    /// Trust only the CA certificates in this PEM file instead of the webpki roots.
    #[arg(long, global = true)]
    ca_file: Option<PathBuf>,
    /// Allow plain http:// to 127.0.0.1, ::1 or localhost (tests only).
    #[arg(long, global = true)]
    allow_http_loopback: bool,
    /// Read the transparency log's tiles from this URL (a mirror) instead of the log URL the
    /// trusted root's policy names (overrides client.toml).
    #[arg(long, global = true)]
    log_url: Option<String>,
    /// A peer asked for its newest checkpoint of the log before a download: a URL answering
    /// GET with a checkpoint note (a witness's or another client's published checkpoint).
    /// Repeatable; replaces client.toml's list.
    #[arg(long = "peer", global = true)]
    peers: Vec<String>,
    /// How many peers must agree with this client's checkpoint, or the download is held
    /// (default: every configured peer).
    #[arg(long, global = true)]
    peers_required: Option<usize>,
    /// Send every request through this proxy, e.g. socks5h://127.0.0.1:9050 (Tor).
    #[arg(long, global = true)]
    proxy: Option<String>,
    /// A further mirror, METADATA_URL[,TARGETS_URL], asked when the repository's own URLs
    /// (and the mirrors before it) fail. Repeatable; replaces client.toml's list, where a
    /// mirror may also name the targets it holds (target_paths).
    #[arg(long = "mirror", global = true, value_name = "URLS")]
    mirrors: Vec<String>,
    /// Metered connection: when a delta update fails, stop and report instead of downloading
    /// the full target (also `metered = true` in client.toml).
    #[arg(long, global = true)]
    metered: bool,
    /// Never use delta updates (patches); always download full targets.
    #[arg(long, global = true)]
    no_delta: bool,
    /// A local file that may be an earlier version of a target being downloaded, for delta
    /// updates (besides the file already at the destination); used only when its length and
    /// hashes are a patch's signed base. Repeatable; replaces client.toml's delta_bases.
    #[arg(long = "delta-base", global = true, value_name = "FILE")]
    delta_bases: Vec<PathBuf>,
    #[command(flatten)]
    swarm: super::torrent::SwarmArgs,
    /// The top-level `--json`.
    #[arg(skip)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Trust a root.json obtained out of band, and remember the repository's URLs.
    #[command(after_help = "Example:
  airlock update init root.json --metadata-url https://updates.example.org/metadata/ \\
      --targets-url https://updates.example.org/targets/ --ca-file company-ca.pem")]
    Init {
        /// The root.json to trust (checked to be signed by its own root keys).
        root: PathBuf,
        /// Replace a root this directory already trusts (and drop its other metadata).
        #[arg(long)]
        force: bool,
    },
    /// Fetch and verify the newest metadata (root rotations, timestamp, snapshot, targets).
    #[command(after_help = "Example:\n  airlock update refresh\n  airlock update refresh --json")]
    Refresh,
    /// List the targets the trusted metadata offers, delegated ones included.
    #[command(
        after_help = "Example:\n  airlock update list\n  airlock update list --json | jq '.[].path'"
    )]
    List {
        /// Read at most this many targets roles (top-level targets included).
        #[arg(long, default_value_t = 1024)]
        max_roles: u32,
    },
    #[command(
        after_help = "Example:\n  airlock update download app/1.2/app.tar.gz --out ./downloads"
    )]
    /// Print the transparency-log checkpoint this client trusts (cosigned note), for peers to
    /// compare with theirs: publish it at a URL other clients list with --peer.
    #[command(after_help = "Example:\n  airlock update checkpoint > /var/www/checkpoint")]
    Checkpoint,
    /// Download and verify targets (skipped when a verified copy is already there). With
    /// peers configured, their checkpoints are compared with this client's first.
    Download {
        /// Target paths as the repository lists them.
        #[arg(required = true)]
        targets: Vec<String>,
        /// Directory to put the files in (default: <dir>/targets). A target `a/b.txt` is
        /// stored as `<out>/a%2Fb.txt` (its path percent-encoded into one file name).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Show whether a target has the rebuilder attestations its policies require (the
    /// trusted root's x-airlock-rebuilders and client.toml's [rebuilders]); exit status 3
    /// when one is not met, as a download would be refused.
    #[command(
        after_help = "Example:\n  airlock update verify-rebuilds app/1.2/app.tar.gz\n  airlock update verify-rebuilds app/1.2/app.tar.gz --json"
    )]
    VerifyRebuilds {
        /// The target path as the repository lists it.
        target: String,
    },
}

/// What `init` remembers in client.toml.
#[derive(Debug, Default, Serialize, Deserialize)]
struct ClientConfig {
    metadata_url: Option<String>,
    targets_url: Option<String>,
    ca_file: Option<PathBuf>,
    #[serde(default)]
    allow_http_loopback: bool,
    /// Tile mirror for the transparency log.
    log_url: Option<String>,
    #[serde(default)]
    peers: Vec<String>,
    peers_required: Option<usize>,
    proxy: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    mirrors: Vec<Mirror>,
    /// Delta updates that fail stop instead of falling back to the full download.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    metered: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    no_delta: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    delta_bases: Vec<PathBuf>,
    /// Most memory (MiB) a patch may need (base + patch); default 512.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    delta_max_memory_mib: Option<u64>,
    /// A local rebuilder policy (docs/rebuild.md), the form of the root's
    /// `x-airlock-rebuilders`: it only adds a requirement to the root's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rebuilders: Option<serde_json::Value>,
    /// The BitTorrent fallback (docs/mirrors.md).
    #[serde(
        default,
        skip_serializing_if = "super::torrent::SwarmSettings::is_default"
    )]
    bittorrent: super::torrent::SwarmSettings,
}

/// `METADATA_URL[,TARGETS_URL]` from `--mirror`.
pub(crate) fn parse_mirror(spec: &str) -> anyhow::Result<Mirror> {
    let (metadata, targets) = match spec.split_once(',') {
        Some((m, t)) => (m.trim(), Some(t.trim())),
        None => (spec.trim(), None),
    };
    if metadata.is_empty() || targets.is_some_and(str::is_empty) || spec.matches(',').count() > 1 {
        return Err(usage(format!(
            "--mirror {spec:?}: give METADATA_URL or METADATA_URL,TARGETS_URL"
        )));
    }
    Ok(Mirror {
        metadata_url: Some(metadata.to_string()),
        targets_url: targets.map(str::to_string),
        ..Mirror::default()
    })
}

impl ClientConfig {
    fn load(dir: &Path) -> anyhow::Result<Self> {
        let path = dir.join(CONFIG_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                toml::from_str(&text).with_context(|| format!("reading {}", path.display()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    fn save(&self, dir: &Path) -> anyhow::Result<()> {
        let path = dir.join(CONFIG_FILE);
        let text = toml::to_string(self).context("encoding client.toml")?;
        airlock_fs::write_atomic(&path, text.as_bytes(), &airlock_fs::WriteOptions::public())?;
        Ok(())
    }

    /// Flags win over the file.
    fn merged(mut self, args: &Args) -> anyhow::Result<Self> {
        if !args.mirrors.is_empty() {
            self.mirrors = args
                .mirrors
                .iter()
                .map(|m| parse_mirror(m))
                .collect::<anyhow::Result<_>>()?;
        }
        if args.metadata_url.is_some() {
            self.metadata_url.clone_from(&args.metadata_url);
        }
        if args.targets_url.is_some() {
            self.targets_url.clone_from(&args.targets_url);
        }
        if let Some(ca) = &args.ca_file {
            // Stored absolute, so later runs from another directory find it.
            self.ca_file = Some(std::path::absolute(ca).unwrap_or_else(|_| ca.clone()));
        }
        self.allow_http_loopback |= args.allow_http_loopback;
        if args.log_url.is_some() {
            self.log_url.clone_from(&args.log_url);
        }
        if !args.peers.is_empty() {
            self.peers.clone_from(&args.peers);
        }
        if args.peers_required.is_some() {
            self.peers_required = args.peers_required;
        }
        if args.proxy.is_some() {
            self.proxy.clone_from(&args.proxy);
        }
        self.metered |= args.metered;
        self.no_delta |= args.no_delta;
        if !args.delta_bases.is_empty() {
            self.delta_bases = args
                .delta_bases
                .iter()
                .map(|p| std::path::absolute(p).unwrap_or_else(|_| p.clone()))
                .collect();
        }
        self.bittorrent.merge(&args.swarm);
        Ok(self)
    }
}

fn metadata_dir(dir: &Path) -> PathBuf {
    dir.join("metadata")
}

impl ClientConfig {
    /// Refuse a URL or CA file that cannot work, naming the flag that gives it.
    fn check(&self) -> anyhow::Result<Trust> {
        for (flag, url) in [
            ("--metadata-url", &self.metadata_url),
            ("--targets-url", &self.targets_url),
            ("--log-url", &self.log_url),
        ] {
            if let Some(url) = url {
                check_url(flag, url, self.allow_http_loopback)?;
            }
        }
        for peer in &self.peers {
            check_url("--peer", peer, self.allow_http_loopback)?;
        }
        for m in &self.mirrors {
            for url in [&m.metadata_url, &m.targets_url].into_iter().flatten() {
                check_url("--mirror", url, self.allow_http_loopback)?;
            }
            if m.metadata_url.is_none() && m.targets_url.is_none() {
                return Err(usage(format!(
                    "mirror {:?} in client.toml has neither metadata_url nor targets_url",
                    m.name
                )));
            }
        }
        if let Some(k) = self.peers_required
            && k > self.peers.len()
        {
            return Err(usage(format!(
                "--peers-required {k} is more than the {} peer(s) configured",
                self.peers.len()
            )));
        }
        self.proxy()?;
        match &self.ca_file {
            Some(path) => Trust::ca_bundle_file(path)
                .with_context(|| format!("--ca-file {} is not usable", path.display())),
            None => Ok(Trust::WebPki),
        }
    }
}

impl ClientConfig {
    fn proxy(&self) -> anyhow::Result<Option<ProxyUrl>> {
        self.proxy
            .as_deref()
            .map(|p| ProxyUrl::parse(p).map_err(|e| usage(format!("--proxy {p:?}: {e}"))))
            .transpose()
    }
}

/// The fetcher's scheme policy, plus a port that must be a number (`https://host:PORT/` from a
/// copied example would otherwise fail only at the first download).
pub(crate) fn check_url(flag: &str, url: &str, allow_http_loopback: bool) -> anyhow::Result<()> {
    match check_url_scheme(url, allow_http_loopback) {
        Ok(()) => {}
        Err(FetchError::InsecureUrl { reason, .. }) => {
            return Err(usage(format!(
                "{flag} {url:?}: {reason}; plain http is only for a test server on 127.0.0.1, ::1 \
             or localhost, with --allow-http-loopback"
            )));
        }
        Err(FetchError::InvalidUrl { reason, .. }) => {
            return Err(usage(format!(
                "{flag} {url:?} is not a usable URL: {reason}"
            )));
        }
        Err(e) => return Err(usage(format!("{flag} {url:?} is not a usable URL: {e}"))),
    }
    let authority = url.split_once("://").map_or("", |(_, rest)| {
        rest.split(['/', '?', '#']).next().unwrap_or("")
    });
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
    let port = match host_port.rsplit_once(']') {
        Some((_, after)) => after.strip_prefix(':'),
        None => host_port.split_once(':').map(|(_, p)| p),
    };
    if let Some(port) = port
        && port.parse::<u16>().is_err()
    {
        return Err(usage(format!(
            "{flag} {url:?} is not a usable URL: port {port:?} is not a number"
        )));
    }
    Ok(())
}

/// Refresh, with a hint when the server's certificate comes from a CA the client does not know.
fn refresh_updater(updater: &mut Updater) -> anyhow::Result<RefreshSummary> {
    updater.refresh().map_err(|e| {
        let unknown_issuer =
            std::iter::successors(Some(&e as &(dyn std::error::Error + 'static)), |e| {
                e.source()
            })
            .filter_map(|c| c.downcast_ref::<FetchError>())
            .any(
                |f| matches!(f, FetchError::Tls { detail, .. } if detail.contains("UnknownIssuer")),
            );
        let hint = if unknown_issuer {
            " (the server's certificate is not signed by a trusted CA; if the repository uses \
             its own CA, give its certificate with --ca-file CA.pem)"
        } else {
            ""
        };
        anyhow::Error::new(e).context(format!("refresh failed{hint}"))
    })
}

fn updater(args: &Args, config: &ClientConfig) -> anyhow::Result<Updater> {
    let metadata_url = config.metadata_url.clone().with_context(|| {
        format!(
            "no metadata URL: pass --metadata-url or run `airlock update init` with it \
             (looked in {})",
            args.dir.join(CONFIG_FILE).display()
        )
    })?;
    let trust = config.check()?;
    let fetcher = Fetcher::new(FetcherConfig {
        trust,
        allow_http_loopback: config.allow_http_loopback,
        // --proxy (or client.toml) wins; otherwise HTTPS_PROXY / ALL_PROXY, minus NO_PROXY.
        proxy: config.proxy()?,
        use_env_proxy: true,
        ..FetcherConfig::default()
    })
    .context("setting up HTTPS")?;
    let mut cfg = UpdaterConfig::new(metadata_dir(&args.dir), metadata_url, Arc::new(fetcher));
    cfg.log_url.clone_from(&config.log_url);
    cfg.peers.clone_from(&config.peers);
    cfg.peers_required = config.peers_required.unwrap_or(config.peers.len());
    if let Some(url) = &config.targets_url {
        cfg = cfg.with_targets_base_url(url.clone());
    }
    cfg.mirrors.clone_from(&config.mirrors);
    cfg.delta = airlock_core::delta::Policy {
        enabled: !config.no_delta,
        metered: config.metered,
        max_memory: config
            .delta_max_memory_mib
            .map_or(airlock_core::delta::DEFAULT_MAX_MEMORY, |m| {
                m.saturating_mul(1024 * 1024)
            }),
    };
    cfg.delta_bases.clone_from(&config.delta_bases);
    if let Some(v) = &config.rebuilders {
        let policy = airlock_core::rebuild::RebuilderPolicy::from_value(v).map_err(|e| {
            usage(format!(
                "{}: [rebuilders]: {}",
                args.dir.join(CONFIG_FILE).display(),
                airlock_core::error_chain(&e)
            ))
        })?;
        cfg.rebuilders = Some(policy);
    }
    cfg.fallback_sources = config.bittorrent.sources(&args.dir)?;
    Ok(Updater::new(cfg)?)
}

/// What each mirror did, when there are several: one line per failed attempt on stderr for
/// people, the whole report for machines.
fn mirror_report(updater: &Updater) -> serde_json::Value {
    let report = updater.mirror_report();
    if report.len() < 2 {
        return serde_json::Value::Null;
    }
    json!(
        report
            .iter()
            .map(|m| json!({
                "name": m.name,
                "bytes": m.bytes,
                "skipped": m.skipped,
                "attempts": m.attempts.iter().map(|a| json!({
                    "file": a.file,
                    "ok": a.failure.is_none(),
                    "failure": a.failure.as_ref().map(|(f, _)| f.to_string()),
                    "detail": a.failure.as_ref().map(|(_, d)| d),
                })).collect::<Vec<_>>(),
            }))
            .collect::<Vec<_>>()
    )
}

fn print_mirror_failures(updater: &Updater) {
    let report = updater.mirror_report();
    if report.len() < 2 {
        return;
    }
    for m in &report {
        for a in &m.attempts {
            if let Some((failure, detail)) = &a.failure {
                eprintln!("mirror {}: {} ({failure}): {detail}", m.name, a.file);
            }
        }
    }
}

fn target_json(info: &TargetInfo) -> serde_json::Value {
    json!({
        "path": info.path,
        "length": info.file.length,
        "hashes": info.file.hashes,
        "role": info.role,
        "custom": info.file.custom,
    })
}

fn human_size(n: u64) -> String {
    indicatif::HumanBytes(n).to_string()
}

pub fn run(mut args: Args, json: bool) -> anyhow::Result<()> {
    args.json = json;
    match &args.command {
        Command::Init { root, force } => init(&args, root, *force),
        Command::Refresh => refresh(&args),
        Command::List { max_roles } => list(&args, *max_roles),
        Command::Checkpoint => checkpoint(&args),
        Command::Download { targets, out } => download(&args, targets, out.as_deref()),
        Command::VerifyRebuilds { target } => verify_rebuilds(&args, target),
    }
}

fn verify_rebuilds(args: &Args, target: &str) -> anyhow::Result<()> {
    use airlock_client::rebuilds::PolicySource;
    let config = ClientConfig::load(&args.dir)?.merged(args)?;
    let mut updater = updater(args, &config)?;
    refresh_updater(&mut updater)?;
    let info = updater
        .get_target_info(target)?
        .with_context(|| format!("target {target:?} is not listed by the repository"))?;
    let report = updater.rebuild_report(&info);
    let source_name = |s: PolicySource| match s {
        PolicySource::Root => "root",
        PolicySource::Local => "local",
    };
    let policies: Vec<serde_json::Value> = report
        .verdicts
        .iter()
        .map(|v| {
            let (met, from, error) = match &v.result {
                Ok(cs) => (
                    true,
                    cs.iter()
                        .map(|c| json!({"rebuilder": c.rebuilder, "keyid": c.keyid}))
                        .collect(),
                    None,
                ),
                Err(e) => (false, Vec::new(), Some(e.to_string())),
            };
            json!({
                "source": source_name(v.source),
                "threshold": v.policy.as_ref().map(|p| p.threshold()),
                "keys": v.policy.as_ref().map(|p| p.keys().keys().collect::<Vec<_>>()),
                "met": met,
                "confirmed_by": from,
                "error": error,
            })
        })
        .collect();
    if args.json {
        print_json(&json!({
            "target": info.path,
            "sha256": report.sha256,
            "length": info.file.length,
            "required": !report.verdicts.is_empty(),
            "policies": policies,
            "fetch_failures": report.fetch_failures,
            "not_logged": report.not_logged,
        }))?;
    } else if report.verdicts.is_empty() {
        println!(
            "{target}: no rebuilder policy applies (neither the trusted root nor client.toml requires rebuilds)"
        );
    } else {
        println!(
            "{target} (sha256 {}, {} bytes):",
            report.sha256.as_deref().unwrap_or("none listed"),
            info.file.length
        );
        for v in &report.verdicts {
            let what = match &v.policy {
                Some(p) => format!("{} of {} rebuilder key(s)", p.threshold(), p.keys().len()),
                None => "unreadable".to_string(),
            };
            match &v.result {
                Ok(cs) => {
                    let from: Vec<String> = cs
                        .iter()
                        .map(|c| format!("{} ({})", c.rebuilder, c.keyid))
                        .collect();
                    println!(
                        "  {} policy, {what}: met by {}",
                        source_name(v.source),
                        from.join(", ")
                    );
                }
                Err(e) => println!("  {} policy, {what}: NOT MET: {e}", source_name(v.source)),
            }
        }
        for why in &report.not_logged {
            println!("  not counted, not shown logged: {why}");
        }
    }
    report.into_result()?;
    Ok(())
}

fn checkpoint(args: &Args) -> anyhow::Result<()> {
    let config = ClientConfig::load(&args.dir)?.merged(args)?;
    let cfg = UpdaterConfig::new(
        metadata_dir(&args.dir),
        config
            .metadata_url
            .clone()
            .unwrap_or_else(|| "https://unused.invalid/".into()),
        Arc::new(Fetcher::new(FetcherConfig::default()).context("setting up HTTPS")?),
    );
    let updater = Updater::new(cfg)?;
    let Some(policy) = updater.transparency() else {
        bail!("the trusted root requires no transparency log, so this client has no checkpoint");
    };
    let Some(note) = updater.trusted_checkpoint() else {
        bail!(
            "no checkpoint of log {:?} accepted yet: run `airlock update refresh` first",
            policy.log_origin()
        );
    };
    if args.json {
        return print_json(&json!({"origin": policy.log_origin(), "checkpoint": note}));
    }
    print!("{note}");
    Ok(())
}

/// The peer check before a download: held on a split view (both checkpoints printed) or too
/// few agreeing peers; peers that did not count are reported.
fn check_peers(updater: &mut Updater, json: bool) -> anyhow::Result<()> {
    match updater.check_peers() {
        Ok(report) => {
            if !json && !report.peers.is_empty() {
                for (peer, shown) in &report.peers {
                    eprintln!("peer {peer}: {shown}");
                }
                eprintln!(
                    "peer check: {} of {} required peer(s) agree",
                    report.agreeing, report.required
                );
            }
            Ok(())
        }
        Err(e) => {
            if let airlock_client::UpdateError::PeerCheck { source, .. } = &e
                && let Some(split) = source.split_view()
            {
                // The evidence goes to stdout, so that the error stays one line on stderr.
                println!(
                    "SPLIT VIEW of log {:?} at size {}:\n--- checkpoint this client trusts ---\n{}\
                     --- checkpoint the peer shows ---\n{}",
                    split.origin, split.size, split.trusted_note, split.new_note
                );
            }
            Err(anyhow::Error::new(e).context("the update is held"))
        }
    }
}

fn init(args: &Args, root_file: &Path, force: bool) -> anyhow::Result<()> {
    // Checked before anything is written, so a wrong flag leaves no half-made directory.
    let config = ClientConfig::load(&args.dir)?.merged(args)?;
    config.check()?;
    let bytes = std::fs::read(root_file)
        .with_context(|| format!("reading trusted root {}", root_file.display()))?;
    let existing = metadata_dir(&args.dir).join("root.json");
    if !force && existing.exists() && std::fs::read(&existing).ok().as_deref() != Some(&bytes[..]) {
        bail!(
            "{} already trusts a root ({}); pass --force to replace the trust anchor",
            args.dir.display(),
            existing.display()
        );
    }
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("creating {}", args.dir.display()))?;
    let root = Updater::init(&metadata_dir(&args.dir), &bytes)
        .with_context(|| format!("{} cannot be used as a trusted root", root_file.display()))?;
    config.save(&args.dir)?;
    if args.json {
        return print_json(&json!({
            "dir": args.dir,
            "root_version": root.version,
            "root_expires": root.expires.to_rfc3339(),
            "consistent_snapshot": root.consistent_snapshot.unwrap_or(false),
            "metadata_url": config.metadata_url,
            "targets_url": config.targets_url,
        }));
    }
    println!(
        "Trusting root version {} (expires {}) in {}",
        root.version,
        root.expires.format("%Y-%m-%d %H:%M UTC"),
        args.dir.display()
    );
    match &config.metadata_url {
        Some(url) => println!("Repository metadata: {url}"),
        None => println!("No --metadata-url yet: give it to `refresh` or run init again with it."),
    }
    Ok(())
}

fn refresh(args: &Args) -> anyhow::Result<()> {
    let config = ClientConfig::load(&args.dir)?.merged(args)?;
    let mut updater = updater(args, &config)?;
    let summary = refresh_updater(&mut updater)?;
    if args.json {
        let mut v = serde_json::to_value(&summary)?;
        let mirrors = mirror_report(&updater);
        if !mirrors.is_null() {
            v["mirrors"] = mirrors;
        }
        return print_json(&v);
    }
    print_mirror_failures(&updater);
    if summary.roots_rotated > 0 {
        println!(
            "Root rotated {} time(s): now trusting root version {}",
            summary.roots_rotated, summary.root_version
        );
    }
    println!(
        "Up to date: root v{}, timestamp v{}, snapshot v{}, targets v{} (every signature, \
         threshold, version and expiry checked)",
        summary.root_version,
        summary.timestamp_version,
        summary.snapshot_version,
        summary.targets_version
    );
    Ok(())
}

fn list(args: &Args, max_roles: u32) -> anyhow::Result<()> {
    let config = ClientConfig::load(&args.dir)?.merged(args)?;
    let mut updater = updater(args, &config)?;
    refresh_updater(&mut updater)?;
    let listing = updater
        .list_targets_within(max_roles)
        .context("listing targets failed")?;
    let targets = &listing.targets;
    if listing.roles_not_visited > 0 {
        eprintln!(
            "note: the list is incomplete: {} delegated role(s) were not read (raise --max-roles)",
            listing.roles_not_visited
        );
    }
    if args.json {
        return print_json(&serde_json::Value::Array(
            targets.iter().map(target_json).collect(),
        ));
    }
    if targets.is_empty() {
        println!("The repository lists no targets.");
        return Ok(());
    }
    let width = targets.iter().map(|t| t.path.len()).max().unwrap_or(0);
    for t in targets {
        let role = if t.role == "targets" {
            String::new()
        } else {
            format!("  (signed by {})", t.role)
        };
        println!(
            "{:width$}  {:>10}{role}",
            t.path,
            human_size(t.file.length),
            width = width
        );
    }
    println!("{} target(s)", targets.len());
    Ok(())
}

fn download(args: &Args, targets: &[String], out: Option<&Path>) -> anyhow::Result<()> {
    let config = ClientConfig::load(&args.dir)?.merged(args)?;
    if config.targets_url.is_none() && config.mirrors.iter().all(|m| m.targets_url.is_none()) {
        bail!(
            "no targets URL: pass --targets-url or a --mirror with one, or run `airlock update init` with them (looked in {})",
            args.dir.join(CONFIG_FILE).display()
        );
    }
    let out = out
        .map(Path::to_path_buf)
        .unwrap_or_else(|| args.dir.join("targets"));
    let mut updater = updater(args, &config)?;
    refresh_updater(&mut updater)?;
    check_peers(&mut updater, args.json)?;
    let show_progress = !args.json && std::io::stderr().is_terminal();
    let mut results = Vec::new();
    let (mut moved, mut saved) = (0u64, 0u64);
    for name in targets {
        let dest = Updater::local_target_path(&out, name);
        let info = updater
            .get_target_info(name)?
            .with_context(|| format!("target {name:?} is not listed by the repository"))?;
        if updater.find_cached_target(&info, &dest)? {
            if !args.json {
                println!("{name}: already here and verified ({})", dest.display());
            }
            results.push((info, dest, None));
            continue;
        }
        let bar = if show_progress {
            let bar = ProgressBar::new(info.file.length);
            bar.set_style(
                ProgressStyle::with_template(
                    "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar.set_message(name.clone());
            bar
        } else {
            ProgressBar::hidden()
        };
        // For machines (--json): one JSON line per step on standard error, at most one per
        // 1% of the file (or per 64 KiB), the first and the last always.
        let step = (info.file.length / 100).max(64 * 1024);
        let mut next_event = 0u64;
        let mut event = |done: u64| {
            if args.json && (done >= next_event || done == info.file.length) {
                next_event = done.saturating_add(step);
                eprintln!(
                    "{}",
                    json!({"event": "progress", "target": name, "bytes": done, "length": info.file.length})
                );
            }
        };
        event(0);
        let result = updater.deliver_target(&info, &dest, &mut |done, _| {
            bar.set_position(done);
            event(done);
        });
        bar.finish_and_clear();
        let delivery = result.with_context(|| format!("downloading {name:?} failed"))?;
        if !args.json {
            let hashes: Vec<&str> = info.file.hashes.keys().map(String::as_str).collect();
            let how = match (&delivery.patch, &delivery.base) {
                (Some(_), Some(base)) => format!(
                    "by patch from {}: moved {}, saved {}",
                    base.display(),
                    human_size(delivery.bytes_moved),
                    human_size(delivery.bytes_saved)
                ),
                _ => format!("moved {}", human_size(delivery.bytes_moved)),
            };
            println!(
                "{name}: downloaded {} to {} ({} verified; {how})",
                human_size(info.file.length),
                dest.display(),
                hashes.join(", ")
            );
            for why in &delivery.delta_skipped {
                eprintln!("  delta not used: {why}");
            }
        }
        moved += delivery.bytes_moved;
        saved += delivery.bytes_saved;
        results.push((info, dest, Some(delivery)));
    }
    if !args.json {
        print_mirror_failures(&updater);
        if saved > 0 {
            println!(
                "moved {} in all; patches saved {}",
                human_size(moved),
                human_size(saved)
            );
        }
    }
    if args.json {
        return print_json(&serde_json::Value::Array(
            results
                .iter()
                .map(|(info, dest, delivery)| {
                    let mut v = target_json(info);
                    v["file"] = json!(dest);
                    v["downloaded"] = json!(delivery.is_some());
                    // bytes_moved, bytes_saved, method (delta or full), patch, base,
                    // delta_skipped; an already verified file moved nothing.
                    let d = delivery.as_ref();
                    v["bytes_moved"] = json!(d.map_or(0, |d| d.bytes_moved));
                    v["bytes_saved"] = json!(d.map_or(0, |d| d.bytes_saved));
                    if let Some(d) = d
                        && let Ok(serde_json::Value::Object(m)) = serde_json::to_value(d)
                    {
                        for (k, x) in m {
                            v[k] = x;
                        }
                    }
                    v
                })
                .collect(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked_where_the_flag_is_given() {
        for good in [
            "https://updates.example.org/metadata/",
            "https://127.0.0.1:8443/metadata/",
            "https://[::1]:8443/m/",
        ] {
            check_url("--metadata-url", good, false).unwrap();
        }
        check_url("--metadata-url", "http://127.0.0.1:8080/m/", true).unwrap();
        for (bad, says) in [
            ("not a url", "not a usable URL"),
            ("ftp://example.org/m/", "not a usable URL"),
            ("https://127.0.0.1:PORT/metadata/", "not a usable URL"),
            ("http://example.org/m/", "--allow-http-loopback"),
            ("http://127.0.0.1:8080/m/", "--allow-http-loopback"),
        ] {
            let err = check_url("--metadata-url", bad, false).expect_err(bad);
            let msg = format!("{err:#}");
            assert!(msg.starts_with("--metadata-url"), "{msg}");
            assert!(msg.contains(says), "{bad}: {msg}");
        }
    }
}
