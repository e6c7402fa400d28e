//! `airlock repo`: the publisher's tool (a thin layer over the airlock-repo library).

use std::path::{Path, PathBuf};

use airlock_core::crypto::{KeyScheme, PublicKey};
use airlock_core::transparency::TransparencyPolicy;
use airlock_keystore::{KeyRef, PassphraseSource};
use airlock_repo::{
    AddOptions, AddSource, BinDelegation, ExpiryConfig, InitOptions, KeySource, PathDelegation,
    Period, ReleaseLogConfig, Repository, RoleKeySpec, Rotation, TargetCustom, TargetName,
};
use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use serde_json::json;

use super::common::{PassphraseArgs, TlsArgs, wait_for_shutdown_signal};

#[derive(clap::Args, Debug)]
#[command(
    about = "Publisher's tool: create, sign and publish a TUF repository",
    after_help = "Example (a whole release):
  airlock repo init myrepo --root-keys 3 --root-threshold 2
  airlock repo -C myrepo add ./dist --prefix app/1.2.0/ --version 1.2.0 --channel stable
  airlock repo -C myrepo publish
  airlock repo -C myrepo serve --test-ca-dir ./tls

Private keys are encrypted; the passphrase comes from --passphrase-fd, --passphrase-env,
the AIRLOCK_PASSPHRASE environment variable, or a prompt (in that order)."
)]
pub struct Args {
    /// The repository directory (`-C` and `--repo` are the same).
    #[arg(
        short = 'C',
        long = "dir",
        alias = "repo",
        value_name = "DIR",
        global = true,
        env = "AIRLOCK_REPO",
        default_value = "."
    )]
    repo: PathBuf,
    #[command(flatten)]
    passphrase: PassphraseArgs,
    /// The top-level `--json`.
    #[arg(skip)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    Init(Box<InitArgs>),
    Add(Box<AddArgs>),
    Remove(RemoveArgs),
    Delegate(DelegateArgs),
    DelegateBins(BinsArgs),
    Undelegate(UndelegateArgs),
    Gc(GcArgs),
    Status(StatusArgs),
    Export(ExportArgs),
    Sign(SignArgs),
    Import(ImportArgs),
    Rotate(Box<RotateArgs>),
    Bump(BumpArgs),
    Publish(PublishArgs),
    LogConfig(LogConfigArgs),
    Rebuilders(RebuildersArgs),
    Refresh(RefreshArgs),
    Verify(VerifyArgs),
    Serve(Box<ServeArgs>),
}

/// Create a repository: keys for root (offline, with a threshold), targets, snapshot and
/// timestamp (online), a first root and an empty targets role. Nothing is published yet.
#[derive(Parser, Debug)]
#[command(after_help = "Example:
  airlock repo init myrepo --root-keys 3 --root-threshold 2 --root-key-type hybrid \\
      --key-type ed25519 --timestamp-expiry 1d --snapshot-expiry 7d")]
struct InitArgs {
    /// Directory to create (must not exist or be empty).
    dir: PathBuf,
    /// Key type for every role unless overridden: ed25519, ecdsa, rsa or hybrid.
    #[arg(long, default_value = "ed25519")]
    key_type: KeyScheme,
    /// Root keys' type (default: --key-type).
    #[arg(long)]
    root_key_type: Option<KeyScheme>,
    /// Targets keys' type (default: --key-type).
    #[arg(long)]
    targets_key_type: Option<KeyScheme>,
    /// Snapshot key's type (default: --key-type).
    #[arg(long)]
    snapshot_key_type: Option<KeyScheme>,
    /// Timestamp key's type (default: --key-type).
    #[arg(long)]
    timestamp_key_type: Option<KeyScheme>,
    /// Use this key held outside Airlock for root instead of generating (gpg:KEYID or a
    /// pkcs11: URI); repeatable. Likewise --targets-key, --snapshot-key, --timestamp-key.
    #[arg(long = "root-key", value_name = "KEY")]
    root_key: Vec<KeyRef>,
    /// A key held outside Airlock for targets (see --root-key); repeatable.
    #[arg(long = "targets-key", value_name = "KEY")]
    targets_key: Vec<KeyRef>,
    /// A key held outside Airlock for snapshot (see --root-key); repeatable.
    #[arg(long = "snapshot-key", value_name = "KEY")]
    snapshot_key: Vec<KeyRef>,
    /// A key held outside Airlock for timestamp (see --root-key); repeatable.
    #[arg(long = "timestamp-key", value_name = "KEY")]
    timestamp_key: Vec<KeyRef>,
    /// Number of root keys (kept offline).
    #[arg(long, default_value_t = 1)]
    root_keys: usize,
    /// Root keys that must sign a root.
    #[arg(long, default_value_t = 1)]
    root_threshold: u64,
    /// Number of targets keys.
    #[arg(long, default_value_t = 1)]
    targets_keys: usize,
    /// Targets keys that must sign the targets role.
    #[arg(long, default_value_t = 1)]
    targets_threshold: u64,
    /// Number of snapshot keys (online; all must sign).
    #[arg(long, default_value_t = 1)]
    snapshot_keys: usize,
    /// Number of timestamp keys (online; all must sign).
    #[arg(long, default_value_t = 1)]
    timestamp_keys: usize,
    /// Validity of each signed root (s, m, h, d, w).
    #[arg(long, default_value = "365d")]
    root_expiry: Period,
    /// Validity of each signed targets role.
    #[arg(long, default_value = "90d")]
    targets_expiry: Period,
    /// Validity of each signed snapshot.
    #[arg(long, default_value = "7d")]
    snapshot_expiry: Period,
    /// Validity of each signed timestamp (refresh from cron well within it).
    #[arg(long, default_value = "1d")]
    timestamp_expiry: Period,
    /// Validity of delegated roles and hash bins.
    #[arg(long, default_value = "90d")]
    delegated_expiry: Period,
    /// Write private keys unencrypted. For tests and throw-away demos only.
    #[arg(long)]
    plaintext_keys: bool,
    /// List the length and SHA-256 of each role file in the snapshot, so that a compromised
    /// snapshot or timestamp key cannot feed clients endless or substituted role files.
    #[arg(long)]
    meta_hashes: bool,
    /// Releases whose metadata stays published (current included); `gc` keeps their targets.
    #[arg(long, default_value_t = 2)]
    keep_releases: u64,
    #[command(flatten)]
    tlog: TlogArgs,
    #[command(flatten)]
    log: LogArgs,
}

/// The transparency policy root carries (docs/transparency.md).
#[derive(clap::Args, Debug)]
struct TlogArgs {
    /// Require binary transparency: this c2sp.org/tlog-policy file (exactly one `log` line,
    /// witnesses, quorum) goes into root as `x-airlock-transparency`; clients then accept root
    /// and targets files only with a proof that they are in that log.
    #[arg(long, value_name = "FILE")]
    tlog_policy: Option<PathBuf>,
    /// The repository's name in every logged statement, e.g. example.com/app (default on
    /// rotate: the current one).
    #[arg(long, value_name = "NAME")]
    tlog_repository: Option<String>,
}

/// Where `publish` submits release statements (`[release_log]` in the config).
#[derive(clap::Args, Debug)]
struct LogArgs {
    /// The transparency log's URL (`airlock log serve`'s base URL: /add, /checkpoint, /proof/N).
    #[arg(long, value_name = "URL", requires = "log_key")]
    log_url: Option<String>,
    /// Publisher note key file from `airlock log keygen` (its name is read from FILE.pub).
    #[arg(long, value_name = "FILE", requires = "log_url")]
    log_key: Option<PathBuf>,
    /// CA certificates (PEM) trusted for the log's TLS (default: the webpki roots).
    #[arg(long, value_name = "PEM", requires = "log_url")]
    log_ca_file: Option<PathBuf>,
    /// Longest wait for a cosigned checkpoint covering a release (s, m, h).
    #[arg(long, value_name = "PERIOD", default_value = "60s")]
    log_timeout: Period,
}

