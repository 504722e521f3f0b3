//! A real Docker container (when a daemon answers): its cgroup is found from its id and its series match
//! the kernel's files, with network from the container's own namespace.

use std::path::Path;
use std::process::{Command, Output};

use metrics::{CgroupMounts, CgroupPaths, Families, TaskCollector, TaskTarget};

use crate::{roundtrip, value};

fn docker(args: &[&str]) -> Option<Output> {
    Command::new("docker")
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).trim().to_owned()
}

/// Removes the container and the image on drop.
struct Cleanup {
    container: Option<String>,
    image: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(c) = &self.container {
            let _ = docker(&["rm", "-f", c]);
        }
        let _ = docker(&["rmi", "-f", &self.image]);
    }
}

/// A `FROM scratch` image holding one static program that allocates 8 MiB and sleeps.
fn build_image(dir: &Path, tag: &str) -> Option<()> {
    let src = dir.join("sleeper.c");
    std::fs::write(
        &src,
        "#include <stdlib.h>\n#include <unistd.h>\n\
         int main(void) { volatile char *p = malloc(8 << 20); for (int i = 0; i < (8 << 20); i += 4096) p[i] = 1; for (;;) pause(); }\n",
    )
    .ok()?;
    let root = dir.join("root");
    std::fs::create_dir(&root).ok()?;
    let ok = Command::new("gcc")
        .args(["-static", "-O1", "-o"])
        .arg(root.join("sleeper"))
        .arg(&src)
        .status()
        .ok()?
        .success();
    if !ok {
        return None;
    }
    let tar = dir.join("root.tar");
    let ok = Command::new("tar")
        .arg("-C")
        .arg(&root)
        .arg("-cf")
        .arg(&tar)
        .arg("sleeper")
        .status()
        .ok()?
        .success();
    if !ok {
        return None;
    }
    docker(&[
        "import",
        "--change",
        "CMD [\"/sleeper\"]",
        &tar.to_string_lossy(),
        tag,
    ])
    .map(|_| ())
}

#[test]
fn docker_container_found_by_id_and_collected() {
    if docker(&["info"]).is_none() || Command::new("gcc").arg("--version").output().is_err() {
        eprintln!("skipped: needs a Docker daemon and gcc");
        return;
    }
    let Ok(mounts) = CgroupMounts::detect() else {
        eprintln!("skipped: no cgroups");
        return;
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let tag = format!("slipway-metrics-sleeper:{}", std::process::id());
    let mut cleanup = Cleanup {
        container: None,
        image: tag.clone(),
    };
    build_image(tmp.path(), &tag).expect("build the test image");
    let run = docker(&["run", "-d", "--memory", "64m", "--cpus", "0.5", &tag]).expect("docker run");
    let id = stdout(&run);
    cleanup.container = Some(id.clone());
    let pid: i32 = stdout(&docker(&["inspect", "-f", "{{.State.Pid}}", &id]).expect("inspect"))
        .parse()
        .expect("pid");

    let (cgroup_id, paths) = metrics::docker_cgroup(&mounts, &id).expect("container cgroup found");
    assert!(cgroup_id.ends_with(&id), "{cgroup_id}");
    let mut target = TaskTarget::new(
        vec![
            ("id".into(), cgroup_id),
            ("name".into(), "sleeper".into()),
            ("image".into(), tag.clone()),
        ],
        paths.clone(),
        Some(pid),
    );
    let kernel_usage = || -> f64 {
        let file = match &paths {
            CgroupPaths::V1(d) => d
                .memory
                .as_ref()
                .expect("memory")
                .join("memory.usage_in_bytes"),
            CgroupPaths::V2(d) => d.join("memory.current"),
        };
        std::fs::read_to_string(file)
            .expect("kernel file")
            .trim()
            .parse()
            .expect("number")
    };
    // Wait until the program has touched its 8 MiB.
    for _ in 0..100 {
        if kernel_usage() >= 8.0 * 1024.0 * 1024.0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let mut c = TaskCollector::new();
    let mut f = Families::new();
    c.collect(&mut target, 0.0, &mut f);
    let fams = roundtrip(&f);
    let v = |n: &str| value(&fams, n, &[]).unwrap_or_else(|| panic!("{n} missing"));
    assert_eq!(
        v("container_spec_memory_limit_bytes"),
        64.0 * 1024.0 * 1024.0
    );
    assert_eq!(
        v("container_spec_cpu_quota") / v("container_spec_cpu_period"),
        0.5
    );
    let usage = v("container_memory_usage_bytes");
    assert!(
        usage >= 8.0 * 1024.0 * 1024.0,
        "the sleeper touched 8 MiB: {usage}"
    );
    let kernel_usage = kernel_usage();
    assert!(
        (usage - kernel_usage).abs() <= kernel_usage * 0.05,
        "{usage} vs {kernel_usage}"
    );
    assert_eq!(v("container_processes"), 1.0);
    // Docker gives the container its own namespace with eth0 on the bridge.
    let rx = value(
        &fams,
        "container_network_receive_bytes_total",
        &[("interface", "eth0")],
    );
    assert!(
        rx.is_some(),
        "eth0 of the container: {:?}",
        fams.iter().map(|f| &f.name).collect::<Vec<_>>()
    );
    drop(cleanup);
}
