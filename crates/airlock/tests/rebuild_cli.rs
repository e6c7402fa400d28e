//! Reproducible builds through the binary: `airlock repo add` recording a target's source and
//! recipe in signed metadata (docs/rebuild.md).

use std::fs;
use std::path::Path;
use std::process::Command;

use airlock_core::rebuild::{Builder, RebuildInfo, SourceRef};

mod common;
// One passphrase for the rebuilder keys made here and the log publisher key `common` makes.
use common::{PASS, Transparency, start_transparency};

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

fn airlock_pass(args: &[&str]) -> std::process::Output {
    Command::new(AIRLOCK)
        .args(args)
        .env("AIRLOCK_PASSPHRASE", PASS)
        .env_remove("AIRLOCK_REPO")
        .output()
        .expect("run airlock")
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "Vendor")
        .env("GIT_AUTHOR_EMAIL", "vendor@example.org")
        .env("GIT_COMMITTER_NAME", "Vendor")
        .env("GIT_COMMITTER_EMAIL", "vendor@example.org")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

struct Served {
    child: std::process::Child,
    metadata_url: String,
    targets_url: String,
    ca: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(repo: &Path, ca_dir: &Path) -> Served {
    serve_with(repo, &["--test-ca-dir", ca_dir.to_str().unwrap()], None)
}

/// `repo serve` with the log's certificate, so one CA file serves for the repository and the
/// log (its tiles, read for consistency proofs).
fn serve_beside_log(repo: &Path, t: &Transparency) -> Served {
    let tls = t.ca.parent().unwrap();
    serve_with(
        repo,
        &[
            "--tls-cert",
            tls.join("cert.pem").to_str().unwrap(),
            "--tls-key",
            tls.join("key.pem").to_str().unwrap(),
        ],
        Some(&t.ca),
    )
}

fn serve_with(repo: &Path, tls: &[&str], ca: Option<&Path>) -> Served {
    use std::io::BufRead;
    let mut child = Command::new(AIRLOCK)
        .args(["repo", "-C"])
        .arg(repo)
        .args(["serve", "--json", "--listen", "127.0.0.1:0"])
        .args(tls)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    Served {
        child,
        metadata_url: v["metadata_url"].as_str().unwrap().into(),
        targets_url: v["targets_url"].as_str().unwrap().into(),
        ca: match ca {
            Some(p) => p.to_str().unwrap().into(),
            None => v["ca_cert"].as_str().unwrap().into(),
        },
    }
}

/// A vendor's world: a git repository with a tiny C program, built the way the recipe says,
/// published with the recipe.
struct Vendor {
    tmp: tempfile::TempDir,
    repo: std::path::PathBuf,
    commit: String,
}

const BUILD: &str = "mkdir -p out && gcc -O2 -o out/hello hello.c";

impl Vendor {
    fn new() -> Vendor {
        Vendor::with_init(&[])
    }

    /// The vendor's world with `init_args` given to `repo init` (e.g. a transparency policy).
    fn with_init(init_args: &[&str]) -> Vendor {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        fs::create_dir_all(&src).unwrap();
        fs::write(
            src.join("hello.c"),
            "#include <stdio.h>\nint main(void) { puts(\"hello, rebuilt\"); return 0; }\n",
        )
        .unwrap();
        git(&src, &["init", "--quiet"]);
        git(&src, &["add", "hello.c"]);
        git(&src, &["commit", "--quiet", "-m", "hello"]);
        let commit = git(&src, &["rev-parse", "HEAD"]);
        // The vendor's own build, in its own directory, outside any sandbox.
        let out = Command::new("/bin/sh")
            .args(["-c", BUILD])
            .current_dir(&src)
            .status()
            .unwrap();
        assert!(out.success());
        let repo = tmp.path().join("repo");
        let mut init = vec!["repo", "init", repo.to_str().unwrap(), "--plaintext-keys"];
        init.extend(init_args);
        ok(&init);
        Vendor { tmp, repo, commit }
    }

    /// Publish `file` as `target` with the recipe that builds hello, `command` as the build.
    fn publish(&self, file: &Path, target: &str, command: &str) {
        let url = format!("file://{}", self.tmp.path().join("src").display());
        ok(&[
            "repo",
            "-C",
            self.repo.to_str().unwrap(),
            "add",
            file.to_str().unwrap(),
            "--name",
            target,
            "--source-git",
            &url,
            "--source-commit",
            &self.commit,
            "--build-command",
            command,
            "--builder-toolchain",
            "debian-13-gcc",
            "--build-env",
            "SOURCE_DATE_EPOCH=1700000000",
            "--artifact",
            "out/hello",
        ]);
        // With the passphrase: a configured release log's publisher key is encrypted.
        succeeded(&airlock_pass(&[
            "repo",
            "-C",
            self.repo.to_str().unwrap(),
            "publish",
        ]));
    }

