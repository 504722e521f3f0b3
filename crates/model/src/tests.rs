//! Table and property tests of parsing, normalisation and validation.

use crate::*;
use proptest::prelude::*;
use serde_json::{Value, json};

const V: Timestamp = Timestamp(1_500_485_681_967);

/// Parses `body` and returns either the canonical JSON or the error with its HTTP class.
#[track_caller]
fn check(body: Value) -> Result<Value, (u16, Vec<FieldError>)> {
    let bytes = serde_json::to_vec(&body).unwrap();
    match parse_definition(&bytes, None, V) {
        Ok(def) => Ok(serde_json::to_value(def).unwrap()),
        Err(DefinitionError::Malformed(m)) => Err((
            400,
            vec![FieldError {
                path: "".into(),
                errors: vec![m],
            }],
        )),
        Err(DefinitionError::Type(e)) => Err((400, e)),
        Err(DefinitionError::Invalid(e)) => Err((422, e)),
    }
}

fn seed_with_cmd() -> Value {
    json!({
        "id": "/appName", "cpus": 2, "mem": 2048.0, "instances": 2,
        "cmd": "python3 -m http.server $PORT0",
        "args": ["--spring.profiles.active=qa"],
        "labels": {"HAPROXY_GROUP": "external", "HAPROXY_0_VHOST": "xxx.hujiang.com"},
        "ipAddress": {"networkName": "calico-net"},
        "healthChecks": [{
            "gracePeriodSeconds": 300, "ignoreHttp1xx": true, "intervalSeconds": 20,
            "maxConsecutiveFailures": 3, "path": "/health_check", "portIndex": 0,
            "protocol": "HTTP", "timeoutSeconds": 20
        }],
        "uris": ["file:///etc/docker.tar.gz"]
    })
}

#[test]
fn seed_definition_normalises() {
    let out = check(seed_with_cmd()).unwrap();
    assert_eq!(out["id"], "/appName");
    assert_eq!(out["instances"], 2);
    assert_eq!(out["fetch"][0]["uri"], "file:///etc/docker.tar.gz");
    assert_eq!(out["fetch"][0]["extract"], true);
    assert_eq!(
        out["networks"][0],
        json!({"mode": "container", "name": "calico-net"})
    );
    assert_eq!(out["portDefinitions"].as_array().unwrap().len(), 1);
    assert_eq!(out["healthChecks"][0]["portIndex"], 0);
    assert_eq!(out["version"], "2017-07-19T17:34:41.967Z");
    assert_eq!(
        out["versionInfo"]["lastConfigChangeAt"],
        "2017-07-19T17:34:41.967Z"
    );
    assert!(out.get("uris").is_none(), "deprecated keys are not echoed");
}

#[test]
fn seed_container_definition_normalises() {
    let mut seed = seed_with_cmd();
    let obj = seed.as_object_mut().unwrap();
    obj.remove("cmd");
    obj.insert("container".into(), json!({
        "type": "DOCKER",
        "docker": {"image": "imageName", "network": "USER", "forcePullImage": true,
            "portMappings": [{"containerPort": 12345, "hostPort": 0, "protocol": "tcp", "servicePort": 12345}]},
        "volumes": [{"containerPath": "/app/log", "hostPath": "/home/logs/appName", "mode": "RW"}]
    }));
    let out = check(seed).unwrap();
    assert_eq!(out["container"]["portMappings"][0]["containerPort"], 12345);
    assert_eq!(out["container"]["portMappings"][0]["hostPort"], 0);
    assert!(out["container"]["docker"].get("network").is_none());
    assert_eq!(out["networks"][0]["name"], "calico-net");
    assert_eq!(out["portDefinitions"], json!([]));
}

