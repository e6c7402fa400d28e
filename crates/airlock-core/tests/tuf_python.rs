//! Interop with python-tuf's metadata API, live: metadata it writes (with unknown fields
//! everywhere) parses here, verifies, and serializes back with every field kept; our hash-bin
//! and glob rules agree with its own on the same inputs.

mod common;

use airlock_core::cjson;
use airlock_core::tuf::{
    Metadata, Role, Root, Snapshot, SuccinctRoles, Targets, Timestamp, path_matches,
};
use serde_json::Value;

const SCRIPT: &str = r#"
import json, sys, fnmatch
from datetime import datetime, timezone
from securesystemslib.signer import CryptoSigner
from tuf.api.metadata import (Metadata, Root, Timestamp, Snapshot, Targets, MetaFile,
    TargetFile, Delegations, DelegatedRole, SuccinctRoles)

req = json.load(sys.stdin)
exp = datetime(2031, 2, 3, 4, 5, 6, tzinfo=timezone.utc)
signer = CryptoSigner.generate_ed25519()
key = signer.public_key
key.unrecognized_fields["x-key-extra"] = {"n": 1}

root = Root(expires=exp, unrecognized_fields={"x-root": [1, "two", None]})
for role in ["root", "timestamp", "snapshot", "targets"]:
    root.add_key(key, role)
root.roles["root"].unrecognized_fields["x-role"] = True

ts = Timestamp(version=7, expires=exp, snapshot_meta=MetaFile(version=3, length=512,
    hashes={"sha256": "ab" * 32}, unrecognized_fields={"x-meta": "m"}))
sn = Snapshot(version=3, expires=exp, meta={
    "targets.json": MetaFile(version=2),
    "role1.json": MetaFile(version=1, length=10, hashes={"sha512": "cd" * 64}),
})
tg = Targets(version=2, expires=exp, unrecognized_fields={"x-targets": {}})
tg.targets["a/b.txt"] = TargetFile(length=3, hashes={"sha256": "ef" * 32}, path="a/b.txt",
    unrecognized_fields={"custom": {"version": "1.2.3", "channel": "stable"}, "x-t": 9})
tg.delegations = Delegations(keys={key.keyid: key}, roles={
    "role1": DelegatedRole(name="role1", keyids=[key.keyid], threshold=1, terminating=True,
        paths=["a/*", "b/?.bin"], unrecognized_fields={"x-dr": "r"}),
    "role2": DelegatedRole(name="role2", keyids=[key.keyid], threshold=1, terminating=False,
        path_hash_prefixes=["ab", "0"]),
}, unrecognized_fields={"x-del": 0})
bins = Targets(version=1, expires=exp)
sr = SuccinctRoles(keyids=[key.keyid], threshold=1, bit_length=req["bit_length"],
    name_prefix="bin", unrecognized_fields={"x-sr": 1})
bins.delegations = Delegations(keys={key.keyid: key}, succinct_roles=sr)

out = {}
for name, signed in [("root", root), ("timestamp", ts), ("snapshot", sn), ("targets", tg),
                     ("bins", bins)]:
    md = Metadata(signed, unrecognized_fields={"x-envelope": name})
    md.sign(signer)
    out[name] = md.to_bytes().decode("utf-8")
out["bin_names"] = list(sr.get_roles())
out["bin_for"] = {p: sr.get_role_for_target(p) for p in req["paths"]}
out["fnmatch"] = []
for pat, path in req["globs"]:
    r = DelegatedRole(name="g", keyids=[], threshold=1, terminating=False, paths=[pat])
    out["fnmatch"].append(r.is_delegated_path(path))
print(json.dumps(out))
"#;

fn check_round_trip<T: Role>(text: &str) -> Metadata<T> {
    let parsed = Metadata::<T>::parse(text.as_bytes()).unwrap();
    let original: Value = serde_json::from_str(text).unwrap();
    let again = serde_json::to_value(&parsed.metadata).unwrap();
    assert_eq!(again, original, "{} lost or changed a field", T::TYPE);
    // The bytes we verify (canonical re-encoding of our model) equal the canonical form of the
    // `signed` object python-tuf wrote and signed.
    assert_eq!(
        parsed.signed_bytes,
        cjson::to_vec(&original["signed"]).unwrap()
    );
    assert_eq!(
        parsed.metadata.to_canonical_bytes().unwrap(),
        cjson::canonicalize(text.as_bytes()).unwrap()
    );
    parsed.metadata
}

