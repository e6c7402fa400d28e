//! `update-bench transparency` (issue 11): what binary transparency costs.
//!
//! 1. Publishing: releases published one after another through `Repository::publish_logged`
//!    against a real log with two witnesses (airlock-testbed's `LocalTransparency`: the log and
//!    both witnesses served over HTTPS on 127.0.0.1, state fsynced on disk), each release adding
//!    one small target. Per release: the whole `publish_logged` call and, inside it, the time the
//!    `ReleaseLog` spends on the log (submit → covering cosigned checkpoint → bundles fetched),
//!    plus the offline verification of the bundle timed apart (the same `ReleaseCheck` the
//!    publisher runs). Two waits alternate release by release: the CLI's (`LogClient`'s
//!    `wait_published`, which polls the checkpoint after 5, 10, 20, 40, 80 ms, then every
//!    100 ms) and a fixed 5 ms poll of the same endpoint, which shows what the log and
//!    witnesses themselves take.
//! 2. The client: the updating benchmark's flat and succinct-bins workloads with the policy on
//!    and off, generated in the same run, served by the same server, runs interleaved.
//!
//! The section "Transparency: publishing and verification cost" of docs/benchmarks.md is
//! rewritten; hand-written analysis comes from `NOTES-transparency.md` beside this crate.

use std::cell::RefCell;
use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use airlock_core::tlog::{Checkpoint, Note, VerifierState};
use airlock_core::transparency::{ReleaseCheck, ReleaseStep, TransparencyPolicy};
use airlock_core::tuf::SuccinctRoles;
use airlock_fetch::{Fetcher, FetcherConfig, Trust};
use airlock_log::client::LogClient;
use airlock_repo::{
    AddOptions, AddSource, InitOptions, Protection, ReleaseLog, ReleaseLogError, Repository,
    TargetFiles, TargetName,
};
use airlock_serve::TestCa;
use airlock_testbed::LocalTransparency;
use anyhow::{Context, Result, bail};

use crate::repo::{Generator, Layout, ReleaseLogging, Repo};
use crate::report::{Machine, Sample, median};
use crate::server::CountingServer;
use crate::{Bench, Mode, Peer};

pub const HEADING: &str = "## Transparency: publishing and verification cost";
pub const END_MARKER: &str = "<!-- end of transparency cost section -->";

/// How long a publish waits at most for a covering checkpoint (`[release_log] timeout`'s
/// default).
const LOG_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(clap::Args)]
pub struct TlogArgs {
    /// Repository root (for docs/benchmarks.md, bench/ files and the git commit).
    #[arg(long, default_value = ".")]
    repo_root: PathBuf,
    /// The document whose transparency cost section is rewritten; "-" to only print.
    #[arg(long, default_value = "docs/benchmarks.md")]
    doc: String,
    /// The command line to record in the document.
    #[arg(long, default_value = "./bench/run-transparency")]
    recorded_command: String,
    /// Releases published per wait strategy (they alternate).
    #[arg(long, default_value_t = 100)]
    releases: usize,
    /// Poll interval of the fast wait, in ms.
    #[arg(long, default_value_t = 5)]
    poll_ms: u64,
    /// Number of small targets in the client workloads.
    #[arg(long, default_value_t = 100_000)]
    targets: usize,
    /// Client runs per workload, policy and mode (median reported).
    #[arg(long, default_value_t = 15)]
    repeat: usize,
    /// Iterations of the in-process verification timing.
    #[arg(long, default_value_t = 200)]
    verify_iterations: usize,
    /// Skip the publishing part (profiling the client).
    #[arg(long)]
    skip_publish: bool,
    /// Also run the client with its directories on /dev/shm (tmpfs), where fsync is free, to
    /// show how much of the added time is the durable write of its log state.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    tmpfs_variant: bool,
}

/// Where one logged release's time went.
#[derive(Clone, Copy, Debug, Default)]
struct LogTiming {
    /// `POST /add` of every statement until each was acknowledged as durable.
    submit: Duration,
    /// From the last acknowledgement until the published (cosigned) checkpoint covered it.
    checkpoint: Duration,
    /// `GET /proof/<i>` of every bundle.
    proofs: Duration,
    statements: usize,
}

