//! `airlock log` and `airlock witness` from the command line, as an operator would run them:
//! a witness and a log over HTTPS (test CA), an entry added, its proof fetched and verified
//! offline, the log monitored; bad input gives a one-line error and a non-zero exit.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_airlock");
/// The passphrase of the (encrypted) log and witness keys, given to every command.
const PASS: &str = "log cli test passphrase";

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env("AIRLOCK_PASSPHRASE", PASS)
        .output()
        .unwrap()
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

fn json(args: &[&str]) -> serde_json::Value {
    serde_json::from_str(&ok(args)).unwrap()
}

fn fails(args: &[&str]) -> String {
    let out = run(args);
    assert!(!out.status.success(), "airlock {args:?} succeeded");
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.trim_end().lines().count(), 1, "not one line: {err:?}");
    assert!(err.starts_with("error: "), "{err}");
    err
}

struct Server(Child);
impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(kind: &str, dir: &Path) -> (Server, String) {
    let mut child = Command::new(BIN)
        .args([
            kind,
            "serve",
            "--dir",
            dir.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ])
        .env("AIRLOCK_PASSPHRASE", PASS)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line.trim().rsplit(' ').next().unwrap().to_string();
    assert!(url.starts_with("https://"), "{line}");
    (Server(child), url)
}

