//! End-to-end tests of the transport: real rustls servers on 127.0.0.1 with a CA made at test
//! time, and the blocking `Fetcher` against them.

use std::convert::Infallible;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use airlock_fetch::{FetchError, Fetcher, FetcherConfig, MinRate, Trust};
use airlock_serve::{ServerHandle, ServerIdentity, TestCa, static_dir_router};
use axum::Router;
use axum::body::Body;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;

fn identity(ca: &TestCa) -> ServerIdentity {
    ca.issue_server_cert(&["127.0.0.1", "localhost"])
        .expect("issue server cert")
}

fn trusting(ca: &TestCa) -> FetcherConfig {
    FetcherConfig {
        trust: Trust::CaBundlePem(ca.cert_pem().as_bytes().to_vec()),
        retry_backoff: Duration::from_millis(10),
        ..FetcherConfig::default()
    }
}

fn fetcher(config: FetcherConfig) -> Fetcher {
    Fetcher::new(config).expect("fetcher")
}

/// A server with the misbehaviours the tests need.
fn test_router(flaky_failures: u32) -> Router {
    let flaky_count = Arc::new(AtomicU32::new(0));
    Router::new()
        .route("/hello", get(|| async { "hello world" }))
        .route(
            "/endless",
            get(|| async {
                let chunk = Bytes::from(vec![0u8; 16 * 1024]);
                let stream =
                    futures_util::stream::repeat_with(move || Ok::<_, Infallible>(chunk.clone()));
                Body::from_stream(stream)
            }),
        )
        .route(
            "/big-announced",
            get(|| async {
                Response::builder()
                    .header(header::CONTENT_LENGTH, "1000000")
                    .body(Body::from(vec![1u8; 1_000_000]))
                    .unwrap_or_default()
            }),
        )
        .route(
            "/drip",
            get(|| async {
                // One byte every 50 ms for up to a minute: a slow-retrieval attack.
                let stream = futures_util::stream::unfold(0u32, |i| async move {
                    if i >= 1200 {
                        return None;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    Some((Ok::<_, Infallible>(Bytes::from_static(b"x")), i + 1))
                });
                Body::from_stream(stream)
            }),
        )
        .route(
            "/stall",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                "never"
            }),
        )
        .route(
            "/flaky",
            get(move || {
                let count = flaky_count.clone();
                async move {
                    if count.fetch_add(1, Ordering::SeqCst) < flaky_failures {
                        (StatusCode::SERVICE_UNAVAILABLE, "try later").into_response()
                    } else {
                        "finally".into_response()
                    }
                }
            }),
        )
        .route(
            "/forbidden",
            get(|| async { (StatusCode::FORBIDDEN, "no").into_response() }),
        )
        .route(
            "/redirect",
            get(|| async { (StatusCode::FOUND, [(header::LOCATION, "/hello")]).into_response() }),
        )
        .route(
            "/redirect-relative",
            get(|| async { (StatusCode::FOUND, [(header::LOCATION, "hello")]).into_response() }),
        )
        .route(
            "/redirect-loop",
            get(|| async {
                (StatusCode::FOUND, [(header::LOCATION, "/redirect-loop")]).into_response()
            }),
        )
}

fn https_server(ca: &TestCa, flaky_failures: u32) -> ServerHandle {
    ServerHandle::https(test_router(flaky_failures), &identity(ca)).expect("start server")
}

#[test]
fn https_happy_path() {
    let ca = TestCa::new().unwrap();
    let server = https_server(&ca, 0);
    assert!(server.base_url().starts_with("https://127.0.0.1:"));
    let f = fetcher(trusting(&ca));
    let body = f.fetch_capped(&server.url("/hello"), 1024).unwrap();
    assert_eq!(body, b"hello world");
    assert_eq!(f.request_count(), 1);
    // The same name works through the DNS SAN.
    let by_name = format!("https://localhost:{}/hello", server.addr().port());
    assert_eq!(f.fetch_capped(&by_name, 1024).unwrap(), b"hello world");
    assert_eq!(f.request_count(), 2);
}

