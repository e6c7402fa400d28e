//! One error convention across the workspace: an error's message names the role, file or URL
//! and the check that failed, and its cause is reached through `source()`, never repeated in the
//! message. Rendered as a chain (`error: a: b: c`), each cause then appears once.
//!
//! Each case below makes a real failure in one crate (no hand-built error values) and checks
//! that no message in its chain contains the message of a later link.

use std::error::Error;
use std::path::Path;

fn chain(e: &(dyn Error + 'static)) -> Vec<String> {
    let mut out = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(c) = cur {
        out.push(c.to_string());
        cur = c.source();
    }
    out
}

#[track_caller]
fn assert_each_cause_once(what: &str, e: &(dyn Error + 'static)) {
    let links = chain(e);
    for (i, outer) in links.iter().enumerate() {
        assert!(
            !outer.trim().is_empty(),
            "{what}: empty message in {links:?}"
        );
        for inner in &links[i + 1..] {
            assert!(
                !outer.contains(inner.as_str()),
                "{what}: {outer:?} repeats its cause {inner:?}; chain: {links:?}"
            );
        }
    }
}

#[test]
fn fs_keystore_and_core() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no/such/dir/file");
    let e =
        airlock_fs::write_atomic(&missing, b"x", &airlock_fs::WriteOptions::public()).unwrap_err();
    assert_each_cause_once("airlock-fs write", &e);

    let e = airlock_keystore::read_private_key(
        &missing,
        &airlock_keystore::PassphraseSource::Env("AIRLOCK_TEST_UNSET".into()),
    )
    .unwrap_err();
    assert_each_cause_once("keystore read missing", &e);

    let e = airlock_core::tuf::TrustedSet::new(b"{not json", chrono::Utc::now()).unwrap_err();
    assert_each_cause_once("core TrustedSet::new", &e);
}

fn pass(s: &str) -> airlock_keystore::PassphraseSource {
    airlock_keystore::PassphraseSource::Value(s.to_string().into())
}

/// A 127.0.0.1 port nothing listens on (bound once, then released).
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn fetcher_trusting(ca: &airlock_serve::TestCa) -> std::sync::Arc<airlock_fetch::Fetcher> {
    let config = airlock_fetch::FetcherConfig {
        trust: airlock_fetch::Trust::CaBundlePem(ca.cert_pem().as_bytes().to_vec()),
        allow_http_loopback: true,
        retries: 0,
        ..Default::default()
    };
    std::sync::Arc::new(airlock_fetch::Fetcher::new(config).unwrap())
}

#[test]
fn keystore_wrong_passphrase_and_corrupt_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k.key");
    let key = airlock_core::crypto::PrivateKey::generate(airlock_core::crypto::KeyScheme::Ed25519)
        .unwrap();
    airlock_keystore::write_private_key(
        &path,
        &key,
        &airlock_keystore::Protection::encrypted_fast_for_tests(pass(
            "correct horse battery staple",
        )),
    )
    .unwrap();
    let e =
        airlock_keystore::read_private_key(&path, &pass("wrong horse battery staple")).unwrap_err();
    assert_each_cause_once("keystore wrong passphrase", &e);

    let corrupt = dir.path().join("corrupt.key");
    std::fs::write(
        &corrupt,
        b"-----BEGIN ENCRYPTED PRIVATE KEY-----\nnot base64\n",
    )
    .unwrap();
    let e = airlock_keystore::read_private_key(&corrupt, &pass("correct horse battery staple"))
        .unwrap_err();
    assert_each_cause_once("keystore corrupt key file", &e);
}

#[test]
fn core_parsers() {
    let e = airlock_core::tlog::note::Note::parse(b"no signature lines").unwrap_err();
    assert_each_cause_once("core note parse", &e);
    let e = airlock_core::tlog::checkpoint::Checkpoint::parse_text("origin\nnot a number\nx\n")
        .unwrap_err();
    assert_each_cause_once("core checkpoint parse", &e);
    let e = airlock_core::tlog::proof::ProofBundle::parse(b"garbage\n").unwrap_err();
    assert_each_cause_once("core tlog-proof parse", &e);
    // A root whose signatures do not verify: parsed, then refused for its signatures.
    let root = br#"{"signed":{"_type":"root","spec_version":"1.0.31","version":1,"expires":"2000-01-01T00:00:00Z","consistent_snapshot":true,"keys":{},"roles":{"root":{"keyids":[],"threshold":1},"targets":{"keyids":[],"threshold":1},"snapshot":{"keyids":[],"threshold":1},"timestamp":{"keyids":[],"threshold":1}}},"signatures":[]}"#;
    let e = airlock_core::tuf::TrustedSet::new(root, chrono::Utc::now()).unwrap_err();
    assert_each_cause_once("core TrustedSet unsigned root", &e);
}

#[test]
fn fetch_connection_refused_and_unknown_ca() {
    let ca = airlock_serve::TestCa::new().unwrap();
    let fetcher = fetcher_trusting(&ca);
    let url = format!("http://127.0.0.1:{}/x", closed_port());
    let e = fetcher.fetch_capped(&url, 1024).unwrap_err();
    assert_each_cause_once("fetch connection refused", &e);

    let server_ca = airlock_serve::TestCa::new().unwrap();
    let identity = server_ca
        .issue_server_cert(&["127.0.0.1", "localhost"])
        .unwrap();
    let server = airlock_serve::ServerHandle::https(axum::Router::new(), &identity).unwrap();
    let url = format!("https://localhost:{}/x", server.addr().port());
    let e = fetcher.fetch_capped(&url, 1024).unwrap_err();
    assert!(matches!(e, airlock_fetch::FetchError::Tls { .. }), "{e}");
    assert_each_cause_once("fetch unknown CA", &e);
}

