//! The README's main job end to end: `slipway demo` sets up the bundled example and takes
//! its first commit to the approval "Do tests OK?"; then approvals, a second commit, the
//! release job and a rollback, with the real binary, dockerd and registry (issue 7's
//! acceptance). Docker tests: the `docker` nextest group, failing under `CI=true` without
//! Docker.

use crate::*;
use std::io::BufRead;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use testkit::{free_port, http_as, wait_for};

/// The demo as a child process in its own process group, killed with its server when the
/// test ends.
struct Demo {
    child: std::process::Child,
    lines: mpsc::Receiver<String>,
    out: Vec<String>,
}

impl Demo {
    fn start(dir: &Path, listen: &str, vhost: &str, config_home: &Path, docker: &str) -> Demo {
        use std::os::unix::process::CommandExt as _;
        let mut child = Command::new(slipway_bin())
            .args(["demo", "--dir"])
            .arg(dir)
            .args([
                "--listen",
                listen,
                "--vhost-listen",
                vhost,
                "--docker",
                docker,
            ])
            .env("XDG_CONFIG_HOME", config_home)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .process_group(0)
            .spawn()
            .expect("slipway demo starts");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                eprintln!("demo| {line}");
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Demo {
            child,
            lines,
            out: Vec::new(),
        }
    }

    /// Starts the demo on fresh free ports until its server is up (a port can be taken by
    /// another test between choosing and binding it); returns it with its API and vhost
    /// addresses.
    fn start_up(dir: &Path, config_home: &Path, docker: &str) -> (Demo, String, String) {
        for _ in 0..3 {
            let listen = format!("127.0.0.1:{}", free_port());
            let vhost = format!("127.0.0.1:{}", free_port());
            let mut demo = Demo::start(dir, &listen, &vhost, config_home, docker);
            if demo
                .try_until("  server: ", Duration::from_secs(120))
                .is_some()
            {
                return (demo, listen, vhost);
            }
        }
        panic!("slipway demo did not start its server in 3 attempts");
    }

    /// Reads output until a line contains `text`; returns that line, or `None` when the
    /// output ends or `timeout` passes first.
    fn try_until(&mut self, text: &str, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self.lines.recv_timeout(left).ok()?;
            self.out.push(line.clone());
            if line.contains(text) {
                return Some(line);
            }
        }
    }

    /// [`Demo::try_until`], failing the test with the output so far.
    fn until(&mut self, text: &str, timeout: Duration) -> String {
        self.try_until(text, timeout).unwrap_or_else(|| {
            panic!(
                "no `{text}` from slipway demo within {timeout:?}; output:\n{}",
                self.out.join("\n")
            )
        })
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        // The demo's group holds the demo and its server; task processes and containers
        // are the server's and are removed separately.
        let _ = testkit::kill_group(self.child.id() as i32);
        let _ = self.child.wait();
    }
}

