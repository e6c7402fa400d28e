//! "Each KEY MUST only contribute one SIGNATURE" (TUF spec): a key counts toward a threshold
//! once, however many key ids and encodings a root or delegator lists it under. A key id is only
//! the hash of one encoding, so the counting is by the decoded public key itself.

mod common;

use airlock_core::crypto::PublicKey;
use airlock_core::tuf::Signature;
use common::repo::*;
use p256::pkcs8::DecodePublicKey;
use serde_json::Value;

/// The same Ed25519 key with its hex in upper case: another valid encoding, another key id.
fn upper_case_hex(key: &PublicKey) -> PublicKey {
    let mut other = key.clone();
    let upper = key.public_str().unwrap().to_ascii_uppercase();
    other.keyval.insert("public".into(), Value::String(upper));
    assert_ne!(other.key_id(), key.key_id());
    other
}

/// The same P-256 key as a compressed point in its SubjectPublicKeyInfo PEM.
fn compressed_point(key: &PublicKey) -> PublicKey {
    use base64::Engine as _;
    use p256::elliptic_curve::sec1::ToSec1Point as _;
    let pk = p256::PublicKey::from_public_key_pem(key.public_str().unwrap().trim()).unwrap();
    let point = pk.to_sec1_point(true);
    let point = point.as_bytes();
    assert_eq!(point.len(), 33);
    // SEQUENCE { SEQUENCE { id-ecPublicKey, prime256v1 }, BIT STRING (0 unused bits) point }
    let mut der = vec![0x30, 0x39, 0x30, 0x13, 0x06, 0x07];
    der.extend_from_slice(&[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01]);
    der.extend_from_slice(&[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07]);
    der.extend_from_slice(&[0x03, 0x22, 0x00]);
    der.extend_from_slice(point);
    let b64 = base64::engine::general_purpose::STANDARD.encode(&der);
    let (first, rest) = b64.split_at(64);
    let pem = format!("-----BEGIN PUBLIC KEY-----\n{first}\n{rest}\n-----END PUBLIC KEY-----\n");
    // It really is the same key, in a form the verifier accepts.
    let decoded = p256::PublicKey::from_public_key_pem(pem.trim()).unwrap();
    assert_eq!(decoded, pk);
    let mut other = key.clone();
    other.keyval.insert("public".into(), Value::String(pem));
    assert_ne!(other.key_id(), key.key_id());
    other.validate().unwrap();
    other
}

/// Give `role` the threshold 2 with `key` listed twice: as itself and as `alias`.
fn list_twice(root: &mut Root, role: &str, key: &PublicKey, alias: PublicKey) {
    let alias_id = alias.key_id();
    root.keys.insert(key.key_id(), key.clone());
    root.keys.insert(alias_id.clone(), alias);
    let r = root.roles.get_mut(role).unwrap();
    r.keyids = vec![key.key_id(), alias_id];
    r.threshold = 2;
}

/// Sign with `signer` under its own key id, and copy that signature under `alias`'s key id.
fn signed_twice<T: Role>(md: &mut Metadata<T>, signer: &PrivateKey, alias: &PublicKey) -> Vec<u8> {
    md.signatures.clear();
    let sig = md.sign(signer, SignMode::Append).unwrap().clone();
    md.add_signature(Signature {
        keyid: alias.key_id(),
        ..sig
    });
    pretty(md)
}

/// Pretty JSON: canonical JSON keeps a PEM's newlines raw, which no strict JSON reader takes.
fn pretty<T: Role>(md: &Metadata<T>) -> Vec<u8> {
    md.to_pretty_bytes().unwrap()
}

fn assert_one_of_two(result: Result<impl std::fmt::Debug, TrustError>) {
    let err = result.unwrap_err();
    assert!(
        matches!(&err, TrustError::Signatures { source, .. }
            if source.valid == 1 && source.threshold == 2),
        "{err}"
    );
}