impl LogTiming {
    fn total(&self) -> Duration {
        self.submit + self.checkpoint + self.proofs
    }
}

/// The publisher's side of the log, as the CLI wires it (`LogClient`: submit each statement,
/// wait for a covering published checkpoint, fetch each bundle), timing each step.
/// `poll: None` waits with `LogClient::wait_published` exactly as `log_entries` does.
struct TimedLog {
    client: LogClient,
    poll: Option<Duration>,
    last: RefCell<Vec<LogTiming>>,
}

impl TimedLog {
    fn published_size(&self) -> Result<u64> {
        let bytes = self.client.checkpoint()?;
        let note = Note::parse(&bytes).context("the log's checkpoint is not a note")?;
        Ok(Checkpoint::parse_text(note.text())
            .context("the log's checkpoint")?
            .size)
    }

    fn wait(&self, index: u64) -> Result<()> {
        let Some(poll) = self.poll else {
            self.client.wait_published(index)?;
            return Ok(());
        };
        let deadline = Instant::now() + LOG_TIMEOUT;
        while self.published_size()? <= index {
            if Instant::now() > deadline {
                bail!("no checkpoint covered entry {index} within {LOG_TIMEOUT:?}");
            }
            std::thread::sleep(poll);
        }
        Ok(())
    }
}

impl ReleaseLog for TimedLog {
    fn log(
        &self,
        policy: &TransparencyPolicy,
        statements: &[Vec<u8>],
    ) -> Result<Vec<Vec<u8>>, ReleaseLogError> {
        let t0 = Instant::now();
        let mut indexes = Vec::with_capacity(statements.len());
        for s in statements {
            indexes.push(self.client.submit(policy.log_origin(), s)?.index);
        }
        let t1 = Instant::now();
        if let Some(max) = indexes.iter().max() {
            self.wait(*max)?;
        }
        let t2 = Instant::now();
        let bundles = indexes
            .iter()
            .map(|i| self.client.proof(*i))
            .collect::<Result<Vec<_>, _>>()?;
        let t3 = Instant::now();
        self.last.borrow_mut().push(LogTiming {
            submit: t1 - t0,
            checkpoint: t2 - t1,
            proofs: t3 - t2,
            statements: statements.len(),
        });
        Ok(bundles)
    }

    fn describe(&self, policy: &TransparencyPolicy) -> String {
        format!("log {} at {}", policy.log_origin(), self.client.url())
    }
}

/// A policy naming the testbed's log and requiring both of its witnesses.
fn policy_for(net: &LocalTransparency, repository: &str) -> Result<TransparencyPolicy> {
    let mut text = format!("log {} {}\n", net.log_verifier().to_vkey(), net.log_url());
    let mut names = Vec::new();
    for (i, w) in net.witness_verifiers().iter().enumerate() {
        text.push_str(&format!("witness w{i} {}\n", w.to_vkey()));
        names.push(format!("w{i}"));
    }
    text.push_str(&format!("group all all {}\nquorum all\n", names.join(" ")));
    TransparencyPolicy::new(repository, &text).context("the benchmark's policy")
}

/// A `LogClient` for the testbed's log, with the transport the CLI builds from
/// `[release_log] ca_file` (`FetcherConfig::default()` trusting the testbed CA).
fn log_client(net: &LocalTransparency) -> Result<LogClient> {
    let fetcher = Fetcher::new(FetcherConfig {
        trust: Trust::CaBundlePem(net.ca_pem.clone()),
        ..FetcherConfig::default()
    })?;
    let signer = airlock_core::tlog::NoteSigner::from_skey(&net.publisher.to_skey())
        .context("the testbed's publisher key")?;
    Ok(LogClient::new(
        &net.log_url(),
        Arc::new(fetcher),
        signer,
        LOG_TIMEOUT,
    ))
}