/// Show or set where `publish` logs releases when root requires transparency.
#[derive(Parser, Debug)]
#[command(after_help = "Examples:
  airlock log keygen --name publisher.example.com --out publisher.key
  airlock repo -C myrepo log-config --log-url https://log.example.com --log-key publisher.key
  airlock repo -C myrepo log-config            # show it
  airlock repo -C myrepo log-config --remove")]
struct LogConfigArgs {
    #[command(flatten)]
    log: LogArgs,
    /// Forget the log configuration.
    #[arg(long, conflicts_with = "log_url")]
    remove: bool,
}

/// Show or set the rebuilder policy root carries (`x-airlock-rebuilders`, docs/rebuild.md):
/// clients then download a target only when `--threshold` of these rebuilder keys signed
/// attestations for exactly its digest. A new root version; publishing it needs the root
/// threshold. Without options it shows the staged policy.
#[derive(Parser, Debug)]
#[command(after_help = "Examples:
  airlock repo rebuilders --key rebuilder-a.pub.json --key rebuilder-b.pub.json --threshold 2
  airlock repo rebuilders --off
  airlock repo rebuilders --json")]
struct RebuildersArgs {
    /// A trusted rebuilder's public key (TUF JSON, as `airlock key generate --public-out`
    /// writes it); repeatable. Replaces the keys of the current policy.
    #[arg(long = "key", value_name = "PUB.json", requires = "threshold")]
    keys: Vec<PathBuf>,
    /// How many distinct rebuilders must have attested to a target's digest.
    #[arg(long, requires = "keys")]
    threshold: Option<usize>,
    /// Remove the policy: rebuilds are no longer required.
    #[arg(long, conflicts_with_all = ["keys", "threshold"])]
    off: bool,
}

/// Remove a delegation (a delegated role or a hash-bin prefix) and every role only it
/// delegated to; its delegator gets a new version. Key files stay under keys/.
#[derive(Parser, Debug)]
#[command(after_help = "Example:\n  airlock repo undelegate docs && airlock repo publish")]
struct UndelegateArgs {
    /// The delegated role or hash-bin prefix to remove.
    role: String,
}

/// Remove published metadata of releases older than the last N, and target files that no kept
/// release lists. The current release is never touched.
#[derive(Parser, Debug)]
#[command(after_help = "Example:\n  airlock repo -C myrepo gc --keep 5")]
struct GcArgs {
    /// Releases to keep, the current one included (default: keep_releases in the config).
    #[arg(long)]
    keep: Option<u64>,
}

/// Add files or whole directories as targets (hashed in parallel), with custom metadata.
///
/// A directory adds its contents: ./dist/lib/x.so becomes PREFIX + lib/x.so. With --dir-name
/// it adds the directory itself: PREFIX + dist/lib/x.so.
#[derive(Parser, Debug)]
#[command(after_help = "Examples:
  airlock repo add ./dist --prefix app/1.2.0/ --version 1.2.0 --channel stable \\
      --source-ref git+https://example.org/app@v1.2.0      # app/1.2.0/<files in dist>
  airlock repo add ./dist --prefix app/ --dir-name         # app/dist/<files in dist>
  airlock repo add ./build/app.tar.gz --name app/latest.tar.gz
  airlock repo add ./build/app --name app/app --deltas 2         # patches from 2 earlier versions
  airlock repo add ./build/app --name app/1.3.0/app --delta-from app/1.2.0/app
  airlock repo add ./out/app --name app/1.2.0/app --version 1.2.0 \\
      --source-git https://example.org/app.git --source-commit 0123456789abcdef0123456789abcdef01234567 \\
      --build-command 'make app' --builder-toolchain debian-13 \\
      --build-env SOURCE_DATE_EPOCH=1700000000 --artifact out/app   # see docs/rebuild.md")]
struct AddArgs {
    /// Files or directories (walked recursively; symbolic links are refused). A directory adds
    /// its contents, not its own name (see --dir-name).
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Target path prefix (e.g. `app/1.2.0/`); a directory's files keep their relative paths.
    #[arg(long, default_value = "")]
    prefix: String,
    /// List a directory's files under the directory's own name (PREFIX + DIR/...), not its
    /// contents directly under PREFIX.
    #[arg(long, conflicts_with = "name")]
    dir_name: bool,
    /// Exact target path, for a single file.
    #[arg(long, conflicts_with = "prefix")]
    name: Option<String>,
    /// Put the targets in this role (default: the role a client would search first).
    #[arg(long)]
    role: Option<String>,
    /// custom.version of each target.
    #[arg(long)]
    version: Option<String>,
    /// custom.channel of each target.
    #[arg(long)]
    channel: Option<String>,
    /// custom.source_ref: where rebuilders find the source.
    #[arg(long)]
    source_ref: Option<String>,
    /// custom.rollout_percent: offer the release to this share of machines (0-100) for a
    /// staged rollout by the update agent; add the file again with a larger share to widen it.
    #[arg(long, value_name = "PERCENT", value_parser = clap::value_parser!(u8).range(0..=100))]
    rollout_percent: Option<u8>,
    /// Delta updates: publish patches from this many earlier versions of each target's path
    /// (the version staged now, then the versions its own patches start from), listed in the
    /// target's custom.delta. Default 0: none.
    #[arg(long, value_name = "N", default_value_t = 0)]
    deltas: usize,
    /// Delta updates: also publish a patch from the version of TARGET staged now (e.g. the
    /// previous release's path, app/1.1.0/app.bin for app/1.2.0/app.bin). Repeatable.
    #[arg(long, value_name = "TARGET")]
    delta_from: Vec<String>,
    /// Make a .torrent of each file (BitTorrent fallback; `bittorrent` builds only): its v1
    /// info hash goes into custom.bittorrent.btih, the file beside the target in
    /// published/targets (seed them with `airlock mirror seed`).
    #[arg(long)]
    torrent: bool,
    /// A tracker the .torrent files announce (repeatable; with --torrent).
    #[arg(long = "tracker", value_name = "URL", requires = "torrent")]
    trackers: Vec<String>,
    #[command(flatten)]
    rebuild: RebuildArgs,
}

/// custom.rebuild: the source and recipe rebuilders use (docs/rebuild.md). All or nothing: a
/// source, a command, a builder and an artifact path.
#[derive(clap::Args, Debug, Default)]
#[group(id = "rebuild_recipe", multiple = true)]
struct RebuildArgs {
    /// Source: a git repository URL (https, http, ssh, git or file); needs --source-commit.
    #[arg(
        long,
        value_name = "URL",
        requires = "source_commit",
        conflicts_with = "source_tarball",
        help_heading = "Rebuild recipe"
    )]
    source_git: Option<String>,
    /// The full commit id to build (40 or 64 lowercase hex digits).
    #[arg(
        long,
        value_name = "HEX",
        requires = "source_git",
        help_heading = "Rebuild recipe"
    )]
    source_commit: Option<String>,
    /// Source: a source archive's HTTPS URL; needs --source-sha256.
    #[arg(
        long,
        value_name = "URL",
        requires = "source_sha256",
        help_heading = "Rebuild recipe"
    )]
    source_tarball: Option<String>,
    /// The source archive's SHA-256 (64 lowercase hex digits).
    #[arg(
        long,
        value_name = "HEX",
        requires = "source_tarball",
        help_heading = "Rebuild recipe"
    )]
    source_sha256: Option<String>,
    /// The build command, run with /bin/sh -c in the source tree's root.
    #[arg(long, value_name = "CMD", help_heading = "Rebuild recipe")]
    build_command: Option<String>,
    /// Builder environment: a named toolchain the rebuilder provides (e.g. debian-13).
    #[arg(
        long,
        value_name = "NAME",
        conflicts_with = "builder_image",
        help_heading = "Rebuild recipe"
    )]
    builder_toolchain: Option<String>,
    /// Builder environment: an OCI image pinned by digest (NAME@sha256:HEX).
    #[arg(long, value_name = "IMAGE", help_heading = "Rebuild recipe")]
    builder_image: Option<String>,
    /// An environment variable for the build, e.g. SOURCE_DATE_EPOCH=1700000000 (repeatable).
    #[arg(
        long = "build-env",
        value_name = "NAME=VALUE",
        help_heading = "Rebuild recipe"
    )]
    build_env: Vec<String>,
    /// The file the build produces, relative to the source tree's root.
    #[arg(long, value_name = "PATH", help_heading = "Rebuild recipe")]
    artifact: Option<String>,
}

