//! Table and property tests of environment selection, policy validation and authorization.

use std::collections::BTreeMap;

use model::PathId;
use proptest::prelude::*;

use crate::*;

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn deploy(app: &str, pairs: &[(&str, &str)]) -> Action {
    Action::Deploy {
        app: PathId::parse(app),
        labels: labels(pairs),
    }
}

/// An app id, its labels and the expected environment name.
type EnvCase = (
    &'static str,
    &'static [(&'static str, &'static str)],
    &'static str,
);

fn who(user: &str, role: Role) -> Principal {
    Principal::new(user, role)
}

#[test]
fn default_environments() {
    let set = PolicySet::default();
    assert_eq!(set.validate(), Ok(()));
    let cases: [EnvCase; 16] = [
        ("/prod/web", &[], "prod"),
        ("/prod", &[], "prod"),
        ("/AA/prod/web", &[], "prod"),
        ("/aa/PROD/web", &[], "prod"),
        ("/BB/qa/api/worker", &[], "qa"),
        ("/qa", &[], "qa"),
        ("/yz/x", &[], "yz"),
        ("/production", &[], "default"),
        ("/prodx/web", &[], "default"),
        ("/web/prod", &[], "default"),
        ("/CC/prod/web", &[], "default"),
        ("/", &[], "default"),
        ("/qa/x", &[("SLIPWAY_ENV", "prod")], "prod"),
        ("/x", &[("SLIPWAY_ENV", "YZ")], "yz"),
        ("/prod/x", &[("SLIPWAY_ENV", "staging")], "prod"),
        ("/qa/x", &[("OTHER", "prod")], "qa"),
    ];
    for (app, pairs, want) in cases {
        let env = set.environment_for(&PathId::parse(app), &labels(pairs));
        assert_eq!(env.name, want, "{app} {pairs:?}");
    }
    let prod = set.environment("prod").unwrap();
    assert!(prod.confirm && !prod.self_approval);
    assert_eq!(prod.path_prefixes, ["/prod", "/AA/prod", "/BB/prod"]);
    assert!(set.environment("qa").unwrap().self_approval);
    assert!(!set.environment("yz").unwrap().confirm);
}

#[test]
fn datacenters_and_longest_prefix() {
    let set = PolicySet::default();
    let dc = |id: &str| set.datacenter_of(&PathId::parse(id));
    assert_eq!(dc("/AA/prod/web"), Some("AA".to_string()));
    assert_eq!(dc("/bb/qa"), Some("BB".to_string()));
    assert_eq!(dc("/prod/AA"), None);
    assert_eq!(dc("/"), None);

    let json = r#"{"environments": [
        {"name": "default", "deploy": ["role:developer"]},
        {"name": "prod", "pathPrefixes": ["/prod"], "deploy": ["role:deployer"]},
        {"name": "sandbox", "pathPrefixes": ["/prod/sandbox/"], "deploy": ["user:carol"],
         "selfApproval": true}
    ]}"#;
    let set = PolicySet::from_json(json).unwrap();
    assert_eq!(set.datacenters, ["AA", "BB"]);
    let env = |id: &str| {
        set.environment_for(&PathId::parse(id), &BTreeMap::new())
            .name
            .clone()
    };
    assert_eq!(env("/prod/sandbox/x"), "sandbox");
    assert_eq!(env("/prod/sandboxes"), "prod");
}