/// `slipway ARGS` against the demo server with `token`: (exit code, stdout, stderr).
fn cli(url: &str, token: &str, home: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(slipway_bin())
        .args(args)
        .env("SLIPWAY_URL", url)
        .env("SLIPWAY_TOKEN", token)
        .env("XDG_CONFIG_HOME", home)
        .stdin(Stdio::null())
        .output()
        .expect("slipway runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `slipway runs approve RUN qa-signoff` as `token`.
fn approve(url: &str, token: &str, home: &Path, run: &str) -> (i32, String, String) {
    cli(url, token, home, &["runs", "approve", run, "qa-signoff"])
}

/// The release job for datacenter BB's prod, confirmed, followed to its end.
fn release_to_bb_prod(
    url: &str,
    token: &str,
    home: &Path,
    version: &str,
    from: &str,
) -> (i32, String, String) {
    let (version, from) = (format!("ReleaseVersion={version}"), format!("From={from}"));
    let args = [
        "pipelines",
        "run",
        "orders-release",
        "-p",
        &version,
        "-p",
        "DeployDC=BB",
        "-p",
        "DeployEnv=prod",
        "-p",
        &from,
        "--yes",
        "--follow",
    ];
    cli(url, token, home, &args)
}

fn get(url: &str, token: &str) -> Value {
    let (status, body) = http_as(token, "GET", url, None).unwrap();
    assert!((200..300).contains(&status), "GET {url}: {status} {body}");
    serde_json::from_str(&body).unwrap()
}

/// A run once its status is not `queued`/`running`, or once `step` waits.
fn wait_run(base: &str, token: &str, id: &str, step: Option<&str>, timeout: Duration) -> Value {
    wait_for(&format!("run {id}"), timeout, || {
        let run = get(&format!("{base}/api/v1/runs/{id}"), token);
        let waiting = step.is_some_and(|s| {
            run["steps"]
                .as_array()
                .unwrap()
                .iter()
                .any(|x| x["name"] == s && x["status"] == "waiting")
        });
        let ended = !matches!(run["status"].as_str(), Some("queued" | "running"));
        (waiting || ended).then_some(run)
    })
    .unwrap()
}

fn output(run: &Value, step: &str, key: &str) -> String {
    run["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == step)
        .and_then(|s| s["outputs"][key].as_str())
        .unwrap_or_else(|| panic!("no output {key} of {step} in {run}"))
        .to_string()
}

/// The app's image once all its instances run healthy on one version.
fn healthy_image(base: &str, token: &str, app: &str) -> String {
    wait_for(&format!("{app} healthy"), Duration::from_secs(60), || {
        let v = get(&format!("{base}/v2/apps{app}"), token);
        let a = &v["app"];
        let n = a["instances"].as_u64()?;
        (n > 0
            && a["tasksHealthy"].as_u64() == Some(n)
            && a["tasksRunning"].as_u64() == Some(n)
            && a["deployments"].as_array().is_some_and(Vec::is_empty))
        .then(|| {
            a["container"]["docker"]["image"]
                .as_str()
                .unwrap()
                .to_string()
        })
    })
    .unwrap()
}

/// The digest the registry serves for `repo:tag`.
fn registry_digest(repo: &str, tag: &str) -> String {
    let out = Command::new("curl")
        .args([
            "-sfI",
            "-H",
            "Accept: application/vnd.docker.distribution.manifest.v2+json",
        ])
        .arg(format!(
            "http://{}/v2/{repo}/manifests/{tag}",
            testkit::registry()
        ))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .starts_with("docker-content-digest:")
                .then(|| l.split_once(':').unwrap().1.trim().to_string())
        })
        .unwrap_or_else(|| panic!("no digest for {repo}:{tag}"))
}

/// The ids of the images dockerd holds (a new tag of an image adds none).
fn image_ids() -> std::collections::BTreeSet<String> {
    let out = Command::new("docker")
        .args(["images", "-q", "--no-trunc"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

fn audit_has(base: &str, token: &str, user: &str, needle: &str) -> bool {
    let v = get(&format!("{base}/api/v1/audit?limit=1000"), token);
    v["records"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|e| e["user"] == user && e.to_string().contains(needle))
}

#[test]
fn docker_example_goes_from_commit_to_prod_releases_and_rolls_back() {
    if testkit::docker().is_none() || testkit::registry_up().is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    let home = tmp.path().join("config");
    let (mut demo, listen, _vhost) = Demo::start_up(&dir, &home, "auto");
    let base = format!("http://{listen}");
    assert!(
        demo.out.iter().any(|l| l.contains("Docker: yes")),
        "{:?}",
        demo.out
    );
    let ask = demo.until("Do tests OK?", Duration::from_secs(600));
    assert!(ask.contains("waits for the approval"), "{ask}");
    let approve_line = demo.until("runs approve", Duration::from_secs(5));
    let run1 = approve_line.split_whitespace().nth(3).unwrap().to_string();

    let admin = std::fs::read_to_string(dir.join("admin.token"))
        .unwrap()
        .trim()
        .to_string();
    let dana = std::fs::read_to_string(dir.join("dana.token"))
        .unwrap()
        .trim()
        .to_string();
    let lee = std::fs::read_to_string(dir.join("lee.token"))
        .unwrap()
        .trim()
        .to_string();
    let agent = get(&format!("{base}/v2/info"), &admin)["frameworkId"]
        .as_str()
        .unwrap()
        .to_string();
    struct Cleanup(String);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            testkit::remove_slipway_containers(&self.0);
        }
    }
    let _containers = Cleanup(agent);

    // QA runs the digest the image step pushed; the automated tests passed against it.
    let r1 = wait_run(
        &base,
        &admin,
        &run1,
        Some("qa-signoff"),
        Duration::from_secs(120),
    );
    let digest1 = output(&r1, "image", "digest");
    assert_eq!(
        healthy_image(&base, &admin, "/AA/qa/orders"),
        format!("127.0.0.1:5000/orders@{digest1}")
    );

    // A developer may not approve prod; a deployer may, and prod gets the QA digest.
    let (code, _, err) = approve(&base, &dana, &home, &run1);
    assert_ne!(code, 0);
    assert!(err.contains("Forbidden"), "{err}");
    let (code, out, err) = approve(&base, &lee, &home, &run1);
    assert_eq!(code, 0, "{out}{err}");
    let r1 = wait_run(&base, &admin, &run1, None, Duration::from_secs(180));
    assert_eq!(r1["status"], "succeeded", "{r1}");
    assert_eq!(
        healthy_image(&base, &admin, "/AA/prod/orders"),
        format!("127.0.0.1:5000/orders@{digest1}")
    );
    assert_eq!(output(&r1, "deploy-prod", "digest"), digest1);

    // A second commit on dev goes through QA; prod keeps the first digest meanwhile.
    let work = dir.join("work/orders");
    let lib = std::fs::read_to_string(work.join("src/lib.rs")).unwrap();
    std::fs::write(
        work.join("src/lib.rs"),
        lib.replace("coffee-beans-1kg", "coffee-beans-1000g"),
    )
    .unwrap();
    testkit::git(&work, &["commit", "-qam", "Rename the coffee beans"]);
    testkit::git(&work, &["push", "-q", "origin", "dev"]);
    let run2 = wait_for("the second run", Duration::from_secs(60), || {
        let runs = get(&format!("{base}/api/v1/runs?pipeline=orders"), &admin);
        runs["runs"]
            .as_array()?
            .iter()
            .find(|r| r["number"] == 2)
            .map(|r| r["id"].as_str().unwrap().to_string())
    })
    .unwrap();
    let r2 = wait_run(
        &base,
        &admin,
        &run2,
        Some("qa-signoff"),
        Duration::from_secs(300),
    );
    assert_eq!(r2["status"], "running", "{r2}");
    let digest2 = output(&r2, "image", "digest");
    assert_ne!(digest1, digest2);
    assert_eq!(
        healthy_image(&base, &admin, "/AA/qa/orders"),
        format!("127.0.0.1:5000/orders@{digest2}")
    );
    assert_eq!(
        healthy_image(&base, &admin, "/AA/prod/orders"),
        format!("127.0.0.1:5000/orders@{digest1}"),
        "prod must keep the approved digest until the next approval"
    );

    // The release job: developers get 403 for prod; prod asks for confirmation; `dev`
    // now points at the unapproved second digest, which is refused.
    let release = format!("{base}/api/v1/pipelines/orders-release/runs");
    let params = |from: &str, version: &str| json!({"params": {"ReleaseVersion": version, "DeployDC": "BB", "DeployEnv": "prod", "From": from}});
    let (status, body) = http_as(&dana, "POST", &release, Some(&params("dev", "1.0.0"))).unwrap();
    assert_eq!(status, 403, "{body}");
    let (status, body) = http_as(&lee, "POST", &release, Some(&params("dev", "1.0.0"))).unwrap();
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("confirmation"), "{body}");
    let mut confirmed = params("dev", "1.0.0");
    confirmed["confirm"] = json!(true);
    let (status, body) = http_as(&lee, "POST", &release, Some(&confirmed)).unwrap();
    assert_eq!(status, 201, "{body}");
    let refused: Value = serde_json::from_str(&body).unwrap();
    let refused = wait_run(
        &base,
        &admin,
        refused["id"].as_str().unwrap(),
        None,
        Duration::from_secs(60),
    );
    assert_eq!(refused["status"], "failed");
    assert!(
        refused.to_string().contains("never passed the approval"),
        "{refused}"
    );

    // Promote the approved first commit's image (pushed as orders:<sha>) as 1.0.0.
    let sha1 = r1["sha"].as_str().unwrap().to_string();
    let (code, out, err) = release_to_bb_prod(&base, &lee, &home, "1.0.0", &sha1);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        registry_digest("orders", "1.0.0"),
        digest1,
        "the tag is the QA digest"
    );
    let images_before = image_ids();
    assert_eq!(
        healthy_image(&base, &admin, "/BB/prod/orders"),
        format!("127.0.0.1:5000/orders@{digest1}")
    );
    assert!(
        audit_has(&base, &admin, "lee", "/BB/prod/orders"),
        "the audit log names lee"
    );

    // Approve the second commit, release it as 1.1.0 to BB, then roll BB back: one
    // command, in the audit log, and BB runs the first digest again.
    let (code, out, err) = approve(&base, &admin, &home, &run2);
    assert_eq!(code, 0, "{out}{err}");
    let r2 = wait_run(&base, &admin, &run2, None, Duration::from_secs(180));
    assert_eq!(r2["status"], "succeeded", "{r2}");
    let sha2 = r2["sha"].as_str().unwrap().to_string();
    let master = Command::new("git")
        .args(["rev-parse", "master"])
        .current_dir(dir.join("git/orders.git"))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&master.stdout).trim(),
        sha2,
        "the release merged dev into master"
    );
    let (code, out, err) = release_to_bb_prod(&base, &lee, &home, "1.1.0", &sha2);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        healthy_image(&base, &admin, "/BB/prod/orders"),
        format!("127.0.0.1:5000/orders@{digest2}")
    );
    // prod asks for confirmation: without a terminal the rollback needs --yes.
    let rollback = ["apps", "rollback", "/BB/prod/orders"];
    let (code, _, err) = cli(&base, &lee, &home, &rollback);
    assert_eq!(code, 8, "{err}");
    let (code, out, err) = cli(&base, &lee, &home, &[&rollback[..], &["--yes"]].concat());
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        healthy_image(&base, &admin, "/BB/prod/orders"),
        format!("127.0.0.1:5000/orders@{digest1}")
    );
    assert!(audit_has(&base, &admin, "lee", "rollback to version"));
    let (code, out, _) = cli(
        &base,
        &admin,
        &home,
        &["apps", "versions", "/BB/prod/orders"],
    );
    assert_eq!(code, 0);
    assert!(out.contains(&digest1) && out.contains(&digest2), "{out}");
    // Promotion tagged in the registry; nothing was built for the releases.
    assert_eq!(images_before, image_ids(), "a release builds no image");
}

