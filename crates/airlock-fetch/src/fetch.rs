//! The blocking HTTPS client every Airlock client uses to download metadata, targets and proofs
//! from untrusted servers.
//!
//! What it defends against, and how:
//! - *Man in the middle*: HTTPS only (rustls, ring); plain `http://` is refused unless
//!   [`FetcherConfig::allow_http_loopback`] is set, and even then only for 127.0.0.1, ::1 and
//!   localhost. Redirects are followed by this module (not by ureq) so every hop passes the same
//!   check.
//! - *Endless data*: every download has a byte cap; at most `max_len + 1` bytes are ever read, and
//!   a longer body is an error. `Content-Length` is only used to fail early when it already
//!   announces too much; it is never trusted to bound a read.
//! - *Slow retrieval*: connect timeout, per-read timeout, a timeout for the response head, and a
//!   minimum average transfer rate enforced once a grace period has passed.
//! - *Flaky mirrors*: bounded retries with a short doubling backoff on connection failures and
//!   5xx answers. 4xx answers, TLS failures, oversized or too slow bodies are never retried.

use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ureq::tls::{Certificate, RootCerts, TlsConfig, TlsProvider};

use crate::tls::{TlsError, root_store_from_pem};

/// Which certificate authorities the client trusts.
#[derive(Clone, Debug, Default)]
pub enum Trust {
    /// The Mozilla root program, as shipped in `webpki-roots`.
    #[default]
    WebPki,
    /// Only the CA certificates in this PEM bundle (e.g. a test CA's `ca.pem`).
    CaBundlePem(Vec<u8>),
}

impl Trust {
    /// Reads a PEM CA bundle from a file.
    pub fn ca_bundle_file(path: &Path) -> Result<Self, TlsError> {
        let pem = std::fs::read(path).map_err(|source| TlsError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        // Validate now, so a bad file is reported with its name.
        root_store_from_pem(&pem, &path.display().to_string())?;
        Ok(Trust::CaBundlePem(pem))
    }
}

/// The slow-retrieval rule: after `grace`, the average rate since the request started must stay
/// at or above `bytes_per_sec`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MinRate {
    pub bytes_per_sec: u64,
    pub grace: Duration,
}

/// Settings for a [`Fetcher`]. `Default` gives production values.
#[derive(Clone, Debug)]
pub struct FetcherConfig {
    /// Which CAs to trust. Default: webpki roots.
    pub trust: Trust,
    /// Allow `http://` to 127.0.0.1, ::1 and localhost (tests, the conformance client). Default false.
    pub allow_http_loopback: bool,
    /// Limit for establishing the connection, TLS handshake included. Default 10 s.
    pub connect_timeout: Duration,
    /// Limit for each read from the socket, and for receiving the whole response head. Default 30 s.
    pub read_timeout: Duration,
    /// Minimum average transfer rate after a grace period; `None` disables the rule.
    /// Default: 1024 bytes/s after 10 s.
    pub min_rate: Option<MinRate>,
    /// Extra attempts after a connection failure or a 5xx answer. Default 2 (3 attempts in all).
    pub retries: u32,
    /// Wait before the first retry; doubled for each further one. Default 100 ms.
    pub retry_backoff: Duration,
    /// Redirects followed per request (each one checked like the original URL). Default 5.
    pub max_redirects: u32,
    /// Use a proxy from `HTTPS_PROXY`/`ALL_PROXY`/… (honouring `NO_PROXY`). Default false, so
    /// that results do not depend on the environment. TLS still runs end to end.
    pub use_env_proxy: bool,
    /// Send every request through this proxy (e.g. `socks5h://127.0.0.1:9050` for Tor), in
    /// place of any proxy from the environment. Default none. TLS still runs end to end: the
    /// proxy sees the host and port, never the content.
    pub proxy: Option<ProxyUrl>,
    /// The `User-Agent` header. Default `airlock/<version>`.
    pub user_agent: String,
}

/// A proxy URL checked when it is given: `socks5h://` (SOCKS5, the proxy resolves names, as
/// Tor needs), `socks5://`, `socks4://`, `socks4a://`, `http://` or `https://`, a host and a
/// port, optionally `user:password@`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProxyUrl {
    url: String,
    proxy: ureq::Proxy,
}

