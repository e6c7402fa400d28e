//! `POST /add` with many submitters at once: the log batches concurrent submissions into one
//! sequencing round, so a refused submission must neither pass with the good ones nor sink
//! them. Good and bad submissions race from many threads; each bad one (a signature over
//! another entry, a key the log does not list, a signature made for another log) is refused
//! with 401 and never appended, and every good one is acknowledged with its own index.

use std::sync::Arc;
use std::time::Duration;

use airlock_core::tlog::{KeyAlgorithm, NoteSigner};
use airlock_fetch::Fetcher;
use airlock_log::{FsTileStore, Log, LogOptions, SIGNATURE_HEADER, sign_submission};
use airlock_serve::ServerHandle;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Good,
    /// Signed by the publisher key, over another entry.
    BadSignature,
    /// Signed by a key of the same name that the log does not list.
    UnknownKey,
    /// Signed by the publisher key for another log's origin.
    OtherOrigin,
}

fn kind_of(i: usize) -> Kind {
    match i % 8 {
        3 => Kind::BadSignature,
        5 => Kind::UnknownKey,
        7 => Kind::OtherOrigin,
        _ => Kind::Good,
    }
}

/// The whole answer (`Response::reason` is its first line only).
fn text(r: &airlock_fetch::Response) -> String {
    String::from_utf8_lossy(&r.body).into_owned()
}

#[test]
fn refused_submissions_neither_pass_nor_sink_the_good_ones_they_race_with() {
    let dir = tempfile::tempdir().unwrap();
    let publisher = NoteSigner::generate("airlock.test/publisher", KeyAlgorithm::Ed25519).unwrap();
    let impostor = NoteSigner::generate("airlock.test/publisher", KeyAlgorithm::Ed25519).unwrap();
    let store = FsTileStore::open(&dir.path().join("public"), &dir.path().join("state")).unwrap();
    let log = Log::start(LogOptions {
        signer: NoteSigner::generate("airlock.test/log", KeyAlgorithm::Ed25519).unwrap(),
        store: Arc::new(store),
        publishers: vec![publisher.verifier()],
        witnesses: Vec::new(),
        witness_client: None,
        max_batch: 65_536,
    })
    .unwrap();
    let server = ServerHandle::http(log.router()).unwrap();
    let url = server.url("/add");
    let origin = log.origin().to_string();
    let client = Arc::new(
        Fetcher::new(airlock_log::config::witness_fetcher_config(
            airlock_fetch::Trust::WebPki,
            true,
            Duration::from_secs(30),
        ))
        .unwrap(),
    );

    let (threads, per_thread) = (16, 24);
    let results: Vec<(usize, Kind, u16, String)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (client, url, origin, publisher, impostor) =
                    (&client, &url, &origin, &publisher, &impostor);
                s.spawn(move || {
                    (0..per_thread)
                        .map(|k| {
                            let i = t * per_thread + k;
                            let kind = kind_of(i);
                            let entry = format!("entry {i}");
                            let sig = match kind {
                                Kind::Good => sign_submission(publisher, origin, entry.as_bytes()),
                                Kind::BadSignature => {
                                    sign_submission(publisher, origin, b"another entry")
                                }
                                Kind::UnknownKey => {
                                    sign_submission(impostor, origin, entry.as_bytes())
                                }
                                Kind::OtherOrigin => sign_submission(
                                    publisher,
                                    "airlock.test/other-log",
                                    entry.as_bytes(),
                                ),
                            }
                            .unwrap();
                            let r = client
                                .post(url, &[(SIGNATURE_HEADER, &sig)], entry.as_bytes(), 4096)
                                .unwrap();
                            (i, kind, r.status, text(&r))
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });

    let mut indexes = Vec::new();
    for (i, kind, status, body) in &results {
        match kind {
            Kind::Good => {
                assert_eq!(*status, 200, "good entry {i}: {body}");
                indexes.push(body.lines().next().unwrap().parse::<u64>().unwrap());
            }
            _ => {
                assert_eq!(*status, 401, "{kind:?} entry {i} was not refused: {body}");
                let expected = match kind {
                    Kind::UnknownKey => "is not a publisher key of this log",
                    _ => "does not verify over this entry for this log",
                };
                assert!(body.contains(expected), "{kind:?} entry {i}: {body}");
            }
        }
    }
    // Every good submission has an index of its own, and the tree holds exactly them.
    let good = indexes.len() as u64;
    indexes.sort_unstable();
    indexes.dedup();
    assert_eq!(indexes.len() as u64, good);
    assert_eq!(indexes.last().copied(), Some(good - 1));
    let published = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(log.wait_published(good, Duration::from_secs(30)))
        .unwrap();
    assert_eq!(published.size, good, "only the good entries were appended");

    // None of the refused entries is in the log: each, now properly signed, is appended as new
    // (a good one sent again is answered with its existing index instead).
    for (i, kind, _, _) in results.iter().filter(|r| r.1 != Kind::Good).take(3) {
        let entry = format!("entry {i}");
        let sig = sign_submission(&publisher, &origin, entry.as_bytes()).unwrap();
        let r = client
            .post(&url, &[(SIGNATURE_HEADER, &sig)], entry.as_bytes(), 4096)
            .unwrap();
        let answer = text(&r);
        assert_eq!(r.status, 200, "{kind:?} entry {i}: {answer}");
        assert!(
            !answer.contains("already logged"),
            "{kind:?} entry {i} had been appended: {answer}"
        );
    }
    let (i, _, _, body) = results.iter().find(|r| r.1 == Kind::Good).unwrap();
    let entry = format!("entry {i}");
    let sig = sign_submission(&publisher, &origin, entry.as_bytes()).unwrap();
    let r = client
        .post(&url, &[(SIGNATURE_HEADER, &sig)], entry.as_bytes(), 4096)
        .unwrap();
    let answer = text(&r);
    assert_eq!(r.status, 200, "{answer}");
    assert_eq!(answer, format!("{body}already logged\n"));
    drop(server);
    log.shutdown();
}