#[test]
fn certificate_from_another_ca_is_refused() {
    let ca = TestCa::new().unwrap();
    let other = TestCa::new().unwrap();
    let server = https_server(&ca, 0);
    let err = fetcher(trusting(&other))
        .fetch_capped(&server.url("/hello"), 1024)
        .unwrap_err();
    assert!(matches!(err, FetchError::Tls { .. }), "{err:?}");
    assert!(err.to_string().contains(&server.url("/hello")), "{err}");
    assert!(err.to_string().contains("UnknownIssuer"), "{err}");
}

#[test]
fn test_ca_is_not_trusted_by_default() {
    let ca = TestCa::new().unwrap();
    let server = https_server(&ca, 0);
    let err = fetcher(FetcherConfig::default())
        .fetch_capped(&server.url("/hello"), 1024)
        .unwrap_err();
    assert!(matches!(err, FetchError::Tls { .. }), "{err:?}");
}

#[test]
fn certificate_for_another_name_is_refused() {
    let ca = TestCa::new().unwrap();
    let wrong = ca.issue_server_cert(&["update.example.com"]).unwrap();
    let server = ServerHandle::https(test_router(0), &wrong).unwrap();
    let err = fetcher(trusting(&ca))
        .fetch_capped(&server.url("/hello"), 1024)
        .unwrap_err();
    assert!(matches!(err, FetchError::Tls { .. }), "{err:?}");
}

#[test]
fn plain_http_is_refused_unless_allowed_and_only_on_loopback() {
    let server = ServerHandle::http(test_router(0)).unwrap();
    assert!(server.base_url().starts_with("http://127.0.0.1:"));

    let strict = fetcher(FetcherConfig::default());
    let err = strict
        .fetch_capped(&server.url("/hello"), 1024)
        .unwrap_err();
    assert!(matches!(err, FetchError::InsecureUrl { .. }), "{err:?}");
    assert_eq!(strict.request_count(), 0, "nothing may be sent over http");

    let loopback = fetcher(FetcherConfig {
        allow_http_loopback: true,
        ..FetcherConfig::default()
    });
    assert_eq!(
        loopback.fetch_capped(&server.url("/hello"), 1024).unwrap(),
        b"hello world"
    );
    let by_name = format!("http://localhost:{}/hello", server.addr().port());
    assert_eq!(
        loopback.fetch_capped(&by_name, 1024).unwrap(),
        b"hello world"
    );

    for url in [
        "http://example.invalid/hello",
        "http://10.0.0.1/hello",
        "http://127.0.0.1.example.com/x",
    ] {
        let err = loopback.fetch_capped(url, 1024).unwrap_err();
        assert!(
            matches!(err, FetchError::InsecureUrl { .. }),
            "{url}: {err:?}"
        );
    }
    for url in ["ftp://127.0.0.1/x", "file:///etc/passwd", "not a url"] {
        let err = loopback.fetch_capped(url, 1024).unwrap_err();
        assert!(
            matches!(err, FetchError::InvalidUrl { .. }),
            "{url}: {err:?}"
        );
    }
    assert_eq!(loopback.request_count(), 2);
}

#[test]
fn endless_body_is_cut_at_the_cap() {
    let ca = TestCa::new().unwrap();
    let server = https_server(&ca, 0);
    let f = fetcher(trusting(&ca));
    let err = f
        .fetch_capped(&server.url("/endless"), 100_000)
        .unwrap_err();
    assert!(
        matches!(
            err,
            FetchError::TooLarge {
                max_len: 100_000,
                ..
            }
        ),
        "{err:?}"
    );

    // Streaming: the writer never sees more than the cap.
    let mut sink = Vec::new();
    let err = f
        .fetch_to_writer(&server.url("/endless"), 50_000, &mut sink, &mut |_, _| {})
        .unwrap_err();
    assert!(matches!(err, FetchError::TooLarge { .. }), "{err:?}");
    assert!(sink.len() <= 50_000, "wrote {} bytes", sink.len());
}

