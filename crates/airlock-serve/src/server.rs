//! HTTP(S) servers for tests, the demo and small deployments: an axum [`Router`] served over
//! rustls (or plain HTTP for loopback tests), with a handle that reports the bound address and
//! stops the server when dropped.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum_server::Handle;
use axum_server::tls_rustls::RustlsConfig;
use tower_http::services::ServeDir;

use crate::tls::{IdentityError, ServerIdentity};

/// How long a graceful shutdown waits for open connections before closing them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

/// Why a server could not be started.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("binding {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("starting the server on {addr}: {source}")]
    Start {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Tls(#[from] IdentityError),
}

/// A running HTTP or HTTPS server. Dropping it (or calling [`ServerHandle::shutdown`]) stops it:
/// no new connections are accepted and open ones get [`SHUTDOWN_GRACE`] (1 s) to finish.
#[derive(Debug)]
pub struct ServerHandle {
    addr: SocketAddr,
    tls: bool,
    handle: Handle<SocketAddr>,
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
    /// HTTP otherwise, from a background thread with its own tokio runtime. The socket is bound
    /// before this returns, so connecting to [`ServerHandle::addr`] right away works.
    pub fn start(
        addr: SocketAddr,
        app: Router,
        identity: Option<&ServerIdentity>,
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
        let handle = Handle::new();
        let serve = {
            // Registering the listener with tokio needs the runtime's reactor.
            let _guard = runtime.enter();
            serve_future(listener, local, app, tls.clone(), handle.clone())?
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
            handle,
            runner: Runner::Thread(Some(thread)),
        })
    }

    /// Like [`ServerHandle::start`], but runs the server as a task on the current tokio runtime
    /// (for services that already run one, e.g. `airlock repo serve`). Must be called inside a
    /// tokio runtime. Shutdown signals the task and returns without waiting for it.
    pub async fn spawn(
        addr: SocketAddr,
        app: Router,
        identity: Option<&ServerIdentity>,
    ) -> Result<Self, ServeError> {
        let tls = identity.map(|i| i.rustls_server_config()).transpose()?;
        let (listener, local) = bind(addr)?;
        let handle = Handle::new();
        let serve = serve_future(listener, local, app, tls.clone(), handle.clone())?;
        tokio::spawn(serve);
        Ok(Self {
            addr: local,
            tls: tls.is_some(),
            handle,
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
        self.handle.graceful_shutdown(Some(SHUTDOWN_GRACE));
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

/// Builds the future that serves until `handle` signals shutdown. Must run inside a runtime.
fn serve_future(
    listener: TcpListener,
    local: SocketAddr,
    app: Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    handle: Handle<SocketAddr>,
) -> Result<impl Future<Output = ()> + Send + 'static, ServeError> {
    let start_err = |source| ServeError::Start {
        addr: local,
        source,
    };
    let make_service = app.into_make_service_with_connect_info::<SocketAddr>();
    let server = axum_server::from_tcp(listener).map_err(start_err)?;
    Ok(async move {
        let result = match tls {
            Some(config) => {
                server
                    // TCP_NODELAY: without it a response's head and body segments wait for
                    // the client's delayed ACK (about 40 ms on the first request of a
                    // connection).
                    .acceptor(
                        axum_server::tls_rustls::RustlsAcceptor::new(RustlsConfig::from_config(
                            config,
                        ))
                        .acceptor(axum_server::accept::NoDelayAcceptor::new()),
                    )
                    .handle(handle)
                    .serve(make_service)
                    .await
            }
            None => {
                server
                    .acceptor(axum_server::accept::NoDelayAcceptor::new())
                    .handle(handle)
                    .serve(make_service)
                    .await
            }
        };
        if let Err(e) = result {
            tracing::error!("server on {local} stopped with an error: {e}");
        }
    })
}
