//! Delta updates against a real HTTPS server on 127.0.0.1: a client holding the previous
//! version fetches the signed patch instead of the target, and every way the patch can fail
//! (wrong bytes on the mirror, wrong output, a local file that is not the listed base) ends
//! with the right bytes from the full download, or, metered, with nothing changed.

mod common;

use std::path::Path;

use airlock_client::UpdateError;
use airlock_client::delta::DeliveryMethod;
use airlock_core::delta::{FORMAT_BSDIFF4, FileRef, Patch, field_value, patch_path};
use airlock_core::tuf::TargetFile;
use common::{HttpsRepo, TestRepo};

const TARGET: &str = "app/app.bin";

/// Bytes that do not compress (a release binary's worth of entropy), from a seed.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// v2 is v1 with 4 KiB rewritten in the middle and 1000 bytes appended.
fn versions(len: usize) -> (Vec<u8>, Vec<u8>) {
    let v1 = noise(len, 7);
    let mut v2 = v1.clone();
    let mid = len / 2;
    v2[mid..mid + 4096].copy_from_slice(&noise(4096, 99));
    v2.extend_from_slice(&noise(1000, 5));
    (v1, v2)
}

fn sha256(b: &[u8]) -> String {
    TargetFile::from_bytes(b).hashes["sha256"].clone()
}

struct Setup {
    repo: TestRepo,
    https: HttpsRepo,
    v1: Vec<u8>,
    v2: Vec<u8>,
    patch_path: String,
}

/// A repository listing TARGET = v2 with a patch from v1 whose metadata entry is `listed`
/// (the patch made from v1 to `patch_to`) and whose served bytes are `served` (default: the
/// listed ones).
fn setup(len: usize, patch_to: Option<&[u8]>, served: Option<&[u8]>) -> Setup {
    let (v1, v2) = versions(len);
    let patch = airlock_repo::delta::make_patch(&v1, patch_to.unwrap_or(&v2)).expect("patch");
    let entry = Patch {
        format: FORMAT_BSDIFF4.into(),
        path: patch_path(TARGET, &sha256(&v1)),
        file: FileRef {
            length: patch.len() as u64,
            hashes: TargetFile::from_bytes(&patch).hashes,
        },
        base: FileRef {
            length: v1.len() as u64,
            hashes: TargetFile::from_bytes(&v1).hashes,
        },
    };
    let mut repo = TestRepo::new();
    let mut file = TargetFile::from_bytes(&v2);
    file.custom = Some(Box::new(
        serde_json::json!({ "version": "2", "delta": field_value(std::slice::from_ref(&entry)) }),
    ));
    repo.add_target_file("targets", TARGET, file, &v2);
    let (dir, name) = entry.path.rsplit_once('/').expect("dir");
    let patch_sha = sha256(&patch);
    repo.write_raw(
        &format!("targets/{dir}/{patch_sha}.{name}"),
        served.unwrap_or(&patch),
    );
    repo.publish();
    let https = HttpsRepo::serve(repo.path());
    Setup {
        repo,
        https,
        v1,
        v2,
        patch_path: entry.path,
    }
}

impl Setup {
    fn client(&self) -> common::Client {
        common::Client::new(&self.https, &self.repo.initial_root())
    }

    fn requested(&self, path: &str) -> bool {
        self.https
            .requests()
            .iter()
            .any(|r| r.ends_with(path.rsplit('/').next().unwrap_or(path)))
    }

    fn requested_target(&self) -> bool {
        self.https
            .requests()
            .iter()
            .any(|r| r.starts_with("/targets/app/") && r.ends_with(".app.bin"))
    }
}

fn deliver(
    client: &common::Client,
    config: impl FnOnce(&mut airlock_client::UpdaterConfig),
    dest: &Path,
) -> Result<airlock_client::delta::Delivery, UpdateError> {
    let mut cfg = client.config.clone();
    config(&mut cfg);
    let mut updater = airlock_client::Updater::new(cfg).expect("updater");
    updater.refresh().expect("refresh");
    let info = updater
        .get_target_info(TARGET)
        .expect("search")
        .expect("listed");
    updater.deliver_target(&info, dest, &mut |_, _| {})
}

#[test]
fn a_small_change_moves_the_patch_not_the_target() {
    let s = setup(8 << 20, None, None);
    let client = s.client();
    let dest = client.target_dir().join("app.bin");
    std::fs::create_dir_all(client.target_dir()).unwrap();
    std::fs::write(&dest, &s.v1).unwrap();
    let d = deliver(&client, |_| {}, &dest).expect("delivered");
    assert_eq!(d.method, DeliveryMethod::Delta, "{d:?}");
    assert_eq!(std::fs::read(&dest).unwrap(), s.v2);
    assert!(d.bytes_moved * 20 < s.v2.len() as u64, "{d:?}");
    assert_eq!(d.bytes_saved, s.v2.len() as u64 - d.bytes_moved);
    assert!(s.requested(&s.patch_path));
    assert!(!s.requested_target(), "{:?}", s.https.requests());
    // No patch or partial file is left beside the target.
    let left: Vec<_> = std::fs::read_dir(client.target_dir()).unwrap().collect();
    assert_eq!(left.len(), 1, "{left:?}");
}

