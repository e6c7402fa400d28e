//! Hybrid keys in their additive form (docs/keys.md): roles list the Ed25519 half as a plain
//! TUF key, the delegator pairs it with an SLH-DSA key in `x-airlock-pq`, and the SLH-DSA
//! signature travels under its own key id. An Airlock client counts such a key only with both
//! halves; these tests play an attacker who can forge Ed25519 (the key's Ed25519 half signs
//! whatever the attacker wants) but holds no SLH-DSA signature over the forged bytes.
//!
//! SLH-DSA signing takes about 1.7 s, so each fixture is signed once per process.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use airlock_core::crypto::{KeyScheme, PairedSigner, PqKey, PrivateKey, PublicKey, Signer};
use airlock_core::tuf::{
    Authority, DelegatedRole, Delegations, MetaFile, Metadata, Root, SignMode, Signature, Snapshot,
    Targets, Timestamp, TrustedSet,
};
use chrono::{DateTime, Duration, TimeZone, Utc};

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0).unwrap()
}
fn later() -> DateTime<Utc> {
    now() + Duration::days(365)
}

fn paired() -> PairedSigner {
    let PrivateKey::Hybrid(h) = PrivateKey::generate(KeyScheme::HybridEd25519SlhDsa).unwrap()
    else {
        unreachable!()
    };
    PairedSigner::new(h).unwrap()
}

/// The Ed25519 half alone, as an attacker who broke Ed25519 would sign.
struct EdOnly<'a>(&'a PairedSigner);
impl Signer for EdOnly<'_> {
    fn public_key(&self) -> &PublicKey {
        self.0.public_key()
    }
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, airlock_core::crypto::CryptoError> {
        self.0.sign(msg)
    }
}

struct Keys {
    root: PairedSigner,
    online: PairedSigner,
}

fn keys() -> &'static Keys {
    static K: OnceLock<Keys> = OnceLock::new();
    K.get_or_init(|| Keys {
        root: paired(),
        online: paired(),
    })
}

fn add(root: &mut Root, role: &str, key: &PairedSigner) {
    let id = root.add_key(role, key.public_key().clone());
    root.pq.insert(id, key.post_quantum().unwrap().clone());
}

/// Root v1: every role hybrid; root's key for root, one online key for the other three.
fn root_v1() -> &'static Metadata<Root> {
    static R: OnceLock<Metadata<Root>> = OnceLock::new();
    R.get_or_init(|| {
        let k = keys();
        let mut root = Root::new(later());
        add(&mut root, "root", &k.root);
        for role in ["targets", "snapshot", "timestamp"] {
            add(&mut root, role, &k.online);
        }
        let mut md = Metadata::new(root);
        md.sign(&k.root, SignMode::ReplaceAll).unwrap();
        md
    })
}

fn bytes<T: airlock_core::tuf::Role>(md: &Metadata<T>) -> Vec<u8> {
    md.to_canonical_bytes().unwrap()
}

fn timestamp(version: u64) -> Metadata<Timestamp> {
    Metadata::new(Timestamp::new(version, later(), MetaFile::new(1)))
}

/// Timestamp v1 and v2 and snapshot v1, each properly signed by the online hybrid key.
fn online_files() -> &'static (Metadata<Timestamp>, Metadata<Timestamp>, Metadata<Snapshot>) {
    static F: OnceLock<(Metadata<Timestamp>, Metadata<Timestamp>, Metadata<Snapshot>)> =
        OnceLock::new();
    F.get_or_init(|| {
        let k = &keys().online;
        let mut t1 = timestamp(1);
        t1.sign(k, SignMode::ReplaceAll).unwrap();
        let mut t2 = timestamp(2);
        t2.sign(k, SignMode::ReplaceAll).unwrap();
        let mut snapshot = Metadata::new(Snapshot::new(1, later()));
        snapshot
            .signed
            .meta
            .insert("targets.json".into(), MetaFile::new(1));
        snapshot.sign(k, SignMode::ReplaceAll).unwrap();
        (t1, t2, snapshot)
    })
}

fn trusted() -> TrustedSet {
    TrustedSet::new(&bytes(root_v1()), now()).unwrap()
}

fn pq_keyid(key: &PairedSigner) -> String {
    key.post_quantum()
        .unwrap()
        .signature_keyid(key.public_key())
        .unwrap()
}

