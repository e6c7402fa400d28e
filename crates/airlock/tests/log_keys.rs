//! The log's and the witness's private keys on disk: encrypted by default (airlock-keystore's
//! encrypted PKCS#8), readable only with the right passphrase (environment variable or file
//! descriptor), plaintext only with `--plaintext-key`; a wrong passphrase or a damaged key file
//! gives a one-line error naming the file. Logs created with the old plaintext skey file still run.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

use airlock_core::crypto::PrivateKey;
use airlock_core::tlog::{CosignatureSigner, KeyAlgorithm, NoteSigner};
use airlock_keystore::PassphraseSource;

const BIN: &str = env!("CARGO_BIN_EXE_airlock");
const PASS: &str = "correct horse battery staple";

fn cmd(args: &[&str], pass: Option<&str>) -> Command {
    let mut c = Command::new(BIN);
    c.args(args).env_remove("AIRLOCK_PASSPHRASE");
    if let Some(p) = pass {
        c.env("AIRLOCK_PASSPHRASE", p);
    }
    c.stdin(Stdio::null());
    c
}

fn ok(out: Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Fails with exactly one line on stderr, starting with "error: ".
fn one_line_error(out: Output, what: &str) -> String {
    assert!(!out.status.success(), "{what} succeeded");
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "{what}: not one line: {err:?}"
    );
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

/// Starts `airlock <kind> serve` and returns once it prints its listening line.
fn serve(kind: &str, dir: &Path, pass: Option<&str>, extra: &[&str]) -> (Server, String) {
    let mut c = cmd(
        &[
            kind,
            "serve",
            "--dir",
            dir.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ],
        pass,
    );
    c.args(extra).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let server = Server(child);
    assert!(line.contains("listening on http://127.0.0.1:"), "{line:?}");
    (server, line)
}

fn json(out: Output, what: &str) -> serde_json::Value {
    serde_json::from_str(&ok(out, what)).unwrap()
}

#[test]
fn log_key_is_encrypted_by_default_and_needs_the_passphrase() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let init = json(
        cmd(
            &[
                "log",
                "init",
                "--json",
                "--dir",
                dir.to_str().unwrap(),
                "--origin",
                "keys.test/log",
            ],
            Some(PASS),
        )
        .output()
        .unwrap(),
        "log init",
    );
    let vkey = init["log_key"].as_str().unwrap();
    let key_file = dir.join("log.key");
    let bytes = std::fs::read(&key_file).unwrap();
    let text = String::from_utf8_lossy(&bytes);
    assert!(
        text.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"),
        "{text}"
    );
    assert!(!text.contains("PRIVATE+KEY"), "{text}");
    assert!(NoteSigner::from_skey(text.trim()).is_err());

    // Without a passphrase the file does not open; with the right one it holds the seed of the
    // log key init printed, and the seed itself is nowhere in the file.
    assert!(
        airlock_keystore::read_private_key(
            &key_file,
            &PassphraseSource::Env("AIRLOCK_UNSET_VAR_X".into())
        )
        .is_err()
    );
    let PrivateKey::Ed25519(ed) = airlock_keystore::read_private_key(
        &key_file,
        &PassphraseSource::Value(PASS.to_string().into()),
    )
    .unwrap() else {
        panic!("not an Ed25519 key")
    };
    let seed = ed.seed();
    assert!(!bytes.windows(32).any(|w| w == seed));
    let signer = NoteSigner::from_seed("keys.test/log", KeyAlgorithm::Ed25519, &seed).unwrap();
    assert_eq!(signer.verifier().to_vkey(), vkey);

    // serve with the right passphrase (AIRLOCK_PASSPHRASE, or a named variable) works.
    {
        let (_s, line) = serve("log", &dir, Some(PASS), &[]);
        assert!(line.contains("keys.test/log"), "{line}");
    }
    {
        let (_s, _) = serve_with_env("log", &dir, "MY_LOG_PASS", PASS);
    }
    // A wrong passphrase, or none at all (no terminal), fails with one line naming the file.
    let args = [
        "log",
        "serve",
        "--dir",
        dir.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ];
    let err = one_line_error(
        cmd(&args, Some("wrong passphrase")).output().unwrap(),
        "wrong pass",
    );
    assert!(err.contains(key_file.to_str().unwrap()), "{err}");
    let err = one_line_error(
        cmd(&args, None)
            .args(["--passphrase-env", "AIRLOCK_UNSET_VAR_X"])
            .output()
            .unwrap(),
        "unset variable",
    );
    assert!(err.contains(key_file.to_str().unwrap()), "{err}");

    // A truncated key file: one line naming the file.
    std::fs::write(&key_file, &bytes[..bytes.len() / 2]).unwrap();
    let err = one_line_error(cmd(&args, Some(PASS)).output().unwrap(), "truncated");
    assert!(err.contains(key_file.to_str().unwrap()), "{err}");
}

fn serve_with_env(kind: &str, dir: &Path, var: &str, value: &str) -> (Server, String) {
    let mut c = cmd(
        &[
            kind,
            "serve",
            "--dir",
            dir.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--passphrase-env",
            var,
        ],
        Some("not this one"),
    );
    c.env(var, value)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let server = Server(child);
    assert!(line.contains("listening on http://127.0.0.1:"), "{line:?}");
    (server, line)
}

