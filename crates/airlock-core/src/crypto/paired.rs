//! The additive form of a hybrid key (docs/keys.md, "Hybrid keys that stock TUF clients read"):
//! an ordinary Ed25519 TUF key, paired by its delegator with an SLH-DSA-SHA2-128s key whose
//! signature travels in a signature entry of its own.
//!
//! - The delegator's `x-airlock-pq` object maps the Ed25519 key's key id to a [`PqKey`]
//!   `{"scheme": "slh-dsa-sha2-128s", "public": hex(32 bytes)}`.
//! - The Ed25519 half is a plain RFC 8032 signature over the canonical bytes, under the Ed25519
//!   key id: exactly what a stock TUF client verifies.
//! - The SLH-DSA half is pure SLH-DSA (FIPS 205 section 10.2) over the same canonical bytes,
//!   with context string `PQ_CONTEXT || 0x00 || ed25519_public_key`, under the key id
//!   [`PqKey::signature_keyid`] (`slh-dsa-sha2-128s:` and a hash of both public keys). The
//!   context binds the half to this pairing: it is neither a plain SLH-DSA signature nor the
//!   legacy hybrid's half, and it does not verify for another Ed25519 key paired with the same
//!   SLH-DSA key.

use std::collections::BTreeMap;

use ed25519_dalek::Signer as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use slh_dsa::{Sha2_128s, VerifyingKey as SlhVerifyingKey};

use super::hybrid::HybridPrivate;
use super::{CryptoError, PublicKey, Signer, ed25519, names};

/// The post-quantum scheme a pairing names.
pub const PQ_SCHEME: &str = "slh-dsa-sha2-128s";
/// Domain-separation label of the SLH-DSA half (its FIPS 205 context starts with it).
pub const PQ_CONTEXT: &[u8] = b"airlock/tuf-pq/ed25519+slh-dsa-sha2-128s/v1";
/// Every SLH-DSA signature entry's key id starts with this: never the 64 hex digits of a
/// securesystemslib key id.
pub const PQ_KEYID_PREFIX: &str = "slh-dsa-sha2-128s:";
const KEYID_LABEL: &[u8] = b"airlock/tuf-pq-keyid/v1";
const SLH_SIG_LEN: usize = 7856;
const SLH_PK_LEN: usize = 32;

/// The post-quantum key a delegator pairs with one of its Ed25519 keys (`x-airlock-pq`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PqKey {
    /// Only [`PQ_SCHEME`] verifies; a pairing with another scheme makes its key count never.
    pub scheme: String,
    /// The SLH-DSA public key (PK.seed || PK.root), hex.
    pub public: String,
}

fn malformed_key(reason: impl Into<String>) -> CryptoError {
    CryptoError::MalformedKey {
        scheme: PQ_SCHEME.into(),
        reason: reason.into(),
    }
}

impl PqKey {
    fn verifying_key(&self) -> Result<SlhVerifyingKey<Sha2_128s>, CryptoError> {
        if self.scheme != PQ_SCHEME {
            return Err(CryptoError::UnsupportedScheme {
                keytype: "x-airlock-pq".into(),
                scheme: self.scheme.clone(),
            });
        }
        let raw = hex::decode(&self.public)
            .map_err(|e| malformed_key(format!("public: not hex: {e}")))?;
        if raw.len() != SLH_PK_LEN {
            return Err(malformed_key(format!(
                "public: {} bytes, expected {SLH_PK_LEN}",
                raw.len()
            )));
        }
        SlhVerifyingKey::<Sha2_128s>::try_from(raw.as_slice())
            .map_err(|_| malformed_key("not an SLH-DSA-SHA2-128s public key"))
    }

    /// Check the pairing can be used at all: a known scheme, a well-formed key.
    pub fn validate(&self) -> Result<(), CryptoError> {
        self.verifying_key().map(|_| ())
    }

    /// The key id of the signature entry that carries this pairing's SLH-DSA half:
    /// `slh-dsa-sha2-128s:` || hex SHA-256(label || 0x00 || Ed25519 key || SLH-DSA key).
    /// It names both halves, so it is never the key id of a half alone or of another pairing.
    pub fn signature_keyid(&self, ed_key: &PublicKey) -> Result<String, CryptoError> {
        let ed = ed25519_bytes(ed_key)?;
        let slh = self.verifying_key()?.to_bytes();
        let mut h = Sha256::new();
        h.update(KEYID_LABEL);
        h.update([0]);
        h.update(ed);
        h.update(slh);
        Ok(format!("{PQ_KEYID_PREFIX}{}", hex::encode(h.finalize())))
    }

