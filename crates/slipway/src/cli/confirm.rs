//! Confirmation of hand-made changes to apps in environments that ask for it.
//!
//! One rule, decided by the server's policy set ([`auth::PolicySet::confirmation_for`]): an
//! app in an environment with `confirm: true` (the embedded `prod`) is scaled, rolled back
//! or deleted only after the user typed `yes` on a terminal, or passed `--yes`. Without a
//! terminal and without `--yes` nothing changes and the command exits 8
//! ([`Exit::Unconfirmed`]).

use serde_json::Value;
use std::collections::BTreeMap;

use super::client::Client;
use super::error::{Exit, coded};
use super::ids::AppId;
use super::prompt;

/// Asks before `what` (e.g. `scale /prod/web to 3 instances`) changes the app `app` (its
/// `GET /v2/apps/{id}` object) when its environment asks for confirmation; `yes` skips it.
pub(crate) async fn app_change(
    client: &Client,
    id: &AppId,
    app: &Value,
    what: &str,
    yes: bool,
) -> anyhow::Result<()> {
    if yes {
        return Ok(());
    }
    let Some(env) = environment_asking(client, id, app).await? else {
        return Ok(());
    };
    if !prompt::stdin_is_terminal() {
        return Err(coded(
            Exit::Unconfirmed,
            format!(
                "{id} is in {env}, which asks for confirmation: not a terminal, so nothing was \
                 changed; repeat with --yes to {what}"
            ),
        ));
    }
    let answer = prompt::ask(&format!(
        "{id} is in {env}, which asks for confirmation.\nType `yes` to {what}: "
    ))
    .await?;
    if answer.trim() != "yes" {
        return Err(coded(
            Exit::Unconfirmed,
            "not confirmed; nothing was changed",
        ));
    }
    Ok(())
}

/// The name of the environment of the app that asks for confirmation, if any.
async fn environment_asking(
    client: &Client,
    id: &AppId,
    app: &Value,
) -> anyhow::Result<Option<String>> {
    let policies: auth::PolicySet = serde_json::from_value(
        client
            .get("/api/v1/policies", &[])
            .await
            .map_err(|e| e.context("cannot read the environment policies"))?,
    )
    .map_err(|e| {
        coded(
            Exit::Server,
            format!("unreadable policies from the server: {e}"),
        )
    })?;
    let labels: BTreeMap<String, String> = app
        .get("labels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                .collect()
        })
        .unwrap_or_default();
    let path = model::PathId::parse(id.display());
    Ok(policies
        .confirmation_for(&path, &labels)
        .map(|p| p.name.clone()))
}
