//! `airlock repo` end to end through the binary, with the python-tuf 7.x reference client as the
//! peer: it refreshes and downloads top-level, path-delegated and hash-binned targets over HTTPS
//! from `airlock repo serve` (test CA made at test time), then follows a root rotation.
//! Also: offline threshold signing across two key files with `export`/`sign`/`import`, and
//! refused commands that leave the repository untouched.

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

const AIRLOCK: &str = env!("CARGO_BIN_EXE_airlock");

fn airlock(args: &[&str]) -> std::process::Output {
    Command::new(AIRLOCK)
        .args(args)
        .env_remove("AIRLOCK_PASSPHRASE")
        .env_remove("AIRLOCK_REPO")
        .output()
        .expect("run airlock")
}

/// Run and require success; returns stdout.
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
    // One line of error; clap's usage errors add only its "try '--help'" hint.
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with("For more information"))
        .collect();
    assert_eq!(lines.len(), 1, "one-line error expected: {err}");
    err
}

fn json(args: &[&str]) -> serde_json::Value {
    serde_json::from_str(&ok(args)).unwrap()
}

fn python() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("AIRLOCK_PYTHON") {
        let p = PathBuf::from(p);
        assert!(p.exists(), "AIRLOCK_PYTHON={} does not exist", p.display());
        return Some(p);
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python");
    if venv.exists() {
        return Some(venv);
    }
    eprintln!("NOTICE: skipping the python-tuf interop part: AIRLOCK_PYTHON unset and no .venv");
    None
}

fn write_files(dir: &Path, files: &[(&str, &str)]) {
    for (name, content) in files {
        let p = dir.join(name);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, content).unwrap();
    }
}