/// One release: the figures of [`publish_releases`].
#[derive(Clone, Copy, Debug)]
struct Release {
    log: LogTiming,
    publish: Duration,
    add: Duration,
    verify: Duration,
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `releases` releases per wait strategy (alternating: CLI's, then fast), into one repository.
fn publish_releases(
    net: &LocalTransparency,
    releases: usize,
    poll: Duration,
) -> Result<[Vec<Release>; 2]> {
    let policy = policy_for(net, "bench.example/app")?;
    let tmp = tempfile::Builder::new()
        .prefix("airlock-tlog-bench-publish")
        .tempdir()?;
    let mut repo = Repository::init(
        &tmp.path().join("repo"),
        &InitOptions::simple(Protection::PlaintextForTests),
    )?;
    repo.set_transparency(Some(&policy))?;
    let logs = [
        TimedLog {
            client: log_client(net)?,
            poll: None,
            last: RefCell::new(Vec::new()),
        },
        TimedLog {
            client: log_client(net)?,
            poll: Some(poll),
            last: RefCell::new(Vec::new()),
        },
    ];
    let src = tmp.path().join("src");
    std::fs::create_dir_all(&src)?;
    let no_progress = |_: u64, _: u64| {};
    let mut out: [Vec<Release>; 2] = [Vec::new(), Vec::new()];
    // Release 0 (root v1, targets v1) is set-up, not counted.
    for i in 0..=(2 * releases) {
        let which = i % 2;
        let name = format!("app/release-{i:04}.txt");
        let file = src.join(format!("release-{i:04}.txt"));
        std::fs::write(&file, format!("release {i}\n"))?;
        let t = Instant::now();
        repo.add_targets(
            &[AddSource {
                path: file,
                target: TargetName::Exact(name),
            }],
            &AddOptions::default(),
            &no_progress,
        )?;
        let add = t.elapsed();
        let log = &logs[which];
        log.last.borrow_mut().clear();
        let t = Instant::now();
        repo.publish_logged(TargetFiles::Copy, Some(log), &no_progress)
            .with_context(|| format!("publishing release {i}"))?;
        let publish = t.elapsed();
        let timings = log.last.borrow().clone();
        let [timing] = timings.as_slice() else {
            bail!("release {i}: expected one log call, saw {}", timings.len());
        };
        // The bundle check the publisher made, timed apart (same bytes, same policy).
        let version = repo
            .targets_role("targets")
            .context("no targets role")?
            .signed
            .version;
        let dir = repo.published_path().join("metadata");
        let bytes = std::fs::read(dir.join(format!("{version}.targets.json")))?;
        let bundle = std::fs::read(dir.join(format!("{version}.targets.json.tlog-proof")))?;
        let t = Instant::now();
        let step = ReleaseCheck::new(&policy, "targets", version, &bytes).verify(
            &VerifierState::new(),
            Some(&bundle),
            None,
            now_secs(),
        )?;
        let verify = t.elapsed();
        if !matches!(step, ReleaseStep::Accepted(_)) {
            bail!("release {i}: the published bundle did not verify on its own");
        }
        if i == 0 {
            continue;
        }
        out[which].push(Release {
            log: *timing,
            publish,
            add,
            verify,
        });
        if i % 20 == 0 {
            eprintln!("published {i}/{}", 2 * releases);
        }
    }
    Ok(out)
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted
        .get(rank.clamp(1, sorted.len()) - 1)
        .copied()
        .unwrap_or(f64::NAN)
}

fn sorted_ms(v: impl Iterator<Item = Duration>) -> Vec<f64> {
    let mut v: Vec<f64> = v.map(|d| d.as_secs_f64() * 1e3).collect();
    v.sort_by(f64::total_cmp);
    v
}

fn ms(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0} ms")
    } else if v >= 10.0 {
        format!("{v:.1} ms")
    } else {
        format!("{v:.2} ms")
    }
}

/// `| what | p50 | p99 | max |` for one series.
fn pct_row(what: &str, v: &[f64]) -> String {
    format!(
        "| {what} | {} | {} | {} |\n",
        ms(percentile(v, 50.0)),
        ms(percentile(v, 99.0)),
        ms(v.last().copied().unwrap_or(f64::NAN)),
    )
}

