//! tough 0.24 as a peer in Airlock's updater benchmark. Same contract as the other peers
//! (see bench/README.md):
//!
//! ```text
//! tough-peer cold --root ROOT --metadata-dir D --metadata-url U --targets-url T
//!                 --target-dir O --target NAME [--zero-backoff]
//! tough-peer warm --root ROOT --metadata-dir D --metadata-url U --targets-url T [--zero-backoff]
//! ```
//!
//! `cold`: load the repository from the trusted ROOT with an empty datastore D (root rotation,
//! timestamp, snapshot, targets and, as tough does, every delegated role), then save target NAME
//! into O. `warm`: load again with the datastore a cold run left. Exit 0 only on success.
//! The server's CA comes from `SSL_CERT_FILE` (tough's HTTP transport uses the platform
//! verifier, which on Linux reads the native certificate store and honours that variable).
//!
//! `--zero-backoff` sets `HttpTransportBuilder::initial_backoff(Duration::ZERO)`: tough sleeps
//! `initial_backoff` (100 ms as shipped) before every request, the first try included.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use tough::{HttpTransportBuilder, Prefix, RepositoryLoader, TargetName};
use url::Url;

#[derive(Default)]
struct Args {
    mode: String,
    root: PathBuf,
    metadata_dir: PathBuf,
    metadata_url: String,
    targets_url: String,
    target_dir: Option<PathBuf>,
    target: Option<String>,
    zero_backoff: bool,
}

fn parse() -> Result<Args, String> {
    let mut a = Args::default();
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut val = |n: &str| it.next().ok_or_else(|| format!("{n} needs a value"));
        match arg.as_str() {
            "--root" => a.root = val(&arg)?.into(),
            "--metadata-dir" => a.metadata_dir = val(&arg)?.into(),
            "--metadata-url" => a.metadata_url = val(&arg)?,
            "--targets-url" => a.targets_url = val(&arg)?,
            "--target-dir" => a.target_dir = Some(val(&arg)?.into()),
            "--target" => a.target = Some(val(&arg)?),
            "--ca" => {
                // The CA is taken from SSL_CERT_FILE; accepted for a uniform peer contract.
                val(&arg)?;
            }
            "--zero-backoff" => a.zero_backoff = true,
            "cold" | "warm" if a.mode.is_empty() => a.mode = arg,
            other => return Err(format!("unexpected argument {other:?}")),
        }
    }
    if a.mode.is_empty() {
        return Err("mode cold|warm is required".into());
    }
    Ok(a)
}

async fn run(a: Args) -> Result<(), Box<dyn std::error::Error>> {
    let root = std::fs::read(&a.root)?;
    let mut transport = HttpTransportBuilder::new();
    if a.zero_backoff {
        transport = transport.initial_backoff(Duration::ZERO);
    }
    std::fs::create_dir_all(&a.metadata_dir)?;
    let repo = RepositoryLoader::new(
        &root,
        Url::parse(&a.metadata_url)?,
        Url::parse(&a.targets_url)?,
    )
    .transport(transport.build())
    .datastore(&a.metadata_dir)
    .load()
    .await?;
    if a.mode == "cold" {
        let (Some(name), Some(dir)) = (a.target, a.target_dir) else {
            return Err("cold needs --target and --target-dir".into());
        };
        std::fs::create_dir_all(&dir)?;
        repo.save_target(&TargetName::new(name)?, &dir, Prefix::None)
            .await?;
    }
    Ok(())
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: tokio runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match rt.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // The whole chain, so that the report can quote tough's actual error.
            let mut msg = e.to_string();
            let mut src = e.source();
            while let Some(s) = src {
                msg.push_str(": ");
                msg.push_str(&s.to_string());
                src = s.source();
            }
            eprintln!("error: {msg}");
            ExitCode::from(1)
        }
    }
}
