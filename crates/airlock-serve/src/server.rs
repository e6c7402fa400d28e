//! HTTP(S) servers for `repo serve`, `log serve`, `witness serve`, the demo and tests: an axum
//! [`Router`] served over rustls (or plain HTTP for loopback tests), with a handle that reports
//! the bound address and stops the server when dropped.
//!
//! The server is a small accept loop over tokio, tokio-rustls and hyper-util (HTTP/1.1 and
//! HTTP/2, chosen by ALPN or the connection preface). Every connection is bounded by
//! [`ServerLimits`], so idle and slow clients cannot hold the server open; see there for what
//! each limit covers and why the connection cap sheds the oldest idle connection instead of
//! refusing new ones.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tower_http::services::ServeDir;

use crate::conn::{self, Registry};
use crate::tls::{IdentityError, ServerIdentity};

/// How long a graceful shutdown waits for open connections before closing them.
pub(crate) const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

/// How long the accept loop pauses after a failed `accept` (e.g. out of file descriptors), so a
/// shortage does not turn into a busy loop.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Why a server could not be started.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("binding {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("starting the server on {addr}")]
    Start {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Tls(#[from] IdentityError),
}

/// What a client may cost the server: time limits for each phase of a connection and a cap on
/// open connections. [`ServerLimits::default`] is what every [`ServerHandle`] constructor uses
/// unless given other limits (`start_with_limits`, `spawn_with_limits`).
///
/// A connection is *busy* from the moment a complete request head has arrived until its
/// response has been sent (or abandoned), and *idle* otherwise. Only idle connections are timed
/// out by `request_head`/`idle` and shed at the cap; busy ones are bounded by `request_body`,
/// `request` and `send_stall`. The limits hold the same way for HTTP/1.1 and HTTP/2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerLimits {
    /// From accepting the TCP connection to a finished TLS handshake (a client that never sends
    /// its ClientHello, or sends half of it). Default 10 s.
    pub tls_handshake: Duration,
    /// For a complete request head: on a new connection counted from the end of the TLS
    /// handshake (or the accept, for plain HTTP), on a kept-alive one from the first byte of the
    /// next request. Ends slowloris on headers. Default 10 s.
    pub request_head: Duration,
    /// How long a kept-alive connection may wait for its next request. Default 30 s.
    pub idle: Duration,
    /// For the whole request body, counted from the end of the head; reading it past this
    /// fails, and the handler answers with an error (axum's extractors say 400). Ends slowloris
    /// on bodies. Default 30 s.
    pub request_body: Duration,
    /// For the handler to produce the response head, counted from the end of the request head
    /// (it includes reading a body the handler buffers). Past it the client gets 503. A
    /// response body that is streamed afterwards is bounded by `send_stall` instead, so large
    /// downloads on slow links still work. Default 60 s.
    pub request: Duration,
    /// How long one write to the client may wait for the client to read (a client that asks
    /// for a large file and stops reading). Default 30 s.
    pub send_stall: Duration,
    /// Open connections at most. When a new connection arrives at the cap, the connection that
    /// has been idle longest is closed to make room; only when every connection is busy does
    /// the new one wait (in the kernel's accept queue) until one finishes. Refusing new
    /// connections instead would let a few hundred idle sockets lock every legitimate client
    /// out until they time out; shedding the oldest idle one serves a client that arrives
    /// after an idle flood at once. Keep it under half the process's open-file limit (each busy
    /// connection may hold a file open too): the default 512 fits systemd's default soft limit
    /// of 1024.
    pub max_connections: usize,
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            tls_handshake: Duration::from_secs(10),
            request_head: Duration::from_secs(10),
            idle: Duration::from_secs(30),
            request_body: Duration::from_secs(30),
            request: Duration::from_secs(60),
            send_stall: Duration::from_secs(30),
            max_connections: 512,
        }
    }
}

/// A running HTTP or HTTPS server. Dropping it (or calling [`ServerHandle::shutdown`]) stops it:
/// no new connections are accepted and open ones get [`SHUTDOWN_GRACE`] (1 s) to finish.
#[derive(Debug)]
pub struct ServerHandle {
    addr: SocketAddr,
    tls: bool,
    shutdown: watch::Sender<bool>,
    runner: Runner,
}

