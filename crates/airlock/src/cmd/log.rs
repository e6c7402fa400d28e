//! `airlock log`: run a transparency log, submit entries, fetch and verify proofs, monitor.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Subcommand;

use airlock_core::tlog::{KeyAlgorithm, NoteSigner, NoteVerifier, leaf_hash};
use airlock_fetch::{Fetcher, FetcherConfig, Trust};
use airlock_log::config::{LogConfig, WitnessEntry};
use airlock_log::monitor::{Seen, walk};
use airlock_log::{Log, TileStore};

use super::common::{ClientTlsArgs, PassphraseArgs, TlsArgs, wait_for_shutdown_signal};

#[derive(clap::Args, Debug)]
#[command(
    after_help = "Example:\n  airlock log init --dir mylog --origin example.com/log\n  \
airlock log serve --dir mylog"
)]
pub struct Args {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Create a log: signing key, configuration, empty tree.
    #[command(
        after_help = "Example:\n  airlock log init --dir mylog --origin example.com/log \
--publisher-key 'pub.example+1a2b3c4d+AT...' --listen 127.0.0.1:7370"
    )]
    Init(InitArgs),
    /// Make a publisher (or any Ed25519 note) key, encrypted; prints its verifier key.
    #[command(
        after_help = "Example:\n  airlock log keygen --name publisher.example --out pub.key\n\
Writes pub.key (encrypted, 0600) and pub.key.pub (the verifier key, which `add` reads the key \
name from)."
    )]
    Keygen(KeygenArgs),
    /// Allow another publisher key to submit entries.
    #[command(
        after_help = "Example:\n  airlock log add-publisher --dir mylog --key \
'pub.example+1a2b3c4d+AT...'"
    )]
    AddPublisher(AddPublisherArgs),
    /// Add a witness to the log's configuration.
    #[command(after_help = "Example:\n  airlock log add-witness --dir mylog --key \
'w.example+5e6f7a8b+BA...' --url https://w.example")]
    AddWitness(AddWitnessArgs),
    /// Serve the log (write API, tiles, proofs) until interrupted.
    #[command(after_help = "Example:\n  airlock log serve --dir mylog --listen 127.0.0.1:7370")]
    Serve(ServeArgs),
    /// Submit an entry, signed with a publisher key; prints its index once durable.
    #[command(
        after_help = "Example:\n  airlock log add --url https://log.example --key pub.key \
--origin example.com/log --file statement.txt\n\
Connection failures are retried (6 attempts). The log deduplicates entries, so running the \
same add again is safe: an entry it already holds gets its existing index."
    )]
    Add(AddArgs),
    /// Fetch the tlog-proof bundle of an entry.
    #[command(
        after_help = "Example:\n  airlock log proof --url https://log.example --index 42 \
--out entry42.tlog-proof"
    )]
    Proof(ProofArgs),
    /// Verify a tlog-proof bundle offline against the log key and witness keys.
    #[command(
        after_help = "Example:\n  airlock log verify-proof --proof entry42.tlog-proof \
--entry-file statement.txt --log-key 'example.com/log+...' --witness-key 'w.example+...' --quorum 1"
    )]
    VerifyProof(VerifyProofArgs),
    /// Clear a halted log's halt after a fork was detected, recording the incident; signs nothing.
    #[command(
        after_help = "Example:\n  airlock log recover --dir mylog --acknowledge-fork \
'restored from the 2 May backup; tree from 2-3 May lost'\n\
A log halts when a witness holds a newer or different tree of it (a restored old backup, a \
copied directory). First try to restore the newest state instead (see the airlock-log README). \
This command only appends the halt and your note to state/incidents and removes state/halt: on \
its next start the log asks its witnesses again and halts again if they still hold a tree it \
does not extend."
    )]
    Recover(RecoverArgs),
    /// Walk the whole log, re-derive every tile, check it against the checkpoint, print new
    /// entries; with --repo or --expect, report logged releases the publisher did not record.
    #[command(
        after_help = "Example:\n  airlock log monitor --url https://log.example --log-key \
'example.com/log+...' --state monitor.state\n  \
airlock log monitor --url https://log.example --repo myrepo --state monitor.state\n  \
airlock log monitor --url https://log.example --log-key 'example.com/log+...' \
--expect logged.txt --repository example.com/app\n\
With --repo/--expect, standard output lists each logged release statement for the repository \
that the publishing record does not hold, and the exit status is 3 when there is one."
    )]
    Monitor(MonitorArgs),
}

