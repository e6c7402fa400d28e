//! One connection: the TLS handshake, HTTP/1.1 or HTTP/2 through hyper-util, and the watchdog
//! that holds it to [`ServerLimits`]; the registry that sheds the oldest idle connection at the
//! cap.
//!
//! One watchdog per connection times the idle phases (waiting for a request head, keep-alive)
//! instead of hyper's HTTP/1-only header timer, so HTTP/2 gets the same limits: it sees when a
//! request starts and ends through the service and the response body, and when request bytes
//! start to arrive through the socket wrapper [`Watched`].

use std::collections::HashMap;
use std::convert::Infallible;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{Request, Response, StatusCode};
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{Notify, watch};
use tokio::time::{Instant, Sleep};
use tokio_rustls::TlsAcceptor;

use crate::server::{SHUTDOWN_GRACE, ServerLimits};

/// After a connection was told to close while idle (limit reached, shed), how long hyper gets to
/// close it cleanly (HTTP/2 GOAWAY) before the socket is dropped.
const CLOSE_GRACE: Duration = Duration::from_millis(500);

/// How often the accept loop, waiting at the cap with every connection busy, looks again for
/// one that has become idle.
const RECHECK: Duration = Duration::from_millis(50);

/// What every connection of one server shares.
pub(crate) struct Shared {
    app: Router,
    tls: Option<TlsAcceptor>,
    pub(crate) limits: ServerLimits,
    builder: auto::Builder<TokioExecutor>,
    stop: watch::Receiver<bool>,
}

impl Shared {
    pub(crate) fn new(
        app: Router,
        tls: Option<TlsAcceptor>,
        limits: ServerLimits,
        stop: watch::Receiver<bool>,
    ) -> Self {
        let mut builder = auto::Builder::new(TokioExecutor::new());
        // The watchdog below times request heads for both protocols; hyper's own header timer
        // would also end kept-alive connections at the head limit instead of the idle one.
        builder.http1().keep_alive(true).header_read_timeout(None);
        Self {
            app,
            tls,
            limits,
            builder,
            stop,
        }
    }
}

/// Returns once the server is told to stop (or its handle is gone).
pub(crate) async fn stopped(stop: &mut watch::Receiver<bool>) {
    // An error means the sender was dropped: stop as well.
    let _ = stop.wait_for(|stop| *stop).await;
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The data behind these locks is a few counters and instants, valid after any panic.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The open connections, for the cap.
#[derive(Default)]
pub(crate) struct Registry {
    conns: Mutex<HashMap<u64, Arc<Conn>>>,
    next_id: AtomicU64,
    left: Notify,
}

impl Registry {
    pub(crate) fn register(&self) -> Arc<Conn> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let conn = Arc::new(Conn::new(id));
        lock(&self.conns).insert(id, conn.clone());
        conn
    }

    fn remove(&self, id: u64) {
        lock(&self.conns).remove(&id);
        self.left.notify_one();
    }

    /// Returns once fewer than `max` connections are open, shedding the longest-idle ones.
    pub(crate) async fn make_room(&self, max: usize) {
        loop {
            if lock(&self.conns).len() < max.max(1) || self.shed_oldest_idle() {
                return;
            }
            // Every connection is busy; each is bounded by the request limits.
            let _ = tokio::time::timeout(RECHECK, self.left.notified()).await;
        }
    }

    /// Closes the connection that has been idle longest; false when none is idle.
    fn shed_oldest_idle(&self) -> bool {
        let mut conns = lock(&self.conns);
        let oldest = conns
            .values()
            .filter_map(|c| c.idle_since().map(|since| (since, c.id)))
            .min();
        let Some((_, id)) = oldest else {
            return false;
        };
        if let Some(conn) = conns.remove(&id) {
            tracing::debug!("connection cap reached: closing the longest-idle connection");
            conn.shed.notify_one();
        }
        true
    }
}

/// Removes a connection from the registry when its task ends, however it ends.
struct Leave<'a> {
    registry: &'a Registry,
    id: u64,
}

impl Drop for Leave<'_> {
    fn drop(&mut self) {
        self.registry.remove(self.id);
    }
}

/// One connection's activity, as the watchdog and the cap see it.
pub(crate) struct Conn {
    id: u64,
    activity: Mutex<Activity>,
    /// A request started or ended, or the bytes of a new request head started to arrive.
    changed: Notify,
    /// The cap chose this connection to make room.
    shed: Notify,
}

struct Activity {
    /// Requests whose head has arrived and whose response is not yet sent or abandoned.
    in_flight: usize,
    /// When the connection last became idle (accepted, handshake done, last response sent).
    idle_since: Instant,
    /// When the first byte arrived while idle: a request head has started.
    head_started: Option<Instant>,
    /// Whether a request has been answered (the wait for the next one is then `idle`).
    served: bool,
}

