//! Tests of the app definition → service spec mapping.

use super::*;
use model::Timestamp;
use serde_json::{Value, json};

fn app(body: Value) -> AppDefinition {
    model::parse_definition(
        body.to_string().as_bytes(),
        None,
        Timestamp(1_700_000_000_000),
    )
    .expect("valid app")
}

fn web() -> Value {
    json!({
        "id": "/BB/prod/web", "instances": 4, "cpus": 0.25, "mem": 64,
        "env": {"GREETING": "hi {{there}}", "TOKEN": {"secret": "tok"}},
        "secrets": {"tok": {"source": "web-token"}},
        "labels": {"HAPROXY_GROUP": "external"},
        "container": {"type": "DOCKER", "docker": {"image": "10.0.0.1:5000/web:2"},
            "portMappings": [{"containerPort": 8080, "hostPort": 0, "name": "http"}]},
        "networks": [{"mode": "container/bridge"}],
        "upgradeStrategy": {"minimumHealthCapacity": 1, "maximumOverCapacity": 0.5},
        "healthChecks": [{"protocol": "HTTP", "path": "/"}]
    })
}

fn opts() -> BuildOptions {
    BuildOptions {
        secrets: BTreeMap::from([("tok".to_string(), "s3cret".to_string())]),
        ..BuildOptions::default()
    }
}

fn env_of(d: &ServiceDraft) -> BTreeMap<String, String> {
    d.spec_json()["TaskTemplate"]["ContainerSpec"]["Env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let (k, v) = e.as_str().unwrap().split_once('=').unwrap();
            (k.to_string(), v.to_string())
        })
        .collect()
}

#[test]
fn a_bridge_app_becomes_a_host_mode_start_first_service() {
    let d = build_service(&app(web()), "4f0c2a9e-1111", &opts()).unwrap();
    assert_eq!(d.name, "slipway-4f0c2a9e-BB-prod-web");
    assert_eq!(d.replicas, 4);
    assert_eq!(
        d.update,
        UpdatePlan {
            parallelism: 2,
            start_first: true,
            monitor: Duration::from_secs(2)
        }
    );
    assert_eq!(
        d.ports,
        vec![PortSlot {
            target: 8080,
            protocols: vec!["tcp".into()],
            publish: Publish::Dynamic
        }]
    );
    let s = d.spec_json();
    assert_eq!(s["Mode"]["Replicated"]["Replicas"], 4);
    let port = &s["EndpointSpec"]["Ports"][0];
    assert_eq!(port["PublishMode"], "host");
    assert_eq!(port["TargetPort"], 8080);
    assert!(
        port.get("PublishedPort").is_none(),
        "the node picks: {port}"
    );
    let u = &s["UpdateConfig"];
    assert_eq!(u["Order"], "start-first");
    assert_eq!(u["Parallelism"], 2);
    assert_eq!(u["FailureAction"], "rollback");
    assert_eq!(u["Monitor"], 2_000_000_000i64);
    assert_eq!(s["RollbackConfig"]["Order"], "start-first");
    assert_eq!(s["RollbackConfig"]["FailureAction"], "pause");
    let t = &s["TaskTemplate"];
    assert_eq!(t["Resources"]["Limits"]["NanoCPUs"], 250_000_000);
    assert_eq!(t["Resources"]["Reservations"]["MemoryBytes"], 64 << 20);
    assert_eq!(t["RestartPolicy"]["Condition"], "any");
    let c = &t["ContainerSpec"];
    assert_eq!(c["Image"], "10.0.0.1:5000/web:2");
    assert_eq!(c["HealthCheck"]["Test"], json!(["NONE"]));
    assert_eq!(c["StopGracePeriod"], 3_000_000_000i64);
    assert!(
        c.get("Command").is_none(),
        "args go to the image's entrypoint"
    );
    assert_eq!(c["Labels"]["HAPROXY_GROUP"], "external");
    assert_eq!(c["Labels"]["slipway.app"], "/BB/prod/web");
    assert_eq!(c["Labels"]["slipway.config"], d.config_version);
    assert!(c["Labels"].get("slipway.version").is_none());
    assert_eq!(s["Labels"]["slipway.agent"], "4f0c2a9e-1111");
    assert_eq!(s["Labels"]["slipway.version"], d.version);
    assert_eq!(s["Labels"]["slipway.spec"], d.fingerprint.as_str());
    assert_eq!(
        s["Labels"]["slipway.template"],
        d.template_fingerprint.as_str()
    );

    let env = env_of(&d);
    assert_eq!(env["GREETING"], "hi {{\"{{\"}}there}}", "templates escaped");
    assert_eq!(env["TOKEN"], "s3cret");
    assert_eq!(env["MESOS_TASK_ID"], "BB_prod_web.{{.Task.ID}}");
    assert_eq!(env["HOST"], "{{.Node.Hostname}}");
    assert_eq!(env["MARATHON_APP_ID"], "/BB/prod/web");
    assert_eq!(env["MARATHON_APP_VERSION"], d.config_version);
    assert_eq!(env["MARATHON_APP_DOCKER_IMAGE"], "10.0.0.1:5000/web:2");
    assert_eq!(env["MARATHON_APP_RESOURCE_MEM"], "64.0");
    assert_eq!(env["MARATHON_APP_LABEL_HAPROXY_GROUP"], "external");
    assert!(
        !env.contains_key("PORT0"),
        "a dynamic port is not known in advance"
    );
}

