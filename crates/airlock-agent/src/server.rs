//! The trigger socket and FIFOs.
//!
//! Socket: a stream socket, one JSON line answered per request line, at most
//! [`MAX_REQUESTS_PER_CONNECTION`] requests per connection, [`MAX_CONNECTIONS`] connections at
//! once, 2 s to send each line. Every connection's peer is identified by `SO_PEERCRED`: an app's
//! configured uid or primary gid may send `check`/`status` for that app; root, the agent's own
//! uid and `admin_users` may send anything for any app. Each uid has a token bucket
//! ([`PEER_BURST`] requests, then [`PEER_RATE`] per second).
//!
//! FIFO: created by the agent (mode 0620, owner the agent's user, group `fifo_group`); only
//! `check` (or `check APP` naming the FIFO's own app) is accepted, with its own token bucket.
//!
//! Refusals (junk, oversized lines, requests the peer may not send, rate limits) are answered
//! when there is someone to answer, counted, and logged at most [`LOG_BURST`] times then once a
//! second with a count of the ones not logged. Nothing refused changes state.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use airlock_core::rollout::trigger::{
    MAX_REQUEST_LEN, Request, RequestError, TokenBucket, parse_request,
};
use serde_json::{Value, json};

use crate::daemon::{Job, Shared, StartError};

pub const MAX_CONNECTIONS: usize = 32;
pub const MAX_REQUESTS_PER_CONNECTION: usize = 16;
pub const PEER_BURST: u32 = 20;
pub const PEER_RATE: f64 = 2.0;
pub const FIFO_BURST: u32 = 5;
pub const FIFO_RATE: f64 = 0.5;
pub const LOG_BURST: u32 = 10;
const IO_TIMEOUT: Duration = Duration::from_secs(2);

/// Bind the socket at `path`: a stale socket is replaced, anything else (or a live agent) refused.
pub fn bind(path: &Path) -> Result<UnixListener, StartError> {
    let io = |source| StartError::Io {
        path: path.to_path_buf(),
        source,
    };
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            if UnixStream::connect(path).is_ok() {
                return Err(StartError::SocketInUse {
                    path: path.to_path_buf(),
                });
            }
            std::fs::remove_file(path).map_err(io)?;
        }
        Ok(_) => {
            return Err(StartError::SocketPathTaken {
                path: path.to_path_buf(),
            });
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(e)),
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    let listener = UnixListener::bind(path).map_err(io)?;
    // Anyone may connect; the peer's credentials decide what it may ask.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666)).map_err(io)?;
    Ok(listener)
}

/// Create (or check and reuse) the FIFO at `path`: owner the agent's user, group `gid`, 0620.
/// An existing FIFO made by systemd (`ListenFIFO=`) is reused when it is no more open than that.
pub fn open_fifo(path: &Path, gid: u32) -> Result<std::fs::File, StartError> {
    let fail = |reason: String| StartError::Fifo {
        path: path.to_path_buf(),
        reason,
    };
    let me = rustix::process::geteuid();
    match std::fs::symlink_metadata(path) {
        Ok(meta) => {
            if !meta.file_type().is_fifo() {
                return Err(fail("exists and is not a FIFO".into()));
            }
            if meta.uid() != me.as_raw() && meta.uid() != 0 {
                return Err(fail(format!(
                    "is owned by uid {}, not the agent's user",
                    meta.uid()
                )));
            }
            if meta.mode() & 0o057 != 0 && meta.gid() != gid || meta.mode() & 0o007 != 0 {
                return Err(fail(format!(
                    "mode {:o} group {} lets others than group {gid} write or read it",
                    meta.mode() & 0o777,
                    meta.gid()
                )));
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(|e| fail(e.to_string()))?;
            }
            rustix::fs::mkfifoat(
                rustix::fs::CWD,
                path,
                rustix::fs::Mode::from_raw_mode(0o600),
            )
            .map_err(|e| fail(format!("mkfifo: {e}")))?;
            rustix::fs::chown(path, None, Some(rustix::fs::Gid::from_raw(gid)))
                .map_err(|e| fail(format!("chown to group {gid}: {e}")))?;
            // Set after chown: the group may write, nobody else may do anything.
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o620))
                .map_err(|e| fail(e.to_string()))?;
        }
        Err(e) => return Err(fail(e.to_string())),
    }
    // Read and write: open does not wait for a writer, and reads never see end-of-file.
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| fail(e.to_string()))
}

