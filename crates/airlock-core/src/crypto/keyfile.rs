//! Private-key files as bytes: encode and decode, no I/O (the `airlock-keystore` crate reads
//! and writes the files and obtains passphrases).
//!
//! Format: PKCS#8 in PEM. By default every block is `ENCRYPTED PRIVATE KEY`: PKCS#8
//! `EncryptedPrivateKeyInfo` with PBES2 (RFC 8018), scrypt (RFC 7914) as the KDF and AES-256-GCM
//! (RFC 5084 parameters) as the cipher. GCM rather than the more common CBC because it is
//! authenticated: a modified file is refused instead of decrypting to a different key (with CBC,
//! flipping ciphertext bits yields a valid but different Ed25519 seed; a test shows it). Reading
//! also accepts PBES2 with AES-CBC and PBKDF2 or scrypt, so keys exported by OpenSSL or
//! pyca/cryptography (securesystemslib) can be imported. A plaintext `PRIVATE KEY` form exists
//! only through [`KeyFileEncoding::PlaintextForTests`].
//!
//! One key per block, in the algorithm's standard PKCS#8 encoding: Ed25519 (RFC 8410), P-256
//! (`id-ecPublicKey` with the `prime256v1` parameter, RFC 5915 inside), RSA (`rsaEncryption`,
//! PKCS#1 inside), SLH-DSA-SHA2-128s (FIPS 205 OID), Ed448 (RFC 8410). A hybrid key is two blocks in one file: the
//! Ed25519 key, then the SLH-DSA key, each encrypted separately with the same passphrase.
//!
//! Decoding never panics: garbage, truncation, a wrong passphrase, an unsupported algorithm or
//! an unreasonable KDF cost each give a [`KeyFileError`].

use ed25519_dalek::SigningKey as EdSigningKey;
use pkcs8::der::{Decode, SecretDocument};
use pkcs8::pkcs5::{self, pbes2};
use pkcs8::{
    EncodePrivateKey, EncryptedPrivateKeyInfoRef, LineEnding, ObjectIdentifier, PrivateKeyInfoRef,
};
use slh_dsa::{ParameterSet, Sha2_128s, SigningKey as SlhSigningKey};
use zeroize::{Zeroize, Zeroizing};

use super::{
    CryptoError, EcdsaP256Private, Ed448Private, Ed25519Private, HybridPrivate, PrivateKey,
    RsaPrivate,
};

const LABEL_ENCRYPTED: &str = "ENCRYPTED PRIVATE KEY";
const LABEL_PLAIN: &str = "PRIVATE KEY";

const OID_ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");
const OID_EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const OID_ED448: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.113");
const OID_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");

/// Largest scrypt memory (128 * r * N * p bytes) a key file may ask for: 1 GiB. Our files use
/// 128 MiB; the cap stops a crafted file from exhausting memory.
const MAX_SCRYPT_MEMORY: u64 = 1 << 30;
/// Largest PBKDF2 iteration count accepted (OpenSSL-made files use PBKDF2).
const MAX_PBKDF2_ITERATIONS: u32 = 10_000_000;
/// A key file is small; anything larger is not one of ours.
pub const MAX_KEY_FILE_LEN: usize = 256 * 1024;

/// Why a key file could not be encoded or decoded. The keystore adds the file name.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("not a PEM key file (no -----BEGIN line found)")]
    NotPem,
    #[error("key file is larger than {MAX_KEY_FILE_LEN} bytes")]
    TooLarge,
    #[error("PEM block {index} is malformed or truncated: {reason}")]
    BadPem { index: usize, reason: String },
    #[error("PEM block {index} has label {label:?}; expected {LABEL_ENCRYPTED:?} (PKCS#8)")]
    UnsupportedLabel { index: usize, label: String },
    #[error("key file mixes encrypted and plaintext PEM blocks")]
    MixedProtection,
    #[error("the key file is encrypted and no passphrase was given")]
    PassphraseRequired,
    #[error("wrong passphrase (or the encrypted key is corrupted)")]
    WrongPassphrase,
    #[error("unsupported key encryption: {0}")]
    UnsupportedEncryption(String),
    #[error("key derivation cost refused: {0}")]
    KdfTooExpensive(String),
    #[error("malformed private key: {0}")]
    Malformed(String),
    #[error("unsupported private key algorithm (OID {0})")]
    UnsupportedAlgorithm(String),
    #[error("unexpected set of keys in one file: {0}")]
    BadCombination(String),
    #[error("could not encode the key: {0}")]
    Encode(String),
    #[error(transparent)]
    Crypto(#[from] CryptoError),
}

