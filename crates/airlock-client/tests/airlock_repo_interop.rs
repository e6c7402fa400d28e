//! Interop with the publisher: the client updates from a repository written by airlock-repo
//! (the library behind `airlock repo`), served over HTTPS: hash bins, an ECDSA root rotated to
//! 2-of-3, a timestamp key rotation, and a second release.

mod common;

use airlock_client::Updater;
use airlock_core::crypto::KeyScheme;
use airlock_repo::{
    AddOptions, AddSource, BinDelegation, InitOptions, KeyProtection, KeySource, Repository,
    RoleKeySpec, Rotation, TargetName,
};
use common::{Client, HttpsRepo};

fn add_file(repo: &mut Repository, src: &std::path::Path, name: &str, content: &[u8]) {
    let path = src.join(name);
    std::fs::write(&path, content).expect("write source file");
    repo.add_targets(
        &[AddSource {
            path,
            target: TargetName::Prefix("app/".into()),
        }],
        &AddOptions::default(),
        &|_, _| {},
    )
    .expect("add target");
}

#[test]
fn updates_from_an_airlock_repo_publication() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("repo");
    let src = tmp.path().join("src");
    std::fs::create_dir_all(&src).expect("mkdir");
    let mut opts = InitOptions::simple(KeyProtection::PlaintextForTests);
    opts.root = RoleKeySpec::new(KeyScheme::EcdsaP256, 2, 2);
    let mut repo = Repository::init(&dir, &opts).expect("init repo");
    repo.delegate_bins(
        &BinDelegation {
            from: "targets".into(),
            bins: 16,
            name_prefix: "bin".into(),
            keys: KeySource::Generate {
                scheme: KeyScheme::Ed25519,
                count: 1,
            },
            threshold: 1,
        },
        true,
    )
    .expect("bins");
    add_file(&mut repo, &src, "one.txt", b"release one");
    repo.publish(&|_, _| {}).expect("publish");
    let published = repo.published_path();

    let https = HttpsRepo::serve(&published);
    let root = std::fs::read(published.join("metadata/1.root.json")).expect("root");
    let client = Client::new(&https, &root);
    let dest = Updater::local_target_path(&client.target_dir(), "app/one.txt");
    let (info, downloaded) = client
        .updater()
        .fetch_target("app/one.txt", &dest, &mut |_, _| {})
        .expect("download from airlock repo");
    assert!(downloaded);
    assert!(info.role.starts_with("bin-"), "{}", info.role);
    assert_eq!(std::fs::read(&dest).expect("read"), b"release one");
    let bins = client
        .stored()
        .into_keys()
        .filter(|k| k.starts_with("bin-"))
        .count();
    assert_eq!(bins, 1, "only the bin holding the target is fetched");

    // Root keys rotated to 2-of-3, timestamp key rotated, a second release.
    repo.rotate(
        &Rotation {
            role: "root".into(),
            add: Some(KeySource::Generate {
                scheme: KeyScheme::EcdsaP256,
                count: 3,
            }),
            remove: Vec::new(),
            replace_all: true,
            threshold: Some(2),
        },
        true,
    )
    .expect("rotate root");
    repo.rotate(
        &Rotation {
            role: "timestamp".into(),
            add: Some(KeySource::Generate {
                scheme: KeyScheme::Ed25519,
                count: 1,
            }),
            remove: Vec::new(),
            replace_all: true,
            threshold: None,
        },
        true,
    )
    .expect("rotate timestamp");
    add_file(&mut repo, &src, "two.txt", b"release two");
    repo.publish(&|_, _| {}).expect("publish again");

    let mut updater = client.updater();
    let summary = updater.refresh().expect("refresh after rotations");
    assert!(summary.root_version >= 2, "{summary:?}");
    assert!(summary.roots_rotated >= 1, "{summary:?}");
    let dest = Updater::local_target_path(&client.target_dir(), "app/two.txt");
    updater
        .fetch_target("app/two.txt", &dest, &mut |_, _| {})
        .expect("download second release");
    assert_eq!(std::fs::read(&dest).expect("read"), b"release two");
    let served_root =
        std::fs::read(published.join(format!("metadata/{}.root.json", summary.root_version)))
            .expect("served root");
    assert_eq!(client.stored()["root.json"], served_root);
}