impl RebuildArgs {
    /// The recipe the flags describe, `None` when none was given; a partial recipe is an error
    /// that names what is missing.
    fn to_info(&self) -> anyhow::Result<Option<airlock_core::rebuild::RebuildInfo>> {
        use airlock_core::rebuild::{Builder, RebuildInfo, Recipe, SourceRef};
        let any = self.source_git.is_some()
            || self.source_tarball.is_some()
            || self.build_command.is_some()
            || self.builder_toolchain.is_some()
            || self.builder_image.is_some()
            || !self.build_env.is_empty()
            || self.artifact.is_some();
        if !any {
            return Ok(None);
        }
        let source = match (
            &self.source_git,
            &self.source_commit,
            &self.source_tarball,
            &self.source_sha256,
        ) {
            (Some(url), Some(commit), None, None) => SourceRef::Git {
                url: url.clone(),
                commit: commit.clone(),
            },
            (None, None, Some(url), Some(sha256)) => SourceRef::Tarball {
                url: url.clone(),
                sha256: sha256.clone(),
            },
            _ => bail!(
                "a rebuild recipe needs a source: --source-git with --source-commit, or \
                 --source-tarball with --source-sha256"
            ),
        };
        let builder = match (&self.builder_toolchain, &self.builder_image) {
            (Some(t), None) => Builder::Toolchain(t.clone()),
            (None, Some(i)) => Builder::Oci(i.clone()),
            _ => bail!("a rebuild recipe needs --builder-toolchain or --builder-image"),
        };
        let command = self
            .build_command
            .clone()
            .context("a rebuild recipe needs --build-command")?;
        let artifact = self
            .artifact
            .clone()
            .context("a rebuild recipe needs --artifact")?;
        let mut env = std::collections::BTreeMap::new();
        for kv in &self.build_env {
            let (k, v) = kv
                .split_once('=')
                .with_context(|| format!("--build-env {kv:?}: expected NAME=VALUE"))?;
            if env.insert(k.to_string(), v.to_string()).is_some() {
                bail!("--build-env {k} given twice");
            }
        }
        let info = RebuildInfo {
            source,
            recipe: Recipe {
                command,
                builder,
                env,
                artifact,
            },
        };
        info.validate()?;
        Ok(Some(info))
    }
}

/// Remove targets by exact path, or all under a prefix ending in `/`.
#[derive(Parser, Debug)]
#[command(after_help = "Example:\n  airlock repo remove app/1.1.0/ app/latest.tar.gz")]
struct RemoveArgs {
    /// Target paths; one ending in `/` removes everything under it.
    #[arg(required = true)]
    targets: Vec<String>,
}

/// Delegate targets matching path patterns to a new role with its own keys.
#[derive(Parser, Debug)]
#[command(
    after_help = "Example:\n  airlock repo delegate docs --path 'docs/*' --path 'docs/*/*' --threshold 1 --terminating"
)]
struct DelegateArgs {
    /// Name of the new role.
    name: String,
    /// Glob pattern (`*`, `?` never match `/`); repeatable.
    #[arg(long = "path", required = true)]
    paths: Vec<String>,
    /// The delegating role.
    #[arg(long, default_value = "targets")]
    from: String,
    #[command(flatten)]
    keys: KeyArgs,
    /// A terminating delegation: a client searching for a matching path looks no further.
    #[arg(long)]
    terminating: bool,
}

/// Delegate everything under a role to N succinct hash bins (TAP 15).
#[derive(Parser, Debug)]
#[command(after_help = "Example:\n  airlock repo delegate-bins --bins 256 --prefix bin")]
struct BinsArgs {
    /// Number of bins (a power of two, 2..=65536).
    #[arg(long)]
    bins: u64,
    /// Bin names are PREFIX-00 .. PREFIX-ff.
    #[arg(long, default_value = "bin")]
    prefix: String,
    /// The delegating role.
    #[arg(long, default_value = "targets")]
    from: String,
    #[command(flatten)]
    keys: KeyArgs,
}

#[derive(clap::Args, Debug)]
struct KeyArgs {
    /// Generate this many keys (ignored when --public-key is given).
    #[arg(long, default_value_t = 1)]
    keys: usize,
    /// Type of generated keys: ed25519, ecdsa, rsa or hybrid.
    #[arg(long, default_value = "ed25519")]
    key_type: KeyScheme,
    /// Use this public key file (TUF JSON) instead of generating; repeatable.
    #[arg(long = "public-key")]
    public_keys: Vec<PathBuf>,
    /// Keys that must sign the role.
    #[arg(long, default_value_t = 1)]
    threshold: u64,
    /// Write generated private keys unencrypted (tests only).
    #[arg(long)]
    plaintext_keys: bool,
}

/// Show every staged role: version, published version, signatures, expiry.
#[derive(Parser, Debug)]
#[command(after_help = "Example:\n  airlock repo -C myrepo status --json")]
struct StatusArgs {}

/// Publish what is staged: copy new target files, sign a new snapshot and timestamp with the
/// online keys, and switch the published metadata atomically.
#[derive(Parser, Debug)]
#[command(
    after_help = "Example:\n  airlock repo -C myrepo publish && airlock repo -C myrepo verify"
)]
struct PublishArgs {
    /// Hard-link new target files into published/targets instead of copying them (same file
    /// system only). The published file is the source file: the source becomes mode 0444
    /// (read-only, readable by everyone) and must never be modified in place.
    #[arg(long)]
    link_targets: bool,
}

/// Write a staged role's metadata file for offline signing.
#[derive(Parser, Debug)]
#[command(after_help = "Example (root threshold 2 across two machines):
  airlock repo export root -o root.json         # carry root.json to machine A
  airlock repo sign --key root-A.key root.json  # on machine A, then on machine B
  airlock repo import root.json                 # back on the repository machine")]
struct ExportArgs {
    /// The role to export (root, targets, a delegated role, ...).
    role: String,
    /// Output file (default ROLE.json in the current directory).
    #[arg(short, long)]
    out: Option<PathBuf>,
}

/// Sign a metadata file with one private key file. Needs no repository.
#[derive(Parser, Debug)]
#[command(
    after_help = "Example:\n  AIRLOCK_PASSPHRASE=... airlock repo sign --key /media/usb/root-1.key root.json"
)]
struct SignArgs {
    /// The key: a private key file, gpg:KEYID or a pkcs11: URI.
    #[arg(long, value_name = "KEY")]
    key: KeyRef,
    /// The metadata file (signed in place unless --out is given).
    file: PathBuf,
    /// Write the signed file here instead of in place.
    #[arg(short, long)]
    out: Option<PathBuf>,
}

/// Import signatures from signed metadata files made by `airlock repo sign`.
#[derive(Parser, Debug)]
#[command(after_help = "Example:\n  airlock repo import root.json targets.json")]
struct ImportArgs {
    /// Signed metadata files (from `export` and `sign`).
    #[arg(required = true)]
    files: Vec<PathBuf>,
}

