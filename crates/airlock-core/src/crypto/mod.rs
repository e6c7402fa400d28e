//! Keys, signers and verifiers.
//!
//! A [`PublicKey`] is a key exactly as TUF metadata carries it (`keytype`, `scheme`, `keyval`),
//! unknown fields kept. [`PublicKey::verify`] dispatches on the (keytype, scheme) pair; a key
//! whose pair airlock does not know never verifies anything. Private keys implement [`Signer`].
//!
//! Schemes (names and encodings are documented in `docs/keys.md`):
//! - `ed25519` / `ed25519`: RFC 8032, strict verification.
//! - `ecdsa` (or the legacy keytype `ecdsa-sha2-nistp256`) / `ecdsa-sha2-nistp256`: P-256 with
//!   SHA-256, PEM SubjectPublicKeyInfo keys, DER signatures, RFC 6979 nonces, low-S when signing.
//! - `rsa` / `rsassa-pss-sha256`: RSASSA-PSS, SHA-256, MGF1-SHA-256, 32-byte salt, e = 65537,
//!   at least 2048 bits.
//! - `ed25519-slh-dsa-sha2-128s` (both fields): hybrid Ed25519 + SLH-DSA-SHA2-128s, valid only
//!   when both halves verify (the legacy form, still verified); [`paired`] is the additive form
//!   stock TUF clients read, an `ed25519` key plus a pairing its delegator names.
//! - `ed448` / `ed448`: RFC 8032 Ed448 (airlock's names; no other TUF implementation reads it).
//! - `rsa` / `pgp+rsa-pkcsv1.5` and `eddsa` / `pgp+eddsa-ed25519`: OpenPGP keys in
//!   securesystemslib's GnuPG form, strictly checked ([`openpgp`]).
//!
//! Interface contract used by the rest of the workspace (keep it stable):
//! - `PublicKey::{verify, key_id, material}` (`material`: the key itself, one canonical form per
//!   scheme, for counting distinct keys)
//! - `Signer` trait (object safe)
//! - `PrivateKey::generate(KeyScheme)`, `PrivateKey` implements `Signer`

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

mod ecdsa;
mod ed25519;
mod ed448;
pub mod external;
mod hybrid;
pub mod keyfile;
pub mod openpgp;
pub mod paired;
mod rsa;

#[cfg(test)]
mod tests;

pub use ecdsa::EcdsaP256Private;
pub use ed448::Ed448Private;
pub use ed25519::Ed25519Private;
pub use hybrid::{CONTEXT as HYBRID_CONTEXT, HybridPrivate, SIGNATURE_LEN as HYBRID_SIGNATURE_LEN};
pub use paired::{PairedSigner, PqKey, PqPairings};
pub use rsa::{MIN_RSA_BITS, RsaPrivate};