#[test]
fn wrong_patch_bytes_on_the_mirror_fall_back_to_the_full_target() {
    let (v1, _) = versions(1 << 20);
    // The listed patch's length, other bytes.
    let honest = {
        let (v1, v2) = versions(1 << 20);
        airlock_repo::delta::make_patch(&v1, &v2).unwrap()
    };
    let mut evil = honest.clone();
    let n = evil.len();
    evil[n - 10] ^= 0xff;
    let s = setup(1 << 20, None, Some(&evil));
    let client = s.client();
    let dest = client.target_dir().join("app.bin");
    std::fs::create_dir_all(client.target_dir()).unwrap();
    std::fs::write(&dest, &v1).unwrap();
    let d = deliver(&client, |_| {}, &dest).expect("delivered");
    assert_eq!(d.method, DeliveryMethod::Full, "{d:?}");
    assert_eq!(std::fs::read(&dest).unwrap(), s.v2);
    // Refused as downloaded (its signed hash), not only by the check of the output.
    let why = format!("downloading patch {}", s.patch_path);
    assert!(d.delta_skipped.iter().any(|w| w.contains(&why)), "{d:?}");
    assert!(s.requested_target());
}

#[test]
fn a_patch_whose_output_is_not_the_target_falls_back() {
    // A patch to bytes of the target's length that are not the target.
    let mut other = versions(1 << 20).1;
    other[100] ^= 1;
    let s = setup(1 << 20, Some(&other), None);
    let client = s.client();
    let dest = client.target_dir().join("app.bin");
    std::fs::create_dir_all(client.target_dir()).unwrap();
    std::fs::write(&dest, &s.v1).unwrap();
    let d = deliver(&client, |_| {}, &dest).expect("delivered");
    assert_eq!(d.method, DeliveryMethod::Full, "{d:?}");
    assert_eq!(std::fs::read(&dest).unwrap(), s.v2);
    assert!(
        d.delta_skipped.iter().any(|w| w.contains("output")),
        "{d:?}"
    );
}

#[test]
fn metered_stops_with_a_clear_message_and_changes_nothing() {
    // A patch to bytes of the target's length that are not the target.
    let mut other = versions(1 << 20).1;
    other[100] ^= 1;
    let s = setup(1 << 20, Some(&other), None);
    let client = s.client();
    let dest = client.target_dir().join("app.bin");
    std::fs::create_dir_all(client.target_dir()).unwrap();
    std::fs::write(&dest, &s.v1).unwrap();
    let err = deliver(&client, |c| c.delta.metered = true, &dest).expect_err("metered stops");
    assert!(matches!(err, UpdateError::DeltaStopped { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("metered") && msg.contains(TARGET), "{msg}");
    assert_eq!(std::fs::read(&dest).unwrap(), s.v1, "the old version stays");
    assert!(!s.requested_target(), "the full target was not moved");
    let left: Vec<_> = std::fs::read_dir(client.target_dir()).unwrap().collect();
    assert_eq!(left.len(), 1, "{left:?}");
}

#[test]
fn a_local_file_that_is_not_the_listed_base_is_not_patched() {
    let s = setup(1 << 20, None, None);
    let client = s.client();
    let dest = client.target_dir().join("app.bin");
    std::fs::create_dir_all(client.target_dir()).unwrap();
    // Same length as the base, one byte different.
    let mut near = s.v1.clone();
    near[12345] ^= 1;
    std::fs::write(&dest, &near).unwrap();
    let d = deliver(&client, |_| {}, &dest).expect("delivered");
    assert_eq!(d.method, DeliveryMethod::Full, "{d:?}");
    assert!(!s.requested(&s.patch_path), "{:?}", s.https.requests());
    assert_eq!(std::fs::read(&dest).unwrap(), s.v2);
    assert!(
        d.delta_skipped.iter().any(|w| w.contains("not the base")),
        "{d:?}"
    );
}

#[test]
fn a_configured_base_elsewhere_is_used() {
    let s = setup(1 << 20, None, None);
    let client = s.client();
    let old = client.dir.path().join("old-app.bin");
    std::fs::write(&old, &s.v1).unwrap();
    let dest = client.target_dir().join("app.bin");
    let d = deliver(&client, |c| c.delta_bases = vec![old.clone()], &dest).expect("delivered");
    assert_eq!(d.method, DeliveryMethod::Delta, "{d:?}");
    assert_eq!(d.base.as_deref(), Some(old.as_path()));
    assert_eq!(std::fs::read(&dest).unwrap(), s.v2);
}
