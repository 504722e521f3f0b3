//! Per-step overhead of the pipeline executor against the same commands in a plain shell
//! script, and the time from starting a run to its first step.

use anyhow::Context;
use pipeline::{Observer, OtherSteps, Outputs, RunSpec, StepContext, StepState, Stream, Values};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Remembers when the first step started.
struct FirstStart(Mutex<Option<Instant>>);

impl Observer for FirstStart {
    fn step_started(&self, _step: &str, _attempt: u32) {
        let mut first = self.0.lock().unwrap_or_else(|e| e.into_inner());
        first.get_or_insert_with(Instant::now);
    }
    fn step_finished(&self, _step: &str, _state: &StepState) {}
    fn log(&self, _step: &str, _stream: Stream, _line: String) {}
}

struct NoOther;

impl OtherSteps for NoOther {
    fn run(
        &self,
        step: &model::pipeline::Step,
        _cx: StepContext,
    ) -> futures_util::future::BoxFuture<'static, Result<Outputs, String>> {
        let name = step.name.clone();
        Box::pin(async move { Err(format!("{name}: not a run step")) })
    }
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .and_then(|l| l.split_whitespace().nth(2))
        == Some("0")
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// The benchmark.
pub(crate) fn pipeline_vs_shell(steps: usize, runs: usize) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    // The same external command in both: `/bin/true` (a builtin `true` would not fork).
    let script = dir.path().join("steps.sh");
    let mut text = String::from("set -e\n");
    for _ in 0..steps {
        text.push_str("/bin/true\n");
    }
    std::fs::write(&script, text)?;
    let mut yaml = String::from("version: 1\nname: bench\nsteps:\n");
    for i in 0..steps {
        let _ = write!(yaml, "  s{i}:\n    run: /bin/true\n");
        if i > 0 {
            let _ = writeln!(yaml, "    needs: [s{}]", i - 1);
        }
    }
    let pipeline = model::pipeline::parse_pipeline(&yaml).map_err(|e| anyhow::anyhow!("{e}"))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    // As root, the server runs steps as a uid of their own (setpriv, and unshare when
    // root's home is covered): measured as a third column.
    let unprivileged = is_root().then(|| {
        let home = dir.path().join("home");
        let _ = std::fs::create_dir_all(&home);
        let _ = std::os::unix::fs::chown(&home, Some(65534), Some(65534));
        pipeline::step_user::StepUser {
            uid: 65534,
            gid: 65534,
            home,
            view: Arc::new(pipeline::step_user::View::of_server(dir.path())),
        }
    });
    let (mut shell, mut ours, mut first, mut apart) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let spec = |run_as| RunSpec {
        pipeline: pipeline.clone(),
        workspace: dir.path().to_path_buf(),
        values: Values::default(),
        branch: "dev".into(),
        event: "manual".into(),
        max_parallel: 4,
        done: Default::default(),
        run_as,
    };
    for _ in 0..runs {
        let t = Instant::now();
        let status = std::process::Command::new("sh")
            .arg(&script)
            .status()
            .context("cannot run sh")?;
        anyhow::ensure!(status.success(), "the shell script failed");
        shell.push(t.elapsed());

        let observer = Arc::new(FirstStart(Mutex::new(None)));
        let t = Instant::now();
        let result = rt.block_on(pipeline::execute(
            spec(None),
            observer.clone(),
            Arc::new(NoOther),
            Default::default(),
        ));
        ours.push(t.elapsed());
        anyhow::ensure!(result.succeeded(), "the pipeline failed: {result:?}");
        let started = observer
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .unwrap_or(t);
        first.push(started - t);

        if let Some(user) = &unprivileged {
            let t = Instant::now();
            let result = rt.block_on(pipeline::execute(
                spec(Some(user.clone())),
                Arc::new(FirstStart(Mutex::new(None))),
                Arc::new(NoOther),
                Default::default(),
            ));
            apart.push(t.elapsed());
            anyhow::ensure!(
                result.succeeded(),
                "the unprivileged run failed: {result:?}"
            );
        }
    }
    let (sh, us, fs) = (median(shell), median(ours), median(first));
    let per_step = us.saturating_sub(sh).as_secs_f64() * 1000.0 / steps as f64;
    println!("| {steps} sequential steps of `/bin/true`, median of {runs} | time |");
    println!("|---|---|");
    println!(
        "| plain shell script | {:.1} ms |",
        sh.as_secs_f64() * 1000.0
    );
    println!(
        "| Slipway pipeline executor (steps as the server) | {:.1} ms |",
        us.as_secs_f64() * 1000.0
    );
    println!("| overhead per step | {per_step:.2} ms (target ≤ 2 ms) |");
    if !apart.is_empty() {
        let ap = median(apart);
        let per = ap.saturating_sub(sh).as_secs_f64() * 1000.0 / steps as f64;
        println!(
            "| Slipway pipeline executor, steps as their own uid{} | {:.1} ms |",
            if unprivileged
                .as_ref()
                .is_some_and(|u| u.view.shadow.is_some())
            {
                " behind a covered home (setpriv + unshare + mounts)"
            } else {
                " (setpriv)"
            },
            ap.as_secs_f64() * 1000.0
        );
        println!("| overhead per unprivileged step | {per:.2} ms |");
    }
    println!(
        "| run start to first step start (executor only) | {:.2} ms |",
        fs.as_secs_f64() * 1000.0
    );
    Ok(())
}

