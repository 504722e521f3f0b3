//! Task identity end to end with programs that rewrite what `/proc` shows of them: nginx
//! (its master overwrites its environment with its title) and a Python web app using
//! setproctitle. Every launch succeeds, a kill -9 of the server adopts every task, nothing
//! runs twice, and deleting the app stops every process, nginx's workers included.

use crate::*;
use std::collections::BTreeSet;
use testkit::{cgroup_task_processes, have, wait_for};

fn agent_id(s: &SlipwayProcess) -> String {
    get_json(&format!("{}/v2/info", s.url)).expect("info")["frameworkId"]
        .as_str()
        .expect("frameworkId")
        .to_string()
}

/// Task ids with at least one process in their cgroup.
fn cgroup_tasks(agent: &str) -> BTreeSet<String> {
    cgroup_task_processes(agent)
        .into_iter()
        .map(|(_, t)| t)
        .collect()
}

const NGINX: &str = r#"mkdir -p tmp && cat > nginx.conf <<CONF
worker_processes 2;
pid $MESOS_SANDBOX/nginx.pid;
error_log $MESOS_SANDBOX/error.log;
events { worker_connections 64; }
http { access_log off; client_body_temp_path $MESOS_SANDBOX/tmp; proxy_temp_path $MESOS_SANDBOX/tmp;
  fastcgi_temp_path $MESOS_SANDBOX/tmp; uwsgi_temp_path $MESOS_SANDBOX/tmp; scgi_temp_path $MESOS_SANDBOX/tmp;
  server { listen 127.0.0.1:$PORT0; location / { return 200 "ok\n"; } } }
CONF
exec nginx -c $MESOS_SANDBOX/nginx.conf -g 'daemon off;'"#;

const PYTHON: &str = "import http.server, os, setproctitle
setproctitle.setproctitle('shop-web: ' + 'x' * 3000)
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.end_headers(); self.wfile.write(b'ok')
    def log_message(self, *a): pass
http.server.HTTPServer(('127.0.0.1', int(os.environ['PORT0'])), H).serve_forever()
";

fn health() -> Value {
    json!([{"protocol": "HTTP", "path": "/", "portIndex": 0, "intervalSeconds": 1,
            "timeoutSeconds": 2, "gracePeriodSeconds": 30}])
}

/// Deploys `def`, expects every instance healthy, kill -9s the server, restarts it, expects
/// every task adopted (same ids, no new launches), then deletes the app and expects no
/// process of it left.
fn survive_and_delete(def: Value, instances: usize) {
    let (mut s, _dir) = server();
    let agent = agent_id(&s);
    let id = def["id"].as_str().unwrap().to_string();
    let (status, body) = send(&s, "POST", "/v2/apps", Some(&def));
    assert_eq!(status, 201, "{body}");
    wait_no_deployments(&s, Duration::from_secs(120));
    let a = app(&s, &id);
    assert_eq!(healthy_tasks(&a).len(), instances, "{a}\n{}", s.log());
    let before = api_task_ids(&s);
    assert_eq!(
        cgroup_tasks(&agent),
        before,
        "every task runs in its own cgroup"
    );
    assert!(
        !s.log().contains("did not become a session leader"),
        "{}",
        s.log()
    );

    s.kill9();
    s.restart().expect("restart");
    wait_no_deployments(&s, Duration::from_secs(120));
    assert!(
        s.log().contains(&format!("adopted={instances}")),
        "every task is adopted: {}",
        s.log()
    );
    wait_for("the adopted tasks healthy", Duration::from_secs(60), || {
        (healthy_tasks(&app(&s, &id)).len() == instances).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
    assert_eq!(api_task_ids(&s), before, "the same tasks, none relaunched");
    assert_eq!(cgroup_tasks(&agent), before, "no duplicates, no orphans");

    let pids: Vec<i32> = cgroup_task_processes(&agent)
        .into_iter()
        .map(|(p, _)| p)
        .collect();
    assert!(pids.len() >= instances);
    let (status, body) = send(&s, "DELETE", &format!("/v2/apps{id}?force=true"), None);
    assert_eq!(status, 200, "{body}");
    wait_for(
        "every process of the app to stop",
        Duration::from_secs(60),
        || cgroup_task_processes(&agent).is_empty().then_some(()),
    )
    .unwrap_or_else(|e| panic!("{e}: {:?}", cgroup_task_processes(&agent)));
    let alive: Vec<i32> = pids
        .into_iter()
        .filter(|p| {
            let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default();
            !stat.is_empty() && !stat.contains(") Z ")
        })
        .collect();
    assert!(alive.is_empty(), "left running: {alive:?}");
}

#[test]
fn nginx_tasks_launch_survive_a_server_crash_and_stop_with_their_workers() {
    if !have(
        "nginx (nginx-light)",
        std::path::Path::new("/usr/sbin/nginx").exists(),
    ) {
        return;
    }
    let def = json!({
        "id": "/web/nginx", "cmd": NGINX, "instances": 20, "cpus": 0.01, "mem": 32,
        "healthChecks": health(), "taskKillGracePeriodSeconds": 2,
    });
    survive_and_delete(def, 20);
}

#[test]
fn setproctitle_tasks_launch_survive_a_server_crash_and_stop() {
    let ok = std::process::Command::new("/usr/bin/python3")
        .args(["-c", "import setproctitle"])
        .status()
        .is_ok_and(|s| s.success());
    if !have("python3-setproctitle", ok) {
        return;
    }
    let def = json!({
        "id": "/web/py", "args": ["/usr/bin/python3", "-c", PYTHON], "instances": 5,
        "cpus": 0.01, "mem": 64, "healthChecks": health(), "taskKillGracePeriodSeconds": 2,
    });
    survive_and_delete(def, 5);
}
