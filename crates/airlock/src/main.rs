#![forbid(unsafe_code)]
//! `airlock`: one binary, subcommands repo, update, mirror, log, witness, key, agent, diff,
//! rebuild, demo, man, completions.
//!
//! Output to a reader that went away (`airlock update list | head -1`) ends the process quietly
//! with exit status 141, the status a shell reports for coreutils killed by SIGPIPE, so that
//! `set -o pipefail` still sees that the output was cut short. Rust ignores SIGPIPE, which makes
//! `std`'s `println!` panic on EPIPE instead; the macros below replace it for the whole binary.

use std::io::Write as _;

use clap::{CommandFactory, Parser, Subcommand};

/// Exit status after the reader of standard output went away (128 + SIGPIPE).
const EXIT_BROKEN_PIPE: i32 = 141;

// These shadow `std`'s macros in every module declared below (textual scope wins over the
// prelude), so no command can reach the panicking versions.
macro_rules! println {
    () => { $crate::print_stdout(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::print_stdout(format_args!("{}\n", format_args!($($arg)*))) };
}
#[allow(unused_macros)]
macro_rules! print {
    ($($arg:tt)*) => { $crate::print_stdout(format_args!($($arg)*)) };
}
macro_rules! eprintln {
    () => { $crate::print_stderr(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::print_stderr(format_args!("{}\n", format_args!($($arg)*))) };
}

mod cmd;

/// `print!` that never panics: a closed pipe ends the process quietly (see the crate docs), any
/// other write failure (a full disk behind a redirection) is reported once, with status 1.
fn print_stdout(args: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(args).and_then(|()| out.flush()) {
        exit_on_stdout_error(&e);
    }
}

/// `eprint!` that never panics: when standard error cannot be written there is nowhere left to
/// report it, so the message is dropped.
fn print_stderr(args: std::fmt::Arguments<'_>) {
    let _ = std::io::stderr().lock().write_fmt(args);
}

fn exit_on_stdout_error(e: &std::io::Error) -> ! {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(EXIT_BROKEN_PIPE);
    }
    print_stderr(format_args!("error: writing to standard output: {e}\n"));
    std::process::exit(1);
}

#[derive(Parser, Debug)]
#[command(
    name = "airlock",
    version,
    about = "Secure automatic updates: TUF, transparency log, witnesses",
    after_help = cmd::output::EXIT_HELP
)]
struct Cli {
    /// Print machine-readable JSON on standard output instead of text, errors included.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Publisher's tool: create, sign and publish a TUF repository.
    Repo(cmd::repo::Args),
    /// Updater client: trust a root, refresh metadata, list and download targets.
    Update(cmd::update::Args),
    /// Mirrors: make and refresh a verified copy of a repository for a static web server, or
    /// seed its targets to BitTorrent swarms (`bittorrent` builds).
    Mirror(cmd::mirror::Args),
    /// Transparency log: init, serve, add entries, proofs, monitor.
    Log(cmd::log::Args),
    /// Witness: cosign checkpoints of logs it follows.
    Witness(cmd::witness::Args),
    /// Standalone key files: generate (e.g. offline root keys), print a public key, change a
    /// passphrase.
    Key(cmd::key::Args),
    /// The privileged update agent: run it, check now, status, rollback.
    Agent(cmd::agent::Args),
    /// Compare two artifacts inside their archives (tar, zip, phar, nested): content
    /// differences apart from metadata-only ones.
    Diff(cmd::diff::Args),
    /// Rebuilder: rebuild a target from source in a sandbox, attest to a byte-identical result.
    Rebuild(Box<cmd::rebuild::Args>),
    /// Walk through a whole release end to end on 127.0.0.1, showing every check.
    Demo(cmd::demo::Args),
    /// Write manual pages for every command.
    Man(cmd::manual::ManArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(cmd::manual::CompletionsArgs),
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => parse_failed(&e),
    };
    let json = cli.json;
    let result = match cli.command {
        Command::Repo(a) => cmd::repo::run(a, json),
        Command::Update(a) => cmd::update::run(a, json),
        Command::Mirror(a) => cmd::mirror::run(a, json),
        Command::Log(a) => cmd::log::run(a, json),
        Command::Witness(a) => cmd::witness::run(a, json),
        Command::Key(a) => cmd::key::run(a, json),
        Command::Agent(a) => cmd::agent::run(a, json),
        Command::Diff(a) => cmd::diff::run(a, json),
        Command::Rebuild(a) => cmd::rebuild::run(*a, json),
        Command::Demo(a) => cmd::demo::run(a, json),
        Command::Man(a) => cmd::manual::man(a, Cli::command(), json),
        Command::Completions(a) => cmd::manual::completions(a, Cli::command()),
    };
    if let Err(e) = result {
        // A command that writes to stdout through its own handle gets the closed pipe back as a
        // bare io::Error (`?` without context); wrapped ones concern something else, e.g. a socket.
        if let Some(io) = e
            .downcast_ref::<std::io::Error>()
            .filter(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
        {
            exit_on_stdout_error(io);
        }
        let kind = cmd::output::classify(&e);
        if json {
            if !e.is::<cmd::output::Reported>() {
                println!("{}", cmd::output::error_json(&e, kind));
            }
        } else {
            eprintln!("error: {e:#}");
        }
        std::process::exit(kind.exit_code());
    }
}

/// A command line clap refused (status 2), or `--help`/`--version` (status 0). With `--json`
/// anywhere on the line, a refusal is the JSON error object; help stays text.
fn parse_failed(e: &clap::Error) -> ! {
    use clap::error::ErrorKind;
    let is_help = matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    );
    if !is_help && std::env::args_os().skip(1).any(|a| a == "--json") {
        let message = e.render().to_string();
        let first = message
            .lines()
            .next()
            .unwrap_or_default()
            .trim_start_matches("error: ")
            .to_string();
        let err = anyhow::Error::new(cmd::output::UsageError(first));
        println!(
            "{}",
            cmd::output::error_json(&err, cmd::output::Kind::Usage)
        );
        std::process::exit(cmd::output::EXIT_USAGE);
    }
    e.exit()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every flag and argument of every command says what it is for in `--help`.
    #[test]
    fn every_option_has_a_help_line() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if arg.is_hide_set() || id == "help" || id == "version" {
                    continue;
                }
                if arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!("{path} {id}"));
                }
            }
            for sub in cmd.get_subcommands() {
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut cmd = Cli::command();
        cmd.build();
        let mut missing = Vec::new();
        walk(&cmd, "airlock", &mut missing);
        assert!(missing.is_empty(), "options without help: {missing:#?}");
    }

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
