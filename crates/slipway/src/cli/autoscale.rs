//! `slipway autoscale set|show|list|delete|history` over `/api/v1/autoscalers`.

use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{Map, Value, json};
use std::path::PathBuf;
use std::process::ExitCode;

use super::client::Client;
use super::deploy::read_input;
use super::error::{self, Exit};
use super::{ClientOpts, Output};

/// `slipway autoscale ...`.
#[derive(Args, Debug)]
pub(crate) struct AutoscaleArgs {
    #[command(flatten)]
    opts: ClientOpts,
    #[command(subcommand)]
    command: AutoscaleCommand,
}

#[derive(Subcommand, Debug)]
enum AutoscaleCommand {
    /// Register or replace an app's autoscaling policy (PUT /api/v1/autoscalers/{id}).
    ///
    /// Either a policy file (JSON: `{min, max, metrics, mode, behavior}`), or flags: at
    /// least one of --cpu, --mem, --rps, --p95 with --max. Invalid policies are refused
    /// with every problem and its field (exit code 4).
    Set {
        /// App id.
        id: String,
        /// Policy (JSON); `-` reads standard input.
        #[arg(short, long, value_name = "FILE", conflicts_with_all = ["min", "max", "cpu", "mem", "rps", "p95", "mode", "preset"])]
        file: Option<PathBuf>,
        /// Fewest instances (default 1).
        #[arg(long)]
        min: Option<u32>,
        /// Most instances.
        #[arg(long)]
        max: Option<u32>,
        /// Target CPU use in % of the app's `cpus`.
        #[arg(long, value_name = "PERCENT")]
        cpu: Option<f64>,
        /// Target memory use in % of the app's `mem`.
        #[arg(long, value_name = "PERCENT")]
        mem: Option<f64>,
        /// Target requests per second per instance (counted by the proxy).
        #[arg(long, value_name = "RPS")]
        rps: Option<f64>,
        /// Target p95 latency in ms.
        #[arg(long, value_name = "MS")]
        p95: Option<f64>,
        /// `any` (the highest recommendation wins) or `all` (every metric must agree).
        #[arg(long)]
        mode: Option<String>,
        /// Behavior preset: `hpa` (Kubernetes HPA's default timing).
        #[arg(long)]
        preset: Option<String>,
    },
    /// Show an app's policy, whether the autoscaler may act there, and its last decision.
    Show {
        /// App id.
        id: String,
    },
    /// List every app with a policy (registered or from labels).
    List,
    /// Remove an app's registered policy.
    Delete {
        /// App id.
        id: String,
    },
    /// The app's decisions, newest first, one line each.
    History {
        /// App id.
        id: String,
        /// At most this many.
        #[arg(long, default_value_t = 20)]
        limit: u32,
        /// Only decisions that changed the instance count.
        #[arg(long)]
        changes: bool,
    },
}

/// Runs `slipway autoscale ...`.
pub(crate) async fn autoscale(args: AutoscaleArgs) -> ExitCode {
    let output = args.opts.output;
    let result = match Client::new(&args.opts) {
        Ok(client) => run(&client, output, args.command).await,
        Err(e) => Err(e),
    };
    error::finish(result).into()
}

fn path_of(id: &str) -> String {
    format!("/api/v1/autoscalers/{}", id.trim_start_matches('/'))
}

async fn run(client: &Client, output: Output, cmd: AutoscaleCommand) -> anyhow::Result<Exit> {
    let v = match cmd {
        AutoscaleCommand::Set {
            id,
            file,
            min,
            max,
            cpu,
            mem,
            rps,
            p95,
            mode,
            preset,
        } => {
            let body: Value = match file {
                Some(f) => {
                    let bytes = read_input(&f).await?;
                    serde_json::from_slice(&bytes).map_err(|e| {
                        error::coded(Exit::Invalid, format!("{}: not JSON: {e}", f.display()))
                    })?
                }
                None => {
                    let mut metrics = Vec::new();
                    let pairs = [
                        ("cpu", cpu),
                        ("memory", mem),
                        ("rps", rps),
                        ("latencyP95", p95),
                    ];
                    for (kind, target) in pairs {
                        if let Some(t) = target {
                            metrics.push(json!({"type": kind, "target": t}));
                        }
                    }
                    let mut m = Map::new();
                    if let Some(n) = min {
                        m.insert("min".into(), json!(n));
                    }
                    if let Some(n) = max {
                        m.insert("max".into(), json!(n));
                    }
                    m.insert("metrics".into(), json!(metrics));
                    if let Some(mode) = mode {
                        m.insert("mode".into(), json!(mode));
                    }
                    if let Some(p) = preset {
                        m.insert("behavior".into(), json!({"preset": p}));
                    }
                    Value::Object(m)
                }
            };
            client
                .json(client.request(Method::PUT, &path_of(&id)).json(&body))
                .await?
        }
        AutoscaleCommand::Show { id } => client.get(&path_of(&id), &[]).await?,
        AutoscaleCommand::List => client.get("/api/v1/autoscalers", &[]).await?,
        AutoscaleCommand::Delete { id } => {
            client
                .json(client.request(Method::DELETE, &path_of(&id)))
                .await?
        }
        AutoscaleCommand::History { id, limit, changes } => {
            let limit = limit.to_string();
            let mut q = vec![("limit", limit.as_str())];
            if changes {
                q.push(("changes", "true"));
            }
            let v = client
                .get(&format!("{}/decisions", path_of(&id)), &q)
                .await?;
            if output == Output::Json {
                println!("{}", serde_json::to_string_pretty(&v)?);
                return Ok(Exit::Success);
            }
            println!(
                "decisions of {}, newest first:",
                v["appId"].as_str().unwrap_or("-")
            );
            for d in v["decisions"].as_array().into_iter().flatten() {
                println!(
                    "{}  {}",
                    d["decision"]["at"].as_str().unwrap_or("-"),
                    d["summary"].as_str().unwrap_or("-")
                );
            }
            return Ok(Exit::Success);
        }
    };
    if output == Output::Json {
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(Exit::Success);
    }
    print_text(&v);
    Ok(Exit::Success)
}

fn print_text(v: &Value) {
    let one = |a: &Value| {
        let p = &a["policy"];
        let metrics: Vec<String> = p["metrics"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|m| format!("{}={}", m["type"].as_str().unwrap_or("?"), m["target"]))
            .collect();
        println!(
            "{}  {}..{}  {}  mode {}  source {}  instances {}  {}",
            a["appId"].as_str().unwrap_or("-"),
            p["min"],
            p["max"],
            metrics.join(","),
            p["mode"].as_str().unwrap_or("any"),
            a["source"].as_str().unwrap_or("-"),
            a["instances"],
            if a["enabled"] == true {
                "enabled".to_string()
            } else {
                format!(
                    "NOT ENABLED: {}",
                    a["disabledReason"].as_str().unwrap_or("")
                )
            }
        );
        if let Some(s) = a["lastDecision"]["summary"].as_str() {
            println!("  last decision: {s}");
        }
    };
    if let Some(list) = v["autoscalers"].as_array() {
        list.iter().for_each(one);
    } else if v["deleted"] == true {
        println!(
            "deleted the autoscaler of {}",
            v["appId"].as_str().unwrap_or("-")
        );
    } else {
        one(v);
    }
}
