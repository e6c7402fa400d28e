//! What every command family shares: passphrase sources, JSON output, the shutdown wait.
//! One definition each, so that `repo`, `update`, `log`, `witness` and `key` behave alike.

use std::path::PathBuf;

use airlock_keystore::{PassphraseSource, Protection};

/// The environment variable read for a key passphrase when no source is named.
pub const PASSPHRASE_ENV: &str = "AIRLOCK_PASSPHRASE";

/// Where the passphrase of a private key comes from: `--passphrase-fd N`, else
/// `--passphrase-env VAR`, else `AIRLOCK_PASSPHRASE` if set, else a prompt on the terminal.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct PassphraseArgs {
    /// Read the key passphrase from this environment variable (default: AIRLOCK_PASSPHRASE if
    /// set, else ask on the terminal).
    // Global so that `airlock repo --passphrase-fd 3 publish` works; on a command without
    // subcommands it changes nothing.
    #[arg(
        long,
        global = true,
        value_name = "VAR",
        conflicts_with = "passphrase_fd"
    )]
    pub passphrase_env: Option<String>,
    /// Read the key passphrase from this open file descriptor (e.g. `3 3<secret`), for cron.
    #[arg(long, global = true, value_name = "FD")]
    pub passphrase_fd: Option<i32>,
}

impl PassphraseArgs {
    pub fn source(&self) -> PassphraseSource {
        passphrase_source(self.passphrase_fd, self.passphrase_env.as_deref(), true)
    }

    /// How a new key is protected: encrypted, unless `plaintext` (tests only).
    pub fn protection(&self, plaintext: bool) -> Protection {
        if plaintext {
            Protection::PlaintextForTests
        } else {
            Protection::encrypted(self.source())
        }
    }
}

/// The certificate and key a server presents (`log init`, `witness init`, `repo serve`).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct TlsArgs {
    /// TLS certificate chain (PEM) to serve HTTPS with.
    #[arg(long, alias = "cert", value_name = "PEM", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM) of --tls-cert.
    #[arg(long, alias = "key", value_name = "PEM", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
}

/// How a client reaches a server: whose CA it trusts and whether plain HTTP to loopback is
/// allowed (`update`, and `log add`, `proof`, `monitor`).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ClientTlsArgs {
    /// Trust only the CA certificates in this PEM file instead of the webpki roots.
    #[arg(long, alias = "ca", value_name = "PEM")]
    pub ca_file: Option<PathBuf>,
    /// Allow plain http:// to 127.0.0.1, ::1 or localhost (tests only).
    #[arg(long, alias = "allow-http")]
    pub allow_http_loopback: bool,
}

/// Blocks until Ctrl-C or SIGTERM, the two ways a service manager or a person stops a server.
pub fn wait_for_shutdown_signal() -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r,
            _ = term.recv() => Ok(()),
        }
    })?;
    Ok(())
}

/// The one rule for choosing a passphrase source from a file descriptor, a named variable and
/// (when `default_env`) `AIRLOCK_PASSPHRASE`; a prompt otherwise.
pub fn passphrase_source(
    fd: Option<i32>,
    env: Option<&str>,
    default_env: bool,
) -> PassphraseSource {
    if let Some(fd) = fd {
        PassphraseSource::Fd(fd)
    } else if let Some(var) = env {
        PassphraseSource::Env(var.to_string())
    } else if default_env && std::env::var_os(PASSPHRASE_ENV).is_some() {
        PassphraseSource::Env(PASSPHRASE_ENV.into())
    } else {
        PassphraseSource::Prompt
    }
}

/// Print one JSON document on stdout, on one line (the `--json` convention: one document per
/// command, so a script can also read several runs as JSON lines).
pub fn print_json(value: &serde_json::Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string(value)?);
    Ok(())
}
