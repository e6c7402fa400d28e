//! Recognising an archive by its first bytes and reading it into members, within the caps.
//!
//! The format comes from magic bytes, never from a name: a rebuilt artifact may be named
//! anything, and a hostile one may lie. A compression layer (gzip, xz, zstd) is opened and
//! what it holds recognised again, so `.tar.gz`, `.tar.xz`, `.phar.gz` and a gzip-compressed
//! text file all come out as one archive with the layer's own header fields as metadata.

use std::io::{Cursor, Read};
use std::path::{Path, PathBuf};

use crate::{DiffError, Limits, phar};

/// What one side has spent so far; shared by every archive nested in that side.
pub(crate) struct Budget {
    path: PathBuf,
    limits: Limits,
    members: u64,
    bytes: u64,
}

impl Budget {
    pub(crate) fn new(path: &Path, limits: Limits) -> Self {
        Budget {
            path: path.to_path_buf(),
            limits,
            members: 0,
            bytes: 0,
        }
    }

    pub(crate) fn limits(&self) -> Limits {
        self.limits
    }

    pub(crate) fn admit_member(&mut self) -> Result<(), DiffError> {
        self.members += 1;
        if self.members > self.limits.max_members {
            return Err(DiffError::TooManyMembers {
                path: self.path.clone(),
                limit: self.limits.max_members,
            });
        }
        Ok(())
    }

    pub(crate) fn too_deep(&self, member: &str) -> DiffError {
        DiffError::TooDeep {
            path: self.path.clone(),
            member: member.to_string(),
            limit: self.limits.max_depth,
        }
    }

    /// Reads `r` to its end, counting every byte against the per-member and the total cap
    /// as it comes out (a header's size is never trusted).
    pub(crate) fn read_all(&mut self, member: &str, r: &mut dyn Read) -> Result<Vec<u8>, Read_> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match r.read(&mut buf) {
                Ok(0) => return Ok(out),
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Read_::Unreadable(e.to_string())),
            };
            let len = out.len() as u64 + n as u64;
            if len > self.limits.max_member_bytes {
                return Err(Read_::Limit(DiffError::MemberTooLarge {
                    path: self.path.clone(),
                    member: member.to_string(),
                    limit: self.limits.max_member_bytes,
                }));
            }
            self.bytes += n as u64;
            if self.bytes > self.limits.max_total_bytes {
                return Err(Read_::Limit(DiffError::TotalTooLarge {
                    path: self.path.clone(),
                    member: member.to_string(),
                    limit: self.limits.max_total_bytes,
                }));
            }
            out.extend_from_slice(buf.get(..n).unwrap_or_default());
        }
    }
}

/// A failure while reading: a cap (fatal to the comparison) or a damaged archive (the bytes
/// are then compared as they are).
pub(crate) enum Read_ {
    Limit(DiffError),
    Unreadable(String),
}

impl From<DiffError> for Read_ {
    fn from(e: DiffError) -> Self {
        Read_::Limit(e)
    }
}

/// What a member is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    File,
    Dir,
    Symlink(String),
    Hardlink(String),
    Other(String),
}

impl Kind {
    pub(crate) fn name(&self) -> String {
        match self {
            Kind::File => "file".into(),
            Kind::Dir => "directory".into(),
            Kind::Symlink(_) => "symlink".into(),
            Kind::Hardlink(_) => "hard link".into(),
            Kind::Other(k) => k.clone(),
        }
    }
}

