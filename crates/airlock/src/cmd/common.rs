//! What every command family shares: passphrase sources, JSON output, the shutdown wait.
//! One definition each, so that `repo`, `update`, `log`, `witness` and `key` behave alike.

use airlock_keystore::PassphraseSource;

/// The environment variable read for a key passphrase when no source is named.
pub const PASSPHRASE_ENV: &str = "AIRLOCK_PASSPHRASE";

/// Where the passphrase of a private key comes from: `--passphrase-fd N`, else
/// `--passphrase-env VAR`, else `AIRLOCK_PASSPHRASE` if set, else a prompt on the terminal.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct PassphraseArgs {
    /// Read the key passphrase from this environment variable (default: AIRLOCK_PASSPHRASE if
    /// set, else ask on the terminal).
    #[arg(long, value_name = "VAR", conflicts_with = "passphrase_fd")]
    pub passphrase_env: Option<String>,
    /// Read the key passphrase from this open file descriptor (e.g. `3 3<secret`), for cron.
    #[arg(long, value_name = "FD")]
    pub passphrase_fd: Option<i32>,
}

impl PassphraseArgs {
    pub fn source(&self) -> PassphraseSource {
        passphrase_source(self.passphrase_fd, self.passphrase_env.as_deref(), true)
    }
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

/// Print one JSON document on stdout (the `--json` convention: one object per command).
pub fn print_json(value: &serde_json::Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}