/// TUF keytype and scheme names, as they appear in metadata.
pub mod names {
    pub const ED25519: &str = "ed25519";
    pub const ECDSA_KEYTYPE: &str = "ecdsa";
    /// Legacy keytype that securesystemslib still accepts for P-256 keys.
    pub const ECDSA_KEYTYPE_LEGACY: &str = "ecdsa-sha2-nistp256";
    pub const ECDSA_SCHEME: &str = "ecdsa-sha2-nistp256";
    pub const RSA_KEYTYPE: &str = "rsa";
    pub const RSA_SCHEME: &str = "rsassa-pss-sha256";
    /// Keytype and scheme of airlock's hybrid post-quantum key.
    pub const HYBRID: &str = "ed25519-slh-dsa-sha2-128s";
    /// Keytype and scheme of Ed448 keys (airlock's names).
    pub const ED448: &str = "ed448";
    /// securesystemslib's GnuPG RSA scheme (keytype `rsa`): PKCS#1 v1.5 over an OpenPGP
    /// signature's SHA-256 hash.
    pub const PGP_RSA_SCHEME: &str = "pgp+rsa-pkcsv1.5";
    /// Keytype of securesystemslib's GnuPG Ed25519 keys.
    pub const PGP_EDDSA_KEYTYPE: &str = "eddsa";
    /// securesystemslib's GnuPG Ed25519 scheme.
    pub const PGP_EDDSA_SCHEME: &str = "pgp+eddsa-ed25519";
    /// securesystemslib's GnuPG DSA scheme (keytype `dsa`); airlock does not verify DSA.
    pub const PGP_DSA_SCHEME: &str = "pgp+dsa-fips-180-2";
}

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
    /// The key or signature is well formed but may not be used (an OpenPGP key that expired,
    /// was revoked or may not sign; a signature by another key or with a refused hash).
    #[error("refused ({scheme}): {reason}")]
    Refused { scheme: String, reason: String },
    #[error("RSA key of {bits} bits refused: at least {min} bits are required")]
    RsaKeyTooSmall { bits: usize, min: usize },
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

    /// The TUF key id: hex SHA-256 of the canonical JSON of `{keytype, scheme, keyval}`, exactly
    /// as securesystemslib's `compute_default_keyid` computes it. Unrecognized fields (for
    /// example a key owner's name) do not change the id, as in securesystemslib.
    pub fn key_id(&self) -> String {
        // securesystemslib names GnuPG keys by their OpenPGP fingerprint.
        if openpgp::scheme_of(self).is_some()
            && let Some(fpr) = openpgp::key_id(self)
        {
            return fpr;
        }
        let mut obj = serde_json::Map::new();
        obj.insert("keytype".into(), Value::String(self.keytype.clone()));
        obj.insert("scheme".into(), Value::String(self.scheme.clone()));
        obj.insert(
            "keyval".into(),
            Value::Object(self.keyval.clone().into_iter().collect()),
        );
        let obj = Value::Object(obj);
        // A keyval with a float has no canonical form; such a key is malformed for every scheme
        // we know, so any stable id will do: hash its plain JSON text instead.
        let bytes = crate::cjson::to_vec(&obj).unwrap_or_else(|_| obj.to_string().into_bytes());
        hex::encode(Sha256::digest(&bytes))
    }

    /// The scheme this key is for, if airlock knows its (keytype, scheme) pair.
    pub fn key_scheme(&self) -> Option<KeyScheme> {
        use names::*;
        match (self.keytype.as_str(), self.scheme.as_str()) {
            (ED25519, ED25519) => Some(KeyScheme::Ed25519),
            (ECDSA_KEYTYPE | ECDSA_KEYTYPE_LEGACY, ECDSA_SCHEME) => Some(KeyScheme::EcdsaP256),
            (RSA_KEYTYPE, RSA_SCHEME) => Some(KeyScheme::RsaPssSha256),
            (HYBRID, HYBRID) => Some(KeyScheme::HybridEd25519SlhDsa),
            (ED448, ED448) => Some(KeyScheme::Ed448),
            _ => None,
        }
    }

    fn unsupported(&self) -> CryptoError {
        CryptoError::UnsupportedScheme {
            keytype: self.keytype.clone(),
            scheme: self.scheme.clone(),
        }
    }

    /// Check that the key material parses for its scheme (without verifying anything).
    /// Useful when a key is added to metadata: a malformed key is refused early.
    pub fn validate(&self) -> Result<(), CryptoError> {
        if openpgp::scheme_of(self).is_some() {
            return openpgp::validate(self);
        }
        match self.key_scheme().ok_or_else(|| self.unsupported())? {
            KeyScheme::Ed25519 => ed25519::verifying_key(self).map(|_| ()),
            KeyScheme::EcdsaP256 => ecdsa::verifying_key(self).map(|_| ()),
            KeyScheme::RsaPssSha256 => rsa::verifying_key(self).map(|_| ()),
            KeyScheme::HybridEd25519SlhDsa => hybrid::verifying_keys(self).map(|_| ()),
            KeyScheme::Ed448 => ed448::verifying_key(self).map(|_| ()),
        }
    }

    /// The decoded public key in one canonical form per scheme, so that one key written two
    /// ways (hex case, compressed or uncompressed point, PKCS#1 or SPKI PEM, whitespace) is seen
    /// as one key. Key ids cannot do that: each hashes one particular encoding.
    pub fn material(&self) -> Result<KeyMaterial, CryptoError> {
        if openpgp::scheme_of(self).is_some() {
            return openpgp::material(self);
        }
        let scheme = self.key_scheme().ok_or_else(|| self.unsupported())?;
        let bytes = match scheme {
            KeyScheme::Ed25519 => ed25519::canonical_bytes(&ed25519::verifying_key(self)?).to_vec(),
            KeyScheme::EcdsaP256 => ecdsa::canonical_bytes(&ecdsa::verifying_key(self)?),
            KeyScheme::RsaPssSha256 => rsa::canonical_bytes(&rsa::verifying_key(self)?),
            KeyScheme::HybridEd25519SlhDsa => {
                let (ed, slh) = hybrid::verifying_keys(self)?;
                let mut both = ed25519::canonical_bytes(&ed).to_vec();
                both.extend_from_slice(&slh.to_vec());
                both
            }
            KeyScheme::Ed448 => ed448::canonical_bytes(&ed448::verifying_key(self)?),
        };
        Ok(KeyMaterial { scheme, bytes })
    }

    /// The raw signature bytes [`PublicKey::verify`] takes, from a metadata signature's `sig`
    /// (hex) and its other members. For every scheme but OpenPGP that is `sig` decoded; an
    /// OpenPGP signature also needs its `other_headers` (see [`openpgp`]).
    pub fn signature_bytes(
        &self,
        sig_hex: &str,
        fields: &BTreeMap<String, Value>,
    ) -> Result<Vec<u8>, CryptoError> {
        let bad = |reason: String| CryptoError::MalformedSignature {
            scheme: self.scheme.clone(),
            reason,
        };
        let sig = hex::decode(sig_hex).map_err(|e| bad(format!("sig is not hex: {e}")))?;
        if openpgp::scheme_of(self).is_none() {
            return Ok(sig);
        }
        let headers = fields
            .get(openpgp::OTHER_HEADERS_FIELD)
            .and_then(Value::as_str)
            .ok_or_else(|| bad("other_headers is missing".into()))?;
        let mut raw =
            hex::decode(headers).map_err(|e| bad(format!("other_headers is not hex: {e}")))?;
        raw.extend_from_slice(&sig);
        Ok(raw)
    }

    /// The metadata form of raw signature bytes: `sig` (hex) and any other members (OpenPGP:
    /// `other_headers`). The inverse of [`PublicKey::signature_bytes`].
    pub fn signature_fields(
        &self,
        raw: &[u8],
    ) -> Result<(String, BTreeMap<String, Value>), CryptoError> {
        let mut fields = BTreeMap::new();
        if openpgp::scheme_of(self).is_none() {
            return Ok((hex::encode(raw), fields));
        }
        let (headers, value) =
            openpgp::split_raw(raw).ok_or_else(|| CryptoError::MalformedSignature {
                scheme: self.scheme.clone(),
                reason: "shorter than its header says".into(),
            })?;
        fields.insert(
            openpgp::OTHER_HEADERS_FIELD.to_string(),
            Value::String(hex::encode(headers)),
        );
        Ok((hex::encode(value), fields))
    }

    /// Verify `sig` (raw signature bytes, already hex-decoded) over `msg`.
    pub fn verify(&self, msg: &[u8], sig: &[u8]) -> Result<(), CryptoError> {
        if openpgp::scheme_of(self).is_some() {
            return openpgp::verify(self, msg, sig);
        }
        match self.key_scheme().ok_or_else(|| self.unsupported())? {
            KeyScheme::Ed25519 => ed25519::verify(self, msg, sig),
            KeyScheme::EcdsaP256 => ecdsa::verify(self, msg, sig),
            KeyScheme::RsaPssSha256 => rsa::verify(self, msg, sig),
            KeyScheme::HybridEd25519SlhDsa => hybrid::verify(self, msg, sig),
            KeyScheme::Ed448 => ed448::verify(self, msg, sig),
        }
    }
}