#[test]
fn witness_key_is_encrypted_and_passphrase_can_come_from_a_file_descriptor() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("w");
    let pass_file = tmp.path().join("pass");
    std::fs::write(&pass_file, format!("{PASS}\n")).unwrap();
    // init and serve read the passphrase from fd 3 (as from cron: `3<secret`).
    let sh = |sub: &str| {
        Command::new("sh")
            .arg("-c")
            .arg(format!(
                "exec \"$0\" witness {sub} --passphrase-fd 3 3<\"$1\""
            ))
            .arg(BIN)
            .arg(&pass_file)
            .env_remove("AIRLOCK_PASSPHRASE")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let init = json(
        sh(&format!(
            "init --json --dir {} --name keys.test/w1",
            dir.display()
        )),
        "witness init",
    );
    let key_file = dir.join("witness.key");
    let text = std::fs::read_to_string(&key_file).unwrap();
    assert!(
        text.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"),
        "{text}"
    );
    assert!(CosignatureSigner::from_skey(text.trim()).is_err());
    let PrivateKey::Ed25519(ed) = airlock_keystore::read_private_key(
        &key_file,
        &PassphraseSource::Value(PASS.to_string().into()),
    )
    .unwrap() else {
        panic!("not an Ed25519 key")
    };
    let signer = CosignatureSigner::from_seed("keys.test/w1", &ed.seed()).unwrap();
    assert_eq!(
        signer.verifier().to_vkey(),
        init["witness_key"].as_str().unwrap()
    );

    let (_s, line) = serve("witness", &dir, Some(PASS), &[]);
    assert!(line.contains("keys.test/w1"), "{line}");
    let err = one_line_error(
        cmd(
            &[
                "witness",
                "serve",
                "--dir",
                dir.to_str().unwrap(),
                "--listen",
                "127.0.0.1:0",
            ],
            Some("wrong"),
        )
        .output()
        .unwrap(),
        "wrong pass",
    );
    assert!(err.contains(key_file.to_str().unwrap()), "{err}");
}

#[test]
fn plaintext_key_flag_writes_an_unencrypted_key_that_serves_without_a_passphrase() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let init = json(
        cmd(
            &[
                "log",
                "init",
                "--json",
                "--plaintext-key",
                "--dir",
                dir.to_str().unwrap(),
                "--origin",
                "keys.test/plain",
            ],
            None,
        )
        .output()
        .unwrap(),
        "log init --plaintext-key",
    );
    let key_file = dir.join("log.key");
    let text = std::fs::read_to_string(&key_file).unwrap();
    assert!(text.starts_with("-----BEGIN PRIVATE KEY-----"), "{text}");
    let PrivateKey::Ed25519(ed) = airlock_keystore::read_private_key(
        &key_file,
        &PassphraseSource::Env("AIRLOCK_UNSET_VAR_X".into()),
    )
    .unwrap() else {
        panic!("not an Ed25519 key")
    };
    let signer =
        NoteSigner::from_seed("keys.test/plain", KeyAlgorithm::Ed25519, &ed.seed()).unwrap();
    assert_eq!(
        signer.verifier().to_vkey(),
        init["log_key"].as_str().unwrap()
    );
    let (_s, _) = serve("log", &dir, None, &[]);

    // --plaintext-key is not combined with a passphrase option.
    let out = cmd(
        &[
            "witness",
            "init",
            "--plaintext-key",
            "--passphrase-env",
            "X",
            "--dir",
            tmp.path().join("w").to_str().unwrap(),
            "--name",
            "keys.test/w",
        ],
        None,
    )
    .output()
    .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot be used with"), "{err}");
    assert!(!tmp.path().join("w").exists());
}

#[test]
fn a_log_created_with_the_old_plaintext_skey_file_still_serves() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    ok(
        cmd(
            &[
                "log",
                "init",
                "--plaintext-key",
                "--dir",
                dir.to_str().unwrap(),
                "--origin",
                "keys.test/old",
            ],
            None,
        )
        .output()
        .unwrap(),
        "log init",
    );
    // Rewrite it as an old log: skey file, no key_name in log.toml.
    let old = NoteSigner::generate("keys.test/old", KeyAlgorithm::Ed25519).unwrap();
    let key_file = dir.join("log.key");
    std::fs::remove_file(&key_file).unwrap();
    std::fs::write(&key_file, format!("{}\n", old.to_skey().as_str())).unwrap();
    let toml_path = dir.join("log.toml");
    let toml = std::fs::read_to_string(&toml_path).unwrap();
    let stripped: String = toml
        .lines()
        .filter(|l| !l.starts_with("key_name"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_ne!(stripped, toml);
    std::fs::write(&toml_path, stripped).unwrap();
    let (server, line) = serve("log", &dir, None, &[]);
    assert!(line.contains("keys.test/old"), "{line}");
    drop(server);

    // A keystore key file without key_name in the configuration is refused, naming log.toml.
    std::fs::remove_file(&key_file).unwrap();
    airlock_keystore::write_private_key(
        &key_file,
        &PrivateKey::Ed25519(airlock_core::crypto::Ed25519Private::generate().unwrap()),
        &airlock_keystore::Protection::PlaintextForTests,
    )
    .unwrap();
    let err = one_line_error(
        cmd(
            &[
                "log",
                "serve",
                "--dir",
                dir.to_str().unwrap(),
                "--listen",
                "127.0.0.1:0",
            ],
            None,
        )
        .output()
        .unwrap(),
        "no key_name",
    );
    assert!(
        err.contains("log.toml") && err.contains("key_name"),
        "{err}"
    );
}
