//! Fixtures are made by Debian's gnupg with `testdata/make.sh` (keys created 2020-01-01,
//! documents signed 2020-06-01), so "now" is chosen per test.

use super::*;
use crate::crypto::CryptoError;

const MSG: &[u8] = include_bytes!("testdata/msg.txt");
/// 2020-07-01: every fixture key is valid.
const NOW: u64 = 1_593_561_600;
/// 2021-06-01: the expiring key has expired.
const LATER: u64 = 1_622_505_600;

fn cert(name: &str) -> Vec<u8> {
    let text = match name {
        "rsa" => include_str!("testdata/rsa.asc"),
        "ed" => include_str!("testdata/ed.asc"),
        "expiring" => include_str!("testdata/expiring.asc"),
        "revoked" => include_str!("testdata/revoked.asc"),
        "revoked-before" => include_str!("testdata/revoked-before.asc"),
        _ => unreachable!(),
    };
    // gpg's own bytes, not a re-serialization.
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut pgp::armor::Dearmor::new(text.as_bytes()), &mut out).unwrap();
    out
}

fn sig(name: &str) -> Vec<u8> {
    let bytes: &[u8] = match name {
        "rsa-SHA256" => include_bytes!("testdata/rsa-SHA256.sig"),
        "rsa-SHA512" => include_bytes!("testdata/rsa-SHA512.sig"),
        "rsa-SHA1" => include_bytes!("testdata/rsa-SHA1.sig"),
        "ed-primary" => include_bytes!("testdata/ed-primary.sig"),
        "ed-subkey" => include_bytes!("testdata/ed-subkey.sig"),
        "expiring" => include_bytes!("testdata/expiring.sig"),
        "revoked" => include_bytes!("testdata/revoked.sig"),
        _ => unreachable!(),
    };
    raw_from_packet(bytes).unwrap()
}

/// Fingerprint of the primary key (`None`) or of subkey `i` of a fixture certificate.
fn fpr(name: &str, sub: Option<usize>) -> String {
    let c = parse_cert(&cert(name)).unwrap();
    match sub {
        None => cert::fpr_hex(&c.primary_key),
        Some(i) => cert::fpr_hex(&c.public_subkeys[i].key),
    }
}

/// The TUF key for a fixture key, built without the validity check (so that refused keys
/// can be listed, as an old root might list them).
fn listed(name: &str, sub: Option<usize>) -> PublicKey {
    let c = parse_cert(&cert(name)).unwrap();
    let params = match sub {
        None => params_of(&c.primary_key),
        Some(i) => params_of(&c.public_subkeys[i].key),
    };
    let (keytype, scheme, public) = match &params {
        KeyParams::Rsa { n, e } => (
            "rsa",
            "pgp+rsa-pkcsv1.5",
            serde_json::json!({"e": hex::encode(e), "n": hex::encode(n)}),
        ),
        KeyParams::Ed25519(q) => (
            "eddsa",
            "pgp+eddsa-ed25519",
            serde_json::json!({"q": hex::encode(q)}),
        ),
        KeyParams::Other(_) => unreachable!(),
    };
    let armored = c.to_armored_string(ArmorOptions::default()).unwrap();
    serde_json::from_value(serde_json::json!({
        "keytype": keytype,
        "scheme": scheme,
        "keyval": {"public": public, "certificate": armored},
    }))
    .unwrap()
}