impl ProxyUrl {
    /// Parse `url`; a missing or unknown scheme is refused (a bare `host:port` would silently
    /// mean an HTTP proxy).
    pub fn parse(url: &str) -> Result<Self, FetchError> {
        let invalid = |reason: String| FetchError::InvalidUrl {
            url: url.to_string(),
            reason,
        };
        let scheme = url
            .split_once("://")
            .map(|(s, _)| s.to_ascii_lowercase())
            .ok_or_else(|| invalid("a proxy URL needs a scheme, e.g. socks5h://".into()))?;
        if !matches!(
            scheme.as_str(),
            "socks5h" | "socks5" | "socks4" | "socks4a" | "http" | "https"
        ) {
            return Err(invalid(format!("proxy scheme {scheme:?} is not supported")));
        }
        let proxy = ureq::Proxy::new(url).map_err(|e| invalid(e.to_string()))?;
        Ok(ProxyUrl {
            url: url.to_string(),
            proxy,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.url
    }
}

impl std::fmt::Display for ProxyUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.url)
    }
}

impl Default for FetcherConfig {
    fn default() -> Self {
        Self {
            trust: Trust::WebPki,
            allow_http_loopback: false,
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(30),
            min_rate: Some(MinRate {
                bytes_per_sec: 1024,
                grace: Duration::from_secs(10),
            }),
            retries: 2,
            retry_backoff: Duration::from_millis(100),
            max_redirects: 5,
            use_env_proxy: false,
            proxy: None,
            user_agent: concat!("airlock/", env!("CARGO_PKG_VERSION")).to_string(),
        }
    }
}

/// A failed download. Every variant names the URL.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{url}: not a usable URL: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("{url}: refused: {reason}")]
    InsecureUrl { url: String, reason: &'static str },
    #[error("{url}: not found (HTTP 404)")]
    NotFound { url: String },
    #[error("{url}: server answered HTTP {status}")]
    HttpStatus { url: String, status: u16 },
    #[error("{url}: body is longer than the limit of {max_len} bytes")]
    TooLarge { url: String, max_len: u64 },
    #[error(
        "{url}: transfer too slow: {received} bytes in {:.1} s, below the minimum of {min_bytes_per_sec} bytes/s",
        elapsed.as_secs_f64()
    )]
    TooSlow {
        url: String,
        received: u64,
        elapsed: Duration,
        min_bytes_per_sec: u64,
    },
    #[error("{url}: timed out ({what})")]
    Timeout { url: String, what: String },
    #[error("{url}: TLS failure: {detail}")]
    Tls { url: String, detail: String },
    #[error("{url}: connection failed: {detail}")]
    Connect { url: String, detail: String },
    #[error("{url}: redirect refused: {reason}")]
    Redirect { url: String, reason: String },
    #[error("{url}: {detail}")]
    Transport { url: String, detail: String },
    #[error("{url}: writing the downloaded body failed")]
    Write {
        url: String,
        #[source]
        source: io::Error,
    },
}

impl FetchError {
    /// True for HTTP 404: the resource does not exist (e.g. root N+1 when no rotation happened).
    pub fn is_not_found(&self) -> bool {
        matches!(self, FetchError::NotFound { .. })
    }

    /// The URL the failure concerns.
    pub fn url(&self) -> &str {
        match self {
            FetchError::InvalidUrl { url, .. }
            | FetchError::InsecureUrl { url, .. }
            | FetchError::NotFound { url }
            | FetchError::HttpStatus { url, .. }
            | FetchError::TooLarge { url, .. }
            | FetchError::TooSlow { url, .. }
            | FetchError::Timeout { url, .. }
            | FetchError::Tls { url, .. }
            | FetchError::Connect { url, .. }
            | FetchError::Redirect { url, .. }
            | FetchError::Transport { url, .. }
            | FetchError::Write { url, .. } => url,
        }
    }

    /// Whether another attempt could succeed: connection failures and 5xx answers.
    /// A connection that broke while the body was arriving (what resuming is for).
    fn is_cut(&self) -> bool {
        matches!(
            self,
            FetchError::Transport { .. } | FetchError::Connect { .. }
        )
    }

