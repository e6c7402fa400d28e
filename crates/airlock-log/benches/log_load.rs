//! Log-load benchmark (not a test): many concurrent HTTPS submitters against one log, durable
//! acknowledgements only, then the same entries through the in-process path, in one run.
//! Prints a Markdown section for docs/benchmarks.md ("Log load"); with
//! `AIRLOCK_BENCH_WRITE_DOCS=1` it also replaces that section there.
//!
//!     cargo bench -p airlock-log --bench log_load
//!
//! Environment: `BENCH_ENTRIES` (default 200000) entries per path; `BENCH_INFLIGHT` (default
//! 4096) requests in flight; `BENCH_CONNS` (default 16) keep-alive HTTP/2 connections;
//! `BENCH_H1_CONNS` (default 256, 0 = skip) HTTP/1.1 keep-alive connections for the HTTP/1.1
//! row (one request in flight each); `BENCH_DIR` (default: the system temp dir) where the
//! logs' files go (the disk being measured).
//!
//! The submitters' requests (1 KiB entries and their Ed25519 `Airlock-Signature` headers) are
//! prepared before the timed window: signing is the publishers' cost, not the log's. Everything
//! the log does per submission is timed: TLS, HTTP, the header check, the signature check over
//! the entry, sequencing, the fsynced batch, the acknowledgement.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use airlock_core::tlog::{KeyAlgorithm, NoteSigner};
use airlock_log::{FsTileStore, Log, LogOptions, SIGNATURE_HEADER, sign_submission};
use airlock_serve::{ServerHandle, TestCa};
use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, Request, header};
use hyper_util::rt::{TokioExecutor, TokioIo};

const ENTRY_SIZE: usize = 1024;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

struct Submission {
    entry: Bytes,
    signature: HeaderValue,
}

