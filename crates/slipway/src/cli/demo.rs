//! `slipway demo`: the README's main job. It sets up the bundled example as git
//! repositories (the service on `dev` and `master`, ops' deploy configuration beside it),
//! starts `slipway up` on embedded defaults, registers the example's pipeline and release
//! job, pushes the first commit through build, analysis, image, QA and tests, stops at
//! the approval "Do tests OK?" and says how to go on. Without Docker it runs the same flow
//! with process apps, and says so.

use anyhow::{Context, bail};
use clap::Args;
use reqwest::Method;
use serde_json::json;
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};

use super::client::{Auth, Client};
use super::creds;
use super::error::{Exit, coded};

/// The example, embedded so the binary alone can set it up: (repository, path, text).
const FILES: &[(&str, &str, &str)] = &[
    (
        "orders",
        "Cargo.toml",
        include_str!("../../../../examples/orders/Cargo.toml"),
    ),
    (
        "orders",
        "Cargo.lock",
        include_str!("../../../../examples/orders/Cargo.lock"),
    ),
    (
        "orders",
        ".gitignore",
        include_str!("../../../../examples/orders/.gitignore"),
    ),
    (
        "orders",
        "README.md",
        include_str!("../../../../examples/orders/README.md"),
    ),
    (
        "orders",
        "src/lib.rs",
        include_str!("../../../../examples/orders/src/lib.rs"),
    ),
    (
        "orders",
        "src/main.rs",
        include_str!("../../../../examples/orders/src/main.rs"),
    ),
    (
        "orders",
        "src/bin/orders-smoke.rs",
        include_str!("../../../../examples/orders/src/bin/orders-smoke.rs"),
    ),
    (
        "orders",
        "docker/Dockerfile",
        include_str!("../../../../examples/orders/docker/Dockerfile"),
    ),
    (
        "orders",
        "docker/Dockerfile.tests",
        include_str!("../../../../examples/orders/docker/Dockerfile.tests"),
    ),
    (
        "orders",
        ".slipway/pipeline.yaml",
        include_str!("../../../../examples/orders/.slipway/pipeline.yaml"),
    ),
    (
        "orders",
        ".slipway/pipeline-process.yaml",
        include_str!("../../../../examples/orders/.slipway/pipeline-process.yaml"),
    ),
    (
        "orders",
        ".slipway/release.yaml",
        include_str!("../../../../examples/orders/.slipway/release.yaml"),
    ),
    (
        "orders-deploy",
        "README.md",
        include_str!("../../../../examples/orders-deploy/README.md"),
    ),
    (
        "orders-deploy",
        "orders/app.json",
        include_str!("../../../../examples/orders-deploy/orders/app.json"),
    ),
    (
        "orders-deploy",
        "orders/qa.json",
        include_str!("../../../../examples/orders-deploy/orders/qa.json"),
    ),
    (
        "orders-deploy",
        "orders/yz.json",
        include_str!("../../../../examples/orders-deploy/orders/yz.json"),
    ),
    (
        "orders-deploy",
        "orders/prod.json",
        include_str!("../../../../examples/orders-deploy/orders/prod.json"),
    ),
    (
        "orders-deploy",
        "orders/process/app.json",
        include_str!("../../../../examples/orders-deploy/orders/process/app.json"),
    ),
    (
        "orders-deploy",
        "orders/process/qa.json",
        include_str!("../../../../examples/orders-deploy/orders/process/qa.json"),
    ),
    (
        "orders-deploy",
        "orders/process/prod.json",
        include_str!("../../../../examples/orders-deploy/orders/process/prod.json"),
    ),
];

/// The registry the example pushes to (Debian's `docker-registry`).
const REGISTRY: &str = "127.0.0.1:5000";