    fn is_retryable(&self) -> bool {
        match self {
            FetchError::Connect { .. } => true,
            FetchError::HttpStatus { status, .. } => (500..600).contains(status),
            _ => false,
        }
    }
}

/// How many times one [`Fetcher::fetch_resumable`] call goes on after a broken connection.
pub const MAX_RESUMES: u32 = 64;

/// Where a resumable download goes: the bytes held so far, and a way to drop them when a server
/// sends the whole file again.
pub trait Resumable: Write {
    /// Drop every byte held (and whatever was computed from them, e.g. a running hash).
    fn restart(&mut self) -> io::Result<()>;
}

/// A plain writer: nothing is held before the first byte, so nothing ever restarts.
struct Plain<'a>(&'a mut dyn Write);

impl Write for Plain<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl Resumable for Plain<'_> {
    fn restart(&mut self) -> io::Result<()> {
        Err(io::Error::other("a download from byte 0 cannot restart"))
    }
}

/// The first byte of a `Content-Range: bytes FIRST-LAST/TOTAL` header.
fn content_range_start(header: &str) -> Option<u64> {
    let spec = header.trim().strip_prefix("bytes ")?;
    let (range, _total) = spec.split_once('/')?;
    let (first, last) = range.split_once('-')?;
    let first: u64 = first.trim().parse().ok()?;
    let last: u64 = last.trim().parse().ok()?;
    (last >= first).then_some(first)
}

/// The answer to [`Fetcher::post`], whatever its status.
#[derive(Clone, Debug)]
pub struct Response {
    pub status: u16,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
}

impl Response {
    /// The body's first line, at most 300 characters: the reason a text protocol gives.
    pub fn reason(&self) -> String {
        let text = String::from_utf8_lossy(&self.body);
        text.lines()
            .next()
            .unwrap_or("")
            .chars()
            .take(300)
            .collect()
    }
}

/// Called as a download progresses with (bytes received so far, `Content-Length` if announced).
/// The announced length is for display only; it is not trusted.
pub type Progress<'a> = &'a mut dyn FnMut(u64, Option<u64>);

/// A blocking HTTPS client with the defences described in the module docs. Cheap to share
/// between threads (`&Fetcher` is `Send + Sync`); connections are pooled.
#[derive(Debug)]
pub struct Fetcher {
    agent: ureq::Agent,
    config: FetcherConfig,
    requests: AtomicU64,
}

impl Fetcher {
    /// Builds a client; fails if the CA bundle is not valid PEM or holds no usable certificate.
    pub fn new(config: FetcherConfig) -> Result<Self, TlsError> {
        let root_certs = match &config.trust {
            Trust::WebPki => RootCerts::WebPki,
            Trust::CaBundlePem(pem) => {
                let store = crate::tls::certs_from_pem(pem, "CA bundle")?;
                // Check each one is a usable trust anchor before handing them to ureq.
                root_store_from_pem(pem, "CA bundle")?;
                RootCerts::new_with_certs(
                    &store
                        .iter()
                        .map(|c| Certificate::from_der(c.as_ref()).to_owned())
                        .collect::<Vec<_>>(),
                )
            }
        };
        let tls = TlsConfig::builder()
            .provider(TlsProvider::Rustls)
            .root_certs(root_certs)
            .build();
        let proxy = if let Some(p) = &config.proxy {
            Some(p.proxy.clone())
        } else if config.use_env_proxy {
            ureq::Proxy::try_from_env()
        } else {
            None
        };
        let agent = ureq::Agent::config_builder()
            .tls_config(tls)
            .https_only(!config.allow_http_loopback)
            .http_status_as_error(false)
            .max_redirects(0)
            .proxy(proxy)
            .user_agent(config.user_agent.as_str())
            .timeout_connect(Some(config.connect_timeout))
            .timeout_per_read(Some(config.read_timeout))
            .timeout_send_request(Some(config.read_timeout))
            .timeout_recv_response(Some(config.read_timeout))
            .build()
            .new_agent();
        Ok(Self {
            agent,
            config,
            requests: AtomicU64::new(0),
        })
    }

