//! The README's command blocks run verbatim, in order, so the README cannot drift from the
//! program. Every ```sh block outside the "Set up" and "Install" sections is pasted into one
//! bash script (with `set -euo pipefail`), run in an empty directory with the `airlock` built
//! for this test first on PATH. "Set up" is what CI itself runs (`./scripts/test`, and the demo,
//! which has a test of its own in tests/demo.rs): running it here would run the suite inside the
//! suite. "Install" builds and installs the binary this test already has; its `man` and
//! `completions` commands are run by tests/key_cli.rs.
//!
//! Servers the README starts in the background are stopped at the end: the script runs in its
//! own process group, which is killed as a whole.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_airlock");
const README: &str = include_str!("../../../README.md");
/// Generous: the blocks derive several keys with scrypt and start servers on a loaded machine.
const DEADLINE: Duration = Duration::from_secs(300);

/// The ```sh blocks of `markdown`, each with the `## ` section it is in.
fn shell_blocks(markdown: &str) -> Vec<(String, String)> {
    let mut blocks = Vec::new();
    let mut section = String::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        match &mut current {
            Some(body) => {
                if line.trim_start().starts_with("```") {
                    blocks.push((section.clone(), std::mem::take(body)));
                    current = None;
                } else {
                    body.push_str(line);
                    body.push('\n');
                }
            }
            None => {
                if let Some(h) = line.strip_prefix("## ") {
                    section = h.trim().to_string();
                } else if line.trim_start() == "```sh" {
                    current = Some(String::new());
                }
            }
        }
    }
    assert!(current.is_none(), "README.md has an unclosed ```sh block");
    blocks
}

#[test]
fn readme_command_blocks_run_verbatim_in_order() {
    let blocks = shell_blocks(README);
    let runnable: Vec<&str> = blocks
        .iter()
        .filter(|(section, _)| section != "Set up" && section != "Install")
        .map(|(_, body)| body.as_str())
        .collect();
    assert!(
        runnable.len() >= 2,
        "expected the README's walk-throughs, found {} blocks",
        runnable.len()
    );
    let mut script = String::from("set -euo pipefail\n");
    for body in &runnable {
        script.push_str(body);
        script.push('\n');
    }
    script.push_str("echo README-BLOCKS-DONE\n");

    let dir = tempfile::tempdir().unwrap();
    let bin_dir = Path::new(BIN).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out_path = dir.path().join(".readme-test.out");
    let out_file = std::fs::File::create(&out_path).unwrap();
    let mut child = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(dir.path())
        .env("PATH", path)
        .env_remove("AIRLOCK_PASSPHRASE")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(out_file.try_clone().unwrap())
        .stderr(out_file)
        .process_group(0)
        .spawn()
        .unwrap();
    let pgid = child.id();
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if start.elapsed() > DEADLINE {
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    // Background servers the README started, and the script itself on a timeout.
    let _ = Command::new("kill")
        .args(["-TERM", "--", &format!("-{pgid}")])
        .status();
    let _ = child.wait();
    let mut output = String::new();
    std::fs::File::open(&out_path)
        .unwrap()
        .read_to_string(&mut output)
        .unwrap();
    let status =
        status.unwrap_or_else(|| panic!("README blocks did not finish in {DEADLINE:?}:\n{output}"));
    assert!(
        status.success() && output.contains("README-BLOCKS-DONE"),
        "README blocks failed ({status}):\n{output}\n--- script ---\n{script}"
    );
}
