//! The tlog-witness status-code matrix against a real witness served over HTTPS on 127.0.0.1,
//! its persistence across restarts, and the atomicity of check-and-persist under racing requests.

use std::sync::Arc;
use std::time::Duration;

use airlock_core::tlog::{
    Checkpoint, Cosignature, CosignatureSigner, Hash, KeyAlgorithm, MemoryTree, NoteSigner,
    Signature, consistency_proof,
};
use airlock_fetch::{Fetcher, Response};
use airlock_serve::{ServerHandle, TestCa};
use airlock_witness::{FollowedLog, Witness};
use base64::Engine as _;

const ORIGIN: &str = "airlock.test/log";

struct Setup {
    _dir: tempfile::TempDir,
    state: std::path::PathBuf,
    ca: TestCa,
    log: NoteSigner,
    witness_seed: [u8; 32],
    server: ServerHandle,
    witness: Arc<Witness>,
    client: Fetcher,
}

fn tree(n: u64, tag: &str) -> MemoryTree {
    let mut t = MemoryTree::new();
    for i in 0..n {
        t.push(format!("{tag} {i}").as_bytes());
    }
    t
}

fn witness_signer(seed: &[u8; 32]) -> CosignatureSigner {
    CosignatureSigner::from_seed("airlock.test/witness", seed).unwrap()
}

fn start_witness(
    state: &std::path::Path,
    seed: &[u8; 32],
    log: &NoteSigner,
    ca: &TestCa,
) -> (Arc<Witness>, ServerHandle) {
    let w = Arc::new(
        Witness::open(
            witness_signer(seed),
            vec![FollowedLog {
                origin: ORIGIN.into(),
                keys: vec![log.verifier()],
            }],
            state,
        )
        .unwrap(),
    );
    let id = ca.issue_server_cert(&["127.0.0.1"]).unwrap();
    let server = ServerHandle::https(w.clone().router(), &id).unwrap();
    (w, server)
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("witness");
    let ca = TestCa::new().unwrap();
    let log = NoteSigner::generate(ORIGIN, KeyAlgorithm::Ed25519).unwrap();
    let witness_seed = [7u8; 32];
    let (witness, server) = start_witness(&state, &witness_seed, &log, &ca);
    let client = airlock_fetch::Fetcher::new(airlock_log::config::witness_fetcher_config(
        airlock_fetch::Trust::CaBundlePem(ca.cert_pem().as_bytes().to_vec()),
        false,
        Duration::from_secs(10),
    ))
    .unwrap();
    Setup {
        _dir: dir,
        state,
        ca,
        log,
        witness_seed,
        server,
        witness,
        client,
    }
}

fn signed(log: &NoteSigner, t: &MemoryTree) -> Vec<u8> {
    Checkpoint::new(log.name(), t.size(), t.root())
        .unwrap()
        .sign(log)
        .unwrap()
        .to_bytes()
}

fn post(s: &Setup, body: &[u8]) -> Response {
    s.client
        .post(&s.server.url("/add-checkpoint"), &[], body, 1 << 16)
        .unwrap()
}

/// The request body, built by hand so that malformed requests (e.g. 64 proof lines) can be sent.
fn add_checkpoint_body(old: u64, proof: &[Hash], note: &[u8]) -> Vec<u8> {
    let mut body = format!("old {old}\n");
    for h in proof {
        body.push_str(&base64::engine::general_purpose::STANDARD.encode(h));
        body.push('\n');
    }
    body.push('\n');
    let mut body = body.into_bytes();
    body.extend_from_slice(note);
    body
}

fn add(s: &Setup, old: u64, proof: &[Hash], note: &[u8]) -> Response {
    post(s, &add_checkpoint_body(old, proof, note))
}

fn proof(t: &MemoryTree, old: u64) -> Vec<Hash> {
    consistency_proof(t, old, t.size()).unwrap()
}

