//! Issue 13's mirror benchmark: the time of a whole update (trust the root, refresh, download and
//! verify one target) through one healthy mirror, against the same update when the healthy
//! mirror comes last after four failing ones: down (nothing listens), stalled (accepts the
//! connection, never answers), HTTP 500 on everything, and hostile (honest metadata, other bytes
//! of the right length for the target). Every run is a fresh client in this process
//! (`airlock_client::Updater`), so the figures are the client's cost, not a process start.
//! Then the cost of resuming: the same update with the connection cut every quarter of the
//! target (resumed within the run), and a second run that goes on from the half file the first,
//! cut off for good, left on disk (its hash state rebuilt from those bytes).
//! Writes the "Mirrors: updating while most mirrors fail" section of docs/benchmarks.md.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use airlock_client::{Updater, UpdaterConfig};
use airlock_core::mirrors::Mirror;
use airlock_fetch::{Fetcher, FetcherConfig, Trust};
use airlock_serve::{ServerHandle, TestCa};
use anyhow::{Context, Result, bail};
use axum::http::StatusCode;

use crate::repo::Generator;
use crate::report::Machine;
use crate::server::CountingServer;

const HEADING: &str = "## Mirrors: updating while most mirrors fail";
const END_MARKER: &str = "<!-- end of mirrors section -->";

#[derive(clap::Args)]
pub struct MirrorArgs {
    /// Size of the target in MiB.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=65536))]
    mib: u64,
    /// Runs per scenario; the median is reported.
    #[arg(long, default_value_t = 5)]
    repeat: usize,
    /// Connect and read timeout of the client (what one stalled mirror costs).
    #[arg(long, default_value_t = 2)]
    timeout_secs: u64,
    /// Repository root (for docs/benchmarks.md).
    #[arg(long, default_value = ".")]
    repo_root: PathBuf,
    /// The document whose section is rewritten; "-" to only print.
    #[arg(long, default_value = "docs/benchmarks.md")]
    doc: String,
    /// The command line recorded in the document.
    #[arg(long, default_value = "./bench/run-mirrors")]
    recorded_command: String,
}

/// A listener that accepts connections and never answers (held until the process ends).
fn stalled_listener() -> Result<String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let url = format!("https://{}", listener.local_addr()?);
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming().flatten() {
            held.push(conn);
        }
    });
    Ok(url)
}

fn closed_port() -> Result<String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let url = format!("https://{}", listener.local_addr()?);
    drop(listener);
    Ok(url)
}

/// An HTTPS server answering 500 to everything.
fn failing_server(ca: &TestCa) -> Result<ServerHandle> {
    let identity = ca.issue_server_cert(&["127.0.0.1"])?;
    let app = axum::Router::new().fallback(|| async { StatusCode::INTERNAL_SERVER_ERROR });
    ServerHandle::https(app, &identity).context("starting the failing server")
}

fn mirror(name: &str, base: &str) -> Mirror {
    Mirror {
        name: name.into(),
        metadata_url: Some(format!("{base}/big/metadata/")),
        targets_url: Some(format!("{base}/big/targets/")),
        target_paths: Vec::new(),
    }
}

/// A TCP relay to `upstream` (TLS passes through untouched) that cuts connections: each one
/// after `per_connection` bytes towards the client, and all of them once `in_all` bytes went
/// through (later connections are closed at once).
fn cutting_relay(upstream: SocketAddr, per_connection: u64, in_all: u64) -> Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let url = format!("https://{}", listener.local_addr()?);
    let left = Arc::new(AtomicU64::new(in_all));
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let left = left.clone();
            std::thread::spawn(move || relay(client, upstream, per_connection, &left));
        }
    });
    Ok(url)
}

