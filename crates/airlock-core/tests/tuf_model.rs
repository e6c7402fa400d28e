//! The metadata model: signing, threshold counting, and refusal of malformed metadata.

use std::collections::BTreeMap;

use airlock_core::crypto::{KeyScheme, PrivateKey, Signer};
use airlock_core::tuf::{
    Authority, MetaFile, Metadata, MetadataError, Root, SignMode, Signature, Snapshot, Timestamp,
};
use chrono::{TimeZone, Utc};

/// No hybrid pairings: these tests are about classical keys.
static NO_PQ: std::sync::LazyLock<airlock_core::crypto::PqPairings> =
    std::sync::LazyLock::new(BTreeMap::new);

fn key() -> PrivateKey {
    PrivateKey::generate(KeyScheme::Ed25519).unwrap()
}

fn timestamp() -> Metadata<Timestamp> {
    let exp = Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap();
    Metadata::new(Timestamp::new(1, exp, MetaFile::new(1)))
}

fn keys_of(
    signers: &[&PrivateKey],
) -> (
    BTreeMap<String, airlock_core::crypto::PublicKey>,
    Vec<String>,
) {
    let mut keys = BTreeMap::new();
    let mut ids = Vec::new();
    for s in signers {
        let id = s.public_key().key_id();
        keys.insert(id.clone(), s.public_key().clone());
        ids.push(id);
    }
    (keys, ids)
}

#[test]
fn sign_then_verify_threshold() {
    let (a, b, c) = (key(), key(), key());
    let (keys, ids) = keys_of(&[&a, &b, &c]);
    let mut md = timestamp();
    md.sign(&a, SignMode::ReplaceAll).unwrap();
    let msg = md.signed_bytes().unwrap();
    let auth = |threshold| Authority {
        keys: &keys,
        pq: &NO_PQ,
        keyids: &ids,
        threshold,
    };
    assert_eq!(auth(1).verify(&md.signatures, &msg), Ok(1));
    assert!(auth(2).verify(&md.signatures, &msg).is_err());
    md.sign(&b, SignMode::Append).unwrap();
    assert_eq!(auth(2).verify(&md.signatures, &msg), Ok(2));
    // Re-signing with the same key replaces, never duplicates.
    md.sign(&b, SignMode::Append).unwrap();
    assert_eq!(md.signatures.len(), 2);
    // ReplaceAll keeps only the new one.
    md.sign(&c, SignMode::ReplaceAll).unwrap();
    assert_eq!(md.signatures.len(), 1);
    // Threshold 0 is never met.
    assert!(auth(0).verify(&md.signatures, &msg).is_err());
    // The signatures survive a trip through bytes.
    let back = Metadata::<Timestamp>::from_bytes(&md.to_canonical_bytes().unwrap()).unwrap();
    assert_eq!(
        auth(1).verify(&back.signatures, &back.signed_bytes().unwrap()),
        Ok(1)
    );
    // Changing the signed content breaks the signature.
    let mut changed = back.clone();
    changed.signed.version = 2;
    assert!(
        auth(1)
            .verify(&changed.signatures, &changed.signed_bytes().unwrap())
            .is_err()
    );
}

#[test]
fn duplicate_signatures_and_keyids_count_once() {
    let (a, b) = (key(), key());
    let (mut keys, _) = keys_of(&[&a, &b]);
    let a_id = a.public_key().key_id();
    let mut md = timestamp();
    md.sign(&a, SignMode::ReplaceAll).unwrap();
    let msg = md.signed_bytes().unwrap();
    // The same signature pasted twice.
    let mut sigs = md.signatures.clone();
    sigs.push(sigs[0].clone());
    let listed_twice = vec![a_id.clone(), a_id.clone()];
    let auth = Authority {
        keys: &keys,
        pq: &NO_PQ,
        keyids: &listed_twice,
        threshold: 2,
    };
    assert_eq!(auth.verify(&sigs, &msg).unwrap_err().valid, 1);
    // The same key under a second key id (key ids are opaque strings).
    keys.insert("alias".into(), a.public_key().clone());
    let mut aliased = sigs.clone();
    aliased.push(Signature {
        keyid: "alias".into(),
        ..sigs[0].clone()
    });
    let ids = vec![a_id.clone(), "alias".to_string()];
    let auth = Authority {
        keys: &keys,
        pq: &NO_PQ,
        keyids: &ids,
        threshold: 2,
    };
    assert_eq!(auth.verify(&aliased, &msg).unwrap_err().valid, 1);
}

