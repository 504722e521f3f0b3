//! Whose privileges host `run` steps run with, and what of the machine they see.
//!
//! A server that runs as root never runs a step as root. Each pipeline's steps get a uid
//! of their own (from the same range as apps' tasks), the task user's group, no
//! supplementary groups, a home directory of their own that is kept between runs (caches
//! such as `~/.cargo/registry` live there) and a small environment of their own: nothing
//! of the server's environment but the locale, the proxy settings and `PATH`.
//!
//! The server's home is usually closed to others (`/root`, mode 0700), and that is where
//! toolchains installed with rustup live. A step therefore runs in a mount namespace of
//! its own in which the server's home is a skeleton of empty root-owned directories
//! holding only the tool directories (`RUSTUP_HOME`, tool managers' roots, and the `PATH`
//! entries under the home, such as `~/.cargo/bin`), bound read-only at their usual paths;
//! the runs directory is bound back (writable as its modes allow) when it lives there.
//! The rest of the home (keys, histories, the server's data when it lives there) is not
//! there at all for the step. One `mount -a` of a table made at start-up sets it up.

use std::ffi::{OsStr, OsString};
use std::io;
use std::ops::RangeInclusive;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Environment variables naming a tool manager's root, kept visible to steps and passed
/// to them.
const TOOL_ROOTS: [&str; 4] = ["PYENV_ROOT", "NVM_DIR", "SDKMAN_DIR", "GOROOT"];

/// Whose privileges host `run` steps run with (set when the service is built).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum StepIdentity {
    /// The server's own: a server that is not root can do no other, and its steps can then
    /// reach everything it can.
    #[default]
    Server,
    /// Every step as this uid and gid.
    Account {
        /// The uid.
        uid: u32,
        /// The gid.
        gid: u32,
    },
    /// Each pipeline a uid of its own from `uids` (allocated once, stored, never reused;
    /// shared with the apps' tasks), with the primary group `gid`: one pipeline's steps
    /// cannot write another's workspace, nor signal its processes.
    PerPipeline {
        /// The uids handed out.
        uids: RangeInclusive<u32>,
        /// The group every step runs with.
        gid: u32,
    },
}

/// The account one run's host steps run as, and the view of the machine they get.
#[derive(Clone, Debug)]
pub struct StepUser {
    /// The uid steps run with.
    pub uid: u32,
    /// The gid steps run with (no supplementary groups).
    pub gid: u32,
    /// `HOME` of the steps: a directory of this uid's own.
    pub home: PathBuf,
    /// What of the server's home the steps see.
    pub view: Arc<View>,
}

/// The server's home as steps see it: `shadow` is covered by an empty tmpfs holding only
/// the `keep` directories (bound at their own paths).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct View {
    /// The directory covered (the server's home, when others cannot enter it).
    pub shadow: Option<PathBuf>,
    /// Directories under `shadow` that stay visible, and whether steps may write there
    /// (the runs directory) or only read (toolchains).
    pub keep: Vec<(PathBuf, bool)>,
    /// `RUSTUP_HOME` for steps, when the server has a rustup installation: steps get a
    /// home of their own, so rustup's proxies would otherwise look in the wrong place.
    pub rustup_home: Option<PathBuf>,
    /// An empty directory tree (root's, 0755) with a mount point for each kept directory,
    /// bound over `shadow` once the kept directories are bound onto it.
    pub skeleton: Option<PathBuf>,
    /// The mount table that does it (`mount -a -T`, one process): each kept directory
    /// onto its mount point in the skeleton, then the skeleton over the home.
    pub fstab: Option<PathBuf>,
}