fn refusal(r: Result<(), CryptoError>) -> String {
    match r {
        Err(CryptoError::Refused { reason, .. }) => reason,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn gnupg_signatures_verify() {
    verify_at(&listed("rsa", None), MSG, &sig("rsa-SHA256"), NOW).unwrap();
    verify_at(&listed("ed", None), MSG, &sig("ed-primary"), NOW).unwrap();
    verify_at(&listed("ed", Some(0)), MSG, &sig("ed-subkey"), NOW).unwrap();
    verify_at(&listed("expiring", None), MSG, &sig("expiring"), NOW).unwrap();
    verify_at(&listed("revoked-before", None), MSG, &sig("revoked"), NOW).unwrap();
}

#[test]
fn key_form_is_securesystemslibs_and_key_id_is_the_fingerprint() {
    let k = public_key_from_certificate(&cert("rsa"), &fpr("rsa", None), NOW).unwrap();
    assert_eq!(k.keytype, "rsa");
    assert_eq!(k.scheme, "pgp+rsa-pkcsv1.5");
    assert_eq!(k.keyval["public"]["e"], "010001");
    assert_eq!(k.keyval["public"]["n"].as_str().unwrap().len(), 768);
    assert_eq!(k.key_id(), fpr("rsa", None));
    let e = public_key_from_certificate(&cert("ed"), &fpr("ed", Some(0)), NOW).unwrap();
    assert_eq!(
        (e.keytype.as_str(), e.scheme.as_str()),
        ("eddsa", "pgp+eddsa-ed25519")
    );
    assert_eq!(e.key_id(), fpr("ed", Some(0)));
    assert_eq!(e.keyval["public"]["q"].as_str().unwrap().len(), 64);
    k.validate().unwrap();
    // The same RSA numbers listed as a PSS key are the same key when counting a threshold.
    assert_eq!(k.material().unwrap().scheme(), KeyScheme::RsaPssSha256);
}

#[test]
fn metadata_form_round_trips() {
    let k = listed("ed", None);
    let raw = sig("ed-primary");
    let (hex_sig, fields) = k.signature_fields(&raw).unwrap();
    assert_eq!(hex_sig.len(), 128, "sig holds R || S only");
    assert!(
        fields[OTHER_HEADERS_FIELD]
            .as_str()
            .unwrap()
            .starts_with("0400")
    );
    assert_eq!(k.signature_bytes(&hex_sig, &fields).unwrap(), raw);
    // Without other_headers there is nothing to verify.
    assert!(k.signature_bytes(&hex_sig, &BTreeMap::new()).is_err());
}

#[test]
fn flipped_bits_and_wrong_keys_refused() {
    for (key, s) in [
        (listed("rsa", None), sig("rsa-SHA256")),
        (listed("ed", None), sig("ed-primary")),
    ] {
        for i in 0..s.len() {
            let mut bad = s.clone();
            bad[i] ^= 0x01;
            assert!(verify_at(&key, MSG, &bad, NOW).is_err(), "flipped byte {i}");
        }
        for i in 0..s.len() {
            let _ = verify_at(&key, MSG, &s[..i], NOW); // never panics
        }
        let mut msg = MSG.to_vec();
        msg[3] ^= 0x01;
        assert!(matches!(
            verify_at(&key, &msg, &s, NOW),
            Err(CryptoError::BadSignature { .. })
        ));
    }
    // Another certificate's key.
    assert!(verify_at(&listed("expiring", None), MSG, &sig("ed-primary"), NOW).is_err());
    assert!(verify_at(&listed("rsa", None), MSG, &sig("ed-primary"), NOW).is_err());
    // Relabelled as a plain Ed25519 key, the material is not hex of 32 bytes: nothing verifies.
    let mut relabelled = listed("ed", None);
    relabelled.keytype = "ed25519".into();
    relabelled.scheme = "ed25519".into();
    assert!(relabelled.verify(MSG, &sig("ed-primary")).is_err());
}

#[test]
fn hash_algorithm_must_be_sha256() {
    let key = listed("rsa", None);
    let why = refusal(verify_at(&key, MSG, &sig("rsa-SHA512"), NOW));
    assert!(
        why.contains("SHA-512") && why.contains("allowed: SHA-256"),
        "{why}"
    );
    let why = refusal(verify_at(&key, MSG, &sig("rsa-SHA1"), NOW));
    assert!(why.contains("SHA-1"), "{why}");
}

#[test]
fn another_key_of_the_certificate_is_not_the_listed_one() {
    // The signing subkey's signature does not stand in for the listed primary key...
    let why = refusal(verify_at(&listed("ed", None), MSG, &sig("ed-subkey"), NOW));
    assert!(why.contains("not by the listed key"), "{why}");
    // ... nor the primary's for the listed subkey.
    let why = refusal(verify_at(
        &listed("ed", Some(0)),
        MSG,
        &sig("ed-primary"),
        NOW,
    ));
    assert!(why.contains("not by the listed key"), "{why}");
    // Rewriting the issuer to name the listed key breaks the signature: the header is signed.
    let key = listed("ed", None);
    let mut forged = sig("ed-subkey");
    let (sub, primary) = (fpr("ed", Some(0)), fpr("ed", None));
    let at = forged
        .windows(20)
        .position(|w| hex::encode(w) == sub)
        .unwrap();
    forged[at..at + 20].copy_from_slice(&hex::decode(primary).unwrap());
    assert!(matches!(
        verify_at(&key, MSG, &forged, NOW),
        Err(CryptoError::BadSignature { .. })
    ));
}

#[test]
fn expired_key_refused() {
    let key = listed("expiring", None);
    verify_at(&key, MSG, &sig("expiring"), NOW).unwrap();
    let why = refusal(verify_at(&key, MSG, &sig("expiring"), LATER));
    assert!(why.contains("expired at 2020-12-31"), "{why}");
    // Nor can such a key be put into metadata.
    let f = fpr("expiring", None);
    assert!(matches!(
        public_key_from_certificate(&cert("expiring"), &f, LATER),
        Err(CryptoError::Refused { .. })
    ));
    // And with the system clock (it is past 2021), the signature is refused too.
    assert!(key.verify(MSG, &sig("expiring")).is_err());
}

#[test]
fn revoked_key_refused() {
    let why = refusal(verify_at(
        &listed("revoked", None),
        MSG,
        &sig("revoked"),
        NOW,
    ));
    assert!(why.contains("revoked"), "{why}");
}

#[test]
fn subkey_without_signing_capability_refused() {
    // Subkey 1 of `ed` is an authentication-only key.
    let why = refusal(verify_at(
        &listed("ed", Some(1)),
        MSG,
        &sig("ed-subkey"),
        NOW,
    ));
    assert!(why.contains("may not sign"), "{why}");
    assert!(public_key_from_certificate(&cert("ed"), &fpr("ed", Some(1)), NOW).is_err());
}

#[test]
fn malformed_keys_refused() {
    let mut k = listed("ed", None);
    k.keyval.remove(CERTIFICATE_FIELD);
    assert!(matches!(
        k.validate(),
        Err(CryptoError::MalformedKey { .. })
    ));
    assert!(k.verify(MSG, &sig("ed-primary")).is_err());
    // keyval.public of a key the certificate does not hold.
    let mut k = listed("ed", None);
    k.keyval.insert(
        "public".into(),
        listed("expiring", None).keyval["public"].clone(),
    );
    assert!(matches!(
        k.validate(),
        Err(CryptoError::MalformedKey { .. })
    ));
    // A certificate whose armor checksum does not match.
    let mut k = listed("ed", None);
    let text = k.keyval[CERTIFICATE_FIELD].as_str().unwrap().to_string();
    let eq = text.rfind("\n=").unwrap() + 2;
    let mut t = text.into_bytes();
    t[eq] = if t[eq] == b'A' { b'B' } else { b'A' };
    k.keyval.insert(
        CERTIFICATE_FIELD.into(),
        Value::String(String::from_utf8(t).unwrap()),
    );
    assert!(matches!(
        k.validate(),
        Err(CryptoError::MalformedKey { .. })
    ));
    // Truncated certificates never panic.
    let bytes = cert("ed");
    for i in 0..bytes.len() {
        let _ = parse_cert(&bytes[..i]);
        let _ = public_key_from_certificate(&bytes[..i], &fpr("ed", None), NOW);
    }
}
