//! The BitTorrent fallback transport as the commands see it: `repo add --torrent`, the
//! `[bittorrent]` table of client.toml with its `update` flags, and `mirror seed`. The
//! transport itself (airlock-p2p) is linked only with the `bittorrent` feature; without it the
//! options still parse, and asking for the swarm says the build lacks it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use airlock_client::fallback::TargetSource;
use airlock_repo::TorrentMaker;
use serde::{Deserialize, Serialize};

use super::output::usage;

/// The `[bittorrent]` table of client.toml.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SwarmSettings {
    /// Fetch a target from its swarm when no HTTPS mirror delivered it.
    #[serde(default)]
    pub enabled: bool,
    /// Trackers (`http://` or `udp://`) announced to for every target.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trackers: Vec<String>,
    /// Peers (`IP:PORT`) connected to directly.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub peers: Vec<SocketAddr>,
    /// Use the public mainline DHT to find peers.
    #[serde(default)]
    pub dht: bool,
    /// Start the swarm download alongside the HTTPS mirrors, not only after they failed.
    #[serde(default)]
    pub parallel: bool,
    /// Seconds to wait for the swarm to deliver one target (default 300).
    pub timeout_secs: Option<u64>,
}

/// The `update` flags that set the `[bittorrent]` table (flags win over the file).
#[derive(clap::Args, Debug, Default)]
pub struct SwarmArgs {
    /// Fetch a target from its BitTorrent swarm when no HTTPS mirror delivers it (the target
    /// must list custom.bittorrent.btih; `bittorrent` builds only).
    #[arg(long, global = true)]
    bittorrent: bool,
    /// A BitTorrent tracker (http:// or udp://); repeatable; replaces client.toml's list.
    #[arg(long = "tracker", global = true, value_name = "URL")]
    swarm_trackers: Vec<String>,
    /// A BitTorrent peer IP:PORT connected to directly; repeatable.
    #[arg(long = "swarm-peer", global = true, value_name = "ADDR")]
    swarm_peers: Vec<SocketAddr>,
    /// Find BitTorrent peers through the public DHT too.
    #[arg(long, global = true)]
    swarm_dht: bool,
    /// Start the swarm download alongside the HTTPS mirrors.
    #[arg(long, global = true)]
    swarm_parallel: bool,
    /// Seconds to wait for the swarm to deliver a target.
    #[arg(long, global = true, value_name = "SECS")]
    swarm_timeout: Option<u64>,
}

impl SwarmSettings {
    pub fn merge(&mut self, args: &SwarmArgs) {
        self.enabled |= args.bittorrent;
        if !args.swarm_trackers.is_empty() {
            self.trackers.clone_from(&args.swarm_trackers);
        }
        if !args.swarm_peers.is_empty() {
            self.peers.clone_from(&args.swarm_peers);
        }
        self.dht |= args.swarm_dht;
        self.parallel |= args.swarm_parallel;
        if args.swarm_timeout.is_some() {
            self.timeout_secs = args.swarm_timeout;
        }
    }

    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }

    /// The fallback sources these settings ask for; the swarm's downloads land under
    /// `state_dir/swarm` until checked.
    pub fn sources(&self, state_dir: &Path) -> anyhow::Result<Vec<Arc<dyn TargetSource>>> {
        if !self.enabled {
            return Ok(Vec::new());
        }
        swarm_source(self, &state_dir.join("swarm"))
    }
}

/// `airlock mirror seed` arguments.
#[derive(clap::Args, Debug)]
pub struct SeedArgs {
    /// Directory holding targets with their .torrent beside them: a repository's
    /// `published/targets`, or a copy of it.
    pub dir: PathBuf,
    /// Address peers connect to.
    #[arg(long, default_value = "0.0.0.0:6881", value_name = "ADDR")]
    pub listen: SocketAddr,
    /// A tracker announced to besides those in the .torrent files; repeatable.
    #[arg(long = "tracker", value_name = "URL")]
    pub trackers: Vec<String>,
    /// Find and be found by peers through the public DHT too.
    #[arg(long)]
    pub dht: bool,
}

