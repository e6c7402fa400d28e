//! Keys on a real PKCS#11 token: Debian's SoftHSM2 (installed by scripts/setup), a token
//! initialised at test time in a temporary directory, keys made on it by OpenSC's pkcs11-tool
//! (sensitive, never extractable) and file keys imported into it (P-256 and RSA by pkcs11-tool,
//! Ed25519 through PKCS#11 itself).
//!
//! SoftHSM2 reads its configuration (SOFTHSM2_CONF) once, when the module starts; the test
//! cannot set the variable in its own process (no unsafe code), so it prepares the token and runs
//! its checks in a child process: this same test binary, with the variable set. A machine without
//! SoftHSM2 fails the test instead of skipping it.

use std::path::{Path, PathBuf};
use std::process::Command;

use airlock_core::crypto::keyfile::{KeyFileEncoding, encode_private_key};
use airlock_core::crypto::{KeyScheme, PrivateKey, Signer};
use airlock_keystore::{KeyRef, KeystoreError, PassphraseSource};
use zeroize::Zeroizing;

const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
const TOKEN: &str = "airlock test";
const PIN: &str = "123456";
const CHILD: &str = "AIRLOCK_PKCS11_TEST_CHILD";

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn tool(conf: &Path) -> Command {
    let mut c = Command::new("pkcs11-tool");
    c.env("SOFTHSM2_CONF", conf).args([
        "--module",
        MODULE,
        "--token-label",
        TOKEN,
        "--login",
        "--pin",
        PIN,
    ]);
    c
}

/// A PEM key file's body as DER, for pkcs11-tool's import.
fn pem_to_der(pem: &str) -> Vec<u8> {
    use base64::Engine as _;
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap()
}

/// A token with an Ed25519 (id 01), a P-256 (02) and an RSA (03) key made on it, and a P-256
/// (11) and an RSA (12) key imported from Airlock key files (their public keys are written to
/// DIR/imported-*.pub.json).
fn make_token(dir: &Path) -> PathBuf {
    assert!(
        Path::new(MODULE).exists(),
        "SoftHSM2 is not installed: run ./scripts/setup (it installs Debian's softhsm2 and opensc)"
    );
    let conf = dir.join("softhsm2.conf");
    std::fs::create_dir_all(dir.join("tokens")).unwrap();
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
            dir.join("tokens").display()
        ),
    )
    .unwrap();
    run(Command::new("softhsm2-util")
        .env("SOFTHSM2_CONF", &conf)
        .args(["--init-token", "--free", "--label", TOKEN])
        .args(["--so-pin", "87654321", "--pin", PIN]));
    for (key_type, label, id) in [
        ("EC:edwards25519", "ed", "01"),
        ("EC:prime256v1", "ec", "02"),
        ("rsa:2048", "rsa", "03"),
    ] {
        run(tool(&conf)
            .args(["--keypairgen", "--key-type", key_type, "--usage-sign"])
            .args(["--sensitive", "--private", "--label", label, "--id", id]));
    }
    for (scheme, label, id) in [
        (KeyScheme::EcdsaP256, "imported-ec", "11"),
        (KeyScheme::RsaPssSha256, "imported-rsa", "12"),
    ] {
        let key = if scheme == KeyScheme::RsaPssSha256 {
            PrivateKey::generate_rsa(2048).unwrap()
        } else {
            PrivateKey::generate(scheme).unwrap()
        };
        let pem = encode_private_key(&key, KeyFileEncoding::PlaintextForTests).unwrap();
        let der = dir.join(format!("{label}.der"));
        std::fs::write(&der, pem_to_der(&pem)).unwrap();
        run(tool(&conf).arg("--write-object").arg(&der).args([
            "--type",
            "privkey",
            "--sensitive",
            "--label",
            label,
            "--id",
            id,
        ]));
        std::fs::remove_file(&der).unwrap();
        let spki = dir.join(format!("{label}.pub.der"));
        std::fs::write(&spki, pem_to_der(key.public_key().public_str().unwrap())).unwrap();
        run(tool(&conf)
            .arg("--write-object")
            .arg(&spki)
            .args(["--type", "pubkey", "--label", label, "--id", id]));
        airlock_keystore::write_public_key(
            &dir.join(format!("{label}.pub.json")),
            key.public_key(),
        )
        .unwrap();
    }
    conf
}