    fn hello(&self) -> std::path::PathBuf {
        self.tmp.path().join("src/out/hello")
    }
}

fn rebuild_args<'a>(
    served: &'a Served,
    vendor: &'a Vendor,
    dir: &'a str,
    key: &'a str,
    target: &'a str,
) -> Vec<&'a str> {
    vec![
        "rebuild",
        target,
        "--dir",
        dir,
        "--repo",
        &served.metadata_url,
        "--targets-url",
        &served.targets_url,
        "--ca-file",
        &served.ca,
        "--root",
        vendor.root(),
        "--key",
        key,
        "--id",
        "rebuilder-a",
    ]
}

impl Vendor {
    fn root(&self) -> &str {
        // Leaked once per test: the path lives as long as the test.
        Box::leak(
            self.repo
                .join("published/metadata/1.root.json")
                .to_str()
                .unwrap()
                .to_string()
                .into_boxed_str(),
        )
    }
}

fn require_bwrap() {
    let ok = Command::new("bwrap")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "bubblewrap (bwrap) is not installed: ./scripts/setup installs it"
    );
}

/// The published binary rebuilds byte for byte in bubblewrap from the signed recipe, and the
/// attestation written verifies with the rebuilder's key and names the target and digest.
/// A copy altered after the build gives a mismatch report with both digests, exit non-zero, and
/// no attestation.
#[test]
fn rebuild_matches_and_mismatches() {
    require_bwrap();
    let vendor = Vendor::new();
    vendor.publish(&vendor.hello(), "hello/1.0/hello", BUILD);
    let altered = vendor.tmp.path().join("hello-altered");
    let mut bytes = fs::read(vendor.hello()).unwrap();
    bytes.extend_from_slice(b"trojan");
    fs::write(&altered, &bytes).unwrap();
    vendor.publish(&altered, "hello/1.0/hello-altered", BUILD);
    let served = serve(&vendor.repo, &vendor.tmp.path().join("tls"));

    let key = vendor.tmp.path().join("rebuilder.key");
    let k = key.to_str().unwrap();
    let pubkey = vendor.tmp.path().join("rebuilder.pub.json");
    let out = airlock_pass(&[
        "key",
        "generate",
        "--out",
        k,
        "--public-out",
        pubkey.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let public: airlock_core::crypto::PublicKey =
        serde_json::from_slice(&fs::read(&pubkey).unwrap()).unwrap();

    let dir = vendor.tmp.path().join("rebuilder");
    let d = dir.to_str().unwrap();

    // A log key for a root without a transparency policy: refused, there is no log.
    let note_key = vendor.tmp.path().join("note.key");
    succeeded(&airlock_pass(&[
        "log",
        "keygen",
        "--name",
        "pub.test",
        "--out",
        note_key.to_str().unwrap(),
    ]));
    let mut args = rebuild_args(&served, &vendor, d, k, "hello/1.0/hello");
    args.extend(["--log-key", note_key.to_str().unwrap()]);
    let out = airlock_pass(&args);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no transparency policy"), "{err}");
    assert!(!dir.join("builds").exists());

    let mut args = rebuild_args(&served, &vendor, d, k, "hello/1.0/hello");
    args.push("--json");
    let out = airlock_pass(&args);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["result"], "match", "{v}");
    assert!(
        v["sandbox"].as_str().unwrap().starts_with("bubblewrap"),
        "{v}"
    );
    let work = Path::new(v["work"].as_str().unwrap());
    assert!(work.join("build.log").exists());
    let env = fs::read(v["attestation"].as_str().unwrap()).unwrap();
    let st = airlock_core::rebuild::verify_attestation(&env, &public).unwrap();
    assert_eq!(st.target, "hello/1.0/hello");
    assert_eq!(st.sha256, v["sha256"].as_str().unwrap());
    assert_eq!(
        fs::read(work.join("rebuilt")).unwrap(),
        fs::read(vendor.hello()).unwrap()
    );
    assert_eq!(st.rebuild.source_date_epoch(), Some(1_700_000_000));

    // The altered binary: a mismatch, reported, nothing signed.
    let mut args = rebuild_args(&served, &vendor, d, k, "hello/1.0/hello-altered");
    args.push("--json");
    let out = airlock_pass(&args);
    assert!(!out.status.success());
    // --json: the result, then the error, each a JSON line on stdout.
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.contains("differs from the published file"),
        "{stdout}"
    );
    let v: serde_json::Value = serde_json::from_str(stdout.lines().next().unwrap()).unwrap();
    assert_eq!(v["result"], "mismatch", "{v}");
    let work = Path::new(v["work"].as_str().unwrap());
    let report: serde_json::Value =
        serde_json::from_slice(&fs::read(work.join("mismatch.json")).unwrap()).unwrap();
    assert_eq!(report["published"]["length"], bytes.len());
    assert_eq!(report["rebuilt"]["length"], bytes.len() - b"trojan".len());
    assert_ne!(report["published"]["sha256"], report["rebuilt"]["sha256"]);
    assert!(work.join("published").exists() && work.join("rebuilt").exists());
    assert!(!work.join("attestation.dsse.json").exists());
    // What differs, from airlock diff: the report's account and its one line.
    assert_eq!(report["diff"]["verdict"], "content", "{report}");
    assert!(
        v["diff"].as_str().unwrap().starts_with("CONTENT DIFFERS"),
        "{v}"
    );
    assert!(work.join("mismatch.diff.txt").is_file());

    // `rebuild watch` rebuilds every target not rebuilt before (in its own DIR): the good one and the
    // altered one in the first pass (exit non-zero for the mismatch), nothing in the second,
    // only the new release in the third.
    let watch_dir = vendor.tmp.path().join("watcher");
    let w = watch_dir.to_str().unwrap();
    let watch = |expect_ok: bool| {
        let args = rebuild_args(&served, &vendor, w, k, "watch");
        let out = airlock_pass(&args);
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert_eq!(out.status.success(), expect_ok, "{stdout}{stderr}");
        (stdout, stderr)
    };
    let (stdout, stderr) = watch(false);
    assert!(
        stdout.contains("watch pass: 1 rebuilt and attested, 1 mismatched, 0 failed"),
        "{stdout}"
    );
    assert!(
        stderr.contains("hello/1.0/hello-altered: the rebuild differs"),
        "{stderr}"
    );
    let (stdout, _) = watch(true);
    assert!(
        stdout.contains(
            "0 rebuilt and attested, 0 mismatched, 0 failed (retried next pass), 2 done before"
        ),
        "{stdout}"
    );
    vendor.publish(&vendor.hello(), "hello/1.1/hello", BUILD);
    let (stdout, _) = watch(true);
    assert!(
        stdout.contains("hello/1.1/hello: rebuilt byte for byte")
            && stdout.contains(
                "1 rebuilt and attested, 0 mismatched, 0 failed (retried next pass), 2 done before"
            ),
        "{stdout}"
    );
    let state: serde_json::Value =
        serde_json::from_slice(&fs::read(watch_dir.join("watch.json")).unwrap()).unwrap();
    assert_eq!(state.as_object().unwrap().len(), 3, "{state}");
}

