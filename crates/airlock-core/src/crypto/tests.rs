//! Tests every scheme through the public interface: sign, verify, and refuse a flipped bit, a
//! wrong key, a wrong scheme and malformed key material. Key files round-trip and refuse bad
//! input.

use std::sync::OnceLock;

use serde_json::Value;

use super::keyfile::{
    KdfCost, KeyFileEncoding, KeyFileError, decode_private_key, encode_private_key, is_encrypted,
};
use super::*;

/// One key per scheme, generated once per test binary (RSA and SLH-DSA are slow to make).
fn keys() -> &'static Vec<PrivateKey> {
    static K: OnceLock<Vec<PrivateKey>> = OnceLock::new();
    K.get_or_init(|| {
        vec![
            PrivateKey::generate(KeyScheme::Ed25519).unwrap(),
            PrivateKey::generate(KeyScheme::EcdsaP256).unwrap(),
            PrivateKey::generate_rsa(2048).unwrap(),
            PrivateKey::generate(KeyScheme::HybridEd25519SlhDsa).unwrap(),
            PrivateKey::generate(KeyScheme::Ed448).unwrap(),
        ]
    })
}

/// A second key per scheme, for wrong-key tests.
fn other_keys() -> &'static Vec<PrivateKey> {
    static K: OnceLock<Vec<PrivateKey>> = OnceLock::new();
    K.get_or_init(|| {
        vec![
            PrivateKey::generate(KeyScheme::Ed25519).unwrap(),
            PrivateKey::generate(KeyScheme::EcdsaP256).unwrap(),
            PrivateKey::generate_rsa(2048).unwrap(),
            PrivateKey::generate(KeyScheme::HybridEd25519SlhDsa).unwrap(),
            PrivateKey::generate(KeyScheme::Ed448).unwrap(),
        ]
    })
}

const MSG: &[u8] = br#"{"signed":{"_type":"root"}}"#;

fn signatures() -> &'static Vec<Vec<u8>> {
    static S: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    S.get_or_init(|| keys().iter().map(|k| k.sign(MSG).unwrap()).collect())
}

#[test]
fn every_scheme_signs_and_verifies() {
    for (k, sig) in keys().iter().zip(signatures()) {
        let pk = k.public_key();
        assert_eq!(pk.key_scheme(), Some(k.scheme()));
        assert_eq!(pk.keytype, k.scheme().keytype());
        assert_eq!(pk.scheme, k.scheme().scheme_name());
        pk.validate().unwrap();
        pk.verify(MSG, sig)
            .unwrap_or_else(|e| panic!("{}: {e}", k.scheme()));
    }
}

#[test]
fn every_scheme_refuses_flipped_bits() {
    for (k, sig) in keys().iter().zip(signatures()) {
        let pk = k.public_key();
        for pos in [0, sig.len() / 2, sig.len() - 1] {
            let mut bad = sig.clone();
            bad[pos] ^= 0x80;
            assert!(
                pk.verify(MSG, &bad).is_err(),
                "{} sig byte {pos}",
                k.scheme()
            );
        }
        let mut msg = MSG.to_vec();
        msg[3] ^= 0x01;
        assert!(pk.verify(&msg, sig).is_err(), "{} message", k.scheme());
        assert!(pk.verify(b"", sig).is_err());
    }
}

#[test]
fn every_scheme_refuses_a_wrong_key() {
    for ((k, other), sig) in keys().iter().zip(other_keys()).zip(signatures()) {
        assert!(
            matches!(
                other.public_key().verify(MSG, sig),
                Err(CryptoError::BadSignature { .. })
            ),
            "{}",
            k.scheme()
        );
    }
}

/// A signature of one scheme never verifies under a key of another, and a key whose keytype and
/// scheme disagree is refused.
#[test]
fn every_scheme_refuses_a_wrong_scheme() {
    for (i, k) in keys().iter().enumerate() {
        for (j, sig) in signatures().iter().enumerate() {
            if i != j {
                assert!(k.public_key().verify(MSG, sig).is_err(), "{i} vs {j}");
            }
        }
        // Same key material, relabelled as each other scheme.
        for other in KeyScheme::ALL {
            if other == k.scheme() {
                continue;
            }
            let mut pk = k.public_key().clone();
            pk.scheme = other.scheme_name().into();
            assert!(
                matches!(
                    pk.verify(MSG, &signatures()[i]),
                    Err(CryptoError::UnsupportedScheme { .. })
                ),
                "{} relabelled scheme {other}",
                k.scheme()
            );
            pk.keytype = other.keytype().into();
            assert!(
                pk.verify(MSG, &signatures()[i]).is_err(),
                "{} relabelled as {other}",
                k.scheme()
            );
        }
    }
}