#[test]
fn validation_reports_every_problem() {
    let json = r#"{"environments": [
        {"name": "qa", "pathPrefixes": ["qa", "/a/../b"], "labels": {"E": "x"}},
        {"name": "QA", "pathPrefixes": ["/qa"], "labels": {"E": "X"}}
    ], "datacenters": ["AA", "aa", ""]}"#;
    let set: PolicySet = serde_json::from_str(json).unwrap();
    let problems = set.validate().unwrap_err();
    for want in [
        "qa: path prefix \"qa\" must start with '/'",
        "qa: path prefix \"/a/../b\" must not contain . or ..",
        "duplicate environment name \"QA\"",
        "path prefix \"/qa\" is claimed by qa and QA",
        "label E=X is claimed by qa and QA",
        "an environment named \"default\" is required",
        "duplicate datacenter \"aa\"",
        "invalid datacenter name \"\"",
    ] {
        assert!(
            problems.iter().any(|p| p == want),
            "{want} not in {problems:?}"
        );
    }
    assert_eq!(problems.len(), 8, "{problems:?}");

    let mut set = PolicySet::default();
    set.environments[0]
        .deploy
        .push(Subject::User(String::new()));
    assert_eq!(
        set.validate().unwrap_err(),
        ["qa: invalid user subject \"\""]
    );

    for bad in [
        r#"{"environments": [{"name": "default", "deploy": ["role:boss"]}]}"#,
        r#"{"environments": [{"name": "default", "colour": "red"}]}"#,
        r#"{"environments": [{"name": "prod"}]}"#,
        r#"{"environments": []"#,
    ] {
        let err = PolicySet::from_json(bad).unwrap_err().to_string();
        assert!(err.starts_with("invalid policy: "), "{err}");
    }
}

#[test]
fn authorize_table() {
    let set = PolicySet::default();
    let viewer = who("vic", Role::Viewer);
    let dev = who("alice", Role::Developer);
    let deployer = who("dora", Role::Deployer);
    let admin = who("root", Role::Admin);
    let approve = |env: &str, by: Option<&str>| Action::Approve {
        env: env.into(),
        started_by: by.map(str::to_string),
    };
    let cases: Vec<(&Principal, Action, Result<(), &str>)> = vec![
        (&viewer, Action::Read, Ok(())),
        (
            &viewer,
            deploy("/qa/web", &[]),
            Err("viewer vic may not deploy to qa (needs role:developer)"),
        ),
        (
            &viewer,
            Action::Admin,
            Err("viewer vic may not administer slipway (needs role:admin)"),
        ),
        (&dev, deploy("/qa/web", &[]), Ok(())),
        (&dev, deploy("/other/web", &[]), Ok(())),
        (
            &dev,
            deploy("/prod/web", &[]),
            Err("developer alice may not deploy to prod (needs role:deployer)"),
        ),
        (
            &dev,
            deploy("/AA/yz/web", &[]),
            Err("developer alice may not deploy to yz (needs role:deployer)"),
        ),
        (
            &dev,
            deploy("/x", &[("SLIPWAY_ENV", "prod")]),
            Err("developer alice may not deploy to prod (needs role:deployer)"),
        ),
        // A label cannot move an app out of a stricter path environment.
        (
            &dev,
            deploy("/prod/web", &[("SLIPWAY_ENV", "qa")]),
            Err("developer alice may not deploy to prod (needs role:deployer)"),
        ),
        (
            &deployer,
            deploy("/prod/web", &[("SLIPWAY_ENV", "qa")]),
            Ok(()),
        ),
        (&deployer, deploy("/BB/prod/web", &[]), Ok(())),
        (
            &deployer,
            Action::Admin,
            Err("deployer dora may not administer slipway (needs role:admin)"),
        ),
        (&dev, approve("qa", Some("alice")), Ok(())),
        (
            &dev,
            approve("default", None),
            Err("developer alice may not approve releases into default (needs role:deployer)"),
        ),
        (&deployer, approve("prod", Some("bob")), Ok(())),
        (&deployer, approve("PROD", None), Ok(())),
        (
            &deployer,
            approve("prod", Some("dora")),
            Err(
                "dora started this run and prod does not allow self-approval: someone else must approve",
            ),
        ),
        (&deployer, approve("default", Some("dora")), Ok(())),
        (
            &deployer,
            approve("staging", None),
            Err("unknown environment \"staging\""),
        ),
        // The four-eyes rule holds for admins too.
        (
            &admin,
            approve("prod", Some("root")),
            Err(
                "root started this run and prod does not allow self-approval: someone else must approve",
            ),
        ),
        (&admin, approve("prod", Some("dora")), Ok(())),
        (&admin, approve("qa", Some("root")), Ok(())),
        (&admin, approve("staging", None), Ok(())),
        (&admin, deploy("/prod/web", &[]), Ok(())),
        (&admin, Action::Admin, Ok(())),
    ];
    for (principal, action, want) in cases {
        let got = set.authorize(principal, &action);
        assert_eq!(got.is_allowed(), want.is_ok(), "{principal:?} {action:?}");
        assert_eq!(
            got.into_result(),
            want.map_err(str::to_string),
            "{principal:?} {action:?}"
        );
    }
}

