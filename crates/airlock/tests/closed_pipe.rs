//! Output into a pipe whose reader went away (`airlock update list | head -1`): the binary ends
//! quietly with status 141 (what a shell reports for coreutils killed by SIGPIPE), never with a
//! panic (status 101).

#[path = "../../airlock-client/tests/common/mod.rs"]
mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use common::{HttpsRepo, TestRepo};

const EXIT_BROKEN_PIPE: i32 = 141;

/// Runs `cmd`, reads its first line of output like `head -1`, closes the pipe and waits.
fn run_like_head_1(mut cmd: Command) -> (Option<i32>, String, String) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn airlock");
    let mut first = String::new();
    {
        let stdout = child.stdout.take().expect("stdout");
        BufReader::new(stdout)
            .read_line(&mut first)
            .expect("first line");
        // Dropping the reader closes the pipe while the command still has lines to write.
    }
    let out = child.wait_with_output().expect("wait");
    (
        out.status.code(),
        first,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn update_list_into_a_closed_pipe_ends_quietly() {
    let mut repo = TestRepo::new();
    // More than a pipe buffer (64 KiB) of listing, so the writer must meet the closed pipe.
    for i in 0..3000 {
        repo.add_target("targets", &format!("files/file-{i:05}.bin"), b"x");
    }
    repo.publish();
    let https = HttpsRepo::serve(repo.path());
    let work = tempfile::tempdir().expect("tempdir");
    let ca = https.ca.write_ca_pem(work.path()).expect("ca.pem");
    let root = work.path().join("root.json");
    std::fs::write(&root, repo.initial_root()).expect("root");
    let dir = work.path().join("state");
    let init = Command::new(env!("CARGO_BIN_EXE_airlock"))
        .arg("update")
        .arg("--dir")
        .arg(&dir)
        .arg("init")
        .arg(&root)
        .args(["--metadata-url", &https.metadata_url()])
        .arg("--ca-file")
        .arg(&ca)
        .output()
        .expect("init");
    assert!(init.status.success(), "{init:?}");

    let mut list = Command::new(env!("CARGO_BIN_EXE_airlock"));
    list.arg("update").arg("--dir").arg(&dir).arg("list");
    let (code, first, stderr) = run_like_head_1(list);
    assert!(first.starts_with("files/file-00000.bin"), "{first}");
    assert_eq!(code, Some(EXIT_BROKEN_PIPE), "stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(stderr, "", "nothing to say about a reader that left");
}

#[test]
fn demo_into_a_closed_pipe_ends_quietly() {
    // Another command family: the demo prints its walk-through line by line as it goes.
    let mut demo = Command::new(env!("CARGO_BIN_EXE_airlock"));
    demo.arg("demo");
    let (code, first, stderr) = run_like_head_1(demo);
    assert!(!first.is_empty());
    assert_eq!(code, Some(EXIT_BROKEN_PIPE), "stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