#[test]
fn unknown_scheme_never_verifies() {
    let mut pk = keys()[0].public_key().clone();
    pk.scheme = "ed25519ph".into();
    assert!(matches!(
        pk.verify(MSG, &signatures()[0]),
        Err(CryptoError::UnsupportedScheme { .. })
    ));
    assert!(pk.validate().is_err());
}

/// The legacy keytype `ecdsa-sha2-nistp256` is accepted for verification, as in securesystemslib.
#[test]
fn ecdsa_legacy_keytype_accepted() {
    let mut pk = keys()[1].public_key().clone();
    pk.keytype = names::ECDSA_KEYTYPE_LEGACY.into();
    pk.verify(MSG, &signatures()[1]).unwrap();
}

#[test]
fn malformed_signatures_never_panic() {
    let inputs: Vec<Vec<u8>> = vec![
        vec![],
        vec![0],
        vec![0xff; 64],
        vec![0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01],
        vec![0x30; 300],
        vec![0; 256],
        vec![0; 384],
        vec![0; hybrid::SIGNATURE_LEN],
        [&[0x00, 0x40][..], &[0; 64], &[0x1e, 0xb0]].concat(),
    ];
    for k in keys() {
        for sig in &inputs {
            assert!(k.public_key().verify(MSG, sig).is_err());
        }
    }
}

#[test]
fn malformed_keys_never_panic() {
    let junk_values = [
        Value::Null,
        Value::from(1),
        Value::String(String::new()),
        Value::String("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n".into()),
        Value::String("00".repeat(32)),
        Value::String("é".repeat(40)),
    ];
    for (k, sig) in keys().iter().zip(signatures()) {
        let members: &[&str] = if k.scheme() == KeyScheme::HybridEd25519SlhDsa {
            &[hybrid::KEYVAL_ED25519, hybrid::KEYVAL_SLH_DSA]
        } else {
            &["public"]
        };
        for member in members {
            for junk in &junk_values {
                let mut pk = k.public_key().clone();
                pk.keyval.insert(member.to_string(), junk.clone());
                assert!(pk.verify(MSG, sig).is_err(), "{} {member}", k.scheme());
            }
        }
    }
}

/// Key ids are computed as securesystemslib does: unrecognized fields do not change them.
#[test]
fn key_id_ignores_unrecognized_fields() {
    let pk = keys()[0].public_key().clone();
    let mut with_extra = pk.clone();
    with_extra
        .unrecognized
        .insert("x-owner".into(), Value::String("alice".into()));
    assert_eq!(pk.key_id(), with_extra.key_id());
    assert_eq!(pk.key_id().len(), 64);
}

/// A hand-computed key id: sha256 of the canonical JSON of the key.
#[test]
fn key_id_known_value() {
    let pk = ed25519::public_key_from_bytes(&[0u8; 32]);
    let canonical = format!(
        r#"{{"keytype":"ed25519","keyval":{{"public":"{}"}},"scheme":"ed25519"}}"#,
        "00".repeat(32)
    );
    use sha2::Digest;
    assert_eq!(
        pk.key_id(),
        hex::encode(sha2::Sha256::digest(canonical.as_bytes()))
    );
}

#[test]
fn rsa_small_keys_refused() {
    let err = PrivateKey::generate_rsa(1024).unwrap_err();
    assert!(matches!(
        err,
        CryptoError::RsaKeyTooSmall {
            bits: 1024,
            min: 2048
        }
    ));
    assert!(err.to_string().contains("at least 2048"), "{err}");
}