/// A build that connects to a listener on 127.0.0.1 fails inside the sandbox (and the listener
/// sees nothing), while the same recipe built with --unsandboxed does connect: the network
/// really is cut by the sandbox. Without bwrap, the command refuses before building.
#[test]
fn sandbox_has_no_network_and_a_missing_sandbox_is_refused() {
    require_bwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let vendor = Vendor::new();
    let command = format!("bash -c 'echo leak > /dev/tcp/127.0.0.1/{port}' && {BUILD}");
    vendor.publish(&vendor.hello(), "hello/net", &command);
    let served = serve(&vendor.repo, &vendor.tmp.path().join("tls"));
    let key = vendor.tmp.path().join("rebuilder.key");
    let k = key.to_str().unwrap();
    assert!(
        airlock_pass(&["key", "generate", "--out", k])
            .status
            .success()
    );
    let dir = vendor.tmp.path().join("rebuilder");
    let d = dir.to_str().unwrap();

    let out = airlock_pass(&rebuild_args(&served, &vendor, d, k, "hello/net"));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("build command failed"), "{err}");
    assert!(
        listener.accept().is_err(),
        "the sandboxed build reached 127.0.0.1:{port}"
    );

    let mut args = rebuild_args(&served, &vendor, d, k, "hello/net");
    args.push("--unsandboxed");
    let out = airlock_pass(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    listener.set_nonblocking(false).unwrap();
    assert!(
        listener.accept().is_ok(),
        "the unsandboxed build should have connected"
    );

    let fresh = vendor.tmp.path().join("fresh");
    let mut args = rebuild_args(&served, &vendor, fresh.to_str().unwrap(), k, "hello/net");
    args.extend(["--bwrap", "/nonexistent/bwrap"]);
    let out = airlock_pass(&args);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bubblewrap") && err.contains("--unsandboxed"),
        "{err}"
    );
    assert!(
        !fresh.join("builds").exists(),
        "nothing may be built without the sandbox"
    );

    // A toolchain the recipe names and the rebuilder keeps outside /usr: unknown in the
    // sandbox until mapped with --toolchain, then first in PATH and named in the attestation.
    let tools = vendor.tmp.path().join("tools");
    fs::create_dir_all(tools.join("bin")).unwrap();
    let prepare = tools.join("bin/prepare");
    fs::write(&prepare, "#!/bin/sh\necho prepared\n").unwrap();
    fs::set_permissions(
        &prepare,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    vendor.publish(
        &vendor.hello(),
        "hello/tool",
        &format!("prepare && {BUILD}"),
    );
    let out = airlock_pass(&rebuild_args(&served, &vendor, d, k, "hello/tool"));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("build command failed"), "{err}");
    let mapping = format!("debian-13-gcc={}", tools.display());
    let mut args = rebuild_args(&served, &vendor, d, k, "hello/tool");
    args.extend(["--toolchain", &mapping, "--json"]);
    let out = airlock_pass(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let log = fs::read_to_string(Path::new(v["work"].as_str().unwrap()).join("build.log")).unwrap();
    assert!(log.contains("prepared"), "{log}");
    let envelope = airlock_core::rebuild::Envelope::parse(
        &fs::read(v["attestation"].as_str().unwrap()).unwrap(),
    )
    .unwrap();
    let statement: serde_json::Value = serde_json::from_slice(&envelope.payload).unwrap();
    assert!(
        statement["predicate"]["environment"]["toolchain"]
            .as_str()
            .unwrap()
            .starts_with("debian-13-gcc from "),
        "{statement}"
    );
}

