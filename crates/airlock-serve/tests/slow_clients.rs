//! Idle and slow clients must not hold a server open: slowloris on the request head and body
//! (plain and TLS), silent TCP connections, TLS handshakes that never finish, idle keep-alive
//! connections, stalled readers, stalled handlers, and more idle connections than the server
//! accepts, while a legitimate client is still served. The last test runs the server in a child
//! process whose open-file limit is 1024 (systemd's default soft limit for a service).
//!
//! The tests use short limits so they stay fast; they assert outcomes ("the server closed the
//! socket", "the legitimate request got 200"), never how long something took. Each waits at most
//! a generous `GIVE_UP` for the server to act, far beyond the limits it sets.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use airlock_fetch::{Fetcher, FetcherConfig, Trust};
use airlock_serve::{ServerHandle, ServerIdentity, ServerLimits, TestCa, static_dir_router};
use axum::Router;
use axum::body::Body;
use axum::routing::{get, post};
use bytes::Bytes;

/// How long a test waits for the server to close a connection before calling it held open.
const GIVE_UP: Duration = Duration::from_secs(8);

fn limits() -> ServerLimits {
    ServerLimits {
        tls_handshake: Duration::from_millis(800),
        request_head: Duration::from_millis(800),
        idle: Duration::from_millis(1200),
        request_body: Duration::from_millis(800),
        request: Duration::from_millis(1500),
        send_stall: Duration::from_millis(800),
        max_connections: 16,
    }
}

fn router() -> Router {
    Router::new()
        .route("/hello", get(|| async { "hello world" }))
        .route(
            "/upload",
            post(|body: Bytes| async move { format!("{} bytes", body.len()) }),
        )
        .route(
            "/stall",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                "never"
            }),
        )
        .route(
            "/big",
            get(|| async { Body::from(vec![7u8; 64 * 1024 * 1024]) }),
        )
}

fn identity(ca: &TestCa) -> ServerIdentity {
    ca.issue_server_cert(&["127.0.0.1", "localhost"])
        .expect("issue server cert")
}

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

fn plain_server(limits: ServerLimits) -> ServerHandle {
    ServerHandle::start_with_limits(loopback(), router(), None, limits).expect("start server")
}

fn tls_server(ca: &TestCa, limits: ServerLimits) -> ServerHandle {
    ServerHandle::start_with_limits(loopback(), router(), Some(&identity(ca)), limits)
        .expect("start server")
}

fn fetcher(ca: &TestCa) -> Fetcher {
    Fetcher::new(FetcherConfig {
        trust: Trust::CaBundlePem(ca.cert_pem().as_bytes().to_vec()),
        allow_http_loopback: true,
        connect_timeout: Duration::from_secs(5),
        read_timeout: Duration::from_secs(5),
        retries: 0,
        ..FetcherConfig::default()
    })
    .expect("fetcher")
}

/// A client stream, plain or TLS, that the tests write to byte by byte.
enum Client {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Client {
    fn plain(addr: SocketAddr) -> Self {
        Client::Plain(TcpStream::connect(addr).expect("connect"))
    }

    /// Connects and completes the TLS handshake.
    fn tls(addr: SocketAddr, ca: &TestCa) -> Self {
        Self::tls_alpn(addr, ca, &[])
    }

    /// Connects and completes the TLS handshake offering the ALPN protocols `alpn`.
    fn tls_alpn(addr: SocketAddr, ca: &TestCa, alpn: &[&[u8]]) -> Self {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_root_certificates(ca.root_store())
            .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        let name = rustls_pki_types::ServerName::try_from("127.0.0.1").expect("server name");
        let mut conn = rustls::ClientConnection::new(Arc::new(config), name).expect("client");
        let mut tcp = TcpStream::connect(addr).expect("connect");
        while conn.is_handshaking() {
            conn.complete_io(&mut tcp).expect("TLS handshake");
        }
        Client::Tls(Box::new(rustls::StreamOwned::new(conn, tcp)))
    }

    fn tcp(&self) -> &TcpStream {
        match self {
            Client::Plain(s) => s,
            Client::Tls(s) => &s.sock,
        }
    }

    fn stream(&mut self) -> &mut dyn ReadWrite {
        match self {
            Client::Plain(s) => s,
            Client::Tls(s) => s.as_mut(),
        }
    }

