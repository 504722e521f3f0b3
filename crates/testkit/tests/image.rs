//! The test image kit builds a FROM-scratch image that serves HTTP.

use std::time::Duration;

#[test]
fn docker_test_image_serves_its_version() {
    let Some(()) = testkit::docker() else { return };
    let image = testkit::test_image("kit").unwrap();
    let port = testkit::free_port();
    let out = std::process::Command::new("docker")
        .args([
            "run",
            "-d",
            "--rm",
            "-p",
            &format!("127.0.0.1:{port}:{}", testkit::TEST_IMAGE_PORT),
            &image,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let body = testkit::wait_for("the container to answer", Duration::from_secs(30), || {
        testkit::http_get(&format!("http://127.0.0.1:{port}/"))
            .ok()
            .map(|(_, b)| b)
    });
    let _ = std::process::Command::new("docker")
        .args(["rm", "-f", &id])
        .output();
    assert!(body.unwrap().starts_with("version=kit "));
}
