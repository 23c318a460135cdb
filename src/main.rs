//! The `switchboard` command: CLI -> config -> telemetry -> app.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// The engine allocates and frees many small buffers per event (HTTP
/// bodies, JSON, storage pages); mimalloc does this with far less CPU than
/// the system allocator (see README, Performance).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use switchboard::config::{self, ConfigSource};
use switchboard::tools::loadgen::{Loadgen, LoadgenOptions};
use switchboard::tools::sim::cli::SimArgs;

#[derive(Parser)]
#[command(
    name = "switchboard",
    version,
    about = "Runs AI customer conversations on Meta's messaging platforms"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the engine.
    Serve {
        /// Config file (else $SWITCHBOARD_CONFIG, else config/switchboard.toml).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Validate and print the effective config, secrets redacted.
    CheckConfig {
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Apply the ScyllaDB schema (idempotent; `serve` does it too).
    Migrate {
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Seal every stored secret again under the newest key of
    /// $SWITCHBOARD_KEYS (the embedded store: with the engine stopped).
    RotateKeys {
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Give the space freed inside the embedded store and bus files back to
    /// the file system (with the engine stopped).
    Compact {
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Engine, Graph API simulator and simulated customers in one process:
    /// a short transcript and a report. No config, key or network needed.
    Demo,
    /// A Meta Graph API simulator: records calls, injects faults, sends
    /// signed delivery / read webhooks back.
    Sim(Box<SimArgs>),
    /// The load harness: open-loop signed webhooks, its own Graph API sink,
    /// a report of rates, latencies and exactly-once replies.
    Loadgen(Box<LoadgenOptions>),
}

fn source(flag: Option<PathBuf>) -> ConfigSource {
    match flag.or_else(|| std::env::var_os("SWITCHBOARD_CONFIG").map(PathBuf::from)) {
        Some(path) => ConfigSource::File(path),
        None => {
            let default = PathBuf::from("config/switchboard.toml");
            // No file asked for and none in place (a container configured
            // by its environment): the defaults and the environment alone.
            if default.exists() {
                ConfigSource::File(default)
            } else {
                ConfigSource::DefaultsOnly
            }
        }
    }
}

/// The config from `flag` (or its defaults), or every error printed and
/// the exit code for a bad config.
fn load_config(flag: Option<PathBuf>) -> Result<switchboard::config::Config, ExitCode> {
    config::load(&source(flag)).map_err(|e| {
        eprintln!("{e}");
        ExitCode::from(2)
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::CheckConfig { config } => match load_config(config) {
            Ok(c) => {
                print!("{}", c.to_redacted_toml());
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        Command::Migrate { config } => {
            let config = match load_config(config) {
                Ok(c) => c,
                Err(code) => return code,
            };
            runtime().map_or(ExitCode::FAILURE, |rt| rt.block_on(migrate(config)))
        }
        Command::RotateKeys { config } => {
            let config = match load_config(config) {
                Ok(c) => c,
                Err(code) => return code,
            };
            runtime().map_or(ExitCode::FAILURE, |rt| rt.block_on(rotate_keys(config)))
        }
        Command::Compact { config } => {
            let config = match load_config(config) {
                Ok(c) => c,
                Err(code) => return code,
            };
            compact(&config.store.path)
        }
        Command::Demo => runtime().map_or(ExitCode::FAILURE, |rt| rt.block_on(demo())),
        Command::Sim(args) => {
            switchboard::telemetry::init_tracing();
            runtime().map_or(ExitCode::FAILURE, |rt| rt.block_on(sim(*args)))
        }
        Command::Loadgen(options) => {
            runtime().map_or(ExitCode::FAILURE, |rt| rt.block_on(loadgen(*options)))
        }
        Command::Serve { config } => {
            let config = match load_config(config) {
                Ok(c) => c,
                Err(code) => return code,
            };
            switchboard::telemetry::init_tracing();
            let weak = config::weak_secrets(&config);
            if !weak.is_empty() {
                if !config::listens_on_loopback_only(&config) {
                    eprintln!(
                        "refusing to serve on {} with weak secrets (set them in the config or SWITCHBOARD__ variables):\n{}",
                        config.server.listen,
                        weak.iter().map(|w| format!("  - {w}")).collect::<Vec<_>>().join("\n")
                    );
                    return ExitCode::from(2);
                }
                for w in &weak {
                    tracing::warn!(problem = %w, "Weak secret accepted because the engine listens on loopback only");
                }
            }
            runtime().map_or(ExitCode::FAILURE, |rt| rt.block_on(serve(config)))
        }
    }
}

fn runtime() -> Option<tokio::runtime::Runtime> {
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => Some(r),
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            None
        }
    }
}

async fn migrate(config: switchboard::config::Config) -> ExitCode {
    use switchboard::config::StoreKind;
    let uses_scylla = config.store.kind == StoreKind::Scylla
        || config
            .tenants
            .iter()
            .any(|t| config.store_of(&t.id) == StoreKind::Scylla);
    if !uses_scylla {
        println!("Nothing to migrate: no tenant uses the scylla store (the embedded store needs no migration).");
        return ExitCode::SUCCESS;
    }
    let scylla = switchboard::config::ScyllaConfig {
        message_ttl: Some(config.store.retention),
        dead_letter_ttl: Some(config.store.dead_letter_retention),
        ..config.store.scylla.clone()
    };
    match switchboard::store::scylla::migrate(&scylla).await {
        Ok(n) => {
            println!(
                "Schema applied to keyspace {} ({n} statements, all idempotent).",
                config.store.scylla.keyspace
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn compact(dir: &std::path::Path) -> ExitCode {
    match switchboard::store::embedded::compact::compact_dir(dir) {
        Ok(files) if files.is_empty() => {
            println!(
                "Nothing to compact: no store or bus file in {}.",
                dir.display()
            );
            ExitCode::SUCCESS
        }
        Ok(files) => {
            for f in files {
                println!("{}: {} -> {} bytes", f.path.display(), f.before, f.after);
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

async fn rotate_keys(config: switchboard::config::Config) -> ExitCode {
    match switchboard::integrations::rotate_keys(config).await {
        Ok((n, key)) => {
            println!("{n} stored integrations sealed again under key '{key}'.");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

async fn demo() -> ExitCode {
    let mut out = std::io::stdout();
    match switchboard::tools::demo::run(&mut out).await {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("demo failed: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn sim(args: SimArgs) -> ExitCode {
    let sim = match args.start().await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    eprintln!(
        "Graph API simulator on http://{} (graph_base_url = {})",
        sim.addr,
        sim.base_url()
    );
    wait_for_signal().await;
    sim.stop();
    ExitCode::SUCCESS
}

async fn loadgen(options: LoadgenOptions) -> ExitCode {
    let json = options.json;
    if options.web_visitors > 0 {
        let run = switchboard::tools::loadgen::web::run(&options).await;
        let exact = run.as_ref().is_ok_and(|r| r.exactly_once());
        return report(run, json, exact);
    }
    let harness = match Loadgen::bind(options).await {
        Ok(h) => h,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let run = harness.run().await;
    let exact = run.as_ref().is_ok_and(|r| r.exactly_once());
    report(run, json, exact)
}

/// Prints a load run's report (JSON or text); success only when every
/// reply came exactly once.
fn report<R: serde::Serialize + std::fmt::Display, E: std::fmt::Display>(
    run: Result<R, E>,
    json: bool,
    exactly_once: bool,
) -> ExitCode {
    match run {
        Ok(report) => {
            if json {
                match serde_json::to_string_pretty(&report) {
                    Ok(j) => println!("{j}"),
                    Err(e) => eprintln!("report: {e}"),
                }
            } else {
                print!("{report}");
            }
            if exactly_once {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: switchboard::config::Config) -> ExitCode {
    let engine = match switchboard::app::start(config).await {
        Ok(e) => e,
        Err(e) => {
            tracing::error!(error = %e, "Engine did not start");
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    wait_for_signal().await;
    tracing::info!("Shutting down");
    engine.shutdown().await;
    ExitCode::SUCCESS
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