/// Refusal logging: a burst, then at most one line a second with a count of the rest.
struct RefusalLog {
    bucket: TokenBucket,
    suppressed: u64,
}

impl RefusalLog {
    fn new(shared: &Shared) -> Self {
        Self {
            bucket: TokenBucket::new(LOG_BURST, 1.0, shared.started.elapsed()),
            suppressed: 0,
        }
    }
}

fn refuse(shared: &Shared, log: &Mutex<RefusalLog>, source: &str, why: &str) {
    shared.refused.fetch_add(1, Ordering::Relaxed);
    let mut log = log.lock().unwrap_or_else(PoisonError::into_inner);
    if log.bucket.take(shared.started.elapsed()) {
        let suppressed = std::mem::take(&mut log.suppressed);
        if suppressed > 0 {
            tracing::warn!(
                "trigger refused from {source}: {why} ({suppressed} earlier refusal(s) not logged)"
            );
        } else {
            tracing::warn!("trigger refused from {source}: {why}");
        }
    } else {
        log.suppressed += 1;
    }
}

struct SocketState {
    buckets: Mutex<std::collections::HashMap<u32, TokenBucket>>,
    log: Mutex<RefusalLog>,
}

/// Accept connections until the agent stops.
pub(crate) fn serve_socket(shared: &Arc<Shared>, listener: UnixListener) {
    let state = Arc::new(SocketState {
        buckets: Mutex::new(std::collections::HashMap::new()),
        log: Mutex::new(RefusalLog::new(shared)),
    });
    for stream in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = stream else { continue };
        if shared.connections.fetch_add(1, Ordering::SeqCst) >= MAX_CONNECTIONS {
            shared.connections.fetch_sub(1, Ordering::SeqCst);
            refuse(shared, &state.log, "socket", "too many connections at once");
            continue;
        }
        let (shared, state) = (shared.clone(), state.clone());
        std::thread::spawn(move || {
            connection(&shared, &state, stream);
            shared.connections.fetch_sub(1, Ordering::SeqCst);
        });
    }
}

/// The apps a peer may see and trigger, and whether it is an admin.
fn authorize(shared: &Shared, uid: u32, gid: u32) -> (Vec<String>, bool) {
    let admin = uid == 0
        || uid == rustix::process::geteuid().as_raw()
        || shared.config.admin_uids.contains(&uid);
    let apps = shared
        .config
        .apps
        .values()
        .filter(|a| admin || a.trigger_uids.contains(&uid) || a.trigger_gids.contains(&gid))
        .map(|a| a.name.clone())
        .collect();
    (apps, admin)
}

/// Read one line of at most `MAX_REQUEST_LEN` (+ `\r\n`). `Ok(None)`: end of input.
/// `Err(())`: too long; the rest of the line is left unread.
fn read_line(reader: &mut impl BufRead) -> std::io::Result<Option<Result<Vec<u8>, ()>>> {
    let limit = MAX_REQUEST_LEN as u64 + 2;
    let mut line = Vec::new();
    reader.by_ref().take(limit).read_until(b'\n', &mut line)?;
    if line.is_empty() {
        return Ok(None);
    }
    if line.last() == Some(&b'\n') {
        line.pop();
        return Ok(Some(Ok(line)));
    }
    if line.len() as u64 >= limit {
        return Ok(Some(Err(())));
    }
    // The last line, without a newline.
    Ok(Some(Ok(line)))
}