#[test]
fn cap_is_exact_and_announced_length_is_checked() {
    let ca = TestCa::new().unwrap();
    let server = https_server(&ca, 0);
    let f = fetcher(trusting(&ca));
    let url = server.url("/hello");
    assert_eq!(f.fetch_capped(&url, 11).unwrap(), b"hello world");
    let err = f.fetch_capped(&url, 10).unwrap_err();
    assert!(
        matches!(err, FetchError::TooLarge { max_len: 10, .. }),
        "{err:?}"
    );

    let big = server.url("/big-announced");
    assert_eq!(f.fetch_capped(&big, 1_000_000).unwrap().len(), 1_000_000);
    let err = f.fetch_capped(&big, 999_999).unwrap_err();
    assert!(matches!(err, FetchError::TooLarge { .. }), "{err:?}");
}

#[test]
fn slow_retrieval_is_aborted_by_the_minimum_rate() {
    let ca = TestCa::new().unwrap();
    let server = https_server(&ca, 0);
    let f = fetcher(FetcherConfig {
        min_rate: Some(MinRate {
            bytes_per_sec: 1000,
            grace: Duration::from_secs(1),
        }),
        ..trusting(&ca)
    });
    let err = f.fetch_capped(&server.url("/drip"), 1_000_000).unwrap_err();
    match err {
        FetchError::TooSlow {
            received,
            min_bytes_per_sec,
            ..
        } => {
            assert_eq!(min_bytes_per_sec, 1000);
            assert!(received < 1200, "received {received}");
        }
        other => panic!("expected TooSlow, got {other:?}"),
    }
    assert_eq!(f.request_count(), 1, "a slow server is not retried");
}

#[test]
fn stalled_server_hits_the_read_timeout() {
    let ca = TestCa::new().unwrap();
    let server = https_server(&ca, 0);
    let f = fetcher(FetcherConfig {
        read_timeout: Duration::from_millis(500),
        ..trusting(&ca)
    });
    let err = f.fetch_capped(&server.url("/stall"), 1024).unwrap_err();
    assert!(matches!(err, FetchError::Timeout { .. }), "{err:?}");
}

#[test]
fn not_found_is_its_own_error() {
    let ca = TestCa::new().unwrap();
    let server = https_server(&ca, 0);
    let f = fetcher(trusting(&ca));
    let err = f
        .fetch_capped(&server.url("/2.root.json"), 1024)
        .unwrap_err();
    assert!(err.is_not_found(), "{err:?}");
    assert_eq!(err.url(), server.url("/2.root.json"));
    assert_eq!(f.request_count(), 1, "404 is not retried");
}

#[test]
fn server_errors_are_retried_then_succeed() {
    let ca = TestCa::new().unwrap();
    let server = https_server(&ca, 2);
    let f = fetcher(trusting(&ca));
    assert_eq!(
        f.fetch_capped(&server.url("/flaky"), 1024).unwrap(),
        b"finally"
    );
    assert_eq!(f.request_count(), 3);
}

#[test]
fn retries_are_bounded() {
    let ca = TestCa::new().unwrap();
    let server = https_server(&ca, 5);
    let f = fetcher(FetcherConfig {
        retries: 1,
        ..trusting(&ca)
    });
    let err = f.fetch_capped(&server.url("/flaky"), 1024).unwrap_err();
    assert!(
        matches!(err, FetchError::HttpStatus { status: 503, .. }),
        "{err:?}"
    );
    assert_eq!(f.request_count(), 2);
}

#[test]
fn client_errors_are_not_retried() {
    let ca = TestCa::new().unwrap();
    let server = https_server(&ca, 0);
    let f = fetcher(trusting(&ca));
    let err = f.fetch_capped(&server.url("/forbidden"), 1024).unwrap_err();
    assert!(
        matches!(err, FetchError::HttpStatus { status: 403, .. }),
        "{err:?}"
    );
    assert_eq!(f.request_count(), 1);
}

#[test]
fn connection_refused_is_retried_and_reported() {
    // Bind and drop to get a port with nothing listening.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let ca = TestCa::new().unwrap();
    let f = fetcher(trusting(&ca));
    let err = f
        .fetch_capped(&format!("https://127.0.0.1:{port}/x"), 1024)
        .unwrap_err();
    assert!(matches!(err, FetchError::Connect { .. }), "{err:?}");
    assert_eq!(f.request_count(), 3);
}