/// A rebuilder key pair made with `airlock key generate`: (private key file, public key).
/// `repo rebuilders`: the root of `repo` requires 2 of the rebuilders `a` and `b`, whose public
/// keys `rebuilder_key` wrote into `dir`.
fn require_two_of(repo: &str, dir: &Path, a: &str, b: &str) {
    let (pa, pb) = (
        dir.join(format!("{a}.pub.json")),
        dir.join(format!("{b}.pub.json")),
    );
    ok(&[
        "repo",
        "-C",
        repo,
        "rebuilders",
        "--key",
        pa.to_str().unwrap(),
        "--key",
        pb.to_str().unwrap(),
        "--threshold",
        "2",
    ]);
}

fn rebuilder_key(dir: &Path, name: &str) -> (String, airlock_core::crypto::PublicKey) {
    let key = dir.join(format!("{name}.key"));
    let public = dir.join(format!("{name}.pub.json"));
    let out = airlock_pass(&[
        "key",
        "generate",
        "--out",
        key.to_str().unwrap(),
        "--public-out",
        public.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pk = serde_json::from_slice(&fs::read(&public).unwrap()).unwrap();
    (key.to_str().unwrap().to_string(), pk)
}

fn newest_root(repo: &Path) -> serde_json::Value {
    serde_json::from_slice(&fs::read(repo.join("published/metadata/root.json")).unwrap()).unwrap()
}

/// `airlock repo rebuilders` puts the policy into a new root version, which publishing makes
/// live; a threshold above the keys is refused with nothing staged; `--off` takes it out again.
#[test]
fn repo_rebuilders_sets_the_root_policy() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let r = repo.to_str().unwrap();
    ok(&["repo", "init", r, "--plaintext-keys"]);
    ok(&["repo", "-C", r, "publish"]);
    let (_, a) = rebuilder_key(tmp.path(), "a");
    let (_, b) = rebuilder_key(tmp.path(), "b");
    let pa = tmp.path().join("a.pub.json");
    let pb = tmp.path().join("b.pub.json");
    let (pa, pb) = (pa.to_str().unwrap(), pb.to_str().unwrap());
    let shown = ok(&["repo", "-C", r, "rebuilders"]);
    assert!(shown.contains("not required"), "{shown}");

    let err = fails(&[
        "repo",
        "-C",
        r,
        "rebuilders",
        "--key",
        pa,
        "--key",
        pb,
        "--threshold",
        "3",
    ]);
    assert!(err.contains("threshold 3"), "{err}");
    let err = fails(&[
        "repo",
        "-C",
        r,
        "rebuilders",
        "--key",
        pa,
        "--key",
        pa,
        "--threshold",
        "2",
    ]);
    assert!(err.contains("listed twice"), "{err}");

    ok(&[
        "repo",
        "-C",
        r,
        "rebuilders",
        "--key",
        pa,
        "--key",
        pb,
        "--threshold",
        "2",
    ]);
    ok(&["repo", "-C", r, "publish"]);
    let root = newest_root(&repo);
    assert_eq!(root["signed"]["version"], 2);
    let field = &root["signed"]["x-airlock-rebuilders"];
    assert_eq!(field["version"], 1, "{root}");
    assert_eq!(field["threshold"], 2, "{root}");
    let keys = field["keys"].as_object().unwrap();
    assert!(keys.contains_key(&a.key_id()) && keys.contains_key(&b.key_id()));
    // What a client reads back.
    let fields: std::collections::BTreeMap<String, serde_json::Value> =
        serde_json::from_value(root["signed"].clone()).unwrap();
    let policy = airlock_core::rebuild::RebuilderPolicy::from_root_fields(&fields)
        .unwrap()
        .unwrap();
    assert_eq!(policy.threshold(), 2);
    let v: serde_json::Value =
        serde_json::from_str(&ok(&["--json", "repo", "-C", r, "rebuilders"])).unwrap();
    assert_eq!(v["published"]["threshold"], 2, "{v}");

    ok(&["repo", "-C", r, "rebuilders", "--off"]);
    ok(&["repo", "-C", r, "publish"]);
    let root = newest_root(&repo);
    assert_eq!(root["signed"]["version"], 3);
    assert!(
        root["signed"].get("x-airlock-rebuilders").is_none(),
        "{root}"
    );
}

/// `airlock update` in `dir` against `served`; returns the output.
fn client(dir: &Path, served: &Served, args: &[&str]) -> std::process::Output {
    let mut all = vec![
        "update",
        "--dir",
        dir.to_str().unwrap(),
        "--ca-file",
        &served.ca,
    ];
    all.extend(args);
    airlock(&all)
}

/// Exit status 3 (a security refusal) with every `expect` in the one-line error.
fn refused(out: &std::process::Output, expect: &[&str]) -> String {
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(
        out.status.code(),
        Some(3),
        "a refusal (exit 3) expected:\nstdout: {}\nstderr: {err}",
        String::from_utf8_lossy(&out.stdout)
    );
    for e in expect {
        assert!(err.contains(e), "{e:?} not in: {err}");
    }
    err
}

fn succeeded(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// Rebuild `target` as rebuilder `id` with `key` in its own directory; the attestation file.
fn rebuild_as(served: &Served, vendor: &Vendor, id: &str, key: &str, target: &str) -> String {
    rebuild_as_with(served, vendor, id, key, target, &[])
}

/// [`rebuild_as`] with `extra` arguments (e.g. the log to submit to).
fn rebuild_as_with(
    served: &Served,
    vendor: &Vendor,
    id: &str,
    key: &str,
    target: &str,
    extra: &[&str],
) -> String {
    let dir = vendor.tmp.path().join(format!("rebuilder-{id}"));
    let mut args = rebuild_args(served, vendor, dir.to_str().unwrap(), key, target);
    let i = args.iter().position(|a| *a == "rebuilder-a").unwrap();
    args[i] = id;
    args.extend(extra);
    args.push("--json");
    let out = airlock_pass(&args);
    let stdout = succeeded(&out);
    let v: serde_json::Value = serde_json::from_str(stdout.lines().next().unwrap()).unwrap();
    assert_eq!(v["result"], "match", "{v}");
    v["attestation"].as_str().unwrap().to_string()
}

/// The attestation slot of `target` for `keyid` in the vendor's published tree.
fn slot(vendor: &Vendor, target: &str, sha256: &str, keyid: &str) -> std::path::PathBuf {
    let rel = airlock_core::rebuild::layout::attestation_path(target, sha256, keyid).unwrap();
    rel.iter()
        .fold(vendor.repo.join("published"), |p, s| p.join(s))
}

/// `airlock mirror sync` of the served repository into `mirror`; its JSON report.
fn mirror_sync(mirror: &Path, served: &Served, vendor: &Vendor) -> serde_json::Value {
    let from = format!("{},{}", served.metadata_url, served.targets_url);
    let out = airlock(&[
        "--json",
        "mirror",
        "sync",
        "--from",
        &from,
        "--to",
        mirror.to_str().unwrap(),
        "--root",
        vendor.root(),
        "--ca-file",
        &served.ca,
    ]);
    serde_json::from_str(&succeeded(&out)).unwrap()
}

fn sha256_of(path: &Path) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(fs::read(path).unwrap()))
}