fn answer(stream: &mut UnixStream, value: &Value) -> bool {
    let mut line = value.to_string();
    line.push('\n');
    stream.write_all(line.as_bytes()).is_ok()
}

fn connection(shared: &Arc<Shared>, state: &SocketState, mut stream: UnixStream) {
    let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
    let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
    let Ok(cred) = rustix::net::sockopt::socket_peercred(&stream) else {
        refuse(shared, &state.log, "socket", "no peer credentials");
        return;
    };
    let (uid, gid) = (cred.uid.as_raw(), cred.gid.as_raw());
    let source = format!("uid {uid} gid {gid} pid {}", cred.pid.as_raw_nonzero());
    let (apps, admin) = authorize(shared, uid, gid);
    if apps.is_empty() && !admin {
        refuse(
            shared,
            &state.log,
            &source,
            "not allowed to trigger any app",
        );
        answer(&mut stream, &json!({"ok": false, "error": "not allowed"}));
        return;
    }
    let Ok(read_half) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::with_capacity(MAX_REQUEST_LEN + 2, read_half);
    for _ in 0..MAX_REQUESTS_PER_CONNECTION {
        let line = match read_line(&mut reader) {
            Ok(Some(line)) => line,
            Ok(None) | Err(_) => return,
        };
        let allowed = {
            let mut buckets = state.buckets.lock().unwrap_or_else(PoisonError::into_inner);
            let now = shared.started.elapsed();
            buckets
                .entry(uid)
                .or_insert_with(|| TokenBucket::new(PEER_BURST, PEER_RATE, now))
                .take(now)
        };
        if !allowed {
            refuse(shared, &state.log, &source, "rate limited");
            answer(&mut stream, &json!({"ok": false, "error": "rate limited"}));
            return;
        }
        let Ok(line) = line else {
            refuse(
                shared,
                &state.log,
                &source,
                &RequestError::TooLong.to_string(),
            );
            answer(
                &mut stream,
                &json!({"ok": false, "error": RequestError::TooLong.to_string()}),
            );
            return;
        };
        let reply = match parse_request(&line) {
            Ok(request) => handle(shared, state, &source, &apps, admin, request),
            Err(e) => {
                refuse(shared, &state.log, &source, &e.to_string());
                json!({"ok": false, "error": e.to_string()})
            }
        };
        if !answer(&mut stream, &reply) {
            return;
        }
    }
}

fn handle(
    shared: &Arc<Shared>,
    state: &SocketState,
    source: &str,
    apps: &[String],
    admin: bool,
    request: Request,
) -> Value {
    let not_allowed = |what: &str| {
        refuse(shared, &state.log, source, what);
        json!({"ok": false, "error": "not allowed"})
    };
    if request.is_admin() && !admin {
        return not_allowed("admin request from a non-admin peer");
    }
    let pick = |app: Option<String>| -> Result<Vec<String>, ()> {
        match app {
            None => Ok(apps.to_vec()),
            Some(a) if apps.contains(&a) => Ok(vec![a]),
            Some(_) => Err(()),
        }
    };
    match request {
        Request::Status { app } => match pick(app) {
            Ok(names) => json!({"ok": true, "apps": shared.status(&names)}),
            Err(()) => not_allowed("status of an app not allowed to this peer"),
        },
        Request::Check { app } => match pick(app) {
            Ok(names) => {
                let mut out = serde_json::Map::new();
                for name in names {
                    let result = shared.trigger_check(&name);
                    out.insert(name, json!(result));
                }
                json!({"ok": true, "apps": out})
            }
            Err(()) => not_allowed("check of an app not allowed to this peer"),
        },
        Request::CheckNow {
            app,
            ignore_staging,
        } => {
            let names = match pick(app) {
                Ok(n) => n,
                Err(()) => return json!({"ok": false, "error": "no such app"}),
            };
            let mut results = Vec::new();
            for name in names {
                let (tx, rx) = std::sync::mpsc::channel();
                shared.push(Job::Check {
                    app: name,
                    ignore_staging,
                    by: "person",
                    reply: Some(tx),
                });
                results.push(rx);
            }
            let results: Vec<Value> = results
                .into_iter()
                .filter_map(|rx| rx.recv().ok())
                .collect();
            let ok = results.iter().all(|r| r["ok"] == true);
            json!({"ok": ok, "results": results})
        }
        Request::Rollback { app, to } => {
            if !apps.contains(&app) {
                return json!({"ok": false, "error": "no such app"});
            }
            let (tx, rx) = std::sync::mpsc::channel();
            shared.push(Job::Rollback {
                app,
                to: to.map(|v| v.to_string()),
                reply: tx,
            });
            rx.recv()
                .unwrap_or_else(|_| json!({"ok": false, "error": "agent stopping"}))
        }
    }
}

