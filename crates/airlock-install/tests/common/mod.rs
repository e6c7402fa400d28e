//! Archives built at test time, hostile ones included (names and types that the `tar` and
//! `zip` writers would refuse are written into the headers directly).
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};

pub enum Entry<'a> {
    File(&'a str, u32, &'a [u8]),
    Dir(&'a str, u32),
    Symlink(&'a str, &'a str),
    Hardlink(&'a str, &'a str),
    Fifo(&'a str),
    CharDevice(&'a str),
}

fn raw_name(field: &mut [u8], name: &str) {
    field.fill(0);
    let n = name.len().min(field.len());
    field[..n].copy_from_slice(&name.as_bytes()[..n]);
}

pub fn tar_bytes(entries: &[Entry]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for entry in entries {
        let mut h = tar::Header::new_gnu();
        let (name, data): (&str, &[u8]) = match entry {
            Entry::File(name, mode, data) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(*mode);
                (name, data)
            }
            Entry::Dir(name, mode) => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(*mode);
                (name, &[])
            }
            Entry::Symlink(name, target) | Entry::Hardlink(name, target) => {
                h.set_entry_type(if matches!(entry, Entry::Symlink(..)) {
                    tar::EntryType::Symlink
                } else {
                    tar::EntryType::Link
                });
                h.set_mode(0o777);
                raw_name(&mut h.as_old_mut().linkname, target);
                (name, &[])
            }
            Entry::Fifo(name) => {
                h.set_entry_type(tar::EntryType::Fifo);
                h.set_mode(0o644);
                (name, &[])
            }
            Entry::CharDevice(name) => {
                h.set_entry_type(tar::EntryType::Char);
                h.set_mode(0o644);
                (name, &[])
            }
        };
        raw_name(&mut h.as_old_mut().name, name);
        h.set_size(data.len() as u64);
        h.set_cksum();
        builder.append(&h, data).unwrap();
    }
    builder.into_inner().unwrap()
}

pub fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

pub fn zst(bytes: &[u8]) -> Vec<u8> {
    ruzstd::encoding::compress_to_vec(bytes, ruzstd::encoding::CompressionLevel::Fastest)
}

pub fn zip_bytes(entries: &[Entry]) -> Vec<u8> {
    use zip::write::SimpleFileOptions;
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for entry in entries {
        match entry {
            Entry::File(name, mode, data) => {
                let o = SimpleFileOptions::default()
                    .compression_method(zip::CompressionMethod::Deflated)
                    // unix_permissions() would drop setuid/setgid before they are written.
                    .external_attributes((0o100000 | *mode) << 16);
                w.start_file(*name, o).unwrap();
                w.write_all(data).unwrap();
            }
            Entry::Dir(name, mode) => {
                w.add_directory(*name, SimpleFileOptions::default().unix_permissions(*mode))
                    .unwrap();
            }
            Entry::Symlink(name, target) => {
                w.add_symlink(*name, *target, SimpleFileOptions::default())
                    .unwrap();
            }
            Entry::Fifo(name) => {
                // S_IFIFO in the external attributes.
                let o = SimpleFileOptions::default().external_attributes(0o010644 << 16);
                w.start_file(*name, o).unwrap();
            }
            _ => panic!("not a zip entry"),
        }
    }
    w.finish().unwrap().into_inner()
}

pub fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// The names in `dir`, sorted.
pub fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

pub fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

/// A small good release for `version`.
pub fn release_tar_gz(dir: &Path, version: &str) -> PathBuf {
    let app = format!("#!/bin/sh\necho {version}\n");
    let bytes = tar_bytes(&[
        Entry::Dir("bin/", 0o755),
        Entry::File("bin/app", 0o755, app.as_bytes()),
        Entry::File("VERSION", 0o644, version.as_bytes()),
    ]);
    write(dir, &format!("app-{version}.tar.gz"), &gz(&bytes))
}