/// One member of an archive.
pub(crate) struct Member {
    pub name: String,
    pub kind: Kind,
    pub data: Vec<u8>,
    /// Fields a user of the unpacked artifact does not see: times, modes, owners, methods.
    pub meta: Vec<(&'static str, String)>,
    /// Fields that are content beside the bytes (a phar entry's metadata, which PHP code
    /// reads).
    pub fields: Vec<(&'static str, String)>,
}

impl Member {
    pub(crate) fn file(name: String, data: Vec<u8>) -> Self {
        Member {
            name,
            kind: Kind::File,
            data,
            meta: Vec::new(),
            fields: Vec::new(),
        }
    }
}

/// An archive read into memory.
pub(crate) struct Archive {
    /// e.g. "tar.gz", "zip", "phar", "gz".
    pub format: String,
    /// Archive-level fields that are metadata (compression headers, comments, signatures).
    pub meta: Vec<(String, String)>,
    pub members: Vec<Member>,
    /// Things a person should know about how it was read (a bad checksum, an undecoded entry).
    pub notes: Vec<String>,
    /// The nesting depth of its members (the archive's own depth plus one, plus one per
    /// compression layer around it).
    pub depth: u32,
}

/// What a blob turned out to be.
pub(crate) enum Opened {
    Archive(Archive),
    /// Not an archive; `note` says why when it looked like one.
    Plain {
        note: Option<String>,
    },
}

const GZIP: &[u8] = &[0x1f, 0x8b];
const XZ: &[u8] = &[0xfd, b'7', b'z', b'X', b'Z', 0];
const ZSTD: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];

fn is_zip(data: &[u8]) -> bool {
    data.starts_with(b"PK\x03\x04") || data.starts_with(b"PK\x05\x06")
}

fn is_tar(data: &[u8]) -> bool {
    data.get(257..262) == Some(b"ustar")
}

/// Whether `data` starts like an archive or compressed stream this crate reads.
pub(crate) fn looks_like_archive(data: &[u8]) -> bool {
    data.starts_with(GZIP)
        || data.starts_with(XZ)
        || data.starts_with(ZSTD)
        || is_zip(data)
        || is_tar(data)
        || phar::find_halt(data).is_some()
}

/// Opens `data` (the member `path`, shown in errors) as an archive when it is one. `depth`
/// is this blob's nesting depth; opening it makes its members one deeper.
pub(crate) fn open(
    data: &[u8],
    path: &str,
    depth: u32,
    budget: &mut Budget,
) -> Result<Opened, DiffError> {
    if !looks_like_archive(data) {
        return Ok(Opened::Plain { note: None });
    }
    if depth >= budget.limits().max_depth {
        return Err(budget.too_deep(path));
    }
    let result = if data.starts_with(GZIP) {
        open_compressed(data, path, depth, budget, Layer::Gzip)
    } else if data.starts_with(XZ) {
        open_compressed(data, path, depth, budget, Layer::Xz)
    } else if data.starts_with(ZSTD) {
        open_compressed(data, path, depth, budget, Layer::Zstd)
    } else if is_zip(data) {
        read_zip(data, path, budget)
    } else if is_tar(data) {
        read_tar(data, path, budget)
    } else {
        read_phar(data, path, budget)
    };
    match result {
        Ok(mut a) => {
            if a.depth == 0 {
                a.depth = depth + 1;
            }
            Ok(Opened::Archive(a))
        }
        Err(Read_::Limit(e)) => Err(e),
        Err(Read_::Unreadable(why)) => Ok(Opened::Plain { note: Some(why) }),
    }
}

#[derive(Clone, Copy)]
enum Layer {
    Gzip,
    Xz,
    Zstd,
}

impl Layer {
    fn name(self) -> &'static str {
        match self {
            Layer::Gzip => "gz",
            Layer::Xz => "xz",
            Layer::Zstd => "zst",
        }
    }
}

/// xz decoders allocate their dictionary up front from a header value; a hostile header
/// could ask for 4 GiB. The limit follows the per-member cap, between 16 MiB (`xz -6`'s 8 MiB
/// dictionary with room) and 256 MiB (`xz -9`'s 64 MiB with room).
fn xz_mem_limit_kib(limits: Limits) -> u32 {
    let bytes = limits.max_member_bytes.clamp(16 << 20, 256 << 20);
    u32::try_from(bytes / 1024).unwrap_or(u32::MAX)
}

