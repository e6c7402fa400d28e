//! Every format installs with the modes it should; every hostile archive is refused, named,
//! and leaves nothing behind.

mod common;

use std::fs;
use std::path::Path;

use airlock_install::{
    AppLayout, EventKind, InstallError, InstallSpec, UnpackLimits, install, status, verify_release,
};
use common::*;

fn good_entries() -> Vec<Entry<'static>> {
    vec![
        Entry::Dir("./", 0o700),
        Entry::Dir("bin/", 0o777),
        Entry::File("bin/app", 0o775, b"#!/bin/sh\necho hi\n"),
        Entry::File("etc/app.conf", 0o666, b"port = 8080\n"),
        Entry::Symlink("bin/run", "app"),
        Entry::Symlink("etc/bin", "../bin"),
        Entry::Dir("var/", 0o700),
    ]
}

fn check_good_release(root: &Path, version: &str) {
    let layout = AppLayout::new(root);
    assert_eq!(layout.current_version().unwrap().as_deref(), Some(version));
    let cur = root.join("current");
    assert_eq!(
        fs::read_link(&cur).unwrap().to_str().unwrap(),
        format!("releases/{version}")
    );
    assert_eq!(
        fs::read(cur.join("bin/app")).unwrap(),
        b"#!/bin/sh\necho hi\n"
    );
    // Archive modes minus group/other write; directories 0755 whatever the archive said.
    assert_eq!(mode(&cur.join("bin/app")), 0o755);
    assert_eq!(mode(&cur.join("etc/app.conf")), 0o644);
    assert_eq!(mode(&cur.join("bin")), 0o755);
    assert_eq!(mode(&cur.join("var")), 0o755);
    assert_eq!(mode(&root.join("releases").join(version)), 0o755);
    assert_eq!(
        fs::read_link(cur.join("bin/run")).unwrap().to_str(),
        Some("app")
    );
    assert_eq!(
        fs::read(cur.join("etc/bin/run")).unwrap(),
        b"#!/bin/sh\necho hi\n"
    );
    verify_release(&layout, version).unwrap();
}

#[test]
fn tar_gz_tar_zst_zip_and_a_plain_file_install_with_their_modes() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("app");
    let layout = AppLayout::new(&root);
    let spec = InstallSpec::default();
    let tar = tar_bytes(&good_entries());

    let a = write(dir.path(), "app-1.0.0.tar.gz", &gz(&tar));
    install(&layout, &spec, &a, "1.0.0", false).unwrap();
    check_good_release(&root, "1.0.0");

    let a = write(dir.path(), "app-1.1.0.tar.zst", &zst(&tar));
    install(&layout, &spec, &a, "1.1.0", false).unwrap();
    check_good_release(&root, "1.1.0");

    let a = write(dir.path(), "app-1.2.0.zip", &zip_bytes(&good_entries()));
    install(&layout, &spec, &a, "1.2.0", false).unwrap();
    check_good_release(&root, "1.2.0");

    let a = write(dir.path(), "mytool", b"\x7fELF binary");
    install(&layout, &spec, &a, "1.3.0", false).unwrap();
    assert_eq!(
        fs::read(root.join("current/mytool")).unwrap(),
        b"\x7fELF binary"
    );
    assert_eq!(mode(&root.join("current/mytool")), 0o755);

    // keep = 2: 1.0.0 pruned, 1.1.0 and 1.2.0 kept.
    let st = status(&layout).unwrap();
    assert_eq!(st.installed.as_deref(), Some("1.3.0"));
    assert_eq!(st.previous, vec!["1.2.0", "1.1.0"]);
    assert_eq!(
        names(&root.join("releases")),
        vec!["1.1.0", "1.2.0", "1.3.0"]
    );
}

#[test]
fn setuid_is_kept_only_when_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("app");
    let layout = AppLayout::new(&root);
    let tar = tar_bytes(&[Entry::File("helper", 0o4755, b"x")]);
    let a = write(dir.path(), "a.tar.gz", &gz(&tar));
    let spec = InstallSpec {
        limits: UnpackLimits {
            allow_setuid: true,
            ..UnpackLimits::default()
        },
        ..InstallSpec::default()
    };
    install(&layout, &spec, &a, "1.0.0", false).unwrap();
    assert_eq!(mode(&root.join("current/helper")), 0o4755);
}

