//! Resumable downloads against real HTTPS servers on 127.0.0.1: connections cut at random
//! points, a server that ignores Range, one that answers the wrong range, bytes held from an
//! earlier run or from another mirror, and bytes on disk that are wrong.

mod common;
mod evil;

use std::sync::Arc;

use airlock_client::{UpdateError, Updater, UpdaterConfig};
use airlock_core::mirrors::Mirror;
use airlock_fetch::{Fetcher, FetcherConfig, Trust};
use common::{HttpsRepo, TestRepo};
use evil::Misbehaviour;

/// Deterministic noise, so that every byte position matters to the hash.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

fn fetcher(servers: &[&HttpsRepo]) -> Arc<Fetcher> {
    let bundle: String = servers.iter().map(|s| s.ca.cert_pem()).collect();
    Arc::new(
        Fetcher::new(FetcherConfig {
            trust: Trust::CaBundlePem(bundle.into_bytes()),
            retries: 0,
            ..FetcherConfig::default()
        })
        .expect("fetcher"),
    )
}

fn served_path(repo: &TestRepo, path: &str) -> String {
    let hash = &repo.targets.signed.targets[path].hashes["sha256"];
    format!("/targets/{hash}.{path}")
}

/// A client directory trusting `repo`'s root, and an updater for `https` (plus `mirrors`).
fn updater(
    repo: &TestRepo,
    dir: &std::path::Path,
    https: &HttpsRepo,
    mirrors: &[(&str, &HttpsRepo)],
) -> Updater {
    let metadata = dir.join("metadata");
    if !metadata.join("root.json").exists() {
        Updater::init(&metadata, &repo.initial_root()).unwrap();
    }
    let mut servers = vec![https];
    servers.extend(mirrors.iter().map(|(_, m)| *m));
    let mut config = UpdaterConfig::new(&metadata, https.metadata_url(), fetcher(&servers))
        .with_targets_base_url(https.targets_url());
    for (name, m) in mirrors {
        config = config.with_mirror(Mirror {
            name: name.to_string(),
            metadata_url: Some(m.metadata_url()),
            targets_url: Some(m.targets_url()),
            target_paths: Vec::new(),
        });
    }
    Updater::new(config).unwrap()
}

