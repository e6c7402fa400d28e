//! The few OpenPGP (RFC 4880, version 4) packets a TUF key needs: public keys and subkeys, user
//! ids, and signatures. Parsing only; what a packet means is decided in the parent module.
//!
//! Everything here reads outside input: every length is checked against what is left, and a
//! construct this subset does not know is an error, never a guess.

use sha1::{Digest as _, Sha1};

/// Packet tags (RFC 4880 4.3).
pub(crate) const TAG_SIGNATURE: u8 = 2;
pub(crate) const TAG_PUBLIC_KEY: u8 = 6;
pub(crate) const TAG_TRUST: u8 = 12;
pub(crate) const TAG_USER_ID: u8 = 13;
pub(crate) const TAG_PUBLIC_SUBKEY: u8 = 14;
pub(crate) const TAG_USER_ATTRIBUTE: u8 = 17;

/// Public-key algorithms (RFC 4880 9.1, RFC 4880bis 9.1).
pub(crate) const ALGO_RSA: u8 = 1;
pub(crate) const ALGO_EDDSA: u8 = 22;

/// Hash algorithms (RFC 4880 9.4).
pub(crate) const HASH_SHA256: u8 = 8;
pub(crate) const HASH_SHA384: u8 = 9;
pub(crate) const HASH_SHA512: u8 = 10;

/// Signature subpacket types (RFC 4880 5.2.3.1).
pub(crate) const SUB_CREATION_TIME: u8 = 2;
pub(crate) const SUB_SIG_EXPIRATION: u8 = 3;
pub(crate) const SUB_KEY_EXPIRATION: u8 = 9;
pub(crate) const SUB_ISSUER: u8 = 16;
pub(crate) const SUB_KEY_FLAGS: u8 = 27;
pub(crate) const SUB_EMBEDDED_SIGNATURE: u8 = 32;
pub(crate) const SUB_ISSUER_FINGERPRINT: u8 = 33;

/// Subpackets whose meaning this subset knows well enough to honour when marked critical; a
/// signature with any other critical subpacket is invalid (RFC 4880 5.2.3.1).
const UNDERSTOOD: &[u8] = &[
    SUB_CREATION_TIME,
    SUB_SIG_EXPIRATION,
    4, // exportable certification
    7, // revocable
    SUB_KEY_EXPIRATION,
    11, // preferred symmetric algorithms
    SUB_ISSUER,
    21, // preferred hash algorithms
    22, // preferred compression algorithms
    23, // key server preferences
    25, // primary user id
    SUB_KEY_FLAGS,
    30, // features
    SUB_EMBEDDED_SIGNATURE,
    SUB_ISSUER_FINGERPRINT,
];

/// OID of Ed25519 for legacy EdDSA keys (RFC 4880bis 9.2).
const ED25519_OID: &[u8] = &[0x2B, 0x06, 0x01, 0x04, 0x01, 0xDA, 0x47, 0x0F, 0x01];

/// One packet: its tag and body.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Packet<'a> {
    pub tag: u8,
    pub body: &'a [u8],
}

/// A cursor over bytes that never reads past the end.
struct Reader<'a> {
    data: &'a [u8],
    what: &'static str,
}

impl<'a> Reader<'a> {
    fn new(data: &'a [u8], what: &'static str) -> Self {
        Reader { data, what }
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if n > self.data.len() {
            return Err(format!("{} is truncated", self.what));
        }
        let (head, rest) = self.data.split_at(n);
        self.data = rest;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, String> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32, String> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    /// A multiprecision integer (RFC 4880 3.2): its value bytes, which must be minimal.
    fn mpi(&mut self) -> Result<&'a [u8], String> {
        let bits = usize::from(self.u16()?);
        let value = self.take(bits.div_ceil(8))?;
        let actual = match value.first() {
            None => 0,
            Some(b) => (value.len() - 1) * 8 + (8 - b.leading_zeros() as usize),
        };
        if actual != bits {
            return Err(format!("{}: malformed multiprecision integer", self.what));
        }
        Ok(value)
    }
    fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.data)
    }
    fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}