/// Rotate a role's keys. For root, the new root is signed by the old and the new thresholds.
#[derive(Parser, Debug)]
#[command(after_help = "Examples:
  airlock repo rotate root --generate 3 --threshold 2 --replace   # all-new root keys
  airlock repo rotate timestamp --generate 1 --replace
  airlock repo rotate targets --public-key alice.pub.json --remove 4f2a...
  airlock repo rotate root --tlog-policy policy.txt --tlog-repository example.com/app
  airlock repo rotate root --tlog-off                              # needs the root threshold")]
struct RotateArgs {
    /// root, targets, snapshot, timestamp, a delegated role, or a hash-bin prefix.
    role: String,
    /// Generate this many new keys.
    #[arg(long, default_value_t = 0)]
    generate: usize,
    /// Type of generated keys: ed25519, ecdsa, rsa or hybrid.
    #[arg(long, default_value = "ed25519")]
    key_type: KeyScheme,
    /// Add this public key (TUF JSON); repeatable.
    #[arg(long = "public-key")]
    public_keys: Vec<PathBuf>,
    /// Add this key held outside Airlock (gpg:KEYID or a pkcs11: URI); it signs whenever it is
    /// reachable. Repeatable.
    #[arg(long = "key", value_name = "KEY")]
    keys: Vec<KeyRef>,
    /// Drop this key id; repeatable.
    #[arg(long = "remove")]
    remove: Vec<String>,
    /// Drop every old key.
    #[arg(long)]
    replace: bool,
    /// New threshold (default: unchanged).
    #[arg(long)]
    threshold: Option<u64>,
    /// Write generated private keys unencrypted (tests only).
    #[arg(long)]
    plaintext_keys: bool,
    /// (root) Set or change the transparency policy.
    #[command(flatten)]
    tlog: TlogArgs,
    /// (root) Remove the transparency policy; publishing it needs the root threshold.
    #[arg(long, conflicts_with_all = ["tlog_policy", "tlog_repository"])]
    tlog_off: bool,
}

/// Give a role a new version and expiry date, re-signed.
#[derive(Parser, Debug)]
#[command(after_help = "Example:\n  airlock repo bump targets && airlock repo publish")]
struct BumpArgs {
    /// The role to re-sign (root, targets, a delegated role, ...).
    role: String,
}

/// New timestamp (and snapshot) with the online keys: run it from cron.
#[derive(Parser, Debug)]
#[command(
    after_help = "Example (crontab, hourly; the passphrase of the online keys on fd 3):
  0 * * * *  airlock repo -C /srv/repo --passphrase-fd 3 refresh 3</etc/airlock/online-pass"
)]
struct RefreshArgs {
    /// Also make a new snapshot version (done anyway when it would expire first).
    #[arg(long)]
    snapshot: bool,
}

/// Check a published tree as a client would, and list every problem.
#[derive(Parser, Debug)]
#[command(
    after_help = "Examples:\n  airlock repo -C myrepo verify\n  airlock repo verify --published /var/www/repo --json"
)]
struct VerifyArgs {
    /// A published directory (holding metadata/ and targets/); default REPO/published.
    #[arg(long)]
    published: Option<PathBuf>,
}

/// Serve the published tree over HTTPS (for tests and small deployments).
#[derive(Parser, Debug)]
#[command(after_help = "Examples:
  airlock repo -C myrepo serve --test-ca-dir ./tls     # clients trust ./tls/ca.pem
  airlock repo -C myrepo serve --listen 0.0.0.0:8443 --tls-cert fullchain.pem --tls-key key.pem")]
struct ServeArgs {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, alias = "addr", default_value = "127.0.0.1:0")]
    listen: std::net::SocketAddr,
    #[command(flatten)]
    tls: TlsArgs,
    /// Generate a test CA and server certificate for 127.0.0.1/localhost, written to this dir.
    #[arg(long, conflicts_with = "tls_cert")]
    test_ca_dir: Option<PathBuf>,
    /// Directory to serve; default REPO/published.
    #[arg(long)]
    published: Option<PathBuf>,
}

fn passphrase(args: &Args) -> PassphraseSource {
    args.passphrase.source()
}

fn open(args: &Args) -> anyhow::Result<Repository> {
    Ok(Repository::open(&args.repo, Some(passphrase(args)))?)
}

fn progress_bar(json: bool, what: &'static str) -> indicatif::ProgressBar {
    if json {
        return indicatif::ProgressBar::hidden();
    }
    let pb = indicatif::ProgressBar::new(0);
    pb.set_style(
        indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} files ({per_sec})")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    pb.set_message(what);
    pb
}

/// The `--json` document through the one JSON printer, or the human text.
fn print(json_out: bool, value: serde_json::Value, human: impl FnOnce()) {
    if json_out {
        // Serialising a `Value` cannot fail.
        let _ = super::common::print_json(&value);
    } else {
        human();
    }
}

fn read_public_keys(paths: &[PathBuf]) -> anyhow::Result<Vec<PublicKey>> {
    paths
        .iter()
        .map(|p| airlock_keystore::read_public_key(p).map_err(anyhow::Error::from))
        .collect()
}

/// Keys named by reference on `init` and `rotate` must be held outside Airlock: a key file is
/// added with --public-key (its private half signs from `keys/` or offline).
fn external_refs_only(refs: &[KeyRef], flag: &str) -> anyhow::Result<()> {
    if let Some(r) = refs.iter().find(|r| !r.is_external()) {
        bail!(
            "{flag} {r}: give gpg:KEYID or a pkcs11: URI here; a key file's public half goes in \
             with --public-key"
        );
    }
    Ok(())
}

fn key_source(k: &KeyArgs) -> anyhow::Result<KeySource> {
    if k.public_keys.is_empty() {
        Ok(KeySource::Generate {
            scheme: k.key_type,
            count: k.keys,
        })
    } else {
        Ok(KeySource::Public(read_public_keys(&k.public_keys)?))
    }
}

fn unsigned_note(unsigned: &[String]) {
    if !unsigned.is_empty() {
        let shown: Vec<&str> = unsigned.iter().take(5).map(String::as_str).collect();
        let more = if unsigned.len() > 5 {
            format!(" and {} more", unsigned.len() - 5)
        } else {
            String::new()
        };
        println!(
            "needs signatures (keys not on this machine): {}{more}; see `airlock repo status`",
            shown.join(", ")
        );
    }
}

pub fn run(mut args: Args, json: bool) -> anyhow::Result<()> {
    args.json = json;
    match &args.command {
        Command::Init(a) => init(&args, a),
        Command::Add(a) => add(&args, a),
        Command::Remove(a) => remove(&args, a),
        Command::Delegate(a) => delegate(&args, a),
        Command::DelegateBins(a) => delegate_bins(&args, a),
        Command::Undelegate(a) => undelegate(&args, a),
        Command::Gc(a) => gc(&args, a),
        Command::Status(a) => status(&args, a),
        Command::Export(a) => export(&args, a),
        Command::Sign(a) => sign(&args, a),
        Command::Import(a) => import(&args, a),
        Command::Rotate(a) => rotate(&args, a),
        Command::Bump(a) => bump(&args, a),
        Command::Publish(a) => publish(&args, a),
        Command::LogConfig(a) => log_config(&args, a),
        Command::Rebuilders(a) => rebuilders(&args, a),
        Command::Refresh(a) => refresh(&args, a),
        Command::Verify(a) => verify(&args, a),
        Command::Serve(a) => serve(&args, a),
    }
}