/// Install a hostile artifact over a good 1.0.0: refused with `entry` and `check` in the
/// message, 1.0.0 still current, nothing left in releases/ or state/ but what was there.
fn refused(name: &str, bytes: &[u8], limits: UnpackLimits, entry: &str, check: &str) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("app");
    let layout = AppLayout::new(&root);
    let good = release_tar_gz(dir.path(), "1.0.0");
    install(&layout, &InstallSpec::default(), &good, "1.0.0", false).unwrap();
    let releases_before = names(&root.join("releases"));
    let state_before = names(&root.join("state"));
    let manifests_before = names(&root.join("state/manifests"));
    let outside_before = names(dir.path());

    let artifact = write(dir.path(), name, bytes);
    let spec = InstallSpec {
        limits,
        ..InstallSpec::default()
    };
    let err = install(&layout, &spec, &artifact, "2.0.0", false).unwrap_err();
    let shown = airlock_core::error_chain(&err);
    assert!(
        matches!(err, InstallError::ArchiveRefused { .. }),
        "{name}: {shown}"
    );
    assert!(shown.contains(entry), "{name}: {shown} should name {entry}");
    assert!(shown.contains(check), "{name}: {shown} should say {check}");
    assert!(
        shown.contains(name),
        "{name}: {shown} should name the artifact"
    );

    assert_eq!(layout.current_version().unwrap().as_deref(), Some("1.0.0"));
    assert_eq!(names(&root.join("releases")), releases_before, "{name}");
    assert_eq!(names(&root.join("state")), state_before, "{name}");
    assert_eq!(
        names(&root.join("state/manifests")),
        manifests_before,
        "{name}"
    );
    let mut outside = outside_before;
    outside.push(name.to_string());
    outside.sort();
    assert_eq!(
        names(dir.path()),
        outside,
        "{name}: something written outside"
    );
    assert_eq!(names(&root), vec!["current", "releases", "state"], "{name}");
    let st = status(&layout).unwrap();
    let last = st.history.last().unwrap();
    assert_eq!(last.kind, EventKind::InstallFailed);
    assert!(last.detail.contains(entry), "{}", last.detail);
    assert!(st.interrupted.is_none());
}

fn tgz(entries: &[Entry]) -> Vec<u8> {
    gz(&tar_bytes(entries))
}

const OK: &[u8] = b"ok";

#[test]
fn an_absolute_path_is_refused() {
    let bytes = tgz(&[Entry::File("/tmp/airlock-evil", 0o644, OK)]);
    refused(
        "abs.tar.gz",
        &bytes,
        UnpackLimits::default(),
        "/tmp/airlock-evil",
        "absolute path",
    );
}

#[test]
fn dot_dot_is_refused() {
    let bytes = tgz(&[Entry::File("bin/../../evil", 0o644, OK)]);
    refused(
        "dotdot.tar.gz",
        &bytes,
        UnpackLimits::default(),
        "bin/../../evil",
        "`..`",
    );
}

#[test]
fn a_symlink_pointing_outside_is_refused() {
    let bytes = tgz(&[Entry::Symlink("etc", "/etc")]);
    refused(
        "abs-link.tar.gz",
        &bytes,
        UnpackLimits::default(),
        "etc",
        "leads outside",
    );
    let bytes = tgz(&[Entry::Symlink("sub/up", "../../..")]);
    refused(
        "up-link.tar.gz",
        &bytes,
        UnpackLimits::default(),
        "sub/up",
        "leads outside",
    );
}

#[test]
fn writing_through_a_symlink_is_refused() {
    // `l` points inside, but a file under it would be written wherever `l` leads.
    let bytes = tgz(&[
        Entry::Dir("d/", 0o755),
        Entry::Symlink("l", "d"),
        Entry::File("l/x", 0o644, OK),
    ]);
    refused(
        "through.tar.gz",
        &bytes,
        UnpackLimits::default(),
        "l/x",
        "not a directory",
    );
}

#[test]
fn a_hard_link_to_outside_is_refused() {
    let bytes = tgz(&[Entry::Hardlink("passwd", "/etc/passwd")]);
    refused(
        "hard-abs.tar.gz",
        &bytes,
        UnpackLimits::default(),
        "passwd",
        "leads outside",
    );
    let bytes = tgz(&[Entry::Hardlink("x", "../x")]);
    refused(
        "hard-up.tar.gz",
        &bytes,
        UnpackLimits::default(),
        "\"x\"",
        "leads outside",
    );
    // Through a symlink that points at a directory inside: still refused.
    let bytes = tgz(&[
        Entry::File("d/f", 0o644, OK),
        Entry::Symlink("l", "d"),
        Entry::Hardlink("h", "l/f"),
    ]);
    refused(
        "hard-via-link.tar.gz",
        &bytes,
        UnpackLimits::default(),
        "\"h\"",
        "not a file",
    );
}

