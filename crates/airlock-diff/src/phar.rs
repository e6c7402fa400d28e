//! PHP's native phar format, read without PHP: stub, manifest, entries, signature.
//!
//! Layout (php.net, "Phar File Format"): a PHP stub ending in `__HALT_COMPILER();`, optionally
//! followed by ` ?>` and a line end; then the manifest (little-endian lengths, except the API
//! version's three big-endian nibbles): manifest length, entry count, API version, global
//! flags, alias, serialised metadata, and per entry its name, size, timestamp, compressed size,
//! CRC-32, flags (permissions in the low 9 bits, compression in 0xF000) and metadata. The
//! entries' bytes follow in manifest order. When the global flags say so, the file ends with a
//! signature: its bytes, (for OpenSSL signatures) their length, the signature type, and
//! `GBMB`.
//!
//! Every length and count comes from the file and is checked against the bytes actually there
//! before use: junk gives a [`PharError`], never a panic or an allocation a header asked for.

use sha2::Digest as _;

const HALT: &[u8] = b"__HALT_COMPILER();";
const SIGNATURE_MAGIC: &[u8] = b"GBMB";
/// Global flag: the archive ends with a signature.
pub const HAS_SIGNATURE: u32 = 0x0001_0000;
/// Entry flags: compression.
pub const ENTRY_COMPRESSION_MASK: u32 = 0x0000_f000;
const ENTRY_ZLIB: u32 = 0x0000_1000;
const ENTRY_BZIP2: u32 = 0x0000_2000;
/// The smallest manifest entry: seven 4-byte fields around an empty name and no metadata.
const MIN_ENTRY: usize = 24;

/// Why bytes are not a phar.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PharError {
    #[error("no __HALT_COMPILER(); ending a stub")]
    NoStubEnd,
    #[error("the file ends inside the {0}")]
    Truncated(&'static str),
    #[error("the manifest lists {count} entries, more than its {len} bytes can hold")]
    TooManyEntries { count: u32, len: u32 },
    #[error("the manifest's entries end {0} bytes before its stated length")]
    ManifestLength(usize),
    #[error("entry {entry}: its {size} stored bytes run past the end of the contents")]
    ContentsBeyondEnd { entry: String, size: u32 },
    #[error("entry {entry}: unknown compression flags {flags:#010x}")]
    UnknownCompression { entry: String, flags: u32 },
    #[error("the signature flag is set but the file does not end with GBMB")]
    NoSignatureMagic,
    #[error("unknown signature type {0:#x}")]
    UnknownSignature(u32),
    #[error("{0} bytes after the last entry's contents")]
    TrailingBytes(usize),
}

/// A parsed phar; every slice borrows the input.
#[derive(Debug)]
pub struct Phar<'a> {
    /// The stub, up to and including `__HALT_COMPILER();` and what PHP skips after it.
    pub stub: &'a [u8],
    /// e.g. "1.1.1".
    pub api_version: String,
    pub flags: u32,
    pub alias: &'a [u8],
    /// The archive's metadata, in PHP `serialize()` form (empty for none).
    pub metadata: &'a [u8],
    pub entries: Vec<Entry<'a>>,
    pub signature: Option<Signature>,
}

/// How an entry's bytes are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    /// Raw deflate (PHP's zlib filter without header).
    Zlib,
    Bzip2,
}

impl Compression {
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Zlib => "zlib",
            Compression::Bzip2 => "bzip2",
        }
    }
}

/// One file of the manifest with its stored bytes.
#[derive(Debug)]
pub struct Entry<'a> {
    pub name: &'a [u8],
    /// Uncompressed size, as the manifest states it.
    pub size: u32,
    pub timestamp: u32,
    pub crc32: u32,
    pub flags: u32,
    pub metadata: &'a [u8],
    pub compression: Compression,
    /// The stored (possibly compressed) bytes.
    pub data: &'a [u8],
}

/// The signature at the end of a phar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    pub kind: u32,
    pub bytes: Vec<u8>,
    /// For SHA-256 and SHA-512: whether it is the digest of everything before it. `None` for
    /// the kinds not checked here (MD5, SHA-1, OpenSSL).
    pub verifies: Option<bool>,
}

impl Signature {
    pub fn kind_name(&self) -> String {
        match self.kind {
            0x01 => "MD5".into(),
            0x02 => "SHA-1".into(),
            0x03 => "SHA-256".into(),
            0x04 => "SHA-512".into(),
            0x10 => "OpenSSL".into(),
            0x11 => "OpenSSL SHA-256".into(),
            0x12 => "OpenSSL SHA-512".into(),
            other => format!("type {other:#x}"),
        }
    }
}

