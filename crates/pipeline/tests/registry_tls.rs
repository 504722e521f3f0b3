//! Registries over TLS (issue 11 §8) and a registry outage during an image step (§5), with
//! Debian's real `docker-registry`, one per test, on 127.0.0.1 at a port the test picked,
//! serving a certificate the test made ([`testkit::tls_registry`]):
//! - a deploy step pins a tag to its digest over TLS, trusting the registry through the
//!   extra CA bundle (`registry_ca`), with htpasswd credentials;
//! - a promote step tags an image into another repository (blobs mounted) and into another
//!   registry (blobs copied), through the bearer-token flow;
//! - a CA that did not sign the registry's certificate is an error naming the certificate
//!   problem; wrong credentials are a 401 naming the user, never the password;
//! - the registry stops while an image step runs: the step fails with the error, a retry
//!   while it is down fails the same way, and a retry once it is back succeeds.

use pipeline::service::{Deployer, DeploymentStatus, DockerSetup, Service, Source};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use store::{RunRow, Store};
use testkit::tls_registry::{RegistryAuth, TlsRegistry, TokenServer};

const USER: &str = "slipway";
const PASSWORD: &str = "registry-secret-Xy7";

/// Docker, docker-registry, openssl and htpasswd are there (under `CI=true` they must be).
fn prerequisites() -> bool {
    if testkit::docker().is_none() {
        return false;
    }
    let have = |cmd: &str| {
        std::process::Command::new("sh")
            .args(["-c", &format!("command -v {cmd}")])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    testkit::have(
        "docker-registry, openssl and htpasswd",
        have("docker-registry") && have("openssl") && have("htpasswd"),
    )
}

/// A deployer that records the definitions it is given and reports them deployed.
#[derive(Default)]
struct Recorder {
    apps: Mutex<Vec<serde_json::Value>>,
}

impl Deployer for Recorder {
    fn deploy(
        &self,
        _who: &pipeline::service::Actor,
        app: serde_json::Value,
    ) -> Result<String, String> {
        let mut apps = self.apps.lock().unwrap();
        apps.push(app);
        Ok(format!("d{}", apps.len()))
    }
    fn status(&self, _deployment: &str) -> Result<Option<DeploymentStatus>, String> {
        Ok(Some(DeploymentStatus {
            status: "success".into(),
            reason: None,
            progress: String::new(),
        }))
    }
    fn is_admin(&self, _who: &pipeline::service::Actor) -> bool {
        false
    }
}

struct Fixture {
    _data: tempfile::TempDir,
    repo: tempfile::TempDir,
    store: Arc<Store>,
    service: Service,
    deployer: Arc<Recorder>,
}

/// A service with `files` committed in its repository and the pipeline `pipeline` (in
/// `.slipway/pipeline.yaml`) registered as `p`, with Docker set up as given.
async fn fixture(pipeline: &str, files: &[(&str, &str)], setup: DockerSetup) -> Fixture {
    let data = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(&data.path().join("db")).unwrap());
    let service = Service::new(
        store.clone(),
        data.path().join("runs"),
        Arc::new(|_: &str, _: &str| Err("no secrets here".to_string())),
    );
    let repo = testkit::git_repo(pipeline, files);
    service.set_docker(setup);
    let deployer = Arc::new(Recorder::default());
    service.set_deployer(deployer.clone());
    let source = Source {
        repo: repo.path().to_string_lossy().into(),
        branch: "dev".into(),
        file: ".slipway/pipeline.yaml".into(),
        poll_ms: None,
        cron: Vec::new(),
        file_text: None,
    };
    service.add_pipeline("p", &source).await.unwrap();
    Fixture {
        _data: data,
        repo,
        store,
        service,
        deployer,
    }
}

fn setup(config: Option<PathBuf>, ca: Option<PathBuf>) -> DockerSetup {
    DockerSetup {
        config: ::docker::DockerConfig::default(),
        registry_config: config,
        registry_ca: ca,
    }
}

