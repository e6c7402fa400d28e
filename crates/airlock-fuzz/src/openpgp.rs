//! OpenPGP keys and signatures as they reach a client inside TUF metadata.

use airlock_core::crypto::openpgp;

/// What the fixture signatures of `crypto/openpgp/testdata` sign.
const MSG: &[u8] = b"airlock openpgp test message\n";
/// 2020-07-01, when every fixture key is valid.
const NOW: u64 = 1_593_561_600;

/// Input: `u16be(n) || certificate (n bytes, binary) || signature packet (binary)`.
///
/// Every key of the certificate is listed as a TUF key and driven through key id, material,
/// validation and verification of the signature at a fixed time; the signature's metadata form
/// must convert back to the same raw bytes.
pub fn openpgp(data: &[u8]) {
    let Some((len, rest)) = data.split_first_chunk::<2>() else {
        return;
    };
    let n = usize::from(u16::from_be_bytes(*len)).min(rest.len());
    let (cert, sig) = rest.split_at(n);
    let raw = openpgp::raw_from_packet(sig).ok();
    let Ok(fprs) = openpgp::fingerprints(cert) else {
        return;
    };
    for fpr in fprs {
        let _ = openpgp::public_key_from_certificate(cert, &fpr, NOW);
        let Ok(key) = openpgp::listed_key(cert, &fpr) else {
            continue;
        };
        assert_eq!(
            key.key_id(),
            fpr,
            "a listed key is named by its fingerprint"
        );
        let _ = key.material();
        let text = serde_json::to_vec(&key).expect("a key serializes");
        let again: airlock_core::crypto::PublicKey =
            serde_json::from_slice(&text).expect("a serialized key parses");
        assert_eq!(again.key_id(), fpr, "the key survives its JSON form");
        let Some(raw) = &raw else { continue };
        let _ = openpgp::verify_at(&key, MSG, raw, NOW);
        if let Ok((sig_hex, fields)) = key.signature_fields(raw) {
            let back = key
                .signature_bytes(&sig_hex, &fields)
                .expect("the metadata form converts back");
            assert_eq!(&back, raw, "the metadata form of a signature changes it");
        }
    }
}
