//! The running agent: one worker thread runs checks and rollbacks one at a time (so two never
//! touch an install directory together), on schedule or when asked; the trigger socket and the
//! FIFOs (see [`crate::server`]) only queue work and read the shared status.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use airlock_core::rollout::{LastCheck, in_window, next_check};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::check::check_app;
use crate::config::{AgentConfig, AppConfig};
use crate::installer::{InstallOutcome, Installer, InstallerStatus};
use crate::state::{AppRecord, AppStatus, LastResult};

/// Why the agent could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("another agent holds {}", path.display())]
    Locked { path: PathBuf },
    #[error("cannot prepare {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the socket path {} is taken by something that is not a stale socket", path.display())]
    SocketPathTaken { path: PathBuf },
    #[error("another agent answers on {}", path.display())]
    SocketInUse { path: PathBuf },
    #[error("FIFO {}: {reason}", path.display())]
    Fifo { path: PathBuf, reason: String },
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
}

/// Work for the worker thread.
pub(crate) enum Job {
    Check {
        app: String,
        ignore_staging: bool,
        by: &'static str,
        reply: Option<mpsc::Sender<Value>>,
    },
    Rollback {
        app: String,
        to: Option<String>,
        reply: mpsc::Sender<Value>,
    },
}

impl Job {
    fn app(&self) -> &str {
        match self {
            Job::Check { app, .. } | Job::Rollback { app, .. } => app,
        }
    }
}

pub(crate) struct AppRuntime {
    pub record: AppRecord,
    pub installer: InstallerStatus,
    pub running: bool,
    pub last_started: Option<Instant>,
}

pub(crate) struct Inner {
    pub apps: BTreeMap<String, AppRuntime>,
    pub queue: VecDeque<Job>,
}

/// What the worker and the trigger threads share.
pub(crate) struct Shared {
    pub config: AgentConfig,
    pub machine_id: String,
    pub installer: Arc<dyn Installer>,
    pub inner: Mutex<Inner>,
    pub wake: Condvar,
    pub stop: AtomicBool,
    pub started: Instant,
    /// Requests refused (bad input, not allowed, rate-limited, flooding), for status and tests.
    pub refused: AtomicU64,
    /// Socket connections being served (their answers are written before a restart).
    pub connections: AtomicUsize,
    /// Set when the agent installed its own new binary: the path to restart into.
    pub restart: Mutex<Option<PathBuf>>,
}

impl Shared {
    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The status of `apps`.
    pub fn status(&self, apps: &[String]) -> Value {
        let inner = self.lock();
        let mut out = serde_json::Map::new();
        for name in apps {
            let (Some(app), Some(rt)) = (self.config.apps.get(name), inner.apps.get(name)) else {
                continue;
            };
            let queued = rt.running || inner.queue.iter().any(|j| j.app() == name);
            let status = AppStatus::new(name, &app.channel, &rt.record, &rt.installer, queued);
            out.insert(
                name.clone(),
                serde_json::to_value(status).unwrap_or(Value::Null),
            );
        }
        Value::Object(out)
    }

    /// Queue an application's check unless one is queued, running or was started less than
    /// `trigger_min_interval` ago, or the app is outside its maintenance windows.
    pub fn trigger_check(&self, app: &str) -> &'static str {
        let Some(cfg) = self.config.apps.get(app) else {
            return "unknown-app";
        };
        let mut inner = self.lock();
        if inner
            .queue
            .iter()
            .any(|j| matches!(j, Job::Check { app: a, .. } if a == app))
            || inner.apps.get(app).is_some_and(|rt| rt.running)
        {
            return "already-queued";
        }
        if inner
            .apps
            .get(app)
            .and_then(|rt| rt.last_started)
            .is_some_and(|t| t.elapsed() < cfg.trigger_min_interval)
        {
            return "recently-checked";
        }
        if !in_window(Utc::now(), &cfg.schedule.windows) {
            return "deferred-to-window";
        }
        inner.queue.push_back(Job::Check {
            app: app.to_string(),
            ignore_staging: false,
            by: "trigger",
            reply: None,
        });
        self.wake.notify_all();
        "queued"
    }

    pub fn push(&self, job: Job) {
        self.lock().queue.push_back(job);
        self.wake.notify_all();
    }
}