/// Starts a run of `p` with `params` and waits for its end.
async fn run(f: &Fixture, params: &[(&str, &str)]) -> RunRow {
    let params = params
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect::<BTreeMap<_, _>>();
    let run = f
        .service
        .trigger("p", "manual", "user:lee", params)
        .unwrap();
    wait_end(&f.store, &run.id).await
}

async fn wait_end(store: &Store, id: &str) -> RunRow {
    let start = Instant::now();
    loop {
        let run = store.run(id).unwrap().unwrap();
        if run.status.is_finished() {
            return run;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "run stuck in {}: {:?}",
            run.status,
            store.steps(id)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// (status, reason, outputs, log) of step `name` of run `id`.
fn step(store: &Store, id: &str, name: &str) -> (String, String, serde_json::Value, String) {
    let s = store
        .steps(id)
        .unwrap()
        .into_iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no step {name} in {:?}", store.steps(id)));
    let log = store
        .logs(id, name, 0, 1000)
        .unwrap()
        .into_iter()
        .map(|l| l.line)
        .collect::<Vec<_>>()
        .join("\n");
    (
        s.status.as_str().to_string(),
        s.reason.clone().unwrap_or_default(),
        serde_json::from_str(&s.outputs).unwrap_or_default(),
        log,
    )
}

/// A Docker `config.json` with credentials for each `(registry, user, password)`.
fn docker_config(dir: &Path, auths: &[(&str, &str, &str)]) -> PathBuf {
    let entries: serde_json::Map<String, serde_json::Value> = auths
        .iter()
        .map(|(registry, user, password)| {
            let one: serde_json::Value =
                serde_json::from_str(&testkit::docker_config_json(registry, user, password))
                    .unwrap();
            (registry.to_string(), one["auths"][registry].clone())
        })
        .collect();
    let file = dir.join(format!("config-{}.json", testkit::free_port()));
    std::fs::write(&file, serde_json::json!({ "auths": entries }).to_string()).unwrap();
    file
}

/// The test image pushed as `repo_tag` to `registry`.
fn push(registry: &TlsRegistry, repo_tag: &str) -> String {
    let local = testkit::test_image("tls-registry").unwrap();
    registry
        .push(&local, repo_tag)
        .unwrap_or_else(|e| panic!("push to {}: {e:#}\n{}", registry.addr, registry.log()))
}

const DEPLOY: &str = "version: 1\nname: p\nparams:\n  Image: { type: string, required: true }\nsteps:\n  ship:\n    deploy: { env: qa, app: app.json, image: \"${{ params.Image }}\", timeout: 60s }\n";
const APP: &str = r#"{"id": "/qa/app", "container": {"docker": {"image": "set-by-the-step"}}}"#;

/// Named `docker::…` so that nextest runs them in the `docker` test group
/// (`.config/nextest.toml`), one at a time with the other tests of the shared daemon.
mod docker {
    use super::*;

    #[tokio::test]
    async fn a_tag_is_pinned_to_its_digest_over_tls_with_the_extra_ca_and_basic_auth() {
        if !prerequisites() {
            return;
        }
        let reg = TlsRegistry::start(RegistryAuth::Htpasswd {
            user: USER.into(),
            password: PASSWORD.into(),
        })
        .unwrap();
        let image = push(&reg, "shop/app:1.0");
        let digest = reg.tag_digest("shop/app", "1.0").expect("pushed");
        let dir = tempfile::tempdir().unwrap();
        let config = docker_config(dir.path(), &[(&reg.addr, USER, PASSWORD)]);
        let f = fixture(
            DEPLOY,
            &[("app.json", APP)],
            setup(Some(config), Some(reg.ca_file.clone())),
        )
        .await;
        let done = run(&f, &[("Image", &image)]).await;
        let (status, reason, outputs, log) = step(&f.store, &done.id, "ship");
        assert_eq!(status, "succeeded", "{reason}\n{log}");
        let pinned = format!("{}/shop/app@{digest}", reg.addr);
        assert_eq!(outputs["image"], pinned.as_str(), "{log}");
        assert!(log.contains(&format!("{image} is {digest}")), "{log}");
        let deployed = f.deployer.apps.lock().unwrap().clone();
        assert_eq!(deployed[0]["container"]["docker"]["image"], pinned.as_str());
        assert!(!log.contains(PASSWORD), "{log}");
    }

    #[tokio::test]
    async fn a_ca_that_did_not_sign_the_registry_is_a_certificate_error() {
        if !prerequisites() {
            return;
        }
        let reg = TlsRegistry::start(RegistryAuth::Open).unwrap();
        let image = push(&reg, "shop/app:1.0");
        for ca in [Some(reg.other_ca().unwrap()), None] {
            let f = fixture(DEPLOY, &[("app.json", APP)], setup(None, ca.clone())).await;
            let done = run(&f, &[("Image", &image)]).await;
            let (status, reason, _, log) = step(&f.store, &done.id, "ship");
            assert_eq!(status, "failed", "{ca:?}: {log}");
            assert!(
                reason.contains(&format!("registry {}: TLS certificate problem", reg.addr))
                    && reason.contains("unknown authority")
                    && reason.contains("--registry-ca"),
                "{ca:?}: {reason}"
            );
            assert!(
                f.deployer.apps.lock().unwrap().is_empty(),
                "nothing is deployed unpinned"
            );
        }
    }

    #[tokio::test]
    async fn wrong_credentials_are_a_401_naming_the_user_and_not_the_password() {
        if !prerequisites() {
            return;
        }
        let tokens = TokenServer::start(USER, PASSWORD).unwrap();
        let basic = TlsRegistry::start(RegistryAuth::Htpasswd {
            user: USER.into(),
            password: PASSWORD.into(),
        })
        .unwrap();
        let bearer = TlsRegistry::start(RegistryAuth::Token(tokens.clone())).unwrap();
        let wrong = "not-the-password-Qz9";
        let dir = tempfile::tempdir().unwrap();
        let bundle = dir.path().join("cas.pem");
        std::fs::write(
            &bundle,
            std::fs::read_to_string(&basic.ca_file).unwrap()
                + &std::fs::read_to_string(&bearer.ca_file).unwrap(),
        )
        .unwrap();
        for (reg, expected) in [
            (
                &basic,
                format!("the registry refused the credentials of `{USER}` (401 Unauthorized"),
            ),
            (
                &bearer,
                format!(
                    "the token service {} refused the credentials of `{USER}` (401 Unauthorized)",
                    tokens.realm()
                ),
            ),
        ] {
            let image = push(reg, "shop/app:1.0");
            let config = docker_config(dir.path(), &[(&reg.addr, USER, wrong)]);
            let f = fixture(
                DEPLOY,
                &[("app.json", APP)],
                setup(Some(config), Some(bundle.clone())),
            )
            .await;
            let done = run(&f, &[("Image", &image)]).await;
            let (status, reason, _, log) = step(&f.store, &done.id, "ship");
            assert_eq!(status, "failed", "{log}");
            assert!(reason.contains(&expected), "{reason}");
            assert!(
                !reason.contains(wrong) && !log.contains(wrong),
                "{reason}\n{log}"
            );
            // No credentials at all: said so, naming the option.
            let f = fixture(
                DEPLOY,
                &[("app.json", APP)],
                setup(None, Some(bundle.clone())),
            )
            .await;
            let done = run(&f, &[("Image", &image)]).await;
            let (_, reason, _, _) = step(&f.store, &done.id, "ship");
            assert!(
                reason.contains("asks for credentials") && reason.contains("--registry-config"),
                "{reason}"
            );
        }
        assert!(tokens.refused() >= 2, "the token service was asked");
    }

    #[tokio::test]
    async fn promotion_between_repositories_and_registries_over_tls_with_bearer_tokens() {
        if !prerequisites() {
            return;
        }
        let tokens = TokenServer::start(USER, PASSWORD).unwrap();
        let a = TlsRegistry::start(RegistryAuth::Token(tokens.clone())).unwrap();
        let b = TlsRegistry::start(RegistryAuth::Htpasswd {
            user: USER.into(),
            password: PASSWORD.into(),
        })
        .unwrap();
        let built = push(&a, "team/app:build-7");
        let digest = a.tag_digest("team/app", "build-7").expect("pushed");
        let dir = tempfile::tempdir().unwrap();
        let bundle = dir.path().join("cas.pem");
        std::fs::write(
            &bundle,
            std::fs::read_to_string(&a.ca_file).unwrap()
                + &std::fs::read_to_string(&b.ca_file).unwrap(),
        )
        .unwrap();
        let config = docker_config(
            dir.path(),
            &[(&a.addr, USER, PASSWORD), (&b.addr, USER, PASSWORD)],
        );
        let pipeline = "version: 1\nname: p\nparams:\n  Image: { type: string, required: true }\n  To: { type: string, required: true }\nsteps:\n  promote:\n    promote: { image: \"${{ params.Image }}\", to: \"${{ params.To }}\" }\n";
        let f = fixture(pipeline, &[], setup(Some(config), Some(bundle))).await;
        let issued_before = tokens.issued();

        // Into another repository of the same registry: the blobs are mounted.
        let to = format!("{}/release/app:1.0.0", a.addr);
        let done = run(&f, &[("Image", &built), ("To", &to)]).await;
        let (status, reason, outputs, log) = step(&f.store, &done.id, "promote");
        assert_eq!(status, "succeeded", "{reason}\n{log}\n{}", a.log());
        assert_eq!(outputs["digest"], digest.as_str());
        assert_eq!(
            outputs["image"],
            format!("{}/release/app@{digest}", a.addr).as_str()
        );
        assert!(
            log.contains(&format!("mounted into {}/release/app", a.addr)),
            "{log}"
        );
        assert!(log.contains("(no rebuild)"), "{log}");
        assert_eq!(a.tag_digest("release/app", "1.0.0"), Some(digest.clone()));
        assert!(tokens.issued() > issued_before, "bearer tokens were used");

        // Into another registry (by digest): the blobs are copied.
        let by_digest = format!("{}/team/app@{digest}", a.addr);
        let to = format!("{}/prod/app:1.0.0", b.addr);
        let done = run(&f, &[("Image", &by_digest), ("To", &to)]).await;
        let (status, reason, outputs, log) = step(&f.store, &done.id, "promote");
        assert_eq!(status, "succeeded", "{reason}\n{log}\n{}", b.log());
        assert!(
            log.contains(&format!("copied into {}/prod/app", b.addr)),
            "{log}"
        );
        assert_eq!(
            outputs["image"],
            format!("{}/prod/app@{digest}", b.addr).as_str()
        );
        assert_eq!(b.tag_digest("prod/app", "1.0.0"), Some(digest.clone()));
        // The copy is whole: dockerd pulls it back from the second registry.
        let pulled = pull_with_login(&b, &format!("{}/prod/app:1.0.0", b.addr));
        assert!(pulled.is_ok(), "{pulled:?}");
        assert!(!log.contains(PASSWORD));
    }

    /// `docker pull` of `image` from `reg` with a throw-away login.
    fn pull_with_login(reg: &TlsRegistry, image: &str) -> Result<(), String> {
        let cfg = tempfile::tempdir().unwrap();
        let docker = |args: &[&str], input: Option<&str>| {
            use std::io::Write;
            let mut child = std::process::Command::new("docker")
                .args(args)
                .env("DOCKER_CONFIG", cfg.path())
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            if let (Some(i), Some(mut s)) = (input, child.stdin.take()) {
                s.write_all(i.as_bytes()).unwrap();
            }
            let out = child.wait_with_output().unwrap();
            if out.status.success() {
                Ok(())
            } else {
                Err(String::from_utf8_lossy(&out.stderr).to_string())
            }
        };
        docker(
            &["login", &reg.addr, "-u", USER, "--password-stdin"],
            Some(PASSWORD),
        )?;
        docker(&["pull", "-q", image], None)?;
        let _ = docker(&["rmi", image], None);
        Ok(())
    }

    /// Issue 11 §5: the registry stops while an image step runs. The step fails with the
    /// registry's error (nothing hangs or retries by itself), a retry while it is still down
    /// fails the same way, and once it is back a retry of the same run succeeds.
    #[tokio::test]
    async fn the_registry_stopping_fails_the_image_step_and_a_retry_succeeds_once_it_is_back() {
        if !prerequisites() {
            return;
        }
        let mut reg = TlsRegistry::start(RegistryAuth::Open).unwrap();
        let pipeline = format!(
            "version: 1\nname: p\nsteps:\n  image:\n    docker: {{ build: app, push: \"{}/outage/app:${{{{ run.number }}}}\" }}\n  after:\n    needs: [image]\n    run: 'echo using ${{{{ steps.image.outputs.image }}}}'\n",
            reg.addr
        );
        let f = fixture(&pipeline, &[], setup(None, Some(reg.ca_file.clone()))).await;
        std::fs::create_dir_all(f.repo.path().join("app")).unwrap();
        std::fs::copy(
            testkit::static_testsrv().unwrap(),
            f.repo.path().join("app/testsrv"),
        )
        .unwrap();
        std::fs::write(
            f.repo.path().join("app/Dockerfile"),
            "FROM scratch\nCOPY testsrv /testsrv\nENTRYPOINT [\"/testsrv\"]\n",
        )
        .unwrap();
        testkit::git(f.repo.path(), &["add", "."]);
        testkit::git(f.repo.path(), &["commit", "-qm", "app"]);

        // The registry goes away (killed) before the step pushes.
        reg.stop();
        let started = Instant::now();
        let failed = run(&f, &[]).await;
        assert_eq!(failed.status.as_str(), "failed");
        let (status, reason, _, log) = step(&f.store, &failed.id, "image");
        assert_eq!(status, "failed", "{log}");
        assert!(
            reason.contains(&reg.addr) && reason.contains("connection refused"),
            "the registry's error: {reason}\n{log}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "failed promptly: {:?}",
            started.elapsed()
        );
        let (after, _, _, _) = step(&f.store, &failed.id, "after");
        assert_ne!(after, "succeeded", "nothing ran on a missing image");

        // Still down: the retry fails the same way, and leaves one failed run.
        let again = f.service.retry(&failed.id, "user:lee").unwrap();
        let again = wait_end(&f.store, &again.id).await;
        assert_eq!(again.status.as_str(), "failed");
        assert!(
            step(&f.store, &again.id, "image")
                .1
                .contains("connection refused")
        );

        // Back: a retry of the first run succeeds and the image is in the registry.
        reg.restart().unwrap();
        let retried = f.service.retry(&failed.id, "user:lee").unwrap();
        let done = wait_end(&f.store, &retried.id).await;
        let (status, reason, outputs, log) = step(&f.store, &retried.id, "image");
        assert_eq!(status, "succeeded", "{reason}\n{log}\n{}", reg.log());
        assert_eq!(done.status.as_str(), "succeeded");
        let digest = outputs["digest"].as_str().unwrap().to_string();
        assert_eq!(
            reg.tag_digest("outage/app", &retried.number.to_string()),
            Some(digest.clone())
        );
        assert!(
            step(&f.store, &retried.id, "after")
                .3
                .contains(&format!("using {}/outage/app@{digest}", reg.addr))
        );
        let _ = std::process::Command::new("docker")
            .args([
                "rmi",
                &format!("{}/outage/app:{}", reg.addr, retried.number),
            ])
            .output();
        // Nothing else was started by the outage.
        assert_eq!(f.store.runs(Some("p"), 10).unwrap().len(), 3);
    }
}
