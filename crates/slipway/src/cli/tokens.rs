//! `slipway tokens ...`: list, create and revoke API tokens (`/api/v1/tokens`).

use anyhow::Context;
use model::Timestamp;
use reqwest::Method;
use serde_json::{Map, Value, json};

use super::Output;
use super::admin::TokensCommand;
use super::client::{Client, array_field};
use super::error::{Exit, coded};
use super::ids::segment;
use super::out::{self, or_dash, str_of};
use super::table::Table;

/// Runs one `tokens` subcommand.
pub(crate) async fn run(
    client: &Client,
    output: Output,
    cmd: TokensCommand,
) -> anyhow::Result<Exit> {
    match cmd {
        TokensCommand::List { all } => list(client, output, all).await,
        TokensCommand::Create {
            name,
            expires_in_days,
            user,
        } => create(client, output, create_body(name, expires_in_days, user)).await,
        TokensCommand::Revoke { id } => {
            let rb = client.request(Method::DELETE, &format!("/api/v1/tokens/{}", segment(&id)));
            client
                .send(rb)
                .await
                .with_context(|| format!("cannot revoke token {id}"))?;
            match output {
                Output::Json => out::json(&json!({"id": id, "revoked": true}))?,
                Output::Text => out::line(&format!("token {id} revoked"))?,
            }
            Ok(Exit::Success)
        }
    }
}

/// `tokens list [--all]`.
async fn list(client: &Client, output: Output, all: bool) -> anyhow::Result<Exit> {
    let query: &[(&str, &str)] = if all { &[("all", "true")] } else { &[] };
    let v = client
        .get("/api/v1/tokens", query)
        .await
        .context("cannot list tokens")?;
    let tokens = array_field(v, "tokens");
    match output {
        Output::Json => out::json(&Value::Array(tokens))?,
        Output::Text => {
            let table = tokens_table(&tokens, Timestamp::now());
            out::write_stdout(table.render().as_bytes())?
        }
    }
    Ok(Exit::Success)
}

/// The body of `POST /api/v1/tokens`: only the fields that were given.
fn create_body(name: Option<String>, days: Option<f64>, user: Option<String>) -> Value {
    let mut body = Map::new();
    if let Some(n) = name {
        body.insert("name".into(), json!(n));
    }
    if let Some(d) = days {
        body.insert("expiresInDays".into(), json!(d));
    }
    if let Some(u) = user {
        body.insert("user".into(), json!(u));
    }
    Value::Object(body)
}

/// `tokens create`: the token alone on stdout (JSON: the whole answer), a warning on stderr.
async fn create(client: &Client, output: Output, body: Value) -> anyhow::Result<Exit> {
    let rb = client.request(Method::POST, "/api/v1/tokens").json(&body);
    let v = client.json(rb).await.context("cannot create a token")?;
    let token = str_of(&v, "token");
    if token.is_empty() {
        return Err(coded(Exit::Server, "the server created no token"));
    }
    match output {
        Output::Json => out::json(&v)?,
        Output::Text => out::line(token)?,
    }
    eprintln!(
        "warning: token {} for {} (expires {}) will not be shown again: store it now",
        or_dash(str_of(&v, "id")),
        or_dash(str_of(&v, "user")),
        or_dash(str_of(&v, "expiresAt")),
    );
    Ok(Exit::Success)
}

/// The `tokens list` table; `now` decides which tokens have expired.
pub(crate) fn tokens_table(tokens: &[Value], now: Timestamp) -> Table {
    let mut t = Table::new(&[
        "ID",
        "USER",
        "NAME",
        "STATE",
        "CREATED",
        "EXPIRES",
        "LAST USED",
    ]);
    for tok in tokens {
        t.row(vec![
            str_of(tok, "id").to_string(),
            or_dash(str_of(tok, "user")),
            or_dash(str_of(tok, "name")),
            token_state(tok, now).to_string(),
            or_dash(str_of(tok, "createdAt")),
            or_dash(str_of(tok, "expiresAt")),
            or_dash(str_of(tok, "lastUsedAt")),
        ]);
    }
    t
}

/// `revoked`, `expired` or `active`.
fn token_state(tok: &Value, now: Timestamp) -> &'static str {
    if !str_of(tok, "revokedAt").is_empty() {
        return "revoked";
    }
    match Timestamp::parse(str_of(tok, "expiresAt")) {
        Some(at) if at <= now => "expired",
        _ => "active",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: &str = "2026-06-01T12:00:00.000Z";

    fn now() -> Timestamp {
        Timestamp::parse(NOW).unwrap_or_default()
    }

    #[test]
    fn states_from_revocation_and_expiry() {
        let state = |v: Value| token_state(&v, now());
        assert_eq!(
            state(json!({"revokedAt": "2026-01-01T00:00:00.000Z"})),
            "revoked"
        );
        assert_eq!(
            state(json!({"expiresAt": "2026-06-01T11:59:59.999Z"})),
            "expired"
        );
        assert_eq!(state(json!({"expiresAt": NOW})), "expired");
        assert_eq!(
            state(json!({"expiresAt": "2026-06-01T12:00:00.001Z"})),
            "active"
        );
        assert_eq!(
            state(json!({"expiresAt": null, "revokedAt": null})),
            "active"
        );
    }

    #[test]
    fn table_of_tokens() {
        let tokens = [json!({
            "id": "a1b2", "user": "alice", "name": "slipway-cli@box",
            "createdAt": "2026-05-01T00:00:00.000Z", "expiresAt": "2026-07-30T00:00:00.000Z",
            "revokedAt": null, "lastUsedAt": null
        })];
        assert_eq!(
            tokens_table(&tokens, now()).render(),
            "ID    USER   NAME             STATE   CREATED                   \
             EXPIRES                   LAST USED\n\
             a1b2  alice  slipway-cli@box  active  2026-05-01T00:00:00.000Z  \
             2026-07-30T00:00:00.000Z  -\n"
        );
    }

    #[test]
    fn create_sends_only_given_fields() {
        assert_eq!(create_body(None, None, None), json!({}));
        assert_eq!(
            create_body(Some("ci".into()), Some(1.5), Some("bob".into())),
            json!({"name": "ci", "expiresInDays": 1.5, "user": "bob"})
        );
    }
}
