//! Key files on a real file system in a temp dir: round trips, permissions, passphrase
//! sources, and clear errors naming the file for every kind of bad input.

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::io::AsRawFd;
use std::path::Path;

use airlock_core::crypto::{KeyScheme, PrivateKey, Signer};
use airlock_keystore::{
    KeystoreError, PassphraseSource, Protection, read_private_key, read_public_key,
    write_private_key, write_public_key,
};
use zeroize::Zeroizing;

fn value(s: &str) -> PassphraseSource {
    PassphraseSource::Value(Zeroizing::new(s.to_string()))
}

fn mode_of(p: &Path) -> u32 {
    fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn encrypted_round_trip_every_scheme_mode_0600() {
    let dir = tempfile::tempdir().unwrap();
    let keys = [
        PrivateKey::generate(KeyScheme::Ed25519).unwrap(),
        PrivateKey::generate(KeyScheme::EcdsaP256).unwrap(),
        PrivateKey::generate_rsa(2048).unwrap(),
        PrivateKey::generate(KeyScheme::HybridEd25519SlhDsa).unwrap(),
    ];
    for k in &keys {
        let path = dir.path().join(format!("{}.key", k.scheme()));
        write_private_key(
            &path,
            k,
            &Protection::encrypted_fast_for_tests(value("s3cret")),
        )
        .unwrap();
        assert_eq!(mode_of(&path), 0o600, "{}", path.display());
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"));
        let back = read_private_key(&path, &value("s3cret")).unwrap();
        assert_eq!(back.public_key(), k.public_key());

        let pub_path = dir.path().join(format!("{}.pub.json", k.scheme()));
        write_public_key(&pub_path, k.public_key()).unwrap();
        assert_eq!(&read_public_key(&pub_path).unwrap(), k.public_key());
    }
    // No temporary files are left behind.
    let leftovers: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(".airlock-tmp"))
        .collect();
    assert!(leftovers.is_empty());
}

#[test]
fn interactive_cost_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k");
    let k = PrivateKey::generate(KeyScheme::Ed25519).unwrap();
    write_private_key(
        &path,
        &k,
        &Protection::encrypted(value("a passphrase long enough")),
    )
    .unwrap();
    let back = read_private_key(&path, &value("a passphrase long enough")).unwrap();
    assert_eq!(back.public_key(), k.public_key());
}

#[test]
fn plaintext_only_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plain.key");
    let k = PrivateKey::generate(KeyScheme::Ed25519).unwrap();
    write_private_key(&path, &k, &Protection::PlaintextForTests).unwrap();
    assert_eq!(mode_of(&path), 0o600);
    assert!(
        fs::read_to_string(&path)
            .unwrap()
            .starts_with("-----BEGIN PRIVATE KEY-----")
    );
    // Reading a plaintext file never asks for a passphrase (an unset variable is fine).
    let back = read_private_key(
        &path,
        &PassphraseSource::Env("AIRLOCK_TEST_UNSET_VAR".into()),
    )
    .unwrap();
    assert_eq!(back.public_key(), k.public_key());
}

#[test]
fn wrong_passphrase_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("root.key");
    let k = PrivateKey::generate(KeyScheme::Ed25519).unwrap();
    write_private_key(
        &path,
        &k,
        &Protection::encrypted_fast_for_tests(value("right")),
    )
    .unwrap();
    let err = read_private_key(&path, &value("wrong")).unwrap_err();
    let msg = airlock_core::error_chain(&err);
    assert!(msg.contains("root.key"), "{msg}");
    assert!(msg.contains("wrong passphrase"), "{msg}");
}

#[test]
fn bad_files_give_errors_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.key");
    let k = PrivateKey::generate(KeyScheme::EcdsaP256).unwrap();
    write_private_key(
        &good,
        &k,
        &Protection::encrypted_fast_for_tests(value("pw")),
    )
    .unwrap();
    let text = fs::read(&good).unwrap();

    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("truncated.key", text[..text.len() / 2].to_vec()),
        ("empty.key", vec![]),
        ("garbage.key", b"\x00\x01garbage\xff".to_vec()),
        ("huge.key", vec![b'A'; 300 * 1024]),
        (
            "public-json.key",
            serde_json::to_vec(k.public_key()).unwrap(),
        ),
        (
            "openssh.key",
            b"-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaA==\n-----END OPENSSH PRIVATE KEY-----\n"
                .to_vec(),
        ),
    ];
    for (name, bytes) in cases {
        let path = dir.path().join(name);
        fs::write(&path, &bytes).unwrap();
        let err = read_private_key(&path, &value("pw")).unwrap_err();
        assert!(
            airlock_core::error_chain(&err).contains(name),
            "{name}: {err}"
        );
    }
    let missing = dir.path().join("missing.key");
    let err = read_private_key(&missing, &value("pw")).unwrap_err();
    assert!(matches!(err, KeystoreError::Io { .. }));
    assert!(airlock_core::error_chain(&err).contains("missing.key"));

    // A private key file given where a public key is expected, and a public key with bad
    // material.
    let err = read_public_key(&good).unwrap_err();
    assert!(
        airlock_core::error_chain(&err).contains("good.key"),
        "{err}"
    );
    let mut bad_pub = k.public_key().clone();
    bad_pub
        .keyval
        .insert("public".into(), serde_json::Value::String("nope".into()));
    let bad_pub_path = dir.path().join("bad.pub.json");
    write_public_key(&bad_pub_path, &bad_pub).unwrap();
    let err = read_public_key(&bad_pub_path).unwrap_err();
    assert!(
        airlock_core::error_chain(&err).contains("bad.pub.json"),
        "{err}"
    );
}