#[test]
fn unauthorised_unknown_and_garbled_signatures_are_ignored() {
    let (a, b) = (key(), key());
    let (keys, _) = keys_of(&[&a, &b]);
    let mut md = timestamp();
    md.sign(&b, SignMode::ReplaceAll).unwrap();
    let msg = md.signed_bytes().unwrap();
    // b is known in the key table but not listed for this role.
    let only_a = vec![a.public_key().key_id()];
    let auth = Authority {
        keys: &keys,
        pq: &NO_PQ,
        keyids: &only_a,
        threshold: 1,
    };
    assert!(auth.verify(&md.signatures, &msg).is_err());
    // A listed key id with no key in the table.
    let ghost = vec!["ghost".to_string()];
    let auth = Authority {
        keys: &keys,
        pq: &NO_PQ,
        keyids: &ghost,
        threshold: 1,
    };
    let forged = vec![Signature {
        keyid: "ghost".into(),
        sig: "00".into(),
        unrecognized: BTreeMap::new(),
    }];
    assert!(auth.verify(&forged, &msg).is_err());
    // Non-hex or wrong-key signature bytes under a's id.
    let ids = vec![a.public_key().key_id()];
    let auth = Authority {
        keys: &keys,
        pq: &NO_PQ,
        keyids: &ids,
        threshold: 1,
    };
    let mut wrong = md.signatures.clone();
    wrong[0].keyid = ids[0].clone();
    assert!(auth.verify(&wrong, &msg).is_err());
    wrong[0].sig = "zz".into();
    assert!(auth.verify(&wrong, &msg).is_err());
}

fn doc(signed: serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({"signatures": [], "signed": signed})).unwrap()
}

#[test]
fn malformed_metadata_is_refused_with_the_reason() {
    let ts = |f: &dyn Fn(&mut serde_json::Value)| {
        let mut v = serde_json::json!({"_type": "timestamp", "spec_version": "1.0.31", "version": 1,
            "expires": "2030-01-01T00:00:00Z", "meta": {"snapshot.json": {"version": 1}}});
        f(&mut v);
        Metadata::<Timestamp>::from_bytes(&doc(v))
    };
    assert!(ts(&|_| {}).is_ok());
    assert!(matches!(
        ts(&|v| v["_type"] = "root".into()),
        Err(MetadataError::WrongType { .. })
    ));
    assert!(matches!(
        Metadata::<Root>::from_bytes(&doc(serde_json::json!({"_type": "timestamp"}))),
        Err(MetadataError::WrongType {
            expected: "root",
            ..
        })
    ));
    assert!(matches!(
        ts(&|v| v["spec_version"] = "2.0.0".into()),
        Err(MetadataError::SpecVersion { .. })
    ));
    assert!(matches!(
        ts(&|v| v["version"] = 0.into()),
        Err(MetadataError::Malformed { .. })
    ));
    assert!(matches!(
        ts(&|v| v["version"] = (-1).into()),
        Err(MetadataError::Malformed { .. })
    ));
    assert!(matches!(
        ts(&|v| v["version"] = serde_json::json!(1.5)),
        Err(MetadataError::Canonical { .. })
    ));
    assert!(matches!(
        ts(&|v| v["expires"] = "2030-01-01T00:00:00+02:00".into()),
        Err(MetadataError::Malformed { .. })
    ));
    assert!(matches!(
        ts(&|v| v["meta"] = serde_json::json!({})),
        Err(MetadataError::Malformed { .. })
    ));
    assert!(matches!(
        ts(&|v| v["meta"]["snapshot.json"]["hashes"] = serde_json::json!({})),
        Err(MetadataError::Malformed { .. })
    ));
    assert!(matches!(
        Metadata::<Timestamp>::from_bytes(b"[]"),
        Err(MetadataError::Envelope { .. })
    ));
    assert!(matches!(
        Metadata::<Timestamp>::from_bytes(b"{"),
        Err(MetadataError::Json { .. })
    ));
    // Root needs every top-level role with a threshold of at least 1.
    let mut root = serde_json::json!({"_type": "root", "spec_version": "1.0", "version": 1,
        "expires": "2030-01-01T00:00:00Z", "keys": {}, "roles": {}});
    for r in ["root", "timestamp", "snapshot", "targets"] {
        root["roles"][r] = serde_json::json!({"keyids": [], "threshold": 1});
    }
    assert!(Metadata::<Root>::from_bytes(&doc(root.clone())).is_ok());
    let mut zero = root.clone();
    zero["roles"]["snapshot"]["threshold"] = 0.into();
    assert!(Metadata::<Root>::from_bytes(&doc(zero)).is_err());
    let mut missing = root;
    missing["roles"].as_object_mut().unwrap().remove("targets");
    assert!(Metadata::<Root>::from_bytes(&doc(missing)).is_err());
}

