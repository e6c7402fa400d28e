//! Where a signing key lives: an Airlock key file, or a key that never leaves its holder
//! (GnuPG, a PKCS#11 token). Commands that sign take a `KeyRef` so every kind signs the same way.

use std::fmt;
use std::path::{Path, PathBuf};

use airlock_core::crypto::Signer;

use crate::{KeystoreError, PassphraseSource};

/// A signing key named on a command line or in a repository's configuration.
///
/// Written `gpg:KEYID` (a key in the user's GnuPG, used through `gpg`, so gpg-agent and
/// smartcards work unchanged), `pkcs11:...` (an RFC 7512 URI of a key on a token), or a path
/// to an Airlock key file. A file whose name starts with `gpg:` or `pkcs11:` is written `./gpg:...`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyRef {
    File(PathBuf),
    Gpg(String),
    Pkcs11(String),
}

impl KeyRef {
    /// Parse a reference. The empty string, an empty `gpg:` id and a malformed PKCS#11 URI
    /// (RFC 7512 syntax, unknown attributes) are refused here; what the URI names is checked by
    /// the code that opens it.
    pub fn parse(s: &str) -> Result<KeyRef, KeystoreError> {
        let bad = |reason: &str| KeystoreError::KeyRef {
            key: s.to_string(),
            reason: reason.to_string(),
        };
        if s.is_empty() {
            return Err(bad("empty key reference"));
        }
        if let Some(id) = s.strip_prefix("gpg:") {
            if id.is_empty() {
                return Err(bad("gpg: needs a key id or fingerprint (gpg:KEYID)"));
            }
            return Ok(KeyRef::Gpg(id.to_string()));
        }
        if s.starts_with("pkcs11:") {
            // Checked here so that a malformed URI is a usage error on the command line.
            crate::pkcs11::Pkcs11Uri::parse(s).map_err(|e| KeystoreError::KeyRef {
                key: "pkcs11: URI".into(),
                reason: e.to_string(),
            })?;
            return Ok(KeyRef::Pkcs11(s.to_string()));
        }
        Ok(KeyRef::File(PathBuf::from(s)))
    }

    /// True for keys held outside Airlock's key files.
    pub fn is_external(&self) -> bool {
        !matches!(self, KeyRef::File(_))
    }

    /// Open the key for signing. `secret` is the key file's passphrase, or the token's PIN.
    pub fn open(&self, secret: &PassphraseSource) -> Result<Box<dyn Signer>, KeystoreError> {
        match self {
            KeyRef::File(path) => Ok(Box::new(crate::read_private_key(path, secret)?)),
            KeyRef::Pkcs11(uri) => crate::pkcs11::open(uri, secret),
            // gpg-agent asks for the passphrase or PIN itself: `secret` is not used.
            KeyRef::Gpg(id) => Ok(Box::new(crate::gpg::GpgSigner::open(id)?)),
        }
    }

    /// The file of a `File` reference.
    pub fn path(&self) -> Option<&Path> {
        match self {
            KeyRef::File(p) => Some(p),
            _ => None,
        }
    }
}

impl std::str::FromStr for KeyRef {
    type Err = KeystoreError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        KeyRef::parse(s)
    }
}

impl fmt::Display for KeyRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyRef::File(p) => write!(f, "{}", p.display()),
            KeyRef::Gpg(id) => write!(f, "gpg:{id}"),
            KeyRef::Pkcs11(uri) => f.write_str(uri),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_kind() {
        assert_eq!(
            KeyRef::parse("gpg:ABCD").unwrap(),
            KeyRef::Gpg("ABCD".into())
        );
        assert_eq!(
            KeyRef::parse("pkcs11:token=t;object=k").unwrap(),
            KeyRef::Pkcs11("pkcs11:token=t;object=k".into())
        );
        assert_eq!(
            KeyRef::parse("./gpg:x").unwrap(),
            KeyRef::File("./gpg:x".into())
        );
        assert!(KeyRef::parse("").is_err());
        assert!(KeyRef::parse("gpg:").is_err());
        let e = KeyRef::parse("pkcs11:tokn=t?pin-value=1234")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("unknown path attribute \"tokn\"") && !e.contains("1234"),
            "{e}"
        );
        for s in ["gpg:ABCD", "pkcs11:token=t", "keys/a.key"] {
            assert_eq!(KeyRef::parse(s).unwrap().to_string(), s);
        }
    }
}