/// Without Docker the main job still reaches "Do tests OK?", with process apps, and says
/// so; approving it puts the binary QA tested into prod. (Named for the `docker` group:
/// it uses the example's fixed QA port like the container test, so they must not overlap.)
#[test]
fn example_without_docker_runs_process_apps_to_prod() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    let home = tmp.path().join("config");
    let (mut demo, listen, vhost) = Demo::start_up(&dir, &home, "off");
    let base = format!("http://{listen}");
    assert!(
        demo.out.iter().any(|l| l.contains("process apps")),
        "{:?}",
        demo.out
    );
    demo.until("Do tests OK?", Duration::from_secs(600));
    let approve_line = demo.until("runs approve", Duration::from_secs(5));
    // The printed command works as printed: `slipway` is not on PATH after `cargo run`,
    // so it names the binary by its path.
    let exe = approve_line.split_whitespace().next().unwrap();
    assert!(Path::new(exe).is_file(), "{approve_line}");
    let run = approve_line.split_whitespace().nth(3).unwrap().to_string();
    // The web console's address and the demo people's passwords, to approve in a browser.
    assert!(
        demo.out
            .iter()
            .any(|l| l.contains(&format!("web console: {base}/ui/"))),
        "{:?}",
        demo.out
    );
    let lee_pw = std::fs::read_to_string(dir.join("lee.password")).unwrap();
    let lee_pw = lee_pw.trim();
    assert!(
        demo.out
            .iter()
            .any(|l| l.contains(&format!("sign in as lee (deployer), password {lee_pw}"))),
        "{:?}",
        demo.out
    );
    let code = std::process::Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-u"])
        .arg(format!("lee:{lee_pw}"))
        .arg(format!("{base}/v2/info"))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&code.stdout),
        "200",
        "the printed password signs in"
    );
    let admin = std::fs::read_to_string(dir.join("admin.token"))
        .unwrap()
        .trim()
        .to_string();
    struct Tasks(std::path::PathBuf);
    impl Drop for Tasks {
        fn drop(&mut self) {
            testkit::kill_tasks_of(&self.0);
        }
    }
    let _tasks = Tasks(dir.join("data"));
    let (status, body) = testkit::http_get("http://127.0.0.1:10101/").unwrap();
    assert_eq!(status, 200);
    assert!(body.contains("\"profile\":\"qa\""), "{body}");
    let (code, out, err) = approve(&base, &admin, &home, &run);
    assert_eq!(code, 0, "{out}{err}");
    let r = wait_run(&base, &admin, &run, None, Duration::from_secs(120));
    assert_eq!(r["status"], "succeeded", "{r}");
    let binary = output(&r, "build", "binary");
    let prod = get(&format!("{base}/v2/apps/AA/prod/orders"), &admin);
    let cmd = prod["app"]["cmd"].as_str().unwrap();
    assert!(
        cmd.contains(&binary) && cmd.contains("--profile=prod"),
        "{cmd}"
    );
    let answer = wait_for("prod through the vhost", Duration::from_secs(30), || {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(&vhost).ok()?;
        write!(
            s,
            "GET / HTTP/1.1\r\nHost: orders.prod.aa.localhost\r\nConnection: close\r\n\r\n"
        )
        .ok()?;
        let mut text = String::new();
        s.read_to_string(&mut text).ok()?;
        text.contains("\"profile\":\"prod\"").then_some(text)
    })
    .unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}