/// Split a binary OpenPGP message into packets (old and new header formats; partial and
/// indeterminate lengths, which keys and signatures never use, are refused).
pub(crate) fn packets(data: &[u8]) -> Result<Vec<Packet<'_>>, String> {
    let mut r = Reader::new(data, "OpenPGP packet");
    let mut out = Vec::new();
    while !r.is_empty() {
        let first = r.u8()?;
        if first & 0x80 == 0 {
            return Err("not an OpenPGP packet (bad header byte)".into());
        }
        let (tag, len) = if first & 0x40 != 0 {
            let tag = first & 0x3F;
            let l1 = usize::from(r.u8()?);
            let len = match l1 {
                0..=191 => l1,
                192..=223 => ((l1 - 192) << 8) + usize::from(r.u8()?) + 192,
                255 => r.u32()? as usize,
                _ => return Err("OpenPGP partial body lengths are not supported here".into()),
            };
            (tag, len)
        } else {
            let tag = (first >> 2) & 0x0F;
            let len = match first & 0x03 {
                0 => usize::from(r.u8()?),
                1 => usize::from(r.u16()?),
                2 => r.u32()? as usize,
                _ => return Err("OpenPGP indeterminate lengths are not supported here".into()),
            };
            (tag, len)
        };
        out.push(Packet {
            tag,
            body: r.take(len)?,
        });
    }
    Ok(out)
}

/// The public parameters of a key this subset can verify with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum KeyParams {
    /// Modulus and public exponent, big-endian, minimal.
    Rsa { n: Vec<u8>, e: Vec<u8> },
    /// The 32-byte Ed25519 point (legacy EdDSA, algorithm 22).
    Ed25519([u8; 32]),
    /// Any other algorithm: the key is parsed only to be hashed and skipped.
    Other(u8),
}

/// A version 4 public key or subkey packet.
#[derive(Clone, Debug)]
pub(crate) struct KeyPacket {
    pub body: Vec<u8>,
    pub created: u32,
    pub params: KeyParams,
    pub fingerprint: [u8; 20],
}

impl KeyPacket {
    pub fn parse(body: &[u8]) -> Result<KeyPacket, String> {
        let mut r = Reader::new(body, "OpenPGP public key packet");
        let version = r.u8()?;
        if version != 4 {
            return Err(format!(
                "OpenPGP key packet version {version}; only version 4 is supported"
            ));
        }
        let created = r.u32()?;
        let algo = r.u8()?;
        let params = match algo {
            ALGO_RSA => {
                let n = r.mpi()?.to_vec();
                let e = r.mpi()?.to_vec();
                if !r.is_empty() {
                    return Err("OpenPGP RSA key packet has trailing bytes".into());
                }
                KeyParams::Rsa { n, e }
            }
            ALGO_EDDSA => {
                let oid_len = usize::from(r.u8()?);
                let oid = r.take(oid_len)?;
                if oid != ED25519_OID {
                    return Err("OpenPGP EdDSA key is not on Ed25519".into());
                }
                let q = r.mpi()?;
                // Native point format: 0x40 followed by the 32-byte encoding (RFC 4880bis 13.3).
                let point = match q.split_first() {
                    Some((0x40, rest)) if rest.len() == 32 => rest,
                    _ => return Err("OpenPGP Ed25519 point is not in native format".into()),
                };
                if !r.is_empty() {
                    return Err("OpenPGP EdDSA key packet has trailing bytes".into());
                }
                let mut q = [0u8; 32];
                q.copy_from_slice(point);
                KeyParams::Ed25519(q)
            }
            other => {
                r.rest();
                KeyParams::Other(other)
            }
        };
        Ok(KeyPacket {
            body: body.to_vec(),
            created,
            params,
            fingerprint: fingerprint(body)?,
        })
    }

    /// The bytes a signature over this key hashes: `0x99 || u16 length || body`.
    pub fn hash_prefix(&self) -> Vec<u8> {
        key_hash_prefix(&self.body).unwrap_or_default()
    }
}

fn key_hash_prefix(body: &[u8]) -> Result<Vec<u8>, String> {
    let len = u16::try_from(body.len()).map_err(|_| "OpenPGP key packet is too large")?;
    let mut out = Vec::with_capacity(3 + body.len());
    out.push(0x99);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(body);
    Ok(out)
}

/// The version 4 fingerprint: SHA-1 over the key packet (RFC 4880 12.2). It names the key;
/// nothing here trusts a key because of its fingerprint (keys are matched by their material).
pub(crate) fn fingerprint(body: &[u8]) -> Result<[u8; 20], String> {
    Ok(Sha1::digest(key_hash_prefix(body)?).into())
}

/// One signature subpacket.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Subpacket<'a> {
    pub typ: u8,
    pub critical: bool,
    pub data: &'a [u8],
}