#[test]
fn user_subjects_and_empty_lists() {
    let mut set = PolicySet::default();
    let prod = set
        .environments
        .iter_mut()
        .find(|p| p.name == "prod")
        .unwrap();
    prod.deploy.push("user:alice".parse().unwrap());
    prod.approve.clear();
    let alice = who("alice", Role::Developer);
    assert!(
        set.authorize(&alice, &deploy("/prod/web", &[]))
            .is_allowed()
    );
    assert!(
        !set.authorize(&who("bob", Role::Developer), &deploy("/prod/web", &[]))
            .is_allowed()
    );
    let action = Action::Approve {
        env: "prod".into(),
        started_by: None,
    };
    assert_eq!(
        set.authorize(&who("dora", Role::Deployer), &action),
        Decision::Deny(
            "deployer dora may not approve releases into prod (needs role:admin)".into()
        )
    );
}

fn role() -> impl Strategy<Value = Role> {
    (0..4usize).prop_map(|i| Role::ALL[i])
}

fn app_id() -> impl Strategy<Value = PathId> {
    let seg = prop_oneof![
        Just("qa".to_string()),
        Just("prod".to_string()),
        Just("YZ".to_string()),
        Just("aa".to_string()),
        Just("BB".to_string()),
        "[a-zA-Z0-9]{1,8}",
    ];
    prop::collection::vec(seg, 0..5).prop_map(|segs| PathId::parse(&segs.join("/")))
}

fn app_labels() -> impl Strategy<Value = BTreeMap<String, String>> {
    let value = prop_oneof![Just("qa"), Just("yz"), Just("prod"), Just("other")];
    prop::collection::btree_map(prop_oneof![Just("SLIPWAY_ENV"), Just("team")], value, 0..3)
        .prop_map(|m| {
            m.into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        })
}

fn subjects() -> impl Strategy<Value = Vec<Subject>> {
    let subject = prop_oneof![
        role().prop_map(Subject::Role),
        prop_oneof![Just("alice"), Just("bob")].prop_map(|u| Subject::User(u.to_string())),
    ];
    prop::collection::vec(subject, 0..3)
}

/// The default set with randomised deploy/approve subjects and self-approval flags.
fn policy_set() -> impl Strategy<Value = PolicySet> {
    prop::collection::vec((subjects(), subjects(), any::<bool>()), 4).prop_map(|rules| {
        let mut set = PolicySet::default();
        for (env, (deploy, approve, self_approval)) in set.environments.iter_mut().zip(rules) {
            env.deploy = deploy;
            env.approve = approve;
            env.self_approval = self_approval;
        }
        set
    })
}

fn action() -> impl Strategy<Value = Action> {
    let env = prop_oneof![
        Just("qa"),
        Just("yz"),
        Just("prod"),
        Just("default"),
        Just("nope")
    ];
    let by = prop::option::of(prop_oneof![Just("alice"), Just("bob")]);
    prop_oneof![
        Just(Action::Read),
        Just(Action::Admin),
        (app_id(), app_labels()).prop_map(|(app, labels)| Action::Deploy { app, labels }),
        (env, by).prop_map(|(env, by)| Action::Approve {
            env: env.to_string(),
            started_by: by.map(str::to_string),
        }),
    ]
}

