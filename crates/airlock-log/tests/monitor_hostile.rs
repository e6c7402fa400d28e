//! The monitor exists to distrust the log it walks: a log (with a valid key) that signs a
//! checkpoint claiming an absurd tree size must get an error, not crash the monitor by making it
//! reserve memory for that many leaves.

use std::time::Duration;

use airlock_core::tlog::{Checkpoint, KeyAlgorithm, NoteSigner};
use airlock_log::monitor::walk;
use airlock_serve::{ServerHandle, TestCa};
use axum::Router;
use axum::routing::get;

#[test]
fn a_checkpoint_claiming_a_huge_size_is_an_error_not_a_crash() {
    let log_key = NoteSigner::generate("hostile.test/log", KeyAlgorithm::Ed25519).unwrap();
    let note = Checkpoint::new(log_key.name(), u64::MAX, [7; 32])
        .unwrap()
        .sign(&log_key)
        .unwrap()
        .to_bytes();
    let ca = TestCa::new().unwrap();
    let identity = ca.issue_server_cert(&["127.0.0.1"]).unwrap();
    let app = Router::new().route("/checkpoint", get(move || async move { note.clone() }));
    let server = ServerHandle::https(app, &identity).unwrap();
    let client = airlock_fetch::Fetcher::new(airlock_log::config::witness_fetcher_config(
        airlock_fetch::Trust::CaBundlePem(ca.cert_pem().as_bytes().to_vec()),
        false,
        Duration::from_secs(10),
    ))
    .unwrap();

    let walked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        walk(
            &client,
            &server.base_url(),
            &log_key.verifier(),
            &[],
            None,
            |_, _| {},
        )
    }));
    let err = match walked {
        Ok(Err(e)) => e.to_string(),
        Ok(Ok(_)) => panic!("a log serving no entries was accepted"),
        Err(_) => panic!("the monitor panicked on a checkpoint claiming size u64::MAX"),
    };
    assert!(err.contains("tile/entries/000"), "{err}");
    server.shutdown();
}