#[test]
fn the_same_app_gives_the_same_fingerprints_and_scaling_keeps_the_template() {
    let a = build_service(&app(web()), "a", &opts()).unwrap();
    let b = build_service(&app(web()), "a", &opts()).unwrap();
    assert_eq!(a.fingerprint, b.fingerprint);
    assert_eq!(a.template_fingerprint, b.template_fingerprint);

    let mut scaled = app(web());
    scaled.instances = 6;
    scaled.version = Timestamp(1_700_000_100_000);
    let c = build_service(&scaled, "a", &opts()).unwrap();
    assert_ne!(a.fingerprint, c.fingerprint);
    assert_eq!(a.template_fingerprint, c.template_fingerprint, "no restart");

    let mut changed = web();
    changed["env"]["GREETING"] = json!("hello");
    let d = build_service(&app(changed), "a", &opts()).unwrap();
    assert_ne!(a.template_fingerprint, d.template_fingerprint);
}

#[test]
fn stop_first_replaces_what_minimum_health_allows() {
    let mut body = web();
    body["upgradeStrategy"] = json!({"minimumHealthCapacity": 0.5, "maximumOverCapacity": 0});
    let d = build_service(&app(body.clone()), "a", &opts()).unwrap();
    assert!(!d.update.start_first);
    assert_eq!(d.update.parallelism, 2);
    assert_eq!(d.spec_json()["UpdateConfig"]["Order"], "stop-first");
    body["upgradeStrategy"] = json!({"minimumHealthCapacity": 1, "maximumOverCapacity": 0});
    let d = build_service(&app(body), "a", &opts()).unwrap();
    assert_eq!(d.update.parallelism, 1, "at least one at a time");
}

#[test]
fn fixed_ports_are_published_and_given_to_the_task() {
    let mut body = web();
    body["container"]["portMappings"] = json!([
        {"containerPort": 8080, "hostPort": 31080, "name": "http"},
        {"containerPort": 5353, "hostPort": 31053, "protocol": "udp,tcp"}
    ]);
    let d = build_service(&app(body), "a", &opts()).unwrap();
    let s = d.spec_json();
    let ports = s["EndpointSpec"]["Ports"].as_array().unwrap();
    assert_eq!(ports.len(), 3, "{ports:?}");
    assert_eq!(ports[0]["PublishedPort"], 31080);
    assert_eq!(ports[1]["Protocol"], "udp");
    assert_eq!(ports[2]["Protocol"], "tcp");
    assert_eq!(
        s["TaskTemplate"]["ContainerSpec"]["Labels"]["slipway.ports"],
        "8080/tcp/p,5353/udp+tcp/p"
    );
    let env = env_of(&d);
    assert_eq!(env["PORT0"], "31080");
    assert_eq!(env["PORT"], "31080");
    assert_eq!(env["PORTS"], "31080,31053");
    assert_eq!(env["PORT_HTTP"], "31080");
}

