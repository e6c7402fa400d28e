//! A log and two witnesses on 127.0.0.1 over real HTTPS: submit, cosign, prove, verify offline;
//! and every kind of bad submission refused without changing anything.

use airlock_core::tlog::{KeyAlgorithm, NoteSigner, open_checkpoint};
use airlock_fetch::{FetchError, Fetcher};
use airlock_log::config::witness_fetcher_config;
use airlock_log::{SIGNATURE_HEADER, sign_submission, verify_bundle};
use airlock_testbed::LocalTransparency;
use std::time::Duration;

fn fresh_client(net: &LocalTransparency) -> Fetcher {
    Fetcher::new(witness_fetcher_config(
        airlock_fetch::Trust::CaBundlePem(net.ca_pem.clone()),
        false,
        Duration::from_secs(10),
    ))
    .unwrap()
}

#[test]
fn entry_is_logged_cosigned_and_proven_offline() {
    let net = LocalTransparency::start(2).unwrap();
    let mut indices = Vec::new();
    for i in 0..5 {
        indices.push(net.submit(format!("release {i}").as_bytes()).unwrap());
    }
    assert_eq!(indices, vec![0, 1, 2, 3, 4]);
    let cp = net.wait_cosigned(4).unwrap();
    let opened = open_checkpoint(&cp, &net.log_verifier(), &net.witness_verifiers()).unwrap();
    assert_eq!(opened.checkpoint.size, 5);
    assert_eq!(opened.cosignatures.len(), 2);
    for i in 0..5u64 {
        let bundle = net.proof(i).unwrap();
        let entry = format!("release {i}");
        let v = verify_bundle(
            &bundle,
            entry.as_bytes(),
            &net.log_verifier(),
            &net.witness_verifiers(),
            2,
        )
        .unwrap();
        assert_eq!(v.index, i);
        // The proof does not hold for another entry, nor with a witness quorum not met.
        assert!(
            verify_bundle(
                &bundle,
                b"release X",
                &net.log_verifier(),
                &net.witness_verifiers(),
                2
            )
            .is_err()
        );
        assert!(
            verify_bundle(
                &bundle,
                entry.as_bytes(),
                &net.log_verifier(),
                &net.witness_verifiers()[..1],
                2
            )
            .is_err()
        );
    }
    // Not yet logged: 404.
    let err = net
        .client
        .fetch_capped(&net.log_server.url("/proof/99"), 4096)
        .unwrap_err();
    assert!(err.is_not_found(), "{err}");
}

fn state(net: &LocalTransparency) -> (Vec<u8>, Vec<(String, Vec<u8>)>) {
    let cp = net
        .client
        .fetch_capped(&net.log_server.url("/checkpoint"), 1 << 20)
        .unwrap();
    let mut files = Vec::new();
    for e in walk(&net.path().join("log")) {
        files.push((e.0, e.1));
    }
    files.sort();
    (cp, files)
}

fn walk(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else if !p.ends_with("lock") {
            out.push((p.display().to_string(), std::fs::read(&p).unwrap()));
        }
    }
    out
}

