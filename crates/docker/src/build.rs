//! Building an image from a context directory through the Engine API (`POST /build` with
//! a tar of the context) and pushing it to its registry; the pushed digest is the result.

use crate::client::{Failure, failure};
use crate::{Docker, DockerError, RegistryAuth};
use bollard::auth::DockerCredentials;
use bollard::query_parameters::{
    BuildImageOptionsBuilder, PushImageOptionsBuilder, TagImageOptionsBuilder,
};
use futures_util::StreamExt;
use std::io;
use std::path::Path;

/// What a build and push produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    /// The reference pushed, `registry/repo:tag`.
    pub reference: String,
    /// The registry's manifest digest, `sha256:…`.
    pub digest: String,
    /// The local image id.
    pub image_id: String,
}

/// Splits `registry/repo:tag` into (`registry/repo`, `tag`), `latest` when there is none
/// (parsed by [`crate::ImageRef`], the one image-reference parser).
pub fn split_reference(reference: &str) -> (String, String) {
    match crate::ImageRef::parse(reference) {
        Ok(r) => (r.name(), r.tag.unwrap_or_else(|| "latest".to_string())),
        Err(_) => (reference.to_string(), "latest".to_string()),
    }
}

/// A ustar archive of `dir` (regular files and directories; `.git` is left out, and so
/// are symbolic links). Each file must turn out to lie inside `dir` once open, so a context that changes while it is read (a pipeline
/// step still running) cannot make the server archive a file from elsewhere.
pub fn tar_context(dir: &Path) -> io::Result<Vec<u8>> {
    let root = dir.canonicalize()?;
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let mut entries: Vec<_> = std::fs::read_dir(&d)?.collect::<Result<_, _>>()?;
        entries.sort_by_key(std::fs::DirEntry::file_name);
        for e in entries {
            let path = e.path();
            let rel = path
                .strip_prefix(dir)
                .map_err(io::Error::other)?
                .to_string_lossy()
                .replace('\\', "/");
            if rel == ".git" || rel.starts_with(".git/") {
                continue;
            }
            let meta = std::fs::symlink_metadata(&path)?;
            if meta.is_dir() {
                header(&mut out, &format!("{rel}/"), 0o755, 0, b'5')?;
                stack.push(path);
            } else if meta.is_file() {
                use std::os::unix::fs::PermissionsExt;
                let data = read_inside(&path, &root)?;
                header(
                    &mut out,
                    &rel,
                    meta.permissions().mode() & 0o7777,
                    data.len() as u64,
                    b'0',
                )?;
                out.extend_from_slice(&data);
                out.resize(out.len().div_ceil(512) * 512, 0);
            }
        }
    }
    out.resize(out.len() + 1024, 0);
    Ok(out)
}

/// The contents of `path` when the file actually opened lies inside `root`.
fn read_inside(path: &Path, root: &Path) -> io::Result<Vec<u8>> {
    use std::io::Read;
    use std::os::fd::AsRawFd;
    let mut file = std::fs::File::open(path)?;
    let real = std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd()))?;
    if !real.starts_with(root) || !file.metadata()?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("{} is not a file inside the build context", path.display()),
        ));
    }
    let mut data = Vec::new();
    file.read_to_end(&mut data)?;
    Ok(data)
}

fn header(out: &mut Vec<u8>, name: &str, mode: u32, size: u64, kind: u8) -> io::Result<()> {
    let mut h = [0u8; 512];
    let (prefix, name) = if name.len() <= 100 {
        ("", name)
    } else {
        let cut = name[..name.len().min(156)]
            .rfind('/')
            .filter(|i| name.len() - i - 1 <= 100)
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("path too long for the build context: {name}"),
                )
            })?;
        (&name[..cut], &name[cut + 1..])
    };
    h[..name.len()].copy_from_slice(name.as_bytes());
    let octal = |buf: &mut [u8], v: u64| {
        let s = format!("{v:0width$o}\0", width = buf.len() - 1);
        buf.copy_from_slice(s.as_bytes());
    };
    octal(&mut h[100..108], u64::from(mode));
    octal(&mut h[108..116], 0);
    octal(&mut h[116..124], 0);
    octal(&mut h[124..136], size);
    octal(&mut h[136..148], 0);
    h[148..156].copy_from_slice(b"        ");
    h[156] = kind;
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[345..345 + prefix.len()].copy_from_slice(prefix.as_bytes());
    let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
    let s = format!("{sum:06o}\0 ");
    h[148..156].copy_from_slice(s.as_bytes());
    out.extend_from_slice(&h);
    Ok(())
}

fn api_error(e: bollard::errors::Error) -> DockerError {
    match failure(e) {
        Failure::Unreachable(m) => DockerError::Unreachable(m),
        Failure::NotFound(m) | Failure::Conflict(m) | Failure::Other(m) => DockerError::Api(m),
    }
}

