#![forbid(unsafe_code)]
//! `airlock`: one binary, subcommands repo, update, log, witness, demo.

fn main() -> anyhow::Result<()> {
    anyhow::bail!("airlock: no subcommands yet")
}
