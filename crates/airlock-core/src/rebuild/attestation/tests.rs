use super::*;
use crate::crypto::{KeyScheme, PrivateKey};
use crate::rebuild::{Builder, Recipe, SourceRef};
use serde_json::json;

pub(crate) fn statement() -> RebuildStatement {
    RebuildStatement {
        target: "app/1.0/app".into(),
        sha256: "ab".repeat(32),
        length: 1234,
        rebuild: RebuildInfo {
            source: SourceRef::Git {
                url: "https://example.org/app.git".into(),
                commit: "0123456789abcdef0123456789abcdef01234567".into(),
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

/// The example of the DSSE protocol specification.
#[test]
fn pae_matches_the_dsse_specification() {
    assert_eq!(
        pae("http://example.com/HelloWorld", b"hello world"),
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
    );
    assert_eq!(pae("", b""), b"DSSEv1 0  0 ".to_vec());
}

#[test]
fn signed_statement_verifies_with_every_scheme() {
    for scheme in [
        KeyScheme::Ed25519,
        KeyScheme::EcdsaP256,
        KeyScheme::Ed448,
        KeyScheme::HybridEd25519SlhDsa,
    ] {
        let key = PrivateKey::generate(scheme).unwrap();
        let env = statement().sign(&key).unwrap().to_json();
        let got = verify_attestation(&env, key.public_key()).unwrap();
        assert_eq!(got, statement(), "{scheme}");
    }
}

/// Tampering, another key, another payload type: each refused by name.
#[test]
fn forged_or_altered_envelopes_are_refused() {
    let key = PrivateKey::generate(KeyScheme::Ed25519).unwrap();
    let other = PrivateKey::generate(KeyScheme::Ed25519).unwrap();
    let env = statement().sign(&key).unwrap();

    // Signed by someone else.
    let e = verify_attestation(&env.to_json(), other.public_key()).unwrap_err();
    assert!(matches!(e, AttestationError::NoSignature { .. }), "{e}");
    // A signature of another key relabelled with the trusted key's id.
    let mut relabelled = statement().sign(&other).unwrap();
    relabelled.signatures[0].keyid = key.public_key().key_id();
    let e = verify_attestation(&relabelled.to_json(), key.public_key()).unwrap_err();
    assert!(matches!(e, AttestationError::Signature { .. }), "{e}");
    // Another digest in the payload, signature kept.
    let mut altered = env.clone();
    let mut st = statement();
    st.sha256 = "cd".repeat(32);
    altered.payload = st.to_json();
    let e = verify_attestation(&altered.to_json(), key.public_key()).unwrap_err();
    assert!(matches!(e, AttestationError::Signature { .. }), "{e}");
    // The same bytes signed under another payload type do not pass as an attestation, and a
    // signature does not move to another payload type (the PAE binds it).
    let other_type = Envelope::sign("text/plain", statement().to_json(), &key).unwrap();
    let e = verify_attestation(&other_type.to_json(), key.public_key()).unwrap_err();
    assert!(e.to_string().contains("payloadType"), "{e}");
    let mut moved = other_type.clone();
    moved.payload_type = PAYLOAD_TYPE.into();
    let e = verify_attestation(&moved.to_json(), key.public_key()).unwrap_err();
    assert!(matches!(e, AttestationError::Signature { .. }), "{e}");
}

#[test]
fn envelope_parsing_is_strict() {
    let key = PrivateKey::generate(KeyScheme::Ed25519).unwrap();
    let good: Value = serde_json::from_slice(&statement().sign(&key).unwrap().to_json()).unwrap();
    let cases: Vec<(Value, &str)> = vec![
        (
            {
                let mut v = good.clone();
                v["extra"] = json!(1);
                v
            },
            "unknown member",
        ),
        (
            {
                let mut v = good.clone();
                v["signatures"] = json!([]);
                v
            },
            "1 to 16 signatures",
        ),
        (
            {
                let mut v = good.clone();
                v["payload"] = json!("!!");
                v
            },
            "not base64",
        ),
        (
            {
                let mut v = good.clone();
                v["signatures"][0]["extra"] = json!(1);
                v
            },
            "unknown member",
        ),
        (
            {
                let mut v = good.clone();
                let s = v["signatures"][0].clone();
                v["signatures"] = json!([s.clone(), s]);
                v
            },
            "two signatures",
        ),
    ];
    for (v, expect) in cases {
        let e = verify_attestation(v.to_string().as_bytes(), key.public_key()).unwrap_err();
        assert!(e.to_string().contains(expect), "{expect}: {e}");
    }
    let text = String::from_utf8(statement().sign(&key).unwrap().to_json()).unwrap();
    let dup = text.replacen("{", "{\"payloadType\":\"x\",", 1);
    let e = verify_attestation(dup.as_bytes(), key.public_key()).unwrap_err();
    assert!(e.to_string().contains("strict JSON"), "{e}");
}

/// A statement signed correctly but saying something other than one rebuild result is refused.
#[test]
fn statement_parsing_is_strict() {
    let key = PrivateKey::generate(KeyScheme::Ed25519).unwrap();
    let good: Value = serde_json::from_slice(&statement().to_json()).unwrap();
    let cases: Vec<(Value, &str)> = vec![
        (
            {
                let mut v = good.clone();
                v["_type"] = json!("https://in-toto.io/Statement/v0.1");
                v
            },
            "_type",
        ),
        (
            {
                let mut v = good.clone();
                v["predicateType"] = json!("https://slsa.dev/provenance/v1");
                v
            },
            "predicateType",
        ),
        (
            {
                let mut v = good.clone();
                let s = v["subject"][0].clone();
                v["subject"] = json!([s.clone(), s]);
                v
            },
            "exactly one",
        ),
        (
            {
                let mut v = good.clone();
                v["subject"][0]["digest"]["sha512"] = json!("00");
                v
            },
            "subject digest",
        ),
        (
            {
                let mut v = good.clone();
                v["predicate"]["result"]["sha256"] = json!("cd".repeat(32));
                v
            },
            "differs from the subject",
        ),
        (
            {
                let mut v = good.clone();
                v["predicate"]["source"]["commit"] = json!("main");
                v
            },
            "predicate.source.commit",
        ),
        (
            {
                let mut v = good.clone();
                v["predicate"]["extra"] = json!(1);
                v
            },
            "unknown member",
        ),
        (
            {
                let mut v = good.clone();
                v["predicate"]["rebuilder"] = json!("a b");
                v
            },
            "predicate.rebuilder",
        ),
        (
            {
                let mut v = good.clone();
                v["subject"][0]["digest"]["sha256"] = json!("AB".repeat(32));
                v["predicate"]["result"]["sha256"] = json!("AB".repeat(32));
                v
            },
            "lowercase hex",
        ),
    ];
    for (v, expect) in cases {
        let env = Envelope::sign(PAYLOAD_TYPE, v.to_string().into_bytes(), &key).unwrap();
        let e = verify_attestation(&env.to_json(), key.public_key()).unwrap_err();
        assert!(e.to_string().contains(expect), "{expect}: {e}");
    }
}
