#![forbid(unsafe_code)]
//! Airlock's BitTorrent transport (built only into the `bittorrent` build of the `airlock`
//! binary, never into the privileged agent or airlock-client).
//!
//! Three parts:
//! - [`make_torrent`]: the publisher's .torrent of one target file, whose v1 info hash goes into
//!   the target's signed custom metadata (`custom.bittorrent.btih`). The info hash pins every
//!   piece hash, so the swarm's data is pinned by the signed metadata.
//! - [`Seeder`]: seeds the .torrent files found in a directory (a repository's
//!   `published/targets`, or any tree holding targets with their .torrent beside them).
//! - [`SwarmSource`]: an [`airlock_client::fallback::TargetSource`] that fetches a target by
//!   the info hash its trusted metadata lists. The swarm is untrusted like any mirror: the
//!   engine checks each piece against the info hash, and airlock-client then checks the whole
//!   file against the TUF length and hashes before it is used.
//!
//! The engine is librqbit. Only TCP between peers (no uTP), no UPnP, no local service
//! discovery (multicast), and no DHT unless asked for: peers come from the configured trackers
//! (http:// or udp://) and peer addresses.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use airlock_client::TargetInfo;
use airlock_client::fallback::{SourceError, TargetSource};
use airlock_fetch::Progress;
use librqbit::{
    AddTorrent, AddTorrentOptions, ListenerMode, ListenerOptions, Session, SessionOptions,
};

/// A boxed error from the engine (its own chain of causes).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What went wrong in the BitTorrent transport.
#[derive(Debug, thiserror::Error)]
pub enum P2pError {
    #[error("{path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("creating the .torrent of {path}")]
    Create {
        path: PathBuf,
        #[source]
        source: BoxError,
    },
    #[error("{path} is empty: a swarm cannot share an empty file")]
    EmptyFile { path: PathBuf },
    #[error("starting the BitTorrent session")]
    Session(#[source] BoxError),
    #[error("tracker {url:?} is not a URL")]
    Tracker {
        url: String,
        #[source]
        source: url::ParseError,
    },
    #[error("adding torrent {what} to the session")]
    Add {
        what: String,
        #[source]
        source: BoxError,
    },
    #[error("target {target:?}: custom.bittorrent.btih {value:?} is not 40 hex digits")]
    BadInfoHash { target: String, value: String },
    #[error(
        "the swarm of {btih} did not deliver target {target:?} within {secs} s ({got} of {length} bytes)"
    )]
    Timeout {
        target: String,
        btih: String,
        secs: u64,
        got: u64,
        length: u64,
    },
    #[error("the swarm of {btih} for target {target:?}: {reason}")]
    Swarm {
        target: String,
        btih: String,
        reason: String,
    },
}

/// Settings shared by the seeder and the client side.
#[derive(Clone, Debug)]
pub struct SwarmConfig {
    /// Trackers announced to for every torrent (besides those a .torrent names): `http://` or
    /// `udp://` URLs.
    pub trackers: Vec<String>,
    /// Peers connected to directly for every torrent (no tracker needed).
    pub peers: Vec<SocketAddr>,
    /// Use the mainline DHT to find peers (off by default: it talks to the public Internet).
    pub dht: bool,
    /// Address to accept peers on (a seeder needs one; the client may go without).
    pub listen: Option<SocketAddr>,
    /// How long the client waits for the swarm to deliver a target.
    pub timeout: Duration,
    /// Start the swarm download alongside the HTTPS mirrors instead of after they failed.
    pub parallel: bool,
    /// Where the client's swarm downloads land before they are checked and copied (each
    /// torrent in a subdirectory named by its info hash, removed afterwards).
    pub work_dir: PathBuf,
}

impl SwarmConfig {
    /// Defaults: no trackers or peers, no DHT, no listener, 5 minutes, after the mirrors.
    pub fn new(work_dir: impl Into<PathBuf>) -> Self {
        Self {
            trackers: Vec::new(),
            peers: Vec::new(),
            dht: false,
            listen: None,
            timeout: Duration::from_secs(300),
            parallel: false,
            work_dir: work_dir.into(),
        }
    }
}

/// Piece size for a file of `len` bytes: 256 KiB, doubled until the file has at most 2,000
/// pieces (16 MiB at most), so small files still span several pieces and large ones keep the
/// .torrent small.
pub fn piece_length(len: u64) -> u32 {
    let mut piece: u32 = 256 * 1024;
    while len / u64::from(piece) > 2000 && piece < 16 * 1024 * 1024 {
        piece *= 2;
    }
    piece
}

