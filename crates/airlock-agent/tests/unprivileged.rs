//! The application's side, as a real unprivileged user created for the test (we run as root):
//! it cannot write the install directory, it can ask for a check over the socket and the FIFO
//! (with the PHP example, run by Debian's php-cli), and junk, oversized lines, floods,
//! strangers and admin requests change nothing.

mod support;

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use airlock_agent::{Call, RecordingInstaller};
use serde_json::Value;
use support::{Fixture, ask, wait_for};

/// A system user and its group, removed on drop.
struct TestUser {
    name: String,
    uid: u32,
    gid: u32,
}

impl TestUser {
    fn create() -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "al-t{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        );
        let out = Command::new("useradd")
            .args([
                "--system",
                "--user-group",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
            ])
            .arg(&name)
            .output()
            .expect("useradd (the test runs as root)");
        assert!(
            out.status.success(),
            "useradd: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let id = |flag: &str| -> u32 {
            let out = Command::new("id").arg(flag).arg(&name).output().unwrap();
            String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
        };
        let (uid, gid) = (id("-u"), id("-g"));
        Self { name, uid, gid }
    }

    /// Run `program args` as this user.
    fn run(&self, program: &str, args: &[&str], env: &[(&str, &Path)]) -> Output {
        let mut cmd = Command::new("setpriv");
        cmd.args([
            "--reuid",
            &self.uid.to_string(),
            "--regid",
            &self.gid.to_string(),
            "--clear-groups",
            "--",
        ])
        .arg(program)
        .args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().expect("setpriv")
    }

    fn sh(&self, script: &str) -> Output {
        self.run("/bin/sh", &["-c", script], &[])
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        let _ = Command::new("userdel").arg(&self.name).output();
        let _ = Command::new("groupdel").arg(&self.name).output();
    }
}

fn json_out(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

fn checks(socket: &Path) -> u64 {
    ask(socket, "status myapp")["apps"]["myapp"]["checks"]
        .as_u64()
        .unwrap()
}

#[test]
fn the_web_user_can_only_trigger_through_socket_and_pipe_with_php() {
    if !is_root() {
        eprintln!("skipped: needs root to create a user");
        return;
    }
    let app_user = TestUser::create();
    let stranger = TestUser::create();
    let mut f = Fixture::new();
    f.release("1.0", None);
    let fifo = f.path("run/myapp.trigger");
    let status_file = f.path("run/myapp.status");
    let config = f.config(
        &format!(
            "users = [\"{}\"]\nfifo = \"{}\"\nfifo_group = {}\nstatus_file = \"{}\"",
            app_user.name,
            fifo.display(),
            app_user.gid,
            status_file.display()
        ),
        // No check at start; triggers at most one a second.
        "windows = []\ntrigger_min_interval = \"1s\"",
    );
    let installer = Arc::new(RecordingInstaller::new());
    std::fs::create_dir_all(f.path("install")).unwrap();
    let agent = f.start(config, installer.clone());
    let socket = f.socket();
    wait_for("the first scheduled check", || checks(&socket) >= 1);
    wait_for("it to finish", || {
        ask(&socket, "status myapp")["apps"]["myapp"]["check_queued"] == false
    });
    let first = checks(&socket);

    // The application's user cannot write its code, nor the agent's state.
    for dir in ["install", "state", "state/apps/myapp"] {
        let out = app_user.sh(&format!("touch {}/x", f.path(dir).display()));
        assert!(!out.status.success(), "{} could write {dir}", app_user.name);
    }

    let php = f.path("airlock-trigger.php");
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/php/airlock-trigger.php"),
        &php,
    )
    .unwrap();
    let env = [
        ("AIRLOCK_SOCKET", socket.as_path()),
        ("AIRLOCK_FIFO", fifo.as_path()),
        ("AIRLOCK_STATUS_FILE", status_file.as_path()),
    ];
    let php_run =
        |user: &TestUser, what: &str| user.run("php", &[php.to_str().unwrap(), what], &env);

    // Over the socket.
    std::thread::sleep(Duration::from_millis(1100));
    let answer = json_out(&php_run(&app_user, "check"));
    assert_eq!(answer["ok"], true, "{answer}");
    assert_eq!(answer["apps"]["myapp"], "queued", "{answer}");
    wait_for("the triggered check", || checks(&socket) == first + 1);
    let status = json_out(&php_run(&app_user, "status"));
    assert_eq!(status["apps"]["myapp"]["installed"], "1.0", "{status}");
    assert_eq!(
        status["apps"]["myapp"]["last_check"]["ok"], true,
        "{status}"
    );

    // Through the FIFO; the status file is readable by the app's group.
    std::thread::sleep(Duration::from_millis(1100));
    let status = json_out(&php_run(&app_user, "pipe"));
    assert_eq!(status["app"], "myapp", "{status}");
    wait_for("the piped check", || checks(&socket) == first + 2);

    // Admin requests from the app's user are refused and change nothing.
    let refused_before = agent.refused();
    for line in [
        "rollback myapp",
        "check-now myapp ignore-staging",
        "check-now *",
    ] {
        let code = format!(
            "$s = stream_socket_client('unix://{}'); fwrite($s, \"{line}\\n\"); echo fgets($s);",
            socket.display()
        );
        let answer = json_out(&app_user.run("php", &["-r", &code], &[]));
        assert_eq!(answer["ok"], false, "{line}: {answer}");
    }
    // A stranger: refused on the socket, cannot even open the FIFO or read the status file.
    let answer = json_out(&php_run(&stranger, "check"));
    assert_eq!(answer["ok"], false, "{answer}");
    let out = stranger.sh(&format!("echo check > {}", fifo.display()));
    assert!(!out.status.success(), "a stranger wrote the FIFO");
    let out = stranger.sh(&format!("cat {}", status_file.display()));
    assert!(!out.status.success(), "a stranger read the status file");
    assert!(agent.refused() >= refused_before + 4);
    assert_eq!(checks(&socket), first + 2);
    assert!(
        !installer
            .calls()
            .iter()
            .any(|c| matches!(c, Call::Rollback { .. }))
    );
    agent.stop();
}

