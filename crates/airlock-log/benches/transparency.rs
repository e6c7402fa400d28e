//! Transparency-log benchmark (not a test): durable appends per second, proof bundles served
//! per second, witness add-checkpoint calls per second. Prints a Markdown section for
//! docs/benchmarks.md.
//!
//!     cargo bench -p airlock-log --bench transparency
//!
//! Environment: BENCH_SECS (default 10) seconds per measured phase; BENCH_DIR (default: a temp
//! dir under target/) where the log's files go (the disk being measured).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use airlock_core::tlog::witness::AddCheckpointRequest;
use airlock_core::tlog::{
    Checkpoint, CosignatureSigner, Hash, KeyAlgorithm, MemoryTree, NoteSigner, consistency_proof,
};
use airlock_log::{FsTileStore, Log, LogOptions, SIGNATURE_HEADER, sign_submission};
use airlock_serve::{ServerHandle, TestCa};
use airlock_witness::{FollowedLog, Witness};

fn secs() -> u64 {
    std::env::var("BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

struct AppendResult {
    per_sec: f64,
    total: u64,
    p50: Duration,
    p99: Duration,
    max: Duration,
}

/// In-process: `concurrency` tasks each submit 1 KiB entries back to back for `dur`.
fn bench_appends(log: &Log, concurrency: usize, dur: Duration) -> AppendResult {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let lat: Vec<Duration> = rt.block_on(async {
        let mut tasks = Vec::new();
        for t in 0..concurrency {
            let log = log.clone();
            let stop = stop.clone();
            tasks.push(tokio::spawn(async move {
                let mut lat = Vec::new();
                let mut k = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let mut entry = format!("task {t} entry {k} ").into_bytes();
                    entry.resize(1024, b'.');
                    k += 1;
                    let t0 = Instant::now();
                    log.append(entry).await.expect("append");
                    lat.push(t0.elapsed());
                }
                lat
            }));
        }
        tokio::time::sleep(dur).await;
        stop.store(true, Ordering::Relaxed);
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap());
        }
        all
    });
    let mut lat = lat;
    lat.sort();
    AppendResult {
        per_sec: lat.len() as f64 / dur.as_secs_f64(),
        total: lat.len() as u64,
        p50: percentile(&lat, 0.5),
        p99: percentile(&lat, 0.99),
        max: lat.last().copied().unwrap_or_default(),
    }
}

/// Over HTTPS: `threads` clients POST /add with signed 1 KiB entries for `dur`.
fn bench_http_appends(
    url: &str,
    ca: &[u8],
    publisher: &Arc<NoteSigner>,
    origin: &str,
    threads: usize,
    dur: Duration,
) -> AppendResult {
    let stop = Arc::new(AtomicBool::new(false));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (url, ca, publisher, origin, stop) = (
                url.to_string(),
                ca.to_vec(),
                publisher.clone(),
                origin.to_string(),
                stop.clone(),
            );
            std::thread::spawn(move || {
                let client =
                    airlock_fetch::Fetcher::new(airlock_log::config::witness_fetcher_config(
                        airlock_fetch::Trust::CaBundlePem(ca.to_vec()),
                        false,
                        Duration::from_secs(30),
                    ))
                    .unwrap();
                let mut lat = Vec::new();
                let mut k = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let mut entry = format!("http thread {t} entry {k} ").into_bytes();
                    entry.resize(1024, b'.');
                    k += 1;
                    let sig = sign_submission(&publisher, &origin, &entry).unwrap();
                    let t0 = Instant::now();
                    let r = client
                        .post(
                            &format!("{url}/add"),
                            &[(SIGNATURE_HEADER, &sig)],
                            &entry,
                            256,
                        )
                        .unwrap();
                    assert_eq!(r.status, 200);
                    lat.push(t0.elapsed());
                }
                lat
            })
        })
        .collect();
    std::thread::sleep(dur);
    stop.store(true, Ordering::Relaxed);
    let mut lat: Vec<Duration> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    lat.sort();
    AppendResult {
        per_sec: lat.len() as f64 / dur.as_secs_f64(),
        total: lat.len() as u64,
        p50: percentile(&lat, 0.5),
        p99: percentile(&lat, 0.99),
        max: lat.last().copied().unwrap_or_default(),
    }
}

