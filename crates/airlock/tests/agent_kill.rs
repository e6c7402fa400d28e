//! kill -9 of the whole `airlock agent run` process at random moments of its work: start-up
//! recovery, the TUF refresh, the download, the unpack, the switch, the health check and the
//! rollback of a failing release. The repository is real (published with the CLI, served over
//! HTTPS on 127.0.0.1); releases are a few MiB of random bytes so that downloads and unpacks
//! take long enough to be hit.
//!
//! After each kill: `current` is absent (nothing installed yet) or points at a complete release
//! with exactly the published files, and every release directory that is not a temporary is
//! complete. Every tenth kill the agent is then started again and left to finish: it must
//! have recovered (no journal, no temporaries, no download left behind), installed the newest
//! good release, and marked a failing one bad.
//!
//! `AIRLOCK_AGENT_KILLS` sets the number of kills (default 200), `AIRLOCK_AGENT_KILL_SEED` the
//! seed (printed, to replay a failure).

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use sha2::{Digest, Sha256};

/// Bytes of random data in each release: a few milliseconds of download and unpack.
const DATA_BYTES: usize = 4 << 20;

struct Release {
    good: bool,
    data_sha256: String,
}

/// Deterministic noise (xorshift64), so that gzip cannot shrink a release.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Make and publish release `n`: `VERSION`, `data.bin`, and `healthy` when it is a good one.
fn publish(repo: &str, dir: &Path, n: u64, good: bool) -> (String, Release) {
    let version = format!("{n}.0.0");
    let src = dir.join(format!("src-{version}"));
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("VERSION"), &version).unwrap();
    let data = noise(n.wrapping_mul(0x9e37_79b9_7f4a_7c15), DATA_BYTES);
    fs::write(src.join("data.bin"), &data).unwrap();
    if good {
        fs::write(src.join("healthy"), "yes").unwrap();
    }
    let file = dir.join(format!("app-{version}.tar.gz"));
    let status = Command::new("tar")
        .arg("-czf")
        .arg(&file)
        .arg("-C")
        .arg(&src)
        .arg(".")
        .status()
        .unwrap();
    assert!(status.success());
    fs::remove_dir_all(&src).unwrap();
    ok(&[
        "repo",
        "-C",
        repo,
        "add",
        file.to_str().unwrap(),
        "--name",
        &format!("app/{version}/app.tar.gz"),
    ]);
    ok(&["repo", "-C", repo, "publish"]);
    fs::remove_file(&file).unwrap();
    (
        version,
        Release {
            good,
            data_sha256: hex::encode(Sha256::digest(&data)),
        },
    )
}

fn names(dir: &Path) -> Vec<String> {
    match fs::read_dir(dir) {
        Ok(entries) => entries
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// Every path under `dir` whose name starts with the temporary prefix.
fn temporaries(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for name in names(&d) {
            let p = d.join(&name);
            if name.starts_with(".airlock-tmp") {
                found.push(p);
            } else if p.is_dir() && !p.is_symlink() {
                todo.push(p);
            }
        }
    }
    found
}

/// Files (not directories) below `dir`, relative to it.
fn files_below(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for name in names(&d) {
            let p = d.join(&name);
            if p.is_dir() && !p.is_symlink() {
                todo.push(p);
            } else {
                found.push(p.strip_prefix(dir).unwrap().to_path_buf());
            }
        }
    }
    found
}

/// The release in `dir` is exactly release `version` as published.
fn check_complete(dir: &Path, version: &str, releases: &BTreeMap<String, Release>, what: &str) {
    let r = releases
        .get(version)
        .unwrap_or_else(|| panic!("{what}: {version} was never published"));
    let mut files: Vec<String> = names(dir);
    files.sort();
    let mut want = vec!["VERSION".to_string(), "data.bin".to_string()];
    if r.good {
        want.push("healthy".into());
    }
    want.sort();
    assert_eq!(files, want, "{what}: files of {version}");
    assert_eq!(fs::read_to_string(dir.join("VERSION")).unwrap(), version);
    let data = fs::read(dir.join("data.bin")).unwrap();
    assert_eq!(
        hex::encode(Sha256::digest(&data)),
        r.data_sha256,
        "{what}: data.bin of {version}"
    );
}

