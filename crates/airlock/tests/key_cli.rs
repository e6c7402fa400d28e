//! `airlock key`: standalone key files for offline keys. A generated key is encrypted (0600,
//! never overwritten), its printed public key is what `repo rotate --public-key` takes, a weak
//! passphrase is refused before anything is written, and `passwd` changes the passphrase
//! atomically (the old one no longer opens the file).

use std::path::Path;
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_airlock");
const PASS: &str = "correct horse battery staple";
const NEW_PASS: &str = "a different long passphrase";

fn airlock(args: &[&str], pass: Option<&str>) -> Output {
    let mut c = Command::new(BIN);
    c.args(args)
        .env_remove("AIRLOCK_PASSPHRASE")
        .stdin(Stdio::null());
    if let Some(p) = pass {
        c.env("AIRLOCK_PASSPHRASE", p);
    }
    c.output().unwrap()
}

fn ok(out: Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn failed(out: Output, what: &str) -> String {
    assert!(!out.status.success(), "{what} succeeded");
    String::from_utf8(out.stderr).unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn generate_prints_the_public_key_that_rotate_takes() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("root-9.key");
    let public = dir.path().join("root-9.pub.json");
    let printed = ok(
        airlock(
            &[
                "key",
                "--json",
                "generate",
                "--out",
                s(&key),
                "--public-out",
                s(&public),
            ],
            Some(PASS),
        ),
        "key generate",
    );
    let v: serde_json::Value = serde_json::from_str(&printed).unwrap();
    let file: serde_json::Value = serde_json::from_slice(&std::fs::read(&public).unwrap()).unwrap();
    assert_eq!(v["public_key"], file);
    assert_eq!(v["public_key"]["keytype"], "ed25519");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    let pem = std::fs::read_to_string(&key).unwrap();
    assert!(pem.contains("ENCRYPTED PRIVATE KEY"), "{pem}");

    // Never overwritten.
    let err = failed(
        airlock(&["key", "generate", "--out", s(&key)], Some(PASS)),
        "generate over an existing key",
    );
    assert!(err.contains("already exists"), "{err}");

    // `key public` on the private key gives the same key id.
    let again: serde_json::Value = serde_json::from_str(&ok(
        airlock(&["key", "--json", "public", s(&key)], Some(PASS)),
        "key public",
    ))
    .unwrap();
    assert_eq!(again["keyid"], v["keyid"]);

    // The public key file goes into a root rotation as is.
    let repo = dir.path().join("repo");
    ok(
        airlock(&["repo", "init", s(&repo)], Some(PASS)),
        "repo init",
    );
    ok(
        airlock(
            &[
                "repo",
                "-C",
                s(&repo),
                "rotate",
                "root",
                "--public-key",
                s(&public),
            ],
            Some(PASS),
        ),
        "repo rotate root --public-key",
    );
    let status = ok(
        airlock(&["repo", "-C", s(&repo), "--json", "status"], Some(PASS)),
        "repo status",
    );
    let keyid = v["keyid"].as_str().unwrap();
    assert!(status.contains(keyid), "{status}");
}

#[test]
fn a_weak_passphrase_is_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    for weak in ["short", "aaaaaaaaaaaaaaaa", "abababababababab"] {
        let key = dir.path().join("k.key");
        let err = failed(
            airlock(&["key", "generate", "--out", s(&key)], Some(weak)),
            "generate with a weak passphrase",
        );
        assert!(err.contains("too weak"), "{weak}: {err}");
        assert!(!key.exists(), "{weak}: a key file was left behind");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}

#[test]
fn passwd_replaces_the_passphrase() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("k.key");
    let first: serde_json::Value = serde_json::from_str(&ok(
        airlock(
            &[
                "key",
                "--json",
                "generate",
                "--scheme",
                "ecdsa",
                "--out",
                s(&key),
            ],
            Some(PASS),
        ),
        "generate",
    ))
    .unwrap();
    let out = Command::new(BIN)
        .args(["key", "passwd", s(&key), "--new-passphrase-env", "NEW_PASS"])
        .env("AIRLOCK_PASSPHRASE", PASS)
        .env("NEW_PASS", NEW_PASS)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    ok(out, "passwd");
    let err = failed(
        airlock(&["key", "public", s(&key)], Some(PASS)),
        "reading with the old passphrase",
    );
    assert!(err.contains("wrong passphrase"), "{err}");
    let after: serde_json::Value = serde_json::from_str(&ok(
        airlock(&["key", "--json", "public", s(&key)], Some(NEW_PASS)),
        "reading with the new passphrase",
    ))
    .unwrap();
    assert_eq!(after["keyid"], first["keyid"]);
    // A weak new passphrase leaves the file as it was.
    let out = Command::new(BIN)
        .args(["key", "passwd", s(&key), "--new-passphrase-env", "NEW_PASS"])
        .env("AIRLOCK_PASSPHRASE", NEW_PASS)
        .env("NEW_PASS", "weak")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    failed(out, "passwd to a weak passphrase");
    ok(
        airlock(&["key", "public", s(&key)], Some(NEW_PASS)),
        "the key still opens with the passphrase it had",
    );
}

/// Manual pages and completions come from the clap definitions: one page per command, each a
/// roff document naming its command; completion scripts for the common shells mention the
/// subcommands.
#[test]
fn manual_pages_and_completions_cover_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("man1");
    ok(airlock(&["man", "--out", s(&out)], None), "airlock man");
    for page in [
        "airlock.1",
        "airlock-repo-init.1",
        "airlock-update-download.1",
        "airlock-log-verify-proof.1",
        "airlock-witness-serve.1",
        "airlock-key-passwd.1",
    ] {
        let text =
            std::fs::read_to_string(out.join(page)).unwrap_or_else(|e| panic!("{page}: {e}"));
        assert!(
            text.starts_with(".ie") || text.contains(".TH"),
            "{page}: not roff"
        );
        let name = page.trim_end_matches(".1").to_uppercase();
        assert!(text.contains(&name), "{page} does not name {name}");
    }
    for shell in ["bash", "zsh", "fish"] {
        let script = ok(airlock(&["completions", shell], None), shell);
        for sub in ["repo", "update", "witness", "passwd"] {
            assert!(script.contains(sub), "{shell} completion lacks {sub}");
        }
    }
}

/// Keys that share a passphrase cost one prompt per run: `repo init` makes five encrypted keys
/// and asks twice (the passphrase and its confirmation), on a real terminal (`script` gives the
/// command a pseudo-terminal; rpassword reads from it). Feeding only those two lines would
/// fail at the third key if each key asked again.
#[test]
fn keys_sharing_a_passphrase_are_asked_for_once_per_run() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("R");
    let inner = format!(
        "env -u AIRLOCK_PASSPHRASE '{BIN}' repo init '{}' --root-keys 2",
        s(&repo)
    );
    // Each line is sent only after the prompt for it had time to appear, as a person types.
    let feeder = format!(
        "(sleep 1; printf '%s\\n' '{PASS}'; sleep 1; printf '%s\\n' '{PASS}'; sleep 3) | \
         timeout 60 script -qec \"{inner}\" /dev/null"
    );
    let out = Command::new("sh")
        .args(["-c", &feeder])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{shown}");
    assert_eq!(shown.matches("Passphrase for").count(), 1, "{shown}");
    let keys: Vec<_> = std::fs::read_dir(repo.join("keys"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "key"))
        .collect();
    assert_eq!(keys.len(), 5, "{keys:?}");
    for k in &keys {
        ok(
            airlock(&["key", "public", s(k)], Some(PASS)),
            "every key opens with the one passphrase",
        );
    }
}