/// `n` distinct 1 KiB entries and their signatures, on two threads.
fn prepare(n: usize, publisher: &NoteSigner, origin: &str) -> Vec<Submission> {
    let threads = 2;
    let chunk = n.div_ceil(threads);
    std::thread::scope(|s| {
        let parts: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || {
                    let range = (t * chunk)..((t + 1) * chunk).min(n);
                    range
                        .map(|i| {
                            let mut entry = format!("log-load entry {i} ").into_bytes();
                            entry.resize(ENTRY_SIZE, b'.');
                            let sig = sign_submission(publisher, origin, &entry).unwrap();
                            Submission {
                                entry: Bytes::from(entry),
                                signature: HeaderValue::from_str(&sig).unwrap(),
                            }
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        parts.into_iter().flat_map(|h| h.join().unwrap()).collect()
    })
}

/// CPU time (user + system) per thread of this process, by thread name, and of the whole
/// process (which includes threads that have ended).
#[derive(Default, Clone)]
struct Cpu {
    process: Duration,
    threads: HashMap<u64, (String, Duration)>,
}

fn ticks(t: u64) -> Duration {
    // USER_HZ is 100 on Linux (getconf CLK_TCK).
    Duration::from_millis(t * 10)
}

fn stat_times(stat: &str) -> Option<(String, Duration)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let name = stat.get(open + 1..close)?.to_string();
    let fields: Vec<&str> = stat.get(close + 2..)?.split_whitespace().collect();
    // Fields 14 and 15 of stat (utime, stime); `fields` starts at field 3.
    let u: u64 = fields.get(11)?.parse().ok()?;
    let s: u64 = fields.get(12)?.parse().ok()?;
    Some((name, ticks(u + s)))
}

fn cpu_now() -> Cpu {
    let process = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| stat_times(&s))
        .map(|(_, t)| t)
        .unwrap_or_default();
    let mut threads = HashMap::new();
    if let Ok(dir) = std::fs::read_dir("/proc/self/task") {
        for e in dir.flatten() {
            let Ok(tid) = e.file_name().to_string_lossy().parse::<u64>() else {
                continue;
            };
            if let Some(t) = std::fs::read_to_string(e.path().join("stat"))
                .ok()
                .and_then(|s| stat_times(&s))
            {
                threads.insert(tid, t);
            }
        }
    }
    Cpu { process, threads }
}

/// CPU used between `a` and `b`: the whole process, and by role (thread name prefix).
fn cpu_split(a: &Cpu, b: &Cpu) -> (Duration, Vec<(&'static str, Duration)>) {
    let roles: [(&str, &str); 4] = [
        ("server (TLS, HTTP, signature check)", "airlock-serve"),
        ("sequencer (hashing, tiles, fsync)", "airlock-log seq"),
        ("checkpoint publisher", "airlock-log pub"),
        ("submitters (client side)", "bench-"),
    ];
    let mut out: Vec<(&'static str, Duration)> =
        roles.iter().map(|(r, _)| (*r, Duration::ZERO)).collect();
    for (tid, (name, t)) in &b.threads {
        let before = a.threads.get(tid).map(|(_, t)| *t).unwrap_or_default();
        let d = t.saturating_sub(before);
        if let Some(i) = roles.iter().position(|(_, p)| name.starts_with(p)) {
            out[i].1 += d;
        }
    }
    (b.process.saturating_sub(a.process), out)
}

/// CPU time of the calling thread.
fn thread_cpu() -> Duration {
    std::fs::read_to_string("/proc/thread-self/stat")
        .ok()
        .and_then(|s| stat_times(&s))
        .map(|(_, t)| t)
        .unwrap_or_default()
}

/// What the log's signature check alone costs per submission (header parse, key lookup, entry
/// hash, Ed25519 `verify_strict`), on this thread: CPU per submission.
fn verify_cost(subs: &[Submission], publisher: &NoteSigner, origin: &str) -> Duration {
    let keys = [publisher.verifier()];
    let sample = &subs[..subs.len().min(20_000)];
    let c0 = thread_cpu();
    for s in sample {
        let header = s.signature.to_str().unwrap();
        airlock_log::verify_submission(&keys, origin, &s.entry, Some(header)).unwrap();
    }
    (thread_cpu() - c0) / sample.len().max(1) as u32
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

struct Run {
    wall: Duration,
    cpu: Duration,
    cpu_roles: Vec<(&'static str, Duration)>,
    lat: Vec<Duration>,
    load_before: String,
    load_after: String,
}

impl Run {
    fn per_sec(&self) -> f64 {
        self.lat.len() as f64 / self.wall.as_secs_f64()
    }
    fn pct(&self, p: f64) -> Duration {
        if self.lat.is_empty() {
            return Duration::ZERO;
        }
        let i = ((self.lat.len() as f64 - 1.0) * p).round() as usize;
        self.lat[i.min(self.lat.len() - 1)]
    }
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn start_log(dir: &std::path::Path, publisher: &NoteSigner) -> Log {
    let log_key = NoteSigner::generate("bench.test/load", KeyAlgorithm::Ed25519).unwrap();
    let store = FsTileStore::open(&dir.join("public"), &dir.join("state")).unwrap();
    Log::start(LogOptions {
        signer: log_key,
        store: Arc::new(store),
        publishers: vec![publisher.verifier()],
        witnesses: Vec::new(),
        witness_client: None,
        // As `airlock log serve`.
        max_batch: 65_536,
    })
    .unwrap()
}

fn client_runtime(name: &str) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(name)
        .enable_all()
        .build()
        .unwrap()
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Proto {
    H2,
    H1,
}

enum Sender {
    H2(hyper::client::conn::http2::SendRequest<Body>),
    H1(hyper::client::conn::http1::SendRequest<Body>),
}

async fn connect(
    addr: std::net::SocketAddr,
    tls: &tokio_rustls::TlsConnector,
    proto: Proto,
) -> Sender {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
    let stream = tls.connect(name, tcp).await.unwrap();
    let want: &[u8] = if proto == Proto::H2 {
        b"h2"
    } else {
        b"http/1.1"
    };
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(want), "ALPN");
    let io = TokioIo::new(stream);
    match proto {
        Proto::H2 => {
            let (send, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
                .handshake(io)
                .await
                .unwrap();
            tokio::spawn(conn);
            Sender::H2(send)
        }
        Proto::H1 => {
            let (send, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
            tokio::spawn(conn);
            Sender::H1(send)
        }
    }
}

/// Submits every entry of `subs` over HTTPS, `inflight` at a time over `conns` connections;
/// each must be acknowledged (200, newly appended).
fn run_https(
    addr: std::net::SocketAddr,
    ca: &TestCa,
    subs: &Arc<Vec<Submission>>,
    proto: Proto,
    conns: usize,
    inflight: usize,
) -> Run {
    let rt = client_runtime(if proto == Proto::H2 {
        "bench-h2"
    } else {
        "bench-h1"
    });
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(ca.root_store())
    .with_no_client_auth();
    config.alpn_protocols = vec![if proto == Proto::H2 {
        b"h2".to_vec()
    } else {
        b"http/1.1".to_vec()
    }];
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config));
    let uri: axum::http::Uri = format!("https://{addr}/add").parse().unwrap();
    let host = HeaderValue::from_str(&addr.to_string()).unwrap();
    // Connections are set up before the timed window (a keep-alive pool's steady state).
    let senders: Vec<Sender> = rt.block_on(async {
        let mut v = Vec::new();
        for _ in 0..conns {
            v.push(connect(addr, &tls, proto).await);
        }
        v
    });
    let tasks = if proto == Proto::H1 { conns } else { inflight };
    let next = Arc::new(AtomicUsize::new(0));
    let load_before = loadavg();
    let cpu0 = cpu_now();
    let t0 = Instant::now();
    let lat: Vec<Duration> = rt.block_on(async {
        let mut handles = Vec::new();
        let mut senders: Vec<Option<Sender>> = senders.into_iter().map(Some).collect();
        for t in 0..tasks {
            let c = t % conns;
            let mut sender = match &senders[c] {
                Some(Sender::H2(s)) => Sender::H2(s.clone()),
                _ => senders[c].take().expect("one HTTP/1.1 task per connection"),
            };
            let (subs, next, uri, host) = (subs.clone(), next.clone(), uri.clone(), host.clone());
            handles.push(tokio::spawn(async move {
                let mut lat = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(s) = subs.get(i) else { break };
                    let req = match &sender {
                        Sender::H2(_) => Request::post(uri.clone()),
                        Sender::H1(_) => Request::post("/add").header(header::HOST, host.clone()),
                    }
                    .header(SIGNATURE_HEADER, s.signature.clone())
                    .body(Body::from(s.entry.clone()))
                    .unwrap();
                    let start = Instant::now();
                    let resp = match &mut sender {
                        Sender::H2(send) => {
                            send.ready().await.unwrap();
                            send.send_request(req).await.unwrap()
                        }
                        Sender::H1(send) => {
                            send.ready().await.unwrap();
                            send.send_request(req).await.unwrap()
                        }
                    };
                    let status = resp.status();
                    let already = resp.headers().contains_key("airlock-already-logged");
                    let body = axum::body::to_bytes(Body::new(resp.into_body()), 4096)
                        .await
                        .unwrap();
                    lat.push(start.elapsed());
                    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
                    assert!(!already, "entry {i} was not new");
                }
                lat
            }));
        }
        let mut all = Vec::new();
        for h in handles {
            all.extend(h.await.unwrap());
        }
        all
    });
    let wall = t0.elapsed();
    let cpu1 = cpu_now();
    let load_after = loadavg();
    let (cpu, cpu_roles) = cpu_split(&cpu0, &cpu1);
    rt.shutdown_timeout(Duration::from_secs(1));
    let mut lat = lat;
    lat.sort();
    assert_eq!(lat.len(), subs.len());
    Run {
        wall,
        cpu,
        cpu_roles,
        lat,
        load_before,
        load_after,
    }
}

/// The same entries through `Log::append`, `inflight` tasks at a time.
fn run_in_process(log: &Log, subs: &Arc<Vec<Submission>>, inflight: usize) -> Run {
    let rt = client_runtime("bench-inproc");
    let next = Arc::new(AtomicUsize::new(0));
    let load_before = loadavg();
    let cpu0 = cpu_now();
    let t0 = Instant::now();
    let lat: Vec<Duration> = rt.block_on(async {
        let mut handles = Vec::new();
        for _ in 0..inflight {
            let (subs, next, log) = (subs.clone(), next.clone(), log.clone());
            handles.push(tokio::spawn(async move {
                let mut lat = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(s) = subs.get(i) else { break };
                    let start = Instant::now();
                    let placed = log.append(s.entry.to_vec()).await.unwrap();
                    lat.push(start.elapsed());
                    assert!(!placed.already_logged);
                }
                lat
            }));
        }
        let mut all = Vec::new();
        for h in handles {
            all.extend(h.await.unwrap());
        }
        all
    });
    let wall = t0.elapsed();
    let cpu1 = cpu_now();
    let load_after = loadavg();
    let (cpu, cpu_roles) = cpu_split(&cpu0, &cpu1);
    let mut lat = lat;
    lat.sort();
    Run {
        wall,
        cpu,
        cpu_roles,
        lat,
        load_before,
        load_after,
    }
}

fn row(what: &str, how: &str, r: &Run) -> String {
    format!(
        "| {what} | {how} | {:.0} /s | {} in {:.2} s | {} / {} / {} | {:.2} s ({:.0} µs per entry) | {} → {} |\n",
        r.per_sec(),
        r.lat.len(),
        r.wall.as_secs_f64(),
        ms(r.pct(0.5)),
        ms(r.pct(0.99)),
        ms(r.lat.last().copied().unwrap_or_default()),
        r.cpu.as_secs_f64(),
        r.cpu.as_secs_f64() * 1e6 / r.lat.len().max(1) as f64,
        r.load_before,
        r.load_after,
    )
}

fn roles(what: &str, r: &Run) -> String {
    let parts: Vec<String> = r
        .cpu_roles
        .iter()
        .filter(|(_, d)| !d.is_zero())
        .map(|(role, d)| {
            format!(
                "{role} {:.2} s ({:.0} µs/entry)",
                d.as_secs_f64(),
                d.as_secs_f64() * 1e6 / r.lat.len().max(1) as f64
            )
        })
        .collect();
    format!("- CPU of {what} by thread: {}.\n", parts.join(", "))
}

fn main() {
    let n = env_usize("BENCH_ENTRIES", 200_000);
    let inflight = env_usize("BENCH_INFLIGHT", 4096);
    let conns = env_usize("BENCH_CONNS", 16);
    let h1_conns = env_usize("BENCH_H1_CONNS", 256);
    let base = std::env::var("BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| std::env::temp_dir());
    std::fs::create_dir_all(&base).unwrap();
    let publisher = NoteSigner::generate("bench.test/publisher", KeyAlgorithm::Ed25519).unwrap();
    let ca = TestCa::new().unwrap();
    let id = ca.issue_server_cert(&["127.0.0.1"]).unwrap();

    eprintln!("preparing {n} signed 1 KiB submissions ...");
    let subs = Arc::new(prepare(n, &publisher, "bench.test/load"));
    let verify = verify_cost(&subs, &publisher, "bench.test/load");

    let mut runs: Vec<(String, String, Run)> = Vec::new();
    let mut note_roles = String::new();
    let mut http = |proto: Proto, conns: usize, inflight: usize| {
        let tmp = tempfile::tempdir_in(&base).unwrap();
        let log = start_log(tmp.path(), &publisher);
        let server = ServerHandle::https(log.router(), &id).unwrap();
        let name = if proto == Proto::H2 {
            "HTTP/2"
        } else {
            "HTTP/1.1"
        };
        eprintln!("{name}: {n} submissions, {inflight} in flight over {conns} connections ...");
        let r = run_https(server.addr(), &ca, &subs, proto, conns, inflight);
        drop(server);
        log.shutdown();
        let what = format!("durable appends over HTTPS ({name}, `POST /add`)");
        note_roles.push_str(&roles(&what, &r));
        let how = if proto == Proto::H2 {
            format!("{inflight} in flight on {conns} keep-alive connections")
        } else {
            format!("{conns} keep-alive connections, one request each in flight")
        };
        runs.push((what, how, r));
    };
    http(Proto::H2, conns, inflight);
    if h1_conns > 0 {
        http(Proto::H1, h1_conns, h1_conns);
    }
    {
        let tmp = tempfile::tempdir_in(&base).unwrap();
        let log = start_log(tmp.path(), &publisher);
        eprintln!("in process: {n} appends, {inflight} in flight ...");
        let r = run_in_process(&log, &subs, inflight);
        log.shutdown();
        let what = "durable appends in process (`Log::append`, same entries)".to_string();
        note_roles.push_str(&roles(&what, &r));
        runs.push((what, format!("{inflight} concurrent tasks"), r));
    }

    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default();
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let mut md = String::new();
    md.push_str(&format!(
        "\nCommand: `cargo bench -p airlock-log --bench log_load` (BENCH_ENTRIES={n}, BENCH_INFLIGHT={inflight}, BENCH_CONNS={conns}, BENCH_H1_CONNS={h1_conns})\n\n"
    ));
    md.push_str(&format!(
        "Machine: {cores} cores ({cpu}), shared with other builds; files on {} (every write fsynced). Server, log and submitters in one process on the same cores: the server as `airlock log serve` runs it (airlock-serve, 2 tokio workers, rustls, HTTP/1.1 and HTTP/2 by ALPN), the log with `max_batch` 65,536 and no witnesses, the submitters on a 2-worker tokio runtime of their own.\n\n",
        base.display()
    ));
    md.push_str("| what | submitters | acked appends/s | entries in wall time | submission→ack p50 / p99 / max | CPU time of the process (user+sys) | load average before → after |\n|---|---|---|---|---|---|---|\n");
    for (what, how, r) in &runs {
        md.push_str(&row(what, how, r));
    }
    md.push('\n');
    md.push_str(&note_roles);
    md.push_str(&format!(
        "- The signature check alone (`verify_submission`: header, key, entry hash, Ed25519 `verify_strict`), on one thread before the timed runs: {:.1} µs of CPU per submission.\n",
        verify.as_secs_f64() * 1e6
    ));
    md.push_str(
        "- Each entry is 1 KiB, distinct, and signed by a publisher key the log lists (`Airlock-Signature`, Ed25519 over origin and entry hash). The requests and their signatures are prepared before the timed window: signing is the publishers' cost, not the log's, so the submitters' CPU above is TLS and HTTP only. The log checks every signature (`verify_strict`) before the entry reaches the sequencer.\n\
         - *Acked* means the `200` answer with the entry's index, which the log gives only after the batch holding the entry is durable (tiles and entry bundles fsynced, then the guard); the bench counts an entry only on that answer and fails on any other. Batches form on their own from what is queued while the previous batch is written.\n\
         - Latency is from sending the request (connection already open) to the whole answer received. CPU time is the whole process's (server, log and submitters), read from /proc before and after the timed window; the machine is shared, so wall time moves with the other load while CPU time per entry moves less.\n",
    );
    println!("{md}");
    if std::env::var_os("AIRLOCK_BENCH_WRITE_DOCS").is_some() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/benchmarks.md");
        let text = std::fs::read_to_string(&path).unwrap();
        let heading = "## Log load (durable appends over HTTPS from many submitters)";
        let marker = "<!-- end of log load section -->";
        let new = match (text.find(heading), text.find(marker)) {
            (Some(start), Some(end)) if end > start => format!(
                "{}{md}\n{}",
                &text[..start + heading.len() + 1],
                &text[end..]
            ),
            _ => {
                // New section right after the transparency log section.
                let after = "<!-- end of transparency log section -->\n";
                let at = text
                    .find(after)
                    .map(|i| i + after.len())
                    .unwrap_or(text.len());
                format!("{}{heading}\n{md}\n{marker}\n{}", &text[..at], &text[at..])
            }
        };
        std::fs::write(&path, new).unwrap();
        eprintln!("wrote {}", path.display());
    }
}
