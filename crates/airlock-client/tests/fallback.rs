//! Fallback sources (a BitTorrent swarm in the `airlock` binary's `bittorrent` build): asked
//! only when every HTTPS mirror failed, and trusted no more than a mirror. What a source writes
//! is capped at the trusted length and checked against every listed hash; bytes that do not
//! verify are never kept, neither as the target nor as a partial download.

mod common;

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use airlock_client::fallback::{SourceError, TargetSource};
use airlock_client::{TargetInfo, UpdateError, Updater};
use airlock_fetch::Progress;
use common::{HttpsRepo, TestRepo};

const TARGET: &str = "app/app.bin";

/// A source that writes fixed bytes for every target (what a swarm would hand over).
#[derive(Debug)]
struct FixedBytes {
    bytes: Option<Vec<u8>>,
    asked: AtomicUsize,
}

impl FixedBytes {
    fn new(bytes: Option<&[u8]>) -> Arc<Self> {
        Arc::new(Self {
            bytes: bytes.map(<[u8]>::to_vec),
            asked: AtomicUsize::new(0),
        })
    }
}

impl TargetSource for FixedBytes {
    fn name(&self) -> String {
        "fixed source".into()
    }
    fn fetch(
        &self,
        _info: &TargetInfo,
        out: &mut dyn Write,
        _progress: Progress<'_>,
    ) -> Result<bool, SourceError> {
        self.asked.fetch_add(1, Ordering::SeqCst);
        match &self.bytes {
            None => Ok(false),
            Some(b) => {
                out.write_all(b)?;
                Ok(true)
            }
        }
    }
}

/// A client of `https`'s metadata whose targets URL is down, with `source` as fallback;
/// returns the outcome of downloading TARGET to `dest`.
fn download(
    https: &HttpsRepo,
    meta: &Path,
    repo: &TestRepo,
    source: Arc<FixedBytes>,
    dest: &Path,
) -> Result<(), UpdateError> {
    Updater::init(meta, &repo.initial_root()).unwrap();
    let down = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!(
            "https://127.0.0.1:{}/targets/",
            l.local_addr().unwrap().port()
        )
    };
    let mut config = https.config(meta).with_targets_base_url(down);
    config.fallback_sources.push(source);
    let mut updater = Updater::new(config).unwrap();
    updater.refresh().unwrap();
    let info = updater.get_target_info(TARGET).unwrap().unwrap();
    updater.download_target(&info, dest)
}

fn setup() -> (TestRepo, HttpsRepo, tempfile::TempDir) {
    let mut repo = TestRepo::new();
    repo.add_target("targets", TARGET, b"the application, version 2");
    repo.publish();
    let https = HttpsRepo::serve(repo.path());
    (repo, https, tempfile::tempdir().unwrap())
}

/// Non-empty files left in `dir` (the destination's directory).
fn kept(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.metadata().is_ok_and(|m| m.len() > 0))
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn the_source_delivers_when_every_mirror_is_down() {
    let (repo, https, work) = setup();
    let dest = work.path().join("out/app.bin");
    let source = FixedBytes::new(Some(b"the application, version 2"));
    download(
        &https,
        &work.path().join("meta"),
        &repo,
        source.clone(),
        &dest,
    )
    .unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), b"the application, version 2");
    assert_eq!(source.asked.load(Ordering::SeqCst), 1);
}

#[test]
fn wrong_bytes_from_the_source_are_refused_and_not_kept() {
    let (repo, https, work) = setup();
    let dest = work.path().join("out/app.bin");
    // Same length, other bytes.
    let source = FixedBytes::new(Some(b"the application, version 3"));
    let err = download(&https, &work.path().join("meta"), &repo, source, &dest).unwrap_err();
    let text = airlock_core::error_chain(&err);
    assert!(text.contains("fixed source"), "{text}");
    assert!(text.contains("sha256"), "{text}");
    assert!(!dest.exists());
    assert_eq!(kept(&work.path().join("out")), Vec::<String>::new());
}

#[test]
fn a_source_sending_more_than_the_trusted_length_is_cut_off() {
    let (repo, https, work) = setup();
    let dest = work.path().join("out/app.bin");
    let mut long = b"the application, version 2".to_vec();
    long.extend_from_slice(&[0u8; 1 << 20]);
    let source = FixedBytes::new(Some(&long));
    let err = download(&https, &work.path().join("meta"), &repo, source, &dest).unwrap_err();
    let text = airlock_core::error_chain(&err);
    assert!(
        text.contains("more bytes than the trusted length"),
        "{text}"
    );
    assert!(!dest.exists());
    assert_eq!(kept(&work.path().join("out")), Vec::<String>::new());
}

#[test]
fn a_source_without_the_target_leaves_the_mirror_error() {
    let (repo, https, work) = setup();
    let dest = work.path().join("out/app.bin");
    let source = FixedBytes::new(None);
    let err = download(&https, &work.path().join("meta"), &repo, source, &dest).unwrap_err();
    let text = airlock_core::error_chain(&err);
    assert!(!text.contains("fixed source"), "{text}");
    assert!(!dest.exists());
}
