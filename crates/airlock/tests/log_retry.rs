//! Submissions are safe to retry (issue 17): `airlock log add` processes run while the
//! `airlock log serve` process is killed with SIGKILL at random moments and restarted on the
//! same address. Every entry `add` acknowledged is in the log exactly once, at the index it
//! printed; an `add` that gave up says the entry may or may not be logged, and running it again
//! (as a user would) logs nothing twice.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use airlock_core::tlog::{KeyAlgorithm, NoteSigner};

const BIN: &str = env!("CARGO_BIN_EXE_airlock");
const ORIGIN: &str = "log.test/retry";

fn ok(args: &[&str]) -> String {
    let out = Command::new(BIN).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "airlock {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn serve(dir: &Path, listen: &str) -> Option<(Child, String)> {
    let mut child = Command::new(BIN)
        .args(["log", "serve", "--dir"])
        .arg(dir)
        .args(["--listen", listen])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    match line.trim().rsplit(' ').next() {
        Some(url) if url.starts_with("https://") => Some((child, url.to_string())),
        _ => {
            let _ = child.kill();
            let _ = child.wait();
            None
        }
    }
}

/// A small xorshift generator seeded from the clock: the kill points differ from run to run.
fn rng() -> impl FnMut(u64) -> u64 {
    let mut s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    eprintln!("retry test seed {s}");
    move |n| {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s % n
    }
}

#[test]
fn killed_during_add_every_acknowledged_entry_is_logged_once_and_retries_do_not_duplicate() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    std::fs::create_dir_all(tmp.path().join("tls")).unwrap();
    let ca = airlock_serve::TestCa::new().unwrap();
    let tls = ca
        .write_files(&tmp.path().join("tls"), &["127.0.0.1"])
        .unwrap();
    let publisher = NoteSigner::generate("pub.test", KeyAlgorithm::Ed25519).unwrap();
    let key = tmp.path().join("pub.key");
    std::fs::write(&key, publisher.to_skey().as_bytes()).unwrap();
    let init: serde_json::Value = serde_json::from_str(&ok(&[
        "log",
        "init",
        "--json",
        "--plaintext-key",
        "--dir",
        dir.to_str().unwrap(),
        "--origin",
        ORIGIN,
        "--publisher-key",
        &publisher.verifier().to_vkey(),
        "--tls-cert",
        tls.cert_chain.to_str().unwrap(),
        "--tls-key",
        tls.key.to_str().unwrap(),
    ]))
    .unwrap();
    let log_vkey = init["log_key"].as_str().unwrap().to_string();
    let ca_file = tls.ca_cert.to_str().unwrap().to_string();

    let (child, url) = serve(&dir, "127.0.0.1:0").unwrap();
    let listen = url.trim_start_matches("https://").to_string();
    let server = Arc::new(Mutex::new(Some(child)));
    let add = {
        let (url, ca_file, key) = (url.clone(), ca_file.clone(), key.clone());
        move |entry: &str| -> Output {
            Command::new(BIN)
                .args(["log", "add", "--url", &url, "--ca-file", &ca_file, "--key"])
                .arg(&key)
                .args(["--origin", ORIGIN, "--data", entry])
                .output()
                .unwrap()
        }
    };

    // (entry -> index printed by `add`) and the entries whose `add` gave up.
    let acked: Arc<Mutex<BTreeMap<String, u64>>> = Default::default();
    let gave_up: Arc<Mutex<Vec<String>>> = Default::default();
    let stop = Arc::new(AtomicBool::new(false));
    let mut submitters = Vec::new();
    for t in 0..3 {
        let (add, acked, gave_up, stop) =
            (add.clone(), acked.clone(), gave_up.clone(), stop.clone());
        submitters.push(std::thread::spawn(move || {
            let mut k = 0;
            while !stop.load(Ordering::Relaxed) {
                let entry = format!("submitter {t} entry {k}");
                k += 1;
                let out = add(&entry);
                if out.status.success() {
                    let index = String::from_utf8(out.stdout)
                        .unwrap()
                        .trim()
                        .parse()
                        .unwrap();
                    acked.lock().unwrap().insert(entry, index);
                } else {
                    let err = String::from_utf8_lossy(&out.stderr).to_string();
                    assert!(
                        err.contains("may or may not have been logged")
                            && err.contains("safe to retry"),
                        "a failed add does not say what to do: {err}"
                    );
                    gave_up.lock().unwrap().push(entry);
                }
            }
        }));
    }
    // Kill the log at random moments for about 15 s, restarting it on the same address.
    let mut random = rng();
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut kills = 0;
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100 + random(900)));
        if let Some(mut c) = server.lock().unwrap().take() {
            c.kill().unwrap(); // SIGKILL
            c.wait().unwrap();
            kills += 1;
        }
        std::thread::sleep(Duration::from_millis(random(400)));
        let restarted = (0..50).find_map(|_| {
            serve(&dir, &listen).or_else(|| {
                std::thread::sleep(Duration::from_millis(100));
                None
            })
        });
        *server.lock().unwrap() = Some(restarted.expect("log restarts on its address").0);
    }
    stop.store(true, Ordering::Relaxed);
    for s in submitters {
        s.join().unwrap();
    }

    // The user runs the `add`s that gave up again, and repeats a few that succeeded.
    let gave_up = gave_up.lock().unwrap().clone();
    let mut acked = acked.lock().unwrap().clone();
    for entry in &gave_up {
        let out = add(entry);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let index = String::from_utf8(out.stdout)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        acked.insert(entry.clone(), index);
    }
    for (entry, index) in acked.iter().take(3) {
        let out = add(entry);
        assert!(out.status.success());
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            index.to_string(),
            "a repeated add got another index"
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("already logged"), "{err}");
    }

    // Read the whole log back with the monitor, which checks every tile against the checkpoint.
    let monitor = ok(&[
        "log",
        "monitor",
        "--json",
        "--url",
        &url,
        "--ca-file",
        &ca_file,
        "--log-key",
        &log_vkey,
    ]);
    if let Some(mut c) = server.lock().unwrap().take() {
        let _ = c.kill();
        let _ = c.wait();
    }
    let report: serde_json::Value = serde_json::from_str(&monitor).unwrap();
    let entries: Vec<String> = report["new_entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["entry"].as_str().unwrap().to_string())
        .collect();
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for e in &entries {
        *seen.entry(e.as_str()).or_default() += 1;
    }
    let duplicated: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(duplicated.is_empty(), "logged twice: {duplicated:?}");
    for (entry, index) in &acked {
        assert_eq!(
            entries.get(*index as usize).map(String::as_str),
            Some(entry.as_str()),
            "acknowledged entry {entry:?} is not at its index {index}"
        );
    }
    assert_eq!(
        entries.len(),
        acked.len(),
        "the log holds entries nobody acknowledged"
    );
    eprintln!(
        "{kills} kills, {} entries, {} adds gave up and were run again",
        entries.len(),
        gave_up.len()
    );
    assert!(kills >= 5 && !acked.is_empty());
}