    /// The settings this client was built with.
    pub fn config(&self) -> &FetcherConfig {
        &self.config
    }

    /// Number of HTTP requests sent so far (retries and redirects included).
    pub fn request_count(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Downloads `url` into memory. Reads at most `max_len + 1` bytes; a longer body is
    /// [`FetchError::TooLarge`].
    pub fn fetch_capped(&self, url: &str, max_len: u64) -> Result<Vec<u8>, FetchError> {
        let mut attempt = 0;
        loop {
            let mut body = Vec::new();
            match self.fetch_once(url, 0, max_len, &mut Plain(&mut body), &mut |_, _| {}) {
                Ok(_) => return Ok(body),
                Err((e, _)) if e.is_retryable() && attempt < self.config.retries => {
                    self.backoff(attempt, &e);
                    attempt += 1;
                }
                Err((e, _)) => return Err(e),
            }
        }
    }

    /// Streams `url` into `out` (where the caller hashes and stores it), calling `progress` as
    /// bytes arrive. Reads at most `max_len + 1` bytes; a longer body is
    /// [`FetchError::TooLarge`], after at most `max_len` bytes went to `out`. Returns the number of
    /// bytes written. A failed attempt is retried only if nothing was written to `out` yet.
    pub fn fetch_to_writer(
        &self,
        url: &str,
        max_len: u64,
        out: &mut dyn Write,
        progress: Progress<'_>,
    ) -> Result<u64, FetchError> {
        let mut attempt = 0;
        loop {
            match self.fetch_once(url, 0, max_len, &mut Plain(&mut *out), progress) {
                Ok(n) => return Ok(n),
                Err((e, 0)) if e.is_retryable() && attempt < self.config.retries => {
                    self.backoff(attempt, &e);
                    attempt += 1;
                }
                Err((e, _)) => return Err(e),
            }
        }
    }

    /// Like [`Fetcher::fetch_to_writer`] for a file of which `out` already holds the first
    /// `have` bytes (a download cut earlier, here or on another server): asks for the rest with
    /// an HTTP Range request. A server that answers with the whole file instead (200) is
    /// followed after [`Resumable::restart`] dropped what `out` held; a range that does not
    /// start where asked is refused. When the connection breaks after bytes arrived, the
    /// download goes on from there (at most [`MAX_RESUMES`] times per call); other failures
    /// are retried as usual while nothing new arrived. `max_len` is the length of the whole
    /// file; returns how many bytes `out` holds. The caller checks the bytes as a whole.
    pub fn fetch_resumable(
        &self,
        url: &str,
        have: u64,
        max_len: u64,
        out: &mut dyn Resumable,
        progress: Progress<'_>,
    ) -> Result<u64, FetchError> {
        let mut held = have;
        let mut attempt = 0;
        let mut resumes = 0;
        loop {
            match self.fetch_once(url, held, max_len, out, progress) {
                Ok(n) => return Ok(n),
                Err((e, n)) => {
                    let progressed = n != held;
                    held = n;
                    if progressed && e.is_cut() && resumes < MAX_RESUMES {
                        resumes += 1;
                        tracing::debug!("{e}; resuming at byte {held}");
                    } else if !progressed && e.is_retryable() && attempt < self.config.retries {
                        self.backoff(attempt, &e);
                        attempt += 1;
                    } else {
                        return Err(e);
                    }
                }
            }
        }
    }

    fn backoff(&self, attempt: u32, error: &FetchError) {
        let wait = self
            .config
            .retry_backoff
            .saturating_mul(1u32.checked_shl(attempt).unwrap_or(u32::MAX));
        tracing::debug!("retrying in {wait:?} after: {error}");
        std::thread::sleep(wait);
    }

    /// One attempt, redirects included, for the bytes after the `from` that `out` holds.
    /// Returns (also on failure) how many bytes `out` holds.
    fn fetch_once(
        &self,
        url: &str,
        from: u64,
        max_len: u64,
        out: &mut dyn Resumable,
        progress: Progress<'_>,
    ) -> Result<u64, (FetchError, u64)> {
        let started = Instant::now();
        let mut current = url.to_string();
        let mut redirects = 0;
        let (response, from) = loop {
            self.check_url(&current).map_err(|e| (e, from))?;
            self.requests.fetch_add(1, Ordering::Relaxed);
            let request = self.agent.get(&current);
            let request = if from > 0 {
                request.header("Range", format!("bytes={from}-"))
            } else {
                request
            };
            let response = request.call().map_err(|e| (classify(&current, e), from))?;
            let status = response.status().as_u16();
            if (300..400).contains(&status) && status != 304 {
                if redirects >= self.config.max_redirects {
                    return Err((
                        FetchError::Redirect {
                            url: current,
                            reason: format!("more than {} redirects", self.config.max_redirects),
                        },
                        from,
                    ));
                }
                let location = response
                    .headers()
                    .get("location")
                    .and_then(|v| v.to_str().ok())
                    .ok_or_else(|| {
                        (
                            FetchError::Redirect {
                                url: current.clone(),
                                reason: format!("HTTP {status} without a usable Location header"),
                            },
                            from,
                        )
                    })?;
                let next = resolve_location(&current, location).map_err(|reason| {
                    (
                        FetchError::Redirect {
                            url: current.clone(),
                            reason,
                        },
                        from,
                    )
                })?;
                tracing::debug!("{current} redirects to {next}");
                current = next;
                redirects += 1;
                continue;
            }
            match status {
                206 if from > 0 => {
                    let range = response
                        .headers()
                        .get("content-range")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("");
                    if content_range_start(range) != Some(from) {
                        return Err((
                            FetchError::Transport {
                                url: current,
                                detail: format!(
                                    "asked for the bytes from {from} on, got range {range:?}"
                                ),
                            },
                            from,
                        ));
                    }
                    break (response, from);
                }
                200 => {
                    if from > 0 {
                        // The whole file: what `out` held is dropped, the body starts over.
                        out.restart().map_err(|source| {
                            (
                                FetchError::Write {
                                    url: current.clone(),
                                    source,
                                },
                                from,
                            )
                        })?;
                    }
                    break (response, 0);
                }
                404 => return Err((FetchError::NotFound { url: current }, from)),
                _ => {
                    return Err((
                        FetchError::HttpStatus {
                            url: current,
                            status,
                        },
                        from,
                    ));
                }
            }
        };

        let announced = response
            .headers()
            .get("content-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let rest = max_len.saturating_sub(from);
        if announced.is_some_and(|n| n > rest) {
            // Fail early; a truthful server would send too much, a lying one a truncated body.
            return Err((
                FetchError::TooLarge {
                    url: current,
                    max_len,
                },
                0,
            ));
        }
        let announced = announced.map(|n| n + from);
        let mut reader = response
            .into_body()
            .into_with_config()
            .limit(rest.saturating_add(1))
            .reader()
            .take(rest.saturating_add(1));
        let mut buf = vec![0u8; 64 * 1024];
        let mut written: u64 = from;
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err((classify_read(&current, e, max_len), written)),
            };
            let chunk = buf.get(..n).unwrap_or_default();
            if written + n as u64 > max_len {
                return Err((
                    FetchError::TooLarge {
                        url: current,
                        max_len,
                    },
                    written,
                ));
            }
            out.write_all(chunk).map_err(|source| {
                (
                    FetchError::Write {
                        url: current.clone(),
                        source,
                    },
                    written,
                )
            })?;
            written += n as u64;
            progress(written, announced);
            if let Some(rule) = self.config.min_rate {
                let elapsed = started.elapsed();
                if elapsed > rule.grace
                    && ((written - from) as f64) < rule.bytes_per_sec as f64 * elapsed.as_secs_f64()
                {
                    return Err((
                        FetchError::TooSlow {
                            url: current,
                            received: written - from,
                            elapsed,
                            min_bytes_per_sec: rule.bytes_per_sec,
                        },
                        written,
                    ));
                }
            }
        }
        Ok(written)
    }

