//! `slipway secrets ...` (`/api/v1/secrets`) and `slipway policies ...` (`/api/v1/policies`).
//!
//! Secret values are only ever sent: they come from a file or standard input, never from
//! the command line, and the server never returns them.

use anyhow::Context;
use clap::Subcommand;
use reqwest::Method;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

use super::client::{Client, array_field};
use super::deploy::read_input;
use super::error::{Exit, coded};
use super::ids::segment;
use super::out::{self, or_dash, str_of};
use super::table::Table;
use super::{Output, prompt};

/// `slipway secrets` subcommands.
#[derive(Subcommand, Debug)]
pub(crate) enum SecretsCommand {
    /// List secret names and when they changed (values are never shown).
    List,
    /// Create or replace a secret.
    ///
    /// The value comes from --from-file (exact bytes, UTF-8), or from standard input: typed
    /// without echo at a terminal, else read to the end with one trailing newline dropped.
    /// Values are never taken as arguments: they would end up in shell history and `ps`.
    Set {
        /// Secret name: 1-64 letters, digits, `.`, `_`, `-` or `@`.
        name: String,
        /// Read the value from this file.
        #[arg(long, value_name = "PATH", conflicts_with = "value_stdin")]
        from_file: Option<PathBuf>,
        /// Read the value from standard input (the default).
        #[arg(long)]
        value_stdin: bool,
    },
    /// Delete a secret.
    Delete {
        /// Secret name.
        name: String,
    },
}

/// `slipway policies` subcommands.
#[derive(Subcommand, Debug)]
pub(crate) enum PoliciesCommand {
    /// Print the environment policy set as JSON.
    Show,
    /// Replace the whole policy set with the JSON in a file (admins only).
    ///
    /// Edit the output of `slipway policies show`. The server validates the set and
    /// rejects it as a whole (exit code 4) when it is invalid.
    Set {
        /// Policy set (JSON); `-` reads standard input.
        #[arg(short, long, value_name = "FILE")]
        file: PathBuf,
    },
}

/// Runs one `secrets` subcommand.
pub(crate) async fn run(
    client: &Client,
    output: Output,
    cmd: SecretsCommand,
) -> anyhow::Result<Exit> {
    let (name, action) = match cmd {
        SecretsCommand::List => return list(client, output).await,
        SecretsCommand::Set {
            name, from_file, ..
        } => {
            let value = secret_value(&name, from_file.as_deref()).await?;
            let rb = client
                .request(Method::PUT, &secret_path(&name))
                .json(&json!({ "value": value }));
            client
                .send(rb)
                .await
                .with_context(|| format!("cannot set secret {name}"))?;
            (name, "set")
        }
        SecretsCommand::Delete { name } => {
            let rb = client.request(Method::DELETE, &secret_path(&name));
            client
                .send(rb)
                .await
                .with_context(|| format!("cannot delete secret {name}"))?;
            (name, "deleted")
        }
    };
    match output {
        Output::Json => out::json(&json!({ "name": name, "action": action }))?,
        Output::Text => out::line(&format!("secret {name} {action}"))?,
    }
    Ok(Exit::Success)
}

/// `secrets list`.
async fn list(client: &Client, output: Output) -> anyhow::Result<Exit> {
    let v = client
        .get("/api/v1/secrets", &[])
        .await
        .context("cannot list secrets")?;
    let secrets = array_field(v, "secrets");
    match output {
        Output::Json => out::json(&Value::Array(secrets))?,
        Output::Text => out::write_stdout(secrets_table(&secrets).render().as_bytes())?,
    }
    Ok(Exit::Success)
}

/// The `secrets list` table.
pub(crate) fn secrets_table(secrets: &[Value]) -> Table {
    let mut t = Table::new(&["NAME", "UPDATED", "UPDATED BY", "CREATED"]);
    for s in secrets {
        t.row(vec![
            str_of(s, "name").to_string(),
            or_dash(str_of(s, "updatedAt")),
            or_dash(str_of(s, "updatedBy")),
            or_dash(str_of(s, "createdAt")),
        ]);
    }
    t
}

fn secret_path(name: &str) -> String {
    format!("/api/v1/secrets/{}", segment(name))
}