#[test]
fn python_tuf_metadata_round_trips_and_verifies() {
    let Some(python) = common::python() else {
        return;
    };
    let paths: Vec<String> = (0..200)
        .map(|i| format!("dir{}/file-{i}.tar.gz", i % 7))
        .collect();
    let globs: Vec<(&str, &str)> = vec![
        ("*", "a"),
        ("*", "a/b"),
        ("a/*", "a/b"),
        ("a/*", "a/b/c"),
        ("*/*", "a/b"),
        ("a?c", "abc"),
        ("a?c", "a/c"),
        ("a/*.tgz", "a/x.tgz"),
        ("a/*.tgz", "a/x.tgz.sig"),
        ("f[0-9].txt", "f7.txt"),
        ("f[!0-9].txt", "f7.txt"),
        ("f[!0-9].txt", "fa.txt"),
        ("[]]", "]"),
        ("[!]]", "a"),
        ("[a-]", "-"),
        ("[z-a]", "m"),
        ("a[b", "a[b"),
        ("", ""),
        ("*", ""),
        ("a*b*c", "aXbYbZc"),
        ("a*b*c", "aXbYbZ"),
        ("dir/", "dir/"),
        ("dir/", "dir"),
        ("é?", "éß"),
        ("**/x", "a/x"),
        ("\\*", "\\x"),
        ("[\\]", "\\"),
        (".*", ".hidden"),
        ("(a|b)", "(a|b)"),
        ("a+", "aa"),
    ];
    let request = serde_json::json!({"bit_length": 5, "paths": paths, "globs": globs});
    let out = common::run_python(&python, SCRIPT, &serde_json::to_vec(&request).unwrap());
    let out: Value = serde_json::from_slice(&out).unwrap();
    let text = |k: &str| out[k].as_str().unwrap().to_string();

    let root = check_round_trip::<Root>(&text("root"));
    let timestamp = check_round_trip::<Timestamp>(&text("timestamp"));
    let snapshot = check_round_trip::<Snapshot>(&text("snapshot"));
    let targets = check_round_trip::<Targets>(&text("targets"));
    let bins = check_round_trip::<Targets>(&text("bins"));

    // Signatures made by securesystemslib verify here, for each role, against root's keys.
    for (role, bytes) in [
        ("root", text("root")),
        ("timestamp", text("timestamp")),
        ("snapshot", text("snapshot")),
        ("targets", text("targets")),
    ] {
        let signatures = &serde_json::from_str::<Metadata<Value>>(&bytes)
            .unwrap()
            .signatures
            .clone();
        let msg = cjson::to_vec(&serde_json::from_str::<Value>(&bytes).unwrap()["signed"]).unwrap();
        assert_eq!(
            root.signed
                .authority(role)
                .unwrap()
                .verify(signatures, &msg),
            Ok(1),
            "{role}"
        );
    }
    assert_eq!(timestamp.signed.snapshot_meta().unwrap().version, 3);
    assert_eq!(snapshot.signed.role_meta("role1").unwrap().version, 1);
    let target = &targets.signed.targets["a/b.txt"];
    assert_eq!(target.custom.as_deref().unwrap()["channel"], "stable");
    assert_eq!(target.unrecognized["x-t"], 9);

    // TAP 15 bins: same names and same bin for every path.
    let sr: &SuccinctRoles = bins
        .signed
        .delegations
        .as_ref()
        .unwrap()
        .succinct_roles
        .as_ref()
        .unwrap();
    let names: Vec<String> = sr.bin_names().collect();
    let py_names: Vec<String> = serde_json::from_value(out["bin_names"].clone()).unwrap();
    assert_eq!(names, py_names);
    for p in &paths {
        assert_eq!(sr.bin_for_target(p), out["bin_for"][p.as_str()], "{p}");
    }

    // Glob rules: same answer as python-tuf's DelegatedRole.is_delegated_path.
    let py_globs: Vec<bool> = serde_json::from_value(out["fnmatch"].clone()).unwrap();
    for ((pat, path), want) in globs.iter().zip(py_globs) {
        assert_eq!(path_matches(pat, path), want, "pattern {pat:?} on {path:?}");
    }
}

const REPO_SCRIPT: &str = r#"
import json, sys, hashlib
from datetime import datetime, timezone
from securesystemslib.signer import CryptoSigner
from tuf.api.metadata import (Metadata, Root, Timestamp, Snapshot, Targets, MetaFile,
    TargetFile, Delegations, DelegatedRole, SuccinctRoles)

exp = datetime(2031, 1, 1, tzinfo=timezone.utc)
k = {r: CryptoSigner.generate_ed25519() for r in
     ["root", "timestamp", "snapshot", "targets", "a", "bins", "timestamp2"]}
out = {}
def signed(signed_obj, *signers):
    md = Metadata(signed_obj)
    for s in signers:
        md.sign(s, append=True)
    return md.to_bytes()

root = Root(expires=exp)
for r in ["root", "timestamp", "snapshot", "targets"]:
    root.add_key(k[r].public_key, r)
out["1.root.json"] = signed(root, k["root"])
# Root v2 rotates the timestamp key.
root.version = 2
root.revoke_key(k["timestamp"].public_key.keyid, "timestamp")
root.add_key(k["timestamp2"].public_key, "timestamp")
out["2.root.json"] = signed(root, k["root"])

