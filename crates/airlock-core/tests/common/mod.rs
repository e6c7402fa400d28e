//! Shared helpers for tests that run the Python reference implementation.
#![allow(dead_code)]

pub mod repo;

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// The Python interpreter with python-tuf and securesystemslib.
///
/// `AIRLOCK_PYTHON` wins (and then it must work: a missing interpreter fails the test). Without
/// it, `<repo root>/.venv/bin/python` is used if present; otherwise `None` and the caller skips
/// with a printed notice.
pub fn python() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("AIRLOCK_PYTHON") {
        let p = PathBuf::from(p);
        assert!(
            p.exists(),
            "AIRLOCK_PYTHON is set to {} but it does not exist",
            p.display()
        );
        return Some(p);
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let venv = root.join(".venv/bin/python");
    if venv.exists() {
        Some(venv)
    } else {
        eprintln!("notice: skipping Python interop test (no AIRLOCK_PYTHON, no .venv)");
        None
    }
}

/// Run `script` with `stdin` as input; panics with Python's stderr on failure.
pub fn run_python(python: &PathBuf, script: &str, stdin: &[u8]) -> Vec<u8> {
    let mut child = Command::new(python)
        .arg("-c")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start python");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin)
        .expect("write to python");
    let out = child.wait_with_output().expect("python output");
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}
