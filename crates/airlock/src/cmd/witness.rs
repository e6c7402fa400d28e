//! `airlock witness`: run a C2SP tlog-witness that cosigns the logs it follows.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::bail;
use clap::Subcommand;

use airlock_core::tlog::KeyAlgorithm;
use airlock_witness::Witness;
use airlock_witness::config::{LogEntry, WitnessConfig, generate_signer_key};

use super::common::{PassphraseArgs, TlsArgs, wait_for_shutdown_signal};
use super::log::NewDir;

#[derive(clap::Args, Debug)]
#[command(
    after_help = "Example:\n  airlock witness init --dir w1 --name witness.example/w1\n  \
airlock witness add-log --dir w1 --log-key 'example.com/log+1a2b3c4d+AT...'\n  \
airlock witness serve --dir w1"
)]
pub struct Args {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Create a witness: cosignature key and configuration.
    #[command(
        after_help = "Example:\n  airlock witness init --dir w1 --name witness.example/w1 \
--listen 127.0.0.1:7380"
    )]
    Init(InitArgs),
    /// Follow a log: cosign its checkpoints from now on.
    #[command(after_help = "Example:\n  airlock witness add-log --dir w1 --log-key \
'example.com/log+1a2b3c4d+AT...'")]
    AddLog(AddLogArgs),
    /// Serve POST /add-checkpoint until interrupted.
    #[command(after_help = "Example:\n  airlock witness serve --dir w1")]
    Serve(ServeArgs),
}

#[derive(clap::Args, Debug)]
struct InitArgs {
    /// Directory for witness.toml, witness.key and state/ (created).
    #[arg(long)]
    dir: PathBuf,
    /// The witness's key name, e.g. witness.example/w1.
    #[arg(long)]
    name: String,
    /// Address to listen on (written to witness.toml; `serve --listen` overrides it).
    #[arg(long, default_value = "127.0.0.1:7380")]
    listen: SocketAddr,
    #[command(flatten)]
    tls: TlsArgs,
    #[command(flatten)]
    passphrase: PassphraseArgs,
    /// Write the cosignature key unencrypted. For tests and throw-away demos only.
    #[arg(long, conflicts_with_all = ["passphrase_env", "passphrase_fd"])]
    plaintext_key: bool,
    /// The top-level `--json`.
    #[arg(skip)]
    json: bool,
}

#[derive(clap::Args, Debug)]
struct AddLogArgs {
    /// The witness directory (from `witness init`).
    #[arg(long)]
    dir: PathBuf,
    /// The log's checkpoint verifier key; its name is the log's origin.
    #[arg(long)]
    log_key: String,
}

#[derive(clap::Args, Debug)]
struct ServeArgs {
    /// The witness directory (from `witness init`).
    #[arg(long)]
    dir: PathBuf,
    /// Override the configured listen address (port 0 picks a free port).
    #[arg(long)]
    listen: Option<SocketAddr>,
    #[command(flatten)]
    passphrase: PassphraseArgs,
}

pub fn run(args: Args, json: bool) -> anyhow::Result<()> {
    match args.command {
        Cmd::Init(a) => init(InitArgs { json, ..a }),
        Cmd::AddLog(a) => add_log(a),
        Cmd::Serve(a) => serve(a),
    }
}

fn config_path(dir: &Path) -> PathBuf {
    dir.join("witness.toml")
}

fn init(a: InitArgs) -> anyhow::Result<()> {
    let cfg_path = config_path(&a.dir);
    if cfg_path.exists() {
        bail!(
            "{} already exists; refusing to overwrite a witness",
            cfg_path.display()
        );
    }
    if !airlock_core::tlog::is_valid_key_name(&a.name) {
        bail!("{:?} is not a valid key name", a.name);
    }
    let key_path = a.dir.join("witness.key");
    let made = NewDir::create(&a.dir, &key_path)?;
    let signer = generate_signer_key(
        &key_path,
        &a.name,
        &a.passphrase.protection(a.plaintext_key),
    )?;
    let cfg = WitnessConfig {
        key_file: "witness.key".into(),
        key_name: Some(a.name.clone()),
        state_dir: "state".into(),
        listen: a.listen,
        tls_cert: a
            .tls
            .tls_cert
            .as_deref()
            .map(std::path::absolute)
            .transpose()?,
        tls_key: a
            .tls
            .tls_key
            .as_deref()
            .map(std::path::absolute)
            .transpose()?,
        logs: Vec::new(),
    };
    cfg.save(&cfg_path)?;
    made.done();
    let vkey = signer.verifier().to_vkey();
    if a.json {
        println!(
            "{}",
            serde_json::json!({"config": cfg_path, "name": a.name, "witness_key": vkey})
        );
    } else {
        println!("created witness {} in {}", a.name, a.dir.display());
        println!("witness verifier key: {vkey}");
    }
    Ok(())
}

fn add_log(a: AddLogArgs) -> anyhow::Result<()> {
    let cfg_path = config_path(&a.dir);
    let mut cfg = WitnessConfig::load(&cfg_path)?;
    let v = super::log::parse_vkey(&a.log_key, "log", KeyAlgorithm::Ed25519)?;
    let origin = v.name().to_string();
    match cfg.logs.iter_mut().find(|l| l.origin == origin) {
        Some(l) if l.keys.contains(&a.log_key) => {}
        Some(l) => l.keys.push(a.log_key),
        None => cfg.logs.push(LogEntry {
            origin: origin.clone(),
            keys: vec![a.log_key],
        }),
    }
    cfg.save(&cfg_path)?;
    println!("following log {origin} (restart `airlock witness serve` to apply)");
    Ok(())
}

fn serve(a: ServeArgs) -> anyhow::Result<()> {
    let cfg_path = config_path(&a.dir);
    let cfg = WitnessConfig::load(&cfg_path)?;
    let witness = Arc::new(Witness::open(
        cfg.signer(&cfg_path, &a.passphrase.source())?,
        cfg.followed(&cfg_path)?,
        &WitnessConfig::resolve(&cfg_path, &cfg.state_dir),
    )?);
    let identity = match (&cfg.tls_cert, &cfg.tls_key) {
        (Some(c), Some(k)) => Some(airlock_serve::ServerIdentity::from_pem_files(
            &WitnessConfig::resolve(&cfg_path, c),
            &WitnessConfig::resolve(&cfg_path, k),
        )?),
        _ => None,
    };
    let name = witness.verifier().name().to_string();
    let addr = a.listen.unwrap_or(cfg.listen);
    if identity.is_none() && !addr.ip().is_loopback() {
        eprintln!(
            "warning: serving plain HTTP on {addr}; set tls_cert/tls_key or put a TLS proxy in front"
        );
    }
    let server = airlock_serve::ServerHandle::start(
        a.listen.unwrap_or(cfg.listen),
        witness.router(),
        identity.as_ref(),
    )?;
    println!("airlock witness {name} listening on {}", server.base_url());
    std::io::stdout().flush()?;
    wait_for_shutdown_signal()?;
    server.shutdown();
    Ok(())
}