#[test]
fn bad_submissions_get_4xx_and_change_nothing() {
    let net = LocalTransparency::start(0).unwrap();
    net.submit(b"first").unwrap();
    net.wait_cosigned(0).unwrap();
    let before = state(&net);
    let url = net.log_server.url("/add");
    let origin = net.log.origin().to_string();
    let stranger = NoteSigner::generate("airlock.test/publisher", KeyAlgorithm::Ed25519).unwrap();
    let good_sig = sign_submission(&net.publisher, &origin, b"entry").unwrap();
    let big = vec![b'a'; 65_536];
    let huge = vec![b'a'; 200_000];
    type Case<'a> = (&'a str, Vec<(&'a str, String)>, &'a [u8], u16);
    let cases: Vec<Case> = vec![
        ("no signature", vec![], b"entry", 401),
        (
            "unknown key",
            vec![(
                SIGNATURE_HEADER,
                sign_submission(&stranger, &origin, b"entry").unwrap(),
            )],
            b"entry",
            401,
        ),
        (
            "signature over another entry",
            vec![(SIGNATURE_HEADER, good_sig.clone())],
            b"entrY",
            401,
        ),
        (
            "signature for another log",
            vec![(
                SIGNATURE_HEADER,
                sign_submission(&net.publisher, "other.log", b"entry").unwrap(),
            )],
            b"entry",
            401,
        ),
        (
            "malformed header",
            vec![(SIGNATURE_HEADER, "just-a-name".into())],
            b"entry",
            400,
        ),
        (
            "bad base64",
            vec![(SIGNATURE_HEADER, "airlock.test/publisher ***".into())],
            b"entry",
            400,
        ),
        (
            "empty entry",
            vec![(
                SIGNATURE_HEADER,
                sign_submission(&net.publisher, &origin, b"").unwrap(),
            )],
            b"",
            400,
        ),
        (
            "oversized by one",
            vec![(
                SIGNATURE_HEADER,
                sign_submission(&net.publisher, &origin, &big).unwrap(),
            )],
            &big,
            413,
        ),
        (
            "far oversized",
            vec![(SIGNATURE_HEADER, good_sig.clone())],
            &huge,
            413,
        ),
    ];
    for (what, headers, body, want) in cases {
        let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        // A fresh connection per case: the server may close one after refusing a large body.
        let resp = fresh_client(&net).post(&url, &h, body, 4096).unwrap();
        assert_eq!(resp.status, want, "{what}: {}", resp.reason());
        assert!(!resp.reason().is_empty(), "{what}: no reason given");
        assert_eq!(
            String::from_utf8_lossy(&resp.body)
                .trim_end()
                .lines()
                .count(),
            1,
            "{what}"
        );
    }
    // Wrong method / path do not write either.
    let err = fresh_client(&net).fetch_capped(&url, 4096).unwrap_err();
    assert!(
        matches!(err, FetchError::HttpStatus { status: 405, .. }),
        "{err}"
    );
    assert_eq!(state(&net), before);
    // And the log still works.
    assert_eq!(net.submit(b"second").unwrap(), 1);
}

/// Sends the head of a `POST /add` announcing `len` body bytes, and no body; returns the status
/// line of the answer (which must then come from the head alone).
fn status_without_body(net: &LocalTransparency, sig: &str, len: usize) -> String {
    use std::io::{Read, Write};
    let plain =
        airlock_serve::ServerHandle::start("127.0.0.1:0".parse().unwrap(), net.log.router(), None)
            .unwrap();
    let addr = plain.base_url().trim_start_matches("http://").to_string();
    let mut s = std::net::TcpStream::connect(addr.trim_end_matches('/')).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "POST /add HTTP/1.1\r\nHost: log\r\nContent-Length: {len}\r\n{SIGNATURE_HEADER}: {sig}\r\n\r\n"
    )
    .unwrap();
    let mut buf = [0u8; 256];
    let n = s
        .read(&mut buf)
        .expect("no answer before the body was sent");
    String::from_utf8_lossy(&buf[..n])
        .lines()
        .next()
        .unwrap_or("")
        .to_string()
}

#[test]
fn a_submission_is_refused_from_its_header_before_the_body_is_read() {
    let net = LocalTransparency::start(0).unwrap();
    let origin = net.log.origin().to_string();
    let stranger = NoteSigner::generate("airlock.test/publisher", KeyAlgorithm::Ed25519).unwrap();
    let stranger_sig = sign_submission(&stranger, &origin, b"x").unwrap();
    // Not a publisher: 401 without waiting for the 500 kB it announced.
    let status = status_without_body(&net, &stranger_sig, 500_000);
    assert!(status.starts_with("HTTP/1.1 401"), "{status}");
    // A publisher announcing far more than an entry can hold: 413 at once.
    let sig = sign_submission(&net.publisher, &origin, b"x").unwrap();
    let status = status_without_body(&net, &sig, 2_000_000);
    assert!(status.starts_with("HTTP/1.1 413"), "{status}");
    // Nothing was appended.
    assert_eq!(net.submit(b"first").unwrap(), 0);
}