#[test]
fn user_networks_become_overlays_and_volumes_mounts() {
    let mut body = web();
    body["networks"] = json!([{"mode": "container", "name": "backend"}]);
    body["container"]["portMappings"] = json!([{"containerPort": 8080}]);
    body["container"]["volumes"] = json!([
        {"containerPath": "/data", "hostPath": "/srv/data", "mode": "RO"},
        {"containerPath": "/var/db", "persistent": {"size": 100}, "mode": "RW"}
    ]);
    body["container"]["docker"]["parameters"] = json!([{"key": "network-alias", "value": "web"}]);
    let d = build_service(&app(body), "a", &opts()).unwrap();
    assert_eq!(d.overlays, vec!["backend"]);
    assert_eq!(d.ports[0].publish, Publish::NotPublished);
    let s = d.spec_json();
    assert!(s["EndpointSpec"].get("Ports").is_none());
    assert_eq!(s["TaskTemplate"]["Networks"][0]["Target"], "backend");
    assert_eq!(s["TaskTemplate"]["Networks"][0]["Aliases"], json!(["web"]));
    let mounts = &s["TaskTemplate"]["ContainerSpec"]["Mounts"];
    assert_eq!(mounts[0]["Type"], "bind");
    assert_eq!(mounts[0]["Source"], "/srv/data");
    assert_eq!(mounts[0]["ReadOnly"], true);
    assert_eq!(mounts[1]["Type"], "volume");
    assert_eq!(
        mounts[1]["Source"],
        format!("{}-var-db-{{{{.Task.Slot}}}}", d.name)
    );
}

#[test]
fn host_networking_needs_fixed_ports() {
    let body = json!({"id": "/h", "container": {"type": "DOCKER", "docker": {"image": "r/x:1"}},
        "networks": [{"mode": "host"}], "portDefinitions": [{"port": 0}]});
    let e = build_service(&app(body), "a", &opts())
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("/portDefinitions(0): HOST networking on a Swarm needs requirePorts"),
        "{e}"
    );
    let body = json!({"id": "/h", "container": {"type": "DOCKER", "docker": {"image": "r/x:1"}},
        "networks": [{"mode": "host"}], "requirePorts": true,
        "portDefinitions": [{"port": 9090, "name": "admin"}]});
    let d = build_service(&app(body), "a", &opts()).unwrap();
    assert_eq!(
        d.spec_json()["TaskTemplate"]["Networks"][0]["Target"],
        "host"
    );
    assert!(d.overlays.is_empty());
    let env = env_of(&d);
    assert_eq!(env["PORT0"], "9090");
    assert_eq!(env["PORT_ADMIN"], "9090");
}

#[test]
fn what_a_swarm_cannot_run_is_refused_clearly() {
    let cases = [
        (
            json!({"id": "/c", "cmd": "sleep 100"}),
            "/container/docker/image: apps on a Swarm must be container apps",
        ),
        (
            json!({"id": "/c", "container": {"type": "DOCKER", "docker": {"image": "r/x", "privileged": true}},
                "networks": [{"mode": "container/bridge"}]}),
            "/container/docker/privileged",
        ),
        (
            json!({"id": "/c", "container": {"type": "DOCKER", "docker": {"image": "r/x"}},
                "networks": [{"mode": "container/bridge"}],
                "constraints": [["hostname", "LIKE", "node-.*"]]}),
            "/constraints(0)",
        ),
    ];
    for (body, want) in cases {
        let e = build_service(&app(body), "a", &opts())
            .unwrap_err()
            .to_string();
        assert!(e.starts_with(want), "{e}");
    }
    let e = build_service(&app(web()), "a", &BuildOptions::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("secret 'tok' has no value"), "{e}");
}

#[test]
fn constraints_and_shell_commands() {
    let mut body = web();
    body["constraints"] = json!([["hostname", "UNIQUE"], ["zone", "GROUP_BY"]]);
    body["container"]["docker"]["image"] = json!("r/x:1");
    let mut def = app(body);
    def.cmd = Some("exec server --port 8080".into());
    def.args = None;
    let d = build_service(&def, "a", &opts()).unwrap();
    let t = &d.spec_json()["TaskTemplate"];
    assert_eq!(t["Placement"]["MaxReplicas"], 1);
    assert_eq!(
        t["Placement"]["Preferences"][0]["Spread"]["SpreadDescriptor"],
        "node.labels.zone"
    );
    assert_eq!(
        t["ContainerSpec"]["Command"],
        json!(["/bin/sh", "-c", "exec server --port 8080"])
    );
}

#[test]
fn long_ids_make_valid_service_names() {
    let id = PathId::parse(&format!("/{}", "x".repeat(200)));
    let n = service_name("agent", &id);
    assert!(n.len() <= 63, "{n}");
    assert_ne!(
        n,
        service_name("agent", &PathId::parse(&format!("/{}", "x".repeat(199))))
    );
}