/// A 1024-bit public key in metadata is refused with the size error, even with a signature
/// that would verify.
#[test]
fn rsa_small_public_key_refused() {
    use ::rsa::pkcs8::{EncodePublicKey, LineEnding};
    use ::rsa::traits::PublicKeyParts;
    let small = ::rsa::PrivateKey::new(&mut getrandom::SysRng, 1024).unwrap();
    let pem = small
        .to_public_key()
        .to_public_key_pem(LineEnding::LF)
        .unwrap();
    let pk = public_key_with(names::RSA_KEYTYPE, names::RSA_SCHEME, pem);
    let sk = ::rsa::pss::SigningKey::<sha2::Sha256>::new_with_salt_len(small, 32);
    use signature::{RandomizedSigner, SignatureEncoding};
    let sig = sk
        .try_sign_with_rng(&mut getrandom::SysRng, MSG)
        .unwrap()
        .to_vec();
    assert_eq!(sig.len(), sk.as_ref().size());
    let err = pk.verify(MSG, &sig).unwrap_err();
    assert!(
        matches!(err, CryptoError::RsaKeyTooSmall { bits: 1024, .. }),
        "{err}"
    );
}

/// PSS with a salt length other than 32 is refused (we verify exactly what securesystemslib
/// signs).
#[test]
fn rsa_other_salt_length_refused() {
    let PrivateKey::Rsa(k) = &keys()[2] else {
        unreachable!()
    };
    use signature::{RandomizedSigner, SignatureEncoding};
    let sk = ::rsa::pss::SigningKey::<sha2::Sha256>::new_with_salt_len(k.private_key().clone(), 20);
    let sig = sk
        .try_sign_with_rng(&mut getrandom::SysRng, MSG)
        .unwrap()
        .to_vec();
    assert!(matches!(
        keys()[2].public_key().verify(MSG, &sig),
        Err(CryptoError::BadSignature { .. })
    ));
}

#[test]
fn rsa_pkcs1_public_pem_accepted() {
    use ::rsa::pkcs1::EncodeRsaPublicKey;
    use ::rsa::pkcs8::LineEnding;
    let PrivateKey::Rsa(k) = &keys()[2] else {
        unreachable!()
    };
    let pem = k
        .private_key()
        .to_public_key()
        .to_pkcs1_pem(LineEnding::LF)
        .unwrap();
    let pk = public_key_with(names::RSA_KEYTYPE, names::RSA_SCHEME, pem);
    pk.verify(MSG, &signatures()[2]).unwrap();
}

#[test]
fn key_scheme_names_parse() {
    for s in KeyScheme::ALL {
        assert_eq!(s.short_name().parse::<KeyScheme>().unwrap(), s);
        assert_eq!(s.scheme_name().parse::<KeyScheme>().unwrap(), s);
    }
    assert!("ed25519ph".parse::<KeyScheme>().is_err());
}

// ---- key files ----

fn fast(passphrase: &[u8]) -> KeyFileEncoding<'_> {
    KeyFileEncoding::Encrypted {
        passphrase,
        cost: KdfCost::InsecureFastForTests,
    }
}