/// The offset just past `__HALT_COMPILER();`, if the bytes hold it.
pub fn find_halt(data: &[u8]) -> Option<usize> {
    data.windows(HALT.len())
        .position(|w| w == HALT)
        .map(|p| p + HALT.len())
}

/// A bounds-checked little-endian reader over the input.
struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], PharError> {
        let end = self.pos.checked_add(n).ok_or(PharError::Truncated(what))?;
        let out = self
            .data
            .get(self.pos..end)
            .ok_or(PharError::Truncated(what))?;
        self.pos = end;
        Ok(out)
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, PharError> {
        let b = self.take(4, what)?;
        let mut a = [0u8; 4];
        a.copy_from_slice(b);
        Ok(u32::from_le_bytes(a))
    }

    fn bytes(&mut self, what: &'static str) -> Result<&'a [u8], PharError> {
        let n = self.u32(what)?;
        self.take(n as usize, what)
    }
}

/// Where the manifest starts: PHP skips ` ?>` (or `\n?>`) and then `\n` or `\r\n` after the
/// halt token.
fn manifest_start(data: &[u8], halt_end: usize) -> usize {
    let rest = data.get(halt_end..).unwrap_or_default();
    let mut skip = 0;
    if rest.len() >= 3
        && matches!(rest.first(), Some(b' ' | b'\n'))
        && rest.get(1..3) == Some(&b"?>"[..])
    {
        skip = 3;
        match rest.get(3..5) {
            Some(b"\r\n") => skip = 5,
            _ if rest.get(3) == Some(&b'\n') => skip = 4,
            _ => {}
        }
    }
    halt_end + skip
}

/// Parse a native-format phar.
pub fn parse(data: &[u8]) -> Result<Phar<'_>, PharError> {
    let halt_end = find_halt(data).ok_or(PharError::NoStubEnd)?;
    let start = manifest_start(data, halt_end);
    let stub = data.get(..start).ok_or(PharError::NoStubEnd)?;
    let mut r = Reader { data, pos: start };
    let manifest_len = r.u32("manifest length")?;
    let manifest = r.take(manifest_len as usize, "manifest")?;
    let contents_start = r.pos;

    let mut m = Reader {
        data: manifest,
        pos: 0,
    };
    let count = m.u32("manifest entry count")?;
    let version = m.take(2, "manifest API version")?;
    let v = u16::from_be_bytes([
        version.first().copied().unwrap_or(0),
        version.get(1).copied().unwrap_or(0),
    ]);
    let api_version = format!("{}.{}.{}", v >> 12, (v >> 8) & 0xf, (v >> 4) & 0xf);
    let flags = m.u32("manifest flags")?;
    let alias = m.bytes("alias")?;
    let metadata = m.bytes("archive metadata")?;
    if count as usize > manifest.len() / MIN_ENTRY {
        return Err(PharError::TooManyEntries {
            count,
            len: manifest_len,
        });
    }

    // The signature, when present, sits at the end; the contents end where it starts.
    let (signature, contents_end) = if flags & HAS_SIGNATURE != 0 {
        let (sig, at) = signature(data)?;
        (Some(sig), at)
    } else {
        (None, data.len())
    };
    let contents = data
        .get(contents_start..contents_end)
        .ok_or(PharError::Truncated("contents"))?;
    let mut c = Reader {
        data: contents,
        pos: 0,
    };

    let mut entries = Vec::new();
    for _ in 0..count {
        let name = m.bytes("entry name")?;
        let size = m.u32("entry size")?;
        let timestamp = m.u32("entry timestamp")?;
        let compressed = m.u32("entry compressed size")?;
        let crc32 = m.u32("entry CRC-32")?;
        let flags = m.u32("entry flags")?;
        let metadata = m.bytes("entry metadata")?;
        let shown = || String::from_utf8_lossy(name).into_owned();
        let compression = match flags & ENTRY_COMPRESSION_MASK {
            0 => Compression::None,
            ENTRY_ZLIB => Compression::Zlib,
            ENTRY_BZIP2 => Compression::Bzip2,
            _ => {
                return Err(PharError::UnknownCompression {
                    entry: shown(),
                    flags,
                });
            }
        };
        let data =
            c.take(compressed as usize, "contents")
                .map_err(|_| PharError::ContentsBeyondEnd {
                    entry: shown(),
                    size: compressed,
                })?;
        entries.push(Entry {
            name,
            size,
            timestamp,
            crc32,
            flags,
            metadata,
            compression,
            data,
        });
    }
    let left = manifest.len() - m.pos.min(manifest.len());
    if left != 0 {
        return Err(PharError::ManifestLength(left));
    }
    let trailing = contents.len() - c.pos.min(contents.len());
    if trailing != 0 {
        return Err(PharError::TrailingBytes(trailing));
    }
    Ok(Phar {
        stub,
        api_version,
        flags,
        alias,
        metadata,
        entries,
        signature,
    })
}

