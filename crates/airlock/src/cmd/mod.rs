//! One module per subcommand; each owns its `Args` and `run`.
pub mod agent;
pub mod common;
pub mod demo;
pub mod diff;
pub mod key;
pub mod log;
pub mod manual;
pub mod mirror;
pub mod output;
pub mod rebuild;
pub mod release_watch;
pub mod repo;
pub mod torrent;
pub mod update;
pub mod witness;