/// A .torrent made of one file.
#[derive(Clone, Debug)]
pub struct Torrent {
    /// v1 info hash, 40 lowercase hex digits.
    pub btih: String,
    /// The bencoded .torrent.
    pub bytes: Vec<u8>,
}

fn runtime(threads: usize) -> Result<tokio::runtime::Runtime, P2pError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .map_err(|e| P2pError::Session(Box::new(e)))
}

/// The .torrent of `file`, whose one file is named `name`, announcing to `trackers`.
pub fn make_torrent(file: &Path, name: &str, trackers: &[String]) -> Result<Torrent, P2pError> {
    use librqbit::{ByteBufOwned, TorrentMetaV1Info, TorrentMetaV1Owned};
    use librqbit_sha1_wrapper::ISha1;

    let io_err = |source| P2pError::Io {
        path: file.to_path_buf(),
        source,
    };
    let create = |source: BoxError| P2pError::Create {
        path: file.to_path_buf(),
        source,
    };
    let mut f = std::fs::File::open(file).map_err(io_err)?;
    let len = f.metadata().map_err(io_err)?.len();
    if len == 0 {
        return Err(P2pError::EmptyFile {
            path: file.to_path_buf(),
        });
    }
    let piece = piece_length(len);
    // One SHA-1 per piece, the last one short.
    let mut pieces = Vec::new();
    let mut buf = vec![0u8; piece as usize];
    let mut total = 0u64;
    loop {
        let mut filled = 0;
        while filled < buf.len() {
            let n = f
                .read(buf.get_mut(filled..).unwrap_or_default())
                .map_err(io_err)?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        if filled == 0 {
            break;
        }
        let mut h = librqbit_sha1_wrapper::Sha1::new();
        h.update(buf.get(..filled).unwrap_or_default());
        pieces.extend_from_slice(&h.finish());
        total += filled as u64;
        if filled < buf.len() {
            break;
        }
    }
    if total != len {
        return Err(create(
            format!("the file changed while it was read ({total} bytes, not {len})").into(),
        ));
    }
    let info = TorrentMetaV1Info::<ByteBufOwned> {
        name: Some(name.as_bytes().into()),
        pieces: pieces.into(),
        piece_length: piece,
        length: Some(len),
        attr: None,
        sha1: None,
        symlink_path: None,
        md5sum: None,
        files: None,
        private: false,
    };
    let mut info_bytes = Vec::new();
    librqbit_bencode::bencode_serialize_to_writer(&info, &mut info_bytes)
        .map_err(|e| create(e.to_string().into()))?;
    let mut h = librqbit_sha1_wrapper::Sha1::new();
    h.update(&info_bytes);
    let info_hash = librqbit_core::Id20::new(h.finish());
    let announce: Vec<ByteBufOwned> = trackers.iter().map(|t| t.as_bytes().into()).collect();
    let meta = TorrentMetaV1Owned {
        announce: announce.first().cloned(),
        announce_list: if announce.is_empty() {
            Vec::new()
        } else {
            vec![announce]
        },
        info: librqbit_bencode::WithRawBytes {
            data: info,
            raw_bytes: ByteBufOwned::from(info_bytes),
        },
        comment: None,
        created_by: None,
        encoding: None,
        publisher: None,
        publisher_url: None,
        creation_date: None,
        info_hash,
    };
    let mut bytes = Vec::new();
    librqbit_bencode::bencode_serialize_to_writer(&meta, &mut bytes)
        .map_err(|e| create(e.to_string().into()))?;
    Ok(Torrent {
        btih: info_hash.as_string(),
        bytes,
    })
}

fn session_options(config: &SwarmConfig) -> Result<SessionOptions, P2pError> {
    let mut trackers = HashSet::new();
    for t in &config.trackers {
        let url = url::Url::parse(t).map_err(|source| P2pError::Tracker {
            url: t.clone(),
            source,
        })?;
        trackers.insert(url);
    }
    Ok(SessionOptions {
        dht: config.dht.then(librqbit::DhtSessionConfig::default),
        persistence: None,
        fastresume: false,
        listen: config.listen.map(|addr| ListenerOptions {
            mode: ListenerMode::TcpOnly,
            listen_addr: addr,
            enable_upnp_port_forwarding: false,
            ipv4_only: addr.is_ipv4(),
            ..ListenerOptions::default()
        }),
        disable_local_service_discovery: true,
        trackers,
        client_name_and_version: Some(format!("airlock {}", env!("CARGO_PKG_VERSION"))),
        ..SessionOptions::default()
    })
}

async fn new_session(config: &SwarmConfig, folder: PathBuf) -> Result<Arc<Session>, P2pError> {
    let opts = session_options(config)?;
    Session::new_with_opts(folder, opts)
        .await
        .map_err(|e| P2pError::Session(e.into()))
}

/// One torrent a [`Seeder`] serves.
#[derive(Clone, Debug)]
pub struct Seeded {
    pub torrent: PathBuf,
    pub btih: String,
    /// Bytes of the file found on disk and matching the torrent's pieces.
    pub have: u64,
    pub length: u64,
}

/// Seeds every `*.torrent` file under a directory, from the file beside it (the torrent's name
/// in the same directory). Runs until dropped.
pub struct Seeder {
    rt: tokio::runtime::Runtime,
    session: Arc<Session>,
    pub seeded: Vec<Seeded>,
}

impl Seeder {
    /// Start seeding `dir`; returns once every file has been checked against its torrent.
    pub fn start(dir: &Path, config: &SwarmConfig) -> Result<Self, P2pError> {
        let mut torrents = Vec::new();
        for entry in walkdir::WalkDir::new(dir).sort_by_file_name() {
            let entry = entry.map_err(|e| P2pError::Io {
                path: e.path().unwrap_or(dir).to_path_buf(),
                source: e.into(),
            })?;
            if entry.file_type().is_file()
                && entry.path().extension().is_some_and(|e| e == "torrent")
            {
                torrents.push(entry.path().to_path_buf());
            }
        }
        let rt = runtime(2)?;
        let (session, seeded) = rt.block_on(async {
            let session = new_session(config, dir.to_path_buf()).await?;
            let mut seeded = Vec::new();
            for t in torrents {
                let bytes = std::fs::read(&t).map_err(|source| P2pError::Io {
                    path: t.clone(),
                    source,
                })?;
                let folder = t.parent().unwrap_or(dir).to_string_lossy().into_owned();
                let add_err = |e: BoxError| P2pError::Add {
                    what: t.display().to_string(),
                    source: e,
                };
                let handle = session
                    .add_torrent(
                        AddTorrent::from_bytes(bytes),
                        Some(AddTorrentOptions {
                            output_folder: Some(folder),
                            // The file is there already: check it and seed it.
                            overwrite: true,
                            initial_peers: Some(config.peers.clone()),
                            ..AddTorrentOptions::default()
                        }),
                    )
                    .await
                    .map_err(|e| add_err(e.into()))?
                    .into_handle()
                    .ok_or_else(|| add_err("listed only, not added".into()))?;
                handle
                    .wait_until_initialized()
                    .await
                    .map_err(|e| add_err(e.into()))?;
                let stats = handle.stats();
                seeded.push(Seeded {
                    torrent: t.clone(),
                    btih: handle.info_hash().as_string(),
                    have: stats.progress_bytes,
                    length: stats.total_bytes,
                });
            }
            Ok::<_, P2pError>((session, seeded))
        })?;
        Ok(Seeder {
            rt,
            session,
            seeded,
        })
    }

    /// The address peers reach this seeder on.
    pub fn listen_addr(&self) -> Option<SocketAddr> {
        self.session.listen_addr()
    }

    /// Serve until the process is interrupted (SIGINT or SIGTERM).
    pub fn run_until_signal(self) -> Result<(), P2pError> {
        self.rt.block_on(async {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).map_err(
                    |source| P2pError::Io {
                        path: PathBuf::from("SIGTERM handler"),
                        source,
                    },
                )?;
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            self.session.stop().await;
            Ok(())
        })
    }
}