#[derive(clap::Args, Debug)]
struct InitArgs {
    /// Directory for log.toml, log.key, public/ and state/ (created).
    #[arg(long)]
    dir: PathBuf,
    /// The log's origin line (also its key name), e.g. example.com/log.
    #[arg(long)]
    origin: String,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:7370")]
    listen: SocketAddr,
    /// Publisher verifier key allowed to submit (repeatable).
    #[arg(long = "publisher-key")]
    publisher_keys: Vec<String>,
    #[command(flatten)]
    tls: TlsArgs,
    /// CA certificates (PEM) trusted when calling the witnesses over HTTPS (default: the
    /// webpki roots).
    #[arg(long = "ca-file", alias = "witness-ca", value_name = "PEM")]
    witness_ca: Option<PathBuf>,
    #[command(flatten)]
    passphrase: PassphraseArgs,
    /// Write the signing key unencrypted. For tests and throw-away demos only.
    #[arg(long, conflicts_with_all = ["passphrase_env", "passphrase_fd"])]
    plaintext_key: bool,
    /// The top-level `--json`.
    #[arg(skip)]
    json: bool,
}

#[derive(clap::Args, Debug)]
struct KeygenArgs {
    /// Key name (for a publisher: any name, e.g. your domain).
    #[arg(long)]
    name: String,
    /// File to write the secret key to (an airlock key file, encrypted unless
    /// --plaintext-key; mode 0600, never overwritten). The verifier key goes to `<out>.pub`.
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    passphrase: PassphraseArgs,
    /// Write the key unencrypted. For tests and throw-away demos only.
    #[arg(long, conflicts_with_all = ["passphrase_env", "passphrase_fd"])]
    plaintext_key: bool,
    /// The top-level `--json`.
    #[arg(skip)]
    json: bool,
}

#[derive(clap::Args, Debug)]
struct AddPublisherArgs {
    /// The log directory (from `log init`).
    #[arg(long)]
    dir: PathBuf,
    /// The publisher's Ed25519 note verifier key (from `airlock log keygen`).
    #[arg(long)]
    key: String,
}

#[derive(clap::Args, Debug)]
struct AddWitnessArgs {
    /// The log directory (from `log init`).
    #[arg(long)]
    dir: PathBuf,
    /// The witness's cosignature verifier key.
    #[arg(long)]
    key: String,
    /// The witness's submission URL prefix (https://, or http:// to a loopback address).
    #[arg(long)]
    url: String,
}

#[derive(clap::Args, Debug)]
struct ServeArgs {
    /// The log directory (from `log init`).
    #[arg(long)]
    dir: PathBuf,
    /// Override the configured listen address (port 0 picks a free port).
    #[arg(long)]
    listen: Option<SocketAddr>,
    #[command(flatten)]
    passphrase: PassphraseArgs,
}

#[derive(clap::Args, Debug)]
struct RecoverArgs {
    /// The log directory (from `log init`); the log must not be running.
    #[arg(long)]
    dir: PathBuf,
    /// What happened and why the halt may be cleared; recorded with the halt in
    /// state/incidents. Required: clearing a halt is a deliberate act.
    #[arg(long, value_name = "NOTE")]
    acknowledge_fork: String,
}

#[derive(clap::Args, Debug)]
struct ClientOpts {
    /// The log's base URL.
    #[arg(long)]
    url: String,
    #[command(flatten)]
    tls: ClientTlsArgs,
}

impl ClientOpts {
    fn client(&self) -> anyhow::Result<Fetcher> {
        let trust = match &self.tls.ca_file {
            Some(p) => Trust::ca_bundle_file(p)?,
            None => Trust::WebPki,
        };
        Ok(Fetcher::new(FetcherConfig {
            trust,
            allow_http_loopback: self.tls.allow_http_loopback,
            ..FetcherConfig::default()
        })?)
    }

    fn url(&self, path: &str) -> String {
        format!("{}/{path}", self.url.trim_end_matches('/'))
    }
}