proptest! {
    #[test]
    fn admin_is_allowed_all_but_self_approval(set in policy_set(), action in action()) {
        let own_run = match &action {
            Action::Approve { env, started_by } => started_by.as_deref() == Some("alice")
                && set.environment(env).is_some_and(|p| !p.self_approval),
            _ => false,
        };
        let allowed = set.authorize(&who("alice", Role::Admin), &action).is_allowed();
        prop_assert_eq!(allowed, !own_run);
    }

    #[test]
    fn higher_roles_keep_permissions(set in policy_set(), action in action(), a in role(), b in role()) {
        let (low, high) = if a <= b { (a, b) } else { (b, a) };
        if set.authorize(&who("alice", low), &action).is_allowed() {
            prop_assert!(set.authorize(&who("alice", high), &action).is_allowed());
        }
    }

    #[test]
    fn viewers_never_deploy_by_role(app in app_id(), labels in app_labels()) {
        let action = Action::Deploy { app, labels };
        prop_assert!(!PolicySet::default().authorize(&who("vic", Role::Viewer), &action).is_allowed());
    }

    #[test]
    fn every_role_may_read(set in policy_set(), role in role()) {
        prop_assert!(set.authorize(&who("x", role), &Action::Read).is_allowed());
    }

    #[test]
    fn environment_for_is_total_and_deterministic(app in app_id(), labels in app_labels()) {
        let set = PolicySet::default();
        let env = set.environment_for(&app, &labels);
        prop_assert!(set.environment(&env.name).is_some());
        let copy = set.clone();
        prop_assert_eq!(&env.name, &copy.environment_for(&app, &labels).name);
    }

    #[test]
    fn label_match_beats_path_match(app in app_id(), env in prop_oneof![Just("qa"), Just("yz"), Just("prod")]) {
        let labels = labels(&[("SLIPWAY_ENV", env)]);
        let set = PolicySet::default();
        prop_assert_eq!(&set.environment_for(&app, &labels).name, env);
    }
}

#[test]
fn deploy_targets_name_their_environment() {
    assert_eq!(crate::environment_name("prod"), "prod");
    assert_eq!(crate::environment_name("BB/prod"), "prod");
}

#[test]
fn confirmation_follows_the_apps_environments() {
    let set = PolicySet::default();
    let env = |id: &str, l: &[(&str, &str)]| {
        set.confirmation_for(&PathId::parse(id), &labels(l))
            .map(|p| p.name.clone())
    };
    assert_eq!(env("/prod/web", &[]), Some("prod".into()));
    assert_eq!(env("/AA/prod/orders", &[]), Some("prod".into()));
    assert_eq!(env("/web", &[("SLIPWAY_ENV", "prod")]), Some("prod".into()));
    // A label cannot take an app out of its path environment's confirmation.
    assert_eq!(
        env("/prod/web", &[("SLIPWAY_ENV", "qa")]),
        Some("prod".into())
    );
    assert_eq!(env("/AA/qa/orders", &[]), None);
    assert_eq!(env("/web", &[]), None);
}

proptest! {
    /// An `Authorization` header is untrusted input: any string gives credentials or an
    /// error, never a panic, and what parses as Basic round-trips its user.
    #[test]
    fn authorization_headers_never_panic(header in "\\PC{0,80}") {
        let _ = crate::parse_authorization(&header);
    }

    #[test]
    fn basic_credentials_round_trip(user in "[a-z0-9._@-]{1,16}", password in "[ -~]{0,24}") {
        use base64::Engine as _;
        let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        match crate::parse_authorization(&format!("Basic {encoded}")) {
            Ok(crate::Credentials::Basic { user: u, password: p }) => {
                prop_assert_eq!(u, user);
                prop_assert_eq!(p, password);
            }
            other => prop_assert!(false, "{other:?}"),
        }
    }
}
