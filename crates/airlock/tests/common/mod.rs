//! Helpers shared by the command-line tests that drive real `airlock` processes: run a
//! command (with a test passphrase), start a server and read its URL, and a log with one
//! witness served over HTTPS on 127.0.0.1.
#![allow(dead_code)]

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

pub const BIN: &str = env!("CARGO_BIN_EXE_airlock");
pub const PASS: &str = "airlock cli test passphrase";

pub fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env("AIRLOCK_PASSPHRASE", PASS)
        .env_remove("AIRLOCK_AGENT_CONFIG")
        .output()
        .unwrap()
}

pub fn ok(args: &[&str]) -> String {
    let out = run(args);
    assert!(
        out.status.success(),
        "airlock {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

pub fn json(args: &[&str]) -> serde_json::Value {
    serde_json::from_str(&ok(args)).unwrap()
}

pub fn fails(args: &[&str]) -> String {
    let out = run(args);
    assert!(!out.status.success(), "airlock {args:?} succeeded");
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.trim_end().lines().count(), 1, "not one line: {err:?}");
    err
}

pub struct Server(pub Child);
impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn serve(args: &[&str]) -> (Server, String) {
    let mut child = Command::new(BIN)
        .args(args)
        .env("AIRLOCK_PASSPHRASE", PASS)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    out.read_line(&mut line).unwrap();
    // Keep reading: a server whose stdout is closed stops at its next line (closed pipe).
    std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
    let url = line
        .trim()
        .split(|c: char| c.is_whitespace() || c == '"')
        .find(|w| w.starts_with("https://"))
        .unwrap_or_else(|| panic!("no URL in {line:?}"))
        .trim_end_matches(['/', ','])
        .to_string();
    (Server(child), url)
}

/// `repo serve` over HTTPS with a test CA in `dir/tls`; its JSON line (metadata and targets URLs).
pub fn serve_repo(repo: &str, dir: &Path) -> (Server, serde_json::Value) {
    let mut server = Command::new(BIN)
        .args([
            "repo",
            "-C",
            repo,
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--json",
        ])
        .arg("--test-ca-dir")
        .arg(dir.join("tls"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    let mut out = BufReader::new(server.stdout.take().unwrap());
    out.read_line(&mut line).unwrap();
    // Keep reading: a server whose stdout is closed stops at its next line (closed pipe).
    std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
    (Server(server), serde_json::from_str(&line).unwrap())
}

/// A log with one witness, both served over HTTPS, and the publisher key the log accepts.
pub struct Transparency {
    pub log: Server,
    pub _witness: Server,
    pub log_url: String,
    pub log_key: String,
    pub policy_file: PathBuf,
    pub publisher_key: PathBuf,
    pub ca: PathBuf,
}

pub fn start_transparency(dir: &Path, origin: &str) -> Transparency {
    fs::create_dir_all(dir.join("tls")).unwrap();
    let p = |s: &str| dir.join(s).to_str().unwrap().to_string();
    let tls = airlock_serve::TestCa::new()
        .unwrap()
        .write_files(&dir.join("tls"), &["127.0.0.1"])
        .unwrap();
    let (cert, key, ca) = (
        tls.cert_chain.to_str().unwrap(),
        tls.key.to_str().unwrap(),
        tls.ca_cert.to_str().unwrap(),
    );
    let publisher = json(&[
        "log",
        "keygen",
        "--json",
        "--name",
        "pub.test",
        "--out",
        &p("pub.key"),
    ]);
    let log = json(&[
        "log",
        "init",
        "--json",
        "--dir",
        &p("log"),
        "--origin",
        origin,
        "--publisher-key",
        publisher["verifier_key"].as_str().unwrap(),
        "--tls-cert",
        cert,
        "--tls-key",
        key,
        "--ca-file",
        ca,
    ]);
    let log_key = log["log_key"].as_str().unwrap().to_string();
    let witness = json(&[
        "witness",
        "init",
        "--json",
        "--dir",
        &p("w1"),
        "--name",
        "witness.test/w1",
        "--tls-cert",
        cert,
        "--tls-key",
        key,
    ]);
    let witness_vkey = witness["witness_key"].as_str().unwrap().to_string();
    ok(&[
        "witness",
        "add-log",
        "--dir",
        &p("w1"),
        "--log-key",
        &log_key,
    ]);
    let (w, wurl) = serve(&[
        "witness",
        "serve",
        "--dir",
        &p("w1"),
        "--listen",
        "127.0.0.1:0",
    ]);
    ok(&[
        "log",
        "add-witness",
        "--dir",
        &p("log"),
        "--key",
        &witness_vkey,
        "--url",
        &wurl,
    ]);
    let (l, url) = serve(&[
        "log",
        "serve",
        "--dir",
        &p("log"),
        "--listen",
        "127.0.0.1:0",
    ]);
    let policy_file = dir.join("policy.txt");
    fs::write(
        &policy_file,
        format!("log {log_key} {url}\nwitness w1 {witness_vkey} {wurl}\nquorum w1\n"),
    )
    .unwrap();
    Transparency {
        log: l,
        _witness: w,
        log_url: url,
        log_key,
        policy_file,
        publisher_key: dir.join("pub.key"),
        ca: dir.join("tls/ca.pem"),
    }
}

/// A ```sh block of a Markdown document, with the `## ` and `### ` headings it sits under.
pub struct DocBlock {
    pub h2: String,
    pub h3: String,
    pub body: String,
}

/// Every ```sh block of `markdown`, in order. An unclosed block fails the test.
pub fn sh_blocks(markdown: &str) -> Vec<DocBlock> {
    let mut blocks = Vec::new();
    let (mut h2, mut h3) = (String::new(), String::new());
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        if let Some(body) = &mut current {
            if line.trim_start().starts_with("```") {
                blocks.push(DocBlock {
                    h2: h2.clone(),
                    h3: h3.clone(),
                    body: std::mem::take(body),
                });
                current = None;
            } else {
                body.push_str(line);
                body.push('\n');
            }
        } else if let Some(h) = line.strip_prefix("## ") {
            h2 = h.trim().to_string();
            h3.clear();
        } else if let Some(h) = line.strip_prefix("### ") {
            h3 = h.trim().to_string();
        } else if line.trim_start() == "```sh" {
            current = Some(String::new());
        }
    }
    assert!(current.is_none(), "an unclosed ```sh block");
    blocks
}

/// `blocks` pasted in order into one bash script that stops at the first failure
/// (`set -euo pipefail`) and prints `marker` when it got to the end.
pub fn doc_script<'a>(blocks: impl IntoIterator<Item = &'a DocBlock>, marker: &str) -> String {
    let mut script = String::from("set -euo pipefail\n");
    for b in blocks {
        script.push_str(&b.body);
        script.push('\n');
    }
    script.push_str(&format!("echo {marker}\n"));
    script
}

/// `PATH` with the `airlock` built for this test first, as a reader's shell would find it.
pub fn path_with_airlock() -> String {
    format!(
        "{}:{}",
        Path::new(BIN).parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

/// `dir/agent.toml` for one app `app` (releases at `app/{version}/FILE`, as `target` names them)
/// installed in `dir/install`, from the repository `repo` that [`serve_repo`] serves
/// (`served`), with its state in `dir/state` and socket `dir/agent.sock`. `agent_extra` goes in
/// `[agent]`; `app_extra` (more `[apps.APP.*]` tables) after the repository table.
pub fn write_agent_config(
    dir: &Path,
    repo: &Path,
    served: &serde_json::Value,
    app: &str,
    target: &str,
    agent_extra: &str,
    app_extra: &str,
) -> PathBuf {
    let config = dir.join("agent.toml");
    let text = format!(
        r#"[agent]
state_dir = "{state}"
socket = "{socket}"
machine_id = "0123456789abcdef0123456789abcdef"
{agent_extra}

[apps.{app}]
target = "{target}"
install_root = "{install}"

[apps.{app}.repository]
metadata_url = "{metadata}"
targets_url = "{targets}"
trusted_root = "{root}"
ca_file = "{ca}"

{app_extra}
"#,
        state = dir.join("state").display(),
        socket = dir.join("agent.sock").display(),
        install = dir.join("install").display(),
        metadata = served["metadata_url"].as_str().unwrap(),
        targets = served["targets_url"].as_str().unwrap(),
        root = repo.join("published/metadata/1.root.json").display(),
        ca = dir.join("tls/ca.pem").display(),
    );
    fs::write(&config, text).unwrap();
    config
}
