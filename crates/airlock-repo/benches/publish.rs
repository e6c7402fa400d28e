//! Publishing benchmark: 100,000 small targets (a) in one targets.json and (b) in 256 TAP 15
//! succinct hash bins, airlock against python-tuf's repository API (`tuf.api.metadata`) doing
//! the same work on the same files in the same run.
//!
//! Run: `cargo bench -p airlock-repo --bench publish` (add `AIRLOCK_BENCH_WRITE_DOCS=1` to write
//! the figures into docs/benchmarks.md). `AIRLOCK_BENCH_TARGETS` (default 100000) and
//! `AIRLOCK_BENCH_RUNS` (default 3, the median is reported) change the size; `AIRLOCK_PYTHON`
//! names the Python with python-tuf (default: the repository's `.venv`).
//!
//! Each measurement is a separate child process (this binary re-executed with `--child`, or
//! Python), so wall time includes start-up and peak memory is the child's own high-water mark
//! (VmHWM for airlock, `ru_maxrss` for Python).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use airlock_core::crypto::KeyScheme;
use airlock_repo::{
    AddOptions, AddSource, BinDelegation, InitOptions, KeySource, Protection, Repository,
    TargetFiles, TargetName,
};

const PYTHON_SCRIPT: &str = r#"
import hashlib, json, os, resource, sys, time
from datetime import datetime, timedelta, timezone
from securesystemslib.signer import CryptoSigner
from tuf.api.metadata import (Delegations, MetaFile, Metadata, Root, Snapshot, SuccinctRoles,
                              TargetFile, Targets, Timestamp)
from tuf.api.serialization.json import JSONSerializer

layout, hashing, src, out = sys.argv[1], sys.argv[2] == "hash", sys.argv[3], sys.argv[4]

def walk(src):
    files = []
    for dirpath, dirnames, filenames in os.walk(src):
        dirnames.sort()
        for f in sorted(filenames):
            full = os.path.join(dirpath, f)
            files.append((os.path.relpath(full, src).replace(os.sep, "/"), full))
    return files

pre = None
if not hashing:
    # Outside the timed part: list and hash the files first.
    pre = []
    for name, full in walk(src):
        with open(full, "rb") as fh:
            data = fh.read()
        pre.append((name, len(data), hashlib.sha256(data).hexdigest()))

start = time.perf_counter()
ru0 = resource.getrusage(resource.RUSAGE_SELF)
expires = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(days=7)
signers = {r: CryptoSigner.generate_ed25519() for r in ("root", "targets", "snapshot", "timestamp", "bins")}
root = Metadata(Root(expires=expires))
for r in ("root", "targets", "snapshot", "timestamp"):
    root.signed.add_key(signers[r].public_key, r)
targets = Metadata(Targets(expires=expires))
roles = {"targets": targets}
succinct = None
if layout == "bins":
    succinct = SuccinctRoles(keyids=[], threshold=1, bit_length=8, name_prefix="bin")
    targets.signed.delegations = Delegations(keys={}, roles=None, succinct_roles=succinct)
    targets.signed.add_key(signers["bins"].public_key)
    for name in succinct.get_roles():
        roles[name] = Metadata(Targets(expires=expires))

def place(name):
    if succinct is not None:
        return roles[succinct.get_role_for_target(name)]
    return targets

if hashing:
    for name, full in walk(src):
        place(name).signed.targets[name] = TargetFile.from_file(name, full)
else:
    for name, length, sha in pre:
        place(name).signed.targets[name] = TargetFile(length, {"sha256": sha}, name)

os.makedirs(out)
ser = JSONSerializer(compact=True)
snapshot = Metadata(Snapshot(expires=expires))
for rname, md in roles.items():
    md.sign(signers["targets"] if rname == "targets" else signers["bins"])
    md.to_file(os.path.join(out, f"1.{rname}.json"), serializer=ser)
    snapshot.signed.meta[f"{rname}.json"] = MetaFile(version=1)