    /// POSTs `body` with extra `headers` and returns the answer whatever its status (a protocol
    /// may put its reason in a 4xx body, e.g. tlog-witness's 409), reading at most `max_len`
    /// bytes of it; a longer body is [`FetchError::TooLarge`]. Same scheme policy, TLS trust and
    /// timeouts as a download, but one attempt and no redirect followed: a POST is never
    /// replayed by this client.
    pub fn post(
        &self,
        url: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        max_len: u64,
    ) -> Result<Response, FetchError> {
        self.check_url(url)?;
        self.requests.fetch_add(1, Ordering::Relaxed);
        let mut request = self.agent.post(url);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send(body).map_err(|e| classify(url, e))?;
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let mut out = Vec::new();
        response
            .into_body()
            .into_with_config()
            .limit(max_len.saturating_add(1))
            .reader()
            .take(max_len.saturating_add(1))
            .read_to_end(&mut out)
            .map_err(|e| classify_read(url, e, max_len))?;
        if out.len() as u64 > max_len {
            return Err(FetchError::TooLarge {
                url: url.to_string(),
                max_len,
            });
        }
        Ok(Response {
            status,
            content_type,
            body: out,
        })
    }

    /// Scheme policy: https always; http only to loopback and only when allowed.
    fn check_url(&self, url: &str) -> Result<(), FetchError> {
        check_url_scheme(url, self.config.allow_http_loopback)
    }
}

