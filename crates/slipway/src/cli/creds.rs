//! The credentials file written by `slipway login` and read by every client command.
//!
//! `$XDG_CONFIG_HOME/slipway/credentials.json` (else `~/.config/slipway/credentials.json`),
//! mode 0600: `{"servers": {"<url>": {"user", "token", "tokenId"}}}`, keyed by the
//! normalised server URL (see [`normalize_server`]).

use anyhow::Context;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The whole credentials file.
#[derive(Serialize, Deserialize, Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct CredFile {
    /// One entry per server URL.
    #[serde(default)]
    pub(crate) servers: BTreeMap<String, ServerEntry>,
}

/// What `slipway login` stored for one server.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ServerEntry {
    /// The user the token belongs to.
    pub(crate) user: String,
    /// The API token (`slw_...`).
    pub(crate) token: String,
    /// The token's id, used by `slipway logout` to revoke it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) token_id: Option<String>,
}

/// Where the token of a client command came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Chosen {
    /// `--token` or `SLIPWAY_TOKEN`.
    Flag(String),
    /// The credentials file entry for the server.
    Stored(String),
    /// No credentials at all.
    Nothing,
}

/// Credential precedence: a non-blank `--token`/`SLIPWAY_TOKEN` wins, then the stored
/// token for the server, else nothing (the server will answer 401).
pub(crate) fn choose(flag: Option<&str>, stored: Option<&ServerEntry>) -> Chosen {
    if let Some(t) = flag.map(str::trim).filter(|t| !t.is_empty()) {
        return Chosen::Flag(t.to_string());
    }
    match stored.map(|e| e.token.trim()).filter(|t| !t.is_empty()) {
        Some(t) => Chosen::Stored(t.to_string()),
        None => Chosen::Nothing,
    }
}

/// The credentials file path for these environment values: `$XDG_CONFIG_HOME` when it is
/// an absolute path (as the XDG spec demands), else `$HOME/.config`; `None` without either.
pub(crate) fn path_from(
    xdg_config_home: Option<OsString>,
    home: Option<OsString>,
) -> Option<PathBuf> {
    let xdg = xdg_config_home
        .map(PathBuf::from)
        .filter(|p| p.is_absolute());
    let base = match xdg {
        Some(p) => p,
        None => PathBuf::from(home.filter(|h| !h.is_empty())?).join(".config"),
    };
    Some(base.join("slipway").join("credentials.json"))
}

/// The credentials file path of this process's environment.
pub(crate) fn default_path() -> Option<PathBuf> {
    path_from(
        std::env::var_os("XDG_CONFIG_HOME"),
        std::env::var_os("HOME"),
    )
}

/// The server URL as typed, normalised: no surrounding blanks or trailing slashes, scheme
/// and host lowercased. Only `http://` and `https://` without user info are accepted.
pub(crate) fn normalize_server(raw: &str) -> Result<String, String> {
    let s = raw.trim().trim_end_matches('/');
    let invalid = || format!("invalid server url {s:?}: expected http://HOST:PORT");
    let (scheme, rest) = s.split_once("://").ok_or_else(invalid)?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return Err(invalid());
    }
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    if authority.is_empty() || authority.contains(char::is_whitespace) {
        return Err(invalid());
    }
    if authority.contains('@') {
        return Err(format!(
            "invalid server url {s:?}: credentials do not belong in the url \
             (use `slipway login` or SLIPWAY_TOKEN)"
        ));
    }
    Ok(format!(
        "{scheme}://{}{path}",
        authority.to_ascii_lowercase()
    ))
}

/// Reads the file; a missing file is an empty one.
pub(crate) fn load(path: &Path) -> anyhow::Result<CredFile> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(CredFile::default()),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        eprintln!(
            "warning: {} is readable by other users; run `chmod 600` on it",
            path.display()
        );
    }
    serde_json::from_slice(&bytes).with_context(|| {
        format!(
            "{} is not a valid credentials file (fix or delete it)",
            path.display()
        )
    })
}