root.sign(signers["root"])
root.to_file(os.path.join(out, "1.root.json"), serializer=ser)
snapshot.sign(signers["snapshot"])
snapshot.to_file(os.path.join(out, "1.snapshot.json"), serializer=ser)
ts = Metadata(Timestamp(expires=expires))
ts.signed.snapshot_meta = MetaFile(version=1)
ts.sign(signers["timestamp"])
ts.to_file(os.path.join(out, "timestamp.json"), serializer=ser)
elapsed = time.perf_counter() - start
ru = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"seconds": elapsed, "peak_rss_kib": ru.ru_maxrss, "roles": len(roles),
                  "user_seconds": ru.ru_utime - ru0.ru_utime, "sys_seconds": ru.ru_stime - ru0.ru_stime}))
"#;

fn vm_hwm_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// (user, system) CPU seconds of this process so far, from /proc/self/stat.
fn cpu_seconds() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which is in parentheses and may contain spaces).
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    let tick = 100.0; // USER_HZ on Linux
    let get = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
            / tick
    };
    (get(11), get(12))
}

/// The airlock side, in its own process: init, (bins), add the directory, publish.
fn child(
    layout: &str,
    link: bool,
    src: &Path,
    out: &Path,
) -> Result<(), Box<dyn std::error::Error>> {
    let start = Instant::now();
    let mut repo = Repository::init(out, &InitOptions::simple(Protection::PlaintextForTests))?;
    if layout == "bins" {
        repo.delegate_bins(
            &BinDelegation {
                from: "targets".into(),
                bins: 256,
                name_prefix: "bin".into(),
                keys: KeySource::Generate {
                    scheme: KeyScheme::Ed25519,
                    count: 1,
                },
                threshold: 1,
            },
            true,
        )?;
    }
    let init_s = start.elapsed().as_secs_f64();
    let add_start = Instant::now();
    let added = repo.add_targets(
        &[AddSource {
            path: src.to_path_buf(),
            target: TargetName::Prefix(String::new()),
        }],
        &AddOptions::default(),
        &|_, _| {},
    )?;
    let add_s = add_start.elapsed().as_secs_f64();
    let publish_start = Instant::now();
    let files = if link {
        TargetFiles::HardLink
    } else {
        TargetFiles::Copy
    };
    let report = repo.publish_with(files, &|_, _| {})?;
    let publish_s = publish_start.elapsed().as_secs_f64();
    let total = start.elapsed().as_secs_f64();
    let (user, sys) = cpu_seconds();
    println!(
        "{}",
        serde_json::json!({
            "seconds": total,
            "init_seconds": init_s,
            "add_seconds": add_s,
            "publish_seconds": publish_s,
            "copy_seconds": report.copy_targets_ms as f64 / 1000.0,
            "added": added.added,
            "roles": repo.targets_roles().count(),
            "peak_rss_kib": vm_hwm_kib(),
            "user_seconds": user,
            "sys_seconds": sys,
        })
    );
    Ok(())
}

#[derive(Clone, Debug, Default)]
struct Run {
    wall: f64,
    inner: f64,
    copy: f64,
    peak_kib: u64,
    user: f64,
    sys: f64,
}

fn run_child(cmd: &mut Command) -> Result<Run, String> {
    let started = Instant::now();
    let out = cmd.output().map_err(|e| e.to_string())?;
    let wall = started.elapsed().as_secs_f64();
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("{e}: {}", String::from_utf8_lossy(&out.stdout)))?;
    Ok(Run {
        wall,
        inner: v["seconds"].as_f64().unwrap_or(0.0),
        copy: v["copy_seconds"].as_f64().unwrap_or(0.0),
        peak_kib: v["peak_rss_kib"].as_u64().unwrap_or(0),
        user: v["user_seconds"].as_f64().unwrap_or(0.0),
        sys: v["sys_seconds"].as_f64().unwrap_or(0.0),
    })
}