    /// Sends `bytes` one at a time, `every` apart, watching for the server to close the
    /// connection. Returns what the server sent before closing, or `None` if the connection was
    /// still open after all bytes were sent and `GIVE_UP` has passed.
    fn drip(&mut self, bytes: &[u8], every: Duration) -> Option<Vec<u8>> {
        let started = Instant::now();
        let mut received = Vec::new();
        let mut rest = bytes.iter();
        loop {
            if let Some(b) = rest.next()
                && self
                    .stream()
                    .write_all(&[*b])
                    .and_then(|()| self.stream().flush())
                    .is_err()
            {
                return Some(received);
            }
            if self.wait_closed(every, &mut received) {
                return Some(received);
            }
            if started.elapsed() > GIVE_UP {
                return None;
            }
        }
    }

    /// Reads for up to `wait`; true when the server closed the connection.
    fn wait_closed(&mut self, wait: Duration, received: &mut Vec<u8>) -> bool {
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            self.tcp()
                .set_read_timeout(Some(left))
                .expect("set timeout");
            let mut buf = [0u8; 4096];
            match self.stream().read(&mut buf) {
                Ok(0) => return true,
                Ok(n) => received.extend_from_slice(&buf[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return false;
                }
                Err(_) => return true,
            }
        }
    }