#[test]
fn delegation_rules_are_enforced_when_parsing() {
    use airlock_core::tuf::Targets;
    let targets = |delegations: serde_json::Value| {
        Metadata::<Targets>::from_bytes(&doc(serde_json::json!({"_type": "targets",
            "spec_version": "1.0.34", "version": 1, "expires": "2030-01-01T00:00:00Z",
            "targets": {}, "delegations": delegations})))
    };
    let role = |name: &str| serde_json::json!({"name": name, "keyids": [], "threshold": 1, "terminating": false, "paths": ["*"]});
    assert!(targets(serde_json::json!({"keys": {}, "roles": [role("a"), role("b")]})).is_ok());
    assert!(targets(serde_json::json!({"keys": {}, "roles": [role("a"), role("a")]})).is_err());
    assert!(targets(serde_json::json!({"keys": {}, "roles": [role("targets")]})).is_err());
    assert!(targets(serde_json::json!({"keys": {}})).is_err());
    let bins =
        serde_json::json!({"keyids": [], "threshold": 1, "bit_length": 33, "name_prefix": "b"});
    assert!(targets(serde_json::json!({"keys": {}, "succinct_roles": bins})).is_err());
    let mut both = role("a");
    both["path_hash_prefixes"] = serde_json::json!(["00"]);
    assert!(targets(serde_json::json!({"keys": {}, "roles": [both]})).is_err());
}