fn open_compressed(
    data: &[u8],
    path: &str,
    depth: u32,
    budget: &mut Budget,
    layer: Layer,
) -> Result<Archive, Read_> {
    let mut meta = Vec::new();
    let mut inner_name = None;
    let inner = match layer {
        Layer::Gzip => {
            let mut gz = flate2::read::MultiGzDecoder::new(data);
            let out = budget.read_all(path, &mut gz)?;
            if let Some(h) = gz.header() {
                meta.push(("gzip mtime".to_string(), h.mtime().to_string()));
                meta.push(("gzip os".to_string(), h.operating_system().to_string()));
                if let Some(name) = h.filename() {
                    let name = String::from_utf8_lossy(name).into_owned();
                    meta.push(("gzip file name".to_string(), name.clone()));
                    inner_name = Some(name);
                }
                if let Some(c) = h.comment() {
                    meta.push((
                        "gzip comment".to_string(),
                        String::from_utf8_lossy(c).into_owned(),
                    ));
                }
                if let Some(x) = h.extra() {
                    meta.push(("gzip extra field".to_string(), hex::encode(x)));
                }
            }
            out
        }
        Layer::Xz => {
            let mut xz =
                lzma_rust2::XzReader::new_mem_limit(data, true, xz_mem_limit_kib(budget.limits()));
            budget.read_all(path, &mut xz)?
        }
        Layer::Zstd => {
            let mut zst = ruzstd::decoding::StreamingDecoder::new(data)
                .map_err(|e| Read_::Unreadable(format!("zstd: {e}")))?;
            budget.read_all(path, &mut zst)?
        }
    };
    let inner_path = format!("{path}!/");
    match open(&inner, &inner_path, depth + 1, budget)? {
        Opened::Archive(mut a) => {
            a.format = format!("{}.{}", a.format, layer.name());
            meta.append(&mut a.meta);
            a.meta = meta;
            Ok(a)
        }
        Opened::Plain { note } => {
            let name = inner_name.unwrap_or_else(|| "(uncompressed)".to_string());
            budget.admit_member()?;
            Ok(Archive {
                format: layer.name().to_string(),
                meta,
                members: vec![Member::file(name, inner)],
                notes: note.into_iter().collect(),
                depth: depth + 1,
            })
        }
    }
}

fn unix_time(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|| secs.to_string())
}

fn read_tar(data: &[u8], path: &str, budget: &mut Budget) -> Result<Archive, Read_> {
    use tar::EntryType;
    let bad = |e: std::io::Error| Read_::Unreadable(format!("tar: {e}"));
    let mut archive = tar::Archive::new(Cursor::new(data));
    let mut members = Vec::new();
    for entry in archive.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        let header = entry.header().clone();
        let kind = header.entry_type();
        if matches!(kind, EntryType::XGlobalHeader) {
            continue;
        }
        budget.admit_member()?;
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let link = || {
            header
                .link_name_bytes()
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default()
        };
        let member_path = format!("{path}!/{name}");
        let (kind, data) = match kind {
            EntryType::Regular | EntryType::Continuous => {
                (Kind::File, budget.read_all(&member_path, &mut entry)?)
            }
            EntryType::Directory => (Kind::Dir, Vec::new()),
            EntryType::Symlink => (Kind::Symlink(link()), Vec::new()),
            EntryType::Link => (Kind::Hardlink(link()), Vec::new()),
            EntryType::Char => (Kind::Other("character device".into()), Vec::new()),
            EntryType::Block => (Kind::Other("block device".into()), Vec::new()),
            EntryType::Fifo => (Kind::Other("FIFO".into()), Vec::new()),
            other => (
                Kind::Other(format!("tar type {:?}", other.as_byte() as char)),
                budget.read_all(&member_path, &mut entry)?,
            ),
        };
        let mut meta = Vec::new();
        if let Ok(mode) = header.mode() {
            meta.push(("mode", format!("{mode:04o}")));
        }
        if let Ok(mtime) = header.mtime() {
            meta.push(("mtime", unix_time(i64::try_from(mtime).unwrap_or(i64::MAX))));
        }
        if let Ok(uid) = header.uid() {
            meta.push(("uid", uid.to_string()));
        }
        if let Ok(gid) = header.gid() {
            meta.push(("gid", gid.to_string()));
        }
        if let Some(u) = header.username_bytes() {
            meta.push(("owner", String::from_utf8_lossy(u).into_owned()));
        }
        if let Some(g) = header.groupname_bytes() {
            meta.push(("group", String::from_utf8_lossy(g).into_owned()));
        }
        let format = if header.as_gnu().is_some() {
            "gnu"
        } else if header.as_ustar().is_some() {
            "ustar"
        } else {
            "v7"
        };
        meta.push(("tar header", format.to_string()));
        members.push(Member {
            name,
            kind,
            data,
            meta,
            fields: Vec::new(),
        });
    }
    Ok(Archive {
        format: "tar".into(),
        meta: Vec::new(),
        members,
        notes: Vec::new(),
        depth: 0,
    })
}

