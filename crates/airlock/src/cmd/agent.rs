//! `airlock agent`: the privileged update agent (crates/airlock-agent) and the commands people
//! use on it.
//!
//! `check-now`, `status` and `rollback` talk to the running agent over its socket (root or the
//! agent's user are admins there), so that the agent's one worker serializes them with its own
//! checks. When no agent answers on the socket they act on the state directly, after taking the
//! agent's lock in `state_dir` (so they never run beside a starting agent).

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use airlock_agent::{AgentConfig, AgentHandle, AppRecord, AppStatus, ClientError, Installer};
use anyhow::{Context, bail};
use clap::Subcommand;
use serde_json::{Value, json};

use super::common::print_json;

#[derive(clap::Args, Debug)]
#[command(after_help = "Example:
  airlock agent --config /etc/airlock/agent.toml run
  airlock agent check-now myapp --ignore-staging
  airlock agent status --json")]
pub struct Args {
    /// The agent's configuration file (see docs/agent.md).
    #[arg(
        long,
        global = true,
        env = "AIRLOCK_AGENT_CONFIG",
        default_value = "/etc/airlock/agent.toml"
    )]
    config: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the agent: scheduled checks, the trigger socket and FIFOs, installs.
    #[command(after_help = "Example:\n  airlock agent --config /etc/airlock/agent.toml run")]
    Run,
    /// Load and check the configuration, and exit (the health check of a new agent binary).
    #[command(
        after_help = "Example:\n  airlock agent --config /etc/airlock/agent.toml check-config"
    )]
    CheckConfig,
    /// Check now, outside windows and rate limits, and install what is offered.
    #[command(
        after_help = "Example:\n  airlock agent check-now\n  airlock agent check-now myapp --ignore-staging"
    )]
    CheckNow {
        /// Only this app (default: every app).
        app: Option<String>,
        /// Take a release still staged to a share of machines, on this machine.
        #[arg(long)]
        ignore_staging: bool,
    },
    /// Installed version per app, last check and result, staged release pending, bad
    /// versions, the installer's history.
    #[command(after_help = "Example:\n  airlock agent status\n  airlock agent status --json")]
    Status,
    /// Switch an app back to its previous release, or to --to VERSION.
    #[command(
        after_help = "Example:\n  airlock agent rollback myapp\n  airlock agent rollback myapp --to 1.4.2"
    )]
    Rollback {
        /// The app's name in the configuration.
        app: String,
        /// The release to go back to (default: the previous one).
        #[arg(long)]
        to: Option<String>,
    },
}

/// SIGTERM (a service manager stopping the agent) or SIGINT stop it cleanly: the check under
/// way finishes, answers in flight are written, the socket is removed, exit status 0. A second
/// signal is not needed; `kill -9` is always safe too (see docs/agent.md, crash safety).
fn stop_on_signal(stopper: airlock_agent::Stopper) {
    std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        let signalled = rt.block_on(async {
            use tokio::signal::unix::{SignalKind, signal};
            let (Ok(mut term), Ok(mut int)) = (
                signal(SignalKind::terminate()),
                signal(SignalKind::interrupt()),
            ) else {
                // Not handled: the signals keep their default action.
                return false;
            };
            tokio::select! {
                _ = term.recv() => true,
                _ = int.recv() => true,
            }
        });
        if signalled {
            tracing::info!("stopping on a signal");
            stopper.stop();
        }
    });
}

/// The install engine this build uses.
fn installer() -> Arc<dyn Installer> {
    Arc::new(airlock_agent::Engine)
}

pub fn run(args: Args, json: bool) -> anyhow::Result<()> {
    let config = AgentConfig::load(&args.config)?;
    let line = match &args.command {
        Command::Run => {
            let agent = AgentHandle::start(config, installer())?;
            stop_on_signal(agent.stopper());
            let Some(binary) = agent.wait() else {
                return Ok(());
            };
            // The agent installed its own new binary and it passed its health check: become it,
            // same process, same arguments (the lock and the socket close on exec).
            let err = std::process::Command::new(&binary)
                .args(std::env::args_os().skip(1))
                .exec();
            return Err(anyhow::anyhow!(err))
                .with_context(|| format!("restarting into {}", binary.display()));
        }
        Command::CheckConfig => {
            if json {
                print_json(&json!({"ok": true, "config": config.path}))?;
            } else {
                println!("{}: ok", config.path.display());
            }
            return Ok(());
        }
        Command::CheckNow {
            app,
            ignore_staging,
        } => format!(
            "check-now {}{}",
            app.as_deref().unwrap_or("*"),
            if *ignore_staging {
                " ignore-staging"
            } else {
                ""
            }
        ),
        Command::Status => "status".to_string(),
        Command::Rollback { app, to } => match to {
            Some(v) => format!("rollback {app} {v}"),
            None => format!("rollback {app}"),
        },
    };
    let answer = match airlock_agent::request(&config.socket, &line, Duration::from_secs(3600)) {
        Ok(answer) => answer,
        Err(ClientError::Connect { .. }) => direct(&config, &args.command)?,
        Err(e) => return Err(e.into()),
    };
    show(&args.command, &answer, json)
}

