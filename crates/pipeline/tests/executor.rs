//! The executor with real processes: parallel and sequential steps, failures that stop
//! dependents, retries, timeouts and cancellation that kill whole process trees, outputs
//! between steps, masked secrets, and re-running from a failed step.

use futures_util::future::BoxFuture;
use model::pipeline::{Step, parse_pipeline};
use pipeline::{
    Observer, OtherSteps, Outputs, RunResult, RunSpec, StepContext, StepState, Stream, Values,
    execute,
};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Ev {
    Started(String, u32),
    Finished(String),
    Log(String, Stream, String),
}

#[derive(Default)]
struct Record(Mutex<Vec<Ev>>);

impl Record {
    fn events(&self) -> Vec<Ev> {
        self.0.lock().unwrap().clone()
    }
    fn logs(&self, step: &str) -> Vec<String> {
        self.events()
            .into_iter()
            .filter_map(|e| match e {
                Ev::Log(s, _, l) if s == step => Some(l),
                _ => None,
            })
            .collect()
    }
    fn position(&self, want: &Ev) -> usize {
        self.events()
            .iter()
            .position(|e| e == want)
            .unwrap_or_else(|| panic!("no {want:?} in {:#?}", self.events()))
    }
}

impl Observer for Record {
    fn step_started(&self, step: &str, attempt: u32) {
        self.0
            .lock()
            .unwrap()
            .push(Ev::Started(step.into(), attempt));
    }
    fn step_finished(&self, step: &str, _state: &StepState) {
        self.0.lock().unwrap().push(Ev::Finished(step.into()));
    }
    fn log(&self, step: &str, stream: Stream, line: String) {
        self.0
            .lock()
            .unwrap()
            .push(Ev::Log(step.into(), stream, line));
    }
}

/// Approvals decided by the test through a channel; other kinds fail.
#[derive(Default)]
struct Approvals(Mutex<Option<tokio::sync::oneshot::Receiver<bool>>>);

impl OtherSteps for Approvals {
    fn run(&self, step: &Step, _cx: StepContext) -> BoxFuture<'static, Result<Outputs, String>> {
        let rx = self.0.lock().unwrap().take();
        let name = step.name.clone();
        Box::pin(async move {
            let Some(rx) = rx else {
                return Err(format!("no handler for {name}"));
            };
            match rx.await {
                Ok(true) => Ok(Outputs::from([("approved_by".into(), "dana".into())])),
                _ => Err("rejected".into()),
            }
        })
    }
}

struct Run {
    dir: tempfile::TempDir,
    record: Arc<Record>,
}

impl std::ops::Deref for Run {
    type Target = Record;
    fn deref(&self) -> &Record {
        &self.record
    }
}

impl Run {
    fn new() -> Run {
        Run {
            dir: tempfile::tempdir().unwrap(),
            record: Arc::new(Record::default()),
        }
    }

    fn spec(&self, yaml: &str) -> RunSpec {
        let pipeline = parse_pipeline(yaml).unwrap_or_else(|e| panic!("{e}"));
        let params = pipeline
            .params
            .iter()
            .filter_map(|(k, p)| Some((k.clone(), p.default.clone()?)))
            .collect();
        RunSpec {
            pipeline,
            workspace: self.dir.path().to_path_buf(),
            values: Values {
                params,
                run: BTreeMap::from([
                    ("sha".into(), "0123abc".into()),
                    ("number".into(), "7".into()),
                ]),
                ..Values::default()
            },
            branch: "dev".into(),
            event: "push".into(),
            max_parallel: 4,
            done: BTreeMap::new(),
            run_as: None,
        }
    }

    async fn go(
        &self,
        spec: RunSpec,
        other: Arc<dyn OtherSteps>,
        cancel: CancellationToken,
    ) -> RunResult {
        tokio::time::timeout(
            Duration::from_secs(60),
            execute(spec, self.record.clone(), other, cancel),
        )
        .await
        .expect("the run ends")
    }

    async fn run(&self, yaml: &str) -> RunResult {
        self.go(
            self.spec(yaml),
            Arc::new(Approvals::default()),
            CancellationToken::new(),
        )
        .await
    }
}

