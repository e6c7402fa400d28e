//! Running a recipe's command: in bubblewrap (`bwrap`) with no network, a fresh root of the
//! host's read-only `/usr` and a few loader files, an empty home and `/tmp`, a cleared
//! environment with fixed locale, time zone, umask and `PATH`, and the recipe's variables
//! (`SOURCE_DATE_EPOCH` among them); or, only when asked, directly on the host.
//!
//! A recipe's builder may name a toolchain (`{"type": "toolchain", "name": "rust-1.95.0"}`).
//! The host's `/usr` is the default toolchain; a rebuilder that keeps a named one elsewhere
//! (e.g. a rustup toolchain directory) maps the name to it ([`Sandbox::with_toolchain`]): it is
//! bound read-only at [`TOOLCHAIN_DIR`] and its `bin/` comes first in `PATH`.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use airlock_core::rebuild::RebuildInfo;

/// Where the source tree appears inside the sandbox.
pub const BUILD_DIR: &str = "/build";
/// The build's home directory inside the sandbox (empty, on a tmpfs).
pub const HOME_DIR: &str = "/home/builder";
/// `PATH` in every build (after a mapped toolchain's `bin/`).
pub const FIXED_PATH: &str = "/usr/bin:/bin";
/// The fixed environment every build sees (the recipe may not set these).
pub const FIXED_ENV: &[(&str, &str)] = &[
    ("PATH", FIXED_PATH),
    ("TZ", "UTC"),
    ("LANG", "C.UTF-8"),
    ("LC_ALL", "C.UTF-8"),
    ("TMPDIR", "/tmp"),
];
/// Where a named toolchain the rebuilder provides appears inside the sandbox.
pub const TOOLCHAIN_DIR: &str = "/toolchain";

/// Named toolchains a rebuilder provides: name -> host directory (holding `bin/`).
pub type Toolchains = std::collections::BTreeMap<String, PathBuf>;

/// The umask every build runs under.
pub const UMASK: &str = "022";