/// The v1 info hash the trusted metadata lists for a target, if any.
pub fn listed_info_hash(info: &TargetInfo) -> Result<Option<String>, P2pError> {
    let Some(value) = info
        .file
        .custom
        .as_ref()
        .and_then(|c| c.get("bittorrent"))
        .and_then(|b| b.get("btih"))
    else {
        return Ok(None);
    };
    let text = value.as_str().unwrap_or_default();
    if text.len() != 40 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(P2pError::BadInfoHash {
            target: info.path.clone(),
            value: value.to_string(),
        });
    }
    Ok(Some(text.to_ascii_lowercase()))
}

/// Fetches targets from their swarm (see the crate docs). The engine starts on first use, so
/// a client whose mirrors deliver never opens a peer connection.
#[derive(Debug)]
pub struct SwarmSource {
    config: SwarmConfig,
    engine: OnceLock<Result<Engine, String>>,
}

struct Engine {
    rt: tokio::runtime::Runtime,
    session: Arc<Session>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Engine")
    }
}

impl SwarmSource {
    pub fn new(config: SwarmConfig) -> Self {
        Self {
            config,
            engine: OnceLock::new(),
        }
    }

    fn engine(&self) -> Result<&Engine, SourceError> {
        let engine = self.engine.get_or_init(|| {
            let start = || -> Result<Engine, P2pError> {
                std::fs::create_dir_all(&self.config.work_dir).map_err(|source| P2pError::Io {
                    path: self.config.work_dir.clone(),
                    source,
                })?;
                let rt = runtime(2)?;
                let session =
                    rt.block_on(new_session(&self.config, self.config.work_dir.clone()))?;
                Ok(Engine { rt, session })
            };
            start().map_err(|e| error_chain(&e))
        });
        engine.as_ref().map_err(|e| e.clone().into())
    }