/// True when the process whose pid is in `path` is still alive after a short while
/// (a SIGKILLed process takes a moment to die).
fn pid_alive(path: &std::path::Path) -> bool {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while pid_alive_now(path) {
        if std::time::Instant::now() > deadline {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

fn pid_alive_now(path: &std::path::Path) -> bool {
    let pid: i32 = std::fs::read_to_string(path)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit(')')
            .next()
            .and_then(|r| r.split_whitespace().next())
            != Some("Z")
    })
}

#[tokio::test]
async fn independent_steps_run_in_parallel_and_dependents_after_them() {
    let r = Run::new();
    let res = r
        .run("version: 1\nname: p\nsteps:\n  a: { run: sleep 0.3 }\n  b: { run: sleep 0.3 }\n  c: { needs: [a, b], run: echo done }\n")
        .await;
    assert!(res.succeeded(), "{res:?}");
    let first_finish = r
        .position(&Ev::Finished("a".into()))
        .min(r.position(&Ev::Finished("b".into())));
    assert!(r.position(&Ev::Started("a".into(), 1)) < first_finish);
    assert!(
        r.position(&Ev::Started("b".into(), 1)) < first_finish,
        "a and b overlap"
    );
    let c = r.position(&Ev::Started("c".into(), 1));
    assert!(c > r.position(&Ev::Finished("a".into())) && c > r.position(&Ev::Finished("b".into())));
    assert!(
        r.logs("c").contains(&"done".to_string()),
        "{:?}",
        r.logs("c")
    );
}

#[tokio::test]
async fn a_failing_step_stops_its_dependents_but_not_status_handlers() {
    let r = Run::new();
    let res = r
        .run("version: 1\nname: p\nsteps:\n  a: { run: [echo one, exit 3, echo never] }\n  b: { needs: [a], run: echo b }\n  c: { needs: [b], run: echo c }\n  report: { needs: [a], when: \"status == 'failure'\", run: echo reporting }\n")
        .await;
    assert!(!res.succeeded());
    assert_eq!(
        res.steps["a"],
        StepState::Failed {
            reason: "`exit 3` exited with status 3".into(),
            attempts: 1
        }
    );
    assert_eq!(
        res.steps["b"],
        StepState::NotRun {
            reason: "`a` did not succeed".into()
        }
    );
    assert_eq!(
        res.steps["c"],
        StepState::NotRun {
            reason: "`b` did not succeed".into()
        }
    );
    assert!(matches!(res.steps["report"], StepState::Succeeded { .. }));
    assert!(!r.logs("a").contains(&"never".to_string()));
}

#[tokio::test]
async fn a_retry_recovers_a_flaky_step() {
    let r = Run::new();
    let res = r
        .run("version: 1\nname: p\nsteps:\n  flaky:\n    retry: 2\n    run: 'n=$(cat count 2>/dev/null || echo 0); echo $((n+1)) > count; test $n -ge 1'\n")
        .await;
    assert_eq!(
        res.steps["flaky"],
        StepState::Succeeded {
            outputs: Outputs::new(),
            attempts: 2
        }
    );
    assert!(
        r.logs("flaky")
            .iter()
            .any(|l| l.starts_with("retrying (attempt 2 of 3)")),
        "{:?}",
        r.logs("flaky")
    );
}

#[tokio::test]
async fn a_timeout_kills_the_whole_process_tree() {
    let r = Run::new();
    let res = r
        .run("version: 1\nname: p\nsteps:\n  slow:\n    timeout: 500ms\n    run: 'sleep 300 & echo $! > bg.pid; sleep 300'\n")
        .await;
    assert_eq!(
        res.steps["slow"],
        StepState::Failed {
            reason: "timed out after 0.5s".into(),
            attempts: 1
        }
    );
    assert!(
        !pid_alive(&r.dir.path().join("bg.pid")),
        "the background child was killed too"
    );
}

#[tokio::test]
async fn background_children_do_not_outlive_a_successful_step() {
    let r = Run::new();
    let res = r
        .run("version: 1\nname: p\nsteps:\n  quick: { run: 'sleep 300 & echo $! > bg.pid' }\n")
        .await;
    assert!(
        matches!(res.steps["quick"], StepState::Succeeded { .. }),
        "{res:?}"
    );
    assert!(!pid_alive(&r.dir.path().join("bg.pid")));
}

#[tokio::test]
async fn outputs_flow_to_later_steps_and_conditions_see_params() {
    let r = Run::new();
    let res = r
        .run(r#"version: 1
name: p
params:
  Env: { type: choice, options: [qa, prod], default: qa }
vars: { IMAGE: "reg/app-${{ params.Env }}" }
steps:
  image: { run: 'echo "digest=sha256:abc" >> "$SLIPWAY_OUTPUT"' }
  use:
    needs: [image]
    run: 'echo "got $IMAGE@${{ steps.image.outputs.digest }} at $SLIPWAY_RUN_SHA for $SLIPWAY_PARAM_Env"'
  prod-only: { needs: [image], when: "params.Env == 'prod'", run: echo prod }
"#)
        .await;
    assert!(res.succeeded(), "{res:?}");
    assert_eq!(
        res.steps["image"],
        StepState::Succeeded {
            outputs: Outputs::from([("digest".into(), "sha256:abc".into())]),
            attempts: 1
        }
    );
    assert!(
        r.logs("use")
            .contains(&"got reg/app-qa@sha256:abc at 0123abc for qa".to_string()),
        "{:?}",
        r.logs("use")
    );
    assert_eq!(
        res.steps["prod-only"],
        StepState::Skipped {
            reason: "its `when` condition is false".into()
        }
    );
}

#[tokio::test]
async fn secrets_reach_the_step_and_never_its_log() {
    let r = Run::new();
    let mut spec = r.spec(
        "version: 1\nname: p\nsteps:\n  s:\n    secrets: [tok]\n    env: { AGAIN: \"${{ secrets.tok }}\" }\n    run: ['echo \"token is $tok\"', 'echo \"$AGAIN\" >&2', 'test ${#tok} -eq 20']\n",
    );
    spec.values
        .secrets
        .insert("tok".into(), "hunter2-secret-value".into());
    let res = r
        .go(
            spec,
            Arc::new(Approvals::default()),
            CancellationToken::new(),
        )
        .await;
    assert!(res.succeeded(), "{res:?}");
    let logs = r.logs("s");
    assert!(logs.contains(&"token is ***".to_string()), "{logs:?}");
    assert!(logs.contains(&"***".to_string()), "{logs:?}");
    assert!(
        r.events()
            .iter()
            .all(|e| !format!("{e:?}").contains("hunter2")),
        "{:?}",
        r.events()
    );
}

#[tokio::test]
async fn cancel_kills_the_running_step_and_cancels_the_rest() {
    let r = Run::new();
    let spec = r.spec("version: 1\nname: p\nsteps:\n  long: { run: 'echo $$ > sh.pid; sleep 300' }\n  after: { needs: [long], run: echo after }\n");
    let cancel = CancellationToken::new();
    let pid_file = r.dir.path().join("sh.pid");
    let trigger = cancel.clone();
    let watcher = tokio::spawn(async move {
        while !pid_file.exists() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        trigger.cancel();
    });
    let res = r.go(spec, Arc::new(Approvals::default()), cancel).await;
    watcher.await.unwrap();
    assert_eq!(res.steps["long"], StepState::Cancelled);
    assert_eq!(res.steps["after"], StepState::Cancelled);
    assert!(!pid_alive(&r.dir.path().join("sh.pid")));
}

#[tokio::test]
async fn a_rerun_keeps_the_outputs_of_steps_that_succeeded() {
    let r = Run::new();
    let mut spec = r.spec(
        "version: 1\nname: p\nsteps:\n  build: { run: 'echo built > marker; echo \"artifact=v1\" >> \"$SLIPWAY_OUTPUT\"' }\n  ship: { needs: [build], run: 'echo shipping ${{ steps.build.outputs.artifact }}' }\n",
    );
    spec.done.insert(
        "build".into(),
        Outputs::from([("artifact".into(), "v1".into())]),
    );
    let res = r
        .go(
            spec,
            Arc::new(Approvals::default()),
            CancellationToken::new(),
        )
        .await;
    assert!(res.succeeded(), "{res:?}");
    assert!(
        !r.events().contains(&Ev::Started("build".into(), 1)),
        "build is not run again"
    );
    assert!(!r.dir.path().join("marker").exists());
    assert!(r.logs("ship").contains(&"shipping v1".to_string()));
}

#[tokio::test]
async fn other_step_kinds_go_to_the_server_and_approvals_wait_without_a_worker() {
    let r = Run::new();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let other = Arc::new(Approvals(Mutex::new(Some(rx))));
    let spec = r.spec(
        "version: 1\nname: p\nparams:\n  Go: { type: bool, default: true }\nsteps:\n  ask: { approve: { message: \"Do tests OK?\", approvers: [role:deployer] } }\n  meanwhile: { run: echo working }\n  after: { needs: [ask], run: 'echo approved by ${{ steps.ask.outputs.approved_by }}' }\n",
    );
    let running = tokio::spawn({
        let record = r.record.clone();
        async move { execute(spec, record, other, CancellationToken::new()).await }
    });
    // The other step finishes while the approval waits.
    for _ in 0..500 {
        if r.events().contains(&Ev::Finished("meanwhile".into())) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(r.events().contains(&Ev::Finished("meanwhile".into())));
    assert!(!r.events().contains(&Ev::Finished("ask".into())));
    tx.send(true).unwrap();
    let res = running.await.unwrap();
    assert!(res.succeeded(), "{res:?}");
    assert!(r.logs("after").contains(&"approved by dana".to_string()));
}