/// In-process cost of the client's check of one file: the statement (SHA-256 of the file) and
/// the bundle verification (log signature, two cosignatures, inclusion proof), medians in ms.
fn verify_cost(
    policy: &TransparencyPolicy,
    role: &str,
    bytes: &[u8],
    bundle: &[u8],
    n: usize,
) -> Result<(f64, f64)> {
    let mut hash = Vec::with_capacity(n);
    let mut verify = Vec::with_capacity(n);
    let now = now_secs();
    for _ in 0..n.max(1) {
        let t = Instant::now();
        let check = ReleaseCheck::new(policy, role, 1, bytes);
        hash.push(t.elapsed());
        let t = Instant::now();
        let step = check.verify(&VerifierState::new(), Some(bundle), None, now)?;
        verify.push(t.elapsed());
        if !matches!(step, ReleaseStep::Accepted(_)) {
            bail!("{role}: the bundle did not verify");
        }
    }
    Ok((
        median(&sorted_ms(hash.into_iter())),
        median(&sorted_ms(verify.into_iter())),
    ))
}

/// A client workload with the policy off and on.
struct Pair<'a> {
    label: &'static str,
    off: &'a Repo,
    on: &'a Repo,
    /// The file checked against the log in a cold run besides targets.json (the bin).
    bin: Option<String>,
}

#[derive(Default)]
struct Cell {
    samples: Vec<Sample>,
}

impl Cell {
    fn ok(&self) -> impl Iterator<Item = &Sample> {
        self.samples.iter().filter(|s| s.error.is_none())
    }
    fn wall_ms(&self) -> f64 {
        median(&sorted_ms(
            self.ok().map(|s| Duration::from_secs_f64(s.usage.wall_s)),
        ))
    }
    /// `min–max` of the wall times: how far apart runs of one cell are on this machine.
    fn wall_range(&self) -> String {
        let v = sorted_ms(self.ok().map(|s| Duration::from_secs_f64(s.usage.wall_s)));
        match (v.first(), v.last()) {
            (Some(a), Some(b)) => format!("{}–{}", ms(*a), ms(*b)),
            _ => "n/a".into(),
        }
    }
    fn cpu_ms(&self) -> f64 {
        median(&sorted_ms(self.ok().map(|s| {
            Duration::from_secs_f64(s.usage.user_s + s.usage.sys_s)
        })))
    }
    fn requests(&self) -> String {
        let mut r: Vec<u64> = self.ok().map(|s| s.requests).collect();
        r.sort_unstable();
        r.dedup();
        r.iter().map(u64::to_string).collect::<Vec<_>>().join("/")
    }
    fn errors(&self) -> Option<String> {
        let failed: Vec<&Sample> = self.samples.iter().filter(|s| s.error.is_some()).collect();
        failed.first().map(|s| {
            format!(
                "{} of {} runs failed: `{}`",
                failed.len(),
                self.samples.len(),
                s.error.clone().unwrap_or_default()
            )
        })
    }
}