#[derive(clap::Args, Debug)]
struct AddArgs {
    #[command(flatten)]
    client: ClientOpts,
    /// Publisher secret key file (from `airlock log keygen`).
    #[arg(long)]
    key: PathBuf,
    /// The key's name. Default: read from the verifier key in `<key>.pub` (written by keygen);
    /// an old plaintext key file carries its own name.
    #[arg(long)]
    key_name: Option<String>,
    #[command(flatten)]
    passphrase: PassphraseArgs,
    /// The log's origin (bound into the signature). Default: the first line of the log's
    /// checkpoint (a wrong origin only makes the log refuse the signature).
    #[arg(long)]
    origin: Option<String>,
    /// Read the entry from this file (default: standard input).
    #[arg(long, conflicts_with = "data")]
    file: Option<PathBuf>,
    /// The entry as a string.
    #[arg(long)]
    data: Option<String>,
    /// After the index, wait up to SECS seconds (default 60) until the log publishes a
    /// checkpoint that includes the entry, so that `airlock log proof` answers at once.
    #[arg(long, value_name = "SECS", num_args = 0..=1, default_missing_value = "60")]
    wait: Option<u64>,
    /// The top-level `--json`.
    #[arg(skip)]
    json: bool,
}

#[derive(clap::Args, Debug)]
struct ProofArgs {
    #[command(flatten)]
    client: ClientOpts,
    /// Index of the entry to prove.
    #[arg(long)]
    index: u64,
    /// Write the bundle here (default: standard output).
    #[arg(long)]
    out: Option<PathBuf>,
    /// While the entry is not in a published checkpoint yet (the log publishes once its
    /// witnesses answered), keep asking for up to SECS seconds.
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    wait: u64,
}

#[derive(clap::Args, Debug)]
struct VerifyProofArgs {
    /// The tlog-proof file.
    #[arg(long)]
    proof: PathBuf,
    /// The entry, from a file.
    #[arg(long, conflicts_with = "entry")]
    entry_file: Option<PathBuf>,
    /// The entry, as a string.
    #[arg(long)]
    entry: Option<String>,
    /// The log's checkpoint verifier key (or give --policy).
    #[arg(long, required_unless_present = "policy", conflicts_with = "policy")]
    log_key: Option<String>,
    /// A witness cosignature verifier key (repeatable).
    #[arg(long = "witness-key", conflicts_with = "policy")]
    witness_keys: Vec<String>,
    /// How many of the witnesses must have cosigned (default: all given).
    #[arg(long, conflicts_with = "policy")]
    quorum: Option<usize>,
    /// A c2sp.org/tlog-policy file (trusted logs, witnesses, nested k-of-n quorum) instead of
    /// --log-key/--witness-key/--quorum.
    #[arg(long)]
    policy: Option<PathBuf>,
    /// The top-level `--json`.
    #[arg(skip)]
    json: bool,
}

#[derive(clap::Args, Debug)]
struct MonitorArgs {
    #[command(flatten)]
    client: ClientOpts,
    /// The log's checkpoint verifier key (`log init` prints it). With --repo, default: the
    /// log key of the repository's transparency policy.
    #[arg(long, required_unless_present = "repo")]
    log_key: Option<String>,
    /// A witness whose cosignature to report; repeatable.
    #[arg(long = "witness-key")]
    witness_keys: Vec<String>,
    /// File remembering the last verified checkpoint (size and root); created if missing.
    /// Each run reports only the entries after it (an unexpected release once).
    #[arg(long)]
    state: Option<PathBuf>,
    #[command(flatten)]
    watch: super::release_watch::WatchArgs,
    /// The top-level `--json`.
    #[arg(skip)]
    json: bool,
}

pub fn run(args: Args, json: bool) -> anyhow::Result<()> {
    match args.command {
        Cmd::Init(a) => init(InitArgs { json, ..a }),
        Cmd::Keygen(a) => keygen(KeygenArgs { json, ..a }),
        Cmd::AddPublisher(a) => add_publisher(a),
        Cmd::AddWitness(a) => add_witness(a),
        Cmd::Serve(a) => serve(a),
        Cmd::Recover(a) => recover(a),
        Cmd::Add(a) => add(AddArgs { json, ..a }),
        Cmd::Proof(a) => proof(a),
        Cmd::VerifyProof(a) => verify_proof(VerifyProofArgs { json, ..a }),
        Cmd::Monitor(a) => monitor(MonitorArgs { json, ..a }),
    }
}

fn config_path(dir: &Path) -> PathBuf {
    dir.join("log.toml")
}