#[test]
fn invalid_definitions_get_field_paths() {
    let cases: Vec<(Value, u16, &str, &str)> = vec![
        (
            json!({"id": "/bad_id", "cmd": "x"}),
            422,
            "/id",
            "must fully match regular expression",
        ),
        (
            json!({"id": "/a/restart", "cmd": "x"}),
            422,
            "/id",
            "reserved keywords",
        ),
        (
            json!({"id": "/a", "cmd": "x", "instances": -1}),
            422,
            "/instances",
            "got -1, expected 0 or more",
        ),
        (
            json!({"id": "/a", "cmd": "x", "healthChecks": [{"protocol": "FOO"}]}),
            422,
            "/healthChecks(0)/protocol",
            "is not one of",
        ),
        (
            json!({"id": "/a"}),
            422,
            "/",
            "must either contain one of 'cmd' or 'args'",
        ),
        (
            json!({"id": "/a", "cmd": "x", "upgradeStrategy": {"minimumHealthCapacity": 1.5}}),
            422,
            "/upgradeStrategy/minimumHealthCapacity",
            "is greater than 1",
        ),
        (
            json!({"id": "/a", "cmd": "x", "ports": [0], "portDefinitions": []}),
            422,
            "/",
            "cannot specify both ports and port definitions",
        ),
        (
            json!({"id": "/a", "cmd": "x", "healthChecks": [{"portIndex": 3}]}),
            422,
            "/healthChecks(0)",
            "port indices must address",
        ),
        (
            json!({"id": 5, "cmd": "x"}),
            400,
            "/id",
            "error.expected.jsstring",
        ),
        (
            json!({"id": "/a", "cmd": "x", "healthChecks": [{"intervalSeconds": "x"}]}),
            400,
            "/healthChecks(0)/intervalSeconds",
            "error.expected.jsnumber",
        ),
        (
            json!({"id": "/a", "container": {"type": "DOCKER", "docker": {"image": "i", "network": "HOST"}, "portMappings": [{"containerPort": 1}]}}),
            422,
            "/container/portMappings",
            "not allowed with host-networking",
        ),
        (
            json!({"id": "/a", "cmd": "x", "env": {"A": {"secret": "nope"}}}),
            422,
            "/env/A",
            "undefined secret",
        ),
    ];
    for (body, code, path, needle) in cases {
        let (got_code, errs) = check(body.clone()).expect_err(&body.to_string());
        assert_eq!(got_code, code, "{body}");
        let hit = errs
            .iter()
            .find(|e| e.path == path)
            .unwrap_or_else(|| panic!("{body}: no {path} in {errs:?}"));
        assert!(
            hit.errors.iter().any(|m| m.contains(needle)),
            "{body}: {hit:?}"
        );
    }
}

#[test]
fn all_violations_are_reported_at_once() {
    let (code, errs) =
        check(json!({"id": "/a!", "cmd": "x", "instances": -2, "cpus": 0})).unwrap_err();
    assert_eq!(code, 422);
    let paths: Vec<_> = errs.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(paths, ["/id", "/instances", "/cpus"]);
}

#[test]
fn malformed_json_is_400() {
    let err = parse_definition(b"{\"id\": ", None, V).unwrap_err();
    assert!(matches!(err, DefinitionError::Malformed(_)));
}

#[test]
fn partial_update_replaces_present_keys_only() {
    let def = parse_definition(&serde_json::to_vec(&seed_with_cmd()).unwrap(), None, V).unwrap();
    let merged = merge_update(
        &def,
        &json!({"env": {"A": "1"}, "instances": 3, "id": "/ignored"}),
    );
    let new = input_from_value(merged)
        .unwrap()
        .into_definition(Some(&def.id), Timestamp(V.0 + 1))
        .unwrap();
    assert_eq!(new.instances, 3);
    assert_eq!(new.env.get("A"), Some(&EnvValue::Literal("1".into())));
    assert_eq!(new.labels, def.labels);
    assert_eq!(new.id, def.id);
    assert!(!def.same_config(&new));
    let scaled = input_from_value(merge_update(&def, &json!({"instances": 7})))
        .unwrap()
        .into_definition(Some(&def.id), Timestamp(V.0 + 2))
        .unwrap();
    assert!(def.same_config(&scaled), "instances-only change is a scale");
    // Deprecated aliases in the update replace the canonical key instead of colliding.
    let ported = input_from_value(merge_update(&def, &json!({"ports": [0, 0]})))
        .unwrap()
        .into_definition(None, V)
        .unwrap();
    assert_eq!(ported.port_definitions.len(), 2);
}

#[test]
fn legacy_network_in_an_update_replaces_stored_networks() {
    let body = json!({"id": "/c", "container": {"docker": {"image": "a:1", "network": "BRIDGE",
        "portMappings": [{"containerPort": 80, "hostPort": 0}]}}});
    let def = parse_definition(&serde_json::to_vec(&body).unwrap(), None, V).unwrap();
    assert_eq!(def.networks[0].mode, "container/bridge");
    let update = json!({"container": {"docker": {"image": "a:2", "network": "USER",
        "portMappings": [{"containerPort": 80, "hostPort": 0}]}}, "ipAddress": {"networkName": "n"}});
    let new = input_from_value(merge_update(&def, &update))
        .unwrap()
        .into_definition(None, V)
        .unwrap();
    assert_eq!(new.networks[0].mode, "container");
    assert_eq!(new.networks[0].name.as_deref(), Some("n"));
    let same = json!({"container": {"docker": {"image": "a:3", "network": "BRIDGE"}}});
    let new = input_from_value(merge_update(&def, &same))
        .unwrap()
        .into_definition(None, V)
        .unwrap();
    assert_eq!(new.container.unwrap().docker.unwrap().image, "a:3");
}

