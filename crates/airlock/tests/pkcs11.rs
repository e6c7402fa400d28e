//! Signing a repository with keys on a PKCS#11 token, from the command line: Debian's SoftHSM2
//! with a token initialised at test time in a temporary directory (SOFTHSM2_CONF), keys made
//! on it by OpenSC's pkcs11-tool as sensitive and never extractable. Both come from
//! `scripts/setup`; a machine without them fails these tests instead of skipping them.
//!
//! SoftHSM2 in Debian 12 (2.6.1) offers all three schemes: CKM_EDDSA (Ed25519), CKM_ECDSA
//! (P-256) and CKM_SHA256_RSA_PKCS_PSS.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{BIN, PASS, json, ok, serve};
use serde_json::Value;

const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
const TOKEN: &str = "release keys";
const PIN: &str = "481516";

/// A token of its own for one test.
struct Token {
    dir: tempfile::TempDir,
    conf: PathBuf,
}

impl Token {
    /// Ed25519 `ed` (id 01), P-256 `ec` (02) and RSA 2048 `rsa` (03), made on the token.
    fn new() -> Token {
        assert!(
            Path::new(MODULE).exists(),
            "SoftHSM2 is not installed: run ./scripts/setup (it installs softhsm2 and opensc)"
        );
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("softhsm2.conf");
        fs::create_dir(dir.path().join("tokens")).unwrap();
        fs::write(
            &conf,
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
                dir.path().join("tokens").display()
            ),
        )
        .unwrap();
        fs::write(dir.path().join("pin"), format!("{PIN}\n")).unwrap();
        let t = Token { dir, conf };
        t.tool(&[
            "softhsm2-util",
            "--init-token",
            "--free",
            "--label",
            TOKEN,
            "--so-pin",
            "12345678",
            "--pin",
            PIN,
        ]);
        for (key_type, label, id) in [
            ("EC:edwards25519", "ed", "01"),
            ("EC:prime256v1", "ec", "02"),
            ("rsa:2048", "rsa", "03"),
        ] {
            t.tool(&[
                "pkcs11-tool",
                "--module",
                MODULE,
                "--token-label",
                TOKEN,
                "--login",
                "--pin",
                PIN,
                "--keypairgen",
                "--key-type",
                key_type,
                "--usage-sign",
                "--sensitive",
                "--label",
                label,
                "--id",
                id,
            ]);
        }
        t
    }

    fn tool(&self, args: &[&str]) -> Output {
        let out = Command::new(args[0])
            .args(&args[1..])
            .env("SOFTHSM2_CONF", &self.conf)
            .output()
            .unwrap_or_else(|e| panic!("{args:?}: {e}"));
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// The URI of key `label`, PIN from the file next to the token (so that AIRLOCK_PASSPHRASE
    /// stays the passphrase of the repository's key files).
    fn uri(&self, label: &str) -> String {
        format!(
            "pkcs11:token=release%20keys;object={label}?module-path={MODULE}&pin-source=file:{}",
            self.dir.path().join("pin").display()
        )
    }

    /// The URI of key `label` without a PIN in it.
    fn bare_uri(&self, label: &str) -> String {
        format!("pkcs11:token=release%20keys;object={label}?module-path={MODULE}")
    }

    /// `airlock` with this token, TOKEN_PIN holding its PIN and WRONG_PIN another.
    fn airlock(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .args(args)
            .env("SOFTHSM2_CONF", &self.conf)
            .env("AIRLOCK_PASSPHRASE", PASS)
            .env("TOKEN_PIN", PIN)
            .env("WRONG_PIN", "000000")
            .env_remove("AIRLOCK_REPO")
            .output()
            .unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.airlock(args);
        assert!(
            out.status.success(),
            "airlock {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn json(&self, args: &[&str]) -> Value {
        serde_json::from_str(&self.ok(args)).unwrap()
    }

    /// Fails with one line on stderr; returns it.
    fn fails(&self, args: &[&str]) -> String {
        let out = self.airlock(args);
        assert!(!out.status.success(), "airlock {args:?} succeeded");
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(err.trim_end().lines().count(), 1, "not one line: {err:?}");
        err
    }
}

fn keyid_of(repo: &Path, role: &str) -> Vec<String> {
    let root: Value =
        serde_json::from_slice(&fs::read(repo.join("work/root.json")).unwrap()).unwrap();
    root["signed"]["roles"][role]["keyids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_string())
        .collect()
}

/// A repository's published tree served over HTTPS, and an Airlock client that trusts its
/// root v1.
struct Mirror {
    _server: common::Server,
    base: String,
    ca: PathBuf,
    client: String,
}

fn client(tmp: &Path, repo: &Path, name: &str) -> Mirror {
    let tls_dir = tmp.join(format!("{name}-tls"));
    fs::create_dir(&tls_dir).unwrap();
    let tls = airlock_serve::TestCa::new()
        .unwrap()
        .write_files(&tls_dir, &["127.0.0.1"])
        .unwrap();
    let (server, base) = serve(&[
        "repo",
        "-C",
        repo.to_str().unwrap(),
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--tls-cert",
        tls.cert_chain.to_str().unwrap(),
        "--tls-key",
        tls.key.to_str().unwrap(),
    ]);
    let c = tmp.join(name);
    ok(&[
        "update",
        "--dir",
        c.to_str().unwrap(),
        "init",
        repo.join("published/metadata/1.root.json")
            .to_str()
            .unwrap(),
        "--metadata-url",
        &format!("{base}/metadata/"),
        "--targets-url",
        &format!("{base}/targets/"),
        "--ca-file",
        tls.ca_cert.to_str().unwrap(),
    ]);
    Mirror {
        _server: server,
        base,
        ca: tls.ca_cert.clone(),
        client: c.to_str().unwrap().to_string(),
    }
}

/// python-tuf's client (stock securesystemslib verifiers) refreshes and downloads `name`; its
/// content, or `None` when no interpreter is configured (scripts/test always sets one).
fn python_tuf_download(tmp: &Path, repo: &Path, mirror: &Mirror, name: &str) -> Option<String> {
    let python = match std::env::var_os("AIRLOCK_PYTHON") {
        Some(p) => PathBuf::from(p),
        None => {
            let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python");
            if !venv.exists() {
                eprintln!("NOTICE: skipping the python-tuf part: AIRLOCK_PYTHON unset, no .venv");
                return None;
            }
            venv
        }
    };
    let work = tmp.join("python-client");
    fs::create_dir_all(work.join("metadata")).unwrap();
    fs::create_dir_all(work.join("targets")).unwrap();
    fs::copy(
        repo.join("published/metadata/1.root.json"),
        work.join("metadata/root.json"),
    )
    .unwrap();
    let script = r#"
import sys, urllib3
from tuf.ngclient import Updater
from tuf.ngclient.fetcher import FetcherInterface
from tuf.api.exceptions import DownloadHTTPError

class CaFetcher(FetcherInterface):
    def __init__(self, ca):
        self.pool = urllib3.PoolManager(ca_certs=ca, cert_reqs="CERT_REQUIRED")
    def _fetch(self, url):
        r = self.pool.request("GET", url, preload_content=False, timeout=10)
        if r.status != 200:
            r.release_conn()
            raise DownloadHTTPError(f"HTTP {r.status} for {url}", r.status)
        yield from r.stream(65536)
        r.release_conn()

metadata_dir, target_dir, base, ca, name = sys.argv[1:6]
u = Updater(metadata_dir, base + "/metadata/", target_dir, base + "/targets/",
            fetcher=CaFetcher(ca), bootstrap=None)
u.refresh()
info = u.get_targetinfo(name)
print(open(u.download_target(info, filepath=f"{target_dir}/{name}")).read(), end="")
"#;
    let out = Command::new(python)
        .arg("-c")
        .arg(script)
        .arg(work.join("metadata"))
        .arg(work.join("targets"))
        .arg(&mirror.base)
        .arg(&mirror.ca)
        .arg(name)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python-tuf failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8(out.stdout).unwrap())
}

/// Stage app.txt; the token is there, so its keys sign.
fn add(t: &Token, repo: &str, tmp: &Path, content: &str) {
    let src = tmp.join("app.txt");
    fs::write(&src, content).unwrap();
    t.ok(&["repo", "-C", repo, "add", src.to_str().unwrap()]);
}

#[test]
fn token_keys_list_and_print_their_public_keys_and_never_leave_the_token() {
    let t = Token::new();
    let all = format!("pkcs11:token=release%20keys?module-path={MODULE}");
    let v = t.json(&[
        "key",
        "list",
        "--json",
        "--passphrase-env",
        "TOKEN_PIN",
        &all,
    ]);
    let keys = v["tokens"][0]["keys"].as_array().unwrap();
    assert_eq!(v["tokens"][0]["label"], TOKEN);
    let mut schemes = Vec::new();
    for k in keys {
        schemes.push(k["scheme"].as_str().unwrap().to_string());
        // Made on the token as sensitive and never extractable: it cannot leave.
        assert_eq!(k["private_key"], true, "{k}");
        assert_eq!(k["sensitive"], true, "{k}");
        assert_eq!(k["extractable"], false, "{k}");
        assert_eq!(k["never_extractable"], true, "{k}");
        // The URI printed for each key opens it, and `key public` prints the same key id.
        let uri = k["uri"].as_str().unwrap();
        let public = t.json(&["key", "public", "--json", uri]);
        assert_eq!(public["keyid"], k["keyid"], "{uri}");
    }
    schemes.sort();
    assert_eq!(
        schemes,
        ["ecdsa-sha2-nistp256", "ed25519", "rsassa-pss-sha256"]
    );
    // OpenSC's own listing agrees (pkcs11-tool cannot read private keys at all, so asking it to
    // export proves nothing; the keystore's SoftHSM test asks the token for CKA_VALUE).
    let out = t.tool(&[
        "pkcs11-tool",
        "--module",
        MODULE,
        "--token-label",
        TOKEN,
        "--login",
        "--pin",
        PIN,
        "--list-objects",
        "--type",
        "privkey",
    ]);
    let listing = String::from_utf8_lossy(&out.stdout);
    let access: Vec<&str> = listing
        .lines()
        .filter(|l| l.trim_start().starts_with("Access:"))
        .collect();
    assert_eq!(access.len(), 3, "{listing}");
    for a in access {
        assert!(
            a.contains("sensitive") && a.contains("never extractable"),
            "{listing}"
        );
    }

    // Human output: one block per key with its URI; without a login, private keys are hidden.
    let text = t.ok(&["key", "list", "--passphrase-env", "TOKEN_PIN", &all]);
    assert!(text.contains("token \"release keys\""), "{text}");
    assert!(text.contains("extractable no"), "{text}");
    let text = t.ok(&["key", "list", "--no-login", &all]);
    assert!(text.contains("not logged in"), "{text}");
    // Without a token attribute, every initialised token of the module (SoftHSM2 also shows an
    // empty slot with a blank token, which holds nothing and is left out).
    let any = format!("pkcs11:?module-path={MODULE}");
    let v = t.json(&[
        "key",
        "list",
        "--json",
        "--passphrase-env",
        "TOKEN_PIN",
        &any,
    ]);
    assert_eq!(v["tokens"].as_array().unwrap().len(), 1, "{v}");

    // `key public` prints the TUF key `repo rotate --public-key` takes.
    let tmp = tempfile::tempdir().unwrap();
    let pubf = tmp.path().join("ec.pub.json");
    fs::write(&pubf, t.ok(&["key", "public", &t.bare_uri("ec")])).unwrap();
    let r = tmp.path().join("r");
    let rs = r.to_str().unwrap();
    t.ok(&["repo", "init", rs, "--plaintext-keys"]);
    let old = keyid_of(&r, "targets");
    t.ok(&[
        "repo",
        "-C",
        rs,
        "rotate",
        "targets",
        "--public-key",
        pubf.to_str().unwrap(),
        "--remove",
        &old[0],
    ]);
    let ec = t.json(&["key", "public", "--json", &t.bare_uri("ec")]);
    assert_eq!(keyid_of(&r, "targets"), [ec["keyid"].as_str().unwrap()]);
}

#[test]
fn a_repository_signed_by_token_keys_is_read_by_a_client() {
    let t = Token::new();
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let r = repo.to_str().unwrap();
    // Root on the Ed25519 key, targets on the P-256 key, snapshot on the RSA key; timestamp is
    // a generated key file.
    let init = t.json(&[
        "repo",
        "init",
        r,
        "--json",
        "--plaintext-keys",
        "--root-key",
        &t.uri("ed"),
        "--targets-key",
        &t.uri("ec"),
        "--snapshot-key",
        &t.uri("rsa"),
    ]);
    let external: Vec<&Value> = init["keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["external"].is_string())
        .collect();
    assert_eq!(external.len(), 3, "{init}");
    add(&t, r, tmp.path(), "release one");
    t.ok(&["repo", "-C", r, "publish"]);
    let mirror = client(tmp.path(), &repo, "client");
    let c = mirror.client.clone();
    ok(&["update", "--dir", &c, "download", "app.txt"]);
    assert_eq!(
        fs::read_to_string(Path::new(&c).join("targets/app.txt")).unwrap(),
        "release one"
    );
    // What the client trusts was signed by the token: each role's signature is by its key.
    let root: Value =
        serde_json::from_slice(&fs::read(repo.join("published/metadata/1.root.json")).unwrap())
            .unwrap();
    let ed = t.json(&["key", "public", "--json", &t.bare_uri("ed")]);
    assert_eq!(root["signatures"][0]["keyid"], ed["keyid"]);
    assert_eq!(
        root["signed"]["keys"][ed["keyid"].as_str().unwrap()]["scheme"],
        "ed25519"
    );
    // Stock python-tuf (securesystemslib's verifiers) reads the token's Ed25519, ECDSA (DER) and
    // RSA-PSS signatures too.
    if let Some(content) = python_tuf_download(tmp.path(), &repo, &mirror, "app.txt") {
        assert_eq!(content, "release one");
    }

    // Offline signing: on a machine without the token (an empty token directory), the targets
    // key is offline; the new targets is exported, signed where the token is, and imported.
    let elsewhere = tmp.path().join("no-token");
    fs::create_dir(&elsewhere).unwrap();
    let no_token_conf = tmp.path().join("no-token.conf");
    fs::write(
        &no_token_conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
            elsewhere.display()
        ),
    )
    .unwrap();
    let without_token = |args: &[&str]| {
        let out = Command::new(BIN)
            .args(args)
            .env("SOFTHSM2_CONF", &no_token_conf)
            .env("AIRLOCK_PASSPHRASE", PASS)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let src = tmp.path().join("app.txt");
    fs::write(&src, "release two").unwrap();
    let added: Value = serde_json::from_str(&without_token(&[
        "repo",
        "-C",
        r,
        "--json",
        "add",
        src.to_str().unwrap(),
    ]))
    .unwrap();
    assert_eq!(added["unsigned"], serde_json::json!(["targets"]), "{added}");
    let file = tmp.path().join("targets.json");
    let f = file.to_str().unwrap();
    without_token(&["repo", "-C", r, "export", "targets", "-o", f]);
    // Signing with the token, PIN from an environment variable named on the command line.
    let signed = t.json(&[
        "repo",
        "-C",
        "/nonexistent",
        "--json",
        "sign",
        "--passphrase-env",
        "TOKEN_PIN",
        "--key",
        &t.bare_uri("ec"),
        f,
    ]);
    let ec = t.json(&["key", "public", "--json", &t.bare_uri("ec")]);
    assert_eq!(signed["keyid"], ec["keyid"]);
    let imported = json(&["repo", "-C", r, "--json", "import", f]);
    assert_eq!(imported[0]["signed"], true, "{imported}");
    t.ok(&["repo", "-C", r, "publish"]);
    ok(&["update", "--dir", &c, "download", "app.txt"]);
    assert_eq!(
        fs::read_to_string(Path::new(&c).join("targets/app.txt")).unwrap(),
        "release two"
    );
}

#[test]
fn root_and_targets_rotate_from_a_key_file_to_a_token_key_and_back() {
    let t = Token::new();
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let r = repo.to_str().unwrap();
    t.ok(&["repo", "init", r, "--plaintext-keys"]);
    add(&t, r, tmp.path(), "one");
    t.ok(&["repo", "-C", r, "publish"]);
    let mirror = client(tmp.path(), &repo, "client");
    let c = mirror.client.clone();
    ok(&["update", "--dir", &c, "download", "app.txt"]);

    // File keys -> token keys (root: Ed25519, targets: RSA). The new root is signed by the old
    // file key and the new token key.
    let file_root = keyid_of(&repo, "root");
    let file_targets = keyid_of(&repo, "targets");
    t.ok(&[
        "repo",
        "-C",
        r,
        "rotate",
        "root",
        "--key",
        &t.uri("ed"),
        "--remove",
        &file_root[0],
    ]);
    t.ok(&[
        "repo",
        "-C",
        r,
        "rotate",
        "targets",
        "--key",
        &t.uri("rsa"),
        "--remove",
        &file_targets[0],
    ]);
    add(&t, r, tmp.path(), "two");
    t.ok(&["repo", "-C", r, "publish"]);
    ok(&["update", "--dir", &c, "download", "app.txt"]);
    assert_eq!(
        fs::read_to_string(Path::new(&c).join("targets/app.txt")).unwrap(),
        "two"
    );
    let ed = t.json(&["key", "public", "--json", &t.bare_uri("ed")]);
    let rsa = t.json(&["key", "public", "--json", &t.bare_uri("rsa")]);
    assert_eq!(keyid_of(&repo, "root"), [ed["keyid"].as_str().unwrap()]);
    assert_eq!(keyid_of(&repo, "targets"), [rsa["keyid"].as_str().unwrap()]);

    // And back to new key files: the token's root key signs the rotation away from itself.
    t.ok(&[
        "repo",
        "-C",
        r,
        "rotate",
        "root",
        "--generate",
        "1",
        "--replace",
        "--plaintext-keys",
    ]);
    t.ok(&[
        "repo",
        "-C",
        r,
        "rotate",
        "targets",
        "--generate",
        "1",
        "--replace",
        "--plaintext-keys",
    ]);
    add(&t, r, tmp.path(), "three");
    t.ok(&["repo", "-C", r, "publish"]);
    ok(&["update", "--dir", &c, "download", "app.txt"]);
    assert_eq!(
        fs::read_to_string(Path::new(&c).join("targets/app.txt")).unwrap(),
        "three"
    );
    assert_ne!(keyid_of(&repo, "root"), [ed["keyid"].as_str().unwrap()]);
    let v3: Value =
        serde_json::from_slice(&fs::read(repo.join("published/metadata/3.root.json")).unwrap())
            .unwrap();
    assert!(
        v3["signatures"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["keyid"] == ed["keyid"]),
        "root v3 carries the outgoing token key's signature: {v3}"
    );
}

#[test]
fn wrong_pin_and_missing_keys_say_which_token_and_object() {
    let t = Token::new();
    let tmp = tempfile::tempdir().unwrap();
    let meta = tmp.path().join("root.json");
    let repo = tmp.path().join("repo");
    let r = repo.to_str().unwrap();
    t.ok(&["repo", "init", r, "--plaintext-keys"]);
    t.ok(&[
        "repo",
        "-C",
        r,
        "export",
        "root",
        "-o",
        meta.to_str().unwrap(),
    ]);
    let m = meta.to_str().unwrap();
    let before = fs::read(&meta).unwrap();

    let err = t.fails(&[
        "repo",
        "sign",
        "--passphrase-env",
        "WRONG_PIN",
        "--key",
        &t.bare_uri("ed"),
        m,
    ]);
    assert!(
        err.contains("wrong PIN for PKCS#11 token \"release keys\""),
        "{err}"
    );
    let err = t.fails(&[
        "repo",
        "sign",
        "--passphrase-env",
        "TOKEN_PIN",
        "--key",
        &t.bare_uri("nope"),
        m,
    ]);
    assert!(
        err.contains("token \"release keys\" has no private key object \"nope\""),
        "{err}"
    );
    let err = t.fails(&[
        "repo",
        "sign",
        "--passphrase-env",
        "TOKEN_PIN",
        "--key",
        &format!("pkcs11:token=spare;object=ed?module-path={MODULE}"),
        m,
    ]);
    assert!(err.contains("no token \"spare\" is present"), "{err}");
    // A URI that is not RFC 7512 is a usage error (exit status 2) naming the attribute.
    let out = t.airlock(&[
        "repo",
        "sign",
        "--passphrase-env",
        "TOKEN_PIN",
        "--key",
        &format!("pkcs11:token=release%20keys;label=ed?module-path={MODULE}"),
        m,
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown path attribute \"label\""), "{err}");
    // Nothing was written by the failed attempts.
    assert_eq!(fs::read(&meta).unwrap(), before);
    // --json: one error object naming the token.
    let out = t.airlock(&[
        "--json",
        "repo",
        "sign",
        "--passphrase-env",
        "WRONG_PIN",
        "--key",
        &t.bare_uri("ed"),
        m,
    ]);
    assert_eq!(out.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["error"].to_string().contains("release keys"), "{v}");
}