fn pq_entry<T>(md: &Metadata<T>, key: &PairedSigner) -> Signature {
    let id = pq_keyid(key);
    md.signatures
        .iter()
        .find(|s| s.keyid == id)
        .unwrap()
        .clone()
}

/// Timestamp v2 with the Ed25519 half forged and `pq` as the post-quantum entry.
fn forged_timestamp(pq: Option<Signature>) -> Vec<u8> {
    let k = &keys().online;
    let mut t = timestamp(2);
    t.sign(&EdOnly(k), SignMode::ReplaceAll).unwrap();
    if let Some(pq) = pq {
        t.add_signature(pq);
    }
    bytes(&t)
}

#[test]
fn properly_signed_hybrid_metadata_is_accepted() {
    let (t1, t2, snapshot) = online_files();
    // Two entries per signature: the Ed25519 key id, and the SLH-DSA half's own key id.
    assert_eq!(t1.signatures.len(), 2);
    assert!(t1.signatures[1].keyid.starts_with("slh-dsa-sha2-128s:"));
    let mut set = trusted();
    set.update_timestamp(&bytes(t1)).unwrap();
    set.update_timestamp(&bytes(t2)).unwrap();
    set.update_snapshot(&bytes(snapshot)).unwrap();
}

#[test]
fn stripped_pq_signature_is_refused() {
    let mut set = trusted();
    let err = set.update_timestamp(&forged_timestamp(None)).unwrap_err();
    assert!(err.to_string().contains("threshold"), "{err}");
    // Properly signed, then the SLH-DSA entry removed: refused too.
    let (t1, _, _) = online_files();
    let mut stripped = t1.clone();
    stripped
        .signatures
        .retain(|s| !s.keyid.starts_with("slh-dsa"));
    assert!(set.update_timestamp(&bytes(&stripped)).is_err());
    assert!(set.timestamp().is_none());
}

#[test]
fn pq_signature_swapped_between_roles_is_refused() {
    // The same online key signs snapshot and timestamp: its SLH-DSA entry from snapshot.json
    // even has the right key id for timestamp.json, but covers other bytes.
    let (_, _, snapshot) = online_files();
    let mut set = trusted();
    let swapped = pq_entry(snapshot, &keys().online);
    assert!(
        set.update_timestamp(&forged_timestamp(Some(swapped)))
            .is_err()
    );
    // Root's SLH-DSA entry, relabelled as the timestamp key's: another key, other bytes.
    let mut from_root = pq_entry(root_v1(), &keys().root);
    from_root.keyid = pq_keyid(&keys().online);
    assert!(
        set.update_timestamp(&forged_timestamp(Some(from_root)))
            .is_err()
    );
    assert!(set.timestamp().is_none());
}

#[test]
fn pq_signature_replayed_from_older_version_is_refused() {
    let (t1, _, _) = online_files();
    let mut set = trusted();
    set.update_timestamp(&bytes(t1)).unwrap();
    let replayed = pq_entry(t1, &keys().online);
    assert!(
        set.update_timestamp(&forged_timestamp(Some(replayed)))
            .is_err()
    );
    assert_eq!(set.timestamp().unwrap().signed.version, 1);
}

#[test]
fn pq_signatures_swapped_between_keys_do_not_count() {
    let (a, b) = (&keys().root, &keys().online);
    let mut keys_table = BTreeMap::new();
    let mut pq = BTreeMap::new();
    let mut ids = Vec::new();
    for k in [a, b] {
        let id = k.public_key().key_id();
        keys_table.insert(id.clone(), k.public_key().clone());
        pq.insert(id.clone(), k.post_quantum().unwrap().clone());
        ids.push(id);
    }
    let auth = Authority {
        keys: &keys_table,
        pq: &pq,
        keyids: &ids,
        threshold: 2,
    };
    let (t1, _, _) = online_files();
    let msg = t1.signed_bytes().unwrap();
    let mut md = t1.clone();
    md.sign(a, SignMode::Append).unwrap();
    assert_eq!(auth.verify(&md.signatures, &msg), Ok(2));
    // Each key's SLH-DSA signature under the other's entry.
    let (ia, ib) = (pq_keyid(a), pq_keyid(b));
    for s in &mut md.signatures {
        if s.keyid == ia {
            s.keyid = ib.clone();
        } else if s.keyid == ib {
            s.keyid = ia.clone();
        }
    }
    assert_eq!(auth.count_valid(&md.signatures, &msg), 0);
}

