//! git for runs: other repositories a run checks out (a deploy-config repository owned by
//! ops, with its own credentials), URLs relative to the pipeline's repository, and the
//! `merge` step that merges a released commit into another branch and pushes it.
//!
//! Credentials come from the secret store and reach git only through its environment
//! (`GIT_CONFIG_*` for an HTTP `Authorization` header, `GIT_SSH_COMMAND` with a key file
//! readable only by the server for SSH): never in a URL, a command line or a log.

use base64::Engine as _;
use std::path::{Path, PathBuf};

/// How git authenticates to one repository.
#[derive(Clone)]
pub enum Credentials {
    /// HTTP(S) basic authentication (`user:password`; a bare token is sent as the
    /// password of the user `git`).
    Basic {
        /// The user.
        user: String,
        /// The password or token.
        password: String,
    },
    /// An SSH private key (PEM or OpenSSH format).
    SshKey(String),
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::Basic { user, .. } => write!(f, "Basic({user}, ***)"),
            Credentials::SshKey(_) => f.write_str("SshKey(***)"),
        }
    }
}

impl Credentials {
    /// Reads a secret's value: an SSH private key, `user:password`, or a token.
    pub fn from_secret(value: &str) -> Credentials {
        let trimmed = value.trim();
        if trimmed.starts_with("-----BEGIN") {
            return Credentials::SshKey(format!("{trimmed}\n"));
        }
        match trimmed.split_once(':') {
            Some((user, password)) if !user.is_empty() => Credentials::Basic {
                user: user.to_string(),
                password: password.to_string(),
            },
            _ => Credentials::Basic {
                user: "git".into(),
                password: trimmed.to_string(),
            },
        }
    }
}

/// Runs git with `args` in `cwd`, authenticating with `creds`; `key_dir` holds an SSH key
/// file for the duration of the command. Returns stdout, trimmed; errors carry git's
/// stderr (which never contains the credentials: they are not in the URL).
pub async fn git(
    args: &[&str],
    cwd: Option<&Path>,
    creds: Option<&Credentials>,
    key_dir: &Path,
) -> Result<String, String> {
    let mut cmd = tokio::process::Command::new("git");
    cmd.args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .kill_on_drop(true);
    if let Some(dir) = cwd {
        cmd.current_dir(dir);
    }
    let mut key_file = None;
    match creds {
        Some(Credentials::Basic { user, password }) => {
            let token =
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
            cmd.env("GIT_CONFIG_COUNT", "1")
                .env("GIT_CONFIG_KEY_0", "http.extraHeader")
                .env(
                    "GIT_CONFIG_VALUE_0",
                    format!("Authorization: Basic {token}"),
                );
        }
        Some(Credentials::SshKey(key)) => {
            let path = key_dir.join(format!(".ssh-key-{}", uuid::Uuid::new_v4().simple()));
            write_private(&path, key).map_err(|e| format!("cannot write the SSH key: {e}"))?;
            cmd.env(
                "GIT_SSH_COMMAND",
                format!(
                    "ssh -i '{}' -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=accept-new",
                    path.display()
                ),
            );
            key_file = Some(RemoveOnDrop(path));
        }
        None => {}
    }
    let out = cmd
        .output()
        .await
        .map_err(|e| format!("cannot run git: {e}"))?;
    drop(key_file);
    if !out.status.success() {
        return Err(format!(
            "git {}: {}",
            subcommand(args),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The git command `args` run (`clone` in `-c k=v clone …`), for messages.
fn subcommand<'a>(args: &[&'a str]) -> &'a str {
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if matches!(*a, "-c" | "-C") {
            it.next();
        } else if !a.starts_with('-') {
            return a;
        }
    }
    ""
}

struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(text.as_bytes())
}

/// `url` resolved against the pipeline's own repository `base` when it starts with `./`
/// or `../` (as git submodules' relative URLs: `../ops.git` next to `…/app.git`);
/// otherwise `url` itself.
pub fn resolve_url(base: &str, url: &str) -> String {
    if !(url.starts_with("./") || url.starts_with("../")) {
        return url.to_string();
    }
    // Keep a scheme and authority (`https://host`) out of the path arithmetic.
    let (prefix, path) = match base.find("://") {
        Some(i) => {
            let after = &base[i + 3..];
            let slash = after.find('/').map_or(base.len(), |j| i + 3 + j);
            (&base[..slash], &base[slash..])
        }
        None => ("", base),
    };
    let absolute = path.starts_with('/');
    let mut segs: Vec<&str> = path
        .trim_end_matches('/')
        .split('/')
        .filter(|s| !s.is_empty() && *s != ".")
        .collect();
    for part in url.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                segs.pop();
            }
            p => segs.push(p),
        }
    }
    let joined = segs.join("/");
    if absolute || !prefix.is_empty() {
        format!("{prefix}/{joined}")
    } else {
        joined
    }
}

/// Clones `branch` (or the default branch) of `url` into `dir`; returns the commit.
pub async fn clone(
    url: &str,
    branch: Option<&str>,
    dir: &Path,
    creds: Option<&Credentials>,
    key_dir: &Path,
) -> Result<String, String> {
    let target = dir.to_string_lossy().to_string();
    let mut args = vec!["clone", "--quiet", "--single-branch"];
    if let Some(b) = branch {
        args.extend(["--branch", b]);
    }
    args.extend(["--", url, &target]);
    git(&args, None, creds, key_dir).await?;
    git(&["rev-parse", "HEAD"], Some(dir), None, key_dir).await
}

