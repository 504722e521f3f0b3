//! Issue 11 §5: the git server of a pipeline goes away. A real `git daemon` on 127.0.0.1
//! (a port the test picked) serves the pipeline's repository and is killed: polling and
//! triggered runs report it on the pipeline (`Service::git_problem`, the API's `gitError`),
//! polling keeps its interval and starts nothing, a triggered run fails at its checkout
//! and nothing else queues; once the server is back the problem clears and a new commit
//! starts exactly one run.

use pipeline::service::{Service, Source};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use store::Store;
use testkit::git;

/// `git daemon` serving `root` on 127.0.0.1:`port`; killed on drop.
struct GitDaemon {
    root: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl GitDaemon {
    fn start(root: &Path) -> GitDaemon {
        let mut d = GitDaemon {
            root: root.to_path_buf(),
            port: testkit::free_port(),
            child: None,
        };
        d.restart();
        d
    }

    fn restart(&mut self) {
        self.stop();
        // The daemon itself, not `git daemon` (whose `git` would outlive a kill of it).
        let exec_path = Command::new("git").arg("--exec-path").output().unwrap();
        let daemon =
            Path::new(String::from_utf8_lossy(&exec_path.stdout).trim()).join("git-daemon");
        let child = Command::new(daemon)
            .arg("--reuseaddr")
            .arg("--export-all")
            .arg(format!("--base-path={}", self.root.display()))
            .arg("--listen=127.0.0.1")
            .arg(format!("--port={}", self.port))
            .arg(&self.root)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("git daemon starts");
        self.child = Some(child);
        testkit::wait_for("git daemon to listen", Duration::from_secs(10), || {
            std::net::TcpStream::connect(("127.0.0.1", self.port))
                .ok()
                .map(|_| ())
        })
        .unwrap();
    }

    /// Kills the server, the way a crashed or unplugged one goes.
    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for GitDaemon {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn until<T>(what: &str, within: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < within, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn an_unreachable_git_server_is_reported_on_the_pipeline_and_nothing_piles_up() {
    let work = testkit::git_repo(
        "version: 1\nname: polled\non: { push: { branches: [dev], poll: 1s } }\nsteps:\n  a: { run: cat hello.txt }\n",
        &[("hello.txt", "first\n")],
    );
    let served = tempfile::tempdir().unwrap();
    let bare = served.path().join("demo.git");
    let out = Command::new("git")
        .args(["clone", "-q", "--bare"])
        .arg(work.path())
        .arg(&bare)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let mut daemon = GitDaemon::start(served.path());

    let data = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(&data.path().join("db")).unwrap());
    let service = Service::new(
        store.clone(),
        data.path().join("runs"),
        Arc::new(|_: &str, _: &str| Err("no secrets".to_string())),
    );
    let source = Source {
        repo: format!("git://127.0.0.1:{}/demo.git", daemon.port),
        branch: "dev".into(),
        file: ".slipway/pipeline.yaml".into(),
        poll_ms: None,
        cron: Vec::new(),
        file_text: None,
    };
    service.add_pipeline("polled", &source).await.unwrap();
    service.start_polling();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(service.git_problem("polled"), None);

    // The server goes away: polling says so on the pipeline, at its own pace.
    daemon.stop();
    let problem = until(
        "the problem on the pipeline",
        Duration::from_secs(10),
        || service.git_problem("polled"),
    )
    .await;
    assert!(
        problem.error.contains("ls-remote") && problem.error.contains("127.0.0.1"),
        "{problem:?}"
    );
    let before = service.git_problem("polled").unwrap().failures;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = service.git_problem("polled").unwrap();
    assert!(
        (1..=5).contains(&(after.failures - before)),
        "polled once a second, not in a loop: {before} then {}",
        after.failures
    );
    assert_eq!(
        after.since_ms, problem.since_ms,
        "the first failure is kept"
    );
    assert!(store.runs(Some("polled"), 10).unwrap().is_empty(), "no run");

    // A triggered run fails at its checkout, says why, and nothing else queues.
    let run = service
        .trigger("polled", "manual", "user:lee", BTreeMap::new())
        .unwrap();
    let failed = until("the run to end", Duration::from_secs(30), || {
        store
            .run(&run.id)
            .unwrap()
            .filter(|r| r.status.is_finished())
    })
    .await;
    assert_eq!(failed.status.as_str(), "failed");
    let reason = failed.reason.unwrap_or_default();
    assert!(reason.contains("git clone"), "{reason}");
    let with_trigger = service.git_problem("polled").unwrap();
    assert!(with_trigger.error.contains("clone") || with_trigger.failures > after.failures);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(store.runs(Some("polled"), 10).unwrap().len(), 1);

    // Back, with a new commit: the problem clears and exactly one run builds it.
    std::fs::write(work.path().join("hello.txt"), "second\n").unwrap();
    git(work.path(), &["commit", "-qam", "second"]);
    let pushed = Command::new("git")
        .args(["push", "-q"])
        .arg(&bare)
        .arg("dev")
        .current_dir(work.path())
        .output()
        .unwrap();
    assert!(pushed.status.success(), "{pushed:?}");
    daemon.restart();
    until("the problem to clear", Duration::from_secs(10), || {
        service.git_problem("polled").is_none().then_some(())
    })
    .await;
    let polled = until("a run for the new commit", Duration::from_secs(30), || {
        store
            .runs(Some("polled"), 10)
            .unwrap()
            .into_iter()
            .find(|r| r.triggered_by == "poll")
    })
    .await;
    let done = until("the polled run to end", Duration::from_secs(30), || {
        store
            .run(&polled.id)
            .unwrap()
            .filter(|r| r.status.is_finished())
    })
    .await;
    assert_eq!(done.status.as_str(), "succeeded");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(store.runs(Some("polled"), 10).unwrap().len(), 2);
    service.shutdown().await;
}
