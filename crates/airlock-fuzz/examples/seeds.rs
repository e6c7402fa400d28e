//! Writes the seed inputs of every fuzz target into `<dir>/<target>/seed-*`.
//!
//! `cargo run -p airlock-fuzz --example seeds -- fuzz/corpus` (then minimise, see
//! docs/fuzzing.md). Seeds are documents the fixture world accepts, plus the same documents with
//! keys of every scheme, delegations of every kind and the optional fields, so the fuzzer starts
//! from inputs that reach the verification code. Keys other than the fixture's are fresh, so
//! the files differ from run to run; the committed corpus is what counts.

use std::collections::BTreeMap;
use std::path::Path;

use airlock_core::crypto::{KeyScheme, PrivateKey, Signer};
use airlock_core::tlog::{Note, ProofBundle, encode_entry_bundle, leaf_hash};
use airlock_core::transparency::ReleaseStatement;
use airlock_core::tuf::{
    DelegatedRole, Delegations, MetaFile, Metadata, Role, Root, SignMode, Snapshot, SuccinctRoles,
    Targets, Timestamp,
};
use airlock_fuzz::fixture::{
    Fixture, LOG_SIZE, RELEASE_LOG_ORIGIN, RELEASE_OLD_SIZE, entry, release_entry, resign,
};

fn write(dir: &Path, target: &str, name: &str, bytes: &[u8]) {
    let d = dir.join(target);
    std::fs::create_dir_all(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display()));
    let p = d.join(format!("seed-{name}"));
    std::fs::write(&p, bytes).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
}

fn parse<T: Role>(bytes: &[u8]) -> Metadata<T> {
    Metadata::<T>::from_bytes(bytes).expect("fixture metadata parses")
}

fn pretty<T: Role>(bytes: &[u8]) -> Vec<u8> {
    parse::<T>(bytes).to_pretty_bytes().expect("pretty")
}

fn signed_by<T: Role>(md: &mut Metadata<T>, keys: &[&PrivateKey]) -> Vec<u8> {
    md.signatures.clear();
    for k in keys {
        md.sign(*k, SignMode::Append).expect("sign");
    }
    serde_json::to_vec(md).expect("json")
}

