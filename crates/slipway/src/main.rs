//! The `slipway` binary: `slipway up` runs the server; the other commands are HTTP clients
//! of a running server.

mod cli;
mod up;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Slipway: one binary for build, deploy, run, watch and scale.
///
/// `slipway up` starts the server (Marathon v2 API on 127.0.0.1:8080 by default).
/// The other commands talk to a running server, chosen with --server or SLIPWAY_URL.
#[derive(Parser)]
#[command(name = "slipway", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the Slipway server in the foreground.
    Up(up::UpArgs),
    /// Manage apps: list, show, deploy, scale, restart, delete, tasks, logs.
    #[command(subcommand_required = true)]
    Apps(cli::AppsArgs),
    /// List and cancel deployments.
    #[command(subcommand_required = true)]
    Deployments(cli::DeploymentsArgs),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // Help and version are answers, not errors; usage errors exit 64 (EX_USAGE) so
            // they never look like a deploy timeout (2).
            return match e.kind() {
                clap::error::ErrorKind::DisplayHelp
                | clap::error::ErrorKind::DisplayVersion
                | clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
                    ExitCode::SUCCESS
                }
                _ => ExitCode::from(64),
            };
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(async move {
        match cli.command {
            Command::Up(args) => up::run(args).await,
            Command::Apps(args) => cli::apps(args).await,
            Command::Deployments(args) => cli::deployments(args).await,
        }
    })
}
