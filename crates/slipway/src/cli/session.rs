//! `slipway login`, `slipway logout` and `slipway whoami`.
//!
//! `login` trades a user and password (HTTP Basic) for an API token and stores it in the
//! credentials file; every other command then sends that token for the same server URL.

use anyhow::Context;
use reqwest::Method;
use serde_json::{Value, json};
use std::path::PathBuf;

use super::admin::LoginArgs;
use super::client::{Auth, Client, server_url};
use super::creds::{self, ServerEntry};
use super::error::{ApiError, Exit, coded};
use super::ids::segment;
use super::out::{self, str_of};
use super::{ClientOpts, Output, prompt};

/// `login`: asks for the password, creates a token with Basic auth and stores it.
pub(crate) async fn login(args: &LoginArgs) -> anyhow::Result<Exit> {
    let base = server_url(&args.opts)?;
    let path = credentials_path()?;
    // Refuse to overwrite a file we cannot read (it may hold other servers' tokens).
    let mut file = creds::load(&path)?;
    prompt::restore_echo_on_interrupt();
    let user = match &args.user {
        Some(u) => u.trim().to_string(),
        None if args.password_stdin => "admin".to_string(),
        None => {
            let answer = prompt::ask("User [admin]: ").await?;
            let answer = answer.trim();
            if answer.is_empty() { "admin" } else { answer }.to_string()
        }
    };
    if user.is_empty() {
        return Err(coded(Exit::Invalid, "the user name is empty"));
    }
    let password = if args.password_stdin {
        prompt::read_stdin("password").await?
    } else {
        prompt::ask_hidden(&format!("Password for {user} at {base}: "), "password").await?
    };
    let name = match &args.token_name {
        Some(n) => n.clone(),
        None => format!("slipway-cli@{}", prompt::hostname()),
    };
    let client = Client::with_auth(&base, Auth::Basic(user.clone(), password))?;
    let rb = client
        .request(Method::POST, "/api/v1/tokens")
        .json(&json!({ "name": name }));
    let v = client
        .json(rb)
        .await
        .with_context(|| format!("cannot log in to {base} as {user}"))?;
    let entry = entry_from(&v, &user)?;
    let id = entry.token_id.clone().unwrap_or_default();
    let previous = file.servers.insert(base.clone(), entry.clone());
    if let Err(e) = creds::save(&path, &file) {
        // Do not leave a working token behind that nobody knows.
        let _ = revoke(&base, &entry).await;
        return Err(e);
    }
    if let Some(old) = previous.filter(|old| old.token != entry.token)
        && let Err(e) = revoke(&base, &old).await
    {
        eprintln!("warning: could not revoke the previous token: {e:#}");
    }
    if args
        .opts
        .token
        .as_deref()
        .is_some_and(|t| !t.trim().is_empty())
    {
        eprintln!("note: --token/SLIPWAY_TOKEN is set and takes precedence over the stored token");
    }
    match args.opts.output {
        Output::Json => out::json(&json!({
            "server": base, "user": entry.user, "tokenId": id, "name": str_of(&v, "name"),
            "expiresAt": v.get("expiresAt").cloned().unwrap_or(Value::Null),
            "credentialsFile": path.display().to_string(),
        }))?,
        Output::Text => out::line(&format!(
            "logged in to {base} as {}; token {id} stored in {}",
            entry.user,
            path.display()
        ))?,
    }
    Ok(Exit::Success)
}

/// `logout`: revokes the stored token of the server and removes it from the file. The
/// entry is removed even when revoking fails (then the exit code is 3).
pub(crate) async fn logout(opts: &ClientOpts) -> anyhow::Result<Exit> {
    let base = server_url(opts)?;
    let path = credentials_path()?;
    let mut file = creds::load(&path)?;
    let Some(entry) = file.servers.remove(&base) else {
        eprintln!("not logged in to {base}: nothing to do");
        return Ok(Exit::Success);
    };
    let revoked = revoke(&base, &entry).await;
    creds::save(&path, &file)?;
    let id = entry.token_id.clone().unwrap_or_default();
    let (outcome, revoked, result) = match revoked {
        Ok(true) => (format!("token {id} revoked"), true, Ok(Exit::Success)),
        Ok(false) => (
            "no token id was stored: the token was not revoked on the server".to_string(),
            false,
            Ok(Exit::Success),
        ),
        Err(e) if status_of(&e).is_some_and(|s| s == 401 || s == 404) => (
            "the token was no longer valid".to_string(),
            false,
            Ok(Exit::Success),
        ),
        Err(e) => (
            "the token could not be revoked".to_string(),
            false,
            Err(e.context(format!(
                "removed the token from {}, but could not revoke it on the server",
                path.display()
            ))),
        ),
    };
    match opts.output {
        Output::Json => out::json(&json!({
            "server": base, "user": entry.user, "tokenId": id, "revoked": revoked,
        }))?,
        Output::Text => out::line(&format!("logged out of {base}: {outcome}"))?,
    }
    result
}

