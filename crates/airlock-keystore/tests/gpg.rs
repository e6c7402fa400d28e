//! Signing through Debian's gnupg with keys made at test time in a temporary GNUPGHOME.

use std::path::Path;
use std::process::Command;

use airlock_core::crypto::Signer as _;
use airlock_keystore::KeystoreError;
use airlock_keystore::gpg::{GpgConfig, GpgSigner};

fn gpg(home: &Path, args: &[&str]) -> String {
    let out = Command::new("gpg")
        .arg("--homedir")
        .arg(home)
        .args(["--batch", "--pinentry-mode", "loopback", "--passphrase", ""])
        .args(args)
        .output()
        .expect("gpg runs (Debian package gnupg)");
    assert!(
        out.status.success(),
        "gpg {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Make a key; returns the fingerprints of the primary key and its subkeys.
fn make_key(home: &Path, uid: &str, algo: &str, usage: &str) -> Vec<String> {
    gpg(home, &["--quick-gen-key", uid, algo, usage, "never"]);
    fingerprints(home, uid)
}

fn fingerprints(home: &Path, uid: &str) -> Vec<String> {
    gpg(home, &["--with-colons", "--list-keys", uid])
        .lines()
        .filter(|l| l.starts_with("fpr:"))
        .map(|l| l.split(':').nth(9).unwrap().to_string())
        .collect()
}

struct Home(tempfile::TempDir);
impl Home {
    fn new() -> Home {
        let dir = tempfile::tempdir().unwrap();
        let mut perms = std::fs::metadata(dir.path()).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o700);
        std::fs::set_permissions(dir.path(), perms).unwrap();
        Home(dir)
    }
}
impl Drop for Home {
    fn drop(&mut self) {
        let _ = Command::new("gpgconf")
            .env("GNUPGHOME", self.0.path())
            .args(["--kill", "all"])
            .status();
    }
}

#[test]
fn gpg_keys_sign_and_are_refused_when_absent_or_unusable() {
    let home = Home::new();
    let h = home.0.path();
    let config = GpgConfig {
        binary: None,
        homedir: Some(h.to_path_buf()),
    };
    let msg = b"{\"signed\":{\"_type\":\"root\"}}";

    for (uid, algo) in [
        ("rsa@example.org", "rsa3072"),
        ("ed@example.org", "ed25519"),
    ] {
        let fpr = make_key(h, uid, algo, "sign").remove(0);
        let signer = GpgSigner::open_with(&fpr, &config).unwrap();
        let pk = signer.public_key().clone();
        assert_eq!(pk.key_id(), fpr.to_lowercase());
        let raw = signer.sign(msg).unwrap();
        pk.verify(msg, &raw).unwrap();
        assert!(pk.verify(b"another message", &raw).is_err());
        // The user id selects the same key.
        let by_uid = GpgSigner::open_with(uid, &config).unwrap();
        assert_eq!(by_uid.fingerprint(), fpr);
    }

    // A certify-only primary with a signing subkey: the certificate's id selects the subkey.
    let fprs = make_key(h, "split@example.org", "ed25519", "cert");
    gpg(
        h,
        &["--quick-add-key", &fprs[0], "ed25519", "sign", "never"],
    );
    let sub = fingerprints(h, "split@example.org").remove(1);
    let signer = GpgSigner::open_with(&fprs[0], &config).unwrap();
    assert_eq!(signer.fingerprint(), sub);
    signer
        .public_key()
        .verify(msg, &signer.sign(msg).unwrap())
        .unwrap();

    // Not in this keyring: the key is offline, not an error of the command.
    assert!(matches!(
        GpgSigner::open_with("0123456789ABCDEF0123456789ABCDEF01234567", &config),
        Err(KeystoreError::KeyNotHere { .. })
    ));
    // A primary key whose secret is elsewhere (exported without it, as for an offline key).
    let only_public = Home::new();
    let armored = gpg(h, &["--export", "--armor", &fprs[0]]);
    let file = only_public.0.path().join("pub.asc");
    std::fs::write(&file, armored).unwrap();
    gpg(only_public.0.path(), &["--import", file.to_str().unwrap()]);
    let elsewhere = GpgConfig {
        binary: None,
        homedir: Some(only_public.0.path().to_path_buf()),
    };
    assert!(matches!(
        GpgSigner::open_with(&fprs[0], &elsewhere),
        Err(KeystoreError::KeyNotHere { .. })
    ));
    // Its public key is still listed, for adding it to a role from this machine.
    let public = airlock_keystore::gpg::public_key(&fprs[0], &elsewhere).unwrap();
    assert_eq!(public.key_id(), sub.to_lowercase());

    // A key that expired (made in 2020, valid for a year) is refused by name, with its date.
    gpg(
        h,
        &[
            "--faked-system-time",
            "20200101T000000!",
            "--quick-gen-key",
            "old@example.org",
            "ed25519",
            "sign",
            "1y",
        ],
    );
    let old = fingerprints(h, "old@example.org").remove(0);
    let err = GpgSigner::open_with(&old, &config).unwrap_err().to_string();
    assert!(err.contains("expired at 2020-12-31"), "{err}");

    // A key that may only certify cannot sign metadata, by name.
    let cert_only = make_key(h, "certonly@example.org", "ed25519", "cert").remove(0);
    let err = GpgSigner::open_with(&cert_only, &config)
        .unwrap_err()
        .to_string();
    assert!(err.contains("signing capability"), "{err}");

    // A passphrase-protected key whose passphrase gpg-agent cannot ask for (its pinentry
    // fails): gpg's reason, once, on one line, with the way out.
    std::fs::write(h.join("gpg-agent.conf"), "pinentry-program /bin/false\n").unwrap();
    let _ = Command::new("gpgconf")
        .arg("--homedir")
        .arg(h)
        .args(["--kill", "gpg-agent"])
        .status();
    let out = Command::new("gpg")
        .arg("--homedir")
        .arg(h)
        .args([
            "--batch",
            "--pinentry-mode",
            "loopback",
            "--passphrase",
            "a passphrase",
        ])
        .args([
            "--quick-gen-key",
            "locked@example.org",
            "ed25519",
            "sign",
            "never",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let locked = fingerprints(h, "locked@example.org").remove(0);
    let signer = GpgSigner::open_with(&locked, &config).unwrap();
    let err = signer.sign(msg).unwrap_err().to_string();
    assert!(
        err.contains(&locked) && err.contains("gpg --detach-sign failed: gpg: "),
        "{err}"
    );
    assert!(!err.contains('\n'), "one line: {err}");
    assert_eq!(err.matches("No pinentry").count(), 1, "{err}");

    // No gpg at all: said once, with the way out.
    let missing = GpgConfig {
        binary: Some("/nonexistent/gpg".into()),
        homedir: Some(h.to_path_buf()),
    };
    let err = GpgSigner::open_with("x", &missing).unwrap_err().to_string();
    assert!(
        err.contains("cannot run /nonexistent/gpg") && err.contains("AIRLOCK_GPG"),
        "{err}"
    );
}