/// A public key reduced to what it is: its scheme and its key material in one canonical encoding
/// (Ed25519/Ed448: the canonical point encoding; P-256: the uncompressed SEC1 point; RSA: modulus
/// and exponent; hybrid: both halves). Two [`PublicKey`]s with equal material are one key.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyMaterial {
    scheme: KeyScheme,
    bytes: Vec<u8>,
}

impl KeyMaterial {
    pub fn scheme(&self) -> KeyScheme {
        self.scheme
    }
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

/// The signature schemes airlock can generate keys for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum KeyScheme {
    /// Ed25519 (RFC 8032).
    Ed25519,
    /// ECDSA over NIST P-256 with SHA-256.
    EcdsaP256,
    /// RSASSA-PSS with SHA-256; generated keys are 3072 bits (see [`PrivateKey::generate_rsa`]).
    RsaPssSha256,
    /// Hybrid Ed25519 + SLH-DSA-SHA2-128s: both halves must verify.
    HybridEd25519SlhDsa,
    /// Ed448 (RFC 8032). Not readable by other TUF implementations.
    Ed448,
}

impl KeyScheme {
    /// Every scheme, in a stable order.
    pub const ALL: [KeyScheme; 5] = [
        KeyScheme::Ed25519,
        KeyScheme::EcdsaP256,
        KeyScheme::RsaPssSha256,
        KeyScheme::HybridEd25519SlhDsa,
        KeyScheme::Ed448,
    ];

