//! Fuzz harnesses for every airlock parser that takes bytes from the network.
//!
//! One `pub fn <target>(data: &[u8])` per fuzz target. Each parses the bytes and, where that
//! makes sense, drives the parsed value through the verifying API against a fixed, signed
//! world ([`fixture`]), so the fuzzer reaches the trust decisions and not only the parser. A
//! harness returns normally for any input; a panic is a bug (in the code, or a broken
//! round-trip property that the harness asserts).
//!
//! The libFuzzer targets in `fuzz/` (a separate cargo-fuzz project) call these functions; the
//! `replay` test of this crate runs every file of `fuzz/corpus/<target>/` and
//! `fuzz/regressions/<target>/` through them on stable Rust, so `./scripts/test` (and CI)
//! keeps the corpora from regressing without libFuzzer. See docs/fuzzing.md.
#![forbid(unsafe_code)]

pub mod archive;
pub mod fixture;
pub mod openpgp;
pub mod tlog;
pub mod transparency;
pub mod tuf;

pub use archive::{archive_diff, phar};
pub use openpgp::openpgp;
pub use tlog::{
    checkpoint, cosignature, note, tile, tlog_policy, tlog_proof, witness_add_checkpoint,
};
pub use transparency::{peer_checkpoint, release, transparency};
pub use tuf::{tuf_root, tuf_snapshot, tuf_targets, tuf_timestamp};

/// A harness: returns for any input, panics only on a bug.
pub type Harness = fn(&[u8]);

/// Every harness by its target name (the directory names under `fuzz/corpus/`).
pub const TARGETS: &[(&str, Harness)] = &[
    ("cjson", cjson),
    ("tuf_root", tuf_root),
    ("tuf_timestamp", tuf_timestamp),
    ("tuf_snapshot", tuf_snapshot),
    ("tuf_targets", tuf_targets),
    ("note", note),
    ("checkpoint", checkpoint),
    ("cosignature", cosignature),
    ("tile", tile),
    ("tlog_proof", tlog_proof),
    ("tlog_policy", tlog_policy),
    ("witness_add_checkpoint", witness_add_checkpoint),
    ("transparency", transparency),
    ("release", release),
    ("peer_checkpoint", peer_checkpoint),
    ("openpgp", openpgp),
    ("phar", phar),
    ("archive_diff", archive_diff),
];

/// Canonical JSON (what TUF signatures cover): canonicalising is idempotent, the direct
/// serializer writes the same bytes as the one through a JSON tree, and whatever
/// `is_canonical` accepts as the signed message as received is its own canonical form (and
/// what canonicalising readable JSON gives is accepted).
pub fn cjson(data: &[u8]) {
    use airlock_core::cjson::{canonical_members, canonicalize, is_canonical, to_vec, to_vec_of};
    let text = std::str::from_utf8(data).ok();
    let accepted = text.is_some_and(is_canonical);
    if accepted {
        assert_eq!(
            canonicalize(data).ok().as_deref(),
            Some(data),
            "accepted as canonical, but canonicalising changes it"
        );
    }
    if let Some(members) = text.and_then(canonical_members) {
        assert!(accepted, "split as a canonical object but not canonical");
        let rebuilt = members
            .iter()
            .map(|(k, v)| {
                format!(
                    "{}:{v}",
                    String::from_utf8_lossy(&to_vec(&k.as_str().into()).unwrap_or_default())
                )
            })
            .collect::<Vec<_>>()
            .join(",");
        assert_eq!(
            format!("{{{rebuilt}}}").as_bytes(),
            data,
            "members do not make up the object"
        );
    }
    let Ok(canonical) = canonicalize(data) else {
        return;
    };
    if !canonical.iter().any(|&b| b < 0x20) {
        let again = std::str::from_utf8(&canonical).is_ok_and(is_canonical);
        assert!(
            again,
            "a canonical form without control characters is not accepted"
        );
    }
    // Control characters are written raw (as securesystemslib does), which no JSON parser
    // reads back; every other canonical form is JSON and its own canonical form.
    match canonicalize(&canonical) {
        Ok(again) => assert_eq!(again, canonical, "canonicalising is not idempotent"),
        Err(e) => assert!(
            canonical.iter().any(|&b| b < 0x20),
            "canonical JSON without control characters does not parse: {e}"
        ),
    }
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    assert_eq!(
        to_vec_of(&value).ok(),
        to_vec(&value).ok(),
        "the two canonical serializers disagree"
    );
}
