//! A repository whose every role is hybrid (Ed25519 + SLH-DSA, additive form, docs/keys.md),
//! written by airlock-repo and served over HTTPS: python-tuf (which knows nothing of SLH-DSA)
//! refreshes and downloads from it, and the Airlock client refuses it when the SLH-DSA
//! signatures are removed, swapped between roles, or replayed from an older version, though
//! every Ed25519 signature is intact (what an attacker who can forge Ed25519 would serve).
//!
//! SLH-DSA signing is slow (about 1.7 s a signature), so each test process builds the
//! repository once and copies it per test.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use airlock_client::Updater;
use airlock_core::crypto::KeyScheme;
use airlock_repo::{
    InitOptions, KeyProtection, KeySource, PathDelegation, Repository, RoleKeySpec, TargetCustom,
};
use common::{Client, HttpsRepo};
use serde_json::Value;

const PQ_PREFIX: &str = "slh-dsa-sha2-128s:";

/// The published tree after two releases, and timestamp.json as the first release had it.
struct Published {
    _tmp: tempfile::TempDir,
    metadata: PathBuf,
    timestamp_v1: Vec<u8>,
}

fn published() -> &'static Published {
    static P: OnceLock<Published> = OnceLock::new();
    P.get_or_init(|| {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("repo");
        let hybrid = RoleKeySpec::new(KeyScheme::HybridEd25519SlhDsa, 1, 1);
        let mut opts = InitOptions::simple(KeyProtection::PlaintextForTests);
        opts.root = hybrid;
        opts.targets = hybrid;
        opts.snapshot = hybrid;
        opts.timestamp = hybrid;
        let mut repo = Repository::init(&dir, &opts).unwrap();
        repo.delegate_paths(
            &PathDelegation {
                from: "targets".into(),
                name: "docs".into(),
                paths: vec!["docs/*".into()],
                keys: KeySource::Generate {
                    scheme: KeyScheme::HybridEd25519SlhDsa,
                    count: 1,
                },
                threshold: 1,
                terminating: false,
            },
            true,
        )
        .unwrap();
        let add = |repo: &mut Repository, name: &str, content: &str| {
            let src = tmp.path().join(name.replace('/', "_"));
            std::fs::write(&src, content).unwrap();
            repo.add_file(&src, name, TargetCustom::default()).unwrap();
        };
        add(&mut repo, "top.txt", "top level");
        add(&mut repo, "docs/guide.md", "the guide");
        repo.publish(&|_, _| {}).unwrap();
        let metadata = repo.published_path().join("metadata");
        let timestamp_v1 = std::fs::read(metadata.join("timestamp.json")).unwrap();
        add(&mut repo, "two.txt", "release two");
        repo.publish(&|_, _| {}).unwrap();
        Published {
            metadata,
            _tmp: tmp,
            timestamp_v1,
        }
    })
}

/// A copy of the published tree to serve (and tamper with).
fn copy_tree() -> (tempfile::TempDir, PathBuf) {
    let src = published().metadata.parent().unwrap().to_path_buf();
    let tmp = tempfile::tempdir().unwrap();
    let dst = tmp.path().join("published");
    copy_dir(&src, &dst);
    (tmp, dst)
}

fn copy_dir(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for e in std::fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        let to = dst.join(e.file_name());
        let kind = e.file_type().unwrap();
        if kind.is_symlink() {
            // The publisher links released files; relative links stay inside the copy.
            std::os::unix::fs::symlink(std::fs::read_link(e.path()).unwrap(), &to).unwrap();
        } else if kind.is_dir() {
            copy_dir(&e.path(), &to);
        } else {
            std::fs::copy(e.path(), &to).unwrap();
        }
    }
}