/// Files in `dir` whose name marks a download in progress.
fn partials(dir: &std::path::Path) -> Vec<(String, u64)> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .map(|e| e.unwrap())
                .filter(|e| e.file_name().to_string_lossy().ends_with(".partial"))
                .map(|e| {
                    (
                        e.file_name().to_string_lossy().into_owned(),
                        e.metadata().unwrap().len(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The start of each `bytes=N-` Range header (0 for a request without one).
fn range_starts(ranges: &[Option<String>]) -> Vec<u64> {
    ranges
        .iter()
        .map(|r| match r {
            None => 0,
            Some(r) => r
                .strip_prefix("bytes=")
                .and_then(|r| r.strip_suffix('-'))
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("unexpected Range {r}")),
        })
        .collect()
}

#[test]
fn a_256_mib_download_cut_20_times_at_random_points_ends_with_the_right_bytes() {
    const LEN: usize = 256 << 20;
    let mut repo = TestRepo::new();
    let data = noise(7, LEN);
    repo.add_target("targets", "big.bin", &data);
    repo.publish();
    let (https, evil) = evil::serve(repo.path());
    let path = served_path(&repo, "big.bin");
    // 20 cuts, each after a random share of what is left.
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    eprintln!("seed {seed}");
    let mut left = LEN as u64;
    let mut cuts = Vec::new();
    for _ in 0..20 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let cut = 1 + seed % (left / 4).max(1);
        cuts.push(cut);
        left -= cut;
    }
    evil.plan_cuts(cuts.clone());
    evil.set(&path, Misbehaviour::Cut);

    let dir = tempfile::tempdir().unwrap();
    let mut u = updater(&repo, dir.path(), &https, &[]);
    let info = u.get_target_info("big.bin").unwrap().unwrap();
    let dest = dir.path().join("big.bin");
    u.download_target(&info, &dest).expect("download");
    assert!(std::fs::read(&dest).unwrap() == data, "wrong bytes");
    // 21 requests, each after a cut asking for the bytes from where the received ones end:
    // never from zero again, never beyond what the server had sent (bytes in flight when the
    // connection broke are lost, so a start may be below the cut).
    let starts = range_starts(&evil.ranges(&path));
    assert_eq!(starts.len(), 21, "{starts:?}");
    let mut sent = 0;
    for (i, c) in cuts.iter().enumerate() {
        sent += c;
        assert!(
            starts[i] < starts[i + 1] && starts[i + 1] <= sent,
            "request {}: {starts:?} / cuts {cuts:?}",
            i + 1
        );
    }
    assert!(partials(dir.path()).is_empty());
}

#[test]
fn a_download_cut_in_one_run_goes_on_in_the_next_and_on_another_mirror() {
    let mut repo = TestRepo::new();
    let data = noise(11, 3 << 20);
    repo.add_target("targets", "app.bin", &data);
    repo.publish();
    let (a, evil_a) = evil::serve(repo.path());
    let (b, evil_b) = evil::serve(repo.path());
    let path = served_path(&repo, "app.bin");
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("app.bin");

    // Run 1: mirror a cuts after 1 MiB, and the resumed request at once (nothing new arrives):
    // the run fails and the bytes stay on disk.
    evil_a.plan_cuts([1 << 20, 0]);
    evil_a.set(&path, Misbehaviour::Cut);
    {
        let mut u = updater(&repo, dir.path(), &a, &[]);
        let info = u.get_target_info("app.bin").unwrap().unwrap();
        let err = u.download_target(&info, &dest).unwrap_err();
        assert!(matches!(err, UpdateError::Target { .. }), "{err}");
    }
    let starts = range_starts(&evil_a.ranges(&path));
    assert!(
        starts.len() == 2 && starts[0] == 0 && starts[1] > 0 && starts[1] <= 1 << 20,
        "{starts:?}"
    );
    let held = partials(dir.path());
    assert_eq!(held.len(), 1, "{held:?}");
    let (_, held_len) = held[0];
    assert_eq!(held_len, starts[1], "{held:?}");
    assert!(!dest.exists());

    // Run 2: a fails for this file, b carries on from the bytes held.
    evil_a.set(&path, Misbehaviour::Status(503));
    let mut u = updater(&repo, dir.path(), &a, &[("b", &b)]);
    let info = u.get_target_info("app.bin").unwrap().unwrap();
    u.download_target(&info, &dest).expect("resumed on b");
    assert!(std::fs::read(&dest).unwrap() == data);
    assert_eq!(range_starts(&evil_b.ranges(&path)), [held_len]);
    assert!(partials(dir.path()).is_empty());
}

#[test]
fn a_server_that_ignores_range_or_answers_another_range_never_corrupts_the_file() {
    let mut repo = TestRepo::new();
    let data = noise(13, 1 << 20);
    repo.add_target("targets", "app.bin", &data);
    repo.publish();
    let (https, evil) = evil::serve(repo.path());
    let path = served_path(&repo, "app.bin");
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("app.bin");
    let mut u = updater(&repo, dir.path(), &https, &[]);
    let info = u.get_target_info("app.bin").unwrap().unwrap();
    let plant = || {
        // What an earlier run left: the first 300,000 bytes.
        let tag = &info.file.hashes["sha256"][..16];
        std::fs::write(
            dir.path().join(format!(".app.bin.{tag}.partial")),
            &data[..300_000],
        )
        .unwrap();
    };

    // 200 with the whole file: the bytes held are dropped and the file starts over.
    plant();
    evil.set(&path, Misbehaviour::IgnoreRange);
    u.download_target(&info, &dest).expect("download");
    assert!(std::fs::read(&dest).unwrap() == data);
    assert_eq!(
        evil.ranges(&path).last().unwrap().as_deref(),
        Some("bytes=300000-")
    );
    std::fs::remove_file(&dest).unwrap();

    // 206 for a range that starts elsewhere: refused, nothing written under the name.
    plant();
    evil.set(&path, Misbehaviour::WrongRange);
    let err = u.download_target(&info, &dest).unwrap_err();
    assert!(
        airlock_core::error_chain(&err).contains("asked for the bytes from 300000 on"),
        "{}",
        airlock_core::error_chain(&err)
    );
    assert!(!dest.exists());
}

#[test]
fn wrong_bytes_held_on_disk_are_caught_and_the_download_starts_over() {
    let mut repo = TestRepo::new();
    let data = noise(17, 1 << 20);
    repo.add_target("targets", "app.bin", &data);
    repo.publish();
    let (https, evil) = evil::serve(repo.path());
    let path = served_path(&repo, "app.bin");
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("app.bin");
    let mut u = updater(&repo, dir.path(), &https, &[]);
    let info = u.get_target_info("app.bin").unwrap().unwrap();
    // An earlier run's bytes, damaged on disk (or planted).
    let mut held = data[..500_000].to_vec();
    held[1234] ^= 0xff;
    let tag = &info.file.hashes["sha256"][..16];
    std::fs::write(dir.path().join(format!(".app.bin.{tag}.partial")), &held).unwrap();

    u.download_target(&info, &dest).expect("download");
    assert!(std::fs::read(&dest).unwrap() == data);
    // The resumed attempt failed its hash check; the honest mirror was asked again from zero
    // and is not held responsible.
    assert_eq!(range_starts(&evil.ranges(&path)), [500_000, 0]);
    let report = u.mirror_report();
    assert!(report[0].attempts.iter().all(|a| a.failure.is_none()));
    assert!(partials(dir.path()).is_empty());
}
