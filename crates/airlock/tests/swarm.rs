//! The BitTorrent fallback end to end, on 127.0.0.1 only: a repository whose target lists its
//! info hash, Debian's opentracker as the private tracker, `airlock mirror seed` and Debian's
//! transmission as seeders, and a client whose every HTTPS targets mirror is down.
#![cfg(feature = "bittorrent")]

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{BIN, PASS, json, ok, serve_repo};

/// A process killed when the test ends, whatever its outcome.
struct Proc(Child);
impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A port free for both TCP and UDP on 127.0.0.1 (opentracker takes both).
fn free_port() -> u16 {
    loop {
        let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = tcp.local_addr().unwrap().port();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

fn wait_for(what: &str, limit: Duration, mut ready: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ready() {
        assert!(start.elapsed() < limit, "{what} not ready after {limit:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// opentracker on 127.0.0.1:`port`, serving only the listed info hashes (a private tracker).
fn tracker(dir: &Path, port: u16, hashes: &[&str]) -> Proc {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("whitelist"), hashes.join("\n") + "\n").unwrap();
    let p = port.to_string();
    let child = Command::new("opentracker")
        .args([
            "-i",
            "127.0.0.1",
            "-p",
            &p,
            "-P",
            &p,
            "-w",
            "whitelist",
            "-d",
        ])
        .arg(dir)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("opentracker (Debian package opentracker) must be installed");
    let proc = Proc(child);
    wait_for("opentracker", Duration::from_secs(10), || {
        TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    proc
}

/// How many peers the tracker knows for `btih` (its scrape answer: seeders and leechers; a
/// seeder that checked its file after its first announce is counted as a leecher until it
/// announces again).
fn peers(port: u16, btih: &str) -> u64 {
    let raw = hex::decode(btih).unwrap();
    let escaped: String = raw.iter().map(|b| format!("%{b:02x}")).collect();
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return 0;
    };
    let _ = write!(
        s,
        "GET /scrape?info_hash={escaped} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n"
    );
    let mut body = Vec::new();
    let _ = s.read_to_end(&mut body);
    let text = String::from_utf8_lossy(&body);
    let count = |key: &str| -> u64 {
        text.split(key)
            .nth(1)
            .and_then(|rest| rest.split('e').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    count("8:completei") + count("10:incompletei")
}

/// Debian's transmission-cli seeding `torrent` from `data` (no DHT, LPD, PEX, uTP or port
/// mapping; no block cache, so what it serves is what is on disk). Returns once it has checked
/// its file and seeds.
fn transmission(work: &Path, torrent: &Path, data: &Path, port: u16) -> Proc {
    let conf = work.join(format!("transmission-{port}"));
    std::fs::create_dir_all(&conf).unwrap();
    std::fs::write(
        conf.join("settings.json"),
        r#"{"dht-enabled": false, "lpd-enabled": false, "pex-enabled": false,
            "utp-enabled": false, "port-forwarding-enabled": false, "rpc-enabled": false,
            "bind-address-ipv4": "127.0.0.1", "bind-address-ipv6": "::1", "cache-size-mb": 0}"#,
    )
    .unwrap();
    // Unbuffered, so that its status line ("Seeding, ...") reaches the log as it is printed.
    let child = Command::new("stdbuf")
        .args(["-o0", "transmission-cli", "-g"])
        .arg(&conf)
        .arg("-w")
        .arg(data)
        .args(["-p", &port.to_string()])
        .arg(torrent)
        .stdout(std::fs::File::create(conf.join("out.log")).unwrap())
        .stderr(std::fs::File::create(conf.join("err.log")).unwrap())
        .spawn()
        .expect("transmission-cli (Debian package transmission-cli) must be installed");
    let proc = Proc(child);
    let log = || {
        String::from_utf8_lossy(&std::fs::read(conf.join("out.log")).unwrap_or_default())
            .into_owned()
    };
    let start = Instant::now();
    while !log().contains("Seeding") {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "transmission does not seed after 60 s:\n{}\n{}",
            log().replace('\r', "\n"),
            std::fs::read_to_string(conf.join("err.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    proc
}

/// `airlock mirror seed DIR` on 127.0.0.1:`port`.
fn airlock_seed(dir: &Path, port: u16) -> Proc {
    let child = Command::new(BIN)
        .args(["mirror", "seed"])
        .arg(dir)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    Proc(child)
}

fn update(dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("update")
        .arg("--dir")
        .arg(dir)
        .args(args)
        .env("AIRLOCK_PASSPHRASE", PASS)
        .output()
        .unwrap()
}

/// A published repository with one 3 MiB target added with `--torrent`, served over HTTPS.
struct Published {
    _server: common::Server,
    repo: PathBuf,
    data: Vec<u8>,
    btih: String,
    torrent: PathBuf,
    metadata_url: String,
    tracker_url: String,
    tracker_port: u16,
}

fn publish(work: &Path) -> Published {
    let repo = work.join("repo");
    let r = repo.to_str().unwrap();
    ok(&["repo", "init", r, "--plaintext-keys"]);
    // Pseudo-random (no run a seeder could compress or guess), 12 pieces of 256 KiB.
    let mut x = 0x2545_f491_4f6c_dd1d_u64;
    let data: Vec<u8> = (0..3 * 1024 * 1024)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let file = work.join("app.bin");
    std::fs::write(&file, &data).unwrap();
    let tracker_port = free_port();
    let tracker_url = format!("http://127.0.0.1:{tracker_port}/announce");
    let report = json(&[
        "--json",
        "repo",
        "-C",
        r,
        "add",
        file.to_str().unwrap(),
        "--name",
        "app/app.bin",
        "--torrent",
        "--tracker",
        &tracker_url,
    ]);
    let btih = report["torrents"]["app/app.bin"]
        .as_str()
        .unwrap_or_else(|| panic!("no info hash in {report}"))
        .to_string();
    assert_eq!(btih.len(), 40, "{btih}");
    ok(&["repo", "-C", r, "publish"]);

    // The signed metadata pins the swarm: the info hash is in the target's custom data.
    let newest = std::fs::read_dir(repo.join("published/metadata"))
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            let v: u64 = name.strip_suffix(".targets.json")?.parse().ok()?;
            Some((v, name))
        })
        .max()
        .unwrap();
    let targets: serde_json::Value = serde_json::from_slice(
        &std::fs::read(repo.join("published/metadata").join(newest.1)).unwrap(),
    )
    .unwrap();
    let listed = &targets["signed"]["targets"]["app/app.bin"];
    assert_eq!(
        listed["custom"]["bittorrent"]["btih"],
        btih.as_str(),
        "{listed}"
    );
    // The .torrent lies beside the published target.
    let sha = listed["hashes"]["sha256"].as_str().unwrap();
    let torrent = repo.join(format!("published/targets/app/{sha}.app.bin.torrent"));
    assert!(torrent.is_file(), "{} missing", torrent.display());

    let (server, served) = serve_repo(r, work);
    Published {
        _server: server,
        repo,
        data,
        btih,
        torrent,
        metadata_url: served["metadata_url"].as_str().unwrap().to_string(),
        tracker_url,
        tracker_port,
    }
}

/// A client whose targets URL is down, with the swarm as fallback.
fn client(work: &Path, p: &Published, timeout_secs: &str) -> PathBuf {
    let dir = work.join("client");
    let root = p.repo.join("published/metadata/1.root.json");
    let down = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let out = update(
        &dir,
        &[
            "init",
            root.to_str().unwrap(),
            "--metadata-url",
            &p.metadata_url,
            "--targets-url",
            &format!("https://{down}/targets/"),
            "--ca-file",
            work.join("tls/ca.pem").to_str().unwrap(),
            "--bittorrent",
            "--tracker",
            &p.tracker_url,
            "--swarm-timeout",
            timeout_secs,
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let toml = std::fs::read_to_string(dir.join("client.toml")).unwrap();
    assert!(toml.contains("[bittorrent]"), "{toml}");
    dir
}

/// Every HTTPS mirror of the target is down; the swarm (airlock's own seeder and transmission)
/// delivers it, and it is verified against the signed hashes.
#[test]
fn swarm_only_update() {
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path();
    let p = publish(work);
    let _tracker = tracker(&work.join("tracker"), p.tracker_port, &[&p.btih]);

    let _ours = airlock_seed(&p.repo.join("published/targets"), free_port());
    // The third-party seeder holds its own copy, named as in the torrent.
    let theirs_dir = work.join("theirs");
    std::fs::create_dir_all(&theirs_dir).unwrap();
    let name = p.torrent.file_stem().unwrap().to_owned();
    std::fs::write(theirs_dir.join(&name), &p.data).unwrap();
    let _theirs = transmission(work, &p.torrent, &theirs_dir, free_port());
    wait_for(
        "two seeders at the tracker",
        Duration::from_secs(60),
        || peers(p.tracker_port, &p.btih) >= 2,
    );

    let dir = client(work, &p, "120");
    let out = update(&dir, &["download", "app/app.bin"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("sha256 verified"), "{stdout}");
    assert_eq!(
        std::fs::read(dir.join("targets/app%2Fapp.bin")).unwrap(),
        p.data
    );
    // The swarm's own copy is not kept.
    let left: Vec<_> = walk(&dir.join("swarm"));
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// The only seeder serves corrupt pieces (its file was altered on disk after it verified it):
/// the download fails, and no corrupt byte is kept as the target or as a partial download.
#[test]
fn corrupt_seeder_bytes_are_never_accepted() {
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path();
    let p = publish(work);
    let _tracker = tracker(&work.join("tracker"), p.tracker_port, &[&p.btih]);

    let bad_dir = work.join("bad");
    std::fs::create_dir_all(&bad_dir).unwrap();
    let name = p.torrent.file_stem().unwrap().to_owned();
    let bad_file = bad_dir.join(&name);
    std::fs::write(&bad_file, &p.data).unwrap();
    let _bad = transmission(work, &p.torrent, &bad_dir, free_port());
    wait_for("the seeder at the tracker", Duration::from_secs(60), || {
        peers(p.tracker_port, &p.btih) >= 1
    });
    // Altered after its check: it now serves what it no longer verifies.
    let mut corrupt = p.data.clone();
    for b in corrupt.iter_mut().step_by(4096) {
        *b ^= 0xff;
    }
    std::fs::write(&bad_file, &corrupt).unwrap();

    let dir = client(work, &p, "20");
    let out = update(&dir, &["download", "app/app.bin"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "accepted: {stderr}");
    assert!(stderr.contains("bittorrent swarm"), "{stderr}");
    assert!(!dir.join("targets/app%2Fapp.bin").exists());
    // Nothing the swarm sent is kept: no partial download, no swarm copy.
    for f in walk(&dir.join("targets"))
        .into_iter()
        .chain(walk(&dir.join("swarm")))
    {
        let len = std::fs::metadata(&f).unwrap().len();
        assert_eq!(len, 0, "{} keeps {len} bytes from the swarm", f.display());
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let path = e.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}
