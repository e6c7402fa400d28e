//! The one server every client talks to: airlock-serve's HTTPS static server (test CA, 127.0.0.1,
//! OS-assigned port) with a request counter in front of it, read by the runner around each run.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use airlock_serve::{ServerHandle, TestCa, static_dir_router};
use anyhow::{Context, Result};
use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;

/// A running HTTPS server over a directory, counting requests.
pub struct CountingServer {
    pub server: ServerHandle,
    requests: Arc<AtomicU64>,
}

async fn count(State(counter): State<Arc<AtomicU64>>, req: Request, next: Next) -> Response {
    counter.fetch_add(1, Ordering::Relaxed);
    next.run(req).await
}

impl CountingServer {
    /// Serves `dir` over HTTPS with a certificate for 127.0.0.1 issued by `ca`.
    pub fn start(dir: &Path, ca: &TestCa) -> Result<Self> {
        let identity = ca
            .issue_server_cert(&["127.0.0.1", "localhost"])
            .context("issuing the server certificate")?;
        let requests = Arc::new(AtomicU64::new(0));
        let app = static_dir_router(dir.to_path_buf())
            .layer(middleware::from_fn_with_state(requests.clone(), count));
        let server = ServerHandle::https(app, &identity).context("starting the HTTPS server")?;
        Ok(Self { server, requests })
    }

    /// Requests received so far.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }
}