impl View {
    /// The view for a server whose runs live in `runs_dir`, from its own environment
    /// (`HOME`, `RUSTUP_HOME`, `PATH`) and where its binary is.
    pub fn of_server(runs_dir: &Path) -> View {
        let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
        let home = env("HOME").map(PathBuf::from);
        let rustup_home = env("RUSTUP_HOME")
            .map(PathBuf::from)
            .or_else(|| home.as_ref().map(|h| h.join(".rustup")))
            .filter(|p| p.is_dir());
        let mut tools: Vec<PathBuf> = rustup_home.iter().cloned().collect();
        // Version managers keep their tools under a root of their own, named in the
        // environment (pyenv's shims need the whole root).
        tools.extend(TOOL_ROOTS.iter().filter_map(|k| env(k)).map(PathBuf::from));
        if let Some(path) = env("PATH") {
            tools.extend(std::env::split_paths(&path).filter(|p| p.is_absolute()));
        }
        if let Some(dir) = std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(Path::to_path_buf))
        {
            tools.push(dir);
        }
        let view = View::plan(home.as_deref(), &tools, runs_dir, rustup_home);
        if view.shadow.is_some() && !mount_namespaces_work() {
            tracing::warn!(
                "this machine refuses mount namespaces (unshare --mount): steps run without \
                 the view of the server's home and cannot reach the toolchains in it"
            );
            return View {
                rustup_home: view.rustup_home,
                ..View::default()
            };
        }
        view.with_skeleton(&runs_dir.join(".view"))
    }

    /// Makes the skeleton at `at` (anew) and its mount table beside it (`at` + `.fstab`):
    /// the kept directories' paths below the covered home as empty directories. Without
    /// them nothing is covered (steps then cannot enter the closed home at all, toolchains
    /// included), said in the log.
    pub fn with_skeleton(mut self, at: &Path) -> View {
        let Some(home) = self.shadow.clone() else {
            return self;
        };
        let fstab = at.with_extension("fstab");
        let made = (|| -> io::Result<()> {
            if at.exists() {
                std::fs::remove_dir_all(at)?;
            }
            std::fs::create_dir_all(at)?;
            std::fs::set_permissions(at, std::fs::Permissions::from_mode(0o755))?;
            let mut table = String::new();
            for (dir, writable) in &self.keep {
                if let Ok(rel) = dir.strip_prefix(&home) {
                    let point = at.join(rel);
                    std::fs::DirBuilder::new()
                        .recursive(true)
                        .mode(0o755)
                        .create(&point)?;
                    let opts = if *writable {
                        "bind"
                    } else {
                        "bind,ro,nosuid,nodev"
                    };
                    table.push_str(&format!(
                        "{} {} none {opts} 0 0\n",
                        fstab_field(dir),
                        fstab_field(&point)
                    ));
                }
            }
            table.push_str(&format!(
                "{} {} none rbind 0 0\n",
                fstab_field(at),
                fstab_field(&home)
            ));
            std::fs::write(&fstab, table)?;
            std::fs::set_permissions(&fstab, std::fs::Permissions::from_mode(0o644))
        })();
        match made {
            Ok(()) => {
                self.skeleton = Some(at.to_path_buf());
                self.fstab = Some(fstab);
            }
            Err(e) => {
                tracing::warn!(error = %e, at = %at.display(),
                    "cannot make the steps' view of the server's home; steps cannot reach the toolchains in it");
                self.shadow = None;
                self.keep.clear();
            }
        }
        self
    }

    /// The view that covers `home` when others cannot enter it, keeping the `tools` under
    /// it (read-only) and `runs_dir` (writable as its modes allow).
    pub fn plan(
        home: Option<&Path>,
        tools: &[PathBuf],
        runs_dir: &Path,
        rustup_home: Option<PathBuf>,
    ) -> View {
        let closed = home.filter(|h| {
            h.components().count() > 1
                && std::fs::metadata(h)
                    .is_ok_and(|m| m.is_dir() && m.permissions().mode() & 0o001 == 0)
        });
        let Some(home) = closed else {
            return View {
                rustup_home,
                ..View::default()
            };
        };
        let home = home.canonicalize().unwrap_or_else(|_| home.to_path_buf());
        let mut keep: Vec<(PathBuf, bool)> = Vec::new();
        let mut add = |dir: &Path, writable: bool| {
            let Ok(real) = dir.canonicalize() else { return };
            if real == home || !real.starts_with(&home) || !real.is_dir() {
                return;
            }
            // A directory already kept (or inside one) needs nothing more.
            if keep.iter().any(|(k, _)| real.starts_with(k)) {
                return;
            }
            keep.retain(|(k, _)| !k.starts_with(&real));
            keep.push((real, writable));
        };
        add(runs_dir, true);
        for t in tools {
            add(t, false);
        }
        keep.sort();
        View {
            shadow: Some(home),
            keep,
            rustup_home,
            skeleton: None,
            fstab: None,
        }
    }
}

/// Covers the server's home in the step's own mount namespace (run by `unshare` as root,
/// before the privileges are dropped): one `mount -a` of the view's table binds the kept
/// directories onto the skeleton and the skeleton over the home, then the step's command
/// (`setpriv …`) is executed in its working directory as the step sees it. Nothing
/// propagates back: the namespace's mounts are private. Arguments: FSTAB CWD COMMAND...
const COVER: &str = r#"mount -a -c -T "$1" && cd "$2" && shift 2 && exec "$@""#;

