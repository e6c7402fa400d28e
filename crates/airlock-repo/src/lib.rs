#![forbid(unsafe_code)]
//! airlock-repo: the publisher's library behind `airlock repo`.
//!
//! A [`Repository`] is a directory holding keys, staged metadata and a published static tree
//! (layout in [`repo`]'s module docs). Commands change the staged state as a whole (a new
//! generation of `work/`, switched in by one rename) and [`Repository::publish`] switches in a
//! new generation of `published/metadata` the same way, so a crash or a refused input never
//! leaves a half-written repository.
//!
//! ```no_run
//! use airlock_repo::{AddOptions, AddSource, InitOptions, Protection, Repository, TargetName};
//!
//! let dir = std::path::Path::new("/tmp/my-repo");
//! let mut repo = Repository::init(dir, &InitOptions::simple(Protection::PlaintextForTests))?;
//! repo.add_targets(
//!     &[AddSource { path: "dist/app.tar.gz".into(), target: TargetName::Prefix("app/".into()) }],
//!     &AddOptions::default(),
//!     &|_, _| {},
//! )?;
//! repo.publish(&|_, _| {})?;
//! // Serve dir/published: metadata under /metadata/, targets under /targets/.
//! # Ok::<(), airlock_repo::RepoError>(())
//! ```
//!
//! What it is not: a client (see airlock-client), or a server (`airlock repo serve` hands the
//! published directory to airlock-serve's static file server).

mod config;
mod delegate;
pub mod delta;
mod error;
mod fsutil;
mod init;
mod keys;
mod offline;
mod publish;
mod rebuilders;
pub mod repo;
mod targets;
mod transparency;
mod verify;

pub use airlock_keystore::{PassphraseSource, Protection};
pub use config::{ExpiryConfig, KeyEntry, Period, PublishConfig, ReleaseLogConfig, RepoConfig};
pub use delegate::{BinDelegation, ChangeReport, PathDelegation, Rotation};
pub use error::RepoError;
pub use fsutil::write_atomic;
pub use init::{InitOptions, RoleKeySpec};
pub use keys::KeySource;
/// The keystore's [`Protection`] under its former name here.
pub type KeyProtection = Protection;
pub use offline::{ExportedRole, ImportReport, RoleStatus, offline_signer, sign_metadata};
pub use publish::{GcReport, PublishReport, TargetFiles};
pub use repo::Repository;
pub use targets::{
    AddOptions, AddReport, AddSource, MadeTorrent, TargetCustom, TargetName, TorrentMaker,
    check_target_path, hashed_target_path, torrent_file_path,
};
pub use transparency::{
    RELEASE_RECORD, ReleaseLog, ReleaseLogError, monitored_policy, read_release_record,
    release_record_path,
};
pub use verify::{Problem, VerifyReport, verify_dirs, verify_published};
