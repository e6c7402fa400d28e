//! docs/keys.md's GnuPG walk-through runs verbatim: every ```sh block of its "OpenPGP (GnuPG)"
//! section is pasted, in order, into one bash script (`set -euo pipefail`) run in an empty
//! directory with a fresh GNUPGHOME and the `airlock` built for this test first on PATH.

use std::path::Path;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_airlock");
const KEYS_MD: &str = include_str!("../../../docs/keys.md");
const SECTION: &str = "### OpenPGP (GnuPG)";

/// The ```sh blocks between `SECTION` and the next heading of its level or above.
fn section_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut inside = false;
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        if let Some(body) = &mut current {
            if line.trim_start().starts_with("```") {
                blocks.push(std::mem::take(body));
                current = None;
            } else {
                body.push_str(line);
                body.push('\n');
            }
            continue;
        }
        if line.starts_with("## ") || line.starts_with("### ") {
            inside = line.trim_end() == SECTION;
        } else if inside && line.trim_start() == "```sh" {
            current = Some(String::new());
        }
    }
    blocks
}

#[test]
fn gnupg_walk_through_runs_verbatim() {
    let blocks = section_blocks(KEYS_MD);
    assert!(blocks.len() >= 3, "found {} blocks", blocks.len());
    let mut script = String::from("set -euo pipefail\n");
    for b in &blocks {
        script.push_str(b);
    }
    script.push_str("echo GPG-BLOCKS-DONE\n");

    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("gnupg");
    std::fs::create_dir(&home).unwrap();
    let mut perms = std::fs::metadata(&home).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o700);
    std::fs::set_permissions(&home, perms).unwrap();
    let work = dir.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let path = format!(
        "{}:{}",
        Path::new(BIN).parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(&work)
        .env("PATH", path)
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
