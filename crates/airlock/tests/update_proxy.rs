//! `airlock update` through real proxies on 127.0.0.1: Debian's squid as an HTTPS (CONNECT)
//! proxy, from `--proxy` and from the environment (`HTTPS_PROXY`, `NO_PROXY`), and Debian's
//! microsocks as a SOCKS5 proxy with names resolved by the proxy (`socks5h`). TLS runs end to
//! end: the proxy sees host and port, the client still checks the repository's certificate.
//!
//! squid and microsocks come from `scripts/setup` (DEBIAN_PACKAGES).

#[path = "../../airlock-client/tests/common/mod.rs"]
mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{HttpsRepo, TestRepo};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_listening(port: u16, child: &mut Child, what: &str, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "{what} exited ({status}): {}",
                fs::read_to_string(log).unwrap_or_default()
            );
        }
        assert!(Instant::now() < deadline, "{what} did not listen on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A process killed (and waited for) on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// squid in the foreground with a private configuration: CONNECT to 127.0.0.1 only, no cache,
/// logs in `dir`.
fn squid(dir: &Path) -> (Proc, u16) {
    let port = free_port();
    fs::create_dir_all(dir).unwrap();
    // squid started as root works as its own user (`proxy`), which must write the logs.
    fs::set_permissions(dir, fs::Permissions::from_mode(0o777)).unwrap();
    let d = dir.display();
    let conf = format!(
        "http_port 127.0.0.1:{port}
acl here src 127.0.0.1/32
acl repo dst 127.0.0.1/32
http_access allow here repo
http_access deny all
cache deny all
access_log stdio:{d}/access.log
cache_log {d}/cache.log
pid_filename {d}/squid.pid
coredump_dir {d}
shutdown_lifetime 0 seconds
"
    );
    let conf_path = dir.join("squid.conf");
    fs::write(&conf_path, conf).unwrap();
    let child = Command::new("squid")
        .arg("-N")
        .arg("-f")
        .arg(&conf_path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("squid (scripts/setup installs it)");
    let mut p = Proc(child);
    wait_listening(port, &mut p.0, "squid", &dir.join("cache.log"));
    (p, port)
}

fn microsocks() -> (Proc, u16) {
    let port = free_port();
    let child = Command::new("microsocks")
        .args(["-i", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("microsocks (scripts/setup installs it)");
    let mut p = Proc(child);
    wait_listening(port, &mut p.0, "microsocks", Path::new("/dev/null"));
    (p, port)
}

fn airlock(dir: &Path, env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_airlock"));
    for v in [
        "HTTPS_PROXY",
        "https_proxy",
        "ALL_PROXY",
        "all_proxy",
        "HTTP_PROXY",
        "http_proxy",
        "NO_PROXY",
        "no_proxy",
    ] {
        cmd.env_remove(v);
    }
    cmd.envs(env.iter().copied())
        .arg("update")
        .arg("--dir")
        .arg(dir)
        .args(args)
        .output()
        .expect("run airlock")
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "airlock failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// CONNECT lines squid logged for `host_port`.
fn connects(log: &Path, host_port: &str) -> usize {
    fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("CONNECT") && l.contains(host_port))
        .count()
}

struct Setup {
    _repo: TestRepo,
    https: HttpsRepo,
    work: tempfile::TempDir,
    root: PathBuf,
    ca: PathBuf,
}

fn setup() -> Setup {
    let mut repo = TestRepo::new();
    repo.add_target("targets", "app.bin", b"the application");
    repo.publish();
    let https = HttpsRepo::serve(repo.path());
    let work = tempfile::tempdir().unwrap();
    fs::set_permissions(work.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let ca = https.ca.write_ca_pem(work.path()).unwrap();
    let root = work.path().join("root.json");
    fs::write(&root, repo.initial_root()).unwrap();
    Setup {
        _repo: repo,
        https,
        work,
        root,
        ca,
    }
}

impl Setup {
    /// A fresh client directory for this repository.
    fn client(&self, name: &str) -> PathBuf {
        let dir = self.work.path().join(name);
        ok(airlock(
            &dir,
            &[],
            &[
                "init",
                self.root.to_str().unwrap(),
                "--metadata-url",
                &self.https.metadata_url(),
                "--targets-url",
                &self.https.targets_url(),
                "--ca-file",
                self.ca.to_str().unwrap(),
            ],
        ));
        dir
    }

    fn host_port(&self) -> String {
        self.https
            .metadata_url()
            .trim_start_matches("https://")
            .split('/')
            .next()
            .unwrap()
            .to_string()
    }
}

#[test]
fn through_squid_from_the_flag_and_from_the_environment_and_not_for_no_proxy_hosts() {
    let s = setup();
    let logs = s.work.path().join("squid");
    let (_squid, port) = squid(&logs);
    let proxy = format!("http://127.0.0.1:{port}");
    let access = logs.join("access.log");
    let target = s.host_port();

    // --proxy.
    let dir = s.client("flag");
    ok(airlock(
        &dir,
        &[],
        &["--proxy", &proxy, "download", "app.bin"],
    ));
    assert_eq!(
        fs::read(dir.join("targets/app.bin")).unwrap(),
        b"the application"
    );
    // squid writes its log lines as requests end; give it a moment.
    let wait = |n: usize| {
        let deadline = Instant::now() + Duration::from_secs(10);
        while connects(&access, &target) < n && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        connects(&access, &target)
    };
    let after_flag = wait(1);
    assert!(after_flag >= 1, "no CONNECT logged by squid");

    // HTTPS_PROXY from the environment.
    let dir = s.client("env");
    ok(airlock(
        &dir,
        &[("HTTPS_PROXY", &proxy)],
        &["download", "app.bin"],
    ));
    assert_eq!(
        fs::read(dir.join("targets/app.bin")).unwrap(),
        b"the application"
    );
    let after_env = wait(after_flag + 1);
    assert!(after_env > after_flag, "HTTPS_PROXY was not used");

    // NO_PROXY names the repository's host: straight there.
    let dir = s.client("no-proxy");
    ok(airlock(
        &dir,
        &[("HTTPS_PROXY", &proxy), ("NO_PROXY", "127.0.0.1")],
        &["download", "app.bin"],
    ));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        connects(&access, &target),
        after_env,
        "NO_PROXY was ignored"
    );

    // A proxy that is not there: a failure naming the cause, nothing downloaded.
    let dir = s.client("down");
    let dead = format!("http://127.0.0.1:{}", free_port());
    let out = airlock(&dir, &[], &["--proxy", &dead, "download", "app.bin"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("refresh failed"), "{err}");
    assert!(!dir.join("targets/app.bin").exists());
}

#[test]
fn through_a_socks5_proxy_that_resolves_names() {
    let s = setup();
    let (socks, port) = microsocks();
    // The repository named by host name, resolved by the proxy (as Tor needs).
    let by_name = |url: String| url.replace("127.0.0.1", "localhost");
    let (metadata, targets) = (
        by_name(s.https.metadata_url()),
        by_name(s.https.targets_url()),
    );
    let proxy = format!("socks5h://127.0.0.1:{port}");
    let args = [
        "--proxy",
        proxy.as_str(),
        "--metadata-url",
        metadata.as_str(),
        "--targets-url",
        targets.as_str(),
        "download",
        "app.bin",
    ];
    let dir = s.client("socks");
    ok(airlock(&dir, &[], &args));
    assert_eq!(
        fs::read(dir.join("targets/app.bin")).unwrap(),
        b"the application"
    );
    // The requests went through it: with the proxy gone, the same command fails.
    drop(socks);
    let dir = s.client("socks-gone");
    let out = airlock(&dir, &[], &args);
    assert!(!out.status.success(), "downloaded without the proxy");
}