/// `slipway demo`.
#[derive(Args, Debug)]
pub(crate) struct DemoArgs {
    /// Where the example's repositories, the server's data and its log go; kept, so a
    /// second `slipway demo` carries on where the first stopped.
    #[arg(long, default_value = "slipway-demo")]
    dir: PathBuf,
    /// Address of the server's API.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: String,
    /// Address of the edge proxy's HTTP vhost listener.
    #[arg(long, default_value = "127.0.0.1:8000")]
    vhost_listen: String,
    /// `auto`: containers when Docker and a registry on 127.0.0.1:5000 are there (a
    /// missing registry is started from Debian's docker-registry when installed); `off`:
    /// process apps.
    #[arg(long, value_enum, default_value_t = DemoDocker::Auto)]
    docker: DemoDocker,
    /// Stop the server and exit once the run waits for approval (or ends), instead of
    /// serving until Ctrl-C.
    #[arg(long)]
    exit_at_approval: bool,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum DemoDocker {
    Auto,
    Off,
}

/// Runs `slipway demo`.
pub(crate) async fn run(args: DemoArgs) -> ExitCode {
    match demo(args).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            super::error::exit_code(&e).into()
        }
    }
}

fn say(line: &str) {
    println!("{line}");
}

/// How to run this binary in the commands the demo prints: `slipway` when that name on
/// `PATH` is this binary, else its absolute path (after `cargo run`, `slipway` is not on
/// `PATH`), quoted for a POSIX shell when it needs quoting.
fn command_name() -> String {
    let Ok(exe) = std::env::current_exe().and_then(|p| p.canonicalize()) else {
        return "slipway".to_string();
    };
    let on_path = std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| {
            dir.join("slipway")
                .canonicalize()
                .is_ok_and(|found| found == exe)
        })
    });
    if on_path {
        return "slipway".to_string();
    }
    shell_word(&exe.to_string_lossy())
}

