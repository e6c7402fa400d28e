//! Interop with the real securesystemslib (the Python library python-tuf uses for keys):
//! Python signs with ed25519 / ecdsa / rsa keys and we verify; we sign and securesystemslib
//! verifies; the public keys we emit parse with `SSlibKey.from_dict` and have the same key id.
//!
//! Python is found through `AIRLOCK_PYTHON`, else `<repo>/.venv/bin/python`. If
//! `AIRLOCK_PYTHON` is set and does not work the tests fail; if it is unset and there is no
//! venv they are skipped with a notice.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use airlock_core::crypto::{KeyScheme, PrivateKey, PublicKey, Signer};
use serde_json::{Value, json};

fn python() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("AIRLOCK_PYTHON") {
        return Some(PathBuf::from(p));
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python");
    if venv.exists() {
        return Some(venv);
    }
    eprintln!(
        "NOTICE: skipping securesystemslib interop: AIRLOCK_PYTHON unset and no .venv \
         (run ./scripts/setup)"
    );
    None
}

/// Run a Python script with `input` on stdin; return stdout, panicking with stderr on failure.
fn run_python(py: &PathBuf, script: &str, input: &str) -> String {
    let mut child = Command::new(py)
        .arg("-c")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", py.display()));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "python failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

const MSG: &[u8] = br#"{"signed":{"_type":"targets","version":1},"unicode":"\u00e9 \u2603"}"#;

const PY_SIGN: &str = r#"
import json, sys
from securesystemslib.signer import CryptoSigner
msg = bytes.fromhex(sys.stdin.read().strip())
out = []
for name, signer, n in [
    ("ed25519", CryptoSigner.generate_ed25519(), 2),
    ("ecdsa", CryptoSigner.generate_ecdsa(), 48),
    ("rsa", CryptoSigner.generate_rsa(), 2),
]:
    key = signer.public_key
    sigs = [signer.sign(msg).signature for _ in range(n)]
    out.append({"name": name, "keyid": key.keyid, "key": key.to_dict(), "sigs": sigs})
print(json.dumps(out))
"#;

/// securesystemslib signs; airlock verifies every signature and refuses tampered ones.
#[test]
fn securesystemslib_signatures_verify_here() {
    let Some(py) = python() else { return };
    let out = run_python(&py, PY_SIGN, &hex::encode(MSG));
    let entries: Vec<Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(entries.len(), 3);
    let mut saw_high_s = false;
    for e in &entries {
        let name = e["name"].as_str().unwrap();
        let key: PublicKey = serde_json::from_value(e["key"].clone()).unwrap();
        assert_eq!(key.key_id(), e["keyid"].as_str().unwrap(), "{name} keyid");
        key.validate().unwrap();
        for sig in e["sigs"].as_array().unwrap() {
            let sig = hex::decode(sig.as_str().unwrap()).unwrap();
            key.verify(MSG, &sig)
                .unwrap_or_else(|err| panic!("{name}: {err}"));
            let mut bad = sig.clone();
            let last = bad.len() - 1;
            bad[last] ^= 1;
            assert!(key.verify(MSG, &bad).is_err(), "{name} flipped");
            assert!(key.verify(b"other message", &sig).is_err(), "{name} msg");
            if name == "ecdsa" {
                saw_high_s |= is_high_s(&sig);
            }
        }
    }
    // OpenSSL does not normalise S: among 48 signatures (chance of none high: 2^-48) at least
    // one is high-S, and it verified above.
    assert!(
        saw_high_s,
        "expected a high-S ECDSA signature from securesystemslib"
    );
}

/// Whether a DER ECDSA P-256 signature has s > n/2.
fn is_high_s(der: &[u8]) -> bool {
    let sig = p256::ecdsa::Signature::from_der(der).unwrap();
    sig.normalize_s() != sig
}

const PY_VERIFY: &str = r#"
import json, sys
from securesystemslib.signer import SSlibKey, Signature
from securesystemslib.signer._utils import compute_default_keyid
from securesystemslib.exceptions import UnverifiedSignatureError
cases = json.loads(sys.stdin.read())
for c in cases:
    key = SSlibKey.from_dict(c["keyid"], dict(c["key"]))
    expected = compute_default_keyid(key.keytype, key.scheme, key.keyval)
    assert expected == c["keyid"], (c["name"], expected, c["keyid"])
    msg = bytes.fromhex(c["msg"])
    key.verify_signature(Signature(c["keyid"], c["sig"]), msg)
    try:
        key.verify_signature(Signature(c["keyid"], c["sig"]), msg + b"x")
    except UnverifiedSignatureError:
        pass
    else:
        raise SystemExit("tampered message verified for " + c["name"])
    print("ok", c["name"])
"#;

/// airlock signs; securesystemslib parses our public keys, computes the same key ids and
/// verifies our signatures.
#[test]
fn our_signatures_verify_in_securesystemslib() {
    let Some(py) = python() else { return };
    let keys = [
        PrivateKey::generate(KeyScheme::Ed25519).unwrap(),
        PrivateKey::generate(KeyScheme::EcdsaP256).unwrap(),
        PrivateKey::generate_rsa(2048).unwrap(),
    ];
    let mut cases = Vec::new();
    for k in &keys {
        // Several messages so ECDSA covers signatures whose raw S was high before normalising.
        for i in 0..4u8 {
            let mut msg = MSG.to_vec();
            msg.push(b'0' + i);
            let sig = k.sign(&msg).unwrap();
            cases.push(json!({
                "name": format!("{}-{i}", k.scheme()),
                "keyid": k.public_key().key_id(),
                "key": serde_json::to_value(k.public_key()).unwrap(),
                "msg": hex::encode(&msg),
                "sig": hex::encode(&sig),
            }));
        }
    }
    let out = run_python(&py, PY_VERIFY, &serde_json::to_string(&cases).unwrap());
    assert_eq!(
        out.lines().filter(|l| l.starts_with("ok ")).count(),
        cases.len()
    );
}

const PY_EXPORT_KEYFILE: &str = r#"
import json, sys
from cryptography.hazmat.primitives.serialization import (
    BestAvailableEncryption, Encoding, PrivateFormat)
from securesystemslib.signer import CryptoSigner
out = []
for signer in [CryptoSigner.generate_ed25519(), CryptoSigner.generate_ecdsa(),
               CryptoSigner.generate_rsa()]:
    pem = signer._private_key.private_bytes(
        Encoding.PEM, PrivateFormat.PKCS8, BestAvailableEncryption("pässwörd".encode()))
    out.append({"pem": pem.decode(), "keyid": signer.public_key.keyid,
                "key": signer.public_key.to_dict()})
print(json.dumps(out))
"#;

/// Keys exported by pyca/cryptography (securesystemslib's backend) as encrypted PKCS#8 (PBES2,
/// PBKDF2, AES-256-CBC) import here: same public key, same key id, and they sign.
#[test]
fn pyca_encrypted_key_files_import_here() {
    use airlock_core::crypto::keyfile::{decode_private_key, is_encrypted};
    let Some(py) = python() else { return };
    let out = run_python(&py, PY_EXPORT_KEYFILE, "");
    let entries: Vec<Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(entries.len(), 3);
    for e in &entries {
        let pem = e["pem"].as_str().unwrap();
        assert!(is_encrypted(pem.as_bytes()).unwrap());
        assert!(decode_private_key(pem.as_bytes(), Some("wrong".as_bytes())).is_err());
        let k = decode_private_key(pem.as_bytes(), Some("pässwörd".as_bytes()))
            .unwrap_or_else(|err| panic!("{}: {err}", e["key"]["keytype"]));
        let theirs: PublicKey = serde_json::from_value(e["key"].clone()).unwrap();
        assert_eq!(k.public_key(), &theirs);
        assert_eq!(k.public_key().key_id(), e["keyid"].as_str().unwrap());
        let sig = k.sign(MSG).unwrap();
        theirs.verify(MSG, &sig).unwrap();
    }
}

const PY_ED448: &str = r#"
import json, sys
from cryptography.hazmat.primitives.asymmetric.ed448 import Ed448PrivateKey, Ed448PublicKey
from cryptography.hazmat.primitives.serialization import (
    BestAvailableEncryption, Encoding, PrivateFormat, PublicFormat)
from cryptography.exceptions import InvalidSignature
req = json.loads(sys.stdin.read())
# Verify what airlock signed, and refuse a tampered message.
pub = Ed448PublicKey.from_public_bytes(bytes.fromhex(req["public"]))
msg = bytes.fromhex(req["msg"])
pub.verify(bytes.fromhex(req["sig"]), msg)
try:
    pub.verify(bytes.fromhex(req["sig"]), msg + b"x")
    raise SystemExit("tampered Ed448 message verified")
except InvalidSignature:
    pass
# Sign for airlock, and export the key as encrypted PKCS#8.
priv = Ed448PrivateKey.generate()
print(json.dumps({
    "public": priv.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex(),
    "sig": priv.sign(msg).hex(),
    "pem": priv.private_bytes(Encoding.PEM, PrivateFormat.PKCS8,
                              BestAvailableEncryption(b"pw")).decode(),
}))
"#;

/// Ed448 has no securesystemslib scheme; interop is with pyca/cryptography (OpenSSL) directly:
/// both directions of signing, and import of its encrypted PKCS#8 key file.
#[test]
fn ed448_interop_with_pyca_cryptography() {
    use airlock_core::crypto::keyfile::decode_private_key;
    let Some(py) = python() else { return };
    let ours = PrivateKey::generate(KeyScheme::Ed448).unwrap();
    let req = json!({
        "public": ours.public_key().public_str().unwrap(),
        "msg": hex::encode(MSG),
        "sig": hex::encode(ours.sign(MSG).unwrap()),
    });
    let out = run_python(&py, PY_ED448, &req.to_string());
    let resp: Value = serde_json::from_str(&out).unwrap();
    let pem = resp["pem"].as_str().unwrap();
    let theirs = decode_private_key(pem.as_bytes(), Some(b"pw")).unwrap();
    assert_eq!(theirs.scheme(), KeyScheme::Ed448);
    assert_eq!(
        theirs.public_key().public_str().unwrap(),
        resp["public"].as_str().unwrap()
    );
    let sig = hex::decode(resp["sig"].as_str().unwrap()).unwrap();
    theirs.public_key().verify(MSG, &sig).unwrap();
    assert!(theirs.public_key().verify(b"other", &sig).is_err());
}