/// A running agent.
pub struct AgentHandle {
    pub(crate) shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
    _lock: std::fs::File,
}

fn random_unit() -> f64 {
    rand::random::<f64>()
}

fn app_dir(config: &AgentConfig, app: &str) -> PathBuf {
    config.app_state_dir(app)
}

/// Take the agent's lock in `state_dir` (held while the file is open).
pub fn take_lock(config: &AgentConfig) -> Result<std::fs::File, StartError> {
    let io = |path: &PathBuf| {
        let path = path.clone();
        move |source| StartError::Io { path, source }
    };
    std::fs::create_dir_all(&config.state_dir).map_err(io(&config.state_dir))?;
    let path = config.state_dir.join("agent.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io(&path))?;
    rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive)
        .map_err(|_| StartError::Locked { path })?;
    Ok(file)
}

impl AgentHandle {
    /// Start the agent: recover each app, bind the trigger socket, create the FIFOs, start the
    /// worker.
    pub fn start(config: AgentConfig, installer: Arc<dyn Installer>) -> Result<Self, StartError> {
        let lock = take_lock(&config)?;
        let machine_id = config.machine_id()?;
        let mut apps = BTreeMap::new();
        for app in config.apps.values() {
            // A download cut by a stop or a crash stays (`downloads/`): the next check goes on
            // from its bytes, which are checked with the rest as a whole before any use. A
            // record or a metadata file whose write a crash cut short is removed.
            if let Err(e) = airlock_fs::remove_temporaries(&app_dir(&config, &app.name), true) {
                tracing::error!(app = %app.name, "{}", airlock_core::error_chain(&e));
            }
            if let Err(e) = installer.recover(app) {
                tracing::error!(app = %app.name, "recovery failed: {}", airlock_core::error_chain(&*e));
            }
            let installer_status = installer.status(app).unwrap_or_default();
            apps.insert(
                app.name.clone(),
                AppRuntime {
                    record: AppRecord::load(&app_dir(&config, &app.name)),
                    installer: installer_status,
                    running: false,
                    last_started: None,
                },
            );
        }
        let listener = crate::server::bind(&config.socket)?;
        let mut fifos = Vec::new();
        for app in config.apps.values() {
            if let (Some(path), Some(gid)) = (&app.fifo, app.fifo_gid) {
                fifos.push((app.name.clone(), crate::server::open_fifo(path, gid)?));
            }
        }
        let shared = Arc::new(Shared {
            config,
            machine_id,
            installer,
            inner: Mutex::new(Inner {
                apps,
                queue: VecDeque::new(),
            }),
            wake: Condvar::new(),
            stop: AtomicBool::new(false),
            started: Instant::now(),
            refused: AtomicU64::new(0),
            connections: AtomicUsize::new(0),
            restart: Mutex::new(None),
        });
        // First schedule from the stored record (or within the jitter of now).
        {
            let mut inner = shared.lock();
            let now = Utc::now();
            for (name, rt) in inner.apps.iter_mut() {
                if let Some(app) = shared.config.apps.get(name) {
                    rt.record.next_check = Some(schedule_next(app, &rt.record, now));
                }
            }
        }
        for name in shared.config.apps.keys() {
            write_status_file(&shared, name);
        }
        let mut threads = Vec::new();
        let s = shared.clone();
        threads.push(std::thread::spawn(move || worker(&s)));
        let s = shared.clone();
        threads.push(std::thread::spawn(move || {
            crate::server::serve_socket(&s, listener)
        }));
        for (app, fifo) in fifos {
            let s = shared.clone();
            threads.push(std::thread::spawn(move || {
                crate::server::serve_fifo(&s, &app, fifo)
            }));
        }
        tracing::info!(socket = %shared.config.socket.display(), "agent started");
        Ok(Self {
            shared,
            threads,
            _lock: lock,
        })
    }

    /// Requests refused so far.
    pub fn refused(&self) -> u64 {
        self.shared.refused.load(Ordering::Relaxed)
    }

    /// The status of every app.
    pub fn status(&self) -> Value {
        let names: Vec<String> = self.shared.config.apps.keys().cloned().collect();
        self.shared.status(&names)
    }