impl Docker {
    /// Builds `context` (with `dockerfile`, relative to it) as `reference`, tags it with
    /// `extra_tags` too, and pushes every tag; `log` gets the build's and push's output.
    pub async fn build_and_push(
        &self,
        context: &Path,
        dockerfile: &str,
        reference: &str,
        extra_tags: &[String],
        auth: Option<&RegistryAuth>,
        log: &(dyn Fn(String) + Send + Sync),
    ) -> Result<Pushed, DockerError> {
        let tar = tar_context(context)
            .map_err(|e| DockerError::Api(format!("cannot pack the build context: {e}")))?;
        let opts = BuildImageOptionsBuilder::default()
            .dockerfile(dockerfile)
            .t(reference)
            .rm(true)
            .forcerm(true)
            .build();
        let mut image_id = String::new();
        let mut build = self
            .api
            .build_image(opts, None, Some(bollard::body_full(tar.into())));
        while let Some(item) = build.next().await {
            let info = item.map_err(api_error)?;
            if let Some(detail) = info.error_detail {
                return Err(DockerError::Api(format!(
                    "build failed: {}",
                    detail.message.unwrap_or_default()
                )));
            }
            if let Some(text) = info.stream {
                for line in text.lines().filter(|l| !l.trim().is_empty()) {
                    log(line.to_string());
                }
            }
            if let Some(id) = info.aux.and_then(|a| a.id) {
                image_id = id;
            }
        }
        let (repo, tag) = split_reference(reference);
        let mut tags = vec![tag.clone()];
        for extra in extra_tags {
            let (extra_repo, extra_tag) = split_reference(extra);
            let opts = TagImageOptionsBuilder::default()
                .repo(&extra_repo)
                .tag(&extra_tag)
                .build();
            self.api
                .tag_image(reference, Some(opts))
                .await
                .map_err(api_error)?;
            if extra_repo == repo {
                tags.push(extra_tag);
            }
        }
        let credentials = auth.map(|a| DockerCredentials {
            username: Some(a.username.clone()),
            password: Some(a.password.clone()),
            serveraddress: Some(a.server_address.clone()),
            ..Default::default()
        });
        let mut digest = String::new();
        for t in &tags {
            let opts = PushImageOptionsBuilder::default().tag(t).build();
            let mut push = self.api.push_image(&repo, Some(opts), credentials.clone());
            while let Some(item) = push.next().await {
                let info = item.map_err(api_error)?;
                if let Some(detail) = info.error_detail {
                    return Err(DockerError::Api(format!(
                        "push of {repo}:{t} failed: {}",
                        detail.message.unwrap_or_default()
                    )));
                }
                if let Some(status) = info.status {
                    // "<tag>: digest: sha256:… size: 527"
                    if let Some(d) = status
                        .split_whitespace()
                        .skip_while(|w| *w != "digest:")
                        .nth(1)
                    {
                        if t == &tag {
                            digest = d.to_string();
                        }
                        log(format!("pushed {repo}:{t} {d}"));
                    }
                }
            }
        }
        if digest.is_empty() {
            return Err(DockerError::Api(format!(
                "the registry reported no digest for {reference}"
            )));
        }
        Ok(Pushed {
            reference: reference.to_string(),
            digest,
            image_id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_split_at_the_tag_not_the_port() {
        assert_eq!(
            split_reference("127.0.0.1:5000/app:v1"),
            ("127.0.0.1:5000/app".into(), "v1".into())
        );
        assert_eq!(
            split_reference("127.0.0.1:5000/app"),
            ("127.0.0.1:5000/app".into(), "latest".into())
        );
        assert_eq!(split_reference("app"), ("app".into(), "latest".into()));
    }

    #[test]
    fn the_context_tar_has_files_dirs_and_valid_checksums() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("Dockerfile"), "FROM scratch\n").unwrap();
        std::fs::create_dir_all(dir.path().join("bin/.git")).unwrap();
        std::fs::create_dir_all(dir.path().join(".git")).unwrap();
        std::fs::write(dir.path().join(".git/HEAD"), "x").unwrap();
        std::fs::write(dir.path().join("bin/tool"), vec![7u8; 600]).unwrap();
        let tar = tar_context(dir.path()).unwrap();
        assert_eq!(tar.len() % 512, 0);
        let mut names = Vec::new();
        let mut at = 0;
        while at + 512 <= tar.len() && tar[at] != 0 {
            let h = &tar[at..at + 512];
            let name = String::from_utf8_lossy(&h[..100])
                .trim_end_matches('\0')
                .to_string();
            let size =
                u64::from_str_radix(String::from_utf8_lossy(&h[124..135]).trim(), 8).unwrap();
            let stored =
                u32::from_str_radix(String::from_utf8_lossy(&h[148..154]).trim(), 8).unwrap();
            let sum: u32 = h
                .iter()
                .enumerate()
                .map(|(i, b)| {
                    if (148..156).contains(&i) {
                        32
                    } else {
                        u32::from(*b)
                    }
                })
                .sum();
            assert_eq!(stored, sum, "checksum of {name}");
            names.push((name, size));
            at += 512 + (size as usize).div_ceil(512) * 512;
        }
        assert_eq!(
            names,
            [
                ("Dockerfile".into(), 13),
                ("bin/".into(), 0),
                ("bin/.git/".into(), 0),
                ("bin/tool".into(), 600)
            ]
        );
    }
}