/// The scheme policy every airlock client applies: `https` always; plain `http` only when
/// `allow_http_loopback` is set, and then only to 127.0.0.1, ::1 or localhost.
pub fn check_url_scheme(url: &str, allow_http_loopback: bool) -> Result<(), FetchError> {
    let uri: ureq::http::Uri =
        url.parse()
            .map_err(|e: ureq::http::uri::InvalidUri| FetchError::InvalidUrl {
                url: url.to_string(),
                reason: e.to_string(),
            })?;
    let host = uri.host().ok_or_else(|| FetchError::InvalidUrl {
        url: url.to_string(),
        reason: "no host".into(),
    })?;
    match uri.scheme_str() {
        Some("https") => Ok(()),
        Some("http") if !allow_http_loopback => Err(FetchError::InsecureUrl {
            url: url.to_string(),
            reason: "plain http is not allowed (use https)",
        }),
        Some("http") if is_loopback_host(host) => Ok(()),
        Some("http") => Err(FetchError::InsecureUrl {
            url: url.to_string(),
            reason: "plain http is allowed only to 127.0.0.1, ::1 and localhost",
        }),
        _ => Err(FetchError::InvalidUrl {
            url: url.to_string(),
            reason: "scheme must be https".into(),
        }),
    }
}

fn is_loopback_host(host: &str) -> bool {
    matches!(host, "127.0.0.1" | "[::1]" | "::1" | "localhost")
}

/// Resolves a `Location` header against the URL that answered with it.
fn resolve_location(base: &str, location: &str) -> Result<String, String> {
    if location.contains("://") {
        return Ok(location.to_string());
    }
    let (scheme, rest) = base
        .split_once("://")
        .ok_or_else(|| format!("cannot resolve Location {location:?}"))?;
    if let Some(net_path) = location.strip_prefix("//") {
        return Ok(format!("{scheme}://{net_path}"));
    }
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    if location.starts_with('/') {
        return Ok(format!("{scheme}://{authority}{location}"));
    }
    // Relative path: replace the last segment of the base path (query dropped).
    let path = path.split(['?', '#']).next().unwrap_or("");
    let dir = match path.rfind('/') {
        Some(i) => path.get(..=i).unwrap_or("/"),
        None => "/",
    };
    Ok(format!("{scheme}://{authority}{dir}{location}"))
}

/// Maps a ureq error from sending a request / receiving the head to our variants.
fn classify(url: &str, error: ureq::Error) -> FetchError {
    let url = url.to_string();
    match error {
        ureq::Error::Timeout(t) => FetchError::Timeout {
            url,
            what: timeout_name(t),
        },
        ureq::Error::Rustls(e) => FetchError::Tls {
            url,
            detail: e.to_string(),
        },
        ureq::Error::Tls(e) => FetchError::Tls {
            url,
            detail: e.to_string(),
        },
        ureq::Error::HostNotFound | ureq::Error::ConnectionFailed => FetchError::Connect {
            url,
            detail: error.to_string(),
        },
        ureq::Error::RequireHttpsOnly(_) => FetchError::InsecureUrl {
            url,
            reason: "plain http is not allowed (use https)",
        },
        ureq::Error::Io(e) => classify_io(url, e),
        ureq::Error::BodyExceedsLimit(_) => FetchError::Transport {
            url,
            detail: "response too large".into(),
        },
        other => FetchError::Transport {
            url,
            detail: other.to_string(),
        },
    }
}