pub fn run(args: TlogArgs) -> Result<()> {
    let root = args.repo_root.canonicalize().context("repository root")?;
    let self_exe = std::env::current_exe().context("locating update-bench")?;
    let client_exe = self_exe.with_file_name("airlock-bench-client");
    if !client_exe.is_file() {
        bail!(
            "{} is missing: build update-bench's binaries",
            client_exe.display()
        );
    }
    let mut machine = Machine::read();
    let commit = crate::command_output(
        "git",
        &[
            "-C",
            &root.to_string_lossy(),
            "rev-parse",
            "--short",
            "HEAD",
        ],
    );
    let dirty = !crate::command_output(
        "git",
        &[
            "-C",
            &root.to_string_lossy(),
            "status",
            "--porcelain",
            "--untracked-files=no",
        ],
    )
    .is_empty();
    let rustc = crate::command_output("rustc", &["-V"]);

    eprintln!("starting the log and 2 witnesses …");
    let net = LocalTransparency::start(2).context("starting the local log and witnesses")?;
    let poll = Duration::from_millis(args.poll_ms);
    let published = if args.skip_publish {
        None
    } else {
        eprintln!("publishing {} releases per wait …", args.releases);
        Some(publish_releases(&net, args.releases, poll)?)
    };

    // Client workloads, policy off and on, logged in the same log.
    let policy = policy_for(&net, "bench.example/updates")?;
    let client = log_client(&net)?;
    let logging = ReleaseLogging {
        policy: &policy,
        client: &client,
    };
    let served = tempfile::Builder::new()
        .prefix("airlock-tlog-bench-repo")
        .tempdir()?;
    let work = tempfile::Builder::new()
        .prefix("airlock-tlog-bench-work")
        .tempdir()?;
    eprintln!(
        "generating repositories with {} targets (policy off and on) …",
        args.targets
    );
    let chosen = (args.targets / 2 + 345).min(args.targets.saturating_sub(1));
    let generator = Generator::new(served.path(), args.targets, chosen)?;
    let flat = generator.small(Layout::Flat)?;
    let flat_on = generator.small_logged(Layout::Flat, Some(&logging))?;
    let succinct = generator.small(Layout::Succinct)?;
    let succinct_on = generator.small_logged(Layout::Succinct, Some(&logging))?;
    let bin = SuccinctRoles::new(Vec::new(), 1, 8, "bin").bin_for_target(&succinct.target);
    let pairs = [
        Pair {
            label: "flat (one targets.json)",
            off: &flat,
            on: &flat_on,
            bin: None,
        },
        Pair {
            label: "256 succinct bins",
            off: &succinct,
            on: &succinct_on,
            bin: Some(bin.clone()),
        },
    ];

    // In-process cost of each check a cold run makes.
    let mut inproc = Vec::new();
    for p in &pairs {
        let dir = served.path().join(&p.on.name).join("metadata");
        let mut roles = vec!["targets".to_string()];
        roles.extend(p.bin.clone());
        for role in roles {
            let bytes = std::fs::read(dir.join(format!("1.{role}.json")))?;
            let bundle = std::fs::read(dir.join(format!("1.{role}.json.tlog-proof")))?;
            let (hash, verify) =
                verify_cost(&policy, &role, &bytes, &bundle, args.verify_iterations)?;
            inproc.push((
                format!("{}: `1.{role}.json`", p.label),
                bytes.len(),
                bundle.len(),
                hash,
                verify,
            ));
        }
    }

    let ca = TestCa::new().context("test CA")?;
    let ca_file = ca.write_ca_pem(work.path()).context("writing the CA")?;
    let server = CountingServer::start(served.path(), &ca)?;
    let mut bench = Bench {
        self_exe,
        server,
        ca_file,
        work,
        runs: 0,
    };
    let mut peers = vec![Peer {
        name: "airlock-client".into(),
        program: client_exe.into_os_string(),
        before: Vec::<OsString>::new(),
        after: Vec::new(),
        dir_root: None,
    }];
    let tmpfs = PathBuf::from("/dev/shm");
    if args.tmpfs_variant && tmpfs.is_dir() {
        let mut p = peers[0].clone();
        p.name = crate::report::AIRLOCK_TMPFS.into();
        p.dir_root = Some(tmpfs);
        peers.push(p);
    }
    // cells[peer][pair][mode][policy]
    let mut cells: Vec<Vec<[[Cell; 2]; 2]>> = peers
        .iter()
        .map(|_| pairs.iter().map(|_| Default::default()).collect())
        .collect();
    for r in 0..args.repeat {
        for (ci, peer) in peers.iter().enumerate() {
            for (pi, p) in pairs.iter().enumerate() {
                // Alternate which goes first, so that neither always runs right after the other.
                let order = if r % 2 == 0 { [0, 1] } else { [1, 0] };
                for on in order {
                    let repo = if on == 1 { p.on } else { p.off };
                    eprintln!(
                        "{} / {}, policy {}: run {}/{}",
                        peer.name,
                        p.label,
                        if on == 1 { "on" } else { "off" },
                        r + 1,
                        args.repeat
                    );
                    let dir = crate::tempdir_for(peer, &bench)?;
                    let cold = bench.run_peer(peer, Mode::Cold, repo, dir.path())?;
                    let cold_ok = cold.error.is_none();
                    cells[ci][pi][0][on].samples.push(cold);
                    if cold_ok {
                        let warm = bench.run_peer(peer, Mode::Warm, repo, dir.path())?;
                        cells[ci][pi][1][on].samples.push(warm);
                    }
                }
            }
        }
    }
    machine.load_end = Machine::loadavg();

    let body = section(&SectionContext {
        args: &args,
        machine: &machine,
        commit: format!(
            "{commit}{}",
            if dirty {
                " (with uncommitted changes)"
            } else {
                ""
            }
        ),
        rustc,
        published: published.as_ref(),
        poll,
        pairs: &pairs,
        peers: &peers,
        cells: &cells,
        inproc: &inproc,
        notes: std::fs::read_to_string(root.join("bench/update-bench/NOTES-transparency.md")).ok(),
    });
    println!("{body}");
    if args.doc != "-" {
        let path = root.join(&args.doc);
        let doc = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let new = replace_or_append(&doc, &body);
        let tmp = path.with_extension("md.tmp");
        std::fs::write(&tmp, new).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &path).with_context(|| format!("replacing {}", path.display()))?;
        eprintln!(
            "rewrote the transparency cost section of {}",
            path.display()
        );
    }
    drop(bench);
    drop(served);
    drop(net);
    Ok(())
}

