//! The `switchboard` command: CLI -> config -> telemetry -> app.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use switchboard::config::{self, ConfigSource};

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
}

fn source(flag: Option<PathBuf>) -> ConfigSource {
    let path = flag
        .or_else(|| std::env::var_os("SWITCHBOARD_CONFIG").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("config/switchboard.toml"));
    ConfigSource::File(path)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::CheckConfig { config } => match config::load(&source(config)) {
            Ok(c) => {
                print!("{}", c.to_redacted_toml());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::from(2)
            }
        },
        Command::Serve { config } => {
            let config = match config::load(&source(config)) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::from(2);
                }
            };
            switchboard::telemetry::init_tracing();
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("cannot start the runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            runtime.block_on(serve(config))
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
