//! Pipeline files: the seed's flow parses; every kind of mistake is reported with its
//! line and column; conditions evaluate; durations and references parse.

use super::*;

/// Parses `text`, expecting errors; returns them as `line:col: message` lines.
#[track_caller]
fn errors(text: &str) -> Vec<String> {
    match parse_pipeline(text) {
        Ok(p) => panic!("expected errors, parsed {p:#?}"),
        Err(e) => e.0.iter().map(ToString::to_string).collect(),
    }
}

#[track_caller]
fn check_error(text: &str, want: &str) {
    let got = errors(text);
    assert!(
        got.iter().any(|g| g == want),
        "wanted `{want}` among {got:#?}"
    );
}

const SEED: &str = r#"version: 1
name: lms-barrages
description: the seed's Jenkins pipeline
on:
  push: { branches: [dev], poll: 10s }
  manual: { allowed: [role:developer] }
params:
  DeployEnv: { type: choice, options: [qa, prod], default: qa }
  SkipTests: { type: bool, default: false }
vars:
  IMAGE: "127.0.0.1:5000/lms-barrages"
steps:
  build:
    run: [make build, make test]
    timeout: 10m
  analysis:
    needs: [build]
    run: make sarif > findings.sarif
  gate:
    needs: [analysis]
    gate: { sarif: findings.sarif, baseline: dev, max_new: { error: 0, warning: 10 } }
  image:
    needs: [gate]
    docker: { build: ., push: "${{ vars.IMAGE }}:${{ run.sha }}" }
  deploy-qa:
    needs: [image]
    deploy:
      env: qa
      app: deploy/app.json
      overlay: deploy/qa.json
      image: "${{ vars.IMAGE }}@${{ steps.image.outputs.digest }}"
  autotests:
    needs: [deploy-qa]
    when: "!params.SkipTests"
    image: "${{ vars.IMAGE }}-tests:1"
    run: ./api_test.sh
    retry: 1
    secrets: [qa_token]
    env: { TOKEN: "${{ secrets.qa_token }}" }
  manual-tests:
    needs: [deploy-qa]
    approve: { message: "Do tests OK?", approvers: [role:deployer], env: qa, timeout: 72h }
  deploy-prod:
    needs: [autotests, manual-tests]
    when: branch == 'dev' && status == 'success'
    deploy: { env: prod, app: deploy/app.json, overlay: deploy/prod.json, image: "${{ vars.IMAGE }}@${{ steps.image.outputs.digest }}" }
"#;

#[test]
fn the_seed_flow_parses_in_dependency_order() {
    let p = parse_pipeline(SEED).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p.name, "lms-barrages");
    let names: Vec<&str> = p.steps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "build",
            "analysis",
            "gate",
            "image",
            "deploy-qa",
            "autotests",
            "manual-tests",
            "deploy-prod"
        ]
    );
    assert_eq!(p.triggers.push_branches, ["dev"]);
    assert_eq!(p.triggers.poll, Some(Duration::from_secs(10)));
    assert!(p.triggers.manual);
    assert_eq!(
        p.params["DeployEnv"].default,
        Some(ParamValue::Text("qa".into()))
    );
    assert_eq!(p.params["SkipTests"].kind, ParamKind::Bool);
    let build = &p.steps[0];
    assert_eq!(build.timeout, Some(Duration::from_secs(600)));
    assert!(matches!(&build.kind, StepKind::Run { commands, image: None } if commands.len() == 2));
    let gate = &p.steps[2];
    assert!(matches!(&gate.kind, StepKind::Gate { max_new, .. }
        if max_new[&SarifLevel::Error] == 0 && max_new[&SarifLevel::Warning] == 10));
    let tests = &p.steps[5];
    assert_eq!(tests.retry, 1);
    assert_eq!(tests.secrets, ["qa_token"]);
    assert!(
        matches!(&p.steps[6].kind, StepKind::Approve { timeout, approvers, .. }
        if *timeout == Duration::from_secs(72 * 3600) && approvers == &["role:deployer"])
    );
    assert!(p.steps[7].when.as_ref().is_some_and(Condition::uses_status));
}

#[test]
fn yaml_and_type_errors_have_line_and_column() {
    check_error(
        "version: 1\nname: x\nsteps: [\n",
        "3:8: `[` is never closed (add `]`)",
    );
    // Issue 17: an unclosed `[` is reported on its own line, not where the parser gave up.
    check_error(
        "version: 1\nname: x\nsteps:\n  a:\n    run: [echo a, echo b\n  b:\n    needs: [a]\n    run: echo b\n",
        "5:10: `[` is never closed (add `]`)",
    );
    check_error(
        "version: 1\nname: x\nsteps:\n  a:\n    runn: [x]\n",
        "5:5: unknown field `runn`, expected one of needs, when, timeout, retry, env, secrets, image, run, gate, docker, promote, deploy, approve, merge",
    );
    check_error(
        "version: 1\nname: x\nsteps:\n  a: {run: x}\n  a: {run: y}\n",
        "5:3: duplicate mapping key: a, set DuplicateKeyPolicy in Options if acceptable",
    );
    check_error(
        "version: 2\nname: x\nsteps:\n  a: {run: x}\n",
        "1:10: unsupported version 2 (this Slipway reads version 1)",
    );
}

