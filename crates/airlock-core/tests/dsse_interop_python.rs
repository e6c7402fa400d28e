//! Rebuild attestations against an independent DSSE implementation: securesystemslib's
//! `Envelope` (the library python-tuf and in-toto use). Both ways: its PAE equals ours and it
//! verifies envelopes we sign; envelopes it signs over our statement verify here. The statement
//! itself against in-toto's own Python library (`in_toto_attestation`, from PyPI): it validates
//! ours, and ours reads a statement it wrote.
//!
//! Python is found through `AIRLOCK_PYTHON`, else `<repo>/.venv/bin/python`; without either
//! the tests are skipped with a notice.

mod common;

use airlock_core::crypto::{KeyScheme, PrivateKey, PublicKey, Signer};
use airlock_core::rebuild::attestation::{PAYLOAD_TYPE, pae};
use airlock_core::rebuild::{
    Builder, RebuildInfo, RebuildStatement, Recipe, SourceRef, verify_attestation,
};
use serde_json::{Value, json};

fn statement() -> RebuildStatement {
    RebuildStatement {
        target: "app/1.0/app".into(),
        sha256: "ab".repeat(32),
        length: 1234,
        rebuild: RebuildInfo {
            source: SourceRef::Tarball {
                url: "https://example.org/app-1.0.tar.gz".into(),
                sha256: "cd".repeat(32),
            },
            recipe: Recipe {
                command: "make app".into(),
                builder: Builder::Toolchain("debian-13".into()),
                env: [("SOURCE_DATE_EPOCH".to_string(), "1700000000".to_string())].into(),
                artifact: "out/app".into(),
            },
        },
        environment: [("sandbox".to_string(), "bubblewrap 0.8.0".to_string())].into(),
        rebuilder: "rebuilder-a".into(),
    }
}

const PY_VERIFY: &str = r#"
import json, sys
from securesystemslib.dsse import Envelope
from securesystemslib.signer import SSlibKey
from securesystemslib.exceptions import VerificationError
cases = json.loads(sys.stdin.read())
for c in cases:
    env = Envelope.from_dict(json.loads(c["envelope"]))
    assert env.payload_type == "application/vnd.in-toto+json", env.payload_type
    assert env.pae().hex() == c["pae"], "PAE differs"
    key = SSlibKey.from_dict(c["keyid"], dict(c["key"]))
    env.verify([key], 1)
    env.payload = env.payload + b" "
    try:
        env.verify([key], 1)
    except VerificationError:
        pass
    else:
        raise SystemExit("altered payload verified")
    print("ok", c["name"])
"#;

/// Envelopes we sign parse in securesystemslib, its PAE is ours, and its verifier accepts them.
#[test]
fn our_envelopes_verify_in_securesystemslib() {
    let Some(py) = common::python() else { return };
    let mut cases = Vec::new();
    for scheme in [KeyScheme::Ed25519, KeyScheme::EcdsaP256] {
        let key = PrivateKey::generate(scheme).unwrap();
        let env = statement().sign(&key).unwrap();
        cases.push(json!({
            "name": scheme.short_name(),
            "envelope": String::from_utf8(env.to_json()).unwrap(),
            "pae": hex::encode(pae(PAYLOAD_TYPE, &env.payload)),
            "keyid": key.public_key().key_id(),
            "key": key.public_key(),
        }));
    }
    let out = common::run_python(&py, PY_VERIFY, Value::Array(cases).to_string().as_bytes());
    assert_eq!(String::from_utf8(out).unwrap(), "ok ed25519\nok ecdsa\n");
}

const PY_SIGN: &str = r#"
import json, sys
from securesystemslib.dsse import Envelope
from securesystemslib.signer import CryptoSigner
payload = sys.stdin.buffer.read()
out = []
for name, signer in [
    ("ed25519", CryptoSigner.generate_ed25519()),
    ("ecdsa", CryptoSigner.generate_ecdsa()),
    ("rsa", CryptoSigner.generate_rsa()),
]:
    env = Envelope(payload, "application/vnd.in-toto+json", {})
    env.sign(signer)
    out.append({"name": name, "key": signer.public_key.to_dict(),
                "envelope": json.dumps(env.to_dict())})
print(json.dumps(out))
"#;

/// Envelopes securesystemslib signs over our statement verify here, and only with their key.
#[test]
fn securesystemslib_envelopes_verify_here() {
    let Some(py) = common::python() else { return };
    let out = common::run_python(&py, PY_SIGN, &statement().to_json());
    let cases: Vec<Value> = serde_json::from_slice(&out).unwrap();
    assert_eq!(cases.len(), 3);
    let stranger = PrivateKey::generate(KeyScheme::Ed25519).unwrap();
    for c in &cases {
        let name = c["name"].as_str().unwrap();
        let key: PublicKey = serde_json::from_value(c["key"].clone()).unwrap();
        let env = c["envelope"].as_str().unwrap().as_bytes();
        let got = verify_attestation(env, &key).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(got, statement(), "{name}");
        assert!(
            verify_attestation(env, stranger.public_key()).is_err(),
            "{name}"
        );
    }
}

const PY_IN_TOTO: &str = r#"
import json, sys
from google.protobuf import json_format
import in_toto_attestation.v1.statement_pb2 as spb
from in_toto_attestation.v1.statement import Statement
from in_toto_attestation.v1.resource_descriptor import ResourceDescriptor
ours = json.loads(sys.stdin.buffer.read())
pb = json_format.Parse(json.dumps(ours), spb.Statement())
Statement.copy_from_pb(pb).validate()
bad = dict(ours, _type="https://in-toto.io/Statement/v0.1")
try:
    Statement.copy_from_pb(json_format.Parse(json.dumps(bad), spb.Statement())).validate()
    raise SystemExit("a wrong _type validated")
except ValueError:
    pass
subject = ResourceDescriptor(name=ours["subject"][0]["name"], digest=ours["subject"][0]["digest"])
theirs = Statement([subject.pb], ours["predicateType"], ours["predicate"])
theirs.validate()
print(json.dumps({"theirs": json_format.MessageToJson(theirs.pb)}))
"#;

/// in-toto's own library validates our statement, and a statement it builds from the same
/// subject and predicate reads here as the same attestation.
#[test]
fn statement_matches_in_toto_attestation() {
    let Some(py) = common::python() else { return };
    let out = common::run_python(&py, PY_IN_TOTO, &statement().to_json());
    let v: Value = serde_json::from_slice(&out).unwrap();
    let theirs = v["theirs"].as_str().unwrap();
    let got = RebuildStatement::parse(theirs.as_bytes()).unwrap();
    assert_eq!(got, statement());
}