#[test]
fn junk_oversized_lines_and_floods_change_nothing() {
    if !is_root() {
        eprintln!("skipped: needs root to create a user");
        return;
    }
    let app_user = TestUser::create();
    let mut f = Fixture::new();
    f.release("1.0", None);
    let fifo = f.path("run/myapp.trigger");
    let config = f.config(
        &format!(
            "users = [{}]\nfifo = \"{}\"\nfifo_group = {}",
            app_user.uid,
            fifo.display(),
            app_user.gid
        ),
        "",
    );
    let installer = Arc::new(RecordingInstaller::new());
    let agent = f.start(config, installer.clone());
    let socket = f.socket();
    wait_for("the first scheduled check", || {
        let s = ask(&socket, "status myapp");
        s["apps"]["myapp"]["checks"] == 1 && s["apps"]["myapp"]["check_queued"] == false
    });
    let calls = installer.calls().len();
    let send = |bytes: &[u8]| {
        let mut s = UnixStream::connect(&socket).unwrap();
        let _ = s.write_all(bytes);
        let _ = s.shutdown(std::net::Shutdown::Write);
        let mut answer = String::new();
        let _ = std::io::Read::read_to_string(&mut s, &mut answer);
        answer
    };

    // Junk bytes, NULs, invalid UTF-8, an unknown command, a path.
    let junk: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    for bytes in [
        &junk[..],
        b"\0\0\0\n",
        b"\xff\xfe\n",
        b"install /tmp/evil\n",
        b"check ../../etc\n",
    ] {
        let answer = send(bytes);
        assert!(
            answer.is_empty() || answer.contains("\"ok\":false"),
            "{answer}"
        );
    }
    // A 1 MiB line, on the socket and on the FIFO.
    let huge = vec![b'c'; 1 << 20];
    // Refused after its first 130 bytes; the rest is never read (the peer may see a reset).
    let answer = send(&huge);
    assert!(
        answer.is_empty() || answer.contains("longer than"),
        "{answer}"
    );
    {
        let mut pipe = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
        pipe.write_all(&huge).unwrap();
        pipe.write_all(b"\n").unwrap();
        // A flood of 10,000 commands through the FIFO.
        for _ in 0..10_000 {
            pipe.write_all(b"check\n").unwrap();
        }
    }
    // A flood of 10,000 commands over the socket, as the app's user, one connection each.
    let out = app_user.run(
        "php",
        &[
            "-r",
            &format!(
                "$n = 0; for ($i = 0; $i < 10000; $i++) {{ $s = @stream_socket_client('unix://{}'); \
                 if ($s === false) continue; fwrite($s, \"check\\n\"); $a = fgets($s); fclose($s); \
                 if (strpos((string)$a, 'rate limited') !== false) $n++; }} echo $n;",
                socket.display()
            ),
        ],
        &[],
    );
    let limited: u32 = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0);
    assert!(
        limited > 9_000,
        "only {limited} of 10000 rate limited: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The agent is alive, ran no check for any of it (the last one was a moment ago), and
    // installed nothing more.
    std::thread::sleep(Duration::from_millis(500));
    let status = ask(&socket, "status myapp");
    assert_eq!(status["ok"], true);
    assert_eq!(status["apps"]["myapp"]["checks"], 1, "{status}");
    assert_eq!(installer.calls().len(), calls);
    assert!(
        agent.refused() > 10_000,
        "{} refusals counted",
        agent.refused()
    );
    agent.stop();
}