fn read(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn write(path: &Path, v: &Value) {
    std::fs::write(path, serde_json::to_vec(v).unwrap()).unwrap();
}

/// The `sig` of the one SLH-DSA entry of a metadata file.
fn pq_sig(md: &Value) -> String {
    let sigs = md["signatures"].as_array().unwrap();
    let mut pq = sigs
        .iter()
        .filter(|s| s["keyid"].as_str().unwrap().starts_with(PQ_PREFIX));
    let sig = pq.next().expect("an SLH-DSA entry")["sig"].clone();
    assert!(pq.next().is_none());
    sig.as_str().unwrap().to_string()
}

fn set_pq_sig(md: &mut Value, sig: &str) {
    for s in md["signatures"].as_array_mut().unwrap() {
        if s["keyid"].as_str().unwrap().starts_with(PQ_PREFIX) {
            s["sig"] = sig.into();
        }
    }
}

fn trusted_root(tree: &Path) -> Vec<u8> {
    std::fs::read(tree.join("metadata/1.root.json")).unwrap()
}

/// Refresh with the Airlock client from `tree`; the error, if refused.
fn airlock_refresh(tree: &Path) -> Result<(), String> {
    let https = HttpsRepo::serve(tree);
    let client = Client::new(&https, &trusted_root(tree));
    client.updater().refresh().map(|_| ()).map_err(|e| {
        format!(
            "{e}: {:?}",
            std::error::Error::source(&e).map(|s| s.to_string())
        )
    })
}

fn assert_refused(tree: &Path) {
    let err = airlock_refresh(tree).expect_err("Airlock must refuse this repository");
    eprintln!("refused: {err}");
    assert!(
        err.contains("timestamp") && err.contains("threshold"),
        "{err}"
    );
}

const PY_CLIENT: &str = r#"
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

metadata_dir, target_dir, metadata_url, targets_url, ca = sys.argv[1:6]
u = Updater(metadata_dir, metadata_url, target_dir, targets_url, fetcher=CaFetcher(ca), bootstrap=None)
u.refresh()
out = {"timestamp_version": u._trusted_set.timestamp.version, "targets": {}}
for name in sys.argv[6:]:
    info = u.get_targetinfo(name)
    path = u.download_target(info, filepath=f"{target_dir}/{name.replace('/', '_')}")
    out["targets"][name] = open(path).read()
print(json.dumps(out))
"#;

/// Run python-tuf's ngclient against `tree`; its JSON report.
fn python_tuf(python: &Path, tree: &Path, names: &[&str]) -> Value {
    let https = HttpsRepo::serve(tree);
    let work = tempfile::tempdir().unwrap();
    let (meta, targets) = (work.path().join("meta"), work.path().join("targets"));
    std::fs::create_dir_all(&meta).unwrap();
    std::fs::create_dir_all(&targets).unwrap();
    std::fs::write(meta.join("root.json"), trusted_root(tree)).unwrap();
    let ca = work.path().join("ca.pem");
    std::fs::write(&ca, https.ca.cert_pem()).unwrap();
    let out = Command::new(python)
        .arg("-c")
        .arg(PY_CLIENT)
        .arg(&meta)
        .arg(&targets)
        .arg(https.metadata_url())
        .arg(https.targets_url())
        .arg(&ca)
        .args(names)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python-tuf failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn python_tuf_and_airlock_read_a_repository_whose_every_role_is_hybrid() {
    let (_tmp, tree) = copy_tree();
    // Every key python-tuf parses is a plain ed25519 key; the pairings ride alongside.
    let root = read(&tree.join("metadata/1.root.json"));
    for key in root["signed"]["keys"].as_object().unwrap().values() {
        assert_eq!(key["keytype"], "ed25519");
    }
    assert_eq!(root["signed"]["x-airlock-pq"].as_object().unwrap().len(), 4);
    let targets = read(&tree.join("metadata/2.targets.json"));
    assert_eq!(
        targets["signed"]["delegations"]["x-airlock-pq"]
            .as_object()
            .unwrap()
            .len(),
        1
    );

    let https = HttpsRepo::serve(&tree);
    let client = Client::new(&https, &trusted_root(&tree));
    let mut updater = client.updater();
    updater.refresh().expect("Airlock refreshes");
    for (name, content) in [
        ("top.txt", "top level"),
        ("docs/guide.md", "the guide"),
        ("two.txt", "release two"),
    ] {
        let dest = Updater::local_target_path(&client.target_dir(), name);
        let (info, _) = updater
            .fetch_target(name, &dest, &mut |_, _| {})
            .expect("Airlock downloads");
        assert_eq!(std::fs::read(&dest).unwrap(), content.as_bytes());
        if name == "docs/guide.md" {
            assert_eq!(info.role, "docs");
        }
    }

    let Some(python) = common::python() else {
        return;
    };
    let got = python_tuf(&python, &tree, &["top.txt", "docs/guide.md", "two.txt"]);
    assert_eq!(got["timestamp_version"], 2);
    assert_eq!(got["targets"]["top.txt"], "top level");
    assert_eq!(got["targets"]["docs/guide.md"], "the guide");
    assert_eq!(got["targets"]["two.txt"], "release two");
}

#[test]
fn airlock_refuses_the_repository_with_its_slh_dsa_signatures_removed() {
    let (_tmp, tree) = copy_tree();
    let meta = tree.join("metadata");
    for e in std::fs::read_dir(&meta).unwrap() {
        let path = e.unwrap().path();
        // The client's trusted root stays as it was installed.
        if path.file_name().unwrap() == "1.root.json" {
            continue;
        }
        let mut md = read(&path);
        md["signatures"]
            .as_array_mut()
            .unwrap()
            .retain(|s| !s["keyid"].as_str().unwrap().starts_with(PQ_PREFIX));
        write(&path, &md);
    }
    assert_refused(&tree);
    // A stock TUF client does not see the difference: that is why Airlock must. (Only
    // timestamp.json is stripped here: the other files' bytes are hashed by the ones above.)
    let (_tmp, tree) = copy_tree();
    let path = tree.join("metadata/timestamp.json");
    let mut md = read(&path);
    md["signatures"]
        .as_array_mut()
        .unwrap()
        .retain(|s| !s["keyid"].as_str().unwrap().starts_with(PQ_PREFIX));
    write(&path, &md);
    assert_refused(&tree);
    if let Some(python) = common::python() {
        let got = python_tuf(&python, &tree, &["top.txt"]);
        assert_eq!(got["targets"]["top.txt"], "top level");
    }
}

#[test]
fn airlock_refuses_the_repository_with_slh_dsa_signatures_swapped_between_roles() {
    let (_tmp, tree) = copy_tree();
    let meta = tree.join("metadata");
    let snapshot = read(&meta.join("2.snapshot.json"));
    let mut timestamp = read(&meta.join("timestamp.json"));
    set_pq_sig(&mut timestamp, &pq_sig(&snapshot));
    write(&meta.join("timestamp.json"), &timestamp);
    assert_refused(&tree);
}

#[test]
fn airlock_refuses_the_repository_with_an_slh_dsa_signature_replayed_from_an_older_version() {
    let (_tmp, tree) = copy_tree();
    let meta = tree.join("metadata");
    let old: Value = serde_json::from_slice(&published().timestamp_v1).unwrap();
    let mut timestamp = read(&meta.join("timestamp.json"));
    assert_eq!(old["signed"]["version"], 1);
    assert_eq!(timestamp["signed"]["version"], 2);
    set_pq_sig(&mut timestamp, &pq_sig(&old));
    write(&meta.join("timestamp.json"), &timestamp);
    assert_refused(&tree);
}