/// `whoami`: the user and role the server sees.
pub(crate) async fn whoami(client: &Client, output: Output) -> anyhow::Result<Exit> {
    let v = client
        .get("/api/v1/whoami", &[])
        .await
        .with_context(|| format!("cannot ask {} who you are", client.base()))?;
    match output {
        Output::Json => out::json(&v)?,
        Output::Text => out::line(&whoami_text(&v))?,
    }
    Ok(Exit::Success)
}

/// The `whoami` line: `alice (deployer)`.
fn whoami_text(v: &Value) -> String {
    format!(
        "{} ({})",
        out::or_dash(str_of(v, "user")),
        out::or_dash(str_of(v, "role"))
    )
}

/// The credentials file path, or an error saying how to get one.
fn credentials_path() -> anyhow::Result<PathBuf> {
    creds::default_path().ok_or_else(|| {
        coded(
            Exit::Failed,
            "cannot locate the credentials file: set HOME or XDG_CONFIG_HOME",
        )
    })
}

/// The entry to store from the answer to `POST /api/v1/tokens`.
fn entry_from(v: &Value, user: &str) -> anyhow::Result<ServerEntry> {
    let token = str_of(v, "token");
    if token.is_empty() {
        return Err(coded(Exit::Server, "the server created no token"));
    }
    let stored_user = match str_of(v, "user") {
        "" => user,
        u => u,
    };
    Ok(ServerEntry {
        user: stored_user.to_string(),
        token: token.to_string(),
        token_id: Some(str_of(v, "id").to_string()).filter(|id| !id.is_empty()),
    })
}

/// Revokes a stored token with itself; `false` when no token id is known.
async fn revoke(base: &str, entry: &ServerEntry) -> anyhow::Result<bool> {
    let Some(id) = &entry.token_id else {
        return Ok(false);
    };
    let client = Client::with_auth(base, Auth::FlagToken(entry.token.clone()))?;
    let rb = client.request(Method::DELETE, &format!("/api/v1/tokens/{}", segment(id)));
    client
        .send(rb)
        .await
        .with_context(|| format!("cannot revoke token {id}"))?;
    Ok(true)
}

/// The HTTP status of a server error.
fn status_of(err: &anyhow::Error) -> Option<u16> {
    err.chain()
        .find_map(|c| c.downcast_ref::<ApiError>())
        .map(|a| a.status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_from_token_answers() {
        let v = json!({"id": "abc", "user": "alice", "name": "n", "token": "slw_x"});
        let e = entry_from(&v, "typed").unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!(e.user, "alice");
        assert_eq!(e.token, "slw_x");
        assert_eq!(e.token_id.as_deref(), Some("abc"));
        let e = entry_from(&json!({"token": "slw_y"}), "typed").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((e.user.as_str(), e.token_id), ("typed", None));
        let err = entry_from(&json!({"id": "abc"}), "u").err();
        assert!(err.is_some_and(|e| super::super::error::exit_code(&e) == Exit::Server));
    }

    #[test]
    fn whoami_lines_and_statuses() {
        assert_eq!(
            whoami_text(&json!({"user": "bob", "role": "viewer"})),
            "bob (viewer)"
        );
        assert_eq!(whoami_text(&json!({})), "- (-)");
        let e = anyhow::Error::new(ApiError::from_body(404, "", "{}")).context("x");
        assert_eq!(status_of(&e), Some(404));
        assert_eq!(status_of(&anyhow::anyhow!("plain")), None);
    }
}