#[test]
fn redirects_are_followed_and_checked() {
    let ca = TestCa::new().unwrap();
    let server = https_server(&ca, 0);
    let f = fetcher(trusting(&ca));
    assert_eq!(
        f.fetch_capped(&server.url("/redirect"), 1024).unwrap(),
        b"hello world"
    );
    assert_eq!(
        f.fetch_capped(&server.url("/redirect-relative"), 1024)
            .unwrap(),
        b"hello world"
    );
    let err = f
        .fetch_capped(&server.url("/redirect-loop"), 1024)
        .unwrap_err();
    assert!(matches!(err, FetchError::Redirect { .. }), "{err:?}");

    // A redirect from https to plain http is refused even on loopback.
    let plain = ServerHandle::http(test_router(0)).unwrap();
    let downgrade = Router::new().route(
        "/go",
        get({
            let target = plain.url("/hello");
            move || async move { (StatusCode::FOUND, [(header::LOCATION, target)]).into_response() }
        }),
    );
    let server2 = ServerHandle::https(downgrade, &identity(&ca)).unwrap();
    let err = f.fetch_capped(&server2.url("/go"), 1024).unwrap_err();
    assert!(matches!(err, FetchError::InsecureUrl { .. }), "{err:?}");
}

#[test]
fn streaming_download_reports_progress() {
    let ca = TestCa::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let content: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(dir.path().join("big.bin"), &content).unwrap();
    let server = ServerHandle::https(static_dir_router(dir.path()), &identity(&ca)).unwrap();
    let f = fetcher(trusting(&ca));
    let mut out = Vec::new();
    let mut calls = 0;
    let mut last = (0, None);
    let n = f
        .fetch_to_writer(
            &server.url("/big.bin"),
            content.len() as u64,
            &mut out,
            &mut |got, announced| {
                calls += 1;
                last = (got, announced);
            },
        )
        .unwrap();
    assert_eq!(n, content.len() as u64);
    assert!(out == content);
    assert!(calls > 1);
    assert_eq!(last, (content.len() as u64, Some(content.len() as u64)));
}

#[test]
fn writer_failure_is_reported() {
    struct Broken;
    impl Write for Broken {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::Error::other("disk full"))
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let ca = TestCa::new().unwrap();
    let server = https_server(&ca, 0);
    let err = fetcher(trusting(&ca))
        .fetch_to_writer(&server.url("/hello"), 1024, &mut Broken, &mut |_, _| {})
        .unwrap_err();
    assert!(matches!(err, FetchError::Write { .. }), "{err:?}");
}

/// Sends a raw HTTP/1.1 request and returns the status code and body.
fn raw_request(server: &ServerHandle, method: &str, target: &str) -> (u16, String, String) {
    let mut s = TcpStream::connect(server.addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).unwrap();
    let status = response
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    (status, head.to_string(), body.to_string())
}