fn subpackets(data: &[u8]) -> Result<Vec<Subpacket<'_>>, String> {
    let mut r = Reader::new(data, "OpenPGP signature subpacket");
    let mut out = Vec::new();
    while !r.is_empty() {
        let l1 = usize::from(r.u8()?);
        let len = match l1 {
            0..=191 => l1,
            192..=254 => ((l1 - 192) << 8) + usize::from(r.u8()?) + 192,
            _ => r.u32()? as usize,
        };
        let body = r.take(len)?;
        let (&typ, data) = body
            .split_first()
            .ok_or("OpenPGP signature subpacket is empty")?;
        out.push(Subpacket {
            typ: typ & 0x7F,
            critical: typ & 0x80 != 0,
            data,
        });
    }
    Ok(out)
}

/// The value of a signature, in the form securesystemslib stores in `sig`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum SigValue {
    /// The RSA signature integer (minimal big-endian, as the MPI holds it).
    Rsa(Vec<u8>),
    /// `R || S`, each left-padded to 32 bytes.
    Ed25519([u8; 64]),
    Other,
}

/// A version 4 signature packet.
#[derive(Clone, Debug)]
pub(crate) struct SigPacket<'a> {
    pub sig_type: u8,
    pub pk_algo: u8,
    pub hash_algo: u8,
    /// Version through the hashed subpackets: securesystemslib's `other_headers`, and what the
    /// signature hashes after the signed data.
    pub header: &'a [u8],
    pub hashed: Vec<Subpacket<'a>>,
    pub unhashed: Vec<Subpacket<'a>>,
    pub value: SigValue,
}

impl<'a> SigPacket<'a> {
    pub fn parse(body: &'a [u8]) -> Result<SigPacket<'a>, String> {
        let (header, rest) = split_header(body)?;
        let mut r = Reader::new(rest, "OpenPGP signature packet");
        let unhashed_len = usize::from(r.u16()?);
        let unhashed = subpackets(r.take(unhashed_len)?)?;
        r.take(2)?; // the left 16 bits of the hash: a quick check only, not trusted
        let fields = parse_header(header)?;
        let value = sig_value(fields.1, &mut r)?;
        if !r.is_empty() {
            return Err("OpenPGP signature packet has trailing bytes".into());
        }
        Ok(SigPacket {
            sig_type: fields.0,
            pk_algo: fields.1,
            hash_algo: fields.2,
            header,
            hashed: fields.3,
            unhashed,
            value,
        })
    }

    /// A signature from its `other_headers` and its value as securesystemslib stores them.
    pub fn from_parts(header: &'a [u8], value: &[u8]) -> Result<SigPacket<'a>, String> {
        let (h, rest) = split_header(header)?;
        if !rest.is_empty() {
            return Err("OpenPGP other_headers has trailing bytes".into());
        }
        let (sig_type, pk_algo, hash_algo, hashed) = parse_header(h)?;
        let value = match pk_algo {
            ALGO_RSA => {
                if value.is_empty() {
                    return Err("OpenPGP RSA signature is empty".into());
                }
                SigValue::Rsa(value.to_vec())
            }
            ALGO_EDDSA => SigValue::Ed25519(
                value
                    .try_into()
                    .map_err(|_| format!("OpenPGP Ed25519 signature of {} bytes", value.len()))?,
            ),
            _ => SigValue::Other,
        };
        Ok(SigPacket {
            sig_type,
            pk_algo,
            hash_algo,
            header: h,
            hashed,
            unhashed: Vec::new(),
            value,
        })
    }

    /// The first hashed subpacket of `typ`.
    pub fn hashed_sub(&self, typ: u8) -> Option<&'a [u8]> {
        self.hashed.iter().find(|s| s.typ == typ).map(|s| s.data)
    }

    /// A hashed subpacket holding a 4-byte big-endian time or duration.
    pub fn hashed_u32(&self, typ: u8) -> Result<Option<u32>, String> {
        match self.hashed_sub(typ) {
            None => Ok(None),
            Some(d) => <[u8; 4]>::try_from(d)
                .map(|b| Some(u32::from_be_bytes(b)))
                .map_err(|_| format!("OpenPGP subpacket {typ} is not 4 bytes")),
        }
    }

    /// The critical hashed subpacket this subset does not understand, if any.
    pub fn unknown_critical(&self) -> Option<u8> {
        self.hashed
            .iter()
            .chain(self.unhashed.iter())
            .find(|s| s.critical && !UNDERSTOOD.contains(&s.typ))
            .map(|s| s.typ)
    }

    /// The trailer hashed after the signed data (RFC 4880 5.2.4): header, 0x04 0xFF, length.
    pub fn trailer(&self) -> Vec<u8> {
        let mut t = self.header.to_vec();
        t.extend_from_slice(&[0x04, 0xFF]);
        t.extend_from_slice(&(self.header.len() as u32).to_be_bytes());
        t
    }

    /// The value bytes as securesystemslib stores them in `sig`.
    pub fn value_bytes(&self) -> Option<Vec<u8>> {
        match &self.value {
            SigValue::Rsa(v) => Some(v.clone()),
            SigValue::Ed25519(v) => Some(v.to_vec()),
            SigValue::Other => None,
        }
    }
}

/// Split `version .. hashed subpackets` off the front of a signature body.
fn split_header(body: &[u8]) -> Result<(&[u8], &[u8]), String> {
    let len = match body {
        [_, _, _, _, hi, lo, ..] => 6 + usize::from(u16::from_be_bytes([*hi, *lo])),
        _ => return Err("OpenPGP signature is truncated".into()),
    };
    if len > body.len() {
        return Err("OpenPGP signature is truncated".into());
    }
    Ok(body.split_at(len))
}

type Header<'a> = (u8, u8, u8, Vec<Subpacket<'a>>);