    fn add_options(&self, btih: &str) -> AddTorrentOptions {
        AddTorrentOptions {
            output_folder: Some(
                self.config
                    .work_dir
                    .join(btih)
                    .to_string_lossy()
                    .into_owned(),
            ),
            overwrite: true,
            initial_peers: Some(self.config.peers.clone()),
            ..AddTorrentOptions::default()
        }
    }

    /// Add the torrent of `btih` (resolved through the peers: BEP 9 metadata exchange, checked
    /// against the info hash by the engine) and return its handle.
    fn add(
        &self,
        engine: &Engine,
        info: &TargetInfo,
        btih: &str,
    ) -> Result<Arc<librqbit::ManagedTorrent>, P2pError> {
        let target = info.path.as_str();
        let magnet = format!("magnet:?xt=urn:btih:{btih}");
        let add_err = |source: BoxError| P2pError::Add {
            what: format!("{btih} (target {target:?})"),
            source,
        };
        engine.rt.block_on(async {
            let added = engine
                .session
                .add_torrent(AddTorrent::from_url(magnet), Some(self.add_options(btih)));
            // Resolving a magnet waits for a peer: bounded like the download.
            let added = tokio::time::timeout(self.config.timeout, added)
                .await
                .map_err(|_| P2pError::Timeout {
                    target: target.to_string(),
                    btih: btih.to_string(),
                    secs: self.config.timeout.as_secs(),
                    got: 0,
                    length: info.file.length,
                })?
                .map_err(|e| add_err(e.into()))?;
            added
                .into_handle()
                .ok_or_else(|| add_err("listed only, not added".into()))
        })
    }

