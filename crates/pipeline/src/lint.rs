//! `slipway pipelines lint`: a pipeline file checked where it is written, before anything
//! is pushed: every problem of the file at once (`file:line:column: message`), then the
//! deploy files it names in its own repository (they exist, and every `params`, `vars`
//! and `run` reference in them is one the pipeline has).

use crate::Values;
use model::pipeline::{ParamKind, ParamValue, StepKind, parse_pipeline};
use std::path::{Path, PathBuf};

/// The problems of the pipeline file at `file`, every one; empty when it is fine.
/// `Err` when the file cannot be read.
pub fn lint(file: &Path) -> Result<Vec<String>, String> {
    let shown = file.display().to_string();
    let text = std::fs::read_to_string(file).map_err(|e| format!("cannot read {shown}: {e}"))?;
    let pipeline = match parse_pipeline(&text) {
        Ok(p) => p,
        Err(errors) => {
            return Ok(errors
                .0
                .iter()
                .map(|e| format!("{shown}:{}:{}: {}", e.line, e.column, e.message))
                .collect());
        }
    };
    // Values as a run would have them, with defaults (or a stand-in) for every parameter.
    let mut values = Values::default();
    for (name, p) in &pipeline.params {
        let value = match (&p.default, &p.kind) {
            (Some(d), _) => d.clone(),
            (None, ParamKind::Bool) => ParamValue::Bool(false),
            (None, ParamKind::Choice(options)) => {
                ParamValue::Text(options.first().cloned().unwrap_or_default())
            }
            (None, ParamKind::String) => ParamValue::Text(String::new()),
        };
        values.params.insert(name.clone(), value);
    }
    for key in ["sha", "branch", "number", "id"] {
        values.run.insert(key.into(), format!("<{key}>"));
    }
    for (name, text) in &pipeline.vars {
        let rendered = values.render(text).unwrap_or_else(|_| text.clone());
        values.vars.insert(name.clone(), rendered);
    }
    let root = repository_root(file);
    let mut problems = Vec::new();
    for step in &pipeline.steps {
        let StepKind::Deploy {
            repo: None,
            app,
            overlay,
            ..
        } = &step.kind
        else {
            continue;
        };
        for name in std::iter::once(app).chain(overlay) {
            // Names built from other steps' outputs are known at run time only.
            let Ok(rel) = values.render(name) else {
                continue;
            };
            let path = match crate::service::in_workspace(&root, &rel) {
                Ok(p) => p,
                Err(e) => {
                    problems.push(format!("{shown}: step `{}`: {e}", step.name));
                    continue;
                }
            };
            match std::fs::read_to_string(&path) {
                Ok(text) => problems.extend(values.unknown_references(&rel, &text)),
                Err(e) => problems.push(format!(
                    "{shown}: step `{}`: cannot read {rel} in {}: {e}",
                    step.name,
                    root.display()
                )),
            }
        }
    }
    Ok(problems)
}

/// The repository a pipeline file lives in: the nearest directory above it with `.git`,
/// else the directory above `.slipway/`, else the file's directory.
fn repository_root(file: &Path) -> PathBuf {
    let dir = file
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    let mut at = Some(dir.as_path());
    while let Some(d) = at {
        if d.join(".git").exists() {
            return d.to_path_buf();
        }
        at = d.parent();
    }
    if dir.file_name().is_some_and(|n| n == ".slipway") {
        return dir.parent().map_or(dir.clone(), Path::to_path_buf);
    }
    dir
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_problem_of_the_file_and_its_deploy_files_at_once() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join(".slipway")).unwrap();
        std::fs::create_dir_all(dir.path().join("deploy")).unwrap();
        let file = dir.path().join(".slipway/pipeline.yaml");
        std::fs::write(
            &file,
            "version: 1\nname: x\nsteps:\n  a: { run: x, timeout: soon }\n  b: { needs: [c], run: echo b }\n",
        )
        .unwrap();
        let problems = lint(&file).unwrap();
        assert!(problems.len() >= 2, "{problems:?}");
        assert!(
            problems
                .iter()
                .all(|p| p.starts_with(&file.display().to_string()))
        );

        std::fs::write(
            &file,
            "version: 1\nname: x\nparams:\n  Env: { type: choice, options: [qa], default: qa }\nsteps:\n  d: { deploy: { env: qa, app: deploy/app.json, overlay: deploy/missing.json } }\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("deploy/app.json"),
            "{\"id\": \"/${{ params.DeployDC }}/${{ params.Env }}/app\"}",
        )
        .unwrap();
        let problems = lint(&file).unwrap();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert_eq!(
            problems[0],
            "deploy/app.json:1:10: unknown parameter DeployDC (the pipeline has: Env)"
        );
        assert!(
            problems[1].contains("cannot read deploy/missing.json"),
            "{problems:?}"
        );
    }
}