fn classify_io(url: String, e: io::Error) -> FetchError {
    if let Some(tls) = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        return FetchError::Tls {
            url,
            detail: tls.to_string(),
        };
    }
    match e.kind() {
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => FetchError::Timeout {
            url,
            what: e.to_string(),
        },
        io::ErrorKind::ConnectionRefused
        | io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::NotConnected
        | io::ErrorKind::BrokenPipe
        | io::ErrorKind::AddrNotAvailable
        | io::ErrorKind::UnexpectedEof => FetchError::Connect {
            url,
            detail: e.to_string(),
        },
        _ => FetchError::Transport {
            url,
            detail: e.to_string(),
        },
    }
}

/// Maps an error from reading the body. Body errors are never connection-level retries: some
/// bytes may already be consumed, and a server that breaks off mid-body is not "down".
fn classify_read(url: &str, e: io::Error, max_len: u64) -> FetchError {
    let url = url.to_string();
    let inner = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<ureq::Error>());
    match inner {
        Some(ureq::Error::BodyExceedsLimit(_)) => FetchError::TooLarge { url, max_len },
        Some(ureq::Error::Timeout(t)) => FetchError::Timeout {
            url,
            what: timeout_name(*t),
        },
        _ if e.kind() == io::ErrorKind::TimedOut => FetchError::Timeout {
            url,
            what: e.to_string(),
        },
        _ => FetchError::Transport {
            url,
            detail: format!("reading the body: {e}"),
        },
    }
}

fn timeout_name(t: ureq::Timeout) -> String {
    match t {
        ureq::Timeout::Connect | ureq::Timeout::Resolve => "connecting".into(),
        ureq::Timeout::PerRead => "waiting for data".into(),
        ureq::Timeout::RecvResponse | ureq::Timeout::SendRequest => {
            "waiting for the response".into()
        }
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn location_resolution() {
        let base = "https://h:1/a/b/c.json?q=1";
        assert_eq!(
            resolve_location(base, "https://x/y").unwrap(),
            "https://x/y"
        );
        assert_eq!(resolve_location(base, "//m/z").unwrap(), "https://m/z");
        assert_eq!(resolve_location(base, "/r").unwrap(), "https://h:1/r");
        assert_eq!(
            resolve_location(base, "d.json").unwrap(),
            "https://h:1/a/b/d.json"
        );
        assert_eq!(
            resolve_location("https://h", "d.json").unwrap(),
            "https://h/d.json"
        );
        assert!(resolve_location("nonsense", "d.json").is_err());
    }

    #[test]
    fn only_loopback_names_count_as_loopback() {
        for host in ["127.0.0.1", "[::1]", "localhost"] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in [
            "127.0.0.2",
            "localhost.example",
            "0.0.0.0",
            "[::]",
            "10.0.0.1",
            "",
        ] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }

    #[test]
    fn scheme_policy() {
        let strict = Fetcher::new(FetcherConfig::default()).unwrap();
        assert!(strict.check_url("https://example.com/x").is_ok());
        assert!(matches!(
            strict.check_url("http://127.0.0.1/x"),
            Err(FetchError::InsecureUrl { .. })
        ));
        let loopback = Fetcher::new(FetcherConfig {
            allow_http_loopback: true,
            ..FetcherConfig::default()
        })
        .unwrap();
        for ok in [
            "http://127.0.0.1:8080/x",
            "http://[::1]:1/x",
            "http://localhost/x",
        ] {
            assert!(loopback.check_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://127.0.0.1@evil.example/x",
            "http://evil.example/127.0.0.1",
            "http://[::ffff:1.2.3.4]/x",
        ] {
            assert!(
                matches!(loopback.check_url(bad), Err(FetchError::InsecureUrl { .. })),
                "{bad}"
            );
        }
    }
}