/// The signature at the end of `data` and the offset where it starts.
fn signature(data: &[u8]) -> Result<(Signature, usize), PharError> {
    let len = data.len();
    let tail = |from_end: usize, n: usize| -> Option<&[u8]> {
        let start = len.checked_sub(from_end)?;
        data.get(start..start.checked_add(n)?)
    };
    let le = |b: &[u8]| {
        let mut a = [0u8; 4];
        a.copy_from_slice(b.get(..4).unwrap_or(&[0; 4]));
        u32::from_le_bytes(a)
    };
    if tail(4, 4) != Some(SIGNATURE_MAGIC) {
        return Err(PharError::NoSignatureMagic);
    }
    let kind = le(tail(8, 4).ok_or(PharError::Truncated("signature"))?);
    let (sig_len, sig_end) = match kind {
        0x01 => (16, len - 8),
        0x02 => (20, len - 8),
        0x03 => (32, len - 8),
        0x04 => (64, len - 8),
        0x10..=0x12 => {
            let n = le(tail(12, 4).ok_or(PharError::Truncated("signature length"))?);
            (n as usize, len.saturating_sub(12))
        }
        other => return Err(PharError::UnknownSignature(other)),
    };
    let sig_start = sig_end
        .checked_sub(sig_len)
        .ok_or(PharError::Truncated("signature"))?;
    let bytes = data
        .get(sig_start..sig_end)
        .ok_or(PharError::Truncated("signature"))?
        .to_vec();
    let signed = data.get(..sig_start).unwrap_or_default();
    let verifies = match kind {
        0x03 => Some(sha2::Sha256::digest(signed).as_slice() == bytes.as_slice()),
        0x04 => Some(sha2::Sha512::digest(signed).as_slice() == bytes.as_slice()),
        _ => None,
    };
    Ok((
        Signature {
            kind,
            bytes,
            verifies,
        },
        sig_start,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn le(n: u32) -> [u8; 4] {
        n.to_le_bytes()
    }

    /// A phar laid out by hand: one file "a.txt" = "hello", SHA-256 signature.
    fn sample() -> Vec<u8> {
        let mut manifest = Vec::new();
        manifest.extend(le(1));
        manifest.extend([0x11, 0x10]);
        manifest.extend(le(HAS_SIGNATURE));
        manifest.extend(le(0));
        manifest.extend(le(0));
        manifest.extend(le(5));
        manifest.extend(b"a.txt");
        manifest.extend(le(5));
        manifest.extend(le(1_700_000_000));
        manifest.extend(le(5));
        let mut crc = flate2::Crc::new();
        crc.update(b"hello");
        manifest.extend(le(crc.sum()));
        manifest.extend(le(0o644));
        manifest.extend(le(0));
        let mut out = b"<?php __HALT_COMPILER(); ?>\r\n".to_vec();
        out.extend(le(manifest.len() as u32));
        out.extend(manifest);
        out.extend(b"hello");
        let digest = sha2::Sha256::digest(&out);
        out.extend(digest);
        out.extend(le(3));
        out.extend(SIGNATURE_MAGIC);
        out
    }

    #[test]
    fn parses_a_hand_made_phar() {
        let data = sample();
        let p = parse(&data).unwrap();
        assert_eq!(p.stub, b"<?php __HALT_COMPILER(); ?>\r\n");
        assert_eq!(p.api_version, "1.1.1");
        assert_eq!(p.entries.len(), 1);
        assert_eq!(p.entries[0].name, b"a.txt");
        assert_eq!(p.entries[0].data, b"hello");
        assert_eq!(p.signature.as_ref().unwrap().verifies, Some(true));
    }

    #[test]
    fn every_truncation_and_every_flipped_byte_is_an_error_not_a_panic() {
        let data = sample();
        for n in 0..data.len() {
            assert!(parse(&data[..n]).is_err(), "truncated at {n} parsed");
        }
        for i in 0..data.len() {
            for v in [0u8, 0x7f, 0xff] {
                let mut d = data.clone();
                d[i] = v;
                let _ = parse(&d);
            }
        }
    }

    #[test]
    fn a_count_beyond_the_manifest_is_refused_before_any_allocation() {
        let mut data = sample();
        let at = find_halt(&data).unwrap() + 5 + 4;
        data[at..at + 4].copy_from_slice(&le(u32::MAX));
        assert!(matches!(
            parse(&data),
            Err(PharError::TooManyEntries { .. })
        ));
    }
}
