//! `slipway users ...`: list, create, change and delete users (`/api/v1/users`).

use anyhow::Context;
use reqwest::Method;
use serde_json::{Value, json};

use super::admin::UsersCommand;
use super::client::{Client, array_field};
use super::error::{Exit, coded};
use super::ids::segment;
use super::out::{self, or_dash, str_of};
use super::table::Table;
use super::{Output, prompt};

/// Runs one `users` subcommand.
pub(crate) async fn run(
    client: &Client,
    output: Output,
    cmd: UsersCommand,
) -> anyhow::Result<Exit> {
    match cmd {
        UsersCommand::List => list(client, output).await,
        UsersCommand::Add {
            name,
            role,
            password_stdin,
        } => {
            let mut body = json!({"name": name, "role": role.as_str()});
            if password_stdin {
                body["password"] = json!(prompt::read_stdin("password").await?);
            }
            let rb = client.request(Method::POST, "/api/v1/users").json(&body);
            let v = client
                .json(rb)
                .await
                .with_context(|| format!("cannot create user {name}"))?;
            if !password_stdin {
                eprintln!(
                    "note: {name} has no password; give it one with `slipway users passwd {name}` \
                     or a token with `slipway tokens create --user {name}`"
                );
            }
            report(output, &v, &format!("user {name} created with role {role}"))
        }
        UsersCommand::SetRole { name, role } => {
            let text = format!("user {name} now has role {role}");
            update(client, output, &name, json!({"role": role.as_str()}), &text).await
        }
        UsersCommand::Passwd {
            name,
            password_stdin,
        } => {
            let password = if password_stdin {
                prompt::read_stdin("password").await?
            } else {
                prompt::restore_echo_on_interrupt();
                ask_new_password(&name).await?
            };
            let text = format!("password of {name} changed");
            update(client, output, &name, json!({"password": password}), &text).await
        }
        UsersCommand::Disable { name } => {
            let text = format!("user {name} disabled");
            update(client, output, &name, json!({"disabled": true}), &text).await
        }
        UsersCommand::Enable { name } => {
            let text = format!("user {name} enabled");
            update(client, output, &name, json!({"disabled": false}), &text).await
        }
        UsersCommand::Delete { name } => {
            let rb = client.request(Method::DELETE, &format!("/api/v1/users/{}", segment(&name)));
            client
                .send(rb)
                .await
                .with_context(|| format!("cannot delete user {name}"))?;
            let v = json!({"name": name, "deleted": true});
            report(
                output,
                &v,
                &format!("user {name} deleted; its tokens are revoked"),
            )
        }
    }
}

/// `users list`.
async fn list(client: &Client, output: Output) -> anyhow::Result<Exit> {
    let v = client
        .get("/api/v1/users", &[])
        .await
        .context("cannot list users")?;
    let users = array_field(v, "users");
    match output {
        Output::Json => out::json(&Value::Array(users))?,
        Output::Text => out::write_stdout(users_table(&users).render().as_bytes())?,
    }
    Ok(Exit::Success)
}

/// The `users list` table.
pub(crate) fn users_table(users: &[Value]) -> Table {
    let mut t = Table::new(&["NAME", "ROLE", "STATE", "PASSWORD", "CREATED"]);
    for u in users {
        let flag = |key: &str| u.get(key).and_then(Value::as_bool).unwrap_or(false);
        t.row(vec![
            str_of(u, "name").to_string(),
            or_dash(str_of(u, "role")),
            if flag("disabled") {
                "disabled"
            } else {
                "active"
            }
            .to_string(),
            if flag("hasPassword") { "yes" } else { "no" }.to_string(),
            or_dash(str_of(u, "createdAt")),
        ]);
    }
    t
}

/// `PUT /api/v1/users/{name}` with `body`, then the result.
async fn update(
    client: &Client,
    output: Output,
    name: &str,
    body: Value,
    text: &str,
) -> anyhow::Result<Exit> {
    let rb = client
        .request(Method::PUT, &format!("/api/v1/users/{}", segment(name)))
        .json(&body);
    let v = client
        .json(rb)
        .await
        .with_context(|| format!("cannot change user {name}"))?;
    report(output, &v, text)
}

/// Prints the server's user object (JSON) or `text`.
fn report(output: Output, v: &Value, text: &str) -> anyhow::Result<Exit> {
    match output {
        Output::Json => out::json(v)?,
        Output::Text => out::line(text)?,
    }
    Ok(Exit::Success)
}

/// Asks for a new password twice, without echo.
async fn ask_new_password(name: &str) -> anyhow::Result<String> {
    let first = prompt::ask_hidden(&format!("New password for {name}: "), "password").await?;
    let second = prompt::ask_hidden("Repeat it: ", "password").await?;
    if first != second {
        return Err(coded(Exit::Invalid, "the passwords do not match"));
    }
    Ok(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_of_users() {
        let users = [
            json!({"name": "admin", "role": "admin", "createdAt": "2026-01-01T00:00:00.000Z",
                   "disabled": false, "hasPassword": true}),
            json!({"name": "ci-bot", "role": "deployer", "disabled": true, "hasPassword": false}),
            json!({"name": "odd", "role": 7}),
        ];
        assert_eq!(
            users_table(&users).render(),
            "NAME    ROLE      STATE     PASSWORD  CREATED\n\
             admin   admin     active    yes       2026-01-01T00:00:00.000Z\n\
             ci-bot  deployer  disabled  no        -\n\
             odd     -         active    no        -\n"
        );
    }

    #[test]
    fn empty_list_is_just_the_header() {
        assert_eq!(
            users_table(&[]).render(),
            "NAME  ROLE  STATE  PASSWORD  CREATED\n"
        );
    }
}