    /// A handle that stops the agent from another thread (e.g. on SIGTERM): the running check
    /// finishes first, then [`AgentHandle::wait`] returns.
    pub fn stopper(&self) -> Stopper {
        Stopper(self.shared.clone())
    }

    /// Stop the threads (the running check finishes first) and wait for them.
    pub fn stop(mut self) {
        request_stop(&self.shared);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.shared.config.socket);
    }

    /// Run until the agent stops. `Some(binary)`: it installed its own new binary (the
    /// `self_app`), which passed its health check; the caller restarts into it (the CLI execs
    /// it with the same arguments). Answers in flight are written first.
    pub fn wait(mut self) -> Option<PathBuf> {
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        let deadline = Instant::now() + std::time::Duration::from_secs(5);
        while self.shared.connections.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let restart = self
            .shared
            .restart
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if restart.is_none() {
            // Stopped for good: no stale socket for clients to knock on.
            let _ = std::fs::remove_file(&self.shared.config.socket);
        }
        restart
    }
}

/// See [`AgentHandle::stopper`].
#[derive(Clone)]
pub struct Stopper(Arc<Shared>);

impl Stopper {
    pub fn stop(&self) {
        request_stop(&self.0);
    }
}

/// Ask every thread to stop: the worker after its current job, the socket and FIFO readers
/// woken from their blocking calls.
fn request_stop(shared: &Shared) {
    shared.stop.store(true, Ordering::SeqCst);
    shared.wake.notify_all();
    let _ = std::os::unix::net::UnixStream::connect(&shared.config.socket);
    for app in shared.config.apps.values() {
        if let Some(fifo) = &app.fifo {
            let _ = std::fs::OpenOptions::new()
                .write(true)
                .open(fifo)
                .and_then(|mut f| std::io::Write::write_all(&mut f, b"\n"));
        }
    }
}

/// The agent's new binary after its `self_app` was installed: the one file in `current/`.
fn self_binary(app: &AppConfig) -> Option<PathBuf> {
    let current = app.install_root.join("current");
    let mut files = std::fs::read_dir(&current)
        .ok()?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.path());
    let first = files.next()?;
    files.next().is_none().then_some(first)
}

fn schedule_next(app: &AppConfig, record: &AppRecord, now: DateTime<Utc>) -> DateTime<Utc> {
    let last = record
        .last_check
        .as_ref()
        .map(|l| LastCheck { at: l.at, ok: l.ok });
    next_check(
        now,
        last.as_ref(),
        record.failures,
        &app.schedule,
        random_unit(),
    )
}

/// Write the app's status file (group-readable by the FIFO's group), if configured.
pub(crate) fn write_status_file(shared: &Shared, app: &str) {
    let Some(cfg) = shared.config.apps.get(app) else {
        return;
    };
    let Some(path) = &cfg.status_file else {
        return;
    };
    let status = shared.status(&[app.to_string()]);
    let bytes = serde_json::to_vec(&status[app]).unwrap_or_default();
    let result = airlock_fs::write_atomic(
        path,
        &bytes,
        &airlock_fs::WriteOptions::public().mode(0o640),
    )
    .map_err(|e| airlock_core::error_chain(&e))
    .and_then(|()| {
        rustix::fs::chown(path, None, cfg.fifo_gid.map(rustix::fs::Gid::from_raw))
            .map_err(|e| format!("chown {}: {e}", path.display()))
    });
    if let Err(e) = result {
        tracing::error!(app, "status file: {e}");
    }
}

/// Take the next job, or a scheduled check that is due; None when stopping.
fn next_job(shared: &Shared) -> Option<Job> {
    let mut inner = shared.lock();
    loop {
        if shared.stop.load(Ordering::SeqCst) {
            return None;
        }
        if let Some(job) = inner.queue.pop_front() {
            return Some(job);
        }
        let now = Utc::now();
        let due = inner
            .apps
            .iter()
            .filter_map(|(name, rt)| rt.record.next_check.map(|t| (t, name.clone())))
            .min();
        let wait = match due {
            Some((t, name)) if t <= now => {
                return Some(Job::Check {
                    app: name,
                    ignore_staging: false,
                    by: "schedule",
                    reply: None,
                });
            }
            Some((t, _)) => (t - now).to_std().unwrap_or(Duration::ZERO),
            None => Duration::from_secs(3600),
        };
        // Re-read the clock at least once a minute (suspend, clock changes).
        let wait = wait.min(Duration::from_secs(60));
        inner = shared
            .wake
            .wait_timeout(inner, wait)
            .unwrap_or_else(PoisonError::into_inner)
            .0;
    }
}