#[test]
fn devices_and_fifos_are_refused() {
    let bytes = tgz(&[Entry::CharDevice("null")]);
    refused(
        "dev.tar.gz",
        &bytes,
        UnpackLimits::default(),
        "null",
        "character device entries are not allowed",
    );
    let bytes = tgz(&[Entry::Fifo("pipe")]);
    refused(
        "fifo.tar.gz",
        &bytes,
        UnpackLimits::default(),
        "pipe",
        "FIFO entries are not allowed",
    );
    let bytes = zip_bytes(&[Entry::Fifo("pipe")]);
    refused(
        "fifo.zip",
        &bytes,
        UnpackLimits::default(),
        "pipe",
        "FIFO entries are not allowed",
    );
}

#[test]
fn setuid_and_setgid_are_refused_unless_allowed() {
    let bytes = tgz(&[Entry::File("bin/su", 0o4755, OK)]);
    refused(
        "suid.tar.gz",
        &bytes,
        UnpackLimits::default(),
        "bin/su",
        "setuid/setgid",
    );
    let bytes = tgz(&[Entry::File("bin/sg", 0o2755, OK)]);
    refused(
        "sgid.tar.gz",
        &bytes,
        UnpackLimits::default(),
        "bin/sg",
        "setuid/setgid",
    );
}

#[test]
fn an_entry_twice_is_refused() {
    let bytes = tgz(&[
        Entry::File("a", 0o644, OK),
        Entry::File("a", 0o644, b"other"),
    ]);
    refused(
        "dup.tar.gz",
        &bytes,
        UnpackLimits::default(),
        "\"a\"",
        "appears twice",
    );
}

#[test]
fn bombs_are_refused_by_what_comes_out() {
    let zeros = vec![0u8; 1 << 20];
    let small = UnpackLimits {
        max_total_bytes: 1_500_000,
        max_entries: 10,
        max_entry_bytes: 1_000_000,
        allow_setuid: false,
    };
    let bytes = tgz(&[Entry::File("big", 0o644, &zeros)]);
    assert!(
        bytes.len() < 10_000,
        "a 1 MiB entry compresses to {}",
        bytes.len()
    );
    refused("entry-bomb.tar.gz", &bytes, small, "big", "per entry");
    let half = vec![0u8; 800_000];
    let bytes = zst(&tar_bytes(&[
        Entry::File("a", 0o644, &half),
        Entry::File("b", 0o644, &half),
    ]));
    refused(
        "total-bomb.tar.zst",
        &bytes,
        small,
        "\"b\"",
        "unpacks to more than",
    );
    let many: Vec<String> = (0..11).map(|i| format!("f{i}")).collect();
    let entries: Vec<Entry> = many.iter().map(|n| Entry::File(n, 0o644, OK)).collect();
    refused("count-bomb.tar.gz", &tgz(&entries), small, "f10", "entries");
    let bytes = zip_bytes(&[Entry::File("big", 0o644, &zeros)]);
    refused("entry-bomb.zip", &bytes, small, "big", "per entry");
}

#[test]
fn zip_paths_and_links_are_checked_the_same_way() {
    let bytes = zip_bytes(&[Entry::File("../evil", 0o644, OK)]);
    refused(
        "dotdot.zip",
        &bytes,
        UnpackLimits::default(),
        "../evil",
        "`..`",
    );
    let bytes = zip_bytes(&[Entry::Symlink("l", "/etc/passwd")]);
    refused(
        "link.zip",
        &bytes,
        UnpackLimits::default(),
        "\"l\"",
        "leads outside",
    );
}

#[test]
fn zip_setuid_bits_never_reach_the_disk() {
    // The zip reader drops setuid/setgid/sticky from the modes it reports, so a zip release
    // cannot carry them, allowed or not.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("app");
    let layout = AppLayout::new(&root);
    let a = write(
        dir.path(),
        "a.zip",
        &zip_bytes(&[Entry::File("x", 0o6775, OK)]),
    );
    install(&layout, &InstallSpec::default(), &a, "1.0.0", false).unwrap();
    assert_eq!(mode(&root.join("current/x")), 0o755);
}

#[test]
fn a_corrupt_archive_is_refused_with_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("app");
    let layout = AppLayout::new(&root);
    let a = write(dir.path(), "junk.tar.gz", b"not gzip at all");
    let err = install(&layout, &InstallSpec::default(), &a, "1.0.0", false).unwrap_err();
    assert!(matches!(err, InstallError::Unreadable { .. }), "{err}");
    assert!(err.to_string().contains("junk.tar.gz"), "{err}");
    assert_eq!(layout.current_version().unwrap(), None);
    assert_eq!(names(&root.join("releases")), Vec::<String>::new());
}