#[test]
fn serve_port_in_use() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let e =
        airlock_serve::ServerHandle::start(taken.local_addr().unwrap(), axum::Router::new(), None)
            .unwrap_err();
    assert_each_cause_once("serve bind in use", &e);
}

#[test]
fn repo_open_empty_and_missing() {
    let dir = tempfile::tempdir().unwrap();
    let e = airlock_repo::Repository::open(dir.path(), None).unwrap_err();
    assert_each_cause_once("repo open empty dir", &e);
    let e = airlock_repo::Repository::open(&dir.path().join("missing"), None).unwrap_err();
    assert_each_cause_once("repo open missing dir", &e);
    // A repository cannot be made below a regular file.
    let file = dir.path().join("file");
    std::fs::write(&file, b"x").unwrap();
    let opts = airlock_repo::InitOptions::simple(airlock_repo::Protection::PlaintextForTests);
    let e = airlock_repo::Repository::init(&file.join("repo"), &opts)
        .err()
        .unwrap();
    assert_each_cause_once("repo init below a file", &e);
}

#[test]
fn client_missing_and_damaged_root_and_closed_port() {
    let ca = airlock_serve::TestCa::new().unwrap();
    let fetcher = fetcher_trusting(&ca);
    let dir = tempfile::tempdir().unwrap();
    let base = format!("http://127.0.0.1:{}/metadata/", closed_port());

    let missing = dir.path().join("missing");
    let config = airlock_client::UpdaterConfig::new(&missing, base.clone(), fetcher.clone());
    let e = airlock_client::Updater::new(config).err().unwrap();
    assert_each_cause_once("client missing metadata dir", &e);

    let damaged = dir.path().join("damaged");
    std::fs::create_dir(&damaged).unwrap();
    std::fs::write(damaged.join("root.json"), b"{\"signed\": ").unwrap();
    let config = airlock_client::UpdaterConfig::new(&damaged, base.clone(), fetcher.clone());
    let e = airlock_client::Updater::new(config).err().unwrap();
    assert_each_cause_once("client damaged root.json", &e);

    // A root the client accepts as its anchor, then a refresh against a closed port.
    let repo_dir = dir.path().join("repo");
    let testbed = airlock_testbed_root(&repo_dir);
    let good = dir.path().join("good");
    std::fs::create_dir(&good).unwrap();
    std::fs::copy(&testbed, good.join("root.json")).unwrap();
    let config = airlock_client::UpdaterConfig::new(&good, base, fetcher);
    let mut updater = airlock_client::Updater::new(config).unwrap();
    let e = updater.refresh().unwrap_err();
    assert_each_cause_once("client refresh, closed port", &e);
}

#[test]
fn log_and_witness() {
    let dir = tempfile::tempdir().unwrap();
    let e = airlock_log::config::LogConfig::load(&dir.path().join("log.toml")).unwrap_err();
    assert_each_cause_once("log config missing", &e);

    let public = dir.path().join("public");
    let state = dir.path().join("state");
    let _held = airlock_log::FsTileStore::open(&public, &state).unwrap();
    let e = airlock_log::FsTileStore::open(&public, &state)
        .err()
        .unwrap();
    assert_each_cause_once("log store locked", &e);

    let e =
        airlock_witness::config::WitnessConfig::load(&dir.path().join("witness.toml")).unwrap_err();
    assert_each_cause_once("witness config missing", &e);
}

/// Publishes a fresh repository under `dir` and returns the path of its 1.root.json.
fn airlock_testbed_root(dir: &Path) -> std::path::PathBuf {
    let opts = airlock_repo::InitOptions::simple(airlock_repo::Protection::PlaintextForTests);
    let mut repo = airlock_repo::Repository::init(dir, &opts).unwrap();
    repo.publish(&|_, _| {}).unwrap();
    repo.published_path().join("metadata/1.root.json")
}

#[test]
fn testbed_missing_proof() {
    let t = airlock_testbed::LocalTransparency::start(0).unwrap();
    let e = t.proof(12345).unwrap_err();
    assert_each_cause_once("testbed proof of a missing entry", &e);
}

/// Runs the CLI; returns its stderr.
fn airlock_stderr(args: &[&str], passphrase: &str) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_airlock"))
        .args(args)
        .env("AIRLOCK_PASSPHRASE", passphrase)
        .output()
        .unwrap();
    assert!(!out.status.success(), "airlock {args:?} should fail");
    String::from_utf8(out.stderr).unwrap()
}

/// The CLI prints one `error: a: b: c` line whose segments are not repeated.
#[track_caller]
fn assert_one_line_no_repeat(what: &str, stderr: &str) {
    let line = stderr.trim_end();
    assert!(
        !line.contains('\n'),
        "{what}: more than one line: {stderr:?}"
    );
    let segments: Vec<&str> = line.split(": ").collect();
    for (i, s) in segments.iter().enumerate() {
        assert!(
            !segments[i + 1..].contains(s),
            "{what}: segment {s:?} repeats in {line:?}"
        );
    }
}

#[test]
fn cli_prints_each_cause_once() {
    let stderr = airlock_stderr(&["key", "public", "/nonexistent"], "x");
    assert!(stderr.contains("/nonexistent"), "{stderr}");
    assert_one_line_no_repeat("missing key file", &stderr);

    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("K");
    let key = key.to_str().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_airlock"))
        .args(["key", "generate", "--out", key])
        .env("AIRLOCK_PASSPHRASE", "correct horse battery staple")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = airlock_stderr(&["key", "public", key], "wrong horse battery staple");
    assert!(stderr.contains(key), "{stderr}");
    assert_one_line_no_repeat("wrong passphrase", &stderr);
}