fn absolute(p: &Path) -> anyhow::Result<PathBuf> {
    Ok(std::path::absolute(p)?)
}

fn init(a: InitArgs) -> anyhow::Result<()> {
    let cfg_path = config_path(&a.dir);
    if cfg_path.exists() {
        bail!(
            "{} already exists; refusing to overwrite a log",
            cfg_path.display()
        );
    }
    for k in &a.publisher_keys {
        parse_vkey(k, "publisher", KeyAlgorithm::Ed25519)?;
    }
    if !airlock_core::tlog::is_valid_key_name(&a.origin) {
        bail!("origin {:?} is not a valid key name", a.origin);
    }
    let key_path = a.dir.join("log.key");
    let made = NewDir::create(&a.dir, &key_path)?;
    let signer = airlock_keystore::generate_note_key(
        &key_path,
        &a.origin,
        KeyAlgorithm::Ed25519,
        &a.passphrase.protection(a.plaintext_key),
    )?;
    let cfg = LogConfig {
        key_file: "log.key".into(),
        key_name: Some(a.origin.clone()),
        public_dir: "public".into(),
        state_dir: "state".into(),
        listen: a.listen,
        tls_cert: a.tls.tls_cert.as_deref().map(absolute).transpose()?,
        tls_key: a.tls.tls_key.as_deref().map(absolute).transpose()?,
        max_batch: 65_536,
        publishers: a.publisher_keys,
        witness_ca: a.witness_ca.as_deref().map(absolute).transpose()?,
        witness_timeout_secs: 10,
        witnesses: Vec::new(),
    };
    cfg.save(&cfg_path)?;
    made.done();
    let vkey = signer.verifier().to_vkey();
    if a.json {
        println!(
            "{}",
            serde_json::json!({"config": cfg_path, "origin": a.origin, "log_key": vkey})
        );
    } else {
        println!("created log {} in {}", a.origin, a.dir.display());
        println!("log verifier key: {vkey}");
    }
    Ok(())
}

fn keygen(a: KeygenArgs) -> anyhow::Result<()> {
    if !airlock_core::tlog::is_valid_key_name(&a.name) {
        bail!("{:?} is not a valid key name", a.name);
    }
    let pub_path = public_key_path(&a.out);
    if pub_path.exists() {
        bail!(
            "{} already exists; refusing to overwrite it",
            pub_path.display()
        );
    }
    let signer = airlock_keystore::generate_note_key(
        &a.out,
        &a.name,
        KeyAlgorithm::Ed25519,
        &a.passphrase.protection(a.plaintext_key),
    )?;
    let vkey = signer.verifier().to_vkey();
    airlock_fs::write_atomic(
        &pub_path,
        format!("{vkey}\n").as_bytes(),
        &airlock_fs::WriteOptions::public().no_clobber(),
    )?;
    if a.json {
        println!(
            "{}",
            serde_json::json!({"key_file": a.out, "verifier_key": vkey})
        );
    } else {
        println!("{vkey}");
    }
    Ok(())
}

fn add_publisher(a: AddPublisherArgs) -> anyhow::Result<()> {
    let cfg_path = config_path(&a.dir);
    let mut cfg = LogConfig::load(&cfg_path)?;
    let v = parse_vkey(&a.key, "publisher", KeyAlgorithm::Ed25519)?;
    if !cfg.publishers.contains(&a.key) {
        cfg.publishers.push(a.key);
    }
    cfg.save(&cfg_path)?;
    println!(
        "publisher {} may submit entries (restart `airlock log serve` to apply)",
        v.name()
    );
    Ok(())
}

fn add_witness(a: AddWitnessArgs) -> anyhow::Result<()> {
    let cfg_path = config_path(&a.dir);
    let mut cfg = LogConfig::load(&cfg_path)?;
    let v = parse_vkey(&a.key, "witness", KeyAlgorithm::CosignatureV1)?;
    // The same scheme policy the log applies when it calls the witness, checked now rather
    // than at the first checkpoint.
    airlock_fetch::check_url_scheme(&a.url, true)
        .map_err(|e| super::output::usage(format!("--url {:?}: {e}", a.url)))?;
    cfg.witnesses.retain(|w| w.key != a.key);
    cfg.witnesses.push(WitnessEntry {
        key: a.key,
        url: a.url,
    });
    cfg.save(&cfg_path)?;
    println!(
        "witness {} added (restart `airlock log serve` to apply)",
        v.name()
    );
    Ok(())
}

