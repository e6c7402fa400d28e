//! Many untrusted mirrors, real HTTPS servers on 127.0.0.1: the client updates while most of
//! them are down, stalled, hostile, stale or failing, never accepts wrong bytes, and reports
//! what each mirror did.

mod common;
mod evil;

use std::sync::Arc;
use std::time::Duration;

use airlock_client::{UpdateError, Updater};
use airlock_core::mirrors::{Failure, Mirror};
use airlock_fetch::{Fetcher, FetcherConfig, Trust};
use common::{HttpsRepo, TestRepo};
use evil::Misbehaviour;

const TARGET: &str = "app/2.0/app.bin";

/// A transport trusting every given server's test CA: quick to give up on a stalled server
/// (1 s per read), no retries.
fn fetcher(servers: &[&HttpsRepo]) -> Arc<Fetcher> {
    let bundle: String = servers.iter().map(|s| s.ca.cert_pem()).collect();
    Arc::new(
        Fetcher::new(FetcherConfig {
            trust: Trust::CaBundlePem(bundle.into_bytes()),
            read_timeout: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(2),
            retries: 0,
            ..FetcherConfig::default()
        })
        .expect("fetcher"),
    )
}

fn mirror(name: &str, https: &HttpsRepo) -> Mirror {
    Mirror {
        name: name.into(),
        metadata_url: Some(https.metadata_url()),
        targets_url: Some(https.targets_url()),
        target_paths: Vec::new(),
    }
}

/// A base URL on 127.0.0.1 where nothing listens.
fn nothing_listens() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("https://127.0.0.1:{port}")
}

/// The target's served path under `/targets/` (hash-prefixed: consistent snapshots).
fn served_path(repo: &TestRepo, path: &str) -> String {
    let (dir, name) = path.rsplit_once('/').unwrap();
    let hash = &repo.targets.signed.targets[path].hashes["sha256"];
    format!("/targets/{dir}/{hash}.{name}")
}

/// The failures mirror `name` recorded.
fn failures(updater: &Updater, name: &str) -> Vec<Failure> {
    updater
        .mirror_report()
        .into_iter()
        .find(|r| r.name == name)
        .unwrap()
        .attempts
        .into_iter()
        .filter_map(|a| a.failure.map(|(f, _)| f))
        .collect()
}