fn relay(client: TcpStream, upstream: SocketAddr, per_connection: u64, left: &AtomicU64) {
    let Ok(server) = TcpStream::connect(upstream) else {
        return;
    };
    let (Ok(mut up_in), Ok(mut client_out)) = (client.try_clone(), client.try_clone()) else {
        return;
    };
    let Ok(mut server_out) = server.try_clone() else {
        return;
    };
    // Client to server: untouched, until the connection goes.
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut up_in, &mut server_out);
        let _ = server_out.shutdown(Shutdown::Write);
    });
    let mut server_in = server;
    let mut budget = per_connection;
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let allowed = budget.min(left.load(Ordering::Relaxed));
        if allowed == 0 {
            break;
        }
        let want = buf
            .len()
            .min(usize::try_from(allowed).unwrap_or(usize::MAX));
        let n = match server_in.read(&mut buf[..want]) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if client_out.write_all(&buf[..n]).is_err() {
            break;
        }
        budget -= n as u64;
        let _ = left.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |l| {
            Some(l.saturating_sub(n as u64))
        });
    }
    let _ = client_out.shutdown(Shutdown::Both);
    let _ = server_in.shutdown(Shutdown::Both);
}

struct Outcome {
    wall: Duration,
    failures: usize,
    /// Bytes the download found on disk from an earlier run.
    resumed_from: u64,
}

fn update_once(
    root: &[u8],
    target: &str,
    fetcher: &Arc<Fetcher>,
    mirrors: &[Mirror],
) -> Result<Outcome> {
    let dir = tempfile::tempdir()?;
    update_in(dir.path(), root, target, fetcher, mirrors)
}

/// Partial download files beside `dest` (what an interrupted run leaves for the next).
fn held_beside(dest: &Path) -> u64 {
    let (Some(dir), Some(name)) = (dest.parent(), dest.file_name()) else {
        return 0;
    };
    let prefix = format!(".{}.", name.to_string_lossy());
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.starts_with(&prefix) && n.ends_with(".partial")
        })
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum()
}