fn serve(a: ServeArgs) -> anyhow::Result<()> {
    let cfg_path = config_path(&a.dir);
    let cfg = LogConfig::load(&cfg_path)?;
    let opts = cfg.log_options(&cfg_path, &a.passphrase.source())?;
    let identity = match (&cfg.tls_cert, &cfg.tls_key) {
        (Some(c), Some(k)) => Some(airlock_serve::ServerIdentity::from_pem_files(
            &LogConfig::resolve(&cfg_path, c),
            &LogConfig::resolve(&cfg_path, k),
        )?),
        _ => None,
    };
    let log = Log::start(opts)?;
    if let Some(reason) = log.halted() {
        // Also in the tracing line; said here so it shows whatever RUST_LOG is.
        eprintln!("error: {reason}");
    }
    let addr = a.listen.unwrap_or(cfg.listen);
    if identity.is_none() && !addr.ip().is_loopback() {
        eprintln!(
            "warning: serving plain HTTP on {addr}; set tls_cert/tls_key or put a TLS proxy in front"
        );
    }
    let server = airlock_serve::ServerHandle::start(addr, log.router(), identity.as_ref())?;
    println!(
        "airlock log {} listening on {}",
        log.origin(),
        server.base_url()
    );
    std::io::stdout().flush()?;
    wait_for_shutdown_signal()?;
    eprintln!("shutting down");
    server.shutdown();
    log.shutdown();
    Ok(())
}