#[test]
fn every_status_code_of_add_checkpoint() {
    let s = setup();
    let t5 = tree(5, "e");
    let t8 = tree(8, "e");
    let t12 = tree(12, "e");

    // 400: malformed bodies.
    for bad in [
        &b"old 0\n"[..],
        b"new 0\n\n",
        b"old 01\n\n",
        b"old 0\nnot-base64!\n\n",
        b"old 0\n\nnot a note",
    ] {
        let r = post(&s, bad);
        assert_eq!(
            r.status,
            400,
            "{:?}: {}",
            String::from_utf8_lossy(bad),
            r.reason()
        );
    }
    // 400: more than 63 proof lines.
    let r = add(&s, 0, &[[1u8; 32]; 64], &signed(&s.log, &t5));
    assert_eq!(r.status, 400, "{}", r.reason());

    // 404: unknown origin.
    let other = NoteSigner::generate("other.test/log", KeyAlgorithm::Ed25519).unwrap();
    let r = add(&s, 0, &[], &signed(&other, &t5));
    assert_eq!(r.status, 404, "{}", r.reason());

    // 403: right origin, but signed by a key the witness does not know.
    let impostor = NoteSigner::generate(ORIGIN, KeyAlgorithm::Ed25519).unwrap();
    let r = add(&s, 0, &[], &signed(&impostor, &t5));
    assert_eq!(r.status, 403, "{}", r.reason());
    // 403: a known key's signature that does not verify (text changed after signing).
    let mut tampered = signed(&s.log, &t5);
    let pos = tampered.iter().position(|&b| b == b'\n').unwrap() + 1;
    tampered[pos] = b'6'; // size 5 -> 6
    let r = add(&s, 0, &[], &tampered);
    assert_eq!(r.status, 403, "{}", r.reason());

    // 400: old size larger than the checkpoint's.
    let r = add(&s, 9, &[], &signed(&s.log, &t5));
    assert_eq!(r.status, 400, "{}", r.reason());

    // 200: first checkpoint, from old size 0; the answer is a valid cosignature line.
    let note5 = signed(&s.log, &t5);
    let r = add(&s, 0, &[], &note5);
    assert_eq!(r.status, 200, "{}", r.reason());
    let line = String::from_utf8(r.body.clone()).unwrap();
    assert!(line.starts_with("\u{2014} airlock.test/witness ") && line.ends_with('\n'));
    let sig = Signature::parse_line(line.trim_end(), 1).unwrap();
    let cosig = Cosignature::from_signature(&sig).unwrap();
    let text = Checkpoint::new(ORIGIN, 5, t5.root()).unwrap().to_text();
    assert!(cosig.verify(&s.witness.verifier(), &text));

    // 409: old size is not the stored size; the body says the stored size.
    for old in [0u64, 3] {
        let r = add(&s, old, &proof_or_empty(&t8, old), &signed(&s.log, &t8));
        assert_eq!(r.status, 409, "{}", r.reason());
        assert_eq!(r.content_type.as_deref(), Some("text/x.tlog.size"));
        assert_eq!(r.body, b"5\n");
    }

    // 422: a consistency proof that does not verify.
    let mut bad = proof(&t8, 5);
    bad[0][0] ^= 1;
    let r = add(&s, 5, &bad, &signed(&s.log, &t8));
    assert_eq!(r.status, 422, "{}", r.reason());
    // 422: a proof for another tree (a fork of the first 5 entries).
    let fork8 = tree(8, "fork");
    let r = add(&s, 5, &proof(&fork8, 5), &signed(&s.log, &fork8));
    assert_eq!(r.status, 422, "{}", r.reason());
    // 422: same size, different root.
    let fork5 = tree(5, "fork");
    let r = add(&s, 5, &[], &signed(&s.log, &fork5));
    assert_eq!(r.status, 422, "{}", r.reason());
    assert_eq!(
        s.witness.stored_size(ORIGIN),
        5,
        "refusals must not move the state"
    );

    // 200: same size, same root (idempotent), then a consistent extension.
    let r = add(&s, 5, &[], &note5);
    assert_eq!(r.status, 200, "{}", r.reason());
    let r = add(&s, 5, &proof(&t8, 5), &signed(&s.log, &t8));
    assert_eq!(r.status, 200, "{}", r.reason());
    assert_eq!(s.witness.stored_size(ORIGIN), 8);

    // State survives a restart of the witness.
    let Setup {
        server,
        witness,
        state,
        witness_seed,
        log,
        ca,
        client,
        _dir,
    } = s;
    server.shutdown();
    drop(witness);
    let (witness, server) = start_witness(&state, &witness_seed, &log, &ca);
    assert_eq!(witness.stored_size(ORIGIN), 8);
    let s = Setup {
        server,
        witness,
        state,
        witness_seed,
        log,
        ca,
        client,
        _dir,
    };
    let r = add(&s, 0, &[], &signed(&s.log, &t12));
    assert_eq!(r.status, 409);
    assert_eq!(r.body, b"8\n");
    let r = add(&s, 8, &proof(&t12, 8), &signed(&s.log, &t12));
    assert_eq!(r.status, 200, "{}", r.reason());
}

fn proof_or_empty(t: &MemoryTree, old: u64) -> Vec<Hash> {
    if old == 0 { Vec::new() } else { proof(t, old) }
}

#[test]
fn racing_requests_never_both_advance_the_state() {
    let s = setup();
    let big = tree(64, "e");
    let base = tree(4, "e");
    assert_eq!(add(&s, 0, &[], &signed(&s.log, &base)).status, 200);
    for round in 0..5u64 {
        let old = s.witness.stored_size(ORIGIN);
        // Several consistent extensions of the same stored size, sent at once: exactly one
        // may win; the others must get 409 (their old size is no longer the stored one).
        let results: Vec<u16> = std::thread::scope(|scope| {
            let handles: Vec<_> = (1..=6u64)
                .map(|k| {
                    let s = &s;
                    let big = &big;
                    scope.spawn(move || {
                        let n = old + k + round;
                        let mut t = MemoryTree::new();
                        for i in 0..n {
                            t.push(format!("e {i}").as_bytes());
                        }
                        assert!(n <= big.size());
                        add(s, old, &proof(&t, old), &signed(&s.log, &t)).status
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(
            results.iter().filter(|&&c| c == 200).count(),
            1,
            "{results:?}"
        );
        assert!(results.iter().all(|&c| c == 200 || c == 409), "{results:?}");
        assert!(s.witness.stored_size(ORIGIN) > old);
    }
}