#[derive(Debug)]
enum Runner {
    /// Own runtime on a background thread; joined on shutdown.
    Thread(Option<std::thread::JoinHandle<()>>),
    /// A task on the caller's runtime; not awaited on shutdown.
    Task,
}

impl ServerHandle {
    /// Serves `app` over HTTPS on 127.0.0.1 with an OS-assigned port, from a background thread
    /// with its own tokio runtime. Callable from synchronous code and from async code alike.
    pub fn https(app: Router, identity: &ServerIdentity) -> Result<Self, ServeError> {
        Self::start(loopback_any_port(), app, Some(identity))
    }

    /// Serves `app` over plain HTTP on 127.0.0.1 with an OS-assigned port (loopback tests only),
    /// from a background thread with its own tokio runtime.
    pub fn http(app: Router) -> Result<Self, ServeError> {
        Self::start(loopback_any_port(), app, None)
    }

    /// Serves `app` on `addr` (port 0 picks a free port) over HTTPS when `identity` is given, plain
    /// HTTP otherwise, from a background thread with its own tokio runtime, with the default
    /// [`ServerLimits`]. The socket is bound before this returns, so connecting to
    /// [`ServerHandle::addr`] right away works.
    pub fn start(
        addr: SocketAddr,
        app: Router,
        identity: Option<&ServerIdentity>,
    ) -> Result<Self, ServeError> {
        Self::start_with_limits(addr, app, identity, ServerLimits::default())
    }

    /// [`ServerHandle::start`] with other limits than the defaults.
    pub fn start_with_limits(
        addr: SocketAddr,
        app: Router,
        identity: Option<&ServerIdentity>,
        limits: ServerLimits,
    ) -> Result<Self, ServeError> {
        let tls = identity.map(|i| i.rustls_server_config()).transpose()?;
        let (listener, local) = bind(addr)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("airlock-serve")
            .enable_all()
            .build()
            .map_err(|source| ServeError::Start {
                addr: local,
                source,
            })?;
        let (shutdown, stop) = watch::channel(false);
        let serve = {
            // Registering the listener with tokio needs the runtime's reactor.
            let _guard = runtime.enter();
            serve_future(listener, local, app, tls.clone(), limits, stop)?
        };
        let thread = std::thread::Builder::new()
            .name(format!("airlock-serve {local}"))
            .spawn(move || {
                runtime.block_on(serve);
                // Do not wait forever for blocking file reads of abandoned requests.
                runtime.shutdown_timeout(SHUTDOWN_GRACE);
            })
            .map_err(|source| ServeError::Start {
                addr: local,
                source,
            })?;
        Ok(Self {
            addr: local,
            tls: tls.is_some(),
            shutdown,
            runner: Runner::Thread(Some(thread)),
        })
    }

    /// Like [`ServerHandle::start`], but runs the server as a task on the current tokio runtime
    /// (for services that already run one). Must be called inside a tokio runtime. Shutdown
    /// signals the task and returns without waiting for it.
    pub async fn spawn(
        addr: SocketAddr,
        app: Router,
        identity: Option<&ServerIdentity>,
    ) -> Result<Self, ServeError> {
        Self::spawn_with_limits(addr, app, identity, ServerLimits::default()).await
    }

    /// [`ServerHandle::spawn`] with other limits than the defaults.
    pub async fn spawn_with_limits(
        addr: SocketAddr,
        app: Router,
        identity: Option<&ServerIdentity>,
        limits: ServerLimits,
    ) -> Result<Self, ServeError> {
        let tls = identity.map(|i| i.rustls_server_config()).transpose()?;
        let (listener, local) = bind(addr)?;
        let (shutdown, stop) = watch::channel(false);
        let serve = serve_future(listener, local, app, tls.clone(), limits, stop)?;
        tokio::spawn(serve);
        Ok(Self {
            addr: local,
            tls: tls.is_some(),
            shutdown,
            runner: Runner::Task,
        })
    }

