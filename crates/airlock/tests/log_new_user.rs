//! `airlock log` and `airlock witness` as a new user meets them: each test is a stumble found by
//! trying the commands as documented, and what the user should see instead.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};

use airlock_core::tlog::{KeyAlgorithm, NoteSigner};

const BIN: &str = env!("CARGO_BIN_EXE_airlock");
const PASS: &str = "new user test passphrase";

fn cmd(args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.args(args)
        .env("AIRLOCK_PASSPHRASE", PASS)
        .stdin(Stdio::null());
    c
}

fn ok(args: &[&str]) -> String {
    let out = cmd(args).output().unwrap();
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

/// The command fails with a one-line error; returns it.
fn one_line_error(out: Output, what: &str) -> String {
    assert!(!out.status.success(), "{what} succeeded");
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "{what}: not one line: {err:?}"
    );
    err
}

fn fails(args: &[&str]) -> String {
    one_line_error(cmd(args).output().unwrap(), &format!("{args:?}"))
}

struct Server(Child);
impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A log (encrypted key, HTTPS with a test CA, one publisher, no witness), served.
struct Running {
    tmp: tempfile::TempDir,
    _server: Server,
    url: String,
    ca: String,
    log_key: String,
}

impl Running {
    fn p(&self, s: &str) -> String {
        self.tmp.path().join(s).to_str().unwrap().to_string()
    }
}

fn running_log() -> Running {
    running_log_with(&[])
}

/// As [`running_log`], also accepting `extra_publishers` (verifier keys).
fn running_log_with(extra_publishers: &[String]) -> Running {
    let tmp = tempfile::tempdir().unwrap();
    let p = |s: &str| tmp.path().join(s).to_str().unwrap().to_string();
    std::fs::create_dir_all(p("tls")).unwrap();
    let tls = airlock_serve::TestCa::new()
        .unwrap()
        .write_files(&tmp.path().join("tls"), &["127.0.0.1"])
        .unwrap();
    let publisher = json(&[
        "log",
        "keygen",
        "--json",
        "--name",
        "pub.test",
        "--out",
        &p("pub.key"),
    ]);
    let mut init: Vec<String> = [
        "log",
        "init",
        "--json",
        "--dir",
        &p("log"),
        "--origin",
        "log.test/new",
        "--publisher-key",
        publisher["verifier_key"].as_str().unwrap(),
        "--tls-cert",
        tls.cert_chain.to_str().unwrap(),
        "--tls-key",
        tls.key.to_str().unwrap(),
    ]
    .map(String::from)
    .to_vec();
    for k in extra_publishers {
        init.extend(["--publisher-key".to_string(), k.clone()]);
    }
    let log = json(&init.iter().map(String::as_str).collect::<Vec<_>>());
    let mut child = cmd(&[
        "log",
        "serve",
        "--dir",
        &p("log"),
        "--listen",
        "127.0.0.1:0",
    ])
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
    Running {
        ca: tls.ca_cert.to_str().unwrap().to_string(),
        log_key: log["log_key"].as_str().unwrap().to_string(),
        tmp,
        _server: Server(child),
        url,
    }
}

#[test]
fn init_without_a_passphrase_source_leaves_nothing_behind() {
    let tmp = tempfile::tempdir().unwrap();
    for (kind, name_flag, name) in [
        ("log", "--origin", "log.test/x"),
        ("witness", "--name", "witness.test/x"),
    ] {
        let dir = tmp.path().join(kind);
        let out = Command::new(BIN)
            .args([
                kind,
                "init",
                "--dir",
                dir.to_str().unwrap(),
                name_flag,
                name,
            ])
            .args(["--passphrase-env", "AIRLOCK_TEST_UNSET_PASSPHRASE"])
            .env_remove("AIRLOCK_TEST_UNSET_PASSPHRASE")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let err = one_line_error(out, kind);
        assert!(err.contains("AIRLOCK_TEST_UNSET_PASSPHRASE"), "{err}");
        assert!(!dir.exists(), "{kind} init left {} behind", dir.display());
    }
    // An existing directory given to init is kept, and left as it was.
    let dir = tmp.path().join("existing");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("notes.txt"), "mine").unwrap();
    let out = Command::new(BIN)
        .args([
            "log",
            "init",
            "--dir",
            dir.to_str().unwrap(),
            "--origin",
            "log.test/x",
        ])
        .args(["--passphrase-env", "AIRLOCK_TEST_UNSET_PASSPHRASE"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    one_line_error(out, "init in an existing directory");
    let left: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, ["notes.txt"]);
}

