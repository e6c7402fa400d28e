//! A split view: the log operator (holding the log key) runs two forks of the log and shows one
//! tree to some parties and another to others. The witness refuses to cosign the second fork,
//! so its proofs fail a witness quorum, and a client that holds a checkpoint of the first fork
//! refuses the second fork's checkpoint because no consistency proof can link them.
//!
//! An honest `Log` started as a fork halts as soon as the witness answers (first assertion);
//! the forks that follow are run as a dishonest operator would, without asking the witness,
//! and the witness is shown their checkpoints directly.

use std::sync::Arc;
use std::time::Duration;

use airlock_core::tlog::Checkpoint;
use airlock_core::tlog::tiles::TileHashReader;
use airlock_core::tlog::{
    CosignatureSigner, KeyAlgorithm, LogVerifier, NoteSigner, Policy, ProofBundle, VerifierState,
    VerifyError, consistency_proof, open_checkpoint,
};
use airlock_log::sequencer::StoreTileSource;
use airlock_log::{
    FsTileStore, Log, LogOptions, SIGNATURE_HEADER, WitnessEndpoint, request_cosignature,
    sign_submission, verify_bundle,
};
use airlock_serve::{ServerHandle, TestCa};
use airlock_witness::{FollowedLog, Witness};

struct Fork {
    log: Log,
    server: ServerHandle,
    store: Arc<FsTileStore>,
}

fn start_fork(
    dir: &std::path::Path,
    log_seed: &[u8; 32],
    publisher: &NoteSigner,
    witnesses: &[WitnessEndpoint],
    client: &Arc<airlock_fetch::Fetcher>,
    ca: &TestCa,
) -> Fork {
    let signer =
        NoteSigner::from_seed("airlock.test/log", KeyAlgorithm::Ed25519, log_seed).unwrap();
    let store = Arc::new(FsTileStore::open(&dir.join("public"), &dir.join("state")).unwrap());
    let log = Log::start(LogOptions {
        signer,
        store: store.clone(),
        publishers: vec![publisher.verifier()],
        witnesses: witnesses.to_vec(),
        witness_client: Some(client.clone()),
        max_batch: 1024,
    })
    .unwrap();
    let id = ca.issue_server_cert(&["127.0.0.1"]).unwrap();
    let server = ServerHandle::https(log.router(), &id).unwrap();
    Fork { log, server, store }
}

fn submit(f: &Fork, client: &airlock_fetch::Fetcher, publisher: &NoteSigner, entry: &str) -> u64 {
    let sig = sign_submission(publisher, f.log.origin(), entry.as_bytes()).unwrap();
    let r = client
        .post(
            &f.server.url("/add"),
            &[(SIGNATURE_HEADER, &sig)],
            entry.as_bytes(),
            1024,
        )
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.reason());
    r.reason().trim().parse().unwrap()
}

/// Asks the witness to cosign a fork's published checkpoint, as the log itself would; returns
/// the refusal.
fn show_witness(
    client: &airlock_fetch::Fetcher,
    witness: &WitnessEndpoint,
    published: &airlock_log::Published,
    store: &FsTileStore,
) -> airlock_log::WitnessCallError {
    let checkpoint = Checkpoint::new("airlock.test/log", published.size, published.root).unwrap();
    let mut known = 0;
    request_cosignature(
        client,
        witness,
        &checkpoint,
        &published.note,
        &mut known,
        &StoreTileSource(store),
    )
    .expect_err("the witness cosigned a fork")
}

fn wait_size(f: &Fork, size: u64) -> airlock_log::Published {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(f.log.wait_published(size, Duration::from_secs(30)))
        .expect("checkpoint published")
}

