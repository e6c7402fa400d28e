//! The command blocks of docs/keys.md's "Hardware keys (PKCS#11)" section run verbatim, in
//! order, so the document cannot drift from the program: every ```sh block of the section is
//! pasted into one bash script (`set -euo pipefail`) and run in an empty directory with the
//! `airlock` built for this test first on PATH. They need SoftHSM2 and OpenSC's pkcs11-tool
//! (scripts/setup installs both); the script makes its own token in its directory.

use std::path::Path;
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_airlock");
const KEYS_MD: &str = include_str!("../../../docs/keys.md");
const SECTION: &str = "Hardware keys (PKCS#11)";

/// The ```sh blocks of the `## {section}` section of `markdown`.
fn section_blocks(markdown: &str, section: &str) -> Vec<String> {
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
        } else if let Some(h) = line.strip_prefix("## ") {
            inside = h.trim() == section;
        } else if inside && line.trim_start() == "```sh" {
            current = Some(String::new());
        }
    }
    assert!(
        current.is_none(),
        "docs/keys.md has an unclosed ```sh block"
    );
    blocks
}

#[test]
fn pkcs11_commands_in_keys_md_run_verbatim_in_order() {
    let blocks = section_blocks(KEYS_MD, SECTION);
    assert!(
        blocks.len() >= 4,
        "expected the token, listing, repository and offline-signing blocks, found {}",
        blocks.len()
    );
    let mut script = String::from("set -euo pipefail\n");
    for b in &blocks {
        script.push_str(b);
        script.push('\n');
    }
    script.push_str("echo KEYS-MD-BLOCKS-DONE\n");

    let dir = tempfile::tempdir().unwrap();
    let bin_dir = Path::new(BIN).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(dir.path())
        .env("PATH", path)
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