/// The whole loop on real HTTPS: two rebuilder identities rebuild a C program in bubblewrap,
/// `airlock rebuild publish` places their attestations, and a client whose root requires 2 of
/// them downloads only once both are there; one is refused naming how many and from whom. An
/// attestation for another target or digest, or by a key the policy does not name, does not
/// count; a binary altered after the build has no attestation and is refused; a local policy
/// adds a requirement and cannot take the root's away. A mirror carries the attestations.
#[test]
fn client_requires_k_of_n_rebuilders() {
    require_bwrap();
    let vendor = Vendor::new();
    let t = vendor.tmp.path();
    vendor.publish(&vendor.hello(), "hello/1.0/hello", BUILD);
    let altered = t.join("hello-altered");
    let mut bytes = fs::read(vendor.hello()).unwrap();
    bytes.extend_from_slice(b"trojan");
    fs::write(&altered, &bytes).unwrap();
    vendor.publish(&altered, "hello/1.0/hello-altered", BUILD);
    let (ka, a) = rebuilder_key(t, "a");
    let (kb, b) = rebuilder_key(t, "b");
    let (kc, c) = rebuilder_key(t, "c");
    let r = vendor.repo.to_str().unwrap();
    require_two_of(r, t, "a", "b");
    ok(&["repo", "-C", r, "publish"]);
    let served = serve(&vendor.repo, &t.join("tls"));
    let sha = sha256_of(&vendor.hello());
    let sha_altered = sha256_of(&altered);

    // A client trusting the first root, told where the repository is.
    let cdir = t.join("client");
    succeeded(&client(
        &cdir,
        &served,
        &[
            "--metadata-url",
            &served.metadata_url,
            "--targets-url",
            &served.targets_url,
            "init",
            vendor.root(),
        ],
    ));
    let download = |target: &str| client(&cdir, &served, &["download", target]);
    let downloaded = cdir.join("targets").join("hello%2F1.0%2Fhello");

    // Nothing attested yet: refused before the file is fetched.
    refused(
        &download("hello/1.0/hello"),
        &["0 of the 2 required rebuilder attestations", "none found"],
    );
    assert!(!downloaded.exists());

    let att_a = rebuild_as(&served, &vendor, "rebuilder-a", &ka, "hello/1.0/hello");
    let att_b = rebuild_as(&served, &vendor, "rebuilder-b", &kb, "hello/1.0/hello");
    let att_c = rebuild_as(&served, &vendor, "rebuilder-c", &kc, "hello/1.0/hello");

    // `rebuild publish` takes the root's keys, and refuses a key it does not know.
    let out = airlock(&["rebuild", "publish", "-C", r, &att_c]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not signed by any of the 2 rebuilder key(s)"),
        "{err}"
    );
    assert!(err.contains(&c.key_id()), "{err}");
    ok(&["rebuild", "publish", "-C", r, &att_a]);
    assert!(slot(&vendor, "hello/1.0/hello", &sha, &a.key_id()).is_file());

    // k=2 with one rebuilder: refused, naming how many and from whom.
    refused(
        &download("hello/1.0/hello"),
        &[
            "1 of the 2 required rebuilder attestations",
            &format!("from rebuilder-a ({})", a.key_id()),
        ],
    );
    let out = client(
        &cdir,
        &served,
        &["verify-rebuilds", "hello/1.0/hello", "--json"],
    );
    assert_eq!(out.status.code(), Some(3));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let v: serde_json::Value = serde_json::from_str(stdout.lines().next().unwrap()).unwrap();
    assert_eq!(v["policies"][0]["source"], "root", "{v}");
    assert_eq!(v["policies"][0]["met"], false, "{v}");

    let out = airlock(&["--json", "rebuild", "publish", "-C", r, &att_b]);
    let v: serde_json::Value = serde_json::from_str(&succeeded(&out)).unwrap();
    assert_eq!(v["published"][0]["keyid"], b.key_id(), "{v}");

    // Both: downloaded, and reported.
    succeeded(&download("hello/1.0/hello"));
    assert_eq!(
        fs::read(&downloaded).unwrap(),
        fs::read(vendor.hello()).unwrap()
    );
    let report = succeeded(&client(
        &cdir,
        &served,
        &["verify-rebuilds", "hello/1.0/hello"],
    ));
    assert!(
        report.contains("root policy, 2 of 2 rebuilder key(s): met by"),
        "{report}"
    );
    assert!(
        report.contains("rebuilder-a") && report.contains("rebuilder-b"),
        "{report}"
    );

    // The altered binary: no rebuilder attested its digest.
    refused(
        &download("hello/1.0/hello-altered"),
        &[
            "0 of the 2 required rebuilder attestations",
            &format!("sha256 {sha_altered}"),
        ],
    );
    // A mirror serving hello's valid attestation in the altered target's slot of key a, and
    // rebuilder c's (a key the policy does not name) in the slot of key b: neither counts.
    let slot_a = slot(
        &vendor,
        "hello/1.0/hello-altered",
        &sha_altered,
        &a.key_id(),
    );
    let slot_b = slot(
        &vendor,
        "hello/1.0/hello-altered",
        &sha_altered,
        &b.key_id(),
    );
    fs::create_dir_all(slot_a.parent().unwrap()).unwrap();
    fs::copy(&att_a, &slot_a).unwrap();
    fs::copy(&att_c, &slot_b).unwrap();
    refused(
        &download("hello/1.0/hello-altered"),
        &[
            "0 of the 2 required rebuilder attestations",
            "for target \"hello/1.0/hello\"",
            &format!("signed by unknown key(s) {}", c.key_id()),
        ],
    );
    // The same digest under another target's name does not count either: hello's attestation
    // by a re-signed for hello-altered's path is what a rebuild of it would have to sign.
    assert!(!cdir.join("targets/hello%2F1.0%2Fhello-altered").exists());

    // A mirror carries the attestations, verified: hello's two, not the planted ones.
    let mirror = t.join("mirror");
    let v = mirror_sync(&mirror, &served, &vendor);
    assert_eq!(v["attestations_fetched"], 2, "{v}");
    let mirrored = |target: &str, sha: &str, keyid: &str| {
        airlock_core::rebuild::layout::attestation_path(target, sha, keyid)
            .unwrap()
            .iter()
            .fold(mirror.join("public"), |p, s| p.join(s))
    };
    assert!(mirrored("hello/1.0/hello", &sha, &b.key_id()).is_file());
    assert!(!mirrored("hello/1.0/hello-altered", &sha_altered, &a.key_id()).exists());
    let mirror_served = Command::new(AIRLOCK)
        .args(["repo", "serve", "--json", "--published"])
        .arg(mirror.join("public"))
        .arg("--test-ca-dir")
        .arg(t.join("mirror-tls"))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mirror_served = {
        use std::io::BufRead;
        let mut child = mirror_served;
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        Served {
            child,
            metadata_url: v["metadata_url"].as_str().unwrap().into(),
            targets_url: v["targets_url"].as_str().unwrap().into(),
            ca: v["ca_cert"].as_str().unwrap().into(),
        }
    };
    let mdir = t.join("mirror-client");
    succeeded(&client(
        &mdir,
        &mirror_served,
        &[
            "--metadata-url",
            &mirror_served.metadata_url,
            "--targets-url",
            &mirror_served.targets_url,
            "init",
            vendor.root(),
        ],
    ));
    succeeded(&client(
        &mdir,
        &mirror_served,
        &["download", "hello/1.0/hello"],
    ));

    // A local policy only adds: requiring rebuilder c (who published nothing) refuses hello.
    let config = cdir.join("client.toml");
    let base_config = fs::read_to_string(&config).unwrap();
    let local = |threshold: usize, keys: &[&airlock_core::crypto::PublicKey]| {
        let keys: serde_json::Map<String, serde_json::Value> = keys
            .iter()
            .map(|k| (k.key_id(), serde_json::to_value(k).unwrap()))
            .collect();
        let v = serde_json::json!({"version": 1, "threshold": threshold, "keys": keys});
        let table: toml::Value = serde_json::from_value(v).unwrap();
        let mut doc: toml::Table = toml::from_str(&base_config).unwrap();
        doc.insert("rebuilders".into(), table);
        fs::write(&config, toml::to_string(&doc).unwrap()).unwrap();
    };
    fs::remove_file(&downloaded).unwrap();
    local(1, &[&c]);
    refused(
        &download("hello/1.0/hello"),
        &["0 of the 1 required rebuilder attestations"],
    );
    let out = client(&cdir, &served, &["verify-rebuilds", "hello/1.0/hello"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("root policy, 2 of 2 rebuilder key(s): met by"),
        "{stdout}"
    );
    assert!(
        stdout.contains("local policy, 1 of 1 rebuilder key(s): NOT MET"),
        "{stdout}"
    );
    // ... and cannot remove one: with only a's attestation left, a local 1-of-{a} policy does
    // not make the root's 2 of 2 go away.
    fs::remove_file(slot(&vendor, "hello/1.0/hello", &sha, &b.key_id())).unwrap();
    local(1, &[&a]);
    refused(
        &download("hello/1.0/hello"),
        &["1 of the 2 required rebuilder attestations"],
    );
    assert!(!downloaded.exists());
}

/// With a transparency policy in the root, every attestation must be in the log. The rebuilder
/// refuses to build without a log key; with one it logs the attestation and writes the verified
/// proof bundle beside it; `rebuild publish` refuses an attestation without its bundle. A client
/// requiring 2 of 2 counts only attestations whose bundle shows them logged: one with no bundle,
/// or with the bundle of another attestation, is not counted and the refusal names its key and
/// the check. With both logged it downloads; a mirror carries the bundles; the vendor's monitor
/// does not take the attestation entries for releases.
#[test]
fn logged_attestations_count_only_with_a_verifying_proof() {
    require_bwrap();
    let logs = tempfile::tempdir().unwrap();
    let tl = start_transparency(&logs.path().join("t"), "log.test/rebuild");
    let vendor = Vendor::with_init(&[
        "--tlog-policy",
        tl.policy_file.to_str().unwrap(),
        "--tlog-repository",
        "example.com/hello",
        "--log-url",
        &tl.log_url,
        "--log-key",
        tl.publisher_key.to_str().unwrap(),
        "--log-ca-file",
        tl.ca.to_str().unwrap(),
        "--log-timeout",
        "20s",
    ]);
    let t = vendor.tmp.path();
    let r = vendor.repo.to_str().unwrap();
    vendor.publish(&vendor.hello(), "hello/1.0/hello", BUILD);
    let (ka, a) = rebuilder_key(t, "a");
    let (kb, b) = rebuilder_key(t, "b");
    require_two_of(r, t, "a", "b");
    succeeded(&airlock_pass(&["repo", "-C", r, "publish"]));
    let served = serve_beside_log(&vendor.repo, &tl);
    let sha = sha256_of(&vendor.hello());
    let target = "hello/1.0/hello";

    // No log key: refused before anything is fetched for the build or built.
    let dir = t.join("unlogged");
    let out = airlock_pass(&rebuild_args(
        &served,
        &vendor,
        dir.to_str().unwrap(),
        &ka,
        target,
    ));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--log-key") && err.contains("log.test/rebuild"),
        "{err}"
    );
    assert!(!dir.join("builds").exists(), "built without a log");

    let log_args = [
        "--log-key",
        tl.publisher_key.to_str().unwrap(),
        "--log-ca",
        tl.ca.to_str().unwrap(),
    ];
    let att_a = rebuild_as_with(&served, &vendor, "rebuilder-a", &ka, target, &log_args);
    let att_b = rebuild_as_with(&served, &vendor, "rebuilder-b", &kb, target, &log_args);
    let proof = |att: &str| format!("{att}.tlog-proof");
    assert!(Path::new(&proof(&att_a)).is_file() && Path::new(&proof(&att_b)).is_file());

    // `rebuild publish` refuses an attestation without its bundle, and one with another's.
    let lonely = t.join("lonely.dsse.json");
    fs::copy(&att_b, &lonely).unwrap();
    let out = airlock(&["rebuild", "publish", "-C", r, lonely.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no log proof bundle was published"), "{err}");
    fs::copy(proof(&att_a), proof(lonely.to_str().unwrap())).unwrap();
    let out = airlock(&["rebuild", "publish", "-C", r, lonely.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not shown to be in the transparency log"),
        "{err}"
    );
    assert!(!slot(&vendor, target, &sha, &b.key_id()).exists());

    let out = airlock(&["--json", "rebuild", "publish", "-C", r, &att_a]);
    let v: serde_json::Value = serde_json::from_str(&succeeded(&out)).unwrap();
    assert!(v["published"][0]["proof"].is_string(), "{v}");
    let slot_a = slot(&vendor, target, &sha, &a.key_id());
    let slot_b = slot(&vendor, target, &sha, &b.key_id());
    assert!(Path::new(&proof(slot_a.to_str().unwrap())).is_file());

    let cdir = t.join("client");
    succeeded(&client(
        &cdir,
        &served,
        &[
            "--metadata-url",
            &served.metadata_url,
            "--targets-url",
            &served.targets_url,
            "init",
            vendor.root(),
        ],
    ));
    let download = || client(&cdir, &served, &["download", target]);
    let downloaded = cdir.join("targets").join("hello%2F1.0%2Fhello");

    // b's genuine attestation served without its bundle: not counted, and said why.
    fs::copy(&att_b, &slot_b).unwrap();
    refused(
        &download(),
        &[
            "1 of the 2 required rebuilder attestations",
            &format!("from rebuilder-a ({})", a.key_id()),
            &format!(
                "not counted: attestation by key {} for sha256 {sha}: no log proof bundle",
                b.key_id()
            ),
        ],
    );
    // ... and with a's bundle (a proof for another envelope): not counted either.
    fs::copy(proof(&att_a), proof(slot_b.to_str().unwrap())).unwrap();
    let err = refused(&download(), &["1 of the 2 required rebuilder attestations"]);
    assert!(
        err.contains(&format!(
            "attestation by key {} for sha256 {sha}: not shown to be in the transparency log",
            b.key_id()
        )),
        "{err}"
    );
    assert!(!downloaded.exists());
    let out = client(&cdir, &served, &["verify-rebuilds", target, "--json"]);
    assert_eq!(out.status.code(), Some(3));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let v: serde_json::Value = serde_json::from_str(stdout.lines().next().unwrap()).unwrap();
    assert_eq!(v["policies"][0]["met"], false, "{v}");
    let not_logged = v["not_logged"][0].as_str().unwrap_or_default();
    assert!(not_logged.contains(&b.key_id()), "{v}");

    // Both logged and published: downloaded.
    succeeded(&airlock(&["rebuild", "publish", "-C", r, &att_b]));
    succeeded(&download());
    assert_eq!(
        fs::read(&downloaded).unwrap(),
        fs::read(vendor.hello()).unwrap()
    );
    let report = succeeded(&client(&cdir, &served, &["verify-rebuilds", target]));
    assert!(report.contains("met by"), "{report}");

    // A mirror carries each attestation with its bundle.
    let mirror = t.join("mirror");
    let v = mirror_sync(&mirror, &served, &vendor);
    assert_eq!(v["attestations_fetched"], 2, "{v}");
    for key in [&a, &b] {
        let rel =
            airlock_core::rebuild::layout::attestation_path(target, &sha, &key.key_id()).unwrap();
        let at = rel.iter().fold(mirror.join("public"), |p, s| p.join(s));
        assert!(
            Path::new(&proof(at.to_str().unwrap())).is_file(),
            "{}",
            at.display()
        );
    }

    // The vendor's monitor reads the two attestation entries and reports no release.
    let out = airlock_pass(&[
        "--json",
        "log",
        "monitor",
        "--url",
        &tl.log_url,
        "--ca-file",
        tl.ca.to_str().unwrap(),
        "--repo",
        r,
    ]);
    let stdout = succeeded(&out);
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["releases"]["unexpected"], serde_json::json!([]), "{v}");
    assert!(
        v["releases"]["not_statements"].as_u64().unwrap() >= 2,
        "{v}"
    );

    // The log is down: rebuilder a (whose metadata is current) finds out before building.
    drop(tl.log);
    let dir = t.join("rebuilder-rebuilder-a");
    let builds = || fs::read_dir(dir.join("builds")).unwrap().count();
    let before = builds();
    let mut args = rebuild_args(&served, &vendor, dir.to_str().unwrap(), &ka, target);
    args.extend(log_args);
    let out = airlock_pass(&args);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot be logged") && err.contains(&tl.log_url),
        "{err}"
    );
    assert_eq!(builds(), before, "built without a log");
}