fn one_key_under_two_encodings_meets_no_threshold_of_2(scheme: KeyScheme) {
    let alias_of = |k: &PublicKey| match scheme {
        KeyScheme::Ed25519 => upper_case_hex(k),
        KeyScheme::EcdsaP256 => compressed_point(k),
        other => unreachable!("{other}"),
    };
    let root_key = PrivateKey::generate(scheme).unwrap();
    let targets_key = PrivateKey::generate(scheme).unwrap();
    let root_alias = alias_of(root_key.public_key());
    let targets_alias = alias_of(targets_key.public_key());

    // Root: a trusted root whose root role is "2 of" one key cannot be loaded.
    let mut repo = Repo::new();
    list_twice(
        &mut repo.root.signed,
        "root",
        root_key.public_key(),
        root_alias.clone(),
    );
    let one_key_root = signed_twice(&mut repo.root, &root_key, &root_alias);
    assert_one_of_two(TrustedSet::new(&one_key_root, now()));

    // Root rotation: the trusted v1 approves v2 (one key of its threshold 1), but v2's own
    // threshold of 2 is "met" only by one key listed twice.
    let mut repo = Repo::new();
    let v1 = repo.root_bytes();
    let old = repo.root_signers[0].clone();
    list_twice(
        &mut repo.root.signed,
        "root",
        root_key.public_key(),
        root_alias.clone(),
    );
    repo.root.signed.version = 2;
    signed_twice(&mut repo.root, &root_key, &root_alias);
    repo.root.sign(&*old, SignMode::Append).unwrap();
    let v2 = pretty(&repo.root);
    let mut t = TrustedSet::new(&v1, now()).unwrap();
    assert_one_of_two(t.update_root(&v2));

    // Root rotation, the old root's side: v1 requires 2 of {root key, other}, v2 is signed by
    // the root key under both of its key ids only.
    let mut repo = Repo::new();
    let other = key();
    let r = repo.root.signed.roles.get_mut("root").unwrap();
    r.keyids = vec![root_key.public_key().key_id(), id(&other)];
    r.threshold = 2;
    for k in [root_key.public_key(), other.public_key()] {
        repo.root.signed.keys.insert(k.key_id(), k.clone());
    }
    repo.root.signatures.clear();
    repo.root.sign(&root_key, SignMode::Append).unwrap();
    repo.root.sign(&*other, SignMode::Append).unwrap();
    let v1 = pretty(&repo.root);
    let mut t = TrustedSet::new(&v1, now()).unwrap();
    repo.root
        .signed
        .keys
        .insert(root_alias.key_id(), root_alias.clone());
    let r = repo.root.signed.roles.get_mut("root").unwrap();
    r.keyids = vec![root_key.public_key().key_id(), root_alias.key_id()];
    repo.root.signed.version = 2;
    let v2 = signed_twice(&mut repo.root, &root_key, &root_alias);
    let err = t.update_root(&v2).unwrap_err();
    assert!(
        matches!(&err, TrustError::Signatures { delegator, source, .. }
            if delegator.contains("trusted root") && source.valid == 1),
        "{err}"
    );

    // Targets: threshold 2 "met" by one key listed twice.
    let mut repo = Repo::new();
    list_twice(
        &mut repo.root.signed,
        "targets",
        targets_key.public_key(),
        targets_alias.clone(),
    );
    let mut p = repo.publish();
    p.root = pretty(&repo.root);
    p.targets = signed_twice(&mut repo.targets, &targets_key, &targets_alias);
    repo.snapshot.signed.meta.insert(
        "targets.json".into(),
        MetaFile::with_bytes(repo.targets.signed.version, &p.targets),
    );
    let sn: Vec<&PrivateKey> = repo.snapshot_signers.iter().map(|k| &**k).collect();
    p.snapshot = signed(&mut repo.snapshot, &sn);
    repo.timestamp.signed.meta.insert(
        "snapshot.json".into(),
        MetaFile::with_bytes(repo.snapshot.signed.version, &p.snapshot),
    );
    let ts: Vec<&PrivateKey> = repo.timestamp_signers.iter().map(|k| &**k).collect();
    p.timestamp = signed(&mut repo.timestamp, &ts);
    let mut t = TrustedSet::new(&p.root, now()).unwrap();
    t.update_timestamp(&p.timestamp).unwrap();
    t.update_snapshot(&p.snapshot).unwrap();
    assert_one_of_two(t.update_targets(&p.targets));
}