#[test]
fn dag_mistakes_name_the_steps() {
    let text = "version: 1\nname: x\nsteps:\n  a:\n    needs: [c]\n    run: x\n  b:\n    needs: [a]\n    run: x\n  c:\n    needs: [b]\n    run: x\n";
    check_error(text, "5:5: the steps form a cycle: a → c → b → a");
    check_error(
        "version: 1\nname: x\nsteps:\n  a:\n    needs: [nope]\n    run: x\n",
        "5:13: unknown step `nope` in `needs` of `a`",
    );
    check_error(
        "version: 1\nname: x\nsteps:\n  a:\n    needs: [a]\n    run: x\n",
        "5:13: step `a` needs itself",
    );
}

#[test]
fn every_problem_is_reported_at_once() {
    let text = r#"version: 1
name: "bad name"
params:
  Env: { type: choice }
  Flag: { type: bool, default: maybe }
steps:
  a:
    run: x
    docker: { build: ., push: r }
  b:
    when: "branch = 'dev'"
    timeout: 5 minutes
    run: "echo ${{ params.Nope }} ${{ steps.c.outputs.digest }}"
  c:
    approve: { message: ok, approvers: [group:ops] }
"#;
    let got = errors(text);
    let want = [
        "2:7: a pipeline name is 1-63 letters, digits, `-` or `_`, starting with a letter or digit",
        "4:16: choice parameter `Env` needs `options`",
        "5:32: the default of bool parameter `Flag` must be true or false",
        "8:5: step `a` needs exactly one of run, gate, docker, promote, deploy, approve, merge (found run, docker)",
        "11:19: in `when`: unexpected character `=`",
        "12:14: invalid duration `5 minutes` (use e.g. 500ms, 45s, 30m, 2h, 1h30m)",
        "13:16: unknown parameter `Nope`",
        "13:35: step `c` is not among this step's `needs` (directly or through other steps), so its outputs may not exist yet",
        "15:41: `group:ops` is not `role:viewer|developer|deployer|admin` or `user:NAME`",
    ];
    assert_eq!(got, want, "{got:#?}");
}

#[test]
fn secrets_only_where_they_are_masked() {
    check_error(
        "version: 1\nname: x\nsteps:\n  a:\n    docker: { build: ., push: \"r:${{ secrets.t }}\" }\n",
        "5:34: secrets may only be used in a step's `env` and `run` commands (list them under `secrets:`)",
    );
}

#[test]
fn conditions_evaluate() {
    let params = BTreeMap::from([
        ("Env".to_string(), ParamValue::Text("prod".into())),
        ("Gen".to_string(), ParamValue::Bool(true)),
    ]);
    let known = |n: &str| params.contains_key(n);
    let cx = WhenContext {
        branch: "dev",
        event: "push",
        dependencies_ok: false,
        params: &params,
    };
    let table = [
        ("branch == 'dev'", true),
        ("branch != \"dev\"", false),
        ("params.Gen", true),
        ("!params.Gen || params.Env == 'prod'", true),
        ("params.Env == 'qa' && params.Gen", false),
        (
            "(event == 'push' || event == 'manual') && status == 'failure'",
            true,
        ),
        ("status == 'success'", false),
        ("true && !false", true),
    ];
    for (text, want) in table {
        let c = Condition::parse(text, &known).unwrap_or_else(|e| panic!("{text}: {e:?}"));
        assert_eq!(c.eval(&cx), want, "{text}");
    }
    for (text, offset, msg) in [
        ("branch ==", 9, "expected a value"),
        ("(branch == 'x'", 14, "expected `)`"),
        ("params.X", 0, "unknown parameter `X`"),
        (
            "sha == 'x'",
            0,
            "unknown name `sha` (known: branch, event, status, params.NAME)",
        ),
        ("'open", 0, "unterminated string"),
        ("branch == 'a' 'b'", 14, "unexpected 'b'"),
    ] {
        let e = Condition::parse(text, &known).expect_err(text);
        assert_eq!((e.offset, e.message.as_str()), (offset, msg), "{text}");
    }
}