#[test]
fn a_private_key_given_as_publisher_key_is_never_echoed() {
    let tmp = tempfile::tempdir().unwrap();
    let secret = NoteSigner::generate("pub.test", KeyAlgorithm::Ed25519)
        .unwrap()
        .to_skey();
    // PRIVATE+KEY+<name>+<hash>+<base64 key>; the base64 may itself hold '+'.
    let secret_part = secret.splitn(5, '+').nth(4).unwrap().to_string();
    assert!(secret_part.len() > 20, "{}", secret.as_str());
    let dir = tmp.path().join("log");
    let err = fails(&[
        "log",
        "init",
        "--dir",
        dir.to_str().unwrap(),
        "--origin",
        "log.test/x",
        "--publisher-key",
        &secret,
    ]);
    assert!(!err.contains(&secret_part), "private key echoed: {err}");
    assert!(err.contains("private key"), "{err}");
    assert!(!dir.exists());
    // Nor by add-publisher / add-witness.
    ok(&[
        "log",
        "init",
        "--dir",
        dir.to_str().unwrap(),
        "--origin",
        "log.test/x",
        "--plaintext-key",
    ]);
    for args in [
        vec![
            "log",
            "add-publisher",
            "--dir",
            dir.to_str().unwrap(),
            "--key",
            &secret,
        ],
        vec![
            "log",
            "add-witness",
            "--dir",
            dir.to_str().unwrap(),
            "--key",
            &secret,
            "--url",
            "https://w.test",
        ],
    ] {
        let err = fails(&args);
        assert!(!err.contains(&secret_part), "private key echoed: {err}");
    }
}

#[test]
fn verify_proof_refuses_a_witness_key_that_is_not_a_cosignature_key() {
    let tmp = tempfile::tempdir().unwrap();
    let p = |s: &str| tmp.path().join(s).to_str().unwrap().to_string();
    std::fs::write(p("entry"), "x").unwrap();
    std::fs::write(p("proof"), "not checked before the keys").unwrap();
    let log = NoteSigner::generate("log.test/x", KeyAlgorithm::Ed25519).unwrap();
    let ed25519 = NoteSigner::generate("witness.test/w", KeyAlgorithm::Ed25519)
        .unwrap()
        .verifier()
        .to_vkey();
    let err = fails(&[
        "log",
        "verify-proof",
        "--proof",
        &p("proof"),
        "--entry-file",
        &p("entry"),
        "--log-key",
        &log.verifier().to_vkey(),
        "--witness-key",
        &ed25519,
    ]);
    assert!(err.contains("witness.test/w"), "{err}");
    assert!(err.contains("cosignature"), "{err}");
}

#[test]
fn add_witness_validates_the_url() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    ok(&[
        "log",
        "init",
        "--dir",
        dir.to_str().unwrap(),
        "--origin",
        "log.test/x",
        "--plaintext-key",
    ]);
    let w = airlock_core::tlog::CosignatureSigner::generate("witness.test/w")
        .unwrap()
        .verifier()
        .to_vkey();
    let before = std::fs::read(dir.join("log.toml")).unwrap();
    for url in [
        "not a url",
        "ftp://w.test",
        "http://w.example.org",
        "w.test",
    ] {
        let err = fails(&[
            "log",
            "add-witness",
            "--dir",
            dir.to_str().unwrap(),
            "--key",
            &w,
            "--url",
            url,
        ]);
        assert!(err.contains(url), "{url}: {err}");
        assert_eq!(std::fs::read(dir.join("log.toml")).unwrap(), before);
    }
    ok(&[
        "log",
        "add-witness",
        "--dir",
        dir.to_str().unwrap(),
        "--key",
        &w,
        "--url",
        "https://w.test/prefix",
    ]);
}