    /// The TUF `keytype` of keys generated for this scheme.
    pub fn keytype(self) -> &'static str {
        match self {
            KeyScheme::Ed25519 => names::ED25519,
            KeyScheme::EcdsaP256 => names::ECDSA_KEYTYPE,
            KeyScheme::RsaPssSha256 => names::RSA_KEYTYPE,
            KeyScheme::HybridEd25519SlhDsa => names::HYBRID,
            KeyScheme::Ed448 => names::ED448,
        }
    }

    /// The TUF `scheme` name.
    pub fn scheme_name(self) -> &'static str {
        match self {
            KeyScheme::Ed25519 => names::ED25519,
            KeyScheme::EcdsaP256 => names::ECDSA_SCHEME,
            KeyScheme::RsaPssSha256 => names::RSA_SCHEME,
            KeyScheme::HybridEd25519SlhDsa => names::HYBRID,
            KeyScheme::Ed448 => names::ED448,
        }
    }

    /// Short name for command lines: `ed25519`, `ecdsa`, `rsa`, `hybrid`, `ed448`.
    pub fn short_name(self) -> &'static str {
        match self {
            KeyScheme::Ed25519 => "ed25519",
            KeyScheme::EcdsaP256 => "ecdsa",
            KeyScheme::RsaPssSha256 => "rsa",
            KeyScheme::HybridEd25519SlhDsa => "hybrid",
            KeyScheme::Ed448 => "ed448",
        }
    }
}

impl std::fmt::Display for KeyScheme {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.short_name())
    }
}

impl std::str::FromStr for KeyScheme {
    type Err = String;
    /// Accepts the short names (`ed25519`, `ecdsa`, `rsa`, `hybrid`, `ed448`) and the TUF scheme
    /// names.
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "ed25519" => Ok(KeyScheme::Ed25519),
            "ecdsa" | names::ECDSA_SCHEME => Ok(KeyScheme::EcdsaP256),
            "rsa" | names::RSA_SCHEME => Ok(KeyScheme::RsaPssSha256),
            "hybrid" | names::HYBRID => Ok(KeyScheme::HybridEd25519SlhDsa),
            "ed448" => Ok(KeyScheme::Ed448),
            other => Err(format!(
                "unknown key scheme {other:?}: expected ed25519, ecdsa, rsa, hybrid or ed448"
            )),
        }
    }
}