#[test]
fn typed_parse_edge_cases() {
    use airlock_core::tuf::{TargetFile, Targets};
    let targets = |extra: &str| {
        format!(
            r#"{{"signatures":[],"signed":{{"_type":"targets","spec_version":"1.0.34","version":1,
            "expires":"2030-01-01T00:00:00Z","targets":{{"a":{{"length":1,"hashes":{{"sha256":"00"}}{extra}}}}}}}}}"#
        )
    };
    // An explicit `custom: null` survives the round trip (it is part of what was signed).
    let md = Metadata::<Targets>::from_bytes(targets(r#","custom":null"#).as_bytes()).unwrap();
    assert_eq!(
        md.signed.targets["a"].custom.as_deref(),
        Some(&serde_json::Value::Null)
    );
    let again: serde_json::Value = serde_json::to_value(&md).unwrap();
    assert!(again["signed"]["targets"]["a"]["custom"].is_null());
    assert!(again["signed"]["targets"]["a"].get("custom").is_some());
    // A known field twice is refused, not "last one wins".
    assert!(matches!(
        Metadata::<Targets>::from_bytes(targets(r#","length":2"#).as_bytes()),
        Err(MetadataError::DuplicateKey { .. })
    ));
    // Unknown fields sort in among known ones when written.
    let md = Metadata::<Targets>::from_bytes(targets(r#","zz":1,"b":2"#).as_bytes()).unwrap();
    let canon = String::from_utf8(md.signed_bytes().unwrap()).unwrap();
    assert!(
        canon.contains(r#"{"b":2,"hashes":{"sha256":"00"},"length":1,"zz":1}"#),
        "{canon}"
    );
    // An unknown field shadowing a known one cannot be written (it would be a duplicate key).
    let mut t = TargetFile::from_bytes(b"x");
    t.unrecognized.insert("length".into(), 5.into());
    assert!(airlock_core::cjson::to_vec_of(&t).is_err());
    // A snapshot's `"length": null` could not be written back (the model drops it), so the
    // signed message and the model would differ: refused when read, canonical or not.
    let key = key();
    let mut snap = Metadata::new(Snapshot::new(
        1,
        Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap(),
    ));
    snap.signed
        .meta
        .insert("targets.json".into(), MetaFile::new(1));
    let mut value = serde_json::to_value(&snap).unwrap();
    value["signed"]["meta"]["targets.json"]["length"] = serde_json::Value::Null;
    let msg = airlock_core::cjson::to_vec(&value["signed"]).unwrap();
    let sig = key.sign(&msg).unwrap();
    value["signatures"] =
        serde_json::json!([{"keyid": key.public_key().key_id(), "sig": hex::encode(sig)}]);
    for bytes in [
        serde_json::to_vec(&value).unwrap(),
        airlock_core::cjson::to_vec(&value).unwrap(),
    ] {
        let err = Metadata::<Snapshot>::parse(&bytes).unwrap_err();
        assert!(err.to_string().contains("null"), "{err}");
    }
}

/// The message is the canonical form of `signed` however the file is laid out: canonical bytes
/// are used as they are, other layouts are canonicalised, and both give the same message; a
/// change to the values fails the signature in either layout.
#[test]
fn the_signed_message_is_the_same_for_every_layout_and_covers_every_value() {
    let key = key();
    let mut snap = Metadata::new(Snapshot::new(
        7,
        Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap(),
    ));
    let mut meta = MetaFile::new(3);
    meta.length = Some(1234);
    meta.unrecognized
        .insert("x-note".into(), "a \"quoted\" é".into());
    snap.signed.meta.insert("targets.json".into(), meta);
    snap.sign(&key, SignMode::ReplaceAll).unwrap();
    let (keys, ids) = keys_of(&[&key]);
    let auth = Authority {
        keys: &keys,
        pq: &NO_PQ,
        keyids: &ids,
        threshold: 1,
    };
    let canonical = snap.to_canonical_bytes().unwrap();
    let value: serde_json::Value = serde_json::from_slice(&canonical).unwrap();
    let layouts = [
        canonical.clone(),
        serde_json::to_vec(&snap).unwrap(),
        serde_json::to_vec_pretty(&value).unwrap(),
        // The envelope out of order around a canonical `signed`.
        format!(
            r#"{{"signed": {}, "signatures": {}}}"#,
            serde_json::to_string(&value["signed"]).unwrap(),
            serde_json::to_string(&value["signatures"]).unwrap()
        )
        .into_bytes(),
        // Escapes a canonical writer would not use mean the same string.
        String::from_utf8(canonical.clone())
            .unwrap()
            .replace("é", "\\u00e9")
            .into_bytes(),
    ];
    let expected = snap.signed_bytes().unwrap();
    for bytes in &layouts {
        let parsed = Metadata::<Snapshot>::parse(bytes).unwrap();
        assert_eq!(*parsed.signed_bytes, *expected);
        assert_eq!(parsed.metadata, snap);
        auth.verify(&parsed.metadata.signatures, &parsed.signed_bytes)
            .unwrap();
    }
    // A key twice outside a canonical `signed` is refused as anywhere else.
    let signed = String::from_utf8(snap.signed_bytes().unwrap()).unwrap();
    let sig = &snap.signatures[0];
    let twice = format!(
        r#"{{"signed":{signed},"signatures":[{{"keyid":"{}","keyid":"x","sig":"{}"}}]}}"#,
        sig.keyid, sig.sig
    );
    assert!(matches!(
        Metadata::<Snapshot>::parse(twice.as_bytes()),
        Err(MetadataError::DuplicateKey { .. })
    ));
    // Changed values, in the canonical layout and in an indented one: refused.
    let changed = String::from_utf8(canonical)
        .unwrap()
        .replace("\"length\":1234", "\"length\":1235");
    let indented: serde_json::Value = serde_json::from_str(&changed).unwrap();
    for bytes in [
        changed.clone().into_bytes(),
        serde_json::to_vec_pretty(&indented).unwrap(),
    ] {
        let parsed = Metadata::<Snapshot>::parse(&bytes).unwrap();
        assert_eq!(
            parsed.metadata.signed.meta["targets.json"].length,
            Some(1235)
        );
        assert!(
            auth.verify(&parsed.metadata.signatures, &parsed.signed_bytes)
                .is_err()
        );
    }
}

/// A large canonical targets file has its signatures checked on a second thread while it is
/// read; the verdict is the same as a check after reading, for a genuine and a tampered file.
#[test]
fn a_large_file_is_checked_while_it_is_read_with_the_same_verdict() {
    use airlock_core::tuf::{TargetFile, Targets};
    let key = key();
    let mut targets = Metadata::new(Targets::new(
        1,
        Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap(),
    ));
    for i in 0..12_000 {
        targets.signed.targets.insert(
            format!("files/target-{i:05}.bin"),
            TargetFile::from_bytes(format!("{i}").as_bytes()),
        );
    }
    targets.sign(&key, SignMode::ReplaceAll).unwrap();
    let genuine = targets.to_canonical_bytes().unwrap();
    assert!(genuine.len() > 1 << 20);
    let (keys, ids) = keys_of(&[&key]);
    let auth = Authority {
        keys: &keys,
        pq: &NO_PQ,
        keyids: &ids,
        threshold: 1,
    };
    let reader = std::thread::current().id();
    let check = |signatures: &[Signature], msg: &[u8]| {
        (
            std::thread::current().id() != reader,
            auth.verify(signatures, msg),
        )
    };
    let (parsed, (elsewhere, verdict)) =
        Metadata::<Targets>::parse_checked(&genuine, &check).unwrap();
    assert!(elsewhere, "checked on the reading thread");
    assert_eq!(verdict, Ok(1));
    assert_eq!(parsed.metadata, targets);
    // One digest changed, still canonical: read the same way, refused by the check.
    let text = String::from_utf8(genuine).unwrap();
    let digest = &targets.signed.targets["files/target-00007.bin"].hashes["sha256"];
    let tampered = text.replace(digest.as_str(), &"0".repeat(64));
    let (_, (_, verdict)) =
        Metadata::<Targets>::parse_checked(tampered.as_bytes(), &check).unwrap();
    assert!(verdict.is_err());
    // A file that does not parse gives the parse error, whatever the check says.
    let broken = text.replace("\"length\":", "\"length\":-");
    assert!(Metadata::<Targets>::parse_checked(broken.as_bytes(), &check).is_err());
}
