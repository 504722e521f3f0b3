//! The `slipway` binary: `slipway up` runs the server; the other commands are HTTP clients
//! of a running server.

mod cli;
mod privileges;
mod proxy_sync;
mod up;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Slipway: one binary for build, deploy, run, watch and scale.
///
/// `slipway up` starts the server (Marathon v2 API on 127.0.0.1:8080 by default).
/// The other commands talk to a running server, chosen with --server or SLIPWAY_URL.
/// They authenticate with --token / SLIPWAY_TOKEN, else with the token `slipway login`
/// stored for that server in $XDG_CONFIG_HOME/slipway/credentials.json
/// (~/.config/slipway/credentials.json).
#[derive(Parser)]
#[command(name = "slipway", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the Slipway server in the foreground.
    Up(Box<up::UpArgs>),
    /// The main job: set up the bundled example (a service, its pipeline, ops' deploy
    /// configuration) as git repositories, start a server on embedded defaults and take
    /// the first commit through build, analysis, image, QA and tests to the approval
    /// "Do tests OK?"; then say how to approve, release and roll back.
    Demo(cli::demo::DemoArgs),
    /// Manage apps: list, show, deploy, scale, restart, delete, tasks, logs.
    #[command(subcommand_required = true)]
    Apps(cli::AppsArgs),
    /// List and cancel deployments.
    #[command(subcommand_required = true)]
    Deployments(cli::DeploymentsArgs),
    /// Log in with user and password; store an API token for the server.
    ///
    /// Creates a token named `slipway-cli@<hostname>` (POST /api/v1/tokens with HTTP Basic
    /// auth) and stores it, mode 0600, in $XDG_CONFIG_HOME/slipway/credentials.json
    /// (else ~/.config/slipway/credentials.json) under the server URL. Later commands for
    /// the same --server use it unless --token or SLIPWAY_TOKEN is set. Logging in again
    /// replaces (and revokes) the previous token for that server.
    Login(cli::admin::LoginArgs),
    /// Revoke the stored token of the server and remove it from the credentials file.
    Logout(cli::admin::PlainArgs),
    /// Show the user and role the server sees for your credentials.
    Whoami(cli::admin::PlainArgs),
    /// Manage users and their roles (admins; anyone may change their own password).
    #[command(subcommand_required = true)]
    Users(cli::admin::UsersArgs),
    /// List, create and revoke API tokens.
    #[command(subcommand_required = true)]
    Tokens(cli::admin::TokensArgs),
    /// Show the audit log of changes and denied requests, newest first.
    Audit(cli::admin::AuditArgs),
    /// Manage secrets injected into task environments (values are write-only).
    #[command(subcommand_required = true)]
    Secrets(cli::admin::SecretsArgs),
    /// Show or replace the environment policies (who may deploy where).
    #[command(subcommand_required = true)]
    Policies(cli::admin::PoliciesArgs),
    /// Pipelines: register one from a git repository, list them, start a run.
    #[command(subcommand_required = true)]
    Pipelines(cli::PipelinesArgs),
    /// Pipeline runs: list, show, follow logs, approve or reject.
    #[command(subcommand_required = true)]
    Runs(cli::RunsArgs),
    /// The edge proxy: export its routes as an HAProxy configuration.
    #[command(subcommand_required = true)]
    Lb(cli::LbArgs),
    /// Autoscaling policies of apps and the autoscaler's decisions.
    #[command(subcommand_required = true)]
    Autoscale(cli::autoscale::AutoscaleArgs),
    /// Convert tool output to SARIF 2.1.0 for pipelines' `gate` steps.
    #[command(subcommand_required = true)]
    Sarif(cli::SarifArgs),
    /// A live table of apps and tasks: CPU, memory, requests per second, p99 latency.
    Top(cli::top::TopArgs),
    /// Query the server's metrics with PromQL (a table, or a chart over --range).
    #[command(subcommand_required = true)]
    Metrics(cli::metrics::MetricsArgs),
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
            Command::Up(args) => up::run(*args).await,
            Command::Demo(args) => cli::demo::run(args).await,
            Command::Apps(args) => cli::apps(args).await,
            Command::Deployments(args) => cli::deployments(args).await,
            Command::Login(args) => cli::admin::login(args).await,
            Command::Logout(args) => cli::admin::logout(args).await,
            Command::Whoami(args) => cli::admin::whoami(args).await,
            Command::Users(args) => cli::admin::users(args).await,
            Command::Tokens(args) => cli::admin::tokens(args).await,
            Command::Audit(args) => cli::admin::audit(args).await,
            Command::Secrets(args) => cli::admin::secrets(args).await,
            Command::Policies(args) => cli::admin::policies(args).await,
            Command::Lb(args) => cli::lb(args).await,
            Command::Sarif(args) => cli::sarif(args).await,
            Command::Autoscale(args) => cli::autoscale::autoscale(args).await,
            Command::Pipelines(args) => cli::pipelines_cmd(args).await,
            Command::Runs(args) => cli::runs_cmd(args).await,
            Command::Top(args) => cli::top::top(args).await,
            Command::Metrics(args) => cli::metrics::metrics(args).await,
        }
    })
}