/// `word` as one POSIX shell word: unchanged when it has only safe characters, else in
/// single quotes.
fn shell_word(word: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "/._-+:@%=,".contains(c);
    if !word.is_empty() && word.chars().all(safe) {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

async fn demo(args: DemoArgs) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("cannot create {}", args.dir.display()))?;
    let dir = args
        .dir
        .canonicalize()
        .with_context(|| format!("cannot resolve {}", args.dir.display()))?;
    say(&format!("Slipway demo in {}", dir.display()));

    // 1. Containers or processes.
    let containers = args.docker == DemoDocker::Auto && containers_available(&dir).await?;
    let flow_file = if containers {
        say(&format!(
            "  Docker: yes, registry {REGISTRY}: the service ships as a FROM-scratch image"
        ));
        ".slipway/pipeline.yaml"
    } else {
        say(
            "  Docker: not used, so the service runs as process apps (same flow, the binary \
             instead of an image; `--docker auto` with dockerd and a registry on 127.0.0.1:5000 \
             for containers)",
        );
        ".slipway/pipeline-process.yaml"
    };

    // 2. The repositories.
    let git_dir = dir.join("git");
    let origin = git_dir.join("orders.git");
    if origin.exists() {
        say(&format!(
            "  repositories: kept from before in {}",
            git_dir.display()
        ));
    } else {
        create_repositories(&dir).await?;
        say(&format!(
            "  repositories: {} (dev, master) and {} (ops' app definitions); your clone: {}",
            origin.display(),
            git_dir.join("orders-deploy.git").display(),
            dir.join("work/orders").display()
        ));
    }

    // 3. The server.
    let token = admin_token(&dir)?;
    let url = format!("http://{}", args.listen);
    let mut server = start_server(&dir, &args, &token)?;
    let admin = Client::with_auth(&url, Auth::FlagToken(token.clone()))?;
    wait_ready(&admin, &mut server).await?;
    say(&format!(
        "  server: {url} (log: {}), edge proxy vhosts on http://{}",
        dir.join("server.log").display(),
        args.vhost_listen
    ));
    login(&admin, &url).await?;
    let people = ensure_users(&admin, &dir).await?;

    // 4. Pipelines.
    let repo = origin.to_string_lossy().to_string();
    for (name, file) in [
        ("orders", flow_file),
        ("orders-release", ".slipway/release.yaml"),
    ] {
        admin
            .json(
                admin
                    .request(Method::PUT, &format!("/api/v1/pipelines/{name}"))
                    .json(&json!({"repo": repo, "branch": "dev", "file": file})),
            )
            .await
            .with_context(|| format!("cannot register the pipeline {name}"))?;
    }
    say("  pipelines: orders (every push to dev) and orders-release (by hand)");

    // 5. The first commit's run (a push webhook, as the git server would send), pushed by
    // the developer: prod's approval must come from someone else (four eyes), so the admin
    // may approve it.
    let developer_token = std::fs::read_to_string(&people.developer_token)
        .with_context(|| format!("cannot read {}", people.developer_token.display()))?;
    let developer = Client::with_auth(&url, Auth::FlagToken(developer_token.trim().to_string()))?;
    let runs = admin
        .get("/api/v1/runs", &[("pipeline", "orders"), ("limit", "1")])
        .await?;
    let run = match runs["runs"].as_array().and_then(|r| r.first()) {
        Some(r) => {
            say(&format!(
                "  carrying on with run #{} ({})",
                r["number"],
                r["status"].as_str().unwrap_or("")
            ));
            r.clone()
        }
        None => developer
            .json(
                developer
                    .request(Method::POST, "/api/v1/pipelines/orders/hooks/push")
                    .json(&json!({"ref": "refs/heads/dev"})),
            )
            .await
            .context("cannot start the first run")?,
    };
    let id = run["id"].as_str().unwrap_or("").to_string();
    let sw = command_name();
    say("");
    say(&format!(
        "Run #{} of orders (commit on dev), step by step:",
        run["number"]
    ));
    let end = follow_to_approval(&admin, &id, &mut server).await?;
    say("");
    if sw != "slipway" {
        say(
            "(`slipway` is not on your PATH: the commands below name this binary. \
             `cargo install --path crates/slipway` installs it as `slipway`.)",
        );
    }
    if url != "http://127.0.0.1:8080" {
        say(&format!(
            "(The commands below talk to {url}: first `export SLIPWAY_URL={url}`.)"
        ));
    }
    match end.as_str() {
        "waiting" => {
            let qa = if containers {
                "http://127.0.0.1:10101/".to_string()
            } else {
                "http://127.0.0.1:10101/ (a process app)".to_string()
            };
            say(&format!(
                "The change is built, tested and running in QA: {qa}"
            ));
            say(
                "It waits for the approval \"Do tests OK?\". Approve it as admin (you are logged in):",
            );
            say(&format!("    {sw} runs approve {id} qa-signoff"));
            say("A developer may not (403):");
            say(&format!(
                "    SLIPWAY_TOKEN=$(cat {}) {sw} runs approve {id} qa-signoff",
                people.developer_token.display()
            ));
            say(&format!(
                "The approver of prod is a deployer ({}, token in {}) or admin.",
                people.deployer,
                people.deployer_token.display()
            ));
            say(&format!(
                "Then prod runs {} QA tested: curl -H 'Host: orders.prod.aa.localhost' http://{}/",
                if containers {
                    "the image digest"
                } else {
                    "the binary"
                },
                args.vhost_listen
            ));
            say(&format!(
                "Commit to dev in {} and `git push`: the next run starts within 5 s.",
                dir.join("work/orders").display()
            ));
            if containers {
                say("After the approval, release that digest as 1.0.0 to datacenter BB's prod:");
                say(&format!(
                    "    {sw} pipelines run orders-release -p ReleaseVersion=1.0.0 -p DeployDC=BB -p DeployEnv=prod --follow",
                ));
            }
            say(&format!(
                "Roll an app back to its previous version (prod asks you to confirm): {sw} apps rollback /AA/prod/orders"
            ));
            say(&format!(
                "Who approved, released and rolled back what: {sw} audit --app /AA/prod/orders"
            ));
        }
        other => say(&format!(
            "Run {id} ended {other}: see `{sw} runs show {id}`"
        )),
    }
    if args.exit_at_approval {
        stop(&mut server);
        return Ok(if end == "waiting" || end == "succeeded" {
            ExitCode::SUCCESS
        } else {
            Exit::Failed.into()
        });
    }
    say("");
    say(
        "Slipway keeps serving; Ctrl-C stops it (apps keep running and are adopted on the next start).",
    );
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        status = wait_child(&mut server) => {
            bail!("the server stopped ({status}); see {}", dir.join("server.log").display());
        }
    }
    stop(&mut server);
    Ok(ExitCode::SUCCESS)
}