/// Host files bound read-only into the sandbox when present: what the dynamic loader and
/// Debian's alternatives (`cc`, `c++`) need, nothing about the host's users or network.
const ETC_FILES: &[&str] = &[
    "/etc/alternatives",
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
];

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error(
        "bubblewrap ({}) is not available, so the build cannot be isolated; install Debian's \
         bubblewrap package, or build without a sandbox with --unsandboxed",
        bwrap.display()
    )]
    Missing {
        bwrap: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the build command failed ({status}); its output is in {}", log.display())]
    BuildFailed { status: String, log: PathBuf },
    #[error("{op} {}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// How builds are isolated.
#[derive(Debug, Clone)]
pub enum Sandbox {
    /// bubblewrap at this path, and its version line.
    Bubblewrap {
        bwrap: PathBuf,
        version: String,
        toolchains: Toolchains,
    },
    /// No isolation: the person asked for it (`--unsandboxed`).
    Unsandboxed { toolchains: Toolchains },
}

impl Sandbox {
    /// bubblewrap at `bwrap` (a path or a name looked up in PATH), checked to run.
    pub fn bubblewrap(bwrap: &Path) -> Result<Self, SandboxError> {
        let out = Command::new(bwrap)
            .arg("--version")
            .output()
            .map_err(|source| SandboxError::Missing {
                bwrap: bwrap.to_path_buf(),
                source,
            })?;
        if !out.status.success() {
            return Err(SandboxError::Missing {
                bwrap: bwrap.to_path_buf(),
                source: std::io::Error::other(format!("--version exited with {}", out.status)),
            });
        }
        Ok(Sandbox::Bubblewrap {
            bwrap: bwrap.to_path_buf(),
            version: String::from_utf8_lossy(&out.stdout).trim().to_string(),
            toolchains: Toolchains::new(),
        })
    }

    /// No sandbox: the build runs on the host (only when the person asked).
    pub fn unsandboxed() -> Self {
        Sandbox::Unsandboxed {
            toolchains: Toolchains::new(),
        }
    }

    /// Provide the toolchain `name` (as recipes name it) from the host directory `dir`, which
    /// must hold `bin/`.
    pub fn with_toolchain(mut self, name: &str, dir: &Path) -> Result<Self, SandboxError> {
        let dir = fs::canonicalize(dir).map_err(|source| SandboxError::Io {
            op: "resolving the toolchain directory",
            path: dir.to_path_buf(),
            source,
        })?;
        if !dir.join("bin").is_dir() {
            return Err(SandboxError::Io {
                op: "finding bin/ in the toolchain directory",
                path: dir,
                source: std::io::Error::from(std::io::ErrorKind::NotFound),
            });
        }
        match &mut self {
            Sandbox::Bubblewrap { toolchains, .. } | Sandbox::Unsandboxed { toolchains } => {
                toolchains.insert(name.to_string(), dir);
            }
        }
        Ok(self)
    }

    fn toolchains(&self) -> &Toolchains {
        match self {
            Sandbox::Bubblewrap { toolchains, .. } | Sandbox::Unsandboxed { toolchains } => {
                toolchains
            }
        }
    }

    /// The host directory of the toolchain `info`'s recipe names, when this rebuilder maps it.
    pub fn toolchain_for(&self, info: &RebuildInfo) -> Option<&Path> {
        match &info.recipe.builder {
            airlock_core::rebuild::Builder::Toolchain(name) => {
                self.toolchains().get(name).map(PathBuf::as_path)
            }
            airlock_core::rebuild::Builder::Oci(_) => None,
        }
    }

    /// For the attestation's environment: `bubblewrap 0.8.0` or `none`.
    pub fn describe(&self) -> String {
        match self {
            Sandbox::Bubblewrap { version, .. } => version.clone(),
            Sandbox::Unsandboxed { .. } => "none".to_string(),
        }
    }

    /// Run the recipe's command in `src`, output to `log`.
    pub fn run(&self, info: &RebuildInfo, src: &Path, log: &Path) -> Result<(), SandboxError> {
        let io = |op: &'static str, path: &Path| {
            let path = path.to_path_buf();
            move |source| SandboxError::Io { op, path, source }
        };
        let script = format!("umask {UMASK}\n{}", info.recipe.command);
        let toolchain = self.toolchain_for(info);
        let mut cmd = match self {
            Sandbox::Bubblewrap { bwrap, .. } => {
                let src = fs::canonicalize(src).map_err(io("resolving", src))?;
                let mut c = Command::new(bwrap);
                c.args(["--unshare-all", "--die-with-parent", "--new-session"])
                    .args(["--hostname", "airlock-rebuild", "--clearenv"])
                    .args(["--ro-bind", "/usr", "/usr"]);
                for top in ["/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"] {
                    match fs::read_link(top) {
                        Ok(target) => {
                            c.arg("--symlink").arg(target).arg(top);
                        }
                        Err(_) if Path::new(top).is_dir() => {
                            c.args(["--ro-bind", top, top]);
                        }
                        Err(_) => {}
                    }
                }
                for f in ETC_FILES {
                    c.args(["--ro-bind-try", f, f]);
                }
                if let Some(dir) = toolchain {
                    c.arg("--ro-bind").arg(dir).arg(TOOLCHAIN_DIR);
                }
                c.args(["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"])
                    .args(["--tmpfs", "/home", "--dir", HOME_DIR])
                    .arg("--bind")
                    .arg(&src)
                    .arg(BUILD_DIR)
                    .args(["--chdir", BUILD_DIR])
                    .args(["--setenv", "HOME", HOME_DIR, "--setenv", "PWD", BUILD_DIR]);
                for (k, v) in FIXED_ENV {
                    c.args(["--setenv", k, v]);
                }
                if toolchain.is_some() {
                    c.args([
                        "--setenv",
                        "PATH",
                        &format!("{TOOLCHAIN_DIR}/bin:{}", FIXED_PATH),
                    ]);
                }
                for (k, v) in &info.recipe.env {
                    c.arg("--setenv").arg(k).arg(v);
                }
                c.args(["--", "/bin/sh", "-c", &script]);
                c
            }
            Sandbox::Unsandboxed { .. } => {
                let home = src.with_extension("home");
                fs::create_dir_all(&home).map_err(io("creating", &home))?;
                let mut c = Command::new("/bin/sh");
                c.env_clear()
                    .current_dir(src)
                    .env("HOME", &home)
                    .env("PWD", src)
                    .envs(FIXED_ENV.iter().copied())
                    .envs(
                        toolchain
                            .map(|dir| ("PATH", format!("{}/bin:{FIXED_PATH}", dir.display()))),
                    )
                    .envs(&info.recipe.env)
                    .args(["-c", &script]);
                c
            }
        };
        let out = File::create(log).map_err(io("creating", log))?;
        let err = out.try_clone().map_err(io("opening", log))?;
        let status = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .status()
            .map_err(io("running the build with", Path::new(&self.describe())))?;
        if !status.success() {
            return Err(SandboxError::BuildFailed {
                status: status.to_string(),
                log: log.to_path_buf(),
            });
        }
        Ok(())
    }
}