fn init(args: &Args, a: &InitArgs) -> anyhow::Result<()> {
    let json_out = args.json;
    let protection = if a.plaintext_keys {
        airlock_repo::Protection::PlaintextForTests
    } else {
        airlock_repo::Protection::encrypted(passphrase(args))
    };
    let mut external_keys = std::collections::BTreeMap::new();
    for (role, refs) in [
        ("root", &a.root_key),
        ("targets", &a.targets_key),
        ("snapshot", &a.snapshot_key),
        ("timestamp", &a.timestamp_key),
    ] {
        if !refs.is_empty() {
            external_refs_only(refs, &format!("--{role}-key"))?;
            external_keys.insert(role.to_string(), refs.clone());
        }
    }
    // A role given keys by reference has exactly those keys; online roles need all of them.
    let count = |role: &str, n: usize| external_keys.get(role).map_or(n, Vec::len);
    let spec = |t: Option<KeyScheme>, n, th| RoleKeySpec::new(t.unwrap_or(a.key_type), n, th);
    let snapshot_n = count("snapshot", a.snapshot_keys);
    let timestamp_n = count("timestamp", a.timestamp_keys);
    let opts = InitOptions {
        root: spec(
            a.root_key_type,
            count("root", a.root_keys),
            a.root_threshold,
        ),
        targets: spec(
            a.targets_key_type,
            count("targets", a.targets_keys),
            a.targets_threshold,
        ),
        snapshot: spec(a.snapshot_key_type, snapshot_n, snapshot_n as u64),
        timestamp: spec(a.timestamp_key_type, timestamp_n, timestamp_n as u64),
        expiry: ExpiryConfig {
            root: a.root_expiry,
            targets: a.targets_expiry,
            snapshot: a.snapshot_expiry,
            timestamp: a.timestamp_expiry,
            delegated: a.delegated_expiry,
        },
        protection,
        publish: airlock_repo::PublishConfig {
            meta_hashes: a.meta_hashes,
            keep_releases: a.keep_releases,
        },
        now: None,
        external_keys,
    };
    let policy = tlog_policy(&a.tlog, None)?;
    let log = release_log_config(&a.log)?;
    let mut repo = Repository::init(&a.dir, &opts)
        .with_context(|| format!("initialising {}", a.dir.display()))?;
    if let Some(p) = &policy {
        repo.set_transparency(Some(p))?;
    }
    if log.is_some() {
        repo.set_release_log(log)?;
    }
    let keys: Vec<_> = repo
        .config()
        .keys
        .iter()
        .map(|k| json!({"keyid": k.keyid, "role": k.role, "scheme": k.scheme, "private": k.private, "external": k.external, "public": k.public}))
        .collect();
    print(json_out, json!({"repo": a.dir, "keys": keys}), || {
        println!("created repository {}", a.dir.display());
        for k in &repo.config().keys {
            println!(
                "  {:<9} {:<7} {}  {}",
                k.role,
                k.scheme,
                k.keyid.get(..16).unwrap_or(&k.keyid),
                k.private.as_deref().unwrap_or("-")
            );
        }
        println!(
            "next: move the root-*.key files to offline storage, add targets, then `airlock repo -C {} publish`",
            a.dir.display()
        );
    });
    Ok(())
}

fn add(args: &Args, a: &AddArgs) -> anyhow::Result<()> {
    let json_out = args.json;
    let mut repo = open(args)?;
    let target = match &a.name {
        Some(n) => {
            if a.paths.len() != 1 {
                bail!("--name gives the target path of exactly one file");
            }
            TargetName::Exact(n.clone())
        }
        None => TargetName::Prefix(a.prefix.clone()),
    };
    let mut sources: Vec<AddSource> = Vec::new();
    // What each directory became, said back to the user (contents vs the directory).
    let mut dirs: Vec<String> = Vec::new();
    for p in &a.paths {
        let mut target = target.clone();
        if p.is_dir() {
            let mut prefix = a.prefix.clone();
            if a.dir_name {
                let name = p
                    .canonicalize()
                    .with_context(|| format!("reading {}", p.display()))?
                    .file_name()
                    .and_then(|n| n.to_str())
                    .map(str::to_string)
                    .with_context(|| {
                        format!("{}: no UTF-8 directory name for --dir-name", p.display())
                    })?;
                prefix = format!("{prefix}{name}/");
                target = TargetName::Prefix(prefix.clone());
            }
            dirs.push(if a.dir_name {
                format!("directory {} itself, as {prefix}...", p.display())
            } else {
                format!(
                    "contents of {} as {prefix}... (--dir-name: the directory itself)",
                    p.display()
                )
            });
        }
        sources.push(AddSource {
            path: p.clone(),
            target,
        });
    }
    let options = AddOptions {
        custom: TargetCustom {
            version: a.version.clone(),
            channel: a.channel.clone(),
            source_ref: a.source_ref.clone(),
            rollout_percent: a.rollout_percent,
            rebuild: a.rebuild.to_info()?,
        },
        role: a.role.clone(),
        deltas: a.deltas,
        delta_from: a.delta_from.clone(),
        torrent: match a.torrent {
            true => Some(super::torrent::maker(&a.trackers)?),
            false => None,
        },
    };
    let pb = progress_bar(json_out, "hashing");
    let report = repo.add_targets(&sources, &options, &|done, total| {
        pb.set_length(total);
        pb.set_position(done);
    })?;
    pb.finish_and_clear();
    print(json_out, serde_json::to_value(&report)?, || {
        for d in &dirs {
            println!("{d}");
        }
        for t in report.targets.iter().take(10) {
            println!("  {t}");
        }
        if report.targets.len() > 10 {
            println!("  ... and {} more", report.targets.len() - 10);
        }
        println!(
            "staged {} target(s), {} bytes, in {} role(s)",
            report.added,
            report.bytes,
            report.roles.len()
        );
        for p in &report.patches {
            let base: String = p.base.chars().take(16).collect();
            match (&p.skipped, p.length) {
                (None, Some(len)) => {
                    println!("  patch for {} from {base}…: {len} bytes", p.target)
                }
                (Some(why), _) => println!("  no patch for {} from {base}…: {why}", p.target),
                (None, None) => {}
            }
        }
        unsigned_note(&report.unsigned);
    });
    Ok(())
}

fn remove(args: &Args, a: &RemoveArgs) -> anyhow::Result<()> {
    let json_out = args.json;
    let mut repo = open(args)?;
    let (roles, unsigned) = repo.remove_targets(&a.targets)?;
    print(
        json_out,
        json!({"roles": roles, "unsigned": unsigned}),
        || {
            println!("removed from {}", roles.join(", "));
            unsigned_note(&unsigned);
        },
    );
    Ok(())
}

fn delegate(args: &Args, a: &DelegateArgs) -> anyhow::Result<()> {
    let json_out = args.json;
    let mut repo = open(args)?;
    let report = repo.delegate_paths(
        &PathDelegation {
            from: a.from.clone(),
            name: a.name.clone(),
            paths: a.paths.clone(),
            keys: key_source(&a.keys)?,
            threshold: a.keys.threshold,
            terminating: a.terminating,
        },
        a.keys.plaintext_keys,
    )?;
    print(json_out, serde_json::to_value(&report)?, || {
        println!("{} now delegates {:?} to {}", a.from, a.paths, a.name);
        unsigned_note(&report.unsigned);
    });
    Ok(())
}

fn delegate_bins(args: &Args, a: &BinsArgs) -> anyhow::Result<()> {
    let json_out = args.json;
    let mut repo = open(args)?;
    let report = repo.delegate_bins(
        &BinDelegation {
            from: a.from.clone(),
            bins: a.bins,
            name_prefix: a.prefix.clone(),
            keys: key_source(&a.keys)?,
            threshold: a.keys.threshold,
        },
        a.keys.plaintext_keys,
    )?;
    print(json_out, serde_json::to_value(&report)?, || {
        println!(
            "{} now delegates to {} hash bins {}-*",
            a.from, a.bins, a.prefix
        );
        unsigned_note(&report.unsigned);
    });
    Ok(())
}

fn undelegate(args: &Args, a: &UndelegateArgs) -> anyhow::Result<()> {
    let json_out = args.json;
    let mut repo = open(args)?;
    let report = repo.undelegate(&a.role)?;
    print(json_out, serde_json::to_value(&report)?, || {
        println!(
            "removed the delegation to {}; changed {}",
            a.role,
            report.roles.join(", ")
        );
        unsigned_note(&report.unsigned);
    });
    Ok(())
}