struct SectionContext<'a> {
    args: &'a TlogArgs,
    machine: &'a Machine,
    commit: String,
    rustc: String,
    published: Option<&'a [Vec<Release>; 2]>,
    poll: Duration,
    pairs: &'a [Pair<'a>],
    peers: &'a [Peer],
    cells: &'a [Vec<[[Cell; 2]; 2]>],
    inproc: &'a [(String, usize, usize, f64, f64)],
    notes: Option<String>,
}

fn section(cx: &SectionContext<'_>) -> String {
    let m = cx.machine;
    let mut s = String::new();
    s.push_str(&format!(
        "\nGenerated by the command below on {}; every figure is from that one run. Do not edit by hand:\n\
         re-run the command (hand-written notes live in `bench/update-bench/NOTES-transparency.md`).\n\n\
         ```sh\n{}\n```\n\n",
        m.date, cx.args.recorded_command
    ));
    s.push_str(&format!(
        "- Machine: {} CPUs ({}), {} RAM, Linux {}; shared with other builds, load average {} at \
         the start, {} at the end.\n",
        m.nproc,
        short_cpu(&m.cpu),
        m.mem,
        m.kernel,
        m.load_start,
        m.load_end
    ));
    s.push_str(&format!(
        "- Code: commit {}, release build, {}.\n",
        cx.commit, cx.rustc
    ));
    s.push_str(
        "- Log and witnesses: airlock-testbed's `LocalTransparency`, in the benchmark's process: \
         `airlock-log`'s `Log` with an `FsTileStore` and two `airlock-witness` witnesses, each served \
         over HTTPS (rustls, test CA) on 127.0.0.1, state on disk under $TMPDIR (ext4), every write \
         fsynced. Settings as `airlock log serve` defaults: `max_batch = 65536`, \
         `witness_timeout_secs = 10`; the log has no batch interval (the sequencer commits whatever \
         is queued, signs, and the publisher thread asks both witnesses in parallel and publishes \
         the checkpoint once they answered). Policy: 2 witnesses, quorum 2 (`group all all w0 w1`, \
         `quorum all`).\n",
    );
    if let Some([cli, fast]) = cx.published {
        let n = cli.len();
        s.push_str(&format!(
            "\n**Publishing: {n} releases per wait, one after another, through \
             `Repository::publish_logged`**\n\n\
             Each release adds one small target (`add_targets`, not counted below) and publishes: \
             a new `targets.json` (1 statement logged; root v1 was logged by a first, uncounted \
             publish), snapshot and timestamp, with the bundle written beside `N.targets.json`. \
             Keys are plaintext files (`Protection::PlaintextForTests`): no passphrase KDF in the \
             figures. The two waits alternate release by release in one repository and one log: \
             \"CLI wait\" is `LogClient::wait_published` as `airlock repo publish` uses it (reads \
             `GET /checkpoint` after 5, 10, 20, 40 and 80 ms, then every 100 ms: `poll_pause` in \
             `airlock-log/src/client.rs`); \"{} ms poll\" polls the same endpoint every {} ms and \
             shows what the log and witnesses take.\n\n",
            cx.poll.as_millis(),
            cx.poll.as_millis()
        ));
        s.push_str("| Per release | p50 | p99 | max |\n|---|---|---|---|\n");
        for (label, v) in [
            ("CLI wait", cli),
            (&*format!("{} ms poll", cx.poll.as_millis()), fast),
        ] {
            s.push_str(&pct_row(
                &format!("{label}: waiting on the log and witnesses (submit → covering cosigned checkpoint → bundle fetched)"),
                &sorted_ms(v.iter().map(|r| r.log.total())),
            ));
            s.push_str(&pct_row(
                &format!("{label}: of which `POST /add` until acknowledged (durable)"),
                &sorted_ms(v.iter().map(|r| r.log.submit)),
            ));
            s.push_str(&pct_row(
                &format!("{label}: of which acknowledged → covering cosigned checkpoint published"),
                &sorted_ms(v.iter().map(|r| r.log.checkpoint)),
            ));
            s.push_str(&pct_row(
                &format!("{label}: of which `GET /proof/<i>`"),
                &sorted_ms(v.iter().map(|r| r.log.proofs)),
            ));
            s.push_str(&pct_row(
                &format!("{label}: the whole `publish_logged`"),
                &sorted_ms(v.iter().map(|r| r.publish)),
            ));
            s.push_str(&pct_row(
                &format!("{label}: publish without the log wait"),
                &sorted_ms(v.iter().map(|r| r.publish.saturating_sub(r.log.total()))),
            ));
        }
        let all: Vec<&Release> = cli.iter().chain(fast.iter()).collect();
        s.push_str(&pct_row(
            "both: offline check of the bundle (`ReleaseCheck`, as publish runs it before writing)",
            &sorted_ms(all.iter().map(|r| r.verify)),
        ));
        s.push_str(&pct_row(
            "both: `add_targets` of the release's file (before publish, not in the rows above)",
            &sorted_ms(all.iter().map(|r| r.add)),
        ));
        let statements: usize = all.iter().map(|r| r.log.statements).sum();
        s.push_str(&format!(
            "\n{} statements logged in {} releases.\n",
            statements,
            all.len()
        ));
    }

    s.push_str(&format!(
        "\n**Client: the updating benchmark's workloads with the policy off and on**\n\n\
         Same generator as the Updating section (`bench/update-bench/src/repo.rs`, {} targets, \
         Ed25519, consistent snapshots); the \"on\" repositories differ only in root carrying the \
         policy (`x-airlock-transparency`) and a `.tlog-proof` bundle beside every targets role \
         (logged in the same log during generation, all roles of a repository in one batch, as one \
         publish logs them). Both served by one airlock-serve HTTPS server; `airlock-bench-client` \
         (public `Updater` API) as a child process; {} runs per cell, policy on and off \
         interleaved (alternating which goes first); median wall time and CPU (user+sys). Cold = \
         init + refresh + download of one target into an empty directory; warm = refresh right \
         after. The bundles need no request to the log: the client fetches each beside its \
         metadata and checks it offline.\n\n",
        cx.args.targets, cx.args.repeat
    ));
    s.push_str(
        "| Client | Workload | Run | Policy off: wall (min–max) / CPU | Policy on: wall (min–max) / CPU | Added wall (share) | Added CPU (share) | Requests off → on |\n\
         |---|---|---|---|---|---|---|---|\n",
    );
    let mut aims = Vec::new();
    for (ci, peer) in cx.peers.iter().enumerate() {
        for (p, cell) in cx.pairs.iter().zip(&cx.cells[ci]) {
            for (mi, mode) in ["cold", "warm"].iter().enumerate() {
                let [off, on] = &cell[mi];
                let (w0, w1, c0, c1) = (off.wall_ms(), on.wall_ms(), off.cpu_ms(), on.cpu_ms());
                s.push_str(&format!(
                    "| {} | {} | {mode} | {} ({}) / {} | {} ({}) / {} | {} ({}) | {} ({}) | {} → {} |\n",
                    peer.name,
                    p.label,
                    ms(w0),
                    off.wall_range(),
                    ms(c0),
                    ms(w1),
                    on.wall_range(),
                    ms(c1),
                    signed_ms(w1 - w0),
                    share(w1 - w0, w0),
                    signed_ms(c1 - c0),
                    share(c1 - c0, c0),
                    off.requests(),
                    on.requests(),
                ));
                for c in [off, on] {
                    if let Some(e) = c.errors() {
                        s.push_str(&format!("| | | | **{e}** | | | | |\n"));
                    }
                }
                if ci == 0 {
                    aims.push((format!("{}, {mode}", p.label), w1 - w0, c1 - c0));
                }
            }
        }
    }
    s.push_str(
        "\n**In-process cost of the client's check, per file** (median of repeated calls in the \
         benchmark process, no I/O): the statement is built from the SHA-256 of the file's exact \
         bytes (`ReleaseCheck::new`); the bundle check verifies the log's Ed25519 checkpoint \
         signature, the two witnesses' cosignatures and the inclusion proof \
         (`ReleaseCheck::verify`, empty client state as in a cold run).\n\n\
         | File | Size | Bundle | Statement (SHA-256) | Bundle check |\n|---|---|---|---|---|\n",
    );
    for (what, size, bundle, hash, verify) in cx.inproc {
        s.push_str(&format!(
            "| {what} | {} | {bundle} B | {} | {} |\n",
            human_bytes(*size),
            ms(*hash),
            ms(*verify)
        ));
    }
    s.push_str("\n**Aim (issue 11): under 5 ms added to a client refresh**\n\n");
    s.push_str(
        "| Workload, run | Added (median wall; CPU) | Met? (on wall time) |\n|---|---|---|\n",
    );
    for (what, w, c) in aims {
        s.push_str(&format!(
            "| {what} | {}; CPU {} | {} |\n",
            signed_ms(w),
            signed_ms(c),
            if w < 5.0 { "yes" } else { "**no**" }
        ));
    }
    if let Some(notes) = &cx.notes {
        s.push('\n');
        s.push_str(notes.trim_end());
        s.push('\n');
    }
    s.push('\n');
    s
}

