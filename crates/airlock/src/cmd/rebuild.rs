//! `airlock rebuild`: rebuild a target from the source and recipe in its signed metadata, in a
//! bubblewrap sandbox, compare with the published bytes, and sign an attestation on a match
//! (docs/rebuild.md).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use airlock_client::store::encode_target_file_name;
use airlock_client::{Updater, UpdaterConfig};
use airlock_core::rebuild::{Envelope, RebuildInfo, RebuilderPolicy};
use airlock_core::tlog::VerifierState;
use airlock_core::transparency::{PROOF_SUFFIX, ReleaseCheck, ReleaseStep, TransparencyPolicy};
use airlock_fetch::{Fetcher, FetcherConfig, Trust};
use airlock_keystore::KeyRef;
use airlock_rebuild::source::SourceFetcher;
use airlock_rebuild::{Job, Outcome, Sandbox};
use anyhow::{Context, bail};
use clap::Parser;
use serde_json::json;

use super::common::{PassphraseArgs, print_json};
use super::output::usage;
use super::repo::ConfiguredLog;
use super::update::check_url;

/// Rebuild a target from source in a sandbox and attest to a byte-identical result.
#[derive(Parser, Debug)]
#[command(
    after_help = "Example:
  airlock rebuild app/1.2.0/app --repo https://updates.example.org/metadata/ \\
      --targets-url https://updates.example.org/targets/ --root root.json \\
      --key rebuilder.key --id rebuilder.example.org

  airlock rebuild watch --repo https://updates.example.org/metadata/ \
      --key rebuilder.key --id rebuilder.example.org --every 10m

The target's metadata is fetched and verified as `airlock update` does (the root given once with
--root is trusted from then on, in DIR/metadata). The build runs in bubblewrap with no network;
without bwrap the command refuses unless --unsandboxed is given. Output, log and the published
file are kept in DIR/builds/. On a match the attestation is written there; on a mismatch a report
with both digests is, nothing is signed, and the exit status is non-zero.

When the trusted root carries a transparency policy, clients count an attestation only when it is
in that policy's log: --log-key (a publisher key from `airlock log keygen` that the log accepts)
is then required, checked before anything is built, and on a match the attestation is submitted,
its proof bundle verified and written beside it (ATTESTATION.tlog-proof).

`airlock rebuild publish` places attestations into a repository's published tree, `airlock
rebuild watch` rebuilds every new target; a target literally named `publish` or `watch` is given
last, after `--`: `airlock rebuild --repo URL ... -- publish`.",
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
pub struct Args {
    #[command(subcommand)]
    command: Option<Sub>,
    /// The target path, as the repository lists it.
    #[arg(required = true)]
    target: Option<String>,
    #[command(flatten)]
    opts: Opts,
}

/// What every rebuild needs: the repository, the rebuilder's identity, the sandbox, the log.
#[derive(clap::Args, Debug)]
struct Opts {
    /// Rebuilder state: trusted metadata (metadata/) and builds (builds/).
    #[arg(long, env = "AIRLOCK_REBUILD_DIR", default_value = "airlock-rebuild")]
    dir: PathBuf,
    /// Base URL of the repository's metadata.
    #[arg(long = "repo", value_name = "URL", required = true)]
    metadata_url: Option<String>,
    /// Base URL of the repository's target files (default: the metadata URL's sibling
    /// `targets/`).
    #[arg(long, value_name = "URL")]
    targets_url: Option<String>,
    /// The root.json to trust on first use of DIR (obtained out of band).
    #[arg(long, value_name = "FILE")]
    root: Option<PathBuf>,
    /// Trust only the CA certificates in this PEM file (metadata, targets and HTTPS sources).
    #[arg(long)]
    ca_file: Option<PathBuf>,
    /// Allow plain http:// to 127.0.0.1, ::1 or localhost (tests only).
    #[arg(long)]
    allow_http_loopback: bool,
    /// The rebuilder's signing key: a key file, gpg:KEYID or a pkcs11: URI.
    #[arg(long, value_name = "KEY", required = true)]
    key: Option<String>,
    /// The rebuilder's name in attestations (printable ASCII, no spaces).
    #[arg(long, value_name = "NAME", required = true)]
    id: Option<String>,
    /// The bubblewrap binary.
    #[arg(long, value_name = "PATH", default_value = "bwrap")]
    bwrap: PathBuf,
    /// Build directly on this machine, without a sandbox (network reachable, host files
    /// visible). Only when bubblewrap cannot be used; the attestation says `sandbox: none`.
    #[arg(long)]
    unsandboxed: bool,
    /// Provide the toolchain a recipe names (`"builder": {"type": "toolchain", "name":
    /// NAME}`) from DIR, which holds bin/ (e.g. a rustup toolchain): bound read-only at
    /// /toolchain, its bin/ first in PATH. Repeatable. Without it the host's /usr is the
    /// toolchain.
    #[arg(long = "toolchain", value_name = "NAME=DIR")]
    toolchains: Vec<String>,
    /// Publisher note key (from `airlock log keygen`, its name read from FILE.pub) that the
    /// transparency log of the trusted root's policy accepts: each attestation is logged.
    /// Required when the trusted root has a transparency policy.
    #[arg(long, value_name = "FILE")]
    log_key: Option<PathBuf>,
    /// The log's base URL (default: the URL on the policy's log line).
    #[arg(long, value_name = "URL", requires = "log_key")]
    log_url: Option<String>,
    /// CA certificates (PEM) trusted for the log's TLS (default: the webpki roots).
    #[arg(long, value_name = "PEM", requires = "log_key")]
    log_ca: Option<PathBuf>,
    /// Longest wait for a cosigned checkpoint covering the attestation (s, m, h).
    #[arg(
        long,
        value_name = "PERIOD",
        default_value = "60s",
        requires = "log_key"
    )]
    log_timeout: airlock_repo::Period,
    #[command(flatten)]
    passphrase: PassphraseArgs,
}

