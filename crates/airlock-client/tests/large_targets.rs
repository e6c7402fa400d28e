//! Targets large enough to go through the download's writer thread (several chunks, several
//! writeback spans), served by a misbehaving HTTPS mirror on 127.0.0.1: every length and hash
//! check holds as for a small file, and nothing unchecked takes the target's name.

mod common;
mod evil;

use airlock_client::{TargetFileError, UpdateError, Updater};
use airlock_core::tuf::HashError;
use airlock_fetch::FetchError;
use common::{Client, TestRepo};
use evil::{Misbehaviour, serve};

/// 9 MiB and a bit: more than one writeback span (8 MiB), and a last chunk that is not full.
const LEN: usize = 9 * 1024 * 1024 + 12_345;

/// Deterministic noise, so that every byte position matters to the hash.
fn noise(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
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

fn fetch(client: &Client, path: &str) -> Result<bool, UpdateError> {
    let dest = Updater::local_target_path(&client.target_dir(), path);
    client
        .updater()
        .fetch_target(path, &dest, &mut |_, _| {})
        .map(|(_, downloaded)| downloaded)
}

#[track_caller]
fn target_failure(err: &UpdateError) -> &TargetFileError {
    match err {
        UpdateError::Target { source, .. } => source,
        other => panic!("expected a target download failure, got: {other}"),
    }
}

#[test]
fn a_large_target_is_checked_whole_before_it_takes_its_name() {
    let data = noise(LEN);
    let mut repo = TestRepo::new();
    let file = repo.add_target("targets", "big.bin", &data);
    repo.publish();
    let (https, evil) = serve(repo.path());
    let url_path = format!("/targets/{}.big.bin", file.hashes["sha256"]);
    let dest = |c: &Client| Updater::local_target_path(&c.target_dir(), "big.bin");

    // Same length, one byte changed near the end (in the last, partly filled chunk).
    let mut altered = data.clone();
    if let Some(b) = altered.get_mut(LEN - 10) {
        *b ^= 1;
    }
    evil.set(&url_path, Misbehaviour::Bytes(altered));
    let client = Client::new(&https, &repo.initial_root());
    let err = fetch(&client, "big.bin").expect_err("altered");
    assert!(
        matches!(
            target_failure(&err),
            TargetFileError::Hash {
                source: HashError::Mismatch { .. },
                ..
            }
        ),
        "{err}"
    );
    assert!(!dest(&client).exists());

    // The genuine bytes and one more: cut off at the listed length and refused, although the
    // bytes up to it would pass the hash.
    let mut longer = data.clone();
    longer.push(b'!');
    evil.set(&url_path, Misbehaviour::Bytes(longer));
    let client = Client::new(&https, &repo.initial_root());
    let err = fetch(&client, "big.bin").expect_err("longer");
    assert!(
        matches!(
            target_failure(&err),
            TargetFileError::Fetch(FetchError::TooLarge { max_len, .. }) if *max_len == LEN as u64
        ),
        "{err}"
    );
    assert!(!dest(&client).exists());

    // Endless bytes: cut at the listed length.
    evil.set(&url_path, Misbehaviour::Endless);
    let client = Client::new(&https, &repo.initial_root());
    let err = fetch(&client, "big.bin").expect_err("endless");
    assert!(
        matches!(
            target_failure(&err),
            TargetFileError::Fetch(FetchError::TooLarge { max_len, .. }) if *max_len == LEN as u64
        ),
        "{err}"
    );
    assert!(!dest(&client).exists());

    // A whole chunk short.
    evil.set(
        &url_path,
        Misbehaviour::Bytes(data.get(..LEN - 300_000).unwrap_or_default().to_vec()),
    );
    let client = Client::new(&https, &repo.initial_root());
    let err = fetch(&client, "big.bin").expect_err("short");
    assert!(
        matches!(
            target_failure(&err),
            TargetFileError::Length { expected, actual, .. }
                if *expected == LEN as u64 && *actual == (LEN - 300_000) as u64
        ),
        "{err}"
    );
    assert!(!dest(&client).exists());

    // The genuine file: placed whole, and no partial file left beside it.
    evil.clear(&url_path);
    let client = Client::new(&https, &repo.initial_root());
    assert!(fetch(&client, "big.bin").expect("genuine"));
    assert!(std::fs::read(dest(&client)).expect("placed") == data);
    let left: Vec<_> = std::fs::read_dir(client.target_dir())
        .expect("target dir")
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".partial"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}