fn recover(a: RecoverArgs) -> anyhow::Result<()> {
    let note = a.acknowledge_fork.trim();
    if note.is_empty() {
        bail!("--acknowledge-fork needs a note saying what happened");
    }
    let cfg_path = config_path(&a.dir);
    let cfg = LogConfig::load(&cfg_path)?;
    // Opening the store takes the log's lock: a running log is not recovered under its feet.
    let store = cfg.open_store(&cfg_path)?;
    let Some(reason) = store.read_halt()? else {
        bail!(
            "{}: the log is not halted; there is nothing to recover",
            a.dir.display()
        );
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let record = format!(
        "incident at unix time {now}\n  halt: {reason}\n  acknowledged: {}\n",
        note.replace('\n', " ")
    );
    store.clear_halt(&record)?;
    println!(
        "halt cleared and recorded in {}; on its next start the log asks its witnesses again \
and halts again if one still holds a tree it does not extend",
        a.dir.join("state/incidents").display()
    );
    Ok(())
}

fn read_entry(file: &Option<PathBuf>, data: &Option<String>) -> anyhow::Result<Vec<u8>> {
    Ok(match (file, data) {
        (Some(f), _) => std::fs::read(f).with_context(|| format!("reading {}", f.display()))?,
        (None, Some(d)) => d.clone().into_bytes(),
        (None, None) => {
            let mut v = Vec::new();
            std::io::stdin().read_to_end(&mut v)?;
            v
        }
    })
}

/// The publisher key of `airlock log add`: its name comes from `--key-name`, else from the
/// verifier key keygen wrote next to it, else (old plaintext key files) from the file itself.
fn publisher_signer(a: &AddArgs) -> anyhow::Result<NoteSigner> {
    let name = match &a.key_name {
        Some(n) => Some(n.clone()),
        None => {
            let pub_path = public_key_path(&a.key);
            match std::fs::read_to_string(&pub_path) {
                Ok(text) => Some(
                    parse_vkey(text.trim(), "publisher", KeyAlgorithm::Ed25519)
                        .with_context(|| format!("{}", pub_path.display()))?
                        .name()
                        .to_string(),
                ),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => return Err(e).with_context(|| format!("reading {}", pub_path.display())),
            }
        }
    };
    Ok(airlock_keystore::read_note_key(
        &a.key,
        name.as_deref(),
        KeyAlgorithm::Ed25519,
        &a.passphrase.source(),
    )?)
}

/// Attempts of one `log add`; waits between them grow from 250 ms (about 8 s in all).
const ADD_ATTEMPTS: u32 = 6;

fn add(a: AddArgs) -> anyhow::Result<()> {
    use airlock_log::client::{ClientError, LogClient};
    let entry = read_entry(&a.file, &a.data)?;
    let signer = publisher_signer(&a)?;
    let wait = a.wait.unwrap_or(0);
    let client = LogClient::new(
        &a.client.url,
        std::sync::Arc::new(a.client.client()?),
        signer,
        Duration::from_secs(wait),
    )
    .with_retries(ADD_ATTEMPTS, Duration::from_millis(250));
    let origin = match &a.origin {
        Some(o) => o.clone(),
        None => client.published_checkpoint()?.origin,
    };
    let submitted = client
        .submit_with(&origin, &entry, &mut |reason, delay| {
            eprintln!("warning: {reason}; retrying in {} ms", delay.as_millis());
        })
        .map_err(|e| match e {
            ClientError::Refused {
                url,
                status,
                reason,
            } => anyhow::anyhow!("{url}: HTTP {status}: {reason}"),
            ClientError::GaveUp {
                attempts, reason, ..
            } => anyhow::anyhow!(
                "{reason}; gave up after {attempts} attempts: the entry may or may not have been \
logged; it is safe to retry: running the same `airlock log add` again logs nothing twice (the log \
answers an entry it already holds with its existing index)"
            ),
            e => e.into(),
        })?;
    let index = submitted.index;
    if submitted.already_logged {
        eprintln!("entry {index} was already logged; the log did not add it again");
    }
    let mut checkpoint_size = None;
    if a.wait.is_some() {
        match client.wait_published(index) {
            Ok(size) => checkpoint_size = Some(size),
            Err(ClientError::NotPublished { .. }) => bail!(
                "entry {index} is logged but not yet in a published checkpoint after {wait} s \
(the log publishes once its witnesses answered); `airlock log proof --index {index}` later"
            ),
            Err(e) => return Err(e.into()),
        }
    }
    if a.json {
        let mut out = serde_json::json!({
            "index": index,
            "leaf_hash": hex::encode(leaf_hash(&entry)),
            "already_logged": submitted.already_logged,
        });
        if let Some(size) = checkpoint_size {
            out["checkpoint_size"] = size.into();
        }
        println!("{out}");
    } else {
        println!("{index}");
    }
    Ok(())
}

fn proof(a: ProofArgs) -> anyhow::Result<()> {
    let client = a.client.client()?;
    let url = a.client.url(&format!("proof/{}", a.index));
    let deadline = Instant::now() + Duration::from_secs(a.wait);
    let bundle = loop {
        match client.fetch_capped(&url, 1 << 20) {
            Ok(b) => break b,
            // 404: not in the published checkpoint yet (or no such entry).
            Err(e) if e.is_not_found() && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(e) if e.is_not_found() => bail!(
                "{url}: entry {} is not in a published checkpoint yet; retry in a few seconds \
(the log publishes once its witnesses answered; `--wait SECS` waits longer)",
                a.index
            ),
            Err(e) => return Err(e.into()),
        }
    };
    match a.out {
        Some(p) => {
            std::fs::write(&p, &bundle).with_context(|| format!("writing {}", p.display()))?
        }
        None => std::io::stdout().write_all(&bundle)?,
    }
    Ok(())
}

/// Where keygen writes the verifier key of the key file `key`.
fn public_key_path(key: &Path) -> PathBuf {
    let mut s = key.as_os_str().to_owned();
    s.push(".pub");
    PathBuf::from(s)
}

/// How a key string is shown in an error: its name and key ID only, so that a private key
/// pasted by mistake (`PRIVATE+KEY+name+id+secret`) never reaches a terminal or a log.
fn key_label(k: &str) -> String {
    let mut parts = k.trim().splitn(3, '+');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(a), Some(b), Some(_)) => format!("{a}+{b}+…"),
        _ => format!("{:?}", k.chars().take(40).collect::<String>()),
    }
}