#[test]
fn key_files_round_trip_encrypted() {
    for k in keys() {
        let pem = encode_private_key(k, fast(b"correct horse")).unwrap();
        assert!(pem.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----\n"));
        assert!(!pem.contains("-----BEGIN PRIVATE KEY-----"));
        assert!(is_encrypted(pem.as_bytes()).unwrap());
        let expected_blocks = if k.scheme() == KeyScheme::HybridEd25519SlhDsa {
            2
        } else {
            1
        };
        assert_eq!(pem.matches("-----BEGIN ").count(), expected_blocks);
        let back = decode_private_key(pem.as_bytes(), Some(b"correct horse")).unwrap();
        assert_eq!(back.scheme(), k.scheme());
        assert_eq!(back.public_key(), k.public_key());
        // The decoded key signs, and its signatures verify under the original public key.
        if k.scheme() != KeyScheme::HybridEd25519SlhDsa {
            let sig = back.sign(b"after reload").unwrap();
            k.public_key().verify(b"after reload", &sig).unwrap();
        }
    }
}

#[test]
fn key_files_round_trip_plaintext_for_tests() {
    for k in keys() {
        let pem = encode_private_key(k, KeyFileEncoding::PlaintextForTests).unwrap();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
        assert!(!is_encrypted(pem.as_bytes()).unwrap());
        let back = decode_private_key(pem.as_bytes(), None).unwrap();
        assert_eq!(back.public_key(), k.public_key());
    }
}

#[test]
fn key_file_wrong_passphrase_refused() {
    for k in [&keys()[0], &keys()[3]] {
        let pem = encode_private_key(k, fast(b"right")).unwrap();
        assert!(matches!(
            decode_private_key(pem.as_bytes(), Some(b"wrong")),
            Err(KeyFileError::WrongPassphrase)
        ));
        assert!(matches!(
            decode_private_key(pem.as_bytes(), None),
            Err(KeyFileError::PassphraseRequired)
        ));
    }
}

#[test]
fn key_file_truncated_or_garbage_refused() {
    let pem = encode_private_key(&keys()[1], fast(b"pw")).unwrap();
    let bytes = pem.as_bytes();
    for cut in (0..bytes.len()).step_by(7) {
        assert!(
            decode_private_key(&bytes[..cut], Some(b"pw")).is_err(),
            "cut at {cut}"
        );
    }
    for garbage in [
        &b""[..],
        b"hello",
        b"\xff\xfe\x00",
        b"-----BEGIN PRIVATE KEY-----\n!!!!\n-----END PRIVATE KEY-----\n",
        b"-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n",
        b"-----BEGIN ENCRYPTED PRIVATE KEY-----\nMAA=\n-----END ENCRYPTED PRIVATE KEY-----\n",
    ] {
        assert!(decode_private_key(garbage, Some(b"pw")).is_err());
    }
    // A flipped byte inside the base64 body.
    let mut flipped = bytes.to_vec();
    let mid = flipped.len() / 2;
    flipped[mid] = if flipped[mid] == b'A' { b'B' } else { b'A' };
    assert!(decode_private_key(&flipped, Some(b"pw")).is_err());
}

#[test]
fn key_file_mixed_or_unexpected_combinations_refused() {
    let ed_plain = encode_private_key(&keys()[0], KeyFileEncoding::PlaintextForTests).unwrap();
    let ec_plain = encode_private_key(&keys()[1], KeyFileEncoding::PlaintextForTests).unwrap();
    let ed_enc = encode_private_key(&keys()[0], fast(b"pw")).unwrap();
    let mixed = format!("{}{}", *ed_plain, *ed_enc);
    assert!(matches!(
        decode_private_key(mixed.as_bytes(), Some(b"pw")),
        Err(KeyFileError::MixedProtection)
    ));
    let two = format!("{}{}", *ed_plain, *ec_plain);
    assert!(matches!(
        decode_private_key(two.as_bytes(), None),
        Err(KeyFileError::BadCombination(_))
    ));
    // Hybrid halves in the wrong order are refused too.
    let hy = encode_private_key(&keys()[3], KeyFileEncoding::PlaintextForTests).unwrap();
    let second = hy.rfind("-----BEGIN").unwrap();
    let swapped = format!("{}{}", &hy[second..], &hy[..second]);
    assert!(matches!(
        decode_private_key(swapped.as_bytes(), None),
        Err(KeyFileError::BadCombination(_))
    ));
}

/// A hybrid file whose SLH-DSA block carries a public key that does not match its secret seeds
/// is refused.
#[test]
fn key_file_inconsistent_slh_dsa_refused() {
    use pkcs8::EncodePrivateKey;
    let PrivateKey::Hybrid(h) = &keys()[3] else {
        unreachable!()
    };
    let mut raw = h.slh_dsa_key().to_bytes().to_vec();
    let last = raw.len() - 1;
    raw[last] ^= 1; // flip a bit of pk_root
    let tampered = slh_dsa::SigningKey::<slh_dsa::Sha2_128s>::try_from(raw.as_slice()).unwrap();
    let ed_pem = h.ed25519_key().to_pkcs8_pem(pkcs8::LineEnding::LF).unwrap();
    let slh_pem = tampered.to_pkcs8_pem(pkcs8::LineEnding::LF).unwrap();
    let file = format!("{}{}", *ed_pem, *slh_pem);
    let err = decode_private_key(file.as_bytes(), None).unwrap_err();
    assert!(err.to_string().contains("does not match"), "{err}");
}

/// A file that asks for an absurd scrypt cost is refused before any work is done.
#[test]
fn key_file_excessive_kdf_refused() {
    use pkcs8::der::{Decode, Encode};
    let pem = encode_private_key(&keys()[0], fast(b"pw")).unwrap();
    let (_, doc) = pkcs8::der::SecretDocument::from_pem(&pem).unwrap();
    let info = pkcs8::EncryptedPrivateKeyInfoRef::from_der(doc.as_bytes()).unwrap();
    let mut params = info.encryption_algorithm.pbes2().unwrap().clone();
    if let pkcs8::pkcs5::pbes2::Kdf::Scrypt(s) = &mut params.kdf {
        s.cost_parameter = 1 << 30;
    }
    let tampered = pkcs8::EncryptedPrivateKeyInfoRef {
        encryption_algorithm: params.into(),
        encrypted_data: info.encrypted_data,
    };
    let der = tampered.to_der().unwrap();
    let pem = pkcs8::der::pem::encode_string("ENCRYPTED PRIVATE KEY", pkcs8::LineEnding::LF, &der)
        .unwrap();
    assert!(matches!(
        decode_private_key(pem.as_bytes(), Some(b"pw")),
        Err(KeyFileError::KdfTooExpensive(_))
    ));
}

/// Deterministic pseudo-random bytes (xorshift), so the no-panic tests are reproducible.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Random signatures of every plausible length, and random key material, never panic and
/// never verify.
#[test]
fn random_inputs_never_panic_or_verify() {
    for (i, k) in keys().iter().enumerate() {
        let real_len = signatures()[i].len();
        for (n, len) in [
            0,
            1,
            63,
            64,
            65,
            70,
            71,
            72,
            255,
            256,
            real_len,
            real_len + 1,
        ]
        .into_iter()
        .enumerate()
        {
            let sig = noise((i * 100 + n) as u64, len);
            assert!(k.public_key().verify(MSG, &sig).is_err());
        }
        // Every single-byte change of a real signature is refused.
        if k.scheme() != KeyScheme::HybridEd25519SlhDsa {
            let sig = &signatures()[i];
            for pos in 0..sig.len() {
                let mut bad = sig.clone();
                bad[pos] = bad[pos].wrapping_add(1);
                assert!(
                    k.public_key().verify(MSG, &bad).is_err(),
                    "{} {pos}",
                    k.scheme()
                );
            }
        }
    }
    for seed in 0..64u64 {
        let text = noise(seed, (seed as usize) * 13);
        assert!(decode_private_key(&text, Some(b"pw")).is_err());
        let mut framed = b"-----BEGIN ENCRYPTED PRIVATE KEY-----\n".to_vec();
        framed.extend(base64_of(&noise(seed, 200)));
        framed.extend(b"\n-----END ENCRYPTED PRIVATE KEY-----\n");
        assert!(decode_private_key(&framed, Some(b"pw")).is_err());
    }
}

fn base64_of(bytes: &[u8]) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .encode(bytes)
        .into_bytes()
}