/// Unix file-type bits of a zip entry's external attributes.
fn zip_kind(mode: Option<u32>, is_dir: bool, is_symlink: bool) -> Kind {
    if is_dir {
        return Kind::Dir;
    }
    if is_symlink {
        return Kind::Symlink(String::new());
    }
    match mode.map(|m| m & 0o170000) {
        Some(0o010000) => Kind::Other("FIFO".into()),
        Some(0o020000) => Kind::Other("character device".into()),
        Some(0o060000) => Kind::Other("block device".into()),
        Some(0o140000) => Kind::Other("socket".into()),
        _ => Kind::File,
    }
}

fn read_zip(data: &[u8], path: &str, budget: &mut Budget) -> Result<Archive, Read_> {
    let bad = |e: zip::result::ZipError| Read_::Unreadable(format!("zip: {e}"));
    let mut archive = zip::ZipArchive::new(Cursor::new(data)).map_err(bad)?;
    let mut meta = Vec::new();
    if !archive.comment().is_empty() {
        meta.push((
            "zip comment".to_string(),
            String::from_utf8_lossy(archive.comment()).into_owned(),
        ));
    }
    let mut members = Vec::new();
    for i in 0..archive.len() {
        budget.admit_member()?;
        let mut entry = archive.by_index(i).map_err(bad)?;
        let name = String::from_utf8_lossy(entry.name_raw()).into_owned();
        let member_path = format!("{path}!/{name}");
        let mode = entry.unix_mode();
        let mut kind = zip_kind(mode, entry.is_dir(), entry.is_symlink());
        let mut meta = Vec::new();
        if let Some(m) = mode {
            meta.push(("mode", format!("{:04o}", m & 0o7777)));
        }
        if let Some(t) = entry.last_modified() {
            meta.push(("mtime", t.to_string()));
        }
        meta.push(("compression", entry.compression().to_string()));
        if let Some(extra) = entry.extra_data().filter(|x| !x.is_empty()) {
            meta.push(("zip extra fields", hex::encode(extra)));
        }
        if !entry.comment().is_empty() {
            meta.push(("zip comment", entry.comment().to_string()));
        }
        let data = match kind {
            Kind::Dir => Vec::new(),
            _ => budget.read_all(&member_path, &mut entry)?,
        };
        // A zip symlink stores its target as the entry's data.
        let data = if let Kind::Symlink(_) = kind {
            kind = Kind::Symlink(String::from_utf8_lossy(&data).into_owned());
            Vec::new()
        } else {
            data
        };
        members.push(Member {
            name,
            kind,
            data,
            meta,
            fields: Vec::new(),
        });
    }
    Ok(Archive {
        format: "zip".into(),
        meta,
        members,
        notes: Vec::new(),
        depth: 0,
    })
}