fn worker(shared: &Shared) {
    while let Some(job) = next_job(shared) {
        let name = job.app().to_string();
        let Some(app) = shared.config.apps.get(&name) else {
            continue;
        };
        {
            let mut inner = shared.lock();
            if let Some(rt) = inner.apps.get_mut(&name) {
                rt.running = true;
                rt.last_started = Some(Instant::now());
            }
        }
        let mut restart = None;
        let (answer, reply) = match job {
            Job::Check {
                ignore_staging,
                by,
                reply,
                ..
            } => {
                let answer = run_check(shared, app, ignore_staging, by);
                if shared.config.self_app.as_deref() == Some(name.as_str())
                    && answer["check"]["install"]["result"] == "installed"
                {
                    restart = self_binary(app);
                    if restart.is_none() {
                        tracing::error!(app = %name, "installed, but current/ does not hold exactly one file: not restarting");
                    }
                }
                (answer, reply)
            }
            Job::Rollback { to, reply, .. } => {
                let answer = match shared.installer.rollback(app, to.as_deref()) {
                    Ok(outcome) => json!({"ok": true, "app": name, "rollback": outcome}),
                    Err(e) => {
                        json!({"ok": false, "app": name, "error": airlock_core::error_chain(&*e)})
                    }
                };
                (answer, Some(reply))
            }
        };
        tracing::info!(app = %name, "{answer}");
        let status = shared.installer.status(app).unwrap_or_default();
        {
            let mut inner = shared.lock();
            if let Some(rt) = inner.apps.get_mut(&name) {
                rt.running = false;
                rt.installer = status;
            }
        }
        write_status_file(shared, &name);
        // Answered only now, so a status asked right after the answer already shows the result.
        if let Some(reply) = reply {
            let _ = reply.send(answer);
        }
        if let Some(binary) = restart {
            tracing::info!(binary = %binary.display(), "the agent's own new binary passed its health check: restarting into it");
            *shared
                .restart
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(binary);
            request_stop(shared);
            return;
        }
    }
}

fn run_check(shared: &Shared, app: &AppConfig, ignore_staging: bool, by: &str) -> Value {
    let dir = app_dir(&shared.config, &app.name);
    let result = check_app(
        app,
        &shared.machine_id,
        &dir.join("downloads"),
        shared.installer.as_ref(),
        ignore_staging,
    );
    let now = Utc::now();
    let (answer, last) = match &result {
        Ok(report) => (
            json!({"ok": true, "app": app.name, "check": report}),
            LastResult {
                at: now,
                ok: true,
                result: report.summary.clone(),
                by: by.to_string(),
            },
        ),
        Err(e) => {
            let why = airlock_core::error_chain(e);
            tracing::warn!(app = %app.name, "check failed: {why}");
            (
                json!({"ok": false, "app": app.name, "error": why}),
                LastResult {
                    at: now,
                    ok: false,
                    result: why,
                    by: by.to_string(),
                },
            )
        }
    };
    let mut inner = shared.lock();
    if let Some(rt) = inner.apps.get_mut(&app.name) {
        let r = &mut rt.record;
        r.checks += 1;
        r.failures = if last.ok {
            0
        } else {
            r.failures.saturating_add(1)
        };
        if let Ok(report) = &result {
            r.pending.clone_from(&report.pending);
        }
        r.last_check = Some(last);
        r.next_check = Some(schedule_next(app, r, now));
        if let Err(e) = r.save(&dir) {
            tracing::error!(app = %app.name, "saving the record: {}", airlock_core::error_chain(&e));
        }
    }
    if let Ok(crate::check::CheckReport {
        install: Some(InstallOutcome::RolledBack { version, .. }),
        ..
    }) = &result
    {
        tracing::warn!(app = %app.name, version, "release failed its health check and was rolled back");
    }
    answer
}