/// Parses a verifier key of algorithm `alg` given for `what` (publisher, witness, log).
pub(crate) fn parse_vkey(k: &str, what: &str, alg: KeyAlgorithm) -> anyhow::Result<NoteVerifier> {
    if k.trim_start().starts_with("PRIVATE+KEY+") {
        bail!(
            "{what} key: that is a private key (PRIVATE+KEY+…), not a verifier key; give the \
verifier key that keygen printed, and keep the private key secret"
        );
    }
    let v = NoteVerifier::from_vkey(k).map_err(|_| {
        // The parse error may quote the string: name the key by its label only.
        anyhow::anyhow!(
            "{what} key {} is not a verifier key ({})",
            key_label(k),
            "expected <name>+<8 hex digit key ID>+<base64 key>"
        )
    })?;
    if v.algorithm() != alg {
        let want = match alg {
            KeyAlgorithm::CosignatureV1 => "a cosignature/v1 key (type 0x04)",
            _ => "an Ed25519 note key (type 0x01)",
        };
        bail!(
            "{what} key {}+{:08x} is a {} key; {what} keys must be {want}",
            v.name(),
            v.key_id(),
            v.algorithm()
        );
    }
    Ok(v)
}

fn parse_keys(keys: &[String], what: &str, alg: KeyAlgorithm) -> anyhow::Result<Vec<NoteVerifier>> {
    keys.iter().map(|k| parse_vkey(k, what, alg)).collect()
}

fn verify_proof(a: VerifyProofArgs) -> anyhow::Result<()> {
    // Keys first: a wrong key is named before any file is read.
    let keys = match &a.log_key {
        Some(k) if a.policy.is_none() => Some((
            parse_vkey(k, "log", KeyAlgorithm::Ed25519)?,
            parse_keys(&a.witness_keys, "witness", KeyAlgorithm::CosignatureV1)?,
        )),
        _ => None,
    };
    let entry = read_entry(&a.entry_file, &a.entry)?;
    let bundle =
        std::fs::read(&a.proof).with_context(|| format!("reading {}", a.proof.display()))?;
    let (index, size, cosigned_by, origin) = if let Some(policy_path) = &a.policy {
        let text = std::fs::read(policy_path)
            .with_context(|| format!("reading {}", policy_path.display()))?;
        let policy = airlock_core::tlog::Policy::parse(&text)
            .with_context(|| format!("{}", policy_path.display()))?;
        let parsed = airlock_core::tlog::ProofBundle::parse(&bundle)
            .with_context(|| format!("{}", a.proof.display()))?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs();
        let v = airlock_core::tlog::LogVerifier::new(policy)
            .verify_entry(
                &airlock_core::tlog::VerifierState::new(),
                &parsed,
                &entry,
                None,
                now,
            )
            .with_context(|| format!("{}", a.proof.display()))?;
        (v.index, v.checkpoint.size, v.witnesses, v.checkpoint.origin)
    } else {
        let Some((log_key, witnesses)) = keys else {
            bail!("give --log-key or --policy");
        };
        let quorum = a.quorum.unwrap_or(witnesses.len());
        let v = airlock_log::verify_bundle(&bundle, &entry, &log_key, &witnesses, quorum)
            .with_context(|| format!("{}", a.proof.display()))?;
        (v.index, v.size, v.cosigned_by, log_key.name().to_string())
    };
    if a.json {
        println!(
            "{}",
            serde_json::json!({
                "ok": true, "index": index, "tree_size": size, "origin": origin,
                "cosigned_by": cosigned_by,
            })
        );
    } else {
        println!(
            "ok: entry {index} is in {origin}'s tree of size {size}, cosigned by {} witness(es): {}",
            cosigned_by.len(),
            cosigned_by.join(", ")
        );
    }
    Ok(())
}

fn read_seen(path: &Path) -> anyhow::Result<Option<Seen>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let v: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    let size = v["size"].as_u64().context("monitor state: no size")?;
    let root: [u8; 32] = hex::decode(v["root"].as_str().unwrap_or(""))
        .ok()
        .and_then(|r| r.try_into().ok())
        .context("monitor state: bad root")?;
    Ok(Some(Seen { size, root }))
}