path, data = "a/file.txt", b"hello from python-tuf"
sr = SuccinctRoles(keyids=[k["bins"].public_key.keyid], threshold=1, bit_length=2, name_prefix="bin")
a = Targets(expires=exp)
a.delegations = Delegations(keys={k["bins"].public_key.keyid: k["bins"].public_key}, succinct_roles=sr)
top = Targets(expires=exp)
top.delegations = Delegations(keys={k["a"].public_key.keyid: k["a"].public_key}, roles={
    "a": DelegatedRole(name="a", keyids=[k["a"].public_key.keyid], threshold=1, terminating=True,
                       paths=["a/*"])})
files = {"targets": signed(top, k["targets"]), "a": signed(a, k["a"])}
for name in sr.get_roles():
    t = Targets(expires=exp)
    if name == sr.get_role_for_target(path):
        t.targets[path] = TargetFile.from_data(path, data, ["sha256", "sha512"])
    files[name] = signed(t, k["bins"])
def meta(b):
    return MetaFile(version=1, length=len(b), hashes={"sha256": hashlib.sha256(b).hexdigest()})
snap = Snapshot(expires=exp, meta={f"{n}.json": meta(b) for n, b in files.items()})
out["snapshot.json"] = signed(snap, k["snapshot"])
out["timestamp.json"] = signed(Timestamp(expires=exp, snapshot_meta=meta(out["snapshot.json"])),
                               k["timestamp2"])
for n, b in files.items():
    out[f"{n}.json"] = b
out = {n: b.decode("utf-8") for n, b in out.items()}
out["bin"] = sr.get_role_for_target(path)
print(json.dumps(out))
"#;

#[test]
fn a_python_tuf_repository_passes_the_trusted_set() {
    use airlock_core::tuf::{SearchStep, TargetSearch, TrustedSet};
    let Some(python) = common::python() else {
        return;
    };
    let out = common::run_python(&python, REPO_SCRIPT, b"");
    let out: Value = serde_json::from_slice(&out).unwrap();
    let file = |name: &str| out[name].as_str().unwrap().as_bytes().to_vec();
    let now = chrono::Utc::now();
    let mut trusted = TrustedSet::new(&file("1.root.json"), now).unwrap();
    trusted.update_root(&file("2.root.json")).unwrap();
    assert!(trusted.cached_timestamp_and_snapshot_invalid());
    trusted.update_timestamp(&file("timestamp.json")).unwrap();
    trusted.update_snapshot(&file("snapshot.json")).unwrap();
    trusted.update_targets(&file("targets.json")).unwrap();
    let mut search = TargetSearch::new("a/file.txt");
    let mut fetched = Vec::new();
    let (role, target) = loop {
        match search.step(&trusted).unwrap() {
            SearchStep::NeedRole { role, parent } => {
                trusted
                    .update_delegated_targets(&file(&format!("{role}.json")), &role, &parent)
                    .unwrap();
                fetched.push(role);
            }
            SearchStep::Found { role, target } => break (role, target),
            other => panic!("target not found: {other:?}"),
        }
    };
    let bin = out["bin"].as_str().unwrap();
    assert_eq!(role, bin);
    assert_eq!(fetched, vec!["a".to_string(), bin.to_string()]);
    // Both hashes python-tuf listed are checked, and they match the content.
    assert_eq!(target.hashes.len(), 2);
    assert!(target.verify_bytes(b"hello from python-tuf").is_ok());
    assert!(target.verify_bytes(b"hello from python-tuF").is_err());
}

const GLOB_SCRIPT: &str = r#"
import json, random
from tuf.api.metadata import DelegatedRole
random.seed(7)
cases = []
for _ in range(5000):
    p = "".join(random.choice("abz-]![*?/é") for _ in range(random.randint(0, 8)))
    t = "".join(random.choice("abz-]![/é*?") for _ in range(random.randint(0, 7)))
    r = DelegatedRole(name="g", keyids=[], threshold=1, terminating=False, paths=[p])
    cases.append([p, t, r.is_delegated_path(t)])
print(json.dumps(cases))
"#;

/// Patterns dense in the characters glob syntax cares about (`[`, `]`, `!`, `-`, `*`, `?`,
/// `/`): our matcher must say what python-tuf says on every one.
#[test]
fn glob_matching_agrees_with_python_tuf_on_random_patterns() {
    let Some(python) = common::python() else {
        return;
    };
    let out = common::run_python(&python, GLOB_SCRIPT, b"");
    let cases: Vec<(String, String, bool)> = serde_json::from_slice(&out).unwrap();
    assert_eq!(cases.len(), 5000);
    let differ: Vec<_> = cases
        .iter()
        .filter(|(p, t, want)| path_matches(p, t) != *want)
        .take(10)
        .collect();
    assert!(differ.is_empty(), "differs from python-tuf: {differ:?}");
    // The sample must contain both answers, or it proves little.
    assert!(cases.iter().filter(|c| c.2).count() > 100);
}
