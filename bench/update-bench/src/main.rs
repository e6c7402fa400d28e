#![forbid(unsafe_code)]
//! Airlock's updater benchmark (issue 3): airlock-client next to python-tuf's ngclient and
//! tough 0.24 (as shipped and with its retry backoff at zero), plus curl and openssl for the
//! 1 GiB case, all against one HTTPS server on 127.0.0.1 in one run. See bench/README.md.
//!
//! `update-bench run …` generates the repositories, starts the server, runs every client as a
//! child process a few times, prints the table and rewrites the "Updating" section of
//! docs/benchmarks.md. `update-bench measure …` is the intermediate process that measures one
//! child (see [`measure`]). `update-bench transparency …` is issue 11's benchmark (see
//! [`tlog`]).

mod callgrind;
mod measure;
mod mirrors;
mod repo;
mod report;
mod server;
mod tlog;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use airlock_serve::TestCa;
use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};

use crate::measure::Usage;
use crate::repo::{Generator, Layout, Repo};
use crate::report::{Machine, Row, Sample, Versions};
use crate::server::CountingServer;

#[derive(Parser)]
#[command(about = "Airlock updater benchmark (see bench/README.md)")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the whole benchmark and rewrite the Updating section of the benchmarks document.
    ///
    /// Example: update-bench run --python .venv/bin/python --tough bench/tough-peer/target/release/tough-peer
    Run(RunArgs),
    /// Issue 11: publishing with a transparency log, and the client's added cost for proof
    /// verification; rewrites the "Transparency: publishing and verification cost" section.
    ///
    /// Example: update-bench transparency --releases 100 --repeat 15
    Transparency(tlog::TlogArgs),
    /// Issue 13: an update through one healthy mirror against the same update after four failing
    /// mirrors (down, stalled, HTTP 500, hostile); rewrites the "Mirrors" section.
    ///
    /// Example: update-bench mirrors --mib 64 --repeat 5
    Mirrors(mirrors::MirrorArgs),
    /// Instruction counts (valgrind's callgrind) of airlock-client's cold and warm runs on the
    /// flat repository, which stay put on a loaded machine.
    ///
    /// Example: update-bench callgrind --targets 100000
    Callgrind(callgrind::CallgrindArgs),
    /// Internal: run one program and print its wall time, CPU time and peak RSS as JSON.
    Measure {
        /// File that receives the program's stdout and stderr.
        #[arg(long)]
        log: PathBuf,
        /// The program and its arguments.
        #[arg(last = true, required = true)]
        argv: Vec<OsString>,
    },
}

#[derive(clap::Args)]
struct RunArgs {
    /// Python interpreter with python-tuf (ngclient).
    #[arg(long)]
    python: PathBuf,
    /// The tough-peer binary (bench/tough-peer, built in release mode).
    #[arg(long)]
    tough: PathBuf,
    /// Repository root (for docs/benchmarks.md, bench/ files and the git commit).
    #[arg(long, default_value = ".")]
    repo_root: PathBuf,
    /// The document whose Updating section is rewritten; "-" to only print.
    #[arg(long, default_value = "docs/benchmarks.md")]
    doc: String,
    /// The command line to record in the document.
    #[arg(long, default_value = "./bench/run-update")]
    recorded_command: String,
    /// Number of small targets.
    #[arg(long, default_value_t = 100_000)]
    targets: usize,
    /// Runs per client for (a) and (b); the median is reported.
    #[arg(long, default_value_t = 5)]
    repeat: usize,
    /// Runs per client for (c).
    #[arg(long, default_value_t = 3)]
    big_repeat: usize,
    /// Size of the big target in MiB (0 skips (c)).
    #[arg(long, default_value_t = 1024)]
    big_mib: u64,
    /// Also run airlock-client with its directories on /dev/shm (tmpfs), to show the cost of
    /// its fsyncs.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    tmpfs_variant: bool,
    /// Run only the clients whose name contains one of these words (e.g. `airlock`), for
    /// profiling; the document is not meant to be written from such a run.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Also count airlock-client's instructions on the flat repository (one cold and one warm
    /// run under valgrind's callgrind, when valgrind is installed).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    callgrind: bool,
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Cmd::Measure { log, argv } => {
            let (program, args) = argv.split_first().context("no program given")?;
            measure::measure_child(&log, program, args)
        }
        Cmd::Run(args) => run(args),
        Cmd::Transparency(args) => tlog::run(args),
        Cmd::Mirrors(args) => mirrors::run(args),
        Cmd::Callgrind(args) => callgrind::run(args),
    }
}