#[test]
fn the_update_succeeds_from_the_one_good_mirror_among_five_failing_ones() {
    let mut repo = TestRepo::new();
    repo.add_target("targets", "app/1.0/app.bin", &vec![1u8; 4096]);
    repo.publish();
    let old_timestamp = repo.read_raw("metadata/timestamp.json");
    let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    repo.add_target("targets", TARGET, &data);
    repo.publish();

    let (stalled, stall) = evil::serve(repo.path());
    let (stale, old) = evil::serve(repo.path());
    let (failing, fail) = evil::serve(repo.path());
    let (hostile, attacker) = evil::serve(repo.path());
    let honest = HttpsRepo::serve(repo.path());
    let target_path = served_path(&repo, TARGET);
    for p in [
        "/metadata/2.root.json",
        "/metadata/timestamp.json",
        &target_path,
    ] {
        stall.set(p, Misbehaviour::StallHead);
        fail.set(p, Misbehaviour::Status(500));
    }
    // An old timestamp: valid signatures, a version below the one the client already trusts.
    old.set(
        "/metadata/timestamp.json",
        Misbehaviour::Bytes(old_timestamp),
    );
    old.set(&target_path, Misbehaviour::Status(404));
    // Honest metadata, other bytes for the release.
    let mut trojan = data.clone();
    trojan[1000] ^= 1;
    attacker.set(&target_path, Misbehaviour::Bytes(trojan));

    // The client already follows the repository (it trusts the newest timestamp).
    let client = common::Client::new(&honest, &repo.initial_root());
    client.updater().refresh().expect("first refresh");

    let down = nothing_listens();
    let fetcher = fetcher(&[&stalled, &stale, &failing, &hostile, &honest]);
    let mut config = airlock_client::UpdaterConfig::new(
        client.metadata_dir(),
        format!("{down}/metadata/"),
        fetcher,
    )
    .with_targets_base_url(format!("{down}/targets/"));
    for (name, https) in [
        ("stalled", &stalled),
        ("stale", &stale),
        ("http-500", &failing),
        ("hostile", &hostile),
        ("honest", &honest),
    ] {
        config = config.with_mirror(mirror(name, https));
    }
    let mut updater = Updater::new(config).expect("updater");
    updater.refresh().expect("refresh through the mirrors");
    let info = updater.get_target_info(TARGET).unwrap().expect("listed");
    let dest = client.target_dir().join("app.bin");
    updater.download_target(&info, &dest).expect("download");
    assert_eq!(std::fs::read(&dest).unwrap(), data);

    let down_name = format!("{down}/metadata/");
    assert_eq!(failures(&updater, &down_name), [Failure::Unreachable]);
    assert_eq!(failures(&updater, "stalled"), [Failure::Stalled]);
    assert_eq!(failures(&updater, "stale"), [Failure::Refused]);
    assert_eq!(failures(&updater, "http-500"), [Failure::HttpError]);
    // The refresh succeeded there; its release bytes were refused, and it was skipped after.
    assert_eq!(failures(&updater, "hostile"), [Failure::Refused]);
    assert!(failures(&updater, "honest").is_empty());
    let report = updater.mirror_report();
    let honest_report = report.iter().find(|r| r.name == "honest").unwrap();
    assert_eq!(honest_report.bytes, data.len() as u64);
    assert!(report.iter().find(|r| r.name == "hostile").unwrap().skipped);
    // The detail says what was wrong, naming the URL.
    let stale_report = report.iter().find(|r| r.name == "stale").unwrap();
    let (_, detail) = stale_report.attempts[0].failure.clone().unwrap();
    assert!(detail.contains("timestamp"), "{detail}");
}