fn parse_header(h: &[u8]) -> Result<Header<'_>, String> {
    let mut r = Reader::new(h, "OpenPGP signature header");
    let version = r.u8()?;
    if version != 4 {
        return Err(format!(
            "OpenPGP signature version {version}; only version 4 is supported"
        ));
    }
    let sig_type = r.u8()?;
    let pk_algo = r.u8()?;
    let hash_algo = r.u8()?;
    let len = usize::from(r.u16()?);
    let hashed = subpackets(r.take(len)?)?;
    Ok((sig_type, pk_algo, hash_algo, hashed))
}

fn sig_value(pk_algo: u8, r: &mut Reader<'_>) -> Result<SigValue, String> {
    Ok(match pk_algo {
        ALGO_RSA => SigValue::Rsa(r.mpi()?.to_vec()),
        ALGO_EDDSA => {
            let (rr, s) = (r.mpi()?, r.mpi()?);
            if rr.len() > 32 || s.len() > 32 {
                return Err("OpenPGP Ed25519 signature value is too long".into());
            }
            let mut out = [0u8; 64];
            out[32 - rr.len()..32].copy_from_slice(rr);
            out[64 - s.len()..].copy_from_slice(s);
            SigValue::Ed25519(out)
        }
        _ => {
            r.rest();
            SigValue::Other
        }
    })
}

/// Decode ASCII armor (RFC 4880 6.2) of the given block type; the CRC-24, when present, must
/// match.
pub(crate) fn dearmor(text: &str, block: &str) -> Result<Vec<u8>, String> {
    use base64::Engine as _;
    let begin = format!("-----BEGIN PGP {block}-----");
    let end = format!("-----END PGP {block}-----");
    let mut lines = text.lines().map(str::trim_end);
    if !lines.by_ref().any(|l| l == begin) {
        return Err(format!("no {begin} line"));
    }
    // Armor headers, up to the first empty line.
    if !lines.by_ref().any(str::is_empty) {
        return Err("armor has no blank line before its data".into());
    }
    let mut b64 = String::new();
    let mut crc = None;
    let mut ended = false;
    for line in lines.by_ref() {
        if line == end {
            ended = true;
            break;
        }
        if let Some(c) = line.strip_prefix('=') {
            crc = Some(c.to_string());
        } else if crc.is_some() {
            return Err("armor has data after its checksum".into());
        } else {
            b64.push_str(line);
        }
    }
    if !ended {
        return Err(format!("no {end} line"));
    }
    let data = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|e| format!("armor is not base64: {e}"))?;
    if let Some(c) = crc {
        let want = base64::engine::general_purpose::STANDARD
            .decode(c)
            .map_err(|e| format!("armor checksum is not base64: {e}"))?;
        if want != crc24(&data).to_be_bytes()[1..] {
            return Err("armor checksum does not match".into());
        }
    }
    Ok(data)
}

/// ASCII armor of `data` as GnuPG writes it (64-column base64, CRC-24 line).
pub(crate) fn armor(data: &[u8], block: &str) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(data);
    let mut out = format!("-----BEGIN PGP {block}-----\n\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push('=');
    out.push_str(
        &base64::engine::general_purpose::STANDARD.encode(&crc24(data).to_be_bytes()[1..]),
    );
    out.push_str(&format!("\n-----END PGP {block}-----\n"));
    out
}

fn crc24(data: &[u8]) -> u32 {
    let mut crc: u32 = 0xB704CE;
    for &b in data {
        crc ^= u32::from(b) << 16;
        for _ in 0..8 {
            crc <<= 1;
            if crc & 0x1000000 != 0 {
                crc ^= 0x1864CFB;
            }
        }
    }
    crc & 0xFFFFFF
}