/// Whether containers can be used: dockerd answers, and a registry listens on
/// 127.0.0.1:5000 (started from Debian's `docker-registry` when it is installed but
/// not running).
async fn containers_available(dir: &Path) -> anyhow::Result<bool> {
    let docker = match docker::Docker::connect(docker::DockerConfig::default()).await {
        Ok(d) => d.ping().await.is_ok(),
        Err(_) => false,
    };
    if !docker {
        return Ok(false);
    }
    if registry_up().await {
        return Ok(true);
    }
    let Some(bin) = which("docker-registry") else {
        say(&format!(
            "  no registry on {REGISTRY} and no docker-registry installed (apt-get install docker-registry)"
        ));
        return Ok(false);
    };
    let root = dir.join("registry");
    std::fs::create_dir_all(root.join("data"))?;
    let config = root.join("config.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {REGISTRY}\n",
            root.join("data").display()
        ),
    )?;
    let log = std::fs::File::create(root.join("registry.log"))?;
    std::process::Command::new(bin)
        .arg("serve")
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0)
        .spawn()
        .context("cannot start docker-registry")?;
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if registry_up().await {
            say(&format!(
                "  started docker-registry on {REGISTRY} (data in {})",
                root.display()
            ));
            return Ok(true);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    say("  docker-registry did not come up");
    Ok(false)
}

async fn registry_up() -> bool {
    reqwest::Client::new()
        .get(format!("http://{REGISTRY}/v2/"))
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success() || r.status() == 401)
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_string_lossy()
        .split(':')
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

/// git in `cwd` with the demo's identity (commits work where git has none configured).
async fn git(args: &[&str], cwd: &Path) -> anyhow::Result<()> {
    let mut all = vec![
        "-c",
        "user.name=Slipway demo",
        "-c",
        "user.email=demo@slipway.localhost",
        "-c",
        "init.defaultBranch=master",
    ];
    all.extend_from_slice(args);
    pipeline::repos::git(&all, Some(cwd), None, cwd)
        .await
        .map(drop)
        .map_err(anyhow::Error::msg)
}

/// Bare repositories `git/orders.git` (branches master and dev) and
/// `git/orders-deploy.git` (master), and working clones under `work/`.
async fn create_repositories(dir: &Path) -> anyhow::Result<()> {
    let git_dir = dir.join("git");
    let work = dir.join("work");
    for repo in ["orders", "orders-deploy"] {
        let bare = git_dir.join(format!("{repo}.git"));
        let tree = work.join(repo);
        let _ = std::fs::remove_dir_all(&bare);
        let _ = std::fs::remove_dir_all(&tree);
        std::fs::create_dir_all(&bare)?;
        std::fs::create_dir_all(&tree)?;
        git(&["init", "--quiet", "--bare"], &bare).await?;
        git(&["init", "--quiet"], &tree).await?;
        for (r, path, text) in FILES {
            if *r == repo {
                let file = tree.join(path);
                if let Some(parent) = file.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                std::fs::write(&file, text)?;
            }
        }
        git(&["add", "-A"], &tree).await?;
        git(
            &[
                "commit",
                "--quiet",
                "-m",
                &format!("{repo}: the Slipway example"),
            ],
            &tree,
        )
        .await?;
        // Commits made in the clone need an identity even where git has none configured.
        git(&["config", "user.name", "Slipway demo"], &tree).await?;
        git(&["config", "user.email", "demo@slipway.localhost"], &tree).await?;
        let bare_path = bare.to_string_lossy().to_string();
        git(&["remote", "add", "origin", &bare_path], &tree).await?;
        git(&["push", "--quiet", "origin", "master"], &tree).await?;
        if repo == "orders" {
            // The team commits to dev; master follows releases (the seed's git flow).
            git(&["checkout", "--quiet", "-b", "dev"], &tree).await?;
            git(&["push", "--quiet", "-u", "origin", "dev"], &tree).await?;
        }
    }
    Ok(())
}

/// The demo server's admin token, created once (mode 0600) in the demo directory.
fn admin_token(dir: &Path) -> anyhow::Result<String> {
    let path = dir.join("admin.token");
    if let Ok(t) = std::fs::read_to_string(&path)
        && !t.trim().is_empty()
    {
        return Ok(t.trim().to_string());
    }
    let token = format!("slw_demo_{}", uuid::Uuid::new_v4().simple());
    write_private(&path, &token)?;
    Ok(token)
}

fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, format!("{text}\n"))
        .with_context(|| format!("cannot write {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(())
}

fn start_server(dir: &Path, args: &DemoArgs, token: &str) -> anyhow::Result<std::process::Child> {
    let exe = std::env::current_exe().context("cannot find the slipway binary")?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("server.log"))?;
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("up")
        .arg("--listen")
        .arg(&args.listen)
        .arg("--data-dir")
        .arg(dir.join("data"))
        .arg("--proxy-vhost-listen")
        .arg(&args.vhost_listen)
        .env("SLIPWAY_ADMIN_TOKEN", token)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    if args.docker == DemoDocker::Off {
        cmd.arg("--docker").arg("off");
    }
    cmd.spawn().context("cannot start `slipway up`")
}

async fn wait_ready(admin: &Client, server: &mut std::process::Child) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Some(status) = server.try_wait()? {
            bail!(
                "`slipway up` exited ({status}) — is {} already in use? (--listen, --vhost-listen)",
                admin.base()
            );
        }
        if admin.get("/api/v1/whoami", &[]).await.is_ok() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(coded(Exit::Server, "the server did not answer within 60 s"))
}

/// Stores an API token for the demo server, as `slipway login` would, so the CLI
/// commands the demo prints work as admin.
async fn login(admin: &Client, url: &str) -> anyhow::Result<()> {
    let Some(path) = creds::default_path() else {
        return Ok(());
    };
    let mut file = creds::load(&path)?;
    let base = creds::normalize_server(url).map_err(anyhow::Error::msg)?;
    if let Some(entry) = file.servers.get(&base) {
        let mine = Client::with_auth(&base, Auth::FlagToken(entry.token.clone()))?;
        if mine.get("/api/v1/whoami", &[]).await.is_ok() {
            return Ok(());
        }
    }
    let v = admin
        .json(
            admin
                .request(Method::POST, "/api/v1/tokens")
                .json(&json!({"name": format!("slipway-demo@{}", super::prompt::hostname())})),
        )
        .await
        .context("cannot create a token for the CLI")?;
    file.servers.insert(
        base,
        creds::ServerEntry {
            user: "admin".into(),
            token: v["token"].as_str().unwrap_or("").to_string(),
            token_id: v["id"].as_str().map(str::to_string),
        },
    );
    creds::save(&path, &file)?;
    say(&format!(
        "  the CLI is logged in as admin for {url} ({})",
        path.display()
    ));
    Ok(())
}

/// The demo's people: a developer and a deployer, with tokens in the demo directory.
struct People {
    developer_token: PathBuf,
    deployer: String,
    deployer_token: PathBuf,
}

async fn ensure_users(admin: &Client, dir: &Path) -> anyhow::Result<People> {
    let mut paths = Vec::new();
    let mut signins = Vec::new();
    for (user, role) in [("dana", "developer"), ("lee", "deployer")] {
        let path = dir.join(format!("{user}.token"));
        let pw_path = dir.join(format!("{user}.password"));
        paths.push(path.clone());
        if path.exists()
            && let Ok(pw) = std::fs::read_to_string(&pw_path)
        {
            signins.push((user, role, pw.trim().to_string()));
            continue;
        }
        let password = uuid::Uuid::new_v4().simple().to_string();
        let created = admin
            .send(
                admin
                    .request(Method::POST, "/api/v1/users")
                    .json(&json!({"name": user, "role": role, "password": password})),
            )
            .await;
        if let Err(e) = created {
            let exists = e
                .downcast_ref::<super::error::ApiError>()
                .is_some_and(|a| a.status == 409);
            if !exists {
                return Err(e.context(format!("cannot create the user {user}")));
            }
            // Made by an earlier demo whose token or password file is gone: a new password.
            admin
                .send(
                    admin
                        .request(Method::PUT, &format!("/api/v1/users/{user}"))
                        .json(&json!({"password": password})),
                )
                .await?;
        }
        let me = Client::with_auth(admin.base(), Auth::Basic(user.into(), password.clone()))?;
        let v = me
            .json(
                me.request(Method::POST, "/api/v1/tokens")
                    .json(&json!({"name": "slipway-demo"})),
            )
            .await
            .with_context(|| format!("cannot create a token for {user}"))?;
        write_private(&path, v["token"].as_str().unwrap_or(""))?;
        // Kept (0600, in the demo directory) so the web console can be signed in to later.
        write_private(&pw_path, &password)?;
        signins.push((user, role, password));
    }
    say("  users: dana (developer) and lee (deployer), tokens in dana.token and lee.token");
    say(&format!(
        "  web console: {}/ui/ (approve the release there as lee)",
        admin.base().trim_end_matches('/')
    ));
    for (user, role, pw) in &signins {
        say(&format!("    sign in as {user} ({role}), password {pw}"));
    }
    Ok(People {
        developer_token: paths[0].clone(),
        deployer: "lee".into(),
        deployer_token: paths[1].clone(),
    })
}