fn main() {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "fuzz/corpus".into());
    let dir = Path::new(&dir);
    let f = Fixture::get();

    // Canonical JSON: every fixture document, and values at the edges of the rules.
    for (name, bytes) in [
        ("root", &f.root),
        ("timestamp", &f.timestamp),
        ("snapshot", &f.snapshot),
        ("targets", &f.targets),
    ] {
        write(dir, "cjson", name, bytes);
    }
    write(dir, "cjson", "root-pretty", &pretty::<Root>(&f.root));
    write(
        dir,
        "cjson",
        "edges",
        br#"{"b":[1,-1,18446744073709551615,-9223372036854775808,true,false,null],"a":"\u00e9\"\\\n\t\u0000","":{}}"#,
    );
    write(dir, "cjson", "float", br#"[1.0,-0,1e3,0.5]"#);

    // Root: the fixture root, a pretty-printed one, a rotation to v2, and roots whose roles
    // use every key scheme, each signed by its keys (signature code of every scheme).
    write(dir, "tuf_root", "fixture", &f.root);
    write(dir, "tuf_root", "pretty", &pretty::<Root>(&f.root));
    let mut v2 = parse::<Root>(&f.root);
    v2.signed.version = 2;
    write(
        dir,
        "tuf_root",
        "v2",
        &resign(&mut v2, &f.root_key).expect("v2"),
    );
    for scheme in [
        KeyScheme::EcdsaP256,
        KeyScheme::RsaPssSha256,
        KeyScheme::HybridEd25519SlhDsa,
        KeyScheme::Ed448,
    ] {
        let k = if scheme == KeyScheme::RsaPssSha256 {
            PrivateKey::generate_rsa(2048)
        } else {
            PrivateKey::generate(scheme)
        }
        .expect("generate");
        let mut root = parse::<Root>(&f.root);
        root.signed.version = 2;
        root.signed.add_key("root", k.public_key().clone());
        root.signed.add_key("timestamp", k.public_key().clone());
        if let Some(r) = root.signed.roles.get_mut("root") {
            r.threshold = 2;
        }
        let bytes = signed_by(&mut root, &[&f.root_key, &k]);
        write(dir, "tuf_root", scheme.short_name(), &bytes);
    }

    // Roots carrying the release log's transparency field: as the first root and as a rotation
    // that switches it on (whole-root mutations reach the field's parser through TrustedSet).
    for (name, version) in [("transparency", 1), ("transparency-v2", 2)] {
        let mut root = parse::<Root>(&f.root);
        root.signed.version = version;
        root.signed.unrecognized.insert(
            airlock_core::transparency::EXTENSION_FIELD.into(),
            f.release.policy.to_value(),
        );
        write(
            dir,
            "tuf_root",
            name,
            &resign(&mut root, &f.root_key).expect("root"),
        );
    }

    // Timestamp: the fixture, a newer one listing the snapshot's length and hashes.
    write(dir, "tuf_timestamp", "fixture", &f.timestamp);
    write(
        dir,
        "tuf_timestamp",
        "pretty",
        &pretty::<Timestamp>(&f.timestamp),
    );
    let mut ts = parse::<Timestamp>(&f.timestamp);
    ts.signed.version = 2;
    ts.signed
        .meta
        .insert("snapshot.json".into(), MetaFile::with_bytes(1, &f.snapshot));
    write(
        dir,
        "tuf_timestamp",
        "hashes",
        &resign(&mut ts, &f.timestamp_key).expect("ts"),
    );

    // Snapshot: the fixture, one with lengths and hashes of the roles.
    write(dir, "tuf_snapshot", "fixture", &f.snapshot);
    write(
        dir,
        "tuf_snapshot",
        "pretty",
        &pretty::<Snapshot>(&f.snapshot),
    );
    let mut snap = parse::<Snapshot>(&f.snapshot);
    for (role, bytes) in [
        ("targets", &f.targets),
        ("role-a", &f.role_a),
        ("role-c", &f.role_c),
    ] {
        snap.signed
            .meta
            .insert(format!("{role}.json"), MetaFile::with_bytes(1, bytes));
    }
    write(
        dir,
        "tuf_snapshot",
        "hashes",
        &resign(&mut snap, &f.snapshot_key).expect("snap"),
    );

    // Targets: the fixture's three roles, and delegations by hash prefix and succinct bins.
    write(dir, "tuf_targets", "fixture", &f.targets);
    write(dir, "tuf_targets", "role-a", &f.role_a);
    write(dir, "tuf_targets", "role-c", &f.role_c);
    write(dir, "tuf_targets", "pretty", &pretty::<Targets>(&f.targets));
    let delegated = f.delegated_key.public_key().clone();
    let keys = BTreeMap::from([(delegated.key_id(), delegated.clone())]);
    let mut prefixes = parse::<Targets>(&f.targets);
    let mut by_hash = DelegatedRole::with_hash_prefixes(
        "role-a",
        vec![delegated.key_id()],
        1,
        vec!["0".into(), "8f".into()],
    );
    by_hash.terminating = true;
    prefixes.signed.delegations = Some(Delegations::with_roles(keys.clone(), vec![by_hash]));
    write(
        dir,
        "tuf_targets",
        "hash-prefixes",
        &resign(&mut prefixes, &f.targets_key).expect("t"),
    );
    let mut bins = parse::<Targets>(&f.targets);
    bins.signed.delegations = Some(Delegations::with_succinct_roles(
        keys,
        SuccinctRoles::new(vec![delegated.key_id()], 1, 4, "bin"),
    ));
    write(
        dir,
        "tuf_targets",
        "succinct",
        &resign(&mut bins, &f.targets_key).expect("t"),
    );

    // Notes and checkpoints: the fixture's, and the Go and C2SP vectors.
    let vectors = Path::new(env!("CARGO_MANIFEST_DIR")).join("../airlock-core/tests/vectors/notes");
    for v in ["c2sp-example", "peterneumann", "sum-golang-org-checkpoint"] {
        let bytes = std::fs::read(vectors.join(format!("{v}.txt"))).expect("note vector");
        write(dir, "note", v, &bytes);
        if v.starts_with("sum") {
            write(dir, "checkpoint", v, &bytes);
        }
    }
    for (name, bytes) in [("old", &f.old_note), ("latest", &f.note)] {
        write(dir, "note", name, bytes);
        write(dir, "checkpoint", name, bytes);
    }
    let n = Note::parse(&f.note).expect("fixture note");
    write(dir, "checkpoint", "text", n.text().as_bytes());

    // Cosignature lines as a witness returns them, and the log's signature line.
    let lines: Vec<String> = n.signatures().iter().map(|s| s.to_line()).collect();
    write(
        dir,
        "cosignature",
        "witness",
        lines.last().expect("cosig").as_bytes(),
    );
    write(dir, "cosignature", "all", lines.concat().as_bytes());

    // Tiles: an entry bundle, tile paths, and a 2-byte size followed by level-0 hashes.
    let entries: Vec<Vec<u8>> = (0..LOG_SIZE).map(entry).collect();
    write(
        dir,
        "tile",
        "bundle",
        &encode_entry_bundle(&entries).expect("bundle"),
    );
    for (name, path) in [
        ("path", "tile/0/000"),
        ("path-partial", "tile/1/x001/234.p/17"),
        ("path-entries", "tile/entries/x123/456.p/5"),
    ] {
        write(dir, "tile", name, path.as_bytes());
    }
    let mut hashes = Vec::from((LOG_SIZE as u16).to_be_bytes());
    for e in &entries {
        hashes.extend_from_slice(&leaf_hash(e));
    }
    write(dir, "tile", "hashes", &hashes);
    // The first 2 bytes also name the tile asked for: [0, 9] is tile/0/000.p/10, as read for a
    // tree of 9 leaves; [1, 0] is tile/1/000.p/1.
    let mut tile = vec![0, (LOG_SIZE - 1) as u8];
    for e in &entries {
        tile.extend_from_slice(&leaf_hash(e));
    }
    write(dir, "tile", "hash-tile", &tile);
    let mut bundle = vec![0, (LOG_SIZE - 1) as u8];
    bundle.extend(encode_entry_bundle(&entries).expect("bundle"));
    write(dir, "tile", "bundle-for", &bundle);
    let mut level1 = vec![1, 0];
    level1.extend_from_slice(&f.tree.root());
    write(dir, "tile", "level-1", &level1);

    // Proof bundles: the fixture's, and one with extra data.
    write(dir, "tlog_proof", "fixture", &f.proof_bundle);
    let mut extra = ProofBundle::parse(&f.proof_bundle).expect("bundle");
    extra.extra = Some(b"release 1.2.3".to_vec());
    write(dir, "tlog_proof", "extra", &extra.to_bytes());

    // Policies: the fixture's, and one with groups, comments and URLs.
    write(dir, "tlog_policy", "fixture", &f.policy_text);
    let log = f.log.verifier().to_vkey();
    let w1 = f.witness.verifier().to_vkey();
    let w2 = airlock_core::tlog::CosignatureSigner::from_seed("witness.example/two", &[8; 32])
        .expect("w2")
        .verifier()
        .to_vkey();
    let groups = format!(
        "# fuzz seed\nlog {log} https://log.example/\n\twitness w1 {w1} https://w1.example/\n\
         witness w2 {w2}\ngroup g1 any w1 w2\ngroup g2 all g1 w2\ngroup g3 1 g2\nquorum g3\n"
    );
    write(dir, "tlog_policy", "groups", groups.as_bytes());

    // The root's transparency field: the fixture policy, one with groups and URLs, and each
    // way the field is refused (unknown member, version, two logs, a newline in a line).
    let r = &f.release;
    let field = r.policy.to_value();
    let json = |v: &serde_json::Value| serde_json::to_vec_pretty(v).expect("json");
    write(dir, "transparency", "fixture", &json(&field));
    let rlog = r.log.verifier().to_vkey();
    let mut groups_field = field.clone();
    groups_field["policy"] = serde_json::json!([
        format!("log {rlog} https://log.example/"),
        "# a comment",
        format!("witness w1 {w1} https://w1.example/"),
        format!("witness w2 {w2}"),
        "group g1 any w1 w2",
        "quorum g1",
    ]);
    write(dir, "transparency", "groups", &json(&groups_field));
    let mut none = field.clone();
    none["policy"] = serde_json::json!([format!("log {rlog}"), "quorum none"]);
    write(dir, "transparency", "quorum-none", &json(&none));
    for (name, member, value) in [
        ("unknown-member", "peers", serde_json::json!(1)),
        ("version-2", "version", serde_json::json!(2)),
        ("repository-space", "repository", serde_json::json!("a b")),
        (
            "two-logs",
            "policy",
            serde_json::json!([format!("log {rlog}"), format!("log {log}"), "quorum none"]),
        ),
        (
            "newline",
            "policy",
            serde_json::json!([format!("log {rlog}\nquorum none")]),
        ),
    ] {
        let mut v = field.clone();
        v[member] = value;
        write(dir, "transparency", name, &json(&v));
    }

    // Release statements and the proof bundles of one, at the latest and the old size.
    write(dir, "release", "bundle", &r.bundle);
    write(dir, "release", "bundle-old", &r.old_bundle);
    write(dir, "release", "statement", &release_entry(3));
    let delegated = ReleaseStatement::for_metadata("example.com/app", "bins-0a/é", 0, b"{}");
    write(dir, "release", "statement-delegated", &delegated.to_bytes());
    let mut with_extra = ProofBundle::parse(&r.bundle).expect("release bundle");
    with_extra.extra = Some(b"targets v4".to_vec());
    write(dir, "release", "bundle-extra", &with_extra.to_bytes());

    // A peer's checkpoint: the latest and the old release-log checkpoint, one of the old size
    // with another root (a split view), one without the witness's cosignature, and a
    // checkpoint of another log.
    write(dir, "peer_checkpoint", "latest", &r.note);
    write(dir, "peer_checkpoint", "old", &r.old_note);
    let fork = airlock_core::tlog::Checkpoint::new(
        RELEASE_LOG_ORIGIN,
        RELEASE_OLD_SIZE,
        leaf_hash(b"fork"),
    )
    .expect("checkpoint")
    .to_text();
    let fork = r
        .sign_checkpoint_text(&f.witness, &fork)
        .expect("fork note");
    write(dir, "peer_checkpoint", "fork", &fork);
    let mut unwitnessed = Note::new(Note::parse(&r.note).expect("note").text()).expect("note");
    unwitnessed.sign(&r.log).expect("sign");
    write(
        dir,
        "peer_checkpoint",
        "unwitnessed",
        &unwitnessed.to_bytes(),
    );
    write(dir, "peer_checkpoint", "other-log", &f.note);

    // The witness's add-checkpoint request: from the old size, and from zero.
    write(dir, "witness_add_checkpoint", "fixture", &f.add_checkpoint);
    let from_zero = String::from_utf8_lossy(&f.add_checkpoint)
        .split_once("\n\n")
        .map(|(_, note)| format!("old 0\n\n{note}"))
        .expect("request");
    write(
        dir,
        "witness_add_checkpoint",
        "from-zero",
        from_zero.as_bytes(),
    );
}
