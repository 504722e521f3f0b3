//! Fetching artifacts (Marathon `fetch`) into a task sandbox: copy, curl, extract, chmod.

use std::path::{Component, Path, PathBuf};
use std::process::Stdio;

use serde::{Deserialize, Serialize};
use tokio::process::Command;

use crate::LaunchError;

/// One artifact to put into the sandbox before the task starts (Marathon `fetch` item).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FetchSpec {
    /// `file:///abs/path`, a plain absolute path, `http(s)://` or `ftp(s)://` URI.
    pub uri: String,
    /// Extract archives (`.tar*`, `.tgz`, `.tbz2`, `.txz`, `.zip`, `.gz`) into the sandbox.
    pub extract: bool,
    /// Make the fetched file executable (mode 755).
    pub executable: bool,
    /// Accepted for compatibility; artifacts are always fetched fresh (no cache).
    pub cache: bool,
    /// File name (relative to the sandbox) to store the artifact as; default: last URI segment.
    pub output_file: Option<String>,
}

/// Fetches every item in order; the first failure aborts with an error naming its URI.
pub async fn fetch_all(specs: &[FetchSpec], sandbox: &Path) -> Result<(), LaunchError> {
    for spec in specs {
        fetch_one(spec, sandbox)
            .await
            .map_err(|reason| LaunchError::Fetch {
                uri: spec.uri.clone(),
                reason,
            })?;
    }
    Ok(())
}

/// Where an artifact comes from.
enum Source {
    /// A local file to copy.
    Local(PathBuf),
    /// A remote URI to download with curl.
    Remote(String),
}

/// Decodes `%XX` escapes; invalid escapes are kept literally.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b
            .get(i + 1..i + 3)
            .and_then(|h| u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok());
        match (b[i], hex) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Classifies the URI and returns the source plus the URI path used to name the file.
fn parse_uri(uri: &str) -> Result<(Source, String), String> {
    if let Some(rest) = uri.strip_prefix("file://") {
        let path = rest.strip_prefix("localhost").unwrap_or(rest);
        if !path.starts_with('/') {
            return Err("file uri must be file:///absolute/path".to_owned());
        }
        let path = percent_decode(path);
        return Ok((Source::Local(PathBuf::from(&path)), path));
    }
    if uri.starts_with('/') {
        return Ok((Source::Local(PathBuf::from(uri)), uri.to_owned()));
    }
    let remote = ["http://", "https://", "ftp://", "ftps://"];
    if let Some(scheme) = remote.iter().find(|s| uri.starts_with(**s)) {
        let after = &uri[scheme.len()..];
        let path = after.find('/').map_or("", |i| &after[i..]);
        let path = path.split(['?', '#']).next().unwrap_or("");
        return Ok((Source::Remote(uri.to_owned()), percent_decode(path)));
    }
    Err("unsupported uri (expected file://, http://, https://, ftp:// or an absolute path)".into())
}

/// Validates a sandbox-relative output name (no absolute paths, no `..`).
fn safe_relative(name: &str) -> Result<PathBuf, String> {
    let p = PathBuf::from(name);
    let ok = !name.is_empty() && p.components().all(|c| matches!(c, Component::Normal(_)));
    if ok {
        Ok(p)
    } else {
        Err(format!("invalid output file name {name:?}"))
    }
}

/// Fetches one item; returns a reason on failure.
async fn fetch_one(spec: &FetchSpec, sandbox: &Path) -> Result<(), String> {
    let uri = spec.uri.trim();
    let (source, uri_path) = parse_uri(uri)?;
    let name = match &spec.output_file {
        Some(n) => n.clone(),
        None => match uri_path.rsplit('/').next() {
            Some(seg) if !seg.is_empty() => seg.to_owned(),
            _ => return Err("cannot derive a file name from the uri; set output_file".into()),
        },
    };
    let dest = sandbox.join(safe_relative(&name)?);
    if let Some(dir) = dest.parent() {
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    match source {
        Source::Local(src) => {
            let meta = tokio::fs::metadata(&src)
                .await
                .map_err(|e| format!("cannot read {}: {e}", src.display()))?;
            if !meta.is_file() {
                return Err(format!("{} is not a regular file", src.display()));
            }
            tokio::fs::copy(&src, &dest)
                .await
                .map_err(|e| format!("cannot copy {} to {}: {e}", src.display(), dest.display()))?;
        }
        Source::Remote(uri) => {
            let dest_s = dest.to_string_lossy().into_owned();
            let args = ["-fsSL", "--max-time", "300", "-o", &dest_s, &uri];
            run_tool("curl", &args, None).await?;
        }
    }
    if spec.executable {
        use std::os::unix::fs::PermissionsExt;
        tokio::fs::set_permissions(&dest, std::fs::Permissions::from_mode(0o755))
            .await
            .map_err(|e| format!("cannot chmod {}: {e}", dest.display()))?;
    }
    if spec.extract {
        extract(&dest, &name, sandbox).await?;
    }
    Ok(())
}

/// Extracts an archive according to its name; files with other names are left as they are.
async fn extract(file: &Path, name: &str, sandbox: &Path) -> Result<(), String> {
    let lower = name.to_ascii_lowercase();
    let file_s = file.to_string_lossy().into_owned();
    let sandbox_s = sandbox.to_string_lossy().into_owned();
    let tar_exts = [
        ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz",
    ];
    if tar_exts.iter().any(|e| lower.ends_with(e)) {
        let args = ["--no-same-owner", "-C", &sandbox_s, "-xf", &file_s];
        run_tool("tar", &args, None).await
    } else if lower.ends_with(".zip") {
        run_tool("unzip", &["-q", "-o", &file_s, "-d", &sandbox_s], None).await
    } else if lower.ends_with(".gz") {
        let out_path = file.with_extension("");
        let out = std::fs::File::create(&out_path)
            .map_err(|e| format!("cannot create {}: {e}", out_path.display()))?;
        run_tool("gunzip", &["-c", &file_s], Some(out)).await
    } else {
        Ok(())
    }
}

/// Runs a helper tool, capturing stderr for the error message.
async fn run_tool(
    program: &str,
    args: &[&str],
    stdout: Option<std::fs::File>,
) -> Result<(), String> {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    match stdout {
        Some(f) => cmd.stdout(Stdio::from(f)),
        None => cmd.stdout(Stdio::null()),
    };
    // Not `Command::output`: tokio's version forces stdout to a pipe.
    let child = cmd.spawn().map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => format!("{program} is not installed"),
        _ => format!("cannot run {program}: {e}"),
    })?;
    let output = child
        .wait_with_output()
        .await
        .map_err(|e| format!("cannot wait for {program}: {e}"))?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stderr = stderr.trim();
    let status = match output.status.code() {
        Some(c) => format!("status {c}"),
        None => "a signal".to_owned(),
    };
    if stderr.is_empty() {
        Err(format!("{program} exited with {status}"))
    } else {
        Err(format!("{program} exited with {status}: {stderr}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_parsing_and_names() {
        let (_, p) = parse_uri("https://h.example/a/b%20c.tgz?x=1#f").expect("valid");
        assert_eq!(p, "/a/b c.tgz");
        let (s, p) = parse_uri("file:///tmp/x").expect("valid");
        assert!(matches!(s, Source::Local(ref x) if x == Path::new("/tmp/x")));
        assert_eq!(p, "/tmp/x");
        assert!(parse_uri("s3://bucket/x").is_err());
        assert!(parse_uri("file://host/x").is_err());
        assert!(safe_relative("../x").is_err());
        assert!(safe_relative("/x").is_err());
        assert!(safe_relative("a/b").is_ok());
    }
}