    /// The bound address (with the real port when port 0 was asked for).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `https://127.0.0.1:PORT` (or `http://…` for a plain server), without a trailing slash.
    pub fn base_url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// `base_url()` joined with `path` (a leading `/` is added when missing).
    pub fn url(&self, path: &str) -> String {
        if path.starts_with('/') {
            format!("{}{path}", self.base_url())
        } else {
            format!("{}/{path}", self.base_url())
        }
    }

    /// Stops accepting connections and waits (for a threaded server) until it has stopped.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.shutdown.send_replace(true);
        if let Runner::Thread(thread) = &mut self.runner
            && let Some(thread) = thread.take()
            && thread.join().is_err()
        {
            tracing::error!("server thread for {} panicked", self.addr);
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A router that serves the files under `dir` read-only: GET and HEAD (other methods get 405),
/// `Content-Length` from the file size, byte ranges, 404 for anything missing. Paths with `..`
/// or other non-normal components are refused, directories are never listed (a directory path
/// is 404, `index.html` is not substituted). Symbolic links inside `dir` are followed, so `dir`
/// must hold only what is meant to be published.
pub fn static_dir_router(dir: impl Into<PathBuf>) -> Router {
    let serve = ServeDir::new(dir.into()).append_index_html_on_directories(false);
    Router::new().fallback_service(serve)
}

fn loopback_any_port() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, 0))
}

fn bind(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), ServeError> {
    let listener = TcpListener::bind(addr).map_err(|source| ServeError::Bind { addr, source })?;
    let local = listener
        .local_addr()
        .map_err(|source| ServeError::Bind { addr, source })?;
    Ok((listener, local))
}

/// Builds the future that serves until `stop` says so (or its sender is gone). Must be called
/// inside a runtime.
fn serve_future(
    listener: TcpListener,
    local: SocketAddr,
    app: Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    limits: ServerLimits,
    stop: watch::Receiver<bool>,
) -> Result<impl Future<Output = ()> + Send + 'static, ServeError> {
    let start_err = |source| ServeError::Start {
        addr: local,
        source,
    };
    listener.set_nonblocking(true).map_err(start_err)?;
    let listener = tokio::net::TcpListener::from_std(listener).map_err(start_err)?;
    let shared = Arc::new(conn::Shared::new(
        app,
        tls.map(TlsAcceptor::from),
        limits,
        stop.clone(),
    ));
    Ok(accept_loop(listener, local, shared, stop))
}

async fn accept_loop(
    listener: tokio::net::TcpListener,
    local: SocketAddr,
    shared: Arc<conn::Shared>,
    mut stop: watch::Receiver<bool>,
) {
    let registry = Arc::new(Registry::default());
    let mut connections = JoinSet::new();
    loop {
        // Reap finished connection tasks so the set does not grow with the server's age.
        while connections.try_join_next().is_some() {}
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = conn::stopped(&mut stop) => break,
        };
        let stream = match accepted {
            Ok((stream, _peer)) => stream,
            Err(e) => {
                tracing::warn!("accepting a connection on {local}: {e}");
                tokio::select! {
                    () = tokio::time::sleep(ACCEPT_BACKOFF) => continue,
                    () = conn::stopped(&mut stop) => break,
                }
            }
        };
        tokio::select! {
            () = registry.make_room(shared.limits.max_connections) => {}
            () = conn::stopped(&mut stop) => break,
        }
        // Without TCP_NODELAY a response's head and body segments wait for the client's
        // delayed ACK (about 40 ms on the first request of a connection).
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!("TCP_NODELAY on a connection to {local}: {e}");
        }
        let entry = registry.register();
        connections.spawn(conn::serve(stream, entry, registry.clone(), shared.clone()));
    }
    drop(listener);
    // Connections saw the stop signal too and close within the grace period; anything left
    // after it is aborted when the set is dropped.
    let drain = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(SHUTDOWN_GRACE * 2, drain)
        .await
        .is_err()
    {
        tracing::debug!("server on {local}: closing connections still open after the grace");
    }
}
