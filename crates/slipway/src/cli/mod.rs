//! Client commands (`slipway apps ...`, `slipway deployments ...`, and the identity commands
//! in [`admin`]): clap arguments and dispatch.
//!
//! Every command talks to a running server over HTTP. Results go to stdout, progress and
//! errors to stderr; the process exit code tells what happened (see [`Exit`]).

pub(crate) mod admin;
mod apps;
mod audit;
pub(crate) mod autoscale;
mod client;
mod confirm;
mod creds;
pub(crate) mod demo;
mod deploy;
mod deployments;
mod error;
mod follow;
mod history;
mod ids;
mod lb;
mod logs;
pub(crate) mod metrics;
mod out;
mod pipelines;
mod progress;
mod prompt;
mod registry;
mod secrets;
mod session;
mod show;
mod suggest;
mod table;
mod tokens;
pub(crate) mod top;
mod users;

use clap::{Args, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;

use client::Client;
pub(crate) use error::Exit;

/// Options shared by every client command.
#[derive(Args, Clone, Debug)]
#[command(next_help_heading = "Client options")]
pub(crate) struct ClientOpts {
    /// Base URL of the Slipway server.
    #[arg(
        long,
        global = true,
        env = "SLIPWAY_URL",
        default_value = "http://127.0.0.1:8080",
        value_name = "URL"
    )]
    server: String,
    /// Output format of results on stdout.
    #[arg(short, long, global = true, value_enum, default_value_t = Output::Text)]
    output: Output,
    /// API token, sent as `Authorization: Bearer <TOKEN>`; without it the token stored by
    /// `slipway login` for the server is used.
    #[arg(
        long,
        global = true,
        env = "SLIPWAY_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    token: Option<String>,
}

/// Output format of results.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Output {
    /// Aligned tables and short summaries.
    Text,
    /// JSON: the server's objects for reads, `{"deploymentId", "status", ...}` for changes.
    Json,
}

/// `slipway apps ...`: manage apps on a running server.
#[derive(Args, Debug)]
pub(crate) struct AppsArgs {
    #[command(flatten)]
    opts: ClientOpts,
    #[command(subcommand)]
    command: AppsCommand,
}

/// Waiting for the deployment a command starts.
#[derive(Args, Clone, Copy, Debug)]
pub(crate) struct WaitOpts {
    /// Follow the deployment until it ends, showing progress on stderr.
    #[arg(long)]
    wait: bool,
    /// Give up waiting after this many seconds (exit code 2).
    #[arg(long, value_name = "SECS", default_value_t = 600)]
    timeout: u64,
}