#[test]
fn static_dir_serves_files_only() {
    let root = tempfile::tempdir().unwrap();
    let repo = root.path().join("repo");
    std::fs::create_dir_all(repo.join("targets/sub")).unwrap();
    std::fs::write(repo.join("1.root.json"), b"{\"signed\":1}").unwrap();
    std::fs::write(repo.join("targets/sub/a.txt"), b"target").unwrap();
    std::fs::write(repo.join("targets/index.html"), b"index").unwrap();
    std::fs::write(root.path().join("secret.txt"), b"secret").unwrap();

    let server = ServerHandle::http(static_dir_router(&repo)).unwrap();

    let (status, head, body) = raw_request(&server, "GET", "/1.root.json");
    assert_eq!(status, 200);
    assert_eq!(body, "{\"signed\":1}");
    assert!(
        head.to_ascii_lowercase().contains("content-length: 12"),
        "{head}"
    );
    let (status, head, body) = raw_request(&server, "HEAD", "/targets/sub/a.txt");
    assert_eq!(status, 200);
    assert!(
        head.to_ascii_lowercase().contains("content-length: 6"),
        "{head}"
    );
    assert_eq!(body, "");

    for missing in ["/2.root.json", "/targets/none", "/targets/sub/a.txt/x"] {
        assert_eq!(raw_request(&server, "GET", missing).0, 404, "{missing}");
    }
    // No traversal out of the served directory, however it is spelled.
    for evil in [
        "/../secret.txt",
        "/targets/../../secret.txt",
        "/%2e%2e/secret.txt",
        "/targets/%2e%2e/%2e%2e/secret.txt",
        "/..%2fsecret.txt",
        "/%2e%2e%5csecret.txt",
    ] {
        let (status, _, body) = raw_request(&server, "GET", evil);
        assert_ne!(status, 200, "{evil}");
        assert!(!body.contains("secret"), "{evil}: {body}");
    }
    // No directory listings, no index.html substitution.
    for dir in ["/", "/targets", "/targets/", "/targets/sub/"] {
        let (status, _, body) = raw_request(&server, "GET", dir);
        assert!(status == 404 || status == 400, "{dir}: {status}");
        assert!(
            !body.contains("a.txt") && !body.contains("index"),
            "{dir}: {body}"
        );
    }
    // Read-only.
    let (status, _, _) = raw_request(&server, "PUT", "/1.root.json");
    assert_eq!(status, 405);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_can_run_on_the_callers_runtime() {
    let ca = TestCa::new().unwrap();
    let server = ServerHandle::spawn(
        "127.0.0.1:0".parse().unwrap(),
        test_router(0),
        Some(&identity(&ca)),
    )
    .await
    .unwrap();
    let url = server.url("/hello");
    let f = fetcher(trusting(&ca));
    let body = tokio::task::spawn_blocking(move || f.fetch_capped(&url, 1024))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(body, b"hello world");

    // A threaded server started from async code works too.
    let threaded = https_server(&ca, 0);
    let url = threaded.url("/hello");
    let f = fetcher(trusting(&ca));
    let body = tokio::task::spawn_blocking(move || f.fetch_capped(&url, 1024))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(body, b"hello world");
    tokio::task::spawn_blocking(move || threaded.shutdown())
        .await
        .unwrap();
}

#[test]
fn shutdown_stops_serving() {
    let ca = TestCa::new().unwrap();
    let server = https_server(&ca, 0);
    let addr = server.addr();
    let url = server.url("/hello");
    server.shutdown();
    assert!(
        TcpStream::connect(addr).is_err(),
        "still accepting after shutdown"
    );
    let err = fetcher(trusting(&ca)).fetch_capped(&url, 1024).unwrap_err();
    assert!(matches!(err, FetchError::Connect { .. }), "{err:?}");
}

/// In a directory others can write to, a temporary name they can predict (here the one the
/// writer once used: `.key.pem.tmp-<pid>`) must not let them redirect the private key through a
/// planted symlink into a file they can read.
#[cfg(unix)]
#[test]
fn private_key_is_never_written_through_a_planted_temporary_symlink() {
    use std::os::unix::fs::PermissionsExt;
    let ca = TestCa::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let stolen = dir.path().join("readable-by-the-attacker");
    std::fs::write(&stolen, b"").unwrap();
    std::fs::set_permissions(&stolen, std::fs::Permissions::from_mode(0o644)).unwrap();
    for name in ["key.pem", "cert.pem", "ca.pem"] {
        let planted = dir
            .path()
            .join(format!(".{name}.tmp-{}", std::process::id()));
        std::os::unix::fs::symlink(&stolen, planted).unwrap();
    }
    let files = ca.write_files(dir.path(), &["127.0.0.1"]).unwrap();
    assert_eq!(
        std::fs::read(&stolen).unwrap(),
        b"",
        "the key went through the symlink"
    );
    let meta = std::fs::symlink_metadata(&files.key).unwrap();
    assert!(meta.file_type().is_file());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert!(
        std::fs::read_to_string(&files.key)
            .unwrap()
            .contains("PRIVATE KEY")
    );
}

#[test]
fn files_written_for_other_programs_round_trip() {
    let ca = TestCa::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let files = ca
        .write_files(dir.path(), &["127.0.0.1", "localhost"])
        .unwrap();
    assert_eq!(files.ca_cert, dir.path().join("ca.pem"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&files.key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let identity = ServerIdentity::from_pem_files(&files.cert_chain, &files.key).unwrap();
    let server = ServerHandle::https(test_router(0), &identity).unwrap();
    let f = fetcher(FetcherConfig {
        trust: Trust::ca_bundle_file(&files.ca_cert).unwrap(),
        ..FetcherConfig::default()
    });
    assert_eq!(
        f.fetch_capped(&server.url("/hello"), 64).unwrap(),
        b"hello world"
    );
}

#[test]
fn bad_ca_bundles_are_refused_with_their_name() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, b"").unwrap();
    let err = Trust::ca_bundle_file(&empty).unwrap_err();
    assert!(err.to_string().contains("empty.pem"), "{err}");
    let missing = dir.path().join("missing.pem");
    let err = Trust::ca_bundle_file(&missing).unwrap_err();
    assert!(err.to_string().contains("missing.pem"), "{err}");
    let err = Fetcher::new(FetcherConfig {
        trust: Trust::CaBundlePem(
            b"-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n".to_vec(),
        ),
        ..FetcherConfig::default()
    })
    .unwrap_err();
    assert!(err.to_string().contains("CA bundle"), "{err}");
}

/// The interpreter for interop checks: `AIRLOCK_PYTHON` (then it must work), else the repo's
/// `.venv`, else `None` (the caller skips with a notice).
fn python() -> Option<std::path::PathBuf> {
    if let Some(p) = std::env::var_os("AIRLOCK_PYTHON") {
        return Some(p.into());
    }
    let venv = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python");
    venv.exists().then_some(venv)
}

/// Python (OpenSSL, X.509 strict mode as Python 3.13 uses by default) trusts a server certificate
/// from the test CA via a `ca.pem` file, as the python-tuf interop tests will.
#[test]
fn python_trusts_the_test_ca_file() {
    let Some(python) = python() else {
        eprintln!("SKIP python_trusts_the_test_ca_file: AIRLOCK_PYTHON unset and no .venv");
        return;
    };
    let ca = TestCa::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let files = ca
        .write_files(dir.path(), &["127.0.0.1", "localhost"])
        .unwrap();
    let server = ServerHandle::https(
        test_router(0),
        &ServerIdentity::from_pem_files(&files.cert_chain, &files.key).unwrap(),
    )
    .unwrap();
    let script = r#"
import ssl, sys, urllib.request
ctx = ssl.create_default_context(cafile=sys.argv[1])
ctx.verify_flags |= ssl.VERIFY_X509_STRICT
for url in sys.argv[2:]:
    with urllib.request.urlopen(url, context=ctx, timeout=10) as r:
        sys.stdout.write(r.read().decode() + "\n")
"#;
    let by_name = format!("https://localhost:{}/hello", server.addr().port());
    let out = std::process::Command::new(&python)
        .arg("-c")
        .arg(script)
        .arg(&files.ca_cert)
        .arg(server.url("/hello"))
        .arg(&by_name)
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", python.display()));
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "hello world\nhello world\n"
    );

    // And refuses it without the CA file (the check above is not vacuous).
    let other = TestCa::new().unwrap();
    let other_ca = tempfile::tempdir().unwrap();
    let other_file = other.write_ca_pem(other_ca.path()).unwrap();
    let out = std::process::Command::new(&python)
        .arg("-c")
        .arg(script)
        .arg(&other_file)
        .arg(server.url("/hello"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("CERTIFICATE_VERIFY_FAILED"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn ipv6_loopback_works_for_https_and_allowed_http() {
    let ca = TestCa::new().unwrap();
    let id = ca.issue_server_cert(&["::1"]).unwrap();
    let addr: std::net::SocketAddr = "[::1]:0".parse().unwrap();
    let server = match ServerHandle::start(addr, test_router(0), Some(&id)) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("SKIP ipv6 test: this machine has no ::1 ({e})");
            return;
        }
    };
    assert!(server.base_url().starts_with("https://[::1]:"));
    let f = fetcher(trusting(&ca));
    assert_eq!(
        f.fetch_capped(&server.url("/hello"), 64).unwrap(),
        b"hello world"
    );

    let plain = ServerHandle::start(addr, test_router(0), None).unwrap();
    let loopback = fetcher(FetcherConfig {
        allow_http_loopback: true,
        ..FetcherConfig::default()
    });
    assert_eq!(
        loopback.fetch_capped(&plain.url("/hello"), 64).unwrap(),
        b"hello world"
    );
}
