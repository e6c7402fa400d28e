//! One measured run of a client as a child process.
//!
//! The runner starts `update-bench measure -- PROGRAM ARGS…`, a small intermediate process that
//! starts PROGRAM, waits for it and reads `getrusage(RUSAGE_CHILDREN)`. As PROGRAM is its only
//! child, that is PROGRAM's own CPU time (user + system) and peak resident set size (`ru_maxrss`,
//! the largest RSS the process reached), without any of the runner's or server's. Wall time is
//! taken in the intermediate from just before the spawn to the return of wait.

use std::ffi::OsString;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result};
use nix::sys::resource::{UsageWho, getrusage};
use serde::{Deserialize, Serialize};

/// What one run cost.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Usage {
    pub wall_s: f64,
    pub user_s: f64,
    pub sys_s: f64,
    pub max_rss_kib: i64,
    /// Exit code (None when killed by a signal).
    pub code: Option<i32>,
}

/// The `measure` subcommand: run `program`, print [`Usage`] as JSON on stdout. The child's
/// stdout and stderr go to `log`.
pub fn measure_child(log: &Path, program: &OsString, args: &[OsString]) -> Result<()> {
    let out = std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
    let err = out.try_clone().context("duplicating the log file")?;
    let start = Instant::now();
    let status = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .status()
        .with_context(|| format!("starting {}", program.to_string_lossy()))?;
    let wall = start.elapsed();
    let ru = getrusage(UsageWho::RUSAGE_CHILDREN).context("getrusage")?;
    let secs = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
    let usage = Usage {
        wall_s: wall.as_secs_f64(),
        user_s: secs(ru.user_time()),
        sys_s: secs(ru.system_time()),
        max_rss_kib: ru.max_rss(),
        code: status.code(),
    };
    println!("{}", serde_json::to_string(&usage)?);
    Ok(())
}
