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
    let (mut shell, mut ours, mut first) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..runs {
        let t = Instant::now();
        let status = std::process::Command::new("sh")
            .arg(&script)
            .status()
            .context("cannot run sh")?;
        anyhow::ensure!(status.success(), "the shell script failed");
        shell.push(t.elapsed());

        let spec = RunSpec {
            pipeline: pipeline.clone(),
            workspace: dir.path().to_path_buf(),
            values: Values::default(),
            branch: "dev".into(),
            event: "manual".into(),
            max_parallel: 4,
            done: Default::default(),
        };
        let observer = Arc::new(FirstStart(Mutex::new(None)));
        let t = Instant::now();
        let result = rt.block_on(pipeline::execute(
            spec,
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
        "| Slipway pipeline executor | {:.1} ms |",
        us.as_secs_f64() * 1000.0
    );
    println!("| overhead per step | {per_step:.2} ms (target ≤ 2 ms) |");
    println!(
        "| run start to first step start (executor only) | {:.2} ms |",
        fs.as_secs_f64() * 1000.0
    );
    Ok(())
}