fn monitor(a: MonitorArgs) -> anyhow::Result<()> {
    let client = a.client.client()?;
    let watch = a.watch.load()?;
    let policy_key = watch.as_ref().and_then(|w| w.log_key.clone());
    let log_key = match (&a.log_key, policy_key) {
        (Some(k), policy_key) => {
            let k = parse_vkey(k, "log", KeyAlgorithm::Ed25519)?;
            if let Some(p) = policy_key.filter(|p| p != &k) {
                return Err(super::output::usage(format!(
                    "--log-key {}+{:08x} is not the log the repository's policy names ({}+{:08x})",
                    k.name(),
                    k.key_id(),
                    p.name(),
                    p.key_id()
                )));
            }
            k
        }
        (None, Some(p)) => p,
        (None, None) => return Err(super::output::usage("give --log-key")),
    };
    let witnesses = parse_keys(&a.witness_keys, "witness", KeyAlgorithm::CosignatureV1)?;
    let seen = match &a.state {
        Some(p) => read_seen(p)?,
        None => None,
    };
    let bar = indicatif::ProgressBar::new(0);
    if a.json {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let report = walk(
        &client,
        &a.client.url,
        &log_key,
        &witnesses,
        seen,
        |done, total| {
            bar.set_length(total);
            bar.set_position(done);
        },
    )?;
    bar.finish_and_clear();
    let cp = &report.checkpoint.checkpoint;
    let scan = watch.as_ref().map(|w| {
        airlock_core::transparency::scan_entries(
            &w.repository,
            &w.record,
            report.new_entries.iter().map(|(i, e)| (*i, e.as_slice())),
        )
    });
    if a.json {
        let entries: Vec<_> = report
            .new_entries
            .iter()
            .map(|(i, e)| {
                serde_json::json!({"index": i, "entry": String::from_utf8_lossy(e), "leaf_hash": hex::encode(leaf_hash(e))})
            })
            .collect();
        let mut out = serde_json::json!({
            "size": cp.size, "root": hex::encode(cp.root_hash),
            "tiles_checked": report.tiles_checked,
            "cosignatures": report.checkpoint.cosignatures.len(),
            "new_entries": entries,
        });
        if let (Some(w), Some(scan)) = (&watch, &scan) {
            out["releases"] = super::release_watch::to_json(w, scan);
        }
        println!("{out}");
    } else {
        match &scan {
            Some(scan) => super::release_watch::print(scan),
            None => {
                for (i, e) in &report.new_entries {
                    println!("{i}\t{}", String::from_utf8_lossy(e).escape_debug());
                }
            }
        }
        eprintln!(
            "ok: {} entries, {} tiles re-derived and checked, root matches the checkpoint{}",
            cp.size,
            report.tiles_checked,
            if seen.is_some() {
                "; consistent with the last run"
            } else {
                ""
            }
        );
        if let (Some(w), Some(scan)) = (&watch, &scan) {
            eprintln!("{}", super::release_watch::summary(w, scan));
        }
    }
    // The report is out before the state moves past it: an unexpected release is reported
    // once, so it must not be lost to a failed write of standard output.
    std::io::stdout().flush()?;
    if let Some(p) = &a.state {
        let state = serde_json::json!({"size": cp.size, "root": hex::encode(cp.root_hash)});
        airlock_fs::write_atomic(
            p,
            state.to_string().as_bytes(),
            &airlock_fs::WriteOptions::public(),
        )?;
    }
    match (&watch, &scan) {
        (Some(w), Some(scan)) => super::release_watch::outcome(w, scan),
        _ => Ok(()),
    }
}

/// A directory `init` is filling: if anything fails before [`NewDir::done`] (the guard is
/// dropped on the error path), what this run created is removed again: the whole directory if
/// it made it, else the key file if it was not there before. A failed `init` leaves nothing
/// behind and can simply be run again.
pub(crate) struct NewDir {
    dir: PathBuf,
    key: PathBuf,
    created_dir: bool,
    key_existed: bool,
    armed: std::cell::Cell<bool>,
}

impl NewDir {
    pub(crate) fn create(dir: &Path, key: &Path) -> anyhow::Result<Self> {
        let created_dir = !dir.exists();
        let key_existed = key.exists();
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(NewDir {
            dir: dir.to_path_buf(),
            key: key.to_path_buf(),
            created_dir,
            key_existed,
            armed: std::cell::Cell::new(true),
        })
    }

    /// Everything is in place: keep it.
    pub(crate) fn done(&self) {
        self.armed.set(false);
    }
}

impl Drop for NewDir {
    fn drop(&mut self) {
        if !self.armed.get() {
            return;
        }
        let removed = if self.created_dir {
            std::fs::remove_dir_all(&self.dir)
        } else if self.key_existed {
            Ok(())
        } else {
            match std::fs::remove_file(&self.key) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                r => r,
            }
        };
        if let Err(e) = removed {
            eprintln!("warning: could not remove {}: {e}", self.dir.display());
        }
    }
}