/// One update in `dir`, whose client state (and partial target) may be there from a run before.
fn update_in(
    dir: &Path,
    root: &[u8],
    target: &str,
    fetcher: &Arc<Fetcher>,
    mirrors: &[Mirror],
) -> Result<Outcome> {
    let metadata = dir.join("metadata");
    let dest = dir.join("target");
    let resumed_from = held_beside(&dest);
    let started = Instant::now();
    if !metadata.join("root.json").exists() {
        Updater::init(&metadata, root)?;
    }
    let (first, rest) = mirrors.split_first().context("no mirror")?;
    let mut config = UpdaterConfig::new(
        &metadata,
        first.metadata_url.clone().unwrap_or_default(),
        fetcher.clone(),
    );
    config.targets_base_url.clone_from(&first.targets_url);
    config.mirrors = rest.to_vec();
    let mut updater = Updater::new(config)?;
    updater.refresh()?;
    let info = updater
        .get_target_info(target)?
        .context("the target is not listed")?;
    updater.download_target(&info, &dest)?;
    let wall = started.elapsed();
    let failures = updater
        .mirror_report()
        .iter()
        .flat_map(|m| &m.attempts)
        .filter(|a| a.failure.is_some())
        .count();
    Ok(Outcome {
        wall,
        failures,
        resumed_from,
    })
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

pub fn run(args: MirrorArgs) -> Result<()> {
    if args.repeat == 0 {
        bail!("--repeat must be at least 1");
    }
    let mut machine = Machine::read();
    let served = tempfile::tempdir()?;
    let generator = Generator::new(served.path(), 10, 0)?;
    let repo = generator.big(args.mib << 20)?;
    let root = std::fs::read(&repo.root_file)?;
    let ca = TestCa::new()?;
    let healthy = CountingServer::start(served.path(), &ca)?;
    // The hostile mirror: the same tree with the target's bytes changed, length kept.
    let hostile_dir = tempfile::tempdir()?;
    let copy = std::process::Command::new("cp")
        .arg("-a")
        .arg(served.path().join("big"))
        .arg(hostile_dir.path())
        .status()?;
    if !copy.success() {
        bail!("copying the repository for the hostile mirror failed");
    }
    let blob = generator.target_file(&repo);
    let rel = blob.strip_prefix(served.path())?;
    let hostile_blob = hostile_dir.path().join(rel);
    let mut bytes = std::fs::read(&hostile_blob)?;
    bytes[0] ^= 1;
    std::fs::remove_file(&hostile_blob)?;
    std::fs::write(&hostile_blob, &bytes)?;
    drop(bytes);
    let hostile = CountingServer::start(hostile_dir.path(), &ca)?;
    let failing = failing_server(&ca)?;
    let timeout = Duration::from_secs(args.timeout_secs);
    let fetcher = Arc::new(Fetcher::new(FetcherConfig {
        trust: Trust::CaBundlePem(ca.cert_pem().as_bytes().to_vec()),
        connect_timeout: timeout,
        read_timeout: timeout,
        retries: 0,
        ..FetcherConfig::default()
    })?);
    let healthy_url = healthy.server.url("").trim_end_matches('/').to_string();
    let scenarios: Vec<(&str, Vec<Mirror>)> = vec![
        ("one healthy mirror", vec![mirror("healthy", &healthy_url)]),
        (
            "down, stalled, HTTP 500, hostile, then healthy",
            vec![
                mirror("down", &closed_port()?),
                mirror("stalled", &stalled_listener()?),
                mirror("http-500", failing.url("").trim_end_matches('/')),
                mirror("hostile", hostile.server.url("").trim_end_matches('/')),
                mirror("healthy", &healthy_url),
            ],
        ),
    ];
    let mut rows = Vec::new();
    for (name, mirrors) in &scenarios {
        let mut walls = Vec::new();
        let mut failures = 0;
        for _ in 0..args.repeat {
            let o = update_once(&root, &repo.target, &fetcher, mirrors)
                .with_context(|| format!("scenario {name}"))?;
            walls.push(o.wall);
            failures = o.failures;
        }
        let (min, max) = (
            *walls.iter().min().unwrap_or(&Duration::ZERO),
            *walls.iter().max().unwrap_or(&Duration::ZERO),
        );
        rows.push((name.to_string(), median(&mut walls), min, max, failures));
        eprintln!("{name}: {:?}", rows.last().map(|r| r.1));
    }

    // Resuming. Cut every quarter of the target: three resumes within the run.
    let size = args.mib << 20;
    // The relay's own cost is in every row: the baseline goes through it uncut.
    let uncut = cutting_relay(healthy.server.addr(), u64::MAX, u64::MAX)?;
    let quarter_cut = cutting_relay(healthy.server.addr(), size / 4, u64::MAX)?;
    let mut resume_rows = Vec::new();
    for (name, url) in [
        ("uninterrupted, through the relay", &uncut),
        (
            "connection cut every quarter of the target, resumed in the same run",
            &quarter_cut,
        ),
    ] {
        let mirrors = [mirror(name, url)];
        let mut walls = Vec::new();
        for _ in 0..args.repeat {
            let o = update_once(&root, &repo.target, &fetcher, &mirrors)
                .with_context(|| format!("scenario: {name}"))?;
            walls.push(o.wall);
        }
        resume_rows.push((name.to_string(), median(&mut walls)));
    }
    // A first run cut off for good at half the target (after the metadata), then a second
    // run that goes on from the bytes on disk.
    {
        let mut walls = Vec::new();
        let mut held = 0;
        for _ in 0..args.repeat {
            let dir = tempfile::tempdir()?;
            let half = cutting_relay(healthy.server.addr(), u64::MAX, size / 2 + (64 << 10))?;
            let first = update_in(
                dir.path(),
                &root,
                &repo.target,
                &fetcher,
                &[mirror("cut off at half", &half)],
            );
            if first.is_ok() {
                bail!("the run cut off at half the target did not fail");
            }
            let o = update_in(
                dir.path(),
                &root,
                &repo.target,
                &fetcher,
                &[mirror("uncut", &uncut)],
            )
            .context("scenario: resume from a half file on disk")?;
            if o.resumed_from == 0 {
                bail!("the second run found no partial file to resume from");
            }
            held = o.resumed_from;
            walls.push(o.wall);
        }
        resume_rows.push((
            format!(
                "next run, going on from {:.1} MiB left on disk by a run cut off",
                held as f64 / f64::from(1 << 20)
            ),
            median(&mut walls),
        ));
    }
    for (name, wall) in &resume_rows {
        eprintln!("{name}: {wall:?}");
    }
    machine.load_end = Machine::loadavg();

    let mut s = String::new();
    s.push_str(&format!(
        "\nGenerated by the command below on {}; every figure is from that one run. Do not edit by hand.\n\n\
         ```sh\n{}\n```\n\n",
        machine.date, args.recorded_command
    ));
    s.push_str(&format!(
        "- Machine: {} CPUs, {} RAM, Linux {}; load average {} at the start, {} at the end.\n",
        machine.nproc, machine.mem, machine.kernel, machine.load_start, machine.load_end
    ));
    s.push_str(&format!(
        "- One update = trust the root, refresh, download and verify one {} MiB target, a fresh \
         client each time (in process). Client connect and read timeout {} s (what the stalled \
         mirror costs), no retries. Median of {} runs.\n\n",
        args.mib, args.timeout_secs, args.repeat
    ));
    s.push_str(
        "| mirrors, in the order asked | median | min–max | failed attempts |\n|---|---|---|---|\n",
    );
    for (name, med, min, max, failures) in &rows {
        s.push_str(&format!(
            "| {name} | {:.2} s | {:.2}–{:.2} s | {failures} |\n",
            med.as_secs_f64(),
            min.as_secs_f64(),
            max.as_secs_f64()
        ));
    }
    if let [(_, base, ..), (_, worst, ..)] = rows.as_slice() {
        s.push_str(&format!(
            "\nThe four failing mirrors add {:.2} s: the stalled one costs its timeout, the hostile \
             one a whole download of the target before its hash refuses it (its metadata is \
             honest, so the refresh itself succeeds there); the down and HTTP 500 mirrors cost \
             one round trip each. The hostile mirror is skipped for the rest of the run after \
             that.\n",
            (worst.as_secs_f64() - base.as_secs_f64()).max(0.0)
        ));
    }
    if let Some((_, base)) = resume_rows.first() {
        s.push_str(&format!(
            "\nResuming (same {} MiB target, the healthy mirror reached through a TCP relay on \
             127.0.0.1 that cuts connections; median of {} runs):\n\n\
             | download | median | against the uninterrupted update |\n|---|---|---|\n",
            args.mib, args.repeat,
        ));
        for (name, wall) in &resume_rows {
            s.push_str(&format!(
                "| {name} | {:.2} s | {:.2}x |\n",
                wall.as_secs_f64(),
                wall.as_secs_f64() / base.as_secs_f64().max(1e-9)
            ));
        }
        s.push_str(
            "\nA resume within a run costs a new TLS connection and a Range request; the hash \
             state is kept. A later run first reads back and hashes the bytes on disk, then \
             fetches only the rest, so it should take about half an uninterrupted update plus \
             the hashing of the half held.\n",
        );
    }
    if args.doc == "-" {
        print!("{HEADING}\n{s}");
        return Ok(());
    }
    let path = args.repo_root.join(&args.doc);
    let doc =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    std::fs::write(
        &path,
        crate::report::replace_or_append(&doc, HEADING, END_MARKER, &s),
    )
    .with_context(|| format!("writing {}", path.display()))?;
    eprintln!("wrote the mirrors section of {}", path.display());
    Ok(())
}
