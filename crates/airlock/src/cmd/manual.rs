//! `airlock man` and `airlock completions`: manual pages and shell completions generated from
//! the same clap definitions that parse the command line, so they cannot drift from it.

use std::path::PathBuf;

use anyhow::Result;
use clap::Parser;
use serde_json::json;

use super::common::print_json;

/// Write a manual page for `airlock` and for every subcommand (airlock.1, airlock-repo.1,
/// airlock-repo-init.1, ...) into a directory.
#[derive(Parser, Debug)]
#[command(after_help = "Example (install for all users, then read one):
  airlock man --out /usr/local/share/man/man1 && man airlock-repo-init")]
pub struct ManArgs {
    /// Directory to write the pages into (created if missing).
    #[arg(long)]
    out: PathBuf,
}

/// Print a completion script for a shell on stdout.
#[derive(Parser, Debug)]
#[command(after_help = "Examples:
  airlock completions bash > /etc/bash_completion.d/airlock
  airlock completions zsh > \"${fpath[1]}/_airlock\"
  airlock completions fish > ~/.config/fish/completions/airlock.fish")]
pub struct CompletionsArgs {
    /// The shell: bash, zsh, fish, elvish or powershell.
    shell: clap_complete::Shell,
}

pub fn man(args: ManArgs, command: clap::Command, json: bool) -> Result<()> {
    std::fs::create_dir_all(&args.out)?;
    let mut written = Vec::new();
    write_pages(&args.out, command, &mut written)?;
    if json {
        print_json(&json!({ "written": written }))
    } else {
        for p in &written {
            println!("{}", p.display());
        }
        Ok(())
    }
}

fn write_pages(
    dir: &std::path::Path,
    cmd: clap::Command,
    written: &mut Vec<PathBuf>,
) -> Result<()> {
    let cmd = {
        let mut c = cmd;
        c.build();
        c
    };
    let name = cmd.get_display_name().unwrap_or(cmd.get_name()).to_string();
    let mut page = Vec::new();
    clap_mangen::Man::new(cmd.clone())
        .title(name.to_uppercase())
        .render(&mut page)?;
    let path = dir.join(format!("{name}.1"));
    airlock_fs::write_atomic(&path, &page, &airlock_fs::WriteOptions::public())?;
    written.push(path);
    for sub in cmd.get_subcommands() {
        if sub.is_hide_set() || sub.get_name() == "help" {
            continue;
        }
        write_pages(dir, sub.clone(), written)?;
    }
    Ok(())
}

pub fn completions(args: CompletionsArgs, mut command: clap::Command) -> Result<()> {
    let name = command.get_name().to_string();
    // Into memory first: clap_complete panics when its writer fails (a closed pipe).
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut command, name, &mut script);
    std::io::Write::write_all(&mut std::io::stdout().lock(), &script)?;
    Ok(())
}