#[test]
fn wrong_bytes_from_every_mirror_are_never_accepted() {
    let mut repo = TestRepo::new();
    let data = vec![7u8; 50_000];
    repo.add_target("targets", TARGET, &data);
    repo.publish();
    let (a, evil_a) = evil::serve(repo.path());
    let (b, evil_b) = evil::serve(repo.path());
    let target_path = served_path(&repo, TARGET);
    evil_a.set(&target_path, Misbehaviour::Bytes(vec![8u8; 50_000]));
    // Longer than listed: cut at the listed length + 1 and refused.
    evil_b.set(&target_path, Misbehaviour::Bytes(vec![7u8; 60_000]));

    let dir = tempfile::tempdir().unwrap();
    let metadata = dir.path().join("metadata");
    Updater::init(&metadata, &repo.initial_root()).unwrap();
    let config =
        airlock_client::UpdaterConfig::new(&metadata, a.metadata_url(), fetcher(&[&a, &b]))
            .with_targets_base_url(a.targets_url())
            .with_mirror(mirror("b", &b));
    let mut updater = Updater::new(config).unwrap();
    let info = updater.get_target_info(TARGET).unwrap().unwrap();
    let dest = dir.path().join("app.bin");
    let err = updater.download_target(&info, &dest).unwrap_err();
    assert!(matches!(err, UpdateError::NoMirror { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains(&a.targets_url()) && text.contains("b: "),
        "{text}"
    );
    assert!(!dest.exists());
    assert!(
        std::fs::read_dir(dir.path())
            .unwrap()
            .all(|e| e.unwrap().file_name() == "metadata"),
        "nothing but the metadata directory is left"
    );
}

#[test]
fn a_mirror_that_hides_a_new_root_does_not_keep_the_client_from_it() {
    let mut repo = TestRepo::new();
    repo.add_target("targets", TARGET, b"release");
    repo.publish();
    let dir = tempfile::tempdir().unwrap();
    let metadata = dir.path().join("metadata");
    Updater::init(&metadata, &repo.initial_root()).unwrap();
    // Root 2 replaces the timestamp key; everything after it is signed with the new key.
    repo.rotate_timestamp_key();
    repo.publish();
    let (hiding, evil) = evil::serve(repo.path());
    evil.set("/metadata/2.root.json", Misbehaviour::Status(404));
    let honest = HttpsRepo::serve(repo.path());

    let config = airlock_client::UpdaterConfig::new(
        &metadata,
        hiding.metadata_url(),
        fetcher(&[&hiding, &honest]),
    )
    .with_mirror(mirror("honest", &honest));
    let mut updater = Updater::new(config).unwrap();
    let summary = updater.refresh().expect("refresh");
    assert_eq!(summary.root_version, 2);
    // The hiding mirror's timestamp (new key, unknown under root 1) was refused, and the
    // refresh started again from the root on the honest mirror.
    assert_eq!(
        failures(&updater, &hiding.metadata_url()),
        [Failure::Refused]
    );
    assert!(
        honest
            .requests()
            .contains(&"/metadata/2.root.json".to_string())
    );
}

#[test]
fn a_mirror_holding_only_some_targets_is_asked_only_for_those() {
    let mut repo = TestRepo::new();
    repo.add_target("targets", TARGET, b"app release");
    repo.add_target("targets", "docs/manual.pdf", b"manual");
    repo.publish();
    let partial = HttpsRepo::serve(repo.path());
    let full = HttpsRepo::serve(repo.path());
    let dir = tempfile::tempdir().unwrap();
    let metadata = dir.path().join("metadata");
    Updater::init(&metadata, &repo.initial_root()).unwrap();
    // Mirror 0 serves metadata only; the partial mirror holds app/* and comes first for them.
    let config = airlock_client::UpdaterConfig::new(
        &metadata,
        full.metadata_url(),
        fetcher(&[&partial, &full]),
    )
    .with_mirror(Mirror {
        name: "partial".into(),
        metadata_url: None,
        targets_url: Some(partial.targets_url()),
        target_paths: vec!["app/*/*".into()],
    })
    .with_mirror(Mirror {
        name: "full".into(),
        metadata_url: None,
        targets_url: Some(full.targets_url()),
        target_paths: Vec::new(),
    });
    let mut updater = Updater::new(config).unwrap();
    for path in [TARGET, "docs/manual.pdf"] {
        let info = updater.get_target_info(path).unwrap().unwrap();
        updater
            .download_target(&info, &dir.path().join(path.replace('/', "_")))
            .unwrap();
    }
    let partial_targets: Vec<String> = partial
        .requests()
        .into_iter()
        .filter(|p| p.starts_with("/targets/"))
        .collect();
    assert_eq!(partial_targets, [served_path(&repo, TARGET)]);
    assert!(
        full.requests()
            .contains(&served_path(&repo, "docs/manual.pdf"))
    );
}

#[test]
fn unusable_mirror_settings_are_refused_before_any_request() {
    let repo = TestRepo::new();
    let https = HttpsRepo::serve(repo.path());
    let dir = tempfile::tempdir().unwrap();
    let metadata = dir.path().join("metadata");
    Updater::init(&metadata, &repo.initial_root()).unwrap();
    let base = https.config(&metadata);
    let mut ftp = mirror("ftp", &https);
    ftp.metadata_url = Some("ftp://127.0.0.1/metadata/".into());
    let err = Updater::new(base.clone().with_mirror(ftp)).unwrap_err();
    assert!(err.to_string().contains("ftp://"), "{err}");
    let mut nothing = mirror("nothing", &https);
    nothing.metadata_url = None;
    nothing.targets_url = None;
    let err = Updater::new(base.clone().with_mirror(nothing)).unwrap_err();
    assert!(
        airlock_core::error_chain(&err).contains("neither a metadata URL nor a targets URL"),
        "{}",
        airlock_core::error_chain(&err)
    );
    assert!(https.requests().is_empty());
}