/// What the kill interrupted, from what it left: the install engine's journal phase, a
/// download in progress, or neither.
fn interrupted(install: &Path, state: &Path) -> String {
    let journal = fs::read_to_string(install.join("state/journal.json")).ok();
    if let Some(phase) = journal
        .and_then(|j| serde_json::from_str::<serde_json::Value>(&j).ok())
        .and_then(|v| v.get("phase").and_then(|p| p.as_str()).map(String::from))
    {
        return format!("install:{phase}");
    }
    let downloading = files_below(state)
        .iter()
        .any(|p| p.components().any(|c| c.as_os_str() == "downloads"));
    if downloading {
        return "download".into();
    }
    "other".into()
}

#[test]
fn kill_9_of_the_agent_at_random_points_leaves_a_complete_release_and_recovers() {
    let kills: u32 = std::env::var("AIRLOCK_AGENT_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let mut seed: u64 = std::env::var("AIRLOCK_AGENT_KILL_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    eprintln!("AIRLOCK_AGENT_KILL_SEED={seed}");
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };

    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let repo = dir.join("repo");
    let r = repo.to_str().unwrap();
    ok(&[
        "repo",
        "init",
        r,
        "--plaintext-keys",
        "--keep-releases",
        "1",
    ]);
    let mut releases = BTreeMap::new();
    let mut n = 1u64;
    let (v, rel) = publish(r, dir, n, true);
    releases.insert(v, rel);
    let (_server, served) = serve_repo(r, dir);
    let install = dir.join("install");
    let state = dir.join("state");
    let app_extra = format!(
        "[apps.app.schedule]\ninterval = \"1d\"\njitter = \"0s\"\n\n[apps.app.install]\nkeep = 2\n\n\
         [apps.app.install.health]\ncommand = [\"sh\", \"-c\", \"test -f {}/current/healthy\"]\n\
         timeout = \"10s\"",
        install.display()
    );
    let config = write_agent_config(
        dir,
        &repo,
        &served,
        "app",
        "app/{version}/app.tar.gz",
        "",
        &app_extra,
    );
    let c = config.to_str().unwrap();
    let status = || json(&["--json", "agent", "--config", c, "status"])["apps"]["app"].clone();
    let socket = dir.join("agent.sock");
    // Start the agent and ask it for a check at once (a restart after a finished check would
    // otherwise wait a day for the next one). The answer, if the agent lives to give it,
    // comes back on the returned channel.
    let start = || {
        let _ = fs::remove_file(&socket);
        let agent = Server(
            Command::new(BIN)
                .args(["agent", "--config", c, "run"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let (tx, rx) = std::sync::mpsc::channel();
        let socket = socket.clone();
        std::thread::spawn(move || {
            let began = Instant::now();
            while began.elapsed() < Duration::from_secs(60) {
                if let Ok(mut conn) = std::os::unix::net::UnixStream::connect(&socket) {
                    use std::io::{BufRead, Write};
                    if conn.write_all(b"check-now app\n").is_err() {
                        return;
                    }
                    let mut line = String::new();
                    let _ = std::io::BufReader::new(conn).read_line(&mut line);
                    let _ = tx.send(line);
                    return;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        });
        (agent, rx)
    };
    // One run left to finish its check: the agent recovers from whatever the kills left and
    // ends on the newest good release, with every failing one marked bad.
    let finish = |releases: &BTreeMap<String, Release>, what: &str| -> Duration {
        let began = Instant::now();
        let (mut agent, answer) = start();
        let line = answer
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("{what}: no answer to check-now"));
        let _ = agent.0.try_wait();
        let took = began.elapsed();
        drop(agent);
        let s = status();
        assert_eq!(
            s["last_check"]["ok"], true,
            "{what}: {s}; check-now: {line}"
        );
        let newest_good = releases
            .iter()
            .filter(|(_, r)| r.good)
            .map(|(v, _)| v.clone())
            .max_by_key(|v| v.split('.').next().unwrap().parse::<u64>().unwrap())
            .unwrap();
        assert_eq!(s["installed"], newest_good.as_str(), "{what}: {s}");
        // A failing release that is still the newest has been tried and marked bad; one that
        // a newer release overtook while its install was cut short may never have been tried.
        // A good release is never marked bad.
        let bad: Vec<String> = s["bad_versions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect();
        for v in &bad {
            assert!(
                !releases[v].good,
                "{what}: good release {v} marked bad: {s}"
            );
        }
        let newest = releases
            .keys()
            .max_by_key(|v| v.split('.').next().unwrap().parse::<u64>().unwrap())
            .unwrap();
        if !releases[newest].good {
            assert!(bad.contains(newest), "{what}: {newest} not marked bad: {s}");
        }
        assert!(!install.join("state/journal.json").exists(), "{what}");
        assert_eq!(temporaries(&install), Vec::<PathBuf>::new(), "{what}");
        assert_eq!(temporaries(&state), Vec::<PathBuf>::new(), "{what}");
        let downloads: Vec<_> = files_below(&state)
            .into_iter()
            .filter(|p| p.components().any(|c| c.as_os_str() == "downloads"))
            .collect();
        assert_eq!(downloads, Vec::<PathBuf>::new(), "{what}: downloads left");
        took
    };

    // The first install, uninterrupted, sets the scale of the random delays.
    let full = finish(&releases, "first install");
    let max_delay = full.mul_f64(1.5).max(Duration::from_millis(100));
    eprintln!("an uninterrupted start and install takes {full:?}");

    let began = Instant::now();
    let mut hits: BTreeMap<String, u32> = BTreeMap::new();
    let mut progressed_at = 0u32;
    for k in 0..kills {
        // A new release once the agent has taken the last one: every third fails its check.
        let s = status();
        let newest = format!("{n}.0.0");
        // Installed means passed its check: not while the kill left the install unfinished.
        let unfinished = install.join("state/journal.json").exists();
        let taken = (s["installed"] == newest.as_str() && !unfinished)
            || s["bad_versions"]
                .as_array()
                .is_some_and(|b| b.iter().any(|v| v == newest.as_str()));
        if taken {
            n += 1;
            let (v, rel) = publish(r, dir, n, !n.is_multiple_of(3));
            releases.insert(v, rel);
            progressed_at = k;
        }
        assert!(
            k - progressed_at < 40,
            "no release taken in 40 restarts: {s}"
        );

        let (mut agent, _answer) = start();
        let delay = Duration::from_micros(next() % max_delay.as_micros() as u64);
        std::thread::sleep(delay);
        agent.0.kill().unwrap();
        agent.0.wait().unwrap();

        let what = format!("kill {k} after {delay:?}");
        *hits.entry(interrupted(&install, &state)).or_default() += 1;
        // The first install finished before the loop: from then on there is always a current.
        let target = fs::read_link(install.join("current"))
            .unwrap_or_else(|e| panic!("{what}: no current: {e}"));
        let v = target
            .strip_prefix("releases")
            .unwrap_or_else(|_| panic!("{what}: current -> {}", target.display()))
            .to_string_lossy()
            .into_owned();
        check_complete(&install.join("current"), &v, &releases, &what);
        for v in names(&install.join("releases")) {
            if !v.starts_with(".airlock-tmp") {
                check_complete(&install.join("releases").join(&v), &v, &releases, &what);
            }
        }
        if k % 10 == 9 {
            finish(&releases, &format!("restart after {what}"));
        }
    }
    eprintln!(
        "{kills} kills in {:.1} s, {n} releases; what each kill interrupted: {hits:?}",
        began.elapsed().as_secs_f64()
    );
    // The kills reached the download and the install's switch and rollback, not only start-up.
    assert!(hits.get("download").copied().unwrap_or(0) > 0, "{hits:?}");
    assert!(hits.keys().any(|h| h.starts_with("install:")), "{hits:?}");
    assert!(
        n >= 4,
        "only {n} releases: the kills never let the agent finish"
    );
}