/// `threads` clients GET /proof/<i> for pseudo-random i over HTTPS with keep-alive.
fn bench_proofs(url: &str, ca: &[u8], size: u64, threads: usize, dur: Duration) -> f64 {
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (url, ca, stop, count) =
                (url.to_string(), ca.to_vec(), stop.clone(), count.clone());
            std::thread::spawn(move || {
                let client =
                    airlock_fetch::Fetcher::new(airlock_log::config::witness_fetcher_config(
                        airlock_fetch::Trust::CaBundlePem(ca.to_vec()),
                        false,
                        Duration::from_secs(30),
                    ))
                    .unwrap();
                let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ (t as u64 + 1);
                while !stop.load(Ordering::Relaxed) {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let i = x % size;
                    client
                        .fetch_capped(&format!("{url}/proof/{i}"), 1 << 20)
                        .unwrap();
                    count.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    std::thread::sleep(dur);
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        h.join().unwrap();
    }
    count.load(Ordering::Relaxed) as f64 / dur.as_secs_f64()
}

/// `logs` logs in parallel, each sending successive checkpoints (one entry more each time,
/// with a consistency proof) to one witness over HTTPS.
fn bench_witness(dir: &std::path::Path, logs: usize, dur: Duration) -> (f64, u64) {
    let ca = TestCa::new().unwrap();
    let keys: Vec<NoteSigner> = (0..logs)
        .map(|i| {
            NoteSigner::generate(&format!("bench.test/log{i}"), KeyAlgorithm::Ed25519).unwrap()
        })
        .collect();
    let witness = Arc::new(
        Witness::open(
            CosignatureSigner::generate("bench.test/witness").unwrap(),
            keys.iter()
                .map(|k| FollowedLog {
                    origin: k.name().to_string(),
                    keys: vec![k.verifier()],
                })
                .collect(),
            &dir.join("witness"),
        )
        .unwrap(),
    );
    let id = ca.issue_server_cert(&["127.0.0.1"]).unwrap();
    let server = ServerHandle::https(witness.clone().router(), &id).unwrap();
    let url = server.url("/add-checkpoint");
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let handles: Vec<_> = keys
        .into_iter()
        .map(|key| {
            let (url, ca, stop, count) = (
                url.clone(),
                ca.cert_pem().as_bytes().to_vec(),
                stop.clone(),
                count.clone(),
            );
            std::thread::spawn(move || {
                let client =
                    airlock_fetch::Fetcher::new(airlock_log::config::witness_fetcher_config(
                        airlock_fetch::Trust::CaBundlePem(ca.to_vec()),
                        false,
                        Duration::from_secs(30),
                    ))
                    .unwrap();
                let mut tree = MemoryTree::new();
                let mut old = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    tree.push(format!("entry {}", tree.size()).as_bytes());
                    let proof: Vec<Hash> = if old == 0 {
                        Vec::new()
                    } else {
                        consistency_proof(&tree, old, tree.size()).unwrap()
                    };
                    let note = Checkpoint::new(key.name(), tree.size(), tree.root())
                        .unwrap()
                        .sign(&key)
                        .unwrap()
                        .to_bytes();
                    let r = client
                        .post(
                            &url,
                            &[],
                            &AddCheckpointRequest::new(old, proof, &note)
                                .unwrap()
                                .to_bytes(),
                            4096,
                        )
                        .unwrap();
                    assert_eq!(r.status, 200, "{}", r.reason());
                    old = tree.size();
                    count.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    std::thread::sleep(dur);
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        h.join().unwrap();
    }
    let n = count.load(Ordering::Relaxed);
    (n as f64 / dur.as_secs_f64(), n)
}

fn main() {
    let dur = Duration::from_secs(secs());
    let base = std::env::var("BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| std::env::temp_dir());
    std::fs::create_dir_all(&base).unwrap();
    let tmp = tempfile::tempdir_in(&base).unwrap();
    let ca = TestCa::new().unwrap();
    let ca_pem = ca.cert_pem().as_bytes().to_vec();
    let log_key = NoteSigner::generate("bench.test/log", KeyAlgorithm::Ed25519).unwrap();
    let publisher =
        Arc::new(NoteSigner::generate("bench.test/publisher", KeyAlgorithm::Ed25519).unwrap());
    let store = FsTileStore::open(&tmp.path().join("public"), &tmp.path().join("state")).unwrap();
    let log = Log::start(LogOptions {
        signer: log_key,
        store: Arc::new(store),
        publishers: vec![publisher.verifier()],
        witnesses: Vec::new(),
        witness_client: None,
        max_batch: 65_536,
    })
    .unwrap();

    eprintln!("appends (in-process), {} s ...", dur.as_secs());
    let concurrency = 8192;
    let a = bench_appends(&log, concurrency, dur);
    let id = ca.issue_server_cert(&["127.0.0.1"]).unwrap();
    let server = ServerHandle::https(log.router(), &id).unwrap();
    eprintln!("appends (HTTPS), {} s ...", dur.as_secs());
    let http_threads = 64;
    let h = bench_http_appends(
        &server.base_url(),
        &ca_pem,
        &publisher,
        log.origin(),
        http_threads,
        dur,
    );
    let size = log.published().map(|p| p.size).unwrap_or(0);
    eprintln!(
        "proofs over a log of {size} entries, {} s ...",
        dur.as_secs()
    );
    let proof_threads = 8;
    let p = bench_proofs(&server.base_url(), &ca_pem, size, proof_threads, dur);
    let t0 = Instant::now();
    let mut n = 0u64;
    while t0.elapsed() < Duration::from_secs(2) {
        log.proof_bundle(n * 7919 % size).unwrap();
        n += 1;
    }
    let p_inproc = n as f64 / t0.elapsed().as_secs_f64();
    drop(server);
    log.shutdown();
    eprintln!("witness, {} s ...", dur.as_secs());
    let witness_logs = 4;
    let (w, wn) = bench_witness(tmp.path(), witness_logs, dur);

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
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "Command: `cargo bench -p airlock-log --bench transparency` (BENCH_SECS={})",
        dur.as_secs()
    );
    println!();
    println!(
        "Machine: {cores} cores ({cpu}), files on {} (ext4 on a virtual disk); load average at the end: {}",
        base.display(),
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!();
    println!("| what | result | detail |");
    println!("|---|---|---|");
    println!(
        "| durable appends, in-process (sequencer + fsynced tiles, 1 KiB entries) | {:.0} /s | {} acked in {} s by {concurrency} concurrent submitters; submission→ack p50 {}, p99 {}, max {} |",
        a.per_sec,
        a.total,
        dur.as_secs(),
        ms(a.p50),
        ms(a.p99),
        ms(a.max)
    );
    println!(
        "| durable appends over HTTPS (`POST /add`, signed 1 KiB entries) | {:.0} /s | {} acked in {} s by {http_threads} client threads on the same 2 cores; p50 {}, p99 {}, max {} |",
        h.per_sec,
        h.total,
        dur.as_secs(),
        ms(h.p50),
        ms(h.p99),
        ms(h.max)
    );
    println!(
        "| proof bundles served over HTTPS (`GET /proof/<i>`) | {:.0} /s | {proof_threads} keep-alive client threads, random entries of a {size}-entry log |",
        p
    );
    println!(
        "| proof bundles built in-process (`Log::proof_bundle`) | {:.0} /s | one thread, tiles from the page cache |",
        p_inproc
    );
    println!(
        "| witness `add-checkpoint` over HTTPS | {:.0} /s | {wn} cosigned in {} s, {witness_logs} logs in parallel, each call verified, consistency-checked and fsynced |",
        w,
        dur.as_secs()
    );
}
