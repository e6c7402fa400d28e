//! Replays the committed fuzz corpora and crash regressions through the harnesses.
//!
//! Runs on stable Rust with no libFuzzer: a panic in any harness on any committed input fails
//! the test, naming the file. The corpora are minimised and small, so this takes seconds.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    out.sort();
    out
}

#[test]
fn every_target_has_a_corpus_and_replays_it_without_panic() {
    // Quiet the default hook: failures are collected and reported together below.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let mut failures = Vec::new();
    let mut replayed = 0;
    for (name, harness) in airlock_fuzz::TARGETS {
        let corpus = files(&fuzz_dir().join("corpus").join(name));
        assert!(!corpus.is_empty(), "fuzz/corpus/{name} is missing or empty");
        let regressions = files(&fuzz_dir().join("regressions").join(name));
        for file in corpus.iter().chain(&regressions) {
            let data = std::fs::read(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            if let Err(panic) = catch_unwind(AssertUnwindSafe(|| harness(&data))) {
                let msg = panic
                    .downcast_ref::<String>()
                    .map(String::as_str)
                    .or_else(|| panic.downcast_ref::<&str>().copied())
                    .unwrap_or("(no message)");
                failures.push(format!("{name}: {}: {msg}", file.display()));
            }
            replayed += 1;
        }
    }
    std::panic::set_hook(hook);
    assert!(
        failures.is_empty(),
        "harnesses panicked:\n{}",
        failures.join("\n")
    );
    eprintln!("replayed {replayed} inputs");
}

#[test]
fn the_fixture_world_is_valid() {
    // Every harness starts from it: if it stopped verifying, the fuzzers would only ever see
    // refusals and the corpora would prove nothing.
    let f = airlock_fuzz::fixture::Fixture::get();
    assert!(
        f.at_targets().is_some(),
        "fixture TUF repository does not verify"
    );
    let mut t = f.at_targets().unwrap();
    t.update_delegated_targets(&f.role_a, "role-a", "targets")
        .unwrap();
    t.update_delegated_targets(&f.role_c, "role-c", "role-a")
        .unwrap();
    let bundle = airlock_core::tlog::ProofBundle::parse(&f.proof_bundle).unwrap();
    let leaf = airlock_core::tlog::leaf_hash(&airlock_fuzz::fixture::entry(
        airlock_fuzz::fixture::PROVEN_INDEX,
    ));
    airlock_core::tlog::LogVerifier::new(f.policy.clone())
        .verify_leaf(
            &airlock_core::tlog::VerifierState::new(),
            &bundle,
            &leaf,
            None,
            airlock_fuzz::fixture::NOW_SECS,
        )
        .unwrap();
    let r = &f.release;
    let metadata = airlock_fuzz::fixture::release_metadata(airlock_fuzz::fixture::RELEASE_VERSION);
    let check = airlock_core::transparency::ReleaseCheck::new(
        &r.policy,
        airlock_fuzz::fixture::RELEASE_ROLE,
        airlock_fuzz::fixture::RELEASE_VERSION,
        &metadata,
    );
    for (state, bundle) in [(&r.old_state, &r.old_bundle), (&r.state, &r.bundle)] {
        assert!(matches!(
            check.verify(state, Some(bundle), None, airlock_fuzz::fixture::NOW_SECS),
            Ok(airlock_core::transparency::ReleaseStep::Accepted(_))
        ));
    }
    assert!(matches!(
        airlock_core::peer_check::check_peer_checkpoint(
            &r.policy,
            &r.old_state,
            &r.note,
            None,
            airlock_fuzz::fixture::NOW_SECS
        ),
        Ok(airlock_core::peer_check::PeerStep::NeedConsistency {
            from_size: 4,
            to_size: 7,
            ..
        })
    ));
    let req = airlock_core::tlog::AddCheckpointRequest::parse(&f.add_checkpoint).unwrap();
    airlock_core::tlog::check_add_checkpoint(&req, &[f.log.verifier()], Some(&f.old_checkpoint))
        .unwrap();
}