/// One client under test: how to start it. Every peer follows the same contract
/// (`cold|warm --root … --metadata-dir … --metadata-url … --targets-url … --ca …
/// [--target-dir … --target …]`).
#[derive(Clone, Debug)]
struct Peer {
    name: String,
    program: OsString,
    before: Vec<OsString>,
    after: Vec<OsString>,
    /// Where its metadata and target directories go (default: the work dir under $TMPDIR).
    dir_root: Option<PathBuf>,
}

struct Bench {
    self_exe: PathBuf,
    server: CountingServer,
    ca_file: PathBuf,
    work: tempfile::TempDir,
    runs: u64,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Cold,
    Warm,
}

impl Bench {
    fn url(&self, repo: &Repo, part: &str) -> String {
        self.server.server.url(&format!("/{}/{part}/", repo.name))
    }

    /// Run `argv` through the measuring intermediate; requests are counted on the server.
    fn measure(&mut self, argv: &[OsString]) -> Result<(Usage, u64, String)> {
        self.runs += 1;
        let log = self.work.path().join(format!("run-{}.log", self.runs));
        let before = self.server.requests();
        let out = Command::new(&self.self_exe)
            .arg("measure")
            .arg("--log")
            .arg(&log)
            .arg("--")
            .args(argv)
            .env("SSL_CERT_FILE", &self.ca_file)
            .output()
            .context("starting the measuring process")?;
        let requests = self.server.requests() - before;
        if !out.status.success() {
            bail!(
                "measuring {:?} failed: {}",
                argv,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let usage: Usage =
            serde_json::from_slice(&out.stdout).context("reading the measurement")?;
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let _ = std::fs::remove_file(&log);
        Ok((usage, requests, text))
    }

    /// One run of `peer` in `dir` (its metadata and target directories live there).
    fn run_peer(&mut self, peer: &Peer, mode: Mode, repo: &Repo, dir: &Path) -> Result<Sample> {
        let metadata_dir = dir.join("metadata");
        let target_dir = dir.join("targets");
        let mut argv = vec![peer.program.clone()];
        argv.extend(peer.before.iter().cloned());
        argv.push(if mode == Mode::Cold { "cold" } else { "warm" }.into());
        for (k, v) in [
            ("--root", repo.root_file.clone().into_os_string()),
            ("--metadata-dir", metadata_dir.clone().into_os_string()),
            ("--metadata-url", self.url(repo, "metadata").into()),
            ("--targets-url", self.url(repo, "targets").into()),
            ("--ca", self.ca_file.clone().into_os_string()),
        ] {
            argv.push(k.into());
            argv.push(v);
        }
        if mode == Mode::Cold {
            argv.push("--target-dir".into());
            argv.push(target_dir.clone().into_os_string());
            argv.push("--target".into());
            argv.push(repo.target.clone().into());
        }
        argv.extend(peer.after.iter().cloned());
        let (usage, requests, log) = self.measure(&argv)?;
        let mut error = None;
        if usage.code != Some(0) {
            eprintln!("{} failed; its output:\n{}", peer.name, log.trim_end());
            error = Some(last_line(&log));
        } else if mode == Mode::Cold && !holds_file_of_len(&target_dir, repo.target_len) {
            error = Some(format!(
                "exit 0 but no file of {} bytes in the target directory",
                repo.target_len
            ));
        }
        Ok(Sample {
            usage,
            requests,
            error,
        })
    }
}

fn tempdir_for(peer: &Peer, bench: &Bench) -> Result<tempfile::TempDir> {
    let root = peer.dir_root.as_deref().unwrap_or(bench.work.path());
    tempfile::Builder::new()
        .prefix("airlock-update-bench-run")
        .tempdir_in(root)
        .with_context(|| format!("temp dir in {}", root.display()))
}

/// The last non-empty line a failing client printed: its own error message.
fn last_line(log: &str) -> String {
    let line = log
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("(no output)");
    let mut s: String = line.chars().take(400).collect();
    if line.chars().count() > 400 {
        s.push('…');
    }
    s
}

/// Whether `dir` (recursively) holds a regular file of exactly `len` bytes.
fn holds_file_of_len(dir: &Path, len: u64) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    entries.flatten().any(|e| match e.file_type() {
        Ok(t) if t.is_dir() => holds_file_of_len(&e.path(), len),
        Ok(t) if t.is_file() => e.metadata().is_ok_and(|m| m.len() == len),
        _ => false,
    })
}

fn command_output(program: &str, args: &[&str]) -> String {
    match Command::new(program).args(args).output() {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .unwrap_or("")
            .trim()
            .to_string(),
        Ok(out) => format!("unknown ({program} exited {})", out.status),
        Err(e) => format!("unknown ({program}: {e})"),
    }
}

/// The version of `name` recorded in a Cargo.lock.
fn locked_version(lock: &Path, name: &str) -> String {
    let text = std::fs::read_to_string(lock).unwrap_or_default();
    let needle = format!("name = \"{name}\"\nversion = \"");
    text.find(&needle)
        .and_then(|i| text.get(i + needle.len()..))
        .and_then(|rest| rest.split('"').next())
        .map(str::to_string)
        .unwrap_or_else(|| format!("unknown (not in {})", lock.display()))
}

fn run(args: RunArgs) -> Result<()> {
    let root = args.repo_root.canonicalize().context("repository root")?;
    let self_exe = std::env::current_exe().context("locating update-bench")?;
    let airlock_client = self_exe.with_file_name("airlock-bench-client");
    let airlock_client_path = airlock_client.clone();
    if !airlock_client.is_file() {
        bail!(
            "{} is missing: build update-bench's binaries",
            airlock_client.display()
        );
    }
    let script = root.join("bench/python-peer/ngclient_peer.py");
    let tough_lock = args
        .tough
        .parent()
        .and_then(Path::parent)
        .and_then(Path::parent)
        .map(|p| p.join("Cargo.lock"))
        .unwrap_or_default();

    let mut machine = Machine::read();
    let python_tuf = command_output(
        &args.python.to_string_lossy(),
        &[
            "-c",
            "import sys, tuf, urllib3; print(f'python-tuf {tuf.__version__} (urllib3 {urllib3.__version__}, CPython {sys.version.split()[0]})')",
        ],
    );
    let versions = Versions {
        airlock: format!(
            "commit {}{}",
            command_output(
                "git",
                &[
                    "-C",
                    &root.to_string_lossy(),
                    "rev-parse",
                    "--short",
                    "HEAD"
                ]
            ),
            if command_output(
                "git",
                &[
                    "-C",
                    &root.to_string_lossy(),
                    "status",
                    "--porcelain",
                    "--untracked-files=no"
                ]
            )
            .is_empty()
            {
                ""
            } else {
                " (with uncommitted changes)"
            }
        ),
        rustc: command_output("rustc", &["-V"]),
        python_tuf,
        tough: format!("tough {}", locked_version(&tough_lock, "tough")),
        curl: command_output("curl", &["-V"]),
        openssl: command_output("openssl", &["version"]),
    };
    eprintln!("machine: {machine:?}\nversions: {versions:?}");

    let served = tempfile::Builder::new()
        .prefix("airlock-update-bench-repo")
        .tempdir()
        .context("temp dir")?;
    let work = tempfile::Builder::new()
        .prefix("airlock-update-bench-work")
        .tempdir()
        .context("temp dir")?;
    if args.big_mib > 0 {
        // Served file + one client copy at a time, with room to spare.
        let need_gib = 3 * args.big_mib.div_ceil(1024);
        let avail_kib: u64 = Command::new("df")
            .args(["-k", "--output=avail"])
            .arg(work.path())
            .output()
            .ok()
            .and_then(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .nth(1)
                    .map(|l| l.trim().parse().unwrap_or(0))
            })
            .unwrap_or(0);
        if avail_kib < need_gib * 1024 * 1024 {
            bail!(
                "only {} MiB free under {}; (c) needs about {need_gib} GiB (use --big-mib 0 to skip it)",
                avail_kib / 1024,
                work.path().display()
            );
        }
    }

