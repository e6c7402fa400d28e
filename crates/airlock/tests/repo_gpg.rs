//! OpenPGP keys end to end, with Debian's gnupg and keys made at test time (RSA 3072 for root,
//! Ed25519 for targets) in a temporary GNUPGHOME: `repo init --root-key gpg:FPR`,
//! `repo rotate targets --key gpg:FPR`, publishing, offline signing with `repo sign --key
//! gpg:FPR` and with securesystemslib's `GPGSigner`; `airlock update` and python-tuf's ngclient
//! (securesystemslib's GnuPG verifier) both refresh and download from the result.

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

const AIRLOCK: &str = env!("CARGO_BIN_EXE_airlock");

/// Run airlock with `GNUPGHOME` set to `gnupg`.
fn airlock(gnupg: &Path, args: &[&str]) -> Output {
    Command::new(AIRLOCK)
        .args(args)
        .env("GNUPGHOME", gnupg)
        .env_remove("AIRLOCK_PASSPHRASE")
        .env_remove("AIRLOCK_REPO")
        .env_remove("AIRLOCK_GPG")
        .output()
        .expect("run airlock")
}

fn ok(gnupg: &Path, args: &[&str]) -> String {
    let out = airlock(gnupg, args);
    assert!(
        out.status.success(),
        "airlock {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn json(gnupg: &Path, args: &[&str]) -> serde_json::Value {
    serde_json::from_str(&ok(gnupg, args)).unwrap()
}

fn gpg(home: &Path, args: &[&str]) -> String {
    let out = Command::new("gpg")
        .env("GNUPGHOME", home)
        .args(["--batch", "--pinentry-mode", "loopback", "--passphrase", ""])
        .args(args)
        .output()
        .expect("gpg runs (Debian package gnupg, see scripts/setup)");
    assert!(
        out.status.success(),
        "gpg {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn new_key(home: &Path, uid: &str, algo: &str) -> String {
    gpg(home, &["--quick-gen-key", uid, algo, "sign", "never"]);
    gpg(home, &["--with-colons", "--list-keys", uid])
        .lines()
        .find_map(|l| l.strip_prefix("fpr:"))
        .and_then(|l| l.split(':').nth(8))
        .unwrap()
        .to_string()
}

/// A GnuPG home directory whose agent is stopped when the test ends.
struct GnupgHome(tempfile::TempDir);
impl GnupgHome {
    fn new() -> GnupgHome {
        let dir = tempfile::tempdir().unwrap();
        // gpg-agent's socket path must stay short; the directory must be private.
        let mut perms = fs::metadata(dir.path()).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o700);
        fs::set_permissions(dir.path(), perms).unwrap();
        GnupgHome(dir)
    }
    fn path(&self) -> &Path {
        self.0.path()
    }
}
impl Drop for GnupgHome {
    fn drop(&mut self) {
        let _ = Command::new("gpgconf")
            .env("GNUPGHOME", self.0.path())
            .args(["--kill", "all"])
            .status();
    }
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
    eprintln!("NOTICE: skipping the securesystemslib part: AIRLOCK_PYTHON unset and no .venv");
    None
}

struct Server {
    child: Child,
    metadata_url: String,
    targets_url: String,
    ca: String,
}
impl Server {
    fn start(gnupg: &Path, repo: &Path, ca_dir: &Path) -> Server {
        let mut child = Command::new(AIRLOCK)
            .args(["repo", "-C"])
            .arg(repo)
            .args(["serve", "--json", "--test-ca-dir"])
            .arg(ca_dir)
            .env("GNUPGHOME", gnupg)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        out.read_line(&mut line).unwrap();
        std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        let s = |k: &str| v[k].as_str().unwrap().to_string();
        Server {
            child,
            metadata_url: s("metadata_url"),
            targets_url: s("targets_url"),
            ca: s("ca_cert"),
        }
    }
}
impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// python-tuf's ngclient: refresh, then download `names`; prints {name: content}.
const NGCLIENT: &str = r#"
import json, sys, urllib3
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

metadata_dir, target_dir, metadata_url, targets_url, ca, root = sys.argv[1:7]
import os
os.makedirs(metadata_dir, exist_ok=True)
os.makedirs(target_dir, exist_ok=True)
u = Updater(metadata_dir, metadata_url, target_dir, targets_url, fetcher=CaFetcher(ca),
            bootstrap=open(root, "rb").read())
u.refresh()
out = {}
for name in sys.argv[7:]:
    info = u.get_targetinfo(name)
    out[name] = open(u.download_target(info), "rb").read().decode() if info else None
print(json.dumps(out))
"#;

/// securesystemslib's GPGSigner adds a signature to an exported role file; it first checks,
/// with securesystemslib's GnuPG verifier, the signatures airlock already put on root.
const SSLIB_SIGN: &str = r#"
import sys
from tuf.api.metadata import Metadata, Root
from securesystemslib.signer import GPGSigner, GPGKey
root_path, role_path, keyid, homedir = sys.argv[1:5]
root = Metadata[Root].from_file(root_path)
root.signed.verify_delegate("root", root.signed_bytes, root.signatures)
key = root.signed.keys[keyid]
assert isinstance(key, GPGKey), type(key)
md = Metadata.from_file(role_path)
md.sign(GPGSigner(key, homedir=homedir), append=True)
md.to_file(role_path)
print(md.signatures[keyid].unrecognized_fields["other_headers"][:4])
"#;

#[test]
fn gpg_keys_sign_root_and_targets_online_and_offline_and_python_tuf_agrees() {
    let tmp = tempfile::tempdir().unwrap();
    let home = GnupgHome::new();
    let h = home.path();
    let root_fpr = new_key(h, "Root <root@example.org>", "rsa3072");
    let targets_fpr = new_key(h, "Targets <targets@example.org>", "ed25519");
    let repo = tmp.path().join("repo");
    let r = repo.to_str().unwrap();
    let root_ref = format!("gpg:{root_fpr}");
    let targets_ref = format!("gpg:{targets_fpr}");

    ok(
        h,
        &[
            "repo",
            "init",
            r,
            "--root-key",
            &root_ref,
            "--plaintext-keys",
        ],
    );
    ok(
        h,
        &[
            "repo",
            "-C",
            r,
            "rotate",
            "targets",
            "--key",
            &targets_ref,
            "--replace",
        ],
    );
    let app = tmp.path().join("app.bin");
    fs::write(&app, "version 1").unwrap();
    ok(h, &["repo", "-C", r, "add", app.to_str().unwrap()]);
    ok(h, &["repo", "-C", r, "publish"]);

    // root.json lists the keys in securesystemslib's form, named by fingerprint.
    let root_json: serde_json::Value =
        serde_json::from_slice(&fs::read(repo.join("published/metadata/1.root.json")).unwrap())
            .unwrap();
    let rk = &root_json["signed"]["keys"][root_fpr.to_lowercase()];
    assert_eq!(rk["keytype"], "rsa");
    assert_eq!(rk["scheme"], "pgp+rsa-pkcsv1.5");
    assert_eq!(rk["keyval"]["public"]["e"], "010001");
    let tk = &root_json["signed"]["keys"][targets_fpr.to_lowercase()];
    assert_eq!(tk["scheme"], "pgp+eddsa-ed25519");
    assert!(
        tk["keyval"]["certificate"]
            .as_str()
            .unwrap()
            .starts_with("-----BEGIN PGP PUBLIC KEY BLOCK-----")
    );
    let sig = &root_json["signatures"][0];
    assert_eq!(sig["keyid"], root_fpr.to_lowercase());
    assert!(sig["other_headers"].as_str().unwrap().starts_with("0400")); // v4, binary document
    let root_file = tmp.path().join("root.json");
    fs::write(&root_file, serde_json::to_vec(&root_json).unwrap()).unwrap();

    let server = Server::start(h, &repo, &tmp.path().join("tls"));
    let state = tmp.path().join("client");
    let s = state.to_str().unwrap();
    ok(
        h,
        &[
            "update",
            "--dir",
            s,
            "init",
            root_file.to_str().unwrap(),
            "--metadata-url",
            &server.metadata_url,
            "--targets-url",
            &server.targets_url,
            "--ca-file",
            &server.ca,
        ],
    );
    let download = |name: &str| {
        ok(h, &["update", "--dir", s, "refresh"]);
        ok(h, &["update", "--dir", s, "download", name]);
        fs::read_to_string(state.join("targets").join(name)).unwrap()
    };
    assert_eq!(download("app.bin"), "version 1");

    // Offline: the targets key is not on the publishing machine (an empty GnuPG home there).
    let publisher = GnupgHome::new();
    let p = publisher.path();
    let offline_round = |content: &str, sign: &dyn Fn(&Path)| {
        fs::write(&app, content).unwrap();
        let added = json(
            p,
            &["repo", "-C", r, "--json", "add", app.to_str().unwrap()],
        );
        assert_eq!(added["unsigned"], serde_json::json!(["targets"]), "{added}");
        let file = tmp.path().join("targets.json");
        ok(
            p,
            &[
                "repo",
                "-C",
                r,
                "export",
                "targets",
                "-o",
                file.to_str().unwrap(),
            ],
        );
        sign(&file);
        let imported = json(
            p,
            &["repo", "-C", r, "--json", "import", file.to_str().unwrap()],
        );
        assert_eq!(imported[0]["signed"], true, "{imported}");
        ok(p, &["repo", "-C", r, "publish"]);
    };
    // ... signed on the machine holding the key with `airlock repo sign --key gpg:FPR`,
    offline_round("version 2", &|file| {
        let signed = json(
            h,
            &[
                "repo",
                "-C",
                "/nonexistent",
                "--json",
                "sign",
                "--key",
                &targets_ref,
                file.to_str().unwrap(),
            ],
        );
        assert_eq!(signed["keyid"], targets_fpr.to_lowercase());
    });
    assert_eq!(download("app.bin"), "version 2");

    // The publishing machine knows only the public half: `key public gpg:` lists it as root.json
    // does, the form `repo rotate --public-key` takes.
    let armored = tmp.path().join("targets.asc");
    fs::write(&armored, gpg(h, &["--export", "--armor", &targets_fpr])).unwrap();
    gpg(p, &["--import", armored.to_str().unwrap()]);
    let listed = json(p, &["key", "--json", "public", &targets_ref]);
    assert_eq!(listed["keyid"], targets_fpr.to_lowercase());
    assert_eq!(
        listed["public_key"]["keyval"]["public"],
        tk["keyval"]["public"]
    );
    let err = airlock(
        p,
        &["repo", "-C", r, "sign", "--key", &targets_ref, "x.json"],
    );
    assert!(!err.status.success());

    let Some(python) = python() else { return };
    // ... and with securesystemslib's GPGSigner, which airlock then verifies on import.
    let script = tmp.path().join("sslib_sign.py");
    fs::write(&script, SSLIB_SIGN).unwrap();
    offline_round("version 3", &|file| {
        let out = Command::new(&python)
            .arg(&script)
            .arg(&root_file)
            .arg(file)
            .arg(targets_fpr.to_lowercase())
            .arg(h)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "securesystemslib: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    });
    assert_eq!(download("app.bin"), "version 3");

    // python-tuf's ngclient reads the repository whose root and targets keys are GnuPG keys.
    let client = tmp.path().join("ngclient.py");
    fs::write(&client, NGCLIENT).unwrap();
    let out = Command::new(&python)
        .arg(&client)
        .arg(tmp.path().join("py-metadata"))
        .arg(tmp.path().join("py-targets"))
        .arg(&server.metadata_url)
        .arg(&server.targets_url)
        .arg(&server.ca)
        .arg(&root_file)
        .arg("app.bin")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ngclient: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(got["app.bin"], "version 3");
}
