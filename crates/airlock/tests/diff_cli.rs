//! `airlock diff A B` as a person and a script use it: the summary, `--json`, the exit status
//! (0 identical, 1 different, 3 refused by a cap), and the hand-over to Debian's diffoscope
//! (installed by scripts/setup; a machine without it fails the hand-over test).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn airlock(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_airlock"))
        .args(args)
        .output()
        .expect("run airlock")
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not one JSON document ({e}):\n{}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// Two GNU tar builds of one tree (mtimes 1 and 2) and a third with a changed file.
fn builds(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let src = dir.join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("main.c"), "int main(void) { return 0; }\n").unwrap();
    std::fs::write(src.join("README"), "hello\n").unwrap();
    let tar = |name: &str, mtime: u32| {
        let out = dir.join(name);
        let status = Command::new("tar")
            .current_dir(dir)
            .arg(format!("--mtime=@{mtime}"))
            .args(["--sort=name", "--owner=0", "--group=0", "-czf"])
            .arg(&out)
            .arg("src")
            .status()
            .expect("run GNU tar");
        assert!(status.success());
        out
    };
    let a = tar("a.tar.gz", 1);
    let b = tar("b.tar.gz", 2);
    std::fs::write(src.join("main.c"), "int main(void) { return 1; }\n").unwrap();
    let c = tar("c.tar.gz", 1);
    (a, b, c)
}

#[test]
fn summary_json_and_exit_status() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b, c) = builds(tmp.path());

    let out = airlock(&["diff", "--json", s(&a), s(&a)]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(json(&out)["verdict"], "identical");

    let out = airlock(&["diff", s(&a), s(&b), "--json"]);
    assert_eq!(out.status.code(), Some(1), "different files: status 1");
    let v = json(&out);
    assert_eq!(v["verdict"], "metadata-only", "{v}");
    assert_eq!(v["summary"]["metadata_only"], 3, "{v}");

    let out = airlock(&["diff", s(&a), s(&c)]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("CONTENT DIFFERS: 1 changed, 0 added, 0 removed"),
        "{text}"
    );
    assert!(
        text.contains("      -int main(void) { return 0; }"),
        "{text}"
    );
    assert!(
        text.contains("      +int main(void) { return 1; }"),
        "{text}"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("differ in content"), "{err}");

    // An input beyond a cap: refused (3), naming the file and the cap.
    let out = airlock(&["--json", "diff", "--max-members", "2", s(&a), s(&c)]);
    assert_eq!(out.status.code(), Some(3));
    let v = json(&out);
    assert_eq!(v["error"]["kind"], "refused", "{v}");
    let all = v.to_string();
    assert!(
        all.contains("a.tar.gz: more than 2 members (member count cap)"),
        "{v}"
    );

    // A missing file: an error naming it.
    let missing = tmp.path().join("missing.tar");
    let out = airlock(&["--json", "diff", s(&a), s(&missing)]);
    assert_eq!(out.status.code(), Some(1));
    let v = json(&out);
    assert!(v.to_string().contains(s(&missing)), "{v}");
}

fn diffoscope() -> PathBuf {
    for p in ["/usr/bin/diffoscope", "/usr/local/bin/diffoscope"] {
        if Path::new(p).exists() {
            return PathBuf::from(p);
        }
    }
    panic!("diffoscope is not installed: run ./scripts/setup (it installs diffoscope-minimal)");
}

#[test]
fn diffoscope_takes_over_with_its_output_and_exit_status() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, _, c) = builds(tmp.path());
    let direct = Command::new(diffoscope())
        .args([s(&a), s(&c)])
        .output()
        .unwrap();
    assert_eq!(direct.status.code(), Some(1), "diffoscope: they differ");
    let out = airlock(&["diff", "--diffoscope", s(&a), s(&c)]);
    assert_eq!(out.status.code(), direct.status.code());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&direct.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("return 1"));

    let out = airlock(&["diff", "--diffoscope", s(&a), s(&a)]);
    assert_eq!(out.status.code(), Some(0));

    // --json asks diffoscope for its own JSON.
    let out = airlock(&["diff", "--json", "--diffoscope", s(&a), s(&c)]);
    assert_eq!(out.status.code(), Some(1));
    let v = json(&out);
    assert!(v["source1"].as_str().unwrap().ends_with("a.tar.gz"), "{v}");
}

#[test]
fn diffoscope_missing_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b, _) = builds(tmp.path());
    let empty = tmp.path().join("empty-bin");
    std::fs::create_dir(&empty).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_airlock"))
        .args(["diff", "--diffoscope", s(&a), s(&b)])
        .env("PATH", &empty)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--diffoscope: diffoscope is not installed"),
        "{err}"
    );
    assert!(out.stdout.is_empty());
}