#[test]
fn an_ed25519_key_in_lower_and_upper_case_hex_counts_once() {
    one_key_under_two_encodings_meets_no_threshold_of_2(KeyScheme::Ed25519);
}

#[test]
fn an_ecdsa_key_as_uncompressed_and_compressed_point_counts_once() {
    one_key_under_two_encodings_meets_no_threshold_of_2(KeyScheme::EcdsaP256);
}

#[test]
fn a_delegated_role_counts_each_key_once() {
    let mut repo = Repo::new();
    repo.delegate("targets", "a", &["a/*"], false);
    let k = repo.roles["a"].signers[0].clone();
    let alias = upper_case_hex(k.public_key());
    let d = repo.targets.signed.delegations.as_mut().unwrap();
    d.keys.insert(alias.key_id(), alias.clone());
    let role = &mut d.roles.as_mut().unwrap()[0];
    role.keyids.push(alias.key_id());
    role.threshold = 2;
    repo.add_target("a", "a/x.txt");
    let mut p = repo.publish();
    let doc = repo.roles.get_mut("a").unwrap();
    let bytes = signed_twice(&mut doc.md, &k, &alias);
    p.roles.insert("a".into(), bytes.clone());
    repo.snapshot.signed.meta.insert(
        "a.json".into(),
        MetaFile::with_bytes(doc.md.signed.version, &bytes),
    );
    let sn: Vec<&PrivateKey> = repo.snapshot_signers.iter().map(|k| &**k).collect();
    p.snapshot = signed(&mut repo.snapshot, &sn);
    repo.timestamp.signed.meta.insert(
        "snapshot.json".into(),
        MetaFile::with_bytes(repo.snapshot.signed.version, &p.snapshot),
    );
    let ts: Vec<&PrivateKey> = repo.timestamp_signers.iter().map(|k| &**k).collect();
    p.timestamp = signed(&mut repo.timestamp, &ts);
    let mut t = TrustedSet::new(&p.root, now()).unwrap();
    t.update_timestamp(&p.timestamp).unwrap();
    t.update_snapshot(&p.snapshot).unwrap();
    t.update_targets(&p.targets).unwrap();
    assert_one_of_two(t.update_delegated_targets(&p.roles["a"], "a", "targets"));
}

#[test]
fn two_distinct_keys_still_meet_a_threshold_of_2() {
    for scheme in [KeyScheme::Ed25519, KeyScheme::EcdsaP256] {
        let mut repo = Repo::new();
        let (r2, g2) = (
            Rc::new(PrivateKey::generate(scheme).unwrap()),
            Rc::new(PrivateKey::generate(scheme).unwrap()),
        );
        for (role, k) in [("root", &r2), ("targets", &g2)] {
            repo.root.signed.add_key(role, k.public_key().clone());
            repo.root.signed.roles.get_mut(role).unwrap().threshold = 2;
        }
        repo.root_signers.push(r2);
        repo.targets_signers.push(g2);
        let mut p = repo.publish();
        p.root = pretty(&repo.root);
        let mut t = TrustedSet::new(&p.root, now()).unwrap();
        t.update_timestamp(&p.timestamp).unwrap();
        t.update_snapshot(&p.snapshot).unwrap();
        t.update_targets(&p.targets).unwrap();
    }
}