/// How expensive the passphrase key derivation is when writing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KdfCost {
    /// scrypt N = 2^17, r = 8, p = 1 (128 MiB, a few tenths of a second): the default.
    Interactive,
    /// scrypt N = 2^10, r = 8, p = 1. Cheap enough for test suites; never for real keys.
    InsecureFastForTests,
}

impl KdfCost {
    fn log_n(self) -> u8 {
        match self {
            KdfCost::Interactive => 17,
            KdfCost::InsecureFastForTests => 10,
        }
    }
}

/// How a private key is protected in its file.
#[derive(Clone, Copy, Debug)]
pub enum KeyFileEncoding<'a> {
    /// PBES2 (scrypt + AES-256-GCM) with this passphrase.
    Encrypted { passphrase: &'a [u8], cost: KdfCost },
    /// No encryption. Only for tests and throw-away demos.
    PlaintextForTests,
}

/// Encode `key` as PEM text (one block, two for a hybrid key).
pub fn encode_private_key(
    key: &PrivateKey,
    encoding: KeyFileEncoding<'_>,
) -> Result<Zeroizing<String>, KeyFileError> {
    let enc_err = |e: pkcs8::Error| KeyFileError::Encode(e.to_string());
    let docs: Vec<SecretDocument> = match key {
        PrivateKey::Ed25519(k) => vec![ed25519_pkcs8_v1(k.signing_key()).map_err(enc_err)?],
        PrivateKey::EcdsaP256(k) => vec![k.signing_key().to_pkcs8_der().map_err(enc_err)?],
        PrivateKey::Rsa(k) => vec![k.private_key().to_pkcs8_der().map_err(enc_err)?],
        PrivateKey::Hybrid(k) => vec![
            ed25519_pkcs8_v1(k.ed25519_key()).map_err(enc_err)?,
            k.slh_dsa_key().to_pkcs8_der().map_err(enc_err)?,
        ],
        PrivateKey::Ed448(k) => vec![ed448_pkcs8_v1(k).map_err(enc_err)?],
    };
    let mut out = Zeroizing::new(String::new());
    for doc in docs {
        let pem = match encoding {
            KeyFileEncoding::PlaintextForTests => doc
                .to_pem(LABEL_PLAIN, LineEnding::LF)
                .map_err(|e| KeyFileError::Encode(e.to_string()))?,
            KeyFileEncoding::Encrypted { passphrase, cost } => {
                let mut salt = [0u8; 16];
                let mut nonce = [0u8; 12];
                getrandom::fill(&mut salt)
                    .and_then(|()| getrandom::fill(&mut nonce))
                    .map_err(|e| KeyFileError::Encode(format!("randomness: {e}")))?;
                let scrypt = pkcs5::scrypt::Params::new(cost.log_n(), 8, 1)
                    .map_err(|e| KeyFileError::Encode(format!("scrypt parameters: {e}")))?;
                let params = pbes2::Parameters::scrypt_aes256gcm(scrypt, &salt, nonce)
                    .map_err(|e| KeyFileError::Encode(e.to_string()))?;
                let info = PrivateKeyInfoRef::try_from(doc.as_bytes()).map_err(enc_err)?;
                let encrypted = info
                    .encrypt_with_params(params, passphrase)
                    .map_err(enc_err)?;
                encrypted
                    .to_pem(LABEL_ENCRYPTED, LineEnding::LF)
                    .map_err(|e| KeyFileError::Encode(e.to_string()))?
            }
        };
        out.push_str(&pem);
    }
    Ok(out)
}

/// Ed25519 as RFC 8410 PKCS#8 v1 (seed only, no public key): the form every tool reads
/// (pyca/cryptography refuses the v2 form with the public key attached).
fn ed25519_pkcs8_v1(key: &EdSigningKey) -> pkcs8::Result<SecretDocument> {
    let mut bytes = ed25519_dalek::pkcs8::KeypairBytes {
        secret_key: key.to_bytes(),
        public_key: None,
    };
    let doc = bytes.to_pkcs8_der();
    bytes.secret_key.zeroize();
    doc
}

/// Ed448 as RFC 8410 PKCS#8 v1: `privateKey` is an OCTET STRING holding the DER OCTET STRING
/// of the 57-byte secret.
fn ed448_pkcs8_v1(key: &Ed448Private) -> pkcs8::Result<SecretDocument> {
    use pkcs8::der::Encode;
    let mut inner = Zeroizing::new(vec![0x04, 57]);
    let mut seed = key.seed();
    inner.extend_from_slice(&seed);
    seed.zeroize();
    let info = PrivateKeyInfoRef::new(
        pkcs8::AlgorithmIdentifierRef {
            oid: OID_ED448,
            parameters: None,
        },
        pkcs8::der::asn1::OctetStringRef::new(&inner)?,
    );
    let der = Zeroizing::new(info.to_der()?);
    Ok(SecretDocument::try_from(der.as_slice())?)
}