/// Follows a run, one line per step change, until an approval waits or the run ends;
/// returns `waiting` or the run's final status.
async fn follow_to_approval(
    admin: &Client,
    id: &str,
    server: &mut std::process::Child,
) -> anyhow::Result<String> {
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template("  [{bar:30}] {pos}/{len} steps, {elapsed} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let started = Instant::now();
    let mut seen: std::collections::BTreeMap<String, String> = Default::default();
    loop {
        if let Some(status) = server.try_wait()? {
            bar.finish_and_clear();
            bail!("the server stopped ({status})");
        }
        let run = admin.get(&format!("/api/v1/runs/{id}"), &[]).await?;
        let steps = run["steps"].as_array().cloned().unwrap_or_default();
        bar.set_length(steps.len() as u64);
        let mut finished = 0;
        let mut running = Vec::new();
        let mut waiting = false;
        for s in &steps {
            let name = s["name"].as_str().unwrap_or("").to_string();
            let status = s["status"].as_str().unwrap_or("").to_string();
            if matches!(
                status.as_str(),
                "succeeded" | "skipped" | "failed" | "not_run" | "cancelled"
            ) {
                finished += 1;
            }
            if status == "running" {
                running.push(name.clone());
            }
            waiting |= status == "waiting";
            if seen.get(&name) != Some(&status) && status != "pending" {
                let reason = s["reason"]
                    .as_str()
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default();
                let line = format!(
                    "  {:>6.1}s  {name}: {status}{reason}",
                    started.elapsed().as_secs_f64()
                );
                if bar.is_hidden() {
                    println!("{line}");
                } else {
                    bar.println(line);
                }
                seen.insert(name, status);
            }
        }
        bar.set_position(finished);
        bar.set_message(running.join(", "));
        let status = run["status"].as_str().unwrap_or("").to_string();
        let busy = !running.is_empty();
        if waiting && !busy {
            bar.finish_and_clear();
            return Ok("waiting".into());
        }
        if !matches!(status.as_str(), "queued" | "running") {
            bar.finish_and_clear();
            return Ok(status);
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

async fn wait_child(server: &mut std::process::Child) -> String {
    loop {
        match server.try_wait() {
            Ok(Some(s)) => return s.to_string(),
            Ok(None) => tokio::time::sleep(Duration::from_millis(500)).await,
            Err(e) => return e.to_string(),
        }
    }
}

/// Stops the server: SIGTERM, then SIGKILL after 15 s.
fn stop(server: &mut std::process::Child) {
    let pid = nix::unistd::Pid::from_raw(server.id() as i32);
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if matches!(server.try_wait(), Ok(Some(_))) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = server.kill();
    let _ = server.wait();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printed_commands_name_a_binary_that_runs() {
        // The test binary is not `slipway` on PATH: the demo names it by its absolute path.
        let cmd = command_name();
        let exe = std::env::current_exe().unwrap().canonicalize().unwrap();
        assert_eq!(cmd, shell_word(&exe.to_string_lossy()));
        assert!(
            std::path::Path::new(cmd.trim_matches('\'')).is_file(),
            "{cmd}"
        );
    }

    #[test]
    fn shell_words_are_quoted_when_needed() {
        assert_eq!(
            shell_word("/work/target/debug/slipway"),
            "/work/target/debug/slipway"
        );
        assert_eq!(shell_word("/my dir/slipway"), "'/my dir/slipway'");
        assert_eq!(shell_word("/it's/slipway"), r"'/it'\''s/slipway'");
    }
}