#[test]
fn never_overwrites_a_key_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k");
    let a = PrivateKey::generate(KeyScheme::Ed25519).unwrap();
    let b = PrivateKey::generate(KeyScheme::Ed25519).unwrap();
    write_private_key(&path, &a, &Protection::PlaintextForTests).unwrap();
    let err = write_private_key(&path, &b, &Protection::PlaintextForTests).unwrap_err();
    assert!(matches!(err, KeystoreError::Exists { .. }));
    let back = read_private_key(&path, &value("x")).unwrap();
    assert_eq!(back.public_key(), a.public_key());
}

/// The environment-variable source (cargo sets CARGO_PKG_NAME for test binaries; the 2024
/// edition makes set_var unsafe, which this workspace forbids).
#[test]
fn passphrase_from_environment() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("env.key");
    let k = PrivateKey::generate(KeyScheme::Ed25519).unwrap();
    let src = PassphraseSource::Env("CARGO_PKG_NAME".into());
    write_private_key(
        &path,
        &k,
        &Protection::encrypted_fast_for_tests(src.clone()),
    )
    .unwrap();
    // The same passphrase given directly decrypts it.
    read_private_key(&path, &value("airlock-keystore")).unwrap();
    read_private_key(&path, &src).unwrap();
    let err = read_private_key(
        &path,
        &PassphraseSource::Env("AIRLOCK_TEST_SURELY_UNSET".into()),
    )
    .unwrap_err();
    assert!(
        airlock_core::error_chain(&err).contains("AIRLOCK_TEST_SURELY_UNSET"),
        "{err}"
    );
    assert!(airlock_core::error_chain(&err).contains("env.key"), "{err}");
}

/// The file-descriptor source reads up to the first newline.
#[test]
fn passphrase_from_file_descriptor() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    let mut f = fs::File::create(&secret).unwrap();
    f.write_all(b"fd-passphrase\nanything after the newline is ignored\n")
        .unwrap();
    drop(f);
    let path = dir.path().join("fd.key");
    let k = PrivateKey::generate(KeyScheme::Ed25519).unwrap();
    write_private_key(
        &path,
        &k,
        &Protection::encrypted_fast_for_tests(value("fd-passphrase")),
    )
    .unwrap();
    let held = fs::File::open(&secret).unwrap();
    let src = PassphraseSource::Fd(held.as_raw_fd());
    let back = read_private_key(&path, &src).unwrap();
    assert_eq!(back.public_key(), k.public_key());
    drop(held);

    let err = read_private_key(&path, &PassphraseSource::Fd(987_654)).unwrap_err();
    assert!(
        airlock_core::error_chain(&err).contains("file descriptor 987654"),
        "{err}"
    );
    let err = read_private_key(&path, &PassphraseSource::Fd(-1)).unwrap_err();
    assert!(matches!(err, KeystoreError::Passphrase { .. }));
}

#[test]
fn empty_passphrase_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k");
    let k = PrivateKey::generate(KeyScheme::Ed25519).unwrap();
    let err =
        write_private_key(&path, &k, &Protection::encrypted_fast_for_tests(value(""))).unwrap_err();
    assert!(matches!(err, KeystoreError::Passphrase { .. }));
    assert!(!path.exists());
}

/// The file-descriptor source also reads from a pipe (what CI secret plumbing usually hands
/// over), stopping at the newline.
#[test]
fn passphrase_from_pipe() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pipe.key");
    let k = PrivateKey::generate(KeyScheme::Ed25519).unwrap();
    write_private_key(
        &path,
        &k,
        &Protection::encrypted_fast_for_tests(value("piped secret")),
    )
    .unwrap();
    let (reader, mut writer) = std::io::pipe().unwrap();
    writer.write_all(b"piped secret\r\n").unwrap();
    drop(writer);
    let back = read_private_key(&path, &PassphraseSource::Fd(reader.as_raw_fd())).unwrap();
    assert_eq!(back.public_key(), k.public_key());
}
