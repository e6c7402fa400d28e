//! The command blocks of docs/keys.md run verbatim, in order, so the document cannot drift from
//! the program: every ```sh block of a section is pasted into one bash script
//! (`set -euo pipefail`) and run in an empty directory with the `airlock` built for this test
//! first on PATH. The PKCS#11 section needs SoftHSM2 and OpenSC's pkcs11-tool, the GnuPG one
//! gnupg (scripts/setup installs them); each script makes its own token or keyring.

use std::process::{Command, Stdio};

mod common;
use common::{BIN, doc_script, path_with_airlock, sh_blocks};

const KEYS_MD: &str = include_str!("../../../docs/keys.md");

#[test]
fn pkcs11_commands_in_keys_md_run_verbatim_in_order() {
    let blocks: Vec<_> = sh_blocks(KEYS_MD)
        .into_iter()
        .filter(|b| b.h2 == "Hardware keys (PKCS#11)")
        .collect();
    assert!(
        blocks.len() >= 4,
        "expected the token, listing, repository and offline-signing blocks, found {}",
        blocks.len()
    );
    let script = doc_script(&blocks, "KEYS-MD-BLOCKS-DONE");
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(dir.path())
        .env("PATH", path_with_airlock())
        .env_remove("SOFTHSM2_CONF")
        .env_remove("AIRLOCK_PASSPHRASE")
        .env_remove("AIRLOCK_REPO")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("KEYS-MD-BLOCKS-DONE"),
        "docs/keys.md PKCS#11 blocks failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        out.status
    );
    // What the walk-through promises: the listing shows the three keys, each usable and never
    // extractable, and the published root lists the token's root key.
    for label in ["\"root-1\"", "\"targets-1\"", "\"snapshot-1\""] {
        assert!(stdout.contains(label), "{label} not listed:\n{stdout}");
    }
    assert_eq!(
        stdout
            .matches("extractable no, never extractable yes")
            .count(),
        3
    );
    let root_pub: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("root-1.pub.json")).unwrap())
            .unwrap();
    assert_eq!(root_pub["scheme"], "ed25519");
    let root: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("myrepo/published/metadata/1.root.json")).unwrap(),
    )
    .unwrap();
    let keys = root["signed"]["keys"].as_object().unwrap();
    assert!(
        keys.values().any(|k| k["keyval"] == root_pub["keyval"]),
        "{root}"
    );
}

/// docs/keys.md's GnuPG walk-through (its "OpenPGP (GnuPG)" section), the same way, with a
/// fresh GNUPGHOME.
#[test]
fn gnupg_walk_through_runs_verbatim() {
    let blocks: Vec<_> = sh_blocks(KEYS_MD)
        .into_iter()
        .filter(|b| b.h3 == "OpenPGP (GnuPG)")
        .collect();
    assert!(blocks.len() >= 3, "found {} blocks", blocks.len());
    let script = doc_script(&blocks, "GPG-BLOCKS-DONE");

    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("gnupg");
    std::fs::create_dir(&home).unwrap();
    let mut perms = std::fs::metadata(&home).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o700);
    std::fs::set_permissions(&home, perms).unwrap();
    let work = dir.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let out = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(&work)
        .env("PATH", path_with_airlock())
        .env("GNUPGHOME", &home)
        .env_remove("AIRLOCK_PASSPHRASE")
        .env_remove("AIRLOCK_GPG")
        .output()
        .unwrap();
    let _ = Command::new("gpgconf")
        .env("GNUPGHOME", &home)
        .args(["--kill", "all"])
        .status();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.contains("GPG-BLOCKS-DONE"),
        "docs/keys.md GnuPG blocks failed ({}):\n{text}\n--- script ---\n{script}",
        out.status
    );
    // The published root lists the GnuPG root key by its fingerprint, and the repository verifies.
    let root = std::fs::read_to_string(work.join("gpgrepo/published/metadata/root.json")).unwrap();
    assert!(root.contains("pgp+rsa-pkcsv1.5") && root.contains("pgp+eddsa-ed25519"));
    let verify = Command::new(BIN)
        .args(["repo", "-C", "gpgrepo", "--json", "verify"])
        .current_dir(&work)
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );
}