    eprintln!("generating repositories with {} targets …", args.targets);
    let chosen = args.targets / 2 + 345;
    let chosen = chosen.min(args.targets.saturating_sub(1));
    let generator = Generator::new(served.path(), args.targets, chosen)?;
    let flat = generator.small(Layout::Flat)?;
    let succinct = generator.small(Layout::Succinct)?;
    let prefix = generator.small(Layout::Prefix)?;
    let big = if args.big_mib > 0 {
        eprintln!("writing the {} MiB target …", args.big_mib);
        Some(generator.big(args.big_mib * 1024 * 1024)?)
    } else {
        None
    };

    let ca = TestCa::new().context("test CA")?;
    let ca_file = ca.write_ca_pem(work.path()).context("writing the CA")?;
    let server = CountingServer::start(served.path(), &ca)?;
    eprintln!(
        "serving {} at {}",
        served.path().display(),
        server.server.base_url()
    );

    let mut peers = vec![
        Peer {
            name: "airlock-client".into(),
            program: airlock_client.into_os_string(),
            before: vec![],
            after: vec![],
            dir_root: None,
        },
        Peer {
            name: "python-tuf ngclient".into(),
            program: args.python.clone().into_os_string(),
            before: vec![script.into_os_string()],
            after: vec![],
            dir_root: None,
        },
        Peer {
            name: "tough (as shipped)".into(),
            program: args.tough.clone().into_os_string(),
            before: vec![],
            after: vec![],
            dir_root: None,
        },
        Peer {
            name: "tough (backoff 0)".into(),
            program: args.tough.clone().into_os_string(),
            before: vec![],
            after: vec!["--zero-backoff".into()],
            dir_root: None,
        },
    ];
    // Diagnostic: the same airlock client with its directories on tmpfs, where fsync costs
    // nothing, to show how much of its time is spent making writes durable.
    let tmpfs = PathBuf::from("/dev/shm");
    if args.tmpfs_variant && tmpfs.is_dir() {
        let mut p = peers[0].clone();
        p.name = report::AIRLOCK_TMPFS.into();
        p.dir_root = Some(tmpfs);
        peers.insert(1, p);
    }
    if !args.only.is_empty() {
        peers.retain(|p| args.only.iter().any(|w| p.name.contains(w.as_str())));
    }