/// Writes the file atomically with mode 0600 (its directory is created with mode 0700).
pub(crate) fn save(path: &Path, file: &CredFile) -> anyhow::Result<()> {
    let dir = path
        .parent()
        .with_context(|| format!("{} has no directory", path.display()))?;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create {}", dir.display()))?;
    let mut text = serde_json::to_vec_pretty(file).context("cannot encode credentials")?;
    text.push(b'\n');
    let tmp = dir.join(".credentials.json.tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("cannot create {}", tmp.display()))?;
    f.write_all(&text)
        .and_then(|()| f.sync_all())
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot replace {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(token: &str) -> ServerEntry {
        ServerEntry {
            user: "alice".into(),
            token: token.into(),
            token_id: Some("id1".into()),
        }
    }

    #[test]
    fn flag_beats_file_beats_nothing() {
        let stored = entry("slw_file");
        assert_eq!(
            choose(Some("slw_flag"), Some(&stored)),
            Chosen::Flag("slw_flag".into())
        );
        assert_eq!(
            choose(Some("  "), Some(&stored)),
            Chosen::Stored("slw_file".into())
        );
        assert_eq!(
            choose(None, Some(&stored)),
            Chosen::Stored("slw_file".into())
        );
        assert_eq!(choose(Some(" slw_x\n"), None), Chosen::Flag("slw_x".into()));
        assert_eq!(choose(None, Some(&entry(""))), Chosen::Nothing);
        assert_eq!(choose(None, None), Chosen::Nothing);
    }

    #[test]
    fn path_follows_xdg_then_home() {
        let p = |x: Option<&str>, h: Option<&str>| path_from(x.map(Into::into), h.map(Into::into));
        let want = PathBuf::from("/x/slipway/credentials.json");
        assert_eq!(p(Some("/x"), Some("/home/a")), Some(want));
        let home = PathBuf::from("/home/a/.config/slipway/credentials.json");
        assert_eq!(p(Some("relative"), Some("/home/a")), Some(home.clone()));
        assert_eq!(p(Some(""), Some("/home/a")), Some(home));
        assert_eq!(p(None, None), None);
        assert_eq!(p(None, Some("")), None);
    }

    #[test]
    fn server_urls_are_normalised() {
        let ok = |raw: &str| normalize_server(raw).unwrap_or_else(|e| panic!("{raw}: {e}"));
        assert_eq!(ok("http://127.0.0.1:8080"), "http://127.0.0.1:8080");
        assert_eq!(ok(" HTTP://Host.Example:80/// "), "http://host.example:80");
        assert_eq!(ok("https://h/Prefix/"), "https://h/Prefix");
        for bad in [
            "127.0.0.1:8080",
            "ftp://h",
            "http://",
            "http:///x",
            "http://u:p@h",
        ] {
            assert!(normalize_server(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn round_trip_with_private_mode() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let path = dir.path().join("cfg/slipway/credentials.json");
        assert_eq!(load(&path).ok(), Some(CredFile::default()));
        let mut file = CredFile::default();
        file.servers.insert("http://h:1".into(), entry("slw_a"));
        save(&path, &file).unwrap_or_else(|e| panic!("save: {e:#}"));
        let mode = std::fs::metadata(&path).map(|m| m.permissions().mode() & 0o777);
        assert_eq!(mode.ok(), Some(0o600));
        assert_eq!(load(&path).ok(), Some(file.clone()));
        let raw = std::fs::read_to_string(&path).unwrap_or_default();
        let v: serde_json::Value = serde_json::from_str(&raw).unwrap_or_default();
        assert_eq!(v["servers"]["http://h:1"]["token"], "slw_a");
        assert_eq!(v["servers"]["http://h:1"]["tokenId"], "id1");
        file.servers.clear();
        save(&path, &file).unwrap_or_else(|e| panic!("save: {e:#}"));
        assert_eq!(load(&path).ok(), Some(CredFile::default()));
    }

    #[test]
    fn old_entries_without_id_and_broken_files() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let path = dir.path().join("credentials.json");
        let old = r#"{"servers": {"http://h:1": {"user": "u", "token": "slw_t"}}}"#;
        std::fs::write(&path, old).unwrap_or_else(|e| panic!("write: {e}"));
        let file = load(&path).unwrap_or_else(|e| panic!("load: {e:#}"));
        assert_eq!(
            file.servers
                .get("http://h:1")
                .and_then(|e| e.token_id.clone()),
            None
        );
        std::fs::write(&path, "{not json").unwrap_or_else(|e| panic!("write: {e}"));
        assert!(load(&path).is_err());
    }
}