#[test]
fn canonical_output_is_valid_input() {
    let def = parse_definition(&serde_json::to_vec(&seed_with_cmd()).unwrap(), None, V).unwrap();
    let again = input_from_value(serde_json::to_value(&def).unwrap())
        .unwrap()
        .into_definition(None, V)
        .unwrap();
    assert_eq!(def, again);
}

fn arb_body() -> impl Strategy<Value = Value> {
    (
        prop_oneof![Just("/ok".to_string()), "[a-zA-Z0-9_./-]{0,12}"],
        -3i64..5,
        prop_oneof![
            Just(None),
            Just(Some("HTTP")),
            Just(Some("TCP")),
            Just(Some("BOGUS"))
        ],
        -1.0f64..2.0,
        proptest::option::of(0i64..3),
    )
        .prop_map(|(id, instances, proto, mhc, port_index)| {
            let mut hc = json!({});
            if let Some(p) = proto {
                hc["protocol"] = json!(p);
            }
            if let Some(pi) = port_index {
                hc["portIndex"] = json!(pi);
            }
            json!({"id": id, "cmd": "sleep 1", "instances": instances,
                   "healthChecks": [hc], "upgradeStrategy": {"minimumHealthCapacity": mhc}})
        })
}

proptest! {
    /// The validator never panics, and what it accepts satisfies the rules it claims to check.
    #[test]
    fn validator_accepts_only_valid_definitions(body in arb_body()) {
        match check(body.clone()) {
            Ok(out) => {
                let id = out["id"].as_str().unwrap();
                prop_assert!(PathId::problems(id).is_empty());
                prop_assert!(body["instances"].as_i64().unwrap() >= 0);
                let mhc = out["upgradeStrategy"]["minimumHealthCapacity"].as_f64().unwrap();
                prop_assert!((0.0..=1.0).contains(&mhc));
                prop_assert!(out["healthChecks"][0]["portIndex"].as_u64().unwrap() < 1);
                // Accepted output parses again to the same definition.
                let again = check(out.clone());
                prop_assert_eq!(again.ok(), Some(out));
            }
            Err((code, errs)) => {
                prop_assert!(code == 422 || code == 400);
                prop_assert!(!errs.is_empty());
                prop_assert!(errs.iter().all(|e| e.path.starts_with('/') && !e.errors.is_empty()));
            }
        }
    }
}

#[test]
fn nul_bytes_and_huge_ids_are_refused_with_their_paths() {
    let long = format!("/{}", "a".repeat(70_000));
    let body = serde_json::json!({"id": long, "cmd": "sleep 1"}).to_string();
    let err = crate::parse_definition(body.as_bytes(), None, crate::Timestamp(1)).unwrap_err();
    assert!(err.to_string().contains("at most 512"), "{err}");
    let body = serde_json::json!({"id": "/a", "cmd": "echo a\u{0}b", "args": null,
                                  "env": {"X": "1\u{0}2"}})
    .to_string();
    let err = crate::parse_definition(body.as_bytes(), None, crate::Timestamp(1)).unwrap_err();
    let text = format!("{err:?}");
    assert!(text.contains("/cmd") && text.contains("/env/X"), "{text}");
}

proptest! {
    /// Untrusted bytes (a request body) never panic the app definition parser: they give a
    /// definition or an error with field paths.
    #[test]
    fn arbitrary_bytes_never_panic_the_definition_parser(body in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = crate::parse_definition(&body, None, crate::Timestamp(1));
    }

    /// Arbitrary JSON shapes (objects of the known keys with values of any type) give a
    /// definition or field errors, never a panic.
    #[test]
    fn arbitrary_json_values_never_panic_the_definition_parser(
        key in prop_oneof![Just("id"), Just("cmd"), Just("args"), Just("instances"), Just("cpus"),
                           Just("mem"), Just("container"), Just("healthChecks"), Just("labels"),
                           Just("env"), Just("secrets"), Just("portDefinitions"), Just("upgradeStrategy"),
                           Just("fetch"), Just("user"), Just("constraints"), Just("networks")],
        value in arb_json(),
    ) {
        let mut body = serde_json::json!({"id": "/fuzz", "cmd": "true"});
        body[key] = value;
        let bytes = serde_json::to_vec(&body).unwrap_or_default();
        let _ = crate::parse_definition(&bytes, None, crate::Timestamp(1));
    }
}

/// Any JSON value, nested a little.
fn arb_json() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_map(|f| serde_json::json!(f)),
        "[ -~]{0,12}".prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            proptest::collection::btree_map("[a-zA-Z]{1,8}", inner, 0..4)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}