#[derive(clap::Subcommand, Debug)]
enum Sub {
    Publish(PublishArgs),
    Watch(Box<WatchArgs>),
}

/// Rebuild every target with a recipe that this DIR has not rebuilt yet (docs/rebuild.md,
/// "Every new target, from cron").
#[derive(Parser, Debug)]
#[command(after_help = "Example:
  airlock rebuild watch --repo https://updates.example.org/metadata/ --root root.json \\
      --key rebuilder.key --id rebuilder.example.org            # one pass, from cron
  airlock rebuild watch ... --every 10m                           # until stopped

DIR/watch.json records each target's result (per path and SHA-256): a match or a mismatch is not
rebuilt again, a failure to fetch or build is tried again by the next pass. Without --every the
exit status is non-zero when a target of this pass mismatched or failed.")]
struct WatchArgs {
    #[command(flatten)]
    opts: Opts,
    /// Wait this long (e.g. 10m) after each pass and go on until stopped.
    #[arg(long, value_name = "PERIOD")]
    every: Option<airlock_repo::Period>,
}

/// Verify attestations and place them into a repository's published tree, where clients and
/// mirrors fetch them (docs/rebuild.md, "Where attestations live").
#[derive(Parser, Debug)]
#[command(after_help = "Example:
  airlock rebuild publish -C /srv/repo rebuilder-a/attestation.dsse.json rebuilder-b/attestation.dsse.json

Each file must verify, strictly, with a rebuilder key of the published root's
x-airlock-rebuilders policy or one given with --key, and is filed under the key id of the key
that verified it. One bad file publishes nothing. A file's proof bundle (FILE.tlog-proof) is
published beside it; when the published root has a transparency policy it is required and must
show the attestation in that policy's log.")]
struct PublishArgs {
    /// Attestation files (DSSE envelopes as `airlock rebuild` writes them).
    #[arg(required = true, value_name = "ATTESTATION")]
    files: Vec<PathBuf>,
    /// The repository directory (its published tree is REPO/published).
    #[arg(
        short = 'C',
        long = "repo-dir",
        env = "AIRLOCK_REPO",
        default_value = "."
    )]
    repo: PathBuf,
    /// The published tree (holding metadata/ and targets/), instead of REPO/published.
    #[arg(long, value_name = "DIR")]
    published: Option<PathBuf>,
    /// Also accept this rebuilder's public key (TUF JSON); repeatable.
    #[arg(long = "key", value_name = "PUB.json")]
    keys: Vec<PathBuf>,
}

pub fn run(a: Args, json_out: bool) -> anyhow::Result<()> {
    match &a.command {
        Some(Sub::Publish(p)) => publish(p, json_out),
        Some(Sub::Watch(w)) => watch(&w.opts, w.every, json_out),
        None => match &a.target {
            Some(t) => rebuild(t, &a.opts, json_out),
            None => bail!(usage("give a TARGET")),
        },
    }
}

