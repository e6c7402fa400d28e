//! The README's command blocks run verbatim, in order, so the README cannot drift from the
//! program. Every ```sh block outside the "Set up" and "Install" sections is pasted into one
//! bash script (with `set -euo pipefail`), run in an empty directory with the `airlock` built
//! for this test first on PATH. "Set up" is what CI itself runs (`./scripts/test`, and the demo,
//! which has a test of its own in tests/demo.rs): running it here would run the suite inside the
//! suite. "Install" builds and installs the binary this test already has; its `man` and
//! `completions` commands are run by tests/key_cli.rs. The "BitTorrent fallback" block runs
//! only in a build with the `bittorrent` feature.
//!
//! Servers the README starts in the background are stopped at the end: the script runs in its
//! own process group, which is killed as a whole.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::{doc_script, path_with_airlock, sh_blocks};

const README: &str = include_str!("../../../README.md");
/// Generous: the blocks derive several keys with scrypt and start servers on a loaded machine.
const DEADLINE: Duration = Duration::from_secs(300);

#[test]
fn readme_command_blocks_run_verbatim_in_order() {
    let blocks = sh_blocks(README);
    let runnable: Vec<_> = blocks
        .iter()
        .filter(|b| b.h2 != "Set up" && b.h2 != "Install")
        // Its commands exist only in a build with the feature (./scripts/test runs this test
        // once more with it).
        .filter(|b| cfg!(feature = "bittorrent") || b.h2 != "BitTorrent fallback")
        .collect();
    assert!(
        runnable.len() >= 2,
        "expected the README's walk-throughs, found {} blocks",
        runnable.len()
    );
    let script = doc_script(runnable.iter().copied(), "README-BLOCKS-DONE");
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join(".readme-test.out");
    let out_file = std::fs::File::create(&out_path).unwrap();
    let mut child = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(dir.path())
        .env("PATH", path_with_airlock())
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
