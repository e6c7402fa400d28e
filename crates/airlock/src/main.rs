#![forbid(unsafe_code)]
//! `airlock`: one binary, subcommands repo, update, log, witness, key, demo.

use clap::{CommandFactory, Parser, Subcommand};

mod cmd;

#[derive(Parser, Debug)]
#[command(
    name = "airlock",
    version,
    about = "Secure automatic updates: TUF, transparency log, witnesses"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Publisher's tool: create, sign and publish a TUF repository.
    Repo(cmd::repo::Args),
    /// Updater client: trust a root, refresh metadata, list and download targets.
    Update(cmd::update::Args),
    /// Transparency log: init, serve, add entries, proofs, monitor.
    Log(cmd::log::Args),
    /// Witness: cosign checkpoints of logs it follows.
    Witness(cmd::witness::Args),
    /// Standalone key files: generate (e.g. offline root keys), print a public key, change a
    /// passphrase.
    Key(cmd::key::Args),
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
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Repo(a) => cmd::repo::run(a),
        Command::Update(a) => cmd::update::run(a),
        Command::Log(a) => cmd::log::run(a),
        Command::Witness(a) => cmd::witness::run(a),
        Command::Key(a) => cmd::key::run(a),
        Command::Demo(a) => cmd::demo::run(a),
        Command::Man(a) => cmd::manual::man(a, Cli::command()),
        Command::Completions(a) => cmd::manual::completions(a, Cli::command()),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