fn publish(a: &PublishArgs, json_out: bool) -> anyhow::Result<()> {
    let published = a
        .published
        .clone()
        .unwrap_or_else(|| a.repo.join("published"));
    let mut keys = Vec::new();
    let mut transparency = None;
    let root_path = published.join("metadata").join("root.json");
    match std::fs::read(&root_path) {
        Ok(bytes) => {
            let root: airlock_core::tuf::metadata::Metadata<airlock_core::tuf::roles::Root> =
                serde_json::from_slice(&bytes)
                    .with_context(|| format!("reading {}", root_path.display()))?;
            if let Some(p) = RebuilderPolicy::from_root_fields(&root.signed.unrecognized)
                .with_context(|| format!("{}", root_path.display()))?
            {
                keys.extend(p.keys().values().cloned());
            }
            transparency = TransparencyPolicy::from_root(&root.signed)
                .with_context(|| format!("{}", root_path.display()))?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && a.published.is_none() => {
            bail!(usage(format!(
                "{} is not a published repository (no {}): give -C REPO or --published DIR",
                a.repo.display(),
                root_path.display()
            )));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("reading {}", root_path.display())),
    }
    for p in &a.keys {
        keys.push(airlock_keystore::read_public_key(p)?);
    }
    if keys.is_empty() {
        bail!(usage(
            "no rebuilder key to verify with: the published root has no x-airlock-rebuilders \
             policy; give --key PUB.json"
        ));
    }
    let mut files = Vec::new();
    for f in &a.files {
        let envelope = std::fs::read(f).with_context(|| format!("reading {}", f.display()))?;
        let proof_file = airlock_rebuild::publish::proof_path(f);
        let proof = match std::fs::read(&proof_file) {
            Ok(b) => Some(b),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e).with_context(|| format!("reading {}", proof_file.display())),
        };
        files.push(airlock_rebuild::publish::AttestationFile {
            file: f.clone(),
            envelope,
            proof,
        });
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let placed = airlock_rebuild::publish::publish_attestations(
        &published,
        &files,
        &keys,
        transparency.as_ref(),
        now,
    )?;
    if json_out {
        print_json(&json!({ "published": placed }))?;
    } else {
        for p in &placed {
            println!(
                "{} sha256 {}: attestation by {} ({}) at {}",
                p.target,
                p.sha256,
                p.rebuilder,
                p.keyid,
                p.path.display()
            );
        }
    }
    Ok(())
}

/// What a rebuild of any target needs, set up once (a watch reuses it every pass).
struct Rebuilder {
    sandbox: Sandbox,
    signer: Box<dyn airlock_core::crypto::Signer>,
    id: String,
    fetcher: Arc<Fetcher>,
    metadata_url: String,
    /// The publisher note key attestations are logged with (`--log-key`).
    log_signer: Option<airlock_core::tlog::NoteSigner>,
}

/// The result of one target's rebuild (a failure to fetch or build is an `Err`).
enum Verdict {
    Match {
        attestation: PathBuf,
    },
    /// What differs, in one line, and the report's path.
    Mismatch {
        message: String,
        report: PathBuf,
    },
}

/// Check the options and set up what every rebuild needs, before any download or build.
fn open(a: &Opts) -> anyhow::Result<Rebuilder> {
    // Required by clap (`rebuild TARGET` and `rebuild watch`).
    let (Some(metadata_url), Some(key), Some(id)) =
        (a.metadata_url.clone(), a.key.clone(), a.id.clone())
    else {
        bail!(usage("--repo, --key and --id are required"));
    };
    // Everything that can refuse cheaply comes before any download or build.
    check_url("--repo", &metadata_url, a.allow_http_loopback)?;
    if let Some(u) = &a.targets_url {
        check_url("--targets-url", u, a.allow_http_loopback)?;
    }
    let mut sandbox = if a.unsandboxed {
        Sandbox::unsandboxed()
    } else {
        Sandbox::bubblewrap(&a.bwrap)?
    };
    for t in &a.toolchains {
        let Some((name, dir)) = t
            .split_once('=')
            .filter(|(n, d)| !n.is_empty() && !d.is_empty())
        else {
            bail!(usage(format!("--toolchain {t:?}: expected NAME=DIR")));
        };
        sandbox = sandbox
            .with_toolchain(name, Path::new(dir))
            .with_context(|| format!("--toolchain {t}"))?;
    }
    let key_ref = KeyRef::parse(&key).map_err(|e| usage(format!("--key: {e}")))?;
    let signer = key_ref
        .open(&a.passphrase.source())
        .with_context(|| format!("opening the rebuilder key {}", key))?;
    if id.is_empty() || id.len() > 128 || !id.bytes().all(|b| b.is_ascii_graphic()) {
        bail!(usage(
            "--id must be 1 to 128 printable ASCII characters without spaces"
        ));
    }
    if let Some(u) = &a.log_url {
        check_url("--log-url", u, false)?;
    }
    let log_signer = match &a.log_key {
        Some(k) => Some(super::repo::read_publisher_key(
            k,
            None,
            &a.passphrase.source(),
        )?),
        None => None,
    };

    let trust = match &a.ca_file {
        Some(p) => Trust::ca_bundle_file(p)
            .with_context(|| format!("--ca-file {} is not usable", p.display()))?,
        None => Trust::WebPki,
    };
    let fetcher = Arc::new(
        Fetcher::new(FetcherConfig {
            trust,
            allow_http_loopback: a.allow_http_loopback,
            use_env_proxy: true,
            ..FetcherConfig::default()
        })
        .context("setting up HTTPS")?,
    );
    let metadata_dir = a.dir.join("metadata");
    if !metadata_dir.join("root.json").exists() {
        let root = a.root.as_ref().with_context(|| {
            format!(
                "{} trusts no root yet: give the repository's root.json with --root",
                metadata_dir.display()
            )
        })?;
        let bytes = std::fs::read(root).with_context(|| format!("reading {}", root.display()))?;
        Updater::init(&metadata_dir, &bytes).context("trusting the root given with --root")?;
    }
    let r = Rebuilder {
        sandbox,
        signer,
        id,
        fetcher,
        metadata_url,
        log_signer,
    };
    Ok(r)
}

fn rebuild(target: &str, a: &Opts, json_out: bool) -> anyhow::Result<()> {
    let r = open(a)?;
    let mut updater = r.updater(a)?;
    let log = r.attestation_log(a, &updater)?;
    match rebuild_target(a, &r, &mut updater, log.as_ref(), target, json_out)? {
        Verdict::Match { .. } => Ok(()),
        Verdict::Mismatch { message, .. } => bail!(message),
    }
}

impl Rebuilder {
    /// A refreshed client of the repository. The rebuilder compares the published bytes, it
    /// never installs them: they are what it is to attest (or not), so no attestation can be
    /// required before it reads them.
    fn updater(&self, a: &Opts) -> anyhow::Result<Updater> {
        let mut cfg = UpdaterConfig::new(
            a.dir.join("metadata"),
            self.metadata_url.clone(),
            self.fetcher.clone(),
        );
        cfg.require_rebuilds = false;
        let targets_url = match &a.targets_url {
            Some(u) => u.clone(),
            None => sibling_targets_url(&self.metadata_url).with_context(|| {
                format!(
                    "--repo {}: no parent URL to find targets/ beside it; give --targets-url",
                    self.metadata_url
                )
            })?,
        };
        cfg = cfg.with_targets_base_url(targets_url);
        let mut updater = Updater::new(cfg)?;
        updater
            .refresh()
            .context("refreshing the repository's metadata")?;
        Ok(updater)
    }

    /// Where this rebuilder's attestations go under `updater`'s trusted root (see
    /// [`attestation_log`]).
    fn attestation_log(
        &self,
        a: &Opts,
        updater: &Updater,
    ) -> anyhow::Result<Option<AttestationLog>> {
        // One key, a log client per use (a watch decides again each pass: the root may rotate).
        let signer = match &self.log_signer {
            Some(s) => Some(airlock_core::tlog::NoteSigner::from_skey(&s.to_skey())?),
            None => None,
        };
        attestation_log(a, updater.transparency(), signer)
    }
}

/// `targets/` beside the metadata directory: `https://h/repo/metadata/` -> `https://h/repo/targets/`.
fn sibling_targets_url(metadata_url: &str) -> Option<String> {
    let trimmed = metadata_url.trim_end_matches('/');
    let (parent, _) = trimmed.rsplit_once('/')?;
    let (_, host_and_path) = parent.split_once("://")?;
    (!host_and_path.is_empty()).then(|| format!("{parent}/targets/"))
}

/// Rebuild one target and compare; sign on a match. Prints the outcome.
fn rebuild_target(
    a: &Opts,
    r: &Rebuilder,
    updater: &mut Updater,
    log: Option<&AttestationLog>,
    target: &str,
    json_out: bool,
) -> anyhow::Result<Verdict> {
    let info = updater
        .get_target_info(target)?
        .with_context(|| format!("target {} is not in the repository", target))?;
    let rebuild = RebuildInfo::from_custom(info.file.custom.as_deref())
        .with_context(|| format!("target {}", target))?
        .with_context(|| {
            format!(
                "target {} has no rebuild recipe (custom.rebuild) in its metadata",
                target
            )
        })?;
    let sha256 = info
        .file
        .hashes
        .get("sha256")
        .cloned()
        .with_context(|| format!("target {} has no sha256 in its metadata", target))?;
    let job = Job {
        target: target.to_string(),
        sha256: sha256.clone(),
        length: info.file.length,
        rebuild,
    };
    let work = new_work_dir(&a.dir, target, &sha256)?;
    let published = work.join(airlock_rebuild::PUBLISHED_FILE);
    updater
        .download_target(&info, &published)
        .context("downloading the published file")?;
    let sandbox = &r.sandbox;
    let outcome = airlock_rebuild::rebuild(
        &job,
        &published,
        &work,
        sandbox,
        &SourceFetcher {
            fetcher: Some(r.fetcher.clone()),
        },
    )?;
    match outcome {
        Outcome::Match { rebuilt } => {
            let (path, envelope) =
                airlock_rebuild::attest(&job, &rebuilt, sandbox, &r.id, r.signer.as_ref(), &work)?;
            let proof = match log {
                Some(log) => Some(log_attestation(log, &path, &envelope, &rebuilt.sha256)?),
                None => None,
            };
            if json_out {
                print_json(&json!({
                    "target": job.target, "result": "match", "sha256": rebuilt.sha256,
                    "length": rebuilt.length, "attestation": path, "work": work,
                    "sandbox": sandbox.describe(), "tlog_proof": proof,
                }))?;
            } else {
                println!(
                    "{}: rebuilt byte for byte (sha256 {}, {} bytes) in {}",
                    job.target,
                    rebuilt.sha256,
                    rebuilt.length,
                    sandbox.describe()
                );
                println!("attestation: {}", path.display());
                match &proof {
                    Some(p) => println!("logged, proof bundle: {}", p.display()),
                    None => println!("not logged (the trusted root has no transparency policy)"),
                }
            }
            Ok(Verdict::Match { attestation: path })
        }
        Outcome::Mismatch {
            published,
            rebuilt,
            report,
            headline,
        } => {
            if json_out {
                print_json(&json!({
                    "target": job.target, "result": "mismatch", "published": published,
                    "rebuilt": rebuilt, "report": report, "work": work, "diff": headline,
                }))?;
            } else if let Ok(text) =
                std::fs::read_to_string(work.join(airlock_rebuild::MISMATCH_DIFF))
            {
                print!("{text}");
            }
            let message = format!(
                "{}: the rebuild differs from the published file (published sha256 {}, {} bytes; \
                 rebuilt sha256 {}, {} bytes): {headline}; nothing signed; report: {}",
                job.target,
                published.sha256,
                published.length,
                rebuilt.sha256,
                rebuilt.length,
                report.display()
            );
            Ok(Verdict::Mismatch { message, report })
        }
    }
}

/// The file where `--watch` keeps what it did, per target path and sha256.
const WATCH_STATE: &str = "watch.json";

/// What one `--watch` pass did.
#[derive(Default)]
struct Pass {
    matched: usize,
    mismatched: usize,
    failed: usize,
    done_before: usize,
}

/// `--watch`: rebuild every target with a recipe not rebuilt yet; once, or every PERIOD (a
/// pass that fails, e.g. the repository is unreachable, is then reported and retried).
fn watch(a: &Opts, every: Option<airlock_repo::Period>, json_out: bool) -> anyhow::Result<()> {
    let r = &open(a)?;
    loop {
        let pass = watch_pass(a, r, json_out);
        if let Ok(p) = &pass
            && !json_out
        {
            println!(
                "watch pass: {} rebuilt and attested, {} mismatched, {} failed (retried next \
                 pass), {} done before",
                p.matched, p.mismatched, p.failed, p.done_before
            );
        }
        let Some(every) = every else {
            let p = pass?;
            if p.mismatched > 0 {
                bail!(
                    "{} target(s) did not rebuild to the published bytes",
                    p.mismatched
                );
            }
            if p.failed > 0 {
                bail!("{} target(s) could not be rebuilt this pass", p.failed);
            }
            return Ok(());
        };
        if let Err(e) = pass {
            eprintln!("watch pass failed (retried in {every}): {e:#}");
        }
        std::thread::sleep(std::time::Duration::from_secs(
            u64::try_from(every.as_secs()).unwrap_or(1).max(1),
        ));
    }
}

fn watch_pass(a: &Opts, r: &Rebuilder, json_out: bool) -> anyhow::Result<Pass> {
    let state_path = a.dir.join(WATCH_STATE);
    let mut state: serde_json::Map<String, serde_json::Value> = match std::fs::read(&state_path) {
        Ok(b) => serde_json::from_slice(&b)
            .with_context(|| format!("{} is not a watch state", state_path.display()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => serde_json::Map::new(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", state_path.display())),
    };
    let mut updater = r.updater(a)?;
    let log = r.attestation_log(a, &updater)?;
    let targets = updater
        .list_targets()
        .context("listing the repository's targets")?;
    let mut pass = Pass::default();
    for info in targets {
        let Some(sha256) = info.file.hashes.get("sha256") else {
            continue;
        };
        if !matches!(
            RebuildInfo::from_custom(info.file.custom.as_deref()),
            Ok(Some(_))
        ) {
            continue;
        }
        let key = format!("{} {sha256}", info.path);
        if matches!(
            state.get(&key).and_then(|v| v["result"].as_str()),
            Some("match" | "mismatch")
        ) {
            pass.done_before += 1;
            continue;
        }
        let entry = match rebuild_target(a, r, &mut updater, log.as_ref(), &info.path, json_out) {
            Ok(Verdict::Match { attestation }) => {
                pass.matched += 1;
                json!({"result": "match", "attestation": attestation})
            }
            Ok(Verdict::Mismatch { message, report }) => {
                pass.mismatched += 1;
                eprintln!("{message}");
                json!({"result": "mismatch", "report": report})
            }
            Err(e) => {
                pass.failed += 1;
                let why = format!("{e:#}");
                eprintln!("{}: not rebuilt: {why}", info.path);
                json!({"result": "error", "error": why})
            }
        };
        state.insert(key, entry);
        // Saved after each target, so a stop keeps what was done.
        let bytes = serde_json::to_vec_pretty(&state)?;
        airlock_fs::write_atomic(&state_path, &bytes, &airlock_fs::WriteOptions::private())
            .with_context(|| format!("writing {}", state_path.display()))?;
    }
    Ok(pass)
}

/// Where attestations are logged: the trusted root's policy and a client for its log.
pub(crate) struct AttestationLog {
    pub(crate) policy: TransparencyPolicy,
    pub(crate) log: ConfiguredLog,
}

/// The log for attestations, decided before anything is built: with a transparency policy in
/// the trusted root a client counts only logged attestations, so an unlogged one is refused
/// here rather than signed to no use; without one there is no log to submit to.
fn attestation_log(
    a: &Opts,
    policy: Option<&TransparencyPolicy>,
    signer: Option<airlock_core::tlog::NoteSigner>,
) -> anyhow::Result<Option<AttestationLog>> {
    let (policy, signer) = match (policy, signer) {
        (None, None) => return Ok(None),
        (Some(p), None) => bail!(
            "the trusted root requires every attestation to be in the transparency log {} \
             (repository {}): give --log-key FILE, a publisher key that log accepts \
             (`airlock log keygen`); nothing was built",
            p.log_origin(),
            p.repository()
        ),
        (None, Some(_)) => bail!(usage(
            "--log-key: the trusted root has no transparency policy, so there is no log \
             to submit attestations to"
        )),
        (Some(p), Some(s)) => (p.clone(), s),
    };
    let url = a
        .log_url
        .clone()
        .or_else(|| policy.log_url().map(str::to_string))
        .with_context(|| {
            format!(
                "the policy's log line for {} gives no URL: give --log-url",
                policy.log_origin()
            )
        })?;
    let trust = match &a.log_ca {
        Some(p) => Trust::ca_bundle_file(p)
            .with_context(|| format!("--log-ca {} is not usable", p.display()))?,
        None => Trust::WebPki,
    };
    let fetcher = Arc::new(
        Fetcher::new(FetcherConfig {
            trust,
            use_env_proxy: true,
            ..FetcherConfig::default()
        })
        .context("setting up HTTPS for the log")?,
    );
    let timeout = std::time::Duration::from_secs(a.log_timeout.as_secs().max(1) as u64);
    let client = airlock_log::client::LogClient::new(&url, fetcher, signer, timeout);
    let log = ConfiguredLog::new(vec![client]);
    // A log that is down or is another log is found out now, not after the build and signing.
    if let Err(e) = log.pick(&policy) {
        bail!(
            "attestations cannot be logged: {}; nothing was built",
            airlock_core::error_chain(&*e)
        );
    }
    Ok(Some(AttestationLog { policy, log }))
}

/// Submit the attestation at `path` (its exact bytes) to the log, wait for a cosigned
/// checkpoint, verify the bundle as a client that knows nothing of the log would, and write it
/// beside the attestation. Returns the bundle's path.
pub(crate) fn log_attestation(
    log: &AttestationLog,
    path: &Path,
    envelope: &Envelope,
    sha256: &str,
) -> anyhow::Result<PathBuf> {
    use airlock_repo::ReleaseLog;
    let unlogged = || {
        format!(
            "{} is signed but not logged (clients will not count it)",
            path.display()
        )
    };
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let keyid = envelope
        .signatures
        .first()
        .map(|s| s.keyid.clone())
        .with_context(unlogged)?;
    let policy = &log.policy;
    let check = ReleaseCheck::attestation(policy, &keyid, sha256, &bytes).with_context(unlogged)?;
    let bundles = log
        .log
        .log(policy, &[check.statement().to_vec()])
        .map_err(|e| {
            anyhow::anyhow!(
                "{}: {}",
                log.log.describe(policy),
                airlock_core::error_chain(&*e)
            )
        })
        .with_context(unlogged)?;
    let bundle = bundles
        .into_iter()
        .next()
        .with_context(|| format!("{}: no proof bundle returned", log.log.describe(policy)))
        .with_context(unlogged)?;
    // Read the clock after the log answered: a cosignature dated after `now` would not count.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    match check
        .verify(&VerifierState::new(), Some(&bundle), None, now)
        .with_context(unlogged)?
    {
        ReleaseStep::Accepted(_) => {}
        ReleaseStep::NeedConsistency { .. } => {
            bail!(
                "{}: the proof bundle asked for a consistency proof against an empty state",
                unlogged()
            )
        }
    }
    let mut proof = path.as_os_str().to_owned();
    proof.push(PROOF_SUFFIX);
    let proof = PathBuf::from(proof);
    airlock_fs::write_atomic(&proof, &bundle, &airlock_fs::WriteOptions::default())
        .with_context(unlogged)?;
    Ok(proof)
}

/// A fresh directory for one rebuild: DIR/builds/<target>.<sha256 prefix>.<n>.
fn new_work_dir(dir: &Path, target: &str, sha256: &str) -> anyhow::Result<PathBuf> {
    let builds = dir.join("builds");
    std::fs::create_dir_all(&builds).with_context(|| format!("creating {}", builds.display()))?;
    let stem = format!(
        "{}.{}",
        encode_target_file_name(target),
        sha256.get(..16).unwrap_or(sha256)
    );
    for n in 1..10_000u32 {
        let p = builds.join(format!("{stem}.{n}"));
        match std::fs::create_dir(&p) {
            Ok(()) => return Ok(p),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e).with_context(|| format!("creating {}", p.display())),
        }
    }
    bail!("{}: too many builds of {target}", builds.display())
}

#[cfg(test)]
mod tests {
    use super::sibling_targets_url;

    #[test]
    fn targets_sit_beside_metadata() {
        assert_eq!(
            sibling_targets_url("https://h/repo/metadata/").as_deref(),
            Some("https://h/repo/targets/")
        );
        assert_eq!(
            sibling_targets_url("https://h/metadata").as_deref(),
            Some("https://h/targets/")
        );
        assert_eq!(sibling_targets_url("https://metadata/"), None);
        assert_eq!(sibling_targets_url("metadata"), None);
    }
}