    /// Sends nothing more; true when the server closes the connection within `GIVE_UP`.
    fn closed_by_server(&mut self) -> bool {
        self.wait_closed(GIVE_UP, &mut Vec::new())
    }
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

const SLOW_HEAD: &[u8] = b"GET /hello HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";

fn slow_body_request() -> Vec<u8> {
    let mut request =
        b"POST /upload HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000000\r\n\r\n".to_vec();
    request.extend(std::iter::repeat_n(b'x', 200));
    request
}

fn status_of(response: &[u8]) -> Option<u16> {
    std::str::from_utf8(response.get(9..12)?).ok()?.parse().ok()
}

/// The head arrives one byte every 200 ms: the server closes the connection without ever
/// dispatching the request.
#[test]
fn slowloris_on_the_request_head_is_cut_plain() {
    let server = plain_server(limits());
    let mut client = Client::plain(server.addr());
    let got = client.drip(SLOW_HEAD, Duration::from_millis(200));
    let got = got.expect("the server kept a dripping request head open");
    assert_ne!(status_of(&got), Some(200), "a dripped head was served");
}

#[test]
fn slowloris_on_the_request_head_is_cut_tls() {
    let ca = TestCa::new().unwrap();
    let server = tls_server(&ca, limits());
    let mut client = Client::tls(server.addr(), &ca);
    let got = client.drip(SLOW_HEAD, Duration::from_millis(200));
    let got = got.expect("the server kept a dripping request head open");
    assert_ne!(status_of(&got), Some(200), "a dripped head was served");
}

/// A POST announces a megabyte and drips it: the body deadline ends it with an error status
/// and the connection is closed.
#[test]
fn slowloris_on_the_request_body_is_cut_plain() {
    let server = plain_server(limits());
    let mut client = Client::plain(server.addr());
    let got = client.drip(&slow_body_request(), Duration::from_millis(100));
    let got = got.expect("the server kept a dripping request body open");
    assert_ne!(status_of(&got), Some(200), "a dripped body was accepted");
}

#[test]
fn slowloris_on_the_request_body_is_cut_tls() {
    let ca = TestCa::new().unwrap();
    let server = tls_server(&ca, limits());
    let mut client = Client::tls(server.addr(), &ca);
    let got = client.drip(&slow_body_request(), Duration::from_millis(100));
    let got = got.expect("the server kept a dripping request body open");
    assert_ne!(status_of(&got), Some(200), "a dripped body was accepted");
}

/// A client that opens TCP and says nothing (no request, no ClientHello).
#[test]
fn silent_connections_are_closed() {
    let ca = TestCa::new().unwrap();
    let plain = plain_server(limits());
    let tls = tls_server(&ca, limits());
    assert!(Client::plain(plain.addr()).closed_by_server(), "plain");
    assert!(Client::plain(tls.addr()).closed_by_server(), "TLS");
}

/// The HTTP/2 preface and an empty SETTINGS frame, then no request: HTTP/2 gets the same
/// request-head limit as HTTP/1.1.
#[test]
fn http2_connection_without_a_request_is_closed() {
    let mut preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    preface.extend_from_slice(&[0, 0, 0, 0x04, 0, 0, 0, 0, 0]);
    let ca = TestCa::new().unwrap();
    let plain = plain_server(limits());
    let tls = tls_server(&ca, limits());
    let mut client = Client::plain(plain.addr());
    client.stream().write_all(&preface).unwrap();
    assert!(
        client.closed_by_server(),
        "plain HTTP/2 connection held open"
    );
    let mut client = Client::tls_alpn(tls.addr(), &ca, &[b"h2"]);
    client.stream().write_all(&preface).unwrap();
    assert!(
        client.closed_by_server(),
        "HTTP/2 over TLS connection held open"
    );
}

/// A TLS client that starts a ClientHello and never finishes it.
#[test]
fn unfinished_tls_handshake_is_closed() {
    let ca = TestCa::new().unwrap();
    let server = tls_server(&ca, limits());
    let mut client = Client::plain(server.addr());
    // A handshake record header announcing 512 bytes, then the start of a ClientHello.
    let partial = [
        0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
    ];
    let got = client.drip(&partial, Duration::from_millis(100));
    assert!(
        got.is_some(),
        "the server waited forever for the ClientHello"
    );
}

/// After a response, a keep-alive connection that sends nothing more is closed.
#[test]
fn idle_keep_alive_connections_are_closed() {
    let ca = TestCa::new().unwrap();
    let plain = plain_server(limits());
    let tls_server = tls_server(&ca, limits());
    for tls in [false, true] {
        let mut client = if tls {
            Client::tls(tls_server.addr(), &ca)
        } else {
            Client::plain(plain.addr())
        };
        client
            .stream()
            .write_all(b"GET /hello HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            .unwrap();
        client.stream().flush().unwrap();
        let mut received = Vec::new();
        // The response arrives, then the connection stays open until the idle limit.
        let closed_early = client.wait_closed(Duration::from_millis(300), &mut received);
        assert!(
            !closed_early,
            "keep-alive connection closed right after the response"
        );
        assert_eq!(status_of(&received), Some(200));
        assert!(
            client.closed_by_server(),
            "idle keep-alive connection held open"
        );
    }
}

/// A handler that never answers is cut by the whole-request deadline with 503.
#[test]
fn stalled_request_gets_503_at_the_deadline() {
    let server = plain_server(limits());
    let mut client = Client::plain(server.addr());
    client
        .stream()
        .write_all(b"GET /stall HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .unwrap();
    let mut received = Vec::new();
    client.wait_closed(GIVE_UP, &mut received);
    assert_eq!(status_of(&received), Some(503));
}

/// A client that asks for a large response and stops reading: the server gives up writing.
#[test]
fn stalled_reader_is_dropped() {
    let server = plain_server(limits());
    let mut client = Client::plain(server.addr());
    client
        .tcp()
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    client
        .stream()
        .write_all(b"GET /big HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .unwrap();
    // Let the socket buffers fill, then read everything that is left: a server that gave up
    // closed the connection, so the read ends well short of 64 MiB.
    std::thread::sleep(Duration::from_secs(3));
    let mut total = 0usize;
    let started = Instant::now();
    let mut buf = vec![0u8; 1 << 16];
    client.tcp().set_read_timeout(Some(GIVE_UP)).unwrap();
    loop {
        match client.stream().read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => total += n,
        }
        assert!(started.elapsed() < GIVE_UP * 2, "still reading");
    }
    assert!(
        total < 64 * 1024 * 1024,
        "the whole body arrived: nothing gave up"
    );
}

/// More idle connections than the server takes: the oldest idle ones are shed, and a
/// legitimate client that connects afterwards is served at once (the timeouts here are long,
/// so only shedding can make room).
#[test]
fn many_idle_connections_do_not_lock_out_a_client() {
    let ca = TestCa::new().unwrap();
    let patient = ServerLimits {
        tls_handshake: Duration::from_secs(60),
        request_head: Duration::from_secs(60),
        idle: Duration::from_secs(60),
        max_connections: 16,
        ..ServerLimits::default()
    };
    for server in [
        plain_server(patient.clone()),
        tls_server(&ca, patient.clone()),
    ] {
        let mut idle: Vec<Client> = (0..60).map(|_| Client::plain(server.addr())).collect();
        let f = fetcher(&ca);
        let body = f
            .fetch_capped(&server.url("/hello"), 1024)
            .expect("legitimate request");
        assert_eq!(body, b"hello world");
        let closed = idle
            .iter_mut()
            .filter_map(|c| {
                c.wait_closed(Duration::from_millis(50), &mut Vec::new())
                    .then_some(())
            })
            .count();
        assert!(
            closed >= 60 - 16,
            "{closed} of 60 idle connections were shed, expected at least 44"
        );
    }
}

/// The child side of `idle_flood_under_1024_open_files`: serves a directory with the default
/// limits and prints its port and open-file limit. Does nothing when run on its own.
#[test]
#[ignore = "run as a child process by idle_flood_under_1024_open_files"]
fn fd_limited_child_server() {
    let Some(dir) = std::env::var_os("AIRLOCK_SERVE_CHILD_DIR") else {
        return;
    };
    let dir = std::path::PathBuf::from(dir);
    let identity =
        ServerIdentity::from_pem_files(&dir.join("cert.pem"), &dir.join("key.pem")).unwrap();
    let server = ServerHandle::start(
        loopback(),
        static_dir_router(dir.join("www")),
        Some(&identity),
    )
    .expect("start server");
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    let nofile = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap_or("")
        .split_whitespace()
        .nth(3)
        .unwrap_or("?")
        .to_string();
    println!(
        "AIRLOCK_CHILD nofile={nofile} port={}",
        server.addr().port()
    );
    // Serve until the parent closes stdin.
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
}

/// 1,100 idle HTTPS connections (each finished its TLS handshake and sends nothing) against a
/// server whose soft and hard open-file limit is 1024 (the server runs in a child process under
/// `prlimit`, with the default limits): a legitimate HTTPS GET still gets its file, and soon
/// (a client that waits `GIVE_UP` has given up).
#[test]
fn idle_flood_under_1024_open_files() {
    use std::io::BufRead;
    use std::process::{Command, Stdio};

    if Command::new("prlimit").arg("--version").output().is_err() {
        panic!("prlimit (util-linux) is needed to run the server under an open-file limit");
    }
    // This process holds the 1,100 client sockets.
    let (_, hard) = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .expect("getrlimit");
    nix::sys::resource::setrlimit(
        nix::sys::resource::Resource::RLIMIT_NOFILE,
        hard.min(8192),
        hard,
    )
    .expect("raise this test's open-file limit");

    let ca = TestCa::new().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    ca.write_files(tmp.path(), &["127.0.0.1"]).unwrap();
    std::fs::create_dir(tmp.path().join("www")).unwrap();
    std::fs::write(tmp.path().join("www/1.root.json"), b"{\"signed\":{}}").unwrap();

    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new("prlimit")
        .arg("--nofile=1024:1024")
        .arg("--")
        .arg(exe)
        .args([
            "fd_limited_child_server",
            "--exact",
            "--ignored",
            "--nocapture",
        ])
        .env("AIRLOCK_SERVE_CHILD_DIR", tmp.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the child server");
    let stdout = child.stdout.take().unwrap();
    let mut lines = std::io::BufReader::new(stdout).lines();
    let line = lines
        .by_ref()
        .map_while(Result::ok)
        .find(|l| l.starts_with("AIRLOCK_CHILD "))
        .expect("the child server did not start");
    assert!(line.contains("nofile=1024 "), "child limit: {line}");
    let port: u16 = line.rsplit("port=").next().unwrap().parse().unwrap();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));

    // The flood: 1,100 connections at once, each completing its TLS handshake if the server
    // lets it, then idle until the end of the test.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (hold, held) = tokio::sync::watch::channel(());
    let connector = tls_connector(&ca);
    let flood: Vec<_> = (0..1100)
        .map(|_| {
            let connector = connector.clone();
            let mut held = held.clone();
            runtime.spawn(async move {
                let Ok(tcp) = tokio::net::TcpStream::connect(addr).await else {
                    return false;
                };
                let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
                let handshake = connector.connect(name, tcp);
                let tls = tokio::time::timeout(Duration::from_secs(3), handshake).await;
                let _ = held.changed().await;
                matches!(tls, Ok(Ok(_)))
            })
        })
        .collect();
    // Let the flood reach the server before the legitimate client comes.
    std::thread::sleep(Duration::from_secs(3));

    let (sent, result) = std::sync::mpsc::channel();
    let f = fetcher(&ca);
    let url = format!("https://127.0.0.1:{port}/1.root.json");
    std::thread::spawn(move || sent.send(f.fetch_capped(&url, 1024)));
    let result = result.recv_timeout(GIVE_UP);

    drop(hold);
    let handshakes = runtime.block_on(async {
        let mut n = 0;
        for task in flood {
            n += usize::from(task.await.unwrap_or(false));
        }
        n
    });
    drop(child.stdin.take());
    let _ = child.wait();
    let body = result
        .unwrap_or_else(|_| panic!("no answer to a legitimate GET during the idle flood"))
        .expect("legitimate GET during the idle flood");
    assert_eq!(body, b"{\"signed\":{}}");
    // The flood was real: the server finished hundreds of handshakes for it.
    assert!(
        handshakes >= 500,
        "only {handshakes} flood handshakes finished"
    );
}

fn tls_connector(ca: &TestCa) -> tokio_rustls::TlsConnector {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(ca.root_store())
        .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}