#[test]
fn a_forked_log_is_caught_by_the_witness_and_by_a_client_holding_the_older_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new().unwrap();
    let client = Arc::new(
        airlock_fetch::Fetcher::new(airlock_log::config::witness_fetcher_config(
            airlock_fetch::Trust::CaBundlePem(ca.cert_pem().as_bytes().to_vec()),
            false,
            Duration::from_secs(10),
        ))
        .unwrap(),
    );
    let log_seed = [42u8; 32];
    let log_key =
        NoteSigner::from_seed("airlock.test/log", KeyAlgorithm::Ed25519, &log_seed).unwrap();
    let publisher = NoteSigner::generate("airlock.test/publisher", KeyAlgorithm::Ed25519).unwrap();
    let witness = Arc::new(
        Witness::open(
            CosignatureSigner::generate("airlock.test/witness").unwrap(),
            vec![FollowedLog {
                origin: "airlock.test/log".into(),
                keys: vec![log_key.verifier()],
            }],
            &dir.path().join("witness"),
        )
        .unwrap(),
    );
    let wid = ca.issue_server_cert(&["127.0.0.1"]).unwrap();
    let wserver = ServerHandle::https(witness.clone().router(), &wid).unwrap();
    let endpoint = WitnessEndpoint {
        verifier: witness.verifier(),
        url: wserver.base_url(),
    };
    let witnesses = [witness.verifier()];

    // Fork A: the tree everyone is meant to see.
    let a = start_fork(
        &dir.path().join("a"),
        &log_seed,
        &publisher,
        std::slice::from_ref(&endpoint),
        &client,
        &ca,
    );
    for i in 0..10 {
        submit(&a, &client, &publisher, &format!("release {i}"));
    }
    let pa = wait_size(&a, 10);
    assert_eq!(pa.cosigned_by, vec!["airlock.test/witness".to_string()]);
    let held = open_checkpoint(&pa.note, &log_key.verifier(), &witnesses).unwrap();
    assert_eq!(held.checkpoint.size, 10);
    assert_eq!(held.cosignatures.len(), 1);
    let proof_a = client
        .fetch_capped(&a.server.url("/proof/7"), 1 << 20)
        .unwrap();
    verify_bundle(&proof_a, b"release 7", &log_key.verifier(), &witnesses, 1).unwrap();

    // An honest log started on another directory with the same key halts at once: the witness
    // holds size 10 of this log.
    let honest = start_fork(
        &dir.path().join("honest"),
        &log_seed,
        &publisher,
        std::slice::from_ref(&endpoint),
        &client,
        &ca,
    );
    let halt = honest
        .log
        .halted()
        .expect("a fork behind its witness halts");
    assert!(
        halt.contains("airlock.test/witness") && halt.contains("size 10"),
        "{halt}"
    );
    assert!(honest.log.published().is_none());
    honest.log.shutdown();

    // Fork B: same key, same first 5 entries, then a targeted release only some users see,
    // run without asking the witness.
    let b = start_fork(
        &dir.path().join("b"),
        &log_seed,
        &publisher,
        &[],
        &client,
        &ca,
    );
    for i in 0..5 {
        submit(&b, &client, &publisher, &format!("release {i}"));
    }
    for i in 5..12 {
        submit(&b, &client, &publisher, &format!("evil release {i}"));
    }
    let pb = wait_size(&b, 12);
    // Shown B's checkpoint, the witness refuses it: B's checkpoint carries no cosignature ...
    let refused = show_witness(&client, &endpoint, &pb, &b.store);
    assert_eq!(refused.fork_evidence(), Some(10), "{refused}");
    assert!(pb.cosigned_by.is_empty());
    assert_eq!(witness.stored_size("airlock.test/log"), 10);
    // ... so a proof of the targeted release fails a quorum of 1 witness, although the log
    // signature itself is valid.
    let proof_b = client
        .fetch_capped(&b.server.url("/proof/8"), 1 << 20)
        .unwrap();
    verify_bundle(
        &proof_b,
        b"evil release 8",
        &log_key.verifier(),
        &witnesses,
        0,
    )
    .unwrap();
    let err = verify_bundle(
        &proof_b,
        b"evil release 8",
        &log_key.verifier(),
        &witnesses,
        1,
    )
    .unwrap_err();
    assert!(err.to_string().contains("cosigned by 0"), "{err}");

    // A client that is its own witness (policy: the log key, no witness quorum) accepted A's
    // proof and holds A's checkpoint of size 10.
    let policy =
        Policy::parse(format!("log {}\nquorum none\n", log_key.verifier().to_vkey()).as_bytes())
            .unwrap();
    let client_verifier = LogVerifier::new(policy);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let accepted = client_verifier
        .verify_entry(
            &VerifierState::new(),
            &ProofBundle::parse(&proof_a).unwrap(),
            b"release 7",
            None,
            now,
        )
        .unwrap();
    let held_state = accepted.state;
    assert_eq!(held_state.checkpoint("airlock.test/log").unwrap().size, 10);
    // Shown B's bundle (size 12) with the consistency proof B's log computes from its tiles:
    // refused, the trees are not consistent.
    let source = StoreTileSource(&*b.store);
    let proof_10_12 = consistency_proof(&TileHashReader::new(12, &source), 10, 12).unwrap();
    let err = client_verifier
        .verify_entry(
            &held_state,
            &ProofBundle::parse(&proof_b).unwrap(),
            b"evil release 8",
            Some(&proof_10_12),
            now,
        )
        .unwrap_err();
    assert!(matches!(err, VerifyError::Inconsistent { .. }), "{err}");
    // A fork of exactly the held size is reported as a split view, with both notes as evidence.
    let c = start_fork(
        &dir.path().join("c"),
        &log_seed,
        &publisher,
        &[],
        &client,
        &ca,
    );
    for i in 0..10 {
        submit(&c, &client, &publisher, &format!("other release {i}"));
    }
    let pc = wait_size(&c, 10);
    let refused = show_witness(&client, &endpoint, &pc, &c.store);
    assert_eq!(refused.fork_evidence(), Some(10), "{refused}");
    let proof_c = client
        .fetch_capped(&c.server.url("/proof/3"), 1 << 20)
        .unwrap();
    let err = client_verifier
        .verify_entry(
            &held_state,
            &ProofBundle::parse(&proof_c).unwrap(),
            b"other release 3",
            None,
            now,
        )
        .unwrap_err();
    assert!(matches!(err, VerifyError::SplitView(_)), "{err}");
    // The witness refused C as well (same size, different root).
    assert_eq!(witness.stored_size("airlock.test/log"), 10);
    c.log.shutdown();

    // While the honest continuation of A is accepted by the same client.
    submit(&a, &client, &publisher, "release 10");
    let pa2 = wait_size(&a, 11);
    assert_eq!(pa2.cosigned_by.len(), 1);
    let source = StoreTileSource(&*a.store);
    let proof_10_11 = consistency_proof(&TileHashReader::new(11, &source), 10, 11).unwrap();
    let proof_a2 = client
        .fetch_capped(&a.server.url("/proof/10"), 1 << 20)
        .unwrap();
    let ok = client_verifier
        .verify_entry(
            &held_state,
            &ProofBundle::parse(&proof_a2).unwrap(),
            b"release 10",
            Some(&proof_10_11),
            now,
        )
        .unwrap();
    assert!(ok.advanced);
    a.log.shutdown();
    b.log.shutdown();
}