    let mut bench = Bench {
        self_exe,
        server,
        ca_file,
        work,
        runs: 0,
    };
    let mut rows: Vec<Row> = Vec::new();
    let row = |rows: &mut Vec<Row>, work: &str, client: &str| -> usize {
        if let Some(i) = rows
            .iter()
            .position(|r| r.work == work && r.client == client)
        {
            return i;
        }
        rows.push(Row::new(work, client));
        rows.len() - 1
    };

    // (a) cold then warm on the flat repository.
    for r in 0..args.repeat {
        for peer in &peers {
            eprintln!("(a) flat, {} run {}/{}", peer.name, r + 1, args.repeat);
            let dir = tempdir_for(peer, &bench)?;
            let cold = bench.run_peer(peer, Mode::Cold, &flat, dir.path())?;
            let cold_ok = cold.error.is_none();
            let i = row(&mut rows, report::A_COLD, &peer.name);
            rows[i].samples.push(cold);
            if cold_ok {
                let warm = bench.run_peer(peer, Mode::Warm, &flat, dir.path())?;
                let i = row(&mut rows, report::A_WARM, &peer.name);
                rows[i].samples.push(warm);
            }
        }
    }
    // (b) cold on the two binned repositories.
    for (work, repo) in [(report::B_SUCCINCT, &succinct), (report::B_PREFIX, &prefix)] {
        for r in 0..args.repeat {
            for peer in &peers {
                eprintln!("{work}: {} run {}/{}", peer.name, r + 1, args.repeat);
                let dir = tempdir_for(peer, &bench)?;
                let s = bench.run_peer(peer, Mode::Cold, repo, dir.path())?;
                let i = row(&mut rows, work, &peer.name);
                rows[i].samples.push(s);
            }
        }
    }
    // (c) the big target, next to curl to a file and openssl over that file.
    if let Some(big) = &big {
        let url = format!("{}{}", bench.url(big, "targets"), {
            let (dir, base) = big.target.rsplit_once('/').unwrap_or(("", &big.target));
            format!("{dir}/{}.{base}", big.target_sha256)
        });
        let served_file = generator.target_file(big);
        if !served_file.is_file() {
            bail!("{} missing", served_file.display());
        }
        for r in 0..args.big_repeat {
            for peer in &peers {
                eprintln!("(c) {} run {}/{}", peer.name, r + 1, args.big_repeat);
                let dir = tempdir_for(peer, &bench)?;
                let s = bench.run_peer(peer, Mode::Cold, big, dir.path())?;
                drop(dir); // the 1 GiB copy goes right away
                let i = row(&mut rows, report::C_BIG, &peer.name);
                rows[i].samples.push(s);
            }
            eprintln!("(c) curl and openssl run {}/{}", r + 1, args.big_repeat);
            let dir = tempfile::tempdir_in(bench.work.path())?;
            let out = dir.path().join("blob.bin");
            let curl = vec![
                OsString::from("curl"),
                "-sS".into(),
                "--fail".into(),
                "--cacert".into(),
                bench.ca_file.clone().into_os_string(),
                "-o".into(),
                out.clone().into_os_string(),
                url.clone().into(),
            ];
            let (usage, requests, log) = bench.measure(&curl)?;
            let error = if usage.code != Some(0) {
                Some(last_line(&log))
            } else if !holds_file_of_len(dir.path(), big.target_len) {
                Some("curl wrote a file of the wrong length".into())
            } else {
                None
            };
            let i = row(&mut rows, report::C_BIG, report::CURL);
            rows[i].samples.push(Sample {
                usage,
                requests,
                error,
            });
            // The same download made durable, as airlock-client makes every file it keeps:
            // curl, then `sync FILE` (coreutils: fsync of that one file).
            std::fs::remove_file(&out).with_context(|| format!("removing {}", out.display()))?;
            let script = "curl -sS --fail --cacert \"$1\" -o \"$2\" \"$3\" && sync \"$2\"";
            let curl_sync = vec![
                OsString::from("sh"),
                "-c".into(),
                script.into(),
                "sh".into(),
                bench.ca_file.clone().into_os_string(),
                out.clone().into_os_string(),
                url.clone().into(),
            ];
            let (usage, requests, log) = bench.measure(&curl_sync)?;
            let error = if usage.code != Some(0) {
                Some(last_line(&log))
            } else if !holds_file_of_len(dir.path(), big.target_len) {
                Some("curl wrote a file of the wrong length".into())
            } else {
                None
            };
            let i = row(&mut rows, report::C_BIG, report::CURL_SYNC);
            rows[i].samples.push(Sample {
                usage,
                requests,
                error,
            });
            let dgst = vec![
                OsString::from("openssl"),
                "dgst".into(),
                "-sha256".into(),
                out.into_os_string(),
            ];
            let (usage, requests, log) = bench.measure(&dgst)?;
            let error = if usage.code != Some(0) {
                Some(last_line(&log))
            } else if !log.trim_end().ends_with(&big.target_sha256) {
                Some(format!(
                    "digest differs from the listed one: {}",
                    log.trim()
                ))
            } else {
                None
            };
            let i = row(&mut rows, report::C_BIG, report::OPENSSL);
            rows[i].samples.push(Sample {
                usage,
                requests,
                error,
            });
            drop(dir);
        }
    }
    let instructions = if !args.callgrind {
        None
    } else if callgrind::available() {
        let url = |part: &str| bench.url(&flat, part);
        let counts = callgrind::measure(
            &airlock_client_path,
            &flat,
            &url,
            &bench.ca_file,
            bench.work.path(),
        )?;
        eprintln!("callgrind: {counts:?}");
        Some(counts)
    } else {
        eprintln!("valgrind is not installed: no instruction counts");
        None
    };
    machine.load_end = Machine::loadavg();

    let body = report::section(&report::Context {
        command: args.recorded_command.clone(),
        machine,
        versions,
        targets: args.targets,
        repeat: args.repeat,
        big_repeat: args.big_repeat,
        big_mib: args.big_mib,
        flat: flat.clone(),
        succinct: succinct.clone(),
        prefix: prefix.clone(),
        notes: std::fs::read_to_string(root.join("bench/update-bench/NOTES.md")).ok(),
        rows,
        instructions,
    });
    println!("{body}");
    if args.doc != "-" {
        let path = root.join(&args.doc);
        let doc = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let new = report::replace_section(&doc, &body)?;
        let tmp = path.with_extension("md.tmp");
        std::fs::write(&tmp, new).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &path).with_context(|| format!("replacing {}", path.display()))?;
        eprintln!("rewrote the Updating section of {}", path.display());
    }
    drop(bench);
    drop(served);
    Ok(())
}
