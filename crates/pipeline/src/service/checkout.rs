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
            // A repository named `--upload-pack=…` is a repository, not an option.
            "--",
            repo,
            &target,
        ],
        None,
    )
    .await?;
    git(&["rev-parse", "HEAD"], Some(dir)).await
}

/// `rel` inside `workspace`, refusing absolute paths, `..`, and paths that resolve
/// outside it through a symlink (a file named in a pipeline or a request, or committed as
/// a link to `/etc/shadow`, must not reach outside the run's checkout).
pub fn in_workspace(workspace: &Path, rel: &str) -> Result<PathBuf, String> {
    let path = Path::new(rel);
    if path.is_absolute()
        || path
            .components()
            .any(|c| matches!(c, std::path::Component::ParentDir))
    {
        return Err(format!("`{rel}` is outside the workspace"));
    }
    let joined = workspace.join(path);
    // A path that does not exist (yet) is reported by whoever reads it.
    if let Ok(real) = joined.canonicalize() {
        let root = workspace
            .canonicalize()
            .unwrap_or_else(|_| workspace.to_path_buf());
        if !real.starts_with(&root) {
            return Err(format!(
                "`{rel}` is a symbolic link that leads outside the checkout; it is not read"
            ));
        }
    }
    Ok(joined)
}

/// Reads the text file `rel` of `workspace`, checking what was actually opened: the
/// path is resolved by the kernel once, and the opened file's own path must lie inside
/// the workspace, so a step that swaps a file for a link while the server reads it gains
/// nothing (at most 16 MiB are read).
pub(crate) fn read_in_workspace(workspace: &Path, rel: &str) -> Result<String, String> {
    use std::io::Read;
    const MAX: u64 = 16 * 1024 * 1024;
    let path = in_workspace(workspace, rel)?;
    let file = std::fs::File::open(&path).map_err(|e| format!("cannot read {rel}: {e}"))?;
    let root = workspace
        .canonicalize()
        .map_err(|e| format!("cannot read {rel}: {e}"))?;
    let real = std::fs::read_link(format!("/proc/self/fd/{}", {
        use std::os::fd::AsRawFd;
        file.as_raw_fd()
    }))
    .map_err(|e| format!("cannot read {rel}: {e}"))?;
    if !real.starts_with(&root) {
        return Err(format!(
            "`{rel}` is a symbolic link that leads outside the checkout; it is not read"
        ));
    }
    let mut text = String::new();
    file.take(MAX)
        .read_to_string(&mut text)
        .map_err(|e| format!("cannot read {rel}: {e}"))?;
    Ok(text)
}

/// Checks that no symbolic link under `dir` (a build context) leads outside `root`.
pub fn links_stay_inside(dir: &Path, root: &Path) -> Result<(), String> {
    let root = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries =
            std::fs::read_dir(&d).map_err(|e| format!("cannot read {}: {e}", d.display()))?;
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_symlink() {
                let inside = path
                    .canonicalize()
                    .is_ok_and(|real| real.starts_with(&root));
                if !inside {
                    let shown = path
                        .strip_prefix(&root)
                        .unwrap_or(&path)
                        .display()
                        .to_string();
                    return Err(format!(
                        "`{shown}` is a symbolic link that leads outside the checkout; the context is not sent"
                    ));
                }
            } else if kind.is_dir() && entry.file_name() != ".git" {
                stack.push(path);
            }
        }
    }
    Ok(())
}

pub(super) fn read_pipeline(
    workspace: &Path,
    file: &str,
) -> Result<(Pipeline, String), ServiceError> {
    let text = read_in_workspace(workspace, file).map_err(ServiceError::Invalid)?;
    let pipeline =
        parse_pipeline(&text).map_err(|e| ServiceError::Invalid(format!("{file}:\n{e}")))?;
    Ok((pipeline, text))
}