#[test]
fn operator_workflow_with_a_witness() {
    let tmp = tempfile::tempdir().unwrap();
    let p = |s: &str| tmp.path().join(s).to_str().unwrap().to_string();
    std::fs::create_dir_all(p("tls")).unwrap();
    let ca = airlock_serve::TestCa::new().unwrap();
    let tls = ca
        .write_files(&tmp.path().join("tls"), &["127.0.0.1"])
        .unwrap();
    let (cert, key, ca_pem) = (
        tls.cert_chain.to_str().unwrap(),
        tls.key.to_str().unwrap(),
        tls.ca_cert.to_str().unwrap(),
    );

    let publisher = json(&[
        "log",
        "keygen",
        "--json",
        "--name",
        "pub.test",
        "--out",
        &p("pub.key"),
    ]);
    let publisher_vkey = publisher["verifier_key"].as_str().unwrap();
    let log = json(&[
        "log",
        "init",
        "--json",
        "--dir",
        &p("log"),
        "--origin",
        "log.test/one",
        "--publisher-key",
        publisher_vkey,
        "--tls-cert",
        cert,
        "--tls-key",
        key,
        "--ca-file",
        ca_pem,
    ]);
    let log_vkey = log["log_key"].as_str().unwrap().to_string();
    let witness = json(&[
        "witness",
        "init",
        "--json",
        "--dir",
        &p("w1"),
        "--name",
        "witness.test/w1",
        "--tls-cert",
        cert,
        "--tls-key",
        key,
    ]);
    let witness_vkey = witness["witness_key"].as_str().unwrap().to_string();
    ok(&[
        "witness",
        "add-log",
        "--dir",
        &p("w1"),
        "--log-key",
        &log_vkey,
    ]);
    let (_w, wurl) = serve("witness", &tmp.path().join("w1"));
    ok(&[
        "log",
        "add-witness",
        "--dir",
        &p("log"),
        "--key",
        &witness_vkey,
        "--url",
        &wurl,
    ]);
    let (_l, url) = serve("log", &tmp.path().join("log"));

    std::fs::write(p("release.txt"), "release 1.0 sha256:abcd\n").unwrap();
    let added = json(&[
        "log",
        "add",
        "--json",
        "--url",
        &url,
        "--ca-file",
        ca_pem,
        "--key",
        &p("pub.key"),
        "--origin",
        "log.test/one",
        "--file",
        &p("release.txt"),
    ]);
    assert_eq!(added["index"], 0);
    // A second publisher, added to the configuration and applied by a restart.
    let second = json(&[
        "log",
        "keygen",
        "--json",
        "--name",
        "pub2.test",
        "--out",
        &p("pub2.key"),
    ]);
    fails(&[
        "log",
        "add",
        "--url",
        &url,
        "--ca-file",
        ca_pem,
        "--key",
        &p("pub2.key"),
        "--data",
        "x",
    ]);
    ok(&[
        "log",
        "add-publisher",
        "--dir",
        &p("log"),
        "--key",
        second["verifier_key"].as_str().unwrap(),
    ]);
    drop(_l);
    let (_l, url) = serve("log", &tmp.path().join("log"));
    // Without --origin, the origin is read from the log's checkpoint.
    let added = json(&[
        "log",
        "add",
        "--json",
        "--url",
        &url,
        "--ca-file",
        ca_pem,
        "--key",
        &p("pub.key"),
        "--data",
        "release 1.1",
    ]);
    assert_eq!(added["index"], 1);

    // The proof is served once the checkpoint with the entry is published (cosigned).
    let mut fetched = false;
    for _ in 0..500 {
        let out = run(&[
            "log",
            "proof",
            "--url",
            &url,
            "--ca-file",
            ca_pem,
            "--index",
            "0",
            "--out",
            &p("release.tlog-proof"),
        ]);
        if out.status.success() {
            fetched = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(fetched, "proof never served");
    // It may have been fetched against a checkpoint not yet cosigned; re-fetch until it verifies
    // with the witness quorum (the log publishes the cosigned checkpoint right after).
    let mut verified = None;
    for _ in 0..500 {
        let out = run(&[
            "log",
            "verify-proof",
            "--json",
            "--proof",
            &p("release.tlog-proof"),
            "--entry-file",
            &p("release.txt"),
            "--log-key",
            &log_vkey,
            "--witness-key",
            &witness_vkey,
            "--quorum",
            "1",
        ]);
        if out.status.success() {
            verified = Some(serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap());
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
        ok(&[
            "log",
            "proof",
            "--url",
            &url,
            "--ca-file",
            ca_pem,
            "--index",
            "0",
            "--out",
            &p("release.tlog-proof"),
        ]);
    }
    let v = verified.expect("proof never verified with the witness quorum");
    assert_eq!(v["index"], 0);
    assert_eq!(v["cosigned_by"][0], "witness.test/w1");

    // The same check through a tlog-policy file (1-of-1 witness quorum).
    std::fs::write(
        p("policy"),
        format!("log {log_vkey}\nwitness w1 {witness_vkey}\nquorum w1\n"),
    )
    .unwrap();
    let v = json(&[
        "log",
        "verify-proof",
        "--json",
        "--proof",
        &p("release.tlog-proof"),
        "--entry-file",
        &p("release.txt"),
        "--policy",
        &p("policy"),
    ]);
    assert_eq!(v["index"], 0);
    // A policy that demands a witness nobody asked is not met.
    let stranger = json(&[
        "witness",
        "init",
        "--json",
        "--dir",
        &p("w2"),
        "--name",
        "witness.test/w2",
    ]);
    std::fs::write(
        p("policy2"),
        format!(
            "log {log_vkey}\nwitness w1 {witness_vkey}\nwitness w2 {}\ngroup both all w1 w2\nquorum both\n",
            stranger["witness_key"].as_str().unwrap()
        ),
    )
    .unwrap();
    fails(&[
        "log",
        "verify-proof",
        "--proof",
        &p("release.tlog-proof"),
        "--entry-file",
        &p("release.txt"),
        "--policy",
        &p("policy2"),
    ]);

    // The same proof does not verify another entry, or against another log key.
    std::fs::write(p("evil.txt"), "release 1.0 sha256:eeee\n").unwrap();
    fails(&[
        "log",
        "verify-proof",
        "--proof",
        &p("release.tlog-proof"),
        "--entry-file",
        &p("evil.txt"),
        "--log-key",
        &log_vkey,
    ]);
    let other = json(&[
        "log",
        "keygen",
        "--json",
        "--name",
        "log.test/one",
        "--out",
        &p("o.key"),
    ]);
    fails(&[
        "log",
        "verify-proof",
        "--proof",
        &p("release.tlog-proof"),
        "--entry-file",
        &p("release.txt"),
        "--log-key",
        other["verifier_key"].as_str().unwrap(),
    ]);

    // Monitor: the whole log re-derived; a second run only reports new entries. First wait
    // until the checkpoint with both entries is published.
    for _ in 0..500 {
        let m = json(&[
            "log",
            "monitor",
            "--json",
            "--url",
            &url,
            "--ca-file",
            ca_pem,
            "--log-key",
            &log_vkey,
        ]);
        if m["size"] == 2 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let m = json(&[
        "log",
        "monitor",
        "--json",
        "--url",
        &url,
        "--ca-file",
        ca_pem,
        "--log-key",
        &log_vkey,
        "--state",
        &p("monitor.json"),
    ]);
    assert_eq!(m["size"], 2);
    assert_eq!(m["new_entries"][0]["entry"], "release 1.0 sha256:abcd\n");
    assert_eq!(m["new_entries"][1]["entry"], "release 1.1");
    let m = json(&[
        "log",
        "monitor",
        "--json",
        "--url",
        &url,
        "--ca-file",
        ca_pem,
        "--log-key",
        &log_vkey,
        "--state",
        &p("monitor.json"),
    ]);
    assert_eq!(m["new_entries"].as_array().unwrap().len(), 0);

    // Bad input: one-line errors, non-zero exit.
    fails(&[
        "log",
        "init",
        "--dir",
        &p("log"),
        "--origin",
        "log.test/one",
    ]);
    fails(&[
        "log",
        "add",
        "--url",
        &url,
        "--ca-file",
        ca_pem,
        "--key",
        &p("o.key"),
        "--origin",
        "log.test/one",
        "--data",
        "not a publisher",
    ]);
    fails(&[
        "witness",
        "add-log",
        "--dir",
        &p("w1"),
        "--log-key",
        "garbage",
    ]);
    fails(&["log", "serve", "--dir", &p("nonexistent")]);
    // --help carries an example.
    let help = ok(&["log", "add", "--help"]);
    assert!(help.contains("Example:"));
}