#[test]
fn durations_and_references_parse() {
    for (text, want) in [
        ("500ms", Some(Duration::from_millis(500))),
        ("45s", Some(Duration::from_secs(45))),
        ("1h30m", Some(Duration::from_secs(5400))),
        ("2d", Some(Duration::from_secs(172_800))),
        ("", None),
        ("10", None),
        ("5 m", None),
        ("3w", None),
    ] {
        assert_eq!(parse_duration(text), want, "{text:?}");
    }
    let refs = references("a ${{ params.X }} b ${{steps.img.outputs.digest}}").unwrap();
    assert_eq!(
        refs,
        [
            (2, Reference::Param("X".into())),
            (
                20,
                Reference::Output {
                    step: "img".into(),
                    key: "digest".into()
                }
            )
        ]
    );
    assert_eq!(
        references("${{ params.X"),
        Err((0, "`${{` without `}}`".into()))
    );
    assert!(references("${{ env.HOME }}").is_err());
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

    /// Whatever the input, parsing answers (never panics): arbitrary text, and the seed's
    /// file with a slice cut out or a character replaced.
    #[test]
    fn parsing_never_panics(
        junk in "\\PC{0,200}",
        cut in 0usize..1500,
        len in 0usize..40,
        c in proptest::char::any(),
    ) {
        let _ = parse_pipeline(&junk);
        let chars: Vec<char> = SEED.chars().collect();
        let at = cut.min(chars.len());
        let end = (at + len).min(chars.len());
        let cut_text: String = chars[..at].iter().chain(&chars[end..]).collect();
        let _ = parse_pipeline(&cut_text);
        let mut replaced = chars.clone();
        if at < replaced.len() {
            replaced[at] = c;
        }
        let _ = parse_pipeline(&replaced.into_iter().collect::<String>());
    }
}

#[test]
fn the_bundled_example_pipelines_validate() {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/orders/.slipway");
    for file in ["pipeline.yaml", "pipeline-process.yaml", "release.yaml"] {
        let text = std::fs::read_to_string(dir.join(file)).unwrap();
        let p = parse_pipeline(&text).unwrap_or_else(|e| panic!("{file}:\n{e}"));
        assert!(p.repos.contains_key("deploy"), "{file}");
    }
    let flow =
        parse_pipeline(&std::fs::read_to_string(dir.join("pipeline.yaml")).unwrap()).unwrap();
    let names: Vec<&str> = flow.steps.iter().map(|s| s.name.as_str()).collect();
    // The seed's order: build, analysis, image, QA, tests beside the approval, prod, merge.
    let at = |n: &str| names.iter().position(|x| *x == n).unwrap();
    assert!(at("build") < at("quality-gate") && at("quality-gate") < at("image"));
    assert!(at("deploy-qa") < at("automated-tests") && at("deploy-qa") < at("qa-signoff"));
    assert!(at("qa-signoff") < at("deploy-prod") && at("deploy-prod") < at("merge-master"));
    let release =
        parse_pipeline(&std::fs::read_to_string(dir.join("release.yaml")).unwrap()).unwrap();
    for p in [
        "ReleaseVersion",
        "ApplicationModule",
        "GenDockerVersion",
        "DeployDC",
        "DeployEnv",
    ] {
        assert!(release.params.contains_key(p), "{p}");
    }
}

#[test]
fn repos_and_merge_steps_are_checked_with_locations() {
    let text = "version: 1\nname: x\nrepos:\n  ops: { url: ../ops.git, secret: ops-cred }\nsteps:\n  d:\n    deploy: { env: qa, repo: nope, app: a.json }\n  m:\n    needs: [d]\n    merge: { into: master, fast_forward_only: true }\n";
    let e = parse_pipeline(text).unwrap_err();
    assert_eq!(e.0.len(), 1, "{e}");
    assert!(e.0[0].message.contains("unknown repository `nope`"), "{e}");
    assert_eq!(e.0[0].line, 7);
    let ok = parse_pipeline(&text.replace("repo: nope", "repo: ops")).unwrap();
    assert_eq!(ok.repos["ops"].secret.as_deref(), Some("ops-cred"));
    assert!(matches!(
        &ok.steps[1].kind,
        StepKind::Merge { into, fast_forward_only: true, from: None, .. } if into == "master"
    ));
}

/// Issue 17: unknown keys and the content errors after them are reported at once.
#[test]
fn unknown_keys_and_content_errors_are_reported_together() {
    let text = "version: 1\nname: x\nsteps:\n  a:\n    run: echo a\n    timout: 5m\n  b:\n    needs: [c]\n    run: echo b\n  d: { run: echo d, retyr: 2 }\n";
    let got = errors(text);
    assert_eq!(got.len(), 3, "{got:#?}");
    assert!(
        got[0].starts_with("6:5: unknown field `timout`"),
        "{got:#?}"
    );
    assert!(
        got[1].starts_with("8:") && got[1].contains("`c`"),
        "{got:#?}"
    );
    assert!(
        got[2].starts_with("10:21: unknown field `retyr`"),
        "{got:#?}"
    );
}