#[test]
fn softhsm_token_keys() {
    if let Some(dir) = std::env::var_os(CHILD) {
        return checks(Path::new(&dir));
    }
    let tmp = tempfile::tempdir().unwrap();
    let conf = make_token(tmp.path());
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "softhsm_token_keys",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(CHILD, tmp.path())
        .env("SOFTHSM2_CONF", &conf)
        .env("AIRLOCK_TEST_PIN", PIN)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "the checks failed:\n{text}");
    assert!(
        text.contains("PKCS11-CHECKS-DONE"),
        "the checks did not run:\n{text}"
    );
}

fn uri(path: &str) -> String {
    format!("pkcs11:token=airlock%20test;{path}?module-path={MODULE}")
}

fn pin() -> PassphraseSource {
    PassphraseSource::Value(Zeroizing::new(PIN.into()))
}

fn open(path: &str, secret: &PassphraseSource) -> Result<Box<dyn Signer>, KeystoreError> {
    KeyRef::parse(&uri(path)).unwrap().open(secret)
}

/// Imports an Ed25519 key file's key into the token through PKCS#11 itself (pkcs11-tool 0.23
/// cannot import Ed25519 private keys), as a sensitive, non-extractable pair `imported-ed`, id
/// 13. Returns the file key's TUF public key.
fn import_ed25519() -> airlock_core::crypto::PublicKey {
    use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
    use cryptoki::object::{Attribute, KeyType, ObjectClass};
    use cryptoki::session::UserType;
    let PrivateKey::Ed25519(key) = PrivateKey::generate(KeyScheme::Ed25519).unwrap() else {
        unreachable!()
    };
    let point = hex::decode(key.public_key().public_str().unwrap()).unwrap();
    let ctx = Pkcs11::new(MODULE).unwrap();
    let _ = ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK));
    let slot = ctx.get_slots_with_token().unwrap()[0];
    let session = ctx.open_rw_session(slot).unwrap();
    session.login(UserType::User, Some(&PIN.into())).unwrap();
    // RFC 8410 OID of Ed25519, as CKA_EC_PARAMS.
    let params = vec![0x06, 0x03, 0x2b, 0x65, 0x70];
    let common = |class| {
        vec![
            Attribute::Class(class),
            Attribute::KeyType(KeyType::EC_EDWARDS),
            Attribute::Token(true),
            Attribute::Label(b"imported-ed".to_vec()),
            Attribute::Id(vec![0x13]),
            Attribute::EcParams(params.clone()),
        ]
    };
    let mut private = common(ObjectClass::PRIVATE_KEY);
    private.extend([
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Sign(true),
        Attribute::Value(key.seed().to_vec()),
    ]);
    session.create_object(&private).unwrap();
    let mut public = common(ObjectClass::PUBLIC_KEY);
    let mut wrapped = vec![0x04, 32];
    wrapped.extend_from_slice(&point);
    public.extend([Attribute::Verify(true), Attribute::EcPoint(wrapped)]);
    session.create_object(&public).unwrap();
    key.public_key().clone()
}