/// Something that signs: a private key in memory, later perhaps a hardware token.
pub trait Signer: Send + Sync {
    /// The public half, as it goes into metadata.
    fn public_key(&self) -> &PublicKey;
    /// Sign `msg`, returning raw signature bytes (TUF metadata hex-encodes them).
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, CryptoError>;
    /// For a hybrid key in its additive form ([`PairedSigner`]): the post-quantum key its
    /// delegator pairs with [`Signer::public_key`].
    fn post_quantum(&self) -> Option<&PqKey> {
        None
    }
    /// The post-quantum half's signature over `msg` (only when [`Signer::post_quantum`] is set).
    fn sign_post_quantum(&self, _msg: &[u8]) -> Result<Vec<u8>, CryptoError> {
        Err(CryptoError::Signing {
            scheme: self.public_key().scheme.clone(),
            reason: "this key has no post-quantum half".into(),
        })
    }
}

/// A private key of any supported scheme.
pub enum PrivateKey {
    Ed25519(Ed25519Private),
    EcdsaP256(EcdsaP256Private),
    Rsa(RsaPrivate),
    Hybrid(HybridPrivate),
    Ed448(Ed448Private),
}

impl std::fmt::Debug for PrivateKey {
    /// Never prints secret material: only the scheme and the key id.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrivateKey")
            .field("scheme", &self.scheme())
            .field("keyid", &self.public_key().key_id())
            .finish()
    }
}

impl PrivateKey {
    /// Generate a fresh key from the operating system's randomness. RSA keys are 3072 bits.
    pub fn generate(scheme: KeyScheme) -> Result<Self, CryptoError> {
        match scheme {
            KeyScheme::Ed25519 => Ok(PrivateKey::Ed25519(Ed25519Private::generate()?)),
            KeyScheme::EcdsaP256 => Ok(PrivateKey::EcdsaP256(EcdsaP256Private::generate()?)),
            KeyScheme::RsaPssSha256 => Self::generate_rsa(rsa::DEFAULT_RSA_BITS),
            KeyScheme::HybridEd25519SlhDsa => Ok(PrivateKey::Hybrid(HybridPrivate::generate()?)),
            KeyScheme::Ed448 => Ok(PrivateKey::Ed448(Ed448Private::generate()?)),
        }
    }

    /// Generate an RSA key of `bits` bits (at least [`MIN_RSA_BITS`]).
    pub fn generate_rsa(bits: usize) -> Result<Self, CryptoError> {
        Ok(PrivateKey::Rsa(RsaPrivate::generate(bits)?))
    }

    pub fn scheme(&self) -> KeyScheme {
        match self {
            PrivateKey::Ed25519(_) => KeyScheme::Ed25519,
            PrivateKey::EcdsaP256(_) => KeyScheme::EcdsaP256,
            PrivateKey::Rsa(_) => KeyScheme::RsaPssSha256,
            PrivateKey::Hybrid(_) => KeyScheme::HybridEd25519SlhDsa,
            PrivateKey::Ed448(_) => KeyScheme::Ed448,
        }
    }
}

impl Signer for PrivateKey {
    fn public_key(&self) -> &PublicKey {
        match self {
            PrivateKey::Ed25519(k) => k.public_key(),
            PrivateKey::EcdsaP256(k) => k.public_key(),
            PrivateKey::Rsa(k) => k.public_key(),
            PrivateKey::Hybrid(k) => k.public_key(),
            PrivateKey::Ed448(k) => k.public_key(),
        }
    }
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, CryptoError> {
        match self {
            PrivateKey::Ed25519(k) => Ok(k.sign(msg)),
            PrivateKey::EcdsaP256(k) => k.sign(msg),
            PrivateKey::Rsa(k) => k.sign(msg),
            PrivateKey::Hybrid(k) => k.sign(msg),
            PrivateKey::Ed448(k) => k.sign(msg),
        }
    }
}

/// A `PublicKey` with one `keyval.public` string.
pub(crate) fn public_key_with(keytype: &str, scheme: &str, public: String) -> PublicKey {
    let mut keyval = BTreeMap::new();
    keyval.insert("public".to_string(), Value::String(public));
    PublicKey {
        keytype: keytype.into(),
        scheme: scheme.into(),
        keyval,
        unrecognized: BTreeMap::new(),
    }
}