fn gc(args: &Args, a: &GcArgs) -> anyhow::Result<()> {
    let json_out = args.json;
    let mut repo = open(args)?;
    let report = repo.gc(a.keep)?;
    print(json_out, serde_json::to_value(&report)?, || {
        println!(
            "kept {} release(s); removed {} metadata file(s) and {} target file(s) ({} bytes)",
            report.releases_kept,
            report.metadata_files_removed,
            report.target_files_removed,
            report.bytes_removed
        );
    });
    Ok(())
}

fn status(args: &Args, _a: &StatusArgs) -> anyhow::Result<()> {
    let json_out = args.json;
    let repo = open(args)?;
    let status = repo.status()?;
    let tlog = repo.transparency()?;
    let mut value = serde_json::to_value(&status)?;
    // The policy belongs to root: it is shown on root's row, which keeps the document a list.
    if let Some(rows) = value.as_array_mut()
        && let Some(root) = rows.iter_mut().find(|r| r["role"] == "root")
    {
        root["transparency"] = tlog.as_ref().map_or(serde_json::Value::Null, policy_json);
        root["release_log"] = serde_json::to_value(&repo.config().release_log)?;
    }
    print(json_out, value, || {
        println!(
            "{:<16} {:>8} {:>10} {:>10}  expires",
            "role", "version", "published", "signed"
        );
        for s in &status {
            println!(
                "{:<16} {:>8} {:>10} {:>6}/{:<3}  {}{}",
                s.role,
                s.version,
                s.published_version,
                s.valid_signatures,
                s.threshold,
                s.expires,
                if s.signed { "" } else { "  NEEDS SIGNATURES" }
            );
        }
        match &tlog {
            None => println!("transparency: off (root carries no x-airlock-transparency policy)"),
            Some(p) => {
                let v = policy_json(p);
                println!("transparency: required by the staged root");
                println!("  repository  {}", p.repository());
                println!(
                    "  log         {} {}",
                    p.log_origin(),
                    p.log_url().unwrap_or("(no URL)")
                );
                for w in v["witnesses"].as_array().into_iter().flatten() {
                    println!(
                        "  witness     {} {} {}",
                        w["name"].as_str().unwrap_or_default(),
                        w["key"].as_str().unwrap_or_default(),
                        w["url"].as_str().unwrap_or_default()
                    );
                }
                println!("  quorum      {}", v["quorum"].as_str().unwrap_or_default());
            }
        }
        match &repo.config().release_log {
            None => println!("release log: not configured (`airlock repo log-config`)"),
            Some(l) => println!(
                "release log: {} (key {}, timeout {})",
                l.url, l.key, l.timeout
            ),
        }
    });
    Ok(())
}

/// The policy as `status --json` shows it.
fn policy_json(p: &TransparencyPolicy) -> serde_json::Value {
    let quorum: Vec<&str> = p
        .policy_text()
        .lines()
        .filter(|l| l.starts_with("quorum ") || l.starts_with("group "))
        .collect();
    let witnesses: Vec<serde_json::Value> = p
        .policy()
        .witnesses
        .iter()
        .map(|w| json!({"name": w.name, "key": w.verifier.to_vkey(), "url": w.url}))
        .collect();
    json!({
        "repository": p.repository(),
        "log_origin": p.log_origin(),
        "log_key": p.policy().logs.first().map(|l| l.verifier.to_vkey()),
        "log_url": p.log_url(),
        "witnesses": witnesses,
        "quorum": quorum.join("; "),
        "policy": p.policy_text(),
    })
}

/// The policy from `--tlog-policy`/`--tlog-repository` (the repository name defaults to
/// `current`'s; a new repository name alone keeps `current`'s policy text).
fn tlog_policy(
    a: &TlogArgs,
    current: Option<&TransparencyPolicy>,
) -> anyhow::Result<Option<TransparencyPolicy>> {
    let text = match (&a.tlog_policy, current) {
        (Some(f), _) => std::fs::read_to_string(f)
            .with_context(|| format!("reading the tlog policy {}", f.display()))?,
        (None, Some(c)) => c.policy_text().to_string(),
        (None, None) if a.tlog_repository.is_some() => {
            return Err(super::output::usage(
                "--tlog-repository needs --tlog-policy FILE",
            ));
        }
        (None, None) => return Ok(None),
    };
    let repository = match (&a.tlog_repository, current) {
        (Some(r), _) => r.clone(),
        (None, Some(c)) => c.repository().to_string(),
        (None, None) => {
            return Err(super::output::usage(
                "--tlog-policy needs --tlog-repository NAME (the repository's name in logged statements)",
            ));
        }
    };
    let policy =
        TransparencyPolicy::new(&repository, &text).with_context(|| match &a.tlog_policy {
            Some(f) => format!("tlog policy {}", f.display()),
            None => "tlog policy".into(),
        })?;
    Ok(Some(policy))
}

/// `[release_log]` from the flags (paths made absolute: the command may run elsewhere later).
fn release_log_config(a: &LogArgs) -> anyhow::Result<Option<ReleaseLogConfig>> {
    let (Some(url), Some(key)) = (&a.log_url, &a.log_key) else {
        return Ok(None);
    };
    airlock_fetch::check_url_scheme(url, false)
        .map_err(|e| super::output::usage(format!("--log-url {url:?}: {e}")))?;
    let abs = |p: &Path| -> anyhow::Result<String> {
        let p = std::path::absolute(p).with_context(|| format!("{}", p.display()))?;
        if !p.exists() {
            bail!("{} does not exist", p.display());
        }
        Ok(p.display().to_string())
    };
    let mut c = ReleaseLogConfig::new(url, &abs(key)?);
    c.ca_file = a.log_ca_file.as_deref().map(abs).transpose()?;
    c.timeout = a.log_timeout;
    Ok(Some(c))
}

fn log_config(args: &Args, a: &LogConfigArgs) -> anyhow::Result<()> {
    let mut repo = open(args)?;
    if a.remove {
        repo.set_release_log(None)?;
    } else if let Some(c) = release_log_config(&a.log)? {
        repo.set_release_log(Some(c))?;
    }
    let c = repo.config().release_log.clone();
    print(args.json, json!({"release_log": c}), || match &c {
        None => println!("no release log configured"),
        Some(c) => {
            println!("url      {}", c.url);
            println!("key      {}", c.key);
            println!(
                "ca_file  {}",
                c.ca_file.as_deref().unwrap_or("(webpki roots)")
            );
            println!("timeout  {}", c.timeout);
        }
    });
    Ok(())
}

/// The logs `publish` may submit to: the configured one, and the log URL of each policy the
/// published and staged roots carry (a rotation to another log submits the new root to the old
/// log). For a policy, the one whose checkpoint its log key signs is used.
pub(crate) struct ConfiguredLog {
    clients: Vec<airlock_log::client::LogClient>,
}

impl ConfiguredLog {
    pub(crate) fn new(clients: Vec<airlock_log::client::LogClient>) -> Self {
        ConfiguredLog { clients }
    }

    /// The client whose URL serves the log `policy` names (its checkpoint is signed by that
    /// log's key), or why none does.
    pub(crate) fn pick(
        &self,
        policy: &TransparencyPolicy,
    ) -> Result<&airlock_log::client::LogClient, airlock_repo::ReleaseLogError> {
        let key = policy
            .policy()
            .logs
            .first()
            .map(|l| &l.verifier)
            .ok_or("the policy names no log")?;
        let mut tried = Vec::new();
        for c in &self.clients {
            match c.is_signed_by(key) {
                Ok(true) => return Ok(c),
                Ok(false) => tried.push(format!(
                    "{} (checkpoint not signed by that log's key)",
                    c.url()
                )),
                Err(e) => tried.push(format!("{}: {}", c.url(), airlock_core::error_chain(&e))),
            }
        }
        Err(format!(
            "no configured log URL serves log {}: tried {}",
            policy.log_origin(),
            tried.join("; ")
        )
        .into())
    }
}