fn read_phar(data: &[u8], path: &str, budget: &mut Budget) -> Result<Archive, Read_> {
    let parsed = phar::parse(data).map_err(|e| Read_::Unreadable(format!("phar: {e}")))?;
    let mut notes = Vec::new();
    let mut meta = vec![
        ("phar api version".to_string(), parsed.api_version.clone()),
        ("phar flags".to_string(), format!("{:#010x}", parsed.flags)),
    ];
    match &parsed.signature {
        Some(sig) => {
            meta.push((
                "phar signature".to_string(),
                format!("{} {}", sig.kind_name(), hex::encode(&sig.bytes)),
            ));
            if sig.verifies == Some(false) {
                notes.push(format!(
                    "the {} signature does not match the archive's bytes",
                    sig.kind_name()
                ));
            }
        }
        None => meta.push(("phar signature".to_string(), "none".to_string())),
    }
    let mut members = Vec::new();
    // The names PHP itself gives these parts in tar- and zip-based phars.
    budget.admit_member()?;
    members.push(Member::file(".phar/stub.php".into(), parsed.stub.to_vec()));
    if !parsed.alias.is_empty() {
        budget.admit_member()?;
        members.push(Member::file(
            ".phar/alias.txt".into(),
            parsed.alias.to_vec(),
        ));
    }
    if !parsed.metadata.is_empty() {
        budget.admit_member()?;
        members.push(Member::file(
            ".phar/.metadata.bin".into(),
            parsed.metadata.to_vec(),
        ));
    }
    for entry in &parsed.entries {
        budget.admit_member()?;
        let name = String::from_utf8_lossy(entry.name).into_owned();
        let member_path = format!("{path}!/{name}");
        let data = match entry.compression {
            phar::Compression::None => budget.read_all(&member_path, &mut &entry.data[..])?,
            phar::Compression::Zlib => {
                let mut d = flate2::read::DeflateDecoder::new(entry.data);
                budget.read_all(&member_path, &mut d).map_err(|e| match e {
                    Read_::Unreadable(why) => {
                        Read_::Unreadable(format!("phar entry {name}: deflate: {why}"))
                    }
                    limit => limit,
                })?
            }
            phar::Compression::Bzip2 => {
                notes.push(format!(
                    "{name}: bzip2-compressed phar entry compared as compressed bytes"
                ));
                budget.read_all(&member_path, &mut &entry.data[..])?
            }
        };
        if entry.compression != phar::Compression::Bzip2 {
            let mut crc = flate2::Crc::new();
            crc.update(&data);
            if crc.sum() != entry.crc32 {
                notes.push(format!(
                    "{name}: content does not match the manifest's CRC-32"
                ));
            }
            if data.len() as u64 != u64::from(entry.size) {
                notes.push(format!(
                    "{name}: {} bytes, the manifest says {}",
                    data.len(),
                    entry.size
                ));
            }
        }
        let mut meta = vec![
            ("mode", format!("{:04o}", entry.flags & 0o777)),
            ("mtime", unix_time(i64::from(entry.timestamp))),
            ("compression", entry.compression.name().to_string()),
        ];
        if entry.flags & !(0o777 | phar::ENTRY_COMPRESSION_MASK) != 0 {
            meta.push(("phar entry flags", format!("{:#010x}", entry.flags)));
        }
        let mut fields = Vec::new();
        if !entry.metadata.is_empty() {
            fields.push((
                "phar entry metadata",
                String::from_utf8_lossy(entry.metadata).into_owned(),
            ));
        }
        members.push(Member {
            name,
            kind: Kind::File,
            data,
            meta,
            fields,
        });
    }
    Ok(Archive {
        format: "phar".into(),
        meta,
        members,
        notes,
        depth: 0,
    })
}