/// The pairing is signed content of root: a new root that drops it must meet the old root's
/// hybrid threshold, so an attacker who forges only Ed25519 cannot remove it.
#[test]
fn a_new_root_drops_a_pairing_only_with_both_halves_of_the_old_root_key() {
    let k = keys();
    let mut v2 = root_v1().signed.clone();
    v2.version = 2;
    v2.pq.clear();
    let mut forged = Metadata::new(v2.clone());
    forged.sign(&EdOnly(&k.root), SignMode::ReplaceAll).unwrap();
    let mut set = trusted();
    let err = set.update_root(&bytes(&forged)).unwrap_err();
    assert!(err.to_string().contains("root"), "{err}");
    assert_eq!(set.root().signed.version, 1);
    // Keeping the pairing but signing with the Ed25519 half alone fails the same way.
    let mut kept = root_v1().signed.clone();
    kept.version = 2;
    let mut forged = Metadata::new(kept);
    forged.sign(&EdOnly(&k.root), SignMode::ReplaceAll).unwrap();
    assert!(set.update_root(&bytes(&forged)).is_err());
    // The vendor may drop it (a documented downgrade): a root v2 signed by both halves of the
    // v1 root key. From then on the Ed25519 half alone counts.
    let mut proper = Metadata::new(v2);
    proper.sign(&k.root, SignMode::ReplaceAll).unwrap();
    set.update_root(&bytes(&proper)).unwrap();
    set.update_timestamp(&forged_timestamp(None)).unwrap();
}

#[test]
fn a_paired_key_counts_under_no_unpaired_key_id() {
    // The same Ed25519 key listed a second time under another key id without a pairing must
    // not let its Ed25519 signature count alone.
    let k = &keys().online;
    let mut upper = k.public_key().clone();
    let hex = upper.keyval["public"].as_str().unwrap().to_uppercase();
    upper.keyval.insert("public".into(), hex.into());
    let alias = upper.key_id();
    let mut table = BTreeMap::from([
        (k.public_key().key_id(), k.public_key().clone()),
        (alias.clone(), upper),
    ]);
    let pq = BTreeMap::from([(k.public_key().key_id(), k.post_quantum().unwrap().clone())]);
    let ids = vec![alias.clone()];
    let mut t = timestamp(3);
    t.sign(&EdOnly(k), SignMode::ReplaceAll).unwrap();
    t.signatures[0].keyid = alias.clone();
    let msg = t.signed_bytes().unwrap();
    let auth = Authority {
        keys: &table,
        pq: &pq,
        keyids: &ids,
        threshold: 1,
    };
    assert_eq!(auth.count_valid(&t.signatures, &msg), 0);
    // Without the pairing elsewhere in the table it would count: the rule is what refuses.
    table.remove(&k.public_key().key_id());
    let none = BTreeMap::new();
    let auth = Authority {
        keys: &table,
        pq: &none,
        keyids: &ids,
        threshold: 1,
    };
    assert_eq!(auth.count_valid(&t.signatures, &msg), 1);
}

#[test]
fn malformed_pairings_make_metadata_malformed() {
    let k = keys();
    let reparse = |root: Root| {
        let md = Metadata::new(root);
        Metadata::<Root>::parse(&bytes(&md)).map(|_| ())
    };
    // A pairing for a key id root does not list.
    let mut root = root_v1().signed.clone();
    root.pq
        .insert("ab".repeat(32), k.root.post_quantum().unwrap().clone());
    let err = reparse(root).unwrap_err();
    assert!(err.to_string().contains("does not list"), "{err}");
    // An unknown post-quantum scheme, or a malformed key.
    for bad in [
        PqKey {
            scheme: "ml-dsa-44".into(),
            public: "00".repeat(32),
        },
        PqKey {
            scheme: "slh-dsa-sha2-128s".into(),
            public: "00".repeat(31),
        },
    ] {
        let mut root = root_v1().signed.clone();
        root.pq.insert(k.root.public_key().key_id(), bad);
        assert!(reparse(root).is_err());
    }
    // A key listed under the signature key id of a post-quantum half.
    let mut root = root_v1().signed.clone();
    root.keys
        .insert(pq_keyid(&k.root), k.online.public_key().clone());
    let err = reparse(root).unwrap_err();
    assert!(err.to_string().contains("signature key id"), "{err}");
    // Unknown members in a pairing.
    let mut value = serde_json::to_value(root_v1()).unwrap();
    value["signed"]["x-airlock-pq"][k.root.public_key().key_id()]["extra"] = 1.into();
    assert!(Metadata::<Root>::parse(&serde_json::to_vec(&value).unwrap()).is_err());
}