#[test]
fn monitor_state_as_a_bare_file_name_as_the_help_shows() {
    let log = running_log();
    let work = log.tmp.path().join("work");
    std::fs::create_dir(&work).unwrap();
    for _ in 0..2 {
        let out = cmd(&[
            "log",
            "monitor",
            "--url",
            &log.url,
            "--ca-file",
            &log.ca,
            "--log-key",
            &log.log_key,
            "--state",
            "monitor.state",
        ])
        .current_dir(&work)
        .output()
        .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(work.join("monitor.state").is_file());
}

#[test]
fn proof_right_after_add_and_add_wait() {
    let log = running_log();
    // `add --wait` returns once a published checkpoint includes the entry: the proof is there.
    let added = json(&[
        "log",
        "add",
        "--json",
        "--wait",
        "--url",
        &log.url,
        "--ca-file",
        &log.ca,
        "--key",
        &log.p("pub.key"),
        "--data",
        "release 1",
    ]);
    let index = added["index"].as_u64().unwrap().to_string();
    assert!(added["checkpoint_size"].as_u64().unwrap() > added["index"].as_u64().unwrap());
    ok(&[
        "log",
        "proof",
        "--wait",
        "0",
        "--url",
        &log.url,
        "--ca-file",
        &log.ca,
        "--index",
        &index,
        "--out",
        &log.p("p1"),
    ]);
    // Without --wait, `proof` right after `add` waits (bounded) for the checkpoint.
    let index = ok(&[
        "log",
        "add",
        "--url",
        &log.url,
        "--ca-file",
        &log.ca,
        "--key",
        &log.p("pub.key"),
        "--data",
        "release 2",
    ]);
    ok(&[
        "log",
        "proof",
        "--url",
        &log.url,
        "--ca-file",
        &log.ca,
        "--index",
        index.trim(),
        "--out",
        &log.p("p2"),
    ]);
    // An entry that is not there: after the bounded wait, a message that says to retry.
    let err = fails(&[
        "log",
        "proof",
        "--wait",
        "1",
        "--url",
        &log.url,
        "--ca-file",
        &log.ca,
        "--index",
        "99",
    ]);
    assert!(err.contains("retry"), "{err}");
}

#[test]
fn keygen_writes_an_encrypted_publisher_key_and_old_plaintext_keys_still_submit() {
    use std::os::unix::fs::PermissionsExt;
    let legacy = NoteSigner::generate("old.pub.test", KeyAlgorithm::Ed25519).unwrap();
    let log = running_log_with(&[legacy.verifier().to_vkey()]);
    let key = log.tmp.path().join("pub.key");
    let text = std::fs::read_to_string(&key).unwrap();
    assert!(text.contains("ENCRYPTED PRIVATE KEY"), "{text}");
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let vkey = std::fs::read_to_string(log.p("pub.key.pub")).unwrap();
    assert!(vkey.starts_with("pub.test+"), "{vkey}");
    // Never overwritten.
    fails(&[
        "log",
        "keygen",
        "--name",
        "pub.test",
        "--out",
        &log.p("pub.key"),
    ]);
    assert_eq!(std::fs::read_to_string(&key).unwrap(), text);

    // The encrypted key submits with its passphrase, and not without it.
    let add = |key: &str, pass: &str| {
        Command::new(BIN)
            .args([
                "log",
                "add",
                "--url",
                &log.url,
                "--ca-file",
                &log.ca,
                "--key",
                key,
                "--data",
                "entry",
            ])
            .env("AIRLOCK_PASSPHRASE", pass)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let out = add(&log.p("pub.key"), PASS);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = one_line_error(
        add(&log.p("pub.key"), "wrong passphrase"),
        "wrong passphrase",
    );
    assert!(err.contains("pub.key"), "{err}");

    // A plaintext skey file from before still works (it carries its own name).
    std::fs::write(log.p("old.key"), format!("{}\n", legacy.to_skey().as_str())).unwrap();
    let out = add(&log.p("old.key"), "unused");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
