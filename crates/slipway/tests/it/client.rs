//! Existing tooling against the server: the real marathon-python client, and the CLI.

use crate::*;
use std::process::Command;

#[test]
fn marathon_python_client_creates_lists_scales_and_deletes() {
    let Some(python) = testkit::marathon_python() else {
        assert!(
            !testkit::strict(),
            "marathon-python is missing: run the README's test command (scripts/test), which installs it"
        );
        eprintln!("skipping: marathon-python not installed (run scripts/test)");
        return;
    };
    let (s, _dir) = server();
    let user = json!({"name": "py", "role": "deployer", "password": "py-password"});
    let (status, body) = send(&s, "POST", "/api/v1/users", Some(&user));
    assert_eq!(status, 201, "{body}");
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/python/marathon_client.py"
    );
    let out = Command::new(python)
        .arg(script)
        .arg(&s.url)
        .args(["py", "py-password"])
        .output()
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "marathon-python failed:\n{stdout}\n{stderr}\nserver log:\n{}",
        s.log()
    );
    assert!(stdout.contains("marathon-python OK"), "{stdout}");
}

#[test]
fn cli_deploy_waits_for_health_and_reports_failures() {
    let (s, dir) = server();
    let file = dir.path().join("web.json");
    std::fs::write(&file, web_app("/cli-web", 2, "1").to_string()).unwrap();
    let run = |args: &[&str]| {
        Command::new(slipway_bin())
            .args(args)
            .env("SLIPWAY_URL", &s.url)
            .env("SLIPWAY_TOKEN", testkit::ADMIN_TOKEN)
            .env("CI", "true")
            .output()
            .unwrap()
    };
    let out = run(&[
        "apps",
        "deploy",
        "-f",
        file.to_str().unwrap(),
        "--timeout",
        "120",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(healthy_tasks(&app(&s, "/cli-web")).len(), 2);

    let out = run(&["apps", "list", "--output", "json"]);
    let list: Value = serde_json::from_slice(&out.stdout).expect("json output");
    assert_eq!(list[0]["id"], "/cli-web");

    // A definition the server rejects: exit code 4 with the field path.
    std::fs::write(
        &file,
        json!({"id": "/bad", "cmd": "x", "instances": -1}).to_string(),
    )
    .unwrap();
    let out = run(&["apps", "deploy", "-f", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/instances"));

    // A deployment that never becomes healthy times out with exit code 2.
    let mut never = web_app("/never", 1, "1");
    never["env"] = json!({"START_UNHEALTHY": "1"});
    std::fs::write(&file, never.to_string()).unwrap();
    let out = run(&[
        "apps",
        "deploy",
        "-f",
        file.to_str().unwrap(),
        "--timeout",
        "3",
    ]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn cli_login_stores_a_token_that_later_commands_use() {
    let (s, dir) = server();
    let user = json!({"name": "dana", "role": "developer", "password": "dana-password"});
    let (status, body) = send(&s, "POST", "/api/v1/users", Some(&user));
    assert_eq!(status, 201, "{body}");
    let config = dir.path().join("config");
    let cli = |args: &[&str], stdin: &str| {
        use std::io::Write;
        let mut child = Command::new(slipway_bin())
            .args(args)
            .env("SLIPWAY_URL", &s.url)
            .env_remove("SLIPWAY_TOKEN")
            .env("XDG_CONFIG_HOME", &config)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    let out = cli(&["whoami"], "");
    assert_eq!(
        out.status.code(),
        Some(7),
        "no credentials yet: exit 7 (401)"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("slipway login"));
    let out = cli(
        &["login", "--user", "dana", "--password-stdin"],
        "dana-password\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = cli(&["whoami", "--output", "json"], "");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let me: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (me["user"].as_str(), me["role"].as_str()),
        (Some("dana"), Some("developer"))
    );
    // The stored token is a token, not the password.
    let creds = std::fs::read_to_string(config.join("slipway/credentials.json")).unwrap();
    assert!(creds.contains("slw_") && !creds.contains("dana-password"));
    // A developer is refused in prod (exit 7, the server's reason) and the attempt is audited.
    std::fs::write(
        dir.path().join("p.json"),
        json!({"id": "/prod/x", "cmd": "sleep 1"}).to_string(),
    )
    .unwrap();
    let p = dir.path().join("p.json");
    let out = cli(
        &["apps", "deploy", "-f", p.to_str().unwrap(), "--no-wait"],
        "",
    );
    assert_eq!(
        out.status.code(),
        Some(7),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("Forbidden"));
    let audit = get_json(&format!("{}/api/v1/audit?user=dana", s.url)).unwrap();
    assert_eq!(audit["records"][0]["outcome"], "denied");
    let out = cli(&["logout"], "");
    assert!(out.status.success());
    assert_eq!(
        cli(&["whoami"], "").status.code(),
        Some(7),
        "logged out: exit 7 (401)"
    );
}
