//! Where attestations live beside a published repository (docs/rebuild.md):
//!
//! ```text
//! rebuilds/<encoded target path>/<sha256>/<key id>.dsse.json
//! ```
//!
//! The target path is one directory name: every byte but `A-Z a-z 0-9 - _ ~` and a `.` that
//! does not start the name is percent-encoded, so `/` never makes a directory and no name is
//! `.`, `..` or hidden. A client knows the target path and digest from trusted metadata and the
//! key ids from its policy, so it fetches exactly these names and lists nothing.

/// The directory beside `metadata/` and `targets/` that holds attestations.
pub const REBUILDS_DIR: &str = "rebuilds";
/// The suffix of an attestation file after its signer's key id.
pub const ATTESTATION_SUFFIX: &str = ".dsse.json";

/// The target path as one file-system name (see the module docs).
pub fn encode_target_dir(target: &str) -> String {
    let mut out = String::with_capacity(target.len());
    for (i, b) in target.bytes().enumerate() {
        let keep =
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'~') || (b == b'.' && i > 0);
        if keep {
            out.push(char::from(b));
        } else {
            const HEX: &[u8; 16] = b"0123456789ABCDEF";
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        }
    }
    out
}

/// Whether `s` can be a name in the layout as it stands (a key id or a digest: lowercase hex).
fn is_hex_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 128 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The attestation's path relative to the published tree, `None` when the digest or key id is
/// not lowercase hex (it would not be a safe file name).
pub fn attestation_path(target: &str, sha256: &str, keyid: &str) -> Option<[String; 4]> {
    if !is_hex_name(sha256) || !is_hex_name(keyid) {
        return None;
    }
    Some([
        REBUILDS_DIR.to_string(),
        encode_target_dir(target),
        sha256.to_string(),
        format!("{keyid}{ATTESTATION_SUFFIX}"),
    ])
}

/// The attestation's URL path relative to the repository's base URL (the parent of
/// `metadata/`): the same segments, each percent-encoded once more for the URL (a `%` in the
/// directory name is `%25` on the wire).
pub fn attestation_url_path(target: &str, sha256: &str, keyid: &str) -> Option<String> {
    let segments = attestation_path(target, sha256, keyid)?;
    Some(
        segments
            .iter()
            .map(|s| s.replace('%', "%25"))
            .collect::<Vec<_>>()
            .join("/"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_paths_become_one_safe_name() {
        assert_eq!(encode_target_dir("app/1.0/app"), "app%2F1.0%2Fapp");
        assert_eq!(encode_target_dir(".."), "%2E.");
        assert_eq!(encode_target_dir(".hidden"), "%2Ehidden");
        assert_eq!(encode_target_dir("a b%"), "a%20b%25");
        assert_eq!(encode_target_dir("é"), "%C3%A9");
        let sha = "a".repeat(64);
        assert_eq!(
            attestation_url_path("app/1.0/app", &sha, "0f").unwrap(),
            format!("rebuilds/app%252F1.0%252Fapp/{sha}/0f.dsse.json")
        );
        assert!(attestation_path("x", "../etc", "0f").is_none());
        assert!(attestation_path("x", &sha, "A/B").is_none());
    }
}