#[cfg(feature = "bittorrent")]
mod enabled {
    use super::*;
    use airlock_p2p::{Seeder, SwarmConfig, SwarmSource};

    #[derive(Debug)]
    struct Maker {
        trackers: Vec<String>,
    }

    impl TorrentMaker for Maker {
        fn make(
            &self,
            file: &Path,
            name: &str,
        ) -> Result<airlock_repo::MadeTorrent, Box<dyn std::error::Error + Send + Sync>> {
            let t = airlock_p2p::make_torrent(file, name, &self.trackers)?;
            Ok(airlock_repo::MadeTorrent {
                btih: t.btih,
                // librqbit makes v1 torrents only.
                btmh: None,
                torrent: t.bytes,
            })
        }
    }

    pub fn maker(trackers: &[String]) -> anyhow::Result<Arc<dyn TorrentMaker>> {
        Ok(Arc::new(Maker {
            trackers: trackers.to_vec(),
        }))
    }

    pub fn swarm_source(
        s: &SwarmSettings,
        work_dir: &Path,
    ) -> anyhow::Result<Vec<Arc<dyn TargetSource>>> {
        let mut config = SwarmConfig::new(work_dir);
        config.trackers.clone_from(&s.trackers);
        config.peers.clone_from(&s.peers);
        config.dht = s.dht;
        config.parallel = s.parallel;
        if let Some(secs) = s.timeout_secs {
            config.timeout = std::time::Duration::from_secs(secs);
        }
        Ok(vec![Arc::new(SwarmSource::new(config))])
    }

    pub fn seed(a: &SeedArgs, json: bool) -> anyhow::Result<()> {
        let mut config = SwarmConfig::new(&a.dir);
        config.trackers.clone_from(&a.trackers);
        config.dht = a.dht;
        config.listen = Some(a.listen);
        let seeder = Seeder::start(&a.dir, &config)?;
        if seeder.seeded.is_empty() {
            return Err(usage(format!(
                "no .torrent files under {} (publish targets added with `airlock repo add --torrent`)",
                a.dir.display()
            )));
        }
        if json {
            let seeded: Vec<_> = seeder
                .seeded
                .iter()
                .map(|s| {
                    serde_json::json!({
                        "torrent": s.torrent, "btih": s.btih, "have": s.have, "length": s.length,
                    })
                })
                .collect();
            super::super::common::print_json(&serde_json::json!({
                "seeding": seeded,
                "listen": seeder.listen_addr().unwrap_or(a.listen),
            }))?;
        }
        for s in &seeder.seeded {
            if !json {
                println!(
                    "seeding {} ({}): {} of {} bytes verified",
                    s.torrent.display(),
                    s.btih,
                    s.have,
                    s.length
                );
            }
        }
        if !json {
            println!(
                "listening on {}; stop with Ctrl-C",
                seeder
                    .listen_addr()
                    .map_or_else(|| a.listen.to_string(), |x| x.to_string())
            );
        }
        seeder.run_until_signal()?;
        Ok(())
    }
}

#[cfg(not(feature = "bittorrent"))]
mod enabled {
    use super::*;

    fn missing() -> anyhow::Error {
        usage("this airlock was built without BitTorrent support (cargo feature `bittorrent`)")
    }

    pub fn maker(_trackers: &[String]) -> anyhow::Result<Arc<dyn TorrentMaker>> {
        Err(missing())
    }

    pub fn swarm_source(
        _s: &SwarmSettings,
        _work_dir: &Path,
    ) -> anyhow::Result<Vec<Arc<dyn TargetSource>>> {
        Err(missing())
    }

    pub fn seed(_a: &SeedArgs, _json: bool) -> anyhow::Result<()> {
        Err(missing())
    }
}

use enabled::swarm_source;
pub use enabled::{maker, seed};