/// A path as a field of a mount table (space, tab, newline and backslash in octal).
fn fstab_field(p: &Path) -> String {
    let mut out = String::new();
    for c in p.to_string_lossy().chars() {
        match c {
            ' ' => out.push_str("\\040"),
            '\t' => out.push_str("\\011"),
            '\n' => out.push_str("\\012"),
            '\\' => out.push_str("\\134"),
            c => out.push(c),
        }
    }
    out
}

impl StepUser {
    /// The program and arguments that run `command` with `sh -c` as this user, in `cwd`,
    /// seeing the machine through the view: `setpriv` (uid, gid, no supplementary groups,
    /// no new privileges), behind `unshare` when the server's home is covered.
    pub(crate) fn wrap(
        &self,
        cwd: &Path,
        command: &str,
    ) -> Result<(String, Vec<OsString>), String> {
        let setpriv = find_program("setpriv").ok_or("setpriv (util-linux) is not installed")?;
        let mut drop: Vec<OsString> = vec![
            format!("--reuid={}", self.uid).into(),
            format!("--regid={}", self.gid).into(),
            "--clear-groups".into(),
            "--no-new-privs".into(),
            "--".into(),
            "/bin/sh".into(),
            "-c".into(),
            command.into(),
        ];
        let (Some(_), Some(fstab)) = (&self.view.shadow, &self.view.fstab) else {
            return Ok((setpriv, drop));
        };
        let unshare = find_program("unshare").ok_or("unshare (util-linux) is not installed")?;
        let mut args: Vec<OsString> = vec![
            "--mount".into(),
            "--propagation".into(),
            "private".into(),
            "--".into(),
            "/bin/sh".into(),
            "-c".into(),
            COVER.into(),
            "slipway-step".into(),
            fstab.into(),
            cwd.into(),
            setpriv.into(),
        ];
        args.append(&mut drop);
        Ok((unshare, args))
    }
}

