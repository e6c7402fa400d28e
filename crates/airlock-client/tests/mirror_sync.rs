//! `mirror_sync`: a mirror filled through the client's trust code, served by a plain static
//! server, read by clients; root history checked as a signature chain; proof bundles carried
//! for a repository that requires binary transparency.

mod common;
mod evil;

use airlock_client::mirror_sync::{MirrorDirs, SyncError, sync};
use airlock_client::{Updater, UpdaterConfig};
use common::{HttpsRepo, TestRepo, ed25519, tlog};
use evil::Misbehaviour;

fn source_config(https: &HttpsRepo, dirs: &MirrorDirs) -> UpdaterConfig {
    UpdaterConfig::new(dirs.metadata_state(), https.metadata_url(), https.fetcher())
        .with_targets_base_url(https.targets_url())
}

fn metadata_names(dirs: &MirrorDirs) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dirs.public.join("metadata"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn a_mirror_started_from_a_later_root_carries_the_whole_root_history() {
    let mut repo = TestRepo::new();
    repo.add_target("targets", "app.bin", b"app v1");
    repo.publish();
    repo.rotate_root_keys(vec![ed25519()], 1);
    repo.rotate_root_keys(vec![ed25519()], 1);
    repo.publish();
    let source = HttpsRepo::serve(repo.path());
    let dir = tempfile::tempdir().unwrap();
    let dirs = MirrorDirs::new(dir.path());
    // The operator trusts root version 3.
    let report = sync(source_config(&source, &dirs), &dirs, &repo.root_history[2]).unwrap();
    assert_eq!(report.root_version, 3);
    assert_eq!(report.targets_fetched, 1);
    let names = metadata_names(&dirs);
    for v in 1..=3 {
        assert!(names.contains(&format!("{v}.root.json")), "{names:?}");
    }

    // A client that still trusts root 1 updates through the mirror.
    let mirror = HttpsRepo::serve(&dirs.public);
    let client = common::Client::new(&mirror, &repo.initial_root());
    let mut u = client.updater();
    assert_eq!(u.refresh().unwrap().root_version, 3);
    let dest = client.target_dir().join("app.bin");
    u.fetch_target("app.bin", &dest, &mut |_, _| {}).unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), b"app v1");

    // Nothing new: nothing fetched, the same files served.
    let again = sync(source_config(&source, &dirs), &dirs, &[]).unwrap();
    assert_eq!((again.targets_fetched, again.targets_present), (0, 1));
    assert_eq!(metadata_names(&dirs), names);

    // The public tree lost (the state kept): the next sync rebuilds it, history included.
    std::fs::remove_dir_all(&dirs.public).unwrap();
    let rebuilt = sync(source_config(&source, &dirs), &dirs, &[]).unwrap();
    assert_eq!(rebuilt.targets_fetched, 1);
    assert_eq!(metadata_names(&dirs), names);
}

#[test]
fn a_forged_old_root_is_refused_and_nothing_is_published() {
    let mut repo = TestRepo::new();
    repo.add_target("targets", "app.bin", b"app v1");
    repo.publish();
    let genuine_root_1 = repo.initial_root();
    repo.rotate_root_keys(vec![ed25519()], 1);
    repo.publish();
    let (source, evil) = evil::serve(repo.path());
    // Root 1 replaced by one the attacker made (self-signed, other keys).
    let mut forged = TestRepo::new();
    forged.publish();
    evil.set(
        "/metadata/1.root.json",
        Misbehaviour::Bytes(forged.initial_root()),
    );
    let dir = tempfile::tempdir().unwrap();
    let dirs = MirrorDirs::new(dir.path());
    let err = sync(source_config(&source, &dirs), &dirs, &repo.root_history[1]).unwrap_err();
    assert!(matches!(err, SyncError::RootHistory { .. }), "{err:?}");
    assert!(!dirs.public.join("metadata").exists());
    // The genuine history syncs.
    evil.set("/metadata/1.root.json", Misbehaviour::Bytes(genuine_root_1));
    sync(source_config(&source, &dirs), &dirs, &repo.root_history[1]).unwrap();
    assert!(metadata_names(&dirs).contains(&"1.root.json".to_string()));
}

#[test]
fn a_repository_that_requires_transparency_is_mirrored_with_its_proof_bundles() {
    let net = airlock_testbed::LocalTransparency::start(2).expect("testbed");
    let mut repo = TestRepo::new();
    tlog::set_policy(&mut repo, Some(&tlog::policy_text(&net)));
    repo.write_root();
    repo.add_target("targets", "app.bin", b"app v1");
    repo.publish();
    let mut logger = tlog::Logger::new();
    logger.log_new(&repo, &net);
    let source = tlog::serve_with_log_mirror(&repo, &net);
    let dir = tempfile::tempdir().unwrap();
    let dirs = MirrorDirs::new(dir.path());
    let mut config = source_config(&source, &dirs);
    config.fetcher = tlog::fetcher(&source, &[&net]);
    config.log_url = Some(source.server.url("/log/"));
    sync(config, &dirs, &repo.initial_root()).expect("sync");
    let names = metadata_names(&dirs);
    assert!(
        names
            .iter()
            .any(|n| n.ends_with(".targets.json.tlog-proof")),
        "{names:?}"
    );

    // A client of the mirror (tiles from the source's log mirror) verifies the proofs.
    let mirror = HttpsRepo::serve(&dirs.public);
    let mut client = tlog::client(&mirror, &repo.initial_root(), &[&net]);
    client.config.fetcher = {
        let mut c = tlog::fetcher_config(&mirror, &[&net]);
        let mut pem = match c.trust {
            airlock_fetch::Trust::CaBundlePem(p) => p,
            _ => unreachable!(),
        };
        pem.extend_from_slice(source.ca.cert_pem().as_bytes());
        c.trust = airlock_fetch::Trust::CaBundlePem(pem);
        std::sync::Arc::new(airlock_fetch::Fetcher::new(c).unwrap())
    };
    client.config.log_url = Some(source.server.url("/log/"));
    let mut u: Updater = client.updater();
    u.refresh()
        .expect("refresh through the mirror, proofs checked");
    let dest = client.target_dir().join("app.bin");
    u.fetch_target("app.bin", &dest, &mut |_, _| {}).unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), b"app v1");
}