/// The same requests without a running agent.
fn direct(config: &AgentConfig, command: &Command) -> anyhow::Result<Value> {
    let _lock = airlock_agent::take_lock(config)?;
    let installer = installer();
    let pick = |app: &Option<String>| -> anyhow::Result<Vec<&airlock_agent::AppConfig>> {
        match app {
            None => Ok(config.apps.values().collect()),
            Some(a) => Ok(vec![config.apps.get(a).with_context(|| {
                format!("no app {a:?} in {}", config.path.display())
            })?]),
        }
    };
    Ok(match command {
        Command::Run | Command::CheckConfig => json!({"ok": true}),
        Command::Status => {
            let mut apps = serde_json::Map::new();
            for app in pick(&None)? {
                let record = AppRecord::load(&config.app_state_dir(&app.name));
                let status = installer.status(app).map_err(|e| anyhow::anyhow!(e))?;
                let s = AppStatus::new(&app.name, &app.channel, &record, &status, false);
                apps.insert(app.name.clone(), serde_json::to_value(s)?);
            }
            json!({"ok": true, "apps": apps})
        }
        Command::CheckNow {
            app,
            ignore_staging,
        } => {
            let machine_id = config.machine_id()?;
            let mut results = Vec::new();
            for app in pick(app)? {
                let dir = config.app_state_dir(&app.name);
                let result = airlock_agent::check_app(
                    app,
                    &machine_id,
                    &dir.join("downloads"),
                    installer.as_ref(),
                    *ignore_staging,
                );
                results.push(match result {
                    Ok(report) => json!({"ok": true, "app": app.name, "check": report}),
                    Err(e) => json!({"ok": false, "app": app.name, "error": airlock_core::error_chain(&e)}),
                });
            }
            let ok = results.iter().all(|r| r["ok"] == true);
            json!({"ok": ok, "results": results})
        }
        Command::Rollback { app, to } => {
            let app_cfg = pick(&Some(app.clone()))?[0];
            match installer.rollback(app_cfg, to.as_deref()) {
                Ok(outcome) => json!({"ok": true, "app": app, "rollback": outcome}),
                Err(e) => json!({"ok": false, "app": app, "error": airlock_core::error_chain(&*e)}),
            }
        }
    })
}

fn show(command: &Command, answer: &Value, json: bool) -> anyhow::Result<()> {
    if json {
        print_json(answer)?;
    } else {
        match command {
            Command::Status => {
                let empty = serde_json::Map::new();
                for (name, s) in answer["apps"].as_object().unwrap_or(&empty) {
                    println!(
                        "{name}: installed {}",
                        s["installed"].as_str().unwrap_or("nothing")
                    );
                    if let Some(last) = s["last_check"].as_object() {
                        println!(
                            "  last check {} ({}): {}",
                            last.get("at").and_then(Value::as_str).unwrap_or("?"),
                            if last.get("ok") == Some(&Value::Bool(true)) {
                                "ok"
                            } else {
                                "FAILED"
                            },
                            last.get("result").and_then(Value::as_str).unwrap_or("")
                        );
                    } else {
                        println!("  never checked");
                    }
                    if let Some(next) = s["next_check"].as_str() {
                        println!("  next check {next}");
                    }
                    if let Some(p) = s["pending"].as_object() {
                        println!("  staged release pending: {}", Value::Object(p.clone()));
                    }
                    if let Some(bad) = s["bad_versions"].as_array().filter(|b| !b.is_empty()) {
                        println!("  bad versions: {}", Value::Array(bad.clone()));
                    }
                    if !s["installer"].is_null() {
                        println!("  installer: {}", s["installer"]);
                    }
                }
            }
            _ => {
                for r in answer["results"]
                    .as_array()
                    .cloned()
                    .unwrap_or_else(|| vec![answer.clone()])
                {
                    let app = r["app"].as_str().unwrap_or("?");
                    if let Some(summary) = r["check"]["summary"].as_str() {
                        println!("{app}: {summary}");
                    } else if let Some(rb) = r.get("rollback") {
                        println!("{app}: {rb}");
                    } else if let Some(e) = r["error"].as_str() {
                        eprintln!("{app}: {e}");
                    }
                }
            }
        }
    }
    if answer["ok"] != true {
        bail!("the agent reported a failure (see above)");
    }
    Ok(())
}