fn short_cpu(cpu: &str) -> String {
    if cpu.contains("EPYC") {
        "AMD EPYC".into()
    } else {
        cpu.to_string()
    }
}

fn signed_ms(v: f64) -> String {
    if v < 0.0 {
        format!("−{}", ms(-v))
    } else {
        format!("+{}", ms(v))
    }
}

fn share(diff: f64, base: f64) -> String {
    if base > 0.0 {
        format!("{:+.0}%", 100.0 * diff / base)
    } else {
        "n/a".into()
    }
}

fn human_bytes(n: usize) -> String {
    if n >= 1 << 20 {
        format!("{:.1} MiB", n as f64 / f64::from(1u32 << 20))
    } else if n >= 1 << 10 {
        format!("{:.1} KiB", n as f64 / 1024.0)
    } else {
        format!("{n} B")
    }
}

/// The document with this section's body replaced, or the section appended when it has none.
fn replace_or_append(doc: &str, body: &str) -> String {
    crate::report::replace_or_append(doc, HEADING, END_MARKER, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn p99_of_100_releases_is_the_99th_smallest() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&v[..1], 99.0), 1.0);
    }

    #[test]
    fn the_section_is_appended_once_then_replaced_in_place() {
        let doc = "# Benchmarks\n\n## Other\n\ntext\n";
        let first = replace_or_append(doc, "\nbody one\n");
        assert!(first.starts_with(doc.trim_end()));
        assert_eq!(first.matches(HEADING).count(), 1);
        let second = replace_or_append(&first, "\nbody two\n");
        assert_eq!(second.matches(HEADING).count(), 1);
        assert_eq!(second.matches(END_MARKER).count(), 1);
        assert!(second.contains("body two") && !second.contains("body one"));
        assert!(second.contains("## Other\n\ntext"));
    }
}