/// Every byte of an encrypted key file changed in turn: an error or (if the change hit only
/// ignorable PEM text) the same key, never a panic and never a different key. AES-GCM
/// authenticates the ciphertext; see `cbc_would_be_malleable` for why that matters.
#[test]
fn every_byte_of_a_key_file_mutated() {
    let k = &keys()[0];
    let pem = encode_private_key(k, fast(b"pw")).unwrap();
    let bytes = pem.as_bytes();
    for pos in 0..bytes.len() {
        let mut bad = bytes.to_vec();
        bad[pos] ^= 0x04;
        if let Ok(back) = decode_private_key(&bad, Some(b"pw")) {
            assert_eq!(back.public_key(), k.public_key(), "byte {pos}");
        }
    }
}

/// Why key files use AES-GCM: with AES-CBC (what OpenSSL writes), changing ciphertext bytes
/// decrypts to a valid but different Ed25519 key without any error. Reading CBC files stays
/// possible (for imports); this test documents the weakness that our own format avoids.
#[test]
fn cbc_would_be_malleable() {
    use pkcs8::der::Decode;
    let PrivateKey::Ed25519(k) = &keys()[0] else {
        unreachable!()
    };
    let doc = super::keyfile::tests_support::ed25519_pkcs8(k);
    let info = pkcs8::PrivateKeyInfoRef::try_from(doc.as_bytes()).unwrap();
    let params = pkcs8::pkcs5::pbes2::Parameters::generate_scrypt_aes256cbc(
        pkcs8::pkcs5::scrypt::Params::new(10, 8, 1).unwrap(),
        &[7u8; 16],
        [9u8; 16],
    )
    .unwrap();
    let enc = info.encrypt_with_params(params, b"pw").unwrap();
    let parsed = pkcs8::EncryptedPrivateKeyInfoRef::from_der(enc.as_bytes()).unwrap();
    let ct = parsed.encrypted_data.as_bytes().to_vec();
    let mut silently_different = 0;
    for pos in 0..ct.len() {
        let mut bad = ct.clone();
        bad[pos] ^= 0x01;
        let tampered = pkcs8::EncryptedPrivateKeyInfoRef {
            encryption_algorithm: parsed.encryption_algorithm.clone(),
            encrypted_data: pkcs8::der::asn1::OctetStringRef::new(&bad).unwrap(),
        };
        use pkcs8::der::Encode;
        let der = tampered.to_der().unwrap();
        let pem =
            pkcs8::der::pem::encode_string("ENCRYPTED PRIVATE KEY", pkcs8::LineEnding::LF, &der)
                .unwrap();
        if let Ok(back) = decode_private_key(pem.as_bytes(), Some(b"pw"))
            && back.public_key() != keys()[0].public_key()
        {
            silently_different += 1;
        }
    }
    assert!(silently_different > 0, "expected CBC to be malleable");
}

