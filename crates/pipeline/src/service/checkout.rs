//! The run's own checkout: `git clone` of a pipeline's branch, files read from it only
//! when they resolve inside it, and the pipeline file parsed from it.

use super::ServiceError;
use model::pipeline::{Pipeline, parse_pipeline};
use std::path::{Path, PathBuf};

pub(super) async fn git(args: &[&str], cwd: Option<&Path>) -> Result<String, ServiceError> {
    crate::repos::git(args, cwd, None, Path::new("/nonexistent"))
        .await
        .map_err(ServiceError::Git)
}

/// Clones `branch` of `repo` into `dir`; returns the commit.
pub(super) async fn checkout(repo: &str, branch: &str, dir: &Path) -> Result<String, ServiceError> {
    let target = dir.to_string_lossy().to_string();
    git(
        &[
            "clone",
            "--quiet",
            "--single-branch",
            "--branch",
            branch,
            repo,
            &target,
        ],
        None,
    )
    .await?;
    git(&["rev-parse", "HEAD"], Some(dir)).await
}

/// `rel` inside `workspace`, refusing absolute paths and `..` (a file named in a pipeline
/// or a request must not reach outside the run's checkout).
pub fn in_workspace(workspace: &Path, rel: &str) -> Result<PathBuf, String> {
    let path = Path::new(rel);
    if path.is_absolute()
        || path
            .components()
            .any(|c| matches!(c, std::path::Component::ParentDir))
    {
        return Err(format!("`{rel}` is outside the workspace"));
    }
    Ok(workspace.join(path))
}

pub(super) fn read_pipeline(
    workspace: &Path,
    file: &str,
) -> Result<(Pipeline, String), ServiceError> {
    let path = in_workspace(workspace, file).map_err(ServiceError::Invalid)?;
    let text = std::fs::read_to_string(path)
        .map_err(|e| ServiceError::Invalid(format!("cannot read {file}: {e}")))?;
    let pipeline =
        parse_pipeline(&text).map_err(|e| ServiceError::Invalid(format!("{file}:\n{e}")))?;
    Ok((pipeline, text))
}