#[test]
fn delegations_carry_pairings_for_delegated_roles() {
    let k = &keys().online;
    let id = k.public_key().key_id();
    let mut delegations = Delegations::with_roles(
        BTreeMap::from([(id.clone(), k.public_key().clone())]),
        vec![DelegatedRole::with_paths(
            "app",
            vec![id.clone()],
            1,
            vec!["*".into()],
        )],
    );
    delegations
        .pq
        .insert(id.clone(), k.post_quantum().unwrap().clone());
    let mut targets = Targets::new(1, later());
    targets.delegations = Some(delegations);
    let md = Metadata::new(targets);
    let written = bytes(&md);
    let parsed = Metadata::<Targets>::parse(&written).unwrap();
    let auth = parsed
        .metadata
        .signed
        .delegations
        .as_ref()
        .unwrap()
        .authority("app")
        .unwrap();
    assert_eq!(auth.pq.len(), 1);
    // A delegated role signed with the Ed25519 half alone does not count.
    let mut app = Metadata::new(Targets::new(1, later()));
    app.sign(&EdOnly(k), SignMode::ReplaceAll).unwrap();
    let msg = app.signed_bytes().unwrap();
    assert_eq!(auth.count_valid(&app.signatures, &msg), 0);
    let raw = serde_json::to_value(&parsed.metadata.signed).unwrap();
    assert!(raw["delegations"]["x-airlock-pq"][&id]["public"].is_string());
}

#[test]
fn a_hybrid_key_file_pairs_to_the_same_key_ids() {
    // What `airlock key generate --scheme hybrid` prints splits into the form roles list.
    let PrivateKey::Hybrid(h) = PrivateKey::generate(KeyScheme::HybridEd25519SlhDsa).unwrap()
    else {
        unreachable!()
    };
    let described = h.public_key().clone();
    let signer = PairedSigner::new(h).unwrap();
    let (ed, pq) = airlock_core::crypto::paired::split_hybrid(&described).unwrap();
    assert_eq!(&ed, signer.public_key());
    assert_eq!(Some(&pq), signer.post_quantum());
    assert_eq!(ed.keytype, "ed25519");
}

/// Repositories made before the additive form list the hybrid key as one key of keytype
/// `ed25519-slh-dsa-sha2-128s`: they still verify.
#[test]
fn the_legacy_hybrid_keytype_still_verifies() {
    let legacy = PrivateKey::generate(KeyScheme::HybridEd25519SlhDsa).unwrap();
    assert_eq!(legacy.public_key().keytype, "ed25519-slh-dsa-sha2-128s");
    let mut root = Root::new(later());
    for role in ["root", "targets", "snapshot", "timestamp"] {
        root.add_key(role, legacy.public_key().clone());
    }
    let mut root = Metadata::new(root);
    root.sign(&legacy, SignMode::ReplaceAll).unwrap();
    assert_eq!(root.signatures.len(), 1);
    let mut set = TrustedSet::new(&bytes(&root), now()).unwrap();
    let mut t = timestamp(1);
    t.sign(&legacy, SignMode::ReplaceAll).unwrap();
    set.update_timestamp(&bytes(&t)).unwrap();
    // Its Ed25519 half alone (a plain Ed25519 signature) does not count for it.
    let PrivateKey::Hybrid(h) = legacy else {
        unreachable!()
    };
    let paired = PairedSigner::new(h).unwrap();
    let mut forged = timestamp(2);
    forged.sign(&EdOnly(&paired), SignMode::ReplaceAll).unwrap();
    forged.signatures[0].keyid = root.signed.roles["timestamp"].keyids[0].clone();
    assert!(set.update_timestamp(&bytes(&forged)).is_err());
}
