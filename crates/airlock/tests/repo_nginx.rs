//! A published repository served by a stock web server: Debian's nginx, master as root and
//! worker as `nobody`, over TLS on 127.0.0.1 (private config and prefix; never /etc/nginx or
//! port 80). Everything is published under `umask 077`, once by copying targets and once by
//! hard-linking them, and then every metadata and target file must be readable by the worker:
//! python-tuf and `airlock update` refresh and download every target through it.
//!
//! nginx comes from `scripts/setup` (DEBIAN_PACKAGES). A machine without it fails this test
//! instead of skipping it: a skipped test would hide exactly the regression it is for.

use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const AIRLOCK: &str = env!("CARGO_BIN_EXE_airlock");

mod common;

/// `airlock ARGS` under `umask 077`, the strictest umask a publisher's shell may have.
fn airlock_umask077(args: &[&str]) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg(r#"umask 077 && exec "$0" "$@""#)
        .arg(AIRLOCK)
        .args(args)
        .env_remove("AIRLOCK_PASSPHRASE")
        .env_remove("AIRLOCK_REPO")
        .output()
        .expect("run airlock");
    assert!(
        out.status.success(),
        "airlock {args:?} failed:\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn update(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(AIRLOCK)
        .arg("update")
        .arg("--dir")
        .arg(dir)
        .args(args)
        .output()
        .expect("run airlock update");
    assert!(
        out.status.success(),
        "airlock update {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn nginx_binary() -> PathBuf {
    for p in ["/usr/sbin/nginx", "/usr/bin/nginx"] {
        if Path::new(p).exists() {
            return PathBuf::from(p);
        }
    }
    panic!("nginx is not installed: run ./scripts/setup (it installs Debian's nginx)");
}

fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("AIRLOCK_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python");
    assert!(
        venv.exists(),
        "no python-tuf: set AIRLOCK_PYTHON or run ./scripts/setup"
    );
    venv
}

fn mode(p: &Path) -> u32 {
    fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

/// nginx as a child process; stopped (and its worker with it) on drop.
struct Nginx {
    child: Child,
    prefix: PathBuf,
}

impl Nginx {
    fn start(prefix: &Path, root: &Path) -> (Nginx, u16, PathBuf) {
        let nginx = nginx_binary();
        fs::create_dir_all(prefix.join("tmp")).unwrap();
        let ca = airlock_serve::TestCa::new().unwrap();
        let id = ca.issue_server_cert(&["127.0.0.1", "localhost"]).unwrap();
        fs::write(prefix.join("cert.pem"), id.cert_chain_pem()).unwrap();
        fs::write(prefix.join("key.pem"), id.key_pem()).unwrap();
        let ca_file = ca.write_ca_pem(prefix).unwrap();
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let p = prefix.display();
        let conf = format!(
            "user nobody nogroup;
worker_processes 1;
pid {p}/nginx.pid;
error_log {p}/error.log;
events {{ worker_connections 64; }}
http {{
  access_log {p}/access.log;
  client_body_temp_path {p}/tmp/body;
  proxy_temp_path {p}/tmp/proxy;
  fastcgi_temp_path {p}/tmp/fastcgi;
  uwsgi_temp_path {p}/tmp/uwsgi;
  scgi_temp_path {p}/tmp/scgi;
  types {{ application/json json; }}
  default_type application/octet-stream;
  server {{
    listen 127.0.0.1:{port} ssl;
    ssl_certificate {p}/cert.pem;
    ssl_certificate_key {p}/key.pem;
    root {root};
  }}
}}
",
            root = root.display()
        );
        let conf_path = prefix.join("nginx.conf");
        fs::write(&conf_path, conf).unwrap();
        let child = Command::new(nginx)
            .arg("-e")
            .arg(prefix.join("error.log"))
            .arg("-p")
            .arg(prefix)
            .arg("-c")
            .arg(&conf_path)
            .args(["-g", "daemon off;"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start nginx");
        let mut server = Nginx {
            child,
            prefix: prefix.to_path_buf(),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = server.child.try_wait().unwrap() {
                let mut err = String::new();
                if let Some(e) = server.child.stderr.take() {
                    for line in BufReader::new(e).lines().map_while(Result::ok) {
                        err.push_str(&line);
                        err.push('\n');
                    }
                }
                panic!("nginx exited ({status}): {err}{}", server.log("error.log"));
            }
            assert!(Instant::now() < deadline, "nginx did not start listening");
            std::thread::sleep(Duration::from_millis(50));
        }
        (server, port, ca_file)
    }

    fn log(&self, name: &str) -> String {
        fs::read_to_string(self.prefix.join(name)).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGKILL reaches the master only; the worker notices its parent is gone and exits, but
        // a graceful stop first lets it do so at once.
        let _ = Command::new("kill")
            .args(["-QUIT", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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
out = {}
for name in sys.argv[6:]:
    info = u.get_targetinfo(name)
    path = u.download_target(info, filepath=f"{target_dir}/{name.replace('/', '_')}")
    out[name] = open(path).read()
print(json.dumps(out))
"#;

#[test]
fn nginx_worker_as_another_user_serves_every_published_file_under_umask_077() {
    assert!(
        Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout == b"0\n"),
        "this test runs nginx's master as root and its worker as nobody: run it as root (CI does)"
    );
    let nginx_bin = nginx_binary();
    let python = python();
    // Under /tmp, never a home directory the worker cannot enter; tempdir makes it 0700.
    let tmp = tempfile::Builder::new()
        .prefix("airlock-nginx-")
        .tempdir_in("/tmp")
        .unwrap();
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let repo = tmp.path().join("repo");
    let r = repo.to_str().unwrap();
    let src = tmp.path().join("src");
    let files = [
        ("app/app.bin", "the application"),
        ("app/lib/helper.so", "a helper"),
        ("docs/readme.txt", "read me"),
    ];
    for (name, content) in files {
        let p = src.join(name);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, content).unwrap();
        // Like a build tool under umask 077: only the owner may read the source.
        fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).unwrap();
    }

    airlock_umask077(&["repo", "init", r, "--plaintext-keys"]);
    airlock_umask077(&[
        "repo",
        "-C",
        r,
        "delegate",
        "docs",
        "--path",
        "docs/*",
        "--plaintext-keys",
    ]);
    let app = src.join("app");
    airlock_umask077(&[
        "repo",
        "-C",
        r,
        "add",
        app.to_str().unwrap(),
        "--prefix",
        "app/",
    ]);
    airlock_umask077(&["repo", "-C", r, "publish"]);
    // The second release hard-links its target into published/targets.
    let docs = src.join("docs/readme.txt");
    airlock_umask077(&[
        "repo",
        "-C",
        r,
        "add",
        docs.to_str().unwrap(),
        "--name",
        "docs/readme.txt",
    ]);
    airlock_umask077(&["repo", "-C", r, "publish", "--link-targets"]);

    let published = repo.join("published");
    // The worker must be able to walk down to the tree: every ancestor searchable by others.
    for dir in published.ancestors() {
        assert_ne!(
            mode(dir) & 0o001,
            0,
            "{} is not searchable by other users",
            dir.display()
        );
    }
    // Directories 0755 and files 0644 whatever the umask; the hard-linked target is 0444 (the
    // published file is the source file, made read-only for everyone).
    let linked = airlock_repo::hashed_target_path("docs/readme.txt", &hex_sha256(b"read me"));
    for (p, ft) in walk(&published) {
        if ft.is_symlink() {
            continue;
        }
        let want = if ft.is_dir() {
            0o755
        } else if p.ends_with(&linked) {
            0o444
        } else {
            0o644
        };
        assert_eq!(mode(&p), want, "mode of {}", p.display());
    }
    assert_eq!(
        mode(&docs),
        0o444,
        "the linked source is the published file"
    );

    let (server, port, ca) = Nginx::start(&tmp.path().join("nginx"), &published);
    let base = format!("https://127.0.0.1:{port}");
    // The worker really runs as another user than the publisher.
    let ps = Command::new("ps")
        .args(["-o", "user=", "--ppid", &server.child.id().to_string()])
        .output()
        .unwrap();
    let users = String::from_utf8_lossy(&ps.stdout);
    assert!(
        users.lines().any(|u| u.trim() == "nobody"),
        "nginx worker users: {users:?} ({})",
        nginx_bin.display()
    );

    let names: Vec<&str> = files.iter().map(|(n, _)| *n).collect();
    // python-tuf.
    let work = tmp.path().join("py");
    fs::create_dir_all(work.join("metadata")).unwrap();
    fs::create_dir_all(work.join("targets")).unwrap();
    fs::copy(
        published.join("metadata/1.root.json"),
        work.join("metadata/root.json"),
    )
    .unwrap();
    let script = work.join("client.py");
    fs::write(&script, PY_CLIENT).unwrap();
    let out = Command::new(&python)
        .arg(&script)
        .arg(work.join("metadata"))
        .arg(work.join("targets"))
        .arg(format!("{base}/metadata/"))
        .arg(format!("{base}/targets/"))
        .arg(&ca)
        .args(&names)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python-tuf through nginx failed:\n{}\naccess log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        server.log("access.log")
    );
    let got: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for (name, content) in files {
        assert_eq!(got[name], content, "python-tuf got {name}");
    }

    // airlock update.
    let state = tmp.path().join("client");
    let root = published.join("metadata/1.root.json");
    update(
        &state,
        &[
            "init",
            root.to_str().unwrap(),
            "--metadata-url",
            &format!("{base}/metadata/"),
            "--targets-url",
            &format!("{base}/targets/"),
            "--ca-file",
            ca.to_str().unwrap(),
        ],
    );
    update(&state, &["refresh"]);
    let mut args = vec!["download"];
    args.extend(&names);
    update(&state, &args);
    for (name, content) in files {
        assert_eq!(
            fs::read_to_string(
                state
                    .join("targets")
                    .join(airlock_client::store::encode_target_file_name(name))
            )
            .unwrap(),
            content,
            "airlock update got {name}"
        );
    }
    let access = server.log("access.log");
    assert!(!access.contains("\" 403 "), "403s served:\n{access}");
}

/// A download an earlier run left half done goes on from nginx with a Range request (206),
/// and the whole file is verified; a partial file of other bytes is caught by the hash and the
/// download starts over.
#[test]
fn airlock_update_resumes_a_download_from_nginx() {
    assert!(
        Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout == b"0\n"),
        "this test runs nginx's master as root and its worker as nobody: run it as root (CI does)"
    );
    let tmp = tempfile::Builder::new()
        .prefix("airlock-nginx-")
        .tempdir_in("/tmp")
        .unwrap();
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let repo = tmp.path().join("repo");
    let r = repo.to_str().unwrap();
    let data: Vec<u8> = (0..3_000_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let file = tmp.path().join("big.bin");
    fs::write(&file, &data).unwrap();
    airlock_umask077(&["repo", "init", r, "--plaintext-keys"]);
    airlock_umask077(&[
        "repo",
        "-C",
        r,
        "add",
        file.to_str().unwrap(),
        "--name",
        "big.bin",
    ]);
    airlock_umask077(&["repo", "-C", r, "publish"]);
    let published = repo.join("published");
    let (server, port, ca) = Nginx::start(&tmp.path().join("nginx"), &published);
    let base = format!("https://127.0.0.1:{port}");
    let state = tmp.path().join("client");
    update(
        &state,
        &[
            "init",
            published.join("metadata/1.root.json").to_str().unwrap(),
            "--metadata-url",
            &format!("{base}/metadata/"),
            "--targets-url",
            &format!("{base}/targets/"),
            "--ca-file",
            ca.to_str().unwrap(),
        ],
    );
    // What an interrupted run leaves beside the target: the first bytes, under a name that
    // carries the target's hash.
    let digest = hex_sha256(&data);
    let partial = state.join(format!("targets/.big.bin.{}.partial", &digest[..16]));
    fs::create_dir_all(partial.parent().unwrap()).unwrap();
    fs::write(&partial, &data[..1_000_000]).unwrap();
    update(&state, &["download", "big.bin"]);
    assert!(fs::read(state.join("targets/big.bin")).unwrap() == data);
    assert!(!partial.exists());
    let access = server.log("access.log");
    let target_lines: Vec<&str> = access.lines().filter(|l| l.contains(&digest)).collect();
    assert_eq!(target_lines.len(), 1, "{access}");
    assert!(target_lines[0].contains("\" 206 "), "{access}");

    // Damaged bytes held: the resumed file fails its hash, and a second request from zero
    // (200) brings the right one.
    fs::remove_file(state.join("targets/big.bin")).unwrap();
    let mut damaged = data[..1_000_000].to_vec();
    damaged[10] ^= 1;
    fs::write(&partial, &damaged).unwrap();
    update(&state, &["download", "big.bin"]);
    assert!(fs::read(state.join("targets/big.bin")).unwrap() == data);
    let access = server.log("access.log");
    let statuses: Vec<&str> = access
        .lines()
        .filter(|l| l.contains(&digest))
        .filter_map(|l| {
            l.split('"')
                .nth(2)
                .and_then(|rest| rest.split_whitespace().next())
        })
        .collect();
    assert_eq!(statuses, ["206", "206", "200"], "{access}");
}

/// `airlock mirror sync` makes a mirror that Debian's nginx serves to clients; a second sync
/// fetches only the new target; a source serving a tampered target makes the sync fail and the
/// mirror keeps serving the previous release.
#[test]
fn a_mirror_made_by_sync_is_served_by_nginx_and_refuses_what_a_client_would() {
    assert!(
        Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout == b"0\n"),
        "this test runs nginx's master as root and its worker as nobody: run it as root (CI does)"
    );
    let tmp = tempfile::Builder::new()
        .prefix("airlock-mirror-")
        .tempdir_in("/tmp")
        .unwrap();
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let repo = tmp.path().join("repo");
    let r = repo.to_str().unwrap();
    let add = |name: &str, content: &str| {
        let f = tmp.path().join(name.replace('/', "_"));
        fs::write(&f, content).unwrap();
        airlock_umask077(&["repo", "-C", r, "add", f.to_str().unwrap(), "--name", name]);
        airlock_umask077(&["repo", "-C", r, "publish"]);
    };
    airlock_umask077(&["repo", "init", r, "--plaintext-keys"]);
    add("app/1.0/app.bin", "release 1.0");
    add("docs/readme.txt", "read me");
    let (_source, served) = common::serve_repo(r, tmp.path());
    let from = format!(
        "{},{}",
        served["metadata_url"].as_str().unwrap(),
        served["targets_url"].as_str().unwrap()
    );
    let source_ca = tmp.path().join("tls/ca.pem");
    let mirror = tmp.path().join("mirror");
    let root = repo.join("published/metadata/1.root.json");
    let sync = || {
        Command::new(AIRLOCK)
            .args(["--json", "mirror", "sync", "--from", &from, "--to"])
            .arg(&mirror)
            .arg("--root")
            .arg(&root)
            .arg("--ca-file")
            .arg(&source_ca)
            .output()
            .unwrap()
    };
    let report = |out: std::process::Output| -> serde_json::Value {
        assert!(
            out.status.success(),
            "mirror sync failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let first = report(sync());
    assert_eq!(first["targets_fetched"], 2, "{first}");

    let (server, port, ca) = Nginx::start(&tmp.path().join("nginx"), &mirror.join("public"));
    let base = format!("https://127.0.0.1:{port}");
    let state = tmp.path().join("client");
    update(
        &state,
        &[
            "init",
            root.to_str().unwrap(),
            "--metadata-url",
            &format!("{base}/metadata/"),
            "--targets-url",
            &format!("{base}/targets/"),
            "--ca-file",
            ca.to_str().unwrap(),
        ],
    );
    update(&state, &["download", "app/1.0/app.bin", "docs/readme.txt"]);
    let got = |name: &str| {
        fs::read_to_string(
            state
                .join("targets")
                .join(airlock_client::store::encode_target_file_name(name)),
        )
        .unwrap()
    };
    assert_eq!(got("app/1.0/app.bin"), "release 1.0");

    // A new release: only its target moves.
    add("app/1.1/app.bin", "release 1.1");
    let second = report(sync());
    assert_eq!(second["targets_fetched"], 1, "{second}");
    assert_eq!(second["targets_present"], 2, "{second}");
    update(&state, &["download", "app/1.1/app.bin"]);
    assert_eq!(got("app/1.1/app.bin"), "release 1.1");
    let served_timestamp = fs::read(mirror.join("public/metadata/timestamp.json")).unwrap();

    // The source serves other bytes for the next release's target: the sync fails, and the
    // mirror's metadata (what clients see) stays as it was.
    add("app/1.2/app.bin", "release 1.2");
    let published = repo.join("published/targets/app/1.2");
    for entry in fs::read_dir(&published).unwrap() {
        let p = entry.unwrap().path();
        fs::remove_file(&p).unwrap();
        fs::write(&p, "release 1.2 with a backdoor").unwrap();
    }
    let out = sync();
    assert!(!out.status.success());
    // With --json the error is a JSON document on standard output.
    let err = String::from_utf8_lossy(&out.stdout);
    assert!(
        err.contains("previous state") && err.contains("app/1.2"),
        "{err}"
    );
    assert_eq!(
        fs::read(mirror.join("public/metadata/timestamp.json")).unwrap(),
        served_timestamp
    );
    update(&state, &["refresh"]);
    let listing = update(&state, &["list"]);
    assert!(!listing.contains("app/1.2"), "{listing}");

    // The source is repaired: the next sync publishes the release it refused before.
    for entry in fs::read_dir(&published).unwrap() {
        let p = entry.unwrap().path();
        fs::remove_file(&p).unwrap();
        fs::write(&p, "release 1.2").unwrap();
    }
    let third = report(sync());
    assert_eq!(third["targets_fetched"], 1, "{third}");
    update(&state, &["download", "app/1.2/app.bin"]);
    assert_eq!(got("app/1.2/app.bin"), "release 1.2");
    let access = server.log("access.log");
    assert!(!access.contains("\" 403 "), "403s served:\n{access}");
}

fn hex_sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// Every path under `dir` (itself included), not following symbolic links.
fn walk(dir: &Path) -> Vec<(PathBuf, fs::FileType)> {
    let mut out = vec![(
        dir.to_path_buf(),
        fs::symlink_metadata(dir).unwrap().file_type(),
    )];
    for e in fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let ft = e.file_type().unwrap();
        if ft.is_dir() {
            out.extend(walk(&e.path()));
        } else {
            out.push((e.path(), ft));
        }
    }
    out
}