/// Whether `unshare --mount` works here (not inside a container without the right to).
fn mount_namespaces_work() -> bool {
    find_program("unshare").is_some_and(|unshare| {
        std::process::Command::new(unshare)
            .args(["--mount", "--propagation", "private", "--", "/bin/true"])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

/// `name` in the usual system directories.
fn find_program(name: &str) -> Option<String> {
    ["/usr/bin", "/bin", "/usr/sbin", "/sbin"]
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
        .map(|p| p.to_string_lossy().to_string())
}

/// The environment a step starts from, before its own variables: the server's locale,
/// time zone, proxy settings and tool managers' roots (never the rest of its environment, which may hold
/// credentials), `PATH`, and a `HOME` (with `CARGO_HOME` in it) of the step's own.
pub(crate) fn base_env(user: Option<&StepUser>, path: String) -> Vec<(String, String)> {
    const PASSED: [&str; 16] = [
        "LANG",
        "LANGUAGE",
        "LC_ALL",
        "LC_CTYPE",
        "LC_MESSAGES",
        "TZ",
        "TERM",
        "http_proxy",
        "https_proxy",
        "no_proxy",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "NO_PROXY",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        "RUSTUP_TOOLCHAIN",
    ];
    let mut env: Vec<(String, String)> = PASSED
        .iter()
        .chain(TOOL_ROOTS.iter())
        .filter_map(|k| std::env::var(k).ok().map(|v| ((*k).to_string(), v)))
        .collect();
    env.push(("PATH".into(), path));
    match user {
        Some(u) => {
            let home = u.home.to_string_lossy().to_string();
            env.push(("CARGO_HOME".into(), format!("{home}/.cargo")));
            env.push(("HOME".into(), home));
            if let Some(r) = &u.view.rustup_home {
                env.push(("RUSTUP_HOME".into(), r.to_string_lossy().to_string()));
            }
        }
        // Steps of a server that is not root are the server's user: its home and caches.
        None => {
            for k in [
                "HOME",
                "USER",
                "LOGNAME",
                "CARGO_HOME",
                "RUSTUP_HOME",
                "TMPDIR",
            ] {
                if let Some(v) = std::env::var_os(k) {
                    env.push((k.into(), OsStr::to_string_lossy(&v).to_string()));
                }
            }
        }
    }
    env
}

/// Gives `dir` and everything under it to `uid`:`gid`, never following a symbolic link
/// (a link is re-owned itself).
pub(crate) fn give(dir: &Path, uid: u32, gid: u32) -> io::Result<()> {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        std::os::unix::fs::lchown(&d, Some(uid), Some(gid))?;
        for entry in std::fs::read_dir(&d)? {
            let entry = entry?;
            let kind = entry.file_type()?;
            if kind.is_dir() {
                stack.push(entry.path());
            } else {
                std::os::unix::fs::lchown(entry.path(), Some(uid), Some(gid))?;
            }
        }
    }
    Ok(())
}

/// Makes `dir` (and its missing parents) a directory owned by `uid`:`gid` with `mode`.
pub(crate) fn own_dir(dir: &Path, uid: u32, gid: u32, mode: u32) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let meta = std::fs::symlink_metadata(dir)?;
    if !meta.is_dir() {
        return Err(io::Error::other(format!(
            "{} is not a directory",
            dir.display()
        )));
    }
    std::os::unix::fs::lchown(dir, Some(uid), Some(gid))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_closed_home_is_covered_keeping_tools_and_runs_under_it() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("root");
        for d in [".rustup", ".cargo/bin", ".ssh", "data/runs", "bin"] {
            std::fs::create_dir_all(home.join(d)).unwrap();
        }
        std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o700)).unwrap();
        let tools = vec![
            home.join(".rustup"),
            home.join(".cargo/bin"),
            home.join(".rustup/toolchains"),
            PathBuf::from("/usr/bin"),
            home.join("missing"),
        ];
        let view = View::plan(Some(&home), &tools, &home.join("data/runs"), None);
        let home = home.canonicalize().unwrap();
        assert_eq!(view.shadow.as_deref(), Some(home.as_path()));
        assert_eq!(
            view.keep,
            vec![
                (home.join(".cargo/bin"), false),
                (home.join(".rustup"), false),
                (home.join("data/runs"), true),
            ],
            "tools under the home read-only, nested ones once, the runs directory writable, \
             nothing outside it and nothing that does not exist"
        );
        let skeleton = dir.path().join("view");
        let view = view.with_skeleton(&skeleton);
        assert_eq!(view.skeleton.as_deref(), Some(skeleton.as_path()));
        for d in [".cargo/bin", ".rustup", "data/runs"] {
            assert!(skeleton.join(d).is_dir(), "{d}");
        }
        assert!(!skeleton.join(".ssh").exists());
        let table = std::fs::read_to_string(view.fstab.as_ref().unwrap()).unwrap();
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 4, "{table}");
        assert!(
            lines[0].ends_with(&format!(
                "{} none bind,ro,nosuid,nodev 0 0",
                skeleton.join(".cargo/bin").display()
            )),
            "{table}"
        );
        assert!(lines[2].ends_with("/data/runs none bind 0 0"), "{table}");
        assert_eq!(
            lines[3],
            format!("{} {} none rbind 0 0", skeleton.display(), home.display()),
            "the skeleton goes over the home last"
        );
        assert_eq!(fstab_field(Path::new("/a b\\c")), "/a\\040b\\134c");
    }

    #[test]
    fn an_open_home_is_left_as_it_is() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let view = View::plan(Some(dir.path()), &[dir.path().join("x")], dir.path(), None);
        assert_eq!(view.shadow, None);
        assert!(view.keep.is_empty());
    }

    #[test]
    fn steps_get_none_of_the_servers_secrets_from_its_environment() {
        let user = StepUser {
            uid: 200_001,
            gid: 999,
            home: PathBuf::from("/srv/homes/200001"),
            view: Arc::new(View {
                rustup_home: Some(PathBuf::from("/root/.rustup")),
                ..View::default()
            }),
        };
        let env = base_env(Some(&user), "/usr/bin:/bin".into());
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("HOME"), Some("/srv/homes/200001"));
        assert_eq!(get("CARGO_HOME"), Some("/srv/homes/200001/.cargo"));
        assert_eq!(get("RUSTUP_HOME"), Some("/root/.rustup"));
        assert_eq!(get("PATH"), Some("/usr/bin:/bin"));
        // Only the names passed on purpose: nothing like a token or a password.
        for (k, _) in &env {
            assert!(
                [
                    "HOME",
                    "CARGO_HOME",
                    "RUSTUP_HOME",
                    "PATH",
                    "LANG",
                    "LANGUAGE",
                    "LC_ALL",
                    "LC_CTYPE",
                    "LC_MESSAGES",
                    "TZ",
                    "TERM",
                    "http_proxy",
                    "https_proxy",
                    "no_proxy",
                    "HTTP_PROXY",
                    "HTTPS_PROXY",
                    "NO_PROXY",
                    "SSL_CERT_FILE",
                    "SSL_CERT_DIR",
                    "RUSTUP_TOOLCHAIN",
                    "PYENV_ROOT",
                    "NVM_DIR",
                    "SDKMAN_DIR",
                    "GOROOT"
                ]
                .contains(&k.as_str()),
                "{k} is passed to steps"
            );
        }
    }
}
