//! A log that cannot fork by accident (issue 17), tested as an operator would meet it: real
//! `airlock log serve` and `airlock witness serve` processes over HTTPS on 127.0.0.1.
//!
//! - A copy of a log's directory, started after the original grew and was cosigned, learns
//!   from the witness that it is behind, halts (refuses entries, publishes nothing, says why)
//!   and stays halted across restarts; the original is unaffected.
//! - The same for a restore of an older backup; a restore of the newest state runs on.
//! - A second `serve` on the same directory is refused while the first runs.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use airlock_core::tlog::{KeyAlgorithm, NoteSigner, NoteVerifier, open_checkpoint};
use airlock_fetch::{Fetcher, Trust};
use airlock_log::config::witness_fetcher_config;

const BIN: &str = env!("CARGO_BIN_EXE_airlock");
const ORIGIN: &str = "log.test/fork";
const WITNESS: &str = "witness.test/w1";

fn run(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

fn ok(args: &[&str]) -> String {
    let out = run(args);
    assert!(
        out.status.success(),
        "airlock {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

struct Server {
    child: Child,
    stderr: PathBuf,
}

impl Server {
    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Waits until the server's standard error contains `what`.
    fn wait_stderr(&self, what: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let text = self.stderr();
            if text.contains(what) {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "server never said {what:?}; stderr: {text}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(kind: &str, dir: &Path, stderr: &Path) -> (Server, String) {
    serve_on(kind, dir, stderr, "127.0.0.1:0")
}

fn serve_on(kind: &str, dir: &Path, stderr: &Path, listen: &str) -> (Server, String) {
    let mut child = Command::new(BIN)
        .args([kind, "serve", "--dir"])
        .arg(dir)
        .args(["--listen", listen])
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(stderr).unwrap())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line.trim().rsplit(' ').next().unwrap_or("").to_string();
    let server = Server {
        child,
        stderr: stderr.to_path_buf(),
    };
    assert!(
        url.starts_with("https://"),
        "{kind} serve printed {line:?}; stderr: {}",
        server.stderr()
    );
    (server, url)
}

/// A witness and a log (with that witness configured), keys and TLS files, in a temp dir.
struct Net {
    tmp: tempfile::TempDir,
    ca: PathBuf,
    log_key: NoteVerifier,
    witness_key: NoteVerifier,
    witness: Option<Server>,
    witness_url: String,
}

impl Net {
    fn p(&self, s: &str) -> PathBuf {
        self.tmp.path().join(s)
    }

    fn new() -> Net {
        let tmp = tempfile::tempdir().unwrap();
        let p = |s: &str| tmp.path().join(s);
        std::fs::create_dir_all(p("tls")).unwrap();
        let ca = airlock_serve::TestCa::new().unwrap();
        let tls = ca.write_files(&p("tls"), &["127.0.0.1"]).unwrap();
        let (cert, key) = (tls.cert_chain.to_str().unwrap(), tls.key.to_str().unwrap());
        // A plaintext publisher key (the old skey form, still read) keeps each `log add` fast.
        let publisher = NoteSigner::generate("pub.test", KeyAlgorithm::Ed25519).unwrap();
        std::fs::write(p("pub.key"), publisher.to_skey().as_bytes()).unwrap();
        let log: serde_json::Value = serde_json::from_str(&ok(&[
            "log",
            "init",
            "--json",
            "--plaintext-key",
            "--dir",
            p("log").to_str().unwrap(),
            "--origin",
            ORIGIN,
            "--publisher-key",
            &publisher.verifier().to_vkey(),
            "--tls-cert",
            cert,
            "--tls-key",
            key,
            "--ca-file",
            tls.ca_cert.to_str().unwrap(),
        ]))
        .unwrap();
        let log_vkey = log["log_key"].as_str().unwrap().to_string();
        let witness: serde_json::Value = serde_json::from_str(&ok(&[
            "witness",
            "init",
            "--json",
            "--plaintext-key",
            "--dir",
            p("w1").to_str().unwrap(),
            "--name",
            WITNESS,
            "--tls-cert",
            cert,
            "--tls-key",
            key,
        ]))
        .unwrap();
        let witness_vkey = witness["witness_key"].as_str().unwrap().to_string();
        ok(&[
            "witness",
            "add-log",
            "--dir",
            p("w1").to_str().unwrap(),
            "--log-key",
            &log_vkey,
        ]);
        let (w, wurl) = serve("witness", &p("w1"), &p("w1.stderr"));
        ok(&[
            "log",
            "add-witness",
            "--dir",
            p("log").to_str().unwrap(),
            "--key",
            &witness_vkey,
            "--url",
            &wurl,
        ]);
        Net {
            ca: tls.ca_cert.clone(),
            log_key: NoteVerifier::from_vkey(&log_vkey).unwrap(),
            witness_key: NoteVerifier::from_vkey(&witness_vkey).unwrap(),
            witness: Some(w),
            witness_url: wurl,
            tmp,
        }
    }

    fn add(&self, url: &str, entry: &str) -> Output {
        run(&[
            "log",
            "add",
            "--url",
            url,
            "--ca-file",
            self.ca.to_str().unwrap(),
            "--key",
            self.p("pub.key").to_str().unwrap(),
            "--origin",
            ORIGIN,
            "--data",
            entry,
            "--wait",
            "20",
        ])
    }

    /// Adds `entry` and waits until a checkpoint including it is published; returns its index.
    fn add_ok(&self, url: &str, entry: &str) -> u64 {
        let out = self.add(url, entry);
        assert!(
            out.status.success(),
            "log add {entry:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    /// The log's published checkpoint: (size, number of valid witness cosignatures).
    fn checkpoint(&self, url: &str) -> Result<(u64, usize), String> {
        let client = Fetcher::new(witness_fetcher_config(
            Trust::CaBundlePem(std::fs::read(&self.ca).unwrap()),
            false,
            Duration::from_secs(10),
        ))
        .unwrap();
        let note = client
            .fetch_capped(&format!("{url}/checkpoint"), 1 << 20)
            .map_err(|e| e.to_string())?;
        let cp = open_checkpoint(
            &note,
            &self.log_key,
            std::slice::from_ref(&self.witness_key),
        )
        .map_err(|e| e.to_string())?;
        Ok((cp.checkpoint.size, cp.cosignatures.len()))
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

/// What a halted log must show: refuses entries (saying it is halted), publishes nothing new,
/// keeps the halt in its state directory.
fn assert_halted(net: &Net, server: &Server, url: &str, dir: &Path, witness_size: u64) {
    let said = server.wait_stderr("halted");
    let line = said.lines().find(|l| l.contains("halted")).unwrap();
    assert!(
        line.contains(WITNESS) && line.contains(&witness_size.to_string()),
        "the halt line names neither the witness nor its size: {line}"
    );
    assert!(dir.join("state/halt").is_file(), "halt not persisted");
    let out = net.add(url, "an entry for the halted copy");
    assert!(!out.status.success(), "a halted log accepted an entry");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("503") && err.contains("halted"), "{err}");
    // Whatever it serves, it is not a checkpoint of a tree other than the witness's.
    if let Ok((size, _)) = net.checkpoint(url) {
        assert!(size <= witness_size);
    }
}

#[test]
fn a_copied_log_refuses_to_publish_behind_its_witness_and_the_original_goes_on() {
    let net = Net::new();
    let (a, url_a) = serve("log", &net.p("log"), &net.p("a.stderr"));
    assert_eq!(net.add_ok(&url_a, "release 0"), 0);
    assert_eq!(net.add_ok(&url_a, "release 1"), 1);
    copy_dir(&net.p("log"), &net.p("copy"));
    assert_eq!(net.add_ok(&url_a, "release 2"), 2);
    assert_eq!(net.add_ok(&url_a, "release 3"), 3);
    assert_eq!(net.checkpoint(&url_a).unwrap(), (4, 1));

    // The copy (size 2) asks the witness before publishing: the witness holds size 4.
    let (b, url_b) = serve("log", &net.p("copy"), &net.p("b.stderr"));
    assert_halted(&net, &b, &url_b, &net.p("copy"), 4);
    // The witness never cosigned a branch of the copy, so the original goes on, cosigned.
    assert_eq!(net.add_ok(&url_a, "release 4"), 4);
    assert_eq!(net.checkpoint(&url_a).unwrap(), (5, 1));
    assert!(a.stderr().lines().all(|l| !l.contains("halted")));

    // A restart stays halted, without asking anyone.
    b.kill();
    let (b, url_b) = serve("log", &net.p("copy"), &net.p("b2.stderr"));
    assert_halted(&net, &b, &url_b, &net.p("copy"), 4);
    b.kill();

    // The deliberate recovery records the incident and signs nothing by itself: started
    // again, the copy asks the witness again and halts again (it is still behind).
    let out = run(&[
        "log",
        "recover",
        "--dir",
        net.p("copy").to_str().unwrap(),
        "--acknowledge-fork",
        "test: the copy was started by mistake",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!net.p("copy/state/halt").exists());
    let incidents = std::fs::read_to_string(net.p("copy/state/incidents")).unwrap();
    assert!(
        incidents.contains("the copy was started by mistake"),
        "{incidents}"
    );
    assert!(incidents.contains(WITNESS), "{incidents}");
    let (b, url_b) = serve("log", &net.p("copy"), &net.p("b3.stderr"));
    assert_halted(&net, &b, &url_b, &net.p("copy"), 5);
    // Recovering a log that is not halted is refused.
    b.kill();
    a.kill();
    let out = run(&[
        "log",
        "recover",
        "--dir",
        net.p("log").to_str().unwrap(),
        "--acknowledge-fork",
        "nothing happened",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not halted"));
}

#[test]
fn a_restored_older_backup_halts_and_the_newest_backup_runs_on() {
    let net = Net::new();
    let (a, url) = serve("log", &net.p("log"), &net.p("a.stderr"));
    net.add_ok(&url, "release 0");
    a.kill();
    copy_dir(&net.p("log"), &net.p("backup-old"));
    let (a, url) = serve("log", &net.p("log"), &net.p("a2.stderr"));
    net.add_ok(&url, "release 1");
    net.add_ok(&url, "release 2");
    assert_eq!(net.checkpoint(&url).unwrap(), (3, 1));
    a.kill();
    copy_dir(&net.p("log"), &net.p("backup-new"));

    // Restore last night's backup over the log: it halts.
    std::fs::remove_dir_all(net.p("log")).unwrap();
    copy_dir(&net.p("backup-old"), &net.p("log"));
    let (a, url) = serve("log", &net.p("log"), &net.p("a3.stderr"));
    assert_halted(&net, &a, &url, &net.p("log"), 3);
    a.kill();

    // Restore the newest state instead: the witness agrees and the log runs on.
    std::fs::remove_dir_all(net.p("log")).unwrap();
    copy_dir(&net.p("backup-new"), &net.p("log"));
    let (a, url) = serve("log", &net.p("log"), &net.p("a4.stderr"));
    assert_eq!(net.add_ok(&url, "release 3"), 3);
    assert_eq!(net.checkpoint(&url).unwrap(), (4, 1));
    assert!(a.stderr().lines().all(|l| !l.contains("halted")));
}

#[test]
fn a_second_instance_on_the_same_directory_is_refused() {
    let net = Net::new();
    let (a, url) = serve("log", &net.p("log"), &net.p("a.stderr"));
    net.add_ok(&url, "release 0");
    let out = Command::new(BIN)
        .args(["log", "serve", "--dir"])
        .arg(net.p("log"))
        .args(["--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "a second instance started");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("another process holds the log's lock"),
        "{err}"
    );
    // The first is unaffected; once it is gone (even by SIGKILL), the directory is free.
    assert_eq!(net.add_ok(&url, "release 1"), 1);
    a.kill();
    let (_a, url) = serve("log", &net.p("log"), &net.p("a2.stderr"));
    assert_eq!(net.add_ok(&url, "release 2"), 2);
}

#[test]
fn a_log_accepts_no_entry_until_every_witness_has_told_it_its_view() {
    let mut net = Net::new();
    // The witness is down when the log starts: the log cannot learn whether it is behind.
    net.witness.take().unwrap().kill();
    let (a, url) = serve("log", &net.p("log"), &net.p("a.stderr"));
    let out = net.add(&url, "release 0");
    assert!(!out.status.success(), "an entry was accepted unchecked");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("503") && err.contains("waiting for") && err.contains(WITNESS),
        "{err}"
    );
    // Once the witness answers, the log goes on; the retried entry is logged once.
    let listen = net.witness_url.trim_start_matches("https://").to_string();
    let (w, _) = serve_on("witness", &net.p("w1"), &net.p("w1b.stderr"), &listen);
    net.witness = Some(w);
    assert_eq!(net.add_ok(&url, "release 0"), 0);
    assert_eq!(net.add_ok(&url, "release 1"), 1);
    assert_eq!(net.checkpoint(&url).unwrap(), (2, 1));
    assert!(a.stderr().lines().all(|l| !l.contains("halted")));
}