fn tree(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for e in fs::read_dir(dir).unwrap().flatten() {
            let path = e.path();
            let rel = path.strip_prefix(base).unwrap().to_path_buf();
            let ft = e.file_type().unwrap();
            if ft.is_symlink() {
                out.insert(
                    rel,
                    fs::read_link(&path)
                        .unwrap()
                        .into_os_string()
                        .into_encoded_bytes(),
                );
            } else if ft.is_dir() {
                walk(base, &path, out);
            } else if rel != Path::new(".lock") {
                out.insert(rel, fs::read(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// `airlock repo serve` as a child process; killed on drop.
struct Server {
    child: Child,
    metadata_url: String,
    targets_url: String,
    ca: PathBuf,
}

impl Server {
    fn start(repo: &Path, ca_dir: &Path) -> Server {
        let mut child = Command::new(AIRLOCK)
            .args(["repo", "-C"])
            .arg(repo)
            .args(["serve", "--json", "--test-ca-dir"])
            .arg(ca_dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let v: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
        Server {
            child,
            metadata_url: v["metadata_url"].as_str().unwrap().to_string(),
            targets_url: v["targets_url"].as_str().unwrap().to_string(),
            ca: PathBuf::from(v["ca_cert"].as_str().unwrap()),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const CLIENT: &str = r#"
import json, sys, urllib3
from tuf.ngclient import Updater
from tuf.ngclient.fetcher import FetcherInterface
from tuf.api.exceptions import DownloadHTTPError

class CaFetcher(FetcherInterface):
    """python-tuf's download path, trusting only the test CA."""
    def __init__(self, ca):
        self.pool = urllib3.PoolManager(ca_certs=ca, cert_reqs="CERT_REQUIRED")
    def _fetch(self, url):
        r = self.pool.request("GET", url, preload_content=False, timeout=10)
        if r.status != 200:
            r.release_conn()
            raise DownloadHTTPError(f"HTTP {r.status} for {url}", r.status)
        yield from r.stream(65536)
        r.release_conn()

metadata_dir, target_dir, metadata_url, targets_url, ca = sys.argv[1:6]
names = sys.argv[6:]
u = Updater(metadata_dir, metadata_url, target_dir, targets_url, fetcher=CaFetcher(ca), bootstrap=None)
u.refresh()
out = {"root_version": u._trusted_set.root.version, "targets": {}}
for name in names:
    info = u.get_targetinfo(name)
    if info is None:
        out["targets"][name] = None
        continue
    path = u.download_target(info, filepath=f"{target_dir}/{name.replace('/', '_')}")
    out["targets"][name] = {"content": open(path).read(), "custom": info.custom}
print(json.dumps(out))
"#;

fn python_client(python: &Path, work: &Path, server: &Server, names: &[&str]) -> serde_json::Value {
    let script = work.join("client.py");
    fs::write(&script, CLIENT).unwrap();
    let out = Command::new(python)
        .arg(&script)
        .arg(work.join("client-metadata"))
        .arg(work.join("client-targets"))
        .arg(&server.metadata_url)
        .arg(&server.targets_url)
        .arg(&server.ca)
        .args(names)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python-tuf client failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn python_tuf_reads_top_level_delegated_and_binned_targets_and_follows_a_root_rotation() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let r = repo.to_str().unwrap();
    ok(&[
        "repo",
        "init",
        r,
        "--root-keys",
        "3",
        "--root-threshold",
        "2",
        "--root-key-type",
        "ecdsa",
        "--plaintext-keys",
    ]);
    ok(&[
        "repo",
        "-C",
        r,
        "delegate",
        "docs",
        "--path",
        "docs/*",
        "--plaintext-keys",
        "--terminating",
    ]);
    ok(&[
        "repo",
        "-C",
        r,
        "delegate",
        "pkgs",
        "--path",
        "pkgs/*",
        "--key-type",
        "rsa",
        "--plaintext-keys",
    ]);
    ok(&[
        "repo",
        "-C",
        r,
        "delegate-bins",
        "--from",
        "pkgs",
        "--bins",
        "8",
        "--prefix",
        "pkgbin",
        "--plaintext-keys",
    ]);
    let src = tmp.path().join("src");
    write_files(
        &src,
        &[
            ("top.txt", "top level"),
            ("docs/guide.md", "the guide"),
            ("pkgs/a.tgz", "package a"),
            ("pkgs/b.tgz", "package b"),
        ],
    );
    let s = src.to_str().unwrap();
    let added = json(&[
        "repo",
        "-C",
        r,
        "--json",
        "add",
        s,
        "--version",
        "1.0.0",
        "--channel",
        "stable",
        "--source-ref",
        "git+https://example.org/app@v1",
    ]);
    assert_eq!(added["added"], 4);
    // Where each target went: top-level, the path-delegated role, hash bins under pkgs.
    let roles: Vec<String> = added["roles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert!(
        roles.contains(&"targets".into()) && roles.contains(&"docs".into()),
        "{roles:?}"
    );
    assert!(roles.iter().any(|r| r.starts_with("pkgbin-")), "{roles:?}");
    assert!(!roles.contains(&"pkgs".into()), "{roles:?}");
    ok(&["repo", "-C", r, "publish"]);
    let verified = json(&["repo", "-C", r, "--json", "verify"]);
    assert_eq!(verified["ok"], true, "{verified}");

    let Some(python) = python() else { return };
    let ca_dir = tmp.path().join("tls");
    let server = Server::start(&repo, &ca_dir);
    let client = tmp.path().join("client");
    fs::create_dir_all(client.join("client-metadata")).unwrap();
    fs::create_dir_all(client.join("client-targets")).unwrap();
    fs::copy(
        repo.join("published/metadata/1.root.json"),
        client.join("client-metadata/root.json"),
    )
    .unwrap();
    let names = [
        "top.txt",
        "docs/guide.md",
        "pkgs/a.tgz",
        "pkgs/b.tgz",
        "missing.txt",
    ];
    let got = python_client(&python, &client, &server, &names);
    assert_eq!(got["targets"]["top.txt"]["content"], "top level");
    assert_eq!(got["targets"]["docs/guide.md"]["content"], "the guide");
    assert_eq!(got["targets"]["pkgs/a.tgz"]["content"], "package a");
    assert_eq!(got["targets"]["pkgs/b.tgz"]["content"], "package b");
    assert_eq!(got["targets"]["missing.txt"], serde_json::Value::Null);
    assert_eq!(
        got["targets"]["top.txt"]["custom"]["source_ref"],
        "git+https://example.org/app@v1"
    );
    assert_eq!(got["targets"]["top.txt"]["custom"]["channel"], "stable");

    // Rotate root to three new keys (threshold 2) and publish a new release; the client, which
    // trusts root v1, must walk to v2 (signed by both thresholds) and get the new file.
    let rotated = json(&[
        "repo",
        "-C",
        r,
        "--json",
        "rotate",
        "root",
        "--generate",
        "3",
        "--threshold",
        "2",
        "--replace",
        "--plaintext-keys",
    ]);
    assert_eq!(rotated["new_keyids"].as_array().unwrap().len(), 3);
    write_files(&src, &[("top.txt", "top level v2")]);
    ok(&["repo", "-C", r, "add", s]);
    ok(&["repo", "-C", r, "publish"]);
    let got = python_client(&python, &client, &server, &["top.txt", "pkgs/a.tgz"]);
    assert_eq!(got["root_version"], 2);
    assert_eq!(got["targets"]["top.txt"]["content"], "top level v2");
    assert_eq!(got["targets"]["pkgs/a.tgz"]["content"], "package a");
}

#[test]
fn offline_threshold_signing_with_two_key_files_through_the_cli() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let r = repo.to_str().unwrap();
    ok(&[
        "repo",
        "init",
        r,
        "--targets-keys",
        "2",
        "--targets-threshold",
        "2",
        "--plaintext-keys",
    ]);
    ok(&["repo", "-C", r, "publish"]);
    // Each targets key goes to its own "machine".
    let status = json(&["repo", "-C", r, "--json", "status"]);
    assert!(
        status
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["signed"] == true)
    );
    let config = fs::read_to_string(repo.join("work/airlock-repo.toml")).unwrap();
    let keys: Vec<String> = config
        .lines()
        .filter_map(|l| l.strip_prefix("private = \"keys/targets-"))
        .map(|rest| format!("keys/targets-{}", rest.trim_end_matches('"')))
        .collect();
    assert_eq!(keys.len(), 2, "{config}");
    let machine_a = tmp.path().join("a.key");
    let machine_b = tmp.path().join("b.key");
    fs::rename(repo.join(&keys[0]), &machine_a).unwrap();
    fs::rename(repo.join(&keys[1]), &machine_b).unwrap();

    let src = tmp.path().join("release.bin");
    fs::write(&src, "release 2").unwrap();
    let added = json(&["repo", "-C", r, "--json", "add", src.to_str().unwrap()]);
    assert_eq!(added["unsigned"], serde_json::json!(["targets"]));
    let before = tree(&repo);
    let err = fails(&["repo", "-C", r, "publish"]);
    assert!(err.contains("threshold is 2"), "{err}");
    assert_eq!(
        before,
        tree(&repo),
        "a refused publish changed the repository"
    );

    let file = tmp.path().join("targets.json");
    let f = file.to_str().unwrap();
    ok(&["repo", "-C", r, "export", "targets", "-o", f]);
    // The signing machines have no repository: run `sign` from an empty directory.
    let a = json(&[
        "repo",
        "-C",
        "/nonexistent",
        "--json",
        "sign",
        "--key",
        machine_a.to_str().unwrap(),
        f,
    ]);
    let b = json(&[
        "repo",
        "-C",
        "/nonexistent",
        "--json",
        "sign",
        "--key",
        machine_b.to_str().unwrap(),
        f,
    ]);
    assert_ne!(a["keyid"], b["keyid"]);
    let imported = json(&["repo", "-C", r, "--json", "import", f]);
    assert_eq!(imported[0]["signed"], true);
    assert_eq!(imported[0]["added"].as_array().unwrap().len(), 2);
    ok(&["repo", "-C", r, "publish"]);
    assert_eq!(json(&["repo", "-C", r, "--json", "verify"])["ok"], true);

    // Tampering with a published target is reported by `verify` with a non-zero exit.
    let published_targets = repo.join("published/targets");
    let victim = fs::read_dir(&published_targets)
        .unwrap()
        .flatten()
        .find(|e| e.file_name().to_string_lossy().ends_with(".release.bin"))
        .unwrap()
        .path();
    fs::write(&victim, "release 3").unwrap();
    let out = airlock(&["repo", "-C", r, "--json", "verify"]);
    assert_eq!(out.status.code(), Some(3), "a failed check is a refusal");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["ok"], false);
    assert_eq!(report["problems"][0]["check"], "hash");
}

#[test]
fn bad_input_gives_one_line_errors_and_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let r = repo.to_str().unwrap();
    // Refused init leaves no directory behind.
    fails(&[
        "repo",
        "init",
        r,
        "--root-keys",
        "2",
        "--root-threshold",
        "3",
        "--plaintext-keys",
    ]);
    assert!(!repo.exists());
    fails(&["repo", "init", r, "--key-type", "dsa", "--plaintext-keys"]);
    assert!(!repo.exists());
    ok(&["repo", "init", r, "--plaintext-keys"]);
    let src = tmp.path().join("a.txt");
    fs::write(&src, "a").unwrap();
    let s = src.to_str().unwrap();
    ok(&["repo", "-C", r, "add", s]);
    ok(&["repo", "-C", r, "publish"]);
    let before = tree(&repo);
    let garbage = tmp.path().join("garbage.json");
    fs::write(
        &garbage,
        "{\"signed\": {\"_type\": \"targets\"}, \"signatures\": []}",
    )
    .unwrap();
    let g = garbage.to_str().unwrap();
    for args in [
        vec!["repo", "-C", r, "add", "/does/not/exist"],
        vec!["repo", "-C", r, "add", s, "--name", "../../etc/passwd"],
        vec!["repo", "-C", r, "add", s, "--name", "/abs"],
        vec!["repo", "-C", r, "add", s, "--role", "nosuchrole"],
        vec!["repo", "-C", r, "remove", "not/staged"],
        vec![
            "repo",
            "-C",
            r,
            "delegate",
            "targets",
            "--path",
            "*",
            "--plaintext-keys",
        ],
        vec![
            "repo",
            "-C",
            r,
            "delegate",
            "x/y",
            "--path",
            "*",
            "--plaintext-keys",
        ],
        vec![
            "repo",
            "-C",
            r,
            "delegate",
            "ok",
            "--path",
            "*",
            "--threshold",
            "2",
            "--plaintext-keys",
        ],
        vec![
            "repo",
            "-C",
            r,
            "delegate-bins",
            "--bins",
            "3",
            "--plaintext-keys",
        ],
        vec!["repo", "-C", r, "rotate", "root", "--remove", "abc"],
        vec![
            "repo",
            "-C",
            r,
            "rotate",
            "nosuchrole",
            "--generate",
            "1",
            "--plaintext-keys",
        ],
        vec![
            "repo",
            "-C",
            r,
            "rotate",
            "root",
            "--replace",
            "--threshold",
            "1",
        ],
        vec!["repo", "-C", r, "import", g],
        vec!["repo", "-C", r, "export", "nosuchrole", "-o", "/dev/null"],
        vec!["repo", "-C", r, "bump", "nosuchrole"],
        vec![
            "repo",
            "-C",
            r,
            "serve",
            "--cert",
            "/nope.pem",
            "--key",
            "/nope.pem",
        ],
    ] {
        let err = fails(&args);
        assert!(err.starts_with("error: "), "{args:?}: {err}");
        assert_eq!(before, tree(&repo), "{args:?} changed the repository");
    }
    // `--help` of every subcommand carries an example.
    for sub in [
        "init",
        "add",
        "remove",
        "delegate",
        "delegate-bins",
        "status",
        "export",
        "sign",
        "import",
        "rotate",
        "bump",
        "publish",
        "refresh",
        "verify",
        "serve",
    ] {
        let help = ok(&["repo", sub, "--help"]);
        assert!(
            help.contains("Example") && help.contains("airlock repo"),
            "{sub}: {help}"
        );
    }
}

#[test]
fn encrypted_keys_with_a_passphrase_from_the_environment_or_a_file_descriptor() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let r = repo.to_str().unwrap();
    let with_env = |args: &[&str], pass: &str| {
        Command::new(AIRLOCK)
            .args(args)
            .env("REPO_PASS", pass)
            .env_remove("AIRLOCK_PASSPHRASE")
            .output()
            .unwrap()
    };
    let out = with_env(
        &["repo", "init", r, "--passphrase-env", "REPO_PASS"],
        "s3cret passphrase",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let keys: Vec<PathBuf> = fs::read_dir(repo.join("keys"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "key"))
        .collect();
    assert_eq!(keys.len(), 4);
    for k in &keys {
        assert!(
            fs::read_to_string(k)
                .unwrap()
                .contains("ENCRYPTED PRIVATE KEY")
        );
    }
    let src = tmp.path().join("a.txt");
    fs::write(&src, "a").unwrap();
    let s = src.to_str().unwrap();
    // Wrong passphrase: one-line error naming the key file; nothing changes.
    let before = tree(&repo);
    let out = with_env(
        &["repo", "-C", r, "--passphrase-env", "REPO_PASS", "add", s],
        "wrong",
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("keys/targets-") && err.lines().count() == 1,
        "{err}"
    );
    assert_eq!(before, tree(&repo));
    let out = with_env(
        &["repo", "-C", r, "--passphrase-env", "REPO_PASS", "add", s],
        "s3cret passphrase",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The cron path: passphrase on file descriptor 3.
    let pass_file = tmp.path().join("pass");
    fs::write(&pass_file, "s3cret passphrase\n").unwrap();
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "'{AIRLOCK}' repo -C '{r}' --passphrase-fd 3 publish 3<'{}' && '{AIRLOCK}' repo -C '{r}' --passphrase-fd 3 refresh 3<'{}'",
            pass_file.display(),
            pass_file.display()
        ))
        .env_remove("AIRLOCK_PASSPHRASE")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = json(&["repo", "-C", r, "--json", "verify"]);
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["timestamp_version"], 2);
}