#[derive(Subcommand, Debug)]
enum AppsCommand {
    /// List apps with their task counts (GET /v2/apps).
    List {
        /// Only apps matching this label selector, e.g. `env==prod,tier` (Marathon syntax).
        #[arg(long, value_name = "SELECTOR")]
        label: Option<String>,
        /// Only apps whose id contains this text (case-insensitive).
        #[arg(long, value_name = "SUBSTR")]
        id: Option<String>,
    },
    /// Show one app: definition summary, counts, deployments, failures and its tasks.
    Show {
        /// App id, e.g. `/web` or `web`.
        id: String,
    },
    /// Create or update an app from a Marathon app definition and follow the deployment.
    ///
    /// Sends PUT /v2/apps/{id} with the file as body (the id comes from the file's `id`
    /// field), then waits until the deployment succeeds or fails. Exit codes: 0 success,
    /// 1 deployment failed, 2 timeout, 3 server or HTTP error, 4 invalid definition,
    /// 5 conflict with a running deployment.
    Deploy {
        /// Marathon app definition (JSON); `-` reads standard input.
        #[arg(short, long, value_name = "FILE")]
        file: PathBuf,
        /// Cancel deployments that already affect the app instead of failing with a conflict.
        #[arg(long)]
        force: bool,
        /// Give up waiting after this many seconds (exit code 2).
        #[arg(long, value_name = "SECS", default_value_t = 600)]
        timeout: u64,
        /// Print the deployment id and return without following it.
        #[arg(long)]
        no_wait: bool,
    },
    /// Change the number of instances of an existing app.
    ///
    /// Prints the deployment id; with --wait follows it like `deploy` (same exit codes).
    /// An app in an environment whose policy says `confirm` (prod) is changed only after
    /// typing `yes`, or with --yes (else exit code 8).
    Scale {
        /// App id.
        id: String,
        /// Desired number of instances.
        instances: u32,
        /// Cancel deployments that already affect the app instead of failing with a conflict.
        #[arg(long)]
        force: bool,
        /// Do not ask for confirmation in an environment that asks for it (prod).
        #[arg(short, long)]
        yes: bool,
        #[command(flatten)]
        wait: WaitOpts,
    },
    /// Replace all tasks of an app with fresh ones (rolling, per its upgrade strategy).
    ///
    /// Prints the deployment id; with --wait follows it like `deploy` (same exit codes).
    Restart {
        /// App id.
        id: String,
        /// Cancel deployments that already affect the app instead of failing with a conflict.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        wait: WaitOpts,
    },
    /// The app's versions, newest first: when, instances, release version (the registry's
    /// tags naming a pinned image's digest) and image (its deployment history,
    /// GET /v2/apps/{id}/versions).
    Versions {
        /// App id.
        id: String,
        /// Show at most this many versions.
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Roll an app back to an earlier version of its definition and follow the deployment.
    ///
    /// Without --to, the version before the current configuration (scale-only changes do
    /// not count). Sends PUT /v2/apps/{id} with `{"version": V}`, so the server's policy and
    /// audit log see it like any other change. Exit codes as for `deploy`; asks for
    /// confirmation like `scale`.
    Rollback {
        /// App id.
        id: String,
        /// The version to restore (a timestamp from `slipway apps versions`).
        #[arg(long)]
        to: Option<String>,
        /// Cancel deployments that already affect the app instead of failing with a conflict.
        #[arg(long)]
        force: bool,
        /// Do not ask for confirmation in an environment that asks for it (prod).
        #[arg(short, long)]
        yes: bool,
        #[command(flatten)]
        wait: WaitOpts,
    },
    /// Delete an app and stop its tasks.
    ///
    /// Prints the deployment id; with --wait follows it until the tasks are gone. Asks for
    /// confirmation like `scale`.
    Delete {
        /// App id.
        id: String,
        /// Do not ask for confirmation in an environment that asks for it (prod).
        #[arg(short, long)]
        yes: bool,
        #[command(flatten)]
        wait: WaitOpts,
    },
    /// List the tasks of an app with their state and health.
    Tasks {
        /// App id.
        id: String,
    },
    /// Print the output of a task (by default the newest running task of the app).
    Logs {
        /// App id.
        id: String,
        /// Read this task instead of the newest running one.
        #[arg(long, value_name = "TASK_ID", conflicts_with = "previous")]
        task: Option<String>,
        /// Read the task that ended last (a crashed or replaced instance), like
        /// `kubectl logs --previous`.
        #[arg(short, long)]
        previous: bool,
        /// Read standard error instead of standard output.
        #[arg(long)]
        stderr: bool,
        /// Keep printing new output until interrupted (Ctrl-C).
        #[arg(short, long)]
        follow: bool,
        /// Start with the last N lines (without it: the last 64 KiB).
        #[arg(long, value_name = "LINES")]
        tail: Option<usize>,
    },
}

/// `slipway deployments ...`: inspect and cancel deployments.
#[derive(Args, Debug)]
pub(crate) struct DeploymentsArgs {
    #[command(flatten)]
    opts: ClientOpts,
    #[command(subcommand)]
    command: DeploymentsCommand,
}

#[derive(Subcommand, Debug)]
enum DeploymentsCommand {
    /// List running deployments (GET /v2/deployments).
    List,
    /// Cancel a deployment.
    ///
    /// Without --force the server rolls the affected apps back with a new deployment,
    /// whose id is printed. With --force the deployment just stops where it is.
    Cancel {
        /// Deployment id.
        id: String,
        /// Stop without rolling back.
        #[arg(long)]
        force: bool,
    },
}

/// Runs `slipway apps ...`.
pub(crate) async fn apps(args: AppsArgs) -> ExitCode {
    let output = args.opts.output;
    let result = match Client::new(&args.opts) {
        Ok(client) => run_apps(&client, output, args.command).await,
        Err(e) => Err(e),
    };
    error::finish(result).into()
}

/// `slipway lb ...`: the edge proxy.
#[derive(Args, Debug)]
pub(crate) struct LbArgs {
    #[command(flatten)]
    opts: ClientOpts,
    #[command(subcommand)]
    command: LbCommand,
}

#[derive(Subcommand, Debug)]
enum LbCommand {
    /// Print an HAProxy 2.6 configuration equivalent to the proxy's current routes
    /// (frontends per service port and vhost, backends of the healthy tasks), for teams
    /// who keep HAProxy in front of or instead of Slipway's proxy.
    HaproxyConfig,
}

/// Runs `slipway lb ...`.
pub(crate) async fn lb(args: LbArgs) -> ExitCode {
    let result = match Client::new(&args.opts) {
        Ok(client) => match args.command {
            LbCommand::HaproxyConfig => lb::haproxy_config(&client).await,
        },
        Err(e) => Err(e),
    };
    error::finish(result).into()
}

/// `slipway sarif ...`.
#[derive(Args, Debug)]
pub(crate) struct SarifArgs {
    #[command(subcommand)]
    command: SarifCommand,
}

#[derive(Subcommand, Debug)]
enum SarifCommand {
    /// Read cargo's JSON diagnostics on stdin (`cargo clippy --message-format=json`) and
    /// write SARIF 2.1.0 on stdout: one result per diagnostic with its rule (lint name),
    /// level, file, line and column; other lines are ignored.
    ///
    /// Example step: `cargo clippy --message-format=json | slipway sarif cargo > clippy.sarif`
    Cargo,
}

/// Runs `slipway sarif ...`.
pub(crate) async fn sarif(args: SarifArgs) -> ExitCode {
    match args.command {
        SarifCommand::Cargo => {
            let result = tokio::task::spawn_blocking(|| {
                let mut text = String::new();
                std::io::Read::read_to_string(&mut std::io::stdin().lock(), &mut text).map(|_| text)
            })
            .await
            .map_err(anyhow::Error::from)
            .and_then(|r| r.map_err(|e| anyhow::anyhow!("cannot read standard input: {e}")))
            .and_then(|text| {
                out::write_stdout(pipeline::sarif::from_cargo_json(&text).as_bytes())?;
                out::write_stdout(b"\n")?;
                Ok(error::Exit::Success)
            });
            error::finish(result).into()
        }
    }
}

/// `slipway pipelines ...`.
#[derive(Args, Debug)]
pub(crate) struct PipelinesArgs {
    #[command(flatten)]
    opts: ClientOpts,
    #[command(subcommand)]
    command: PipelinesCommand,
}

#[derive(Subcommand, Debug)]
enum PipelinesCommand {
    /// List registered pipelines.
    List,
    /// Register (or update) a pipeline whose file lives in a git repository; the file is
    /// checked out and validated first, and errors name their line and column.
    Add {
        /// The pipeline's name.
        name: String,
        /// The repository: a local path or a URL git can clone.
        #[arg(long)]
        repo: String,
        /// The branch runs check out.
        #[arg(long, default_value = "dev")]
        branch: String,
        /// The pipeline file in the repository [default: .slipway/pipeline.yaml].
        #[arg(long)]
        file: Option<String>,
    },
    /// A pipeline's source (repository, branch, file, polling and cron), its steps in
    /// order, its parameters with their types and defaults, and its last runs.
    Show {
        /// The pipeline.
        name: String,
    },
    /// Check a pipeline file here, before pushing it: every error of the file at once, and
    /// the deploy files it names in its repository (no server needed).
    Lint {
        /// The pipeline file.
        #[arg(default_value = ".slipway/pipeline.yaml")]
        file: std::path::PathBuf,
    },
    /// Set the secret forges sign push webhooks with (GitHub, GitLab, Gitea, Forgejo) and
    /// print it once, with the webhook's URL. The pipeline's owner or an admin.
    WebhookSecret {
        /// The pipeline.
        name: String,
        /// Use this secret (at least 16 characters) instead of a new random one.
        #[arg(long)]
        value: Option<String>,
    },
    /// Start a run by hand; exit code 0 when it succeeded, 1 when it failed (with --follow).
    Run {
        /// The pipeline.
        name: String,
        /// A parameter, NAME=VALUE (repeatable).
        #[arg(short = 'p', long = "param", value_name = "NAME=VALUE")]
        params: Vec<String>,
        /// Follow the run step by step until it ends.
        #[arg(short, long)]
        follow: bool,
        /// Confirm a run that deploys to an environment asking for confirmation (prod)
        /// without being asked; without it the command asks on a terminal and refuses
        /// otherwise.
        #[arg(short, long)]
        yes: bool,
    },
}

/// `slipway runs ...`.
#[derive(Args, Debug)]
pub(crate) struct RunsArgs {
    #[command(flatten)]
    opts: ClientOpts,
    #[command(subcommand)]
    command: RunsCommand,
}

#[derive(Subcommand, Debug)]
enum RunsCommand {
    /// List runs, newest first.
    List {
        /// Only runs of this pipeline.
        #[arg(long)]
        pipeline: Option<String>,
    },
    /// A run with its steps: status, attempts, who approved, why a step failed.
    Show {
        /// The run id.
        id: String,
    },
    /// A step's log (masked); -f follows it until the step ends.
    Logs {
        /// The run id.
        id: String,
        /// The step.
        step: String,
        /// Keep printing new lines until the step has ended.
        #[arg(short, long)]
        follow: bool,
    },
    /// Run a failed, cancelled or interrupted run again from the step that failed (same
    /// commit and parameters; steps that succeeded keep their outputs).
    Retry {
        /// The run id.
        id: String,
        /// Follow the new run until it ends.
        #[arg(short, long)]
        follow: bool,
    },
    /// Cancel a queued or running run: its running steps' process trees are killed.
    Cancel {
        /// The run id.
        id: String,
    },
    /// Approve a waiting approval step (the environment's policy decides who may).
    Approve {
        /// The run id.
        id: String,
        /// The approval step.
        step: String,
    },
    /// Reject a waiting approval step; the run fails.
    Reject {
        /// The run id.
        id: String,
        /// The approval step.
        step: String,
    },
}

/// Runs `slipway pipelines ...`.
pub(crate) async fn pipelines_cmd(args: PipelinesArgs) -> ExitCode {
    let output = args.opts.output;
    if let PipelinesCommand::Lint { file } = &args.command {
        return error::finish(pipelines::lint(output, file)).into();
    }
    let result = match Client::new(&args.opts) {
        Ok(client) => match args.command {
            PipelinesCommand::List => pipelines::list(&client, output).await,
            PipelinesCommand::Show { name } => {
                pipelines::show_pipeline(&client, output, &name).await
            }
            PipelinesCommand::Add {
                name,
                repo,
                branch,
                file,
            } => pipelines::add(&client, output, &name, &repo, &branch, file.as_deref()).await,
            PipelinesCommand::Run {
                name,
                params,
                follow,
                yes,
            } => pipelines::run(&client, output, &name, &params, follow, yes).await,
            PipelinesCommand::Lint { file } => pipelines::lint(output, &file),
            PipelinesCommand::WebhookSecret { name, value } => {
                pipelines::webhook_secret(&client, output, &name, value.as_deref()).await
            }
        },
        Err(e) => Err(e),
    };
    error::finish(result).into()
}

/// Runs `slipway runs ...`.
pub(crate) async fn runs_cmd(args: RunsArgs) -> ExitCode {
    let output = args.opts.output;
    let result = match Client::new(&args.opts) {
        Ok(client) => match args.command {
            RunsCommand::List { pipeline } => {
                pipelines::runs(&client, output, pipeline.as_deref()).await
            }
            RunsCommand::Show { id } => pipelines::show(&client, output, &id).await,
            RunsCommand::Cancel { id } => pipelines::cancel(&client, output, &id).await,
            RunsCommand::Retry { id, follow } => {
                pipelines::retry(&client, output, &id, follow).await
            }
            RunsCommand::Logs { id, step, follow } => {
                pipelines::logs(&client, output, &id, &step, follow).await
            }
            RunsCommand::Approve { id, step } => {
                pipelines::decide(&client, output, &id, &step, true).await
            }
            RunsCommand::Reject { id, step } => {
                pipelines::decide(&client, output, &id, &step, false).await
            }
        },
        Err(e) => Err(e),
    };
    error::finish(result).into()
}

/// Runs `slipway deployments ...`.
pub(crate) async fn deployments(args: DeploymentsArgs) -> ExitCode {
    let output = args.opts.output;
    let result = match Client::new(&args.opts) {
        Ok(client) => match args.command {
            DeploymentsCommand::List => deployments::list(&client, output).await,
            DeploymentsCommand::Cancel { id, force } => {
                deployments::cancel(&client, output, &id, force).await
            }
        },
        Err(e) => Err(e),
    };
    error::finish(result).into()
}

async fn run_apps(client: &Client, output: Output, cmd: AppsCommand) -> anyhow::Result<Exit> {
    match cmd {
        AppsCommand::List { label, id } => {
            apps::list(client, output, label.as_deref(), id.as_deref()).await
        }
        AppsCommand::Show { id } => apps::show(client, output, &id).await,
        AppsCommand::Tasks { id } => apps::tasks(client, output, &id).await,
        AppsCommand::Deploy {
            file,
            force,
            timeout,
            no_wait,
        } => {
            let wait = WaitOpts {
                wait: !no_wait,
                timeout,
            };
            deploy::deploy(client, output, &file, force, wait).await
        }
        AppsCommand::Scale {
            id,
            instances,
            force,
            yes,
            wait,
        } => deploy::scale(client, output, &id, instances, force, yes, wait).await,
        AppsCommand::Restart { id, force, wait } => {
            deploy::restart(client, output, &id, force, wait).await
        }
        AppsCommand::Delete { id, yes, wait } => {
            deploy::delete(client, output, &id, yes, wait).await
        }
        AppsCommand::Versions { id, limit } => deploy::versions(client, output, &id, limit).await,
        AppsCommand::Rollback {
            id,
            to,
            force,
            yes,
            wait,
        } => deploy::rollback(client, output, &id, to.as_deref(), force, yes, wait).await,
        AppsCommand::Logs {
            id,
            task,
            previous,
            stderr,
            follow,
            tail,
        } => {
            let req = logs::LogsRequest {
                app: id,
                task,
                previous,
                stderr,
                follow,
                tail,
            };
            logs::run(client, &req).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct TestCli {
        #[command(subcommand)]
        cmd: TestCmd,
    }

    #[derive(Subcommand)]
    enum TestCmd {
        Apps(AppsArgs),
        Deployments(DeploymentsArgs),
    }

    fn parse(args: &[&str]) -> TestCmd {
        let argv = std::iter::once("slipway").chain(args.iter().copied());
        match TestCli::try_parse_from(argv) {
            Ok(c) => c.cmd,
            Err(e) => panic!("{args:?}: {e}"),
        }
    }

    #[test]
    fn global_options_work_after_the_subcommand() {
        let TestCmd::Apps(a) = parse(&["apps", "list", "-o", "json", "--server", "http://x:1"])
        else {
            panic!("not apps")
        };
        assert_eq!(a.opts.output, Output::Json);
        assert_eq!(a.opts.server, "http://x:1");
        assert!(matches!(a.command, AppsCommand::List { .. }));
    }

    #[test]
    fn deploy_defaults() {
        let TestCmd::Apps(a) = parse(&["apps", "deploy", "-f", "-"]) else {
            panic!("not apps")
        };
        match a.command {
            AppsCommand::Deploy {
                file,
                force,
                timeout,
                no_wait,
            } => {
                assert_eq!(file, PathBuf::from("-"));
                assert!(!force && !no_wait);
                assert_eq!(timeout, 600);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn logs_and_cancel_flags() {
        let TestCmd::Apps(a) = parse(&["apps", "logs", "web", "-f", "--stderr"]) else {
            panic!("not apps")
        };
        assert!(matches!(
            a.command,
            AppsCommand::Logs {
                follow: true,
                stderr: true,
                tail: None,
                previous: false,
                ..
            }
        ));
        let TestCmd::Deployments(d) = parse(&["deployments", "cancel", "abc", "--force"]) else {
            panic!("not deployments")
        };
        assert!(matches!(
            d.command,
            DeploymentsCommand::Cancel { force: true, .. }
        ));
    }

    #[test]
    fn help_renders() {
        use clap::CommandFactory;
        TestCli::command().debug_assert();
    }
}
