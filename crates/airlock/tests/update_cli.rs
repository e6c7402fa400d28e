//! `airlock update` end to end: the real binary against an HTTPS repository on 127.0.0.1 with a
//! test CA (the repository helpers are airlock-client's test support).

#[path = "../../airlock-client/tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{HttpsRepo, TestRepo};

fn airlock(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_airlock"))
        .arg("update")
        .arg("--dir")
        .arg(dir)
        .args(args)
        .output()
        .expect("run airlock")
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "airlock failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A client directory in `work` trusting `repo`'s first root and `https`'s CA, initialised
/// with these repository URLs and `extra` flags.
fn init_client(
    repo: &TestRepo,
    https: &HttpsRepo,
    work: &Path,
    urls: (&str, &str),
    extra: &[&str],
) -> std::path::PathBuf {
    let ca = https.ca.write_ca_pem(work).expect("ca.pem");
    let root = work.join("root.json");
    std::fs::write(&root, repo.initial_root()).expect("root");
    let dir = work.join("state");
    let mut args = vec![
        "init",
        root.to_str().unwrap(),
        "--metadata-url",
        urls.0,
        "--targets-url",
        urls.1,
        "--ca-file",
        ca.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    ok(&airlock(&dir, &args));
    dir
}

#[test]
fn init_refresh_list_download() {
    let mut repo = TestRepo::new();
    repo.add_target("targets", "app/app.bin", b"the application");
    repo.delegate("targets", "plugins", &["plugins/*"], false);
    repo.add_target("plugins", "plugins/p.so", b"a plugin");
    repo.publish();
    let https = HttpsRepo::serve(repo.path());
    let work = tempfile::tempdir().expect("tempdir");
    let ca = https.ca.write_ca_pem(work.path()).expect("ca.pem");
    let root = work.path().join("root.json");
    std::fs::write(&root, repo.initial_root()).expect("root");
    let dir = work.path().join("state");

    let out = ok(&airlock(
        &dir,
        &[
            "init",
            root.to_str().unwrap(),
            "--metadata-url",
            &https.metadata_url(),
            "--targets-url",
            &https.targets_url(),
            "--ca-file",
            ca.to_str().unwrap(),
        ],
    ));
    assert!(out.contains("Trusting root version 1"), "{out}");

    // A second init with another root is refused unless forced.
    let other_root = work.path().join("other-root.json");
    std::fs::write(&other_root, TestRepo::new().initial_root()).expect("other root");
    let out = airlock(&dir, &["init", other_root.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--force"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The same root again is fine (idempotent).
    ok(&airlock(&dir, &["init", root.to_str().unwrap()]));

    // URLs and CA come from client.toml from now on.
    let out = ok(&airlock(&dir, &["refresh", "--json"]));
    let summary: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(summary["targets_version"], 2);

    let out = ok(&airlock(&dir, &["list", "--json"]));
    let listed: serde_json::Value = serde_json::from_str(&out).expect("json");
    let paths: Vec<&str> = listed
        .as_array()
        .expect("array")
        .iter()
        .map(|t| t["path"].as_str().expect("path"))
        .collect();
    assert_eq!(paths, vec!["app/app.bin", "plugins/p.so"]);

    let out = ok(&airlock(&dir, &["download", "app/app.bin", "plugins/p.so"]));
    assert!(out.contains("downloaded"), "{out}");
    // One file per target, its path percent-encoded (the library's one mapping).
    assert_eq!(
        std::fs::read(dir.join("targets/app%2Fapp.bin")).expect("app"),
        b"the application"
    );
    assert_eq!(
        std::fs::read(dir.join("targets/plugins%2Fp.so")).expect("plugin"),
        b"a plugin"
    );
    let out = ok(&airlock(&dir, &["download", "app/app.bin", "--json"]));
    let res: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(res[0]["downloaded"], false);

    // Without the CA the server is not trusted: a clear one-line error, exit status 1.
    let other = work.path().join("other");
    ok(&airlock(
        &other,
        &[
            "init",
            root.to_str().unwrap(),
            "--metadata-url",
            &https.metadata_url(),
        ],
    ));
    let out = airlock(&other, &["refresh"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("error: refresh failed"), "{err}");
    assert!(err.contains("TLS"), "{err}");
    assert!(err.contains("--ca-file"), "hint at the CA option: {err}");
}

/// Failed with exit status `code` (docs/cli.md) and one line on stderr naming `words`.
fn fails_with(out: &Output, code: i32, words: &[&str]) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(code), "{err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    for w in words {
        assert!(err.contains(w), "should mention {w:?}: {err}");
    }
    err
}

#[test]
fn init_refuses_values_that_cannot_work_at_once() {
    let repo = TestRepo::new();
    let work = tempfile::tempdir().expect("tempdir");
    let root = work.path().join("root.json");
    std::fs::write(&root, repo.initial_root()).expect("root");
    let dir = work.path().join("state");
    let root = root.to_str().unwrap();
    // A URL flag that cannot work is a usage error (2); a CA file that does not load, 1.
    let cases: [(&[&str], &[&str]); 7] = [
        (
            &["--metadata-url", "http://127.0.0.1:8080/metadata/"],
            &["--metadata-url", "--allow-http-loopback"],
        ),
        (
            &["--metadata-url", "http://updates.example.org/metadata/"],
            &["--metadata-url", "https"],
        ),
        (
            &["--metadata-url", "not a url"],
            &["--metadata-url", "not a usable URL"],
        ),
        (
            &["--metadata-url", "ftp://updates.example.org/metadata/"],
            &["--metadata-url", "not a usable URL"],
        ),
        (
            &["--metadata-url", "https://127.0.0.1:PORT/metadata/"],
            &["--metadata-url", "PORT"],
        ),
        (
            &[
                "--metadata-url",
                "https://127.0.0.1:8443/metadata/",
                "--targets-url",
                "http://127.0.0.1:8443/targets/",
            ],
            &["--targets-url", "--allow-http-loopback"],
        ),
        (
            &[
                "--metadata-url",
                "https://127.0.0.1:8443/metadata/",
                "--ca-file",
                "/nonexistent/ca.pem",
            ],
            &["--ca-file", "/nonexistent/ca.pem"],
        ),
    ];
    for (flags, words) in cases {
        let mut args = vec!["init", root];
        args.extend_from_slice(flags);
        let code = if flags.contains(&"--ca-file") { 1 } else { 2 };
        fails_with(&airlock(&dir, &args), code, words);
        assert!(!dir.exists(), "{flags:?}: nothing written");
    }
    // With the switch, plain http to loopback is accepted.
    ok(&airlock(
        &dir,
        &[
            "init",
            root,
            "--metadata-url",
            "http://127.0.0.1:8080/metadata/",
            "--allow-http-loopback",
        ],
    ));
}

#[test]
fn a_damaged_trusted_root_says_how_to_recover() {
    let mut repo = TestRepo::new();
    repo.publish();
    let https = HttpsRepo::serve(repo.path());
    let work = tempfile::tempdir().expect("tempdir");
    let ca = https.ca.write_ca_pem(work.path()).expect("ca.pem");
    let root = work.path().join("root.json");
    std::fs::write(&root, repo.initial_root()).expect("root");
    let dir = work.path().join("state");
    ok(&airlock(
        &dir,
        &[
            "init",
            root.to_str().unwrap(),
            "--metadata-url",
            &https.metadata_url(),
            "--ca-file",
            ca.to_str().unwrap(),
        ],
    ));
    let stored = dir.join("metadata/root.json");
    let mut bytes = std::fs::read(&stored).expect("stored root");
    bytes.truncate(bytes.len() / 2);
    std::fs::write(&stored, &bytes).expect("damage");
    // The stored root fails its own signature check: refused (3).
    fails_with(
        &airlock(&dir, &["refresh"]),
        3,
        &[
            &stored.display().to_string(),
            "from the vendor",
            "airlock update init --force",
        ],
    );
    // The advice works.
    ok(&airlock(&dir, &["init", "--force", root.to_str().unwrap()]));
    ok(&airlock(&dir, &["refresh"]));
}

#[test]
fn tampered_target_is_refused_with_a_readable_error() {
    let mut repo = TestRepo::new();
    let file = repo.add_target("targets", "a.txt", b"good");
    repo.publish();
    repo.write_raw(
        &format!("targets/{}.a.txt", file.hashes.get("sha256").unwrap()),
        b"evil",
    );
    let https = HttpsRepo::serve(repo.path());
    let work = tempfile::tempdir().expect("tempdir");
    let urls = (https.metadata_url(), https.targets_url());
    let dir = init_client(&repo, &https, work.path(), (&urls.0, &urls.1), &[]);
    let out = airlock(&dir, &["download", "a.txt"]);
    assert_eq!(out.status.code(), Some(3), "refused by the hash check");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("sha256 hash mismatch"), "{err}");
    assert!(!dir.join("targets/a.txt").exists());
}

/// Transparency through the CLI: the download verifies proofs offline; `update checkpoint`
/// prints the trusted checkpoint; a peer showing another tree of the log holds the download
/// (exit 3, both checkpoints shown).
#[test]
fn download_is_held_when_a_peer_shows_a_split_view() {
    use common::tlog::{self, Keys, Logger};
    let keys = Keys::generate(1);
    let a = keys.start();
    let b = keys.start();
    let mut repo = TestRepo::new();
    tlog::set_policy(&mut repo, Some(&tlog::policy_text(&a)));
    repo.write_root();
    repo.add_target("targets", "app.bin", b"app v1");
    repo.publish();
    Logger::new().log_new(&repo, &a);
    tlog::submit_filler(&b, &[b"x1", b"x2", b"x3"]);
    let https = tlog::serve_with_log_mirror(&repo, &a);
    let work = tempfile::tempdir().expect("tempdir");
    let mut pem = https.ca.cert_pem().as_bytes().to_vec();
    pem.extend_from_slice(&a.ca_pem);
    let ca = work.path().join("ca.pem");
    std::fs::write(&ca, pem).unwrap();
    let root = work.path().join("root.json");
    std::fs::write(&root, repo.initial_root()).expect("root");
    let dir = work.path().join("state");
    ok(&airlock(
        &dir,
        &[
            "init",
            root.to_str().unwrap(),
            "--metadata-url",
            &https.metadata_url(),
            "--targets-url",
            &https.targets_url(),
            "--ca-file",
            ca.to_str().unwrap(),
            "--log-url",
            &https.server.url("/log/"),
        ],
    ));
    ok(&airlock(&dir, &["download", "app.bin"]));
    let note = ok(&airlock(&dir, &["checkpoint"]));
    assert!(note.starts_with("airlock.test/log\n3\n"), "{note}");

    // Another client publishes its checkpoint: it agrees.
    let peer_dir = work.path().join("peer");
    std::fs::create_dir_all(&peer_dir).unwrap();
    std::fs::write(peer_dir.join("checkpoint"), &note).unwrap();
    let peer = HttpsRepo::serve(&peer_dir);
    let mut pem = std::fs::read(&ca).unwrap();
    pem.extend_from_slice(peer.ca.cert_pem().as_bytes());
    pem.extend_from_slice(&b.ca_pem);
    std::fs::write(&ca, pem).unwrap();
    let good = peer.server.url("/checkpoint");
    let out = airlock(&dir, &["download", "app.bin", "--peer", &good]);
    ok(&out);
    assert!(String::from_utf8_lossy(&out.stderr).contains("1 of 1 required peer(s) agree"));

    // A peer showing tree B (same log key and witnesses, other entries, same size).
    let forked = b.log_server.url("/checkpoint");
    let out = airlock(
        &dir,
        &["download", "app.bin", "--peer", &good, "--peer", &forked],
    );
    fails_with(&out, 3, &["SPLIT VIEW", "held"]);
    let evidence = String::from_utf8_lossy(&out.stdout);
    assert!(evidence.contains("checkpoint the peer shows"), "{evidence}");
    assert!(evidence.contains(note.trim_end()), "{evidence}");
}

/// The repository's own URL is down: `--mirror` (remembered in client.toml by `init`) takes
/// over, and each failed attempt is reported.
#[test]
fn a_mirror_takes_over_when_the_repository_url_is_down() {
    let mut repo = TestRepo::new();
    repo.add_target("targets", "app/app.bin", b"the application");
    repo.publish();
    let https = HttpsRepo::serve(repo.path());
    let work = tempfile::tempdir().expect("tempdir");
    let down = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("https://127.0.0.1:{}", l.local_addr().unwrap().port())
    };
    let mirror = format!("{},{}", https.metadata_url(), https.targets_url());
    let dir = init_client(
        &repo,
        &https,
        work.path(),
        (&format!("{down}/metadata/"), &format!("{down}/targets/")),
        &["--mirror", &mirror],
    );
    let toml = std::fs::read_to_string(dir.join("client.toml")).unwrap();
    assert!(toml.contains("[[mirrors]]"), "{toml}");

    let out = airlock(&dir, &["--json", "refresh"]);
    let v: serde_json::Value = serde_json::from_str(&ok(&out)).unwrap();
    assert_eq!(
        v["mirrors"][0]["attempts"][0]["failure"], "unreachable",
        "{v}"
    );
    assert_eq!(v["mirrors"][1]["attempts"][0]["ok"], true, "{v}");

    let out = airlock(&dir, &["download", "app/app.bin"]);
    ok(&out);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("mirror {down}/metadata/")), "{err}");
    assert!(err.contains("(unreachable)"), "{err}");
    assert_eq!(
        std::fs::read(dir.join("targets/app%2Fapp.bin")).unwrap(),
        b"the application"
    );

    // A malformed --mirror is a usage error naming the flag.
    let out = airlock(&dir, &["refresh", "--mirror", "a,b,c"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--mirror"));

    // Targets from mirrors only: no --targets-url of its own is needed.
    let only = work.path().join("mirrors-only");
    let root = work.path().join("root.json");
    let ca = work.path().join("ca.pem");
    ok(&airlock(
        &only,
        &[
            "init",
            root.to_str().unwrap(),
            "--metadata-url",
            &format!("{down}/metadata/"),
            "--ca-file",
            ca.to_str().unwrap(),
            "--mirror",
            &mirror,
        ],
    ));
    ok(&airlock(&only, &["download", "app/app.bin"]));
    assert_eq!(
        std::fs::read(only.join("targets/app%2Fapp.bin")).unwrap(),
        b"the application"
    );
}

/// With --json, a download reports its progress as JSON lines on stderr; stdout stays one
/// document.
#[test]
fn json_download_reports_progress_as_json_lines_on_stderr() {
    let mut repo = TestRepo::new();
    let data: Vec<u8> = (0..700_000u32).map(|i| (i % 253) as u8).collect();
    repo.add_target("targets", "big.bin", &data);
    repo.publish();
    let https = HttpsRepo::serve(repo.path());
    let work = tempfile::tempdir().expect("tempdir");
    let urls = (https.metadata_url(), https.targets_url());
    let dir = init_client(&repo, &https, work.path(), (&urls.0, &urls.1), &[]);
    let out = airlock(&dir, &["--json", "download", "big.bin"]);
    let doc: serde_json::Value = serde_json::from_str(&ok(&out)).unwrap();
    assert_eq!(doc[0]["downloaded"], true, "{doc}");
    let events: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stderr)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect();
    assert!(events.len() >= 3, "{events:?}");
    assert!(
        events
            .iter()
            .all(|e| e["event"] == "progress" && e["target"] == "big.bin")
    );
    assert_eq!(events[0]["bytes"], 0);
    assert_eq!(events.last().unwrap()["bytes"], 700_000);
    let bytes: Vec<u64> = events
        .iter()
        .map(|e| e["bytes"].as_u64().unwrap())
        .collect();
    assert!(bytes.windows(2).all(|w| w[0] < w[1]), "{bytes:?}");
    assert!(events.len() <= 102, "{}", events.len());
}
