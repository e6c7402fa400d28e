//! Crash test: the `airlock log serve` process is killed with SIGKILL at random moments while
//! several clients append concurrently, then restarted, several times. Afterwards every entry
//! the log acknowledged must be in the log at the acknowledged index, and every checkpoint it
//! ever published must be consistent with the final tree (no fork, no rollback).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use airlock_core::tlog::{KeyAlgorithm, MemoryTree, NoteSigner, NoteVerifier, open_checkpoint};
use airlock_fetch::{Fetcher, Trust};
use airlock_log::config::witness_fetcher_config;
use airlock_log::{SIGNATURE_HEADER, sign_submission};

/// A client without retries: an entry is acknowledged by exactly one answer.
fn client(ca_pem: &[u8]) -> Fetcher {
    Fetcher::new(witness_fetcher_config(
        Trust::CaBundlePem(ca_pem.to_vec()),
        false,
        Duration::from_secs(10),
    ))
    .unwrap()
}

const BIN: &str = env!("CARGO_BIN_EXE_airlock");
const ORIGIN: &str = "airlock.test/crashlog";

fn airlock(args: &[&str]) -> String {
    let out = Command::new(BIN).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "airlock {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn serve(dir: &Path) -> (Child, String) {
    let mut child = Command::new(BIN)
        .args(["log", "serve", "--dir"])
        .arg(dir)
        .args(["--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim()
        .rsplit(' ')
        .next()
        .filter(|u| u.starts_with("https://"))
        .unwrap_or_else(|| panic!("unexpected serve output {line:?}"))
        .to_string();
    (child, url)
}

/// A small xorshift generator seeded from the clock: the kill points differ from run to run.
fn rng() -> impl FnMut(u64) -> u64 {
    let mut s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    eprintln!("crash test seed {s}");
    move |n| {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s % n
    }
}

#[test]
fn killed_at_random_points_the_log_loses_no_acknowledged_entry_and_never_forks() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let tls = tmp.path().join("tls");
    std::fs::create_dir_all(&tls).unwrap();
    let ca = airlock_serve::TestCa::new().unwrap();
    let files = ca.write_files(&tls, &["127.0.0.1"]).unwrap();
    let publisher = NoteSigner::generate("airlock.test/publisher", KeyAlgorithm::Ed25519).unwrap();
    let init = airlock(&[
        "log",
        "init",
        "--json",
        "--dir",
        dir.to_str().unwrap(),
        "--origin",
        ORIGIN,
        // Restarted many times: keep the key unencrypted (key protection is tested in log_keys).
        "--plaintext-key",
        "--publisher-key",
        &publisher.verifier().to_vkey(),
        "--tls-cert",
        files.cert_chain.to_str().unwrap(),
        "--tls-key",
        files.key.to_str().unwrap(),
    ]);
    let init: serde_json::Value = serde_json::from_str(&init).unwrap();
    let log_vkey = init["log_key"].as_str().unwrap().to_string();
    let log_key = NoteVerifier::from_vkey(&log_vkey).unwrap();
    let ca_pem = std::fs::read(&files.ca_cert).unwrap();
    let publisher = Arc::new(publisher);

    let acked: Arc<Mutex<BTreeMap<u64, Vec<u8>>>> = Default::default();
    let checkpoints: Arc<Mutex<BTreeSet<Vec<u8>>>> = Default::default();
    let mut random = rng();
    let rounds = 6;
    for round in 0..rounds {
        let (mut child, url) = serve(&dir);
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        for t in 0..8 {
            let (url, ca_pem, stop, acked, publisher) = (
                url.clone(),
                ca_pem.clone(),
                stop.clone(),
                acked.clone(),
                publisher.clone(),
            );
            threads.push(std::thread::spawn(move || {
                let client = client(&ca_pem);
                let mut k = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let entry = format!("round {round} thread {t} entry {k} {}", "x".repeat(200));
                    k += 1;
                    let sig = sign_submission(&publisher, ORIGIN, entry.as_bytes()).unwrap();
                    let Ok(r) = client.post(
                        &format!("{url}/add"),
                        &[(SIGNATURE_HEADER, &sig)],
                        entry.as_bytes(),
                        1024,
                    ) else {
                        continue; // the server is gone: this entry was never acknowledged
                    };
                    if r.status == 200 {
                        let index: u64 = r.reason().trim().parse().unwrap();
                        let prev = acked.lock().unwrap().insert(index, entry.into_bytes());
                        assert!(prev.is_none(), "index {index} acknowledged twice");
                    }
                }
            }));
        }
        {
            let (url, ca_pem, stop, checkpoints) = (
                url.clone(),
                ca_pem.clone(),
                stop.clone(),
                checkpoints.clone(),
            );
            threads.push(std::thread::spawn(move || {
                let client = client(&ca_pem);
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(body) = client.fetch_capped(&format!("{url}/checkpoint"), 1 << 20) {
                        checkpoints.lock().unwrap().insert(body);
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
            }));
        }
        std::thread::sleep(Duration::from_millis(50 + random(500)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        stop.store(true, Ordering::Relaxed);
        for t in threads {
            t.join().unwrap();
        }
        eprintln!(
            "round {round}: {} entries acknowledged so far",
            acked.lock().unwrap().len()
        );
    }

    // Restart once more and read the whole log back with the monitor, which re-derives and
    // checks every tile against the checkpoint.
    let (mut child, url) = serve(&dir);
    let out = airlock(&[
        "log",
        "monitor",
        "--json",
        "--url",
        &url,
        "--ca-file",
        files.ca_cert.to_str().unwrap(),
        "--log-key",
        &log_vkey,
    ]);
    child.kill().unwrap();
    child.wait().unwrap();
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    let size = report["size"].as_u64().unwrap();
    let entries: Vec<Vec<u8>> = report["new_entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["entry"].as_str().unwrap().as_bytes().to_vec())
        .collect();
    assert_eq!(entries.len() as u64, size);

    let acked = acked.lock().unwrap();
    assert!(!acked.is_empty(), "no entry was acknowledged at all");
    for (index, entry) in acked.iter() {
        assert!(
            *index < size,
            "acknowledged entry {index} lost (log size {size})"
        );
        assert_eq!(&entries[*index as usize], entry, "entry {index} changed");
    }
    let mut tree = MemoryTree::new();
    let mut roots = vec![tree.root()];
    for e in &entries {
        tree.push(e);
        roots.push(tree.root());
    }
    let checkpoints = checkpoints.lock().unwrap();
    assert!(!checkpoints.is_empty());
    for note in checkpoints.iter() {
        let cp = open_checkpoint(note, &log_key, &[]).unwrap().checkpoint;
        assert!(
            cp.size <= size,
            "published size {} later rolled back to {size}",
            cp.size
        );
        assert_eq!(
            cp.root_hash, roots[cp.size as usize],
            "published checkpoint of size {} is not a prefix of the final tree",
            cp.size
        );
    }
    eprintln!(
        "final size {size}, {} acknowledged, {} distinct checkpoints seen, all consistent",
        acked.len(),
        checkpoints.len()
    );
}
