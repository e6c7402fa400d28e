//! `airlock agent` as a person meets it: with no agent running, `check-now`, `status` and
//! `rollback` act on the state directly (under the agent's lock); with one running they go
//! over its socket; a bad configuration is refused naming the setting. A real repository is
//! published and served with the CLI over HTTPS on 127.0.0.1, and the real install engine
//! installs into a temporary directory.

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::*;

/// A release: a tar.gz holding `run.sh` that prints the version.
fn release(dir: &Path, version: &str) -> std::path::PathBuf {
    let src = dir.join(format!("src-{version}"));
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("VERSION"), version).unwrap();
    let out = dir.join(format!("app-{version}.tar.gz"));
    let status = Command::new("tar")
        .arg("-czf")
        .arg(&out)
        .arg("-C")
        .arg(&src)
        .arg(".")
        .status()
        .unwrap();
    assert!(status.success());
    out
}

fn publish(repo: &str, dir: &Path, version: &str) {
    let file = release(dir, version);
    ok(&[
        "repo",
        "-C",
        repo,
        "add",
        file.to_str().unwrap(),
        "--name",
        &format!("app/{version}/app.tar.gz"),
    ]);
    ok(&["repo", "-C", repo, "publish"]);
}

fn installed(root: &Path) -> String {
    fs::read_to_string(root.join("current/VERSION")).unwrap()
}

#[test]
fn a_person_runs_the_agent_commands_with_and_without_a_running_agent() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let repo = dir.join("repo");
    let r = repo.to_str().unwrap();
    ok(&["repo", "init", r, "--plaintext-keys"]);
    publish(r, dir, "1.0.0");
    let (_server, served) = serve_repo(r, dir);
    let install = dir.join("install");
    let socket = dir.join("agent.sock");
    let config = write_agent_config(
        dir,
        &repo,
        &served,
        "app",
        "app/{version}/app.tar.gz",
        "",
        "",
    );
    let c = config.to_str().unwrap();

    // No agent running: the commands act directly.
    let status = json(&["--json", "agent", "--config", c, "status"]);
    assert_eq!(
        status["apps"]["app"]["installed"],
        serde_json::Value::Null,
        "{status}"
    );
    let text = ok(&["agent", "--config", c, "check-now", "app"]);
    assert!(text.contains("1.0.0"), "{text}");
    assert_eq!(installed(&install), "1.0.0");

    // With the agent running, the same commands go over its socket.
    let agent = Server(
        Command::new(BIN)
            .args(["agent", "--config", c, "run"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let start = Instant::now();
    while !socket.exists() {
        assert!(start.elapsed() < Duration::from_secs(30), "no socket");
        std::thread::sleep(Duration::from_millis(50));
    }
    publish(r, dir, "1.1.0");
    ok(&["agent", "--config", c, "check-now", "app"]);
    assert_eq!(installed(&install), "1.1.0");
    let status = json(&["--json", "agent", "--config", c, "status"]);
    assert_eq!(status["apps"]["app"]["installed"], "1.1.0", "{status}");
    ok(&["agent", "--config", c, "rollback", "app"]);
    assert_eq!(installed(&install), "1.0.0");
    // SIGTERM (what a service manager sends) stops it cleanly: status 0, socket removed.
    let mut agent = agent;
    let term = Command::new("kill")
        .args(["-TERM", &agent.0.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let start = Instant::now();
    let status = loop {
        if let Some(status) = agent.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "still running after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status}");
    assert!(!socket.exists());
    drop(agent);

    // A setting the agent cannot use is refused at load, naming it.
    fs::write(
        &config,
        fs::read_to_string(&config).unwrap() + "\n[apps.app.install]\nformat = \"rar\"\n",
    )
    .unwrap();
    let out = run(&["agent", "--config", c, "status"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("apps.app.install.format"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
}

/// Where a process's executable is (the agent keeps its pid when it restarts into a new binary).
fn exe_of(pid: u32) -> Option<std::path::PathBuf> {
    fs::read_link(format!("/proc/{pid}/exe")).ok()
}

/// The agent updates its own binary through the same checks, restarts into it once it passed
/// its health check (the new binary loading the configuration), and stays on it when a later
/// binary fails that check.
#[test]
fn the_agent_updates_itself_and_keeps_its_binary_when_a_new_one_fails() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let repo = dir.join("repo");
    let r = repo.to_str().unwrap();
    ok(&["repo", "init", r, "--plaintext-keys"]);
    let add = |file: &Path, version: &str| {
        ok(&[
            "repo",
            "-C",
            r,
            "add",
            file.to_str().unwrap(),
            "--name",
            &format!("airlock/{version}/airlock"),
        ]);
        ok(&["repo", "-C", r, "publish"]);
    };
    // Version 2.0.0 is this very binary.
    add(Path::new(BIN), "2.0.0");
    let (_server, served) = serve_repo(r, dir);
    let install = dir.join("install");
    let socket = dir.join("agent.sock");
    let health = format!(
        "[apps.airlock.install]\nformat = \"file\"\n\n[apps.airlock.install.health]\n\
         command = [\"{}/current/airlock\", \"agent\", \"--config\", \"{}\", \"check-config\"]\n\
         timeout = \"30s\"",
        install.display(),
        dir.join("agent.toml").display()
    );
    let config = write_agent_config(
        dir,
        &repo,
        &served,
        "airlock",
        "airlock/{version}/airlock",
        "self_app = \"airlock\"",
        &health,
    );
    let c = config.to_str().unwrap();
    assert!(ok(&["agent", "--config", c, "check-config"]).contains(": ok"));

    let agent = Server(
        Command::new(BIN)
            .args(["agent", "--config", c, "run"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let pid = agent.0.id();
    let wait_until = |what: &str, f: &dyn Fn() -> bool| {
        let start = Instant::now();
        while !f() {
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "timed out: {what}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    wait_until("the socket", &|| socket.exists());
    assert_eq!(exe_of(pid).as_deref(), Some(Path::new(BIN)));
    let text = ok(&["agent", "--config", c, "check-now", "airlock"]);
    assert!(text.contains("2.0.0"), "{text}");
    let new_binary = install.join("releases/2.0.0/airlock");
    wait_until("the agent restarted into its new binary", &|| {
        exe_of(pid).as_deref() == Some(new_binary.as_path())
    });
    // The restarted agent answers on its socket.
    wait_until("the restarted agent answers", &|| {
        run(&["--json", "agent", "--config", c, "status"])
            .status
            .success()
    });

    // 3.0.0 does not even start: its health check fails, the agent stays on 2.0.0.
    let broken = dir.join("broken");
    fs::write(&broken, "#!/bin/sh\nexit 1\n").unwrap();
    add(&broken, "3.0.0");
    let out = run(&["agent", "--config", c, "check-now", "airlock"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("3.0.0"), "{text}");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(exe_of(pid).as_deref(), Some(new_binary.as_path()));
    let status = json(&["--json", "agent", "--config", c, "status"]);
    assert_eq!(status["apps"]["airlock"]["installed"], "2.0.0", "{status}");
    assert!(
        status["apps"]["airlock"]["bad_versions"]
            .as_array()
            .is_some_and(|b| b.iter().any(|v| v == "3.0.0")),
        "{status}"
    );
    drop(agent);
}