/// Runs in the child, with SOFTHSM2_CONF pointing at the test's token.
fn checks(dir: &Path) {
    let imported_ed = import_ed25519();
    // Each scheme signs, the signature verifies with the TUF key, and a flipped message does not.
    let msg = b"{\"signed\":{\"_type\":\"targets\"}}";
    let mut signers = Vec::new();
    for (path, keytype, scheme) in [
        ("object=ed", "ed25519", "ed25519"),
        ("id=%02", "ecdsa", "ecdsa-sha2-nistp256"),
        ("object=rsa;id=%03;type=private", "rsa", "rsassa-pss-sha256"),
    ] {
        let signer = open(path, &pin()).unwrap_or_else(|e| panic!("{path}: {e}"));
        let public = signer.public_key().clone();
        assert_eq!(
            (public.keytype.as_str(), public.scheme.as_str()),
            (keytype, scheme)
        );
        let sig = signer.sign(msg).unwrap();
        public.verify(msg, &sig).unwrap();
        assert!(public.verify(b"{\"signed\":{}}", &sig).is_err());
        if keytype == "ecdsa" {
            // DER SEQUENCE, as TUF metadata carries ECDSA signatures (not the token's r || s).
            assert_eq!(sig.first(), Some(&0x30), "{}", hex::encode(&sig));
        }
        if keytype == "rsa" {
            assert_eq!(sig.len(), 256);
        }
        signers.push(signer);
    }
    // While a key of the token is open, the token is logged in: a second key asks for no PIN
    // (a pipe holding one PIN line serves both).
    {
        use std::io::Write as _;
        use std::os::fd::AsRawFd as _;
        let (reader, mut writer) = std::io::pipe().unwrap();
        writer.write_all(format!("{PIN}\n").as_bytes()).unwrap();
        drop(writer);
        let once = PassphraseSource::Fd(reader.as_raw_fd());
        let first = open("object=imported-ec", &once).unwrap();
        let second = open("object=imported-rsa", &once).unwrap();
        second
            .public_key()
            .verify(msg, &second.sign(msg).unwrap())
            .unwrap();
        drop(first);
    }
    // Several keys of one token open side by side (one module, one login) and keep signing.
    for s in &signers {
        s.public_key().verify(msg, &s.sign(msg).unwrap()).unwrap();
    }

    // A key imported from an Airlock key file has exactly the file key's TUF key and key id.
    for label in ["imported-ec", "imported-rsa"] {
        let file_key =
            airlock_keystore::read_public_key(&dir.join(format!("{label}.pub.json"))).unwrap();
        let signer = open(&format!("object={label}"), &pin()).unwrap();
        assert_eq!(signer.public_key(), &file_key, "{label}");
        assert_eq!(signer.public_key().key_id(), file_key.key_id());
        file_key.verify(msg, &signer.sign(msg).unwrap()).unwrap();
        // And `key public`'s path (no login needed for the public key object) agrees.
        let public = airlock_keystore::pkcs11::public_key(
            &uri(&format!("object={label}")),
            &PassphraseSource::Env("UNSET_VARIABLE_FOR_THIS_TEST".into()),
        )
        .unwrap();
        assert_eq!(public, file_key);
    }

    let signer = open("object=imported-ed", &pin()).unwrap();
    assert_eq!(signer.public_key(), &imported_ed);
    assert_eq!(signer.public_key().key_id(), imported_ed.key_id());
    imported_ed.verify(msg, &signer.sign(msg).unwrap()).unwrap();
    drop(signer);

    // The PIN from each source: environment, file descriptor, the URI's pin-source and pin-value.
    let pin_file = dir.join("pin");
    std::fs::write(&pin_file, format!("{PIN}\n")).unwrap();
    open(
        "object=ed",
        &PassphraseSource::Env("AIRLOCK_TEST_PIN".into()),
    )
    .unwrap();
    {
        use std::os::fd::AsRawFd as _;
        let f = std::fs::File::open(&pin_file).unwrap();
        open("object=ed", &PassphraseSource::Fd(f.as_raw_fd())).unwrap();
    }
    let no_pin = PassphraseSource::Value(Zeroizing::new(String::new()));
    KeyRef::parse(&format!(
        "pkcs11:token=airlock%20test;object=ed?module-path={MODULE}&pin-source=file:{}",
        pin_file.display()
    ))
    .unwrap()
    .open(&no_pin)
    .unwrap();
    KeyRef::parse(&format!(
        "pkcs11:token=airlock%20test;object=ed?module-path={MODULE}&pin-value={PIN}"
    ))
    .unwrap()
    .open(&no_pin)
    .unwrap();

    // Wrong PIN: a plain error (never "offline") that names the token.
    drop(signers);
    let wrong = PassphraseSource::Value(Zeroizing::new("654321".into()));
    match open("object=ed", &wrong) {
        Err(e @ KeystoreError::KeyRef { .. }) => {
            let m = e.to_string();
            assert!(
                m.contains("wrong PIN for PKCS#11 token \"airlock test\""),
                "{m}"
            );
        }
        other => panic!("wrong PIN gave {:?}", other.err()),
    }
    // A wrong pin-value in the URI is not shown in the message.
    let e = KeyRef::parse(&format!(
        "pkcs11:token=airlock%20test;object=ed?module-path={MODULE}&pin-value=999999"
    ))
    .unwrap()
    .open(&no_pin)
    .err()
    .unwrap()
    .to_string();
    assert!(e.contains("wrong PIN") && !e.contains("999999"), "{e}");
    // No PIN at all: says how to give one.
    let e = open("object=ed", &no_pin).err().unwrap().to_string();
    assert!(
        e.contains("PIN for token \"airlock test\"") && e.contains("pin-source"),
        "{e}"
    );

    // Absent object, token or module: the key is not here (a repository treats it as offline).
    for (u, says) in [
        (
            uri("object=nope"),
            "token \"airlock test\" has no private key object \"nope\"",
        ),
        (
            format!("pkcs11:token=other;object=ed?module-path={MODULE}"),
            "no token \"other\" is present",
        ),
        (
            "pkcs11:token=t;object=ed?module-path=/nonexistent/libpkcs11.so".to_string(),
            "PKCS#11 module /nonexistent/libpkcs11.so is not here",
        ),
    ] {
        match KeyRef::parse(&u).unwrap().open(&pin()) {
            Err(e @ KeystoreError::KeyNotHere { .. }) => {
                assert!(e.to_string().contains(says), "{u}: {e}")
            }
            other => panic!("{u}: {:?}", other.err()),
        }
    }
    // A URI the code cannot act on exactly is refused (most when it is parsed), not guessed at.
    for (u, says) in [
        (uri("object=ed;x-vendor=1"), "vendor attribute x-vendor"),
        (uri("objekt=ed"), "unknown path attribute \"objekt\""),
        (
            "pkcs11:token=t;object=ed".to_string(),
            "names no PKCS#11 module",
        ),
        (uri(""), "names no key"),
    ] {
        let e = KeyRef::parse(&u)
            .and_then(|r| r.open(&pin()))
            .err()
            .unwrap();
        assert!(matches!(e, KeystoreError::KeyRef { .. }), "{u}: {e}");
        assert!(e.to_string().contains(says), "{u}: {e}");
    }

    // The private keys never leave the token: marked sensitive and not extractable, and the
    // token refuses to hand out their value.
    let tokens = airlock_keystore::pkcs11::list(&uri(""), Some(&pin())).unwrap();
    let keys = &tokens[0].keys;
    assert_eq!(keys.len(), 6, "{keys:?}");
    for k in keys
        .iter()
        .filter(|k| ["ed", "ec", "rsa"].contains(&k.label.as_str()))
    {
        assert!(k.private_key && k.unusable.is_none(), "{k:?}");
        assert_eq!(
            (k.sensitive, k.extractable, k.never_extractable),
            (Some(true), Some(false), Some(true)),
            "{k:?}"
        );
    }
    refuses_export();
    println!("PKCS11-CHECKS-DONE");
}

/// Asks the token for CKA_VALUE of each private key, as a tool exporting it would.
fn refuses_export() {
    use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
    use cryptoki::object::{Attribute, AttributeType, ObjectClass};
    use cryptoki::session::UserType;
    let ctx = Pkcs11::new(MODULE).unwrap();
    // Already initialised by the keystore in this process: that is fine.
    let _ = ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK));
    let slot = ctx.get_slots_with_token().unwrap()[0];
    let session = ctx.open_ro_session(slot).unwrap();
    let _ = session.login(UserType::User, Some(&PIN.into()));
    let keys = session
        .find_objects(&[Attribute::Class(ObjectClass::PRIVATE_KEY)])
        .unwrap();
    assert_eq!(keys.len(), 6);
    for key in keys {
        let got = session
            .get_attributes(key, &[AttributeType::Value, AttributeType::PrivateExponent])
            .unwrap();
        assert!(got.is_empty(), "the token revealed a private key: {got:?}");
    }
}