/// The mirror serves the log's tiles too, checked against the checkpoints its bundles carry:
/// a client that points `log_url` at the mirror proves the log grew consistently from the
/// mirror alone. Tiles that do not make up the checkpoint's tree are refused (nothing is
/// published), and a tile damaged on the mirror's disk is fetched again.
#[test]
fn the_mirror_serves_the_logs_tiles_checked_against_the_checkpoints() {
    let net = airlock_testbed::LocalTransparency::start(2).expect("testbed");
    // More than one full tile of entries, so the tree has full and partial tiles.
    let filler: Vec<Vec<u8>> = (0..300u32)
        .map(|i| format!("filler {i}").into_bytes())
        .collect();
    let filler: Vec<&[u8]> = filler.iter().map(Vec::as_slice).collect();
    tlog::submit_filler(&net, &filler);
    let mut repo = TestRepo::new();
    tlog::set_policy(&mut repo, Some(&tlog::policy_text(&net)));
    repo.write_root();
    repo.add_target("targets", "app.bin", b"app v1");
    repo.publish();
    let mut logger = tlog::Logger::new();
    logger.log_new(&repo, &net);
    // A copy of the log's public tree with one hash changed in the first full tile.
    let bad_log = tempfile::tempdir().unwrap();
    let copy = std::process::Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", net.public_dir().display()))
        .arg(bad_log.path())
        .status()
        .unwrap();
    assert!(copy.success());
    let tile = bad_log.path().join("tile/0/000");
    let mut bytes = std::fs::read(&tile).unwrap();
    assert_eq!(bytes.len(), 256 * 32);
    bytes[32 * 9] ^= 1;
    std::fs::remove_file(&tile).unwrap();
    std::fs::write(&tile, &bytes).unwrap();
    let source = HttpsRepo::serve_with(
        repo.path(),
        axum::Router::new()
            .nest_service("/log", airlock_serve::static_dir_router(net.public_dir()))
            .nest_service("/bad-log", airlock_serve::static_dir_router(bad_log.path())),
    );
    let dir = tempfile::tempdir().unwrap();
    let dirs = MirrorDirs::new(dir.path());
    let config = |log: &str| {
        let mut config = source_config(&source, &dirs);
        config.fetcher = tlog::fetcher(&source, &[&net]);
        config.log_url = Some(source.server.url(log));
        config
    };

    let err = sync(config("/bad-log/"), &dirs, &repo.initial_root()).unwrap_err();
    assert!(
        matches!(
            &err,
            SyncError::Tiles {
                source: airlock_client::mirror_sync::TileSyncFailure::Check(_),
                ..
            }
        ),
        "{err:?}"
    );
    assert!(!dirs.public.join("metadata").exists());
    assert!(!dirs.public.join("log").exists());

    let report = sync(config("/log/"), &dirs, &repo.initial_root()).expect("sync");
    assert!(report.tiles_fetched >= 3, "{report:?}");
    assert_eq!(
        std::fs::read(dirs.public.join("log/tile/0/000")).unwrap(),
        std::fs::read(net.public_dir().join("tile/0/000")).unwrap()
    );

    // A client that takes everything from the mirror, tiles included.
    let mirror = HttpsRepo::serve(&dirs.public);
    let client = tlog::client(&mirror, &repo.initial_root(), &[&net]);
    client.updater().refresh().expect("first refresh");

    // A new release, logged after more entries: the client holds the old checkpoint and must
    // prove the log grew consistently, from the mirror's tiles.
    tlog::submit_filler(&net, &[b"more filler".as_slice(); 1]);
    repo.add_target("targets", "app.bin", b"app v2");
    repo.publish();
    logger.log_new(&repo, &net);
    let again = sync(config("/log/"), &dirs, &[]).expect("second sync");
    assert!(again.tiles_fetched >= 1, "{again:?}");
    // Without the mirror's tiles the proof cannot be made: they are what the client uses.
    let log_dir = dirs.public.join("log");
    let away = dir.path().join("log.away");
    std::fs::rename(&log_dir, &away).unwrap();
    let err = client.updater().refresh().unwrap_err();
    assert!(airlock_core::error_chain(&err).contains("tiles"), "{err}");
    std::fs::rename(&away, &log_dir).unwrap();
    let mut u = client.updater();
    u.refresh()
        .expect("refresh with a consistency proof from the mirror's tiles");
    let dest = client.target_dir().join("app.bin");
    u.fetch_target("app.bin", &dest, &mut |_, _| {}).unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), b"app v2");

    // A tile damaged on the mirror's disk is replaced by the next sync.
    let placed = dirs.public.join("log/tile/0/000");
    let good = std::fs::read(&placed).unwrap();
    let mut damaged = good.clone();
    damaged[100] ^= 1;
    std::fs::remove_file(&placed).unwrap();
    std::fs::write(&placed, &damaged).unwrap();
    sync(config("/log/"), &dirs, &[]).expect("sync after damage");
    assert_eq!(std::fs::read(&placed).unwrap(), good);
}
