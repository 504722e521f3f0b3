//! The web console in a real browser: Debian's headless Chromium driven through
//! chromedriver's WebDriver protocol (a small JSON-over-HTTP client below) against a real
//! `slipway up`. A developer sees the run waiting at "Do tests OK?" without an Approve
//! button; a deployer approves and watches the run reach prod without reloading; the
//! release job starts from its form without and then with the prod confirmation; prod is
//! rolled back from the app page; each action is on the audit page. Every page is
//! screenshotted under `target/console-screenshots/`, checked for labelled fields and
//! headings in order, and any browser console error fails the test. Without Chromium the
//! test is skipped, except under `CI=true`, where it fails.

use crate::*;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use testkit::{free_port, wait_for};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// chromedriver as a child process, killed on drop.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One WebDriver session (one headless Chromium).
struct Browser {
    driver: Driver,
    session: String,
    shots: PathBuf,
    shot: usize,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = wd(
            "DELETE",
            &format!("{}/session/{}", self.driver.url, self.session),
            None,
        );
    }
}

impl Browser {
    /// Starts chromedriver and a headless Chromium at 1280×900; `None` when they are not
    /// installed (a failure under `CI=true`).
    fn start() -> Option<Browser> {
        if !Path::new(CHROMIUM).exists() || !Path::new(CHROMEDRIVER).exists() {
            assert!(
                !testkit::strict(),
                "chromium and chromium-driver are needed for the console's browser tests (scripts/test installs them)"
            );
            eprintln!("skipped: {CHROMIUM} or {CHROMEDRIVER} is missing");
            return None;
        }
        let port = free_port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let driver = Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        wait_for("chromedriver", Duration::from_secs(20), || {
            let (status, body) = wd("GET", &format!("{}/status", driver.url), None).ok()?;
            (status == 200 && body.contains("\"ready\":true")).then_some(())
        })
        .unwrap();
        let profile = tempfile::tempdir().unwrap();
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:loggingPrefs": {"browser": "ALL"},
            "goog:chromeOptions": {"binary": CHROMIUM, "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,900", "--no-first-run", "--disable-extensions",
                format!("--user-data-dir={}", profile.path().display()),
            ]},
        }}});
        let (status, body) =
            wd("POST", &format!("{}/session", driver.url), Some(&caps)).expect("new session");
        assert_eq!(status, 200, "{body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        let session = v["value"]["sessionId"].as_str().unwrap().to_string();
        let shots = testkit::target_dir()
            .parent()
            .map(|t| t.join("console-screenshots"))
            .unwrap();
        // Only this run's pictures.
        let _ = std::fs::remove_dir_all(&shots);
        std::fs::create_dir_all(&shots).unwrap();
        Some(Browser {
            driver,
            session,
            shots,
            shot: 0,
            _profile: profile,
        })
    }

    /// A WebDriver command; its `value`, failing the test on a WebDriver error.
    fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/session/{}{path}", self.driver.url, self.session);
        let body = body.or_else(|| (method == "POST").then(|| json!({})));
        let (status, text) = wd(method, &url, body.as_ref()).expect("webdriver");
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        assert_eq!(status, 200, "{method} {path}: {text}");
        v["value"].clone()
    }

    fn goto(&self, url: &str) {
        self.cmd("POST", "/url", Some(json!({"url": url})));
    }

    fn url(&self) -> String {
        self.cmd("GET", "/url", None)
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    fn find(&self, css: &str) -> String {
        let v = self.cmd(
            "POST",
            "/element",
            Some(json!({"using": "css selector", "value": css})),
        );
        v[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no element {css} on {}: {v}\n{}", self.url(), self.text()))
            .to_string()
    }

    fn click(&self, css: &str) {
        let id = self.find(css);
        self.cmd("POST", &format!("/element/{id}/click"), None);
    }

    fn type_into(&self, css: &str, text: &str) {
        let id = self.find(css);
        self.cmd("POST", &format!("/element/{id}/clear"), None);
        self.cmd(
            "POST",
            &format!("/element/{id}/value"),
            Some(json!({"text": text})),
        );
    }

    /// Runs `script` (a function body) in the page.
    fn js(&self, script: &str) -> Value {
        self.cmd(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
    }

    /// The text of the page's `<main>`.
    fn text(&self) -> String {
        self.js("return document.querySelector('main') ? document.querySelector('main').innerText : document.body.innerText;")
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Clicks the button whose text is `label` (inside the form whose action ends with
    /// `action`, when given).
    fn click_button(&self, label: &str, action: Option<&str>) {
        let script = format!(
            "const b = [...document.querySelectorAll('button')].find(b => b.textContent.trim() === {label:?} && (!{action:?} || (b.form && b.form.getAttribute('action').endsWith({action:?})))); if (!b) return false; b.click(); return true;",
            action = action.unwrap_or_default()
        );
        assert_eq!(
            self.js(&script),
            json!(true),
            "no button {label:?} on {}: {}",
            self.url(),
            self.text()
        );
    }

    fn has_button(&self, label: &str) -> bool {
        self.js(&format!(
            "return [...document.querySelectorAll('button')].some(b => b.textContent.trim() === {label:?});"
        )) == json!(true)
    }

    /// Waits until the page's main text contains `text`.
    fn wait_text(&self, text: &str, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let now = self.text();
            if now.contains(text) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "no {text:?} on {} within {within:?}; the page says:\n{now}",
                self.url()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The browser console's entries since the last call.
    fn console(&self) -> Vec<Value> {
        self.cmd("POST", "/se/log", Some(json!({"type": "browser"})))
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Fails on any console error so far; `expected` lists substrings of errors a step
    /// provoked on purpose (a 4xx page after bad input).
    fn no_console_errors(&self, expected: &[&str]) {
        let errors: Vec<Value> = self
            .console()
            .into_iter()
            .filter(|e| e["level"] == "SEVERE")
            .filter(|e| {
                let m = e["message"].as_str().unwrap_or_default();
                !expected.iter().any(|x| m.contains(x))
            })
            .collect();
        assert!(
            errors.is_empty(),
            "browser console errors on {}: {errors:#?}",
            self.url()
        );
    }

    /// Checks the page (labels, headings, console) and saves a screenshot as `name`.
    fn check(&mut self, name: &str) {
        let unlabelled = self.js(
            "return [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
               .filter(e => !(e.getAttribute('aria-label') || e.closest('label') || (e.id && document.querySelector('label[for=\"' + e.id + '\"]'))))
               .map(e => e.outerHTML);",
        );
        assert_eq!(
            unlabelled,
            json!([]),
            "fields without labels on {}",
            self.url()
        );
        let levels = self.js(
            "return [...document.querySelectorAll('h1,h2,h3,h4,h5,h6')].map(h => Number(h.tagName[1]));",
        );
        let levels: Vec<i64> = levels
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_i64)
            .collect();
        assert_eq!(
            levels.first(),
            Some(&1),
            "{name}: the first heading is the h1"
        );
        assert_eq!(
            levels.iter().filter(|l| **l == 1).count(),
            1,
            "{name}: one h1"
        );
        for w in levels.windows(2) {
            assert!(
                w[1] <= w[0] + 1,
                "{name}: headings skip a level: {levels:?}"
            );
        }
        self.screenshot(name);
        self.no_console_errors(&[]);
    }

    fn screenshot(&mut self, name: &str) {
        let png = self.cmd("GET", "/screenshot", None);
        let bytes = base64_decode(png.as_str().unwrap());
        self.shot += 1;
        let file = self.shots.join(format!("{:02}-{name}.png", self.shot));
        std::fs::write(&file, bytes).unwrap();
    }

    fn login(&mut self, base: &str, user: &str, password: &str) {
        self.goto(&format!("{base}/ui/login"));
        self.type_into("#user", user);
        self.type_into("#password", password);
        self.click("form.login button[type=submit]");
        wait_for("the sign-in", Duration::from_secs(10), || {
            (!self.url().contains("/ui/login")).then_some(())
        })
        .unwrap_or_else(|e| panic!("{e}: {}", self.text()));
    }

    fn logout(&self) {
        self.click_button("Sign out", None);
        wait_for("the sign-out", Duration::from_secs(10), || {
            self.url().contains("/ui/login").then_some(())
        })
        .unwrap();
    }
}

/// One WebDriver request over a fresh connection: (status, body). chromedriver keeps
/// connections open, so the body is read by its `Content-Length`.
fn wd(method: &str, url: &str, body: Option<&Value>) -> anyhow::Result<(u16, String)> {
    use anyhow::Context as _;
    use std::io::{BufRead, BufReader, Read, Write};
    let rest = url.strip_prefix("http://").context("http only")?;
    let (hostport, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_string()), |(h, p)| (h, format!("/{p}")));
    let mut s = std::net::TcpStream::connect(hostport)?;
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    let payload = body.map(Value::to_string).unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {hostport}\r\nConnection: close\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: {}\r\n\r\n{payload}",
        payload.len()
    )?;
    let mut r = BufReader::new(s);
    let mut line = String::new();
    r.read_line(&mut line)?;
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .context("status line")?;
    let mut length = None;
    loop {
        line.clear();
        r.read_line(&mut line)?;
        if line.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':')
            && k.eq_ignore_ascii_case("content-length")
        {
            length = v.trim().parse::<usize>().ok();
        }
    }
    let mut body = Vec::new();
    match length {
        Some(n) => {
            body.resize(n, 0);
            r.read_exact(&mut body)?;
        }
        None => {
            r.read_to_end(&mut body)?;
        }
    }
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// Standard base64 (screenshots).
fn base64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' => 62,
            _ => 63,
        }
    };
    let clean: Vec<u8> = s.bytes().filter(|c| !c.is_ascii_whitespace()).collect();
    let mut out = Vec::with_capacity(clean.len() / 4 * 3);
    for chunk in clean.chunks(4) {
        let pad = chunk.iter().filter(|c| **c == b'=').count();
        let n = chunk.iter().fold(0u32, |acc, c| {
            (acc << 6) | if *c == b'=' { 0 } else { val(*c) }
        });
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..3 - pad]);
    }
    out
}

