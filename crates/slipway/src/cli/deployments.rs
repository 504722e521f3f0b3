//! `deployments list` and `deployments cancel`.

use anyhow::Context;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::Output;
use super::client::Client;
use super::error::Exit;
use super::follow::step;
use super::ids::segment;
use super::out::{self, arr_of, or_dash, str_of};
use super::table::Table;

/// `deployments list`: GET /v2/deployments.
pub(crate) async fn list(client: &Client, output: Output) -> anyhow::Result<Exit> {
    let v = client
        .get("/v2/deployments", &[])
        .await
        .context("cannot list deployments")?;
    let list = match v {
        Value::Array(a) => a,
        _ => Vec::new(),
    };
    match output {
        Output::Json => out::json(&Value::Array(list))?,
        Output::Text => out::write_stdout(deployments_table(&list).render().as_bytes())?,
    }
    Ok(Exit::Success)
}

/// The `deployments list` table.
pub(crate) fn deployments_table(list: &[Value]) -> Table {
    let mut t = Table::new(&["ID", "APPS", "ACTIONS", "STEP", "VERSION"]);
    for d in list {
        let apps: Vec<&str> = arr_of(d, "affectedApps")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        let actions: Vec<String> = arr_of(d, "currentActions")
            .iter()
            .map(|a| {
                format!("{} {}", str_of(a, "action"), str_of(a, "app"))
                    .trim()
                    .to_string()
            })
            .collect();
        let step = match step(d) {
            Some((current, total)) => format!("{current}/{total}"),
            None => "-".to_string(),
        };
        t.row(vec![
            str_of(d, "id").to_string(),
            or_dash(&apps.join(",")),
            or_dash(&actions.join(", ")),
            step,
            or_dash(str_of(d, "version")),
        ]);
    }
    t
}

/// `deployments cancel`: DELETE /v2/deployments/{id}[?force=true].
pub(crate) async fn cancel(
    client: &Client,
    output: Output,
    id: &str,
    force: bool,
) -> anyhow::Result<Exit> {
    let mut rb = client.request(Method::DELETE, &format!("/v2/deployments/{}", segment(id)));
    if force {
        rb = rb.query(&[("force", "true")]);
    }
    let resp = client
        .send(rb)
        .await
        .with_context(|| format!("cannot cancel deployment {id}"))?;
    let status = resp.status();
    let body: Value = resp
        .bytes()
        .await
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(Value::Null);
    let rollback = body.get("deploymentId").and_then(Value::as_str);
    match output {
        Output::Json => out::json(&if body.is_null() {
            json!({})
        } else {
            body.clone()
        })?,
        Output::Text => out::line(&cancel_text(id, status, rollback, str_of(&body, "version")))?,
    }
    Ok(Exit::Success)
}

/// The result line of `deployments cancel`.
fn cancel_text(id: &str, status: StatusCode, rollback: Option<&str>, version: &str) -> String {
    match rollback {
        Some(r) if !version.is_empty() => {
            format!(
                "deployment {id} cancelled; rollback deployment {r} started (version {version})"
            )
        }
        Some(r) => format!("deployment {id} cancelled; rollback deployment {r} started"),
        None if status == StatusCode::ACCEPTED => {
            format!("deployment {id} cancelled without rollback")
        }
        None => format!("deployment {id} cancelled"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_of_deployments() {
        let list = [json!({
            "id": "d1", "version": "v", "affectedApps": ["/a", "/b"],
            "currentActions": [{"action": "ScaleApplication", "app": "/a"},
                               {"action": "RestartApplication", "app": "/b"}],
            "currentStep": 1, "totalSteps": 2
        })];
        assert_eq!(
            deployments_table(&list).render(),
            "ID  APPS   ACTIONS                                     STEP  VERSION\n\
             d1  /a,/b  ScaleApplication /a, RestartApplication /b  1/2   v\n"
        );
        let empty = deployments_table(&[json!({"id": "d"})]).render();
        assert_eq!(empty.lines().nth(1), Some("d   -     -        -     -"));
    }

    #[test]
    fn cancel_lines() {
        assert_eq!(
            cancel_text("d1", StatusCode::OK, Some("d2"), "v2"),
            "deployment d1 cancelled; rollback deployment d2 started (version v2)"
        );
        assert_eq!(
            cancel_text("d1", StatusCode::ACCEPTED, None, ""),
            "deployment d1 cancelled without rollback"
        );
    }
}