/// Read `check` lines from an app's FIFO until the agent stops.
pub(crate) fn serve_fifo(shared: &Arc<Shared>, app: &str, fifo: std::fs::File) {
    let log = Mutex::new(RefusalLog::new(shared));
    let mut bucket = TokenBucket::new(FIFO_BURST, FIFO_RATE, shared.started.elapsed());
    let source = format!("FIFO of {app}");
    let mut reader = BufReader::with_capacity(MAX_REQUEST_LEN + 2, fifo);
    let mut skipping = false;
    loop {
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let line = match read_line(&mut reader) {
            Ok(Some(line)) => line,
            Ok(None) => continue,
            Err(e) => {
                tracing::error!(app, "reading the FIFO: {e}");
                std::thread::sleep(Duration::from_secs(1));
                continue;
            }
        };
        // The tail of an oversized line, up to its newline, belongs to that line.
        if skipping {
            skipping = line.is_err();
            continue;
        }
        let Ok(line) = line else {
            skipping = true;
            refuse(shared, &log, &source, &RequestError::TooLong.to_string());
            continue;
        };
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        if line.is_empty() {
            continue;
        }
        if !bucket.take(shared.started.elapsed()) {
            refuse(shared, &log, &source, "rate limited");
            continue;
        }
        match parse_request(&line) {
            Ok(Request::Check { app: None }) => {
                let r = shared.trigger_check(app);
                tracing::info!(app, "check asked through the FIFO: {r}");
            }
            Ok(Request::Check { app: Some(a) }) if a == app => {
                let r = shared.trigger_check(app);
                tracing::info!(app, "check asked through the FIFO: {r}");
            }
            Ok(_) => refuse(shared, &log, &source, "only check is accepted on a FIFO"),
            Err(e) => refuse(shared, &log, &source, &e.to_string()),
        }
    }
}

/// Why a request to a running agent failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("no agent answers on {}", path.display())]
    Connect {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("talking to the agent on {}", path.display())]
    Io {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the agent on {} answered something that is not a JSON line", path.display())]
    Answer { path: std::path::PathBuf },
}

/// Send one request line and read the one-line JSON answer. `timeout` bounds the answer
/// (`check-now` waits for the whole check).
pub fn request(socket: &Path, line: &str, timeout: Duration) -> Result<Value, ClientError> {
    let io = |source| ClientError::Io {
        path: socket.to_path_buf(),
        source,
    };
    let mut stream = UnixStream::connect(socket).map_err(|source| ClientError::Connect {
        path: socket.to_path_buf(),
        source,
    })?;
    stream.set_read_timeout(Some(timeout)).map_err(io)?;
    stream
        .write_all(format!("{line}\n").as_bytes())
        .map_err(io)?;
    let mut answer = String::new();
    BufReader::new(stream.take(16 << 20))
        .read_line(&mut answer)
        .map_err(io)?;
    serde_json::from_str(&answer).map_err(|_| ClientError::Answer {
        path: socket.to_path_buf(),
    })
}
