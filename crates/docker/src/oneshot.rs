//! One-shot containers for pipeline steps with `image:`: a command in an image, with the
//! run's workspace mounted at `/workspace` and host networking (so tests reach services
//! on the host's loopback, like the seed's `docker run -v $PWD:/code …`), output streamed
//! line by line, then removed.

use crate::client::{Failure, failure};
use crate::{Docker, DockerError, Exit};
use bollard::container::LogOutput;
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{CreateContainerOptionsBuilder, CreateImageOptions, LogsOptions};
use futures_util::StreamExt;
use std::collections::HashMap;
use std::path::Path;

/// Where a step container mounts the workspace.
pub const WORKSPACE_MOUNT: &str = "/workspace";

/// Words of a command, or `None` when it needs a shell (quotes, pipes, variables, …):
/// images without a shell (`FROM scratch`) can still run simple commands.
pub fn plain_words(command: &str) -> Option<Vec<String>> {
    let special = |c: char| "\"'`$|&;<>()*?[]{}~\\#=\n".contains(c);
    (!command.chars().any(special))
        .then(|| command.split_whitespace().map(str::to_string).collect())
}

impl Docker {
    /// Creates and starts a container of `image` running `command` (directly when it is
    /// plain words, else with `/bin/sh -c`); returns its id. The image is pulled when it
    /// is not present. With `user` (uid, gid) it runs as that, without capabilities and
    /// unable to gain privileges (setuid binaries do nothing).
    pub async fn start_oneshot(
        &self,
        image: &str,
        command: &str,
        env: &[(String, String)],
        workspace: &Path,
        name: &str,
        user: Option<(u32, u32)>,
    ) -> Result<String, DockerError> {
        if self.api.inspect_image(image).await.is_err() {
            let opts = CreateImageOptions {
                from_image: Some(crate::launch::pull_reference(image)),
                ..Default::default()
            };
            let mut pull = self.api.create_image(Some(opts), None, None);
            while let Some(item) = pull.next().await {
                if let Err(e) = item {
                    return Err(DockerError::Pull {
                        image: image.to_string(),
                        reason: match failure(e) {
                            Failure::Unreachable(m)
                            | Failure::NotFound(m)
                            | Failure::Conflict(m)
                            | Failure::Other(m) => m,
                        },
                    });
                }
            }
        }
        let cmd = plain_words(command)
            .filter(|w| !w.is_empty())
            .unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into(), command.to_string()]);
        let body = ContainerCreateBody {
            image: Some(image.to_string()),
            entrypoint: Some(vec![]),
            cmd: Some(cmd),
            env: Some(env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
            working_dir: Some(WORKSPACE_MOUNT.into()),
            user: user.map(|(uid, gid)| format!("{uid}:{gid}")),
            // Not the task label: the engine's adoption never mistakes a step for a task.
            labels: Some(HashMap::from([(
                "slipway.step".to_string(),
                name.to_string(),
            )])),
            host_config: Some(HostConfig {
                binds: Some(vec![format!(
                    "{}:{WORKSPACE_MOUNT}:rw",
                    workspace.display()
                )]),
                network_mode: Some("host".into()),
                cap_drop: user.map(|_| vec!["ALL".to_string()]),
                security_opt: user.map(|_| vec!["no-new-privileges".to_string()]),
                ..Default::default()
            }),
            ..Default::default()
        };
        let opts = CreateContainerOptionsBuilder::default().name(name).build();
        let created =
            self.api
                .create_container(Some(opts), body)
                .await
                .map_err(|e| match failure(e) {
                    Failure::Unreachable(m) => DockerError::Unreachable(m),
                    Failure::NotFound(m) | Failure::Conflict(m) | Failure::Other(m) => {
                        DockerError::Create(m)
                    }
                })?;
        if let Err(e) = self
            .api
            .start_container(
                &created.id,
                None::<bollard::query_parameters::StartContainerOptions>,
            )
            .await
        {
            let _ = self.remove(&created.id).await;
            return Err(DockerError::Start(match failure(e) {
                Failure::Unreachable(m)
                | Failure::NotFound(m)
                | Failure::Conflict(m)
                | Failure::Other(m) => m,
            }));
        }
        Ok(created.id)
    }

    /// Streams a container's output to `log` (`true` for stderr) until it exits, then
    /// returns how it exited.
    pub async fn output_until_exit(
        &self,
        id: &str,
        log: &(dyn Fn(bool, String) + Send + Sync),
    ) -> Result<Exit, DockerError> {
        let opts = LogsOptions {
            follow: true,
            stdout: true,
            stderr: true,
            ..Default::default()
        };
        let mut stream = self.api.logs(id, Some(opts));
        let (mut out, mut err) = (String::new(), String::new());
        while let Some(item) = stream.next().await {
            let Ok(frame) = item else { break };
            let (buf, is_err, bytes) = match frame {
                LogOutput::StdOut { message } | LogOutput::Console { message } => {
                    (&mut out, false, message)
                }
                LogOutput::StdErr { message } => (&mut err, true, message),
                LogOutput::StdIn { .. } => continue,
            };
            buf.push_str(&String::from_utf8_lossy(&bytes));
            while let Some(nl) = buf.find('\n') {
                let line: String = buf.drain(..=nl).collect();
                log(is_err, line.trim_end_matches('\n').to_string());
            }
        }
        for (buf, is_err) in [(out, false), (err, true)] {
            if !buf.is_empty() {
                log(is_err, buf);
            }
        }
        self.wait(id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_commands_skip_the_shell() {
        assert_eq!(
            plain_words("/testsrv --check http://127.0.0.1:80/health"),
            Some(vec![
                "/testsrv".into(),
                "--check".into(),
                "http://127.0.0.1:80/health".into()
            ])
        );
        assert_eq!(plain_words("echo $HOME"), None);
        assert_eq!(plain_words("make && make test"), None);
        assert_eq!(
            plain_words("nosetests -s -v -c conf/run/api_test.cfg"),
            Some(vec![
                "nosetests".into(),
                "-s".into(),
                "-v".into(),
                "-c".into(),
                "conf/run/api_test.cfg".into()
            ])
        );
    }
}