impl Conn {
    fn new(id: u64) -> Self {
        Self {
            id,
            activity: Mutex::new(Activity {
                in_flight: 0,
                idle_since: Instant::now(),
                head_started: None,
                served: false,
            }),
            changed: Notify::new(),
            shed: Notify::new(),
        }
    }

    fn idle_since(&self) -> Option<Instant> {
        let a = lock(&self.activity);
        (a.in_flight == 0).then_some(a.idle_since)
    }

    fn is_idle(&self) -> bool {
        lock(&self.activity).in_flight == 0
    }

    fn bytes_read(&self) {
        let mut a = lock(&self.activity);
        if a.in_flight == 0 && a.head_started.is_none() {
            a.head_started = Some(Instant::now());
            drop(a);
            self.changed.notify_one();
        }
    }

    /// The request-head limit starts after the TLS handshake, whose bytes do not count.
    fn handshake_done(&self) {
        let mut a = lock(&self.activity);
        a.idle_since = Instant::now();
        a.head_started = None;
    }

    /// When an idle connection must be closed; `None` while a request is in flight.
    fn idle_deadline(&self, limits: &ServerLimits) -> Option<Instant> {
        let a = lock(&self.activity);
        if a.in_flight > 0 {
            return None;
        }
        let wait = if a.served {
            limits.idle
        } else {
            limits.request_head
        };
        let mut deadline = a.idle_since + wait;
        if let Some(started) = a.head_started {
            deadline = deadline.min(started + limits.request_head);
        }
        Some(deadline)
    }

    fn begin_request(self: &Arc<Self>) -> InFlight {
        let mut a = lock(&self.activity);
        a.in_flight += 1;
        a.head_started = None;
        InFlight(self.clone())
    }
}

/// A request in flight; dropped when its response body is sent or abandoned.
struct InFlight(Arc<Conn>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut a = lock(&self.0.activity);
        a.in_flight = a.in_flight.saturating_sub(1);
        if a.in_flight == 0 {
            a.idle_since = Instant::now();
            a.served = true;
        }
        drop(a);
        self.0.changed.notify_one();
    }
}

/// Serves one accepted connection until it ends, a limit ends it, the cap sheds it or the
/// server stops.
pub(crate) async fn serve(
    stream: TcpStream,
    conn: Arc<Conn>,
    registry: Arc<Registry>,
    shared: Arc<Shared>,
) {
    let _leave = Leave {
        registry: &registry,
        id: conn.id,
    };
    let mut stop = shared.stop.clone();
    let io = Watched {
        stream,
        conn: conn.clone(),
        send_stall: shared.limits.send_stall,
        stalled: None,
    };
    let Some(acceptor) = &shared.tls else {
        return http(TokioIo::new(io), &conn, &shared, &mut stop).await;
    };
    let handshake = tokio::time::timeout(shared.limits.tls_handshake, acceptor.accept(io));
    let tls = tokio::select! {
        tls = handshake => tls,
        () = conn.shed.notified() => return,
        () = stopped(&mut stop) => return,
    };
    match tls {
        Ok(Ok(tls)) => {
            conn.handshake_done();
            http(TokioIo::new(tls), &conn, &shared, &mut stop).await;
        }
        Ok(Err(e)) => tracing::debug!("TLS handshake failed: {e}"),
        Err(_) => tracing::debug!(
            "TLS handshake not finished within {:?}: closing",
            shared.limits.tls_handshake
        ),
    }
}

/// Runs HTTP on an established connection under the watchdog.
async fn http<I>(io: I, conn: &Arc<Conn>, shared: &Arc<Shared>, stop: &mut watch::Receiver<bool>)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let limits = &shared.limits;
    let service = ConnService {
        shared: shared.clone(),
        conn: conn.clone(),
    };
    let connection = shared.builder.serve_connection(io, service);
    tokio::pin!(connection);
    // Set once the connection was told to close (idle limit, shed, server stop).
    let mut closing: Option<Instant> = None;
    // Set when the server stops: the connection ends then, busy or not.
    let mut hard_stop: Option<Instant> = None;
    loop {
        let idle_deadline = match closing {
            Some(since) => conn.is_idle().then_some(since + CLOSE_GRACE),
            None => conn.idle_deadline(limits),
        };
        let wake = [idle_deadline, hard_stop].into_iter().flatten().min();
        let timer = async move {
            match wake {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            ended = connection.as_mut() => {
                if let Err(e) = ended {
                    tracing::debug!("connection ended: {e}");
                }
                return;
            }
            () = timer => {
                let now = Instant::now();
                if hard_stop.is_some_and(|at| now >= at) {
                    return;
                }
                match closing {
                    Some(since) => {
                        if conn.is_idle() && now >= since + CLOSE_GRACE {
                            return;
                        }
                    }
                    None => {
                        if conn.idle_deadline(limits).is_some_and(|at| now >= at) {
                            tracing::debug!("closing a connection idle past its limit");
                            connection.as_mut().graceful_shutdown();
                            closing = Some(now);
                        }
                    }
                }
            }
            () = conn.changed.notified() => {}
            () = conn.shed.notified() => {
                if conn.is_idle() {
                    return;
                }
                // A request slipped in since it was chosen: let it finish, then close.
                if closing.is_none() {
                    connection.as_mut().graceful_shutdown();
                    closing = Some(Instant::now());
                }
            }
            () = stopped(stop), if hard_stop.is_none() => {
                let now = Instant::now();
                if closing.is_none() {
                    connection.as_mut().graceful_shutdown();
                    closing = Some(now);
                }
                hard_stop = Some(now + SHUTDOWN_GRACE);
            }
        }
    }
}

