//! Every Merkle vector in tests/vectors/merkle (transparency-dev/merkle testdata, see SOURCE.md):
//! positive cases verify, negative cases are refused, and the reference roots match.

use std::fs;
use std::path::{Path, PathBuf};

use airlock_core::tlog::{
    Hash, MemoryTree, consistency_proof, inclusion_proof, leaf_hash, root_from_leaf_hashes,
    tree_root, verify_consistency, verify_inclusion,
};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;
use sha2::{Digest, Sha256};

fn vectors() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/merkle")
}

fn json_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            json_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "json") {
            out.push(p);
        }
    }
    out.sort();
}

/// Our API takes `[u8; 32]`, so a byte string of another length can never even reach the
/// verifier: every parser in airlock refuses it first. Such a value is decoded here to a stand-in
/// hash that preserves equality between values, and `*all_real` is cleared so the caller knows
/// the case was already refused at the type boundary.
fn to_hash(v: &Value, all_real: &mut bool) -> Hash {
    let s = v.as_str().unwrap();
    let raw = STANDARD.decode(s).unwrap();
    match <[u8; 32]>::try_from(raw.as_slice()) {
        Ok(h) => h,
        Err(_) => {
            *all_real = false;
            let mut h = Sha256::new();
            h.update(b"stand-in for a non-32-byte value:");
            h.update(&raw);
            h.finalize().into()
        }
    }
}

fn proof(v: &Value, all_real: &mut bool) -> Vec<Hash> {
    match v {
        Value::Null => Vec::new(),
        Value::Array(a) => a.iter().map(|h| to_hash(h, all_real)).collect(),
        other => panic!("proof is {other}"),
    }
}

/// The RFC 6962 reference tree from roots.txt / SOURCE.md.
fn reference_tree() -> MemoryTree {
    let leaves = [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ];
    let mut t = MemoryTree::new();
    for l in leaves {
        t.push(&hex::decode(l).unwrap());
    }
    t
}

#[test]
fn reference_roots() {
    let text = fs::read_to_string(vectors().join("roots.txt")).unwrap();
    let t = reference_tree();
    let leaves: Vec<Hash> = [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]
    .iter()
    .map(|l| leaf_hash(&hex::decode(l).unwrap()))
    .collect();
    let mut checked = 0;
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (n, root) = line.split_once(' ').unwrap();
        let n: u64 = n.parse().unwrap();
        let want: Hash = hex::decode(root).unwrap().try_into().unwrap();
        assert_eq!(tree_root(&t, n).unwrap(), want, "root of {n} leaves");
        assert_eq!(root_from_leaf_hashes(&leaves[..n as usize]), want);
        checked += 1;
    }
    assert_eq!(checked, 9, "roots.txt lists sizes 0..=8");
}

#[test]
fn inclusion_vectors() {
    let mut files = Vec::new();
    json_files(&vectors().join("inclusion"), &mut files);
    let reference = reference_tree();
    let (mut pos, mut neg, mut regenerated, mut refused_by_verifier) = (0, 0, 0, 0);
    for f in &files {
        let v: Value = serde_json::from_str(&fs::read_to_string(f).unwrap()).unwrap();
        let index = v["leafIdx"].as_u64().unwrap();
        let size = v["treeSize"].as_u64().unwrap();
        let mut real = true;
        let root = to_hash(&v["root"], &mut real);
        let leaf = to_hash(&v["leafHash"], &mut real);
        let p = proof(&v["proof"], &mut real);
        let res = verify_inclusion(&leaf, index, size, &p, &root);
        if v["wantErr"].as_bool().unwrap() {
            // Refused either by the verifier or, for non-32-byte values, by the type boundary.
            assert!(
                res.is_err() || !real,
                "{}: negative case accepted",
                f.display()
            );
            neg += 1;
            refused_by_verifier += usize::from(res.is_err());
        } else {
            res.unwrap_or_else(|e| panic!("{}: {e}", f.display()));
            pos += 1;
            // Where the vector is over the reference tree, our generated proof is identical.
            if size <= 8 && tree_root(&reference, size).unwrap() == root {
                assert_eq!(inclusion_proof(&reference, index, size).unwrap(), p);
                regenerated += 1;
            }
        }
    }
    println!(
        "{} files: {pos} accepted, {neg} refused ({refused_by_verifier} by the verifier), {regenerated} proofs regenerated",
        files.len()
    );
    assert_eq!(pos + neg, files.len());
    assert!(pos >= 5 && neg >= 50, "pos {pos} neg {neg}");
    // Nearly every negative case must be caught by the verifier itself, not the type boundary.
    assert!(
        neg - refused_by_verifier <= 4,
        "only {refused_by_verifier} of {neg} refused by the verifier"
    );
    assert!(regenerated >= 4, "regenerated {regenerated}");
}

#[test]
fn consistency_vectors() {
    let mut files = Vec::new();
    json_files(&vectors().join("consistency"), &mut files);
    let reference = reference_tree();
    let (mut pos, mut neg, mut regenerated, mut refused_by_verifier) = (0, 0, 0, 0);
    for f in &files {
        let v: Value = serde_json::from_str(&fs::read_to_string(f).unwrap()).unwrap();
        let size1 = v["size1"].as_u64().unwrap();
        let size2 = v["size2"].as_u64().unwrap();
        let mut real = true;
        let root1 = to_hash(&v["root1"], &mut real);
        let root2 = to_hash(&v["root2"], &mut real);
        let p = proof(&v["proof"], &mut real);
        let res = verify_consistency(size1, size2, &p, &root1, &root2);
        if v["wantErr"].as_bool().unwrap() {
            // Refused either by the verifier or, for non-32-byte values, by the type boundary.
            assert!(
                res.is_err() || !real,
                "{}: negative case accepted",
                f.display()
            );
            neg += 1;
            refused_by_verifier += usize::from(res.is_err());
        } else {
            res.unwrap_or_else(|e| panic!("{}: {e}", f.display()));
            pos += 1;
            if size2 <= 8
                && size1 >= 1
                && tree_root(&reference, size1).unwrap() == root1
                && tree_root(&reference, size2).unwrap() == root2
            {
                assert_eq!(consistency_proof(&reference, size1, size2).unwrap(), p);
                regenerated += 1;
            }
        }
    }
    println!(
        "{} files: {pos} accepted, {neg} refused ({refused_by_verifier} by the verifier), {regenerated} proofs regenerated",
        files.len()
    );
    assert_eq!(pos + neg, files.len());
    assert!(pos >= 5 && neg >= 50, "pos {pos} neg {neg}");
    // Nearly every negative case must be caught by the verifier itself, not the type boundary.
    assert!(
        neg - refused_by_verifier <= 4,
        "only {refused_by_verifier} of {neg} refused by the verifier"
    );
    assert!(regenerated >= 4, "regenerated {regenerated}");
}