/// One PEM block of a key file.
struct Block<'a> {
    index: usize,
    text: &'a str,
}

/// Split the text into PEM blocks; text between blocks (comments) is ignored.
fn blocks(text: &[u8]) -> Result<Vec<Block<'_>>, KeyFileError> {
    if text.len() > MAX_KEY_FILE_LEN {
        return Err(KeyFileError::TooLarge);
    }
    let text = std::str::from_utf8(text).map_err(|_| KeyFileError::NotPem)?;
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN ") {
        let index = out.len() + 1;
        let from_begin = &rest[start..];
        let end = from_begin.find("-----END ").ok_or(KeyFileError::BadPem {
            index,
            reason: "no -----END line (file truncated?)".into(),
        })?;
        let after_end = &from_begin[end + "-----END ".len()..];
        let close = after_end.find("-----").ok_or(KeyFileError::BadPem {
            index,
            reason: "unterminated -----END line (file truncated?)".into(),
        })?;
        let block_len = end + "-----END ".len() + close + "-----".len();
        out.push(Block {
            index,
            text: &from_begin[..block_len],
        });
        rest = &from_begin[block_len..];
    }
    if out.is_empty() {
        return Err(KeyFileError::NotPem);
    }
    Ok(out)
}

fn label_of<'a>(block: &Block<'a>) -> &'a str {
    block
        .text
        .strip_prefix("-----BEGIN ")
        .and_then(|s| s.split_once("-----"))
        .map(|(label, _)| label)
        .unwrap_or("")
}

/// Whether the file's blocks are encrypted (true), all plaintext (false); an error for a file
/// that is not a PKCS#8 key file or mixes the two. Lets the caller ask for a passphrase only
/// when one is needed.
pub fn is_encrypted(text: &[u8]) -> Result<bool, KeyFileError> {
    let blocks = blocks(text)?;
    let mut encrypted = None;
    for b in &blocks {
        let this = match label_of(b) {
            LABEL_ENCRYPTED => true,
            LABEL_PLAIN => false,
            other => {
                return Err(KeyFileError::UnsupportedLabel {
                    index: b.index,
                    label: other.to_string(),
                });
            }
        };
        if *encrypted.get_or_insert(this) != this {
            return Err(KeyFileError::MixedProtection);
        }
    }
    Ok(encrypted.unwrap_or(false))
}

/// Refuse KDF parameters outside what we are willing to compute.
fn check_kdf(params: &pbes2::Parameters) -> Result<(), KeyFileError> {
    match &params.kdf {
        pbes2::Kdf::Scrypt(s) => {
            let n = s.cost_parameter;
            let memory = 128u64
                .saturating_mul(u64::from(s.block_size))
                .saturating_mul(n)
                .saturating_mul(u64::from(s.parallelization.max(1)));
            if !n.is_power_of_two() || n < 2 || memory > MAX_SCRYPT_MEMORY {
                return Err(KeyFileError::KdfTooExpensive(format!(
                    "scrypt N={n} r={} p={} needs more than {} MiB or is invalid",
                    s.block_size,
                    s.parallelization,
                    MAX_SCRYPT_MEMORY >> 20
                )));
            }
        }
        pbes2::Kdf::Pbkdf2(p) => {
            if p.iteration_count > MAX_PBKDF2_ITERATIONS {
                return Err(KeyFileError::KdfTooExpensive(format!(
                    "PBKDF2 with {} iterations (at most {MAX_PBKDF2_ITERATIONS})",
                    p.iteration_count
                )));
            }
        }
        other => {
            return Err(KeyFileError::UnsupportedEncryption(format!(
                "key derivation {}",
                other.oid()
            )));
        }
    }
    Ok(())
}

fn decrypt(
    block: &Block<'_>,
    der: &[u8],
    passphrase: &[u8],
) -> Result<SecretDocument, KeyFileError> {
    let info = EncryptedPrivateKeyInfoRef::from_der(der).map_err(|e| KeyFileError::BadPem {
        index: block.index,
        reason: format!("not a PKCS#8 EncryptedPrivateKeyInfo: {e}"),
    })?;
    match &info.encryption_algorithm {
        pkcs5::EncryptionScheme::Pbes2(params) => check_kdf(params)?,
        other => {
            return Err(KeyFileError::UnsupportedEncryption(format!(
                "{} (only PBES2 is accepted)",
                other.oid()
            )));
        }
    }
    info.decrypt(passphrase)
        .map_err(|_| KeyFileError::WrongPassphrase)
}

