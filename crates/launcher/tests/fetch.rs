//! Fetch tests: file:// copy, absolute path, tar.gz and .gz extraction, chmod, http, errors.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use common::{launcher, read, shell_spec};
use launcher::{FetchSpec, LaunchError, LaunchSpec, Launcher, wait_exit};

fn item(uri: &str) -> FetchSpec {
    FetchSpec {
        uri: uri.to_owned(),
        extract: false,
        executable: false,
        cache: false,
        output_file: None,
    }
}

/// Launches `spec` and waits for the (trivial) task to finish.
async fn run(l: &Launcher, spec: &LaunchSpec) -> Result<std::path::PathBuf, LaunchError> {
    let mut launched = l.launch(spec).await?;
    assert!(wait_exit(&mut launched.child).await.success());
    Ok(launched.sandbox)
}

fn sh(dir: &Path, script: &str) {
    let ok = Command::new("sh")
        .arg("-c")
        .arg(script)
        .current_dir(dir)
        .status()
        .expect("sh")
        .success();
    assert!(ok, "{script}");
}

#[tokio::test]
async fn copies_extracts_and_chmods_local_artifacts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path().join("src");
    std::fs::create_dir(&src).expect("mkdir");
    sh(
        &src,
        "mkdir app && echo payload > app/data.txt && tar -czf app.tar.gz app \
         && echo '#!/bin/sh' > run.sh && echo plain > plain.txt && gzip -c plain.txt > single.gz",
    );
    let l = launcher("fetch");
    let mut spec = shell_spec("fetch-local", "./run.sh", dir.path());
    let mut script = item(&format!("file://{}", src.join("run.sh").display()));
    script.executable = true;
    let mut archive = item(&format!("file://{}", src.join("app.tar.gz").display()));
    archive.extract = true;
    let mut renamed = item(&src.join("plain.txt").display().to_string());
    renamed.output_file = Some("conf/renamed.txt".into());
    let mut gz = item(&src.join("single.gz").display().to_string());
    gz.extract = true;
    spec.fetch = vec![script, archive, renamed, gz];
    let sandbox = run(&l, &spec).await.expect("launch");

    let mode = std::fs::metadata(sandbox.join("run.sh"))
        .expect("run.sh")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o755);
    assert!(sandbox.join("app.tar.gz").exists());
    assert_eq!(read(&sandbox.join("app/data.txt")), "payload\n");
    assert_eq!(read(&sandbox.join("conf/renamed.txt")), "plain\n");
    assert_eq!(read(&sandbox.join("single")), "plain\n");
}

#[tokio::test]
async fn missing_file_is_an_error_naming_the_uri() {
    let dir = tempfile::tempdir().expect("tempdir");
    let l = launcher("fetch-missing");
    let mut spec = shell_spec("fetch-missing", "true", dir.path());
    let uri = format!("file://{}/nope.tgz", dir.path().display());
    spec.fetch = vec![item(&uri)];
    let err = l.launch(&spec).await.expect_err("must fail");
    assert!(matches!(err, LaunchError::Fetch { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.starts_with(&format!("fetching {uri} failed: ")),
        "{msg}"
    );
    assert!(msg.contains("No such file"), "{msg}");

    spec.fetch = vec![item("s3://bucket/key")];
    let err = l.launch(&spec).await.expect_err("unsupported scheme");
    assert!(err.to_string().contains("s3://bucket/key"), "{err}");
    assert!(
        l.scan().is_empty(),
        "nothing may be started after a failed fetch"
    );
}

/// Serves `count` requests: `/ok.txt` gets a body, anything else a 404.
fn serve(listener: TcpListener, count: usize) {
    std::thread::spawn(move || {
        for stream in listener.incoming().take(count) {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let mut request_line = String::new();
            let _ = reader.read_line(&mut request_line);
            loop {
                let mut line = String::new();
                match reader.read_line(&mut line) {
                    Ok(n) if n > 0 && line != "\r\n" => {}
                    _ => break,
                }
            }
            let (status, body) = if request_line.starts_with("GET /ok.txt") {
                ("200 OK", "hello over http\n")
            } else {
                ("404 Not Found", "missing\n")
            };
            let response = format!(
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes());
        }
    });
}

#[tokio::test]
async fn http_fetch_downloads_and_reports_failures() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    serve(listener, 2);
    let dir = tempfile::tempdir().expect("tempdir");
    let l = launcher("http");
    let mut spec = shell_spec("http-ok", "true", dir.path());
    spec.fetch = vec![item(&format!("http://127.0.0.1:{port}/ok.txt?v=1"))];
    let sandbox = run(&l, &spec).await.expect("launch");
    assert_eq!(read(&sandbox.join("ok.txt")), "hello over http\n");

    let mut spec = shell_spec("http-404", "true", dir.path());
    let uri = format!("http://127.0.0.1:{port}/absent.bin");
    spec.fetch = vec![item(&uri)];
    let msg = l.launch(&spec).await.expect_err("404").to_string();
    assert!(msg.contains(&uri), "{msg}");
    assert!(msg.contains("curl exited with status 22"), "{msg}");
    assert!(msg.contains("404"), "curl stderr should be included: {msg}");
}