/// What a merge did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Merged {
    /// The branch's new head.
    pub sha: String,
    /// The branch's head before.
    pub before: String,
    /// It was a fast-forward (no merge commit).
    pub fast_forward: bool,
    /// The branch already contained the commit: nothing was pushed.
    pub up_to_date: bool,
}

/// Merges `from` (a commit or branch of `url`) into `into` and pushes `into`: a
/// fast-forward when possible, else a merge commit by "Slipway" (refused with
/// `fast_forward_only`). Works in a fresh clone under `dir`.
pub async fn merge_and_push(
    url: &str,
    from: &str,
    into: &str,
    fast_forward_only: bool,
    message: &str,
    dir: &Path,
    creds: Option<&Credentials>,
) -> Result<Merged, String> {
    let key_dir = dir.parent().unwrap_or(dir).to_path_buf();
    let _ = std::fs::remove_dir_all(dir);
    let target = dir.to_string_lossy().to_string();
    git(
        &["clone", "--quiet", "--no-checkout", "--", url, &target],
        None,
        creds,
        &key_dir,
    )
    .await?;
    let run = |args: Vec<String>| {
        let key_dir = key_dir.clone();
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            git(&args, Some(dir), creds, &key_dir).await
        }
    };
    // `from` may be a branch of the remote or a commit.
    let from_rev = match run(vec![
        "rev-parse".into(),
        "--verify".into(),
        "--quiet".into(),
        format!("origin/{from}^{{commit}}"),
    ])
    .await
    {
        Ok(sha) if !sha.is_empty() => sha,
        _ => run(vec![
            "rev-parse".into(),
            "--verify".into(),
            format!("{from}^{{commit}}"),
        ])
        .await
        .map_err(|_| format!("`{from}` is neither a branch nor a commit of {url}"))?,
    };
    run(vec![
        "checkout".into(),
        "--quiet".into(),
        "-B".into(),
        into.into(),
        format!("origin/{into}"),
    ])
    .await
    .map_err(|e| format!("branch `{into}`: {e}"))?;
    let before = run(vec!["rev-parse".into(), "HEAD".into()]).await?;
    let contained = run(vec![
        "merge-base".into(),
        "--is-ancestor".into(),
        from_rev.clone(),
        "HEAD".into(),
    ])
    .await
    .is_ok();
    if contained {
        return Ok(Merged {
            sha: before.clone(),
            before,
            fast_forward: false,
            up_to_date: true,
        });
    }
    let fast_forward = run(vec![
        "merge-base".into(),
        "--is-ancestor".into(),
        "HEAD".into(),
        from_rev.clone(),
    ])
    .await
    .is_ok();
    if !fast_forward && fast_forward_only {
        return Err(format!(
            "`{into}` has commits that {from} lacks: not a fast-forward (fast_forward_only)"
        ));
    }
    let mut merge = vec![
        "-c".to_string(),
        "user.name=Slipway".into(),
        "-c".into(),
        "user.email=slipway@localhost".into(),
        "merge".into(),
        "--quiet".into(),
        "--no-edit".into(),
        "-m".into(),
        message.into(),
    ];
    if fast_forward {
        merge.push("--ff-only".into());
    } else {
        merge.push("--no-ff".into());
    }
    merge.push(from_rev.clone());
    if let Err(e) = run(merge).await {
        return Err(format!("merging {from} into {into}: {e}"));
    }
    let sha = run(vec!["rev-parse".into(), "HEAD".into()]).await?;
    run(vec![
        "push".into(),
        "--quiet".into(),
        "origin".into(),
        format!("HEAD:refs/heads/{into}"),
    ])
    .await
    .map_err(|e| format!("pushing {into}: {e}"))?;
    Ok(Merged {
        sha,
        before,
        fast_forward,
        up_to_date: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_urls_resolve_next_to_the_pipeline_repository() {
        assert_eq!(
            resolve_url("/srv/git/orders.git", "../orders-deploy.git"),
            "/srv/git/orders-deploy.git"
        );
        assert_eq!(
            resolve_url("/srv/git/orders/", "./deploy"),
            "/srv/git/orders/deploy"
        );
        assert_eq!(
            resolve_url("https://git.example/team/orders.git", "../ops/deploy.git"),
            "https://git.example/team/ops/deploy.git"
        );
        assert_eq!(
            resolve_url("https://git.example/orders.git", "../../x.git"),
            "https://git.example/x.git"
        );
        assert_eq!(resolve_url("repos/orders", "../ops"), "repos/ops");
        assert_eq!(
            resolve_url("/a/b", "https://elsewhere/x.git"),
            "https://elsewhere/x.git"
        );
    }

    #[test]
    fn messages_name_the_git_command() {
        assert_eq!(
            subcommand(&["-c", "user.name=x", "commit", "-m", "m"]),
            "commit"
        );
        assert_eq!(subcommand(&["--quiet", "clone", "u"]), "clone");
        assert_eq!(subcommand(&[]), "");
    }

    #[test]
    fn secrets_become_credentials_without_showing_them() {
        match Credentials::from_secret("ops:s3cret\n") {
            Credentials::Basic { user, password } => {
                assert_eq!((user.as_str(), password.as_str()), ("ops", "s3cret"));
            }
            other => panic!("{other:?}"),
        }
        match Credentials::from_secret("glpat-abc") {
            Credentials::Basic { user, password } => {
                assert_eq!((user.as_str(), password.as_str()), ("git", "glpat-abc"));
            }
            other => panic!("{other:?}"),
        }
        let key = Credentials::from_secret("-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n");
        assert!(matches!(key, Credentials::SshKey(_)));
        assert!(!format!("{key:?}").contains("abc"));
        assert!(!format!("{:?}", Credentials::from_secret("u:pw")).contains("pw"));
    }
}