/// A decoded PKCS#8 key of any kind we know.
enum Part {
    Ed25519(EdSigningKey),
    Ecdsa(p256::ecdsa::SigningKey),
    Rsa(Box<rsa::PrivateKey>),
    SlhDsa(Box<SlhSigningKey<Sha2_128s>>),
    Ed448(Box<ed448_goldilocks::SigningKey>),
}

fn decode_pkcs8(der: &[u8]) -> Result<Part, KeyFileError> {
    let bad = |what: &str, e: String| KeyFileError::Malformed(format!("{what}: {e}"));
    let info = PrivateKeyInfoRef::try_from(der)
        .map_err(|e| bad("not a PKCS#8 PrivateKeyInfo", e.to_string()))?;
    let oid = info.algorithm.oid;
    if oid == OID_ED25519 {
        EdSigningKey::try_from(info)
            .map(Part::Ed25519)
            .map_err(|e| bad("Ed25519", e.to_string()))
    } else if oid == OID_ED448 {
        ed448_goldilocks::SigningKey::try_from(info)
            .map(|k| Part::Ed448(Box::new(k)))
            .map_err(|e| bad("Ed448", e.to_string()))
    } else if oid == OID_EC_PUBLIC_KEY {
        // Checks the curve parameter is P-256 and the scalar is in range.
        let secret =
            p256::SecretKey::try_from(info).map_err(|e| bad("ECDSA P-256", e.to_string()))?;
        Ok(Part::Ecdsa(p256::ecdsa::SigningKey::from(secret)))
    } else if oid == OID_RSA {
        rsa::PrivateKey::try_from(info)
            .map(|k| Part::Rsa(Box::new(k)))
            .map_err(|e| bad("RSA", e.to_string()))
    } else if oid == Sha2_128s::ALGORITHM_OID {
        SlhSigningKey::<Sha2_128s>::try_from(info)
            .map(|k| Part::SlhDsa(Box::new(k)))
            .map_err(|e| bad("SLH-DSA-SHA2-128s", e.to_string()))
    } else {
        Err(KeyFileError::UnsupportedAlgorithm(oid.to_string()))
    }
}

/// Decode a key file. `passphrase` is needed only when the blocks are encrypted.
pub fn decode_private_key(
    text: &[u8],
    passphrase: Option<&[u8]>,
) -> Result<PrivateKey, KeyFileError> {
    let encrypted = is_encrypted(text)?;
    let mut parts = Vec::new();
    for block in blocks(text)? {
        let (_label, doc) =
            SecretDocument::from_pem(block.text).map_err(|e| KeyFileError::BadPem {
                index: block.index,
                reason: e.to_string(),
            })?;
        let der = if encrypted {
            let pass = passphrase.ok_or(KeyFileError::PassphraseRequired)?;
            decrypt(&block, doc.as_bytes(), pass)?
        } else {
            doc
        };
        parts.push(decode_pkcs8(der.as_bytes())?);
    }
    let describe = |parts: &[Part]| {
        parts
            .iter()
            .map(|p| match p {
                Part::Ed25519(_) => "Ed25519",
                Part::Ecdsa(_) => "ECDSA P-256",
                Part::Rsa(_) => "RSA",
                Part::SlhDsa(_) => "SLH-DSA-SHA2-128s",
                Part::Ed448(_) => "Ed448",
            })
            .collect::<Vec<_>>()
            .join(" + ")
    };
    let what = describe(&parts);
    let mut it = parts.into_iter();
    let key = match (it.next(), it.next(), it.next()) {
        (Some(Part::Ed25519(k)), None, None) => {
            PrivateKey::Ed25519(Ed25519Private::from_signing_key(k))
        }
        (Some(Part::Ecdsa(k)), None, None) => {
            PrivateKey::EcdsaP256(EcdsaP256Private::from_signing_key(k)?)
        }
        (Some(Part::Rsa(k)), None, None) => PrivateKey::Rsa(RsaPrivate::from_private(*k)?),
        (Some(Part::Ed448(k)), None, None) => PrivateKey::Ed448(Ed448Private::from_signing_key(*k)),
        (Some(Part::Ed25519(ed)), Some(Part::SlhDsa(slh)), None) => {
            PrivateKey::Hybrid(HybridPrivate::from_parts(ed, *slh)?)
        }
        _ => return Err(KeyFileError::BadCombination(what)),
    };
    Ok(key)
}

#[cfg(test)]
pub(crate) mod tests_support {
    use super::*;

    pub(crate) fn ed25519_pkcs8(k: &Ed25519Private) -> SecretDocument {
        ed25519_pkcs8_v1(k.signing_key()).unwrap()
    }
}
