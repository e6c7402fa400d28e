//! Keys, signers and verifiers.
//!
//! A [`PublicKey`] is a key exactly as TUF metadata carries it (`keytype`, `scheme`, `keyval`),
//! unknown fields kept. [`PublicKey::verify`] dispatches on the scheme; a key whose scheme airlock
//! does not know never verifies anything. Private keys implement [`Signer`].
//!
//! Interface contract used by the rest of the workspace (keep it stable):
//! - `PublicKey::{verify, key_id}`
//! - `Signer` trait (object safe)
//! - `PrivateKey::generate(KeyScheme)`, `PrivateKey` implements `Signer`

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

mod ed25519;

/// Why a signature did not verify or a key could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("unsupported key: keytype {keytype:?} with scheme {scheme:?}")]
    UnsupportedScheme { keytype: String, scheme: String },
    #[error("malformed public key ({scheme}): {reason}")]
    MalformedKey { scheme: String, reason: String },
    #[error("malformed signature ({scheme}): {reason}")]
    MalformedSignature { scheme: String, reason: String },
    #[error("signature does not verify ({scheme})")]
    BadSignature { scheme: String },
    #[error("signing failed ({scheme}): {reason}")]
    Signing { scheme: String, reason: String },
    #[error("key generation failed: {0}")]
    KeyGeneration(String),
}

/// A public key as TUF metadata carries it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicKey {
    pub keytype: String,
    pub scheme: String,
    pub keyval: BTreeMap<String, Value>,
    /// Fields this version does not know, kept so that re-serialising foreign metadata is lossless.
    #[serde(flatten)]
    pub unrecognized: BTreeMap<String, Value>,
}

impl PublicKey {
    /// The `keyval.public` string, if present.
    pub fn public_str(&self) -> Option<&str> {
        self.keyval.get("public").and_then(Value::as_str)
    }

    /// The TUF key id: hex SHA-256 of the key's canonical JSON.
    pub fn key_id(&self) -> String {
        // A key built from serde types always has a canonical form: no floats can appear in
        // keyval unless a foreign key carried one, in which case we hash its JSON text instead.
        let bytes = crate::cjson::to_vec_of(self)
            .unwrap_or_else(|_| serde_json::to_vec(self).unwrap_or_default());
        hex::encode(Sha256::digest(&bytes))
    }

    /// Verify `sig` (raw signature bytes, already hex-decoded) over `msg`.
    pub fn verify(&self, msg: &[u8], sig: &[u8]) -> Result<(), CryptoError> {
        match (self.keytype.as_str(), self.scheme.as_str()) {
            ("ed25519", "ed25519") => ed25519::verify(self, msg, sig),
            _ => Err(CryptoError::UnsupportedScheme {
                keytype: self.keytype.clone(),
                scheme: self.scheme.clone(),
            }),
        }
    }
}

/// The signature schemes airlock can generate keys for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyScheme {
    Ed25519,
}

/// Something that signs: a private key in memory, later perhaps a hardware token.
pub trait Signer: Send + Sync {
    /// The public half, as it goes into metadata.
    fn public_key(&self) -> &PublicKey;
    /// Sign `msg`, returning raw signature bytes (TUF metadata hex-encodes them).
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, CryptoError>;
}

/// A private key of any supported scheme.
pub enum PrivateKey {
    Ed25519(ed25519::Ed25519Private),
}

impl PrivateKey {
    /// Generate a fresh key from the operating system's randomness.
    pub fn generate(scheme: KeyScheme) -> Result<Self, CryptoError> {
        match scheme {
            KeyScheme::Ed25519 => Ok(PrivateKey::Ed25519(ed25519::Ed25519Private::generate()?)),
        }
    }

    pub fn scheme(&self) -> KeyScheme {
        match self {
            PrivateKey::Ed25519(_) => KeyScheme::Ed25519,
        }
    }
}

impl Signer for PrivateKey {
    fn public_key(&self) -> &PublicKey {
        match self {
            PrivateKey::Ed25519(k) => k.public_key(),
        }
    }
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, CryptoError> {
        match self {
            PrivateKey::Ed25519(k) => Ok(k.sign(msg)),
        }
    }
}
