//! The archive comparison of `airlock diff`: both inputs may be hostile (a tampered release, a
//! rebuild from tampered source), so every format it opens is reached from raw bytes.

use std::path::Path;

use airlock_diff::{Limits, Options, diff_bytes, phar};

/// PHP's phar format: junk is an error, never a panic; what parses lies inside the input.
pub fn phar(data: &[u8]) {
    let Ok(p) = phar::parse(data) else {
        return;
    };
    assert!(
        p.stub.len() <= data.len(),
        "the stub is longer than the input"
    );
    let stored: usize = p.entries.iter().map(|e| e.data.len()).sum();
    assert!(
        p.stub.len() + stored <= data.len(),
        "entries claim more bytes than the input has"
    );
}

/// Two archives compared, with caps small enough for the fuzzer's memory bounds: the input's
/// first byte says where it splits into side A and side B. Any result is fine except a panic,
/// and a report always renders.
pub fn archive_diff(data: &[u8]) {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let at = rest.len() * usize::from(first) / 255;
    let (a, b) = rest.split_at(at.min(rest.len()));
    let options = Options {
        limits: Limits {
            max_members: 2_000,
            max_total_bytes: 16 << 20,
            max_member_bytes: 4 << 20,
            max_depth: 6,
        },
        ..Options::default()
    };
    if let Ok(report) = diff_bytes(Path::new("a"), a, Path::new("b"), b, &options) {
        let _ = report.render(50);
        let _ = report.to_json();
    }
}