fn admin(s: &SlipwayProcess, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    send(s, method, path, body)
}

fn user(s: &SlipwayProcess, name: &str, role: &str) -> String {
    let password = format!("{name}-password-long");
    let (status, body) = admin(
        s,
        "POST",
        "/api/v1/users",
        Some(&json!({"name": name, "role": role, "password": password})),
    );
    assert_eq!(status, 201, "{body}");
    password
}

fn app_json(id: &str, release: Option<&str>) -> String {
    let mut app = json!({"id": id, "cmd": "sleep 1000", "instances": 1, "cpus": 0.01, "mem": 16});
    if let Some(r) = release {
        app["env"] = json!({"RELEASE": r});
    }
    app.to_string()
}

fn run_json(s: &SlipwayProcess, id: &str) -> Value {
    get_json(&format!("{}/api/v1/runs/{id}", s.url)).unwrap()
}

fn step_status(run: &Value, step: &str) -> String {
    run["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|x| x["name"] == step)
        .and_then(|x| x["status"].as_str())
        .unwrap_or_default()
        .to_string()
}

fn runs_of(s: &SlipwayProcess, pipeline: &str) -> usize {
    get_json(&format!("{}/api/v1/runs?pipeline={pipeline}", s.url)).unwrap()["runs"]
        .as_array()
        .map_or(0, Vec::len)
}

const FLOW: &str = "version: 1\nname: flow\nsteps:\n  build: { run: 'echo building; sleep 1' }\n  unit: { run: 'echo unit tests pass' }\n  qa: { needs: [build, unit], deploy: { env: qa, app: qa.json } }\n  ok: { needs: [qa], approve: { message: \"Do tests OK?\", env: prod } }\n  prod: { needs: [ok], deploy: { env: prod, app: prod.json } }\n";

const RELEASE: &str = "version: 1\nname: release\nparams:\n  ReleaseVersion: { type: string, required: true, description: Version to release }\n  DeployEnv: { type: choice, options: [prod], default: prod }\n  Notify: { type: bool, default: false }\nsteps:\n  show: { run: 'echo releasing' }\n  deploy: { needs: [show], deploy: { env: '${{ params.DeployEnv }}', app: app.json } }\n";

#[test]
fn console_in_a_browser_approve_release_rollback_audit() {
    let Some(mut b) = Browser::start() else {
        return;
    };
    let (s, _dir) = server();
    let dev_pw = user(&s, "devi", "developer");
    let dep_pw = user(&s, "depa", "deployer");
    let flow = testkit::git_repo(
        FLOW,
        &[
            ("qa.json", &app_json("/qa/web", None)),
            ("prod.json", &app_json("/prod/web", None)),
        ],
    );
    let release = testkit::git_repo(RELEASE, &[("app.json", &app_json("/prod/web", Some("2")))]);
    let slow = testkit::git_repo(
        "version: 1\nname: slow\nsteps:\n  wait: { run: 'seq 1 6000; sleep 60' }\n",
        &[],
    );
    for (name, repo) in [("flow", &flow), ("release", &release), ("slow", &slow)] {
        let (status, body) = admin(
            &s,
            "PUT",
            &format!("/api/v1/pipelines/{name}"),
            Some(&json!({"repo": repo.path().to_str().unwrap(), "branch": "dev"})),
        );
        assert_eq!(status, 200, "{body}");
    }
    let (status, run) = admin(
        &s,
        "POST",
        "/api/v1/pipelines/flow/runs",
        Some(&json!({"confirm": true})),
    );
    assert_eq!(status, 201, "{run}");
    let run_id = run["id"].as_str().unwrap().to_string();
    wait_for("the run to wait at ok", Duration::from_secs(60), || {
        (step_status(&run_json(&s, &run_id), "ok") == "waiting").then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}: {}", run_json(&s, &run_id)));

    // The developer sees the question but may not answer it.
    b.login(&s.url, "devi", &dev_pw);
    b.check("overview-developer");
    let run_page = format!("{}/ui/runs/{run_id}", s.url);
    b.goto(&run_page);
    b.wait_text("Do tests OK?", Duration::from_secs(10));
    assert!(!b.has_button("Approve"), "{}", b.text());
    assert!(
        b.text().contains("You may not decide this approval"),
        "{}",
        b.text()
    );
    b.check("run-waiting-developer");
    // A forged Approve (the button is not there) is refused by the server, naming why.
    b.js(&format!(
        "const f = document.createElement('form'); f.method = 'post'; f.action = '/ui/runs/{run_id}/approve';
         for (const [k, v] of [['csrf', document.querySelector('input[name=csrf]').value], ['step', 'ok']]) {{
           const i = document.createElement('input'); i.type = 'hidden'; i.name = k; i.value = v; f.appendChild(i); }}
         document.body.appendChild(f); f.submit(); return true;"
    ));
    b.wait_text("Nothing was changed", Duration::from_secs(10));
    assert!(b.text().contains("may not approve"), "{}", b.text());
    b.no_console_errors(&["status of 403"]);
    assert_eq!(step_status(&run_json(&s, &run_id), "ok"), "waiting");
    b.logout();

    // The deployer approves and watches the run reach prod without reloading.
    b.login(&s.url, "depa", &dep_pw);
    b.goto(&run_page);
    b.wait_text("Do tests OK?", Duration::from_secs(10));
    b.check("run-waiting-deployer");
    b.click_button("Approve", Some("/approve"));
    wait_for("the page after approving", Duration::from_secs(10), || {
        (b.url() == run_page && b.js("return document.readyState") == json!("complete"))
            .then_some(())
    })
    .unwrap();
    b.js("window.__sameDocument = 'yes'; return true;");
    wait_for("prod to succeed on the page", Duration::from_secs(90), || {
        let prod = b.js("const li = [...document.querySelectorAll('li.step')].find(l => l.querySelector('.step-name').textContent === 'prod'); return li ? li.className : '';");
        (prod == json!("step step-succeeded")).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}: {}\n{}", b.text(), run_json(&s, &run_id)));
    assert_eq!(
        b.js("return window.__sameDocument || 'reloaded';"),
        json!("yes")
    );
    assert_eq!(run_json(&s, &run_id)["status"], "succeeded");
    b.check("run-reached-prod");

    // The release job: bad input first, then without and with the prod confirmation.
    b.goto(&format!("{}/ui/pipelines/release", s.url));
    b.check("release-form");
    b.click_button("Start run", None);
    b.wait_text("ReleaseVersion", Duration::from_secs(10));
    assert_eq!(
        b.js("return document.querySelectorAll('[role=alert]').length;"),
        json!(1),
        "{}",
        b.text()
    );
    b.screenshot("release-missing-parameter");
    b.no_console_errors(&["status of 4"]);
    assert_eq!(runs_of(&s, "release"), 0);
    b.type_into("#param-ReleaseVersion", "1.4.2");
    b.js("document.querySelector('form.start input[name=csrf]').value = 'stale'; return true;");
    b.click_button("Start run", None);
    b.wait_text("This form has expired", Duration::from_secs(10));
    b.screenshot("release-stale-csrf");
    b.no_console_errors(&["status of 4"]);
    assert_eq!(runs_of(&s, "release"), 0);
    b.goto(&format!("{}/ui/pipelines/release", s.url));
    b.type_into("#param-ReleaseVersion", "1.4.2");
    b.click_button("Start run", None);
    b.wait_text("asks for confirmation", Duration::from_secs(10));
    assert_eq!(
        runs_of(&s, "release"),
        0,
        "nothing starts before the confirmation"
    );
    b.check("release-asks-confirmation");
    b.click("#confirm");
    b.click_button("Start run", None);
    wait_for("the release run page", Duration::from_secs(10), || {
        b.url().contains("/ui/runs/").then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}: {}", b.text()));
    let release_id = b.url().rsplit('/').next().unwrap().to_string();
    wait_for("the release to succeed", Duration::from_secs(90), || {
        (run_json(&s, &release_id)["status"] == "succeeded").then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}: {}", run_json(&s, &release_id)));
    assert_eq!(
        run_json(&s, &release_id)["params"]["ReleaseVersion"],
        "1.4.2"
    );
    b.wait_text("succeeded", Duration::from_secs(10));
    b.check("release-run");

    // Roll prod back from the app page (prod asks to confirm first).
    let before = app(&s, "/prod/web");
    assert_eq!(before["env"]["RELEASE"], "2", "{before}");
    b.goto(&format!("{}/ui/apps/prod/web", s.url));
    b.wait_text("Versions", Duration::from_secs(10));
    // Charts from the time-series store: CPU, memory, requests and latency.
    let charts =
        b.js("return document.querySelectorAll('#charts-h ~ div.charts figure.chart').length");
    assert_eq!(
        charts,
        json!(4),
        "four charts on the app page: {}",
        b.text()
    );
    b.check("app-prod");
    b.click_button("Roll back to this version", None);
    b.wait_text("asks for confirmation", Duration::from_secs(10));
    b.check("rollback-confirm");
    let version_before = app(&s, "/prod/web")["version"].clone();
    assert_eq!(
        version_before, before["version"],
        "nothing changed before the confirmation"
    );
    b.click("form.card button.primary");
    wait_for("the rollback", Duration::from_secs(30), || {
        let now = app(&s, "/prod/web");
        now["env"].get("RELEASE").is_none().then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}: {}", b.text()));
    b.wait_text("Tasks", Duration::from_secs(10));
    b.check("app-rolled-back");

    // Every action is on the audit page, by whom it was done.
    b.goto(&format!("{}/ui/audit?user=depa", s.url));
    let audit = b.text();
    for action in [
        &format!("POST /api/v1/runs/{run_id}/steps/ok/approve"),
        "POST /api/v1/pipelines/release/runs",
        "PUT /v2/apps/prod/web",
    ] {
        assert!(
            audit.contains(action),
            "{action} missing from the audit page:\n{audit}"
        );
    }
    b.check("audit");
    b.goto(&format!("{}/ui/deployments", s.url));
    b.wait_text("success", Duration::from_secs(10));
    assert!(b.text().contains("/prod/web"), "{}", b.text());
    b.check("deployments");
    b.goto(&format!("{}/ui/admin", s.url));
    b.check("admin");
    // The metrics explorer: a PromQL box, a range, the chart and the latest values.
    wait_for("a collection round", Duration::from_secs(30), || {
        b.goto(&format!(
            "{}/ui/metrics?query=slipway_tasks&range=15m",
            s.url
        ));
        (b.js("return document.querySelectorAll('figure.chart svg path.series').length")
            .as_u64()
            .unwrap_or(0)
            > 0)
        .then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}: {}", b.text()));
    assert!(b.text().contains("Latest"), "{}", b.text());
    b.check("metrics");
    b.goto(&format!("{}/ui/metrics?query=rate(%28&range=1h", s.url));
    assert!(
        b.text().to_lowercase().contains("parse") || b.text().contains("expected"),
        "a bad query says why: {}",
        b.text()
    );
    b.goto(&format!("{}/ui/pipelines", s.url));
    b.check("pipelines");

    // Cancel a running run, then retry it, from the run page.
    b.goto(&format!("{}/ui/pipelines/slow", s.url));
    b.click_button("Start run", None);
    wait_for("the slow run page", Duration::from_secs(10), || {
        b.url().contains("/ui/runs/").then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}: {}", b.text()));
    let slow_id = b.url().rsplit('/').next().unwrap().to_string();
    wait_for("the step to run", Duration::from_secs(30), || {
        (step_status(&run_json(&s, &slow_id), "wait") == "running").then_some(())
    })
    .unwrap();
    b.goto(&format!("{}/ui/runs/{slow_id}", s.url));
    // The log shows its tail (the API pages from the start).
    b.wait_text("\n6000", Duration::from_secs(20));
    let log = b.js("return document.querySelector('pre.log').innerText;");
    assert!(log.as_str().unwrap().starts_with("5701\n"), "{log}");
    b.click_button("Cancel run", Some("/cancel"));
    wait_for("the run to be cancelled", Duration::from_secs(30), || {
        (run_json(&s, &slow_id)["status"] == "cancelled").then_some(())
    })
    .unwrap();
    b.wait_text("Retry from the failed step", Duration::from_secs(10));
    b.check("run-cancelled");
    b.click_button("Retry from the failed step", Some("/retry"));
    wait_for("the retried run's page", Duration::from_secs(10), || {
        let url = b.url();
        (url.contains("/ui/runs/") && !url.ends_with(&slow_id)).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}: {}", b.text()));
    let retried = b.url().rsplit('/').next().unwrap().to_string();
    wait_for("the retried step to run", Duration::from_secs(30), || {
        (step_status(&run_json(&s, &retried), "wait") == "running").then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}: {}", run_json(&s, &retried)));
    b.goto(&format!("{}/ui/runs/{retried}", s.url));
    b.click_button("Cancel run", Some("/cancel"));
    wait_for("the retry to be cancelled", Duration::from_secs(30), || {
        (run_json(&s, &retried)["status"] == "cancelled").then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}: {}\n{}", b.text(), run_json(&s, &retried)));

    // Dark theme.
    b.cmd(
        "POST",
        "/goog/cdp/execute",
        Some(json!({"cmd": "Emulation.setEmulatedMedia", "params": {"features": [{"name": "prefers-color-scheme", "value": "dark"}]}})),
    );
    b.goto(&format!("{}/ui/runs/{run_id}", s.url));
    b.check("run-dark");

    // A phone-sized window.
    b.cmd(
        "POST",
        "/window/rect",
        Some(json!({"width": 390, "height": 844})),
    );
    b.goto(&format!("{}/ui/runs/{run_id}", s.url));
    b.check("run-phone");
    b.goto(&format!("{}/ui/", s.url));
    b.check("overview-phone");
}

/// A raw HTTP/1.1 request with the given extra headers: (status, head, body).
fn raw(
    url: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String, String) {
    use std::io::{Read, Write};
    let hostport = url.strip_prefix("http://").unwrap();
    let mut s = std::net::TcpStream::connect(hostport).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        req.push_str(&format!("Host: {hostport}\r\n"));
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, head.to_string(), body.to_string())
}

/// The session cookie a response sets.
fn session_cookie(head: &str) -> Option<String> {
    head.lines()
        .filter_map(|l| {
            l.strip_prefix("set-cookie: ")
                .or_else(|| l.strip_prefix("Set-Cookie: "))
        })
        .find(|c| c.starts_with("slipway_session=") && !c.starts_with("slipway_session=;"))
        .map(|c| c.split(';').next().unwrap_or_default().to_string())
}

#[test]
fn console_with_auth_none_serves_loopback_only_and_checks_csrf() {
    let dir = tempfile::tempdir().unwrap();
    let s = SlipwayProcess::start(&slipway_bin(), dir.path(), &["--auth", "none"])
        .expect("slipway starts");
    // Loopback: no sign-in, an anonymous admin session in a strict cookie.
    let (status, head, body) = raw(&s.url, "GET", "/ui/", &[], "");
    assert_eq!(status, 200, "{head}");
    assert!(
        body.contains("anonymous · admin") && body.contains("<h1>Overview</h1>"),
        "{body}"
    );
    let cookie = session_cookie(&head).expect("a session cookie");
    assert!(head.contains("HttpOnly; SameSite=Strict"), "{head}");
    assert!(!head.contains("Secure"), "{head}");
    // Another host name (DNS rebinding) gets nothing.
    let (status, _, body) = raw(&s.url, "GET", "/ui/", &[("Host", "evil.example:8080")], "");
    assert_eq!(status, 403, "{body}");
    // Behind a TLS proxy the cookie is Secure.
    let (_, head, _) = raw(&s.url, "GET", "/ui/", &[("X-Forwarded-Proto", "https")], "");
    assert!(
        head.contains("SameSite=Strict; Max-Age=43200; Secure"),
        "{head}"
    );
    // A form without the session's CSRF token changes nothing and says why.
    let form = [
        ("Cookie", cookie.as_str()),
        ("Content-Type", "application/x-www-form-urlencoded"),
    ];
    let (status, _, body) = raw(
        &s.url,
        "POST",
        "/ui/admin/users",
        &form,
        "csrf=stale&name=mallory&role=admin&password=long-enough-password",
    );
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("This form has expired"), "{body}");
    let users = get_json(&format!("{}/api/v1/users", s.url)).unwrap();
    assert!(!users.to_string().contains("mallory"), "{users}");
    // With the token it works, through the API (and its audit log).
    let csrf = body
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap()
        .to_string();
    let (status, head, body) = raw(
        &s.url,
        "POST",
        "/ui/admin/users",
        &form,
        &format!("csrf={csrf}&name=mallory&role=viewer&password=long-enough-password"),
    );
    assert_eq!(status, 303, "{head}{body}");
    let users = get_json(&format!("{}/api/v1/users", s.url)).unwrap();
    assert!(users.to_string().contains("mallory"), "{users}");
    let audit = get_json(&format!("{}/api/v1/audit?user=anonymous", s.url)).unwrap();
    assert!(audit.to_string().contains("POST /api/v1/users"), "{audit}");
    // Bad input: a readable message, nothing changed.
    let (status, _, body) = raw(
        &s.url,
        "POST",
        "/ui/admin/tokens",
        &form,
        &format!("csrf={csrf}&name=ci&days=999"),
    );
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("Nothing was changed: expiry must be a number of days from 1 to 366"),
        "{body}"
    );
    let policies = get_json(&format!("{}/api/v1/policies", s.url)).unwrap();
    let (status, _, body) = raw(
        &s.url,
        "POST",
        "/ui/admin/policies",
        &form,
        &format!("csrf={csrf}&policies=%7Bnot+json"),
    );
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("Nothing was changed: the policy document is not JSON"),
        "{body}"
    );
    let (status, _, body) = raw(
        &s.url,
        "POST",
        "/ui/admin/policies",
        &form,
        &format!("csrf={csrf}&policies=%7B%22environments%22%3A%5B%5D%7D"),
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("Nothing was changed:"), "{body}");
    assert_eq!(
        get_json(&format!("{}/api/v1/policies", s.url)).unwrap(),
        policies
    );
}

/// The value of cookie `name` a response sets.
fn set_cookie_value(head: &str, name: &str) -> Option<String> {
    head.lines()
        .filter_map(|l| {
            l.strip_prefix("set-cookie: ")
                .or_else(|| l.strip_prefix("Set-Cookie: "))
        })
        .find_map(|c| c.strip_prefix(&format!("{name}=")))
        .map(|c| c.split(';').next().unwrap_or_default().to_string())
        .filter(|v| !v.is_empty())
}

#[test]
fn a_console_session_survives_a_server_restart_and_ends_at_sign_out() {
    let (mut s, _dir) = server();
    let password = user(&s, "depa", "deployer");
    let (status, head, _) = raw(&s.url, "GET", "/ui/login", &[], "");
    assert_eq!(status, 200, "{head}");
    let login = set_cookie_value(&head, "slipway_login").expect("the sign-in form's cookie");
    let (status, head, body) = raw(
        &s.url,
        "POST",
        "/ui/login",
        &[
            ("Cookie", &format!("slipway_login={login}")),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        &format!("csrf={login}&user=depa&password={password}&next=/ui/"),
    );
    assert_eq!(status, 303, "{head}{body}");
    let cookie = session_cookie(&head).expect("a session cookie");
    let signed_in = |s: &SlipwayProcess| {
        let (status, head, body) = raw(&s.url, "GET", "/ui/", &[("Cookie", &cookie)], "");
        status == 200 && body.contains("depa · deployer") || {
            assert!(
                status == 303 && head.contains("/ui/login"),
                "neither the page nor the sign-in: {status} {head}"
            );
            false
        }
    };
    assert!(signed_in(&s));
    // kill -9 and start again on the same data: the browser is still signed in.
    s.kill9();
    s.restart().expect("slipway starts again");
    assert!(signed_in(&s), "the restart signed the browser out");
    // The form on a page after the restart works with the session's CSRF token.
    let (_, _, page) = raw(&s.url, "GET", "/ui/", &[("Cookie", &cookie)], "");
    let csrf = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("a form with a CSRF token")
        .to_string();
    let (status, head, _) = raw(
        &s.url,
        "POST",
        "/ui/logout",
        &[
            ("Cookie", &cookie),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        &format!("csrf={csrf}"),
    );
    assert_eq!(status, 303, "{head}");
    assert!(!signed_in(&s), "signed out, yet the session still works");
    s.kill9();
    s.restart().expect("slipway starts again");
    assert!(
        !signed_in(&s),
        "a session ended at sign-out came back after a restart"
    );
}

#[test]
fn the_app_page_charts_latency_per_instance_from_the_proxys_backend_histograms() {
    let dir = tempfile::tempdir().unwrap();
    let s = SlipwayProcess::start(
        &slipway_bin(),
        dir.path(),
        &["--auth", "none", "--metrics-interval", "1s"],
    )
    .expect("slipway starts");
    let def = json!({
        "id": "/qa/lat", "cmd": testkit::testsrv().to_string_lossy(), "instances": 2,
        "cpus": 0.1, "mem": 32,
        "labels": {"HAPROXY_GROUP": "external", "HAPROXY_0_MODE": "http",
                   "HAPROXY_0_VHOST": "lat.test"},
        "healthChecks": [{"protocol": "HTTP", "path": "/health", "portIndex": 0,
                          "intervalSeconds": 1, "gracePeriodSeconds": 30}]
    });
    let (status, body) = send(&s, "POST", "/v2/apps", Some(&def));
    assert_eq!(status, 201, "{body}");
    let tasks: Vec<String> = wait_for("2 healthy tasks", Duration::from_secs(60), || {
        let t = healthy_tasks(&app(&s, "/qa/lat"));
        (t.len() == 2).then(|| {
            t.iter()
                .filter_map(|t| t["id"].as_str().map(str::to_string))
                .collect()
        })
    })
    .unwrap();
    // Requests through the proxy reach both instances (round robin), over several of the
    // collector's 1 s rounds so that a rate has an increase to show.
    let vhost = s.proxy_vhost_addr().expect("vhost listener");
    let url = format!("http://{vhost}");
    let sent = 40;
    for _ in 0..sent {
        let (code, _, _) = raw(&url, "GET", "/", &[("Host", "lat.test")], "");
        assert_eq!(code, 200);
        std::thread::sleep(Duration::from_millis(100));
    }
    // Each instance has its own histogram, and together they count every request.
    let q = "slipway_proxy_backend_request_duration_seconds_count{app=\"/qa/lat\"}";
    let counts: Vec<(String, f64)> =
        wait_for("both histograms stored", Duration::from_secs(20), || {
            let v = crate::watch::query(&s, q);
            let r: Vec<(String, f64)> = v["data"]["result"]
                .as_array()?
                .iter()
                .filter_map(|x| {
                    Some((
                        x["metric"]["backend"].as_str()?.to_string(),
                        x["value"][1].as_str()?.parse().ok()?,
                    ))
                })
                .collect();
            (r.len() == 2 && r.iter().map(|x| x.1).sum::<f64>() >= f64::from(sent)).then_some(r)
        })
        .unwrap();
    for t in &tasks {
        assert!(
            counts.iter().any(|(b, n)| b == t && *n > 0.0),
            "{t} has no latency samples: {counts:?}"
        );
    }
    // The app page's latency chart has a line per instance and the app's p99.
    std::thread::sleep(Duration::from_secs(2));
    let (status, _, page) = raw(&s.url, "GET", "/ui/apps/qa/lat", &[], "");
    assert_eq!(status, 200, "{page}");
    let chart = page
        .split("<figure")
        .find(|f| f.contains("Latency p95 per instance"))
        .unwrap_or_else(|| panic!("no latency chart: {page}"));
    for t in &tasks {
        assert!(
            chart.contains(&format!("p95 {t}")),
            "no line for {t}: {chart}"
        );
    }
    assert!(chart.contains("p99 app"), "{chart}");
}
