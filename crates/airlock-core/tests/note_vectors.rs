//! The signed-note vectors in tests/vectors/notes (see README.md there), reproduced byte for
//! byte, and every mangled key refused.

use std::fs;
use std::path::{Path, PathBuf};

use airlock_core::tlog::{Checkpoint, KeyAlgorithm, Note, NoteSigner, NoteVerifier};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/notes")
}

fn read(name: &str) -> Vec<u8> {
    fs::read(dir().join(name)).unwrap()
}

const PETER_SKEY: &str =
    "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
const PETER_VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";

/// The README names exactly these keys; make sure this file and it agree.
#[test]
fn readme_lists_these_keys() {
    let readme = String::from_utf8(read("README.md")).unwrap();
    for k in [
        PETER_SKEY, PETER_VKEY, C2SP_VKEY, SUMDB_VKEY, BAD_LENGTH, BAD_ALG,
    ] {
        assert!(readme.contains(k), "README does not list {k}");
    }
}

#[test]
fn go_test_key_signs_byte_for_byte() {
    let signer = NoteSigner::from_skey(PETER_SKEY).unwrap();
    assert_eq!(signer.verifier().to_vkey(), PETER_VKEY);
    assert_eq!(signer.key_id(), 0xc74f20a3);
    assert_eq!(&*signer.to_skey(), PETER_SKEY);

    let want = read("peterneumann.txt");
    let parsed = Note::parse(&want).unwrap();
    let mut note = Note::new(parsed.text()).unwrap();
    note.sign(&signer).unwrap();
    assert_eq!(
        note.to_bytes(),
        want,
        "signing reproduces the Go note exactly"
    );

    let verifier = NoteVerifier::from_vkey(PETER_VKEY).unwrap();
    let ok = parsed.verify(&[verifier]).unwrap();
    assert_eq!(ok.len(), 1);
}

const C2SP_VKEY: &str = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k";

#[test]
fn c2sp_spec_example_verifies() {
    let bytes = read("c2sp-example.txt");
    let v = NoteVerifier::from_vkey(C2SP_VKEY).unwrap();
    assert_eq!(v.to_vkey(), C2SP_VKEY);
    assert_eq!(v.algorithm(), KeyAlgorithm::Ed25519);
    let note = Note::parse(&bytes).unwrap();
    assert_eq!(note.text(), "This is an example message.\n");
    note.verify(&[v]).unwrap();
    assert_eq!(note.to_bytes(), bytes);
}

const SUMDB_VKEY: &str = "sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8";

#[test]
fn real_sumdb_checkpoint_verifies() {
    let bytes = read("sum-golang-org-checkpoint.txt");
    let v = NoteVerifier::from_vkey(SUMDB_VKEY).unwrap();
    assert_eq!(v.to_vkey(), SUMDB_VKEY);
    let note = Note::parse(&bytes).unwrap();
    note.verify(&[v]).unwrap();
    assert_eq!(note.to_bytes(), bytes);
    let cp = Checkpoint::parse_text(note.text()).unwrap();
    assert_eq!(cp.origin, "go.sum database tree");
    assert_eq!(cp.size, 6476701);
    assert!(cp.extensions.is_empty());
    assert_eq!(
        cp.to_text(),
        note.text(),
        "checkpoint text round-trips byte for byte"
    );
    // One flipped character of the text and it no longer verifies.
    let tampered = String::from_utf8(bytes)
        .unwrap()
        .replacen("6476701", "6476702", 1);
    let t = Note::parse(tampered.as_bytes()).unwrap();
    assert!(
        t.verify(&[NoteVerifier::from_vkey(SUMDB_VKEY).unwrap()])
            .is_err()
    );
}

const BAD_LENGTH: &str =
    "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==";
const BAD_ALG: &str = "PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";

#[test]
fn mangled_verifier_keys_refused() {
    assert!(
        NoteVerifier::from_vkey(BAD_LENGTH).is_err(),
        "wrong key length"
    );
    assert!(
        NoteVerifier::from_vkey(BAD_ALG).is_err(),
        "unknown algorithm"
    );

    // Every single-byte change of the valid key: each position replaced by every printable
    // ASCII character, and by a few non-ASCII ones.
    let good = PETER_VKEY;
    let extra = ['\u{a0}', '\u{2014}', 'é', '\u{0}', '\n', '\t'];
    let mut tried = 0;
    for (i, orig) in good.char_indices() {
        let replacements = (0x20u8..0x7f).map(char::from).chain(extra);
        for c in replacements.filter(|&c| c != orig) {
            let mut s = String::with_capacity(good.len() + 2);
            s.push_str(&good[..i]);
            s.push(c);
            s.push_str(&good[i + orig.len_utf8()..]);
            assert!(NoteVerifier::from_vkey(&s).is_err(), "accepted {s:?}");
            tried += 1;
        }
        // Deleting this character.
        let deleted = format!("{}{}", &good[..i], &good[i + orig.len_utf8()..]);
        assert!(
            NoteVerifier::from_vkey(&deleted).is_err(),
            "accepted {deleted:?}"
        );
    }
    // Every truncation.
    for end in 0..good.len() {
        assert!(
            NoteVerifier::from_vkey(&good[..end]).is_err(),
            "accepted truncation at {end}"
        );
    }
    // Appended garbage.
    assert!(NoteVerifier::from_vkey(&format!("{good}A")).is_err());
    assert!(NoteVerifier::from_vkey(&format!("{good}=")).is_err());
    assert!(tried > 6000);
}

#[test]
fn mangled_signer_keys_refused() {
    for i in 0..PETER_SKEY.len() {
        let orig = PETER_SKEY.as_bytes()[i];
        for c in (0x20u8..0x7f).filter(|&c| c != orig) {
            let mut b = PETER_SKEY.as_bytes().to_vec();
            b[i] = c;
            let s = String::from_utf8(b).unwrap();
            assert!(NoteSigner::from_skey(&s).is_err(), "accepted {s}");
        }
    }
    for end in 0..PETER_SKEY.len() {
        assert!(NoteSigner::from_skey(&PETER_SKEY[..end]).is_err());
    }
}