/// Key files that went through a Windows editor (CRLF line endings) still decode.
#[test]
fn key_file_crlf_accepted() {
    let pem = encode_private_key(&keys()[0], fast(b"pw")).unwrap();
    let crlf = pem.replace('\n', "\r\n");
    let back = decode_private_key(crlf.as_bytes(), Some(b"pw")).unwrap();
    assert_eq!(back.public_key(), keys()[0].public_key());
}

/// One key written another valid way has another key id but the same material, so a threshold
/// counts it once (tests/key_identity.rs plays the attack).
#[test]
fn material_is_one_per_key_whatever_the_encoding() {
    let respelled = |k: &PublicKey, member: &str, f: &dyn Fn(&str) -> String| {
        let mut other = k.clone();
        let value = k.keyval[member].as_str().unwrap();
        other.keyval.insert(member.into(), Value::String(f(value)));
        other
    };
    let upper = |s: &str| s.to_ascii_uppercase();
    let mut variants: Vec<(usize, PublicKey)> = Vec::new();
    let ed = keys()[0].public_key();
    variants.push((0, respelled(ed, "public", &upper)));
    let ecdsa = keys()[1].public_key();
    let mut legacy = ecdsa.clone();
    legacy.keytype = names::ECDSA_KEYTYPE_LEGACY.into();
    variants.push((1, legacy));
    variants.push((1, respelled(ecdsa, "public", &|s| format!("\n{s}\n\n"))));
    let PrivateKey::Rsa(rsa_key) = &keys()[2] else {
        unreachable!()
    };
    let pkcs1 = {
        use ::rsa::pkcs1::EncodeRsaPublicKey;
        let public = rsa_key.private_key().to_public_key();
        public.to_pkcs1_pem(::rsa::pkcs8::LineEnding::LF).unwrap()
    };
    variants.push((
        2,
        public_key_with(names::RSA_KEYTYPE, names::RSA_SCHEME, pkcs1),
    ));
    let hybrid = keys()[3].public_key();
    variants.push((3, respelled(hybrid, hybrid::KEYVAL_ED25519, &upper)));
    variants.push((3, respelled(hybrid, hybrid::KEYVAL_SLH_DSA, &upper)));
    variants.push((4, respelled(keys()[4].public_key(), "public", &upper)));
    for (i, variant) in &variants {
        let original = keys()[*i].public_key();
        assert_ne!(variant.key_id(), original.key_id(), "{variant:?}");
        assert_eq!(
            variant.material().unwrap(),
            original.material().unwrap(),
            "{variant:?}"
        );
    }
    // Distinct keys, and the same bytes under different schemes, stay distinct.
    let all: Vec<KeyMaterial> = keys()
        .iter()
        .chain(other_keys())
        .map(|k| k.public_key().material().unwrap())
        .collect();
    let distinct: std::collections::BTreeSet<_> = all.iter().collect();
    assert_eq!(distinct.len(), all.len());
    let ed_as_ed448_scheme = {
        let mut k = ed.clone();
        k.keytype = names::ED448.into();
        k.scheme = names::ED448.into();
        k
    };
    assert!(ed_as_ed448_scheme.material().is_err());
    let mut unknown = ed.clone();
    unknown.scheme = "ed25519-ph".into();
    assert!(unknown.material().is_err());
}