impl airlock_repo::ReleaseLog for ConfiguredLog {
    fn log(
        &self,
        policy: &TransparencyPolicy,
        statements: &[Vec<u8>],
    ) -> Result<Vec<Vec<u8>>, airlock_repo::ReleaseLogError> {
        Ok(self
            .pick(policy)?
            .log_entries(policy.log_origin(), statements)?)
    }

    fn describe(&self, policy: &TransparencyPolicy) -> String {
        match self.pick(policy) {
            Ok(c) => format!("log {} at {}", policy.log_origin(), c.url()),
            Err(_) => format!("log {}", policy.log_origin()),
        }
    }
}

/// A publisher note key from `airlock log keygen` (the key a log accepts submissions signed
/// by): its name is `name`, else the one in `KEY.pub` beside it.
pub(crate) fn read_publisher_key(
    key: &Path,
    name: Option<&str>,
    passphrase: &PassphraseSource,
) -> anyhow::Result<airlock_core::tlog::NoteSigner> {
    let name = match name {
        Some(n) => Some(n.to_string()),
        None => {
            let mut pub_path = key.as_os_str().to_owned();
            pub_path.push(".pub");
            let pub_path = PathBuf::from(pub_path);
            match std::fs::read_to_string(&pub_path) {
                Ok(text) => Some(
                    airlock_core::tlog::NoteVerifier::from_vkey(text.trim())
                        .with_context(|| format!("{}: not a verifier key", pub_path.display()))?
                        .name()
                        .to_string(),
                ),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => return Err(e).with_context(|| format!("reading {}", pub_path.display())),
            }
        }
    };
    airlock_keystore::read_note_key(
        key,
        name.as_deref(),
        airlock_core::tlog::KeyAlgorithm::Ed25519,
        passphrase,
    )
    .with_context(|| format!("the publisher key for the log, {}", key.display()))
}

/// The release log from the config, `None` when none is configured (publishing a root that
/// requires one then fails, naming the log).
fn configured_log(args: &Args, repo: &Repository) -> anyhow::Result<Option<ConfiguredLog>> {
    let Some(c) = &repo.config().release_log else {
        return Ok(None);
    };
    let key = {
        let p = Path::new(&c.key);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            repo.path().join(p)
        }
    };
    let trust = match &c.ca_file {
        Some(p) => airlock_fetch::Trust::ca_bundle_file(Path::new(p))?,
        None => airlock_fetch::Trust::WebPki,
    };
    let fetcher = std::sync::Arc::new(airlock_fetch::Fetcher::new(airlock_fetch::FetcherConfig {
        trust,
        ..airlock_fetch::FetcherConfig::default()
    })?);
    let timeout = std::time::Duration::from_secs(c.timeout.as_secs().max(1) as u64);
    let mut urls = vec![c.url.clone()];
    let published = repo.published_root_transparency()?;
    for p in [repo.transparency()?, published].into_iter().flatten() {
        if let Some(u) = p.log_url()
            && !urls
                .iter()
                .any(|x| x.trim_end_matches('/') == u.trim_end_matches('/'))
        {
            urls.push(u.to_string());
        }
    }
    let signer = read_publisher_key(&key, c.key_name.as_deref(), &passphrase(args))?;
    let mut clients = Vec::new();
    for url in urls {
        // One decryption; each client holds its own copy of the key.
        let signer = airlock_core::tlog::NoteSigner::from_skey(&signer.to_skey())?;
        clients.push(airlock_log::client::LogClient::new(
            &url,
            fetcher.clone(),
            signer,
            timeout,
        ));
    }
    Ok(Some(ConfiguredLog::new(clients)))
}

fn export(args: &Args, a: &ExportArgs) -> anyhow::Result<()> {
    let json_out = args.json;
    let repo = open(args)?;
    let export = repo.export_role(&a.role)?;
    let out = a
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from(&export.file_name));
    airlock_repo::write_atomic(&out, &export.bytes)?;
    let mut v = serde_json::to_value(&export)?;
    v["file"] = json!(out);
    print(json_out, v, || {
        println!(
            "wrote {} ({} version {}, {} of {} needed signatures present)",
            out.display(),
            export.role,
            export.version,
            export.signed_by.len(),
            export.threshold
        );
        println!("may sign it: {}", export.keyids.join(", "));
    });
    Ok(())
}

fn sign(args: &Args, a: &SignArgs) -> anyhow::Result<()> {
    let json_out = args.json;
    let bytes = read_capped(&a.file)?;
    let key = match &a.key {
        // A hybrid key file signs in the form the metadata lists it in.
        KeyRef::File(path) => airlock_repo::offline_signer(
            airlock_keystore::read_private_key(path, &passphrase(args))?,
            &bytes,
        )?,
        other => other.open(&passphrase(args))?,
    };
    let (signed, keyid) =
        airlock_repo::sign_metadata(&bytes, key.as_ref(), &a.file.display().to_string())?;
    let out = a.out.clone().unwrap_or_else(|| a.file.clone());
    airlock_repo::write_atomic(&out, &signed)?;
    print(json_out, json!({"file": out, "keyid": keyid}), || {
        println!("signed {} with key {keyid}", out.display());
    });
    Ok(())
}

fn import(args: &Args, a: &ImportArgs) -> anyhow::Result<()> {
    let json_out = args.json;
    let mut repo = open(args)?;
    let mut reports = Vec::new();
    for f in &a.files {
        let bytes = read_capped(f)?;
        reports.push(repo.import_signatures(&bytes, &f.display().to_string())?);
    }
    print(json_out, serde_json::to_value(&reports)?, || {
        for r in &reports {
            println!(
                "{} version {}: {} new signature(s); {}",
                r.role,
                r.version,
                r.added.len(),
                if r.signed {
                    "threshold met"
                } else {
                    "more signatures needed"
                }
            );
        }
    });
    Ok(())
}

fn rotate(args: &Args, a: &RotateArgs) -> anyhow::Result<()> {
    let json_out = args.json;
    let mut repo = open(args)?;
    let sources = [
        a.generate > 0,
        !a.public_keys.is_empty(),
        !a.keys.is_empty(),
    ];
    if sources.iter().filter(|s| **s).count() > 1 {
        bail!("give one of --generate, --public-key and --key, not several");
    }
    let add = if !a.keys.is_empty() {
        external_refs_only(&a.keys, "--key")?;
        Some(KeySource::External(a.keys.clone()))
    } else if !a.public_keys.is_empty() {
        Some(KeySource::Public(read_public_keys(&a.public_keys)?))
    } else if a.generate > 0 {
        Some(KeySource::Generate {
            scheme: a.key_type,
            count: a.generate,
        })
    } else {
        None
    };
    let tlog_change =
        a.tlog_off || a.tlog.tlog_policy.is_some() || a.tlog.tlog_repository.is_some();
    if tlog_change && a.role != "root" {
        return Err(super::output::usage(
            "--tlog-policy, --tlog-repository and --tlog-off change root: give `rotate root`",
        ));
    }
    let keys_change = add.is_some() || !a.remove.is_empty() || a.replace || a.threshold.is_some();
    let mut report = if keys_change || !tlog_change {
        repo.rotate(
            &Rotation {
                role: a.role.clone(),
                add,
                remove: a.remove.clone(),
                replace_all: a.replace,
                threshold: a.threshold,
            },
            a.plaintext_keys,
        )?
    } else {
        airlock_repo::ChangeReport {
            roles: Vec::new(),
            unsigned: Vec::new(),
            new_keyids: Vec::new(),
        }
    };
    if tlog_change {
        let current = repo.transparency()?;
        let policy = if a.tlog_off {
            None
        } else {
            tlog_policy(&a.tlog, current.as_ref())?
        };
        let r = repo.set_transparency(policy.as_ref())?;
        report.roles = r.roles;
        report.unsigned = r.unsigned;
    }
    print(json_out, serde_json::to_value(&report)?, || {
        println!("rotated {}; changed {}", a.role, report.roles.join(", "));
        for k in &report.new_keyids {
            println!("  new key {k}");
        }
        unsigned_note(&report.unsigned);
    });
    Ok(())
}