/// The value from `file` (exact bytes; `-` is standard input), else from standard input:
/// typed without echo at a terminal, otherwise read to the end minus one newline.
async fn secret_value(name: &str, file: Option<&Path>) -> anyhow::Result<String> {
    let Some(file) = file else {
        if prompt::stdin_is_terminal() {
            prompt::restore_echo_on_interrupt();
            return prompt::ask_hidden(&format!("Value of secret {name}: "), "secret value").await;
        }
        return prompt::read_stdin("secret value").await;
    };
    let bytes = read_input(file).await.map_err(|e| {
        coded(
            Exit::Invalid,
            format!("cannot read {}: {e}", file.display()),
        )
    })?;
    file_value(bytes, file)
}

/// A secret file's contents as the value: UTF-8 and not empty.
fn file_value(bytes: Vec<u8>, file: &Path) -> anyhow::Result<String> {
    let value = String::from_utf8(bytes).map_err(|_| {
        coded(
            Exit::Invalid,
            format!("{} is not valid UTF-8", file.display()),
        )
    })?;
    if value.is_empty() {
        return Err(coded(Exit::Invalid, format!("{} is empty", file.display())));
    }
    Ok(value)
}

/// Runs one `policies` subcommand.
pub(crate) async fn policies(
    client: &Client,
    output: Output,
    cmd: PoliciesCommand,
) -> anyhow::Result<Exit> {
    match cmd {
        PoliciesCommand::Show => {
            let v = client
                .get("/api/v1/policies", &[])
                .await
                .context("cannot read the policies")?;
            out::json(&v)?;
        }
        PoliciesCommand::Set { file } => {
            let body = policy_file(&file).await?;
            let rb = client.request(Method::PUT, "/api/v1/policies").json(&body);
            let v = client
                .json(rb)
                .await
                .context("cannot replace the policies")?;
            match output {
                Output::Json => out::json(&v)?,
                Output::Text => out::line("policies replaced")?,
            }
        }
    }
    Ok(Exit::Success)
}

/// The policy set in `file` as JSON (exit code 4 when unreadable or not a JSON object).
async fn policy_file(file: &Path) -> anyhow::Result<Value> {
    let bytes = read_input(file).await.map_err(|e| {
        coded(
            Exit::Invalid,
            format!("cannot read {}: {e}", file.display()),
        )
    })?;
    parse_policies(&bytes, file)
}

fn parse_policies(bytes: &[u8], file: &Path) -> anyhow::Result<Value> {
    let v: Value = serde_json::from_slice(bytes).map_err(|e| {
        coded(
            Exit::Invalid,
            format!("invalid JSON in {}: {e}", file.display()),
        )
    })?;
    if !v.is_object() {
        return Err(coded(
            Exit::Invalid,
            format!(
                "{} must hold a JSON object (see `slipway policies show`)",
                file.display()
            ),
        ));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::error::exit_code;

    #[test]
    fn table_of_secrets() {
        let secrets = [
            json!({"name": "db-password", "createdAt": "2026-01-01T00:00:00.000Z",
                              "updatedAt": "2026-02-01T00:00:00.000Z", "updatedBy": "admin"}),
        ];
        assert_eq!(
            secrets_table(&secrets).render(),
            "NAME         UPDATED                   UPDATED BY  CREATED\n\
             db-password  2026-02-01T00:00:00.000Z  admin       2026-01-01T00:00:00.000Z\n"
        );
    }

    #[test]
    fn names_are_encoded_in_paths() {
        assert_eq!(secret_path("db.pw"), "/api/v1/secrets/db.pw");
        assert_eq!(secret_path("a/b"), "/api/v1/secrets/a%2Fb");
    }

    #[test]
    fn file_values_are_exact_utf8() {
        let f = Path::new("v.txt");
        assert_eq!(
            file_value(b"s3cret\n".to_vec(), f).ok().as_deref(),
            Some("s3cret\n")
        );
        let invalid = |r: anyhow::Result<String>| r.err().map(|e| exit_code(&e));
        assert_eq!(invalid(file_value(vec![0xff], f)), Some(Exit::Invalid));
        assert_eq!(invalid(file_value(Vec::new(), f)), Some(Exit::Invalid));
    }

    #[test]
    fn policy_files_must_be_json_objects() {
        let f = Path::new("p.json");
        assert!(parse_policies(br#"{"environments": []}"#, f).is_ok());
        for bad in [&b"{"[..], b"[]", b""] {
            let code = parse_policies(bad, f).err().map(|e| exit_code(&e));
            assert_eq!(code, Some(Exit::Invalid));
        }
    }
}