/// Time from `POST /api/v1/pipelines/NAME/runs` to the first step's command running,
/// through a real `slipway up` (store write, queue, `git clone` of a local repository,
/// parse, spawn), median of `runs`.
pub(crate) fn trigger_to_first_step(bin: &std::path::Path, runs: usize) -> anyhow::Result<()> {
    use testkit::{get_json, http, http_get, wait_for};
    let dir = tempfile::tempdir()?;
    let repo = dir.path().join("repo");
    std::fs::create_dir_all(repo.join(".slipway"))?;
    // The step reports when it ran as an output (steps run as a uid of their own, which
    // cannot write into this process's directories).
    std::fs::write(
        repo.join(".slipway/pipeline.yaml"),
        "version: 1\nname: t\nsteps:\n  first: { run: 'echo at=$(date +%s%N) >> \"$SLIPWAY_OUTPUT\"' }\n",
    )?;
    for args in [
        vec!["init", "-q", "-b", "dev"],
        vec!["add", "."],
        vec![
            "-c",
            "user.name=b",
            "-c",
            "user.email=b@example.invalid",
            "commit",
            "-q",
            "-m",
            "x",
        ],
    ] {
        let ok = std::process::Command::new("git")
            .args(&args)
            .current_dir(&repo)
            .status()?
            .success();
        anyhow::ensure!(ok, "git {args:?} failed");
    }
    let api = testkit::free_port();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data)?;
    let mut server = std::process::Command::new(bin)
        .args(["up", "--listen", &format!("127.0.0.1:{api}"), "--data-dir"])
        .arg(&data)
        .args(["--proxy", "off"])
        .env("SLIPWAY_LOG", "warn")
        .env("SLIPWAY_ADMIN_TOKEN", testkit::ADMIN_TOKEN)
        .stderr(std::fs::File::create(dir.path().join("server.log"))?)
        .spawn()?;
    let url = format!("http://127.0.0.1:{api}");
    let result = (|| -> anyhow::Result<()> {
        wait_for("slipway", Duration::from_secs(30), || {
            http_get(&format!("{url}/ping")).ok().map(|_| ())
        })?;
        let (status, body) = http(
            "PUT",
            &format!("{url}/api/v1/pipelines/t"),
            Some(&serde_json::json!({"repo": repo.to_string_lossy(), "branch": "dev"})),
        )?;
        anyhow::ensure!(status == 200, "register: {status} {body}");
        let mut delays = Vec::new();
        for _ in 0..runs {
            let before = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?;
            let (status, body) = http("POST", &format!("{url}/api/v1/pipelines/t/runs"), None)?;
            anyhow::ensure!(status == 201, "run: {status} {body}");
            let v: serde_json::Value = serde_json::from_str(&body)?;
            let id = v["id"].as_str().unwrap_or_default().to_string();
            let run = wait_for("the run to end", Duration::from_secs(30), || {
                let r = get_json(&format!("{url}/api/v1/runs/{id}")).ok()?;
                (r["status"] == "succeeded").then_some(r)
            })?;
            let ns: u128 = run["steps"][0]["outputs"]["at"]
                .as_str()
                .context("the step's `at` output")?
                .trim()
                .parse()?;
            delays.push(Duration::from_nanos(u64::try_from(
                ns.saturating_sub(before.as_nanos()),
            )?));
        }
        let med = median(delays.clone());
        println!(
            "| trigger (POST …/runs) to the first step's command, median of {runs} | {:.1} ms (target ≤ 50 ms) |",
            med.as_secs_f64() * 1000.0
        );
        println!(
            "| fastest / slowest | {:.1} / {:.1} ms |",
            delays.iter().min().unwrap_or(&med).as_secs_f64() * 1000.0,
            delays.iter().max().unwrap_or(&med).as_secs_f64() * 1000.0
        );
        Ok(())
    })();
    let _ = server.kill();
    let _ = server.wait();
    result
}
