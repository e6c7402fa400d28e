//! Reproducible builds through the binary: `airlock repo add` recording a target's source and
//! recipe in signed metadata (docs/rebuild.md).

use std::fs;
use std::path::Path;
use std::process::Command;

use airlock_core::rebuild::{Builder, RebuildInfo, SourceRef};

const AIRLOCK: &str = env!("CARGO_BIN_EXE_airlock");
const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

fn airlock(args: &[&str]) -> std::process::Output {
    Command::new(AIRLOCK)
        .args(args)
        .env_remove("AIRLOCK_PASSPHRASE")
        .env_remove("AIRLOCK_REPO")
        .output()
        .expect("run airlock")
}

fn ok(args: &[&str]) -> String {
    let out = airlock(args);
    assert!(
        out.status.success(),
        "airlock {args:?} failed:\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Run and require failure with a one-line error; returns stderr.
fn fails(args: &[&str]) -> String {
    let out = airlock(args);
    assert!(!out.status.success(), "airlock {args:?} should have failed");
    let err = String::from_utf8(out.stderr).unwrap();
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with("For more information"))
        .collect();
    assert_eq!(lines.len(), 1, "one-line error expected: {err}");
    err
}

fn published_targets(repo: &Path) -> serde_json::Value {
    let meta = repo.join("published/metadata");
    let mut newest = (0u64, None);
    for e in fs::read_dir(&meta).unwrap().flatten() {
        let name = e.file_name().into_string().unwrap();
        if let Some(v) = name.strip_suffix(".targets.json")
            && let Ok(v) = v.parse::<u64>()
            && v >= newest.0
        {
            newest = (v, Some(e.path()));
        }
    }
    serde_json::from_slice(&fs::read(newest.1.expect("a targets.json")).unwrap()).unwrap()
}

/// The recipe given on the command line is signed into the target's custom metadata, reads back
/// through the strict parser, and every bad or missing part is refused before anything is
/// staged.
#[test]
fn repo_add_records_source_and_recipe() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let r = repo.to_str().unwrap();
    ok(&["repo", "init", r, "--plaintext-keys"]);
    let file = tmp.path().join("app");
    fs::write(&file, "binary").unwrap();
    let f = file.to_str().unwrap();
    let recipe = [
        "--source-git",
        "https://example.org/app.git",
        "--source-commit",
        COMMIT,
        "--build-command",
        "make app",
        "--builder-toolchain",
        "debian-13",
        "--build-env",
        "SOURCE_DATE_EPOCH=1700000000",
        "--artifact",
        "out/app",
    ];
    let mut args = vec!["repo", "-C", r, "add", f, "--name", "app/1.0/app"];
    args.extend(recipe);
    ok(&args);
    ok(&["repo", "-C", r, "publish"]);
    let targets = published_targets(&repo);
    let custom = &targets["signed"]["targets"]["app/1.0/app"]["custom"];
    assert_eq!(custom["rebuild"]["version"], 1, "{custom}");
    let info = RebuildInfo::from_custom(Some(custom)).unwrap().unwrap();
    assert_eq!(
        info.source,
        SourceRef::Git {
            url: "https://example.org/app.git".into(),
            commit: COMMIT.into()
        }
    );
    assert_eq!(info.recipe.builder, Builder::Toolchain("debian-13".into()));
    assert_eq!(info.recipe.artifact, "out/app");
    assert_eq!(info.source_date_epoch(), Some(1_700_000_000));

    // A tarball source with an OCI builder.
    let image = format!("docker.io/library/debian@sha256:{}", "b".repeat(64));
    let sha = "c".repeat(64);
    ok(&[
        "repo",
        "-C",
        r,
        "add",
        f,
        "--name",
        "app/1.0/app.tar",
        "--source-tarball",
        "https://example.org/app-1.0.tar.gz",
        "--source-sha256",
        &sha,
        "--build-command",
        "./build.sh",
        "--builder-image",
        &image,
        "--artifact",
        "app",
    ]);

    // Refused, each naming what is wrong, and nothing staged.
    let before = fs::read(repo.join("staged/metadata/targets.json")).ok();
    let bad = |edit: &[(&str, &str)], expect: &str| {
        let mut args: Vec<String> = ["repo", "-C", r, "add", f, "--name", "app/2.0/app"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let mut rec: Vec<String> = recipe.iter().map(|s| s.to_string()).collect();
        for (flag, value) in edit {
            let i = rec.iter().position(|a| a == flag).unwrap();
            if value.is_empty() {
                rec.drain(i..=i + 1);
            } else {
                rec[i + 1] = value.to_string();
            }
        }
        args.extend(rec);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let err = fails(&args);
        assert!(err.contains(expect), "{expect:?} not in: {err}");
    };
    bad(
        &[("--source-commit", "v1.0")],
        "custom.rebuild.source.commit",
    );
    bad(
        &[("--source-git", "ftp://example.org/app")],
        "custom.rebuild.source.url",
    );
    bad(
        &[("--artifact", "../escape")],
        "custom.rebuild.recipe.artifact",
    );
    bad(
        &[("--build-env", "HOME=/root")],
        "custom.rebuild.recipe.env.HOME",
    );
    bad(
        &[("--build-env", "SOURCE_DATE_EPOCH=soon")],
        "custom.rebuild.recipe.env.SOURCE_DATE_EPOCH",
    );
    bad(&[("--artifact", "")], "--artifact");
    bad(
        &[("--builder-toolchain", "")],
        "--builder-toolchain or --builder-image",
    );
    assert_eq!(
        before,
        fs::read(repo.join("staged/metadata/targets.json")).ok()
    );
}