fn median(mut runs: Vec<Run>) -> Run {
    runs.sort_by(|a, b| a.wall.total_cmp(&b.wall));
    let peak = runs.iter().map(|r| r.peak_kib).max().unwrap_or(0);
    let mut m = runs.get(runs.len() / 2).cloned().unwrap_or_default();
    m.peak_kib = peak;
    m
}

fn make_files(dir: &Path, n: usize) -> std::io::Result<u64> {
    let mut bytes = 0u64;
    for i in 0..n {
        let sub = dir.join(format!("d{:03}", i / 1000));
        if i % 1000 == 0 {
            std::fs::create_dir_all(&sub)?;
        }
        let content = format!("target {i}\n{}\n", "x".repeat(64 + i % 64));
        bytes += content.len() as u64;
        std::fs::write(sub.join(format!("file{i:06}.txt")), content)?;
    }
    Ok(bytes)
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .next()
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
        })
        .map_or("?".into(), |kib| format!("{} GiB", kib / 1024 / 1024));
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_string();
    format!("{cores} cores ({cpu}), {mem} RAM, Linux {kernel}")
}

fn python_path(root: &Path) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("AIRLOCK_PYTHON") {
        return Some(PathBuf::from(p));
    }
    let venv = root.join(".venv/bin/python");
    venv.exists().then_some(venv)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--child") {
        let (Some(layout), Some(files), Some(src), Some(out)) =
            (args.get(2), args.get(3), args.get(4), args.get(5))
        else {
            return Err("usage: publish --child LAYOUT copy|link SRC OUT".into());
        };
        return child(layout, files == "link", Path::new(src), Path::new(out));
    }
    let n: usize = std::env::var("AIRLOCK_BENCH_TARGETS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let runs: usize = std::env::var("AIRLOCK_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
        .max(1);
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let python = python_path(&workspace);
    let tmp = tempfile::tempdir()?;
    let src = tmp.path().join("files");
    eprintln!("creating {n} files in {}", src.display());
    let bytes = make_files(&src, n)?;
    let script = tmp.path().join("publish_python_tuf.py");
    std::fs::write(&script, PYTHON_SCRIPT)?;
    let me = std::env::current_exe()?;
    let python_version = python.as_ref().and_then(|p| {
        Command::new(p)
            .args([
                "-c",
                "import tuf, sys; print(tuf.__version__, sys.version.split()[0])",
            ])
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    });

    let mut rows = Vec::new();
    // Outputs are kept until the end: deleting 100,000 files between runs makes ext4's inode
    // allocator slower for the next run (it skips recently freed inodes).
    let mut counter = 0;
    for layout in ["flat", "bins"] {
        let mut airlock = Vec::new();
        let mut airlock_link = Vec::new();
        let mut py_hash = Vec::new();
        let mut py_nohash = Vec::new();
        for run in 0..runs {
            eprintln!("{layout}: run {} of {runs}", run + 1);
            counter += 1;
            let out = tmp.path().join(format!("airlock-{counter}"));
            airlock.push(run_child(
                Command::new(&me)
                    .args(["--child", layout, "copy"])
                    .arg(&src)
                    .arg(&out),
            )?);
            counter += 1;
            let out = tmp.path().join(format!("airlock-{counter}"));
            airlock_link.push(run_child(
                Command::new(&me)
                    .args(["--child", layout, "link"])
                    .arg(&src)
                    .arg(&out),
            )?);
            if let Some(py) = &python {
                for (hashing, list) in [("hash", &mut py_hash), ("nohash", &mut py_nohash)] {
                    counter += 1;
                    let out = tmp.path().join(format!("python-{counter}"));
                    list.push(run_child(
                        Command::new(py)
                            .arg(&script)
                            .args([layout, hashing])
                            .arg(&src)
                            .arg(&out),
                    )?);
                }
            }
        }
        rows.push((
            layout,
            median(airlock),
            median(airlock_link),
            python
                .as_ref()
                .map(|_| (median(py_hash), median(py_nohash))),
        ));
    }

    let mib = |kib: u64| kib as f64 / 1024.0;
    let mut md = String::new();
    md.push_str(&format!(
        "Command: `cargo bench -p airlock-repo --bench publish` (with `AIRLOCK_BENCH_WRITE_DOCS=1` to write this section). \
         {n} files of 75-140 bytes ({bytes} bytes in all) in 100 directories, median of {runs} run(s) per row, each run \
         a fresh process; peak memory is the process's own high-water mark (VmHWM / ru_maxrss), the highest of the runs.\n\n\
         Machine: {}. python-tuf {} (Python {}).\n\n",
        machine(),
        python_version.as_deref().and_then(|v| v.split_whitespace().next()).unwrap_or("not available"),
        python_version.as_deref().and_then(|v| v.split_whitespace().nth(1)).unwrap_or("-"),
    ));
    md.push_str(
        "| layout | tool: work measured | wall time | CPU user + system | peak memory | airlock faster by |\n\
         |---|---|---:|---:|---:|---:|\n",
    );
    for (layout, a, al, py) in &rows {
        let name = if *layout == "flat" {
            "(a) one targets.json"
        } else {
            "(b) 256 succinct bins"
        };
        let without_copy = a.wall - a.copy;
        md.push_str(&format!(
            "| {name} | airlock: init, add (walk + hash), sign, write metadata, copy the {n} target files | {:.3} s | {:.2} + {:.2} s | {:.1} MiB | |\n",
            a.wall,
            a.user,
            a.sys,
            mib(a.peak_kib)
        ));
        md.push_str(&format!(
            "| {name} | airlock: the same without the target-file copy (which took {:.3} s) | {:.3} s | | | |\n",
            a.copy, without_copy
        ));
        md.push_str(&format!(
            "| {name} | airlock `publish --link-targets`: hard links instead of copies (hash still checked) | {:.3} s | {:.2} + {:.2} s | {:.1} MiB | |\n",
            al.wall,
            al.user,
            al.sys,
            mib(al.peak_kib)
        ));
        if let Some((h, nh)) = py {
            md.push_str(&format!(
                "| {name} | python-tuf: walk + hash, add, sign, write metadata | {:.3} s | {:.2} + {:.2} s | {:.1} MiB | {:.1}x (no copy), {:.1}x (links), {:.1}x (copies) |\n",
                h.inner,
                h.user,
                h.sys,
                mib(h.peak_kib),
                h.inner / without_copy,
                h.inner / al.wall,
                h.inner / a.wall,
            ));
            md.push_str(&format!(
                "| {name} | python-tuf: add, sign, write metadata (hashes computed beforehand, untimed) | {:.3} s | {:.2} + {:.2} s | {:.1} MiB | {:.1}x (no copy), {:.1}x (links), {:.1}x (copies) |\n",
                nh.inner,
                nh.user,
                nh.sys,
                mib(nh.peak_kib),
                nh.inner / without_copy,
                nh.inner / al.wall,
                nh.inner / a.wall,
            ));
        }
    }
    md.push_str(
        "\nThe python-tuf figures are the time measured inside the script around the work (interpreter \
         start-up and imports excluded; CPU likewise); airlock's are whole-process figures (start-up, key \
         generation and every write included). python-tuf does not copy target files into a published tree; airlock does \
         (each checked against its hash while copying, then one syncfs), hence the row without that copy. \
         Both write compact JSON.\n",
    );
    println!("{md}");
    if std::env::var_os("AIRLOCK_BENCH_WRITE_DOCS").is_some() {
        let path = workspace.join("docs/benchmarks.md");
        let text = std::fs::read_to_string(&path)?;
        let heading = "## Publishing (airlock repo vs python-tuf repository API)";
        let marker = "<!-- end of publishing section -->";
        let (Some(start), Some(end)) = (text.find(heading), text.find(marker)) else {
            return Err("docs/benchmarks.md has no publishing section".into());
        };
        let body_start = start + heading.len();
        if end < body_start {
            return Err("docs/benchmarks.md: end marker before the heading".into());
        }
        let new = format!("{}\n\n{md}\n{}", &text[..body_start], &text[end..]);
        std::fs::write(&path, new)?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}
