//! Signed-note signing keys (c2sp.org/signed-note: a log's checkpoint key, a witness's
//! cosignature key, a publisher's submission key) in key files.
//!
//! The file holds the key's Ed25519 seed as an ordinary airlock-keystore private key file
//! (encrypted PKCS#8 by default). PKCS#8 has no place for the note key name, so the caller
//! supplies it (from its configuration, or from the verifier key printed when the key was made).
//! Files written before note keys were encrypted hold a plaintext `PRIVATE+KEY+<name>+...`
//! string; they are still read, and then carry their own name.

use std::io::Read;
use std::path::Path;

use airlock_core::crypto::{Ed25519Private, PrivateKey};
use airlock_core::tlog::{KeyAlgorithm, NoteSigner};

use crate::{KeystoreError, PassphraseSource, Protection, write_private_key};

/// The start of a legacy plaintext note key file.
const LEGACY_PREFIX: &[u8] = b"PRIVATE+KEY+";
/// Longest legacy skey file read (the string is about 100 bytes).
const MAX_LEGACY_LEN: u64 = 4096;

fn note_key_err(path: &Path, reason: impl Into<String>) -> KeystoreError {
    KeystoreError::NoteKey {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Generates a fresh note signer named `name` for algorithm `alg` (Ed25519 checkpoint or
/// cosignature/v1 key) and writes its seed to the new key file `path` (see the module docs;
/// atomic, mode 0600, never overwrites).
pub fn generate_note_key(
    path: &Path,
    name: &str,
    alg: KeyAlgorithm,
    protection: &Protection,
) -> Result<NoteSigner, KeystoreError> {
    let ed = Ed25519Private::generate().map_err(|e| note_key_err(path, e.to_string()))?;
    let signer = NoteSigner::from_seed(name, alg, &ed.seed())
        .map_err(|e| note_key_err(path, format!("key name {name:?}: {e}")))?;
    write_private_key(path, &PrivateKey::Ed25519(ed), protection)?;
    Ok(signer)
}

/// Reads the note signer in `path` for algorithm `alg`. A keystore key file needs `name` (the
/// passphrase is obtained only if the file is encrypted); a legacy plaintext skey file carries
/// its name, which must then equal `name` if one is given. Every error names the file, and
/// never shows key material.
pub fn read_note_key(
    path: &Path,
    name: Option<&str>,
    alg: KeyAlgorithm,
    passphrase: &PassphraseSource,
) -> Result<NoteSigner, KeystoreError> {
    let io = |source| KeystoreError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut head = zeroize::Zeroizing::new(Vec::new());
    std::fs::File::open(path)
        .map_err(io)?
        .take(MAX_LEGACY_LEN + 1)
        .read_to_end(&mut head)
        .map_err(io)?;
    let signer = if head.starts_with(LEGACY_PREFIX) {
        let text = std::str::from_utf8(&head)
            .map_err(|_| note_key_err(path, "plaintext note key is not UTF-8"))?;
        // The parse error could quote the string: report only that it is malformed.
        NoteSigner::from_skey(text.trim())
            .map_err(|_| note_key_err(path, "malformed plaintext note key (PRIVATE+KEY+...)"))?
    } else {
        let Some(name) = name else {
            return Err(KeystoreError::NoteKeyNameMissing {
                path: path.to_path_buf(),
            });
        };
        match crate::read_private_key(path, passphrase)? {
            PrivateKey::Ed25519(ed) => NoteSigner::from_seed(name, alg, &ed.seed())
                .map_err(|e| note_key_err(path, format!("key name {name:?}: {e}")))?,
            _ => return Err(note_key_err(path, "not an Ed25519 private key")),
        }
    };
    if signer.algorithm() != alg {
        return Err(note_key_err(
            path,
            format!("key algorithm {} where {alg} is needed", signer.algorithm()),
        ));
    }
    if name.is_some_and(|n| n != signer.name()) {
        return Err(note_key_err(
            path,
            format!(
                "holds a key named {:?}, not {:?}",
                signer.name(),
                name.unwrap_or_default()
            ),
        ));
    }
    Ok(signer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn pass(p: &str) -> PassphraseSource {
        PassphraseSource::Value(p.to_string().into())
    }

    #[test]
    fn encrypted_note_key_round_trips_and_legacy_files_still_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        let made = generate_note_key(
            &path,
            "pub.test",
            KeyAlgorithm::Ed25519,
            &Protection::encrypted_fast_for_tests(pass("right")),
        )
        .unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(
            std::fs::read_to_string(&path)
                .unwrap()
                .contains("ENCRYPTED PRIVATE KEY")
        );
        let read = read_note_key(
            &path,
            Some("pub.test"),
            KeyAlgorithm::Ed25519,
            &pass("right"),
        )
        .unwrap();
        assert_eq!(read.verifier().to_vkey(), made.verifier().to_vkey());
        let err =
            read_note_key(&path, Some("pub.test"), KeyAlgorithm::Ed25519, &pass("no")).unwrap_err();
        assert!(err.to_string().contains(path.to_str().unwrap()), "{err}");
        assert!(
            read_note_key(&path, None, KeyAlgorithm::Ed25519, &pass("right")).is_err(),
            "no name"
        );

        let legacy = dir.path().join("legacy");
        let old = NoteSigner::generate("w.test", KeyAlgorithm::CosignatureV1).unwrap();
        std::fs::write(&legacy, format!("{}\n", old.to_skey().as_str())).unwrap();
        let read = read_note_key(&legacy, None, KeyAlgorithm::CosignatureV1, &pass("x")).unwrap();
        assert_eq!(read.verifier().to_vkey(), old.verifier().to_vkey());
        for (name, alg) in [
            (Some("other"), KeyAlgorithm::CosignatureV1),
            (None, KeyAlgorithm::Ed25519),
        ] {
            let err = read_note_key(&legacy, name, alg, &pass("x")).unwrap_err();
            assert!(err.to_string().contains("legacy"), "{err}");
        }
        // A damaged legacy file: an error naming the file, without its contents.
        let secret = old.to_skey();
        std::fs::write(&legacy, format!("{}!", secret.as_str())).unwrap();
        let err = read_note_key(&legacy, None, KeyAlgorithm::CosignatureV1, &pass("x"))
            .unwrap_err()
            .to_string();
        // The key is the last field of PRIVATE+KEY+name+hash+base64; its base64 may itself
        // hold '+', so split off the first four fields rather than the last '+'.
        let key_b64 = secret.as_str().splitn(5, '+').nth(4).unwrap();
        assert!(key_b64.len() > 40, "{key_b64}");
        assert!(err.contains("legacy") && !err.contains(key_b64), "{err}");
    }
}