fn rebuilders(args: &Args, a: &RebuildersArgs) -> anyhow::Result<()> {
    use airlock_core::rebuild::RebuilderPolicy;
    let json_out = args.json;
    let mut repo = open(args)?;
    let policy_json = |p: &RebuilderPolicy| {
        serde_json::json!({
            "threshold": p.threshold(),
            "keys": p.keys().keys().collect::<Vec<_>>(),
        })
    };
    if a.keys.is_empty() && !a.off {
        let staged = repo.rebuilders()?;
        let published = repo.published_root_rebuilders()?;
        let value = serde_json::json!({
            "staged": staged.as_ref().map(policy_json),
            "published": published.as_ref().map(policy_json),
        });
        print(json_out, value, || match &staged {
            None => println!("rebuilds: not required (root carries no x-airlock-rebuilders)"),
            Some(p) => {
                println!(
                    "rebuilds: {} of {} rebuilder key(s) must attest each target",
                    p.threshold(),
                    p.keys().len()
                );
                for id in p.keys().keys() {
                    println!("  key {id}");
                }
                if published.as_ref() != Some(p) {
                    println!("  (staged; `airlock repo publish` makes it live)");
                }
            }
        });
        return Ok(());
    }
    let policy = if a.off {
        None
    } else {
        let keys = read_public_keys(&a.keys)?;
        Some(RebuilderPolicy::new(a.threshold.unwrap_or(0), keys)?)
    };
    let report = repo.set_rebuilders(policy.as_ref())?;
    print(json_out, serde_json::to_value(&report)?, || {
        match &policy {
            Some(p) => println!(
                "root now requires {} of {} rebuilder attestations; changed {}",
                p.threshold(),
                p.keys().len(),
                report.roles.join(", ")
            ),
            None => println!(
                "root no longer requires rebuilds; changed {}",
                report.roles.join(", ")
            ),
        }
        unsigned_note(&report.unsigned);
    });
    Ok(())
}

fn bump(args: &Args, a: &BumpArgs) -> anyhow::Result<()> {
    let json_out = args.json;
    let mut repo = open(args)?;
    let report = repo.bump(&a.role)?;
    print(json_out, serde_json::to_value(&report)?, || {
        println!("{} has a new version", a.role);
        unsigned_note(&report.unsigned);
    });
    Ok(())
}

fn publish(args: &Args, a: &PublishArgs) -> anyhow::Result<()> {
    let json_out = args.json;
    let mut repo = open(args)?;
    let pb = progress_bar(json_out, "copying targets");
    let files = if a.link_targets {
        airlock_repo::TargetFiles::HardLink
    } else {
        airlock_repo::TargetFiles::Copy
    };
    let log = configured_log(args, &repo)?;
    let report = repo.publish_logged(
        files,
        log.as_ref().map(|l| l as &dyn airlock_repo::ReleaseLog),
        &|done, total| {
            pb.set_length(total);
            pb.set_position(done);
        },
    )?;
    pb.finish_and_clear();
    print(json_out, serde_json::to_value(&report)?, || {
        println!(
            "published root v{}, snapshot v{}, timestamp v{}; {} role file(s) and {} target file(s) written",
            report.root_version,
            report.snapshot_version,
            report.timestamp_version,
            report.roles_written.len(),
            report.target_files_copied
        );
    });
    Ok(())
}

fn refresh(args: &Args, a: &RefreshArgs) -> anyhow::Result<()> {
    let json_out = args.json;
    let mut repo = open(args)?;
    let report = repo.refresh(a.snapshot)?;
    print(json_out, serde_json::to_value(&report)?, || {
        println!(
            "timestamp v{} (snapshot v{})",
            report.timestamp_version, report.snapshot_version
        );
    });
    Ok(())
}

fn verify(args: &Args, a: &VerifyArgs) -> anyhow::Result<()> {
    let json_out = args.json;
    let dir = a
        .published
        .clone()
        .unwrap_or_else(|| args.repo.join("published"));
    if !dir.join("metadata").exists() {
        bail!(
            "{} has no metadata/ directory (nothing published?)",
            dir.display()
        );
    }
    let report = airlock_repo::verify_published(&dir, chrono::Utc::now());
    print(json_out, serde_json::to_value(&report)?, || {
        for p in &report.problems {
            println!("{}: {}: {}", p.file, p.check, p.message);
        }
        if report.ok {
            println!(
                "ok: root v{}, snapshot v{}, timestamp v{}, {} role(s), {} target(s) checked",
                report.root_version,
                report.snapshot_version,
                report.timestamp_version,
                report.roles_checked,
                report.targets_checked
            );
        }
    });
    if !report.ok {
        // The report printed above is the result; a failed check is a refusal.
        return Err(super::output::Reported {
            kind: super::output::Kind::Refused,
            message: format!(
                "{} problem(s) found in {}",
                report.problems.len(),
                dir.display()
            ),
        }
        .into());
    }
    Ok(())
}

/// Read a metadata file given on the command line (at most 64 MiB).
fn read_capped(path: &Path) -> anyhow::Result<Vec<u8>> {
    use std::io::Read;
    let f = std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let mut buf = Vec::new();
    f.take(64 << 20)
        .read_to_end(&mut buf)
        .with_context(|| format!("reading {}", path.display()))?;
    Ok(buf)
}

fn serve(args: &Args, a: &ServeArgs) -> anyhow::Result<()> {
    let dir = a
        .published
        .clone()
        .unwrap_or_else(|| args.repo.join("published"));
    if !dir.join("metadata").exists() {
        bail!(
            "{} has no metadata/ directory: run `airlock repo publish` first",
            dir.display()
        );
    }
    let (identity, ca_file) = match (&a.tls.tls_cert, &a.tls.tls_key, &a.test_ca_dir) {
        (Some(cert), Some(key), _) => (
            airlock_serve::ServerIdentity::from_pem_files(cert, key)?,
            None,
        ),
        (_, _, Some(ca_dir)) => {
            std::fs::create_dir_all(ca_dir)
                .with_context(|| format!("creating {}", ca_dir.display()))?;
            let ca = airlock_serve::TestCa::new()?;
            let ca_file = ca.write_ca_pem(ca_dir)?;
            (
                ca.issue_server_cert(&["127.0.0.1", "localhost"])?,
                Some(ca_file),
            )
        }
        _ => bail!("give --tls-cert and --tls-key, or --test-ca-dir DIR for a generated test CA"),
    };
    let app = airlock_serve::static_dir_router(dir.clone());
    let server = airlock_serve::ServerHandle::start(a.listen, app, Some(&identity))?;
    let base = server.base_url();
    print(
        args.json,
        json!({
            "url": base,
            "metadata_url": format!("{base}/metadata/"),
            "targets_url": format!("{base}/targets/"),
            "ca_cert": ca_file,
            "dir": dir,
        }),
        || {
            println!("serving {} at {base}", dir.display());
            println!("  metadata: {base}/metadata/   targets: {base}/targets/");
            if let Some(ca) = &ca_file {
                println!("  clients trust the test CA in {}", ca.display());
            }
            println!("press Ctrl-C to stop");
        },
    );
    use std::io::Write;
    let _ = std::io::stdout().flush();
    wait_for_shutdown_signal()?;
    server.shutdown();
    Ok(())
}