    /// Verify the SLH-DSA half `sig` (raw bytes) over `msg` for the pairing with `ed_key`.
    pub fn verify(&self, ed_key: &PublicKey, msg: &[u8], sig: &[u8]) -> Result<(), CryptoError> {
        let vk = self.verifying_key()?;
        let ctx = context(&ed25519_bytes(ed_key)?);
        if sig.len() != SLH_SIG_LEN {
            return Err(CryptoError::MalformedSignature {
                scheme: PQ_SCHEME.into(),
                reason: format!("{} bytes, expected {SLH_SIG_LEN}", sig.len()),
            });
        }
        let sig = slh_dsa::Signature::<Sha2_128s>::try_from(sig).map_err(|_| {
            CryptoError::MalformedSignature {
                scheme: PQ_SCHEME.into(),
                reason: "does not decode".into(),
            }
        })?;
        vk.try_verify_with_context(msg, &ctx, &sig)
            .map_err(|_| CryptoError::BadSignature {
                scheme: PQ_SCHEME.into(),
            })
    }
}

/// The Ed25519 half's canonical public key bytes; a pairing belongs to an `ed25519` key only.
fn ed25519_bytes(ed_key: &PublicKey) -> Result<[u8; 32], CryptoError> {
    if (ed_key.keytype.as_str(), ed_key.scheme.as_str()) != (names::ED25519, names::ED25519) {
        return Err(malformed_key(format!(
            "paired with a {}/{} key; only ed25519 keys are paired",
            ed_key.keytype, ed_key.scheme
        )));
    }
    Ok(ed25519::canonical_bytes(&ed25519::verifying_key(ed_key)?))
}

fn context(ed: &[u8; 32]) -> Vec<u8> {
    let mut ctx = Vec::with_capacity(PQ_CONTEXT.len() + 1 + ed.len());
    ctx.extend_from_slice(PQ_CONTEXT);
    ctx.push(0);
    ctx.extend_from_slice(ed);
    ctx
}

/// A hybrid public key as key files describe it (keytype `ed25519-slh-dsa-sha2-128s`, both
/// halves in `keyval`) split into its additive form: the Ed25519 TUF key and its pairing.
pub fn split_hybrid(key: &PublicKey) -> Result<(PublicKey, PqKey), CryptoError> {
    let (ed, slh) = super::hybrid::verifying_keys(key)?;
    Ok((
        ed25519::public_key_from_bytes(ed.as_bytes()),
        PqKey {
            scheme: PQ_SCHEME.into(),
            public: hex::encode(slh.to_bytes()),
        },
    ))
}

/// A hybrid private key signing in the additive form: its public key is the Ed25519 half, its
/// signatures are plain Ed25519, and [`Signer::post_quantum`] gives the pairing whose SLH-DSA
/// half [`Signer::sign_post_quantum`] makes.
pub struct PairedSigner {
    key: HybridPrivate,
    ed_public: PublicKey,
    pq: PqKey,
}

impl PairedSigner {
    pub fn new(key: HybridPrivate) -> Result<Self, CryptoError> {
        let (ed_public, pq) = split_hybrid(key.public_key())?;
        Ok(PairedSigner { key, ed_public, pq })
    }

    /// The key in the form key files and `--public-key` use (both halves in one key).
    pub fn hybrid_public_key(&self) -> &PublicKey {
        self.key.public_key()
    }
}

impl Signer for PairedSigner {
    fn public_key(&self) -> &PublicKey {
        &self.ed_public
    }

    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, CryptoError> {
        Ok(self.key.ed25519_key().sign(msg).to_bytes().to_vec())
    }

    fn post_quantum(&self) -> Option<&PqKey> {
        Some(&self.pq)
    }

    fn sign_post_quantum(&self, msg: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let ctx = context(self.key.ed25519_key().verifying_key().as_bytes());
        let sig = self
            .key
            .slh_dsa_key()
            .try_sign_with_context(msg, &ctx, None)
            .map_err(|e| CryptoError::Signing {
                scheme: PQ_SCHEME.into(),
                reason: e.to_string(),
            })?;
        Ok(sig.to_vec())
    }
}

/// The pairings of one key table (root `keys` or a `delegations.keys`): Ed25519 key id ->
/// post-quantum key.
pub type PqPairings = BTreeMap<String, PqKey>;