    fn fetch_swarm(
        &self,
        info: &TargetInfo,
        btih: &str,
        out: &mut dyn Write,
        progress: Progress<'_>,
    ) -> Result<(), P2pError> {
        let engine = self.engine().map_err(P2pError::Session)?;
        let started = Instant::now();
        let handle = self.add(engine, info, btih)?;
        let swarm_err = |reason: String| P2pError::Swarm {
            target: info.path.clone(),
            btih: btih.to_string(),
            reason,
        };
        let result = engine.rt.block_on(async {
            loop {
                let stats = handle.stats();
                progress(stats.progress_bytes, Some(info.file.length));
                if let Some(e) = stats.error {
                    return Err(swarm_err(e));
                }
                if stats.finished {
                    return Ok(());
                }
                if started.elapsed() > self.config.timeout {
                    return Err(P2pError::Timeout {
                        target: info.path.clone(),
                        btih: btih.to_string(),
                        secs: self.config.timeout.as_secs(),
                        got: stats.progress_bytes,
                        length: info.file.length,
                    });
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
        let copied = result.and_then(|()| self.copy_out(&handle, info, btih, out));
        // The swarm's copy is not kept: the checked one is the client's.
        let id = handle.id();
        engine.rt.block_on(async {
            if let Err(e) = engine.session.delete(id.into(), true).await {
                tracing::warn!("removing the swarm download of {btih}: {e}");
            }
        });
        let _ = std::fs::remove_dir_all(self.config.work_dir.join(btih));
        copied
    }

    /// Copy the downloaded file to `out`: the torrent must hold exactly one file.
    fn copy_out(
        &self,
        handle: &Arc<librqbit::ManagedTorrent>,
        info: &TargetInfo,
        btih: &str,
        out: &mut dyn Write,
    ) -> Result<(), P2pError> {
        let files = handle
            .with_metadata(|m| {
                m.file_infos
                    .iter()
                    .map(|f| f.relative_filename.clone())
                    .collect::<Vec<_>>()
            })
            .map_err(|e| P2pError::Swarm {
                target: info.path.clone(),
                btih: btih.to_string(),
                reason: e.to_string(),
            })?;
        let [file] = files.as_slice() else {
            return Err(P2pError::Swarm {
                target: info.path.clone(),
                btih: btih.to_string(),
                reason: format!("the torrent holds {} files, not one", files.len()),
            });
        };
        let path = handle.output_folder().join(file);
        let io_err = |source| P2pError::Io {
            path: path.clone(),
            source,
        };
        let mut f = std::fs::File::open(&path).map_err(io_err)?;
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = f.read(&mut buf).map_err(io_err)?;
            if n == 0 {
                return Ok(());
            }
            out.write_all(buf.get(..n).unwrap_or_default())
                .map_err(io_err)?;
        }
    }
}

impl TargetSource for SwarmSource {
    fn name(&self) -> String {
        "bittorrent swarm".into()
    }

    /// In parallel mode, start the swarm download now; [`SwarmSource::fetch`] then finds it
    /// under way (or done) if the mirrors fail.
    fn prefetch(&self, info: &TargetInfo) {
        if !self.config.parallel {
            return;
        }
        let Ok(Some(btih)) = listed_info_hash(info) else {
            return;
        };
        let Ok(engine) = self.engine() else {
            return;
        };
        let session = engine.session.clone();
        let options = self.add_options(&btih);
        engine.rt.spawn(async move {
            let magnet = format!("magnet:?xt=urn:btih:{btih}");
            if let Err(e) = session
                .add_torrent(AddTorrent::from_url(magnet), Some(options))
                .await
            {
                tracing::info!("starting the swarm download of {btih}: {e:#}");
            }
        });
    }

    fn fetch(
        &self,
        info: &TargetInfo,
        out: &mut dyn Write,
        progress: Progress<'_>,
    ) -> Result<bool, SourceError> {
        let Some(btih) = listed_info_hash(info)? else {
            return Ok(false);
        };
        self.fetch_swarm(info, &btih, out, progress)?;
        Ok(true)
    }
}

/// An error and its causes on one line (for an error kept as text).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file whose length is a multiple of the piece size has exactly length / piece pieces
    /// (librqbit's own create_torrent adds an empty one, which other clients refuse), and the
    /// info hash is that of the info dictionary the engine reads back.
    #[test]
    fn torrent_of_an_exact_multiple_has_no_extra_piece() {
        let dir = tempfile::tempdir().unwrap();
        for len in [512 * 1024, 512 * 1024 + 1, 1] {
            let file = dir.path().join("f.bin");
            std::fs::write(&file, vec![7u8; len]).unwrap();
            let t =
                make_torrent(&file, "HASH.f.bin", &["http://127.0.0.1:1/announce".into()]).unwrap();
            let parsed = librqbit_core::torrent_metainfo::torrent_from_bytes(&t.bytes).unwrap();
            let info = &parsed.info.data;
            let pieces = len.div_ceil(256 * 1024);
            assert_eq!(info.pieces.as_ref().len(), 20 * pieces, "length {len}");
            assert_eq!(info.length, Some(len as u64));
            assert_eq!(parsed.info_hash.as_string(), t.btih);
        }
        let empty = dir.path().join("empty");
        std::fs::write(&empty, b"").unwrap();
        assert!(matches!(
            make_torrent(&empty, "e", &[]),
            Err(P2pError::EmptyFile { .. })
        ));
    }

    #[test]
    fn piece_length_keeps_torrents_small() {
        assert_eq!(piece_length(1), 256 * 1024);
        assert_eq!(piece_length(500 << 20), 256 * 1024);
        assert_eq!(piece_length(1 << 30), 1 << 20);
        assert_eq!(piece_length(1 << 40), 16 << 20);
    }
}
