//! Running hooks and health checks: a command with a deadline, in its own process group
//! (killed with it at the deadline), its output kept for the history.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// Output kept per stream.
pub const OUTPUT_CAP: usize = 16 * 1024;

/// What a hook or a health check did, as kept in the history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandRecord {
    /// `pre_install`, `post_install`, `health`.
    pub what: String,
    /// The command, or the check (`GET <url>`, `systemctl is-active <unit>`).
    pub argv: Vec<String>,
    pub success: bool,
    /// `exit status 0`, `timed out after 5 s`, `could not start: ...`, an HTTP error.
    pub result: String,
    pub timed_out: bool,
    pub stdout: String,
    pub stderr: String,
    pub millis: u64,
}

impl CommandRecord {
    pub(crate) fn new(what: &str, argv: Vec<String>) -> Self {
        CommandRecord {
            what: what.to_string(),
            argv,
            success: false,
            result: String::new(),
            timed_out: false,
            stdout: String::new(),
            stderr: String::new(),
            millis: 0,
        }
    }
}

fn reader(
    stream: Option<impl Read + Send + 'static>,
) -> (Arc<Mutex<Vec<u8>>>, Option<JoinHandle<()>>) {
    let buf = Arc::new(Mutex::new(Vec::new()));
    let Some(mut stream) = stream else {
        return (buf, None);
    };
    let out = buf.clone();
    let handle = std::thread::spawn(move || {
        let mut chunk = [0u8; 4096];
        // Read to the end even past the cap, so the command never blocks on a full pipe.
        while let Ok(n) = stream.read(&mut chunk) {
            if n == 0 {
                break;
            }
            if let Ok(mut b) = out.lock() {
                let room = OUTPUT_CAP.saturating_sub(b.len()).min(n);
                b.extend_from_slice(chunk.get(..room).unwrap_or_default());
            }
        }
    });
    (buf, Some(handle))
}

fn collect(buf: &Arc<Mutex<Vec<u8>>>, handle: Option<JoinHandle<()>>, until: Instant) -> String {
    // A background process the command left may keep the pipe open: wait a little, not forever.
    if let Some(h) = handle {
        while !h.is_finished() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(5));
        }
        if h.is_finished() {
            let _ = h.join();
        }
    }
    let bytes = buf.lock().map(|b| b.clone()).unwrap_or_default();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Run `argv` in `cwd` with `env` added, stdin closed, for at most `timeout`.
pub(crate) fn run_command(
    what: &str,
    argv: &[String],
    cwd: &Path,
    env: &[(&str, String)],
    timeout: Duration,
) -> CommandRecord {
    let started = Instant::now();
    let mut record = CommandRecord::new(what, argv.to_vec());
    let Some((program, args)) = argv.split_first() else {
        record.result = "empty command".into();
        return record;
    };
    let mut command = Command::new(program);
    command
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    for (k, v) in env {
        command.env(k, v);
    }
    let mut child = match command.spawn() {
        Ok(c) => c,
        Err(e) => {
            record.result = format!("could not start: {e}");
            return record;
        }
    };
    let (out, out_handle) = reader(child.stdout.take());
    let (err, err_handle) = reader(child.stderr.take());
    let deadline = started + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() >= deadline => {
                kill_group(child.id());
                let _ = child.kill();
                let _ = child.wait();
                record.timed_out = true;
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => {
                kill_group(child.id());
                let _ = child.kill();
                let _ = child.wait();
                record.result = format!("waiting failed: {e}");
                break None;
            }
        }
    };
    let grace = Instant::now() + Duration::from_millis(500);
    record.stdout = collect(&out, out_handle, grace);
    record.stderr = collect(&err, err_handle, grace);
    record.millis = started.elapsed().as_millis() as u64;
    match status {
        Some(s) => {
            record.success = s.success();
            record.result = match s.code() {
                Some(code) => format!("exit status {code}"),
                None => format!("ended by a signal ({s})"),
            };
        }
        None if record.timed_out => {
            record.result = format!("timed out after {} s", timeout.as_secs_f64());
        }
        None => {}
    }
    record
}

fn kill_group(pid: u32) {
    if let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    {
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    }
}