/// The router, with a deadline for the response head and one for the request body, and the
/// request counted in flight until its response body is done.
#[derive(Clone)]
struct ConnService {
    shared: Arc<Shared>,
    conn: Arc<Conn>,
}

impl hyper::service::Service<Request<Incoming>> for ConnService {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        let in_flight = self.conn.begin_request();
        let limits = &self.shared.limits;
        let request_limit = limits.request;
        let body_limit = limits.request_body;
        let request = request.map(|incoming| {
            Body::new(DeadlineBody {
                body: Some(incoming),
                deadline: Instant::now() + body_limit,
                limit: body_limit,
                timer: None,
            })
        });
        let app = TowerToHyperService::new(self.shared.app.clone());
        Box::pin(async move {
            let answer = hyper::service::Service::call(&app, request);
            let response = match tokio::time::timeout(request_limit, answer).await {
                Ok(Ok(response)) => response,
                Ok(Err(never)) => match never {},
                Err(_) => {
                    tracing::warn!("request not answered within {request_limit:?}: 503");
                    let mut response = Response::new(Body::from(format!(
                        "the request was not answered within {} s\n",
                        request_limit.as_secs_f32()
                    )));
                    *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
                    response
                }
            };
            Ok(response.map(|body| {
                Body::new(Tracked {
                    body,
                    _in_flight: in_flight,
                })
            }))
        })
    }
}

/// Why a request body could not be read.
#[derive(Debug, thiserror::Error)]
enum BodyError {
    #[error("the request body did not arrive within {} s", .0.as_secs_f32())]
    Deadline(Duration),
    #[error(transparent)]
    Read(hyper::Error),
}

/// The request body, failing once `deadline` has passed.
struct DeadlineBody {
    body: Option<Incoming>,
    deadline: Instant,
    limit: Duration,
    /// Armed the first time the body is not ready, so requests without one cost no timer.
    timer: Option<Pin<Box<Sleep>>>,
}

impl http_body::Body for DeadlineBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        let Some(body) = this.body.as_mut() else {
            return Poll::Ready(None);
        };
        if let Poll::Ready(frame) = Pin::new(body).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(BodyError::Read)));
        }
        let deadline = this.deadline;
        let timer = this
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if timer.as_mut().poll(cx).is_ready() {
            // Stop reading: the rest of the body is never waited for.
            this.body = None;
            return Poll::Ready(Some(Err(BodyError::Deadline(this.limit))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.body.as_ref().is_none_or(|b| b.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        self.body
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), |b| b.size_hint())
    }
}

/// A response body that keeps its request counted in flight until it is sent or dropped.
struct Tracked {
    body: Body,
    _in_flight: InFlight,
}

impl http_body::Body for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// The TCP stream, telling the watchdog when request bytes arrive on an idle connection and
/// failing a write that the client leaves unread for `send_stall`.
struct Watched {
    stream: TcpStream,
    conn: Arc<Conn>,
    send_stall: Duration,
    /// Armed while a write is blocked on the client.
    stalled: Option<Pin<Box<Sleep>>>,
}

impl Watched {
    fn progress<T>(
        &mut self,
        cx: &mut Context<'_>,
        poll: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if let Poll::Ready(result) = poll {
            self.stalled = None;
            return Poll::Ready(result);
        }
        let limit = self.send_stall;
        let timer = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        if timer.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("the client read nothing for {} s", limit.as_secs_f32()),
            )));
        }
        Poll::Pending
    }
}

impl AsyncRead for Watched {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let poll = Pin::new(&mut this.stream).poll_read(cx, buf);
        if matches!(poll, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.conn.bytes_read();
        }
        poll
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.stream).poll_write(cx, buf);
        this.progress(cx, poll)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.stream).poll_write_vectored(cx, bufs);
        this.progress(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.stream).poll_flush(cx);
        this.progress(cx, poll)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.stream).poll_shutdown(cx);
        this.progress(cx, poll)
    }
}
